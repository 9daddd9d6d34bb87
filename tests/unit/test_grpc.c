/* The gRPC server: a real grpc_server on a real unix socket, driven by a real
 * nghttp2 client session in the same thread (the test pumps both the event
 * loop and the client socket). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "../../criod/grpc.h"
#include "internal/envelope.pb-c.h"
#include "log.h"
#include "status.h"

#define MAX_MSG ((size_t)4 << 20)
#define MAX_PENDING 64
/* generous: the tests also run under valgrind on loaded machines */
#define WAIT_MS 30000

/* ---- the server side ---- */

struct ctx {
	struct event_base *base;
	struct grpc_server *srv;
	char dir[64];
	char sock[100];

	char last_req_id[80];
	int64_t last_deadline;

	struct grpc_call *pending[MAX_PENDING];
	int n_handled;
	int n_cancel;
	bool finish_in_cancel;
	bool finish_all_in_cancel;

	struct grpc_call *stream_call;
	struct event *stream_timer;
	int stream_sent;

	/* Flood: messages taken before grpc_call_send said -ENOBUFS */
	int flood_sent;
	int flood_refused;
	size_t flood_queued;
};

static void h_ping(struct grpc_call *call, const ProtobufCMessage *req, void *ud)
{
	struct ctx *t = ud;
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;

	assert_non_null(req);
	assert_ptr_equal(req->descriptor, &criod__internal__ping_request__descriptor);
	snprintf(t->last_req_id, sizeof(t->last_req_id), "%s", grpc_call_request_id(call));
	t->last_deadline = grpc_call_deadline_ns(call);
	t->n_handled++;
	r.component = (char *)"criod-test";
	r.version = (char *)grpc_call_method(call);
	r.pid = 4242;
	grpc_call_reply(call, &r.base); /* synchronously, from inside the handler */
}

static void h_echo(struct grpc_call *call, const ProtobufCMessage *req, void *ud)
{
	const Criod__Internal__Envelope *in = (const Criod__Internal__Envelope *)req;
	Criod__Internal__Envelope out = CRIOD__INTERNAL__ENVELOPE__INIT;

	out.call_id = in->call_id;
	out.body = in->body;
	out.request_id = (char *)grpc_call_request_id(call);
	grpc_call_reply(call, &out.base);
}

static void h_fail(struct grpc_call *call, const ProtobufCMessage *req, void *ud)
{
	grpc_call_finish(call, STATUS_NOT_FOUND, "na\xc3\xafve %d%% ok\n", 100);
}

static void pending_remove(struct ctx *t, struct grpc_call *call)
{
	for (int i = 0; i < MAX_PENDING; i++)
		if (t->pending[i] == call)
			t->pending[i] = NULL;
}

static int pending_count(struct ctx *t)
{
	int n = 0;
	for (int i = 0; i < MAX_PENDING; i++)
		n += t->pending[i] != NULL;
	return n;
}

static void hang_cancelled(struct grpc_call *call, void *ud)
{
	struct ctx *t = ud;

	assert_true(grpc_call_cancelled(call));
	t->n_cancel++;
	if (t->finish_all_in_cancel) {
		/* complete every parked call, including ones whose cancel
		 * callback has not run yet */
		for (int i = 0; i < MAX_PENDING; i++) {
			struct grpc_call *c = t->pending[i];
			if (c) {
				t->pending[i] = NULL;
				grpc_call_finish(c, STATUS_CANCELLED, "cancelled");
			}
		}
	} else if (t->finish_in_cancel) {
		pending_remove(t, call);
		grpc_call_finish(call, STATUS_CANCELLED, "cancelled");
	}
}

/* Parks the call until the test (or its cancel callback) completes it. */
static void h_hang(struct grpc_call *call, const ProtobufCMessage *req, void *ud)
{
	struct ctx *t = ud;

	t->n_handled++;
	t->last_deadline = grpc_call_deadline_ns(call);
	grpc_call_set_cancel(call, hang_cancelled, t);
	for (int i = 0; i < MAX_PENDING; i++)
		if (!t->pending[i]) {
			t->pending[i] = call;
			return;
		}
	fail_msg("too many parked calls");
}

static void send_stream_msg(struct ctx *t)
{
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;

	r.pid = ++t->stream_sent;
	r.component = (char *)"stream";
	assert_int_equal(grpc_call_send(t->stream_call, &r.base), 0);
}

static void stream_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ctx *t = arg;
	struct timeval tv = { 0, 5000 };

	send_stream_msg(t);
	if (t->stream_sent < 3) {
		evtimer_add(t->stream_timer, &tv);
		return;
	}
	grpc_call_finish(t->stream_call, STATUS_OK, NULL);
	t->stream_call = NULL;
}

