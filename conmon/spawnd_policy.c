/* The node policy on a container's OCI spec; see spawnd_policy.h. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "beneath.h"
#include "caps.h"
#include "config.h"
#include "log.h"
#include "macro.h"
#include "spawnd_policy.h"
#include "status.h"
#include "util.h"

#define KEY(k) "[policy] " k
#define PATH_LEN 256 /* a JSON path in a message */
#define HOST_PATH_MAX 4095
#define DEVICES_MAX 4096 /* device nodes allowed_devices may name */

static const char *const pod_files[] = {"hostname", "hosts", "resolv.conf"};

/* ---------------------------------------------------------------- errors */

_printf_(6, 7) static int refuse(char *err, size_t errlen, const char **rule, const char *key, int r,
				 const char *fmt, ...)
{
	va_list ap;
	int n;

	*rule = key;
	if (!err || !errlen)
		return r;
	if (r == -EINVAL)
		n = snprintf(err, errlen, "config_json: ");
	else
		n = snprintf(err, errlen, "%s: config_json ", key);
	if (n > 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return r;
}

#define BAD(...) refuse(err, errlen, rule, POLICY_RULE_SPEC, -EINVAL, __VA_ARGS__)
#define DENY(key, ...) refuse(err, errlen, rule, KEY(key), -EPERM, __VA_ARGS__)

/* A privileged part of the spec (what says so): allowed only by [policy]
 * allow_privileged and in a pod spawnd made privileged. */
static bool privileged_ok(const struct spawnd_policy_ctx *ctx)
{
	return ctx->cfg->allow_privileged && ctx->pod_privileged;
}

static int deny_privileged(const struct spawnd_policy_ctx *ctx, char *err, size_t errlen, const char **rule,
			   const char *what)
{
	if (!ctx->cfg->allow_privileged)
		return DENY("allow_privileged", "%s", what);
	return refuse(err, errlen, rule, POLICY_RULE_POD_PRIVILEGED, -EPERM,
		      "%s, but spawnd made pod %s unprivileged (its LinuxSandboxSecurityContext.privileged was false)",
		      what, ctx->pod_id ? ctx->pod_id : "?");
}

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *mstr(json_object *o, const char *key)
{
	json_object *v = member(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* An integer member, or def when absent. */
static int64_t mint(json_object *o, const char *key, int64_t def)
{
	json_object *v = member(o, key);
	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : def;
}

/* ---------------------------------------------------------------- the allowlist */

enum jt { T_STR, T_BOOL, T_INT, T_UINT, T_ARR_STR, T_ARR_UINT, T_OBJ, T_ARR_OBJ, T_MAP_STR };

struct field {
	const char *name;
	enum jt type;
	const struct field *sub; /* T_OBJ, T_ARR_OBJ */
};

static const struct field f_user[] = {
	{"uid", T_UINT, NULL}, {"gid", T_UINT, NULL}, {"additionalGids", T_ARR_UINT, NULL}, {NULL, 0, NULL}};
static const struct field f_caps[] = {{"bounding", T_ARR_STR, NULL},    {"effective", T_ARR_STR, NULL},
				      {"permitted", T_ARR_STR, NULL},   {"inheritable", T_ARR_STR, NULL},
				      {"ambient", T_ARR_STR, NULL},     {NULL, 0, NULL}};
static const struct field f_process[] = {
	{"terminal", T_BOOL, NULL},	   {"user", T_OBJ, f_user},	     {"args", T_ARR_STR, NULL},
	{"env", T_ARR_STR, NULL},	   {"cwd", T_STR, NULL},	     {"capabilities", T_OBJ, f_caps},
	{"noNewPrivileges", T_BOOL, NULL}, {"apparmorProfile", T_STR, NULL}, {"oomScoreAdj", T_INT, NULL},
	{NULL, 0, NULL}};
static const struct field f_root[] = {{"path", T_STR, NULL}, {"readonly", T_BOOL, NULL}, {NULL, 0, NULL}};
static const struct field f_mount[] = {{"destination", T_STR, NULL}, {"type", T_STR, NULL}, {"source", T_STR, NULL},
				       {"options", T_ARR_STR, NULL},  {NULL, 0, NULL}};
static const struct field f_ns[] = {{"type", T_STR, NULL}, {"path", T_STR, NULL}, {NULL, 0, NULL}};
static const struct field f_device[] = {{"path", T_STR, NULL},     {"type", T_STR, NULL}, {"major", T_INT, NULL},
					{"minor", T_INT, NULL},    {"fileMode", T_UINT, NULL}, {"uid", T_UINT, NULL},
					{"gid", T_UINT, NULL},     {NULL, 0, NULL}};
static const struct field f_devrule[] = {{"allow", T_BOOL, NULL}, {"type", T_STR, NULL},  {"major", T_INT, NULL},
					 {"minor", T_INT, NULL},  {"access", T_STR, NULL}, {NULL, 0, NULL}};
static const struct field f_memory[] = {{"limit", T_INT, NULL}, {"swap", T_INT, NULL}, {NULL, 0, NULL}};
static const struct field f_cpu[] = {{"shares", T_UINT, NULL}, {"quota", T_INT, NULL}, {"period", T_UINT, NULL},
				     {"cpus", T_STR, NULL},    {"mems", T_STR, NULL},  {NULL, 0, NULL}};
static const struct field f_huge[] = {{"pageSize", T_STR, NULL}, {"limit", T_UINT, NULL}, {NULL, 0, NULL}};
static const struct field f_resources[] = {{"devices", T_ARR_OBJ, f_devrule},   {"memory", T_OBJ, f_memory},
					   {"cpu", T_OBJ, f_cpu},		{"hugepageLimits", T_ARR_OBJ, f_huge},
					   {"unified", T_MAP_STR, NULL},	{NULL, 0, NULL}};
static const struct field f_sc_arg[] = {{"index", T_UINT, NULL}, {"value", T_UINT, NULL}, {"valueTwo", T_UINT, NULL},
					{"op", T_STR, NULL},     {NULL, 0, NULL}};
static const struct field f_sc_rule[] = {{"names", T_ARR_STR, NULL}, {"action", T_STR, NULL},
					 {"errnoRet", T_UINT, NULL}, {"args", T_ARR_OBJ, f_sc_arg},
					 {NULL, 0, NULL}};
static const struct field f_seccomp[] = {{"defaultAction", T_STR, NULL},    {"defaultErrnoRet", T_UINT, NULL},
					 {"architectures", T_ARR_STR, NULL}, {"flags", T_ARR_STR, NULL},
					 {"syscalls", T_ARR_OBJ, f_sc_rule}, {NULL, 0, NULL}};
static const struct field f_linux[] = {
	{"rootfsPropagation", T_STR, NULL}, {"sysctl", T_MAP_STR, NULL},	 {"resources", T_OBJ, f_resources},
	{"cgroupsPath", T_STR, NULL},	    {"namespaces", T_ARR_OBJ, f_ns},	 {"seccomp", T_OBJ, f_seccomp},
	{"maskedPaths", T_ARR_STR, NULL},   {"readonlyPaths", T_ARR_STR, NULL}, {"devices", T_ARR_OBJ, f_device},
	{NULL, 0, NULL}};
static const struct field f_spec[] = {{"ociVersion", T_STR, NULL},	{"process", T_OBJ, f_process},
				      {"root", T_OBJ, f_root},		{"mounts", T_ARR_OBJ, f_mount},
				      {"annotations", T_MAP_STR, NULL}, {"linux", T_OBJ, f_linux},
				      {NULL, 0, NULL}};

static const char *jt_name(enum jt t)
{
	switch (t) {
	case T_STR: return "a string";
	case T_BOOL: return "a boolean";
	case T_INT: return "an integer";
	case T_UINT: return "a non-negative integer";
	case T_ARR_STR: return "an array of strings";
	case T_ARR_UINT: return "an array of non-negative integers";
	case T_OBJ: return "an object";
	case T_ARR_OBJ: return "an array of objects";
	case T_MAP_STR: return "an object of strings";
	}
	return "?";
}

static bool is_uint(json_object *v)
{
	return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0;
}

static bool type_ok(json_object *v, enum jt t)
{
	switch (t) {
	case T_STR: return json_object_is_type(v, json_type_string);
	case T_BOOL: return json_object_is_type(v, json_type_boolean);
	case T_INT: return json_object_is_type(v, json_type_int);
	case T_UINT: return is_uint(v);
	case T_OBJ: return json_object_is_type(v, json_type_object);
	case T_MAP_STR: {
		if (!json_object_is_type(v, json_type_object))
			return false;
		json_object_object_foreach(v, k, e) {
			(void)k;
			if (!json_object_is_type(e, json_type_string))
				return false;
		}
		return true;
	}
	case T_ARR_STR:
	case T_ARR_UINT:
	case T_ARR_OBJ:
		if (!json_object_is_type(v, json_type_array))
			return false;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *e = json_object_array_get_idx(v, i);
			if (t == T_ARR_STR ? !json_object_is_type(e, json_type_string)
			    : t == T_ARR_UINT ? !is_uint(e)
					      : !json_object_is_type(e, json_type_object))
				return false;
		}
		return true;
	}
	return false;
}

/* Every member of o is one of schema, of its type; path names o. */
static int check_fields(json_object *o, const char *path, const struct field *schema, char *err, size_t errlen,
			const char **rule)
{
	json_object_object_foreach(o, key, v) {
		const struct field *f = schema;
		char sub[PATH_LEN];
		while (f->name && strcmp(f->name, key) != 0)
			f++;
		snprintf(sub, sizeof(sub), "%s%s%.64s", path, *path ? "." : "", key);
		if (!f->name)
			return BAD("%s: unknown field (spawnd accepts only what criod's spec builder writes)", sub);
		if (!v || !type_ok(v, f->type))
			return BAD("%s: must be %s", sub, jt_name(f->type));
		if (f->type == T_OBJ) {
			int r = check_fields(v, sub, f->sub, err, errlen, rule);
			if (r < 0)
				return r;
		} else if (f->type == T_ARR_OBJ) {
			for (size_t i = 0; i < json_object_array_length(v); i++) {
				char el[PATH_LEN + 32];
				snprintf(el, sizeof(el), "%s[%zu]", sub, i);
				int r = check_fields(json_object_array_get_idx(v, i), el, f->sub, err, errlen, rule);
				if (r < 0)
					return r;
			}
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- capabilities */

uint64_t spawnd_policy_caps_allowed(const struct criod_config *cfg)
{
	uint64_t m = CAP_DEFAULT_MASK;
	for (size_t i = 0; i < cfg->n_allowed_capabilities; i++) {
		if (strcmp(cfg->allowed_capabilities[i], "ALL") == 0)
			return UINT64_MAX;
		int c = cap_index(cfg->allowed_capabilities[i]);
		if (c >= 0)
			m |= CAPBIT(c);
	}
	return m;
}

static int check_caps(json_object *process, const struct criod_config *cfg, char *err, size_t errlen,
		      const char **rule)
{
	static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable", "ambient"};
	json_object *caps = member(process, "capabilities");
	uint64_t allowed = spawnd_policy_caps_allowed(cfg);

	for (size_t s = 0; caps && s < ARRAY_SIZE(sets); s++) {
		json_object *a = member(caps, sets[s]);
		for (size_t i = 0; a && i < json_object_array_length(a); i++) {
			const char *name = json_object_get_string(json_object_array_get_idx(a, i));
			int c = cap_index(name);
			if (c < 0)
				return BAD("process.capabilities.%s[%zu]: \"%.64s\" is not a capability name", sets[s], i,
					   name);
			if (!(allowed & CAPBIT(c)))
				return DENY("allowed_capabilities",
					    "process.capabilities.%s[%zu]: %s is not an allowed capability", sets[s], i,
					    name);
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- mounts */

static const char *const mount_flags[] = {
	"bind",	  "rbind",    "ro",	     "rw",	    "nosuid",	   "suid",	  "noexec",   "exec",
	"nodev",  "dev",      "private",     "rprivate",    "slave",	   "rslave",	  "shared",   "rshared",
	"unbindable", "runbindable", "strictatime", "nostrictatime", "relatime", "norelatime", "noatime", "atime",
	"nodiratime", "diratime", "newinstance", "sync",	   "async",	  "dirsync",   "rro",
};
static const char *const mount_values[] = {"mode=", "size=", "gid=", "uid=", "ptmxmode=", "nr_inodes=", "nr_blocks="};

/* The types criod mounts, each only where criod puts it ("" anywhere). */
static const struct {
	const char *type, *where;
} mount_types[] = {
	{"bind", ""},	      {"tmpfs", ""},	    {"proc", "/proc"},		{"devpts", "/dev/pts"},
	{"mqueue", "/dev/mqueue"}, {"sysfs", "/sys"}, {"cgroup", "/sys/fs/cgroup"},
};

static bool has_opt(json_object *opts, const char *o)
{
	for (size_t i = 0; opts && i < json_object_array_length(opts); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(opts, i)), o) == 0)
			return true;
	return false;
}

/* The last of "ro" and "rw" wins, as runc applies them in order; "rro"
 * (recursive read-only, applied after the mount) always makes it so. */
static bool opts_readonly(json_object *opts)
{
	bool ro = false, rro = false;
	for (size_t i = 0; opts && i < json_object_array_length(opts); i++) {
		const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
		if (strcmp(o, "ro") == 0)
			ro = true;
		else if (strcmp(o, "rw") == 0)
			ro = false;
		else if (strcmp(o, "rro") == 0)
			rro = true;
	}
	return ro || rro;
}

static bool opts_bind(json_object *m)
{
	json_object *opts = member(m, "options");
	const char *t = mstr(m, "type");
	return (t && strcmp(t, "bind") == 0) || has_opt(opts, "bind") || has_opt(opts, "rbind");
}

enum src_kind { SRC_POD_FILE, SRC_POD_SHM, SRC_HOST_SHM, SRC_HOST };

static enum src_kind source_kind(const char *src, const struct spawnd_policy_ctx *ctx, const char **name)
{
	size_t dl = ctx->pod_files_dir ? strlen(ctx->pod_files_dir) : 0;
	*name = NULL;
	if (dl && strncmp(src, ctx->pod_files_dir, dl) == 0 && src[dl] == '/')
		for (size_t i = 0; i < ARRAY_SIZE(pod_files); i++)
			if (strcmp(src + dl + 1, pod_files[i]) == 0) {
				*name = pod_files[i];
				return SRC_POD_FILE;
			}
	if (ctx->pod_shm && strcmp(src, ctx->pod_shm) == 0)
		return SRC_POD_SHM;
	if (!ctx->pod_ipc_ns && strcmp(src, "/dev/shm") == 0)
		return SRC_HOST_SHM;
	return SRC_HOST;
}

/* A clean absolute host path against the prefixes: 0, or -EPERM with err
 * naming the key. readonly: how the mount is made. */
static int host_path_allowed(const char *what, const char *src, bool readonly, const struct criod_config *cfg,
			     char *err, size_t errlen, const char **rule)
{
	size_t len = strlen(src), root, off, rw_len = 0, ro_len = 0;
	bool rw_ok, ro_ok;
	const char *why;

	rw_ok = path_beneath_roots(src, len, HOST_PATH_MAX, cfg->host_path_prefixes, cfg->n_host_path_prefixes, &root,
				   &off, &why) == 0;
	if (rw_ok)
		rw_len = strlen(cfg->host_path_prefixes[root]);
	ro_ok = path_beneath_roots(src, len, HOST_PATH_MAX, cfg->host_path_readonly_prefixes,
				   cfg->n_host_path_readonly_prefixes, &root, &off, &why) == 0;
	if (ro_ok)
		ro_len = strlen(cfg->host_path_readonly_prefixes[root]);
	if (ro_ok && ro_len >= rw_len) {
		if (readonly)
			return 0;
		return DENY("host_path_readonly_prefixes",
			    "%s: host path %.256s is beneath %.256s, which may only be mounted read-only", what, src,
			    cfg->host_path_readonly_prefixes[root]);
	}
	if (rw_ok)
		return 0;
	return DENY("host_path_prefixes",
		    "%s: host path %.256s is beneath no directory of [policy] host_path_prefixes or "
		    "host_path_readonly_prefixes (and [policy] allow_any_host_path is false)",
		    what, src);
}

static int check_mounts(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			const char **rule)
{
	const struct criod_config *cfg = ctx->cfg;
	json_object *a = member(spec, "mounts");

	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *m = json_object_array_get_idx(a, i), *opts = member(m, "options");
		const char *type = mstr(m, "type"), *dst = mstr(m, "destination"), *src = mstr(m, "source");
		char what[64];
		size_t k;

		snprintf(what, sizeof(what), "mounts[%zu]", i);
		if (!dst || !path_is_clean_abs(dst, strlen(dst)))
			return BAD("%s.destination: must be a clean absolute path", what);
		if (!type)
			return BAD("%s.type: required", what);
		for (k = 0; k < ARRAY_SIZE(mount_types); k++)
			if (strcmp(type, mount_types[k].type) == 0)
				break;
		if (k == ARRAY_SIZE(mount_types))
			return BAD("%s.type: \"%.32s\" is not a type criod mounts (bind, tmpfs, proc, devpts, mqueue, sysfs, "
				   "cgroup)",
				   what, type);
		if (*mount_types[k].where && strcmp(dst, mount_types[k].where) != 0)
			return BAD("%s: a %s mount only at %s", what, type, mount_types[k].where);
		for (size_t j = 0; opts && j < json_object_array_length(opts); j++) {
			const char *o = json_object_get_string(json_object_array_get_idx(opts, j));
			bool ok = false;
			for (size_t f = 0; !ok && f < ARRAY_SIZE(mount_flags); f++)
				ok = strcmp(o, mount_flags[f]) == 0;
			for (size_t f = 0; !ok && f < ARRAY_SIZE(mount_values); f++)
				ok = strncmp(o, mount_values[f], strlen(mount_values[f])) == 0 &&
				     strspn(o + strlen(mount_values[f]), "0123456789kmgKMG") == strlen(o + strlen(mount_values[f]));
			if (!ok)
				return BAD("%s.options[%zu]: \"%.64s\" is not a mount option criod uses", what, j, o);
			if (!privileged_ok(ctx) && (strcmp(o, "shared") == 0 || strcmp(o, "rshared") == 0)) {
				char why[256];
				snprintf(why, sizeof(why),
					 "%s.options[%zu]: %s propagation (Bidirectional) needs a privileged container", what,
					 j, o);
				return deny_privileged(ctx, err, errlen, rule, why);
			}
		}
		bool bind = opts_bind(m);
		if (!bind) {
			if (!privileged_ok(ctx) && (strcmp(type, "sysfs") == 0 || strcmp(type, "cgroup") == 0) &&
			    !opts_readonly(opts)) {
				char why[256];
				snprintf(why, sizeof(why), "%s: %s is mounted read-write, as for a privileged container",
					 what, dst);
				return deny_privileged(ctx, err, errlen, rule, why);
			}
			continue;
		}
		if (!src || src[0] != '/')
			return BAD("%s.source: a bind mount needs an absolute source", what);
		const char *name;
		switch (source_kind(src, ctx, &name)) {
		case SRC_POD_FILE:
		case SRC_POD_SHM:
			continue;
		case SRC_HOST_SHM:
			if (!cfg->allow_host_namespaces)
				return DENY("allow_host_namespaces", "%s: the host's /dev/shm (the host's IPC namespace)",
					    what);
			continue;
		case SRC_HOST:
			break;
		}
		if (cfg->allow_any_host_path)
			continue;
		if (!path_is_clean_abs(src, strlen(src)) || strlen(src) > HOST_PATH_MAX)
			return BAD("%s.source: \"%.256s\" is not a clean absolute path", what, src);
		int r = host_path_allowed(what, src, opts_readonly(opts), cfg, err, errlen, rule);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---------------------------------------------------------------- privileged */

/* What criod masks and makes read-only in every container that is not
 * privileged (criod/oci_spec.c, as kubelet's defaults). */
static const char *const default_masked[] = {
	"/proc/acpi",	       "/proc/asound",	  "/proc/kcore",       "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi",	       "/sys/firmware",	  "/sys/devices/virtual/powercap",
};
static const char *const default_readonly[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static bool str_in(json_object *a, const char *s)
{
	for (size_t i = 0; a && i < json_object_array_length(a); i++)
		if (strcmp(json_object_get_string(json_object_array_get_idx(a, i)), s) == 0)
			return true;
	return false;
}

static bool default_masked_ok(json_object *linux_, char *missing, size_t len)
{
	json_object *masked = member(linux_, "maskedPaths"), *ro = member(linux_, "readonlyPaths");
	for (size_t i = 0; i < ARRAY_SIZE(default_masked); i++)
		if (!str_in(masked, default_masked[i])) {
			snprintf(missing, len, "linux.maskedPaths lacks %s", default_masked[i]);
			return false;
		}
	for (size_t i = 0; i < ARRAY_SIZE(default_readonly); i++)
		if (!str_in(ro, default_readonly[i]) && !str_in(masked, default_readonly[i])) {
			snprintf(missing, len, "linux.readonlyPaths lacks %s", default_readonly[i]);
			return false;
		}
	return true;
}

/* A device cgroup rule that allows every device for reading or writing. */
static bool rule_all_devices(json_object *d)
{
	json_object *allow = member(d, "allow");
	const char *type = mstr(d, "type"), *access = mstr(d, "access");
	if (!allow || !json_object_get_boolean(allow))
		return false;
	if (type && strcmp(type, "a") != 0)
		return false;
	if (mint(d, "major", -1) >= 0 || mint(d, "minor", -1) >= 0)
		return false;
	return !access || strpbrk(access, "rw");
}

/* The privileged part of linux.resources: a device rule for every device. */
static int check_resources_privileged(json_object *resources, const struct spawnd_policy_ctx *ctx, char *err,
				      size_t errlen, const char **rule)
{
	json_object *rules = member(resources, "devices");
	char what[128];

	if (privileged_ok(ctx))
		return 0;
	for (size_t i = 0; rules && i < json_object_array_length(rules); i++)
		if (rule_all_devices(json_object_array_get_idx(rules, i))) {
			snprintf(what, sizeof(what),
				 "linux.resources.devices[%zu]: allows every device, as for a privileged container", i);
			return deny_privileged(ctx, err, errlen, rule, what);
		}
	return 0;
}

static int check_privileged(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			    const char **rule)
{
	json_object *linux_ = member(spec, "linux");
	const char *prop = mstr(linux_, "rootfsPropagation");
	char why[128], what[256];

	if (privileged_ok(ctx))
		return 0;
	int r = check_resources_privileged(member(linux_, "resources"), ctx, err, errlen, rule);
	if (r < 0)
		return r;
	/* The CRI lets any container name its masked and read-only paths
	 * (kubelet's procMount), so only the key governs these, not the pod. */
	if (!ctx->cfg->allow_privileged && !default_masked_ok(linux_, why, sizeof(why)))
		return DENY("allow_privileged", "%s, as for a privileged container", why);
	if (prop && (strcmp(prop, "shared") == 0 || strcmp(prop, "rshared") == 0)) {
		snprintf(what, sizeof(what), "linux.rootfsPropagation: %s (Bidirectional) needs a privileged container",
			 prop);
		return deny_privileged(ctx, err, errlen, rule, what);
	}
	return 0;
}

/* ---------------------------------------------------------------- namespaces, seccomp, AppArmor */

static bool has_ns(json_object *linux_, const char *type)
{
	json_object *a = member(linux_, "namespaces");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		const char *t = mstr(json_object_array_get_idx(a, i), "type");
		if (t && strcmp(t, type) == 0)
			return true;
	}
	return false;
}

static int check_namespaces(json_object *linux_, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			    const char **rule)
{
	static const char *const kinds[] = {"network", "pid", "ipc", "uts"};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		if (has_ns(linux_, kinds[i]))
			continue;
		if (!ctx->cfg->allow_host_namespaces)
			return DENY("allow_host_namespaces",
				    "linux.namespaces: no %s namespace, so the container would share the host's", kinds[i]);
		/* Only where spawnd made the pod with the host's. */
		bool host = i == 1 ? ctx->pod_host_pid : i == 2 ? !ctx->pod_ipc_ns : ctx->pod_host_network;
		if (!host)
			return refuse(err, errlen, rule, POLICY_RULE_POD_HOST_NS, -EPERM,
				      "linux.namespaces: no %s namespace, so the container would share the host's, but "
				      "pod %s, as spawnd made it, does not share the host's",
				      kinds[i], ctx->pod_id ? ctx->pod_id : "?");
	}
	return 0;
}

static int check_seccomp(json_object *linux_, const struct criod_config *cfg, char *err, size_t errlen,
			 const char **rule)
{
	json_object *sc = member(linux_, "seccomp");
	if (cfg->allow_unconfined_seccomp)
		return 0;
	if (!sc)
		return DENY("allow_unconfined_seccomp", "linux.seccomp: absent (an unconfined container)");
	const char *act = mstr(sc, "defaultAction");
	if (!act)
		return BAD("linux.seccomp.defaultAction: required");
	if (strcmp(act, "SCMP_ACT_ALLOW") == 0 || strcmp(act, "SCMP_ACT_LOG") == 0)
		return DENY("allow_unconfined_seccomp", "linux.seccomp.defaultAction: %s allows every call not listed", act);
	return 0;
}

static int check_apparmor(json_object *process, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			  const char **rule)
{
	const char *p = mstr(process, "apparmorProfile");
	if (ctx->cfg->allow_unconfined_apparmor || !ctx->apparmor_enabled)
		return 0;
	if (!p || !*p || strcmp(p, "unconfined") == 0)
		return DENY("allow_unconfined_apparmor", "process.apparmorProfile: %s (unconfined)", p && *p ? p : "absent");
	return 0;
}

/* ---------------------------------------------------------------- sysctls */

bool spawnd_policy_sysctl_namespaced(const char *name, bool *ipc)
{
	char n[256];
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len >= sizeof(n))
		return false;
	for (size_t i = 0; i <= len; i++)
		n[i] = name[i] == '/' ? '.' : name[i];
	/* components of [A-Za-z0-9_-], none empty */
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		if (c == '.') {
			if (i == 0 || n[i - 1] == '.' || i == len - 1)
				return false;
		} else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
			     c == '-'))
			return false;
	}
	*ipc = strcmp(n, "kernel.sem") == 0 || strncmp(n, "kernel.shm", 10) == 0 || strncmp(n, "kernel.msg", 10) == 0 ||
	       strncmp(n, "fs.mqueue.", 10) == 0;
	return *ipc || strncmp(n, "net.", 4) == 0;
}

static int check_sysctls(json_object *linux_, const struct criod_config *cfg, char *err, size_t errlen,
			 const char **rule)
{
	json_object *s = member(linux_, "sysctl");
	if (!s)
		return 0;
	json_object_object_foreach(s, key, val) {
		(void)val;
		bool ipc = false;
		if (!spawnd_policy_sysctl_namespaced(key, &ipc))
			return refuse(err, errlen, rule, "namespaced sysctls only", -EPERM,
				      "linux.sysctl[\"%.64s\"]: not a namespaced sysctl (kernel.shm*, kernel.msg*, "
				      "kernel.sem, fs.mqueue.*, net.*): it would change the host",
				      key);
		if (!has_ns(linux_, ipc ? "ipc" : "network"))
			return refuse(err, errlen, rule, "namespaced sysctls only", -EPERM,
				      "linux.sysctl[\"%.64s\"]: the container has no %s namespace of its own", key,
				      ipc ? "IPC" : "network");
		char n[256];
		snprintf(n, sizeof(n), "%s", key);
		for (char *c = n; *c; c++)
			if (*c == '/')
				*c = '.';
		bool ok = false;
		for (size_t i = 0; !ok && i < cfg->n_allowed_sysctls; i++)
			ok = fnmatch(cfg->allowed_sysctls[i], n, 0) == 0;
		if (!ok)
			return DENY("allowed_sysctls", "linux.sysctl[\"%.64s\"]: not an allowed sysctl", key);
	}
	return 0;
}

/* ---------------------------------------------------------------- devices */

static bool devices_all(const struct criod_config *cfg)
{
	for (size_t i = 0; i < cfg->n_allowed_devices; i++)
		if (strcmp(cfg->allowed_devices[i], "ALL") == 0)
			return true;
	return false;
}

/* runc's default devices: null, zero, full, random, urandom, tty, console, ptmx; pts (136:*). */
static bool device_default(char type, int64_t major, int64_t minor)
{
	static const int64_t nums[][2] = {{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 1}, {5, 2}};
	if (type != 'c')
		return false;
	if (major == 136)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(nums); i++)
		if (nums[i][0] == major && nums[i][1] == minor)
			return true;
	return false;
}

static bool device_allowed(const struct spawnd_policy_ctx *ctx, char type, int64_t major, int64_t minor)
{
	if (type == 'u')
		type = 'c';
	if (major >= 0 && minor >= 0 && device_default(type, major, minor))
		return true;
	if (major == 136 && minor < 0 && type == 'c')
		return true;
	for (size_t i = 0; i < ctx->n_devices; i++)
		if (ctx->devices[i].type == type && ctx->devices[i].major == major && ctx->devices[i].minor == minor)
			return true;
	return false;
}

static int check_devices(json_object *linux_, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			 const char **rule)
{
	json_object *devs = member(linux_, "devices");

	for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
		json_object *d = json_object_array_get_idx(devs, i);
		const char *type = mstr(d, "type"), *path = mstr(d, "path");
		if (!type || strlen(type) != 1 || !strchr("cbup", type[0]))
			return BAD("linux.devices[%zu].type: must be \"c\", \"b\", \"u\" or \"p\"", i);
		if (!path || !path_is_clean_abs(path, strlen(path)))
			return BAD("linux.devices[%zu].path: must be a clean absolute path", i);
		int64_t major = mint(d, "major", -1), minor = mint(d, "minor", -1);
		if (type[0] != 'p' && (major < 0 || minor < 0))
			return BAD("linux.devices[%zu]: major and minor are required", i);
		if (type[0] == 'p' || devices_all(ctx->cfg))
			continue;
		if (!device_allowed(ctx, type[0], major, minor))
			return DENY("allowed_devices",
				    "linux.devices[%zu]: %s (%c %lld:%lld) is no host device [policy] allowed_devices "
				    "names",
				    i, path, type[0], (long long)major, (long long)minor);
	}
	return 0;
}

