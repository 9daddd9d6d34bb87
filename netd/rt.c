/* rtnetlink requests on libmnl; see rt.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "macro.h"
#include "rt.h"

#define RT_BUF 16384
#define RT_TIMEOUT_S 10

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

int rt_open(struct rt *rt)
{
	struct timeval tv = { .tv_sec = RT_TIMEOUT_S };
	int one = 1, fd;

	memset(rt, 0, sizeof(*rt));
	rt->sk = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!rt->sk)
		return -errno;
	fd = mnl_socket_get_fd(rt->sk);
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (mnl_socket_bind(rt->sk, 0, MNL_SOCKET_AUTOPID) < 0) {
		int r = -errno;
		mnl_socket_close(rt->sk);
		rt->sk = NULL;
		return r;
	}
	rt->portid = mnl_socket_get_portid(rt->sk);
	rt->seq = (uint32_t)time(NULL);
	return 0;
}

void rt_close(struct rt *rt)
{
	if (rt->sk)
		mnl_socket_close(rt->sk);
	rt->sk = NULL;
}

/* Send one request (with NLM_F_ACK) and read until its ACK or error. */
static int talk(struct rt *rt, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[RT_BUF];
	uint32_t seq = ++rt->seq;

	nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(rt->sk, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(rt->sk, buf, sizeof(buf));
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		errno = 0;
		int r = mnl_cb_run(buf, (size_t)n, seq, rt->portid, cb, data);
		if (r == MNL_CB_ERROR)
			return errno ? -errno : -EPROTO;
		if (r == MNL_CB_STOP)
			return 0;
	}
}

static struct nlmsghdr *put_link_header(char *buf, uint16_t type, uint16_t flags, int family, int ifindex)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = (unsigned char)family;
	ifi->ifi_index = ifindex;
	return nlh;
}

static void copy_str(char *dst, size_t len, const struct nlattr *a)
{
	size_t n = mnl_attr_get_payload_len(a);
	const char *s = mnl_attr_get_payload(a);

	n = strnlen(s, n);
	if (n >= len)
		n = len - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int linkinfo_cb(const struct nlattr *a, void *data)
{
	struct rt_link *l = data;

	if (mnl_attr_get_type(a) == IFLA_INFO_KIND && mnl_attr_validate(a, MNL_TYPE_STRING) >= 0)
		copy_str(l->kind, sizeof(l->kind), a);
	return MNL_CB_OK;
}

static int link_attr_cb(const struct nlattr *a, void *data)
{
	struct rt_link *l = data;

	switch (mnl_attr_get_type(a)) {
	case IFLA_IFNAME:
		if (mnl_attr_validate(a, MNL_TYPE_STRING) >= 0)
			copy_str(l->name, sizeof(l->name), a);
		break;
	case IFLA_IFALIAS:
		if (mnl_attr_validate(a, MNL_TYPE_STRING) >= 0)
			copy_str(l->alias, sizeof(l->alias), a);
		break;
	case IFLA_MTU:
		if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
			l->mtu = mnl_attr_get_u32(a);
		break;
	case IFLA_MASTER:
		if (mnl_attr_validate(a, MNL_TYPE_U32) >= 0)
			l->master = (int)mnl_attr_get_u32(a);
		break;
	case IFLA_LINKINFO:
		if (mnl_attr_validate(a, MNL_TYPE_NESTED) >= 0)
			mnl_attr_parse_nested(a, linkinfo_cb, l);
		break;
	default:
		break;
	}
	return MNL_CB_OK;
}

static int link_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct rt_link *l = data;
	const struct ifinfomsg *ifi;

	if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return MNL_CB_OK;
	ifi = mnl_nlmsg_get_payload(nlh);
	memset(l, 0, sizeof(*l));
	l->ifindex = ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	mnl_attr_parse(nlh, sizeof(*ifi), link_attr_cb, l);
	return MNL_CB_OK;
}

int rt_link_get(struct rt *rt, const char *name, struct rt_link *out)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = put_link_header(buf, RTM_GETLINK, 0, AF_UNSPEC, 0);
	int r;

	if (!name || !*name || strlen(name) >= IF_NAMESIZE)
		return -EINVAL;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	memset(out, 0, sizeof(*out));
	r = talk(rt, nlh, link_msg_cb, out);
	if (r < 0)
		return r;
	return out->ifindex > 0 ? 0 : -ENODEV;
}

struct link_dump {
	void (*fn)(const struct rt_link *l, void *ud);
	void *ud;
};

static int link_dump_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_dump *d = data;
	struct rt_link l = {0};

	link_msg_cb(nlh, &l);
	if (l.ifindex > 0)
		d->fn(&l, d->ud);
	return MNL_CB_OK;
}

