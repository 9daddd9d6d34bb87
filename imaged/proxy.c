/* Proxy URLs from the environment and the tunnels through them; see
 * proxy.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base64.h"
#include "macro.h"
#include "proxy.h"
#include "util.h"

static const char *const VARS[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_';
}

int proxy_parse(const char *url, struct proxy *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!url || !*url || strlen(url) > 2048 || str_has_ctl(url) || strchr(url, ' '))
		return errf(err, errlen, -EINVAL, "proxy URL is empty, too long or holds a space or control byte");
	const char *p = url, *sep = strstr(url, "://");
	snprintf(out->scheme, sizeof(out->scheme), "http");
	if (sep) {
		size_t n = (size_t)(sep - url);
		static const char *const ok[] = {"http", "https", "socks4", "socks4a", "socks5", "socks5h"};
		bool found = false;
		for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
			if (n == strlen(ok[i]) && strncasecmp(url, ok[i], n) == 0) {
				snprintf(out->scheme, sizeof(out->scheme), "%s", ok[i]);
				found = true;
			}
		if (!found)
			return errf(err, errlen, -EPROTONOSUPPORT,
				    "proxy scheme %.*s is not http, https, socks4, socks4a, socks5 or socks5h",
				    (int)(n > 16 ? 16 : n), url);
		p = sep + 3;
	}
	out->local_dns = strcmp(out->scheme, "socks4") == 0 || strcmp(out->scheme, "socks5") == 0;
	/* the authority ends at the path; credentials end at its last @ */
	size_t alen = strcspn(p, "/?#");
	const char *at = memrchr(p, '@', alen);
	if (at) {
		size_t clen = (size_t)(at - p);
		const char *colon = memchr(p, ':', clen);
		size_t ulen = colon ? (size_t)(colon - p) : clen;
		/* a credential goes into a header line: no control byte */
		if (!pct_decode(p, ulen, false, out->user, sizeof(out->user)) || str_has_ctl(out->user) ||
		    (colon && (!pct_decode(colon + 1, clen - ulen - 1, false, out->pass, sizeof(out->pass)) ||
			       str_has_ctl(out->pass))))
			return errf(err, errlen, -EINVAL,
				    "proxy credentials: a bad %%-escape, a control byte, or longer than %d bytes",
				    PROXY_CRED_MAX - 1);
		out->has_cred = true;
		alen -= (size_t)(at + 1 - p);
		p = at + 1;
	}
	const char *end = p + alen, *port_at = NULL;
	size_t hlen;
	if (*p == '[') {
		const char *rb = memchr(p, ']', alen);
		if (!rb || rb == p + 1)
			return errf(err, errlen, -EINVAL, "proxy host: an unclosed or empty [IPv6] literal");
		hlen = (size_t)(rb - p - 1);
		if (hlen >= sizeof(out->host))
			return errf(err, errlen, -EINVAL, "proxy host is too long");
		memcpy(out->host, p + 1, hlen);
		for (size_t i = 0; i < hlen; i++)
			if (!strchr("0123456789abcdefABCDEF:.", out->host[i]))
				return errf(err, errlen, -EINVAL, "proxy host: not an IPv6 literal");
		if (rb + 1 < end && rb[1] != ':')
			return errf(err, errlen, -EINVAL, "proxy host: bytes after the ]");
		port_at = rb + 1 < end ? rb + 2 : NULL;
	} else {
		const char *colon = memchr(p, ':', alen);
		hlen = (size_t)((colon ? colon : end) - p);
		if (hlen == 0 || hlen >= sizeof(out->host))
			return errf(err, errlen, -EINVAL, "proxy host is empty or too long");
		for (size_t i = 0; i < hlen; i++)
			if (!host_char(p[i]))
				return errf(err, errlen, -EINVAL, "proxy host holds a byte a host name cannot");
		memcpy(out->host, p, hlen);
		port_at = colon ? colon + 1 : NULL;
	}
	out->port = strcmp(out->scheme, "https") == 0 ? 443 : 1080;
	if (port_at) {
		size_t plen = (size_t)(end - port_at);
		unsigned v = 0;
		if (plen == 0 || plen > 5)
			return errf(err, errlen, -EINVAL, "proxy port is empty or too long");
		for (size_t i = 0; i < plen; i++) {
			if (port_at[i] < '0' || port_at[i] > '9')
				return errf(err, errlen, -EINVAL, "proxy port is not a number");
			v = v * 10 + (unsigned)(port_at[i] - '0');
		}
		if (v == 0 || v > 65535)
			return errf(err, errlen, -EINVAL, "proxy port %u is out of range", v);
		out->port = v;
	}
	snprintf(out->authority, sizeof(out->authority), strchr(out->host, ':') ? "[%s]:%u" : "%s:%u", out->host,
		 out->port);
	return 0;
}

