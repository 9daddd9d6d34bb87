/* The OCI runtime spec of a container (see oci_spec.h). The rules follow
 * what kubelet expects of a CRI runtime and how containerd's CRI plugin and
 * CRI-O build the spec:
 *
 * - process.args: config.command replaces the image Entrypoint (and drops
 *   the image Cmd); config.args replaces the image Cmd; nothing at all is
 *   INVALID_ARGUMENT. env: HOSTNAME, the image Env, then config.envs, each
 *   replacing an earlier value of the same key; PATH added when missing.
 *   cwd: config.working_dir, the image WorkingDir, "/".
 * - user: run_as_user / run_as_username (/etc/passwd), run_as_group, else
 *   the image User ("uid", "uid:gid", "name", "name:group"); additionalGids
 *   are the primary gid, the user's /etc/group memberships (not with the
 *   Strict policy) and supplemental_groups.
 * - capabilities: runc's default set, add/drop ("ALL", with or without
 *   "CAP_", any case), ambient additions in every set; privileged: all.
 *   "All" is what the caller holds (host_cap_bounding), as in containerd.
 *   A privileged container needs a privileged pod; it also gets no masked
 *   or read-only paths, no seccomp, no RuntimeDefault AppArmor, writable
 *   /sys and /sys/fs/cgroup, and every device allowed in the device cgroup.
 *   The host's device nodes are not listed here (that is I/O): the caller
 *   passes them in oci_spec_input.devices.
 * - namespaces: network/IPC/UTS of the pod (or the host's when the pod has
 *   none), PID per namespace_options.pid, a new mount namespace, a new
 *   cgroup namespace on cgroup v2. spec.hostname stays unset: containers
 *   always join the pod's (or the host's) UTS namespace.
 * - mounts: the usual /proc, /dev, /dev/pts, /dev/mqueue, /sys,
 *   /sys/fs/cgroup; /dev/shm is the pod's tmpfs (bind), the host's
 *   /dev/shm for a host-IPC pod (as containerd and CRI-O do), or a tmpfs of
 *   its own when the pod has an IPC namespace but no shm; the pod's
 *   hostname, hosts and resolv.conf (read-only with a read-only rootfs);
 *   then config.mounts ("rbind", propagation, ro/rw), sorted by depth. A
 *   CRI mount replaces a default one at the same place (a CRI /dev every
 *   default under /dev).
 * - seccomp (RuntimeDefault: the built-in profile, Localhost: a file the
 *   caller reads), AppArmor, sysctls (namespaced ones only), resources,
 *   devices, cgroupsPath, annotations.
 * Every error names the field, and is -EINVAL unless memory ran out. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "beneath.h" /* path_is_clean_abs */
#include "caps.h"
#include "macro.h"
#include "oci_internal.h"
#include "oci_spec.h"
#include "seccomp_profile.h" /* SECCOMP_PROFILE_MAX, shared with spawnd */
#include "util.h"

#define OCI_VERSION "1.0.2"
#define DEFAULT_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CRI_PREFIX "criod"

#define IMAGE_CONFIG_MAX (16u << 20)

#define SC_FIELD "config.linux.security_context"
#define RES_FIELD "config.linux.resources"

/* ---- capabilities ---- */

/* One CRI capability list; "ALL" sets *all. */
static int cap_list(char *const *names, size_t n, const char *field, uint64_t *mask, bool *all, char *err,
		    size_t errlen)
{
	*mask = 0;
	*all = false;
	for (size_t i = 0; i < n; i++) {
		int c;

		if (strcasecmp(names[i], "ALL") == 0) {
			*all = true;
			continue;
		}
		c = cap_lookup(names[i]);
		if (c < 0)
			return errf(err, errlen, -EINVAL, SC_FIELD ".capabilities.%s[%zu]: unknown capability \"%.64s\"",
				    field, i, names[i]);
		*mask |= CAPBIT(c);
	}
	return 0;
}

static json_object *cap_json(struct jb *b, uint64_t mask)
{
	json_object *a = json_object_new_array();

	if (!a)
		b->oom = true;
	for (size_t i = 0; a && i < CAP_COUNT; i++)
		if (mask & CAPBIT(i))
			jpush(b, a, jstr(cap_names[i]));
	return a;
}

/* ---- the build ---- */

struct build {
	const struct oci_spec_input *in;
	const struct oci_pod_info *pod;
	const Runtime__V1__ContainerConfig *cfg;
	const Runtime__V1__LinuxContainerSecurityContext *sc; /* NULL when not given */
	const Runtime__V1__LinuxContainerResources *res;      /* NULL when not given */
	char *err;
	size_t errlen;
	struct jb jb;
	bool privileged;
	json_object *image_doc; /* owned */
	json_object *img;       /* its "config" object, or NULL */
	uint64_t cap_bounding, cap_ambient;
	json_object *mounts;    /* the spec's mounts array (for image volumes) */
	const char *rootfs_propagation; /* from the CRI mounts, NULL = runc's default */
};

#define FAIL(b, ...) errf((b)->err, (b)->errlen, -EINVAL, __VA_ARGS__)

/* ---- the image config ---- */

static int image_parse(struct build *b)
{
	const char *t = b->in->image_config_json;
	static const struct {
		const char *key;
		json_type type; /* json_type_array: of strings */
	} fields[] = {
		{ "User", json_type_string },	     { "Env", json_type_array },
		{ "Entrypoint", json_type_array },   { "Cmd", json_type_array },
		{ "WorkingDir", json_type_string },  { "Volumes", json_type_object },
		{ "StopSignal", json_type_string },
	};
	int r = 0;

	if (!t || !*t)
		return 0;
	b->image_doc = parse_doc("image config", t, IMAGE_CONFIG_MAX, &r, b->err, b->errlen);
	if (!b->image_doc)
		return r;
	b->img = member(b->image_doc, "config");
	if (!b->img)
		return 0;
	if (!json_object_is_type(b->img, json_type_object))
		return FAIL(b, "image config: config: not an object");
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		json_object *v = member(b->img, fields[i].key);
		if (!v)
			continue;
		if (fields[i].type == json_type_array ? !is_string_array(v) : !json_object_is_type(v, fields[i].type))
			return FAIL(b, "image config %s: not %s", fields[i].key,
				    fields[i].type == json_type_array ? "an array of strings"
				    : fields[i].type == json_type_object ? "an object"
									 : "a string");
	}
	return 0;
}

static const char *img_str(struct build *b, const char *key)
{
	json_object *v = member(b->img, key);

	return v ? json_object_get_string(v) : "";
}

/* ---- process: args, env, cwd ---- */

static int build_args(struct build *b, struct strv *argv)
{
	const Runtime__V1__ContainerConfig *c = b->cfg;
	json_object *ep = member(b->img, "Entrypoint"), *cmd = member(b->img, "Cmd");
	int r = 0;

	if (c->n_command > 0) {
		/* command replaces the Entrypoint, and the image's Cmd goes with it */
		for (size_t i = 0; r == 0 && i < c->n_command; i++)
			r = strv_push(argv, c->command[i]);
		for (size_t i = 0; r == 0 && i < c->n_args; i++)
			r = strv_push(argv, c->args[i]);
	} else {
		/* An Entrypoint of [""] is Docker's way of clearing it. */
		if (ep && !(json_object_array_length(ep) == 1 && astr(ep, 0)[0] == '\0'))
			for (size_t i = 0; r == 0 && i < json_object_array_length(ep); i++)
				r = strv_push(argv, astr(ep, i));
		if (c->n_args > 0)
			for (size_t i = 0; r == 0 && i < c->n_args; i++)
				r = strv_push(argv, c->args[i]);
		else if (cmd)
			for (size_t i = 0; r == 0 && i < json_object_array_length(cmd); i++)
				r = strv_push(argv, astr(cmd, i));
	}
	if (r < 0)
		return errf(b->err, b->errlen, r, "out of memory");
	if (argv->n == 0)
		return FAIL(b, "config.command: no command specified (neither the container config nor the image has one)");
	return 0;
}

