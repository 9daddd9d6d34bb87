/* Unit tests for common/log.c. stderr is captured by putting a pipe (or a
 * file, for the concurrency test) on fd 2 around each logging call. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static int saved_stderr = -1;
static int cap_read = -1;

static void capture_start(void)
{
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	saved_stderr = fcntl(2, F_DUPFD_CLOEXEC, 10);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(p[1], 2), 2);
	close(p[1]);
	cap_read = p[0];
}

/* Restore stderr and return everything logged meanwhile (malloc'd). */
static char *capture_end(void)
{
	char *buf = malloc(1 << 17);
	size_t len = 0;
	ssize_t n;

	assert_non_null(buf);
	assert_int_equal(dup2(saved_stderr, 2), 2); /* closes the last write end */
	close(saved_stderr);
	saved_stderr = -1;
	while ((n = read(cap_read, buf + len, (1 << 17) - 1 - len)) > 0)
		len += (size_t)n;
	close(cap_read);
	cap_read = -1;
	buf[len] = '\0';
	return buf;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

static void assert_matches(const char *s, const char *pattern)
{
	regex_t re;
	int r;

	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	r = regexec(&re, s, 0, NULL, 0);
	regfree(&re);
	if (r != 0)
		fail_msg("\"%s\" does not match /%s/", s, pattern);
}

static int reset(void **state)
{
	log_init("testcomp");
	log_set_level(LOG_LEVEL_INFO);
	return 0;
}

#define TS_RE "ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z"

static void test_format(void **state)
{
	char *out;
	int r;

	log_init("imaged");
	capture_start();
	r = log_info("4f2a", "listening", "path=%s n=%d", "/run/criod/imaged.sock", 42);
	out = capture_end();
	assert_int_equal(r, 0);
	assert_matches(out, "^" TS_RE " comp=imaged level=info req=4f2a msg=\"listening\" "
			    "path=/run/criod/imaged\\.sock n=42\n$");
	free(out);

	/* No fields, no request id. */
	capture_start();
	log_warn(NULL, "starting");
	log_error("", "stopping");
	out = capture_end();
	assert_matches(out, "^" TS_RE " comp=imaged level=warn req=- msg=\"starting\"\n"
			    TS_RE " comp=imaged level=error req=- msg=\"stopping\"\n$");
	free(out);
}

static void test_timestamp_is_now(void **state)
{
	char *out;
	struct tm tm;
	time_t before = time(NULL), logged, after;

	capture_start();
	log_info(NULL, "tick");
	out = capture_end();
	after = time(NULL);
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(out, "ts=%Y-%m-%dT%H:%M:%S", &tm));
	logged = timegm(&tm);
	assert_true(logged >= before && logged <= after);
	free(out);
}

static void test_component_sanitized(void **state)
{
	char *out;

	log_init("bad comp\nlevel=error");
	capture_start();
	log_info(NULL, "x");
	out = capture_end();
	assert_matches(out, "^" TS_RE " comp=bad_comp_level_error level=info req=- msg=\"x\"\n$");
	free(out);

	log_init("a-very-long-component-name-that-goes-on-and-on");
	capture_start();
	log_info(NULL, "x");
	out = capture_end();
	assert_non_null(strstr(out, " comp=a-very-long-component-name-that- level=info "));
	free(out);
}

static void test_msg_escaping(void **state)
{
	char *out;

	capture_start();
	log_info(NULL, "say \"hi\" \\ then\nts=forged level=error\r\t\x01\x7f end");
	out = capture_end();
	assert_int_equal(count_char(out, '\n'), 1);
	assert_non_null(strstr(out, " msg=\"say \\\"hi\\\" \\\\ then\\nts=forged level=error\\r\\t\\x01\\x7f end\"\n"));
	free(out);

	/* UTF-8 passes through. */
	capture_start();
	log_info(NULL, "grüße");
	out = capture_end();
	assert_non_null(strstr(out, " msg=\"grüße\"\n"));
	free(out);
}