/* Is host (a literal) inside the block "addr[/bits]"? -1: entry not an
 * address block. */
static int cidr_match(const char *entry, const char *host)
{
	char a[64];
	const char *slash = strchr(entry, '/');
	size_t n = slash ? (size_t)(slash - entry) : strlen(entry);
	if (n >= sizeof(a))
		return -1;
	memcpy(a, entry, n);
	a[n] = '\0';
	unsigned char e[16], h[16];
	int fam = strchr(a, ':') ? AF_INET6 : AF_INET, len = fam == AF_INET6 ? 16 : 4;
	if (inet_pton(fam, a, e) != 1)
		return -1;
	if (inet_pton(fam, host, h) != 1)
		return 0; /* another family, or a name */
	long bits = len * 8;
	if (slash) {
		char *q;
		bits = strtol(slash + 1, &q, 10);
		if (*q || q == slash + 1 || bits < 0 || bits > len * 8)
			return -1;
	}
	for (long i = 0; i < bits; i++)
		if (((e[i / 8] ^ h[i / 8]) >> (7 - i % 8)) & 1)
			return 0;
	return 1;
}

bool proxy_exempt(const char *list, const char *host)
{
	if (!list || !host || !*host)
		return false;
	size_t hl = strlen(host);
	while (hl && host[hl - 1] == '.')
		hl--;
	for (const char *p = list; *p;) {
		p += strspn(p, ", \t");
		size_t n = strcspn(p, ", \t");
		if (n == 0)
			break;
		char entry[PROXY_HOST_MAX + 8];
		if (n < sizeof(entry)) {
			memcpy(entry, p, n);
			entry[n] = '\0';
			char *e = entry;
			if (strcmp(e, "*") == 0)
				return true;
			int c = cidr_match(e, host);
			if (c == 1)
				return true;
			if (c < 0) {
				while (*e == '.')
					e++;
				size_t el = strlen(e);
				while (el && e[el - 1] == '.')
					el--;
				if (el && el <= hl && strncasecmp(host + hl - el, e, el) == 0 &&
				    (el == hl || host[hl - el - 1] == '.'))
					return true;
			}
		}
		p += n;
	}
	return false;
}

int proxy_select(const char *host, bool tls, struct proxy *out, char *err, size_t errlen)
{
	static const char *const https_vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
	/* not HTTP_PROXY: a CGI-style environment may set it from a request */
	static const char *const http_vars[] = {"http_proxy", "all_proxy", "ALL_PROXY"};
	const char *const *vars = tls ? https_vars : http_vars;
	size_t nv = tls ? ARRAY_SIZE(https_vars) : ARRAY_SIZE(http_vars);
	for (size_t i = 0; i < nv; i++) {
		const char *v = getenv(vars[i]);
		if (!v || !*v)
			continue;
		char why[256];
		int r = proxy_parse(v, out, why, sizeof(why));
		if (r < 0)
			return errf(err, errlen, r, "%s: %s", vars[i], why);
		snprintf(out->var, sizeof(out->var), "%s", vars[i]);
		const char *np = getenv("no_proxy");
		if (!np || !*np)
			np = getenv("NO_PROXY");
		return proxy_exempt(np, host) ? 0 : 1;
	}
	return 0;
}

