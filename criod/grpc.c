/* gRPC over HTTP/2 (h2c, prior knowledge) on nghttp2 + libevent. See grpc.h.
 *
 * Objects and lifetimes
 *
 *   grpc_server  owns the listener and every connection.
 *   conn         one accepted socket: a bufferevent and an nghttp2 server
 *                session. It owns the calls whose streams are open on it
 *                (conn->calls, and the nghttp2 stream user data).
 *   grpc_call    one stream. It is referenced by its open stream
 *                (call->conn != NULL) and, between the handler invocation and
 *                grpc_call_reply/finish, by the handler (call->handler_owns).
 *                It is freed when the last of the two references goes away:
 *                on stream close if the handler is not holding it, else when
 *                the handler completes it. If the stream goes away (or the
 *                deadline passes) while the handler holds the call, the call
 *                is marked cancelled and its cancel callback, if set by then,
 *                runs once; a callback set later is not run (handlers can
 *                check grpc_call_cancelled()).
 *
 * Errors found in the request headers (unknown method, bad content-type...)
 * are answered when the request ends, its body discarded meanwhile; body
 * errors (too large) are answered at once, followed by RST_STREAM(NO_ERROR).
 *
 * Reentrancy rules
 *
 *   - nghttp2_session_mem_send is never called from inside an nghttp2
 *     callback: completions made from handlers or cancel callbacks only queue
 *     frames (nghttp2_submit_*) and schedule a deferred flush (conn->flush_ev).
 *   - A connection is only freed from its own bufferevent/flush callbacks or
 *     from grpc_server_free, never while nghttp2 or a handler is on the stack
 *     for it. Cancel callbacks of a dying connection run after the connection
 *     is gone, from a queue that tolerates the callback completing (and so
 *     freeing) any call, including other queued ones.
 *   - grpc_server_free must not be called from a handler or cancel callback.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <nghttp2/nghttp2.h>

#include "grpc.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "status.h"
#include "util.h"

#define DEFAULT_MAX_MSG_SIZE ((size_t)16 << 20)
#define DEFAULT_MAX_STREAMS 1000u
#define DEFAULT_MAX_CONNS 1024u

/* Flow control: 1 MiB per stream, 32 MiB for the connection, so a 16 MiB
 * request flows without waiting for many WINDOW_UPDATE round trips. */
#define STREAM_WINDOW (1 << 20)
#define CONN_WINDOW (32 << 20)

/* Output back-pressure: stop pulling frames out of nghttp2 once this much is
 * queued on the socket; resume when it drains below OUT_LOW. */
#define OUT_HIGH ((size_t)1 << 20)
#define OUT_LOW ((size_t)256 << 10)

#define MAX_PATH_LEN 512
#define MAX_REQ_ID_LEN 64
#define MAX_STATUS_MSG 1024
/* The most a request message of len bytes may take decoded: the internal
 * RPC's factor over what it carries, and never less than its minimum. */
#define GRPC_DECODE_BUDGET(len) ((size_t)IPC_DECODE_FACTOR * (size_t)(len) + (size_t)IPC_DECODE_MIN)
#define CLOSE_TIMEOUT_SEC 5
/* a client must send its preface and SETTINGS within this time */
#define PREFACE_TIMEOUT_SEC 10
#define ACCEPT_RETRY_MS 100
/* Requests are fully buffered; bound what one connection may hold. */
#define MIN_CONN_INPUT_BUDGET ((size_t)64 << 20)
/* Timers longer than this are not armed (the deadline is still reported). */
#define MAX_TIMER_NS ((int64_t)100 * 24 * 3600 * 1000000000LL)

struct conn;

struct call_list {
	struct grpc_call *head;
};

struct grpc_call {
	/* membership in conn->calls (while attached) or a cancel queue */
	struct call_list *owner;
	struct grpc_call *prev, *next;

	struct conn *conn; /* non-NULL while the stream is open */
	int32_t stream_id;
	const struct grpc_method *method;
	char *path; /* the :path as received, bounded, for errors and logs */
	char req_id[MAX_REQ_ID_LEN + 1];
	size_t max_msg_size;
	int64_t start_ns;
	int64_t timeout_ns; /* -1: none */
	int64_t deadline_ns;
	struct event *timer;

	struct evbuffer *in; /* request body while it is being received */
	size_t in_acct;      /* bytes of `in` charged to conn->in_buffered */
	struct evbuffer *out; /* framed response messages not yet in DATA frames */
	size_t send_limit;    /* grpc_call_send refuses beyond this many bytes in out */
	ProtobufCMessage *req;

	grpc_cancel_fn cancel_fn;
	void *cancel_ud;

	/* final status, kept for the trailers when response messages precede it */
	int status;
	char *status_msg; /* percent-encoded; NULL or "" for none */

	/* an error found in the request headers, answered once the client has
	 * sent its whole request (some HTTP/2 clients take a response to an
	 * unfinished upload, followed by RST_STREAM, as a failure) */
	const char *reject_http; /* NULL: a gRPC status */
	int reject_code;
	char *reject_msg;

	bool reject;
	bool is_post;
	bool ct_ok;
	bool bad_timeout;
	bool path_too_long;
	bool invoked;          /* handler was called */
	bool handler_owns;     /* handler has not completed the call yet */
	bool headers_sent;     /* response HEADERS with a data provider submitted */
	bool status_submitted; /* final status queued; nothing more is sent */
	bool cancelled;
	bool cancel_run;
	bool logged; /* the call's outcome was logged */
};

struct conn {
	struct grpc_server *srv;
	struct conn *prev, *next;
	uint64_t id;
	struct bufferevent *bev;
	nghttp2_session *session;
	struct event *flush_ev;
	struct call_list calls;
	size_t in_buffered;
	char last_err[160]; /* nghttp2's last error text, for the log line */
	bool got_settings;
	bool closing;
	bool dead;
	bool error_logged;
};

