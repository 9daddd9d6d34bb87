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
 * to completion inside their handler (bounded by a timeout); Exec, and the
 * `delete --force` conmon runs itself once the init's exit is recorded, are
 * asynchronous: their output pipes are read by events and their runtime
 * process is reaped by the SIGCHLD handler, so State and Kill keep answering
 * while they run. As a subreaper conmon also inherits the runtime's orphans;
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
#include "conmon_standby.h"
#include "internal/conmon.pb-c.h"
#include "internal/envelope.pb-c.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "proc_cgroup.h"
#include "spawn.h"
#include "spawnd_confine.h"
#include "spawnd_policy.h"
#include "status.h"
#include "util.h"

#define CGROUP_V1_MEMORY "/sys/fs/cgroup/memory"

/* ------------------------------------------------------------------ small helpers */

char *conmon_path_in(const char *dir, const char *name)
{
	char *p;
	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* Copy src into dst (size > 0), cut short if need be. */
void conmon_copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* One printable line: control characters become spaces, bounded. */
void conmon_sanitize_line(char *s)
{
	for (char *p = s; *p; p++)
		if (char_is_ctl((unsigned char)*p))
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

/* Wait for our child pid until deadline (monotonic ns); on timeout it is
 * SIGKILLed and reaped, and -ETIMEDOUT returned. Extra pollfds (pipes) are
 * serviced by on_fd meanwhile. With reap_others, every other child that
 * exits meanwhile is reaped too (their exits are processed later, from the
 * loop): a dying container init waits for the zombies of its pid namespace,
 * which may be ours (exec'd processes whose runtime died), so `runtime
 * delete` would wait for a kill that cannot complete. */
int conmon_wait_child(struct conmon *cm, pid_t pid, int64_t deadline, bool reap_others, struct pollfd *extra,
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
			conmon_reap_all(cm);
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

/* ------------------------------------------------------------------ durable state */

int conmon_persist_state(struct conmon *cm)
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
	/* CREATED is boot-scoped: a host crash ends the monitor and the
	 * container, and criod then records every created container that
	 * conmon had not recorded as exited as EXITED 255, whatever this file
	 * says or lost (criod/containers.h ctrs_after_reboot). RUNNING (its
	 * started_at) and EXITED (the exit status) are durable. */
	int r = !path ? -ENOMEM
		: cm->state == ST_CREATED ? write_file_boot(path, buf, n, 0644)
					   : write_file_atomic(path, buf, n, 0644);
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
void conmon_oom_setup(struct conmon *cm)
{
	char proc[64];
	_cleanup_free_ char *text = NULL;
	snprintf(proc, sizeof(proc), "/proc/%d/cgroup", (int)cm->pid);
	if (read_file(proc, 64 << 10, &text, NULL) < 0)
		return;
	char *v1 = NULL, *v2 = NULL;
	struct proc_cgroup_line l;
	for (char *cur = text; proc_cgroup_next(&cur, &l);) {
		if (proc_cgroup_has_controller(&l, "memory"))
			v1 = l.path;
		if (proc_cgroup_is_unified(&l))
			v2 = l.path;
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

static void out_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg) { out_read(arg, false); }

int conmon_out_start(struct conmon *cm, struct out_src *o, int fd, const char *name)
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
void conmon_close_outputs(struct conmon *cm)
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
int conmon_open_log(const struct conmon *cm)
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

/* The init was reaped (conmon_reap_all): record how it ended. */
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
	int persisted = conmon_persist_state(cm);
	log_info(NULL, "container exited", "id=%s pid=%d exit_code=%d oom_killed=%s", cm->id, (int)cm->pid,
		 cm->exit_code, cm->oom_killed ? "true" : "false");
	conmon_state_waits_end(cm);
	/* Only once the exit is durable: a conmon that dies later leaves
	 * state.pb, not the runtime, to say how the container ended. */
	if (persisted == 0 && !cm->exiting)
		conmon_early_delete(cm);
}

/* ------------------------------------------------------------------ reaping */

/* Reap every child that has exited. Those we track are only marked here;
 * conmon_process_exits() acts on them from the loop (exits_ev), never in the
 * middle of a handler. */
void conmon_reap_all(struct conmon *cm)
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
		} else if (conmon_stream_reaped(cm, p, st) || conmon_runtime_async_reaped(cm, p, st)) {
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

void conmon_process_exits(struct conmon *cm)
{
	if (cm->init_pending)
		init_exited(cm);
	for (struct exec_op *e = cm->execs, *next; e; e = next) {
		next = e->next;
		if (e->reaped)
			conmon_exec_reaped(e);
	}
	conmon_streams_process(cm);
	conmon_runtime_async_process(cm);
}

void conmon_exits_pending(struct conmon *cm)
{
	if (cm->exits_ev)
		event_active(cm->exits_ev, EV_TIMEOUT, 0);
}

static void on_exits(evutil_socket_t fd _unused_, short what _unused_, void *arg) { conmon_process_exits(arg); }

static void on_sigchld(evutil_socket_t sig _unused_, short what _unused_, void *arg) { conmon_reap_all(arg); }

static void on_stop(evutil_socket_t sig, short what _unused_, void *arg)
{
	struct conmon *cm = arg;
	log_info(NULL, "stopping; the container keeps running", "signal=%s id=%s", strsignal((int)sig), cm->id);
	event_base_loopbreak(cm->base);
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
		conmon_copy_str(msg, sizeof(msg), err[0] ? err : strerror(-r));
		conmon_sanitize_line(msg);
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
	cm->log.fd = conmon_open_log(cm);
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
	api_bind(cm->methods, conmon_methods, CONMON_N_METHODS, conmon_handlers);
	r = ipc_server_new(cm->base, cm->socket_path, 0666, allowed, 2, cm->methods, CONMON_N_METHODS,
			   cm, &cm->srv);
	if (r < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", cm->socket_path, strerror(-r));
		return r;
	}

	cm->created_at = now_realtime_ns();
	cm->state = ST_CREATED;
	r = conmon_persist_state(cm);
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
	cm->exiting = true;
	conmon_process_exits(cm); /* an exit reaped but not yet recorded */
	conmon_runtime_async_wait(cm); /* the delete begun at the exit: never left running alone */
	while (cm->execs)
		conmon_exec_abort(cm->execs, "conmon is stopping");
	conmon_streams_abort(cm, "conmon is stopping");
	conmon_state_waits_end(cm);
	ipc_server_free(cm->srv);
	cm->srv = NULL;
	conmon_close_outputs(cm);
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
	if (argc >= 2 && strcmp(argv[1], STANDBY_ARG) == 0) {
		/* Started ahead of a request (conmon_standby.h): become the
		 * conmon of the command line the launcher sends. */
		int r = standby_receive(argc, argv, &argc, &argv);
		if (r == -ECONNRESET)
			return EXIT_SUCCESS; /* the launcher stopped before it needed this one */
		if (r < 0)
			return log_error_errno(r, NULL, "standby: no command line from the launcher"), EXIT_FAILURE;
	}
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
	if (r >= 0 && (r = conmon_confine(&cm.cfg, cm.bundle)) < 0)
		snprintf(err, sizeof(err), "cannot confine conmon: %s", strerror(-r));
	if (r < 0)
		log_error_errno(r, NULL, "cannot create container", "id=%s error=\"%s\"", cm.id, err);
	report(&cm, r, err);
	if (r < 0) {
		teardown(&cm);
		config_free(&cm.cfg);
		return EXIT_FAILURE;
	}
	conmon_reap_all(&cm); /* anything that ended before the loop runs */
	if (event_base_dispatch(cm.base) < 0) {
		log_error(NULL, "event loop failed");
		cm.exit_status = EXIT_FAILURE;
	}
	teardown(&cm);
	config_free(&cm.cfg);
	log_info(NULL, "stopped", "id=%s", cm.id);
	return cm.exit_status;
}
