/* Image references (imaged/ref.c) as kubelet or a hostile criod sends them:
 * ref_parse, and for what parses, the normalised forms. Oracle beyond the
 * sanitizers: normalising is idempotent (the tagged or digested form parses
 * back to the same reference) and stays within the documented bounds. */
#include <stdio.h>

#include "fuzz.h"
#include "ref.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_ref");
	return 0;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return -1;
	char *s = fuzz_strndup(data, size);
	struct image_ref r = {0};
	char err[256];

	if (ref_parse(s, &r, err, sizeof(err)) == 0) {
		char *repo = ref_repository(&r);
		char *norm = r.digest ? ref_digested(&r, r.digest) : ref_tagged(&r);
		if (!repo || !norm || strlen(repo) > 255 || !r.domain || !*r.domain || !r.path || !*r.path)
			abort();
		(void)ref_registry_host(r.domain);
		if (r.tag && r.digest) {
			/* pulled by digest: the tagged form must round-trip too */
			char *tagged = ref_tagged(&r);
			struct image_ref t = {0};
			if (!tagged || ref_parse(tagged, &t, err, sizeof(err)) < 0 || !same(t.tag, r.tag) ||
			    !same(t.path, r.path) || !same(t.domain, r.domain)) {
				fprintf(stderr, "tagged form of \"%s\" does not round-trip: \"%s\": %s\n", s,
					tagged ? tagged : "(null)", err);
				abort();
			}
			ref_free(&t);
			free(tagged);
		}
		struct image_ref n = {0};
		if (ref_parse(norm, &n, err, sizeof(err)) < 0 || !same(n.domain, r.domain) || !same(n.path, r.path) ||
		    !same(n.digest, r.digest) || (!r.digest && !same(n.tag, r.tag))) {
			fprintf(stderr, "normalised \"%s\" as \"%s\", which does not parse back the same: %s\n", s, norm,
				err);
			abort();
		}
		ref_free(&n);
		free(repo);
		free(norm);
	}
	ref_free(&r);
	free(s);
	return 0;
}
