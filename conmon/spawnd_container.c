/* Containers: the bundle, the detached conmon and its sync line, and
 * the removal; the checks of the request are spawnd_container_spec.c. See
 * spawnd_container.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawnd_cgroup.h"
#include "config.h"
#include "confine.h"
#include "conmon.h"
#include "spawnd_container.h"
#include "spawnd_container_internal.h"
#include "spawnd_launch.h"
#include "log.h"
#include "macro.h"
#include "spawnd_proc.h"
#include "spawn.h"
#include "spawnd_policy.h"
#include "status.h"
#include "util.h"

#define ERR_MAX 1024
#define RECORD_FILE "spawnd.json"
#define CONMON_LOG_FILE "conmon.log"
#define RECORD_MAX (64u << 10)
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1) /* 107 bytes and the NUL */
#define RUNTIME_OUTPUT_MAX 4096

/* The runtimes a runtime_handler may name: the [runtime.NAME] sections of
 * the configuration spawnd read (common/config.h); "" means [pods]
 * default_runtime. */
static const struct runtime_config *handler_find(const struct containers *cs, const char *name);

struct call_list {
	struct ipc_call **v;
	size_t n;
};

enum op_kind { OP_CREATE, OP_REMOVE };

/* One operation on one container id in progress: a create waiting for its
 * monitor's sync line (on the loop), or a removal (on the worker pool; also
 * the cleanup after a failed create, which is then answered from there). */
struct ctr_op {
	struct ctr_op *next;
	struct containers *cs;
	enum op_kind kind;
	char id[65];
	char pod_id[65];
	char req[72];
	const struct runtime_config *handler;

	/* OP_CREATE */
	struct ipc_call *create_call;
	int sync_fd;
	struct event *read_ev, *timer_ev;
	char line[CONMON_SYNC_MAX + 1];
	size_t n;
	pid_t conmon_pid;
	uint64_t conmon_start;
	int64_t created_ns;
	char *socket_path, *log_path;
	char *log_root; /* the directory conmon opens log_path beneath */
	/* a failed create being cleaned up: its answer */
	int create_status;
	char create_err[ERR_MAX];

	/* OP_REMOVE */
	bool after_create;
	/* conmon acknowledged its Delete (its sockets are gone) but still
	 * runs (its runtime delete): answered, the record says "removing",
	 * finish_work completes the removal once it is gone */
	bool pending, finishing;
	int ret, status;
	char err[ERR_MAX];
	struct call_list removes;
};

struct containers {
	struct container_env env;
	char *bundles_dir;   /* <run_dir>/containers */
	char *socks_dir;     /* <run_dir>/s */
	char *runtime_root;  /* <run_dir>/runc */
	char *records_dir;   /* <state_dir>/spawnd/containers */
	char *state_alias;   /* <run_dir>/c */
	char *imaged_dir;    /* <state_dir>/imaged/containers */
	struct ctr_op *ops;  /* loop thread only */
	/* The pods of the removals being finished (answered, waiting for
	 * conmon): a pod's teardown waits for its own (containers_wait_pod). */
	pthread_mutex_t pending_lock;
	pthread_cond_t pending_cond;
	char (*pending_pods)[65];
	size_t n_pending, cap_pending;
};

static const struct runtime_config *handler_find(const struct containers *cs, const char *name)
{
	return config_runtime(cs->env.cfg, name);
}

/* ---------------------------------------------------------------- paths */

static char *bundle_dir(const struct containers *cs, const char *id) { return xasprintf("%s/%s", cs->bundles_dir, id); }
static char *state_dir(const struct containers *cs, const char *id) { return xasprintf("%s/%s", cs->records_dir, id); }
static char *socket_primary(const struct containers *cs, const char *id)
{
	return xasprintf("%s/%s/conmon.sock", cs->bundles_dir, id);
}
static char *socket_fallback(const struct containers *cs, const char *id)
{
	return xasprintf("%s/%s", cs->socks_dir, id);
}

/* The control socket: in the bundle when that fits a socket address. */
static char *socket_path(const struct containers *cs, const char *id)
{
	char *p = socket_primary(cs, id);
	if (p && strlen(p) > SUN_PATH_MAX) {
		free(p);
		p = socket_fallback(cs, id);
	}
	return p;
}

/* ---------------------------------------------------------------- records */

struct ctr_record {
	char id[65];
	char pod_id[65];
	const struct runtime_config *handler;
	bool created;
	bool removing; /* RemoveContainer was answered; the rest waits for conmon */
	pid_t conmon_pid;
	uint64_t conmon_start;
	pid_t pid;
	int64_t created_ns;
};

/* state: "creating", "created" or "removing" (answered; finished when
 * conmon is gone, by this spawnd or at the next start). */
static int record_write(const struct containers *cs, const struct ctr_op *op, const char *state, pid_t pid)
{
	_cleanup_free_ char *dir = state_dir(cs, op->id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" RECORD_FILE, dir) : NULL;
	if (!path)
		return -ENOMEM;
	json_object *o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "container_id", json_object_new_string(op->id));
	json_object_object_add(o, "pod_id", json_object_new_string(op->pod_id));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "runtime_handler", json_object_new_string(op->handler->name));
	json_object_object_add(o, "conmon_pid", json_object_new_int64(op->conmon_pid));
	json_object_object_add(o, "conmon_start_time", json_object_new_uint64(op->conmon_start));
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	json_object_object_add(o, "created_ns", json_object_new_int64(op->created_ns));
	/* For people reading it; spawnd derives them from the id. */
	json_object_object_add(o, "socket", json_object_new_string(op->socket_path ? op->socket_path : ""));
	json_object_object_add(o, "log_path", json_object_new_string(op->log_path ? op->log_path : ""));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	int r = text ? write_file_boot(path, text, strlen(text), 0600) : -ENOMEM;
	json_object_put(o);
	return r;
}