struct grpc_server {
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *accept_retry;
	struct grpc_server_opts opts;
	size_t conn_input_budget;
	const struct grpc_method *methods;
	size_t n_methods;
	void *userdata;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *h2opt;
	struct conn *conns;
	size_t n_conns;
	uint64_t next_conn_id;
	uint64_t next_req_seq;
};

/* ---- small helpers ---- */

static void list_push(struct call_list *l, struct grpc_call *call)
{
	call->owner = l;
	call->prev = NULL;
	call->next = l->head;
	if (l->head)
		l->head->prev = call;
	l->head = call;
}

static void list_remove(struct grpc_call *call)
{
	if (!call->owner)
		return;
	if (call->prev)
		call->prev->next = call->next;
	else
		call->owner->head = call->next;
	if (call->next)
		call->next->prev = call->prev;
	call->owner = NULL;
	call->prev = call->next = NULL;
}

static uint32_t be32_read(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void be32_write(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* grpc-message is percent-encoded: bytes outside 0x20..0x7e and '%' itself. */
static void percent_encode(const char *in, char *out, size_t outsz)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
			if (o + 1 >= outsz)
				break;
			out[o++] = (char)*p;
		} else {
			if (o + 3 >= outsz)
				break;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}

static void format_status_msg(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n;

	if (!fmt) {
		buf[0] = '\0';
		return;
	}
	n = vsnprintf(buf, size, fmt, ap);
	if (n < 0) {
		buf[0] = '\0';
		return;
	}
	if ((size_t)n >= size) {
		/* truncated: do not leave a partial UTF-8 sequence at the end */
		size_t len = strlen(buf);
		while (len > 0 && ((unsigned char)buf[len - 1] & 0xc0) == 0x80)
			len--;
		if (len > 0 && (unsigned char)buf[len - 1] >= 0xc0)
			len--;
		buf[len] = '\0';
	}
}

/* grpc-timeout: 1-8 ASCII digits and a unit (H M S m u n). */
static int parse_timeout(const uint8_t *v, size_t len, int64_t *out)
{
	int64_t n = 0, mult;

	if (len < 2 || len > 9)
		return -EINVAL;
	for (size_t i = 0; i + 1 < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		n = n * 10 + (v[i] - '0');
	}
	switch (v[len - 1]) {
	case 'H': mult = 3600LL * 1000000000LL; break;
	case 'M': mult = 60LL * 1000000000LL; break;
	case 'S': mult = 1000000000LL; break;
	case 'm': mult = 1000000LL; break;
	case 'u': mult = 1000LL; break;
	case 'n': mult = 1; break;
	default: return -EINVAL;
	}
	if (n > INT64_MAX / mult)
		*out = INT64_MAX;
	else
		*out = n * mult;
	return 0;
}

static bool content_type_ok(const uint8_t *v, size_t len)
{
	static const char ct[] = "application/grpc";

	if (len < STRLEN(ct) || strncasecmp((const char *)v, ct, STRLEN(ct)) != 0)
		return false;
	/* "application/grpc", "application/grpc+proto", "application/grpc;..."
	 * but not "application/grpc-web" */
	return len == STRLEN(ct) || v[STRLEN(ct)] == '+' || v[STRLEN(ct)] == ';';
}

static bool req_id_char_ok(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-';
}

static bool status_is_client_side(int code)
{
	switch (code) {
	case STATUS_UNKNOWN:
	case STATUS_RESOURCE_EXHAUSTED:
	case STATUS_INTERNAL:
	case STATUS_UNAVAILABLE:
	case STATUS_DATA_LOSS:
		return false;
	default:
		return true;
	}
}

static double elapsed_ms(const struct grpc_call *call)
{
	return (double)(now_monotonic_ns() - call->start_ns) / 1e6;
}

#define NV(n, v)                                                                                  \
	{                                                                                         \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE    \
	}

/* ---- calls ---- */

static void conn_schedule_flush(struct conn *c);
static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
			    uint32_t *data_flags, nghttp2_data_source *source, void *user_data);

static void call_drop_input(struct grpc_call *call)
{
	if (call->conn && call->in_acct) {
		if (call->conn->in_buffered >= call->in_acct)
			call->conn->in_buffered -= call->in_acct;
		else
			call->conn->in_buffered = 0;
	}
	call->in_acct = 0;
	if (call->in) {
		evbuffer_free(call->in);
		call->in = NULL;
	}
}

static void call_free(struct grpc_call *call)
{
	if (!call)
		return;
	list_remove(call);
	call_drop_input(call);
	if (call->timer)
		event_free(call->timer);
	if (call->out)
		evbuffer_free(call->out);
	if (call->req)
		protobuf_c_message_free_unpacked(call->req, NULL);
	free(call->status_msg);
	free(call->reject_msg);
	free(call->path);
	free(call);
}

static const char *call_name(const struct grpc_call *call)
{
	if (call->method)
		return call->method->path;
	return call->path ? call->path : "";
}

/* For a quoted log field: escape backslashes and quotes (the logger escapes
 * control characters). */
static void quote_for_log(const char *in, char *out, size_t outsz)
{
	size_t o = 0;

	for (; *in && o + 2 < outsz; in++) {
		if (*in == '"' || *in == '\\')
			out[o++] = '\\';
		out[o++] = *in;
	}
	out[o] = '\0';
}

/* The call's outcome, once: to the metrics hook. */
static void call_account(struct grpc_call *call, int code)
{
	const struct grpc_server_opts *o = call->conn ? &call->conn->srv->opts : NULL;

	if (o && o->on_done)
		o->on_done(o->on_done_ud, call->method, code, now_monotonic_ns() - call->start_ns);
}

static void call_log_done(struct grpc_call *call, int code, const char *msg)
{
	char q[2 * MAX_STATUS_MSG];

	if (call->logged)
		return;
	call->logged = true;
	call_account(call, code);
	if (code == STATUS_OK) {
		log_debug(call->req_id, "call done", "method=%s status=%s duration_ms=%.3f", call_name(call),
			  status_name(code), elapsed_ms(call));
		return;
	}
	quote_for_log(msg ? msg : "", q, sizeof(q));
	if (status_is_client_side(code))
		log_info(call->req_id, "call failed", "method=%s status=%s error=\"%s\" duration_ms=%.3f",
			 call_name(call), status_name(code), q, elapsed_ms(call));
	else
		log_warn(call->req_id, "call failed", "method=%s status=%s error=\"%s\" duration_ms=%.3f",
			 call_name(call), status_name(code), q, elapsed_ms(call));
}

