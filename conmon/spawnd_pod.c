/* A pod's infrastructure: the pause process, namespace bind mounts, shm,
 * the pod cgroup and the durable record; see spawnd_pod.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
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

#include <json-c/json.h>
#include <linux/magic.h>
#include <linux/nsfs.h>

#include "log.h"
#include "macro.h"
#include "proc_cgroup.h"
#include "spawnd_pod.h"
#include "spawnd_proc.h"
#include "spawn.h"
#include "util.h"

#define MAX_RECORD (64u << 10)
#define CGROUP_RMDIR_TIMEOUT_MS 2000

static const char *const state_names[] = {
	[POD_CREATING] = "creating",
	[POD_READY] = "ready",
	[POD_STOPPED] = "stopped",
	[POD_REMOVING] = "removing",
};

static const char *const ns_kinds[] = {"ipc", "uts", "pid"};

const char *pod_state_to_string(enum pod_state s)
{
	return (size_t)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

void pod_infra_clear(struct pod_infra *p)
{
	free(p->cgroup_path);
	p->cgroup_path = NULL;
}

/* ---------------------------------------------------------------- validation */

bool pod_hostname_is_valid(const char *name)
{
	if (!name)
		return false;
	size_t len = strnlen(name, POD_HOSTNAME_MAX + 1);
	if (len == 0 || len > POD_HOSTNAME_MAX)
		return false;
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];
		if (c == '.' || c == '\0') {
			if (label == 0 || name[i - 1] == '-')
				return false; /* empty label, or one ending in '-' */
			label = 0;
			continue;
		}
		if (c == '-' && label == 0)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
		label++;
	}
	return true;
}

int pod_open_netns(const struct pod_env *env, const char *path, int *out, char *err, size_t errlen)
{
	size_t dl = strlen(env->netns_dir);
	_cleanup_close_ int dfd = -1, fd = -1;
	struct statfs sfs;

	*out = -1;
	if (strnlen(path, PATH_MAX) >= PATH_MAX || strncmp(path, env->netns_dir, dl) != 0 || path[dl] != '/' ||
	    !name_is_valid(path + dl + 1, 255)) {
		return errf_first(err, errlen, -EINVAL, "netns_path must be %s/<name>", env->netns_dir);
	}
	dfd = open(env->netns_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd >= 0)
		fd = openat(dfd, path + dl + 1, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		errf_first(err, errlen, 0, "netns_path %s: %s", path, strerror(-r));
		return r == -ENOENT ? -ENOENT : -EINVAL;
	}
	if (fstatfs(fd, &sfs) < 0 || (unsigned long)sfs.f_type != NSFS_MAGIC) {
		return errf_first(err, errlen, -EINVAL, "netns_path %s is not a namespace mount", path);
	}
	if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
		return errf_first(err, errlen, -EINVAL, "netns_path %s is not a network namespace", path);
	}
	*out = TAKE_FD(fd);
	return 0;
}

/* ---------------------------------------------------------------- paths */

char *pod_path(const struct pod_env *env, const char *id, const char *which)
{
	char *p;
	if (!id_is_valid(id))
		return NULL;
	if (asprintf(&p, "%s/%s%s%s", env->pods_dir, id, which ? "/" : "", which ? which : "") < 0)
		return NULL;
	return p;
}

static char *ns_path(const struct pod_env *env, const char *id, const char *kind)
{
	char which[16];
	snprintf(which, sizeof(which), "ns/%s", kind);
	return pod_path(env, id, which);
}

static char *record_path(const struct pod_env *env, const char *id)
{
	char *p;
	if (asprintf(&p, "%s/%s.json", env->records_dir, id) < 0)
		return NULL;
	return p;
}

/* ---------------------------------------------------------------- the record */

