/* The helpers the OCI spec builder and the seccomp converter share (see
 * oci_internal.h): string lists, building and reading JSON, lexical paths,
 * capability names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "caps.h"
#include "macro.h"
#include "oci_internal.h"
#include "util.h"

#define JSON_DEPTH_MAX 64

/* ---- string lists ---- */

void strv_free(struct strv *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

int strv_push_take(struct strv *l, char *s)
{
	if (!s)
		return -ENOMEM;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			free(s);
			return -ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = s;
	return 0;
}

int strv_push(struct strv *l, const char *s)
{
	return strv_push_take(l, strdup(s));
}

/* ---- JSON helpers ---- */

json_object *jadd(struct jb *b, json_object *o, const char *key, json_object *v)
{
	if (!o || !v || json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		b->oom = true;
		return NULL;
	}
	return v;
}

json_object *jpush(struct jb *b, json_object *a, json_object *v)
{
	if (!a || !v || json_object_array_add(a, v) < 0) {
		json_object_put(v);
		b->oom = true;
		return NULL;
	}
	return v;
}

json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

json_object *jstrv(struct jb *b, char *const *v, size_t n)
{
	json_object *a = json_object_new_array();

	if (!a)
		b->oom = true;
	for (size_t i = 0; a && i < n; i++)
		jpush(b, a, jstr(v[i]));
	return a;
}

void jputp(json_object **o)
{
	json_object_put(*o);
}

json_object *parse_doc(const char *what, const char *text, size_t max, int *r, char *err, size_t errlen)
{
	struct json_tokener *tok;
	json_object *o;
	enum json_tokener_error jerr;
	size_t len = strlen(text), end;

	if (len > max) {
		*r = errf(err, errlen, -EINVAL, "%s: document too large (%zu bytes, max %zu)", what, len, (size_t)max);
		return NULL;
	}
	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (!tok) {
		*r = errf(err, errlen, -ENOMEM, "%s: out of memory", what);
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, text, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		*r = errf(err, errlen, -EINVAL, "%s: invalid JSON: %s", what,
			  jerr == json_tokener_continue ? "unexpected end of document" : json_tokener_error_desc(jerr));
		return NULL;
	}
	for (size_t i = end; i < len; i++)
		if (!strchr(" \t\r\n", text[i])) {
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

json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

bool is_string_array(json_object *a)
{
	if (!json_object_is_type(a, json_type_array))
		return false;
	for (size_t i = 0; i < json_object_array_length(a); i++)
		if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_string))
			return false;
	return true;
}

const char *astr(json_object *a, size_t i)
{
	return json_object_get_string(json_object_array_get_idx(a, i));
}

bool get_u64(json_object *v, uint64_t *out)
{
	if (!json_object_is_type(v, json_type_int))
		return false;
	if (json_object_get_int64(v) < 0)
		return false;
	*out = json_object_get_uint64(v);
	return true;
}

/* ---- paths ---- */

char *path_clean_abs(const char *p)
{
	size_t len = strlen(p), o = 0;
	char *out;
	const char *c = p;

	if (p[0] != '/')
		return NULL;
	out = malloc(len + 2);
	if (!out)
		return NULL;
	while (*c) {
		const char *e;
		size_t n;

		while (*c == '/')
			c++;
		if (!*c)
			break;
		e = strchr(c, '/');
		n = e ? (size_t)(e - c) : strlen(c);
		if (n == 1 && c[0] == '.') {
			/* nothing */
		} else if (n == 2 && c[0] == '.' && c[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash */
		} else {
			out[o++] = '/';
			memcpy(out + o, c, n);
			o += n;
		}
		c += n;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return out;
}

size_t path_depth(const char *p)
{
	size_t n = 0;

	for (; *p; p++)
		if (*p == '/' && p[1])
			n++;
	return n;
}

bool path_under(const char *p, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}


/* ---- capability names ---- */

int cap_lookup(const char *name)
{
	const char *n = name;

	if (strncasecmp(n, "CAP_", 4) == 0)
		n += 4;
	if (!*n || strlen(n) > 64)
		return -1;
	for (size_t i = 0; i < CAP_COUNT; i++)
		if (strcasecmp(n, cap_names[i] + 4) == 0)
			return (int)i;
	return -1;
}
