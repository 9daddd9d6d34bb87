/* spawnd's launcher (spawnd_launch.h): forked before spawnd confines
 * itself, it starts the conmon monitors spawnd asks for, and nothing else. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "beneath.h"
#include "confine.h"
#include "conmon_standby.h"
#include "log.h"
#include "macro.h"
#include "spawn.h"
#include "spawnd_confine.h"
#include "spawnd_launch.h"
#include "util.h"

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define OWN_LOG "console.log" /* spawnd_container.h CONTAINER_OWN_LOG */

struct launcher {
	int fd;     /* -1 while a launcher of its own unit is not connected */
	pid_t pid;  /* the forked launcher's; 0 for one of its own unit */
	char *path; /* the socket of a launcher of its own unit, or NULL */
	uint64_t cap_bounding;
	uint32_t seq;
	pthread_mutex_t lock;
};

static uint64_t own_bounding(void)
{
	uint64_t bnd = 0;
	for (int cap = 0; cap <= 63; cap++) {
		int r = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0);
		if (r < 0)
			break;
		if (r)
			bnd |= UINT64_C(1) << cap;
	}
	return bnd;
}

/* ---------------------------------------------------------------- the checks */

static bool nul_terminated(const char *s, size_t size) { return memchr(s, '\0', size) != NULL; }

static char *keep(struct launch_argv *a, char *s)
{
	for (size_t i = 0; s && i < ARRAY_SIZE(a->owned); i++)
		if (!a->owned[i])
			return a->owned[i] = s;
	free(s);
	return NULL;
}

void launch_argv_clear(struct launch_argv *a)
{
	for (size_t i = 0; i < ARRAY_SIZE(a->owned); i++) {
		free(a->owned[i]);
		a->owned[i] = NULL;
	}
}

int launch_argv_build(const struct launch_env *env, const struct launch_request *req, struct launch_argv *a,
		      char *err, size_t errlen)
{
	const struct criod_config *cfg = env->cfg;
	size_t n = 0;

	memset(a, 0, sizeof(*a));
	if (req->magic != LAUNCH_MAGIC)
		return errf(err, errlen, -EINVAL, "magic %#x is not a launch request's", req->magic);
	if (req->flags & ~(uint32_t)LAUNCH_FLAGS_ALL)
		return errf(err, errlen, -EINVAL, "flags %#x: unknown bits", req->flags);
	if ((req->flags & LAUNCH_STDIN_ONCE) && !(req->flags & LAUNCH_STDIN))
		return errf(err, errlen, -EINVAL, "flags %#x: stdin_once without stdin", req->flags);
	if (!nul_terminated(req->id, sizeof(req->id)) || !id_is_valid(req->id))
		return errf(err, errlen, -EINVAL, "id must be 64 lowercase hex characters");
	if (!nul_terminated(req->handler, sizeof(req->handler)))
		return errf(err, errlen, -EINVAL, "handler is not terminated");
	const struct runtime_config *h = config_runtime(cfg, req->handler);
	if (!h || !h->path || h->path[0] != '/')
		return errf(err, errlen, -EINVAL, "handler \"%.64s\" is no [runtime.NAME] of the configuration",
			       req->handler);
	if (!nul_terminated(req->log_path, sizeof(req->log_path)))
		return errf(err, errlen, -EINVAL, "log_path is not terminated");

	char *sdir = keep(a, xasprintf("%s/spawnd/containers/%s", cfg->state_dir, req->id));
	char *bundle = keep(a, xasprintf("%s/containers/%s", cfg->run_dir, req->id));
	char *rroot = keep(a, xasprintf("%s/runc", cfg->run_dir));
	char *state = req->flags & LAUNCH_STATE_ALIAS ? keep(a, xasprintf("%s/c/%s", cfg->run_dir, req->id)) : sdir;
	char *sock = bundle ? xasprintf("%s/conmon.sock", bundle) : NULL;
	if (sock && strlen(sock) > SUN_PATH_MAX) { /* as spawnd_container.c's socket_path */
		free(sock);
		sock = xasprintf("%s/s/%s", cfg->run_dir, req->id);
	}
	sock = keep(a, sock);
	if (!sdir || !bundle || !rroot || !state || !sock) {
		launch_argv_clear(a);
		return errf(err, errlen, -ENOMEM, "out of memory");
	}

	/* The log: the container's own console.log, or beneath a log root
	 * (spawnd checked who may write on the way; conmon opens it beneath
	 * the root without following anything). */
	const char *log_root = NULL;
	size_t root, off, len = strlen(req->log_path);
	const char *why = "";
	char *const own[] = {sdir};
	if (path_beneath_roots(req->log_path, len, LAUNCH_PATH_MAX, own, 1, &root, &off, &why) == 0 &&
	    strcmp(req->log_path + off, OWN_LOG) == 0) {
		log_root = sdir;
	} else {
		int r = path_beneath_roots(req->log_path, len, LAUNCH_PATH_MAX, cfg->log_roots, cfg->n_log_roots, &root,
					   &off, &why);
		if (r < 0 || off >= len) {
			launch_argv_clear(a);
			return errf(err, errlen, -EINVAL, "log_path \"%.256s\" %s", req->log_path,
				       r < 0 ? why : "is a log root itself");
		}
		log_root = cfg->log_roots[root];
	}

	snprintf(a->uid, sizeof(a->uid), "%u", (unsigned)env->criod_uid);
	const char **v = a->argv;
	v[n++] = env->conmon_path;
	v[n++] = "--id";
	v[n++] = req->id;
	v[n++] = "--bundle";
	v[n++] = bundle;
	v[n++] = "--runtime";
	v[n++] = h->path;
	v[n++] = "--runtime-root";
	v[n++] = rroot;
	v[n++] = "--log-path";
	v[n++] = req->log_path;
	v[n++] = "--log-root";
	v[n++] = log_root;
	v[n++] = "--state-dir";
	v[n++] = state;
	v[n++] = "--socket";
	v[n++] = sock;
	v[n++] = "--allowed-uid";
	v[n++] = a->uid;
	if (req->flags & LAUNCH_TTY)
		v[n++] = "--tty";
	if (req->flags & LAUNCH_STDIN)
		v[n++] = "--stdin";
	if (req->flags & LAUNCH_STDIN_ONCE)
		v[n++] = "--stdin-once";
	v[n++] = "--sync-fd";
	v[n++] = "3";
	if (env->config_path) {
		v[n++] = "--config";
		v[n++] = env->config_path;
	}
	if (env->log_level) {
		v[n++] = "--log-level";
		v[n++] = env->log_level;
	}
	if (confine_log_only)
		v[n++] = "--seccomp-log"; /* spawnd's --seccomp-log, as the filters are */
	v[n] = NULL;
	return 0;
}

