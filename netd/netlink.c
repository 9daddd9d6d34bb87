/* The built-in netlink backend; see netlink.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "netlink.h"
#include "netns.h"
#include "rt.h"
#include "util.h"

/* Bridge creation and its addresses are shared by every pod. */
static pthread_mutex_t host_lock = PTHREAD_MUTEX_INITIALIZER;

_printf_(3, 4) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void netlink_veth_alias(const char *pod_id, char *buf, size_t len) { snprintf(buf, len, "criod-netd pod:%s", pod_id); }

static int ensure_sysctl(const char *key, const char *value, const char *req)
{
	bool changed = false;
	int r = sysctl_ensure(key, value, &changed);

	if (r < 0)
		return log_error_errno(r, req, "cannot set sysctl", "key=%s value=%s", key, value);
	if (changed)
		log_info(req, "set sysctl", "key=%s value=%s", key, value);
	return 0;
}

static int gateway_add(struct rt *rt, int ifindex, const struct ipam_subnet *s, const char *bridge, const char *req)
{
	unsigned char gw[16];
	char text[IPAM_ADDR_MAX];
	int r;

	ipam_addr_at(s, 1, gw);
	ipam_gateway(s, text, sizeof(text));
	r = rt_addr_add(rt, ifindex, s->family, gw, s->prefix, s->family == AF_INET6);
	if (r == -EEXIST)
		return 0;
	if (r < 0)
		return log_error_errno(r, req, "cannot add the gateway address", "dev=%s addr=%s/%u", bridge, text,
				       s->prefix);
	log_info(req, "added gateway address", "dev=%s addr=%s/%u", bridge, text, s->prefix);
	return 0;
}

