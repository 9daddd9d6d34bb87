/* netd's IP address management: pod addresses from the configured subnets,
 * kept on disk so an address is never handed out twice, not even across a
 * netd crash. The files are boot-scoped (no fsync): a host restart ends
 * every pod network, and at start ipam_sweep frees each allocation whose
 * pod netd does not find alive (an empty or lost file included).
 *
 *   <root>/<subnet key>/<address>   one file per allocated address, created
 *                                   with O_EXCL, holding the owning pod id
 *   <root>/<subnet key>/.last       offset (decimal) of the last address
 *                                   handed out: where the next search starts
 *
 * The subnet key is the canonical CIDR with '/' replaced by '-'
 * ("10.88.0.0-16", "fd00:88::-64"). Addresses are handed out round-robin:
 * the first free one after the last allocated, wrapping around, never the
 * network address, the gateway (network + 1) or, for IPv4, broadcast.
 *
 * The pure part (parsing, offsets, next-free selection) has no side effects
 * and is unit-tested in tests/unit/test_ipam.c. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IPAM_ADDR_MAX 46 /* INET6_ADDRSTRLEN */
#define IPAM_CIDR_MAX 50 /* address "/" prefix */

struct ipam_subnet {
	int family;            /* AF_INET or AF_INET6 */
	unsigned char net[16]; /* network address (host bits zero), network byte order */
	unsigned prefix;       /* 8..30 (IPv4), 64..126 (IPv6) */
	unsigned host_bits;    /* 32 - prefix or 128 - prefix: 2..64 */
	uint64_t first, last;  /* allocatable offsets from the network address */
	char cidr[IPAM_CIDR_MAX];  /* canonical "10.88.0.0/16" */
	char key[IPAM_CIDR_MAX];   /* directory name "10.88.0.0-16" */
};

/* ---- pure logic ---- */

/* Parse "ADDR/PREFIX" of the given family (0: either). Host bits must be
 * zero; loopback, multicast and unspecified networks are refused. On error
 * -EINVAL and err says why. */
int ipam_parse_subnet(const char *cidr, int family, struct ipam_subnet *out, char *err, size_t errlen);
/* The address at offset off (which must be < 2^host_bits). */
void ipam_addr_at(const struct ipam_subnet *s, uint64_t off, unsigned char addr[16]);
/* Text of the address at offset off (canonical inet_ntop form). */
int ipam_format(const struct ipam_subnet *s, uint64_t off, char *buf, size_t len);
/* Offset of a textual address: -EINVAL if not an address of the family,
 * -ERANGE if outside the subnet. */
int ipam_parse_addr(const struct ipam_subnet *s, const char *text, uint64_t *off);
/* The gateway: the first host address (offset 1). */
static inline int ipam_gateway(const struct ipam_subnet *s, char *buf, size_t len) { return ipam_format(s, 1, buf, len); }
/* Sort offsets ascending and drop duplicates; returns the new count. */
size_t ipam_sort_unique(uint64_t *v, size_t n);
/* The first allocatable offset after `last` (wrapping to s->first) that is
 * not in used (sorted ascending, unique; entries outside the allocatable
 * range are ignored). -ENOSPC when every allocatable address is used. */
int ipam_next_free(const struct ipam_subnet *s, const uint64_t *used, size_t n_used, uint64_t last, uint64_t *out);

/* ---- persistent allocations ---- */

struct ipam {
	char *root;
	pthread_mutex_t lock; /* allocations are serialized within netd */
};

int ipam_open(struct ipam *im, const char *root);
void ipam_close(struct ipam *im);
/* Allocate one address of s for pod_id; addr gets its text. -ENOSPC when the
 * subnet is full. */
int ipam_allocate(struct ipam *im, const struct ipam_subnet *s, const char *pod_id, char addr[IPAM_ADDR_MAX]);
/* Free addr in the subnet directory key if pod_id holds it. 0 if it was not
 * allocated at all; -EPERM (and nothing removed) if another pod holds it. */
int ipam_release(struct ipam *im, const char *key, const char *addr, const char *pod_id);
/* Make sure addr (in the subnet directory key) is allocated to pod_id,
 * recreating a lost allocation file; *created says whether it had to.
 * -EEXIST if another pod holds it. */
int ipam_claim(struct ipam *im, const char *key, const char *addr, const char *pod_id, bool *created);
/* The address of s that pod_id holds, for a pod whose record is lost:
 * 1 and addr filled when found, 0 when it holds none, negative errno. */
int ipam_find_owned(struct ipam *im, const struct ipam_subnet *s, const char *pod_id, char addr[IPAM_ADDR_MAX]);
/* Remove every allocation (in every subnet directory) whose owner keep()
 * refuses, plus leftover temporary files. Returns the number freed or
 * negative errno. */
int ipam_sweep(struct ipam *im, bool (*keep)(const char *pod_id, void *ud), void *ud, const char *req);
