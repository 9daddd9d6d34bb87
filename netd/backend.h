/* What a pod network backend does for netd. netd always creates and owns
 * the pod's network namespace (bind-mounted at <run_dir>/netns/<pod_id>);
 * a backend wires it up and takes it down again. The built-in netlink
 * backend (netlink.c) is the default; the CNI backend (cni.c) runs standard
 * CNI plugins. Backends run on a worker thread and may block. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define NETD_MAX_IPS 4
#define NETD_MAX_PORTS 256

struct port_mapping {
	int protocol;           /* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t container_port;
	uint16_t host_port;     /* never 0 here: mappings without one are dropped before */
	char host_ip[64];       /* "" = every host address */
};

struct pod_net_request {
	const char *pod_id;     /* 64 hex, validated */
	const char *pod_name, *pod_namespace, *pod_uid; /* metadata, bounded, for logs/CNI_ARGS */
	const char *netns_path; /* the namespace netd made */
	const char *ifname;     /* "eth0" */
	const char *cgroup_parent;
	const struct port_mapping *ports;
	size_t n_ports;
	const char *state_dir;  /* a directory the backend may keep per-pod files in (CNI result cache) */
};

struct pod_net_result {
	char ips[NETD_MAX_IPS][64]; /* addresses without prefix length; IPv4 first */
	size_t n_ips;
};

/* CNI backend (cni.c): load the first *.conflist / *.conf (lexical order) in
 * cfg->cni_conf_dir, exec each plugin from cfg->cni_bin_dirs with the CNI_*
 * environment (CNI_COMMAND=ADD, CNI_CONTAINERID=pod_id, CNI_NETNS,
 * CNI_IFNAME, CNI_PATH, CNI_ARGS with K8S_POD_NAME/NAMESPACE/UID...) and the
 * network config on stdin, chaining prevResult, passing port mappings as the
 * portMappings runtimeConfig capability; parse the final result for the
 * pod's IPs and cache it (for DEL) in state_dir. Returns 0 or negative errno
 * with err naming the plugin and its error message. */
int cni_add(const struct criod_config *cfg, const struct pod_net_request *req, struct pod_net_result *res,
	    char *err, size_t errlen);
/* DEL in reverse plugin order with the cached result as prevResult.
 * Idempotent: no cached result or a missing namespace is fine. */
int cni_del(const struct criod_config *cfg, const struct pod_net_request *req, char *err, size_t errlen);
