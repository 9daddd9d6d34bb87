/* The registry HTTP API v2 client over libcurl; see registry.h.
 *
 * Every request is one curl easy handle driven by its own multi handle, so a
 * blob can be read pull-based: registry_blob_read runs the transfer until the
 * bounded buffer has bytes, and the write callback pauses the transfer
 * (CURL_WRITEFUNC_PAUSE) while the buffer is full. DNS answers and TLS
 * sessions are shared between the requests of one client (CURLSH, locked).
 *
 * Hosts are tried in order: the configured mirrors, then the origin. Each
 * host has its own credentials (the CRI AuthConfig is only ever sent to the
 * origin; mirrors only get what auth.json holds for them), its own
 * authentication state and token cache, and its own TLS settings.
 *
 * Redirects are followed by curl. curl never sends a custom Authorization
 * header to another host, port or scheme than the one of the first URL
 * unless CURLOPT_UNRESTRICTED_AUTH is set (curl >= 7.58, and since 7.83 also
 * on a port or scheme change; verified against Debian 12's 7.88), and it is
 * never set here. A redirect from an HTTPS host may only go to HTTPS.
 *
 * No secret (password, auth string, token) is ever logged or put into an
 * error message; buffers that held one are wiped before they are freed.
 *
 * Every connection, to the origin, a mirror, a token server or wherever a
 * redirect points, is checked against the registries policy
 * (registry_policy.h) in the open-socket callback, on the address curl is
 * about to connect to. A connection that fails at the transport level
 * (refused, reset, timed out, TLS) to a host the configuration does not list
 * is reported to the caller only as "cannot reach registry HOST", the
 * details going to the log: a pull must not work as a port and TLS scanner
 * for the front end that asks for it. */
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
#include "registry_policy.h"
#include "util.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif
#define USER_AGENT "criod/" PACKAGE_VERSION

#define MANIFEST_MAX (4u << 20)      /* manifest and index bodies */
#define TOKEN_BODY_MAX (1u << 20)    /* token server replies */
#define TOKEN_MAX (64u << 10)        /* one bearer token */
#define AUTH_FILE_MAX (1u << 20)     /* auth.json */
#define CA_FILE_MAX (16u << 20)      /* a CA bundle */
#define CRED_MAX 4096                /* one username, password, auth string */
#define BLOB_BUF_CAP (1u << 20)      /* bytes buffered for a blob stream */
#define ERRBODY_KEEP 4096            /* error reply bytes kept for the message */
#define ERRBODY_DISCARD (1u << 20)   /* error reply bytes read before giving up */
#define HEADER_VALUE_MAX 1024        /* one captured header value */
#define WWW_AUTH_MAX (16u << 10)     /* all WWW-Authenticate values of a reply */
#define CHALLENGE_VALUE_MAX 2048     /* realm, service, scope */
#define HOST_MAX 255

#define MAX_RETRIES 4        /* origin: connect errors, resets, 429, 5xx */
#define MIRROR_RETRIES 1     /* a mirror gets one retry before the next host is tried */
#define MAX_RESUMES 5        /* Range resumptions of one blob */
#define MAX_REDIRS 5
#define BACKOFF_BASE_MS 200
#define RETRY_AFTER_MAX_MS 10000
#define CONNECT_TIMEOUT_S 15L
#define LOW_SPEED_LIMIT 1L   /* bytes per second ... */
#define LOW_SPEED_TIME_S 30L /* ... for this long aborts a transfer */
#define BUFFERED_TIMEOUT_S 600L /* a whole manifest, config or token reply */
#define TOKEN_DEFAULT_TTL_S 60

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* ------------------------------------------------------------ small helpers */

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void free_secretp(char **p) { free_secret(*p); }
#define _cleanup_secret_ _cleanup_(free_secretp)

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static long backoff_ms(int attempt)
{
	if (attempt > 6)
		attempt = 6;
	return (long)BACKOFF_BASE_MS << attempt;
}

static bool is_empty(const char *s) { return !s || !*s; }

/* Printable ASCII without spaces: what may go into a header as a token. */
static bool token_is_safe(const char *s, size_t max)
{
	size_t n = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++, n++)
		if (n >= max || (unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static bool is_base64(const char *s, size_t max)
{
	size_t n = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++, n++) {
		char ch = *s;
		if (n >= max || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
				  ch == '+' || ch == '/' || ch == '='))
			return false;
	}
	return true;
}

static char *base64_encode(const unsigned char *in, size_t len)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out, *o;
	size_t i;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	o = out;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = tbl[v >> 18 & 63];
		*o++ = tbl[v >> 12 & 63];
		*o++ = tbl[v >> 6 & 63];
		*o++ = tbl[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		*o++ = tbl[v >> 18 & 63];
		*o++ = tbl[v >> 12 & 63];
		*o++ = i + 1 < len ? tbl[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* Percent-encode everything but the RFC 3986 unreserved characters. */
static char *url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out, *o;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	o = out;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '.' || ch == '_' || ch == '~') {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}

/* A registry host as configured or parsed: name or [v6], optional :port. */
static bool host_is_valid(const char *h)
{
	size_t n = 0;

	if (!h || !*h)
		return false;
	for (; *h; h++, n++) {
		char ch = *h;
		if (n >= HOST_MAX || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
				       ch == '.' || ch == '-' || ch == ':' || ch == '[' || ch == ']' || ch == '_'))
			return false;
	}
	return true;
}

static bool repo_path_is_valid(const char *p)
{
	size_t n = 0;

	if (!p || !*p || *p == '/')
		return false;
	for (; *p; p++, n++) {
		char ch = *p;
		if (n >= 255 || !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
				  ch == '-' || ch == '/'))
			return false;
	}
	return true;
}

static bool tag_is_valid(const char *t)
{
	size_t n = 0;

	if (!t || !*t || *t == '.' || *t == '-')
		return false;
	for (; *t; t++, n++) {
		char ch = *t;
		if (n >= 128 || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
				  ch == '_' || ch == '.' || ch == '-'))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------- curl setup */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

int registry_global_init(void)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_init_result == CURLE_OK ? 0 : -ENOMEM;
}

/* curl takes its proxy from the environment; through one, the address a
 * connection goes to is the proxy's, not the registry's. */
static bool proxy_configured(void)
{
	static const char *const vars[] = { "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" };
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		const char *v = getenv(vars[i]);
		if (v && *v)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ credentials */

struct creds {
	char *basic;          /* base64("user:password") */
	char *identity_token; /* OAuth2 refresh token */
	char *registry_token; /* bearer token used as is */
};

static void creds_free(struct creds *cr)
{
	free_secret(cr->basic);
	free_secret(cr->identity_token);
	free_secret(cr->registry_token);
	*cr = (struct creds){ 0 };
}

static bool auth_is_empty(const struct registry_auth *a)
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
	*out = base64_encode((const unsigned char *)joined, ul + 1 + pl);
	return *out ? 0 : -ENOMEM;
}

/* Fill cr from one set of fields (the CRI AuthConfig or an auth.json entry).
 * what names the source for messages (never the values). */
