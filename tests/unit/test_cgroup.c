/* Unit tests for the pure parts of conmon/spawnd_cgroup.c (cgroup path validation,
 * systemd slice expansion, pod cgroup paths, finding a pod's cgroup by name
 * in a directory tree) and conmon/spawnd_proc.c (parsing
 * /proc/<pid>/stat). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawnd_cgroup.h"
#include "spawnd_proc.h"

#define ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_slice_expand(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{"-.slice", "/"},
		{"system.slice", "/system.slice"},
		{"kubepods.slice", "/kubepods.slice"},
		{"kubepods-besteffort.slice", "/kubepods.slice/kubepods-besteffort.slice"},
		{"kubepods-besteffort-pod123.slice",
		 "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice"},
		{"kubepods-burstable-pod2f1e_4a7b.slice",
		 "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod2f1e_4a7b.slice"},
		{"user-1000.slice", "/user.slice/user-1000.slice"},
		{"a-b-c-d.slice", "/a.slice/a-b.slice/a-b-c.slice/a-b-c-d.slice"},
		{"criod.slice", "/criod.slice"},
		/* systemd's escapes (cg_escape): names a cgroup filesystem uses */
		{"cpu.slice", "/_cpu.slice"},
		{"cpu-foo.slice", "/_cpu.slice/cpu-foo.slice"},
		{"memory.slice", "/_memory.slice"},
		{"cpuset.slice", "/_cpuset.slice"},
		{"cgroup.slice", "/_cgroup.slice"},
		{"_x.slice", "/__x.slice"},
		{"bpf-firewall.slice", "/bpf.slice/_bpf-firewall.slice"},
		{"cpux.slice", "/cpux.slice"},
		/* what unit names may hold besides [A-Za-z0-9_-] */
		{"a\\x2db.slice", "/a\\x2db.slice"},
		{"a:b.slice", "/a:b.slice"},
		{"a.b-c.slice", "/a.b.slice/a.b-c.slice"},
	};
	static const char *const bad[] = {
		"", "slice", ".slice", "foo", "foo.service", "foo.slice.d", "-foo.slice", "foo-.slice",
		"foo--bar.slice", "foo/bar.slice", "../foo.slice", "foo@bar.slice", "foo@.slice", "foo bar.slice",
		"foo\n.slice", "-", "--.slice", "a-.slice", "k\xc3\xa9.slice",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *out = NULL;
		int r = systemd_slice_expand(ok[i].in, &out);
		if (r != 0)
			fail_msg("%s: %d", ok[i].in, r);
		assert_string_equal(out, ok[i].out);
		assert_true(systemd_slice_is_valid(ok[i].in));
		free(out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *out = (char *)"untouched";
		int r = systemd_slice_expand(bad[i], &out);
		if (r != -EINVAL)
			fail_msg("\"%s\" was accepted (%d)", bad[i], r);
		assert_null(out);
	}

	/* Unit names are shorter than 256 bytes. */
	char name[300];
	memset(name, 'a', sizeof(name));
	strcpy(name + 255 - 6, ".slice");
	char *out = NULL;
	assert_int_equal(strlen(name), 255);
	assert_int_equal(systemd_slice_expand(name, &out), 0);
	free(out);
	strcpy(name + 256 - 6, ".slice");
	assert_int_equal(systemd_slice_expand(name, &out), -EINVAL);
	/* Escaping a 255-byte name would make it 256: not a file name. */
	memcpy(name, "cpu.", 4);
	strcpy(name + 255 - 6, ".slice");
	assert_int_equal(systemd_slice_expand(name, &out), -EINVAL);
	assert_int_equal(systemd_slice_expand(NULL, &out), -EINVAL);
}

