/* Unit tests for common/config.c: defaults, every value type, the exact
 * error messages, quoting, drop-ins, derived socket paths, and hostile input. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
#include "macro.h"

/* ---- helpers ---- */

static char tmpdir[PATH_MAX];

static int setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_tmpdir(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void write_text(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static char *tpath(const char *rel)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", tmpdir, rel) > 0);
	return p;
}

static void write_rel(const char *rel, const char *text)
{
	_cleanup_free_ char *p = tpath(rel);
	write_text(p, text, strlen(text));
}

static void mkdir_rel(const char *rel)
{
	_cleanup_free_ char *p = tpath(rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

/* Parse text on top of the defaults; expect success. */
static void parse_ok(struct criod_config *c, const char *text)
{
	char *err = NULL;
	int r;

	config_defaults(c);
	r = config_parse_string(c, "test.conf", text, &err);
	if (r != 0)
		fail_msg("unexpected error %d: %s", r, err ? err : "(null)");
	assert_null(err);
}

/* Parse text on top of the defaults; expect exactly this error. */
static void parse_err(const char *text, int expect_r, const char *expect_msg)
{
	struct criod_config c;
	char *err = NULL;
	int r;

	config_defaults(&c);
	r = config_parse_string(&c, "/etc/criod/criod.conf", text, &err);
	if (r >= 0)
		fail_msg("expected an error for <%s>", text);
	assert_int_equal(r, expect_r);
	assert_non_null(err);
	if (strcmp(err, expect_msg) != 0)
		fail_msg("message\n  got:      %s\n  expected: %s", err, expect_msg);
	free(err);
	/* All or nothing: the defaults are untouched. */
	assert_string_equal(c.run_dir, "/run/criod");
	assert_int_equal(c.max_streams, 1000);
	config_free(&c);
}

static void assert_defaults(const struct criod_config *c)
{
	assert_string_equal(c->run_dir, "/run/criod");
	assert_string_equal(c->state_dir, "/var/lib/criod");
	assert_string_equal(c->log_level, "info");
	assert_string_equal(c->criod_user, "criod");
	assert_string_equal(c->criod_socket, "/run/criod/criod.sock");
	assert_int_equal(c->max_msg_size, 16777216);
	assert_int_equal(c->max_streams, 1000);
	assert_string_equal(c->imaged_socket, "/run/criod/imaged.sock");
	assert_string_equal(c->netd_socket, "/run/criod/netd.sock");
	assert_string_equal(c->spawnd_socket, "/run/criod/spawnd.sock");
	assert_int_equal(c->rpc_timeout_ms, 120000);
	assert_int_equal(c->rpc_frame_timeout_ms, 10000);
	assert_int_equal(c->rpc_max_buffered, 16u << 20);
	assert_string_equal(c->auth_file, "/etc/criod/auth.json");
	assert_int_equal(c->max_concurrent_downloads, 3);
	assert_int_equal(c->fetch_stall_ms, 90000);
	assert_string_equal(c->rootfs_mode, "auto");
	assert_null(c->registries);
	assert_int_equal(c->n_registries, 0);
	assert_int_equal(c->n_seccomp_profile_roots, 1);
	assert_string_equal(c->seccomp_profile_roots[0], "/var/lib/kubelet/seccomp");
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	struct criod_config c;

	config_defaults(&c);
	assert_defaults(&c);
	config_free(&c);
	assert_null(c.run_dir);
	assert_null(c.auth_file);
	assert_null(c.rootfs_mode);
	config_free(&c); /* twice is fine */
}

static void test_empty_input_keeps_defaults(void **state)
{
	struct criod_config c;

	parse_ok(&c, "");
	assert_defaults(&c);
	config_free(&c);
	parse_ok(&c, "\n\n   \n\t\n# only a comment\n; another\n   # indented\n[criod]\n");
	assert_defaults(&c);
	config_free(&c);
}

static void test_default_path_absent_is_fine(void **state)
{
	struct criod_config c;
	char *err = NULL;

	/* Only meaningful on a machine without a system configuration. */
	if (access(CRIOD_DEFAULT_CONFIG, F_OK) == 0 || access(CRIOD_DEFAULT_CONFIG ".d", F_OK) == 0)
		skip();
	assert_int_equal(config_load(&c, NULL, &err), 0);
	assert_null(err);
	assert_defaults(&c);
	config_free(&c);
}

static void test_explicit_path_must_exist(void **state)
{
	struct criod_config c;
	_cleanup_free_ char *p = tpath("nope.conf");
	_cleanup_free_ char *expect = NULL;
	char *err = NULL;

	assert_int_equal(config_load(&c, p, &err), -ENOENT);
	assert_true(asprintf(&expect, "%s: cannot open: No such file or directory", p) > 0);
	assert_non_null(err);
	assert_string_equal(err, expect);
	free(err);
	/* Even on error *cfg is something config_free can take. */
	assert_defaults(&c);
	config_free(&c);

	/* A NULL error pointer is allowed. */
	assert_int_equal(config_load(&c, p, NULL), -ENOENT);
	config_free(&c);
}

/* ---- all keys ---- */

static void test_all_keys(void **state)
{
	struct criod_config c;

	parse_ok(&c,
		 "[paths]\n"
		 "run_dir = /run/x\n"
		 "state_dir = /var/lib/x\n"
		 "[log]\n"
		 "level = debug\n"
		 "[criod]\n"
		 "user = kube_cri\n"
		 "socket = /run/cri.sock\n"
		 "max_message_size = 8MiB\n"
		 "max_streams = 64\n"
		 "[imaged]\n"
		 "socket = /run/i.sock\n"
		 "[netd]\n"
		 "socket = /run/n.sock\n"
		 "[spawnd]\n"
		 "socket = /run/s.sock\n"
		 "[rpc]\n"
		 "timeout_ms = 5000\n");
	assert_string_equal(c.run_dir, "/run/x");
	assert_string_equal(c.state_dir, "/var/lib/x");
	assert_string_equal(c.log_level, "debug");
	assert_string_equal(c.criod_user, "kube_cri");
	assert_string_equal(c.criod_socket, "/run/cri.sock");
	assert_int_equal(c.max_msg_size, 8u << 20);
	assert_int_equal(c.max_streams, 64);
	assert_string_equal(c.imaged_socket, "/run/i.sock");
	assert_string_equal(c.netd_socket, "/run/n.sock");
	assert_string_equal(c.spawnd_socket, "/run/s.sock");
	assert_int_equal(c.rpc_timeout_ms, 5000);
	config_free(&c);
}

static void test_later_wins_and_sections_reopen(void **state)
{
	struct criod_config c;

	parse_ok(&c, "[criod]\nmax_streams = 10\n[rpc]\ntimeout_ms=1\n[criod]\nmax_streams = 20\n");
	assert_int_equal(c.max_streams, 20);
	assert_int_equal(c.rpc_timeout_ms, 1);
	config_free(&c);
}

/* ---- value types ---- */

static void test_type_uint(void **state)
{
	struct criod_config c;
	uint64_t v;

	parse_ok(&c, "[criod]\nmax_streams = 1\n");
	assert_int_equal(c.max_streams, 1);
	config_free(&c);
	parse_ok(&c, "[criod]\nmax_streams = 65536\n");
	assert_int_equal(c.max_streams, 65536);
	config_free(&c);
	parse_ok(&c, "[criod]\nmax_streams = 007\n");
	assert_int_equal(c.max_streams, 7);
	config_free(&c);

	parse_err("[criod]\nmax_streams = abc\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"abc\" is not a number");
	parse_err("[criod]\nmax_streams = \n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"\" is not a number");
	parse_err("[criod]\nmax_streams = -5\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"-5\" is not a number");
	parse_err("[criod]\nmax_streams = +5\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"+5\" is not a number");
	parse_err("[criod]\nmax_streams = 12abc\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"12abc\" is not a number");
	parse_err("[criod]\nmax_streams = 1 0\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"1 0\" is not a number");
	parse_err("[criod]\nmax_streams = 0x10\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"0x10\" is not a number");
	parse_err("[criod]\nmax_streams = 0\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"0\" is out of range (1..65536)");
	parse_err("[criod]\nmax_streams = 65537\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"65537\" is out of range (1..65536)");
	parse_err("[criod]\nmax_streams = 99999999999999999999999\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"99999999999999999999999\" is out of range (1..65536)");

	assert_int_equal(config_parse_uint("18446744073709551615", &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(config_parse_uint("18446744073709551616", &v), -ERANGE);
	assert_int_equal(config_parse_uint("", &v), -EINVAL);
	assert_int_equal(config_parse_uint(" 1", &v), -EINVAL);
	assert_int_equal(config_parse_uint(NULL, &v), -EINVAL);
}

static void test_type_size(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint64_t v;
	} cases[] = {
		{ "0", 0, 0 },
		{ "4096", 0, 4096 },
		{ "10B", 0, 10 },
		{ "1K", 0, 1024 },
		{ "1k", 0, 1024 },
		{ "3KiB", 0, 3072 },
		{ "16M", 0, 16u << 20 },
		{ "16MiB", 0, 16u << 20 },
		{ "16 MiB", 0, 16u << 20 },
		{ "2G", 0, 2ull << 30 },
		{ "2GiB", 0, 2ull << 30 },
		{ "17179869183G", 0, 17179869183ull << 30 },
		{ "17179869184G", -ERANGE, 0 },
		{ "99999999999999999999", -ERANGE, 0 },
		{ "99999999999999999999x", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "M", -EINVAL, 0 },
		{ "1T", -EINVAL, 0 },
		{ "1 KB", -EINVAL, 0 },
		{ "1mib", -EINVAL, 0 },
		{ "1.5M", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "1MiBx", -EINVAL, 0 },
	};
	struct criod_config c;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 12345;
		int r = config_parse_size(cases[i].s, &v);
		if (r != cases[i].r)
			fail_msg("config_parse_size(\"%s\") = %d, expected %d", cases[i].s, r, cases[i].r);
		if (r == 0)
			assert_true(v == cases[i].v);
		else
			assert_true(v == 12345); /* untouched on error */
	}

	parse_ok(&c, "[criod]\nmax_message_size = 4096\n");
	assert_int_equal(c.max_msg_size, 4096);
	config_free(&c);
	parse_ok(&c, "[criod]\nmax_message_size = 512K\n");
	assert_int_equal(c.max_msg_size, 512 * 1024);
	config_free(&c);
	parse_ok(&c, "[criod]\nmax_message_size = \"4 MiB\"\n");
	assert_int_equal(c.max_msg_size, 4u << 20);
	config_free(&c);

	parse_err("[criod]\nmax_message_size = lots\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_message_size: \"lots\" is not a size (e.g. 512K, 16MiB, 1G)");
	parse_err("[criod]\nmax_message_size = 1G\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_message_size: \"1G\" is out of range (4096..16777216)");
	parse_err("[criod]\nmax_message_size = 4095\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_message_size: \"4095\" is out of range (4096..16777216)");
}

static void test_type_duration(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint64_t v;
	} cases[] = {
		{ "250", 0, 250 },
		{ "250ms", 0, 250 },
		{ "30s", 0, 30000 },
		{ "30 s", 0, 30000 },
		{ "2min", 0, 120000 },
		{ "1h", 0, 3600000 },
		{ "", -EINVAL, 0 },
		{ "1m", -EINVAL, 0 },
		{ "1d", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "18446744073709551615h", -ERANGE, 0 },
	};
	struct criod_config c;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 0;
		int r = config_parse_duration_ms(cases[i].s, &v);
		if (r != cases[i].r)
			fail_msg("config_parse_duration_ms(\"%s\") = %d, expected %d", cases[i].s, r, cases[i].r);
		if (r == 0)
			assert_true(v == cases[i].v);
	}

	parse_ok(&c, "[rpc]\ntimeout_ms = 90s\n");
	assert_int_equal(c.rpc_timeout_ms, 90000);
	config_free(&c);
	parse_err("[rpc]\ntimeout_ms = soon\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [rpc] timeout_ms: \"soon\" is not a duration (milliseconds, or e.g. 30s, 2min, 1h)");
	parse_err("[rpc]\ntimeout_ms = 0\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [rpc] timeout_ms: \"0\" is out of range (1..86400000)");
	parse_err("[rpc]\ntimeout_ms = 25h\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [rpc] timeout_ms: \"25h\" is out of range (1..86400000)");
	parse_ok(&c, "[rpc]\nframe_timeout = 1500ms\nmax_buffered = 32MiB\n");
	assert_int_equal(c.rpc_frame_timeout_ms, 1500);
	assert_int_equal(c.rpc_max_buffered, 32u << 20);
	config_free(&c);
	/* Less than spawnd's CreateContainer cap would refuse it for ever. */
	parse_err("[rpc]\nmax_buffered = 1MiB\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [rpc] max_buffered: \"1MiB\" is out of range (4194304..1073741824)");
	parse_err("[rpc]\nframe_timeout = 10ms\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [rpc] frame_timeout: \"10ms\" is out of range (100..3600000)");
}

static void test_type_bool(void **state)
{
	static const struct {
		const char *s;
		int r;
		bool v;
	} cases[] = {
		{ "true", 0, true },   { "yes", 0, true },    { "on", 0, true },  { "1", 0, true },
		{ "TRUE", 0, true },   { "Yes", 0, true },    { "false", 0, false }, { "no", 0, false },
		{ "off", 0, false },   { "0", 0, false },     { "FALSE", 0, false }, { "", -EINVAL, false },
		{ "2", -EINVAL, false }, { "maybe", -EINVAL, false }, { "truex", -EINVAL, false },
		{ " true", -EINVAL, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool v = !cases[i].v;
		int r = config_parse_bool(cases[i].s, &v);
		if (r != cases[i].r)
			fail_msg("config_parse_bool(\"%s\") = %d, expected %d", cases[i].s, r, cases[i].r);
		if (r == 0)
			assert_true(v == cases[i].v);
	}
	assert_int_equal(config_parse_bool(NULL, &(bool){ false }), -EINVAL);
}

static void test_type_path(void **state)
{
	struct criod_config c;
	char long_path[5000];
	char long_line[5200];
	char expect[400];

	parse_ok(&c, "[paths]\nstate_dir = /\n");
	assert_string_equal(c.state_dir, "/");
	config_free(&c);
	parse_ok(&c, "[paths]\nstate_dir = /var/lib/criod/\n");
	assert_string_equal(c.state_dir, "/var/lib/criod"); /* trailing slashes dropped */
	config_free(&c);
	parse_ok(&c, "[paths]\nstate_dir = /var/lib/..hidden/a..b/...\n");
	assert_string_equal(c.state_dir, "/var/lib/..hidden/a..b/...");
	config_free(&c);

	parse_err("[paths]\nstate_dir = var/lib\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [paths] state_dir: \"var/lib\" is not an absolute path");
	parse_err("[paths]\nstate_dir =\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [paths] state_dir: \"\" is not an absolute path");
	parse_err("[paths]\nstate_dir = /var/../etc\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [paths] state_dir: \"/var/../etc\" must not contain \"..\"");
	parse_err("[paths]\nstate_dir = /var/..\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [paths] state_dir: \"/var/..\" must not contain \"..\"");

	/* A path longer than the limit (but a line that still fits). */
	memset(long_path, 'a', 1024);
	long_path[0] = '/';
	long_path[1024] = '\0';
	snprintf(long_line, sizeof(long_line), "[paths]\nstate_dir=%s\n", long_path);
	parse_ok(&c, long_line);
	assert_string_equal(c.state_dir, long_path);
	config_free(&c);
	long_path[1024] = 'b';
	long_path[1025] = '\0';
	snprintf(long_line, sizeof(long_line), "[paths]\nstate_dir=%s\n", long_path);
	snprintf(expect, sizeof(expect),
		 "/etc/criod/criod.conf:2: [paths] state_dir: \"/%.63s...\" is too long (max 1024 bytes)",
		 long_path + 1);
	parse_err(long_line, -EINVAL, expect);

	/* A socket path must fit sockaddr_un. */
	memset(long_path, 'x', 107);
	long_path[0] = '/';
	long_path[107] = '\0';
	snprintf(long_line, sizeof(long_line), "[netd]\nsocket=%s\n", long_path);
	parse_ok(&c, long_line);
	assert_string_equal(c.netd_socket, long_path);
	config_free(&c);
	long_path[107] = 'x';
	long_path[108] = '\0';
	snprintf(long_line, sizeof(long_line), "[netd]\nsocket=%s\n", long_path);
	snprintf(expect, sizeof(expect),
		 "/etc/criod/criod.conf:2: [netd] socket: \"%.64s...\" is too long (max 107 bytes)", long_path);
	parse_err(long_line, -EINVAL, expect);
}

static void test_type_user(void **state)
{
	static const char *const good[] = { "criod", "_criod", "kube-cri", "a.b", "x1", "machine$",
					    "abcdefghijklmnopqrstuvwxyzabcdef" };
	static const char *const bad[] = { "1criod", "-criod", "cri od", "cri$od", "root:x", "ümlaut",
					   "abcdefghijklmnopqrstuvwxyzabcdefg", ".hidden" };
	struct criod_config c;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		char text[128];
		snprintf(text, sizeof(text), "[criod]\nuser = %s\n", good[i]);
		parse_ok(&c, text);
		assert_string_equal(c.criod_user, good[i]);
		config_free(&c);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct criod_config d;
		char text[128];
		char *err = NULL;
		config_defaults(&d);
		snprintf(text, sizeof(text), "[criod]\nuser = %s\n", bad[i]);
		if (config_parse_string(&d, "f", text, &err) != -EINVAL)
			fail_msg("user name \"%s\" was accepted", bad[i]);
		assert_non_null(strstr(err, "is not a valid user name"));
		assert_string_equal(d.criod_user, "criod");
		free(err);
		config_free(&d);
	}
	parse_err("[criod]\nuser = \"bad user\"\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] user: \"bad user\" is not a valid user name");
	parse_err("[criod]\nuser = ümlaut\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] user: \"\\xc3\\xbcmlaut\" is not a valid user name");
}

static void test_type_log_level(void **state)
{
	static const char *const levels[] = { "debug", "info", "warn", "error" };
	struct criod_config c;

	for (size_t i = 0; i < ARRAY_SIZE(levels); i++) {
		char text[64];
		snprintf(text, sizeof(text), "[log]\nlevel = %s\n", levels[i]);
		parse_ok(&c, text);
		assert_string_equal(c.log_level, levels[i]);
		config_free(&c);
	}
	parse_err("[log]\nlevel = loud\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [log] level: \"loud\" is not a log level (debug, info, warn, error)");
	parse_err("[log]\nlevel = INFO\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [log] level: \"INFO\" is not a log level (debug, info, warn, error)");
}

/* ---- syntax ---- */

static void test_syntax_errors(void **state)
{
	parse_err("max_streams = 5\n", -EINVAL,
		  "/etc/criod/criod.conf:1: key \"max_streams\" before any [section]");
	parse_err("# c\n\n[criod]\nfoo = 1\n", -EINVAL,
		  "/etc/criod/criod.conf:4: unknown key \"foo\" in section [criod]");
	parse_err("[criod]\nlevel = info\n", -EINVAL,
		  "/etc/criod/criod.conf:2: unknown key \"level\" in section [criod]");
	parse_err("[criod]\nMax_Streams = 1\n", -EINVAL,
		  "/etc/criod/criod.conf:2: unknown key \"Max_Streams\" in section [criod]");
	parse_err("\n\n\n\n\n\n[bar]\n", -EINVAL, "/etc/criod/criod.conf:7: unknown section [bar]");
	parse_err("[Criod]\n", -EINVAL, "/etc/criod/criod.conf:1: unknown section [Criod]");
	parse_err("[]\n", -EINVAL, "/etc/criod/criod.conf:1: unknown section \"\"");
	parse_err("[a b]\n", -EINVAL, "/etc/criod/criod.conf:1: unknown section \"a b\"");
	parse_err("[criod\n", -EINVAL, "/etc/criod/criod.conf:1: expected \"[section]\"");
	parse_err("[criod] # comment\n", -EINVAL, "/etc/criod/criod.conf:1: expected \"[section]\"");
	parse_err("[criod]\n\n\n\n\n\n\n\njust some words\n", -EINVAL,
		  "/etc/criod/criod.conf:9: expected \"key = value\"");
	parse_err("[criod]\n= 5\n", -EINVAL, "/etc/criod/criod.conf:2: expected \"key = value\"");
	parse_err("[criod]\nsocket = \"/run/x.sock\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] socket: missing closing quote");
	parse_err("[criod]\nsocket = \"/run/x.sock\\\"\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] socket: missing closing quote");
	parse_err("[criod]\nsocket = \"/run/x.sock\" trailing\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] socket: unexpected text after closing quote");
	parse_err("[criod]\nsocket = \"/run/\\n.sock\"\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] socket: invalid escape in quoted value (only \\\" and \\\\ are allowed)");
	parse_err("[criod]\nuser = a\x01z\n", -EINVAL,
		  "/etc/criod/criod.conf:2: invalid control character 0x01");
	parse_err("[criod]\nuser = a\rz\n", -EINVAL,
		  "/etc/criod/criod.conf:2: invalid control character 0x0d");
}

static void test_line_too_long(void **state)
{
	char *text = malloc(8192);
	size_t n;

	assert_non_null(text);
	/* 4096 bytes is the longest line accepted. */
	n = (size_t)snprintf(text, 8192, "[criod]\n#");
	memset(text + n, 'c', 4095);
	strcpy(text + n + 4095, "\nmax_streams = 3\n");
	{
		struct criod_config c;
		parse_ok(&c, text);
		assert_int_equal(c.max_streams, 3);
		config_free(&c);
	}
	n = (size_t)snprintf(text, 8192, "[criod]\n#");
	memset(text + n, 'c', 4096);
	strcpy(text + n + 4096, "\n");
	parse_err(text, -EINVAL, "/etc/criod/criod.conf:2: line too long (max 4096 bytes)");
	free(text);
}

static void test_quoting_and_whitespace(void **state)
{
	struct criod_config c;

	parse_ok(&c,
		 "  [ criod ]  \n"
		 "\tsocket\t=\t\"/run/with space/a\\\"b\\\\c.sock\"  \n"
		 "user=\"criod\"\n"
		 "max_streams=\"12\"\n"
		 "  ; comment = not a key\n"
		 "\t# [notasection]\n"
		 "[paths]\n"
		 "state_dir = /var/lib/has = sign\n");
	assert_string_equal(c.criod_socket, "/run/with space/a\"b\\c.sock");
	assert_string_equal(c.criod_user, "criod");
	assert_int_equal(c.max_streams, 12);
	assert_string_equal(c.state_dir, "/var/lib/has = sign");
	config_free(&c);

	/* CRLF line ends, a byte order mark, and no newline at the end. */
	parse_ok(&c, "\xef\xbb\xbf[criod]\r\nmax_streams = 9\r\n[rpc]\r\ntimeout_ms = 7");
	assert_int_equal(c.max_streams, 9);
	assert_int_equal(c.rpc_timeout_ms, 7);
	config_free(&c);

	/* Quoting an empty value. */
	parse_err("[paths]\nstate_dir = \"\"\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [paths] state_dir: \"\" is not an absolute path");
	/* A bad value is quoted back with its control bytes escaped. */
	parse_err("[criod]\nmax_streams = \"a\\\"b\"\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [criod] max_streams: \"a\\\"b\" is not a number");
}

/* ---- derived socket paths ---- */

static void test_derived_sockets(void **state)
{
	struct criod_config c;

	parse_ok(&c, "[paths]\nrun_dir = /run/other\n");
	assert_string_equal(c.run_dir, "/run/other");
	assert_string_equal(c.criod_socket, "/run/other/criod.sock");
	assert_string_equal(c.imaged_socket, "/run/other/imaged.sock");
	assert_string_equal(c.netd_socket, "/run/other/netd.sock");
	assert_string_equal(c.spawnd_socket, "/run/other/spawnd.sock");
	config_free(&c);

	/* An explicit socket wins, whatever the order in the file. */
	parse_ok(&c, "[netd]\nsocket = /srv/netd.sock\n[paths]\nrun_dir = /run/other/\n");
	assert_string_equal(c.run_dir, "/run/other");
	assert_string_equal(c.netd_socket, "/srv/netd.sock");
	assert_string_equal(c.criod_socket, "/run/other/criod.sock");
	config_free(&c);

	parse_ok(&c, "[paths]\nrun_dir = /\n");
	assert_string_equal(c.criod_socket, "/criod.sock");
	config_free(&c);
}

static void test_derived_socket_too_long(void **state)
{
	char dir[128], text[256], expect[512];

	memset(dir, 'r', 100);
	dir[0] = '/';
	dir[100] = '\0';
	snprintf(text, sizeof(text), "[criod]\nsocket = /run/c.sock\n[paths]\nrun_dir = %s\n", dir);
	snprintf(expect, sizeof(expect),
		 "/etc/criod/criod.conf:4: [paths] run_dir: derived [imaged] socket: \"%.64s...\" is too long (max 107 bytes)",
		 dir);
	parse_err(text, -EINVAL, expect);
}

/* ---- files and drop-ins ---- */

static void test_load_file_and_dropins(void **state)
{
	struct criod_config c;
	_cleanup_free_ char *main_conf = tpath("criod.conf");
	char *err = NULL;

	write_rel("criod.conf", "[criod]\nmax_streams = 1\nsocket = /run/main.sock\n[rpc]\ntimeout_ms = 11\n");
	/* Without a drop-in directory. */
	assert_int_equal(config_load(&c, main_conf, &err), 0);
	assert_null(err);
	assert_int_equal(c.max_streams, 1);
	config_free(&c);

	mkdir_rel("criod.conf.d");
	write_rel("criod.conf.d/20-b.conf", "[criod]\nmax_streams = 20\n");
	write_rel("criod.conf.d/10-a.conf", "[criod]\nmax_streams = 10\n[log]\nlevel = warn\n");
	write_rel("criod.conf.d/05-c.conf", "[log]\nlevel = error\n[paths]\nrun_dir = /run/dropin\n");
	write_rel("criod.conf.d/99-z.conf.disabled", "[criod]\nmax_streams = 99\n");
	write_rel("criod.conf.d/README", "this is not a config file\n");
	write_rel("criod.conf.d/.hidden.conf", "[criod]\nmax_streams = 98\n");
	/* Byte order, not the locale's: digits < 'B' < 'a'. */
	write_rel("criod.conf.d/B.conf", "[rpc]\ntimeout_ms = 22\n");
	write_rel("criod.conf.d/a.conf", "[rpc]\ntimeout_ms = 33\n");
	mkdir_rel("criod.conf.d/50-dir.conf");

	assert_int_equal(config_load(&c, main_conf, &err), 0);
	assert_null(err);
	assert_int_equal(c.max_streams, 20);        /* 20-b after 10-a */
	assert_string_equal(c.log_level, "warn");   /* 10-a after 05-c */
	assert_int_equal(c.rpc_timeout_ms, 33);     /* a.conf after B.conf */
	assert_string_equal(c.run_dir, "/run/dropin");
	assert_string_equal(c.criod_socket, "/run/main.sock"); /* set explicitly in the main file */
	assert_string_equal(c.netd_socket, "/run/dropin/netd.sock");
	config_free(&c);

	/* An error in a drop-in names the drop-in. */
	write_rel("criod.conf.d/30-bad.conf", "# bad\n[criod]\nmax_streams = many\n");
	assert_int_equal(config_load(&c, main_conf, &err), -EINVAL);
	{
		_cleanup_free_ char *expect = NULL;
		assert_true(asprintf(&expect, "%s/criod.conf.d/30-bad.conf:3: [criod] max_streams: \"many\" is not a number",
				     tmpdir) > 0);
		assert_string_equal(err, expect);
	}
	free(err);
	err = NULL;
	assert_defaults(&c);
	config_free(&c);
}

static void test_load_errors(void **state)
{
	struct criod_config c;
	_cleanup_free_ char *p = tpath("bin.conf");
	_cleanup_free_ char *big = tpath("big.conf");
	_cleanup_free_ char *d = tpath("adir");
	_cleanup_free_ char *expect = NULL;
	char *err = NULL;
	char *buf;

	/* A NUL byte in a file. */
	write_text(p, "[criod]\nmax_streams = 1\0\n", 25);
	assert_int_equal(config_load(&c, p, &err), -EINVAL);
	assert_true(asprintf(&expect, "%s:2: invalid control character 0x00", p) > 0);
	assert_string_equal(err, expect);
	free(err);
	free(expect);
	config_free(&c);

	/* Larger than 1 MiB of comments. */
	buf = malloc((1u << 20) + 2);
	assert_non_null(buf);
	memset(buf, '#', (1u << 20) + 1);
	for (size_t i = 100; i < (1u << 20); i += 100)
		buf[i] = '\n';
	write_text(big, buf, (1u << 20) + 1);
	assert_int_equal(config_load(&c, big, &err), -EFBIG);
	assert_true(asprintf(&expect, "%s: file too large (max 1048576 bytes)", big) > 0);
	assert_string_equal(err, expect);
	free(err);
	free(expect);
	config_free(&c);
	/* Exactly 1 MiB is fine. */
	write_text(big, buf, 1u << 20);
	assert_int_equal(config_load(&c, big, &err), 0);
	assert_null(err);
	config_free(&c);
	free(buf);

	/* A directory is not a configuration file. */
	assert_int_equal(mkdir(d, 0755), 0);
	assert_int_equal(config_load(&c, d, &err), -EINVAL);
	assert_true(asprintf(&expect, "%s: not a regular file", d) > 0);
	assert_string_equal(err, expect);
	free(err);
	free(expect);
	expect = NULL;
	config_free(&c);

	/* A FIFO must not hang the loader. */
	{
		_cleanup_free_ char *fifo = tpath("fifo.conf");
		assert_int_equal(mkfifo(fifo, 0644), 0);
		assert_int_equal(config_load(&c, fifo, &err), -EINVAL);
		assert_non_null(strstr(err, "not a regular file"));
		free(err);
		config_free(&c);
	}
}

static void test_parse_string_all_or_nothing(void **state)
{
	struct criod_config c;
	char *err = NULL;

	config_defaults(&c);
	assert_int_equal(config_parse_string(&c, "a.conf", "[criod]\nmax_streams = 5\n", &err), 0);
	/* Applies on top of what is there. */
	assert_int_equal(config_parse_string(&c, "b.conf", "[rpc]\ntimeout_ms = 6\n", &err), 0);
	assert_int_equal(c.max_streams, 5);
	assert_int_equal(c.rpc_timeout_ms, 6);
	/* A failing buffer changes nothing, even keys before the bad line. */
	assert_int_equal(config_parse_string(&c, "c.conf",
					     "[criod]\nmax_streams = 7\n[paths]\nrun_dir = /x\n[rpc]\nnope = 1\n", &err),
			 -EINVAL);
	assert_string_equal(err, "c.conf:6: unknown key \"nope\" in section [rpc]");
	free(err);
	assert_int_equal(c.max_streams, 5);
	assert_string_equal(c.run_dir, "/run/criod");
	assert_string_equal(c.criod_socket, "/run/criod/criod.sock");
	config_free(&c);
}


/* ---- [imaged] image keys ---- */

static void test_metrics_keys(void **state)
{
	struct criod_config c;

	parse_ok(&c, "");
	assert_true(c.metrics_enabled);
	assert_string_equal(c.metrics_socket, "/run/criod/metrics.sock");
	assert_int_equal(c.metrics_port, 0);
	config_free(&c);
	/* The socket moves with run_dir unless set. */
	parse_ok(&c, "[paths]\nrun_dir = /run/x\n");
	assert_string_equal(c.metrics_socket, "/run/x/metrics.sock");
	config_free(&c);
	parse_ok(&c, "[metrics]\nenabled = off\nsocket = /run/m.sock\nport = 9101\n[paths]\nrun_dir = /run/x\n");
	assert_false(c.metrics_enabled);
	assert_string_equal(c.metrics_socket, "/run/m.sock");
	assert_int_equal(c.metrics_port, 9101);
	config_free(&c);
	parse_err("[metrics]\nport = 65536\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [metrics] port: \"65536\" is out of range (0..65535)");
	parse_err("[metrics]\nsocket = m.sock\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [metrics] socket: \"m.sock\" is not an absolute path");
}

static void test_imaged_keys(void **state)
{
	struct criod_config c;

	parse_ok(&c, "[imaged]\nauth_file = /var/lib/kubelet/config.json\nmax_concurrent_downloads = 32\nrootfs_mode = copy\n");
	assert_string_equal(c.auth_file, "/var/lib/kubelet/config.json");
	assert_int_equal(c.max_concurrent_downloads, 32);
	assert_string_equal(c.rootfs_mode, "copy");
	config_free(&c);
	parse_ok(&c, "[imaged]\nfetch_stall_timeout = 5min\n");
	assert_int_equal(c.fetch_stall_ms, 300000);
	config_free(&c);
	parse_err("[imaged]\nfetch_stall_timeout = 500\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] fetch_stall_timeout: \"500\" is out of range (1000..3600000)");
	parse_ok(&c, "[imaged]\nmax_concurrent_downloads = 1\nrootfs_mode = \"overlay\"\n");
	assert_int_equal(c.max_concurrent_downloads, 1);
	assert_string_equal(c.rootfs_mode, "overlay");
	assert_string_equal(c.auth_file, "/etc/criod/auth.json");
	config_free(&c);
	/* auth_file does not move with run_dir. */
	parse_ok(&c, "[paths]\nrun_dir = /run/x\n");
	assert_string_equal(c.auth_file, "/etc/criod/auth.json");
	config_free(&c);

	parse_err("[imaged]\nauth_file = auth.json\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] auth_file: \"auth.json\" is not an absolute path");
	parse_err("[imaged]\nauth_file = /etc/../auth.json\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] auth_file: \"/etc/../auth.json\" must not contain \"..\"");
	parse_err("[imaged]\nmax_concurrent_downloads = 0\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] max_concurrent_downloads: \"0\" is out of range (1..32)");
	parse_err("[imaged]\nmax_concurrent_downloads = 33\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] max_concurrent_downloads: \"33\" is out of range (1..32)");
	parse_err("[imaged]\nmax_concurrent_downloads = three\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] max_concurrent_downloads: \"three\" is not a number");
	parse_err("[imaged]\nrootfs_mode = fuse\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] rootfs_mode: \"fuse\" is not one of: auto, overlay, copy");
	parse_err("[imaged]\nrootfs_mode = Auto\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] rootfs_mode: \"Auto\" is not one of: auto, overlay, copy");
	parse_err("[imaged]\nrootfs_mode =\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [imaged] rootfs_mode: \"\" is not one of: auto, overlay, copy");
}

/* ---- [policy] ---- */

static void test_policy_keys(void **state)
{
	struct criod_config c, d;
	char long_path[1100], text[4096], expect[1400];
	char *err = NULL;

	parse_ok(&c, "[policy]\nseccomp_profile_roots = /var/lib/kubelet/seccomp, /etc/seccomp/ ,/srv/a//\n");
	assert_int_equal(c.n_seccomp_profile_roots, 3);
	assert_string_equal(c.seccomp_profile_roots[0], "/var/lib/kubelet/seccomp");
	assert_string_equal(c.seccomp_profile_roots[1], "/etc/seccomp");
	assert_string_equal(c.seccomp_profile_roots[2], "/srv/a");
	/* A later value replaces the list; the copy is deep. */
	assert_int_equal(config_parse_string(&c, "b.conf", "[policy]\nseccomp_profile_roots = \"/x\"\n", &err), 0);
	assert_int_equal(c.n_seccomp_profile_roots, 1);
	assert_string_equal(c.seccomp_profile_roots[0], "/x");
	assert_int_equal(config_parse_string(&c, "c.conf", "[policy]\nseccomp_profile_roots = /y\nbogus = 1\n", &err),
			 -EINVAL);
	free(err);
	err = NULL;
	assert_int_equal(c.n_seccomp_profile_roots, 1);
	assert_string_equal(c.seccomp_profile_roots[0], "/x");
	config_free(&c);
	assert_null(c.seccomp_profile_roots);
	assert_int_equal(c.n_seccomp_profile_roots, 0);
	config_free(&c);

	/* Empty: no Localhost profile is allowed. */
	parse_ok(&c, "[policy]\nseccomp_profile_roots =\n");
	assert_int_equal(c.n_seccomp_profile_roots, 0);
	assert_null(c.seccomp_profile_roots);
	config_free(&c);
	config_defaults(&d);
	assert_int_equal(config_parse_string(&d, "e.conf", "[policy]\nseccomp_profile_roots = \"\"\n", &err), 0);
	assert_int_equal(d.n_seccomp_profile_roots, 0);
	config_free(&d);

	parse_err("[policy]\nseccomp_profile_roots = seccomp\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: \"seccomp\" is not an absolute path");
	parse_err("[policy]\nseccomp_profile_roots = /a, ../b\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: \"../b\" is not an absolute path");
	parse_err("[policy]\nseccomp_profile_roots = /var/lib/../../etc\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: \"/var/lib/../../etc\" must not contain \"..\"");
	parse_err("[policy]\nseccomp_profile_roots = /\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: \"/\" would be every file of the host");
	parse_err("[policy]\nseccomp_profile_roots = /a, ///\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: \"/\" would be every file of the host");
	parse_err("[policy]\nseccomp_profile_roots = /a//b\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: \"/a//b\" is not a clean path (no \"//\" or \".\" components)");
	parse_err("[policy]\nseccomp_profile_roots = /a/./b\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: \"/a/./b\" is not a clean path (no \"//\" or \".\" components)");
	parse_err("[policy]\nseccomp_profile_roots = /a,,/b\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: empty entry in the list");
	memset(long_path, 'a', sizeof(long_path));
	long_path[0] = '/';
	long_path[1025] = '\0';
	snprintf(text, sizeof(text), "[policy]\nseccomp_profile_roots = %s\n", long_path);
	parse_err(text, -EINVAL, "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: "
				 "\"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is too long (max 1024 bytes)");
	size_t n = (size_t)snprintf(text, sizeof(text), "[policy]\nseccomp_profile_roots = /r0");
	for (int i = 1; i < 17; i++)
		n += (size_t)snprintf(text + n, sizeof(text) - n, ", /r%d", i);
	snprintf(text + n, sizeof(text) - n, "\n");
	snprintf(expect, sizeof(expect), "/etc/criod/criod.conf:2: [policy] seccomp_profile_roots: too many directories (max 16)");
	parse_err(text, -EINVAL, expect);
	parse_err("[policy]\nroots = /a\n", -EINVAL, "/etc/criod/criod.conf:2: unknown key \"roots\" in section [policy]");
}

/* ---- [runtime.NAME] and [pods] default_runtime ---- */

static void test_runtime_builtin(void **state)
{
	struct criod_config c;
	const struct runtime_config *rt;

	config_defaults(&c);
	assert_string_equal(c.default_runtime, "runc");
	assert_int_equal(c.n_runtimes, 1);
	rt = config_runtime(&c, "runc");
	assert_non_null(rt);
	assert_string_equal(rt->name, "runc");
	assert_string_equal(rt->path, "/usr/sbin/runc");
	assert_ptr_equal(config_runtime(&c, ""), rt);
	assert_ptr_equal(config_runtime(&c, NULL), rt);
	assert_null(config_runtime(&c, "nosuch"));
	assert_null(config_runtime(NULL, "runc"));
	config_free(&c);
	assert_null(c.runtimes);
	assert_int_equal(c.n_runtimes, 0);
	config_free(&c);

	/* Other sections keep the built-in handler. */
	parse_ok(&c, "[pods]\nshm_size = 1M\n");
	assert_non_null(config_runtime(&c, "runc"));
	config_free(&c);
}

static void test_runtime_sections(void **state)
{
	struct criod_config c;
	const struct runtime_config *rt;
	char *err = NULL;

	/* The first section replaces the built-in list. */
	parse_ok(&c, "[runtime.crun]\npath = /usr/bin/crun\n[runtime.kata-1.x]\npath = \"/opt/kata/bin/kata\"\n"
		     "[pods]\ndefault_runtime = crun\n");
	assert_int_equal(c.n_runtimes, 2);
	assert_string_equal(c.runtimes[0].name, "crun");
	assert_string_equal(c.runtimes[1].name, "kata-1.x");
	assert_null(config_runtime(&c, "runc"));
	rt = config_runtime(&c, "");
	assert_non_null(rt);
	assert_string_equal(rt->path, "/usr/bin/crun");
	assert_string_equal(config_runtime(&c, "kata-1.x")->path, "/opt/kata/bin/kata");

	/* Applied on top: a further section adds; a repeated one sets its keys. */
	assert_int_equal(config_parse_string(&c, "more.conf", "[runtime.runc]\npath = /usr/sbin/runc\n"
							     "[runtime.crun]\npath = /usr/local/bin/crun/\n", &err), 0);
	assert_null(err);
	assert_int_equal(c.n_runtimes, 3);
	assert_string_equal(config_runtime(&c, "crun")->path, "/usr/local/bin/crun");
	assert_string_equal(config_runtime(&c, "runc")->path, "/usr/sbin/runc");

	/* An error leaves the runtimes as they were. */
	assert_int_equal(config_parse_string(&c, "bad.conf", "[runtime.x]\n", &err), -EINVAL);
	assert_string_equal(err, "bad.conf: [runtime.x]: path is required");
	free(err);
	err = NULL;
	assert_int_equal(c.n_runtimes, 3);
	assert_null(config_runtime(&c, "x"));
	config_free(&c);

	/* Keeping the built-in name needs its own section. */
	parse_ok(&c, "[runtime.runc]\npath = /usr/local/sbin/runc\n");
	assert_int_equal(c.n_runtimes, 1);
	assert_string_equal(config_runtime(&c, "")->path, "/usr/local/sbin/runc");
	config_free(&c);
}

static void test_runtime_errors(void **state)
{
	parse_err("[runtime.crun]\npath = /usr/bin/crun\n", -EINVAL,
		  "/etc/criod/criod.conf: [pods] default_runtime: \"runc\" is not a configured [runtime.NAME] (configured: crun)");
	parse_err("[pods]\ndefault_runtime = kata\n", -EINVAL,
		  "/etc/criod/criod.conf: [pods] default_runtime: \"kata\" is not a configured [runtime.NAME] (configured: runc)");
	parse_err("[runtime.crun]\n[pods]\ndefault_runtime = crun\n", -EINVAL,
		  "/etc/criod/criod.conf: [runtime.crun]: path is required");
	parse_err("[runtime.crun]\npath = crun\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [runtime.crun] path: \"crun\" is not an absolute path");
	parse_err("[runtime.crun]\nbinary = /usr/bin/crun\n", -EINVAL,
		  "/etc/criod/criod.conf:2: unknown key \"binary\" in section [runtime.crun]");
	parse_err("[runtime.]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [runtime.NAME]: \"\" is not a runtime handler name (1 to 63 letters, digits, '.', '_' or '-')");
	parse_err("[runtime.a/b]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [runtime.NAME]: \"a/b\" is not a runtime handler name (1 to 63 letters, digits, '.', '_' or '-')");
}

static void test_runtime_limits_and_dropins(void **state)
{
	struct criod_config c;
	_cleanup_free_ char *main_conf = tpath("criod.conf");
	char *err = NULL;
	char *text = malloc(65 * 64 + 128);
	size_t n = 0;

	assert_non_null(text);
	n += (size_t)sprintf(text + n, "[pods]\ndefault_runtime = r0\n");
	for (int i = 0; i < 64; i++)
		n += (size_t)sprintf(text + n, "[runtime.r%d]\npath = /bin/r%d\n", i, i);
	parse_ok(&c, text);
	assert_int_equal(c.n_runtimes, 64);
	assert_string_equal(config_runtime(&c, "r63")->path, "/bin/r63");
	config_free(&c);
	sprintf(text + n, "[runtime.one-more]\n");
	parse_err(text, -EINVAL, "/etc/criod/criod.conf:131: too many [runtime.NAME] sections (max 64)");
	free(text);

	/* default_runtime in the main file, its section in a drop-in. */
	write_rel("criod.conf", "[pods]\ndefault_runtime = crun\n");
	mkdir_rel("criod.conf.d");
	write_rel("criod.conf.d/10-crun.conf", "[runtime.crun]\npath = /usr/bin/crun\n");
	write_rel("criod.conf.d/20-runc.conf", "[runtime.runc]\npath = /usr/sbin/runc\n");
	assert_int_equal(config_load(&c, main_conf, &err), 0);
	assert_null(err);
	assert_int_equal(c.n_runtimes, 2);
	assert_string_equal(config_runtime(&c, "")->name, "crun");
	config_free(&c);

	/* Without the drop-in that names it, the default is unknown. */
	write_rel("criod.conf.d/10-crun.conf", "[log]\nlevel = info\n");
	assert_int_equal(config_load(&c, main_conf, &err), -EINVAL);
	assert_non_null(err);
	assert_non_null(strstr(err, "[pods] default_runtime: \"crun\" is not a configured [runtime.NAME] (configured: runc)"));
	free(err);
	config_free(&c);
}

/* ---- [registry.HOST] ---- */

static void test_registry_sections(void **state)
{
	struct criod_config c;
	const struct registry_config *r;

	parse_ok(&c,
		 "[registry.localhost:5000]\n"
		 "insecure = true\n"
		 "[registry.docker.io]\n"
		 "mirrors = mirror.gcr.io, 10.0.0.1:5000 ,[::1]:5000,[2001:db8::1]\n"
		 "ca_file = /etc/criod/certs/hub.pem\n"
		 "[registry.[::1]:5001]\n"
		 "blocked = yes\n"
		 "[registry.Quay.IO]\n"
		 "[criod]\n"
		 "max_streams = 7\n");
	assert_int_equal(c.max_streams, 7);
	assert_int_equal(c.n_registries, 4);
	/* In file order. */
	assert_string_equal(c.registries[0].host, "localhost:5000");
	assert_string_equal(c.registries[1].host, "docker.io");
	assert_string_equal(c.registries[2].host, "[::1]:5001");
	assert_string_equal(c.registries[3].host, "Quay.IO");

	r = config_registry(&c, "localhost:5000");
	assert_ptr_equal(r, &c.registries[0]);
	assert_true(r->insecure);
	assert_false(r->blocked);
	assert_null(r->ca_file);
	assert_null(r->mirrors);
	assert_int_equal(r->n_mirrors, 0);

	r = config_registry(&c, "docker.io");
	assert_non_null(r);
	assert_false(r->insecure);
	assert_string_equal(r->ca_file, "/etc/criod/certs/hub.pem");
	assert_int_equal(r->n_mirrors, 4);
	assert_string_equal(r->mirrors[0], "mirror.gcr.io");
	assert_string_equal(r->mirrors[1], "10.0.0.1:5000");
	assert_string_equal(r->mirrors[2], "[::1]:5000");
	assert_string_equal(r->mirrors[3], "[2001:db8::1]");

	r = config_registry(&c, "[::1]:5001");
	assert_non_null(r);
	assert_true(r->blocked);
	/* Host names compare without case; an empty section still counts. */
	r = config_registry(&c, "quay.io");
	assert_ptr_equal(r, &c.registries[3]);
	assert_false(r->insecure || r->blocked);

	assert_null(config_registry(&c, "localhost"));
	assert_null(config_registry(&c, "localhost:5001"));
	assert_null(config_registry(&c, "registry-1.docker.io"));
	assert_null(config_registry(&c, NULL));
	assert_null(config_registry(NULL, "docker.io"));
	config_free(&c);
	assert_null(c.registries);
	assert_int_equal(c.n_registries, 0);
	config_free(&c);

	config_defaults(&c);
	assert_null(config_registry(&c, "docker.io"));
	config_free(&c);
}

static void test_registry_merge(void **state)
{
	struct criod_config c;
	const struct registry_config *r;
	char *err = NULL;

	/* A repeated section sets keys of the same entry; later wins per key. */
	parse_ok(&c,
		 "[registry.example.com]\ninsecure = true\nmirrors = a.example.com, b.example.com\n"
		 "[log]\nlevel = warn\n"
		 "[registry.EXAMPLE.com]\nblocked = true\ninsecure = false\n"
		 "[registry.example.com]\nca_file = /ca.pem\n");
	assert_int_equal(c.n_registries, 1);
	r = config_registry(&c, "example.com");
	assert_non_null(r);
	assert_false(r->insecure);
	assert_true(r->blocked);
	assert_string_equal(r->ca_file, "/ca.pem");
	assert_int_equal(r->n_mirrors, 2);
	assert_string_equal(c.log_level, "warn");

	/* Another buffer on top merges too; mirrors are replaced as a whole,
	 * and an empty list clears them. */
	assert_int_equal(config_parse_string(&c, "b.conf",
					     "[registry.example.com]\nmirrors = c.example.com\n[registry.other.org]\n", &err),
			 0);
	assert_null(err);
	assert_int_equal(c.n_registries, 2);
	r = config_registry(&c, "example.com");
	assert_true(r->blocked);
	assert_int_equal(r->n_mirrors, 1);
	assert_string_equal(r->mirrors[0], "c.example.com");
	assert_int_equal(config_parse_string(&c, "c.conf", "[registry.example.com]\nmirrors = \"\"\n", &err), 0);
	r = config_registry(&c, "example.com");
	assert_int_equal(r->n_mirrors, 0);
	assert_null(r->mirrors);

	/* All or nothing: a failing buffer leaves the registries as they were. */
	assert_int_equal(config_parse_string(&c, "d.conf",
					     "[registry.example.com]\ninsecure = true\nmirrors = x.org\n"
					     "[registry.new.org]\nblocked = true\nbogus = 1\n",
					     &err),
			 -EINVAL);
	assert_string_equal(err, "d.conf:6: unknown key \"bogus\" in section [registry.new.org]");
	free(err);
	err = NULL;
	assert_int_equal(c.n_registries, 2);
	r = config_registry(&c, "example.com");
	assert_false(r->insecure);
	assert_int_equal(r->n_mirrors, 0);
	assert_null(config_registry(&c, "new.org"));
	config_free(&c);
}

static void test_registry_errors(void **state)
{
	char text[4096], expect[512];
	size_t n;

	/* Section names. */
	parse_err("[registry.]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry]\n", -EINVAL, "/etc/criod/criod.conf:1: unknown section [registry]");
	parse_err("[registries.docker.io]\n", -EINVAL, "/etc/criod/criod.conf:1: unknown section [registries.docker.io]");
	parse_err("\n[registry.bad host]\n", -EINVAL,
		  "/etc/criod/criod.conf:2: section [registry.HOST]: \"bad host\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.bad_host]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"bad_host\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.-bad.com]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"-bad.com\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.a..b]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"a..b\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.host:0]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"host:0\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.host:65536]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"host:65536\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.host:]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"host:\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.host:12:34]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"host:12:34\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.::1]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"::1\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.[::1]x]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"[::1]x\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.[::g]:5000]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"[::g]:5000\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.[fe80::1%eth0]:5000]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"[fe80::1%eth0]:5000\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.docker.io/library]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"docker.io/library\" is not a registry host (host[:port] or [IPv6]:port)");
	parse_err("[registry.h\xc3\xb6st]\n", -EINVAL,
		  "/etc/criod/criod.conf:1: section [registry.HOST]: \"h\\xc3\\xb6st\" is not a registry host (host[:port] or [IPv6]:port)");
	/* A label of 64 bytes, and a host of 256 bytes. */
	memset(expect, 'a', 64);
	expect[64] = '\0';
	snprintf(text, sizeof(text), "[registry.%s.com]\n", expect);
	{
		struct criod_config c;
		char *err = NULL;
		config_defaults(&c);
		assert_int_equal(config_parse_string(&c, "f", text, &err), -EINVAL);
		assert_non_null(strstr(err, "is not a registry host"));
		free(err);
		config_free(&c);
	}
	/* Hosts of 255 bytes are fine, 256 are not: 5 labels of 50 + 4 dots = 254, plus 1 or 2. */
	{
		struct criod_config c;
		char host[300];
		char *err = NULL;

		memset(host, 'a', sizeof(host));
		for (int i = 1; i < 5; i++)
			host[i * 51 - 1] = '.';
		host[255] = '\0';
		snprintf(text, sizeof(text), "[registry.%s]\n", host);
		config_defaults(&c);
		assert_int_equal(config_parse_string(&c, "f", text, &err), 0);
		assert_int_equal(c.n_registries, 1);
		assert_int_equal(strlen(c.registries[0].host), 255);
		host[255] = 'a';
		host[256] = '\0';
		snprintf(text, sizeof(text), "[registry.%s]\n", host);
		assert_int_equal(config_parse_string(&c, "f", text, &err), -EINVAL);
		assert_non_null(strstr(err, "is not a registry host"));
		free(err);
		assert_int_equal(c.n_registries, 1);
		config_free(&c);
	}

	/* Keys. */
	parse_err("[registry.example.com]\ninsecure = maybe\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] insecure: \"maybe\" is not a boolean (true, false, yes, no, 1, 0)");
	parse_err("[registry.example.com]\nblocked =\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] blocked: \"\" is not a boolean (true, false, yes, no, 1, 0)");
	parse_err("[registry.example.com]\nca_file = certs/ca.pem\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] ca_file: \"certs/ca.pem\" is not an absolute path");
	parse_err("[registry.example.com]\nsocket = /x\n", -EINVAL,
		  "/etc/criod/criod.conf:2: unknown key \"socket\" in section [registry.example.com]");
	parse_err("[registry.example.com]\nInsecure = true\n", -EINVAL,
		  "/etc/criod/criod.conf:2: unknown key \"Insecure\" in section [registry.example.com]");
	parse_err("[registry.example.com]\n[imaged]\ninsecure = true\n", -EINVAL,
		  "/etc/criod/criod.conf:3: unknown key \"insecure\" in section [imaged]");
	parse_err("[registry.example.com]\nca_file = \"/x\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] ca_file: missing closing quote");

	/* Mirrors. */
	parse_err("[registry.example.com]\nmirrors = a.com,,b.com\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] mirrors: empty entry in the list");
	parse_err("[registry.example.com]\nmirrors = a.com,\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] mirrors: empty entry in the list");
	parse_err("[registry.example.com]\nmirrors = ,a.com\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] mirrors: empty entry in the list");
	parse_err("[registry.example.com]\nmirrors = a.com b.com\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] mirrors: \"a.com b.com\" is not a valid host (host[:port] or [IPv6]:port)");
	parse_err("[registry.example.com]\nmirrors = a.com, https://b.com\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] mirrors: \"https://b.com\" is not a valid host (host[:port] or [IPv6]:port)");
	parse_err("[registry.example.com]\nmirrors = a.com:99999\n", -EINVAL,
		  "/etc/criod/criod.conf:2: [registry.example.com] mirrors: \"a.com:99999\" is not a valid host (host[:port] or [IPv6]:port)");
	{
		struct criod_config c;

		n = (size_t)snprintf(text, sizeof(text), "[registry.example.com]\nmirrors = ");
		for (int i = 0; i < 16; i++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%sm%d.example.com", i ? ", " : "", i);
		parse_ok(&c, text);
		assert_int_equal(c.registries[0].n_mirrors, 16);
		assert_string_equal(c.registries[0].mirrors[15], "m15.example.com");
		config_free(&c);
		snprintf(text + n, sizeof(text) - n, ", m16.example.com\n");
		parse_err(text, -EINVAL,
			  "/etc/criod/criod.conf:2: [registry.example.com] mirrors: too many hosts (max 16)");
	}
}

