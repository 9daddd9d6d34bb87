/* netd's nftables rules, through libnftables. netd owns one table,
 * `inet <[netd] nft_table>`:
 *
 *   chain hostports                  per-pod DNAT rules (jumped to for local destinations)
 *   chain prerouting  nat/-100       fib daddr type local jump hostports
 *   chain output      nat/-100       same for locally generated traffic (127.0.0.1 too; not ::1);
 *                                    no rule with [policy] host_port_local = false
 *   chain postrouting nat/100        masquerade: pod egress, 127.0.0.0/8 -> pods (host_port_local
 *                                    only), hairpin
 *   chain input       filter/0       drop non-established traffic from the bridge to 127.0.0.0/8
 *                                    (route_localnet is on for the bridge unless
 *                                    host_port_local = false)
 *
 * Rules netd adds carry a comment: "netd:<what>" for the global rules,
 * "pod:<pod id>" for a pod's rules, which are removed exactly by handle.
 * Rules without such a comment are never touched. Each change is one
 * nftables transaction. All functions are thread-safe (serialized). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "ipam.h"

#define FW_TABLE_MAX 32

struct fw_config {
	const char *table;
	const char *bridge;
	const struct ipam_subnet *sub4;
	const struct ipam_subnet *sub6; /* NULL: IPv4 only */
	bool masquerade;
	bool local;     /* [policy] host_port_local: the output chain's jumps and the 127.0.0.1 masquerade */
};

/* An nftables identifier netd accepts as its table name. */
bool fw_table_name_is_valid(const char *name);

/* Make the table and its base chains, (re)write netd's global rules, and
 * delete the rules of every pod keep() refuses (keep is called for each pod
 * that has rules, possibly more than once). */
int fw_setup(const struct fw_config *c, bool (*keep)(const char *pod_id, void *ud), void *ud, const char *req,
	     char *err, size_t errlen);

/* The commands adding a pod's hostPort rules (malloc'd; NULL on ENOMEM);
 * *n_rules gets how many. ip6 may be NULL (IPv4 only). */
char *fw_pod_rules(const struct fw_config *c, const char *pod_id, const char *ip4, const char *ip6,
		   const struct port_mapping *ports, size_t n_ports, size_t *n_rules);
int fw_add_pod(const struct fw_config *c, const char *pod_id, const char *ip4, const char *ip6,
	       const struct port_mapping *ports, size_t n_ports, const char *req, char *err, size_t errlen);
/* Delete every rule of the pod in table (missing table: nothing to do). */
int fw_del_pod(const char *table, const char *pod_id, const char *req, char *err, size_t errlen);
/* The pods that have a rule in table, with one listing (what a start
 * checks for every pod: a listing per pod made netd's start quadratic,
 * seconds for a hundred pods with hostPorts). *pods is malloc'd, sorted,
 * without duplicates; a missing table has none. */
int fw_pods_with_rules(const char *table, char (**pods)[65], size_t *n);
