/* Streaming layer extraction, safe against hostile layers.
 *
 * Bytes come in compressed (gzip inflated with ISA-L, zlib as fallback;
 * zstd; or plain tar), are inflated as they stream and are extracted into a
 * directory, never buffered whole. Every path is resolved inside the
 * destination (openat2 RESOLVE_IN_ROOT): "..", absolute paths, symlinks and
 * hardlinks can never create, write, chmod, chown or link anything outside
 * it. Ownership, modes (setuid/setgid/sticky), xattrs, mtimes, device
 * nodes, fifos, symlinks and hardlinks (within the layer) are kept as in the
 * layer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "manifest.h"
#include "tree.h"

/* Pull the next compressed bytes into buf; returns bytes read, 0 at the
 * end, or negative errno. */
typedef ssize_t (*unpack_read_fn)(void *userdata, void *buf, size_t len);

enum whiteout_mode {
	/* Keep the layer as an overlayfs lower dir: ".wh.x" becomes a 0:0
	 * character device "x", ".wh..wh..opq" becomes the xattr
	 * trusted.overlay.opaque=y on its directory. */
	WHITEOUT_OVERLAY,
	/* Apply the layer on top of the lower layers already in dest (the copy
	 * fallback): ".wh.x" removes x, ".wh..wh..opq" empties its directory
	 * of what the lower layers put there. */
	WHITEOUT_APPLY,
	/* As WHITEOUT_OVERLAY, but the opaque directories are listed in the
	 * result (unpack_result.opaque) instead of marked: setting a trusted.*
	 * xattr takes CAP_SYS_ADMIN, which imaged-fetch does not hold; imaged
	 * marks them (pull.c). */
	WHITEOUT_OVERLAY_LISTED,
};

struct unpack_result {
	char diff_id[DIGEST_STR_MAX]; /* sha256 of the uncompressed tar stream */
	uint64_t tar_bytes;           /* uncompressed size */
	uint64_t entries;
	/* WHITEOUT_OVERLAY_LISTED: the opaque directories, relative to dest
	 * ("." for dest itself), normalised, each once; unpack_result_free. */
	char **opaque;
	size_t n_opaque;
};

void unpack_result_free(struct unpack_result *res);

/* Extract one layer into the directory dest_fd. Returns 0 or negative errno
 * with err naming the entry and the problem; on error dest may hold a
 * partial tree (the caller extracts into a temporary directory and removes
 * it). -EXDEV means an entry tried to leave the root (and nothing was
 * written outside). */
int unpack_layer(int dest_fd, enum layer_compression comp, enum whiteout_mode mode, unpack_read_fn read,
		 void *userdata, struct unpack_result *res, char *err, size_t errlen);

/* What one layer may take ([imaged] max_layer_size, max_layer_entries,
 * min_free_space); 0 means no limit. */
struct unpack_limits {
	uint64_t max_bytes;   /* uncompressed tar bytes: beyond, -EFBIG */
	uint64_t max_entries; /* tar entries: beyond, -E2BIG */
	uint64_t min_free;    /* bytes dest's filesystem keeps free (f_bavail), looked at from the first
			       * byte and every 4 MiB inflated: below, -ENOSPC */
};
/* unpack_layer within limits (NULL: none), checked as the bytes stream,
 * err naming the limit and its key. */
int unpack_layer_limited(int dest_fd, enum layer_compression comp, enum whiteout_mode mode, unpack_read_fn read,
			 void *userdata, const struct unpack_limits *lim, struct unpack_result *res, char *err,
			 size_t errlen);
