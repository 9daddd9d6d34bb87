/* Image references, parsed and normalised the way Docker does it; see ref.h.
 *
 * The grammar (docker/distribution "reference"):
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [domain "/"] path
 *   domain           := host [":" port]
 *   host             := domain-name | "[" IPv6 "]"
 *   domain-name      := component ("." component)*, component [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
 *                       (at most 63 bytes: a longer DNS label cannot be resolved)
 *   path             := path-component ("/" path-component)*
 *   path-component   := [a-z0-9]+ ((separator) [a-z0-9]+)*, separator [._] | "__" | "-"+
 *   tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 *   digest           := "sha256:" 64 lowercase hex (the only algorithm the store speaks)
 *
 * Normalisation: when the part before the first '/' contains '.' or ':', is
 * "localhost", or has an uppercase letter, it is the domain; otherwise the
 * domain is docker.io and the whole name is the path. "index.docker.io" is
 * docker.io. A docker.io path without '/' gets "library/". A reference with
 * neither tag nor digest gets the tag "latest". A bare 64-hex string is
 * refused (it is an image id, not a name). The normalised name
 * "domain/path" is at most 255 characters. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "macro.h"
#include "ref.h"
#include "util.h"

#define REF_INPUT_MAX 1024   /* longer input is refused before looking at it */
#define REF_NAME_MAX 255     /* "domain/path" after normalisation */
#define REF_TAG_MAX 128
#define REF_QUOTE_MAX 64     /* bytes of offending input repeated in a message */

#define DEFAULT_DOMAIN "docker.io"
#define LEGACY_DEFAULT_DOMAIN "index.docker.io"
#define DOCKER_REGISTRY_HOST "registry-1.docker.io"
#define OFFICIAL_PREFIX "library/"
#define DEFAULT_TAG "latest"

/* ---- messages ---- */

/* Write "text" (len bytes) into out with quotes, control and non-ASCII bytes
 * escaped and the text cut at REF_QUOTE_MAX. */
static void quote_into(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t shown = len > REF_QUOTE_MAX ? REF_QUOTE_MAX : len, o = 0;

	if (outlen == 0)
		return;
#define PUT(c)                            \
	do {                              \
		if (o + 1 < outlen)       \
			out[o++] = (char)(c); \
	} while (0)
	PUT('"');
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			PUT('\\');
			PUT(c);
		} else if (c < 0x20 || c >= 0x7f) {
			PUT('\\');
			PUT('x');
			PUT(hex[c >> 4]);
			PUT(hex[c & 15]);
		} else
			PUT(c);
	}
	if (shown < len) {
		PUT('.');
		PUT('.');
		PUT('.');
	}
	PUT('"');
#undef PUT
	out[o] = '\0';
}

struct quoted {
	char s[REF_QUOTE_MAX * 4 + 8];
};

/* A quoted copy of n bytes of s, valid until the end of the full expression. */
static struct quoted quoted(const char *s, size_t n)
{
	struct quoted q;

	quote_into(q.s, sizeof(q.s), s, n);
	return q;
}

/* ---- character classes (ASCII only; no locale) ---- */

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_word(char c)
{
	return is_alnum(c) || c == '_';
}

static bool has_upper(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return true;
	return false;
}

/* ---- grammar pieces ---- */

