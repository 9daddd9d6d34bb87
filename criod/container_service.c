/* Containers: CreateContainer, StartContainer, StopContainer,
 * RemoveContainer, ContainerStatus, ListContainers,
 * UpdateContainerResources, ReopenContainerLog, ExecSync.
 *
 * CreateContainer is a chain of calls, like RunPodSandbox: the record is on
 * disk (CREATING) first; imaged mounts the rootfs (and hands over the
 * image's /etc/passwd, /etc/group and config); criod builds the OCI spec
 * (criod/oci_spec.c); spawnd checks it and starts the container's monitor,
 * conmon, which runs the runtime's create. A failed step undoes every step
 * (conmon Delete when there is one, spawnd RemoveContainer, imaged
 * UnmountRootfs: all idempotent), and a record still CREATING when criod
 * starts is undone the same way, retried while a daemon is away. It runs as
 * a task of the pod, so a StopPodSandbox waits for it and a stopped pod gets
 * no new container.
 *
 * From then on the container's conmon owns its live state: criod asks it
 * over its control socket (one client per container, made on first use,
 * reconnecting by itself) and, when conmon does not answer, reads conmon's
 * state.pb. Start, stop, remove and update are serialised per container.
 * Stopping signals and then polls conmon's State on a timer: nothing here
 * blocks the loop (the stop state machine is container_stop.c). */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <json-c/json.h>

#include "api.h"
#include "container_op.h"
#include "containers.h"
#include "cri.h"
#include "events.h"
#include "cri/api.pb-c.h"
#include "internal/conmon.pb-c.h"
#include "internal/imaged.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "log.h"
#include "list_reply.h"
#include "macro.h"
#include "oci_spec.h"
#include "pods.h"
#include "seccomp_profile.h"
#include "status.h"
#include "util.h"

/* ---------------------------------------------------------------- host facts (read once) */

bool host_cgroup_v2(void)
{
	static int v = -1;
	if (v < 0) {
		struct statfs sf;
		v = statfs("/sys/fs/cgroup", &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)CGROUP2_SUPER_MAGIC;
	}
	return v == 1;
}

bool host_apparmor(void)
{
	static int v = -1;
	if (v < 0) {
		_cleanup_free_ char *buf = NULL;
		size_t len;
		v = read_file("/sys/module/apparmor/parameters/enabled", 16, &buf, &len) == 0 && buf[0] == 'Y';
	}
	return v == 1;
}

static uint64_t pinged_caps; /* spawnd's Ping cap_bounding, of pinged_pid; 0: it reported none */
static pid_t pinged_pid;

void host_caps_learn(pid_t spawnd_pid, uint64_t cap_bounding)
{
	if (spawnd_pid > 0) {
		pinged_pid = spawnd_pid;
		pinged_caps = cap_bounding;
	}
}

bool host_caps_known(const struct criod *c)
{
	pid_t pid = ipc_client_peer_pid(c->spawnd);
	return pid > 0 && pid == pinged_pid;
}

/* What "every capability" is (a privileged container, add_capabilities
 * ALL): the bounding set of spawnd's launcher, from which conmon, the
 * runtime and every container descend, as the connected spawnd's Ping
 * reports it (cap_bounding; CreateContainer pings first when it is not
 * known for this spawnd, and fails when that spawnd reported 0, which the
 * Ping's contract gives only the other daemons: container_create.c).
 * spawnd's own bounding set is not it under a hardened unit
 * (criod-spawnd.service cuts it to what spawnd uses). When not known for
 * the connected spawnd (it was restarted between that Ping and the spec),
 * the kernel's whole set. criod's own sets (none; under criod.service a
 * bounding set of a few) say nothing of it. spawnd's node policy decides
 * what a container may actually get. */
uint64_t host_caps(const struct criod *c)
{
	static uint64_t caps;
	if (host_caps_known(c))
		return pinged_caps;
	if (!caps) {
		int last = cap_last_cap();
		if (last < 0 || last > 63)
			last = 40;
		caps = last == 63 ? UINT64_MAX : (UINT64_C(1) << (last + 1)) - 1;
	}
	return caps;
}

/* ---------------------------------------------------------------- operations */

void op_free(struct ctr_op *op)
{
	if (!op)
		return;
	if (op->wait_pprev) {
		*op->wait_pprev = op->wait_next;
		if (op->wait_next)
			op->wait_next->wait_pprev = op->wait_pprev;
	}
	if (op->timer)
		event_free(op->timer);
	free(op->resources_json);
	free(op->config_bytes);
	free(op->profile);
	free(op);
}

