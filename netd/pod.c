/* A pod's network from setup to teardown, and reconciliation; see pod.h. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "macro.h"
#include "netns.h"
#include "pod.h"
#include "util.h"

int netd_configure(struct netd *nd, const struct criod_config *cfg, char *err, size_t errlen)
{
	char e[256];

	memset(nd, 0, sizeof(*nd));
	nd->cfg = cfg;
	nd->cni = strcmp(cfg->net_backend, "cni") == 0;
	if (!name_is_valid(cfg->net_bridge, 15)) {
		return errf(err, errlen, -EINVAL,
			    "[netd] bridge: '%s' is not an interface name (1..15 of A-Z a-z 0-9 . _ -)",
			    cfg->net_bridge);
	}
	if (ipam_parse_subnet(cfg->net_subnet, AF_INET, &nd->sub4, e, sizeof(e)) < 0) {
		return errf(err, errlen, -EINVAL, "[netd] subnet: %s", e);
	}
	if (cfg->net_subnet6 && *cfg->net_subnet6) {
		if (ipam_parse_subnet(cfg->net_subnet6, AF_INET6, &nd->sub6, e, sizeof(e)) < 0) {
			return errf(err, errlen, -EINVAL, "[netd] subnet6: %s", e);
		}
		nd->dual = true;
		if (cfg->net_mtu < 1280) {
			return errf(err, errlen, -EINVAL,
				    "[netd] mtu: %llu is below 1280, the IPv6 minimum ([netd] subnet6 is set)",
				    (unsigned long long)cfg->net_mtu);
		}
	}
	if (!fw_table_name_is_valid(cfg->net_nft_table)) {
		return errf(err, errlen, -EINVAL,
			    "[netd] nft_table: '%s' is not a table name (1..%d of A-Z a-z 0-9 _, not starting with a digit)",
			    cfg->net_nft_table, FW_TABLE_MAX);
	}
	if (nd->cni && (!cfg->cni_conf_dir || cfg->cni_conf_dir[0] != '/')) {
		return errf(err, errlen, -EINVAL,
			    "[netd] cni_conf_dir: an absolute path is required with backend = cni");
	}
	if (nd->cni && (!cfg->cni_bin_dirs || !*cfg->cni_bin_dirs)) {
		return errf(err, errlen, -EINVAL,
			    "[netd] cni_bin_dirs: at least one directory is required with backend = cni");
	}
	nd->nl.bridge = cfg->net_bridge;
	nd->nl.mtu = (unsigned)cfg->net_mtu;
	nd->nl.sub4 = &nd->sub4;
	nd->nl.sub6 = nd->dual ? &nd->sub6 : NULL;
	nd->fw.table = cfg->net_nft_table;
	nd->fw.bridge = cfg->net_bridge;
	nd->fw.sub4 = &nd->sub4;
	nd->fw.sub6 = nd->dual ? &nd->sub6 : NULL;
	nd->fw.masquerade = cfg->net_masquerade;
	if (hostport_policy_init(&nd->hostports, cfg, err, errlen) < 0)
		return -EINVAL;
	nd->fw.local = nd->hostports.local;
	nd->nl.route_localnet = nd->hostports.local;
	return 0;
}

int netd_open(struct netd *nd)
{
	_cleanup_free_ char *ipam_root = NULL;
	int r;

	if (asprintf(&nd->root, "%s/netd", nd->cfg->state_dir) < 0 || asprintf(&nd->pods_dir, "%s/pods", nd->root) < 0 ||
	    asprintf(&nd->cni_dir, "%s/cni", nd->root) < 0 || asprintf(&ipam_root, "%s/ipam", nd->root) < 0 ||
	    asprintf(&nd->netns_dir, "%s/netns", nd->cfg->run_dir) < 0)
		return log_error_errno(ENOMEM, NULL, "out of memory");
	r = mkdir_p(nd->root, 0700);
	if (r >= 0)
		r = mkdir_p(nd->pods_dir, 0700);
	if (r >= 0)
		r = mkdir_p(nd->cni_dir, 0700);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot create the state directory", "path=%s", nd->root);
	r = ipam_open(&nd->ipam, ipam_root);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot open the address allocations", "path=%s", ipam_root);
	r = netns_prepare_dir(nd->netns_dir);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot prepare the namespace directory", "path=%s", nd->netns_dir);
	return 0;
}

void netd_close(struct netd *nd)
{
	if (nd->netns_dir)
		netns_release_dir(nd->netns_dir);
	ipam_close(&nd->ipam);
	free(nd->root);
	free(nd->pods_dir);
	free(nd->cni_dir);
	free(nd->netns_dir);
	nd->root = nd->pods_dir = nd->cni_dir = nd->netns_dir = NULL;
}

void netd_pod_plan(const struct netd *nd, struct pod_record *rec)
{
	rec->state = POD_SETTING_UP;
	snprintf(rec->backend, sizeof(rec->backend), "%s", nd->cni ? "cni" : "netlink");
	snprintf(rec->netns, sizeof(rec->netns), "%s/%s", nd->netns_dir, rec->pod_id);
	snprintf(rec->ifname, sizeof(rec->ifname), "eth0");
	if (!nd->cni) {
		snprintf(rec->host_veth, sizeof(rec->host_veth), "veth%.11s", rec->pod_id);
		snprintf(rec->bridge, sizeof(rec->bridge), "%s", nd->cfg->net_bridge);
		snprintf(rec->nft_table, sizeof(rec->nft_table), "%s", nd->cfg->net_nft_table);
		snprintf(rec->nft_comment, sizeof(rec->nft_comment), "pod:%s", rec->pod_id);
	}
}

/* Text from outside (plugin messages) made fit for a quoted log field. */
static void unquote(char *s)
{
	for (; s && *s; s++)
		if (*s == '"' || *s == '\\')
			*s = '\'';
}

