/* netd's request checks; see request.h. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "request.h"
#include "status.h"
#include "util.h"

bool netd_ports_conflict(const struct port_mapping *a, const struct port_mapping *b)
{
	if (a->protocol != b->protocol || a->host_port != b->host_port)
		return false;
	if (!a->host_ip[0] || !b->host_ip[0])
		return true;
	bool a6 = strchr(a->host_ip, ':') != NULL, b6 = strchr(b->host_ip, ':') != NULL;
	if (a6 != b6)
		return false;
	if (strcmp(a->host_ip, "0.0.0.0") == 0 || strcmp(a->host_ip, "::") == 0 || strcmp(b->host_ip, "0.0.0.0") == 0 ||
	    strcmp(b->host_ip, "::") == 0)
		return true;
	return strcmp(a->host_ip, b->host_ip) == 0;
}

#define FAIL(st, ...) (snprintf(err, errlen, __VA_ARGS__), (st))

int netd_check_pod_id(const char *id, char *err, size_t errlen)
{
	if (id_is_valid(id))
		return STATUS_OK;
	return FAIL(STATUS_INVALID_ARGUMENT, "pod_id must be 64 lowercase hex characters");
}

/* Optional metadata: empty, or a bounded name of [A-Za-z0-9._-]. */
static int check_meta(const char *field, const char *v, size_t max, char *err, size_t errlen)
{
	if (!v || !*v || name_is_valid(v, max))
		return STATUS_OK;
	if (strnlen(v, max + 1) > max)
		return FAIL(STATUS_INVALID_ARGUMENT, "%s is longer than %zu bytes", field, max);
	return FAIL(STATUS_INVALID_ARGUMENT, "%s may only hold A-Z a-z 0-9 . _ -", field);
}

/* A cgroup path or systemd slice: printable, no spaces or quotes, no "..". */
static int check_cgroup_parent(const char *v, char *err, size_t errlen)
{
	size_t n;

	if (!v || !*v)
		return STATUS_OK;
	n = strnlen(v, POD_CGROUP_MAX + 1);
	if (n > POD_CGROUP_MAX)
		return FAIL(STATUS_INVALID_ARGUMENT, "cgroup_parent is longer than %d bytes", POD_CGROUP_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-' || c == '/' || c == ':' || c == '@'))
			return FAIL(STATUS_INVALID_ARGUMENT, "cgroup_parent may only hold A-Z a-z 0-9 . _ - / : @");
	}
	if (strstr(v, ".."))
		return FAIL(STATUS_INVALID_ARGUMENT, "cgroup_parent must not contain '..'");
	return STATUS_OK;
}

/* Validate and normalise the port mappings into rec->ports: mappings
 * without a host port are dropped, identical ones merged, host_ip put in
 * canonical form. */
static int check_ports(const Criod__Internal__SetupPodNetworkRequest *req, bool ipv6, struct pod_record *rec,
		       char *err, size_t errlen)
{
	if (req->n_port_mappings > NETD_MAX_PORTS)
		return FAIL(STATUS_INVALID_ARGUMENT, "port_mappings has %zu entries (at most %d)", req->n_port_mappings,
			    NETD_MAX_PORTS);
	rec->ports = calloc(req->n_port_mappings ? req->n_port_mappings : 1, sizeof(*rec->ports));
	if (!rec->ports)
		return FAIL(STATUS_RESOURCE_EXHAUSTED, "out of memory");
	for (size_t i = 0; i < req->n_port_mappings; i++) {
		const Criod__Internal__PortMapping *pm = req->port_mappings[i];
		struct port_mapping m1 = { 0 };
		unsigned char a[16];
		int fam = 0;

		if (!pm)
			return FAIL(STATUS_INVALID_ARGUMENT, "port_mappings[%zu] is missing", i);
		if (pm->protocol && strcasecmp(pm->protocol, "tcp") == 0)
			m1.protocol = IPPROTO_TCP;
		else if (pm->protocol && strcasecmp(pm->protocol, "udp") == 0)
			m1.protocol = IPPROTO_UDP;
		else
			return FAIL(STATUS_INVALID_ARGUMENT, "port_mappings[%zu].protocol must be tcp or udp", i);
		if (pm->container_port < 1 || pm->container_port > 65535)
			return FAIL(STATUS_INVALID_ARGUMENT, "port_mappings[%zu].container_port must be 1..65535", i);
		if (pm->host_port < 0 || pm->host_port > 65535)
			return FAIL(STATUS_INVALID_ARGUMENT, "port_mappings[%zu].host_port must be 1..65535 (or 0 for none)",
				    i);
		if (pm->host_ip && *pm->host_ip) {
			if (strnlen(pm->host_ip, sizeof(m1.host_ip)) >= sizeof(m1.host_ip))
				fam = -1;
			else if (inet_pton(AF_INET, pm->host_ip, a) == 1)
				fam = AF_INET;
			else if (inet_pton(AF_INET6, pm->host_ip, a) == 1)
				fam = AF_INET6;
			else
				fam = -1;
			if (fam < 0 || !inet_ntop(fam, a, m1.host_ip, sizeof(m1.host_ip)))
				return FAIL(STATUS_INVALID_ARGUMENT, "port_mappings[%zu].host_ip is not an IP address", i);
			if (fam == AF_INET6 && !ipv6)
				return FAIL(STATUS_INVALID_ARGUMENT,
					    "port_mappings[%zu].host_ip is IPv6 but netd has no IPv6 subnet", i);
		}
		if (pm->host_port == 0)
			continue; /* no host port: nothing for netd to do */
		m1.container_port = (uint16_t)pm->container_port;
		m1.host_port = (uint16_t)pm->host_port;
		bool dup = false;
		for (size_t j = 0; j < rec->n_ports; j++) {
			const struct port_mapping *o = &rec->ports[j];
			if (!netd_ports_conflict(o, &m1))
				continue;
			if (o->container_port == m1.container_port && strcmp(o->host_ip, m1.host_ip) == 0) {
				dup = true;
				break;
			}
			return FAIL(STATUS_INVALID_ARGUMENT,
				    "port_mappings[%zu] maps host port %u/%s, which another mapping already uses", i,
				    m1.host_port, m1.protocol == IPPROTO_UDP ? "udp" : "tcp");
		}
		if (!dup)
			rec->ports[rec->n_ports++] = m1;
	}
	return STATUS_OK;
}

int netd_check_setup(const Criod__Internal__SetupPodNetworkRequest *req, bool ipv6, struct pod_record *rec,
		     char *err, size_t errlen)
{
	int st;
	if ((st = netd_check_pod_id(req->pod_id, err, errlen)) != STATUS_OK ||
	    (st = check_meta("pod_name", req->pod_name, POD_META_MAX, err, errlen)) != STATUS_OK ||
	    (st = check_meta("pod_namespace", req->pod_namespace, NETD_MAX_NAMESPACE, err, errlen)) != STATUS_OK ||
	    (st = check_meta("pod_uid", req->pod_uid, POD_META_MAX, err, errlen)) != STATUS_OK ||
	    (st = check_cgroup_parent(req->cgroup_parent, err, errlen)) != STATUS_OK)
		return st;
	return check_ports(req, ipv6, rec, err, errlen);
}
