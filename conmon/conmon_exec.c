/* conmon: Exec (ExecSync). `<runtime> exec` runs asynchronously: its
 * stdout and stderr pipes are read by events into bounded buffers, its
 * timeout kills the process group, and the SIGCHLD reaping (conmon.c)
 * completes the call, so State and Kill keep answering while it runs. */
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
#include "spawn.h"
#include "spawnd_confine.h"
#include "spawnd_policy.h"
#include "status.h"
#include "util.h"

#define MAX_EXEC_ARGS 4096
#define MAX_EXEC_ARG_BYTES (1u << 20)
#define MAX_EXEC_TIMEOUT_MS (100LL * 24 * 3600 * 1000)

/* ------------------------------------------------------------------ exec */

static void exec_free(struct exec_op *e)
{
	struct conmon *cm = e->cm;
	for (struct exec_op **pp = &cm->execs; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			cm->n_execs--;
			break;
		}
	for (int i = 0; i < 2; i++) {
		if (e->ev[i])
			event_free(e->ev[i]);
		if (e->fd[i] >= 0)
			close(e->fd[i]);
		free(e->out[i].data);
	}
	if (e->timer)
		event_free(e->timer);
	if (e->pid_file) {
		unlink(e->pid_file);
		free(e->pid_file);
	}
	free(e);
}

static size_t exec_total(struct exec_op *e) { return e->out[0].len + e->out[1].len; }

/* Read one stream of an exec into its buffer (when draining: until the pipe
 * is empty, at most DRAIN_ROUNDS reads). */
static void exec_read(struct exec_op *e, int i, bool drain)
{
	char tmp[16384];
	for (int round = 0; e->fd[i] >= 0 && round < (drain ? DRAIN_ROUNDS : READ_ROUNDS); round++) {
		ssize_t n = read(e->fd[i], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (e->ev[i])
				event_free(e->ev[i]);
			e->ev[i] = NULL;
			close(e->fd[i]);
			e->fd[i] = -1;
			return;
		}
		struct obuf *b = &e->out[i];
		size_t k = (size_t)n;
		size_t room_stream = CONMON_EXEC_MAX_OUTPUT - b->len;
		size_t room_total = CONMON_EXEC_MAX_TOTAL - exec_total(e);
		size_t room = room_stream < room_total ? room_stream : room_total;
		if (k > room) {
			k = room;
			b->truncated = true;
		}
		if (k == 0)
			continue;
		if (b->len + k > b->cap) {
			size_t ncap = b->cap ? b->cap : 4096;
			while (ncap < b->len + k)
				ncap *= 2;
			if (ncap > CONMON_EXEC_MAX_OUTPUT)
				ncap = CONMON_EXEC_MAX_OUTPUT;
			uint8_t *nd = realloc(b->data, ncap);
			if (!nd) {
				b->truncated = true;
				continue;
			}
			b->data = nd;
			b->cap = ncap;
		}
		memcpy(b->data + b->len, tmp, k);
		b->len += k;
	}
}

static void exec_out_cb(evutil_socket_t fd, short what _unused_, void *arg)
{
	struct exec_op *e = arg;
	exec_read(e, e->fd[0] == fd ? 0 : 1, false);
}

/* The command's pid from the runtime's pid file (0 if there is none yet). */
static pid_t exec_target_pid(struct exec_op *e)
{
	_cleanup_free_ char *text = NULL;
	if (read_file(e->pid_file, 64, &text, NULL) < 0)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || v <= 1 || v > INT_MAX)
		return 0;
	return (pid_t)v;
}

/* SIGKILL the command and everything the runtime's exec started. */
static void exec_kill(struct exec_op *e)
{
	pid_t target = exec_target_pid(e);
	if (target > 0 && target != e->cm->pid && e->pid > 0) {
		/* Only while the runtime (our unreaped child) still waits for
		 * the command, so the number cannot have been reused. The
		 * runtime makes the command a session leader: its group holds
		 * what it started in the background. */
		if (getpgid(target) == target)
			kill(-target, SIGKILL);
		kill(target, SIGKILL);
	}
	if (e->pgid > 0)
		kill(-e->pgid, SIGKILL);
	if (e->pid > 0)
		kill(e->pid, SIGKILL);
}

