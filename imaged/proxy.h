/* The proxies a pull goes through, as libcurl would take them from the
 * environment: https_proxy or HTTPS_PROXY for https URLs, http_proxy for
 * http URLs, all_proxy or ALL_PROXY for either, none for a host no_proxy
 * (or NO_PROXY) names.
 *
 * imaged-fetch has no network and uses no proxy itself: imaged, which
 * connects for it (imaged/fetch_connect.h), reads its own environment
 * here, picks the proxy for the connection's host, opens the tunnel
 * (HTTP CONNECT, SOCKS4/4a, SOCKS5/5h) and hands the helper a socket
 * that reaches the registry through it. So the registries policy is
 * imaged's to apply to the registry's name (and, for the schemes that
 * resolve here, to its addresses), never the helper's word about where
 * its proxy would take it. An https:// proxy (TLS to the proxy) cannot be
 * handed over as a plain socket: with one configured, imaged-fetch keeps
 * the host's network and curl goes through it itself (imaged/fetch.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define PROXY_HOST_MAX 256
#define PROXY_CRED_MAX 256

struct proxy {
	char var[16];                       /* the variable it came from */
	char scheme[8];                     /* http, https, socks4, socks4a, socks5, socks5h */
	char host[PROXY_HOST_MAX];          /* without brackets */
	char authority[PROXY_HOST_MAX + 8]; /* host:port, "[v6]:port" */
	unsigned port;
	bool local_dns; /* socks4, socks5: the registry's name is resolved here */
	bool has_cred;
	char user[PROXY_CRED_MAX], pass[PROXY_CRED_MAX]; /* percent-decoded */
};

/* Parse one proxy URL as curl does: [scheme://][user[:password]@]host[:port][/]
 * (no scheme: http; no port: 1080, 443 for https). 0, or -EINVAL with err
 * naming the problem, -EPROTONOSUPPORT for a scheme other than those
 * above. */
int proxy_parse(const char *url, struct proxy *out, char *err, size_t errlen);

/* Does a no_proxy list (comma- or space-separated host names, ".suffix",
 * IP addresses or CIDR blocks, or "*") name host (no port, no brackets)? */
bool proxy_exempt(const char *list, const char *host);

/* The proxy for a connection to host (no port, no brackets) of an https
 * (tls) or http URL, from the environment: 1 with *out, 0 for none (no
 * variable, or no_proxy names host), or the variable's parse error with
 * its name in err. */
int proxy_select(const char *host, bool tls, struct proxy *out, char *err, size_t errlen);

/* Can imaged open a tunnel through every proxy the environment names? 0,
 * or an error naming the variable that cannot be used (an https:// proxy:
 * -EPROTONOSUPPORT; unparsable: -EINVAL). *any says whether one is set. */
int proxy_env_tunnelable(bool *any, char *err, size_t errlen);

/* Open a tunnel to host:port through the proxy fd is connected to
 * (blocking or not; each step waited for at most timeout_ms): HTTP
 * CONNECT (2xx expected), SOCKS4a/SOCKS5h with the name, SOCKS4/SOCKS5
 * with addr (imaged's own resolution of host, which it checked; SOCKS4:
 * IPv4 only). Reads nothing past the proxy's answer. 0, or negative errno
 * with err saying what the proxy answered: -ECONNREFUSED for a refusal,
 * -EPROTO for an answer that is not the protocol's, -ETIMEDOUT. */
int proxy_tunnel(int fd, const struct proxy *p, const char *host, unsigned port, const struct sockaddr *addr,
		 int timeout_ms, char *err, size_t errlen);
