/* What criod's container RPCs share (criod/container_service.c, and
 * CreateContainer's chain in criod/container_create.c): one container
 * operation in flight, its completion, the calls to the root daemons and
 * conmon, and the teardown every failed or removed container goes through. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ipc.h"
#include "containers.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "pods.h"

#define MAX_FIELD 253
#define MAX_PATH_FIELD 4096
#define MAX_CONFIG (4u << 20)           /* a ContainerConfig, encoded */
#define MAX_HOST_DEVICES 4096
#define CLEANUP_RETRY_SECS 10
#define STATE_TIMEOUT_MS 5000           /* conmon answers State from memory */
#define STATE_WAIT_MAX_MS 60000         /* the longest wait_exit_ms conmon takes */
#define RUNTIME_TIMEOUT_MS (60000 + 5000) /* conmon runs the runtime for up to 60 s */
#define CREATE_TIMEOUT_MS (240000 + 30000) /* conmon gives the runtime's create 240 s */
#define KILL_WAIT_NS (10LL * 1000000000)   /* after SIGKILL, how long to wait for the exit */
#define POLL_FIRST_MS 20
#define POLL_MAX_MS 250
#define EXEC_SLACK_MS 10000
#define EXEC_NO_TIMEOUT_MS (24ull * 3600 * 1000)
#define MAX_EXEC_TIMEOUT_S (100LL * 24 * 3600)

#define SC_FIELD "config.linux.security_context"

struct ctr_op;
typedef void (*op_fn)(struct ctr_op *op);

struct pod_batch {
	int pending;
	int status;
	char message[512];
	containers_done_fn done;
	void *arg;
};

enum stop_phase { STOP_LOOK, STOP_SIGNALLED, STOP_KILLED };

/* One container operation in flight. */
struct ctr_op {
	struct criod *c;
	struct grpc_call *call;  /* NULL for internal operations */
	struct container *ctr;   /* while the operation holds the container's task */
	struct pod *pod;         /* CreateContainer, while it holds the pod's task */
	char id[65];             /* for operations that hold no task: looked up again */
	char req[72];
	int status;
	char message[512];
	struct pod_batch *batch; /* a pod's stop or remove */
	bool verbose;
	int64_t exec_timeout_s;
	/* stopping */
	op_fn stop_next;
	int64_t stop_timeout_s;
	enum stop_phase phase;
	int64_t deadline; /* monotonic ns */
	int poll_ms;
	int exit_code;
	int64_t exit_started_at, exit_finished_at; /* of the exit the stop saw */
	int64_t forced_started_at;
	struct event *timer;
	struct ctr_op *wait_next, **wait_pprev;
	/* teardown */
	op_fn teardown_next;
	int teardown_pending; /* spawnd and imaged calls still out */
	/* CreateContainer */
	const Runtime__V1__CreateContainerRequest *create_req; /* until the reply */
	const char *profile_path; /* the Localhost seccomp profile (in ctr->config), or NULL */
	char *profile;            /* its contents, read from the fd spawnd passed */
	/* UpdateContainerResources */
	char *resources_json;
	uint8_t *config_bytes;
	size_t config_len;
};

struct ctr_op *op_new(struct criod *c, struct grpc_call *call, const char *req);
void op_free(struct ctr_op *op);
/* Complete an operation that holds the container's task: answer the call
 * (ok is the reply when op->status is OK), free the container for its next
 * task, report to the pod's batch. */
void op_finish(struct ctr_op *op, const ProtobufCMessage *ok);
/* The time left before the client's deadline, at most fallback. */
uint64_t op_timeout(const struct ctr_op *op, uint64_t fallback);
/* Queue a call; on a local failure the callback still runs (at once). */
void call_ipc(struct ctr_op *op, struct ipc_client *cl, const struct ipc_method *m, const ProtobufCMessage *req,
	      uint64_t timeout_ms, ipc_reply_fn cb);
/* Undo what a container has on every daemon (conmon Delete, spawnd
 * RemoveContainer, imaged UnmountRootfs; all idempotent), then next(op). */
/* Record an error for the op's answer (the first one wins). */
void op_error(struct ctr_op *op, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- container_stop.c ---- */
/* Stop the container (its stop signal, SIGKILL after timeout_s), then
 * next(op); op->status says how it went. */
void stop_begin(struct ctr_op *op, int64_t timeout_s, op_fn next);
/* The container's stop signal (SIGTERM when it names none or a bad one). */
int stop_signal_of(const struct container *ctr);
Runtime__V1__Signal signal_enum(int sig);
/* At criod's shutdown: every stop waiting on its poll timer ends now. */
void stop_shutdown(void);

void teardown(struct ctr_op *op, op_fn next);
/* After a teardown of a container that never came up: forget it, or retry
 * the teardown later while a daemon is away. */
void cleanup_done(struct ctr_op *op);

/* Host facts, read once. */
bool host_cgroup_v2(void);
/* The OCI linux.resources JSON of res (malloc'd in *out), checked as
 * UpdateContainerResources checks it (oom_score_adj's range, then
 * oci_resources_json on this host's hierarchy); field names res in err.
 * 0, or -EINVAL with err naming the field. */
int ctr_resources_json(const Runtime__V1__LinuxContainerResources *res, const char *field, char **out, char *err,
		       size_t errlen);
bool host_apparmor(void);
uint64_t host_caps(const struct criod *c);
/* spawnd's Ping cap_bounding (its launcher's bounding set; 0 when it
 * reported none), for the spawnd of that pid; whether it is known for the
 * connected spawnd. */
void host_caps_learn(pid_t spawnd_pid, uint64_t cap_bounding);
bool host_caps_known(const struct criod *c);

/* CreateContainer (container_create.c). */
void create_container(struct grpc_call *call, const ProtobufCMessage *msg, void *ud);
