/* conmon: the control methods criod calls on the monitor's socket (Ping,
 * State with its wait for the exit, Start, Kill, ReopenLog, Update,
 * Delete) and conmon_handlers, the handler of every request it serves
 * (ExecStream and AttachStream are conmon_stream.c's, Exec conmon_exec.c's). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "api.h"
#include "beneath.h"
#include "config.h"
#include "confine.h"
#include "conmon.h"
#include "conmon_crilog.h"
#include "conmon_internal.h"
#include "internal/conmon.pb-c.h"
#include "internal/envelope.pb-c.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "procstat.h"
#include "spawn.h"
#include "spawnd_confine.h"
#include "spawnd_policy.h"
#include "status.h"
#include "util.h"

#define MAX_RESOURCES_JSON (1u << 20)
#define DELETE_REAP_WAIT_MS 2000
#define STATE_WAIT_MAX_MS 60000
#define STATE_WAITS_MAX 64

/* ------------------------------------------------------------------ control methods */

static void handle_ping(struct ipc_call *call, const ProtobufCMessage *req _unused_, int *fds _unused_, size_t nfds _unused_, void *ud _unused_)
{
	Criod__Internal__PingResponse resp = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	resp.component = (char *)"conmon";
	resp.version = (char *)PACKAGE_VERSION;
	resp.pid = getpid();
	resp.uid = getuid();
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static void state_reply(struct conmon *cm, struct ipc_call *call)
{
	Criod__Internal__ContainerStateResponse resp = CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__INIT;
	resp.state = cm->state;
	resp.pid = cm->pid;
	resp.created_at = cm->created_at;
	resp.started_at = cm->started_at;
	resp.finished_at = cm->finished_at;
	resp.exit_code = cm->exit_code;
	resp.oom_killed = cm->oom_killed;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* Answer one waiting State call (w may be anywhere on the list). */
static void state_wait_end(struct state_wait *w)
{
	struct conmon *cm = w->cm;
	for (struct state_wait **pp = &cm->waits; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	cm->n_waits--;
	if (w->timer)
		event_free(w->timer);
	state_reply(cm, w->call);
	free(w);
}

static void state_wait_timeout(evutil_socket_t fd _unused_, short what _unused_, void *arg) { state_wait_end(arg); }

/* The exit is recorded (or conmon stops): answer every waiting State call. */
void conmon_state_waits_end(struct conmon *cm)
{
	while (cm->waits)
		state_wait_end(cm->waits);
}

static void handle_state(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const Criod__Internal__ContainerStateRequest *req = (const void *)msg;
	if (req->wait_exit_ms > STATE_WAIT_MAX_MS) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "wait_exit_ms must be at most %d", STATE_WAIT_MAX_MS);
		return;
	}
	if (!req->wait_exit_ms || cm->state == ST_EXITED || cm->n_waits >= STATE_WAITS_MAX) {
		state_reply(cm, call);
		return;
	}
	struct state_wait *w = calloc(1, sizeof(*w));
	struct timeval tv = {req->wait_exit_ms / 1000, (req->wait_exit_ms % 1000) * 1000};
	if (w)
		w->timer = evtimer_new(cm->base, state_wait_timeout, w);
	if (!w || !w->timer || evtimer_add(w->timer, &tv) < 0) {
		if (w && w->timer)
			event_free(w->timer);
		free(w);
		state_reply(cm, call); /* answer now rather than not at all */
		return;
	}
	w->cm = cm;
	w->call = call;
	w->next = cm->waits;
	cm->waits = w;
	cm->n_waits++;
}

static void handle_start(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const char *rid = ipc_call_request_id(call);
	char err[ERRMSG_MAX];
	if (cm->state != ST_CREATED) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "container %s is %s, not created", cm->id,
			      cm->state == ST_RUNNING ? "running" : "exited");
		return;
	}
	/* The process starts during "runtime run" and may be reaped soon after
	 * it returns: take the time first so finished_at is never before it. */
	int64_t started_at = now_realtime_ns(), t0 = now_monotonic_ns();
	int r = conmon_run_container(cm, err, sizeof(err));
	double runtime_ms = (double)(now_monotonic_ns() - t0) / 1e6; /* the runtime's run, for the log */
	if (r < 0) {
		conmon_close_outputs(cm); /* a retried Start makes new pipes */
		cm->pid = 0;
		ipc_call_fail(call, r == -ETIMEDOUT ? STATUS_DEADLINE_EXCEEDED : STATUS_INTERNAL,
			      "cannot start container %s: %s", cm->id, err);
		return;
	}
	cm->started_at = started_at;
	cm->state = ST_RUNNING;
	conmon_persist_state(cm);
	log_info(rid, "container started", "id=%s pid=%d runtime_ms=%.1f", cm->id, (int)cm->pid, runtime_ms);
	Criod__Internal__StartContainerResponse resp = CRIOD__INTERNAL__START_CONTAINER_RESPONSE__INIT;
	resp.started_at = cm->started_at;
	resp.pid = cm->pid;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* Is pid the init (pid 1) of a PID namespace below ours? The last NSpid
 * field of /proc/<pid>/status is its pid in its innermost namespace. */
