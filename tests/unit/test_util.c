/* Unit tests for common/util.c and common/spawn.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "spawn.h"
#include "status.h"
#include "util.h"

static char tmpdir[PATH_MAX];

static int setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_util.XXXXXX");
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

/* Names in dir, sorted and space-separated (for "no leftovers" checks). */
static char *list_dir(const char *dir)
{
	struct dirent **ents;
	char *out = calloc(1, 4096);
	int n = scandir(dir, &ents, NULL, alphasort);

	assert_non_null(out);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (strcmp(ents[i]->d_name, ".") != 0 && strcmp(ents[i]->d_name, "..") != 0) {
			if (out[0])
				strcat(out, " ");
			strncat(out, ents[i]->d_name, 4096 - strlen(out) - 2);
		}
		free(ents[i]);
	}
	free(ents);
	return out;
}

/* ---- status ---- */

static void test_status(void **state)
{
	assert_string_equal(status_name(STATUS_OK), "OK");
	assert_string_equal(status_name(STATUS_INVALID_ARGUMENT), "INVALID_ARGUMENT");
	assert_string_equal(status_name(STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
	assert_string_equal(status_name(17), "UNKNOWN");
	assert_string_equal(status_name(-1), "UNKNOWN");

	assert_int_equal(status_from_errno(-ENOENT), STATUS_NOT_FOUND);
	assert_int_equal(status_from_errno(-EEXIST), STATUS_ALREADY_EXISTS);
	assert_int_equal(status_from_errno(-EINVAL), STATUS_INVALID_ARGUMENT);
	assert_int_equal(status_from_errno(-EACCES), STATUS_PERMISSION_DENIED);
	assert_int_equal(status_from_errno(-EPERM), STATUS_PERMISSION_DENIED);
	assert_int_equal(status_from_errno(-ETIMEDOUT), STATUS_DEADLINE_EXCEEDED);
	assert_int_equal(status_from_errno(-ENOSPC), STATUS_RESOURCE_EXHAUSTED);
	assert_int_equal(status_from_errno(-ENOMEM), STATUS_RESOURCE_EXHAUSTED);
	assert_int_equal(status_from_errno(-ECANCELED), STATUS_CANCELLED);
	assert_int_equal(status_from_errno(-EBUSY), STATUS_FAILED_PRECONDITION);
	assert_int_equal(status_from_errno(-ECONNREFUSED), STATUS_UNAVAILABLE);
	assert_int_equal(status_from_errno(-ENOTCONN), STATUS_UNAVAILABLE);
	assert_int_equal(status_from_errno(-EPIPE), STATUS_UNAVAILABLE);
	assert_int_equal(status_from_errno(-ECONNRESET), STATUS_UNAVAILABLE);
	assert_int_equal(status_from_errno(-ENOSYS), STATUS_UNIMPLEMENTED);
	assert_int_equal(status_from_errno(-EOPNOTSUPP), STATUS_UNIMPLEMENTED);
	assert_int_equal(status_from_errno(-EIO), STATUS_INTERNAL);
	assert_int_equal(status_from_errno(-EXDEV), STATUS_INTERNAL);
	assert_int_equal(status_from_errno(ENOENT), STATUS_NOT_FOUND); /* either sign */
	assert_int_equal(status_from_errno(0), STATUS_OK);
	assert_int_equal(status_from_errno(INT32_MIN), STATUS_INTERNAL);
}

/* ---- validation ---- */

static void test_pct_decode(void **state)
{
	(void)state;
	char o[8];
	assert_true(pct_decode("a%41+b", 6, false, o, sizeof(o)));
	assert_string_equal(o, "aA+b");
	assert_true(pct_decode("a%41+b", 6, true, o, sizeof(o)));
	assert_string_equal(o, "aA b");
	assert_true(pct_decode("", 0, false, o, sizeof(o)));
	assert_string_equal(o, "");
	assert_false(pct_decode("%4", 2, false, o, sizeof(o)));      /* a cut escape */
	assert_false(pct_decode("%4g", 3, false, o, sizeof(o)));     /* not hex */
	assert_false(pct_decode("a%00", 4, false, o, sizeof(o)));    /* a decoded NUL */
	assert_false(pct_decode("12345678", 8, false, o, sizeof(o))); /* no room for the NUL */
	assert_true(pct_decode("%41xyz", 3, false, o, sizeof(o)));   /* n bounds the input */
	assert_string_equal(o, "A");
	assert_false(pct_decode("%41%42", 4, false, o, sizeof(o)));  /* an escape cut by n */
}

static void test_id_is_valid(void **state)
{
	static const struct {
		const char *id;
		bool ok;
	} cases[] = {
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", true },
		{ "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", true },
		{ "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", false },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", false },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", false },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", false },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde/", false },
		{ "../3456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", false },
		{ "", false },
		{ NULL, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (id_is_valid(cases[i].id) != cases[i].ok)
			fail_msg("id_is_valid(\"%s\") != %d", cases[i].id ? cases[i].id : "(null)", cases[i].ok);
}

static void test_name_is_valid(void **state)
{
	static const struct {
		const char *name;
		size_t max;
		bool ok;
	} cases[] = {
		{ "a", 10, true },
		{ "nginx-1.25_alpine", 63, true },
		{ "...", 10, true },
		{ ".hidden", 10, true },
		{ "A.b-C_9", 7, true },
		{ "A.b-C_9", 6, false },
		{ ".", 10, false },
		{ "..", 10, false },
		{ "", 10, false },
		{ "a/b", 10, false },
		{ "a b", 10, false },
		{ "a\nb", 10, false },
		{ "ä", 10, false },
		{ "a:b", 10, false },
		{ "a", 0, false },
		{ NULL, 10, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (name_is_valid(cases[i].name, cases[i].max) != cases[i].ok)
			fail_msg("name_is_valid(\"%s\", %zu) != %d", cases[i].name ? cases[i].name : "(null)",
				 cases[i].max, cases[i].ok);
}

static void test_random_hex(void **state)
{
	char a[65], b[65];
	char big[2 * 1000 + 1];

	memset(a, 'X', sizeof(a));
	assert_int_equal(random_hex(a, 32), 0);
	assert_int_equal(strlen(a), 64);
	assert_true(id_is_valid(a));
	assert_int_equal(random_hex(b, 32), 0);
	assert_string_not_equal(a, b);

	assert_int_equal(random_hex(a, 0), 0);
	assert_string_equal(a, "");

	/* Larger than one internal chunk. */
	assert_int_equal(random_hex(big, 1000), 0);
	assert_int_equal(strlen(big), 2000);
	assert_int_equal(strspn(big, "0123456789abcdef"), 2000);
	/* 2000 random nibbles use all 16 digits. */
	for (const char *d = "0123456789abcdef"; *d; d++)
		assert_non_null(strchr(big, *d));
	assert_int_equal(random_hex(NULL, 1), -EINVAL);
}

/* ---- files ---- */

static void test_mkdir_p(void **state)
{
	_cleanup_free_ char *deep = tpath("a/b//c/d/");
	_cleanup_free_ char *c = tpath("a/b/c");
	_cleanup_free_ char *file = tpath("file");
	_cleanup_free_ char *under_file = tpath("file/x");
	struct stat st;
	mode_t old = umask(022);

	assert_int_equal(mkdir_p(deep, 0750), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	/* Missing parents are made 0755 (like mkdir -p -m): only the last
	 * component is private. */
	assert_int_equal(stat(c, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	/* Existing is fine. */
	assert_int_equal(mkdir_p(deep, 0700), 0);
	assert_int_equal(mkdir_p(tmpdir, 0700), 0);
	assert_int_equal(mkdir_p("/", 0700), 0);

	assert_int_equal(write_file_atomic(file, "x", 1, 0600), 0);
	assert_int_equal(mkdir_p(file, 0700), -ENOTDIR);
	assert_int_equal(mkdir_p(under_file, 0700), -ENOTDIR);
	assert_int_equal(mkdir_p("", 0700), -EINVAL);
	assert_int_equal(mkdir_p(NULL, 0700), -EINVAL);
	umask(old);
}

static void test_rmdir_with_files(void **state)
{
	_cleanup_free_ char *d = tpath("ctr");
	_cleanup_free_ char *rec = tpath("ctr/ctr.pb");
	_cleanup_free_ char *tmp = tpath("ctr/.ctr.pb.0123456789abcdef.tmp");
	_cleanup_free_ char *sub = tpath("ctr/sub");
	struct stat st;

	/* Files, an interrupted write's temporary file: all go, then the dir. */
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(write_file_atomic(rec, "x", 1, 0600), 0);
	assert_int_equal(write_file_atomic(tmp, "y", 1, 0600), 0);
	assert_int_equal(rmdir_with_files(d), 0);
	assert_int_equal(stat(d, &st), -1);
	assert_int_equal(errno, ENOENT);
	/* Gone already: done. */
	assert_int_equal(rmdir_with_files(d), 0);
	/* A subdirectory is not recursed into: the directory stays. */
	assert_int_equal(mkdir(d, 0700), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(rmdir_with_files(d), -ENOTEMPTY);
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(rmdir_with_files(d), 0);
}

static void test_write_file_atomic(void **state)
{
	_cleanup_free_ char *p = tpath("state.json");
	_cleanup_free_ char *ls = NULL;
	char *data = NULL;
	size_t len = 0;
	struct stat st;
	char *big;
	mode_t old = umask(077);

	assert_int_equal(write_file_atomic(p, "{\"a\":1}", 7, 0640), 0);
	assert_int_equal(read_file(p, 1024, &data, &len), 0);
	assert_int_equal(len, 7);
	assert_string_equal(data, "{\"a\":1}");
	free(data);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0640); /* exact, whatever the umask */

	/* Replace: new content, new mode, and nothing else in the directory. */
	big = malloc(1 << 20);
	assert_non_null(big);
	for (size_t i = 0; i < (1 << 20); i++)
		big[i] = (char)(i * 7);
	assert_int_equal(write_file_atomic(p, big, 1 << 20, 0600), 0);
	assert_int_equal(read_file(p, 1 << 20, &data, &len), 0);
	assert_int_equal(len, 1 << 20);
	assert_memory_equal(data, big, 1 << 20);
	free(data);
	free(big);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	/* Empty content. */
	assert_int_equal(write_file_atomic(p, NULL, 0, 0644), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 0);

	ls = list_dir(tmpdir);
	assert_string_equal(ls, "state.json");
	umask(old);
}

static void test_write_file_atomic_failures(void **state)
{
	_cleanup_free_ char *missing = tpath("nodir/f");
	_cleanup_free_ char *dir = tpath("adir");
	_cleanup_free_ char *ls = NULL;

	assert_int_equal(write_file_atomic(missing, "x", 1, 0644), -ENOENT);

	/* rename over a directory fails after the temp file was written:
	 * the temp file must not stay behind. */
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(write_file_atomic(dir, "x", 1, 0644), -EISDIR);
	ls = list_dir(tmpdir);
	assert_string_equal(ls, "adir");
	free(ls);
	ls = list_dir(dir);
	assert_string_equal(ls, "");

	assert_int_equal(write_file_atomic("", "x", 1, 0644), -EINVAL);
	assert_int_equal(write_file_atomic(NULL, "x", 1, 0644), -EINVAL);
	{
		_cleanup_free_ char *slash = tpath("adir/");
		assert_int_equal(write_file_atomic(slash, "x", 1, 0644), -EINVAL);
	}
}

/* The boot-scoped variant: the same replace semantics, and its failures
 * leave no temp file either. */
static void test_write_file_boot(void **state)
{
	_cleanup_free_ char *p = tpath("pod.json");
	_cleanup_free_ char *dir = tpath("bdir");
	_cleanup_free_ char *ls = NULL;
	char *data = NULL;
	size_t len = 0;
	struct stat st;

	assert_int_equal(write_file_boot(p, "first", 5, 0600), 0);
	assert_int_equal(write_file_boot(p, "second", 6, 0640), 0);
	assert_int_equal(read_file(p, 64, &data, &len), 0);
	assert_int_equal(len, 6);
	assert_string_equal(data, "second");
	free(data);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(write_file_boot(dir, "x", 1, 0644), -EISDIR);
	assert_int_equal(write_file_boot("", "x", 1, 0644), -EINVAL);
	ls = list_dir(tmpdir);
	assert_string_equal(ls, "bdir pod.json");
}

static void test_read_file(void **state)
{
	_cleanup_free_ char *p = tpath("f");
	_cleanup_free_ char *empty = tpath("empty");
	_cleanup_free_ char *missing = tpath("missing");
	char *data = (char *)1;
	size_t len = 99;

	assert_int_equal(write_file_atomic(p, "hello\0world", 11, 0644), 0);
	assert_int_equal(read_file(p, 11, &data, &len), 0); /* exactly max */
	assert_int_equal(len, 11);
	assert_memory_equal(data, "hello\0world", 12); /* NUL-terminated too */
	free(data);

	data = (char *)1;
	assert_int_equal(read_file(p, 10, &data, &len), -EFBIG);
	assert_null(data);
	assert_int_equal(read_file(p, 0, &data, &len), -EFBIG);
	assert_int_equal(read_file(p, 11, &data, NULL), 0); /* out_len optional */
	free(data);

	assert_int_equal(write_file_atomic(empty, "", 0, 0644), 0);
	assert_int_equal(read_file(empty, 0, &data, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);

	assert_int_equal(read_file(missing, 100, &data, &len), -ENOENT);
	assert_int_equal(read_file(tmpdir, 100, &data, &len), -EISDIR);

	/* procfs reports a size of 0; the content is read anyway. */
	assert_int_equal(read_file("/proc/self/status", 1 << 16, &data, &len), 0);
	assert_true(len > 0);
	assert_int_equal(strlen(data), len);
	assert_non_null(strstr(data, "Pid:"));
	free(data);
	assert_int_equal(read_file("/proc/self/status", 10, &data, &len), -EFBIG);
	/* A non-regular file without a size: bounded all the same. */
	assert_int_equal(read_file("/dev/zero", 100000, &data, &len), -EFBIG);
}

/* ---- time, users ---- */

static void test_time(void **state)
{
	int64_t a = now_monotonic_ns(), b;
	struct timespec d = { 0, 2000000 };
	int64_t rt = now_realtime_ns();

	nanosleep(&d, NULL);
	b = now_monotonic_ns();
	assert_true(a > 0);
	assert_true(b - a >= 2000000);
	assert_true(b - a < 5000000000LL);
	assert_true(rt / 1000000000LL >= time(NULL) - 1 && rt / 1000000000LL <= time(NULL));
}

static void test_lookup_user(void **state)
{
	uid_t uid = 1;
	gid_t gid = 1;

	assert_int_equal(lookup_user("root", &uid, &gid), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(gid, 0);
	assert_int_equal(lookup_user("root", NULL, NULL), 0);
	assert_int_equal(lookup_user("no-such-user-criod-test", &uid, &gid), -ENOENT);
	assert_int_equal(lookup_user("", &uid, &gid), -EINVAL);
	assert_int_equal(lookup_user(NULL, &uid, &gid), -EINVAL);
}

/* drop_privileges is only tested on its "already that user" path, in a
 * child so the test process keeps its identity. As root the child first
 * becomes nobody by hand. */
static void test_drop_privileges_already_user(void **state)
{
	const char *name;
	struct passwd *pw;
	pid_t pid;
	int status;

	if (geteuid() == 0) {
		pw = getpwnam("nobody");
		if (!pw)
			skip();
	} else {
		pw = getpwuid(geteuid());
		if (!pw)
			skip();
	}
	name = pw->pw_name;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0) {
			if (setgroups(0, NULL) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
			    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
				_exit(10);
		}
		if (drop_privileges(name) != 0)
			_exit(11);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
			_exit(12);
		if (setuid(0) == 0)
			_exit(13);
		/* Asking for someone else is refused without privilege. */
		if (drop_privileges("root") != -EINVAL)
			_exit(14);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(drop_privileges("no-such-user-criod-test"), -ENOENT);
}

/* ---- spawn ---- */

static char *read_all_fd(int fd)
{
	char *buf = malloc(65536);
	size_t len = 0;
	ssize_t n;

	assert_non_null(buf);
	while ((n = read(fd, buf + len, 65535 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return buf;
}

static int wait_exit(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Run `sh -c script` with stdout to a pipe; return its output, set *code. */
static char *run_sh(const char *script, const struct spawn_opts *extra, int *code)
{
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct spawn_opts o = { .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
	int p[2];
	pid_t pid = 0;
	char *out;

	if (extra)
		o = *extra;
	o.argv = argv;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	o.stdout_fd = p[1];
	assert_int_equal(spawn_process(&o, &pid), 0);
	assert_true(pid > 0);
	close(p[1]);
	out = read_all_fd(p[0]);
	close(p[0]);
	*code = wait_exit(pid);
	return out;
}

static void test_spawn_stdout_and_status(void **state)
{
	int code;
	char *out = run_sh("echo hello; exit 3", NULL, &code);

	assert_string_equal(out, "hello\n");
	assert_int_equal(code, 3);
	free(out);
}

static void test_spawn_default_env_and_stdin(void **state)
{
	int code;
	/* The shell adds PWD itself; everything else comes from us. */
	char *out = run_sh("env | grep -v '^PWD='; cat; echo cat=$?", NULL, &code);

	assert_string_equal(out, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
				 "cat=0\n");
	assert_int_equal(code, 0);
	free(out);
}

static void test_spawn_env_and_cwd(void **state)
{
	const char *env[] = { "FOO=bar baz", "PATH=/bin:/usr/bin", NULL };
	struct spawn_opts o = { .envp = env, .cwd = tmpdir, .stderr_fd = -1 };
	int code;
	char *out = run_sh("echo \"$FOO\"; pwd", &o, &code);
	_cleanup_free_ char *expect = NULL;

	assert_true(asprintf(&expect, "bar baz\n%s\n", tmpdir) > 0);
	assert_string_equal(out, expect);
	assert_int_equal(code, 0);
	free(out);
}

static void test_spawn_stdin(void **state)
{
	int in[2];
	int code;
	struct spawn_opts o = { .stderr_fd = -1 };
	char *out;

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(write(in[1], "from parent\n", 12), 12);
	close(in[1]);
	o.stdin_fd = in[0];
	out = run_sh("read line; echo \"got $line\"", &o, &code);
	close(in[0]);
	assert_string_equal(out, "got from parent\n");
	free(out);
}

static void test_spawn_keep_fds(void **state)
{
	int a[2], b[2], c[2];
	int stray;
	struct spawn_opts o = { .stdin_fd = -1, .stderr_fd = -1 };
	int keep[2];
	int code;
	char *out, *got;
	char script[512];

	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	assert_int_equal(pipe(c), 0); /* not close-on-exec: must still be closed */
	stray = c[1];

	/* In reverse order, so the moves have to go through temporaries. */
	keep[0] = b[1];
	keep[1] = a[1];
	o.keep_fds = keep;
	o.n_keep_fds = 2;
	snprintf(script, sizeof(script),
		 "printf to-b >&3; printf to-a >&4; "
		 "if (: >&5) 2>/dev/null; then echo fd5-open; else echo fd5-closed; fi; "
		 "if (: >&%d) 2>/dev/null; then echo stray-open; else echo stray-closed; fi",
		 stray);
	out = run_sh(script, &o, &code);
	assert_int_equal(code, 0);
	assert_string_equal(out, "fd5-closed\nstray-closed\n");
	free(out);

	close(a[1]);
	close(b[1]);
	close(c[1]);
	got = read_all_fd(a[0]);
	assert_string_equal(got, "to-a");
	free(got);
	got = read_all_fd(b[0]);
	assert_string_equal(got, "to-b");
	free(got);
	/* The stray write end was closed in the child: EOF now. */
	got = read_all_fd(c[0]);
	assert_string_equal(got, "");
	free(got);
	close(a[0]);
	close(b[0]);
	close(c[0]);
}

static void test_spawn_overlapping_fds(void **state)
{
	/* Sources that already sit on target numbers: fds 3 and 4 swapped,
	 * and stdout shared with a kept fd. */
	int p[2], q[2];
	int fd3, fd4;
	const char *argv[] = { "/bin/sh", "-c", "printf one >&3; printf two >&4; printf out", NULL };
	struct spawn_opts o = { .argv = argv, .stdin_fd = -1, .stderr_fd = -1 };
	int keep[2];
	pid_t pid;
	char *got;
	int saved3 = fcntl(3, F_DUPFD_CLOEXEC, 100), saved4 = fcntl(4, F_DUPFD_CLOEXEC, 100);

	/* Keep the pipes themselves away from 3 and 4. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(q, O_CLOEXEC), 0);
	for (int i = 0; i < 2; i++) {
		int np = fcntl(p[i], F_DUPFD_CLOEXEC, 200), nq = fcntl(q[i], F_DUPFD_CLOEXEC, 200);
		assert_true(np >= 200 && nq >= 200);
		close(p[i]);
		close(q[i]);
		p[i] = np;
		q[i] = nq;
	}
	fd3 = dup3(p[1], 3, O_CLOEXEC);
	fd4 = dup3(q[1], 4, O_CLOEXEC);
	assert_int_equal(fd3, 3);
	assert_int_equal(fd4, 4);
	close(p[1]);
	close(q[1]);

	keep[0] = 4; /* becomes 3 */
	keep[1] = 3; /* becomes 4 */
	o.keep_fds = keep;
	o.n_keep_fds = 2;
	o.stdout_fd = 3;
	assert_int_equal(spawn_process(&o, &pid), 0);
	close(3);
	close(4);
	assert_int_equal(wait_exit(pid), 0);

	got = read_all_fd(p[0]);
	assert_string_equal(got, "twoout");
	free(got);
	got = read_all_fd(q[0]);
	assert_string_equal(got, "one");
	free(got);
	close(p[0]);
	close(q[0]);
	if (saved3 >= 0) {
		dup2(saved3, 3);
		close(saved3);
	}
	if (saved4 >= 0) {
		dup2(saved4, 4);
		close(saved4);
	}
}

static void test_spawn_signals_reset(void **state)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_term, old_pipe;
	sigset_t block, old_mask;
	int code;
	char *out;

	sigemptyset(&ign.sa_mask);
	sigaction(SIGTERM, &ign, &old_term);
	sigaction(SIGPIPE, &ign, &old_pipe);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old_mask);

	out = run_sh("grep -E '^Sig(Blk|Ign):' /proc/self/status", NULL, &code);
	assert_int_equal(code, 0);
	assert_string_equal(out, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
	free(out);

	/* SIGTERM is deliverable again in the child. */
	{
		const char *argv[] = { "/bin/sh", "-c", "kill -TERM $$; sleep 5", NULL };
		struct spawn_opts o = { .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
		pid_t pid;
		int status;

		assert_int_equal(spawn_process(&o, &pid), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGTERM);
	}

	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
}

static void test_spawn_new_session(void **state)
{
	struct spawn_opts o = { .stdin_fd = -1, .stderr_fd = -1, .new_session = 1 };
	int code;
	char *out = run_sh("set -- $(cat /proc/$$/stat); [ \"$1\" = \"$6\" ] && echo leader", &o, &code);

	assert_string_equal(out, "leader\n");
	free(out);

	o.new_session = 0;
	out = run_sh("set -- $(cat /proc/$$/stat); [ \"$1\" = \"$6\" ] && echo leader || echo member", &o,
		     &code);
	assert_string_equal(out, "member\n");
	free(out);
}

static void test_spawn_exec_failure(void **state)
{
	const char *argv[] = { "/nonexistent/criod-test-binary", NULL };
	struct spawn_opts o = { .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1 };
	pid_t pid = 4242;
	_cleanup_free_ char *noexec = tpath("noexec");

	assert_int_equal(spawn_process(&o, &pid), -ENOENT);
	assert_int_equal(pid, 4242); /* untouched */
	/* The failed child was reaped: no children remain. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	assert_int_equal(write_file_atomic(noexec, "#!/bin/sh\n", 10, 0644), 0);
	argv[0] = noexec;
	assert_int_equal(spawn_process(&o, &pid), -EACCES);

	argv[0] = "/bin/true";
	o.cwd = "/nonexistent-dir";
	assert_int_equal(spawn_process(&o, &pid), -ENOENT);
	o.cwd = NULL;

	/* Bad arguments. */
	{
		int bad = 999;
		o.keep_fds = &bad;
		o.n_keep_fds = 1;
		assert_int_equal(spawn_process(&o, &pid), -EBADF); /* fd 999 is not open */
		bad = -1;
		assert_int_equal(spawn_process(&o, &pid), -EBADF);
		o.keep_fds = NULL;
		o.n_keep_fds = 0;
	}
	argv[0] = NULL;
	assert_int_equal(spawn_process(&o, &pid), -EINVAL);
	assert_int_equal(spawn_process(NULL, &pid), -EINVAL);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_pct_decode),
		cmocka_unit_test(test_id_is_valid),
		cmocka_unit_test(test_name_is_valid),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_rmdir_with_files, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_write_file_atomic, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_write_file_atomic_failures, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_write_file_boot, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_read_file, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_lookup_user),
		cmocka_unit_test(test_drop_privileges_already_user),
		cmocka_unit_test(test_spawn_stdout_and_status),
		cmocka_unit_test(test_spawn_default_env_and_stdin),
		cmocka_unit_test_setup_teardown(test_spawn_env_and_cwd, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_spawn_stdin),
		cmocka_unit_test(test_spawn_keep_fds),
		cmocka_unit_test(test_spawn_overlapping_fds),
		cmocka_unit_test(test_spawn_signals_reset),
		cmocka_unit_test(test_spawn_new_session),
		cmocka_unit_test_setup_teardown(test_spawn_exec_failure, setup_tmpdir, teardown_tmpdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