static void cni_request(const struct netd *nd, const struct pod_record *rec, struct pod_net_request *pr)
{
	memset(pr, 0, sizeof(*pr));
	pr->pod_id = rec->pod_id;
	pr->pod_name = rec->pod_name;
	pr->pod_namespace = rec->pod_namespace;
	pr->pod_uid = rec->pod_uid;
	pr->netns_path = rec->netns;
	pr->ifname = rec->ifname;
	pr->cgroup_parent = rec->cgroup_parent;
	pr->ports = rec->ports;
	pr->n_ports = rec->n_ports;
	pr->state_dir = nd->cni_dir;
}

static int allocate(struct netd *nd, struct pod_record *rec, const struct ipam_subnet *s, const char *req, char *err,
		    size_t errlen)
{
	struct pod_ip *ip = &rec->ips[rec->n_ips];
	int r = ipam_allocate(&nd->ipam, s, rec->pod_id, ip->addr);

	if (r == -ENOSPC) {
		log_error_errno(r, req, "no free address", "subnet=%s pod=%s", s->cidr, rec->pod_id);
		return errf(err, errlen, r, "subnet %s has no free address", s->cidr);
	}
	if (r < 0) {
		log_error_errno(r, req, "cannot allocate an address", "subnet=%s pod=%s", s->cidr, rec->pod_id);
		return errf(err, errlen, r, "cannot allocate an address in %s: %s", s->cidr, strerror(-r));
	}
	ip->prefix = s->prefix;
	snprintf(ip->ipam_key, sizeof(ip->ipam_key), "%s", s->key);
	rec->n_ips++;
	log_info(req, "allocated address", "subnet=%s ip=%s pod=%s", s->cidr, ip->addr, rec->pod_id);
	return 0;
}

