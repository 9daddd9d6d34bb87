/* Containers: the checks, the bundle, the detached conmon and its sync
 * line, and the removal; see spawnd_container.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/nsfs.h>

#include "beneath.h"
#include "spawnd_cgroup.h"
#include "config.h"
#include "confine.h"
#include "conmon.h"
#include "spawnd_container.h"
#include "spawnd_launch.h"
#include "log.h"
#include "macro.h"
#include "proc_cgroup.h"
#include "spawnd_proc.h"
#include "spawn.h"
#include "spawnd_policy.h"
#include "status.h"
#include "util.h"

#define ERR_MAX 1024
#define RECORD_FILE "spawnd.json"
#define CONMON_LOG_FILE "conmon.log"
#define RECORD_MAX (64u << 10)
#define JSON_DEPTH 64
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1) /* 107 bytes and the NUL */
#define RUNTIME_OUTPUT_MAX 4096

/* The runtimes a runtime_handler may name: the [runtime.NAME] sections of
 * the configuration spawnd read (common/config.h); "" means [pods]
 * default_runtime. */
static const struct runtime_config *handler_find(const struct containers *cs, const char *name);

struct call_list {
	struct ipc_call **v;
	size_t n;
};

enum op_kind { OP_CREATE, OP_REMOVE };

/* One operation on one container id in progress: a create waiting for its
 * monitor's sync line (on the loop), or a removal (on the worker pool; also
 * the cleanup after a failed create, which is then answered from there). */
struct ctr_op {
	struct ctr_op *next;
	struct containers *cs;
	enum op_kind kind;
	char id[65];
	char pod_id[65];
	char req[72];
	const struct runtime_config *handler;

	/* OP_CREATE */
	struct ipc_call *create_call;
	int sync_fd;
	struct event *read_ev, *timer_ev;
	char line[CONMON_SYNC_MAX + 1];
	size_t n;
	pid_t conmon_pid;
	uint64_t conmon_start;
	int64_t created_ns;
	char *socket_path, *log_path;
	char *log_root; /* the directory conmon opens log_path beneath */
	/* a failed create being cleaned up: its answer */
	int create_status;
	char create_err[ERR_MAX];

	/* OP_REMOVE */
	bool after_create;
	int ret, status;
	char err[ERR_MAX];
	struct call_list removes;
};

struct containers {
	struct container_env env;
	char *bundles_dir;   /* <run_dir>/containers */
	char *socks_dir;     /* <run_dir>/s */
	char *runtime_root;  /* <run_dir>/runc */
	char *records_dir;   /* <state_dir>/spawnd/containers */
	char *state_alias;   /* <run_dir>/c */
	char *imaged_dir;    /* <state_dir>/imaged/containers */
	struct ctr_op *ops;  /* loop thread only */
};

static const struct runtime_config *handler_find(const struct containers *cs, const char *name)
{
	return config_runtime(cs->env.cfg, name);
}

/* ---------------------------------------------------------------- paths */

static char *bundle_dir(const struct containers *cs, const char *id) { return xasprintf("%s/%s", cs->bundles_dir, id); }
static char *state_dir(const struct containers *cs, const char *id) { return xasprintf("%s/%s", cs->records_dir, id); }
static char *socket_primary(const struct containers *cs, const char *id)
{
	return xasprintf("%s/%s/conmon.sock", cs->bundles_dir, id);
}
static char *socket_fallback(const struct containers *cs, const char *id)
{
	return xasprintf("%s/%s", cs->socks_dir, id);
}

/* The control socket: in the bundle when that fits a socket address. */
static char *socket_path(const struct containers *cs, const char *id)
{
	char *p = socket_primary(cs, id);
	if (p && strlen(p) > SUN_PATH_MAX) {
		free(p);
		p = socket_fallback(cs, id);
	}
	return p;
}

/* ---------------------------------------------------------------- log_path */

