/* Unit tests for netd's hostPort policy (netd/hostport_policy.c) and the
 * [policy] host_port_* keys: the port range syntax, the /proc/net/{tcp,udp}
 * {,6} parser on fixture text (formatted as the kernel formats it), which
 * sockets count as taking a mapping's port, and the whole check against a
 * fixture directory. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

#include "config.h"
#include "hostport_policy.h"
#include "macro.h"
#include "status.h"
#include "util.h"

#define TCP_HEADER                                                                                           \
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode    \n"
#define TCP6_HEADER                                                                                          \
	"  sl  local_address                         remote_address                        st tx_queue rx_queue " \
	"tr tm->when retrnsmt   uid  timeout inode\n"
#define UDP_HEADER                                                                                           \
	"   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref " \
	"pointer drops             \n"

/* ---------------------------------------------------------------- the range */

static void test_port_range(void **state)
{
	uint16_t lo = 0, hi = 0;

	assert_int_equal(config_parse_port_range("1-65535", &lo, &hi), 0);
	assert_int_equal(lo, 1);
	assert_int_equal(hi, 65535);
	assert_int_equal(config_parse_port_range("30000-32767", &lo, &hi), 0);
	assert_int_equal(lo, 30000);
	assert_int_equal(hi, 32767);
	assert_int_equal(config_parse_port_range("8080", &lo, &hi), 0);
	assert_int_equal(lo, 8080);
	assert_int_equal(hi, 8080);
	assert_int_equal(config_parse_port_range("80 - 443", &lo, &hi), 0);
	assert_int_equal(lo, 80);
	assert_int_equal(hi, 443);
	assert_int_equal(config_parse_port_range("65535-65535", &lo, &hi), 0);

	lo = hi = 7;
	assert_int_equal(config_parse_port_range("0-100", &lo, &hi), -ERANGE);
	assert_int_equal(config_parse_port_range("0", &lo, &hi), -ERANGE);
	assert_int_equal(config_parse_port_range("100-99", &lo, &hi), -ERANGE);
	assert_int_equal(config_parse_port_range("1-65536", &lo, &hi), -ERANGE);
	assert_int_equal(config_parse_port_range("99999999999999999999999-1", &lo, &hi), -ERANGE);
	assert_int_equal(config_parse_port_range("", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("-", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("-80", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("80-", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("1-2-3", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("1..100", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("0x10-0x20", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("80,443", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range("+80", &lo, &hi), -EINVAL);
	assert_int_equal(config_parse_port_range(NULL, &lo, &hi), -EINVAL);
	/* nothing written on failure */
	assert_int_equal(lo, 7);
	assert_int_equal(hi, 7);
}

static void test_config_keys(void **state)
{
	struct criod_config cfg;
	struct hostport_policy p;
	char *error = NULL, err[256];

	config_defaults(&cfg);
	assert_string_equal(cfg.host_port_range, "1-65535");
	assert_true(cfg.host_port_local);
	assert_false(cfg.host_port_allow_in_use);
	assert_int_equal(hostport_policy_init(&p, &cfg, err, sizeof(err)), 0);
	assert_int_equal(p.lo, 1);
	assert_int_equal(p.hi, 65535);
	assert_true(p.local);
	assert_false(p.allow_in_use);
	assert_string_equal(p.range, "1-65535");

	assert_int_equal(config_parse_string(&cfg, "t.conf",
					     "[policy]\nhost_port_range = 30000 - 32767\nhost_port_local = no\n"
					     "host_port_allow_in_use = yes\n",
					     &error),
			 0);
	assert_null(error);
	assert_int_equal(hostport_policy_init(&p, &cfg, err, sizeof(err)), 0);
	assert_int_equal(p.lo, 30000);
	assert_int_equal(p.hi, 32767);
	assert_false(p.local);
	assert_true(p.allow_in_use);
	assert_string_equal(p.range, "30000-32767");

	/* A bad value is an error naming file, line and key; nothing changes. */
	static const char *const bad[] = { "0-10", "10-1", "1-70000", "http", "80,443", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_free_ char *text = NULL;
		assert_true(asprintf(&text, "[policy]\nhost_port_range = %s\n", bad[i]) > 0);
		assert_int_equal(config_parse_string(&cfg, "t.conf", text, &error), -EINVAL);
		assert_non_null(error);
		assert_non_null(strstr(error, "t.conf"));
		assert_non_null(strstr(error, ":2"));
		assert_non_null(strstr(error, "host_port_range"));
		free(error);
		error = NULL;
	}
	assert_string_equal(cfg.host_port_range, "30000 - 32767");
	assert_int_equal(config_parse_string(&cfg, "t.conf", "[policy]\nhost_port_local = maybe\n", &error), -EINVAL);
	assert_non_null(strstr(error, "host_port_local"));
	free(error);
	config_free(&cfg);
}

/* ---------------------------------------------------------------- listings */

/* One line as the kernel prints it: the address's 32-bit words as they lie
 * in memory, %08X each. */
static char *line(int sl, const char *local, unsigned lport, const char *remote, unsigned rport, unsigned st)
{
	unsigned char a[16] = { 0 }, b[16] = { 0 };
	bool v6 = strchr(local, ':') != NULL;
	char la[40] = "", ra[40] = "", *out = NULL;

	assert_int_equal(inet_pton(v6 ? AF_INET6 : AF_INET, local, a), 1);
	assert_int_equal(inet_pton(v6 ? AF_INET6 : AF_INET, remote, b), 1);
	for (size_t i = 0; i < (v6 ? 4u : 1u); i++) {
		uint32_t w, x;
		memcpy(&w, a + 4 * i, 4);
		memcpy(&x, b + 4 * i, 4);
		snprintf(la + 8 * i, sizeof(la) - 8 * i, "%08X", w);
		snprintf(ra + 8 * i, sizeof(ra) - 8 * i, "%08X", x);
	}
	assert_true(asprintf(&out,
			     "%4d: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000     0        0 %d 1 "
			     "0000000000000000 100 0 0 10 0\n",
			     sl, la, lport, ra, rport, st, 1000 + sl) > 0);
	return out;
}

static char *listing(const char *header, ...)
{
	char *text = strdup(header), *l;
	va_list ap;

	assert_non_null(text);
	va_start(ap, header);
	while ((l = va_arg(ap, char *))) {
		char *n = NULL;
		assert_true(asprintf(&n, "%s%s", text, l) > 0);
		free(text);
		free(l);
		text = n;
	}
	va_end(ap);
	return text;
}

#define LISTEN 0x0a
#define ESTABLISHED 0x01
#define TIME_WAIT 0x06
#define UNCONNECTED 0x07

static int find(const char *text, bool v6, int proto, const char *host_ip, uint16_t port)
{
	char who[64] = "";
	return hostport_listing_find(text, v6, proto, host_ip, port, who, sizeof(who));
}

static void test_tcp4(void **state)
{
	_cleanup_free_ char *t = listing(TCP_HEADER, line(0, "0.0.0.0", 22, "0.0.0.0", 0, LISTEN),
					 line(1, "127.0.0.1", 631, "0.0.0.0", 0, LISTEN),
					 line(2, "10.0.0.5", 8080, "0.0.0.0", 0, LISTEN),
					 line(3, "10.0.0.5", 40000, "10.0.0.9", 443, ESTABLISHED),
					 line(4, "127.0.0.1", 41000, "127.0.0.1", 631, TIME_WAIT), NULL);
	char who[64] = "";

	/* sshd on the wildcard takes every IPv4 address */
	assert_int_equal(hostport_listing_find(t, false, IPPROTO_TCP, "", 22, who, sizeof(who)), 1);
	assert_string_equal(who, "0.0.0.0:22");
	assert_int_equal(find(t, false, IPPROTO_TCP, "0.0.0.0", 22), 1);
	assert_int_equal(find(t, false, IPPROTO_TCP, "192.168.1.1", 22), 1);
	assert_int_equal(find(t, false, IPPROTO_TCP, "127.0.0.1", 22), 1);
	assert_int_equal(find(t, false, IPPROTO_TCP, "::", 22), 0);   /* an IPv6 mapping: not its family */
	assert_int_equal(find(t, false, IPPROTO_TCP, "fd00::1", 22), 0);
	assert_int_equal(find(t, false, IPPROTO_UDP, "", 22), 0);      /* another protocol's listing is asked */
	/* one address: the mapping's own, or every address */
	assert_int_equal(hostport_listing_find(t, false, IPPROTO_TCP, "", 631, who, sizeof(who)), 1);
	assert_string_equal(who, "127.0.0.1:631");
	assert_int_equal(find(t, false, IPPROTO_TCP, "0.0.0.0", 631), 1);
	assert_int_equal(find(t, false, IPPROTO_TCP, "127.0.0.1", 631), 1);
	assert_int_equal(find(t, false, IPPROTO_TCP, "10.0.0.5", 631), 0);
	assert_int_equal(find(t, false, IPPROTO_TCP, "10.0.0.5", 8080), 1);
	assert_int_equal(find(t, false, IPPROTO_TCP, "10.0.0.6", 8080), 0);
	/* only listeners: not a connection's local port, not TIME_WAIT */
	assert_int_equal(find(t, false, IPPROTO_TCP, "", 40000), 0);
	assert_int_equal(find(t, false, IPPROTO_TCP, "", 41000), 0);
	assert_int_equal(find(t, false, IPPROTO_TCP, "", 443), 0);
	assert_int_equal(find(t, false, IPPROTO_TCP, "", 23), 0);
	assert_int_equal(find(t, false, IPPROTO_TCP, "", 65535), 0);
}

static void test_tcp6(void **state)
{
	_cleanup_free_ char *t = listing(TCP6_HEADER, line(0, "::", 22, "::", 0, LISTEN),
					 line(1, "::1", 25, "::", 0, LISTEN),
					 line(2, "::ffff:127.0.0.1", 5432, "::", 0, LISTEN),
					 line(3, "fd00::5", 8443, "::", 0, LISTEN),
					 line(4, "fd00::5", 50000, "fd00::9", 22, ESTABLISHED), NULL);
	char who[64] = "";

	/* "::" may take IPv4 as well (no IPV6_V6ONLY in the listing) */
	assert_int_equal(hostport_listing_find(t, true, IPPROTO_TCP, "10.1.2.3", 22, who, sizeof(who)), 1);
	assert_string_equal(who, "[::]:22");
	assert_int_equal(find(t, true, IPPROTO_TCP, "", 22), 1);
	assert_int_equal(find(t, true, IPPROTO_TCP, "fd00::7", 22), 1);
	/* ::1 */
	assert_int_equal(find(t, true, IPPROTO_TCP, "", 25), 1);
	assert_int_equal(find(t, true, IPPROTO_TCP, "::", 25), 1);
	assert_int_equal(find(t, true, IPPROTO_TCP, "::1", 25), 1);
	assert_int_equal(find(t, true, IPPROTO_TCP, "127.0.0.1", 25), 0);
	assert_int_equal(find(t, true, IPPROTO_TCP, "0.0.0.0", 25), 0);
	/* an IPv4-mapped address is the IPv4 one */
	assert_int_equal(hostport_listing_find(t, true, IPPROTO_TCP, "127.0.0.1", 5432, who, sizeof(who)), 1);
	assert_string_equal(who, "127.0.0.1:5432");
	assert_int_equal(find(t, true, IPPROTO_TCP, "0.0.0.0", 5432), 1);
	assert_int_equal(find(t, true, IPPROTO_TCP, "::", 5432), 0);
	assert_int_equal(find(t, true, IPPROTO_TCP, "10.0.0.1", 5432), 0);
	/* one IPv6 address */
	assert_int_equal(find(t, true, IPPROTO_TCP, "fd00::5", 8443), 1);
	assert_int_equal(find(t, true, IPPROTO_TCP, "fd00::6", 8443), 0);
	assert_int_equal(find(t, true, IPPROTO_TCP, "0.0.0.0", 8443), 0);
	assert_int_equal(find(t, true, IPPROTO_TCP, "", 50000), 0);
}

static void test_udp(void **state)
{
	_cleanup_free_ char *t4 = listing(UDP_HEADER, line(0, "127.0.0.53", 53, "0.0.0.0", 0, UNCONNECTED),
					  line(1, "0.0.0.0", 5353, "0.0.0.0", 0, UNCONNECTED),
					  line(2, "10.0.0.5", 39000, "10.0.0.1", 53, ESTABLISHED), NULL);
	_cleanup_free_ char *t6 = listing(UDP_HEADER, line(0, "::", 546, "::", 0, UNCONNECTED),
					  line(1, "fd00::5", 41000, "fd00::1", 53, ESTABLISHED), NULL);

	/* the host's resolver on 127.0.0.53 */
	assert_int_equal(find(t4, false, IPPROTO_UDP, "", 53), 1);
	assert_int_equal(find(t4, false, IPPROTO_UDP, "0.0.0.0", 53), 1);
	assert_int_equal(find(t4, false, IPPROTO_UDP, "127.0.0.53", 53), 1);
	assert_int_equal(find(t4, false, IPPROTO_UDP, "127.0.0.1", 53), 0);
	assert_int_equal(find(t4, false, IPPROTO_TCP, "", 53), 0); /* a UDP socket is no TCP listener */
	assert_int_equal(find(t4, false, IPPROTO_UDP, "", 5353), 1);
	/* a connected socket (a client's) does not receive new traffic */
	assert_int_equal(find(t4, false, IPPROTO_UDP, "", 39000), 0);
	assert_int_equal(find(t6, true, IPPROTO_UDP, "", 546), 1);
	assert_int_equal(find(t6, true, IPPROTO_UDP, "10.9.9.9", 546), 1);
	assert_int_equal(find(t6, true, IPPROTO_UDP, "", 41000), 0);
}

static void test_malformed(void **state)
{
	assert_int_equal(find("", false, IPPROTO_TCP, "", 22), 0);
	assert_int_equal(find(TCP_HEADER, false, IPPROTO_TCP, "", 22), 0);
	assert_int_equal(find(TCP_HEADER "\n\n", false, IPPROTO_TCP, "", 22), 0);
	/* no header */
	assert_int_equal(find("   0: 00000000:0016 00000000:0000 0A 0\n", false, IPPROTO_TCP, "", 22), -EPROTO);
	/* short address, bad hex, missing state, an IPv6 line in an IPv4 listing */
	assert_int_equal(find(TCP_HEADER "   0: 0000000:0016 00000000:0000 0A 0\n", false, IPPROTO_TCP, "", 22),
			 -EPROTO);
	assert_int_equal(find(TCP_HEADER "   0: 0000000G:0016 00000000:0000 0A 0\n", false, IPPROTO_TCP, "", 22),
			 -EPROTO);
	assert_int_equal(find(TCP_HEADER "   0: 00000000:0016 00000000:0000\n", false, IPPROTO_TCP, "", 22), -EPROTO);
	assert_int_equal(find(TCP_HEADER "   0: 00000000000000000000000000000000:0016 "
					 "00000000000000000000000000000000:0000 0A 0\n",
			      false, IPPROTO_TCP, "", 22),
			 -EPROTO);
	assert_int_equal(find(TCP_HEADER "   0: 00000000:0016 00000000:0000 0A 0\n", true, IPPROTO_TCP, "", 22),
			 -EPROTO);
	assert_int_equal(find(TCP_HEADER "garbage\n", false, IPPROTO_TCP, "", 22), -EPROTO);
	/* the last line without a newline is still read */
	assert_int_equal(find(TCP_HEADER "   0: 00000000:0016 00000000:0000 0A", false, IPPROTO_TCP, "", 22), 1);
	/* bad arguments */
	assert_int_equal(find(TCP_HEADER, false, IPPROTO_TCP, "not-an-ip", 22), -EINVAL);
	assert_int_equal(find(TCP_HEADER, false, 132 /* SCTP */, "", 22), -EINVAL);
	assert_int_equal(find(NULL, false, IPPROTO_TCP, "", 22), -EINVAL);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* Verbatim from a little-endian host's /proc/net/tcp. */
	assert_int_equal(find(TCP_HEADER "   0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 "
					 "00000000     0        0 21403 1 0000000000000000 100 0 0 10 0\n",
			      false, IPPROTO_TCP, "127.0.0.1", 631),
			 1);
#endif
}

/* ---------------------------------------------------------------- the check */

static char fixture[] = "/tmp/test_hostport_policy.XXXXXX";

static void put(const char *name, const char *text)
{
	_cleanup_free_ char *path = NULL;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", fixture, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int fixture_setup(void **state)
{
	_cleanup_free_ char *tcp = listing(TCP_HEADER, line(0, "0.0.0.0", 22, "0.0.0.0", 0, LISTEN), NULL);
	_cleanup_free_ char *udp = listing(UDP_HEADER, line(0, "127.0.0.53", 53, "0.0.0.0", 0, UNCONNECTED), NULL);
	_cleanup_free_ char *udp6 = listing(UDP_HEADER, NULL);

	if (!mkdtemp(fixture))
		return -1;
	put("tcp", tcp);
	put("udp", udp);
	put("udp6", udp6);
	/* no tcp6: a kernel without IPv6 */
	return 0;
}

static int fixture_teardown(void **state)
{
	static const char *const names[] = { "tcp", "tcp6", "udp", "udp6" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s", fixture, names[i]) > 0 && unlink(path) < 0 && errno == EISDIR)
			rmdir(path);
	}
	return rmdir(fixture);
}

static struct port_mapping pm(int proto, uint16_t port, const char *host_ip)
{
	struct port_mapping m = { .protocol = proto, .container_port = 80, .host_port = port };
	snprintf(m.host_ip, sizeof(m.host_ip), "%s", host_ip);
	return m;
}

static void test_check(void **state)
{
	struct hostport_policy p = { .lo = 1000, .hi = 40000, .local = true, .proc_net = fixture };
	char msg[512];
	snprintf(p.range, sizeof(p.range), "1000-40000");

	/* free ports inside the range */
	struct port_mapping ok[] = { pm(IPPROTO_TCP, 12000, ""), pm(IPPROTO_UDP, 12001, "0.0.0.0"),
				     pm(IPPROTO_TCP, 12002, "127.0.0.1") };
	assert_int_equal(hostport_policy_check(&p, ok, ARRAY_SIZE(ok), "req-1", "pod-a", msg, sizeof(msg)), STATUS_OK);
	assert_int_equal(hostport_policy_check(&p, NULL, 0, "req-1", "pod-a", msg, sizeof(msg)), STATUS_OK);

	/* outside the range: the first such mapping, naming the key */
	struct port_mapping out[] = { pm(IPPROTO_TCP, 12000, ""), pm(IPPROTO_UDP, 999, "") };
	assert_int_equal(hostport_policy_check(&p, out, ARRAY_SIZE(out), "req-2", "pod-a", msg, sizeof(msg)),
			 STATUS_PERMISSION_DENIED);
	assert_string_equal(msg, "host port 999/udp is outside [policy] host_port_range (1000-40000)");
	struct port_mapping high[] = { pm(IPPROTO_TCP, 40001, "") };
	assert_int_equal(hostport_policy_check(&p, high, 1, "req-2", "pod-a", msg, sizeof(msg)),
			 STATUS_PERMISSION_DENIED);

	/* in use: sshd, the resolver */
	p.lo = 1;
	struct port_mapping ssh[] = { pm(IPPROTO_TCP, 12000, ""), pm(IPPROTO_TCP, 22, "") };
	assert_int_equal(hostport_policy_check(&p, ssh, ARRAY_SIZE(ssh), "req-3", "pod-a", msg, sizeof(msg)),
			 STATUS_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "host port 22/tcp is in use by a host service"));
	assert_non_null(strstr(msg, "0.0.0.0:22"));
	assert_non_null(strstr(msg, "[policy] host_port_allow_in_use"));
	struct port_mapping dns[] = { pm(IPPROTO_UDP, 53, "") };
	assert_int_equal(hostport_policy_check(&p, dns, 1, "req-4", "pod-a", msg, sizeof(msg)),
			 STATUS_FAILED_PRECONDITION);
	assert_non_null(strstr(msg, "host port 53/udp is in use by a host service"));
	/* the same ports elsewhere are free: 22/udp, 53/tcp, 53/udp on another address */
	struct port_mapping other[] = { pm(IPPROTO_UDP, 22, ""), pm(IPPROTO_TCP, 53, ""), pm(IPPROTO_UDP, 53, "10.0.0.1") };
	assert_int_equal(hostport_policy_check(&p, other, ARRAY_SIZE(other), "req-5", "pod-a", msg, sizeof(msg)),
			 STATUS_OK);
	/* allowed by the key; the range still holds */
	p.allow_in_use = true;
	assert_int_equal(hostport_policy_check(&p, ssh, ARRAY_SIZE(ssh), "req-6", "pod-a", msg, sizeof(msg)), STATUS_OK);
	p.lo = 1000;
	assert_int_equal(hostport_policy_check(&p, ssh, ARRAY_SIZE(ssh), "req-6", "pod-a", msg, sizeof(msg)),
			 STATUS_PERMISSION_DENIED);
	p.lo = 1;
	p.allow_in_use = false;

	/* a listing that cannot be read or parsed refuses (fail closed) */
	_cleanup_free_ char *tcp6 = NULL;
	assert_true(asprintf(&tcp6, "%s/tcp6", fixture) > 0);
	assert_int_equal(mkdir(tcp6, 0700), 0);
	assert_int_equal(hostport_policy_check(&p, ok, 1, "req-7", "pod-a", msg, sizeof(msg)), STATUS_INTERNAL);
	assert_non_null(strstr(msg, "cannot read the host's sockets"));
	assert_int_equal(rmdir(tcp6), 0);
	put("tcp6", "not a listing\n");
	assert_int_equal(hostport_policy_check(&p, ok, 1, "req-8", "pod-a", msg, sizeof(msg)), STATUS_INTERNAL);
	assert_non_null(strstr(msg, "cannot parse"));
	put("tcp6", TCP6_HEADER);
	assert_int_equal(hostport_policy_check(&p, ok, 1, "req-9", "pod-a", msg, sizeof(msg)), STATUS_OK);
	/* UDP mappings read only the UDP listings */
	put("tcp", "not a listing\n");
	assert_int_equal(hostport_policy_check(&p, dns + 0, 0, "req-10", "pod-a", msg, sizeof(msg)), STATUS_OK);
	struct port_mapping u[] = { pm(IPPROTO_UDP, 12001, "") };
	assert_int_equal(hostport_policy_check(&p, u, 1, "req-10", "pod-a", msg, sizeof(msg)), STATUS_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_port_range),
		cmocka_unit_test(test_config_keys),
		cmocka_unit_test(test_tcp4),
		cmocka_unit_test(test_tcp6),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test_setup_teardown(test_check, fixture_setup, fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
