/* runtime.v1.RuntimeService: Version, Status, RuntimeConfig and
 * UpdateRuntimeConfig.
 *
 * The pod CIDR kubelet sends (UpdateRuntimeConfig) is checked, kept in
 * <state_dir>/criod/pod_cidr (so it survives a restart) and reported in
 * Status's verbose info. Pod addresses keep coming from netd's configured
 * [netd] subnet: netd is root and trusts nothing criod says, and moving a
 * node's pod network under running pods is a decision for the operator,
 * who sets the same range in the config (a mismatch is logged). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "api.h"
#include "cri.h"
#include "container_op.h"
#include "cri/api.pb-c.h"
#include "events.h"
#include "internal/envelope.pb-c.h"
#include "log.h"
#include "macro.h"
#include "pod_cidr.h"
#include "status.h"
#include "util.h"

#define CRI_API_VERSION "v1"
/* The kubelet-facing API version string CRI-O and containerd also answer. */
#define KUBELET_API_VERSION "0.1.0"
#define PING_TIMEOUT_MS 5000
#define POD_CIDR_FILE "pod_cidr"

static void version(struct grpc_call *call, const ProtobufCMessage *req _unused_, void *userdata _unused_)
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
	struct criod *c;
	bool ok[N_DAEMONS];
	char error[N_DAEMONS][256];
	char version[N_DAEMONS][64];
	int64_t pid[N_DAEMONS], uid[N_DAEMONS];
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

/* ---------------------------------------------------------------- Status's verbose info */

enum { INFO_IMAGED, INFO_NETD, INFO_SPAWND, INFO_CRIOD, INFO_CONFIG, INFO_CGROUP_DRIVER, INFO_POD_CIDR, N_INFO };
static const char *const info_keys[N_INFO] = {"imaged", "netd", "spawnd", "criod", "config", "cgroupDriver", "podCIDR"};

static json_object *jstr(const char *s) { return json_object_new_string(s ? s : ""); }

static json_object *jstrv(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; a && i < n; i++)
		json_object_array_add(a, jstr(v[i]));
	return a;
}

static char *json_take(json_object *o)
{
	const char *s = o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	char *out = s ? strdup(s) : NULL;
	json_object_put(o);
	return out;
}

/* The configuration in force, as an operator checks it: paths, the
 * daemons' sockets, limits, pods, network and the node policy. */
