/* A pod's network from start to end, independent of the IPC layer:
 * configuration checks, setup with rollback, teardown, and the
 * reconciliation at start that undoes whatever a crash left half made.
 *
 * On disk (state_dir defaults to /var/lib/criod, run_dir to /run/criod):
 *
 *   <state_dir>/netd/pods/<pod_id>.json        the pod record (state.h)
 *   <state_dir>/netd/ipam/<subnet key>/<ip>    address allocations (ipam.h)
 *   <state_dir>/netd/cni/cni-<pod_id>.json     CNI result cache (cni.c)
 *   <run_dir>/netns/<pod_id>                   the namespace bind mount
 *
 * Setup writes the record (state setting-up, naming the namespace path,
 * veth, addresses, rule comment and backend) before it makes anything and
 * marks it ready at the end; teardown marks it tearing-down, removes
 * everything it names and deletes it last. A failure part-way through
 * setup is rolled back the same way. At start every record that is not
 * ready (or whose namespace is gone, as after a reboot) is torn down, and
 * address allocations, namespaces and rules no live record owns are freed.
 * The bridge and the nftables table are shared and stay. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "hostport_policy.h"
#include "ipam.h"
#include "netlink.h"
#include "nft.h"
#include "state.h"

struct netd {
	const struct criod_config *cfg;
	bool cni;                    /* [netd] backend = cni */
	struct ipam_subnet sub4, sub6;
	bool dual;                   /* [netd] subnet6 is set */
	char *root;                  /* <state_dir>/netd */
	char *pods_dir;              /* <state_dir>/netd/pods */
	char *cni_dir;               /* <state_dir>/netd/cni */
	char *netns_dir;             /* <run_dir>/netns */
	struct ipam ipam;
	struct netlink_net nl;
	struct fw_config fw;
	struct hostport_policy hostports; /* [policy] host_port_* */
};

/* Check the [netd] keys; on error err names the key. */
int netd_configure(struct netd *nd, const struct criod_config *cfg, char *err, size_t errlen);
/* Directories, IPAM, the shared namespace directory. */
int netd_open(struct netd *nd);
void netd_close(struct netd *nd);

/* Fill in what will be made for a new pod (rec->pod_id and the request's
 * fields are set): backend, namespace path, interface names, table, comment. */
void netd_pod_plan(const struct netd *nd, struct pod_record *rec);
/* Set up the pod's network as rec describes; rec gets the addresses and
 * state ready. On failure everything made is rolled back; *gone says
 * whether that worked (else rec stays recorded as tearing-down). */
int netd_pod_setup(struct netd *nd, struct pod_record *rec, const char *req, char *err, size_t errlen, bool *gone);
/* Remove everything rec names, then the record. On failure the record
 * stays (tearing-down) so a later teardown or start finishes the job. */
/* veth_left: NULL to delete the pod's veth pair here and now. Else, when
 * the pod's namespace is netd's and still there, the pair is left to the
 * kernel, which destroys it with the namespace once nothing holds that
 * (without RTNL and RCU waits in this call); *veth_left then tells the
 * caller to make sure later (netd_veth_reap) that it went. */
int netd_pod_teardown(struct netd *nd, struct pod_record *rec, const char *req, char *err, size_t errlen,
		      bool *veth_left);
/* Delete the host veth of a torn-down pod if it is still there (something
 * kept its namespace alive; netlink logs the deletion). 0 or negative errno. */
int netd_veth_reap(const char *pod_id, const char *host_veth, const char *req);
/* At start: tear down interrupted and stale pods, free what no record
 * owns, set up the host side and the nftables table. *out gets the
 * records that remain (ready, or whose teardown failed). */
int netd_reconcile(struct netd *nd, struct pod_record ***out, size_t *n_out);
