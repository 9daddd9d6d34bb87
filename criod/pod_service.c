/* Pod sandboxes: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
 * PodSandboxStatus, ListPodSandbox.
 *
 * A pod is made in steps, each a call to a root daemon: netd makes its
 * network (unless it uses the host's), spawnd starts its pause process and
 * namespaces. The pod record is on disk (state CREATING) before the first
 * step; a failed step undoes every step (both daemons' teardowns are
 * idempotent, so both are always asked), and a record still CREATING when
 * criod starts is undone the same way. Nothing here blocks the loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "cri.h"
#include "cri_validate.h"
#include "events.h"
#include "cri/api.pb-c.h"
#include "internal/netd.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "log.h"
#include "list_reply.h"
#include "macro.h"
#include "pods.h"
#include "status.h"
#include "util.h"

#define PAUSE_OOM_SCORE_ADJ -998 /* what kubelet asks for infra containers */
#define MAX_FIELD 253
#define CLEANUP_RETRY_SECS 10

/* One pod operation in flight. */
struct pod_op {
	struct criod *c;
	struct grpc_call *call; /* NULL for background cleanups */
	struct pod *pod;
	char req[72];
	int status;
	char message[512];
};

static void op_error(struct pod_op *op, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void op_error(struct pod_op *op, int status, const char *fmt, ...)
{
	if (op->status != STATUS_OK)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
	op->status = status;
}

/* Queue a call; on a local failure the callback still runs, later. */
static void call_daemon(struct pod_op *op, struct ipc_client *cl, const struct ipc_method *m,
			const ProtobufCMessage *req, ipc_reply_fn cb)
{
	if (op->c->stopping) {
		/* The clients are going away: finish the chain without them. */
		cb(STATUS_CANCELLED, "criod is shutting down", NULL, NULL, 0, op);
		return;
	}
	int r = ipc_client_call(cl, m, op->req, req, NULL, 0, op->c->cfg->rpc_timeout_ms, cb, op);
	if (r < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot queue %s: %s", m->name, strerror(-r));
		cb(STATUS_UNAVAILABLE, msg, NULL, NULL, 0, op);
	}
}

/* ---------------------------------------------------------------- teardown chain */

/* Undo a pod's infrastructure and network, then call done(op). Used by
 * Remove, by a failed Run, and for records left CREATING by a crash. */
typedef void (*op_fn)(struct pod_op *op);

struct teardown_ctx {
	op_fn done;
	bool remove_infra; /* RemovePodInfra (else StopPodInfra) */
};

static void teardown_net_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_, size_t nfds _unused_,
			      void *ud)
{
	struct pod_op *op = ud;
	struct teardown_ctx *t = (struct teardown_ctx *)(op + 1);
	if (status != STATUS_OK)
		op_error(op, status, "netd: %s", message);
	t->done(op);
}

static void teardown_network(struct pod_op *op)
{
	if (pod_host_network(op->pod)) {
		((struct teardown_ctx *)(op + 1))->done(op);
		return;
	}
	Criod__Internal__TeardownPodNetworkRequest req = CRIOD__INTERNAL__TEARDOWN_POD_NETWORK_REQUEST__INIT;
	req.pod_id = op->pod->id;
	call_daemon(op, op->c->netd, API_NETD(NETD_TEARDOWN_POD), &req.base, teardown_net_done);
}

static void teardown_infra_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_,
				size_t nfds _unused_, void *ud)
{
	struct pod_op *op = ud;
	if (status != STATUS_OK)
		op_error(op, status, "spawnd: %s", message);
	teardown_network(op);
}

