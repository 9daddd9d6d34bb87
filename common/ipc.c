/* criod's internal RPC over unix stream sockets; see ipc.h. */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal/envelope.pb-c.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "status.h"
#include "util.h"

#define READ_CHUNK ((size_t)IPC_READ_BUFFER)
#define MAX_REQUEST_ID 64
/* An oversized frame is answered from its first bytes: the envelope's
 * call_id and method (fields 1 and 2, which encoders write first). */
#define FRAME_PEEK 32

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#endif

/* ------------------------------------------------------------------------ */
/* Refusals are logged at most IPC_LOG_REFUSALS_PER_SEC times a second per   */
/* reason, so a hostile peer cannot flood a root daemon's log.               */

enum refusal {
	REFUSE_PEER,    /* unauthorized peer, no credentials */
	REFUSE_CONNS,   /* over the per-uid connection cap */
	REFUSE_FRAME,   /* oversized or malformed frame */
	REFUSE_FDS,     /* fds beyond what frames declare */
	REFUSE_REQUEST, /* unknown method, body over its cap, undecodable */
	REFUSE_ACCEPT,  /* accept failed (back-off) */
	REFUSE_TIMEOUT, /* a frame not completed in time */
	REFUSE_BUFFER,  /* the server's buffer budget is spent */
	REFUSE_N,
};

static const char *const refusal_names[REFUSE_N] = {
	[REFUSE_PEER] = "peer",       [REFUSE_CONNS] = "connections", [REFUSE_FRAME] = "frame",
	[REFUSE_FDS] = "fds",         [REFUSE_REQUEST] = "request",    [REFUSE_ACCEPT] = "accept",
	[REFUSE_TIMEOUT] = "timeout", [REFUSE_BUFFER] = "buffer",
};

struct ratelimit {
	int64_t start_ns; /* this window's start; 0: none yet */
	unsigned n;       /* lines logged in it */
	unsigned long suppressed;
};

/* Whether a line for this reason may be logged now. The first line of a new
 * window is preceded by one saying how many the last window left out. */
static bool ratelimit_pass(struct ratelimit *rl, enum refusal why)
{
	struct ratelimit *r = &rl[why];
	int64_t now = now_monotonic_ns();
	if (r->start_ns == 0 || now - r->start_ns >= 1000000000LL) {
		if (r->suppressed > 0)
			log_warn(NULL, "ipc refusals not logged", "reason=%s suppressed=%lu", refusal_names[why],
				 r->suppressed);
		r->start_ns = now;
		r->n = 0;
		r->suppressed = 0;
	}
	if (r->n < IPC_LOG_REFUSALS_PER_SEC) {
		r->n++;
		return true;
	}
	r->suppressed++;
	return false;
}

/* Client connections have no server: they share one set of windows. */
static struct ratelimit client_ratelimit[REFUSE_N];

#define log_refusal(rl, why, ...)                         \
	do {                                              \
		if (ratelimit_pass((rl), (why)))          \
			log_warn(__VA_ARGS__);            \
	} while (0)
#define log_refusal_errno(rl, why, r, ...)                \
	do {                                              \
		if (ratelimit_pass((rl), (why)))          \
			log_warn_errno((r), __VA_ARGS__); \
	} while (0)

/* ------------------------------------------------------------------------ */
/* What protobuf-c would allocate to unpack a message, before it does.      */

#define MALLOC_OVERHEAD 32 /* glibc: a chunk's header and rounding, at most */
#define SCAN_COST 64       /* protobuf-c's ScannedMember (32 bytes), slabs doubling */
#define MAX_NESTING 32

static bool read_varint(const uint8_t *p, size_t len, size_t *pos, unsigned max_bytes, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < max_bytes && *pos < len; i++) {
		uint8_t b = p[(*pos)++];
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*out = v;
			return true;
		}
	}
	return false;
}

static bool packable(ProtobufCType t)
{
	return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES && t != PROTOBUF_C_TYPE_MESSAGE;
}

/* An upper bound of the heap protobuf_c_message_unpack(desc, len, data)
 * takes: what it keeps (*kept: messages, arrays, strings, unknown fields)
 * and the scratch it holds at most at once (*scratch: its scan buffers, one
 * per message being unpacked). -EBADMSG for bytes protobuf-c would not
 * decode as far as framing goes (a type mismatch is left to protobuf-c),
 * -E2BIG for nesting deeper than MAX_NESTING. */
static int decode_cost(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len, unsigned depth,
		       size_t *kept, size_t *scratch)
{
	if (depth > MAX_NESTING)
		return -E2BIG;
	size_t k = desc->sizeof_message + MALLOC_OVERHEAD;
	for (unsigned i = 0; i < desc->n_fields; i++)
		if (desc->fields[i].label == PROTOBUF_C_LABEL_REPEATED)
			k += MALLOC_OVERHEAD; /* its array */
	size_t sc = 0, child_sc = 0;
	size_t pos = 0;
	while (pos < len) {
		uint64_t tag;
		size_t start = pos;
		if (!read_varint(data, len, &pos, 5, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
			return -EBADMSG;
		unsigned wt = tag & 7;
		size_t payload = pos, plen = 0;
		uint64_t v;
		switch (wt) {
		case PROTOBUF_C_WIRE_TYPE_VARINT:
			if (!read_varint(data, len, &pos, 10, &v))
				return -EBADMSG;
			break;
		case PROTOBUF_C_WIRE_TYPE_64BIT:
		case PROTOBUF_C_WIRE_TYPE_32BIT: {
			size_t n = wt == PROTOBUF_C_WIRE_TYPE_64BIT ? 8 : 4;
			if (len - pos < n)
				return -EBADMSG;
			pos += n;
			break;
		}
		case PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED:
			if (!read_varint(data, len, &pos, 5, &v) || v > len - pos)
				return -EBADMSG;
			payload = pos;
			plen = (size_t)v;
			pos += plen;
			break;
		default:
			return -EBADMSG;
		}
		sc += SCAN_COST;
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3));
		if (!f) {
			/* Kept as an unknown field: its bytes and its entry. */
			k += sizeof(ProtobufCMessageUnknownField) + (pos - start) + MALLOC_OVERHEAD;
			continue;
		}
		bool repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
		if (repeated && wt == PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED && packable(f->type)) {
			k += plen * 8; /* at most one element per byte, 8 bytes each */
			continue;
		}
		if (repeated)
			k += f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData) : sizeof(void *);
		if (wt != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
			continue;
		if (f->type == PROTOBUF_C_TYPE_STRING) {
			k += plen + 1 + MALLOC_OVERHEAD;
		} else if (f->type == PROTOBUF_C_TYPE_BYTES) {
			k += plen + MALLOC_OVERHEAD;
		} else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			size_t ck, cs;
			int r = decode_cost(f->descriptor, data + payload, plen, depth + 1, &ck, &cs);
			if (r < 0)
				return r;
			/* A singular message seen twice is merged into a copy. */
			k += repeated ? ck : 2 * ck;
			child_sc = MAX(child_sc, cs);
		}
	}
	*kept = k;
	*scratch = sc + child_sc;
	return 0;
}

/* decode_cost's total, or a negative errno. */
ssize_t ipc_decoded_size(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len)
{
	size_t k, sc;
	int r = decode_cost(desc, data, len, 0, &k, &sc);
	if (r < 0)
		return r;
	return (ssize_t)MIN(k + sc, (size_t)SSIZE_MAX);
}

