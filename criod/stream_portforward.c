/* PortForward over the streaming server (Kubernetes' portforward.k8s.io):
 * SPDY (also tunnelled in WebSocket, crictl's and kubectl's
 * "SPDY/3.1+portforward.k8s.io"): a data and an error stream per
 * connection, paired by their requestID header, the port in their port
 * header; WebSocket channels: two per port of the URL (data 2i, error
 * 2i+1), each opened with the port number (2 bytes, little endian). Each
 * pair gets a TCP connection from the root side (stream_backend.h) and
 * bytes are relayed both ways; a failure to connect is written on the
 * pair's error stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cri.h"
#include "log.h"
#include "status.h"
#include "stream_backend.h"
#include "stream_internal.h"
#include "stream_ws.h"

struct pf_open_ud {
	struct pf_pair *p; /* NULL once the pair is gone */
};

struct pf_pair {
	struct pf_pair *next;
	struct pf_session *s;
	char request_id[32];
	uint16_t port;
	struct chan *data, *error;
	struct pf_open_ud *opening;
	struct bufferevent *sock;
	struct evbuffer *early; /* the client's bytes before the socket is there */
	bool opened, client_fin, sock_eof, wr_shut;
};

struct pf_session {
	struct sconn *k;
	struct pf_pair *pairs;
	size_t n_pairs;
};

static void pair_free(struct pf_pair *p)
{
	struct pf_session *s = p->s;
	for (struct pf_pair **pp = &s->pairs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			s->n_pairs--;
			break;
		}
	if (p->opening)
		p->opening->p = NULL;
	if (p->sock)
		bufferevent_free(p->sock);
	if (p->early)
		evbuffer_free(p->early);
	free(p);
}

void pf_free(struct sconn *k)
{
	struct pf_session *s = k->pf;
	if (!s)
		return;
	while (s->pairs)
		pair_free(s->pairs);
	free(s);
	k->pf = NULL;
}

/* The pair is over: close its streams and forget it. In WebSocket channel
 * mode the session ends with its last pair. */
static void pair_done(struct pf_pair *p)
{
	struct pf_session *s = p->s;
	struct sconn *k = s->k;
	log_debug(k->req->req_id, "port-forward connection closed", "port=%u request_id=%s", p->port, p->request_id);
	chan_fin(k, p->data);
	chan_fin(k, p->error);
	if (k->t != T_WS) {
		if (p->data)
			chan_del(k, p->data);
		if (p->error)
			chan_del(k, p->error);
	}
	pair_free(p);
	if (k->t == T_WS && !s->pairs) {
		transport_close(k, WS_CLOSE_NORMAL, NULL);
		sconn_finish(k);
	}
}

