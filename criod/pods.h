/* criod's pods: the in-memory table and its persistence under
 * <state_dir>/criod/pods/<id>/ (pod.pb, written atomically, plus the
 * hostname, hosts and resolv.conf files containers will get).
 *
 * Operations on one pod (run, stop, remove) are serialised: each waits for
 * the one before it, so a StopPodSandbox arriving while RunPodSandbox is
 * still talking to netd runs after it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cri/api.pb-c.h"

#define POD_MAX_IPS 4

enum pod_state { POD_CREATING = 0, POD_READY = 1, POD_NOTREADY = 2 };

struct pod;
typedef void (*pod_task_fn)(struct pod *p, void *arg);

struct pod_task {
	struct pod_task *next;
	pod_task_fn fn;
	void *arg;
};

struct pod {
	struct pod *next;
	char id[65];
	enum pod_state state;
	int64_t created_at;
	char *runtime_handler;
	uint8_t *config_bytes;
	size_t config_len;
	Runtime__V1__PodSandboxConfig *config; /* decoded from config_bytes */
	char *netns_path;                      /* "" for host network */
	char *ips[POD_MAX_IPS];
	size_t n_ips;
	int64_t pause_pid;
	char *ipc_ns, *uts_ns, *pid_ns, *shm, *cgroup;
	int64_t oom_score_adj;
	char *dir;
	/* runtime only */
	struct pod_table *table;
	bool busy;
	bool gone;   /* removed: waiting tasks see it and finish */
	bool failed; /* RunPodSandbox failed; being undone (its name is free again) */
	bool unreadable; /* its record could not be read: only id and dir are known */
	struct pod_task *queue;
};

struct pod_table {
	char *root; /* <state_dir>/criod/pods */
	struct pod *pods;
	/* Pods whose record could not be read at start, kept out of every
	 * listing and lookup, for pods_recover to tear down and remove. */
	struct pod *unreadable;
};

int pods_open(struct pod_table *t, const char *state_dir);
struct container_table;
/* After pods_open and ctrs_open: when criod starts in another boot than
 * its records', READY pods become NOTREADY and created containers not
 * recorded as exited become EXITED 255, durably, then the new boot is
 * recorded (pods.c). */
int host_boot_check(struct pod_table *t, struct container_table *ctrs, const char *state_dir);
void pods_close(struct pod_table *t);

/* Exact id, or a unique prefix of at least 6 characters. */
struct pod *pods_find(struct pod_table *t, const char *id);
/* The pod of this exact id among those whose record was unreadable. */
struct pod *pods_find_unreadable(struct pod_table *t, const char *id);
/* The pod (not CREATING) whose metadata has this name/namespace/uid/attempt. */
struct pod *pods_find_name(struct pod_table *t, const Runtime__V1__PodSandboxMetadata *m);

/* A new pod in state CREATING, persisted; config is copied. durable: its
 * record is fsynced (write_file_atomic) because what the pod's creation
 * makes next outlives a host crash and a restart must find the pod to
 * undo it (the cni backend: netd's record and the plugins' IPAM are on
 * disk); otherwise (the netlink backend: netd's and spawnd's records,
 * namespaces, links, mounts and processes all end with the boot) it is
 * written boot-scoped (write_file_boot, still atomic and kill -9 safe)
 * and made durable by the READY save, so a host crash before READY
 * leaves at worst an unreadable record, which start removes by id. */
int pod_new(struct pod_table *t, const Runtime__V1__PodSandboxConfig *config, const char *runtime_handler,
	    bool durable, struct pod **out);
int pod_save(struct pod *p);
/* hostname, hosts and resolv.conf in the pod's directory. */
int pod_write_files(struct pod *p, const char *hostname);
/* Delete the pod's directory and mark it gone: lookups no longer see it,
 * queued tasks still run (and see p->gone), and it is freed when the last
 * one calls pod_task_done(). Call from within a task. */
void pod_destroy(struct pod_table *t, struct pod *p);

/* Run fn when the pod is free (at once if it is); the task must end with
 * pod_task_done(). */
int pod_enqueue(struct pod *p, pod_task_fn fn, void *arg);
void pod_task_done(struct pod *p);

bool pod_host_network(const struct pod *p);
int pod_ns_mode(const struct pod *p, char which /* 'n' network, 'p' pid, 'i' ipc */);
const char *pod_hostname(const struct pod *p);

/* A pod's CRI status (PodSandboxStatus, GetContainerEvents), pointing into
 * the pod's record: valid while the pod is (pod_service.c). */
struct pod_status_msg {
	Runtime__V1__PodSandboxStatus st;
	Runtime__V1__PodSandboxNetworkStatus net;
	Runtime__V1__PodIP extra[POD_MAX_IPS], *extra_p[POD_MAX_IPS];
	Runtime__V1__LinuxPodSandboxStatus lin;
	Runtime__V1__Namespace ns;
	Runtime__V1__NamespaceOption opts;
};
void pod_status_fill(struct pod_status_msg *m, const struct pod *p);
