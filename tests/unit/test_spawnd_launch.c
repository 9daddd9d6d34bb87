/* spawnd's launcher (conmon/spawnd_launch.h): the command line it derives
 * for conmon from its own configuration and a request, and what it
 * refuses - a request as a hijacked spawnd would send it; and the standby
 * conmon's message (conmon/conmon_standby.h) that carries that command
 * line. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "conmon_standby.h"
#include "spawnd_launch.h"
#include "util.h"

#define ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct criod_config cfg;
static struct launch_env env = {.cfg = &cfg, .conmon_path = "/usr/libexec/criod/conmon", .criod_uid = 987};

static int setup(void **state)
{
	char *e = NULL;
	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_parse_string(&cfg, "t",
					     "[paths]\nrun_dir = /run/criod\nstate_dir = /var/lib/criod\n"
					     "[policy]\nlog_roots = /var/log/pods, /srv/logs\n"
					     "[runtime.runc]\npath = /usr/sbin/runc\n",
					     &e),
			 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

static struct launch_request good(void)
{
	struct launch_request r = {.magic = LAUNCH_MAGIC, .seq = 1};
	snprintf(r.id, sizeof(r.id), "%s", ID);
	snprintf(r.handler, sizeof(r.handler), "runc");
	snprintf(r.log_path, sizeof(r.log_path), "/var/log/pods/ns_pod_uid/c/0.log");
	return r;
}

static const char *opt(const struct launch_argv *a, const char *name)
{
	for (size_t i = 0; a->argv[i]; i++)
		if (strcmp(a->argv[i], name) == 0)
			return a->argv[i + 1] ? a->argv[i + 1] : "";
	return NULL;
}

static bool flag(const struct launch_argv *a, const char *name) { return opt(a, name) != NULL; }

static void test_argv_derived_from_the_configuration(void **state)
{
	(void)state;
	struct launch_request r = good();
	struct launch_argv a;
	char err[256] = "";

	assert_int_equal(launch_argv_build(&env, &r, &a, err, sizeof(err)), 0);
	assert_string_equal(a.argv[0], "/usr/libexec/criod/conmon");
	assert_string_equal(opt(&a, "--id"), ID);
	assert_string_equal(opt(&a, "--bundle"), "/run/criod/containers/" ID);
	assert_string_equal(opt(&a, "--runtime"), "/usr/sbin/runc");
	assert_string_equal(opt(&a, "--runtime-root"), "/run/criod/runc");
	assert_string_equal(opt(&a, "--log-path"), "/var/log/pods/ns_pod_uid/c/0.log");
	assert_string_equal(opt(&a, "--log-root"), "/var/log/pods");
	assert_string_equal(opt(&a, "--state-dir"), "/var/lib/criod/spawnd/containers/" ID);
	assert_string_equal(opt(&a, "--socket"), "/run/criod/containers/" ID "/conmon.sock");
	assert_string_equal(opt(&a, "--allowed-uid"), "987");
	assert_string_equal(opt(&a, "--sync-fd"), "3");
	assert_false(flag(&a, "--tty") || flag(&a, "--stdin") || flag(&a, "--config"));
	launch_argv_clear(&a);

	/* the flags, the state alias, the container's own log, the second root */
	r.flags = LAUNCH_TTY | LAUNCH_STDIN | LAUNCH_STDIN_ONCE | LAUNCH_STATE_ALIAS;
	snprintf(r.log_path, sizeof(r.log_path), "/var/lib/criod/spawnd/containers/%s/console.log", ID);
	assert_int_equal(launch_argv_build(&env, &r, &a, err, sizeof(err)), 0);
	assert_true(flag(&a, "--tty") && flag(&a, "--stdin") && flag(&a, "--stdin-once"));
	assert_string_equal(opt(&a, "--state-dir"), "/run/criod/c/" ID);
	assert_string_equal(opt(&a, "--log-root"), "/var/lib/criod/spawnd/containers/" ID);
	launch_argv_clear(&a);
	snprintf(r.log_path, sizeof(r.log_path), "/srv/logs/x.log");
	assert_int_equal(launch_argv_build(&env, &r, &a, err, sizeof(err)), 0);
	assert_string_equal(opt(&a, "--log-root"), "/srv/logs");
	launch_argv_clear(&a);
}