static void release_addresses(struct netd *nd, struct pod_record *rec, const char *req, int *first)
{
	for (size_t i = 0; i < rec->n_ips; i++) {
		const struct pod_ip *ip = &rec->ips[i];
		if (!ip->ipam_key[0])
			continue;
		int r = ipam_release(&nd->ipam, ip->ipam_key, ip->addr, rec->pod_id);
		if (r == -EPERM) {
			log_warn(req, "address belongs to another pod; leaving it", "subnet=%s ip=%s pod=%s", ip->ipam_key,
				 ip->addr, rec->pod_id);
			continue;
		}
		if (r < 0) {
			log_error_errno(r, req, "cannot release address", "subnet=%s ip=%s pod=%s", ip->ipam_key, ip->addr,
					rec->pod_id);
			if (*first == 0)
				*first = r;
			continue;
		}
		log_info(req, "released address", "subnet=%s ip=%s pod=%s", ip->ipam_key, ip->addr, rec->pod_id);
	}
}

static const char *ip_of_family(const struct pod_record *rec, int family)
{
	for (size_t i = 0; i < rec->n_ips; i++)
		if ((strchr(rec->ips[i].addr, ':') != NULL) == (family == AF_INET6))
			return rec->ips[i].addr;
	return NULL;
}

static void ips_text(const struct pod_record *rec, char *buf, size_t len)
{
	size_t j = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < rec->n_ips && j < len; i++)
		j += (size_t)snprintf(buf + j, len - j, "%s%s", i ? "," : "", rec->ips[i].addr);
}

int netd_pod_setup(struct netd *nd, struct pod_record *rec, const char *req, char *err, size_t errlen, bool *gone)
{
	char terr[512], ips[256];
	int r, first = 0;

	*gone = false;
	rec->state = POD_SETTING_UP;
	rec->created_ns = now_realtime_ns();
	rec->n_ips = 0;
	if (!nd->cni) {
		r = allocate(nd, rec, &nd->sub4, req, err, errlen);
		if (r >= 0 && nd->dual)
			r = allocate(nd, rec, &nd->sub6, req, err, errlen);
		if (r < 0) {
			release_addresses(nd, rec, req, &first);
			*gone = first == 0;
			return r;
		}
	}
	/* From here on the record names everything, so a crash is undone at start. */
	r = pod_record_save(nd->pods_dir, rec);
	if (r < 0) {
		log_error_errno(r, req, "cannot write the pod record", "dir=%s pod=%s", nd->pods_dir, rec->pod_id);
		errf(err, errlen, 0, "cannot write the pod record: %s", strerror(-r));
		release_addresses(nd, rec, req, &first);
		pod_record_remove(nd->pods_dir, rec->pod_id, pod_record_durable(rec));
		*gone = first == 0;
		return r;
	}
	ips_text(rec, ips, sizeof(ips));
	log_info(req, "recorded pod network", "pod=%s state=setting-up backend=%s netns=%s veth=%s ips=%s", rec->pod_id,
		 rec->backend, rec->netns, rec->host_veth[0] ? rec->host_veth : "-", ips[0] ? ips : "-");

	r = netns_create(rec->netns);
	if (r < 0) {
		log_error_errno(r, req, "cannot create network namespace", "netns=%s pod=%s", rec->netns, rec->pod_id);
		errf(err, errlen, 0, "cannot create the network namespace %s: %s", rec->netns, strerror(-r));
		goto rollback;
	}
	log_info(req, "created network namespace", "netns=%s pod=%s", rec->netns, rec->pod_id);

	if (!nd->cni) {
		r = netlink_ensure_host(&nd->nl, req, err, errlen);
		if (r >= 0)
			r = netlink_setup_pod(&nd->nl, rec, req, err, errlen);
		if (r >= 0 && rec->n_ports > 0) {
			r = fw_add_pod(&nd->fw, rec->pod_id, ip_of_family(rec, AF_INET), ip_of_family(rec, AF_INET6),
				       rec->ports, rec->n_ports, req, err, errlen);
			if (r < 0)
				log_error_errno(r, req, "cannot add the hostPort rules", "table=%s pod=%s error=\"%s\"",
						nd->fw.table, rec->pod_id, err);
		}
		if (r < 0)
			goto rollback;
	} else {
		struct pod_net_request pr;
		struct pod_net_result res;

		r = netlink_loopback_up(rec->netns, req);
		if (r < 0) {
			errf(err, errlen, 0, "cannot bring lo up in the pod namespace: %s", strerror(-r));
			goto rollback;
		}
		cni_request(nd, rec, &pr);
		r = cni_add(nd->cfg, &pr, &res, err, errlen);
		unquote(err);
		if (r < 0) {
			log_error_errno(r, req, "cni add failed", "pod=%s error=\"%s\"", rec->pod_id, err);
			goto rollback;
		}
		for (size_t i = 0; i < res.n_ips && i < NETD_MAX_IPS; i++) {
			snprintf(rec->ips[i].addr, sizeof(rec->ips[i].addr), "%s", res.ips[i]);
			rec->ips[i].prefix = 0;
			rec->ips[i].ipam_key[0] = '\0';
		}
		rec->n_ips = res.n_ips < NETD_MAX_IPS ? res.n_ips : NETD_MAX_IPS;
	}

	rec->state = POD_READY;
	r = pod_record_save(nd->pods_dir, rec);
	if (r < 0) {
		log_error_errno(r, req, "cannot write the pod record", "dir=%s pod=%s", nd->pods_dir, rec->pod_id);
		errf(err, errlen, 0, "cannot write the pod record: %s", strerror(-r));
		goto rollback;
	}
	ips_text(rec, ips, sizeof(ips));
	log_info(req, "pod network ready", "pod=%s netns=%s ips=%s ports=%zu", rec->pod_id, rec->netns,
		 ips[0] ? ips : "-", rec->n_ports);
	return 0;

rollback:
	log_warn(req, "rolling back pod network setup", "pod=%s", rec->pod_id);
	if (netd_pod_teardown(nd, rec, req, terr, sizeof(terr), NULL) == 0)
		*gone = true;
	else
		log_error(req, "rollback incomplete; the pod stays recorded for teardown", "pod=%s error=\"%s\"",
			  rec->pod_id, terr);
	return r;
}