/* The most an envelope of len bytes may take decoded: its body once, and
 * the few fields around it. */
#define ENVELOPE_DECODE_BUDGET(len) ((size_t)(len) + 16384)

/* ------------------------------------------------------------------------ */
/* One connection: framing, fd passing, buffered non-blocking output.        */

struct out_frame {
	struct out_frame *next;
	uint8_t *data;
	size_t len, off;
	int fds[IPC_MAX_FDS];
	size_t nfds;
};

struct conn;
typedef void (*conn_frame_fn)(struct conn *c, Criod__Internal__Envelope *env, int *fds, size_t nfds);
typedef void (*conn_close_fn)(struct conn *c);
/* A frame of len bytes over the connection's max_frame (busy: one the
 * buffer budget cannot take), from its first bytes: answer it; the rest of
 * it is discarded as it arrives. */
typedef void (*conn_oversize_fn)(struct conn *c, uint64_t call_id, uint32_t method, size_t len, bool busy);

/* What a server's connections may buffer beyond their own READ_CHUNK. */
struct conn_budget {
	size_t used, limit;
};

struct conn {
	struct event_base *base;
	int fd;
	struct event *rev, *wev;
	uint8_t *in;
	size_t in_len, in_cap;
	size_t max_frame; /* the largest frame buffered */
	size_t skip;      /* bytes of an oversized frame still to discard */
	/* fds received and not yet handed to a frame: only those sent with the
	 * first byte of a frame that has not been dispatched yet. */
	int fdq[IPC_MAX_FDS];
	size_t nfdq;
	struct ratelimit *rl; /* the windows of its refusal logs */
	conn_oversize_fn on_oversize; /* NULL: an oversized frame closes */
	struct conn_budget *budget;   /* NULL: unbounded (a client's) */
	size_t charged;               /* this connection's share of budget->used */
	struct event *frame_ev;       /* NULL: frames have no deadline (a client's) */
	uint64_t frame_timeout_ms;
	int64_t frame_start_ns;       /* when the pending frame began; 0: between frames */
	struct out_frame *out_head, *out_tail;
	uid_t uid;
	pid_t pid;
	bool closed;
	unsigned refs;
	conn_frame_fn on_frame;
	conn_close_fn on_close;
	void *owner;
	struct conn *next; /* server's connection list */
};

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* One sendmsg of data, with fds attached (SCM_RIGHTS) when nfds > 0; the
 * caller keeps its fds. Returns sendmsg's result (errno set on -1). */
static ssize_t send_fds(int fd, const void *data, size_t len, const int *fds, size_t nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	return sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
}

/* One recvmsg into buf, appending passed fds to fds[*nfds..max_fds);
 * *bad is set when fds were cut short or beyond max_fds (those are
 * closed). Returns recvmsg's result (errno set on -1). */
static ssize_t recv_fds(int fd, void *buf, size_t len, int flags, int *fds, size_t *nfds, size_t max_fds,
			bool *bad)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	*bad = false;
	ssize_t n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	*bad = (mh.msg_flags & MSG_CTRUNC) != 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const int *in = (const int *)CMSG_DATA(cm);
		for (size_t i = 0; i < k; i++) {
			if (*nfds < max_fds)
				fds[(*nfds)++] = in[i];
			else {
				close(in[i]);
				*bad = true;
			}
		}
	}
	return n;
}

static void conn_unref(struct conn *c)
{
	if (--c->refs > 0)
		return;
	struct out_frame *f = c->out_head;
	while (f) {
		struct out_frame *n = f->next;
		close_fds(f->fds, f->nfds);
		free(f->data);
		free(f);
		f = n;
	}
	close_fds(c->fdq, c->nfdq);
	free(c->in);
	free(c);
}

/* Tear the connection down once; the owner is told through on_close. */
static void conn_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	event_free(c->rev);
	event_free(c->wev);
	c->rev = c->wev = NULL;
	if (c->frame_ev)
		event_free(c->frame_ev);
	c->frame_ev = NULL;
	if (c->budget)
		c->budget->used -= c->charged;
	c->budget = NULL;
	c->charged = 0;
	close(c->fd);
	c->fd = -1;
	if (c->on_close)
		c->on_close(c);
	conn_unref(c);
}

static void conn_flush(struct conn *c)
{
	while (c->out_head && !c->closed) {
		struct out_frame *f = c->out_head;
		ssize_t n = send_fds(c->fd, f->data + f->off, f->len - f->off, f->fds, f->off == 0 ? f->nfds : 0,
				     MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				event_add(c->wev, NULL);
				return;
			}
			log_warn_errno(errno, NULL, "ipc write failed", "peer_uid=%u peer_pid=%d", (unsigned)c->uid,
				       (int)c->pid);
			conn_close(c);
			return;
		}
		if (f->off == 0 && f->nfds > 0) {
			/* The kernel holds its own references now. */
			close_fds(f->fds, f->nfds);
			f->nfds = 0;
		}
		f->off += (size_t)n;
		if (f->off == f->len) {
			c->out_head = f->next;
			if (!c->out_head)
				c->out_tail = NULL;
			free(f->data);
			free(f);
		}
	}
}

static void conn_write_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct conn *c = arg;
	c->refs++;
	conn_flush(c);
	conn_unref(c);
}

int ipc_frame_encode(const void *envelope, uint8_t **out, size_t *out_len)
{
	const Criod__Internal__Envelope *env = envelope;
	size_t n = criod__internal__envelope__get_packed_size(env);
	if (n > IPC_MAX_FRAME)
		return -EMSGSIZE;
	uint8_t *buf = malloc(n + 4);
	if (!buf)
		return -ENOMEM;
	buf[0] = n & 0xff;
	buf[1] = (n >> 8) & 0xff;
	buf[2] = (n >> 16) & 0xff;
	buf[3] = (n >> 24) & 0xff;
	criod__internal__envelope__pack(env, buf + 4);
	*out = buf;
	*out_len = n + 4;
	return 0;
}

/* Queue an envelope (and duplicates of fds) for sending. */
static int conn_send(struct conn *c, Criod__Internal__Envelope *env, const int *fds, size_t nfds)
{
	if (c->closed)
		return -ENOTCONN;
	if (nfds > IPC_MAX_FDS)
		return -E2BIG;
	_cleanup_free_ struct out_frame *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	env->nfds = (uint32_t)nfds;
	int r = ipc_frame_encode(env, &f->data, &f->len);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nfds; i++) {
		f->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (f->fds[i] < 0) {
			r = -errno;
			close_fds(f->fds, i);
			free(f->data);
			return r;
		}
		f->nfds++;
	}
	struct out_frame *fr = TAKE_PTR(f);
	if (c->out_tail)
		c->out_tail->next = fr;
	else
		c->out_head = fr;
	c->out_tail = fr;
	conn_flush(c);
	return 0;
}

/* The call_id and method an envelope starts with (fields 1 and 2, in the
 * order encoders write them); false when it does not start so. */
