/* criod: the unprivileged CRI front end.
 *
 * Started as root (the usual way), it creates its directories and binds the
 * CRI socket, hands both to the criod user, then drops to that user with no
 * capabilities before it reads a single request. Started as that user
 * directly (systemd User=criod), it just binds. Socket-activated
 * (criod.socket), it takes the listening socket systemd passes instead of
 * binding one. Everything privileged is
 * asked of imaged, netd and spawnd over their sockets. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "activation.h"
#include "confine.h"
#include "cri.h"
#include "daemon.h"
#include "events.h"
#include "grpc.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "stream_server.h"
#include "util.h"

/* Make the socket's directory and criod's state directory, bind the socket
 * (unless systemd passed it: *listen_fd >= 0 already) and the metrics
 * endpoint's ([metrics]). */
static int setup_as_root(const struct criod_config *cfg, int *listen_fd, int *metrics_fd)
{
	uid_t uid;
	gid_t gid;
	int r = lookup_user(cfg->criod_user, &uid, &gid);
	if (r < 0)
		return log_error_errno(r, NULL, "criod user not found; create it or set [criod] user", "user=%s",
				       cfg->criod_user);
	_cleanup_free_ char *sockdir = strdup(cfg->criod_socket);
	_cleanup_free_ char *state = NULL;
	if (!sockdir || asprintf(&state, "%s/criod", cfg->state_dir) < 0)
		return log_error_errno(ENOMEM, NULL, "out of memory");
	if ((r = mkdir_p(cfg->run_dir, 0755)) < 0 || (r = mkdir_p(dirname(sockdir), 0755)) < 0)
		return log_error_errno(r, NULL, "cannot create socket directory", "path=%s", cfg->criod_socket);
	/* The state directory is shared with the root daemons (each owns a
	 * subdirectory); only criod's own is private to it. */
	if ((r = mkdir_p(cfg->state_dir, 0755)) < 0 || (r = mkdir_p(state, 0700)) < 0)
		return log_error_errno(r, NULL, "cannot create state directory", "path=%s", state);
	if (chown(state, uid, gid) < 0 || chmod(state, 0700) < 0)
		return log_error_errno(errno, NULL, "cannot hand state directory to criod user", "path=%s", state);

	if (cfg->metrics_enabled) {
		_cleanup_free_ char *mdir = strdup(cfg->metrics_socket);
		if (!mdir)
			return log_error_errno(ENOMEM, NULL, "out of memory");
		if (!cfg->metrics_port && (r = mkdir_p(dirname(mdir), 0755)) < 0)
			return log_error_errno(r, NULL, "cannot create socket directory", "path=%s", cfg->metrics_socket);
		int mfd = metrics_listen(cfg->metrics_socket, cfg->metrics_port);
		if (mfd < 0)
			return mfd;
		if (!cfg->metrics_port && chown(cfg->metrics_socket, uid, gid) < 0) {
			r = log_error_errno(errno, NULL, "cannot hand socket to criod user", "path=%s",
					    cfg->metrics_socket);
			close(mfd);
			return r;
		}
		*metrics_fd = mfd;
	}

	if (*listen_fd >= 0)
		return 0; /* criod.socket made it, owned by the criod user (SocketUser=) */
	int fd = ipc_listen_unix(cfg->criod_socket, 0660);
	if (fd < 0)
		return fd; /* the caller closes *metrics_fd */
	if (chown(cfg->criod_socket, uid, gid) < 0) {
		r = log_error_errno(errno, NULL, "cannot hand socket to criod user", "path=%s", cfg->criod_socket);
		close(fd);
		return r;
	}
	*listen_fd = fd;
	return 0;
}

/* criod holds no capability and never gains one (drop_privileges set
 * no_new_privs); its filter is common/'s base: it serves gRPC, keeps its
 * state files, talks to the root daemons over AF_UNIX and serves the
 * streaming URLs on TCP (socket, bind, listen, accept4: in the base list). */
static const struct confine_policy criod_confinement = {
	.caps = 0,
	.no_new_privs = true,
	.action = CONFINE_DENY_LOGGED,
	.syscalls = confine_base_syscalls,
};

