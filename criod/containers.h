/* criod's containers: the in-memory table and its persistence under
 * <state_dir>/criod/containers/<id>/ (ctr.pb, written atomically, and the
 * config.json criod built for it).
 *
 * A record is CREATING from before the first step of CreateContainer until
 * the container's monitor (conmon) exists; from then on conmon owns the
 * live state (created, running, exited), which criod asks it for over its
 * control socket or, when conmon cannot answer, reads from conmon's
 * state.pb. Operations that change a container (start, stop, remove,
 * update) are serialised per container, like the pods' (pods.h). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <event2/event.h>

#include "cri/api.pb-c.h"
#include "internal/conmon.pb-c.h"

enum ctr_state { CTR_CREATING = 0, CTR_CREATED = 1 };

/* The live state of a container as CRI reports it. */
struct ctr_status {
	Runtime__V1__ContainerState state;
	int64_t pid, created_at, started_at, finished_at;
	int32_t exit_code;
	bool oom_killed;
	const char *reason;  /* static; NULL = derived from state and exit code */
	const char *message; /* static; NULL = none */
};

struct container;
typedef void (*ctr_task_fn)(struct container *c, void *arg);

struct ctr_task {
	struct ctr_task *next;
	ctr_task_fn fn;
	void *arg;
};

struct container {
	struct container *next;
	char id[65];
	char pod_id[65];
	enum ctr_state state;
	int64_t created_at;
	uint8_t *config_bytes;
	size_t config_len;
	Runtime__V1__ContainerConfig *config; /* decoded from config_bytes */
	char *image_ref;      /* image id (sha256:...) */
	char *image;          /* as the config named it */
	char *log_path;       /* the CRI log path ("" when kubelet gave none) */
	char *socket_path;    /* conmon's control socket ("" until created) */
	char *state_dir;      /* conmon's state directory */
	int64_t pid;          /* init process, from spawnd */
	char *stop_signal;    /* "SIGTERM", "SIGRTMIN+3", "9"... ("" = SIGTERM) */
	char *resources_json; /* the OCI linux.resources last applied ("" = as created) */
	char *dir;
	/* Stopped by criod after conmon died (spawnd removed it from the
	 * runtime): nobody else will record its end. Kept in <dir>/exited. */
	bool forced_exit;
	int64_t forced_finished_at;
	int32_t forced_exit_code;
	int64_t forced_started_at;
	bool forced_by_reboot; /* ended by a host restart (ctrs_after_reboot), not by criod's stop */
	/* RemoveContainer began its teardown (conmon Delete, spawnd, imaged):
	 * whatever step failed, the container never runs again, and a retry
	 * (of the call, or criod's own) finishes the job. Kept in <dir>/removing
	 * with the last exit status seen, which ContainerStatus reports once
	 * conmon's files are gone. */
	bool removing;
	int64_t removing_finished_at;
	int32_t removing_exit_code;
	int64_t removing_started_at;
	/* process.user of config.json, kept in the record */
	bool user_known;
	uint32_t uid, gid;
	int64_t *gids;
	size_t n_gids;
	/* runtime only */
	struct container_table *table;
	struct ipc_client *conmon; /* made on first use; reconnects by itself */
	bool busy;
	bool gone;   /* removed: waiting tasks see it and finish; freed later */
	bool failed; /* CreateContainer failed; being undone (its name is free again) */
	bool retry_pending; /* a retry of its removal is scheduled */
	bool unreadable;    /* its record could not be read: only id and dir are known */
	struct ctr_task *queue;
	/* conmon's state.pb, cached by inode, size and mtime */
	bool st_cached;
	ino_t st_ino;
	off_t st_size;
	struct timespec st_mtim;
	struct ctr_status st_cache;
	pid_t conmon_pid; /* from conmon.pid; 0 = not read (yet) */
	/* A pidfd of that conmon, once checked to be it: polls readable when
	 * it is gone (one syscall where /proc reads took eight); -1: none. */
	int conmon_pidfd;
	bool conmon_gone;
	/* events (criod/events.c) */
	/* With its monitor gone while it runs: a pidfd of the container's init
	 * polled by the event loop, which tells the exit nobody else records. */
	struct event *init_ev;
	bool exit_watched;  /* a State call waiting for its exit is out */
	bool exit_reported; /* CONTAINER_STOPPED_EVENT sent (or it had exited before criod started) */
};

