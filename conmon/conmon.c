/* conmon: the monitor of one container.
 *
 * Command line (the exact options spawnd passes; conmon.h says more):
 *
 *   conmon --id <64 hex> --bundle <dir> --runtime <path> --runtime-root <dir>
 *          --log-path <file> --log-root <dir> --state-dir <dir> --socket <path> --allowed-uid <uid>
 *          [--tty] [--stdin] [--stdin-once] [--sync-fd <n>] [--config <criod.conf>]
 *          [--log-level <level>] [--seccomp-log]
 *
 * It becomes a child subreaper, opens the log, serves its socket and
 * reports "ok 0\n" (the container is CREATED) or "error <message>\n" on
 * the sync fd (stdout without one). The runtime itself is run once, by
 * Start: `<runtime> run --detach` with the container's stdio (pipes, or a
 * console socket with --tty), so the container's init process becomes its
 * child - one runtime start-up instead of create's and start's, as
 * containerd too runs the runtime only when a container starts. Then it:
 *   - logs the container's output to --log-path in the CRI format (conmon_crilog.c);
 *   - reaps the init process and records its exit status, the time and
 *     whether the kernel OOM-killed in its memory cgroup, durably in
 *     <state-dir>/state.pb (as it does for CREATED and RUNNING);
 *   - answers criod on --socket: Ping, State, Start, Kill, Exec, ReopenLog,
 *     Update, Delete, ExecStream, AttachStream (proto/internal/conmon.proto;
 *     the streams are conmon_stream.c), with the same SO_PEERCRED checks as
 *     the root daemons (root and --allowed-uid only).
 *
 * One process, one thread, one libevent loop. Every runtime command is
 * started with spawn_process(). run/kill/update/delete are short and run
 * to completion inside their handler (bounded by a timeout); Exec is
 * asynchronous: its output pipes are read by events and its runtime process
 * is reaped by the SIGCHLD handler, so State and Kill keep answering while
 * an exec runs. As a subreaper conmon also inherits the runtime's orphans;
 * the SIGCHLD handler reaps every child and ignores those it does not know.
 *
 * If conmon dies, the container keeps running (its init is reparented);
 * criod notices the dead socket and asks the runtime (see conmon.h). */
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

#define ERRMSG_MAX 512
#define MAX_EXEC_ARGS 4096
#define MAX_EXEC_ARG_BYTES (1u << 20)
#define MAX_EXEC_TIMEOUT_MS (100LL * 24 * 3600 * 1000)
#define MAX_RESOURCES_JSON (1u << 20)
#define RUNTIME_STDERR_KEEP 4096
#define READ_ROUNDS 16   /* reads per event, so one busy stream cannot starve the rest */
#define DRAIN_ROUNDS 1024 /* reads when draining at an exit: more than a full pipe, bounded for writers that go on */
#define DELETE_REAP_WAIT_MS 2000
#define CGROUP_V1_MEMORY "/sys/fs/cgroup/memory"

#define STATE_WAIT_MAX_MS 60000
#define STATE_WAITS_MAX 64

/* ------------------------------------------------------------------ small helpers */

