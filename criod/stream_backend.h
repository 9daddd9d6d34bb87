/* The privileged half of streaming (Exec, Attach, PortForward).
 *
 * criod's streaming server (criod/stream_*.c) speaks HTTP/1.1, SPDY/3.1 and
 * WebSocket to kubelet, crictl and critest, and relays bytes; it never
 * enters a namespace. What needs privilege is opened on the root side and
 * handed to criod as file descriptors over the internal RPC (SCM_RIGHTS):
 *   - conmon (the container's monitor, on its control socket): the exec'd
 *     process's stdio or pty master (ExecStream), and an attach to the
 *     container's own stdio, which conmon holds (AttachStream);
 *   - netd: a TCP socket already connected to 127.0.0.1:port (or [::1]) in
 *     the pod's network namespace, or the host's for host-network pods
 *     (PortForwardConnect).
 * Each is a row of that daemon's request table, checked like every other.
 *
 * This header is the contract between the two halves: the server calls the
 * three functions below and speaks the control protocol at the bottom.
 */
#ifndef CRIOD_STREAM_BACKEND_H
#define CRIOD_STREAM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct criod;

/* The descriptors of one session, each -1 when absent. Ownership passes to
 * the callback's receiver on success (it closes them).
 *   in:  write end: bytes for the process's stdin (or the pty master with a
 *        TTY, then the same descriptor as out, dup'ed). Closing it is EOF
 *        on stdin (for Attach with stdin_once, conmon then closes the
 *        container's stdin).
 *   out: read end of stdout (with a TTY: the pty master, stdout and stderr
 *        merged).
 *   err: read end of stderr (-1 with a TTY).
 *   ctl: a SOCK_SEQPACKET socket carrying struct stream_ctl records both
 *        ways (resize from criod; the exit from conmon). Closing it ends the
 *        session: for Exec, conmon kills the exec'd process (SIGKILL) and
 *        reaps it, so nothing outlives a client that went away; for Attach,
 *        conmon drops the attacher. -1 for PortForward.
 * For PortForward only out is set: the connected TCP socket (read and
 * write). */
struct stream_fds {
	int in, out, err, ctl;
};

/* status is a gRPC status code (common/status.h); message is NULL on
 * success. On success *fds holds the descriptors, owned by the callee from
 * then on; on failure every member is -1. Runs exactly once, later, on
 * criod's event loop. */
typedef void (*stream_open_fn)(void *ud, int status, const char *message, struct stream_fds *fds);
/* The three functions below return 0 when done will run (failures such as
 * NOT_FOUND included: they come through done), or a negative errno
 * (-ENOMEM) when nothing was queued: then done never runs. They are
 * implemented in stream_backend.c. */

struct stream_exec_params {
	const char *request_id;   /* for the audit trail (x-request-id) */
	const char *container_id; /* full id, already resolved by the caller */
	char *const *cmd;
	size_t n_cmd;
	bool tty, in, out, err;   /* as asked in ExecRequest */
};

/* Start cmd in the running container (its namespaces, cgroup, user,
 * capabilities, seccomp: like ExecSync, through runc exec) with the stdio
 * asked for. NOT_FOUND for a container criod does not know,
 * FAILED_PRECONDITION when it is not running. */
int stream_backend_exec(struct criod *c, const struct stream_exec_params *p, stream_open_fn done, void *ud);

struct stream_attach_params {
	const char *request_id;
	const char *container_id;
	bool in, out, err;        /* as asked in AttachRequest; in only if the
				   * container was created with stdin */
};

/* Attach to the container's own stdio, held by its conmon; several attachers
 * at once; the log keeps being written. With a TTY container, out is the
 * terminal's output and err is -1. */
int stream_backend_attach(struct criod *c, const struct stream_attach_params *p, stream_open_fn done, void *ud);

struct stream_portforward_params {
	const char *request_id;
	const char *pod_id;       /* full id, already resolved by the caller */
	uint16_t port;            /* 1..65535 */
};

/* A TCP connection to the port on the pod's loopback. UNAVAILABLE with
 * "connection refused" (the message names the port) when nothing listens. */
int stream_backend_portforward(struct criod *c, const struct stream_portforward_params *p, stream_open_fn done,
			       void *ud);

/* The control protocol on stream_fds.ctl: common/stream_ctl.h (conmon speaks
 * it too). */
#include "stream_ctl.h"

#endif
