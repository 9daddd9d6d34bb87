/* WebSocket frames and handshake; see stream_ws.h. */
#include <errno.h>
#include <string.h>

#include <openssl/sha.h>

#include "base64.h"
#include "stream_ws.h"

int ws_parse_frame(const uint8_t *data, size_t len, uint64_t max, struct ws_frame *f, uint16_t *close_code)
{
	memset(f, 0, sizeof(*f));
	if (len < 2)
		return 0;
	f->fin = data[0] & 0x80;
	f->opcode = data[0] & 0x0f;
	bool masked = data[1] & 0x80;
	uint64_t plen = data[1] & 0x7f;
	size_t h = 2;
	*close_code = WS_CLOSE_PROTOCOL;
	if (data[0] & 0x70) /* RSV1-3: no extension was negotiated */
		return -EPROTO;
	if (!(f->opcode <= WS_BINARY || (f->opcode >= WS_CLOSE && f->opcode <= WS_PONG)))
		return -EPROTO;
	if (!masked) /* RFC 6455 5.1: a server closes on an unmasked client frame */
		return -EPROTO;
	if (f->opcode >= WS_CLOSE && (!f->fin || plen > 125))
		return -EPROTO;
	if (plen == 126) {
		if (len < 4)
			return 0;
		plen = ((uint64_t)data[2] << 8) | data[3];
		if (plen < 126) /* not the minimal encoding */
			return -EPROTO;
		h = 4;
	} else if (plen == 127) {
		if (len < 10)
			return 0;
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = (plen << 8) | data[2 + i];
		if (plen >> 63 || plen < 65536)
			return -EPROTO;
		h = 10;
	}
	if (plen > max) {
		*close_code = WS_CLOSE_TOO_BIG;
		return -EMSGSIZE;
	}
	if (len < h + 4)
		return 0;
	memcpy(f->mask, data + h, 4);
	h += 4;
	f->len = plen;
	f->header_len = h;
	*close_code = 0;
	if (len - h < plen)
		return 0;
	return (int)h;
}

void ws_unmask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset)
{
	for (size_t i = 0; i < len; i++)
		buf[i] ^= mask[(offset + i) & 3];
}

size_t ws_frame_header(uint8_t *out, uint8_t opcode, uint64_t len)
{
	out[0] = 0x80 | opcode;
	if (len < 126) {
		out[1] = (uint8_t)len;
		return 2;
	}
	if (len < 65536) {
		out[1] = 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
	return 10;
}

int ws_accept_key(const char *key, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	size_t kl = strlen(key);
	uint8_t raw[18];
	if (kl != 24 || base64_decode(key, kl, raw) != 16)
		return -EINVAL;
	char buf[24 + sizeof(guid)];
	memcpy(buf, key, 24);
	memcpy(buf + 24, guid, sizeof(guid));
	uint8_t md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)buf, 24 + sizeof(guid) - 1, md);
	base64_encode(md, sizeof(md), out);
	return 0;
}
