/* conmon's half of streaming (criod/stream_backend.h): ExecStream and
 * AttachStream, whose replies hand criod file descriptors.
 *
 * ExecStream runs `runtime exec --detach` (with --tty and a console socket
 * for a terminal): the process gets the container's namespaces, cgroup,
 * user, capabilities and seccomp as ExecSync's does, and since the runtime
 * exits once it runs, the process becomes conmon's child (conmon is a
 * subreaper) and conmon reaps it itself: its pid from the runtime's pid
 * file is safe to signal until then. criod gets the pipes' other ends (or
 * the pty master) and a SOCK_SEQPACKET ctl socket. conmon keeps a
 * duplicate of each output's read end (or the master) without reading it:
 * poll() says POLLHUP on it once no process holds the write side any more,
 * which is when it sends STREAM_CTL_EXIT and closes ctl. criod closing ctl
 * first SIGKILLs the process and its process group.
 *
 * AttachStream: the container's output that conmon reads for the log
 * (conmon.c out_read) is written to every attacher's pipes too, never
 * waiting for one: a pipe with CONMON_ATTACH_BUFFER bytes unread is a slow
 * attacher, dropped (its pipes and ctl closed). An attacher's stdin is a
 * pipe conmon reads and writes on to the container's stdin (or terminal),
 * with back-pressure per attacher. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <event2/event.h>

#include "conmon_internal.h"
#include "log.h"
#include "macro.h"
#include "spawn.h"
#include "status.h"
#include "stream_ctl.h"
#include "util.h"

#define MAX_STREAM_ARGS 4096
#define MAX_STREAM_ARG_BYTES (1u << 20)
#define CTL_ROUNDS 16     /* ctl records taken per event */
#define STDIN_CHUNK 16384 /* an attacher's input read at once */

typedef Criod__Internal__StreamResponse stream_resp;

/* ------------------------------------------------------------------ shared */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void free_event(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* A pipe; the end at index nb is non-blocking. */
static int make_pipe(int p[2], int nb)
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	int r = nb >= 0 ? set_nonblock(p[nb]) : 0;
	if (r < 0) {
		close_fd(&p[0]);
		close_fd(&p[1]);
	}
	return r;
}

/* The session's ctl pair: ours non-blocking, criod's as it comes. */
static int make_ctl(int *ours, int *theirs)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	int r = set_nonblock(sp[0]);
	if (r < 0) {
		close(sp[0]);
		close(sp[1]);
		return r;
	}
	*ours = sp[0];
	*theirs = sp[1];
	return 0;
}

/* Apply a resize record to the terminal fd. */
static void apply_resize(int fd, const struct stream_ctl *m, const char *req)
{
	if (m->a == 0 || m->b == 0 || m->a > USHRT_MAX || m->b > USHRT_MAX) {
		log_debug(req, "ignoring a resize out of range", "columns=%u rows=%u", m->a, m->b);
		return;
	}
	struct winsize ws = {.ws_col = (unsigned short)m->a, .ws_row = (unsigned short)m->b};
	if (ioctl(fd, TIOCSWINSZ, &ws) < 0)
		log_debug(req, "cannot resize the terminal", "error=\"%s\"", strerror(errno));
}

/* Read what criod sent on ctl: each resize record goes to on_resize. Returns
 * -EPIPE when criod closed (or broke) its end, else 0. Records of another
 * size or type are ignored. */