static int creds_fill(struct creds *cr, const char *user, const char *pass, const char *auth, const char *idtok,
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

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Look the hosts up in an auth.json. A missing file means anonymous; a file
 * that cannot be read or parsed is logged and also means anonymous (the
 * pull of a public image must not fail over an unrelated broken entry). */
static int creds_from_auth_file(struct creds *cr, const char *file, const char *const *hosts, size_t n_hosts,
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

/* --------------------------------------------------------------- the client */

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct challenge {
	char *realm, *service, *scope;
};

static void challenge_free(struct challenge *ch)
{
	free(ch->realm);
	free(ch->service);
	free(ch->scope);
	*ch = (struct challenge){ 0 };
}

struct endpoint {
	char *host;    /* "mirror.example:5000" */
	bool mirror;
	bool listed;   /* the configuration has a [registry.HOST] section for it */
	bool insecure; /* plain HTTP */
	char *ca_blob; /* system CAs + ca_file, or NULL for the system CAs only */
	size_t ca_blob_len;
	struct creds creds; /* immutable after registry_client_new */
	/* under client->lock */
	bool down; /* a mirror that could not be reached: skipped from now on */
	enum auth_scheme scheme;
	struct challenge ch;
	char *token;
	int64_t token_expiry_ns;
	uint64_t token_gen;
};

struct registry_client {
	const struct criod_config *cfg; /* the registries policy, sections; may be NULL */
	bool proxied;                   /* a proxy is configured in the environment */
	char *domain; /* "docker.io" */
	char *path;   /* "library/busybox" */
	struct endpoint *eps; /* mirrors in order, then the origin */
	size_t n_eps, n_alloc;
	pthread_mutex_t lock;      /* endpoint state */
	pthread_mutex_t auth_lock; /* one token fetch at a time */
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
	struct registry_client *c = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
	struct registry_client *c = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&c->share_locks[data]);
}

static int build_ca_blob(struct endpoint *ep, const char *ca_file, char *err, size_t errlen)
{
	_cleanup_free_ char *sys = NULL, *extra = NULL;
	size_t sys_len = 0, extra_len = 0;
	int r;

	r = read_file(ca_file, CA_FILE_MAX, &extra, &extra_len);
	if (r < 0)
		return errf(err, errlen, r, "registry %s: cannot read ca_file %s: %s", ep->host, ca_file, strerror(-r));
	r = read_file(SYSTEM_CA_BUNDLE, CA_FILE_MAX, &sys, &sys_len);
	if (r < 0 && r != -ENOENT)
		log_warn_errno(r, NULL, "cannot read the system CA bundle", "path=%s", SYSTEM_CA_BUNDLE);
	ep->ca_blob = malloc(sys_len + extra_len + 2);
	if (!ep->ca_blob)
		return -ENOMEM;
	if (sys_len)
		memcpy(ep->ca_blob, sys, sys_len);
	ep->ca_blob[sys_len] = '\n';
	memcpy(ep->ca_blob + sys_len + 1, extra, extra_len);
	ep->ca_blob_len = sys_len + 1 + extra_len;
	ep->ca_blob[ep->ca_blob_len] = '\0';
	return 0;
}

static void endpoint_free(struct endpoint *ep)
{
	free(ep->host);
	free(ep->ca_blob);
	creds_free(&ep->creds);
	challenge_free(&ep->ch);
	free_secret(ep->token);
}

void registry_client_free(struct registry_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->eps && i < c->n_alloc; i++) /* unused slots are zeroed */
		endpoint_free(&c->eps[i]);
	free(c->eps);
	if (c->share)
		curl_share_cleanup(c->share);
	for (size_t i = 0; i < ARRAY_SIZE(c->share_locks); i++)
		pthread_mutex_destroy(&c->share_locks[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->auth_lock);
	free(c->domain);
	free(c->path);
	free(c);
}

/* A mirror entry: "host[:port]", optionally "http://" or "https://" in
 * front and "/" behind. */
static int parse_mirror(const char *s, char **host, int *scheme_insecure)
{
	const char *p = s;
	size_t n;

	*scheme_insecure = -1;
	if (strncasecmp(p, "https://", 8) == 0) {
		p += 8;
		*scheme_insecure = 0;
	} else if (strncasecmp(p, "http://", 7) == 0) {
		p += 7;
		*scheme_insecure = 1;
	}
	n = strlen(p);
	while (n && p[n - 1] == '/')
		n--;
	*host = strndup(p, n);
	if (!*host)
		return -ENOMEM;
	if (!host_is_valid(*host)) {
		free(*host);
		*host = NULL;
		return -EINVAL;
	}
	return 0;
}

int registry_client_new(const struct criod_config *cfg, const struct image_ref *ref,
			const struct registry_auth *auth, struct registry_client **out, char *err, size_t errlen)
{
	struct registry_client *c = NULL;
	const struct registry_config *rc = NULL;
	const char *origin;
	int r;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!ref || !ref->domain || !ref->path)
		return errf(err, errlen, -EINVAL, "no image reference");
	origin = ref_registry_host(ref->domain);
	if (!host_is_valid(ref->domain) || !host_is_valid(origin))
		return errf(err, errlen, -EINVAL, "invalid registry host \"%s\"", ref->domain);
	if (!repo_path_is_valid(ref->path))
		return errf(err, errlen, -EINVAL, "invalid repository name \"%s\"", ref->path);

	if (cfg) {
		rc = config_registry(cfg, ref->domain);
		if (!rc && strcmp(origin, ref->domain) != 0)
			rc = config_registry(cfg, origin);
	}
	/* Blocked means blocked: no mirror may serve it either. */
	if (rc && rc->blocked)
		return errf(err, errlen, -EPERM, "registry %s is blocked by configuration", ref->domain);
	/* An address literal outside the public ranges is refused before any
	 * request; names are checked on their addresses at connect time. */
	if (!rc && (r = registry_policy_check_host(cfg, origin, err, errlen)) < 0)
		return r;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_result != CURLE_OK)
		return errf(err, errlen, -ENOMEM, "cannot initialise libcurl: %s", curl_easy_strerror(curl_init_result));

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->auth_lock, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(c->share_locks); i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	c->cfg = cfg;
	c->proxied = proxy_configured();
	c->domain = strdup(ref->domain);
	c->path = strdup(ref->path);
	c->n_alloc = (rc ? rc->n_mirrors : 0) + 1;
	c->eps = calloc(c->n_alloc, sizeof(*c->eps));
	if (!c->domain || !c->path || !c->eps) {
		r = -ENOMEM;
		goto fail;
	}
	c->share = curl_share_init();
	if (c->share) {
		curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
		curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
		curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
		curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
		curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	}

	/* The mirrors, each with its own [registry.MIRROR] section. */
	for (size_t i = 0; rc && i < rc->n_mirrors; i++) {
		struct endpoint *ep = &c->eps[c->n_eps];
		const struct registry_config *mc;
		int scheme_insecure;

		r = parse_mirror(rc->mirrors[i], &ep->host, &scheme_insecure);
		if (r == -ENOMEM)
			goto fail;
		if (r < 0) {
			log_warn(NULL, "ignoring an invalid registry mirror", "registry=%s mirror=\"%s\"", ref->domain,
				 rc->mirrors[i]);
			continue;
		}
		if (strcasecmp(ep->host, origin) == 0 || strcasecmp(ep->host, ref->domain) == 0) {
			free(ep->host);
			ep->host = NULL;
			continue;
		}
		mc = cfg ? config_registry(cfg, ep->host) : NULL;
		if (mc && mc->blocked) {
			log_warn(NULL, "skipping a blocked registry mirror", "registry=%s mirror=%s", ref->domain, ep->host);
			free(ep->host);
			ep->host = NULL;
			continue;
		}
		if (!mc) {
			char perr[512];
			if (registry_policy_check_host(cfg, ep->host, perr, sizeof(perr)) < 0) {
				log_warn(NULL, "skipping a registry mirror the registries policy refuses",
					 "registry=%s mirror=%s error=\"%s\"", ref->domain, ep->host, perr);
				free(ep->host);
				ep->host = NULL;
				continue;
			}
		}
		ep->mirror = true;
		ep->listed = mc != NULL;
		ep->insecure = scheme_insecure >= 0 ? scheme_insecure == 1 : (mc && mc->insecure);
		if (mc && !is_empty(mc->ca_file) && !ep->insecure) {
			char cerr[512];
			r = build_ca_blob(ep, mc->ca_file, cerr, sizeof(cerr));
			if (r == -ENOMEM)
				goto fail;
			if (r < 0) {
				log_warn(NULL, "skipping a registry mirror whose CA file cannot be read", "%s", cerr);
				endpoint_free(ep);
				*ep = (struct endpoint){ 0 };
				continue;
			}
		}
		if (cfg) {
			const char *hosts[] = { ep->host };
			r = creds_from_auth_file(&ep->creds, cfg->auth_file, hosts, 1, c->path, err, errlen);
			if (r < 0)
				goto fail;
		}
		c->n_eps++;
	}

	/* The origin. */
	{
		struct endpoint *ep = &c->eps[c->n_eps];

		ep->host = strdup(origin);
		if (!ep->host) {
			r = -ENOMEM;
			goto fail;
		}
		c->n_eps++;
		ep->listed = rc != NULL;
		ep->insecure = rc && rc->insecure;
		if (rc && !is_empty(rc->ca_file) && !ep->insecure) {
			r = build_ca_blob(ep, rc->ca_file, err, errlen);
			if (r < 0)
				goto fail;
		}
		if (!auth_is_empty(auth)) {
			r = creds_fill(&ep->creds, auth->username, auth->password, auth->auth, auth->identity_token,
				       auth->registry_token, "credentials", err, errlen);
			if (r < 0)
				goto fail;
		} else if (cfg) {
			const char *hosts[4] = { ref->domain, origin, NULL, NULL };
			if (strcmp(ref->domain, "docker.io") == 0) {
				hosts[2] = "index.docker.io";
				hosts[3] = "registry-1.docker.io";
			}
			r = creds_from_auth_file(&ep->creds, cfg->auth_file, hosts, ARRAY_SIZE(hosts), c->path, err,
						 errlen);
			if (r < 0)
				goto fail;
		}
	}
	if (err && errlen)
		err[0] = '\0'; /* a skipped auth.json entry is not this call's error */
	*out = c;
	return 0;
