/* The container log writer in kubelet's CRI format; see conmon_crilog.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "conmon_crilog.h"

int crilog_format_timestamp(int64_t ns, char *buf, size_t size)
{
	if (!buf || size < CRILOG_TS_LEN + 1 || ns < 0)
		return -EINVAL;
	time_t sec = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	struct tm tm;
	if (!gmtime_r(&sec, &tm) || tm.tm_year + 1900 > 9999)
		return -EINVAL;
	int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
	return n == CRILOG_TS_LEN ? n : -EINVAL;
}

int crilog_write_record(struct crilog *w, int64_t ns, const char *stream, bool partial, const char *data,
			size_t len)
{
	char head[CRILOG_TS_LEN + 16];
	int r = crilog_format_timestamp(ns, head, sizeof(head));
	if (r < 0)
		return r;
	int hl = snprintf(head + r, sizeof(head) - (size_t)r, " %s %c ", stream, partial ? 'P' : 'F');
	if (hl < 0 || (size_t)(r + hl) >= sizeof(head))
		return -EINVAL;
	if (w->fd < 0)
		return 0;
	struct iovec iov[3] = {
		{.iov_base = head, .iov_len = (size_t)(r + hl)},
		{.iov_base = (void *)data, .iov_len = len},
		{.iov_base = (void *)"\n", .iov_len = 1},
	};
	struct iovec *v = iov;
	int nv = 3;
	/* A regular file takes it all at once; keep going if it did not. */
	while (nv > 0) {
		ssize_t n = writev(w->fd, v, nv);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			w->write_errors++;
			w->last_errno = errno;
			return -errno;
		}
		size_t left = (size_t)n;
		while (nv > 0 && left >= v->iov_len) {
			left -= v->iov_len;
			v++;
			nv--;
		}
		if (nv > 0) {
			v->iov_base = (char *)v->iov_base + left;
			v->iov_len -= left;
		}
	}
	return 0;
}

void crilog_stream_init(struct crilog_stream *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->max_line = CRILOG_MAX_LINE;
}

void crilog_stream_free(struct crilog_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
}

char *crilog_stream_space(struct crilog_stream *s, size_t *avail)
{
	if (!s->buf) {
		s->buf = malloc(s->max_line);
		if (!s->buf)
			return NULL;
		s->len = 0;
	}
	*avail = s->max_line - s->len; /* commit never leaves the buffer full */
	return s->buf + s->len;
}

static int keep_first(int r, int e) { return r < 0 ? r : e; }

int crilog_stream_commit(struct crilog *w, struct crilog_stream *s, size_t n, int64_t now_ns)
{
	int r = 0;
	size_t start = 0, scan = s->len;

	if (!s->buf || n > s->max_line - s->len)
		return -EINVAL;
	s->len += n;
	for (;;) {
		char *nl = memchr(s->buf + scan, '\n', s->len - scan);
		if (!nl)
			break;
		size_t end = (size_t)(nl - s->buf);
		size_t cl = end - start;
		if (cl > 0 && s->buf[end - 1] == '\r')
			cl--;
		r = keep_first(r, crilog_write_record(w, now_ns, s->name, false, s->buf + start, cl));
		start = scan = end + 1;
	}
	if (start == 0 && s->len == s->max_line) {
		/* A whole buffer without a newline. */
		r = keep_first(r, crilog_write_record(w, now_ns, s->name, true, s->buf, s->len));
		start = s->len;
	}
	if (start > 0) {
		memmove(s->buf, s->buf + start, s->len - start);
		s->len -= start;
	}
	return r;
}

int crilog_stream_feed(struct crilog *w, struct crilog_stream *s, const void *data, size_t len, int64_t now_ns)
{
	const char *p = data;
	int r = 0;

	while (len > 0) {
		size_t avail;
		char *dst = crilog_stream_space(s, &avail);
		if (!dst)
			return -ENOMEM;
		size_t k = len < avail ? len : avail;
		memcpy(dst, p, k);
		r = keep_first(r, crilog_stream_commit(w, s, k, now_ns));
		p += k;
		len -= k;
	}
	return r;
}

int crilog_stream_flush(struct crilog *w, struct crilog_stream *s, int64_t now_ns)
{
	int r = 0;
	if (s->buf && s->len > 0)
		r = crilog_write_record(w, now_ns, s->name, true, s->buf, s->len);
	crilog_stream_free(s);
	return r;
}
