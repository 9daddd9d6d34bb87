/* Registry authentication (see registry_internal.h): the WWW-Authenticate
 * challenges of a 401 (Basic, Bearer with realm, service and scope), the
 * token fetch from the realm (GET, or the OAuth2 POST with an identity
 * token), its caching per endpoint, and the Authorization header of every
 * request. */
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

#include "log.h"
#include "macro.h"
#include "manifest.h"
#include "registry.h"
#include "registry_internal.h"
#include "registry_policy.h"
#include "util.h"

#define TOKEN_BODY_MAX (1u << 20)    /* token server replies */
#define CHALLENGE_VALUE_MAX 2048     /* realm, service, scope */
#define TOKEN_DEFAULT_TTL_S 60

/* -------------------------------------------------------- authentication */

static int challenge_value(const char **pp, char *buf, size_t buflen)
{
	const char *p = *pp;
	size_t n = 0;

	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (*p == '\\' && p[1])
				p++;
			if (n + 1 >= buflen)
				return -EINVAL;
			buf[n++] = *p;
		}
		if (*p != '"')
			return -EINVAL;
		p++;
	} else {
		for (; *p && *p != ',' && *p != ' ' && *p != '\t'; p++) {
			if (n + 1 >= buflen)
				return -EINVAL;
			buf[n++] = *p;
		}
	}
	buf[n] = '\0';
	*pp = p;
	return 0;
}

static bool is_tchar(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* WWW-Authenticate (RFC 7235): 1#( scheme [ token68 / #auth-param ] ),
 * values quoted or not. Notes whether Basic and Bearer were offered and
 * keeps the first Bearer challenge's realm, service and scope. */
static int parse_challenges(const char *s, bool *basic, bool *bearer, struct challenge *ch)
{
	const char *p = s;
	char name[64], val[CHALLENGE_VALUE_MAX];

	*basic = *bearer = false;
	while (*p) {
		size_t n = 0;
		bool is_bearer, first_bearer;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		while (is_tchar(*p)) {
			if (n + 1 < sizeof(name))
				name[n++] = *p;
			p++;
		}
		name[n] = '\0';
		if (n == 0) { /* junk: skip a character */
			p++;
			continue;
		}
		is_bearer = strcasecmp(name, "Bearer") == 0;
		first_bearer = is_bearer && !*bearer;
		if (is_bearer)
			*bearer = true;
		else if (strcasecmp(name, "Basic") == 0)
			*basic = true;
		while (*p == ' ' || *p == '\t')
			p++;
		/* auth-params until the next scheme */
		for (;;) {
			const char *save = p;
			size_t k = 0;

			while (is_tchar(*p)) {
				if (k + 1 < sizeof(name))
					name[k++] = *p;
				p++;
			}
			name[k] = '\0';
			while (*p == ' ' || *p == '\t')
				p++;
			if (k == 0 || *p != '=') {
				p = save; /* the next scheme (or the end) */
				break;
			}
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '=' || *p == ',' || !*p) { /* token68 padding */
				while (*p == '=')
					p++;
			} else {
				if (challenge_value(&p, val, sizeof(val)) < 0)
					return -EINVAL;
				if (first_bearer) {
					char **dst = strcasecmp(name, "realm") == 0     ? &ch->realm
						     : strcasecmp(name, "service") == 0 ? &ch->service
						     : strcasecmp(name, "scope") == 0   ? &ch->scope
											: NULL;
					if (dst) {
						free(*dst);
						if (!(*dst = strdup(val)))
							return -ENOMEM;
					}
				}
			}
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p != ',')
				break;
			while (*p == ',' || *p == ' ' || *p == '\t')
				p++;
		}
	}
	return 0;
}

