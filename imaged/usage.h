/* The writable layer of a container's root filesystem, for criod's
 * container stats (RootfsUsage, proto/internal/imaged.proto).
 *
 * The layer is the container's overlay upper directory, or its copied root
 * in copy mode. It is measured by a walk on a thread of its own (never on
 * imaged's pull workers), that opens every directory with O_NOFOLLOW below
 * the one before, never follows a symlink, stays on the layer's file
 * system, and stops after USAGE_MAX_ENTRIES entries or USAGE_MAX_DEPTH
 * levels (the figure is then a lower bound, and a warning says so). Each
 * container's figure is cached for USAGE_CACHE_MS; callers that ask while
 * a walk of the same container runs share its result. The cache is the
 * loop thread's; entries not asked for in USAGE_FORGET_MS are dropped. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>

#include "ipc.h"

#define USAGE_CACHE_MS 5000
#define USAGE_FORGET_MS 60000
#define USAGE_MAX_ENTRIES 2000000
#define USAGE_MAX_DEPTH 128

struct usage_figures {
	uint64_t bytes;  /* allocated blocks * 512, as du counts them */
	uint64_t inodes; /* the directory itself and every entry below it */
	bool truncated;  /* a bound was reached */
};

/* Walk the tree at dir_fd (a directory; not closed). Blocking. */
int usage_walk(int dir_fd, struct usage_figures *out);

/* Answer call (RootfsUsage) for container_id, which the caller checked is
 * a container imaged mounted under store_root: from the cache, or after a
 * walk. base is the loop's (the walk thread is made on first use). */
void usage_request(struct event_base *base, struct ipc_call *call, const char *store_root, const char *container_id);