/* Queue the final status. Trailers-Only when no response HEADERS went out yet,
 * else trailers after the queued messages (see data_read_cb). */
static void call_submit_status(struct grpc_call *call, int code, const char *msg)
{
	struct conn *c = call->conn;
	char codebuf[16];
	char enc[3 * MAX_STATUS_MSG + 1];
	int r;

	if (!c || call->status_submitted)
		return;
	if (code < 0 || code > STATUS_UNAUTHENTICATED)
		code = STATUS_UNKNOWN;
	call->status_submitted = true;
	call_drop_input(call);
	if (call->timer)
		event_del(call->timer);
	call_log_done(call, code, msg);

	snprintf(codebuf, sizeof(codebuf), "%d", code);
	percent_encode(msg ? msg : "", enc, sizeof(enc));

	if (!call->headers_sent) {
		nghttp2_nv nv[] = {
			NV(":status", "200"),
			NV("content-type", "application/grpc"),
			NV("grpc-status", codebuf),
			NV("grpc-message", enc),
		};
		r = nghttp2_submit_response(c->session, call->stream_id, nv, enc[0] ? 4 : 3, NULL);
	} else {
		call->status = code;
		call->status_msg = enc[0] ? strdup(enc) : NULL;
		r = nghttp2_session_resume_data(c->session, call->stream_id);
		if (r == NGHTTP2_ERR_INVALID_ARGUMENT) /* not deferred: the data provider will see it */
			r = 0;
	}
	if (r < 0) {
		log_warn(call->req_id, "cannot submit gRPC status, resetting stream", "method=%s error=%s",
			 call_name(call), nghttp2_strerror(r));
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_INTERNAL_ERROR);
	}
	conn_schedule_flush(c);
}

/* A plain HTTP error (bad method or content type), with a gRPC status for
 * clients that look. */
static void call_http_reject(struct grpc_call *call, const char *http_status, int code, const char *msg)
{
	struct conn *c = call->conn;
	char codebuf[16];
	int r;

	call->status_submitted = true;
	call_drop_input(call);
	call_log_done(call, code, msg);
	snprintf(codebuf, sizeof(codebuf), "%d", code);
	nghttp2_nv nv[] = {
		NV(":status", http_status),
		NV("content-type", "application/grpc"),
		NV("grpc-status", codebuf),
		NV("grpc-message", msg),
	};
	r = nghttp2_submit_response(c->session, call->stream_id, nv, ARRAY_SIZE(nv), NULL);
	if (r < 0)
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_INTERNAL_ERROR);
	conn_schedule_flush(c);
}

static void call_fail(struct grpc_call *call, int code, const char *fmt, ...) _printf_(3, 4);
static void call_fail(struct grpc_call *call, int code, const char *fmt, ...)
{
	char msg[MAX_STATUS_MSG];
	va_list ap;

	va_start(ap, fmt);
	format_status_msg(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	call_submit_status(call, code, msg);
}

/* The stream is gone (closed, reset, connection dropped). Frees the call
 * unless the handler holds it; returns true if the caller must then run the
 * cancel callback (call_run_cancel). */
static bool call_detach(struct grpc_call *call, const char *reason, uint32_t h2_error)
{
	call_drop_input(call);
	list_remove(call);
	if (!call->logged)
		call_account(call, STATUS_CANCELLED);
	call->conn = NULL;
	if (call->timer) {
		event_free(call->timer);
		call->timer = NULL;
	}
	if (!call->logged) {
		call->logged = true;
		log_info(call->req_id, "call cancelled", "method=%s reason=\"%s\" h2_error=%" PRIu32 " duration_ms=%.3f",
			 call_name(call), reason, h2_error, elapsed_ms(call));
	}
	if (!call->handler_owns) {
		call_free(call);
		return false;
	}
	call->cancelled = true;
	if (call->out) {
		evbuffer_free(call->out);
		call->out = NULL;
	}
	return !call->cancel_run;
}

/* May free the call (the callback may complete it). */
static void call_run_cancel(struct grpc_call *call)
{
	if (call->cancel_run || !call->handler_owns)
		return;
	call->cancel_run = true;
	call->cancelled = true;
	if (call->cancel_fn)
		call->cancel_fn(call, call->cancel_ud);
}

static void call_deadline_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct grpc_call *call = arg;

	if (!call->conn || call->status_submitted)
		return;
	call->cancelled = true;
	call_submit_status(call, STATUS_DEADLINE_EXCEEDED, "deadline exceeded");
	if (call->handler_owns)
		call_run_cancel(call); /* may free the call */
}

/* Frame one message into call->out and make sure it gets sent. */
static int call_queue_message(struct grpc_call *call, const ProtobufCMessage *msg)
{
	struct conn *c = call->conn;
	struct evbuffer_iovec v;
	size_t size;
	uint8_t *p;
	int r;

	if (!msg)
		return -EINVAL;
	size = protobuf_c_message_get_packed_size(msg);
	if (size > call->max_msg_size || size > UINT32_MAX)
		return -EMSGSIZE;
	if (!call->out) {
		call->out = evbuffer_new();
		if (!call->out)
			return -ENOMEM;
	}
	/* a streaming client that does not read: do not queue without bound */
	if (evbuffer_get_length(call->out) + size + 5 > (call->send_limit ? call->send_limit : 4 * (call->max_msg_size + 5)) &&
	    evbuffer_get_length(call->out) > 0)
		return -ENOBUFS;
	if (evbuffer_reserve_space(call->out, (ev_ssize_t)(size + 5), &v, 1) != 1 || v.iov_len < size + 5)
		return -ENOMEM;
	p = v.iov_base;
	p[0] = 0;
	be32_write(p + 1, (uint32_t)size);
	if (protobuf_c_message_pack(msg, p + 5) != size)
		return -EIO;
	v.iov_len = size + 5;
	if (evbuffer_commit_space(call->out, &v, 1) < 0)
		return -ENOMEM;

	if (!call->headers_sent) {
		nghttp2_nv nv[] = {
			NV(":status", "200"),
			NV("content-type", "application/grpc"),
			NV("grpc-accept-encoding", "identity"),
		};
		nghttp2_data_provider prd = { .source.ptr = call, .read_callback = data_read_cb };
		r = nghttp2_submit_response(c->session, call->stream_id, nv, ARRAY_SIZE(nv), &prd);
		if (r < 0) {
			evbuffer_drain(call->out, evbuffer_get_length(call->out));
			return -EIO;
		}
		call->headers_sent = true;
	} else {
		nghttp2_session_resume_data(c->session, call->stream_id);
	}
	conn_schedule_flush(c);
	return 0;
}

