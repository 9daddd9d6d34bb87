/* Unit tests for criod/oci_spec.c: real CRI messages (protobuf-c structs)
 * in, config.json out, parsed back with json-c and checked rule by rule:
 * command/args/entrypoint merging, env, cwd, users and groups from the
 * image's /etc/passwd and /etc/group (hostile files included), capabilities,
 * privileged, read-only rootfs, masked and read-only paths, no_new_privs,
 * seccomp (profile selection and the Docker-to-OCI conversion), AppArmor,
 * sysctls, namespaces, mounts and propagation, devices, resources,
 * cgroupsPath, annotations, image volumes, the stop signal, and errors that
 * name the field. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "macro.h"
#include "oci_spec.h"
#include "seccomp_profile.h"

#define CID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SID "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static const char passwd[] =
	"root:x:0:0:root:/root:/bin/sh\n"
	"# a comment\n"
	"garbage line without colons\n"
	"+nisuser::0:0:::\n"
	"broken:x:notanumber:1:::\n"
	"toolong:x:99999999999:1:::\n"
	"app:x:1000:1001:App:/home/app:/bin/sh\r\n"
	":x:5:5:::\n"
	"app:x:2000:2000:second app entry, ignored:/:/bin/sh\n"
	"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";
static const char group[] =
	"root:x:0:\n"
	"app:x:1001:\n"
	"wheel:x:10:app,other\n"
	"staff:x:50:root,app\n"
	"malformed\n"
	"bad:x:zz:app\n"
	"users:x:100:someone,appx,xapp\n"
	"nogroup:x:65534:";

/* ---- fixture: one container in one pod ---- */

struct fx {
	Runtime__V1__ContainerConfig cfg;
	Runtime__V1__ContainerMetadata meta;
	Runtime__V1__ImageSpec image;
	Runtime__V1__LinuxContainerConfig lc;
	Runtime__V1__LinuxContainerSecurityContext sc;
	Runtime__V1__LinuxContainerResources res;
	Runtime__V1__Capability caps;
	Runtime__V1__NamespaceOption ns;
	Runtime__V1__SecurityProfile seccomp, apparmor;
	Runtime__V1__Int64Value run_as_user, run_as_group;
	Runtime__V1__PodSandboxConfig pod_cfg;
	Runtime__V1__PodSandboxMetadata pod_meta;
	Runtime__V1__LinuxPodSandboxConfig pod_linux;
	Runtime__V1__LinuxSandboxSecurityContext pod_sc;
	struct oci_pod_info pod;
	struct oci_spec_input in;
	struct oci_spec_result out;
	json_object *spec;
	char err[512];
};

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->cfg = (Runtime__V1__ContainerConfig)RUNTIME__V1__CONTAINER_CONFIG__INIT;
	f->meta = (Runtime__V1__ContainerMetadata)RUNTIME__V1__CONTAINER_METADATA__INIT;
	f->image = (Runtime__V1__ImageSpec)RUNTIME__V1__IMAGE_SPEC__INIT;
	f->lc = (Runtime__V1__LinuxContainerConfig)RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
	f->sc = (Runtime__V1__LinuxContainerSecurityContext)RUNTIME__V1__LINUX_CONTAINER_SECURITY_CONTEXT__INIT;
	f->res = (Runtime__V1__LinuxContainerResources)RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
	f->caps = (Runtime__V1__Capability)RUNTIME__V1__CAPABILITY__INIT;
	f->ns = (Runtime__V1__NamespaceOption)RUNTIME__V1__NAMESPACE_OPTION__INIT;
	f->seccomp = (Runtime__V1__SecurityProfile)RUNTIME__V1__SECURITY_PROFILE__INIT;
	f->apparmor = (Runtime__V1__SecurityProfile)RUNTIME__V1__SECURITY_PROFILE__INIT;
	f->run_as_user = (Runtime__V1__Int64Value)RUNTIME__V1__INT64_VALUE__INIT;
	f->run_as_group = (Runtime__V1__Int64Value)RUNTIME__V1__INT64_VALUE__INIT;
	f->pod_cfg = (Runtime__V1__PodSandboxConfig)RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
	f->pod_meta = (Runtime__V1__PodSandboxMetadata)RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
	f->pod_linux = (Runtime__V1__LinuxPodSandboxConfig)RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
	f->pod_sc = (Runtime__V1__LinuxSandboxSecurityContext)RUNTIME__V1__LINUX_SANDBOX_SECURITY_CONTEXT__INIT;

	f->meta.name = "app";
	f->image.image = "docker.io/library/busybox:latest";
	f->cfg.metadata = &f->meta;
	f->cfg.image = &f->image;
	f->cfg.linux = &f->lc;
	f->lc.security_context = &f->sc;
	f->lc.resources = &f->res;
	f->sc.namespace_options = &f->ns; /* pid POD */

	f->pod_meta.name = "web";
	f->pod_meta.namespace_ = "default";
	f->pod_meta.uid = "uid-1";
	f->pod_cfg.metadata = &f->pod_meta;
	f->pod_cfg.hostname = "web-0";
	f->pod_cfg.linux = &f->pod_linux;
	f->pod_linux.security_context = &f->pod_sc;

	f->pod.netns_path = "/run/criod/netns/pod";
	f->pod.ipc_ns = "/run/criod/pods/p/ns/ipc";
	f->pod.uts_ns = "/run/criod/pods/p/ns/uts";
	f->pod.pid_ns = "/run/criod/pods/p/ns/pid";
	f->pod.shm_path = "/run/criod/pods/p/shm";
	f->pod.hostname_path = "/var/lib/criod/pods/p/hostname";
	f->pod.hosts_path = "/var/lib/criod/pods/p/hosts";
	f->pod.resolv_path = "/var/lib/criod/pods/p/resolv.conf";
	f->pod.cgroup_parent = "/kubepods/pod1";

	f->in.container_id = CID;
	f->in.config = &f->cfg;
	f->in.pod_config = &f->pod_cfg;
	f->in.pod = &f->pod;
	f->in.image_config_json = "{\"architecture\":\"amd64\",\"config\":{\"Cmd\":[\"sh\"],\"Env\":[\"PATH=/bin\"]}}";
	f->in.rootfs = "/var/lib/criod/imaged/containers/" CID "/rootfs";
	f->in.etc_passwd = passwd;
	f->in.etc_group = group;
	f->in.oom_score_adj_min = -1000;
	f->in.seccomp_profile_root = "/var/lib/kubelet/seccomp";
	f->in.sandbox_id = SID;
}

static void fx_free(struct fx *f)
{
	json_object_put(f->spec);
	f->spec = NULL;
	oci_spec_result_free(&f->out);
}

static void build_ok(struct fx *f)
{
	int r;

	json_object_put(f->spec);
	f->spec = NULL;
	oci_spec_result_free(&f->out);
	strcpy(f->err, "unset");
	r = oci_spec_build(&f->in, &f->out, f->err, sizeof(f->err));
	if (r != 0)
		fail_msg("oci_spec_build: %d: %s", r, f->err);
	assert_string_equal(f->err, "");
	assert_non_null(f->out.json);
	f->spec = json_tokener_parse(f->out.json);
	assert_non_null(f->spec);
}

/* Expect -EINVAL with a message containing want, and nothing left in out. */
static void build_err(struct fx *f, const char *want)
{
	int r;

	json_object_put(f->spec);
	f->spec = NULL;
	oci_spec_result_free(&f->out);
	r = oci_spec_build(&f->in, &f->out, f->err, sizeof(f->err));
	if (r != -EINVAL)
		fail_msg("expected -EINVAL containing \"%s\", got %d (%s)", want, r, r ? f->err : f->out.json);
	if (!strstr(f->err, want))
		fail_msg("message \"%s\" lacks \"%s\"", f->err, want);
	assert_null(f->out.json);
	assert_null(f->out.stop_signal);
	assert_null(f->out.image_volumes);
	assert_int_equal(f->out.n_image_volumes, 0);
}

/* ---- JSON access: "process/user/uid", "linux/namespaces/0/type" ---- */

static json_object *jp(json_object *o, const char *path)
{
	char buf[256], *save = NULL, *seg;

	snprintf(buf, sizeof(buf), "%s", path);
	for (seg = strtok_r(buf, "/", &save); o && seg; seg = strtok_r(NULL, "/", &save)) {
		if (json_object_is_type(o, json_type_array)) {
			size_t i = strtoul(seg, NULL, 10);
			o = i < json_object_array_length(o) ? json_object_array_get_idx(o, i) : NULL;
		} else if (!json_object_object_get_ex(o, seg, &o))
			o = NULL;
	}
	return o;
}

static const char *jps(json_object *o, const char *path)
{
	json_object *v = jp(o, path);

	if (!v || !json_object_is_type(v, json_type_string))
		fail_msg("%s: not a string", path);
	return json_object_get_string(v);
}

static int64_t jpi(json_object *o, const char *path)
{
	json_object *v = jp(o, path);

	if (!v || !json_object_is_type(v, json_type_int))
		fail_msg("%s: not an integer", path);
	return json_object_get_int64(v);
}

static bool jpb(json_object *o, const char *path)
{
	json_object *v = jp(o, path);

	if (!v || !json_object_is_type(v, json_type_boolean))
		fail_msg("%s: not a boolean", path);
	return json_object_get_boolean(v);
}

/* An array of strings joined with '|', or of integers with ','. */
static const char *joined(json_object *o, const char *path)
{
	static char buf[8192];
	json_object *a = jp(o, path);
	size_t n = 0;

	if (!a || !json_object_is_type(a, json_type_array))
		fail_msg("%s: not an array", path);
	buf[0] = '\0';
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? (json_object_is_type(e, json_type_int) ? "," : "|") : "",
				      json_object_get_string(e));
	}
	return buf;
}

static bool has_str(json_object *o, const char *path, const char *s)
{
	json_object *a = jp(o, path);

	for (size_t i = 0; a && i < json_object_array_length(a); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(a, i)), s) == 0)
			return true;
	return false;
}

static json_object *find_mount(json_object *spec, const char *dst)
{
	json_object *a = jp(spec, "mounts");

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *m = json_object_array_get_idx(a, i);
		if (strcmp(jps(m, "destination"), dst) == 0)
			return m;
	}
	return NULL;
}

static int mount_index(json_object *spec, const char *dst)
{
	json_object *a = jp(spec, "mounts");

	for (size_t i = 0; a && i < json_object_array_length(a); i++)
		if (strcmp(jps(json_object_array_get_idx(a, i), "destination"), dst) == 0)
			return (int)i;
	return -1;
}

static json_object *find_ns(json_object *spec, const char *type)
{
	json_object *a = jp(spec, "linux/namespaces");

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *n = json_object_array_get_idx(a, i);
		if (strcmp(jps(n, "type"), type) == 0)
			return n;
	}
	return NULL;
}

static json_object *find_syscall_rule(json_object *seccomp, const char *name)
{
	json_object *a = jp(seccomp, "syscalls");

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *r = json_object_array_get_idx(a, i);
		if (has_str(r, "names", name))
			return r;
	}
	return NULL;
}

/* ---- the whole spec for a plain container ---- */

static void test_defaults(void **state)
{
	struct fx f;
	json_object *s;

	fx_init(&f);
	build_ok(&f);
	s = f.spec;
	assert_string_equal(jps(s, "ociVersion"), "1.0.2");
	assert_string_equal(joined(s, "process/args"), "sh");
	assert_false(jpb(s, "process/terminal"));
	assert_string_equal(jps(s, "process/cwd"), "/");
	assert_string_equal(joined(s, "process/env"), "HOSTNAME=web-0|PATH=/bin");
	assert_int_equal(jpi(s, "process/user/uid"), 0);
	assert_int_equal(jpi(s, "process/user/gid"), 0);
	assert_string_equal(joined(s, "process/user/additionalGids"), "0,50");
	assert_false(jpb(s, "process/noNewPrivileges"));
	assert_int_equal(jpi(s, "process/oomScoreAdj"), 0);
	assert_null(jp(s, "process/apparmorProfile"));
	assert_string_equal(jps(s, "root/path"), f.in.rootfs);
	assert_false(jpb(s, "root/readonly"));
	assert_string_equal(jps(s, "linux/cgroupsPath"), "/kubepods/pod1/criod-" CID);
	assert_null(jp(s, "linux/seccomp")); /* nothing asked: unconfined */
	assert_null(jp(s, "linux/sysctl"));
	assert_null(jp(s, "linux/rootfsPropagation"));
	assert_null(jp(s, "linux/devices"));
	assert_null(jp(s, "hostname"));
	assert_int_equal(f.out.uid, 0);
	assert_int_equal(f.out.gid, 0);
	assert_int_equal(f.out.oom_score_adj, 0);
	assert_null(f.out.stop_signal);
	assert_int_equal(f.out.n_image_volumes, 0);
	fx_free(&f);
	fx_free(&f); /* twice is fine */
	oci_spec_result_free(NULL);
}

/* ---- process.args: the Kubernetes merge ---- */