static bool peek_call(const uint8_t *p, size_t len, uint64_t *call_id, uint32_t *method)
{
	size_t pos = 0;
	*call_id = 0;
	*method = 0;
	while (pos < len) {
		uint64_t tag, v;
		if (!read_varint(p, len, &pos, 5, &tag) || (tag & 7) != PROTOBUF_C_WIRE_TYPE_VARINT ||
		    ((tag >> 3) != 1 && (tag >> 3) != 2))
			break;
		if (!read_varint(p, len, &pos, 10, &v))
			break;
		if ((tag >> 3) == 1)
			*call_id = v;
		else
			*method = (uint32_t)v;
	}
	return *method != 0;
}

/* fds are taken only with the frame they came with: queued fds need a
 * frame that has begun (bytes at in[pos..]) and is not dispatched yet. */
static bool conn_fds_orphaned(const struct conn *c, size_t pos)
{
	return c->nfdq > 0 && (pos == c->in_len || c->skip > 0);
}

static void conn_refuse_fds(struct conn *c, const char *why)
{
	log_refusal(c->rl, REFUSE_FDS, NULL, "ipc peer sent file descriptors no frame declares, closing",
		    "peer_uid=%u peer_pid=%d fds=%zu reason=\"%s\"", (unsigned)c->uid, (int)c->pid, c->nfdq, why);
	conn_close(c);
}

/* Resize the input buffer to ncap (at least in_len). Growth beyond
 * READ_CHUNK is charged to the connection's budget: -ENOBUFS when it
 * cannot take it, -ENOMEM when memory is out. */
static int conn_resize(struct conn *c, size_t ncap)
{
	if (ncap == c->in_cap)
		return 0;
	size_t charge = ncap > READ_CHUNK ? ncap - READ_CHUNK : 0;
	if (c->budget && charge > c->charged && c->budget->used - c->charged + charge > c->budget->limit)
		return -ENOBUFS;
	uint8_t *n = realloc(c->in, ncap);
	if (!n)
		return ncap < c->in_cap ? 0 : -ENOMEM; /* a shrink that failed keeps the larger one */
	c->in = n;
	c->in_cap = ncap;
	if (c->budget) {
		c->budget->used = c->budget->used - c->charged + charge;
		c->charged = charge;
	}
	return 0;
}

/* Drop the first pos bytes of the input buffer. */
static void conn_consume(struct conn *c, size_t pos)
{
	if (pos == 0)
		return;
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
}

static uint32_t frame_len_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Parse every complete frame in the input buffer; make room for the whole
 * of the partial one left, and keep no more than it needs. Returns whether
 * a frame ended (was dispatched, refused or discarded to its end). */
static bool conn_dispatch(struct conn *c)
{
	size_t pos = 0;
	bool ended = false;
	while (!c->closed) {
		if (c->skip > 0) {
			size_t n = MIN(c->skip, c->in_len - pos);
			pos += n;
			c->skip -= n;
			if (c->skip > 0)
				break;
			ended = true;
			continue;
		}
		if (c->in_len - pos < 4)
			break;
		uint32_t len = frame_len_at(c->in + pos);
		bool busy = false;
		if (len <= c->max_frame && c->in_len - pos - 4 < len) {
			/* Not all here yet: the buffer is made to hold all of it
			 * now, from the budget, or the frame is refused. */
			conn_consume(c, pos);
			pos = 0;
			int r = conn_resize(c, MAX(READ_CHUNK, 4 + (size_t)len));
			if (r == -ENOMEM) {
				log_error_errno(ENOMEM, NULL, "ipc read buffer", "frame_bytes=%u", len);
				conn_close(c);
				return ended;
			}
			if (r == 0)
				break;
			busy = true;
		}
		const uint8_t *p = c->in + pos;
		if (len > c->max_frame || busy) {
			size_t have = c->in_len - pos - 4;
			uint64_t call_id;
			uint32_t method;
			if (len <= IPC_MAX_FRAME && c->on_oversize && have < MIN(len, FRAME_PEEK))
				break; /* not enough of it to answer yet */
			if (len > IPC_MAX_FRAME || !c->on_oversize ||
			    !peek_call(p + 4, MIN(have, FRAME_PEEK), &call_id, &method)) {
				if (busy)
					log_refusal(c->rl, REFUSE_BUFFER, NULL,
						    "ipc frame over the server's buffer limit and not answerable, closing",
						    "peer_uid=%u peer_pid=%d len=%u buffered=%zu limit=%zu",
						    (unsigned)c->uid, (int)c->pid, len, c->budget->used, c->budget->limit);
				else
					log_refusal(c->rl, REFUSE_FRAME, NULL, "ipc frame too large, closing",
						    "peer_uid=%u peer_pid=%d len=%u limit=%zu", (unsigned)c->uid,
						    (int)c->pid, len, c->max_frame);
				conn_close(c);
				return ended;
			}
			/* What came with its first byte goes with it. */
			close_fds(c->fdq, c->nfdq);
			c->nfdq = 0;
			pos += 4;
			c->skip = len;
			c->on_oversize(c, call_id, method, len, busy);
			continue;
		}
		ssize_t cost = ipc_decoded_size(&criod__internal__envelope__descriptor, p + 4, len);
		Criod__Internal__Envelope *env = NULL;
		if (cost >= 0 && (size_t)cost <= ENVELOPE_DECODE_BUDGET(len))
			env = criod__internal__envelope__unpack(NULL, len, p + 4);
		pos += 4 + (size_t)len;
		ended = true;
		if (!env || env->nfds > IPC_MAX_FDS || env->nfds > c->nfdq) {
			log_refusal(c->rl, REFUSE_FRAME, NULL, "ipc malformed frame, closing",
				    "peer_uid=%u peer_pid=%d len=%u decoded=%zd nfds=%u queued_fds=%zu",
				    (unsigned)c->uid, (int)c->pid, len, cost, env ? env->nfds : 0, c->nfdq);
			if (env)
				criod__internal__envelope__free_unpacked(env, NULL);
			conn_close(c);
			return ended;
		}
		int fds[IPC_MAX_FDS];
		size_t nfds = env->nfds;
		memcpy(fds, c->fdq, nfds * sizeof(int));
		memmove(c->fdq, c->fdq + nfds, (c->nfdq - nfds) * sizeof(int));
		c->nfdq -= nfds;
		if (conn_fds_orphaned(c, pos)) {
			close_fds(fds, nfds);
			criod__internal__envelope__free_unpacked(env, NULL);
			conn_refuse_fds(c, "more than the frame declares");
			return ended;
		}
		c->on_frame(c, env, fds, nfds);
	}
	if (c->closed)
		return ended;
	if (conn_fds_orphaned(c, pos)) {
		conn_refuse_fds(c, "sent with no frame");
		return ended;
	}
	conn_consume(c, pos);
	/* Let a large frame's buffer go once it has been handled. */
	size_t need = READ_CHUNK;
	if (c->skip == 0 && c->in_len >= 4 && frame_len_at(c->in) <= c->max_frame)
		need = MAX(need, 4 + (size_t)frame_len_at(c->in));
	if (c->in_cap > need)
		(void)conn_resize(c, need);
	return ended;
}

/* A frame's deadline runs from its first byte to its last: set when one
 * begins, cleared between frames. */