char *conmon_path_in(const char *dir, const char *name)
{
	char *p;
	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* Copy src into dst (size > 0), cut short if need be. */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* One printable line: control characters become spaces, bounded. */
static void sanitize_line(char *s)
{
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

int32_t conmon_exit_code_of(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return 255;
}

static void reap_all(struct conmon *cm);
static void state_waits_end(struct conmon *cm);

/* Wait for our child pid until deadline (monotonic ns); on timeout it is
 * SIGKILLed and reaped, and -ETIMEDOUT returned. Extra pollfds (pipes) are
 * serviced by on_fd meanwhile. With reap_others, every other child that
 * exits meanwhile is reaped too (their exits are processed later, from the
 * loop): a dying container init waits for the zombies of its pid namespace,
 * which may be ours (exec'd processes whose runtime died), so `runtime
 * delete` would wait for a kill that cannot complete. */
typedef void (*fd_ready_fn)(struct pollfd *p, void *ud);

static int wait_child(struct conmon *cm, pid_t pid, int64_t deadline, bool reap_others, struct pollfd *extra,
		      size_t n_extra, fd_ready_fn on_fd, void *ud, int *wstatus)
{
	_cleanup_close_ int pidfd = pidfd_open_pid(pid);
	struct pollfd pfd[4];
	bool timed_out = false;

	if (n_extra > 3)
		return -EINVAL;
	cm->sync_pid = pid;
	cm->sync_reaped = false;
	for (;;) {
		if (reap_others) {
			reap_all(cm);
		} else {
			pid_t w = waitpid(pid, &cm->sync_wstatus, WNOHANG);
			if (w == pid)
				cm->sync_reaped = true;
			else if (w < 0 && errno != EINTR) {
				cm->sync_pid = 0;
				return -errno;
			}
		}
		if (cm->sync_reaped) {
			*wstatus = cm->sync_wstatus;
			cm->sync_pid = 0;
			return timed_out ? -ETIMEDOUT : 0;
		}
		int64_t left = (deadline - now_monotonic_ns()) / 1000000;
		if (left <= 0 && !timed_out) {
			kill(pid, SIGKILL);
			timed_out = true;
			deadline = now_monotonic_ns() + 10LL * 1000000000; /* SIGKILL, then reap */
			continue;
		}
		if (left <= 0) {
			/* Unkillable (D state): stop waiting; the SIGCHLD handler reaps it later. */
			cm->sync_pid = 0;
			return -ETIMEDOUT;
		}
		size_t n = 0;
		for (size_t i = 0; i < n_extra; i++)
			pfd[n++] = extra[i];
		if (pidfd >= 0)
			pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		/* A SIGCHLD interrupts poll; the short timeout covers one that
		 * came just before it. */
		int t = left > 50 ? 50 : (int)left;
		int pr = poll(pfd, n, t);
		if (pr < 0 && errno != EINTR) {
			kill(pid, SIGKILL);
			deadline = now_monotonic_ns();
			continue;
		}
		if (pr > 0 && on_fd)
			for (size_t i = 0; i < n_extra; i++) {
				if (extra[i].fd >= 0 && pfd[i].revents)
					on_fd(&pfd[i], ud);
				extra[i].fd = pfd[i].fd; /* on_fd sets fd to -1 at EOF */
			}
	}
}

/* ------------------------------------------------------------------ runtime commands */

struct capture {
	char buf[RUNTIME_STDERR_KEEP];
	size_t len;
};

/* Read what the runtime said; keep the last RUNTIME_STDERR_KEEP - 1 bytes. */
static void capture_read(struct pollfd *p, void *ud)
{
	struct capture *c = ud;
	char tmp[4096];
	ssize_t n = read(p->fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		p->fd = -1;
		return;
	}
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
		copy_str(out, size, line);
	}
	sanitize_line(out);
}

static int delete_force(struct conmon *cm, const char *req, char *err, size_t errlen);
static int run_container(struct conmon *cm, char *err, size_t errlen);

/* Run `<runtime> --root <root> args...` to completion (at most
 * CONMON_RUNTIME_TIMEOUT_MS): its stdout and stderr share one pipe whose
 * last line becomes the error message. 0 when it exited 0. */
static int runtime_run(struct conmon *cm, const char *req, const char *const *args, size_t nargs, char *err,
		       size_t errlen)
{
	_cleanup_free_ const char **argv = calloc(nargs + 4, sizeof(*argv));
	_cleanup_close_ int rd = -1, wr = -1;
	int p[2];
	pid_t pid;

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
	rd = p[0];
	wr = p[1];
	if (fcntl(rd, F_SETFL, O_NONBLOCK) < 0)
		return -errno;
	struct spawn_opts o = {.argv = argv, .stdin_fd = -1, .stdout_fd = wr, .stderr_fd = wr};
	int r = spawn_process(&o, &pid);
	if (r < 0) {
		snprintf(err, errlen, "cannot run %s: %s", cm->runtime, strerror(-r));
		return log_error_errno(r, req, "cannot run the runtime", "runtime=%s", cm->runtime);
	}
	close(wr);
	wr = -1;

	struct capture cap = {.len = 0};
	struct pollfd pf = {.fd = rd, .events = POLLIN};
	int wst = 0;
	r = wait_child(cm, pid, now_monotonic_ns() + (int64_t)CONMON_RUNTIME_TIMEOUT_MS * 1000000, true, &pf, 1,
		       capture_read, &cap, &wst);
	for (int i = 0; i < 64 && pf.fd >= 0; i++) /* whatever is left in the pipe */
		capture_read(&pf, &cap);
	if (r == -ETIMEDOUT) {
		snprintf(err, errlen, "%s %s timed out after %d ms", cm->runtime, args[0], CONMON_RUNTIME_TIMEOUT_MS);
		return log_error_errno(r, req, "runtime command timed out", "command=%s", args[0]);
	}
	if (r < 0) {
		snprintf(err, errlen, "waiting for %s %s: %s", cm->runtime, args[0], strerror(-r));
		return log_error_errno(r, req, "cannot wait for the runtime", "command=%s", args[0]);
	}
	if (WIFEXITED(wst) && WEXITSTATUS(wst) == 0)
		return 0;
	char line[ERRMSG_MAX];
	last_line(&cap, line, sizeof(line));
	if (line[0])
		copy_str(err, errlen, line);
	else
		snprintf(err, errlen, "%s %s exited with status %d", cm->runtime, args[0], conmon_exit_code_of(wst));
	log_warn(req, "runtime command failed", "command=%s status=%d error=\"%s\"", args[0], conmon_exit_code_of(wst),
		 err);
	return -EIO;
}

static int delete_force(struct conmon *cm, const char *req, char *err, size_t errlen)
{
	const char *args[] = {"delete", "--force", cm->id};
	return runtime_run(cm, req, args, ARRAY_SIZE(args), err, errlen);
}

/* ------------------------------------------------------------------ durable state */

static int persist_state(struct conmon *cm)
{
	Criod__Internal__ContainerStateResponse s = CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__INIT;
	uint8_t buf[256];
	s.state = cm->state;
	s.pid = cm->pid;
	s.created_at = cm->created_at;
	s.started_at = cm->started_at;
	s.finished_at = cm->finished_at;
	s.exit_code = cm->exit_code;
	s.oom_killed = cm->oom_killed;
	size_t n = criod__internal__container_state_response__get_packed_size(&s);
	if (n > sizeof(buf))
		return -EMSGSIZE;
	criod__internal__container_state_response__pack(&s, buf);
	_cleanup_free_ char *path = conmon_path_in(cm->state_dir, CONMON_STATE_FILE);
	int r = path ? write_file_atomic(path, buf, n, 0644) : -ENOMEM;
	if (r < 0)
		return log_error_errno(r, NULL, "cannot record container state", "path=%s/%s", cm->state_dir,
				       CONMON_STATE_FILE);
	return 0;
}

/* ------------------------------------------------------------------ OOM accounting */

static int read_oom_kill(const char *file, uint64_t *out)
{
	_cleanup_free_ char *text = NULL;
	int r = read_file(file, 64 << 10, &text, NULL);
	if (r < 0)
		return r;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		unsigned long long v;
		if (sscanf(line, "oom_kill %llu", &v) == 1) {
			*out = v;
			return 0;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

/* Find the init's memory cgroup (v1 "N:memory:/path", else v2 "0::/path")
 * while it runs and remember its OOM-kill counter. */
static void oom_setup(struct conmon *cm)
{
	char proc[64];
	_cleanup_free_ char *text = NULL;
	snprintf(proc, sizeof(proc), "/proc/%d/cgroup", (int)cm->pid);
	if (read_file(proc, 64 << 10, &text, NULL) < 0)
		return;
	char *v1 = NULL, *v2 = NULL;
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (c2) {
			*c2 = '\0';
			const char *ctrls = c1 + 1;
			/* "memory" as one of the comma-separated controllers */
			for (const char *p = ctrls; p && *p;) {
				const char *comma = strchr(p, ',');
				size_t len = comma ? (size_t)(comma - p) : strlen(p);
				if (len == 6 && strncmp(p, "memory", 6) == 0)
					v1 = c2 + 1;
				p = comma ? comma + 1 : NULL;
			}
			if (!*ctrls && c1 == line + 1 && line[0] == '0')
				v2 = c2 + 1;
		}
		line = nl ? nl + 1 : NULL;
	}
	char *file = NULL;
	uint64_t base = 0;
	if (v1 && asprintf(&file, CGROUP_V1_MEMORY "%s/memory.oom_control", strcmp(v1, "/") ? v1 : "") < 0)
		file = NULL;
	if (file && read_oom_kill(file, &base) < 0) {
		free(file);
		file = NULL;
	}
	if (!file && v2 && asprintf(&file, "/sys/fs/cgroup%s/memory.events", strcmp(v2, "/") ? v2 : "") < 0)
		file = NULL;
	if (file && read_oom_kill(file, &base) < 0) {
		free(file);
		file = NULL;
	}
	if (!file) {
		log_warn(NULL, "no memory cgroup OOM counter found; OOM kills will not be reported", "pid=%d",
			 (int)cm->pid);
		return;
	}
	cm->oom_file = file;
	cm->oom_base = base;
	log_debug(NULL, "watching OOM kills", "file=%s oom_kill=%" PRIu64, file, base);
}

/* ------------------------------------------------------------------ container output */

static void note_log_result(struct conmon *cm, int r);

/* The stream ended: a pending partial line is logged (P), the fd closed. */
static void out_close(struct out_src *o)
{
	struct conmon *cm = o->cm;
	if (o->fd < 0)
		return;
	note_log_result(cm, crilog_stream_flush(&cm->log, &o->s, now_realtime_ns()));
	if (o->ev)
		event_free(o->ev);
	o->ev = NULL;
	close(o->fd);
	o->fd = -1;
}

static void note_log_result(struct conmon *cm, int r)
{
	if (r < 0 && !cm->log_failing)
		log_warn_errno(r, NULL, "cannot write container log", "path=%s", cm->log_path);
	cm->log_failing = r < 0;
}

/* Read what is there into the log (when draining: until the pipe is empty,
 * at most DRAIN_ROUNDS reads). */
static void out_read(struct out_src *o, bool drain)
{
	struct conmon *cm = o->cm;
	for (int i = 0; o->fd >= 0 && i < (drain ? DRAIN_ROUNDS : READ_ROUNDS); i++) {
		size_t avail;
		char scratch[512];
		char *p = crilog_stream_space(&o->s, &avail);
		if (!p) { /* out of memory: drop the bytes rather than block the container */
			p = scratch;
			avail = sizeof(scratch);
		}
		ssize_t n = read(o->fd, p, avail);
		if (n > 0) {
			if (cm->attachers)
				conmon_attach_output(cm, (int)(o - cm->out), p, (size_t)n);
			if (p != scratch)
				note_log_result(cm, crilog_stream_commit(&cm->log, &o->s, (size_t)n, now_realtime_ns()));
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* EOF; EIO from a pty master whose other side is gone. */
		if (n < 0 && errno != EIO)
			log_warn_errno(errno, NULL, "cannot read container output", "stream=%s", o->s.name);
		out_close(o);
	}
}

static void out_cb(evutil_socket_t fd, short what, void *arg) { out_read(arg, false); }

static int out_start(struct conmon *cm, struct out_src *o, int fd, const char *name)
{
	o->cm = cm;
	o->fd = fd;
	crilog_stream_init(&o->s, name);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	o->ev = event_new(cm->base, fd, EV_READ | EV_PERSIST, out_cb, o);
	if (!o->ev || event_add(o->ev, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* Close the container's stdio: output pipes (a partial line still buffered
 * goes to the log first) and the stdin kept for attach. */
static void close_outputs(struct conmon *cm)
{
	for (size_t i = 0; i < ARRAY_SIZE(cm->out); i++) {
		if (cm->out[i].ev || cm->out[i].s.buf)
			out_close(&cm->out[i]);
		else if (cm->out[i].fd >= 0)
			close(cm->out[i].fd);
		cm->out[i].fd = -1;
	}
	if (cm->stdin_fd >= 0)
		close(cm->stdin_fd);
	cm->stdin_fd = -1;
}

/* The log, at create and at every reopen: beneath its root, nothing
 * followed, nothing but a regular file opened (spawnd checked the path
 * against [policy] log_roots; the files may have changed since). */
static int open_log(const struct conmon *cm)
{
	return open_append_beneath(cm->log_root_fd, cm->log_rel, 0755, 0640);
}

/* --log-root, opened; log_path must lie beneath it. */
static int open_log_root(struct conmon *cm, char *err, size_t errlen)
{
	char *const roots[] = {(char *)cm->log_root};
	size_t root, off;
	const char *why;

	int r = path_beneath_roots(cm->log_path, strlen(cm->log_path), PATH_MAX - 1, roots, 1, &root, &off, &why);
	if (r == 0 && off >= strlen(cm->log_path))
		r = -EISDIR, why = "is the log root itself";
	if (r == -EACCES)
		why = "is not beneath --log-root";
	if (r < 0) {
		snprintf(err, errlen, "log path %s %s (%s)", cm->log_path, why, cm->log_root);
		return r;
	}
	cm->log_rel = cm->log_path + off;
	cm->log_root_fd = open(cm->log_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cm->log_root_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open the log root %s: %s", cm->log_root, strerror(-r));
		return r;
	}
	return 0;
}

/* ------------------------------------------------------------------ exit of the container */

/* The init was reaped (reap_all): record how it ended. */
static void init_exited(struct conmon *cm)
{
	cm->init_pending = false;
	cm->exit_code = conmon_exit_code_of(cm->init_wstatus);
	cm->state = ST_EXITED;
	uint64_t v;
	if (cm->oom_file && read_oom_kill(cm->oom_file, &v) == 0 && v > cm->oom_base)
		cm->oom_killed = true;
	/* Whatever the container wrote before it exited belongs in the log
	 * before its exit is visible. */
	for (size_t i = 0; i < ARRAY_SIZE(cm->out); i++)
		out_read(&cm->out[i], true);
	conmon_attach_end_all(cm);
	if (cm->stdin_fd >= 0) {
		close(cm->stdin_fd);
		cm->stdin_fd = -1;
	}
	persist_state(cm);
	log_info(NULL, "container exited", "id=%s pid=%d exit_code=%d oom_killed=%s", cm->id, (int)cm->pid,
		 cm->exit_code, cm->oom_killed ? "true" : "false");
	state_waits_end(cm);
}

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

static void exec_out_cb(evutil_socket_t fd, short what, void *arg)
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

static void exec_timeout_cb(evutil_socket_t fd, short what, void *arg)
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

/* The runtime's exec process was reaped (reap_all): reply. */
static void exec_reaped(struct exec_op *e)
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
static void exec_abort(struct exec_op *e, const char *why)
{
	exec_kill(e);
	if (e->call)
		ipc_call_fail(e->call, STATUS_ABORTED, "%s", why);
	e->call = NULL;
	exec_free(e);
}

static void handle_exec(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud)
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

/* ------------------------------------------------------------------ reaping */

/* Reap every child that has exited. Those we track are only marked here;
 * process_exits() acts on them from the loop (exits_ev), never in the
 * middle of a handler. */
static void reap_all(struct conmon *cm)
{
	bool pending = false;
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p < 0 && errno == EINTR)
			continue;
		if (p <= 0)
			break;
		if (p == cm->sync_pid) {
			cm->sync_wstatus = st;
			cm->sync_reaped = true;
			continue;
		}
		if (p == cm->pid && !cm->reaped) {
			cm->reaped = true;
			cm->init_pending = true;
			cm->init_wstatus = st;
			cm->finished_at = now_realtime_ns();
			pending = true;
			continue;
		}
		struct exec_op *e;
		for (e = cm->execs; e; e = e->next)
			if (e->pid == p)
				break;
		if (e) {
			e->pid = 0; /* its group may live on (and keeps the number reserved) */
			e->reaped = true;
			e->wstatus = st;
			pending = true;
		} else if (conmon_stream_reaped(cm, p, st)) {
			pending = true;
		} else {
			/* Perhaps an exec stream's process whose pid file is not
			 * read yet (conmon_stream.c looks here). */
			cm->strays[cm->stray_next++ % CONMON_STRAYS] = (struct stray){.pid = p, .wstatus = st};
			log_debug(NULL, "reaped process", "pid=%d status=%d", (int)p, conmon_exit_code_of(st));
		}
	}
	if (pending && cm->exits_ev)
		event_active(cm->exits_ev, EV_TIMEOUT, 0);
}

static void process_exits(struct conmon *cm)
{
	if (cm->init_pending)
		init_exited(cm);
	for (struct exec_op *e = cm->execs, *next; e; e = next) {
		next = e->next;
		if (e->reaped)
			exec_reaped(e);
	}
	conmon_streams_process(cm);
}

void conmon_exits_pending(struct conmon *cm)
{
	if (cm->exits_ev)
		event_active(cm->exits_ev, EV_TIMEOUT, 0);
}

static void on_exits(evutil_socket_t fd, short what, void *arg) { process_exits(arg); }

static void on_sigchld(evutil_socket_t sig, short what, void *arg) { reap_all(arg); }

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct conmon *cm = arg;
	log_info(NULL, "stopping; the container keeps running", "signal=%s id=%s", strsignal((int)sig), cm->id);
	event_base_loopbreak(cm->base);
}

/* ------------------------------------------------------------------ control methods */

static void handle_ping(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
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

static void state_wait_timeout(evutil_socket_t fd, short what, void *arg) { state_wait_end(arg); }

/* The exit is recorded (or conmon stops): answer every waiting State call. */
static void state_waits_end(struct conmon *cm)
{
	while (cm->waits)
		state_wait_end(cm->waits);
}

static void handle_state(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud)
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

static void handle_start(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud)
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
	int r = run_container(cm, err, sizeof(err));
	double runtime_ms = (double)(now_monotonic_ns() - t0) / 1e6; /* the runtime's run, for the log */
	if (r < 0) {
		close_outputs(cm); /* a retried Start makes new pipes */
		cm->pid = 0;
		ipc_call_fail(call, r == -ETIMEDOUT ? STATUS_DEADLINE_EXCEEDED : STATUS_INTERNAL,
			      "cannot start container %s: %s", cm->id, err);
		return;
	}
	cm->started_at = started_at;
	cm->state = ST_RUNNING;
	persist_state(cm);
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
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		char *last = strrchr(line, '\t');
		return last && last != line + 6 && strtol(last + 1, NULL, 10) == 1;
	}
	return false;
}

static void handle_kill(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud)
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
		persist_state(cm);
		log_info(rid, "container stopped before it was started", "id=%s signal=%d", cm->id, req->signal);
		state_waits_end(cm);
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
		r = runtime_run(cm, rid, args_all, ARRAY_SIZE(args_all), err, sizeof(err));
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

static void handle_reopen_log(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud)
{
	struct conmon *cm = ud;
	int fd = open_log(cm);
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

static void handle_update(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud)
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
	r = runtime_run(cm, rid, args, ARRAY_SIZE(args), err, sizeof(err));
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

static void handle_delete(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud)
{
	struct conmon *cm = ud;
	const char *rid = ipc_call_request_id(call);
	char err[ERRMSG_MAX];

	while (cm->execs)
		exec_abort(cm->execs, "the container is being deleted");
	conmon_streams_abort(cm, "the container is being deleted");
	const char *args[] = {"delete", "--force", cm->id};
	int r = runtime_run(cm, rid, args, ARRAY_SIZE(args), err, sizeof(err));
	if (r < 0 && cm->pid <= 0) {
		/* Never started: the runtime has nothing of it (a failed run
		 * removed what it made), so its complaint is about that. */
		log_debug(rid, "runtime delete of a container it never ran", "id=%s error=\"%s\"", cm->id, err);
		r = 0;
	}
	if (r < 0) {
		ipc_call_fail(call, r == -ETIMEDOUT ? STATUS_DEADLINE_EXCEEDED : STATUS_INTERNAL,
			      "cannot delete container %s: %s", cm->id, err);
		return;
	}
	/* A forced delete killed the init: record its end if it comes soon. */
	for (int i = 0; cm->pid > 0 && i < DELETE_REAP_WAIT_MS / 10; i++) {
		reap_all(cm);
		if (cm->reaped)
			break;
		usleep(10000);
	}
	process_exits(cm);
	unlink(cm->socket_path);
	log_info(rid, "container deleted", "id=%s", cm->id);
	Criod__Internal__DeleteContainerResponse resp = CRIOD__INTERNAL__DELETE_CONTAINER_RESPONSE__INIT;
	ipc_call_reply(call, &resp.base, NULL, 0);
	cm->exit_status = 0;
	event_base_loopexit(cm->base, NULL);
}

#define M(id, name, req, resp, fn, max) {id, name, &criod__internal__##req##__descriptor, \
					 &criod__internal__##resp##__descriptor, 0, fn, max}

/* The complete list of what criod may ask of a container's monitor; the last
 * column is the largest request body taken, in bytes. */
static const struct ipc_method conmon_methods[] = {
	M(CONMON_PING, "Ping", ping_request, ping_response, handle_ping, IPC_KiB(64)),
	M(CONMON_STATE, "State", container_state_request, container_state_response, handle_state, IPC_KiB(64)),
	M(CONMON_START, "Start", start_container_request, start_container_response, handle_start, IPC_KiB(64)),
	M(CONMON_KILL, "Kill", kill_container_request, kill_container_response, handle_kill, IPC_KiB(64)),
	M(CONMON_EXEC, "Exec", exec_request, exec_response, handle_exec, IPC_MiB(2)), /* argv: ARG_MAX */
	M(CONMON_REOPEN_LOG, "ReopenLog", reopen_log_request, reopen_log_response, handle_reopen_log, IPC_KiB(64)),
	M(CONMON_UPDATE, "Update", update_resources_request, update_resources_response, handle_update, IPC_KiB(64)),
	M(CONMON_DELETE, "Delete", delete_container_request, delete_container_response, handle_delete, IPC_KiB(64)),
	/* streaming: conmon_stream.c; the replies carry fds */
	M(CONMON_EXEC_STREAM, "ExecStream", exec_stream_request, stream_response, handle_exec_stream,
	  IPC_MiB(2)), /* argv: ARG_MAX */
	M(CONMON_ATTACH_STREAM, "AttachStream", attach_stream_request, stream_response, handle_attach_stream,
	  IPC_KiB(64)),
};

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
			copy_str(out, size, json_object_get_string(m));
			sanitize_line(out);
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
static int run_container(struct conmon *cm, char *err, size_t errlen)
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
	r = wait_child(cm, pid, now_monotonic_ns() + (int64_t)CONMON_CREATE_TIMEOUT_MS * 1000000, false, NULL, 0,
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
		r = out_start(cm, &cm->out[i], fd, cm->tty || i == 0 ? "stdout" : "stderr");
		if (r < 0) {
			snprintf(err, errlen, "cannot watch the container's output: %s", strerror(-r));
			goto undo;
		}
	}
	oom_setup(cm);
	return 0;

undo:;
	char ignored[ERRMSG_MAX];
	delete_force(cm, NULL, ignored, sizeof(ignored));
	return r;
}

/* ------------------------------------------------------------------ start-up */

static _noreturn_ void usage(int status)
{
	fprintf(status ? stderr : stdout,
		"Usage: conmon --id ID --bundle DIR --runtime PATH --runtime-root DIR --log-path FILE\n"
		"              --log-root DIR --state-dir DIR --socket PATH --allowed-uid UID\n"
		"              [--tty] [--stdin] [--stdin-once] [--sync-fd N] [--config FILE] [--log-level LEVEL]\n"
		"              [--seccomp-log]\n"
		"The monitor of one container; see conmon/conmon.h.\n");
	exit(status);
}

static _noreturn_ void bad_usage(const char *what, const char *value)
{
	log_error(NULL, "bad command line", "error=\"%s\" value=\"%s\"", what, value ? value : "");
	usage(2);
}

static void parse_args(struct conmon *cm, int argc, char **argv)
{
	enum { O_ID = 256, O_BUNDLE, O_RUNTIME, O_RUNTIME_ROOT, O_LOG_PATH, O_LOG_ROOT, O_STATE_DIR, O_SOCKET, O_UID, O_TTY,
	       O_STDIN, O_STDIN_ONCE, O_SYNC_FD, O_CONFIG, O_LOG_LEVEL, O_SECCOMP_LOG, O_HELP, O_VERSION };
	static const struct option opts[] = {
		{"id", required_argument, NULL, O_ID},
		{"bundle", required_argument, NULL, O_BUNDLE},
		{"runtime", required_argument, NULL, O_RUNTIME},
		{"runtime-root", required_argument, NULL, O_RUNTIME_ROOT},
		{"log-path", required_argument, NULL, O_LOG_PATH},
		{"log-root", required_argument, NULL, O_LOG_ROOT},
		{"state-dir", required_argument, NULL, O_STATE_DIR},
		{"socket", required_argument, NULL, O_SOCKET},
		{"allowed-uid", required_argument, NULL, O_UID},
		{"tty", no_argument, NULL, O_TTY},
		{"stdin", no_argument, NULL, O_STDIN},
		{"stdin-once", no_argument, NULL, O_STDIN_ONCE},
		{"sync-fd", required_argument, NULL, O_SYNC_FD},
		{"config", required_argument, NULL, O_CONFIG},
		{"log-level", required_argument, NULL, O_LOG_LEVEL},
		{"seccomp-log", no_argument, NULL, O_SECCOMP_LOG},
		{"help", no_argument, NULL, O_HELP},
		{"version", no_argument, NULL, O_VERSION},
		{NULL, 0, NULL, 0},
	};
	int o;
	char *end;
	unsigned long v;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case O_ID: cm->id = optarg; break;
		case O_BUNDLE: cm->bundle = optarg; break;
		case O_RUNTIME: cm->runtime = optarg; break;
		case O_RUNTIME_ROOT: cm->runtime_root = optarg; break;
		case O_LOG_PATH: cm->log_path = optarg; break;
		case O_LOG_ROOT: cm->log_root = optarg; break;
		case O_STATE_DIR: cm->state_dir = optarg; break;
		case O_SOCKET: cm->socket_path = optarg; break;
		case O_UID:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || v >= (unsigned long)(uid_t)-1)
				bad_usage("--allowed-uid must be a uid", optarg);
			cm->allowed_uid = (uid_t)v;
			cm->have_uid = true;
			break;
		case O_TTY: cm->tty = true; break;
		case O_STDIN: cm->keep_stdin = true; break;
		case O_STDIN_ONCE: cm->stdin_once = true; break;
		case O_SYNC_FD:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' || v < 3 || v > INT_MAX ||
			    fcntl((int)v, F_GETFD) < 0)
				bad_usage("--sync-fd must be an open fd above 2", optarg);
			cm->sync_fd = (int)v;
			fcntl(cm->sync_fd, F_SETFD, FD_CLOEXEC);
			break;
		case O_CONFIG: cm->config_path = optarg; break;
		case O_LOG_LEVEL: cm->log_level = optarg; break;
		case O_SECCOMP_LOG: confine_log_only = true; break; /* spawnd passes its own on */
		case O_HELP: usage(0);
		case O_VERSION:
			printf("conmon %s\n", PACKAGE_VERSION);
			exit(0);
		default: usage(2);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument", argv[optind]);
	if (!id_is_valid(cm->id))
		bad_usage("--id must be 64 lowercase hex characters", cm->id);
	const struct {
		const char *name, *value;
	} paths[] = {
		{"--bundle", cm->bundle}, {"--runtime", cm->runtime}, {"--runtime-root", cm->runtime_root},
		{"--log-path", cm->log_path}, {"--log-root", cm->log_root}, {"--state-dir", cm->state_dir},
		{"--socket", cm->socket_path},
	};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (!paths[i].value || paths[i].value[0] != '/' || strlen(paths[i].value) >= PATH_MAX)
			bad_usage("an absolute path is required", paths[i].name);
	if (strlen(cm->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		bad_usage("--socket is too long", cm->socket_path);
	if (cm->tty && strlen(cm->state_dir) + 1 + strlen(CONMON_CONSOLE_SOCKET) >=
			       sizeof(((struct sockaddr_un *)0)->sun_path))
		bad_usage("--state-dir is too long for the console socket", cm->state_dir);
	if (!cm->have_uid)
		bad_usage("--allowed-uid is required", NULL);

	const char *level = cm->log_level;
	/* What spawnd read (its --config, else the default file): the node
	 * policy conmon enforces on Update. */
	_cleanup_free_ char *error = NULL;
	if (config_load(&cm->cfg, cm->config_path, &error) < 0) {
		log_error(NULL, "bad configuration", "error=\"%s\"", error ? error : "unknown");
		exit(2);
	}
	if (!level && cm->config_path)
		level = cm->cfg.log_level;
	if (level) {
		int lvl = log_level_from_string(level);
		if (lvl < 0)
			bad_usage("bad log level", level);
		log_set_level((enum log_level)lvl);
	}
}

/* The state directory: ours (root's) and not writable by anyone else, since
 * the runtime writes files there as root. */
static int check_state_dir(const char *dir)
{
	int r = mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	struct stat st;
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != geteuid() || (st.st_mode & 022))
		return -EPERM;
	return 0;
}

