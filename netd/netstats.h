/* A pod's interface counters (PodNetworkStats, proto/internal/netd.proto),
 * read inside its network namespace from /proc/thread-self/net/dev, which
 * shows the namespace of the reading thread (sysfs would show the one it
 * was mounted in). The reading runs on a short-lived thread that joined
 * the namespace (netns_run), never on a thread netd keeps. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define NETSTATS_MAX_IFACES 32

struct if_stats {
	char name[16];
	uint64_t rx_bytes, rx_errors, tx_bytes, tx_errors;
};

/* Parse the text of /proc/net/dev: every interface but loopback ("lo"),
 * at most max of them (the rest dropped). -EINVAL when a line does not
 * have the 16 counters after "name:". (pure) */
int netstats_parse(const char *text, struct if_stats *out, size_t max, size_t *n);

/* Read the counters inside the namespace mounted at netns_path. Blocking:
 * call from a worker thread. */
int netstats_read_netns(const char *netns_path, struct if_stats *out, size_t max, size_t *n);
