/* What the files of the OCI spec builder share (oci_spec.c, the builder;
 * oci_seccomp.c, the seccomp profile converter; oci_resources.c, the
 * linux.resources; oci_passwd.c, the image's /etc/passwd and /etc/group;
 * oci_util.c, the helpers below). Not for use
 * outside them: oci_spec.h is the interface. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "cri/api.pb-c.h"

#define NAME_MAX_LEN 256   /* user and group names */
#define GROUPS_MAX 65536   /* the kernel's NGROUPS_MAX */

static inline const char *str(const char *s)
{
	return s ? s : "";
}

/* ---- string lists (oci_util.c) ---- */

struct strv {
	char **v;
	size_t n, cap;
};

void strv_free(struct strv *l);
/* Append s, taken over (freed on failure; NULL is -ENOMEM). */
int strv_push_take(struct strv *l, char *s);
int strv_push(struct strv *l, const char *s);

/* ---- JSON (oci_util.c) ---- */

/* Building: a failed allocation sets *oom and the caller reports -ENOMEM
 * once at the end, so the building code reads straight through. */
struct jb {
	bool oom;
};

json_object *jadd(struct jb *b, json_object *o, const char *key, json_object *v);
json_object *jpush(struct jb *b, json_object *a, json_object *v);
json_object *jstr(const char *s);
json_object *jstrv(struct jb *b, char *const *v, size_t n);
void jputp(json_object **o);
/* Parsing a document given as text: one JSON object, bounded. */
json_object *parse_doc(const char *what, const char *text, size_t max, int *r, char *err, size_t errlen);
/* A member that is absent or null is NULL. */
json_object *member(json_object *o, const char *key);
bool is_string_array(json_object *a);
const char *astr(json_object *a, size_t i);
/* A non-negative integer. */
bool get_u64(json_object *v, uint64_t *out);

/* ---- paths (oci_util.c; common/beneath.h has path_is_clean_abs) ---- */

/* Lexical cleaning of an absolute path (Go's filepath.Clean): NULL for a
 * relative path. */
char *path_clean_abs(const char *p);
size_t path_depth(const char *p);
/* p is under dir ("/a/b" is under "/a", so is "/a" itself). */
bool path_under(const char *p, const char *dir);

/* ---- capabilities (oci_util.c) ---- */

/* "chown", "CHOWN", "cap_chown", "CAP_CHOWN": the index, or -1. */
int cap_lookup(const char *name);

/* ---- seccomp (oci_seccomp.c) ---- */

/* The OCI linux.seccomp object of a Docker-format profile, for the
 * capabilities caps and the architecture arch (NULL: the host's). */
int oci_seccomp_build(const char *profile_json, uint64_t caps, const char *arch, json_object **out, char *err,
		      size_t errlen);

/* ---- linux.resources (oci_resources.c) ---- */

/* memory, cpu, hugepageLimits and unified of res into the OCI object
 * resources, each checked; field prefixes every error. */
int oci_resources_fill(struct jb *jb, const Runtime__V1__LinuxContainerResources *res, bool cgroup_v2,
		       json_object *resources, const char *field, char *err, size_t errlen);

/* ---- /etc/passwd and /etc/group (oci_passwd.c) ---- */

struct dbent {
	const char *f[8];
	size_t len[8];
	size_t n;
};

/* Call fn on each well-formed line of a colon-separated database until it
 * returns true. Over-long lines, comments, NIS "+"/"-" lines, lines with
 * too few or too many fields or an empty or over-long name are skipped. */
bool db_scan(const char *db, size_t min_fields, bool (*fn)(const struct dbent *, void *), void *arg);
/* A uid or gid: decimal, 0..4294967294 ((uid_t)-1 is no id). */
bool parse_id(const char *s, size_t n, uint32_t *out);

/* db_scan callbacks: a passwd line by name or uid, a group by name, the
 * groups listing a user as a member. */
struct pw_query {
	const char *name; /* NULL: by uid */
	uint32_t uid;
	uint32_t out_uid, out_gid;
	char out_name[NAME_MAX_LEN];
};
bool pw_match(const struct dbent *e, void *arg);

struct gr_query {
	const char *name;
	uint32_t out_gid;
};
bool gr_match(const struct dbent *e, void *arg);

struct gidv {
	uint32_t *v;
	size_t n, cap;
};
/* Add gid once; -E2BIG past GROUPS_MAX. */
int gidv_add(struct gidv *g, uint32_t gid);

struct gr_members {
	const char *user;
	struct gidv *gids;
	int r;
};
bool gr_member(const struct dbent *e, void *arg);
