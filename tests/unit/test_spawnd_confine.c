/* spawnd's and conmon's confinement tables (conmon/spawnd_confine.h): the
 * capability mask the node policy gives spawnd, and the allowlist they
 * pass on to containers, built from the RuntimeDefault profile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "caps.h"
#include "config.h"
#include "confine.h"
#include "spawnd_confine.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_caps_follow_the_policy),
		cmocka_unit_test(test_names_all_caps),
		cmocka_unit_test(test_names_hardened_caps),
		cmocka_unit_test(test_spawnd_own_list_is_strict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
