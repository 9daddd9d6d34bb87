/* criod's streaming server: HTTP/1.1 on [streaming] address:port, the URLs
 * Exec, Attach and PortForward hand out (single-use tokens), and the
 * sessions behind them (SPDY/3.1 or WebSocket, stream_transport.c; the
 * Kubernetes semantics, stream_exec.c and stream_portforward.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct criod;
struct stream_server;

enum stream_kind { STREAM_EXEC = 1, STREAM_ATTACH = 2, STREAM_PORTFORWARD = 3 };

#define STREAM_MAX_PORTS 64

/* What a token stands for, as the CRI request asked it (validated). */
struct stream_request {
	enum stream_kind kind;
	char id[65];     /* the container's (Exec, Attach) or pod's (PortForward) full id */
	char req_id[64]; /* the RPC's request id, for the audit trail */
	char **cmd;      /* Exec */
	size_t n_cmd;
	bool tty, in, out, err;
	uint16_t ports[STREAM_MAX_PORTS]; /* PortForward (WebSocket clients may name their own) */
	size_t n_ports;
};

void stream_request_free(struct stream_request *r);

/* Listen on the configured address (criod's loop), or on fd (taken) when
 * it is >= 0: a listening TCP socket systemd passed (criod-streaming.socket),
 * whose address then makes the URLs. */
int stream_server_start(struct criod *c, int fd, struct stream_server **out);
/* Close the listener and every session (their descriptors with them). */
void stream_server_free(struct stream_server *s);

/* Keep r (taken, also on failure) under a new token; url gets the URL to
 * hand out. -ENOSPC when too many tokens are outstanding. */
int stream_server_token(struct stream_server *s, struct stream_request *r, char *url, size_t url_len);