bool container_log_path_is_valid(const char *path)
{
	if (!path || path[0] != '/')
		return false;
	size_t len = strnlen(path, CONTAINER_LOG_PATH_MAX + 1);
	if (len > CONTAINER_LOG_PATH_MAX || path[len - 1] == '/')
		return false;
	if (str_has_ctl(path))
		return false;
	const char *c = path + 1;
	while (*c) {
		size_t n = strcspn(c, "/");
		if (n == 0 || n > NAME_MAX || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return false;
		c += n;
		if (*c == '/')
			c++;
	}
	return true;
}

/* Whether the user could add, remove or rename entries of directory d. */
static bool user_can_write(const struct stat *d, uid_t uid, gid_t gid)
{
	if (d->st_uid == uid)
		return true; /* its owner can always chmod it */
	if (d->st_gid == gid)
		return d->st_mode & S_IWGRP;
	return d->st_mode & S_IWOTH;
}

/* ...and replace the entry e of d (sticky directories protect others' entries). */
static bool user_can_replace(const struct stat *d, const struct stat *e, uid_t uid, gid_t gid)
{
	return user_can_write(d, uid, gid) && (!(d->st_mode & S_ISVTX) || e->st_uid == uid);
}

static bool pseudo_fs(int fd)
{
	static const unsigned long magics[] = {
		PROC_SUPER_MAGIC, SYSFS_MAGIC,	     CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, DEBUGFS_MAGIC,
		TRACEFS_MAGIC,	  SECURITYFS_MAGIC, BPF_FS_MAGIC,	  NSFS_MAGIC,	       DEVPTS_SUPER_MAGIC,
		EFIVARFS_MAGIC,	  PSTOREFS_MAGIC,
	};
	struct statfs sfs;
	if (fstatfs(fd, &sfs) < 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(magics); i++)
		if ((unsigned long)sfs.f_type == magics[i])
			return true;
	return false;
}

int container_log_path_beneath(const struct criod_config *cfg, const char *path, const char *own_dir,
			       const char **root_out, char *err, size_t errlen)
{
	size_t root, off;
	const char *why;
	char list[512];
	size_t len = path ? strlen(path) : 0;

	*root_out = NULL;
	/* No log asked for: criod names a file in the container's own
	 * directory (spawnd's records, root's). */
	char *const own[] = {(char *)own_dir};
	if (own_dir && path_beneath_roots(path, len, CONTAINER_LOG_PATH_MAX, own, 1, &root, &off, &why) == 0 &&
	    strcmp(path + off, CONTAINER_OWN_LOG) == 0) {
		*root_out = own_dir;
		return 0;
	}
	int r = path_beneath_roots(path, len, CONTAINER_LOG_PATH_MAX, cfg->log_roots, cfg->n_log_roots, &root, &off,
				   &why);
	if (r == -EACCES) {
		path_roots_join(list, sizeof(list), cfg->log_roots, cfg->n_log_roots);
		return errf_first(err, errlen, -EPERM,
				  "log_path %.256s is not beneath any directory of " LOG_ROOTS_KEY " (%s)",
				  path, list);
	}
	if (r < 0)
		return errf_first(err, errlen, -EINVAL, "log_path \"%.256s\" %s", path ? path : "", why);
	if (off >= len)
		return errf_first(err, errlen, -EINVAL,
				  "log_path %.256s is a directory of " LOG_ROOTS_KEY " itself", path);
	*root_out = cfg->log_roots[root];
	return 0;
}

int container_log_path_check(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	_cleanup_free_ char *copy = NULL;
	_cleanup_close_ int dfd = -1;
	struct stat dst, st;

	if (!container_log_path_is_valid(path))
		return errf_first(err, errlen, -EINVAL,
				  "log_path must be an absolute path of at most %d bytes without empty, \".\" or \"..\" "
				  "components or control characters",
				  CONTAINER_LOG_PATH_MAX);
	if (!(copy = strdup(path)))
		return -ENOMEM;
	dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &dst) < 0)
		return errf_first(err, errlen, -errno, "cannot open /: %s", strerror(errno));
	char *c = copy + 1;
	for (;;) {
		char *slash = strchr(c, '/');
		bool last = !slash;
		if (slash)
			*slash = '\0';
		/* copy now ends at this component: the path so far, for messages. */
		if (fstatat(dfd, c, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				return errf_first(err, errlen, -errno, "log_path: %s: %s", copy, strerror(errno));
			/* conmon creates the rest, as root, in this directory. */
			if (uid != 0 && user_can_write(&dst, uid, gid))
				return errf_first(err, errlen, -EPERM,
						  "log_path: %s does not exist and its directory is writable by criod's "
						  "user, who could put a symlink there",
						  copy);
			break;
		}
		if (uid != 0 && user_can_replace(&dst, &st, uid, gid))
			return errf_first(err, errlen, -EPERM,
					  "log_path: %s is in a directory writable by criod's user, who could replace it",
					  copy);
		if (S_ISLNK(st.st_mode))
			return errf_first(err, errlen, -EPERM, "log_path: %s is a symlink", copy);
		if (last) {
			if (!S_ISREG(st.st_mode))
				return errf_first(err, errlen, -EPERM, "log_path: %s is not a regular file", copy);
			break;
		}
		if (!S_ISDIR(st.st_mode))
			return errf_first(err, errlen, -ENOTDIR, "log_path: %s is not a directory", copy);
		int nfd = openat(dfd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			return errf_first(err, errlen, -errno, "log_path: %s: %s", copy, strerror(errno));
		close(dfd);
		dfd = nfd;
		if (fstat(dfd, &dst) < 0)
			return errf_first(err, errlen, -errno, "log_path: %s: %s", copy, strerror(errno));
		if (dst.st_ino != st.st_ino || dst.st_dev != st.st_dev)
			return errf_first(err, errlen, -EAGAIN, "log_path: %s changed while it was checked", copy);
		*slash = '/';
		c = slash + 1;
	}
	if (pseudo_fs(dfd))
		return errf_first(err, errlen, -EPERM, "log_path %s is on a kernel pseudo filesystem", path);
	return 0;
}

/* ---------------------------------------------------------------- the spec */

static int spec_fail(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static int spec_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "config_json: ");
	if (n > 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A member; NULL when absent or null. */
static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

#define NS_MOUNT CONTAINER_NS_JOINABLE
static const char *const ns_types[] = {
	[CONTAINER_NS_NETWORK] = "network",
	[CONTAINER_NS_IPC] = "ipc",
	[CONTAINER_NS_UTS] = "uts",
	[CONTAINER_NS_PID] = "pid",
	[NS_MOUNT] = "mount",
	"user",
	"cgroup",
	"time",
};

/* The pid of "/proc/<pid>/ns/pid" exactly, else 0. */
static unsigned long target_pid_of(const char *path)
{
	char rest[16], canon[64];
	unsigned long pid;
	if (sscanf(path, "/proc/%lu/ns/pi%15s", &pid, rest) != 2 || strcmp(rest, "d") != 0 || pid == 0 ||
	    pid > 4194304)
		return 0;
	snprintf(canon, sizeof(canon), "/proc/%lu/ns/pid", pid);
	return strcmp(canon, path) == 0 ? pid : 0;
}

static bool cgroup_text_beneath(char *text, const char *cgroup_parent);

/* Is path "/proc/<pid>/ns/pid" of a process inside the pod's cgroup? This
 * is how a container joins another container's PID namespace (CRI
 * namespace mode TARGET, kubectl debug --target). The syntax check of
 * the spec; CreateContainer then pins the namespace itself
 * (pin_target_pidns), so a pid reused later reaches nothing. */
static bool pod_process_pid_ns(const char *path, const char *cgroup_parent)
{
	unsigned long pid = target_pid_of(path);
	if (!pid)
		return false;
	char cg[64];
	_cleanup_free_ char *text = NULL;
	snprintf(cg, sizeof(cg), "/proc/%lu/cgroup", pid);
	return read_file(cg, 1 << 16, &text, NULL) == 0 && cgroup_text_beneath(text, cgroup_parent);
}

/* Whether the process whose /proc/<pid>/cgroup text is lives beneath
 * cgroup_parent (the pids controller's line on v1, the unified one on v2). */
static bool cgroup_text_beneath(char *text, const char *cgroup_parent)
{
	size_t pl = strlen(cgroup_parent);
	struct proc_cgroup_line l;
	for (char *cur = text; proc_cgroup_next(&cur, &l);) {
		if (strcmp(l.controllers, "pids") == 0 || proc_cgroup_is_unified(&l))
			return strncmp(l.path, cgroup_parent, pl) == 0 && (l.path[pl] == '/' || l.path[pl] == '\0');
	}
	return false;
}

static int check_namespaces(json_object *linux_, const struct container_rules *rules, bool *joined_netns,
			    char *err, size_t errlen)
{
	json_object *a = member(linux_, "namespaces");
	bool seen[ARRAY_SIZE(ns_types)] = {false};

	if (!a || !json_object_is_type(a, json_type_array))
		return spec_fail(err, errlen, "linux.namespaces must be an array");
	size_t n = json_object_array_length(a);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		json_object *t = member(e, "type"), *p = member(e, "path");
		if (!e || !json_object_is_type(e, json_type_object) || !t || !json_object_is_type(t, json_type_string))
			return spec_fail(err, errlen, "linux.namespaces[%zu] must be an object with a string type", i);
		const char *type = json_object_get_string(t);
		size_t k;
		for (k = 0; k < ARRAY_SIZE(ns_types); k++)
			if (strcmp(type, ns_types[k]) == 0)
				break;
		if (k == ARRAY_SIZE(ns_types))
			return spec_fail(err, errlen, "linux.namespaces[%zu].type \"%.32s\" is not a namespace type", i,
					 type);
		if (seen[k])
			return spec_fail(err, errlen, "linux.namespaces[%zu]: a second %s namespace", i, type);
		seen[k] = true;
		if (!p)
			continue;
		if (!json_object_is_type(p, json_type_string))
			return spec_fail(err, errlen, "linux.namespaces[%zu].path must be a string", i);
		const char *path = json_object_get_string(p);
		if (k >= CONTAINER_NS_JOINABLE)
			return spec_fail(err, errlen, "linux.namespaces[%zu]: a %s namespace cannot be joined", i, type);
		if (k == CONTAINER_NS_PID && strncmp(path, "/proc/", 6) == 0) {
			if (!pod_process_pid_ns(path, rules->cgroup_parent))
				return spec_fail(err, errlen,
						 "linux.namespaces[%zu].path \"%.200s\" is not the PID namespace of a "
						 "process of this pod",
						 i, path);
			continue;
		}
		if (!rules->ns_paths[k])
			return spec_fail(err, errlen, "linux.namespaces[%zu]: the pod holds no %s namespace to join", i,
					 type);
		if (strcmp(path, rules->ns_paths[k]) != 0)
			return spec_fail(err, errlen, "linux.namespaces[%zu].path \"%.200s\" is not the pod's %s namespace %s",
					 i, path, type, rules->ns_paths[k]);
		if (k == CONTAINER_NS_NETWORK)
			*joined_netns = true;
	}
	if (!seen[NS_MOUNT])
		return spec_fail(err, errlen, "linux.namespaces must give the container a mount namespace of its own");
	return 0;
}

static int check_mounts(json_object *spec, char *err, size_t errlen)
{
	json_object *a = member(spec, "mounts");
	if (!a)
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return spec_fail(err, errlen, "mounts must be an array");
	size_t n = json_object_array_length(a);
	if (n > CONTAINER_MOUNTS_MAX)
		return spec_fail(err, errlen, "more than %d mounts", CONTAINER_MOUNTS_MAX);
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(a, i);
		json_object *d = member(m, "destination");
		if (!m || !json_object_is_type(m, json_type_object) || !d || !json_object_is_type(d, json_type_string) ||
		    json_object_get_string(d)[0] != '/')
			return spec_fail(err, errlen, "mounts[%zu] must be an object with an absolute destination", i);
		static const char *const strs[] = {"source", "type"};
		for (size_t k = 0; k < ARRAY_SIZE(strs); k++) {
			json_object *v = member(m, strs[k]);
			if (v && !json_object_is_type(v, json_type_string))
				return spec_fail(err, errlen, "mounts[%zu].%s must be a string", i, strs[k]);
		}
		/* The sources are host paths kubelet may ask for: the CRI's
		 * trust limit (spawnd_container.h). */
	}
	return 0;
}

