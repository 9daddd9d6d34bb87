/* spawnd: the root spawner. It starts each pod's infrastructure (a pause
 * process holding the pod's namespaces, their bind mounts, /dev/shm and the
 * pod cgroup; conmon/spawnd_pod.c) and one conmon monitor per container
 * (conmon/spawnd_container.c) at criod's request (the short list at the end);
 * pause processes and monitors outlive both criod and spawnd. Every
 * argument is checked here as if criod were hostile: ids are 64 hex
 * characters, a pod's network namespace must be a namespace mount under
 * <run_dir>/netns/, cgroup parents are validated paths or slice names, a
 * container's spec may only name its own root filesystem and its own pod's
 * namespaces and cgroup (spawnd_container.h), and every path spawnd makes is
 * derived from the ids under its own roots. The one host file it opens for
 * criod, a Localhost seccomp profile, must be a regular file beneath
 * [policy] seccomp_profile_roots, reached without following a symlink;
 * criod gets the open file, never the path's privilege.
 *
 * Creating a pod and opening a profile run on the loop (system calls
 * only); stopping and removing wait for processes to die and for cgroups to
 * empty, so they run on the worker pool, one operation per pod at a time: a
 * Stop or Remove for a pod that is busy waits for the operation in progress. Creating a container
 * starts its conmon from the loop and waits for its report without blocking
 * it; removing one runs on the worker pool. RemovePodInfra does not look at
 * containers: criod removes them first. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api.h"
#include "beneath.h"
#include "spawnd_cgroup.h"
#include "spawnd_container.h"
#include "daemon.h"
#include "internal/envelope.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "log.h"
#include "loopback.h"
#include "macro.h"
#include "spawnd_pod.h"
#include "spawnd_proc.h"
#include "seccomp_profile.h"
#include "spawnd_confine.h"
#include "spawnd_launch.h"
#include "status.h"
#include "util.h"
#include "workq.h"

#define WORKER_THREADS 4
#define PORT_FORWARD_THREADS 2 /* HostPortForward connects, apart from pod work */
#define ERR_MAX 512

struct spawnd;

struct pod {
	struct pod *next;
	struct pod_infra info;
	struct pod_op *op; /* in progress; the loop leaves info alone meanwhile */
};

struct call_list {
	struct ipc_call **v;
	size_t n;
};

/* A stop or a teardown of one pod on the worker pool. */
struct pod_op {
	struct spawnd *sd;
	struct pod *pod;
	bool remove;
	int ret;
	char err[ERR_MAX];
	char req[72];
	/* A CreatePodInfra that failed and is being undone: its answer. */
	struct ipc_call *create_call;
	int create_status;
	char create_err[ERR_MAX];
	struct call_list stops, removes;
};

struct spawnd {
	struct daemon *d;
	struct workq *wq;
	struct workq *pfq; /* HostPortForward's connects */
	struct cgroup_host cg;
	struct pod_env env;
	char *pods_dir, *netns_dir, *records_dir, *pause_path, *conmon_path;
	struct pod *pods;
	struct containers *ctrs;
	char *config_path;      /* --config as given to spawnd, absolute; for conmon */
	const char *log_level;  /* --log-level as given to spawnd; for conmon */
	struct event *sigchld;
	struct launcher *launcher; /* starts conmon: spawnd_launch.h */
	bool launcher_gone;
	struct event *launcher_watch; /* a launcher of its own unit: its connection closing */
	bool stopping;
};

static struct pod *pod_find(struct spawnd *sd, const char *id)
{
	for (struct pod *p = sd->pods; p; p = p->next)
		if (strcmp(p->info.id, id) == 0)
			return p;
	return NULL;
}

static void pod_unlink_free(struct spawnd *sd, struct pod *pod)
{
	for (struct pod **pp = &sd->pods; *pp; pp = &(*pp)->next)
		if (*pp == pod) {
			*pp = pod->next;
			break;
		}
	pod_infra_clear(&pod->info);
	free(pod);
}

static int call_list_add(struct call_list *l, struct ipc_call *call)
{
	struct ipc_call **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->v[l->n++] = call;
	return 0;
}

static bool id_ok(struct ipc_call *call, const char *id)
{
	if (id_is_valid(id))
		return true;
	ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "pod_id must be 64 lowercase hex characters");
	return false;
}

/* ---------------------------------------------------------------- HostPortForward */

/* PortForward to a host-network pod: its loopback is the host's, so the
 * connect runs here, in spawnd's (the host's) network namespace, on a pool
 * of its own. Decided from spawnd's record alone: the pod must be one
 * spawnd made without a UTS namespace of its own, which only host_network
 * gives (spawnd_pod.h); criod's claim that a pod is host-network is never
 * what lets a connection into the host's namespace. */
