/* imaged's answer to imaged-fetch's FetchConnect; see fetch_connect.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fetch_connect.h"
#include "log.h"
#include "proxy.h"
#include "registry_policy.h"
#include "util.h"

#define CONNECT_TIMEOUT_MS 15000 /* libcurl's CONNECT_TIMEOUT_S in the helper */

/* authority is "host", "host:PORT" or "[v6]:PORT" with PORT the port asked
 * for; without one, port is the scheme's (80 or 443). */
int fetch_authority_check(const char *authority, uint32_t port, char *host, size_t hostlen, char *err, size_t errlen)
{
	size_t n = strlen(authority);
	if (n == 0 || n > HOSTPORT_MAX - 1 || str_has_ctl(authority) || strpbrk(authority, " /?#@\\"))
		return errf(err, errlen, -EINVAL, "FetchConnect: authority is not host[:port]");
	if (port == 0 || port > 65535)
		return errf(err, errlen, -EINVAL, "FetchConnect: port %u is out of range", port);
	if (!hostport_host(authority, host, hostlen))
		return errf(err, errlen, -EINVAL, "FetchConnect: authority \"%s\" is not host[:port]", authority);
	const char *rest = authority + strlen(host) + (authority[0] == '[' ? 2 : 0);
	if (*rest == '\0') {
		if (port != 80 && port != 443)
			return errf(err, errlen, -EPERM,
				    "FetchConnect: port %u for \"%s\", whose URL names no port (80 or 443)", port,
				    authority);
		return 0;
	}
	char want[16];
	snprintf(want, sizeof(want), ":%u", port);
	if (strcmp(rest, want) != 0)
		return errf(err, errlen, -EPERM, "FetchConnect: port %u is not the port of \"%s\"", port, authority);
	return 0;
}

/* A non-blocking connect, waited for at most CONNECT_TIMEOUT_MS. */
static int connect_one(const struct addrinfo *ai, int *out)
{
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			r = -errno;
		else {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int e = 0;
			socklen_t el = sizeof(e);
			int n = poll(&p, 1, CONNECT_TIMEOUT_MS);
			if (n == 0)
				r = -ETIMEDOUT;
			else if (n < 0)
				r = -errno;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
				r = -errno;
			else if (e)
				r = -e;
		}
	}
	/* The helper's libcurl takes it as it would its own: blocking mode is
	 * curl's to set. */
	if (r < 0) {
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

/* Resolve host and try each address the registries policy lets through:
 * connect to it (pick NULL), or, for a proxy that takes an address, keep
 * the first in *pick (IPv4 only with v4only) without connecting. */
static int resolve_checked(const struct criod_config *cfg, const char *image, const char *authority, const char *host,
			   uint32_t port, const char *req, struct sockaddr_storage *pick, bool v4only, int *out,
			   char *err, size_t errlen)
{
	char sport[8];
	snprintf(sport, sizeof(sport), "%u", port);
	struct addrinfo hints = {.ai_family = v4only ? AF_INET : AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_protocol = IPPROTO_TCP};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(host, sport, &hints, &res);
	if (g != 0) {
		log_warn(req, "cannot resolve a registry host", "image=%s authority=\"%s\" error=\"%s\"", image, authority,
			 gai_strerror(g));
		return errf(err, errlen, g == EAI_NONAME || g == EAI_NODATA ? -ENOENT : -EHOSTUNREACH,
			    "cannot resolve %s: %s", host, gai_strerror(g));
	}
	struct sockaddr_storage lit;
	bool literal = hostport_literal(authority, &lit) == 1;
	int r = -EHOSTUNREACH;
	char why[512] = "";
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		/* Listed hosts (and every host with allow_private_registries)
		 * pass; any other is checked on each address it resolves to. */
		char addr[INET6_ADDRSTRLEN];
		int c = registry_policy_check_addr(cfg, authority, ai->ai_addr, literal, why, sizeof(why));
		addr_format(ai->ai_addr, addr, sizeof(addr));
		if (c < 0) {
			log_warn(req, "connection refused by the registries policy",
				 "image=%s registry=%s address=%s error=\"%s\"", image, authority, addr, why);
			snprintf(err, errlen, "%s", why);
			r = c;
			continue;
		}
		if (pick) {
			memcpy(pick, ai->ai_addr, ai->ai_addrlen);
			freeaddrinfo(res);
			return 0;
		}
		int e = connect_one(ai, out);
		if (e == 0) {
			freeaddrinfo(res);
			return 0;
		}
		log_debug(req, "cannot connect to a registry address", "registry=%s address=%s error=\"%s\"", authority,
			  addr, strerror(-e));
		if (r != -EPERM) {
			r = e;
			snprintf(err, errlen, "cannot connect to %s (%s): %s", authority, addr, strerror(-e));
		}
	}
	freeaddrinfo(res);
	return r;
}

