/* The streaming server's transports: SPDY/3.1 streams, WebSocket channels
 * and SPDY tunnelled in WebSocket binary messages (kubectl's and crictl's
 * port-forward over WebSocket, "SPDY/3.1+portforward.k8s.io"). They turn
 * the client's bytes into channel events for stream_exec.c and
 * stream_portforward.c, and their sends into frames. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stream_internal.h"
#include "base64.h"
#include "stream_ws.h"

static const char *req_of(const struct sconn *k)
{
	return k->req ? k->req->req_id : NULL;
}

int transport_open(struct sconn *k)
{
	if (k->t == T_SPDY || k->t == T_WS_SPDY) {
		int r = spdy_zlib_init(&k->z);
		if (r < 0)
			return r;
		k->z_ok = true;
	}
	if (k->t == T_WS || k->t == T_WS_SPDY) {
		k->msg = evbuffer_new();
		if (!k->msg)
			return -ENOMEM;
	}
	if (k->t == T_WS_SPDY) {
		k->tunnel_in = evbuffer_new();
		if (!k->tunnel_in)
			return -ENOMEM;
	}
	return 0;
}

void transport_free(struct sconn *k)
{
	while (k->chans) {
		struct chan *ch = k->chans;
		k->chans = ch->next;
		free(ch);
	}
	if (k->z_ok)
		spdy_zlib_free(&k->z);
	k->z_ok = false;
	if (k->msg)
		evbuffer_free(k->msg);
	if (k->tunnel_in)
		evbuffer_free(k->tunnel_in);
	k->msg = k->tunnel_in = NULL;
}

struct chan *chan_find(struct sconn *k, uint32_t id)
{
	for (struct chan *ch = k->chans; ch; ch = ch->next)
		if (ch->id == id)
			return ch;
	return NULL;
}

struct chan *chan_new(struct sconn *k, uint32_t id, enum chan_role role)
{
	if (k->n_chans >= STREAM_MAX_CHANS)
		return NULL;
	struct chan *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	ch->id = id;
	ch->role = role;
	ch->next = k->chans;
	k->chans = ch;
	k->n_chans++;
	return ch;
}

void chan_del(struct sconn *k, struct chan *ch)
{
	for (struct chan **pp = &k->chans; *pp; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			k->n_chans--;
			free(ch);
			return;
		}
}

/* ---------------------------------------------------------------- output */

static void ws_send(struct sconn *k, uint8_t op, const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t h[10];
	size_t hl = ws_frame_header(h, op, alen + blen);
	sconn_write(k, h, hl);
	sconn_write(k, a, alen);
	sconn_write(k, b, blen);
}

/* One SPDY frame: 8-byte header and payload, straight or in a WebSocket
 * binary message. */
static void spdy_send(struct sconn *k, const uint8_t *hdr, size_t hlen, const void *payload, size_t plen)
{
	if (k->t == T_WS_SPDY) {
		ws_send(k, WS_BINARY, hdr, hlen, payload, plen);
	} else {
		sconn_write(k, hdr, hlen);
		sconn_write(k, payload, plen);
	}
}

void chan_send(struct sconn *k, struct chan *ch, const void *data, size_t len)
{
	const uint8_t *p = data;
	if (!ch || ch->local_fin || k->closing)
		return;
	do {
		size_t n = len > STREAM_CHUNK ? STREAM_CHUNK : len;
		if (k->t == T_WS) {
			if (k->base64) {
				char *enc = malloc(1 + 4 * ((n + 2) / 3) + 1);
				if (!enc)
					return;
				enc[0] = (char)('0' + ch->id);
				size_t el = base64_encode(p, n, enc + 1);
				ws_send(k, WS_TEXT, enc, 1 + el, NULL, 0);
				free(enc);
			} else {
				uint8_t id = (uint8_t)ch->id;
				ws_send(k, WS_BINARY, &id, 1, p, n);
			}
		} else {
			uint8_t h[8];
			spdy_data_header(h, ch->id, 0, (uint32_t)n);
			spdy_send(k, h, 8, p, n);
		}
		if (!n)
			break; /* an empty frame (p may be NULL) */
		p += n;
		len -= n;
	} while (len > 0);
}

void chan_fin(struct sconn *k, struct chan *ch)
{
	if (!ch || ch->local_fin)
		return;
	ch->local_fin = true;
	if (k->t != T_WS) {
		uint8_t h[8];
		spdy_data_header(h, ch->id, SPDY_FLAG_FIN, 0);
		spdy_send(k, h, 8, NULL, 0);
	}
}

