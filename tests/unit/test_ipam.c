/* Unit tests for netd/ipam.c: subnet parsing, offsets, round-robin
 * next-free selection with exhaustion (IPv4 and IPv6), and the on-disk
 * allocations (O_EXCL files, release, sweep) in a temporary directory. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ipam.h"
#include "macro.h"
#include "util.h"

#define POD_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define POD_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct ipam_subnet parse_ok(const char *cidr, int family)
{
	struct ipam_subnet s;
	char err[256] = "";
	int r = ipam_parse_subnet(cidr, family, &s, err, sizeof(err));
	if (r != 0)
		fail_msg("%s: %s", cidr, err);
	return s;
}

static void test_parse_ipv4(void **state)
{
	struct ipam_subnet s = parse_ok("10.88.0.0/16", 0);
	assert_int_equal(s.family, AF_INET);
	assert_int_equal(s.prefix, 16);
	assert_int_equal(s.host_bits, 16);
	assert_string_equal(s.cidr, "10.88.0.0/16");
	assert_string_equal(s.key, "10.88.0.0-16");
	assert_int_equal(s.first, 2);
	assert_int_equal(s.last, 65534);

	s = parse_ok("192.168.7.0/24", AF_INET);
	assert_int_equal(s.last, 254);
	s = parse_ok("10.0.0.0/8", AF_INET);
	assert_int_equal(s.last, (1u << 24) - 2);
	s = parse_ok("10.213.5.4/30", AF_INET);
	assert_int_equal(s.first, 2);
	assert_int_equal(s.last, 2); /* network, gateway, one pod, broadcast */
}

static void test_parse_ipv6(void **state)
{
	struct ipam_subnet s = parse_ok("fd00:88::/64", 0);
	assert_int_equal(s.family, AF_INET6);
	assert_int_equal(s.host_bits, 64);
	assert_string_equal(s.cidr, "fd00:88::/64");
	assert_string_equal(s.key, "fd00:88::-64");
	assert_int_equal(s.first, 2);
	assert_true(s.last == UINT64_MAX); /* no broadcast in IPv6 */

	s = parse_ok("FD00:0088:0000::/64", AF_INET6); /* canonical form */
	assert_string_equal(s.cidr, "fd00:88::/64");
	s = parse_ok("2001:db8:1:2::/120", AF_INET6);
	assert_int_equal(s.last, 255);
	s = parse_ok("2001:db8::/126", AF_INET6);
	assert_int_equal(s.last, 3);
}

static void test_parse_invalid(void **state)
{
	static const struct {
		const char *cidr;
		int family;
	} bad[] = {
		{ "", 0 },
		{ "10.88.0.0", 0 },
		{ "10.88.0.0/", 0 },
		{ "/16", 0 },
		{ "10.88.0.0/abc", 0 },
		{ "10.88.0.0/-1", 0 },
		{ "10.88.0.0/1600", 0 },
		{ "10.88.0.0/16 ", 0 },
		{ "10.88.0.1/16", 0 },   /* host bits */
		{ "10.88.0.0/31", 0 },   /* too small */
		{ "10.88.0.0/32", 0 },
		{ "10.0.0.0/7", 0 },     /* too large */
		{ "300.1.1.0/24", 0 },
		{ "10.88.0/16", 0 },
		{ "010.88.0.0/16", 0 },
		{ "127.0.0.0/8", 0 },    /* loopback */
		{ "224.0.0.0/24", 0 },   /* multicast */
		{ "240.0.0.0/24", 0 },   /* reserved */
		{ "0.0.0.0/8", 0 },
		{ "fd00:88::/64", AF_INET },
		{ "10.88.0.0/16", AF_INET6 },
		{ "fd00::1/64", 0 },     /* host bits */
		{ "fd00::/63", 0 },      /* more than 64 host bits */
		{ "fd00::/127", 0 },
		{ "::/64", 0 },
		{ "ff02::/64", 0 },
		{ "fe80::/64", 0 },
		{ "fd00:::/64", 0 },
		{ "fd00::%eth0/64", 0 },
		{ "10.88.0.0/16/16", 0 },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/16", 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct ipam_subnet s;
		char err[256] = "";
		int r = ipam_parse_subnet(bad[i].cidr, bad[i].family, &s, err, sizeof(err));
		if (r != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i].cidr);
		assert_true(err[0] != '\0');
	}
	struct ipam_subnet s;
	assert_int_equal(ipam_parse_subnet(NULL, 0, &s, NULL, 0), -EINVAL);
}