static int ctl_read(int fd, void (*on_resize)(void *ud, const struct stream_ctl *m), void *ud, const char *req)
{
	for (int i = 0; i < CTL_ROUNDS; i++) {
		struct stream_ctl m;
		char extra[sizeof(m) + 1];
		ssize_t n = recv(fd, extra, sizeof(extra), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -EPIPE;
		if ((size_t)n != sizeof(m)) {
			log_debug(req, "ignoring a ctl record of the wrong size", "bytes=%zd", n);
			continue;
		}
		memcpy(&m, extra, sizeof(m));
		if (m.type == STREAM_CTL_RESIZE)
			on_resize(ud, &m);
		else
			log_debug(req, "ignoring a ctl record", "type=%u", m.type);
	}
	return 0;
}

/* Reply with the session's fds: ctl first, then those present. */
static void reply_fds(struct ipc_call *call, int ctl, int in, int out, int err)
{
	stream_resp resp = CRIOD__INTERNAL__STREAM_RESPONSE__INIT;
	int fds[4];
	size_t n = 0;
	fds[n++] = ctl;
	if ((resp.stdin = in >= 0))
		fds[n++] = in;
	if ((resp.stdout = out >= 0))
		fds[n++] = out;
	if ((resp.stderr = err >= 0))
		fds[n++] = err;
	ipc_call_reply(call, &resp.base, fds, n);
}

/* ================================================================== ExecStream */

struct xstream {
	struct xstream *next;
	struct conmon *cm;
	struct ipc_call *call; /* until the reply */
	char req[72];
	unsigned seq;
	bool tty;
	pid_t runtime; /* the runtime's exec --detach, until reaped */
	pid_t runtime_pgid;
	bool runtime_reaped, runtime_done, timed_out;
	int runtime_wstatus;
	pid_t target; /* the exec'd process, once the runtime is done and it is ours */
	bool target_reaped;
	int target_wstatus;
	bool killed; /* ctl closed, or failed: only waiting to reap */
	char *pid_file, *log_file, *console_path;
	int console;   /* tty: the console socket the runtime sends the master on */
	int give[4];   /* criod's: ctl, stdin, stdout, stderr, until the reply */
	int ctl;       /* ours */
	struct event *ctl_ev;
	int watch[2];  /* out, err read ends (dups, never read), or the master: POLLHUP = no writer left */
	struct event *watch_ev[2];
	struct event *timer; /* the runtime's start-up */
};

static void xs_free(struct xstream *x)
{
	struct conmon *cm = x->cm;
	for (struct xstream **pp = &cm->xstreams; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			cm->n_xstreams--;
			break;
		}
	if (x->call)
		ipc_call_fail(x->call, STATUS_ABORTED, "the exec stream ended before it started");
	free_event(&x->ctl_ev);
	free_event(&x->timer);
	close_fd(&x->ctl);
	close_fd(&x->console);
	for (int i = 0; i < 4; i++)
		close_fd(&x->give[i]);
	for (int i = 0; i < 2; i++) {
		free_event(&x->watch_ev[i]);
		close_fd(&x->watch[i]);
	}
	if (x->pid_file)
		unlink(x->pid_file);
	if (x->log_file)
		unlink(x->log_file);
	free(x->pid_file);
	free(x->log_file);
	free(x->console_path);
	free(x);
}

/* SIGKILL the process and its group (the runtime makes it a session
 * leader: its group holds what it started), and a runtime still running
 * with its group. Only numbers that are our unreaped children (or the
 * group one of them leads) are signalled. */
static void xs_kill(struct xstream *x)
{
	if (x->target > 0 && !x->target_reaped) {
		if (getpgid(x->target) == x->target)
			kill(-x->target, SIGKILL);
		kill(x->target, SIGKILL);
	}
	if (x->runtime > 0) {
		kill(-x->runtime_pgid, SIGKILL);
		kill(x->runtime, SIGKILL);
	}
}

/* Whether nothing of this stream is left to reap (it can be freed). */
static bool xs_reaped(const struct xstream *x)
{
	return x->runtime_done && (x->target <= 0 || x->target_reaped);
}

/* Fail the pending call; the stream lives on until what it started is reaped. */
static void xs_fail(struct xstream *x, int status, const char *fmt, ...) _printf_(3, 4);
static void xs_fail(struct xstream *x, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn(x->req, "exec stream failed", "id=%s error=\"%s\"", x->cm->id, msg);
	if (x->call)
		ipc_call_fail(x->call, status, "%s", msg);
	x->call = NULL;
	x->killed = true;
	xs_kill(x);
}

/* The process has exited and nothing holds its output: report, end. */
static void xs_finish(struct xstream *x)
{
	struct stream_ctl m = {.type = STREAM_CTL_EXIT, .a = (uint32_t)conmon_exit_code_of(x->target_wstatus)};
	if (send(x->ctl, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(m))
		log_debug(x->req, "cannot send the exit on ctl", "error=\"%s\"", strerror(errno));
	log_info(x->req, "exec stream finished", "id=%s pid=%d exit_code=%d", x->cm->id, (int)x->target,
		 (int)m.a);
	xs_free(x);
}

/* No process holds the output any more (POLLHUP on every watched fd)? */
static bool xs_drained(struct xstream *x)
{
	bool all = true;
	for (int i = 0; i < 2; i++) {
		if (x->watch[i] < 0)
			continue;
		struct pollfd p = {.fd = x->watch[i], .events = POLLIN};
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
			continue;
		all = false;
	}
	return all;
}

static void xs_step(struct xstream *x);

static void xs_watch_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg) { xs_step(arg); }

/* The process exited: end now, or once its output's last holder is gone
 * (a background child may still write). Edge-triggered events on the
 * watched fds wake us at each write and at the last close, so criod's
 * reading is not raced. */
static void xs_after_exit(struct xstream *x)
{
	if (xs_drained(x)) {
		xs_finish(x);
		return;
	}
	for (int i = 0; i < 2; i++) {
		if (x->watch[i] < 0 || x->watch_ev[i])
			continue;
		x->watch_ev[i] = event_new(x->cm->base, x->watch[i], EV_READ | EV_ET | EV_PERSIST, xs_watch_cb, x);
		if (!x->watch_ev[i] || event_add(x->watch_ev[i], NULL) < 0) {
			log_warn(x->req, "cannot watch the exec stream's output; ending it", "id=%s", x->cm->id);
			xs_finish(x);
			return;
		}
	}
}

static void xs_resize(void *ud, const struct stream_ctl *m)
{
	struct xstream *x = ud;
	if (x->tty && x->watch[0] >= 0)
		apply_resize(x->watch[0], m, x->req);
}

static void xs_ctl_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct xstream *x = arg;
	if (ctl_read(x->ctl, xs_resize, x, x->req) == 0)
		return;
	/* criod went away: nothing may outlive its session. */
	free_event(&x->ctl_ev);
	if (!x->target_reaped)
		log_info(x->req, "exec stream closed by criod, killing the process", "id=%s pid=%d", x->cm->id,
			 (int)x->target);
	x->killed = true;
	xs_kill(x);
	if (x->target_reaped && x->target > 0 && !xs_drained(x))
		kill(-x->target, SIGKILL); /* what it left holding its output, in its group */
	if (xs_reaped(x))
		xs_free(x);
}