static int record_read(const struct containers *cs, const char *id, struct ctr_record *rec)
{
	_cleanup_free_ char *dir = state_dir(cs, id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" RECORD_FILE, dir) : NULL;
	_cleanup_free_ char *text = NULL;
	json_object *v;

	memset(rec, 0, sizeof(*rec));
	if (!path)
		return -ENOMEM;
	int r = read_file(path, RECORD_MAX, &text, NULL);
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse(text);
	if (!o)
		return -EBADMSG;
	r = -EBADMSG;
	if (!(v = member(o, "container_id")) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), id) != 0)
		goto out;
	snprintf(rec->id, sizeof(rec->id), "%s", id);
	if ((v = member(o, "pod_id")) && json_object_is_type(v, json_type_string) && id_is_valid(json_object_get_string(v)))
		snprintf(rec->pod_id, sizeof(rec->pod_id), "%s", json_object_get_string(v));
	if (!(v = member(o, "runtime_handler")) || !json_object_is_type(v, json_type_string) ||
	    !(rec->handler = handler_find(cs, json_object_get_string(v))))
		goto out;
	if ((v = member(o, "state")) && json_object_is_type(v, json_type_string))
	{
		rec->removing = strcmp(json_object_get_string(v), "removing") == 0;
		rec->created = rec->removing || strcmp(json_object_get_string(v), "created") == 0;
	}
	if ((v = member(o, "conmon_pid")) && json_object_is_type(v, json_type_int)) {
		int64_t pid = json_object_get_int64(v);
		if (pid < 0 || pid > (1 << 22))
			goto out;
		rec->conmon_pid = (pid_t)pid;
	}
	if ((v = member(o, "conmon_start_time")) && json_object_is_type(v, json_type_int))
		rec->conmon_start = json_object_get_uint64(v);
	if ((v = member(o, "pid")) && json_object_is_type(v, json_type_int))
		rec->pid = (pid_t)json_object_get_int64(v);
	if ((v = member(o, "created_ns")) && json_object_is_type(v, json_type_int))
		rec->created_ns = json_object_get_int64(v);
	r = 0;
out:
	json_object_put(o);
	return r;
}

/* ---------------------------------------------------------------- files */

/* Remove a directory of plain files (never following a symlink; empty
 * subdirectories go too), `last` after the others; a missing one is fine. */
static int remove_flat_dir(const char *path, const char *last)
{
	/* A bundle's pinned PID namespace (a bind mount) goes first. */
	_cleanup_free_ char *pin = xasprintf("%s/" CONTAINER_PIDNS_PIN, path);
	if (!pin)
		return -ENOMEM;
	for (int i = 0; i < 4 && umount2(pin, MNT_DETACH | UMOUNT_NOFOLLOW) == 0; i++)
		;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || (last && strcmp(n, last) == 0))
			continue;
		if (unlinkat(fd, n, 0) < 0 && errno != ENOENT &&
		    (errno != EISDIR || unlinkat(fd, n, AT_REMOVEDIR) < 0) && !ret)
			ret = -errno;
	}
	if (last && unlinkat(fd, last, 0) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

static int mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0)
		return -errno;
	/* Not subject to the umask. */
	return chmod(path, mode) < 0 ? -errno : 0;
}

/* <run_dir>/c -> <state_dir>/spawnd/containers */
static int state_alias_setup(const struct containers *cs)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(cs->state_alias, buf, sizeof(buf) - 1);
	if (n >= 0) {
		buf[n] = '\0';
		if (strcmp(buf, cs->records_dir) == 0)
			return 0;
		if (unlink(cs->state_alias) < 0)
			return -errno;
	} else if (errno != ENOENT) {
		return errno == EINVAL ? -EEXIST : -errno; /* something that is not a symlink */
	}
	return symlink(cs->records_dir, cs->state_alias) < 0 ? -errno : 0;
}

/* The last line of conmon's log, printable, for an error message. */
static void conmon_log_tail(const struct containers *cs, const char *id, char *out, size_t outlen)
{
	_cleanup_free_ char *dir = state_dir(cs, id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" CONMON_LOG_FILE, dir) : NULL;
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
	char buf[1024];
	struct stat st;

	out[0] = '\0';
	if (fd < 0 || fstat(fd, &st) < 0)
		return;
	off_t off = st.st_size > (off_t)sizeof(buf) - 1 ? st.st_size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, off);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	char *line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	for (char *p = line; *p; p++)
		if (char_is_ctl((unsigned char)*p))
			*p = ' ';
	size_t l = strnlen(line, outlen - 1);
	memcpy(out, line, l);
	out[l] = '\0';
}

/* ---------------------------------------------------------------- processes */

/* SIGKILL conmon and its process group (it is a session leader: the group
 * holds the runtime command it is waiting for), if it is still the process
 * that started at start. */
static void conmon_kill(pid_t pid, uint64_t start)
{
	int pidfd = -1;
	if (pid <= 0 || !start || proc_pidfd(pid, start, &pidfd) < 0)
		return;
	(void)kill(-pid, SIGKILL);
	(void)proc_signal(pid, pidfd, SIGKILL);
	if (pidfd >= 0)
		close(pidfd);
}

/* Wait up to ms for (pid, start) to be gone; true if it is. */
static bool wait_gone(pid_t pid, uint64_t start, int ms)
{
	int pidfd = -1;
	if (pid <= 0 || !start || proc_pidfd(pid, start, &pidfd) < 0)
		return true;
	int r = proc_wait_gone(pid, start, pidfd, ms);
	if (pidfd >= 0)
		close(pidfd);
	return r >= 0;
}

/* A conmon for this id, found through its conmon.pid: its command line must
 * be a conmon's with --id <id>. */
static bool conmon_pidfile_alive(const struct containers *cs, const char *id, pid_t *pid, uint64_t *start)
{
	_cleanup_free_ char *dir = state_dir(cs, id);
	_cleanup_free_ char *path = dir ? xasprintf("%s/" CONMON_PID_FILE, dir) : NULL;
	_cleanup_free_ char *text = NULL, *cmdline = NULL;
	char proc[64], state;
	size_t len;

	if (!path || read_file(path, 64, &text, NULL) < 0)
		return false;
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || v <= 1 || v > INT_MAX)
		return false;
	snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", v);
	if (read_file(proc, 1u << 16, &cmdline, &len) < 0 || proc_stat((pid_t)v, &state, start) < 0 || state == 'Z' ||
	    state == 'X')
		return false;
	const char *argv0 = cmdline, *slash = strrchr(argv0, '/');
	if (strcmp(slash ? slash + 1 : argv0, "conmon") != 0)
		return false;
	for (size_t off = strlen(cmdline) + 1; off < len;) {
		const char *arg = cmdline + off;
		size_t al = strnlen(arg, len - off);
		if (strcmp(arg, "--id") == 0 && off + al + 1 < len && strcmp(arg + al + 1, id) == 0) {
			*pid = (pid_t)v;
			return true;
		}
		off += al + 1;
	}
	return false;
}

/* Whether something listens on the unix socket at path. */
static bool socket_answers(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!path || strlen(path) > SUN_PATH_MAX)
		return false;
	memcpy(sa.sun_path, path, strlen(path));
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN || errno == EINPROGRESS;
}

/* Run `<runtime> --root <root> delete --force <id>` to completion (at most
 * CONTAINER_RUNTIME_TIMEOUT_MS); on failure err gets its last words. */