static void test_registry_limits_and_dropins(void **state)
{
	struct criod_config c;
	_cleanup_free_ char *main_conf = tpath("criod.conf");
	const struct registry_config *r;
	char *err = NULL;
	char *text = malloc(256 * 64 + 128);
	size_t n = 0;

	/* 256 sections are fine, the 257th is one too many. */
	assert_non_null(text);
	for (int i = 0; i < 256; i++)
		n += (size_t)sprintf(text + n, "[registry.r%d.example.com]\ninsecure = %s\n", i, i % 2 ? "true" : "false");
	parse_ok(&c, text);
	assert_int_equal(c.n_registries, 256);
	r = config_registry(&c, "r255.example.com");
	assert_non_null(r);
	assert_true(r->insecure);
	config_free(&c);
	sprintf(text + n, "[registry.r0.example.com]\nblocked = 1\n[registry.one-more.example.com]\n");
	parse_err(text, -EINVAL, "/etc/criod/criod.conf:515: too many [registry.HOST] sections (max 256)");
	free(text);

	/* Sections from the main file and drop-ins merge into one entry. */
	write_rel("criod.conf", "[registry.localhost:5000]\ninsecure = true\nmirrors = m1.example.com\n");
	mkdir_rel("criod.conf.d");
	write_rel("criod.conf.d/10-a.conf", "[registry.localhost:5000]\nca_file = /etc/ca.pem\n[registry.quay.io]\nblocked = on\n");
	write_rel("criod.conf.d/20-b.conf", "[registry.LOCALHOST:5000]\nmirrors = m2.example.com, m3.example.com\n");
	assert_int_equal(config_load(&c, main_conf, &err), 0);
	assert_null(err);
	assert_int_equal(c.n_registries, 2);
	r = config_registry(&c, "localhost:5000");
	assert_non_null(r);
	assert_true(r->insecure);
	assert_string_equal(r->ca_file, "/etc/ca.pem");
	assert_int_equal(r->n_mirrors, 2);
	assert_string_equal(r->mirrors[0], "m2.example.com");
	assert_string_equal(r->mirrors[1], "m3.example.com");
	r = config_registry(&c, "quay.io");
	assert_non_null(r);
	assert_true(r->blocked);
	config_free(&c);

	/* An error in a drop-in names it, and nothing of it is kept. */
	write_rel("criod.conf.d/30-bad.conf", "[registry.quay.io]\nmirrors = not a host\n");
	assert_int_equal(config_load(&c, main_conf, &err), -EINVAL);
	{
		_cleanup_free_ char *expect = NULL;
		assert_true(asprintf(&expect,
				     "%s/criod.conf.d/30-bad.conf:2: [registry.quay.io] mirrors: \"not a host\" is not a valid host (host[:port] or [IPv6]:port)",
				     tmpdir) > 0);
		assert_string_equal(err, expect);
	}
	free(err);
	assert_defaults(&c);
	config_free(&c);
}