void chan_reset(struct sconn *k, struct chan *ch)
{
	if (!ch)
		return;
	if (k->t != T_WS && !(ch->local_fin && ch->remote_fin)) {
		uint8_t f[16];
		spdy_rst_stream(f, ch->id, SPDY_CANCEL);
		spdy_send(k, f, 8, f + 8, 8);
	}
	ch->local_fin = ch->remote_fin = true;
}

void transport_close(struct sconn *k, uint16_t code, const char *reason)
{
	if (k->t == T_WS || k->t == T_WS_SPDY) {
		uint8_t p[125];
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > sizeof(p) - 2)
			rl = sizeof(p) - 2;
		p[0] = (uint8_t)(code >> 8);
		p[1] = (uint8_t)code;
		if (rl)
			memcpy(p + 2, reason, rl);
		ws_send(k, WS_CLOSE, p, 2 + rl, NULL, 0);
	}
}

/* ---------------------------------------------------------------- SPDY input */

static void spdy_fail(struct sconn *k, uint32_t status, const char *why)
{
	log_warn(req_of(k), "SPDY protocol error, session closed", "peer=%s reason=\"%s\"", k->peer, why);
	uint8_t f[16];
	spdy_goaway(f, k->last_stream, status);
	spdy_send(k, f, 8, f + 8, 8);
	transport_close(k, WS_CLOSE_PROTOCOL, why);
	sconn_finish(k);
}

static enum chan_role role_of(const char *t)
{
	static const struct {
		const char *name;
		enum chan_role role;
	} roles[] = {{"error", ROLE_ERROR},   {"stdin", ROLE_STDIN},   {"stdout", ROLE_STDOUT},
		     {"stderr", ROLE_STDERR}, {"resize", ROLE_RESIZE}, {"data", ROLE_PF_DATA}};
	for (size_t i = 0; t && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(t, roles[i].name) == 0)
			return roles[i].role;
	return ROLE_NONE;
}

static void spdy_syn_stream(struct sconn *k, const struct spdy_frame *f)
{
	if (f->len < 10) {
		spdy_fail(k, SPDY_PROTOCOL_ERROR, "SYN_STREAM shorter than 10 bytes");
		return;
	}
	uint32_t id = spdy_be32(f->payload) & 0x7fffffff;
	struct spdy_headers h;
	int r = spdy_headers_decode(&k->z, f->payload + 10, f->len - 10, &h);
	if (r < 0) {
		spdy_fail(k, SPDY_PROTOCOL_ERROR,
			  r == -EMSGSIZE ? "header block over the bounds" : "bad header block compression or layout");
		return;
	}
	if (id == 0 || !(id & 1) || id <= k->last_stream) {
		spdy_headers_free(&h);
		spdy_fail(k, SPDY_PROTOCOL_ERROR, "SYN_STREAM with a stream id that is not odd and increasing");
		return;
	}
	k->last_stream = id;
	enum chan_role role = role_of(spdy_header(&h, "streamtype"));
	bool pf = k->req->kind == STREAM_PORTFORWARD;
	if (role == ROLE_ERROR && pf)
		role = ROLE_PF_ERROR;
	struct chan *ch = chan_new(k, id, role);
	if (!ch) {
		spdy_headers_free(&h);
		uint8_t rst[16];
		spdy_rst_stream(rst, id, SPDY_REFUSED_STREAM);
		spdy_send(k, rst, 8, rst + 8, 8);
		return;
	}
	if (pf) {
		const char *port = spdy_header(&h, "port"), *rid = spdy_header(&h, "requestid");
		char *end = NULL;
		long p = port ? strtol(port, &end, 10) : 0;
		ch->port = (port && *port && !*end && p >= 1 && p <= 65535) ? (uint16_t)p : 0;
		if (rid && *rid)
			snprintf(ch->request_id, sizeof(ch->request_id), "%s", rid);
		else /* clients before request ids: the error stream's id, or the data stream's minus 2 */
			snprintf(ch->request_id, sizeof(ch->request_id), "%u",
				 role == ROLE_PF_DATA ? id - 2 : id);
	}
	spdy_headers_free(&h);
	if (f->flags & SPDY_FLAG_FIN)
		ch->remote_fin = true;
	/* SYN_REPLY with no headers: the stream is accepted. */
	uint8_t *block;
	size_t bl;
	if (spdy_headers_encode(&k->z, NULL, NULL, 0, &block, &bl) < 0) {
		spdy_fail(k, SPDY_INTERNAL_ERROR_CODE, "cannot compress a header block");
		return;
	}
	uint8_t hdr[12];
	spdy_control_header(hdr, SPDY_SYN_REPLY, 0, (uint32_t)(4 + bl));
	hdr[8] = (uint8_t)(id >> 24);
	hdr[9] = (uint8_t)(id >> 16);
	hdr[10] = (uint8_t)(id >> 8);
	hdr[11] = (uint8_t)id;
	spdy_send(k, hdr, 12, block, bl);
	free(block);
	if (pf)
		pf_stream(k, ch);
	else
		rc_stream(k, ch);
}