static void raise_nofile_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn_errno(-errno, NULL, "cannot raise the open files limit", "soft=%llu hard=%llu",
			       (unsigned long long)was, (unsigned long long)rl.rlim_max);
		return;
	}
	log_info(NULL, "open files limit raised", "from=%llu to=%llu", (unsigned long long)was,
		  (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
	struct daemon d;
	struct criod c = {0};
	struct grpc_server *grpc = NULL;
	struct grpc_method *methods = NULL;
	size_t n_methods = 0;
	int listen_fd = -1, metrics_fd = -1, stream_fd = -1, r;

	daemon_init(&d, "criod", argc, argv);
	c.base = d.base;
	c.cfg = &d.cfg;

	/* criod.socket (systemd) may have made the CRI socket and passed it. */
	char listen_path[108];
	r = activation_listen_fds(&listen_fd, listen_path, sizeof(listen_path), &stream_fd);
	if (r < 0)
		goto out;
	if (r > 0)
		log_info(NULL, "socket passed by systemd", "fd=%d path=%s", listen_fd, listen_path[0] ? listen_path : "?");
	else
		snprintf(listen_path, sizeof(listen_path), "%s", d.cfg.criod_socket);

	if (geteuid() == 0) {
		r = setup_as_root(&d.cfg, &listen_fd, &metrics_fd);
		if (r >= 0)
			r = drop_privileges(d.cfg.criod_user);
#ifdef CRIOD_SANITIZERS
		/* LeakSanitizer inspects the process from a helper thread with
		 * ptrace, which a non-dumpable process refuses. Test builds only. */
		if (r >= 0)
			(void)prctl(PR_SET_DUMPABLE, 1);
#endif
		if (r < 0) {
			log_error_errno(r, NULL, "cannot start as the criod user", "user=%s", d.cfg.criod_user);
			goto out;
		}
	} else {
		if (listen_fd < 0 && (listen_fd = ipc_listen_unix(d.cfg.criod_socket, 0660)) < 0) {
			r = listen_fd;
			goto out;
		}
		if (d.cfg.metrics_enabled && (metrics_fd = metrics_listen(d.cfg.metrics_socket, d.cfg.metrics_port)) < 0) {
			r = metrics_fd;
			goto out;
		}
	}

	/* systemd starts services with a soft open files limit of 1024 and a
	 * far higher hard one, for programs that need more to raise it
	 * themselves: criod holds a descriptor per CRI client and up to
	 * STREAM_FDS_PER_CONN per streaming session. It starts nothing, so no
	 * child inherits the higher limit. */
	raise_nofile_limit();
	r = confine_self("criod", &criod_confinement);
	if (r < 0)
		goto out;
	r = pods_open(&c.pods, d.cfg.state_dir);
	if (r < 0)
		goto out;
	r = ctrs_open(&c.ctrs, d.base, d.cfg.state_dir);
	if (r < 0)
		goto out;
	r = host_boot_check(&c.pods, &c.ctrs, d.cfg.state_dir);
	if (r < 0)
		goto out;
	r = events_init(&c);
	if (r < 0)
		goto out;
	runtime_config_load(&c);
	c.imaged = ipc_client_new(d.base, "imaged", d.cfg.imaged_socket);
	c.netd = ipc_client_new(d.base, "netd", d.cfg.netd_socket);
	c.spawnd = ipc_client_new(d.base, "spawnd", d.cfg.spawnd_socket);
	methods = cri_build_methods(&n_methods);
	if (!c.imaged || !c.netd || !c.spawnd || !methods || metrics_new(&c, methods, n_methods, &c.metrics) < 0) {
		r = log_error_errno(ENOMEM, NULL, "out of memory");
		goto out;
	}
	struct grpc_server_opts opts = {
		.max_msg_size = d.cfg.max_msg_size,
		.max_streams = (uint32_t)d.cfg.max_streams,
		.max_conns = 1024,
		.on_done = metrics_call_done,
		.on_done_ud = c.metrics,
	};
	r = grpc_server_new(d.base, listen_fd, &opts, methods, n_methods, &c, &grpc);
	if (r < 0) {
		log_error_errno(r, NULL, "cannot start gRPC server");
		goto out;
	}
	listen_fd = -1;
	r = stream_server_start(&c, stream_fd, &c.stream);
	stream_fd = -1;
	if (r < 0)
		goto out;
	log_info(NULL, "listening", "path=%s user=%s uid=%u rpcs=%zu", listen_path, d.cfg.criod_user,
		 (unsigned)getuid(), n_methods);
	if (metrics_fd >= 0) {
		r = metrics_serve(c.metrics, TAKE_FD(metrics_fd));
		if (r < 0) {
			log_error_errno(r, NULL, "cannot serve metrics");
			goto out;
		}
		if (d.cfg.metrics_port)
			log_info(NULL, "serving metrics", "address=127.0.0.1:%llu", (unsigned long long)d.cfg.metrics_port);
		else
			log_info(NULL, "serving metrics", "path=%s", d.cfg.metrics_socket);
	}
	pods_recover(&c);
	containers_recover(&c);
	events_recover(&c);
	r = daemon_run(&d);
out:
	c.stopping = true;
	metrics_stop(c.metrics);
	grpc_server_free(grpc); /* every subscriber's stream goes with it */
	events_shutdown(&c);
	stream_server_free(c.stream);
	c.stream = NULL;
	if (listen_fd >= 0)
		close(listen_fd);
	if (metrics_fd >= 0)
		close(metrics_fd);
	/* Calls still waiting for a daemon or a container monitor complete
	 * from here (CANCELLED); they still name their method. */
	ipc_client_free(c.imaged);
	ipc_client_free(c.netd);
	ipc_client_free(c.spawnd);
	metrics_free(c.metrics); /* after the clients: every scrape has its replies */
	containers_shutdown(&c);
	cri_later_cancel_all(&c);
	cri_free_methods(methods, n_methods);
	free(c.pod_cidr);
	ctrs_close(&c.ctrs);
	pods_close(&c.pods);
	daemon_fini(&d);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
