/* Unit tests for the CNI backend (netd/cni.c): configuration loading and
 * validation, plugin lookup, CNI_ARGS, per-plugin configuration, result
 * parsing, running a plugin (pipes, bounds, timeout), and whole ADD/DEL
 * runs against fake plugins written as shell scripts. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include <cmocka.h>

#include "backend.h"
#include "cni_internal.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "util.h"

#define POD_ID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char tmpdir[PATH_MAX];

static int setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_cni.XXXXXX");
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

static char *tpath(const char *fmt, ...) _printf_(1, 2);
static char *tpath(const char *fmt, ...)
{
	char rel[PATH_MAX], *p;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	assert_true(asprintf(&p, "%s/%s", tmpdir, rel) > 0);
	return p;
}

static void put_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t len = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static json_object *parse(const char *text)
{
	json_object *o = NULL;
	assert_int_equal(cni_json_parse(text, strlen(text), &o), 0);
	return o;
}

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* ---- small validators ---- */

static void test_version_and_type(void **state)
{
	unsigned v[3];

	assert_int_equal(cni_version_parse("1.0.0", v), 0);
	assert_int_equal(v[0], 1);
	assert_int_equal(cni_version_parse("0.4.0", v), 0);
	assert_int_equal(v[1], 4);
	assert_int_equal(cni_version_parse("10.20.30", v), 0);
	assert_int_equal(v[2], 30);
	assert_int_equal(cni_version_parse("1.0", v), -EINVAL);
	assert_int_equal(cni_version_parse("1.0.0.0", v), -EINVAL);
	assert_int_equal(cni_version_parse("v1.0.0", v), -EINVAL);
	assert_int_equal(cni_version_parse("1..0", v), -EINVAL);
	assert_int_equal(cni_version_parse("", v), -EINVAL);
	assert_int_equal(cni_version_parse(NULL, v), -EINVAL);
	assert_int_equal(cni_version_parse("99999.0.0", v), -EINVAL);

	assert_true(cni_type_is_valid("bridge"));
	assert_true(cni_type_is_valid("host-local"));
	assert_true(cni_type_is_valid("my_plugin.v2"));
	assert_false(cni_type_is_valid(""));
	assert_false(cni_type_is_valid(NULL));
	assert_false(cni_type_is_valid("."));
	assert_false(cni_type_is_valid(".."));
	assert_false(cni_type_is_valid("../bridge"));
	assert_false(cni_type_is_valid("..bridge"));
	assert_false(cni_type_is_valid("/usr/lib/cni/bridge"));
	assert_false(cni_type_is_valid("sub/bridge"));
	assert_false(cni_type_is_valid("bri dge"));
	assert_false(cni_type_is_valid("bridge\n"));
}

static void test_json_parse(void **state)
{
	json_object *o = NULL;

	assert_int_equal(cni_json_parse("{\"a\":1}  \n", 10, &o), 0);
	json_object_put(o);
	assert_int_equal(cni_json_parse("{\"a\":1} x", 9, &o), -EINVAL);
	assert_null(o);
	assert_int_equal(cni_json_parse("{\"a\":1", 6, &o), -EINVAL);
	assert_int_equal(cni_json_parse("{\"a\":1,}", 8, &o), -EINVAL);
	assert_int_equal(cni_json_parse("{\"a\":\0}", 7, &o), -EINVAL);
	assert_int_equal(cni_json_parse("", 0, &o), -EINVAL);
	/* only part of a buffer */
	assert_int_equal(cni_json_parse("{}{}", 2, &o), 0);
	json_object_put(o);
}

/* ---- configuration ---- */

static const char conflist_ok[] =
	"{\"cniVersion\":\"1.0.0\",\"name\":\"podnet\",\"plugins\":["
	"{\"type\":\"bridge\",\"bridge\":\"cni0\",\"ipam\":{\"type\":\"host-local\"}},"
	"{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true}}]}";

