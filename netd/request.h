/* netd's checks of what criod asks (SetupPodNetwork and the pod id of
 * every request), apart from the handlers so that they are pure: no state,
 * no I/O. tests/fuzz/fuzz_daemon_requests.c feeds them decoded hostile
 * requests. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "internal/netd.pb-c.h"
#include "state.h"

#define NETD_MAX_NAMESPACE 63

/* Do two mappings claim the same host port? "" is every address of both
 * families, 0.0.0.0 and :: every address of one. */
bool netd_ports_conflict(const struct port_mapping *a, const struct port_mapping *b);

/* STATUS_OK, or INVALID_ARGUMENT with err naming the field. */
int netd_check_pod_id(const char *id, char *err, size_t errlen);

/* A SetupPodNetwork request: the pod id, the metadata (bounded names), the
 * cgroup parent, and the port mappings, validated and normalised into
 * rec->ports / rec->n_ports (rec zeroed by the caller; mappings without a
 * host port dropped, identical ones merged, host_ip in canonical form).
 * ipv6: netd can give the pod an IPv6 address (an IPv6 host_ip is refused
 * otherwise). STATUS_OK, or a status with err naming the field (rec->ports
 * may then be allocated: the caller frees the record). */
int netd_check_setup(const Criod__Internal__SetupPodNetworkRequest *req, bool ipv6, struct pod_record *rec,
		     char *err, size_t errlen);