struct ctr_op *op_new(struct criod *c, struct grpc_call *call, const char *req)
{
	struct ctr_op *op = calloc(1, sizeof(*op));
	if (!op) {
		if (call)
			grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	op->c = c;
	op->call = call;
	snprintf(op->req, sizeof(op->req), "%s", call ? grpc_call_request_id(call) : req ? req : "-");
	return op;
}

void op_error(struct ctr_op *op, int status, const char *fmt, ...)
{
	if (op->status != STATUS_OK)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
	op->status = status;
}

/* The time left before the client's deadline, at most fallback. */
uint64_t op_timeout(const struct ctr_op *op, uint64_t fallback)
{
	int64_t deadline = op->call ? grpc_call_deadline_ns(op->call) : 0;
	if (deadline <= 0)
		return fallback;
	int64_t left = (deadline - now_monotonic_ns()) / 1000000;
	if (left <= 0)
		return 1;
	return (uint64_t)left < fallback ? (uint64_t)left : fallback;
}

/* Queue a call; on a local failure the callback still runs (at once). */
void call_ipc(struct ctr_op *op, struct ipc_client *cl, const struct ipc_method *m, const ProtobufCMessage *req,
	      uint64_t timeout_ms, ipc_reply_fn cb)
{
	if (op->c->stopping) {
		cb(STATUS_CANCELLED, "criod is shutting down", NULL, NULL, 0, op);
		return;
	}
	if (!cl) {
		cb(STATUS_UNAVAILABLE, "the container has no monitor", NULL, NULL, 0, op);
		return;
	}
	int r = ipc_client_call(cl, m, op->req, req, NULL, 0, timeout_ms, cb, op);
	if (r < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot queue %s: %s", m->name, strerror(-r));
		cb(STATUS_UNAVAILABLE, msg, NULL, NULL, 0, op);
	}
}

static void batch_put(struct pod_batch *b, int status, const char *message)
{
	if (status != STATUS_OK && b->status == STATUS_OK) {
		b->status = status;
		snprintf(b->message, sizeof(b->message), "%s", message);
	}
	if (--b->pending == 0) {
		b->done(b->arg, b->status, b->message);
		free(b);
	}
}

/* Complete an operation that holds the container's task: answer the call
 * (ok is the reply when op->status is OK), free the container for its next
 * task, report to the pod's batch. */
void op_finish(struct ctr_op *op, const ProtobufCMessage *ok)
{
	if (op->call) {
		if (op->status == STATUS_OK)
			grpc_call_reply(op->call, ok);
		else
			grpc_call_fail(op->call, op->status, "%s", op->message);
		op->call = NULL;
	}
	struct pod_batch *batch = op->batch;
	if (op->ctr)
		ctr_task_done(op->ctr);
	if (batch)
		batch_put(batch, op->status, op->message);
	op_free(op);
}

/* An operation that holds no task: answer and free. */
static void op_answer(struct ctr_op *op, const ProtobufCMessage *ok)
{
	op->ctr = NULL;
	op_finish(op, ok);
}

/* ---------------------------------------------------------------- teardown */

/* spawnd's RemoveContainer and imaged's UnmountRootfs: both are always
 * asked (their teardowns are idempotent); teardown_next(op) runs when the
 * last of those still out has answered. */
static void teardown_answered(struct ctr_op *op, int status, const char *who, const char *message)
{
	if (status != STATUS_OK)
		op_error(op, status, "%s: %s", who, message);
	if (--op->teardown_pending == 0)
		op->teardown_next(op);
}

static void teardown_unmount_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_,
				  size_t nfds _unused_, void *ud)
{
	teardown_answered(ud, status, "imaged", message);
}

static void teardown_unmount(struct ctr_op *op)
{
	Criod__Internal__UnmountRootfsRequest req = CRIOD__INTERNAL__UNMOUNT_ROOTFS_REQUEST__INIT;
	req.container_id = op->ctr->id;
	call_ipc(op, op->c->imaged, API_IMAGED(IMAGED_UNMOUNT_ROOTFS), &req.base, op_timeout(op, op->c->cfg->rpc_timeout_ms),
		 teardown_unmount_done);
}

static void teardown_remove(struct ctr_op *op, ipc_reply_fn done)
{
	Criod__Internal__RemoveContainerRequest req = CRIOD__INTERNAL__REMOVE_CONTAINER_REQUEST__INIT;
	req.container_id = op->ctr->id;
	call_ipc(op, op->c->spawnd, API_SPAWND(SPAWND_REMOVE_CONTAINER), &req.base, op_timeout(op, op->c->cfg->rpc_timeout_ms), done);
}

/* Both at once: nothing of the container runs any more. */
static void teardown_remove_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_,
				 size_t nfds _unused_, void *ud)
{
	teardown_answered(ud, status, "spawnd", message);
}

/* spawnd first (it may still have to kill the container), then imaged. */
static void teardown_remove_then_unmount(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_,
					 size_t nfds _unused_, void *ud)
{
	struct ctr_op *op = ud;
	if (status != STATUS_OK)
		op_error(op, status, "spawnd: %s", message);
	teardown_unmount(op);
}

static void teardown_spawnd(struct ctr_op *op)
{
	op->teardown_pending = 1;
	teardown_remove(op, teardown_remove_then_unmount);
}

static void teardown_delete_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_,
				 size_t nfds _unused_, void *ud)
{
	struct ctr_op *op = ud;
	/* Unreachable: conmon is gone already (spawnd cleans up after it). */
	if (status != STATUS_OK && status != STATUS_UNAVAILABLE) {
		op_error(op, status, "cannot delete container %s: %s", op->ctr->id, message);
		op->teardown_next(op);
		return;
	}
	if (status == STATUS_UNAVAILABLE) {
		teardown_spawnd(op); /* spawnd first: it may still have to kill it */
		return;
	}
	/* conmon ran the runtime's delete: nothing of the container runs any
	 * more, so spawnd's records and imaged's rootfs can go at once. */
	op->teardown_pending = 2;
	teardown_remove(op, teardown_remove_done);
	teardown_unmount(op);
}

/* Where spawnd puts a container's control socket (conmon/container.h):
 * <run_dir>/containers/<id>/conmon.sock, or <run_dir>/s/<id> when that does
 * not fit a socket address. */
static char *guess_socket(const struct criod *c, const char *id)
{
	char *path;
	if (asprintf(&path, "%s/containers/%s/conmon.sock", c->cfg->run_dir, id) < 0)
		return NULL;
	if (strlen(path) < 108)
		return path;
	free(path);
	return asprintf(&path, "%s/s/%s", c->cfg->run_dir, id) < 0 ? NULL : path;
}

/* Undo everything a container is made of (conmon, spawnd's bundle,
 * imaged's rootfs); next(op) runs with op->status set on failure. */