static void test_args(void **state)
{
	static char *cmd[] = { "/app", "--serve" }, *args[] = { "-v", "x" }, *empty_cmd[] = { "" };
	static const struct {
		char **command;
		size_t n_command;
		char **args;
		size_t n_args;
		const char *image; /* the image config's "config" object */
		const char *want;  /* '|'-joined argv, or an error */
		bool error;
	} t[] = {
		/* command replaces Entrypoint and drops Cmd; args are kept */
		{ cmd, 2, NULL, 0, "{\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"c1\",\"c2\"]}", "/app|--serve", false },
		{ cmd, 2, args, 2, "{\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"c1\"]}", "/app|--serve|-v|x", false },
		{ cmd, 2, args, 2, "{}", "/app|--serve|-v|x", false },
		/* args replace Cmd, Entrypoint stays */
		{ NULL, 0, args, 2, "{\"Entrypoint\":[\"/ep\",\"-a\"],\"Cmd\":[\"c1\"]}", "/ep|-a|-v|x", false },
		{ NULL, 0, args, 2, "{\"Cmd\":[\"c1\"]}", "-v|x", false },
		/* neither: Entrypoint + Cmd */
		{ NULL, 0, NULL, 0, "{\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"c1\",\"c2\"]}", "/ep|c1|c2", false },
		{ NULL, 0, NULL, 0, "{\"Entrypoint\":[\"/ep\"]}", "/ep", false },
		{ NULL, 0, NULL, 0, "{\"Entrypoint\":null,\"Cmd\":[\"c1\"]}", "c1", false },
		/* an Entrypoint of [""] is cleared */
		{ NULL, 0, NULL, 0, "{\"Entrypoint\":[\"\"],\"Cmd\":[\"c1\"]}", "c1", false },
		{ empty_cmd, 1, NULL, 0, "{\"Cmd\":[\"c1\"]}", "", false },
		/* nothing at all */
		{ NULL, 0, NULL, 0, "{}", "config.command: no command specified", true },
		{ NULL, 0, NULL, 0, "{\"Entrypoint\":[\"\"]}", "no command specified", true },
		{ NULL, 0, NULL, 0, "{\"Entrypoint\":[],\"Cmd\":[]}", "no command specified", true },
		{ NULL, 0, NULL, 0, NULL, "no command specified", true },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;
		char *img = NULL;

		fx_init(&f);
		f.cfg.command = t[i].command;
		f.cfg.n_command = t[i].n_command;
		f.cfg.args = t[i].args;
		f.cfg.n_args = t[i].n_args;
		if (t[i].image)
			assert_true(asprintf(&img, "{\"config\":%s}", t[i].image) > 0);
		f.in.image_config_json = img ? img : "";
		if (t[i].error)
			build_err(&f, t[i].want);
		else {
			build_ok(&f);
			if (strcmp(joined(f.spec, "process/args"), t[i].want) != 0)
				fail_msg("case %zu: args %s, want %s", i, joined(f.spec, "process/args"), t[i].want);
		}
		free(img);
		fx_free(&f);
	}
}

/* ---- env, cwd, terminal ---- */

static void test_env(void **state)
{
	Runtime__V1__KeyValue kv[3] = { RUNTIME__V1__KEY_VALUE__INIT, RUNTIME__V1__KEY_VALUE__INIT,
					RUNTIME__V1__KEY_VALUE__INIT };
	Runtime__V1__KeyValue *kvs[] = { &kv[0], &kv[1], &kv[2] };
	struct fx f;

	fx_init(&f);
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"Env\":[\"A=1\",\"B=2\",\"HOSTNAME=img\",\"NOVALUE\"]}}";
	kv[0].key = "B";
	kv[0].value = "override";
	kv[1].key = "C";
	kv[1].value = "x=y";
	kv[2].key = "A";
	kv[2].value = "";
	f.cfg.envs = kvs;
	f.cfg.n_envs = 3;
	build_ok(&f);
	/* HOSTNAME first (the image may override it), the image's, then the
	 * config's replacing by key in place; PATH added when missing */
	assert_string_equal(joined(f.spec, "process/env"), "HOSTNAME=img|A=|B=override|NOVALUE|C=x=y|" DEFAULT_PATH);

	/* PATH from the image is kept, and HOSTNAME is the pod's */
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"Env\":[\"PATH=/opt/bin\"]}}";
	f.cfg.n_envs = 0;
	build_ok(&f);
	assert_string_equal(joined(f.spec, "process/env"), "HOSTNAME=web-0|PATH=/opt/bin");

	/* no pod hostname (host network): the node's */
	f.pod_cfg.hostname = "";
	f.in.node_hostname = "node-1";
	build_ok(&f);
	assert_string_equal(joined(f.spec, "process/env"), "HOSTNAME=node-1|PATH=/opt/bin");
	f.in.node_hostname = NULL;
	build_ok(&f);
	assert_string_equal(joined(f.spec, "process/env"), "PATH=/opt/bin");

	/* a config key may not be empty or hold '=' */
	kv[0].key = "";
	f.cfg.n_envs = 1;
	build_err(&f, "config.envs[0].key");
	kv[0].key = "B";
	kv[1].key = "X=Y";
	f.cfg.n_envs = 2;
	build_err(&f, "config.envs[1].key");
	fx_free(&f);
}

static void test_cwd_terminal(void **state)
{
	struct fx f;

	fx_init(&f);
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"WorkingDir\":\"/srv\"}}";
	build_ok(&f);
	assert_string_equal(jps(f.spec, "process/cwd"), "/srv");
	f.cfg.working_dir = "/work";
	f.cfg.tty = 1;
	f.cfg.stdin = 1;
	build_ok(&f);
	assert_string_equal(jps(f.spec, "process/cwd"), "/work");
	assert_true(jpb(f.spec, "process/terminal"));
	f.cfg.working_dir = "relative";
	build_err(&f, "config.working_dir: must be an absolute path");
	f.cfg.working_dir = "";
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"WorkingDir\":\"app//data/\"}}";
	build_ok(&f);
	assert_string_equal(jps(f.spec, "process/cwd"), "/app/data");
	fx_free(&f);
}

/* ---- user and groups ---- */

static void test_user(void **state)
{
	static int64_t sg_2000[] = { 2000 }, sg_mixed[] = { 2000, 10, 2000 }, sg_bad[] = { 5, -5 };
	static const struct {
		int64_t run_as_user; /* -2: unset */
		const char *username;
		int64_t run_as_group; /* -2: unset */
		const char *image_user;
		bool strict;
		int64_t *sg;
		size_t n_sg;
		const char *want; /* "uid gid gids" or an error */
		bool error;
	} t[] = {
		{ -2, "", -2, "", false, NULL, 0, "0 0 0,50", false },
		{ 1000, "", -2, "", false, NULL, 0, "1000 1001 1001,10,50", false },
		{ 4242, "", -2, "", false, NULL, 0, "4242 0 0", false }, /* unknown uid: gid 0 */
		{ 1000, "", 7, "", false, NULL, 0, "1000 7 7,10,50", false },
		{ 0, "", 7, "app", false, NULL, 0, "0 7 7,50", false }, /* run_as_user wins over the image */
		{ -2, "app", -2, "", false, NULL, 0, "1000 1001 1001,10,50", false },
		{ -2, "app", 3, "", false, NULL, 0, "1000 3 3,10,50", false },
		{ -2, "nobody", -2, "", false, NULL, 0, "65534 65534 65534", false },
		{ -2, "", -2, "app", false, NULL, 0, "1000 1001 1001,10,50", false },
		{ -2, "", -2, "1000", false, NULL, 0, "1000 1001 1001,10,50", false },
		{ -2, "", -2, "1000:50", false, NULL, 0, "1000 50 50,10", false },
		{ -2, "", -2, "app:wheel", false, NULL, 0, "1000 10 10,50", false },
		{ -2, "", -2, "app:1234", false, NULL, 0, "1000 1234 1234,10,50", false },
		{ -2, "", -2, "4242:4343", false, NULL, 0, "4242 4343 4343", false },
		{ -2, "", -2, "4242:staff", false, NULL, 0, "4242 50 50", false },
		/* run_as_group only with run_as_user or run_as_username (the CRI) */
		{ -2, "", 9, "app:wheel", false, NULL, 0,
		  "config.linux.security_context.run_as_group is set without run_as_user or run_as_username", true },
		{ -2, "", 0, "", false, NULL, 0, "run_as_group is set without run_as_user", true },
		/* Strict: no /etc/group memberships, only the given groups */
		{ 1000, "", -2, "", true, sg_2000, 1, "1000 1001 1001,2000", false },
		{ 1000, "", -2, "", false, sg_mixed, 3, "1000 1001 1001,10,50,2000", false },
		{ -2, "", -2, "", true, NULL, 0, "0 0 0", false },
		/* errors name the field */
		{ -2, "ghost", -2, "", false, NULL, 0,
		  "config.linux.security_context.run_as_username: user \"ghost\" not found in the image's /etc/passwd", true },
		{ -2, "broken", -2, "", false, NULL, 0, "run_as_username: user \"broken\" not found", true },
		{ -2, "", -2, "ghost", false, NULL, 0, "image config User: user \"ghost\" not found", true },
		{ -2, "", -2, "app:nogrp", false, NULL, 0, "image config User: group \"nogrp\" not found", true },
		{ -2, "", -2, "app:", false, NULL, 0, "image config User: invalid user", true },
		{ -2, "", -2, ":5", false, NULL, 0, "image config User: invalid user", true },
		{ -1, "", -2, "", false, NULL, 0, "config.linux.security_context.run_as_user: -1 is not a valid uid", true },
		{ 4294967295, "", -2, "", false, NULL, 0, "run_as_user: 4294967295 is not a valid uid", true },
		{ 0, "", -3, "", false, NULL, 0, "run_as_group: -3 is not a valid gid", true },
		{ 1000, "app", -2, "", false, NULL, 0, "run_as_user and run_as_username are both set", true },
		{ 0, "", -2, "", false, sg_bad, 2, "config.linux.security_context.supplemental_groups[1]", true },
		{ -2, "a:b", -2, "", false, NULL, 0, "run_as_username: invalid user name", true },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;
		char *img = NULL, got[256];

		fx_init(&f);
		if (t[i].run_as_user != -2) {
			f.run_as_user.value = t[i].run_as_user;
			f.sc.run_as_user = &f.run_as_user;
		}
		if (t[i].run_as_group != -2) {
			f.run_as_group.value = t[i].run_as_group;
			f.sc.run_as_group = &f.run_as_group;
		}
		f.sc.run_as_username = (char *)t[i].username;
		f.sc.supplemental_groups_policy = t[i].strict ? RUNTIME__V1__SUPPLEMENTAL_GROUPS_POLICY__Strict
							      : RUNTIME__V1__SUPPLEMENTAL_GROUPS_POLICY__Merge;
		f.sc.supplemental_groups = t[i].sg;
		f.sc.n_supplemental_groups = t[i].n_sg;
		assert_true(asprintf(&img, "{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"%s\"}}", t[i].image_user) > 0);
		f.in.image_config_json = img;
		if (t[i].error)
			build_err(&f, t[i].want);
		else {
			build_ok(&f);
			snprintf(got, sizeof(got), "%lld %lld %s", (long long)jpi(f.spec, "process/user/uid"),
				 (long long)jpi(f.spec, "process/user/gid"), joined(f.spec, "process/user/additionalGids"));
			if (strcmp(got, t[i].want) != 0)
				fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, t[i].want);
			assert_int_equal(f.out.uid, jpi(f.spec, "process/user/uid"));
			assert_int_equal(f.out.gid, jpi(f.spec, "process/user/gid"));
		}
		free(img);
		fx_free(&f);
	}
}

static void test_user_no_files(void **state)
{
	struct fx f;

	fx_init(&f);
	f.in.etc_passwd = NULL;
	f.in.etc_group = NULL;
	build_ok(&f); /* root needs no files */
	assert_string_equal(joined(f.spec, "process/user/additionalGids"), "0");
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"app\"}}";
	build_err(&f, "image config User: user \"app\" not found: the image has no /etc/passwd");
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"1:grp\"}}";
	build_err(&f, "group \"grp\" not found: the image has no /etc/group");
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"User\":\"77:88\"}}";
	build_ok(&f);
	assert_int_equal(f.out.uid, 77);
	assert_int_equal(f.out.gid, 88);
	fx_free(&f);
}

/* Hostile /etc/passwd and /etc/group: over-long lines and fields, too many
 * fields, binary junk: skipped, never a crash or a wrong match. */
