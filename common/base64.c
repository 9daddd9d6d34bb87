/* Standard base64 (RFC 4648, with padding); see base64.h. */
#include <errno.h>
#include <string.h>

#include "base64.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[k++] = b64[(v >> 18) & 63];
		out[k++] = b64[(v >> 12) & 63];
		out[k++] = i + 1 < len ? b64[(v >> 6) & 63] : '=';
		out[k++] = i + 2 < len ? b64[v & 63] : '=';
	}
	out[k] = '\0';
	return k;
}

static int b64val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;
	return p ? (int)(p - b64) : -1;
}

int base64_decode(const char *in, size_t len, uint8_t *out)
{
	if (len % 4)
		return -EINVAL;
	size_t k = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4], pad = 0;
		for (int j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad || (v[j] = b64val(in[i + j])) < 0)
				return -EINVAL;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[k++] = (uint8_t)(w >> 16);
		if (pad < 2)
			out[k++] = (uint8_t)(w >> 8);
		if (pad < 1)
			out[k++] = (uint8_t)w;
	}
	return (int)k;
}