static void test_offsets(void **state)
{
	struct ipam_subnet s = parse_ok("10.88.0.0/16", 0);
	char buf[IPAM_ADDR_MAX];
	uint64_t off;

	assert_int_equal(ipam_format(&s, 5, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.88.0.5");
	assert_int_equal(ipam_format(&s, 258, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.88.1.2");
	assert_int_equal(ipam_gateway(&s, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.88.0.1");
	assert_int_equal(ipam_parse_addr(&s, "10.88.1.2", &off), 0);
	assert_int_equal(off, 258);
	assert_int_equal(ipam_parse_addr(&s, "10.88.255.255", &off), 0);
	assert_int_equal(off, 65535);
	assert_int_equal(ipam_parse_addr(&s, "10.89.0.1", &off), -ERANGE);
	assert_int_equal(ipam_parse_addr(&s, "fd00::1", &off), -EINVAL);
	assert_int_equal(ipam_parse_addr(&s, "garbage", &off), -EINVAL);
	assert_int_equal(ipam_parse_addr(&s, "", &off), -EINVAL);

	struct ipam_subnet s6 = parse_ok("fd00:88::/64", 0);
	assert_int_equal(ipam_format(&s6, 0x1234, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fd00:88::1234");
	assert_int_equal(ipam_gateway(&s6, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fd00:88::1");
	assert_int_equal(ipam_format(&s6, UINT64_MAX, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fd00:88::ffff:ffff:ffff:ffff");
	assert_int_equal(ipam_parse_addr(&s6, "fd00:88::ffff:ffff:ffff:ffff", &off), 0);
	assert_true(off == UINT64_MAX);
	assert_int_equal(ipam_parse_addr(&s6, "FD00:88:0::a", &off), 0);
	assert_int_equal(off, 10);
	assert_int_equal(ipam_parse_addr(&s6, "fd00:89::1", &off), -ERANGE);
	assert_int_equal(ipam_parse_addr(&s6, "10.88.0.1", &off), -EINVAL);

	struct ipam_subnet s120 = parse_ok("2001:db8:1:2::100/120", 0);
	assert_int_equal(ipam_parse_addr(&s120, "2001:db8:1:2::1ff", &off), 0);
	assert_int_equal(off, 255);
	assert_int_equal(ipam_parse_addr(&s120, "2001:db8:1:2::200", &off), -ERANGE);
}

static void test_sort_unique(void **state)
{
	uint64_t v[] = { 9, 3, 3, 7, 1, 9, 9 };
	size_t n = ipam_sort_unique(v, ARRAY_SIZE(v));
	assert_int_equal(n, 4);
	assert_int_equal(v[0], 1);
	assert_int_equal(v[1], 3);
	assert_int_equal(v[2], 7);
	assert_int_equal(v[3], 9);
	assert_int_equal(ipam_sort_unique(v, 0), 0);
}

static uint64_t next(const struct ipam_subnet *s, const uint64_t *used, size_t n, uint64_t last)
{
	uint64_t out = 0;
	int r = ipam_next_free(s, used, n, last, &out);
	if (r != 0)
		fail_msg("next_free failed: %d", r);
	return out;
}

static void test_next_free(void **state)
{
	struct ipam_subnet s = parse_ok("10.88.0.0/24", 0); /* 2..254 */
	uint64_t out;

	/* Fresh subnet: the first host after the gateway. */
	assert_int_equal(next(&s, NULL, 0, 0), 2);
	/* Round-robin: after the last allocated, even if lower ones are free. */
	assert_int_equal(next(&s, NULL, 0, 2), 3);
	assert_int_equal(next(&s, NULL, 0, 100), 101);
	{
		uint64_t used[] = { 2, 3, 4 };
		assert_int_equal(next(&s, used, 3, 0), 5);
		assert_int_equal(next(&s, used, 3, 3), 5);
	}
	{
		uint64_t used[] = { 11, 12, 14 };
		assert_int_equal(next(&s, used, 3, 10), 13);
	}
	/* Wraps past the end (254), never to broadcast (255). */
	assert_int_equal(next(&s, NULL, 0, 254), 2);
	{
		uint64_t used[] = { 2, 3, 254 };
		assert_int_equal(next(&s, used, 3, 253), 4);
	}
	/* A bogus "last" (gateway, broadcast, out of range) restarts at first. */
	assert_int_equal(next(&s, NULL, 0, 1), 2);
	assert_int_equal(next(&s, NULL, 0, 255), 2);
	assert_int_equal(next(&s, NULL, 0, 100000), 2);
	/* Used entries outside the allocatable range do not count. */
	{
		uint64_t used[] = { 0, 1, 255, 1000 };
		assert_int_equal(next(&s, used, 4, 0), 2);
	}

	/* Exhaustion: every one of 2..254 taken. */
	uint64_t *all = calloc(256, sizeof(*all));
	assert_non_null(all);
	size_t n = 0;
	for (uint64_t i = 2; i <= 254; i++)
		all[n++] = i;
	for (uint64_t last = 0; last < 300; last += 37)
		assert_int_equal(ipam_next_free(&s, all, n, last, &out), -ENOSPC);
	/* One freed: found from anywhere, wrapping around. */
	memmove(&all[100 - 2], &all[100 - 1], (n - (100 - 1)) * sizeof(*all));
	n--;
	for (uint64_t last = 0; last < 300; last += 13)
		assert_int_equal(next(&s, all, n, last), 100);
	free(all);

	/* The smallest subnets. */
	struct ipam_subnet s30 = parse_ok("10.9.9.0/30", 0);
	assert_int_equal(next(&s30, NULL, 0, 0), 2);
	assert_int_equal(next(&s30, NULL, 0, 2), 2);
	{
		uint64_t used[] = { 2 };
		assert_int_equal(ipam_next_free(&s30, used, 1, 0, &out), -ENOSPC);
	}
	struct ipam_subnet s29 = parse_ok("10.9.9.0/29", 0); /* 2..6 */
	{
		uint64_t used[] = { 2, 3, 5, 6 };
		assert_int_equal(next(&s29, used, 4, 4), 4);
		assert_int_equal(next(&s29, used, 4, 6), 4);
		uint64_t full[] = { 2, 3, 4, 5, 6 };
		assert_int_equal(ipam_next_free(&s29, full, 5, 3, &out), -ENOSPC);
	}
}

static void test_next_free_ipv6(void **state)
{
	struct ipam_subnet s = parse_ok("fd00:88::/64", 0);
	uint64_t out;

	assert_int_equal(next(&s, NULL, 0, 0), 2);
	{
		uint64_t used[] = { 2, 3 };
		assert_int_equal(next(&s, used, 2, 0), 4);
	}
	/* The top of a /64 is usable (no broadcast), then it wraps. */
	assert_true(next(&s, NULL, 0, UINT64_MAX - 1) == UINT64_MAX);
	assert_int_equal(next(&s, NULL, 0, UINT64_MAX), 2);
	{
		uint64_t used[] = { 2, UINT64_MAX };
		assert_int_equal(next(&s, used, 2, UINT64_MAX - 1), 3);
	}

	/* A /126 holds two pods: offsets 2 and 3. */
	struct ipam_subnet s126 = parse_ok("fd00:1::/126", 0);
	assert_int_equal(next(&s126, NULL, 0, 0), 2);
	{
		uint64_t used[] = { 2 };
		assert_int_equal(next(&s126, used, 1, 2), 3);
		uint64_t full[] = { 2, 3 };
		assert_int_equal(ipam_next_free(&s126, full, 2, 0, &out), -ENOSPC);
		assert_int_equal(ipam_next_free(&s126, full, 2, 3, &out), -ENOSPC);
	}
}

/* ---- on disk ---- */

static char tmpdir[64];

static int disk_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-ipam-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int disk_teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *file_text(const char *root, const char *key, const char *addr)
{
	char path[512];
	char *text = NULL;
	snprintf(path, sizeof(path), "%s/%s/%s", root, key, addr);
	if (read_file(path, 4096, &text, NULL) < 0)
		return NULL;
	return text;
}

static bool keep_a(const char *pod_id, void *ud) { return strcmp(pod_id, POD_A) == 0; }

static void test_disk_allocations(void **state)
{
	struct ipam im;
	char root[128], addr[IPAM_ADDR_MAX];
	struct ipam_subnet s = parse_ok("10.77.0.0/29", 0); /* .2 .. .6 */

	snprintf(root, sizeof(root), "%s/ipam", tmpdir);
	assert_int_equal(ipam_open(&im, root), 0);

	assert_int_equal(ipam_allocate(&im, &s, POD_A, addr), 0);
	assert_string_equal(addr, "10.77.0.2");
	char *t = file_text(root, s.key, addr);
	assert_non_null(t);
	assert_string_equal(t, POD_A "\n");
	free(t);
	assert_int_equal(ipam_allocate(&im, &s, POD_B, addr), 0);
	assert_string_equal(addr, "10.77.0.3");
	assert_int_equal(ipam_allocate(&im, &s, POD_A, addr), 0);
	assert_string_equal(addr, "10.77.0.4");
	/* The round-robin hint holds an offset, never an address. */
	t = file_text(root, s.key, ".last");
	assert_non_null(t);
	assert_string_equal(t, "4\n");
	free(t);

	/* Only the owner may free an address; freeing twice is fine. */
	assert_int_equal(ipam_release(&im, s.key, "10.77.0.3", POD_A), -EPERM);
	assert_int_equal(ipam_release(&im, s.key, "10.77.0.3", POD_B), 0);
	assert_int_equal(ipam_release(&im, s.key, "10.77.0.3", POD_B), 0);
	assert_int_equal(ipam_release(&im, "10.1.0.0-16", "10.1.0.3", POD_B), 0); /* unknown subnet */
	assert_int_equal(ipam_release(&im, "../x", "10.77.0.3", POD_B), -EINVAL);
	assert_int_equal(ipam_release(&im, s.key, "../../etc", POD_B), -EINVAL);
	assert_int_equal(ipam_release(&im, s.key, "10.77.0.3", "nope"), -EINVAL);

	/* Round-robin: the freed .3 is not handed out again right away. */
	assert_int_equal(ipam_allocate(&im, &s, POD_B, addr), 0);
	assert_string_equal(addr, "10.77.0.5");
	assert_int_equal(ipam_allocate(&im, &s, POD_B, addr), 0);
	assert_string_equal(addr, "10.77.0.6");
	assert_int_equal(ipam_allocate(&im, &s, POD_B, addr), 0);
	assert_string_equal(addr, "10.77.0.3"); /* wrapped */
	assert_int_equal(ipam_allocate(&im, &s, POD_B, addr), -ENOSPC);

	/* A lost ".last" hint only changes where the search starts. */
	char last[256];
	snprintf(last, sizeof(last), "%s/%s/.last", root, s.key);
	assert_int_equal(unlink(last), 0);
	assert_int_equal(ipam_release(&im, s.key, "10.77.0.5", POD_B), 0);
	assert_int_equal(ipam_allocate(&im, &s, POD_A, addr), 0);
	assert_string_equal(addr, "10.77.0.5");

	/* An allocation file an interrupted allocation left empty, and a
	 * leftover temp file: the sweep frees them with B's. */
	char junk[256];
	snprintf(junk, sizeof(junk), "%s/%s/.last.0123.tmp", root, s.key);
	assert_int_equal(write_file_atomic(junk, "x", 1, 0600), 0);
	assert_int_equal(ipam_release(&im, s.key, "10.77.0.6", POD_B), 0);
	snprintf(junk, sizeof(junk), "%s/%s/10.77.0.6", root, s.key);
	FILE *f = fopen(junk, "w");
	assert_non_null(f);
	fclose(f);
	int freed = ipam_sweep(&im, keep_a, NULL, NULL);
	assert_int_equal(freed, 2); /* .3 (B's) and .6 (empty); .2 .4 .5 are A's */
	t = file_text(root, s.key, "10.77.0.2");
	assert_non_null(t);
	free(t);
	assert_null(file_text(root, s.key, "10.77.0.3"));
	assert_null(file_text(root, s.key, "10.77.0.6"));
	assert_null(file_text(root, s.key, ".last.0123.tmp"));

	/* Claiming: recreate a lost file for its owner, refuse another's. */
	bool created = true;
	assert_int_equal(ipam_claim(&im, s.key, "10.77.0.2", POD_A, &created), 0);
	assert_false(created);
	assert_int_equal(ipam_claim(&im, s.key, "10.77.0.2", POD_B, &created), -EEXIST);
	assert_int_equal(ipam_claim(&im, s.key, "10.77.0.3", POD_B, &created), 0);
	assert_true(created);
	t = file_text(root, s.key, "10.77.0.3");
	assert_non_null(t);
	assert_string_equal(t, POD_B "\n");
	free(t);
	assert_int_equal(ipam_claim(&im, "../x", "10.77.0.3", POD_B, &created), -EINVAL);
	assert_int_equal(ipam_release(&im, s.key, "10.77.0.3", POD_B), 0);

	/* A pod's address found by its owner (its record was lost). */
	char got[IPAM_ADDR_MAX] = "";
	assert_int_equal(ipam_find_owned(&im, &s, POD_B, got), 0);
	assert_int_equal(ipam_allocate(&im, &s, POD_B, addr), 0);
	assert_int_equal(ipam_find_owned(&im, &s, POD_B, got), 1);
	assert_string_equal(got, addr);
	assert_int_equal(ipam_release(&im, s.key, addr, POD_B), 0);
	assert_int_equal(ipam_find_owned(&im, &s, POD_B, got), 0);
	struct ipam_subnet other = parse_ok("10.78.0.0/24", 0); /* no directory yet */
	assert_int_equal(ipam_find_owned(&im, &other, POD_A, got), 0);

	/* IPv6 next to it, in its own directory. */
	struct ipam_subnet s6 = parse_ok("fd00:77::/64", 0);
	assert_int_equal(ipam_allocate(&im, &s6, POD_A, addr), 0);
	assert_string_equal(addr, "fd00:77::2");
	assert_int_equal(ipam_allocate(&im, &s6, POD_A, addr), 0);
	assert_string_equal(addr, "fd00:77::3");
	t = file_text(root, "fd00:77::-64", "fd00:77::3");
	assert_non_null(t);
	free(t);
	assert_int_equal(ipam_allocate(&im, &s6, POD_B, addr), 0);
	assert_int_equal(ipam_find_owned(&im, &s6, POD_B, got), 1);
	assert_string_equal(got, "fd00:77::4");
	assert_int_equal(ipam_allocate(&im, &s6, "not-a-pod", addr), -EINVAL);
	ipam_close(&im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_sort_unique),
		cmocka_unit_test(test_next_free),
		cmocka_unit_test(test_next_free_ipv6),
		cmocka_unit_test_setup_teardown(test_disk_allocations, disk_setup, disk_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