/* Server streaming: one message now, two more later from a timer. */
static void h_stream(struct grpc_call *call, const ProtobufCMessage *req, void *ud)
{
	struct ctx *t = ud;
	struct timeval tv = { 0, 5000 };

	t->stream_call = call;
	t->stream_sent = 0;
	send_stream_msg(t);
	evtimer_add(t->stream_timer, &tv);
}

/* Server streaming into a bounded queue: send 1000-byte messages until the
 * call refuses one (the client's window is closed), then reset. */
static void h_flood(struct grpc_call *call, const ProtobufCMessage *req, void *ud)
{
	struct ctx *t = ud;
	char comp[1000];
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	int rc;

	memset(comp, 'x', sizeof(comp) - 1);
	comp[sizeof(comp) - 1] = '\0';
	r.component = comp;
	grpc_call_set_send_limit(call, 16 << 10);
	t->flood_sent = 0;
	while ((rc = grpc_call_send(call, &r.base)) == 0 && t->flood_sent < 10000)
		t->flood_sent++;
	t->flood_refused = rc;
	t->flood_queued = grpc_call_queued_bytes(call);
	grpc_call_reset(call, STATUS_RESOURCE_EXHAUSTED, "slow");
	/* completed: further sends are refused, not queued */
	assert_int_equal(grpc_call_send(call, &r.base), -ECANCELED);
}

static const struct grpc_method methods[] = {
	{ "/test.Svc/Ping", &criod__internal__ping_request__descriptor, h_ping, false },
	{ "/test.Svc/Echo", &criod__internal__envelope__descriptor, h_echo, false },
	{ "/test.Svc/Fail", &criod__internal__ping_request__descriptor, h_fail, false },
	{ "/test.Svc/Unimpl", &criod__internal__ping_request__descriptor, NULL, false },
	{ "/test.Svc/Hang", &criod__internal__ping_request__descriptor, h_hang, false },
	{ "/test.Svc/Stream", &criod__internal__ping_request__descriptor, h_stream, true },
	{ "/test.Svc/Flood", &criod__internal__ping_request__descriptor, h_flood, true },
};

static int server_start(struct ctx *t, uint32_t max_conns, uint32_t max_streams)
{
	struct grpc_server_opts opts = { .max_msg_size = MAX_MSG, .max_streams = max_streams, .max_conns = max_conns };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	unlink(t->sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 128), 0);
	return grpc_server_new(t->base, fd, &opts, methods, sizeof(methods) / sizeof(methods[0]), t, &t->srv);
}

static int setup(void **state)
{
	struct ctx *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_grpc.XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->sock, sizeof(t->sock), "%s/grpc.sock", t->dir);
	t->base = event_base_new();
	assert_non_null(t->base);
	t->stream_timer = evtimer_new(t->base, stream_tick, t);
	assert_int_equal(server_start(t, 0, 0), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *t = *state;

	grpc_server_free(t->srv);
	/* anything still parked is completed after its connection went away */
	for (int i = 0; i < MAX_PENDING; i++)
		if (t->pending[i]) {
			struct grpc_call *c = t->pending[i];
			t->pending[i] = NULL;
			grpc_call_finish(c, STATUS_OK, NULL);
		}
	event_free(t->stream_timer);
	event_base_free(t->base);
	unlink(t->sock);
	rmdir(t->dir);
	free(t);
	return 0;
}

/* ---- the client side: nghttp2 client session over a non-blocking socket ---- */

struct h2stream {
	int32_t id;
	uint8_t *body;
	size_t body_len, body_off;
	bool hold_body; /* do not end the request stream yet */
	int http_status;
	int grpc_status;
	char grpc_message[2048];
	uint8_t *data;
	size_t data_len, data_cap;
	bool closed;
	uint32_t close_error;
};

struct h2client {
	int fd;
	nghttp2_session *s;
	uint8_t *pend;
	size_t pend_len, pend_off;
	bool eof;
};

static int cl_on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
	char v[2048];

	if (!st)
		return 0;
	snprintf(v, sizeof(v), "%.*s", (int)valuelen, value);
	if (namelen == 7 && memcmp(name, ":status", 7) == 0)
		st->http_status = atoi(v);
	else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
		st->grpc_status = atoi(v);
	else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		snprintf(st->grpc_message, sizeof(st->grpc_message), "%s", v);
	return 0;
}

static int cl_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(s, id);

	if (!st)
		return 0;
	if (st->data_len + len > st->data_cap) {
		st->data_cap = (st->data_len + len) * 2;
		st->data = realloc(st->data, st->data_cap);
		assert_non_null(st->data);
	}
	memcpy(st->data + st->data_len, data, len);
	st->data_len += len;
	return 0;
}

static int cl_on_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *ud)
{
	struct h2stream *st = nghttp2_session_get_stream_user_data(s, id);

	if (st) {
		st->closed = true;
		st->close_error = error_code;
	}
	return 0;
}