static void spdy_frame(struct sconn *k, const struct spdy_frame *f)
{
	if (!f->control) {
		struct chan *ch = chan_find(k, f->stream_id);
		if (!ch || ch->remote_fin) {
			uint8_t rst[16];
			spdy_rst_stream(rst, f->stream_id, ch ? 9 /* STREAM_ALREADY_CLOSED */ : SPDY_INVALID_STREAM);
			spdy_send(k, rst, 8, rst + 8, 8);
			return;
		}
		bool pf = k->req->kind == STREAM_PORTFORWARD;
		if (f->len)
			(pf ? pf_data : rc_data)(k, ch, f->payload, f->len);
		if ((f->flags & SPDY_FLAG_FIN) && !k->closing) {
			ch->remote_fin = true;
			(pf ? pf_fin : rc_fin)(k, ch);
		}
		return;
	}
	switch (f->type) {
	case SPDY_SYN_STREAM:
		spdy_syn_stream(k, f);
		break;
	case SPDY_RST_STREAM:
		if (f->len == 8) {
			struct chan *ch = chan_find(k, spdy_be32(f->payload) & 0x7fffffff);
			if (ch && !(ch->remote_fin && ch->local_fin)) {
				ch->remote_fin = ch->local_fin = true;
				if (k->req->kind == STREAM_PORTFORWARD)
					pf_reset(k, ch);
				else
					rc_fin(k, ch);
			}
		}
		break;
	case SPDY_PING:
		if (f->len == 4 && (spdy_be32(f->payload) & 1)) { /* the client's: echo it */
			uint8_t p[12];
			spdy_ping(p, spdy_be32(f->payload));
			spdy_send(k, p, 8, p + 8, 4);
		}
		break;
	case SPDY_HEADERS: {
		/* Nothing to do with them, but the inflater must see every block. */
		struct spdy_headers h;
		if (f->len < 4 || spdy_headers_decode(&k->z, f->payload + 4, f->len - 4, &h) < 0) {
			spdy_fail(k, SPDY_PROTOCOL_ERROR, "bad HEADERS frame");
			return;
		}
		spdy_headers_free(&h);
		break;
	}
	case SPDY_GOAWAY:
	case SPDY_SETTINGS:
	case SPDY_WINDOW_UPDATE: /* the Go clients keep no flow-control window */
	default:
		break;
	}
}

static void spdy_consume(struct sconn *k, struct evbuffer *in)
{
	while (!k->closing) {
		size_t len = evbuffer_get_length(in);
		if (len < 8)
			return;
		struct spdy_frame f;
		int r = spdy_parse_frame(evbuffer_pullup(in, 8), 8, STREAM_MAX_FRAME, &f);
		if (r == -EMSGSIZE) {
			spdy_fail(k, SPDY_PROTOCOL_ERROR, "frame over 1 MiB");
			return;
		}
		if (r < 0) {
			spdy_fail(k, SPDY_PROTOCOL_ERROR, "control frame of a SPDY version other than 3");
			return;
		}
		if (len < 8 + (size_t)f.len)
			return;
		r = spdy_parse_frame(evbuffer_pullup(in, 8 + (ssize_t)f.len), 8 + f.len, STREAM_MAX_FRAME, &f);
		spdy_frame(k, &f);
		if (evbuffer_get_length(in) >= 8 + (size_t)f.len) /* k is alive: callbacks never free it */
			evbuffer_drain(in, 8 + f.len);
	}
}

/* ---------------------------------------------------------------- WebSocket input */

static void ws_fail(struct sconn *k, uint16_t code, const char *why)
{
	log_warn(req_of(k), "WebSocket protocol error, session closed", "peer=%s code=%u reason=\"%s\"", k->peer, code,
		 why);
	transport_close(k, code, why);
	sconn_finish(k);
}

