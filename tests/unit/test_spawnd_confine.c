/* spawnd's and conmon's confinement tables (conmon/spawnd_confine.h): the
 * capability mask the node policy gives spawnd, and the allowlist they
 * pass on to containers, built from the RuntimeDefault profile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cmocka.h>

#include "caps.h"
#include "config.h"
#include "confine.h"
#include "spawnd_confine.h"
#include "util.h"

static bool has(char **names, const char *name)
{
	for (size_t i = 0; names[i]; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static void test_caps_follow_the_policy(void **state)
{
	(void)state;
	struct criod_config cfg;
	char *e = NULL;

	config_defaults(&cfg);
	/* privileged allowed (the default): everything */
	assert_true(spawnd_confine_caps(&cfg) == UINT64_MAX);
	/* no privileged, but allowed_capabilities ALL: still everything */
	assert_int_equal(config_parse_string(&cfg, "t", "[policy]\nallow_privileged = false\n", &e), 0);
	assert_true(spawnd_confine_caps(&cfg) == UINT64_MAX);
	/* hardened: runc's needs and the default set, then one more added */
	assert_int_equal(config_parse_string(&cfg, "t", "[policy]\nallowed_capabilities = CAP_CHOWN\n", &e), 0);
	assert_true(spawnd_confine_caps(&cfg) == (SPAWND_RUNC_CAPS | CAP_DEFAULT_MASK));
	assert_true(spawnd_confine_caps(&cfg) & CAPBIT(21)); /* SYS_ADMIN: runc's */
	assert_false(spawnd_confine_caps(&cfg) & CAPBIT(12)); /* NET_ADMIN */
	assert_int_equal(config_parse_string(&cfg, "t", "[policy]\nallowed_capabilities = CAP_NET_ADMIN\n", &e), 0);
	assert_true(spawnd_confine_caps(&cfg) == (SPAWND_RUNC_CAPS | CAP_DEFAULT_MASK | CAPBIT(12)));
	config_free(&cfg);
}

static void test_names_all_caps(void **state)
{
	(void)state;
	char **n = NULL;

	assert_int_equal(spawnd_confine_names(UINT64_MAX, &n), 0);
	/* the profile's unconditional calls, its capability-gated ones, runc's */
	assert_true(has(n, "read") && has(n, "execve") && has(n, "io_uring_setup"));
	assert_true(has(n, "reboot") && has(n, "perf_event_open") && has(n, "settimeofday") && has(n, "ptrace"));
	assert_true(has(n, "mount") && has(n, "pivot_root") && has(n, "keyctl") && has(n, "bpf"));
	/* never: the host-kernel calls, whatever the capabilities */
	static const char *const never[] = {"kexec_load", "kexec_file_load", "init_module", "finit_module",
					    "delete_module", "swapon", "swapoff", "acct", "iopl", "ioperm",
					    "open_by_handle_at", "lookup_dcookie"};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		assert_false(has(n, never[i]));
	/* no duplicates */
	for (size_t i = 0; n[i]; i++)
		for (size_t j = i + 1; n[j]; j++)
			assert_string_not_equal(n[i], n[j]);
	spawnd_confine_names_free(n);
}

static void test_names_hardened_caps(void **state)
{
	(void)state;
	char **n = NULL;

	assert_int_equal(spawnd_confine_names(SPAWND_RUNC_CAPS | CAP_DEFAULT_MASK, &n), 0);
	/* runc's own calls stay; the profile's rules gated by a capability
	 * the bounding set lacks go (no process below spawnd could hold it) */
	assert_true(has(n, "mount") && has(n, "unshare") && has(n, "setns") && has(n, "bpf") && has(n, "ptrace"));
	assert_true(has(n, "chroot") && has(n, "kcmp")); /* SYS_CHROOT, SYS_PTRACE are held */
	assert_false(has(n, "reboot"));       /* SYS_BOOT */
	assert_false(has(n, "settimeofday")); /* SYS_TIME */
	assert_false(has(n, "vhangup"));      /* SYS_TTY_CONFIG */
	assert_false(has(n, "mbind"));        /* SYS_NICE */
	assert_false(has(n, "init_module"));
	spawnd_confine_names_free(n);
}