static int check_spec(json_object *spec, const struct container_rules *rules, bool *joined_netns, char *err,
		      size_t errlen)
{
	if (!json_object_is_type(spec, json_type_object))
		return spec_fail(err, errlen, "must be a JSON object");
	if (json_object_object_get_ex(spec, "hooks", NULL))
		return spec_fail(err, errlen, "hooks are not allowed (they would run on the host as root)");

	json_object *root = member(spec, "root"), *path = member(root, "path");
	if (!root || !json_object_is_type(root, json_type_object) || !path || !json_object_is_type(path, json_type_string))
		return spec_fail(err, errlen, "root.path is required");
	if (strcmp(json_object_get_string(path), rules->rootfs) != 0)
		return spec_fail(err, errlen, "root.path \"%.200s\" is not this container's root filesystem %s",
				 json_object_get_string(path), rules->rootfs);

	json_object *process = member(spec, "process");
	if (!process || !json_object_is_type(process, json_type_object))
		return spec_fail(err, errlen, "process is required");
	json_object *term = member(process, "terminal");
	if (term && !json_object_is_type(term, json_type_boolean))
		return spec_fail(err, errlen, "process.terminal must be a boolean");
	if ((term && json_object_get_boolean(term)) != rules->tty)
		return spec_fail(err, errlen, "process.terminal must be %s, as tty is", rules->tty ? "true" : "false");

	json_object *linux_ = member(spec, "linux");
	if (!linux_ || !json_object_is_type(linux_, json_type_object))
		return spec_fail(err, errlen, "linux is required");
	int r = check_namespaces(linux_, rules, joined_netns, err, errlen);
	if (r < 0)
		return r;
	json_object *cg = member(linux_, "cgroupsPath");
	size_t pl = strlen(rules->cgroup_parent);
	const char *cgp = cg && json_object_is_type(cg, json_type_string) ? json_object_get_string(cg) : NULL;
	if (!cgp || strncmp(cgp, rules->cgroup_parent, pl) != 0 || cgp[pl] != '/' || !cgroup_path_is_valid(cgp))
		return spec_fail(err, errlen, "linux.cgroupsPath \"%.200s\" must be a cgroupfs path below the pod's cgroup %s",
				 cgp ? cgp : "", rules->cgroup_parent);
	return check_mounts(spec, err, errlen);
}

int container_spec_check(const char *json, size_t len, const struct container_rules *rules, json_object **out,
			 bool *joined_netns, char *err, size_t errlen)
{
	*out = NULL;
	*joined_netns = false;
	if (len == 0)
		return spec_fail(err, errlen, "is empty");
	if (len > CONTAINER_CONFIG_MAX)
		return spec_fail(err, errlen, "is larger than %u bytes", CONTAINER_CONFIG_MAX);
	if (memchr(json, '\0', len))
		return spec_fail(err, errlen, "holds a NUL byte");
	struct json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_object *spec = json_tokener_parse_ex(tok, json, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!spec || e != json_tokener_success) {
		json_object_put(spec);
		return spec_fail(err, errlen, "not valid JSON: %s at byte %zu",
				 e == json_tokener_continue ? "unexpected end" : json_tokener_error_desc(e), end);
	}
	for (size_t i = end; i < len; i++)
		if (!strchr(" \t\r\n", json[i])) {
			json_object_put(spec);
			return spec_fail(err, errlen, "trailing data at byte %zu", i);
		}
	int r = check_spec(spec, rules, joined_netns, err, errlen);
	if (r < 0) {
		json_object_put(spec);
		return r;
	}
	*out = spec;
	return 0;
}

/* ---------------------------------------------------------------- records */

struct ctr_record {
	char id[65];
	char pod_id[65];
	const struct runtime_config *handler;
	bool created;
	pid_t conmon_pid;
	uint64_t conmon_start;
	pid_t pid;
	int64_t created_ns;
};

static int record_write(const struct containers *cs, const struct ctr_op *op, bool created, pid_t pid)
{
	_cleanup_free_ char *dir = state_dir(cs, op->id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" RECORD_FILE, dir) : NULL;
	if (!path)
		return -ENOMEM;
	json_object *o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "container_id", json_object_new_string(op->id));
	json_object_object_add(o, "pod_id", json_object_new_string(op->pod_id));
	json_object_object_add(o, "state", json_object_new_string(created ? "created" : "creating"));
	json_object_object_add(o, "runtime_handler", json_object_new_string(op->handler->name));
	json_object_object_add(o, "conmon_pid", json_object_new_int64(op->conmon_pid));
	json_object_object_add(o, "conmon_start_time", json_object_new_uint64(op->conmon_start));
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	json_object_object_add(o, "created_ns", json_object_new_int64(op->created_ns));
	/* For people reading it; spawnd derives them from the id. */
	json_object_object_add(o, "socket", json_object_new_string(op->socket_path ? op->socket_path : ""));
	json_object_object_add(o, "log_path", json_object_new_string(op->log_path ? op->log_path : ""));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	int r = text ? write_file_boot(path, text, strlen(text), 0600) : -ENOMEM;
	json_object_put(o);
	return r;
}

static int record_read(const struct containers *cs, const char *id, struct ctr_record *rec)
{
	_cleanup_free_ char *dir = state_dir(cs, id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" RECORD_FILE, dir) : NULL;
	_cleanup_free_ char *text = NULL;
	json_object *v;

	memset(rec, 0, sizeof(*rec));
	if (!path)
		return -ENOMEM;
	int r = read_file(path, RECORD_MAX, &text, NULL);
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse(text);
	if (!o)
		return -EBADMSG;
	r = -EBADMSG;
	if (!(v = member(o, "container_id")) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), id) != 0)
		goto out;
	snprintf(rec->id, sizeof(rec->id), "%s", id);
	if ((v = member(o, "pod_id")) && json_object_is_type(v, json_type_string) && id_is_valid(json_object_get_string(v)))
		snprintf(rec->pod_id, sizeof(rec->pod_id), "%s", json_object_get_string(v));
	if (!(v = member(o, "runtime_handler")) || !json_object_is_type(v, json_type_string) ||
	    !(rec->handler = handler_find(cs, json_object_get_string(v))))
		goto out;
	if ((v = member(o, "state")) && json_object_is_type(v, json_type_string))
		rec->created = strcmp(json_object_get_string(v), "created") == 0;
	if ((v = member(o, "conmon_pid")) && json_object_is_type(v, json_type_int)) {
		int64_t pid = json_object_get_int64(v);
		if (pid < 0 || pid > (1 << 22))
			goto out;
		rec->conmon_pid = (pid_t)pid;
	}
	if ((v = member(o, "conmon_start_time")) && json_object_is_type(v, json_type_int))
		rec->conmon_start = json_object_get_uint64(v);
	if ((v = member(o, "pid")) && json_object_is_type(v, json_type_int))
		rec->pid = (pid_t)json_object_get_int64(v);
	if ((v = member(o, "created_ns")) && json_object_is_type(v, json_type_int))
		rec->created_ns = json_object_get_int64(v);
	r = 0;
out:
	json_object_put(o);
	return r;
}

/* ---------------------------------------------------------------- files */

/* Remove a directory of plain files (never following a symlink; empty
 * subdirectories go too), `last` after the others; a missing one is fine. */
static int remove_flat_dir(const char *path, const char *last)
{
	/* A bundle's pinned PID namespace (a bind mount) goes first. */
	_cleanup_free_ char *pin = xasprintf("%s/" CONTAINER_PIDNS_PIN, path);
	if (!pin)
		return -ENOMEM;
	for (int i = 0; i < 4 && umount2(pin, MNT_DETACH | UMOUNT_NOFOLLOW) == 0; i++)
		;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || (last && strcmp(n, last) == 0))
			continue;
		if (unlinkat(fd, n, 0) < 0 && errno != ENOENT &&
		    (errno != EISDIR || unlinkat(fd, n, AT_REMOVEDIR) < 0) && !ret)
			ret = -errno;
	}
	if (last && unlinkat(fd, last, 0) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

static int mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0)
		return -errno;
	/* Not subject to the umask. */
	return chmod(path, mode) < 0 ? -errno : 0;
}

