/* A process's own figures for the metrics endpoint: resident memory, CPU
 * time, open file descriptors, threads and start time, from /proc/self
 * (each daemon reads its own; criod's Metrics requests carry them).
 * A figure that cannot be read is left 0 with its have_ flag false. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct proc_figures {
	bool have_stat, have_rss, have_fds;
	uint64_t cpu_ns;        /* utime + stime */
	uint64_t threads;
	int64_t start_time_ns;  /* realtime */
	uint64_t rss_bytes;
	uint64_t open_fds;
};

/* /proc/<pid>/stat: utime + stime (fields 14, 15) in ns, num_threads
 * (20) and starttime (22, ticks since boot), given the clock ticks per
 * second. The command (field 2) may hold spaces and parentheses: fields
 * are counted from the last ')'. -EINVAL if it does not parse. (pure) */
int procstat_parse_stat(const char *text, long ticks_per_sec, uint64_t *cpu_ns, uint64_t *threads,
			uint64_t *start_ticks);
/* /proc/stat's "btime N" line: boot time in seconds since the epoch. (pure) */
int procstat_parse_btime(const char *text, int64_t *btime);
/* /proc/<pid>/statm: resident pages (field 2). (pure) */
int procstat_parse_statm(const char *text, uint64_t *resident_pages);

/* Whether /proc/<pid>/status text says the process is the init (PID 1)
 * of a PID namespace below the reader's: its NSpid line has two fields or
 * more (a namespace below ours) and the last, its pid in its innermost
 * namespace, is 1. (pure) */
bool procstat_parse_ns_init(const char *status_text);

/* The figures of the calling process. */
void procstat_self(struct proc_figures *out);
