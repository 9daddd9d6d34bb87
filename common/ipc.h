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

#define IPC_MAX_FRAME (17u << 20) /* 16 MiB message + envelope */
#define IPC_MAX_FDS 16

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
};

/* ---- server ---- */

/* Bind and listen on a unix stream socket at path (a stale socket there is
 * replaced, any other file is not), chmod'ed to mode. Returns the
 * non-blocking listening fd or negative errno. */
int ipc_listen_unix(const char *path, mode_t mode);

/* Bind path (replacing a stale socket), chmod it to mode and serve methods.
 * allowed_uids: the peers that may talk to this daemon. */
int ipc_server_new(struct event_base *base, const char *path, mode_t mode,
		   const uid_t *allowed_uids, size_t n_allowed,
		   const struct ipc_method *methods, size_t n_methods, void *userdata,
		   struct ipc_server **out);
void ipc_server_free(struct ipc_server *s);

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