static ssize_t cl_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
			    nghttp2_data_source *src, void *ud)
{
	struct h2stream *st = src->ptr;
	size_t n = st->body_len - st->body_off;

	if (n > length)
		n = length;
	if (n)
		memcpy(buf, st->body + st->body_off, n);
	st->body_off += n;
	if (st->body_off == st->body_len) {
		if (st->hold_body)
			return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	}
	return (ssize_t)n;
}

static int connect_raw(struct ctx *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", t->sock);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static struct h2client *client_new(struct ctx *t)
{
	struct h2client *c = calloc(1, sizeof(*c));
	nghttp2_session_callbacks *cbs;

	assert_non_null(c);
	c->fd = connect_raw(t);
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cl_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cl_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cl_on_close);
	assert_int_equal(nghttp2_session_client_new(&c->s, cbs, c), 0);
	nghttp2_session_callbacks_del(cbs);
	/* big windows: fewer WINDOW_UPDATE round trips through the pump */
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 8 << 20 } };
	assert_int_equal(nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 1), 0);
	assert_int_equal(nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 32 << 20), 0);
	return c;
}

/* A client whose stream windows are `window` bytes and never reopened. */
static struct h2client *client_new_closed_window(struct ctx *t, uint32_t window)
{
	struct h2client *c = calloc(1, sizeof(*c));
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;

	assert_non_null(c);
	c->fd = connect_raw(t);
	assert_int_equal(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cl_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cl_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cl_on_close);
	assert_int_equal(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	assert_int_equal(nghttp2_session_client_new2(&c->s, cbs, c, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window } };
	assert_int_equal(nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 1), 0);
	return c;
}

static void client_free(struct h2client *c)
{
	if (!c)
		return;
	nghttp2_session_del(c->s);
	if (c->fd >= 0)
		close(c->fd);
	free(c->pend);
	free(c);
}

static void stream_free(struct h2stream *st)
{
	if (!st)
		return;
	free(st->body);
	free(st->data);
	free(st);
}

static void client_io(struct h2client *c)
{
	uint8_t buf[65536];

	if (c->eof)
		return;
	for (;;) {
		if (c->pend_off < c->pend_len) {
			ssize_t n = send(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN)
					break;
				c->eof = true;
				return;
			}
			c->pend_off += (size_t)n;
			continue;
		}
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->s, &data);
		assert_true(n >= 0);
		if (n == 0)
			break;
		c->pend = realloc(c->pend, (size_t)n);
		assert_non_null(c->pend);
		memcpy(c->pend, data, (size_t)n);
		c->pend_len = (size_t)n;
		c->pend_off = 0;
	}
	for (;;) {
		ssize_t n = read(c->fd, buf, sizeof(buf));
		if (n > 0) {
			ssize_t r = nghttp2_session_mem_recv(c->s, buf, (size_t)n);
			assert_true(r == n);
			continue;
		}
		if (n == 0 || errno != EAGAIN)
			c->eof = true;
		break;
	}
}

typedef bool (*pred_fn)(void *arg);

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the server loop and the clients until pred holds (or time runs out). */
static bool pump(struct ctx *t, struct h2client **cls, size_t n, pred_fn pred, void *arg, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		event_base_loop(t->base, EVLOOP_NONBLOCK);
		for (size_t i = 0; i < n; i++)
			if (cls[i])
				client_io(cls[i]);
		event_base_loop(t->base, EVLOOP_NONBLOCK);
		if (pred(arg))
			return true;
		if (now_ms() > end)
			return false;
		struct pollfd pfd[8];
		size_t np = 0;
		for (size_t i = 0; i < n && np < 8; i++)
			if (cls[i] && !cls[i]->eof)
				pfd[np++] = (struct pollfd){ .fd = cls[i]->fd, .events = POLLIN };
		poll(pfd, np, 1);
	}
}

static bool never(void *arg)
{
	return false;
}

/* Just run the loop for a while. */
static void pump_for(struct ctx *t, struct h2client **cls, size_t n, int ms)
{
	pump(t, cls, n, never, NULL, ms);
}

static bool got_settings(void *arg)
{
	nghttp2_session *s = arg;
	return nghttp2_session_get_remote_settings(s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) != 0xffffffffu;
}

static bool stream_closed(void *arg)
{
	return ((struct h2stream *)arg)->closed;
}

static bool client_eof(void *arg)
{
	return ((struct h2client *)arg)->eof;
}

struct stream_wait {
	struct h2client *c;
	struct h2stream *st;
};

static bool stream_or_eof(void *arg)
{
	struct stream_wait *w = arg;
	return w->st->closed || w->c->eof;
}

struct counter_wait {
	int *counter;
	int want;
};

static bool counter_reached(void *arg)
{
	struct counter_wait *w = arg;
	return *w->counter >= w->want;
}