static int runtime_delete(const struct containers *cs, const char *runtime, const char *id, char *err, size_t errlen)
{
	const char *argv[] = {runtime, "--root", cs->runtime_root, "delete", "--force", id, NULL};
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return errf_first(err, errlen, -errno, "pipe: %s", strerror(errno));
	struct spawn_opts o = {.argv = argv, .cwd = "/", .stdin_fd = -1, .stdout_fd = p[1], .stderr_fd = p[1]};
	int r = spawn_process(&o, &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return errf_first(err, errlen, r, "cannot run %s: %s", runtime, strerror(-r));
	}
	char out[RUNTIME_OUTPUT_MAX];
	size_t n = 0;
	int64_t deadline = now_monotonic_ns() + (int64_t)CONTAINER_RUNTIME_TIMEOUT_MS * 1000000;
	bool eof = false, timed_out = false;
	while (!eof) {
		int64_t left = (deadline - now_monotonic_ns()) / 1000000;
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
			break;
		for (;;) {
			char buf[1024];
			ssize_t k = read(p[0], buf, sizeof(buf));
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				eof = k == 0 || errno != EAGAIN;
				break;
			}
			/* Keep the tail (buf is smaller than out). */
			size_t kk = (size_t)k;
			if (n + kk > sizeof(out) - 1) {
				size_t drop = n + kk - (sizeof(out) - 1);
				memmove(out, out + drop, n - drop);
				n -= drop;
			}
			memcpy(out + n, buf, kk);
			n += kk;
		}
	}
	close(p[0]);
	if (timed_out)
		(void)kill(pid, SIGKILL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		return errf_first(err, errlen, -ETIMEDOUT, "%s delete --force %s timed out after %d ms", runtime, id,
				  CONTAINER_RUNTIME_TIMEOUT_MS);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
		out[--n] = '\0';
	char *line = strrchr(out, '\n');
	line = line ? line + 1 : out;
	/* runc's text log: time="..." level=error msg="..." */
	char *msg = strstr(line, "msg=\"");
	if (msg) {
		msg += 5;
		char *q = strrchr(msg, '"');
		if (q)
			*q = '\0';
		line = msg;
	}
	for (char *c = line; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' ';
	return errf_first(err, errlen, -EIO, "%s delete --force %s failed (status %d): %s", runtime, id,
			  WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), *line ? line : "no output");
}

/* ---------------------------------------------------------------- removal (worker pool) */

/* What is left once conmon is gone: the runtime's state (when conmon died
 * or was killed before its delete finished; --force kills what is left of
 * the container), the bundle, the socket, the state directory with the
 * record last. */
static int remove_files(struct ctr_op *op, const struct runtime_config *h)
{
	const struct containers *cs = op->cs;
	const char *id = op->id;
	_cleanup_free_ char *bundle = bundle_dir(cs, id), *sdir = state_dir(cs, id);
	_cleanup_free_ char *sock2 = socket_fallback(cs, id);
	_cleanup_free_ char *rt_state = xasprintf("%s/%s", cs->runtime_root, id);
	struct stat st;
	int r;

	if (!bundle || !sdir || !sock2 || !rt_state)
		return errf_first(op->err, sizeof(op->err), -ENOMEM, "out of memory");
	if (lstat(rt_state, &st) == 0) {
		if (!h)
			h = op->handler ? op->handler : handler_find(cs, "");
		r = runtime_delete(cs, h->path, id, op->err, sizeof(op->err));
		if (r < 0 && lstat(rt_state, &st) < 0 && errno == ENOENT) {
			/* Another delete (an orphaned one of a killed conmon's)
			 * removed it first: what this one was for is done. */
			log_info(op->req, "the runtime's state went while its delete failed", "id=%s error=\"%s\"", id,
				 op->err);
			op->err[0] = '\0';
			r = 0;
		} else if (r < 0) {
			return r;
		} else {
			log_info(op->req, "removed the runtime's state of a container", "id=%s runtime=%s", id, h->path);
		}
	}
	r = remove_flat_dir(bundle, NULL);
	if (r < 0)
		return errf_first(op->err, sizeof(op->err), r, "cannot remove %s: %s", bundle, strerror(-r));
	if (unlink(sock2) < 0 && errno != ENOENT)
		return errf_first(op->err, sizeof(op->err), -errno, "cannot remove %s: %s", sock2, strerror(errno));
	r = remove_flat_dir(sdir, RECORD_FILE);
	if (r < 0)
		return errf_first(op->err, sizeof(op->err), r, "cannot remove %s: %s", sdir, strerror(-r));
	return 0;
}

/* A removal answered before conmon was gone: wait for it (at most
 * CONTAINER_EXIT_WAIT_MS, then its process group is killed), then the
 * files. */
static int finish_removal(struct ctr_op *op)
{
	pid_t cpid = op->conmon_pid;
	uint64_t cstart = op->conmon_start;

	if (!wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS)) {
		log_warn(op->req, "conmon did not exit after its Delete; killing it", "id=%s conmon_pid=%d", op->id,
			 (int)cpid);
		conmon_kill(cpid, cstart);
		if (!wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS))
			return errf_first(op->err, sizeof(op->err), -EBUSY, "conmon %d does not exit", (int)cpid);
	}
	return remove_files(op, op->handler);
}