void teardown(struct ctr_op *op, op_fn next)
{
	struct container *ctr = op->ctr;
	op->teardown_next = next;
	if (!*ctr->socket_path && ctr->state == CTR_CREATING) {
		/* spawnd's answer was lost (a timeout, a crash): it may have
		 * started conmon all the same, and it removes nothing while
		 * conmon runs. Ask conmon where spawnd would have put it. */
		char *guess = guess_socket(op->c, ctr->id);
		if (guess) {
			free(ctr->socket_path);
			ctr->socket_path = guess;
		}
	}
	if (!*ctr->socket_path) {
		teardown_spawnd(op);
		return;
	}
	Criod__Internal__DeleteContainerRequest req = CRIOD__INTERNAL__DELETE_CONTAINER_REQUEST__INIT;
	call_ipc(op, ctr_conmon(op->ctr), API_CONMON(CONMON_DELETE), &req.base, op_timeout(op, RUNTIME_TIMEOUT_MS),
		 teardown_delete_done);
}

/* ---------------------------------------------------------------- cleanup of CREATING containers */

static void cleanup_retry(struct criod *c, const char *id);

void cleanup_done(struct ctr_op *op)
{
	struct container *ctr = op->ctr;
	if (op->status != STATUS_OK) {
		log_warn(op->req, "container cleanup failed, will retry", "container=%s error=\"%s\"", ctr->id,
			 op->message);
		cri_later(op->c, CLEANUP_RETRY_SECS, cleanup_retry, ctr->id);
	} else {
		log_info(op->req, "undid unfinished container", "container=%s", ctr->id);
		ctr_destroy(ctr);
	}
	op->status = STATUS_OK; /* nobody waits for the answer */
	op_finish(op, NULL);
}

static void cleanup_task(struct container *ctr, void *arg)
{
	struct ctr_op *op = arg;
	op->ctr = ctr;
	if (ctr->gone || ctr->state != CTR_CREATING) {
		op_finish(op, NULL);
		return;
	}
	teardown(op, cleanup_done);
}

static void cleanup_retry(struct criod *c, const char *id)
{
	struct container *ctr = ctrs_find(&c->ctrs, id);
	if (!ctr)
		return;
	struct ctr_op *op = op_new(c, NULL, NULL);
	if (op && ctr_enqueue(ctr, cleanup_task, op) < 0)
		op_free(op);
}

/* ---------------------------------------------------------------- removal of unreadable containers */

static void unreadable_retry(struct criod *c, const char *id);

static void unreadable_done(struct ctr_op *op)
{
	struct container *ctr = op->ctr;
	if (op->status != STATUS_OK) {
		log_warn(op->req, "removing a container whose record was unreadable failed, will retry",
			 "container=%s error=\"%s\"", ctr->id, op->message);
		cri_later(op->c, CLEANUP_RETRY_SECS, unreadable_retry, ctr->id);
	} else {
		log_info(op->req, "removed a container whose record was unreadable", "container=%s", ctr->id);
		ctr_destroy(ctr);
	}
	op->status = STATUS_OK; /* nobody waits for the answer */
	op_finish(op, NULL);
}

static void unreadable_task(struct container *ctr, void *arg)
{
	struct ctr_op *op = arg;
	op->ctr = ctr;
	if (ctr->gone) {
		op_finish(op, NULL);
		return;
	}
	teardown(op, unreadable_done);
}

static void unreadable_retry(struct criod *c, const char *id)
{
	struct container *ctr = ctrs_find_unreadable(&c->ctrs, id);
	if (!ctr)
		return;
	struct ctr_op *op = op_new(c, NULL, NULL);
	if (op && ctr_enqueue(ctr, unreadable_task, op) < 0)
		op_free(op);
}

static void removal_retry(struct criod *c, const char *id);

void containers_recover(struct criod *c)
{
	for (struct container *ctr = c->ctrs.unreadable; ctr; ctr = ctr->next)
		cri_later(c, 0, unreadable_retry, ctr->id);
	for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next)
		if (ctr->state == CTR_CREATING && !ctr->gone) {
			ctr->failed = true;
			cri_later(c, 0, cleanup_retry, ctr->id);
		} else if (ctr->removing && !ctr->gone) {
			/* criod died during RemoveContainer: finish it. */
			ctr->retry_pending = true;
			cri_later(c, 0, removal_retry, ctr->id);
		}
}

void containers_shutdown(struct criod *c)
{
	stop_shutdown();
	/* Calls still waiting for a conmon complete (CANCELLED) from here. */
	for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next) {
		struct ipc_client *cl = ctr->conmon;
		ctr->conmon = NULL;
		ipc_client_free(cl);
	}
}

/* ---------------------------------------------------------------- StartContainer */

static void start_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
		       void *ud)
{
	struct ctr_op *op = ud;
	if (status != STATUS_OK) {
		op_error(op, status, "%s", message);
		log_warn(op->req, "container start failed", "container=%s error=\"%s\"", op->ctr->id, message);
	} else {
		const Criod__Internal__StartContainerResponse *r = (const void *)resp;
		/* The runtime made the container just now: remember its init. */
		if (r->pid > 1 && r->pid <= INT_MAX && r->pid != op->ctr->pid) {
			op->ctr->pid = r->pid;
			int ret = ctr_save(op->ctr);
			if (ret < 0)
				log_warn_errno(ret, op->req, "cannot save the container's pid", "container=%s", op->ctr->id);
		}
		log_info(op->req, "container started", "container=%s name=%s pid=%lld", op->ctr->id, ctr_name(op->ctr),
			 (long long)op->ctr->pid);
		events_send(op->c, op->ctr, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT, NULL);
		events_watch(op->c, op->ctr);
	}
	Runtime__V1__StartContainerResponse out = RUNTIME__V1__START_CONTAINER_RESPONSE__INIT;
	op_finish(op, &out.base);
}

static void start_task(struct container *ctr, void *arg)
{
	struct ctr_op *op = arg;
	op->ctr = ctr;
	Runtime__V1__StartContainerResponse out = RUNTIME__V1__START_CONTAINER_RESPONSE__INIT;
	if (ctr->gone) {
		op_error(op, STATUS_NOT_FOUND, "container %s not found", op->id);
		op_finish(op, &out.base);
		return;
	}
	if (ctr->state != CTR_CREATED) {
		op_error(op, STATUS_FAILED_PRECONDITION, "container %s is not created", ctr->id);
		op_finish(op, &out.base);
		return;
	}
	Criod__Internal__StartContainerRequest req = CRIOD__INTERNAL__START_CONTAINER_REQUEST__INIT;
	call_ipc(op, ctr_conmon(ctr), API_CONMON(CONMON_START), &req.base, op_timeout(op, RUNTIME_TIMEOUT_MS), start_done);
}

