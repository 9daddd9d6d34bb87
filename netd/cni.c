/* The CNI backend of netd: runs standard CNI plugins (spec 0.3.x, 0.4.0,
 * 1.x) on the namespace netd made.
 *
 * ADD runs the plugins of the network configuration list in order, each
 * with its configuration on stdin ("name", "cniVersion" from the list, the
 * previous plugin's result as "prevResult", "runtimeConfig" for the
 * capabilities it declares) and the CNI_* environment. The last result gives
 * the pod's addresses; it is cached with the configuration it came from in
 * <state_dir>/cni-<pod_id>.json so that DEL runs the same plugins, in
 * reverse order, with the same parameters. A failed ADD deletes what the
 * plugins up to the failing one may have made.
 *
 * Plugins are found by "type" in the configured bin directories and started
 * with spawn_process(); stdin is fed while stdout and stderr are read (poll)
 * so that no pipe can fill up and block either side; output is bounded and
 * every run has a deadline after which the plugin is killed. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#include "backend.h"
#include "cni_internal.h"
#include "log.h"
#include "macro.h"
#include "spawn.h"
#include "util.h"

#define CNI_PATH_ENV "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CNI_JSON_DEPTH 64
#define CNI_CACHE_KIND "criodCniCacheV1"
#define CNI_DRAIN_MS 2000 /* after the plugin exited, how long a grandchild may hold its pipes */

static void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

static const char *json_text(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* A string member, or NULL if absent or not a string. */
static const char *json_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* For a log field: '"' and '\' escaped (log.c escapes control characters),
 * bounded, so that text from a plugin cannot end the quoted value. */
static void quote_for_log(const char *in, size_t n, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; i < n && in[i] && j + 3 < outlen; i++) {
		if (in[i] == '"' || in[i] == '\\')
			out[j++] = '\\';
		out[j++] = in[i];
	}
	out[j] = '\0';
}

/* ---- parsing ---- */

int cni_json_parse(const char *buf, size_t len, json_object **out)
{
	_cleanup_free_ char *copy = NULL;
	struct json_tokener *tok;
	json_object *o;
	enum json_tokener_error jerr;
	size_t end;

	*out = NULL;
	if (!buf || len == 0 || len > INT_MAX - 1 || memchr(buf, '\0', len))
		return -EINVAL;
	/* json-c needs the terminating NUL to see where the input ends. */
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	copy[len] = '\0';
	tok = json_tokener_new_ex(CNI_JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, copy, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		return -EINVAL;
	}
	for (size_t i = end; i < len; i++)
		if (!strchr(" \t\r\n", copy[i])) {
			json_object_put(o);
			return -EINVAL;
		}
	*out = o;
	return 0;
}

int cni_version_parse(const char *s, unsigned v[3])
{
	const char *p = s;

	if (!s)
		return -EINVAL;
	for (int i = 0; i < 3; i++) {
		unsigned n = 0;
		int digits = 0;

		while (*p >= '0' && *p <= '9') {
			if (++digits > 4)
				return -EINVAL;
			n = n * 10 + (unsigned)(*p++ - '0');
		}
		if (digits == 0)
			return -EINVAL;
		v[i] = n;
		if (i < 2 && *p++ != '.')
			return -EINVAL;
	}
	return *p ? -EINVAL : 0;
}

static bool version_at_least(const char *s, unsigned a, unsigned b, unsigned c)
{
	unsigned v[3];

	if (cni_version_parse(s, v) < 0)
		return false;
	if (v[0] != a)
		return v[0] > a;
	if (v[1] != b)
		return v[1] > b;
	return v[2] >= c;
}

bool cni_type_is_valid(const char *type)
{
	return name_is_valid(type, NAME_MAX) && !strstr(type, "..");
}