/* The device cgroup rules of linux.resources (at create and at Update). */
static int check_device_rules(json_object *resources, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			      const char **rule)
{
	json_object *rules = member(resources, "devices");

	for (size_t i = 0; rules && i < json_object_array_length(rules); i++) {
		json_object *d = json_object_array_get_idx(rules, i), *allow = member(d, "allow");
		const char *type = mstr(d, "type"), *access = mstr(d, "access");
		if (!allow)
			return BAD("linux.resources.devices[%zu].allow: required", i);
		if (type && (strlen(type) != 1 || !strchr("acb", type[0])))
			return BAD("linux.resources.devices[%zu].type: must be \"a\", \"c\" or \"b\"", i);
		if (access && (!*access || strspn(access, "rwm") != strlen(access)))
			return BAD("linux.resources.devices[%zu].access: must be letters of \"rwm\"", i);
		if (!json_object_get_boolean(allow) || (access && !strpbrk(access, "rw")) || devices_all(ctx->cfg))
			continue;
		int64_t major = mint(d, "major", -1), minor = mint(d, "minor", -1);
		if (!type || type[0] == 'a' || major < 0 || !device_allowed(ctx, type[0], major, minor))
			return DENY("allowed_devices",
				    "linux.resources.devices[%zu]: allows %s %lld:%lld, which is no host device "
				    "[policy] allowed_devices names",
				    i, type ? type : "a", (long long)major, (long long)minor);
	}
	return 0;
}