/* spawnd's own list (no container inherits it): what spawnd, pause's
 * set-up and `runc delete` call, none of the calls a container or a
 * privileged one may need and spawnd does not. */
static void test_spawnd_own_list_is_strict(void **state)
{
	(void)state;
	char **own = (char **)spawnd_syscalls;

	assert_true(has(own, "mount") && has(own, "setns") && has(own, "pivot_root") && has(own, "seccomp"));
	static const char *const never[] = {"kexec_load", "init_module", "finit_module", "delete_module", "swapon",
					    "acct", "iopl", "ioperm", "open_by_handle_at", "ptrace", "process_vm_readv",
					    "process_vm_writev", "bpf", "keyctl", "add_key", "perf_event_open", "reboot",
					    "settimeofday", "clock_settime", "io_uring_setup", "userfaultfd", "kcmp",
					    "personality", "syslog", "quotactl", "execveat"};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (has(own, never[i]) || has((char **)confine_base_syscalls, never[i]))
			fail_msg("spawnd's own list allows %s", never[i]);
}

static char *bundle_with(const char *spec)
{
	static char dir[64];
	char path[128];
	snprintf(dir, sizeof(dir), "/tmp/test_spawnd_confine.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/config.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(spec, f);
	fclose(f);
	return dir;
}

static void bundle_free(const char *dir)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/config.json", dir);
	unlink(path);
	rmdir(dir);
}

/* conmon on a node that lets containers run unconfined: no filter for an
 * unconfined container, else its own profile's names and conmon's and
 * runc's needs. */
static void test_conmon_list_follows_the_containers_profile(void **state)
{
	(void)state;
	static const char *const unconfined[] = {
		"{\"linux\":{}}",
		"{\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[]}}}",
		"{\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_LOG\"}}}",
	};
	for (size_t i = 0; i < sizeof(unconfined) / sizeof(unconfined[0]); i++) {
		char *b = bundle_with(unconfined[i]), **n = NULL;
		bool confined = true;
		assert_int_equal(conmon_confine_names(UINT64_MAX, b, &confined, &n), 0);
		assert_false(confined);
		assert_null(n);
		bundle_free(b);
	}
	char *b = bundle_with("{\"linux\":{\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
			      "{\"names\":[\"init_module\",\"read\"],\"action\":\"SCMP_ACT_ALLOW\"},"
			      "{\"names\":[\"swapoff\"],\"action\":\"SCMP_ACT_ERRNO\"}]}}}");
	char **n = NULL;
	bool confined = false;
	assert_int_equal(conmon_confine_names(SPAWND_RUNC_CAPS | CAP_DEFAULT_MASK, b, &confined, &n), 0);
	assert_true(confined);
	/* the container's own (a host-kernel call too), RuntimeDefault's, runc's, the base */
	assert_true(has(n, "init_module") && has(n, "read") && has(n, "io_uring_setup") && has(n, "pivot_root") &&
		    has(n, "epoll_wait"));
	/* neither its profile nor conmon lets these through */
	assert_false(has(n, "swapoff") || has(n, "swapon") || has(n, "kexec_load") || has(n, "reboot"));
	spawnd_confine_names_free(n);
	bundle_free(b);
	/* no bundle file: an error, not an unconfined container */
	assert_true(conmon_confine_names(UINT64_MAX, "/nonexistent-bundle", &confined, &n) < 0);
}

/* In a child: confine as conmon does on a hardened node, with the cache
 * in dir; 0 when kexec_load (outside the list) fails with ENOSYS, the
 * filter's answer, and getppid (inside it) works. */
