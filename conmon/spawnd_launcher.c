/* spawnd-launcher: spawnd's launcher (spawnd_launch.h) as a process of its
 * own unit, criod-spawnd-launcher.service, so that spawnd's unit can take
 * from spawnd what no container may lose (packaging/systemd/).
 *
 * It is a binary of its own rather than spawnd in a launcher mode: the
 * lenient unit, from which every conmon and container descends, then runs
 * code that parses nothing but the launcher's fixed-size typed request
 * (no gRPC, no protobuf, no pod or container handling is even linked
 * in), and the binary spawnd must run (the peer check's exe) is never the
 * launcher's own.
 *
 * It binds a root-only (0600) SOCK_SEQPACKET unix socket at
 * $CRIOD_SPAWND_LAUNCHER and serves one spawnd at a time. Every
 * connection is checked before anything is read from it
 * (launch_peer_check: uid 0, /proc/<pid>/exe the spawnd binary beside this
 * one, /proc/<pid>/cgroup exactly $CRIOD_SPAWND_CGROUP, on a pidfd); a
 * refused one is logged with the reason and closed. An accepted one gets
 * a launch_hello (this process's bounding set, what containers can have)
 * and then the requests of spawnd_launch.h, checked again as ever. A newer
 * accepted connection replaces the one before (spawnd restarted). The
 * conmons it starts are detached but stay in its cgroup, which its unit's
 * KillMode=process leaves alone on a restart. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "caps.h"
#include "confine.h"
#include "daemon.h"
#include "log.h"
#include "macro.h"
#include "spawnd_confine.h"
#include "spawnd_launch.h"
#include "spawnd_peer.h"
#include "util.h"

static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }

/* The socket at path: SOCK_SEQPACKET, mode 0600, owned by root (this
 * process), a stale one from an earlier run replaced. */
static int bind_socket(const char *path, int *out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!path || path[0] != '/' || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, strlen(path));
	_cleanup_free_ char *dir = strdup(path);
	if (!dir)
		return -ENOMEM;
	int r = mkdir_p(dirname(dir), 0755);
	if (r < 0)
		return r;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	mode_t old = umask(0177); /* never a moment with a wider mode */
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0)
		return r;
	if (chmod(path, 0600) < 0 || listen(fd, 8) < 0)
		return -errno;
	*out = fd;
	fd = -1;
	return 0;
}

static void send_hello(int fd)
{
	struct launch_hello h = {.magic = LAUNCH_MAGIC, .kind = LAUNCH_HELLO, .pid = (int32_t)getpid()};
	for (int cap = 0; cap <= 63; cap++) {
		int r = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0);
		if (r < 0)
			break;
		if (r)
			h.cap_bounding |= CAPBIT(cap);
	}
	ssize_t _unused_ w = send(fd, &h, sizeof(h), MSG_NOSIGNAL);
}

/* A connection on lfd: checked, then the current spawnd's (replacing
 * *conn) or closed. */
static void take_connection(int lfd, const struct launch_peer *peer, int *conn)
{
	char err[512] = "";
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			log_warn_errno(errno, NULL, "accept failed");
		return;
	}
	int r = launch_peer_check(fd, peer, err, sizeof(err));
	if (r < 0) {
		log_warn_errno(r, NULL, "launcher refused a connection", "reason=\"%s\"", err);
		close(fd);
		return;
	}
	struct ucred uc = {0};
	socklen_t len = sizeof(uc);
	(void)getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len);
	if (*conn >= 0) {
		log_info(NULL, "a new spawnd connection replaces the previous one", "spawnd_pid=%d", (int)uc.pid);
		close(*conn);
	} else
		log_info(NULL, "spawnd connected", "spawnd_pid=%d", (int)uc.pid);
	*conn = fd;
	send_hello(fd);
}

int main(int argc, char **argv)
{
	struct daemon d;
	char exe[PATH_MAX];

	daemon_configure(&d, "spawnd-launcher", argc, argv);
	const struct criod_config *cfg = &d.cfg;
	if (geteuid() != 0)
		return log_error_errno(EPERM, NULL, "must run as root"), EXIT_FAILURE;
	const char *path = getenv(LAUNCHER_SOCKET_ENV), *cgroup = getenv(LAUNCHER_PEER_CGROUP_ENV);
	if (!path || path[0] != '/' || !cgroup || cgroup[0] != '/' || strcmp(cgroup, "/") == 0) {
		log_error(NULL, "set " LAUNCHER_SOCKET_ENV " to the socket's path and " LAUNCHER_PEER_CGROUP_ENV
				" to spawnd's cgroup (not /)",
			  "socket=\"%s\" spawnd_cgroup=\"%s\"", path ? path : "", cgroup ? cgroup : "");
		return EXIT_FAILURE;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return log_error_errno(errno, NULL, "cannot find my own executable"), EXIT_FAILURE;
	exe[n] = '\0';
	const char *bindir = dirname(exe);
	_cleanup_free_ char *conmon = xasprintf("%s/conmon", bindir), *spawnd = xasprintf("%s/spawnd", bindir);
	_cleanup_free_ char *config = d.config_path ? realpath(d.config_path, NULL) : NULL;
	if (!conmon || !spawnd || (d.config_path && !config))
		return log_error_errno(errno ? errno : ENOMEM, NULL, "cannot resolve my paths"), EXIT_FAILURE;
	uid_t criod_uid;
	gid_t criod_gid;
	int r = lookup_user(cfg->criod_user, &criod_uid, &criod_gid);
	if (r < 0)
		return log_error_errno(r, NULL, "criod user not found; create it or set [criod] user", "user=%s",
				       cfg->criod_user),
		       EXIT_FAILURE;
	struct launch_env env = {
		.cfg = cfg,
		.conmon_path = conmon,
		.config_path = config,
		.log_level = d.log_level,
		.criod_uid = criod_uid,
	};
	struct launch_peer peer = {.exe = spawnd, .cgroup = cgroup};

	struct sigaction sa = {.sa_handler = on_stop};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int lfd = -1;
	r = bind_socket(path, &lfd);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot listen", "socket=%s", path), EXIT_FAILURE;
	/* What the launcher spawnd forks holds: the node's bound, a filter
	 * only on a hardened node (spawnd_confine.h). */
	confine_probe = NULL;
	if (spawnd_confine_apply("spawnd-launcher", spawnd_confine_caps(cfg), cfg) < 0)
		return EXIT_FAILURE;
	log_info(NULL, "ready", "version=%s pid=%d uid=%u socket=%s spawnd=%s spawnd_cgroup=%s", PACKAGE_VERSION,
		 (int)getpid(), (unsigned)getuid(), path, spawnd, cgroup);

	launch_standby_prepare(&env);
	int conn = -1;
	while (!stop_signal) {
		struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN}, {.fd = conn, .events = POLLIN}};
		int p = poll(pfd, conn >= 0 ? 2 : 1, -1);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0) {
			r = log_error_errno(errno, NULL, "poll failed");
			break;
		}
		if (conn >= 0 && pfd[1].revents && !launch_serve_one(&env, conn)) {
			log_info(NULL, "spawnd disconnected");
			close(conn);
			conn = -1;
		}
		if (pfd[0].revents & POLLIN)
			take_connection(lfd, &peer, &conn);
	}
	if (conn >= 0)
		close(conn);
	close(lfd);
	/* systemd starts the next launcher only after this one stopped.
	 * Running conmons are left as they are (init's, in this cgroup). */
	(void)unlink(path);
	log_info(NULL, "stopping", "signal=%d", (int)stop_signal);
	config_free(&d.cfg);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
