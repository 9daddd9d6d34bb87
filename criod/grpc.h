/* gRPC over HTTP/2 (h2c, prior knowledge) on nghttp2 + libevent.
 *
 * The server accepts connections on a listening unix socket, runs one nghttp2
 * server session per connection and routes each stream by its :path to a
 * method from a fixed table. A request body is collected (length-prefixed
 * gRPC messages, uncompressed, at most max_msg_size bytes each), decoded with
 * the method's protobuf-c descriptor, and handed to the handler, which
 * completes the call later, from the same loop, with grpc_call_reply (unary),
 * or grpc_call_send ... grpc_call_finish (server streaming). No handler may
 * block the loop.
 *
 * Errors the server answers itself: unknown :path -> UNIMPLEMENTED; a method
 * whose handler is NULL -> UNIMPLEMENTED naming the method; a body that does
 * not decode -> INVALID_ARGUMENT; a truncated or compressed gRPC frame, or not
 * exactly one request message -> INTERNAL; a message over the limit ->
 * RESOURCE_EXHAUSTED; grpc-timeout passed -> DEADLINE_EXCEEDED (the handler's
 * later completion is then dropped). Malformed HTTP/2 closes that connection
 * only (GOAWAY when possible); the server keeps serving others. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

struct grpc_call;
struct grpc_server;

/* req is owned by the call and freed when the call completes. */
typedef void (*grpc_handler_fn)(struct grpc_call *call, const ProtobufCMessage *req, void *userdata);
/* Runs once if the client goes away (RST_STREAM, connection closed, deadline)
 * before the handler completed the call. The handler must still complete the
 * call (its reply is then dropped). */
typedef void (*grpc_cancel_fn)(struct grpc_call *call, void *userdata);

struct grpc_method {
	const char *path; /* "/runtime.v1.RuntimeService/Version" */
	const ProtobufCMessageDescriptor *request;
	grpc_handler_fn handler; /* NULL: answered UNIMPLEMENTED */
	bool server_streaming;
};

/* Runs once per call when its outcome is known (the status it was answered
 * with, or CANCELLED when the client went first), for the metrics: method
 * is NULL for a :path not in the table. */
typedef void (*grpc_done_fn)(void *ud, const struct grpc_method *method, int status, int64_t duration_ns);

struct grpc_server_opts {
	size_t max_msg_size;    /* default 16 MiB */
	uint32_t max_streams;   /* SETTINGS_MAX_CONCURRENT_STREAMS, default 1000 */
	uint32_t max_conns;     /* connections beyond this are closed at once, default 1024 */
	grpc_done_fn on_done;   /* optional */
	void *on_done_ud;
};

/* listen_fd: a bound, listening, non-blocking socket; the server owns it. */
int grpc_server_new(struct event_base *base, int listen_fd, const struct grpc_server_opts *opts,
		    const struct grpc_method *methods, size_t n_methods, void *userdata,
		    struct grpc_server **out);
/* Closes every connection; pending calls are cancelled. */
void grpc_server_free(struct grpc_server *s);

/* Unary: send resp and status OK; completes the call. */
void grpc_call_reply(struct grpc_call *call, const ProtobufCMessage *resp);
/* Streaming: queue one message (returns -ECANCELED if the client is gone,
 * -ENOBUFS if the messages the client has not taken yet (HTTP/2 flow
 * control) would pass the call's send limit; the message is then not
 * queued). */
int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg);
/* Bytes of queued messages grpc_call_send may hold for a client that does
 * not read (0: the default, 4 x max_msg_size). One message is always taken
 * when nothing is queued. */
void grpc_call_set_send_limit(struct grpc_call *call, size_t bytes);
/* Bytes of messages queued and not yet in DATA frames. */
size_t grpc_call_queued_bytes(const struct grpc_call *call);
/* Complete the call by resetting its stream, dropping what is still queued:
 * for a client that does not read, which trailers could not reach.
 * RESOURCE_EXHAUSTED resets with ENHANCE_YOUR_CALM (which gRPC clients
 * report as RESOURCE_EXHAUSTED), CANCELLED with CANCEL, others with
 * INTERNAL_ERROR. Logged like a failed call with this status. */
void grpc_call_reset(struct grpc_call *call, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Complete the call with a status (OK or an error) and message; completes the call. */
void grpc_call_finish(struct grpc_call *call, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define grpc_call_fail grpc_call_finish

bool grpc_call_cancelled(const struct grpc_call *call);
void grpc_call_set_cancel(struct grpc_call *call, grpc_cancel_fn fn, void *userdata);
/* Per-call request id: the client's x-request-id metadata if given (sanitized,
 * at most 64 chars), else 16 random hex chars. Appears in every log line. */
const char *grpc_call_request_id(const struct grpc_call *call);
const char *grpc_call_method(const struct grpc_call *call);
/* Absolute monotonic deadline in ns from grpc-timeout, or 0 for none. */
int64_t grpc_call_deadline_ns(const struct grpc_call *call);