static json_object *config_info(const struct criod_config *cfg)
{
	json_object *o = json_object_new_object(), *x;
	if (!o)
		return NULL;
	json_object_object_add(o, "runDir", jstr(cfg->run_dir));
	json_object_object_add(o, "stateDir", jstr(cfg->state_dir));
	json_object_object_add(o, "logLevel", jstr(cfg->log_level));
	x = json_object_new_object();
	json_object_object_add(x, "criod", jstr(cfg->criod_socket));
	json_object_object_add(x, "imaged", jstr(cfg->imaged_socket));
	json_object_object_add(x, "netd", jstr(cfg->netd_socket));
	json_object_object_add(x, "spawnd", jstr(cfg->spawnd_socket));
	json_object_object_add(o, "sockets", x);
	json_object_object_add(o, "user", jstr(cfg->criod_user));
	json_object_object_add(o, "maxMsgSize", json_object_new_int64((int64_t)cfg->max_msg_size));
	json_object_object_add(o, "maxStreams", json_object_new_int64((int64_t)cfg->max_streams));
	json_object_object_add(o, "rpcTimeoutMs", json_object_new_int64((int64_t)cfg->rpc_timeout_ms));
	json_object_object_add(o, "cgroupDriver", jstr(cfg->cgroup_driver));
	json_object_object_add(o, "defaultCgroupParent", jstr(cfg->default_cgroup_parent));
	json_object_object_add(o, "shmSize", json_object_new_int64((int64_t)cfg->shm_size));
	json_object_object_add(o, "defaultRuntime", jstr(cfg->default_runtime));
	x = json_object_new_object();
	for (size_t i = 0; x && i < cfg->n_runtimes; i++)
		json_object_object_add(x, cfg->runtimes[i].name, jstr(cfg->runtimes[i].path));
	json_object_object_add(o, "runtimes", x);
	x = json_object_new_object();
	json_object_object_add(x, "backend", jstr(cfg->net_backend));
	json_object_object_add(x, "bridge", jstr(cfg->net_bridge));
	json_object_object_add(x, "subnet", jstr(cfg->net_subnet));
	json_object_object_add(x, "subnet6", jstr(cfg->net_subnet6));
	json_object_object_add(x, "masquerade", json_object_new_boolean(cfg->net_masquerade));
	json_object_object_add(x, "mtu", json_object_new_int64((int64_t)cfg->net_mtu));
	json_object_object_add(x, "nftTable", jstr(cfg->net_nft_table));
	json_object_object_add(x, "cniConfDir", jstr(cfg->cni_conf_dir));
	json_object_object_add(x, "cniBinDirs", jstr(cfg->cni_bin_dirs));
	json_object_object_add(o, "network", x);
	x = json_object_new_object();
	json_object_object_add(x, "rootfsMode", jstr(cfg->rootfs_mode));
	json_object_object_add(x, "authFile", jstr(cfg->auth_file));
	json_object_object_add(x, "maxConcurrentDownloads", json_object_new_int64((int64_t)cfg->max_concurrent_downloads));
	json_object *regs = json_object_new_array();
	for (size_t i = 0; regs && i < cfg->n_registries; i++) {
		const struct registry_config *r = &cfg->registries[i];
		json_object *e = json_object_new_object();
		json_object_object_add(e, "host", jstr(r->host));
		json_object_object_add(e, "insecure", json_object_new_boolean(r->insecure));
		json_object_object_add(e, "blocked", json_object_new_boolean(r->blocked));
		json_object_object_add(e, "mirrors", jstrv(r->mirrors, r->n_mirrors));
		json_object_array_add(regs, e);
	}
	json_object_object_add(x, "registries", regs);
	json_object_object_add(o, "images", x);
	x = json_object_new_object();
	json_object_object_add(x, "allowPrivileged", json_object_new_boolean(cfg->allow_privileged));
	json_object_object_add(x, "allowHostNamespaces", json_object_new_boolean(cfg->allow_host_namespaces));
	json_object_object_add(x, "allowAnyHostPath", json_object_new_boolean(cfg->allow_any_host_path));
	json_object_object_add(x, "hostPathPrefixes", jstrv(cfg->host_path_prefixes, cfg->n_host_path_prefixes));
	json_object_object_add(x, "hostPathReadonlyPrefixes",
			       jstrv(cfg->host_path_readonly_prefixes, cfg->n_host_path_readonly_prefixes));
	json_object_object_add(x, "allowedCapabilities", jstrv(cfg->allowed_capabilities, cfg->n_allowed_capabilities));
	json_object_object_add(x, "allowedDevices", jstrv(cfg->allowed_devices, cfg->n_allowed_devices));
	json_object_object_add(x, "allowedSysctls", jstrv(cfg->allowed_sysctls, cfg->n_allowed_sysctls));
	json_object_object_add(x, "allowUnconfinedSeccomp", json_object_new_boolean(cfg->allow_unconfined_seccomp));
	json_object_object_add(x, "allowUnconfinedApparmor", json_object_new_boolean(cfg->allow_unconfined_apparmor));
	json_object_object_add(x, "allowPrivateRegistries", json_object_new_boolean(cfg->allow_private_registries));
	json_object_object_add(x, "seccompProfileRoots", jstrv(cfg->seccomp_profile_roots, cfg->n_seccomp_profile_roots));
	json_object_object_add(x, "logRoots", jstrv(cfg->log_roots, cfg->n_log_roots));
	json_object_object_add(x, "cgroupRoots", jstrv(cfg->cgroup_roots, cfg->n_cgroup_roots));
	json_object_object_add(x, "hostPortRange", jstr(cfg->host_port_range));
	json_object_object_add(x, "hostPortLocal", json_object_new_boolean(cfg->host_port_local));
	json_object_object_add(x, "hostPortAllowInUse", json_object_new_boolean(cfg->host_port_allow_in_use));
	json_object_object_add(o, "policy", x);
	return o;
}