fail:
	registry_client_free(c);
	if (r == -ENOMEM && err && errlen && !err[0])
		errf(err, errlen, r, "out of memory");
	return r;
}

/* ------------------------------------------------------------- transfers */

/* The receiving end of a blob stream: a bounded buffer. */
struct sink {
	unsigned char *buf;
	size_t cap, off, len;
	uint64_t pos;              /* blob bytes accepted so far (stream offset of the buffer's end) */
	_Atomic uint64_t received; /* body bytes received over the network */
	int64_t size;              /* expected size, -1 when unknown */
};

struct xreq {
	const char *url;
	const char *accept;  /* Accept header value or NULL */
	const char *authz;   /* Authorization header value or NULL */
	const char *post;    /* urlencoded form for a POST, NULL for GET */
	struct sink *sink;   /* stream into this; NULL: buffer the body */
	uint64_t range_start;
	size_t max; /* buffered body limit */
};

struct xfer {
	struct registry_client *c;
	const struct endpoint *ep;
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
	bool added, done, headers_done, paused, has_location;
	bool framed; /* the reply's end is marked (Content-Length, chunked, HTTP/2): a clean end is the end */
	CURLcode result;
	long status;
	/* headers of the last response */
	char *www_auth, *content_type, *docker_digest, *content_range;
	long retry_after;
	/* buffered body */
	char *body;
	size_t body_len, body_cap, max;
	bool too_large;
	/* streamed body */
	struct sink *sink;
	uint64_t range_start, skip;
	bool body_started, bad_range, overflow;
	/* a connection the registries policy refused (the first) */
	bool refused;
	char refusal[512];
	/* the body of an error reply, for the message */
	char errbody[ERRBODY_KEEP + 1];
	size_t errbody_len;
	uint64_t errbody_total;
};

static bool xfer_status_ok(const struct xfer *x)
{
	if (x->status == 200)
		return true;
	return x->sink && x->range_start > 0 && x->status == 206;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->easy) {
		if (x->added)
			curl_multi_remove_handle(x->multi, x->easy);
		curl_easy_cleanup(x->easy);
	}
	if (x->multi)
		curl_multi_cleanup(x->multi);
	for (struct curl_slist *l = x->hdrs; l; l = l->next)
		if (l->data)
			explicit_bzero(l->data, strlen(l->data)); /* the Authorization header */
	curl_slist_free_all(x->hdrs);
	free(x->www_auth);
	free(x->content_type);
	free(x->docker_digest);
	free(x->content_range);
	if (x->body) {
		explicit_bzero(x->body, x->body_len); /* may be a token reply */
		free(x->body);
	}
	free(x);
}

static void set_header_value(char **dst, const char *v, size_t n)
{
	free(*dst);
	*dst = n <= HEADER_VALUE_MAX ? strndup(v, n) : NULL;
}

