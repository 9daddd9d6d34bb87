/* The built-in pod network backend ([netd] backend = netlink): a host
 * bridge with the gateway addresses, one veth pair per pod (host side on
 * the bridge, the other end eth0 in the pod's namespace), the pod's
 * addresses and default routes. Everything through rtnetlink (rt.c); work
 * inside a pod's namespace runs on a thread that joined it (netns_run).
 * Functions run on worker threads and may block. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "ipam.h"
#include "state.h"

struct netlink_net {
	const char *bridge;
	unsigned mtu;
	const struct ipam_subnet *sub4;
	const struct ipam_subnet *sub6; /* NULL: IPv4 only */
	bool route_localnet;            /* [policy] host_port_local: 127.0.0.1 may be DNATed to pods */
};

/* The host side, idempotent: the bridge (created if missing, with a fixed
 * random MAC so it does not change as ports come and go), its gateway
 * addresses, up; net.ipv4.ip_forward=1, route_localnet=1 (0 without
 * n->route_localnet) on the bridge
 * and, with IPv6, net.ipv6.conf.all.forwarding=1. */
int netlink_ensure_host(const struct netlink_net *n, const char *req, char *err, size_t errlen);
/* In the existing namespace rec->netns: the veth pair rec->host_veth /
 * rec->ifname, addresses rec->ips, default routes via the gateways. */
int netlink_setup_pod(const struct netlink_net *n, const struct pod_record *rec, const char *req, char *err,
		      size_t errlen);
/* Delete rec->host_veth (which takes the pod's end with it) if it is a veth
 * netd made. Missing is fine. */
int netlink_teardown_pod(const struct pod_record *rec, const char *req, char *err, size_t errlen);
/* Bring lo up inside the namespace at netns. */
int netlink_loopback_up(const char *netns, const char *req);
/* The alias netd gives a pod's host-side veth. */
void netlink_veth_alias(const char *pod_id, char *buf, size_t len);
/* At start: delete host veths with netd's alias on bridge whose pod keep()
 * does not know (left when something held a stopped pod's namespace past
 * netd's deferred check, and netd stopped meanwhile). At most 64 a start. */
void netlink_sweep_veths(const char *bridge, bool (*keep)(const char *pod_id, void *ud), void *ud);
