/* Standard base64 with padding (RFC 4648): the WebSocket handshake and
 * the *.base64.channel.k8s.io streams (criod), registry and proxy
 * credentials (imaged). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Encode len bytes: out must hold 4*((len+2)/3)+1; returns the characters
 * written before the NUL. */
size_t base64_encode(const uint8_t *in, size_t len, char *out);

/* Decode; returns the bytes written (at most 3*(len/4)) or -EINVAL. */
int base64_decode(const char *in, size_t len, uint8_t *out);