/* The recorded namespace must be a file named after the pod. */
static bool netns_path_ok(const struct pod_record *rec)
{
	const char *slash = strrchr(rec->netns, '/');
	return slash && strcmp(slash + 1, rec->pod_id) == 0;
}

int netd_veth_reap(const char *pod_id, const char *host_veth, const char *req)
{
	struct pod_record rec = {0};
	char e[512] = "";
	snprintf(rec.pod_id, sizeof(rec.pod_id), "%s", pod_id);
	snprintf(rec.host_veth, sizeof(rec.host_veth), "%s", host_veth);
	int r = netlink_teardown_pod(&rec, req, e, sizeof(e));
	if (r < 0)
		log_error_errno(r, req, "cannot delete the veth of a torn-down pod", "dev=%s pod=%s error=\"%s\"",
				host_veth, pod_id, e);
	return r;
}

int netd_pod_teardown(struct netd *nd, struct pod_record *rec, const char *req, char *err, size_t errlen,
		      bool *veth_left)
{
	char e[512] = "";
	int r, first = 0;
	/* The namespace is netd's and there: removing it takes the pair along. */
	bool leave_veth = veth_left && strcmp(rec->backend, "netlink") == 0 && rec->host_veth[0] &&
			  netns_path_ok(rec) && netns_is_mounted(rec->netns);

	if (veth_left)
		*veth_left = false;
	if (err && errlen)
		err[0] = '\0';
	if (rec->state != POD_TEARING_DOWN) {
		rec->state = POD_TEARING_DOWN;
		r = pod_record_save(nd->pods_dir, rec);
		if (r < 0)
			log_warn_errno(r, req, "cannot mark the pod record tearing-down", "pod=%s", rec->pod_id);
	}
	if (strcmp(rec->backend, "netlink") == 0) {
		if ((rec->n_ports > 0 || rec->recovered) && rec->nft_table[0]) {
			r = fw_del_pod(rec->nft_table, rec->pod_id, req, e, sizeof(e));
			if (r < 0) {
				log_error_errno(r, req, "cannot delete the pod's nftables rules", "table=%s pod=%s error=\"%s\"",
						rec->nft_table, rec->pod_id, e);
				if (!first) {
					first = r;
					errf(err, errlen, 0, "%s", e);
				}
			}
		}
		r = leave_veth ? 0 : netlink_teardown_pod(rec, req, e, sizeof(e));
		if (r < 0 && !first) {
			first = r;
			errf(err, errlen, 0, "%s", e);
		}
	} else {
		struct pod_net_request pr;

		cni_request(nd, rec, &pr);
		r = cni_del(nd->cfg, &pr, e, sizeof(e));
		unquote(e);
		if (r < 0) {
			log_error_errno(r, req, "cni del failed", "pod=%s error=\"%s\"", rec->pod_id, e);
			if (!first) {
				first = r;
				errf(err, errlen, 0, "%s", e);
			}
		}
	}
	if (netns_path_ok(rec)) {
		bool existed = access(rec->netns, F_OK) == 0;
		r = netns_remove(rec->netns);
		if (r < 0) {
			log_error_errno(r, req, "cannot remove network namespace", "netns=%s pod=%s", rec->netns, rec->pod_id);
			if (!first) {
				first = r;
				errf(err, errlen, 0, "cannot remove %s: %s", rec->netns, strerror(-r));
			}
		} else if (existed) {
			log_info(req, "removed network namespace", "netns=%s pod=%s", rec->netns, rec->pod_id);
		}
		if (leave_veth && r < 0) {
			/* The namespace stays: delete the pair here after all. */
			r = netlink_teardown_pod(rec, req, e, sizeof(e));
			if (r < 0 && !first) {
				first = r;
				errf(err, errlen, 0, "%s", e);
			}
			leave_veth = false;
		}
	} else {
		log_warn(req, "recorded namespace path is not netd's; leaving it", "netns=%s pod=%s", rec->netns,
			 rec->pod_id);
	}
	release_addresses(nd, rec, req, &first);
	if (first < 0) {
		if (err && errlen && !err[0])
			errf(err, errlen, 0, "teardown incomplete: %s", strerror(-first));
		return first;
	}
	r = pod_record_remove(nd->pods_dir, rec->pod_id, pod_record_durable(rec));
	if (r < 0) {
		log_error_errno(r, req, "cannot remove the pod record", "pod=%s", rec->pod_id);
		return errf(err, errlen, r, "cannot remove the pod record: %s", strerror(-r));
	}
	if (leave_veth) {
		*veth_left = true;
		log_debug(req, "veth pair left to go with its namespace", "dev=%s pod=%s", rec->host_veth, rec->pod_id);
	}
	log_info(req, "pod network removed", "pod=%s", rec->pod_id);
	return 0;
}

