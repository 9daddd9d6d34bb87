/* Unit tests for conmon/conmon_crilog.c: the CRI log format. Records are written to
 * a memfd opened O_APPEND and read back. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "conmon_crilog.h"

#define T0 1795420800123456789LL /* 2026-11-23T08:00:00.123456789Z */
#define TS0 "2026-11-23T08:00:00.123456789Z"

static struct crilog w;

/* Feed a string literal (without its NUL) to stream s. */
#define FEED(lit) crilog_stream_feed(&w, &s, lit, sizeof(lit) - 1, T0)

static int setup(void **state)
{
	w.fd = memfd_create("crilog", MFD_CLOEXEC);
	assert_true(w.fd >= 0);
	assert_int_equal(fcntl(w.fd, F_SETFL, O_APPEND), 0);
	w.write_errors = 0;
	return 0;
}

static int teardown(void **state)
{
	close(w.fd);
	w.fd = -1;
	return 0;
}

/* Everything written so far (malloc'd, NUL-terminated). */
static char *contents(size_t *len_out)
{
	off_t end = lseek(w.fd, 0, SEEK_END);
	assert_true(end >= 0);
	char *buf = malloc((size_t)end + 1);
	assert_non_null(buf);
	assert_int_equal(pread(w.fd, buf, (size_t)end, 0), end);
	buf[end] = '\0';
	if (len_out)
		*len_out = (size_t)end;
	return buf;
}

static void expect_contents(const char *want)
{
	char *got = contents(NULL);
	assert_string_equal(got, want);
	free(got);
}

static void test_timestamp(void **state)
{
	char buf[CRILOG_TS_LEN + 1];
	assert_int_equal(crilog_format_timestamp(0, buf, sizeof(buf)), CRILOG_TS_LEN);
	assert_string_equal(buf, "1970-01-01T00:00:00.000000000Z");
	assert_int_equal(crilog_format_timestamp(T0, buf, sizeof(buf)), CRILOG_TS_LEN);
	assert_string_equal(buf, TS0);
	/* Leading zeros of the fraction stay; the width never changes. */
	assert_int_equal(crilog_format_timestamp(951782400000000007LL, buf, sizeof(buf)), CRILOG_TS_LEN);
	assert_string_equal(buf, "2000-02-29T00:00:00.000000007Z");
	assert_int_equal(crilog_format_timestamp(1795420800999999999LL, buf, sizeof(buf)), CRILOG_TS_LEN);
	assert_string_equal(buf, "2026-11-23T08:00:00.999999999Z");
	assert_int_equal(crilog_format_timestamp(INT64_MAX, buf, sizeof(buf)), CRILOG_TS_LEN);
	assert_string_equal(buf, "2262-04-11T23:47:16.854775807Z");
	/* Too small a buffer, negative times. */
	assert_int_equal(crilog_format_timestamp(T0, buf, CRILOG_TS_LEN), -EINVAL);
	assert_int_equal(crilog_format_timestamp(-1, buf, sizeof(buf)), -EINVAL);
}

static void test_record(void **state)
{
	assert_int_equal(crilog_write_record(&w, T0, "stdout", false, "hello", 5), 0);
	assert_int_equal(crilog_write_record(&w, T0, "stderr", true, "part", 4), 0);
	assert_int_equal(crilog_write_record(&w, T0, "stdout", false, "", 0), 0);
	expect_contents(TS0 " stdout F hello\n" TS0 " stderr P part\n" TS0 " stdout F \n");
}

static void test_lines_across_reads(void **state)
{
	struct crilog_stream s;
	crilog_stream_init(&s, "stdout");
	assert_int_equal(FEED("hel"), 0);
	expect_contents(""); /* nothing until the newline */
	assert_int_equal(FEED("lo\nwor"), 0);
	assert_int_equal(FEED("ld\nthree\nfour\n"), 0);
	expect_contents(TS0 " stdout F hello\n" TS0 " stdout F world\n" TS0 " stdout F three\n" TS0
			    " stdout F four\n");
	assert_int_equal(s.len, 0);
	crilog_stream_free(&s);
}

static void test_space_commit(void **state)
{
	/* Reads go straight into the buffer. */
	struct crilog_stream s;
	size_t avail;
	crilog_stream_init(&s, "stderr");
	char *p = crilog_stream_space(&s, &avail);
	assert_non_null(p);
	assert_int_equal(avail, CRILOG_MAX_LINE);
	memcpy(p, "oops\nhalf", 9);
	assert_int_equal(crilog_stream_commit(&w, &s, 9, T0), 0);
	p = crilog_stream_space(&s, &avail);
	assert_int_equal(avail, CRILOG_MAX_LINE - 4);
	memcpy(p, "way\n", 4);
	assert_int_equal(crilog_stream_commit(&w, &s, 4, T0), 0);
	expect_contents(TS0 " stderr F oops\n" TS0 " stderr F halfway\n");
	/* More than the space is refused. */
	p = crilog_stream_space(&s, &avail);
	assert_int_equal(crilog_stream_commit(&w, &s, avail + 1, T0), -EINVAL);
	crilog_stream_free(&s);
}