/* A container for a call naming one, or NULL (the call answered NOT_FOUND). */
static struct container *find_for_call(struct criod *c, struct grpc_call *call, const char *id)
{
	struct container *ctr = ctrs_find(&c->ctrs, id);
	if (!ctr || ctr->state == CTR_CREATING) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "container %s not found", id);
		return NULL;
	}
	return ctr;
}

static void enqueue(struct ctr_op *op, struct container *ctr, ctr_task_fn fn)
{
	snprintf(op->id, sizeof(op->id), "%s", ctr->id);
	if (ctr_enqueue(ctr, fn, op) < 0) {
		if (op->call)
			grpc_call_fail(op->call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		op->call = NULL;
		if (op->batch)
			batch_put(op->batch, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		op_free(op);
	}
}

static void start_container(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__StartContainerRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	struct container *ctr = find_for_call(c, call, req->container_id);
	struct ctr_op *op = ctr ? op_new(c, call, NULL) : NULL;
	if (op)
		enqueue(op, ctr, start_task);
}

/* ---------------------------------------------------------------- StopContainer */

static void stop_done(struct ctr_op *op)
{
	struct container *ctr = op->ctr;
	if (op->status == STATUS_OK && op->phase != STOP_LOOK)
		log_info(op->req, "container stopped", "container=%s name=%s exit_code=%d", ctr->id, ctr_name(ctr),
			 op->exit_code);
	else if (op->status == STATUS_OK)
		log_debug(op->req, "container was stopped already", "container=%s exit_code=%d", ctr->id, op->exit_code);
	else
		log_warn(op->req, "container stop failed", "container=%s error=\"%s\"", ctr->id, op->message);
	Runtime__V1__StopContainerResponse out = RUNTIME__V1__STOP_CONTAINER_RESPONSE__INIT;
	op_finish(op, &out.base);
}

static void stop_task(struct container *ctr, void *arg)
{
	struct ctr_op *op = arg;
	op->ctr = ctr;
	if (ctr->gone || ctr->state == CTR_CREATING) {
		/* Unknown containers are stopped already. */
		Runtime__V1__StopContainerResponse out = RUNTIME__V1__STOP_CONTAINER_RESPONSE__INIT;
		op_finish(op, &out.base);
		return;
	}
	stop_begin(op, op->stop_timeout_s, stop_done);
}

static void stop_container(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__StopContainerRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	struct container *ctr = ctrs_find(&c->ctrs, req->container_id);
	if (!ctr || ctr->state == CTR_CREATING) {
		Runtime__V1__StopContainerResponse out = RUNTIME__V1__STOP_CONTAINER_RESPONSE__INIT;
		grpc_call_reply(call, &out.base);
		return;
	}
	struct ctr_op *op = op_new(c, call, NULL);
	if (!op)
		return;
	op->stop_timeout_s = req->timeout;
	enqueue(op, ctr, stop_task);
}

/* ---------------------------------------------------------------- RemoveContainer */

static void removal_retry(struct criod *c, const char *id);

static void remove_done(struct ctr_op *op)
{
	struct container *ctr = op->ctr;
	if (op->status == STATUS_OK) {
		log_info(op->req, "container removed", "container=%s name=%s", ctr->id, ctr_name(ctr));
		ctr_destroy(ctr);
		events_send(op->c, ctr, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT, NULL);
	} else {
		log_warn(op->req, "container removal failed", "container=%s error=\"%s\"", ctr->id, op->message);
		/* Begun: finish it when the daemon is back, whether or not the
		 * client retries. */
		if (ctr->removing && !ctr->retry_pending && !op->c->stopping) {
			ctr->retry_pending = true;
			cri_later(op->c, CLEANUP_RETRY_SECS, removal_retry, ctr->id);
		}
	}
	Runtime__V1__RemoveContainerResponse out = RUNTIME__V1__REMOVE_CONTAINER_RESPONSE__INIT;
	op_finish(op, &out.base);
}

static void remove_stopped(struct ctr_op *op)
{
	struct container *ctr = op->ctr;
	/* Delete forces anyway: a failed stop only gets a line in the log. */
	if (op->status != STATUS_OK)
		log_warn(op->req, "could not stop container before removing it", "container=%s error=\"%s\"",
			 ctr->id, op->message);
	op->status = STATUS_OK;
	op->message[0] = '\0';
	if (op->c->stopping) {
		op_error(op, STATUS_CANCELLED, "criod is shutting down");
		remove_done(op);
		return;
	}
	/* Durable before the first step: once conmon's Delete ran, nothing
	 * else says the container is gone from the runtime. */
	int r;
	if (ctr->forced_exit)
		r = ctr_mark_removing(ctr, ctr->forced_exit_code, ctr->forced_started_at, ctr->forced_finished_at);
	else if (op->exit_code >= 0)
		r = ctr_mark_removing(ctr, op->exit_code, op->exit_started_at, op->exit_finished_at);
	else /* the removal kills it */
		r = ctr_mark_removing(ctr, 128 + SIGKILL, 0, now_realtime_ns());
	if (r < 0) {
		log_warn_errno(r, op->req, "cannot record that the container is being removed", "container=%s", ctr->id);
		op_error(op, status_from_errno(r), "cannot save the state of container %s: %s", ctr->id, strerror(-r));
		remove_done(op);
		return;
	}
	teardown(op, remove_done);
}

static void remove_task(struct container *ctr, void *arg)
{
	struct ctr_op *op = arg;
	op->ctr = ctr;
	if (ctr->gone) {
		Runtime__V1__RemoveContainerResponse out = RUNTIME__V1__REMOVE_CONTAINER_RESPONSE__INIT;
		op_finish(op, &out.base);
		return;
	}
	if (ctr->state == CTR_CREATING) {
		/* Half made (its undo is waiting for a retry): undo it now. */
		teardown(op, remove_done);
		return;
	}
	stop_begin(op, 0, remove_stopped);
}

static void removal_retry(struct criod *c, const char *id)
{
	struct container *ctr = ctrs_find(&c->ctrs, id);
	if (!ctr)
		return;
	ctr->retry_pending = false;
	struct ctr_op *op = op_new(c, NULL, NULL);
	if (op) {
		snprintf(op->id, sizeof(op->id), "%s", ctr->id);
		if (ctr_enqueue(ctr, remove_task, op) < 0)
			op_free(op);
	}
}

static void remove_container(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__RemoveContainerRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	struct container *ctr = ctrs_find(&c->ctrs, req->container_id);
	if (!ctr || ctr->state == CTR_CREATING) {
		Runtime__V1__RemoveContainerResponse out = RUNTIME__V1__REMOVE_CONTAINER_RESPONSE__INIT;
		grpc_call_reply(call, &out.base);
		return;
	}
	struct ctr_op *op = op_new(c, call, NULL);
	if (op)
		enqueue(op, ctr, remove_task);
}

/* ---------------------------------------------------------------- a pod's containers */

void containers_for_pod(struct criod *c, const char *pod_id, bool remove, const char *req, containers_done_fn done,
			void *arg)
{
	struct pod_batch *b = calloc(1, sizeof(*b));
	if (!b) {
		done(arg, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	b->done = done;
	b->arg = arg;
	b->pending = 1; /* ours, until every container is queued */
	for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next) {
		if (ctr->gone || strcmp(ctr->pod_id, pod_id) != 0)
			continue;
		/* A stop has nothing to do for one being created or undone. */
		if (!remove && ctr->state == CTR_CREATING)
			continue;
		struct ctr_op *op = op_new(c, NULL, req);
		if (!op) {
			if (b->status == STATUS_OK) {
				b->status = STATUS_RESOURCE_EXHAUSTED;
				snprintf(b->message, sizeof(b->message), "out of memory");
			}
			continue;
		}
		b->pending++;
		op->batch = b;
		op->stop_timeout_s = 0;
		enqueue(op, ctr, remove ? remove_task : stop_task);
	}
	batch_put(b, STATUS_OK, NULL);
}

/* ---------------------------------------------------------------- ContainerStatus */

static const char *exit_reason(const struct ctr_status *st)
{
	if (st->reason)
		return st->reason;
	if (st->state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
		return "";
	if (st->oom_killed)
		return "OOMKilled";
	return st->exit_code == 0 ? "Completed" : "Error";
}

static char *verbose_info(const struct container *ctr, const struct ctr_status *st)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "sandboxID", json_object_new_string(ctr->pod_id));
	json_object_object_add(o, "pid", json_object_new_int64(st->pid ? st->pid : ctr->pid));
	json_object_object_add(o, "image", json_object_new_string(ctr->image));
	json_object_object_add(o, "imageRef", json_object_new_string(ctr->image_ref));
	json_object_object_add(o, "logPath", json_object_new_string(ctr->log_path));
	json_object_object_add(o, "monitorSocket", json_object_new_string(ctr->socket_path));
	json_object_object_add(o, "monitorStateDir", json_object_new_string(ctr->state_dir));
	json_object_object_add(o, "stopSignal", json_object_new_string(*ctr->stop_signal ? ctr->stop_signal : "SIGTERM"));
	if (*ctr->resources_json)
		json_object_object_add(o, "resources", json_tokener_parse(ctr->resources_json));
	_cleanup_free_ char *spec_path = ctr_spec_path(ctr);
	if (spec_path) {
		json_object_object_add(o, "runtimeSpecPath", json_object_new_string(spec_path));
		_cleanup_free_ char *spec = NULL;
		size_t len;
		json_object *rs = read_file(spec_path, 20u << 20, &spec, &len) == 0 ? json_tokener_parse(spec) : NULL;
		/* The spec as the runtime now has it: the resources of the last
		 * UpdateContainerResources over those it was created with (as
		 * containerd and CRI-O report it). */
		json_object *lin = rs ? json_object_object_get(rs, "linux") : NULL;
		json_object *upd = *ctr->resources_json ? json_tokener_parse(ctr->resources_json) : NULL;
		if (lin && json_object_is_type(lin, json_type_object) && upd && json_object_is_type(upd, json_type_object)) {
			json_object *res = json_object_object_get(lin, "resources");
			if (!res || !json_object_is_type(res, json_type_object)) {
				res = json_object_new_object();
				json_object_object_add(lin, "resources", res);
			}
			json_object_object_foreach(upd, k, v)
				json_object_object_add(res, k, json_object_get(v));
		}
		json_object_put(upd);
		if (rs)
			json_object_object_add(o, "runtimeSpec", rs);
	}
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	char *out = s ? strdup(s) : NULL;
	json_object_put(o);
	return out;
}

void ctr_status_fill(struct ctr_status_msg *m, const struct container *ctr, const struct ctr_status *st)
{
	const Runtime__V1__ContainerConfig *cfg = ctr->config;
	runtime__v1__container_status__init(&m->s);
	runtime__v1__image_spec__init(&m->img);
	runtime__v1__container_resources__init(&m->res);
	runtime__v1__container_user__init(&m->user);
	runtime__v1__linux_container_user__init(&m->luser);
	m->s.id = (char *)ctr->id;
	m->s.metadata = cfg->metadata;
	m->s.state = st->state;
	m->s.created_at = ctr->created_at;
	m->s.started_at = st->started_at;
	m->s.finished_at = st->finished_at;
	m->s.exit_code = st->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED ? st->exit_code : 0;
	m->img.image = ctr->image;
	if (cfg->image) {
		m->img.annotations = cfg->image->annotations;
		m->img.n_annotations = cfg->image->n_annotations;
		m->img.user_specified_image = cfg->image->user_specified_image;
		m->img.runtime_handler = cfg->image->runtime_handler;
	}
	m->s.image = &m->img;
	m->s.image_ref = ctr->image_ref;
	m->s.image_id = ctr->image_ref;
	m->s.reason = (char *)exit_reason(st);
	m->s.message = (char *)(st->message ? st->message : "");
	m->s.labels = (Runtime__V1__ContainerStatus__LabelsEntry **)cfg->labels;
	m->s.n_labels = cfg->n_labels;
	m->s.annotations = (Runtime__V1__ContainerStatus__AnnotationsEntry **)cfg->annotations;
	m->s.n_annotations = cfg->n_annotations;
	m->s.mounts = cfg->mounts;
	m->s.n_mounts = cfg->n_mounts;
	m->s.log_path = ctr->log_path;
	if (cfg->linux && cfg->linux->resources) {
		m->res.linux = cfg->linux->resources;
		m->s.resources = &m->res;
	}
	if (ctr->user_known) {
		m->luser.uid = ctr->uid;
		m->luser.gid = ctr->gid;
		m->luser.supplemental_groups = ctr->gids;
		m->luser.n_supplemental_groups = ctr->n_gids;
		m->user.linux = &m->luser;
		m->s.user = &m->user;
	}
	m->s.stop_signal = signal_enum(stop_signal_of(ctr));
}

static void reply_status(struct ctr_op *op, const struct container *ctr, const struct ctr_status *st)
{
	struct ctr_status_msg m;
	ctr_status_fill(&m, ctr, st);

	Runtime__V1__ContainerStatusResponse resp = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INIT;
	resp.status = &m.s;
	Runtime__V1__ContainerStatusResponse__InfoEntry entry = RUNTIME__V1__CONTAINER_STATUS_RESPONSE__INFO_ENTRY__INIT;
	Runtime__V1__ContainerStatusResponse__InfoEntry *entries[] = {&entry};
	_cleanup_free_ char *info = op->verbose ? verbose_info(ctr, st) : NULL;
	if (info) {
		entry.key = (char *)"info";
		entry.value = info;
		resp.info = entries;
		resp.n_info = 1;
	}
	op_answer(op, &resp.base);
}

static void status_state_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
			      void *ud)
{
	struct ctr_op *op = ud;
	struct container *ctr = ctrs_find(&op->c->ctrs, op->id);
	if (!ctr || ctr->state == CTR_CREATING) {
		op_error(op, STATUS_NOT_FOUND, "container %s not found", op->id);
		op_answer(op, NULL);
		return;
	}
	struct ctr_status st;
	if (status == STATUS_OK) {
		ctr_status_from_state((const void *)resp, &st);
	} else {
		log_debug(op->req, "container monitor did not answer, reading its state file", "container=%s error=\"%s\"",
			  ctr->id, message);
		ctr_disk_status(ctr, &st);
	}
	reply_status(op, ctr, &st);
}

static void container_status(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__ContainerStatusRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	struct container *ctr = find_for_call(c, call, req->container_id);
	struct ctr_op *op = ctr ? op_new(c, call, NULL) : NULL;
	if (!op)
		return;
	snprintf(op->id, sizeof(op->id), "%s", ctr->id);
	op->verbose = req->verbose;
	Criod__Internal__ContainerStateRequest sreq = CRIOD__INTERNAL__CONTAINER_STATE_REQUEST__INIT;
	call_ipc(op, ctr_conmon(ctr), API_CONMON(CONMON_STATE), &sreq.base, op_timeout(op, STATE_TIMEOUT_MS), status_state_done);
}

/* ---------------------------------------------------------------- ListContainers */

static bool labels_match(const struct container *ctr, const Runtime__V1__ContainerFilter *f)
{
	const Runtime__V1__ContainerConfig *cfg = ctr->config;
	for (size_t i = 0; i < f->n_label_selector; i++) {
		const char *k = f->label_selector[i]->key, *v = f->label_selector[i]->value;
		bool found = false;
		for (size_t j = 0; j < cfg->n_labels && !found; j++)
			found = strcmp(cfg->labels[j]->key, k ? k : "") == 0 && strcmp(cfg->labels[j]->value, v ? v : "") == 0;
		if (!found)
			return false;
	}
	return true;
}

static bool pod_matches(struct criod *c, const struct container *ctr, const char *pod_filter)
{
	if (strcmp(ctr->pod_id, pod_filter) == 0)
		return true;
	struct pod *p = pods_find(&c->pods, pod_filter);
	return p && strcmp(p->id, ctr->pod_id) == 0;
}

/* ListContainers and StreamContainers: the containers f selects, answered
 * as desc (list_reply.h). */
static void ctr_list(struct grpc_call *call, struct criod *c, const Runtime__V1__ContainerFilter *f,
		     const ProtobufCMessageDescriptor *desc)
{
	size_t n = 0;
	for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next)
		n++;
	_cleanup_free_ Runtime__V1__Container *items = calloc(n ? n : 1, sizeof(*items));
	_cleanup_free_ Runtime__V1__Container **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	_cleanup_free_ Runtime__V1__ImageSpec *imgs = calloc(n ? n : 1, sizeof(*imgs));
	if (!items || !ptrs || !imgs) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	size_t k = 0;
	for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next) {
		if (ctr->gone || ctr->state == CTR_CREATING)
			continue;
		if (f && f->id && *f->id && ctrs_find(&c->ctrs, f->id) != ctr)
			continue;
		if (f && f->pod_sandbox_id && *f->pod_sandbox_id && !pod_matches(c, ctr, f->pod_sandbox_id))
			continue;
		if (f && !labels_match(ctr, f))
			continue;
		struct ctr_status st;
		ctr_disk_status(ctr, &st);
		if (f && f->state && f->state->state != st.state)
			continue;
		const Runtime__V1__ContainerConfig *cfg = ctr->config;
		Runtime__V1__Container *it = &items[k];
		runtime__v1__container__init(it);
		runtime__v1__image_spec__init(&imgs[k]);
		imgs[k].image = ctr->image;
		if (cfg->image) {
			imgs[k].annotations = cfg->image->annotations;
			imgs[k].n_annotations = cfg->image->n_annotations;
			imgs[k].user_specified_image = cfg->image->user_specified_image;
			imgs[k].runtime_handler = cfg->image->runtime_handler;
		}
		it->id = ctr->id;
		it->pod_sandbox_id = ctr->pod_id;
		it->metadata = cfg->metadata;
		it->image = &imgs[k];
		it->image_ref = ctr->image_ref;
		it->image_id = ctr->image_ref;
		it->state = st.state;
		it->created_at = ctr->created_at;
		it->labels = (Runtime__V1__Container__LabelsEntry **)cfg->labels;
		it->n_labels = cfg->n_labels;
		it->annotations = (Runtime__V1__Container__AnnotationsEntry **)cfg->annotations;
		it->n_annotations = cfg->n_annotations;
		ptrs[k++] = it;
	}
	list_reply(call, desc, (ProtobufCMessage *const *)ptrs, k);
}