/* Set KEY=VALUE, replacing an earlier value of KEY in place. */
static int env_set(struct strv *env, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);

	for (size_t i = 0; i < env->n; i++) {
		const char *e = env->v[i];
		if (strncmp(e, kv, klen) == 0 && (e[klen] == '=' || e[klen] == '\0')) {
			char *n = strdup(kv);
			if (!n)
				return -ENOMEM;
			free(env->v[i]);
			env->v[i] = n;
			return 0;
		}
	}
	return strv_push(env, kv);
}

static bool env_has(const struct strv *env, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < env->n; i++)
		if (strncmp(env->v[i], key, klen) == 0 && (env->v[i][klen] == '=' || env->v[i][klen] == '\0'))
			return true;
	return false;
}

static int build_env(struct build *b, struct strv *env)
{
	const Runtime__V1__ContainerConfig *c = b->cfg;
	const Runtime__V1__PodSandboxConfig *pc = b->in->pod_config;
	json_object *ienv = member(b->img, "Env");
	const char *hostname = pc && pc->hostname && *pc->hostname ? pc->hostname : str(b->in->node_hostname);
	int r = 0;

	if (*hostname) {
		char *kv;
		if (asprintf(&kv, "HOSTNAME=%s", hostname) < 0)
			kv = NULL;
		r = strv_push_take(env, kv);
	}
	for (size_t i = 0; r == 0 && ienv && i < json_object_array_length(ienv); i++)
		if (astr(ienv, i)[0] && astr(ienv, i)[0] != '=')
			r = env_set(env, astr(ienv, i));
	for (size_t i = 0; r == 0 && i < c->n_envs; i++) {
		const Runtime__V1__KeyValue *kv = c->envs[i];
		char *s;
		if (!kv || !kv->key || !kv->key[0] || strchr(kv->key, '='))
			return FAIL(b, "config.envs[%zu].key: must be non-empty and not contain '='", i);
		if (asprintf(&s, "%s=%s", kv->key, str(kv->value)) < 0)
			return errf(b->err, b->errlen, -ENOMEM, "out of memory");
		r = env_set(env, s);
		free(s);
	}
	if (r == 0 && !env_has(env, "PATH"))
		r = strv_push(env, DEFAULT_PATH_ENV);
	if (r < 0)
		return errf(b->err, b->errlen, r, "out of memory");
	return 0;
}

static int build_cwd(struct build *b, char **cwd)
{
	const char *wd = b->cfg->working_dir;

	if (wd && *wd) {
		if (wd[0] != '/' || str_has_ctl(wd))
			return FAIL(b, "config.working_dir: must be an absolute path");
		*cwd = strdup(wd);
	} else if (*(wd = img_str(b, "WorkingDir"))) {
		/* Docker resolves a relative WorkingDir against "/". */
		_cleanup_free_ char *abs = NULL;
		if (str_has_ctl(wd))
			return FAIL(b, "image config WorkingDir: invalid characters");
		if (asprintf(&abs, "/%s", wd) < 0)
			abs = NULL;
		*cwd = abs ? path_clean_abs(abs) : NULL;
	} else
		*cwd = strdup("/");
	if (!*cwd)
		return errf(b->err, b->errlen, -ENOMEM, "out of memory");
	return 0;
}

struct ident {
	uint32_t uid, gid;
	char name[NAME_MAX_LEN]; /* "" when the uid has no /etc/passwd entry */
};

static void ident_by_uid(struct build *b, uint32_t uid, struct ident *id)
{
	struct pw_query q = { .name = NULL, .uid = uid };

	id->uid = uid;
	id->gid = 0;
	id->name[0] = '\0';
	if (db_scan(b->in->etc_passwd, 4, pw_match, &q)) {
		id->gid = q.out_gid;
		memcpy(id->name, q.out_name, sizeof(id->name));
	}
}

static int ident_by_name(struct build *b, const char *name, const char *field, struct ident *id)
{
	struct pw_query q = { .name = name };

	if (!db_scan(b->in->etc_passwd, 4, pw_match, &q)) {
		if (!b->in->etc_passwd)
			return FAIL(b, "%s: user \"%.64s\" not found: the image has no /etc/passwd", field, name);
		return FAIL(b, "%s: user \"%.64s\" not found in the image's /etc/passwd", field, name);
	}
	id->uid = q.out_uid;
	id->gid = q.out_gid;
	memcpy(id->name, q.out_name, sizeof(id->name));
	return 0;
}

static int group_by_name(struct build *b, const char *name, const char *field, uint32_t *gid)
{
	struct gr_query q = { .name = name };

	if (!db_scan(b->in->etc_group, 3, gr_match, &q)) {
		if (!b->in->etc_group)
			return FAIL(b, "%s: group \"%.64s\" not found: the image has no /etc/group", field, name);
		return FAIL(b, "%s: group \"%.64s\" not found in the image's /etc/group", field, name);
	}
	*gid = q.out_gid;
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < NAME_MAX_LEN && !str_has_ctl(s) && !strchr(s, ':');
}

/* The image's User: "uid", "uid:gid", "name", "name:group" (and mixes). */
static int ident_from_image(struct build *b, const char *spec, struct ident *id)
{
	static const char field[] = "image config User";
	_cleanup_free_ char *user = strdup(spec);
	char *group;
	uint32_t n;
	int r;

	if (!user)
		return errf(b->err, b->errlen, -ENOMEM, "out of memory");
	group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	if (!name_ok(user) || (group && !name_ok(group)))
		return FAIL(b, "%s: invalid user \"%.64s\"", field, spec);
	if (parse_id(user, strlen(user), &n))
		ident_by_uid(b, n, id); /* an unknown numeric uid is fine: gid 0 */
	else if ((r = ident_by_name(b, user, field, id)) < 0)
		return r;
	if (group) {
		if (parse_id(group, strlen(group), &n))
			id->gid = n;
		else if ((r = group_by_name(b, group, field, &id->gid)) < 0)
			return r;
	}
	return 0;
}

static int build_user(struct build *b, struct ident *id, struct gidv *gids)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc = b->sc;
	const char *username = sc ? str(sc->run_as_username) : "";
	const char *image_user = img_str(b, "User");
	int r;

	if (sc && sc->run_as_user && *username)
		return FAIL(b, SC_FIELD ": run_as_user and run_as_username are both set");
	/* The CRI: run_as_group "may only be set if run_as_user is set". */
	if (sc && sc->run_as_group && !sc->run_as_user && !*username)
		return FAIL(b, SC_FIELD ".run_as_group is set without run_as_user or run_as_username");
	if (sc && sc->run_as_user) {
		int64_t v = sc->run_as_user->value;
		if (v < 0 || v > (int64_t)UINT32_MAX - 1)
			return FAIL(b, SC_FIELD ".run_as_user: %" PRId64 " is not a valid uid", v);
		ident_by_uid(b, (uint32_t)v, id);
	} else if (*username) {
		if (!name_ok(username))
			return FAIL(b, SC_FIELD ".run_as_username: invalid user name");
		if ((r = ident_by_name(b, username, SC_FIELD ".run_as_username", id)) < 0)
			return r;
	} else if (*image_user) {
		if ((r = ident_from_image(b, image_user, id)) < 0)
			return r;
	} else
		ident_by_uid(b, 0, id);
	if (sc && sc->run_as_group) {
		int64_t v = sc->run_as_group->value;
		if (v < 0 || v > (int64_t)UINT32_MAX - 1)
			return FAIL(b, SC_FIELD ".run_as_group: %" PRId64 " is not a valid gid", v);
		id->gid = (uint32_t)v;
	}

	/* additionalGids: the primary group, the image's memberships, the
	 * supplemental groups. */
	if ((r = gidv_add(gids, id->gid)) < 0)
		return errf(b->err, b->errlen, r, "out of memory");
	if (id->name[0] && !(sc && sc->supplemental_groups_policy == RUNTIME__V1__SUPPLEMENTAL_GROUPS_POLICY__Strict)) {
		struct gr_members q = { .user = id->name, .gids = gids, .r = 0 };
		db_scan(b->in->etc_group, 4, gr_member, &q);
		if (q.r == -E2BIG)
			return FAIL(b, "image /etc/group: the user is in more than %d groups", GROUPS_MAX);
		if (q.r < 0)
			return errf(b->err, b->errlen, q.r, "out of memory");
	}
	if (sc && sc->supplemental_groups_policy != RUNTIME__V1__SUPPLEMENTAL_GROUPS_POLICY__Merge &&
	    sc->supplemental_groups_policy != RUNTIME__V1__SUPPLEMENTAL_GROUPS_POLICY__Strict)
		return FAIL(b, SC_FIELD ".supplemental_groups_policy: unknown policy %d", (int)sc->supplemental_groups_policy);
	for (size_t i = 0; sc && i < sc->n_supplemental_groups; i++) {
		int64_t v = sc->supplemental_groups[i];
		if (v < 0 || v > (int64_t)UINT32_MAX - 1)
			return FAIL(b, SC_FIELD ".supplemental_groups[%zu]: %" PRId64 " is not a valid gid", i, v);
		if ((r = gidv_add(gids, (uint32_t)v)) < 0)
			return r == -E2BIG ? FAIL(b, SC_FIELD ".supplemental_groups: more than %d groups", GROUPS_MAX)
					   : errf(b->err, b->errlen, r, "out of memory");
	}
	return 0;
}

