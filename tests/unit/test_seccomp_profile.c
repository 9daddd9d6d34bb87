/* Unit tests for common/seccomp_profile.c: the pure path check spawnd's
 * OpenSeccompProfile starts with, and the opener on a real directory tree
 * (symlinks, FIFOs, directories, sizes). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "seccomp_profile.h"
#include "status.h"

/* ---- the pure check ---- */

static char *const roots[] = {"/var/lib/kubelet/seccomp", "/etc/profiles", "/var/lib/kubelet/seccomp/deep",
			      "relative/skipped", "/not/clean/../skipped"};

static int check(const char *path, size_t *root, const char **rel, const char **why)
{
	size_t off = 0;
	int r = seccomp_profile_path_check(path, path ? strlen(path) : 0, roots, ARRAY_SIZE(roots), root, &off, why);
	if (r == 0)
		*rel = path + off;
	return r;
}

static void expect_ok(const char *path, size_t want_root, const char *want_rel)
{
	size_t root = 99;
	const char *rel = NULL, *why = NULL;
	int r = check(path, &root, &rel, &why);
	if (r != 0)
		fail_msg("%s: %d (%s)", path, r, why ? why : "?");
	assert_int_equal(root, want_root);
	assert_string_equal(rel, want_rel);
}

static void expect_refused(const char *path, int want_r, const char *want_why)
{
	size_t root = 99;
	const char *rel = NULL, *why = NULL;
	int r = check(path, &root, &rel, &why);
	if (r != want_r)
		fail_msg("%s: %d, expected %d", path ? path : "(null)", r, want_r);
	assert_non_null(why);
	if (!strstr(why, want_why))
		fail_msg("%s: \"%s\" does not say \"%s\"", path ? path : "(null)", why, want_why);
	assert_int_equal(root, 99);
}

static void test_check_accepts_paths_beneath_a_root(void **state)
{
	expect_ok("/var/lib/kubelet/seccomp/block-chmod.json", 0, "block-chmod.json");
	expect_ok("/var/lib/kubelet/seccomp/a/b/c.json", 0, "a/b/c.json");
	expect_ok("/etc/profiles/x", 1, "x");
	/* The longest root that holds it. */
	expect_ok("/var/lib/kubelet/seccomp/deep/x.json", 2, "x.json");
	expect_ok("/var/lib/kubelet/seccomp/deeper/x.json", 0, "deeper/x.json");
	/* The root itself: a directory, which the opener refuses as such. */
	expect_ok("/etc/profiles", 1, "");
	/* Names with dots that are not "." or "..". */
	expect_ok("/etc/profiles/..json", 1, "..json");
	expect_ok("/etc/profiles/.../a", 1, ".../a");
	expect_ok("/etc/profiles/.hidden", 1, ".hidden");
}

static void test_check_refuses_outside_every_root(void **state)
{
	expect_refused("/etc/shadow", -EACCES, "[policy] seccomp_profile_roots");
	expect_refused("/", -EACCES, "seccomp_profile_roots");
	expect_refused("/proc/self/root/etc/shadow", -EACCES, "seccomp_profile_roots");
	expect_refused("/proc/self/fd/0", -EACCES, "seccomp_profile_roots");
	expect_refused("/dev/sda", -EACCES, "seccomp_profile_roots");
	/* A prefix of the string is not a parent directory. */
	expect_refused("/var/lib/kubelet/seccompx/a.json", -EACCES, "seccomp_profile_roots");
	expect_refused("/etc/profilesa", -EACCES, "seccomp_profile_roots");
	expect_refused("/var/lib/kubelet", -EACCES, "seccomp_profile_roots");
	/* Roots that are not clean absolute paths never match. */
	expect_refused("/relative/skipped/a", -EACCES, "seccomp_profile_roots");
	expect_refused("/not/skipped/a", -EACCES, "seccomp_profile_roots");
	expect_refused("/not/clean/../skipped/a", -EINVAL, "clean");

	/* No roots at all: nothing is allowed. */
	size_t root, off;
	const char *why;
	const char *p = "/var/lib/kubelet/seccomp/a.json";
	assert_int_equal(seccomp_profile_path_check(p, strlen(p), NULL, 0, &root, &off, &why), -EACCES);
}