static void exec_timeout_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct exec_op *e = arg;
	log_info(e->req, "exec timed out, killing it", "id=%s pid=%d", e->cm->id, (int)e->pid);
	e->timed_out = true;
	exec_kill(e);
}

/* SIGKILL every child of ours we do not track, with its group. A command
 * becomes our child only when its runtime exec process died (we are the
 * subreaper above it), i.e. was killed at a timeout; this catches one that
 * had made its own session before the runtime wrote the pid file. Being
 * unreaped children, their numbers cannot have been reused. */
static void kill_orphans(struct conmon *cm)
{
	char path[64];
	_cleanup_free_ char *text = NULL;
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	if (read_file(path, 1 << 20, &text, NULL) < 0)
		return;
	for (char *p = text, *end; *p; p = end) {
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (errno || v <= 1 || v > INT_MAX)
			continue;
		pid_t pid = (pid_t)v;
		bool tracked = (pid == cm->pid && !cm->reaped) || pid == cm->sync_pid;
		for (struct exec_op *e = cm->execs; e && !tracked; e = e->next)
			tracked = e->pid == pid;
		tracked = tracked || conmon_stream_tracks(cm, pid);
		if (tracked)
			continue;
		log_info(NULL, "killing a command left by a killed exec", "pid=%d", (int)pid);
		if (getpgid(pid) == pid)
			kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
	}
}

/* The runtime's exec process was reaped (conmon_reap_all): reply. */
void conmon_exec_reaped(struct exec_op *e)
{
	int wstatus = e->wstatus;
	for (int i = 0; i < 2; i++)
		exec_read(e, i, true);
	if (e->timed_out)
		kill_orphans(e->cm);
	Criod__Internal__ExecResponse resp = CRIOD__INTERNAL__EXEC_RESPONSE__INIT;
	resp.stdout.data = e->out[0].data;
	resp.stdout.len = e->out[0].len;
	resp.stderr.data = e->out[1].data;
	resp.stderr.len = e->out[1].len;
	resp.timed_out = e->timed_out;
	resp.exit_code = e->timed_out ? CONMON_EXEC_TIMED_OUT_CODE : conmon_exit_code_of(wstatus);
	log_info(e->req, "exec finished", "id=%s exit_code=%d timed_out=%s stdout_bytes=%zu stderr_bytes=%zu%s",
		 e->cm->id, resp.exit_code, e->timed_out ? "true" : "false", e->out[0].len, e->out[1].len,
		 e->out[0].truncated || e->out[1].truncated ? " truncated=true" : "");
	ipc_call_reply(e->call, &resp.base, NULL, 0);
	e->call = NULL;
	exec_free(e);
}

/* Kill an exec and answer its call now (Delete, shutdown). */
void conmon_exec_abort(struct exec_op *e, const char *why)
{
	exec_kill(e);
	if (e->call)
		ipc_call_fail(e->call, STATUS_ABORTED, "%s", why);
	e->call = NULL;
	exec_free(e);
}

