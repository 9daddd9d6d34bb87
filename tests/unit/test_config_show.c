/* Unit tests for config_load_traced (where each key came from) and
 * common/config_show.c: `criod config` output that reads back to the same
 * configuration, `criod check` naming file, line and key, values written
 * as the file says them, and the man page's key table covering every key. */
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
#include "config_keys.h"
#include "config_show.h"
#include "macro.h"

static char tmpdir[PATH_MAX];

static int setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config_show.XXXXXX");
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

static char *tpath(const char *rel)
{
	char *p;
	assert_true(asprintf(&p, "%s/%s", tmpdir, rel) > 0);
	return p;
}

static void write_rel(const char *rel, const char *text)
{
	_cleanup_free_ char *p = tpath(rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const struct cfg_key *row(const char *section, const char *key)
{
	for (size_t i = 0; i < config_table_n; i++)
		if (strcmp(config_table[i].section, section) == 0 && strcmp(config_table[i].key, key) == 0)
			return &config_table[i];
	fail_msg("no row [%s] %s", section, key);
	return NULL;
}

static void assert_origin(const struct config_trace *t, const char *section, const char *key, const char *rel,
			  unsigned line)
{
	const struct config_origin *o = config_trace_find(t, section, key);
	_cleanup_free_ char *p = tpath(rel);

	assert_non_null(o);
	assert_string_equal(o->file, p);
	assert_int_equal(o->line, line);
}

/* The main file, then the drop-ins in lexical order: the last setting of a
 * key wins and is what its origin names. */
static void test_origins_main_and_dropins(void **state)
{
	struct criod_config cfg;
	struct config_trace t = { 0 };
	_cleanup_free_ char *main_path = tpath("c.conf"), *d = tpath("c.conf.d"), *e = NULL;
	_cleanup_free_ char *d10 = tpath("c.conf.d/10-a.conf"), *d20 = tpath("c.conf.d/20-b.conf");

	write_rel("c.conf", "# comment\n[log]\nlevel = debug\n\n[imaged]\nmax_concurrent_downloads = 4\n"
			    "[registry.Localhost:5000]\ninsecure = true\n");
	assert_int_equal(mkdir(d, 0755), 0);
	write_rel("c.conf.d/20-b.conf", "[imaged]\nmax_concurrent_downloads = 7\n[runtime.crun]\npath = /usr/bin/crun\n"
					"[pods]\ndefault_runtime = crun\n");
	write_rel("c.conf.d/10-a.conf", "[imaged]\n\nmax_concurrent_downloads = 5\nrootfs_mode = copy\n"
					"[registry.localhost:5000]\nblocked = true\n");

	assert_int_equal(config_load_traced(&cfg, main_path, &t, &e), 0);
	assert_null(e);
	assert_int_equal(cfg.max_concurrent_downloads, 7);

	assert_int_equal(t.n_files, 3);
	assert_string_equal(t.files[0], main_path);
	assert_string_equal(t.files[1], d10);
	assert_string_equal(t.files[2], d20);

	assert_origin(&t, "log", "level", "c.conf", 3);
	assert_origin(&t, "imaged", "max_concurrent_downloads", "c.conf.d/20-b.conf", 2);
	assert_origin(&t, "imaged", "rootfs_mode", "c.conf.d/10-a.conf", 4);
	/* One registry entry, named as its first section spelt it. */
	assert_origin(&t, "registry.Localhost:5000", "insecure", "c.conf", 8);
	assert_origin(&t, "registry.Localhost:5000", "blocked", "c.conf.d/10-a.conf", 6);
	assert_origin(&t, "runtime.crun", "path", "c.conf.d/20-b.conf", 4);
	assert_origin(&t, "pods", "default_runtime", "c.conf.d/20-b.conf", 6);
	/* Not set by any file: a default, no origin. */
	assert_null(config_trace_find(&t, "paths", "run_dir"));
	assert_null(config_trace_find(&t, "criod", "socket"));
	assert_null(config_trace_find(&t, "registry.Localhost:5000", "ca_file"));

	config_trace_free(&t);
	assert_int_equal(t.n_files, 0);
	assert_int_equal(t.n_origins, 0);
	config_free(&cfg);
}

/* A failed load leaves no origins behind (nothing of it is in force). */
static void test_origins_emptied_on_error(void **state)
{
	struct criod_config cfg;
	struct config_trace t = { 0 };
	_cleanup_free_ char *p = tpath("bad.conf"), *e = NULL;

	write_rel("bad.conf", "[log]\nlevel = debug\n[imaged]\nrootfs_mode = zfs\n");
	assert_int_equal(config_load_traced(&cfg, p, &t, &e), -EINVAL);
	assert_non_null(e);
	assert_non_null(strstr(e, ":4: [imaged] rootfs_mode: "));
	assert_int_equal(t.n_files, 0);
	assert_int_equal(t.n_origins, 0);
	assert_null(config_trace_find(&t, "log", "level"));
	config_free(&cfg);
}

/* No file at all: no origins, the defaults. */
static void test_origins_without_a_file(void **state)
{
	struct criod_config cfg;
	struct config_trace t = { 0 };
	_cleanup_free_ char *e = NULL;

	if (access(CRIOD_DEFAULT_CONFIG, F_OK) == 0 || access(CRIOD_DEFAULT_CONFIG ".d", F_OK) == 0)
		skip();
	assert_int_equal(config_load_traced(&cfg, NULL, &t, &e), 0);
	assert_int_equal(t.n_files, 0);
	assert_int_equal(t.n_origins, 0);
	config_free(&cfg);
}

static void assert_formats(const char *section, const char *key, const char *text, const char *want)
{
	struct criod_config cfg;
	_cleanup_free_ char *conf = NULL, *e = NULL, *v = NULL;

	config_defaults(&cfg);
	assert_true(asprintf(&conf, "[%s]\n%s = %s\n", section, key, text) > 0);
	assert_int_equal(config_parse_string(&cfg, "t.conf", conf, &e), 0);
	assert_int_equal(config_format_value(row(section, key), &cfg, &v), 0);
	assert_string_equal(v, want);
	config_free(&cfg);
}

/* Values are written in the largest unit that is exact, quoted only where
 * the parser would otherwise read them differently. */
static void test_format_values(void **state)
{
	assert_formats("criod", "max_message_size", "16777216", "16MiB");
	assert_formats("criod", "max_message_size", "4097", "4097");
	assert_formats("criod", "max_message_size", "6K", "6KiB");
	assert_formats("imaged", "min_free_space", "0", "0");
	assert_formats("rpc", "timeout_ms", "120000", "2min");
	assert_formats("rpc", "timeout_ms", "1500", "1500ms");
	assert_formats("rpc", "frame_timeout", "60min", "1h");
	assert_formats("netd", "masquerade", "off", "false");
	assert_formats("netd", "subnet6", "", "\"\"");
	assert_formats("pods", "default_cgroup_parent", "\" /a b \"", "\" /a b \"");
	assert_formats("netd", "cni_bin_dirs", "\"\\\"x\"", "\"\\\"x\"");
	assert_formats("policy", "log_roots", "/a/, /b", "/a, /b");
	assert_formats("policy", "host_path_prefixes", "", "");
	assert_formats("policy", "host_port_range", "30000-32767", "30000-32767");
}

static void test_ranges(void **state)
{
	_cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

	assert_int_equal(config_key_range(row("imaged", "max_concurrent_downloads"), &a), 0);
	assert_string_equal(a, "1..32");
	assert_int_equal(config_key_range(row("imaged", "rootfs_mode"), &b), 0);
	assert_string_equal(b, "one of: auto, overlay, copy");
	assert_int_equal(config_key_range(row("criod", "max_message_size"), &c), 0);
	assert_string_equal(c, "4KiB..16MiB (bytes, or with K, M, G, KiB, MiB, GiB)");
	assert_int_equal(config_key_range(row("rpc", "frame_timeout"), &d), 0);
	assert_string_equal(d, "100ms..1h (milliseconds, or with ms, s, min, h)");
}

/* `criod config` prints every key, and what it prints is a configuration
 * that loads back to the same values. */
static void test_show_reads_back(void **state)
{
	struct criod_config cfg, back;
	struct config_trace t = { 0 };
	_cleanup_free_ char *p = tpath("c.conf"), *out = tpath("shown.conf"), *e = NULL, *text = NULL;
	FILE *f;

	write_rel("c.conf", "[paths]\nrun_dir = /tmp/elsewhere\n[criod]\nmax_message_size = 1MiB\n"
			    "[policy]\nallowed_capabilities = CAP_CHOWN, CAP_KILL\nhost_path_prefixes =\n"
			    "allow_privileged = no\n[registry.docker.io]\nmirrors = m.example.com, 10.0.0.5:5000\n"
			    "[runtime.runc]\npath = /usr/sbin/runc\n[pods]\ndefault_cgroup_parent = \" x\"\n");
	assert_int_equal(config_load_traced(&cfg, p, &t, &e), 0);
	f = fopen(out, "w");
	assert_non_null(f);
	assert_int_equal(config_show(f, "criod", &cfg, &t), 0);
	assert_int_equal(fclose(f), 0);

	text = read_all(out);
	/* Every key of the table is there, in a section of its own name. */
	for (size_t i = 0; i < config_table_n; i++) {
		_cleanup_free_ char *sec = NULL, *line = NULL;
		char *s;
		assert_true(asprintf(&sec, "\n[%s]\n", config_table[i].section) > 0);
		assert_true(asprintf(&line, "\n%s =", config_table[i].key) > 0);
		s = strstr(text, sec);
		assert_non_null(s);
		assert_non_null(strstr(s, line));
	}
	/* Each origin is the comment before its key. */
	{
		_cleanup_free_ char *want = NULL;
		assert_true(asprintf(&want, "\n# %s:4\nmax_message_size = 1MiB\n", p) > 0);
		assert_non_null(strstr(text, want));
	}
	assert_non_null(strstr(text, "\n# default\nmax_streams = 1000\n"));
	{
		_cleanup_free_ char *want = NULL;
		assert_true(asprintf(&want, "\n# <run_dir>/criod.sock, run_dir from %s:2\nsocket = /tmp/elsewhere/criod.sock\n",
				     p) > 0);
		assert_non_null(strstr(text, want));
	}
	assert_non_null(strstr(text, "\n# ca_file = (not set)\n"));

	assert_int_equal(config_load(&back, out, &e), 0);
	for (size_t i = 0; i < config_table_n; i++) {
		_cleanup_free_ char *v1 = NULL, *v2 = NULL;
		assert_int_equal(config_format_value(&config_table[i], &cfg, &v1), 0);
		assert_int_equal(config_format_value(&config_table[i], &back, &v2), 0);
		assert_string_equal(v1, v2);
	}
	assert_int_equal(back.n_registries, 1);
	assert_string_equal(back.registries[0].host, "docker.io");
	assert_int_equal(back.registries[0].n_mirrors, 2);
	assert_int_equal(back.n_runtimes, 1);
	assert_false(back.runtimes_builtin);
	config_free(&back);
	config_trace_free(&t);
	config_free(&cfg);
}

/* The built-in runtime handler says so. */
static void test_show_builtin_runtime(void **state)
{
	struct criod_config cfg;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_defaults(&cfg);
	assert_int_equal(config_show(f, "criod", &cfg, NULL), 0);
	fclose(f);
	assert_non_null(strstr(buf, "\n# No file read: every key has its built-in default.\n"));
	assert_non_null(strstr(buf, "\n[runtime.runc]\n# built-in handler (no [runtime.NAME] section)\npath = /usr/sbin/runc\n"));
	free(buf);
	config_free(&cfg);
}

/* Run config_command with stdout and stderr into files; return its status. */
static int run_command(const char *cmd, const char *path, char **out, char **err)
{
	_cleanup_free_ char *o = tpath("stdout"), *e = tpath("stderr");
	int so = dup(1), se = dup(2), fo, fe, status;

	fflush(stdout);
	fflush(stderr);
	fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(so >= 0 && se >= 0 && fo >= 0 && fe >= 0);
	dup2(fo, 1);
	dup2(fe, 2);
	status = config_command("criod", cmd, path);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	close(fo);
	close(fe);
	*out = read_all(o);
	*err = read_all(e);
	return status;
}

static void test_check(void **state)
{
	_cleanup_free_ char *p = tpath("c.conf"), *d = tpath("c.conf.d"), *want = NULL;
	char *out, *err;

	write_rel("c.conf", "[log]\nlevel = warn\n");
	assert_int_equal(mkdir(d, 0755), 0);
	write_rel("c.conf.d/50-x.conf", "[netd]\n# the MTU\nmtu = 70000\n");
	assert_int_equal(run_command("check", p, &out, &err), 1);
	assert_string_equal(out, "");
	assert_true(asprintf(&want, "criod check: %s/c.conf.d/50-x.conf:3: [netd] mtu: \"70000\" is out of range "
				    "(576..65535)\n", tmpdir) > 0);
	assert_string_equal(err, want);
	free(out);
	free(err);

	write_rel("c.conf.d/50-x.conf", "[netd]\nmtu = 9000\n");
	assert_int_equal(run_command("check", p, &out, &err), 0);
	assert_string_equal(err, "");
	assert_non_null(strstr(out, "/c.conf: ok\n"));
	assert_non_null(strstr(out, "/c.conf.d/50-x.conf: ok\n"));
	free(out);
	free(err);

	/* An unknown key is named too. */
	write_rel("c.conf.d/50-x.conf", "[netd]\nmtuu = 9000\n");
	assert_int_equal(run_command("check", p, &out, &err), 1);
	assert_non_null(strstr(err, "/c.conf.d/50-x.conf:2: unknown key \"mtuu\" in section [netd]\n"));
	free(out);
	free(err);

	/* `config` fails the same way on a bad file and prints nothing. */
	assert_int_equal(run_command("config", p, &out, &err), 1);
	assert_string_equal(out, "");
	assert_non_null(strstr(err, "criod config: "));
	free(out);
	free(err);

	/* An explicit file that is absent is an error. */
	{
		_cleanup_free_ char *none = tpath("none.conf");
		assert_int_equal(run_command("check", none, &out, &err), 1);
		assert_non_null(strstr(err, "none.conf: cannot open: No such file or directory\n"));
		free(out);
		free(err);
	}
}

/* The man page's table has every key of every section, with its range. */
static void test_man_keys_cover_the_table(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(config_man_keys(f), 0);
	fclose(f);
	for (size_t i = 0; i < config_table_n; i++) {
		_cleanup_free_ char *sec = NULL, *key = NULL;
		char *s;
		assert_true(asprintf(&sec, ".SS [%s]\n", config_table[i].section) > 0);
		assert_true(asprintf(&key, ".TP\n.B %s\n", config_table[i].key) > 0);
		s = strstr(buf, sec);
		assert_non_null(s);
		assert_non_null(strstr(s, key));
	}
	assert_non_null(strstr(buf, ".B max_concurrent_downloads\n1..32.\n.br\nDefault: \\fB3\\fR.\n"));
	assert_non_null(strstr(buf, ".B socket\n"));
	assert_non_null(strstr(buf, "Default: \\fIrun_dir\\fR/criod.sock.\n"));
	assert_non_null(strstr(buf, ".SS [registry.\\fIHOST\\fR]\n"));
	assert_non_null(strstr(buf, ".SS [runtime.\\fINAME\\fR]\n"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_origins_main_and_dropins, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_origins_emptied_on_error, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_origins_without_a_file),
		cmocka_unit_test(test_format_values),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test_setup_teardown(test_show_reads_back, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_show_builtin_runtime),
		cmocka_unit_test_setup_teardown(test_check, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_man_keys_cover_the_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