/* The pid of the exec'd process: from the pid file, and ours (a child, live
 * or a zombie, or one conmon_reap_all already reaped as a stray). 0 if none. */
static pid_t xs_find_target(struct xstream *x)
{
	pid_t pid;
	if (conmon_read_pid_file(x->pid_file, &pid) < 0)
		return 0;
	siginfo_t si = {0};
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
		return pid;
	struct conmon *cm = x->cm;
	for (unsigned i = 0; i < CONMON_STRAYS; i++)
		if (cm->strays[i].pid == pid) {
			cm->strays[i].pid = 0;
			x->target_reaped = true;
			x->target_wstatus = cm->strays[i].wstatus;
			return pid;
		}
	log_warn(x->req, "the exec'd process is not a child of conmon", "id=%s pid=%d", cm->id, (int)pid);
	return 0;
}

/* The runtime's exec --detach exited: the process runs (reply), or it
 * failed (fail the call). */
static void xs_runtime_exited(struct xstream *x)
{
	struct conmon *cm = x->cm;
	int wst = x->runtime_wstatus;
	x->runtime_done = true;
	free_event(&x->timer);
	x->target = xs_find_target(x);
	if (x->killed) {
		xs_kill(x);
		return;
	}
	if (x->timed_out) {
		xs_fail(x, STATUS_DEADLINE_EXCEEDED, "%s exec timed out after %d ms", cm->runtime,
			CONMON_RUNTIME_TIMEOUT_MS);
		return;
	}
	if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
		char msg[512] = "";
		conmon_runtime_log_error(x->log_file, msg, sizeof(msg));
		if (!msg[0])
			snprintf(msg, sizeof(msg), "%s exec exited with status %d", cm->runtime,
				 conmon_exit_code_of(wst));
		xs_fail(x, STATUS_INTERNAL, "cannot exec in container %s: %s", cm->id, msg);
		return;
	}
	if (x->target <= 0) {
		xs_fail(x, STATUS_INTERNAL, "cannot exec in container %s: no process from %s exec", cm->id,
			cm->runtime);
		return;
	}
	if (x->tty) {
		int master = -1;
		int r = conmon_console_receive(x->console, &master);
		close_fd(&x->console);
		if (r < 0) {
			xs_fail(x, STATUS_INTERNAL, "no terminal from the runtime's console socket: %s", strerror(-r));
			return;
		}
		x->watch[0] = master;
		/* criod's copies of the master: stdin and stdout as asked */
		for (int i = 1; i <= 2; i++)
			if (x->give[i] == -2 && (x->give[i] = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0) {
				xs_fail(x, STATUS_INTERNAL, "dup: %s", strerror(errno));
				return;
			}
	}
	x->ctl_ev = event_new(cm->base, x->ctl, EV_READ | EV_PERSIST, xs_ctl_cb, x);
	if (!x->ctl_ev || event_add(x->ctl_ev, NULL) < 0) {
		xs_fail(x, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	reply_fds(x->call, x->give[0], x->give[1], x->give[2], x->give[3]);
	x->call = NULL;
	for (int i = 0; i < 4; i++)
		close_fd(&x->give[i]); /* criod holds them now (or nobody: then ctl reads EOF) */
	log_info(x->req, "exec stream started", "id=%s pid=%d tty=%s", cm->id, (int)x->target,
		 x->tty ? "true" : "false");
}

/* Act on what was reaped. May free x. */
static void xs_step(struct xstream *x)
{
	if (x->runtime_reaped && !x->runtime_done)
		xs_runtime_exited(x);
	if (x->killed) {
		if (xs_reaped(x))
			xs_free(x);
		return;
	}
	if (x->runtime_done && x->target_reaped)
		xs_after_exit(x);
}

static void xs_timeout_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct xstream *x = arg;
	log_warn(x->req, "runtime exec did not return in time, killing it", "id=%s pid=%d", x->cm->id,
		 (int)x->runtime);
	x->timed_out = true;
	xs_kill(x);
}

/* The console socket for the runtime's exec --tty: a name in the abstract
 * namespace (a state directory's path may be too long for a socket's, and
 * nothing is left on disk), unguessable so nobody binds it first; the
 * runtime (Go) dials "@name". conmon_console_receive takes only root's
 * connection. */
static int console_listen(struct xstream *x)
{
	char rnd[33];
	int r = random_hex(rnd, 16);
	if (r < 0)
		return r;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "criod-console-%.12s-%u-%s", x->cm->id, x->seq, rnd);
	if (asprintf(&x->console_path, "@%s", sa.sun_path + 1) < 0) {
		x->console_path = NULL;
		return -ENOMEM;
	}
	x->console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (x->console < 0)
		return -errno;
	if (bind(x->console, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) < 0 ||
	    listen(x->console, 4) < 0)
		return -errno;
	return 0;
}

