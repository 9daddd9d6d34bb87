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
