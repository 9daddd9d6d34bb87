/* Unit tests for netd/netstats.c: parsing /proc/net/dev. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "netstats.h"

static const char NET_DEV[] =
	"Inter-|   Receive                                                |  Transmit\n"
	" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls "
	"carrier compressed\n"
	"    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       "
	"0          0\n"
	"  eth0: 5242880    3700    2    1    0     0          0         0   123456     900    7    0    0     0       "
	"0          0\n"
	"  net1: 18446744073709551615 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n";

static void test_parse(void **state)
{
	struct if_stats s[4];
	size_t n;
	assert_int_equal(netstats_parse(NET_DEV, s, 4, &n), 0);
	assert_int_equal(n, 2); /* loopback left out */
	assert_string_equal(s[0].name, "eth0");
	assert_int_equal(s[0].rx_bytes, 5242880);
	assert_int_equal(s[0].rx_errors, 2);
	assert_int_equal(s[0].tx_bytes, 123456);
	assert_int_equal(s[0].tx_errors, 7);
	assert_string_equal(s[1].name, "net1");
	assert_true(s[1].rx_bytes == UINT64_MAX);
	/* At most max interfaces. */
	assert_int_equal(netstats_parse(NET_DEV, s, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(s[0].name, "eth0");
}

static void test_parse_bad(void **state)
{
	struct if_stats s[4];
	size_t n;
	assert_int_equal(netstats_parse("eth0: 1 2 3\n", s, 4, &n), -EINVAL); /* too few counters */
	assert_int_equal(netstats_parse("eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n", s, 4, &n), -EINVAL);
	assert_int_equal(netstats_parse("eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n", s, 4, &n), -EINVAL);
	assert_int_equal(netstats_parse("averyveryverylongname: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", s, 4, &n),
			 -EINVAL);
	assert_int_equal(netstats_parse("no colon here\n", s, 4, &n), -EINVAL);
	assert_int_equal(netstats_parse("", s, 4, &n), 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
