/* A TCP connection to a port on the loopback of the calling thread's
 * network namespace (PortForward). */
#pragma once

#include <stdint.h>

#define LOOPBACK_CONNECT_TIMEOUT_MS 10000

/* Connect to 127.0.0.1:port, and to [::1]:port when that is refused (a
 * server listening on IPv6 only); *fd gets the connected socket (blocking,
 * close-on-exec). -ECONNREFUSED when nothing listens on either, -ETIMEDOUT
 * after timeout_ms, else the socket's errno. Blocks: call it from a thread
 * that may wait. */
int loopback_connect(uint16_t port, int timeout_ms, int *fd);

/* ---- PortForward's row, shared by netd and spawnd ---- */
struct ipc_call;
struct workq;
struct ProtobufCMessage;

#define LOOPBACK_MAX_PENDING 32 /* connects in flight per daemon; more are RESOURCE_EXHAUSTED */

/* Connect to port on q's worker and answer call with the socket (one fd)
 * and ok, or fail it: UNAVAILABLE naming the port when nothing listens,
 * DEADLINE_EXCEEDED after LOOPBACK_CONNECT_TIMEOUT_MS. With run (netd's
 * netns_run), the connect runs in the network namespace at netns, on a
 * thread run starts; without, in the worker's (the daemon's own). pod_id
 * is for messages. Call on the loop thread; the caller checked the port
 * and the pod. Use a pool of its own for q: a connect may take its
 * timeout. */
void loopback_forward(struct workq *q, struct ipc_call *call, const struct ProtobufCMessage *ok,
		      const char *pod_id, uint16_t port, const char *netns,
		      int (*run)(const char *netns, int (*fn)(void *arg), void *arg));