/* <run_dir>/c -> <state_dir>/spawnd/containers */
static int state_alias_setup(const struct containers *cs)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(cs->state_alias, buf, sizeof(buf) - 1);
	if (n >= 0) {
		buf[n] = '\0';
		if (strcmp(buf, cs->records_dir) == 0)
			return 0;
		if (unlink(cs->state_alias) < 0)
			return -errno;
	} else if (errno != ENOENT) {
		return errno == EINVAL ? -EEXIST : -errno; /* something that is not a symlink */
	}
	return symlink(cs->records_dir, cs->state_alias) < 0 ? -errno : 0;
}

/* The last line of conmon's log, printable, for an error message. */
static void conmon_log_tail(const struct containers *cs, const char *id, char *out, size_t outlen)
{
	_cleanup_free_ char *dir = state_dir(cs, id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" CONMON_LOG_FILE, dir) : NULL;
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	char buf[1024];
	struct stat st;

	out[0] = '\0';
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	off_t off = st.st_size > (off_t)sizeof(buf) - 1 ? st.st_size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, off);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	for (char *p = line; *p; p++)
		if (char_is_ctl((unsigned char)*p))
			*p = ' ';
	size_t l = strnlen(line, outlen - 1);
	memcpy(out, line, l);
	out[l] = '\0';
}

/* ---------------------------------------------------------------- processes */

/* SIGKILL conmon and its process group (it is a session leader: the group
 * holds the runtime command it is waiting for), if it is still the process
 * that started at start. */
static void conmon_kill(pid_t pid, uint64_t start)
{
	int pidfd = -1;
	if (pid <= 0 || !start || proc_pidfd(pid, start, &pidfd) < 0)
		return;
	(void)kill(-pid, SIGKILL);
	(void)proc_signal(pid, pidfd, SIGKILL);
	if (pidfd >= 0)
		close(pidfd);
}

/* Wait up to ms for (pid, start) to be gone; true if it is. */
static bool wait_gone(pid_t pid, uint64_t start, int ms)
{
	int pidfd = -1;
	if (pid <= 0 || !start || proc_pidfd(pid, start, &pidfd) < 0)
		return true;
	int r = proc_wait_gone(pid, start, pidfd, ms);
	if (pidfd >= 0)
		close(pidfd);
	return r >= 0;
}

/* A conmon for this id, found through its conmon.pid: its command line must
 * be a conmon's with --id <id>. */
static bool conmon_pidfile_alive(const struct containers *cs, const char *id, pid_t *pid, uint64_t *start)
{
	_cleanup_free_ char *dir = state_dir(cs, id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" CONMON_PID_FILE, dir) : NULL;
	_cleanup_free_ char *text = NULL, *cmdline = NULL;
	char proc[64], state;
	size_t len;

	if (!path || read_file(path, 64, &text, NULL) < 0)
		return false;
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || v <= 1 || v > INT_MAX)
		return false;
	snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", v);
	if (read_file(proc, 1u << 16, &cmdline, &len) < 0 || proc_stat((pid_t)v, &state, start) < 0 || state == 'Z' ||
	    state == 'X')
		return false;
	const char *argv0 = cmdline, *slash = strrchr(argv0, '/');
	if (strcmp(slash ? slash + 1 : argv0, "conmon") != 0)
		return false;
	for (size_t off = strlen(cmdline) + 1; off < len;) {
		const char *arg = cmdline + off;
		size_t al = strnlen(arg, len - off);
		if (strcmp(arg, "--id") == 0 && off + al + 1 < len && strcmp(arg + al + 1, id) == 0) {
			*pid = (pid_t)v;
			return true;
		}
		off += al + 1;
	}
	return false;
}

/* Whether something listens on the unix socket at path. */
static bool socket_answers(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!path || strlen(path) > SUN_PATH_MAX)
		return false;
	memcpy(sa.sun_path, path, strlen(path));
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN || errno == EINPROGRESS;
}

/* Run `<runtime> --root <root> delete --force <id>` to completion (at most
 * CONTAINER_RUNTIME_TIMEOUT_MS); on failure err gets its last words. */
static int runtime_delete(const struct containers *cs, const char *runtime, const char *id, char *err, size_t errlen)
{
	const char *argv[] = {runtime, "--root", cs->runtime_root, "delete", "--force", id, NULL};
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return errf_first(err, errlen, -errno, "pipe: %s", strerror(errno));
	struct spawn_opts o = {.argv = argv, .cwd = "/", .stdin_fd = -1, .stdout_fd = p[1], .stderr_fd = p[1]};
	int r = spawn_process(&o, &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return errf_first(err, errlen, r, "cannot run %s: %s", runtime, strerror(-r));
	}
	char out[RUNTIME_OUTPUT_MAX];
	size_t n = 0;
	int64_t deadline = now_monotonic_ns() + (int64_t)CONTAINER_RUNTIME_TIMEOUT_MS * 1000000;
	bool eof = false, timed_out = false;
	while (!eof) {
		int64_t left = (deadline - now_monotonic_ns()) / 1000000;
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
			break;
		for (;;) {
			char buf[1024];
			ssize_t k = read(p[0], buf, sizeof(buf));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				eof = k == 0 || errno != EAGAIN;
				break;
			}
			/* Keep the tail (buf is smaller than out). */
			size_t kk = (size_t)k;
			if (n + kk > sizeof(out) - 1) {
				size_t drop = n + kk - (sizeof(out) - 1);
				memmove(out, out + drop, n - drop);
				n -= drop;
			}
			memcpy(out + n, buf, kk);
			n += kk;
		}
	}
	close(p[0]);
	if (timed_out)
		(void)kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		return errf_first(err, errlen, -ETIMEDOUT, "%s delete --force %s timed out after %d ms", runtime, id,
				  CONTAINER_RUNTIME_TIMEOUT_MS);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	char *line = strrchr(out, '\n');
	line = line ? line + 1 : out;
	/* runc's text log: time="..." level=error msg="..." */
	char *msg = strstr(line, "msg=\"");
	if (msg) {
		msg += 5;
		char *q = strrchr(msg, '"');
		if (q)
			*q = '\0';
		line = msg;
	}
	for (char *c = line; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	return errf_first(err, errlen, -EIO, "%s delete --force %s failed (status %d): %s", runtime, id,
			  WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), *line ? line : "no output");
}

/* ---------------------------------------------------------------- removal (worker pool) */

static int remove_container(struct ctr_op *op)
{
	const struct containers *cs = op->cs;
	const char *id = op->id;
	_cleanup_free_ char *bundle = bundle_dir(cs, id), *sdir = state_dir(cs, id);
	_cleanup_free_ char *sock1 = socket_primary(cs, id), *sock2 = socket_fallback(cs, id);
	_cleanup_free_ char *rt_state = xasprintf("%s/%s", cs->runtime_root, id);
	struct ctr_record rec;
	struct stat st;
	int r;

	op->status = STATUS_INTERNAL;
	if (!bundle || !sdir || !sock1 || !sock2 || !rt_state)
		return errf_first(op->err, sizeof(op->err), -ENOMEM, "out of memory");
	bool have_rec = record_read(cs, id, &rec) == 0;
	pid_t cpid = op->after_create ? op->conmon_pid : have_rec ? rec.conmon_pid : 0;
	uint64_t cstart = op->after_create ? op->conmon_start : have_rec ? rec.conmon_start : 0;

	if (op->after_create) {
		/* After "error" conmon cleans up and exits by itself. */
		if (!wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS)) {
			conmon_kill(cpid, cstart);
			if (!wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS))
				return errf_first(op->err, sizeof(op->err), -EBUSY,
						  "conmon %d does not exit", (int)cpid);
		}
	} else {
		bool alive = cpid > 0 && cstart && proc_alive(cpid, cstart);
		if (!alive)
			alive = conmon_pidfile_alive(cs, id, &cpid, &cstart);
		bool listening = socket_answers(sock1) || socket_answers(sock2);
		/* A Delete removes the socket, answers and exits: give it time. */
		if (alive && !listening && lstat(sock1, &st) < 0 && lstat(sock2, &st) < 0 &&
		    wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS))
			alive = false;
		if (alive || listening) {
			op->status = STATUS_FAILED_PRECONDITION;
			if (alive)
				return errf_first(op->err, sizeof(op->err), -EBUSY,
						  "container %s is still monitored by conmon (pid %d): delete it through "
						  "its control socket first",
						  id, (int)cpid);
			return errf_first(op->err, sizeof(op->err), -EBUSY,
					  "container %s is still monitored: its control socket answers", id);
		}
	}

	/* The runtime's state: left when conmon died (or was killed) before a
	 * Delete. --force kills what is left of the container. */
	if (lstat(rt_state, &st) == 0) {
		const struct runtime_config *h = have_rec ? rec.handler : op->handler ? op->handler : handler_find(cs, "");
		r = runtime_delete(cs, h->path, id, op->err, sizeof(op->err));
		if (r < 0)
			return r;
		log_info(op->req, "removed the runtime's state of a container", "id=%s runtime=%s", id, h->path);
	}
	r = remove_flat_dir(bundle, NULL);
	if (r < 0)
		return errf_first(op->err, sizeof(op->err), r, "cannot remove %s: %s", bundle, strerror(-r));
	if (unlink(sock2) < 0 && errno != ENOENT)
		return errf_first(op->err, sizeof(op->err), -errno, "cannot remove %s: %s", sock2, strerror(errno));
	r = remove_flat_dir(sdir, RECORD_FILE);
	if (r < 0)
		return errf_first(op->err, sizeof(op->err), r, "cannot remove %s: %s", sdir, strerror(-r));
	return 0;
}