static void handle_host_port_forward(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_,
				     void *ud)
{
	static const Criod__Internal__HostPortForwardResponse ok = CRIOD__INTERNAL__HOST_PORT_FORWARD_RESPONSE__INIT;
	struct spawnd *sd = ud;
	const Criod__Internal__HostPortForwardRequest *req = (const void *)msg;

	if (!id_ok(call, req->pod_id))
		return;
	if (req->port < 1 || req->port > 65535) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "port must be 1..65535, not %u", req->port);
		return;
	}
	struct pod *pod = pod_find(sd, req->pod_id);
	if (!pod) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "pod %s not found", req->pod_id);
		return;
	}
	if (pod->info.uts_ns) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION,
			      "pod %s has a network namespace of its own: netd's PortForward serves it", req->pod_id);
		return;
	}
	if (pod->op || pod->info.state != POD_READY) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "pod %s is %s", req->pod_id,
			      pod->op ? "being stopped or removed" : pod_state_to_string(pod->info.state));
		return;
	}
	loopback_forward(sd->pfq, call, &ok.base, req->pod_id, (uint16_t)req->port, NULL, NULL);
}

/* ---------------------------------------------------------------- Stop, Remove */

static void op_work(void *arg)
{
	struct pod_op *op = arg;
	struct pod_env *env = &op->sd->env;

	if (op->remove) {
		/* Its containers' answered removals first: their runtime
		 * delete removes their cgroups below the pod's. */
		if (op->sd->ctrs && containers_wait_pod(op->sd->ctrs, op->pod->info.id) < 0)
			log_warn(op->req, "a container removal of the pod is still being finished; tearing down anyway",
				 "pod=%s", op->pod->info.id);
		op->ret = pod_teardown(env, &op->pod->info, op->err, sizeof(op->err));
	} else {
		op->ret = pod_stop(env, &op->pod->info, op->err, sizeof(op->err));
	}
}

static void op_done(void *arg);

static int op_start(struct spawnd *sd, struct pod *pod, bool remove, const char *req, struct pod_op **out)
{
	struct pod_op *op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	op->sd = sd;
	op->pod = pod;
	op->remove = remove;
	snprintf(op->req, sizeof(op->req), "%s", req ? req : "");
	int r = workq_submit(sd->wq, op_work, op_done, op);
	if (r < 0) {
		free(op);
		return r;
	}
	pod->op = op;
	*out = op;
	return 0;
}

