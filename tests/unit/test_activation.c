/* Unit tests for common/activation.c: systemd's socket hand-over (fd 3,
 * LISTEN_PID, LISTEN_FDS) taken only when it is for this process and is
 * one listening AF_UNIX stream socket; the variables are gone afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "activation.h"

static char sock_path[PATH_MAX];

static void set_env(const char *pid, const char *fds)
{
	char mine[32];

	snprintf(mine, sizeof(mine), "%ld", (long)getpid());
	assert_int_equal(setenv("LISTEN_PID", pid ? pid : mine, 1), 0);
	assert_int_equal(setenv("LISTEN_FDS", fds, 1), 0);
	assert_int_equal(setenv("LISTEN_FDNAMES", "criod.socket", 1), 0);
}

static void assert_env_gone(void)
{
	assert_null(getenv("LISTEN_PID"));
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_FDNAMES"));
}

/* A socket of the given type at fd 3, bound to sock_path and listening if asked. */
static void put_at_3(int type, bool bind_it, bool listen_it)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type, 0);

	assert_true(fd >= 0);
	if (bind_it) {
		snprintf(sock_path, sizeof(sock_path), "/tmp/test_activation.%ld.sock", (long)getpid());
		unlink(sock_path);
		strcpy(sa.sun_path, sock_path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	if (listen_it)
		assert_int_equal(listen(fd, 4), 0);
	if (fd != ACTIVATION_FD) {
		assert_int_equal(dup2(fd, ACTIVATION_FD), ACTIVATION_FD);
		close(fd);
	}
}

static int teardown(void **state)
{
	close(ACTIVATION_FD);
	if (sock_path[0])
		unlink(sock_path);
	sock_path[0] = '\0';
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return 0;
}

static void test_takes_a_listening_unix_stream_socket(void **state)
{
	char path[108];
	int fd = -1;

	put_at_3(SOCK_STREAM, true, true);
	set_env(NULL, "1");
	assert_int_equal(activation_listen_fd(&fd, path, sizeof(path)), 1);
	assert_int_equal(fd, ACTIVATION_FD);
	assert_string_equal(path, sock_path);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_env_gone();
}

static void test_nothing_passed(void **state)
{
	char path[108] = "x";
	int fd = 7;

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	assert_int_equal(activation_listen_fd(&fd, path, sizeof(path)), 0);
	assert_int_equal(fd, -1);
	assert_string_equal(path, "");
}

/* LISTEN_PID of another process (inherited by accident): ignored, and
 * the variables still removed so nothing further down takes them. */
static void test_for_another_process(void **state)
{
	int fd = 7;

	put_at_3(SOCK_STREAM, true, true);
	set_env("1", "1");
	assert_int_equal(activation_listen_fd(&fd, NULL, 0), 0);
	assert_int_equal(fd, -1);
	assert_env_gone();
	assert_int_equal(fcntl(ACTIVATION_FD, F_GETFD) & FD_CLOEXEC, 0); /* untouched */
}

static void test_refused(int type, bool bind_it, bool listen_it, const char *fds)
{
	int fd = 7;

	put_at_3(type, bind_it, listen_it);
	set_env(NULL, fds);
	assert_true(activation_listen_fd(&fd, NULL, 0) < 0);
	assert_int_equal(fd, -1);
	assert_env_gone();
}

static void test_two_sockets_refused(void **state)
{
	test_refused(SOCK_STREAM, true, true, "2");
}

static void test_zero_sockets_refused(void **state)
{
	test_refused(SOCK_STREAM, true, true, "0");
}

static void test_garbage_count_refused(void **state)
{
	test_refused(SOCK_STREAM, true, true, "1x");
}

static void test_not_listening_refused(void **state)
{
	test_refused(SOCK_STREAM, true, false, "1");
}

static void test_datagram_refused(void **state)
{
	test_refused(SOCK_DGRAM, true, false, "1");
}

static void test_not_a_socket_refused(void **state)
{
	int fd = 7;
	int p[2];

	assert_int_equal(pipe(p), 0);
	if (p[1] == ACTIVATION_FD) {
		int n = dup(p[1]);
		close(p[1]);
		p[1] = n;
	}
	if (p[0] != ACTIVATION_FD) {
		assert_int_equal(dup2(p[0], ACTIVATION_FD), ACTIVATION_FD);
		close(p[0]);
	}
	close(p[1]);
	set_env(NULL, "1");
	assert_int_equal(activation_listen_fd(&fd, NULL, 0), -ENOTSOCK);
	assert_int_equal(fd, -1);
	assert_env_gone();
}

static void test_inet_refused(void **state)
{
	int fd = 7, s = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(s >= 0);
	assert_int_equal(listen(s, 1), 0);
	if (s != ACTIVATION_FD) {
		assert_int_equal(dup2(s, ACTIVATION_FD), ACTIVATION_FD);
		close(s);
	}
	set_env(NULL, "1");
	assert_int_equal(activation_listen_fd(&fd, NULL, 0), -EAFNOSUPPORT);
	assert_int_equal(fd, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_takes_a_listening_unix_stream_socket, teardown),
		cmocka_unit_test_teardown(test_nothing_passed, teardown),
		cmocka_unit_test_teardown(test_for_another_process, teardown),
		cmocka_unit_test_teardown(test_two_sockets_refused, teardown),
		cmocka_unit_test_teardown(test_zero_sockets_refused, teardown),
		cmocka_unit_test_teardown(test_garbage_count_refused, teardown),
		cmocka_unit_test_teardown(test_not_listening_refused, teardown),
		cmocka_unit_test_teardown(test_datagram_refused, teardown),
		cmocka_unit_test_teardown(test_not_a_socket_refused, teardown),
		cmocka_unit_test_teardown(test_inet_refused, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