/* Full request received (END_STREAM): check the framing, decode, dispatch. */
static void call_process_request(struct grpc_call *call)
{
	static const uint8_t empty[1];
	const struct grpc_method *m = call->method;
	size_t len = call->in ? evbuffer_get_length(call->in) : 0;
	ProtobufCMessage *req = NULL;
	const uint8_t *data;
	uint8_t hdr[5];
	uint32_t mlen;

	if (len == 0) {
		call_fail(call, STATUS_INTERNAL, "missing request message");
		return;
	}
	if (len < 5) {
		call_fail(call, STATUS_INTERNAL, "truncated gRPC message prefix: got %zu of 5 bytes", len);
		return;
	}
	evbuffer_copyout(call->in, hdr, 5);
	if (hdr[0] == 1) {
		call_fail(call, STATUS_INTERNAL, "compressed messages are not supported");
		return;
	}
	if (hdr[0] != 0) {
		call_fail(call, STATUS_INTERNAL, "invalid gRPC message flags 0x%02x", hdr[0]);
		return;
	}
	mlen = be32_read(hdr + 1);
	if (mlen > call->max_msg_size) {
		call_fail(call, STATUS_RESOURCE_EXHAUSTED,
			  "request message of %" PRIu32 " bytes exceeds the limit of %zu bytes", mlen,
			  call->max_msg_size);
		return;
	}
	if (len - 5 < mlen) {
		call_fail(call, STATUS_INTERNAL, "truncated gRPC message: got %zu of %" PRIu32 " bytes",
			  len - 5, mlen);
		return;
	}
	if (len - 5 > mlen) {
		call_fail(call, STATUS_INTERNAL, "expected exactly one request message, got %zu extra bytes",
			  len - 5 - mlen);
		return;
	}

	if (m->request) {
		evbuffer_drain(call->in, 5);
		data = mlen ? evbuffer_pullup(call->in, (ev_ssize_t)mlen) : empty;
		if (!data) {
			call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
		/* As the internal RPC does: what the message would take
		 * decoded, before decoding it (empty repeated elements or
		 * unknown fields turn a few bytes each into a heap block). */
		ssize_t cost = ipc_decoded_size(m->request, data, mlen);
		if (cost == -E2BIG || (cost >= 0 && (size_t)cost > GRPC_DECODE_BUDGET(mlen))) {
			call_drop_input(call);
			log_warn(NULL, "refused request too large decoded", "method=%s bytes=%" PRIu32 " decoded=%zd limit=%zu",
				 m->path, mlen, cost, GRPC_DECODE_BUDGET(mlen));
			call_fail(call, STATUS_RESOURCE_EXHAUSTED,
				  "%s: a message of %" PRIu32 " bytes would take over %zu bytes decoded", m->request->name,
				  mlen, GRPC_DECODE_BUDGET(mlen));
			return;
		}
		req = protobuf_c_message_unpack(m->request, NULL, mlen, data);
		if (!req) {
			call_drop_input(call);
			call_fail(call, STATUS_INVALID_ARGUMENT, "cannot decode %s", m->request->name);
			return;
		}
	}
	call_drop_input(call);
	call->req = req;
	call->invoked = true;
	call->handler_owns = true;
	m->handler(call, req, call->conn->srv->userdata); /* may complete the call */
}

static void call_reject_later(struct grpc_call *call, const char *http_status, int code, const char *fmt, ...)
	_printf_(4, 5);
static void call_reject_later(struct grpc_call *call, const char *http_status, int code, const char *fmt, ...)
{
	char msg[MAX_STATUS_MSG];
	va_list ap;

	va_start(ap, fmt);
	format_status_msg(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	call->reject = true;
	call->reject_http = http_status;
	call->reject_code = code;
	call->reject_msg = strdup(msg); /* NULL: answered without a message */
}

/* All request headers are in: validate and route. Errors are answered when
 * the request ends (call_end_stream); its body is discarded meanwhile. */
static void call_headers_done(struct grpc_call *call)
{
	struct conn *c = call->conn;
	struct grpc_server *s = c->srv;

	if (!call->is_post) {
		call_reject_later(call, "405", STATUS_UNIMPLEMENTED, "method must be POST");
		return;
	}
	if (!call->ct_ok) {
		call_reject_later(call, "415", STATUS_INTERNAL, "invalid content-type");
		return;
	}
	if (call->bad_timeout) {
		call_reject_later(call, NULL, STATUS_INTERNAL, "malformed grpc-timeout");
		return;
	}

	if (call->path && !call->path_too_long)
		for (size_t i = 0; i < s->n_methods; i++)
			if (s->methods[i].path && strcmp(s->methods[i].path, call->path) == 0) {
				call->method = &s->methods[i];
				break;
			}
	if (!call->method) {
		call_reject_later(call, NULL, STATUS_UNIMPLEMENTED, "unknown method %s", call->path ? call->path : "");
		return;
	}
	if (!call->method->handler) {
		call_reject_later(call, NULL, STATUS_UNIMPLEMENTED, "%s is not implemented by criod yet",
				  call->method->path + (call->method->path[0] == '/'));
		return;
	}

	if (call->timeout_ns >= 0) {
		int64_t t = call->timeout_ns;
		call->deadline_ns = call->start_ns > INT64_MAX - t ? INT64_MAX : call->start_ns + t;
		if (t <= MAX_TIMER_NS) {
			struct timeval tv = { .tv_sec = (time_t)(t / 1000000000), .tv_usec = (suseconds_t)((t % 1000000000) / 1000) };
			call->timer = evtimer_new(s->base, call_deadline_cb, call);
			if (!call->timer || evtimer_add(call->timer, &tv) < 0) {
				call_fail(call, STATUS_RESOURCE_EXHAUSTED, "cannot arm the deadline timer");
				return;
			}
		}
	}
}

static void call_end_stream(struct grpc_call *call)
{
	if (call->status_submitted || call->invoked)
		return;
	if (call->reject) {
		const char *msg = call->reject_msg ? call->reject_msg : "";
		if (call->reject_http)
			call_http_reject(call, call->reject_http, call->reject_code, msg);
		else
			call_submit_status(call, call->reject_code, msg);
		return;
	}
	call_process_request(call);
}

/* ---- nghttp2 callbacks ---- */

/* Keep an error text for the connection's log line (quotes and backslashes
 * replaced; the logger escapes control characters). */
static void set_last_err(struct conn *c, const char *msg, size_t len)
{
	size_t n = len < sizeof(c->last_err) - 1 ? len : sizeof(c->last_err) - 1;

	memcpy(c->last_err, msg, n);
	c->last_err[n] = '\0';
	for (char *p = c->last_err; *p; p++)
		if (*p == '"' || *p == '\\')
			*p = '\'';
}

static ssize_t data_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf _unused_, size_t length,
			    uint32_t *data_flags, nghttp2_data_source *source, void *user_data _unused_)
{
	struct grpc_call *call = source->ptr;
	size_t avail = call->out ? evbuffer_get_length(call->out) : 0;
	size_t n = avail < length ? avail : length;

	if (n > 0)
		*data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (n < avail)
		return (ssize_t)n;
	if (!call->status_submitted)
		return n > 0 ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;

	/* everything queued goes out in this frame: end with trailers */
	char codebuf[16];
	const char *msg = call->status_msg ? call->status_msg : "";
	snprintf(codebuf, sizeof(codebuf), "%d", call->status);
	nghttp2_nv nv[] = {
		NV("grpc-status", codebuf),
		NV("grpc-message", msg),
	};
	if (nghttp2_submit_trailer(session, stream_id, nv, msg[0] ? 2 : 1) < 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	*data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	return (ssize_t)n;
}

static int send_data_cb(nghttp2_session *session _unused_, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
			nghttp2_data_source *source, void *user_data)
{
	struct conn *c = user_data;
	struct grpc_call *call = source->ptr;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t padlen = frame->data.padlen;

	if (evbuffer_get_length(out) >= OUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (evbuffer_add(out, framehd, 9) < 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (padlen > 0) {
		uint8_t pl = (uint8_t)(padlen - 1);
		if (evbuffer_add(out, &pl, 1) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	if (length > 0 && (!call->out || evbuffer_remove_buffer(call->out, out, length) != (int)length))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (padlen > 1) {
		static const uint8_t zeros[256];
		if (evbuffer_add(out, zeros, padlen - 1) < 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static int on_begin_headers_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct conn *c = user_data;
	struct grpc_call *call;

	if (c->dead || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = calloc(1, sizeof(*call));
	if (!call)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	call->conn = c;
	call->stream_id = frame->hd.stream_id;
	call->max_msg_size = c->srv->opts.max_msg_size;
	call->start_ns = now_monotonic_ns();
	call->timeout_ns = -1;
	/* replaced by the client's x-request-id, if any */
	if (random_hex(call->req_id, 8) < 0)
		snprintf(call->req_id, sizeof(call->req_id), "%016" PRIx64, ++c->srv->next_req_seq);
	if (nghttp2_session_set_stream_user_data(session, call->stream_id, call) < 0) {
		free(call);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	list_push(&c->calls, call);
	return 0;
}

#define HDR_IS(lit) (namelen == STRLEN(lit) && memcmp(name, lit, STRLEN(lit)) == 0)

static int on_header_cb(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen, uint8_t flags _unused_, void *user_data)
{
	struct conn *c = user_data;
	struct grpc_call *call;

	if (c->dead || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!call)
		return 0;

	if (HDR_IS(":method")) {
		call->is_post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
	} else if (HDR_IS(":path")) {
		free(call->path);
		call->path_too_long = valuelen > MAX_PATH_LEN;
		call->path = strndup((const char *)value, valuelen > MAX_PATH_LEN ? MAX_PATH_LEN : valuelen);
		if (!call->path)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	} else if (HDR_IS("content-type")) {
		call->ct_ok = content_type_ok(value, valuelen);
	} else if (HDR_IS("grpc-timeout")) {
		if (parse_timeout(value, valuelen, &call->timeout_ns) < 0) {
			call->bad_timeout = true;
			call->timeout_ns = -1;
		}
	} else if (HDR_IS("x-request-id") && valuelen > 0) {
		size_t n = 0;
		for (size_t i = 0; i < valuelen && n < MAX_REQ_ID_LEN; i++)
			call->req_id[n++] = req_id_char_ok(value[i]) ? (char)value[i] : '_';
		call->req_id[n] = '\0';
	}
	return 0;
}

static int on_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct conn *c = user_data;
	struct grpc_call *call;

	if (c->dead)
		return 0;
	if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) && !c->got_settings) {
		c->got_settings = true; /* a real HTTP/2 client: no more preface timeout */
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	}
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
	if (!call)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		call_headers_done(call);
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		call_end_stream(call);
	return 0;
}

static int on_data_chunk_recv_cb(nghttp2_session *session, uint8_t flags _unused_, int32_t stream_id, const uint8_t *data,
				 size_t len, void *user_data)
{
	struct conn *c = user_data;
	struct grpc_call *call;
	size_t have;

	if (c->dead)
		return 0;
	call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (!call || call->status_submitted || call->invoked || call->reject || len == 0)
		return 0;
	have = call->in ? evbuffer_get_length(call->in) : 0;
	if (have + len > call->max_msg_size + 5) {
		call_fail(call, STATUS_RESOURCE_EXHAUSTED, "request larger than the limit of %zu bytes",
			  call->max_msg_size);
		return 0;
	}
	if (c->in_buffered + len > c->srv->conn_input_budget) {
		call_fail(call, STATUS_RESOURCE_EXHAUSTED, "too much request data buffered on this connection");
		return 0;
	}
	if (!call->in) {
		call->in = evbuffer_new();
		if (!call->in) {
			call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return 0;
		}
	}
	if (evbuffer_add(call->in, data, len) < 0) {
		call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return 0;
	}
	call->in_acct += len;
	c->in_buffered += len;

	/* reject early what can never be valid, before buffering all of it */
	have += len;
	if (have >= 5) {
		uint8_t hdr[5];
		uint32_t mlen;

		evbuffer_copyout(call->in, hdr, 5);
		mlen = be32_read(hdr + 1);
		if (mlen > call->max_msg_size)
			call_fail(call, STATUS_RESOURCE_EXHAUSTED,
				  "request message of %" PRIu32 " bytes exceeds the limit of %zu bytes", mlen,
				  call->max_msg_size);
		else if (have > (size_t)mlen + 5)
			call_fail(call, STATUS_INTERNAL, "expected exactly one request message");
	}
	return 0;
}

static int on_frame_send_cb(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
	struct conn *c = user_data;

	if (c->dead)
		return 0;
	if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
		/* the GOAWAY debug data says why, else what error_cb saw last */
		if (frame->goaway.opaque_data_len > 0)
			set_last_err(c, (const char *)frame->goaway.opaque_data, frame->goaway.opaque_data_len);
		if (!c->error_logged)
			log_warn(NULL, "HTTP/2 connection error, closing connection",
				 "conn=%" PRIu64 " h2_error=%s detail=\"%s\"", c->id,
				 nghttp2_http2_strerror(frame->goaway.error_code), c->last_err);
		c->error_logged = true;
		return 0;
	}
	/* We ended our side (an early error, a deadline) while the client still
	 * sends: tell it to stop, like grpc-go does. */
	if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id) == 0)
		nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
	return 0;
}

static int on_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
	struct conn *c = user_data;
	struct grpc_call *call;

	if (c->dead)
		return 0;
	call = nghttp2_session_get_stream_user_data(session, stream_id);
	if (!call)
		return 0;
	nghttp2_session_set_stream_user_data(session, stream_id, NULL);
	if (call_detach(call, error_code == NGHTTP2_NO_ERROR ? "stream closed" : "stream reset", error_code))
		call_run_cancel(call); /* may free the call */
	return 0;
}

/* Stream and connection errors alike: kept for the one line logged when the
 * connection is closed for it (GOAWAY with an error, or a fatal error). */
static int error_cb(nghttp2_session *session _unused_, int lib_error_code _unused_, const char *msg, size_t len, void *user_data)
{
	struct conn *c = user_data;

	set_last_err(c, msg, len);
	log_debug(NULL, "HTTP/2 error", "conn=%" PRIu64 " error=\"%s\"", c->id, c->last_err);
	return 0;
}

/* ---- connections ---- */

static void conn_free(struct conn *c)
{
	struct grpc_server *s = c->srv;
	struct call_list cancelq = { NULL };
	struct grpc_call *call;

	/* unlink from the server */
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_conns--;

	/* Detach every call before anything else runs: user code invoked below
	 * must not reach this connection or its session. */
	while ((call = c->calls.head)) {
		if (call_detach(call, "connection closed", 0))
			list_push(&cancelq, call);
	}
	c->dead = true;
	nghttp2_session_del(c->session);
	bufferevent_free(c->bev);
	event_free(c->flush_ev);
	log_debug(NULL, "connection closed", "conn=%" PRIu64, c->id);
	free(c);

	/* A cancel callback may complete any call, including queued ones: those
	 * unlink themselves from cancelq when freed. */
	while ((call = cancelq.head)) {
		list_remove(call);
		call_run_cancel(call);
	}
}

static void conn_start_closing(struct conn *c)
{
	struct timeval tv = { .tv_sec = CLOSE_TIMEOUT_SEC, .tv_usec = 0 };

	if (c->closing)
		return;
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
}

/* Pull frames out of nghttp2 into the socket buffer (up to OUT_HIGH) and close
 * the connection when HTTP/2 is done with it. Returns -EPIPE if the connection
 * was freed. */
static int conn_flush(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (evbuffer_get_length(out) < OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->session, &data);

		if (n < 0) {
			if (!c->error_logged) {
				c->error_logged = true;
				log_warn(NULL, "HTTP/2 send failed, closing connection", "conn=%" PRIu64 " error=\"%s\"",
					 c->id, nghttp2_strerror((int)n));
			}
			conn_free(c);
			return -EPIPE;
		}
		if (n == 0)
			break;
		if (evbuffer_add(out, data, (size_t)n) < 0) {
			log_error_errno(-ENOMEM, NULL, "cannot queue output, closing connection", "conn=%" PRIu64,
					c->id);
			conn_free(c);
			return -EPIPE;
		}
	}

	if (!nghttp2_session_want_write(c->session) && (c->closing || !nghttp2_session_want_read(c->session))) {
		if (evbuffer_get_length(out) == 0) {
			conn_free(c);
			return -EPIPE;
		}
		conn_start_closing(c); /* freed by the write callback once drained */
	}
	return 0;
}

static void conn_flush_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	conn_flush(arg);
}

static void conn_schedule_flush(struct conn *c)
{
	if (c && !c->dead)
		event_active(c->flush_ev, EV_TIMEOUT, 0);
}

/* Malformed or hostile HTTP/2: GOAWAY when possible, then close. */
static void conn_fail(struct conn *c, int h2err)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (!c->error_logged) {
		c->error_logged = true;
		log_warn(NULL, "malformed HTTP/2, closing connection", "conn=%" PRIu64 " error=\"%s\" detail=\"%s\"",
			 c->id, nghttp2_strerror(h2err), c->last_err);
	}
	evbuffer_drain(in, evbuffer_get_length(in));
	nghttp2_session_terminate_session(c->session,
					  h2err == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
	conn_start_closing(c);
	conn_flush(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;

	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while ((len = evbuffer_get_contiguous_space(in)) > 0) {
		unsigned char *data = evbuffer_pullup(in, (ev_ssize_t)len);
		ssize_t n = nghttp2_session_mem_recv(c->session, data, len);

		if (n < 0) {
			conn_fail(c, (int)n);
			return;
		}
		evbuffer_drain(in, (size_t)n);
	}
	conn_flush(c);
}

static void conn_write_cb(struct bufferevent *bev _unused_, void *arg)
{
	conn_flush(arg);
}

static void conn_event_cb(struct bufferevent *bev _unused_, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		log_debug(NULL, "connection closed by peer", "conn=%" PRIu64, c->id);
	} else if (what & BEV_EVENT_TIMEOUT) {
		if (!c->error_logged && (what & BEV_EVENT_READING))
			log_warn(NULL, "no HTTP/2 preface from client, closing connection",
				 "conn=%" PRIu64 " timeout_s=%d", c->id, PREFACE_TIMEOUT_SEC);
		else if (!c->error_logged)
			log_warn(NULL, "connection write timed out, closing", "conn=%" PRIu64, c->id);
	} else if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();
		/* a client that goes away with unread data: normal enough */
		if (err == ECONNRESET || err == EPIPE)
			log_debug(NULL, "connection reset by peer", "conn=%" PRIu64, c->id);
		else if (!c->error_logged)
			log_warn_errno(err, NULL, "connection error, closing", "conn=%" PRIu64, c->id);
	} else {
		return;
	}
	c->error_logged = true;
	conn_free(c);
}