/* ---------------------------------------------------------------- operations */

static struct ctr_op *op_find(struct containers *cs, const char *id)
{
	for (struct ctr_op *op = cs->ops; op; op = op->next)
		if (strcmp(op->id, id) == 0)
			return op;
	return NULL;
}

static void op_free(struct ctr_op *op)
{
	struct containers *cs = op->cs;
	for (struct ctr_op **pp = &cs->ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	if (op->read_ev)
		event_free(op->read_ev);
	if (op->timer_ev)
		event_free(op->timer_ev);
	if (op->sync_fd >= 0)
		close(op->sync_fd);
	free(op->removes.v);
	free(op->socket_path);
	free(op->log_path);
	free(op->log_root);
	free(op);
}

static struct ctr_op *op_new(struct containers *cs, enum op_kind kind, const char *id, const char *req)
{
	struct ctr_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->cs = cs;
	op->kind = kind;
	op->sync_fd = -1;
	snprintf(op->id, sizeof(op->id), "%s", id);
	snprintf(op->req, sizeof(op->req), "%s", req ? req : "");
	op->next = cs->ops;
	cs->ops = op;
	return op;
}

static int call_list_add(struct call_list *l, struct ipc_call *call)
{
	struct ipc_call **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->v[l->n++] = call;
	return 0;
}

static void remove_work(void *arg)
{
	struct ctr_op *op = arg;
	op->ret = remove_container(op);
}

static void remove_done(void *arg)
{
	struct ctr_op *op = arg;

	if (op->ret < 0)
		log_error_errno(op->ret, op->req,
				op->after_create ? "cannot clean up after a failed container create" : "cannot remove container",
				"id=%s error=\"%s\"", op->id, op->err);
	else
		log_info(op->req, op->after_create ? "cleaned up after a failed container create" : "container removed",
			 "id=%s", op->id);
	if (op->create_call)
		ipc_call_fail(op->create_call, op->create_status, "%s", op->create_err);
	for (size_t i = 0; i < op->removes.n; i++) {
		if (op->ret < 0) {
			ipc_call_fail(op->removes.v[i], op->status, "%s", op->err);
		} else {
			Criod__Internal__RemoveContainerResponse resp = CRIOD__INTERNAL__REMOVE_CONTAINER_RESPONSE__INIT;
			ipc_call_reply(op->removes.v[i], &resp.base, NULL, 0);
		}
	}
	op_free(op);
}

/* A create failed after conmon was started (or its files were made): clean
 * up on the worker pool, then answer. */
static void create_failed(struct ctr_op *op, int status, const char *fmt, ...) _printf_(3, 4);
static void create_failed(struct ctr_op *op, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(op->create_err, sizeof(op->create_err), fmt, ap);
	va_end(ap);
	op->create_status = status;
	log_error(op->req, "cannot create container", "id=%s pod=%s error=\"%s\"", op->id, op->pod_id, op->create_err);
	if (op->read_ev) {
		event_free(op->read_ev);
		op->read_ev = NULL;
	}
	if (op->timer_ev) {
		event_free(op->timer_ev);
		op->timer_ev = NULL;
	}
	if (op->sync_fd >= 0) {
		close(op->sync_fd);
		op->sync_fd = -1;
	}
	op->kind = OP_REMOVE;
	op->after_create = true;
	int r = workq_submit(op->cs->env.wq, remove_work, remove_done, op);
	if (r < 0) {
		/* Its record stays: a RemoveContainer finishes the job. */
		ipc_call_fail(op->create_call, op->create_status, "%s", op->create_err);
		op->create_call = NULL;
		op_free(op);
	}
}

static void sync_line(struct ctr_op *op)
{
	const char *line = op->line;
	size_t ol = STRLEN(CONMON_SYNC_OK), el = STRLEN(CONMON_SYNC_ERROR);

	if (strncmp(line, CONMON_SYNC_ERROR, el) == 0) {
		/* conmon removed what it made and exits. */
		create_failed(op, STATUS_INTERNAL, "%s", line + el);
		return;
	}
	char *end = (char *)line;
	errno = 0;
	long pid = strncmp(line, CONMON_SYNC_OK, ol) == 0 ? strtol(line + ol, &end, 10) : -1;
	/* 0: created, the runtime runs it at start (older monitors: its pid). */
	if (pid < 0 || pid == 1 || pid > INT_MAX || errno || *end || end == line + ol) {
		conmon_kill(op->conmon_pid, op->conmon_start);
		create_failed(op, STATUS_INTERNAL, "conmon reported \"%.200s\", not \"ok <pid>\" or \"error <message>\"",
			      line);
		return;
	}
	int r = record_write(op->cs, op, true, (pid_t)pid);
	if (r < 0)
		/* The monitor runs and says the same in its state.pb. */
		log_warn_errno(r, op->req, "cannot update the container record", "id=%s", op->id);
	_cleanup_free_ char *sdir = state_dir(op->cs, op->id);
	log_info(op->req, "container created", "id=%s pod=%s pid=%ld conmon_pid=%d socket=%s runtime=%s", op->id,
		 op->pod_id, pid, (int)op->conmon_pid, op->socket_path, op->handler->path);
	Criod__Internal__CreateContainerResponse resp = CRIOD__INTERNAL__CREATE_CONTAINER_RESPONSE__INIT;
	resp.pid = pid;
	resp.socket_path = op->socket_path;
	resp.state_dir = sdir ? sdir : (char *)"";
	ipc_call_reply(op->create_call, &resp.base, NULL, 0);
	op->create_call = NULL;
	op_free(op);
}

static void on_sync_read(evutil_socket_t fd, short what, void *arg)
{
	struct ctr_op *op = arg;

	for (;;) {
		ssize_t k = read(fd, op->line + op->n, sizeof(op->line) - 1 - op->n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		if (k <= 0) {
			char tail[512];
			int e = k < 0 ? errno : 0;
			/* conmon died or refused its command line. */
			conmon_kill(op->conmon_pid, op->conmon_start);
			conmon_log_tail(op->cs, op->id, tail, sizeof(tail));
			create_failed(op, STATUS_INTERNAL, "conmon exited without reporting%s%s%s%s", e ? ": " : "",
				      e ? strerror(e) : "", tail[0] ? "; its log ends: " : "", tail);
			return;
		}
		op->n += (size_t)k;
		op->line[op->n] = '\0';
		char *nl = memchr(op->line, '\n', op->n);
		if (nl) {
			*nl = '\0';
			sync_line(op);
			return;
		}
		if (op->n >= sizeof(op->line) - 1) {
			conmon_kill(op->conmon_pid, op->conmon_start);
			create_failed(op, STATUS_INTERNAL, "conmon's report is longer than %d bytes", CONMON_SYNC_MAX);
			return;
		}
	}
}

static void on_sync_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ctr_op *op = arg;
	conmon_kill(op->conmon_pid, op->conmon_start);
	create_failed(op, STATUS_DEADLINE_EXCEEDED, "conmon did not report the create within %d ms; killed it",
		      CONTAINER_SYNC_TIMEOUT_MS);
}

/* ---------------------------------------------------------------- CreateContainer */

/* Everything the create makes on disk before conmon runs. */
static int make_files(struct ctr_op *op, const char *spec_text, const char *sdir, char *err, size_t errlen)
{
	const struct containers *cs = op->cs;
	_cleanup_free_ char *bundle = bundle_dir(cs, op->id);
	_cleanup_free_ char *cfg = bundle ? xasprintf("%s/config.json", bundle) : NULL;
	int r;

	if (!cfg)
		return -ENOMEM;
	r = record_write(cs, op, false, 0);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot write the container record in %s: %s", sdir, strerror(-r));
	r = mkdir_p(cs->bundles_dir, 0755);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot create %s: %s", cs->bundles_dir, strerror(-r));
	/* A bundle without a state directory is a crash's leftover. */
	r = remove_flat_dir(bundle, NULL);
	if (r >= 0)
		r = mkdir_mode(bundle, 0711);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot create %s: %s", bundle, strerror(-r));
	r = write_file_boot(cfg, spec_text, strlen(spec_text), 0600);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot write %s: %s", cfg, strerror(-r));
	if (strncmp(op->socket_path, cs->socks_dir, strlen(cs->socks_dir)) == 0) {
		r = mkdir_p(cs->socks_dir, 0755);
		if (r < 0)
			return errf_first(err, errlen, r, "cannot create %s: %s", cs->socks_dir, strerror(-r));
	}
	return 0;
}

static int start_conmon(struct ctr_op *op, const char *state_arg, const char *sdir, bool tty, bool keep_stdin,
			bool stdin_once, char *err, size_t errlen)
{
	const struct containers *cs = op->cs;
	const struct container_env *env = &cs->env;
	_cleanup_free_ char *bundle = bundle_dir(cs, op->id);
	_cleanup_free_ char *logp = xasprintf("%s/" CONMON_LOG_FILE, sdir);
	int p[2];

	if (!bundle || !logp)
		return -ENOMEM;
	/* The launcher builds conmon's command line from the same
	 * configuration and these fields, checks them again, and starts it
	 * (spawnd_launch.h): no filter of spawnd's reaches the container. */
	struct launch_request lr = {.flags = (tty ? LAUNCH_TTY : 0) | (keep_stdin ? LAUNCH_STDIN : 0) |
					     (keep_stdin && stdin_once ? LAUNCH_STDIN_ONCE : 0)};
	_cleanup_free_ char *real_state = state_dir(cs, op->id);
	if (!real_state)
		return -ENOMEM;
	if (strcmp(state_arg, real_state) != 0)
		lr.flags |= LAUNCH_STATE_ALIAS;
	snprintf(lr.id, sizeof(lr.id), "%s", op->id);
	if (snprintf(lr.handler, sizeof(lr.handler), "%s", op->handler->name) >= (int)sizeof(lr.handler) ||
	    snprintf(lr.log_path, sizeof(lr.log_path), "%s", op->log_path) >= (int)sizeof(lr.log_path))
		return errf_first(err, errlen, -ENAMETOOLONG,
				  "the handler name or log_path is too long for the launcher");

	_cleanup_close_ int logfd = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (logfd < 0)
		return errf_first(err, errlen, -errno, "cannot open %s: %s", logp, strerror(errno));
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return errf_first(err, errlen, -errno, "pipe: %s", strerror(errno));
	/* conmon's end blocks; ours does not. */
	int fl = fcntl(p[1], F_GETFL);
	if (fl < 0 || fcntl(p[1], F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return errf_first(err, errlen, r, "fcntl: %s", strerror(-r));
	}
	pid_t pid = 0;
	int r = launcher_conmon(env->launcher, &lr, logfd, p[1], &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return errf_first(err, errlen, r, "cannot start %s through the launcher: %s", env->conmon_path,
				  strerror(-r));
	}
	op->sync_fd = p[0];
	op->conmon_pid = pid;
	/* It may already be gone again: the sync pipe tells. */
	if (proc_stat(pid, NULL, &op->conmon_start) < 0)
		op->conmon_start = 0;
	return 0;
}

/* ---- TARGET PID namespaces, pinned at create ----
 *
 * runc opens a namespace path only at Start (run), any time after the
 * check: a "/proc/<pid>/ns/pid" path would by then name whatever process
 * got the pid. So CreateContainer opens the namespace now, through a
 * /proc/<pid> directory fd verified with a pidfd to be the process that
 * was checked, and bind-mounts it at <bundle>/pidns, the path the spec the
 * runtime reads names instead. Start joins exactly that namespace; if its
 * init (the target container's) has exited meanwhile, the kernel lets no
 * new process into it and Start fails with the runtime's error, never in
 * another process's namespace. The pin goes with the bundle
 * (remove_flat_dir unmounts it) on every failure and on RemoveContainer. */

/* The spec's pid namespace entry with a /proc path, or NULL. */
static json_object *target_pidns_entry(json_object *spec)
{
	json_object *a = member(member(spec, "linux"), "namespaces");
	for (size_t i = 0; a && i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i), *t = member(e, "type"), *p = member(e, "path");
		if (t && p && strcmp(json_object_get_string(t), "pid") == 0 &&
		    strncmp(json_object_get_string(p), "/proc/", 6) == 0)
			return e;
	}
	return NULL;
}

static bool fd_own_pid_ns_init(int dfd)
{
	_cleanup_close_ int fd = openat(dfd, "status", O_RDONLY | O_CLOEXEC);
	_cleanup_fclose_ FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;
	char line[256];
	if (!f)
		return false;
	fd = -1; /* the FILE has it */
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		char *last = strrchr(line, '\t');
		/* two levels or more (a namespace below spawnd's), PID 1 in the last */
		return last && last != line + 6 && strtol(last + 1, NULL, 10) == 1;
	}
	return false;
}

