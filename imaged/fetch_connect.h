/* imaged's side of FetchConnect (proto/internal/fetch.proto): imaged-fetch
 * has no network of its own, so every TCP connection a pull makes (to the
 * registry, a mirror, a token server, a redirect's blob host) is resolved
 * and connected here and handed to the helper as a socket.
 *
 * What imaged can know and check: the helper is the one parsing registry
 * bytes, so the token realms and redirect targets it follows are its word
 * alone. imaged therefore holds every connection to the same rule whatever
 * the helper says it is for: the authority must be a well-formed host[:port]
 * with the port it names (80 or 443 when it names none); a blocked
 * [registry.HOST] is refused; a listed one (or any, with [policy]
 * allow_private_registries) is connected as configured; any other host is
 * connected only on addresses the registries policy lets through
 * (registry_policy.h: public ones), checked on the very addresses imaged
 * resolves and connects to. A refusal is logged here, with the image of
 * the pull, and its message goes back to the helper (and on to the pull's
 * caller) as the registries policy words it.
 *
 * Through a proxy (imaged's own environment, imaged/proxy.h, for the
 * authority's host and tls, the URL's scheme: the helper's word only picks
 * which of imaged's proxies applies) imaged opens the tunnel and hands it
 * over: the registry is held to the same rule by name (blocked refused,
 * listed passes, any other must resolve here only to addresses the policy
 * lets through, or not resolve: the proxy may know it), or on its
 * addresses for the proxies that take one (socks4, socks5). The helper
 * never names the proxy, and reaches through it only what imaged asked. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The first check of fetch_connect: authority is "host", "host:PORT" or
 * "[v6]:PORT" with PORT equal to port, or names no port and port is 80 or
 * 443. 0 with host (hostlen bytes) the host alone (brackets dropped);
 * -EINVAL for a malformed authority or a port out of 1..65535, -EPERM for a
 * port that is not the authority's; err says why. */
int fetch_authority_check(const char *authority, uint32_t port, char *host, size_t hostlen, char *err, size_t errlen);

/* Resolve authority (host[:port] as in the URL) and connect to port.
 * Returns 0 with *fd a connected TCP socket, or negative errno with err
 * saying why: -EINVAL for a malformed authority or port, -EPERM refused
 * (blocked, port not the URL's, the registries policy, an unusable proxy
 * environment), -ENOENT or -EHOSTUNREACH when the name does not resolve,
 * -ECONNREFUSED or -EPROTO when the proxy refuses the tunnel or does not
 * speak its protocol, else connect's error. */
int fetch_connect(const struct criod_config *cfg, const char *image, const char *authority, uint32_t port,
		  bool tls, const char *req, int *fd, char *err, size_t errlen);
