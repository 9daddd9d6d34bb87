/* The node's hostPort policy, from criod.conf [policy]; netd enforces it
 * on every SetupPodNetwork before anything is made, whatever criod sends:
 *
 *   host_port_range = lo-hi      a host port outside is PERMISSION_DENIED
 *                                (default 1-65535)
 *   host_port_allow_in_use = b   false (the default): a host port on which
 *                                a socket of the host's network namespace
 *                                (netd's own) receives - a TCP listener, an
 *                                unconnected bound UDP socket - on the
 *                                mapping's host_ip or a wildcard is
 *                                FAILED_PRECONDITION, so a pod cannot take
 *                                the host's sshd or DNS resolver traffic
 *   host_port_local = b          true (the default): locally generated
 *                                traffic, 127.0.0.1 too, is DNATed as well
 *                                (nft.h: the output chain's jumps,
 *                                route_localnet); false: hostPorts answer
 *                                only traffic that arrives from outside
 *                                the host (or from pods, through the
 *                                bridge)
 *
 * The sockets are read from /proc/thread-self/net/{tcp,tcp6,udp,udp6} of
 * the calling thread (the loop thread, which never leaves the host's
 * namespace). A listing that cannot be read or parsed refuses the request
 * (fail closed). The check is a snapshot: a host service that starts
 * listening after the pod's rules are in is not seen. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"

#define HOSTPORT_PROC_NET "/proc/thread-self/net"
#define HOSTPORT_LISTING_MAX (64u << 20) /* bytes of one /proc/net listing */

struct hostport_policy {
	uint16_t lo, hi;      /* [policy] host_port_range */
	bool local;           /* [policy] host_port_local */
	bool allow_in_use;    /* [policy] host_port_allow_in_use */
	char range[40];       /* the range as configured, for messages */
	const char *proc_net; /* the directory of the listings: HOSTPORT_PROC_NET (tests: a fixture) */
};

/* From cfg's [policy] keys; on error err names the key. */
int hostport_policy_init(struct hostport_policy *p, const struct criod_config *cfg, char *err, size_t errlen);

/* One listing as the kernel formats /proc/net/tcp (v6: tcp6) or udp (udp6):
 * does a socket in it receive what a mapping of protocol (IPPROTO_TCP or
 * IPPROTO_UDP), host_ip ("" every address, "0.0.0.0", "::" or one canonical
 * address) and port would take? TCP counts LISTEN sockets, UDP unconnected
 * ones (state 07, no remote address). A socket on a wildcard address (a
 * "::" one may take IPv4 too) takes every address of its family; an
 * IPv4-mapped IPv6 address is the IPv4 one. Returns 1 (who gets the
 * socket's "addr:port"), 0, or -EPROTO for a line that is not in the
 * kernel's format. */
int hostport_listing_find(const char *text, bool v6, int protocol, const char *host_ip, uint16_t port, char *who,
			  size_t wholen);

/* Check a pod's mappings (validated and normalized: host_port 1..65535,
 * canonical host_ip) against the policy. Returns STATUS_OK, or the gRPC
 * status to refuse the request with (PERMISSION_DENIED: outside the range;
 * FAILED_PRECONDITION: in use; INTERNAL: the listings cannot be read) and
 * msg saying which port and which key. A refusal is logged once (req, pod,
 * port, rule). */
int hostport_policy_check(const struct hostport_policy *p, const struct port_mapping *ports, size_t n_ports,
			  const char *req, const char *pod_id, char *msg, size_t msglen);
