/* Unit tests for common/loopback.c: PortForward's connect to the loopback
 * (in this process's network namespace). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopback.h"

/* A listener on addr (127.0.0.1 or ::1) at an ephemeral port; -1 if the
 * family is not there. */
static int listener(int family, uint16_t *port)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		int one = 1;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static int peer_family(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	assert_int_equal(getpeername(fd, (struct sockaddr *)&ss, &len), 0);
	return ss.ss_family;
}

static void test_connects_to_ipv4(void **state)
{
	uint16_t port;
	int l = listener(AF_INET, &port);
	assert_true(l >= 0);
	int fd = -1;
	assert_int_equal(loopback_connect(port, 5000, &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(peer_family(fd), AF_INET);
	/* blocking and close-on-exec for the receiver */
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	int a = accept(l, NULL, NULL);
	assert_true(a >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	char c = 0;
	assert_int_equal(read(a, &c, 1), 1);
	assert_int_equal(c, 'x');
	close(a);
	close(fd);
	close(l);
}

static void test_falls_back_to_ipv6(void **state)
{
	uint16_t port;
	int l = listener(AF_INET6, &port);
	if (l < 0)
		skip(); /* no IPv6 loopback here */
	int fd = -1;
	assert_int_equal(loopback_connect(port, 5000, &fd), 0);
	assert_int_equal(peer_family(fd), AF_INET6);
	close(fd);
	close(l);
}

static void test_refused(void **state)
{
	uint16_t port;
	/* a port that was just free on both families: nothing listens */
	int l = listener(AF_INET, &port);
	assert_true(l >= 0);
	close(l);
	int fd = -1;
	assert_int_equal(loopback_connect(port, 5000, &fd), -ECONNREFUSED);
	assert_int_equal(fd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connects_to_ipv4),
		cmocka_unit_test(test_falls_back_to_ipv6),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
