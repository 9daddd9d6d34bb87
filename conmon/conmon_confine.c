/* The seccomp allowlist spawnd's launcher and conmon load
 * (spawnd_confine.h), and conmon's confinement. The list is what reaches
 * every container: the launcher execs conmon, conmon execs runc, runc execs the container, and each
 * inherits the filters before it, the container's own profile stacked on
 * top. So it is the RuntimeDefault profile's names (the calls any
 * container may make) with runc's and our own, less the calls that alter
 * the host's kernel, which no container gets here, privileged or not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <json-c/json.h>

#include "caps.h"
#include "confine.h"
#include "log.h"
#include "macro.h"
#include "seccomp_profile.h"
#include "spawnd_confine.h"
#include "util.h"

/* runc (1.1, Go) creating, starting, entering, updating and deleting a
 * container, beyond what the profile's unconditional list holds: */
static const char *const runc_syscalls[] = {
	/* the container's mounts, root and namespaces (nsexec's clone/unshare/setns) */
	"mount", "umount2", "umount", "pivot_root", "chroot", "unshare", "setns", "clone", "clone3",
	"sethostname", "setdomainname",
	/* the container's own session keyring */
	"keyctl", "add_key",
	/* the cgroup v2 device filter (BPF_PROG_LOAD, BPF_PROG_ATTACH) */
	"bpf",
	/* the container's credentials, capabilities, filter, rlimits and personality */
	"capget", "capset", "setgroups", "setresuid", "setresgid", "setuid", "setgid", "seccomp", "prlimit64",
	"setrlimit", "personality", "prctl",
	/* copying itself into a sealed memfd (CVE-2019-5736), exec of the container */
	"memfd_create", "sendfile", "copy_file_range", "execve", "execveat",
	/* the Go runtime */
	"arch_prctl", "sched_getaffinity", "sigaltstack", "tkill", "tgkill", "mincore", "epoll_pwait",
	NULL,
};

/* The launcher and conmon beyond confine_base_syscalls (a superset of
 * spawnd's own list, spawnd_confine.c, kept so that what spawnd did on a
 * hardened node before the split stays allowed): the pods' namespace pins,
 * /dev/shm and the pods directory (mount, umount2), spawning (spawn.c: fork,
 * setsid, setns into a pod's network namespace, execve), socket and pod file
 * modes (chmod); and pause's set-up: its mount namespace and empty root, its
 * ids and capabilities, its filter. */
static const char *const own_syscalls[] = {
	"mount", "umount2", "vfork", "fork", "setsid", "setns", "execve", "chmod",
	"unshare", "pivot_root", "setgroups", "setresgid", "setresuid", "capset", "seccomp", "rt_sigsuspend",
	NULL,
};

/* Calls no container gets on this node, whatever its capabilities and its
 * own profile: they change the host's kernel, its swap or its accounting,
 * reach I/O ports, or open any file of a mounted filesystem by handle,
 * outside the container's root. The profile allows most of them with a
 * capability (CAP_SYS_MODULE, CAP_SYS_PACCT, CAP_SYS_RAWIO,
 * CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN); kexec and swap it never lists, and
 * they are here so that no list of ours ever adds them. */
static const char *const host_kernel_calls[] = {
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "swapon", "swapoff",
	"acct", "iopl", "ioperm", "open_by_handle_at", "lookup_dcookie",
	NULL,
};

static bool listed(const char *const *list, const char *name)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

struct names {
	char **v;
	size_t n, cap;
};

