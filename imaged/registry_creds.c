/* Registry credentials (see registry_internal.h): the CRI AuthConfig or an
 * auth.json entry ([imaged] auth_file, matched by host and repository as
 * containers-auth.json does) checked and turned into what the requests
 * send: a Basic pair, an identity token, a registry token. Secrets are
 * wiped when freed and never logged. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "base64.h"
#include "log.h"
#include "macro.h"
#include "manifest.h"
#include "registry.h"
#include "registry_internal.h"
#include "registry_policy.h"
#include "util.h"

#define AUTH_FILE_MAX (1u << 20)     /* auth.json */
#define CRED_MAX 4096                /* one username, password, auth string */

/* ------------------------------------------------------------ credentials */

void creds_free(struct creds *cr)
{
	free_secret(cr->basic);
	free_secret(cr->identity_token);
	free_secret(cr->registry_token);
	*cr = (struct creds){ 0 };
}

bool auth_is_empty(const struct registry_auth *a)
{
	return !a || (is_empty(a->username) && is_empty(a->password) && is_empty(a->auth) &&
		      is_empty(a->identity_token) && is_empty(a->registry_token));
}

static int basic_from_user(const char *user, const char *pass, char **out)
{
	size_t ul = strlen(user), pl = pass ? strlen(pass) : 0;
	_cleanup_secret_ char *joined = NULL;

	if (ul > CRED_MAX || pl > CRED_MAX || strchr(user, ':'))
		return -EINVAL;
	joined = malloc(ul + pl + 2);
	if (!joined)
		return -ENOMEM;
	memcpy(joined, user, ul);
	joined[ul] = ':';
	if (pl)
		memcpy(joined + ul + 1, pass, pl);
	joined[ul + 1 + pl] = '\0';
	*out = malloc((ul + pl + 3) / 3 * 4 + 1);
	if (!*out)
		return -ENOMEM;
	base64_encode((const uint8_t *)joined, ul + 1 + pl, *out);
	return 0;
}

/* Fill cr from one set of fields (the CRI AuthConfig or an auth.json entry).
 * what names the source for messages (never the values). */
int creds_fill(struct creds *cr, const char *user, const char *pass, const char *auth, const char *idtok,
		      const char *regtok, const char *what, char *err, size_t errlen)
{
	int r;

	if (!is_empty(auth)) {
		if (!is_base64(auth, CRED_MAX))
			return errf(err, errlen, -EINVAL, "%s: \"auth\" is not base64", what);
		if (!(cr->basic = strdup(auth)))
			return -ENOMEM;
	} else if (!is_empty(user)) {
		r = basic_from_user(user, pass, &cr->basic);
		if (r == -EINVAL)
			return errf(err, errlen, r, "%s: invalid username or password", what);
		if (r < 0)
			return r;
	}
	if (!is_empty(idtok)) {
		if (!token_is_safe(idtok, TOKEN_MAX))
			return errf(err, errlen, -EINVAL, "%s: invalid identity token", what);
		if (!(cr->identity_token = strdup(idtok)))
			return -ENOMEM;
	}
	if (!is_empty(regtok)) {
		if (!token_is_safe(regtok, TOKEN_MAX))
			return errf(err, errlen, -EINVAL, "%s: invalid registry token", what);
		if (!(cr->registry_token = strdup(regtok)))
			return -ENOMEM;
	}
	return 0;
}

/* How well an auth.json key matches: -1 not at all, 0 the host, n > 0 a
 * repository namespace of n characters (containers-auth.json style keys
 * "host/namespace"). Keys with a scheme are Docker style ("https://host",
 * "https://index.docker.io/v1/"): their path is the API path, not a
 * namespace. */
static int auth_key_match(const char *key, const char *const *hosts, size_t n_hosts, const char *repo)
{
	const char *k = key, *slash;
	bool scheme = false;
	size_t hl, pl;
	bool host_ok = false;

	if (strncasecmp(k, "https://", 8) == 0) {
		k += 8;
		scheme = true;
	} else if (strncasecmp(k, "http://", 7) == 0) {
		k += 7;
		scheme = true;
	}
	slash = strchr(k, '/');
	hl = slash ? (size_t)(slash - k) : strlen(k);
	for (size_t i = 0; i < n_hosts && !host_ok; i++)
		host_ok = hosts[i] && strlen(hosts[i]) == hl && strncasecmp(hosts[i], k, hl) == 0;
	if (!host_ok)
		return -1;
	if (!slash || scheme)
		return 0;
	slash++;
	pl = strlen(slash);
	while (pl && slash[pl - 1] == '/')
		pl--;
	if (pl == 0 || (pl == 2 && (strncmp(slash, "v1", 2) == 0 || strncmp(slash, "v2", 2) == 0)))
		return 0;
	if (pl > 255 || strncmp(repo, slash, pl) != 0 || (repo[pl] != '\0' && repo[pl] != '/'))
		return -1;
	return (int)pl;
}

const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Look the hosts up in an auth.json. A missing file means anonymous; a file
 * that cannot be read or parsed is logged and also means anonymous (the
 * pull of a public image must not fail over an unrelated broken entry). */
int creds_from_auth_file(struct creds *cr, const char *file, const char *const *hosts, size_t n_hosts,
				const char *repo, char *err, size_t errlen)
{
	char *data = NULL;
	size_t len = 0;
	struct json_tokener *tok;
	struct json_object *root = NULL, *auths, *best = NULL;
	int best_score = -1, r;

	if (is_empty(file))
		return 0;
	r = read_file(file, AUTH_FILE_MAX, &data, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		log_warn_errno(r, NULL, "cannot read the registry auth file, pulling anonymously", "path=%s", file);
		return 0;
	}
	tok = json_tokener_new_ex(32);
	if (tok) {
		root = json_tokener_parse_ex(tok, data, (int)len);
		if (json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != len) {
			json_object_put(root);
			root = NULL;
		}
		json_tokener_free(tok);
	}
	explicit_bzero(data, len);
	free(data);
	if (!root || !json_object_is_type(root, json_type_object)) {
		log_warn(NULL, "registry auth file is not a JSON object, pulling anonymously", "path=%s", file);
		json_object_put(root);
		return 0;
	}
	if (!json_object_object_get_ex(root, "auths", &auths) || !json_object_is_type(auths, json_type_object)) {
		json_object_put(root);
		return 0;
	}
	json_object_object_foreach(auths, key, val)
	{
		int score;
		if (!json_object_is_type(val, json_type_object))
			continue;
		score = auth_key_match(key, hosts, n_hosts, repo);
		if (score > best_score) {
			best_score = score;
			best = val;
		}
	}
	r = 0;
	if (best) {
		_cleanup_free_ char *what = xasprintf("auth file %s, entry for %s", file, hosts[0]);
		r = creds_fill(cr, json_str(best, "username"), json_str(best, "password"), json_str(best, "auth"),
			       json_str(best, "identitytoken"), json_str(best, "registrytoken"),
			       what ? what : "auth file", err, errlen);
		if (r == -EINVAL) {
			log_warn(NULL, "ignoring an invalid registry auth file entry", "error=\"%s\"", err);
			creds_free(cr);
			r = 0;
		}
	}
	json_object_put(root);
	return r;
}