static void status_info(const struct status_op *op, char *values[N_INFO])
{
	const struct criod_config *cfg = op->cfg;
	const char *sockets[N_DAEMONS] = {cfg->imaged_socket, cfg->netd_socket, cfg->spawnd_socket};
	for (int i = 0; i < N_DAEMONS; i++) {
		json_object *o = json_object_new_object();
		if (!o)
			continue;
		json_object_object_add(o, "reachable", json_object_new_boolean(op->ok[i]));
		json_object_object_add(o, "socket", jstr(sockets[i]));
		if (op->ok[i]) {
			json_object_object_add(o, "pid", json_object_new_int64(op->pid[i]));
			json_object_object_add(o, "uid", json_object_new_int64(op->uid[i]));
			json_object_object_add(o, "version", jstr(op->version[i]));
		} else {
			json_object_object_add(o, "error", jstr(op->error[i]));
		}
		values[INFO_IMAGED + i] = json_take(o);
	}
	size_t n_pods = 0, n_ctrs = 0;
	for (const struct pod *p = op->c->pods.pods; p; p = p->next)
		n_pods += !p->gone && p->state != POD_CREATING;
	for (const struct container *k = op->c->ctrs.ctrs; k; k = k->next)
		n_ctrs += !k->gone && k->state == CTR_CREATED;
	json_object *o = json_object_new_object();
	if (o) {
		json_object_object_add(o, "version", jstr(PACKAGE_VERSION));
		json_object_object_add(o, "pid", json_object_new_int64(getpid()));
		json_object_object_add(o, "uid", json_object_new_int64(getuid()));
		json_object_object_add(o, "pods", json_object_new_int64((int64_t)n_pods));
		json_object_object_add(o, "containers", json_object_new_int64((int64_t)n_ctrs));
		json_object_object_add(o, "eventSubscribers", json_object_new_int64((int64_t)events_subscribers(op->c)));
		values[INFO_CRIOD] = json_take(o);
	}
	values[INFO_CONFIG] = json_take(config_info(cfg));
	values[INFO_CGROUP_DRIVER] = json_take(jstr(cfg->cgroup_driver));
	values[INFO_POD_CIDR] = json_take(jstr(op->c->pod_cidr));
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

	/* Verbose: JSON values, one per daemon (whether it answered, its pid
	 * and version), criod's own, and the configuration in force. */
	Runtime__V1__StatusResponse__InfoEntry entries[N_INFO], *entry_ptrs[N_INFO];
	char *values[N_INFO] = {NULL};
	if (op->verbose) {
		status_info(op, values);
		for (int i = 0; i < N_INFO; i++) {
			runtime__v1__status_response__info_entry__init(&entries[i]);
			entries[i].key = (char *)info_keys[i];
			entries[i].value = values[i] ? values[i] : (char *)"null";
			entry_ptrs[i] = &entries[i];
		}
		resp.n_info = N_INFO;
		resp.info = entry_ptrs;
	}
	grpc_call_reply(op->call, &resp.base);
	for (int i = 0; i < N_INFO; i++)
		free(values[i]);
	free(handlers);
	free(handler_v);
	free(op);
}