static void test_user_hostile_files(void **state)
{
	struct fx f;
	char *pw, *gr;
	size_t n = 200000;

	fx_init(&f);
	pw = malloc(n + 200);
	gr = malloc(n + 200);
	assert_non_null(pw);
	assert_non_null(gr);
	/* one 10000-byte line that would match, then a good entry */
	memset(pw, 'a', n);
	memcpy(pw, "big:x:5:5:", 10);
	pw[10000] = '\n';
	strcpy(pw + 10001, "too:x:6:6:a:b:c:d:e:f\nok:x:7:8::/:/bin/sh\n");
	memset(gr, ',', n);
	memcpy(gr, "g:x:9:", 6);
	gr[20000] = '\n';
	strcpy(gr + 20001, "h:x:11:ok\n");
	f.in.etc_passwd = pw;
	f.in.etc_group = gr;
	f.sc.run_as_username = "big";
	build_err(&f, "user \"big\" not found");
	f.sc.run_as_username = "too";
	build_err(&f, "user \"too\" not found");
	f.sc.run_as_username = "ok";
	build_ok(&f);
	assert_int_equal(f.out.uid, 7);
	assert_int_equal(f.out.gid, 8);
	assert_string_equal(joined(f.spec, "process/user/additionalGids"), "8,11");

	/* random bytes */
	srand(42);
	for (size_t i = 0; i < n; i++) {
		pw[i] = (char)(rand() % 255 + 1);
		gr[i] = (char)(rand() % 255 + 1);
	}
	pw[n] = gr[n] = '\0';
	f.sc.run_as_username = "";
	f.run_as_user.value = 1;
	f.sc.run_as_user = &f.run_as_user;
	build_ok(&f);
	free(pw);
	free(gr);
	fx_free(&f);
}

/* ---- capabilities ---- */

#define DEFAULT_CAPS                                                                                             \
	"CAP_CHOWN|CAP_DAC_OVERRIDE|CAP_FOWNER|CAP_FSETID|CAP_KILL|CAP_SETGID|CAP_SETUID|CAP_SETPCAP|"         \
	"CAP_NET_BIND_SERVICE|CAP_NET_RAW|CAP_SYS_CHROOT|CAP_MKNOD|CAP_AUDIT_WRITE|CAP_SETFCAP"

static void test_capabilities(void **state)
{
	static char *add_some[] = { "NET_ADMIN", "cap_sys_time", "Sys_Nice" }, *drop_some[] = { "chown", "CAP_KILL" };
	static char *all[] = { "ALL" }, *all_lower[] = { "all" }, *chown[] = { "CHOWN" }, *nbs[] = { "NET_BIND_SERVICE" };
	static char *bad[] = { "CAP_FOO" }, *bad2[] = { "CHOWN", "bogus" }, *net_admin[] = { "NET_ADMIN" }, *empty[] = { "" };
	static const struct {
		char **add;
		size_t n_add;
		char **drop;
		size_t n_drop;
		char **amb;
		size_t n_amb;
		const char *bounding; /* '|'-joined, or an error */
		const char *ambient;
		bool error;
	} t[] = {
		{ NULL, 0, NULL, 0, NULL, 0, DEFAULT_CAPS, "", false },
		{ add_some, 3, NULL, 0, NULL, 0,
		  "CAP_CHOWN|CAP_DAC_OVERRIDE|CAP_FOWNER|CAP_FSETID|CAP_KILL|CAP_SETGID|CAP_SETUID|CAP_SETPCAP|"
		  "CAP_NET_BIND_SERVICE|CAP_NET_ADMIN|CAP_NET_RAW|CAP_SYS_CHROOT|CAP_SYS_NICE|CAP_SYS_TIME|CAP_MKNOD|"
		  "CAP_AUDIT_WRITE|CAP_SETFCAP",
		  "", false },
		{ NULL, 0, drop_some, 2, NULL, 0,
		  "CAP_DAC_OVERRIDE|CAP_FOWNER|CAP_FSETID|CAP_SETGID|CAP_SETUID|CAP_SETPCAP|CAP_NET_BIND_SERVICE|"
		  "CAP_NET_RAW|CAP_SYS_CHROOT|CAP_MKNOD|CAP_AUDIT_WRITE|CAP_SETFCAP",
		  "", false },
		/* drop ALL, add one: only that one */
		{ nbs, 1, all, 1, NULL, 0, "CAP_NET_BIND_SERVICE", "", false },
		{ NULL, 0, all_lower, 1, NULL, 0, "", "", false },
		/* add and drop the same: dropped */
		{ chown, 1, chown, 1, NULL, 0,
		  "CAP_DAC_OVERRIDE|CAP_FOWNER|CAP_FSETID|CAP_KILL|CAP_SETGID|CAP_SETUID|CAP_SETPCAP|"
		  "CAP_NET_BIND_SERVICE|CAP_NET_RAW|CAP_SYS_CHROOT|CAP_MKNOD|CAP_AUDIT_WRITE|CAP_SETFCAP",
		  "", false },
		/* ambient: in every set */
		{ NULL, 0, all, 1, net_admin, 1, "CAP_NET_ADMIN", "CAP_NET_ADMIN", false },
		{ bad, 1, NULL, 0, NULL, 0,
		  "config.linux.security_context.capabilities.add_capabilities[0]: unknown capability \"CAP_FOO\"", NULL, true },
		{ NULL, 0, bad2, 2, NULL, 0,
		  "config.linux.security_context.capabilities.drop_capabilities[1]: unknown capability \"bogus\"", NULL, true },
		{ NULL, 0, NULL, 0, bad, 1, "capabilities.add_ambient_capabilities[0]: unknown capability", NULL, true },
		{ empty, 1, NULL, 0, NULL, 0, "add_capabilities[0]: unknown capability \"\"", NULL, true },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;

		fx_init(&f);
		f.sc.capabilities = &f.caps;
		f.caps.add_capabilities = t[i].add;
		f.caps.n_add_capabilities = t[i].n_add;
		f.caps.drop_capabilities = t[i].drop;
		f.caps.n_drop_capabilities = t[i].n_drop;
		f.caps.add_ambient_capabilities = t[i].amb;
		f.caps.n_add_ambient_capabilities = t[i].n_amb;
		if (t[i].error) {
			build_err(&f, t[i].bounding);
			fx_free(&f);
			continue;
		}
		build_ok(&f);
		if (strcmp(joined(f.spec, "process/capabilities/bounding"), t[i].bounding) != 0)
			fail_msg("case %zu: bounding %s, want %s", i, joined(f.spec, "process/capabilities/bounding"),
				 t[i].bounding);
		assert_string_equal(joined(f.spec, "process/capabilities/effective"), t[i].bounding);
		assert_string_equal(joined(f.spec, "process/capabilities/permitted"), t[i].bounding);
		assert_string_equal(joined(f.spec, "process/capabilities/inheritable"), t[i].ambient);
		assert_string_equal(joined(f.spec, "process/capabilities/ambient"), t[i].ambient);
		fx_free(&f);
	}
}

static void test_capabilities_all(void **state)
{
	static char *all[] = { "ALL" }, *drop[] = { "CHOWN" }, *perfmon[] = { "PERFMON" };
	struct fx f;
	json_object *b;

	fx_init(&f);
	f.sc.capabilities = &f.caps;
	f.caps.add_capabilities = all;
	f.caps.n_add_capabilities = 1;
	f.caps.drop_capabilities = drop;
	f.caps.n_drop_capabilities = 1;
	build_ok(&f);
	b = jp(f.spec, "process/capabilities/bounding");
	assert_int_equal(json_object_array_length(b), 40); /* 0..40 without CHOWN */
	assert_false(has_str(f.spec, "process/capabilities/bounding", "CAP_CHOWN"));
	assert_true(has_str(f.spec, "process/capabilities/bounding", "CAP_CHECKPOINT_RESTORE"));
	assert_true(has_str(f.spec, "process/capabilities/bounding", "CAP_SYS_ADMIN"));

	/* "ALL" is what the runtime holds: here everything but SYS_RESOURCE (24) */
	f.in.host_cap_bounding = ((UINT64_C(1) << 41) - 1) & ~(UINT64_C(1) << 24);
	build_ok(&f);
	assert_int_equal(json_object_array_length(jp(f.spec, "process/capabilities/bounding")), 39);
	assert_false(has_str(f.spec, "process/capabilities/bounding", "CAP_SYS_RESOURCE"));
	/* ... but a capability asked for by name is asked for */
	f.in.host_cap_bounding = 1;
	f.caps.add_capabilities = perfmon;
	f.caps.n_drop_capabilities = 0;
	build_ok(&f);
	assert_true(has_str(f.spec, "process/capabilities/bounding", "CAP_PERFMON"));
	fx_free(&f);
}

/* ---- privileged ---- */

static void test_privileged(void **state)
{
	static char *drop[] = { "ALL" };
	struct fx f;

	fx_init(&f);
	f.sc.privileged = 1;
	build_err(&f, "config.linux.security_context.privileged: the pod sandbox does not allow privileged containers");
	f.pod_sc.privileged = 1;
	f.sc.capabilities = &f.caps;
	f.caps.drop_capabilities = drop; /* ignored when privileged */
	f.caps.n_drop_capabilities = 1;
	f.sc.seccomp = &f.seccomp; /* RuntimeDefault: ignored when privileged */
	f.sc.apparmor = &f.apparmor;
	f.in.apparmor_enabled = true;
	build_ok(&f);
	assert_int_equal(json_object_array_length(jp(f.spec, "process/capabilities/bounding")), 41);
	assert_int_equal(json_object_array_length(jp(f.spec, "process/capabilities/permitted")), 41);
	assert_int_equal(json_object_array_length(jp(f.spec, "process/capabilities/inheritable")), 0);
	assert_null(jp(f.spec, "linux/seccomp"));
	assert_null(jp(f.spec, "linux/maskedPaths"));
	assert_null(jp(f.spec, "linux/readonlyPaths"));
	assert_null(jp(f.spec, "process/apparmorProfile"));
	assert_false(has_str(find_mount(f.spec, "/sys"), "options", "ro"));
	assert_false(has_str(find_mount(f.spec, "/sys/fs/cgroup"), "options", "ro"));
	/* every device allowed */
	assert_int_equal(json_object_array_length(jp(f.spec, "linux/resources/devices")), 1);
	assert_true(jpb(f.spec, "linux/resources/devices/0/allow"));
	assert_string_equal(jps(f.spec, "linux/resources/devices/0/access"), "rwm");
	assert_null(jp(f.spec, "linux/resources/devices/0/type"));
	/* a Localhost AppArmor profile still applies */
	f.apparmor.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
	f.apparmor.localhost_ref = "my-profile";
	build_ok(&f);
	assert_string_equal(jps(f.spec, "process/apparmorProfile"), "my-profile");
	/* and the Localhost seccomp path helper has nothing to read */
	{
		const char *path = "x";
		f.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
		f.seccomp.localhost_ref = "/var/lib/kubelet/seccomp/p.json";
		assert_int_equal(oci_spec_seccomp_localhost_path(&f.in, &path, f.err, sizeof(f.err)), 0);
		assert_null(path);
	}
	fx_free(&f);
}

/* ---- rootfs, masked/read-only paths, no_new_privs ---- */

static void test_readonly_rootfs(void **state)
{
	struct fx f;

	fx_init(&f);
	build_ok(&f);
	assert_false(jpb(f.spec, "root/readonly"));
	assert_true(has_str(find_mount(f.spec, "/etc/hosts"), "options", "rw"));
	f.sc.readonly_rootfs = 1;
	build_ok(&f);
	assert_true(jpb(f.spec, "root/readonly"));
	assert_string_equal(jps(f.spec, "root/path"), f.in.rootfs);
	/* the pod's files follow the rootfs (containerd) */
	assert_true(has_str(find_mount(f.spec, "/etc/hosts"), "options", "ro"));
	assert_true(has_str(find_mount(f.spec, "/etc/hostname"), "options", "ro"));
	assert_true(has_str(find_mount(f.spec, "/etc/resolv.conf"), "options", "ro"));
	assert_true(has_str(find_mount(f.spec, "/dev/shm"), "options", "rw"));
	f.in.rootfs = "relative/rootfs";
	build_err(&f, "rootfs: not an absolute path");
	fx_free(&f);
}

static void test_paths(void **state)
{
	static char *masked[] = { "/proc/custom" }, *ro[] = { "/proc/ro1", "/proc/ro2" }, *bad[] = { "proc/x" };
	struct fx f;

	fx_init(&f);
	build_ok(&f);
	assert_string_equal(joined(f.spec, "linux/maskedPaths"),
			    "/proc/acpi|/proc/asound|/proc/kcore|/proc/keys|/proc/latency_stats|/proc/timer_list|"
			    "/proc/timer_stats|/proc/sched_debug|/proc/scsi|/sys/firmware|/sys/devices/virtual/powercap");
	assert_string_equal(joined(f.spec, "linux/readonlyPaths"),
			    "/proc/bus|/proc/fs|/proc/irq|/proc/sys|/proc/sysrq-trigger");
	/* kubelet's lists replace the defaults */
	f.sc.masked_paths = masked;
	f.sc.n_masked_paths = 1;
	f.sc.readonly_paths = ro;
	f.sc.n_readonly_paths = 2;
	build_ok(&f);
	assert_string_equal(joined(f.spec, "linux/maskedPaths"), "/proc/custom");
	assert_string_equal(joined(f.spec, "linux/readonlyPaths"), "/proc/ro1|/proc/ro2");
	f.sc.masked_paths = bad;
	build_err(&f, "config.linux.security_context.masked_paths[0]: \"proc/x\" is not an absolute path");
	f.sc.masked_paths = masked;
	f.sc.readonly_paths = bad;
	f.sc.n_readonly_paths = 1;
	build_err(&f, "readonly_paths[0]");
	fx_free(&f);
}

