/* runtime.v1.RuntimeService handlers built so far. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "internal/envelope.pb-c.h"
#include "log.h"
#include "macro.h"
#include "status.h"

#define CRI_API_VERSION "v1"
/* The kubelet-facing API version string CRI-O and containerd also answer. */
#define KUBELET_API_VERSION "0.1.0"
#define PING_TIMEOUT_MS 5000

static void version(struct grpc_call *call, const ProtobufCMessage *req, void *userdata)
{
	Runtime__V1__VersionResponse resp = RUNTIME__V1__VERSION_RESPONSE__INIT;
	resp.version = (char *)KUBELET_API_VERSION;
	resp.runtime_name = (char *)"criod";
	resp.runtime_version = (char *)PACKAGE_VERSION;
	resp.runtime_api_version = (char *)CRI_API_VERSION;
	grpc_call_reply(call, &resp.base);
}

/* Status asks every root daemon for a Ping, in parallel, without blocking
 * the loop; RuntimeReady needs imaged and spawnd, NetworkReady needs netd. */
enum { DAEMON_IMAGED, DAEMON_NETD, DAEMON_SPAWND, N_DAEMONS };
static const char *const daemon_names[N_DAEMONS] = {"imaged", "netd", "spawnd"};

struct status_op {
	struct grpc_call *call;
	const struct criod_config *cfg;
	bool verbose;
	int outstanding;
	bool ok[N_DAEMONS];
	char error[N_DAEMONS][256];
};

struct status_ping {
	struct status_op *op;
	int which;
};

static void condition_from(Runtime__V1__RuntimeCondition *c, const char *type, const struct status_op *op,
			   const int *needs, size_t n, char *reason_buf, size_t reason_len, char *msg_buf,
			   size_t msg_len)
{
	c->type = (char *)type;
	c->status = true;
	msg_buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (op->ok[needs[i]])
			continue;
		c->status = false;
		size_t used = strlen(msg_buf);
		snprintf(msg_buf + used, msg_len - used, "%s%s", used ? "; " : "", op->error[needs[i]]);
	}
	if (!c->status) {
		snprintf(reason_buf, reason_len, "%sNotReady", type);
		c->reason = reason_buf;
		c->message = msg_buf;
	}
}