static void conn_track_frame(struct conn *c, bool ended)
{
	if (!c->frame_ev || c->closed)
		return;
	if (c->in_len == 0 && c->skip == 0) {
		if (c->frame_start_ns) {
			event_del(c->frame_ev);
			c->frame_start_ns = 0;
		}
		return;
	}
	if (c->frame_start_ns && !ended)
		return;
	c->frame_start_ns = now_monotonic_ns();
	struct timeval tv = {.tv_sec = (time_t)(c->frame_timeout_ms / 1000),
			     .tv_usec = (suseconds_t)(c->frame_timeout_ms % 1000) * 1000};
	evtimer_add(c->frame_ev, &tv);
}

/* Read what the socket holds (up to 16 reads) and dispatch it. */
static void conn_read(struct conn *c)
{
	for (int rounds = 0; rounds < 16 && !c->closed; rounds++) {
		if (c->in_cap < READ_CHUNK && conn_resize(c, READ_CHUNK) < 0) {
			log_error_errno(ENOMEM, NULL, "ipc read buffer");
			conn_close(c);
			break;
		}
		size_t room = c->in_cap - c->in_len;
		if (room == 0) {
			/* Not possible: a partial frame always has room to complete. */
			conn_close(c);
			break;
		}
		bool bad;
		ssize_t n = recv_fds(c->fd, c->in + c->in_len, room, MSG_DONTWAIT, c->fdq, &c->nfdq, IPC_MAX_FDS, &bad);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0 || bad) {
			int err = errno;
			if (n < 0 && err != ECONNRESET)
				log_refusal_errno(c->rl, REFUSE_FRAME, err, NULL, "ipc read failed", "peer_uid=%u",
						  (unsigned)c->uid);
			else if (n >= 0)
				log_refusal(c->rl, REFUSE_FDS, NULL, "ipc peer sent too many file descriptors, closing",
					    "peer_uid=%u peer_pid=%d limit=%u", (unsigned)c->uid, (int)c->pid,
					    IPC_MAX_FDS);
			conn_close(c);
			break;
		}
		if (n == 0) {
			conn_close(c);
			break;
		}
		c->in_len += (size_t)n;
		conn_track_frame(c, conn_dispatch(c));
		if ((size_t)n < room)
			break;
	}
}

static void conn_read_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct conn *c = arg;
	c->refs++;
	conn_read(c);
	conn_unref(c);
}

/* How late a deadline may fire before the loop counts as having been busy. */
#define FRAME_LATE_NS 1000000000LL

/* A frame's deadline: what arrived meanwhile is read first, then a frame
 * still not complete closes the connection. If the timer fires well after
 * the deadline, this loop was busy (a slow handler), not the peer: the
 * peer may have been waiting for us to read, so the frame gets a new bound
 * from now. */
static void conn_frame_timeout_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct conn *c = arg;
	c->refs++;
	int64_t late_ns = now_monotonic_ns() - (c->frame_start_ns + (int64_t)c->frame_timeout_ms * 1000000);
	conn_read(c);
	if (!c->closed && c->frame_start_ns && late_ns > FRAME_LATE_NS) {
		log_debug(NULL, "ipc frame deadline passed while the loop was busy, extended",
			  "peer_uid=%u peer_pid=%d late_ms=%lld", (unsigned)c->uid, (int)c->pid,
			  (long long)(late_ns / 1000000));
		c->frame_start_ns = 0;
		conn_track_frame(c, true);
	} else if (!c->closed && c->frame_start_ns) {
		int64_t left_ns = c->frame_start_ns + (int64_t)c->frame_timeout_ms * 1000000 - now_monotonic_ns();
		if (left_ns <= 0) {
			uint32_t len = c->skip == 0 && c->in_len >= 4 ? frame_len_at(c->in) : 0;
			log_refusal(c->rl, REFUSE_TIMEOUT, NULL, "ipc frame not completed in time, closing",
				    "peer_uid=%u peer_pid=%d bytes=%zu frame_bytes=%u discarding=%zu timeout_ms=%llu",
				    (unsigned)c->uid, (int)c->pid, c->in_len, len, c->skip,
				    (unsigned long long)c->frame_timeout_ms);
			conn_close(c);
		} else {
			struct timeval tv = {.tv_sec = (time_t)(left_ns / 1000000000),
					     .tv_usec = (suseconds_t)(left_ns % 1000000000) / 1000 + 1};
			evtimer_add(c->frame_ev, &tv);
		}
	}
	conn_unref(c);
}

static struct conn *conn_new(struct event_base *base, int fd, size_t max_frame, struct ratelimit *rl,
			     conn_frame_fn on_frame, conn_close_fn on_close, void *owner)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->fd = fd;
	c->max_frame = max_frame;
	c->rl = rl;
	c->refs = 1;
	c->on_frame = on_frame;
	c->on_close = on_close;
	c->owner = owner;
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0) {
		c->uid = cred.uid;
		c->pid = cred.pid;
	} else {
		c->uid = (uid_t)-1;
		c->pid = -1;
	}
	c->rev = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
	c->wev = event_new(base, fd, EV_WRITE, conn_write_cb, c);
	if (!c->rev || !c->wev || event_add(c->rev, NULL) < 0) {
		if (c->rev)
			event_free(c->rev);
		if (c->wev)
			event_free(c->wev);
		free(c);
		return NULL;
	}
	return c;
}

/* Keep request ids printable and bounded: they come from the peer. */
static void sanitize_request_id(const char *in, char out[MAX_REQUEST_ID + 1])
{
	size_t j = 0;
	for (size_t i = 0; in && in[i] && j < MAX_REQUEST_ID; i++) {
		char ch = in[i];
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '_' || ch == '.')
			out[j++] = ch;
	}
	if (j == 0)
		out[j++] = '-';
	out[j] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */

struct ipc_call {
	struct ipc_call *next, *prev; /* the connection's pending calls */
	struct conn *conn;            /* NULL once the peer has gone */
	const struct ipc_method *method;
	uint64_t call_id;
	char request_id[MAX_REQUEST_ID + 1];
	uid_t uid;
	pid_t pid;
};

struct ipc_server {
	struct event_base *base;
	int fd;
	struct event *accept_ev;
	char *path;
	uid_t allowed[8];
	size_t n_allowed;
	const struct ipc_method *methods;
	size_t n_methods;
	void *userdata;
	struct conn *conns;
	size_t max_frame;           /* the largest method cap + IPC_ENVELOPE_OVERHEAD */
	unsigned max_conns_per_uid;
	uint64_t frame_timeout_ms;
	struct conn_budget budget;  /* partial frames beyond each connection's READ_CHUNK */
	struct event *resume_ev;    /* ends an accept back-off */
	unsigned backoff_ms;        /* the current back-off; 0: accepting */
	struct ratelimit rl[REFUSE_N];
};

static size_t method_max_request(const struct ipc_method *m)
{
	return m->max_request ? m->max_request : IPC_DEFAULT_MAX_REQUEST;
}

static size_t method_max_decoded(const struct ipc_method *m)
{
	return MAX((size_t)IPC_DECODE_MIN, (size_t)IPC_DECODE_FACTOR * method_max_request(m));
}

static const struct ipc_method *server_method(const struct ipc_server *s, uint32_t id)
{
	for (size_t i = 0; i < s->n_methods; i++)
		if (s->methods[i].id == id)
			return &s->methods[i];
	return NULL;
}

/* Per-connection server state hangs off conn->owner. */
struct server_conn {
	struct ipc_server *srv;
	struct ipc_call *calls;
};

