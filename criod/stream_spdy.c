/* SPDY/3.1 frames and header blocks; see stream_spdy.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stream_spdy.h"

/* SPDY/3's zlib dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1). */
static const uint8_t spdy_dict[] = {
#include "stream_spdy_dict.inc"
};
_Static_assert(sizeof(spdy_dict) == 1423, "SPDY/3 dictionary");

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int spdy_parse_frame(const uint8_t *data, size_t len, uint32_t max, struct spdy_frame *f)
{
	memset(f, 0, sizeof(*f));
	if (len < 8)
		return 0;
	f->control = data[0] & 0x80;
	f->flags = data[4];
	f->len = (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
	if (f->control) {
		uint16_t version = (uint16_t)((data[0] & 0x7f) << 8 | data[1]);
		if (version != 3)
			return -EPROTO;
		f->type = (uint16_t)(data[2] << 8 | data[3]);
	} else {
		f->stream_id = spdy_be32(data) & 0x7fffffff;
	}
	if (f->len > max)
		return -EMSGSIZE;
	if (len - 8 < f->len)
		return 0;
	f->payload = data + 8;
	return (int)(8 + f->len);
}

int spdy_zlib_init(struct spdy_zlib *z)
{
	memset(z, 0, sizeof(*z));
	if (inflateInit(&z->in) != Z_OK)
		return -ENOMEM;
	z->in_ok = true;
	if (deflateInit(&z->out, Z_DEFAULT_COMPRESSION) != Z_OK ||
	    deflateSetDictionary(&z->out, spdy_dict, sizeof(spdy_dict)) != Z_OK) {
		spdy_zlib_free(z);
		return -ENOMEM;
	}
	z->out_ok = true;
	return 0;
}

void spdy_zlib_free(struct spdy_zlib *z)
{
	if (z->in_ok)
		inflateEnd(&z->in);
	if (z->out_ok)
		deflateEnd(&z->out);
	z->in_ok = z->out_ok = false;
}

void spdy_headers_free(struct spdy_headers *h)
{
	free(h->buf);
	memset(h, 0, sizeof(*h));
}

const char *spdy_header(const struct spdy_headers *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->h[i].name, name) == 0)
			return h->h[i].value;
	return NULL;
}

/* Inflate a whole block (the peer ends each with a sync flush) into buf. */
static int inflate_block(struct spdy_zlib *z, const uint8_t *block, size_t len, uint8_t *buf, size_t cap,
			 size_t *out_len)
{
	z_stream *s = &z->in;
	s->next_in = (Bytef *)block;
	s->avail_in = (uInt)len;
	s->next_out = buf;
	s->avail_out = (uInt)cap;
	while (s->avail_in > 0) {
		int r = inflate(s, Z_SYNC_FLUSH);
		if (r == Z_NEED_DICT) {
			if (inflateSetDictionary(s, spdy_dict, sizeof(spdy_dict)) != Z_OK)
				return -EPROTO;
			continue;
		}
		if (r == Z_BUF_ERROR && s->avail_out == 0)
			return -EMSGSIZE;
		if (r != Z_OK)
			return -EPROTO;
		if (s->avail_out == 0 && s->avail_in > 0)
			return -EMSGSIZE;
	}
	*out_len = cap - s->avail_out;
	return 0;
}

