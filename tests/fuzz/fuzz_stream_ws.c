/* The WebSocket framing of criod's streaming server (criod/stream_ws.c):
 * a client's byte stream cut into frames by ws_parse_frame as the
 * transport does (a small or the real 1 MiB payload bound, chosen by the
 * first byte), each payload unmasked in two pieces, then taken as the
 * *.base64.channel.k8s.io protocols take a text message (a channel digit
 * and base64) and as a Sec-WebSocket-Key. Oracles: a frame's header and
 * payload lie inside the input; a refusal sets the close code it
 * documents; unmasking in pieces equals unmasking at once; base64 decodes
 * what it encoded and never writes more than 3*(len/4) bytes; an accepted
 * key is 24 characters and its accept value 28. */
#include <errno.h>
#include <stdio.h>

#include "fuzz.h"
#include "base64.h"
#include "stream_ws.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_stream_ws");
	return 0;
}

static void finding(const char *what)
{
	fprintf(stderr, "FINDING: %s\n", what);
	abort();
}

static void payload(const uint8_t *p, size_t n, const uint8_t mask[4])
{
	uint8_t *a = malloc(n + 1), *b = malloc(n + 1);
	if (!a || !b)
		abort();
	memcpy(a, p, n);
	memcpy(b, p, n);
	ws_unmask(a, n, mask, 0);
	size_t cut = n / 3;
	ws_unmask(b, cut, mask, 0);
	ws_unmask(b + cut, n - cut, mask, cut);
	if (memcmp(a, b, n) != 0)
		finding("unmasking in pieces differs from unmasking at once");

	/* a base64 channel message: digit, then base64 decoded in place */
	if (n >= 1) {
		size_t m = n - 1;
		/* a guard byte after the buffer: decoding must not reach it */
		memcpy(b, a, n);
		b[n] = 0xa5;
		int d = base64_decode((const char *)b + 1, m, b + 1);
		if (d >= 0) {
			if ((size_t)d > 3 * (m / 4))
				finding("base64_decode wrote more than 3*(len/4) bytes");
			char *enc = malloc(4 * (((size_t)d + 2) / 3) + 1);
			if (!enc)
				abort();
			size_t el = base64_encode(b + 1, (size_t)d, enc);
			uint8_t *back = malloc(el + 1);
			if (!back)
				abort();
			if (base64_decode(enc, el, back) != d || memcmp(back, b + 1, (size_t)d) != 0)
				finding("base64 does not decode what it encoded");
			free(back);
			free(enc);
		} else if (d != -EINVAL) {
			finding("base64_decode failed with an undocumented error");
		}
		if (b[n] != 0xa5)
			finding("base64_decode wrote past its input");
	}

	/* the same bytes as a Sec-WebSocket-Key */
	char *key = fuzz_strndup(a, n), accept[29];
	memset(accept, 0x5a, sizeof(accept));
	if (ws_accept_key(key, accept) == 0) {
		if (strlen(key) != 24 || accept[28] != '\0' || strlen(accept) != 28)
			finding("an accepted key or its accept value has the wrong length");
	} else if (accept[0] != 0x5a) {
		finding("a refused key wrote an accept value");
	}
	free(key);
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return -1;
	uint64_t max = data[0] & 1 ? 1u << 20 : 125 + (data[0] >> 1);
	data++, size--;
	size_t off = 0;
	while (off < size) {
		struct ws_frame f;
		uint16_t code = 0xffff;
		int r = ws_parse_frame(data + off, size - off, max, &f, &code);
		if (r == -EPROTO) {
			if (code != WS_CLOSE_PROTOCOL)
				finding("a protocol error without close code 1002");
			break;
		}
		if (r == -EMSGSIZE) {
			if (code != WS_CLOSE_TOO_BIG)
				finding("an oversized frame without close code 1009");
			break;
		}
		if (r < 0)
			finding("ws_parse_frame failed with an undocumented error");
		if (r == 0)
			break;
		if ((size_t)r != f.header_len || f.header_len < 6 || f.header_len > 14 || f.len > max ||
		    f.len > size - off - f.header_len)
			finding("a frame claims bytes it does not have");
		if (f.opcode >= WS_CLOSE && (!f.fin || f.len > 125))
			finding("a fragmented or long control frame accepted");
		/* the header we would send for it parses back (masked as a client's) */
		uint8_t hdr[14];
		size_t hl = ws_frame_header(hdr, f.opcode, f.len);
		hdr[1] |= 0x80;
		memcpy(hdr + hl, f.mask, 4);
		struct ws_frame g;
		uint16_t c2;
		if (ws_parse_frame(hdr, hl + 4, UINT64_MAX >> 1, &g, &c2) != 0 && f.len != 0)
			finding("a header alone parsed as a whole frame");
		payload(data + off + f.header_len, (size_t)f.len, f.mask);
		off += f.header_len + (size_t)f.len;
	}
	return 0;
}