static void test_long_run_dir_takes_the_socket_fallback(void **state)
{
	(void)state;
	struct criod_config c2;
	char *e = NULL;
	config_defaults(&c2);
	assert_int_equal(config_parse_string(&c2, "t", "[paths]\nrun_dir = /run/a-rather-long-run-directory-name\n", &e),
			 0);
	struct launch_env e2 = env;
	e2.cfg = &c2;
	struct launch_request r = good();
	struct launch_argv a;
	char err[256] = "";
	assert_int_equal(launch_argv_build(&e2, &r, &a, err, sizeof(err)), 0);
	assert_string_equal(opt(&a, "--socket"), "/run/a-rather-long-run-directory-name/s/" ID);
	launch_argv_clear(&a);
	config_free(&c2);
}

static void refused(struct launch_request *r, const char *what)
{
	struct launch_argv a;
	char err[256] = "";
	assert_int_equal(launch_argv_build(&env, r, &a, err, sizeof(err)), -EINVAL);
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not name \"%s\"", err, what);
	for (size_t i = 0; i < 8; i++)
		assert_null(a.owned[i]);
}

static void test_hostile_requests_refused(void **state)
{
	(void)state;
	struct launch_request r;

	r = good(), r.magic = 0;
	refused(&r, "magic");
	r = good(), r.flags = 1u << 7;
	refused(&r, "flags");
	r = good(), r.flags = LAUNCH_STDIN_ONCE;
	refused(&r, "stdin_once");
	r = good(), r.id[0] = 'A';
	refused(&r, "id");
	r = good(), r.id[63] = '\0';
	refused(&r, "id");
	r = good(), memset(r.id, 'a', sizeof(r.id));
	refused(&r, "id");
	r = good(), snprintf(r.id, sizeof(r.id), "../../../../../etc/passwd");
	refused(&r, "id");
	r = good(), snprintf(r.handler, sizeof(r.handler), "/bin/sh");
	refused(&r, "handler");
	r = good(), memset(r.handler, 'r', sizeof(r.handler));
	refused(&r, "handler");
	r = good(), snprintf(r.log_path, sizeof(r.log_path), "/etc/shadow");
	refused(&r, "log_path");
	r = good(), snprintf(r.log_path, sizeof(r.log_path), "/var/log/pods/../../../etc/shadow");
	refused(&r, "log_path");
	r = good(), snprintf(r.log_path, sizeof(r.log_path), "/var/log/pods");
	refused(&r, "log_path");
	r = good(), snprintf(r.log_path, sizeof(r.log_path), "var/log/pods/x");
	refused(&r, "log_path");
	r = good(), snprintf(r.log_path, sizeof(r.log_path), "/var/log/pods/a\nb");
	refused(&r, "log_path");
	/* another container's own log is not this one's */
	r = good(), snprintf(r.log_path, sizeof(r.log_path),
			     "/var/lib/criod/spawnd/containers/%s/console.log",
			     "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
	refused(&r, "log_path");
	r = good(), snprintf(r.log_path, sizeof(r.log_path), "/var/lib/criod/spawnd/containers/%s/record", ID);
	refused(&r, "log_path");
	r = good(), memset(r.log_path, 'x', sizeof(r.log_path));
	refused(&r, "log_path");
}

static void test_descriptors_checked(void **state)
{
	(void)state;
	char path[] = "/tmp/test_spawnd_launch.XXXXXX", err[256];
	int f = mkstemp(path), p[2], sv[2];
	assert_true(f >= 0);
	int ro = open(path, O_RDONLY), wo = open(path, O_WRONLY | O_APPEND);
	unlink(path);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);

	assert_int_equal(launch_fds_check(wo, p[1], err, sizeof(err)), 0);
	assert_int_equal(launch_fds_check(f, p[1], err, sizeof(err)), 0); /* O_RDWR */
	assert_int_equal(launch_fds_check(ro, p[1], err, sizeof(err)), -EINVAL);
	assert_int_equal(launch_fds_check(p[1], p[1], err, sizeof(err)), -EINVAL);
	assert_int_equal(launch_fds_check(wo, p[0], err, sizeof(err)), -EINVAL);
	assert_int_equal(launch_fds_check(wo, sv[0], err, sizeof(err)), -EINVAL);
	assert_int_equal(launch_fds_check(wo, wo, err, sizeof(err)), -EINVAL);
	close(f), close(ro), close(wo), close(p[0]), close(p[1]), close(sv[0]), close(sv[1]);
}

