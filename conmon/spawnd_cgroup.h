/* Pod and container cgroups, for both cgroup drivers and every host layout.
 *
 * A cgroup path here is always relative to the root of a hierarchy and
 * starts with "/" ("/kubepods/besteffort/pod123/criod-<id>"); the same path
 * is made in every hierarchy the host has:
 *   v1      /sys/fs/cgroup is a tmpfs holding one cgroup (v1) mount per
 *           controller set: cpu, cpuacct, memory, pids, cpuset, blkio,
 *           devices, freezer, name=systemd, ... (every one of them is used)
 *   hybrid  v1 as above plus a cgroup2 mount at /sys/fs/cgroup/unified,
 *           which holds no controllers and is left alone
 *   v2      /sys/fs/cgroup is the one cgroup2 hierarchy
 *
 * Drivers: "cgroupfs" takes cgroup_parent as such a path; "systemd" takes a
 * slice name ("kubepods-besteffort-pod123.slice") and expands it the way
 * systemd does (/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice).
 * The directories are always made directly in cgroupfs: with systemd running
 * as PID 1 the proper way would be a transient scope started over D-Bus
 * (StartTransientUnit), which is not implemented yet.
 *
 * The pure functions (validation, slice expansion, path building) have no
 * side effects and are unit tested; the rest touches /sys/fs/cgroup. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CGROUP_ROOT "/sys/fs/cgroup"
#define CGROUP_PATH_MAX 1024 /* a whole relative path */
#define CGROUP_NAME_MAX 255  /* one component */

enum cgroup_driver { CGROUP_DRIVER_CGROUPFS, CGROUP_DRIVER_SYSTEMD };
enum cgroup_mode { CGROUP_MODE_V1, CGROUP_MODE_HYBRID, CGROUP_MODE_V2 };

/* ---- pure ---- */

/* "cgroupfs" or "systemd"; -EINVAL otherwise. */
int cgroup_driver_from_string(const char *s, enum cgroup_driver *out);
const char *cgroup_driver_to_string(enum cgroup_driver d);
const char *cgroup_mode_to_string(enum cgroup_mode m);

/* A cgroupfs path: "/" or "/a/b/c" with components of 1..255 bytes of
 * [A-Za-z0-9._:@-] and "\" (systemd's escapes), never "." or "..", no empty
 * component (no "//", no trailing "/"), at most CGROUP_PATH_MAX bytes, and no
 * component a cgroup filesystem uses for its files ("cgroup.*", "tasks",
 * "notify_on_release", "release_agent", "<controller>.*"). */
bool cgroup_path_is_valid(const char *path);

/* A systemd slice name as systemd's unit_name_is_valid(UNIT_NAME_PLAIN)
 * accepts it, ending in ".slice"; "-.slice" is the root slice. */
bool systemd_slice_is_valid(const char *slice);
/* systemd's slice expansion (cg_slice_to_path): "a-b-c.slice" becomes
 * "/a.slice/a-b.slice/a-b-c.slice", each component escaped as systemd's
 * cg_escape does ("cpu.slice" is "_cpu.slice"); "-.slice" is "/". A leading,
 * trailing or doubled dash is -EINVAL, as is anything systemd_slice_is_valid
 * refuses. *out is malloc'd. */
int systemd_slice_expand(const char *slice, char **out);

/* The pod cgroup for pod_id (64 hex). parent is the request's cgroup_parent;
 * empty means default_parent, and if that is empty too "/criod" (cgroupfs)
 * or "criod.slice" (systemd). cgroupfs: <parent>/criod-<pod_id>; systemd:
 * <expanded slice>/criod-<pod_id>.scope. -EINVAL names no field: the caller
 * knows it was cgroup_parent (or the configured default). *out is malloc'd. */
int cgroup_pod_path(enum cgroup_driver driver, const char *parent, const char *default_parent,
		    const char *pod_id, char **out);
/* Whether path is a pod cgroup path of pod_id that cgroup_pod_path can have
 * made (used to check records read back from disk). */
bool cgroup_is_pod_path(const char *path, const char *pod_id);

/* ---- the host ---- */

struct cgroup_hierarchy {
	char *mount; /* absolute mount point, e.g. /sys/fs/cgroup/memory */
	char *name;  /* its directory name under /sys/fs/cgroup ("memory"), "" for v2 */
	bool cpuset; /* a v1 hierarchy with the cpuset controller */
};

struct cgroup_host {
	enum cgroup_mode mode;
	struct cgroup_hierarchy *h;
	size_t n;
};

/* Find the hierarchies under root (CGROUP_ROOT; tests may pass another):
 * statfs(root) is CGROUP2_SUPER_MAGIC for v2; a tmpfs holds v1 mounts (each
 * directory that is a cgroup v1 mount, symlinks such as cpu -> cpu,cpuacct
 * skipped) and, when it has a cgroup2 "unified" mount, is hybrid. */
int cgroup_host_detect(const char *root, struct cgroup_host *out);
void cgroup_host_free(struct cgroup_host *h);

/* Make path in every hierarchy (parents too). cpuset: an empty cpuset.cpus
 * or cpuset.mems on the way is copied from its parent, so tasks can join.
 * v2: the controllers of each ancestor are enabled in its
 * cgroup.subtree_control (best effort). On failure what was made is removed. */
int cgroup_create(const struct cgroup_host *h, const char *path);

/* The pod cgroup of pod_id found by its name in the host's hierarchies
 * (cgroup_is_pod_path, at most CGROUP_FIND_DEPTH levels down, symlinks not
 * followed), for a pod whose record is lost and which has no process left
 * to read it from: malloc'd, NULL if none (or out of memory). */
#define CGROUP_FIND_DEPTH 8
char *cgroup_find_pod(const struct cgroup_host *h, const char *pod_id);
/* The cgroup.procs file of path in every hierarchy, NULL-terminated (for
 * spawn_opts.cgroup_procs); free with cgroup_strv_free. */
int cgroup_procs_files(const struct cgroup_host *h, const char *path, char ***out);
void cgroup_strv_free(char **v);
/* Move pid into path in every hierarchy. */
int cgroup_add_pid(const struct cgroup_host *h, const char *path, pid_t pid);
/* SIGKILL every process still in path or a cgroup below it (each one pinned
 * by a pidfd and checked to be a member before the signal), then wait up to
 * timeout_ms for them to be gone. Returns the number of processes signalled,
 * or -ETIMEDOUT. Blocks: call from a worker thread. */
int cgroup_kill_all(const struct cgroup_host *h, const char *path, int timeout_ms);
/* rmdir path (and any cgroups below it, deepest first) in every hierarchy;
 * EBUSY (tasks that are just exiting) is retried for up to timeout_ms.
 * A path that does not exist is fine. Blocks: call from a worker thread. */
int cgroup_remove(const struct cgroup_host *h, const char *path, int timeout_ms);
