/* A TCP connection to a port on the loopback of the calling thread's
 * network namespace (PortForward: netd on a thread that joined a pod's
 * namespace, spawnd in the host's). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopback.h"
#include "util.h"

static int connect_one(int family, uint16_t port, int64_t deadline)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		r = -errno;
		while (r == -EINPROGRESS || r == -EINTR) {
			int64_t left = (deadline - now_monotonic_ns()) / 1000000;
			if (left <= 0) {
				r = -ETIMEDOUT;
				break;
			}
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
			if (n < 0 && errno != EINTR) {
				r = -errno;
				break;
			}
			if (n <= 0)
				continue;
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				r = -errno;
			else
				r = -soerr;
		}
	}
	if (r == 0) {
		/* Blocking again: the receiver picks its own mode. */
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			r = -errno;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int loopback_connect(uint16_t port, int timeout_ms, int *fd)
{
	int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	int r4 = connect_one(AF_INET, port, deadline);
	if (r4 >= 0) {
		*fd = r4;
		return 0;
	}
	if (r4 == -ETIMEDOUT)
		return r4;
	int r6 = connect_one(AF_INET6, port, deadline);
	if (r6 >= 0) {
		*fd = r6;
		return 0;
	}
	/* No IPv6 loopback here: what IPv4 said. */
	if (r6 == -EAFNOSUPPORT || r6 == -EADDRNOTAVAIL || r6 == -ENETUNREACH)
		return r4;
	return r4 == -ECONNREFUSED ? r6 : r4;
}