static void add_str(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

int pod_record_write(const struct pod_env *env, const struct pod_infra *p)
{
	_cleanup_free_ char *path = record_path(env, p->id);
	_cleanup_free_ char *dir = pod_path(env, p->id, NULL);
	_cleanup_free_ char *shm = pod_path(env, p->id, "shm");
	if (!path || !dir || !shm)
		return -ENOMEM;

	json_object *o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "version", json_object_new_int(1));
	add_str(o, "pod_id", p->id);
	add_str(o, "state", pod_state_to_string(p->state));
	json_object_object_add(o, "pause_pid", json_object_new_int64(p->pid));
	json_object_object_add(o, "pause_start_time", json_object_new_uint64(p->start_time));
	json_object_object_add(o, "ipc_ns", json_object_new_boolean(p->ipc_ns));
	json_object_object_add(o, "uts_ns", json_object_new_boolean(p->uts_ns));
	json_object_object_add(o, "pid_ns", json_object_new_boolean(p->pid_ns));
	json_object_object_add(o, "shm", json_object_new_boolean(p->shm));
	json_object_object_add(o, "host_pid", json_object_new_boolean(p->host_pid));
	json_object_object_add(o, "privileged", json_object_new_boolean(p->privileged));
	add_str(o, "cgroup_path", p->cgroup_path);
	add_str(o, "cgroup_driver", cgroup_driver_to_string(p->driver));
	json_object_object_add(o, "oom_score_adj", json_object_new_int(p->oom_score_adj));
	json_object_object_add(o, "created_ns", json_object_new_int64(p->created_ns));
	/* For people reading it; spawnd derives them from the id. */
	add_str(o, "pod_dir", dir);
	add_str(o, "shm_path", p->shm ? shm : "");
	for (size_t i = 0; i < ARRAY_SIZE(ns_kinds); i++) {
		bool held = i == 0 ? p->ipc_ns : i == 1 ? p->uts_ns : p->pid_ns;
		_cleanup_free_ char *np = ns_path(env, p->id, ns_kinds[i]);
		char key[16];
		snprintf(key, sizeof(key), "%s_ns_path", ns_kinds[i]);
		add_str(o, key, held && np ? np : "");
	}
	const char *text = json_object_to_json_string_ext(o,
							  JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	int r = text ? write_file_boot(path, text, strlen(text), 0600) : -ENOMEM;
	json_object_put(o);
	return r;
}

static bool get(json_object *o, const char *k, json_type t, json_object **v)
{
	return json_object_object_get_ex(o, k, v) && json_object_is_type(*v, t);
}

int pod_record_read(const struct pod_env *env, const char *name, struct pod_infra *p)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	json_object *v;
	int r;

	memset(p, 0, sizeof(*p));
	size_t nl = strlen(name);
	if (nl != 64 + 5 || strcmp(name + 64, ".json") != 0)
		return -EINVAL;
	memcpy(p->id, name, 64);
	p->id[64] = '\0';
	if (!id_is_valid(p->id))
		return -EINVAL;
	if (asprintf(&path, "%s/%s", env->records_dir, name) < 0)
		return -ENOMEM;
	r = read_file(path, MAX_RECORD, &text, NULL);
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse(text);
	if (!o)
		return -EBADMSG;
	r = -EBADMSG;
	if (!get(o, "pod_id", json_type_string, &v) || strcmp(json_object_get_string(v), p->id) != 0)
		goto out;
	if (!get(o, "state", json_type_string, &v))
		goto out;
	const char *st = json_object_get_string(v);
	size_t si;
	for (si = 0; si < ARRAY_SIZE(state_names); si++)
		if (strcmp(st, state_names[si]) == 0)
			break;
	if (si == ARRAY_SIZE(state_names))
		goto out;
	p->state = (enum pod_state)si;
	if (!get(o, "pause_pid", json_type_int, &v))
		goto out;
	int64_t pid = json_object_get_int64(v);
	if (pid < 0 || pid > (1 << 22))
		goto out;
	p->pid = (pid_t)pid;
	if (!get(o, "pause_start_time", json_type_int, &v))
		goto out;
	p->start_time = json_object_get_uint64(v);
	if (get(o, "ipc_ns", json_type_boolean, &v))
		p->ipc_ns = json_object_get_boolean(v);
	if (get(o, "uts_ns", json_type_boolean, &v))
		p->uts_ns = json_object_get_boolean(v);
	if (get(o, "pid_ns", json_type_boolean, &v))
		p->pid_ns = json_object_get_boolean(v);
	if (get(o, "shm", json_type_boolean, &v))
		p->shm = json_object_get_boolean(v);
	/* A record without them (an older spawnd): what its policy allowed. */
	p->host_pid = get(o, "host_pid", json_type_boolean, &v) ? json_object_get_boolean(v) : !p->pid_ns;
	p->privileged = get(o, "privileged", json_type_boolean, &v) ? json_object_get_boolean(v) : true;
	if (!get(o, "cgroup_path", json_type_string, &v) || !cgroup_is_pod_path(json_object_get_string(v), p->id))
		goto out;
	if (!(p->cgroup_path = strdup(json_object_get_string(v)))) {
		r = -ENOMEM;
		goto out;
	}
	if (!get(o, "cgroup_driver", json_type_string, &v) ||
	    cgroup_driver_from_string(json_object_get_string(v), &p->driver) < 0)
		goto out;
	if (get(o, "oom_score_adj", json_type_int, &v))
		p->oom_score_adj = (int)json_object_get_int(v);
	if (get(o, "created_ns", json_type_int, &v))
		p->created_ns = json_object_get_int64(v);
	r = 0;
out:
	json_object_put(o);
	if (r < 0)
		pod_infra_clear(p);
	return r;
}

