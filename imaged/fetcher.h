/* imaged's side of the fetch helper (imaged-fetch, see fetch.c).
 *
 * A pull starts one helper with one channel (a socket pair, at most FETCH_MAX_CHANNELS) per thread that
 * will call it; each channel carries one call at a time. Replies are checked
 * as if the helper were hostile: bodies are bounded, and manifests and
 * configs are hashed again here, so a helper that was taken over by a
 * registry's bytes cannot hand imaged a manifest or config other than the
 * one it names. The helper writes layers only into the directory passed with
 * each FetchLayer. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "digest.h"
#include "fetch_api.h"
#include "manifest.h"
#include "pull.h"


struct fetcher;

/* Once, at start-up: the helper is the imaged-fetch next to imaged's own
 * binary and gets config_path (NULL: the default) and log level. A helper
 * that reads nothing for stall_ms while imaged waits for it (hung, or
 * stuck on storage) is killed and its call fails with -ETIMEDOUT. cfg
 * (kept) decides the connections its helpers ask for (fetch_connect.h). Returns
 * negative errno if the helper is not there (pulls then fail). */
int fetcher_setup(const struct criod_config *cfg, const char *config_path, const char *log_level, uint64_t stall_ms);

/* Start a helper for one pull of image and hand it the credentials.
 * Returns 0 or negative errno with err saying why (-ECANCELED once
 * fetcher_cancel_all ran; the helper's own errors as it gives them). */
int fetcher_start(const char *image, const struct pull_auth *auth, const char *req, unsigned nchan,
		  struct fetcher **out, char *err, size_t errlen);

/* Like registry_get_manifest (see registry.h), over channel chan. */
int fetcher_get_manifest(struct fetcher *f, unsigned chan, const char *reference, char **body, size_t *len,
			 char **content_type, char digest[DIGEST_STR_MAX], char *err, size_t errlen);
/* Like registry_get_blob. */
int fetcher_get_blob(struct fetcher *f, unsigned chan, const char *digest, size_t max, char **body, size_t *len,
		     char *err, size_t errlen);

struct fetched_layer {
	char diff_id[DIGEST_STR_MAX];
	uint64_t tar_bytes, entries, received;
};
/* Stream the layer blob digest (size bytes) and extract it into dir_fd. */
int fetcher_get_layer(struct fetcher *f, unsigned chan, const char *digest, int64_t size,
		      enum layer_compression comp, int dir_fd, struct fetched_layer *out, char *err, size_t errlen);

/* Close the channels and reap the helper (killed if it does not go). */
void fetcher_stop(struct fetcher *f);

/* Shutdown: kill every running helper (their calls fail with -ECANCELED)
 * and refuse new ones. */
void fetcher_cancel_all(void);