/* ---- reconciliation at start ---- */

struct live {
	struct pod_record **v;
	size_t n, cap;
};

static const struct pod_record *live_find(const struct live *l, const char *pod_id)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i]->pod_id, pod_id) == 0)
			return l->v[i];
	return NULL;
}

static bool keep_live(const char *pod_id, void *ud) { return live_find(ud, pod_id) != NULL; }

static int live_add(struct live *l, struct pod_record *rec)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct pod_record **nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = rec;
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A record that cannot be read, rebuilt from what its file name (the pod
 * id) and netd's configuration name: the namespace, the veth, the table
 * and the addresses the allocations say the pod holds. Its ports are not
 * known, so its teardown deletes whatever rules name it. */
static int recover_record(struct netd *nd, const char *id, struct pod_record *rec)
{
	const struct ipam_subnet *subs[] = {&nd->sub4, nd->dual ? &nd->sub6 : NULL};

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->pod_id, sizeof(rec->pod_id), "%s", id);
	netd_pod_plan(nd, rec);
	rec->state = POD_TEARING_DOWN;
	rec->recovered = true;
	for (size_t i = 0; !nd->cni && i < ARRAY_SIZE(subs) && subs[i]; i++) {
		struct pod_ip *ip = &rec->ips[rec->n_ips];
		int r = ipam_find_owned(&nd->ipam, subs[i], id, ip->addr);
		if (r < 0)
			return log_error_errno(r, NULL, "cannot read the address allocations", "subnet=%s pod=%s",
					       subs[i]->cidr, id);
		if (r == 0)
			continue;
		ip->prefix = subs[i]->prefix;
		snprintf(ip->ipam_key, sizeof(ip->ipam_key), "%s", subs[i]->key);
		rec->n_ips++;
	}
	return 0;
}