static void test_field_injection(void **state)
{
	char *out;
	const char *hostile = "pod\nts=2026-01-01T00:00:00.000000Z comp=criod level=error req=- msg=\"pwned\"";

	capture_start();
	log_info("r1", "created", "name=%s tab=%s cr=%s bell=%s", hostile, "a\tb", "a\rb", "a\x07z");
	out = capture_end();
	assert_int_equal(count_char(out, '\n'), 1);
	assert_non_null(strstr(out, " name=pod\\nts=2026-01-01T00:00:00.000000Z comp=criod level=error "
				    "req=- msg=\"pwned\" tab=a\\tb cr=a\\rb bell=a\\x07z\n"));
	free(out);
}

static void test_req_escaping(void **state)
{
	char *out;

	capture_start();
	log_info("id with space=\"x\"\n", "m");
	out = capture_end();
	assert_int_equal(count_char(out, '\n'), 1);
	assert_non_null(strstr(out, " req=id\\x20with\\x20space\\x3d\\\"x\\\"\\n msg=\"m\"\n"));
	free(out);
}

static void test_level_filter(void **state)
{
	char *out;

	assert_int_equal(log_get_level(), LOG_LEVEL_INFO); /* the default */

	capture_start();
	log_debug(NULL, "hidden-debug");
	log_info(NULL, "shown-info");
	out = capture_end();
	assert_null(strstr(out, "hidden-debug"));
	assert_non_null(strstr(out, "shown-info"));
	free(out);

	log_set_level(LOG_LEVEL_WARN);
	assert_int_equal(log_get_level(), LOG_LEVEL_WARN);
	capture_start();
	log_debug(NULL, "d");
	log_info(NULL, "i");
	assert_int_equal(log_warn_errno(-EIO, NULL, "w"), -EIO); /* the result does not depend on the filter */
	assert_int_equal(log_emit(LOG_LEVEL_INFO, EPERM, NULL, "filtered", ""), -EPERM);
	log_error(NULL, "e");
	out = capture_end();
	assert_int_equal(count_char(out, '\n'), 2);
	assert_non_null(strstr(out, " level=warn req=- msg=\"w\""));
	assert_non_null(strstr(out, " level=error req=- msg=\"e\""));
	free(out);

	log_set_level(LOG_LEVEL_DEBUG);
	capture_start();
	log_debug(NULL, "d");
	out = capture_end();
	assert_non_null(strstr(out, " level=debug req=- msg=\"d\"\n"));
	free(out);

	log_set_level(LOG_LEVEL_ERROR);
	capture_start();
	log_warn(NULL, "w");
	out = capture_end();
	assert_string_equal(out, "");
	free(out);
}

static void test_level_from_string(void **state)
{
	assert_int_equal(log_level_from_string("debug"), LOG_LEVEL_DEBUG);
	assert_int_equal(log_level_from_string("info"), LOG_LEVEL_INFO);
	assert_int_equal(log_level_from_string("warn"), LOG_LEVEL_WARN);
	assert_int_equal(log_level_from_string("error"), LOG_LEVEL_ERROR);
	assert_int_equal(log_level_from_string("INFO"), -EINVAL);
	assert_int_equal(log_level_from_string("warning"), -EINVAL);
	assert_int_equal(log_level_from_string(""), -EINVAL);
	assert_int_equal(log_level_from_string(NULL), -EINVAL);
}

static void test_errno_fields(void **state)
{
	char *out;

	capture_start();
	assert_int_equal(log_error_errno(-ENOENT, "abc", "open failed", "path=%s", "/x"), -ENOENT);
	assert_int_equal(log_warn_errno(EACCES, NULL, "denied"), -EACCES);
	assert_int_equal(log_emit(LOG_LEVEL_INFO, 0, NULL, "fine", "k=v"), 0);
	out = capture_end();
	assert_matches(out, "^" TS_RE " comp=testcomp level=error req=abc msg=\"open failed\" path=/x "
			    "err=\"No such file or directory\" errno=2\n"
			    TS_RE " comp=testcomp level=warn req=- msg=\"denied\" err=\"Permission denied\" errno=13\n"
			    TS_RE " comp=testcomp level=info req=- msg=\"fine\" k=v\n$");
	free(out);

	/* An errno strerror does not know still logs the number. */
	capture_start();
	assert_int_equal(log_error_errno(-9999, NULL, "odd"), -9999);
	out = capture_end();
	assert_non_null(strstr(out, " msg=\"odd\" err=\"Unknown error 9999\" errno=9999\n"));
	free(out);
}

