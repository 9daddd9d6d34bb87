/* netd's nftables table; see nft.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <nftables/libnftables.h>

#include "log.h"
#include "macro.h"
#include "nft.h"
#include "util.h"

#define COMMENT_POD "pod:"
#define COMMENT_NETD "netd:"

/* libnftables contexts are not shared, but the library keeps some global
 * state and our list-then-delete sequences must not interleave. */
static pthread_mutex_t fw_lock = PTHREAD_MUTEX_INITIALIZER;

struct fw_rule {
	char chain[64];
	int64_t handle;
	char comment[136];
};

bool fw_table_name_is_valid(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, FW_TABLE_MAX + 1);
	if (n == 0 || n > FW_TABLE_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* nft's message, on one line. */
static void set_nft_error(char *err, size_t errlen, const char *what, const char *msg)
{
	size_t j;

	if (!err || !errlen)
		return;
	j = (size_t)snprintf(err, errlen, "%s: ", what);
	for (const char *p = msg ? msg : ""; *p && j + 1 < errlen; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\n') {
			if (p[1] && j + 3 < errlen) {
				err[j++] = ';';
				err[j++] = ' ';
			}
			continue;
		}
		err[j++] = (c < 0x20 || c == 0x7f) ? ' ' : c == '"' ? '\'' : (char)c; /* fits in a quoted log field */
	}
	if (j >= errlen)
		j = errlen - 1;
	err[j] = '\0';
	while (j > 0 && (err[j - 1] == ' ' || err[j - 1] == ';'))
		err[--j] = '\0';
}

static int errno_from_nft(const char *msg)
{
	if (!msg)
		return -EIO;
	if (strstr(msg, "No such file or directory"))
		return -ENOENT;
	if (strstr(msg, "Operation not permitted"))
		return -EPERM;
	if (strstr(msg, "File exists"))
		return -EEXIST;
	return -EIO;
}

/* Run one nft command buffer (one transaction). With out, the output is
 * returned as JSON with handles. */
static int nft_run(const char *cmds, char **out, const char *what, char *err, size_t errlen)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	if (nft_ctx_buffer_output(ctx) < 0 || nft_ctx_buffer_error(ctx) < 0) {
		nft_ctx_free(ctx);
		return -ENOMEM;
	}
	if (out)
		nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE);
	if (nft_run_cmd_from_buffer(ctx, cmds) != 0) {
		const char *msg = nft_ctx_get_error_buffer(ctx);
		r = errno_from_nft(msg);
		set_nft_error(err, errlen, what, msg);
	} else if (out) {
		const char *o = nft_ctx_get_output_buffer(ctx);
		*out = strdup(o ? o : "");
		if (!*out)
			r = -ENOMEM;
	}
	nft_ctx_free(ctx);
	/* A context's caches (the whole ruleset, parser state) take about a
	 * MiB of heap that glibc would otherwise keep after the free. */
	heap_trim();
	return r;
}

/* Every rule of table with its chain, handle and comment. -ENOENT if the
 * table does not exist. */