/* The pod cgroup of pod id that pid is in, or below it: malloc'd, NULL if none. */
static char *pod_cgroup_of(pid_t pid, const char *id)
{
	_cleanup_free_ char *path = NULL, *text = NULL;

	if (asprintf(&path, "/proc/%d/cgroup", (int)pid) < 0 || read_file(path, 1 << 16, &text, NULL) < 0)
		return NULL;
	struct proc_cgroup_line l;
	for (char *cur = text; proc_cgroup_next(&cur, &l);) {
		char *cg = l.path;
		for (char *end = cg + 1;; end++) {
			if (*end == '/' || *end == '\0') {
				char c = *end;
				*end = '\0';
				bool pod = cgroup_is_pod_path(cg, id);
				char *found = pod ? strdup(cg) : NULL;
				*end = c;
				if (pod)
					return found;
				if (!c)
					break;
			}
		}
	}
	return NULL;
}

/* The pod cgroup of any process in one of the pod's own namespaces. */
static char *pod_cgroup_from_ns(const struct pod_env *env, const char *id)
{
	struct stat ns[ARRAY_SIZE(ns_kinds)];
	bool have[ARRAY_SIZE(ns_kinds)], any = false;
	char *found = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(ns_kinds); i++) {
		_cleanup_free_ char *np = ns_path(env, id, ns_kinds[i]);
		struct statfs sf;
		/* Only a bound namespace: the bare file under it is the host's fs. */
		have[i] = np && statfs(np, &sf) == 0 && sf.f_type == NSFS_MAGIC && stat(np, &ns[i]) == 0;
		any |= have[i];
	}
	if (!any)
		return NULL;
	DIR *d = opendir("/proc");
	if (!d)
		return NULL;
	for (struct dirent *de; !found && (de = readdir(d));) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		for (size_t i = 0; !found && i < ARRAY_SIZE(ns_kinds); i++) {
			char pp[64];
			struct stat st;
			snprintf(pp, sizeof(pp), "/proc/%ld/ns/%s", pid, ns_kinds[i]);
			if (have[i] && stat(pp, &st) == 0 && st.st_dev == ns[i].st_dev && st.st_ino == ns[i].st_ino)
				found = pod_cgroup_of((pid_t)pid, id);
		}
	}
	closedir(d);
	return found;
}

int pod_record_recover(const struct pod_env *env, const char *name, struct pod_infra *p)
{
	memset(p, 0, sizeof(*p));
	if (strlen(name) != 64 + 5 || strcmp(name + 64, ".json") != 0)
		return -EINVAL;
	memcpy(p->id, name, 64);
	p->id[64] = '\0';
	if (!id_is_valid(p->id))
		return -EINVAL;
	p->state = POD_REMOVING;
	p->cgroup_path = pod_cgroup_from_ns(env, p->id);
	if (!p->cgroup_path && env->cg)
		/* no process left in its namespaces (the pause died too), or
		 * none of its own (the host's): by its name in the hierarchies */
		p->cgroup_path = cgroup_find_pod(env->cg, p->id);
	if (p->cgroup_path) {
		size_t n = strlen(p->cgroup_path);
		p->driver = n > 6 && strcmp(p->cgroup_path + n - 6, ".scope") == 0 ? CGROUP_DRIVER_SYSTEMD
										      : CGROUP_DRIVER_CGROUPFS;
	}
	return 0;
}

