/* Unit tests for common/prom.c (the Prometheus text format writer and the
 * fixed-bucket histograms) and common/procstat.c's parsers. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "procstat.h"
#include "prom.h"

static void test_family_and_samples(void **state)
{
	struct prom_buf b = {0};
	prom_family(&b, "x_requests_total", "Calls, by \\ method\nand code.", PROM_COUNTER);
	struct prom_label l[] = {{"method", "Version"}, {"code", "OK"}};
	prom_sample_u64(&b, "x_requests_total", l, 2, 18446744073709551615ull);
	prom_family(&b, "x_up", "Up.", PROM_GAUGE);
	prom_sample(&b, "x_up", NULL, 0, 1);
	prom_sample(&b, "x_up", NULL, 0, 0.25);
	prom_sample(&b, "x_up", NULL, 0, 0.1);
	prom_sample(&b, "x_up", NULL, 0, -3);
	prom_sample(&b, "x_up", NULL, 0, INFINITY);
	prom_sample(&b, "x_up", NULL, 0, NAN);
	prom_sample(&b, "x_up", NULL, 0, 1e20);
	assert_false(prom_buf_failed(&b));
	assert_string_equal(b.data, "# HELP x_requests_total Calls, by \\\\ method\\nand code.\n"
				    "# TYPE x_requests_total counter\n"
				    "x_requests_total{method=\"Version\",code=\"OK\"} 18446744073709551615\n"
				    "# HELP x_up Up.\n"
				    "# TYPE x_up gauge\n"
				    "x_up 1\nx_up 0.25\nx_up 0.1\nx_up -3\nx_up +Inf\nx_up NaN\nx_up 1e+20\n");
	assert_int_equal(b.len, strlen(b.data));
	prom_buf_free(&b);
}

static void test_label_escaping(void **state)
{
	struct prom_buf b = {0};
	struct prom_label l[] = {{"a", "q\"uote\\back\nline"}, {"b", NULL}};
	prom_sample_u64(&b, "m", l, 2, 7);
	assert_string_equal(b.data, "m{a=\"q\\\"uote\\\\back\\nline\",b=\"\"} 7\n");
	prom_buf_free(&b);
}

static void test_histogram_buckets(void **state)
{
	static const double bounds[] = {0.1, 0.5, 1};
	struct prom_hist h;
	prom_hist_init(&h, bounds, 3);
	/* le: a value on a bound goes into that bucket */
	prom_hist_observe(&h, 0.1);
	prom_hist_observe(&h, 0.05);
	prom_hist_observe(&h, 0.3);
	prom_hist_observe(&h, 1);
	prom_hist_observe(&h, 7);
	assert_int_equal(h.counts[0], 2);
	assert_int_equal(h.counts[1], 1);
	assert_int_equal(h.counts[2], 1);
	assert_int_equal(h.counts[3], 1);
	assert_int_equal(prom_hist_count(&h), 5);
	assert_true(fabs(h.sum - 8.45) < 1e-9);
	struct prom_buf b = {0};
	struct prom_label l[] = {{"method", "Version"}};
	prom_hist_write(&b, "d_seconds", l, 1, &h);
	assert_string_equal(b.data, "d_seconds_bucket{method=\"Version\",le=\"0.1\"} 2\n"
				    "d_seconds_bucket{method=\"Version\",le=\"0.5\"} 3\n"
				    "d_seconds_bucket{method=\"Version\",le=\"1\"} 4\n"
				    "d_seconds_bucket{method=\"Version\",le=\"+Inf\"} 5\n"
				    "d_seconds_sum{method=\"Version\"} 8.45\n"
				    "d_seconds_count{method=\"Version\"} 5\n");
	prom_buf_free(&b);
	/* no labels: le alone */
	prom_hist_init(&h, bounds, 1);
	prom_hist_write(&b, "e", NULL, 0, &h);
	assert_string_equal(b.data, "e_bucket{le=\"0.1\"} 0\ne_bucket{le=\"+Inf\"} 0\ne_sum 0\ne_count 0\n");
	prom_buf_free(&b);
}

