/* criod's Prometheus endpoint: HTTP/1.1 GET /metrics on a unix socket
 * (default <run_dir>/metrics.sock) or on 127.0.0.1:PORT ([metrics]).
 *
 * criod counts its own figures (CRI calls by method and status, with a
 * latency histogram per method, from grpc.c's on_done hook; pods and
 * containers by state from its tables; its process from /proc/self) and,
 * per scrape, asks each root daemon for its own over the internal RPC
 * (imaged, netd, spawnd: Metrics, proto/internal/envelope.proto): its
 * process, and what it owns (pulls by result with bytes and latency;
 * pod network setup latency and the addresses in use). A daemon that does
 * not answer within METRICS_DAEMON_TIMEOUT_MS shows criod_daemon_up 0 and
 * none of its figures. No root daemon listens on TCP. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "grpc.h"

struct criod;
struct criod_metrics;

/* The registry for the gRPC route table methods[0..n) (kept, not copied). */
int metrics_new(struct criod *c, const struct grpc_method *methods, size_t n, struct criod_metrics **out);
/* grpc_server_opts.on_done, with ud the registry. */
void metrics_call_done(void *ud, const struct grpc_method *method, int status, int64_t duration_ns);
/* Serve scrapes on a bound, listening, non-blocking socket (owned from
 * here on, also on failure). */
int metrics_serve(struct criod_metrics *m, int listen_fd);
/* Close the listener and every connection; scrapes waiting for a daemon
 * are dropped when their replies come (the clients are freed after this). */
void metrics_stop(struct criod_metrics *m);
/* After the daemon clients are gone (every reply has come). */
void metrics_free(struct criod_metrics *m);

/* Bind the endpoint the configuration names: the socket (mode 0660), or
 * 127.0.0.1:port. Returns the listening fd or negative errno. */
int metrics_listen(const char *socket_path, uint64_t port);
