/* The plain sha256 (common/digest.c without DIGEST_OPENSSL): FIPS 180-4
 * test vectors, every split of a stream, and OpenSSL as the reference on
 * random inputs of every length around the block and padding edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "digest.h"

static void reference(const void *buf, size_t len, char out[DIGEST_STR_MAX])
{
	unsigned char md[32];
	static const char hex[] = "0123456789abcdef";
	assert_int_equal(EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL), 1);
	strcpy(out, "sha256:");
	for (int i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[71] = '\0';
}

static void test_fips_vectors(void **state)
{
	char d[DIGEST_STR_MAX];
	digest_buffer("", 0, d);
	assert_string_equal(d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	digest_buffer("abc", 3, d);
	assert_string_equal(d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	digest_buffer(two, strlen(two), d);
	assert_string_equal(d, "sha256:248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* One million 'a', fed in uneven pieces. */
	struct digester *g = digester_new();
	assert_non_null(g);
	static char as[1000];
	memset(as, 'a', sizeof(as));
	size_t left = 1000000, step = 1;
	while (left) {
		size_t n = step < left ? step : left;
		if (n > sizeof(as))
			n = sizeof(as);
		digester_update(g, as, n);
		left -= n;
		step = step * 7 % 997 + 1;
	}
	digester_final(g, d);
	digester_free(g);
	assert_string_equal(d, "sha256:cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_matches_openssl_at_every_edge(void **state)
{
	static unsigned char buf[1200];
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245 + 12345;
		buf[i] = (unsigned char)(x >> 16);
	}
	for (size_t len = 0; len <= 300; len++) {
		char want[DIGEST_STR_MAX], got[DIGEST_STR_MAX], split[DIGEST_STR_MAX];
		reference(buf, len, want);
		digest_buffer(buf, len, got);
		assert_string_equal(got, want);
		/* The same bytes in two pieces, cut anywhere. */
		size_t cut = len ? (len * 31) % len : 0;
		struct digester *g = digester_new();
		digester_update(g, buf, cut);
		digester_update(g, buf + cut, len - cut);
		digester_final(g, split);
		digester_free(g);
		assert_string_equal(split, want);
	}
	char want[DIGEST_STR_MAX], got[DIGEST_STR_MAX];
	reference(buf, sizeof(buf), want);
	digest_buffer(buf, sizeof(buf), got);
	assert_string_equal(got, want);
}

static void test_validity(void **state)
{
	assert_true(digest_is_valid("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	assert_false(digest_is_valid("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"));
	assert_false(digest_is_valid("sha256:e3b0"));
	assert_false(digest_is_valid("sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
	assert_false(digest_is_valid(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fips_vectors),
		cmocka_unit_test(test_matches_openssl_at_every_edge),
		cmocka_unit_test(test_validity),
	};
	return cmocka_run_group_tests_name("digest", tests, NULL, NULL);
}
