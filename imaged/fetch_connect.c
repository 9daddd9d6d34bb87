/* imaged's answer to imaged-fetch's FetchConnect; see fetch_connect.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fetch_connect.h"
#include "log.h"
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

int fetch_connect(const struct criod_config *cfg, const char *image, const char *authority, uint32_t port,
		  const char *req, int *out, char *err, size_t errlen)
{
	char host[HOSTPORT_MAX], sport[8];
	int r = fetch_authority_check(authority, port, host, sizeof(host), err, errlen);
	const struct registry_config *rc = r < 0 ? NULL : config_registry(cfg, authority);
	if (r == 0 && rc && rc->blocked)
		r = errf(err, errlen, -EPERM, "registry %s is blocked by configuration", authority);
	if (r < 0) {
		log_warn(req, "refused a connection imaged-fetch asked for", "image=%s authority=\"%s\" port=%u error=\"%s\"",
			 image, authority, port, err);
		return r;
	}
	snprintf(sport, sizeof(sport), "%u", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
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
	r = -EHOSTUNREACH;
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