int pod_record_remove(const struct pod_env *env, const char *id)
{
	_cleanup_free_ char *path = record_path(env, id);
	if (!path)
		return -ENOMEM;
	/* The directory is not fsynced, as the records are not
	 * (write_file_boot): a record a host crash brings back names a pause,
	 * mounts and namespaces the crash took, just as the record of every
	 * pod running at the crash does, and the start scan handles both. */
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* ---------------------------------------------------------------- mounts */

int pod_root_setup(const struct pod_env *env)
{
	int r = mkdir_p(env->pods_dir, 0755);
	if (r < 0)
		return r;
	/* As iproute2 does for /run/netns: make the directory a mount point of
	 * its own (a bind mount onto itself) and shared, so every bind mount
	 * below propagates to mount namespaces copied from here, and an
	 * unmount here unmounts them there too instead of pinning them. */
	for (bool bound = false;; bound = true) {
		if (mount("", env->pods_dir, "none", MS_SHARED | MS_REC, NULL) == 0)
			return 0;
		if (errno != EINVAL || bound)
			return -errno;
		if (mount(env->pods_dir, env->pods_dir, "none", MS_BIND | MS_REC, NULL) < 0)
			return -errno;
	}
}

void pod_root_release(const struct pod_env *env)
{
	if (umount2(env->pods_dir, UMOUNT_NOFOLLOW) == 0 || errno == EINVAL)
		(void)rmdir(env->pods_dir);
}

static int make_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0444);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* A directory of exactly this mode (one left by an older spawnd or a
 * crash is given it too). */
static int mkdir_one(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	struct stat st;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return (st.st_mode & 07777) == mode || chmod(path, mode) == 0 ? 0 : -errno;
}

/* Unmount everything stacked on path (a crash may have left more than one). */
static int unmount_all(const char *path)
{
	for (int i = 0; i < 16; i++)
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
			return errno == EINVAL || errno == ENOENT ? 0 : -errno;
	return -EBUSY;
}

static int pod_unmount(const struct pod_env *env, const char *id, char *err, size_t errlen)
{
	_cleanup_free_ char *dir = pod_path(env, id, NULL);
	_cleanup_free_ char *nsdir = pod_path(env, id, "ns");
	_cleanup_free_ char *shm = pod_path(env, id, "shm");
	int ret = 0, r;

	if (!dir || !nsdir || !shm)
		return -ENOMEM;
	for (size_t i = 0; i < ARRAY_SIZE(ns_kinds); i++) {
		_cleanup_free_ char *np = ns_path(env, id, ns_kinds[i]);
		if (!np)
			return -ENOMEM;
		r = unmount_all(np);
		if (r == 0 && unlink(np) < 0 && errno != ENOENT)
			r = -errno;
		if (r < 0) {
			errf_first(err, errlen, 0, "cannot remove %s: %s", np, strerror(-r));
			ret = ret ? ret : r;
		}
	}
	r = unmount_all(shm);
	if (r < 0) {
		errf_first(err, errlen, 0, "cannot unmount %s: %s", shm, strerror(-r));
		ret = ret ? ret : r;
	}
	const char *dirs[] = {nsdir, shm, dir};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (rmdir(dirs[i]) < 0 && errno != ENOENT) {
			r = -errno;
			errf_first(err, errlen, 0, "cannot remove %s: %s", dirs[i], strerror(-r));
			ret = ret ? ret : r;
		}
	return ret;
}

/* ---------------------------------------------------------------- create */

#define PAUSE_REPORT_TIMEOUT_MS 10000