int rt_link_list(void (*fn)(const struct rt_link *l, void *ud), void *ud)
{
	char buf[RT_BUF];
	struct link_dump d = {fn, ud};
	struct rt rt;
	int r = rt_open(&rt);

	if (r < 0)
		return r;
	struct nlmsghdr *nlh = put_link_header(buf, RTM_GETLINK, NLM_F_DUMP, AF_UNSPEC, 0);
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	r = talk(&rt, nlh, link_dump_cb, &d); /* NLMSG_DONE ends it */
	rt_close(&rt);
	return r;
}

int rt_bridge_add(struct rt *rt, const char *name, const unsigned char mac[6], unsigned mtu)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = put_link_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
	struct nlattr *info;

	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (mac)
		mnl_attr_put(nlh, IFLA_ADDRESS, 6, mac);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
	mnl_attr_nest_end(nlh, info);
	return talk(rt, nlh, NULL, NULL);
}

int rt_veth_add(struct rt *rt, const char *name, unsigned mtu, int master, const char *peer_name,
		int peer_netns_fd, unsigned peer_mtu)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = put_link_header(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
	struct nlattr *info, *data, *peer;

	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	if (master > 0)
		mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t)master);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* The peer is described by an ifinfomsg followed by its attributes. */
	mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name);
	if (peer_mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, peer_mtu);
	if (peer_netns_fd >= 0)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);
	return talk(rt, nlh, NULL, NULL);
}

int rt_link_set(struct rt *rt, int ifindex, bool up, const char *alias)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = put_link_header(buf, RTM_NEWLINK, 0, AF_UNSPEC, ifindex);
	struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

	if (up) {
		ifi->ifi_flags = IFF_UP;
		ifi->ifi_change = IFF_UP;
	}
	if (alias)
		mnl_attr_put_strz(nlh, IFLA_IFALIAS, alias);
	return talk(rt, nlh, NULL, NULL);
}

int rt_link_del(struct rt *rt, int ifindex)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = put_link_header(buf, RTM_DELLINK, 0, AF_UNSPEC, ifindex);

	return talk(rt, nlh, NULL, NULL);
}

int rt_bridge_port_hairpin(struct rt *rt, int ifindex, bool on)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = put_link_header(buf, RTM_SETLINK, 0, AF_BRIDGE, ifindex);
	struct nlattr *proto;

	proto = mnl_attr_nest_start(nlh, IFLA_PROTINFO | NLA_F_NESTED);
	mnl_attr_put_u8(nlh, IFLA_BRPORT_MODE, on ? 1 : 0);
	mnl_attr_nest_end(nlh, proto);
	return talk(rt, nlh, NULL, NULL);
}

int rt_addr_add(struct rt *rt, int ifindex, int family, const unsigned char *addr, unsigned prefix, bool nodad)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	size_t len = family == AF_INET ? 4 : 16;

	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (unsigned char)family;
	ifa->ifa_prefixlen = (unsigned char)prefix;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	ifa->ifa_flags = nodad ? IFA_F_NODAD : 0;
	mnl_attr_put(nlh, IFA_LOCAL, len, addr);
	mnl_attr_put(nlh, IFA_ADDRESS, len, addr);
	if (family == AF_INET && prefix <= 30) {
		uint32_t a, mask = prefix ? htonl(~0u << (32 - prefix)) : 0;
		memcpy(&a, addr, 4);
		a |= ~mask;
		mnl_attr_put(nlh, IFA_BROADCAST, 4, &a);
	}
	if (nodad)
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
	return talk(rt, nlh, NULL, NULL);
}

int rt_route_add_default(struct rt *rt, int family, const unsigned char *gw, int ifindex)
{
	char buf[RT_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;

	nlh->nlmsg_type = RTM_NEWROUTE;
	nlh->nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (unsigned char)family;
	rtm->rtm_table = RT_TABLE_MAIN;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = RT_SCOPE_UNIVERSE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put(nlh, RTA_GATEWAY, family == AF_INET ? 4 : 16, gw);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	return talk(rt, nlh, NULL, NULL);
}

int sysctl_ensure(const char *key, const char *value, bool *changed)
{
	char path[256], cur[64];
	_cleanup_close_ int fd = -1;
	ssize_t n;
	size_t vlen = strlen(value);

	if (changed)
		*changed = false;
	if (snprintf(path, sizeof(path), "/proc/sys/%s", key) >= (int)sizeof(path) || strstr(key, ".."))
		return -EINVAL;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, cur, sizeof(cur) - 1);
	if (n < 0)
		return -errno;
	cur[n] = '\0';
	cur[strcspn(cur, "\n")] = '\0';
	if (strcmp(cur, value) == 0)
		return 0;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	n = write(fd, value, vlen);
	if (n < 0)
		return -errno;
	if ((size_t)n != vlen)
		return -EIO;
	if (changed)
		*changed = true;
	return 0;
}