static void server_conn_unlink(struct ipc_server *s, struct conn *c)
{
	for (struct conn **pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			return;
		}
}

static void server_conn_closed(struct conn *c)
{
	struct server_conn *sc = c->owner;
	/* Pending calls stay valid for their handlers; their replies are dropped. */
	for (struct ipc_call *call = sc->calls; call; call = call->next)
		call->conn = NULL;
	if (sc->srv)
		server_conn_unlink(sc->srv, c);
	free(sc);
	c->owner = NULL;
}

static void call_unlink(struct ipc_call *call)
{
	if (!call->conn)
		return;
	struct server_conn *sc = call->conn->owner;
	if (call->prev)
		call->prev->next = call->next;
	else
		sc->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
}

static void send_status(struct conn *c, uint64_t call_id, uint32_t method, int status, const char *message)
{
	Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
	env.call_id = call_id;
	env.method = method;
	env.status = status;
	env.message = (char *)message;
	(void)conn_send(c, &env, NULL, 0);
}

static void server_on_frame(struct conn *c, Criod__Internal__Envelope *env, int *fds, size_t nfds)
{
	struct server_conn *sc = c->owner;
	struct ipc_server *s = sc->srv;
	char req_id[MAX_REQUEST_ID + 1];
	sanitize_request_id(env->request_id, req_id);

	const struct ipc_method *m = server_method(s, env->method);
	if (!m) {
		log_refusal(s->rl, REFUSE_REQUEST, req_id, "refused unknown method", "method=%u peer_uid=%u",
			    env->method, (unsigned)c->uid);
		send_status(c, env->call_id, env->method, STATUS_UNIMPLEMENTED, "unknown method");
		goto refuse;
	}
	if (nfds > m->max_fds) {
		log_refusal(s->rl, REFUSE_REQUEST, req_id, "refused call with unexpected file descriptors",
			    "method=%s nfds=%zu", m->name, nfds);
		send_status(c, env->call_id, env->method, STATUS_INVALID_ARGUMENT,
			    "too many file descriptors for this method");
		goto refuse;
	}
	char msg[256];
	/* The body's size, then what it would take decoded, before decoding. */
	size_t cap = method_max_request(m);
	if (env->body.len > cap) {
		log_refusal(s->rl, REFUSE_REQUEST, req_id, "refused oversized request",
			    "method=%s peer_uid=%u peer_pid=%d bytes=%zu limit=%zu", m->name, (unsigned)c->uid,
			    (int)c->pid, env->body.len, cap);
		snprintf(msg, sizeof(msg), "%s: a request of %zu bytes is over the limit of %zu bytes", m->name,
			 env->body.len, cap);
		send_status(c, env->call_id, env->method, STATUS_RESOURCE_EXHAUSTED, msg);
		goto refuse;
	}
	ssize_t cost = ipc_decoded_size(m->request, env->body.data, env->body.len);
	if (cost == -E2BIG || (cost >= 0 && (size_t)cost > method_max_decoded(m))) {
		log_refusal(s->rl, REFUSE_REQUEST, req_id, "refused request too large decoded",
			    "method=%s peer_uid=%u peer_pid=%d bytes=%zu decoded=%zd limit=%zu", m->name,
			    (unsigned)c->uid, (int)c->pid, env->body.len, cost, method_max_decoded(m));
		snprintf(msg, sizeof(msg), "%s: a request of %zu bytes would take over %zu bytes decoded", m->name,
			 env->body.len, method_max_decoded(m));
		send_status(c, env->call_id, env->method, STATUS_RESOURCE_EXHAUSTED, msg);
		goto refuse;
	}
	ProtobufCMessage *req =
		cost >= 0 ? protobuf_c_message_unpack(m->request, NULL, env->body.len, env->body.data) : NULL;
	if (!req) {
		log_refusal(s->rl, REFUSE_REQUEST, req_id, "refused undecodable request", "method=%s peer_uid=%u",
			    m->name, (unsigned)c->uid);
		send_status(c, env->call_id, env->method, STATUS_INVALID_ARGUMENT, "request does not decode");
		goto refuse;
	}
	struct ipc_call *call = calloc(1, sizeof(*call));
	if (!call) {
		protobuf_c_message_free_unpacked(req, NULL);
		send_status(c, env->call_id, env->method, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto refuse;
	}
	call->conn = c;
	call->method = m;
	call->call_id = env->call_id;
	call->uid = c->uid;
	call->pid = c->pid;
	memcpy(call->request_id, req_id, sizeof(req_id));
	call->next = sc->calls;
	if (sc->calls)
		sc->calls->prev = call;
	sc->calls = call;
	size_t body_len = env->body.len;
	criod__internal__envelope__free_unpacked(env, NULL);
	log_debug(call->request_id, "call", "method=%s bytes=%zu", m->name, body_len);
	m->handler(call, req, fds, nfds, s->userdata);
	protobuf_c_message_free_unpacked(req, NULL);
	return;
refuse:
	close_fds(fds, nfds);
	criod__internal__envelope__free_unpacked(env, NULL);
}

/* A frame over the server's max_frame, or one its buffer budget cannot
 * take now (busy): answered from its first bytes and discarded as it
 * arrives, never buffered. */
static void server_on_oversize(struct conn *c, uint64_t call_id, uint32_t method, size_t len, bool busy)
{
	struct server_conn *sc = c->owner;
	struct ipc_server *s = sc->srv;
	const struct ipc_method *m = s ? server_method(s, method) : NULL;
	size_t limit = m ? method_max_request(m) : (s ? s->max_frame : 0);
	char msg[256];
	if (busy) {
		log_refusal(c->rl, REFUSE_BUFFER, NULL, "refused request: ipc buffer limit reached",
			    "method=%s method_id=%u peer_uid=%u peer_pid=%d frame_bytes=%zu held=%zu buffered=%zu "
			    "limit=%zu",
			    m ? m->name : "-", method, (unsigned)c->uid, (int)c->pid, len, c->in_len,
			    c->budget->used, c->budget->limit);
		snprintf(msg, sizeof(msg),
			 "%s: the daemon holds %zu bytes of partial requests, a request of %zu bytes would exceed its "
			 "limit of %zu bytes; retry",
			 m ? m->name : "request", c->budget->used, len, c->budget->limit);
		send_status(c, call_id, method, STATUS_RESOURCE_EXHAUSTED, msg);
		return;
	}
	log_refusal(c->rl, REFUSE_REQUEST, NULL, "refused oversized request",
		    "method=%s method_id=%u peer_uid=%u peer_pid=%d frame_bytes=%zu limit=%zu", m ? m->name : "-",
		    method, (unsigned)c->uid, (int)c->pid, len, limit);
	if (m)
		snprintf(msg, sizeof(msg), "%s: a request of %zu bytes is over the limit of %zu bytes", m->name, len,
			 limit);
	else
		snprintf(msg, sizeof(msg), "a frame of %zu bytes is over the limit of %zu bytes", len, limit);
	send_status(c, call_id, method, STATUS_RESOURCE_EXHAUSTED, msg);
}

static void server_resume_accept_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct ipc_server *s = arg;
	if (event_add(s->accept_ev, NULL) < 0)
		log_error(NULL, "cannot resume accepting connections", "path=%s", s->path);
}

