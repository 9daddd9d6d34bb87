/* Unit tests for common/proc_cgroup.c: the lines of /proc/<pid>/cgroup
 * split into hierarchy id, controllers and path; malformed lines skipped. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proc_cgroup.h"

static void test_parse_line(void **state)
{
	(void)state;
	struct proc_cgroup_line l;
	char v2[] = "0::/kubepods/pod1/ctr\n";
	assert_int_equal(proc_cgroup_parse_line(v2, &l), 0);
	assert_int_equal(l.id, 0);
	assert_string_equal(l.controllers, "");
	assert_string_equal(l.path, "/kubepods/pod1/ctr"); /* the '\n' dropped */
	assert_true(proc_cgroup_is_unified(&l));

	char v1[] = "4:cpu,cpuacct:/kubepods";
	assert_int_equal(proc_cgroup_parse_line(v1, &l), 0);
	assert_int_equal(l.id, 4);
	assert_string_equal(l.controllers, "cpu,cpuacct");
	assert_string_equal(l.path, "/kubepods");
	assert_false(proc_cgroup_is_unified(&l));
	assert_true(proc_cgroup_has_controller(&l, "cpu"));
	assert_true(proc_cgroup_has_controller(&l, "cpuacct"));
	assert_false(proc_cgroup_has_controller(&l, "cpuac"));
	assert_false(proc_cgroup_has_controller(&l, "cpu,cpuacct"));
	assert_false(proc_cgroup_has_controller(&l, ""));

	char named[] = "1:name=systemd:/system.slice/criod-spawnd.service";
	assert_int_equal(proc_cgroup_parse_line(named, &l), 0);
	assert_int_equal(l.id, 1);
	assert_string_equal(l.controllers, "name=systemd");
	assert_string_equal(l.path, "/system.slice/criod-spawnd.service");
	assert_true(proc_cgroup_has_controller(&l, "name=systemd"));
	assert_false(proc_cgroup_has_controller(&l, "systemd"));
	assert_false(proc_cgroup_is_unified(&l));

	/* a ':' in a cgroup's name stays in the path */
	char colon[] = "12:memory:/a:b/c:";
	assert_int_equal(proc_cgroup_parse_line(colon, &l), 0);
	assert_string_equal(l.controllers, "memory");
	assert_string_equal(l.path, "/a:b/c:");
	/* a unified-looking line of another hierarchy id is not the unified one */
	char notv2[] = "3::/x";
	assert_int_equal(proc_cgroup_parse_line(notv2, &l), 0);
	assert_false(proc_cgroup_is_unified(&l));
}

static void test_malformed(void **state)
{
	(void)state;
	const char *bad[] = {
		"", "\n", "0", "0:", "0::", "0::relative", ":memory:/x", "x:memory:/x", "-1:memory:/x", " 1:memory:/x",
		"1memory:/x", "1:memory", "1:memory/x", "99999999999:memory:/x", "4294967296:memory:/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[64];
		struct proc_cgroup_line l = {0};
		strcpy(buf, bad[i]);
		if (proc_cgroup_parse_line(buf, &l) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	char max[] = "4294967295:memory:/x";
	struct proc_cgroup_line l;
	assert_int_equal(proc_cgroup_parse_line(max, &l), 0);
	assert_int_equal(l.id, 4294967295u);
	assert_int_equal(proc_cgroup_parse_line(NULL, &l), -EINVAL);
}

static void test_next(void **state)
{
	(void)state;
	/* a hybrid host's file, with malformed lines between and no final '\n' */
	char text[] = "12:pids:/kubepods/p\n"
		      "garbage\n"
		      "\n"
		      "1:name=systemd:/init.scope\n"
		      "4:cpu\n"
		      "0::/kubepods/p/c";
	struct proc_cgroup_line l;
	char *cur = text;
	assert_true(proc_cgroup_next(&cur, &l));
	assert_int_equal(l.id, 12);
	assert_string_equal(l.controllers, "pids");
	assert_string_equal(l.path, "/kubepods/p");
	assert_true(proc_cgroup_next(&cur, &l));
	assert_int_equal(l.id, 1);
	assert_string_equal(l.controllers, "name=systemd");
	assert_string_equal(l.path, "/init.scope");
	assert_true(proc_cgroup_next(&cur, &l));
	assert_true(proc_cgroup_is_unified(&l));
	assert_string_equal(l.path, "/kubepods/p/c");
	assert_false(proc_cgroup_next(&cur, &l));
	assert_false(proc_cgroup_next(&cur, &l));

	char empty[] = "";
	cur = empty;
	assert_false(proc_cgroup_next(&cur, &l));
	char only_bad[] = "x\ny:z\n";
	cur = only_bad;
	assert_false(proc_cgroup_next(&cur, &l));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_line),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_next),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