static void test_no_new_privs(void **state)
{
	struct fx f;

	fx_init(&f);
	build_ok(&f);
	assert_false(jpb(f.spec, "process/noNewPrivileges"));
	f.sc.no_new_privs = 1;
	build_ok(&f);
	assert_true(jpb(f.spec, "process/noNewPrivileges"));
	/* no security context at all */
	f.lc.security_context = NULL;
	build_ok(&f);
	assert_false(jpb(f.spec, "process/noNewPrivileges"));
	assert_string_equal(joined(f.spec, "process/capabilities/bounding"), DEFAULT_CAPS);
	fx_free(&f);
}

/* ---- seccomp ---- */

static const char localhost_profile[] =
	"{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_ERRNO\","
	"\"errnoRet\":13}]}";

static void test_seccomp_runtime_default(void **state)
{
	static char *sys_admin[] = { "SYS_ADMIN" };
	struct fx f;
	json_object *s, *r;

	fx_init(&f);
	f.sc.seccomp = &f.seccomp; /* profile_type 0: RuntimeDefault */
	build_ok(&f);
	s = jp(f.spec, "linux/seccomp");
	assert_non_null(s);
	assert_string_equal(jps(s, "defaultAction"), "SCMP_ACT_ERRNO");
	assert_int_equal(jpi(s, "defaultErrnoRet"), 1);
#if defined(__x86_64__) && !defined(__ILP32__)
	assert_string_equal(joined(s, "architectures"), "SCMP_ARCH_X86_64|SCMP_ARCH_X86|SCMP_ARCH_X32");
	assert_non_null(find_syscall_rule(s, "arch_prctl"));
	assert_null(find_syscall_rule(s, "s390_runtime_instr"));
#endif
	assert_true(has_str(s, "syscalls/0/names", "read"));
	assert_true(has_str(s, "syscalls/0/names", "execve"));
	assert_false(has_str(s, "syscalls/0/names", "mount"));
	assert_null(find_syscall_rule(s, "mount"));
	assert_null(find_syscall_rule(s, "reboot"));
	assert_non_null(find_syscall_rule(s, "chroot")); /* SYS_CHROOT is a default capability */
	/* socket: not AF_VSOCK */
	r = find_syscall_rule(s, "socket");
	assert_non_null(r);
	assert_string_equal(jps(r, "args/0/op"), "SCMP_CMP_NE");
	assert_int_equal(jpi(r, "args/0/value"), 40);
	/* clone only without namespace flags; clone3 answers ENOSYS */
	r = find_syscall_rule(s, "clone");
	assert_non_null(r);
	assert_string_equal(jps(r, "args/0/op"), "SCMP_CMP_MASKED_EQ");
	assert_int_equal(jpi(r, "args/0/value"), 0x7E020000);
	r = find_syscall_rule(s, "clone3");
	assert_string_equal(jps(r, "action"), "SCMP_ACT_ERRNO");
	assert_int_equal(jpi(r, "errnoRet"), 38);
	assert_non_null(find_syscall_rule(s, "personality"));

	/* with CAP_SYS_ADMIN: mount and friends, clone and clone3 unrestricted */
	f.sc.capabilities = &f.caps;
	f.caps.add_capabilities = sys_admin;
	f.caps.n_add_capabilities = 1;
	build_ok(&f);
	s = jp(f.spec, "linux/seccomp");
	r = find_syscall_rule(s, "mount");
	assert_non_null(r);
	assert_true(has_str(r, "names", "clone"));
	assert_true(has_str(r, "names", "clone3"));
	assert_null(jp(r, "args"));
	for (size_t i = 0; i < json_object_array_length(jp(s, "syscalls")); i++) {
		json_object *x = json_object_array_get_idx(jp(s, "syscalls"), i);
		if (has_str(x, "names", "clone3"))
			assert_string_equal(jps(x, "action"), "SCMP_ACT_ALLOW");
	}
	fx_free(&f);
}

static void test_seccomp_profiles(void **state)
{
	struct fx f;
	const char *path;

	fx_init(&f);
	f.sc.seccomp = &f.seccomp;
	f.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined;
	build_ok(&f);
	assert_null(jp(f.spec, "linux/seccomp"));
	assert_int_equal(oci_spec_seccomp_localhost_path(&f.in, &path, f.err, sizeof(f.err)), 0);
	assert_null(path);

	/* Localhost: the caller reads the validated path */
	f.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost;
	f.seccomp.localhost_ref = "/var/lib/kubelet/seccomp/profiles/audit.json";
	assert_int_equal(oci_spec_seccomp_localhost_path(&f.in, &path, f.err, sizeof(f.err)), 0);
	assert_string_equal(path, "/var/lib/kubelet/seccomp/profiles/audit.json");
	build_err(&f, "config.linux.security_context.seccomp.localhost_ref: the contents of profile "
		      "/var/lib/kubelet/seccomp/profiles/audit.json were not provided");
	f.in.localhost_seccomp_json = localhost_profile;
	build_ok(&f);
	assert_string_equal(jps(f.spec, "linux/seccomp/defaultAction"), "SCMP_ACT_ALLOW");
	assert_string_equal(jps(f.spec, "linux/seccomp/syscalls/0/names/0"), "mkdir");
	assert_int_equal(jpi(f.spec, "linux/seccomp/syscalls/0/errnoRet"), 13);
	assert_null(jp(f.spec, "linux/seccomp/architectures"));
	f.seccomp.localhost_ref = "localhost//var/lib/kubelet/seccomp/p.json"; /* prefix trimmed */
	build_ok(&f);
	f.in.localhost_seccomp_json = "{\"defaultAction\":\"SCMP_ACT_BOGUS\"}";
	build_err(&f, "config.linux.security_context.seccomp.localhost_ref (/var/lib/kubelet/seccomp/p.json): "
		      "seccomp profile.defaultAction: unsupported value \"SCMP_ACT_BOGUS\"");
	f.in.localhost_seccomp_json = "not json";
	build_err(&f, "invalid JSON");
	f.in.localhost_seccomp_json = localhost_profile;

	/* bad references */
	{
		static const char *const bad[] = {
			"/etc/shadow", "relative.json", "/var/lib/kubelet/seccomp/../../../etc/passwd",
			"/var/lib/kubelet/seccomp", "/var/lib/kubelet/seccompx/p.json", "", "/var/lib/kubelet/seccomp//p.json",
		};
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			f.seccomp.localhost_ref = (char *)bad[i];
			build_err(&f, "config.linux.security_context.seccomp.localhost_ref");
			assert_int_equal(oci_spec_seccomp_localhost_path(&f.in, &path, f.err, sizeof(f.err)), -EINVAL);
		}
	}
	/* with no root configured any absolute path is allowed */
	f.in.seccomp_profile_root = NULL;
	f.seccomp.localhost_ref = "/etc/criod/seccomp.json";
	build_ok(&f);

	/* localhost_ref only with Localhost */
	f.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault;
	build_err(&f, "seccomp.localhost_ref: only valid with profile_type Localhost");
	f.seccomp.localhost_ref = "";
	f.seccomp.profile_type = 7;
	build_err(&f, "seccomp.profile_type: unknown type 7");
	fx_free(&f);
}

static void set_legacy_seccomp(Runtime__V1__LinuxContainerSecurityContext *sc, const char *v)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	sc->seccomp_profile_path = (char *)v;
#pragma GCC diagnostic pop
}

static void set_legacy_apparmor(Runtime__V1__LinuxContainerSecurityContext *sc, const char *v)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	sc->apparmor_profile = (char *)v;
#pragma GCC diagnostic pop
}