static void list_containers(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__ListContainersRequest *req = (const void *)msg;
	ctr_list(call, ud, req->filter, &runtime__v1__list_containers_response__descriptor);
}

static void stream_containers(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__StreamContainersRequest *req = (const void *)msg;
	ctr_list(call, ud, req->filter, &runtime__v1__stream_containers_response__descriptor);
}

/* ---------------------------------------------------------------- UpdateContainerResources */

/* The OCI linux.resources object runc update takes: what the spec builder
 * makes of LinuxContainerResources, without devices, by its rules. */
int ctr_resources_json(const Runtime__V1__LinuxContainerResources *res, const char *field, char **out, char *err,
		       size_t errlen)
{
	if (res->oom_score_adj < -1000 || res->oom_score_adj > 1000)
		return snprintf(err, errlen, "%s.oom_score_adj: %" PRId64 " is out of range [-1000, 1000]", field,
				res->oom_score_adj),
		       -EINVAL;
	return oci_resources_json(res, host_cgroup_v2(), field, out, err, errlen);
}

/* The container's config with resources replaced, encoded. */
static int config_with_resources(const struct container *ctr, Runtime__V1__LinuxContainerResources *res,
				 uint8_t **out, size_t *len)
{
	Runtime__V1__ContainerConfig *cfg = ctr->config;
	Runtime__V1__LinuxContainerConfig lin = RUNTIME__V1__LINUX_CONTAINER_CONFIG__INIT;
	Runtime__V1__LinuxContainerConfig *saved_lin = cfg->linux;
	Runtime__V1__LinuxContainerResources *saved_res = saved_lin ? saved_lin->resources : NULL;
	if (!saved_lin)
		cfg->linux = &lin;
	cfg->linux->resources = res;
	*len = protobuf_c_message_get_packed_size(&cfg->base);
	*out = malloc(*len ? *len : 1);
	if (*out)
		protobuf_c_message_pack(&cfg->base, *out);
	cfg->linux->resources = saved_res;
	cfg->linux = saved_lin;
	return *out ? 0 : -ENOMEM;
}

