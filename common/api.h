/* The fixed request lists of the root daemons. These numbers are the
 * security boundary between criod and root: a daemon serves exactly the
 * methods in its table (see each daemon's main.c) and nothing else. */
#pragma once

enum imaged_method {
	IMAGED_PING = 1,
	IMAGED_PULL = 2,
	IMAGED_LIST = 3,
	IMAGED_STATUS = 4,
	IMAGED_REMOVE = 5,
	IMAGED_FS_INFO = 6,
	IMAGED_MOUNT_ROOTFS = 7,
	IMAGED_UNMOUNT_ROOTFS = 8,
	/* A container's writable layer: bytes and inodes (cached walk). */
	IMAGED_ROOTFS_USAGE = 9,
	/* imaged's own figures for criod's metrics endpoint (MetricsRequest,
	 * envelope.proto): process, pulls by result. */
	IMAGED_METRICS = 10,
};

enum netd_method {
	NETD_PING = 1,
	NETD_SETUP_POD = 2,
	NETD_TEARDOWN_POD = 3,
	NETD_POD_STATUS = 4,
	/* The interface counters inside a pod's network namespace. */
	NETD_POD_NETWORK_STATS = 5,
	/* A TCP socket connected inside the pod's network namespace (PortForward). */
	NETD_PORT_FORWARD = 6,
	/* netd's own figures: process, setup latency, addresses in use. */
	NETD_METRICS = 7,
};

enum spawnd_method {
	SPAWND_PING = 1,
	SPAWND_CREATE_POD_INFRA = 2,
	SPAWND_STOP_POD_INFRA = 3,
	SPAWND_REMOVE_POD_INFRA = 4,
	SPAWND_CREATE_CONTAINER = 5,
	SPAWND_REMOVE_CONTAINER = 6,
	/* A Localhost seccomp profile beneath [policy] seccomp_profile_roots,
	 * answered with the open file (one fd); common/seccomp_profile.h. */
	SPAWND_OPEN_SECCOMP_PROFILE = 7,
	/* PortForward to a host-network pod spawnd made: a TCP socket
	 * connected in the host's network namespace (one fd). */
	SPAWND_HOST_PORT_FORWARD = 8,
	/* spawnd's own figures: process, pods. */
	SPAWND_METRICS = 9,
};

/* A container monitor's control socket (conmon). */
enum conmon_method {
	CONMON_PING = 1,
	CONMON_STATE = 2,
	CONMON_START = 3,
	CONMON_KILL = 4,
	CONMON_EXEC = 5,
	CONMON_REOPEN_LOG = 6,
	CONMON_UPDATE = 7,
	CONMON_DELETE = 8,
	/* Streaming (criod/stream_backend.h): an exec'd process's stdio or
	 * terminal, and an attach to the container's own, as fds. */
	CONMON_EXEC_STREAM = 9,
	CONMON_ATTACH_STREAM = 10,
};

/* imaged's per-pull fetch helper (imaged-fetch), over socket pairs imaged
 * made; see proto/internal/fetch.proto. */
enum fetch_method {
	FETCH_START = 1,
	FETCH_MANIFEST = 2,
	FETCH_BLOB = 3,
	FETCH_LAYER = 4,
	/* the other way, helper -> imaged, on the connect channel */
	FETCH_CONNECT = 5,
};

#define IMAGED_N_METHODS 10
#define NETD_N_METHODS 7
#define SPAWND_N_METHODS 9
#define CONMON_N_METHODS 10

/* The tables themselves (common/api.c), one per daemon, used by both ends:
 * row id - 1 is method id, with its messages and the largest request body
 * the daemon takes; the handler is NULL (a daemon binds its own with
 * api_bind). criod calls through API_IMAGED(IMAGED_PULL) and the like. */
#include <stddef.h>

#include "ipc.h"
extern const struct ipc_method imaged_methods[IMAGED_N_METHODS];
extern const struct ipc_method netd_methods[NETD_N_METHODS];
extern const struct ipc_method spawnd_methods[SPAWND_N_METHODS];
extern const struct ipc_method conmon_methods[CONMON_N_METHODS];
#define API_IMAGED(id) (&imaged_methods[(id) - 1])
#define API_NETD(id) (&netd_methods[(id) - 1])
#define API_SPAWND(id) (&spawnd_methods[(id) - 1])
#define API_CONMON(id) (&conmon_methods[(id) - 1])

/* Copy the n rows of table into out, row i with handlers[i]; a row
 * without a handler is a bug (logged, abort). */
void api_bind(struct ipc_method *out, const struct ipc_method *table, size_t n, const ipc_handler_fn *handlers);
