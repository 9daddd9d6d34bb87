/* Unit tests for imaged/fetch_connect.c's fetch_authority_check: the rule
 * every connection imaged-fetch asks for is held to before any name is
 * resolved (an authority of host[:port] whose port is the one asked for,
 * 80 or 443 when it names none). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fetch_connect.h"
#include "registry_policy.h"

static int check(const char *authority, uint32_t port, char *host, char *err)
{
	host[0] = err[0] = '\0';
	return fetch_authority_check(authority, port, host, HOSTPORT_MAX, err, 256);
}

static void test_accepted(void **state)
{
	char host[HOSTPORT_MAX], err[256];
	(void)state;
	assert_int_equal(check("registry.example", 443, host, err), 0);
	assert_string_equal(host, "registry.example");
	assert_int_equal(check("registry.example", 80, host, err), 0);
	assert_int_equal(check("registry.example:5000", 5000, host, err), 0);
	assert_string_equal(host, "registry.example");
	assert_int_equal(check("127.0.0.1:8080", 8080, host, err), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(check("[::1]:5000", 5000, host, err), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(check("registry.example:443", 443, host, err), 0);
}

static void test_wrong_port(void **state)
{
	char host[HOSTPORT_MAX], err[256];
	(void)state;
	/* no port in the URL: only the schemes' */
	assert_int_equal(check("registry.example", 22, host, err), -EPERM);
	assert_non_null(strstr(err, "port 22"));
	/* a port named: only that one */
	assert_int_equal(check("registry.example:5000", 5001, host, err), -EPERM);
	assert_non_null(strstr(err, "is not the port of \"registry.example:5000\""));
	assert_int_equal(check("registry.example:5000", 443, host, err), -EPERM);
	assert_int_equal(check("[::1]:5000", 22, host, err), -EPERM);
	/* a leading zero is not the same port text */
	assert_int_equal(check("registry.example:0443", 443, host, err), -EPERM);
}

static void test_malformed(void **state)
{
	char host[HOSTPORT_MAX], err[256], long_name[HOSTPORT_MAX + 8];
	(void)state;
	static const char *const bad[] = {
		"", "user@registry.example", "registry.example/path", "registry.example?q", "registry.example#f",
		"a b", "back\\slash", "ctl\x01name", "line\nbreak",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(check(bad[i], 443, host, err), -EINVAL);
		assert_non_null(strstr(err, "is not host[:port]"));
	}
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(check(long_name, 443, host, err), -EINVAL);
	assert_int_equal(check("registry.example", 0, host, err), -EINVAL);
	assert_non_null(strstr(err, "port 0 is out of range"));
	assert_int_equal(check("registry.example:65536", 65536, host, err), -EINVAL);
	assert_non_null(strstr(err, "out of range"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_wrong_port),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
