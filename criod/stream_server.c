/* The streaming server: listener, tokens, the HTTP request and upgrade,
 * connections and their timers. See stream_server.h.
 *
 * Tokens are 128 random bits (getrandom), single use: the first request
 * naming one consumes it, whatever becomes of the request; an unknown,
 * used or expired token is 404, like kubelet's streaming server. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cri.h"
#include "log.h"
#include "macro.h"
#include "stream_internal.h"
#include "stream_ws.h"

struct stream_token {
	struct stream_token *next;
	char token[33];
	uint64_t expires_ms;
	struct stream_request *r;
};

uint64_t stream_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void stream_request_free(struct stream_request *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_cmd; i++)
		free(r->cmd[i]);
	free(r->cmd);
	free(r);
}

/* ---------------------------------------------------------------- tokens */

static void token_free(struct stream_token *t)
{
	stream_request_free(t->r);
	free(t);
}

static void tokens_sweep(struct stream_server *s)
{
	uint64_t now = stream_now_ms();
	for (struct stream_token **pp = &s->tokens; *pp;) {
		struct stream_token *t = *pp;
		if (t->expires_ms <= now) {
			*pp = t->next;
			s->n_tokens--;
			token_free(t);
		} else {
			pp = &t->next;
		}
	}
}

int stream_server_token(struct stream_server *s, struct stream_request *r, char *url, size_t url_len)
{
	tokens_sweep(s);
	if (s->n_tokens >= STREAM_MAX_TOKENS) {
		stream_request_free(r);
		return -ENOSPC;
	}
	struct stream_token *t = calloc(1, sizeof(*t));
	uint8_t raw[16];
	if (!t || getrandom(raw, sizeof(raw), 0) != sizeof(raw)) {
		int r_ = t ? -errno : -ENOMEM;
		free(t);
		stream_request_free(r);
		return r_ < 0 ? r_ : -EIO;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(t->token + 2 * i, 3, "%02x", raw[i]);
	t->expires_ms = stream_now_ms() + s->token_ms;
	t->r = r;
	t->next = s->tokens;
	s->tokens = t;
	s->n_tokens++;
	static const char *const kinds[] = {"", "exec", "attach", "portforward"};
	snprintf(url, url_len, "%s/%s/%s", s->base_url, kinds[r->kind], t->token);
	return 0;
}

/* Take the request of a live token (it is used up). */
static struct stream_request *token_consume(struct stream_server *s, const char *token)
{
	tokens_sweep(s);
	for (struct stream_token **pp = &s->tokens; *pp; pp = &(*pp)->next) {
		struct stream_token *t = *pp;
		if (strlen(token) == 32 && strcmp(t->token, token) == 0) {
			*pp = t->next;
			s->n_tokens--;
			struct stream_request *r = TAKE_PTR(t->r);
			free(t);
			return r;
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------- connections */

static void conn_arm(struct sconn *k);

void sconn_touch(struct sconn *k)
{
	k->last_ms = stream_now_ms();
}

size_t sconn_pending(const struct sconn *k)
{
	return evbuffer_get_length(bufferevent_get_output(k->bev));
}

void sconn_write(struct sconn *k, const void *data, size_t len)
{
	if (!k->closing || len == 0)
		bufferevent_write(k->bev, data, len);
}

void sconn_pause_input(struct sconn *k, bool pause)
{
	if (pause == k->paused_in)
		return;
	k->paused_in = pause;
	if (pause)
		bufferevent_disable(k->bev, EV_READ);
	else
		bufferevent_enable(k->bev, EV_READ);
}

void sconn_free(struct sconn *k)
{
	struct stream_server *s = k->srv;
	for (struct sconn **pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			s->n_conns--;
			break;
		}
	const char *req = k->req ? k->req->req_id : NULL;
	log_debug(req, "stream connection closed", "peer=%s", k->peer);
	rc_free(k);
	pf_free(k);
	transport_free(k);
	if (k->timer)
		event_free(k->timer);
	if (k->bev)
		bufferevent_free(k->bev);
	stream_request_free(k->req);
	free(k);
}

static void linger_start(struct sconn *k)
{
	int fd = (int)bufferevent_getfd(k->bev);
	if (!k->srv->ssl_ctx && fd >= 0)
		shutdown(fd, SHUT_WR);
	k->deadline_ms = stream_now_ms() + STREAM_LINGER_MS;
	conn_arm(k);
}

void sconn_finish(struct sconn *k)
{
	if (k->closing)
		return;
	k->closing = true;
	k->deadline_ms = 0; /* from here the linger bounds it */
	/* The client's further bytes are read and dropped until it closes. */
	sconn_pause_input(k, false);
	if (sconn_pending(k) == 0)
		linger_start(k);
	else
		bufferevent_setwatermark(k->bev, EV_WRITE, 0, 0);
}

static void http_error(struct sconn *k, int code, const char *extra_headers, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void http_error(struct sconn *k, int code, const char *extra_headers, const char *fmt, ...)
{
	char body[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	strcat(body, "\n");
	evbuffer_add_printf(bufferevent_get_output(k->bev),
			    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			    "X-Content-Type-Options: nosniff\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
			    code, http_reason(code), strlen(body), extra_headers ? extra_headers : "", body);
	log_info(k->req ? k->req->req_id : NULL, "stream request refused", "peer=%s code=%d reason=\"%.*s\"",
		 k->peer, code, (int)strlen(body) - 1, body);
	sconn_finish(k);
}

/* ---------------------------------------------------------------- negotiation */

struct proto_choice {
	const char *name;
	enum transport t;
	int version;
	bool base64;
};

static const struct proto_choice spdy_rc[] = {
	{"v4.channel.k8s.io", T_SPDY, 4, false},
	{"v3.channel.k8s.io", T_SPDY, 3, false},
	{"v2.channel.k8s.io", T_SPDY, 2, false},
	{"channel.k8s.io", T_SPDY, 1, false},
	{NULL, 0, 0, false},
};
static const struct proto_choice spdy_pf[] = {
	{"portforward.k8s.io", T_SPDY, 1, false},
	{NULL, 0, 0, false},
};
/* WebSocket: "" (no subprotocol asked) is the binary channel protocol. */
static const struct proto_choice ws_rc[] = {
	{"v5.channel.k8s.io", T_WS, 5, false},
	{"v4.channel.k8s.io", T_WS, 4, false},
	{"v4.base64.channel.k8s.io", T_WS, 4, true},
	{"channel.k8s.io", T_WS, 1, false},
	{"base64.channel.k8s.io", T_WS, 1, true},
	{NULL, 0, 0, false},
};
static const struct proto_choice ws_pf[] = {
	{"SPDY/3.1+portforward.k8s.io", T_WS_SPDY, 1, false},
	{"v4.channel.k8s.io", T_WS, 4, false},
	{"v4.base64.channel.k8s.io", T_WS, 4, true},
	{"channel.k8s.io", T_WS, 1, false},
	{"base64.channel.k8s.io", T_WS, 1, true},
	{NULL, 0, 0, false},
};

struct pick {
	const struct proto_choice *list, *chosen;
};

static bool pick_one(const char *v, size_t len, void *arg)
{
	struct pick *p = arg;
	for (const struct proto_choice *c = p->list; c->name; c++)
		if (strlen(c->name) == len && strncmp(c->name, v, len) == 0) {
			p->chosen = c;
			return true;
		}
	return false;
}

static bool count_one(const char *v _unused_, size_t len _unused_, void *arg)
{
	(*(size_t *)arg)++;
	return false;
}

static void list_names(const struct proto_choice *list, char *out, size_t outlen, const char *sep)
{
	out[0] = '\0';
	for (const struct proto_choice *c = list; c->name; c++)
		snprintf(out + strlen(out), outlen - strlen(out), "%s%s", c == list ? "" : sep, c->name);
}

/* Returns true when k is upgraded and alive. */
static bool handle_request(struct sconn *k, struct http_request *h)
{
	static const struct {
		const char *prefix;
		enum stream_kind kind;
	} routes[] = {{"/exec/", STREAM_EXEC}, {"/attach/", STREAM_ATTACH}, {"/portforward/", STREAM_PORTFORWARD}};
	const char *token = NULL;
	enum stream_kind kind = 0;
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++)
		if (strncmp(h->path, routes[i].prefix, strlen(routes[i].prefix)) == 0) {
			token = h->path + strlen(routes[i].prefix);
			kind = routes[i].kind;
		}
	if (!token || !*token || strchr(token, '/')) {
		http_error(k, 404, NULL, "404 page not found");
		return false;
	}
	if (strcmp(h->method, "GET") != 0 && strcmp(h->method, "POST") != 0) {
		http_error(k, 405, "Allow: GET, POST\r\n", "method %s is not allowed: use GET or POST", h->method);
		return false;
	}
	struct stream_request *r = token_consume(k->srv, token);
	if (!r || r->kind != kind) {
		stream_request_free(r);
		http_error(k, 404, NULL, "404 page not found");
		return false;
	}
	k->req = r;
	bool pf = kind == STREAM_PORTFORWARD;
	bool conn_upgrade = http_header_has_token(h, "Connection", "upgrade");
	char names[256], extra[512];

	if (http_header_has_token(h, "Upgrade", "websocket")) {
		const char *ver = http_header(h, "Sec-WebSocket-Version");
		const char *key = http_header(h, "Sec-WebSocket-Key");
		char accept[29];
		if (!conn_upgrade) {
			http_error(k, 400, NULL, "unable to upgrade: the Connection header does not name upgrade");
			return false;
		}
		if (!ver || strcmp(ver, "13") != 0) {
			http_error(k, 400, "Sec-WebSocket-Version: 13\r\n",
				   "unable to upgrade: Sec-WebSocket-Version must be 13");
			return false;
		}
		if (!key || ws_accept_key(key, accept) < 0) {
			http_error(k, 400, NULL, "unable to upgrade: Sec-WebSocket-Key is missing or malformed");
			return false;
		}
		struct pick p = {pf ? ws_pf : ws_rc, NULL};
		size_t offered = 0;
		http_header_each(h, "Sec-WebSocket-Protocol", count_one, &offered);
		if (offered && !http_header_each(h, "Sec-WebSocket-Protocol", pick_one, &p)) {
			list_names(p.list, names, sizeof(names), ", ");
			http_error(k, 403, NULL, "requested protocol(s) are not supported: %.200s; supports %s",
				   http_header(h, "Sec-WebSocket-Protocol"), names);
			return false;
		}
		const struct proto_choice legacy = {"", T_WS, 1, false};
		const struct proto_choice *c = p.chosen ? p.chosen : &legacy;
		if (pf && c->t == T_WS) {
			/* Channel port-forward: the ports are in the URL (?port=N). */
			char v[16];
			size_t n = 0;
			for (size_t i = 0; http_query_param(h, "port", i, v, sizeof(v)); i++) {
				char *end;
				long port = strtol(v, &end, 10);
				if (*end || end == v || port < 1 || port > 65535) {
					http_error(k, 400, NULL, "query parameter \"port\": %.16s is not a port (1..65535)", v);
					return false;
				}
				if (n == STREAM_MAX_PORTS) {
					http_error(k, 400, NULL, "query parameter \"port\": at most %d ports", STREAM_MAX_PORTS);
					return false;
				}
				r->ports[n++] = (uint16_t)port;
			}
			if (n)
				r->n_ports = n;
			if (!r->n_ports) {
				http_error(k, 400, NULL, "query parameter \"port\" is required");
				return false;
			}
		}
		k->t = c->t;
		k->version = c->version;
		k->base64 = c->base64;
		snprintf(extra, sizeof(extra), "%s%s%s", *c->name ? "Sec-WebSocket-Protocol: " : "", c->name,
			 *c->name ? "\r\n" : "");
		evbuffer_add_printf(bufferevent_get_output(k->bev),
				    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
				    "Sec-WebSocket-Accept: %s\r\n%s\r\n",
				    accept, extra);
	} else if (http_header_has_token(h, "Upgrade", "SPDY/3.1")) {
		if (!conn_upgrade) {
			http_error(k, 400, NULL, "unable to upgrade: missing upgrade headers in request");
			return false;
		}
		struct pick p = {pf ? spdy_pf : spdy_rc, NULL};
		size_t offered = 0;
		http_header_each(h, "X-Stream-Protocol-Version", count_one, &offered);
		if (!offered) {
			http_error(k, 400, NULL, "unable to upgrade: X-Stream-Protocol-Version is required");
			return false;
		}
		if (!http_header_each(h, "X-Stream-Protocol-Version", pick_one, &p)) {
			extra[0] = '\0';
			for (const struct proto_choice *c = p.list; c->name; c++)
				snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
					 "X-Accepted-Stream-Protocol-Versions: %s\r\n", c->name);
			list_names(p.list, names, sizeof(names), " ");
			http_error(k, 403, extra,
				   "unable to upgrade: unable to negotiate protocol: client supports [%.200s], server "
				   "accepts [%s]",
				   http_header(h, "X-Stream-Protocol-Version"), names);
			return false;
		}
		k->t = T_SPDY;
		k->version = p.chosen->version;
		evbuffer_add_printf(bufferevent_get_output(k->bev),
				    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
				    "X-Stream-Protocol-Version: %s\r\n\r\n",
				    p.chosen->name);
	} else {
		http_error(k, 400, NULL,
			   "unable to upgrade: this URL takes an upgrade to SPDY/3.1 or websocket (Connection: Upgrade)");
		return false;
	}
	k->upgraded = true;
	k->deadline_ms = 0;
	log_info(r->req_id, "stream session", "peer=%s kind=%s transport=%s protocol=%d base64=%d id=%.12s", k->peer,
		 kind == STREAM_EXEC ? "exec" : kind == STREAM_ATTACH ? "attach" : "portforward",
		 k->t == T_SPDY ? "spdy" : k->t == T_WS ? "websocket" : "spdy-over-websocket", k->version, k->base64,
		 r->id);
	int rr = transport_open(k);
	if (rr >= 0)
		rr = pf ? pf_open(k) : rc_open(k);
	if (rr < 0) {
		log_error_errno(rr, r->req_id, "cannot open stream session");
		sconn_free(k);
		return false;
	}
	return !k->closing;
}

/* ---------------------------------------------------------------- events */

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct sconn *k = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	sconn_touch(k);
	if (k->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (!k->upgraded) {
		size_t len = evbuffer_get_length(in);
		size_t n = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
		const char *data = (const char *)evbuffer_pullup(in, (ssize_t)n);
		struct http_request h;
		int r = http_parse_request(data, n, HTTP_MAX_HEAD, &h);
		if (r == 0)
			return;
		if (r == -EMSGSIZE) {
			http_error(k, 431, NULL, "request head is over %d bytes or %d headers", HTTP_MAX_HEAD,
				   HTTP_MAX_HEADERS);
			return;
		}
		if (r < 0) {
			http_error(k, 400, NULL, "malformed HTTP/1.1 request");
			return;
		}
		evbuffer_drain(in, (size_t)r);
		bool alive = handle_request(k, &h); /* may free k */
		http_request_free(&h);
		if (!alive || evbuffer_get_length(in) == 0)
			return;
	}
	transport_read(k);
}

static void conn_write(struct bufferevent *bev _unused_, void *arg)
{
	struct sconn *k = arg;
	if (k->closing) {
		if (sconn_pending(k) == 0 && k->deadline_ms == 0)
			linger_start(k);
		return;
	}
	if (k->rc)
		rc_drained(k);
	if (k->pf)
		pf_drained(k);
}

static void conn_event(struct bufferevent *bev _unused_, short what, void *arg)
{
	struct sconn *k = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (!k->closing && k->upgraded)
			log_info(k->req ? k->req->req_id : NULL, "stream client went away", "peer=%s", k->peer);
		sconn_free(k);
	}
}

static void conn_timer(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct sconn *k = arg;
	uint64_t now = stream_now_ms();
	const char *req = k->req ? k->req->req_id : NULL;
	if (k->closing) {
		if (k->deadline_ms && now >= k->deadline_ms) {
			sconn_free(k);
			return;
		}
	} else if (k->deadline_ms && now >= k->deadline_ms) {
		k->deadline_ms = 0;
		if (!k->upgraded) {
			http_error(k, 408, NULL, "no complete request within %d s", STREAM_CREATION_TIMEOUT_MS / 1000);
		} else {
			rc_timeout(k); /* finishes the session, never frees k */
		}
	} else if (now - k->last_ms >= k->srv->idle_ms) {
		log_info(req, "stream session idle, closed", "peer=%s idle_timeout_ms=%llu", k->peer,
			 (unsigned long long)k->srv->idle_ms);
		sconn_free(k);
		return;
	}
	conn_arm(k);
}

static void conn_arm(struct sconn *k)
{
	uint64_t now = stream_now_ms();
	uint64_t at = k->last_ms + k->srv->idle_ms;
	if (k->deadline_ms && k->deadline_ms < at)
		at = k->deadline_ms;
	if (k->closing)
		at = k->deadline_ms ? k->deadline_ms : now + STREAM_LINGER_MS;
	uint64_t d = at > now ? at - now : 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
	evtimer_add(k->timer, &tv);
}

static void on_accept(struct evconnlistener *l _unused_, evutil_socket_t fd, struct sockaddr *sa, int salen _unused_, void *arg)
{
	struct stream_server *s = arg;
	if (s->n_conns >= s->max_conns) {
		log_warn(NULL, "stream connection refused: too many", "max=%zu", s->max_conns);
		close(fd);
		return;
	}
	struct sconn *k = calloc(1, sizeof(*k));
	if (!k) {
		close(fd);
		return;
	}
	k->srv = s;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)sa)->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)sa)->sin6_port);
	}
	snprintf(k->peer, sizeof(k->peer), "%s:%d", host, port);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct event_base *base = s->c->base;
	if (s->ssl_ctx) {
		SSL *ssl = SSL_new(s->ssl_ctx);
		k->bev = ssl ? bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							      BEV_OPT_CLOSE_ON_FREE)
			     : NULL;
		if (!k->bev && ssl)
			SSL_free(ssl);
	} else {
		k->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	k->timer = evtimer_new(base, conn_timer, k);
	if (!k->bev || !k->timer) {
		if (!k->bev)
			close(fd);
		if (k->bev)
			bufferevent_free(k->bev);
		if (k->timer)
			event_free(k->timer);
		free(k);
		return;
	}
	bufferevent_setcb(k->bev, conn_read, conn_write, conn_event, k);
	bufferevent_setwatermark(k->bev, EV_WRITE, STREAM_HIGH_WATER / 4, 0);
	bufferevent_enable(k->bev, EV_READ | EV_WRITE);
	k->next = s->conns;
	s->conns = k;
	s->n_conns++;
	sconn_touch(k);
	k->deadline_ms = k->last_ms + STREAM_CREATION_TIMEOUT_MS;
	conn_arm(k);
	log_debug(NULL, "stream connection", "peer=%s", k->peer);
}