/* ---- hostile input ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	/* xorshift64*: deterministic, so a failure can be replayed. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static void check_garbage(const char *text)
{
	struct criod_config c;
	char *err = NULL;
	int r;

	config_defaults(&c);
	r = config_parse_string(&c, "fuzz.conf", text, &err);
	if (r == 0) {
		assert_null(err);
	} else {
		assert_true(r < 0);
		assert_non_null(err);
		assert_true(strncmp(err, "fuzz.conf:", 10) == 0);
		assert_null(strchr(err, '\n'));
		free(err);
	}
	/* Whatever happened, the configuration is complete and valid. */
	assert_non_null(c.run_dir);
	assert_true(c.run_dir[0] == '/');
	assert_non_null(c.criod_socket);
	assert_non_null(c.log_level);
	assert_true(c.max_streams >= 1 && c.max_streams <= 65536);
	assert_true(c.max_concurrent_downloads >= 1 && c.max_concurrent_downloads <= 32);
	assert_non_null(c.rootfs_mode);
	for (size_t i = 0; i < c.n_registries; i++) {
		assert_non_null(c.registries[i].host);
		assert_ptr_equal(config_registry(&c, c.registries[i].host), &c.registries[i]);
		assert_true(c.registries[i].n_mirrors <= 16);
		for (size_t j = 0; j < c.registries[i].n_mirrors; j++)
			assert_non_null(c.registries[i].mirrors[j]);
	}
	config_free(&c);
}