static void test_seccomp_legacy(void **state)
{
	static const struct {
		const char *path;
		const char *want; /* "none", "default", "localhost", or an error */
	} t[] = {
		{ "", "none" },
		{ "unconfined", "none" },
		{ "runtime/default", "default" },
		{ "docker/default", "default" },
		{ "localhost//var/lib/kubelet/seccomp/a.json", "localhost" },
		{ "localhost/a.json", "config.linux.security_context.seccomp_profile_path: \"a.json\" is not a clean absolute path" },
		{ "/var/lib/kubelet/seccomp/a.json", "seccomp_profile_path: unsupported profile" },
		{ "bogus", "seccomp_profile_path: unsupported profile \"bogus\"" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;

		fx_init(&f);
		set_legacy_seccomp(&f.sc, t[i].path);
		f.in.localhost_seccomp_json = localhost_profile;
		if (strcmp(t[i].want, "none") == 0) {
			build_ok(&f);
			assert_null(jp(f.spec, "linux/seccomp"));
		} else if (strcmp(t[i].want, "default") == 0) {
			build_ok(&f);
			assert_string_equal(jps(f.spec, "linux/seccomp/defaultAction"), "SCMP_ACT_ERRNO");
		} else if (strcmp(t[i].want, "localhost") == 0) {
			const char *path;
			build_ok(&f);
			assert_string_equal(jps(f.spec, "linux/seccomp/defaultAction"), "SCMP_ACT_ALLOW");
			assert_int_equal(oci_spec_seccomp_localhost_path(&f.in, &path, f.err, sizeof(f.err)), 0);
			assert_string_equal(path, "/var/lib/kubelet/seccomp/a.json");
		} else
			build_err(&f, t[i].want);
		/* the profile message wins over the string */
		f.sc.seccomp = &f.seccomp;
		f.seccomp.profile_type = RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined;
		build_ok(&f);
		assert_null(jp(f.spec, "linux/seccomp"));
		fx_free(&f);
	}
}

/* oci_seccomp_convert: Docker's format to the OCI object */
static void convert_ok(const char *profile, const char *const *caps, size_t n, const char *arch, json_object **out)
{
	char err[512] = "unset", *json = NULL;
	int r = oci_seccomp_convert(profile, caps, n, arch, &json, err, sizeof(err));

	if (r != 0)
		fail_msg("convert: %d: %s", r, err);
	assert_string_equal(err, "");
	*out = json_tokener_parse(json);
	assert_non_null(*out);
	free(json);
}

static void convert_err(const char *profile, const char *want)
{
	char err[512] = "", *json = (char *)"x";
	int r = oci_seccomp_convert(profile, NULL, 0, "amd64", &json, err, sizeof(err));

	if (r != -EINVAL)
		fail_msg("expected -EINVAL (%s), got %d", want, r);
	assert_null(json);
	if (!strstr(err, want))
		fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

static void test_seccomp_convert(void **state)
{
	static const char profile[] =
		"{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":1,"
		"\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\",\"subArchitectures\":[\"SCMP_ARCH_X86\"]},"
		"{\"architecture\":\"SCMP_ARCH_AARCH64\",\"subArchitectures\":[\"SCMP_ARCH_ARM\"]},"
		"{\"architecture\":\"SCMP_ARCH_RISCV64\",\"subArchitectures\":null}],"
		"\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],"
		"\"syscalls\":["
		"{\"names\":[\"read\",\"write\"],\"action\":\"SCMP_ACT_ALLOW\",\"comment\":\"ignored\"},"
		"{\"name\":\"single\",\"action\":\"SCMP_ACT_LOG\"},"
		"{\"names\":[\"needs_admin\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}},"
		"{\"names\":[\"needs_two\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\",\"CAP_BPF\"]}},"
		"{\"names\":[\"not_admin\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":38,\"excludes\":{\"caps\":[\"CAP_SYS_ADMIN\"]}},"
		"{\"names\":[\"amd64_only\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"amd64\",\"x32\"]}},"
		"{\"names\":[\"not_arm64\"],\"action\":\"SCMP_ACT_ALLOW\",\"excludes\":{\"arches\":[\"arm64\"]}},"
		"{\"names\":[\"newkernel\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":\"5.0\"}},"
		"{\"names\":[\"masked\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
		"{\"index\":1,\"value\":255,\"valueTwo\":4,\"op\":\"SCMP_CMP_MASKED_EQ\"},"
		"{\"index\":5,\"value\":18446744073709551615,\"op\":\"SCMP_CMP_LE\"}]}"
		"]}";
	static const char *const admin[] = { "CAP_SYS_ADMIN" }, *const both[] = { "cap_sys_admin", "BPF" };
	static const char *const unknown[] = { "CAP_NOPE" };
	json_object *o;
	char *json = NULL, err[256];

	convert_ok(profile, NULL, 0, "amd64", &o);
	assert_string_equal(jps(o, "defaultAction"), "SCMP_ACT_ERRNO");
	assert_int_equal(jpi(o, "defaultErrnoRet"), 1);
	assert_string_equal(joined(o, "architectures"), "SCMP_ARCH_X86_64|SCMP_ARCH_X86");
	assert_string_equal(joined(o, "flags"), "SECCOMP_FILTER_FLAG_LOG");
	assert_non_null(find_syscall_rule(o, "read"));
	assert_null(jp(find_syscall_rule(o, "read"), "comment"));
	assert_string_equal(jps(find_syscall_rule(o, "single"), "action"), "SCMP_ACT_LOG");
	assert_null(find_syscall_rule(o, "needs_admin"));
	assert_null(find_syscall_rule(o, "needs_two"));
	assert_int_equal(jpi(find_syscall_rule(o, "not_admin"), "errnoRet"), 38);
	assert_non_null(find_syscall_rule(o, "amd64_only"));
	assert_non_null(find_syscall_rule(o, "not_arm64"));
	assert_non_null(find_syscall_rule(o, "newkernel"));
	{
		json_object *m = find_syscall_rule(o, "masked");
		assert_int_equal(jpi(m, "args/0/index"), 1);
		assert_int_equal(jpi(m, "args/0/value"), 255);
		assert_int_equal(jpi(m, "args/0/valueTwo"), 4);
		assert_string_equal(jps(m, "args/0/op"), "SCMP_CMP_MASKED_EQ");
		assert_int_equal(jpi(m, "args/1/index"), 5);
		assert_true(json_object_get_uint64(jp(m, "args/1/value")) == UINT64_MAX);
		assert_null(jp(m, "args/1/valueTwo"));
	}
	json_object_put(o);

	/* capabilities: every includes.caps, no excludes.caps */
	convert_ok(profile, admin, 1, "amd64", &o);
	assert_non_null(find_syscall_rule(o, "needs_admin"));
	assert_null(find_syscall_rule(o, "needs_two"));
	assert_null(find_syscall_rule(o, "not_admin"));
	json_object_put(o);
	convert_ok(profile, both, 2, "amd64", &o);
	assert_non_null(find_syscall_rule(o, "needs_two"));
	json_object_put(o);

	/* another architecture */
	convert_ok(profile, NULL, 0, "arm64", &o);
	assert_string_equal(joined(o, "architectures"), "SCMP_ARCH_AARCH64|SCMP_ARCH_ARM");
	assert_null(find_syscall_rule(o, "amd64_only"));
	assert_null(find_syscall_rule(o, "not_arm64"));
	json_object_put(o);
	convert_ok(profile, NULL, 0, "riscv64", &o);
	assert_string_equal(joined(o, "architectures"), "SCMP_ARCH_RISCV64");
	json_object_put(o);
	convert_ok(profile, NULL, 0, "s390x", &o); /* not in the map: the native one only (runc's default) */
	assert_null(jp(o, "architectures"));
	json_object_put(o);

	/* the old "architectures" list is taken as it is */
	convert_ok("{\"defaultAction\":\"SCMP_ACT_KILL_PROCESS\",\"architectures\":[\"SCMP_ARCH_X86_64\"]}", NULL, 0,
		   NULL, &o);
	assert_string_equal(joined(o, "architectures"), "SCMP_ARCH_X86_64");
	assert_int_equal(json_object_array_length(jp(o, "syscalls")), 0);
	json_object_put(o);

	/* the built-in profile converts with the default capabilities */
	assert_int_equal(oci_seccomp_from_profile(oci_default_seccomp_profile, &json, err, sizeof(err)), 0);
	o = json_tokener_parse(json);
	assert_non_null(o);
	assert_non_null(find_syscall_rule(o, "chroot"));
	assert_non_null(find_syscall_rule(o, "ptrace")); /* minKernel 4.8: taken as met */
	assert_null(find_syscall_rule(o, "kcmp"));       /* needs CAP_SYS_PTRACE */
	json_object_put(o);
	free(json);

	assert_int_equal(oci_seccomp_convert(profile, unknown, 1, "amd64", &json, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown capability \"CAP_NOPE\""));
	assert_int_equal(oci_seccomp_convert(profile, NULL, 0, "vax", &json, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unsupported architecture \"vax\""));
	assert_int_equal(oci_seccomp_from_profile(profile, NULL, err, sizeof(err)), -EINVAL);

	/* bad profiles */
	convert_err("", "invalid JSON");
	convert_err("[]", "not a JSON object");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\"} x", "seccomp profile: invalid JSON");
	convert_err("{}", "seccomp profile.defaultAction: missing");
	convert_err("{\"defaultAction\":1}", "defaultAction: not a string");
	convert_err("{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}", "defaultAction: unsupported value \"SCMP_ACT_NOTIFY\"");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":-1}", "defaultErrnoRet: not an errno");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
		    "\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\"}]}",
		    "both architectures and archMap");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_VAX\"]}",
		    "architectures[0]: unknown \"SCMP_ARCH_VAX\"");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\","
		    "\"subArchitectures\":[\"nope\"]}]}",
		    "archMap[0].subArchitectures[0]");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_NEW_LISTENER\"]}",
		    "flags[0]: unsupported");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"listenerPath\":\"/run/agent.sock\"}",
		    "seccomp notification is not supported");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":{}}", "syscalls: not an array");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[1]}", "syscalls[0]: not an object");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"action\":\"SCMP_ACT_ALLOW\"}]}",
		    "syscalls[0].names: empty");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"name\":\"a\",\"names\":[\"b\"],"
		    "\"action\":\"SCMP_ACT_ALLOW\"}]}",
		    "both name and names");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"Bad-Name\"],"
		    "\"action\":\"SCMP_ACT_ALLOW\"}]}",
		    "names[0]: invalid syscall name");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"]}]}",
		    "syscalls[0].action: missing");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":"
		    "\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
		    "syscalls[0].args[0].index: want 0..5");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":"
		    "\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_LIKE\"}]}]}",
		    "args[0].op: unsupported value");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":"
		    "\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":-1,\"op\":\"SCMP_CMP_EQ\"}]}]}",
		    "args[0].value: not an unsigned integer");
	/* a rule that does not apply is still validated */
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":"
		    "\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":[\"CAP_SYS_ADMIN\"]},\"args\":[{\"index\":9,\"op\":\"SCMP_CMP_EQ\"}]}]}",
		    "args[0].index");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":"
		    "\"SCMP_ACT_ALLOW\",\"includes\":{\"caps\":\"CAP_SYS_ADMIN\"}}]}",
		    "includes.caps: not an array of strings");
	convert_err("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"read\"],\"action\":"
		    "\"SCMP_ACT_ALLOW\",\"errnoRet\":99999}]}",
		    "errnoRet: not an errno value");
	{
		/* deep nesting and oversized documents are refused, not a crash */
		size_t n = 5 << 20;
		char *big = malloc(n + 1);
		assert_non_null(big);
		memset(big, '[', n);
		big[n] = '\0';
		convert_err(big, "document too large");
		big[1000] = '\0';
		convert_err(big, "invalid JSON");
		free(big);
	}
}

/* ---- AppArmor ---- */

static void test_apparmor(void **state)
{
	enum { MSG_NONE = -1 };
	static const struct {
		bool enabled;
		int type; /* MSG_NONE: no message */
		const char *ref;
		const char *legacy;
		bool privileged;
		const char *want; /* the profile, "" for none, or an error */
		bool error;
	} t[] = {
		{ true, MSG_NONE, "", "", false, OCI_APPARMOR_DEFAULT_PROFILE, false },
		{ true, 0, "", "", false, OCI_APPARMOR_DEFAULT_PROFILE, false },
		{ true, 0, "", "", true, "", false },
		{ true, 1, "", "", false, "", false },
		{ true, 2, "k8s-apparmor-example", "", false, "k8s-apparmor-example", false },
		{ true, 2, "localhost/prof", "", false, "prof", false },
		{ true, 2, "", "", false, "config.linux.security_context.apparmor: invalid profile name", true },
		{ true, 2, "bad name", "", false, "invalid profile name", true },
		{ true, 0, "x", "", false, "apparmor.localhost_ref: only valid with profile_type Localhost", true },
		{ true, 9, "", "", false, "apparmor.profile_type: unknown type 9", true },
		{ true, MSG_NONE, "", "runtime/default", false, OCI_APPARMOR_DEFAULT_PROFILE, false },
		{ true, MSG_NONE, "", "unconfined", false, "", false },
		{ true, MSG_NONE, "", "localhost/legacy-prof", false, "legacy-prof", false },
		{ true, MSG_NONE, "", "weird", false, "apparmor_profile: unsupported profile \"weird\"", true },
		/* AppArmor off: RuntimeDefault and Unconfined are nothing, Localhost an error */
		{ false, MSG_NONE, "", "", false, "", false },
		{ false, 0, "", "", false, "", false },
		{ false, 1, "", "", false, "", false },
		{ false, 2, "prof", "", false, "config.linux.security_context.apparmor: AppArmor is not enabled on this host",
		  true },
		{ false, MSG_NONE, "", "localhost/prof", false, "apparmor_profile: AppArmor is not enabled on this host", true },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;

		fx_init(&f);
		f.in.apparmor_enabled = t[i].enabled;
		if (t[i].type != MSG_NONE) {
			f.sc.apparmor = &f.apparmor;
			f.apparmor.profile_type = t[i].type;
			f.apparmor.localhost_ref = (char *)t[i].ref;
		}
		set_legacy_apparmor(&f.sc, t[i].legacy);
		f.sc.privileged = t[i].privileged;
		f.pod_sc.privileged = t[i].privileged;
		if (t[i].error)
			build_err(&f, t[i].want);
		else {
			json_object *p;
			build_ok(&f);
			p = jp(f.spec, "process/apparmorProfile");
			if (strcmp(p ? json_object_get_string(p) : "", t[i].want) != 0)
				fail_msg("case %zu: profile \"%s\", want \"%s\"", i, p ? json_object_get_string(p) : "",
					 t[i].want);
		}
		fx_free(&f);
	}
}

/* ---- sysctls ---- */

static void test_sysctls(void **state)
{
	static const struct {
		const char *key, *value;
		bool host_net, host_ipc;
		const char *want; /* the spec's key, or an error */
		bool error;
	} t[] = {
		{ "net.ipv4.ip_forward", "1", false, false, "net.ipv4.ip_forward", false },
		{ "net.core.somaxconn", "1024", false, false, "net.core.somaxconn", false },
		{ "kernel.shmmax", "1000", false, false, "kernel.shmmax", false },
		{ "kernel.shm_rmid_forced", "1", false, false, "kernel.shm_rmid_forced", false },
		{ "kernel.msgmax", "9", false, false, "kernel.msgmax", false },
		{ "kernel.sem", "250 32000 100 128", false, false, "kernel.sem", false },
		{ "fs.mqueue.msg_max", "20", false, false, "fs.mqueue.msg_max", false },
		{ "net/ipv4/conf/eth0.100/rp_filter", "2", false, false, "net.ipv4.conf.eth0/100.rp_filter", false },
		{ "kernel/msgmnb", "5", false, false, "kernel.msgmnb", false },
		/* not namespaced */
		{ "kernel.hostname", "x", false, false,
		  "pod_config.linux.sysctls[\"kernel.hostname\"]: not a namespaced sysctl", true },
		{ "vm.swappiness", "1", false, false, "sysctls[\"vm.swappiness\"]: not a namespaced sysctl", true },
		{ "kernel.semx", "1", false, false, "not a namespaced sysctl", true },
		{ "fs.mqueue", "1", false, false, "not a namespaced sysctl", true },
		/* namespaced, but the pod uses the host's namespace */
		{ "net.ipv4.ip_forward", "1", true, false, "not allowed with the host's network namespace", true },
		{ "kernel.shmmax", "1", false, true, "not allowed with the host's IPC namespace", true },
		{ "net.ipv4.ip_forward", "1", false, true, "net.ipv4.ip_forward", false },
		/* malformed */
		{ "", "1", false, false, "invalid name", true },
		{ "net..x", "1", false, false, "invalid name", true },
		{ "net.ipv4.$x", "1", false, false, "invalid name", true },
		{ "net.ipv4.x", "a\nb", false, false, "invalid value", true },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;
		Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry e = RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__SYSCTLS_ENTRY__INIT;
		Runtime__V1__LinuxPodSandboxConfig__SysctlsEntry *ev[] = { &e };

		fx_init(&f);
		e.key = (char *)t[i].key;
		e.value = (char *)t[i].value;
		f.pod_linux.sysctls = ev;
		f.pod_linux.n_sysctls = 1;
		if (t[i].host_net)
			f.pod.netns_path = "";
		if (t[i].host_ipc) {
			f.pod.ipc_ns = "";
			f.pod.shm_path = "";
		}
		if (t[i].error)
			build_err(&f, t[i].want);
		else {
			json_object *o;
			build_ok(&f);
			o = jp(f.spec, "linux/sysctl");
			assert_int_equal(json_object_object_length(o), 1);
			if (!json_object_object_get_ex(o, t[i].want, &o))
				fail_msg("case %zu: no sysctl %s in %s", i, t[i].want, f.out.json);
			assert_string_equal(json_object_get_string(o), t[i].value);
		}
		fx_free(&f);
	}
}

/* ---- namespaces ---- */