static void update_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_, size_t nfds _unused_,
			void *ud)
{
	struct ctr_op *op = ud;
	struct container *ctr = op->ctr;
	if (status != STATUS_OK) {
		op_error(op, status, "%s", message);
		log_warn(op->req, "container update failed", "container=%s error=\"%s\"", ctr->id, message);
	} else {
		int r = ctr_set_config(ctr, op->config_bytes, op->config_len);
		if (r == 0) {
			free(ctr->resources_json);
			ctr->resources_json = op->resources_json;
			op->resources_json = NULL;
			r = ctr_save(ctr);
		}
		if (r < 0)
			op_error(op, STATUS_INTERNAL, "resources applied, but cannot save container state: %s", strerror(-r));
		else
			log_info(op->req, "container resources updated", "container=%s resources=%s", ctr->id,
				 ctr->resources_json);
	}
	Runtime__V1__UpdateContainerResourcesResponse out = RUNTIME__V1__UPDATE_CONTAINER_RESOURCES_RESPONSE__INIT;
	op_finish(op, &out.base);
}

static void update_task(struct container *ctr, void *arg)
{
	struct ctr_op *op = arg;
	op->ctr = ctr;
	if (ctr->gone) {
		Runtime__V1__UpdateContainerResourcesResponse out = RUNTIME__V1__UPDATE_CONTAINER_RESOURCES_RESPONSE__INIT;
		op_error(op, STATUS_NOT_FOUND, "container %s not found", op->id);
		op_finish(op, &out.base);
		return;
	}
	Criod__Internal__UpdateResourcesRequest req = CRIOD__INTERNAL__UPDATE_RESOURCES_REQUEST__INIT;
	req.linux_resources_json = op->resources_json;
	call_ipc(op, ctr_conmon(ctr), API_CONMON(CONMON_UPDATE), &req.base, op_timeout(op, RUNTIME_TIMEOUT_MS), update_done);
}

