/* Manifests, indexes and image configs (imaged/manifest.c) from registry
 * bytes. Input: the Content-Type, then the document (parts split at
 * FUZZ_SEP); the document is parsed as a manifest under that type and as an
 * image config, and what parses is walked: platform selection, layer
 * compression, config.User. Oracle beyond the sanitizers: what the parser
 * returns keeps its documented invariants (digests validated, sizes >= 0). */
#include <stdio.h>

#include "fuzz.h"
#include "manifest.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_manifest");
	return 0;
}

static void check_desc(const struct descriptor *d)
{
	if (!d->digest || strncmp(d->digest, "sha256:", 7) != 0 || strlen(d->digest) != 71 || d->size < 0) {
		fprintf(stderr, "descriptor with digest \"%s\" size %lld passed validation\n",
			d->digest ? d->digest : "(null)", (long long)d->size);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *ct, *doc;
	size_t ctn, docn;
	char err[256];

	if (size > (1u << 20))
		return -1;
	fuzz_part(data, size, 0, &ct, &ctn);
	fuzz_part(data, size, 1, &doc, &docn);
	char *type = fuzz_strndup(ct, ctn);
	/* the body as received: not NUL-terminated, in a buffer of its own */
	char *body = malloc(docn ? docn : 1);
	if (!body)
		abort();
	memcpy(body, doc, docn);

	struct manifest m = {0};
	if (manifest_parse(*type ? type : NULL, body, docn, &m, err, sizeof(err)) == 0) {
		if (m.kind == MANIFEST_INDEX) {
			for (size_t i = 0; i < m.n_manifests; i++)
				check_desc(&m.manifests[i]);
			const char *os, *arch, *variant;
			host_platform(&os, &arch, &variant);
			int k = manifest_select_platform(&m, os, arch, variant);
			if (k >= 0 && (size_t)k >= m.n_manifests)
				abort();
			k = manifest_select_platform(&m, "linux", "arm64", NULL);
			if (k >= 0 && (size_t)k >= m.n_manifests)
				abort();
		} else if (m.kind == MANIFEST_IMAGE) {
			check_desc(&m.config);
			for (size_t i = 0; i < m.n_layers; i++) {
				check_desc(&m.layers[i]);
				(void)layer_compression_of(m.layers[i].media_type);
			}
		} else {
			abort(); /* parsed, but neither kind */
		}
	}
	manifest_free(&m);
	manifest_free(&m); /* resets: a second call is harmless */

	struct image_config c = {0};
	if (image_config_parse(body, docn, &c, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < c.n_diff_ids; i++)
			if (!c.diff_ids[i] || strncmp(c.diff_ids[i], "sha256:", 7) != 0)
				abort();
		int64_t uid;
		char *name = NULL;
		if (c.user && image_user(c.user, &uid, &name) == 0 && uid < -1)
			abort();
		free(name);
	}
	image_config_free(&c);
	free(body);
	free(type);
	return 0;
}