static uint8_t *grpc_frame(const void *msg, size_t len, uint8_t flags, uint32_t declared, size_t *out_len)
{
	uint8_t *b = malloc(len + 5);

	assert_non_null(b);
	b[0] = flags;
	b[1] = (uint8_t)(declared >> 24);
	b[2] = (uint8_t)(declared >> 16);
	b[3] = (uint8_t)(declared >> 8);
	b[4] = (uint8_t)declared;
	if (len)
		memcpy(b + 5, msg, len);
	*out_len = len + 5;
	return b;
}

static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *out_len)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *tmp = malloc(n + 1);
	uint8_t *f;

	assert_non_null(tmp);
	protobuf_c_message_pack(m, tmp);
	f = grpc_frame(tmp, n, 0, (uint32_t)n, out_len);
	free(tmp);
	return f;
}

#define MKNV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }

/* Start a request; the body (if any) is taken over. extra: name,value pairs. */
static struct h2stream *call_start_ex(struct h2client *c, const char *method, const char *path, const char *ct,
				      uint8_t *body, size_t body_len, const char *const *extra, size_t n_extra)
{
	struct h2stream *st = calloc(1, sizeof(*st));
	nghttp2_nv nv[16] = {
		MKNV(":method", method), MKNV(":scheme", "http"), MKNV(":authority", "localhost"),
		MKNV(":path", path),     MKNV("content-type", ct), MKNV("te", "trailers"),
	};
	size_t nnv = 6;
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = cl_read_body };

	assert_non_null(st);
	for (size_t i = 0; i + 1 < n_extra * 2 && nnv < 16; i += 2)
		nv[nnv++] = (nghttp2_nv)MKNV(extra[i], extra[i + 1]);
	st->grpc_status = -1;
	st->body = body;
	st->body_len = body_len;
	st->id = nghttp2_submit_request(c->s, NULL, nv, nnv, body || strcmp(method, "POST") == 0 ? &prd : NULL, st);
	assert_true(st->id > 0);
	return st;
}

static struct h2stream *call_start(struct h2client *c, const char *path, uint8_t *body, size_t body_len)
{
	return call_start_ex(c, "POST", path, "application/grpc", body, body_len, NULL, 0);
}

static struct h2stream *call_start_msg(struct h2client *c, const char *path, const ProtobufCMessage *m)
{
	size_t len;
	uint8_t *b = pack_msg(m, &len);
	return call_start(c, path, b, len);
}

static void wait_stream(struct ctx *t, struct h2client *c, struct h2stream *st)
{
	struct h2client *cls[] = { c };
	assert_true(pump(t, cls, 1, stream_closed, st, WAIT_MS));
}

/* Response body: number of gRPC messages; the first one decoded if asked. */
static int response_messages(struct h2stream *st, const ProtobufCMessageDescriptor *d, ProtobufCMessage **first)
{
	size_t off = 0;
	int n = 0;

	while (off < st->data_len) {
		assert_true(st->data_len - off >= 5);
		assert_int_equal(st->data[off], 0);
		uint32_t len = ((uint32_t)st->data[off + 1] << 24) | ((uint32_t)st->data[off + 2] << 16) |
			       ((uint32_t)st->data[off + 3] << 8) | st->data[off + 4];
		assert_true(st->data_len - off - 5 >= len);
		if (n == 0 && first) {
			*first = protobuf_c_message_unpack(d, NULL, len, st->data + off + 5);
			assert_non_null(*first);
		}
		off += 5 + len;
		n++;
	}
	return n;
}

/* ---- tests ---- */

static void test_unary_roundtrip(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new(t);
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	Criod__Internal__PingResponse *resp = NULL;
	size_t len;
	uint8_t *b = pack_msg(&req.base, &len);
	const char *extra[] = { "x-request-id", "abc def/../x!" };
	struct h2stream *st = call_start_ex(c, "POST", "/test.Svc/Ping", "application/grpc+proto", b, len, extra, 1);

	wait_stream(t, c, st);
	assert_int_equal(st->http_status, 200);
	assert_int_equal(st->grpc_status, STATUS_OK);
	assert_int_equal(st->close_error, 0);
	assert_int_equal(response_messages(st, &criod__internal__ping_response__descriptor,
					   (ProtobufCMessage **)&resp), 1);
	assert_string_equal(resp->component, "criod-test");
	assert_string_equal(resp->version, "/test.Svc/Ping");
	assert_int_equal(resp->pid, 4242);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	assert_string_equal(t->last_req_id, "abc_def_.._x_");
	assert_int_equal(t->last_deadline, 0);
	stream_free(st);

	/* no x-request-id: 16 random hex chars; a deadline is reported */
	const char *extra2[] = { "grpc-timeout", "20S" };
	b = pack_msg(&req.base, &len);
	st = call_start_ex(c, "POST", "/test.Svc/Ping", "application/grpc", b, len, extra2, 1);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	assert_int_equal(strlen(t->last_req_id), 16);
	assert_int_equal(strspn(t->last_req_id, "0123456789abcdef"), 16);
	assert_true(t->last_deadline > 0);
	stream_free(st);
	client_free(c);
}