static int conn_new(struct grpc_server *s, int fd)
{
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->opts.max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
	};
	struct conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->srv = s;
	c->id = ++s->next_conn_id;
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		close(fd);
		free(c);
		return -ENOMEM;
	}
	c->flush_ev = event_new(s->base, -1, 0, conn_flush_cb, c);
	if (!c->flush_ev) {
		r = -ENOMEM;
		goto fail;
	}
	r = nghttp2_session_server_new2(&c->session, s->cbs, c, s->h2opt);
	if (r < 0) {
		c->session = NULL;
		r = -ENOMEM;
		goto fail;
	}
	r = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, ARRAY_SIZE(iv));
	if (r == 0)
		r = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
	if (r < 0) {
		r = -ENOMEM;
		goto fail;
	}

	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_set_max_single_read(c->bev, 256 << 10);
	bufferevent_set_max_single_write(c->bev, OUT_HIGH);
	{
		struct timeval tv = { .tv_sec = PREFACE_TIMEOUT_SEC, .tv_usec = 0 };
		bufferevent_set_timeouts(c->bev, &tv, NULL);
	}
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0) {
		r = -EIO;
		goto fail;
	}

	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->n_conns++;
	log_debug(NULL, "connection accepted", "conn=%" PRIu64, c->id);
	conn_flush(c); /* our SETTINGS */
	return 0;

