/* WebSocket (RFC 6455) for the streaming server: the handshake's accept
 * key, frame parsing (client frames are masked) and encoding (server frames
 * are not); the base64 the *.base64.channel.k8s.io protocols use is
 * common/base64.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* close codes */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_DATA 1003
#define WS_CLOSE_TOO_BIG 1009

struct ws_frame {
	bool fin;
	uint8_t opcode;
	uint64_t len;         /* payload length */
	size_t header_len;    /* bytes before the payload */
	uint8_t mask[4];
};

/* Parse a frame header at data. Returns the header's length when the
 * whole frame (header and payload) is in data, 0 when more bytes are
 * needed, or a negative errno with *close_code set: -EPROTO (unmasked,
 * reserved bits or opcode, control frame fragmented or over 125 bytes),
 * -EMSGSIZE (payload over max). */
int ws_parse_frame(const uint8_t *data, size_t len, uint64_t max, struct ws_frame *f, uint16_t *close_code);
/* Unmask a payload in place (offset: of buf's first byte in the payload). */
void ws_unmask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset);
/* A server frame header (FIN set, unmasked) for a payload of len bytes into
 * out (at least 10 bytes); returns its length. */
size_t ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t len);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key GUID)).
 * out gets 28 characters and a NUL. Returns 0, or -EINVAL for a key that is
 * not 16 bytes in base64. */
int ws_accept_key(const char *key, char out[29]);