static bool own_pid_ns_init(pid_t pid)
{
	char path[64];
	_cleanup_free_ char *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	return read_file(path, 1 << 16, &text, NULL) == 0 && procstat_parse_ns_init(text);
}

static void handle_kill(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const Criod__Internal__KillContainerRequest *req = (const void *)msg;
	const char *rid = ipc_call_request_id(call);
	Criod__Internal__KillContainerResponse resp = CRIOD__INTERNAL__KILL_CONTAINER_RESPONSE__INIT;
	char err[ERRMSG_MAX], sig[16];

	if (req->signal < 1 || req->signal > 64) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "signal must be 1..64");
		return;
	}
	if (cm->pid <= 0 && cm->state == ST_CREATED) {
		/* Never started: the runtime has nothing to signal. The container
		 * ends here, as if its init had got the signal before it ran. */
		cm->state = ST_EXITED;
		cm->exit_code = 128 + req->signal;
		cm->finished_at = now_realtime_ns();
		conmon_persist_state(cm);
		log_info(rid, "container stopped before it was started", "id=%s signal=%d", cm->id, req->signal);
		conmon_state_waits_end(cm);
		ipc_call_reply(call, &resp.base, NULL, 0);
		return;
	}
	if (cm->reaped || cm->pid <= 0) {
		ipc_call_reply(call, &resp.base, NULL, 0); /* nothing (left) to signal */
		return;
	}
	int r;
	if (cm->pid > 0 && (!req->all || (req->signal == SIGKILL && own_pid_ns_init(cm->pid)))) {
		/* What runtime kill would do, without its start-up: the pid is
		 * still ours (not reaped), so it names the container's init; and
		 * when that is the init of the container's own PID namespace, a
		 * SIGKILL to it takes every process of the namespace along. */
		r = kill(cm->pid, req->signal) == 0 || errno == ESRCH ? 0 : -errno;
		if (r < 0)
			snprintf(err, sizeof(err), "kill %d: %s", (int)cm->pid, strerror(-r));
	} else {
		snprintf(sig, sizeof(sig), "%d", req->signal);
		const char *args_all[] = {"kill", "--all", cm->id, sig};
		r = conmon_runtime_run(cm, rid, args_all, ARRAY_SIZE(args_all), err, sizeof(err));
		if (r < 0 && cm->reaped) {
			r = 0; /* it exited meanwhile: nothing left to signal */
		} else if (r < 0) {
			/* The runtime sees a zombie as stopped; the pid is still
			 * ours (unreaped), so signalling it directly is safe. */
			if (kill(cm->pid, req->signal) == 0 || errno == ESRCH) {
				log_info(rid, "runtime kill failed, signalled the init process directly",
					 "id=%s pid=%d signal=%d", cm->id, (int)cm->pid, req->signal);
				r = 0;
			}
		}
	}
	if (r < 0) {
		ipc_call_fail(call, r == -ETIMEDOUT ? STATUS_DEADLINE_EXCEEDED : STATUS_INTERNAL,
			      "cannot signal container %s: %s", cm->id, err);
		return;
	}
	log_info(rid, "container signalled", "id=%s signal=%d all=%s", cm->id, req->signal, req->all ? "true" : "false");
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static void handle_reopen_log(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	int fd = conmon_open_log(cm);
	if (fd == -ELOOP || fd == -EXDEV || fd == -EPERM || fd == -EISDIR) {
		log_warn_errno(fd, ipc_call_request_id(call), "log reopen refused", "path=%s root=%s", cm->log_path,
			       cm->log_root);
		ipc_call_fail(call, STATUS_PERMISSION_DENIED,
			      "cannot reopen log %s: %s beneath %s (no symlink is followed, only a regular file opened)",
			      cm->log_path, strerror(-fd), cm->log_root);
		return;
	}
	if (fd < 0) {
		ipc_call_fail(call, status_from_errno(fd), "cannot open log %s: %s", cm->log_path, strerror(-fd));
		return;
	}
	if (cm->log.fd >= 0)
		close(cm->log.fd);
	if (cm->log_root_fd >= 0)
		close(cm->log_root_fd);
	cm->log_root_fd = -1;
	cm->log.fd = fd;
	cm->log_failing = false;
	log_info(ipc_call_request_id(call), "log reopened", "path=%s", cm->log_path);
	Criod__Internal__ReopenLogResponse resp = CRIOD__INTERNAL__REOPEN_LOG_RESPONSE__INIT;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* Whether the spec spawnd checked and wrote into the bundle allows every
 * device (a privileged container). */
static bool created_privileged(struct conmon *cm)
{
	_cleanup_free_ char *path = conmon_path_in(cm->bundle, "config.json"), *text = NULL;
	if (!path || read_file(path, 16u << 20, &text, NULL) < 0)
		return false;
	json_object *spec = json_tokener_parse(text), *linux_ = NULL, *res = NULL;
	bool priv = spec && json_object_object_get_ex(spec, "linux", &linux_) &&
		    json_object_object_get_ex(linux_, "resources", &res) && spawnd_policy_resources_privileged(res);
	json_object_put(spec);
	return priv;
}

static void handle_update(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const Criod__Internal__UpdateResourcesRequest *req = (const void *)msg;
	const char *rid = ipc_call_request_id(call);
	const char *json = req->linux_resources_json ? req->linux_resources_json : "";
	size_t len = strlen(json);
	char err[ERRMSG_MAX];

	if (len == 0 || len > MAX_RESOURCES_JSON) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "linux_resources_json must be 1..%u bytes",
			      MAX_RESOURCES_JSON);
		return;
	}
	enum json_tokener_error jerr = json_tokener_success;
	json_object *obj = json_tokener_parse_verbose(json, &jerr);
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "linux_resources_json is not a JSON object%s%s",
			      obj ? "" : ": ", obj ? "" : json_tokener_error_desc(jerr));
		json_object_put(obj);
		return;
	}
	/* The node policy, as spawnd applies it to linux.resources at create
	 * (criod reaches conmon directly, so conmon is the root side that
	 * checks): only the fields criod writes, device rules and cgroup v2
	 * files within [policy]; every device only for a container that had it
	 * at create, in the spec spawnd checked. */
	struct spawnd_policy_ctx policy = {.cfg = &cm->cfg, .pod_privileged = created_privileged(cm)};
	int verdict = spawnd_policy_enforce_resources(obj, &policy, rid, cm->id, err, sizeof(err));
	/* runc reads what was checked: re-serialised, no duplicate keys */
	_cleanup_free_ char *checked = NULL;
	if (verdict == STATUS_OK) {
		const char *t = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		if (!t || !(checked = strdup(t))) {
			verdict = STATUS_RESOURCE_EXHAUSTED;
			snprintf(err, sizeof(err), "out of memory");
		}
	}
	json_object_put(obj);
	if (verdict != STATUS_OK) {
		ipc_call_fail(call, verdict, "%s", err);
		return;
	}
	json = checked;
	len = strlen(json);
	if (cm->state == ST_EXITED) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "container %s has exited", cm->id);
		return;
	}
	if (cm->pid <= 0) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
			      "container %s is not started: the runtime makes it (and its cgroup) at start", cm->id);
		return;
	}
	char rnd[17], name[48];
	int r = random_hex(rnd, 8);
	if (r < 0) {
		ipc_call_fail(call, STATUS_INTERNAL, "no randomness: %s", strerror(-r));
		return;
	}
	snprintf(name, sizeof(name), ".update-%s.json", rnd);
	_cleanup_free_ char *file = conmon_path_in(cm->bundle, name);
	if (!file) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	_cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0) {
		r = -errno;
		ipc_call_fail(call, status_from_errno(r), "cannot create %s: %s", file, strerror(-r));
		return;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, json + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			unlink(file);
			ipc_call_fail(call, status_from_errno(r), "cannot write %s: %s", file, strerror(-r));
			return;
		}
		off += (size_t)n;
	}
	const char *args[] = {"update", "--resources", file, cm->id};
	r = conmon_runtime_run(cm, rid, args, ARRAY_SIZE(args), err, sizeof(err));
	unlink(file);
	if (r < 0) {
		ipc_call_fail(call, r == -ETIMEDOUT ? STATUS_DEADLINE_EXCEEDED : STATUS_INTERNAL,
			      "cannot update container %s: %s", cm->id, err);
		return;
	}
	log_info(rid, "container resources updated", "id=%s", cm->id);
	Criod__Internal__UpdateResourcesResponse resp = CRIOD__INTERNAL__UPDATE_RESOURCES_RESPONSE__INIT;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static void early_delete_done(struct conmon *cm, int r, const char *err)
{
	double ms = (double)(now_monotonic_ns() - cm->early_delete_t0) / 1e6;
	cm->early_delete = r < 0 ? EARLY_DELETE_FAILED : EARLY_DELETE_OK;
	if (r < 0)
		log_warn(NULL, "runtime delete after the exit failed; Delete runs it again",
			 "id=%s runtime_ms=%.1f error=\"%s\"", cm->id, ms, err);
	else
		log_info(NULL, "runtime state removed after the exit", "id=%s runtime_ms=%.1f", cm->id, ms);
}

