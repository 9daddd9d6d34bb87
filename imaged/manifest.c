/* Manifests, indexes and image configs from registry bytes; see manifest.h.
 *
 * Everything here is hostile input: the document is bounded in size and
 * nesting depth before json-c sees it, must be valid UTF-8 with no NUL byte
 * and nothing after the top-level object, and every field used is type
 * checked, bounded and validated. A document that claims to be both an index
 * and an image manifest (both "manifests" and "layers"/"config") is refused,
 * as the OCI spec advises, so one set of bytes can never be read two ways. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include <json-c/json.h>

#include "digest.h"
#include "macro.h"
#include "manifest.h"
#include "util.h"

#define MANIFEST_BODY_MAX (4u << 20)     /* what registry_get_manifest accepts */
#define IMAGE_CONFIG_BODY_MAX (8u << 20) /* image configs carry history; still bounded */
#define JSON_DEPTH_MAX 16                /* real documents nest 4 or 5 levels */
#define ENTRIES_MAX 1000                 /* manifests of an index, layers, diff_ids */
#define MEDIA_TYPE_MAX 255               /* RFC 6838: 127 + "/" + 127 */
#define PLATFORM_FIELD_MAX 64            /* os, architecture, variant */
#define USER_MAX 256                     /* config.User */
#define STOP_SIGNAL_MAX 32               /* config.StopSignal: "SIGRTMIN+3", "15" */
#define QUOTE_MAX 64                     /* bytes of a bad value repeated in a message */

#define MT_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define MT_DOCKER_SCHEMA1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"

/* ---- messages ---- */

struct quoted {
	char s[QUOTE_MAX * 4 + 8];
};

/* "s" with quotes, backslashes, control and non-ASCII bytes escaped, cut at
 * QUOTE_MAX bytes; valid until the end of the full expression. */
static struct quoted quoted(const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t shown = n > QUOTE_MAX ? QUOTE_MAX : n, o = 0;
	struct quoted q;

	q.s[o++] = '"';
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			q.s[o++] = '\\';
			q.s[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			q.s[o++] = '\\';
			q.s[o++] = 'x';
			q.s[o++] = hex[c >> 4];
			q.s[o++] = hex[c & 15];
		} else
			q.s[o++] = (char)c;
	}
	if (shown < n) {
		memcpy(q.s + o, "...", 3);
		o += 3;
	}
	q.s[o++] = '"';
	q.s[o] = '\0';
	return q;
}

#define Q(str) quoted((str), strlen(str)).s

/* ---- media types ---- */

enum mt_class { MT_GENERIC, MT_INDEX, MT_IMAGE, MT_SCHEMA1, MT_OTHER };

struct mt_row {
	const char *type;
	enum mt_class cls;
};

static const struct mt_row manifest_types[] = {
	{ MT_OCI_INDEX, MT_INDEX },
	{ MT_DOCKER_LIST, MT_INDEX },
	{ MT_OCI_MANIFEST, MT_IMAGE },
	{ MT_DOCKER_MANIFEST, MT_IMAGE },
	{ MT_DOCKER_SCHEMA1, MT_SCHEMA1 },
	{ MT_DOCKER_SCHEMA1_SIGNED, MT_SCHEMA1 },
	/* what a registry or proxy may say when it does not know better */
	{ "application/json", MT_GENERIC },
	{ "text/plain", MT_GENERIC },
	{ "application/octet-stream", MT_GENERIC },
};

/* The class of a media type of len bytes and its canonical spelling. */
static enum mt_class classify(const char *s, size_t len, const char **canonical)
{
	*canonical = NULL;
	if (len == 0)
		return MT_GENERIC;
	for (size_t i = 0; i < ARRAY_SIZE(manifest_types); i++) {
		if (strlen(manifest_types[i].type) == len && strncasecmp(s, manifest_types[i].type, len) == 0) {
			*canonical = manifest_types[i].type;
			return manifest_types[i].cls;
		}
	}
	return MT_OTHER;
}

