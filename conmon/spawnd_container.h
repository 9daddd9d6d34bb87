/* Containers as spawnd makes them: CreateContainer checks the OCI spec
 * criod built against what the root daemons know, writes the bundle and
 * starts one conmon monitor (conmon/conmon.h) per container, detached so
 * that it outlives spawnd; RemoveContainer removes what CreateContainer
 * made once the monitor is gone.
 *
 * ---- Paths (all derived from the container id; never read from a record) ----
 *
 *   <run_dir>/containers/<id>/            the bundle: mode 0711 root (criod
 *                                         may reach the socket in it, not
 *                                         list or read it)
 *   <run_dir>/containers/<id>/config.json the spec as spawnd checked it (0600,
 *                                         atomic), re-serialised from the
 *                                         parsed document, so the runtime
 *                                         reads exactly what was checked
 *   <run_dir>/containers/<id>/pidns       a TARGET PID namespace pinned at
 *                                         create (a bind mount of it), which
 *                                         config.json names instead of
 *                                         /proc/<pid>/ns/pid; unmounted
 *                                         with the bundle
 *   <run_dir>/containers/<id>/conmon.sock conmon's control socket, or, when
 *                                         that path does not fit a unix
 *                                         socket address (108 bytes: run_dir
 *                                         longer than 19 bytes),
 *                                         <run_dir>/s/<id>
 *   <run_dir>/runc/                       the runtime's --root
 *   <state_dir>/spawnd/containers/<id>/   conmon's --state-dir (0755 root;
 *                                         conmon.pid, state.pb, runtime.log,
 *                                         ...) plus spawnd's own files:
 *     spawnd.json                         the record (atomic): pod, runtime
 *                                         handler, conmon's pid and start
 *                                         time, state creating/created/
 *                                         removing
 *     conmon.log                          conmon's stdout and stderr (0600)
 *   <run_dir>/c -> <state_dir>/spawnd/containers
 *                                         a symlink spawnd passes conmon the
 *                                         state directory through when the
 *                                         real path is too long for conmon's
 *                                         console socket (--tty only:
 *                                         <state-dir>/console.sock must fit
 *                                         108 bytes, and with the default
 *                                         state_dir it does not)
 *
 * The state directory itself (mkdir, EEXIST: ALREADY_EXISTS) is what claims
 * a container id; it is removed last.
 *
 * ---- What CreateContainer checks (criod is treated as hostile) ----
 *
 *   container_id, pod_id   64 lowercase hex; the pod must be one spawnd holds
 *                          and READY (spawnd.c checks that)
 *   runtime_handler        "" ([pods] default_runtime) or the NAME of a
 *                          [runtime.NAME] section of the configuration
 *                          (built in: runc -> /usr/sbin/runc), else
 *                          INVALID_ARGUMENT; the binary must exist
 *   log_path               absolute, at most CONTAINER_LOG_PATH_MAX bytes, no
 *                          empty, "." or ".." component, no control
 *                          characters; and criod's user must not be able to
 *                          redirect it: no symlink on the way, every
 *                          existing directory on the way is one criod cannot
 *                          add entries to (or, for a sticky directory such
 *                          as /tmp, the next component exists and is not
 *                          criod's), an existing file is a regular file, and
 *                          it is not on a kernel pseudo filesystem (/proc,
 *                          /sys, cgroups, ...), where an append as root could
 *                          change the host
 *   config_json            at most CONTAINER_CONFIG_MAX bytes, strict JSON
 *                          (valid UTF-8, no trailing data), an object:
 *     root.path            exactly <state_dir>/imaged/containers/<id>/rootfs
 *                          (imaged's rootfs for this id), an existing
 *                          directory (FAILED_PRECONDITION if not mounted)
 *     process.terminal     equal to tty
 *     hooks                absent: hooks run as root on the host and no CRI
 *                          field asks for them
 *     linux.namespaces     types pid, network, mount, ipc, uts, user,
 *                          cgroup, time, each at most once, a mount namespace
 *                          of its own; a "path" only for network
 *                          (<run_dir>/netns/<pod_id>, which must be a network
 *                          namespace mount), ipc, uts and pid
 *                          (<run_dir>/pods/<pod_id>/ns/<type>, only when the
 *                          pod holds that namespace); or for pid
 *                          /proc/<pid>/ns/pid (TARGET) of the init of a
 *                          container of this pod (PID 1 of its own
 *                          namespace, in the pod's cgroup, checked through a
 *                          pidfd-verified /proc/<pid> fd), pinned at
 *                          <bundle>/pidns; FAILED_PRECONDITION when it is gone
 *     linux.cgroupsPath    a cgroupfs path below the pod's cgroup
 *     mounts               an array of objects with an absolute destination
 *
 * ---- The node policy ----
 *
 * The CRI lets kubelet ask for privileged containers, host namespaces, any
 * capability, devices, sysctls, unconfined seccomp/AppArmor and bind mounts
 * of any host path; spawnd cannot tell those requests from a compromised
 * criod's, so after the checks above it checks every field of the spec
 * against [policy] of its own configuration (spawnd_policy.h), whose
 * defaults allow what kubelet may ask for. Beyond that, spawnd guarantees
 * that criod cannot point the runtime at another container's root
 * filesystem, another pod's namespaces or cgroup, a namespace file of its
 * own making, a host hook, or a log file it could redirect.
 *
 * ---- The monitor ----
 *
 * conmon is started through spawn_process() from a short-lived intermediate
 * child (a double fork): it runs in a session of its own, is reparented to
 * init (or the nearest subreaper) at once, and survives spawnd restarts;
 * spawnd reaps only the intermediate. It stays in spawnd's cgroup (the
 * systemd unit has KillMode=process, so stopping spawnd leaves it alone).
 * spawnd waits for conmon's one sync line without blocking its loop; no
 * line within CONTAINER_SYNC_TIMEOUT_MS and conmon (its process group, which
 * holds the runtime's create) is killed and the create fails
 * (DEADLINE_EXCEEDED). "error <msg>" or EOF fails it (INTERNAL, with the
 * runtime's message). A failed create is cleaned up (bundle, runtime state,
 * records) on the worker pool before it is answered, so the id is free
 * again.
 *
 * RemoveContainer refuses (FAILED_PRECONDITION) while conmon still runs for
 * the container (the recorded pid with its start time, a conmon.pid naming a
 * conmon of this id, or a control socket that accepts a connection). A
 * conmon whose sockets are already gone has acknowledged its Delete and
 * exits once its own runtime delete is done: the record is rewritten with
 * state "removing" (boot-scoped, atomic) and the call is answered at once;
 * the worker pool then waits up to CONTAINER_EXIT_WAIT_MS for conmon
 * (then kills its process group, as for a failed create) and finishes. A
 * RemoveContainer of that id meanwhile is answered OK at once; a spawnd
 * killed before it finished finishes it at its next start
 * (containers_recover). The rest: `<runtime> delete --force <id>` if the
 * runtime still has state for it (conmon died before its delete finished;
 * a failure is success when the state is gone after all, removed by a
 * killed conmon's orphaned delete), then the bundle, the socket and the
 * state directory with the record last. Unknown ids are OK. Removals run on
 * the worker pool; a second RemoveContainer of the same id waits for the
 * first.
 *
 * Sizes: conmon's own create timeout (CONMON_CREATE_TIMEOUT_MS) is longer
 * than CONTAINER_SYNC_TIMEOUT_MS, so spawnd's is the effective limit; it is
 * kept below criod's default RPC deadline so that criod hears why. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "internal/spawnd.pb-c.h"
#include "ipc.h"
#include "spawnd_pod.h"
#include "workq.h"

#define CONTAINER_CONFIG_MAX (16u << 20)
#define CONTAINER_LOG_PATH_MAX 4095
#define CONTAINER_SYNC_TIMEOUT_MS 60000 /* conmon's "ok"/"error" line; below criod's default RPC deadline */
#define CONTAINER_EXIT_WAIT_MS 5000     /* a conmon that was deleted (or failed) to exit */
#define CONTAINER_RUNTIME_TIMEOUT_MS 60000 /* runtime delete --force */
/* A pod's teardown waits this long for its containers' pending removals:
 * longer than one takes at worst (two exit waits and a runtime delete) */