static void reply_all(struct call_list *l, int ret, const char *err, bool remove)
{
	for (size_t i = 0; i < l->n; i++) {
		if (ret < 0) {
			ipc_call_fail(l->v[i], status_from_errno(ret), "%s", err[0] ? err : strerror(-ret));
		} else if (remove) {
			Criod__Internal__RemovePodInfraResponse resp = CRIOD__INTERNAL__REMOVE_POD_INFRA_RESPONSE__INIT;
			ipc_call_reply(l->v[i], &resp.base, NULL, 0);
		} else {
			Criod__Internal__StopPodInfraResponse resp = CRIOD__INTERNAL__STOP_POD_INFRA_RESPONSE__INIT;
			ipc_call_reply(l->v[i], &resp.base, NULL, 0);
		}
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void op_done(void *arg)
{
	struct pod_op *op = arg;
	struct spawnd *sd = op->sd;
	struct pod *pod = op->pod;
	char id[65];

	snprintf(id, sizeof(id), "%s", pod->info.id);
	pod->op = NULL;
	if (op->ret < 0)
		log_error_errno(op->ret, op->req, op->remove ? "cannot remove pod infrastructure"
							     : "cannot stop pod infrastructure",
				"pod=%s error=\"%s\"", id, op->err);
	else
		log_info(op->req, op->remove ? "pod infrastructure removed" : "pod infrastructure stopped", "pod=%s",
			 id);

	if (op->create_call)
		ipc_call_fail(op->create_call, op->create_status, "%s", op->create_err);
	/* Stop is answered by either kind: after a teardown nothing runs. */
	reply_all(&op->stops, op->ret, op->err, false);

	if (op->remove) {
		reply_all(&op->removes, op->ret, op->err, true);
		if (op->ret >= 0) {
			pod_unlink_free(sd, pod);
			if (!sd->pods)
				pod_root_release(&sd->env);
		}
	} else if (op->removes.n > 0) {
		/* Removes that arrived while stopping: now the teardown. */
		struct pod_op *next;
		int r = sd->stopping ? -ESHUTDOWN : op_start(sd, pod, true, op->req, &next);
		if (r < 0)
			reply_all(&op->removes, r, "spawnd is shutting down", true);
		else
			next->removes = op->removes;
	}
	free(op);
}

static void handle_stop_pod(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct spawnd *sd = ud;
	const Criod__Internal__StopPodInfraRequest *req = (const void *)msg;
	Criod__Internal__StopPodInfraResponse resp = CRIOD__INTERNAL__STOP_POD_INFRA_RESPONSE__INIT;

	if (!id_ok(call, req->pod_id))
		return;
	struct pod *pod = pod_find(sd, req->pod_id);
	if (!pod || (!pod->op && pod->info.state == POD_STOPPED)) {
		ipc_call_reply(call, &resp.base, NULL, 0); /* idempotent */
		return;
	}
	struct pod_op *op = pod->op;
	int r = op ? 0 : op_start(sd, pod, false, ipc_call_request_id(call), &op);
	if (r >= 0)
		r = call_list_add(&op->stops, call);
	if (r < 0)
		ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot stop pod %s: %s", req->pod_id, strerror(-r));
}

static void handle_remove_pod(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct spawnd *sd = ud;
	const Criod__Internal__RemovePodInfraRequest *req = (const void *)msg;

	if (!id_ok(call, req->pod_id))
		return;
	struct pod *pod = pod_find(sd, req->pod_id);
	if (!pod) {
		Criod__Internal__RemovePodInfraResponse resp = CRIOD__INTERNAL__REMOVE_POD_INFRA_RESPONSE__INIT;
		ipc_call_reply(call, &resp.base, NULL, 0); /* idempotent: unknown pods are removed */
		return;
	}
	struct pod_op *op = pod->op;
	int r = op ? 0 : op_start(sd, pod, true, ipc_call_request_id(call), &op);
	if (r >= 0)
		r = call_list_add(&op->removes, call);
	if (r < 0)
		ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot remove pod %s: %s", req->pod_id, strerror(-r));
}

/* ---------------------------------------------------------------- Create */

static const char *ns_mode_name(int m)
{
	return m == CRIOD__INTERNAL__NS_MODE__NS_POD	     ? "NS_POD"
	       : m == CRIOD__INTERNAL__NS_MODE__NS_CONTAINER ? "NS_CONTAINER"
	       : m == CRIOD__INTERNAL__NS_MODE__NS_NODE      ? "NS_NODE"
							     : "?";
}

/* The node policy: a pod's cgroup lies beneath the configured default
 * parent or one of [policy] cgroup_roots (spawnd's own configuration, not
 * what criod names). -EACCES otherwise. */
static int cgroup_parent_allowed(const struct spawnd *sd, enum cgroup_driver driver, const char *cgpath,
				 const char *pod_id)
{
	_cleanup_free_ char *dflt = NULL;
	size_t root, off;
	const char *why;

	int r = cgroup_pod_path(driver, NULL, sd->d->cfg.default_cgroup_parent, pod_id, &dflt);
	if (r < 0)
		return r;
	char *slash = strrchr(dflt, '/');
	if (slash)
		*slash = '\0';
	char *const mine[] = {*dflt ? dflt : (char *)"/"};
	if (path_beneath_roots(cgpath, strlen(cgpath), CGROUP_PATH_MAX, mine, 1, &root, &off, &why) == 0)
		return 0;
	return path_beneath_roots(cgpath, strlen(cgpath), CGROUP_PATH_MAX, sd->d->cfg.cgroup_roots,
				  sd->d->cfg.n_cgroup_roots, &root, &off, &why) == 0 ? 0 : -EACCES;
}

/* The node policy on a pod: the host namespaces and privileged of
 * CreatePodInfra against [policy] allow_host_namespaces and
 * allow_privileged. -EPERM with err naming the key and the field. */
static int pod_policy_check(const struct spawnd *sd, const Criod__Internal__CreatePodInfraRequest *req,
			    const char **rule, char *err, size_t errlen)
{
	const struct criod_config *cfg = &sd->d->cfg;
	const char *host = NULL;

	if (!cfg->allow_host_namespaces) {
		host = req->host_network				  ? "host_network: the host's network and UTS namespaces"
		       : req->ipc == CRIOD__INTERNAL__NS_MODE__NS_NODE ? "ipc: NS_NODE, the host's IPC namespace"
		       : req->pid == CRIOD__INTERNAL__NS_MODE__NS_NODE ? "pid: NS_NODE, the host's PID namespace"
									 : NULL;
		if (host) {
			*rule = "[policy] allow_host_namespaces";
			snprintf(err, errlen, "%s: pod %s asks for %s", *rule, req->pod_id, host);
			return -EPERM;
		}
	}
	if (!cfg->allow_privileged && req->privileged) {
		*rule = "[policy] allow_privileged";
		snprintf(err, errlen, "%s: pod %s asks for privileged (a pod for privileged containers)", *rule,
			 req->pod_id);
		return -EPERM;
	}
	return 0;
}

static void handle_create_pod(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct spawnd *sd = ud;
	const Criod__Internal__CreatePodInfraRequest *req = (const void *)msg;
	const char *rid = ipc_call_request_id(call);
	enum cgroup_driver driver;
	_cleanup_free_ char *cgpath = NULL;
	_cleanup_close_ int netns_fd = -1;
	char err[ERR_MAX] = "";
	int r;

	/* ---- every field, before anything is touched ---- */
	if (!id_ok(call, req->pod_id))
		return;
	if (req->hostname[0] && !pod_hostname_is_valid(req->hostname)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT,
			      "hostname must be an RFC 1123 host name of at most %d characters", POD_HOSTNAME_MAX);
		return;
	}
	if (req->ipc != CRIOD__INTERNAL__NS_MODE__NS_POD && req->ipc != CRIOD__INTERNAL__NS_MODE__NS_NODE) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "ipc must be NS_POD or NS_NODE, not %s (%d)",
			      ns_mode_name(req->ipc), (int)req->ipc);
		return;
	}
	if (req->pid != CRIOD__INTERNAL__NS_MODE__NS_POD && req->pid != CRIOD__INTERNAL__NS_MODE__NS_CONTAINER &&
	    req->pid != CRIOD__INTERNAL__NS_MODE__NS_NODE) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "pid must be NS_POD, NS_CONTAINER or NS_NODE, not %d",
			      (int)req->pid);
		return;
	}
	if (req->host_network && req->netns_path[0]) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "netns_path must be empty with host_network");
		return;
	}
	if (!req->host_network && !req->netns_path[0]) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "netns_path is required unless host_network");
		return;
	}
	if (cgroup_driver_from_string(req->cgroup_driver[0] ? req->cgroup_driver : sd->d->cfg.cgroup_driver,
				      &driver) < 0) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cgroup_driver must be \"cgroupfs\" or \"systemd\"");
		return;
	}
	if (strnlen(req->cgroup_parent, CGROUP_PATH_MAX + 1) > CGROUP_PATH_MAX) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cgroup_parent is longer than %d bytes", CGROUP_PATH_MAX);
		return;
	}
	r = cgroup_pod_path(driver, req->cgroup_parent, sd->d->cfg.default_cgroup_parent, req->pod_id, &cgpath);
	if (r < 0) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "cgroup_parent \"%s\" is not a valid %s%s",
			      req->cgroup_parent[0] ? req->cgroup_parent : sd->d->cfg.default_cgroup_parent,
			      driver == CGROUP_DRIVER_SYSTEMD ? "systemd slice name (e.g. kubepods-pod1.slice)"
							      : "cgroupfs path (e.g. /kubepods/pod1)",
			      r == -ENAMETOOLONG ? " (too long)" : "");
		return;
	}
	r = cgroup_parent_allowed(sd, driver, cgpath, req->pod_id);
	if (r < 0) {
		log_warn(ipc_call_request_id(call), "refused pod cgroup", "pod=%s cgroup=%s rule=\"[policy] cgroup_roots\"",
			 req->pod_id, cgpath);
		ipc_call_fail(call, r == -EACCES ? STATUS_PERMISSION_DENIED : status_from_errno(r),
			      "cgroup_parent: the pod's cgroup %s is beneath neither [pods] default_cgroup_parent nor any "
			      "directory of [policy] cgroup_roots",
			      cgpath);
		return;
	}
	/* The node policy on the pod itself (what its containers may then
	 * get rests on what was made here, conmon/spawnd_policy.h). */
	const char *rule = NULL;
	r = pod_policy_check(sd, req, &rule, err, sizeof(err));
	if (r < 0) {
		log_warn(rid, "refused pod", "pod=%s rule=\"%s\" error=\"%s\"", req->pod_id, rule, err);
		ipc_call_fail(call, STATUS_PERMISSION_DENIED, "%s", err);
		return;
	}
	if (req->oom_score_adj < -1000 || req->oom_score_adj > 1000) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "oom_score_adj must be between -1000 and 1000");
		return;
	}
	if (req->shm_size > POD_SHM_MAX) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "shm_size must be at most %llu bytes",
			      (unsigned long long)POD_SHM_MAX);
		return;
	}
	if (sd->cg.n == 0) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "no cgroup hierarchies under %s", CGROUP_ROOT);
		return;
	}
	if (pod_find(sd, req->pod_id)) {
		ipc_call_fail(call, STATUS_ALREADY_EXISTS, "pod %s already has its infrastructure", req->pod_id);
		return;
	}
	if (!req->host_network) {
		r = pod_open_netns(&sd->env, req->netns_path, &netns_fd, err, sizeof(err));
		if (r < 0) {
			ipc_call_fail(call, r == -ENOENT ? STATUS_NOT_FOUND : STATUS_INVALID_ARGUMENT, "%s", err);
			return;
		}
	}

	/* ---- make it ---- */
	struct pod *pod = calloc(1, sizeof(*pod));
	if (!pod) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	snprintf(pod->info.id, sizeof(pod->info.id), "%s", req->pod_id);
	pod->info.cgroup_path = TAKE_PTR(cgpath);
	pod->info.driver = driver;
	pod->info.ipc_ns = req->ipc != CRIOD__INTERNAL__NS_MODE__NS_NODE;
	pod->info.shm = pod->info.ipc_ns;
	pod->info.uts_ns = !req->host_network;
	pod->info.pid_ns = req->pid == CRIOD__INTERNAL__NS_MODE__NS_POD;
	pod->info.host_pid = req->pid == CRIOD__INTERNAL__NS_MODE__NS_NODE;
	pod->info.privileged = req->privileged;
	pod->next = sd->pods;
	sd->pods = pod;

	struct pod_spec spec = {
		.hostname = req->hostname,
		.netns_fd = netns_fd,
		.oom_score_adj = (int)req->oom_score_adj,
		.shm_size = req->shm_size ? req->shm_size : POD_SHM_DEFAULT,
		.req = rid,
	};
	r = pod_create(&sd->env, &spec, &pod->info, err, sizeof(err));
	if (r < 0) {
		/* Every argument was valid: what failed is this host. */
		int status = r == -ENOMEM || r == -ENOSPC || r == -EAGAIN ? STATUS_RESOURCE_EXHAUSTED : STATUS_INTERNAL;
		log_error_errno(r, rid, "cannot create pod infrastructure", "pod=%s error=\"%s\"", req->pod_id, err);
		/* Undo what is there on the worker pool; the answer comes after. */
		struct pod_op *op;
		int u = op_start(sd, pod, true, rid, &op);
		if (u < 0) {
			ipc_call_fail(call, status, "%s", err);
			return; /* the record stays "creating": the next start cleans up */
		}
		op->create_call = call;
		op->create_status = status;
		snprintf(op->create_err, sizeof(op->create_err), "%s", err);
		return;
	}

	_cleanup_free_ char *ipc = pod->info.ipc_ns ? pod_path(&sd->env, req->pod_id, "ns/ipc") : NULL;
	_cleanup_free_ char *uts = pod->info.uts_ns ? pod_path(&sd->env, req->pod_id, "ns/uts") : NULL;
	_cleanup_free_ char *pid = pod->info.pid_ns ? pod_path(&sd->env, req->pod_id, "ns/pid") : NULL;
	_cleanup_free_ char *shm = pod->info.shm ? pod_path(&sd->env, req->pod_id, "shm") : NULL;
	log_info(rid, "pod infrastructure created",
		 "pod=%s pause_pid=%d ipc=%s uts=%s pid=%s network=%s privileged=%s hostname=\"%s\" cgroup=%s "
		 "oom_score_adj=%d",
		 req->pod_id, (int)pod->info.pid, pod->info.ipc_ns ? "pod" : "node",
		 pod->info.uts_ns ? "pod" : "node", pod->info.pid_ns ? "pod" : ns_mode_name(req->pid),
		 req->host_network ? "node" : req->netns_path, pod->info.privileged ? "true" : "false", req->hostname,
		 pod->info.cgroup_path, pod->info.oom_score_adj);

	Criod__Internal__CreatePodInfraResponse resp = CRIOD__INTERNAL__CREATE_POD_INFRA_RESPONSE__INIT;
	resp.pause_pid = pod->info.pid;
	resp.ipc_ns_path = ipc ? ipc : (char *)"";
	resp.uts_ns_path = uts ? uts : (char *)"";
	resp.pid_ns_path = pid ? pid : (char *)"";
	resp.shm_path = shm ? shm : (char *)"";
	resp.cgroup_path = pod->info.cgroup_path;
	resp.oom_score_adj = pod->info.oom_score_adj;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* ---------------------------------------------------------------- containers */