/* type "/" subtype with RFC 6838 restricted-name characters. */
static bool media_type_ok(const char *s, size_t n)
{
	bool slash = false;
	size_t part = 0;

	if (n == 0 || n > MEDIA_TYPE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '/') {
			if (slash || part == 0)
				return false;
			slash = true;
			part = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("!#$&-^_.+", c)))
			return false;
		if (part == 0 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			return false;
		part++;
	}
	return slash && part > 0;
}

enum layer_compression layer_compression_of(const char *media_type)
{
	static const struct {
		const char *type;
		enum layer_compression c;
	} layers[] = {
		{ "application/vnd.oci.image.layer.v1.tar", LAYER_PLAIN },
		{ "application/vnd.oci.image.layer.v1.tar+gzip", LAYER_GZIP },
		{ "application/vnd.oci.image.layer.v1.tar+zstd", LAYER_ZSTD },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar", LAYER_PLAIN },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LAYER_GZIP },
		{ "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LAYER_ZSTD },
		{ "application/vnd.docker.image.rootfs.diff.tar", LAYER_PLAIN },
		{ "application/vnd.docker.image.rootfs.diff.tar.gzip", LAYER_GZIP },
		{ "application/vnd.docker.image.rootfs.diff.tar.zstd", LAYER_ZSTD },
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar", LAYER_PLAIN },
		{ "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LAYER_GZIP },
	};

	if (!media_type)
		return LAYER_UNSUPPORTED;
	for (size_t i = 0; i < ARRAY_SIZE(layers); i++)
		if (strcmp(media_type, layers[i].type) == 0)
			return layers[i].c;
	return LAYER_UNSUPPORTED;
}

/* ---- JSON access ---- */

/* Parse len bytes as one JSON object. Returns NULL with *r and err set. */
static struct json_object *parse_json(const char *what, const char *body, size_t len, size_t max, int *r, char *err,
				      size_t errlen)
{
	_cleanup_free_ char *buf = NULL;
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error jerr;
	size_t end;

	if (!body || len == 0) {
		*r = errf(err, errlen, -EINVAL, "%s: empty document", what);
		return NULL;
	}
	if (len > max) {
		*r = errf(err, errlen, -EFBIG, "%s: document too large (%zu bytes, max %zu)", what, len, max);
		return NULL;
	}
	if (memchr(body, '\0', len)) {
		*r = errf(err, errlen, -EINVAL, "%s: invalid JSON: NUL byte in document", what);
		return NULL;
	}
	/* json-c wants to see the terminating NUL to know the input ended. */
	buf = malloc(len + 1);
	if (!buf) {
		*r = errf(err, errlen, -ENOMEM, "%s: out of memory", what);
		return NULL;
	}
	memcpy(buf, body, len);
	buf[len] = '\0';

	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (!tok) {
		*r = errf(err, errlen, -ENOMEM, "%s: out of memory", what);
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		*r = errf(err, errlen, -EINVAL, "%s: invalid JSON: %s",
			  what, jerr == json_tokener_continue ? "unexpected end of document" : json_tokener_error_desc(jerr));
		return NULL;
	}
	/* Trailing whitespace only (json-c stops at the NUL). */
	for (size_t i = end; i < len; i++)
		if (!strchr(" \t\r\n", buf[i])) {
			json_object_put(o);
			*r = errf(err, errlen, -EINVAL, "%s: invalid JSON: data after the document", what);
			return NULL;
		}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*r = errf(err, errlen, -EINVAL, "%s: not a JSON object", what);
		return NULL;
	}
	return o;
}

/* A field that is absent or JSON null is NULL. */
static struct json_object *field(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

enum str_check { STR_ANY, STR_MEDIA_TYPE, STR_PLATFORM, STR_DIGEST, STR_SIGNAL };

static bool str_ok(enum str_check check, const char *s, size_t n)
{
	switch (check) {
	case STR_MEDIA_TYPE:
		return media_type_ok(s, n);
	case STR_DIGEST:
		return digest_is_valid(s);
	case STR_PLATFORM:
	case STR_SIGNAL:
		if (n == 0)
			return check == STR_SIGNAL; /* "" is an unset StopSignal */
		for (size_t i = 0; i < n; i++) {
			char c = s[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      (check == STR_PLATFORM ? (c == '.' || c == '_' || c == '-') : (c == '+' || c == '-'))))
				return false;
		}
		return true;
	case STR_ANY:
		/* no control characters */
		return !mem_has_ctl(s, n);
	}
	return false;
}

static const char *str_what(enum str_check check)
{
	switch (check) {
	case STR_MEDIA_TYPE:
		return "invalid media type";
	case STR_DIGEST:
		return "invalid digest (want sha256:<64 lowercase hex>)";
	case STR_PLATFORM:
		return "invalid platform name";
	case STR_SIGNAL:
		return "invalid signal name";
	case STR_ANY:
		break;
	}
	return "invalid characters";
}

/* A string field: required or not, at most max bytes, passing check. The
 * copy goes to *out (left NULL when absent). where names the object. */
static int get_string(struct json_object *o, const char *where, const char *key, bool required, size_t max,
		      enum str_check check, char **out, char *err, size_t errlen)
{
	struct json_object *v = field(o, key);
	const char *s;
	int n;