static int remove_container(struct ctr_op *op)
{
	const struct containers *cs = op->cs;
	const char *id = op->id;
	_cleanup_free_ char *sock1 = socket_primary(cs, id), *sock2 = socket_fallback(cs, id);
	struct ctr_record rec;
	struct stat st;
	int r;

	op->status = STATUS_INTERNAL;
	if (!sock1 || !sock2)
		return errf_first(op->err, sizeof(op->err), -ENOMEM, "out of memory");
	bool have_rec = record_read(cs, id, &rec) == 0;
	pid_t cpid = op->after_create ? op->conmon_pid : have_rec ? rec.conmon_pid : 0;
	uint64_t cstart = op->after_create ? op->conmon_start : have_rec ? rec.conmon_start : 0;

	if (op->after_create) {
		/* After "error" conmon cleans up and exits by itself. */
		if (!wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS)) {
			conmon_kill(cpid, cstart);
			if (!wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS))
				return errf_first(op->err, sizeof(op->err), -EBUSY,
						  "conmon %d does not exit", (int)cpid);
		}
	} else {
		bool alive = cpid > 0 && cstart && proc_alive(cpid, cstart);
		if (!alive)
			alive = conmon_pidfile_alive(cs, id, &cpid, &cstart);
		bool listening = socket_answers(sock1) || socket_answers(sock2);
		bool acked = alive && !listening && lstat(sock1, &st) < 0 && lstat(sock2, &st) < 0;
		if (acked && have_rec) {
			/* A Delete removes the sockets, answers and exits once its
			 * runtime delete is done: answer now, finish then. The
			 * record says so first, for a spawnd that dies meanwhile. */
			op->conmon_pid = cpid;
			op->conmon_start = cstart;
			op->handler = rec.handler;
			op->created_ns = rec.created_ns;
			snprintf(op->pod_id, sizeof(op->pod_id), "%s", rec.pod_id);
			r = record_write(cs, op, "removing", rec.pid);
			if (r >= 0) {
				op->pending = true;
				return 0;
			}
			log_warn_errno(r, op->req, "cannot mark the container record as removing; waiting for conmon",
				       "id=%s", id);
		}
		if (acked && wait_gone(cpid, cstart, CONTAINER_EXIT_WAIT_MS))
			alive = false;
		if (alive || listening) {
			op->status = STATUS_FAILED_PRECONDITION;
			if (alive)
				return errf_first(op->err, sizeof(op->err), -EBUSY,
						  "container %s is still monitored by conmon (pid %d): delete it through "
						  "its control socket first",
						  id, (int)cpid);
			return errf_first(op->err, sizeof(op->err), -EBUSY,
					  "container %s is still monitored: its control socket answers", id);
		}
	}
	return remove_files(op, have_rec ? rec.handler : NULL);
}

/* ---------------------------------------------------------------- pending removals */

static int pending_add(struct containers *cs, const char *pod_id)
{
	int r = 0;
	pthread_mutex_lock(&cs->pending_lock);
	if (cs->n_pending == cs->cap_pending) {
		size_t cap = cs->cap_pending ? 2 * cs->cap_pending : 8;
		void *v = realloc(cs->pending_pods, cap * sizeof(*cs->pending_pods));
		if (!v)
			r = -ENOMEM;
		else {
			cs->pending_pods = v;
			cs->cap_pending = cap;
		}
	}
	if (r >= 0)
		snprintf(cs->pending_pods[cs->n_pending++], sizeof(cs->pending_pods[0]), "%s", pod_id);
	pthread_mutex_unlock(&cs->pending_lock);
	return r;
}

static void pending_del(struct containers *cs, const char *pod_id)
{
	pthread_mutex_lock(&cs->pending_lock);
	for (size_t i = 0; i < cs->n_pending; i++)
		if (strcmp(cs->pending_pods[i], pod_id) == 0) {
			memmove(cs->pending_pods[i], cs->pending_pods[i + 1],
				(cs->n_pending - i - 1) * sizeof(cs->pending_pods[0]));
			cs->n_pending--;
			break;
		}
	pthread_cond_broadcast(&cs->pending_cond);
	pthread_mutex_unlock(&cs->pending_lock);
}

static bool pending_has(const struct containers *cs, const char *pod_id)
{
	for (size_t i = 0; i < cs->n_pending; i++)
		if (strcmp(cs->pending_pods[i], pod_id) == 0)
			return true;
	return false;
}

int containers_wait_pod(struct containers *cs, const char *pod_id)
{
	struct timespec until;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += CONTAINER_PENDING_WAIT_MS / 1000;
	pthread_mutex_lock(&cs->pending_lock);
	while (pending_has(cs, pod_id) && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&cs->pending_cond, &cs->pending_lock, &until);
	bool left = pending_has(cs, pod_id);
	pthread_mutex_unlock(&cs->pending_lock);
	return left ? -ETIMEDOUT : 0;
}

/* ---------------------------------------------------------------- operations */

static struct ctr_op *op_find(struct containers *cs, const char *id)
{
	for (struct ctr_op *op = cs->ops; op; op = op->next)
		if (strcmp(op->id, id) == 0)
			return op;
	return NULL;
}