/* op must have been allocated with a struct teardown_ctx right after it. */
static void teardown(struct pod_op *op, bool remove_infra, op_fn done)
{
	struct teardown_ctx *t = (struct teardown_ctx *)(op + 1);
	t->done = done;
	t->remove_infra = remove_infra;
	if (remove_infra) {
		Criod__Internal__RemovePodInfraRequest req = CRIOD__INTERNAL__REMOVE_POD_INFRA_REQUEST__INIT;
		req.pod_id = op->pod->id;
		call_daemon(op, op->c->spawnd, API_SPAWND(SPAWND_REMOVE_POD_INFRA), &req.base, teardown_infra_done);
	} else {
		Criod__Internal__StopPodInfraRequest req = CRIOD__INTERNAL__STOP_POD_INFRA_REQUEST__INIT;
		req.pod_id = op->pod->id;
		call_daemon(op, op->c->spawnd, API_SPAWND(SPAWND_STOP_POD_INFRA), &req.base, teardown_infra_done);
	}
}

static struct pod_op *op_new_teardown(struct criod *c, struct grpc_call *call)
{
	struct pod_op *op = calloc(1, sizeof(*op) + sizeof(struct teardown_ctx));
	if (!op) {
		if (call)
			grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	op->c = c;
	op->call = call;
	snprintf(op->req, sizeof(op->req), "%s", call ? grpc_call_request_id(call) : "-");
	return op;
}

/* ---------------------------------------------------------------- cleanup of CREATING pods */

static void cleanup_retry(struct criod *c, const char *id);

static void cleanup_done(struct pod_op *op)
{
	struct pod *p = op->pod;
	if (op->status != STATUS_OK) {
		/* A daemon is not there yet: keep the record and try again. */
		log_warn(op->req, "pod cleanup failed, will retry", "pod=%s error=\"%s\"", p->id, op->message);
		pod_task_done(p);
		cri_later(op->c, CLEANUP_RETRY_SECS, cleanup_retry, p->id);
	} else {
		log_info(op->req, "undid unfinished pod", "pod=%s", p->id);
		pod_destroy(&op->c->pods, p);
		pod_task_done(p);
	}
	free(op);
}

static void cleanup_task(struct pod *p, void *arg)
{
	struct pod_op *op = arg;
	if (p->gone || p->state != POD_CREATING) {
		pod_task_done(p);
		free(op);
		return;
	}
	op->pod = p;
	teardown(op, true, cleanup_done);
}

static void cleanup_retry(struct criod *c, const char *id)
{
	struct pod *p = pods_find(&c->pods, id);
	if (!p)
		return;
	struct pod_op *op = op_new_teardown(c, NULL);
	if (op && pod_enqueue(p, cleanup_task, op) < 0)
		free(op);
}

/* ---------------------------------------------------------------- removal of unreadable pods */

/* A pod whose record could not be read: its containers, infrastructure and
 * network are removed by id as RemovePodSandbox would (each step is
 * idempotent in its daemon), then its directory; a step that fails is
 * retried until it converges. */
static void unreadable_retry(struct criod *c, const char *id);

static void unreadable_done(struct pod_op *op)
{
	struct pod *p = op->pod;
	if (op->status != STATUS_OK) {
		log_warn(op->req, "removing a pod whose record was unreadable failed, will retry", "pod=%s error=\"%s\"",
			 p->id, op->message);
		cri_later(op->c, CLEANUP_RETRY_SECS, unreadable_retry, p->id);
	} else {
		log_info(op->req, "removed a pod whose record was unreadable", "pod=%s", p->id);
		pod_destroy(&op->c->pods, p);
	}
	pod_task_done(p);
	free(op);
}

static void unreadable_containers_done(void *arg, int status, const char *message)
{
	struct pod_op *op = arg;
	if (status != STATUS_OK) {
		op_error(op, status, "%s", message);
		unreadable_done(op);
		return;
	}
	teardown(op, true, unreadable_done);
}

static void unreadable_task(struct pod *p, void *arg)
{
	struct pod_op *op = arg;
	if (p->gone) {
		pod_task_done(p);
		free(op);
		return;
	}
	op->pod = p;
	containers_for_pod(op->c, p->id, true, op->req, unreadable_containers_done, op);
}

static void unreadable_retry(struct criod *c, const char *id)
{
	struct pod *p = pods_find_unreadable(&c->pods, id);
	if (!p)
		return;
	struct pod_op *op = op_new_teardown(c, NULL);
	if (op && pod_enqueue(p, unreadable_task, op) < 0)
		free(op);
}

void pods_recover(struct criod *c)
{
	for (struct pod *p = c->pods.pods; p; p = p->next)
		if (p->state == POD_CREATING) {
			p->failed = true;
			cri_later(c, 0, cleanup_retry, p->id);
		}
	for (struct pod *p = c->pods.unreadable; p; p = p->next)
		cri_later(c, 0, unreadable_retry, p->id);
}

/* ---------------------------------------------------------------- RunPodSandbox */

static void run_reply(struct pod_op *op)
{
	struct pod *p = op->pod;
	if (op->status == STATUS_OK) {
		Runtime__V1__RunPodSandboxResponse resp = RUNTIME__V1__RUN_POD_SANDBOX_RESPONSE__INIT;
		resp.pod_sandbox_id = p->id;
		log_info(op->req, "pod ready", "pod=%s name=%s ip=%s", p->id, p->config->metadata->name,
			 p->n_ips ? p->ips[0] : "-");
		events_send_pod(op->c, p, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
		events_send_pod(op->c, p, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
		grpc_call_reply(op->call, &resp.base);
		pod_task_done(p);
		free(op);
		return;
	}
	grpc_call_fail(op->call, op->status, "%s", op->message);
	op->call = NULL;
	p->failed = true; /* kubelet may retry with the same name at once */
	/* Undo whatever was made; the record stays CREATING until that worked. */
	op->status = STATUS_OK;
	teardown(op, true, cleanup_done);
}

static void run_fail(struct pod_op *op, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void run_fail(struct pod_op *op, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
	op->status = status;
	log_warn(op->req, "pod creation failed", "pod=%s error=\"%s\"", op->pod->id, op->message);
	run_reply(op);
}

static char *dup_or_empty(const char *s) { return strdup(s ? s : ""); }

static void replace(char **field, const char *value)
{
	free(*field);
	*field = dup_or_empty(value);
}

static void infra_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
		       void *ud)
{
	struct pod_op *op = ud;
	struct pod *p = op->pod;
	if (status != STATUS_OK) {
		run_fail(op, status, "spawnd: %s", message);
		return;
	}
	const Criod__Internal__CreatePodInfraResponse *r = (const void *)resp;
	p->pause_pid = r->pause_pid;
	replace(&p->ipc_ns, r->ipc_ns_path);
	replace(&p->uts_ns, r->uts_ns_path);
	replace(&p->pid_ns, r->pid_ns_path);
	replace(&p->shm, r->shm_path);
	replace(&p->cgroup, r->cgroup_path);
	p->oom_score_adj = r->oom_score_adj;
	p->state = POD_READY;
	int ret = pod_save(p);
	if (ret < 0) {
		p->state = POD_CREATING;
		run_fail(op, STATUS_INTERNAL, "cannot save pod state: %s", strerror(-ret));
		return;
	}
	run_reply(op);
}

static void start_infra(struct pod_op *op)
{
	struct pod *p = op->pod;
	const struct criod_config *cfg = op->c->cfg;
	int ret = pod_write_files(p, pod_hostname(p));
	if (ret < 0) {
		run_fail(op, STATUS_INTERNAL, "cannot write the pod's hostname, hosts and resolv.conf: %s",
			 strerror(-ret));
		return;
	}
	Criod__Internal__CreatePodInfraRequest req = CRIOD__INTERNAL__CREATE_POD_INFRA_REQUEST__INIT;
	req.pod_id = p->id;
	req.hostname = (char *)pod_hostname(p);
	req.netns_path = p->netns_path;
	req.host_network = pod_host_network(p);
	req.ipc = pod_ns_mode(p, 'i') == RUNTIME__V1__NAMESPACE_MODE__NODE ? CRIOD__INTERNAL__NS_MODE__NS_NODE
									    : CRIOD__INTERNAL__NS_MODE__NS_POD;
	int pid = pod_ns_mode(p, 'p');
	req.pid = pid == RUNTIME__V1__NAMESPACE_MODE__NODE	  ? CRIOD__INTERNAL__NS_MODE__NS_NODE
		  : pid == RUNTIME__V1__NAMESPACE_MODE__POD ? CRIOD__INTERNAL__NS_MODE__NS_POD
							    : CRIOD__INTERNAL__NS_MODE__NS_CONTAINER;
	req.cgroup_parent = p->config->linux && p->config->linux->cgroup_parent ? p->config->linux->cgroup_parent : "";
	req.cgroup_driver = cfg->cgroup_driver;
	req.oom_score_adj = PAUSE_OOM_SCORE_ADJ;
	req.shm_size = cfg->shm_size;
	/* spawnd checks it against [policy] allow_privileged and lets the
	 * pod's containers be privileged only if it was. */
	req.privileged = p->config->linux && p->config->linux->security_context &&
			 p->config->linux->security_context->privileged;
	call_daemon(op, op->c->spawnd, API_SPAWND(SPAWND_CREATE_POD_INFRA), &req.base, infra_done);
}

static void network_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
			 void *ud)
{
	struct pod_op *op = ud;
	struct pod *p = op->pod;
	if (status != STATUS_OK) {
		run_fail(op, status, "netd: %s", message);
		return;
	}
	const Criod__Internal__SetupPodNetworkResponse *r = (const void *)resp;
	replace(&p->netns_path, r->netns_path);
	for (size_t i = 0; i < r->n_ips && p->n_ips < POD_MAX_IPS; i++)
		p->ips[p->n_ips++] = dup_or_empty(r->ips[i]);
	/* Not saved yet: the record stays CREATING, and a restart undoes the
	 * pod by its id alone; infra_done saves it all, READY. */
	start_infra(op);
}

static void start_network(struct pod_op *op)
{
	struct pod *p = op->pod;
	if (pod_host_network(p)) {
		start_infra(op);
		return;
	}
	const Runtime__V1__PodSandboxConfig *cfg = p->config;
	Criod__Internal__SetupPodNetworkRequest req = CRIOD__INTERNAL__SETUP_POD_NETWORK_REQUEST__INIT;
	req.pod_id = p->id;
	req.pod_name = cfg->metadata->name;
	req.pod_namespace = cfg->metadata->namespace_;
	req.pod_uid = cfg->metadata->uid;
	req.cgroup_parent = cfg->linux && cfg->linux->cgroup_parent ? cfg->linux->cgroup_parent : "";
	Criod__Internal__PortMapping pms[256], *pmp[256];
	size_t n = 0;
	for (size_t i = 0; i < cfg->n_port_mappings && n < ARRAY_SIZE(pms); i++) {
		const Runtime__V1__PortMapping *m = cfg->port_mappings[i];
		if (m->host_port <= 0)
			continue; /* only host ports need the network's help */
		criod__internal__port_mapping__init(&pms[n]);
		pms[n].protocol = m->protocol == RUNTIME__V1__PROTOCOL__UDP ? "udp" : "tcp";
		pms[n].container_port = m->container_port;
		pms[n].host_port = m->host_port;
		pms[n].host_ip = m->host_ip ? m->host_ip : "";
		pmp[n] = &pms[n];
		n++;
	}
	req.port_mappings = pmp;
	req.n_port_mappings = n;
	call_daemon(op, op->c->netd, API_NETD(NETD_SETUP_POD), &req.base, network_done);
}

static void run_task(struct pod *p, void *arg)
{
	struct pod_op *op = arg;
	op->pod = p;
	start_network(op);
}

static bool validate_pod_config(struct grpc_call *call, const Runtime__V1__PodSandboxConfig *cfg)
{
	char err[512];
	int st = cri_check_pod_config(cfg, err, sizeof(err));
	if (st == STATUS_OK)
		return true;
	grpc_call_fail(call, st, "%s", err);
	return false;
}

static void run_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__RunPodSandboxRequest *req = (const void *)msg;
	if (!validate_pod_config(call, req->config))
		return;
	const char *handler = req->runtime_handler ? req->runtime_handler : "";
	if (!config_runtime(c->cfg, handler)) {
		char known[512] = "";
		size_t used = 0;
		for (size_t i = 0; i < c->cfg->n_runtimes && used < sizeof(known); i++) {
			int n = snprintf(known + used, sizeof(known) - used, "%s\"%s\"", i ? ", " : "",
					 c->cfg->runtimes[i].name);
			if (n > 0)
				used += (size_t)n;
		}
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT,
			       "runtime_handler \"%.64s\" is not configured (known: \"\" for %s, %s)", handler,
			       c->cfg->default_runtime, known);
		return;
	}
	const Runtime__V1__PodSandboxMetadata *m = req->config->metadata;
	struct pod *other = pods_find_name(&c->pods, m);
	if (other) {
		grpc_call_fail(call, STATUS_ALREADY_EXISTS,
			       "pod sandbox name %s_%s_%s_%u is already reserved by pod %s", m->name,
			       m->namespace_ ? m->namespace_ : "", m->uid ? m->uid : "", m->attempt, other->id);
		return;
	}
	struct pod_op *op = op_new_teardown(c, call);
	if (!op)
		return;
	/* An empty hostname is the node's, as containerd and CRI-O give it;
	 * recorded with the pod so that a restart keeps it. */
	Runtime__V1__PodSandboxConfig cfg = *req->config;
	char node_hostname[HOST_NAME_MAX + 1];
	if (!(cfg.hostname && *cfg.hostname)) {
		if (gethostname(node_hostname, sizeof(node_hostname)) < 0 || !cri_hostname_ok(node_hostname))
			snprintf(node_hostname, sizeof(node_hostname), "localhost");
		node_hostname[HOST_NAME_MAX] = '\0';
		cfg.hostname = node_hostname;
	}
	struct pod *p;
	/* pods.h pod_new: only the cni backend leaves, before READY, what a
	 * host crash does not take away. */
	bool durable = strcmp(c->cfg->net_backend, "netlink") != 0;
	int r = pod_new(&c->pods, &cfg, handler, durable, &p);
	if (r < 0) {
		grpc_call_fail(call, status_from_errno(r), "cannot record the pod: %s", strerror(-r));
		free(op);
		return;
	}
	log_info(op->req, "creating pod", "pod=%s name=%s namespace=%s host_network=%d", p->id, m->name,
		 m->namespace_ ? m->namespace_ : "", pod_host_network(p));
	run_task(p, op); /* pod_new left the pod busy for us */
}

