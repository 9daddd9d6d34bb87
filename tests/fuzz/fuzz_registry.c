/* What imaged-fetch parses from a registry's (or a token server's)
 * answers, in imaged/registry.c (included whole, so the static parsers
 * are reached as libcurl's callbacks reach them): the response header
 * lines (on_header: status lines, WWW-Authenticate collected over lines,
 * Content-Type, Docker-Content-Digest, Content-Range, Retry-After...), the
 * body in chunks (on_body: buffered with its bound; or streamed into a
 * blob sink with a resumption offset, Content-Range checked, the sink
 * drained when it pauses as registry_blob_read does), the WWW-Authenticate
 * challenges (parse_challenges) and the token URL fetch_token builds from
 * them, the token server's JSON (parse_token_reply), a registry error
 * body (error_detail), and an auth file (creds_from_auth_file, the
 * administrator's, from the last part).
 *
 * Input parts (FUZZ_SEP): header lines; body; auth file. The first byte
 * of the headers part picks the mode (buffered or streamed, bounds, chunk
 * size, resumption offset). Oracles: the status is 0 or 100..599; kept
 * values stay in their bounds; a buffered body is exactly the bytes given
 * unless over the bound (then too_large); a streamed body gives exactly
 * the bytes after the resumption skip, never past the expected size; a
 * token accepted is printable without spaces and its lifetime in
 * [60 s, 1 day]; the token URL built from an accepted realm holds no
 * space or control byte (it goes into a request line); an error detail is
 * printable without quotes; credentials from the auth file are base64 or
 * header-safe tokens. */
#include "../../imaged/registry.c"
#include "../../imaged/registry_xfer.c"
#include "../../imaged/registry_auth.c"
#include "../../imaged/registry_creds.c"

#include <stdio.h>
#include <sys/mman.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_registry");
	return 0;
}

static void finding(const char *what)
{
	fprintf(stderr, "FINDING: %s\n", what);
	abort();
}

static bool no_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void headers(struct xfer *x, const uint8_t *p, size_t n)
{
	/* curl hands one header line at a time, with its CRLF */
	size_t i = 0;
	while (i < n) {
		const uint8_t *nl = memchr(p + i, '\n', n - i);
		size_t l = nl ? (size_t)(nl - (p + i)) + 1 : n - i;
		char *line = malloc(l ? l : 1);
		if (!line)
			abort();
		memcpy(line, p + i, l);
		if (on_header(line, 1, l, x) != l)
			finding("on_header did not take a whole line");
		free(line);
		if (x->status != 0 && (x->status < 100 || x->status > 599))
			finding("a status outside 100..599");
		if (x->www_auth && strlen(x->www_auth) + 1 > WWW_AUTH_MAX)
			finding("WWW-Authenticate kept over its bound");
		const char *vals[] = {x->content_type, x->docker_digest, x->content_range};
		for (size_t k = 0; k < 3; k++)
			if (vals[k] && strlen(vals[k]) > HEADER_VALUE_MAX)
				finding("a header value kept over its bound");
		if (x->retry_after < 0 || x->retry_after > 1000000)
			finding("Retry-After out of range");
		i += l;
	}
}

static void body(struct xfer *x, const uint8_t *p, size_t n, size_t chunk)
{
	size_t given = 0;
	for (size_t i = 0; i < n;) {
		size_t l = n - i < chunk ? n - i : chunk;
		char *c = malloc(l);
		if (!c)
			abort();
		memcpy(c, p + i, l);
		size_t r = on_body(c, 1, l, x);
		if (r == CURL_WRITEFUNC_PAUSE && x->sink) {
			/* registry_blob_read takes what is buffered, then unpauses */
			x->sink->off = x->sink->len = 0;
			x->paused = false;
			r = on_body(c, 1, l, x);
			if (r == CURL_WRITEFUNC_PAUSE)
				finding("a drained sink paused again");
		}
		free(c);
		if (r != l)
			break; /* curl ends the transfer */
		given += l;
		i += l;
	}
	if (!x->sink && xfer_status_ok(x)) {
		if (x->body_len > x->max)
			finding("a buffered body over its bound");
		if (!x->too_large && (x->body_len != given || (given && memcmp(x->body, p, given) != 0)))
			finding("a buffered body is not the bytes received");
	}
	if (!xfer_status_ok(x) && (x->errbody_len > ERRBODY_KEEP || x->errbody[x->errbody_len] != '\0'))
		finding("an error body kept over its bound");
}

