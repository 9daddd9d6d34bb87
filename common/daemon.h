/* What every component does the same way at start-up and shutdown:
 * command line (--config, --log-level, --version, --help), configuration,
 * logging, the event loop, SIGTERM/SIGINT for a clean stop, SIGPIPE ignored. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <event2/event.h>

#include "config.h"
#include "ipc.h"

struct daemon {
	const char *component;
	const char *config_path; /* --config as given, NULL for the default */
	const char *log_level;   /* the level in force (--log-level or the configuration's) */
	struct criod_config cfg;
	struct event_base *base;
	struct event *sig_term, *sig_int;
};

/* Command line, configuration and logging only, for a helper process that
 * runs no event loop (imaged-fetch). Exits like daemon_init on bad input. */
void daemon_configure(struct daemon *d, const char *component, int argc, char **argv);
/* daemon_configure, then the event loop and its signals. Exits the process
 * with status 2 on a bad command line or configuration (after saying why on
 * stderr), 0 for --help/--version. */
void daemon_init(struct daemon *d, const char *component, int argc, char **argv);
/* Run the loop until SIGTERM or SIGINT. */
int daemon_run(struct daemon *d);
void daemon_fini(struct daemon *d);

/* For the root daemons: refuse to run as non-root, resolve the uids allowed
 * to call (root and the configured criod user) and serve methods on path. */
int daemon_serve_root(struct daemon *d, const char *path, const struct ipc_method *methods, size_t n,
		      void *userdata, struct ipc_server **out);

/* The Ping every daemon answers; its reply's common fields, for a daemon
 * that adds its own (spawnd: cap_bounding). */
void daemon_handle_ping(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds,
			void *userdata);
struct Criod__Internal__PingResponse;
void daemon_ping_fill(struct Criod__Internal__PingResponse *resp);

/* The calling process's own figures (common/procstat.h) into a Metrics
 * reply's ProcessFigures. */
struct Criod__Internal__ProcessFigures;
void daemon_process_figures(struct Criod__Internal__ProcessFigures *pf);
/* A histogram into a Metrics reply's HistogramFigures (which points into h:
 * keep h alive until the reply is sent). */
struct prom_hist;
struct Criod__Internal__HistogramFigures;
void daemon_hist_figures(const struct prom_hist *h, struct Criod__Internal__HistogramFigures *out);