/* The exit is durable and every State waiting for it is answered: remove
 * the runtime's container now, as containerd does when a task exits, so
 * that Delete (RemoveContainer) has nothing of the runtime's left to do.
 * The loop keeps serving meanwhile. */
void conmon_early_delete(struct conmon *cm)
{
	char err[ERRMSG_MAX];
	if (cm->early_delete != EARLY_DELETE_NONE || cm->pid <= 0)
		return;
	const char *args[] = {"delete", "--force", cm->id};
	cm->early_delete = EARLY_DELETE_RUNNING;
	cm->early_delete_t0 = now_monotonic_ns();
	int r = conmon_runtime_start(cm, NULL, args, ARRAY_SIZE(args), early_delete_done, err, sizeof(err));
	if (r < 0) {
		cm->early_delete = EARLY_DELETE_FAILED;
		log_warn_errno(r, NULL, "cannot start the runtime delete after the exit; Delete runs it", "id=%s",
			       cm->id);
	}
}

static void handle_delete(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const char *rid = ipc_call_request_id(call);
	char err[ERRMSG_MAX];
	int r = 0;

	cm->exiting = true; /* an exit reaped from here on starts no delete of its own */
	while (cm->execs)
		conmon_exec_abort(cm->execs, "the container is being deleted");
	conmon_streams_abort(cm, "the container is being deleted");
	if (cm->early_delete == EARLY_DELETE_RUNNING) {
		/* Answered now; conmon exits once that delete has ended
		 * (teardown reaps it). If it fails, conmon is gone and spawnd's
		 * RemoveContainer deletes what the runtime still has. */
		log_info(rid, "the runtime delete begun at the exit is still running; exiting once it ends", "id=%s",
			 cm->id);
	} else if (cm->early_delete != EARLY_DELETE_OK) {
		/* Running, never started, or the delete at the exit failed:
		 * delete (again) here, to completion. */
		const char *args[] = {"delete", "--force", cm->id};
		r = conmon_runtime_run(cm, rid, args, ARRAY_SIZE(args), err, sizeof(err));
	}
	if (r < 0 && cm->pid <= 0) {
		/* Never started: the runtime has nothing of it (a failed run
		 * removed what it made), so its complaint is about that. */
		log_debug(rid, "runtime delete of a container it never ran", "id=%s error=\"%s\"", cm->id, err);
		r = 0;
	}
	if (r < 0) {
		cm->exiting = false; /* still serving */
		ipc_call_fail(call, r == -ETIMEDOUT ? STATUS_DEADLINE_EXCEEDED : STATUS_INTERNAL,
			      "cannot delete container %s: %s", cm->id, err);
		return;
	}
	/* A forced delete killed the init: record its end if it comes soon. */
	for (int i = 0; cm->pid > 0 && !cm->reaped && i < DELETE_REAP_WAIT_MS / 10; i++) {
		conmon_reap_all(cm);
		if (cm->reaped)
			break;
		usleep(10000);
	}
	conmon_process_exits(cm);
	unlink(cm->socket_path);
	log_info(rid, "container deleted", "id=%s", cm->id);
	Criod__Internal__DeleteContainerResponse resp = CRIOD__INTERNAL__DELETE_CONTAINER_RESPONSE__INIT;
	ipc_call_reply(call, &resp.base, NULL, 0);
	cm->exit_status = 0;
	event_base_loopexit(cm->base, NULL);
}

/* The handler of each request of common/api.c's conmon_methods (bound at start). */
const ipc_handler_fn conmon_handlers[CONMON_N_METHODS] = {
	[CONMON_PING - 1] = handle_ping,
	[CONMON_STATE - 1] = handle_state,
	[CONMON_START - 1] = handle_start,
	[CONMON_KILL - 1] = handle_kill,
	[CONMON_EXEC - 1] = handle_exec,
	[CONMON_REOPEN_LOG - 1] = handle_reopen_log,
	[CONMON_UPDATE - 1] = handle_update,
	[CONMON_DELETE - 1] = handle_delete,
	[CONMON_EXEC_STREAM - 1] = handle_exec_stream,
	[CONMON_ATTACH_STREAM - 1] = handle_attach_stream,
};