/* ---------------------------------------------------------------- StopPodSandbox */

static void stop_done(struct pod_op *op)
{
	struct pod *p = op->pod;
	bool was_ready = p->state == POD_READY;
	if (op->status == STATUS_OK) {
		p->state = POD_NOTREADY;
		int r = pod_save(p);
		if (r < 0)
			op_error(op, STATUS_INTERNAL, "cannot save pod state: %s", strerror(-r));
	}
	if (op->status == STATUS_OK) {
		log_info(op->req, "pod stopped", "pod=%s", p->id);
		if (was_ready)
			events_send_pod(op->c, p, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
		Runtime__V1__StopPodSandboxResponse resp = RUNTIME__V1__STOP_POD_SANDBOX_RESPONSE__INIT;
		grpc_call_reply(op->call, &resp.base);
	} else {
		grpc_call_fail(op->call, op->status, "stopping pod %s: %s", p->id, op->message);
	}
	pod_task_done(p);
	free(op);
}

/* The pod's containers are stopped: now the pod itself. */
static void stop_containers_done(void *arg, int status, const char *message)
{
	struct pod_op *op = arg;
	if (status != STATUS_OK) {
		op_error(op, status, "%s", message);
		stop_done(op);
		return;
	}
	teardown(op, false, stop_done);
}

static void stop_task(struct pod *p, void *arg)
{
	struct pod_op *op = arg;
	op->pod = p;
	if (p->gone) {
		Runtime__V1__StopPodSandboxResponse resp = RUNTIME__V1__STOP_POD_SANDBOX_RESPONSE__INIT;
		grpc_call_reply(op->call, &resp.base);
		pod_task_done(p);
		free(op);
		return;
	}
	/* Stopping twice asks again: both teardowns are idempotent. Every
	 * container of the pod is stopped first. */
	containers_for_pod(op->c, p->id, false, op->req, stop_containers_done, op);
}

static void stop_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__StopPodSandboxRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "pod_sandbox_id", req->pod_sandbox_id, true, MAX_FIELD))
		return;
	struct pod *p = pods_find(&c->pods, req->pod_sandbox_id);
	if (!p || p->state == POD_CREATING) {
		/* Unknown pods are already stopped. */
		Runtime__V1__StopPodSandboxResponse resp = RUNTIME__V1__STOP_POD_SANDBOX_RESPONSE__INIT;
		grpc_call_reply(call, &resp.base);
		return;
	}
	struct pod_op *op = op_new_teardown(c, call);
	if (op && pod_enqueue(p, stop_task, op) < 0) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		free(op);
	}
}