/* The standby's payload: the command line back to back, round trip; what
 * does not fit is refused rather than cut, and a malformed payload too. */
static void test_standby_payload(void **state)
{
	(void)state;
	static char buf[STANDBY_ARGV_MAX], big[STANDBY_ARGV_MAX + 1];
	char *v[STANDBY_ARGC_MAX];
	const char *argv[] = {"/usr/libexec/criod/conmon", "--id", ID, "--sync-fd", "3", NULL};

	int n = standby_pack(argv, buf, sizeof(buf));
	assert_int_equal(n, strlen(argv[0]) + 1 + 5 + 65 + 10 + 2);
	assert_int_equal(standby_unpack(buf, (size_t)n, v, STANDBY_ARGC_MAX), 5);
	for (int i = 0; i < 5; i++)
		assert_string_equal(v[i], argv[i]);
	assert_null(v[5]);

	/* too long for the standby's command line: -E2BIG, the caller spawns as ever */
	memset(big, 'x', sizeof(big) - 1);
	const char *longv[] = {"/c", big, NULL};
	assert_int_equal(standby_pack(longv, buf, sizeof(buf)), -E2BIG);
	const char *many[STANDBY_ARGC_MAX + 1];
	for (int i = 0; i < STANDBY_ARGC_MAX; i++)
		many[i] = "a";
	many[STANDBY_ARGC_MAX] = NULL;
	assert_int_equal(standby_pack(many, buf, sizeof(buf)), -E2BIG);
	const char *none[] = {NULL};
	assert_int_equal(standby_pack(none, buf, sizeof(buf)), -EINVAL);

	/* payloads the standby refuses */
	assert_int_equal(standby_unpack(buf, 0, v, STANDBY_ARGC_MAX), -EINVAL);
	memcpy(buf, "a\0b", 3); /* not NUL-terminated */
	assert_int_equal(standby_unpack(buf, 3, v, STANDBY_ARGC_MAX), -EINVAL);
	memcpy(buf, "a\0\0b\0", 5); /* an empty string */
	assert_int_equal(standby_unpack(buf, 5, v, STANDBY_ARGC_MAX), -EINVAL);
	memcpy(buf, "a\0b\0c\0", 6);
	assert_int_equal(standby_unpack(buf, 6, v, 3), -E2BIG); /* 3 strings, room for 2 */
	assert_int_equal(standby_unpack(buf, 6, v, 4), 3);
}

/* msg_take_fds (common/util.h), which both ends use: the first ones kept,
 * the rest closed and counted, as a hostile sender's extra descriptors. */
static void test_received_descriptors_taken(void **state)
{
	(void)state;
	int sv[2], p[2], sent[4];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	assert_int_equal(pipe(p), 0);
	for (int i = 0; i < 4; i++)
		sent[i] = p[i % 2];
	union {
		char b[CMSG_SPACE(sizeof(sent))];
		struct cmsghdr align;
	} u;
	char byte = 'x';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(sent));
	memcpy(CMSG_DATA(c), sent, sizeof(sent));
	assert_int_equal(sendmsg(sv[0], &mh, 0), 1);

	union {
		char b[CMSG_SPACE(sizeof(sent))];
		struct cmsghdr align;
	} v;
	struct msghdr rh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = v.b, .msg_controllen = sizeof(v.b)};
	assert_int_equal(recvmsg(sv[1], &rh, MSG_CMSG_CLOEXEC), 1);
	int got[2] = {-1, -1}, extra[2];
	memcpy(extra, CMSG_DATA(CMSG_FIRSTHDR(&rh)) + 2 * sizeof(int), sizeof(extra));
	assert_int_equal(msg_take_fds(&rh, got, 2), 4);
	assert_true(fcntl(got[0], F_GETFD) >= 0 && fcntl(got[1], F_GETFD) >= 0);
	assert_int_equal(fcntl(extra[0], F_GETFD), -1); /* closed */
	assert_int_equal(fcntl(extra[1], F_GETFD), -1);
	close(got[0]), close(got[1]), close(p[0]), close(p[1]), close(sv[0]), close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_argv_derived_from_the_configuration),
		cmocka_unit_test(test_long_run_dir_takes_the_socket_fallback),
		cmocka_unit_test(test_hostile_requests_refused),
		cmocka_unit_test(test_descriptors_checked),
		cmocka_unit_test(test_standby_payload),
		cmocka_unit_test(test_received_descriptors_taken),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
