/* One structured line per event on stderr; see log.h for the format.
 *
 * The whole line is built in a stack buffer and handed to the kernel with a
 * single write(2), so lines from concurrent threads and processes sharing the
 * same stderr never interleave (a pipe write of at most PIPE_BUF bytes is
 * atomic, and LOG_LINE_MAX is PIPE_BUF). Every byte that could end or forge a
 * line is escaped. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096     /* including the final newline */
#define LOG_COMPONENT_MAX 32
#define LOG_REQ_MAX 128
#define LOG_ELLIPSIS "..."

static _Atomic int log_level_cur = LOG_LEVEL_INFO;
static pthread_mutex_t log_comp_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_component[LOG_COMPONENT_MAX + 1];

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "debug",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

void log_init(const char *component)
{
	size_t n = 0;

	pthread_mutex_lock(&log_comp_lock);
	/* The component is a bare token: anything unusual becomes '_'. */
	for (const char *p = component ? component : ""; *p && n < LOG_COMPONENT_MAX; p++, n++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			  c == '-' || c == '_' || c == '.';
		log_component[n] = ok ? c : '_';
	}
	log_component[n] = '\0';
	pthread_mutex_unlock(&log_comp_lock);
}

void log_set_level(enum log_level level)
{
	if ((int)level < LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	if ((int)level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	atomic_store(&log_level_cur, (int)level);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level_cur);
}

int log_level_from_string(const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

/* ---- line builder: never overflows, never splits an escape sequence ---- */

struct lbuf {
	char *buf;
	size_t len;
	size_t cap; /* bytes usable for content */
	bool truncated;
};

static void lb_put(struct lbuf *b, const char *s, size_t n)
{
	if (b->truncated)
		return;
	if (n > b->cap - b->len) {
		b->truncated = true;
		return;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
}

static void lb_puts(struct lbuf *b, const char *s)
{
	lb_put(b, s, strlen(s));
}

enum esc_mode {
	ESC_CONTROL, /* fields: control characters only */
	ESC_QUOTED,  /* msg, err: also '"' and '\' */
	ESC_TOKEN,   /* req: anything but printable ASCII without space, '"', '\', '=' */
};

static void lb_put_escaped(struct lbuf *b, const char *s, size_t n, enum esc_mode mode)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n && !b->truncated; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[4];

		if (c == '\n')
			lb_put(b, "\\n", 2);
		else if (c == '\r')
			lb_put(b, "\\r", 2);
		else if (c == '\t')
			lb_put(b, "\\t", 2);
		else if (mode != ESC_CONTROL && (c == '"' || c == '\\')) {
			e[0] = '\\';
			e[1] = (char)c;
			lb_put(b, e, 2);
		} else if (c < 0x20 || c == 0x7f ||
			   (mode == ESC_TOKEN && (c == ' ' || c == '=' || c >= 0x80))) {
			e[0] = '\\';
			e[1] = 'x';
			e[2] = hex[c >> 4];
			e[3] = hex[c & 0xf];
			lb_put(b, e, 4);
		} else
			lb_put(b, (const char *)&c, 1);
	}
}

static void write_line(const char *buf, size_t len)
{
	/* One write(2) for the line; only a signal before anything was written
	 * or a (practically impossible) short write leads to another call. */
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, buf, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += w;
		len -= (size_t)w;
	}
}

static _Thread_local const char *thread_req;

void log_set_thread_request(const char *req) { thread_req = req; }

int log_emitv(enum log_level level, int errnum, const char *req, const char *msg,
	      const char *fields_fmt, va_list ap)
{
	int ret = errnum == 0 ? 0 : (errnum < 0 ? errnum : -errnum);
	int saved_errno = errno;
	char line[LOG_LINE_MAX];
	char suffix[256];
	char fields[LOG_LINE_MAX];
	char comp[LOG_COMPONENT_MAX + 1];
	struct lbuf sb = { .buf = suffix, .cap = sizeof(suffix) };
	struct lbuf lb;
	struct timespec ts;
	struct tm tm;
	char tsbuf[64];
	int fl = -1;

	if ((int)level < LOG_LEVEL_DEBUG || (int)level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	if ((int)level < atomic_load(&log_level_cur))
		goto out;

	/* err="..." errno=N goes last but is laid out first, so that a
	 * truncated line still carries it. */
	if (errnum != 0) {
		char ebuf[128];
		long en = errnum < 0 ? -(long)errnum : (long)errnum;
		const char *es = en <= 0x7fffffff ? strerror_r((int)en, ebuf, sizeof(ebuf)) : "Unknown error";
		char num[32];

		lb_puts(&sb, " err=\"");
		lb_put_escaped(&sb, es, strlen(es), ESC_QUOTED);
		snprintf(num, sizeof(num), "\" errno=%ld", en);
		if (sb.truncated) { /* absurdly long strerror: keep the number */
			sb.len = 0;
			sb.truncated = false;
			lb_puts(&sb, " err=\"?");
		}
		lb_puts(&sb, num);
	}

	pthread_mutex_lock(&log_comp_lock);
	if (log_component[0])
		memcpy(comp, log_component, sizeof(comp));
	else
		snprintf(comp, sizeof(comp), "%s", "-");
	pthread_mutex_unlock(&log_comp_lock);

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || !gmtime_r(&ts.tv_sec, &tm)) {
		snprintf(tsbuf, sizeof(tsbuf), "-");
	} else {
		char date[40];
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(tsbuf, sizeof(tsbuf), "%s.%06ldZ", date, (long)(ts.tv_nsec / 1000));
	}

	lb = (struct lbuf){
		.buf = line,
		.cap = sizeof(line) - 1 /* newline */ - sb.len - STRLEN(LOG_ELLIPSIS),
	};
	lb_puts(&lb, "ts=");
	lb_puts(&lb, tsbuf);
	lb_puts(&lb, " comp=");
	lb_puts(&lb, comp);
	lb_puts(&lb, " level=");
	lb_puts(&lb, level_names[level]);
	lb_puts(&lb, " req=");
	if (!req || !*req)
		req = thread_req;
	if (req && *req)
		lb_put_escaped(&lb, req, strnlen(req, LOG_REQ_MAX), ESC_TOKEN);
	else
		lb_puts(&lb, "-");
	lb_puts(&lb, " msg=\"");
	if (msg)
		lb_put_escaped(&lb, msg, strlen(msg), ESC_QUOTED);
	lb_puts(&lb, "\"");

	if (fields_fmt && *fields_fmt) {
		errno = saved_errno; /* for %m */
		fl = vsnprintf(fields, sizeof(fields), fields_fmt, ap);
		if (fl > 0) {
			size_t n = (size_t)fl < sizeof(fields) ? (size_t)fl : sizeof(fields) - 1;
			lb_puts(&lb, " ");
			lb_put_escaped(&lb, fields, n, ESC_CONTROL);
			if ((size_t)fl >= sizeof(fields))
				lb.truncated = true;
		}
	}

	/* Room for the ellipsis, the suffix and the newline was reserved. */
	lb.cap = sizeof(line);
	if (lb.truncated) {
		lb.truncated = false;
		lb_puts(&lb, LOG_ELLIPSIS);
	}
	lb_put(&lb, suffix, sb.len);
	lb_put(&lb, "\n", 1);

	write_line(line, lb.len);
out:
	errno = saved_errno;
	return ret;
}