/* One record file: keep it, or tear the pod down. */
static int reconcile_record(struct netd *nd, const char *name, struct live *live)
{
	_cleanup_free_ char *path = NULL;
	struct pod_record *rec;
	char id[65], err[512];
	int r;

	if (strlen(name) != 64 + 5 || !has_suffix(name, ".json"))
		return 0;
	memcpy(id, name, 64);
	id[64] = '\0';
	if (!id_is_valid(id))
		return 0;
	if (asprintf(&path, "%s/%s", nd->pods_dir, name) < 0)
		return -ENOMEM;
	rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	r = pod_record_load(path, rec, err, sizeof(err));
	if (r >= 0 && strcmp(rec->pod_id, id) != 0) {
		snprintf(err, sizeof(err), "pod_id does not match the file name");
		r = -EINVAL;
	}
	if (r < 0) {
		log_error_errno(r, NULL, "unreadable pod record; rebuilding it from the pod id", "path=%s error=\"%s\"", path,
				err);
		pod_record_free(rec);
		r = recover_record(nd, id, rec);
		if (r < 0) {
			pod_record_freep(&rec);
			return r;
		}
		if (netns_is_mounted(rec->netns)) {
			/* Its namespace is live: the address is not proven free. Kept
			 * until a teardown, which is all it accepts. */
			log_warn(NULL, "pod network of an unreadable record kept until its teardown", "pod=%s netns=%s ips=%zu",
				 rec->pod_id, rec->netns, rec->n_ips);
			return live_add(live, rec) < 0 ? (pod_record_freep(&rec), -ENOMEM) : 0;
		}
	}
	if (rec->state == POD_READY && netns_is_mounted(rec->netns))
		return live_add(live, rec) < 0 ? (pod_record_freep(&rec), -ENOMEM) : 0;

	if (rec->state == POD_READY)
		log_warn(NULL, "pod network namespace is gone; releasing the pod's network", "pod=%s netns=%s", rec->pod_id,
			 rec->netns);
	else
		log_warn(NULL, "cleaning up an interrupted pod network change", "pod=%s state=%s", rec->pod_id,
			 pod_state_name(rec->state));
	r = netd_pod_teardown(nd, rec, NULL, err, sizeof(err), NULL);
	if (r == 0) {
		pod_record_freep(&rec);
		return 0;
	}
	log_error_errno(r, NULL, "cleanup incomplete; the pod stays recorded", "pod=%s error=\"%s\"", rec->pod_id, err);
	return live_add(live, rec) < 0 ? (pod_record_freep(&rec), -ENOMEM) : 0;
}