/* Open the PID namespace of the process path names (checked syntax):
 * *nsfd. The process must be the one the pid named when the pidfd was
 * opened, PID 1 of a PID namespace of its own (a container's init) and in
 * the pod's cgroup. -ESRCH: gone; -EINVAL: not such a process. */
static int pin_target_pidns(const char *path, const char *cgroup_parent, int *nsfd, char *err, size_t errlen)
{
	unsigned long pid = target_pid_of(path);
	char dir[32];

	*nsfd = -1;
	if (!pid)
		return errf_first(err, errlen, -EINVAL,
				  "linux.namespaces: pid path \"%.64s\" is not /proc/<pid>/ns/pid", path);
	_cleanup_close_ int pidfd = pidfd_open_pid((pid_t)pid);
	if (pidfd < 0 && pidfd != -ENOSYS)
		return errf_first(err, errlen, -ESRCH, "the target process %lu of %s is gone", pid, path);
	snprintf(dir, sizeof(dir), "/proc/%lu", pid);
	_cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* still the pidfd's process: the pid was not reused in between */
	if (dfd < 0 || (pidfd >= 0 && proc_signal((pid_t)pid, pidfd, 0) < 0))
		return errf_first(err, errlen, -ESRCH, "the target process %lu of %s is gone", pid, path);
	_cleanup_close_ int cgfd = openat(dfd, "cgroup", O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *cg = NULL;
	if (cgfd < 0 || read_fd(cgfd, 1 << 16, &cg, NULL) < 0 || !cgroup_text_beneath(cg, cgroup_parent) ||
	    !fd_own_pid_ns_init(dfd))
		return errf_first(err, errlen, -EINVAL,
				  "linux.namespaces: %s is not the PID namespace of a container's init in this pod", path);
	_cleanup_close_ int fd = openat(dfd, "ns/pid", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWPID)
		return errf_first(err, errlen, -ESRCH,
				  "cannot open the PID namespace of the target process %lu: %s", pid,
				  fd < 0 ? strerror(errno) : "not a PID namespace");
	if (pidfd >= 0 && proc_signal((pid_t)pid, pidfd, 0) < 0)
		return errf_first(err, errlen, -ESRCH, "the target process %lu of %s is gone", pid, path);
	*nsfd = TAKE_FD(fd);
	return 0;
}

/* Bind-mount the pinned namespace at <bundle>/pidns. */
static int pidns_pin_mount(const char *bundle, int nsfd, char *err, size_t errlen)
{
	_cleanup_free_ char *pin = xasprintf("%s/" CONTAINER_PIDNS_PIN, bundle);
	char src[64];
	if (!pin)
		return -ENOMEM;
	int fd = open(pin, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0444);
	if (fd < 0)
		return errf_first(err, errlen, -errno, "cannot create %s: %s", pin, strerror(errno));
	close(fd);
	snprintf(src, sizeof(src), "/proc/self/fd/%d", nsfd);
	if (mount(src, pin, NULL, MS_BIND, NULL) < 0)
		return errf_first(err, errlen, -errno, "cannot bind-mount the target's PID namespace at %s: %s", pin,
				  strerror(errno));
	return 0;
}

void container_create(struct containers *cs, struct ipc_call *call, const Criod__Internal__CreateContainerRequest *req,
		      const struct pod_infra *pod)
{
	const struct container_env *env = &cs->env;
	const char *rid = ipc_call_request_id(call);
	char err[ERR_MAX] = "";
	struct stat st;
	int r;

	/* ---- every field, before anything is touched ---- */
	if (!id_is_valid(req->container_id)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "container_id must be 64 lowercase hex characters");
		return;
	}
	const char *id = req->container_id;
	const struct runtime_config *h = handler_find(cs, req->runtime_handler);
	if (!h) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "runtime_handler \"%.64s\" is not a configured runtime",
			      req->runtime_handler);
		return;
	}
	if (access(h->path, X_OK) < 0) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "runtime %s of handler \"%s\": %s", h->path, h->name,
			      strerror(errno));
		return;
	}
	_cleanup_free_ char *own_dir = state_dir(cs, id);
	const char *log_root = NULL;
	r = own_dir ? container_log_path_beneath(env->cfg, req->log_path, own_dir, &log_root, err, sizeof(err)) : -ENOMEM;
	if (r >= 0)
		r = container_log_path_check(req->log_path, env->criod_uid, env->criod_gid, err, sizeof(err));
	if (r < 0) {
		int status = r == -EINVAL || r == -ENOTDIR ? STATUS_INVALID_ARGUMENT
			     : r == -EPERM		  ? STATUS_PERMISSION_DENIED
							  : status_from_errno(r);
		ipc_call_fail(call, status, "%s", err[0] ? err : strerror(-r));
		return;
	}

	_cleanup_free_ char *rootfs = xasprintf("%s/%s/rootfs", cs->imaged_dir, id);
	_cleanup_free_ char *netns = xasprintf("%s/%s", env->pods->netns_dir, pod->id);
	_cleanup_free_ char *ipc = pod->ipc_ns ? pod_path(env->pods, pod->id, "ns/ipc") : NULL;
	_cleanup_free_ char *uts = pod->uts_ns ? pod_path(env->pods, pod->id, "ns/uts") : NULL;
	_cleanup_free_ char *pidns = pod->pid_ns ? pod_path(env->pods, pod->id, "ns/pid") : NULL;
	_cleanup_free_ char *sdir = state_dir(cs, id);
	_cleanup_free_ char *sock = socket_path(cs, id);
	_cleanup_free_ char *alias = xasprintf("%s/%s", cs->state_alias, id);
	if (!rootfs || !netns || (pod->ipc_ns && !ipc) || (pod->uts_ns && !uts) || (pod->pid_ns && !pidns) || !sdir ||
	    !sock || !alias || !pod->cgroup_path) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	struct container_rules rules = {
		.rootfs = rootfs,
		.ns_paths = {[CONTAINER_NS_NETWORK] = netns, [CONTAINER_NS_IPC] = ipc, [CONTAINER_NS_UTS] = uts,
			     [CONTAINER_NS_PID] = pidns},
		.cgroup_parent = pod->cgroup_path,
		.tty = req->tty,
	};
	json_object *spec = NULL;
	bool joins_netns = false;
	r = container_spec_check((const char *)req->config_json.data, req->config_json.len, &rules, &spec,
				 &joins_netns, err, sizeof(err));
	if (r < 0) {
		ipc_call_fail(call, r == -ENOMEM ? STATUS_RESOURCE_EXHAUSTED : STATUS_INVALID_ARGUMENT, "%s", err);
		return;
	}
	/* The node policy, field by field (spawnd_policy.h). */
	_cleanup_free_ char *pod_files = xasprintf("%s/criod/pods/%s", env->state_dir, pod->id);
	_cleanup_free_ char *pod_shm = pod->shm ? pod_path(env->pods, pod->id, "shm") : NULL;
	_cleanup_free_ char *bundle_path = bundle_dir(cs, id);
	_cleanup_(spawnd_policy_pins_free) struct spawnd_policy_pins pins = {0};
	struct spawnd_policy_ctx policy = {.cfg = env->cfg, .pod_files_dir = pod_files, .pod_shm = pod_shm,
					   .pod_ipc_ns = pod->ipc_ns, .pod_id = pod->id,
					   .pod_host_network = !pod->uts_ns, .pod_host_pid = pod->host_pid,
					   .pod_privileged = pod->privileged, .criod_uid = env->criod_uid,
					   .criod_gid = env->criod_gid, .bundle_dir = bundle_path, .pins = &pins};
	int verdict = !pod_files || (pod->shm && !pod_shm) || !bundle_path
			     ? STATUS_RESOURCE_EXHAUSTED
			     : spawnd_policy_enforce(spec, &policy, rid, id, pod->id, err, sizeof(err));
	if (verdict != STATUS_OK) {
		json_object_put(spec);
		ipc_call_fail(call, verdict, "%s", verdict == STATUS_RESOURCE_EXHAUSTED && !err[0] ? "out of memory" : err);
		return;
	}
	/* A TARGET PID namespace: pinned now, the spec names the pin. */
	_cleanup_close_ int pidns_fd = -1;
	json_object *target = target_pidns_entry(spec);
	if (target) {
		_cleanup_free_ char *pin = xasprintf("%s/" CONTAINER_PIDNS_PIN, bundle_path);
		r = pin ? pin_target_pidns(json_object_get_string(member(target, "path")), pod->cgroup_path, &pidns_fd, err,
					   sizeof(err))
			: -ENOMEM;
		json_object *jp = r >= 0 ? json_object_new_string(pin) : NULL;
		if (r >= 0 && (!jp || json_object_object_add(target, "path", jp) < 0)) {
			json_object_put(jp);
			r = -ENOMEM;
		}
		if (r < 0) {
			json_object_put(spec);
			ipc_call_fail(call, r == -ENOMEM ? STATUS_RESOURCE_EXHAUSTED : r == -ESRCH ? STATUS_FAILED_PRECONDITION
												    : STATUS_INVALID_ARGUMENT,
				      "%s", err[0] ? err : "out of memory");
			return;
		}
	}
	/* What the runtime reads is what was checked: no duplicate keys or
	 * parser differences between json-c and the runtime. */
	_cleanup_free_ char *spec_text = NULL;
	const char *t = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	spec_text = t ? strdup(t) : NULL;
	json_object_put(spec);
	if (!spec_text) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (joins_netns) {
		_cleanup_close_ int fd = -1;
		r = pod_open_netns(env->pods, netns, &fd, err, sizeof(err));
		if (r < 0) {
			ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "pod %s: %s", pod->id, err);
			return;
		}
	}
	if (lstat(rootfs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
			      "the root filesystem %s of container %s is not there: MountRootfs first", rootfs, id);
		return;
	}
	if (access(env->conmon_path, X_OK) < 0) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "conmon %s: %s", env->conmon_path, strerror(errno));
		return;
	}
	if (strlen(sock) > SUN_PATH_MAX) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
			      "run_dir %s is too long for a unix socket path for the container", env->run_dir);
		return;
	}
	/* conmon's console socket is <state-dir>/console.sock. */
	const char *state_arg = sdir;
	if (req->tty && strlen(sdir) + 1 + STRLEN(CONMON_CONSOLE_SOCKET) > SUN_PATH_MAX) {
		state_arg = alias;
		if (strlen(alias) + 1 + STRLEN(CONMON_CONSOLE_SOCKET) > SUN_PATH_MAX) {
			ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
				      "state_dir and run_dir are too long for the container's console socket");
			return;
		}
	}
	struct ctr_op *busy = op_find(cs, id);
	if (busy) {
		ipc_call_fail(call, busy->kind == OP_CREATE ? STATUS_ALREADY_EXISTS : STATUS_FAILED_PRECONDITION,
			      "container %s is being %s", id, busy->kind == OP_CREATE ? "created" : "removed");
		return;
	}

	/* ---- make it ---- */
	r = mkdir_p(cs->records_dir, 0755);
	if (r >= 0) {
		r = mkdir_mode(sdir, 0755); /* the claim on the id */
		if (r == -EEXIST) {
			ipc_call_fail(call, STATUS_ALREADY_EXISTS, "container %s already exists", id);
			return;
		}
	}
	if (r < 0) {
		ipc_call_fail(call, status_from_errno(r), "cannot create %s: %s", sdir, strerror(-r));
		return;
	}
	struct ctr_op *op = op_new(cs, OP_CREATE, id, rid);
	if (!op || !(op->socket_path = strdup(sock)) || !(op->log_path = strdup(req->log_path)) ||
	    !(op->log_root = strdup(log_root))) {
		if (op)
			op_free(op);
		(void)remove_flat_dir(sdir, RECORD_FILE);
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	snprintf(op->pod_id, sizeof(op->pod_id), "%s", pod->id);
	op->handler = h;
	op->create_call = call;
	op->created_ns = now_realtime_ns();

	r = make_files(op, spec_text, sdir, err, sizeof(err));
	if (r >= 0)
		r = spawnd_policy_pins_write(&pins, bundle_path, err, sizeof(err)); /* the mounts' sources */
	if (r >= 0 && pidns_fd >= 0) {
		r = pidns_pin_mount(bundle_path, pidns_fd, err, sizeof(err));
		if (r >= 0)
			log_info(rid, "target PID namespace pinned", "id=%s pod=%s pin=%s/" CONTAINER_PIDNS_PIN, id, pod->id,
				 bundle_path);
	}
	if (r >= 0 && state_arg == alias) {
		r = state_alias_setup(cs);
		if (r < 0)
			errf_first(err, sizeof(err), r, "cannot link %s to %s: %s", cs->state_alias, cs->records_dir,
				   strerror(-r));
	}
	if (r >= 0)
		r = start_conmon(op, state_arg, sdir, req->tty, req->stdin, req->stdin_once, err, sizeof(err));
	if (r >= 0) {
		r = record_write(cs, op, false, 0); /* conmon's pid and start time */
		if (r < 0)
			errf_first(err, sizeof(err), r, "cannot write the container record: %s", strerror(-r));
	}
	if (r < 0) {
		int status = r == -ENOMEM || r == -ENOSPC || r == -EAGAIN ? STATUS_RESOURCE_EXHAUSTED : STATUS_INTERNAL;
		if (op->conmon_pid > 0) {
			conmon_kill(op->conmon_pid, op->conmon_start);
			create_failed(op, status, "%s", err);
			return;
		}
		log_error_errno(r, rid, "cannot create container", "id=%s pod=%s error=\"%s\"", id, pod->id, err);
		_cleanup_free_ char *bundle = bundle_dir(cs, id);
		if (bundle)
			(void)remove_flat_dir(bundle, NULL);
		(void)remove_flat_dir(sdir, RECORD_FILE);
		op->create_call = NULL;
		op_free(op);
		ipc_call_fail(call, status, "%s", err);
		return;
	}

	struct timeval tv = {.tv_sec = CONTAINER_SYNC_TIMEOUT_MS / 1000, .tv_usec = (CONTAINER_SYNC_TIMEOUT_MS % 1000) * 1000};
	op->read_ev = event_new(env->base, op->sync_fd, EV_READ | EV_PERSIST, on_sync_read, op);
	op->timer_ev = evtimer_new(env->base, on_sync_timeout, op);
	if (!op->read_ev || !op->timer_ev || event_add(op->read_ev, NULL) < 0 || evtimer_add(op->timer_ev, &tv) < 0) {
		conmon_kill(op->conmon_pid, op->conmon_start);
		create_failed(op, STATUS_INTERNAL, "cannot watch conmon's sync pipe");
		return;
	}
	log_debug(rid, "conmon started", "id=%s pod=%s conmon_pid=%d socket=%s state_dir=%s tty=%s stdin=%s",
		  id, pod->id, (int)op->conmon_pid, op->socket_path, state_arg, req->tty ? "true" : "false",
		  req->stdin ? "true" : "false");
}