#define CONTAINER_PENDING_WAIT_MS (2 * CONTAINER_EXIT_WAIT_MS + CONTAINER_RUNTIME_TIMEOUT_MS + 1000)
#define CONTAINER_MOUNTS_MAX 4096
/* <bundle>/pidns: a TARGET PID namespace, pinned at create (a bind mount
 * of the namespace the check saw), which the spec the runtime reads names */
#define CONTAINER_PIDNS_PIN "pidns"

struct container_env {
	struct event_base *base;
	struct workq *wq;
	const struct pod_env *pods; /* the pods' paths: ns bind mounts, netns directory */
	const char *run_dir;
	const char *state_dir;
	const char *conmon_path;    /* the conmon binary next to spawnd */
	const char *config_path;    /* spawnd's --config (absolute), or NULL */
	const char *log_level;      /* spawnd's --log-level, or NULL */
	uid_t criod_uid;            /* conmon's --allowed-uid; whose writes log_path must be safe from */
	gid_t criod_gid;
	const struct criod_config *cfg; /* the configuration: the [runtime.NAME] handlers */
	struct launcher *launcher;  /* starts conmon (spawnd_launch.h) */
};

struct containers;

/* Copies env's pointers (they must outlive the result). */
int containers_new(const struct container_env *env, struct containers **out);
/* Answers every create still waiting for its monitor (UNAVAILABLE: the
 * monitor keeps going and its record stays for RemoveContainer). Call
 * after workq_free, which completes the removals. */
