/* netd: the root network daemon. It owns every network namespace, link,
 * address, route, nftables rule and IP allocation criod asks it to make,
 * through the short request list below. */
#include <stdlib.h>

#include "api.h"
#include "daemon.h"
#include "internal/envelope.pb-c.h"
#include "log.h"

/* The complete list of what criod may ask of netd. */
static const struct ipc_method netd_methods[] = {
	{NETD_PING, "Ping", &criod__internal__ping_request__descriptor,
	 &criod__internal__ping_response__descriptor, 0, daemon_handle_ping},
};

int main(int argc, char **argv)
{
	struct daemon d;
	struct ipc_server *srv = NULL;

	daemon_init(&d, "netd", argc, argv);
	int r = daemon_serve_root(&d, d.cfg.netd_socket, netd_methods, ARRAY_SIZE(netd_methods), NULL, &srv);
	if (r >= 0)
		r = daemon_run(&d);
	ipc_server_free(srv);
	daemon_fini(&d);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
