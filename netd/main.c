/* netd: the root network daemon. It owns every network namespace, link,
 * address, route, nftables rule and IP allocation criod asks it to make,
 * through the short request list below. Every argument is checked here as
 * if criod were hostile, and netd only ever acts on a pod it has a record
 * of (pod.h).
 *
 * Requests for one pod run one after the other, in arrival order; requests
 * for different pods run concurrently on worker threads (the blocking
 * netlink, nftables, mount and CNI work), so the loop keeps serving. The
 * table of pods lives on the loop thread only. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api.h"
#include "caps.h"
#include "confine.h"
#include "daemon.h"
#include "internal/envelope.pb-c.h"
#include "internal/netd.pb-c.h"
#include "log.h"
#include "loopback.h"
#include "macro.h"
#include "netns.h"
#include "netstats.h"
#include "pod.h"
#include "prom.h"
#include "request.h"
#include "status.h"
#include "util.h"
#include "workq.h"

#define WORKER_THREADS 4
#define PORT_FORWARD_THREADS 2 /* PortForward connects, apart from pod work */

struct netd_main;

enum op_kind { OP_SETUP, OP_TEARDOWN, OP_STATUS };

static const char *const op_names[] = {
	[OP_SETUP] = "SetupPodNetwork",
	[OP_TEARDOWN] = "TeardownPodNetwork",
	[OP_STATUS] = "PodNetworkStatus",
};

struct pod_op;

/* Every pod netd holds a record of or has a request queued for. */
struct pod_entry {
	struct pod_entry *next;
	char id[65];
	struct pod_record *rec;     /* committed record; NULL: none */
	struct pod_record *pending; /* a setup in flight (its host ports are reserved) */
	struct pod_op *head, *tail; /* requests waiting for their turn */
	bool busy;                  /* one of its requests is on a worker */
};

struct pod_op {
	struct pod_op *next;
	struct netd_main *m;
	struct pod_entry *pe;
	enum op_kind kind;
	struct ipc_call *call;
	char req[72];
	struct pod_record *rec; /* setup: what to make; teardown: a copy of the record */
	int ret;
	bool gone; /* after the work: nothing of the pod remains */
	bool veth_left; /* teardown: the veth pair was left to go with the namespace */
	int64_t start_ns; /* monotonic, when the request came in */
	char err[768];
};

/* A torn-down pod's host veth, looked at once more a while later. */
struct veth_check {
	struct veth_check *next;
	struct netd_main *m;
	struct event *ev;
	char pod_id[65];
	char veth[16];
};

#define VETH_CHECK_DELAY_S 2

struct netd_main {
	struct daemon *d;
	struct netd net;
	struct workq *wq;
	struct workq *pfq; /* PortForward's connects */
	struct pod_entry *pods;
	struct veth_check *veth_checks;
	struct prom_by_status setups; /* setups that ran, by status (Metrics) */
};

/* ---------------------------------------------------------------- pods */

static struct pod_entry *pod_find(struct netd_main *m, const char *id)
{
	for (struct pod_entry *pe = m->pods; pe; pe = pe->next)
		if (strcmp(pe->id, id) == 0)
			return pe;
	return NULL;
}

static struct pod_entry *pod_get(struct netd_main *m, const char *id)
{
	struct pod_entry *pe = pod_find(m, id);

	if (pe)
		return pe;
	pe = calloc(1, sizeof(*pe));
	if (!pe)
		return NULL;
	snprintf(pe->id, sizeof(pe->id), "%s", id);
	pe->next = m->pods;
	m->pods = pe;
	return pe;
}

static void pod_forget_if_idle(struct netd_main *m, struct pod_entry *pe)
{
	if (pe->busy || pe->head || pe->rec || pe->pending)
		return;
	for (struct pod_entry **pp = &m->pods; *pp; pp = &(*pp)->next)
		if (*pp == pe) {
			*pp = pe->next;
			break;
		}
	free(pe);
}

