/* A container's linux.resources (memory, cpu, hugepageLimits, unified):
 * the one validator of CreateContainer's config.linux.resources and of
 * UpdateContainerResources' linux, and the OCI JSON both give runc (see
 * oci_internal.h and oci_spec.h). Every error names the field. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "oci_internal.h"
#include "oci_spec.h"
#include "util.h"

static bool cpuset_ok(const char *s)
{
	if (strlen(s) > 1024)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || *s == ',' || *s == '-'))
			return false;
	return true;
}

static bool pagesize_ok(const char *s)
{
	size_t d = 0;

	while (s[d] >= '0' && s[d] <= '9')
		d++;
	if (d == 0 || d > 6)
		return false;
	return strcmp(s + d, "KB") == 0 || strcmp(s + d, "MB") == 0 || strcmp(s + d, "GB") == 0 ||
	       strcmp(s + d, "TB") == 0 || strcmp(s + d, "PB") == 0;
}

static bool unified_key_ok(const char *k)
{
	const char *dot = strchr(k, '.');

	if (!dot || dot == k || !dot[1] || strlen(k) > 128)
		return false;
	for (; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '.' || *k == '_'))
			return false;
	return true;
}

/* memory, cpu, hugepageLimits and unified of res into the OCI object
 * resources; field prefixes every error ("config.linux.resources" at create,
 * "linux" for UpdateContainerResources). */
int oci_resources_fill(struct jb *jb, const Runtime__V1__LinuxContainerResources *res, bool cgroup_v2,
		       json_object *resources, const char *field, char *err, size_t errlen)
{
	if (res->memory_limit_in_bytes < 0)
		return errf(err, errlen, -EINVAL, "%s.memory_limit_in_bytes: negative", field);
	if (res->memory_swap_limit_in_bytes < -1)
		return errf(err, errlen, -EINVAL, "%s.memory_swap_limit_in_bytes: want -1 (unlimited), 0 (unset) or a limit",
			    field);
	if (res->memory_swap_limit_in_bytes > 0 && res->memory_limit_in_bytes > 0 &&
	    res->memory_swap_limit_in_bytes < res->memory_limit_in_bytes)
		return errf(err, errlen, -EINVAL, "%s.memory_swap_limit_in_bytes: less than memory_limit_in_bytes", field);
	if (res->memory_limit_in_bytes > 0 || res->memory_swap_limit_in_bytes != 0) {
		json_object *m = jadd(jb, resources, "memory", json_object_new_object());
		if (res->memory_limit_in_bytes > 0)
			jadd(jb, m, "limit", json_object_new_int64(res->memory_limit_in_bytes));
		if (res->memory_swap_limit_in_bytes != 0)
			jadd(jb, m, "swap", json_object_new_int64(res->memory_swap_limit_in_bytes));
	}

	if (res->cpu_shares < 0 || res->cpu_shares > 262144)
		return errf(err, errlen, -EINVAL, "%s.cpu_shares: %" PRId64 " is out of range [0, 262144]", field,
			    res->cpu_shares);
	if (res->cpu_quota < -1 || (res->cpu_quota > 0 && res->cpu_quota < 1000))
		return errf(err, errlen, -EINVAL, "%s.cpu_quota: %" PRId64 " is invalid (want -1, 0 or at least 1000)",
			    field, res->cpu_quota);
	if (res->cpu_period != 0 && (res->cpu_period < 1000 || res->cpu_period > 1000000))
		return errf(err, errlen, -EINVAL, "%s.cpu_period: %" PRId64 " is out of range [1000, 1000000]", field,
			    res->cpu_period);
	if (!cpuset_ok(str(res->cpuset_cpus)))
		return errf(err, errlen, -EINVAL, "%s.cpuset_cpus: invalid CPU list", field);
	if (!cpuset_ok(str(res->cpuset_mems)))
		return errf(err, errlen, -EINVAL, "%s.cpuset_mems: invalid memory node list", field);
	if (res->cpu_shares || res->cpu_quota || res->cpu_period || str(res->cpuset_cpus)[0] ||
	    str(res->cpuset_mems)[0]) {
		json_object *cpu = jadd(jb, resources, "cpu", json_object_new_object());
		if (res->cpu_shares)
			jadd(jb, cpu, "shares", json_object_new_uint64((uint64_t)res->cpu_shares));
		if (res->cpu_quota)
			jadd(jb, cpu, "quota", json_object_new_int64(res->cpu_quota));
		if (res->cpu_period)
			jadd(jb, cpu, "period", json_object_new_uint64((uint64_t)res->cpu_period));
		if (str(res->cpuset_cpus)[0])
			jadd(jb, cpu, "cpus", jstr(res->cpuset_cpus));
		if (str(res->cpuset_mems)[0])
			jadd(jb, cpu, "mems", jstr(res->cpuset_mems));
	}

	if (res->n_hugepage_limits) {
		json_object *h = jadd(jb, resources, "hugepageLimits", json_object_new_array());
		for (size_t i = 0; i < res->n_hugepage_limits; i++) {
			const Runtime__V1__HugepageLimit *l = res->hugepage_limits[i];
			json_object *o;
			if (!l || !pagesize_ok(str(l->page_size)))
				return errf(err, errlen, -EINVAL,
					    "%s.hugepage_limits[%zu].page_size: \"%.32s\" is not a page size like 2MB", field, i,
					    l ? str(l->page_size) : "");
			for (size_t j = 0; j < i; j++)
				if (strcmp(str(res->hugepage_limits[j]->page_size), l->page_size) == 0)
					return errf(err, errlen, -EINVAL, "%s.hugepage_limits[%zu].page_size: %s given twice",
						    field, i, l->page_size);
			o = jpush(jb, h, json_object_new_object());
			jadd(jb, o, "pageSize", jstr(l->page_size));
			jadd(jb, o, "limit", json_object_new_uint64(l->limit));
		}
	}

	if (res->n_unified) {
		json_object *u;
		if (!cgroup_v2)
			return errf(err, errlen, -EINVAL, "%s.unified: cgroup v2 settings, but this host uses cgroup v1", field);
		u = jadd(jb, resources, "unified", json_object_new_object());
		for (size_t i = 0; i < res->n_unified; i++) {
			const char *k = res->unified[i] ? str(res->unified[i]->key) : "";
			const char *v = res->unified[i] ? str(res->unified[i]->value) : "";
			if (!unified_key_ok(k))
				return errf(err, errlen, -EINVAL, "%s.unified[\"%.64s\"]: not a cgroup v2 file name", field, k);
			if (strlen(v) > 4096 || str_has_ctl(v))
				return errf(err, errlen, -EINVAL, "%s.unified[\"%.64s\"]: invalid value", field, k);
			jadd(jb, u, k, jstr(v));
		}
	}
	return 0;
}

int oci_resources_json(const Runtime__V1__LinuxContainerResources *res, bool cgroup_v2, const char *field,
		       char **out, char *err, size_t errlen)
{
	struct jb jb = { .oom = false };
	json_object *o = json_object_new_object();
	int r;

	*out = NULL;
	if (!o)
		return errf(err, errlen, -ENOMEM, "out of memory");
	r = oci_resources_fill(&jb, res, cgroup_v2, o, field, err, errlen);
	if (r == 0 && jb.oom)
		r = errf(err, errlen, -ENOMEM, "out of memory");
	if (r == 0) {
		const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		*out = s ? strdup(s) : NULL;
		if (!*out)
			r = errf(err, errlen, -ENOMEM, "out of memory");
	}
	json_object_put(o);
	return r;
}
