/* Unit tests for imaged/proxy.c: proxy URLs as curl takes them (schemes,
 * credentials, default ports, IPv6 literals), the ones imaged-fetch cannot
 * use without a network (socks4://, socks5://), malformed ones, and the
 * environment's variables in order, without duplicates. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy.h"

static void parses(const char *url, const char *scheme, const char *host, unsigned port, const char *authority)
{
	struct proxy p;
	char err[256] = "";
	int r = proxy_parse(url, &p, err, sizeof(err));
	if (r != 0)
		fail_msg("%s: %d %s", url, r, err);
	assert_string_equal(p.scheme, scheme);
	assert_string_equal(p.host, host);
	assert_int_equal(p.port, port);
	assert_string_equal(p.authority, authority);
}

static void refuses(const char *url, int want, const char *words)
{
	struct proxy p;
	char err[256] = "";
	assert_int_equal(proxy_parse(url, &p, err, sizeof(err)), want);
	if (!strstr(err, words))
		fail_msg("%s: message \"%s\" lacks \"%s\"", url, err, words);
}

static void test_parse(void **state)
{
	(void)state;
	parses("http://proxy.corp:3128", "http", "proxy.corp", 3128, "proxy.corp:3128");
	parses("http://proxy.corp:3128/", "http", "proxy.corp", 3128, "proxy.corp:3128");
	parses("proxy.corp", "http", "proxy.corp", 1080, "proxy.corp:1080");
	parses("HTTP://Proxy.Corp:8080", "http", "Proxy.Corp", 8080, "Proxy.Corp:8080");
	parses("https://proxy.corp", "https", "proxy.corp", 443, "proxy.corp:443");
	parses("http://user:p%40ss@127.0.0.1:3128", "http", "127.0.0.1", 3128, "127.0.0.1:3128");
	parses("http://a@b@10.0.0.1:1", "http", "10.0.0.1", 1, "10.0.0.1:1"); /* the last @ ends the credentials */
	parses("http://[::1]:3128", "http", "::1", 3128, "[::1]:3128");
	parses("http://[fd00::2]", "http", "fd00::2", 1080, "[fd00::2]:1080");
	parses("socks5h://sox:1081", "socks5h", "sox", 1081, "sox:1081");
	parses("socks4a://sox", "socks4a", "sox", 1080, "sox:1080");
}

static void test_refuse(void **state)
{
	(void)state;
	refuses("ftp://p:21", -EPROTONOSUPPORT, "not http, https");
	refuses("http://u:%0d%0a@p:1", -EINVAL, "credentials");
	refuses("http://u:%4@p:1", -EINVAL, "credentials");
	refuses("", -EINVAL, "empty");
	refuses("http://pro xy:1", -EINVAL, "space");
	refuses("http://proxy\x01:1", -EINVAL, "control");
	refuses("http://:3128", -EINVAL, "host is empty");
	refuses("http://pro%78y:1", -EINVAL, "a byte a host name cannot");
	refuses("http://proxy:", -EINVAL, "port is empty");
	refuses("http://proxy:0", -EINVAL, "out of range");
	refuses("http://proxy:65536", -EINVAL, "out of range");
	refuses("http://proxy:123456", -EINVAL, "too long");
	refuses("http://proxy:12a", -EINVAL, "not a number");
	refuses("http://[::1", -EINVAL, "unclosed");
	refuses("http://[]:1", -EINVAL, "empty");
	refuses("http://[zz::1]:1", -EINVAL, "not an IPv6 literal");
	refuses("http://[::1]x", -EINVAL, "after the ]");
}

static void test_credentials(void **state)
{
	(void)state;
	struct proxy p;
	char err[256] = "";
	assert_int_equal(proxy_parse("http://us%65r:p%40ss@127.0.0.1:3128", &p, err, sizeof(err)), 0);
	assert_true(p.has_cred);
	assert_string_equal(p.user, "user");
	assert_string_equal(p.pass, "p@ss");
	assert_int_equal(proxy_parse("socks5://sox", &p, err, sizeof(err)), 0);
	assert_true(p.local_dns);
	assert_false(p.has_cred);
	assert_int_equal(proxy_parse("socks5h://sox", &p, err, sizeof(err)), 0);
	assert_false(p.local_dns);
}

static void test_exempt(void **state)
{
	(void)state;
	assert_true(proxy_exempt("*", "anything"));
	assert_true(proxy_exempt("corp.example, .internal", "reg.corp.example"));
	assert_true(proxy_exempt("corp.example", "corp.example"));
	assert_true(proxy_exempt(".internal", "a.b.internal"));
	assert_false(proxy_exempt("corp.example", "evilcorp.example"));
	assert_false(proxy_exempt("corp.example", "example"));
	assert_true(proxy_exempt("10.0.0.0/8 192.168.1.1", "10.20.30.40"));
	assert_true(proxy_exempt("10.0.0.0/8 192.168.1.1", "192.168.1.1"));
	assert_false(proxy_exempt("10.0.0.0/8", "11.0.0.1"));
	assert_true(proxy_exempt("fd00::/8", "fd12::1"));
	assert_false(proxy_exempt("fd00::/8", "fe80::1"));
	assert_false(proxy_exempt(NULL, "a"));
	assert_false(proxy_exempt("", "a"));
}

