/* Unit tests for criod/cgroup_stats.c: the parsers of cgroup v1 and v2
 * files and the reading of fixture cgroup trees (v2 as on a unified host,
 * v1 as on this project's hybrid test machine). */
#include <errno.h>
#include <fcntl.h>
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

#include "cgroup_stats.h"

#define MiB (1024ull * 1024)

static void test_parse_u64(void **state)
{
	uint64_t v;
	assert_int_equal(cg_parse_u64("12345\n", &v), 0);
	assert_int_equal(v, 12345);
	assert_int_equal(cg_parse_u64("max\n", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(cg_parse_u64("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(cg_parse_u64("18446744073709551616", &v), -EINVAL); /* overflow */
	assert_int_equal(cg_parse_u64("", &v), -EINVAL);
	assert_int_equal(cg_parse_u64("-1", &v), -EINVAL);
	assert_int_equal(cg_parse_u64("12 34", &v), -EINVAL);
	assert_int_equal(cg_parse_u64("12x", &v), -EINVAL);
	assert_int_equal(cg_parse_u64(NULL, &v), -EINVAL);
}

static void test_parse_keyed(void **state)
{
	const char *stat = "cache 100\nrss 200\ntotal_rss 300\ntotal_rss_huge 7\nbad x\n";
	uint64_t v;
	assert_int_equal(cg_parse_keyed(stat, "rss", &v), 0);
	assert_int_equal(v, 200);
	assert_int_equal(cg_parse_keyed(stat, "total_rss", &v), 0); /* not total_rss_huge */
	assert_int_equal(v, 300);
	assert_int_equal(cg_parse_keyed(stat, "total_rss_huge", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(cg_parse_keyed(stat, "total", &v), -ENOENT); /* a prefix is not a key */
	assert_int_equal(cg_parse_keyed(stat, "missing", &v), -ENOENT);
	assert_int_equal(cg_parse_keyed(stat, "bad", &v), -EINVAL);
	assert_int_equal(cg_parse_keyed("last 9", "last", &v), 0); /* no trailing newline */
	assert_int_equal(v, 9);
	assert_int_equal(cg_parse_keyed(NULL, "x", &v), -ENOENT);
}

static void test_v1_memory(void **state)
{
	struct cg_stats s = {0};
	/* 100 MiB used, 30 MiB of it inactive file pages: working set 70 MiB. */
	cg_v1_memory("104857600\n",
		     "cache 1\nrss 2\ninactive_file 5\ntotal_cache 4\ntotal_rss 52428800\ntotal_inactive_file 31457280\n"
		     "total_pgfault 1000\ntotal_pgmajfault 3\n",
		     "9223372036854771712\n", NULL, NULL, &s);
	assert_true(s.have_mem);
	assert_int_equal(s.mem_usage, 100 * MiB);
	assert_int_equal(s.working_set, 70 * MiB);
	assert_int_equal(s.rss, 50 * MiB);
	assert_int_equal(s.pgfault, 1000);
	assert_int_equal(s.pgmajfault, 3);
	assert_false(s.have_limit); /* v1's "unlimited" */
	assert_false(s.have_swap);  /* no swap accounting */

	memset(&s, 0, sizeof(s));
	cg_v1_memory("1000\n", "total_inactive_file 5000\n", "268435456\n", "1500\n", "536870912\n", &s);
	assert_int_equal(s.working_set, 0); /* inactive above usage: never negative */
	assert_true(s.have_limit);
	assert_int_equal(s.mem_limit, 256 * MiB);
	assert_true(s.have_swap);
	assert_int_equal(s.swap_usage, 500);
	assert_true(s.have_swap_limit);
	assert_int_equal(s.swap_limit, 256 * MiB);

	memset(&s, 0, sizeof(s));
	cg_v1_memory(NULL, "total_rss 1\n", NULL, NULL, NULL, &s);
	assert_false(s.have_mem);
	cg_v1_memory("garbage", "total_rss 1\n", NULL, NULL, NULL, &s);
	assert_false(s.have_mem);
}

static void test_v2_memory(void **state)
{
	struct cg_stats s = {0};
	cg_v2_memory("73400320\n", "anon 41943040\nfile 31457280\ninactive_file 10485760\npgfault 77\npgmajfault 1\n",
		     "max\n", "4096\n", "max\n", &s);
	assert_true(s.have_mem);
	assert_int_equal(s.mem_usage, 70 * MiB);
	assert_int_equal(s.working_set, 60 * MiB);
	assert_int_equal(s.rss, 40 * MiB);
	assert_int_equal(s.pgfault, 77);
	assert_int_equal(s.pgmajfault, 1);
	assert_false(s.have_limit);
	assert_true(s.have_swap);
	assert_int_equal(s.swap_usage, 4096);
	assert_false(s.have_swap_limit);

	memset(&s, 0, sizeof(s));
	cg_v2_memory("100\n", "anon 100\n", "1048576\n", NULL, NULL, &s);
	assert_true(s.have_limit);
	assert_int_equal(s.mem_limit, MiB);
	assert_int_equal(s.working_set, 100); /* no inactive_file line */
	assert_false(s.have_swap);
}

static void test_cpu_and_pids(void **state)
{
	struct cg_stats s = {0};
	cg_v1_cpu("123456789\n", &s);
	assert_true(s.have_cpu);
	assert_int_equal(s.cpu_ns, 123456789);
	memset(&s, 0, sizeof(s));
	cg_v2_cpu("usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n", &s);
	assert_true(s.have_cpu);
	assert_int_equal(s.cpu_ns, 2500000);
	memset(&s, 0, sizeof(s));
	cg_v2_cpu("user_usec 2000\n", &s);
	assert_false(s.have_cpu);
	cg_pids("3\n", &s);
	assert_true(s.have_pids);
	assert_int_equal(s.pids, 3);
	cg_pids("max\n", &s);
	assert_false(s.have_pids);
}

static void test_nano_cores(void **state)
{
	/* One full core for a second; half a core; two cores. */
	assert_int_equal(cg_nano_cores(0, 0, 1000000000, 1000000000), 1000000000);
	assert_int_equal(cg_nano_cores(1000, 5000000000LL, 500001000, 6000000000LL), 500000000);
	assert_int_equal(cg_nano_cores(0, 0, 200000000, 100000000), 2000000000);
	assert_int_equal(cg_nano_cores(5, 10, 5, 20), 0);
	assert_int_equal(cg_nano_cores(10, 10, 5, 20), 0); /* the counter went back (a new cgroup) */
	assert_int_equal(cg_nano_cores(0, 10, 5, 10), 0);  /* no time passed */
	assert_int_equal(cg_nano_cores(0, 20, 5, 10), 0);
}

/* ---- fixture trees ---- */

static void put(const char *root, const char *rel, const char *text)
{
	char p[4096];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		(void)mkdir(p, 0755);
		*s = '/';
	}
	if (!text) {
		(void)mkdir(p, 0755);
		return;
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void rm_tree(const char *root)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

static void test_read_v2_tree(void **state)
{
	char root[] = "/tmp/cgstats-v2-XXXXXX";
	assert_non_null(mkdtemp(root));
	const char *cg = "kubepods/pod1/criod-abc";
	char rel[256];
#define F(file, text) (snprintf(rel, sizeof(rel), "%s/%s", cg, file), put(root, rel, text))
	F("cpu.stat", "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 0\n");
	F("memory.current", "20971520\n");
	F("memory.stat", "anon 8388608\nfile 12582912\ninactive_file 4194304\nactive_file 8388608\npgfault 42\n"
			 "pgmajfault 2\n");
	F("memory.max", "67108864\n");
	F("memory.swap.current", "0\n");
	F("memory.swap.max", "max\n");
	F("pids.current", "4\n");
#undef F
	struct cg_stats s;
	assert_int_equal(cg_read_stats(root, true, "/kubepods/pod1/criod-abc", &s), 0);
	assert_true(s.have_cpu);
	assert_int_equal(s.cpu_ns, 1500000000ull);
	assert_true(s.have_mem);
	assert_int_equal(s.mem_usage, 20 * MiB);
	assert_int_equal(s.working_set, 16 * MiB);
	assert_int_equal(s.rss, 8 * MiB);
	assert_int_equal(s.pgfault, 42);
	assert_int_equal(s.pgmajfault, 2);
	assert_true(s.have_limit);
	assert_int_equal(s.mem_limit, 64 * MiB);
	assert_true(s.have_swap);
	assert_int_equal(s.swap_usage, 0);
	assert_false(s.have_swap_limit);
	assert_true(s.have_pids);
	assert_int_equal(s.pids, 4);

	/* A cgroup that is not there yet (a created container): -ENOENT. */
	assert_int_equal(cg_read_stats(root, true, "/kubepods/pod1/criod-def", &s), -ENOENT);
	/* A cgroup with only some files: the rest absent, nothing made up. */
	put(root, "kubepods/pod2", NULL);
	put(root, "kubepods/pod2/pids.current", "1\n");
	assert_int_equal(cg_read_stats(root, true, "/kubepods/pod2", &s), 0);
	assert_false(s.have_cpu);
	assert_false(s.have_mem);
	assert_true(s.have_pids);
	assert_int_equal(cg_read_stats(root, true, "/kubepods/../pod1", &s), -EINVAL);
	assert_int_equal(cg_read_stats(root, true, "kubepods", &s), -EINVAL);
	rm_tree(root);
}

static void test_read_v1_tree(void **state)
{
	char root[] = "/tmp/cgstats-v1-XXXXXX";
	assert_non_null(mkdtemp(root));
	put(root, "cpuacct/criod/criod-p/criod-c/cpuacct.usage", "987654321\n");
	put(root, "memory/criod/criod-p/criod-c/memory.usage_in_bytes", "10485760\n");
	put(root, "memory/criod/criod-p/criod-c/memory.stat",
	    "cache 3\nrss 4\ntotal_cache 6291456\ntotal_rss 4194304\ntotal_inactive_file 2097152\ntotal_pgfault 9\n"
	    "total_pgmajfault 0\n");
	put(root, "memory/criod/criod-p/criod-c/memory.limit_in_bytes", "9223372036854771712\n");
	put(root, "pids/criod/criod-p/criod-c/pids.current", "2\n");
	struct cg_stats s;
	assert_int_equal(cg_read_stats(root, false, "/criod/criod-p/criod-c", &s), 0);
	assert_true(s.have_cpu);
	assert_int_equal(s.cpu_ns, 987654321);
	assert_true(s.have_mem);
	assert_int_equal(s.mem_usage, 10 * MiB);
	assert_int_equal(s.working_set, 8 * MiB);
	assert_int_equal(s.rss, 4 * MiB);
	assert_int_equal(s.pgfault, 9);
	assert_false(s.have_limit);
	assert_false(s.have_swap); /* no memsw files: swap accounting off */
	assert_true(s.have_pids);
	assert_int_equal(s.pids, 2);
	assert_int_equal(cg_read_stats(root, false, "/criod/criod-p/criod-x", &s), -ENOENT);
	rm_tree(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),    cmocka_unit_test(test_parse_keyed),
		cmocka_unit_test(test_v1_memory),    cmocka_unit_test(test_v2_memory),
		cmocka_unit_test(test_cpu_and_pids), cmocka_unit_test(test_nano_cores),
		cmocka_unit_test(test_read_v2_tree), cmocka_unit_test(test_read_v1_tree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
