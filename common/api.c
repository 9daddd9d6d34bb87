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