static void test_check_refuses_bad_syntax(void **state)
{
	expect_refused(NULL, -EINVAL, "empty");
	expect_refused("", -EINVAL, "empty");
	expect_refused("../../etc/shadow", -EINVAL, "absolute");
	expect_refused("var/lib/kubelet/seccomp/a.json", -EINVAL, "absolute");
	expect_refused("a.json", -EINVAL, "absolute");
	expect_refused("./a.json", -EINVAL, "absolute");
	expect_refused("/var/lib/kubelet/seccomp/../../../etc/shadow", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp/a/../b.json", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp/..", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp/./a.json", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp/.", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp//a.json", -EINVAL, "clean");
	expect_refused("//var/lib/kubelet/seccomp/a.json", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp/a.json/", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp/", -EINVAL, "clean");
	expect_refused("/var/lib/kubelet/seccomp/a\n.json", -EINVAL, "control");
	expect_refused("/var/lib/kubelet/seccomp/a\t.json", -EINVAL, "control");
	expect_refused("/var/lib/kubelet/seccomp/a\x7f.json", -EINVAL, "control");
	expect_refused("/var/lib/kubelet/seccomp/a\x1b[2J.json", -EINVAL, "control");
}

static void test_check_nul_and_length(void **state)
{
	size_t root = 99, off = 99;
	const char *why = NULL;

	/* A NUL inside: the bytes after it are not silently dropped. */
	static const char nul[] = "/var/lib/kubelet/seccomp/a.json\0/../../../etc/shadow";
	assert_int_equal(seccomp_profile_path_check(nul, sizeof(nul) - 1, roots, ARRAY_SIZE(roots), &root, &off, &why),
			 -EINVAL);
	assert_string_equal(why, "contains a NUL byte");
	static const char nul_end[] = "/var/lib/kubelet/seccomp/a.json\0";
	assert_int_equal(seccomp_profile_path_check(nul_end, sizeof(nul_end) - 1, roots, ARRAY_SIZE(roots), &root, &off,
						    &why),
			 -EINVAL);

	/* Only len bytes are read: a path without a terminating NUL. */
	char raw[64];
	memcpy(raw, "/etc/profiles/abcXXXXXXXX", 25);
	assert_int_equal(seccomp_profile_path_check(raw, 17, roots, ARRAY_SIZE(roots), &root, &off, &why), 0);
	assert_int_equal(root, 1);
	assert_int_equal(off, 14);

	/* Up to SECCOMP_PROFILE_PATH_MAX bytes. */
	char *longp = malloc(SECCOMP_PROFILE_PATH_MAX + 2);
	assert_non_null(longp);
	size_t n = (size_t)snprintf(longp, SECCOMP_PROFILE_PATH_MAX + 2, "/etc/profiles/");
	for (; n < SECCOMP_PROFILE_PATH_MAX; n++)
		longp[n] = n % 200 ? 'a' : '/';
	longp[n] = '\0';
	assert_int_equal(strlen(longp), SECCOMP_PROFILE_PATH_MAX);
	assert_int_equal(seccomp_profile_path_check(longp, n, roots, ARRAY_SIZE(roots), &root, &off, &why), 0);
	longp[n++] = 'a';
	longp[n] = '\0';
	assert_int_equal(seccomp_profile_path_check(longp, n, roots, ARRAY_SIZE(roots), &root, &off, &why),
			 -ENAMETOOLONG);
	assert_non_null(strstr(why, "4095"));
	free(longp);
}

/* ---- the opener on a real tree ---- */

static char tmpdir[PATH_MAX];

static int setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_seccomp_profile.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_tmpdir(void **state)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static char *tpath(const char *rel)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", tmpdir, rel) > 0);
	return p;
}