/* Out of file descriptors (or memory): the pending connection stays in the
 * backlog and the socket stays readable, so stop watching it for a while
 * instead of spinning, doubling the pause while it lasts. */
static void server_pause_accept(struct ipc_server *s, int err)
{
	s->backoff_ms = s->backoff_ms ? MIN(s->backoff_ms * 2, (unsigned)IPC_ACCEPT_BACKOFF_MAX_MS)
				      : IPC_ACCEPT_BACKOFF_MIN_MS;
	event_del(s->accept_ev);
	struct timeval tv = {.tv_sec = s->backoff_ms / 1000, .tv_usec = (suseconds_t)(s->backoff_ms % 1000) * 1000};
	if (evtimer_add(s->resume_ev, &tv) < 0)
		event_add(s->accept_ev, NULL);
	log_refusal_errno(s->rl, REFUSE_ACCEPT, err, NULL, "accept paused", "path=%s retry_ms=%u", s->path,
			  s->backoff_ms);
}

static unsigned server_conns_of(const struct ipc_server *s, uid_t uid)
{
	unsigned n = 0;
	for (const struct conn *c = s->conns; c; c = c->next)
		if (c->uid == uid)
			n++;
	return n;
}

static void server_accept_cb(evutil_socket_t lfd, short what _unused_, void *arg)
{
	struct ipc_server *s = arg;
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			if (err == EAGAIN || err == EINTR || err == ECONNABORTED)
				return;
			if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
				server_pause_accept(s, err);
			else
				log_refusal_errno(s->rl, REFUSE_ACCEPT, err, NULL, "accept failed", "path=%s", s->path);
			return;
		}
		s->backoff_ms = 0;
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0) {
			int err = errno;
			log_refusal_errno(s->rl, REFUSE_PEER, err, NULL, "refused connection: no peer credentials");
			close(fd);
			continue;
		}
		bool ok = false;
		for (size_t k = 0; k < s->n_allowed; k++)
			if (s->allowed[k] == cred.uid)
				ok = true;
		if (!ok) {
			log_refusal(s->rl, REFUSE_PEER, NULL, "refused connection from unauthorized peer",
				    "peer_uid=%u peer_gid=%u peer_pid=%d", (unsigned)cred.uid, (unsigned)cred.gid,
				    (int)cred.pid);
			close(fd);
			continue;
		}
		if (server_conns_of(s, cred.uid) >= s->max_conns_per_uid) {
			log_refusal(s->rl, REFUSE_CONNS, NULL, "refused connection: too many from this peer",
				    "peer_uid=%u peer_pid=%d limit=%u", (unsigned)cred.uid, (int)cred.pid,
				    s->max_conns_per_uid);
			close(fd);
			continue;
		}
		struct server_conn *sc = calloc(1, sizeof(*sc));
		struct conn *c =
			sc ? conn_new(s->base, fd, s->max_frame, s->rl, server_on_frame, server_conn_closed, sc) : NULL;
		if (!c) {
			free(sc);
			close(fd);
			log_error_errno(ENOMEM, NULL, "cannot accept connection");
			continue;
		}
		c->on_oversize = server_on_oversize;
		c->budget = &s->budget;
		c->frame_timeout_ms = s->frame_timeout_ms;
		c->frame_ev = evtimer_new(s->base, conn_frame_timeout_cb, c);
		sc->srv = s;
		if (!c->frame_ev) {
			log_error_errno(ENOMEM, NULL, "cannot accept connection");
			conn_close(c); /* frees sc */
			continue;
		}
		c->next = s->conns;
		s->conns = c;
		log_debug(NULL, "accepted connection", "peer_uid=%u peer_pid=%d", (unsigned)c->uid, (int)c->pid);
	}
}

