/* Exec and Attach over the streaming server (Kubernetes' remotecommand):
 * the client's streams (SPDY: error, stdin, stdout, stderr, resize by their
 * streamType; WebSocket: channels 0..4) relayed to the descriptors the
 * root side hands over (stream_backend.h), terminal sizes sent on the ctl
 * socket, and the result on the error stream: for protocol v4 and later a
 * metav1.Status (Success; Failure with reason NonZeroExitCode and the
 * code as an ExitCode cause; InternalError), before v4 the message text.
 *
 * The backend is opened once the session's streams are all there (SPDY;
 * at once with WebSocket), as kubelet's streaming server does. When the
 * client goes away every descriptor is closed: conmon then kills an exec'd
 * process and drops an attacher. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cri.h"
#include "log.h"
#include "status.h"
#include "stream_backend.h"
#include "stream_internal.h"
#include "stream_ws.h"

enum { R_ERROR, R_STDIN, R_STDOUT, R_STDERR, R_RESIZE, R_N };

struct rc_open_ud {
	struct rc_session *s; /* NULL once the session is gone */
};

struct rc_session {
	struct sconn *k;
	struct chan *ch[R_N];
	bool want[R_N];
	struct rc_open_ud *opening;
	bool opened, done;
	struct bufferevent *in, *out, *err;
	int ctl;
	struct event *ctl_ev;
	bool out_eof, err_eof, exited, ctl_gone, in_closed, in_close_pending;
	int32_t exit_code;
	struct evbuffer *stdin_early; /* stdin before the backend is there */
	char resize[512];
	size_t resize_len;
	bool pending_size;
	uint32_t width, height;
};

static int slot_of(enum chan_role r)
{
	switch (r) {
	case ROLE_ERROR: return R_ERROR;
	case ROLE_STDIN: return R_STDIN;
	case ROLE_STDOUT: return R_STDOUT;
	case ROLE_STDERR: return R_STDERR;
	case ROLE_RESIZE: return R_RESIZE;
	default: return -1;
	}
}

static const char *req_of(const struct rc_session *s)
{
	return s->k->req->req_id;
}

static void close_backend(struct rc_session *s)
{
	if (s->in)
		bufferevent_free(s->in);
	if (s->out)
		bufferevent_free(s->out);
	if (s->err)
		bufferevent_free(s->err);
	s->in = s->out = s->err = NULL;
	if (s->ctl_ev)
		event_free(s->ctl_ev);
	s->ctl_ev = NULL;
	if (s->ctl >= 0)
		close(s->ctl);
	s->ctl = -1;
}

void rc_free(struct sconn *k)
{
	struct rc_session *s = k->rc;
	if (!s)
		return;
	if (s->opening)
		s->opening->s = NULL; /* the callback closes what it gets */
	close_backend(s);
	if (s->stdin_early)
		evbuffer_free(s->stdin_early);
	free(s);
	k->rc = NULL;
}

/* JSON string body (without quotes) of text into out. */
static void json_escape(const char *text, char *out, size_t outlen)
{
	size_t k = 0;
	for (const unsigned char *p = (const unsigned char *)text; *p && k + 7 < outlen; p++) {
		if (*p == '"' || *p == '\\') {
			out[k++] = '\\';
			out[k++] = (char)*p;
		} else if (*p < 0x20) {
			k += (size_t)snprintf(out + k, outlen - k, "\\u%04x", *p);
		} else {
			out[k++] = (char)*p;
		}
	}
	out[k] = '\0';
}

/* The session's result on the error stream, then every stream closed and
 * the connection finished. code < 0: failure with message (internal). */
static void finish(struct rc_session *s, bool failed, const char *message)
{
	if (s->done)
		return;
	s->done = true;
	struct sconn *k = s->k;
	char buf[4096], esc[900];
	bool v4 = k->version >= 4;
	buf[0] = '\0';
	if (failed) {
		json_escape(message, esc, sizeof(esc));
		if (v4)
			snprintf(buf, sizeof(buf),
				 "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"Internal error occurred: %s\","
				 "\"reason\":\"InternalError\",\"details\":{\"causes\":[{\"message\":\"%s\"}]},\"code\":500}",
				 esc, esc);
		else
			snprintf(buf, sizeof(buf), "Internal error occurred: %s", message);
		log_info(req_of(s), "stream session failed", "peer=%s error=\"%s\"", k->peer, message);
	} else if (k->req->kind == STREAM_EXEC && s->exit_code != 0) {
		if (v4)
			snprintf(buf, sizeof(buf),
				 "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated with non-zero "
				 "exit code: exit status %d\",\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":"
				 "[{\"reason\":\"ExitCode\",\"message\":\"%d\"}]}}",
				 s->exit_code, s->exit_code);
		else
			snprintf(buf, sizeof(buf), "command terminated with non-zero exit code: exit status %d",
				 s->exit_code);
	} else if (v4) {
		snprintf(buf, sizeof(buf), "{\"metadata\":{},\"status\":\"Success\"}");
	}
	if (!failed)
		log_info(req_of(s), "stream session finished", "peer=%s kind=%s exit_code=%d", k->peer,
			 k->req->kind == STREAM_EXEC ? "exec" : "attach", s->exit_code);
	if (*buf)
		chan_send(k, s->ch[R_ERROR], buf, strlen(buf));
	for (int i = 0; i < R_N; i++)
		chan_fin(k, s->ch[i]);
	close_backend(s);
	transport_close(k, WS_CLOSE_NORMAL, NULL);
	sconn_finish(k);
}