/* ---- capabilities ---- */

static int build_caps(struct build *b)
{
	const Runtime__V1__Capability *c = b->sc ? b->sc->capabilities : NULL;
	uint64_t add = 0, drop = 0, amb = 0, base, all = CAP_ALL_MASK;
	bool add_all = false, drop_all = false, amb_all = false;
	int r;

	if (c) {
		if ((r = cap_list(c->add_capabilities, c->n_add_capabilities, "add_capabilities", &add, &add_all, b->err,
				  b->errlen)) < 0 ||
		    (r = cap_list(c->drop_capabilities, c->n_drop_capabilities, "drop_capabilities", &drop, &drop_all,
				  b->err, b->errlen)) < 0 ||
		    (r = cap_list(c->add_ambient_capabilities, c->n_add_ambient_capabilities, "add_ambient_capabilities",
				  &amb, &amb_all, b->err, b->errlen)) < 0)
			return r;
	}
	if (b->in->host_cap_bounding)
		all &= b->in->host_cap_bounding;
	if (b->privileged)
		base = all;
	else {
		/* "ALL" first, so that add ALL + drop X is all but X, and
		 * drop ALL + add X is only X. */
		base = CAP_DEFAULT_MASK;
		if (add_all)
			base = all;
		if (drop_all)
			base = 0;
		base = (base | add) & ~drop;
	}
	if (amb_all)
		amb = all;
	/* An ambient capability must be permitted and inheritable too. */
	b->cap_bounding = base | amb;
	b->cap_ambient = amb;
	return 0;
}

/* ---- seccomp and AppArmor selection ---- */

/* The deprecated string forms are still honoured when the profile messages
 * are absent; reading them is what the deprecation is about. */
static const char *legacy_seccomp_path(const Runtime__V1__LinuxContainerSecurityContext *sc)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	return sc ? str(sc->seccomp_profile_path) : "";
#pragma GCC diagnostic pop
}

static const char *legacy_apparmor_profile(const Runtime__V1__LinuxContainerSecurityContext *sc)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	return sc ? str(sc->apparmor_profile) : "";
#pragma GCC diagnostic pop
}

enum profile { PROFILE_NONE, PROFILE_DEFAULT, PROFILE_LOCALHOST };

static int seccomp_select(const struct oci_spec_input *in, enum profile *kind, const char **path, char *err,
			  size_t errlen)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc = in->config->linux ? in->config->linux->security_context : NULL;
	const char *ref, *field, *root = str(in->seccomp_profile_root);

	*kind = PROFILE_NONE;
	*path = NULL;
	if (!sc || sc->privileged)
		return 0; /* privileged: never a seccomp profile */
	if (sc->seccomp) {
		const Runtime__V1__SecurityProfile *sp = sc->seccomp;
		field = SC_FIELD ".seccomp.localhost_ref";
		ref = str(sp->localhost_ref);
		if (sp->profile_type != RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost && *ref)
			return errf(err, errlen, -EINVAL, "%s: only valid with profile_type Localhost", field);
		switch (sp->profile_type) {
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault:
			*kind = PROFILE_DEFAULT;
			return 0;
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined:
			return 0;
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost:
			break;
		default:
			return errf(err, errlen, -EINVAL, SC_FIELD ".seccomp.profile_type: unknown type %d",
				    (int)sp->profile_type);
		}
	} else {
		/* the deprecated string form */
		const char *legacy = legacy_seccomp_path(sc);
		field = SC_FIELD ".seccomp_profile_path";
		if (!*legacy || strcmp(legacy, "unconfined") == 0)
			return 0;
		if (strcmp(legacy, "runtime/default") == 0 || strcmp(legacy, "docker/default") == 0) {
			*kind = PROFILE_DEFAULT;
			return 0;
		}
		if (strncmp(legacy, "localhost/", STRLEN("localhost/")) != 0)
			return errf(err, errlen, -EINVAL, "%s: unsupported profile \"%.100s\"", field, legacy);
		ref = legacy;
	}
	if (strncmp(ref, "localhost/", STRLEN("localhost/")) == 0)
		ref += STRLEN("localhost/");
	if (!path_is_clean_abs(ref, strlen(ref)) || strcmp(ref, "/") == 0 || str_has_ctl(ref))
		return errf(err, errlen, -EINVAL, "%s: \"%.100s\" is not a clean absolute path", field, ref);
	if (*root && (!path_under(ref, root) || strcmp(ref, root) == 0))
		return errf(err, errlen, -EINVAL, "%s: \"%.100s\" is not under the seccomp profile root %s", field, ref, root);
	*kind = PROFILE_LOCALHOST;
	*path = ref;
	return 0;
}

int oci_spec_seccomp_localhost_path(const struct oci_spec_input *in, const char **path, char *err, size_t errlen)
{
	enum profile kind;

	if (err && errlen)
		err[0] = '\0';
	if (!path)
		return errf(err, errlen, -EINVAL, "no output");
	*path = NULL;
	if (!in || !in->config)
		return errf(err, errlen, -EINVAL, "config: missing");
	return seccomp_select(in, &kind, path, err, errlen);
}

static int build_seccomp(struct build *b, json_object *linux_)
{
	enum profile kind;
	const char *path;
	json_object *o;
	int r;

	r = seccomp_select(b->in, &kind, &path, b->err, b->errlen);
	if (r < 0 || kind == PROFILE_NONE)
		return r;
	if (kind == PROFILE_LOCALHOST && !b->in->localhost_seccomp_json)
		return FAIL(b, "%s: the contents of profile %s were not provided",
			    b->sc->seccomp ? SC_FIELD ".seccomp.localhost_ref" : SC_FIELD ".seccomp_profile_path", path);
	r = oci_seccomp_build(kind == PROFILE_DEFAULT ? oci_default_seccomp_profile : b->in->localhost_seccomp_json,
			  b->cap_bounding, NULL, &o, b->err, b->errlen);
	if (r < 0) {
		/* name the field: prefix the converter's message */
		char msg[384];
		snprintf(msg, sizeof(msg), "%s", b->err ? b->err : "");
		return errf(b->err, b->errlen, r, "%s (%s): %s",
			    kind == PROFILE_DEFAULT ? SC_FIELD ".seccomp" : SC_FIELD ".seccomp.localhost_ref",
			    kind == PROFILE_DEFAULT ? "RuntimeDefault" : path, msg);
	}
	jadd(&b->jb, linux_, "seccomp", o);
	return 0;
}

