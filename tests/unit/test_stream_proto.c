/* Unit tests for the streaming server's protocol code: HTTP/1.1 request
 * heads (criod/stream_http.c), WebSocket frames, handshake key and base64
 * (stream_ws.c), SPDY/3.1 frames and compressed header blocks
 * (stream_spdy.c): well-formed input, and truncated, oversized, unmasked
 * and badly compressed input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "stream_http.h"
#include "stream_spdy.h"
#include "base64.h"
#include "stream_ws.h"

/* ---------------------------------------------------------------- HTTP */

static const char upgrade_req[] =
	"POST /exec/0123456789abcdef0123456789abcdef?port=80&port=8%30 HTTP/1.1\r\n"
	"Host: 127.0.0.1:1234\r\n"
	"Connection: Upgrade\r\n"
	"Upgrade: SPDY/3.1\r\n"
	"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
	"X-Stream-Protocol-Version: v3.channel.k8s.io, v2.channel.k8s.io\r\n"
	"\r\n"
	"\x80\x03\x00\x01"; /* the first SPDY bytes may follow at once */

static bool collect(const char *v, size_t len, void *arg)
{
	char *out = arg;
	strncat(out, v, len);
	strcat(out, "|");
	return false;
}

static void test_http_request(void **state)
{
	struct http_request h;
	int n = http_parse_request(upgrade_req, sizeof(upgrade_req) - 1, HTTP_MAX_HEAD, &h);
	assert_int_equal(n, (int)(strstr(upgrade_req, "\r\n\r\n") - upgrade_req + 4));
	assert_string_equal(h.method, "POST");
	assert_string_equal(h.path, "/exec/0123456789abcdef0123456789abcdef");
	assert_string_equal(h.query, "port=80&port=8%30");
	assert_int_equal(h.n_headers, 5);
	assert_string_equal(http_header(&h, "connection"), "Upgrade");
	assert_true(http_header_has_token(&h, "Connection", "upgrade"));
	assert_true(http_header_has_token(&h, "Upgrade", "spdy/3.1"));
	assert_false(http_header_has_token(&h, "Upgrade", "websocket"));
	char all[256] = "";
	http_header_each(&h, "X-Stream-Protocol-Version", collect, all);
	assert_string_equal(all, "v4.channel.k8s.io|v3.channel.k8s.io|v2.channel.k8s.io|");
	char v[16];
	assert_true(http_query_param(&h, "port", 0, v, sizeof(v)));
	assert_string_equal(v, "80");
	assert_true(http_query_param(&h, "port", 1, v, sizeof(v)));
	assert_string_equal(v, "80");
	assert_false(http_query_param(&h, "port", 2, v, sizeof(v)));
	assert_false(http_query_param(&h, "por", 0, v, sizeof(v)));
	http_request_free(&h);
}

static void test_http_truncated(void **state)
{
	struct http_request h;
	/* every strict prefix of the head asks for more */
	size_t head = (size_t)(strstr(upgrade_req, "\r\n\r\n") - upgrade_req + 4);
	for (size_t i = 0; i < head; i++)
		assert_int_equal(http_parse_request(upgrade_req, i, HTTP_MAX_HEAD, &h), 0);
}

static void test_http_oversized(void **state)
{
	struct http_request h;
	size_t len = HTTP_MAX_HEAD + 100;
	char *big = malloc(len);
	assert_non_null(big);
	memcpy(big, "GET /exec/x HTTP/1.1\r\nX-A: ", 27);
	memset(big + 27, 'a', len - 27);
	assert_int_equal(http_parse_request(big, len, HTTP_MAX_HEAD, &h), -EMSGSIZE);
	/* a complete head past the bound is refused too */
	memcpy(big + len - 4, "\r\n\r\n", 4);
	assert_int_equal(http_parse_request(big, len, HTTP_MAX_HEAD, &h), -EMSGSIZE);
	free(big);
	/* too many headers */
	char many[8192] = "GET / HTTP/1.1\r\n";
	for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "X-%d: v\r\n", i);
	strcat(many, "\r\n");
	assert_int_equal(http_parse_request(many, strlen(many), HTTP_MAX_HEAD, &h), -EMSGSIZE);
}

/* fuzz_stream_http's finding: a NUL before the first CRLF of a complete
 * head made the C-string parse miss the line end and write through NULL. */
