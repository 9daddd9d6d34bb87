/* Image references as kubelet sends them, normalised the Docker way:
 *   busybox                      -> docker.io/library/busybox:latest
 *   user/app:1.0                 -> docker.io/user/app:1.0
 *   localhost:5000/app           -> localhost:5000/app:latest
 *   registry.k8s.io/pause@sha256:<hex>          (digest, no tag)
 *   quay.io/x/y:v1@sha256:<hex>                 (tag and digest: pulled by digest)
 * The first component is a registry host when it contains '.' or ':' or is
 * "localhost"; otherwise the host is docker.io (and a single-component path
 * gets "library/"). Repository components are lowercase
 * [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*, at most 255 characters in all;
 * tags are [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; digests "sha256:<64 hex>". */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct image_ref {
	char *domain; /* "docker.io", "localhost:5000" */
	char *path;   /* "library/busybox" */
	char *tag;    /* "latest"; NULL when only a digest was given */
	char *digest; /* "sha256:..."; NULL when none was given */
};

/* Parse and normalise s. Returns 0, or -EINVAL with a message in err
 * naming what is wrong ("invalid tag \"...\"", ...). */
int ref_parse(const char *s, struct image_ref *out, char *err, size_t errlen);
void ref_free(struct image_ref *r);
/* "docker.io/library/busybox" (malloc'd) */
char *ref_repository(const struct image_ref *r);
/* "docker.io/library/busybox:latest" or, with no tag, NULL (malloc'd) */
char *ref_tagged(const struct image_ref *r);
/* "docker.io/library/busybox@sha256:..." for the given digest (malloc'd) */
char *ref_digested(const struct image_ref *r, const char *digest);
/* The host to talk to for a domain: docker.io -> registry-1.docker.io. */
const char *ref_registry_host(const char *domain);