/* ---------------------------------------------------------------- RemovePodSandbox */

static void remove_done(struct pod_op *op)
{
	struct pod *p = op->pod;
	if (op->status == STATUS_OK) {
		log_info(op->req, "pod removed", "pod=%s", p->id);
		bool was_ready = p->state == POD_READY;
		pod_destroy(&op->c->pods, p);
		p->state = POD_NOTREADY; /* torn down: what the events say */
		if (was_ready)
			events_send_pod(op->c, p, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
		events_send_pod(op->c, p, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
		Runtime__V1__RemovePodSandboxResponse resp = RUNTIME__V1__REMOVE_POD_SANDBOX_RESPONSE__INIT;
		grpc_call_reply(op->call, &resp.base);
	} else {
		grpc_call_fail(op->call, op->status, "removing pod %s: %s", p->id, op->message);
	}
	pod_task_done(p);
	free(op);
}

/* The pod's containers are removed: now the pod itself. */
static void remove_containers_done(void *arg, int status, const char *message)
{
	struct pod_op *op = arg;
	if (status != STATUS_OK) {
		op_error(op, status, "%s", message);
		remove_done(op);
		return;
	}
	teardown(op, true, remove_done);
}

static void remove_task(struct pod *p, void *arg)
{
	struct pod_op *op = arg;
	op->pod = p;
	if (p->gone) {
		Runtime__V1__RemovePodSandboxResponse resp = RUNTIME__V1__REMOVE_POD_SANDBOX_RESPONSE__INIT;
		grpc_call_reply(op->call, &resp.base);
		pod_task_done(p);
		free(op);
		return;
	}
	containers_for_pod(op->c, p->id, true, op->req, remove_containers_done, op);
}

static void remove_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__RemovePodSandboxRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "pod_sandbox_id", req->pod_sandbox_id, true, MAX_FIELD))
		return;
	struct pod *p = pods_find(&c->pods, req->pod_sandbox_id);
	if (!p || p->state == POD_CREATING) {
		Runtime__V1__RemovePodSandboxResponse resp = RUNTIME__V1__REMOVE_POD_SANDBOX_RESPONSE__INIT;
		grpc_call_reply(call, &resp.base);
		return;
	}
	struct pod_op *op = op_new_teardown(c, call);
	if (op && pod_enqueue(p, remove_task, op) < 0) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		free(op);
	}
}