static void op_free(struct pod_op *op)
{
	pod_record_freep(&op->rec);
	free(op);
}

/* ---------------------------------------------------------------- host ports */

static const struct port_mapping *record_conflict(const struct pod_record *rec, const struct port_mapping *m)
{
	if (!rec)
		return NULL;
	for (size_t i = 0; i < rec->n_ports; i++)
		if (netd_ports_conflict(&rec->ports[i], m))
			return &rec->ports[i];
	return NULL;
}

static bool same_ports(const struct pod_record *a, const struct pod_record *b)
{
	if (a->n_ports != b->n_ports)
		return false;
	for (size_t i = 0; i < a->n_ports; i++)
		if (a->ports[i].protocol != b->ports[i].protocol || a->ports[i].host_port != b->ports[i].host_port ||
		    a->ports[i].container_port != b->ports[i].container_port ||
		    strcmp(a->ports[i].host_ip, b->ports[i].host_ip) != 0)
			return false;
	return true;
}

/* ---------------------------------------------------------------- replies */

static void reply_setup(struct ipc_call *call, const struct pod_record *rec)
{
	Criod__Internal__SetupPodNetworkResponse resp = CRIOD__INTERNAL__SETUP_POD_NETWORK_RESPONSE__INIT;
	char *ips[NETD_MAX_IPS];

	for (size_t i = 0; i < rec->n_ips; i++)
		ips[i] = (char *)rec->ips[i].addr;
	resp.netns_path = (char *)rec->netns;
	resp.ips = ips;
	resp.n_ips = rec->n_ips;
	resp.interface = (char *)rec->ifname;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static void reply_status(struct ipc_call *call, const struct pod_entry *pe)
{
	Criod__Internal__PodNetworkStatusResponse resp = CRIOD__INTERNAL__POD_NETWORK_STATUS_RESPONSE__INIT;
	const struct pod_record *rec = pe->rec;
	char *ips[NETD_MAX_IPS];

	if (!rec || rec->state != POD_READY) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "no pod network for pod %s%s", pe->id,
			      rec ? " (it is being torn down)" : "");
		return;
	}
	for (size_t i = 0; i < rec->n_ips; i++)
		ips[i] = (char *)rec->ips[i].addr;
	resp.netns_path = (char *)rec->netns;
	resp.ips = ips;
	resp.n_ips = rec->n_ips;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static int setup_status(int ret)
{
	switch (-ret) {
	case ENOSPC:
		return STATUS_RESOURCE_EXHAUSTED;
	case EEXIST:
		return STATUS_ALREADY_EXISTS;
	case ETIMEDOUT:
		return STATUS_DEADLINE_EXCEEDED;
	default:
		return STATUS_INTERNAL;
	}
}

/* ---------------------------------------------------------------- the queue */

static void pod_kick(struct netd_main *m, struct pod_entry *pe);

static void setup_work(void *arg)
{
	struct pod_op *op = arg;
	op->ret = netd_pod_setup(&op->m->net, op->rec, op->req, op->err, sizeof(op->err), &op->gone);
}

static void teardown_work(void *arg)
{
	struct pod_op *op = arg;
	op->ret = netd_pod_teardown(&op->m->net, op->rec, op->req, op->err, sizeof(op->err), &op->veth_left);
	op->gone = op->ret == 0;
}

/* The check itself, on the loop: unless the pod has a network again, its
 * old host veth must be gone by now; if it is not, something holds the
 * namespace, and the pair is deleted from this side. */
static void veth_check_run(struct veth_check *vc)
{
	struct netd_main *m = vc->m;
	for (struct veth_check **pp = &m->veth_checks; *pp; pp = &(*pp)->next)
		if (*pp == vc) {
			*pp = vc->next;
			break;
		}
	struct pod_entry *pe = pod_find(m, vc->pod_id);
	if (!pe || (!pe->rec && !pe->busy))
		(void)netd_veth_reap(vc->pod_id, vc->veth, NULL);
	event_free(vc->ev);
	free(vc);
}

