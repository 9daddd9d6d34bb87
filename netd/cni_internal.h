/* Internals of the CNI backend (cni.c), exposed for tests/unit/test_cni.c.
 * Nothing outside cni.c and its unit test should include this. All functions
 * are thread-safe (no shared state); those returning int return 0 or
 * negative errno unless noted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "backend.h"

#define CNI_MAX_CONF_SIZE (1024 * 1024)  /* a network configuration file */
#define CNI_MAX_OUTPUT (1024 * 1024)     /* a plugin's stdout (its result) */
#define CNI_MAX_STDERR (16 * 1024)       /* what is kept of a plugin's stderr */
#define CNI_MAX_CACHE_SIZE (4 * 1024 * 1024)
#define CNI_MAX_PLUGINS 32
#define CNI_MAX_NAME 128                 /* network name */
#define CNI_TIMEOUT_MS 60000             /* one plugin invocation, then SIGKILL */

/* A validated network configuration list. */
struct cni_netconf {
	char *name;            /* "name" */
	char *version;         /* "cniVersion", "N.N.N" */
	char *source;          /* the file it came from (for messages) */
	json_object *list;     /* the whole list (a single .conf is wrapped), owned */
	json_object **plugins; /* n_plugins objects inside list["plugins"], borrowed */
	size_t n_plugins;
};

/* Parse exactly one JSON value (nothing but whitespace after it). */
int cni_json_parse(const char *buf, size_t len, json_object **out);

/* "N.N.N" -> 0 and v[3]; -EINVAL otherwise. */
int cni_version_parse(const char *s, unsigned v[3]);
/* A plugin type usable as a file name: [A-Za-z0-9._-], no "..", bounded. */
bool cni_type_is_valid(const char *type);

/* Validate a configuration and fill *nc. `obj` is a list (is_list) or a
 * single plugin configuration (wrapped into a one-plugin list); a .conf
 * that holds a "plugins" array is taken as a list. Takes its own reference
 * to obj. On error nc is zeroed and err names source and field. */
int cni_conf_from_json(json_object *obj, bool is_list, const char *source, struct cni_netconf *nc,
		       char *err, size_t errlen);
int cni_conf_parse(const char *text, size_t len, bool is_list, const char *source, struct cni_netconf *nc,
		   char *err, size_t errlen);
/* The first *.conflist / *.conf (byte-wise lexical order, dot files
 * skipped) in dir; -ENOENT when there is none. */
int cni_conf_load_dir(const char *dir, struct cni_netconf *nc, char *err, size_t errlen);
void cni_conf_free(struct cni_netconf *nc);
static inline const char *cni_plugin_type(const struct cni_netconf *nc, size_t i)
{
	return json_object_get_string(json_object_object_get(nc->plugins[i], "type"));
}

/* Find type in the ':'-separated bin_dirs (relative and empty entries are
 * skipped): an executable regular file. -EINVAL for a bad type, -ENOENT if
 * none, -ENAMETOOLONG if a path does not fit. */
int cni_find_plugin(const char *bin_dirs, const char *type, char *path, size_t pathlen);

/* "IgnoreUnknown=1;K8S_POD_NAMESPACE=..;K8S_POD_NAME=..;
 * K8S_POD_INFRA_CONTAINER_ID=..;K8S_POD_UID=.." (empty values left out).
 * -EINVAL if a value holds ';', '=' or a control character, -ENAMETOOLONG
 * if it does not fit. */
int cni_build_args(const struct pod_net_request *req, char *buf, size_t len);

/* [{"hostPort","containerPort","protocol","hostIP"}...]; NULL when n == 0
 * or on allocation failure. Unknown protocols are left out. */
json_object *cni_port_mappings(const struct port_mapping *ports, size_t n);

/* The stdin of plugin i: its configuration with "name" and "cniVersion"
 * from the list, "prevResult" (if prev_result) and "runtimeConfig" for the
 * capabilities it declares (portMappings, cgroupPath). New reference. */
json_object *cni_plugin_config(const struct cni_netconf *nc, size_t i, json_object *prev_result,
			       json_object *port_mappings, const char *cgroup_path);

/* The pod's addresses in a result (0.3.x/0.4.0/1.x "ips" or 0.1/0.2
 * "ip4"/"ip6"): addresses of host-side interfaces skipped, prefix length
 * removed, deduplicated, IPv4 first, at most NETD_MAX_IPS. -EINVAL if the
 * result is malformed; n_ips may be 0. */
int cni_result_ips(json_object *result, struct pod_net_result *res);

/* One plugin run. status is the wait status. */
struct cni_exec_out {
	int status;
	char *out;      /* stdout, NUL-terminated */
	size_t out_len;
	char *err;      /* the first CNI_MAX_STDERR bytes of stderr, NUL-terminated */
	size_t err_len;
};
/* Run path with envp, in on stdin, collecting stdout (at most max_out
 * bytes, else -EFBIG) and stderr concurrently; after timeout_ms the plugin
 * is killed (-ETIMEDOUT). 0 once the plugin was reaped (whatever its exit
 * status); o is filled on every return and must be freed. */
int cni_exec(const char *path, const char *const *envp, const char *in, size_t in_len, int timeout_ms,
	     size_t max_out, struct cni_exec_out *o);
void cni_exec_out_free(struct cni_exec_out *o);

/* Describe a failed run: "plugin TYPE: MSG[; DETAILS]" from the CNI error
 * object on stdout, else the last stderr line, else the exit status. */
void cni_plugin_error(const char *type, const struct cni_exec_out *o, char *err, size_t errlen);