static void test_garbage_never_crashes(void **state)
{
	static const char alphabet[] = "[]=\"\\#; \t\n\r/.-_abcdefgilmnoprstuvxyz0123456789KMGiB\x01\xff";
	static const char *const fragments[] = {
		"[criod]\n", "[paths]\n", "[rpc]\n", "[log]\n", "[netd]\n", "run_dir = ", "socket = ",
		"max_streams = ", "max_message_size = ", "timeout_ms = ", "level = ", "user = ",
		"\"", "\\", "/run/x", "..", "16MiB", "99999999999999999999", "\n", "=", "#", " ",
		"[registry.localhost:5000]\n", "[registry.[::1]:5000]\n", "[registry.", "[imaged]\n", "mirrors = ",
		"insecure = ", "blocked = ", "ca_file = ", "a.example.com", ",", ":5000", "rootfs_mode = ",
		"max_concurrent_downloads = ", "auth_file = ", "true", "]",
	};
	char buf[1024];

	for (int iter = 0; iter < 3000; iter++) {
		size_t len = rnd() % (sizeof(buf) - 1);
		size_t n = 0;

		if (iter % 3 == 0) {
			/* Raw bytes (no NUL: the string API ends there). */
			for (n = 0; n < len; n++) {
				char ch = (char)(rnd() & 0xff);
				buf[n] = ch ? ch : '\n';
			}
		} else if (iter % 3 == 1) {
			for (n = 0; n < len; n++)
				buf[n] = alphabet[rnd() % (sizeof(alphabet) - 1)];
		} else {
			while (n < len) {
				const char *f = fragments[rnd() % ARRAY_SIZE(fragments)];
				size_t fl = strlen(f);
				if (n + fl >= sizeof(buf) - 1)
					break;
				memcpy(buf + n, f, fl);
				n += fl;
			}
		}
		buf[n] = '\0';
		check_garbage(buf);
	}
}

