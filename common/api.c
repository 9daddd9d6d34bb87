/* Client-side views of the root daemons' request lists (see api.h). */
#include "api.h"
#include "internal/envelope.pb-c.h"

const struct ipc_method imaged_ping_method = {
	IMAGED_PING, "Ping", &criod__internal__ping_request__descriptor,
	&criod__internal__ping_response__descriptor, 0, NULL, 0,
};
const struct ipc_method netd_ping_method = {
	NETD_PING, "Ping", &criod__internal__ping_request__descriptor,
	&criod__internal__ping_response__descriptor, 0, NULL, 0,
};
const struct ipc_method spawnd_ping_method = {
	SPAWND_PING, "Ping", &criod__internal__ping_request__descriptor,
	&criod__internal__ping_response__descriptor, 0, NULL, 0,
};

#define METRICS_METHOD(var, num) \
	const struct ipc_method var = {num, "Metrics", &criod__internal__metrics_request__descriptor, \
				       &criod__internal__metrics_response__descriptor, 0, NULL, 0}
METRICS_METHOD(imaged_metrics_method, IMAGED_METRICS);
METRICS_METHOD(netd_metrics_method, NETD_METRICS);
METRICS_METHOD(spawnd_metrics_method, SPAWND_METRICS);
