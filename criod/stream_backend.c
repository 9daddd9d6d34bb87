/* The privileged half of streaming, as criod asks for it
 * (stream_backend.h): ExecStream and AttachStream of the container's
 * conmon, PortForward of netd (a pod with its own network namespace) or
 * HostPortForward of spawnd (a host-network pod). criod only picks whom to
 * ask from its own pod record; each daemon decides from its own records
 * (netd serves only pods it made a network for, spawnd only pods it made
 * with the host's network), so a wrong pick is refused, never served. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "api.h"
#include "containers.h"
#include "cri.h"
#include "internal/conmon.pb-c.h"
#include "internal/netd.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "status.h"
#include "stream_backend.h"

/* conmon runs the runtime's exec for at most 60 s; netd and spawnd give a
 * connect 10 s. */
#define EXEC_STREAM_TIMEOUT_MS (60000 + 5000)
#define ATTACH_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS (10000 + 5000)

enum sb_kind { SB_CONMON, SB_SOCKET };

struct sb_op {
	enum sb_kind kind;
	stream_open_fn done;
	void *ud;
	int status;
	char message[512];
	char req[72];
};

static struct stream_fds no_fds(void) { return (struct stream_fds){.in = -1, .out = -1, .err = -1, .ctl = -1}; }

static void close_all(int *fds, size_t nfds)
{
	for (size_t i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void sb_finish(struct sb_op *op, int status, const char *message, struct stream_fds *fds)
{
	struct stream_fds none = no_fds();
	op->done(op->ud, status, status == STATUS_OK ? NULL : message, status == STATUS_OK ? fds : &none);
	free(op);
}

static void sb_deferred(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct sb_op *op = arg;
	sb_finish(op, op->status, op->message, NULL);
}

/* Fail later, on the loop, as the contract says. */
static int sb_fail_later(struct criod *c, struct sb_op *op, int status, const char *fmt, ...) _printf_(4, 5);
static int sb_fail_later(struct criod *c, struct sb_op *op, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
	op->status = status;
	struct timeval zero = {0, 0};
	if (event_base_once(c->base, -1, EV_TIMEOUT, sb_deferred, op, &zero) < 0) {
		free(op);
		return -ENOMEM;
	}
	return 0;
}

static void sb_reply(int status, const char *message, const ProtobufCMessage *resp, int *fds, size_t nfds,
		     void *userdata)
{
	struct sb_op *op = userdata;
	struct stream_fds out = no_fds();
	if (status != STATUS_OK) {
		close_all(fds, nfds);
		log_debug(op->req, "stream backend refused", "status=%d error=\"%s\"", status, message);
		sb_finish(op, status, message, NULL);
		return;
	}
	if (op->kind == SB_SOCKET) {
		if (nfds != 1) {
			close_all(fds, nfds);
			sb_finish(op, STATUS_INTERNAL, "the port-forward reply carried no socket", NULL);
			return;
		}
		out.out = fds[0];
		sb_finish(op, STATUS_OK, NULL, &out);
		return;
	}
	/* conmon: ctl, then stdin, stdout, stderr as the reply says */
	const Criod__Internal__StreamResponse *r = (const void *)resp;
	size_t want = 1 + (size_t)r->stdin + (size_t)r->stdout + (size_t)r->stderr;
	if (nfds != want) {
		close_all(fds, nfds);
		sb_finish(op, STATUS_INTERNAL, "conmon's stream reply carried the wrong number of fds", NULL);
		return;
	}
	size_t k = 0;
	out.ctl = fds[k++];
	if (r->stdin)
		out.in = fds[k++];
	if (r->stdout)
		out.out = fds[k++];
	if (r->stderr)
		out.err = fds[k++];
	sb_finish(op, STATUS_OK, NULL, &out);
}

static struct sb_op *sb_new(enum sb_kind kind, const char *req, stream_open_fn done, void *ud)
{
	struct sb_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->kind = kind;
	op->done = done;
	op->ud = ud;
	snprintf(op->req, sizeof(op->req), "%s", req ? req : "");
	return op;
}

static int sb_call(struct criod *c, struct sb_op *op, struct ipc_client *cl, const struct ipc_method *m,
		   const ProtobufCMessage *req, uint64_t timeout_ms)
{
	int r = ipc_client_call(cl, m, op->req, req, NULL, 0, timeout_ms, sb_reply, op);
	if (r < 0)
		return sb_fail_later(c, op, STATUS_UNAVAILABLE, "cannot call %s: %s", m->name, strerror(-r));
	return 0;
}

/* The container's conmon, or a deferred failure (NOT_FOUND, FAILED_PRECONDITION). */
static struct ipc_client *container_conmon(struct criod *c, struct sb_op *op, const char *id, int *ret)
{
	struct container *ctr = id ? ctrs_find(&c->ctrs, id) : NULL;
	struct ipc_client *cl = NULL;
	if (!ctr || ctr->gone || ctr->failed)
		*ret = sb_fail_later(c, op, STATUS_NOT_FOUND, "container %s not found", id ? id : "");
	else if (ctr->state == CTR_CREATING || !(cl = ctr_conmon(ctr)))
		*ret = sb_fail_later(c, op, STATUS_FAILED_PRECONDITION, "container %s is not running", ctr->id);
	return cl;
}

int stream_backend_exec(struct criod *c, const struct stream_exec_params *p, stream_open_fn done, void *ud)
{
	struct sb_op *op = sb_new(SB_CONMON, p->request_id, done, ud);
	int r = 0;
	if (!op)
		return -ENOMEM;
	struct ipc_client *cl = container_conmon(c, op, p->container_id, &r);
	if (!cl)
		return r;
	Criod__Internal__ExecStreamRequest req = CRIOD__INTERNAL__EXEC_STREAM_REQUEST__INIT;
	req.cmd = (char **)p->cmd;
	req.n_cmd = p->n_cmd;
	req.tty = p->tty;
	req.stdin = p->in;
	req.stdout = p->out;
	req.stderr = p->err;
	log_debug(op->req, "exec stream", "container=%s argc=%zu tty=%d", p->container_id, p->n_cmd, p->tty);
	return sb_call(c, op, cl, API_CONMON(CONMON_EXEC_STREAM), &req.base, EXEC_STREAM_TIMEOUT_MS);
}

int stream_backend_attach(struct criod *c, const struct stream_attach_params *p, stream_open_fn done, void *ud)
{
	struct sb_op *op = sb_new(SB_CONMON, p->request_id, done, ud);
	int r = 0;
	if (!op)
		return -ENOMEM;
	struct ipc_client *cl = container_conmon(c, op, p->container_id, &r);
	if (!cl)
		return r;
	Criod__Internal__AttachStreamRequest req = CRIOD__INTERNAL__ATTACH_STREAM_REQUEST__INIT;
	req.stdin = p->in;
	req.stdout = p->out;
	req.stderr = p->err;
	log_debug(op->req, "attach stream", "container=%s", p->container_id);
	return sb_call(c, op, cl, API_CONMON(CONMON_ATTACH_STREAM), &req.base, ATTACH_TIMEOUT_MS);
}

int stream_backend_portforward(struct criod *c, const struct stream_portforward_params *p, stream_open_fn done,
			       void *ud)
{
	struct sb_op *op = sb_new(SB_SOCKET, p->request_id, done, ud);
	if (!op)
		return -ENOMEM;
	struct pod *pod = p->pod_id ? pods_find(&c->pods, p->pod_id) : NULL;
	if (!pod || pod->gone || pod->failed)
		return sb_fail_later(c, op, STATUS_NOT_FOUND, "pod sandbox %s not found", p->pod_id ? p->pod_id : "");
	if (pod->state != POD_READY)
		return sb_fail_later(c, op, STATUS_FAILED_PRECONDITION, "pod sandbox %s is not ready", pod->id);
	if (p->port == 0)
		return sb_fail_later(c, op, STATUS_INVALID_ARGUMENT, "port must be 1..65535");
	log_debug(op->req, "port forward", "pod=%s port=%u host_network=%d", pod->id, p->port,
		  pod_host_network(pod));
	/* Whom to ask, from criod's record; the daemon asked checks its own. */
	if (pod_host_network(pod)) {
		Criod__Internal__HostPortForwardRequest req = CRIOD__INTERNAL__HOST_PORT_FORWARD_REQUEST__INIT;
		req.pod_id = pod->id;
		req.port = p->port;
		return sb_call(c, op, c->spawnd, API_SPAWND(SPAWND_HOST_PORT_FORWARD), &req.base, CONNECT_TIMEOUT_MS);
	}
	Criod__Internal__PortForwardRequest req = CRIOD__INTERNAL__PORT_FORWARD_REQUEST__INIT;
	req.pod_id = pod->id;
	req.port = p->port;
	return sb_call(c, op, c->netd, API_NETD(NETD_PORT_FORWARD), &req.base, CONNECT_TIMEOUT_MS);
}
