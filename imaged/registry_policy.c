/* The registries policy: which addresses imaged-fetch may connect to; see
 * registry_policy.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "registry_policy.h"


static bool in_net4(uint32_t a, uint32_t net, unsigned bits)
{
	uint32_t mask = bits ? ~(uint32_t)0 << (32 - bits) : 0;
	return (a & mask) == (net & mask);
}

static enum addr_class classify4(uint32_t a)
{
	static const struct {
		uint32_t net;
		unsigned bits;
		enum addr_class c;
	} nets[] = {
		{ 0x00000000, 8, ADDR_UNSPECIFIED }, /* 0.0.0.0/8 "this network" */
		{ 0x7f000000, 8, ADDR_LOOPBACK },    /* 127.0.0.0/8 */
		{ 0xa9fe0000, 16, ADDR_LINK_LOCAL }, /* 169.254.0.0/16 */
		{ 0x0a000000, 8, ADDR_PRIVATE },     /* 10.0.0.0/8 */
		{ 0xac100000, 12, ADDR_PRIVATE },    /* 172.16.0.0/12 */
		{ 0xc0a80000, 16, ADDR_PRIVATE },    /* 192.168.0.0/16 */
		{ 0x64400000, 10, ADDR_PRIVATE },    /* 100.64.0.0/10 shared (carrier-grade NAT) */
		{ 0xc0000000, 24, ADDR_RESERVED },   /* 192.0.0.0/24 protocol assignments */
		{ 0xc0000200, 24, ADDR_RESERVED },   /* 192.0.2.0/24 documentation */
		{ 0xc6120000, 15, ADDR_RESERVED },   /* 198.18.0.0/15 benchmarking */
		{ 0xc6336400, 24, ADDR_RESERVED },   /* 198.51.100.0/24 documentation */
		{ 0xcb007100, 24, ADDR_RESERVED },   /* 203.0.113.0/24 documentation */
		{ 0xe0000000, 4, ADDR_MULTICAST },   /* 224.0.0.0/4 */
		{ 0xf0000000, 4, ADDR_RESERVED },    /* 240.0.0.0/4, 255.255.255.255 */
	};
	for (size_t i = 0; i < ARRAY_SIZE(nets); i++)
		if (in_net4(a, nets[i].net, nets[i].bits))
			return nets[i].c;
	return ADDR_PUBLIC;
}

static uint32_t be32_at(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static enum addr_class classify6(const uint8_t *b)
{
	static const uint8_t zero[16] = { 0 };
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };

	if (memcmp(b, zero, 16) == 0)
		return ADDR_UNSPECIFIED;
	if (memcmp(b, zero, 15) == 0 && b[15] == 1)
		return ADDR_LOOPBACK;
	/* IPv4 carried inside: ::ffff:a.b.c.d, ::a.b.c.d, 64:ff9b::a.b.c.d */
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, zero, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return classify4(be32_at(b + 12));
	if (b[0] == 0x20 && b[1] == 0x02) /* 6to4: 2002:aabb:ccdd::/48 */
		return classify4(be32_at(b + 2));
	if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0x00 && b[5] == 0x01)
		return ADDR_PRIVATE; /* 64:ff9b:1::/48 local-use NAT64 */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		return ADDR_LINK_LOCAL; /* fe80::/10 */
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
		return ADDR_PRIVATE; /* fec0::/10 site-local (deprecated) */
	if ((b[0] & 0xfe) == 0xfc)
		return ADDR_PRIVATE; /* fc00::/7 unique local */
	if (b[0] == 0xff)
		return ADDR_MULTICAST;
	if (b[0] == 0x01 && b[1] == 0x00 && memcmp(b + 2, zero, 6) == 0)
		return ADDR_RESERVED; /* 100::/64 discard */
	if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
		return ADDR_RESERVED; /* 2001:db8::/32 documentation */
	return ADDR_PUBLIC;
}

enum addr_class addr_classify(const struct sockaddr *sa)
{
	if (!sa)
		return ADDR_RESERVED;
	if (sa->sa_family == AF_INET)
		return classify4(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6)
		return classify6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
	return ADDR_RESERVED;
}

const char *addr_class_name(enum addr_class c)
{
	switch (c) {
	case ADDR_PUBLIC:
		return "public";
	case ADDR_LOOPBACK:
		return "loopback";
	case ADDR_LINK_LOCAL:
		return "link-local";
	case ADDR_PRIVATE:
		return "private";
	case ADDR_UNSPECIFIED:
		return "unspecified";
	case ADDR_MULTICAST:
		return "multicast";
	case ADDR_RESERVED:
		break;
	}
	return "reserved";
}

