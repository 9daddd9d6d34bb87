/* The registry HTTP API v2 client (distribution spec) over libcurl.
 *
 * HTTPS with the system CAs plus a per-registry CA file; plain HTTP only for
 * registries configured insecure. Anonymous, basic and bearer-token auth
 * (the WWW-Authenticate challenge flow, with scope repository:<name>:pull),
 * credentials from the CRI AuthConfig or a containers/docker auth.json.
 * Redirects (to blob storage hosts) are followed; the Authorization header
 * never goes to another host. Transient failures (connect errors, resets,
 * 429, 5xx) are retried with exponential backoff; every request has a
 * connect timeout and a low-speed timeout; the proxy environment
 * (https_proxy, http_proxy, no_proxy) is honoured. Mirrors configured for a
 * registry are tried first, in order, falling back to the origin. A blocked
 * registry is refused before any request.
 *
 * Thread-safe: one client serves one pull, whose layers may be fetched from
 * several threads at once (each request has its own curl handle; the token
 * cache is locked). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "digest.h"
#include "ref.h"

/* Credentials given with the pull (CRI AuthConfig); all may be NULL. */
struct registry_auth {
	const char *username, *password;
	const char *auth;           /* base64("user:password") */
	const char *identity_token; /* OAuth2 refresh token for the token endpoint */
	const char *registry_token; /* a bearer token to use as is */
};

struct registry_client;

/* libcurl's (and OpenSSL's) global set-up, configuration files included:
 * imaged-fetch makes it before it narrows its view of the file system.
 * registry_client_new makes it too, once. Returns 0 or -ENOMEM. */
int registry_global_init(void);

/* imaged-fetch has no network of its own (imaged/fetch_connect.h): with a
 * connector set, every connection a client makes (origin, mirror, token
 * server, redirect) is asked of it, for authority (host[:port] of the URL
 * it is for), port and whether the URL is https (tls: which of the
 * environment's proxies applies); it returns a connected TCP socket, or
 * negative errno with err saying why (-EPERM: refused, err in the
 * registries policy's words). curl then resolves no name
 * (CURLOPT_CONNECT_TO a placeholder address, whose socket the connector's
 * replaces) while the URL, so TLS's SNI and verification and the Host
 * header, stays the registry's, and uses no proxy itself: through one, the
 * socket is a tunnel imaged opened (imaged/proxy.h). Set once, before any
 * client. */
typedef int (*registry_connect_fn)(const char *authority, unsigned port, bool tls, char *err, size_t errlen);
void registry_set_connector(registry_connect_fn fn);
/* Is a proxy configured in the environment (http_proxy, https_proxy,
 * all_proxy)? */
bool registry_proxy_configured(void);

/* auth NULL or empty: look the registry up in cfg->auth_file (auth.json
 * format: {"auths": {"host[:port]": {"auth": "base64"}}}, also matching
 * "https://host" keys and docker.io's "https://index.docker.io/v1/"). */
int registry_client_new(const struct criod_config *cfg, const struct image_ref *ref,
			const struct registry_auth *auth, struct registry_client **out, char *err, size_t errlen);
void registry_client_free(struct registry_client *c);

/* GET /v2/<name>/manifests/<reference> (a tag or a digest) with the
 * MANIFEST_ACCEPT header, at most 4 MiB. The body's sha256 goes into digest;
 * when reference is a digest, a body that does not match it fails with
 * -EBADMSG. *content_type is malloc'd (may be NULL).
 * Errors: -ENOENT (manifest unknown), -EACCES (auth refused), -EPERM
 * (registry blocked), -EBADMSG (digest mismatch), -ETIMEDOUT, -ECONNREFUSED
 * (unreachable), -EPROTO (unexpected reply); err says which host and why. */
int registry_get_manifest(struct registry_client *c, const char *reference, char **body, size_t *len,
			  char **content_type, char digest[DIGEST_STR_MAX], char *err, size_t errlen);

/* GET a whole small blob (an image config), at most max bytes, verified
 * against digest (-EBADMSG on mismatch). */
int registry_get_blob(struct registry_client *c, const char *digest, size_t max, char **body, size_t *len,
		      char *err, size_t errlen);

/* A blob as a pull-based stream: registry_blob_read gives the next bytes.
 * A connection that drops mid-blob is resumed (Range: bytes=N-; if the
 * server ignores Range the first N bytes are skipped), up to a few times.
 * The bytes are hashed as they pass; at the end of the blob the digest and
 * the expected size are checked and a mismatch is -EBADMSG. No more than
 * about 1 MiB is buffered. */
struct registry_blob;
int registry_blob_open(struct registry_client *c, const char *digest, int64_t size, struct registry_blob **out,
		       char *err, size_t errlen);
/* Returns bytes read (> 0), 0 at the verified end, or negative errno (err
 * via registry_blob_error). */
ssize_t registry_blob_read(struct registry_blob *b, void *buf, size_t len);
const char *registry_blob_error(const struct registry_blob *b);
/* Bytes received so far over the network (for pull progress and size). */
uint64_t registry_blob_received(const struct registry_blob *b);
void registry_blob_close(struct registry_blob *b);