int proxy_env_tunnelable(bool *any, char *err, size_t errlen)
{
	*any = false;
	for (size_t i = 0; i < ARRAY_SIZE(VARS); i++) {
		const char *v = getenv(VARS[i]);
		if (!v || !*v)
			continue;
		*any = true;
		struct proxy p;
		char why[256];
		int r = proxy_parse(v, &p, why, sizeof(why));
		if (r < 0)
			return errf(err, errlen, r, "%s: %s", VARS[i], why);
		if (strcmp(p.scheme, "https") == 0)
			return errf(err, errlen, -EPROTONOSUPPORT,
				    "%s: an https:// proxy (a tunnel inside TLS cannot be handed over as a socket)",
				    VARS[i]);
	}
	return 0;
}

static int io_wait(int fd, short ev, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int n;
	do
		n = poll(&p, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n == 0 ? -ETIMEDOUT : 0;
}

static int send_all(int fd, const void *buf, size_t n, int timeout_ms)
{
	const char *b = buf;
	while (n) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			int r = errno == EINTR ? 0 : io_wait(fd, POLLOUT, timeout_ms);
			if (r < 0)
				return r;
			continue;
		}
		if (w < 0)
			return -errno;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
	char *b = buf;
	while (n) {
		ssize_t g = recv(fd, b, n, MSG_DONTWAIT);
		if (g < 0 && (errno == EAGAIN || errno == EINTR)) {
			int r = errno == EINTR ? 0 : io_wait(fd, POLLIN, timeout_ms);
			if (r < 0)
				return r;
			continue;
		}
		if (g < 0)
			return -errno;
		if (g == 0)
			return -ECONNRESET;
		b += g;
		n -= (size_t)g;
	}
	return 0;
}

#define HEAD_MAX 8192

static int tunnel_http(int fd, const struct proxy *p, const char *target, int tmo, char *err, size_t errlen)
{
	char req[2 * PROXY_HOST_MAX + 4 * (2 * PROXY_CRED_MAX + 2) / 3 + 128];
	int n = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target);
	if (p->has_cred) {
		char cred[2 * PROXY_CRED_MAX + 2], b64[4 * (sizeof(cred) + 2) / 3 + 1];
		int cl = snprintf(cred, sizeof(cred), "%s:%s", p->user, p->pass);
		base64_encode((const uint8_t *)cred, (size_t)cl, b64);
		explicit_bzero(cred, sizeof(cred));
		n += snprintf(req + n, sizeof(req) - (size_t)n, "Proxy-Authorization: Basic %s\r\n", b64);
		explicit_bzero(b64, sizeof(b64));
	}
	n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	int r = send_all(fd, req, (size_t)n, tmo);
	explicit_bzero(req, sizeof(req));
	if (r < 0)
		return errf(err, errlen, r, "proxy %s: cannot send CONNECT: %s", p->authority, strerror(-r));
	/* the answer's head, a byte at a time: what follows is the registry's */
	char head[HEAD_MAX + 1];
	size_t k = 0;
	while (k < 4 || memcmp(head + k - 4, "\r\n\r\n", 4) != 0) {
		if (k == HEAD_MAX)
			return errf(err, errlen, -EPROTO, "proxy %s: an answer to CONNECT longer than %d bytes",
				    p->authority, HEAD_MAX);
		r = recv_exact(fd, head + k, 1, tmo);
		if (r < 0)
			return errf(err, errlen, r, "proxy %s: no answer to CONNECT %s: %s", p->authority, target,
				    r == -ECONNRESET ? "closed" : strerror(-r));
		k++;
	}
	head[k] = '\0';
	size_t line = strcspn(head, "\r");
	unsigned code = 0;
	if (strncmp(head, "HTTP/1.", 7) != 0 || sscanf(head + 8, " %3u", &code) != 1 || code < 100 || code > 599)
		return errf(err, errlen, -EPROTO, "proxy %s: an answer to CONNECT that is not HTTP", p->authority);
	for (size_t i = 0; i < line; i++)
		if (char_is_ctl(head[i]))
			head[i] = '?';
	if (code < 200 || code > 299)
		return errf(err, errlen, -ECONNREFUSED, "proxy %s refused the tunnel to %s: %.*s", p->authority,
			    target, (int)(line > 200 ? 200 : line), head);
	return 0;
}