/* /dev/null for a stream not asked for. */
static int devnull(int flags)
{
	int fd = open("/dev/null", flags | O_CLOEXEC | O_NOCTTY);
	return fd < 0 ? -errno : fd;
}

static int xs_start(struct xstream *x, const Criod__Internal__ExecStreamRequest *req)
{
	struct conmon *cm = x->cm;
	char name[48];
	int child[3] = {-1, -1, -1}; /* the runtime's stdin, stdout, stderr */
	int r = 0;

	snprintf(name, sizeof(name), "exec-stream-%u.pid", x->seq);
	x->pid_file = conmon_path_in(cm->state_dir, name);
	snprintf(name, sizeof(name), "exec-stream-%u.log", x->seq);
	x->log_file = conmon_path_in(cm->state_dir, name);
	if (!x->pid_file || !x->log_file)
		return -ENOMEM;
	unlink(x->pid_file);
	unlink(x->log_file);
	r = make_ctl(&x->ctl, &x->give[0]);
	if (r < 0)
		return r;
	if (x->tty) {
		r = console_listen(x);
		if (r < 0)
			return r;
		/* the master comes with the runtime's exit: dup'ed for criod then */
		x->give[1] = req->stdin ? -2 : -1;
		x->give[2] = req->stdout ? -2 : -1;
		for (int i = 0; i < 3 && r >= 0; i++)
			r = child[i] = devnull(i == 0 ? O_RDONLY : O_WRONLY);
	} else {
		for (int i = 0; i < 3 && r >= 0; i++) {
			bool want = i == 0 ? req->stdin : i == 1 ? req->stdout : req->stderr;
			int p[2];
			if (!want) {
				r = child[i] = devnull(i == 0 ? O_RDONLY : O_WRONLY);
				continue;
			}
			if ((r = make_pipe(p, -1)) < 0)
				break;
			/* stdin: criod writes; stdout, stderr: criod reads, and we
			 * keep a duplicate to see the last writer go */
			child[i] = i == 0 ? p[0] : p[1];
			x->give[1 + i] = i == 0 ? p[1] : p[0];
			if (i > 0 && (x->watch[i - 1] = fcntl(p[0], F_DUPFD_CLOEXEC, 3)) < 0)
				r = -errno;
		}
	}
	if (r >= 0) {
		_cleanup_free_ const char **argv = calloc(req->n_cmd + 20, sizeof(*argv));
		size_t k = 0;
		if (!argv) {
			r = -ENOMEM;
			goto out;
		}
		argv[k++] = cm->runtime;
		argv[k++] = "--root";
		argv[k++] = cm->runtime_root;
		argv[k++] = "--log";
		argv[k++] = x->log_file;
		argv[k++] = "--log-format";
		argv[k++] = "json";
		argv[k++] = "exec";
		argv[k++] = "--detach";
		if (x->tty) {
			argv[k++] = "--tty";
			argv[k++] = "--console-socket";
			argv[k++] = x->console_path;
		}
		argv[k++] = "--pid-file";
		argv[k++] = x->pid_file;
		argv[k++] = cm->id;
		for (size_t i = 0; i < req->n_cmd; i++)
			argv[k++] = req->cmd[i];
		argv[k] = NULL;
		/* Its own session: the runtime and what it forks die together at a timeout. */
		struct spawn_opts o = {.argv = argv, .stdin_fd = child[0], .stdout_fd = child[1],
				       .stderr_fd = child[2], .new_session = 1};
		r = spawn_process(&o, &x->runtime);
		x->runtime_pgid = r == 0 ? x->runtime : 0;
	}
out:
	for (int i = 0; i < 3; i++)
		close_fd(&child[i]);
	if (r < 0)
		return r;
	struct timeval tv = {.tv_sec = CONMON_RUNTIME_TIMEOUT_MS / 1000};
	x->timer = evtimer_new(cm->base, xs_timeout_cb, x);
	if (!x->timer || evtimer_add(x->timer, &tv) < 0)
		return -ENOMEM; /* the runtime runs: the caller kills it */
	return 0;
}

