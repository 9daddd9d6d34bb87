/* A TCP connection to a port on the loopback of the calling thread's
 * network namespace (PortForward: netd on a thread that joined a pod's
 * namespace, spawnd in the host's). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <protobuf-c/protobuf-c.h>

#include "ipc.h"
#include "log.h"
#include "loopback.h"
#include "status.h"
#include "util.h"
#include "workq.h"

static int connect_one(int family, uint16_t port, int64_t deadline)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		len = sizeof(*a);
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		r = -errno;
		while (r == -EINPROGRESS || r == -EINTR) {
			int64_t left = (deadline - now_monotonic_ns()) / 1000000;
			if (left <= 0) {
				r = -ETIMEDOUT;
				break;
			}
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
			if (n < 0 && errno != EINTR) {
				r = -errno;
				break;
			}
			if (n <= 0)
				continue;
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
				r = -errno;
			else
				r = -soerr;
		}
	}
	if (r == 0) {
		/* Blocking again: the receiver picks its own mode. */
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			r = -errno;
	}
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int loopback_connect(uint16_t port, int timeout_ms, int *fd)
{
	int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	int r4 = connect_one(AF_INET, port, deadline);
	if (r4 >= 0) {
		*fd = r4;
		return 0;
	}
	if (r4 == -ETIMEDOUT)
		return r4;
	int r6 = connect_one(AF_INET6, port, deadline);
	if (r6 >= 0) {
		*fd = r6;
		return 0;
	}
	/* No IPv6 loopback here: what IPv4 said. */
	if (r6 == -EAFNOSUPPORT || r6 == -EADDRNOTAVAIL || r6 == -ENETUNREACH)
		return r4;
	return r4 == -ECONNREFUSED ? r6 : r4;
}

/* ---------------------------------------------------------------- the row */

struct lb_op {
	struct ipc_call *call;
	const ProtobufCMessage *ok;
	char pod_id[65];
	char netns[PATH_MAX];
	uint16_t port;
	int (*run)(const char *netns, int (*fn)(void *arg), void *arg);
	int fd;
	int ret;
};

static unsigned lb_pending; /* loop thread only */

static int lb_connect(void *arg)
{
	struct lb_op *op = arg;
	return loopback_connect(op->port, LOOPBACK_CONNECT_TIMEOUT_MS, &op->fd);
}

static void lb_work(void *arg)
{
	struct lb_op *op = arg;
	op->ret = op->run ? op->run(op->netns, lb_connect, op) : lb_connect(op);
}

static void lb_done(void *arg)
{
	struct lb_op *op = arg;
	const char *rid = ipc_call_request_id(op->call);
	lb_pending--;
	if (op->ret == -ECONNREFUSED) {
		ipc_call_fail(op->call, STATUS_UNAVAILABLE,
			      "port %u of pod %s: connection refused (nothing listens on 127.0.0.1 or ::1)", op->port,
			      op->pod_id);
	} else if (op->ret == -ETIMEDOUT) {
		ipc_call_fail(op->call, STATUS_DEADLINE_EXCEEDED, "port %u of pod %s: no connection within %d ms",
			      op->port, op->pod_id, LOOPBACK_CONNECT_TIMEOUT_MS);
	} else if (op->ret == -ENOENT) {
		ipc_call_fail(op->call, STATUS_NOT_FOUND, "pod %s has no network namespace any more", op->pod_id);
	} else if (op->ret < 0) {
		log_warn_errno(op->ret, rid, "port forward failed", "pod=%s port=%u", op->pod_id, op->port);
		ipc_call_fail(op->call, status_from_errno(op->ret), "port %u of pod %s: %s", op->port, op->pod_id,
			      strerror(-op->ret));
	} else {
		log_info(rid, "port forward connected", "pod=%s port=%u", op->pod_id, op->port);
		ipc_call_reply(op->call, op->ok, &op->fd, 1);
		close(op->fd);
	}
	free(op);
}

void loopback_forward(struct workq *q, struct ipc_call *call, const ProtobufCMessage *ok, const char *pod_id,
		      uint16_t port, const char *netns, int (*run)(const char *netns, int (*fn)(void *arg), void *arg))
{
	if (lb_pending >= LOOPBACK_MAX_PENDING) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "%d port-forward connects are already in flight",
			      LOOPBACK_MAX_PENDING);
		return;
	}
	struct lb_op *op = calloc(1, sizeof(*op));
	if (!op) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	op->call = call;
	op->ok = ok;
	op->port = port;
	op->run = run;
	op->fd = -1;
	snprintf(op->pod_id, sizeof(op->pod_id), "%s", pod_id);
	snprintf(op->netns, sizeof(op->netns), "%s", netns ? netns : "");
	int r = workq_submit(q, lb_work, lb_done, op);
	if (r < 0) {
		free(op);
		ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot take the port-forward now: %s", strerror(-r));
		return;
	}
	lb_pending++;
}