/* The one line on the sync fd (or stdout). */
static void report(struct conmon *cm, int r, const char *err)
{
	char line[CONMON_SYNC_MAX];
	if (r >= 0)
		snprintf(line, sizeof(line), CONMON_SYNC_OK "%d\n", (int)cm->pid);
	else {
		char msg[CONMON_SYNC_MAX - 16];
		copy_str(msg, sizeof(msg), err[0] ? err : strerror(-r));
		sanitize_line(msg);
		snprintf(line, sizeof(line), CONMON_SYNC_ERROR "%s\n", msg);
	}
	int fd = cm->sync_fd >= 0 ? cm->sync_fd : STDOUT_FILENO;
	size_t len = strlen(line), off = 0;
	while (off < len) {
		ssize_t n = write(fd, line + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn_errno(n < 0 ? errno : EIO, NULL, "cannot report the create result", "fd=%d", fd);
			break;
		}
		off += (size_t)n;
	}
	if (cm->sync_fd >= 0) {
		close(cm->sync_fd);
		cm->sync_fd = -1;
	} else {
		/* Whoever reads our stdout sees EOF after the line. */
		int dn = open("/dev/null", O_WRONLY | O_NOCTTY);
		if (dn >= 0) {
			dup2(dn, STDOUT_FILENO);
			if (dn != STDOUT_FILENO)
				close(dn);
		}
	}
}

