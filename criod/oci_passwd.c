/* The image's /etc/passwd and /etc/group (their text, read by the caller):
 * the colon-separated line scanner and the lookups the spec builder makes
 * for the container's user and groups (see oci_internal.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "oci_internal.h"

#define DB_MAX_LINE 4096   /* longer /etc/passwd or /etc/group lines are skipped */
#define DB_MAX_LINES 100000

bool db_scan(const char *db, size_t min_fields, bool (*fn)(const struct dbent *, void *), void *arg)
{
	const char *p = db;
	size_t lines = 0;

	if (!db)
		return false;
	while (*p && lines++ < DB_MAX_LINES) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *end = p + len, *s = p;
		struct dbent e = { .n = 0 };
		bool ok = len > 0 && len <= DB_MAX_LINE && p[0] != '#' && p[0] != '+' && p[0] != '-';

		if (ok && end[-1] == '\r')
			end--;
		while (ok) {
			const char *c = memchr(s, ':', (size_t)(end - s));
			if (e.n == ARRAY_SIZE(e.f)) {
				ok = false;
				break;
			}
			e.f[e.n] = s;
			e.len[e.n] = c ? (size_t)(c - s) : (size_t)(end - s);
			e.n++;
			if (!c)
				break;
			s = c + 1;
		}
		if (ok && e.n >= min_fields && e.len[0] > 0 && e.len[0] < NAME_MAX_LEN && fn(&e, arg))
			return true;
		p = nl ? nl + 1 : end;
		if (!nl)
			break;
	}
	return false;
}

bool parse_id(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX - 1)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool field_is(const struct dbent *e, size_t i, const char *s)
{
	return e->len[i] == strlen(s) && memcmp(e->f[i], s, e->len[i]) == 0;
}

bool pw_match(const struct dbent *e, void *arg)
{
	struct pw_query *q = arg;
	uint32_t uid, gid;

	if (!parse_id(e->f[2], e->len[2], &uid) || !parse_id(e->f[3], e->len[3], &gid))
		return false;
	if (q->name ? !field_is(e, 0, q->name) : uid != q->uid)
		return false;
	q->out_uid = uid;
	q->out_gid = gid;
	memcpy(q->out_name, e->f[0], e->len[0]);
	q->out_name[e->len[0]] = '\0';
	return true;
}

bool gr_match(const struct dbent *e, void *arg)
{
	struct gr_query *q = arg;

	return field_is(e, 0, q->name) && parse_id(e->f[2], e->len[2], &q->out_gid);
}

int gidv_add(struct gidv *g, uint32_t gid)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i] == gid)
			return 0;
	if (g->n >= GROUPS_MAX)
		return -E2BIG;
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		uint32_t *v = realloc(g->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		g->v = v;
		g->cap = cap;
	}
	g->v[g->n++] = gid;
	return 0;
}

bool gr_member(const struct dbent *e, void *arg)
{
	struct gr_members *q = arg;
	size_t ulen = strlen(q->user);
	const char *m, *end;
	uint32_t gid;

	if (e->n < 4 || !parse_id(e->f[2], e->len[2], &gid))
		return false;
	m = e->f[3];
	end = m + e->len[3];
	while (m < end) {
		const char *c = memchr(m, ',', (size_t)(end - m));
		size_t n = c ? (size_t)(c - m) : (size_t)(end - m);
		if (n == ulen && memcmp(m, q->user, n) == 0) {
			q->r = gidv_add(q->gids, gid);
			return q->r < 0;
		}
		if (!c)
			break;
		m = c + 1;
	}
	return false;
}
