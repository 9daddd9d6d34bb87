/* criod's internal RPC: one small, explicit request list per daemon.
 *
 * A daemon serves an ipc_server on a unix socket. Each accepted peer is
 * authenticated with SO_PEERCRED: only the uids given to ipc_server_new
 * (root and the configured criod user) are served; any other peer is logged
 * and disconnected. Each frame names a method from the daemon's fixed table
 * (struct ipc_method); an unknown method, a body that does not decode as the
 * method's request type, too many file descriptors or an oversized frame are
 * refused before any handler runs. Handlers must still validate every field
 * as if the peer were hostile.
 *
 * What one peer can make a server hold is bounded (each refusal is logged,
 * at most IPC_LOG_REFUSALS_PER_SEC lines per second per reason, with a count
 * of the lines left out):
 *  - connections: at most IPC_DEFAULT_MAX_CONNS_PER_UID per peer uid
 *    (ipc_server_set_max_conns_per_uid); one more is closed at once;
 *  - bytes: a method's request body may be at most its row's max_request;
 *    a larger one is answered RESOURCE_EXHAUSTED without being decoded, and
 *    a frame over the largest max_request of the table (plus
 *    IPC_ENVELOPE_OVERHEAD) is answered so and discarded as it arrives,
 *    never buffered;
 *  - decoded size: before a body (or an envelope) is unpacked, what
 *    protobuf-c would allocate for it is added up from the descriptor;
 *    more than IPC_DECODE_FACTOR times the method's cap (at least
 *    IPC_DECODE_MIN) is RESOURCE_EXHAUSTED, so empty repeated elements or
 *    unknown fields cannot turn a small body into a large heap. There is
 *    no per-field count limit in the table: this one bound covers every
 *    repeated field at once, and how many elements make sense (ports,
 *    argv) stays the handler's check;
 *  - fds: at most IPC_MAX_FDS queued per connection, and only with the
 *    frame they belong to: fds beyond what the frame declares, or sent with
 *    no frame, disconnect the peer;
 *  - accept: out of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
 *    server stops accepting for IPC_ACCEPT_BACKOFF_MIN_MS, doubling to
 *    IPC_ACCEPT_BACKOFF_MAX_MS while it lasts, instead of spinning;
 *  - time: a frame whose first byte has arrived must be complete within
 *    IPC_DEFAULT_FRAME_TIMEOUT_MS (ipc_server_set_frame_timeout), or the
 *    connection is closed; a connection between frames may stay idle for
 *    ever (criod keeps its connections);
 *  - memory across connections: every connection may buffer up to
 *    IPC_READ_BUFFER bytes of a partial frame; what a larger partial frame
 *    needs beyond that comes from one budget per server,
 *    IPC_DEFAULT_MAX_BUFFERED (ipc_server_set_max_buffered), reserved
 *    whole when the frame's length arrives. A frame the budget cannot take
 *    is answered RESOURCE_EXHAUSTED from its first bytes and discarded as
 *    it arrives, as an oversized one is. So a server's input buffers hold
 *    at most max_buffered + IPC_READ_BUFFER per connection.
 *
 * The client side (criod) is asynchronous on the same libevent loop: a call
 * never blocks, replies arrive through a callback, and calls are pipelined on
 * one connection, which is re-established on the next call after a failure. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

#define IPC_MAX_FRAME (17u << 20) /* the largest frame at all (a client's replies): 16 MiB message + envelope */
#define IPC_MAX_FDS 16            /* per frame, and queued per connection */

#define IPC_KiB(n) ((uint32_t)(n) << 10)
#define IPC_MiB(n) ((uint32_t)(n) << 20)
/* A server's limits (see above). */
#define IPC_DEFAULT_MAX_REQUEST IPC_KiB(64) /* a row's max_request of 0 */
#define IPC_ENVELOPE_OVERHEAD 4096          /* a frame's bytes beside the body */
#define IPC_DECODE_FACTOR 8
#define IPC_DECODE_MIN IPC_MiB(1)
#define IPC_DEFAULT_MAX_CONNS_PER_UID 32
#define IPC_ACCEPT_BACKOFF_MIN_MS 100
#define IPC_ACCEPT_BACKOFF_MAX_MS 1000
#define IPC_LOG_REFUSALS_PER_SEC 10
#define IPC_DEFAULT_FRAME_TIMEOUT_MS 10000
#define IPC_READ_BUFFER IPC_KiB(64)          /* a connection's own input buffer */
#define IPC_DEFAULT_MAX_BUFFERED IPC_MiB(16) /* beyond that, for all connections */

struct ipc_call;
struct ipc_server;
struct ipc_client;

/* fds are owned by the handler (it must close or keep them). */
typedef void (*ipc_handler_fn)(struct ipc_call *call, const ProtobufCMessage *req,
			       int *fds, size_t nfds, void *userdata);

struct ipc_method {
	uint32_t id;
	const char *name;
	const ProtobufCMessageDescriptor *request;
	const ProtobufCMessageDescriptor *response;
	unsigned max_fds;
	ipc_handler_fn handler; /* server side only */
	/* Server side: the largest encoded request body taken, in bytes
	 * (0: IPC_DEFAULT_MAX_REQUEST). */
	uint32_t max_request;
};

/* ---- server ---- */

/* Bind and listen on a unix stream socket at path (a stale socket there is
 * replaced, any other file is not), chmod'ed to mode. Returns the
 * non-blocking listening fd or negative errno. */
/* What protobuf-c would allocate to unpack len bytes of desc (an upper
 * bound, from the wire and the descriptor, without decoding), or
 * -EBADMSG / -E2BIG. Also criod's gRPC server's bound. */