static void sweep_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct stream_server *s = arg;
	tokens_sweep(s);
	if (s->lis_paused) {
		s->lis_paused = false;
		evconnlistener_enable(s->lis);
	}
}

/* accept4 failed (EMFILE, ENFILE, ENOBUFS...): the connection stays queued
 * and the listener would fire at once again, so it pauses until the next
 * sweep (10 s) instead of spinning. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct stream_server *s = arg;
	int e = EVUTIL_SOCKET_ERROR();
	log_error_errno(e, NULL, "streaming server cannot accept, pausing 10 s", "conns=%zu", s->n_conns);
	evconnlistener_disable(l);
	s->lis_paused = true;
}

static int tls_setup(struct stream_server *s, const struct criod_config *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return log_error_errno(ENOMEM, NULL, "cannot make a TLS context");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->stream_tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->stream_tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char e[256];
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		SSL_CTX_free(ctx);
		log_error(NULL, "cannot load the streaming server's TLS certificate or key", "cert=%s key=%s error=\"%s\"",
			  cfg->stream_tls_cert, cfg->stream_tls_key, e);
		return -EINVAL;
	}
	s->ssl_ctx = ctx;
	return 0;
}

/* Sessions criod can hold open without running out of descriptors for
 * everything else: each may take STREAM_FDS_PER_CONN of RLIMIT_NOFILE. */