static int names_add_one(struct names *ns, const char *name, bool host_kernel_too)
{
	if (!host_kernel_too && listed(host_kernel_calls, name))
		return 0;
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return 0;
	if (ns->n + 1 >= ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 512;
		char **v = realloc(ns->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n] = strdup(name);
	if (!ns->v[ns->n])
		return -ENOMEM;
	ns->v[++ns->n] = NULL;
	return 0;
}

static int names_add(struct names *ns, const char *name) { return names_add_one(ns, name, false); }

static int names_add_list(struct names *ns, const char *const *list)
{
	for (size_t i = 0; list[i]; i++) {
		int r = names_add(ns, list[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* A rule's includes.caps, all held by caps (none: always). */
static bool rule_caps_held(json_object *rule, uint64_t caps)
{
	json_object *inc, *need;

	if (!json_object_object_get_ex(rule, "includes", &inc) || !json_object_object_get_ex(inc, "caps", &need))
		return true;
	for (size_t i = 0; i < json_object_array_length(need); i++) {
		int c = cap_index(json_object_get_string(json_object_array_get_idx(need, i)));
		if (c < 0 || !(caps & CAPBIT(c)))
			return false;
	}
	return true;
}

/* The names of the profile's SCMP_ACT_ALLOW rules whose capabilities caps
 * holds (arguments aside: the container's own filter checks those). */
static int names_add_profile(struct names *ns, uint64_t caps)
{
	json_object *prof = json_tokener_parse(oci_default_seccomp_profile), *rules;
	int r = 0;

	if (!prof || !json_object_object_get_ex(prof, "syscalls", &rules) ||
	    !json_object_is_type(rules, json_type_array)) {
		json_object_put(prof);
		return -EINVAL;
	}
	for (size_t i = 0; r >= 0 && i < json_object_array_length(rules); i++) {
		json_object *rule = json_object_array_get_idx(rules, i), *action, *list;
		if (!json_object_object_get_ex(rule, "action", &action) ||
		    strcmp(json_object_get_string(action), "SCMP_ACT_ALLOW") != 0 || !rule_caps_held(rule, caps) ||
		    !json_object_object_get_ex(rule, "names", &list))
			continue;
		for (size_t j = 0; r >= 0 && j < json_object_array_length(list); j++)
			r = names_add(ns, json_object_get_string(json_object_array_get_idx(list, j)));
	}
	json_object_put(prof);
	return r;
}

void spawnd_confine_names_free(char **names)
{
	for (size_t i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
}

int spawnd_confine_names(uint64_t caps, char ***out)
{
	struct names ns = {0};
	int r = names_add_profile(&ns, caps);

	if (r >= 0)
		r = names_add_list(&ns, runc_syscalls);
	if (r >= 0)
		r = names_add_list(&ns, own_syscalls);
	if (r >= 0)
		r = names_add_list(&ns, confine_base_syscalls);
	if (r < 0) {
		spawnd_confine_names_free(ns.v);
		return r;
	}
	*out = ns.v;
	return 0;
}

/* conmon runs runc for every operation on its container (run, exec,
 * update, kill, delete), so it keeps exactly the bounding set the launcher
 * left it and loads the same list again: confined whoever started it;
 * the kernel caches a filter's allow-by-number answers, so the second
 * copy costs an allowed call nothing. */
bool spawnd_confine_filtered(const struct criod_config *cfg)
{
	return !cfg->allow_privileged && !cfg->allow_unconfined_seccomp;
}

/* Where the launcher's and conmon's compiled filters are kept for the
 * next conmon (confine.h filter_cache): one per node policy on a hardened
 * node, one per container profile otherwise. Boot-scoped, root-only. */
static char *filter_cache_dir(const struct criod_config *cfg) { return xasprintf("%s/seccomp", cfg->run_dir); }

int spawnd_confine_apply(const char *component, uint64_t caps, const struct criod_config *cfg)
{
	char **names = NULL;
	_cleanup_free_ char *cache = filter_cache_dir(cfg);
	int r = spawnd_confine_names(caps, &names);

	if (r < 0)
		return log_error_errno(r, NULL, "cannot build the seccomp allowlist", "component=%s", component);
	struct confine_policy p = {
		.caps = caps,
		.no_new_privs = false, /* inherited by containers: setuid binaries in them must work */
		.action = CONFINE_DENY_INHERITED,
		.syscalls = (const char *const *)names,
		.no_filter = !spawnd_confine_filtered(cfg),
		.filter_cache = cache,
	};
	r = confine_self(component, &p);
	spawnd_confine_names_free(names);
	return r;
}

/* Actions of a profile that may let a call through (SCMP_ACT_NOTIFY and
 * SCMP_ACT_TRACE hand it to a listener or tracer that may). */
static bool action_passes(const char *a)
{
	return a && (strcmp(a, "SCMP_ACT_ALLOW") == 0 || strcmp(a, "SCMP_ACT_LOG") == 0 ||
		     strcmp(a, "SCMP_ACT_NOTIFY") == 0 || strcmp(a, "SCMP_ACT_TRACE") == 0);
}

/* The container's own profile, linux.seccomp of the spec spawnd checked and
 * wrote into the bundle. *confined is false when there is none or its
 * default action lets calls through: the container is unconfined, and
 * conmon (whose filter runc exec's processes inherit) may filter nothing.
 * Otherwise every name of its rules that may let a call through is added,
 * whatever its arguments (the container's filter checks those), the
 * host-kernel calls too: conmon takes nothing the container's own profile
 * gives it. */
static int names_add_container(struct names *ns, const char *bundle, bool *confined)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	json_object *spec = NULL, *linux_, *sc, *def, *rules;
	int r;

	*confined = false;
	if (asprintf(&path, "%s/config.json", bundle) < 0)
		return -ENOMEM;
	r = read_file(path, 16u << 20, &text, NULL);
	if (r < 0)
		return r;
	spec = json_tokener_parse(text);
	if (!spec)
		return -EINVAL;
	if (!json_object_object_get_ex(spec, "linux", &linux_) || !json_object_object_get_ex(linux_, "seccomp", &sc) ||
	    !json_object_is_type(sc, json_type_object) || !json_object_object_get_ex(sc, "defaultAction", &def) ||
	    action_passes(json_object_get_string(def))) {
		json_object_put(spec);
		return 0;
	}
	*confined = true;
	if (json_object_object_get_ex(sc, "syscalls", &rules) && json_object_is_type(rules, json_type_array))
		for (size_t i = 0; r >= 0 && i < json_object_array_length(rules); i++) {
			json_object *rule = json_object_array_get_idx(rules, i), *action, *list;
			if (!json_object_object_get_ex(rule, "action", &action) ||
			    !action_passes(json_object_get_string(action)) ||
			    !json_object_object_get_ex(rule, "names", &list) || !json_object_is_type(list, json_type_array))
				continue;
			for (size_t j = 0; r >= 0 && j < json_object_array_length(list); j++) {
				const char *n = json_object_get_string(json_object_array_get_idx(list, j));
				r = n ? names_add_one(ns, n, true) : 0;
			}
		}
	json_object_put(spec);
	return r < 0 ? r : 0;
}

int conmon_confine_names(uint64_t caps, const char *bundle, bool *confined, char ***out)
{
	struct names ns = {0};
	int r = names_add_container(&ns, bundle, confined);

	if (r >= 0 && *confined)
		r = names_add_profile(&ns, caps);
	if (r >= 0 && *confined)
		r = names_add_list(&ns, runc_syscalls);
	if (r >= 0 && *confined)
		r = names_add_list(&ns, own_syscalls);
	if (r >= 0 && *confined)
		r = names_add_list(&ns, confine_base_syscalls);
	if (r < 0 || !*confined) {
		spawnd_confine_names_free(ns.v);
		*out = NULL;
		return r < 0 ? r : 0;
	}
	*out = ns.v;
	return 0;
}

int conmon_confine(const struct criod_config *cfg, const char *bundle)
{
	uint64_t caps = 0;

	for (int c = 0; c <= 63; c++) {
		int held = prctl(PR_CAPBSET_READ, (unsigned long)c, 0, 0, 0);
		if (held < 0)
			break;
		if (held)
			caps |= CAPBIT(c);
	}
	/* A hardened node: the list every container inherits, as the
	 * launcher's. */
	if (spawnd_confine_filtered(cfg) || !bundle)
		return spawnd_confine_apply("conmon", caps, cfg);
	/* Otherwise a filter suited to this container: none for an
	 * unconfined one, else what its own profile may let through with
	 * what conmon and runc call. */
	char **names = NULL;
	bool confined = false;
	_cleanup_free_ char *cache = filter_cache_dir(cfg);
	int r = conmon_confine_names(caps, bundle, &confined, &names);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot build the seccomp allowlist from the container's profile",
				       "component=conmon bundle=%s", bundle);
	struct confine_policy p = {
		.caps = caps,
		.no_new_privs = false, /* inherited by runc exec's processes: setuid binaries in them must work */
		.action = CONFINE_DENY_INHERITED,
		.syscalls = (const char *const *)names,
		.no_filter = !confined,
		.filter_cache = cache,
	};
	r = confine_self("conmon", &p);
	spawnd_confine_names_free(names);
	return r;
}
