/* spawnd: the root spawner. It starts one conmon monitor per container at
 * criod's request (the short list below); the monitors outlive both criod
 * and spawnd. */
#include <stdlib.h>

#include "api.h"
#include "daemon.h"
#include "internal/envelope.pb-c.h"
#include "log.h"

/* The complete list of what criod may ask of spawnd. */
static const struct ipc_method spawnd_methods[] = {
	{SPAWND_PING, "Ping", &criod__internal__ping_request__descriptor,
	 &criod__internal__ping_response__descriptor, 0, daemon_handle_ping},
};

int main(int argc, char **argv)
{
	struct daemon d;
	struct ipc_server *srv = NULL;

	daemon_init(&d, "spawnd", argc, argv);
	int r = daemon_serve_root(&d, d.cfg.spawnd_socket, spawnd_methods, ARRAY_SIZE(spawnd_methods), NULL, &srv);
	if (r >= 0)
		r = daemon_run(&d);
	ipc_server_free(srv);
	daemon_fini(&d);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