static void write_rel(const char *rel, const char *text, size_t len)
{
	_cleanup_free_ char *p = tpath(rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

struct opened {
	int fd, r, status;
	uint64_t size;
	char err[512];
};

static struct opened open_rel(const char *rel, char *const *rts, size_t n)
{
	struct opened o = {0};
	_cleanup_free_ char *p = rel[0] == '/' ? strdup(rel) : tpath(rel);
	o.r = o.fd = seccomp_profile_open(p, strlen(p), rts, n, &o.size, &o.status, o.err, sizeof(o.err));
	return o;
}

static void expect_open_refused(const char *rel, char *const *rts, size_t n, int want_status, const char *want)
{
	struct opened o = open_rel(rel, rts, n);
	if (o.fd >= 0)
		fail_msg("%s: opened", rel);
	if (o.status != want_status)
		fail_msg("%s: status %d (%s), expected %d", rel, o.status, o.err, want_status);
	if (!strstr(o.err, want))
		fail_msg("%s: \"%s\" does not say \"%s\"", rel, o.err, want);
}

static void test_open(void **state)
{
	static const char profile[] = "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}";
	_cleanup_free_ char *root = tpath("root");
	_cleanup_free_ char *other = tpath("other");
	_cleanup_free_ char *missing_root = tpath("no-such-root");
	char *const rts[] = {missing_root, root};

	assert_int_equal(mkdir(root, 0700), 0);
	assert_int_equal(mkdir(other, 0700), 0);
	_cleanup_free_ char *sub = tpath("root/sub");
	assert_int_equal(mkdir(sub, 0700), 0);
	write_rel("root/sub/p.json", profile, sizeof(profile) - 1);
	write_rel("other/secret", "secret", 6);

	/* A regular file beneath the root: readable through the fd. */
	struct opened o = open_rel("root/sub/p.json", rts, 2);
	if (o.fd < 0)
		fail_msg("%d %s", o.fd, o.err);
	assert_int_equal(o.status, STATUS_OK);
	assert_int_equal(o.size, sizeof(profile) - 1);
	int fl = fcntl(o.fd, F_GETFL);
	assert_int_equal(fl & O_ACCMODE, O_RDONLY);
	assert_true(fl & O_NONBLOCK);
	assert_true(fcntl(o.fd, F_GETFD) & FD_CLOEXEC);
	char buf[128] = "";
	assert_int_equal(pread(o.fd, buf, sizeof(buf) - 1, 0), (ssize_t)sizeof(profile) - 1);
	assert_string_equal(buf, profile);
	close(o.fd);

	/* Outside every root, and the roots are named. */
	expect_open_refused("other/secret", rts, 2, STATUS_PERMISSION_DENIED, "[policy] seccomp_profile_roots");
	expect_open_refused("other/secret", rts, 2, STATUS_PERMISSION_DENIED, root);
	expect_open_refused("/etc/shadow", rts, 2, STATUS_PERMISSION_DENIED, "seccomp_profile_roots");
	expect_open_refused("/etc/shadow", NULL, 0, STATUS_PERMISSION_DENIED, "none configured");

	/* Symlinks beneath the root are never followed: to outside, to
	 * inside, a directory symlink on the way, a magic link. */
	_cleanup_free_ char *l1 = tpath("root/out.json"), *l2 = tpath("root/in.json"), *l3 = tpath("root/dir");
	_cleanup_free_ char *l4 = tpath("root/proc");
	assert_int_equal(symlink("/etc/shadow", l1), 0);
	assert_int_equal(symlink("sub/p.json", l2), 0);
	assert_int_equal(symlink(other, l3), 0);
	assert_int_equal(symlink("/proc/self", l4), 0);
	expect_open_refused("root/out.json", rts, 2, STATUS_PERMISSION_DENIED, "symbolic link");
	expect_open_refused("root/in.json", rts, 2, STATUS_PERMISSION_DENIED, "symbolic link");
	expect_open_refused("root/dir/secret", rts, 2, STATUS_PERMISSION_DENIED, "symbolic link");
	expect_open_refused("root/proc/fd/0", rts, 2, STATUS_PERMISSION_DENIED, "symbolic link");

	/* Missing. */
	expect_open_refused("root/none.json", rts, 2, STATUS_NOT_FOUND, "does not exist");
	expect_open_refused("root/none/x.json", rts, 2, STATUS_NOT_FOUND, "does not exist");
	expect_open_refused("root/sub/p.json/x", rts, 2, STATUS_NOT_FOUND, "does not exist");
	_cleanup_free_ char *in_missing = tpath("no-such-root/a.json");
	expect_open_refused(in_missing, rts, 2, STATUS_NOT_FOUND, "cannot be opened");

	/* Not regular files: the directory, the root itself, a FIFO (never
	 * opened, so this does not hang), a device node when we may make one. */
	expect_open_refused("root/sub", rts, 2, STATUS_INVALID_ARGUMENT, "is a directory, not a regular file");
	expect_open_refused("root", rts, 2, STATUS_INVALID_ARGUMENT, "a directory");
	_cleanup_free_ char *fifo = tpath("root/fifo.json");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_open_refused("root/fifo.json", rts, 2, STATUS_INVALID_ARGUMENT, "a FIFO");
	_cleanup_free_ char *dev = tpath("root/null.json");
	if (mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0)
		expect_open_refused("root/null.json", rts, 2, STATUS_INVALID_ARGUMENT, "a character device");

	/* Sizes: exactly the maximum is fine, one byte more is not. */
	char *big = calloc(1, SECCOMP_PROFILE_MAX + 1);
	assert_non_null(big);
	memset(big, ' ', SECCOMP_PROFILE_MAX + 1);
	write_rel("root/max.json", big, SECCOMP_PROFILE_MAX);
	write_rel("root/big.json", big, SECCOMP_PROFILE_MAX + 1);
	free(big);
	o = open_rel("root/max.json", rts, 2);
	assert_true(o.fd >= 0);
	assert_int_equal(o.size, SECCOMP_PROFILE_MAX);
	close(o.fd);
	expect_open_refused("root/big.json", rts, 2, STATUS_INVALID_ARGUMENT, "more than the 4194304 allowed");

	/* Syntax is refused before anything is opened. */
	_cleanup_free_ char *dotdot = tpath("root/sub/../sub/p.json");
	expect_open_refused(dotdot, rts, 2, STATUS_INVALID_ARGUMENT, "clean path");
	expect_open_refused("/../etc/shadow", rts, 2, STATUS_INVALID_ARGUMENT, "clean path");
	static const char nul[] = "/tmp/x\0y";
	int status;
	uint64_t size;
	char err[256];
	assert_true(seccomp_profile_open(nul, sizeof(nul) - 1, rts, 2, &size, &status, err, sizeof(err)) < 0);
	assert_int_equal(status, STATUS_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "NUL"));
	assert_true(seccomp_profile_open(NULL, 0, rts, 2, &size, &status, err, sizeof(err)) < 0);
	assert_int_equal(status, STATUS_INVALID_ARGUMENT);

	/* No fd is left open by any refusal. */
	int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(probe >= 0);
	close(probe);
	for (int i = 0; i < 50; i++)
		expect_open_refused("root/fifo.json", rts, 2, STATUS_INVALID_ARGUMENT, "FIFO");
	int probe2 = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(probe2, probe);
	close(probe2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_accepts_paths_beneath_a_root),
		cmocka_unit_test(test_check_refuses_outside_every_root),
		cmocka_unit_test(test_check_refuses_bad_syntax),
		cmocka_unit_test(test_check_nul_and_length),
		cmocka_unit_test_setup_teardown(test_open, setup_tmpdir, teardown_tmpdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