static void sweep_netns_dir(struct netd *nd, struct live *live)
{
	DIR *d = opendir(nd->netns_dir);

	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		char path[PATH_MAX];
		if (!id_is_valid(de->d_name) || live_find(live, de->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", nd->netns_dir, de->d_name);
		int r = netns_remove(path);
		if (r < 0)
			log_warn_errno(r, NULL, "cannot remove orphaned network namespace", "netns=%s", path);
		else
			log_info(NULL, "removed orphaned network namespace", "netns=%s", path);
	}
	closedir(d);
}

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

int netd_reconcile(struct netd *nd, struct pod_record ***out, size_t *n_out)
{
	struct live live = { 0 };
	char err[1024];
	DIR *d;
	int r = 0;

	*out = NULL;
	*n_out = 0;
	d = opendir(nd->pods_dir);
	if (!d)
		return log_error_errno(errno, NULL, "cannot read the pod records", "dir=%s", nd->pods_dir);
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.' && has_suffix(de->d_name, ".tmp")) {
			/* An interrupted write_file_atomic: the record it replaced is intact. */
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				log_info(NULL, "removed interrupted record write", "file=%s", de->d_name);
			continue;
		}
		r = reconcile_record(nd, de->d_name, &live);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0)
		goto fail;

	r = ipam_sweep(&nd->ipam, keep_live, &live, NULL);
	if (r < 0)
		log_warn_errno(r, NULL, "address allocation sweep incomplete");
	/* The addresses of live pods stay taken, even if a file went missing. */
	for (size_t i = 0; i < live.n; i++) {
		const struct pod_record *rec = live.v[i];
		for (size_t k = 0; k < rec->n_ips; k++) {
			const struct pod_ip *ip = &rec->ips[k];
			bool created = false;
			if (!ip->ipam_key[0])
				continue;
			r = ipam_claim(&nd->ipam, ip->ipam_key, ip->addr, rec->pod_id, &created);
			if (r < 0)
				log_error_errno(r, NULL, "address of a live pod is allocated elsewhere", "subnet=%s ip=%s pod=%s",
						ip->ipam_key, ip->addr, rec->pod_id);
			else if (created)
				log_warn(NULL, "recreated a lost address allocation", "subnet=%s ip=%s pod=%s", ip->ipam_key,
					 ip->addr, rec->pod_id);
		}
	}
	r = 0;
	sweep_netns_dir(nd, &live);
	if (!nd->cni)
		netlink_sweep_veths(nd->cfg->net_bridge, keep_live, &live);

	if (!nd->cni) {
		r = fw_setup(&nd->fw, keep_live, &live, NULL, err, sizeof(err));
		if (r < 0) {
			log_error_errno(r, NULL, "cannot set up the nftables table", "table=%s error=\"%s\"", nd->fw.table, err);
			goto fail;
		}
		/* Ready pods whose rules went missing (someone flushed them) get
		 * them back: one listing of the table for all of them. */
		_cleanup_free_ char(*with_rules)[65] = NULL;
		size_t n_with_rules = 0;
		int lr = fw_pods_with_rules(nd->fw.table, &with_rules, &n_with_rules);
		if (lr < 0)
			log_warn_errno(lr, NULL, "cannot list the pods' hostPort rules; not restoring any", "table=%s",
				       nd->fw.table);
		for (size_t i = 0; lr >= 0 && i < live.n; i++) {
			struct pod_record *rec = live.v[i];
			if (rec->state != POD_READY || rec->n_ports == 0 || strcmp(rec->nft_table, nd->fw.table) != 0 ||
			    bsearch(rec->pod_id, with_rules, n_with_rules, sizeof(with_rules[0]), cmp_id))
				continue;
			log_warn(NULL, "restoring missing hostPort rules", "pod=%s table=%s", rec->pod_id, rec->nft_table);
			if (fw_add_pod(&nd->fw, rec->pod_id, ip_of_family(rec, AF_INET), ip_of_family(rec, AF_INET6),
				       rec->ports, rec->n_ports, NULL, err, sizeof(err)) < 0)
				log_error(NULL, "cannot restore hostPort rules", "pod=%s error=\"%s\"", rec->pod_id, err);
		}
		r = netlink_ensure_host(&nd->nl, NULL, err, sizeof(err));
		if (r < 0) {
			log_error_errno(r, NULL, "cannot set up the host network", "bridge=%s error=\"%s\"", nd->nl.bridge, err);
			goto fail;
		}
	}
	log_info(NULL, "reconciled pod networks", "pods=%zu", live.n);
	*out = live.v;
	*n_out = live.n;
	return 0;
fail:
	for (size_t i = 0; i < live.n; i++)
		pod_record_freep(&live.v[i]);
	free(live.v);
	return r < 0 ? r : -EIO;
}