static const char *socks5_reason(unsigned rep)
{
	static const char *const why[] = {"", "general failure", "not allowed by its rules", "network unreachable",
					  "host unreachable", "connection refused", "TTL expired",
					  "command not supported", "address type not supported"};
	return rep < ARRAY_SIZE(why) ? why[rep] : "an unknown reply";
}

static int tunnel_socks5(int fd, const struct proxy *p, const char *host, unsigned port, const struct sockaddr *addr,
			 int tmo, char *err, size_t errlen)
{
	unsigned char b[600];
	unsigned char greet[4] = {5, p->has_cred ? 2 : 1, 0, 2};
	int r = send_all(fd, greet, p->has_cred ? 4 : 3, tmo);
	if (r == 0)
		r = recv_exact(fd, b, 2, tmo);
	if (r < 0)
		return errf(err, errlen, r, "proxy %s: SOCKS5 greeting: %s", p->authority, strerror(-r));
	if (b[0] != 5)
		return errf(err, errlen, -EPROTO, "proxy %s: not a SOCKS5 answer", p->authority);
	if (b[1] == 2 && p->has_cred) {
		size_t ul = strlen(p->user), pl = strlen(p->pass), k = 0;
		if (ul > 255 || pl > 255)
			return errf(err, errlen, -EINVAL, "proxy %s: SOCKS5 credentials longer than 255 bytes",
				    p->authority);
		b[k++] = 1;
		b[k++] = (unsigned char)ul;
		memcpy(b + k, p->user, ul);
		k += ul;
		b[k++] = (unsigned char)pl;
		memcpy(b + k, p->pass, pl);
		k += pl;
		r = send_all(fd, b, k, tmo);
		explicit_bzero(b, sizeof(b));
		if (r == 0)
			r = recv_exact(fd, b, 2, tmo);
		if (r < 0)
			return errf(err, errlen, r, "proxy %s: SOCKS5 login: %s", p->authority, strerror(-r));
		if (b[1] != 0)
			return errf(err, errlen, -ECONNREFUSED, "proxy %s refused the credentials", p->authority);
	} else if (b[1] != 0) {
		return errf(err, errlen, -ECONNREFUSED, "proxy %s accepts none of the SOCKS5 methods offered%s",
			    p->authority, p->has_cred ? "" : " (it may want credentials)");
	}
	size_t k = 0;
	b[k++] = 5, b[k++] = 1, b[k++] = 0;
	struct in6_addr a6;
	struct in_addr a4;
	if (addr && addr->sa_family == AF_INET) {
		b[k++] = 1;
		memcpy(b + k, &((const struct sockaddr_in *)addr)->sin_addr, 4);
		k += 4;
	} else if (addr && addr->sa_family == AF_INET6) {
		b[k++] = 4;
		memcpy(b + k, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
		k += 16;
	} else if (inet_pton(AF_INET, host, &a4) == 1) {
		b[k++] = 1;
		memcpy(b + k, &a4, 4);
		k += 4;
	} else if (inet_pton(AF_INET6, host, &a6) == 1) {
		b[k++] = 4;
		memcpy(b + k, &a6, 16);
		k += 16;
	} else {
		size_t hl = strlen(host);
		if (hl > 255)
			return errf(err, errlen, -EINVAL, "SOCKS5: host name longer than 255 bytes");
		b[k++] = 3;
		b[k++] = (unsigned char)hl;
		memcpy(b + k, host, hl);
		k += hl;
	}
	b[k++] = (unsigned char)(port >> 8);
	b[k++] = (unsigned char)port;
	r = send_all(fd, b, k, tmo);
	if (r == 0)
		r = recv_exact(fd, b, 4, tmo);
	if (r < 0)
		return errf(err, errlen, r, "proxy %s: SOCKS5 connect: %s", p->authority, strerror(-r));
	if (b[0] != 5)
		return errf(err, errlen, -EPROTO, "proxy %s: not a SOCKS5 answer", p->authority);
	if (b[1] != 0)
		return errf(err, errlen, -ECONNREFUSED, "proxy %s refused the tunnel to %s:%u: %s", p->authority, host,
			    port, socks5_reason(b[1]));
	size_t rest;
	if (b[3] == 1)
		rest = 4 + 2;
	else if (b[3] == 4)
		rest = 16 + 2;
	else if (b[3] == 3) {
		r = recv_exact(fd, b, 1, tmo);
		if (r < 0)
			return errf(err, errlen, r, "proxy %s: SOCKS5 connect: %s", p->authority, strerror(-r));
		rest = b[0] + 2u;
	} else
		return errf(err, errlen, -EPROTO, "proxy %s: a SOCKS5 answer with address type %u", p->authority, b[3]);
	r = recv_exact(fd, b, rest, tmo);
	if (r < 0)
		return errf(err, errlen, r, "proxy %s: SOCKS5 connect: %s", p->authority, strerror(-r));
	return 0;
}

static int tunnel_socks4(int fd, const struct proxy *p, const char *host, unsigned port, const struct sockaddr *addr,
			 int tmo, char *err, size_t errlen)
{
	unsigned char b[16 + PROXY_CRED_MAX + PROXY_HOST_MAX];
	size_t k = 0;
	bool name = strcmp(p->scheme, "socks4a") == 0;
	struct in_addr a4;
	b[k++] = 4, b[k++] = 1;
	b[k++] = (unsigned char)(port >> 8), b[k++] = (unsigned char)port;
	if (addr && addr->sa_family == AF_INET) {
		memcpy(b + k, &((const struct sockaddr_in *)addr)->sin_addr, 4);
		name = false;
	} else if (inet_pton(AF_INET, host, &a4) == 1) {
		memcpy(b + k, &a4, 4);
		name = false;
	} else if (name) {
		memcpy(b + k, "\0\0\0\1", 4); /* 0.0.0.x: the name follows */
	} else {
		return errf(err, errlen, -EAFNOSUPPORT, "proxy %s: SOCKS4 reaches IPv4 addresses only", p->authority);
	}
	k += 4;
	size_t ul = strlen(p->user), hl = strlen(host);
	memcpy(b + k, p->user, ul + 1);
	k += ul + 1;
	if (name) {
		memcpy(b + k, host, hl + 1);
		k += hl + 1;
	}
	int r = send_all(fd, b, k, tmo);
	if (r == 0)
		r = recv_exact(fd, b, 8, tmo);
	if (r < 0)
		return errf(err, errlen, r, "proxy %s: SOCKS4 connect: %s", p->authority, strerror(-r));
	if (b[0] != 0 || b[1] < 0x5a || b[1] > 0x5d)
		return errf(err, errlen, -EPROTO, "proxy %s: not a SOCKS4 answer", p->authority);
	if (b[1] != 0x5a)
		return errf(err, errlen, -ECONNREFUSED, "proxy %s refused the tunnel to %s:%u (SOCKS4 reply %u)",
			    p->authority, host, port, b[1]);
	return 0;
}

int proxy_tunnel(int fd, const struct proxy *p, const char *host, unsigned port, const struct sockaddr *addr,
		 int timeout_ms, char *err, size_t errlen)
{
	if (strncmp(p->scheme, "socks5", 6) == 0)
		return tunnel_socks5(fd, p, host, port, addr, timeout_ms, err, errlen);
	if (strncmp(p->scheme, "socks4", 6) == 0)
		return tunnel_socks4(fd, p, host, port, addr, timeout_ms, err, errlen);
	if (strcmp(p->scheme, "http") != 0)
		return errf(err, errlen, -EPROTONOSUPPORT, "proxy %s: no tunnel through an %s:// proxy", p->authority,
			    p->scheme);
	char target[PROXY_HOST_MAX + 16];
	snprintf(target, sizeof(target), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
	return tunnel_http(fd, p, target, timeout_ms, err, errlen);
}