static void veth_check_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg) { veth_check_run(arg); }

static void veth_check_later(struct netd_main *m, const struct pod_record *rec)
{
	struct veth_check *vc = calloc(1, sizeof(*vc));
	struct timeval tv = {VETH_CHECK_DELAY_S, 0};
	if (vc) {
		vc->m = m;
		snprintf(vc->pod_id, sizeof(vc->pod_id), "%s", rec->pod_id);
		snprintf(vc->veth, sizeof(vc->veth), "%s", rec->host_veth);
		vc->ev = evtimer_new(m->d->base, veth_check_cb, vc);
	}
	if (!vc || !vc->ev || evtimer_add(vc->ev, &tv) < 0) {
		if (vc && vc->ev)
			event_free(vc->ev);
		free(vc);
		(void)netd_veth_reap(rec->pod_id, rec->host_veth, NULL); /* now, then */
		return;
	}
	vc->next = m->veth_checks;
	m->veth_checks = vc;
}

static void op_done(void *arg)
{
	struct pod_op *op = arg;
	struct netd_main *m = op->m;
	struct pod_entry *pe = op->pe;

	pe->busy = false;
	if (op->kind == OP_SETUP) {
		prom_by_status_observe(&m->setups, op->ret == 0 ? STATUS_OK : setup_status(op->ret),
				       (double)(now_monotonic_ns() - op->start_ns) / 1e9, 0);
		pe->pending = NULL;
		if (op->ret == 0) {
			pod_record_freep(&pe->rec);
			pe->rec = TAKE_PTR(op->rec);
			reply_setup(op->call, pe->rec);
		} else {
			/* Whatever the rollback could not undo stays recorded. */
			if (!op->gone) {
				pod_record_freep(&pe->rec);
				pe->rec = TAKE_PTR(op->rec);
			}
			ipc_call_fail(op->call, setup_status(op->ret), "cannot set up the network of pod %s: %s", pe->id,
				      op->err[0] ? op->err : strerror(-op->ret));
		}
	} else {
		pod_record_freep(&pe->rec);
		if (op->ret == 0) {
			Criod__Internal__TeardownPodNetworkResponse resp =
				CRIOD__INTERNAL__TEARDOWN_POD_NETWORK_RESPONSE__INIT;
			if (op->veth_left)
				veth_check_later(m, op->rec);
			ipc_call_reply(op->call, &resp.base, NULL, 0);
		} else {
			pe->rec = TAKE_PTR(op->rec);
			ipc_call_fail(op->call, STATUS_INTERNAL, "cannot tear down the network of pod %s: %s", pe->id,
				      op->err[0] ? op->err : strerror(-op->ret));
		}
	}
	op_free(op);
	pod_kick(m, pe);
}

static bool submit(struct netd_main *m, struct pod_op *op, workq_fn work)
{
	int r = workq_submit(m->wq, work, op_done, op);

	if (r < 0) {
		ipc_call_fail(op->call, STATUS_UNAVAILABLE, "netd cannot take the request now: %s",
			      r == -ESHUTDOWN ? "it is stopping" : strerror(-r));
		return false;
	}
	op->pe->busy = true;
	return true;
}

/* Run the pod's next requests: status and no-op ones at once on the loop,
 * the first one with work to do on a worker. May free pe. */
