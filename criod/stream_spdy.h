/* SPDY/3.1 for the streaming server: frame headers, the frames a server
 * sends, and name/value header blocks compressed with zlib and SPDY/3's
 * dictionary (one inflate and one deflate stream per connection). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

enum spdy_type {
	SPDY_SYN_STREAM = 1, SPDY_SYN_REPLY = 2, SPDY_RST_STREAM = 3, SPDY_SETTINGS = 4,
	SPDY_PING = 6, SPDY_GOAWAY = 7, SPDY_HEADERS = 8, SPDY_WINDOW_UPDATE = 9,
};
#define SPDY_FLAG_FIN 0x01
/* RST_STREAM status codes */
#define SPDY_PROTOCOL_ERROR 1
#define SPDY_INVALID_STREAM 2
#define SPDY_REFUSED_STREAM 3
#define SPDY_CANCEL 5
#define SPDY_INTERNAL_ERROR_CODE 6
#define SPDY_STREAM_IN_USE 8
#define SPDY_FRAME_TOO_LARGE 11

#define SPDY_MAX_HEADER_PAIRS 64
#define SPDY_MAX_HEADER_BLOCK 16384 /* bytes of one decompressed block */

struct spdy_frame {
	bool control;
	uint16_t type;      /* control frames */
	uint32_t stream_id; /* data frames */
	uint8_t flags;
	uint32_t len;       /* payload length */
	const uint8_t *payload;
};

/* Parse the frame at data. Returns 8 + len when it is all there, 0 when
 * more is needed, -EMSGSIZE when its length is over max, -EPROTO for a
 * control frame of a version other than 3. */
int spdy_parse_frame(const uint8_t *data, size_t len, uint32_t max, struct spdy_frame *f);

struct spdy_header {
	char *name, *value; /* value: several values are NUL-separated on the wire, kept as is */
	size_t value_len;
};

struct spdy_headers {
	struct spdy_header h[SPDY_MAX_HEADER_PAIRS];
	size_t n;
	uint8_t *buf; /* storage */
};

struct spdy_zlib {
	z_stream in, out;
	bool in_ok, out_ok;
};

int spdy_zlib_init(struct spdy_zlib *z);
void spdy_zlib_free(struct spdy_zlib *z);

/* Decompress and parse a header block. -EMSGSIZE over the bounds, -EPROTO
 * for bad compression or a malformed block (upper-case, empty or repeated
 * names). */
int spdy_headers_decode(struct spdy_zlib *z, const uint8_t *block, size_t len, struct spdy_headers *out);
void spdy_headers_free(struct spdy_headers *h);
/* The value of a header (names are lower case), or NULL. */
const char *spdy_header(const struct spdy_headers *h, const char *name);

/* Encode a header block of n name/value pairs (names lower case) into
 * out (malloc'd). */
int spdy_headers_encode(struct spdy_zlib *z, const char *const *names, const char *const *values, size_t n,
			uint8_t **out, size_t *out_len);

/* Frame builders: write into out (the size given), return the length. */
size_t spdy_data_header(uint8_t out[8], uint32_t stream_id, uint8_t flags, uint32_t len);
size_t spdy_control_header(uint8_t out[8], uint16_t type, uint8_t flags, uint32_t len);
size_t spdy_rst_stream(uint8_t out[16], uint32_t stream_id, uint32_t status);
size_t spdy_goaway(uint8_t out[16], uint32_t last_good, uint32_t status);
size_t spdy_ping(uint8_t out[12], uint32_t id);

static inline uint32_t spdy_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