/* ---------------------------------------------------------------- Status, List */

static Runtime__V1__PodSandboxState cri_state(const struct pod *p)
{
	return p->state == POD_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
				     : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
}

/* The label and annotation entries of the config are handed out as the
 * status's and list's entries: all are (string key = 1, string value = 2),
 * so they encode alike. */
void pod_status_fill(struct pod_status_msg *m, const struct pod *p)
{
	const Runtime__V1__PodSandboxConfig *cfg = p->config;
	runtime__v1__pod_sandbox_status__init(&m->st);
	runtime__v1__pod_sandbox_network_status__init(&m->net);
	runtime__v1__linux_pod_sandbox_status__init(&m->lin);
	runtime__v1__namespace__init(&m->ns);
	runtime__v1__namespace_option__init(&m->opts);
	m->st.id = (char *)p->id;
	m->st.metadata = cfg->metadata;
	m->st.state = cri_state(p);
	m->st.created_at = p->created_at;
	m->net.ip = p->n_ips ? p->ips[0] : "";
	for (size_t i = 1; i < p->n_ips; i++) {
		runtime__v1__pod_ip__init(&m->extra[i - 1]);
		m->extra[i - 1].ip = p->ips[i];
		m->extra_p[i - 1] = &m->extra[i - 1];
	}
	m->net.n_additional_ips = p->n_ips > 1 ? p->n_ips - 1 : 0;
	m->net.additional_ips = m->extra_p;
	m->st.network = &m->net;
	m->opts.network = (Runtime__V1__NamespaceMode)pod_ns_mode(p, 'n');
	m->opts.pid = (Runtime__V1__NamespaceMode)pod_ns_mode(p, 'p');
	m->opts.ipc = (Runtime__V1__NamespaceMode)pod_ns_mode(p, 'i');
	m->ns.options = &m->opts;
	m->lin.namespaces = &m->ns;
	m->st.linux = &m->lin;
	m->st.labels = (Runtime__V1__PodSandboxStatus__LabelsEntry **)cfg->labels;
	m->st.n_labels = cfg->n_labels;
	m->st.annotations = (Runtime__V1__PodSandboxStatus__AnnotationsEntry **)cfg->annotations;
	m->st.n_annotations = cfg->n_annotations;
	m->st.runtime_handler = p->runtime_handler;
}