static void test_conf_parse(void **state)
{
	struct cni_netconf nc;
	char err[512];

	assert_int_equal(cni_conf_parse(conflist_ok, strlen(conflist_ok), true, "x.conflist", &nc, err, sizeof(err)), 0);
	assert_string_equal(nc.name, "podnet");
	assert_string_equal(nc.version, "1.0.0");
	assert_string_equal(nc.source, "x.conflist");
	assert_int_equal(nc.n_plugins, 2);
	assert_string_equal(cni_plugin_type(&nc, 0), "bridge");
	assert_string_equal(cni_plugin_type(&nc, 1), "portmap");
	cni_conf_free(&nc);
	cni_conf_free(&nc); /* twice is fine */

	/* a single .conf is wrapped into a list */
	{
		static const char conf[] = "{\"cniVersion\":\"0.4.0\",\"name\":\"one\",\"type\":\"ptp\",\"mtu\":1400}";
		json_object *p;

		assert_int_equal(cni_conf_parse(conf, strlen(conf), false, "y.conf", &nc, err, sizeof(err)), 0);
		assert_string_equal(nc.name, "one");
		assert_string_equal(nc.version, "0.4.0");
		assert_int_equal(nc.n_plugins, 1);
		assert_string_equal(cni_plugin_type(&nc, 0), "ptp");
		p = json_object_object_get(nc.plugins[0], "mtu");
		assert_int_equal(json_object_get_int(p), 1400);
		assert_non_null(json_object_object_get(nc.list, "plugins"));
		cni_conf_free(&nc);
	}
	/* a .conf that is really a list */
	assert_int_equal(cni_conf_parse(conflist_ok, strlen(conflist_ok), false, "z.conf", &nc, err, sizeof(err)), 0);
	assert_int_equal(nc.n_plugins, 2);
	cni_conf_free(&nc);

	static const struct {
		const char *text;
		bool list;
		const char *want; /* in the message */
	} bad[] = {
		{"not json", true, "not valid JSON"},
		{"[1,2]", true, "not a JSON object"},
		{"{\"name\":\"n\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "cniVersion"},
		{"{\"cniVersion\":1,\"name\":\"n\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "cniVersion"},
		{"{\"cniVersion\":\"2.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "unsupported"},
		{"{\"cniVersion\":\"latest\",\"name\":\"n\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "unsupported"},
		{"{\"cniVersion\":\"1.0.0\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "name"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "name"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"../etc\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "name"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"-x\",\"plugins\":[{\"type\":\"bridge\"}]}", true, "name"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\"}", true, "plugins"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":{}}", true, "plugins"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[]}", true, "plugins"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[7]}", true, "plugins[0]"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"bridge\"},{}]}", true, "plugins[1].type"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"../../bin/sh\"}]}", true, "plugins[0].type"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"a/b\"}]}", true, "plugins[0].type"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"..\"}]}", true, "plugins[0].type"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[{\"type\":\"b\",\"capabilities\":[]}]}", true,
		 "capabilities"},
		{"{\"cniVersion\":\"1.0.0\",\"name\":\"n\"}", false, "type"},
		{"{\"cniVersion\":\"1.0.0\",\"type\":\"bridge\"}", false, "name"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		if (cni_conf_parse(bad[i].text, strlen(bad[i].text), bad[i].list, "f.conflist", &nc, err, sizeof(err)) !=
		    -EINVAL)
			fail_msg("accepted: %s", bad[i].text);
		if (!strstr(err, bad[i].want) || !strstr(err, "f.conflist"))
			fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].text, err, bad[i].want);
		assert_null(nc.list);
		assert_null(nc.name);
	}

	/* too many plugins */
	{
		char buf[4096];
		size_t n = (size_t)snprintf(buf, sizeof(buf), "{\"cniVersion\":\"1.0.0\",\"name\":\"n\",\"plugins\":[");
		for (int i = 0; i <= CNI_MAX_PLUGINS; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s{\"type\":\"p\"}", i ? "," : "");
		snprintf(buf + n, sizeof(buf) - n, "]}");
		assert_int_equal(cni_conf_parse(buf, strlen(buf), true, "f", &nc, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "plugins"));
	}
}

static void test_conf_load_dir(void **state)
{
	_cleanup_free_ char *dir = tpath("conf"), *empty = tpath("empty"), *missing = tpath("missing");
	_cleanup_free_ char *a = tpath("conf/20-a.conf"), *b = tpath("conf/30-b.conflist");
	_cleanup_free_ char *hidden = tpath("conf/.10-hidden.conflist"), *txt = tpath("conf/00-readme.txt");
	_cleanup_free_ char *subdir = tpath("conf/05-dir.conflist"), *dangling = tpath("conf/06-dangling.conf");
	_cleanup_free_ char *upper = tpath("conf/Z-upper.conflist");
	struct cni_netconf nc;
	char err[512];

	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mkdir(empty, 0700), 0);
	assert_int_equal(mkdir(subdir, 0700), 0);
	assert_int_equal(symlink("/nonexistent/x.conf", dangling), 0);
	put_file(hidden, "{broken", 0644);
	put_file(txt, "{broken", 0644);
	put_file(a, "{\"cniVersion\":\"0.4.0\",\"name\":\"from-a\",\"type\":\"bridge\"}", 0644);
	put_file(b, conflist_ok, 0644);
	/* uppercase sorts before lowercase byte-wise, after digits */
	put_file(upper, "{\"cniVersion\":\"1.0.0\",\"name\":\"upper\",\"plugins\":[{\"type\":\"x\"}]}", 0644);

	assert_int_equal(cni_conf_load_dir(dir, &nc, err, sizeof(err)), 0);
	assert_string_equal(nc.name, "from-a");
	assert_string_equal(nc.source, a);
	cni_conf_free(&nc);

	assert_int_equal(unlink(a), 0);
	assert_int_equal(cni_conf_load_dir(dir, &nc, err, sizeof(err)), 0);
	assert_string_equal(nc.name, "podnet");
	assert_int_equal(nc.n_plugins, 2);
	cni_conf_free(&nc);

	/* the first file is broken: an error naming it, not the next one */
	put_file(a, "{\"cniVersion\":\"1.0.0\",\"name\":\"x\"", 0644);
	assert_int_equal(cni_conf_load_dir(dir, &nc, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "20-a.conf"));

	/* too large */
	{
		size_t n = CNI_MAX_CONF_SIZE + 10;
		char *big = malloc(n + 1);
		assert_non_null(big);
		memset(big, ' ', n);
		big[n] = '\0';
		memcpy(big, "{\"cniVersion\":\"1.0.0\"", 21);
		put_file(a, big, 0644);
		free(big);
		assert_int_equal(cni_conf_load_dir(dir, &nc, err, sizeof(err)), -EFBIG);
		assert_non_null(strstr(err, "larger"));
	}

	assert_int_equal(cni_conf_load_dir(empty, &nc, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no CNI network configuration"));
	assert_int_equal(cni_conf_load_dir(missing, &nc, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, missing));
}

/* ---- plugin lookup ---- */

static void test_find_plugin(void **state)
{
	_cleanup_free_ char *d1 = tpath("bin1"), *d2 = tpath("bin2"), *noexec = tpath("bin1/foo"),
			    *exe = tpath("bin2/foo"), *dirp = tpath("bin2/adir"), *bar = tpath("bin1/bar");
	char dirs[2 * PATH_MAX], path[PATH_MAX], small[8];

	assert_int_equal(mkdir(d1, 0755), 0);
	assert_int_equal(mkdir(d2, 0755), 0);
	assert_int_equal(mkdir(dirp, 0755), 0);
	put_file(noexec, "#!/bin/sh\n", 0644);
	put_file(exe, "#!/bin/sh\n", 0755);
	put_file(bar, "#!/bin/sh\n", 0755);
	snprintf(dirs, sizeof(dirs), "::relative/dir:%s:%s:", d1, d2);

	assert_int_equal(cni_find_plugin(dirs, "foo", path, sizeof(path)), 0);
	assert_string_equal(path, exe); /* the one in bin1 is not executable */
	assert_int_equal(cni_find_plugin(dirs, "bar", path, sizeof(path)), 0);
	assert_string_equal(path, bar);
	assert_int_equal(cni_find_plugin(dirs, "adir", path, sizeof(path)), -ENOENT);
	assert_int_equal(cni_find_plugin(dirs, "missing", path, sizeof(path)), -ENOENT);
	assert_int_equal(cni_find_plugin("", "foo", path, sizeof(path)), -ENOENT);
	assert_int_equal(cni_find_plugin("relative", "foo", path, sizeof(path)), -ENOENT);
	assert_int_equal(cni_find_plugin(dirs, "foo", small, sizeof(small)), -ENAMETOOLONG);

	static const char *const bad[] = {"", ".", "..", "../bin2/foo", "bin2/foo", "/bin/sh", "..foo", "f\no", NULL};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(cni_find_plugin(dirs, bad[i], path, sizeof(path)), -EINVAL);
}

/* ---- CNI_ARGS ---- */

static void test_build_args(void **state)
{
	struct pod_net_request req = {
		.pod_id = POD_ID,
		.pod_name = "web-0",
		.pod_namespace = "default",
		.pod_uid = "5f0c1c1e-0000-4000-8000-000000000001",
	};
	char buf[512], small[40];

	assert_int_equal(cni_build_args(&req, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;"
				 "K8S_POD_INFRA_CONTAINER_ID=" POD_ID ";K8S_POD_UID=5f0c1c1e-0000-4000-8000-000000000001");

	req.pod_uid = "";
	req.pod_name = NULL;
	assert_int_equal(cni_build_args(&req, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_INFRA_CONTAINER_ID=" POD_ID);

	req.pod_name = "a;K8S_POD_NAMESPACE=kube-system";
	assert_int_equal(cni_build_args(&req, buf, sizeof(buf)), -EINVAL);
	req.pod_name = "a=b";
	assert_int_equal(cni_build_args(&req, buf, sizeof(buf)), -EINVAL);
	req.pod_name = "a\nb";
	assert_int_equal(cni_build_args(&req, buf, sizeof(buf)), -EINVAL);
	req.pod_name = "web";
	assert_int_equal(cni_build_args(&req, small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(cni_build_args(&req, small, 5), -ENAMETOOLONG);
}

/* ---- per-plugin configuration ---- */

static void test_plugin_config(void **state)
{
	static const char list[] =
		"{\"cniVersion\":\"1.0.0\",\"name\":\"podnet\",\"plugins\":["
		"{\"type\":\"bridge\",\"name\":\"ignored\",\"cniVersion\":\"0.1.0\",\"prevResult\":{\"x\":1},"
		"\"runtimeConfig\":{\"keep\":true}},"
		"{\"type\":\"portmap\",\"capabilities\":{\"portMappings\":true,\"cgroupPath\":true},\"snat\":true},"
		"{\"type\":\"other\",\"capabilities\":{\"portMappings\":false}}]}";
	struct port_mapping pm[3] = {
		{.protocol = IPPROTO_TCP, .container_port = 80, .host_port = 8080},
		{.protocol = IPPROTO_UDP, .container_port = 53, .host_port = 5353, .host_ip = "127.0.0.1"},
		{.protocol = 99, .container_port = 1, .host_port = 2},
	};
	struct cni_netconf nc;
	char err[256];
	json_object *ports, *prev, *c, *rc;

	assert_int_equal(cni_conf_parse(list, strlen(list), true, "l", &nc, err, sizeof(err)), 0);
	ports = cni_port_mappings(pm, ARRAY_SIZE(pm));
	assert_non_null(ports);
	assert_int_equal(json_object_array_length(ports), 2); /* unknown protocol left out */
	{
		json_object *want = parse("[{\"hostPort\":8080,\"containerPort\":80,\"protocol\":\"tcp\",\"hostIP\":\"\"},"
					  "{\"hostPort\":5353,\"containerPort\":53,\"protocol\":\"udp\",\"hostIP\":\"127.0.0.1\"}]");
		assert_true(json_object_equal(ports, want));
		json_object_put(want);
	}
	assert_null(cni_port_mappings(pm, 0));
	prev = parse("{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.0.0.2/24\"}]}");

	/* first plugin: name/version from the list, no prevResult, its own runtimeConfig kept */
	c = cni_plugin_config(&nc, 0, NULL, ports, "/kubepods/pod1");
	assert_non_null(c);
	assert_string_equal(json_object_get_string(json_object_object_get(c, "name")), "podnet");
	assert_string_equal(json_object_get_string(json_object_object_get(c, "cniVersion")), "1.0.0");
	assert_null(json_object_object_get(c, "prevResult"));
	rc = json_object_object_get(c, "runtimeConfig");
	assert_non_null(rc);
	assert_non_null(json_object_object_get(rc, "keep"));
	assert_null(json_object_object_get(rc, "portMappings"));
	json_object_put(c);
	/* the list itself is untouched */
	assert_string_equal(json_object_get_string(json_object_object_get(nc.plugins[0], "name")), "ignored");

	/* second: prevResult and the capabilities it declares */
	c = cni_plugin_config(&nc, 1, prev, ports, "/kubepods/pod1");
	assert_non_null(c);
	assert_true(json_object_equal(json_object_object_get(c, "prevResult"), prev));
	rc = json_object_object_get(c, "runtimeConfig");
	assert_non_null(rc);
	assert_true(json_object_equal(json_object_object_get(rc, "portMappings"), ports));
	assert_string_equal(json_object_get_string(json_object_object_get(rc, "cgroupPath")), "/kubepods/pod1");
	assert_true(json_object_get_boolean(json_object_object_get(c, "snat")));
	json_object_put(c);

	/* no ports, no cgroup: no runtimeConfig */
	c = cni_plugin_config(&nc, 1, prev, NULL, "");
	assert_null(json_object_object_get(c, "runtimeConfig"));
	json_object_put(c);
	/* capability declared false */
	c = cni_plugin_config(&nc, 2, prev, ports, NULL);
	assert_null(json_object_object_get(c, "runtimeConfig"));
	json_object_put(c);
	assert_null(cni_plugin_config(&nc, 3, prev, ports, NULL));

	json_object_put(prev);
	json_object_put(ports);
	cni_conf_free(&nc);
}

/* ---- results ---- */

static void check_ips(const char *text, int want_r, size_t n, ...)
{
	json_object *o = parse(text);
	struct pod_net_result res;
	va_list ap;

	if (cni_result_ips(o, &res) != want_r)
		fail_msg("cni_result_ips(%s) != %d", text, want_r);
	json_object_put(o);
	if (want_r < 0)
		return;
	if (res.n_ips != n)
		fail_msg("%s: %zu addresses, want %zu", text, res.n_ips, n);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(res.ips[i], va_arg(ap, const char *));
	va_end(ap);
}

static void test_result_ips(void **state)
{
	/* 1.0.0: no "version"; the bridge's own address (host interface) left out */
	check_ips("{\"cniVersion\":\"1.0.0\",\"interfaces\":["
		  "{\"name\":\"cni0\",\"mac\":\"aa:bb:cc:dd:ee:ff\"},"
		  "{\"name\":\"veth1\",\"mac\":\"aa:bb:cc:dd:ee:01\"},"
		  "{\"name\":\"eth0\",\"mac\":\"aa:bb:cc:dd:ee:02\",\"sandbox\":\"/run/netns/x\"}],"
		  "\"ips\":[{\"address\":\"10.88.0.1/16\",\"interface\":0},"
		  "{\"address\":\"fd00::5/64\",\"gateway\":\"fd00::1\",\"interface\":2},"
		  "{\"address\":\"10.88.0.5/16\",\"gateway\":\"10.88.0.1\",\"interface\":2}],"
		  "\"routes\":[{\"dst\":\"0.0.0.0/0\"}],\"dns\":{}}",
		  0, 2, "10.88.0.5", "fd00::5");
	/* 0.4.0 with "version"; no interface index: taken; duplicates once */
	check_ips("{\"cniVersion\":\"0.4.0\",\"ips\":[{\"version\":\"6\",\"address\":\"FD00:0:0::7/64\"},"
		  "{\"version\":\"4\",\"address\":\"10.1.2.3/24\"},{\"version\":\"4\",\"address\":\"10.1.2.3/24\"}]}",
		  0, 2, "10.1.2.3", "fd00::7");
	/* 0.2.0 */
	check_ips("{\"cniVersion\":\"0.2.0\",\"ip4\":{\"ip\":\"10.0.0.9/8\",\"gateway\":\"10.0.0.1\"},"
		  "\"ip6\":{\"ip\":\"2001:db8::9/64\"}}",
		  0, 2, "10.0.0.9", "2001:db8::9");
	/* at most NETD_MAX_IPS, IPv4 first */
	check_ips("{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"fd00::1/64\"},{\"address\":\"fd00::2/64\"},"
		  "{\"address\":\"10.0.0.1/24\"},{\"address\":\"10.0.0.2/24\"},{\"address\":\"10.0.0.3/24\"},"
		  "{\"address\":\"10.0.0.4/24\"},{\"address\":\"10.0.0.5/24\"}]}",
		  0, 4, "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4");
	/* no prefix length is tolerated */
	check_ips("{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.0.0.1\"}]}", 0, 1, "10.0.0.1");
	/* nothing: fine for the parser, the caller decides */
	check_ips("{\"cniVersion\":\"1.0.0\"}", 0, 0);
	check_ips("{\"cniVersion\":\"1.0.0\",\"ips\":[]}", 0, 0);
	check_ips("{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"cni0\"}],"
		  "\"ips\":[{\"address\":\"10.0.0.1/24\",\"interface\":0}]}",
		  0, 0);

	/* malformed */
	check_ips("{\"ips\":{}}", -EINVAL, 0);
	check_ips("{\"ips\":[{}]}", -EINVAL, 0);
	check_ips("{\"ips\":[{\"address\":5}]}", -EINVAL, 0);
	check_ips("{\"ips\":[{\"address\":\"10.0.0.300/24\"}]}", -EINVAL, 0);
	check_ips("{\"ips\":[{\"address\":\"10.0.0.1/\"}]}", -EINVAL, 0);
	check_ips("{\"ips\":[{\"address\":\"10.0.0.1/2x\"}]}", -EINVAL, 0);
	check_ips("{\"ips\":[{\"address\":\"/24\"}]}", -EINVAL, 0);
	check_ips("{\"ips\":[{\"address\":\"host.example/24\"}]}", -EINVAL, 0);
	check_ips("{\"interfaces\":[],\"ips\":[{\"address\":\"10.0.0.1/24\",\"interface\":0}]}", -EINVAL, 0);
	check_ips("{\"interfaces\":[{}],\"ips\":[{\"address\":\"10.0.0.1/24\",\"interface\":-1}]}", -EINVAL, 0);
	check_ips("{\"interfaces\":[{}],\"ips\":[{\"address\":\"10.0.0.1/24\",\"interface\":\"0\"}]}", -EINVAL, 0);
	check_ips("{\"interfaces\":{},\"ips\":[]}", -EINVAL, 0);
	check_ips("{\"ip4\":{}}", -EINVAL, 0);
	check_ips("[]", -EINVAL, 0);
	{
		struct pod_net_result res;
		assert_int_equal(cni_result_ips(NULL, &res), -EINVAL);
	}
}

/* ---- running plugins ---- */

static char *write_script(const char *name, const char *body)
{
	char *p = tpath("%s", name);
	put_file(p, body, 0755);
	return p;
}

static void test_exec(void **state)
{
	_cleanup_free_ char *cat = write_script("cat.sh", "#!/bin/sh\necho to-stderr >&2\nexec cat\n");
	_cleanup_free_ char *deaf = write_script("deaf.sh", "#!/bin/sh\necho '{}'\nexit 3\n");
	_cleanup_free_ char *slow = write_script("slow.sh", "#!/bin/sh\nexec sleep 30\n");
	_cleanup_free_ char *env = write_script("env.sh", "#!/bin/sh\nprintf '%s' \"$CNI_COMMAND\"\n");
	_cleanup_free_ char *noisy = write_script("noisy.sh", "#!/bin/sh\nhead -c 300000 /dev/zero >&2\necho done\n");
	const char *envp[] = {"CNI_COMMAND=VERSION", "PATH=/usr/bin:/bin", NULL};
	struct cni_exec_out o;
	size_t big_len = 3 * 1024 * 1024;
	char *big = malloc(big_len);
	int64_t t0;

	assert_non_null(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + i % 26);

	/* stdin fed while stdout is read: megabytes each way, no deadlock */
	assert_int_equal(cni_exec(cat, envp, big, big_len, 10000, big_len, &o), 0);
	assert_true(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
	assert_int_equal(o.out_len, big_len);
	assert_memory_equal(o.out, big, big_len);
	assert_string_equal(o.err, "to-stderr\n");
	cni_exec_out_free(&o);

	/* more output than allowed */
	assert_int_equal(cni_exec(cat, envp, big, big_len, 10000, 1024 * 1024, &o), -EFBIG);
	cni_exec_out_free(&o);

	/* a plugin that does not read its stdin and exits: no SIGPIPE for us */
	assert_int_equal(cni_exec(deaf, envp, big, big_len, 10000, 4096, &o), 0);
	assert_true(WIFEXITED(o.status));
	assert_int_equal(WEXITSTATUS(o.status), 3);
	assert_string_equal(o.out, "{}\n");
	cni_exec_out_free(&o);

	/* the environment is exactly what we pass */
	assert_int_equal(cni_exec(env, envp, "", 0, 10000, 4096, &o), 0);
	assert_string_equal(o.out, "VERSION");
	cni_exec_out_free(&o);

	/* stderr is bounded but drained */
	assert_int_equal(cni_exec(noisy, envp, "", 0, 10000, 4096, &o), 0);
	assert_int_equal(o.err_len, CNI_MAX_STDERR);
	assert_string_equal(o.out, "done\n");
	cni_exec_out_free(&o);

	/* deadline */
	t0 = now_monotonic_ns();
	assert_int_equal(cni_exec(slow, envp, "x", 1, 300, 4096, &o), -ETIMEDOUT);
	assert_true(now_monotonic_ns() - t0 < 5000000000LL);
	assert_true(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGKILL);
	cni_exec_out_free(&o);

	assert_int_equal(cni_exec("/nonexistent/plugin", envp, "", 0, 1000, 4096, &o), -ENOENT);
	cni_exec_out_free(&o);
	/* every child was reaped */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	free(big);
}

struct exec_thread {
	const char *path;
	int r;
	bool ok;
};

static void *exec_thread(void *arg)
{
	struct exec_thread *t = arg;
	const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	char in[100000];
	struct cni_exec_out o;

	for (int round = 0; round < 5; round++) {
		memset(in, 'a' + round, sizeof(in));
		t->r = cni_exec(t->path, envp, in, sizeof(in), 10000, sizeof(in), &o);
		t->ok = t->r == 0 && o.out_len == sizeof(in) && memcmp(o.out, in, sizeof(in)) == 0;
		cni_exec_out_free(&o);
		if (!t->ok)
			break;
	}
	return NULL;
}

/* Plugins run on several worker threads at once: no pipe end may leak into
 * another thread's plugin (which would keep its stdout open forever). */
static void test_exec_threads(void **state)
{
	_cleanup_free_ char *cat = write_script("cat.sh", "#!/bin/sh\nexec cat\n");
	struct exec_thread t[4];
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		t[i] = (struct exec_thread){.path = cat};
		assert_int_equal(pthread_create(&th[i], NULL, exec_thread, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(t[i].r, 0);
		assert_true(t[i].ok);
	}
}

static void test_plugin_error(void **state)
{
	struct cni_exec_out o = {0};
	char err[256];

	o.status = 1 << 8; /* exit 1 */
	o.out = (char *)"{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"try again\",\"details\":\"lock held\"}";
	o.out_len = strlen(o.out);
	cni_plugin_error("bridge", &o, err, sizeof(err));
	assert_string_equal(err, "plugin bridge: try again; lock held");

	o.out = (char *)"{\"code\":7,\"msg\":\"bad env\"}";
	o.out_len = strlen(o.out);
	cni_plugin_error("bridge", &o, err, sizeof(err));
	assert_string_equal(err, "plugin bridge: bad env");

	o.out = (char *)"garbage";
	o.out_len = strlen(o.out);
	o.err = (char *)"first line\nthe reason\n\n";
	o.err_len = strlen(o.err);
	cni_plugin_error("portmap", &o, err, sizeof(err));
	assert_string_equal(err, "plugin portmap: the reason");

	o.out_len = 0;
	o.err_len = 0;
	cni_plugin_error("portmap", &o, err, sizeof(err));
	assert_string_equal(err, "plugin portmap: exited with status 1 and no error message");
	o.status = SIGSEGV; /* killed */
	cni_plugin_error("portmap", &o, err, sizeof(err));
	assert_string_equal(err, "plugin portmap: killed by signal 11");
}

/* ---- ADD / DEL against fake plugins ---- */

/* A fake plugin: logs stdin and environment per command, appends to a call
 * log, answers ADD with <bin>/<name>.result; fails ADD if <bin>/<name>.fail
 * exists (with that error object on stdout). */
static const char fake_plugin[] =
	"#!/bin/sh\n"
	"n=${0##*/}; log=%s\n"
	"cat > \"$log/$n.$CNI_COMMAND.stdin\"\n"
	"env | grep -E '^(CNI_|PATH=)' | sort > \"$log/$n.$CNI_COMMAND.env\"\n"
	"echo \"$n $CNI_COMMAND\" >> \"$log/calls\"\n"
	"if [ \"$CNI_COMMAND\" = ADD ]; then\n"
	"  if [ -e \"$0.fail\" ]; then cat \"$0.fail\"; echo oops >&2; exit 1; fi\n"
	"  cat \"$0.result\"\n"
	"fi\n";

static const char result_a[] =
	"{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"cni0\"},"
	"{\"name\":\"eth0\",\"sandbox\":\"/run/netns/pod\"}],"
	"\"ips\":[{\"address\":\"10.22.0.1/24\",\"interface\":0},{\"address\":\"10.22.0.7/24\",\"interface\":1}]}";
static const char result_b[] =
	"{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"eth0\",\"sandbox\":\"/run/netns/pod\"}],"
	"\"ips\":[{\"address\":\"fd22::7/64\",\"interface\":0},{\"address\":\"10.22.0.7/24\",\"interface\":0}]}";

struct fake_env {
	char *bin, *conf, *log, *state, *netns;
	struct criod_config cfg;
};

static void fake_plugin_install(struct fake_env *e, const char *name, const char *result)
{
	_cleanup_free_ char *script = NULL, *p = NULL, *r = NULL;

	assert_true(asprintf(&script, fake_plugin, e->log) > 0);
	assert_true(asprintf(&p, "%s/%s", e->bin, name) > 0);
	put_file(p, script, 0755);
	if (result) {
		assert_true(asprintf(&r, "%s/%s.result", e->bin, name) > 0);
		put_file(r, result, 0644);
	}
}

static void fake_env_init(struct fake_env *e, const char *version)
{
	_cleanup_free_ char *list = NULL, *lp = NULL;

	e->bin = tpath("bin");
	e->conf = tpath("net.d");
	e->log = tpath("log");
	e->state = tpath("state/netd"); /* created by ADD */
	e->netns = tpath("netns-pod");
	assert_int_equal(mkdir(e->bin, 0755), 0);
	assert_int_equal(mkdir(e->conf, 0755), 0);
	assert_int_equal(mkdir(e->log, 0755), 0);
	fake_plugin_install(e, "aaa", result_a);
	fake_plugin_install(e, "bbb", result_b);
	fake_plugin_install(e, "ccc", result_b);
	assert_true(asprintf(&list,
			     "{\"cniVersion\":\"%s\",\"name\":\"fakenet\",\"plugins\":["
			     "{\"type\":\"aaa\",\"ipam\":{\"type\":\"x\"}},"
			     "{\"type\":\"bbb\",\"capabilities\":{\"portMappings\":true}},"
			     "{\"type\":\"ccc\"}]}",
			     version) > 0);
	assert_true(asprintf(&lp, "%s/10-fake.conflist", e->conf) > 0);
	put_file(lp, list, 0644);

	config_defaults(&e->cfg);
	free(e->cfg.cni_conf_dir);
	free(e->cfg.cni_bin_dirs);
	e->cfg.cni_conf_dir = strdup(e->conf);
	assert_true(asprintf(&e->cfg.cni_bin_dirs, "/nonexistent:%s", e->bin) > 0);
}

static void fake_env_free(struct fake_env *e)
{
	free(e->bin);
	free(e->conf);
	free(e->log);
	free(e->state);
	free(e->netns);
	config_free(&e->cfg);
}

static char *slurp(const char *fmt, ...) _printf_(1, 2);
static char *slurp(const char *fmt, ...)
{
	char path[PATH_MAX], *text = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	if (read_file(path, 16 * 1024 * 1024, &text, NULL) < 0)
		return NULL;
	return text;
}

static json_object *slurp_json(const char *log, const char *name)
{
	_cleanup_free_ char *t = slurp("%s/%s", log, name);
	assert_non_null(t);
	return parse(t);
}

static void reset_log(struct fake_env *e)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/*", e->log);
	assert_int_equal(system(cmd), 0);
}

static void make_req(struct fake_env *e, struct pod_net_request *req, const struct port_mapping *pm, size_t n)
{
	*req = (struct pod_net_request){
		.pod_id = POD_ID,
		.pod_name = "web",
		.pod_namespace = "ns1",
		.pod_uid = "uid-1",
		.netns_path = e->netns,
		.ifname = "eth0",
		.ports = pm,
		.n_ports = n,
		.state_dir = e->state,
	};
}

static void test_add_del(void **state)
{
	struct fake_env e;
	struct pod_net_request req;
	struct pod_net_result res;
	struct port_mapping pm = {.protocol = IPPROTO_TCP, .container_port = 80, .host_port = 8080};
	char err[512];
	_cleanup_free_ char *cache = NULL, *calls = NULL, *envtext = NULL;
	json_object *in, *ra = parse(result_a), *rb = parse(result_b), *rc;
	struct stat st;

	fake_env_init(&e, "1.0.0");
	make_req(&e, &req, &pm, 1);
	assert_true(asprintf(&cache, "%s/cni-" POD_ID ".json", e.state) > 0);

	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(res.n_ips, 2);
	assert_string_equal(res.ips[0], "10.22.0.7");
	assert_string_equal(res.ips[1], "fd22::7");

	calls = slurp("%s/calls", e.log);
	assert_string_equal(calls, "aaa ADD\nbbb ADD\nccc ADD\n");
	envtext = slurp("%s/bbb.ADD.env", e.log);
	{
		_cleanup_free_ char *want = NULL;
		assert_true(asprintf(&want,
				     "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;"
				     "K8S_POD_INFRA_CONTAINER_ID=" POD_ID ";K8S_POD_UID=uid-1\n"
				     "CNI_COMMAND=ADD\nCNI_CONTAINERID=" POD_ID "\nCNI_IFNAME=eth0\nCNI_NETNS=%s\n"
				     "CNI_PATH=%s\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
				     e.netns, e.cfg.cni_bin_dirs) > 0);
		assert_string_equal(envtext, want);
	}
	/* chaining: each plugin gets the previous result; runtimeConfig only where declared */
	in = slurp_json(e.log, "aaa.ADD.stdin");
	assert_null(json_object_object_get(in, "prevResult"));
	assert_null(json_object_object_get(in, "runtimeConfig"));
	assert_string_equal(json_object_get_string(json_object_object_get(in, "name")), "fakenet");
	assert_string_equal(json_object_get_string(json_object_object_get(in, "cniVersion")), "1.0.0");
	json_object_put(in);
	in = slurp_json(e.log, "bbb.ADD.stdin");
	assert_true(json_object_equal(json_object_object_get(in, "prevResult"), ra));
	rc = json_object_object_get(json_object_object_get(in, "runtimeConfig"), "portMappings");
	assert_non_null(rc);
	assert_int_equal(json_object_get_int(json_object_object_get(json_object_array_get_idx(rc, 0), "hostPort")), 8080);
	json_object_put(in);
	in = slurp_json(e.log, "ccc.ADD.stdin");
	assert_true(json_object_equal(json_object_object_get(in, "prevResult"), rb));
	assert_null(json_object_object_get(in, "runtimeConfig"));
	json_object_put(in);

	/* the cache: the final result and the configuration, private */
	assert_int_equal(stat(cache, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	{
		_cleanup_free_ char *t = slurp("%s", cache);
		json_object *c = parse(t);
		assert_true(json_object_equal(json_object_object_get(c, "result"), rb));
		assert_string_equal(json_object_get_string(json_object_object_get(c, "networkName")), "fakenet");
		assert_non_null(json_object_object_get(c, "config"));
		json_object_put(c);
	}

	/* DEL: reverse order, prevResult, ports from the cache, the same CNI_ARGS,
	 * even with the configuration on disk gone */
	reset_log(&e);
	{
		_cleanup_free_ char *lp = NULL;
		assert_true(asprintf(&lp, "%s/10-fake.conflist", e.conf) > 0);
		assert_int_equal(unlink(lp), 0);
	}
	req.n_ports = 0;
	req.pod_name = NULL;
	assert_int_equal(cni_del(&e.cfg, &req, err, sizeof(err)), 0);
	free(calls);
	calls = slurp("%s/calls", e.log);
	assert_string_equal(calls, "ccc DEL\nbbb DEL\naaa DEL\n");
	in = slurp_json(e.log, "aaa.DEL.stdin");
	assert_true(json_object_equal(json_object_object_get(in, "prevResult"), rb));
	json_object_put(in);
	in = slurp_json(e.log, "bbb.DEL.stdin");
	rc = json_object_object_get(json_object_object_get(in, "runtimeConfig"), "portMappings");
	assert_non_null(rc);
	assert_int_equal(json_object_array_length(rc), 1);
	json_object_put(in);
	free(envtext);
	envtext = slurp("%s/aaa.DEL.env", e.log);
	assert_non_null(strstr(envtext, "CNI_COMMAND=DEL\n"));
	assert_non_null(strstr(envtext, "K8S_POD_NAME=web;"));
	assert_false(file_exists(cache));

	/* DEL again: no cache, no configuration: nothing to do, success */
	reset_log(&e);
	assert_int_equal(cni_del(&e.cfg, &req, err, sizeof(err)), 0);
	{
		_cleanup_free_ char *cp = NULL;
		assert_true(asprintf(&cp, "%s/calls", e.log) > 0);
		assert_false(file_exists(cp));
	}

	json_object_put(ra);
	json_object_put(rb);
	fake_env_free(&e);
}

static void test_add_failure_rolls_back(void **state)
{
	struct fake_env e;
	struct pod_net_request req;
	struct pod_net_result res;
	char err[512];
	_cleanup_free_ char *calls = NULL, *failp = NULL, *cache = NULL;
	json_object *in, *ra = parse(result_a);

	fake_env_init(&e, "1.0.0");
	make_req(&e, &req, NULL, 0);
	assert_true(asprintf(&cache, "%s/cni-" POD_ID ".json", e.state) > 0);
	assert_true(asprintf(&failp, "%s/bbb.fail", e.bin) > 0);
	put_file(failp, "{\"cniVersion\":\"1.0.0\",\"code\":999,\"msg\":\"no room at the inn\"}", 0644);

	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), -EIO);
	assert_string_equal(err, "plugin bbb: no room at the inn");
	assert_int_equal(res.n_ips, 0);
	calls = slurp("%s/calls", e.log);
	assert_string_equal(calls, "aaa ADD\nbbb ADD\nbbb DEL\naaa DEL\n");
	in = slurp_json(e.log, "aaa.DEL.stdin");
	assert_true(json_object_equal(json_object_object_get(in, "prevResult"), ra));
	json_object_put(in);
	assert_false(file_exists(cache));

	/* a plugin that is missing */
	reset_log(&e);
	assert_int_equal(unlink(failp), 0);
	{
		_cleanup_free_ char *p = NULL;
		assert_true(asprintf(&p, "%s/ccc", e.bin) > 0);
		assert_int_equal(unlink(p), 0);
	}
	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "plugin ccc: not found"));
	free(calls);
	calls = slurp("%s/calls", e.log);
	assert_string_equal(calls, "aaa ADD\nbbb ADD\nbbb DEL\naaa DEL\n");

	/* a result without a pod address: undone */
	reset_log(&e);
	fake_plugin_install(&e, "ccc", "{\"cniVersion\":\"1.0.0\",\"interfaces\":[{\"name\":\"cni0\"}],"
				       "\"ips\":[{\"address\":\"10.22.0.1/24\",\"interface\":0}]}");
	assert_true(cni_add(&e.cfg, &req, &res, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "no IP address"));
	free(calls);
	calls = slurp("%s/calls", e.log);
	assert_string_equal(calls, "aaa ADD\nbbb ADD\nccc ADD\nccc DEL\nbbb DEL\naaa DEL\n");

	/* a result that is not JSON */
	reset_log(&e);
	fake_plugin_install(&e, "ccc", "this is not json");
	assert_true(cni_add(&e.cfg, &req, &res, err, sizeof(err)) < 0);
	assert_string_equal(err, "plugin ccc: ADD result is not a JSON object");
	assert_false(file_exists(cache));

	/* invalid requests */
	req.pod_id = "../../etc";
	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), -EINVAL);
	assert_int_equal(cni_del(&e.cfg, &req, err, sizeof(err)), -EINVAL);
	make_req(&e, &req, NULL, 0);
	req.ifname = "eth0/../x";
	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), -EINVAL);
	req.ifname = "averyveryverylongname";
	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), -EINVAL);
	make_req(&e, &req, NULL, 0);
	req.pod_name = "x;y";
	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), -EINVAL);

	json_object_put(ra);
	fake_env_free(&e);
}

/* Before 0.4.0 DEL carries no prevResult; without a cache DEL uses the
 * configuration on disk. */
static void test_del_versions(void **state)
{
	struct fake_env e;
	struct pod_net_request req;
	struct pod_net_result res;
	char err[512];
	json_object *in;

	fake_env_init(&e, "0.3.1");
	make_req(&e, &req, NULL, 0);
	assert_int_equal(cni_add(&e.cfg, &req, &res, err, sizeof(err)), 0);
	reset_log(&e);
	assert_int_equal(cni_del(&e.cfg, &req, err, sizeof(err)), 0);
	in = slurp_json(e.log, "aaa.DEL.stdin");
	assert_null(json_object_object_get(in, "prevResult"));
	assert_string_equal(json_object_get_string(json_object_object_get(in, "cniVersion")), "0.3.1");
	json_object_put(in);

	/* no cache: DEL still runs every plugin with the configuration on disk */
	reset_log(&e);
	assert_int_equal(cni_del(&e.cfg, &req, err, sizeof(err)), 0);
	{
		_cleanup_free_ char *calls = slurp("%s/calls", e.log);
		assert_string_equal(calls, "ccc DEL\nbbb DEL\naaa DEL\n");
	}

	/* a failing DEL keeps going, reports the first failure */
	reset_log(&e);
	{
		_cleanup_free_ char *p = NULL, *calls = NULL;
		assert_true(asprintf(&p, "%s/bbb", e.bin) > 0);
		put_file(p, "#!/bin/sh\necho '{\"code\":5,\"msg\":\"cannot\"}'\nexit 1\n", 0755);
		assert_int_equal(cni_del(&e.cfg, &req, err, sizeof(err)), -EIO);
		assert_string_equal(err, "plugin bbb: cannot");
		calls = slurp("%s/calls", e.log);
		assert_string_equal(calls, "ccc DEL\naaa DEL\n");
	}
	fake_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_and_type),
		cmocka_unit_test(test_json_parse),
		cmocka_unit_test(test_conf_parse),
		cmocka_unit_test_setup_teardown(test_conf_load_dir, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_find_plugin, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_build_args),
		cmocka_unit_test(test_plugin_config),
		cmocka_unit_test(test_result_ips),
		cmocka_unit_test_setup_teardown(test_exec, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_exec_threads, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test(test_plugin_error),
		cmocka_unit_test_setup_teardown(test_add_del, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_add_failure_rolls_back, setup_tmpdir, teardown_tmpdir),
		cmocka_unit_test_setup_teardown(test_del_versions, setup_tmpdir, teardown_tmpdir),
	};

	log_init("test_cni");
	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