static void maybe_done(struct rc_session *s)
{
	if (s->done || !s->opened)
		return;
	bool outputs = s->out_eof && s->err_eof;
	if (s->k->req->kind == STREAM_EXEC) {
		if (outputs && s->exited)
			finish(s, false, NULL);
		else if (outputs && s->ctl_gone)
			finish(s, true, "error executing command in container: the session ended without an exit code");
		return;
	}
	/* Attach: until the container's output ends (it exited, or conmon
	 * dropped us); with no output asked, until stdin ends. */
	bool any_out = s->want[R_STDOUT] || s->want[R_STDERR];
	if ((any_out && outputs) || (!any_out && (s->in_closed || s->ctl_gone)))
		finish(s, false, NULL);
}

/* ---------------------------------------------------------------- backend side */

static void out_read(struct bufferevent *bev, void *arg)
{
	struct rc_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct chan *ch = s->ch[bev == s->out ? R_STDOUT : R_STDERR];
	sconn_touch(s->k);
	while (evbuffer_get_length(in)) {
		struct evbuffer_iovec v;
		evbuffer_peek(in, -1, NULL, &v, 1);
		chan_send(s->k, ch, v.iov_base, v.iov_len);
		evbuffer_drain(in, v.iov_len);
	}
	if (sconn_pending(s->k) > STREAM_HIGH_WATER) {
		if (s->out)
			bufferevent_disable(s->out, EV_READ);
		if (s->err)
			bufferevent_disable(s->err, EV_READ);
	}
}

static void out_event(struct bufferevent *bev, short what, void *arg)
{
	struct rc_session *s = arg;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* A pty master reads EIO once the terminal's last holder closed it: EOF. */
	out_read(bev, s);
	if (bev == s->out) {
		s->out_eof = true;
		chan_fin(s->k, s->ch[R_STDOUT]);
		bufferevent_free(s->out);
		s->out = NULL;
	} else {
		s->err_eof = true;
		chan_fin(s->k, s->ch[R_STDERR]);
		bufferevent_free(s->err);
		s->err = NULL;
	}
	maybe_done(s);
}

void rc_drained(struct sconn *k)
{
	struct rc_session *s = k->rc;
	if (!s)
		return;
	if (s->out)
		bufferevent_enable(s->out, EV_READ);
	if (s->err)
		bufferevent_enable(s->err, EV_READ);
}

static void in_close(struct rc_session *s)
{
	if (s->in)
		bufferevent_free(s->in); /* EOF on the process's stdin */
	s->in = NULL;
	s->in_closed = true;
	maybe_done(s);
}

static void in_written(struct bufferevent *bev, void *arg)
{
	struct rc_session *s = arg;
	sconn_pause_input(s->k, false);
	if (s->in_close_pending && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		in_close(s);
}

static void in_event(struct bufferevent *bev _unused_, short what, void *arg)
{
	struct rc_session *s = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* The process closed its stdin (EPIPE): drop what the client sends. */
		bufferevent_free(s->in);
		s->in = NULL;
		sconn_pause_input(s->k, false);
	}
}

static void stdin_write(struct rc_session *s, const uint8_t *data, size_t len)
{
	if (s->in_closed || s->in_close_pending)
		return;
	if (!s->opened) {
		evbuffer_add(s->stdin_early, data, len);
		if (evbuffer_get_length(s->stdin_early) > STREAM_HIGH_WATER)
			sconn_pause_input(s->k, true);
		return;
	}
	if (!s->in)
		return;
	bufferevent_write(s->in, data, len);
	if (evbuffer_get_length(bufferevent_get_output(s->in)) > STREAM_HIGH_WATER)
		sconn_pause_input(s->k, true);
}