static void handle_create_container(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_,
				    void *ud)
{
	struct spawnd *sd = ud;
	const Criod__Internal__CreateContainerRequest *req = (const void *)msg;

	if (!id_ok(call, req->pod_id))
		return;
	struct pod *pod = pod_find(sd, req->pod_id);
	if (!pod) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "pod %s has no infrastructure from spawnd", req->pod_id);
		return;
	}
	if (pod->op || pod->info.state != POD_READY) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "pod %s is %s, not ready", req->pod_id,
			      pod->op ? (pod->op->remove ? "being removed" : "being stopped")
				      : pod_state_to_string(pod->info.state));
		return;
	}
	if (!sd->ctrs) {
		ipc_call_fail(call, STATUS_UNAVAILABLE, "spawnd cannot create containers (see its log)");
		return;
	}
	container_create(sd->ctrs, call, req, &pod->info);
}

static void handle_remove_container(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_,
				    void *ud)
{
	struct spawnd *sd = ud;
	if (!sd->ctrs) {
		ipc_call_fail(call, STATUS_UNAVAILABLE, "spawnd cannot remove containers (see its log)");
		return;
	}
	container_remove(sd->ctrs, call, (const void *)msg);
}

/* ---------------------------------------------------------------- seccomp profiles */

/* A Localhost seccomp profile for criod, which may not read kubelet's
 * directories: the open file, if it is a regular file beneath [policy]
 * seccomp_profile_roots (common/seccomp_profile.c checks and opens it). */