static void pod_kick(struct netd_main *m, struct pod_entry *pe)
{
	while (!pe->busy && pe->head) {
		struct pod_op *op = pe->head;
		pe->head = op->next;
		if (!pe->head)
			pe->tail = NULL;
		op->next = NULL;

		switch (op->kind) {
		case OP_STATUS:
			reply_status(op->call, pe);
			break;
		case OP_TEARDOWN:
			if (!pe->rec) {
				/* Never set up, or already gone: nothing of it is ours. */
				Criod__Internal__TeardownPodNetworkResponse resp =
					CRIOD__INTERNAL__TEARDOWN_POD_NETWORK_RESPONSE__INIT;
				log_debug(op->req, "no pod network to tear down", "pod=%s", pe->id);
				ipc_call_reply(op->call, &resp.base, NULL, 0);
				break;
			}
			op->rec = pod_record_dup(pe->rec);
			if (!op->rec) {
				ipc_call_fail(op->call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
				break;
			}
			log_info(op->req, "tearing down pod network", "pod=%s", pe->id);
			if (submit(m, op, teardown_work))
				continue;
			break;
		case OP_SETUP:
			if (pe->rec) {
				if (pe->rec->state == POD_READY && same_ports(pe->rec, op->rec)) {
					reply_setup(op->call, pe->rec); /* a retry of what is done */
				} else if (pe->rec->state == POD_READY) {
					ipc_call_fail(op->call, STATUS_ALREADY_EXISTS,
						      "pod %s already has a network, with other port mappings", pe->id);
				} else {
					ipc_call_fail(op->call, STATUS_FAILED_PRECONDITION,
						      "the network of pod %s is half torn down; tear it down first", pe->id);
				}
				break;
			}
			{
				const struct port_mapping *hit = NULL, *mine = NULL;
				const struct pod_entry *owner = NULL;
				for (struct pod_entry *o = m->pods; o && !hit; o = o->next) {
					if (o == pe)
						continue;
					for (size_t i = 0; i < op->rec->n_ports && !hit; i++) {
						mine = &op->rec->ports[i];
						hit = record_conflict(o->rec, mine);
						if (!hit)
							hit = record_conflict(o->pending, mine);
						owner = o;
					}
				}
				if (hit) {
					ipc_call_fail(op->call, STATUS_ALREADY_EXISTS,
						      "host port %u/%s%s%s is already mapped by pod %s", mine->host_port,
						      mine->protocol == IPPROTO_UDP ? "udp" : "tcp",
						      mine->host_ip[0] ? " on " : "", mine->host_ip, owner->id);
					break;
				}
			}
			log_info(op->req, "setting up pod network", "pod=%s name=\"%s\" namespace=\"%s\" ports=%zu",
				 pe->id, op->rec->pod_name, op->rec->pod_namespace, op->rec->n_ports);
			pe->pending = op->rec;
			if (submit(m, op, setup_work))
				continue;
			pe->pending = NULL;
			break;
		}
		op_free(op);
	}
	pod_forget_if_idle(m, pe);
}

static void enqueue(struct netd_main *m, struct ipc_call *call, enum op_kind kind, const char *pod_id,
		    struct pod_record *rec)
{
	struct pod_entry *pe = pod_get(m, pod_id);
	struct pod_op *op = pe ? calloc(1, sizeof(*op)) : NULL;

	if (!op) {
		pod_record_freep(&rec);
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		if (pe)
			pod_forget_if_idle(m, pe);
		return;
	}
	op->m = m;
	op->pe = pe;
	op->kind = kind;
	op->call = call;
	op->rec = rec;
	op->start_ns = now_monotonic_ns();
	snprintf(op->req, sizeof(op->req), "%s", ipc_call_request_id(call));
	if (pe->tail)
		pe->tail->next = op;
	else
		pe->head = op;
	pe->tail = op;
	if (pe->busy)
		log_debug(op->req, "waiting for the pod's previous request", "pod=%s method=%s", pod_id, op_names[kind]);
	pod_kick(m, pe);
}

/* ---------------------------------------------------------------- validation */

static bool check_pod_id(struct ipc_call *call, const char *id)
{
	char err[128];
	int st = netd_check_pod_id(id, err, sizeof(err));
	if (st == STATUS_OK)
		return true;
	ipc_call_fail(call, st, "%s", err);
	return false;
}

/* ---------------------------------------------------------------- handlers */

static void handle_setup(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct netd_main *m = ud;
	const Criod__Internal__SetupPodNetworkRequest *req = (const void *)msg;
	struct pod_record *rec;

	char err[512];
	rec = calloc(1, sizeof(*rec));
	if (!rec) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	int vst = netd_check_setup(req, m->net.cni || m->net.dual, rec, err, sizeof(err));
	if (vst != STATUS_OK) {
		ipc_call_fail(call, vst, "%s", err);
		pod_record_freep(&rec);
		return;
	}
	{
		/* The node's policy, before anything is queued or made. */
		char why[512];
		int st = hostport_policy_check(&m->net.hostports, rec->ports, rec->n_ports, ipc_call_request_id(call),
					       req->pod_id, why, sizeof(why));
		if (st != STATUS_OK) {
			ipc_call_fail(call, st, "%s", why);
			pod_record_freep(&rec);
			return;
		}
	}
	snprintf(rec->pod_id, sizeof(rec->pod_id), "%s", req->pod_id);
	snprintf(rec->pod_name, sizeof(rec->pod_name), "%s", req->pod_name ? req->pod_name : "");
	snprintf(rec->pod_namespace, sizeof(rec->pod_namespace), "%s", req->pod_namespace ? req->pod_namespace : "");
	snprintf(rec->pod_uid, sizeof(rec->pod_uid), "%s", req->pod_uid ? req->pod_uid : "");
	snprintf(rec->cgroup_parent, sizeof(rec->cgroup_parent), "%s", req->cgroup_parent ? req->cgroup_parent : "");
	netd_pod_plan(&m->net, rec);
	enqueue(m, call, OP_SETUP, req->pod_id, rec);
}

static void handle_teardown(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct netd_main *m = ud;
	const Criod__Internal__TeardownPodNetworkRequest *req = (const void *)msg;

	if (!check_pod_id(call, req->pod_id))
		return;
	if (!pod_find(m, req->pod_id)) {
		/* Nothing recorded and nothing queued: not ours, nothing to do. */
		Criod__Internal__TeardownPodNetworkResponse resp = CRIOD__INTERNAL__TEARDOWN_POD_NETWORK_RESPONSE__INIT;
		log_debug(ipc_call_request_id(call), "no pod network to tear down", "pod=%s", req->pod_id);
		ipc_call_reply(call, &resp.base, NULL, 0);
		return;
	}
	enqueue(m, call, OP_TEARDOWN, req->pod_id, NULL);
}

static void handle_status(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct netd_main *m = ud;
	const Criod__Internal__PodNetworkStatusRequest *req = (const void *)msg;

	if (!check_pod_id(call, req->pod_id))
		return;
	if (!pod_find(m, req->pod_id)) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "no pod network for pod %s", req->pod_id);
		return;
	}
	enqueue(m, call, OP_STATUS, req->pod_id, NULL);
}