static void test_namespaces(void **state)
{
	Runtime__V1__UserNamespace userns = RUNTIME__V1__USER_NAMESPACE__INIT;
	Runtime__V1__IDMapping map = RUNTIME__V1__IDMAPPING__INIT, *maps[] = { &map };
	struct fx f;

	fx_init(&f);
	build_ok(&f);
	/* pid POD, the pod's network, IPC, UTS; a new mount namespace; no
	 * cgroup namespace on v1 */
	assert_int_equal(json_object_array_length(jp(f.spec, "linux/namespaces")), 5);
	assert_string_equal(jps(find_ns(f.spec, "pid"), "path"), "/run/criod/pods/p/ns/pid");
	assert_string_equal(jps(find_ns(f.spec, "network"), "path"), "/run/criod/netns/pod");
	assert_string_equal(jps(find_ns(f.spec, "ipc"), "path"), "/run/criod/pods/p/ns/ipc");
	assert_string_equal(jps(find_ns(f.spec, "uts"), "path"), "/run/criod/pods/p/ns/uts");
	assert_non_null(find_ns(f.spec, "mount"));
	assert_null(jp(find_ns(f.spec, "mount"), "path"));
	assert_null(find_ns(f.spec, "cgroup"));
	assert_null(find_ns(f.spec, "user"));
	assert_null(jp(f.spec, "hostname")); /* the pod's UTS namespace has it */

	f.pod.cgroup_v2 = true;
	build_ok(&f);
	assert_non_null(find_ns(f.spec, "cgroup"));
	assert_null(jp(find_ns(f.spec, "cgroup"), "path"));

	/* pid modes */
	f.ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
	build_ok(&f);
	assert_non_null(find_ns(f.spec, "pid"));
	assert_null(jp(find_ns(f.spec, "pid"), "path"));
	f.ns.pid = RUNTIME__V1__NAMESPACE_MODE__NODE;
	build_ok(&f);
	assert_null(find_ns(f.spec, "pid"));
	f.ns.pid = RUNTIME__V1__NAMESPACE_MODE__TARGET;
	build_err(&f, "config.linux.security_context.namespace_options.target_id: required with pid mode TARGET");
	f.ns.target_id = "abcdef";
	build_err(&f, "namespace_options.target_id: the PID namespace of container \"abcdef\" is not known");
	f.in.target_pid_ns = "/proc/1234/ns/pid";
	build_ok(&f);
	assert_string_equal(jps(find_ns(f.spec, "pid"), "path"), "/proc/1234/ns/pid");
	f.ns.pid = RUNTIME__V1__NAMESPACE_MODE__POD;
	f.pod.pid_ns = "";
	build_err(&f, "namespace_options.pid: POD, but the pod has no PID namespace to share");
	f.ns.pid = 42;
	build_err(&f, "namespace_options.pid: unknown mode 42");
	f.ns.pid = RUNTIME__V1__NAMESPACE_MODE__CONTAINER;

	/* host network, IPC, UTS: no entry */
	f.pod.netns_path = "";
	f.pod.ipc_ns = "";
	f.pod.uts_ns = "";
	f.pod.shm_path = "";
	build_ok(&f);
	assert_null(find_ns(f.spec, "network"));
	assert_null(find_ns(f.spec, "ipc"));
	assert_null(find_ns(f.spec, "uts"));
	assert_null(jp(f.spec, "hostname"));

	/* no namespace_options at all: pid POD */
	f.pod.pid_ns = "/run/x/pid";
	f.sc.namespace_options = NULL;
	build_ok(&f);
	assert_string_equal(jps(find_ns(f.spec, "pid"), "path"), "/run/x/pid");
	f.pod.netns_path = "relative/netns";
	build_err(&f, "pod.netns_path");
	f.pod.netns_path = "";

	/* user namespaces are not supported */
	f.sc.namespace_options = &f.ns;
	f.ns.userns_options = &userns;
	userns.mode = RUNTIME__V1__NAMESPACE_MODE__NODE;
	build_ok(&f);
	userns.mode = RUNTIME__V1__NAMESPACE_MODE__POD;
	build_ok(&f); /* POD without mappings: the field's default */
	userns.uids = maps;
	userns.n_uids = 1;
	build_err(&f, "namespace_options.userns_options: user namespaces are not supported");
	fx_free(&f);
}

/* ---- mounts ---- */

static Runtime__V1__Mount mk_mount(const char *dst, const char *src, bool ro, Runtime__V1__MountPropagation prop)
{
	Runtime__V1__Mount m = RUNTIME__V1__MOUNT__INIT;

	m.container_path = (char *)dst;
	m.host_path = (char *)src;
	m.readonly = ro;
	m.propagation = prop;
	return m;
}

static void test_mounts_default(void **state)
{
	struct fx f;
	json_object *m;

	fx_init(&f);
	build_ok(&f);
	assert_int_equal(json_object_array_length(jp(f.spec, "mounts")), 10);
	m = find_mount(f.spec, "/proc");
	assert_string_equal(jps(m, "type"), "proc");
	assert_string_equal(joined(m, "options"), "nosuid|noexec|nodev");
	m = find_mount(f.spec, "/dev");
	assert_string_equal(jps(m, "type"), "tmpfs");
	assert_string_equal(joined(m, "options"), "nosuid|strictatime|mode=755|size=65536k");
	m = find_mount(f.spec, "/dev/pts");
	assert_string_equal(jps(m, "type"), "devpts");
	assert_string_equal(joined(m, "options"), "nosuid|noexec|newinstance|ptmxmode=0666|mode=0620|gid=5");
	m = find_mount(f.spec, "/dev/mqueue");
	assert_string_equal(jps(m, "type"), "mqueue");
	m = find_mount(f.spec, "/sys");
	assert_string_equal(jps(m, "type"), "sysfs");
	assert_string_equal(joined(m, "options"), "nosuid|noexec|nodev|ro");
	m = find_mount(f.spec, "/sys/fs/cgroup");
	assert_string_equal(jps(m, "type"), "cgroup");
	assert_string_equal(joined(m, "options"), "nosuid|noexec|nodev|relatime|ro");
	/* the pod's shm and files */
	m = find_mount(f.spec, "/dev/shm");
	assert_string_equal(jps(m, "type"), "bind");
	assert_string_equal(jps(m, "source"), "/run/criod/pods/p/shm");
	assert_string_equal(joined(m, "options"), "rbind|rprivate|nosuid|noexec|nodev|rw");
	assert_string_equal(jps(find_mount(f.spec, "/etc/hostname"), "source"), "/var/lib/criod/pods/p/hostname");
	assert_string_equal(jps(find_mount(f.spec, "/etc/hosts"), "source"), "/var/lib/criod/pods/p/hosts");
	m = find_mount(f.spec, "/etc/resolv.conf");
	assert_string_equal(jps(m, "source"), "/var/lib/criod/pods/p/resolv.conf");
	assert_string_equal(joined(m, "options"), "rbind|rprivate|rw");
	/* defaults before the binds */
	assert_true(mount_index(f.spec, "/sys/fs/cgroup") < mount_index(f.spec, "/etc/hostname"));
	assert_true(mount_index(f.spec, "/dev") < mount_index(f.spec, "/dev/shm"));

	/* a host-IPC pod gets the host's /dev/shm */
	f.pod.ipc_ns = "";
	f.pod.shm_path = "";
	build_ok(&f);
	m = find_mount(f.spec, "/dev/shm");
	assert_string_equal(jps(m, "type"), "bind");
	assert_string_equal(jps(m, "source"), "/dev/shm");
	/* an IPC namespace without a pod shm: a tmpfs of its own */
	f.pod.ipc_ns = "/run/criod/pods/p/ns/ipc";
	build_ok(&f);
	m = find_mount(f.spec, "/dev/shm");
	assert_string_equal(jps(m, "type"), "tmpfs");
	assert_string_equal(jps(m, "source"), "shm");
	assert_string_equal(joined(m, "options"), "nosuid|noexec|nodev|mode=1777|size=65536k");
	/* no pod files: no binds */
	f.pod.hostname_path = NULL;
	f.pod.hosts_path = "";
	f.pod.resolv_path = "";
	build_ok(&f);
	assert_null(find_mount(f.spec, "/etc/hostname"));
	assert_null(find_mount(f.spec, "/etc/hosts"));
	f.pod.hosts_path = "relative/hosts";
	build_err(&f, "pod.hosts_path");
	fx_free(&f);
}

static void test_mounts_cri(void **state)
{
	Runtime__V1__Mount m[6];
	Runtime__V1__Mount *mv[6];
	struct fx f;
	json_object *o;

	fx_init(&f);
	m[0] = mk_mount("/data/deep/er", "/srv/c", false, RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE);
	m[1] = mk_mount("/data", "/srv/a", true, RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER);
	m[2] = mk_mount("/etc/hosts", "/srv/hosts", true, RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE);
	m[3] = mk_mount("/proc", "/srv/proc", false, RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE);
	m[4] = mk_mount("/data/deep", "/srv/b", false, RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE);
	m[4].selinux_relabel = 1; /* accepted, no SELinux */
	for (size_t i = 0; i < 5; i++)
		mv[i] = &m[i];
	f.cfg.mounts = mv;
	f.cfg.n_mounts = 5;
	build_ok(&f);
	o = find_mount(f.spec, "/data");
	assert_string_equal(jps(o, "type"), "bind");
	assert_string_equal(jps(o, "source"), "/srv/a");
	assert_string_equal(joined(o, "options"), "rbind|rslave|ro");
	assert_string_equal(joined(find_mount(f.spec, "/data/deep/er"), "options"), "rbind|rprivate|rw");
	assert_string_equal(jps(f.spec, "linux/rootfsPropagation"), "rslave");
	/* a CRI mount replaces the default or the pod's one */
	assert_string_equal(jps(find_mount(f.spec, "/etc/hosts"), "source"), "/srv/hosts");
	assert_string_equal(jps(find_mount(f.spec, "/proc"), "type"), "bind");
	{
		int n = 0;
		json_object *a = jp(f.spec, "mounts");
		for (size_t i = 0; i < json_object_array_length(a); i++)
			n += strcmp(jps(json_object_array_get_idx(a, i), "destination"), "/etc/hosts") == 0;
		assert_int_equal(n, 1);
	}
	/* shallower first: /data, /data/deep, /data/deep/er */
	assert_true(mount_index(f.spec, "/data") < mount_index(f.spec, "/data/deep"));
	assert_true(mount_index(f.spec, "/data/deep") < mount_index(f.spec, "/data/deep/er"));

	/* bidirectional: rshared, and the root follows */
	m[0].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
	build_ok(&f);
	assert_string_equal(joined(find_mount(f.spec, "/data/deep/er"), "options"), "rbind|rshared|rw");
	assert_string_equal(jps(f.spec, "linux/rootfsPropagation"), "rshared");
	m[1].propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE;
	build_ok(&f);
	assert_string_equal(jps(f.spec, "linux/rootfsPropagation"), "rshared");

	/* a CRI /dev takes every default under /dev with it */
	m[5] = mk_mount("/dev", "/srv/dev", false, RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE);
	mv[5] = &m[5];
	f.cfg.n_mounts = 6;
	build_ok(&f);
	assert_null(find_mount(f.spec, "/dev/pts"));
	assert_null(find_mount(f.spec, "/dev/mqueue"));
	assert_string_equal(jps(find_mount(f.spec, "/dev"), "source"), "/srv/dev");
	assert_non_null(find_mount(f.spec, "/dev/shm")); /* the pod's shm still goes on top */
	assert_true(mount_index(f.spec, "/dev") < mount_index(f.spec, "/dev/shm"));
	fx_free(&f);
}