static bool apparmor_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int build_apparmor(struct build *b, json_object *process)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc = b->sc;
	const Runtime__V1__SecurityProfile *sp = sc ? sc->apparmor : NULL;
	const char *field = SC_FIELD ".apparmor", *name = NULL;
	enum profile kind;

	if (sp) {
		if (sp->profile_type != RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost && str(sp->localhost_ref)[0])
			return FAIL(b, "%s.localhost_ref: only valid with profile_type Localhost", field);
		switch (sp->profile_type) {
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__RuntimeDefault:
			kind = PROFILE_DEFAULT;
			break;
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Unconfined:
			kind = PROFILE_NONE;
			break;
		case RUNTIME__V1__SECURITY_PROFILE__PROFILE_TYPE__Localhost:
			kind = PROFILE_LOCALHOST;
			name = str(sp->localhost_ref);
			break;
		default:
			return FAIL(b, "%s.profile_type: unknown type %d", field, (int)sp->profile_type);
		}
	} else {
		const char *legacy = legacy_apparmor_profile(sc);
		field = SC_FIELD ".apparmor_profile";
		if (!*legacy || strcmp(legacy, "runtime/default") == 0)
			kind = PROFILE_DEFAULT; /* nothing asked: the default, as containerd does */
		else if (strcmp(legacy, "unconfined") == 0)
			kind = PROFILE_NONE;
		else if (strncmp(legacy, "localhost/", STRLEN("localhost/")) == 0) {
			kind = PROFILE_LOCALHOST;
			name = legacy;
		} else
			return FAIL(b, "%s: unsupported profile \"%.100s\"", field, legacy);
	}
	if (kind == PROFILE_LOCALHOST) {
		if (strncmp(name, "localhost/", STRLEN("localhost/")) == 0)
			name += STRLEN("localhost/");
		if (!b->in->apparmor_enabled)
			return FAIL(b, "%s: AppArmor is not enabled on this host", field);
		if (!apparmor_name_ok(name))
			return FAIL(b, "%s: invalid profile name \"%.100s\"", field, name);
		jadd(&b->jb, process, "apparmorProfile", jstr(name));
	} else if (kind == PROFILE_DEFAULT && b->in->apparmor_enabled && !b->privileged)
		jadd(&b->jb, process, "apparmorProfile", jstr(OCI_APPARMOR_DEFAULT_PROFILE));
	return 0;
}

/* ---- process ---- */

static int build_process(struct build *b, json_object *spec, struct oci_spec_result *out)
{
	struct strv argv = { 0 }, env = { 0 };
	struct gidv gids = { 0 };
	_cleanup_free_ char *cwd = NULL;
	struct ident id;
	json_object *p, *u, *caps, *a;
	int64_t oom, min;
	int r;

	if ((r = build_args(b, &argv)) < 0 || (r = build_env(b, &env)) < 0 || (r = build_cwd(b, &cwd)) < 0 ||
	    (r = build_user(b, &id, &gids)) < 0 || (r = build_caps(b)) < 0)
		goto out;

	p = jadd(&b->jb, spec, "process", json_object_new_object());
	jadd(&b->jb, p, "terminal", json_object_new_boolean(b->cfg->tty));
	u = jadd(&b->jb, p, "user", json_object_new_object());
	jadd(&b->jb, u, "uid", json_object_new_int64(id.uid));
	jadd(&b->jb, u, "gid", json_object_new_int64(id.gid));
	a = jadd(&b->jb, u, "additionalGids", json_object_new_array());
	for (size_t i = 0; i < gids.n; i++)
		jpush(&b->jb, a, json_object_new_int64(gids.v[i]));
	jadd(&b->jb, p, "args", jstrv(&b->jb, argv.v, argv.n));
	jadd(&b->jb, p, "env", jstrv(&b->jb, env.v, env.n));
	jadd(&b->jb, p, "cwd", jstr(cwd));
	caps = jadd(&b->jb, p, "capabilities", json_object_new_object());
	jadd(&b->jb, caps, "bounding", cap_json(&b->jb, b->cap_bounding));
	jadd(&b->jb, caps, "effective", cap_json(&b->jb, b->cap_bounding));
	jadd(&b->jb, caps, "permitted", cap_json(&b->jb, b->cap_bounding));
	jadd(&b->jb, caps, "inheritable", cap_json(&b->jb, b->cap_ambient));
	jadd(&b->jb, caps, "ambient", cap_json(&b->jb, b->cap_ambient));
	jadd(&b->jb, p, "noNewPrivileges", json_object_new_boolean(b->sc && b->sc->no_new_privs));
	if ((r = build_apparmor(b, p)) < 0)
		goto out;

	oom = b->res ? b->res->oom_score_adj : 0;
	if (oom < -1000 || oom > 1000) {
		r = FAIL(b, RES_FIELD ".oom_score_adj: %" PRId64 " is out of range [-1000, 1000]", oom);
		goto out;
	}
	min = b->in->oom_score_adj_min;
	if (min < -1000)
		min = -1000;
	if (min > 1000)
		min = 1000;
	if (oom < min)
		oom = min;
	jadd(&b->jb, p, "oomScoreAdj", json_object_new_int64(oom));
	out->uid = id.uid;
	out->gid = id.gid;
	out->oom_score_adj = oom;
out:
	strv_free(&argv);
	strv_free(&env);
	free(gids.v);
	return r;
}

/* ---- mounts ---- */

static bool cri_has_mount(struct build *b, const char *dst)
{
	for (size_t i = 0; i < b->cfg->n_mounts; i++)
		if (b->cfg->mounts[i] && strcmp(str(b->cfg->mounts[i]->container_path), dst) == 0)
			return true;
	return false;
}

static int validate_cri_mounts(struct build *b)
{
	for (size_t i = 0; i < b->cfg->n_mounts; i++) {
		const Runtime__V1__Mount *m = b->cfg->mounts[i];
		const char *dst = m ? str(m->container_path) : "", *src = m ? str(m->host_path) : "";

		if (!m)
			return FAIL(b, "config.mounts[%zu]: missing", i);
		if (m->image && str(m->image->image)[0])
			return FAIL(b, "config.mounts[%zu].image: image volume mounts are not supported", i);
		if (!path_is_clean_abs(dst, strlen(dst)) || strcmp(dst, "/") == 0 || str_has_ctl(dst))
			return FAIL(b, "config.mounts[%zu].container_path: \"%.100s\" is not a clean absolute path", i, dst);
		if (src[0] != '/' || str_has_ctl(src))
			return FAIL(b, "config.mounts[%zu].host_path: \"%.100s\" is not an absolute path", i, src);
		if (m->n_uidmappings || m->n_gidmappings)
			return FAIL(b, "config.mounts[%zu].%s: ID-mapped mounts are not supported", i,
				    m->n_uidmappings ? "uidMappings" : "gidMappings");
		/* The CRI: recursive read-only needs readonly and no propagation
		 * (a mount that appears later would not be read-only). */
		if (m->recursive_read_only && !m->readonly)
			return FAIL(b, "config.mounts[%zu].recursive_read_only needs readonly", i);
		if (m->recursive_read_only && m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE)
			return FAIL(b, "config.mounts[%zu].recursive_read_only needs propagation PROPAGATION_PRIVATE", i);
		if (m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_PRIVATE &&
		    m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER &&
		    m->propagation != RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL)
			return FAIL(b, "config.mounts[%zu].propagation: unknown propagation %d", i, (int)m->propagation);
		for (size_t j = 0; j < i; j++)
			if (strcmp(str(b->cfg->mounts[j]->container_path), dst) == 0)
				return FAIL(b, "config.mounts[%zu].container_path: \"%.100s\" is mounted twice", i, dst);
		/* selinux_relabel: accepted, nothing to do without SELinux */
	}
	return 0;
}