static void test_latency_bounds_and_by_status(void **state)
{
	/* ascending, the shortest forms in the le labels */
	for (size_t i = 1; i < prom_n_latency_bounds; i++)
		assert_true(prom_latency_bounds[i] > prom_latency_bounds[i - 1]);
	assert_true(prom_n_latency_bounds <= PROM_MAX_BUCKETS);
	struct prom_hist h;
	prom_hist_init(&h, prom_latency_bounds, prom_n_latency_bounds);
	struct prom_buf b = {0};
	prom_hist_write(&b, "l", NULL, 0, &h);
	assert_non_null(strstr(b.data, "le=\"0.0025\""));
	assert_non_null(strstr(b.data, "le=\"120\""));
	prom_buf_free(&b);
	/* too many bounds are cut */
	double many[PROM_MAX_BUCKETS + 5];
	for (size_t i = 0; i < PROM_MAX_BUCKETS + 5; i++)
		many[i] = (double)i + 1;
	prom_hist_init(&h, many, PROM_MAX_BUCKETS + 5);
	assert_int_equal(h.n_bounds, PROM_MAX_BUCKETS);
	prom_hist_observe(&h, 1000);
	assert_int_equal(h.counts[PROM_MAX_BUCKETS], 1);

	struct prom_by_status s;
	prom_by_status_init(&s, prom_latency_bounds, prom_n_latency_bounds);
	prom_by_status_observe(&s, 0, 0.002, 100);
	prom_by_status_observe(&s, 5, 0.5, 7);
	prom_by_status_observe(&s, 99, 1, 1); /* counted as UNKNOWN */
	prom_by_status_observe(&s, -1, 1, 1);
	assert_int_equal(prom_hist_count(&s.h[0]), 1);
	assert_int_equal(s.bytes[0], 100);
	assert_int_equal(prom_hist_count(&s.h[5]), 1);
	assert_int_equal(prom_hist_count(&s.h[2]), 2);
	assert_int_equal(s.bytes[2], 2);
}

static void test_procstat_parsers(void **state)
{
	uint64_t cpu, threads, start;
	/* the command holds spaces and a ')' */
	const char *stat = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 123456 "
			   "1000000 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
	assert_int_equal(procstat_parse_stat(stat, 100, &cpu, &threads, &start), 0);
	assert_true(cpu == 3000000000ull); /* (250 + 50) ticks at 100 Hz */
	assert_int_equal(threads, 7);
	assert_int_equal(start, 123456);
	assert_int_equal(procstat_parse_stat("1 (x) S 1 2 3\n", 100, &cpu, &threads, &start), -EINVAL);
	assert_int_equal(procstat_parse_stat("no parenthesis", 100, &cpu, &threads, &start), -EINVAL);
	assert_int_equal(procstat_parse_stat(stat, 0, &cpu, &threads, &start), -EINVAL);

	int64_t bt;
	assert_int_equal(procstat_parse_btime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n", &bt), 0);
	assert_int_equal(bt, 1700000000);
	assert_int_equal(procstat_parse_btime("cpu 1\n", &bt), -ENOENT);
	assert_int_equal(procstat_parse_btime("btime x\n", &bt), -EINVAL);

	uint64_t pages;
	assert_int_equal(procstat_parse_statm("2048 512 100 1 0 300 0\n", &pages), 0);
	assert_int_equal(pages, 512);
	assert_int_equal(procstat_parse_statm("2048\n", &pages), -EINVAL);

	/* NSpid: PID 1 of a namespace below ours, not our own namespace's init */
	assert_true(procstat_parse_ns_init("Name:\tsh\nNSpid:\t4242\t1\nNSsid:\t1\n"));
	assert_true(procstat_parse_ns_init("NSpid:\t4242\t7\t1"));
	assert_false(procstat_parse_ns_init("NSpid:\t1\n"));        /* the init of the reader's own namespace */
	assert_false(procstat_parse_ns_init("NSpid:\t4242\t12\n"));
	assert_false(procstat_parse_ns_init("Name:\tsh\nPid:\t1\n")); /* no NSpid line */
	assert_false(procstat_parse_ns_init("Name:\tNSpid:\t5\t1\n")); /* not at a line's start */
	assert_false(procstat_parse_ns_init(""));

	/* our own process: every figure read */
	struct proc_figures f;
	procstat_self(&f);
	assert_true(f.have_stat && f.have_rss && f.have_fds);
	assert_true(f.rss_bytes > 0 && f.threads >= 1 && f.open_fds >= 3 && f.start_time_ns > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_and_samples), cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_histogram_buckets),  cmocka_unit_test(test_latency_bounds_and_by_status),
		cmocka_unit_test(test_procstat_parsers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