static void test_mounts_invalid(void **state)
{
	Runtime__V1__ImageSpec img = RUNTIME__V1__IMAGE_SPEC__INIT;
	Runtime__V1__IDMapping map = RUNTIME__V1__IDMAPPING__INIT, *maps[] = { &map };
	static const struct {
		const char *dst, *src;
		const char *want;
	} t[] = {
		{ "data", "/srv", "config.mounts[1].container_path: \"data\" is not a clean absolute path" },
		{ "/data/../etc", "/srv", "config.mounts[1].container_path" },
		{ "/data/", "/srv", "config.mounts[1].container_path" },
		{ "/data//x", "/srv", "config.mounts[1].container_path" },
		{ "/data/./x", "/srv", "config.mounts[1].container_path" },
		{ "/", "/srv", "config.mounts[1].container_path" },
		{ "", "/srv", "config.mounts[1].container_path" },
		{ "/data", "srv", "config.mounts[1].host_path: \"srv\" is not an absolute path" },
		{ "/data", "", "config.mounts[1].host_path" },
		{ "/ok", "/srv", "config.mounts[1].container_path: \"/ok\" is mounted twice" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;
		Runtime__V1__Mount m[2], *mv[2] = { &m[0], &m[1] };

		fx_init(&f);
		m[0] = mk_mount("/ok", "/srv/ok", false, 0);
		m[1] = mk_mount(t[i].dst, t[i].src, false, 0);
		f.cfg.mounts = mv;
		f.cfg.n_mounts = 2;
		build_err(&f, t[i].want);
		fx_free(&f);
	}
	{
		struct fx f;
		Runtime__V1__Mount m = mk_mount("/ok", "/srv/ok", false, 0), *mv[] = { &m };

		fx_init(&f);
		f.cfg.mounts = mv;
		f.cfg.n_mounts = 1;
		m.propagation = 5;
		build_err(&f, "config.mounts[0].propagation: unknown propagation 5");
		m.propagation = 0;
		/* recursive read-only: only with readonly and private propagation */
		m.recursive_read_only = 1;
		m.readonly = 0;
		build_err(&f, "config.mounts[0].recursive_read_only needs readonly");
		m.readonly = 1;
		m.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER;
		build_err(&f, "config.mounts[0].recursive_read_only needs propagation PROPAGATION_PRIVATE");
		m.propagation = RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL;
		build_err(&f, "config.mounts[0].recursive_read_only needs propagation PROPAGATION_PRIVATE");
		m.propagation = 0;
		build_ok(&f);
		assert_true(has_str(find_mount(f.spec, "/ok"), "options", "rro"));
		assert_true(has_str(find_mount(f.spec, "/ok"), "options", "ro"));
		m.recursive_read_only = 0;
		m.readonly = 0;
		m.uidmappings = maps;
		m.n_uidmappings = 1;
		build_err(&f, "config.mounts[0].uidMappings: ID-mapped mounts are not supported");
		m.n_uidmappings = 0;
		img.image = "docker.io/library/data:1";
		m.image = &img;
		m.host_path = "";
		build_err(&f, "config.mounts[0].image: image volume mounts are not supported");
		fx_free(&f);
	}
}

/* ---- devices ---- */

static void test_devices(void **state)
{
	Runtime__V1__Device d[2] = { RUNTIME__V1__DEVICE__INIT, RUNTIME__V1__DEVICE__INIT };
	Runtime__V1__Device *dv[] = { &d[0], &d[1] };
	struct oci_device res[3] = {
		{ "/dev/fuse", 'c', 10, 229, 0666, 0, 0, NULL },
		{ "/dev/xvda", 'b', 202, 0, 0660, 0, 6, NULL },
		{ "/dev/extra", 'c', 1, 11, 0600, 0, 0, "rw" },
	};
	struct fx f;
	json_object *rules;

	fx_init(&f);
	build_ok(&f);
	/* deny all, then runc's standard set */
	rules = jp(f.spec, "linux/resources/devices");
	assert_int_equal(json_object_array_length(rules), 12);
	assert_false(jpb(rules, "0/allow"));
	assert_string_equal(jps(rules, "0/access"), "rwm");
	assert_null(jp(rules, "0/type"));
	assert_string_equal(jps(rules, "1/type"), "c");
	assert_null(jp(rules, "1/major"));
	assert_string_equal(jps(rules, "1/access"), "m");
	assert_int_equal(jpi(rules, "3/major"), 1); /* /dev/null */
	assert_int_equal(jpi(rules, "3/minor"), 3);
	assert_int_equal(jpi(rules, "11/major"), 136); /* pts */
	assert_null(jp(rules, "11/minor"));

	d[0].container_path = "/dev/fuse";
	d[0].host_path = "/dev/fuse";
	d[0].permissions = "rwm";
	d[1].container_path = "/dev/xvda";
	d[1].host_path = "/dev/xvda";
	d[1].permissions = "r";
	f.cfg.devices = dv;
	f.cfg.n_devices = 2;
	build_err(&f, "config.devices[0]: not resolved");
	f.in.devices = res;
	f.in.n_devices = 1;
	build_err(&f, "config.devices[1]: not resolved");
	f.in.n_devices = 3;
	build_ok(&f);
	assert_int_equal(json_object_array_length(jp(f.spec, "linux/devices")), 3);
	assert_string_equal(jps(f.spec, "linux/devices/0/path"), "/dev/fuse");
	assert_string_equal(jps(f.spec, "linux/devices/0/type"), "c");
	assert_int_equal(jpi(f.spec, "linux/devices/0/major"), 10);
	assert_int_equal(jpi(f.spec, "linux/devices/0/minor"), 229);
	assert_int_equal(jpi(f.spec, "linux/devices/0/fileMode"), 0666);
	assert_string_equal(jps(f.spec, "linux/devices/1/type"), "b");
	assert_int_equal(jpi(f.spec, "linux/devices/1/gid"), 6);
	rules = jp(f.spec, "linux/resources/devices");
	assert_int_equal(json_object_array_length(rules), 15);
	assert_true(jpb(rules, "12/allow"));
	assert_int_equal(jpi(rules, "12/major"), 10);
	assert_int_equal(jpi(rules, "12/minor"), 229);
	assert_string_equal(jps(rules, "12/access"), "rwm");
	assert_string_equal(jps(rules, "13/type"), "b");
	assert_string_equal(jps(rules, "13/access"), "r"); /* config.devices[1].permissions */
	assert_string_equal(jps(rules, "14/access"), "rw");

	/* the resolved list must match config.devices */
	res[1].path = "/dev/other";
	build_err(&f, "config.devices[1]: resolved as \"/dev/other\", not \"/dev/xvda\"");
	res[1].path = "/dev/xvda";
	d[1].permissions = "rwx";
	build_err(&f, "config.devices[1].permissions: \"rwx\" is not a subset of \"rwm\"");
	d[1].permissions = "rr";
	build_err(&f, "config.devices[1].permissions");
	d[1].permissions = "";
	build_ok(&f);
	assert_string_equal(jps(f.spec, "linux/resources/devices/13/access"), "rwm");
	d[1].container_path = "dev/xvda";
	build_err(&f, "config.devices[1].container_path");
	d[1].container_path = "/dev/xvda";
	d[1].host_path = "xvda";
	build_err(&f, "config.devices[1].host_path");
	d[1].host_path = "/dev/xvda";
	res[2].type = 'x';
	build_err(&f, "devices[2].type");
	res[2].type = 'c';
	res[2].major = -1;
	build_err(&f, "devices[2]: invalid major/minor");
	res[2].major = 1;

	/* privileged: the nodes, and every device allowed */
	f.sc.privileged = 1;
	f.pod_sc.privileged = 1;
	build_ok(&f);
	assert_int_equal(json_object_array_length(jp(f.spec, "linux/devices")), 3);
	assert_int_equal(json_object_array_length(jp(f.spec, "linux/resources/devices")), 1);
	fx_free(&f);
}

/* ---- resources ---- */

static void test_resources(void **state)
{
	Runtime__V1__HugepageLimit h[2] = { RUNTIME__V1__HUGEPAGE_LIMIT__INIT, RUNTIME__V1__HUGEPAGE_LIMIT__INIT };
	Runtime__V1__HugepageLimit *hv[] = { &h[0], &h[1] };
	Runtime__V1__LinuxContainerResources__UnifiedEntry u = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__UNIFIED_ENTRY__INIT;
	Runtime__V1__LinuxContainerResources__UnifiedEntry *uv[] = { &u };
	struct fx f;

	fx_init(&f);
	build_ok(&f);
	assert_null(jp(f.spec, "linux/resources/memory"));
	assert_null(jp(f.spec, "linux/resources/cpu"));
	f.res.cpu_shares = 512;
	f.res.cpu_quota = 50000;
	f.res.cpu_period = 100000;
	f.res.cpuset_cpus = "0-1,3";
	f.res.cpuset_mems = "0";
	f.res.memory_limit_in_bytes = 128 << 20;
	h[0].page_size = "2MB";
	h[0].limit = 4 << 20;
	h[1].page_size = "1GB";
	h[1].limit = 0;
	f.res.hugepage_limits = hv;
	f.res.n_hugepage_limits = 2;
	build_ok(&f);
	assert_int_equal(jpi(f.spec, "linux/resources/cpu/shares"), 512);
	assert_int_equal(jpi(f.spec, "linux/resources/cpu/quota"), 50000);
	assert_int_equal(jpi(f.spec, "linux/resources/cpu/period"), 100000);
	assert_string_equal(jps(f.spec, "linux/resources/cpu/cpus"), "0-1,3");
	assert_string_equal(jps(f.spec, "linux/resources/cpu/mems"), "0");
	assert_int_equal(jpi(f.spec, "linux/resources/memory/limit"), 128 << 20);
	assert_null(jp(f.spec, "linux/resources/memory/swap"));
	assert_string_equal(jps(f.spec, "linux/resources/hugepageLimits/0/pageSize"), "2MB");
	assert_int_equal(jpi(f.spec, "linux/resources/hugepageLimits/0/limit"), 4 << 20);
	assert_string_equal(jps(f.spec, "linux/resources/hugepageLimits/1/pageSize"), "1GB");
	assert_null(jp(f.spec, "linux/resources/unified"));
	f.res.memory_swap_limit_in_bytes = 256 << 20;
	build_ok(&f);
	assert_int_equal(jpi(f.spec, "linux/resources/memory/swap"), 256 << 20);
	f.res.memory_swap_limit_in_bytes = -1;
	build_ok(&f);
	assert_int_equal(jpi(f.spec, "linux/resources/memory/swap"), -1);

	/* unified: cgroup v2 only */
	u.key = "memory.high";
	u.value = "100000000";
	f.res.unified = uv;
	f.res.n_unified = 1;
	build_err(&f, "config.linux.resources.unified: cgroup v2 settings, but this host uses cgroup v1");
	f.pod.cgroup_v2 = true;
	build_ok(&f);
	assert_string_equal(jps(f.spec, "linux/resources/unified/memory.high"), "100000000");
	u.key = "../../etc/passwd";
	build_err(&f, "config.linux.resources.unified[\"../../etc/passwd\"]: not a cgroup v2 file name");
	u.key = "memory.high";
	u.value = "1\n2";
	build_err(&f, "unified[\"memory.high\"]: invalid value");
	f.res.n_unified = 0;

	/* bad values */
	{
		static const struct {
			int field;
			int64_t v;
			const char *want;
		} t[] = {
			{ 0, -1, "config.linux.resources.cpu_shares: -1 is out of range" },
			{ 1, -2, "config.linux.resources.cpu_quota: -2 is invalid" },
			{ 1, 999, "cpu_quota: 999 is invalid" },
			{ 2, 999, "config.linux.resources.cpu_period: 999 is out of range" },
			{ 2, 1000001, "cpu_period" },
			{ 3, -5, "config.linux.resources.memory_limit_in_bytes: negative" },
			{ 4, -2, "config.linux.resources.memory_swap_limit_in_bytes" },
			{ 4, 1 << 20, "memory_swap_limit_in_bytes: less than memory_limit_in_bytes" },
			{ 5, 1001, "config.linux.resources.oom_score_adj: 1001 is out of range [-1000, 1000]" },
			{ 5, -1001, "oom_score_adj: -1001 is out of range" },
		};
		for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
			Runtime__V1__LinuxContainerResources saved = f.res;
			int64_t *fields[] = { &f.res.cpu_shares, &f.res.cpu_quota, &f.res.cpu_period,
					      &f.res.memory_limit_in_bytes, &f.res.memory_swap_limit_in_bytes,
					      &f.res.oom_score_adj };
			*fields[t[i].field] = t[i].v;
			build_err(&f, t[i].want);
			f.res = saved;
		}
	}
	f.res.cpu_quota = -1; /* unlimited */
	build_ok(&f);
	assert_int_equal(jpi(f.spec, "linux/resources/cpu/quota"), -1);
	f.res.cpuset_cpus = "0-1;rm";
	build_err(&f, "config.linux.resources.cpuset_cpus: invalid CPU list");
	f.res.cpuset_cpus = "";
	f.res.cpuset_mems = "x";
	build_err(&f, "cpuset_mems");
	f.res.cpuset_mems = "";
	h[1].page_size = "huge";
	build_err(&f, "config.linux.resources.hugepage_limits[1].page_size: \"huge\" is not a page size");
	h[1].page_size = "2MB";
	build_err(&f, "hugepage_limits[1].page_size: 2MB given twice");
	fx_free(&f);
}