static void test_path_valid(void **state)
{
	static const char *const ok[] = {
		"/", "/criod", "/kubepods", "/kubepods/besteffort/pod1234-ab_cd", "/a.b", "/kubepods.slice/x.scope",
		"/a\\x2db", "/a:b@c", "/cpux/cpu_x", "/tasksx", "/cgroup",
	};
	static const char *const bad[] = {
		"", "kubepods", "kubepods/a", "/kubepods/", "//a", "/a//b", "/a/../b", "/..", "/.", "/a/.", "/a b",
		"/a\n", "/a/cgroup.procs", "/cgroup.x", "/tasks", "/notify_on_release", "/release_agent",
		"/cpu.shares", "/memory.limit_in_bytes", "/a/pids.max", "/a$b", "/a*", "/a+b", "/\xc3\xa9",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!cgroup_path_is_valid(ok[i]))
			fail_msg("\"%s\" refused", ok[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cgroup_path_is_valid(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
	assert_false(cgroup_path_is_valid(NULL));

	/* Components up to 255 bytes, the whole up to CGROUP_PATH_MAX. */
	char p[CGROUP_PATH_MAX + 8];
	p[0] = '/';
	memset(p + 1, 'a', 255);
	p[256] = '\0';
	assert_true(cgroup_path_is_valid(p));
	p[256] = 'a';
	p[257] = '\0';
	assert_false(cgroup_path_is_valid(p));
	for (size_t i = 0; i < CGROUP_PATH_MAX; i++)
		p[i] = i % 100 == 0 ? '/' : 'b';
	p[CGROUP_PATH_MAX] = '\0';
	assert_true(cgroup_path_is_valid(p));
	p[CGROUP_PATH_MAX] = 'b';
	p[CGROUP_PATH_MAX + 1] = '\0';
	assert_false(cgroup_path_is_valid(p));
}

static void expect_pod_path(enum cgroup_driver d, const char *parent, const char *def, const char *want)
{
	char *out = NULL;
	int r = cgroup_pod_path(d, parent, def, ID, &out);
	if (r != 0)
		fail_msg("%s/%s: %d", parent, def, r);
	assert_string_equal(out, want);
	assert_true(cgroup_is_pod_path(out, ID));
	free(out);
}

static void test_pod_path(void **state)
{
	char *out = NULL;

	expect_pod_path(CGROUP_DRIVER_CGROUPFS, "", "", "/criod/criod-" ID);
	expect_pod_path(CGROUP_DRIVER_CGROUPFS, NULL, NULL, "/criod/criod-" ID);
	expect_pod_path(CGROUP_DRIVER_CGROUPFS, "", "/custom", "/custom/criod-" ID);
	expect_pod_path(CGROUP_DRIVER_CGROUPFS, "/kubepods/besteffort/pod1", "/custom",
			"/kubepods/besteffort/pod1/criod-" ID);
	expect_pod_path(CGROUP_DRIVER_CGROUPFS, "/", "", "/criod-" ID);
	expect_pod_path(CGROUP_DRIVER_SYSTEMD, "", "", "/criod.slice/criod-" ID ".scope");
	expect_pod_path(CGROUP_DRIVER_SYSTEMD, "", "machine.slice", "/machine.slice/criod-" ID ".scope");
	expect_pod_path(CGROUP_DRIVER_SYSTEMD, "kubepods-besteffort-pod123.slice", "",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/criod-" ID
			".scope");
	expect_pod_path(CGROUP_DRIVER_SYSTEMD, "-.slice", "", "/criod-" ID ".scope");

	/* A parent of the other driver's kind, or none valid at all. */
	assert_int_equal(cgroup_pod_path(CGROUP_DRIVER_SYSTEMD, "/kubepods", "", ID, &out), -EINVAL);
	assert_int_equal(cgroup_pod_path(CGROUP_DRIVER_CGROUPFS, "kubepods.slice", "", ID, &out), -EINVAL);
	assert_int_equal(cgroup_pod_path(CGROUP_DRIVER_CGROUPFS, "/a/../../etc", "", ID, &out), -EINVAL);
	assert_int_equal(cgroup_pod_path(CGROUP_DRIVER_CGROUPFS, "", "relative", ID, &out), -EINVAL);
	assert_int_equal(cgroup_pod_path(CGROUP_DRIVER_CGROUPFS, "", "", "ABC", &out), -EINVAL);
	assert_int_equal(cgroup_pod_path(CGROUP_DRIVER_CGROUPFS, "", "", NULL, &out), -EINVAL);
	assert_null(out);

	/* Valid parent, but no room left for the pod's own name. */
	char p[CGROUP_PATH_MAX + 1];
	for (size_t i = 0; i < CGROUP_PATH_MAX; i++)
		p[i] = i % 100 == 0 ? '/' : 'b';
	p[CGROUP_PATH_MAX] = '\0';
	assert_int_equal(cgroup_pod_path(CGROUP_DRIVER_CGROUPFS, p, "", ID, &out), -ENAMETOOLONG);

	/* Records read back: only a pod cgroup of that very pod. */
	assert_true(cgroup_is_pod_path("/x/criod-" ID, ID));
	assert_true(cgroup_is_pod_path("/a.slice/criod-" ID ".scope", ID));
	assert_false(cgroup_is_pod_path("/x/criod-" ID "x", ID));
	assert_false(cgroup_is_pod_path("/x/criod-" ID ".slice", ID));
	assert_false(cgroup_is_pod_path("/x/other-" ID, ID));
	assert_false(cgroup_is_pod_path("/x", ID));
	assert_false(cgroup_is_pod_path("/", ID));
	assert_false(cgroup_is_pod_path("/x/../criod-" ID, ID));
	assert_false(cgroup_is_pod_path("/x/criod-" ID, "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
}

static void test_driver_names(void **state)
{
	enum cgroup_driver d;
	assert_int_equal(cgroup_driver_from_string("cgroupfs", &d), 0);
	assert_int_equal(d, CGROUP_DRIVER_CGROUPFS);
	assert_int_equal(cgroup_driver_from_string("systemd", &d), 0);
	assert_int_equal(d, CGROUP_DRIVER_SYSTEMD);
	assert_int_equal(cgroup_driver_from_string("Systemd", &d), -EINVAL);
	assert_int_equal(cgroup_driver_from_string("", &d), -EINVAL);
	assert_int_equal(cgroup_driver_from_string(NULL, &d), -EINVAL);
	assert_string_equal(cgroup_driver_to_string(CGROUP_DRIVER_SYSTEMD), "systemd");
	assert_string_equal(cgroup_mode_to_string(CGROUP_MODE_HYBRID), "hybrid");
}

static void test_proc_stat_parse(void **state)
{
	char state_c = 0;
	uint64_t start = 0;

	/* fields 3..22: state ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime stime cutime cstime priority nice threads
	 * itrealvalue starttime */
	assert_int_equal(proc_stat_parse("1234 (pause) S 1 1234 1234 0 -1 4194560 90 0 0 0 0 0 0 0 20 0 1 0 "
					 "987654 2134016 100 18446744073709551615\n",
					 &state_c, &start),
			 0);
	assert_int_equal(state_c, 'S');
	assert_int_equal(start, 987654);
	/* A command name with spaces and parentheses. */
	assert_int_equal(proc_stat_parse("7 (a) b) (c) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 0 0\n", &state_c,
					 &start),
			 0);
	assert_int_equal(state_c, 'Z');
	assert_int_equal(start, 42);
	/* The last field. */
	assert_int_equal(proc_stat_parse("7 (a) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 43", NULL, &start), 0);
	assert_int_equal(start, 43);
	assert_int_equal(proc_stat_parse("7 (a) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0", NULL, &start), -EINVAL);
	assert_int_equal(proc_stat_parse("7 (a) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x4", NULL, &start),
			 -EINVAL);
	assert_int_equal(proc_stat_parse("7 (a R 1", NULL, &start), -EINVAL);
	assert_int_equal(proc_stat_parse("", NULL, &start), -EINVAL);
	assert_int_equal(proc_stat_parse(NULL, NULL, &start), -EINVAL);

	/* This very process, through /proc. */
	uint64_t mine = 0;
	assert_int_equal(proc_stat(getpid(), &state_c, &mine), 0);
	assert_true(mine > 0);
	assert_int_equal(state_c, 'R');
	assert_true(proc_alive(getpid(), mine));
	assert_false(proc_alive(getpid(), mine + 1));
	assert_int_equal(proc_stat(0, NULL, NULL), -ESRCH);
}

static void mkdirs(const char *root, const char *rel)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s%s", root, rel);
	for (char *p = path + strlen(root) + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	assert_int_equal(mkdir(path, 0755), 0);
}

static void test_find_pod(void **state)
{
	char root[] = "/tmp/test_cgroup.XXXXXX", a[4200], b[4200];
	const char *other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
	assert_non_null(mkdtemp(root));
	snprintf(a, sizeof(a), "%s/memory", root);
	snprintf(b, sizeof(b), "%s/cpu", root);
	struct cgroup_hierarchy hs[] = { { .mount = a, .name = "memory" }, { .mount = b, .name = "cpu" } };
	struct cgroup_host h = { .mode = CGROUP_MODE_V1, .h = hs, .n = 2 };
	assert_int_equal(mkdir(a, 0755), 0);
	assert_int_equal(mkdir(b, 0755), 0);
	mkdirs(a, "/kubepods/burstable/pod1/criod-" "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
	/* below another pod's cgroup is never looked at */
	mkdirs(a, "/kubepods/burstable/pod1/criod-" "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210/criod-" ID);
	assert_null(cgroup_find_pod(&h, ID));
	/* only in the second hierarchy, and a slice named criod-... is searched */
	mkdirs(b, "/criod.slice/criod-besteffort.slice/criod-" ID ".scope");
	char *found = cgroup_find_pod(&h, ID);
	assert_non_null(found);
	assert_string_equal(found, "/criod.slice/criod-besteffort.slice/criod-" ID ".scope");
	free(found);
	found = cgroup_find_pod(&h, other);
	assert_non_null(found);
	assert_string_equal(found, "/kubepods/burstable/pod1/criod-" "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
	free(found);
	/* deeper than CGROUP_FIND_DEPTH: not found */
	const char *id3 = "1111111111111111111111111111111111111111111111111111111111111111";
	char deep[1024] = "";
	for (int i = 0; i < CGROUP_FIND_DEPTH; i++)
		strcat(deep, "/d");
	strcat(deep, "/criod-");
	strcat(deep, id3);
	mkdirs(a, deep);
	assert_null(cgroup_find_pod(&h, id3));
	assert_null(cgroup_find_pod(&h, "not-an-id"));
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slice_expand),
		cmocka_unit_test(test_path_valid),
		cmocka_unit_test(test_pod_path),
		cmocka_unit_test(test_driver_names),
		cmocka_unit_test(test_proc_stat_parse),
		cmocka_unit_test(test_find_pod),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
