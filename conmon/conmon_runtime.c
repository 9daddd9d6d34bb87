/* conmon: running the OCI runtime. Every runtime command conmon makes
 * (`run --detach` at Start, kill, update, delete) runs with a timeout, its
 * output kept for the error message: to completion inside its handler, or,
 * for the delete at the container's exit, while the loop goes on serving
 * (conmon_runtime_start, the same spawn and timeout); the runtime's JSON log,
 * the console socket and the pid file it leaves are read here too (see
 * conmon.c for the monitor as a whole). */
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

#define RUNTIME_STDERR_KEEP 4096

/* ------------------------------------------------------------------ runtime commands */

struct capture {
	char buf[RUNTIME_STDERR_KEEP];
	size_t len;
};

/* Read what the runtime said from fd; keep the last RUNTIME_STDERR_KEEP - 1
 * bytes. false at EOF (or an error): nothing more to read. */
static bool capture_from(struct capture *c, int fd)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	size_t k = (size_t)n;
	size_t room = sizeof(c->buf) - 1;
	if (k >= room) {
		memcpy(c->buf, tmp + k - room, room);
		c->len = room;
	} else {
		if (c->len + k > room) {
			size_t drop = c->len + k - room;
			memmove(c->buf, c->buf + drop, c->len - drop);
			c->len -= drop;
		}
		memcpy(c->buf + c->len, tmp, k);
		c->len += k;
	}
	c->buf[c->len] = '\0';
	return true;
}

static void capture_read(struct pollfd *p, void *ud)
{
	if (!capture_from(ud, p->fd))
		p->fd = -1;
}

/* Whatever is left in the pipe once the runtime has exited. */
static void capture_drain(struct capture *c, int fd)
{
	for (int i = 0; i < 64 && fd >= 0 && capture_from(c, fd); i++)
		;
}

/* The last non-empty line of what the runtime said; of a logrus line
 * (time="..." level=error msg="...") only the message. */
static void last_line(struct capture *c, char *out, size_t size)
{
	char *s = c->buf;
	size_t n = c->len;
	s[n] = '\0';
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		s[--n] = '\0';
	char *nl = strrchr(s, '\n');
	char *line = nl ? nl + 1 : s;
	char *m = strstr(line, " msg=\"");
	if (m && strncmp(line, "time=", 5) == 0) {
		size_t k = 0;
		for (const char *p = m + 6; *p && *p != '"' && k + 1 < size; p++) {
			if (*p == '\\' && p[1])
				p++;
			out[k++] = *p;
		}
		out[k] = '\0';
	} else {
		conmon_copy_str(out, size, line);
	}
	conmon_sanitize_line(out);
}

static int delete_force(struct conmon *cm, const char *req, char *err, size_t errlen);

/* Start `<runtime> --root <root> args...` with its stdout and stderr on one
 * pipe: *pid and *rd (the pipe's read end, non-blocking) on success. */
