/* The container log writer: kubelet's CRI log format.
 *
 * Every line of the container's output becomes one record
 *
 *   2026-11-23T08:00:00.123456789Z stdout F hello world\n
 *
 * timestamp (RFC 3339, UTC, always nine fractional digits), stream name
 * ("stdout" or "stderr"; with a terminal both are "stdout"), a tag, one
 * space, the content and a newline:
 *   F  the content ends a line: the container wrote a newline after it (the
 *      newline itself is not part of the content; a "\r" just before it is
 *      dropped too, so terminal output reads like pipe output);
 *   P  a partial line: CRILOG_MAX_LINE bytes arrived without a newline, or
 *      the stream ended (EOF) with no newline after the last bytes. The
 *      line goes on in the next record(s) of the same stream.
 * Any other byte, "\r" in the middle of a line included, is written as is.
 * Each record is written with one writev(2) on a file opened O_APPEND, so
 * records of two streams never interleave inside a line.
 *
 * The code here is pure apart from that write: callers feed bytes and a
 * time, so the splitting is unit tested (tests/unit/test_crilog.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRILOG_MAX_LINE (16u << 10) /* bytes buffered per stream before a P record */
#define CRILOG_TS_LEN 30            /* "2026-11-23T08:00:00.123456789Z" */

/* One output stream of the container (stdout, stderr or the terminal). The
 * line buffer is allocated when the first byte arrives and freed at EOF. */
struct crilog_stream {
	const char *name; /* "stdout" or "stderr" */
	char *buf;
	size_t len;
	size_t max_line; /* CRILOG_MAX_LINE unless a test sets another */
};

/* Where the records go. fd < 0 drops them (e.g. no log file could be
 * opened); write errors are counted, never fatal. */
struct crilog {
	int fd;
	uint64_t write_errors;
	int last_errno;
};

/* Format ns since the epoch as RFC 3339 UTC with nine fractional digits into
 * buf (at least CRILOG_TS_LEN + 1 bytes); returns the length (30) or -EINVAL. */
int crilog_format_timestamp(int64_t ns, char *buf, size_t size);

/* Write one record (header, content, newline) with a single writev.
 * Returns 0 or negative errno (also counted in w). */
int crilog_write_record(struct crilog *w, int64_t ns, const char *stream, bool partial, const char *data,
			size_t len);

void crilog_stream_init(struct crilog_stream *s, const char *name);
void crilog_stream_free(struct crilog_stream *s);

/* Where to read the next bytes of s into (reads go straight into the line
 * buffer); *avail is at least 1. NULL when out of memory. */
char *crilog_stream_space(struct crilog_stream *s, size_t *avail);
/* n bytes were read into the space: write every complete line (F), and a P
 * record when the buffer is full without a newline. Returns 0 or the first
 * write error (the bytes are consumed either way). */
int crilog_stream_commit(struct crilog *w, struct crilog_stream *s, size_t n, int64_t now_ns);
/* Copy data in and commit it, in buffer-sized pieces (for tests and callers
 * that already hold the bytes). */
int crilog_stream_feed(struct crilog *w, struct crilog_stream *s, const void *data, size_t len, int64_t now_ns);
/* The stream ended: a pending partial line becomes a P record; the buffer
 * is freed. */
int crilog_stream_flush(struct crilog *w, struct crilog_stream *s, int64_t now_ns);