int ipc_listen_unix(const char *path, mode_t mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return log_error_errno(ENAMETOOLONG, NULL, "socket path too long", "path=%s", path);
	strcpy(sa.sun_path, path);

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(errno, NULL, "socket");
	/* A stale socket from an earlier run is replaced; a live one (another
	 * instance is serving) and anything that is not a socket are not. */
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return log_error_errno(EEXIST, NULL, "socket path exists and is not a socket", "path=%s", path);
		_cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return log_error_errno(EADDRINUSE, NULL, "another instance is serving this socket", "path=%s",
					       path);
		if (unlink(path) < 0)
			return log_error_errno(errno, NULL, "cannot remove stale socket", "path=%s", path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return log_error_errno(errno, NULL, "bind", "path=%s", path);
	if (chmod(path, mode) < 0 || listen(fd, 128) < 0) {
		int r = -errno;
		unlink(path);
		return log_error_errno(r, NULL, "listen", "path=%s", path);
	}
	return TAKE_FD(fd);
}

int ipc_server_new(struct event_base *base, const char *path, mode_t mode, const uid_t *allowed_uids,
		   size_t n_allowed, const struct ipc_method *methods, size_t n_methods, void *userdata,
		   struct ipc_server **out)
{
	if (n_allowed > ARRAY_SIZE(((struct ipc_server *)0)->allowed))
		return -E2BIG;
	_cleanup_close_ int fd = ipc_listen_unix(path, mode);
	if (fd < 0)
		return fd;
	struct ipc_server *s = calloc(1, sizeof(*s));
	if (!s) {
		unlink(path);
		return -ENOMEM;
	}
	s->base = base;
	s->path = strdup(path);
	memcpy(s->allowed, allowed_uids, n_allowed * sizeof(uid_t));
	s->n_allowed = n_allowed;
	s->methods = methods;
	s->n_methods = n_methods;
	s->userdata = userdata;
	s->max_conns_per_uid = IPC_DEFAULT_MAX_CONNS_PER_UID;
	s->frame_timeout_ms = IPC_DEFAULT_FRAME_TIMEOUT_MS;
	s->budget.limit = IPC_DEFAULT_MAX_BUFFERED;
	size_t biggest = 0;
	for (size_t i = 0; i < n_methods; i++)
		biggest = MAX(biggest, method_max_request(&methods[i]));
	s->max_frame = MIN(biggest + IPC_ENVELOPE_OVERHEAD, (size_t)IPC_MAX_FRAME);
	s->fd = TAKE_FD(fd);
	s->accept_ev = event_new(base, s->fd, EV_READ | EV_PERSIST, server_accept_cb, s);
	s->resume_ev = evtimer_new(base, server_resume_accept_cb, s);
	if (!s->path || !s->accept_ev || !s->resume_ev || event_add(s->accept_ev, NULL) < 0) {
		ipc_server_free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void ipc_server_free(struct ipc_server *s)
{
	if (!s)
		return;
	while (s->conns) {
		struct conn *c = s->conns;
		s->conns = c->next;
		((struct server_conn *)c->owner)->srv = NULL;
		conn_close(c);
	}
	if (s->accept_ev)
		event_free(s->accept_ev);
	if (s->resume_ev)
		event_free(s->resume_ev);
	if (s->fd >= 0)
		close(s->fd);
	if (s->path)
		unlink(s->path);
	free(s->path);
	free(s);
}

void ipc_server_set_max_conns_per_uid(struct ipc_server *s, unsigned n)
{
	s->max_conns_per_uid = n ? n : IPC_DEFAULT_MAX_CONNS_PER_UID;
}

size_t ipc_server_max_frame(const struct ipc_server *s) { return s->max_frame; }

void ipc_server_set_frame_timeout(struct ipc_server *s, uint64_t ms)
{
	s->frame_timeout_ms = ms ? ms : IPC_DEFAULT_FRAME_TIMEOUT_MS;
}

void ipc_server_set_max_buffered(struct ipc_server *s, size_t bytes)
{
	s->budget.limit = bytes ? bytes : IPC_DEFAULT_MAX_BUFFERED;
}

size_t ipc_server_buffered(const struct ipc_server *s) { return s->budget.used; }

void ipc_call_reply(struct ipc_call *call, const ProtobufCMessage *resp, const int *fds, size_t nfds)
{
	if (call->conn) {
		Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
		env.call_id = call->call_id;
		env.method = call->method->id;
		size_t n = resp ? protobuf_c_message_get_packed_size(resp) : 0;
		_cleanup_free_ uint8_t *body = n ? malloc(n) : NULL;
		if (n && !body) {
			send_status(call->conn, call->call_id, call->method->id, STATUS_RESOURCE_EXHAUSTED,
				    "out of memory");
		} else {
			if (n)
				protobuf_c_message_pack(resp, body);
			env.body.data = body;
			env.body.len = n;
			int r = conn_send(call->conn, &env, fds, nfds);
			if (r < 0)
				log_warn_errno(r, call->request_id, "cannot send reply", "method=%s", call->method->name);
		}
		call_unlink(call);
	}
	free(call);
}

void ipc_call_fail(struct ipc_call *call, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info(call->request_id, "call failed", "method=%s status=%s error=\"%s\"", call->method->name,
		 status_name(status), msg);
	if (call->conn) {
		send_status(call->conn, call->call_id, call->method->id, status, msg);
		call_unlink(call);
	}
	free(call);
}

const char *ipc_call_request_id(const struct ipc_call *call) { return call->request_id; }
uid_t ipc_call_peer_uid(const struct ipc_call *call) { return call->uid; }
pid_t ipc_call_peer_pid(const struct ipc_call *call) { return call->pid; }

/* ------------------------------------------------------------------------ */
/* Client                                                                    */

struct pending {
	struct pending *next;
	struct ipc_client *client;
	uint64_t call_id;
	const struct ipc_method *method;
	ipc_reply_fn cb;
	void *userdata;
	struct event *timer;
	int status; /* for deferred completion */
	char *message;
};

struct ipc_client {
	struct event_base *base;
	char *name, *path;
	struct conn *conn;
	uint64_t next_id;
	struct pending *pending;
	bool closing;
};

pid_t ipc_client_peer_pid(const struct ipc_client *c)
{
	return c && c->conn ? c->conn->pid : -1;
}

static struct pending *pending_take(struct ipc_client *c, uint64_t call_id)
{
	for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next)
		if ((*pp)->call_id == call_id) {
			struct pending *p = *pp;
			*pp = p->next;
			p->next = NULL;
			return p;
		}
	return NULL;
}

static void pending_free(struct pending *p)
{
	if (p->timer)
		event_free(p->timer);
	free(p->message);
	free(p);
}

/* Complete a call with an error, from its timer (never synchronously). */
static void pending_fail_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct pending *p = arg;
	struct ipc_client *c = p->client;
	if (c && pending_take(c, p->call_id) != p)
		return; /* already completed */
	if (p->status == 0) {
		p->status = STATUS_DEADLINE_EXCEEDED;
		if (asprintf(&p->message, "%s did not answer %s in time", c ? c->name : "daemon",
			     p->method->name) < 0)
			p->message = NULL;
	}
	p->cb(p->status, p->message ? p->message : "call failed", NULL, NULL, 0, p->userdata);
	pending_free(p);
}

/* Fail a pending call on the next loop iteration. */
static void pending_fail_later(struct pending *p, int status, const char *message)
{
	p->status = status;
	free(p->message);
	p->message = strdup(message);
	struct timeval zero = {0, 0};
	event_del(p->timer);
	event_add(p->timer, &zero);
}

static void client_on_frame(struct conn *conn, Criod__Internal__Envelope *env, int *fds, size_t nfds)
{
	struct ipc_client *c = conn->owner;
	struct pending *p = pending_take(c, env->call_id);
	if (!p) {
		/* A reply after its deadline: drop it. */
		close_fds(fds, nfds);
		criod__internal__envelope__free_unpacked(env, NULL);
		return;
	}
	if (env->status != STATUS_OK) {
		p->cb(env->status, env->message && *env->message ? env->message : status_name(env->status), NULL,
		      fds, nfds, p->userdata);
	} else {
		ProtobufCMessage *resp =
			protobuf_c_message_unpack(p->method->response, NULL, env->body.len, env->body.data);
		if (!resp) {
			close_fds(fds, nfds);
			char msg[128];
			snprintf(msg, sizeof(msg), "%s sent an undecodable reply to %s", c->name, p->method->name);
			p->cb(STATUS_INTERNAL, msg, NULL, NULL, 0, p->userdata);
		} else {
			p->cb(STATUS_OK, NULL, resp, fds, nfds, p->userdata);
			protobuf_c_message_free_unpacked(resp, NULL);
		}
	}
	pending_free(p);
	criod__internal__envelope__free_unpacked(env, NULL);
}

static void client_conn_closed(struct conn *conn)
{
	struct ipc_client *c = conn->owner;
	if (!c)
		return;
	c->conn = NULL;
	char msg[160];
	snprintf(msg, sizeof(msg), "connection to %s lost", c->name);
	for (struct pending *p = c->pending; p; p = p->next)
		pending_fail_later(p, STATUS_UNAVAILABLE, msg);
	log_warn(NULL, "connection to daemon lost", "daemon=%s", c->name);
}

static int client_connect(struct ipc_client *c)
{
	if (c->conn)
		return 0;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(c->path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, c->path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	/* The daemons run as root; anything else at that path is an impostor. */
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
		return -errno;
	if (cred.uid != 0 && cred.uid != geteuid()) {
		log_error(NULL, "daemon socket is not served by root, refusing", "daemon=%s path=%s peer_uid=%u",
			  c->name, c->path, (unsigned)cred.uid);
		return -EPERM;
	}
	struct conn *conn =
		conn_new(c->base, fd, IPC_MAX_FRAME, client_ratelimit, client_on_frame, client_conn_closed, c);
	if (!conn)
		return -ENOMEM;
	TAKE_FD(fd);
	c->conn = conn;
	log_debug(NULL, "connected to daemon", "daemon=%s path=%s", c->name, c->path);
	return 0;
}

struct ipc_client *ipc_client_new(struct event_base *base, const char *name, const char *path)
{
	struct ipc_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->base = base;
	c->name = strdup(name);
	c->path = strdup(path);
	c->next_id = 1;
	if (!c->name || !c->path) {
		ipc_client_free(c);
		return NULL;
	}
	return c;
}

void ipc_client_free(struct ipc_client *c)
{
	if (!c)
		return;
	if (c->conn) {
		c->conn->owner = NULL;
		conn_close(c->conn);
	}
	/* Every outstanding call still completes, CANCELLED, so its owner can
	 * release what it holds; no new call may be queued from here on. */
	c->closing = true;
	while (c->pending) {
		struct pending *p = c->pending;
		c->pending = p->next;
		p->cb(STATUS_CANCELLED, "shutting down", NULL, NULL, 0, p->userdata);
		pending_free(p);
	}
	free(c->name);
	free(c->path);
	free(c);
}

int ipc_client_call(struct ipc_client *c, const struct ipc_method *m, const char *request_id,
		    const ProtobufCMessage *req, const int *fds, size_t nfds, uint64_t timeout_ms, ipc_reply_fn cb,
		    void *userdata)
{
	if (c->closing)
		return -ESHUTDOWN;
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->client = c;
	p->call_id = c->next_id++;
	p->method = m;
	p->cb = cb;
	p->userdata = userdata;
	p->timer = evtimer_new(c->base, pending_fail_cb, p);
	if (!p->timer) {
		free(p);
		return -ENOMEM;
	}
	p->next = c->pending;
	c->pending = p;

	int r = client_connect(c);
	if (r < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s is not reachable at %s: %s", c->name, c->path, strerror(-r));
		pending_fail_later(p, STATUS_UNAVAILABLE, msg);
		return 0;
	}
	struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000), .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
	event_add(p->timer, &tv);

	size_t n = protobuf_c_message_get_packed_size(req);
	_cleanup_free_ uint8_t *body = malloc(n ? n : 1);
	if (!body) {
		pending_fail_later(p, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return 0;
	}
	protobuf_c_message_pack(req, body);
	Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
	env.call_id = p->call_id;
	env.method = m->id;
	env.request_id = (char *)(request_id ? request_id : "");
	env.body.data = body;
	env.body.len = n;
	struct conn *conn = c->conn;
	conn->refs++;
	r = conn_send(conn, &env, fds, nfds);
	conn_unref(conn);
	if (r < 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "cannot send %s to %s: %s", m->name, c->name, strerror(-r));
		pending_fail_later(p, r == -EMSGSIZE ? STATUS_RESOURCE_EXHAUSTED : STATUS_UNAVAILABLE, msg);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Blocking frames, for one thread over a private socket pair.               */

int ipc_sync_send(int fd, uint64_t call_id, uint32_t method, const char *request_id, int status,
		  const char *message, const ProtobufCMessage *body, const int *fds, size_t nfds)
{
	if (nfds > IPC_MAX_FDS)
		return -E2BIG;
	_cleanup_free_ uint8_t *packed = NULL;
	Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
	env.call_id = call_id;
	env.method = method;
	env.request_id = (char *)(request_id ? request_id : "");
	env.status = status;
	env.message = (char *)(message ? message : "");
	env.nfds = (uint32_t)nfds;
	if (body) {
		size_t n = protobuf_c_message_get_packed_size(body);
		if (n > IPC_MAX_FRAME)
			return -EMSGSIZE;
		packed = malloc(n ? n : 1);
		if (!packed)
			return -ENOMEM;
		protobuf_c_message_pack(body, packed);
		env.body.data = packed;
		env.body.len = n;
	}
	_cleanup_free_ uint8_t *frame = NULL;
	size_t len, off = 0;
	int r = ipc_frame_encode(&env, &frame, &len);
	if (r < 0)
		return r;
	while (off < len) {
		ssize_t n = send_fds(fd, frame + off, len - off, fds, off == 0 ? nfds : 0, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes, collecting passed fds; 0 bytes at the very start
 * of a frame is -EPIPE (the peer is gone), anywhere else -EPROTO. */
static int recv_exact(int fd, uint8_t *buf, size_t len, bool frame_start, int *fds, size_t *nfds,
		      const struct ipc_sync_wait *w)
{
	size_t off = 0;
	while (off < len) {
		if (w) {
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int pr = poll(&p, 1, w->idle_ms);
			if (pr < 0 && errno != EINTR)
				return -errno;
			if (pr == 0) {
				int r = w->idle(w->ud);
				if (r < 0)
					return r;
			}
			if (pr <= 0)
				continue;
		}
		bool bad;
		ssize_t n = recv_fds(fd, buf + off, len - off, 0, fds, nfds, IPC_MAX_FDS, &bad);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (bad)
			return -EPROTO;
		if (n == 0)
			return off == 0 && frame_start ? -EPIPE : -EPROTO;
		off += (size_t)n;
	}
	return 0;
}

static int sync_recv(int fd, void **out, int *fds, size_t *nfds, const struct ipc_sync_wait *w)
{
	uint8_t hdr[4];
	_cleanup_free_ uint8_t *buf = NULL;
	*nfds = 0;
	int r = recv_exact(fd, hdr, sizeof(hdr), true, fds, nfds, w);
	if (r < 0)
		goto fail;
	uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
	if (len > IPC_MAX_FRAME) {
		r = -EPROTO;
		goto fail;
	}
	if (!(buf = malloc(len ? len : 1))) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = recv_exact(fd, buf, len, false, fds, nfds, w)) < 0)
		goto fail;
	ssize_t cost = ipc_decoded_size(&criod__internal__envelope__descriptor, buf, len);
	Criod__Internal__Envelope *env = cost >= 0 && (size_t)cost <= ENVELOPE_DECODE_BUDGET(len)
						 ? criod__internal__envelope__unpack(NULL, len, buf)
						 : NULL;
	if (!env || env->nfds != *nfds) {
		if (env)
			criod__internal__envelope__free_unpacked(env, NULL);
		r = -EPROTO;
		goto fail;
	}
	*out = env;
	return 0;
fail:
	close_fds(fds, *nfds);
	*nfds = 0;
	return r;
}

int ipc_sync_recv(int fd, void **out, int *fds, size_t *nfds) { return sync_recv(fd, out, fds, nfds, NULL); }

int ipc_sync_call(int fd, const struct ipc_method *m, const char *request_id, const ProtobufCMessage *req,
		  const int *fds, size_t nfds, const struct ipc_sync_wait *wait, ProtobufCMessage **resp, char *err,
		  size_t errlen)
{
	static _Atomic uint64_t next_id = 1;
	uint64_t id = next_id++;
	*resp = NULL;
	int r = ipc_sync_send(fd, id, m->id, request_id, 0, NULL, req, fds, nfds);
	if (r < 0) {
		snprintf(err, errlen, "cannot send %s: %s", m->name, strerror(-r));
		return r;
	}
	void *e = NULL;
	int rfds[IPC_MAX_FDS];
	size_t nr = 0;
	if ((r = sync_recv(fd, &e, rfds, &nr, wait)) < 0) {
		snprintf(err, errlen, "no reply to %s: %s", m->name, r == -EPIPE ? "the peer went away" : strerror(-r));
		return r;
	}
	Criod__Internal__Envelope *env = e;
	close_fds(rfds, nr); /* no method of this kind answers with fds */
	if (env->call_id != id || env->method != m->id) {
		snprintf(err, errlen, "reply to %s is for another call", m->name);
		r = -EPROTO;
	} else if (env->status != STATUS_OK) {
		snprintf(err, errlen, "%s refused: %s", m->name, env->message);
		r = -EPROTO;
	} else if (!(*resp = protobuf_c_message_unpack(m->response, NULL, env->body.len, env->body.data))) {
		snprintf(err, errlen, "reply to %s does not decode", m->name);
		r = -EPROTO;
	}
	criod__internal__envelope__free_unpacked(env, NULL);
	return r;
}
