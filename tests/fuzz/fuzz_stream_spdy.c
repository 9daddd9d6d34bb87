/* The SPDY/3.1 framing of criod's streaming server (criod/stream_spdy.c):
 * a client's byte stream cut into frames by spdy_parse_frame as the
 * transport does (a small or the real 1 MiB frame bound), and the header
 * blocks of SYN_STREAM, SYN_REPLY and HEADERS frames decompressed through
 * one zlib stream per input, as one connection's are. The first byte picks
 * the bound and whether the blocks are taken as sent (compressed by the
 * client) or compressed here first (so the fuzzer reaches the name/value
 * parser behind zlib). Oracles: a frame never claims bytes beyond the
 * input; a decoded block has at most SPDY_MAX_HEADER_PAIRS non-empty,
 * lower-case, distinct names within SPDY_MAX_HEADER_BLOCK; encoding what
 * was decoded and decoding it on a fresh pair of streams gives it back. */
#include <errno.h>
#include <stdio.h>

#include "fuzz.h"
#include "stream_spdy.h"

static struct spdy_zlib tx; /* compresses raw blocks for mode 1 */

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_stream_spdy");
	if (spdy_zlib_init(&tx) < 0)
		abort();
	return 0;
}

static void finding(const char *what)
{
	fprintf(stderr, "FINDING: %s\n", what);
	abort();
}

static void check_roundtrip(const struct spdy_headers *h)
{
	const char *names[SPDY_MAX_HEADER_PAIRS], *values[SPDY_MAX_HEADER_PAIRS];
	size_t total = 4;
	for (size_t i = 0; i < h->n; i++) {
		if (strlen(h->h[i].value) != h->h[i].value_len)
			return; /* NUL-separated values: the encoder takes C strings */
		names[i] = h->h[i].name;
		values[i] = h->h[i].value;
		total += 8 + strlen(names[i]) + h->h[i].value_len;
	}
	struct spdy_zlib a, b;
	if (spdy_zlib_init(&a) < 0 || spdy_zlib_init(&b) < 0)
		abort();
	uint8_t *blk = NULL;
	size_t blen = 0;
	int r = spdy_headers_encode(&a, names, values, h->n, &blk, &blen);
	if (r < 0 || total > SPDY_MAX_HEADER_BLOCK)
		finding("a decoded header block does not encode again");
	/* the decoder uses b's inflate stream; the encoder's deflate is a's */
	struct spdy_headers back;
	r = spdy_headers_decode(&b, blk, blen, &back);
	if (r < 0)
		finding("an encoded header block does not decode");
	if (back.n != h->n)
		finding("header count changed in a round trip");
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(back.h[i].name, h->h[i].name) != 0 || strcmp(back.h[i].value, h->h[i].value) != 0)
			finding("a header changed in a round trip");
	spdy_headers_free(&back);
	free(blk);
	spdy_zlib_free(&a);
	spdy_zlib_free(&b);
}

static void check_block(const struct spdy_headers *h)
{
	if (h->n > SPDY_MAX_HEADER_PAIRS)
		finding("more header pairs than the bound");
	for (size_t i = 0; i < h->n; i++) {
		const char *n = h->h[i].name;
		if (!*n)
			finding("an empty header name accepted");
		for (const char *c = n; *c; c++)
			if ((*c >= 'A' && *c <= 'Z') || (unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
				finding("a header name with an upper-case or non-token byte accepted");
		for (size_t j = 0; j < i; j++)
			if (strcmp(h->h[j].name, n) == 0)
				finding("a repeated header name accepted");
		if (spdy_header(h, n) != h->h[i].value)
			finding("spdy_header does not find a decoded name");
	}
}

static bool block(struct spdy_zlib *z, bool compress_here, const uint8_t *p, size_t n)
{
	uint8_t *owned = NULL;
	if (compress_here) {
		/* deflate the raw block with the dictionary, as a client would */
		size_t cap = deflateBound(&tx.out, n) + 16;
		owned = malloc(cap);
		if (!owned)
			abort();
		tx.out.next_in = (Bytef *)p;
		tx.out.avail_in = (uInt)n;
		tx.out.next_out = owned;
		tx.out.avail_out = (uInt)cap;
		/* Z_BUF_ERROR: nothing to do (an empty block after a flush) */
		int zr = deflate(&tx.out, Z_SYNC_FLUSH);
		if ((zr != Z_OK && zr != Z_BUF_ERROR) || tx.out.avail_in)
			abort();
		p = owned;
		n = cap - tx.out.avail_out;
	}
	struct spdy_headers h;
	int r = spdy_headers_decode(z, p, n, &h);
	if (r == 0) {
		check_block(&h);
		check_roundtrip(&h);
		spdy_headers_free(&h);
	} else if (r != -EPROTO && r != -EMSGSIZE) {
		finding("spdy_headers_decode failed with an undocumented error");
	} else if (h.buf || h.n) {
		finding("a refused header block left storage behind");
	}
	free(owned);
	return r == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return -1;
	uint8_t mode = data[0];
	data++, size--;
	uint32_t max = mode & 1 ? 1u << 20 : 4096;
	bool compress_here = mode & 2;
	struct spdy_zlib z;
	if (spdy_zlib_init(&z) < 0)
		abort();
	if (compress_here) {
		/* each input is a new connection: a fresh deflate stream */
		spdy_zlib_free(&tx);
		if (spdy_zlib_init(&tx) < 0)
			abort();
	}
	size_t off = 0;
	while (off < size) {
		struct spdy_frame f;
		int r = spdy_parse_frame(data + off, size - off, max, &f);
		if (r == 0)
			break;
		if (r == -EMSGSIZE || r == -EPROTO)
			break;
		if (r < 0)
			finding("spdy_parse_frame failed with an undocumented error");
		if ((size_t)r > size - off || (size_t)r != 8 + f.len || f.len > max || f.payload != data + off + 8)
			finding("a frame claims bytes it does not have");
		if (f.control && (f.type == SPDY_SYN_STREAM || f.type == SPDY_SYN_REPLY || f.type == SPDY_HEADERS)) {
			size_t skip = f.type == SPDY_SYN_STREAM ? 10 : 4;
			/* a bad block ends the session (spdy_fail), as here */
			if (f.len >= skip && !block(&z, compress_here, f.payload + skip, f.len - skip))
				break;
		}
		off += (size_t)r;
	}
	spdy_zlib_free(&z);
	return 0;
}
