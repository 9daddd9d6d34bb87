/* What netd made (or is about to make) for a pod, written to
 * <state_dir>/netd/pods/<pod_id>.json with write_file_atomic() before
 * anything is made and updated as the pod's network changes state:
 *
 *   setting-up    written before the first change; a crash leaves it so,
 *                 and the next start tears everything it names down
 *   ready         SetupPodNetwork completed
 *   tearing-down  TeardownPodNetwork began (or a failed setup is being
 *                 rolled back); finished at the next teardown or start
 *
 * The record names everything teardown needs, so teardown works even after
 * the configuration changed (bridge, table, subnet). */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "ipam.h"

#define POD_META_MAX 253    /* pod name, namespace, uid */
#define POD_CGROUP_MAX 1024 /* cgroup parent */

enum pod_state { POD_SETTING_UP, POD_READY, POD_TEARING_DOWN };

struct pod_ip {
	char addr[IPAM_ADDR_MAX];    /* without prefix length */
	unsigned prefix;             /* 0 if unknown (CNI) */
	char ipam_key[IPAM_CIDR_MAX]; /* netd's IPAM subnet directory; "" if not ours */
};

struct pod_record {
	char pod_id[65];
	enum pod_state state;
	char backend[16];            /* "netlink" or "cni" */
	char netns[PATH_MAX];
	char ifname[16];             /* "eth0" */
	char host_veth[16];          /* netlink: host side of the veth pair */
	char bridge[16];             /* netlink */
	char nft_table[40];          /* netlink: table holding the pod's rules */
	char nft_comment[80];        /* "pod:<pod_id>" */
	struct pod_ip ips[NETD_MAX_IPS];
	size_t n_ips;                /* IPv4 first */
	struct port_mapping *ports;  /* host port mappings (host_port != 0) */
	size_t n_ports;
	char pod_name[POD_META_MAX + 1];
	char pod_namespace[POD_META_MAX + 1];
	char pod_uid[POD_META_MAX + 1];
	char cgroup_parent[POD_CGROUP_MAX + 1];
	int64_t created_ns;          /* realtime */
	bool recovered;              /* not saved: rebuilt from its id (the file was unreadable), ports unknown */
};

const char *pod_state_name(enum pod_state s);

/* Must the record survive a host restart? Only a CNI pod's: its plugins
 * keep their own state (host-local leases) that only a DEL frees, even
 * after a reboot. A netlink pod's namespace, veth, nft rules and (see
 * ipam.h) addresses all end with the boot, so its record is boot-scoped. */
bool pod_record_durable(const struct pod_record *r);
/* <dir>/<pod_id>.json, atomically (write_file_atomic or, when not
 * pod_record_durable, write_file_boot). */
int pod_record_save(const char *dir, const struct pod_record *r);
/* Parse and validate a record; err says what is wrong. */
int pod_record_load(const char *path, struct pod_record *r, char *err, size_t errlen);
/* Remove <dir>/<pod_id>.json (missing is fine); fsync dir if durable. */
int pod_record_remove(const char *dir, const char *pod_id, bool durable);
/* Deep copy; dst must not own anything. */
int pod_record_copy(struct pod_record *dst, const struct pod_record *src);
void pod_record_free(struct pod_record *r);
struct pod_record *pod_record_dup(const struct pod_record *src);
void pod_record_freep(struct pod_record **r);
