/* A small rtnetlink client on libmnl: just the link, address and route
 * requests netd makes. A socket talks to the network namespace of the
 * thread that opened it. Every function returns 0 or negative errno (the
 * kernel's answer). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <net/if.h>

struct mnl_socket;

struct rt {
	struct mnl_socket *sk;
	unsigned portid;
	uint32_t seq;
};

struct rt_link {
	int ifindex;
	unsigned flags;   /* IFF_* */
	int master;       /* 0: none */
	unsigned mtu;
	char name[IF_NAMESIZE];
	char kind[32];    /* "bridge", "veth", "" */
	char alias[256];
};

int rt_open(struct rt *rt);
void rt_close(struct rt *rt);

/* -ENODEV if there is no such link. */
int rt_link_get(struct rt *rt, const char *name, struct rt_link *out);
/* Every link of the namespace, one fn call each. Dumps on a socket of its
 * own (opened and closed here). */
int rt_link_list(void (*fn)(const struct rt_link *l, void *ud), void *ud);
/* A new bridge with the given MAC (6 bytes) and MTU; -EEXIST if the name is taken. */
int rt_bridge_add(struct rt *rt, const char *name, const unsigned char mac[6], unsigned mtu);
/* A veth pair: name in this namespace, enslaved to master (0: none), and
 * peer_name in the namespace peer_netns_fd. -EEXIST if name is taken. */
int rt_veth_add(struct rt *rt, const char *name, unsigned mtu, int master, const char *peer_name,
		int peer_netns_fd, unsigned peer_mtu);
/* Change a link: up (or leave it), alias (NULL: leave it). */
int rt_link_set(struct rt *rt, int ifindex, bool up, const char *alias);
int rt_link_del(struct rt *rt, int ifindex);
/* Bridge port flags: hairpin mode on a link enslaved to a bridge. */
int rt_bridge_port_hairpin(struct rt *rt, int ifindex, bool on);
/* Add an address (addr is 4 or 16 bytes by family); nodad skips IPv6
 * duplicate address detection. -EEXIST if present. */
int rt_addr_add(struct rt *rt, int ifindex, int family, const unsigned char *addr, unsigned prefix, bool nodad);
/* Default route via gw (4 or 16 bytes) out of ifindex. -EEXIST if present. */
int rt_route_add_default(struct rt *rt, int family, const unsigned char *gw, int ifindex);

/* Write value to /proc/sys/<key> ("net/ipv4/ip_forward") of the calling
 * thread's network namespace if it differs; *changed says whether it did. */
int sysctl_ensure(const char *key, const char *value, bool *changed);