static void send_size(struct rc_session *s)
{
	if (!s->pending_size || s->ctl < 0)
		return;
	struct stream_ctl rec = {.type = STREAM_CTL_RESIZE, .a = s->width, .b = s->height};
	if (send(s->ctl, &rec, sizeof(rec), MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(rec))
		s->pending_size = false;
}

static void ctl_read(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct rc_session *s = arg;
	struct stream_ctl rec;
	ssize_t n = recv(s->ctl, &rec, sizeof(rec), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == (ssize_t)sizeof(rec)) {
		if (rec.type == STREAM_CTL_EXIT) {
			s->exited = true;
			s->exit_code = (int32_t)rec.a;
			log_debug(req_of(s), "exec exited", "exit_code=%d", s->exit_code);
		}
		maybe_done(s);
		return;
	}
	if (n > 0) /* a record of another size: ignore it */
		return;
	/* conmon closed the session's control socket */
	event_del(s->ctl_ev);
	s->ctl_gone = true;
	maybe_done(s);
}

static struct bufferevent *bev_for(struct rc_session *s, int fd, short enable)
{
	if (fd < 0)
		return NULL;
	struct bufferevent *b = bufferevent_socket_new(s->k->srv->c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!b) {
		close(fd);
		return NULL;
	}
	bufferevent_enable(b, enable);
	if (!(enable & EV_READ))
		bufferevent_disable(b, EV_READ);
	return b;
}

static void opened(void *ud, int status, const char *message, struct stream_fds *fds)
{
	struct rc_open_ud *o = ud;
	struct rc_session *s = o->s;
	free(o);
	if (!s) { /* the client went away meanwhile */
		int all[] = {fds->in, fds->out, fds->err, fds->ctl};
		for (size_t i = 0; i < 4; i++)
			if (all[i] >= 0)
				close(all[i]);
		return;
	}
	s->opening = NULL;
	if (status != STATUS_OK) {
		s->opened = true;
		char m[600];
		snprintf(m, sizeof(m), "error %s container: %s",
			 s->k->req->kind == STREAM_EXEC ? "executing command in" : "attaching to",
			 message ? message : "failed");
		finish(s, true, m);
		return;
	}
	s->opened = true;
	s->ctl = fds->ctl;
	s->in = bev_for(s, fds->in, EV_WRITE);
	s->out = bev_for(s, fds->out, EV_READ);
	s->err = bev_for(s, fds->err, EV_READ);
	if ((fds->in >= 0 && !s->in) || (fds->out >= 0 && !s->out) || (fds->err >= 0 && !s->err)) {
		finish(s, true, "out of memory");
		return;
	}
	if (s->in) {
		bufferevent_setcb(s->in, NULL, in_written, in_event, s);
		bufferevent_setwatermark(s->in, EV_WRITE, STREAM_HIGH_WATER / 4, 0);
	}
	if (s->out)
		bufferevent_setcb(s->out, out_read, NULL, out_event, s);
	else
		s->out_eof = true;
	if (s->err)
		bufferevent_setcb(s->err, out_read, NULL, out_event, s);
	else
		s->err_eof = true;
	if (s->ctl >= 0) {
		s->ctl_ev = event_new(s->k->srv->c->base, s->ctl, EV_READ | EV_PERSIST, ctl_read, s);
		if (!s->ctl_ev || event_add(s->ctl_ev, NULL) < 0) {
			finish(s, true, "out of memory");
			return;
		}
	} else {
		s->ctl_gone = true;
	}
	log_debug(req_of(s), "stream backend open", "in=%d out=%d err=%d ctl=%d", fds->in, fds->out, fds->err,
		  fds->ctl);
	send_size(s);
	size_t early = evbuffer_get_length(s->stdin_early);
	if (early) {
		if (s->in)
			bufferevent_write_buffer(s->in, s->stdin_early);
		evbuffer_drain(s->stdin_early, evbuffer_get_length(s->stdin_early));
	}
	if (s->in_close_pending) {
		if (!s->in || evbuffer_get_length(bufferevent_get_output(s->in)) == 0)
			in_close(s);
	} else {
		sconn_pause_input(s->k, false);
	}
	if (s->in_closed && !s->in)
		maybe_done(s);
	else
		maybe_done(s);
}

static void open_backend(struct rc_session *s)
{
	struct sconn *k = s->k;
	struct stream_request *r = k->req;
	k->deadline_ms = 0;
	struct rc_open_ud *o = calloc(1, sizeof(*o));
	if (!o) {
		s->opened = true;
		finish(s, true, "out of memory");
		return;
	}
	o->s = s;
	s->opening = o;
	int rr;
	if (r->kind == STREAM_EXEC) {
		struct stream_exec_params p = {
			.request_id = r->req_id, .container_id = r->id, .cmd = r->cmd, .n_cmd = r->n_cmd,
			.tty = r->tty, .in = r->in, .out = r->out, .err = r->err,
		};
		rr = stream_backend_exec(k->srv->c, &p, opened, o);
	} else {
		struct stream_attach_params p = {
			.request_id = r->req_id, .container_id = r->id, .in = r->in, .out = r->out, .err = r->err,
		};
		rr = stream_backend_attach(k->srv->c, &p, opened, o);
	}
	if (rr < 0) {
		free(o);
		s->opening = NULL;
		s->opened = true;
		finish(s, true, strerror(-rr));
	}
}

/* ---------------------------------------------------------------- client side */

int rc_open(struct sconn *k)
{
	struct rc_session *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->k = k;
	s->ctl = -1;
	s->stdin_early = evbuffer_new();
	if (!s->stdin_early) {
		free(s);
		return -ENOMEM;
	}
	k->rc = s;
	struct stream_request *r = k->req;
	s->want[R_ERROR] = true;
	s->want[R_STDIN] = r->in;
	s->want[R_STDOUT] = r->out;
	s->want[R_STDERR] = r->err && !r->tty;
	s->want[R_RESIZE] = r->tty && (k->t != T_SPDY || k->version >= 3);
	if (k->t == T_WS) {
		static const enum chan_role roles[R_N] = {ROLE_ERROR, ROLE_STDIN, ROLE_STDOUT, ROLE_STDERR, ROLE_RESIZE};
		static const uint32_t ids[R_N] = {3, 0, 1, 2, 4};
		for (int i = 0; i < R_N; i++)
			if (s->want[i] && !(s->ch[i] = chan_new(k, ids[i], roles[i])))
				return -ENOMEM;
		/* An empty message on the lowest writable channel tells the client
		 * the session is up, as kubelet does. */
		chan_send(k, s->ch[R_STDOUT] ? s->ch[R_STDOUT] : s->ch[R_STDERR] ? s->ch[R_STDERR] : s->ch[R_ERROR],
			  NULL, 0);
		open_backend(s);
		return 0;
	}
	/* SPDY: the client creates the streams; wait for them (bounded). */
	k->deadline_ms = stream_now_ms() + STREAM_CREATION_TIMEOUT_MS;
	return 0;
}

void rc_stream(struct sconn *k, struct chan *ch)
{
	struct rc_session *s = k->rc;
	int slot = slot_of(ch->role);
	if (!s || slot < 0 || s->ch[slot]) {
		log_warn(k->req->req_id, "unexpected stream refused", "peer=%s id=%u", k->peer, ch->id);
		chan_reset(k, ch);
		return;
	}
	s->ch[slot] = ch;
	if (s->opening || s->opened)
		return;
	for (int i = 0; i < R_N; i++)
		if (s->want[i] && !s->ch[i])
			return;
	open_backend(s);
}

void rc_timeout(struct sconn *k)
{
	struct rc_session *s = k->rc;
	if (!s || s->opened || s->opening)
		return;
	log_info(k->req->req_id, "stream session: streams not created in time", "peer=%s", k->peer);
	s->opened = true;
	finish(s, true, "timed out waiting for client to create streams");
}

static void resize_data(struct rc_session *s, const uint8_t *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s->resize_len == sizeof(s->resize) - 1) {
			s->resize_len = 0; /* garbage: start over */
			continue;
		}
		s->resize[s->resize_len++] = (char)data[i];
		if (data[i] != '}')
			continue;
		s->resize[s->resize_len] = '\0';
		json_object *o = json_tokener_parse(s->resize);
		s->resize_len = 0;
		json_object *w, *h;
		if (o && json_object_object_get_ex(o, "Width", &w) && json_object_object_get_ex(o, "Height", &h)) {
			int64_t wv = json_object_get_int64(w), hv = json_object_get_int64(h);
			if (wv >= 0 && wv <= 65535 && hv >= 0 && hv <= 65535) {
				s->width = (uint32_t)wv;
				s->height = (uint32_t)hv;
				s->pending_size = true;
				send_size(s);
			}
		}
		json_object_put(o);
	}
}

void rc_data(struct sconn *k, struct chan *ch, const uint8_t *data, size_t len)
{
	struct rc_session *s = k->rc;
	if (!s || s->done)
		return;
	if (ch == s->ch[R_STDIN])
		stdin_write(s, data, len);
	else if (ch == s->ch[R_RESIZE])
		resize_data(s, data, len);
}

void rc_fin(struct sconn *k, struct chan *ch)
{
	struct rc_session *s = k->rc;
	if (!s || s->done || ch != s->ch[R_STDIN] || s->in_closed || s->in_close_pending)
		return;
	s->in_close_pending = true;
	if (s->opened && (!s->in || evbuffer_get_length(bufferevent_get_output(s->in)) == 0))
		in_close(s);
}
