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
 * for the front end that asks for it.
 *
 * registry.c holds the client, its requests, manifests and blobs; the
 * credentials are registry_creds.c's, one transfer registry_xfer.c's, the
 * challenges and tokens registry_auth.c's (registry_internal.h). */
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

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

#define MANIFEST_MAX (4u << 20)      /* manifest and index bodies */
#define CA_FILE_MAX (16u << 20)      /* a CA bundle */
#define BLOB_BUF_CAP (1u << 20)      /* bytes buffered for a blob stream */

#define MAX_RESUMES 5        /* Range resumptions of one blob */
#define BACKOFF_BASE_MS 200

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* ------------------------------------------------------------ small helpers */

void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

long backoff_ms(int attempt)
{
	if (attempt > 6)
		attempt = 6;
	return (long)BACKOFF_BASE_MS << attempt;
}

/* Printable ASCII without spaces: what may go into a header as a token. */
bool token_is_safe(const char *s, size_t max)
{
	size_t n = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++, n++)
		if (n >= max || (unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

bool is_base64(const char *s, size_t max)
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

/* Percent-encode everything but the RFC 3986 unreserved characters. */
char *url_encode(const char *s)
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
bool registry_proxy_configured(void)
{
	static const char *const vars[] = { "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" };
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		const char *v = getenv(vars[i]);
		if (v && *v)
			return true;
	}
	return false;
}

/* --------------------------------------------------------------- the client */

void challenge_free(struct challenge *ch)
{
	free(ch->realm);
	free(ch->service);
	free(ch->scope);
	*ch = (struct challenge){ 0 };
}

static void share_lock(CURL *h _unused_, curl_lock_data data, curl_lock_access access _unused_, void *ud)
{
	struct registry_client *c = ud;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h _unused_, curl_lock_data data, void *ud)
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
	c->proxied = registry_proxy_configured();
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

/* ------------------------------------------------------------- requests */

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
		r = registry_perform(c, ep, &q, ep->mirror ? MIRROR_RETRIES : MAX_RETRIES, &x);
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

/* Each host in turn (mirrors, then the origin) until one answers; a mirror
 * that fails for any reason hands over to the next host. */
int registry_request(struct registry_client *c, const struct op *op, verify_fn verify, const void *ud,
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
	r = registry_request(c, &op, verify_manifest, &mc, &x, NULL, err, errlen);
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
	r = registry_request(c, &op, verify_blob, digest, &x, NULL, err, errlen);
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
	r = registry_request(c, &op, NULL, NULL, &b->x, &b->ep, err, errlen);
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