int spdy_headers_decode(struct spdy_zlib *z, const uint8_t *block, size_t len, struct spdy_headers *out)
{
	memset(out, 0, sizeof(*out));
	/* Room for the block and a NUL after each name and value. */
	uint8_t *raw = malloc(SPDY_MAX_HEADER_BLOCK + 1);
	if (!raw)
		return -ENOMEM;
	size_t n;
	int r = inflate_block(z, block, len, raw, SPDY_MAX_HEADER_BLOCK + 1, &n);
	if (r == 0 && n > SPDY_MAX_HEADER_BLOCK)
		r = -EMSGSIZE;
	if (r < 0) {
		free(raw);
		return r;
	}
	out->buf = malloc(2 * n + 2);
	if (!out->buf) {
		free(raw);
		return -ENOMEM;
	}
	uint8_t *w = out->buf;
	size_t p = 0;
	r = -EPROTO;
	if (n < 4)
		goto fail;
	uint32_t pairs = spdy_be32(raw);
	p = 4;
	if (pairs > SPDY_MAX_HEADER_PAIRS) {
		r = -EMSGSIZE;
		goto fail;
	}
	for (uint32_t i = 0; i < pairs; i++) {
		char *field[2];
		size_t flen[2];
		for (int k = 0; k < 2; k++) {
			if (n - p < 4)
				goto fail;
			uint32_t l = spdy_be32(raw + p);
			p += 4;
			if (l > n - p || (k == 0 && l == 0))
				goto fail;
			memcpy(w, raw + p, l);
			w[l] = '\0';
			field[k] = (char *)w;
			flen[k] = l;
			w += l + 1;
			p += l;
		}
		for (size_t c = 0; c < flen[0]; c++) {
			unsigned char ch = (unsigned char)field[0][c];
			if ((ch >= 'A' && ch <= 'Z') || ch <= 0x20 || ch >= 0x7f)
				goto fail;
		}
		if (spdy_header(out, field[0]))
			goto fail;
		out->h[out->n].name = field[0];
		out->h[out->n].value = field[1];
		out->h[out->n].value_len = flen[1];
		out->n++;
	}
	if (p != n)
		goto fail;
	free(raw);
	return 0;
fail:
	free(raw);
	spdy_headers_free(out);
	return r;
}

int spdy_headers_encode(struct spdy_zlib *z, const char *const *names, const char *const *values, size_t n,
			uint8_t **out, size_t *out_len)
{
	size_t raw_len = 4;
	for (size_t i = 0; i < n; i++)
		raw_len += 8 + strlen(names[i]) + strlen(values[i]);
	if (raw_len > SPDY_MAX_HEADER_BLOCK)
		return -EMSGSIZE;
	uint8_t *raw = malloc(raw_len);
	if (!raw)
		return -ENOMEM;
	size_t p = 0;
	put32(raw, (uint32_t)n);
	p = 4;
	for (size_t i = 0; i < n; i++) {
		const char *f[2] = {names[i], values[i]};
		for (int k = 0; k < 2; k++) {
			size_t l = strlen(f[k]);
			put32(raw + p, (uint32_t)l);
			memcpy(raw + p + 4, f[k], l);
			p += 4 + l;
		}
	}
	size_t cap = deflateBound(&z->out, raw_len) + 16;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		free(raw);
		return -ENOMEM;
	}
	z->out.next_in = raw;
	z->out.avail_in = (uInt)raw_len;
	z->out.next_out = buf;
	z->out.avail_out = (uInt)cap;
	int r = deflate(&z->out, Z_SYNC_FLUSH);
	free(raw);
	if (r != Z_OK || z->out.avail_in != 0) {
		free(buf);
		return -EIO;
	}
	*out = buf;
	*out_len = cap - z->out.avail_out;
	return 0;
}

size_t spdy_data_header(uint8_t out[8], uint32_t stream_id, uint8_t flags, uint32_t len)
{
	put32(out, stream_id & 0x7fffffff);
	put32(out + 4, len & 0xffffff);
	out[4] = flags;
	return 8;
}

size_t spdy_control_header(uint8_t out[8], uint16_t type, uint8_t flags, uint32_t len)
{
	out[0] = 0x80;
	out[1] = 3;
	out[2] = (uint8_t)(type >> 8);
	out[3] = (uint8_t)type;
	put32(out + 4, len & 0xffffff);
	out[4] = flags;
	return 8;
}

size_t spdy_rst_stream(uint8_t out[16], uint32_t stream_id, uint32_t status)
{
	spdy_control_header(out, SPDY_RST_STREAM, 0, 8);
	put32(out + 8, stream_id & 0x7fffffff);
	put32(out + 12, status);
	return 16;
}

size_t spdy_goaway(uint8_t out[16], uint32_t last_good, uint32_t status)
{
	spdy_control_header(out, SPDY_GOAWAY, 0, 8);
	put32(out + 8, last_good & 0x7fffffff);
	put32(out + 12, status);
	return 16;
}

size_t spdy_ping(uint8_t out[12], uint32_t id)
{
	spdy_control_header(out, SPDY_PING, 0, 4);
	put32(out + 8, id);
	return 12;
}