void handle_exec_stream(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const Criod__Internal__ExecStreamRequest *req = (const void *)msg;
	const char *rid = ipc_call_request_id(call);

	if (req->n_cmd == 0 || !req->cmd[0] || !req->cmd[0][0]) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd is empty");
		return;
	}
	if (req->n_cmd > MAX_STREAM_ARGS) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd has more than %d arguments", MAX_STREAM_ARGS);
		return;
	}
	size_t bytes = 0;
	for (size_t i = 0; i < req->n_cmd; i++)
		bytes += strlen(req->cmd[i]) + 1;
	if (bytes > MAX_STREAM_ARG_BYTES) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd is longer than %u bytes", MAX_STREAM_ARG_BYTES);
		return;
	}
	if (!req->stdin && !req->stdout && !req->stderr) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "one of stdin, stdout and stderr must be true");
		return;
	}
	if (req->tty && req->stderr) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT,
			      "stderr must be false with tty: the terminal carries both outputs");
		return;
	}
	if (cm->state != ST_RUNNING || cm->reaped) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "container %s is not running", cm->id);
		return;
	}
	if (cm->n_xstreams >= CONMON_EXEC_STREAMS_MAX) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "%d exec streams are already open in container %s",
			      CONMON_EXEC_STREAMS_MAX, cm->id);
		return;
	}
	struct xstream *x = calloc(1, sizeof(*x));
	if (!x) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	x->cm = cm;
	x->seq = ++cm->xstream_seq;
	x->tty = req->tty;
	x->ctl = x->console = -1;
	for (int i = 0; i < 4; i++)
		x->give[i] = -1;
	x->watch[0] = x->watch[1] = -1;
	snprintf(x->req, sizeof(x->req), "%s", rid);
	x->next = cm->xstreams;
	cm->xstreams = x;
	cm->n_xstreams++;

	int r = xs_start(x, req);
	if (r < 0) {
		log_error_errno(r, rid, "cannot start exec stream", "id=%s", cm->id);
		ipc_call_fail(call, r == -ENOMEM ? STATUS_RESOURCE_EXHAUSTED : STATUS_INTERNAL,
			      "cannot run %s exec: %s", cm->runtime, strerror(-r));
		x->killed = true;
		xs_kill(x);
		if (x->runtime > 0)
			return; /* freed once reaped */
		x->runtime_done = true;
		xs_free(x);
		return;
	}
	x->call = call;
	log_info(rid, "exec stream starting", "id=%s runtime_pid=%d argc=%zu tty=%s stdin=%s stdout=%s stderr=%s",
		 cm->id, (int)x->runtime, req->n_cmd, req->tty ? "true" : "false", req->stdin ? "true" : "false",
		 req->stdout ? "true" : "false", req->stderr ? "true" : "false");
}