static void handle_open_seccomp_profile(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_,
					void *ud)
{
	struct spawnd *sd = ud;
	const Criod__Internal__OpenSeccompProfileRequest *req = (const void *)msg;
	const struct criod_config *cfg = &sd->d->cfg;
	char err[ERR_MAX] = "";
	uint64_t size;
	int status;

	_cleanup_close_ int fd = seccomp_profile_open((const char *)req->path.data, req->path.len,
						      cfg->seccomp_profile_roots, cfg->n_seccomp_profile_roots, &size,
						      &status, err, sizeof(err));
	if (fd < 0) {
		/* ipc_call_fail logs the refusal (request id, status, why). */
		ipc_call_fail(call, status, "%s", err);
		return;
	}
	log_info(ipc_call_request_id(call), "seccomp profile opened for the caller", "path=%.*s size=%llu peer_uid=%u",
		 (int)req->path.len, (const char *)req->path.data, (unsigned long long)size,
		 (unsigned)ipc_call_peer_uid(call));
	Criod__Internal__OpenSeccompProfileResponse resp = CRIOD__INTERNAL__OPEN_SECCOMP_PROFILE_RESPONSE__INIT;
	resp.size = size;
	ipc_call_reply(call, &resp.base, &fd, 1); /* the reply carries a duplicate */
}