static json_object *mount_obj(struct jb *jb, const char *dst, const char *type, const char *src,
			      const char *const *opts, size_t n_opts)
{
	json_object *m = json_object_new_object(), *o;

	if (!m) {
		jb->oom = true;
		return NULL;
	}
	jadd(jb, m, "destination", jstr(dst));
	jadd(jb, m, "type", jstr(type));
	jadd(jb, m, "source", jstr(src));
	o = jadd(jb, m, "options", json_object_new_array());
	for (size_t i = 0; i < n_opts; i++)
		if (opts[i])
			jpush(jb, o, jstr(opts[i]));
	return m;
}

struct xmount {
	json_object *m;
	size_t depth;
};

static int build_mounts(struct build *b, json_object *spec)
{
	const struct oci_pod_info *pod = b->pod;
	bool ro_rootfs = b->sc && b->sc->readonly_rootfs, host_ipc = !str(pod->ipc_ns)[0];
	const char *shm = str(pod->shm_path);
	const char *rootprop = NULL;
	struct xmount *x = NULL;
	size_t nx = 0;
	json_object *mounts;
	int r;

	if ((r = validate_cri_mounts(b)) < 0)
		return r;
	mounts = jadd(&b->jb, spec, "mounts", json_object_new_array());
	b->mounts = mounts;

	/* the defaults, unless a CRI mount takes their place */
	{
		const char *sys_ro = b->privileged ? NULL : "ro";
		static const char *const proc_o[] = { "nosuid", "noexec", "nodev" };
		static const char *const dev_o[] = { "nosuid", "strictatime", "mode=755", "size=65536k" };
		static const char *const pts_o[] = { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" };
		static const char *const shm_o[] = { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" };
		static const char *const mq_o[] = { "nosuid", "noexec", "nodev" };
		const char *const sys_o[] = { "nosuid", "noexec", "nodev", sys_ro };
		const char *const cg_o[] = { "nosuid", "noexec", "nodev", "relatime", sys_ro };
		const struct {
			const char *dst, *type, *src;
			const char *const *o;
			size_t n;
			bool on;
		} d[] = {
			{ "/proc", "proc", "proc", proc_o, ARRAY_SIZE(proc_o), true },
			{ "/dev", "tmpfs", "tmpfs", dev_o, ARRAY_SIZE(dev_o), true },
			{ "/dev/pts", "devpts", "devpts", pts_o, ARRAY_SIZE(pts_o), true },
			/* a /dev/shm of its own only with an IPC namespace but no pod shm */
			{ "/dev/shm", "tmpfs", "shm", shm_o, ARRAY_SIZE(shm_o), !*shm && !host_ipc },
			{ "/dev/mqueue", "mqueue", "mqueue", mq_o, ARRAY_SIZE(mq_o), true },
			{ "/sys", "sysfs", "sysfs", sys_o, ARRAY_SIZE(sys_o), true },
			{ "/sys/fs/cgroup", "cgroup", "cgroup", cg_o, ARRAY_SIZE(cg_o), true },
		};
		bool cri_dev = cri_has_mount(b, "/dev");
		for (size_t i = 0; i < ARRAY_SIZE(d); i++) {
			if (!d[i].on || cri_has_mount(b, d[i].dst) || (cri_dev && path_under(d[i].dst, "/dev")))
				continue;
			jpush(&b->jb, mounts, mount_obj(&b->jb, d[i].dst, d[i].type, d[i].src, d[i].o, d[i].n));
		}
	}

	/* the pod's files and shm, then config.mounts, sorted by depth */
	x = calloc(b->cfg->n_mounts + 4, sizeof(*x));
	if (!x)
		return errf(b->err, b->errlen, -ENOMEM, "out of memory");
	{
		const struct {
			const char *dst, *src, *field;
		} files[] = {
			{ "/etc/hostname", pod->hostname_path, "hostname_path" },
			{ "/etc/hosts", pod->hosts_path, "hosts_path" },
			{ "/etc/resolv.conf", pod->resolv_path, "resolv_path" },
		};
		const char *rw = ro_rootfs ? "ro" : "rw";
		for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
			const char *o[] = { "rbind", "rprivate", rw };
			if (!str(files[i].src)[0] || cri_has_mount(b, files[i].dst))
				continue;
			if (files[i].src[0] != '/' || str_has_ctl(files[i].src)) {
				r = FAIL(b, "pod.%s: not an absolute path", files[i].field);
				goto out;
			}
			x[nx].m = mount_obj(&b->jb, files[i].dst, "bind", files[i].src, o, ARRAY_SIZE(o));
			x[nx++].depth = path_depth(files[i].dst);
		}
		if ((*shm || host_ipc) && !cri_has_mount(b, "/dev/shm")) {
			static const char *const o[] = { "rbind", "rprivate", "nosuid", "noexec", "nodev", "rw" };
			const char *src = *shm ? shm : "/dev/shm"; /* host IPC: the host's /dev/shm */
			if (src[0] != '/' || str_has_ctl(src)) {
				r = FAIL(b, "pod.shm_path: not an absolute path");
				goto out;
			}
			x[nx].m = mount_obj(&b->jb, "/dev/shm", "bind", src, o, ARRAY_SIZE(o));
			x[nx++].depth = path_depth("/dev/shm");
		}
	}
	for (size_t i = 0; i < b->cfg->n_mounts; i++) {
		const Runtime__V1__Mount *m = b->cfg->mounts[i];
		const char *prop = "rprivate";
		const char *o[4];
		size_t no = 3;

		if (m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_HOST_TO_CONTAINER) {
			prop = "rslave";
			if (!rootprop)
				rootprop = "rslave";
		} else if (m->propagation == RUNTIME__V1__MOUNT_PROPAGATION__PROPAGATION_BIDIRECTIONAL) {
			prop = "rshared";
			rootprop = "rshared";
		}
		o[0] = "rbind";
		o[1] = prop;
		o[2] = m->readonly ? "ro" : "rw";
		if (m->recursive_read_only)
			o[no++] = "rro"; /* runc: mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY) */
		x[nx].m = mount_obj(&b->jb, m->container_path, "bind", m->host_path, o, no);
		x[nx++].depth = path_depth(m->container_path);
	}
	/* stable insertion sort: a mount never hides one deeper than itself */
	for (size_t i = 1; i < nx; i++) {
		struct xmount t = x[i];
		size_t j = i;
		while (j > 0 && x[j - 1].depth > t.depth) {
			x[j] = x[j - 1];
			j--;
		}
		x[j] = t;
	}
	for (size_t i = 0; i < nx; i++) {
		jpush(&b->jb, mounts, x[i].m);
		x[i].m = NULL;
	}
	b->rootfs_propagation = rootprop;
	r = 0;
out:
	for (size_t i = 0; i < nx; i++)
		json_object_put(x[i].m);
	free(x);
	return r;
}

/* ---- masked and read-only paths ---- */

static const char *const default_masked[] = {
	"/proc/acpi",	       "/proc/asound",	  "/proc/kcore",       "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi",	       "/sys/firmware",	  "/sys/devices/virtual/powercap",
};
static const char *const default_readonly[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static int path_list(struct build *b, json_object *linux_, const char *key, const char *field, char *const *given,
		     size_t n_given, const char *const *def, size_t n_def)
{
	json_object *a;

	for (size_t i = 0; i < n_given; i++)
		if (str(given[i])[0] != '/' || str_has_ctl(given[i]))
			return FAIL(b, SC_FIELD ".%s[%zu]: \"%.100s\" is not an absolute path", field, i, str(given[i]));
	a = jadd(&b->jb, linux_, key, json_object_new_array());
	if (n_given)
		for (size_t i = 0; i < n_given; i++)
			jpush(&b->jb, a, jstr(given[i]));
	else
		for (size_t i = 0; i < n_def; i++)
			jpush(&b->jb, a, jstr(def[i]));
	return 0;
}

static int build_paths(struct build *b, json_object *linux_)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc = b->sc;
	int r;

	if (b->privileged)
		return 0;
	if ((r = path_list(b, linux_, "maskedPaths", "masked_paths", sc ? sc->masked_paths : NULL,
			   sc ? sc->n_masked_paths : 0, default_masked, ARRAY_SIZE(default_masked))) < 0)
		return r;
	return path_list(b, linux_, "readonlyPaths", "readonly_paths", sc ? sc->readonly_paths : NULL,
			 sc ? sc->n_readonly_paths : 0, default_readonly, ARRAY_SIZE(default_readonly));
}

/* ---- namespaces ---- */

static int ns_add(struct build *b, json_object *a, const char *type, const char *path, const char *field)
{
	json_object *o;

	if (path && (path[0] != '/' || str_has_ctl(path)))
		return FAIL(b, "%s: \"%.100s\" is not an absolute path", field, path);
	o = jpush(&b->jb, a, json_object_new_object());
	jadd(&b->jb, o, "type", jstr(type));
	if (path)
		jadd(&b->jb, o, "path", jstr(path));
	return 0;
}

static int build_namespaces(struct build *b, json_object *linux_)
{
	const struct oci_pod_info *pod = b->pod;
	const Runtime__V1__NamespaceOption *ns = b->sc ? b->sc->namespace_options : NULL;
	Runtime__V1__NamespaceMode pid = ns ? ns->pid : RUNTIME__V1__NAMESPACE_MODE__POD;
	json_object *a;
	int r = 0;

	if (ns && ns->userns_options) {
		const Runtime__V1__UserNamespace *u = ns->userns_options;
		if (u->mode != RUNTIME__V1__NAMESPACE_MODE__NODE &&
		    (u->n_uids || u->n_gids || u->mode != RUNTIME__V1__NAMESPACE_MODE__POD))
			return FAIL(b, SC_FIELD ".namespace_options.userns_options: user namespaces are not supported");
	}
	a = jadd(&b->jb, linux_, "namespaces", json_object_new_array());
	switch (pid) {
	case RUNTIME__V1__NAMESPACE_MODE__POD:
		if (!str(pod->pid_ns)[0])
			return FAIL(b, SC_FIELD ".namespace_options.pid: POD, but the pod has no PID namespace to share");
		r = ns_add(b, a, "pid", pod->pid_ns, "pod.pid_ns");
		break;
	case RUNTIME__V1__NAMESPACE_MODE__CONTAINER:
		r = ns_add(b, a, "pid", NULL, NULL);
		break;
	case RUNTIME__V1__NAMESPACE_MODE__NODE:
		break;
	case RUNTIME__V1__NAMESPACE_MODE__TARGET:
		if (!str(ns->target_id)[0])
			return FAIL(b, SC_FIELD ".namespace_options.target_id: required with pid mode TARGET");
		if (!str(b->in->target_pid_ns)[0])
			return FAIL(b, SC_FIELD ".namespace_options.target_id: the PID namespace of container \"%.64s\" is not known",
				    ns->target_id);
		r = ns_add(b, a, "pid", b->in->target_pid_ns, "target_pid_ns");
		break;
	default:
		return FAIL(b, SC_FIELD ".namespace_options.pid: unknown mode %d", (int)pid);
	}
	if (r == 0 && str(pod->netns_path)[0])
		r = ns_add(b, a, "network", pod->netns_path, "pod.netns_path");
	if (r == 0 && str(pod->ipc_ns)[0])
		r = ns_add(b, a, "ipc", pod->ipc_ns, "pod.ipc_ns");
	if (r == 0 && str(pod->uts_ns)[0])
		r = ns_add(b, a, "uts", pod->uts_ns, "pod.uts_ns");
	if (r == 0)
		r = ns_add(b, a, "mount", NULL, NULL);
	if (r == 0 && pod->cgroup_v2)
		r = ns_add(b, a, "cgroup", NULL, NULL);
	return r;
}

/* ---- sysctls ---- */

static int build_sysctls(struct build *b, json_object *linux_)
{
	const Runtime__V1__LinuxPodSandboxConfig *pl = b->in->pod_config ? b->in->pod_config->linux : NULL;
	json_object *o;

	if (!pl || pl->n_sysctls == 0)
		return 0;
	o = jadd(&b->jb, linux_, "sysctl", json_object_new_object());
	for (size_t i = 0; i < pl->n_sysctls; i++) {
		const char *key = pl->sysctls[i] ? str(pl->sysctls[i]->key) : "";
		const char *val = pl->sysctls[i] ? str(pl->sysctls[i]->value) : "";
		char name[257];
		size_t n = strlen(key);
		bool ipc, net;

		if (n == 0 || n >= sizeof(name))
			return FAIL(b, "pod_config.linux.sysctls[\"%.64s\"]: invalid name", key);
		memcpy(name, key, n + 1);
		/* "net/ipv4/conf/eth0.1/rp_filter" is "net.ipv4.conf.eth0/1.rp_filter" */
		if (strcspn(name, "./") < n && name[strcspn(name, "./")] == '/')
			for (char *c = name; *c; c++)
				*c = *c == '/' ? '.' : *c == '.' ? '/' : *c;
		for (const char *c = name; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			      *c == '_' || *c == '-' || *c == '.' || *c == '/'))
				return FAIL(b, "pod_config.linux.sysctls[\"%.64s\"]: invalid name", key);
		if (name[0] == '.' || name[n - 1] == '.' || strstr(name, "..") || strstr(name, "/.") || strstr(name, "./"))
			return FAIL(b, "pod_config.linux.sysctls[\"%.64s\"]: invalid name", key);
		ipc = strcmp(name, "kernel.sem") == 0 || strncmp(name, "kernel.shm", 10) == 0 ||
		      strncmp(name, "kernel.msg", 10) == 0 || strncmp(name, "fs.mqueue.", 10) == 0;
		net = strncmp(name, "net.", 4) == 0;
		if (!ipc && !net)
			return FAIL(b, "pod_config.linux.sysctls[\"%.64s\"]: not a namespaced sysctl (allowed: kernel.shm*, "
				       "kernel.msg*, kernel.sem, fs.mqueue.*, net.*)", key);
		if (ipc && !str(b->pod->ipc_ns)[0])
			return FAIL(b, "pod_config.linux.sysctls[\"%.64s\"]: not allowed with the host's IPC namespace", key);
		if (net && !str(b->pod->netns_path)[0])
			return FAIL(b, "pod_config.linux.sysctls[\"%.64s\"]: not allowed with the host's network namespace", key);
		if (strlen(val) > 4096 || str_has_ctl(val))
			return FAIL(b, "pod_config.linux.sysctls[\"%.64s\"]: invalid value", key);
		jadd(&b->jb, o, name, jstr(val));
	}
	return 0;
}