static size_t on_header(char *p, size_t sz, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = sz * nmemb, l = len;
	const char *colon, *v;
	size_t nl, vl;

	while (l && (p[l - 1] == '\r' || p[l - 1] == '\n'))
		l--;
	if (l >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* a new response (after a redirect or a 1xx): forget the last */
		const char *sp = memchr(p, ' ', l);
		x->status = 0;
		if (sp && (size_t)(sp - p) + 4 <= l && sp[1] >= '1' && sp[1] <= '5' && sp[2] >= '0' && sp[2] <= '9' &&
		    sp[3] >= '0' && sp[3] <= '9')
			x->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		x->headers_done = false;
		x->has_location = false;
		x->framed = l >= 6 && p[5] >= '2' && p[5] <= '9'; /* HTTP/2, HTTP/3 */
		x->retry_after = 0;
		free(x->www_auth);
		free(x->content_type);
		free(x->docker_digest);
		free(x->content_range);
		x->www_auth = x->content_type = x->docker_digest = x->content_range = NULL;
		return len;
	}
	if (l == 0) {
		/* end of this response's headers: final unless curl follows it */
		if (x->status >= 200 && !(x->status >= 300 && x->status < 400 && x->has_location))
			x->headers_done = true;
		return len;
	}
	colon = memchr(p, ':', l);
	if (!colon)
		return len;
	nl = (size_t)(colon - p);
	v = colon + 1;
	vl = l - nl - 1;
	while (vl && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
#define HDR_IS(name) (nl == STRLEN(name) && strncasecmp(p, name, nl) == 0)
	if (HDR_IS("WWW-Authenticate")) {
		size_t old = x->www_auth ? strlen(x->www_auth) : 0;
		if (old + vl + 3 <= WWW_AUTH_MAX) {
			char *n = realloc(x->www_auth, old + vl + 3);
			if (n) {
				if (old) {
					memcpy(n + old, ", ", 2);
					old += 2;
				}
				memcpy(n + old, v, vl);
				n[old + vl] = '\0';
				x->www_auth = n;
			}
		}
	} else if (HDR_IS("Content-Type")) {
		set_header_value(&x->content_type, v, vl);
	} else if (HDR_IS("Docker-Content-Digest")) {
		set_header_value(&x->docker_digest, v, vl);
	} else if (HDR_IS("Content-Range")) {
		set_header_value(&x->content_range, v, vl);
	} else if (HDR_IS("Content-Length")) {
		x->framed = true;
	} else if (HDR_IS("Transfer-Encoding")) {
		for (size_t i = 0; i + 7 <= vl; i++)
			if (strncasecmp(v + i, "chunked", 7) == 0)
				x->framed = true;
	} else if (HDR_IS("Location")) {
		x->has_location = vl > 0;
	} else if (HDR_IS("Retry-After")) {
		long s = 0;
		size_t i;
		for (i = 0; i < vl && v[i] >= '0' && v[i] <= '9' && s < 100000; i++)
			s = s * 10 + (v[i] - '0');
		x->retry_after = i == vl ? s : 0;
	}
#undef HDR_IS
	return len;
}

/* "bytes N-M/T" starting at want. */
static bool content_range_starts_at(const char *cr, uint64_t want)
{
	uint64_t n = 0;
	const char *p;

	if (!cr || strncasecmp(cr, "bytes ", 6) != 0)
		return false;
	p = cr + 6;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	return *p == '-' && n == want;
}

static size_t on_stream_body(struct xfer *x, const char *p, size_t len)
{
	struct sink *s = x->sink;
	size_t m = len;

	if (!x->body_started) {
		x->body_started = true;
		if (x->range_start > 0) {
			if (x->status == 200) {
				x->skip = x->range_start; /* the server ignored Range */
			} else if (!content_range_starts_at(x->content_range, x->range_start)) {
				x->bad_range = true;
				return 0;
			}
		}
	}
	/* All or nothing: a paused chunk is handed to us again on unpause. */
	if (s->len > 0 && s->len + len > s->cap) {
		x->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (len > s->cap) { /* a chunk larger than the buffer (not seen with curl's 16 KiB writes) */
		unsigned char *n = realloc(s->buf, len);
		if (!n)
			return 0;
		s->buf = n;
		s->cap = len;
		s->off = 0;
	}
	atomic_fetch_add(&s->received, (uint64_t)len);
	if (x->skip) {
		size_t k = x->skip < m ? (size_t)x->skip : m;
		x->skip -= k;
		p += k;
		m -= k;
	}
	if (m == 0)
		return len;
	if (s->size >= 0 && s->pos + m > (uint64_t)s->size) {
		x->overflow = true;
		return 0;
	}
	if (s->off + s->len + m > s->cap) {
		memmove(s->buf, s->buf + s->off, s->len);
		s->off = 0;
	}
	memcpy(s->buf + s->off + s->len, p, m);
	s->len += m;
	s->pos += m;
	return len;
}

static size_t on_body(char *p, size_t sz, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = sz * nmemb;

	if (!xfer_status_ok(x)) {
		size_t keep = ERRBODY_KEEP - x->errbody_len;
		if (keep > len)
			keep = len;
		memcpy(x->errbody + x->errbody_len, p, keep);
		x->errbody_len += keep;
		x->errbody[x->errbody_len] = '\0';
		x->errbody_total += len;
		return x->errbody_total > ERRBODY_DISCARD ? 0 : len;
	}
	if (x->sink)
		return on_stream_body(x, p, len);
	if (x->body_len + len > x->max) {
		x->too_large = true;
		return 0;
	}
	if (x->body_len + len + 1 > x->body_cap) {
		size_t ncap = x->body_cap ? x->body_cap : 16384;
		char *n;
		while (ncap < x->body_len + len + 1)
			ncap *= 2;
		if (ncap > x->max + 1)
			ncap = x->max + 1;
		n = malloc(ncap);
		if (!n)
			return 0;
		if (x->body) {
			memcpy(n, x->body, x->body_len);
			explicit_bzero(x->body, x->body_len);
			free(x->body);
		}
		x->body = n;
		x->body_cap = ncap;
	}
	memcpy(x->body + x->body_len, p, len);
	x->body_len += len;
	x->body[x->body_len] = '\0';
	return len;
}

/* "host[:port]" of a URL, as a [registry.HOST] section would name it. */
static int url_hostport(const char *url, char *out, size_t len)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	int r = -EINVAL;

	if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
		int n = curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port
				? snprintf(out, len, "%s:%s", host, port)
				: snprintf(out, len, "%s", host);
		r = n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return r;
}

/* Is the host this transfer is at now (after redirects) one the
 * configuration lists? */
static bool xfer_host_listed(const struct xfer *x)
{
	const char *url = NULL;
	char hp[HOST_MAX + 8];

	if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || !url ||
	    url_hostport(url, hp, sizeof(hp)) < 0)
		return false;
	if (x->ep->listed && strcasecmp(hp, x->ep->host) == 0)
		return true;
	return x->c->cfg && config_registry(x->c->cfg, hp) != NULL;
}