static void op_free(struct ctr_op *op)
{
	struct containers *cs = op->cs;
	for (struct ctr_op **pp = &cs->ops; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	if (op->read_ev)
		event_free(op->read_ev);
	if (op->timer_ev)
		event_free(op->timer_ev);
	if (op->sync_fd >= 0)
		close(op->sync_fd);
	free(op->removes.v);
	free(op->socket_path);
	free(op->log_path);
	free(op->log_root);
	free(op);
}

static struct ctr_op *op_new(struct containers *cs, enum op_kind kind, const char *id, const char *req)
{
	struct ctr_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->cs = cs;
	op->kind = kind;
	op->sync_fd = -1;
	snprintf(op->id, sizeof(op->id), "%s", id);
	snprintf(op->req, sizeof(op->req), "%s", req ? req : "");
	op->next = cs->ops;
	cs->ops = op;
	return op;
}

static int call_list_add(struct call_list *l, struct ipc_call *call)
{
	struct ipc_call **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->v[l->n++] = call;
	return 0;
}

static void remove_work(void *arg)
{
	struct ctr_op *op = arg;
	op->ret = remove_container(op);
}

static void finish_work(void *arg)
{
	struct ctr_op *op = arg;
	op->ret = finish_removal(op);
	pending_del(op->cs, op->pod_id);
}

static void finish_done(void *arg)
{
	struct ctr_op *op = arg;

	if (op->ret < 0)
		/* The record still says "removing": the next start, or a
		 * RemoveContainer once conmon is gone, finishes it. */
		log_error_errno(op->ret, op->req, "cannot finish removing container", "id=%s error=\"%s\"", op->id,
				op->err);
	else
		log_info(op->req, "container removed (after conmon exited)", "id=%s", op->id);
	op_free(op);
}

/* Answered; now wait for conmon on the worker pool and finish. */
static void finish_start(struct ctr_op *op)
{
	op->pending = false;
	op->finishing = true;
	free(op->removes.v);
	op->removes = (struct call_list){0};
	int r = pending_add(op->cs, op->pod_id);
	if (r >= 0) {
		r = workq_submit(op->cs->env.wq, finish_work, finish_done, op);
		if (r < 0)
			pending_del(op->cs, op->pod_id);
	}
	if (r < 0) {
		log_warn_errno(r, op->req, "cannot finish the removal now; the record says removing", "id=%s", op->id);
		op_free(op);
	}
}

static void remove_done(void *arg)
{
	struct ctr_op *op = arg;

	if (op->ret >= 0 && op->pending)
		log_info(op->req, "container removal answered; finishing once conmon exits", "id=%s conmon_pid=%d",
			 op->id, (int)op->conmon_pid);
	else if (op->ret < 0)
		log_error_errno(op->ret, op->req,
				op->after_create ? "cannot clean up after a failed container create" : "cannot remove container",
				"id=%s error=\"%s\"", op->id, op->err);
	else
		log_info(op->req, op->after_create ? "cleaned up after a failed container create" : "container removed",
			 "id=%s", op->id);
	if (op->create_call)
		ipc_call_fail(op->create_call, op->create_status, "%s", op->create_err);
	for (size_t i = 0; i < op->removes.n; i++) {
		if (op->ret < 0) {
			ipc_call_fail(op->removes.v[i], op->status, "%s", op->err);
		} else {
			Criod__Internal__RemoveContainerResponse resp = CRIOD__INTERNAL__REMOVE_CONTAINER_RESPONSE__INIT;
			ipc_call_reply(op->removes.v[i], &resp.base, NULL, 0);
		}
	}
	if (op->ret >= 0 && op->pending)
		finish_start(op);
	else
		op_free(op);
}

/* A create failed after conmon was started (or its files were made): clean
 * up on the worker pool, then answer. */
static void create_failed(struct ctr_op *op, int status, const char *fmt, ...) _printf_(3, 4);
static void create_failed(struct ctr_op *op, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(op->create_err, sizeof(op->create_err), fmt, ap);
	va_end(ap);
	op->create_status = status;
	log_error(op->req, "cannot create container", "id=%s pod=%s error=\"%s\"", op->id, op->pod_id, op->create_err);
	if (op->read_ev) {
		event_free(op->read_ev);
		op->read_ev = NULL;
	}
	if (op->timer_ev) {
		event_free(op->timer_ev);
		op->timer_ev = NULL;
	}
	if (op->sync_fd >= 0) {
		close(op->sync_fd);
		op->sync_fd = -1;
	}
	op->kind = OP_REMOVE;
	op->after_create = true;
	int r = workq_submit(op->cs->env.wq, remove_work, remove_done, op);
	if (r < 0) {
		/* Its record stays: a RemoveContainer finishes the job. */
		ipc_call_fail(op->create_call, op->create_status, "%s", op->create_err);
		op->create_call = NULL;
		op_free(op);
	}
}

static void sync_line(struct ctr_op *op)
{
	const char *line = op->line;
	size_t ol = STRLEN(CONMON_SYNC_OK), el = STRLEN(CONMON_SYNC_ERROR);

	if (strncmp(line, CONMON_SYNC_ERROR, el) == 0) {
		/* conmon removed what it made and exits. */
		create_failed(op, STATUS_INTERNAL, "%s", line + el);
		return;
	}
	char *end = (char *)line;
	errno = 0;
	long pid = strncmp(line, CONMON_SYNC_OK, ol) == 0 ? strtol(line + ol, &end, 10) : -1;
	/* 0: created, the runtime runs it at start (older monitors: its pid). */
	if (pid < 0 || pid == 1 || pid > INT_MAX || errno || *end || end == line + ol) {
		conmon_kill(op->conmon_pid, op->conmon_start);
		create_failed(op, STATUS_INTERNAL, "conmon reported \"%.200s\", not \"ok <pid>\" or \"error <message>\"",
			      line);
		return;
	}
	int r = record_write(op->cs, op, "created", (pid_t)pid);
	if (r < 0)
		/* The monitor runs and says the same in its state.pb. */
		log_warn_errno(r, op->req, "cannot update the container record", "id=%s", op->id);
	_cleanup_free_ char *sdir = state_dir(op->cs, op->id);
	log_info(op->req, "container created", "id=%s pod=%s pid=%ld conmon_pid=%d socket=%s runtime=%s", op->id,
		 op->pod_id, pid, (int)op->conmon_pid, op->socket_path, op->handler->path);
	Criod__Internal__CreateContainerResponse resp = CRIOD__INTERNAL__CREATE_CONTAINER_RESPONSE__INIT;
	resp.pid = pid;
	resp.socket_path = op->socket_path;
	resp.state_dir = sdir ? sdir : (char *)"";
	ipc_call_reply(op->create_call, &resp.base, NULL, 0);
	op->create_call = NULL;
	op_free(op);
}

static void on_sync_read(evutil_socket_t fd, short what _unused_, void *arg)
{
	struct ctr_op *op = arg;

	for (;;) {
		ssize_t k = read(fd, op->line + op->n, sizeof(op->line) - 1 - op->n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		if (k <= 0) {
			char tail[512];
			int e = k < 0 ? errno : 0;
			/* conmon died or refused its command line. */
			conmon_kill(op->conmon_pid, op->conmon_start);
			conmon_log_tail(op->cs, op->id, tail, sizeof(tail));
			create_failed(op, STATUS_INTERNAL, "conmon exited without reporting%s%s%s%s", e ? ": " : "",
				      e ? strerror(e) : "", tail[0] ? "; its log ends: " : "", tail);
			return;
		}
		op->n += (size_t)k;
		op->line[op->n] = '\0';
		char *nl = memchr(op->line, '\n', op->n);
		if (nl) {
			*nl = '\0';
			sync_line(op);
			return;
		}
		if (op->n >= sizeof(op->line) - 1) {
			conmon_kill(op->conmon_pid, op->conmon_start);
			create_failed(op, STATUS_INTERNAL, "conmon's report is longer than %d bytes", CONMON_SYNC_MAX);
			return;
		}
	}
}

static void on_sync_timeout(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct ctr_op *op = arg;
	conmon_kill(op->conmon_pid, op->conmon_start);
	create_failed(op, STATUS_DEADLINE_EXCEEDED, "conmon did not report the create within %d ms; killed it",
		      CONTAINER_SYNC_TIMEOUT_MS);
}

/* ---------------------------------------------------------------- CreateContainer */

/* Everything the create makes on disk before conmon runs. */
static int make_files(struct ctr_op *op, const char *spec_text, const char *sdir, char *err, size_t errlen)
{
	const struct containers *cs = op->cs;
	_cleanup_free_ char *bundle = bundle_dir(cs, op->id);
	_cleanup_free_ char *cfg = bundle ? xasprintf("%s/config.json", bundle) : NULL;
	int r;

	if (!cfg)
		return -ENOMEM;
	r = record_write(cs, op, "creating", 0);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot write the container record in %s: %s", sdir, strerror(-r));
	r = mkdir_p(cs->bundles_dir, 0755);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot create %s: %s", cs->bundles_dir, strerror(-r));
	/* A bundle without a state directory is a crash's leftover. */
	r = remove_flat_dir(bundle, NULL);
	if (r >= 0)
		r = mkdir_mode(bundle, 0711);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot create %s: %s", bundle, strerror(-r));
	r = write_file_boot(cfg, spec_text, strlen(spec_text), 0600);
	if (r < 0)
		return errf_first(err, errlen, r, "cannot write %s: %s", cfg, strerror(-r));
	if (strncmp(op->socket_path, cs->socks_dir, strlen(cs->socks_dir)) == 0) {
		r = mkdir_p(cs->socks_dir, 0755);
		if (r < 0)
			return errf_first(err, errlen, r, "cannot create %s: %s", cs->socks_dir, strerror(-r));
	}
	return 0;
}

static int start_conmon(struct ctr_op *op, const char *state_arg, const char *sdir, bool tty, bool keep_stdin,
			bool stdin_once, char *err, size_t errlen)
{
	const struct containers *cs = op->cs;
	const struct container_env *env = &cs->env;
	_cleanup_free_ char *bundle = bundle_dir(cs, op->id);
	_cleanup_free_ char *logp = xasprintf("%s/" CONMON_LOG_FILE, sdir);
	int p[2];

	if (!bundle || !logp)
		return -ENOMEM;
	/* The launcher builds conmon's command line from the same
	 * configuration and these fields, checks them again, and starts it
	 * (spawnd_launch.h): no filter of spawnd's reaches the container. */
	struct launch_request lr = {.flags = (tty ? LAUNCH_TTY : 0) | (keep_stdin ? LAUNCH_STDIN : 0) |
					     (keep_stdin && stdin_once ? LAUNCH_STDIN_ONCE : 0)};
	_cleanup_free_ char *real_state = state_dir(cs, op->id);
	if (!real_state)
		return -ENOMEM;
	if (strcmp(state_arg, real_state) != 0)
		lr.flags |= LAUNCH_STATE_ALIAS;
	snprintf(lr.id, sizeof(lr.id), "%s", op->id);
	if (snprintf(lr.handler, sizeof(lr.handler), "%s", op->handler->name) >= (int)sizeof(lr.handler) ||
	    snprintf(lr.log_path, sizeof(lr.log_path), "%s", op->log_path) >= (int)sizeof(lr.log_path))
		return errf_first(err, errlen, -ENAMETOOLONG,
				  "the handler name or log_path is too long for the launcher");

	_cleanup_close_ int logfd = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (logfd < 0)
		return errf_first(err, errlen, -errno, "cannot open %s: %s", logp, strerror(errno));
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return errf_first(err, errlen, -errno, "pipe: %s", strerror(errno));
	/* conmon's end blocks; ours does not. */
	int fl = fcntl(p[1], F_GETFL);
	if (fl < 0 || fcntl(p[1], F_SETFL, fl & ~O_NONBLOCK) < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		return errf_first(err, errlen, r, "fcntl: %s", strerror(-r));
	}
	pid_t pid = 0;
	int r = launcher_conmon(env->launcher, &lr, logfd, p[1], &pid);
	close(p[1]);
	if (r < 0) {
		close(p[0]);
		return errf_first(err, errlen, r, "cannot start %s through the launcher: %s", env->conmon_path,
				  strerror(-r));
	}
	op->sync_fd = p[0];
	op->conmon_pid = pid;
	/* It may already be gone again: the sync pipe tells. */
	if (proc_stat(pid, NULL, &op->conmon_start) < 0)
		op->conmon_start = 0;
	return 0;
}

void container_create(struct containers *cs, struct ipc_call *call, const Criod__Internal__CreateContainerRequest *req,
		      const struct pod_infra *pod)
{
	const struct container_env *env = &cs->env;
	const char *rid = ipc_call_request_id(call);
	char err[ERR_MAX] = "";
	struct stat st;
	int r;

	/* ---- every field, before anything is touched ---- */
	if (!id_is_valid(req->container_id)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "container_id must be 64 lowercase hex characters");
		return;
	}
	const char *id = req->container_id;
	const struct runtime_config *h = handler_find(cs, req->runtime_handler);
	if (!h) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "runtime_handler \"%.64s\" is not a configured runtime",
			      req->runtime_handler);
		return;
	}
	if (access(h->path, X_OK) < 0) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "runtime %s of handler \"%s\": %s", h->path, h->name,
			      strerror(errno));
		return;
	}
	_cleanup_free_ char *own_dir = state_dir(cs, id);
	const char *log_root = NULL;
	r = own_dir ? container_log_path_beneath(env->cfg, req->log_path, own_dir, &log_root, err, sizeof(err)) : -ENOMEM;
	if (r >= 0)
		r = container_log_path_check(req->log_path, env->criod_uid, env->criod_gid, err, sizeof(err));
	if (r < 0) {
		int status = r == -EINVAL || r == -ENOTDIR ? STATUS_INVALID_ARGUMENT
			     : r == -EPERM		  ? STATUS_PERMISSION_DENIED
							  : status_from_errno(r);
		ipc_call_fail(call, status, "%s", err[0] ? err : strerror(-r));
		return;
	}

	_cleanup_free_ char *rootfs = xasprintf("%s/%s/rootfs", cs->imaged_dir, id);
	_cleanup_free_ char *netns = xasprintf("%s/%s", env->pods->netns_dir, pod->id);
	_cleanup_free_ char *ipc = pod->ipc_ns ? pod_path(env->pods, pod->id, "ns/ipc") : NULL;
	_cleanup_free_ char *uts = pod->uts_ns ? pod_path(env->pods, pod->id, "ns/uts") : NULL;
	_cleanup_free_ char *pidns = pod->pid_ns ? pod_path(env->pods, pod->id, "ns/pid") : NULL;
	_cleanup_free_ char *sdir = state_dir(cs, id);
	_cleanup_free_ char *sock = socket_path(cs, id);
	_cleanup_free_ char *alias = xasprintf("%s/%s", cs->state_alias, id);
	if (!rootfs || !netns || (pod->ipc_ns && !ipc) || (pod->uts_ns && !uts) || (pod->pid_ns && !pidns) || !sdir ||
	    !sock || !alias || !pod->cgroup_path) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	struct container_rules rules = {
		.rootfs = rootfs,
		.ns_paths = {[CONTAINER_NS_NETWORK] = netns, [CONTAINER_NS_IPC] = ipc, [CONTAINER_NS_UTS] = uts,
			     [CONTAINER_NS_PID] = pidns},
		.cgroup_parent = pod->cgroup_path,
		.tty = req->tty,
	};
	json_object *spec = NULL;
	bool joins_netns = false;
	r = container_spec_check((const char *)req->config_json.data, req->config_json.len, &rules, &spec,
				 &joins_netns, err, sizeof(err));
	if (r < 0) {
		ipc_call_fail(call, r == -ENOMEM ? STATUS_RESOURCE_EXHAUSTED : STATUS_INVALID_ARGUMENT, "%s", err);
		return;
	}
	/* The node policy, field by field (spawnd_policy.h). */
	_cleanup_free_ char *pod_files = xasprintf("%s/criod/pods/%s", env->state_dir, pod->id);
	_cleanup_free_ char *pod_shm = pod->shm ? pod_path(env->pods, pod->id, "shm") : NULL;
	_cleanup_free_ char *bundle_path = bundle_dir(cs, id);
	_cleanup_(spawnd_policy_pins_free) struct spawnd_policy_pins pins = {0};
	struct spawnd_policy_ctx policy = {.cfg = env->cfg, .pod_files_dir = pod_files, .pod_shm = pod_shm,
					   .pod_ipc_ns = pod->ipc_ns, .pod_id = pod->id,
					   .pod_host_network = !pod->uts_ns, .pod_host_pid = pod->host_pid,
					   .pod_privileged = pod->privileged, .criod_uid = env->criod_uid,
					   .criod_gid = env->criod_gid, .bundle_dir = bundle_path, .pins = &pins};
	int verdict = !pod_files || (pod->shm && !pod_shm) || !bundle_path
			     ? STATUS_RESOURCE_EXHAUSTED
			     : spawnd_policy_enforce(spec, &policy, rid, id, pod->id, err, sizeof(err));
	if (verdict != STATUS_OK) {
		json_object_put(spec);
		ipc_call_fail(call, verdict, "%s", verdict == STATUS_RESOURCE_EXHAUSTED && !err[0] ? "out of memory" : err);
		return;
	}
	/* A TARGET PID namespace: pinned now, the spec names the pin. */
	_cleanup_close_ int pidns_fd = -1;
	json_object *target = target_pidns_entry(spec);
	if (target) {
		_cleanup_free_ char *pin = xasprintf("%s/" CONTAINER_PIDNS_PIN, bundle_path);
		r = pin ? pin_target_pidns(json_object_get_string(member(target, "path")), pod->cgroup_path, &pidns_fd, err,
					   sizeof(err))
			: -ENOMEM;
		json_object *jp = r >= 0 ? json_object_new_string(pin) : NULL;
		if (r >= 0 && (!jp || json_object_object_add(target, "path", jp) < 0)) {
			json_object_put(jp);
			r = -ENOMEM;
		}
		if (r < 0) {
			json_object_put(spec);
			ipc_call_fail(call, r == -ENOMEM ? STATUS_RESOURCE_EXHAUSTED : r == -ESRCH ? STATUS_FAILED_PRECONDITION
												    : STATUS_INVALID_ARGUMENT,
				      "%s", err[0] ? err : "out of memory");
			return;
		}
	}
	/* What the runtime reads is what was checked: no duplicate keys or
	 * parser differences between json-c and the runtime. */
	_cleanup_free_ char *spec_text = NULL;
	const char *t = json_object_to_json_string_ext(spec, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	spec_text = t ? strdup(t) : NULL;
	json_object_put(spec);
	if (!spec_text) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (joins_netns) {
		_cleanup_close_ int fd = -1;
		r = pod_open_netns(env->pods, netns, &fd, err, sizeof(err));
		if (r < 0) {
			ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "pod %s: %s", pod->id, err);
			return;
		}
	}
	if (lstat(rootfs, &st) < 0 || !S_ISDIR(st.st_mode)) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
			      "the root filesystem %s of container %s is not there: MountRootfs first", rootfs, id);
		return;
	}
	if (access(env->conmon_path, X_OK) < 0) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "conmon %s: %s", env->conmon_path, strerror(errno));
		return;
	}
	if (strlen(sock) > SUN_PATH_MAX) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
			      "run_dir %s is too long for a unix socket path for the container", env->run_dir);
		return;
	}
	/* conmon's console socket is <state-dir>/console.sock. */
	const char *state_arg = sdir;
	if (req->tty && strlen(sdir) + 1 + STRLEN(CONMON_CONSOLE_SOCKET) > SUN_PATH_MAX) {
		state_arg = alias;
		if (strlen(alias) + 1 + STRLEN(CONMON_CONSOLE_SOCKET) > SUN_PATH_MAX) {
			ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
				      "state_dir and run_dir are too long for the container's console socket");
			return;
		}
	}
	struct ctr_op *busy = op_find(cs, id);
	if (busy) {
		ipc_call_fail(call, busy->kind == OP_CREATE ? STATUS_ALREADY_EXISTS : STATUS_FAILED_PRECONDITION,
			      "container %s is being %s", id, busy->kind == OP_CREATE ? "created" : "removed");
		return;
	}

	/* ---- make it ---- */
	r = mkdir_p(cs->records_dir, 0755);
	if (r >= 0) {
		r = mkdir_mode(sdir, 0755); /* the claim on the id */
		if (r == -EEXIST) {
			ipc_call_fail(call, STATUS_ALREADY_EXISTS, "container %s already exists", id);
			return;
		}
	}
	if (r < 0) {
		ipc_call_fail(call, status_from_errno(r), "cannot create %s: %s", sdir, strerror(-r));
		return;
	}
	struct ctr_op *op = op_new(cs, OP_CREATE, id, rid);
	if (!op || !(op->socket_path = strdup(sock)) || !(op->log_path = strdup(req->log_path)) ||
	    !(op->log_root = strdup(log_root))) {
		if (op)
			op_free(op);
		(void)remove_flat_dir(sdir, RECORD_FILE);
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	snprintf(op->pod_id, sizeof(op->pod_id), "%s", pod->id);
	op->handler = h;
	op->create_call = call;
	op->created_ns = now_realtime_ns();

	r = make_files(op, spec_text, sdir, err, sizeof(err));
	if (r >= 0)
		r = spawnd_policy_pins_write(&pins, bundle_path, err, sizeof(err)); /* the mounts' sources */
	if (r >= 0 && pidns_fd >= 0) {
		r = pidns_pin_mount(bundle_path, pidns_fd, err, sizeof(err));
		if (r >= 0)
			log_info(rid, "target PID namespace pinned", "id=%s pod=%s pin=%s/" CONTAINER_PIDNS_PIN, id, pod->id,
				 bundle_path);
	}
	if (r >= 0 && state_arg == alias) {
		r = state_alias_setup(cs);
		if (r < 0)
			errf_first(err, sizeof(err), r, "cannot link %s to %s: %s", cs->state_alias, cs->records_dir,
				   strerror(-r));
	}
	if (r >= 0)
		r = start_conmon(op, state_arg, sdir, req->tty, req->stdin, req->stdin_once, err, sizeof(err));
	if (r >= 0) {
		r = record_write(cs, op, "creating", 0); /* conmon's pid and start time */
		if (r < 0)
			errf_first(err, sizeof(err), r, "cannot write the container record: %s", strerror(-r));
	}
	if (r < 0) {
		int status = r == -ENOMEM || r == -ENOSPC || r == -EAGAIN ? STATUS_RESOURCE_EXHAUSTED : STATUS_INTERNAL;
		if (op->conmon_pid > 0) {
			conmon_kill(op->conmon_pid, op->conmon_start);
			create_failed(op, status, "%s", err);
			return;
		}
		log_error_errno(r, rid, "cannot create container", "id=%s pod=%s error=\"%s\"", id, pod->id, err);
		_cleanup_free_ char *bundle = bundle_dir(cs, id);
		if (bundle)
			(void)remove_flat_dir(bundle, NULL);
		(void)remove_flat_dir(sdir, RECORD_FILE);
		op->create_call = NULL;
		op_free(op);
		ipc_call_fail(call, status, "%s", err);
		return;
	}

	struct timeval tv = {.tv_sec = CONTAINER_SYNC_TIMEOUT_MS / 1000, .tv_usec = (CONTAINER_SYNC_TIMEOUT_MS % 1000) * 1000};
	op->read_ev = event_new(env->base, op->sync_fd, EV_READ | EV_PERSIST, on_sync_read, op);
	op->timer_ev = evtimer_new(env->base, on_sync_timeout, op);
	if (!op->read_ev || !op->timer_ev || event_add(op->read_ev, NULL) < 0 || evtimer_add(op->timer_ev, &tv) < 0) {
		conmon_kill(op->conmon_pid, op->conmon_start);
		create_failed(op, STATUS_INTERNAL, "cannot watch conmon's sync pipe");
		return;
	}
	log_debug(rid, "conmon started", "id=%s pod=%s conmon_pid=%d socket=%s state_dir=%s tty=%s stdin=%s",
		  id, pod->id, (int)op->conmon_pid, op->socket_path, state_arg, req->tty ? "true" : "false",
		  req->stdin ? "true" : "false");
}