/* ---------------------------------------------------------------- cgroup v2 files */

/* linux.resources.unified: runc writes each value into the file of that
 * name in the container's cgroup, so only the interface files of the
 * resource controllers, never the core's (cgroup.procs would move any host
 * process into the container's cgroup, cgroup.subtree_control ...). */
static int check_unified(json_object *resources, char *err, size_t errlen, const char **rule)
{
	static const char *const controllers[] = {"cpu.", "cpuset.", "memory.", "io.", "pids.", "hugetlb.", "rdma.",
						  "misc."};
	json_object *u = member(resources, "unified");
	if (!u)
		return 0;
	json_object_object_foreach(u, key, val) {
		size_t len = strlen(key), k;
		for (k = 0; k < ARRAY_SIZE(controllers); k++)
			if (strncmp(key, controllers[k], strlen(controllers[k])) == 0)
				break;
		bool ok = k < ARRAY_SIZE(controllers) && len > strlen(controllers[k]) && len <= 255 &&
			  strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len &&
			  !strstr(key, "..") && key[len - 1] != '.';
		if (!ok)
			return refuse(err, errlen, rule, "cgroup v2 resource files only", -EPERM,
				      "linux.resources.unified[\"%.64s\"]: not a file of a resource controller (cpu, cpuset, "
				      "memory, io, pids, hugetlb, rdma, misc)",
				      key);
		const char *v = json_object_get_string(val);
		size_t vl = (size_t)json_object_get_string_len(val); /* a \u0000 inside counts */
		if (vl > 4096)
			return BAD("linux.resources.unified[\"%.64s\"]: longer than 4096 bytes", key);
		for (size_t c = 0; c < vl; c++)
			if ((unsigned char)v[c] < 0x20 && v[c] != '\n')
				return BAD("linux.resources.unified[\"%.64s\"]: a control character in the value", key);
	}
	return 0;
}