/* ---- devices; the resources are oci_resources.c's ---- */

static bool perms_ok(const char *p)
{
	bool seen[3] = { false, false, false };

	if (!*p)
		return false;
	for (; *p; p++) {
		const char *c = strchr("rwm", *p);
		if (!c || !*p || seen[c - "rwm"])
			return false;
		seen[c - "rwm"] = true;
	}
	return true;
}

static void dev_rule(struct jb *jb, json_object *a, bool allow, const char *type, int64_t major, int64_t minor,
		     const char *access)
{
	json_object *o = jpush(jb, a, json_object_new_object());

	jadd(jb, o, "allow", json_object_new_boolean(allow));
	if (type)
		jadd(jb, o, "type", jstr(type));
	if (major >= 0)
		jadd(jb, o, "major", json_object_new_int64(major));
	if (minor >= 0)
		jadd(jb, o, "minor", json_object_new_int64(minor));
	jadd(jb, o, "access", jstr(access));
}

static int build_devices(struct build *b, json_object *linux_, json_object *resources)
{
	const Runtime__V1__ContainerConfig *c = b->cfg;
	/* runc's default allow list: mknod of anything, and the standard nodes */
	static const struct {
		const char *type;
		int64_t major, minor;
		const char *access;
	} defaults[] = {
		{ "c", -1, -1, "m" }, { "b", -1, -1, "m" },  /* mknod */
		{ "c", 1, 3, "rwm" },  /* null */
		{ "c", 1, 5, "rwm" },  /* zero */
		{ "c", 1, 7, "rwm" },  /* full */
		{ "c", 1, 8, "rwm" },  /* random */
		{ "c", 1, 9, "rwm" },  /* urandom */
		{ "c", 5, 0, "rwm" },  /* tty */
		{ "c", 5, 1, "rwm" },  /* console */
		{ "c", 5, 2, "rwm" },  /* ptmx */
		{ "c", 136, -1, "rwm" }, /* pts */
	};
	json_object *rules, *devs = NULL;

	for (size_t i = 0; i < c->n_devices; i++) {
		const Runtime__V1__Device *d = c->devices[i];
		const char *cpath;
		if (!d)
			return FAIL(b, "config.devices[%zu]: missing", i);
		cpath = str(d->container_path);
		if (!path_is_clean_abs(cpath, strlen(cpath)) || str_has_ctl(cpath))
			return FAIL(b, "config.devices[%zu].container_path: \"%.100s\" is not a clean absolute path", i,
				    cpath);
		if (str(d->host_path)[0] != '/' || str_has_ctl(d->host_path))
			return FAIL(b, "config.devices[%zu].host_path: \"%.100s\" is not an absolute path", i, str(d->host_path));
		if (str(d->permissions)[0] && !perms_ok(d->permissions))
			return FAIL(b, "config.devices[%zu].permissions: \"%.16s\" is not a subset of \"rwm\"", i, d->permissions);
	}
	if (b->in->n_devices < c->n_devices)
		return FAIL(b, "config.devices[%zu]: not resolved (the caller passes every device resolved)", b->in->n_devices);

	rules = jadd(&b->jb, resources, "devices", json_object_new_array());
	if (b->privileged)
		dev_rule(&b->jb, rules, true, NULL, -1, -1, "rwm");
	else {
		dev_rule(&b->jb, rules, false, NULL, -1, -1, "rwm");
		for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
			dev_rule(&b->jb, rules, true, defaults[i].type, defaults[i].major, defaults[i].minor,
				 defaults[i].access);
	}
	if (b->in->n_devices)
		devs = jadd(&b->jb, linux_, "devices", json_object_new_array());
	for (size_t i = 0; i < b->in->n_devices; i++) {
		const struct oci_device *d = &b->in->devices[i];
		const char *access = "rwm", *path = str(d->path);
		char type[2] = { d->type, '\0' };
		json_object *o;

		if (i < c->n_devices) {
			if (strcmp(path, c->devices[i]->container_path) != 0)
				return FAIL(b, "config.devices[%zu]: resolved as \"%.100s\", not \"%.100s\"", i, path,
					    c->devices[i]->container_path);
			if (str(c->devices[i]->permissions)[0])
				access = c->devices[i]->permissions;
		}
		if (str(d->permissions)[0])
			access = d->permissions;
		if (!path_is_clean_abs(path, strlen(path)) || str_has_ctl(path))
			return FAIL(b, "devices[%zu].path: \"%.100s\" is not a clean absolute path", i, path);
		if (d->type != 'c' && d->type != 'b' && d->type != 'p')
			return FAIL(b, "devices[%zu].type: not 'c', 'b' or 'p'", i);
		if (d->major < 0 || d->major > UINT32_MAX || d->minor < 0 || d->minor > UINT32_MAX)
			return FAIL(b, "devices[%zu]: invalid major/minor number", i);
		if (!perms_ok(access))
			return FAIL(b, "devices[%zu].permissions: \"%.16s\" is not a subset of \"rwm\"", i, access);
		o = jpush(&b->jb, devs, json_object_new_object());
		jadd(&b->jb, o, "path", jstr(path));
		jadd(&b->jb, o, "type", jstr(type));
		jadd(&b->jb, o, "major", json_object_new_int64(d->major));
		jadd(&b->jb, o, "minor", json_object_new_int64(d->minor));
		jadd(&b->jb, o, "fileMode", json_object_new_int64(d->file_mode & 07777));
		jadd(&b->jb, o, "uid", json_object_new_int64(d->uid));
		jadd(&b->jb, o, "gid", json_object_new_int64(d->gid));
		if (!b->privileged && d->type != 'p')
			dev_rule(&b->jb, rules, true, type, d->major, d->minor, access);
	}
	return 0;
}