fail:
	if (c->session)
		nghttp2_session_del(c->session);
	if (c->flush_ev)
		event_free(c->flush_ev);
	bufferevent_free(c->bev);
	free(c);
	return r;
}

/* ---- listener ---- */

static void accept_cb(struct evconnlistener *l _unused_, evutil_socket_t fd, struct sockaddr *sa _unused_, int socklen _unused_, void *arg)
{
	struct grpc_server *s = arg;
	int r;

	if (s->n_conns >= s->opts.max_conns) {
		log_warn(NULL, "connection limit reached, refusing connection", "max_conns=%" PRIu32,
			 s->opts.max_conns);
		close(fd);
		return;
	}
	r = conn_new(s, fd);
	if (r < 0)
		log_error_errno(r, NULL, "cannot set up connection");
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct grpc_server *s = arg;
	struct timeval tv = { .tv_sec = 0, .tv_usec = ACCEPT_RETRY_MS * 1000 };

	/* EMFILE and friends: a level-triggered listener would spin; pause it. */
	log_warn_errno(EVUTIL_SOCKET_ERROR(), NULL, "accept failed, pausing the listener", "retry_ms=%d",
		       ACCEPT_RETRY_MS);
	evconnlistener_disable(l);
	evtimer_add(s->accept_retry, &tv);
}