/* What linux.resources may say beyond its fields' types (checked before):
 * the privileged rule, the device rules, the cgroup v2 files. */
static int check_resources(json_object *resources, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			   const char **rule)
{
	int r;
	if ((r = check_resources_privileged(resources, ctx, err, errlen, rule)) < 0 ||
	    (r = check_device_rules(resources, ctx, err, errlen, rule)) < 0 ||
	    (r = check_unified(resources, err, errlen, rule)) < 0)
		return r;
	return 0;
}

int spawnd_policy_devices(const struct criod_config *cfg, bool *all, struct policy_device **out, size_t *n)
{
	struct policy_device *v = NULL;
	size_t nv = 0;

	*out = NULL;
	*n = 0;
	*all = devices_all(cfg);
	if (*all)
		return 0;
	for (size_t i = 0; i < cfg->n_allowed_devices; i++) {
		glob_t g;
		if (glob(cfg->allowed_devices[i], GLOB_NOSORT, NULL, &g) != 0)
			continue; /* nothing there now */
		for (size_t j = 0; j < g.gl_pathc && nv < DEVICES_MAX; j++) {
			struct stat st;
			/* the node itself, not what a symlink in /dev points to */
			if (lstat(g.gl_pathv[j], &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
				continue;
			struct policy_device *nv2 = realloc(v, (nv + 1) * sizeof(*v));
			if (!nv2) {
				globfree(&g);
				free(v);
				return -ENOMEM;
			}
			v = nv2;
			v[nv++] = (struct policy_device){S_ISCHR(st.st_mode) ? 'c' : 'b', major(st.st_rdev),
							 minor(st.st_rdev)};
		}
		globfree(&g);
	}
	*out = v;
	*n = nv;
	return 0;
}

/* ---------------------------------------------------------------- entry points */

int spawnd_policy_check_spec(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			     const char **rule)
{
	int r;

	*rule = POLICY_RULE_SPEC;
	if (err && errlen)
		err[0] = '\0';
	if (!json_object_is_type(spec, json_type_object))
		return BAD("must be a JSON object");
	if ((r = check_fields(spec, "", f_spec, err, errlen, rule)) < 0)
		return r;
	json_object *process = member(spec, "process"), *linux_ = member(spec, "linux");
	if ((r = check_privileged(spec, ctx, err, errlen, rule)) < 0 ||
	    (r = check_caps(process, ctx->cfg, err, errlen, rule)) < 0 ||
	    (r = check_mounts(spec, ctx, err, errlen, rule)) < 0 ||
	    (r = check_namespaces(linux_, ctx, err, errlen, rule)) < 0 ||
	    (r = check_devices(linux_, ctx, err, errlen, rule)) < 0 ||
	    (r = check_resources(member(linux_, "resources"), ctx, err, errlen, rule)) < 0 ||
	    (r = check_seccomp(linux_, ctx->cfg, err, errlen, rule)) < 0 ||
	    (r = check_apparmor(process, ctx, err, errlen, rule)) < 0 ||
	    (r = check_sysctls(linux_, ctx->cfg, err, errlen, rule)) < 0)
		return r;
	*rule = NULL;
	return 0;
}

/* ---------------------------------------------------------------- the host */

/* Whether the user could add, remove or rename entries of directory d, or
 * replace its entry e (sticky directories protect others' entries). */
static bool user_can_replace(const struct stat *d, const struct stat *e, uid_t uid, gid_t gid)
{
	bool w = d->st_uid == uid || (d->st_gid == gid ? (d->st_mode & S_IWGRP) : (d->st_mode & S_IWOTH));
	return w && (!(d->st_mode & S_ISVTX) || e->st_uid == uid || d->st_uid == uid);
}

/* No directory on the way to path (resolved, absolute) lets criod's user
 * replace what follows it, nor is the file itself criod's. */
static int path_out_of_reach(const char *path, uid_t uid, gid_t gid, char *bad, size_t badlen)
{
	char p[PATH_MAX];
	struct stat d, e;
	size_t len = strlen(path);

	if (len >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, path, len + 1);
	if (lstat("/", &d) < 0)
		return -errno;
	for (char *c = p + 1; *c;) {
		char *slash = strchr(c, '/');
		if (slash)
			*slash = '\0';
		if (lstat(p, &e) < 0)
			return -errno;
		if (user_can_replace(&d, &e, uid, gid) || e.st_uid == uid) {
			snprintf(bad, badlen, "%s", p);
			return -EPERM;
		}
		if (!slash)
			break;
		*slash = '/';
		d = e;
		c = slash + 1;
	}
	return 0;
}

/* The pod's file name below pod_files_dir: a regular file reached without
 * a symlink; pinned (read now, the mount's source moved to the copy in the
 * bundle) when ctx asks for it. */
static int check_pod_file(json_object *m, const char *what, const struct spawnd_policy_ctx *ctx, const char *name,
			  char *err, size_t errlen, const char **rule)
{
	_cleanup_close_ int dir = open(ctx->pod_files_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return DENY("host_path_prefixes", "%s: the pod's directory %s: %s", what, ctx->pod_files_dir,
			    strerror(errno));
	/* O_NONBLOCK: a FIFO criod put there does not hang the open (criod
	 * cannot make device nodes). */
	_cleanup_close_ int fd = openat2_retry(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
					       RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return DENY("host_path_prefixes", "%s: the pod's %s is not a regular file (%s)", what, name,
			    fd < 0 ? strerror(-fd) : "a directory or special file");
	if (!ctx->pins || !ctx->bundle_dir)
		return 0;
	struct spawnd_policy_pins *pins = ctx->pins;
	if ((size_t)st.st_size > POLICY_POD_FILE_MAX)
		return DENY("host_path_prefixes", "%s: the pod's %s is larger than %u bytes", what, name,
			    POLICY_POD_FILE_MAX);
	size_t k;
	for (k = 0; k < pins->n; k++)
		if (strcmp(pins->f[k].name, name) == 0)
			break;
	if (k == pins->n) {
		if (k == ARRAY_SIZE(pins->f))
			return -E2BIG;
		_cleanup_free_ char *data = malloc(POLICY_POD_FILE_MAX + 1);
		if (!data)
			return -ENOMEM;
		size_t len = 0;
		for (;;) {
			ssize_t n = read(fd, data + len, POLICY_POD_FILE_MAX + 1 - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return DENY("host_path_prefixes", "%s: the pod's %s: %s", what, name, strerror(errno));
			if (n == 0)
				break;
			len += (size_t)n;
			if (len > POLICY_POD_FILE_MAX)
				return DENY("host_path_prefixes", "%s: the pod's %s is larger than %u bytes", what, name,
					    POLICY_POD_FILE_MAX);
		}
		snprintf(pins->f[k].name, sizeof(pins->f[k].name), "%s", name);
		pins->f[k].data = TAKE_PTR(data);
		pins->f[k].len = len;
		pins->f[k].mode = 0644;
		pins->n++;
	}
	_cleanup_free_ char *copy = NULL;
	if (asprintf(&copy, "%s/%s", ctx->bundle_dir, name) < 0)
		return -ENOMEM;
	json_object *src = json_object_new_string(copy);
	if (!src || json_object_object_add(m, "source", src) < 0) {
		json_object_put(src);
		return -ENOMEM;
	}
	return 0;
}

int spawnd_policy_pins_write(const struct spawnd_policy_pins *pins, const char *bundle, char *err, size_t errlen)
{
	for (size_t i = 0; pins && i < pins->n; i++) {
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s", bundle, pins->f[i].name) < 0)
			return -ENOMEM;
		int r = write_file_boot(path, pins->f[i].data, pins->f[i].len, pins->f[i].mode);
		if (r < 0) {
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-r));
			return r;
		}
	}
	return 0;
}

void spawnd_policy_pins_free(struct spawnd_policy_pins *pins)
{
	if (!pins)
		return;
	for (size_t i = 0; i < pins->n; i++)
		free(pins->f[i].data);
	pins->n = 0;
}

int spawnd_policy_check_host(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			     const char **rule)
{
	json_object *a = member(spec, "mounts");

	*rule = POLICY_RULE_SPEC;
	if (ctx->cfg->allow_any_host_path)
		return 0;
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *m = json_object_array_get_idx(a, i);
		const char *src = mstr(m, "source"), *name;
		char what[64], bad[PATH_MAX];
		int r;

		if (!opts_bind(m) || !src)
			continue;
		snprintf(what, sizeof(what), "mounts[%zu]", i);
		switch (source_kind(src, ctx, &name)) {
		case SRC_POD_FILE:
			r = check_pod_file(m, what, ctx, name, err, errlen, rule);
			if (r < 0)
				return r;
			continue;
		case SRC_POD_SHM:
		case SRC_HOST_SHM:
			continue;
		case SRC_HOST:
			break;
		}
		_cleanup_free_ char *real = realpath(src, NULL);
		if (!real) {
			if (errno == ENOMEM)
				return -ENOMEM;
			return refuse(err, errlen, rule, KEY("host_path_prefixes"), -ENOENT,
				      "%s: host path %.256s cannot be resolved: %s", what, src, strerror(errno));
		}
		if (strcmp(real, src) != 0) {
			r = host_path_allowed(what, real, opts_readonly(member(m, "options")), ctx->cfg, err, errlen, rule);
			if (r < 0) {
				size_t n = strlen(err);
				snprintf(err + n, errlen > n ? errlen - n : 0, " (%.256s resolved)", src);
				return r;
			}
		}
		r = path_out_of_reach(real, ctx->criod_uid, ctx->criod_gid, bad, sizeof(bad));
		if (r == -EPERM)
			return DENY("host_path_prefixes", "%s: host path %.256s: criod's user could replace %.256s", what,
				    src, bad);
		if (r < 0)
			return refuse(err, errlen, rule, KEY("host_path_prefixes"), r, "%s: host path %.256s: %s", what,
				      src, strerror(-r));
	}
	*rule = NULL;
	return 0;
}

int spawnd_policy_check(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			const char **rule)
{
	struct spawnd_policy_ctx c = *ctx;
	_cleanup_free_ struct policy_device *devs = NULL;
	bool all;
	int r = spawnd_policy_devices(ctx->cfg, &all, &devs, &c.n_devices);
	if (r < 0)
		return r;
	c.devices = devs;
	r = spawnd_policy_check_spec(spec, &c, err, errlen, rule);
	if (r < 0)
		return r;
	return spawnd_policy_check_host(spec, &c, err, errlen, rule);
}

bool spawnd_policy_resources_privileged(json_object *resources)
{
	json_object *rules = member(resources, "devices");
	/* any JSON: conmon asks this of the config.json it reads back */
	if (!json_object_is_type(rules, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(rules); i++)
		if (rule_all_devices(json_object_array_get_idx(rules, i)))
			return true;
	return false;
}

int spawnd_policy_check_resources(json_object *resources, const struct spawnd_policy_ctx *ctx, char *err,
				  size_t errlen, const char **rule)
{
	int r;

	*rule = POLICY_RULE_SPEC;
	if (err && errlen)
		err[0] = '\0';
	if (!json_object_is_type(resources, json_type_object))
		return BAD("linux.resources: must be a JSON object");
	if ((r = check_fields(resources, "linux.resources", f_resources, err, errlen, rule)) < 0 ||
	    (r = check_resources(resources, ctx, err, errlen, rule)) < 0)
		return r;
	*rule = NULL;
	return 0;
}

int spawnd_policy_enforce_resources(json_object *resources, const struct spawnd_policy_ctx *ctx, const char *req,
				    const char *id, char *err, size_t errlen)
{
	struct spawnd_policy_ctx c = *ctx;
	_cleanup_free_ struct policy_device *devs = NULL;
	const char *rule = POLICY_RULE_SPEC;
	char why[1024];
	bool all;

	int r = spawnd_policy_devices(ctx->cfg, &all, &devs, &c.n_devices);
	if (r >= 0) {
		c.devices = devs;
		r = spawnd_policy_check_resources(resources, &c, why, sizeof(why), &rule);
	}
	if (r >= 0)
		return STATUS_OK;
	if (r == -ENOMEM) {
		snprintf(err, errlen, "out of memory");
		return STATUS_RESOURCE_EXHAUSTED;
	}
	/* The checks name the document they read at create; here it is the
	 * request's linux_resources_json, checked as the spec's linux.resources. */
	const char *doc = strstr(why, "config_json");
	if (doc)
		snprintf(err, errlen, "%.*slinux_resources_json%s", (int)(doc - why), why, doc + STRLEN("config_json"));
	else
		snprintf(err, errlen, "%s", why);
	log_warn(req, "refused container resources", "id=%s pod=%s rule=\"%s\" error=\"%s\"", id,
		 ctx->pod_id ? ctx->pod_id : "-", rule ? rule : POLICY_RULE_SPEC, err);
	return r == -EINVAL ? STATUS_INVALID_ARGUMENT : r == -EPERM ? STATUS_PERMISSION_DENIED : status_from_errno(r);
}

static bool host_apparmor(void)
{
	static int v = -1;
	if (v < 0) {
		_cleanup_free_ char *buf = NULL;
		size_t len;
		v = read_file("/sys/module/apparmor/parameters/enabled", 16, &buf, &len) == 0 && len > 0 && buf[0] == 'Y';
	}
	return v == 1;
}

int spawnd_policy_enforce(json_object *spec, const struct spawnd_policy_ctx *ctx, const char *req, const char *id,
			  const char *pod_id, char *err, size_t errlen)
{
	struct spawnd_policy_ctx c = *ctx;
	const char *rule = POLICY_RULE_SPEC;

	c.apparmor_enabled = host_apparmor();
	int r = spawnd_policy_check(spec, &c, err, errlen, &rule);
	if (r >= 0)
		return STATUS_OK;
	if (r == -ENOMEM) {
		snprintf(err, errlen, "out of memory");
		return STATUS_RESOURCE_EXHAUSTED;
	}
	log_warn(req, "refused container spec", "id=%s pod=%s rule=\"%s\" error=\"%s\"", id, pod_id,
		 rule ? rule : POLICY_RULE_SPEC, err);
	return r == -EINVAL ? STATUS_INVALID_ARGUMENT
	       : r == -EPERM ? STATUS_PERMISSION_DENIED
	       : r == -ENOENT ? STATUS_FAILED_PRECONDITION
			      : status_from_errno(r);
}