ssize_t ipc_decoded_size(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len);

int ipc_listen_unix(const char *path, mode_t mode);

/* Bind path (replacing a stale socket), chmod it to mode and serve methods.
 * allowed_uids: the peers that may talk to this daemon. */
int ipc_server_new(struct event_base *base, const char *path, mode_t mode,
		   const uid_t *allowed_uids, size_t n_allowed,
		   const struct ipc_method *methods, size_t n_methods, void *userdata,
		   struct ipc_server **out);
void ipc_server_free(struct ipc_server *s);
/* At most n connections from one peer uid at a time (default
 * IPC_DEFAULT_MAX_CONNS_PER_UID); 0 restores the default. Connections open
 * already are kept. */
void ipc_server_set_max_conns_per_uid(struct ipc_server *s, unsigned n);
/* The largest frame s buffers: its table's largest max_request plus
 * IPC_ENVELOPE_OVERHEAD. */
size_t ipc_server_max_frame(const struct ipc_server *s);
/* A frame begun must be complete within ms (default
 * IPC_DEFAULT_FRAME_TIMEOUT_MS; 0 restores it), for connections accepted
 * from here on. */
void ipc_server_set_frame_timeout(struct ipc_server *s, uint64_t ms);
/* The budget all connections' partial frames share beyond their own
 * IPC_READ_BUFFER (default IPC_DEFAULT_MAX_BUFFERED; 0 restores it). Below
 * ipc_server_max_frame() the largest requests are always refused. */
void ipc_server_set_max_buffered(struct ipc_server *s, size_t bytes);
/* How much of that budget partial frames hold now. */
size_t ipc_server_buffered(const struct ipc_server *s);

/* Exactly one of reply/fail completes a call; afterwards the call is freed.
 * If the peer has gone the reply is dropped. Must be called on the loop thread.
 * A reply may carry fds (spawnd's OpenSeccompProfile answers with the open
 * profile): duplicates are sent, the caller keeps and closes its own; a
 * failure carries none. */
void ipc_call_reply(struct ipc_call *call, const ProtobufCMessage *resp, const int *fds, size_t nfds);
void ipc_call_fail(struct ipc_call *call, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *ipc_call_request_id(const struct ipc_call *call);
/* Credentials of the peer that made the call. */
uid_t ipc_call_peer_uid(const struct ipc_call *call);
pid_t ipc_call_peer_pid(const struct ipc_call *call);

/* ---- client ---- */

/* status is a gRPC status code; message is NULL on success. resp is owned by
 * the ipc layer and freed after the callback returns; fds are owned by the
 * callback. */
typedef void (*ipc_reply_fn)(int status, const char *message, const ProtobufCMessage *resp,
			     int *fds, size_t nfds, void *userdata);

struct ipc_client *ipc_client_new(struct event_base *base, const char *name, const char *path);
/* Pending calls complete with CANCELLED (synchronously, from here); their
 * callbacks must not queue new calls on this client. */
void ipc_client_free(struct ipc_client *c);
/* Queue a call. The callback always runs exactly once, later, on the loop
 * (UNAVAILABLE if the daemon cannot be reached, DEADLINE_EXCEEDED after
 * timeout_ms). fds are duplicated; the caller keeps its own. */
int ipc_client_call(struct ipc_client *c, const struct ipc_method *m, const char *request_id,
		    const ProtobufCMessage *req, const int *fds, size_t nfds, uint64_t timeout_ms,
		    ipc_reply_fn cb, void *userdata);
/* The pid of the daemon at the other end (SO_PEERCRED at connect, the peer
 * checked root), or -1 while not connected. */
pid_t ipc_client_peer_pid(const struct ipc_client *c);

/* ---- blocking: one thread over a private socket pair ----
 * For a parent and the helper process it started on socket pairs it made
 * itself (imaged and imaged-fetch), where each socket carries one call at a
 * time. Same frames as above. */

/* Send one frame, blocking until it is written. fds go with it; the caller
 * keeps its own. */
int ipc_sync_send(int fd, uint64_t call_id, uint32_t method, const char *request_id, int status,
		  const char *message, const ProtobufCMessage *body, const int *fds, size_t nfds);
/* Receive one frame, blocking. Returns 0 with *env (a Criod__Internal__Envelope
 * the caller frees with criod__internal__envelope__free_unpacked) and up to
 * IPC_MAX_FDS fds the caller owns; -EPIPE when the peer closed between
 * frames; -EPROTO for a truncated, oversized or malformed frame. */
int ipc_sync_recv(int fd, void **env, int *fds, size_t *nfds);
/* How a blocking call waits: every idle_ms without a byte from the peer,
 * idle(ud) runs; 0 waits on, a negative errno ends the call with it. */
struct ipc_sync_wait {
	int idle_ms;
	int (*idle)(void *ud);
	void *ud;
};
/* Send req as a call of m and wait for its reply, decoded as m->response
 * (free with protobuf_c_message_free_unpacked). Returns 0, or negative
 * errno: -EPIPE if the peer went away, -EPROTO for a reply that is not
 * this call's or does not decode, or a non-OK status (err says which), or
 * what wait->idle returned (wait NULL: wait for ever). */
int ipc_sync_call(int fd, const struct ipc_method *m, const char *request_id, const ProtobufCMessage *req,
		  const int *fds, size_t nfds, const struct ipc_sync_wait *wait, ProtobufCMessage **resp, char *err,
		  size_t errlen);

/* ---- framing (exposed for unit tests) ---- */
/* Encode an envelope into a malloc'd frame (length prefix included). */
int ipc_frame_encode(const void *envelope /* Criod__Internal__Envelope */, uint8_t **out, size_t *out_len);