static void test_errno_preserved(void **state)
{
	char *out;

	capture_start();
	errno = EXDEV;
	log_info(NULL, "m", "x=%d", 1);
	assert_int_equal(errno, EXDEV);
	log_debug(NULL, "filtered");
	assert_int_equal(errno, EXDEV);
	out = capture_end();
	free(out);
}

static void test_truncation(void **state)
{
	char *big = malloc(10001);
	char *out;
	size_t len;

	assert_non_null(big);
	memset(big, 'a', 10000);
	big[10000] = '\0';

	capture_start();
	log_error_errno(-ENOSPC, "r", "huge", "data=%s", big);
	out = capture_end();
	len = strlen(out);
	assert_true(len <= 4096);
	assert_true(len > 4000);
	assert_int_equal(count_char(out, '\n'), 1);
	/* Cut with "...", and the errno fields survive the cut. */
	assert_matches(out, "^" TS_RE " comp=testcomp level=error req=r msg=\"huge\" data=a+\\.\\.\\. "
			    "err=\"No space left on device\" errno=28\n$");
	free(out);

	/* A long message: the escape sequences are never split. */
	memset(big, '\n', 10000);
	capture_start();
	log_info(NULL, big);
	out = capture_end();
	len = strlen(out);
	assert_true(len <= 4096);
	assert_int_equal(count_char(out, '\n'), 1);
	assert_matches(out, "^" TS_RE " comp=testcomp level=info req=- msg=\"(\\\\n)+\\.\\.\\.\n$");
	free(out);

	/* Many short escaped fields. */
	memset(big, '\x01', 10000);
	capture_start();
	log_info(NULL, "m", "f=%s", big);
	out = capture_end();
	assert_true(strlen(out) <= 4096);
	assert_matches(out, " f=(\\\\x01)+\\.\\.\\.\n$");
	free(out);
	free(big);
}

/* ---- concurrency: lines never interleave ---- */

#define THREADS 8
#define LINES 300

static void *log_thread(void *arg)
{
	long id = (long)(intptr_t)arg;
	char pad[600];

	memset(pad, 'a' + (char)id, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < LINES; i++)
		log_info(NULL, "concurrent", "thread=%ld i=%d pad=%s end=1", id, i, pad);
	return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
	char tmpl[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(tmpl);
	pthread_t th[THREADS];
	int saved;
	FILE *f;
	char line[8192];
	int count = 0;

	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(fcntl(fd, F_SETFL, O_APPEND), 0);
	saved = dup(2);
	assert_int_equal(dup2(fd, 2), 2);
	for (long i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, log_thread, (void *)(intptr_t)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	f = fdopen(fd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		long id;
		int i;
		char pad[700];
		int n = 0;

		assert_matches(line, "^" TS_RE " comp=testcomp level=info req=- msg=\"concurrent\" "
				     "thread=[0-9] i=[0-9]+ pad=([a-z])\\1{598} end=1\n$");
		assert_int_equal(sscanf(strstr(line, "thread="), "thread=%ld i=%d pad=%699s end=1%n", &id, &i, pad, &n), 3);
		assert_int_equal(pad[0], 'a' + id);
		count++;
	}
	fclose(f);
	assert_int_equal(count, THREADS * LINES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_format, reset),
		cmocka_unit_test_setup(test_timestamp_is_now, reset),
		cmocka_unit_test_setup(test_component_sanitized, reset),
		cmocka_unit_test_setup(test_msg_escaping, reset),
		cmocka_unit_test_setup(test_field_injection, reset),
		cmocka_unit_test_setup(test_req_escaping, reset),
		cmocka_unit_test_setup(test_level_filter, reset),
		cmocka_unit_test_setup(test_level_from_string, reset),
		cmocka_unit_test_setup(test_errno_fields, reset),
		cmocka_unit_test_setup(test_errno_preserved, reset),
		cmocka_unit_test_setup(test_truncation, reset),
		cmocka_unit_test_setup(test_threads_do_not_interleave, reset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
