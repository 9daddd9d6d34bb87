/* What imaged and imaged-fetch keep when they confine themselves
 * (common/confine.h); the reasons are in docs/ARCHITECTURE.md, "What each
 * process holds". */
#pragma once

#include "caps.h"
#include "confine.h"

/* imaged-fetch writes a layer with its owners, modes, device nodes and file
 * capabilities, and nothing else. */
#define FETCH_CAPS                                                                                     \
	(CAPBIT(0) /* CHOWN */ | CAPBIT(1) /* DAC_OVERRIDE */ | CAPBIT(3) /* FOWNER */ | CAPBIT(4) /* FSETID */ | \
	 CAPBIT(27) /* MKNOD */ | CAPBIT(31) /* SETFCAP */)

/* imaged: the same for its copy of a rootfs (rootfs_mode = copy) and
 * removing trees it did not write; SYS_ADMIN for overlay mounts,
 * trusted.overlay.* xattrs and imaged-fetch's mount namespace; SETPCAP so
 * imaged-fetch can cut its bounding set (an exec passes on at most this). */
#define IMAGED_CAPS (FETCH_CAPS | CAPBIT(8) /* SETPCAP */ | CAPBIT(21) /* SYS_ADMIN */)

/* imaged-fetch's whole allowlist (it needs no event loop: not the base). */
extern const char *const fetch_syscalls[];
/* What imaged-fetch adds when a proxy is configured and it keeps the host's
 * network (socket, connect, ...). */
extern const char *const fetch_net_syscalls[];
/* imaged's own calls beyond confine_base_syscalls, with fetch_syscalls and
 * what imaged-fetch does before its own filter (its filter stacks on the
 * one it inherits from imaged). NULL-terminated, built once. */
const char *const *imaged_syscalls(void);