bool addr_is_metadata(const struct sockaddr *sa)
{
	static const uint8_t ec2v6[16] = { 0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 };

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET)
		return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) == 0xa9fea9fe;
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		return memcmp(b, ec2v6, 16) == 0 || (memcmp(b, mapped, 12) == 0 && be32_at(b + 12) == 0xa9fea9fe);
	}
	return false;
}

void addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a = NULL;

	if (sa && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

bool hostport_host(const char *hostport, char *host, size_t len)
{
	const char *end;
	size_t n;

	if (!hostport || !*hostport)
		return false;
	if (hostport[0] == '[') {
		end = strchr(hostport, ']');
		if (!end || (end[1] && end[1] != ':'))
			return false;
		hostport++;
	} else {
		end = strchr(hostport, ':');
		if (!end)
			end = hostport + strlen(hostport);
		else if (strchr(end + 1, ':'))
			return false; /* a bare IPv6 address: not how a URL or a reference writes one */
	}
	n = (size_t)(end - hostport);
	if (n == 0 || n >= len)
		return false;
	memcpy(host, hostport, n);
	host[n] = '\0';
	return true;
}

int hostport_literal(const char *hostport, struct sockaddr_storage *sa)
{
	char host[HOSTPORT_MAX];
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST };
	struct addrinfo *res = NULL;

	if (!hostport_host(hostport, host, sizeof(host)))
		return -EINVAL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return 0;
	memset(sa, 0, sizeof(*sa));
	if (res->ai_addrlen <= sizeof(*sa))
		memcpy(sa, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 1;
}

bool registry_host_exempt(const struct criod_config *cfg, const char *hostport)
{
	if (!cfg)
		return false;
	if (cfg->allow_private_registries)
		return true;
	return hostport && config_registry(cfg, hostport) != NULL;
}

int registry_policy_check_addr(const struct criod_config *cfg, const char *hostport, const struct sockaddr *sa,
			       bool is_literal, char *err, size_t errlen)
{
	enum addr_class c;
	char addr[INET6_ADDRSTRLEN];

	if (registry_host_exempt(cfg, hostport))
		return 0;
	c = addr_classify(sa);
	if (c == ADDR_PUBLIC)
		return 0;
	addr_format(sa, addr, sizeof(addr));
	if (err && errlen) {
		char what[INET6_ADDRSTRLEN + 64];
		if (is_literal)
			snprintf(what, sizeof(what), "is a %s address", addr_class_name(c));
		else
			snprintf(what, sizeof(what), "resolves to %s, a %s address", addr, addr_class_name(c));
		snprintf(err, errlen,
			 "registry %s %s%s: refused by the registries policy ([policy] allow_private_registries = false "
			 "and no [registry.%s] section lists it)",
			 hostport, what, addr_is_metadata(sa) ? " (the cloud metadata address)" : "", hostport);
	}
	return -EPERM;
}

int registry_policy_check_host(const struct criod_config *cfg, const char *hostport, char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	int r;

	if (registry_host_exempt(cfg, hostport))
		return 0;
	r = hostport_literal(hostport, &sa);
	if (r < 0) {
		if (err && errlen)
			snprintf(err, errlen, "invalid registry host \"%.255s\"", hostport ? hostport : "");
		return -EINVAL;
	}
	if (r == 0)
		return 0;
	return registry_policy_check_addr(cfg, hostport, (const struct sockaddr *)&sa, true, err, errlen);
}

int registry_policy_check_name(const struct criod_config *cfg, const char *hostport, char *err, size_t errlen)
{
	char host[HOSTPORT_MAX];
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	int r;

	if (registry_host_exempt(cfg, hostport))
		return 0;
	r = registry_policy_check_host(cfg, hostport, err, errlen);
	if (r < 0)
		return r;
	if (!hostport_host(hostport, host, sizeof(host)))
		return -EINVAL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return 0; /* the proxy may know the name; it is its to resolve */
	r = 0;
	for (struct addrinfo *ai = res; ai && r == 0; ai = ai->ai_next)
		r = registry_policy_check_addr(cfg, hostport, ai->ai_addr, false, err, errlen);
	freeaddrinfo(res);
	return r;
}