static void unset_all(void)
{
	static const char *const vars[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
					   "ALL_PROXY",  "no_proxy",    "NO_PROXY",    "HTTP_PROXY"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

static void test_select(void **state)
{
	(void)state;
	unset_all();
	struct proxy p;
	char err[256] = "";
	bool any = true;
	assert_int_equal(proxy_select("reg", true, &p, err, sizeof(err)), 0);
	assert_int_equal(proxy_env_tunnelable(&any, err, sizeof(err)), 0);
	assert_false(any);
	setenv("HTTP_PROXY", "http://upper:1", 1); /* never read */
	assert_int_equal(proxy_select("reg", false, &p, err, sizeof(err)), 0);
	setenv("http_proxy", "http://a:1", 1);
	setenv("HTTPS_PROXY", "socks5h://b:2", 1);
	assert_int_equal(proxy_select("reg", false, &p, err, sizeof(err)), 1);
	assert_string_equal(p.authority, "a:1");
	assert_string_equal(p.var, "http_proxy");
	assert_int_equal(proxy_select("reg", true, &p, err, sizeof(err)), 1);
	assert_string_equal(p.authority, "b:2");
	setenv("no_proxy", ".corp", 1);
	assert_int_equal(proxy_select("reg.corp", true, &p, err, sizeof(err)), 0);
	assert_int_equal(proxy_select("reg.other", true, &p, err, sizeof(err)), 1);
	assert_int_equal(proxy_env_tunnelable(&any, err, sizeof(err)), 0);
	assert_true(any);
	setenv("all_proxy", "https://c", 1);
	assert_int_equal(proxy_env_tunnelable(&any, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "all_proxy"));
	setenv("https_proxy", "ftp://d", 1);
	assert_int_equal(proxy_select("reg", true, &p, err, sizeof(err)), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "https_proxy"));
	unset_all();
}

/* The tunnel against canned answers on a socket pair: what it sends, and
 * that it reads nothing past the answer. */
static void test_tunnel(void **state)
{
	(void)state;
	int sv[2];
	struct proxy p;
	char err[256] = "", buf[1024];
	assert_int_equal(proxy_parse("http://al:pw@px:3128", &p, err, sizeof(err)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const char *ok = "HTTP/1.1 200 Connection established\r\nX: y\r\n\r\nREGISTRY";
	assert_int_equal(write(sv[1], ok, strlen(ok)), (ssize_t)strlen(ok));
	assert_int_equal(proxy_tunnel(sv[0], &p, "reg.example", 443, NULL, 1000, err, sizeof(err)), 0);
	ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	assert_non_null(strstr(buf, "CONNECT reg.example:443 HTTP/1.1\r\nHost: reg.example:443\r\n"));
	assert_non_null(strstr(buf, "Proxy-Authorization: Basic YWw6cHc=\r\n"));
	n = read(sv[0], buf, 8);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "REGISTRY", 8);
	close(sv[0]);
	close(sv[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const char *no = "HTTP/1.1 403 Forbidden\r\n\r\n";
	assert_int_equal(write(sv[1], no, strlen(no)), (ssize_t)strlen(no));
	assert_int_equal(proxy_tunnel(sv[0], &p, "10.0.0.1", 80, NULL, 1000, err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, "403 Forbidden"));
	close(sv[0]);
	close(sv[1]);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(proxy_tunnel(sv[0], &p, "reg", 443, NULL, 50, err, sizeof(err)), -ETIMEDOUT);
	close(sv[0]);
	close(sv[1]);

	/* SOCKS5 with a name: no-auth method, then a bound IPv4 address */
	assert_int_equal(proxy_parse("socks5h://sox:1080", &p, err, sizeof(err)), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const unsigned char s5[] = {5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80, 'R'};
	assert_int_equal(write(sv[1], s5, sizeof(s5)), (ssize_t)sizeof(s5));
	assert_int_equal(proxy_tunnel(sv[0], &p, "reg", 5000, NULL, 1000, err, sizeof(err)), 0);
	n = read(sv[1], buf, sizeof(buf));
	const unsigned char want[] = {5, 1, 0, 5, 1, 0, 3, 3, 'r', 'e', 'g', 0x13, 0x88};
	assert_int_equal(n, (ssize_t)sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(read(sv[0], buf, 1), 1);
	assert_int_equal(buf[0], 'R');
	close(sv[0]);
	close(sv[1]);

	/* SOCKS5 refusal names the reason */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const unsigned char s5no[] = {5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0};
	assert_int_equal(write(sv[1], s5no, sizeof(s5no)), (ssize_t)sizeof(s5no));
	assert_int_equal(proxy_tunnel(sv[0], &p, "reg", 443, NULL, 1000, err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, "not allowed by its rules"));
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_refuse),
		cmocka_unit_test(test_credentials),
		cmocka_unit_test(test_exempt),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_tunnel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