static void update_container_resources(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__UpdateContainerResourcesRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	struct container *ctr = find_for_call(c, call, req->container_id);
	if (!ctr)
		return;
	if (!req->linux) {
		/* Nothing for Linux to change. */
		Runtime__V1__UpdateContainerResourcesResponse out = RUNTIME__V1__UPDATE_CONTAINER_RESOURCES_RESPONSE__INIT;
		grpc_call_reply(call, &out.base);
		return;
	}
	char err[256] = "";
	_cleanup_free_ char *json = NULL;
	int r = ctr_resources_json(req->linux, "linux", &json, err, sizeof(err));
	if (r < 0) {
		grpc_call_fail(call, r == -EINVAL ? STATUS_INVALID_ARGUMENT : status_from_errno(r), "%s",
			       *err ? err : strerror(-r));
		return;
	}
	struct ctr_op *op = op_new(c, call, NULL);
	if (!op)
		return;
	r = config_with_resources(ctr, req->linux, &op->config_bytes, &op->config_len);
	if (r < 0) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		op_free(op);
		return;
	}
	op->resources_json = TAKE_PTR(json);
	enqueue(op, ctr, update_task);
}

/* ---------------------------------------------------------------- ReopenContainerLog */

static void reopen_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_, size_t nfds _unused_,
			void *ud)
{
	struct ctr_op *op = ud;
	if (status != STATUS_OK)
		op_error(op, status, "%s", message);
	else
		log_info(op->req, "container log reopened", "container=%s", op->id);
	Runtime__V1__ReopenContainerLogResponse out = RUNTIME__V1__REOPEN_CONTAINER_LOG_RESPONSE__INIT;
	op_answer(op, &out.base);
}