/* One line from fd (until newline or EOF), without its newline. */
static int read_report(int fd, int timeout_ms, char *buf, size_t size)
{
	int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	size_t n = 0;

	buf[0] = '\0';
	while (n < size - 1) {
		int64_t left = (deadline - now_monotonic_ns()) / 1000000;
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int k = poll(&pfd, 1, (int)left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -ETIMEDOUT;
		ssize_t got = read(fd, buf + n, size - 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			break;
		n += (size_t)got;
		buf[n] = '\0';
		if (memchr(buf, '\n', n))
			break;
	}
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	for (char *c = buf; *c; c++) /* it goes into an error message */
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return 0;
}

static int start_pause(const struct pod_env *env, const struct pod_spec *spec, struct pod_infra *p, char *err,
		       size_t errlen)
{
	char **procs = NULL;
	_cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
	_cleanup_close_ int report_r = -1, report_w = -1;
	const char *argv[] = {env->pause_path, NULL};
	pid_t pid = 0;
	int r, pp[2];

	if (devnull < 0 || pipe2(pp, O_CLOEXEC) < 0)
		return -errno;
	report_r = pp[0];
	report_w = pp[1];
	r = cgroup_procs_files(env->cg, p->cgroup_path, &procs);
	if (r < 0)
		return r;
	struct spawn_opts o = {
		.argv = argv,
		.cwd = "/",
		.stdin_fd = devnull,
		.stdout_fd = report_w, /* pause's one line: "ok" once it is confined */
		.stderr_fd = devnull,
		.new_session = 1, /* no controlling tty; survives spawnd */
		.clone_flags = (p->ipc_ns ? CLONE_NEWIPC : 0) | (p->uts_ns ? CLONE_NEWUTS : 0) |
			       (p->pid_ns ? CLONE_NEWPID : 0),
		.cgroup_procs = (const char *const *)procs,
		.setns_fds = spec->netns_fd >= 0 ? &spec->netns_fd : NULL,
		.n_setns_fds = spec->netns_fd >= 0 ? 1 : 0,
		.hostname = p->uts_ns && spec->hostname && *spec->hostname ? spec->hostname : NULL,
	};
	r = spawn_process(&o, &pid);
	cgroup_strv_free(procs);
	close(TAKE_FD(report_w));
	if (r < 0) {
		return errf_first(err, errlen, r,
				  "cannot start the pause process %s: %s", env->pause_path, strerror(-r));
	}
	r = proc_stat(pid, NULL, &p->start_time);
	p->pid = pid; /* even without a start time: teardown then kills by cgroup */
	if (r < 0) {
		return errf_first(err, errlen, r, "pause process %d vanished: %s", (int)pid, strerror(-r));
	}
	/* pause confines itself (empty root, no capabilities, seccomp) and
	 * says so before the pod's namespaces are handed out. */
	char report[256];
	r = read_report(report_r, PAUSE_REPORT_TIMEOUT_MS, report, sizeof(report));
	if (r < 0 || strcmp(report, "ok") != 0) {
		errf_first(err, errlen, 0, "the pause process did not confine itself: %s",
			   r == -ETIMEDOUT ? "no report in time" : r < 0 ? strerror(-r) : *report ? report : "it exited");
		return r < 0 ? r : -EPERM;
	}
	return 0;
}

int pod_create(const struct pod_env *env, const struct pod_spec *spec, struct pod_infra *p, char *err,
	       size_t errlen)
{
	_cleanup_free_ char *dir = pod_path(env, p->id, NULL);
	_cleanup_free_ char *nsdir = pod_path(env, p->id, "ns");
	_cleanup_free_ char *shm = pod_path(env, p->id, "shm");
	int r;

	if (!dir || !nsdir || !shm)
		return -ENOMEM;
	p->state = POD_CREATING;
	p->created_ns = now_realtime_ns();
	p->oom_score_adj = 0;
	r = pod_record_write(env, p);
	if (r < 0) {
		return errf_first(err, errlen, r,
				  "cannot write the pod record in %s: %s", env->records_dir, strerror(-r));
	}

	r = cgroup_create(env->cg, p->cgroup_path);
	if (r < 0) {
		return errf_first(err, errlen, r, "cannot create cgroup %s: %s", p->cgroup_path, strerror(-r));
	}
	r = pod_root_setup(env);
	if (r < 0) {
		return errf_first(err, errlen, r,
				  "cannot set up %s as a shared mount: %s", env->pods_dir, strerror(-r));
	}
	/* 0700: the pod's /dev/shm is a 1777 tmpfs, reachable by no one on
	 * the host but root (the OCI runtime bind-mounts it as root). */
	r = mkdir_one(dir, 0700);
	if (r >= 0)
		r = mkdir_one(nsdir, 0700);
	if (r >= 0 && p->shm && mkdir(shm, 0700) < 0 && errno != EEXIST) /* may hold the tmpfs already */
		r = -errno;
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(ns_kinds); i++) {
		bool held = i == 0 ? p->ipc_ns : i == 1 ? p->uts_ns : p->pid_ns;
		_cleanup_free_ char *np = ns_path(env, p->id, ns_kinds[i]);
		r = !np ? -ENOMEM : held ? make_file(np) : 0;
	}
	if (r < 0) {
		return errf_first(err, errlen, r, "cannot create %s: %s", dir, strerror(-r));
	}

	if (p->ipc_ns || p->uts_ns || p->pid_ns) {
		r = start_pause(env, spec, p, err, errlen);
		int w = pod_record_write(env, p); /* the pid, before anything else can fail */
		if (r < 0)
			return r;
		if (w < 0) {
			errf_first(err, errlen, 0, "cannot write the pod record: %s", strerror(-w));
			return w;
		}
		for (size_t i = 0; i < ARRAY_SIZE(ns_kinds); i++) {
			bool held = i == 0 ? p->ipc_ns : i == 1 ? p->uts_ns : p->pid_ns;
			if (!held)
				continue;
			char src[64];
			_cleanup_free_ char *np = ns_path(env, p->id, ns_kinds[i]);
			snprintf(src, sizeof(src), "/proc/%d/ns/%s", (int)p->pid, ns_kinds[i]);
			if (!np)
				return -ENOMEM;
			if (mount(src, np, NULL, MS_BIND, NULL) < 0) {
				r = -errno;
				return errf_first(err, errlen, r,
						  "cannot bind-mount %s at %s: %s", src, np, strerror(-r));
			}
		}
		r = oom_score_adj_apply(p->pid, spec->oom_score_adj, &p->oom_score_adj, spec->req);
		if (r < 0) {
			return errf_first(err, errlen, r, "cannot set oom_score_adj of the pause process to %d: %s",
					  spec->oom_score_adj, strerror(-r));
		}
	}
	if (p->shm) {
		char opts[64];
		snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)spec->shm_size);
		if (mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0) {
			r = -errno;
			return errf_first(err, errlen, r, "cannot mount a tmpfs at %s: %s", shm, strerror(-r));
		}
	}

	p->state = POD_READY;
	r = pod_record_write(env, p);
	if (r < 0) {
		return errf_first(err, errlen, r, "cannot write the pod record: %s", strerror(-r));
	}
	return 0;
}