/* ---------------------------------------------------------------- RemoveContainer */

void container_remove(struct containers *cs, struct ipc_call *call, const Criod__Internal__RemoveContainerRequest *req)
{
	if (!id_is_valid(req->container_id)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "container_id must be 64 lowercase hex characters");
		return;
	}
	struct ctr_op *op = op_find(cs, req->container_id);
	if (op && op->finishing) {
		/* Answered before: the rest follows conmon's exit. */
		Criod__Internal__RemoveContainerResponse resp = CRIOD__INTERNAL__REMOVE_CONTAINER_RESPONSE__INIT;
		ipc_call_reply(call, &resp.base, NULL, 0);
		return;
	}
	if (op && op->kind == OP_CREATE) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "container %s is being created", req->container_id);
		return;
	}
	if (!op) {
		op = op_new(cs, OP_REMOVE, req->container_id, ipc_call_request_id(call));
		if (!op) {
			ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
		int r = workq_submit(cs->env.wq, remove_work, remove_done, op);
		if (r < 0) {
			op_free(op);
			ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot remove container %s: %s", req->container_id,
				      strerror(-r));
			return;
		}
	}
	/* A removal in progress answers this call too. */
	if (call_list_add(&op->removes, call) < 0)
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
}

/* ---------------------------------------------------------------- set-up */

