/* imaged: the root image daemon. It owns all image storage; criod asks it,
 * through the short request list below, to pull, list, inspect and remove
 * images and to mount container root filesystems. */
#include <stdlib.h>

#include "api.h"
#include "daemon.h"
#include "internal/envelope.pb-c.h"
#include "log.h"

/* The complete list of what criod may ask of imaged. */
static const struct ipc_method imaged_methods[] = {
	{IMAGED_PING, "Ping", &criod__internal__ping_request__descriptor,
	 &criod__internal__ping_response__descriptor, 0, daemon_handle_ping},
};

int main(int argc, char **argv)
{
	struct daemon d;
	struct ipc_server *srv = NULL;

	daemon_init(&d, "imaged", argc, argv);
	int r = daemon_serve_root(&d, d.cfg.imaged_socket, imaged_methods, ARRAY_SIZE(imaged_methods), NULL, &srv);
	if (r >= 0)
		r = daemon_run(&d);
	ipc_server_free(srv);
	daemon_fini(&d);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
