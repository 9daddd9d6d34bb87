/* Unit tests for imaged/registry_policy.c: the address classifier (every
 * range the registries policy refuses, IPv4 hidden inside IPv6, literals in
 * the resolver's odd forms) and the rule (listed hosts, port included, and
 * [policy] allow_private_registries). */
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

#include <cmocka.h>

#include "config.h"
#include "macro.h"
#include "registry_policy.h"

static struct sockaddr_storage addr_of(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

static enum addr_class classify(const char *text)
{
	struct sockaddr_storage ss = addr_of(text);
	return addr_classify((const struct sockaddr *)&ss);
}

static void test_classify(void **state)
{
	static const struct {
		const char *addr;
		enum addr_class c;
	} cases[] = {
		/* IPv4 */
		{ "0.0.0.0", ADDR_UNSPECIFIED },
		{ "0.1.2.3", ADDR_UNSPECIFIED },
		{ "127.0.0.1", ADDR_LOOPBACK },
		{ "127.255.255.254", ADDR_LOOPBACK },
		{ "169.254.169.254", ADDR_LINK_LOCAL },
		{ "169.254.0.1", ADDR_LINK_LOCAL },
		{ "10.0.0.1", ADDR_PRIVATE },
		{ "10.255.255.255", ADDR_PRIVATE },
		{ "172.16.0.1", ADDR_PRIVATE },
		{ "172.31.255.255", ADDR_PRIVATE },
		{ "192.168.1.1", ADDR_PRIVATE },
		{ "100.64.0.1", ADDR_PRIVATE },
		{ "224.0.0.1", ADDR_MULTICAST },
		{ "239.255.255.250", ADDR_MULTICAST },
		{ "240.0.0.1", ADDR_RESERVED },
		{ "255.255.255.255", ADDR_RESERVED },
		{ "192.0.2.1", ADDR_RESERVED },
		{ "198.18.0.1", ADDR_RESERVED },
		/* the edges stay public */
		{ "172.15.255.255", ADDR_PUBLIC },
		{ "172.32.0.0", ADDR_PUBLIC },
		{ "169.253.255.255", ADDR_PUBLIC },
		{ "169.255.0.0", ADDR_PUBLIC },
		{ "11.0.0.0", ADDR_PUBLIC },
		{ "9.255.255.255", ADDR_PUBLIC },
		{ "126.255.255.255", ADDR_PUBLIC },
		{ "128.0.0.0", ADDR_PUBLIC },
		{ "100.63.255.255", ADDR_PUBLIC },
		{ "100.128.0.0", ADDR_PUBLIC },
		{ "192.167.255.255", ADDR_PUBLIC },
		{ "1.1.1.1", ADDR_PUBLIC },
		{ "8.8.8.8", ADDR_PUBLIC },
		{ "223.255.255.255", ADDR_PUBLIC },
		/* IPv6 */
		{ "::", ADDR_UNSPECIFIED },
		{ "::1", ADDR_LOOPBACK },
		{ "fe80::1", ADDR_LINK_LOCAL },
		{ "febf:ffff::1", ADDR_LINK_LOCAL },
		{ "fec0::1", ADDR_PRIVATE },
		{ "fc00::1", ADDR_PRIVATE },
		{ "fd00:ec2::254", ADDR_PRIVATE },
		{ "fdff:ffff::1", ADDR_PRIVATE },
		{ "ff02::1", ADDR_MULTICAST },
		{ "100::1", ADDR_RESERVED },
		{ "2001:db8::1", ADDR_RESERVED },
		{ "64:ff9b:1::1", ADDR_PRIVATE },
		{ "2001:4860:4860::8888", ADDR_PUBLIC },
		{ "2a00:1450::1", ADDR_PUBLIC },
		{ "fbff:ffff::1", ADDR_PUBLIC },
		{ "fe7f::1", ADDR_PUBLIC },
		/* IPv4 inside IPv6: classified as what it carries */
		{ "::ffff:127.0.0.1", ADDR_LOOPBACK },
		{ "::ffff:169.254.169.254", ADDR_LINK_LOCAL },
		{ "::ffff:10.1.2.3", ADDR_PRIVATE },
		{ "::ffff:8.8.8.8", ADDR_PUBLIC },
		{ "::127.0.0.1", ADDR_LOOPBACK },
		{ "::10.0.0.1", ADDR_PRIVATE },
		{ "64:ff9b::7f00:1", ADDR_LOOPBACK },
		{ "64:ff9b::a9fe:a9fe", ADDR_LINK_LOCAL },
		{ "64:ff9b::808:808", ADDR_PUBLIC },
		{ "2002:7f00:1::1", ADDR_LOOPBACK },
		{ "2002:c0a8:101::1", ADDR_PRIVATE },
		{ "2002:808:808::1", ADDR_PUBLIC },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		enum addr_class c = classify(cases[i].addr);
		if (c != cases[i].c)
			fail_msg("%s: %s, expected %s", cases[i].addr, addr_class_name(c), addr_class_name(cases[i].c));
	}
	struct sockaddr_storage unix_ss = { .ss_family = AF_UNIX };
	assert_int_equal(addr_classify((const struct sockaddr *)&unix_ss), ADDR_RESERVED);
	assert_int_equal(addr_classify(NULL), ADDR_RESERVED);
}

static void test_metadata(void **state)
{
	struct sockaddr_storage a = addr_of("169.254.169.254"), b = addr_of("fd00:ec2::254"),
				c = addr_of("::ffff:169.254.169.254"), d = addr_of("169.254.169.253");
	assert_true(addr_is_metadata((const struct sockaddr *)&a));
	assert_true(addr_is_metadata((const struct sockaddr *)&b));
	assert_true(addr_is_metadata((const struct sockaddr *)&c));
	assert_false(addr_is_metadata((const struct sockaddr *)&d));
}

static void test_hostport(void **state)
{
	char h[64];
	assert_true(hostport_host("example.com", h, sizeof(h)));
	assert_string_equal(h, "example.com");
	assert_true(hostport_host("127.0.0.1:5000", h, sizeof(h)));
	assert_string_equal(h, "127.0.0.1");
	assert_true(hostport_host("[::1]:2379", h, sizeof(h)));
	assert_string_equal(h, "::1");
	assert_true(hostport_host("[fe80::1]", h, sizeof(h)));
	assert_string_equal(h, "fe80::1");
	assert_false(hostport_host("::1", h, sizeof(h)));
	assert_false(hostport_host("[::1", h, sizeof(h)));
	assert_false(hostport_host("[::1]x", h, sizeof(h)));
	assert_false(hostport_host("", h, sizeof(h)));
	assert_false(hostport_host(":5000", h, sizeof(h)));
	assert_false(hostport_host("a-very-long-name-that-does-not-fit-into-this-small-buffer.example.com", h, sizeof(h)));

	struct sockaddr_storage ss;
	/* Forms the resolver takes as addresses are addresses. */
	static const struct {
		const char *hp;
		enum addr_class c;
	} lit[] = {
		{ "127.0.0.1:5000", ADDR_LOOPBACK }, { "127.1", ADDR_LOOPBACK },      { "2130706433:80", ADDR_LOOPBACK },
		{ "0x7f.1", ADDR_LOOPBACK },         { "[::1]:2379", ADDR_LOOPBACK }, { "169.254.169.254", ADDR_LINK_LOCAL },
		{ "10.0.0.1", ADDR_PRIVATE },        { "0", ADDR_UNSPECIFIED },       { "[::ffff:10.0.0.1]", ADDR_PRIVATE },
		{ "8.8.8.8:443", ADDR_PUBLIC },
	};
	for (size_t i = 0; i < ARRAY_SIZE(lit); i++) {
		if (hostport_literal(lit[i].hp, &ss) != 1)
			fail_msg("%s is a literal", lit[i].hp);
		if (addr_classify((const struct sockaddr *)&ss) != lit[i].c)
			fail_msg("%s: %s", lit[i].hp, addr_class_name(addr_classify((const struct sockaddr *)&ss)));
	}
	assert_int_equal(hostport_literal("registry.example.com:5000", &ss), 0);
	assert_int_equal(hostport_literal("localhost", &ss), 0);
	assert_int_equal(hostport_literal("[::1", &ss), -EINVAL);
}

static void test_rule(void **state)
{
	struct criod_config cfg;
	char *error = NULL, err[512];
	config_defaults(&cfg);
	assert_false(cfg.allow_private_registries);
	assert_int_equal(config_parse_string(&cfg, "test", "[registry.127.0.0.1:5000]\ninsecure = true\n"
					     "[registry.[::1]:2379]\n[registry.internal.example]\n", &error), 0);

	/* Literals outside the public ranges: refused, naming host, class and rule. */
	assert_int_equal(registry_policy_check_host(&cfg, "169.254.169.254", err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "169.254.169.254"));
	assert_non_null(strstr(err, "link-local"));
	assert_non_null(strstr(err, "cloud metadata"));
	assert_non_null(strstr(err, "allow_private_registries"));
	assert_int_equal(registry_policy_check_host(&cfg, "10.0.0.1", err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "private"));
	assert_int_equal(registry_policy_check_host(&cfg, "127.0.0.1:5001", err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "loopback"));
	assert_non_null(strstr(err, "[registry.127.0.0.1:5001]"));
	assert_int_equal(registry_policy_check_host(&cfg, "[::1]:2380", err, sizeof(err)), -EPERM);
	assert_int_equal(registry_policy_check_host(&cfg, "127.0.0.1", err, sizeof(err)), -EPERM);
	assert_int_equal(registry_policy_check_host(&cfg, "0x7f.1:5000", err, sizeof(err)), -EPERM);
	/* Listed hosts, the port being part of the name; names; public literals. */
	assert_int_equal(registry_policy_check_host(&cfg, "127.0.0.1:5000", err, sizeof(err)), 0);
	assert_int_equal(registry_policy_check_host(&cfg, "[::1]:2379", err, sizeof(err)), 0);
	assert_int_equal(registry_policy_check_host(&cfg, "registry.example.com", err, sizeof(err)), 0);
	assert_int_equal(registry_policy_check_host(&cfg, "8.8.8.8", err, sizeof(err)), 0);
	assert_int_equal(registry_policy_check_host(&cfg, "[::1", err, sizeof(err)), -EINVAL);

	/* At connect time: the address a name resolved to. */
	struct sockaddr_storage lo = addr_of("127.0.0.1"), pub = addr_of("93.184.216.34"), md = addr_of("169.254.169.254");
	assert_int_equal(registry_policy_check_addr(&cfg, "evil.example:80", (const struct sockaddr *)&lo, false, err,
						    sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "evil.example:80 resolves to 127.0.0.1, a loopback address"));
	assert_int_equal(registry_policy_check_addr(&cfg, "evil.example", (const struct sockaddr *)&md, false, err,
						    sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "cloud metadata"));
	assert_int_equal(registry_policy_check_addr(&cfg, "internal.example", (const struct sockaddr *)&lo, false, err,
						    sizeof(err)), 0);
	assert_int_equal(registry_policy_check_addr(&cfg, "INTERNAL.example", (const struct sockaddr *)&lo, false, err,
						    sizeof(err)), 0);
	assert_int_equal(registry_policy_check_addr(&cfg, "internal.example:444", (const struct sockaddr *)&lo, false,
						    err, sizeof(err)), -EPERM);
	assert_int_equal(registry_policy_check_addr(&cfg, "evil.example", (const struct sockaddr *)&pub, false, err,
						    sizeof(err)), 0);
	assert_true(registry_host_exempt(&cfg, "127.0.0.1:5000"));
	assert_false(registry_host_exempt(&cfg, "127.0.0.1:5001"));
	assert_false(registry_host_exempt(NULL, "127.0.0.1:5000"));
	/* "localhost" resolves to loopback: refused by name too. */
	assert_int_equal(registry_policy_check_name(&cfg, "localhost:5000", err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "loopback"));
	config_free(&cfg);

	/* allow_private_registries = true: anything goes. */
	config_defaults(&cfg);
	assert_int_equal(config_parse_string(&cfg, "test", "[policy]\nallow_private_registries = true\n", &error), 0);
	assert_true(cfg.allow_private_registries);
	assert_int_equal(registry_policy_check_host(&cfg, "169.254.169.254", err, sizeof(err)), 0);
	assert_int_equal(registry_policy_check_addr(&cfg, "x", (const struct sockaddr *)&lo, false, err, sizeof(err)), 0);
	assert_int_equal(registry_policy_check_name(&cfg, "localhost", err, sizeof(err)), 0);
	config_free(&cfg);
	free(error);
}

static void test_limits_config(void **state)
{
	struct criod_config cfg;
	char *error = NULL;
	config_defaults(&cfg);
	assert_int_equal(cfg.max_layer_size, 32ull << 30);
	assert_int_equal(cfg.max_layer_entries, 10000000);
	assert_int_equal(cfg.min_free_space, 1ull << 30);
	assert_int_equal(cfg.max_pending_pulls, 64);
	assert_int_equal(config_parse_string(&cfg, "test", "[imaged]\nmax_layer_size = 1MiB\nmax_layer_entries = 10\n"
					     "min_free_space = 0\nmax_pending_pulls = 2\n", &error), 0);
	assert_int_equal(cfg.max_layer_size, 1u << 20);
	assert_int_equal(cfg.max_layer_entries, 10);
	assert_int_equal(cfg.min_free_space, 0);
	assert_int_equal(cfg.max_pending_pulls, 2);
	static const char *const bad[] = {
		"[imaged]\nmax_layer_size = 1K\n",          "[imaged]\nmax_layer_size = 5000GiB\n",
		"[imaged]\nmax_layer_entries = 0\n",        "[imaged]\nmax_pending_pulls = 0\n",
		"[imaged]\nmax_pending_pulls = 100000\n",   "[imaged]\nmin_free_space = lots\n",
		"[policy]\nallow_private_registries = maybe\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		free(error);
		error = NULL;
		if (config_parse_string(&cfg, "test", bad[i], &error) >= 0)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(error);
	}
	config_free(&cfg);
	free(error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_rule),
		cmocka_unit_test(test_limits_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