static void reopen_state_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
			      void *ud)
{
	struct ctr_op *op = ud;
	struct container *ctr = ctrs_find(&op->c->ctrs, op->id);
	if (!ctr) {
		op_error(op, STATUS_NOT_FOUND, "container %s not found", op->id);
		op_answer(op, NULL);
		return;
	}
	if (status != STATUS_OK) {
		op_error(op, status, "cannot reach the monitor of container %s: %s", op->id, message);
		op_answer(op, NULL);
		return;
	}
	struct ctr_status st;
	ctr_status_from_state((const void *)resp, &st);
	if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING) {
		op_error(op, STATUS_FAILED_PRECONDITION, "container %s is not running", op->id);
		op_answer(op, NULL);
		return;
	}
	Criod__Internal__ReopenLogRequest req = CRIOD__INTERNAL__REOPEN_LOG_REQUEST__INIT;
	call_ipc(op, ctr_conmon(ctr), API_CONMON(CONMON_REOPEN_LOG), &req.base, op_timeout(op, RUNTIME_TIMEOUT_MS), reopen_done);
}

static void reopen_container_log(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__ReopenContainerLogRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	struct container *ctr = find_for_call(c, call, req->container_id);
	struct ctr_op *op = ctr ? op_new(c, call, NULL) : NULL;
	if (!op)
		return;
	snprintf(op->id, sizeof(op->id), "%s", ctr->id);
	Criod__Internal__ContainerStateRequest sreq = CRIOD__INTERNAL__CONTAINER_STATE_REQUEST__INIT;
	call_ipc(op, ctr_conmon(ctr), API_CONMON(CONMON_STATE), &sreq.base, op_timeout(op, STATE_TIMEOUT_MS), reopen_state_done);
}

/* ---------------------------------------------------------------- ExecSync */

static void exec_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
		      void *ud)
{
	struct ctr_op *op = ud;
	Runtime__V1__ExecSyncResponse out = RUNTIME__V1__EXEC_SYNC_RESPONSE__INIT;
	if (status != STATUS_OK) {
		op_error(op, status, "%s", message);
	} else {
		const Criod__Internal__ExecResponse *r = (const void *)resp;
		if (r->timed_out) {
			op_error(op, STATUS_DEADLINE_EXCEEDED, "command timed out: timeout %lld s exceeded",
				 (long long)op->exec_timeout_s);
		} else {
			out.stdout = r->stdout;
			out.stderr = r->stderr;
			out.exit_code = r->exit_code;
		}
		log_debug(op->req, "exec finished", "container=%s exit_code=%d timed_out=%d", op->id, r->exit_code,
			  r->timed_out);
	}
	op_answer(op, &out.base);
}

static void exec_sync(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__ExecSyncRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	if (req->n_cmd == 0 || !req->cmd[0] || !*req->cmd[0]) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd is required");
		return;
	}
	if (req->timeout < 0 || req->timeout > MAX_EXEC_TIMEOUT_S) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "timeout must be 0..%lld seconds", MAX_EXEC_TIMEOUT_S);
		return;
	}
	struct container *ctr = find_for_call(c, call, req->container_id);
	struct ctr_op *op = ctr ? op_new(c, call, NULL) : NULL;
	if (!op)
		return;
	snprintf(op->id, sizeof(op->id), "%s", ctr->id);
	op->exec_timeout_s = req->timeout;
	Criod__Internal__ExecRequest ereq = CRIOD__INTERNAL__EXEC_REQUEST__INIT;
	ereq.cmd = req->cmd;
	ereq.n_cmd = req->n_cmd;
	ereq.timeout_ms = req->timeout * 1000;
	uint64_t ipc_ms = req->timeout ? (uint64_t)req->timeout * 1000 + EXEC_SLACK_MS : EXEC_NO_TIMEOUT_MS;
	log_debug(op->req, "exec", "container=%s argc=%zu timeout=%lld", ctr->id, req->n_cmd, (long long)req->timeout);
	call_ipc(op, ctr_conmon(ctr), API_CONMON(CONMON_EXEC), &ereq.base, op_timeout(op, ipc_ms), exec_done);
}

const struct cri_handler container_service_handlers[] = {
	{"RuntimeService", "CreateContainer", create_container},
	{"RuntimeService", "StartContainer", start_container},
	{"RuntimeService", "StopContainer", stop_container},
	{"RuntimeService", "RemoveContainer", remove_container},
	{"RuntimeService", "ContainerStatus", container_status},
	{"RuntimeService", "ListContainers", list_containers},
	{"RuntimeService", "StreamContainers", stream_containers},
	{"RuntimeService", "UpdateContainerResources", update_container_resources},
	{"RuntimeService", "ReopenContainerLog", reopen_container_log},
	{"RuntimeService", "ExecSync", exec_sync},
};
const size_t n_container_service_handlers = ARRAY_SIZE(container_service_handlers);
