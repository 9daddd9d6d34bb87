/* One registry transfer over libcurl (see registry_internal.h): the easy
 * handle with its headers, TLS and timeouts; every connection checked
 * against the registries policy on the address curl is about to use;
 * buffered bodies (bounded) and blob streams (pull-based, a bounded sink,
 * Range resumption); retries with backoff; curl and HTTP errors turned
 * into negative errno and a message naming the host. */
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
#define USER_AGENT "criod/" PACKAGE_VERSION
#define ERRBODY_DISCARD (1u << 20)   /* error reply bytes read before giving up */
#define HEADER_VALUE_MAX 1024        /* one captured header value */
#define WWW_AUTH_MAX (16u << 10)     /* all WWW-Authenticate values of a reply */
#define MAX_REDIRS 5
#define RETRY_AFTER_MAX_MS 10000
#define CONNECT_TIMEOUT_S 15L
#define LOW_SPEED_LIMIT 1L   /* bytes per second ... */
#define LOW_SPEED_TIME_S 30L /* ... for this long aborts a transfer */
#define BUFFERED_TIMEOUT_S 600L /* a whole manifest, config or token reply */

/* ------------------------------------------------------------- transfers */

bool xfer_status_ok(const struct xfer *x)
{
	if (x->status == 200)
		return true;
	return x->sink && x->range_start > 0 && x->status == 206;
}

void xfer_free(struct xfer *x)
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

size_t on_stream_body(struct xfer *x, const char *p, size_t len)
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

static registry_connect_fn connector;

void registry_set_connector(registry_connect_fn fn) { connector = fn; }

/* With a connector, curl connects to this placeholder (TEST-NET-1, never
 * reached: the socket comes from the connector) instead of resolving the
 * URL's host, any host and port. */
static struct curl_slist *connect_to;
static pthread_once_t connect_to_once = PTHREAD_ONCE_INIT;
static void connect_to_init(void) { connect_to = curl_slist_append(NULL, "::192.0.2.1:"); }

/* The connector's socket is connected already. */
static int sock_opt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
	(void)ud;
	(void)fd;
	(void)purpose;
	return CURL_SOCKOPT_ALREADY_CONNECTED;
}

/* A connection asked of the connector: authority from the URL the transfer
 * is at, the port curl is about to connect to. */
static curl_socket_t connect_socket(struct xfer *x, struct curl_sockaddr *a)
{
	const char *url = NULL;
	char hp[HOST_MAX + 8], why[sizeof(x->refusal)] = "";
	unsigned port = 0;
	int r;

	if (a->addr.sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)&a->addr)->sin_port);
	else if (a->addr.sa_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)&a->addr)->sin6_port);
	if (curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || !url ||
	    url_hostport(url, hp, sizeof(hp)) < 0 || port == 0)
		r = errf(why, sizeof(why), -EPERM, "cannot tell which host a connection is for: refused");
	else
		r = connector(hp, port, strncasecmp(url, "https://", 8) == 0, why, sizeof(why));
	if (r >= 0)
		return r;
	if (r == -EPERM || r == -EINVAL) {
		log_warn(NULL, "imaged refused a connection", "registry=%s error=\"%s\"", x->ep->host, why);
		if (!x->refused) {
			x->refused = true;
			snprintf(x->refusal, sizeof(x->refusal), "%s", why);
		}
	} else {
		log_debug(NULL, "no connection", "registry=%s error=\"%s\"", x->ep->host, why);
	}
	return CURL_SOCKET_BAD;
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

	if (purpose == CURLSOCKTYPE_IPCXN && connector)
		return connect_socket(x, a); /* imaged checks and connects */
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
	if (connector) {
		pthread_once(&connect_to_once, connect_to_init);
		if (!connect_to)
			goto fail;
		/* imaged goes through the environment's proxy for us, if any
		 * (a tunnel): curl itself uses none */
		curl_easy_setopt(e, CURLOPT_PROXY, "");
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, connect_to);
		curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, sock_opt);
	}
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
void xfer_step(struct xfer *x)
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

void xfer_unpause(struct xfer *x)
{
	if (x->paused && !x->done) {
		x->paused = false;
		curl_easy_pause(x->easy, CURLPAUSE_CONT); /* may call on_body at once */
	}
}

/* A failure that left no usable response. */
bool xfer_failed(const struct xfer *x)
{
	if (!x->done || x->result == CURLE_OK)
		return false;
	/* a stream whose body broke off is the reader's business (resume) */
	return !(x->sink && x->headers_done && xfer_status_ok(x));
}

bool curl_transient(CURLcode rc)
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
int xfer_curl_error(const struct endpoint *ep, const char *what, const struct xfer *x, char *err,
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

int xfer_http_error(const struct endpoint *ep, const char *what, const struct xfer *x, char *err, size_t errlen)
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
int registry_perform(struct registry_client *c, const struct endpoint *ep, const struct xreq *q, int retries,
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