static void test_http_nul_in_complete_head(void **state)
{
	(void)state;
	static const char head[] = "GET /x\0 HTTP/1.1\r\nHost: a\r\n\r\n";
	static const char value[] = "GET /x HTTP/1.1\r\nHost: a\0b\r\n\r\n";
	struct http_request h;
	assert_int_equal(http_parse_request(head, sizeof(head) - 1, HTTP_MAX_HEAD, &h), -EBADMSG);
	assert_int_equal(http_parse_request(value, sizeof(value) - 1, HTTP_MAX_HEAD, &h), -EBADMSG);
}

static void test_http_malformed(void **state)
{
	static const char *const bad[] = {
		"GET /x HTTP/2.0\r\n\r\n",
		"GET /x\r\n\r\n",
		"GET  /x HTTP/1.1\r\n\r\n",
		"G(T /x HTTP/1.1\r\n\r\n",
		"GET x HTTP/1.1\r\n\r\n",
		"GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET /x HTTP/1.1\r\n: empty\r\n\r\n",
		"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",
		"GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
		"GET /x HTTP/1.1\r\nA: b\x01\r\n\r\n",
		"\x16\x03\x01\x02\x00", /* a TLS hello to a plain server: refused at once */
	};
	struct http_request h;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(http_parse_request(bad[i], strlen(bad[i]), HTTP_MAX_HEAD, &h), -EBADMSG);
	const char ok[] = "GET /x HTTP/1.0\r\nA:b\r\nB:   c  \r\n\r\n";
	assert_true(http_parse_request(ok, strlen(ok), HTTP_MAX_HEAD, &h) > 0);
	assert_string_equal(http_header(&h, "a"), "b");
	assert_string_equal(http_header(&h, "B"), "c");
	assert_string_equal(h.query, "");
	assert_null(http_header(&h, "C"));
	http_request_free(&h);
	/* a bad percent escape in the query is no value */
	const char q[] = "GET /x?port=%zz&a=%00 HTTP/1.1\r\n\r\n";
	assert_true(http_parse_request(q, strlen(q), HTTP_MAX_HEAD, &h) > 0);
	char v[8];
	assert_false(http_query_param(&h, "port", 0, v, sizeof(v)));
	assert_false(http_query_param(&h, "a", 0, v, sizeof(v)));
	http_request_free(&h);
}

/* ---------------------------------------------------------------- WebSocket */

static void test_ws_accept(void **state)
{
	char out[29];
	/* RFC 6455 1.3's example */
	assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ", out), -EINVAL);
	assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZ!==", out), -EINVAL);
	assert_int_equal(ws_accept_key("", out), -EINVAL);
}

static void test_base64(void **state)
{
	char enc[32];
	uint8_t dec[32];
	assert_int_equal(base64_encode((const uint8_t *)"", 0, enc), 0);
	base64_encode((const uint8_t *)"f", 1, enc);
	assert_string_equal(enc, "Zg==");
	base64_encode((const uint8_t *)"fo", 2, enc);
	assert_string_equal(enc, "Zm8=");
	base64_encode((const uint8_t *)"foobar", 6, enc);
	assert_string_equal(enc, "Zm9vYmFy");
	assert_int_equal(base64_decode("Zm9vYg==", 8, dec), 4);
	assert_memory_equal(dec, "foob", 4);
	assert_int_equal(base64_decode("Zm9vYmE=", 8, dec), 5);
	assert_int_equal(base64_decode("Zm9", 3, dec), -EINVAL);
	assert_int_equal(base64_decode("Zm=v", 4, dec), -EINVAL);
	assert_int_equal(base64_decode("Z===", 4, dec), -EINVAL);
	assert_int_equal(base64_decode("Zg==Zg==", 8, dec), -EINVAL);
	assert_int_equal(base64_decode("Zm9*", 4, dec), -EINVAL);
}