static int setup(struct conmon *cm, char *err, size_t errlen)
{
	int r = check_state_dir(cm->state_dir);
	if (r < 0) {
		snprintf(err, errlen, "state directory %s: %s", cm->state_dir,
			 r == -EPERM ? "must be owned by root and writable by nobody else" : strerror(-r));
		return r;
	}
	if (access(cm->runtime, X_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "runtime %s: %s", cm->runtime, strerror(errno));
		return r;
	}
	char pidtext[32];
	int n = snprintf(pidtext, sizeof(pidtext), "%d\n", (int)getpid());
	_cleanup_free_ char *pid_path = conmon_path_in(cm->state_dir, CONMON_PID_FILE);
	r = pid_path ? write_file_boot(pid_path, pidtext, (size_t)n, 0644) : -ENOMEM;
	if (r < 0) {
		snprintf(err, errlen, "cannot write %s/%s: %s", cm->state_dir, CONMON_PID_FILE, strerror(-r));
		return r;
	}
	r = open_log_root(cm, err, errlen);
	if (r < 0)
		return r;
	cm->log.fd = open_log(cm);
	if (cm->log.fd < 0) {
		r = cm->log.fd;
		snprintf(err, errlen, "cannot open log %s: %s", cm->log_path, strerror(-r));
		return r;
	}

	cm->base = event_base_new();
	if (!cm->base)
		return -ENOMEM;
	/* SIGCHLD is handled before the first child exists, so no exit is missed. */
	cm->sig_chld = evsignal_new(cm->base, SIGCHLD, on_sigchld, cm);
	cm->sig_term = evsignal_new(cm->base, SIGTERM, on_stop, cm);
	cm->sig_int = evsignal_new(cm->base, SIGINT, on_stop, cm);
	cm->exits_ev = event_new(cm->base, -1, 0, on_exits, cm);
	if (!cm->exits_ev || !cm->sig_chld || !cm->sig_term || !cm->sig_int || evsignal_add(cm->sig_chld, NULL) < 0 ||
	    evsignal_add(cm->sig_term, NULL) < 0 || evsignal_add(cm->sig_int, NULL) < 0) {
		snprintf(err, errlen, "cannot install signal handlers");
		return -ENOMEM;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot become a child subreaper: %s", strerror(errno));
		return r;
	}

	uid_t allowed[2] = {0, cm->allowed_uid};
	/* World-connectable like the root daemons' sockets: every peer is
	 * checked with SO_PEERCRED. */
	r = ipc_server_new(cm->base, cm->socket_path, 0666, allowed, 2, conmon_methods, ARRAY_SIZE(conmon_methods),
			   cm, &cm->srv);
	if (r < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cm->socket_path, strerror(-r));
		return r;
	}

	cm->created_at = now_realtime_ns();
	cm->state = ST_CREATED;
	r = persist_state(cm);
	if (r < 0) {
		snprintf(err, errlen, "cannot record the container state: %s", strerror(-r));
		return r;
	}
	log_info(NULL, "container created", "id=%s tty=%s stdin=%s stdin_once=%s socket=%s", cm->id,
		 cm->tty ? "true" : "false", cm->keep_stdin ? "true" : "false", cm->stdin_once ? "true" : "false",
		 cm->socket_path);
	return 0;
}

