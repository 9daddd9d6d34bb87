/* Pod records on disk (JSON); see state.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "macro.h"
#include "nft.h"
#include "state.h"
#include "util.h"

#define RECORD_MAX (1u << 20)
#define RECORD_VERSION 1

static const char *const state_names[] = {
	[POD_SETTING_UP] = "setting-up",
	[POD_READY] = "ready",
	[POD_TEARING_DOWN] = "tearing-down",
};

const char *pod_state_name(enum pod_state s)
{
	return (size_t)s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

static void add_str(json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v ? v : ""));
}

int pod_record_save(const char *dir, const struct pod_record *r)
{
	_cleanup_free_ char *path = NULL;
	json_object *o = json_object_new_object(), *ips = json_object_new_array(), *ports = json_object_new_array();
	const char *text;
	int ret;

	if (!o || !ips || !ports) {
		json_object_put(o);
		json_object_put(ips);
		json_object_put(ports);
		return -ENOMEM;
	}
	json_object_object_add(o, "version", json_object_new_int(RECORD_VERSION));
	add_str(o, "pod_id", r->pod_id);
	add_str(o, "state", pod_state_name(r->state));
	add_str(o, "backend", r->backend);
	add_str(o, "netns", r->netns);
	add_str(o, "ifname", r->ifname);
	add_str(o, "host_veth", r->host_veth);
	add_str(o, "bridge", r->bridge);
	add_str(o, "nft_table", r->nft_table);
	add_str(o, "nft_comment", r->nft_comment);
	for (size_t i = 0; i < r->n_ips; i++) {
		json_object *ip = json_object_new_object();
		add_str(ip, "addr", r->ips[i].addr);
		json_object_object_add(ip, "prefix", json_object_new_int((int)r->ips[i].prefix));
		add_str(ip, "ipam", r->ips[i].ipam_key);
		json_object_array_add(ips, ip);
	}
	json_object_object_add(o, "ips", ips);
	for (size_t i = 0; i < r->n_ports; i++) {
		const struct port_mapping *m = &r->ports[i];
		json_object *p = json_object_new_object();
		add_str(p, "protocol", m->protocol == IPPROTO_UDP ? "udp" : "tcp");
		json_object_object_add(p, "container_port", json_object_new_int(m->container_port));
		json_object_object_add(p, "host_port", json_object_new_int(m->host_port));
		add_str(p, "host_ip", m->host_ip);
		json_object_array_add(ports, p);
	}
	json_object_object_add(o, "ports", ports);
	add_str(o, "pod_name", r->pod_name);
	add_str(o, "pod_namespace", r->pod_namespace);
	add_str(o, "pod_uid", r->pod_uid);
	add_str(o, "cgroup_parent", r->cgroup_parent);
	json_object_object_add(o, "created_ns", json_object_new_int64(r->created_ns));

	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text || asprintf(&path, "%s/%s.json", dir, r->pod_id) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	ret = pod_record_durable(r) ? write_file_atomic(path, text, strlen(text), 0600)
				    : write_file_boot(path, text, strlen(text), 0600);
	json_object_put(o);
	return ret;
}

/* Copy string member key of o into dst (size len); missing means "". */
static int get_str(json_object *o, const char *key, char *dst, size_t len, char *err, size_t errlen)
{
	json_object *v;
	const char *s;

	dst[0] = '\0';
	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return errf(err, errlen, -EINVAL, "%s is not a string", key);
	s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) >= len || strlen(s) != (size_t)json_object_get_string_len(v))
		return errf(err, errlen, -EINVAL, "%s is too long or holds a NUL", key);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int get_int(json_object *o, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err, size_t errlen)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return errf(err, errlen, -EINVAL, "%s is missing or not a number", key);
	*out = json_object_get_int64(v);
	if (*out < lo || *out > hi)
		return errf(err, errlen, -EINVAL, "%s is out of range", key);
	return 0;
}

static bool link_name_ok(const char *s) { return !*s || name_is_valid(s, 15); }

static bool addr_ok(const char *s)
{
	unsigned char a[16];
	return inet_pton(strchr(s, ':') ? AF_INET6 : AF_INET, s, a) == 1;
}