/* [a-z0-9]+ ((?:[._]|__|-+) [a-z0-9]+)* over exactly n bytes. */
static bool path_component_ok(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum(s[0]))
		return false;
	while (i < n) {
		while (i < n && is_lower_alnum(s[i]))
			i++;
		if (i == n)
			return true;
		/* a separator, then at least one alphanumeric */
		if (s[i] == '.')
			i++;
		else if (s[i] == '_')
			i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
		else if (s[i] == '-')
			while (i < n && s[i] == '-')
				i++;
		else
			return false;
		if (i == n || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

/* component ("." component)*, component [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])? */
/* [\w][\w.-]{0,127} */
static bool tag_ok(const char *s, size_t n)
{
	if (n == 0 || n > REF_TAG_MAX || !is_word(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_word(s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

static bool is_identifier(const char *s)
{
	size_t n = strlen(s);

	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* ---- parsing ---- */

void ref_free(struct image_ref *r)
{
	if (!r)
		return;
	free(r->domain);
	free(r->path);
	free(r->tag);
	free(r->digest);
	r->domain = r->path = r->tag = r->digest = NULL;
}

/* Fail with a message quoting n bytes of s. */
#define FAIL(fmt, part, len) errf(err, errlen, -EINVAL, fmt, quoted(part, len).s)

static int check_path(const char *path, size_t n, char *err, size_t errlen)
{
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && path[i] != '/')
			continue;
		if (i == start)
			return FAIL("invalid repository name %s: empty path component", path, n);
		if (!path_component_ok(path + start, i - start)) {
			if (has_upper(path + start, i - start))
				return FAIL("invalid repository name %s: must be lowercase", path, n);
			return FAIL("invalid repository name component %s", path + start, i - start);
		}
		start = i + 1;
	}
	return 0;
}

int ref_parse(const char *s, struct image_ref *out, char *err, size_t errlen)
{
	_cleanup_free_ char *domain = NULL, *path = NULL, *tag = NULL, *digest = NULL;
	const char *at, *name, *first_slash, *tag_from, *colon;
	size_t n, name_len;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (out)
		memset(out, 0, sizeof(*out));
	if (!s || !out)
		return errf(err, errlen, -EINVAL, "no image reference given");
	n = strnlen(s, REF_INPUT_MAX + 1);
	if (n == 0)
		return errf(err, errlen, -EINVAL, "empty image reference");
	if (n > REF_INPUT_MAX)
		return errf(err, errlen, -EINVAL, "image reference %s is too long (max %d bytes)", quoted(s, n).s, REF_INPUT_MAX);
	if (is_identifier(s))
		return FAIL("invalid image reference %s: a 64-character hex string is an image id, not a name", s, n);

	/* "@digest" */
	at = strchr(s, '@');
	name_len = at ? (size_t)(at - s) : n;
	if (at) {
		const char *d = at + 1, *c = strchr(d, ':');
		size_t dl = strlen(d);

		if (!digest_is_valid(d)) {
			if (c && c > d && !((size_t)(c - d) == STRLEN("sha256") && memcmp(d, "sha256", 6) == 0))
				return FAIL("unsupported digest %s (only sha256 is supported)", d, dl);
			return FAIL("invalid digest %s", d, dl);
		}
		digest = strdup(d);
		if (!digest)
			return -ENOMEM;
	}
	if (name_len == 0)
		return FAIL("invalid image reference %s: no repository name", s, n);

	/* ":tag" is a colon after the last '/' of the name (a colon before it
	 * belongs to the registry host's port). */
	name = s;
	tag_from = name;
	for (const char *p = name; p < name + name_len; p++)
		if (*p == '/')
			tag_from = p + 1;
	colon = memchr(tag_from, ':', name_len - (size_t)(tag_from - name));
	if (colon) {
		size_t tl = name_len - (size_t)(colon + 1 - name);

		if (!tag_ok(colon + 1, tl))
			return FAIL("invalid tag %s", colon + 1, tl);
		tag = strndup(colon + 1, tl);
		if (!tag)
			return -ENOMEM;
		name_len = (size_t)(colon - name);
		if (name_len == 0)
			return FAIL("invalid image reference %s: no repository name", s, n);
	}

	/* The first component is the registry host when it has '.' or ':', is
	 * "localhost", or has an uppercase letter (a path never does). */
	first_slash = memchr(name, '/', name_len);
	if (first_slash) {
		size_t dl = (size_t)(first_slash - name);

		if ((dl == STRLEN("localhost") && memcmp(name, "localhost", dl) == 0) || memchr(name, '.', dl) ||
		    memchr(name, ':', dl) || has_upper(name, dl)) {
			if (!host_port_is_valid(name, dl))
				return FAIL("invalid registry host %s", name, dl);
			if (dl == STRLEN(LEGACY_DEFAULT_DOMAIN) && memcmp(name, LEGACY_DEFAULT_DOMAIN, dl) == 0)
				domain = strdup(DEFAULT_DOMAIN);
			else
				domain = strndup(name, dl);
			if (!domain)
				return -ENOMEM;
			name += dl + 1;
			name_len -= dl + 1;
		}
	}
	if (!domain) {
		domain = strdup(DEFAULT_DOMAIN);
		if (!domain)
			return -ENOMEM;
	}
	if (name_len == 0)
		return FAIL("invalid image reference %s: no repository name", s, n);
	r = check_path(name, name_len, err, errlen);
	if (r < 0)
		return r;

	if (strcmp(domain, DEFAULT_DOMAIN) == 0 && !memchr(name, '/', name_len)) {
		if (asprintf(&path, "%s%.*s", OFFICIAL_PREFIX, (int)name_len, name) < 0) {
			path = NULL;
			return -ENOMEM;
		}
	} else {
		path = strndup(name, name_len);
		if (!path)
			return -ENOMEM;
	}
	if (strlen(domain) + 1 + strlen(path) > REF_NAME_MAX) {
		_cleanup_free_ char *full = NULL;
		if (asprintf(&full, "%s/%s", domain, path) < 0)
			return -ENOMEM;
		return errf(err, errlen, -EINVAL, "repository name %s is longer than %d characters", quoted(full, strlen(full)).s,
			    REF_NAME_MAX);
	}

	if (!tag && !digest) {
		tag = strdup(DEFAULT_TAG);
		if (!tag)
			return -ENOMEM;
	}
	out->domain = TAKE_PTR(domain);
	out->path = TAKE_PTR(path);
	out->tag = TAKE_PTR(tag);
	out->digest = TAKE_PTR(digest);
	return 0;
}

/* ---- formatting ---- */

char *ref_repository(const struct image_ref *r)
{
	char *s;

	if (!r || !r->domain || !r->path) {
		errno = EINVAL;
		return NULL;
	}
	if (asprintf(&s, "%s/%s", r->domain, r->path) < 0)
		return NULL;
	return s;
}

char *ref_tagged(const struct image_ref *r)
{
	char *s;

	if (!r || !r->domain || !r->path || !r->tag) {
		errno = EINVAL;
		return NULL;
	}
	if (asprintf(&s, "%s/%s:%s", r->domain, r->path, r->tag) < 0)
		return NULL;
	return s;
}

char *ref_digested(const struct image_ref *r, const char *digest)
{
	char *s;

	if (!r || !r->domain || !r->path || !digest_is_valid(digest)) {
		errno = EINVAL;
		return NULL;
	}
	if (asprintf(&s, "%s/%s@%s", r->domain, r->path, digest) < 0)
		return NULL;
	return s;
}

const char *ref_registry_host(const char *domain)
{
	if (!domain)
		return NULL;
	if (strcmp(domain, DEFAULT_DOMAIN) == 0)
		return DOCKER_REGISTRY_HOST;
	return domain;
}
