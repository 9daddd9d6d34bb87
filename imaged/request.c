/* imaged's request checks; see request.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "ref.h"
#include "request.h"
#include "status.h"

int imaged_check_name(const char *field, const char *v, char *err, size_t errlen)
{
	if (!v || !*v) {
		snprintf(err, errlen, "%s is empty", field);
		return STATUS_INVALID_ARGUMENT;
	}
	if (strlen(v) > IMAGED_MAX_NAME) {
		snprintf(err, errlen, "%s is longer than %d bytes", field, IMAGED_MAX_NAME);
		return STATUS_INVALID_ARGUMENT;
	}
	return STATUS_OK;
}

/* Each credential is bounded before anything is fetched or copied. */
static int check_auth(const Criod__Internal__RegistryAuth *a, char *err, size_t errlen)
{
	if (!a)
		return STATUS_OK;
	const struct {
		const char *name, *value;
	} fields[] = {
		{ "username", a->username },
		{ "password", a->password },
		{ "auth", a->auth },
		{ "identity_token", a->identity_token },
		{ "registry_token", a->registry_token },
	};
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (fields[i].value && strlen(fields[i].value) > IMAGED_MAX_AUTH_FIELD) {
			snprintf(err, errlen, "auth %s is longer than %u bytes", fields[i].name, IMAGED_MAX_AUTH_FIELD);
			return STATUS_INVALID_ARGUMENT;
		}
	return STATUS_OK;
}

int imaged_check_pull(const Criod__Internal__PullRequest *req, char **key, char *err, size_t errlen)
{
	int st;
	*key = NULL;
	if ((st = imaged_check_name("image", req->image, err, errlen)) != STATUS_OK ||
	    (st = check_auth(req->auth, err, errlen)) != STATUS_OK)
		return st;
	struct image_ref ref = {0};
	char why[256];
	if (ref_parse(req->image, &ref, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "image \"%s\": %s", req->image, why);
		return STATUS_INVALID_ARGUMENT;
	}
	*key = ref.digest ? ref_digested(&ref, ref.digest) : ref_tagged(&ref);
	ref_free(&ref);
	if (!*key) {
		snprintf(err, errlen, "out of memory");
		return STATUS_RESOURCE_EXHAUSTED;
	}
	return STATUS_OK;
}