/* PodNetworkStats: the counters inside a ready pod's namespace (netstats.c),
 * read on a worker; the pod's queue is not held (a read changes nothing),
 * and a namespace torn down meanwhile is NOT_FOUND. */
struct netstats_op {
	struct ipc_call *call;
	char pod_id[65];
	char netns[PATH_MAX];
	char ifname[16];
	struct if_stats ifs[NETSTATS_MAX_IFACES];
	size_t n;
	int ret;
};

static void netstats_work(void *arg)
{
	struct netstats_op *op = arg;
	op->ret = netstats_read_netns(op->netns, op->ifs, NETSTATS_MAX_IFACES, &op->n);
}

static void netstats_done(void *arg)
{
	struct netstats_op *op = arg;
	if (op->ret < 0) {
		ipc_call_fail(op->call, op->ret == -ENOENT ? STATUS_NOT_FOUND : STATUS_INTERNAL,
			      "cannot read the interfaces of pod %s: %s", op->pod_id, strerror(-op->ret));
		free(op);
		return;
	}
	Criod__Internal__PodNetworkStatsResponse resp = CRIOD__INTERNAL__POD_NETWORK_STATS_RESPONSE__INIT;
	Criod__Internal__InterfaceStats is[NETSTATS_MAX_IFACES], *ptrs[NETSTATS_MAX_IFACES];
	for (size_t i = 0; i < op->n; i++) {
		criod__internal__interface_stats__init(&is[i]);
		is[i].name = op->ifs[i].name;
		is[i].rx_bytes = op->ifs[i].rx_bytes;
		is[i].rx_errors = op->ifs[i].rx_errors;
		is[i].tx_bytes = op->ifs[i].tx_bytes;
		is[i].tx_errors = op->ifs[i].tx_errors;
		ptrs[i] = &is[i];
	}
	resp.interfaces = ptrs;
	resp.n_interfaces = op->n;
	resp.default_interface = op->ifname;
	resp.timestamp_ns = now_realtime_ns();
	ipc_call_reply(op->call, &resp.base, NULL, 0);
	free(op);
}