static void teardown(struct conmon *cm)
{
	process_exits(cm); /* an exit reaped but not yet recorded */
	while (cm->execs)
		exec_abort(cm->execs, "conmon is stopping");
	conmon_streams_abort(cm, "conmon is stopping");
	state_waits_end(cm);
	ipc_server_free(cm->srv);
	cm->srv = NULL;
	close_outputs(cm);
	for (size_t i = 0; i < ARRAY_SIZE(cm->out); i++)
		crilog_stream_free(&cm->out[i].s);
	if (cm->log.fd >= 0)
		close(cm->log.fd);
	free(cm->oom_file);
	if (cm->sig_chld)
		event_free(cm->sig_chld);
	if (cm->exits_ev)
		event_free(cm->exits_ev);
	if (cm->sig_term)
		event_free(cm->sig_term);
	if (cm->sig_int)
		event_free(cm->sig_int);
	if (cm->base)
		event_base_free(cm->base);
}

int main(int argc, char **argv)
{
	struct conmon cm = {
		.sync_fd = -1,
		.stdin_fd = -1,
		.out = {{.fd = -1}, {.fd = -1}},
		.log = {.fd = -1},
		.log_root_fd = -1,
		.exit_status = EXIT_SUCCESS,
	};
	char err[ERRMSG_MAX] = "";
	sigset_t none;

	log_init("conmon");
	parse_args(&cm, argc, argv);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	int r = geteuid() == 0 ? 0 : -EPERM;
	if (r < 0)
		snprintf(err, sizeof(err), "conmon must run as root");
	else
		r = setup(&cm, err, sizeof(err));
	if (r >= 0 && (r = conmon_confine(&cm.cfg)) < 0)
		snprintf(err, sizeof(err), "cannot confine conmon: %s", strerror(-r));
	if (r < 0)
		log_error_errno(r, NULL, "cannot create container", "id=%s error=\"%s\"", cm.id, err);
	report(&cm, r, err);
	if (r < 0) {
		teardown(&cm);
		config_free(&cm.cfg);
		return EXIT_FAILURE;
	}
	reap_all(&cm); /* anything that ended before the loop runs */
	if (event_base_dispatch(cm.base) < 0) {
		log_error(NULL, "event loop failed");
		cm.exit_status = EXIT_FAILURE;
	}
	teardown(&cm);
	config_free(&cm.cfg);
	log_info(NULL, "stopped", "id=%s", cm.id);
	return cm.exit_status;
}
