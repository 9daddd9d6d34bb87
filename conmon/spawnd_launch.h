/* spawnd's launcher: the one process that starts conmon monitors.
 *
 * A seccomp filter passes on to every child, and every container descends
 * from the process that starts its conmon. So spawnd is split in two at
 * start, before it loads its filter or starts a thread:
 *
 *   spawnd           parses criod's requests; its own strict filter (no
 *                    container inherits it), no_new_privs, only the
 *                    capabilities it uses (spawnd_confine.h);
 *   spawnd-launcher  forked by spawnd, single-threaded, reads nothing but
 *                    the typed requests below from its end of a socketpair
 *                    only spawnd holds; it keeps what conmon, runc and the
 *                    containers need (spawnd_confine_apply: the node's
 *                    capability bound, a filter only on a hardened node).
 *
 * A request names a container and the few things that differ between
 * containers; the launcher derives every other argument of conmon's
 * command line from its own configuration (the same spawnd read), checks
 * each field again (ids, the runtime handler, the log path beneath a log
 * root or the container's own directory, the two descriptors' kinds) and
 * starts conmon detached (double fork: conmon is init's, in its own
 * session). It never runs anything else. It dies with spawnd (EOF on the
 * socket, and PR_SET_PDEATHSIG); spawnd stops if the launcher dies.
 *
 * Under systemd the launcher is a process of its own unit instead
 * (spawnd-launcher, below), which spawnd connects to. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define LAUNCH_MAGIC 0x6c61756eu /* "laun" */
#define LAUNCH_HANDLER_MAX 255
#define LAUNCH_PATH_MAX 4095

enum {
	LAUNCH_TTY = 1u << 0,         /* conmon --tty */
	LAUNCH_STDIN = 1u << 1,       /* conmon --stdin */
	LAUNCH_STATE_ALIAS = 1u << 2, /* --state-dir <run_dir>/c/<id> instead of the real directory */
	LAUNCH_STDIN_ONCE = 1u << 3,  /* conmon --stdin-once (only with LAUNCH_STDIN) */
	LAUNCH_FLAGS_ALL = LAUNCH_TTY | LAUNCH_STDIN | LAUNCH_STATE_ALIAS | LAUNCH_STDIN_ONCE,
};

/* The request, sent as one SOCK_SEQPACKET message with exactly two
 * descriptors: conmon's stdout and stderr (its conmon.log, a regular file
 * open for writing) and its sync pipe (the write end of a pipe, fd 3). */
struct launch_request {
	uint32_t magic;
	uint32_t seq;
	uint32_t flags;
	char id[65];                              /* 64 lowercase hex */
	char handler[LAUNCH_HANDLER_MAX + 1];     /* a [runtime.NAME] of the configuration */
	char log_path[LAUNCH_PATH_MAX + 1];
};

struct launch_reply {
	uint32_t magic;
	uint32_t seq;
	int32_t ret; /* 0 or a negative errno */
	int32_t pid; /* conmon's */
};

/* ---- a launcher of its own unit (spawnd_launcher.c) ----
 *
 * spawnd-launcher, in criod-spawnd-launcher.service, listens on a root-only
 * SOCK_SEQPACKET socket at $CRIOD_SPAWND_LAUNCHER and accepts only spawnd
 * in the cgroup $CRIOD_SPAWND_CGROUP (spawnd_peer.h). spawnd given
 * $CRIOD_SPAWND_LAUNCHER connects there instead of forking its launcher.
 * The first message on an accepted connection is the hello below; then
 * the requests and replies above. */
#define LAUNCHER_SOCKET_ENV "CRIOD_SPAWND_LAUNCHER"
#define LAUNCHER_PEER_CGROUP_ENV "CRIOD_SPAWND_CGROUP"
#define LAUNCH_HELLO 0x68656c6fu /* "helo" */
struct launch_hello {
	uint32_t magic;        /* LAUNCH_MAGIC */
	uint32_t kind;         /* LAUNCH_HELLO */
	int32_t pid;           /* the launcher's */
	uint32_t reserved;
	uint64_t cap_bounding; /* its bounding set: all a container can be given */
};

/* What the launcher was started with (copied into it at fork). */
struct launch_env {
	const struct criod_config *cfg;
	const char *conmon_path;
	const char *config_path; /* spawnd's --config (absolute), or NULL */
	const char *log_level;   /* spawnd's --log-level, or NULL */
	uid_t criod_uid;         /* conmon's --allowed-uid */
};

struct launcher;

/* The launcher's side: receive one request on sock, check it, start
 * conmon, answer. false when the peer is gone. */
bool launch_serve_one(const struct launch_env *env, int sock);
/* Start the standby conmon if there is none (conmon_standby.h): the
 * launcher calls it when it is ready and after each request it answers;
 * the next request's conmon is then the standby, which skips the two
 * forks, the exec and the dynamic loader. A failure is logged and the
 * next conmon started as ever. */
void launch_standby_prepare(const struct launch_env *env);

/* Fork the launcher (call before any thread starts and before spawnd
 * confines itself). */
int launcher_start(const struct launch_env *env, struct launcher **out);
/* Or use the launcher listening at path (a launcher of its own unit):
 * connected now, or an error (the listener must be root, SO_PEERCRED, and
 * say hello; one that refused this spawnd closes without a hello). The
 * connection is never remade: spawnd watches launcher_conn_fd and stops
 * when it closes, as it does when a forked launcher dies. */
int launcher_connect(const char *path, struct launcher **out);
/* The connection to a launcher of its own unit, -1 for a forked one. */
int launcher_conn_fd(const struct launcher *l);
/* The launcher's bounding set (its hello; for a forked one what it was
 * cut to). */
uint64_t launcher_cap_bounding(struct launcher *l);
/* spawnd's side: start conmon for req with the two descriptors (not
 * consumed); stores conmon's pid. Thread-safe; blocks until the launcher
 * answers (it only forks), at most LAUNCH_TIMEOUT_MS. */
#define LAUNCH_TIMEOUT_MS 10000
int launcher_conmon(struct launcher *l, const struct launch_request *req, int log_fd, int sync_fd, pid_t *pid);
/* The launcher's pid (for SIGCHLD); closes and reaps in free. */
pid_t launcher_pid(const struct launcher *l);
void launcher_free(struct launcher *l);

/* ---- the launcher's checks, exposed for tests ---- */

/* conmon's command line for req, derived from env and checked: argv is
 * filled (at most LAUNCH_ARGV_MAX entries with the NULL), its strings
 * stored in buf. 0, or -EINVAL with err naming the field. */
#define LAUNCH_ARGV_MAX 32
struct launch_argv {
	const char *argv[LAUNCH_ARGV_MAX];
	char *owned[8];
	char uid[24];
};
int launch_argv_build(const struct launch_env *env, const struct launch_request *req, struct launch_argv *out,
		      char *err, size_t errlen);
void launch_argv_clear(struct launch_argv *a);
/* Whether the two descriptors are what the request says they are: a
 * regular file open for writing, and the write end of a pipe. */
int launch_fds_check(int log_fd, int sync_fd, char *err, size_t errlen);