static size_t stream_max_conns(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return STREAM_MAX_CONNS;
	rlim_t n = rl.rlim_cur > STREAM_FDS_RESERVED + STREAM_FDS_PER_CONN
			   ? (rl.rlim_cur - STREAM_FDS_RESERVED) / STREAM_FDS_PER_CONN
			   : 1;
	if (n < STREAM_MAX_CONNS)
		log_warn(NULL, "open files limit caps the streaming sessions", "nofile=%llu max_sessions=%llu",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)n);
	return n < STREAM_MAX_CONNS ? (size_t)n : STREAM_MAX_CONNS;
}

int stream_server_start(struct criod *c, int passed_fd, struct stream_server **out)
{
	const struct criod_config *cfg = c->cfg;
	struct stream_server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->max_conns = stream_max_conns();
	s->idle_ms = cfg->stream_idle_timeout_ms;
	s->token_ms = cfg->stream_token_timeout_ms;
	int r;
	if (*cfg->stream_tls_cert || *cfg->stream_tls_key) {
		if (!*cfg->stream_tls_cert || !*cfg->stream_tls_key) {
			free(s);
			if (passed_fd >= 0)
				close(passed_fd);
			return log_error_errno(EINVAL, NULL, "[streaming] tls_cert and tls_key go together");
		}
		if ((r = tls_setup(s, cfg)) < 0) {
			free(s);
			if (passed_fd >= 0)
				close(passed_fd);
			return r;
		}
	}
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	bool v6 = false;
	char host[INET6_ADDRSTRLEN];
	int fd = passed_fd;
	if (fd >= 0) {
		/* systemd made the socket: its address is the truth */
		sl = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
			r = -errno;
			close(fd);
			stream_server_free(s);
			return log_error_errno(r, NULL, "cannot read the passed streaming socket's address");
		}
		v6 = ss.ss_family == AF_INET6;
		inet_ntop(ss.ss_family, v6 ? (void *)&sin6->sin6_addr : (void *)&sin->sin_addr, host, sizeof(host));
		if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) /* a wildcard: say the configured address */
			snprintf(host, sizeof(host), "%s", cfg->stream_address);
		log_info(NULL, "streaming socket passed by systemd", "fd=%d address=%s", fd, host);
		unsigned passed_port = ntohs(v6 ? sin6->sin6_port : sin->sin_port);
		if (strcmp(host, cfg->stream_address) != 0 || (cfg->stream_port && cfg->stream_port != passed_port))
			log_warn(NULL, "[streaming] address and port are not used: the socket systemd passed is",
				 "config_address=%s config_port=%llu address=%s port=%u", cfg->stream_address,
				 (unsigned long long)cfg->stream_port, host, passed_port);
		goto listening;
	}
	snprintf(host, sizeof(host), "%s", cfg->stream_address);
	if (inet_pton(AF_INET, cfg->stream_address, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cfg->stream_port);
		sl = sizeof(*sin);
	} else if (inet_pton(AF_INET6, cfg->stream_address, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cfg->stream_port);
		sl = sizeof(*sin6);
		v6 = true;
	} else {
		stream_server_free(s);
		return log_error_errno(EINVAL, NULL, "[streaming] address is not an IP address", "address=%s",
				       cfg->stream_address);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		stream_server_free(s);
		return log_error_errno(r, NULL, "cannot listen for streaming", "address=%s port=%llu",
				       cfg->stream_address, (unsigned long long)cfg->stream_port);
	}