static int parse(json_object *o, struct pod_record *r, char *err, size_t errlen)
{
	char state[32];
	json_object *arr;
	int64_t v;
	int ret;

	if (!json_object_is_type(o, json_type_object))
		return errf(err, errlen, -EINVAL, "not a JSON object");
	if ((ret = get_int(o, "version", RECORD_VERSION, RECORD_VERSION, &v, err, errlen)) < 0)
		return ret;
	if ((ret = get_str(o, "pod_id", r->pod_id, sizeof(r->pod_id), err, errlen)) < 0 ||
	    (ret = get_str(o, "state", state, sizeof(state), err, errlen)) < 0 ||
	    (ret = get_str(o, "backend", r->backend, sizeof(r->backend), err, errlen)) < 0 ||
	    (ret = get_str(o, "netns", r->netns, sizeof(r->netns), err, errlen)) < 0 ||
	    (ret = get_str(o, "ifname", r->ifname, sizeof(r->ifname), err, errlen)) < 0 ||
	    (ret = get_str(o, "host_veth", r->host_veth, sizeof(r->host_veth), err, errlen)) < 0 ||
	    (ret = get_str(o, "bridge", r->bridge, sizeof(r->bridge), err, errlen)) < 0 ||
	    (ret = get_str(o, "nft_table", r->nft_table, sizeof(r->nft_table), err, errlen)) < 0 ||
	    (ret = get_str(o, "nft_comment", r->nft_comment, sizeof(r->nft_comment), err, errlen)) < 0 ||
	    (ret = get_str(o, "pod_name", r->pod_name, sizeof(r->pod_name), err, errlen)) < 0 ||
	    (ret = get_str(o, "pod_namespace", r->pod_namespace, sizeof(r->pod_namespace), err, errlen)) < 0 ||
	    (ret = get_str(o, "pod_uid", r->pod_uid, sizeof(r->pod_uid), err, errlen)) < 0 ||
	    (ret = get_str(o, "cgroup_parent", r->cgroup_parent, sizeof(r->cgroup_parent), err, errlen)) < 0)
		return ret;
	if (!id_is_valid(r->pod_id))
		return errf(err, errlen, -EINVAL, "pod_id is not 64 hex characters");
	for (size_t i = 0;; i++) {
		if (i == ARRAY_SIZE(state_names))
			return errf(err, errlen, -EINVAL, "unknown state '%s'", state);
		if (strcmp(state, state_names[i]) == 0) {
			r->state = (enum pod_state)i;
			break;
		}
	}
	if (strcmp(r->backend, "netlink") != 0 && strcmp(r->backend, "cni") != 0)
		return errf(err, errlen, -EINVAL, "unknown backend '%s'", r->backend);
	if (r->netns[0] != '/' || strstr(r->netns, "/../") || strstr(r->netns, "/./"))
		return errf(err, errlen, -EINVAL, "netns is not an absolute path");
	if (!link_name_ok(r->ifname) || !link_name_ok(r->host_veth) || !link_name_ok(r->bridge))
		return errf(err, errlen, -EINVAL, "bad interface name");
	if (r->nft_table[0] && !fw_table_name_is_valid(r->nft_table))
		return errf(err, errlen, -EINVAL, "bad nft_table");
	if (json_object_object_get_ex(o, "created_ns", &arr))
		r->created_ns = json_object_get_int64(arr);

	if (json_object_object_get_ex(o, "ips", &arr)) {
		size_t n;
		if (!json_object_is_type(arr, json_type_array) || (n = json_object_array_length(arr)) > NETD_MAX_IPS)
			return errf(err, errlen, -EINVAL, "ips is not an array of at most %d", NETD_MAX_IPS);
		for (size_t i = 0; i < n; i++) {
			json_object *ip = json_object_array_get_idx(arr, i);
			struct pod_ip *pi = &r->ips[i];
			if ((ret = get_str(ip, "addr", pi->addr, sizeof(pi->addr), err, errlen)) < 0 ||
			    (ret = get_str(ip, "ipam", pi->ipam_key, sizeof(pi->ipam_key), err, errlen)) < 0 ||
			    (ret = get_int(ip, "prefix", 0, 128, &v, err, errlen)) < 0)
				return ret;
			if (!addr_ok(pi->addr))
				return errf(err, errlen, -EINVAL, "ips[%zu] is not an address", i);
			pi->prefix = (unsigned)v;
		}
		r->n_ips = n;
	}
	if (json_object_object_get_ex(o, "ports", &arr)) {
		size_t n;
		if (!json_object_is_type(arr, json_type_array) || (n = json_object_array_length(arr)) > NETD_MAX_PORTS)
			return errf(err, errlen, -EINVAL, "ports is not an array of at most %d", NETD_MAX_PORTS);
		r->ports = calloc(n ? n : 1, sizeof(*r->ports));
		if (!r->ports)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			json_object *p = json_object_array_get_idx(arr, i);
			struct port_mapping *m = &r->ports[i];
			char proto[8];
			if ((ret = get_str(p, "protocol", proto, sizeof(proto), err, errlen)) < 0 ||
			    (ret = get_str(p, "host_ip", m->host_ip, sizeof(m->host_ip), err, errlen)) < 0)
				return ret;
			if (strcmp(proto, "tcp") == 0)
				m->protocol = IPPROTO_TCP;
			else if (strcmp(proto, "udp") == 0)
				m->protocol = IPPROTO_UDP;
			else
				return errf(err, errlen, -EINVAL, "ports[%zu].protocol is not tcp or udp", i);
			if ((ret = get_int(p, "container_port", 1, 65535, &v, err, errlen)) < 0)
				return ret;
			m->container_port = (uint16_t)v;
			if ((ret = get_int(p, "host_port", 1, 65535, &v, err, errlen)) < 0)
				return ret;
			m->host_port = (uint16_t)v;
			if (m->host_ip[0] && !addr_ok(m->host_ip))
				return errf(err, errlen, -EINVAL, "ports[%zu].host_ip is not an address", i);
			r->n_ports++;
		}
	}
	return 0;
}