struct container_table {
	char *root; /* <state_dir>/criod/containers */
	struct event_base *base;
	struct container *ctrs;
	/* Containers whose record could not be read at start, kept out of
	 * every listing and lookup, for containers_recover to remove. */
	struct container *unreadable;
	struct event *reap_ev; /* frees gone containers outside any callback */
};

int ctrs_open(struct container_table *t, struct event_base *base, const char *state_dir);
void ctrs_close(struct container_table *t);

/* A container that is not gone: exact id, or a unique prefix. */
struct container *ctrs_find(struct container_table *t, const char *id);
/* The container of this exact id among those whose record was unreadable. */
struct container *ctrs_find_unreadable(struct container_table *t, const char *id);
/* The container (not gone, not failed) of pod_id with this name and attempt. */
struct container *ctrs_find_name(struct container_table *t, const char *pod_id, const Runtime__V1__ContainerMetadata *m);

/* A new container in state CREATING, persisted and busy (the creator runs
 * first); config is copied. */
int ctr_new(struct container_table *t, const char *pod_id, const Runtime__V1__ContainerConfig *config,
	    const char *log_path, struct container **out);
int ctr_save(struct container *c);
/* Replace the config (e.g. with updated resources); bytes are copied. */
int ctr_set_config(struct container *c, const uint8_t *bytes, size_t len);
/* Keep the OCI spec (config.json) with the record and take the process
 * user from it: replaced atomically, boot-scoped
 * (write_file_boot): after a host crash the container is exited
 * (ctrs_after_reboot) and nothing runs it again; its process.user, which
 * ContainerStatus reports, goes into the record (ctr_save), and only the
 * verbose status's runtimeSpec is missing if a host crash lost the file. */
int ctr_write_spec(struct container *c, const char *json);
/* The path of the kept config.json (malloc'd), NULL when out of memory. */
char *ctr_spec_path(const struct container *c);
/* Record that the container ended without its monitor (see forced_exit). */
int ctr_mark_exited(struct container *c, int32_t exit_code, int64_t started_at);
/* criod started in another boot than its records' (host_boot_check): every
 * created container conmon did not record as exited ended with the boot
 * (its monitor and processes too), whatever conmon's boot-scoped files
 * say or lost; each is recorded exited, 255, durably (see forced_exit). */
int ctrs_after_reboot(struct container_table *t);
/* Record that the container's removal began (see removing), with its last
 * exit status; durable before the first teardown step. */
int ctr_mark_removing(struct container *c, int32_t exit_code, int64_t started_at, int64_t finished_at);
/* Delete the record and mark the container gone; it is freed once its last
 * task is done, from the loop. Call from within a task. */
void ctr_destroy(struct container *c);

/* Run fn when the container is free (at once if it is); the task must end
 * with ctr_task_done(). */
int ctr_enqueue(struct container *c, ctr_task_fn fn, void *arg);
void ctr_task_done(struct container *c);

/* The client for the container's conmon, NULL when it has none (yet). */
struct ipc_client *ctr_conmon(struct container *c);
/* The live state from conmon's state.pb (and whether conmon and the init
 * process are still there): for ListContainers, and when conmon does not
 * answer. Never fails: what cannot be known is CONTAINER_UNKNOWN. */
void ctr_disk_status(struct container *c, struct ctr_status *out);
/* A conmon State reply as CRI status. */
void ctr_status_from_state(const Criod__Internal__ContainerStateResponse *s, struct ctr_status *out);
/* Whether conmon's process is alive (true when it cannot be told). */
bool ctr_conmon_alive(struct container *c);
/* Whether the container's init process exists (kill 0). */
bool ctr_init_alive(const struct container *c, int64_t pid);

const char *ctr_name(const struct container *c);

/* A container's CRI status (ContainerStatus, GetContainerEvents) from its
 * record and live state, pointing into both (container_service.c). */
struct ctr_status_msg {
	Runtime__V1__ContainerStatus s;
	Runtime__V1__ImageSpec img;
	Runtime__V1__ContainerResources res;
	Runtime__V1__ContainerUser user;
	Runtime__V1__LinuxContainerUser luser;
};
void ctr_status_fill(struct ctr_status_msg *m, const struct container *ctr, const struct ctr_status *st);