listening:;
	unsigned port = ntohs(v6 ? sin6->sin6_port : sin->sin_port);
	s->lis = evconnlistener_new(c->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (s->lis)
		evconnlistener_set_error_cb(s->lis, on_accept_error);
	s->sweep_ev = event_new(c->base, -1, EV_PERSIST, sweep_cb, s);
	struct timeval tv = {10, 0};
	if (!s->lis || !s->sweep_ev || event_add(s->sweep_ev, &tv) < 0) {
		if (!s->lis)
			close(fd);
		stream_server_free(s);
		return log_error_errno(ENOMEM, NULL, "out of memory");
	}
	snprintf(s->base_url, sizeof(s->base_url), "%s://%s%s%s:%u", s->ssl_ctx ? "https" : "http", v6 ? "[" : "",
		 host, v6 ? "]" : "", port);
	log_info(NULL, "streaming server listening", "url=%s idle_timeout_ms=%llu token_ms=%llu", s->base_url,
		 (unsigned long long)s->idle_ms, (unsigned long long)s->token_ms);
	*out = s;
	return 0;
}

void stream_server_free(struct stream_server *s)
{
	if (!s)
		return;
	while (s->conns)
		sconn_free(s->conns);
	while (s->tokens) {
		struct stream_token *t = s->tokens;
		s->tokens = t->next;
		token_free(t);
	}
	if (s->lis)
		evconnlistener_free(s->lis);
	if (s->sweep_ev)
		event_free(s->sweep_ev);
	if (s->ssl_ctx)
		SSL_CTX_free(s->ssl_ctx);
	free(s);
}
