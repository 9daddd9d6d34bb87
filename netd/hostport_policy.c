/* The node's hostPort policy; see hostport_policy.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostport_policy.h"
#include "log.h"
#include "macro.h"
#include "status.h"
#include "util.h"

#define TCP_LISTEN 0x0a
#define UDP_UNCONNECTED 0x07 /* TCP_CLOSE: bound, no peer */

#define KEY_RANGE "[policy] host_port_range"
#define KEY_IN_USE "[policy] host_port_allow_in_use"

_printf_(3, 4) static void set_msg(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!msg || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
}

int hostport_policy_init(struct hostport_policy *p, const struct criod_config *cfg, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	if (config_parse_port_range(cfg->host_port_range, &p->lo, &p->hi) < 0) {
		set_msg(err, errlen, KEY_RANGE ": '%s' is not a port range (lo-hi, 1 <= lo <= hi <= 65535)",
			cfg->host_port_range ? cfg->host_port_range : "");
		return -EINVAL;
	}
	snprintf(p->range, sizeof(p->range), "%u-%u", p->lo, p->hi);
	p->local = cfg->host_port_local;
	p->allow_in_use = cfg->host_port_allow_in_use;
	p->proc_net = HOSTPORT_PROC_NET;
	return 0;
}

/* ---------------------------------------------------------------- /proc/net listings */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly n hex digits (n <= 8). */
static int parse_hex(const char **p, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	for (size_t i = 0; i < n; i++) {
		int d = hex_digit((*p)[i]);
		if (d < 0)
			return -EPROTO;
		v = (v << 4) | (uint32_t)d;
	}
	*p += n;
	*out = v;
	return 0;
}

/* The kernel prints an address as the 32-bit words of the address as they
 * lie in memory, each with %08X: parsed back the same way, they lie in
 * memory as the address again, whatever the byte order. */
static int parse_addr(const char **p, bool v6, unsigned char addr[16])
{
	for (size_t i = 0; i < (v6 ? 4u : 1u); i++) {
		uint32_t w;
		if (parse_hex(p, 8, &w) < 0)
			return -EPROTO;
		memcpy(addr + 4 * i, &w, 4);
	}
	return 0;
}

static bool all_zero(const unsigned char *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i])
			return false;
	return true;
}

/* What a mapping's host_ip takes: the families and, when it is one
 * address, that address. */
struct target {
	bool v4, v6;                /* families it takes */
	bool one4, one6;            /* one address of that family (else all of it) */
	unsigned char a4[4], a6[16];
};

static int target_of(const char *host_ip, struct target *t)
{
	memset(t, 0, sizeof(*t));
	if (!host_ip || !*host_ip) {
		t->v4 = t->v6 = true;
		return 0;
	}
	if (inet_pton(AF_INET, host_ip, t->a4) == 1) {
		t->v4 = true;
		t->one4 = !all_zero(t->a4, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, host_ip, t->a6) == 1) {
		t->v6 = true;
		t->one6 = !all_zero(t->a6, 16);
		return 0;
	}
	return -EINVAL;
}

