/* Resource figures from cgroup v1 and v2 files; see cgroup_stats.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include "cgroup_stats.h"
#include "macro.h"
#include "util.h"

#define CG_FILE_MAX (64u << 10)
/* v1 reports "no limit" as the largest page-aligned signed 64-bit value. */
#define V1_UNLIMITED (1ull << 62)

int cg_parse_u64(const char *text, uint64_t *out)
{
	if (!text)
		return -EINVAL;
	while (*text == ' ' || *text == '\t')
		text++;
	const char *end;
	if (strncmp(text, "max", 3) == 0) {
		*out = UINT64_MAX;
		end = text + 3;
	} else {
		if (*text < '0' || *text > '9')
			return -EINVAL;
		uint64_t v = 0;
		for (end = text; *end >= '0' && *end <= '9'; end++) {
			unsigned d = (unsigned)(*end - '0');
			if (v > (UINT64_MAX - d) / 10)
				return -EINVAL;
			v = v * 10 + d;
		}
		*out = v;
	}
	while (*end == ' ' || *end == '\t' || *end == '\n')
		end++;
	return *end ? -EINVAL : 0;
}

int cg_parse_keyed(const char *text, const char *key, uint64_t *out)
{
	if (!text)
		return -ENOENT;
	size_t klen = strlen(key);
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == ' ') {
			char buf[32];
			size_t vlen = len - klen - 1;
			if (vlen == 0 || vlen >= sizeof(buf))
				return -EINVAL;
			memcpy(buf, line + klen + 1, vlen);
			buf[vlen] = '\0';
			return cg_parse_u64(buf, out) < 0 || strcmp(buf, "max") == 0 ? -EINVAL : 0;
		}
		line += len + (nl ? 1 : 0);
	}
	return -ENOENT;
}

static bool number(const char *text, uint64_t *out) { return text && cg_parse_u64(text, out) == 0; }

static void set_working_set(struct cg_stats *out, const char *stat, const char *inactive_key)
{
	uint64_t inactive = 0;
	(void)cg_parse_keyed(stat, inactive_key, &inactive);
	out->working_set = out->mem_usage > inactive ? out->mem_usage - inactive : 0;
}

void cg_v1_memory(const char *usage, const char *stat, const char *limit, const char *memsw_usage,
		  const char *memsw_limit, struct cg_stats *out)
{
	uint64_t v, sw;
	out->have_mem = number(usage, &out->mem_usage);
	if (!out->have_mem)
		return;
	set_working_set(out, stat, "total_inactive_file");
	if (cg_parse_keyed(stat, "total_rss", &v) == 0)
		out->rss = v;
	if (cg_parse_keyed(stat, "total_pgfault", &v) == 0)
		out->pgfault = v;
	if (cg_parse_keyed(stat, "total_pgmajfault", &v) == 0)
		out->pgmajfault = v;
	out->have_limit = number(limit, &v) && v < V1_UNLIMITED;
	if (out->have_limit)
		out->mem_limit = v;
	/* memsw counts memory and swap together. */
	if (number(memsw_usage, &sw)) {
		out->have_swap = true;
		out->swap_usage = sw > out->mem_usage ? sw - out->mem_usage : 0;
		if (out->have_limit && number(memsw_limit, &v) && v < V1_UNLIMITED) {
			out->have_swap_limit = true;
			out->swap_limit = v > out->mem_limit ? v - out->mem_limit : 0;
		}
	}
}

void cg_v2_memory(const char *usage, const char *stat, const char *limit, const char *swap_usage,
		  const char *swap_limit, struct cg_stats *out)
{
	uint64_t v;
	out->have_mem = number(usage, &out->mem_usage);
	if (!out->have_mem)
		return;
	set_working_set(out, stat, "inactive_file");
	if (cg_parse_keyed(stat, "anon", &v) == 0)
		out->rss = v;
	if (cg_parse_keyed(stat, "pgfault", &v) == 0)
		out->pgfault = v;
	if (cg_parse_keyed(stat, "pgmajfault", &v) == 0)
		out->pgmajfault = v;
	out->have_limit = number(limit, &v) && v != UINT64_MAX;
	if (out->have_limit)
		out->mem_limit = v;
	if (number(swap_usage, &v)) {
		out->have_swap = true;
		out->swap_usage = v;
		out->have_swap_limit = number(swap_limit, &v) && v != UINT64_MAX;
		if (out->have_swap_limit)
			out->swap_limit = v;
	}
}