static int build_resources(struct build *b, json_object *linux_)
{
	json_object *resources = jadd(&b->jb, linux_, "resources", json_object_new_object());
	int r;

	if ((r = build_devices(b, linux_, resources)) < 0 || !b->res)
		return r;
	return oci_resources_fill(&b->jb, b->res, b->pod->cgroup_v2, resources, RES_FIELD, b->err, b->errlen);
}

/* ---- cgroupsPath, annotations, image volumes, stop signal ---- */

static int build_cgroups_path(struct build *b, json_object *linux_)
{
	const char *parent = str(b->pod->cgroup_parent);
	_cleanup_free_ char *p = NULL;
	int n;

	/* cgroupfs only: the pod's cgroup is a cgroupfs path whichever driver
	 * named it (spawnd made it; no systemd manager is asked) */
	const char *dir = *parent ? parent : "/" CRI_PREFIX;
	if (!path_is_clean_abs(dir, strlen(dir)) || str_has_ctl(dir))
		return FAIL(b, "pod.cgroup_parent: \"%.100s\" is not a clean absolute cgroup path", dir);
	n = asprintf(&p, "%s/" CRI_PREFIX "-%s", strcmp(dir, "/") == 0 ? "" : dir, b->in->container_id);
	if (n < 0) {
		p = NULL;
		return errf(b->err, b->errlen, -ENOMEM, "out of memory");
	}
	jadd(&b->jb, linux_, "cgroupsPath", jstr(p));
	return 0;
}

static void build_annotations(struct build *b, json_object *spec)
{
	const Runtime__V1__ContainerConfig *c = b->cfg;
	const Runtime__V1__PodSandboxConfig *pc = b->in->pod_config;
	json_object *a = jadd(&b->jb, spec, "annotations", json_object_new_object());

	for (size_t i = 0; i < c->n_annotations; i++)
		if (c->annotations[i] && str(c->annotations[i]->key)[0])
			jadd(&b->jb, a, c->annotations[i]->key, jstr(str(c->annotations[i]->value)));
	/* what containerd's CRI plugin adds */
	jadd(&b->jb, a, "io.kubernetes.cri.container-type", jstr("container"));
	if (c->metadata && str(c->metadata->name)[0])
		jadd(&b->jb, a, "io.kubernetes.cri.container-name", jstr(c->metadata->name));
	if (str(b->in->sandbox_id)[0])
		jadd(&b->jb, a, "io.kubernetes.cri.sandbox-id", jstr(b->in->sandbox_id));
	if (pc && pc->metadata) {
		if (str(pc->metadata->name)[0])
			jadd(&b->jb, a, "io.kubernetes.cri.sandbox-name", jstr(pc->metadata->name));
		if (str(pc->metadata->namespace_)[0])
			jadd(&b->jb, a, "io.kubernetes.cri.sandbox-namespace", jstr(pc->metadata->namespace_));
		if (str(pc->metadata->uid)[0])
			jadd(&b->jb, a, "io.kubernetes.cri.sandbox-uid", jstr(pc->metadata->uid));
	}
	if (c->image && str(c->image->image)[0])
		jadd(&b->jb, a, "io.kubernetes.cri.image-name", jstr(c->image->image));
}

