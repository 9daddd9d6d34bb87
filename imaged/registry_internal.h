/* What the files of the registry client share (registry.c: the client,
 * its requests, manifests and blobs; registry_creds.c: credentials;
 * registry_xfer.c: one transfer over libcurl; registry_auth.c: challenges
 * and tokens). Not an interface: registry.h is. */
#pragma once

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "macro.h"
#include "registry.h"

#define TOKEN_MAX (64u << 10)        /* one bearer token */
#define ERRBODY_KEEP 4096            /* error reply bytes kept for the message */
#define HOST_MAX 255
#define MAX_RETRIES 4        /* origin: connect errors, resets, 429, 5xx */
#define MIRROR_RETRIES 1     /* a mirror gets one retry before the next host is tried */

struct creds {
	char *basic;          /* base64("user:password") */
	char *identity_token; /* OAuth2 refresh token */
	char *registry_token; /* bearer token used as is */
};

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct challenge {
	char *realm, *service, *scope;
};

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

struct op {
	const char *what; /* "manifest latest", "blob sha256:..." */
	char *path;       /* "/v2/<name>/manifests/<reference>" */
	const char *accept;
	size_t max;
	struct sink *sink;
	uint64_t range_start;
};

typedef int (*verify_fn)(const struct endpoint *ep, const struct op *op, const struct xfer *x, const void *ud,
			 char *err, size_t errlen);


/* ---- registry.c: helpers, the client, requests, manifests, blobs ---- */
/* Free a secret, wiped first. */
void free_secret(char *s);
static inline void free_secretp(char **p) { free_secret(*p); }
#define _cleanup_secret_ _cleanup_(free_secretp)
static inline bool is_empty(const char *s) { return !s || !*s; }
void sleep_ms(long ms);
long backoff_ms(int attempt);
/* Printable ASCII without spaces: what may go into a header as a token. */
bool token_is_safe(const char *s, size_t max);
bool is_base64(const char *s, size_t max);
/* Percent-encode everything but the RFC 3986 unreserved characters. */
char *url_encode(const char *s);
void challenge_free(struct challenge *ch);
/* Each host in turn (mirrors, then the origin) until one answers; a mirror
 * that fails for any reason hands over to the next host. */
int registry_request(struct registry_client *c, const struct op *op, verify_fn verify, const void *ud,
		     struct xfer **out, struct endpoint **served, char *err, size_t errlen);

/* ---- registry_creds.c: credentials ---- */
void creds_free(struct creds *cr);
bool auth_is_empty(const struct registry_auth *a);
/* Fill cr from one set of fields (the CRI AuthConfig or an auth.json entry).
 * what names the source for messages (never the values). */
int creds_fill(struct creds *cr, const char *user, const char *pass, const char *auth, const char *idtok,
	       const char *regtok, const char *what, char *err, size_t errlen);
const char *json_str(struct json_object *o, const char *key);
/* Look the hosts up in an auth.json. A missing file means anonymous; a file
 * that cannot be read or parsed is logged and also means anonymous (the
 * pull of a public image must not fail over an unrelated broken entry). */
int creds_from_auth_file(struct creds *cr, const char *file, const char *const *hosts, size_t n_hosts,
			 const char *repo, char *err, size_t errlen);

/* ---- registry_xfer.c: transfers ---- */
bool xfer_status_ok(const struct xfer *x);
void xfer_free(struct xfer *x);
size_t on_stream_body(struct xfer *x, const char *p, size_t len);
/* Run what can run now, without waiting. */
void xfer_step(struct xfer *x);
void xfer_unpause(struct xfer *x);
/* A failure that left no usable response. */
bool xfer_failed(const struct xfer *x);
bool curl_transient(CURLcode rc);
/* The error of a transfer that failed at the curl level. */
int xfer_curl_error(const struct endpoint *ep, const char *what, const struct xfer *x, char *err, size_t errlen);
int xfer_http_error(const struct endpoint *ep, const char *what, const struct xfer *x, char *err, size_t errlen);
/* Run one request, again after a transient failure (connect errors, resets,
 * 429, 5xx) with exponential backoff. Returns the last transfer: the caller
 * looks at its result and status. */
int registry_perform(struct registry_client *c, const struct endpoint *ep, const struct xreq *q, int retries,
		     struct xfer **out);

/* ---- registry_auth.c: challenges and tokens ---- */
/* The Authorization header value for the next request to ep (NULL: none). */
int endpoint_authz(struct registry_client *c, struct endpoint *ep, char **authz, uint64_t *gen, char *err,
		   size_t errlen);
/* A 401: learn what the host wants and get it. */
int endpoint_challenge(struct registry_client *c, struct endpoint *ep, const char *www_auth, uint64_t gen,
		       char *err, size_t errlen);