bool conmon_stream_reaped(struct conmon *cm, pid_t pid, int wstatus)
{
	for (struct xstream *x = cm->xstreams; x; x = x->next) {
		if (x->runtime > 0 && pid == x->runtime) {
			x->runtime = 0; /* its group may live on (and keeps the number reserved) */
			x->runtime_reaped = true;
			x->runtime_wstatus = wstatus;
			return true;
		}
		if (x->target > 0 && pid == x->target && !x->target_reaped) {
			x->target_reaped = true;
			x->target_wstatus = wstatus;
			return true;
		}
	}
	return false;
}

bool conmon_stream_tracks(struct conmon *cm, pid_t pid)
{
	for (struct xstream *x = cm->xstreams; x; x = x->next) {
		if (pid == x->runtime || (pid == x->target && !x->target_reaped))
			return true;
		pid_t t;
		if (!x->runtime_done && conmon_read_pid_file(x->pid_file, &t) == 0 && t == pid)
			return true;
	}
	return false;
}

void conmon_streams_process(struct conmon *cm)
{
	for (struct xstream *x = cm->xstreams, *next; x; x = next) {
		next = x->next;
		xs_step(x);
	}
}

/* ================================================================== AttachStream */

struct attacher {
	struct attacher *next;
	struct conmon *cm;
	char req[72];
	int ctl;
	struct event *ctl_ev;
	int out[2]; /* write ends of the pipes criod reads: stdout (the terminal's output), stderr */
	int in;     /* read end of the pipe criod writes stdin to */
	struct event *in_ev;
	bool had_stdin; /* it was given the container's stdin */
	bool in_eof;    /* its stdin ended (written out: then it counts for stdin_once) */
	char *buf;      /* input read, not yet written to the container */
	size_t off, len;
};

static void stdin_close(struct conmon *cm, const char *why, const char *req);

/* Drop an attacher: criod reads EOF on its pipes (after what is in them)
 * and on ctl. With stdin_once, the first one that had stdin closes it. */
static void attach_drop(struct attacher *a, const char *why)
{
	struct conmon *cm = a->cm;
	for (struct attacher **pp = &cm->attachers; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			cm->n_attachers--;
			break;
		}
	log_info(a->req, "attach ended", "id=%s reason=\"%s\"", cm->id, why);
	free_event(&a->ctl_ev);
	free_event(&a->in_ev);
	close_fd(&a->ctl);
	close_fd(&a->in);
	for (int i = 0; i < 2; i++)
		close_fd(&a->out[i]);
	if (a->had_stdin && cm->stdin_once)
		stdin_close(cm, "stdin_once: the first attach's session ended", a->req);
	free(a->buf);
	free(a);
}