static bool mounted_at(struct build *b, const char *dst)
{
	for (size_t i = 0; b->mounts && i < json_object_array_length(b->mounts); i++) {
		json_object *d = member(json_object_array_get_idx(b->mounts, i), "destination");
		if (d && strcmp(json_object_get_string(d), dst) == 0)
			return true;
	}
	return false;
}

static int build_image_volumes(struct build *b, struct oci_spec_result *out)
{
	json_object *vols = member(b->img, "Volumes");
	struct strv l = { 0 };
	int r = 0;

	if (!vols)
		return 0;
	json_object_object_foreach(vols, key, val)
	{
		char *p;
		(void)val;
		if (key[0] != '/' || str_has_ctl(key)) {
			r = FAIL(b, "image config Volumes: \"%.100s\" is not an absolute path", key);
			break;
		}
		p = path_clean_abs(key);
		if (!p) {
			r = errf(b->err, b->errlen, -ENOMEM, "out of memory");
			break;
		}
		if (strcmp(p, "/") == 0) {
			free(p);
			r = FAIL(b, "image config Volumes: \"%.100s\" is the root directory", key);
			break;
		}
		/* a mount there (a CRI mount, usually) makes the volume moot */
		bool dup = mounted_at(b, p);
		for (size_t i = 0; !dup && i < l.n; i++)
			dup = strcmp(l.v[i], p) == 0;
		if (dup) {
			free(p);
			continue;
		}
		if ((r = strv_push_take(&l, p)) < 0) {
			r = errf(b->err, b->errlen, r, "out of memory");
			break;
		}
	}
	if (r < 0) {
		strv_free(&l);
		return r;
	}
	out->image_volumes = l.v;
	out->n_image_volumes = l.n;
	return 0;
}

static int build_stop_signal(struct build *b, struct oci_spec_result *out)
{
	char buf[32];

	if (b->cfg->stop_signal != RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT) {
		const ProtobufCEnumValue *v =
			protobuf_c_enum_descriptor_get_value(&runtime__v1__signal__descriptor, (int)b->cfg->stop_signal);
		const char *plus, *minus;
		if (!v)
			return FAIL(b, "config.stop_signal: unknown signal %d", (int)b->cfg->stop_signal);
		/* SIGRTMINPLUS3 is SIGRTMIN+3, SIGRTMAXMINUS2 SIGRTMAX-2 */
		if ((plus = strstr(v->name, "PLUS")))
			snprintf(buf, sizeof(buf), "%.*s+%s", (int)(plus - v->name), v->name, plus + 4);
		else if ((minus = strstr(v->name, "MINUS")))
			snprintf(buf, sizeof(buf), "%.*s-%s", (int)(minus - v->name), v->name, minus + 5);
		else
			snprintf(buf, sizeof(buf), "%s", v->name);
	} else {
		const char *s = img_str(b, "StopSignal");
		size_t n = strlen(s), o = 0;
		bool numeric = n > 0 && strspn(s, "0123456789") == n;

		if (n == 0)
			return 0;
		if (n > 20)
			return FAIL(b, "image config StopSignal: invalid signal \"%.32s\"", s);
		if (numeric) {
			long sig = strtol(s, NULL, 10);
			if (sig < 1 || sig > 64)
				return FAIL(b, "image config StopSignal: invalid signal \"%.32s\"", s);
			snprintf(buf, sizeof(buf), "%ld", sig);
		} else {
			if (strncasecmp(s, "SIG", 3) != 0)
				o = (size_t)snprintf(buf, sizeof(buf), "SIG");
			for (size_t i = 0; i < n; i++) {
				char c = s[i];
				if (c >= 'a' && c <= 'z')
					c = (char)(c - 'a' + 'A');
				if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '-'))
					return FAIL(b, "image config StopSignal: invalid signal \"%.32s\"", s);
				buf[o++] = c;
			}
			buf[o] = '\0';
		}
	}
	out->stop_signal = strdup(buf);
	if (!out->stop_signal)
		return errf(b->err, b->errlen, -ENOMEM, "out of memory");
	return 0;
}

/* ---- entry points ---- */

void oci_spec_result_free(struct oci_spec_result *r)
{
	if (!r)
		return;
	free(r->json);
	free(r->stop_signal);
	for (size_t i = 0; i < r->n_image_volumes; i++)
		free(r->image_volumes[i]);
	free(r->image_volumes);
	memset(r, 0, sizeof(*r));
}

int oci_spec_build(const struct oci_spec_input *in, struct oci_spec_result *out, char *err, size_t errlen)
{
	struct build b = { .in = in, .err = err, .errlen = errlen };
	_cleanup_(jputp) json_object *spec = NULL;
	json_object *root, *linux_;
	const Runtime__V1__PodSandboxConfig *pc;
	const char *s;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return errf(err, errlen, -EINVAL, "no output");
	memset(out, 0, sizeof(*out));
	if (!in || !in->config || !in->pod)
		return errf(err, errlen, -EINVAL, "config: missing");
	if (!id_is_valid(in->container_id))
		return errf(err, errlen, -EINVAL, "container_id: not 64 lowercase hex characters");
	if (!in->rootfs || in->rootfs[0] != '/' || str_has_ctl(in->rootfs))
		return errf(err, errlen, -EINVAL, "rootfs: not an absolute path");
	b.pod = in->pod;
	b.cfg = in->config;
	b.sc = b.cfg->linux ? b.cfg->linux->security_context : NULL;
	b.res = b.cfg->linux ? b.cfg->linux->resources : NULL;
	b.privileged = b.sc && b.sc->privileged;
	pc = in->pod_config;
	if (b.privileged && !(pc && pc->linux && pc->linux->security_context && pc->linux->security_context->privileged))
		return errf(err, errlen, -EINVAL, SC_FIELD ".privileged: the pod sandbox does not allow privileged containers");

	spec = json_object_new_object();
	if (!spec)
		return errf(err, errlen, -ENOMEM, "out of memory");
	if ((r = image_parse(&b)) < 0)
		goto out;
	jadd(&b.jb, spec, "ociVersion", jstr(OCI_VERSION));
	if ((r = build_process(&b, spec, out)) < 0)
		goto out;
	root = jadd(&b.jb, spec, "root", json_object_new_object());
	jadd(&b.jb, root, "path", jstr(in->rootfs));
	jadd(&b.jb, root, "readonly", json_object_new_boolean(b.sc && b.sc->readonly_rootfs));
	if ((r = build_mounts(&b, spec)) < 0)
		goto out;
	build_annotations(&b, spec);
	linux_ = jadd(&b.jb, spec, "linux", json_object_new_object());
	if (!linux_) {
		r = errf(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	if (b.rootfs_propagation)
		jadd(&b.jb, linux_, "rootfsPropagation", jstr(b.rootfs_propagation));
	if ((r = build_sysctls(&b, linux_)) < 0 || (r = build_resources(&b, linux_)) < 0 ||
	    (r = build_cgroups_path(&b, linux_)) < 0 || (r = build_namespaces(&b, linux_)) < 0 ||
	    (r = build_seccomp(&b, linux_)) < 0 || (r = build_paths(&b, linux_)) < 0 ||
	    (r = build_image_volumes(&b, out)) < 0 || (r = build_stop_signal(&b, out)) < 0)
		goto out;
	if (b.jb.oom) {
		r = errf(err, errlen, -ENOMEM, "out of memory");
		goto out;
	}
	s = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	out->json = s ? strdup(s) : NULL;
	if (!out->json)
		r = errf(err, errlen, -ENOMEM, "out of memory");
out:
	json_object_put(b.image_doc);
	if (r < 0)
		oci_spec_result_free(out);
	return r;
}
