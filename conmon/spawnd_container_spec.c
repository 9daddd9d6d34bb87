/* spawnd's checks of a container request against the node: log_path, the
 * OCI spec criod built, and a TARGET PID namespace, pinned at create; see
 * spawnd_container.h. The container's lifecycle is spawnd_container.c. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/nsfs.h>

#include "beneath.h"
#include "config.h"
#include "macro.h"
#include "procstat.h"
#include "proc_cgroup.h"
#include "spawnd_cgroup.h"
#include "spawnd_container.h"
#include "spawnd_container_internal.h"
#include "spawnd_proc.h"
#include "util.h"

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
json_object *target_pidns_entry(json_object *spec)
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
	_cleanup_free_ char *text = NULL;
	return fd >= 0 && read_fd(fd, 1 << 16, &text, NULL) == 0 && procstat_parse_ns_init(text);
}

/* Open the PID namespace of the process path names (checked syntax):
 * *nsfd. The process must be the one the pid named when the pidfd was
 * opened, PID 1 of a PID namespace of its own (a container's init) and in
 * the pod's cgroup. -ESRCH: gone; -EINVAL: not such a process. */
int pin_target_pidns(const char *path, const char *cgroup_parent, int *nsfd, char *err, size_t errlen)
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
int pidns_pin_mount(const char *bundle, int nsfd, char *err, size_t errlen)
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