static void accept_retry_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct grpc_server *s = arg;

	evconnlistener_enable(s->listener);
}

/* ---- public API ---- */

/* The server owns listen_fd once this succeeds; on failure the caller keeps it. */
int grpc_server_new(struct event_base *base, int listen_fd, const struct grpc_server_opts *opts,
		    const struct grpc_method *methods, size_t n_methods, void *userdata,
		    struct grpc_server **out)
{
	struct grpc_server *s;
	int r = -ENOMEM;

	if (!base || listen_fd < 0 || !out || (n_methods > 0 && !methods))
		return -EINVAL;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->methods = methods;
	s->n_methods = n_methods;
	s->userdata = userdata;
	if (opts)
		s->opts = *opts;
	if (s->opts.max_msg_size == 0)
		s->opts.max_msg_size = DEFAULT_MAX_MSG_SIZE;
	if (s->opts.max_msg_size > UINT32_MAX - 5)
		s->opts.max_msg_size = UINT32_MAX - 5;
	if (s->opts.max_streams == 0)
		s->opts.max_streams = DEFAULT_MAX_STREAMS;
	if (s->opts.max_conns == 0)
		s->opts.max_conns = DEFAULT_MAX_CONNS;
	s->conn_input_budget = 2 * (s->opts.max_msg_size + 5);
	if (s->conn_input_budget < MIN_CONN_INPUT_BUDGET)
		s->conn_input_budget = MIN_CONN_INPUT_BUDGET;