static int runtime_spawn(struct conmon *cm, const char *req, const char *const *args, size_t nargs, pid_t *pid,
			 int *rd, char *err, size_t errlen)
{
	_cleanup_free_ const char **argv = calloc(nargs + 4, sizeof(*argv));
	_cleanup_close_ int r_end = -1, w_end = -1;
	int p[2];

	err[0] = '\0';
	if (!argv)
		return -ENOMEM;
	argv[0] = cm->runtime;
	argv[1] = "--root";
	argv[2] = cm->runtime_root;
	for (size_t i = 0; i < nargs; i++)
		argv[3 + i] = args[i];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	r_end = p[0];
	w_end = p[1];
	if (fcntl(r_end, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	struct spawn_opts o = {.argv = argv, .stdin_fd = -1, .stdout_fd = w_end, .stderr_fd = w_end};
	int r = spawn_process(&o, pid);
	if (r < 0) {
		snprintf(err, errlen, "cannot run %s: %s", cm->runtime, strerror(-r));
		return log_error_errno(r, req, "cannot run the runtime", "runtime=%s", cm->runtime);
	}
	*rd = TAKE_FD(r_end);
	return 0;
}

/* What the end of runtime command cmd means: r is the wait's result, wst
 * its wait status, cap what it said. 0 when it exited 0; otherwise err says
 * why and it is logged. */
static int runtime_result(struct conmon *cm, const char *req, const char *cmd, int r, int wst, struct capture *cap,
			  char *err, size_t errlen)
{
	if (r == -ETIMEDOUT) {
		snprintf(err, errlen, "%s %s timed out after %d ms", cm->runtime, cmd, CONMON_RUNTIME_TIMEOUT_MS);
		return log_error_errno(r, req, "runtime command timed out", "command=%s", cmd);
	}
	if (r < 0) {
		snprintf(err, errlen, "waiting for %s %s: %s", cm->runtime, cmd, strerror(-r));
		return log_error_errno(r, req, "cannot wait for the runtime", "command=%s", cmd);
	}
	if (WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
		return 0;
	char line[ERRMSG_MAX];
	last_line(cap, line, sizeof(line));
	if (line[0])
		conmon_copy_str(err, errlen, line);
	else
		snprintf(err, errlen, "%s %s exited with status %d", cm->runtime, cmd, conmon_exit_code_of(wst));
	log_warn(req, "runtime command failed", "command=%s status=%d error=\"%s\"", cmd, conmon_exit_code_of(wst),
		 err);
	return -EIO;
}

/* Run `<runtime> --root <root> args...` to completion (at most
 * CONMON_RUNTIME_TIMEOUT_MS): its stdout and stderr share one pipe whose
 * last line becomes the error message. 0 when it exited 0. */
int conmon_runtime_run(struct conmon *cm, const char *req, const char *const *args, size_t nargs, char *err,
		       size_t errlen)
{
	_cleanup_close_ int rd = -1;
	pid_t pid;
	int r = runtime_spawn(cm, req, args, nargs, &pid, &rd, err, errlen);
	if (r < 0)
		return r;
	struct capture cap = {.len = 0};
	struct pollfd pf = {.fd = rd, .events = POLLIN};
	int wst = 0;
	r = conmon_wait_child(cm, pid, now_monotonic_ns() + (int64_t)CONMON_RUNTIME_TIMEOUT_MS * 1000000, true, &pf, 1,
		       capture_read, &cap, &wst);
	capture_drain(&cap, pf.fd);
	return runtime_result(cm, req, args[0], r, wst, &cap, err, errlen);
}

/* ------------------------------------------------------------------ a runtime command without blocking */

/* The one runtime command conmon runs while its loop goes on serving: the
 * same spawn, pipe and timeout as conmon_runtime_run, but its exit comes
 * through SIGCHLD (conmon_reap_all, then conmon_process_exits), its output
 * through an event and its deadline through a timer. */
struct runtime_async {
	char req[72];
	const char *cmd; /* args[0], a literal */
	pid_t pid;       /* until reaped (or given up on), then 0 */
	int rd;
	bool reaped, timed_out;
	int wstatus;
	int64_t deadline; /* monotonic ns: SIGKILL then, and give up 10 s later */
	struct capture cap;
	struct event *out_ev, *timer;
	runtime_done_fn done;
};

#define RUNTIME_KILL_WAIT_MS 10000 /* after the SIGKILL of a timeout, as conmon_wait_child */

static void async_complete(struct conmon *cm)
{
	struct runtime_async *ra = cm->rt_async;
	char err[ERRMSG_MAX] = "";
	cm->rt_async = NULL;
	if (ra->out_ev)
		event_free(ra->out_ev);
	if (ra->timer)
		event_free(ra->timer);
	capture_drain(&ra->cap, ra->rd);
	if (ra->rd >= 0)
		close(ra->rd);
	int r = runtime_result(cm, ra->req[0] ? ra->req : NULL, ra->cmd, ra->timed_out ? -ETIMEDOUT : 0, ra->wstatus,
			       &ra->cap, err, sizeof(err));
	runtime_done_fn done = ra->done;
	free(ra);
	done(cm, r, err);
}

static void async_out_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct runtime_async *ra = ((struct conmon *)arg)->rt_async;
	for (int i = 0; ra && i < READ_ROUNDS; i++)
		if (!capture_from(&ra->cap, ra->rd)) {
			event_del(ra->out_ev); /* EOF: the fd is closed at the end */
			break;
		}
}

static void async_timer_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct conmon *cm = arg;
	struct runtime_async *ra = cm->rt_async;
	if (!ra)
		return;
	if (!ra->timed_out) {
		kill(ra->pid, SIGKILL);
		ra->timed_out = true;
		struct timeval tv = {RUNTIME_KILL_WAIT_MS / 1000, 0};
		evtimer_add(ra->timer, &tv);
		return;
	}
	/* Unkillable (D state): stop waiting; conmon_reap_all reaps it later. */
	ra->pid = 0;
	async_complete(cm);
}

int conmon_runtime_start(struct conmon *cm, const char *req, const char *const *args, size_t nargs,
			 runtime_done_fn done, char *err, size_t errlen)
{
	if (cm->rt_async)
		return -EBUSY;
	struct runtime_async *ra = calloc(1, sizeof(*ra));
	if (!ra)
		return -ENOMEM;
	ra->rd = -1;
	ra->cmd = args[0];
	ra->done = done;
	conmon_copy_str(ra->req, sizeof(ra->req), req ? req : "");
	int r = runtime_spawn(cm, req, args, nargs, &ra->pid, &ra->rd, err, errlen);
	if (r < 0) {
		free(ra);
		return r;
	}
	/* Set before the loop runs again: only the loop (and handlers that
	 * reap, conmon_wait_child) reap, and both look here. */
	cm->rt_async = ra;
	ra->deadline = now_monotonic_ns() + (int64_t)CONMON_RUNTIME_TIMEOUT_MS * 1000000;
	struct timeval tv = {CONMON_RUNTIME_TIMEOUT_MS / 1000, (CONMON_RUNTIME_TIMEOUT_MS % 1000) * 1000};
	ra->out_ev = event_new(cm->base, ra->rd, EV_READ | EV_PERSIST, async_out_cb, cm);
	ra->timer = evtimer_new(cm->base, async_timer_cb, cm);
	if (!ra->out_ev || !ra->timer || event_add(ra->out_ev, NULL) < 0 || evtimer_add(ra->timer, &tv) < 0) {
		log_warn(req, "cannot watch the runtime from the loop, waiting for it", "command=%s", ra->cmd);
		conmon_runtime_async_wait(cm);
	}
	return 0;
}

bool conmon_runtime_async_reaped(struct conmon *cm, pid_t pid, int wstatus)
{
	struct runtime_async *ra = cm->rt_async;
	if (!ra || ra->pid <= 0 || pid != ra->pid)
		return false;
	ra->pid = 0;
	ra->reaped = true;
	ra->wstatus = wstatus;
	return true;
}

void conmon_runtime_async_process(struct conmon *cm)
{
	if (cm->rt_async && cm->rt_async->reaped)
		async_complete(cm);
}

void conmon_runtime_async_wait(struct conmon *cm)
{
	struct runtime_async *ra = cm->rt_async;
	if (!ra)
		return;
	if (ra->out_ev)
		event_del(ra->out_ev);
	if (ra->timer)
		event_del(ra->timer);
	if (!ra->reaped && ra->pid > 0) {
		struct pollfd pf = {.fd = ra->rd, .events = POLLIN};
		int wst = 0;
		pid_t pid = ra->pid;
		int64_t deadline = ra->timed_out ? now_monotonic_ns() : ra->deadline;
		/* conmon_wait_child takes it as its own (cm->sync_pid) */
		ra->pid = 0;
		int r = conmon_wait_child(cm, pid, deadline, true, &pf, 1, capture_read, &ra->cap, &wst);
		ra->reaped = cm->sync_reaped;
		ra->wstatus = wst;
		ra->timed_out = ra->timed_out || r == -ETIMEDOUT;
		if (pf.fd < 0) { /* EOF seen */
			close(ra->rd);
			ra->rd = -1;
		}
	}
	async_complete(cm);
}

static int delete_force(struct conmon *cm, const char *req, char *err, size_t errlen)
{
	const char *args[] = {"delete", "--force", cm->id};
	return conmon_runtime_run(cm, req, args, ARRAY_SIZE(args), err, errlen);
}

/* ------------------------------------------------------------------ create */

/* The last error the runtime logged (JSON lines: {"level":"error","msg":...}). */
void conmon_runtime_log_error(const char *path, char *out, size_t size)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (!path || read_file(path, 1 << 20, &text, &len) < 0)
		return;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		json_object *o = json_tokener_parse(line);
		json_object *lvl, *m;
		if (o && json_object_object_get_ex(o, "level", &lvl) && json_object_object_get_ex(o, "msg", &m) &&
		    strcmp(json_object_get_string(lvl), "error") == 0) {
			conmon_copy_str(out, size, json_object_get_string(m));
			conmon_sanitize_line(out);
		}
		json_object_put(o);
		line = nl ? nl + 1 : NULL;
	}
}