static bool is_v4_mapped(const unsigned char a[16])
{
	static const unsigned char prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

/* Does a socket bound to addr (v6: 16 bytes) take traffic for t? */
static bool socket_takes(const struct target *t, bool v6, const unsigned char *addr)
{
	if (v6 && is_v4_mapped(addr)) {
		v6 = false;
		addr += 12;
	}
	if (!v6) {
		if (!t->v4)
			return false;
		return all_zero(addr, 4) || !t->one4 || memcmp(addr, t->a4, 4) == 0;
	}
	if (all_zero(addr, 16))
		return true; /* "::" takes IPv4 too unless IPV6_V6ONLY, which the listing does not say */
	if (!t->v6)
		return false;
	return !t->one6 || memcmp(addr, t->a6, 16) == 0;
}

static void format_who(bool v6, const unsigned char *addr, uint16_t port, char *who, size_t wholen)
{
	char text[INET6_ADDRSTRLEN] = "?";

	if (!who || !wholen)
		return;
	inet_ntop(v6 ? AF_INET6 : AF_INET, addr, text, sizeof(text));
	snprintf(who, wholen, v6 ? "[%s]:%u" : "%s:%u", text, port);
}

int hostport_listing_find(const char *text, bool v6, int protocol, const char *host_ip, uint16_t port, char *who,
			  size_t wholen)
{
	struct target t;
	const char *line = text;
	bool header = true;

	if (!text || target_of(host_ip, &t) < 0 || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP))
		return -EINVAL;
	for (; *line; line = strchrnul(line, '\n'), line += *line == '\n') {
		const char *p = line;
		unsigned char local[16] = { 0 }, remote[16] = { 0 };
		uint32_t lport, rport, state;

		while (*p == ' ')
			p++;
		if (*p == '\n' || *p == '\0')
			continue;
		if (header) { /* "  sl  local_address rem_address   st ..." */
			header = false;
			if (strncmp(p, "sl ", 3) == 0)
				continue;
			return -EPROTO;
		}
		if (!(*p >= '0' && *p <= '9'))
			return -EPROTO;
		while (*p >= '0' && *p <= '9')
			p++;
		if (*p++ != ':')
			return -EPROTO;
		while (*p == ' ')
			p++;
		if (parse_addr(&p, v6, local) < 0 || *p++ != ':' || parse_hex(&p, 4, &lport) < 0 || *p++ != ' ' ||
		    parse_addr(&p, v6, remote) < 0 || *p++ != ':' || parse_hex(&p, 4, &rport) < 0 || *p++ != ' ' ||
		    parse_hex(&p, 2, &state) < 0 || (*p != ' ' && *p != '\n' && *p != '\0'))
			return -EPROTO;
		if (lport != port)
			continue;
		if (protocol == IPPROTO_TCP && state != TCP_LISTEN)
			continue;
		if (protocol == IPPROTO_UDP && (state != UDP_UNCONNECTED || rport != 0 || !all_zero(remote, 16)))
			continue;
		if (!socket_takes(&t, v6, local))
			continue;
		format_who(v6 && !is_v4_mapped(local), v6 && is_v4_mapped(local) ? local + 12 : local, port, who,
			   wholen);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- the check */

static const char *proto_name(int p) { return p == IPPROTO_UDP ? "udp" : "tcp"; }

static void log_refusal(const char *req, const char *pod_id, const struct port_mapping *m, const char *rule,
			const char *msg)
{
	log_warn(req, "host port refused by the node policy", "pod=%s port=%u/%s host_ip=%s rule=\"%s\" error=\"%s\"",
		 pod_id, m->host_port, proto_name(m->protocol), m->host_ip[0] ? m->host_ip : "*", rule, msg);
}

/* The listings of one protocol, IPv4 then IPv6; a missing one (no IPv6 in
 * the kernel) is empty. */
static int read_listings(const struct hostport_policy *p, int protocol, char *text[2], char *msg, size_t msglen)
{
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *path = NULL;
		int r;

		if (asprintf(&path, "%s/%s%s", p->proc_net, proto_name(protocol), i ? "6" : "") < 0)
			return -ENOMEM;
		r = read_file(path, HOSTPORT_LISTING_MAX, &text[i], NULL);
		if (r == -ENOENT) {
			text[i] = strdup("");
			r = text[i] ? 0 : -ENOMEM;
		}
		if (r < 0) {
			set_msg(msg, msglen, "cannot read the host's sockets from %s: %s", path, strerror(-r));
			return r;
		}
	}
	return 0;
}

int hostport_policy_check(const struct hostport_policy *p, const struct port_mapping *ports, size_t n_ports,
			  const char *req, const char *pod_id, char *msg, size_t msglen)
{
	char *listing[2][2] = { { NULL, NULL }, { NULL, NULL } }; /* [udp?][v6?] */
	int status = STATUS_OK;

	if (msg && msglen)
		msg[0] = '\0';
	for (size_t i = 0; i < n_ports; i++) {
		const struct port_mapping *m = &ports[i];
		if (m->host_port >= p->lo && m->host_port <= p->hi)
			continue;
		set_msg(msg, msglen, "host port %u/%s is outside " KEY_RANGE " (%s)", m->host_port,
			proto_name(m->protocol), p->range);
		log_refusal(req, pod_id, m, KEY_RANGE, msg);
		return STATUS_PERMISSION_DENIED;
	}
	if (p->allow_in_use)
		return STATUS_OK;
	for (size_t i = 0; i < n_ports && status == STATUS_OK; i++) {
		const struct port_mapping *m = &ports[i];
		bool udp = m->protocol == IPPROTO_UDP;
		char who[INET6_ADDRSTRLEN + 16] = "";
		int r = 0;

		if (!listing[udp][0]) {
			r = read_listings(p, m->protocol, listing[udp], msg, msglen);
			if (r < 0) {
				log_refusal(req, pod_id, m, KEY_IN_USE, msg);
				status = STATUS_INTERNAL;
				break;
			}
		}
		for (size_t v6 = 0; v6 < 2 && r == 0; v6++) {
			r = hostport_listing_find(listing[udp][v6], v6, m->protocol, m->host_ip, m->host_port, who,
						  sizeof(who));
			if (r < 0)
				set_msg(msg, msglen, "cannot parse the host's sockets in %s/%s%s", p->proc_net,
					proto_name(m->protocol), v6 ? "6" : "");
		}
		if (r == 0)
			continue;
		if (r > 0) {
			set_msg(msg, msglen,
				"host port %u/%s is in use by a host service (a socket on %s); " KEY_IN_USE
				" = true would allow mapping it",
				m->host_port, proto_name(m->protocol), who);
			status = STATUS_FAILED_PRECONDITION;
		} else {
			status = STATUS_INTERNAL;
		}
		log_refusal(req, pod_id, m, KEY_IN_USE, msg);
	}
	for (size_t i = 0; i < 2; i++)
		for (size_t j = 0; j < 2; j++)
			free(listing[i][j]);
	return status;
}