/* ---------------------------------------------------------------- pause processes exiting */

/* While spawnd runs, the pause processes it started are its children:
 * reap the ones that die (their records keep pid and start time, so the
 * pid is never mistaken for them later). */
static void on_sigchld(evutil_socket_t sig _unused_, short what _unused_, void *arg)
{
	struct spawnd *sd = arg;
	pid_t lp = launcher_pid(sd->launcher);
	int lst;
	if (lp > 0 && !sd->launcher_gone && waitpid(lp, &lst, WNOHANG) == lp) {
		/* No container could be started any more: stop, and let the
		 * supervisor start both again. */
		log_error(NULL, "the launcher exited; spawnd stops", "pid=%d status=%d signal=%d", (int)lp,
			  WIFEXITED(lst) ? WEXITSTATUS(lst) : -1, WIFSIGNALED(lst) ? WTERMSIG(lst) : 0);
		sd->launcher_gone = true;
		event_base_loopexit(sd->d->base, NULL);
	}
	for (struct pod *p = sd->pods; p; p = p->next) {
		int status;
		if (p->op || p->info.pid <= 0)
			continue;
		if (waitpid(p->info.pid, &status, WNOHANG) == p->info.pid)
			log_warn(NULL, "pause process exited", "pod=%s pid=%d status=%d signal=%d", p->info.id,
				 (int)p->info.pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
				 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
}

/* The connection to a launcher of its own unit closed (it stopped, or
 * took another spawnd's): as when a forked launcher dies, no container
 * could be started any more, so spawnd stops and its unit restarts it. */
static void on_launcher_closed(evutil_socket_t fd, short what _unused_, void *arg)
{
	struct spawnd *sd = arg;
	log_error(NULL, "the launcher closed its connection; spawnd stops", "fd=%d", (int)fd);
	sd->launcher_gone = true;
	event_base_loopexit(sd->d->base, NULL);
}

/* ---------------------------------------------------------------- start-up */

/* Load every record; finish the teardown of those a crash left half made
 * or half removed. */
static int recover(struct spawnd *sd)
{
	int r = mkdir_p(sd->records_dir, 0700);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot create the pod record directory", "path=%s", sd->records_dir);
	DIR *d = opendir(sd->records_dir);
	if (!d)
		return log_error_errno(errno, NULL, "cannot read the pod record directory", "path=%s",
				       sd->records_dir);
	struct dirent *de;
	size_t kept = 0, cleaned = 0;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		if (n[0] == '.') {
			/* A temporary file of an interrupted write_file_atomic. */
			if (len > 4 && strcmp(n + len - 4, ".tmp") == 0)
				(void)unlinkat(dirfd(d), n, 0);
			continue;
		}
		struct pod *pod = calloc(1, sizeof(*pod));
		if (!pod) {
			closedir(d);
			return -ENOMEM;
		}
		r = pod_record_read(&sd->env, n, &pod->info);
		if (r < 0 && pod_record_recover(&sd->env, n, &pod->info) == 0) {
			/* What it allowed the pod (privileged, host PID) is not
			 * known: the pod is torn down by its id, as criod does with
			 * a pod record it cannot read. */
			log_warn_errno(r, NULL, "unreadable pod record; tearing the pod down by its id", "path=%s/%s cgroup=%s",
				       sd->records_dir, n, pod->info.cgroup_path ? pod->info.cgroup_path : "-");
		} else if (r < 0) {
			log_warn_errno(r, NULL, "ignoring a file that is not a pod record", "path=%s/%s", sd->records_dir, n);
			free(pod);
			continue;
		}
		if (pod->info.state == POD_CREATING || pod->info.state == POD_REMOVING) {
			char err[ERR_MAX] = "";
			log_info(NULL, "tearing down an incomplete pod", "pod=%s state=%s", pod->info.id,
				 pod_state_to_string(pod->info.state));
			r = pod_teardown(&sd->env, &pod->info, err, sizeof(err));
			if (r >= 0) {
				cleaned++;
				pod_infra_clear(&pod->info);
				free(pod);
				continue;
			}
			/* Kept as "removing": RemovePodInfra retries. */
			log_error_errno(r, NULL, "cannot tear down an incomplete pod", "pod=%s error=\"%s\"",
					pod->info.id, err);
		} else {
			log_info(NULL, "pod infrastructure found", "pod=%s state=%s pause_pid=%d running=%s",
				 pod->info.id, pod_state_to_string(pod->info.state), (int)pod->info.pid,
				 pod->info.pid && proc_alive(pod->info.pid, pod->info.start_time) ? "yes" : "no");
		}
		pod->next = sd->pods;
		sd->pods = pod;
		kept++;
	}
	closedir(d);
	if (!sd->pods)
		pod_root_release(&sd->env);
	log_info(NULL, "pod records loaded", "pods=%zu torn_down=%zu", kept, cleaned);
	return 0;
}

static int setup(struct spawnd *sd)
{
	const struct criod_config *cfg = &sd->d->cfg;
	char exe[PATH_MAX];
	int r;

	if (geteuid() != 0)
		return log_error_errno(EPERM, NULL, "must run as root");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return log_error_errno(errno, NULL, "cannot find my own executable");
	exe[n] = '\0';
	const char *bindir = dirname(exe);
	if (asprintf(&sd->pause_path, "%s/pause", bindir) < 0 || asprintf(&sd->conmon_path, "%s/conmon", bindir) < 0 ||
	    asprintf(&sd->pods_dir, "%s/pods", cfg->run_dir) < 0 ||
	    asprintf(&sd->netns_dir, "%s/netns", cfg->run_dir) < 0 ||
	    asprintf(&sd->records_dir, "%s/spawnd/pods", cfg->state_dir) < 0)
		return log_error_errno(ENOMEM, NULL, "out of memory");
	if (access(sd->pause_path, X_OK) < 0)
		log_warn_errno(errno, NULL, "pause binary missing: pods cannot be created", "path=%s", sd->pause_path);
	if (access(sd->conmon_path, X_OK) < 0)
		log_warn_errno(errno, NULL, "conmon binary missing: containers cannot be created", "path=%s",
			       sd->conmon_path);
	r = cgroup_host_detect(CGROUP_ROOT, &sd->cg);
	if (r < 0)
		/* Not fatal: spawnd still answers, and CreatePodInfra says why it cannot. */
		log_error_errno(r, NULL, "cannot find the cgroup hierarchies: pods cannot be created", "root=%s",
				CGROUP_ROOT);
	else
		log_info(NULL, "cgroups", "mode=%s hierarchies=%zu driver=%s", cgroup_mode_to_string(sd->cg.mode),
			 sd->cg.n, cfg->cgroup_driver);
	sd->env = (struct pod_env){
		.pods_dir = sd->pods_dir,
		.netns_dir = sd->netns_dir,
		.records_dir = sd->records_dir,
		.pause_path = sd->pause_path,
		.cg = &sd->cg,
	};
	uid_t criod_uid;
	gid_t criod_gid;
	r = lookup_user(cfg->criod_user, &criod_uid, &criod_gid);
	if (r < 0)
		return log_error_errno(r, NULL, "criod user not found; create it or set [criod] user", "user=%s",
				       cfg->criod_user);
	/* The launcher first: forked while spawnd has one thread and no
	 * filter (spawnd_launch.h). */
	struct launch_env lenv = {
		.cfg = cfg,
		.conmon_path = sd->conmon_path,
		.config_path = sd->config_path,
		.log_level = sd->log_level,
		.criod_uid = criod_uid,
	};
	const char *lsock = getenv(LAUNCHER_SOCKET_ENV);
	if (lsock && lsock[0]) {
		/* criod-spawnd-launcher.service: the launcher is not ours. */
		log_info(NULL, "using the launcher of its own unit", "socket=%s", lsock);
		r = launcher_connect(lsock, &sd->launcher);
		if (r < 0)
			return log_error_errno(r, NULL, "cannot use the launcher at " LAUNCHER_SOCKET_ENV
					       " (is criod-spawnd-launcher running, and spawnd in its "
					       LAUNCHER_PEER_CGROUP_ENV "?)", "socket=%s", lsock);
		if (!(event_base_get_features(sd->d->base) & EV_FEATURE_EARLY_CLOSE))
			return log_error_errno(ENOTSUP, NULL, "libevent's backend cannot watch the launcher's connection",
					       "method=%s", event_base_get_method(sd->d->base));
		sd->launcher_watch = event_new(sd->d->base, launcher_conn_fd(sd->launcher), EV_CLOSED | EV_PERSIST,
					       on_launcher_closed, sd);
		if (!sd->launcher_watch || event_add(sd->launcher_watch, NULL) < 0)
			return log_error_errno(EIO, NULL, "cannot watch the launcher's connection");
	} else {
		log_info(NULL, "forking the launcher"); /* no $CRIOD_SPAWND_LAUNCHER */
		r = launcher_start(&lenv, &sd->launcher);
		if (r < 0)
			return log_error_errno(r, NULL, "cannot start the launcher");
	}
	r = workq_new(sd->d->base, WORKER_THREADS, &sd->wq);
	if (r >= 0)
		r = workq_new(sd->d->base, PORT_FORWARD_THREADS, &sd->pfq);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot start worker threads");
	sd->sigchld = evsignal_new(sd->d->base, SIGCHLD, on_sigchld, sd);
	if (!sd->sigchld || evsignal_add(sd->sigchld, NULL) < 0)
		return log_error_errno(EIO, NULL, "cannot watch SIGCHLD");

	struct container_env cenv = {
		.base = sd->d->base,
		.wq = sd->wq,
		.pods = &sd->env,
		.run_dir = cfg->run_dir,
		.state_dir = cfg->state_dir,
		.conmon_path = sd->conmon_path,
		.config_path = sd->config_path,
		.log_level = sd->log_level,
		.criod_uid = criod_uid,
		.criod_gid = criod_gid,
		.cfg = cfg,
		.launcher = sd->launcher,
	};
	r = containers_new(&cenv, &sd->ctrs);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot set up containers");
	/* Answered container removals before the pods' teardowns, which
	 * remove the cgroups those containers' runtime delete removes below. */
	containers_recover(sd->ctrs);
	return recover(sd);
}

/* The --config and --log-level spawnd was given (daemon_init parses the
 * command line too and refuses a bad one), for conmon. */
static int find_options(struct spawnd *sd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	_cleanup_free_ char **copy = calloc((size_t)argc + 1, sizeof(char *));
	const char *config = NULL;
	int o;

	if (!copy)
		return -ENOMEM;
	memcpy(copy, argv, (size_t)argc * sizeof(char *)); /* getopt may permute */
	opterr = 0;
	while ((o = getopt_long(argc, copy, "c:l:Vh", opts, NULL)) != -1) {
		if (o == 'c')
			config = optarg;
		else if (o == 'l')
			sd->log_level = optarg;
	}
	optind = 0; /* a full re-initialisation for daemon_init */
	opterr = 1;
	if (config) {
		char *abs = realpath(config, NULL);
		sd->config_path = abs ? abs : strdup(config);
		if (!sd->config_path)
			return -ENOMEM;
	}
	return 0;
}

/* Ping, with the launcher's bounding set: every capability a container can
 * be given (criod's "ALL"), which spawnd's own is not under a hardened
 * unit (criod-spawnd.service's CapabilityBoundingSet). */
static void handle_ping(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct spawnd *sd = ud;
	Criod__Internal__PingResponse resp;
	daemon_ping_fill(&resp);
	resp.cap_bounding = launcher_cap_bounding(sd->launcher);
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* Metrics: spawnd's process and the pods it holds; no fields. */
static void handle_metrics(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct spawnd *sd = ud;
	Criod__Internal__MetricsResponse resp = CRIOD__INTERNAL__METRICS_RESPONSE__INIT;
	Criod__Internal__ProcessFigures pf;
	daemon_process_figures(&pf);
	resp.component = (char *)"spawnd";
	resp.process = &pf;
	for (const struct pod *p = sd->pods; p; p = p->next)
		resp.pods++;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* The handler of each request of common/api.c's spawnd_methods (bound at start). */
static const ipc_handler_fn spawnd_handlers[SPAWND_N_METHODS] = {
	[SPAWND_PING - 1] = handle_ping,
	[SPAWND_CREATE_POD_INFRA - 1] = handle_create_pod,
	[SPAWND_STOP_POD_INFRA - 1] = handle_stop_pod,
	[SPAWND_REMOVE_POD_INFRA - 1] = handle_remove_pod,
	[SPAWND_CREATE_CONTAINER - 1] = handle_create_container,
	[SPAWND_REMOVE_CONTAINER - 1] = handle_remove_container,
	[SPAWND_OPEN_SECCOMP_PROFILE - 1] = handle_open_seccomp_profile,
	[SPAWND_HOST_PORT_FORWARD - 1] = handle_host_port_forward,
	[SPAWND_METRICS - 1] = handle_metrics,
};

/* The table served: common/api.c's rows with the handlers above. */
static struct ipc_method methods[SPAWND_N_METHODS];

int main(int argc, char **argv)
{
	api_bind(methods, spawnd_methods, SPAWND_N_METHODS, spawnd_handlers);
	struct daemon d;
	struct spawnd sd = {.d = &d};
	struct ipc_server *srv = NULL;

	if (find_options(&sd, argc, argv) < 0)
		return EXIT_FAILURE;
	daemon_init(&d, "spawnd", argc, argv);
	int r = setup(&sd);
	if (r >= 0)
		r = daemon_serve_root(&d, d.cfg.spawnd_socket, methods, SPAWND_N_METHODS, &sd, &srv);
	if (r >= 0)
		r = spawnd_confine(&d.cfg); /* its own: containers descend from the launcher (spawnd_launch.h) */
	if (r >= 0)
		r = daemon_run(&d);
	if (r >= 0 && sd.launcher_gone)
		r = -ECHILD;
	/* Operations in progress finish (their callers get answers if still
	 * connected); pause processes keep running. */
	sd.stopping = true;
	if (sd.wq)
		workq_free(sd.wq);
	if (sd.pfq)
		workq_free(sd.pfq);
	/* Creates still waiting for their monitor are answered (the monitors
	 * keep going). */
	containers_free(sd.ctrs);
	if (sd.launcher_watch)
		event_free(sd.launcher_watch);
	launcher_free(sd.launcher);
	ipc_server_free(srv);
	if (sd.sigchld)
		event_free(sd.sigchld);
	if (!sd.pods && sd.pods_dir)
		pod_root_release(&sd.env);
	while (sd.pods) {
		struct pod *p = sd.pods;
		sd.pods = p->next;
		pod_infra_clear(&p->info);
		free(p);
	}
	cgroup_host_free(&sd.cg);
	free(sd.pause_path);
	free(sd.conmon_path);
	free(sd.config_path);
	free(sd.pods_dir);
	free(sd.netns_dir);
	free(sd.records_dir);
	daemon_fini(&d);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
