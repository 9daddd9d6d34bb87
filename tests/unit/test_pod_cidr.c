/* Unit tests for criod/pod_cidr.c: the pod CIDR of UpdateRuntimeConfig. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pod_cidr.h"

static void ok(const char *in, const char *want)
{
	char out[POD_CIDR_MAX], err[256] = "";
	int r = pod_cidr_parse(in, out, sizeof(out), err, sizeof(err));
	if (r != 0)
		fail_msg("'%s': %s", in, err);
	assert_string_equal(out, want);
}

static void bad(const char *in, const char *why)
{
	char out[POD_CIDR_MAX] = "x", err[256] = "";
	assert_int_equal(pod_cidr_parse(in, out, sizeof(out), err, sizeof(err)), -EINVAL);
	if (!strstr(err, why))
		fail_msg("'%s': error '%s' does not say '%s'", in, err, why);
	assert_string_equal(out, "");
}

static void test_valid(void **state)
{
	ok("", "");
	ok(NULL, "");
	ok("10.244.1.0/24", "10.244.1.0/24");
	ok("10.0.0.0/8", "10.0.0.0/8");
	ok("192.168.7.12/32", "192.168.7.12/32");
	ok("fd00:10:244:1::/64", "fd00:10:244:1::/64");
	ok("FD00:0010:0244:0001:0000::/64", "fd00:10:244:1::/64"); /* canonical form */
	ok("2001:db8::/32", "2001:db8::/32");
	ok("10.244.1.0/24,fd00:10:244:1::/64", "10.244.1.0/24,fd00:10:244:1::/64");
	ok("fd00:10:244:1::/64,10.244.1.0/24", "fd00:10:244:1::/64,10.244.1.0/24");
}

static void test_invalid(void **state)
{
	bad("10.244.1.0", "not ADDRESS/PREFIX");
	bad("10.244.1.0/", "not ADDRESS/PREFIX");
	bad("/24", "not ADDRESS/PREFIX");
	bad("10.244.1.0/2x", "not ADDRESS/PREFIX");
	bad("10.244.1.0/+24", "not ADDRESS/PREFIX");
	bad("10.244.1.0/1024", "not ADDRESS/PREFIX");
	bad("10.244.1.0/33", "prefix length must be 1..32");
	bad("10.244.1.0/0", "prefix length must be 1..32");
	bad("fd00::/129", "prefix length must be 1..128");
	bad("10.244.1.1/24", "host bits set");
	bad("fd00::1/64", "host bits set");
	bad("10.244.1.0 /24", "not an IPv4 address");
	bad("10.244.300.0/24", "not an IPv4 address");
	bad("fd00:::/64", "not an IPv6 address");
	bad("127.0.0.0/8", "not a unicast network");
	bad("0.0.0.0/8", "not a unicast network");
	bad("224.0.0.0/4", "not a unicast network");
	bad("::/128", "not a unicast network");
	bad("::1/128", "not a unicast network");
	bad("ff02::/16", "not a unicast network");
	bad("10.244.1.0/24,", "empty network");
	bad(",10.244.1.0/24", "empty network");
	bad("10.244.1.0/24,10.244.2.0/24", "two IPv4 networks");
	bad("fd00:1::/64,fd00:2::/64", "two IPv6 networks");
	bad("10.1.0.0/16,fd00::/64,10.2.0.0/16", "at most two networks");
	bad("10.244.1.0/24,bogus", "not ADDRESS/PREFIX");
	char longer[200];
	memset(longer, '1', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	bad(longer, "too long");
}

static void test_small_buffer(void **state)
{
	char out[8], err[64];
	assert_int_equal(pod_cidr_parse("10.0.0.0/8", out, sizeof(out), err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_small_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