/* Through the environment's proxy p: the registry held to the policy by
 * name (the proxy resolves it) or, for socks4:// and socks5://, on the
 * addresses resolved here; then a connection to the proxy, wherever the
 * administrator put it, and the tunnel. */
static int connect_proxied(const struct criod_config *cfg, const char *image, const char *authority,
			   const char *host, uint32_t port, const struct proxy *p, const char *req, int *out, char *err,
			   size_t errlen)
{
	struct sockaddr_storage ta = {0};
	int r;
	if (p->local_dns)
		r = resolve_checked(cfg, image, authority, host, port, req, &ta, strncmp(p->scheme, "socks4", 6) == 0,
				    NULL, err, errlen);
	else {
		r = registry_policy_check_name(cfg, authority, err, errlen);
		if (r < 0)
			log_warn(req, "connection refused by the registries policy",
				 "image=%s registry=%s proxy=%s error=\"%s\"", image, authority, p->authority, err);
	}
	if (r < 0)
		return r;
	char sport[8];
	snprintf(sport, sizeof(sport), "%u", p->port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(p->host, sport, &hints, &res);
	if (g != 0) {
		log_warn(req, "cannot resolve the proxy", "proxy=%s variable=%s error=\"%s\"", p->authority, p->var,
			 gai_strerror(g));
		return errf(err, errlen, -EHOSTUNREACH, "cannot resolve proxy %s (%s): %s", p->host, p->var,
			    gai_strerror(g));
	}
	int fd = -1;
	r = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		if ((r = connect_one(ai, &fd)) < 0)
			fd = -1;
	freeaddrinfo(res);
	if (fd < 0) {
		log_warn(req, "cannot connect to the proxy", "proxy=%s variable=%s error=\"%s\"", p->authority, p->var,
			 strerror(-r));
		return errf(err, errlen, r, "cannot connect to proxy %s (%s): %s", p->authority, p->var, strerror(-r));
	}
	r = proxy_tunnel(fd, p, host, port, p->local_dns ? (struct sockaddr *)&ta : NULL, CONNECT_TIMEOUT_MS, err,
			 errlen);
	if (r < 0) {
		close(fd);
		log_warn(req, "no tunnel through the proxy", "image=%s registry=%s proxy=%s error=\"%s\"", image,
			 authority, p->authority, err);
		return r;
	}
	log_debug(req, "connected imaged-fetch through its proxy", "image=%s registry=%s proxy=%s", image, authority,
		  p->authority);
	*out = fd;
	return 0;
}

int fetch_connect(const struct criod_config *cfg, const char *image, const char *authority, uint32_t port, bool tls,
		  const char *req, int *out, char *err, size_t errlen)
{
	char host[HOSTPORT_MAX];
	int r = fetch_authority_check(authority, port, host, sizeof(host), err, errlen);
	const struct registry_config *rc = r < 0 ? NULL : config_registry(cfg, authority);
	if (r == 0 && rc && rc->blocked)
		r = errf(err, errlen, -EPERM, "registry %s is blocked by configuration", authority);
	struct proxy px;
	char why[512] = "";
	int pr = r < 0 ? 0 : proxy_select(host, tls, &px, why, sizeof(why));
	if (pr < 0)
		r = errf(err, errlen, -EPERM, "imaged's proxy environment cannot be used: %s", why);
	if (r < 0) {
		log_warn(req, "refused a connection imaged-fetch asked for", "image=%s authority=\"%s\" port=%u error=\"%s\"",
			 image, authority, port, err);
		return r;
	}
	if (pr == 1)
		return connect_proxied(cfg, image, authority, host, port, &px, req, out, err, errlen);
	return resolve_checked(cfg, image, authority, host, port, req, NULL, false, out, err, errlen);
}
