/* The CRI's streaming RPCs: Exec, Attach and PortForward. Each checks its
 * request (the container running, the pod ready, the streams asked for),
 * keeps it under a single-use token of the streaming server
 * (stream_server.h) and answers the URL; the work starts when a client
 * connects to it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "container_op.h"
#include "containers.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "status.h"
#include "stream_server.h"

#define MAX_CMD_ARGS 4096
#define MAX_CMD_BYTES (128u << 10)

/* A running container by id (or unique prefix), or fail the call. */
static struct container *running_container(struct criod *c, struct grpc_call *call, const char *id)
{
	struct container *ctr = ctrs_find(&c->ctrs, id);
	if (!ctr || ctr->failed) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "container_id: container %s not found", id);
		return NULL;
	}
	struct ctr_status st;
	if (ctr->state == CTR_CREATING) {
		grpc_call_fail(call, STATUS_FAILED_PRECONDITION, "container_id: container %s is not created yet", ctr->id);
		return NULL;
	}
	ctr_disk_status(ctr, &st);
	if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING) {
		grpc_call_fail(call, STATUS_FAILED_PRECONDITION, "container_id: container %s is not running", ctr->id);
		return NULL;
	}
	return ctr;
}

/* The streams Exec or Attach asks for: at least one, and no stderr beside a
 * TTY (the terminal merges it into stdout); else fail the call. */
static bool streams_ok(struct grpc_call *call, bool in, bool out, bool err, bool tty)
{
	if (!in && !out && !err) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "one of stdin, stdout, or stderr must be set");
		return false;
	}
	if (tty && err) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "tty and stderr cannot both be true");
		return false;
	}
	return true;
}

static void answer_url(struct criod *c, struct grpc_call *call, struct stream_request *r, ProtobufCMessage *resp,
		       char **url_field)
{
	char url[256];
	if (!c->stream) {
		stream_request_free(r);
		grpc_call_fail(call, STATUS_UNAVAILABLE, "the streaming server is not running");
		return;
	}
	snprintf(r->req_id, sizeof(r->req_id), "%s", grpc_call_request_id(call));
	int kind = r->kind;
	char id[65];
	snprintf(id, sizeof(id), "%s", r->id);
	int rr = stream_server_token(c->stream, r, url, sizeof(url));
	if (rr < 0) {
		grpc_call_fail(call, rr == -ENOSPC ? STATUS_RESOURCE_EXHAUSTED : status_from_errno(rr),
			       "cannot keep a streaming token: %s",
			       rr == -ENOSPC ? "too many outstanding streaming requests" : strerror(-rr));
		return;
	}
	log_info(grpc_call_request_id(call), "streaming url",
		 "kind=%s id=%.12s", kind == STREAM_EXEC ? "exec" : kind == STREAM_ATTACH ? "attach" : "portforward", id);
	*url_field = url;
	grpc_call_reply(call, resp);
}

static void exec_rpc(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__ExecRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	if (req->n_cmd == 0 || !req->cmd[0] || !*req->cmd[0]) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd is required");
		return;
	}
	size_t bytes = 0;
	for (size_t i = 0; i < req->n_cmd; i++)
		bytes += strlen(req->cmd[i]) + 1;
	if (req->n_cmd > MAX_CMD_ARGS || bytes > MAX_CMD_BYTES) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "cmd: at most %d arguments and %u bytes", MAX_CMD_ARGS,
			       MAX_CMD_BYTES);
		return;
	}
	if (!streams_ok(call, req->stdin, req->stdout, req->stderr, req->tty))
		return;
	struct container *ctr = running_container(c, call, req->container_id);
	if (!ctr)
		return;
	struct stream_request *r = calloc(1, sizeof(*r));
	if (!r || !(r->cmd = calloc(req->n_cmd, sizeof(char *)))) {
		free(r);
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	r->kind = STREAM_EXEC;
	snprintf(r->id, sizeof(r->id), "%s", ctr->id);
	for (size_t i = 0; i < req->n_cmd; i++, r->n_cmd++)
		if (!(r->cmd[i] = strdup(req->cmd[i]))) {
			stream_request_free(r);
			grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
	r->tty = req->tty;
	r->in = req->stdin;
	r->out = req->stdout;
	r->err = req->stderr;
	Runtime__V1__ExecResponse resp = RUNTIME__V1__EXEC_RESPONSE__INIT;
	answer_url(c, call, r, &resp.base, &resp.url);
}

static void attach_rpc(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__AttachRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, MAX_FIELD))
		return;
	if (!streams_ok(call, req->stdin, req->stdout, req->stderr, req->tty))
		return;
	struct container *ctr = running_container(c, call, req->container_id);
	if (!ctr)
		return;
	bool ctr_stdin = ctr->config && ctr->config->stdin, ctr_tty = ctr->config && ctr->config->tty;
	if (req->stdin && !ctr_stdin) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT,
			       "stdin: container %s was not created with stdin, so it takes none", ctr->id);
		return;
	}
	struct stream_request *r = calloc(1, sizeof(*r));
	if (!r) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	r->kind = STREAM_ATTACH;
	snprintf(r->id, sizeof(r->id), "%s", ctr->id);
	/* The container's terminal decides: with a TTY, stdout and stderr are one. */
	r->tty = ctr_tty;
	r->in = req->stdin;
	r->out = req->stdout || (ctr_tty && req->stderr);
	r->err = req->stderr && !ctr_tty;
	Runtime__V1__AttachResponse resp = RUNTIME__V1__ATTACH_RESPONSE__INIT;
	answer_url(c, call, r, &resp.base, &resp.url);
}

static void portforward_rpc(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__PortForwardRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "pod_sandbox_id", req->pod_sandbox_id, true, MAX_FIELD))
		return;
	if (req->n_port > STREAM_MAX_PORTS) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "port: at most %d ports", STREAM_MAX_PORTS);
		return;
	}
	for (size_t i = 0; i < req->n_port; i++)
		if (req->port[i] < 1 || req->port[i] > 65535) {
			grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "port: %d is not a port (1..65535)", req->port[i]);
			return;
		}
	struct pod *pod = pods_find(&c->pods, req->pod_sandbox_id);
	if (!pod || pod->failed) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "pod_sandbox_id: pod sandbox %s not found", req->pod_sandbox_id);
		return;
	}
	if (pod->state != POD_READY) {
		grpc_call_fail(call, STATUS_FAILED_PRECONDITION, "pod_sandbox_id: pod sandbox %s is not ready", pod->id);
		return;
	}
	struct stream_request *r = calloc(1, sizeof(*r));
	if (!r) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	r->kind = STREAM_PORTFORWARD;
	snprintf(r->id, sizeof(r->id), "%s", pod->id);
	for (size_t i = 0; i < req->n_port; i++)
		r->ports[r->n_ports++] = (uint16_t)req->port[i];
	Runtime__V1__PortForwardResponse resp = RUNTIME__V1__PORT_FORWARD_RESPONSE__INIT;
	answer_url(c, call, r, &resp.base, &resp.url);
}

const struct cri_handler stream_service_handlers[] = {
	{"RuntimeService", "Exec", exec_rpc},
	{"RuntimeService", "Attach", attach_rpc},
	{"RuntimeService", "PortForward", portforward_rpc},
};
const size_t n_stream_service_handlers = ARRAY_SIZE(stream_service_handlers);