int log_emit(enum log_level level, int errnum, const char *req, const char *msg,
	     const char *fields_fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fields_fmt);
	r = log_emitv(level, errnum, req, msg, fields_fmt, ap);
	va_end(ap);
	return r;
}

/* ---- from a signal handler ---- */

static void lb_put_long(struct lbuf *b, long v)
{
	char d[24];
	size_t n = 0;
	unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

	do
		d[sizeof(d) - 1 - n++] = (char)('0' + u % 10);
	while ((u /= 10) && n < sizeof(d) - 1);
	if (v < 0)
		d[sizeof(d) - 1 - n++] = '-';
	lb_put(b, d + sizeof(d) - n, n);
}

static void lb_put_2(struct lbuf *b, long v, char sep)
{
	char d[3] = { (char)('0' + v / 10 % 10), (char)('0' + v % 10), sep };
	lb_put(b, d, sep ? 3 : 2);
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
static void lb_put_time(struct lbuf *b, const struct timespec *ts)
{
	long days = (long)(ts->tv_sec / 86400), sod = (long)(ts->tv_sec % 86400);
	long z = days + 719468, era = z / 146097, doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	long dd = doy - (153 * mp + 2) / 5 + 1, mm = mp < 10 ? mp + 3 : mp - 9, yy = yoe + era * 400 + (mm <= 2);
	long us = ts->tv_nsec / 1000;
	char frac[7];

	lb_put_long(b, yy);
	lb_put(b, "-", 1);
	lb_put_2(b, mm, '-');
	lb_put_2(b, dd, 'T');
	lb_put_2(b, sod / 3600, ':');
	lb_put_2(b, sod / 60 % 60, ':');
	lb_put_2(b, sod % 60, '.');
	for (int i = 5; i >= 0; i--, us /= 10)
		frac[i] = (char)('0' + us % 10);
	frac[6] = 'Z';
	lb_put(b, frac, 7);
}

void log_signal_safe(enum log_level level, const char *msg, const char *k1, const char *s, const char *k2, long v)
{
	int saved_errno = errno;
	char line[512];
	struct lbuf lb = { .buf = line, .cap = sizeof(line) - 1 };
	struct timespec ts;

	if ((int)level < LOG_LEVEL_DEBUG || (int)level > LOG_LEVEL_ERROR)
		level = LOG_LEVEL_ERROR;
	lb_puts(&lb, "ts=");
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		lb_puts(&lb, "-");
	else
		lb_put_time(&lb, &ts);
	lb_puts(&lb, " comp=");
	lb_puts(&lb, log_component[0] ? log_component : "-"); /* set once at start */
	lb_puts(&lb, " level=");
	lb_puts(&lb, level_names[level]);
	lb_puts(&lb, " req=");
	if (thread_req && *thread_req) /* the request this thread was working for */
		lb_put_escaped(&lb, thread_req, strnlen(thread_req, LOG_REQ_MAX), ESC_TOKEN);
	else
		lb_puts(&lb, "-");
	lb_puts(&lb, " msg=\"");
	lb_put_escaped(&lb, msg, strlen(msg), ESC_QUOTED);
	lb_puts(&lb, "\" ");
	lb_puts(&lb, k1);
	lb_puts(&lb, "=");
	if (s && *s)
		lb_put_escaped(&lb, s, strnlen(s, 64), ESC_TOKEN);
	else
		lb_puts(&lb, "?");
	lb_puts(&lb, " ");
	lb_puts(&lb, k2);
	lb_puts(&lb, "=");
	lb_put_long(&lb, v);
	lb.cap = sizeof(line);
	lb_put(&lb, "\n", 1);
	write_line(line, lb.len);
	errno = saved_errno;
}