/* ---------------------------------------------------------------- stop, teardown */

static int kill_pause(struct pod_infra *p, char *err, size_t errlen)
{
	if (p->pid > 0 && p->start_time) {
		int r = proc_kill_wait(p->pid, p->start_time, POD_KILL_TIMEOUT_MS);
		if (r < 0) {
			return errf_first(err, errlen, r,
					  "pause process %d did not exit: %s", (int)p->pid, strerror(-r));
		}
		log_debug(NULL, "pause process gone", "pod=%s pid=%d", p->id, (int)p->pid);
	}
	/* Without a start time it cannot be told from a reused pid: the
	 * teardown finds it in the pod cgroup instead. */
	p->pid = 0;
	p->start_time = 0;
	return 0;
}

int pod_stop(const struct pod_env *env, struct pod_infra *p, char *err, size_t errlen)
{
	int r = kill_pause(p, err, errlen);
	if (r < 0)
		return r;
	if (p->state == POD_READY)
		p->state = POD_STOPPED;
	r = pod_record_write(env, p);
	if (r < 0)
		errf_first(err, errlen, 0, "cannot write the pod record: %s", strerror(-r));
	return r;
}

int pod_teardown(const struct pod_env *env, struct pod_infra *p, char *err, size_t errlen)
{
	int r;

	/* A crash from here on finishes the teardown at the next start. */
	p->state = POD_REMOVING;
	r = pod_record_write(env, p);
	if (r < 0)
		log_warn_errno(r, NULL, "cannot mark the pod record as removing", "pod=%s", p->id);
	r = kill_pause(p, err, errlen);
	if (r < 0)
		return r; /* the pause process is still there: keep everything */
	if (p->cgroup_path && env->cg->n > 0) {
		/* Whatever else is left in the pod cgroup (a pause process a
		 * crash kept out of the record, stray children). */
		r = cgroup_kill_all(env->cg, p->cgroup_path, POD_KILL_TIMEOUT_MS);
		if (r > 0)
			log_info(NULL, "killed processes left in the pod cgroup", "pod=%s count=%d", p->id, r);
		else if (r < 0) {
			return errf_first(err, errlen, r, "cannot empty cgroup %s: %s", p->cgroup_path, strerror(-r));
		}
	}
	r = pod_unmount(env, p->id, err, errlen);
	if (r < 0)
		return r;
	if (p->cgroup_path && env->cg->n > 0) {
		r = cgroup_remove(env->cg, p->cgroup_path, CGROUP_RMDIR_TIMEOUT_MS);
		if (r < 0) {
			return errf_first(err, errlen, r, "cannot remove cgroup %s: %s", p->cgroup_path, strerror(-r));
		}
	}
	r = pod_record_remove(env, p->id);
	if (r < 0)
		errf_first(err, errlen, 0, "cannot remove the pod record: %s", strerror(-r));
	return r;
}