static void status_ping_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
			     void *userdata)
{
	struct status_ping *ping = userdata;
	struct status_op *op = ping->op;
	op->ok[ping->which] = status == STATUS_OK;
	if (status != STATUS_OK) {
		snprintf(op->error[ping->which], sizeof(op->error[ping->which]), "%s", message);
	} else {
		const Criod__Internal__PingResponse *r = (const void *)resp;
		snprintf(op->version[ping->which], sizeof(op->version[ping->which]), "%s", r->version ? r->version : "");
		op->pid[ping->which] = r->pid;
		if (ping->which == DAEMON_SPAWND)
			host_caps_learn((pid_t)r->pid, r->cap_bounding);
		op->uid[ping->which] = r->uid;
	}
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
	op->c = c;
	op->cfg = c->cfg;
	op->verbose = r->verbose;
	struct ipc_client *clients[N_DAEMONS] = {c->imaged, c->netd, c->spawnd};
	const struct ipc_method *pings[N_DAEMONS] = {API_IMAGED(IMAGED_PING), API_NETD(NETD_PING), API_SPAWND(SPAWND_PING)};
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

/* ---------------------------------------------------------------- RuntimeConfig, UpdateRuntimeConfig */

static void runtime_config(struct grpc_call *call, const ProtobufCMessage *req _unused_, void *userdata)
{
	struct criod *c = userdata;
	Runtime__V1__LinuxRuntimeConfiguration lin = RUNTIME__V1__LINUX_RUNTIME_CONFIGURATION__INIT;
	/* config_load accepts only these two */
	lin.cgroup_driver = strcmp(c->cfg->cgroup_driver, "systemd") == 0 ? RUNTIME__V1__CGROUP_DRIVER__SYSTEMD
									    : RUNTIME__V1__CGROUP_DRIVER__CGROUPFS;
	Runtime__V1__RuntimeConfigResponse resp = RUNTIME__V1__RUNTIME_CONFIG_RESPONSE__INIT;
	resp.linux = &lin;
	grpc_call_reply(call, &resp.base);
}

static char *pod_cidr_path(const struct criod *c)
{
	char *path;
	return asprintf(&path, "%s/criod/" POD_CIDR_FILE, c->cfg->state_dir) < 0 ? NULL : path;
}

void runtime_config_load(struct criod *c)
{
	_cleanup_free_ char *path = pod_cidr_path(c), *buf = NULL;
	char canon[POD_CIDR_MAX], err[256];
	size_t len;
	free(c->pod_cidr);
	c->pod_cidr = NULL;
	int r = path ? read_file(path, POD_CIDR_MAX + 2, &buf, &len) : -ENOMEM;
	if (r == 0) {
		buf[strcspn(buf, "\n")] = '\0';
		if (pod_cidr_parse(buf, canon, sizeof(canon), err, sizeof(err)) == 0)
			c->pod_cidr = strdup(canon);
		else
			log_warn(NULL, "ignoring the recorded pod CIDR", "path=%s error=\"%s\"", path, err);
	} else if (r != -ENOENT) {
		log_warn_errno(r, NULL, "cannot read the recorded pod CIDR", "path=%s", path ? path : "");
	}
	if (!c->pod_cidr)
		c->pod_cidr = strdup("");
}

static void update_runtime_config(struct grpc_call *call, const ProtobufCMessage *msg, void *userdata)
{
	struct criod *c = userdata;
	const Runtime__V1__UpdateRuntimeConfigRequest *req = (const void *)msg;
	Runtime__V1__UpdateRuntimeConfigResponse resp = RUNTIME__V1__UPDATE_RUNTIME_CONFIG_RESPONSE__INIT;
	const char *cidr = req->runtime_config && req->runtime_config->network_config
				   ? req->runtime_config->network_config->pod_cidr
				   : NULL;
	if (!cidr) {
		grpc_call_reply(call, &resp.base); /* nothing to change */
		return;
	}
	char canon[POD_CIDR_MAX], err[256];
	if (strlen(cidr) > 2 * POD_CIDR_MAX ||
	    pod_cidr_parse(cidr, canon, sizeof(canon), err, sizeof(err)) < 0) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "runtime_config.network_config.pod_cidr: %s",
			       strlen(cidr) > 2 * POD_CIDR_MAX ? "too long" : err);
		return;
	}
	if (c->pod_cidr && strcmp(c->pod_cidr, canon) == 0) {
		grpc_call_reply(call, &resp.base);
		return;
	}
	_cleanup_free_ char *path = pod_cidr_path(c), *text = NULL, *copy = strdup(canon);
	if (!path || !copy || asprintf(&text, "%s\n", canon) < 0) {
		text = NULL;
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	int r = write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0) {
		log_error_errno(r, grpc_call_request_id(call), "cannot record the pod CIDR", "path=%s", path);
		grpc_call_fail(call, STATUS_INTERNAL, "cannot record the pod CIDR: %s", strerror(-r));
		return;
	}
	free(c->pod_cidr);
	c->pod_cidr = TAKE_PTR(copy);
	log_info(grpc_call_request_id(call), "pod CIDR recorded", "pod_cidr=%s netd_subnet=%s netd_subnet6=%s",
		 c->pod_cidr, c->cfg->net_subnet, c->cfg->net_subnet6);
	if (*canon && !strstr(canon, c->cfg->net_subnet))
		log_warn(grpc_call_request_id(call), "kubelet's pod CIDR is not netd's subnet; pods keep getting addresses from [netd] subnet",
			 "pod_cidr=%s netd_subnet=%s", canon, c->cfg->net_subnet);
	grpc_call_reply(call, &resp.base);
}

const struct cri_handler runtime_service_handlers[] = {
	{"RuntimeService", "Version", version},
	{"RuntimeService", "Status", status},
	{"RuntimeService", "RuntimeConfig", runtime_config},
	{"RuntimeService", "UpdateRuntimeConfig", update_runtime_config},
};
const size_t n_runtime_service_handlers = ARRAY_SIZE(runtime_service_handlers);
