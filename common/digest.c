/* Streaming sha256; see digest.h.
 *
 * Two back ends behind one interface. Built with DIGEST_OPENSSL (imaged-fetch,
 * which hashes every layer byte) it is OpenSSL's EVP, with its SHA-NI and
 * AVX2 code. Built without (imaged, which hashes only manifests, configs and
 * chain ids) it is the plain FIPS 180-4 compression function below, so that
 * the long-running daemon does not carry libcrypto. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"

static void format_digest(const unsigned char md[32], char out[DIGEST_STR_MAX])
{
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "sha256:", 7);
	for (int i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[71] = '\0';
}

#ifdef DIGEST_OPENSSL
#include <openssl/evp.h>

struct digester {
	EVP_MD_CTX *ctx;
};

struct digester *digester_new(void)
{
	struct digester *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
		digester_free(d);
		return NULL;
	}
	return d;
}

void digester_update(struct digester *d, const void *buf, size_t len)
{
	if (len)
		EVP_DigestUpdate(d->ctx, buf, len);
}

void digester_final(struct digester *d, char out[DIGEST_STR_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_DigestFinal_ex(d->ctx, md, &n);
	format_digest(md, out);
}

void digester_free(struct digester *d)
{
	if (!d)
		return;
	EVP_MD_CTX_free(d->ctx);
	free(d);
}

void digest_buffer(const void *buf, size_t len, char out[DIGEST_STR_MAX])
{
	unsigned char md[32];
	EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL);
	format_digest(md, out);
}

#else /* the plain implementation */

struct digester {
	uint32_t h[8];
	uint64_t total; /* bytes so far */
	unsigned char block[64];
	size_t fill;
};

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static void compress_block(uint32_t h[8], const unsigned char *p)
{
	uint32_t w[64];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
		       (uint32_t)p[4 * i + 3];
	for (int i = 16; i < 64; i++) {
		uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
	for (int i = 0; i < 64; i++) {
		uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		k = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += k;
}

static void sha256_init(struct digester *d)
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	memcpy(d->h, iv, sizeof(iv));
	d->total = 0;
	d->fill = 0;
}

struct digester *digester_new(void)
{
	struct digester *d = malloc(sizeof(*d));
	if (d)
		sha256_init(d);
	return d;
}

void digester_update(struct digester *d, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	d->total += len;
	if (d->fill) {
		size_t n = 64 - d->fill < len ? 64 - d->fill : len;
		memcpy(d->block + d->fill, p, n);
		d->fill += n;
		p += n;
		len -= n;
		if (d->fill < 64)
			return;
		compress_block(d->h, d->block);
		d->fill = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		compress_block(d->h, p);
	memcpy(d->block, p, len);
	d->fill = len;
}

void digester_final(struct digester *d, char out[DIGEST_STR_MAX])
{
	uint64_t bits = d->total * 8;
	unsigned char pad[72] = {0x80};
	size_t n = d->fill < 56 ? 56 - d->fill : 120 - d->fill;
	for (int i = 0; i < 8; i++)
		pad[n + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
	digester_update(d, pad, n + 8);
	unsigned char md[32];
	for (int i = 0; i < 8; i++) {
		md[4 * i] = (unsigned char)(d->h[i] >> 24);
		md[4 * i + 1] = (unsigned char)(d->h[i] >> 16);
		md[4 * i + 2] = (unsigned char)(d->h[i] >> 8);
		md[4 * i + 3] = (unsigned char)d->h[i];
	}
	format_digest(md, out);
}

void digester_free(struct digester *d) { free(d); }

void digest_buffer(const void *buf, size_t len, char out[DIGEST_STR_MAX])
{
	struct digester d;
	sha256_init(&d);
	digester_update(&d, buf, len);
	digester_final(&d, out);
}

#endif

bool digest_is_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}