int launch_fds_check(int log_fd, int sync_fd, char *err, size_t errlen)
{
	struct stat st;
	int fl;

	if (fstat(log_fd, &st) < 0 || !S_ISREG(st.st_mode) || (fl = fcntl(log_fd, F_GETFL)) < 0 ||
	    (fl & O_ACCMODE) == O_RDONLY)
		return errf(err, errlen, -EINVAL, "the first descriptor is not a regular file open for writing");
	if (fstat(sync_fd, &st) < 0 || !S_ISFIFO(st.st_mode) || (fl = fcntl(sync_fd, F_GETFL)) < 0 ||
	    (fl & O_ACCMODE) != O_WRONLY)
		return errf(err, errlen, -EINVAL, "the second descriptor is not the write end of a pipe");
	return 0;
}

/* ---------------------------------------------------------------- the launcher */

/* Start o's program detached: a short-lived intermediate child runs
 * spawn_process() (so the program is its child, in the session o asks
 * for) and exits at once, which hands the program to init (or the nearest
 * subreaper). Only the intermediate is reaped here. */
static int spawn_detached(const struct spawn_opts *o, pid_t *out)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t mid = fork();
	if (mid == 0) {
		int32_t msg[2] = {0, 0};
		pid_t pid = 0;
		close(p[0]);
		msg[0] = spawn_process(o, &pid);
		msg[1] = pid;
		ssize_t _unused_ w = write(p[1], msg, sizeof(msg));
		_exit(0);
	}
	int saved = errno;
	close(p[1]);
	if (mid < 0) {
		close(p[0]);
		return -saved;
	}
	int32_t msg[2];
	ssize_t n;
	do
		n = read(p[0], msg, sizeof(msg));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(msg))
		return -EIO;
	if (msg[0] < 0)
		return msg[0];
	*out = (pid_t)msg[1];
	return 0;
}

/* ---------------------------------------------------------------- the standby conmon */