/* A whole data message on a channel protocol. */
static void ws_channel_message(struct sconn *k, uint8_t op, uint8_t *data, size_t len)
{
	if (len == 0)
		return;
	if (op != (k->base64 ? WS_TEXT : WS_BINARY)) {
		ws_fail(k, WS_CLOSE_DATA, k->base64 ? "base64 protocol takes text messages" : "binary messages only");
		return;
	}
	bool pf = k->req->kind == STREAM_PORTFORWARD;
	if (k->version >= 5 && data[0] == 255) { /* v5 close signal: [255, channel] */
		if (len != 2) {
			ws_fail(k, WS_CLOSE_PROTOCOL, "a close signal names one channel");
			return;
		}
		struct chan *ch = chan_find(k, data[1]);
		if (ch && !ch->remote_fin) {
			ch->remote_fin = true;
			(pf ? pf_fin : rc_fin)(k, ch);
		}
		return;
	}
	uint32_t id = data[0];
	uint8_t *p = data + 1;
	size_t n = len - 1;
	if (k->base64) {
		if (id < '0' || id > '9') {
			ws_fail(k, WS_CLOSE_DATA, "base64 message without a channel digit");
			return;
		}
		id -= '0';
		int d = base64_decode((const char *)p, n, p);
		if (d < 0) {
			ws_fail(k, WS_CLOSE_DATA, "bad base64");
			return;
		}
		n = (size_t)d;
	}
	struct chan *ch = chan_find(k, id);
	if (!ch || ch->remote_fin || n == 0)
		return; /* like kubelet: a frame for no (open) channel is dropped */
	(pf ? pf_data : rc_data)(k, ch, p, n);
}

static void ws_message(struct sconn *k, uint8_t op, uint8_t *data, size_t len)
{
	if (k->t == T_WS_SPDY) {
		if (op != WS_BINARY) {
			ws_fail(k, WS_CLOSE_DATA, "SPDY tunnel takes binary messages");
			return;
		}
		evbuffer_add(k->tunnel_in, data, len);
		spdy_consume(k, k->tunnel_in);
		if (evbuffer_get_length(k->tunnel_in) > STREAM_MAX_FRAME + 8)
			ws_fail(k, WS_CLOSE_TOO_BIG, "tunnelled SPDY frame too large");
		return;
	}
	ws_channel_message(k, op, data, len);
}

static void ws_control(struct sconn *k, uint8_t op, uint8_t *data, size_t len)
{
	if (op == WS_PING) {
		ws_send(k, WS_PONG, data, len, NULL, 0);
	} else if (op == WS_CLOSE) {
		uint16_t code = len >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : WS_CLOSE_NORMAL;
		log_debug(req_of(k), "WebSocket close from client", "peer=%s code=%u", k->peer, code);
		transport_close(k, WS_CLOSE_NORMAL, NULL);
		sconn_finish(k);
	}
}

static void ws_consume(struct sconn *k, struct evbuffer *in)
{
	while (!k->closing) {
		size_t len = evbuffer_get_length(in);
		if (len < 2)
			return;
		size_t want = len < 14 ? len : 14;
		struct ws_frame f;
		uint16_t code;
		int r = ws_parse_frame(evbuffer_pullup(in, (ssize_t)want), want, STREAM_MAX_FRAME, &f, &code);
		if (r < 0) {
			ws_fail(k, code, r == -EMSGSIZE ? "frame over 1 MiB" : "malformed or unmasked frame");
			return;
		}
		if (f.header_len == 0 || len < f.header_len + f.len)
			return;
		uint8_t *buf = evbuffer_pullup(in, (ssize_t)(f.header_len + f.len));
		uint8_t *payload = buf + f.header_len;
		ws_unmask(payload, (size_t)f.len, f.mask, 0);
		if (f.opcode >= WS_CLOSE) {
			ws_control(k, f.opcode, payload, (size_t)f.len);
		} else if (f.opcode == WS_CONT) {
			if (!k->in_msg) {
				ws_fail(k, WS_CLOSE_PROTOCOL, "continuation without a message");
				return;
			}
			if (evbuffer_get_length(k->msg) + f.len > STREAM_MAX_FRAME) {
				ws_fail(k, WS_CLOSE_TOO_BIG, "message over 1 MiB");
				return;
			}
			evbuffer_add(k->msg, payload, (size_t)f.len);
		} else {
			if (k->in_msg) {
				ws_fail(k, WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
				return;
			}
			k->msg_op = f.opcode;
			evbuffer_add(k->msg, payload, (size_t)f.len);
			k->in_msg = true;
		}
		size_t total = f.header_len + (size_t)f.len;
		if (f.opcode < WS_CLOSE && f.fin) {
			k->in_msg = false;
			size_t ml = evbuffer_get_length(k->msg);
			uint8_t *m = ml ? evbuffer_pullup(k->msg, (ssize_t)ml) : (uint8_t *)"";
			ws_message(k, k->msg_op, m, ml);
			evbuffer_drain(k->msg, ml);
		}
		evbuffer_drain(in, total);
	}
}

void transport_read(struct sconn *k)
{
	struct evbuffer *in = bufferevent_get_input(k->bev);
	if (k->t == T_SPDY)
		spdy_consume(k, in);
	else
		ws_consume(k, in);
	if (k->closing)
		evbuffer_drain(in, evbuffer_get_length(in));
}
