/* A pod's infrastructure as spawnd makes it: the pause process holding the
 * pod's namespaces, their bind mounts, the /dev/shm tmpfs, the pod cgroup,
 * and the durable record that lets a later spawnd find (or finish tearing
 * down) all of it.
 *
 *   <run_dir>/pods/                     a shared bind mount of itself (as
 *                                       iproute2 does for /run/netns), so the
 *                                       mounts below propagate and unmount
 *                                       cleanly in every mount namespace
 *   <run_dir>/pods/<pod_id>/ns/ipc      bind mounts of /proc/<pause>/ns/<kind>
 *   <run_dir>/pods/<pod_id>/ns/uts
 *   <run_dir>/pods/<pod_id>/ns/pid
 *   <run_dir>/pods/<pod_id>/shm         tmpfs, mode 1777, nosuid,nodev,noexec
 *   <state_dir>/spawnd/pods/<pod_id>.json   the record (write_file_atomic)
 *
 * The record is written before anything is made ("creating"), again once
 * the pause process runs (its pid and start time), and when all is done
 * ("ready"); "stopped" after StopPodInfra, "removing" before a teardown. A
 * record left "creating" or "removing" by a crash is torn down at the next
 * start. Paths are never taken from a record: they are derived again from
 * the pod id, and the cgroup path read back must be a pod cgroup path of
 * that pod id. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spawnd_cgroup.h"

enum pod_state { POD_CREATING, POD_READY, POD_STOPPED, POD_REMOVING };

#define POD_KILL_TIMEOUT_MS 10000
#define POD_SHM_DEFAULT (64ull << 20)
#define POD_SHM_MAX (1ull << 40)
#define POD_HOSTNAME_MAX 63

struct pod_env {
	const char *pods_dir;    /* <run_dir>/pods */
	const char *netns_dir;   /* <run_dir>/netns: the only place a pod's netns may come from */
	const char *records_dir; /* <state_dir>/spawnd/pods */
	const char *pause_path;  /* the pause binary next to spawnd */
	const struct cgroup_host *cg;
};

struct pod_infra {
	char id[65];
	enum pod_state state;
	pid_t pid;           /* the pause process; 0: none (not needed, not yet, or stopped) */
	uint64_t start_time; /* its start time, /proc/<pid>/stat field 22 */
	bool ipc_ns, uts_ns, pid_ns, shm; /* what the pod holds of its own (!uts_ns: the host's network) */
	/* What the node policy let the pod have, as spawnd made it: the
	 * host's PID namespace (pid NS_NODE; NS_CONTAINER is neither this nor
	 * pid_ns) and privileged containers. A container's host namespaces
	 * and privileges rest on these, never on what criod claims. A record
	 * of a spawnd before these keys has neither: read as privileged and
	 * host_pid = !pid_ns, what the policy allowed then (legacy). */
	bool host_pid, privileged;
	char *cgroup_path;   /* "/criod/criod-<id>", relative to each hierarchy root */
	enum cgroup_driver driver;
	int oom_score_adj;   /* as applied */
	int64_t created_ns;
};

/* The rest of what CreatePodInfra asks for, validated (what the pod holds
 * and its cgroup are in struct pod_infra). */
struct pod_spec {
	const char *hostname; /* NULL or "": keep the inherited one */
	int netns_fd;         /* -1: stay in spawnd's (host network) */
	int oom_score_adj;
	uint64_t shm_size;
	const char *req;      /* request id for logs */
};

const char *pod_state_to_string(enum pod_state s);
void pod_infra_clear(struct pod_infra *p);

/* RFC 1123 host name (labels of [A-Za-z0-9-], not starting or ending with
 * '-', joined by '.'), at most 63 bytes. */
bool pod_hostname_is_valid(const char *name);
/* netns_path must be <netns_dir>/<name> with a plain name, be a bind mount
 * of a namespace file (statfs: NSFS_MAGIC) and name a network namespace.
 * Opened without following symlinks; *fd gets it. Fills err on failure. */
int pod_open_netns(const struct pod_env *env, const char *netns_path, int *fd, char *err, size_t errlen);

/* Paths derived from the pod id (malloc'd). which: "ns/ipc", "ns/uts",
 * "ns/pid", "shm" or NULL for the pod directory. */
char *pod_path(const struct pod_env *env, const char *id, const char *which);

/* The record. */
int pod_record_write(const struct pod_env *env, const struct pod_infra *p);
/* Read and check <records_dir>/<name>; fills *p (clear it afterwards). */
int pod_record_read(const struct pod_env *env, const char *name, struct pod_infra *p);
int pod_record_remove(const struct pod_env *env, const char *id);
/* For a record named <id>.json that pod_record_read refuses: what the id
 * alone names, ready for pod_teardown (state removing, no pause pid). The
 * pod cgroup is the one a process holding the pod's namespaces
 * (<pods_dir>/<id>/ns/...) is in, NULL when none is left. -EINVAL if name
 * is not a record name. */
int pod_record_recover(const struct pod_env *env, const char *name, struct pod_infra *p);

/* Make the pod: cgroup, pause process, namespace bind mounts, shm, oom.
 * p->id, p->cgroup_path, p->driver and the ns flags must be set; the
 * record is written as it goes. On failure err says what failed and the
 * caller tears down whatever is there (pod_teardown). Runs on the loop:
 * nothing here waits for anything but system calls. */
int pod_create(const struct pod_env *env, const struct pod_spec *spec, struct pod_infra *p, char *err,
	       size_t errlen);
/* Kill the pause process (if it is still the one we started) and wait for
 * it. Blocks up to POD_KILL_TIMEOUT_MS: call from a worker thread. */
int pod_stop(const struct pod_env *env, struct pod_infra *p, char *err, size_t errlen);
/* Stop, kill what else is left in the pod cgroup, unmount and remove the
 * pod directory, remove the cgroup and finally the record. Idempotent;
 * blocks: call from a worker thread (or before serving). */
int pod_teardown(const struct pod_env *env, struct pod_infra *p, char *err, size_t errlen);

/* <run_dir>/pods as a shared mount point of its own (idempotent). */
int pod_root_setup(const struct pod_env *env);
/* Undo pod_root_setup if no pod is left under it (a non-lazy unmount, which
 * fails while anything is still mounted below; that is fine). */
void pod_root_release(const struct pod_env *env);