/* The container's stdin is closed for good (stdin_once, or it went away):
 * every attacher's input is dropped. */
static void stdin_close(struct conmon *cm, const char *why, const char *req)
{
	if (cm->stdin_fd < 0)
		return;
	for (struct attacher *a = cm->attachers; a; a = a->next) {
		free_event(&a->in_ev);
		close_fd(&a->in);
		a->len = a->off = 0;
	}
	free_event(&cm->stdin_wev);
	close_fd(&cm->stdin_fd);
	log_info(req, "container stdin closed", "id=%s reason=\"%s\"", cm->id, why);
}

static void attach_in_cb(evutil_socket_t fd, short what, void *arg);

/* Write an attacher's pending input to the container's stdin. Returns
 * false while some is left (waiting for stdin_wev). */
static bool attach_flush(struct attacher *a)
{
	struct conmon *cm = a->cm;
	while (a->off < a->len && cm->stdin_fd >= 0) {
		ssize_t n = write(cm->stdin_fd, a->buf + a->off, a->len - a->off);
		if (n > 0) {
			a->off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (a->in_ev)
				event_del(a->in_ev);
			if (cm->stdin_wev)
				event_add(cm->stdin_wev, NULL);
			return false;
		}
		/* EPIPE: nothing reads the container's stdin any more */
		stdin_close(cm, n < 0 ? strerror(errno) : "short write", a->req);
		return true;
	}
	a->off = a->len = 0;
	if (a->in_ev)
		event_add(a->in_ev, NULL);
	return true;
}

static void stdin_writable_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct conmon *cm = arg;
	for (struct attacher *a = cm->attachers, *next; a; a = next) {
		next = a->next;
		if (a->off < a->len)
			attach_flush(a);
		if (cm->stdin_fd < 0)
			return;
	}
}

static void attach_in_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct attacher *a = arg;
	struct conmon *cm = a->cm;
	if (a->off < a->len || cm->stdin_fd < 0)
		return;
	ssize_t n = read(a->in, a->buf, STDIN_CHUNK);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		a->off = 0;
		a->len = (size_t)n;
		attach_flush(a);
		return;
	}
	/* EOF: criod closed its end of this attacher's stdin */
	free_event(&a->in_ev);
	close_fd(&a->in);
	a->in_eof = true;
	if (a->had_stdin && cm->stdin_once)
		stdin_close(cm, "stdin_once: the first attach's stdin ended", a->req);
}

static void attach_resize(void *ud, const struct stream_ctl *m)
{
	struct attacher *a = ud;
	struct conmon *cm = a->cm;
	int fd = cm->out[0].fd >= 0 ? cm->out[0].fd : cm->stdin_fd;
	if (cm->tty && fd >= 0)
		apply_resize(fd, m, a->req);
}

static void attach_ctl_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct attacher *a = arg;
	if (ctl_read(a->ctl, attach_resize, a, a->req) < 0)
		attach_drop(a, "closed by criod");
}

void conmon_attach_output(struct conmon *cm, int i, const char *data, size_t len)
{
	for (struct attacher *a = cm->attachers, *next; a; a = next) {
		next = a->next;
		int fd = a->out[i];
		if (fd < 0)
			continue;
		ssize_t n;
		do
			n = write(fd, data, len);
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)len)
			continue;
		if (n < 0 && errno == EPIPE)
			attach_drop(a, "criod closed its output");
		else
			attach_drop(a, "too slow: its output buffer is full");
	}
}

void conmon_attach_end_all(struct conmon *cm)
{
	while (cm->attachers)
		attach_drop(cm->attachers, "the container exited");
	free_event(&cm->stdin_wev);
}