static void pod_sandbox_status(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__PodSandboxStatusRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "pod_sandbox_id", req->pod_sandbox_id, true, MAX_FIELD))
		return;
	struct pod *p = pods_find(&c->pods, req->pod_sandbox_id);
	if (!p || p->state == POD_CREATING) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "pod sandbox %s not found", req->pod_sandbox_id);
		return;
	}
	struct pod_status_msg m;
	pod_status_fill(&m, p);

	Runtime__V1__PodSandboxStatusResponse resp = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INIT;
	resp.status = &m.st;
	resp.timestamp = now_realtime_ns();
	Runtime__V1__PodSandboxStatusResponse__InfoEntry entry = RUNTIME__V1__POD_SANDBOX_STATUS_RESPONSE__INFO_ENTRY__INIT;
	Runtime__V1__PodSandboxStatusResponse__InfoEntry *entries[] = {&entry};
	_cleanup_free_ char *info = NULL;
	if (req->verbose &&
	    asprintf(&info,
		     "{\"pid\":%lld,\"netnsPath\":\"%s\",\"ipcNamespace\":\"%s\",\"utsNamespace\":\"%s\","
		     "\"pidNamespace\":\"%s\",\"shm\":\"%s\",\"cgroup\":\"%s\",\"oomScoreAdj\":%lld,"
		     "\"stateDir\":\"%s\",\"resolvConf\":\"%s/resolv.conf\",\"hostname\":\"%s\"}",
		     (long long)p->pause_pid, p->netns_path, p->ipc_ns, p->uts_ns, p->pid_ns, p->shm, p->cgroup,
		     (long long)p->oom_score_adj, p->dir, p->dir, pod_hostname(p)) >= 0) {
		entry.key = (char *)"info";
		entry.value = info;
		resp.info = entries;
		resp.n_info = 1;
	}
	grpc_call_reply(call, &resp.base);
}

