/* Streaming sha256 over OpenSSL's EVP interface; see digest.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "digest.h"

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
	static const char hex[] = "0123456789abcdef";
	EVP_DigestFinal_ex(d->ctx, md, &n);
	memcpy(out, "sha256:", 7);
	for (unsigned int i = 0; i < n && i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[7 + 64] = '\0';
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
	static const char hex[] = "0123456789abcdef";
	EVP_Digest(buf, len, md, NULL, EVP_sha256(), NULL);
	memcpy(out, "sha256:", 7);
	for (int i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[71] = '\0';
}

bool digest_is_valid(const char *d)
{
	if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 71)
		return false;
	for (const char *p = d + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}