static bool value_is_printable(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

/* Append "&name=<enc value>" for each space-separated word of value. */
static int append_param(char **url, const char *name, const char *value, bool split)
{
	const char *p = value;

	while (*p) {
		size_t n;
		_cleanup_free_ char *word = NULL, *enc = NULL;
		char *nu;

		if (split)
			while (*p == ' ')
				p++;
		if (!*p)
			break;
		n = split ? strcspn(p, " ") : strlen(p);
		word = strndup(p, n);
		enc = word ? url_encode(word) : NULL;
		if (!enc)
			return -ENOMEM;
		nu = xasprintf("%s%s%s=%s", *url, strchr(*url, '?') ? "&" : "?", name, enc);
		if (!nu)
			return -ENOMEM;
		free(*url);
		*url = nu;
		p += n;
	}
	return 0;
}

static int parse_token_reply(const struct endpoint *ep, const struct xfer *x, char **token, int64_t *ttl_s,
			     char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new_ex(16);
	struct json_object *root = NULL, *v;
	const char *t;
	int r = 0;

	if (!tok)
		return -ENOMEM;
	if (x->body)
		root = json_tokener_parse_ex(tok, x->body, (int)x->body_len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		r = errf(err, errlen, -EPROTO, "token server for %s sent a reply that is not a JSON object", ep->host);
		goto out;
	}
	t = json_str(root, "token");
	if (is_empty(t))
		t = json_str(root, "access_token");
	if (is_empty(t)) {
		r = errf(err, errlen, -EPROTO, "token server for %s sent no token", ep->host);
		goto out;
	}
	if (!token_is_safe(t, TOKEN_MAX)) {
		r = errf(err, errlen, -EPROTO, "token server for %s sent an invalid token", ep->host);
		goto out;
	}
	*ttl_s = TOKEN_DEFAULT_TTL_S;
	if (json_object_object_get_ex(root, "expires_in", &v) && json_object_is_type(v, json_type_int)) {
		int64_t e = json_object_get_int64(v);
		*ttl_s = e < TOKEN_DEFAULT_TTL_S ? TOKEN_DEFAULT_TTL_S : e > 86400 ? 86400 : e;
	}
	if (!(*token = strdup(t)))
		r = -ENOMEM;
out:
	json_object_put(root);
	json_tokener_free(tok);
	return r;
}

/* Ask the challenge's token server for a token: the OAuth2 POST with the
 * identity token when there is one (falling back to GET when the server
 * does not do OAuth2), else GET with basic credentials or anonymously. */
static int fetch_token(struct registry_client *c, const struct endpoint *ep, const struct challenge *ch,
		       char **token, int64_t *ttl_s, char *err, size_t errlen)
{
	_cleanup_free_ char *scope_owned = NULL, *url = NULL;
	const char *scope = ch->scope;
	struct xfer *x = NULL;
	int r, retries = ep->mirror ? MIRROR_RETRIES : MAX_RETRIES;

	if (is_empty(ch->realm))
		return errf(err, errlen, -EACCES, "%s asks for a bearer token but names no token server", ep->host);
	if (!value_is_printable(ch->realm) || strchr(ch->realm, ' ') || strchr(ch->realm, '#') ||
	    !(strncasecmp(ch->realm, "https://", 8) == 0 || (ep->insecure && strncasecmp(ch->realm, "http://", 7) == 0)))
		return errf(err, errlen, -EPROTO, "%s names a token server that is not an %s URL", ep->host,
			    ep->insecure ? "http(s)" : "https");
	if ((ch->service && !value_is_printable(ch->service)) || (ch->scope && !value_is_printable(ch->scope)))
		return errf(err, errlen, -EPROTO, "%s sent an unprintable auth challenge", ep->host);
	if (is_empty(scope)) {
		scope = scope_owned = xasprintf("repository:%s:pull", c->path);
		if (!scope)
			return -ENOMEM;
	}

	if (ep->creds.identity_token) {
		_cleanup_free_ char *svc = url_encode(ch->service ? ch->service : ""), *sc = url_encode(scope);
		_cleanup_free_ char *rt = url_encode(ep->creds.identity_token);
		_cleanup_secret_ char *form = NULL;

		if (!svc || !sc || !rt) {
			free_secret(TAKE_PTR(rt));
			return -ENOMEM;
		}
		form = xasprintf("grant_type=refresh_token&client_id=criod&service=%s&scope=%s&refresh_token=%s", svc,
				 sc, rt);
		explicit_bzero(rt, strlen(rt));
		if (!form)
			return -ENOMEM;
		struct xreq q = { .url = ch->realm, .post = form, .max = TOKEN_BODY_MAX };
		r = registry_perform(c, ep, &q, retries, &x);
		if (r < 0)
			return r;
		if (xfer_failed(x))
			goto curl_failed;
		if (x->status == 200)
			goto parse;
		if (x->status != 404 && x->status != 405)
			goto http_failed;
		xfer_free(x); /* no OAuth2 here: the token spec's GET */
		x = NULL;
	}

	url = strdup(ch->realm);
	if (!url)
		return -ENOMEM;
	if ((ch->service && append_param(&url, "service", ch->service, false) < 0) ||
	    append_param(&url, "scope", scope, true) < 0)
		return -ENOMEM;
	{
		_cleanup_secret_ char *authz = ep->creds.basic ? xasprintf("Basic %s", ep->creds.basic) : NULL;
		struct xreq q = { .url = url, .authz = authz, .max = TOKEN_BODY_MAX };
		if (ep->creds.basic && !authz)
			return -ENOMEM;
		r = registry_perform(c, ep, &q, retries, &x);
		if (r < 0)
			return r;
	}
	if (xfer_failed(x))
		goto curl_failed;
	if (x->status != 200)
		goto http_failed;
parse:
	r = parse_token_reply(ep, x, token, ttl_s, err, errlen);
	xfer_free(x);
	return r;
curl_failed:
	r = xfer_curl_error(ep, "token", x, err, errlen);
	xfer_free(x);
	return r;
http_failed:
	if (x->status == 401 || x->status == 403)
		r = errf(err, errlen, -EACCES, "the token server for %s refused %s (HTTP %ld)", ep->host,
			 ep->creds.basic || ep->creds.identity_token ? "the credentials" : "anonymous access", x->status);
	else
		r = xfer_http_error(ep, "token", x, err, errlen);
	xfer_free(x);
	return r;
}

/* Get a fresh token unless another thread already replaced the one of
 * generation seen_gen. */
static int refresh_token(struct registry_client *c, struct endpoint *ep, uint64_t seen_gen, char *err, size_t errlen)
{
	struct challenge ch = { 0 };
	char *token = NULL;
	int64_t ttl = 0;
	int r = 0;

	pthread_mutex_lock(&c->auth_lock);
	pthread_mutex_lock(&c->lock);
	if (ep->token_gen != seen_gen && ep->token && now_monotonic_ns() < ep->token_expiry_ns) {
		pthread_mutex_unlock(&c->lock);
		goto out;
	}
	ch.realm = ep->ch.realm ? strdup(ep->ch.realm) : NULL;
	ch.service = ep->ch.service ? strdup(ep->ch.service) : NULL;
	ch.scope = ep->ch.scope ? strdup(ep->ch.scope) : NULL;
	pthread_mutex_unlock(&c->lock);
	if ((ep->ch.realm && !ch.realm) || (ep->ch.service && !ch.service) || (ep->ch.scope && !ch.scope)) {
		r = -ENOMEM;
		goto out;
	}
	r = fetch_token(c, ep, &ch, &token, &ttl, err, errlen);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&c->lock);
	free_secret(ep->token);
	ep->token = token;
	/* renew a little early: 90% of the lifetime */
	ep->token_expiry_ns = now_monotonic_ns() + ttl * 900000000LL;
	ep->token_gen++;
	pthread_mutex_unlock(&c->lock);
	log_debug(NULL, "registry token obtained", "host=%s expires_in=%" PRId64, ep->host, ttl);
out:
	pthread_mutex_unlock(&c->auth_lock);
	challenge_free(&ch);
	return r;
}