static int ensure_host_locked(const struct netlink_net *n, const char *req, char *err, size_t errlen)
{
	struct rt rt;
	struct rt_link l;
	char key[128];
	int r;

	r = rt_open(&rt);
	if (r < 0) {
		set_err(err, errlen, "cannot open rtnetlink: %s", strerror(-r));
		return r;
	}
	r = rt_link_get(&rt, n->bridge, &l);
	if (r == -ENODEV) {
		unsigned char mac[6];
		if (getrandom(mac, sizeof(mac), 0) != sizeof(mac)) {
			r = -EIO;
			goto out;
		}
		mac[0] = (unsigned char)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
		r = rt_bridge_add(&rt, n->bridge, mac, n->mtu);
		if (r < 0 && r != -EEXIST) {
			log_error_errno(r, req, "cannot create the bridge", "dev=%s", n->bridge);
			set_err(err, errlen, "cannot create bridge %s: %s", n->bridge, strerror(-r));
			goto out;
		}
		if (r == 0)
			log_info(req, "created bridge", "dev=%s mtu=%u mac=%02x:%02x:%02x:%02x:%02x:%02x", n->bridge,
				 n->mtu, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
		r = rt_link_get(&rt, n->bridge, &l);
	}
	if (r < 0) {
		set_err(err, errlen, "cannot look up bridge %s: %s", n->bridge, strerror(-r));
		goto out;
	}
	if (strcmp(l.kind, "bridge") != 0) {
		r = -EEXIST;
		set_err(err, errlen, "[netd] bridge %s exists and is not a bridge (kind '%s')", n->bridge, l.kind);
		log_error(req, "the configured bridge is not a bridge", "dev=%s kind=\"%s\"", n->bridge, l.kind);
		goto out;
	}
	r = gateway_add(&rt, l.ifindex, n->sub4, n->bridge, req);
	if (r >= 0 && n->sub6)
		r = gateway_add(&rt, l.ifindex, n->sub6, n->bridge, req);
	if (r < 0) {
		set_err(err, errlen, "cannot add the gateway address to %s: %s", n->bridge, strerror(-r));
		goto out;
	}
	if (!(l.flags & IFF_UP)) {
		r = rt_link_set(&rt, l.ifindex, true, NULL);
		if (r < 0) {
			log_error_errno(r, req, "cannot bring the bridge up", "dev=%s", n->bridge);
			set_err(err, errlen, "cannot bring %s up: %s", n->bridge, strerror(-r));
			goto out;
		}
		log_info(req, "link up", "dev=%s", n->bridge);
	}
	snprintf(key, sizeof(key), "net/ipv4/conf/%s/route_localnet", n->bridge);
	r = ensure_sysctl("net/ipv4/ip_forward", "1", req);
	if (r >= 0)
		r = ensure_sysctl(key, n->route_localnet ? "1" : "0", req);
	if (r >= 0 && n->sub6)
		r = ensure_sysctl("net/ipv6/conf/all/forwarding", "1", req);
	if (r < 0)
		set_err(err, errlen, "cannot set the forwarding sysctls: %s", strerror(-r));
out:
	rt_close(&rt);
	return r;
}

int netlink_ensure_host(const struct netlink_net *n, const char *req, char *err, size_t errlen)
{
	int r;

	pthread_mutex_lock(&host_lock);
	r = ensure_host_locked(n, req, err, errlen);
	pthread_mutex_unlock(&host_lock);
	return r;
}

/* ---- inside the pod's namespace ---- */

struct pod_ctx {
	const struct netlink_net *n;
	const struct pod_record *rec;
	const char *req;
	char *err;
	size_t errlen;
};

static int link_up(struct rt *rt, const char *name, const char *req, const char *pod, int *ifindex)
{
	struct rt_link l;
	int r = rt_link_get(rt, name, &l);

	if (r >= 0)
		r = rt_link_set(rt, l.ifindex, true, NULL);
	if (r < 0)
		return log_error_errno(r, req, "cannot bring link up", "dev=%s pod=%s", name, pod);
	if (ifindex)
		*ifindex = l.ifindex;
	return 0;
}

static int lo_up_in_ns(void *arg)
{
	const char *req = arg;
	struct rt rt;
	int r = rt_open(&rt);

	if (r < 0)
		return r;
	r = link_up(&rt, "lo", req, "", NULL);
	rt_close(&rt);
	return r;
}

int netlink_loopback_up(const char *netns, const char *req)
{
	int r = netns_run(netns, lo_up_in_ns, (void *)req);

	if (r < 0)
		return log_error_errno(r, req, "cannot bring loopback up", "netns=%s", netns);
	log_info(req, "link up", "dev=lo netns=%s", netns);
	return 0;
}

static const struct ipam_subnet *subnet_for(const struct netlink_net *n, int family)
{
	return family == AF_INET ? n->sub4 : n->sub6;
}

static int pod_side(void *arg)
{
	struct pod_ctx *c = arg;
	const struct pod_record *rec = c->rec;
	const char *req = c->req, *id = rec->pod_id;
	bool has6 = false;
	struct rt rt;
	int ifindex, r;
	char key[128];

	for (size_t i = 0; i < rec->n_ips; i++)
		if (strchr(rec->ips[i].addr, ':'))
			has6 = true;
	r = rt_open(&rt);
	if (r < 0) {
		set_err(c->err, c->errlen, "cannot open rtnetlink in the pod namespace: %s", strerror(-r));
		return r;
	}
	r = link_up(&rt, "lo", req, id, NULL);
	if (r < 0) {
		set_err(c->err, c->errlen, "cannot bring lo up: %s", strerror(-r));
		goto out;
	}
	if (has6) {
		/* No duplicate address detection: the address is ours alone, and
		 * DAD would hold the pod's IPv6 back for a second or more. */
		snprintf(key, sizeof(key), "net/ipv6/conf/%s/accept_dad", rec->ifname);
		r = ensure_sysctl(key, "0", req);
		if (r < 0) {
			set_err(c->err, c->errlen, "cannot disable DAD on %s: %s", rec->ifname, strerror(-r));
			goto out;
		}
	}
	r = link_up(&rt, rec->ifname, req, id, &ifindex);
	if (r < 0) {
		set_err(c->err, c->errlen, "cannot bring %s up: %s", rec->ifname, strerror(-r));
		goto out;
	}
	log_info(req, "link up", "dev=%s pod=%s", rec->ifname, id);
	for (size_t i = 0; i < rec->n_ips; i++) {
		const struct pod_ip *ip = &rec->ips[i];
		int fam = strchr(ip->addr, ':') ? AF_INET6 : AF_INET;
		unsigned char a[16];
		if (inet_pton(fam, ip->addr, a) != 1) {
			r = -EINVAL;
			set_err(c->err, c->errlen, "bad address %s", ip->addr);
			goto out;
		}
		r = rt_addr_add(&rt, ifindex, fam, a, ip->prefix, fam == AF_INET6);
		if (r < 0) {
			log_error_errno(r, req, "cannot add address", "dev=%s addr=%s/%u pod=%s", rec->ifname, ip->addr,
					ip->prefix, id);
			set_err(c->err, c->errlen, "cannot add %s/%u to %s: %s", ip->addr, ip->prefix, rec->ifname,
				strerror(-r));
			goto out;
		}
		log_info(req, "added address", "dev=%s addr=%s/%u pod=%s", rec->ifname, ip->addr, ip->prefix, id);
	}
	for (int k = 0; k < 2; k++) {
		int fam = k == 0 ? AF_INET : AF_INET6;
		const struct ipam_subnet *s = subnet_for(c->n, fam);
		unsigned char gw[16];
		char text[IPAM_ADDR_MAX];
		if (!s || (fam == AF_INET6 && !has6))
			continue;
		ipam_addr_at(s, 1, gw);
		ipam_gateway(s, text, sizeof(text));
		r = rt_route_add_default(&rt, fam, gw, ifindex);
		if (r < 0) {
			log_error_errno(r, req, "cannot add default route", "dev=%s via=%s pod=%s", rec->ifname, text, id);
			set_err(c->err, c->errlen, "cannot add the default route via %s: %s", text, strerror(-r));
			goto out;
		}
		log_info(req, "added default route", "dev=%s via=%s pod=%s", rec->ifname, text, id);
	}
	r = 0;
out:
	rt_close(&rt);
	return r;
}

int netlink_setup_pod(const struct netlink_net *n, const struct pod_record *rec, const char *req, char *err,
		      size_t errlen)
{
	_cleanup_close_ int nsfd = -1;
	struct pod_ctx c = { .n = n, .rec = rec, .req = req, .err = err, .errlen = errlen };
	struct rt rt;
	struct rt_link br, veth;
	char alias[128];
	int r;

	r = rt_open(&rt);
	if (r < 0) {
		set_err(err, errlen, "cannot open rtnetlink: %s", strerror(-r));
		return r;
	}
	r = rt_link_get(&rt, n->bridge, &br);
	if (r < 0) {
		set_err(err, errlen, "cannot look up bridge %s: %s", n->bridge, strerror(-r));
		goto out;
	}
	nsfd = open(rec->netns, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (nsfd < 0) {
		r = -errno;
		set_err(err, errlen, "cannot open %s: %s", rec->netns, strerror(-r));
		goto out;
	}
	r = rt_veth_add(&rt, rec->host_veth, n->mtu, br.ifindex, rec->ifname, nsfd, n->mtu);
	if (r < 0) {
		log_error_errno(r, req, "cannot create veth pair", "dev=%s peer=%s netns=%s pod=%s", rec->host_veth,
				rec->ifname, rec->netns, rec->pod_id);
		if (r == -EEXIST)
			set_err(err, errlen, "a link named %s already exists on the host", rec->host_veth);
		else
			set_err(err, errlen, "cannot create veth pair %s/%s: %s", rec->host_veth, rec->ifname,
				strerror(-r));
		goto out;
	}
	log_info(req, "created veth pair", "dev=%s peer=%s netns=%s master=%s mtu=%u pod=%s", rec->host_veth,
		 rec->ifname, rec->netns, n->bridge, n->mtu, rec->pod_id);
	netlink_veth_alias(rec->pod_id, alias, sizeof(alias));
	r = rt_link_get(&rt, rec->host_veth, &veth);
	if (r >= 0)
		r = rt_link_set(&rt, veth.ifindex, true, alias);
	if (r < 0) {
		log_error_errno(r, req, "cannot bring link up", "dev=%s pod=%s", rec->host_veth, rec->pod_id);
		set_err(err, errlen, "cannot bring %s up: %s", rec->host_veth, strerror(-r));
		goto out;
	}
	log_info(req, "link up", "dev=%s pod=%s", rec->host_veth, rec->pod_id);
	/* Hairpin: a pod reaching itself through a hostPort comes back on its own port. */
	r = rt_bridge_port_hairpin(&rt, veth.ifindex, true);
	if (r < 0)
		log_warn_errno(r, req, "cannot turn hairpin mode on", "dev=%s pod=%s", rec->host_veth, rec->pod_id);
	r = netns_run(rec->netns, pod_side, &c);
	if (r < 0 && err && !err[0])
		set_err(err, errlen, "cannot configure the pod namespace: %s", strerror(-r));
out:
	rt_close(&rt);
	return r;
}

int netlink_teardown_pod(const struct pod_record *rec, const char *req, char *err, size_t errlen)
{
	struct rt rt;
	struct rt_link l;
	char alias[128];
	int r;

	if (!rec->host_veth[0])
		return 0;
	r = rt_open(&rt);
	if (r < 0) {
		set_err(err, errlen, "cannot open rtnetlink: %s", strerror(-r));
		return r;
	}
	r = rt_link_get(&rt, rec->host_veth, &l);
	if (r == -ENODEV) {
		r = 0;
		goto out;
	}
	if (r < 0) {
		set_err(err, errlen, "cannot look up %s: %s", rec->host_veth, strerror(-r));
		goto out;
	}
	netlink_veth_alias(rec->pod_id, alias, sizeof(alias));
	/* A crash between creating the pair and naming it leaves no alias. */
	if (strcmp(l.kind, "veth") != 0 || (l.alias[0] && strcmp(l.alias, alias) != 0)) {
		log_warn(req, "leaving a link that is not this pod's", "dev=%s kind=\"%s\" alias=\"%s\" pod=%s", rec->host_veth,
			 l.kind, l.alias, rec->pod_id);
		r = 0;
		goto out;
	}
	r = rt_link_del(&rt, l.ifindex);
	if (r == -ENODEV)
		r = 0;
	if (r < 0) {
		log_error_errno(r, req, "cannot delete veth pair", "dev=%s pod=%s", rec->host_veth, rec->pod_id);
		set_err(err, errlen, "cannot delete %s: %s", rec->host_veth, strerror(-r));
		goto out;
	}
	log_info(req, "deleted veth pair", "dev=%s pod=%s", rec->host_veth, rec->pod_id);
out:
	rt_close(&rt);
	return r;
}

struct veth_sweep {
	bool (*keep)(const char *pod_id, void *ud);
	void *ud;
	int bridge;
	int found[64];
	size_t n;
};

static void veth_sweep_cb(const struct rt_link *l, void *arg)
{
	struct veth_sweep *vs = arg;
	char prefix[64];
	netlink_veth_alias("", prefix, sizeof(prefix));
	/* Ours (the alias) and on our bridge: another netd's bridge is not. */
	if (strcmp(l->kind, "veth") != 0 || l->master != vs->bridge || strncmp(l->alias, prefix, strlen(prefix)) != 0)
		return;
	const char *id = l->alias + strlen(prefix);
	if (!id_is_valid(id) || vs->keep(id, vs->ud) || vs->n >= ARRAY_SIZE(vs->found))
		return;
	vs->found[vs->n++] = l->ifindex;
	log_warn(NULL, "deleting a veth no pod network owns", "dev=%s pod=%s", l->name, id);
}

void netlink_sweep_veths(const char *bridge, bool (*keep)(const char *pod_id, void *ud), void *ud)
{
	struct rt rt;
	struct rt_link br;
	struct veth_sweep vs = {.keep = keep, .ud = ud};

	if (rt_open(&rt) < 0)
		return;
	if (rt_link_get(&rt, bridge, &br) == 0) {
		vs.bridge = br.ifindex;
		int r = rt_link_list(veth_sweep_cb, &vs);
		if (r < 0)
			log_warn_errno(r, NULL, "cannot list links for the veth sweep");
		for (size_t i = 0; i < vs.n; i++) {
			r = rt_link_del(&rt, vs.found[i]);
			if (r < 0 && r != -ENODEV)
				log_warn_errno(r, NULL, "cannot delete an orphaned veth", "ifindex=%d", vs.found[i]);
		}
	}
	rt_close(&rt);
}