static void test_large_echo(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new(t);
	Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
	Criod__Internal__Envelope *resp = NULL;
	size_t n = MAX_MSG - 64;
	uint8_t *payload = malloc(n);

	assert_non_null(payload);
	for (size_t i = 0; i < n; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	env.call_id = 99;
	env.body.data = payload;
	env.body.len = n;
	struct h2stream *st = call_start_msg(c, "/test.Svc/Echo", &env.base);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	assert_int_equal(response_messages(st, &criod__internal__envelope__descriptor, (ProtobufCMessage **)&resp), 1);
	assert_int_equal(resp->call_id, 99);
	assert_int_equal(resp->body.len, n);
	assert_memory_equal(resp->body.data, payload, n);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	stream_free(st);

	/* over the limit: RESOURCE_EXHAUSTED, early, without reading it all */
	env.body.len = MAX_MSG + 1;
	payload = realloc(payload, MAX_MSG + 1);
	env.body.data = payload;
	memset(payload, 'x', MAX_MSG + 1);
	st = call_start_msg(c, "/test.Svc/Echo", &env.base);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_RESOURCE_EXHAUSTED);
	stream_free(st);
	free(payload);

	/* the connection is still fine */
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	st = call_start_msg(c, "/test.Svc/Ping", &req.base);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);
	client_free(c);
}

static void test_unimplemented(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new(t);
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;

	struct h2stream *st = call_start_msg(c, "/test.Svc/Nope", &req.base);
	wait_stream(t, c, st);
	assert_int_equal(st->http_status, 200);
	assert_int_equal(st->grpc_status, STATUS_UNIMPLEMENTED);
	assert_string_equal(st->grpc_message, "unknown method /test.Svc/Nope");
	assert_int_equal(st->data_len, 0);
	stream_free(st);

	st = call_start_msg(c, "/test.Svc/Unimpl", &req.base);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_UNIMPLEMENTED);
	assert_non_null(strstr(st->grpc_message, "test.Svc/Unimpl"));
	assert_non_null(strstr(st->grpc_message, "not implemented"));
	stream_free(st);

	/* a big body to an unknown method: discarded, not buffered, and the
	 * answer waits for the end of the request (no RST_STREAM needed) */
	size_t len;
	uint8_t *big = calloc(1, 3 << 20);
	assert_non_null(big);
	uint8_t *b = grpc_frame(big, 3 << 20, 0, 3 << 20, &len);
	free(big);
	st = call_start(c, "/test.Svc/Nope", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_UNIMPLEMENTED);
	assert_int_equal(st->close_error, NGHTTP2_NO_ERROR);
	assert_int_equal(st->body_off, st->body_len);
	stream_free(st);
	client_free(c);
}

static void test_bad_requests(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new(t);
	struct h2stream *st;
	size_t len;
	uint8_t *b;

	/* garbage protobuf: a length-delimited field longer than the data */
	static const uint8_t garbage[] = { 0x32, 0x10, 'a' };
	b = grpc_frame(garbage, sizeof(garbage), 0, sizeof(garbage), &len);
	st = call_start(c, "/test.Svc/Echo", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_INVALID_ARGUMENT);
	assert_string_equal(st->grpc_message, "cannot decode criod.internal.Envelope");
	stream_free(st);

	/* truncated message: declares 10 bytes, carries 3 */
	b = grpc_frame("abc", 3, 0, 10, &len);
	st = call_start(c, "/test.Svc/Echo", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_INTERNAL);
	assert_non_null(strstr(st->grpc_message, "truncated"));
	stream_free(st);

	/* truncated prefix */
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start(c, "/test.Svc/Echo", b, 3);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_INTERNAL);
	assert_non_null(strstr(st->grpc_message, "truncated"));
	stream_free(st);

	/* no message at all */
	st = call_start(c, "/test.Svc/Echo", NULL, 0);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_INTERNAL);
	stream_free(st);

	/* compressed */
	b = grpc_frame("", 0, 1, 0, &len);
	st = call_start(c, "/test.Svc/Echo", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_INTERNAL);
	assert_non_null(strstr(st->grpc_message, "compressed"));
	stream_free(st);

	/* two messages */
	b = malloc(10);
	memset(b, 0, 10);
	st = call_start(c, "/test.Svc/Echo", b, 10);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_INTERNAL);
	stream_free(st);

	/* wrong content type, wrong method: HTTP errors */
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start_ex(c, "POST", "/test.Svc/Ping", "application/json", b, len, NULL, 0);
	wait_stream(t, c, st);
	assert_int_equal(st->http_status, 415);
	stream_free(st);
	st = call_start_ex(c, "GET", "/test.Svc/Ping", "application/grpc", NULL, 0, NULL, 0);
	wait_stream(t, c, st);
	assert_int_equal(st->http_status, 405);
	stream_free(st);

	/* malformed grpc-timeout */
	const char *extra[] = { "grpc-timeout", "123456789S" };
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start_ex(c, "POST", "/test.Svc/Ping", "application/grpc", b, len, extra, 1);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_INTERNAL);
	stream_free(st);

	/* the handler's error, percent-encoded */
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start(c, "/test.Svc/Fail", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_NOT_FOUND);
	assert_string_equal(st->grpc_message, "na%C3%AFve 100%25 ok%0A");
	stream_free(st);

	/* still serving on the same connection */
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start(c, "/test.Svc/Ping", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);
	client_free(c);
}