static int confined_child(const char *dir)
{
	pid_t pid = fork();
	if (pid == 0) {
		alarm(60); /* a child that cannot end is a failure, not a hang */
		char **names = NULL;
		if (spawnd_confine_names(UINT64_MAX >> 23, &names) < 0)
			_exit(10);
		struct confine_policy p = {
			.caps = UINT64_MAX >> 23,
			.action = CONFINE_DENY_INHERITED,
			.syscalls = (const char *const *)names,
			.filter_cache = dir,
		};
		if (confine_self("test", &p) < 0)
			_exit(11);
		errno = 0;
		long r = syscall(SYS_kexec_load, 0, 0, 0, 0);
		_exit(r == -1 && errno == ENOSYS && getppid() > 0 ? 0 : 12);
	}
	int st = -1;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

/* The one file of dir (malloc'd path), NULL when not exactly one. */
static char *only_file(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *path = NULL;
	int n = 0;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.' && n++ == 0)
			path = xasprintf("%s/%s", dir, de->d_name);
	if (d)
		closedir(d);
	if (n != 1) {
		free(path);
		return NULL;
	}
	return path;
}

static char *contents(const char *path, size_t *len)
{
	char *buf = NULL;
	return read_file(path, 1 << 20, &buf, len) == 0 ? buf : NULL;
}

/* A compiled filter kept in the cache is what libseccomp compiles for the
 * policy, byte for byte, and the next process loads it from there (a
 * program of its own in the file proves the file is what is loaded); a
 * file of another key is a miss, compiled again and replaced. */
static void test_filter_cache(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip(); /* loading a filter without no_new_privs takes CAP_SYS_ADMIN */
	char tmpl[] = "/tmp/criod-test-filter-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char *dir = xasprintf("%s/seccomp", tmpl);
	assert_int_equal(confined_child(dir), 0); /* compiled and kept */
	char *path = only_file(dir);
	assert_non_null(path);
	size_t len1 = 0, len2 = 0;
	char *first = contents(path, &len1);
	assert_non_null(first);
	assert_true(strncmp(first, "criod-seccomp 1\n", 16) == 0);
	size_t keylen = strlen(first);
	assert_true(len1 > keylen + 1 && (len1 - keylen - 1) % 8 == 0);
	/* compiled again from nothing: the same bytes */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(confined_child(dir), 0);
	char *second = contents(path, &len2);
	assert_non_null(second);
	assert_int_equal(len1, len2);
	assert_memory_equal(first, second, len1);
	/* loaded from the file: a program of its own, "getppid fails with
	 * ENOSYS, everything else is allowed", fails the child's check (its
	 * kexec_load is then no ENOSYS either). Allowing the rest keeps a
	 * sanitizer's own calls working: a program that refused them all made
	 * an ASan child spin for ever in its die path */
	const struct sock_filter one[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	char *mine = malloc(keylen + 1 + sizeof(one));
	memcpy(mine, first, keylen + 1);
	memcpy(mine + keylen + 1, one, sizeof(one));
	assert_int_equal(write_file_boot(path, mine, keylen + 1 + sizeof(one), 0600), 0);
	assert_int_not_equal(confined_child(dir), 0);
	/* another key (one character changed): a miss, compiled and replaced */
	mine[keylen - 2] ^= 1;
	assert_int_equal(write_file_boot(path, mine, keylen + 1 + sizeof(one), 0600), 0);
	assert_int_equal(confined_child(dir), 0);
	free(second);
	second = contents(path, &len2);
	assert_non_null(second);
	assert_int_equal(len1, len2);
	assert_memory_equal(first, second, len1);
	/* a file others may write is never read */
	assert_int_equal(write_file_boot(path, mine, keylen + 1 + sizeof(one), 0600), 0);
	memcpy(mine, first, keylen + 1);
	assert_int_equal(write_file_boot(path, mine, keylen + 1 + sizeof(one), 0622), 0);
	assert_int_equal(chmod(path, 0622), 0);
	assert_int_equal(confined_child(dir), 0);
	free(mine);
	free(first);
	free(second);
	unlink(path);
	free(path);
	rmdir(dir);
	rmdir(tmpl);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps_follow_the_policy),
		cmocka_unit_test(test_names_all_caps),
		cmocka_unit_test(test_names_hardened_caps),
		cmocka_unit_test(test_spawnd_own_list_is_strict),
		cmocka_unit_test(test_conmon_list_follows_the_containers_profile),
		cmocka_unit_test(test_filter_cache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
