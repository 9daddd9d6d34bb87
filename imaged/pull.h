/* One image pull, run on a worker thread: resolve the reference to a
 * manifest (choosing the host platform from an index), fetch the config,
 * then stream, verify and unpack the missing layers concurrently (bounded),
 * each straight from the network into a temporary directory that becomes
 * the layer by one rename. Layers another pull is already fetching are
 * waited for, not fetched twice. Registering the image happens afterwards,
 * on the loop thread. */
#pragma once

#include <stdint.h>

#include "config.h"
#include "digest.h"
#include "store.h"

struct pull_result {
	int status; /* gRPC status; STATUS_OK on success */
	char message[512];
	char id[DIGEST_STR_MAX];              /* config digest */
	char manifest_digest[DIGEST_STR_MAX]; /* what the reference resolved to */
	char **layers;                        /* chain ids, base first (pinned until pull_result_release) */
	size_t n_layers;
	uint64_t size;
	uint64_t received; /* bytes that came from the registry (manifests, config, layers), failed or not */
	int64_t user_uid; /* from config.User: numeric uid or -1 */
	char *user_name;  /* from config.User: a name or NULL */
	char *tag;         /* normalised "repo:tag" or NULL */
	char *repo_digest; /* "repo@sha256:..." */
};

struct pull_auth {
	char *username, *password, *auth, *identity_token, *registry_token;
};

void pull_run(const struct criod_config *cfg, struct store *s, const char *image, const struct pull_auth *auth,
	      const char *request_id, struct pull_result *res);
/* Unpin the layers and free the result's strings. */
void pull_result_release(struct store *s, struct pull_result *res);