static void test_deadline(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new(t);
	const char *extra[] = { "grpc-timeout", "50m" };
	size_t len;
	uint8_t *b = grpc_frame(NULL, 0, 0, 0, &len);
	int64_t start = now_ms();
	struct h2stream *st = call_start_ex(c, "POST", "/test.Svc/Hang", "application/grpc", b, len, extra, 1);

	wait_stream(t, c, st);
	assert_true(now_ms() - start >= 45);
	assert_int_equal(st->grpc_status, STATUS_DEADLINE_EXCEEDED);
	assert_int_equal(t->n_handled, 1);
	assert_int_equal(t->n_cancel, 1);
	assert_true(t->last_deadline > 0);
	assert_int_equal(pending_count(t), 1);
	/* the handler's late reply is dropped; the call is freed now */
	for (int i = 0; i < MAX_PENDING; i++)
		if (t->pending[i]) {
			Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
			grpc_call_reply(t->pending[i], &r.base);
			t->pending[i] = NULL;
		}
	stream_free(st);

	/* deadline with the cancel callback completing the call at once */
	t->finish_in_cancel = true;
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start_ex(c, "POST", "/test.Svc/Hang", "application/grpc", b, len, extra, 1);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_DEADLINE_EXCEEDED);
	assert_int_equal(t->n_cancel, 2);
	assert_int_equal(pending_count(t), 0);
	stream_free(st);

	/* deadline while the request body is still coming: answered anyway */
	const char *extra2[] = { "grpc-timeout", "30000u" };
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start_ex(c, "POST", "/test.Svc/Ping", "application/grpc", b, 2, extra2, 1);
	st->hold_body = true;
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_DEADLINE_EXCEEDED);
	assert_int_equal(t->n_handled, 2);
	stream_free(st);

	/* and the connection still works */
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start(c, "/test.Svc/Ping", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);
	client_free(c);
}

static void test_server_streaming(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new(t);
	size_t len;
	uint8_t *b = grpc_frame(NULL, 0, 0, 0, &len);
	struct h2stream *st = call_start(c, "/test.Svc/Stream", b, len);
	Criod__Internal__PingResponse *first = NULL;

	wait_stream(t, c, st);
	assert_int_equal(st->http_status, 200);
	assert_int_equal(st->grpc_status, STATUS_OK);
	assert_int_equal(response_messages(st, &criod__internal__ping_response__descriptor,
					   (ProtobufCMessage **)&first), 3);
	assert_int_equal(first->pid, 1);
	assert_string_equal(first->component, "stream");
	protobuf_c_message_free_unpacked(&first->base, NULL);
	/* the last message */
	assert_int_equal(st->data[st->data_len - 1], 3);
	stream_free(st);
	client_free(c);
}

/* A client that takes nothing: the call queues up to its send limit, then
 * refuses (-ENOBUFS); the reset ends the stream with ENHANCE_YOUR_CALM
 * (RESOURCE_EXHAUSTED to gRPC clients) although the window stays closed,
 * and the connection keeps serving other calls. */
static void test_stream_send_limit(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new_closed_window(t, 100);
	size_t len;
	uint8_t *b = grpc_frame(NULL, 0, 0, 0, &len);
	struct h2stream *st = call_start(c, "/test.Svc/Flood", b, len);

	wait_stream(t, c, st);
	assert_int_equal(t->flood_refused, -ENOBUFS);
	/* 16 KiB of 1005-byte frames (one message went to the window) */
	assert_true(t->flood_sent >= 15 && t->flood_sent <= 18);
	assert_true(t->flood_queued <= 16 << 10);
	assert_true(t->flood_queued + 1005 > 16 << 10);
	assert_int_equal(st->close_error, NGHTTP2_ENHANCE_YOUR_CALM);
	assert_true(st->data_len <= 100);
	stream_free(st);

	/* the same connection still answers */
	Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
	env.call_id = 7;
	st = call_start_msg(c, "/test.Svc/Echo", &env.base);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);
	client_free(c);
}