/* A masked client frame of payload p into out; returns its length. */
static size_t client_frame(uint8_t *out, uint8_t first, const uint8_t *p, size_t len)
{
	static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	size_t h = 0;
	out[h++] = first;
	if (len < 126) {
		out[h++] = 0x80 | (uint8_t)len;
	} else if (len < 65536) {
		out[h++] = 0x80 | 126;
		out[h++] = (uint8_t)(len >> 8);
		out[h++] = (uint8_t)len;
	} else {
		out[h++] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			out[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	memcpy(out + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		out[h + i] = p[i] ^ mask[i & 3];
	return h + len;
}

static void test_ws_frames(void **state)
{
	uint8_t buf[70000], payload[66000];
	struct ws_frame f;
	uint16_t code;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;
	const size_t sizes[] = {0, 1, 125, 126, 65535, 65536};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = client_frame(buf, 0x82, payload, sizes[s]);
		int h = ws_parse_frame(buf, n, 1u << 20, &f, &code);
		assert_true(h > 0);
		assert_int_equal(f.len, sizes[s]);
		assert_true(f.fin);
		assert_int_equal(f.opcode, WS_BINARY);
		ws_unmask(buf + h, (size_t)f.len, f.mask, 0);
		assert_memory_equal(buf + h, payload, sizes[s]);
		/* truncated anywhere: more is needed */
		for (size_t cut = 0; cut < n; cut += (n > 300 ? 997 : 1))
			assert_int_equal(ws_parse_frame(buf, cut, 1u << 20, &f, &code), 0);
	}
	/* unmasking in pieces (offset) equals unmasking at once */
	size_t n = client_frame(buf, 0x82, payload, 10);
	ws_unmask(buf + 6, 3, buf + 2, 0);
	ws_unmask(buf + 9, 7, buf + 2, 3);
	assert_memory_equal(buf + 6, payload, 10);
	(void)n;
}

static void test_ws_bad_frames(void **state)
{
	uint8_t buf[64];
	struct ws_frame f;
	uint16_t code;
	/* unmasked client frame */
	const uint8_t unmasked[] = {0x82, 0x01, 0x00};
	assert_int_equal(ws_parse_frame(unmasked, sizeof(unmasked), 1024, &f, &code), -EPROTO);
	assert_int_equal(code, WS_CLOSE_PROTOCOL);
	/* reserved bits, reserved opcodes */
	size_t n = client_frame(buf, 0xc2, (const uint8_t *)"x", 1);
	assert_int_equal(ws_parse_frame(buf, n, 1024, &f, &code), -EPROTO);
	n = client_frame(buf, 0x83, (const uint8_t *)"x", 1);
	assert_int_equal(ws_parse_frame(buf, n, 1024, &f, &code), -EPROTO);
	n = client_frame(buf, 0x8b, (const uint8_t *)"x", 1);
	assert_int_equal(ws_parse_frame(buf, n, 1024, &f, &code), -EPROTO);
	/* fragmented control frame; control frame over 125 bytes */
	n = client_frame(buf, 0x09, (const uint8_t *)"x", 1);
	assert_int_equal(ws_parse_frame(buf, n, 1024, &f, &code), -EPROTO);
	const uint8_t bigping[] = {0x89, 0x80 | 126, 0x00, 0x80, 1, 2, 3, 4};
	assert_int_equal(ws_parse_frame(bigping, sizeof(bigping), 1024, &f, &code), -EPROTO);
	/* over the bound: refused from the header alone, 1009 */
	const uint8_t huge[] = {0x82, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0};
	assert_int_equal(ws_parse_frame(huge, sizeof(huge), 1u << 20, &f, &code), -EMSGSIZE);
	assert_int_equal(code, WS_CLOSE_TOO_BIG);
	/* 64-bit length with the top bit set; non-minimal lengths */
	const uint8_t top[] = {0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(ws_parse_frame(top, sizeof(top), UINT64_MAX, &f, &code), -EPROTO);
	const uint8_t nonmin[] = {0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4, 0, 0, 0, 0, 0};
	assert_int_equal(ws_parse_frame(nonmin, sizeof(nonmin), 1024, &f, &code), -EPROTO);
}

static void test_ws_server_header(void **state)
{
	uint8_t h[10];
	assert_int_equal(ws_frame_header(h, WS_BINARY, 5), 2);
	assert_int_equal(h[0], 0x82);
	assert_int_equal(h[1], 5);
	assert_int_equal(ws_frame_header(h, WS_TEXT, 300), 4);
	assert_int_equal(h[1], 126);
	assert_int_equal(h[2] << 8 | h[3], 300);
	assert_int_equal(ws_frame_header(h, WS_BINARY, 70000), 10);
	assert_int_equal(h[1], 127);
	assert_int_equal(h[7] << 16 | h[8] << 8 | h[9], 70000);
}

/* ---------------------------------------------------------------- SPDY */

static void test_spdy_frames(void **state)
{
	uint8_t b[32];
	struct spdy_frame f;
	spdy_data_header(b, 5, SPDY_FLAG_FIN, 3);
	memcpy(b + 8, "abc", 3);
	assert_int_equal(spdy_parse_frame(b, 11, 1024, &f), 11);
	assert_false(f.control);
	assert_int_equal(f.stream_id, 5);
	assert_int_equal(f.flags, SPDY_FLAG_FIN);
	assert_memory_equal(f.payload, "abc", 3);
	for (size_t i = 0; i < 11; i++)
		assert_int_equal(spdy_parse_frame(b, i, 1024, &f), 0);
	spdy_ping(b, 7);
	assert_int_equal(spdy_parse_frame(b, 12, 1024, &f), 12);
	assert_true(f.control);
	assert_int_equal(f.type, SPDY_PING);
	assert_int_equal(spdy_be32(f.payload), 7);
	spdy_rst_stream(b, 3, SPDY_CANCEL);
	assert_int_equal(spdy_parse_frame(b, 16, 1024, &f), 16);
	assert_int_equal(f.type, SPDY_RST_STREAM);
	/* oversized: refused from the header alone */
	spdy_data_header(b, 1, 0, 0xffffff);
	assert_int_equal(spdy_parse_frame(b, 8, 1u << 20, &f), -EMSGSIZE);
	/* SPDY/2 control frame */
	spdy_ping(b, 1);
	b[1] = 2;
	assert_int_equal(spdy_parse_frame(b, 12, 1024, &f), -EPROTO);
}

/* Header blocks as the client (another zlib pair) would send them. */
static void test_spdy_headers_roundtrip(void **state)
{
	struct spdy_zlib srv, cli;
	assert_int_equal(spdy_zlib_init(&srv), 0);
	assert_int_equal(spdy_zlib_init(&cli), 0);
	for (int round = 0; round < 3; round++) { /* state carries from block to block */
		const char *names[] = {"streamtype", "port", "requestid"};
		const char *values[] = {round ? "data" : "error", "8080", "0"};
		uint8_t *blk;
		size_t bl;
		assert_int_equal(spdy_headers_encode(&cli, names, values, 3, &blk, &bl), 0);
		struct spdy_headers h;
		assert_int_equal(spdy_headers_decode(&srv, blk, bl, &h), 0);
		free(blk);
		assert_int_equal(h.n, 3);
		assert_string_equal(spdy_header(&h, "streamtype"), values[0]);
		assert_string_equal(spdy_header(&h, "port"), "8080");
		assert_null(spdy_header(&h, "Port"));
		spdy_headers_free(&h);
	}
	/* the empty block of a SYN_REPLY */
	uint8_t *blk;
	size_t bl;
	assert_int_equal(spdy_headers_encode(&srv, NULL, NULL, 0, &blk, &bl), 0);
	struct spdy_headers h;
	assert_int_equal(spdy_headers_decode(&cli, blk, bl, &h), 0);
	assert_int_equal(h.n, 0);
	spdy_headers_free(&h);
	free(blk);
	spdy_zlib_free(&srv);
	spdy_zlib_free(&cli);
}

/* Deflate raw (uncompressed) block bytes with SPDY's dictionary via a
 * client-side pair: encode a block of arbitrary layout. */
static int raw_block(struct spdy_zlib *cli, const uint8_t *raw, size_t len, uint8_t *out, size_t cap, size_t *n)
{
	cli->out.next_in = (Bytef *)raw;
	cli->out.avail_in = (uInt)len;
	cli->out.next_out = out;
	cli->out.avail_out = (uInt)cap;
	if (deflate(&cli->out, Z_SYNC_FLUSH) != Z_OK)
		return -1;
	*n = cap - cli->out.avail_out;
	return 0;
}

static void test_spdy_headers_bad(void **state)
{
	struct spdy_zlib srv, cli;
	struct spdy_headers h;
	uint8_t out[65536];
	size_t n = 0;
	/* garbage that is no zlib stream */
	assert_int_equal(spdy_zlib_init(&srv), 0);
	assert_int_equal(spdy_headers_decode(&srv, (const uint8_t *)"\x01\x02\x03\x04\x05", 5, &h), -EPROTO);
	spdy_zlib_free(&srv);
	/* zlib without SPDY's dictionary: a plain stream is fine for zlib but its
	 * layout is checked; a wrong dictionary id is refused */
	assert_int_equal(spdy_zlib_init(&srv), 0);
	z_stream z = {0};
	assert_int_equal(deflateInit(&z, 6), Z_OK);
	deflateSetDictionary(&z, (const Bytef *)"other", 5);
	const uint8_t zero[4] = {0};
	z.next_in = (Bytef *)zero;
	z.avail_in = 4;
	z.next_out = out;
	z.avail_out = sizeof(out);
	deflate(&z, Z_SYNC_FLUSH);
	assert_int_equal(spdy_headers_decode(&srv, out, sizeof(out) - z.avail_out, &h), -EPROTO);
	deflateEnd(&z);
	spdy_zlib_free(&srv);

	/* layouts: upper-case name, empty name, length past the end, repeated
	 * name, trailing bytes, too many pairs */
	static const uint8_t upper[] = {0, 0, 0, 1, 0, 0, 0, 1, 'A', 0, 0, 0, 0};
	static const uint8_t empty[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t past[] = {0, 0, 0, 1, 0, 0, 0, 9, 'a', 0, 0, 0, 0};
	static const uint8_t twice[] = {0, 0, 0, 2, 0, 0, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0};
	static const uint8_t trailing[] = {0, 0, 0, 0, 'x'};
	static const uint8_t many[] = {0, 0, 1, 0};
	const struct {
		const uint8_t *raw;
		size_t len;
		int want;
	} cases[] = {
		{upper, sizeof(upper), -EPROTO},   {empty, sizeof(empty), -EPROTO}, {past, sizeof(past), -EPROTO},
		{twice, sizeof(twice), -EPROTO},   {trailing, sizeof(trailing), -EPROTO},
		{many, sizeof(many), -EMSGSIZE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(spdy_zlib_init(&srv), 0);
		assert_int_equal(spdy_zlib_init(&cli), 0);
		assert_int_equal(raw_block(&cli, cases[i].raw, cases[i].len, out, sizeof(out), &n), 0);
		assert_int_equal(spdy_headers_decode(&srv, out, n, &h), cases[i].want);
		spdy_zlib_free(&srv);
		spdy_zlib_free(&cli);
	}
	/* a block that inflates past the bound (a compression bomb) */
	uint8_t *bomb = calloc(1, SPDY_MAX_HEADER_BLOCK * 4);
	assert_non_null(bomb);
	bomb[3] = 1;
	bomb[7] = 1;
	bomb[8] = 'a';
	bomb[9] = 0x00;
	bomb[10] = 0x01; /* value length 65536+ */
	assert_int_equal(spdy_zlib_init(&srv), 0);
	assert_int_equal(spdy_zlib_init(&cli), 0);
	assert_int_equal(raw_block(&cli, bomb, SPDY_MAX_HEADER_BLOCK * 4, out, sizeof(out), &n), 0);
	assert_true(n < 4096);
	assert_int_equal(spdy_headers_decode(&srv, out, n, &h), -EMSGSIZE);
	spdy_zlib_free(&srv);
	spdy_zlib_free(&cli);
	free(bomb);
	/* a truncated block: the inflater has no whole pair */
	assert_int_equal(spdy_zlib_init(&srv), 0);
	assert_int_equal(spdy_zlib_init(&cli), 0);
	static const uint8_t one[] = {0, 0, 0, 1, 0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b'};
	assert_int_equal(raw_block(&cli, one, sizeof(one), out, sizeof(out), &n), 0);
	assert_int_equal(spdy_headers_decode(&srv, out, n / 2, &h), -EPROTO);
	spdy_zlib_free(&srv);
	spdy_zlib_free(&cli);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_request),     cmocka_unit_test(test_http_truncated),
		cmocka_unit_test(test_http_oversized),   cmocka_unit_test(test_http_malformed), cmocka_unit_test(test_http_nul_in_complete_head),
		cmocka_unit_test(test_ws_accept),        cmocka_unit_test(test_base64),
		cmocka_unit_test(test_ws_frames),        cmocka_unit_test(test_ws_bad_frames),
		cmocka_unit_test(test_ws_server_header), cmocka_unit_test(test_spdy_frames),
		cmocka_unit_test(test_spdy_headers_roundtrip), cmocka_unit_test(test_spdy_headers_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