static void runtime_log_error(struct conmon *cm, char *out, size_t size)
{
	_cleanup_free_ char *path = conmon_path_in(cm->state_dir, CONMON_RUNTIME_LOG);
	conmon_runtime_log_error(path, out, size);
}

/* Take the pty master the runtime sent on the console socket. */
int conmon_console_receive(int lfd, int *master)
{
	_cleanup_close_ int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return errno == EAGAIN ? -ENOTCONN : -errno;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || cred.uid != geteuid())
		return -EPERM;
	struct timeval tv = {.tv_sec = 5};
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char name[4096];
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = name, .iov_len = sizeof(name)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(c, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	int fd = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < k; i++) {
			if (fd < 0)
				fd = in[i];
			else
				close(in[i]);
		}
	}
	if (fd < 0)
		return -EBADMSG;
	*master = fd;
	return 0;
}

int conmon_read_pid_file(const char *path, pid_t *out)
{
	_cleanup_free_ char *text = NULL;
	int r = read_file(path, 64, &text, NULL);
	if (r < 0)
		return r;
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || v <= 1 || v > INT_MAX)
		return -EBADMSG;
	*out = (pid_t)v;
	return 0;
}

/* `<runtime> run --detach`: create and start the container in one go. */
int conmon_run_container(struct conmon *cm, char *err, size_t errlen)
{
	_cleanup_close_ int in_r = -1, out_w = -1, err_w = -1, console = -1, devnull = -1;
	_cleanup_free_ char *pid_file = conmon_path_in(cm->bundle, "pid");
	_cleanup_free_ char *rt_log = conmon_path_in(cm->state_dir, CONMON_RUNTIME_LOG);
	_cleanup_free_ char *console_path = conmon_path_in(cm->state_dir, CONMON_CONSOLE_SOCKET);
	int p[2], r;

	if (!pid_file || !rt_log || !console_path)
		return -ENOMEM;
	unlink(pid_file);
	unlink(rt_log);
	if (cm->tty) {
		console = ipc_listen_unix(console_path, 0600);
		if (console < 0) {
			snprintf(err, errlen, "cannot listen on %s: %s", console_path, strerror(-console));
			return console;
		}
		devnull = open("/dev/null", O_WRONLY | O_CLOEXEC | O_NOCTTY);
		if (devnull < 0)
			return -errno;
	} else {
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		cm->out[0].fd = p[0];
		out_w = p[1];
		if (pipe2(p, O_CLOEXEC) < 0)
			return -errno;
		cm->out[1].fd = p[0];
		err_w = p[1];
		if (cm->keep_stdin) {
			if (pipe2(p, O_CLOEXEC) < 0)
				return -errno;
			in_r = p[0];
			cm->stdin_fd = p[1];
		}
	}

	const char *argv[] = {cm->runtime, "--root", cm->runtime_root, "--log", rt_log, "--log-format", "json",
			      "run", "--detach", "--bundle", cm->bundle, "--pid-file", pid_file,
			      cm->tty ? "--console-socket" : cm->id, cm->tty ? console_path : NULL, cm->tty ? cm->id : NULL,
			      NULL};
	struct spawn_opts o = {
		.argv = argv,
		.stdin_fd = in_r,
		.stdout_fd = cm->tty ? devnull : out_w,
		.stderr_fd = cm->tty ? devnull : err_w,
	};
	pid_t pid;
	r = spawn_process(&o, &pid);
	if (r < 0) {
		if (cm->tty)
			unlink(console_path);
		snprintf(err, errlen, "cannot run %s: %s", cm->runtime, strerror(-r));
		return r;
	}
	/* Only the container holds the other ends now: EOF when it is done. */
	closep(&out_w);
	out_w = -1;
	closep(&err_w);
	err_w = -1;
	closep(&in_r);
	in_r = -1;

	int wst = 0;
	/* Its orphans are runc's own until it exits: nothing else to reap. */
	r = conmon_wait_child(cm, pid, now_monotonic_ns() + (int64_t)CONMON_CREATE_TIMEOUT_MS * 1000000, false, NULL, 0,
		       NULL, NULL, &wst);
	/* The runtime is done with the console socket's name; a connection
	 * it made waits in the backlog. */
	if (cm->tty)
		unlink(console_path);
	if (r == -ETIMEDOUT) {
		snprintf(err, errlen, "%s run timed out after %d ms", cm->runtime, CONMON_CREATE_TIMEOUT_MS);
		char ignored[ERRMSG_MAX];
		delete_force(cm, NULL, ignored, sizeof(ignored));
		return r;
	}
	if (r < 0) {
		snprintf(err, errlen, "waiting for %s run: %s", cm->runtime, strerror(-r));
		return r;
	}
	if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
		snprintf(err, errlen, "%s run exited with status %d", cm->runtime, conmon_exit_code_of(wst));
		runtime_log_error(cm, err, errlen);
		return -EIO;
	}

	r = conmon_read_pid_file(pid_file, &cm->pid);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the container's pid from %s: %s", pid_file, strerror(-r));
		goto undo;
	}
	/* It must be our child now (we are its subreaper); do not reap it yet. */
	siginfo_t si = {0};
	if (waitid(P_PID, (id_t)cm->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		r = -errno;
		snprintf(err, errlen, "the container's init %d is not a child of conmon: %s", (int)cm->pid,
			 strerror(errno));
		goto undo;
	}
	if (cm->tty) {
		int master = -1;
		r = conmon_console_receive(console, &master);
		if (r < 0) {
			snprintf(err, errlen, "no terminal from the runtime's console socket: %s", strerror(-r));
			goto undo;
		}
		cm->out[0].fd = master;
		if (cm->keep_stdin) {
			cm->stdin_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
			if (cm->stdin_fd < 0) {
				r = -errno;
				snprintf(err, errlen, "dup: %s", strerror(errno));
				goto undo;
			}
		}
		closep(&console);
		console = -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cm->out); i++) {
		int fd = cm->out[i].fd;
		cm->out[i].fd = -1;
		if (fd < 0)
			continue;
		r = conmon_out_start(cm, &cm->out[i], fd, cm->tty || i == 0 ? "stdout" : "stderr");
		if (r < 0) {
			snprintf(err, errlen, "cannot watch the container's output: %s", strerror(-r));
			goto undo;
		}
	}
	conmon_oom_setup(cm);
	return 0;

undo:;
	char ignored[ERRMSG_MAX];
	delete_force(cm, NULL, ignored, sizeof(ignored));
	return r;
}