/* The one conmon started ahead of the next request (conmon_standby.h).
 * Only the launcher process uses it; sock -1: there is none. */
static struct {
	pid_t pid;
	int sock;
} standby = {0, -1};

void launch_standby_prepare(const struct launch_env *env)
{
	static char pad[STANDBY_ARGV_MAX];
	int sv[2];

	if (standby.sock >= 0)
		return;
	/* The padding makes the standby's command line STANDBY_ARGV_MAX
	 * bytes long: room for the one it will be given. */
	size_t used = strlen(env->conmon_path) + 1 + strlen(STANDBY_ARG) + 1;
	size_t padlen = used + 2 < sizeof(pad) ? sizeof(pad) - 1 - used : 1;
	memset(pad, ' ', padlen);
	pad[padlen] = '\0';
	const char *argv[] = {env->conmon_path, STANDBY_ARG, pad, NULL};
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn_errno(errno, NULL, "cannot make a standby conmon's socket");
		return;
	}
	struct spawn_opts o = {
		.argv = argv,
		.cwd = "/",
		.stdin_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = -1, /* the launcher's, until it is given its log */
		.keep_fds = &sv[1],
		.n_keep_fds = 1, /* fd 3: STANDBY_FD */
		.new_session = 1,
	};
	pid_t pid = 0;
	int r = spawn_detached(&o, &pid);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		log_warn_errno(r, NULL, "cannot start a standby conmon", "conmon=%s", env->conmon_path);
		return;
	}
	standby.pid = pid;
	standby.sock = sv[0];
	log_debug(NULL, "standby conmon started", "pid=%d", (int)pid);
}

/* Hand argv and the two descriptors to the standby conmon: 0 and its pid,
 * or -EAGAIN when there is none that takes them (start conmon as ever). */
