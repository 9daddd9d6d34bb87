/* CRI request checks; see cri_validate.h. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "cri_validate.h"
#include "status.h"
#include "util.h"

#define FAIL(...) (snprintf(err, errlen, __VA_ARGS__), STATUS_INVALID_ARGUMENT)

int cri_check_field(const char *field, const char *v, bool required, size_t max, char *err, size_t errlen)
{
	if (required && (!v || !*v))
		return FAIL("%s is required", field);
	if (v && strlen(v) > max)
		return FAIL("%s is longer than %zu bytes", field, max);
	if (v && str_has_ctl(v))
		return FAIL("%s contains control characters", field);
	return STATUS_OK;
}

bool cri_hostname_ok(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
		if (!alnum && !(ch == '-' && i > 0 && i < n - 1) && !(ch == '.' && i > 0 && i < n - 1))
			return false;
	}
	return true;
}

int cri_check_pod_config(const Runtime__V1__PodSandboxConfig *cfg, char *err, size_t errlen)
{
	int st;
	if (!cfg)
		return FAIL("config is required");
	const Runtime__V1__PodSandboxMetadata *m = cfg->metadata;
	if (!m)
		return FAIL("config.metadata is required");
	/* kubelet always sends all three; crictl cannot stop or remove a pod
	 * without them. */
	if ((st = cri_check_field("config.metadata.name", m->name, true, CRI_MAX_FIELD, err, errlen)) ||
	    (st = cri_check_field("config.metadata.namespace", m->namespace_, true, CRI_MAX_FIELD, err, errlen)) ||
	    (st = cri_check_field("config.metadata.uid", m->uid, true, CRI_MAX_FIELD, err, errlen)) ||
	    (st = cri_check_field("config.hostname", cfg->hostname, false, CRI_MAX_FIELD, err, errlen)) ||
	    (st = cri_check_field("config.log_directory", cfg->log_directory, false, CRI_MAX_FIELD, err, errlen)))
		return st;
	if (cfg->hostname && *cfg->hostname && !cri_hostname_ok(cfg->hostname))
		return FAIL("config.hostname \"%s\" is not a valid host name (RFC 1123, at most 63 characters)",
			    cfg->hostname);
	if (cfg->n_port_mappings > 256)
		return FAIL("config.port_mappings: at most 256 mappings");
	for (size_t i = 0; i < cfg->n_port_mappings; i++) {
		const Runtime__V1__PortMapping *pm = cfg->port_mappings[i];
		if (pm->protocol == RUNTIME__V1__PROTOCOL__SCTP)
			return FAIL("config.port_mappings[%zu].protocol: SCTP is not supported", i);
		if (pm->container_port < 1 || pm->container_port > 65535 || pm->host_port < 0 || pm->host_port > 65535)
			return FAIL("config.port_mappings[%zu]: ports must be 1..65535", i);
		unsigned char buf[16];
		if (pm->host_ip && *pm->host_ip && inet_pton(AF_INET, pm->host_ip, buf) != 1 &&
		    inet_pton(AF_INET6, pm->host_ip, buf) != 1)
			return FAIL("config.port_mappings[%zu].host_ip \"%s\" is not an IP address", i, pm->host_ip);
	}
	const Runtime__V1__LinuxPodSandboxConfig *l = cfg->linux;
	const Runtime__V1__NamespaceOption *o = l && l->security_context ? l->security_context->namespace_options : NULL;
	if (o) {
		if (o->network == RUNTIME__V1__NAMESPACE_MODE__CONTAINER || o->network == RUNTIME__V1__NAMESPACE_MODE__TARGET ||
		    o->ipc == RUNTIME__V1__NAMESPACE_MODE__CONTAINER || o->ipc == RUNTIME__V1__NAMESPACE_MODE__TARGET ||
		    o->pid == RUNTIME__V1__NAMESPACE_MODE__TARGET)
			return FAIL("config.linux.security_context.namespace_options: a pod's network and ipc "
				    "namespaces are POD or NODE, its pid namespace POD, CONTAINER or NODE");
	}
	if (l && (st = cri_check_field("config.linux.cgroup_parent", l->cgroup_parent, false, CRI_MAX_FIELD, err, errlen)))
		return st;
	return STATUS_OK;
}

/* A relative path without "." or ".." components. */
static bool relative_clean(const char *p)
{
	if (!*p || *p == '/')
		return false;
	for (const char *s = p; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += n;
		if (*s == '/')
			s++;
	}
	return p[strlen(p) - 1] != '/';
}

int cri_check_create(const Runtime__V1__CreateContainerRequest *req, char *err, size_t errlen)
{
	int st;
	if ((st = cri_check_field("pod_sandbox_id", req->pod_sandbox_id, true, CRI_MAX_FIELD, err, errlen)))
		return st;
	const Runtime__V1__ContainerConfig *cfg = req->config;
	if (!cfg)
		return FAIL("config is required");
	if (!cfg->metadata)
		return FAIL("config.metadata is required");
	if ((st = cri_check_field("config.metadata.name", cfg->metadata->name, true, CRI_MAX_FIELD, err, errlen)))
		return st;
	if (!cfg->image)
		return FAIL("config.image is required");
	if ((st = cri_check_field("config.image.image", cfg->image->image, true, CRI_MAX_PATH_FIELD, err, errlen)) ||
	    (st = cri_check_field("config.log_path", cfg->log_path, false, CRI_MAX_PATH_FIELD, err, errlen)) ||
	    (st = cri_check_field("config.working_dir", cfg->working_dir, false, CRI_MAX_PATH_FIELD, err, errlen)))
		return st;
	if (cfg->log_path && *cfg->log_path && !relative_clean(cfg->log_path))
		return FAIL("config.log_path \"%s\" must be a relative path (below the pod's log_directory) "
			    "without \".\" or \"..\"",
			    cfg->log_path);
	if (protobuf_c_message_get_packed_size(&cfg->base) > CRI_MAX_CONFIG)
		return FAIL("config is larger than %u bytes", CRI_MAX_CONFIG);
	return STATUS_OK;
}
