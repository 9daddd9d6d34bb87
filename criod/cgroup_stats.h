/* A container's or pod's resource figures from its cgroup, for the CRI
 * stats RPCs: cgroup v1 (one hierarchy per controller under
 * <root>/cpuacct, <root>/memory, <root>/pids) and v2 (one hierarchy at
 * <root>). criod reads the files itself: they are world-readable.
 *
 * The figures are kubelet's (and cAdvisor's):
 *   cpu_ns        v1 cpuacct.usage; v2 cpu.stat usage_usec * 1000
 *   mem_usage     v1 memory.usage_in_bytes; v2 memory.current
 *   working_set   usage - inactive_file (total_inactive_file in v1's
 *                 memory.stat, inactive_file in v2's), 0 if below
 *   rss           v1 total_rss; v2 anon
 *   pgfault,      v1 total_pgfault, total_pgmajfault; v2 pgfault, pgmajfault
 *   pgmajfault
 *   mem_limit     v1 memory.limit_in_bytes, v2 memory.max; unlimited (v2
 *                 "max", v1 a value of 2^62 or more) is no limit
 *   swap_usage    v1 memory.memsw.usage_in_bytes - usage (only with swap
 *                 accounting); v2 memory.swap.current
 *   swap_limit    v1 memory.memsw.limit_in_bytes - memory limit; v2
 *                 memory.swap.max
 *   pids          pids.current
 * A figure whose file is missing or does not parse is absent (its have_
 * flag false); nothing is made up. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct cg_stats {
	bool have_cpu, have_mem, have_limit, have_swap, have_swap_limit, have_pids;
	uint64_t cpu_ns;
	uint64_t mem_usage, working_set, rss, pgfault, pgmajfault, mem_limit;
	uint64_t swap_usage, swap_limit;
	uint64_t pids;
};

/* ---- pure: the text of cgroup files ---- */

/* One unsigned decimal number, optionally followed by whitespace; "max"
 * is UINT64_MAX. -EINVAL otherwise. */
int cg_parse_u64(const char *text, uint64_t *out);
/* The value of key in a flat keyed file ("key value" lines: memory.stat,
 * cpu.stat). -ENOENT when the key is absent, -EINVAL when it does not
 * parse. */
int cg_parse_keyed(const char *text, const char *key, uint64_t *out);

/* The memory figures from the files' text (NULL: the file is absent).
 * v1: usage memory.usage_in_bytes, stat memory.stat, limit
 * memory.limit_in_bytes, memsw_usage/memsw_limit memory.memsw.*; v2: usage
 * memory.current, stat memory.stat, limit memory.max, swap_usage/
 * swap_limit memory.swap.current/max. Fills the memory and swap fields. */
void cg_v1_memory(const char *usage, const char *stat, const char *limit, const char *memsw_usage,
		  const char *memsw_limit, struct cg_stats *out);
void cg_v2_memory(const char *usage, const char *stat, const char *limit, const char *swap_usage,
		  const char *swap_limit, struct cg_stats *out);
/* v1 cpuacct.usage / v2 cpu.stat. */
void cg_v1_cpu(const char *usage, struct cg_stats *out);
void cg_v2_cpu(const char *stat, struct cg_stats *out);
void cg_pids(const char *current, struct cg_stats *out);

/* usage_nano_cores from two samples of cpu_ns taken at t0_ns and t1_ns
 * (any clock): 0 when the interval is empty or the counter went back. */
uint64_t cg_nano_cores(uint64_t cpu0, int64_t t0_ns, uint64_t cpu1, int64_t t1_ns);

/* ---- reading a cgroup ---- */

/* Whether root (normally /sys/fs/cgroup) is a cgroup v2 mount. */
bool cg_root_is_v2(const char *root);
/* Read the figures of the cgroup at path (relative to each hierarchy,
 * starting with "/") under root. Returns 0, or -ENOENT when the cgroup
 * does not exist in any hierarchy (a container not started yet); a
 * missing file otherwise only leaves its figure absent. */
int cg_read_stats(const char *root, bool v2, const char *path, struct cg_stats *out);