static void challenges(const struct xfer *x)
{
	if (!x->www_auth)
		return;
	struct challenge ch = {0};
	bool basic, bearer;
	int r = parse_challenges(x->www_auth, &basic, &bearer, &ch);
	if (r != 0 && r != -EINVAL && r != -ENOMEM)
		finding("parse_challenges failed with an undocumented error");
	const char *v[] = {ch.realm, ch.service, ch.scope};
	for (size_t i = 0; i < 3; i++)
		if (v[i] && strlen(v[i]) >= CHALLENGE_VALUE_MAX)
			finding("a challenge value over its bound");
	if (r == 0 && bearer && !is_empty(ch.realm)) {
		/* fetch_token's checks, then the GET URL it builds */
		bool ok = value_is_printable(ch.realm) && !strchr(ch.realm, ' ') && !strchr(ch.realm, '#') &&
			  strncasecmp(ch.realm, "https://", 8) == 0 && (!ch.service || value_is_printable(ch.service)) &&
			  (!ch.scope || value_is_printable(ch.scope));
		if (ok) {
			char *url = strdup(ch.realm);
			const char *scope = is_empty(ch.scope) ? "repository:library/busybox:pull" : ch.scope;
			if (!url || (ch.service && append_param(&url, "service", ch.service, false) < 0) ||
			    append_param(&url, "scope", scope, true) < 0)
				abort();
			if (!no_space_or_control(url))
				finding("a token URL with a space or control byte");
			free(url);
		}
	}
	challenge_free(&ch);
}

static void token_reply(const struct xfer *x)
{
	struct endpoint ep = {.host = "registry.example"};
	char *token = NULL, err[256] = "";
	int64_t ttl = -1;
	int r = parse_token_reply(&ep, x, &token, &ttl, err, sizeof(err));
	if (r == 0) {
		if (!token || !token_is_safe(token, TOKEN_MAX) || !no_space_or_control(token))
			finding("an accepted token that is not header-safe");
		if (ttl < TOKEN_DEFAULT_TTL_S || ttl > 86400)
			finding("a token lifetime outside [60 s, 1 day]");
	} else if (r != -EPROTO && r != -ENOMEM) {
		finding("parse_token_reply failed with an undocumented error");
	} else if (!err[0]) {
		finding("a refused token reply without a message");
	}
	free(token);
}

static void detail(struct xfer *x, const uint8_t *p, size_t n)
{
	/* the same bytes as an error reply's body */
	size_t keep = n < ERRBODY_KEEP ? n : ERRBODY_KEEP;
	memcpy(x->errbody, p, keep);
	x->errbody[keep] = '\0';
	x->errbody_len = keep;
	char out[160];
	error_detail(x, out, sizeof(out));
	if (strlen(out) >= sizeof(out))
		finding("an error detail over its buffer");
	for (const char *c = out; *c; c++)
		if (*c < 0x20 || *c >= 0x7f || *c == '"')
			finding("an error detail with an unprintable byte or a quote");
}

static void auth_file(const uint8_t *p, size_t n)
{
	int fd = memfd_create("auth.json", MFD_CLOEXEC);
	if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
		abort();
	char path[64], err[256] = "";
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	static const char *const hosts[] = {"registry.example:5000", "docker.io", "index.docker.io"};
	struct creds cr = {0};
	int r = creds_from_auth_file(&cr, path, hosts, 3, "library/busybox", err, sizeof(err));
	if (r < 0 && r != -ENOMEM)
		finding("creds_from_auth_file failed: a bad file means anonymous");
	if (cr.basic && !is_base64(cr.basic, 4 * CRED_MAX))
		finding("basic credentials that are not base64");
	if ((cr.identity_token && !token_is_safe(cr.identity_token, TOKEN_MAX)) ||
	    (cr.registry_token && !token_is_safe(cr.registry_token, TOKEN_MAX)))
		finding("a token from the auth file that is not header-safe");
	creds_free(&cr);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (4u << 20))
		return -1;
	const uint8_t *h, *b, *a;
	size_t hn, bn, an;
	fuzz_part(data, size, 0, &h, &hn);
	fuzz_part(data, size, 1, &b, &bn);
	fuzz_part(data, size, 2, &a, &an);
	uint8_t mode = hn ? h[0] : 0;
	if (hn)
		h++, hn--;

	struct xfer *x = calloc(1, sizeof(*x));
	if (!x)
		abort();
	struct sink sink = {0};
	x->max = mode & 1 ? TOKEN_BODY_MAX : 64 + (mode >> 4) * 8;
	if (mode & 2) {
		/* a blob stream: resumed at an offset, of a known size or not */
		sink.cap = 16 + (mode >> 4) * 64;
		sink.buf = malloc(sink.cap);
		sink.size = mode & 4 ? (int64_t)(mode >> 2) * 16 : -1;
		x->sink = &sink;
		x->range_start = mode & 8 ? (mode >> 3) : 0;
		if (!sink.buf)
			abort();
	}
	headers(x, h, hn);
	if (x->content_range)
		(void)content_range_starts_at(x->content_range, x->range_start);
	body(x, b, bn, 1 + (size_t)(mode >> 2) * 97);
	if (x->sink) {
		if (sink.size >= 0 && sink.pos > (uint64_t)sink.size)
			finding("a blob stream past its expected size");
		x->sink = NULL;
		free(sink.buf);
	}
	challenges(x);
	token_reply(x);
	detail(x, b, bn);
	auth_file(a, an);
	xfer_free(x);
	return 0;
}