void containers_free(struct containers *cs);

/* CreateContainer. pod is the pod spawnd holds for req->pod_id; the caller
 * checked that it is READY. Answers call now or later. */
void container_create(struct containers *cs, struct ipc_call *call, const Criod__Internal__CreateContainerRequest *req,
		      const struct pod_infra *pod);
/* RemoveContainer. Answers call now or later. */
void container_remove(struct containers *cs, struct ipc_call *call,
		      const Criod__Internal__RemoveContainerRequest *req);
/* At start, before the pods' teardowns: finish every removal a record says
 * was answered ("removing"), waiting for its conmon as RemoveContainer
 * does. */
void containers_recover(struct containers *cs);
/* On a worker thread, before a pod's cgroup goes: wait (at most
 * CONTAINER_PENDING_WAIT_MS) until no answered removal of a container of
 * pod_id is still being finished. -ETIMEDOUT if one still is. */
int containers_wait_pod(struct containers *cs, const char *pod_id);

/* ---- the checks, exposed for tests ---- */

/* The syntax of log_path (see above). */
bool container_log_path_is_valid(const char *path);
/* Whether a user (uid, gid; no supplementary groups) could redirect path:
 * 0 if not, else -EPERM (or another errno) with err saying why. */
/* The node policy's part: log_path must lie beneath one of [policy]
 * log_roots (and not be a root itself), or be CONTAINER_OWN_LOG in the
 * container's own directory own_dir (criod's file when kubelet asked for
 * no log). *root is the directory conmon opens it beneath. -EPERM outside
 * every root, -EINVAL for a bad path; err says which. */
#define LOG_ROOTS_KEY "[policy] log_roots"
#define CONTAINER_OWN_LOG "console.log"
struct criod_config;
int container_log_path_beneath(const struct criod_config *cfg, const char *path, const char *own_dir,
			       const char **root, char *err, size_t errlen);
int container_log_path_check(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen);

/* What the spec of one container may say. */
enum container_ns { CONTAINER_NS_NETWORK, CONTAINER_NS_IPC, CONTAINER_NS_UTS, CONTAINER_NS_PID, CONTAINER_NS_JOINABLE };
struct container_rules {
	const char *rootfs;                           /* root.path */
	const char *ns_paths[CONTAINER_NS_JOINABLE]; /* the pod's namespaces; NULL: the pod has none of that type */
	const char *cgroup_parent;                    /* the pod's cgroup */
	bool tty;
};
/* Parse and check config_json (len bytes). On success *spec is the parsed
 * document (json_object_put it) and *joined_netns whether it joins the
 * pod's network namespace (the caller checks that file). -EINVAL with err
 * naming the field otherwise. */
int container_spec_check(const char *json, size_t len, const struct container_rules *rules, json_object **spec,
			 bool *joined_netns, char *err, size_t errlen);