static bool labels_match(const struct pod *p, const Runtime__V1__PodSandboxFilter *f)
{
	for (size_t i = 0; i < f->n_label_selector; i++) {
		const char *k = f->label_selector[i]->key, *v = f->label_selector[i]->value;
		bool found = false;
		for (size_t j = 0; j < p->config->n_labels && !found; j++)
			found = strcmp(p->config->labels[j]->key, k) == 0 && strcmp(p->config->labels[j]->value, v) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* ListPodSandbox and StreamPodSandboxes: the pods f selects, answered as
 * desc (list_reply.h). */
static void pod_list(struct grpc_call *call, struct criod *c, const Runtime__V1__PodSandboxFilter *f,
		     const ProtobufCMessageDescriptor *desc)
{
	size_t n = 0;
	for (struct pod *p = c->pods.pods; p; p = p->next)
		n++;
	_cleanup_free_ Runtime__V1__PodSandbox *items = calloc(n ? n : 1, sizeof(*items));
	_cleanup_free_ Runtime__V1__PodSandbox **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!items || !ptrs) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	size_t k = 0;
	for (struct pod *p = c->pods.pods; p; p = p->next) {
		if (p->gone || p->state == POD_CREATING)
			continue;
		if (f && f->id && *f->id && pods_find(&c->pods, f->id) != p)
			continue;
		if (f && f->state && f->state->state != cri_state(p))
			continue;
		if (f && !labels_match(p, f))
			continue;
		Runtime__V1__PodSandbox *it = &items[k];
		runtime__v1__pod_sandbox__init(it);
		it->id = p->id;
		it->metadata = p->config->metadata;
		it->state = cri_state(p);
		it->created_at = p->created_at;
		it->labels = (Runtime__V1__PodSandbox__LabelsEntry **)p->config->labels;
		it->n_labels = p->config->n_labels;
		it->annotations = (Runtime__V1__PodSandbox__AnnotationsEntry **)p->config->annotations;
		it->n_annotations = p->config->n_annotations;
		it->runtime_handler = p->runtime_handler;
		ptrs[k++] = it;
	}
	list_reply(call, desc, (ProtobufCMessage *const *)ptrs, k);
}

static void list_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__ListPodSandboxRequest *req = (const void *)msg;
	pod_list(call, ud, req->filter, &runtime__v1__list_pod_sandbox_response__descriptor);
}

static void stream_pod_sandboxes(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__StreamPodSandboxesRequest *req = (const void *)msg;
	pod_list(call, ud, req->filter, &runtime__v1__stream_pod_sandboxes_response__descriptor);
}

const struct cri_handler pod_service_handlers[] = {
	{"RuntimeService", "RunPodSandbox", run_pod_sandbox},
	{"RuntimeService", "StopPodSandbox", stop_pod_sandbox},
	{"RuntimeService", "RemovePodSandbox", remove_pod_sandbox},
	{"RuntimeService", "PodSandboxStatus", pod_sandbox_status},
	{"RuntimeService", "ListPodSandbox", list_pod_sandbox},
	{"RuntimeService", "StreamPodSandboxes", stream_pod_sandboxes},
};
const size_t n_pod_service_handlers = ARRAY_SIZE(pod_service_handlers);
