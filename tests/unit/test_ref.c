/* Unit tests for imaged/ref.c: Docker-style image reference parsing and
 * normalisation, checked against a table of what docker/distribution's
 * ParseNormalizedNamed accepts and refuses, plus hostile input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "ref.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DIG "sha256:" D64

struct good {
	const char *in;
	const char *domain, *path, *tag, *digest;
	const char *full; /* ref_tagged or, without a tag, ref_digested(r, r->digest) */
};

static const struct good good[] = {
	/* Docker Hub official images */
	{ "busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	{ "busybox:1.36", "docker.io", "library/busybox", "1.36", NULL, "docker.io/library/busybox:1.36" },
	{ "docker.io/busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	{ "docker.io/library/busybox", "docker.io", "library/busybox", "latest", NULL,
	  "docker.io/library/busybox:latest" },
	{ "index.docker.io/busybox", "docker.io", "library/busybox", "latest", NULL,
	  "docker.io/library/busybox:latest" },
	{ "index.docker.io/library/busybox:musl", "docker.io", "library/busybox", "musl", NULL,
	  "docker.io/library/busybox:musl" },
	{ "index.docker.io/user/app", "docker.io", "user/app", "latest", NULL, "docker.io/user/app:latest" },
	{ "library/busybox", "docker.io", "library/busybox", "latest", NULL, "docker.io/library/busybox:latest" },
	/* Docker Hub user images and deeper paths */
	{ "user/app:1.0", "docker.io", "user/app", "1.0", NULL, "docker.io/user/app:1.0" },
	{ "docker.io/user/app", "docker.io", "user/app", "latest", NULL, "docker.io/user/app:latest" },
	{ "a/b/c/d", "docker.io", "a/b/c/d", "latest", NULL, "docker.io/a/b/c/d:latest" },
	/* Other registries: no "library/" */
	{ "registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", NULL, "registry.k8s.io/pause:3.9" },
	{ "quay.io/coreos/etcd:v3.5.9", "quay.io", "coreos/etcd", "v3.5.9", NULL, "quay.io/coreos/etcd:v3.5.9" },
	{ "gcr.io/google-containers/busybox", "gcr.io", "google-containers/busybox", "latest", NULL,
	  "gcr.io/google-containers/busybox:latest" },
	{ "ghcr.io/a/b/c:x", "ghcr.io", "a/b/c", "x", NULL, "ghcr.io/a/b/c:x" },
	/* localhost and ports */
	{ "localhost/app", "localhost", "app", "latest", NULL, "localhost/app:latest" },
	{ "localhost:5000/app", "localhost:5000", "app", "latest", NULL, "localhost:5000/app:latest" },
	{ "localhost:5000/app:v1", "localhost:5000", "app", "v1", NULL, "localhost:5000/app:v1" },
	{ "myregistry:5000/team/app:2", "myregistry:5000", "team/app", "2", NULL, "myregistry:5000/team/app:2" },
	{ "127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", NULL, "127.0.0.1:5000/app:latest" },
	{ "10.0.0.1/app", "10.0.0.1", "app", "latest", NULL, "10.0.0.1/app:latest" },
	{ "example.com:65535/app", "example.com:65535", "app", "latest", NULL, "example.com:65535/app:latest" },
	{ "my-registry.example.com/app", "my-registry.example.com", "app", "latest", NULL,
	  "my-registry.example.com/app:latest" },
	{ "a23456789012345678901234567890123456789012345678901234567890123.com/app",
	  "a23456789012345678901234567890123456789012345678901234567890123.com", "app", "latest", NULL,
	  "a23456789012345678901234567890123456789012345678901234567890123.com/app:latest" },
	/* IPv6 */
	{ "[::1]:5000/app", "[::1]:5000", "app", "latest", NULL, "[::1]:5000/app:latest" },
	{ "[::1]/app:t", "[::1]", "app", "t", NULL, "[::1]/app:t" },
	{ "[2001:db8::1]:443/ns/app", "[2001:db8::1]:443", "ns/app", "latest", NULL,
	  "[2001:db8::1]:443/ns/app:latest" },
	{ "[2001:DB8::A]:5000/app", "[2001:DB8::A]:5000", "app", "latest", NULL, "[2001:DB8::A]:5000/app:latest" },
	/* An uppercase first component is a domain (Docker's rule) */
	{ "Example/app", "Example", "app", "latest", NULL, "Example/app:latest" },
	{ "EXAMPLE.COM/app", "EXAMPLE.COM", "app", "latest", NULL, "EXAMPLE.COM/app:latest" },
	/* A lone first component is never a domain */
	{ "example.com", "docker.io", "library/example.com", "latest", NULL, "docker.io/library/example.com:latest" },
	{ "localhost", "docker.io", "library/localhost", "latest", NULL, "docker.io/library/localhost:latest" },
	{ "localhost:5000", "docker.io", "library/localhost", "5000", NULL, "docker.io/library/localhost:5000" },
	/* Separators in path components */
	{ "a.b/c", "a.b", "c", "latest", NULL, "a.b/c:latest" },
	{ "foo_bar/x", "docker.io", "foo_bar/x", "latest", NULL, "docker.io/foo_bar/x:latest" },
	{ "foo__bar", "docker.io", "library/foo__bar", "latest", NULL, "docker.io/library/foo__bar:latest" },
	{ "foo-bar", "docker.io", "library/foo-bar", "latest", NULL, "docker.io/library/foo-bar:latest" },
	{ "foo---bar", "docker.io", "library/foo---bar", "latest", NULL, "docker.io/library/foo---bar:latest" },
	{ "foo.bar.baz/a", "foo.bar.baz", "a", "latest", NULL, "foo.bar.baz/a:latest" },
	{ "x/foo.bar", "docker.io", "x/foo.bar", "latest", NULL, "docker.io/x/foo.bar:latest" },
	{ "0", "docker.io", "library/0", "latest", NULL, "docker.io/library/0:latest" },
	/* Tags */
	{ "app:_", "docker.io", "library/app", "_", NULL, "docker.io/library/app:_" },
	{ "app:A-Z.a_z-0", "docker.io", "library/app", "A-Z.a_z-0", NULL, "docker.io/library/app:A-Z.a_z-0" },
	/* Digests */
	{ "registry.k8s.io/pause@" DIG, "registry.k8s.io", "pause", NULL, DIG, "registry.k8s.io/pause@" DIG },
	{ "busybox@" DIG, "docker.io", "library/busybox", NULL, DIG, "docker.io/library/busybox@" DIG },
	{ "quay.io/x/y:v1@" DIG, "quay.io", "x/y", "v1", DIG, "quay.io/x/y:v1" },
	{ "localhost:5000/app:v1@" DIG, "localhost:5000", "app", "v1", DIG, "localhost:5000/app:v1" },
	{ "[::1]:5000/app@" DIG, "[::1]:5000", "app", NULL, DIG, "[::1]:5000/app@" DIG },
	/* A 64-hex path component with something else around it is a name */
	{ "x/" D64, "docker.io", "x/" D64, "latest", NULL, "docker.io/x/" D64 ":latest" },
	{ D64 ":tag", "docker.io", "library/" D64, "tag", NULL, "docker.io/library/" D64 ":tag" },
};

struct bad {
	const char *in;
	const char *msg; /* the exact message */
};

static const struct bad bad[] = {
	{ "", "empty image reference" },
	{ D64, "invalid image reference \"" D64 "\": a 64-character hex string is an image id, not a name" },
	/* uppercase in the repository */
	{ "Busybox", "invalid repository name \"Busybox\": must be lowercase" },
	{ "docker.io/Library/busybox", "invalid repository name \"Library/busybox\": must be lowercase" },
	{ "user/App:1", "invalid repository name \"user/App\": must be lowercase" },
	{ "quay.io/x/yY", "invalid repository name \"x/yY\": must be lowercase" },
	/* path components */
	{ "a//b", "invalid repository name \"a//b\": empty path component" },
	{ "quay.io/x/", "invalid repository name \"x/\": empty path component" },
	{ "/busybox", "invalid repository name \"/busybox\": empty path component" },
	{ "-busybox", "invalid repository name component \"-busybox\"" },
	{ "busybox-", "invalid repository name component \"busybox-\"" },
	{ "busy..box", "invalid repository name component \"busy..box\"" },
	{ "busy___box", "invalid repository name component \"busy___box\"" },
	{ "busy._box", "invalid repository name component \"busy._box\"" },
	{ "_busybox", "invalid repository name component \"_busybox\"" },
	{ "quay.io/a/b c", "invalid repository name component \"b c\"" },
	{ "quay.io/a/b\x01", "invalid repository name component \"b\\x01\"" },
	{ "quay.io/\xc3\xa4", "invalid repository name component \"\\xc3\\xa4\"" },
	{ "quay.io/a/.b", "invalid repository name component \".b\"" },
	/* domains */
	{ "-bad.com/app", "invalid registry host \"-bad.com\"" },
	{ "bad-.com/app", "invalid registry host \"bad-.com\"" },
	{ "bad..com/app", "invalid registry host \"bad..com\"" },
	{ ".com/app", "invalid registry host \".com\"" },
	{ "bad_host.com/app", "invalid registry host \"bad_host.com\"" },
	{ "localhost:/app", "invalid registry host \"localhost:\"" },
	{ "localhost:abc/app", "invalid registry host \"localhost:abc\"" },
	{ "localhost:0/app", "invalid registry host \"localhost:0\"" },
	{ "localhost:65536/app", "invalid registry host \"localhost:65536\"" },
	{ "localhost:123456/app", "invalid registry host \"localhost:123456\"" },
	{ "host:1:2/app", "invalid registry host \"host:1:2\"" },
	{ "[::1/app", "invalid registry host \"[::1\"" },
	{ "[]:5000/app", "invalid registry host \"[]:5000\"" },
	{ "[::g]:5000/app", "invalid registry host \"[::g]:5000\"" },
	{ "[1:2]:5000/app", "invalid registry host \"[1:2]:5000\"" },
	{ "[::ffff:1.2.3.4]/app", "invalid registry host \"[::ffff:1.2.3.4]\"" },
	{ "[fe80::1%eth0]/app", "invalid registry host \"[fe80::1%eth0]\"" },
	{ "[::1]x/app", "invalid registry host \"[::1]x\"" },
	{ "::1/app", "invalid registry host \"::1\"" },
	{ "a234567890123456789012345678901234567890123456789012345678901234.com/app",
	  "invalid registry host \"a234567890123456789012345678901234567890123456789012345678901234...\"" },
	/* tags */
	{ "busybox:", "invalid tag \"\"" },
	{ "busybox:.x", "invalid tag \".x\"" },
	{ "busybox:-x", "invalid tag \"-x\"" },
	{ "busybox:a+b", "invalid tag \"a+b\"" },
	{ "busybox:a:b", "invalid tag \"a:b\"" },
	/* a ':' before the last '/' is no tag */
	{ "quay.io/x:tag/y", "invalid repository name component \"x:tag\"" },
	/* digests */
	{ "busybox@", "invalid digest \"\"" },
	{ "busybox@sha256:abc", "invalid digest \"sha256:abc\"" },
	{ "busybox@sha256:" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
	  "invalid digest \"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef012345678...\"" },
	{ "busybox@sha512:" D64 D64, "unsupported digest \"sha512:0123456789abcdef0123456789abcdef0123456789abcdef012345678...\" (only sha256 is supported)" },
	{ "busybox@" D64, "invalid digest \"" D64 "\"" },
	{ "busybox@" DIG "@" DIG, "invalid digest \"sha256:0123456789abcdef0123456789abcdef0123456789abcdef012345678...\"" },
	{ "busybox@" DIG ":tag", "invalid digest \"sha256:0123456789abcdef0123456789abcdef0123456789abcdef012345678...\"" },
	/* no name */
	{ ":tag", "invalid image reference \":tag\": no repository name" },
	{ "@" DIG, "invalid image reference \"@sha256:0123456789abcdef0123456789abcdef0123456789abcdef01234567...\": no repository name" },
	{ "quay.io/", "invalid image reference \"quay.io/\": no repository name" },
	{ "quay.io/:tag", "invalid image reference \"quay.io/:tag\": no repository name" },
};

static void check_good(const struct good *g)
{
	struct image_ref r;
	char err[256] = "unset";
	int ret = ref_parse(g->in, &r, err, sizeof(err));
	_cleanup_free_ char *repo = NULL, *full = NULL;
	_cleanup_free_ char *expect_repo = NULL;

	if (ret != 0)
		fail_msg("\"%s\": unexpected error %d: %s", g->in, ret, err);
	assert_string_equal(err, "");
	assert_string_equal(r.domain, g->domain);
	assert_string_equal(r.path, g->path);
	if (g->tag)
		assert_string_equal(r.tag, g->tag);
	else
		assert_null(r.tag);
	if (g->digest)
		assert_string_equal(r.digest, g->digest);
	else
		assert_null(r.digest);

	repo = ref_repository(&r);
	assert_true(asprintf(&expect_repo, "%s/%s", g->domain, g->path) > 0);
	assert_string_equal(repo, expect_repo);
	if (r.tag) {
		full = ref_tagged(&r);
	} else {
		assert_null(ref_tagged(&r));
		full = ref_digested(&r, r.digest);
	}
	assert_non_null(full);
	assert_string_equal(full, g->full);

	/* The normal form parses to itself. */
	{
		struct image_ref again;
		_cleanup_free_ char *s = NULL;
		assert_true(asprintf(&s, "%s%s%s%s%s", repo, r.tag ? ":" : "", r.tag ? r.tag : "",
				     r.digest ? "@" : "", r.digest ? r.digest : "") > 0);
		assert_int_equal(ref_parse(s, &again, err, sizeof(err)), 0);
		assert_string_equal(again.domain, r.domain);
		assert_string_equal(again.path, r.path);
		ref_free(&again);
	}
	ref_free(&r);
	assert_null(r.domain);
	ref_free(&r); /* twice is fine */
}

static void check_bad(const char *in, const char *msg)
{
	struct image_ref r;
	char err[512] = "";
	int ret = ref_parse(in, &r, err, sizeof(err));

	if (ret != -EINVAL)
		fail_msg("\"%s\": expected -EINVAL, got %d (%s)", in, ret, ret == 0 ? r.path : err);
	if (strcmp(err, msg) != 0)
		fail_msg("\"%s\":\n  got:      %s\n  expected: %s", in, err, msg);
	/* Nothing to free, and free is harmless. */
	assert_null(r.domain);
	assert_null(r.path);
	assert_null(r.tag);
	assert_null(r.digest);
	ref_free(&r);
}

static void test_valid_references(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		check_good(&good[i]);
}

static void test_invalid_references(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		check_bad(bad[i].in, bad[i].msg);
}

static void test_lengths(void **state)
{
	char buf[2048], expect[512];
	size_t n;

	/* "docker.io/" + "library/" + 237 = 255: the longest Docker Hub official name. */
	memset(buf, 'a', 237);
	buf[237] = '\0';
	{
		struct image_ref r;
		char err[256];
		assert_int_equal(ref_parse(buf, &r, err, sizeof(err)), 0);
		assert_int_equal(strlen(r.domain) + 1 + strlen(r.path), 255);
		ref_free(&r);
	}
	buf[237] = 'a';
	buf[238] = '\0';
	snprintf(expect, sizeof(expect), "repository name \"docker.io/library/%.46s...\" is longer than 255 characters",
		 buf);
	check_bad(buf, expect);

	/* Another registry: "quay.io/" + 247 = 255. */
	n = (size_t)snprintf(buf, sizeof(buf), "quay.io/");
	memset(buf + n, 'b', 247);
	buf[n + 247] = '\0';
	{
		struct image_ref r;
		char err[256];
		assert_int_equal(ref_parse(buf, &r, err, sizeof(err)), 0);
		assert_int_equal(strlen(r.path), 247);
		ref_free(&r);
	}
	strcat(buf, "b");
	check_bad(buf, "repository name \"quay.io/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...\" is longer than 255 characters");

	/* Tags: 128 characters at most. */
	n = (size_t)snprintf(buf, sizeof(buf), "busybox:");
	memset(buf + n, 't', 128);
	buf[n + 128] = '\0';
	{
		struct image_ref r;
		char err[256];
		assert_int_equal(ref_parse(buf, &r, err, sizeof(err)), 0);
		assert_int_equal(strlen(r.tag), 128);
		ref_free(&r);
	}
	strcat(buf, "t");
	check_bad(buf, "invalid tag \"tttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt...\"");

	/* Absurdly long input is refused before it is looked at. */
	memset(buf, 'a', 1025);
	buf[1025] = '\0';
	check_bad(buf, "image reference \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is too long (max 1024 bytes)");
}

static void test_error_buffer(void **state)
{
	struct image_ref r;
	char small[8];

	/* A short or absent error buffer is fine. */
	assert_int_equal(ref_parse("Busybox", &r, small, sizeof(small)), -EINVAL);
	assert_string_equal(small, "invalid");
	assert_int_equal(ref_parse("Busybox", &r, NULL, 0), -EINVAL);
	assert_int_equal(ref_parse(NULL, &r, small, sizeof(small)), -EINVAL);
	assert_int_equal(ref_parse("busybox", NULL, small, sizeof(small)), -EINVAL);
	/* Quoting escapes what could forge a log line. */
	{
		char err[256];
		assert_int_equal(ref_parse("quay.io/a\"b\\c", &r, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "invalid repository name component \"a\\\"b\\\\c\"");
		assert_int_equal(ref_parse("busybox:a\nb", &r, err, sizeof(err)), -EINVAL);
		assert_string_equal(err, "invalid tag \"a\\x0ab\"");
	}
}

static void test_helpers(void **state)
{
	struct image_ref r;
	char err[256];
	char *s;

	assert_string_equal(ref_registry_host("docker.io"), "registry-1.docker.io");
	assert_string_equal(ref_registry_host("quay.io"), "quay.io");
	assert_string_equal(ref_registry_host("localhost:5000"), "localhost:5000");
	assert_null(ref_registry_host(NULL));

	assert_int_equal(ref_parse("quay.io/x/y:v1@" DIG, &r, err, sizeof(err)), 0);
	s = ref_digested(&r, "sha256:" "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
	assert_string_equal(s, "quay.io/x/y@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210");
	free(s);
	assert_null(ref_digested(&r, "sha256:abc"));
	assert_null(ref_digested(&r, NULL));
	assert_null(ref_digested(NULL, DIG));
	assert_null(ref_repository(NULL));
	assert_null(ref_tagged(NULL));
	ref_free(&r);
	ref_free(NULL);
}

/* ---- hostile input ---- */

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

static void test_garbage_never_crashes(void **state)
{
	static const char alphabet[] = "abcxyzABZ0189.-_:/@[]%\x01\xff sha256";
	static const char *const fragments[] = { "docker.io", "/", ":", "@", DIG, "localhost", "[::1]", ":5000",
						 "library", "a", "A", ".", "-", "__", "index.docker.io", "sha256:" };
	char buf[600];

	for (int iter = 0; iter < 20000; iter++) {
		struct image_ref r;
		char err[256];
		size_t len = rnd() % 300, n = 0;
		int ret;

		if (iter % 2) {
			for (n = 0; n < len; n++)
				buf[n] = alphabet[rnd() % (sizeof(alphabet) - 1)];
		} else {
			while (n < len) {
				const char *f = fragments[rnd() % ARRAY_SIZE(fragments)];
				size_t fl = strlen(f);
				if (n + fl >= sizeof(buf) - 1)
					break;
				memcpy(buf + n, f, fl);
				n += fl;
			}
		}
		buf[n] = '\0';
		ret = ref_parse(buf, &r, err, sizeof(err));
		if (ret == 0) {
			/* Whatever was accepted is bounded and complete. */
			assert_non_null(r.domain);
			assert_non_null(r.path);
			assert_true(r.tag || r.digest);
			assert_true(strlen(r.domain) + 1 + strlen(r.path) <= 255);
			ref_free(&r);
		} else {
			assert_int_equal(ret, -EINVAL);
			assert_true(err[0] != '\0');
			for (const char *p = err; *p; p++)
				assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_references),
		cmocka_unit_test(test_invalid_references),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_garbage_never_crashes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