static void test_garbage_files_never_crash(void **state)
{
	_cleanup_free_ char *p = tpath("fuzz.conf");
	char buf[2048];

	for (int iter = 0; iter < 300; iter++) {
		struct criod_config c;
		char *err = NULL;
		size_t len = rnd() % sizeof(buf);
		int r;

		for (size_t i = 0; i < len; i++)
			buf[i] = (char)(rnd() & 0xff); /* NUL bytes included */
		write_text(p, buf, len);
		r = config_load(&c, p, &err);
		if (r < 0) {
			assert_non_null(err);
			assert_true(strncmp(err, p, strlen(p)) == 0);
		}
		free(err);
		assert_non_null(c.run_dir);
		config_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_input_keeps_defaults),
		cmocka_unit_test(test_default_path_absent_is_fine),
		cmocka_unit_test_setup_teardown(test_explicit_path_must_exist, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_all_keys),
		cmocka_unit_test(test_later_wins_and_sections_reopen),
		cmocka_unit_test(test_type_uint),
		cmocka_unit_test(test_type_size),
		cmocka_unit_test(test_type_duration),
		cmocka_unit_test(test_type_bool),
		cmocka_unit_test(test_type_path),
		cmocka_unit_test(test_type_user),
		cmocka_unit_test(test_type_log_level),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_quoting_and_whitespace),
		cmocka_unit_test(test_derived_sockets),
		cmocka_unit_test(test_derived_socket_too_long),
		cmocka_unit_test_setup_teardown(test_load_file_and_dropins, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_load_errors, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_parse_string_all_or_nothing),
		cmocka_unit_test(test_imaged_keys),
		cmocka_unit_test(test_metrics_keys),
		cmocka_unit_test(test_policy_keys),
		cmocka_unit_test(test_registry_sections),
		cmocka_unit_test(test_registry_merge),
		cmocka_unit_test(test_registry_errors),
		cmocka_unit_test_setup_teardown(test_registry_limits_and_dropins, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_runtime_builtin),
		cmocka_unit_test(test_runtime_sections),
		cmocka_unit_test(test_runtime_errors),
		cmocka_unit_test_setup_teardown(test_runtime_limits_and_dropins, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_garbage_never_crashes),
		cmocka_unit_test_setup_teardown(test_garbage_files_never_crash, setup_tmpdir, teardown_tmpdir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