/* The Authorization header value for the next request to ep (NULL: none). */
int endpoint_authz(struct registry_client *c, struct endpoint *ep, char **authz, uint64_t *gen, char *err,
			  size_t errlen)
{
	*authz = NULL;
	if (ep->creds.registry_token) {
		*gen = 0;
		*authz = xasprintf("Bearer %s", ep->creds.registry_token);
		return *authz ? 0 : -ENOMEM;
	}
	for (int pass = 0;; pass++) {
		pthread_mutex_lock(&c->lock);
		*gen = ep->token_gen;
		switch (ep->scheme) {
		case AUTH_NONE:
			pthread_mutex_unlock(&c->lock);
			return 0;
		case AUTH_BASIC:
			pthread_mutex_unlock(&c->lock);
			*authz = xasprintf("Basic %s", ep->creds.basic);
			return *authz ? 0 : -ENOMEM;
		case AUTH_BEARER:
			if (ep->token && now_monotonic_ns() < ep->token_expiry_ns) {
				*authz = xasprintf("Bearer %s", ep->token);
				pthread_mutex_unlock(&c->lock);
				return *authz ? 0 : -ENOMEM;
			}
			break;
		}
		pthread_mutex_unlock(&c->lock);
		if (pass > 0) /* cannot happen: a fetched token is at least 54 s valid */
			return 0;
		/* the token expired: get a new one with the challenge we know */
		int r = refresh_token(c, ep, *gen, err, errlen);
		if (r < 0)
			return r;
	}
}

/* A 401: learn what the host wants and get it. */
int endpoint_challenge(struct registry_client *c, struct endpoint *ep, const char *www_auth, uint64_t gen,
			      char *err, size_t errlen)
{
	struct challenge ch = { 0 };
	bool basic = false, bearer = false;
	int r;

	if (is_empty(www_auth))
		return errf(err, errlen, -EACCES, "%s refused the request (HTTP 401) without an auth challenge",
			    ep->host);
	r = parse_challenges(www_auth, &basic, &bearer, &ch);
	if (r == -ENOMEM) {
		challenge_free(&ch);
		return r;
	}
	if (r < 0) {
		challenge_free(&ch);
		return errf(err, errlen, -EPROTO, "%s sent a malformed WWW-Authenticate header", ep->host);
	}
	if (bearer) {
		pthread_mutex_lock(&c->lock);
		challenge_free(&ep->ch);
		ep->ch = ch;
		ep->scheme = AUTH_BEARER;
		pthread_mutex_unlock(&c->lock);
		return refresh_token(c, ep, gen, err, errlen);
	}
	challenge_free(&ch);
	if (basic) {
		if (!ep->creds.basic)
			return errf(err, errlen, -EACCES, "%s requires authentication (HTTP 401, Basic) and no credentials "
				    "are configured for it", ep->host);
		pthread_mutex_lock(&c->lock);
		ep->scheme = AUTH_BASIC;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	return errf(err, errlen, -EACCES, "%s requires an authentication scheme other than Basic or Bearer (HTTP 401)",
		    ep->host);
}
