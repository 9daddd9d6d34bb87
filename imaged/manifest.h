/* Manifests, indexes and image configs (OCI image spec and Docker
 * schema 2), parsed with json-c from untrusted registry bytes. Every
 * string is bounded, every digest validated, every size non-negative. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
/* What imaged sends as Accept for a manifest request. */
#define MANIFEST_ACCEPT MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST

enum manifest_kind { MANIFEST_UNKNOWN, MANIFEST_INDEX, MANIFEST_IMAGE };
enum layer_compression { LAYER_UNSUPPORTED = -1, LAYER_PLAIN = 0, LAYER_GZIP, LAYER_ZSTD };

struct descriptor {
	char *media_type;
	char *digest; /* validated "sha256:<hex>" */
	int64_t size; /* >= 0 */
	/* index entries only */
	char *os, *architecture, *variant;
};

struct manifest {
	enum manifest_kind kind;
	char *media_type;
	/* MANIFEST_INDEX */
	struct descriptor *manifests;
	size_t n_manifests;
	/* MANIFEST_IMAGE */
	struct descriptor config;
	struct descriptor *layers;
	size_t n_layers;
};

/* Decide the kind from the Content-Type header and, when that is missing
 * or generic, the document's own mediaType / schemaVersion / fields, then
 * parse. Docker schema 1 is refused (-ENOTSUP), as is anything unknown
 * (-EINVAL). err names the problem. */
int manifest_parse(const char *content_type, const char *body, size_t len, struct manifest *out, char *err,
		   size_t errlen);
void manifest_free(struct manifest *m);

/* The entry of an index for os/arch/variant (variant may be NULL: then any
 * variant matches, "v8" preferred for arm64); returns its position or
 * -ENOENT. */
int manifest_select_platform(const struct manifest *index, const char *os, const char *arch, const char *variant);
/* The host's platform as the OCI spec names it ("linux", "amd64", NULL). */
void host_platform(const char **os, const char **arch, const char **variant);

/* Layer media types: tar, tar+gzip, tar+zstd (OCI and Docker, including the
 * nondistributable variants); anything else is LAYER_UNSUPPORTED. */
enum layer_compression layer_compression_of(const char *media_type);

struct image_config {
	char *os, *architecture;
	char *user; /* config.User, may be NULL */
	char **diff_ids; /* rootfs.diff_ids, validated */
	size_t n_diff_ids;
	char *stop_signal;
};

int image_config_parse(const char *body, size_t len, struct image_config *out, char *err, size_t errlen);
void image_config_free(struct image_config *c);

/* The CRI view of config.User: "1000" or "1000:50" gives *uid = 1000 and
 * *username NULL; "nginx" or "nginx:grp" gives *uid = -1 and a malloc'd
 * *username; empty gives uid -1, username NULL. */
int image_user(const char *user, int64_t *uid, char **username);