static void status_complete(struct status_op *op)
{
	Runtime__V1__RuntimeCondition runtime = RUNTIME__V1__RUNTIME_CONDITION__INIT;
	Runtime__V1__RuntimeCondition network = RUNTIME__V1__RUNTIME_CONDITION__INIT;
	char rr[64], rm[1024], nr[64], nm[1024];
	static const int runtime_needs[] = {DAEMON_IMAGED, DAEMON_SPAWND};
	static const int network_needs[] = {DAEMON_NETD};
	condition_from(&runtime, "RuntimeReady", op, runtime_needs, ARRAY_SIZE(runtime_needs), rr, sizeof(rr), rm,
		       sizeof(rm));
	condition_from(&network, "NetworkReady", op, network_needs, ARRAY_SIZE(network_needs), nr, sizeof(nr), nm,
		       sizeof(nm));
	Runtime__V1__RuntimeCondition *conds[] = {&runtime, &network};
	Runtime__V1__RuntimeStatus st = RUNTIME__V1__RUNTIME_STATUS__INIT;
	st.n_conditions = ARRAY_SIZE(conds);
	st.conditions = conds;

	Runtime__V1__RuntimeHandlerFeatures features = RUNTIME__V1__RUNTIME_HANDLER_FEATURES__INIT;
	/* The "rro" mount option (runc 1.1 and later on Linux 5.12 and later,
	 * through mount_setattr). */
	features.recursive_read_only_mounts = true;
	/* The default handler as "" and then every configured one by name. */
	size_t n_handlers = op->cfg->n_runtimes + 1;
	Runtime__V1__RuntimeHandler *handler_v = calloc(n_handlers, sizeof(*handler_v));
	Runtime__V1__RuntimeHandler **handlers = calloc(n_handlers, sizeof(*handlers));
	if (!handler_v || !handlers) {
		free(handler_v);
		free(handlers);
		grpc_call_fail(op->call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		free(op);
		return;
	}
	for (size_t i = 0; i < n_handlers; i++) {
		runtime__v1__runtime_handler__init(&handler_v[i]);
		handler_v[i].name = i == 0 ? (char *)"" : op->cfg->runtimes[i - 1].name;
		handler_v[i].features = &features;
		handlers[i] = &handler_v[i];
	}
	Runtime__V1__RuntimeFeatures rf = RUNTIME__V1__RUNTIME_FEATURES__INIT;
	rf.supplemental_groups_policy = true; /* Merge and Strict (criod/oci_spec.c) */

	Runtime__V1__StatusResponse resp = RUNTIME__V1__STATUS_RESPONSE__INIT;
	resp.status = &st;
	resp.n_runtime_handlers = n_handlers;
	resp.runtime_handlers = handlers;
	resp.features = &rf;

	/* Verbose: one JSON value per daemon saying whether it answered. */
	Runtime__V1__StatusResponse__InfoEntry entries[N_DAEMONS], *entry_ptrs[N_DAEMONS];
	char values[N_DAEMONS][320];
	if (op->verbose) {
		for (int i = 0; i < N_DAEMONS; i++) {
			runtime__v1__status_response__info_entry__init(&entries[i]);
			entries[i].key = (char *)daemon_names[i];
			if (op->ok[i])
				snprintf(values[i], sizeof(values[i]), "{\"reachable\":true}");
			else
				snprintf(values[i], sizeof(values[i]), "{\"reachable\":false}");
			entries[i].value = values[i];
			entry_ptrs[i] = &entries[i];
		}
		resp.n_info = N_DAEMONS;
		resp.info = entry_ptrs;
	}
	grpc_call_reply(op->call, &resp.base);
	free(handlers);
	free(handler_v);
	free(op);
}

static void status_ping_done(int status, const char *message, const ProtobufCMessage *resp, int *fds, size_t nfds,
			     void *userdata)
{
	struct status_ping *ping = userdata;
	struct status_op *op = ping->op;
	op->ok[ping->which] = status == STATUS_OK;
	if (status != STATUS_OK)
		snprintf(op->error[ping->which], sizeof(op->error[ping->which]), "%s", message);
	free(ping);
	if (--op->outstanding == 0)
		status_complete(op);
}

static void status(struct grpc_call *call, const ProtobufCMessage *req, void *userdata)
{
	struct criod *c = userdata;
	const Runtime__V1__StatusRequest *r = (const Runtime__V1__StatusRequest *)req;
	struct status_op *op = calloc(1, sizeof(*op));
	if (!op) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	op->call = call;
	op->cfg = c->cfg;
	op->verbose = r->verbose;
	struct ipc_client *clients[N_DAEMONS] = {c->imaged, c->netd, c->spawnd};
	const struct ipc_method *pings[N_DAEMONS] = {&imaged_ping_method, &netd_ping_method, &spawnd_ping_method};
	Criod__Internal__PingRequest preq = CRIOD__INTERNAL__PING_REQUEST__INIT;
	op->outstanding = N_DAEMONS + 1; /* held until every call is queued */
	for (int i = 0; i < N_DAEMONS; i++) {
		struct status_ping *ping = calloc(1, sizeof(*ping));
		if (ping) {
			ping->op = op;
			ping->which = i;
		}
		int rc = ping ? ipc_client_call(clients[i], pings[i], grpc_call_request_id(call), &preq.base, NULL, 0,
						PING_TIMEOUT_MS, status_ping_done, ping)
			      : -ENOMEM;
		if (rc < 0) {
			free(ping);
			snprintf(op->error[i], sizeof(op->error[i]), "%s: cannot queue ping", daemon_names[i]);
			op->outstanding--;
		}
	}
	if (--op->outstanding == 0)
		status_complete(op);
}

const struct cri_handler runtime_service_handlers[] = {
	{"RuntimeService", "Version", version},
	{"RuntimeService", "Status", status},
};
const size_t n_runtime_service_handlers = ARRAY_SIZE(runtime_service_handlers);
