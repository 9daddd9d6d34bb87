/* Shared between the streaming server's files (stream_server.c,
 * stream_transport.c, stream_exec.c, stream_portforward.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "stream_http.h"
#include "stream_server.h"
#include "stream_spdy.h"

#define STREAM_MAX_FRAME (1u << 20)       /* SPDY frame or WebSocket message payload */
#define STREAM_HIGH_WATER (1u << 20)      /* buffered bytes before a side stops reading */
#define STREAM_CHUNK 32768                /* bytes of one frame we send */
#define STREAM_CREATION_TIMEOUT_MS 30000  /* SPDY: all streams of a session within this */
#define STREAM_LINGER_MS 5000             /* after the last frame: wait this long for the client to close */
#define STREAM_MAX_CONNS 1024
#define STREAM_FDS_PER_CONN 5 /* the client's socket; stdin, stdout, stderr and resize (or a forwarded port) */
#define STREAM_FDS_RESERVED 256 /* kept for the CRI socket's clients, the daemons and state files */
#define STREAM_MAX_TOKENS 4096
#define STREAM_MAX_CHANS 256

struct stream_server {
	struct criod *c;
	struct evconnlistener *lis;
	char base_url[160]; /* http://127.0.0.1:PORT */
	struct stream_token *tokens;
	size_t n_tokens;
	struct sconn *conns;
	size_t n_conns;
	size_t max_conns; /* STREAM_MAX_CONNS, or fewer when RLIMIT_NOFILE is low */
	uint64_t idle_ms, token_ms;
	struct event *sweep_ev; /* every 10 s: expired tokens, a paused listener */
	bool lis_paused;
	void *ssl_ctx; /* SSL_CTX * when tls_cert is set */
};

enum chan_role {
	ROLE_NONE = 0, ROLE_ERROR, ROLE_STDIN, ROLE_STDOUT, ROLE_STDERR, ROLE_RESIZE, ROLE_PF_DATA, ROLE_PF_ERROR,
};

struct chan {
	struct chan *next;
	uint32_t id; /* SPDY stream id; WebSocket channel number */
	enum chan_role role;
	uint16_t port;
	char request_id[32];
	bool remote_fin, local_fin;
	void *owner; /* the port-forward pair */
};

enum transport { T_NONE = 0, T_SPDY, T_WS, T_WS_SPDY };

struct sconn {
	struct sconn *next;
	struct stream_server *srv;
	struct bufferevent *bev;
	char peer[64];
	enum transport t;
	int version;       /* remotecommand protocol: 1 channel.k8s.io .. 5 v5.channel.k8s.io */
	bool base64;       /* WebSocket *.base64.channel.k8s.io */
	struct stream_request *req;
	/* SPDY */
	struct spdy_zlib z;
	bool z_ok;
	uint32_t last_stream;
	struct evbuffer *tunnel_in; /* T_WS_SPDY: SPDY bytes out of WebSocket messages */
	/* WebSocket */
	struct evbuffer *msg;       /* the message being reassembled */
	uint8_t msg_op;
	bool in_msg;
	struct chan *chans;
	size_t n_chans;
	struct rc_session *rc; /* Exec, Attach */
	struct pf_session *pf; /* PortForward */
	struct event *timer;   /* idle timeout, stream creation, linger */
	uint64_t last_ms;
	uint64_t deadline_ms;  /* stream creation deadline (0: none) */
	bool upgraded, closing, paused_in;
};

uint64_t stream_now_ms(void);
/* Note activity (resets the idle timer). */
void sconn_touch(struct sconn *k);
/* Tear the connection down now (every session descriptor is closed). */
void sconn_free(struct sconn *k);
/* Send the last bytes queued, then close (after the client closes, or a
 * short linger). */
void sconn_finish(struct sconn *k);
/* Bytes waiting to go to the client. */
size_t sconn_pending(const struct sconn *k);
/* Stop or resume reading the client (the backend is full / drained). */
void sconn_pause_input(struct sconn *k, bool pause);
void sconn_write(struct sconn *k, const void *data, size_t len);

/* transport (stream_transport.c) */
int transport_open(struct sconn *k); /* after the 101 response */
void transport_read(struct sconn *k); /* bytes from the client are in k->bev's input */
void transport_free(struct sconn *k);
struct chan *chan_find(struct sconn *k, uint32_t id);
struct chan *chan_new(struct sconn *k, uint32_t id, enum chan_role role);
void chan_del(struct sconn *k, struct chan *ch);
/* Send on a channel (split into frames); fin: the last of it (SPDY FIN). */
void chan_send(struct sconn *k, struct chan *ch, const void *data, size_t len);
void chan_fin(struct sconn *k, struct chan *ch);
void chan_reset(struct sconn *k, struct chan *ch);
/* The WebSocket close frame, before sconn_finish. */
void transport_close(struct sconn *k, uint16_t code, const char *reason);

/* remotecommand (stream_exec.c): Exec and Attach */
int rc_open(struct sconn *k);                       /* the upgrade is done */
void rc_stream(struct sconn *k, struct chan *ch);   /* SPDY: a new stream (role set) */
void rc_data(struct sconn *k, struct chan *ch, const uint8_t *data, size_t len);
void rc_fin(struct sconn *k, struct chan *ch);      /* the client is done sending on ch */
void rc_drained(struct sconn *k);                   /* the client's output went below the mark */
void rc_timeout(struct sconn *k);                   /* SPDY streams not all there in time */
void rc_free(struct sconn *k);

/* port-forward (stream_portforward.c) */
int pf_open(struct sconn *k);
void pf_stream(struct sconn *k, struct chan *ch);
void pf_data(struct sconn *k, struct chan *ch, const uint8_t *data, size_t len);
void pf_fin(struct sconn *k, struct chan *ch);
void pf_reset(struct sconn *k, struct chan *ch);
void pf_drained(struct sconn *k);
void pf_free(struct sconn *k);