static bool net_name_is_valid(const char *name)
{
	if (!name_is_valid(name, CNI_MAX_NAME))
		return false;
	return (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
	       (name[0] >= '0' && name[0] <= '9');
}

void cni_conf_free(struct cni_netconf *nc)
{
	if (!nc)
		return;
	free(nc->name);
	free(nc->version);
	free(nc->source);
	free(nc->plugins);
	if (nc->list)
		json_object_put(nc->list);
	memset(nc, 0, sizeof(*nc));
}

int cni_conf_from_json(json_object *obj, bool is_list, const char *source, struct cni_netconf *nc,
		       char *err, size_t errlen)
{
	_cleanup_json_ json_object *list = NULL;
	json_object *plugins, *v;
	const char *name, *version;
	unsigned ver[3];
	size_t n;

	memset(nc, 0, sizeof(*nc));
	if (!source)
		source = "network configuration";
	if (!obj || !json_object_is_type(obj, json_type_object)) {
		return errf(err, errlen, -EINVAL, "%s: not a JSON object", source);
	}
	if (!is_list && json_object_object_get_ex(obj, "plugins", &v) && !json_object_object_get_ex(obj, "type", NULL))
		is_list = true;
	if (is_list) {
		list = json_object_get(obj);
	} else {
		/* A single plugin configuration: the list it would be. */
		json_object *arr;

		list = json_object_new_object();
		arr = json_object_new_array();
		if (!list || !arr) {
			json_object_put(arr);
			return -ENOMEM;
		}
		if (json_object_object_get_ex(obj, "cniVersion", &v))
			json_object_object_add(list, "cniVersion", json_object_get(v));
		if (json_object_object_get_ex(obj, "name", &v))
			json_object_object_add(list, "name", json_object_get(v));
		json_object_array_add(arr, json_object_get(obj));
		json_object_object_add(list, "plugins", arr);
	}

	version = json_str(list, "cniVersion");
	if (!version) {
		return errf(err, errlen, -EINVAL, "%s: cniVersion: missing or not a string", source);
	}
	if (cni_version_parse(version, ver) < 0 || ver[0] > 1) {
		return errf(err, errlen, -EINVAL, "%s: cniVersion: unsupported version \"%.32s\"", source, version);
	}
	name = json_str(list, "name");
	if (!name || !net_name_is_valid(name)) {
		return errf(err, errlen, -EINVAL,
			    "%s: name: missing or invalid (1-%d of [A-Za-z0-9._-], starting alphanumeric)",
			    source, CNI_MAX_NAME);
	}
	if (!json_object_object_get_ex(list, "plugins", &plugins) || !json_object_is_type(plugins, json_type_array)) {
		return errf(err, errlen, -EINVAL, "%s: plugins: missing or not an array", source);
	}
	n = json_object_array_length(plugins);
	if (n == 0 || n > CNI_MAX_PLUGINS) {
		return errf(err, errlen, -EINVAL,
			    "%s: plugins: need 1 to %d plugins, have %zu", source, CNI_MAX_PLUGINS, n);
	}
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(plugins, i), *caps;
		const char *type = json_str(p, "type");

		if (!p || !json_object_is_type(p, json_type_object)) {
			return errf(err, errlen, -EINVAL, "%s: plugins[%zu]: not an object", source, i);
		}
		if (!type || !cni_type_is_valid(type)) {
			return errf(err, errlen, -EINVAL,
				    "%s: plugins[%zu].type: missing or not a plain file name", source, i);
		}
		if (json_object_object_get_ex(p, "capabilities", &caps) && !json_object_is_type(caps, json_type_object)) {
			return errf(err, errlen, -EINVAL, "%s: plugins[%zu].capabilities: not an object", source, i);
		}
	}

	nc->name = strdup(name);
	nc->version = strdup(version);
	nc->source = strdup(source);
	nc->plugins = calloc(n, sizeof(*nc->plugins));
	if (!nc->name || !nc->version || !nc->source || !nc->plugins) {
		cni_conf_free(nc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		nc->plugins[i] = json_object_array_get_idx(plugins, i);
	nc->n_plugins = n;
	nc->list = TAKE_PTR(list);
	return 0;
}

int cni_conf_parse(const char *text, size_t len, bool is_list, const char *source, struct cni_netconf *nc,
		   char *err, size_t errlen)
{
	_cleanup_json_ json_object *o = NULL;

	memset(nc, 0, sizeof(*nc));
	if (cni_json_parse(text, len, &o) < 0) {
		return errf(err, errlen, -EINVAL, "%s: not valid JSON", source ? source : "network configuration");
	}
	return cni_conf_from_json(o, is_list, source, nc, err, errlen);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

static int conf_filter(const struct dirent *d)
{
	return d->d_name[0] != '.' && (has_suffix(d->d_name, ".conflist") || has_suffix(d->d_name, ".conf"));
}

static int bytewise_sort(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int cni_conf_load_dir(const char *dir, struct cni_netconf *nc, char *err, size_t errlen)
{
	struct dirent **ents = NULL;
	int n, r = -ENOENT;
	bool found = false;

	memset(nc, 0, sizeof(*nc));
	if (!dir || !*dir) {
		return errf(err, errlen, -EINVAL, "no CNI configuration directory");
	}
	n = scandir(dir, &ents, conf_filter, bytewise_sort);
	if (n < 0) {
		r = -errno;
		if (r == -ENOENT)
			errf(err, errlen, 0, "no CNI network configuration: %s does not exist", dir);
		else
			errf(err, errlen, 0, "cannot read CNI configuration directory %s: %s", dir, strerror(-r));
		return r;
	}
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		size_t len = 0;
		struct stat st;

		if (found)
			goto next;
		if (asprintf(&path, "%s/%s", dir, ents[i]->d_name) < 0) {
			path = NULL;
			r = -ENOMEM;
			found = true;
			goto next;
		}
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			goto next; /* dangling link, directory...: not a configuration */
		found = true;
		r = read_file(path, CNI_MAX_CONF_SIZE, &text, &len);
		if (r < 0) {
			if (r == -EFBIG)
				errf(err, errlen, 0, "%s: larger than %d bytes", path, CNI_MAX_CONF_SIZE);
			else
				errf(err, errlen, 0, "cannot read %s: %s", path, strerror(-r));
			r = r == -ENOENT ? -EIO : r;
			goto next;
		}
		r = cni_conf_parse(text, len, has_suffix(path, ".conflist"), path, nc, err, errlen);
	next:
		free(ents[i]);
	}
	free(ents);
	if (!found)
		errf(err, errlen, 0, "no CNI network configuration (*.conflist, *.conf) in %s", dir);
	return r;
}

/* ---- plugin lookup and arguments ---- */

int cni_find_plugin(const char *bin_dirs, const char *type, char *path, size_t pathlen)
{
	const char *p, *end;

	if (!type || !cni_type_is_valid(type))
		return -EINVAL;
	if (!bin_dirs || pathlen == 0)
		return -ENOENT;
	for (p = bin_dirs; *p; p = *end ? end + 1 : end) {
		struct stat st;
		size_t dlen;
		int n;

		end = strchrnul(p, ':');
		dlen = (size_t)(end - p);
		if (dlen == 0 || p[0] != '/')
			continue;
		n = snprintf(path, pathlen, "%.*s/%s", (int)dlen, p, type);
		if (n < 0 || (size_t)n >= pathlen)
			return -ENAMETOOLONG;
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0)
			return 0;
	}
	path[0] = '\0';
	return -ENOENT;
}

static bool arg_value_is_valid(const char *v)
{
	for (; *v; v++)
		if (*v == ';' || *v == '=' || (unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

int cni_build_args(const struct pod_net_request *req, char *buf, size_t len)
{
	const struct {
		const char *key, *val;
	} kv[] = {
		{"K8S_POD_NAMESPACE", req->pod_namespace},
		{"K8S_POD_NAME", req->pod_name},
		{"K8S_POD_INFRA_CONTAINER_ID", req->pod_id},
		{"K8S_POD_UID", req->pod_uid},
	};
	size_t used;
	int n;

	if (!buf || len == 0)
		return -EINVAL;
	n = snprintf(buf, len, "IgnoreUnknown=1");
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	used = (size_t)n;
	for (size_t i = 0; i < ARRAY_SIZE(kv); i++) {
		if (!kv[i].val || !kv[i].val[0])
			continue;
		if (!arg_value_is_valid(kv[i].val))
			return -EINVAL;
		n = snprintf(buf + used, len - used, ";%s=%s", kv[i].key, kv[i].val);
		if (n < 0 || (size_t)n >= len - used)
			return -ENAMETOOLONG;
		used += (size_t)n;
	}
	return 0;
}

json_object *cni_port_mappings(const struct port_mapping *ports, size_t n)
{
	json_object *arr;

	if (!ports || n == 0)
		return NULL;
	arr = json_object_new_array();
	if (!arr)
		return NULL;
	for (size_t i = 0; i < n && i < NETD_MAX_PORTS; i++) {
		const struct port_mapping *p = &ports[i];
		const char *proto;
		json_object *m;

		switch (p->protocol) {
		case IPPROTO_TCP:
			proto = "tcp";
			break;
		case IPPROTO_UDP:
			proto = "udp";
			break;
		case IPPROTO_SCTP:
			proto = "sctp";
			break;
		default:
			continue;
		}
		m = json_object_new_object();
		if (!m) {
			json_object_put(arr);
			return NULL;
		}
		json_object_object_add(m, "hostPort", json_object_new_int(p->host_port));
		json_object_object_add(m, "containerPort", json_object_new_int(p->container_port));
		json_object_object_add(m, "protocol", json_object_new_string(proto));
		json_object_object_add(m, "hostIP",
				       json_object_new_string_len(p->host_ip, (int)strnlen(p->host_ip, sizeof(p->host_ip))));
		json_object_array_add(arr, m);
	}
	return arr;
}

static bool capability(json_object *plugin, const char *cap)
{
	json_object *caps, *v;

	return json_object_object_get_ex(plugin, "capabilities", &caps) && json_object_is_type(caps, json_type_object) &&
	       json_object_object_get_ex(caps, cap, &v) && json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

json_object *cni_plugin_config(const struct cni_netconf *nc, size_t i, json_object *prev_result,
			       json_object *port_mappings, const char *cgroup_path)
{
	json_object *conf = NULL, *rc;

	if (i >= nc->n_plugins || json_object_deep_copy(nc->plugins[i], &conf, NULL) < 0 || !conf)
		return NULL;
	json_object_object_add(conf, "name", json_object_new_string(nc->name));
	json_object_object_add(conf, "cniVersion", json_object_new_string(nc->version));
	json_object_object_del(conf, "prevResult"); /* only the runtime sets it */
	if (prev_result)
		json_object_object_add(conf, "prevResult", json_object_get(prev_result));

	/* Like libcni: runtimeConfig holds the declared capabilities the runtime
	 * has values for, and replaces whatever the file had only if any. */
	rc = json_object_new_object();
	if (!rc) {
		json_object_put(conf);
		return NULL;
	}
	if (port_mappings && json_object_array_length(port_mappings) > 0 && capability(nc->plugins[i], "portMappings"))
		json_object_object_add(rc, "portMappings", json_object_get(port_mappings));
	if (cgroup_path && *cgroup_path && capability(nc->plugins[i], "cgroupPath"))
		json_object_object_add(rc, "cgroupPath", json_object_new_string(cgroup_path));
	if (json_object_object_length(rc) > 0)
		json_object_object_add(conf, "runtimeConfig", rc);
	else
		json_object_put(rc);
	return conf;
}

/* ---- results ---- */

struct addr_set {
	char v4[NETD_MAX_IPS][64], v6[NETD_MAX_IPS][64];
	size_t n4, n6;
};

static int addr_add(struct addr_set *s, const char *cidr)
{
	char host[INET6_ADDRSTRLEN + 1], canon[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *slash = strchr(cidr, '/');
	size_t hlen = slash ? (size_t)(slash - cidr) : strlen(cidr);
	int af;

	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, cidr, hlen);
	host[hlen] = '\0';
	if (slash) {
		const char *p = slash + 1;
		if (!*p || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p))
			return -EINVAL;
	}
	if (inet_pton(AF_INET, host, bin) == 1)
		af = AF_INET;
	else if (inet_pton(AF_INET6, host, bin) == 1)
		af = AF_INET6;
	else
		return -EINVAL;
	if (!inet_ntop(af, bin, canon, sizeof(canon)))
		return -EINVAL;

	char(*list)[64] = af == AF_INET ? s->v4 : s->v6;
	size_t *n = af == AF_INET ? &s->n4 : &s->n6;
	for (size_t i = 0; i < *n; i++)
		if (strcmp(list[i], canon) == 0)
			return 0;
	if (*n < NETD_MAX_IPS)
		snprintf(list[(*n)++], 64, "%s", canon);
	return 0;
}

int cni_result_ips(json_object *result, struct pod_net_result *res)
{
	struct addr_set s;
	json_object *ips, *ifaces = NULL;
	size_t nifaces = 0;

	memset(res, 0, sizeof(*res));
	memset(&s, 0, sizeof(s));
	if (!result || !json_object_is_type(result, json_type_object))
		return -EINVAL;
	if (json_object_object_get_ex(result, "interfaces", &ifaces) && ifaces) {
		if (!json_object_is_type(ifaces, json_type_array))
			return -EINVAL;
		nifaces = json_object_array_length(ifaces);
	}
	if (json_object_object_get_ex(result, "ips", &ips) && ips) {
		if (!json_object_is_type(ips, json_type_array))
			return -EINVAL;
		for (size_t i = 0; i < json_object_array_length(ips); i++) {
			json_object *ip = json_object_array_get_idx(ips, i), *idx;
			const char *addr = json_str(ip, "address");

			if (!addr)
				return -EINVAL;
			if (json_object_object_get_ex(ip, "interface", &idx) && idx) {
				int64_t k;
				const char *sandbox;

				if (!json_object_is_type(idx, json_type_int))
					return -EINVAL;
				k = json_object_get_int64(idx);
				if (k < 0 || (uint64_t)k >= nifaces)
					return -EINVAL;
				sandbox = json_str(json_object_array_get_idx(ifaces, (size_t)k), "sandbox");
				if (!sandbox || !*sandbox)
					continue; /* the host side (a bridge, a veth's peer) */
			}
			if (addr_add(&s, addr) < 0)
				return -EINVAL;
		}
	}
	/* 0.1.0 / 0.2.0 */
	for (int f = 0; f < 2; f++) {
		json_object *o;
		const char *addr;

		if (!json_object_object_get_ex(result, f == 0 ? "ip4" : "ip6", &o) || !o)
			continue;
		addr = json_str(o, "ip");
		if (!addr || addr_add(&s, addr) < 0)
			return -EINVAL;
	}

	for (size_t i = 0; i < s.n4 && res->n_ips < NETD_MAX_IPS; i++)
		memcpy(res->ips[res->n_ips++], s.v4[i], 64);
	for (size_t i = 0; i < s.n6 && res->n_ips < NETD_MAX_IPS; i++)
		memcpy(res->ips[res->n_ips++], s.v6[i], 64);
	return 0;
}

/* ---- running a plugin ---- */

void cni_exec_out_free(struct cni_exec_out *o)
{
	if (!o)
		return;
	free(o->out);
	free(o->err);
	memset(o, 0, sizeof(*o));
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void reap(pid_t pid, int *status)
{
	while (waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

int cni_exec(const char *path, const char *const *envp, const char *in, size_t in_len, int timeout_ms,
	     size_t max_out, struct cni_exec_out *o)
{
	int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
	const char *argv[] = {path, NULL};
	struct spawn_opts so = {
		.argv = argv,
		.envp = envp,
		.stdin_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = -1,
	};
	sigset_t pipe_set, old_mask;
	size_t in_off = 0, out_cap = 0;
	int64_t deadline, drain_deadline = 0;
	bool exited = false, got_epipe = false;
	pid_t pid = -1;
	int r;

	memset(o, 0, sizeof(*o));
	o->err = calloc(1, CNI_MAX_STDERR + 1);
	out_cap = 4096;
	o->out = malloc(out_cap);
	if (!o->err || !o->out) {
		cni_exec_out_free(o);
		return -ENOMEM;
	}
	o->out[0] = '\0';

	/* Close-on-exec: a plugin another thread starts meanwhile must not
	 * inherit our ends (spawn_process closes them too). */
	if (pipe2(inp, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	so.stdin_fd = inp[0];
	so.stdout_fd = outp[1];
	so.stderr_fd = errp[1];
	r = spawn_process(&so, &pid);
	close_fd(&inp[0]);
	close_fd(&outp[1]);
	close_fd(&errp[1]);
	if (r < 0) {
		pid = -1;
		goto out;
	}
	if ((r = set_nonblock(inp[1])) < 0 || (r = set_nonblock(outp[0])) < 0 || (r = set_nonblock(errp[0])) < 0)
		goto out;
	if (in_len == 0)
		close_fd(&inp[1]);

	/* A plugin that exits without reading its stdin must not kill us with
	 * SIGPIPE: block it in this thread (it is thread-directed) and take a
	 * pending one back before restoring the mask. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

	deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	r = 0;
	while (!exited || outp[0] >= 0 || errp[0] >= 0) {
		struct pollfd pfd[3];
		int nfds = 0, wait_ms, ws;
		int64_t now = now_monotonic_ns(), limit = exited ? drain_deadline : deadline;

		if (now >= limit) {
			if (!exited)
				r = -ETIMEDOUT;
			break; /* exited: a grandchild holds the pipes; enough */
		}
		if (exited)
			close_fd(&inp[1]);
		if (inp[1] >= 0)
			pfd[nfds++] = (struct pollfd){.fd = inp[1], .events = POLLOUT};
		if (outp[0] >= 0)
			pfd[nfds++] = (struct pollfd){.fd = outp[0], .events = POLLIN};
		if (errp[0] >= 0)
			pfd[nfds++] = (struct pollfd){.fd = errp[0], .events = POLLIN};
		/* wake up now and then to notice the exit while pipes stay open */
		wait_ms = (int)((limit - now) / 1000000) + 1;
		if (!exited && wait_ms > 50)
			wait_ms = 50;
		if (poll(pfd, (nfds_t)nfds, wait_ms) < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		for (int i = 0; i < nfds; i++) {
			if (!pfd[i].revents)
				continue;
			if (pfd[i].fd == inp[1]) {
				size_t chunk = in_len - in_off > 65536 ? 65536 : in_len - in_off;
				ssize_t w = write(inp[1], in + in_off, chunk);

				if (w > 0)
					in_off += (size_t)w;
				else if (w < 0 && errno != EAGAIN && errno != EINTR) {
					got_epipe |= errno == EPIPE;
					close_fd(&inp[1]); /* the plugin does not read: its business */
				}
				if (in_off >= in_len)
					close_fd(&inp[1]);
			} else if (pfd[i].fd == outp[0]) {
				ssize_t n;

				if (o->out_len + 4096 + 1 > out_cap) {
					size_t ncap = out_cap * 2;
					char *nb;

					if (ncap > max_out + 4096 + 1)
						ncap = max_out + 4096 + 1;
					nb = realloc(o->out, ncap);
					if (!nb) {
						r = -ENOMEM;
						goto stop;
					}
					o->out = nb;
					out_cap = ncap;
				}
				n = read(outp[0], o->out + o->out_len, out_cap - o->out_len - 1);
				if (n > 0) {
					o->out_len += (size_t)n;
					o->out[o->out_len] = '\0';
					if (o->out_len > max_out) {
						r = -EFBIG;
						goto stop;
					}
				} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
					close_fd(&outp[0]);
			} else if (pfd[i].fd == errp[0]) {
				char buf[4096];
				ssize_t n = read(errp[0], buf, sizeof(buf));

				if (n > 0) {
					size_t keep = CNI_MAX_STDERR - o->err_len;
					if (keep > (size_t)n)
						keep = (size_t)n;
					memcpy(o->err + o->err_len, buf, keep);
					o->err_len += keep;
					o->err[o->err_len] = '\0';
				} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
					close_fd(&errp[0]);
			}
		}
		if (!exited) {
			pid_t w = waitpid(pid, &ws, WNOHANG);
			if (w == pid) {
				exited = true;
				o->status = ws;
				drain_deadline = now_monotonic_ns() + (int64_t)CNI_DRAIN_MS * 1000000;
			} else if (w < 0 && errno != EINTR) {
				r = -errno;
				exited = true; /* cannot wait for it; do not try again */
				pid = -1;
				break;
			}
		}
	}
stop:
	if (got_epipe) {
		struct timespec zero = {0, 0};
		while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
out:
	if (pid > 0 && !exited) {
		if (r < 0)
			kill(pid, SIGKILL);
		reap(pid, &o->status);
	}
	close_fd(&inp[0]);
	close_fd(&inp[1]);
	close_fd(&outp[0]);
	close_fd(&outp[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	return r;
}

/* The last non-empty line of s, trimmed, as [start, len). */
static void last_line(const char *s, size_t n, const char **start, size_t *len)
{
	size_t end = n;

	while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r' || s[end - 1] == ' ' || s[end - 1] == '\t'))
		end--;
	size_t b = end;
	while (b > 0 && s[b - 1] != '\n')
		b--;
	*start = s + b;
	*len = end - b;
}

void cni_plugin_error(const char *type, const struct cni_exec_out *o, char *err, size_t errlen)
{
	_cleanup_json_ json_object *e = NULL;
	const char *msg = NULL, *details = NULL, *line;
	size_t llen = 0;

	if (o->out_len > 0 && cni_json_parse(o->out, o->out_len, &e) == 0) {
		msg = json_str(e, "msg");
		details = json_str(e, "details");
	}
	if (msg && *msg) {
		if (details && *details)
			errf(err, errlen, 0, "plugin %s: %s; %s", type, msg, details);
		else
			errf(err, errlen, 0, "plugin %s: %s", type, msg);
		return;
	}
	if (o->err_len > 0) {
		last_line(o->err, o->err_len, &line, &llen);
		if (llen > 0) {
			errf(err, errlen, 0, "plugin %s: %.*s", type, (int)(llen > 1024 ? 1024 : llen), line);
			return;
		}
	}
	if (WIFSIGNALED(o->status))
		errf(err, errlen, 0, "plugin %s: killed by signal %d", type, WTERMSIG(o->status));
	else
		errf(err, errlen, 0, "plugin %s: exited with status %d and no error message", type,
		     WIFEXITED(o->status) ? WEXITSTATUS(o->status) : -1);
}

struct run_ctx {
	const struct criod_config *cfg;
	const struct pod_net_request *req;
	const struct cni_netconf *nc;
	const char *cni_args;
	json_object *port_mappings;
};

static void free_env(char **env, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(env[i]);
		env[i] = NULL;
	}
}

static char *env_var(const char *key, const char *val)
{
	char *s;
	if (asprintf(&s, "%s=%s", key, val) < 0)
		return NULL;
	return s;
}

/* One plugin, one command. For ADD *result gets the parsed result. */
static int run_plugin(const struct run_ctx *c, size_t i, const char *command, json_object *prev,
		      json_object **result, char *err, size_t errlen)
{
	const char *type = cni_plugin_type(c->nc, i);
	char path[PATH_MAX];
	_cleanup_json_ json_object *conf = NULL;
	struct cni_exec_out o;
	char *env[8] = {NULL};
	const char *envp[ARRAY_SIZE(env) + 1];
	const char *in;
	int64_t t0;
	int r, ms;

	if (result)
		*result = NULL;
	r = cni_find_plugin(c->cfg->cni_bin_dirs, type, path, sizeof(path));
	if (r < 0) {
		errf(err, errlen, 0,
		     "plugin %s: not found in %s", type, c->cfg->cni_bin_dirs ? c->cfg->cni_bin_dirs : "");
		return log_error_errno(r, NULL, "cni plugin not found", "plugin=%s bin_dirs=%s pod=%s", type,
				       c->cfg->cni_bin_dirs ? c->cfg->cni_bin_dirs : "", c->req->pod_id);
	}
	conf = cni_plugin_config(c->nc, i, prev, c->port_mappings, c->req->cgroup_parent);
	if (!conf)
		return -ENOMEM;
	in = json_text(conf);
	if (!in)
		return -ENOMEM;

	env[0] = env_var("CNI_COMMAND", command);
	env[1] = env_var("CNI_CONTAINERID", c->req->pod_id);
	env[2] = env_var("CNI_NETNS", c->req->netns_path);
	env[3] = env_var("CNI_IFNAME", c->req->ifname);
	env[4] = env_var("CNI_PATH", c->cfg->cni_bin_dirs);
	env[5] = env_var("CNI_ARGS", c->cni_args);
	env[6] = env_var("PATH", CNI_PATH_ENV);
	for (size_t k = 0; k < 7; k++)
		if (!env[k]) {
			free_env(env, ARRAY_SIZE(env));
			return -ENOMEM;
		}
	for (size_t k = 0; k < ARRAY_SIZE(env); k++)
		envp[k] = env[k];
	envp[ARRAY_SIZE(env)] = NULL;

	log_debug(NULL, "running cni plugin", "plugin=%s command=%s network=%s pod=%s", type, command, c->nc->name,
		  c->req->pod_id);
	t0 = now_monotonic_ns();
	r = cni_exec(path, envp, in, strlen(in), CNI_TIMEOUT_MS, CNI_MAX_OUTPUT, &o);
	ms = (int)((now_monotonic_ns() - t0) / 1000000);
	free_env(env, ARRAY_SIZE(env));
	if (o.err_len > 0) {
		char q[2048];
		quote_for_log(o.err, o.err_len, q, sizeof(q));
		log_warn(NULL, "cni plugin stderr", "plugin=%s command=%s pod=%s stderr=\"%s\"", type, command,
			 c->req->pod_id, q);
	}
	if (r < 0) {
		if (r == -ETIMEDOUT)
			errf(err, errlen, 0,
			     "plugin %s: %s timed out after %d s", type, command, CNI_TIMEOUT_MS / 1000);
		else if (r == -EFBIG)
			errf(err, errlen, 0, "plugin %s: output larger than %d bytes", type, CNI_MAX_OUTPUT);
		else
			errf(err, errlen, 0, "plugin %s: cannot run %s: %s", type, path, strerror(-r));
		cni_exec_out_free(&o);
		return log_error_errno(r, NULL, "cni plugin failed", "plugin=%s command=%s pod=%s elapsed_ms=%d", type,
				       command, c->req->pod_id, ms);
	}
	if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0) {
		char q[1024];

		cni_plugin_error(type, &o, err, errlen);
		quote_for_log(err ? err : "", err ? strlen(err) : 0, q, sizeof(q));
		cni_exec_out_free(&o);
		return log_error_errno(EIO, NULL, "cni plugin failed", "plugin=%s command=%s pod=%s elapsed_ms=%d error=\"%s\"",
				       type, command, c->req->pod_id, ms, q);
	}
	if (result) {
		if (o.out_len == 0 || cni_json_parse(o.out, o.out_len, result) < 0 ||
		    !json_object_is_type(*result, json_type_object)) {
			json_object_put(*result);
			*result = NULL;
			errf(err, errlen, 0, "plugin %s: %s result is not a JSON object", type, command);
			cni_exec_out_free(&o);
			return log_error_errno(EPROTO, NULL, "cni plugin returned no valid result", "plugin=%s command=%s pod=%s",
					       type, command, c->req->pod_id);
		}
	}
	cni_exec_out_free(&o);
	log_info(NULL, "cni plugin done", "plugin=%s command=%s network=%s pod=%s elapsed_ms=%d", type, command,
		 c->nc->name, c->req->pod_id, ms);
	return 0;
}

/* ---- ADD / DEL ---- */

static bool ifname_is_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strnlen(s, 16);
	if (n == 0 || n >= 16 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ':' || (unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static int check_request(const struct criod_config *cfg, const struct pod_net_request *req, char *err, size_t errlen)
{
	if (!cfg || !req || !id_is_valid(req->pod_id)) {
		return errf(err, errlen, -EINVAL, "invalid pod id");
	}
	if (!req->netns_path || req->netns_path[0] != '/' || !ifname_is_valid(req->ifname) || !req->state_dir ||
	    req->state_dir[0] != '/' || (req->n_ports > 0 && !req->ports) || req->n_ports > NETD_MAX_PORTS) {
		return errf(err, errlen, -EINVAL,
			    "invalid network request (netns path, interface name, state dir or ports)");
	}
	if (!cfg->cni_bin_dirs || !cfg->cni_conf_dir) {
		return errf(err, errlen, -EINVAL, "CNI configuration and plugin directories are not configured");
	}
	return 0;
}

static char *cache_path(const struct pod_net_request *req)
{
	char *p;
	if (asprintf(&p, "%s/cni-%s.json", req->state_dir, req->pod_id) < 0)
		return NULL;
	return p;
}

/* DEL plugins last..0, continuing past failures; the first error is kept. */
static int del_plugins(const struct run_ctx *c, size_t last, json_object *prev, char *err, size_t errlen)
{
	int ret = 0;

	for (size_t k = last + 1; k-- > 0;) {
		char e[512];
		int r = run_plugin(c, k, "DEL", prev, NULL, e, sizeof(e));
		if (r < 0 && ret == 0) {
			ret = r;
			errf(err, errlen, 0, "%s", e);
		}
	}
	return ret;
}

static int write_cache(const struct run_ctx *c, json_object *result, char *err, size_t errlen)
{
	_cleanup_json_ json_object *cache = json_object_new_object();
	_cleanup_free_ char *path = cache_path(c->req);
	const char *text;
	int r;

	if (!cache || !path)
		return -ENOMEM;
	json_object_object_add(cache, "kind", json_object_new_string(CNI_CACHE_KIND));
	json_object_object_add(cache, "containerId", json_object_new_string(c->req->pod_id));
	json_object_object_add(cache, "ifName", json_object_new_string(c->req->ifname));
	json_object_object_add(cache, "networkName", json_object_new_string(c->nc->name));
	json_object_object_add(cache, "cniArgs", json_object_new_string(c->cni_args));
	json_object_object_add(cache, "source", json_object_new_string(c->nc->source));
	json_object_object_add(cache, "config", json_object_get(c->nc->list));
	if (c->port_mappings)
		json_object_object_add(cache, "portMappings", json_object_get(c->port_mappings));
	json_object_object_add(cache, "result", json_object_get(result));
	text = json_text(cache);
	if (!text)
		return -ENOMEM;
	r = mkdir_p(c->req->state_dir, 0700);
	if (r >= 0)
		r = write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0) {
		errf(err, errlen, 0, "cannot write CNI result cache %s: %s", path, strerror(-r));
		return log_error_errno(r, NULL, "cannot write cni result cache", "path=%s", path);
	}
	return 0;
}

int cni_add(const struct criod_config *cfg, const struct pod_net_request *req, struct pod_net_result *res,
	    char *err, size_t errlen)
{
	struct cni_netconf nc;
	_cleanup_json_ json_object *prev = NULL;
	_cleanup_json_ json_object *ports = NULL;
	char args[1024];
	struct run_ctx c;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (res)
		memset(res, 0, sizeof(*res));
	if (!res)
		return -EINVAL;
	r = check_request(cfg, req, err, errlen);
	if (r < 0)
		return r;
	r = cni_build_args(req, args, sizeof(args));
	if (r < 0) {
		return errf(err, errlen, r, "pod metadata not usable in CNI_ARGS");
	}
	if (req->n_ports > 0) {
		ports = cni_port_mappings(req->ports, req->n_ports);
		if (!ports)
			return -ENOMEM;
	}
	r = cni_conf_load_dir(cfg->cni_conf_dir, &nc, err, errlen);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot load cni network configuration", "dir=%s pod=%s", cfg->cni_conf_dir,
				       req->pod_id);
	c = (struct run_ctx){.cfg = cfg, .req = req, .nc = &nc, .cni_args = args, .port_mappings = ports};

	for (size_t i = 0; i < nc.n_plugins; i++) {
		json_object *result = NULL;

		r = run_plugin(&c, i, "ADD", prev, &result, err, errlen);
		if (r < 0) {
			/* undo what plugins 0..i may have done, with the newest result known */
			del_plugins(&c, i, prev, NULL, 0);
			goto out;
		}
		json_object_put(prev);
		prev = result;
	}

	r = cni_result_ips(prev, res);
	if (r < 0 || res->n_ips == 0) {
		errf(err, errlen, 0, "network %s: %s", nc.name,
		     r < 0 ? "malformed result from the last plugin" : "no IP address in the result");
		r = log_error_errno(r < 0 ? r : EPROTO, NULL, "unusable cni result", "network=%s pod=%s", nc.name,
				    req->pod_id);
		goto undo;
	}
	r = write_cache(&c, prev, err, errlen);
	if (r < 0)
		goto undo;
	log_info(NULL, "cni network added", "network=%s pod=%s ip=%s", nc.name, req->pod_id, res->ips[0]);
	r = 0;
	goto out;
undo:
	memset(res, 0, sizeof(*res));
	del_plugins(&c, nc.n_plugins - 1, prev, NULL, 0);
out:
	cni_conf_free(&nc);
	return r;
}

/* The cache, if there is a readable one; a damaged one is logged and left
 * for DEL to replace by the configuration on disk. */
static json_object *read_cache(const char *path, const char *pod_id)
{
	_cleanup_free_ char *text = NULL;
	json_object *cache = NULL;
	const char *kind;
	size_t len;
	int r;

	r = read_file(path, CNI_MAX_CACHE_SIZE, &text, &len);
	if (r == -ENOENT)
		return NULL;
	if (r < 0) {
		log_warn_errno(r, NULL, "cannot read cni result cache", "path=%s", path);
		return NULL;
	}
	kind = NULL;
	if (cni_json_parse(text, len, &cache) == 0)
		kind = json_str(cache, "kind");
	if (!kind || strcmp(kind, CNI_CACHE_KIND) != 0 || !json_str(cache, "containerId") ||
	    strcmp(json_str(cache, "containerId"), pod_id) != 0) {
		log_warn(NULL, "ignoring damaged cni result cache", "path=%s", path);
		json_object_put(cache);
		return NULL;
	}
	return cache;
}

int cni_del(const struct criod_config *cfg, const struct pod_net_request *req, char *err, size_t errlen)
{
	struct cni_netconf nc;
	_cleanup_json_ json_object *cache = NULL;
	_cleanup_json_ json_object *ports = NULL;
	_cleanup_free_ char *path = NULL;
	json_object *cached_conf = NULL, *prev = NULL;
	const char *cached_args;
	char args[1024], lerr[512];
	struct run_ctx c;
	int r;

	if (err && errlen)
		err[0] = '\0';
	r = check_request(cfg, req, err, errlen);
	if (r < 0)
		return r;
	path = cache_path(req);
	if (!path)
		return -ENOMEM;
	cache = read_cache(path, req->pod_id);

	memset(&nc, 0, sizeof(nc));
	r = -ENOENT;
	if (cache && json_object_object_get_ex(cache, "config", &cached_conf)) {
		r = cni_conf_from_json(cached_conf, true, path, &nc, lerr, sizeof(lerr));
		if (r < 0)
			log_warn(NULL, "ignoring the configuration in the cni result cache", "path=%s error=\"%s\"", path,
				 lerr);
	}
	if (r < 0) {
		r = cni_conf_load_dir(cfg->cni_conf_dir, &nc, lerr, sizeof(lerr));
		if (r < 0) {
			/* No record of what ADD ran and nothing to run now: nothing to undo. */
			log_warn_errno(r, NULL, "no cni network configuration to delete with", "pod=%s error=\"%s\"",
				       req->pod_id, lerr);
			if (cache && unlink(path) < 0 && errno != ENOENT)
				log_warn_errno(errno, NULL, "cannot remove cni result cache", "path=%s", path);
			return 0;
		}
	}

	/* The parameters of the ADD where they were recorded. */
	cached_args = json_str(cache, "cniArgs");
	if (cached_args && strlen(cached_args) < sizeof(args) && !strpbrk(cached_args, "\n\r"))
		snprintf(args, sizeof(args), "%s", cached_args);
	else if ((r = cni_build_args(req, args, sizeof(args))) < 0) {
		errf(err, errlen, 0, "pod metadata not usable in CNI_ARGS");
		cni_conf_free(&nc);
		return r;
	}
	if (req->n_ports > 0) {
		ports = cni_port_mappings(req->ports, req->n_ports);
		if (!ports) {
			cni_conf_free(&nc);
			return -ENOMEM;
		}
	} else if (cache) {
		json_object *p;
		if (json_object_object_get_ex(cache, "portMappings", &p) && json_object_is_type(p, json_type_array))
			ports = json_object_get(p);
	}
	/* prevResult on DEL exists from spec 0.4.0 on. */
	if (cache && version_at_least(nc.version, 0, 4, 0)) {
		json_object *res;
		if (json_object_object_get_ex(cache, "result", &res) && json_object_is_type(res, json_type_object))
			prev = res;
	}

	c = (struct run_ctx){.cfg = cfg, .req = req, .nc = &nc, .cni_args = args, .port_mappings = ports};
	r = del_plugins(&c, nc.n_plugins - 1, prev, err, errlen);
	if (r == 0) {
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn_errno(errno, NULL, "cannot remove cni result cache", "path=%s", path);
		log_info(NULL, "cni network deleted", "network=%s pod=%s cached=%s", nc.name, req->pod_id,
			 cache ? "yes" : "no");
	}
	cni_conf_free(&nc);
	return r;
}