/* ---------------------------------------------------------------- RemoveContainer */

void container_remove(struct containers *cs, struct ipc_call *call, const Criod__Internal__RemoveContainerRequest *req)
{
	if (!id_is_valid(req->container_id)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "container_id must be 64 lowercase hex characters");
		return;
	}
	struct ctr_op *op = op_find(cs, req->container_id);
	if (op && op->kind == OP_CREATE) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "container %s is being created", req->container_id);
		return;
	}
	if (!op) {
		op = op_new(cs, OP_REMOVE, req->container_id, ipc_call_request_id(call));
		if (!op) {
			ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
		int r = workq_submit(cs->env.wq, remove_work, remove_done, op);
		if (r < 0) {
			op_free(op);
			ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot remove container %s: %s", req->container_id,
				      strerror(-r));
			return;
		}
	}
	/* A removal in progress answers this call too. */
	if (call_list_add(&op->removes, call) < 0)
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

/* ---------------------------------------------------------------- set-up */

int containers_new(const struct container_env *env, struct containers **out)
{
	struct containers *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->env = *env;
	cs->bundles_dir = xasprintf("%s/containers", env->run_dir);
	cs->socks_dir = xasprintf("%s/s", env->run_dir);
	cs->runtime_root = xasprintf("%s/runc", env->run_dir);
	cs->state_alias = xasprintf("%s/c", env->run_dir);
	cs->records_dir = xasprintf("%s/spawnd/containers", env->state_dir);
	cs->imaged_dir = xasprintf("%s/imaged/containers", env->state_dir);
	if (!cs->bundles_dir || !cs->socks_dir || !cs->runtime_root || !cs->state_alias || !cs->records_dir ||
	    !cs->imaged_dir) {
		containers_free(cs);
		return -ENOMEM;
	}
	int r = mkdir_p(cs->records_dir, 0755);
	if (r < 0) {
		log_error_errno(r, NULL, "cannot create the container record directory", "path=%s", cs->records_dir);
		containers_free(cs);
		return r;
	}
	*out = cs;
	return 0;
}

void containers_free(struct containers *cs)
{
	if (!cs)
		return;
	while (cs->ops) {
		struct ctr_op *op = cs->ops;
		if (op->create_call) {
			log_warn(op->req, "spawnd is stopping before conmon reported; its record stays",
				 "id=%s conmon_pid=%d", op->id, (int)op->conmon_pid);
			ipc_call_fail(op->create_call, STATUS_UNAVAILABLE,
				      "spawnd is stopping; conmon %d goes on creating container %s", (int)op->conmon_pid,
				      op->id);
		}
		for (size_t i = 0; i < op->removes.n; i++)
			ipc_call_fail(op->removes.v[i], STATUS_UNAVAILABLE, "spawnd is stopping");
		op_free(op);
	}
	free(cs->bundles_dir);
	free(cs->socks_dir);
	free(cs->runtime_root);
	free(cs->state_alias);
	free(cs->records_dir);
	free(cs->imaged_dir);
	free(cs);
}
