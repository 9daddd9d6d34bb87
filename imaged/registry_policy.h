/* Which registries imaged-fetch may connect to (see registry_policy.c).
 *
 * A pull names any host:port it likes, and imaged-fetch connects as root
 * from the host's network namespace, so without a rule a reference such as
 * 169.254.169.254/x or 127.0.0.1:10250/x would be a request to the cloud
 * metadata service or to the kubelet on behalf of a front end whose own
 * unit gives it no network at all. The rule: a host that is an address, or
 * resolves to one, in a loopback, link-local, private, unspecified,
 * multicast or reserved range is refused unless the configuration lists it
 * (it has a [registry.HOST] section, HOST exactly as in the URL, port
 * included) or [policy] allow_private_registries is true. It applies to the
 * origin, to each mirror, to token servers and to every redirect, and is
 * checked on the address each connection is about to be made to (libcurl's
 * open-socket callback), so a name that resolves differently between a
 * check and the connect gains nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

#define HOSTPORT_MAX 262 /* "[" 255 "]:" port */

enum addr_class {
	ADDR_PUBLIC,
	ADDR_LOOPBACK,    /* 127.0.0.0/8, ::1 */
	ADDR_LINK_LOCAL,  /* 169.254.0.0/16 (the cloud metadata address), fe80::/10 */
	ADDR_PRIVATE,     /* 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10, 64:ff9b:1::/48 */
	ADDR_UNSPECIFIED, /* 0.0.0.0/8, :: */
	ADDR_MULTICAST,   /* 224.0.0.0/4, ff00::/8 */
	ADDR_RESERVED,    /* 240.0.0.0/4 and broadcast, documentation and benchmark nets, 100::/64, 2001:db8::/32 */
};

/* The class of an IPv4 or IPv6 address; IPv4 inside IPv6 (mapped,
 * compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) is classified as the
 * IPv4 address it carries. Another family is ADDR_RESERVED. */
enum addr_class addr_classify(const struct sockaddr *sa);
/* "loopback", "link-local", ... ("public" for ADDR_PUBLIC). */
const char *addr_class_name(enum addr_class c);
/* Is this the cloud metadata address (169.254.169.254, fd00:ec2::254)? */
bool addr_is_metadata(const struct sockaddr *sa);
/* The address as text ("10.0.0.1", "::1"). */
void addr_format(const struct sockaddr *sa, char *buf, size_t len);

/* hostport ("host", "host:port", "[v6]:port") split into the host without
 * brackets; false if it does not fit or is malformed. */
bool hostport_host(const char *hostport, char *host, size_t len);
/* If the host of hostport is an address literal (in any form the resolver
 * takes: "10.0.0.1", "::1", "127.1", "2130706433"), *sa gets it and 1 is
 * returned; 0 for a name; negative errno if hostport is malformed. */
int hostport_literal(const char *hostport, struct sockaddr_storage *sa);

/* Does the policy let imaged-fetch connect to hostport without looking at
 * its addresses: allow_private_registries, or a [registry.HOST] section? */
bool registry_host_exempt(const struct criod_config *cfg, const char *hostport);

/* Check one address a connection to hostport is about to be made to.
 * Returns 0, or -EPERM with err naming the host, the address, its class and
 * the rule. is_literal: hostport itself is that address (the message says
 * "is" rather than "resolves to"). */
int registry_policy_check_addr(const struct criod_config *cfg, const char *hostport, const struct sockaddr *sa,
			       bool is_literal, char *err, size_t errlen);
/* Before any request: a host that is an address literal is checked as
 * above; a name passes here (its addresses are checked at connect time). */
int registry_policy_check_host(const struct criod_config *cfg, const char *hostport, char *err, size_t errlen);
/* Resolve hostport (getaddrinfo) and check every address: the check for a
 * connection made through a proxy, which resolves the name itself. */
int registry_policy_check_name(const struct criod_config *cfg, const char *hostport, char *err, size_t errlen);