static void handle_netstats(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct netd_main *m = ud;
	const Criod__Internal__PodNetworkStatsRequest *req = (const void *)msg;

	if (!check_pod_id(call, req->pod_id))
		return;
	struct pod_entry *pe = pod_find(m, req->pod_id);
	if (!pe || !pe->rec || pe->rec->state != POD_READY || !pe->rec->netns[0]) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "no pod network for pod %s", req->pod_id);
		return;
	}
	struct netstats_op *op = calloc(1, sizeof(*op));
	if (!op) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	op->call = call;
	snprintf(op->pod_id, sizeof(op->pod_id), "%s", req->pod_id);
	snprintf(op->netns, sizeof(op->netns), "%s", pe->rec->netns);
	snprintf(op->ifname, sizeof(op->ifname), "%s", pe->rec->ifname);
	int r = workq_submit(m->wq, netstats_work, netstats_done, op);
	if (r < 0) {
		free(op);
		ipc_call_fail(call, STATUS_UNAVAILABLE, "netd cannot take the request now: %s", strerror(-r));
	}
}

/* PortForward: a TCP connection to the pod's loopback, made by a thread
 * inside the namespace netd made for the pod (netns_run), on a pool of its
 * own so connects that wait for their timeout never hold up pod set-ups.
 * Only a pod of netd's own records with its network ready; a host-network
 * pod has no record here (spawnd's HostPortForward serves it). The pod's
 * queue is not held: a namespace torn down meanwhile is NOT_FOUND. */
static void handle_port_forward(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	static const Criod__Internal__PortForwardResponse ok = CRIOD__INTERNAL__PORT_FORWARD_RESPONSE__INIT;
	struct netd_main *m = ud;
	const Criod__Internal__PortForwardRequest *req = (const void *)msg;

	if (!check_pod_id(call, req->pod_id))
		return;
	if (req->port < 1 || req->port > 65535) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "port must be 1..65535, not %u", req->port);
		return;
	}
	struct pod_entry *pe = pod_find(m, req->pod_id);
	if (!pe || !pe->rec || pe->rec->state != POD_READY || !pe->rec->netns[0]) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "no pod network for pod %s", req->pod_id);
		return;
	}
	loopback_forward(m->pfq, call, &ok.base, req->pod_id, (uint16_t)req->port, pe->rec->netns, netns_run);
}

/* Metrics: netd's process, the setups that ran (by status, with their
 * latency from request to reply) and the pod addresses in use, counted
 * from its own records (a pod with a committed record holds its
 * addresses); the request has no fields. */