static int list_rules(const char *table, struct fw_rule **out, size_t *n_out, char *err, size_t errlen)
{
	_cleanup_free_ char *cmd = NULL, *json = NULL;
	json_object *root = NULL, *arr;
	struct fw_rule *rules = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	*n_out = 0;
	if (asprintf(&cmd, "list table inet %s", table) < 0)
		return -ENOMEM;
	r = nft_run(cmd, &json, "cannot list the nftables table", err, errlen);
	if (r < 0)
		return r;
	root = json_tokener_parse(json);
	if (!root || !json_object_object_get_ex(root, "nftables", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		json_object_put(root);
		snprintf(err, errlen, "cannot parse the nftables listing");
		return -EPROTO;
	}
	size_t len = json_object_array_length(arr);
	rules = calloc(len ? len : 1, sizeof(*rules));
	if (!rules) {
		json_object_put(root);
		return -ENOMEM;
	}
	for (size_t i = 0; i < len; i++) {
		json_object *item = json_object_array_get_idx(arr, i), *rule, *v;
		if (!json_object_object_get_ex(item, "rule", &rule))
			continue;
		struct fw_rule *fr = &rules[n];
		if (!json_object_object_get_ex(rule, "table", &v) || strcmp(json_object_get_string(v), table) != 0)
			continue;
		if (!json_object_object_get_ex(rule, "family", &v) || strcmp(json_object_get_string(v), "inet") != 0)
			continue;
		if (!json_object_object_get_ex(rule, "chain", &v))
			continue;
		snprintf(fr->chain, sizeof(fr->chain), "%s", json_object_get_string(v));
		if (!json_object_object_get_ex(rule, "handle", &v))
			continue;
		fr->handle = json_object_get_int64(v);
		fr->comment[0] = '\0';
		if (json_object_object_get_ex(rule, "comment", &v))
			snprintf(fr->comment, sizeof(fr->comment), "%s", json_object_get_string(v));
		if (fr->handle <= 0 || !fw_table_name_is_valid(fr->chain))
			continue;
		n++;
	}
	json_object_put(root);
	*out = rules;
	*n_out = n;
	return 0;
}

static bool comment_is_pod(const char *comment, const char **pod_id)
{
	if (strncmp(comment, COMMENT_POD, strlen(COMMENT_POD)) != 0 || !id_is_valid(comment + strlen(COMMENT_POD)))
		return false;
	*pod_id = comment + strlen(COMMENT_POD);
	return true;
}

static void put_global_rules(FILE *f, const struct fw_config *c)
{
	const char *t = c->table;
	const char *s4 = c->sub4->cidr;

	fprintf(f, "add rule inet %s prerouting fib daddr type local jump hostports comment \"netd:hostports\"\n", t);
	if (c->local) {
		/* [policy] host_port_local: the host's own traffic, 127.0.0.1 too. */
		fprintf(f,
			"add rule inet %s output meta nfproto ipv4 fib daddr type local jump hostports "
			"comment \"netd:hostports\"\n",
			t);
		/* IPv6 has no route_localnet: ::1 cannot be forwarded to a pod. */
		fprintf(f,
			"add rule inet %s output meta nfproto ipv6 ip6 daddr != ::1 fib daddr type local jump hostports "
			"comment \"netd:hostports\"\n",
			t);
		/* Host -> 127.0.0.1:hostPort, DNATed to a pod: give it a source the pod can answer. */
		fprintf(f,
			"add rule inet %s postrouting ip saddr 127.0.0.0/8 ip daddr %s masquerade "
			"comment \"netd:localhost\"\n",
			t, s4);
	}
	if (c->masquerade) {
		fprintf(f,
			"add rule inet %s postrouting ip saddr %s ip daddr != %s masquerade comment \"netd:masquerade\"\n",
			t, s4, s4);
		if (c->sub6)
			fprintf(f,
				"add rule inet %s postrouting ip6 saddr %s ip6 daddr != %s masquerade "
				"comment \"netd:masquerade\"\n",
				t, c->sub6->cidr, c->sub6->cidr);
	}
	/* route_localnet on the bridge would let pods reach the host's
	 * 127.0.0.0/8 services; only answers to our own connections pass.
	 * Kept with host_port_local = false too (route_localnet is off then). */
	fprintf(f,
		"add rule inet %s input iifname \"%s\" ip daddr 127.0.0.0/8 ct state != { established, related } drop "
		"comment \"netd:localnet\"\n",
		t, c->bridge);
}

int fw_setup(const struct fw_config *c, bool (*keep)(const char *pod_id, void *ud), void *ud, const char *req,
	     char *err, size_t errlen)
{
	_cleanup_free_ char *base = NULL, *tx = NULL;
	_cleanup_free_ struct fw_rule *rules = NULL;
	size_t n = 0, txlen = 0, n_old = 0, n_orphans = 0;
	const char *t = c->table;
	FILE *f;
	int r;

	if (asprintf(&base,
		     "add table inet %s\n"
		     "add chain inet %s hostports\n"
		     "add chain inet %s prerouting { type nat hook prerouting priority -100; policy accept; }\n"
		     "add chain inet %s output { type nat hook output priority -100; policy accept; }\n"
		     "add chain inet %s postrouting { type nat hook postrouting priority 100; policy accept; }\n"
		     "add chain inet %s input { type filter hook input priority 0; policy accept; }\n",
		     t, t, t, t, t, t) < 0)
		return -ENOMEM;
	pthread_mutex_lock(&fw_lock);
	r = nft_run(base, NULL, "cannot create the nftables table", err, errlen);
	if (r >= 0)
		r = list_rules(t, &rules, &n, err, errlen);
	if (r < 0)
		goto out;

	f = open_memstream(&tx, &txlen);
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *pod;
		if (strncmp(rules[i].comment, COMMENT_NETD, strlen(COMMENT_NETD)) == 0) {
			n_old++;
		} else if (comment_is_pod(rules[i].comment, &pod)) {
			if (keep(pod, ud))
				continue;
			n_orphans++;
			log_info(req, "deleting orphaned nftables rule", "table=%s chain=%s handle=%" PRId64 " pod=%s", t,
				 rules[i].chain, rules[i].handle, pod);
		} else {
			continue; /* not ours */
		}
		fprintf(f, "delete rule inet %s %s handle %" PRId64 "\n", t, rules[i].chain, rules[i].handle);
	}
	put_global_rules(f, c);
	if (fclose(f) != 0) {
		r = -ENOMEM;
		goto out;
	}
	r = nft_run(tx, NULL, "cannot write the nftables rules", err, errlen);
	if (r >= 0)
		log_info(req, "nftables table ready", "table=%s replaced_global_rules=%zu deleted_orphan_rules=%zu", t,
			 n_old, n_orphans);
out:
	pthread_mutex_unlock(&fw_lock);
	return r;
}