int pod_record_load(const char *path, struct pod_record *r, char *err, size_t errlen)
{
	_cleanup_free_ char *text = NULL;
	json_object *o;
	size_t len;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = read_file(path, RECORD_MAX, &text, &len);
	if (ret < 0) {
		snprintf(err, errlen, "cannot read: %s", strerror(-ret));
		return ret;
	}
	if (strlen(text) != len)
		return errf(err, errlen, -EINVAL, "holds a NUL byte");
	o = json_tokener_parse(text);
	if (!o)
		return errf(err, errlen, -EINVAL, "not valid JSON");
	ret = parse(o, r, err, errlen);
	json_object_put(o);
	if (ret < 0)
		pod_record_free(r);
	return ret;
}

bool pod_record_durable(const struct pod_record *r) { return strcmp(r->backend, "cni") == 0; }

int pod_record_remove(const char *dir, const char *pod_id, bool durable)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int dfd = -1;

	if (!id_is_valid(pod_id))
		return -EINVAL;
	if (asprintf(&path, "%s/%s.json", dir, pod_id) < 0)
		return -ENOMEM;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!durable)
		return 0;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0)
		return -errno;
	return 0;
}

int pod_record_copy(struct pod_record *dst, const struct pod_record *src)
{
	*dst = *src;
	dst->ports = NULL;
	if (src->n_ports) {
		dst->ports = calloc(src->n_ports, sizeof(*dst->ports));
		if (!dst->ports)
			return -ENOMEM;
		memcpy(dst->ports, src->ports, src->n_ports * sizeof(*dst->ports));
	}
	return 0;
}

void pod_record_free(struct pod_record *r)
{
	if (!r)
		return;
	free(r->ports);
	r->ports = NULL;
	r->n_ports = 0;
}

struct pod_record *pod_record_dup(const struct pod_record *src)
{
	struct pod_record *r = malloc(sizeof(*r));

	if (!r)
		return NULL;
	if (pod_record_copy(r, src) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

void pod_record_freep(struct pod_record **r)
{
	if (*r) {
		pod_record_free(*r);
		free(*r);
		*r = NULL;
	}
}
