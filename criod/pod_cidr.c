/* kubelet's pod CIDR; see pod_cidr.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "macro.h"
#include "util.h"
#include "pod_cidr.h"

#define MAX_ONE 64 /* the longest "ADDRESS/PREFIX" looked at */

/* One network of len bytes at s: its family and canonical text. */
static int parse_one(const char *s, size_t len, int *family, char *out, size_t outlen, char *err, size_t errlen)
{
	char buf[MAX_ONE + 1], text[INET6_ADDRSTRLEN];
	unsigned char net[16];
	if (len == 0)
		return errf(err, errlen, -EINVAL, "an empty network in the list");
	if (len > MAX_ONE)
		return errf(err, errlen, -EINVAL, "'%.*s...' is too long for a network", MAX_ONE, s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *slash = strchr(buf, '/');
	if (!slash || slash == buf || !slash[1] || strlen(slash + 1) > 3 || strspn(slash + 1, "0123456789") != strlen(slash + 1))
		return errf(err, errlen, -EINVAL, "'%s' is not ADDRESS/PREFIX", buf);
	unsigned prefix = 0;
	for (const char *p = slash + 1; *p; p++)
		prefix = prefix * 10 + (unsigned)(*p - '0');
	*slash = '\0';
	*family = strchr(buf, ':') ? AF_INET6 : AF_INET;
	unsigned bits = *family == AF_INET ? 32 : 128;
	if (inet_pton(*family, buf, net) != 1)
		return errf(err, errlen, -EINVAL, "'%s' is not an %s address", buf, *family == AF_INET ? "IPv4" : "IPv6");
	*slash = '/';
	if (prefix < 1 || prefix > bits)
		return errf(err, errlen, -EINVAL, "'%s': the prefix length must be 1..%u", buf, bits);
	for (unsigned bit = prefix; bit < bits; bit++)
		if (net[bit / 8] & (0x80 >> (bit % 8)))
			return errf(err, errlen, -EINVAL, "'%s' has host bits set (the network address is expected)", buf);
	if (*family == AF_INET) {
		if (net[0] == 0 || net[0] == 127 || net[0] >= 224)
			return errf(err, errlen, -EINVAL, "'%s' is not a unicast network (0/8, loopback, multicast or reserved)", buf);
	} else {
		static const unsigned char zero[15];
		bool unspec_or_lo = memcmp(net, zero, 15) == 0 && (net[15] == 0 || net[15] == 1);
		if (unspec_or_lo || net[0] == 0xff)
			return errf(err, errlen, -EINVAL, "'%s' is not a unicast network (unspecified, loopback or multicast)", buf);
	}
	if (!inet_ntop(*family, net, text, sizeof(text)))
		return errf(err, errlen, -EINVAL, "'%s' cannot be formatted", buf);
	if ((size_t)snprintf(out, outlen, "%s/%u", text, prefix) >= outlen)
		return errf(err, errlen, -EINVAL, "'%s' is too long", buf);
	return 0;
}

int pod_cidr_parse(const char *text, char *canon, size_t canon_len, char *err, size_t errlen)
{
	if (!canon || canon_len < POD_CIDR_MAX)
		return errf(err, errlen, -EINVAL, "no room for the result");
	canon[0] = '\0';
	if (!text || !*text)
		return 0;
	const char *comma = strchr(text, ',');
	if (comma && strchr(comma + 1, ','))
		return errf(err, errlen, -EINVAL, "at most two networks (one IPv4, one IPv6)");
	char one[2][POD_CIDR_MAX / 2];
	int fam[2];
	size_t n = comma ? 2 : 1;
	for (size_t i = 0; i < n; i++) {
		const char *s = i == 0 ? text : comma + 1;
		size_t len = i == 0 && comma ? (size_t)(comma - text) : strlen(s);
		int r = parse_one(s, len, &fam[i], one[i], sizeof(one[i]), err, errlen);
		if (r < 0)
			return r;
	}
	if (n == 2 && fam[0] == fam[1])
		return errf(err, errlen, -EINVAL, "two %s networks: at most one per address family",
			    fam[0] == AF_INET ? "IPv4" : "IPv6");
	snprintf(canon, canon_len, "%s%s%s", one[0], n == 2 ? "," : "", n == 2 ? one[1] : "");
	return 0;
}
