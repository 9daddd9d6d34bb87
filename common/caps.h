/* Linux capabilities by number, named as the OCI runtime spec names them,
 * and runc's default set: one table for criod's spec builder
 * (criod/oci_spec.c) and spawnd's node policy (conmon/spawnd_policy.c),
 * which must agree on what each name means. */
#pragma once

#include <stdint.h>

#define CAP_COUNT 41 /* CAP_CHOWN (0) .. CAP_CHECKPOINT_RESTORE (40) */
#define CAPBIT(n) (UINT64_C(1) << (n))
#define CAP_ALL_MASK ((UINT64_C(1) << CAP_COUNT) - 1)
/* runc's (and Docker's) default set, which criod starts every container
 * from. */
#define CAP_DEFAULT_MASK                                                                                     \
	(CAPBIT(0) /* CHOWN */ | CAPBIT(1) /* DAC_OVERRIDE */ | CAPBIT(3) /* FOWNER */ | CAPBIT(4) /* FSETID */ | \
	 CAPBIT(5) /* KILL */ | CAPBIT(6) /* SETGID */ | CAPBIT(7) /* SETUID */ | CAPBIT(8) /* SETPCAP */ |       \
	 CAPBIT(10) /* NET_BIND_SERVICE */ | CAPBIT(13) /* NET_RAW */ | CAPBIT(18) /* SYS_CHROOT */ |             \
	 CAPBIT(27) /* MKNOD */ | CAPBIT(29) /* AUDIT_WRITE */ | CAPBIT(31) /* SETFCAP */)

/* "CAP_CHOWN", ... indexed by capability number. */
extern const char *const cap_names[CAP_COUNT];

/* The number of the capability named exactly name ("CAP_SYS_ADMIN"), or -1. */
int cap_index(const char *name);