static void test_oom_score_adj(void **state)
{
	static const struct {
		int64_t want_in, min, applied;
	} t[] = {
		{ 0, -1000, 0 }, { 500, -1000, 500 }, { -998, -1000, -998 }, { -998, -500, -500 },
		{ 1000, 0, 1000 }, { -1000, -2000, -1000 }, { 100, 2000, 1000 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;

		fx_init(&f);
		f.res.oom_score_adj = t[i].want_in;
		f.in.oom_score_adj_min = t[i].min;
		build_ok(&f);
		assert_int_equal(jpi(f.spec, "process/oomScoreAdj"), t[i].applied);
		assert_int_equal(f.out.oom_score_adj, t[i].applied);
		fx_free(&f);
	}
	{
		/* no resources at all */
		struct fx f;
		fx_init(&f);
		f.lc.resources = NULL;
		f.in.oom_score_adj_min = 10;
		build_ok(&f);
		assert_int_equal(f.out.oom_score_adj, 10);
		fx_free(&f);
	}
}

/* ---- cgroupsPath, annotations ---- */

static void test_cgroups_path(void **state)
{
	struct fx f;

	fx_init(&f);
	build_ok(&f);
	assert_string_equal(jps(f.spec, "linux/cgroupsPath"), "/kubepods/pod1/criod-" CID);
	f.pod.cgroup_parent = "";
	build_ok(&f);
	assert_string_equal(jps(f.spec, "linux/cgroupsPath"), "/criod/criod-" CID);
	f.pod.cgroup_parent = "/";
	build_ok(&f);
	assert_string_equal(jps(f.spec, "linux/cgroupsPath"), "/criod-" CID);
	f.pod.cgroup_parent = "kubepods";
	build_err(&f, "pod.cgroup_parent: \"kubepods\" is not a clean absolute cgroup path");
	f.pod.cgroup_parent = "/kubepods/../x";
	build_err(&f, "pod.cgroup_parent");
	f.in.container_id = "abc";
	build_err(&f, "container_id: not 64 lowercase hex characters");
	fx_free(&f);
}

static void test_annotations(void **state)
{
	Runtime__V1__ContainerConfig__AnnotationsEntry a[2] = { RUNTIME__V1__CONTAINER_CONFIG__ANNOTATIONS_ENTRY__INIT,
								RUNTIME__V1__CONTAINER_CONFIG__ANNOTATIONS_ENTRY__INIT };
	Runtime__V1__ContainerConfig__AnnotationsEntry *av[] = { &a[0], &a[1] };
	struct fx f;
	json_object *o;

	fx_init(&f);
	a[0].key = "io.kubernetes.container.hash";
	a[0].value = "abc";
	a[1].key = "io.kubernetes.cri.container-type"; /* ours wins */
	a[1].value = "sandbox";
	f.cfg.annotations = av;
	f.cfg.n_annotations = 2;
	build_ok(&f);
	o = jp(f.spec, "annotations");
	assert_string_equal(jps(o, "io.kubernetes.container.hash"), "abc");
	assert_string_equal(jps(o, "io.kubernetes.cri.container-type"), "container");
	assert_string_equal(jps(o, "io.kubernetes.cri.container-name"), "app");
	assert_string_equal(jps(o, "io.kubernetes.cri.sandbox-id"), SID);
	assert_string_equal(jps(o, "io.kubernetes.cri.sandbox-name"), "web");
	assert_string_equal(jps(o, "io.kubernetes.cri.sandbox-namespace"), "default");
	assert_string_equal(jps(o, "io.kubernetes.cri.sandbox-uid"), "uid-1");
	assert_string_equal(jps(o, "io.kubernetes.cri.image-name"), "docker.io/library/busybox:latest");
	/* minimal configs: no pod config, no metadata, no sandbox id */
	f.in.pod_config = NULL;
	f.in.sandbox_id = NULL;
	f.cfg.metadata = NULL;
	f.cfg.image = NULL;
	f.cfg.n_annotations = 0;
	build_ok(&f);
	assert_int_equal(json_object_object_length(jp(f.spec, "annotations")), 1);
	fx_free(&f);
}

/* ---- image volumes, stop signal, image config errors ---- */

static void test_image_volumes(void **state)
{
	Runtime__V1__Mount m = mk_mount("/covered", "/srv/c", false, 0), *mv[] = { &m };
	struct fx f;

	fx_init(&f);
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"Volumes\":{\"/data\":{},\"/covered/\":{},"
				 "\"/var//lib/../cache\":{},\"/data/\":{},\"/etc/hosts\":{}}}}";
	f.cfg.mounts = mv;
	f.cfg.n_mounts = 1;
	build_ok(&f);
	/* cleaned, deduplicated, and none where something is mounted */
	assert_int_equal(f.out.n_image_volumes, 2);
	assert_string_equal(f.out.image_volumes[0], "/data");
	assert_string_equal(f.out.image_volumes[1], "/var/cache");
	/* nothing is mounted for them */
	assert_null(find_mount(f.spec, "/data"));
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"Volumes\":{\"data\":{}}}}";
	build_err(&f, "image config Volumes: \"data\" is not an absolute path");
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"Volumes\":{\"/..\":{}}}}";
	build_err(&f, "is the root directory");
	f.in.image_config_json = "{\"config\":{\"Cmd\":[\"sh\"],\"Volumes\":null}}";
	build_ok(&f);
	assert_int_equal(f.out.n_image_volumes, 0);
	fx_free(&f);
}

static void test_stop_signal(void **state)
{
	static const struct {
		Runtime__V1__Signal config;
		const char *image;
		const char *want; /* NULL: none; "!...": an error */
	} t[] = {
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "", NULL },
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "SIGQUIT", "SIGQUIT" },
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "term", "SIGTERM" },
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "sigusr1", "SIGUSR1" },
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "RTMIN+3", "SIGRTMIN+3" },
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "9", "9" },
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "99", "!image config StopSignal: invalid signal \"99\"" },
		{ RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT, "SIG TERM", "!image config StopSignal: invalid signal" },
		{ RUNTIME__V1__SIGNAL__SIGINT, "SIGQUIT", "SIGINT" }, /* the config wins */
		{ RUNTIME__V1__SIGNAL__SIGRTMINPLUS3, "", "SIGRTMIN+3" },
		{ RUNTIME__V1__SIGNAL__SIGRTMAXMINUS2, "", "SIGRTMAX-2" },
		{ RUNTIME__V1__SIGNAL__SIGRTMAX, "", "SIGRTMAX" },
		{ 200, "", "!config.stop_signal: unknown signal 200" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct fx f;
		char *img;

		fx_init(&f);
		assert_true(asprintf(&img, "{\"config\":{\"Cmd\":[\"sh\"],\"StopSignal\":\"%s\"}}", t[i].image) > 0);
		f.in.image_config_json = img;
		f.cfg.stop_signal = t[i].config;
		if (t[i].want && t[i].want[0] == '!')
			build_err(&f, t[i].want + 1);
		else {
			build_ok(&f);
			if (!t[i].want)
				assert_null(f.out.stop_signal);
			else
				assert_string_equal(f.out.stop_signal, t[i].want);
		}
		free(img);
		fx_free(&f);
	}
}

static void test_bad_input(void **state)
{
	static const struct {
		const char *image;
		const char *want;
	} t[] = {
		{ "{", "image config: invalid JSON" },
		{ "[]", "image config: not a JSON object" },
		{ "{\"config\":[]}", "image config: config: not an object" },
		{ "{\"config\":{\"Env\":\"A=1\"}}", "image config Env: not an array of strings" },
		{ "{\"config\":{\"Env\":[1]}}", "image config Env: not an array of strings" },
		{ "{\"config\":{\"Cmd\":\"sh\"}}", "image config Cmd: not an array of strings" },
		{ "{\"config\":{\"Cmd\":[\"sh\"],\"User\":5}}", "image config User: not a string" },
		{ "{\"config\":{\"Cmd\":[\"sh\"],\"Volumes\":[]}}", "image config Volumes: not an object" },
	};
	struct fx f;
	struct oci_spec_result out;
	char err[128];

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		fx_init(&f);
		f.in.image_config_json = t[i].image;
		build_err(&f, t[i].want);
		fx_free(&f);
	}
	fx_init(&f);
	/* an image config without "config" is an image without settings */
	f.in.image_config_json = "{\"architecture\":\"amd64\"}";
	build_err(&f, "no command specified");
	f.in.config = NULL;
	build_err(&f, "config: missing");
	f.in.config = &f.cfg;
	f.in.pod = NULL;
	build_err(&f, "config: missing");
	assert_int_equal(oci_spec_build(NULL, &out, err, sizeof(err)), -EINVAL);
	assert_int_equal(oci_spec_build(&f.in, NULL, err, sizeof(err)), -EINVAL);
	fx_free(&f);
}

/* The one validator of LinuxContainerResources: what UpdateContainerResources
 * sends runc update, by the rules CreateContainer's spec follows. */
static void test_resources_json_for_update(void **state)
{
	(void)state;
	Runtime__V1__LinuxContainerResources res = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__INIT;
	Runtime__V1__HugepageLimit h1 = RUNTIME__V1__HUGEPAGE_LIMIT__INIT, h2 = RUNTIME__V1__HUGEPAGE_LIMIT__INIT;
	Runtime__V1__HugepageLimit *hs[] = { &h1, &h2 };
	Runtime__V1__LinuxContainerResources__UnifiedEntry u = RUNTIME__V1__LINUX_CONTAINER_RESOURCES__UNIFIED_ENTRY__INIT;
	Runtime__V1__LinuxContainerResources__UnifiedEntry *us[] = { &u };
	char err[256] = "", *json = NULL;

	res.memory_limit_in_bytes = 64 << 20;
	res.cpu_shares = 512;
	res.cpu_quota = 50000;
	res.cpu_period = 100000;
	res.cpuset_cpus = "0-1";
	assert_int_equal(oci_resources_json(&res, false, "linux", &json, err, sizeof(err)), 0);
	json_object *o = json_tokener_parse(json);
	assert_non_null(o);
	json_object *m, *c, *v;
	assert_true(json_object_object_get_ex(o, "memory", &m) && json_object_object_get_ex(m, "limit", &v));
	assert_int_equal(json_object_get_int64(v), 64 << 20);
	assert_true(json_object_object_get_ex(o, "cpu", &c) && json_object_object_get_ex(c, "quota", &v));
	assert_int_equal(json_object_get_int64(v), 50000);
	assert_true(json_object_object_get_ex(c, "cpus", &v));
	assert_string_equal(json_object_get_string(v), "0-1");
	assert_false(json_object_object_get_ex(o, "devices", &v)); /* runc update keeps the device rules */
	json_object_put(o);
	free(json);
	json = NULL;

	/* hugepages given twice: refused on update as at create */
	h1.page_size = "2MB";
	h2.page_size = "2MB";
	res.hugepage_limits = hs;
	res.n_hugepage_limits = 2;
	assert_int_equal(oci_resources_json(&res, false, "linux", &json, err, sizeof(err)), -EINVAL);
	assert_null(json);
	assert_string_equal(err, "linux.hugepage_limits[1].page_size: 2MB given twice");
	h2.page_size = "1GB";
	assert_int_equal(oci_resources_json(&res, false, "linux", &json, err, sizeof(err)), 0);
	free(json);
	json = NULL;
	h2.page_size = "1234567MB"; /* at create too: at most 6 digits */
	assert_int_equal(oci_resources_json(&res, false, "linux", &json, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "linux.hugepage_limits[1].page_size"));
	res.n_hugepage_limits = 0;

	/* unified: cgroup v2 only, and file names as at create */
	res.unified = us;
	res.n_unified = 1;
	u.key = "memory.high";
	u.value = "1G";
	assert_int_equal(oci_resources_json(&res, false, "linux", &json, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "linux.unified: cgroup v2 settings, but this host uses cgroup v1");
	assert_int_equal(oci_resources_json(&res, true, "linux", &json, err, sizeof(err)), 0);
	free(json);
	json = NULL;
	u.key = "Memory.High"; /* cgroup v2 file names are lower case */
	assert_int_equal(oci_resources_json(&res, true, "linux", &json, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "linux.unified[\"Memory.High\"]: not a cgroup v2 file name");
	u.key = "../cgroup.procs";
	assert_int_equal(oci_resources_json(&res, true, "linux", &json, err, sizeof(err)), -EINVAL);
	u.key = "memory.high";
	u.value = "1G\x01";
	assert_int_equal(oci_resources_json(&res, true, "linux", &json, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "linux.unified[\"memory.high\"]: invalid value");
	res.n_unified = 0;

	res.cpu_quota = 999;
	assert_int_equal(oci_resources_json(&res, false, "linux", &json, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "linux.cpu_quota: 999 is invalid (want -1, 0 or at least 1000)");
	assert_null(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_cwd_terminal),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_user_no_files),
		cmocka_unit_test(test_user_hostile_files),
		cmocka_unit_test(test_capabilities),
		cmocka_unit_test(test_capabilities_all),
		cmocka_unit_test(test_privileged),
		cmocka_unit_test(test_readonly_rootfs),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_no_new_privs),
		cmocka_unit_test(test_seccomp_runtime_default),
		cmocka_unit_test(test_seccomp_profiles),
		cmocka_unit_test(test_seccomp_legacy),
		cmocka_unit_test(test_seccomp_convert),
		cmocka_unit_test(test_apparmor),
		cmocka_unit_test(test_sysctls),
		cmocka_unit_test(test_namespaces),
		cmocka_unit_test(test_mounts_default),
		cmocka_unit_test(test_mounts_cri),
		cmocka_unit_test(test_mounts_invalid),
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_resources),
		cmocka_unit_test(test_resources_json_for_update),
		cmocka_unit_test(test_oom_score_adj),
		cmocka_unit_test(test_cgroups_path),
		cmocka_unit_test(test_annotations),
		cmocka_unit_test(test_image_volumes),
		cmocka_unit_test(test_stop_signal),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