static int standby_take(const char *const *argv, int log_fd, int sync_fd, pid_t *pid)
{
	static char buf[STANDBY_ARGV_MAX];
	union {
		char b[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;

	if (standby.sock < 0)
		return -EAGAIN;
	int n = standby_pack(argv, buf, sizeof(buf));
	if (n < 0)
		return -EAGAIN; /* does not fit: the standby waits for the next one */
	int fds[2] = {log_fd, sync_fd};
	struct iovec iov = {.iov_base = buf, .iov_len = (size_t)n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
	memset(u.b, 0, sizeof(u.b));
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	ssize_t w;
	do
		w = sendmsg(standby.sock, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	int saved = errno;
	close(standby.sock); /* it has its message, or it is gone */
	standby.sock = -1;
	if (w != n) {
		log_warn_errno(w < 0 ? saved : EIO, NULL, "the standby conmon is gone; starting conmon anew",
			       "pid=%d", (int)standby.pid);
		return -EAGAIN;
	}
	*pid = standby.pid;
	return 0;
}

/* One request: received, checked, conmon started, answered. Returns
 * false when spawnd is gone. */
bool launch_serve_one(const struct launch_env *env, int sock)
{
	struct launch_request req;
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = &req, .iov_len = sizeof(req)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	int fds[3] = {-1, -1, -1};
	size_t nfds = 0;
	char err[512] = "";

	memset(&req, 0, sizeof(req));
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (n < 0 && errno == EINTR)
		return true;
	if (n <= 0)
		return false; /* spawnd closed its end (or the socket failed): done */
	nfds = msg_take_fds(&mh, fds, ARRAY_SIZE(fds));

	struct launch_reply rep = {.magic = LAUNCH_MAGIC, .seq = req.seq, .ret = 0, .pid = 0};
	struct launch_argv a = {0};
	int r = 0;
	if (n != (ssize_t)sizeof(req) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		r = errf(err, sizeof(err), -EINVAL, "a request of %zd bytes, not %zu", n, sizeof(req));
	else if (nfds != 2)
		r = errf(err, sizeof(err), -EINVAL, "%zu descriptors, not 2", nfds);
	if (r >= 0)
		r = launch_fds_check(fds[0], fds[1], err, sizeof(err));
	if (r >= 0)
		r = launch_argv_build(env, &req, &a, err, sizeof(err));
	if (r >= 0) {
		struct spawn_opts o = {
			.argv = a.argv,
			.cwd = "/",
			.stdin_fd = -1,
			.stdout_fd = fds[0],
			.stderr_fd = fds[0],
			.keep_fds = &fds[1],
			.n_keep_fds = 1, /* fd 3: --sync-fd 3 */
			.new_session = 1,
		};
		pid_t pid = 0;
		r = standby_take(a.argv, fds[0], fds[1], &pid);
		if (r == -EAGAIN)
			r = spawn_detached(&o, &pid);
		if (r < 0)
			errf(err, sizeof(err), r, "cannot start %s: %s", env->conmon_path, strerror(-r));
		else
			rep.pid = pid;
	}
	if (r < 0)
		log_error_errno(r, NULL, "launcher refused a request", "id=%.64s error=\"%s\"",
				nul_terminated(req.id, sizeof(req.id)) ? req.id : "?", err);
	launch_argv_clear(&a);
	for (size_t i = 0; i < nfds && i < ARRAY_SIZE(fds); i++)
		close(fds[i]);
	rep.ret = r;
	ssize_t w;
	do
		w = send(sock, &rep, sizeof(rep), MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	launch_standby_prepare(env); /* the next one's, once this one is answered */
	return w == (ssize_t)sizeof(rep);
}

static _noreturn_ void launcher_main(const struct launch_env *env, int sock, pid_t parent)
{
	static const int reset[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2};
	sigset_t none;

	/* spawnd's handlers (libevent's) write to spawnd's loop: not ours. */
	for (size_t i = 0; i < ARRAY_SIZE(reset); i++)
		signal(reset[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
		_exit(1);
	(void)prctl(PR_SET_NAME, "spawnd-launcher", 0, 0, 0);
	/* Only stdio and the socket: nothing of spawnd's (its listening
	 * socket, its records) stays here. */
	if (sock != 3) {
		if (dup2(sock, 3) < 0)
			_exit(1);
		sock = 3;
	}
	if (syscall(SYS_close_range, 4, ~0U, 0) < 0)
		for (int fd = 4; fd < 1024; fd++)
			close(fd);
	log_init("spawnd-launcher");
	/* The probe is spawnd's (its filter); the launcher is not probed. */
	confine_probe = NULL;
	if (spawnd_confine_apply("spawnd-launcher", spawnd_confine_caps(env->cfg), env->cfg) < 0)
		_exit(1);
	log_info(NULL, "launcher ready", "spawnd_pid=%d", (int)parent);
	launch_standby_prepare(env);
	while (launch_serve_one(env, sock))
		;
	_exit(0);
}

int launcher_start(const struct launch_env *env, struct launcher **out)
{
	int sv[2];
	struct launcher *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		int r = -errno;
		free(l);
		return r;
	}
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		launcher_main(env, sv[1], parent);
	}
	int saved = errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		free(l);
		return -saved;
	}
	l->fd = sv[0];
	l->pid = pid;
	/* What launcher_main cuts itself to (spawnd_confine_apply). */
	l->cap_bounding = own_bounding() & spawnd_confine_caps(env->cfg);
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return 0;
}

pid_t launcher_pid(const struct launcher *l) { return l ? l->pid : -1; }

/* Connect to the launcher at l->path: the listener must be root, and
 * its first message the hello (a launcher that refused us closes). */
static int connect_now(struct launcher *l)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ucred uc;
	socklen_t len = sizeof(uc);
	struct launch_hello h;

	if (strlen(l->path) > SUN_PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, l->path, strlen(l->path));
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_warn_errno(errno, NULL, "cannot reach the launcher", "socket=%s", l->path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return log_warn_errno(errno, NULL, "cannot reach the launcher", "socket=%s", l->path);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return log_warn_errno(errno, NULL, "cannot reach the launcher: SO_PEERCRED", "socket=%s", l->path);
	if (uc.uid != 0)
		return log_error_errno(EPERM, NULL, "the launcher's socket is not root's: not used", "socket=%s uid=%u pid=%d",
				       l->path, (unsigned)uc.uid, (int)uc.pid);
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	int p;
	do
		p = poll(&pfd, 1, LAUNCH_TIMEOUT_MS);
	while (p < 0 && errno == EINTR);
	if (p <= 0)
		return log_warn_errno(p < 0 ? errno : ETIMEDOUT, NULL, "the launcher did not say hello", "socket=%s",
				      l->path);
	ssize_t n = recv(fd, &h, sizeof(h), MSG_DONTWAIT);
	if (n == 0)
		return log_error_errno(ECONNREFUSED, NULL, "the launcher refused this spawnd (its log says why)",
				       "socket=%s launcher_pid=%d", l->path, (int)uc.pid);
	if (n != (ssize_t)sizeof(h) || h.magic != LAUNCH_MAGIC || h.kind != LAUNCH_HELLO)
		return log_error_errno(n < 0 ? errno : EIO, NULL, "the launcher's hello is not one", "socket=%s", l->path);
	l->cap_bounding = h.cap_bounding;
	log_info(NULL, "connected to the launcher", "socket=%s launcher_pid=%d cap_bounding=%016llx", l->path,
		 (int)uc.pid, (unsigned long long)h.cap_bounding);
	l->fd = fd;
	fd = -1;
	return 0;
}

int launcher_connect(const char *path, struct launcher **out)
{
	struct launcher *l = calloc(1, sizeof(*l));

	if (!l || !path || path[0] != '/' || !(l->path = strdup(path))) {
		free(l);
		return path && path[0] == '/' ? -ENOMEM : -EINVAL;
	}
	l->fd = -1;
	pthread_mutex_init(&l->lock, NULL);
	int r = connect_now(l);
	if (r < 0) {
		launcher_free(l);
		return r;
	}
	*out = l;
	return 0;
}

int launcher_conn_fd(const struct launcher *l) { return l && l->path ? l->fd : -1; }

uint64_t launcher_cap_bounding(struct launcher *l)
{
	if (!l)
		return 0;
	pthread_mutex_lock(&l->lock);
	uint64_t b = l->cap_bounding;
	pthread_mutex_unlock(&l->lock);
	return b;
}

static int send_request(struct launcher *l, const struct launch_request *req, int log_fd, int sync_fd)
{
	union {
		char buf[CMSG_SPACE(2 * sizeof(int))];
		struct cmsghdr align;
	} u;
	int fds[2] = {log_fd, sync_fd};
	struct iovec iov = {.iov_base = (void *)req, .iov_len = sizeof(*req)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(u.buf, 0, sizeof(u.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	ssize_t w;
	do
		w = sendmsg(l->fd, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return w == (ssize_t)sizeof(*req) ? 0 : -EIO;
}

/* The answer to seq: earlier ones (of requests that timed out) are
 * dropped. */
static int recv_reply(struct launcher *l, uint32_t seq, pid_t *pid)
{
	int64_t deadline = now_monotonic_ns() + (int64_t)LAUNCH_TIMEOUT_MS * 1000000;

	for (;;) {
		int64_t left = (deadline - now_monotonic_ns()) / 1000000;
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = l->fd, .events = POLLIN};
		int p = poll(&pfd, 1, (int)left);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			return -errno;
		if (p == 0)
			return -ETIMEDOUT;
		struct launch_reply rep;
		ssize_t n = recv(l->fd, &rep, sizeof(rep), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE; /* the launcher is gone */
		if (n != (ssize_t)sizeof(rep) || rep.magic != LAUNCH_MAGIC)
			return -EIO;
		if (rep.seq != seq)
			continue;
		if (rep.ret < 0)
			return rep.ret;
		if (rep.pid <= 1)
			return -EIO;
		*pid = rep.pid;
		return 0;
	}
}

int launcher_conmon(struct launcher *l, const struct launch_request *req, int log_fd, int sync_fd, pid_t *pid)
{
	struct launch_request copy = *req;

	if (!l)
		return -ENOTCONN;
	pthread_mutex_lock(&l->lock);
	copy.magic = LAUNCH_MAGIC;
	copy.seq = ++l->seq;
	/* The connection is never remade: when it drops spawnd stops
	 * (launcher_conn_fd), as when a forked launcher dies. */
	int r = send_request(l, &copy, log_fd, sync_fd);
	if (r >= 0)
		r = recv_reply(l, copy.seq, pid);
	pthread_mutex_unlock(&l->lock);
	return r;
}

void launcher_free(struct launcher *l)
{
	if (!l)
		return;
	if (l->fd >= 0)
		close(l->fd); /* EOF: a forked launcher exits, one of its own unit waits for the next spawnd */
	free(l->path);
	if (l->pid > 0)
		while (waitpid(l->pid, NULL, 0) < 0 && errno == EINTR)
			;
	pthread_mutex_destroy(&l->lock);
	free(l);
}