static void test_cancel_then_reply(void **state)
{
	struct ctx *t = *state;
	struct h2client *c = client_new(t);
	struct h2client *cls[] = { c };
	struct counter_wait w = { &t->n_handled, 1 };
	size_t len;
	uint8_t *b = grpc_frame(NULL, 0, 0, 0, &len);
	struct h2stream *st = call_start(c, "/test.Svc/Hang", b, len);

	assert_true(pump(t, cls, 1, counter_reached, &w, WAIT_MS));
	assert_int_equal(nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL), 0);
	w = (struct counter_wait){ &t->n_cancel, 1 };
	assert_true(pump(t, cls, 1, counter_reached, &w, WAIT_MS));
	assert_int_equal(pending_count(t), 1);
	for (int i = 0; i < MAX_PENDING; i++)
		if (t->pending[i]) {
			struct grpc_call *call = t->pending[i];
			Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
			assert_true(grpc_call_cancelled(call));
			assert_int_equal(grpc_call_send(call, &r.base), -ECANCELED);
			grpc_call_reply(call, &r.base); /* dropped, frees the call */
			t->pending[i] = NULL;
		}
	stream_free(st);

	/* the cancel callback completes the call itself */
	t->finish_in_cancel = true;
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start(c, "/test.Svc/Hang", b, len);
	w = (struct counter_wait){ &t->n_handled, 2 };
	assert_true(pump(t, cls, 1, counter_reached, &w, WAIT_MS));
	assert_int_equal(nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL), 0);
	w = (struct counter_wait){ &t->n_cancel, 2 };
	assert_true(pump(t, cls, 1, counter_reached, &w, WAIT_MS));
	assert_int_equal(pending_count(t), 0);
	stream_free(st);

	/* the connection is unaffected */
	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start(c, "/test.Svc/Ping", b, len);
	wait_stream(t, c, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);
	client_free(c);
}

static void park_calls(struct ctx *t, struct h2client *c, struct h2stream **st, int n)
{
	struct h2client *cls[] = { c };
	struct counter_wait w = { &t->n_handled, t->n_handled + n };

	for (int i = 0; i < n; i++) {
		size_t len;
		uint8_t *b = grpc_frame(NULL, 0, 0, 0, &len);
		st[i] = call_start(c, "/test.Svc/Hang", b, len);
	}
	assert_true(pump(t, cls, 1, counter_reached, &w, WAIT_MS));
	assert_int_equal(pending_count(t), n);
}

static void test_connection_drop_pending(void **state)
{
	struct ctx *t = *state;
	struct h2stream *st[40];
	struct h2client *c = client_new(t);
	struct h2client *none[] = { NULL };

	/* 20 parked calls, client vanishes: 20 cancels, later replies dropped */
	park_calls(t, c, st, 20);
	client_free(c);
	struct counter_wait w = { &t->n_cancel, 20 };
	assert_true(pump(t, none, 1, counter_reached, &w, WAIT_MS));
	assert_int_equal(pending_count(t), 20);
	for (int i = 0; i < MAX_PENDING; i++)
		if (t->pending[i]) {
			grpc_call_finish(t->pending[i], STATUS_INTERNAL, "late %d", i);
			t->pending[i] = NULL;
		}
	for (int i = 0; i < 20; i++)
		stream_free(st[i]);

	/* again, with the first cancel callback completing every parked call,
	 * including ones still queued for their cancel callback */
	t->finish_all_in_cancel = true;
	c = client_new(t);
	park_calls(t, c, st, 20);
	client_free(c);
	w = (struct counter_wait){ &t->n_cancel, 21 };
	assert_true(pump(t, none, 1, counter_reached, &w, WAIT_MS));
	assert_int_equal(t->n_cancel, 21); /* the others were completed first */
	assert_int_equal(pending_count(t), 0);
	for (int i = 0; i < 20; i++)
		stream_free(st[i]);
}

static void test_server_free_pending(void **state)
{
	struct ctx *t = *state;
	struct h2stream *st[8];
	struct h2client *c = client_new(t);
	struct h2client *cls[] = { c };

	park_calls(t, c, st, 8);
	grpc_server_free(t->srv);
	t->srv = NULL;
	assert_int_equal(t->n_cancel, 8);
	assert_int_equal(pending_count(t), 8);
	assert_true(pump(t, cls, 1, client_eof, c, WAIT_MS));
	/* teardown completes the parked calls after the server is gone */
	for (int i = 0; i < 8; i++)
		stream_free(st[i]);
	client_free(c);
}

