/* imaged's proxy code (imaged/proxy.c) as a hostile environment and a
 * hostile proxy feed it: part 0 a proxy URL (proxy_parse, as from
 * http_proxy), part 1 the proxy's answer to the tunnel request, read by
 * proxy_tunnel from one end of a socket pair whose other end holds the
 * answer and then EOF. Oracle beyond the sanitizers: a parsed proxy has a
 * known scheme, a port in 1..65535 and a bracket-free host; proxy_tunnel
 * returns 0 or a negative errno with its message NUL-terminated, and on
 * success has not read past the answer it accepted (what follows it is
 * still readable). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "proxy.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_proxy");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return -1;
	const uint8_t *u, *a;
	size_t ulen, alen;
	fuzz_part(data, size, 0, &u, &ulen);
	fuzz_part(data, size, 1, &a, &alen);
	char *url = fuzz_strndup(u, ulen);
	struct proxy p;
	char err[256];
	memset(err, 'x', sizeof(err));
	int r = proxy_parse(url, &p, err, sizeof(err));
	free(url);
	if (r < 0) {
		if (r != -EINVAL && r != -EPROTONOSUPPORT)
			abort();
		if (!memchr(err, '\0', sizeof(err)))
			abort();
		return 0;
	}
	static const char *const schemes[] = {"http", "https", "socks4", "socks4a", "socks5", "socks5h"};
	bool known = false;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		known |= strcmp(p.scheme, schemes[i]) == 0;
	if (!known || p.port < 1 || p.port > 65535 || strchr(p.host, '[') || strchr(p.host, ']'))
		abort();
	if (strcmp(p.scheme, "https") == 0)
		return 0; /* TLS to the proxy: imaged never tunnels through one */

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	/* The answer, a marker after it, then EOF. A truncated answer may
	 * take its missing bytes from the marker (at most a SOCKS5 bound
	 * name, 257 bytes; an HTTP head never ends in it: no CRLF), so the
	 * marker is longer than that and ends in a NUL that no success may
	 * have read. */
	static char marker[1024];
	if (!marker[0])
		memset(marker, 'M', sizeof(marker) - 1);
	if ((alen && write(sv[1], a, alen) != (ssize_t)alen) || write(sv[1], marker, sizeof(marker)) != sizeof(marker))
		abort();
	shutdown(sv[1], SHUT_WR);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(443)};
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	memset(err, 'x', sizeof(err));
	r = proxy_tunnel(sv[0], &p, "registry.example", 443, (const struct sockaddr *)&sin, 200, err, sizeof(err));
	if (r > 0 || (r < 0 && !memchr(err, '\0', sizeof(err))))
		abort();
	if (r == 0) {
		/* Whatever followed the accepted answer is still there: at least
		 * the marker's end. */
		char rest[16384 + sizeof(marker)];
		ssize_t n = recv(sv[0], rest, sizeof(rest), MSG_DONTWAIT);
		if (n <= 0 || rest[n - 1] != '\0')
			abort();
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}