	*out = NULL;
	if (!v) {
		if (required)
			return errf(err, errlen, -EINVAL, "%s%s%s: missing", where, *where ? "." : "", key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return errf(err, errlen, -EINVAL, "%s%s%s: not a string", where, *where ? "." : "", key);
	s = json_object_get_string(v);
	n = json_object_get_string_len(v);
	if (!s || n < 0 || strlen(s) != (size_t)n)
		return errf(err, errlen, -EINVAL, "%s%s%s: NUL character in string", where, *where ? "." : "", key);
	if ((size_t)n > max)
		return errf(err, errlen, -EINVAL,
			    "%s%s%s: %s is too long (max %zu bytes)", where, *where ? "." : "", key,
			    quoted(s, (size_t)n).s, max);
	if (!str_ok(check, s, (size_t)n))
		return errf(err, errlen, -EINVAL, "%s%s%s: %s %s", where, *where ? "." : "", key, str_what(check),
			    quoted(s, (size_t)n).s);
	*out = strdup(s);
	if (!*out)
		return errf(err, errlen, -ENOMEM, "out of memory");
	return 0;
}

/* An array field of at most ENTRIES_MAX entries; *arr NULL when absent. */
static int get_array(struct json_object *o, const char *where, const char *key, bool required,
		     struct json_object **arr, size_t *n, char *err, size_t errlen)
{
	struct json_object *v = field(o, key);

	*arr = NULL;
	*n = 0;
	if (!v) {
		if (required)
			return errf(err, errlen, -EINVAL, "%s%s%s: missing", where, *where ? "." : "", key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return errf(err, errlen, -EINVAL, "%s%s%s: not an array", where, *where ? "." : "", key);
	*n = json_object_array_length(v);
	if (*n > ENTRIES_MAX)
		return errf(err, errlen, -E2BIG,
			    "%s%s%s: too many entries (%zu, max %d)", where, *where ? "." : "", key, *n,
			    ENTRIES_MAX);
	*arr = v;
	return 0;
}

/* An object field; *obj NULL when absent (or JSON null). */
static int get_object(struct json_object *o, const char *where, const char *key, bool required,
		      struct json_object **obj, char *err, size_t errlen)
{
	struct json_object *v = field(o, key);

	*obj = NULL;
	if (!v) {
		if (required)
			return errf(err, errlen, -EINVAL, "%s%s%s: missing", where, *where ? "." : "", key);
		return 0;
	}
	if (!json_object_is_type(v, json_type_object))
		return errf(err, errlen, -EINVAL, "%s%s%s: not an object", where, *where ? "." : "", key);
	*obj = v;
	return 0;
}

/* ---- descriptors ---- */

static void descriptor_free(struct descriptor *d)
{
	if (!d)
		return;
	free(d->media_type);
	free(d->digest);
	free(d->os);
	free(d->architecture);
	free(d->variant);
	memset(d, 0, sizeof(*d));
}

static int parse_descriptor(struct json_object *o, const char *where, bool with_platform, struct descriptor *d,
			    char *err, size_t errlen)
{
	struct json_object *size, *platform;
	int64_t v;
	int r;

	memset(d, 0, sizeof(*d));
	if (!o || !json_object_is_type(o, json_type_object))
		return errf(err, errlen, -EINVAL, "%s: not an object", where);
	r = get_string(o, where, "mediaType", true, MEDIA_TYPE_MAX, STR_MEDIA_TYPE, &d->media_type, err, errlen);
	if (r < 0)
		return r;
	r = get_string(o, where, "digest", true, DIGEST_STR_MAX, STR_DIGEST, &d->digest, err, errlen);
	if (r < 0)
		return r;
	size = field(o, "size");
	if (!size)
		return errf(err, errlen, -EINVAL, "%s.size: missing", where);
	/* Integers only: 1.0, 1e3 and strings are not sizes. An integer too big
	 * for int64 reads as INT64_MAX, which is no real size either. */
	if (!json_object_is_type(size, json_type_int))
		return errf(err, errlen, -EINVAL, "%s.size: not an integer", where);
	v = json_object_get_int64(size);
	if (v < 0 || v == INT64_MAX)
		return errf(err, errlen, -EINVAL, "%s.size: out of range (%s)", where, json_object_get_string(size));
	d->size = v;

	if (!with_platform)
		return 0;
	r = get_object(o, where, "platform", false, &platform, err, errlen);
	if (r < 0 || !platform)
		return r;
	{
		char pwhere[64];
		snprintf(pwhere, sizeof(pwhere), "%s.platform", where);
		r = get_string(platform, pwhere, "os", true, PLATFORM_FIELD_MAX, STR_PLATFORM, &d->os, err, errlen);
		if (r >= 0)
			r = get_string(platform, pwhere, "architecture", true, PLATFORM_FIELD_MAX, STR_PLATFORM,
				       &d->architecture, err, errlen);
		if (r >= 0)
			r = get_string(platform, pwhere, "variant", false, PLATFORM_FIELD_MAX, STR_PLATFORM, &d->variant,
				       err, errlen);
	}
	return r;
}

/* ---- manifests ---- */

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	free(m->media_type);
	for (size_t i = 0; i < m->n_manifests; i++)
		descriptor_free(&m->manifests[i]);
	free(m->manifests);
	descriptor_free(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		descriptor_free(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

static int parse_index(struct json_object *root, struct manifest *m, char *err, size_t errlen)
{
	struct json_object *arr;
	size_t n;
	int r;

	r = get_array(root, "", "manifests", true, &arr, &n, err, errlen);
	if (r < 0)
		return r;
	if (n > 0) {
		m->manifests = calloc(n, sizeof(*m->manifests));
		if (!m->manifests)
			return errf(err, errlen, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		char where[32];

		snprintf(where, sizeof(where), "manifests[%zu]", i);
		r = parse_descriptor(json_object_array_get_idx(arr, i), where, true, &m->manifests[i], err, errlen);
		m->n_manifests = i + 1; /* so manifest_free frees what was filled */
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_image(struct json_object *root, struct manifest *m, char *err, size_t errlen)
{
	struct json_object *arr;
	size_t n;
	int r;

	r = parse_descriptor(field(root, "config"), "config", false, &m->config, err, errlen);
	if (r < 0) {
		if (!field(root, "config"))
			return errf(err, errlen, -EINVAL, "config: missing");
		return r;
	}
	if (strcmp(m->config.media_type, MT_OCI_CONFIG) != 0 && strcmp(m->config.media_type, MT_DOCKER_CONFIG) != 0)
		return errf(err, errlen, -EINVAL, "config.mediaType: %s is not a container image config",
			    Q(m->config.media_type));

	r = get_array(root, "", "layers", true, &arr, &n, err, errlen);
	if (r < 0)
		return r;
	if (n > 0) {
		m->layers = calloc(n, sizeof(*m->layers));
		if (!m->layers)
			return errf(err, errlen, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		char where[32];

		snprintf(where, sizeof(where), "layers[%zu]", i);
		r = parse_descriptor(json_object_array_get_idx(arr, i), where, false, &m->layers[i], err, errlen);
		m->n_layers = i + 1;
		if (r < 0)
			return r;
		if (layer_compression_of(m->layers[i].media_type) == LAYER_UNSUPPORTED)
			return errf(err, errlen, -EINVAL, "%s.mediaType: unsupported layer media type %s", where,
				    Q(m->layers[i].media_type));
	}
	return 0;
}

static const char *class_name(enum mt_class c)
{
	return c == MT_INDEX ? "an index" : "an image manifest";
}

static int manifest_parse_doc(struct json_object *root, const char *ct_canonical, enum mt_class ct_class,
			      struct manifest *m, char *err, size_t errlen)
{
	struct json_object *sv, *mt;
	const char *body_canonical = NULL;
	enum mt_class cls = MT_GENERIC;
	bool has_index_fields, has_image_fields;
	int r;

	/* Schema 1 first, whatever else the document says. */
	sv = field(root, "schemaVersion");
	if ((sv && json_object_is_type(sv, json_type_int) && json_object_get_int64(sv) == 1) || field(root, "fsLayers") ||
	    field(root, "signatures"))
		return errf(err, errlen, -ENOTSUP, "Docker schema 1 manifests are not supported");
	if (!sv)
		return errf(err, errlen, -EINVAL, "schemaVersion: missing");
	if (!json_object_is_type(sv, json_type_int))
		return errf(err, errlen, -EINVAL, "schemaVersion: unsupported (a %s, want 2)",
			    json_type_to_name(json_object_get_type(sv)));
	if (json_object_get_int64(sv) != 2)
		return errf(err, errlen, -EINVAL, "schemaVersion: unsupported (%lld, want 2)",
			    (long long)json_object_get_int64(sv));

	mt = field(root, "mediaType");
	if (mt) {
		const char *s;
		size_t n;

		if (!json_object_is_type(mt, json_type_string))
			return errf(err, errlen, -EINVAL, "mediaType: not a string");
		s = json_object_get_string(mt);
		n = (size_t)json_object_get_string_len(mt);
		cls = classify(s, strlen(s) == n ? n : 0, &body_canonical);
		if (cls == MT_SCHEMA1)
			return errf(err, errlen, -ENOTSUP, "Docker schema 1 manifests are not supported");
		if (cls != MT_INDEX && cls != MT_IMAGE)
			return errf(err, errlen, -EINVAL,
				    "mediaType: unsupported manifest media type %s", quoted(s, n).s);
		if (ct_class != MT_GENERIC && cls != ct_class)
			return errf(err, errlen, -EINVAL, "mediaType %s (%s) does not match Content-Type %s (%s)",
				    Q(body_canonical), class_name(cls), Q(ct_canonical), class_name(ct_class));
	}

	has_index_fields = field(root, "manifests") != NULL;
	has_image_fields = field(root, "layers") != NULL || field(root, "config") != NULL;
	if (has_index_fields && has_image_fields)
		return errf(err, errlen, -EINVAL,
			    "ambiguous document: has both \"manifests\" and \"layers\"/\"config\"");

	if (body_canonical)
		m->media_type = strdup(body_canonical);
	else if (ct_class != MT_GENERIC) {
		cls = ct_class;
		m->media_type = strdup(ct_canonical);
	} else if (has_index_fields) {
		cls = MT_INDEX;
		m->media_type = strdup(MT_OCI_INDEX);
	} else if (has_image_fields) {
		cls = MT_IMAGE;
		m->media_type = strdup(MT_OCI_MANIFEST);
	} else
		return errf(err, errlen, -EINVAL, "unknown document: no mediaType, \"manifests\" or \"layers\"");
	if (!m->media_type)
		return errf(err, errlen, -ENOMEM, "out of memory");

	if (cls == MT_INDEX) {
		if (has_image_fields)
			return errf(err, errlen, -EINVAL, "an index must not have \"layers\" or \"config\"");
		m->kind = MANIFEST_INDEX;
		r = parse_index(root, m, err, errlen);
	} else {
		if (has_index_fields)
			return errf(err, errlen, -EINVAL, "an image manifest must not have \"manifests\"");
		m->kind = MANIFEST_IMAGE;
		r = parse_image(root, m, err, errlen);
	}
	return r;
}

int manifest_parse(const char *content_type, const char *body, size_t len, struct manifest *out, char *err,
		   size_t errlen)
{
	const char *ct = content_type ? content_type : "", *ct_canonical = NULL;
	size_t ct_len;
	enum mt_class ct_class;
	struct json_object *root;
	int r = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return errf(err, errlen, -EINVAL, "no manifest given");
	memset(out, 0, sizeof(*out));

	/* Content-Type without parameters (";charset=utf-8") and blanks. */
	while (*ct == ' ' || *ct == '\t')
		ct++;
	ct_len = strcspn(ct, ";");
	while (ct_len > 0 && (ct[ct_len - 1] == ' ' || ct[ct_len - 1] == '\t'))
		ct_len--;
	ct_class = classify(ct, ct_len, &ct_canonical);
	if (ct_class == MT_SCHEMA1)
		return errf(err, errlen, -ENOTSUP, "Docker schema 1 manifests are not supported (Content-Type %s)",
			    quoted(ct, ct_len).s);
	if (ct_class == MT_OTHER)
		return errf(err, errlen, -EINVAL, "unsupported manifest Content-Type %s", quoted(ct, ct_len).s);

	root = parse_json("manifest", body, len, MANIFEST_BODY_MAX, &r, err, errlen);
	if (!root)
		return r;
	r = manifest_parse_doc(root, ct_canonical, ct_class, out, err, errlen);
	json_object_put(root);
	if (r < 0)
		manifest_free(out);
	return r;
}

/* ---- platforms ---- */

/* The variant an entry means when it names none (containerd's rules). */
static const char *variant_norm(const char *arch, const char *variant)
{
	if (variant && *variant) {
		if (strcmp(arch, "amd64") == 0 && strcmp(variant, "v1") == 0)
			return "v1";
		return variant;
	}
	if (strcmp(arch, "arm64") == 0)
		return "v8";
	if (strcmp(arch, "arm") == 0)
		return "v7";
	if (strcmp(arch, "amd64") == 0)
		return "v1";
	return "";
}

/* N of "vN", or -1. */
static int variant_version(const char *v)
{
	int n = 0;

	if (v[0] != 'v' || !v[1] || strlen(v) > 3)
		return -1;
	for (const char *p = v + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n;
}

/* How well an entry's variant fits the wanted one: 0 not at all, higher is
 * better. A wanted NULL variant takes any, preferring the architecture's
 * default (v8 for arm64); a wanted vN on arm or amd64 also runs older vM. */
static int variant_score(const char *arch, const char *want, const char *have)
{
	const char *h = variant_norm(arch, have);
	int wv, hv;

	if (!want)
		return strcmp(h, variant_norm(arch, NULL)) == 0 ? 1000 : 1;
	want = variant_norm(arch, want);
	if (strcmp(want, h) == 0)
		return 1000;
	if (strcmp(arch, "arm") != 0 && strcmp(arch, "amd64") != 0)
		return 0;
	wv = variant_version(want);
	hv = variant_version(h);
	if (wv < 0 || hv < 0 || hv > wv)
		return 0;
	return 1 + hv;
}

int manifest_select_platform(const struct manifest *index, const char *os, const char *arch, const char *variant)
{
	int best = -ENOENT, best_score = 0;

	if (!index || index->kind != MANIFEST_INDEX || !os || !arch)
		return -EINVAL;
	for (size_t i = 0; i < index->n_manifests && i < INT32_MAX; i++) {
		const struct descriptor *d = &index->manifests[i];
		int score;

		if (!d->os || !d->architecture || strcmp(d->os, os) != 0 || strcmp(d->architecture, arch) != 0)
			continue;
		score = variant_score(arch, variant, d->variant);
		if (score > best_score) {
			best_score = score;
			best = (int)i;
		}
	}
	/* An index of one entry that names no platform is that image. */
	if (best < 0 && index->n_manifests == 1 && !index->manifests[0].os && !index->manifests[0].architecture)
		best = 0;
	return best;
}

static const char *host_os, *host_arch, *host_variant;
static char host_arch_buf[PLATFORM_FIELD_MAX + 1];
static pthread_once_t host_once = PTHREAD_ONCE_INIT;

static void host_platform_init(void)
{
	static const struct {
		const char *machine, *arch, *variant;
	} map[] = {
		{ "x86_64", "amd64", NULL },   { "amd64", "amd64", NULL },   { "aarch64", "arm64", "v8" },
		{ "arm64", "arm64", "v8" },    { "armv8l", "arm", "v8" },    { "armv7l", "arm", "v7" },
		{ "armv7", "arm", "v7" },      { "armv6l", "arm", "v6" },    { "armv5tel", "arm", "v5" },
		{ "i386", "386", NULL },       { "i486", "386", NULL },      { "i586", "386", NULL },
		{ "i686", "386", NULL },       { "ppc64le", "ppc64le", NULL }, { "s390x", "s390x", NULL },
		{ "riscv64", "riscv64", NULL }, { "loongarch64", "loong64", NULL }, { "mips64", "mips64", NULL },
	};
	struct utsname u;

	host_os = "linux";
	host_arch = "unknown";
	host_variant = NULL;
	if (uname(&u) < 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		if (strcmp(u.machine, map[i].machine) == 0) {
			host_arch = map[i].arch;
			host_variant = map[i].variant;
			return;
		}
	}
	snprintf(host_arch_buf, sizeof(host_arch_buf), "%s", u.machine);
	if (host_arch_buf[0])
		host_arch = host_arch_buf;
}

void host_platform(const char **os, const char **arch, const char **variant)
{
	pthread_once(&host_once, host_platform_init);
	if (os)
		*os = host_os;
	if (arch)
		*arch = host_arch;
	if (variant)
		*variant = host_variant;
}

/* ---- image configs ---- */

void image_config_free(struct image_config *c)
{
	if (!c)
		return;
	free(c->os);
	free(c->architecture);
	free(c->user);
	for (size_t i = 0; i < c->n_diff_ids; i++)
		free(c->diff_ids[i]);
	free(c->diff_ids);
	free(c->stop_signal);
	memset(c, 0, sizeof(*c));
}

static int image_config_parse_doc(struct json_object *root, struct image_config *c, char *err, size_t errlen)
{
	struct json_object *config, *rootfs, *arr;
	_cleanup_free_ char *type = NULL;
	size_t n;
	int r;

	r = get_string(root, "", "os", true, PLATFORM_FIELD_MAX, STR_PLATFORM, &c->os, err, errlen);
	if (r < 0)
		return r;
	r = get_string(root, "", "architecture", true, PLATFORM_FIELD_MAX, STR_PLATFORM, &c->architecture, err, errlen);
	if (r < 0)
		return r;

	r = get_object(root, "", "config", false, &config, err, errlen);
	if (r < 0)
		return r;
	if (config) {
		r = get_string(config, "config", "User", false, USER_MAX, STR_ANY, &c->user, err, errlen);
		if (r < 0)
			return r;
		r = get_string(config, "config", "StopSignal", false, STOP_SIGNAL_MAX, STR_SIGNAL, &c->stop_signal, err,
			       errlen);
		if (r < 0)
			return r;
		/* "" means unset, as with Docker. */
		if (c->stop_signal && !*c->stop_signal) {
			free(c->stop_signal);
			c->stop_signal = NULL;
		}
	}

	r = get_object(root, "", "rootfs", true, &rootfs, err, errlen);
	if (r < 0)
		return r;
	r = get_string(rootfs, "rootfs", "type", true, 32, STR_ANY, &type, err, errlen);
	if (r < 0)
		return r;
	if (strcmp(type, "layers") != 0)
		return errf(err, errlen, -EINVAL, "rootfs.type: %s is not \"layers\"", Q(type));
	r = get_array(rootfs, "rootfs", "diff_ids", true, &arr, &n, err, errlen);
	if (r < 0)
		return r;
	if (n > 0) {
		c->diff_ids = calloc(n, sizeof(*c->diff_ids));
		if (!c->diff_ids)
			return errf(err, errlen, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i);
		const char *s;

		if (!v || !json_object_is_type(v, json_type_string))
			return errf(err, errlen, -EINVAL, "rootfs.diff_ids[%zu]: not a string", i);
		s = json_object_get_string(v);
		if (strlen(s) != (size_t)json_object_get_string_len(v) || !digest_is_valid(s))
			return errf(err, errlen, -EINVAL, "rootfs.diff_ids[%zu]: invalid digest %s", i,
				    quoted(s, (size_t)json_object_get_string_len(v)).s);
		c->diff_ids[i] = strdup(s);
		if (!c->diff_ids[i])
			return errf(err, errlen, -ENOMEM, "out of memory");
		c->n_diff_ids = i + 1;
	}
	return 0;
}

int image_config_parse(const char *body, size_t len, struct image_config *out, char *err, size_t errlen)
{
	struct json_object *root;
	int r = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return errf(err, errlen, -EINVAL, "no image config given");
	memset(out, 0, sizeof(*out));
	root = parse_json("image config", body, len, IMAGE_CONFIG_BODY_MAX, &r, err, errlen);
	if (!root)
		return r;
	r = image_config_parse_doc(root, out, err, errlen);
	json_object_put(root);
	if (r < 0)
		image_config_free(out);
	return r;
}

/* ---- config.User ---- */

int image_user(const char *user, int64_t *uid, char **username)
{
	size_t n;
	bool numeric = true;
	uint64_t v = 0;

	if (uid)
		*uid = -1;
	if (username)
		*username = NULL;
	if (!uid || !username)
		return -EINVAL;
	if (!user)
		return 0;
	/* "user[:group]": only the user part matters to the CRI. */
	n = strcspn(user, ":");
	if (n == 0)
		return 0;
	if (n > USER_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c < 0x20 || c == 0x7f || c == '/')
			return -EINVAL;
		if (c < '0' || c > '9')
			numeric = false;
	}
	if (numeric) {
		for (size_t i = 0; i < n; i++) {
			v = v * 10 + (uint64_t)(user[i] - '0');
			/* uid_t is 32 bits and (uid_t)-1 means "none". */
			if (v > UINT32_MAX - 1)
				return -ERANGE;
		}
		*uid = (int64_t)v;
		return 0;
	}
	*username = strndup(user, n);
	return *username ? 0 : -ENOMEM;
}
