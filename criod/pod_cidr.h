/* The pod CIDR kubelet sends in UpdateRuntimeConfig (the node's
 * spec.podCIDRs, comma-joined): "10.244.1.0/24", or for a dual-stack node
 * "10.244.1.0/24,fd00:10:244:1::/64". Pure parsing, no I/O. */
#pragma once

#include <stddef.h>

/* Longest canonical text: two networks and a comma. */
#define POD_CIDR_MAX 112

/* Check text: empty (no pod CIDR), or one or two networks ADDRESS/PREFIX,
 * comma-separated, at most one per address family, each with its host bits
 * zero, a prefix of 1..32 (IPv4) or 1..128 (IPv6), and neither the
 * unspecified, a loopback nor a multicast network. On success writes the
 * canonical form (inet_ntop, comma-joined) to canon and returns 0; else
 * -EINVAL with err naming what is wrong. */
int pod_cidr_parse(const char *text, char *canon, size_t canon_len, char *err, size_t errlen);