	if (nghttp2_session_callbacks_new(&s->cbs) != 0) {
		s->cbs = NULL;
		goto fail;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(s->cbs, on_begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(s->cbs, on_header_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(s->cbs, on_frame_recv_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(s->cbs, on_data_chunk_recv_cb);
	nghttp2_session_callbacks_set_on_frame_send_callback(s->cbs, on_frame_send_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(s->cbs, on_stream_close_cb);
	nghttp2_session_callbacks_set_send_data_callback(s->cbs, send_data_cb);
	nghttp2_session_callbacks_set_error_callback2(s->cbs, error_cb);

	if (nghttp2_option_new(&s->h2opt) != 0) {
		s->h2opt = NULL;
		goto fail;
	}
	nghttp2_option_set_no_closed_streams(s->h2opt, 1);

	s->accept_retry = evtimer_new(base, accept_retry_cb, s);
	if (!s->accept_retry)
		goto fail;
	/* backlog 0: the socket is already listening */
	s->listener = evconnlistener_new(base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
					 listen_fd);
	if (!s->listener) {
		r = -EIO;
		goto fail;
	}
	evconnlistener_set_error_cb(s->listener, accept_error_cb);
	*out = s;
	return 0;

fail:
	if (s->accept_retry)
		event_free(s->accept_retry);
	if (s->h2opt)
		nghttp2_option_del(s->h2opt);
	if (s->cbs)
		nghttp2_session_callbacks_del(s->cbs);
	free(s);
	return r;
}

void grpc_server_free(struct grpc_server *s)
{
	if (!s)
		return;
	if (s->listener)
		evconnlistener_free(s->listener);
	s->listener = NULL;
	if (s->accept_retry)
		event_free(s->accept_retry);
	s->accept_retry = NULL;
	while (s->conns)
		conn_free(s->conns);
	nghttp2_option_del(s->h2opt);
	nghttp2_session_callbacks_del(s->cbs);
	free(s);
}

/* The handler is done with the call: send the status if the stream is still
 * there, then drop the handler's reference. */
static void call_complete(struct grpc_call *call, int code, const char *msg)
{
	if (!call || !call->handler_owns)
		return;
	call->handler_owns = false;
	if (call->conn) {
		if (!call->status_submitted)
			call_submit_status(call, code, msg);
		/* freed when the stream closes */
	} else {
		log_debug(call->req_id, "completion of a cancelled call dropped", "method=%s status=%s",
			  call_name(call), status_name(code));
		call_free(call);
	}
}

void grpc_call_reply(struct grpc_call *call, const ProtobufCMessage *resp)
{
	int r;

	if (!call || !call->handler_owns)
		return;
	if (call->conn && !call->status_submitted) {
		r = call_queue_message(call, resp);
		if (r == -EMSGSIZE) {
			call_complete(call, STATUS_RESOURCE_EXHAUSTED, "response message exceeds the size limit");
			return;
		}
		if (r < 0) {
			log_error_errno(r, call->req_id, "cannot queue response", "method=%s", call_name(call));
			call_complete(call, STATUS_INTERNAL, "cannot send the response");
			return;
		}
	}
	call_complete(call, STATUS_OK, "");
}

int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg)
{
	if (!call)
		return -EINVAL;
	if (!call->conn || call->cancelled || call->status_submitted)
		return -ECANCELED;
	return call_queue_message(call, msg);
}

void grpc_call_finish(struct grpc_call *call, int status, const char *fmt, ...)
{
	char msg[MAX_STATUS_MSG];
	va_list ap;

	if (!call || !call->handler_owns)
		return;
	va_start(ap, fmt);
	format_status_msg(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	call_complete(call, status, msg);
}

void grpc_call_set_send_limit(struct grpc_call *call, size_t bytes)
{
	if (call)
		call->send_limit = bytes;
}

size_t grpc_call_queued_bytes(const struct grpc_call *call)
{
	return call && call->out ? evbuffer_get_length(call->out) : 0;
}

void grpc_call_reset(struct grpc_call *call, int status, const char *fmt, ...)
{
	char msg[MAX_STATUS_MSG];
	va_list ap;

	if (!call || !call->handler_owns)
		return;
	va_start(ap, fmt);
	format_status_msg(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (call->conn && !call->status_submitted) {
		struct conn *c = call->conn;
		/* The messages still queued could only follow what the client
		 * has not taken: drop them and reset the stream (gRPC clients
		 * read ENHANCE_YOUR_CALM as RESOURCE_EXHAUSTED, CANCEL as
		 * CANCELLED); the trailers could not pass a closed window. */
		uint32_t h2 = status == STATUS_RESOURCE_EXHAUSTED ? NGHTTP2_ENHANCE_YOUR_CALM
			      : status == STATUS_CANCELLED        ? NGHTTP2_CANCEL
								  : NGHTTP2_INTERNAL_ERROR;
		call->status_submitted = true;
		if (call->timer)
			event_del(call->timer);
		if (call->out)
			evbuffer_drain(call->out, evbuffer_get_length(call->out));
		call_log_done(call, status, msg);
		nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call->stream_id, h2);
		conn_schedule_flush(c);
	}
	call_complete(call, status, msg);
}

bool grpc_call_cancelled(const struct grpc_call *call)
{
	return !call || call->cancelled;
}

void grpc_call_set_cancel(struct grpc_call *call, grpc_cancel_fn fn, void *userdata)
{
	if (!call)
		return;
	call->cancel_fn = fn;
	call->cancel_ud = userdata;
}

const char *grpc_call_request_id(const struct grpc_call *call)
{
	return call ? call->req_id : "";
}

const char *grpc_call_method(const struct grpc_call *call)
{
	return call ? call_name(call) : "";
}

int64_t grpc_call_deadline_ns(const struct grpc_call *call)
{
	return call && call->timeout_ns >= 0 ? call->deadline_ns : 0;
}