static void test_empty_lines(void **state)
{
	struct crilog_stream s;
	crilog_stream_init(&s, "stdout");
	assert_int_equal(FEED("\n\na\n\n"), 0);
	expect_contents(TS0 " stdout F \n" TS0 " stdout F \n" TS0 " stdout F a\n" TS0 " stdout F \n");
	crilog_stream_free(&s);
}

static void test_cr(void **state)
{
	struct crilog_stream s;
	crilog_stream_init(&s, "stdout");
	/* A terminal's "\r\n" ends a line like "\n"; other "\r" are content. */
	assert_int_equal(FEED("tty\r\n\r\na\rb\nx\r\r\n"), 0);
	/* "\r" and "\n" in different reads. */
	assert_int_equal(FEED("split\r"), 0);
	assert_int_equal(FEED("\n"), 0);
	expect_contents(TS0 " stdout F tty\n" TS0 " stdout F \n" TS0 " stdout F a\rb\n" TS0 " stdout F x\r\n" TS0
			    " stdout F split\n");
	/* A "\r" at the end of a partial line stays. */
	assert_int_equal(FEED("end\r"), 0);
	assert_int_equal(crilog_stream_flush(&w, &s, T0), 0);
	char *got = contents(NULL);
	assert_non_null(strstr(got, TS0 " stdout P end\r\n"));
	free(got);
}

static void test_long_line(void **state)
{
	struct crilog_stream s;
	size_t n = CRILOG_MAX_LINE * 2 + 100;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\n';
	crilog_stream_init(&s, "stdout");
	/* In odd-sized pieces, as reads would deliver it. */
	for (size_t off = 0; off <= n;) {
		size_t k = n + 1 - off < 777 ? n + 1 - off : 777;
		assert_int_equal(crilog_stream_feed(&w, &s, big + off, k, T0), 0);
		off += k;
	}
	size_t len;
	char *got = contents(&len);
	size_t hl = strlen(TS0 " stdout P ");
	assert_int_equal(len, 3 * hl + n + 3);
	/* P (16 KiB), P (16 KiB), F (the last 100 bytes). */
	assert_memory_equal(got, TS0 " stdout P ", hl);
	assert_int_equal(got[hl + CRILOG_MAX_LINE], '\n');
	const char *second = got + hl + CRILOG_MAX_LINE + 1;
	assert_memory_equal(second, TS0 " stdout P ", hl);
	const char *third = second + hl + CRILOG_MAX_LINE + 1;
	assert_memory_equal(third, TS0 " stdout F ", hl);
	assert_int_equal(strlen(third + hl), 101);
	for (size_t i = 0; i < 100; i++)
		assert_int_equal(third[hl + i], 'x');
	free(got);
	free(big);
	crilog_stream_free(&s);
}

static void test_exactly_full_then_newline(void **state)
{
	/* A line of exactly the buffer size: P with all of it, then an empty F. */
	struct crilog_stream s;
	crilog_stream_init(&s, "stdout");
	s.max_line = 4;
	assert_int_equal(FEED("abcd\nef\nghijklm"), 0);
	expect_contents(TS0 " stdout P abcd\n" TS0 " stdout F \n" TS0 " stdout F ef\n" TS0 " stdout P ghij\n");
	assert_int_equal(crilog_stream_flush(&w, &s, T0), 0);
	expect_contents(TS0 " stdout P abcd\n" TS0 " stdout F \n" TS0 " stdout F ef\n" TS0 " stdout P ghij\n" TS0
			    " stdout P klm\n");
	assert_null(s.buf);
}

static void test_flush(void **state)
{
	struct crilog_stream s;
	crilog_stream_init(&s, "stderr");
	/* Nothing pending: nothing written, even with no buffer at all. */
	assert_int_equal(crilog_stream_flush(&w, &s, T0), 0);
	assert_int_equal(FEED("done\n"), 0);
	assert_int_equal(crilog_stream_flush(&w, &s, T0), 0);
	assert_int_equal(FEED("no newline"), 0);
	assert_int_equal(crilog_stream_flush(&w, &s, T0), 0);
	expect_contents(TS0 " stderr F done\n" TS0 " stderr P no newline\n");
}

static void test_binary(void **state)
{
	struct crilog_stream s;
	crilog_stream_init(&s, "stdout");
	assert_int_equal(FEED("a\0b\x1b[0m\n"), 0);
	size_t len;
	char *got = contents(&len);
	const char want[] = TS0 " stdout F a\0b\x1b[0m\n";
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(got, want, len);
	free(got);
	crilog_stream_free(&s);
}

static void test_write_errors(void **state)
{
	struct crilog bad = {.fd = -1};
	struct crilog_stream s;
	crilog_stream_init(&s, "stdout");
	/* No file: records are dropped quietly. */
	assert_int_equal(crilog_stream_feed(&bad, &s, "x\n", 2, T0), 0);
	/* A broken fd: counted, reported, the bytes consumed. */
	bad.fd = 1000;
	assert_int_equal(crilog_stream_feed(&bad, &s, "y\nz\n", 4, T0), -EBADF);
	assert_int_equal(bad.write_errors, 2);
	assert_int_equal(bad.last_errno, EBADF);
	assert_int_equal(s.len, 0);
	crilog_stream_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timestamp),
		cmocka_unit_test_setup_teardown(test_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lines_across_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_space_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exactly_full_then_newline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
		cmocka_unit_test(test_write_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