static void handle_metrics(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct netd_main *m = ud;
	Criod__Internal__MetricsResponse resp = CRIOD__INTERNAL__METRICS_RESPONSE__INIT;
	Criod__Internal__ProcessFigures pf;
	Criod__Internal__NetworkSetupFigures sf[PROM_N_STATUS], *sfp[PROM_N_STATUS];
	Criod__Internal__HistogramFigures hf[PROM_N_STATUS];
	Criod__Internal__IpFigures ipf[2], *ipp[2];
	daemon_process_figures(&pf);
	resp.component = (char *)"netd";
	resp.process = &pf;
	for (int st = 0; st < PROM_N_STATUS; st++) {
		if (!prom_hist_count(&m->setups.h[st]))
			continue;
		size_t k = resp.n_setups++;
		criod__internal__network_setup_figures__init(&sf[k]);
		sf[k].result = (char *)status_name(st);
		daemon_hist_figures(&m->setups.h[st], &hf[k]);
		sf[k].seconds = &hf[k];
		sfp[k] = &sf[k];
	}
	resp.setups = sfp;
	uint64_t v4 = 0, v6 = 0;
	for (const struct pod_entry *pe = m->pods; pe; pe = pe->next)
		for (size_t i = 0; pe->rec && i < pe->rec->n_ips; i++) {
			if (strchr(pe->rec->ips[i].addr, ':'))
				v6++;
			else
				v4++;
		}
	const struct {
		const char *family;
		uint64_t in_use;
		const struct ipam_subnet *sub;
		bool on;
	} fams[] = {
		{"ipv4", v4, &m->net.sub4, true},
		{"ipv6", v6, &m->net.sub6, m->net.dual || v6 > 0},
	};
	for (size_t i = 0; i < ARRAY_SIZE(fams); i++) {
		if (!fams[i].on)
			continue;
		size_t k = resp.n_ips++;
		criod__internal__ip_figures__init(&ipf[k]);
		ipf[k].family = (char *)fams[i].family;
		ipf[k].in_use = fams[i].in_use;
		/* The allocatable addresses of the built-in IPAM's subnet; a CNI
		 * plugin's pool is its own (0: not known here). */
		if (!m->net.cni && fams[i].sub->last >= fams[i].sub->first && fams[i].sub->host_bits)
			ipf[k].capacity = fams[i].sub->last - fams[i].sub->first + 1;
		ipp[k] = &ipf[k];
	}
	resp.ips = ipp;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* The handler of each request of common/api.c's netd_methods (bound at start). */
static const ipc_handler_fn netd_handlers[NETD_N_METHODS] = {
	[NETD_PING - 1] = daemon_handle_ping,
	[NETD_SETUP_POD - 1] = handle_setup,
	[NETD_TEARDOWN_POD - 1] = handle_teardown,
	[NETD_POD_STATUS - 1] = handle_status,
	[NETD_POD_NETWORK_STATS - 1] = handle_netstats,
	[NETD_PORT_FORWARD - 1] = handle_port_forward,
	[NETD_METRICS - 1] = handle_metrics,
};

/* ---------------------------------------------------------------- confinement */

/* What netd calls beyond common/'s base list (confine.c). The programs it
 * execs inherit the filter: the CNI plugins (Go: their runtime's calls,
 * setns, netlink) and the iptables-nft portmap runs need nothing beyond
 * these two lists; a call outside them kills such a program (SIGSYS, no
 * handler after exec), which fails the pod's setup naming the plugin. */
static const char *const netd_syscalls[] = {
	/* namespaces: a pod's made on a thread (unshare), entered (setns),
	 * bind-mounted on a file under the run dir and unmounted; the run
	 * dir's netns directory made a shared mount */
	"unshare", "setns", "mount", "umount2",
	/* its socket's mode, set by ipc_server_new after confining */
	"chmod",
	/* CNI plugins: started (spawn.c), and their dynamic loader's TLS
	 * set-up (glibc; Go's runtime sets it the same way) */
	"execve", "arch_prctl",
	NULL,
};

/* CAP_NET_ADMIN: links, addresses, routes, nftables, net sysctls;
 * CAP_SYS_ADMIN: unshare/setns of network namespaces and the mounts of
 * their files. Nothing else (docs/ARCHITECTURE.md says why not
 * DAC_OVERRIDE, SYS_PTRACE, NET_RAW). CNI plugins, root children, get
 * exactly these at exec and no more: no_new_privs, as they are ordinary
 * binaries, none setuid or with file capabilities. */
static const struct confine_policy netd_confinement = {
	.caps = CAPBIT(12) /* NET_ADMIN */ | CAPBIT(21) /* SYS_ADMIN */,
	.no_new_privs = true,
	.action = CONFINE_DENY_LOGGED,
	.syscalls = netd_syscalls,
	.syscalls2 = confine_base_syscalls,
};

/* ---------------------------------------------------------------- main */

static int load_pods(struct netd_main *m)
{
	struct pod_record **recs = NULL;
	size_t n = 0;
	int r = netd_reconcile(&m->net, &recs, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct pod_entry *pe = pod_get(m, recs[i]->pod_id);
		if (!pe) {
			for (size_t j = i; j < n; j++)
				pod_record_freep(&recs[j]);
			r = -ENOMEM;
			break;
		}
		pod_record_freep(&pe->rec);
		pe->rec = recs[i];
	}
	free(recs);
	return r;
}

static void free_pods(struct netd_main *m)
{
	while (m->pods) {
		struct pod_entry *pe = m->pods;
		m->pods = pe->next;
		while (pe->head) { /* not expected after workq_free; be safe */
			struct pod_op *op = pe->head;
			pe->head = op->next;
			ipc_call_fail(op->call, STATUS_UNAVAILABLE, "netd is stopping");
			op_free(op);
		}
		pod_record_freep(&pe->rec);
		free(pe);
	}
}

/* The table served: common/api.c's rows with the handlers above. */
static struct ipc_method methods[NETD_N_METHODS];

int main(int argc, char **argv)
{
	api_bind(methods, netd_methods, NETD_N_METHODS, netd_handlers);
	struct daemon d;
	struct netd_main m = {.d = &d};
	prom_by_status_init(&m.setups, prom_latency_bounds, prom_n_latency_bounds);
	struct ipc_server *srv = NULL;
	char err[512];
	int r;

	daemon_init(&d, "netd", argc, argv);
	if (netd_configure(&m.net, &d.cfg, err, sizeof(err)) < 0) {
		log_error(NULL, "bad configuration", "error=\"%s\"", err);
		daemon_fini(&d);
		return 2;
	}
	r = geteuid() == 0 ? 0 : log_error_errno(EPERM, NULL, "must run as root");
	/* Before anything is made (state dirs, the namespace dir's mount, the
	 * reconcile's teardowns, the bridge and the table) and before any
	 * thread: capabilities are per thread. */
	if (r >= 0)
		r = confine_self("netd", &netd_confinement);
	if (r >= 0)
		r = netd_open(&m.net);
	if (r >= 0)
		r = load_pods(&m);
	if (r >= 0)
		r = workq_new(d.base, WORKER_THREADS, &m.wq);
	if (r >= 0)
		r = workq_new(d.base, PORT_FORWARD_THREADS, &m.pfq);
	if (r >= 0)
		r = daemon_serve_root(&d, d.cfg.netd_socket, methods, NETD_N_METHODS, &m, &srv);
	if (r >= 0) {
		log_info(NULL, "netd configuration", "backend=%s bridge=%s subnet=%s subnet6=%s mtu=%llu table=%s masquerade=%s",
			 d.cfg.net_backend, d.cfg.net_bridge, m.net.sub4.cidr, m.net.dual ? m.net.sub6.cidr : "-",
			 (unsigned long long)d.cfg.net_mtu, d.cfg.net_nft_table, d.cfg.net_masquerade ? "true" : "false");
		log_info(NULL, "host port policy", "host_port_range=%s host_port_local=%s host_port_allow_in_use=%s",
			 m.net.hostports.range, m.net.hostports.local ? "true" : "false",
			 m.net.hostports.allow_in_use ? "true" : "false");
		r = daemon_run(&d);
	}
	/* Requests on workers finish; their callers get the replies if still connected. */
	workq_free(m.wq);
	if (m.pfq)
		workq_free(m.pfq);
	ipc_server_free(srv);
	while (m.veth_checks) /* due or not: look now */
		veth_check_run(m.veth_checks);
	free_pods(&m);
	netd_close(&m.net);
	daemon_fini(&d);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
