/* Streaming sha256 digests in the OCI form "sha256:<64 lowercase hex>". */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DIGEST_STR_MAX 72 /* "sha256:" + 64 hex + NUL, rounded */

struct digester; /* OpenSSL EVP in imaged-fetch, a plain implementation elsewhere (digest.c) */

struct digester *digester_new(void);
void digester_update(struct digester *d, const void *buf, size_t len);
/* Writes "sha256:<hex>" into out (DIGEST_STR_MAX bytes); the digester can
 * not be updated afterwards. */
void digester_final(struct digester *d, char out[DIGEST_STR_MAX]);
void digester_free(struct digester *d);

/* One-shot digest of a buffer. */
void digest_buffer(const void *buf, size_t len, char out[DIGEST_STR_MAX]);
/* "sha256:" followed by exactly 64 lowercase hex characters. Other
 * algorithms (sha512) are refused: the store only speaks sha256. */
bool digest_is_valid(const char *d);
/* The 64 hex characters after "sha256:" (d must be valid). */
static inline const char *digest_hex(const char *d) { return d + 7; }