/* libcurl's open-socket callback: the registries policy on the address of
 * each connection about to be made, for whatever URL the transfer is at
 * (the first, or a redirect's). Refused: no socket, and the transfer fails
 * with CURLE_COULDNT_CONNECT (x->refused says why). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct xfer *x = ud;
	const struct criod_config *cfg = x->c->cfg;
	const struct registry_config *rc;
	const char *url = NULL;
	char hp[HOST_MAX + 8], why[sizeof(x->refusal)];
	int r = 0;

	if (purpose != CURLSOCKTYPE_IPCXN || !cfg)
		goto open;
	if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || !url ||
	    url_hostport(url, hp, sizeof(hp)) < 0) {
		r = errf(why, sizeof(why), -EPERM, "cannot tell which host a connection is for: refused");
		goto out;
	}
	rc = config_registry(cfg, hp);
	if (rc && rc->blocked) {
		r = errf(why, sizeof(why), -EPERM, "registry %s is blocked by configuration", hp);
		goto out;
	}
	if (rc || (x->ep->listed && strcasecmp(hp, x->ep->host) == 0))
		goto open;
	if (x->c->proxied) /* the address is the proxy's: check what the name resolves to here */
		r = registry_policy_check_name(cfg, hp, why, sizeof(why));
	else {
		struct sockaddr_storage lit;
		r = registry_policy_check_addr(cfg, hp, &a->addr, hostport_literal(hp, &lit) == 1, why, sizeof(why));
	}
out:
	if (r < 0) {
		char addr[INET6_ADDRSTRLEN];
		addr_format(&a->addr, addr, sizeof(addr));
		log_warn(NULL, "connection refused by the registries policy", "registry=%s address=%s error=\"%s\"",
			 x->ep->host, addr, why);
		if (!x->refused) {
			x->refused = true;
			snprintf(x->refusal, sizeof(x->refusal), "%s", why);
		}
		return CURL_SOCKET_BAD;
	}
open:
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static struct xfer *xfer_new(struct registry_client *c, const struct endpoint *ep, const struct xreq *q)
{
	struct xfer *x = calloc(1, sizeof(*x));
	CURL *e;

	if (!x)
		return NULL;
	x->c = c;
	x->ep = ep;
	x->sink = q->sink;
	x->range_start = q->range_start;
	x->max = q->max;
	x->multi = curl_multi_init();
	x->easy = e = curl_easy_init();
	if (!x->multi || !e)
		goto fail;

	if (q->accept) {
		_cleanup_free_ char *h = xasprintf("Accept: %s", q->accept);
		struct curl_slist *l = h ? curl_slist_append(x->hdrs, h) : NULL;
		if (!l)
			goto fail;
		x->hdrs = l;
	}
	if (q->authz) {
		_cleanup_secret_ char *h = xasprintf("Authorization: %s", q->authz);
		struct curl_slist *l = h ? curl_slist_append(x->hdrs, h) : NULL;
		if (!l)
			goto fail;
		x->hdrs = l;
	}

	curl_easy_setopt(e, CURLOPT_URL, q->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	/* Every connection passes the registries policy first. */
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	if (x->hdrs)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	/* Redirects: followed, never with credentials to another host, and
	 * never from HTTPS down to HTTP. */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)MAX_REDIRS);
	curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, ep->insecure ? "http,https" : "https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(ep->insecure ? CURLPROTO_HTTP | CURLPROTO_HTTPS : CURLPROTO_HTTPS));
#endif
	/* TLS: always verified; the system CAs, plus the registry's ca_file. */
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ep->ca_blob) {
#if LIBCURL_VERSION_NUM >= 0x074d00
		struct curl_blob blob = { .data = ep->ca_blob, .len = ep->ca_blob_len, .flags = CURL_BLOB_COPY };
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
#else
#error "libcurl >= 7.77 is needed for CURLOPT_CAINFO_BLOB"
#endif
	}
	/* A hung peer must not hang a pull. */
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_LIMIT);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_TIME_S);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (!q->sink) /* a trickle must not hold a small document forever; streams have the reader's pace */
		curl_easy_setopt(e, CURLOPT_TIMEOUT, BUFFERED_TIMEOUT_S);
	if (c->share)
		curl_easy_setopt(e, CURLOPT_SHARE, c->share);
	if (q->range_start > 0) {
		char range[32];
		snprintf(range, sizeof(range), "%" PRIu64 "-", q->range_start);
		curl_easy_setopt(e, CURLOPT_RANGE, range); /* copied by curl */
	}
	if (q->post)
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, q->post);
	/* The proxy environment (https_proxy, no_proxy, ...) is left to curl. */

	if (curl_multi_add_handle(x->multi, e) != CURLM_OK)
		goto fail;
	x->added = true;
	return x;
fail:
	xfer_free(x);
	return NULL;
}

static void xfer_collect(struct xfer *x)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(x->multi, &left)))
		if (m->msg == CURLMSG_DONE && m->easy_handle == x->easy) {
			long code = 0;
			x->done = true;
			x->result = m->data.result;
			if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code > 0)
				x->status = code;
		}
}

/* Run what can run now, without waiting. */
static void xfer_step(struct xfer *x)
{
	int running = 0;
	CURLMcode mc;

	mc = curl_multi_perform(x->multi, &running);
	if (mc != CURLM_OK) {
		x->done = true;
		x->result = CURLE_FAILED_INIT;
		snprintf(x->errbuf, sizeof(x->errbuf), "curl: %s", curl_multi_strerror(mc));
		return;
	}
	xfer_collect(x);
}

/* Run until the transfer is done or, for a stream, until the final
 * response's headers are in. */
static void xfer_run(struct xfer *x)
{
	while (!x->done && !(x->sink && x->headers_done)) {
		xfer_step(x);
		if (x->done || (x->sink && x->headers_done))
			break;
		curl_multi_poll(x->multi, NULL, 0, 1000, NULL);
	}
}

static void xfer_unpause(struct xfer *x)
{
	if (x->paused && !x->done) {
		x->paused = false;
		curl_easy_pause(x->easy, CURLPAUSE_CONT); /* may call on_body at once */
	}
}

/* A failure that left no usable response. */
static bool xfer_failed(const struct xfer *x)
{
	if (!x->done || x->result == CURLE_OK)
		return false;
	/* a stream whose body broke off is the reader's business (resume) */
	return !(x->sink && x->headers_done && xfer_status_ok(x));
}

static bool curl_transient(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return true;
	default:
		return false;
	}
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return -ECONNREFUSED; /* unreachable (or not trustworthy) */
	default:
		return -EPROTO;
	}
}

/* The error of a transfer that failed at the curl level. */
static int xfer_curl_error(const struct endpoint *ep, const char *what, const struct xfer *x, char *err,
			   size_t errlen)
{
	const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result);

	if (x->too_large)
		return errf(err, errlen, -EPROTO, "%s from %s is larger than %zu bytes", what, ep->host, x->max);
	if (x->overflow)
		return errf(err, errlen, -EBADMSG, "%s from %s is larger than its expected size %" PRId64, what,
			    ep->host, x->sink ? x->sink->size : (int64_t)-1);
	if (x->bad_range)
		return errf(err, errlen, -EPROTO, "%s from %s: the reply to a range request starts at the wrong offset",
			    what, ep->host);
	if (x->refused)
		return errf(err, errlen, -EPERM, "%s: %s", what, x->refusal);
	if (!xfer_host_listed(x)) {
		/* Not a host the operator named: no port or TLS probing through
		 * us. The details are the log's. */
		const char *url = NULL;
		char hp[HOST_MAX + 8] = "?";
		if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url)
			(void)url_hostport(url, hp, sizeof(hp));
		log_warn(NULL, "cannot reach registry", "registry=%s host=%s what=\"%s\" curl=%d error=\"%s\"", ep->host,
			 hp, what, (int)x->result, detail);
		return errf(err, errlen, -ECONNREFUSED, "%s: cannot reach registry %s", what, ep->host);
	}
	if (x->result == CURLE_PEER_FAILED_VERIFICATION)
		return errf(err, errlen, -ECONNREFUSED, "%s from %s: TLS certificate verification failed: %s", what,
			    ep->host, detail);
	return errf(err, errlen, curl_errno(x->result), "%s from %s: %s (curl error %d)", what, ep->host, detail,
		    (int)x->result);
}