static void pair_error(struct pf_pair *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pair_error(struct pf_pair *p, const char *fmt, ...)
{
	char m[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	log_info(p->s->k->req->req_id, "port-forward failed", "port=%u error=\"%s\"", p->port, m);
	chan_send(p->s->k, p->error, m, strlen(m));
	pair_done(p);
}

static void maybe_pair_done(struct pf_pair *p)
{
	/* SPDY: both directions ended. WebSocket channels have no half close
	 * from the client: the socket's end ends the pair. */
	if (p->sock_eof && (p->client_fin || p->s->k->t == T_WS))
		pair_done(p);
}

static void shut_wr(struct pf_pair *p)
{
	if (p->wr_shut || !p->sock)
		return;
	p->wr_shut = true;
	shutdown((int)bufferevent_getfd(p->sock), SHUT_WR);
}

static void sock_read(struct bufferevent *bev, void *arg)
{
	struct pf_pair *p = arg;
	struct sconn *k = p->s->k;
	struct evbuffer *in = bufferevent_get_input(bev);
	sconn_touch(k);
	while (evbuffer_get_length(in)) {
		struct evbuffer_iovec v;
		evbuffer_peek(in, -1, NULL, &v, 1);
		chan_send(k, p->data, v.iov_base, v.iov_len);
		evbuffer_drain(in, v.iov_len);
	}
	if (sconn_pending(k) > STREAM_HIGH_WATER)
		bufferevent_disable(bev, EV_READ);
}

static void sock_written(struct bufferevent *bev, void *arg)
{
	struct pf_pair *p = arg;
	sconn_pause_input(p->s->k, false);
	if (p->client_fin && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		shut_wr(p);
}

static void sock_event(struct bufferevent *bev, short what, void *arg)
{
	struct pf_pair *p = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	sock_read(bev, p);
	if ((what & BEV_EVENT_ERROR) && !(what & BEV_EVENT_EOF) && (what & BEV_EVENT_WRITING)) {
		/* the application reset the connection: nothing more either way */
		p->client_fin = true;
	}
	bufferevent_disable(bev, EV_READ);
	p->sock_eof = true;
	chan_fin(p->s->k, p->data);
	if (what & BEV_EVENT_ERROR)
		p->client_fin = true;
	maybe_pair_done(p);
}

void pf_drained(struct sconn *k)
{
	if (!k->pf)
		return;
	for (struct pf_pair *p = k->pf->pairs; p; p = p->next)
		if (p->sock && !p->sock_eof)
			bufferevent_enable(p->sock, EV_READ);
}

static void pf_opened(void *ud, int status, const char *message, struct stream_fds *fds)
{
	struct pf_open_ud *o = ud;
	struct pf_pair *p = o->p;
	free(o);
	if (!p) {
		if (fds->out >= 0)
			close(fds->out);
		return;
	}
	p->opening = NULL;
	p->opened = true;
	struct sconn *k = p->s->k;
	if (status != STATUS_OK) {
		pair_error(p, "error forwarding port %u to pod %s: %s", p->port, k->req->id,
			   message ? message : "failed");
		return;
	}
	p->sock = bufferevent_socket_new(k->srv->c->base, fds->out, BEV_OPT_CLOSE_ON_FREE);
	if (!p->sock) {
		close(fds->out);
		pair_error(p, "error forwarding port %u: out of memory", p->port);
		return;
	}
	bufferevent_setcb(p->sock, sock_read, sock_written, sock_event, p);
	bufferevent_setwatermark(p->sock, EV_WRITE, STREAM_HIGH_WATER / 4, 0);
	bufferevent_enable(p->sock, EV_READ | EV_WRITE);
	log_debug(k->req->req_id, "port-forward connected", "port=%u request_id=%s", p->port, p->request_id);
	if (evbuffer_get_length(p->early))
		bufferevent_write_buffer(p->sock, p->early);
	sconn_pause_input(k, false);
	if (p->client_fin && evbuffer_get_length(bufferevent_get_output(p->sock)) == 0)
		shut_wr(p);
}

static void pair_connect(struct pf_pair *p)
{
	struct sconn *k = p->s->k;
	if (p->port == 0) {
		pair_error(p, "invalid port: the port header must be 1..65535");
		return;
	}
	struct pf_open_ud *o = calloc(1, sizeof(*o));
	if (!o) {
		pair_error(p, "out of memory");
		return;
	}
	o->p = p;
	p->opening = o;
	struct stream_portforward_params prm = {.request_id = k->req->req_id, .pod_id = k->req->id, .port = p->port};
	int r = stream_backend_portforward(k->srv->c, &prm, pf_opened, o);
	if (r < 0) {
		free(o);
		p->opening = NULL;
		pair_error(p, "error forwarding port %u: %s", p->port, strerror(-r));
	}
}

static struct pf_pair *pair_new(struct pf_session *s, const char *request_id, uint16_t port)
{
	if (s->n_pairs >= STREAM_MAX_CHANS / 2)
		return NULL;
	struct pf_pair *p = calloc(1, sizeof(*p));
	if (!p || !(p->early = evbuffer_new())) {
		free(p);
		return NULL;
	}
	p->s = s;
	p->port = port;
	snprintf(p->request_id, sizeof(p->request_id), "%s", request_id);
	p->next = s->pairs;
	s->pairs = p;
	s->n_pairs++;
	return p;
}

int pf_open(struct sconn *k)
{
	struct pf_session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->k = k;
	k->pf = s;
	if (k->t != T_WS)
		return 0; /* SPDY: pairs come as the client makes streams */
	for (size_t i = 0; i < k->req->n_ports; i++) {
		char rid[24];
		snprintf(rid, sizeof(rid), "%zu", i);
		struct pf_pair *p = pair_new(s, rid, k->req->ports[i]);
		if (!p || !(p->data = chan_new(k, (uint32_t)(2 * i), ROLE_PF_DATA)) ||
		    !(p->error = chan_new(k, (uint32_t)(2 * i + 1), ROLE_PF_ERROR)))
			return -ENOMEM;
		p->data->owner = p->error->owner = p;
		uint8_t le[2] = {(uint8_t)p->port, (uint8_t)(p->port >> 8)};
		chan_send(k, p->data, le, 2);
		chan_send(k, p->error, le, 2);
	}
	/* connect after every channel has its port message */
	for (struct pf_pair *p = s->pairs, *next; p; p = next) {
		next = p->next;
		pair_connect(p);
	}
	return 0;
}

void pf_stream(struct sconn *k, struct chan *ch)
{
	struct pf_session *s = k->pf;
	if (!s || (ch->role != ROLE_PF_DATA && ch->role != ROLE_PF_ERROR)) {
		log_warn(k->req->req_id, "port-forward stream of an unknown type refused", "peer=%s id=%u", k->peer,
			 ch->id);
		chan_reset(k, ch);
		chan_del(k, ch);
		return;
	}
	struct pf_pair *p = NULL;
	for (p = s->pairs; p; p = p->next)
		if (strcmp(p->request_id, ch->request_id) == 0)
			break;
	if (!p && !(p = pair_new(s, ch->request_id, ch->port))) {
		chan_reset(k, ch);
		chan_del(k, ch);
		return;
	}
	struct chan **slot = ch->role == ROLE_PF_DATA ? &p->data : &p->error;
	if (*slot) {
		log_warn(k->req->req_id, "duplicate port-forward stream refused", "request_id=%s", ch->request_id);
		chan_reset(k, ch);
		chan_del(k, ch);
		return;
	}
	*slot = ch;
	ch->owner = p;
	if (ch->role == ROLE_PF_DATA)
		p->port = ch->port;
	if (p->data && p->error && !p->opening && !p->opened)
		pair_connect(p);
}

void pf_data(struct sconn *k, struct chan *ch, const uint8_t *data, size_t len)
{
	struct pf_pair *p = ch->owner;
	if (!p || ch != p->data || p->client_fin)
		return; /* the error stream carries nothing from the client */
	if (!p->sock) {
		evbuffer_add(p->early, data, len);
		if (evbuffer_get_length(p->early) > STREAM_HIGH_WATER)
			sconn_pause_input(k, true);
		return;
	}
	bufferevent_write(p->sock, data, len);
	if (evbuffer_get_length(bufferevent_get_output(p->sock)) > STREAM_HIGH_WATER)
		sconn_pause_input(k, true);
}

void pf_fin(struct sconn *k _unused_, struct chan *ch)
{
	struct pf_pair *p = ch->owner;
	if (!p || ch != p->data || p->client_fin)
		return;
	p->client_fin = true;
	if (p->sock && evbuffer_get_length(bufferevent_get_output(p->sock)) == 0)
		shut_wr(p);
	maybe_pair_done(p);
}

void pf_reset(struct sconn *k _unused_, struct chan *ch)
{
	struct pf_pair *p = ch->owner;
	if (!p)
		return;
	pair_done(p);
}