static void test_garbage_preface(void **state)
{
	struct ctx *t = *state;
	struct h2client *good = client_new(t);
	int bad = connect_raw(t);
	static const char junk[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
	struct h2client *cls[] = { good };
	uint8_t buf[4096];
	size_t got = 0;
	bool eof = false, goaway = false;

	assert_int_equal(send(bad, junk, sizeof(junk) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(junk) - 1);
	for (int64_t end = now_ms() + WAIT_MS; !eof && now_ms() < end;) {
		event_base_loop(t->base, EVLOOP_NONBLOCK);
		client_io(good);
		ssize_t n = read(bad, buf + got, sizeof(buf) - got);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			eof = true;
		else
			usleep(1000);
	}
	assert_true(eof);
	/* what came back: SETTINGS..., then a GOAWAY */
	for (size_t off = 0; off + 9 <= got;) {
		size_t flen = ((size_t)buf[off] << 16) | ((size_t)buf[off + 1] << 8) | buf[off + 2];
		if (buf[off + 3] == NGHTTP2_GOAWAY)
			goaway = true;
		off += 9 + flen;
	}
	assert_true(goaway);
	close(bad);

	size_t len;
	uint8_t *b = grpc_frame(NULL, 0, 0, 0, &len);
	struct h2stream *st = call_start(good, "/test.Svc/Ping", b, len);
	assert_true(pump(t, cls, 1, stream_closed, st, WAIT_MS));
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);

	/* a frame that breaks the protocol on an established connection
	 * (DATA on stream 0) closes only that connection */
	struct h2client *evil = client_new(t);
	struct h2client *both[] = { evil, good };
	static const uint8_t data0[] = { 0, 0, 1, NGHTTP2_DATA, 0, 0, 0, 0, 0, 'x' };
	client_io(evil); /* preface + SETTINGS out */
	assert_int_equal(send(evil->fd, data0, sizeof(data0), MSG_NOSIGNAL), (ssize_t)sizeof(data0));
	assert_true(pump(t, both, 2, client_eof, evil, WAIT_MS));
	client_free(evil);

	b = grpc_frame(NULL, 0, 0, 0, &len);
	st = call_start(good, "/test.Svc/Ping", b, len);
	assert_true(pump(t, cls, 1, stream_closed, st, WAIT_MS));
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);
	client_free(good);
}

struct many {
	struct h2stream **st;
	int n;
};

static bool all_closed(void *arg)
{
	struct many *m = arg;
	for (int i = 0; i < m->n; i++)
		if (!m->st[i]->closed)
			return false;
	return true;
}

static void test_many_streams_and_conns(void **state)
{
	struct ctx *t = *state;
	enum { NCONN = 4, NSTREAM = 150 };
	struct h2client *cls[NCONN];
	struct h2stream *st[NCONN * NSTREAM];
	struct many m = { st, NCONN * NSTREAM };
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;

	/* fewer concurrent streams than requests: the client must queue */
	grpc_server_free(t->srv);
	assert_int_equal(server_start(t, 0, 32), 0);
	for (int i = 0; i < NCONN; i++) {
		cls[i] = client_new(t);
		assert_true(pump(t, &cls[i], 1, got_settings, cls[i]->s, WAIT_MS));
		assert_int_equal(nghttp2_session_get_remote_settings(cls[i]->s,
								     NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 32);
	}
	for (int i = 0; i < NCONN * NSTREAM; i++)
		st[i] = call_start_msg(cls[i % NCONN], "/test.Svc/Ping", &req.base);
	assert_true(pump(t, cls, NCONN, all_closed, &m, WAIT_MS));
	for (int i = 0; i < NCONN * NSTREAM; i++) {
		assert_int_equal(st[i]->grpc_status, STATUS_OK);
		assert_int_equal(response_messages(st[i], NULL, NULL), 1);
		stream_free(st[i]);
	}
	for (int i = 0; i < NCONN; i++)
		client_free(cls[i]);
}

static void test_max_conns(void **state)
{
	struct ctx *t = *state;
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;

	grpc_server_free(t->srv);
	assert_int_equal(server_start(t, 1, 0), 0);
	struct h2client *a = client_new(t);
	struct h2stream *st = call_start_msg(a, "/test.Svc/Ping", &req.base);
	wait_stream(t, a, st);
	assert_int_equal(st->grpc_status, STATUS_OK);
	stream_free(st);

	/* the second connection is closed at once */
	struct h2client *b = client_new(t);
	struct h2client *cls[] = { b, a };
	assert_true(pump(t, cls, 2, client_eof, b, WAIT_MS));
	client_free(b);

	/* once the first is gone (when the server has seen it close), a new
	 * one is accepted */
	client_free(a);
	struct h2client *none[] = { NULL };
	for (int64_t end = now_ms() + WAIT_MS;;) {
		pump_for(t, none, 1, 5);
		struct h2client *c = client_new(t);
		struct h2client *one[] = { c };
		st = call_start_msg(c, "/test.Svc/Ping", &req.base);
		assert_true(pump(t, one, 1, stream_or_eof, &(struct stream_wait){ c, st }, WAIT_MS));
		bool done = st->closed;
		if (done)
			assert_int_equal(st->grpc_status, STATUS_OK);
		stream_free(st);
		client_free(c);
		if (done)
			break;
		assert_true(now_ms() < end);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unary_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unimplemented, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_streaming, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_then_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_drop_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_free_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_preface, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_streams_and_conns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_conns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_send_limit, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN); /* as every daemon does (daemon_init) */
	log_init("test_grpc");
	log_set_level(LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