void handle_exec(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const Criod__Internal__ExecRequest *req = (const void *)msg;
	const char *rid = ipc_call_request_id(call);

	if (req->n_cmd == 0 || !req->cmd[0] || !req->cmd[0][0]) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd is empty");
		return;
	}
	if (req->n_cmd > MAX_EXEC_ARGS) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd has more than %d arguments", MAX_EXEC_ARGS);
		return;
	}
	size_t bytes = 0;
	for (size_t i = 0; i < req->n_cmd; i++)
		bytes += strlen(req->cmd[i]) + 1;
	if (bytes > MAX_EXEC_ARG_BYTES) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd is longer than %u bytes", MAX_EXEC_ARG_BYTES);
		return;
	}
	if (req->timeout_ms < 0 || req->timeout_ms > MAX_EXEC_TIMEOUT_MS) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "timeout_ms must be 0..%lld", MAX_EXEC_TIMEOUT_MS);
		return;
	}
	if (cm->state != ST_RUNNING || cm->reaped) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "container %s is not running", cm->id);
		return;
	}
	if (cm->n_execs >= CONMON_EXEC_MAX_RUNNING) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "%d execs are already running", CONMON_EXEC_MAX_RUNNING);
		return;
	}

	struct exec_op *e = calloc(1, sizeof(*e));
	if (!e) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	e->cm = cm;
	e->fd[0] = e->fd[1] = -1;
	e->seq = ++cm->exec_seq;
	snprintf(e->req, sizeof(e->req), "%s", rid);
	e->next = cm->execs;
	cm->execs = e;
	cm->n_execs++;

	char name[32];
	snprintf(name, sizeof(name), "exec-%u.pid", e->seq);
	e->pid_file = conmon_path_in(cm->state_dir, name);
	_cleanup_free_ const char **argv = calloc(req->n_cmd + 16, sizeof(*argv));
	int w[2] = {-1, -1};
	int r = 0;
	if (!e->pid_file || !argv)
		r = -ENOMEM;
	if (r == 0)
		unlink(e->pid_file);
	for (int i = 0; i < 2 && r == 0; i++) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) < 0) {
			r = -errno;
			break;
		}
		e->fd[i] = p[0];
		w[i] = p[1];
		if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
			r = -errno;
	}
	if (r == 0) {
		size_t k = 0;
		argv[k++] = cm->runtime;
		argv[k++] = "--root";
		argv[k++] = cm->runtime_root;
		argv[k++] = "exec";
		argv[k++] = "--pid-file";
		argv[k++] = e->pid_file;
		argv[k++] = cm->id;
		for (size_t i = 0; i < req->n_cmd; i++)
			argv[k++] = req->cmd[i];
		argv[k] = NULL;
		/* Its own session: the whole group can be killed at the timeout. */
		struct spawn_opts o = {.argv = argv, .stdin_fd = -1, .stdout_fd = w[0], .stderr_fd = w[1],
				       .new_session = 1};
		r = spawn_process(&o, &e->pid);
		e->pgid = r == 0 ? e->pid : 0;
	}
	for (int i = 0; i < 2; i++)
		if (w[i] >= 0)
			close(w[i]);
	for (int i = 0; i < 2 && r == 0; i++) {
		e->ev[i] = event_new(cm->base, e->fd[i], EV_READ | EV_PERSIST, exec_out_cb, e);
		if (!e->ev[i] || event_add(e->ev[i], NULL) < 0)
			r = -ENOMEM;
	}
	if (r == 0 && req->timeout_ms > 0) {
		struct timeval tv = {.tv_sec = req->timeout_ms / 1000, .tv_usec = (req->timeout_ms % 1000) * 1000};
		e->timer = evtimer_new(cm->base, exec_timeout_cb, e);
		if (!e->timer || evtimer_add(e->timer, &tv) < 0)
			r = -ENOMEM;
	}
	if (r < 0) {
		log_error_errno(r, rid, "cannot start exec", "id=%s", cm->id);
		ipc_call_fail(call, status_from_errno(r) == STATUS_NOT_FOUND ? STATUS_INTERNAL : status_from_errno(r),
			      "cannot run %s exec: %s", cm->runtime, strerror(-r));
		exec_kill(e); /* reaped later by the SIGCHLD handler */
		exec_free(e);
		return;
	}
	e->call = call;
	log_info(rid, "exec started", "id=%s pid=%d argc=%zu timeout_ms=%" PRId64, cm->id, (int)e->pid, req->n_cmd,
		 req->timeout_ms);
}