void handle_attach_stream(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct conmon *cm = ud;
	const Criod__Internal__AttachStreamRequest *req = (const void *)msg;
	const char *rid = ipc_call_request_id(call);
	_cleanup_close_ int ctl_theirs = -1, in_theirs = -1, out_theirs = -1, err_theirs = -1;
	int r = 0;

	if (!req->stdin && !req->stdout && !req->stderr) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "one of stdin, stdout and stderr must be true");
		return;
	}
	if (cm->state != ST_RUNNING || cm->reaped) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "container %s is not running", cm->id);
		return;
	}
	if (cm->n_attachers >= CONMON_ATTACH_MAX) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "%d attachers are already attached to container %s",
			      CONMON_ATTACH_MAX, cm->id);
		return;
	}
	struct attacher *a = calloc(1, sizeof(*a));
	if (!a) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	a->cm = cm;
	a->ctl = a->in = a->out[0] = a->out[1] = -1;
	snprintf(a->req, sizeof(a->req), "%s", rid);
	r = make_ctl(&a->ctl, &ctl_theirs);
	for (int i = 0; i < 2 && r >= 0; i++) {
		if (!(i == 0 ? req->stdout : req->stderr && !cm->tty))
			continue;
		int p[2];
		if ((r = make_pipe(p, 1)) < 0)
			break;
		/* The bounded buffer: what the kernel lets the pipe hold. */
		if (fcntl(p[1], F_SETPIPE_SZ, CONMON_ATTACH_BUFFER) < 0)
			log_debug(rid, "cannot grow an attach pipe", "error=\"%s\"", strerror(errno));
		a->out[i] = p[1];
		if (i == 0)
			out_theirs = p[0];
		else
			err_theirs = p[0];
	}
	if (r >= 0 && req->stdin && cm->keep_stdin && cm->stdin_fd >= 0) {
		int p[2];
		if ((r = make_pipe(p, 0)) >= 0) {
			a->in = p[0];
			in_theirs = p[1];
			a->had_stdin = true;
			a->buf = malloc(STDIN_CHUNK);
			a->in_ev = event_new(cm->base, a->in, EV_READ | EV_PERSIST, attach_in_cb, a);
			if (!a->buf || !a->in_ev || event_add(a->in_ev, NULL) < 0)
				r = -ENOMEM;
		}
		if (r >= 0 && !cm->stdin_wev) {
			r = set_nonblock(cm->stdin_fd);
			cm->stdin_wev = r < 0 ? NULL : event_new(cm->base, cm->stdin_fd, EV_WRITE, stdin_writable_cb, cm);
			if (r >= 0 && !cm->stdin_wev)
				r = -ENOMEM;
		}
	}
	if (r >= 0) {
		a->ctl_ev = event_new(cm->base, a->ctl, EV_READ | EV_PERSIST, attach_ctl_cb, a);
		if (!a->ctl_ev || event_add(a->ctl_ev, NULL) < 0)
			r = -ENOMEM;
	}
	if (r < 0) {
		log_error_errno(r, rid, "cannot attach", "id=%s", cm->id);
		ipc_call_fail(call, r == -ENOMEM ? STATUS_RESOURCE_EXHAUSTED : STATUS_INTERNAL, "cannot attach: %s",
			      strerror(-r));
		free_event(&a->ctl_ev);
		free_event(&a->in_ev);
		close_fd(&a->ctl);
		close_fd(&a->in);
		close_fd(&a->out[0]);
		close_fd(&a->out[1]);
		free(a->buf);
		free(a);
		return;
	}
	a->next = cm->attachers;
	cm->attachers = a;
	cm->n_attachers++;
	reply_fds(call, ctl_theirs, in_theirs, out_theirs, err_theirs); /* frees call (and rid) */
	log_info(a->req, "attached", "id=%s stdin=%s stdout=%s stderr=%s attachers=%u", cm->id,
		 in_theirs >= 0 ? "true" : "false", out_theirs >= 0 ? "true" : "false",
		 err_theirs >= 0 ? "true" : "false", cm->n_attachers);
}

/* ================================================================== both */

void conmon_streams_abort(struct conmon *cm, const char *why)
{
	while (cm->xstreams) {
		struct xstream *x = cm->xstreams;
		if (x->call)
			ipc_call_fail(x->call, STATUS_ABORTED, "%s", why);
		x->call = NULL;
		xs_kill(x);
		xs_free(x); /* what is left is reaped as any stray */
	}
	conmon_attach_end_all(cm);
}