/* The registry's own error words ({"errors":[{"code":..,"message":..}]}),
 * as printable ASCII, for the message. */
static void error_detail(const struct xfer *x, char *out, size_t outlen)
{
	struct json_object *root, *errs, *e0, *v;
	const char *code = NULL, *msg = NULL;
	char tmp[256];
	size_t j = 0;

	out[0] = '\0';
	if (!x->errbody_len)
		return;
	root = json_tokener_parse(x->errbody);
	if (!root)
		return;
	if (json_object_object_get_ex(root, "errors", &errs) && json_object_is_type(errs, json_type_array) &&
	    json_object_array_length(errs) > 0 && (e0 = json_object_array_get_idx(errs, 0)) &&
	    json_object_is_type(e0, json_type_object)) {
		if (json_object_object_get_ex(e0, "code", &v) && json_object_is_type(v, json_type_string))
			code = json_object_get_string(v);
		if (json_object_object_get_ex(e0, "message", &v) && json_object_is_type(v, json_type_string))
			msg = json_object_get_string(v);
	}
	if (code || msg)
		snprintf(tmp, sizeof(tmp), "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
	else
		tmp[0] = '\0';
	json_object_put(root);
	for (const char *p = tmp; *p && j + 1 < outlen; p++)
		out[j++] = (*p >= 0x20 && *p < 0x7f && *p != '"') ? *p : '?';
	out[j] = '\0';
}

static int xfer_http_error(const struct endpoint *ep, const char *what, const struct xfer *x, char *err, size_t errlen)
{
	char detail[160];
	const char *sep;

	error_detail(x, detail, sizeof(detail));
	sep = detail[0] ? ": " : "";
	switch (x->status) {
	case 404:
		return errf(err, errlen, -ENOENT, "%s not found on %s (HTTP 404%s%s)", what, ep->host, sep, detail);
	case 401:
		return errf(err, errlen, -EACCES, "%s: authentication to %s was refused (HTTP 401%s%s)", what,
			    ep->host, sep, detail);
	case 403:
		return errf(err, errlen, -EACCES, "%s: access denied by %s (HTTP 403%s%s)", what, ep->host, sep, detail);
	case 429:
		return errf(err, errlen, -EPROTO, "%s: %s keeps answering too many requests (HTTP 429)", what,
			    ep->host);
	default:
		if (x->status >= 500)
			return errf(err, errlen, -EPROTO, "%s: server error from %s (HTTP %ld%s%s)", what, ep->host,
				    x->status, sep, detail);
		return errf(err, errlen, -EPROTO, "%s: unexpected reply from %s (HTTP %ld%s%s)", what, ep->host,
			    x->status, sep, detail);
	}
}

/* Run one request, again after a transient failure (connect errors, resets,
 * 429, 5xx) with exponential backoff. Returns the last transfer: the caller
 * looks at its result and status. */
static int perform(struct registry_client *c, const struct endpoint *ep, const struct xreq *q, int retries,
		   struct xfer **out)
{
	for (int attempt = 0;; attempt++) {
		struct xfer *x = xfer_new(c, ep, q);
		bool retry;
		long delay;

		if (!x)
			return -ENOMEM;
		xfer_run(x);
		if (xfer_failed(x))
			retry = curl_transient(x->result) && !x->too_large && !x->overflow && !x->bad_range && !x->refused;
		else
			retry = x->status == 429 || (x->status >= 500 && x->status <= 599);
		if (!retry || attempt >= retries) {
			*out = x;
			return 0;
		}
		delay = backoff_ms(attempt);
		if (x->retry_after > 0 && x->retry_after * 1000 > delay)
			delay = x->retry_after * 1000 > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : x->retry_after * 1000;
		log_debug(NULL, "registry request failed, retrying", "host=%s status=%ld curl=%d attempt=%d delay_ms=%ld",
			  ep->host, x->status, (int)x->result, attempt + 1, delay);
		xfer_free(x);
		sleep_ms(delay);
	}
}

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
		r = perform(c, ep, &q, retries, &x);
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
		r = perform(c, ep, &q, retries, &x);
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
static int endpoint_authz(struct registry_client *c, struct endpoint *ep, char **authz, uint64_t *gen, char *err,
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
static int endpoint_challenge(struct registry_client *c, struct endpoint *ep, const char *www_auth, uint64_t gen,
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

/* ------------------------------------------------------------- requests */

struct op {
	const char *what; /* "manifest latest", "blob sha256:..." */
	char *path;       /* "/v2/<name>/manifests/<reference>" */
	const char *accept;
	size_t max;
	struct sink *sink;
	uint64_t range_start;
};

/* One request to one host, authenticating as it asks (once). On success
 * the transfer has a 200 (206) reply: done for a buffered body, headers in
 * for a stream. */
static int try_endpoint(struct registry_client *c, struct endpoint *ep, const struct op *op, struct xfer **out,
			char *err, size_t errlen)
{
	_cleanup_free_ char *url = xasprintf("%s://%s%s", ep->insecure ? "http" : "https", ep->host, op->path);
	bool reauthed = false;

	if (!url)
		return -ENOMEM;
	for (;;) {
		_cleanup_secret_ char *authz = NULL;
		struct xfer *x = NULL;
		uint64_t gen = 0;
		int r;

		r = endpoint_authz(c, ep, &authz, &gen, err, errlen);
		if (r < 0)
			return r;
		struct xreq q = {
			.url = url, .accept = op->accept, .authz = authz, .sink = op->sink,
			.range_start = op->range_start, .max = op->max,
		};
		r = perform(c, ep, &q, ep->mirror ? MIRROR_RETRIES : MAX_RETRIES, &x);
		if (r < 0)
			return r;
		if (xfer_failed(x)) {
			r = xfer_curl_error(ep, op->what, x, err, errlen);
			xfer_free(x);
			return r;
		}
		if (xfer_status_ok(x)) {
			*out = x;
			return 0;
		}
		if (x->status == 401 && !reauthed && !ep->creds.registry_token) {
			r = endpoint_challenge(c, ep, x->www_auth, gen, err, errlen);
			xfer_free(x);
			if (r < 0)
				return r;
			reauthed = true;
			continue;
		}
		if (x->status == 401)
			r = errf(err, errlen, -EACCES, "%s: %s refused the %s (HTTP 401)", op->what, ep->host,
				 ep->creds.registry_token ? "registry token"
				 : authz                  ? "credentials"
							  : "anonymous request");
		else
			r = xfer_http_error(ep, op->what, x, err, errlen);
		xfer_free(x);
		return r;
	}
}

static bool endpoint_skipped(struct registry_client *c, const struct endpoint *ep)
{
	bool down;

	if (!ep->mirror)
		return false;
	pthread_mutex_lock(&c->lock);
	down = ep->down;
	pthread_mutex_unlock(&c->lock);
	return down;
}

static void mirror_failed(struct registry_client *c, struct endpoint *ep, const struct op *op, int r, const char *why)
{
	log_warn(NULL, "registry mirror failed, trying the next host", "registry=%s mirror=%s what=\"%s\" error=\"%s\"",
		 c->domain, ep->host, op->what, why);
	if (r == -ECONNREFUSED || r == -ETIMEDOUT) {
		pthread_mutex_lock(&c->lock);
		ep->down = true;
		pthread_mutex_unlock(&c->lock);
	}
}

typedef int (*verify_fn)(const struct endpoint *ep, const struct op *op, const struct xfer *x, const void *ud,
			 char *err, size_t errlen);

/* Each host in turn (mirrors, then the origin) until one answers; a mirror
 * that fails for any reason hands over to the next host. */
static int request(struct registry_client *c, const struct op *op, verify_fn verify, const void *ud,
		   struct xfer **out, struct endpoint **served, char *err, size_t errlen)
{
	int r = -ECONNREFUSED;

	for (size_t i = 0; i < c->n_eps; i++) {
		struct endpoint *ep = &c->eps[i];
		struct xfer *x = NULL;

		if (endpoint_skipped(c, ep))
			continue;
		if (err && errlen)
			err[0] = '\0';
		r = try_endpoint(c, ep, op, &x, err, errlen);
		if (r >= 0 && verify) {
			r = verify(ep, op, x, ud, err, errlen);
			if (r < 0)
				xfer_free(x);
		}
		if (r == -ENOMEM)
			break;
		if (r >= 0) {
			log_info(NULL, "registry request served", "registry=%s host=%s%s what=\"%s\"", c->domain, ep->host,
				 ep->mirror ? " mirror=true" : "", op->what);
			*out = x;
			if (served)
				*served = ep;
			return 0;
		}
		if (ep->mirror)
			mirror_failed(c, ep, op, r, err ? err : "");
	}
	if (r == -ENOMEM && err && errlen)
		errf(err, errlen, r, "out of memory");
	return r;
}

/* ------------------------------------------------------------ manifests */

struct manifest_check {
	const char *expect; /* digest reference, or NULL */
	char *digest;       /* out */
};

static int verify_manifest(const struct endpoint *ep, const struct op *op, const struct xfer *x, const void *ud,
			   char *err, size_t errlen)
{
	const struct manifest_check *mc = ud;

	digest_buffer(x->body ? x->body : "", x->body_len, mc->digest);
	if (mc->expect && strcmp(mc->expect, mc->digest) != 0)
		return errf(err, errlen, -EBADMSG, "%s from %s does not match its digest: expected %s, got %s", op->what,
			    ep->host, mc->expect, mc->digest);
	if (!mc->expect && x->docker_digest && digest_is_valid(x->docker_digest) &&
	    strcmp(x->docker_digest, mc->digest) != 0)
		return errf(err, errlen, -EBADMSG,
			    "%s from %s does not match the Docker-Content-Digest it came with: expected %s, got %s",
			    op->what, ep->host, x->docker_digest, mc->digest);
	return 0;
}

int registry_get_manifest(struct registry_client *c, const char *reference, char **body, size_t *len,
			  char **content_type, char digest[DIGEST_STR_MAX], char *err, size_t errlen)
{
	_cleanup_free_ char *what = NULL, *path = NULL;
	bool by_digest;
	struct xfer *x = NULL;
	int r;

	*body = NULL;
	*len = 0;
	if (content_type)
		*content_type = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!c || !reference)
		return errf(err, errlen, -EINVAL, "no manifest reference");
	by_digest = strncmp(reference, "sha256:", 7) == 0;
	if (by_digest ? !digest_is_valid(reference) : !tag_is_valid(reference))
		return errf(err, errlen, -EINVAL, "invalid manifest reference \"%.80s\"", reference);
	what = xasprintf("manifest %s%s%s", c->path, by_digest ? "@" : ":", reference);
	path = xasprintf("/v2/%s/manifests/%s", c->path, reference);
	if (!what || !path)
		return errf(err, errlen, -ENOMEM, "out of memory");

	struct op op = { .what = what, .path = path, .accept = MANIFEST_ACCEPT, .max = MANIFEST_MAX };
	struct manifest_check mc = { .expect = by_digest ? reference : NULL, .digest = digest };
	r = request(c, &op, verify_manifest, &mc, &x, NULL, err, errlen);
	if (r < 0)
		return r;
	if (content_type && x->content_type && !(*content_type = strdup(x->content_type))) {
		xfer_free(x);
		return errf(err, errlen, -ENOMEM, "out of memory");
	}
	if (!x->body) { /* empty body */
		x->body = calloc(1, 1);
		if (!x->body) {
			xfer_free(x);
			return errf(err, errlen, -ENOMEM, "out of memory");
		}
	}
	*body = TAKE_PTR(x->body);
	*len = x->body_len;
	x->body_len = 0;
	xfer_free(x);
	return 0;
}

/* ---------------------------------------------------------------- blobs */

static int verify_blob(const struct endpoint *ep, const struct op *op, const struct xfer *x, const void *ud,
		       char *err, size_t errlen)
{
	const char *expect = ud;
	char got[DIGEST_STR_MAX];

	digest_buffer(x->body ? x->body : "", x->body_len, got);
	if (strcmp(expect, got) != 0)
		return errf(err, errlen, -EBADMSG, "%s from %s does not match its digest: expected %s, got %s", op->what,
			    ep->host, expect, got);
	return 0;
}

int registry_get_blob(struct registry_client *c, const char *digest, size_t max, char **body, size_t *len,
		      char *err, size_t errlen)
{
	_cleanup_free_ char *what = NULL, *path = NULL;
	struct xfer *x = NULL;
	int r;

	*body = NULL;
	*len = 0;
	if (err && errlen)
		err[0] = '\0';
	if (!c || !digest_is_valid(digest))
		return errf(err, errlen, -EINVAL, "invalid blob digest");
	what = xasprintf("blob %s", digest);
	path = xasprintf("/v2/%s/blobs/%s", c->path, digest);
	if (!what || !path)
		return errf(err, errlen, -ENOMEM, "out of memory");
	struct op op = { .what = what, .path = path, .max = max };
	r = request(c, &op, verify_blob, digest, &x, NULL, err, errlen);
	if (r < 0)
		return r;
	if (!x->body) {
		x->body = calloc(1, 1);
		if (!x->body) {
			xfer_free(x);
			return errf(err, errlen, -ENOMEM, "out of memory");
		}
	}
	*body = TAKE_PTR(x->body);
	*len = x->body_len;
	x->body_len = 0;
	xfer_free(x);
	return 0;
}

struct registry_blob {
	struct registry_client *c;
	struct endpoint *ep; /* the host that serves it */
	char digest[DIGEST_STR_MAX];
	char *what, *path;
	struct sink sink;
	struct xfer *x;
	struct digester *dg;
	uint64_t delivered;
	int resumes;
	int error;
	bool eof;
	char err[512];
};

void registry_blob_close(struct registry_blob *b)
{
	if (!b)
		return;
	xfer_free(b->x);
	digester_free(b->dg);
	free(b->sink.buf);
	free(b->what);
	free(b->path);
	free(b);
}

int registry_blob_open(struct registry_client *c, const char *digest, int64_t size, struct registry_blob **out,
		       char *err, size_t errlen)
{
	struct registry_blob *b;
	int r;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!c || !digest_is_valid(digest))
		return errf(err, errlen, -EINVAL, "invalid blob digest");
	b = calloc(1, sizeof(*b));
	if (!b)
		return errf(err, errlen, -ENOMEM, "out of memory");
	b->c = c;
	snprintf(b->digest, sizeof(b->digest), "%s", digest);
	b->sink.size = size >= 0 ? size : -1;
	b->sink.cap = BLOB_BUF_CAP;
	b->sink.buf = malloc(b->sink.cap);
	b->dg = digester_new();
	b->what = xasprintf("blob %s", digest);
	b->path = xasprintf("/v2/%s/blobs/%s", c->path, digest);
	if (!b->sink.buf || !b->dg || !b->what || !b->path) {
		registry_blob_close(b);
		return errf(err, errlen, -ENOMEM, "out of memory");
	}
	struct op op = { .what = b->what, .path = b->path, .sink = &b->sink };
	r = request(c, &op, NULL, NULL, &b->x, &b->ep, err, errlen);
	if (r < 0) {
		registry_blob_close(b);
		return r;
	}
	*out = b;
	return 0;
}

static int blob_fail(struct registry_blob *b, int r)
{
	b->error = r;
	xfer_free(b->x);
	b->x = NULL;
	return r;
}

/* The transfer is over and its bytes are all delivered: verify the blob, or
 * resume it where it broke off. Returns 1 at the verified end, 0 when a new
 * transfer runs, negative errno. */
static int blob_finish_or_resume(struct registry_blob *b)
{
	struct xfer *x = b->x;
	struct sink *s = &b->sink;
	bool complete;
	char got[DIGEST_STR_MAX];
	int r;

	if (x->overflow || x->bad_range || (x->result != CURLE_OK && !curl_transient(x->result)))
		return blob_fail(b, xfer_curl_error(b->ep, b->what, x, b->err, sizeof(b->err)));
	if (x->result == CURLE_OK && !xfer_status_ok(x))
		return blob_fail(b, xfer_http_error(b->ep, b->what, x, b->err, sizeof(b->err)));
	/* A reply that ended cleanly and whose end was marked is the whole blob
	 * as far as the server is concerned (a short one fails the size check
	 * below); a broken-off one, or one that just stopped, is resumed. */
	complete = x->result == CURLE_OK && x->framed;
	if (s->size >= 0 && s->pos >= (uint64_t)s->size)
		complete = true; /* more cannot be: see on_stream_body */

	if (!complete) {
		char why[CURL_ERROR_SIZE + 64];
		if (x->result != CURLE_OK)
			snprintf(why, sizeof(why), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
		else
			snprintf(why, sizeof(why), "the reply ended early");
		if (b->resumes >= MAX_RESUMES) {
			r = errf(b->err, sizeof(b->err), x->result == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNRESET,
				 "%s from %s: the download broke off %d times, last at byte %" PRIu64 ": %s", b->what,
				 b->ep->host, b->resumes + 1, s->pos, why);
			return blob_fail(b, r);
		}
		b->resumes++;
		log_info(NULL, "resuming a blob download", "host=%s digest=%s offset=%" PRIu64 " attempt=%d reason=\"%s\"",
			 b->ep->host, b->digest, s->pos, b->resumes, why);
		xfer_free(x);
		b->x = NULL;
		sleep_ms(backoff_ms(b->resumes - 1));
		struct op op = { .what = b->what, .path = b->path, .sink = s, .range_start = s->pos };
		r = try_endpoint(b->c, b->ep, &op, &b->x, b->err, sizeof(b->err));
		if (r < 0)
			return blob_fail(b, r);
		return 0;
	}

	xfer_free(x);
	b->x = NULL;
	if (s->size >= 0 && b->delivered != (uint64_t)s->size)
		return blob_fail(b, errf(b->err, sizeof(b->err), -EBADMSG,
					 "%s from %s has %" PRIu64 " bytes, expected %" PRId64, b->what, b->ep->host,
					 b->delivered, s->size));
	digester_final(b->dg, got);
	if (strcmp(got, b->digest) != 0)
		return blob_fail(b, errf(b->err, sizeof(b->err), -EBADMSG,
					 "%s from %s does not match its digest: expected %s, got %s", b->what,
					 b->ep->host, b->digest, got));
	b->eof = true;
	log_debug(NULL, "blob verified", "host=%s digest=%s bytes=%" PRIu64 " resumes=%d", b->ep->host, b->digest,
		  b->delivered, b->resumes);
	return 1;
}

ssize_t registry_blob_read(struct registry_blob *b, void *buf, size_t len)
{
	struct sink *s;

	if (!b)
		return -EINVAL;
	if (b->error)
		return b->error;
	if (b->eof)
		return 0;
	if (len == 0)
		return -EINVAL;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	s = &b->sink;
	for (;;) {
		if (s->len > 0) {
			size_t n = s->len < len ? s->len : len;
			memcpy(buf, s->buf + s->off, n);
			digester_update(b->dg, s->buf + s->off, n);
			s->off += n;
			s->len -= n;
			if (s->len == 0)
				s->off = 0;
			b->delivered += n;
			if (b->x && !b->x->done) {
				/* keep the pipe flowing while there is room */
				if (b->x->paused && s->cap - s->len >= CURL_MAX_WRITE_SIZE)
					xfer_unpause(b->x);
				else if (!b->x->paused && s->len < s->cap / 2)
					xfer_step(b->x);
			}
			return (ssize_t)n;
		}
		if (b->x && !b->x->done) {
			xfer_unpause(b->x);
			xfer_step(b->x);
			if (s->len == 0 && !b->x->done && !b->x->paused)
				curl_multi_poll(b->x->multi, NULL, 0, 1000, NULL);
			continue;
		}
		if (!b->x)
			return b->error ? b->error : -EIO;
		int r = blob_finish_or_resume(b);
		if (r < 0)
			return r;
		if (r > 0)
			return 0;
	}
}

const char *registry_blob_error(const struct registry_blob *b) { return b ? b->err : ""; }

uint64_t registry_blob_received(const struct registry_blob *b)
{
	return b ? atomic_load(&((struct registry_blob *)b)->sink.received) : 0;
}