int containers_new(const struct container_env *env, struct containers **out)
{
	struct containers *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->env = *env;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&cs->pending_lock, NULL);
	pthread_cond_init(&cs->pending_cond, &ca);
	pthread_condattr_destroy(&ca);
	cs->bundles_dir = xasprintf("%s/containers", env->run_dir);
	cs->socks_dir = xasprintf("%s/s", env->run_dir);
	cs->runtime_root = xasprintf("%s/runc", env->run_dir);
	cs->state_alias = xasprintf("%s/c", env->run_dir);
	cs->records_dir = xasprintf("%s/spawnd/containers", env->state_dir);
	cs->imaged_dir = xasprintf("%s/imaged/containers", env->state_dir);
	if (!cs->bundles_dir || !cs->socks_dir || !cs->runtime_root || !cs->state_alias || !cs->records_dir ||
	    !cs->imaged_dir) {
		containers_free(cs);
		return -ENOMEM;
	}
	int r = mkdir_p(cs->records_dir, 0755);
	if (r < 0) {
		log_error_errno(r, NULL, "cannot create the container record directory", "path=%s", cs->records_dir);
		containers_free(cs);
		return r;
	}
	*out = cs;
	return 0;
}

void containers_free(struct containers *cs)
{
	if (!cs)
		return;
	while (cs->ops) {
		struct ctr_op *op = cs->ops;
		if (op->create_call) {
			log_warn(op->req, "spawnd is stopping before conmon reported; its record stays",
				 "id=%s conmon_pid=%d", op->id, (int)op->conmon_pid);
			ipc_call_fail(op->create_call, STATUS_UNAVAILABLE,
				      "spawnd is stopping; conmon %d goes on creating container %s", (int)op->conmon_pid,
				      op->id);
		}
		for (size_t i = 0; i < op->removes.n; i++)
			ipc_call_fail(op->removes.v[i], STATUS_UNAVAILABLE, "spawnd is stopping");
		op_free(op);
	}
	free(cs->bundles_dir);
	free(cs->socks_dir);
	free(cs->runtime_root);
	free(cs->state_alias);
	free(cs->records_dir);
	free(cs->imaged_dir);
	free(cs->pending_pods);
	pthread_cond_destroy(&cs->pending_cond);
	pthread_mutex_destroy(&cs->pending_lock);
	free(cs);
}

void containers_recover(struct containers *cs)
{
	DIR *d = opendir(cs->records_dir);
	if (!d) {
		log_warn_errno(errno, NULL, "cannot read the container record directory", "path=%s", cs->records_dir);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		struct ctr_record rec;
		if (!id_is_valid(de->d_name) || record_read(cs, de->d_name, &rec) < 0 || !rec.removing)
			continue;
		struct ctr_op *op = op_new(cs, OP_REMOVE, rec.id, NULL);
		if (!op)
			break;
		op->handler = rec.handler;
		op->conmon_pid = rec.conmon_pid;
		op->conmon_start = rec.conmon_start;
		int r = finish_removal(op);
		if (r < 0)
			log_error_errno(r, NULL, "cannot finish removing a container", "id=%s error=\"%s\"", rec.id,
					op->err);
		else
			log_info(NULL, "finished removing a container", "id=%s pod=%s", rec.id, rec.pod_id);
		op_free(op);
	}
	closedir(d);
}