void cg_v1_cpu(const char *usage, struct cg_stats *out) { out->have_cpu = number(usage, &out->cpu_ns); }

void cg_v2_cpu(const char *stat, struct cg_stats *out)
{
	uint64_t us;
	out->have_cpu = cg_parse_keyed(stat, "usage_usec", &us) == 0 && us <= UINT64_MAX / 1000;
	if (out->have_cpu)
		out->cpu_ns = us * 1000;
}

void cg_pids(const char *current, struct cg_stats *out)
{
	out->have_pids = number(current, &out->pids) && out->pids != UINT64_MAX;
}

uint64_t cg_nano_cores(uint64_t cpu0, int64_t t0_ns, uint64_t cpu1, int64_t t1_ns)
{
	if (t1_ns <= t0_ns || cpu1 < cpu0)
		return 0;
	/* (cpu1 - cpu0) / (t1 - t0) cores, in nano cores; in long double so
	 * that neither the product overflows nor a short interval rounds. */
	long double r = (long double)(cpu1 - cpu0) * 1e9L / (long double)(t1_ns - t0_ns);
	return r >= 1.8e19L ? UINT64_MAX : (uint64_t)r;
}

/* ---------------------------------------------------------------- reading */

bool cg_root_is_v2(const char *root)
{
	struct statfs sf;
	return statfs(root, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)CGROUP2_SUPER_MAGIC;
}

/* The text of <root><hier><path>/<file>, or NULL when it cannot be read. */
static char *cg_read(const char *root, const char *hier, const char *path, const char *file)
{
	_cleanup_free_ char *p = NULL;
	char *text = NULL;
	size_t len;
	if (asprintf(&p, "%s%s%s/%s", root, hier, strcmp(path, "/") == 0 ? "" : path, file) < 0)
		return NULL;
	if (read_file(p, CG_FILE_MAX, &text, &len) < 0)
		return NULL;
	return text;
}

static bool cg_exists(const char *root, const char *hier, const char *path)
{
	_cleanup_free_ char *p = NULL;
	struct stat st;
	if (asprintf(&p, "%s%s%s", root, hier, strcmp(path, "/") == 0 ? "" : path) < 0)
		return false;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cg_read_stats(const char *root, bool v2, const char *path, struct cg_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!path || path[0] != '/' || strstr(path, "/../") || strstr(path, "/./"))
		return -EINVAL;
	if (v2) {
		if (!cg_exists(root, "", path))
			return -ENOENT;
		_cleanup_free_ char *cpu = cg_read(root, "", path, "cpu.stat"),
				    *cur = cg_read(root, "", path, "memory.current"),
				    *stat = cg_read(root, "", path, "memory.stat"),
				    *max = cg_read(root, "", path, "memory.max"),
				    *swc = cg_read(root, "", path, "memory.swap.current"),
				    *swm = cg_read(root, "", path, "memory.swap.max"),
				    *pids = cg_read(root, "", path, "pids.current");
		cg_v2_cpu(cpu, out);
		cg_v2_memory(cur, stat, max, swc, swm, out);
		cg_pids(pids, out);
		return 0;
	}
	bool any = false;
	if (cg_exists(root, "/cpuacct", path)) {
		any = true;
		_cleanup_free_ char *u = cg_read(root, "/cpuacct", path, "cpuacct.usage");
		cg_v1_cpu(u, out);
	}
	if (cg_exists(root, "/memory", path)) {
		any = true;
		_cleanup_free_ char *u = cg_read(root, "/memory", path, "memory.usage_in_bytes"),
				    *s = cg_read(root, "/memory", path, "memory.stat"),
				    *l = cg_read(root, "/memory", path, "memory.limit_in_bytes"),
				    *swu = cg_read(root, "/memory", path, "memory.memsw.usage_in_bytes"),
				    *swl = cg_read(root, "/memory", path, "memory.memsw.limit_in_bytes");
		cg_v1_memory(u, s, l, swu, swl, out);
	}
	if (cg_exists(root, "/pids", path)) {
		any = true;
		_cleanup_free_ char *c = cg_read(root, "/pids", path, "pids.current");
		cg_pids(c, out);
	}
	return any ? 0 : -ENOENT;
}