static const char *proto_name(int p) { return p == IPPROTO_UDP ? "udp" : "tcp"; }

static int host_ip_family(const char *ip)
{
	unsigned char a[16];

	if (!ip || !*ip)
		return 0;
	if (inet_pton(AF_INET, ip, a) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, ip, a) == 1)
		return AF_INET6;
	return -1;
}

/* Append line unless the buffer already holds it. */
static void put_unique(FILE *f, char **buf, const char *line, size_t *count)
{
	fflush(f);
	if (*buf && strstr(*buf, line))
		return;
	fputs(line, f);
	(*count)++;
}

char *fw_pod_rules(const struct fw_config *c, const char *pod_id, const char *ip4, const char *ip6,
		   const struct port_mapping *ports, size_t n_ports, size_t *n_rules)
{
	char *buf = NULL;
	size_t len = 0, count = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *t = c->table;

	if (!f)
		return NULL;
	for (size_t i = 0; i < n_ports; i++) {
		const struct port_mapping *m = &ports[i];
		const char *pr = proto_name(m->protocol);
		int fam = host_ip_family(m->host_ip);
		bool any4 = strcmp(m->host_ip, "0.0.0.0") == 0, any6 = strcmp(m->host_ip, "::") == 0;
		char line[512], match[128];

		if (fam < 0 || !m->host_port)
			continue;
		if (ip4 && fam != AF_INET6) {
			if (fam == AF_INET && !any4)
				snprintf(match, sizeof(match), "ip daddr %s", m->host_ip);
			else
				snprintf(match, sizeof(match), "meta nfproto ipv4");
			snprintf(line, sizeof(line),
				 "add rule inet %s hostports %s %s dport %u dnat ip to %s:%u comment \"pod:%s\"\n", t, match,
				 pr, m->host_port, ip4, m->container_port, pod_id);
			put_unique(f, &buf, line, &count);
			/* Another pod (or this one) reaching the hostPort through the
			 * bridge: the answer must come back through the host. */
			snprintf(line, sizeof(line),
				 "add rule inet %s postrouting ip saddr %s ip daddr %s %s dport %u ct status dnat "
				 "ct original proto-dst %u masquerade comment \"pod:%s\"\n",
				 t, c->sub4->cidr, ip4, pr, m->container_port, m->host_port, pod_id);
			put_unique(f, &buf, line, &count);
		}
		if (ip6 && c->sub6 && fam != AF_INET) {
			if (fam == AF_INET6 && !any6)
				snprintf(match, sizeof(match), "ip6 daddr %s", m->host_ip);
			else
				snprintf(match, sizeof(match), "meta nfproto ipv6");
			snprintf(line, sizeof(line),
				 "add rule inet %s hostports %s %s dport %u dnat ip6 to [%s]:%u comment \"pod:%s\"\n", t,
				 match, pr, m->host_port, ip6, m->container_port, pod_id);
			put_unique(f, &buf, line, &count);
			snprintf(line, sizeof(line),
				 "add rule inet %s postrouting ip6 saddr %s ip6 daddr %s %s dport %u ct status dnat "
				 "ct original proto-dst %u masquerade comment \"pod:%s\"\n",
				 t, c->sub6->cidr, ip6, pr, m->container_port, m->host_port, pod_id);
			put_unique(f, &buf, line, &count);
		}
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*n_rules = count;
	return buf;
}

int fw_add_pod(const struct fw_config *c, const char *pod_id, const char *ip4, const char *ip6,
	       const struct port_mapping *ports, size_t n_ports, const char *req, char *err, size_t errlen)
{
	size_t n_rules = 0;
	_cleanup_free_ char *cmds = fw_pod_rules(c, pod_id, ip4, ip6, ports, n_ports, &n_rules);
	int r;

	if (!cmds)
		return -ENOMEM;
	if (n_rules == 0)
		return 0;
	pthread_mutex_lock(&fw_lock);
	r = nft_run(cmds, NULL, "cannot add the hostPort rules", err, errlen);
	pthread_mutex_unlock(&fw_lock);
	if (r < 0)
		return r;
	log_info(req, "added nftables rules", "table=%s pod=%s rules=%zu comment=\"pod:%s\"", c->table, pod_id, n_rules,
		 pod_id);
	return 0;
}

int fw_del_pod(const char *table, const char *pod_id, const char *req, char *err, size_t errlen)
{
	_cleanup_free_ struct fw_rule *rules = NULL;
	_cleanup_free_ char *tx = NULL;
	size_t n = 0, txlen = 0, count = 0;
	FILE *f;
	int r;

	if (!fw_table_name_is_valid(table) || !id_is_valid(pod_id))
		return -EINVAL;
	pthread_mutex_lock(&fw_lock);
	r = list_rules(table, &rules, &n, err, errlen);
	if (r == -ENOENT) {
		r = 0; /* no table, no rules */
		if (err && errlen)
			err[0] = '\0';
		goto out;
	}
	if (r < 0)
		goto out;
	f = open_memstream(&tx, &txlen);
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *pod;
		if (comment_is_pod(rules[i].comment, &pod) && strcmp(pod, pod_id) == 0) {
			fprintf(f, "delete rule inet %s %s handle %" PRId64 "\n", table, rules[i].chain, rules[i].handle);
			count++;
		}
	}
	if (fclose(f) != 0) {
		r = -ENOMEM;
		goto out;
	}
	if (count > 0) {
		r = nft_run(tx, NULL, "cannot delete the pod's nftables rules", err, errlen);
		if (r >= 0)
			log_info(req, "deleted nftables rules", "table=%s pod=%s rules=%zu", table, pod_id, count);
	}
out:
	pthread_mutex_unlock(&fw_lock);
	return r;
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

int fw_pods_with_rules(const char *table, char (**pods)[65], size_t *n_pods)
{
	_cleanup_free_ struct fw_rule *rules = NULL;
	size_t n = 0, k = 0;
	char err[256];
	int r;

	*pods = NULL;
	*n_pods = 0;
	pthread_mutex_lock(&fw_lock);
	r = list_rules(table, &rules, &n, err, sizeof(err));
	pthread_mutex_unlock(&fw_lock);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	char (*v)[65] = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const char *pod;
		if (comment_is_pod(rules[i].comment, &pod))
			snprintf(v[k++], sizeof(v[0]), "%s", pod);
	}
	qsort(v, k, sizeof(v[0]), cmp_id);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (u == 0 || strcmp(v[u - 1], v[i]) != 0)
			memmove(v[u++], v[i], sizeof(v[0]));
	*pods = v;
	*n_pods = u;
	return 0;
}
