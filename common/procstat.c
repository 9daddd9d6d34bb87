/* A process's own figures; see procstat.h. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "procstat.h"
#include "util.h"

#define PROC_FILE_MAX (64u << 10)

/* Skip the spaces before a number, then read it. */
static int parse_u64(const char **p, uint64_t *out)
{
	const char *s = *p;
	while (*s == ' ')
		s++;
	int r = parse_u64_digits(&s, out);
	if (r == 0)
		*p = s;
	return r;
}

/* Skip one space-separated field (of any text). */
static int skip_field(const char **p)
{
	const char *s = *p;
	while (*s == ' ')
		s++;
	if (!*s || *s == '\n')
		return -EINVAL;
	while (*s && *s != ' ' && *s != '\n')
		s++;
	*p = s;
	return 0;
}

int procstat_parse_stat(const char *text, long ticks_per_sec, uint64_t *cpu_ns, uint64_t *threads,
			uint64_t *start_ticks)
{
	if (!text || ticks_per_sec <= 0)
		return -EINVAL;
	const char *s = strrchr(text, ')');
	if (!s)
		return -EINVAL;
	s++;
	/* s is before field 3 (state); fields 14, 15, 20, 22 are wanted. */
	uint64_t ut = 0, st = 0, th = 0, start = 0;
	for (int field = 3; field <= 22; field++) {
		int r;
		if (field == 14)
			r = parse_u64(&s, &ut);
		else if (field == 15)
			r = parse_u64(&s, &st);
		else if (field == 20)
			r = parse_u64(&s, &th);
		else if (field == 22)
			r = parse_u64(&s, &start);
		else
			r = skip_field(&s);
		if (r < 0)
			return -EINVAL;
	}
	uint64_t per = 1000000000ull / (uint64_t)ticks_per_sec;
	if (ut > UINT64_MAX / per || st > UINT64_MAX / per || ut * per > UINT64_MAX - st * per)
		return -EINVAL;
	*cpu_ns = ut * per + st * per;
	*threads = th;
	*start_ticks = start;
	return 0;
}

int procstat_parse_btime(const char *text, int64_t *btime)
{
	for (const char *s = text; s && *s;) {
		if (strncmp(s, "btime ", 6) == 0) {
			const char *p = s + 6;
			uint64_t v;
			if (parse_u64(&p, &v) < 0 || (*p && *p != '\n') || v > INT64_MAX)
				return -EINVAL;
			*btime = (int64_t)v;
			return 0;
		}
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return -ENOENT;
}

int procstat_parse_statm(const char *text, uint64_t *resident_pages)
{
	const char *s = text;
	uint64_t size;
	if (!s || parse_u64(&s, &size) < 0 || parse_u64(&s, resident_pages) < 0)
		return -EINVAL;
	return 0;
}

bool procstat_parse_ns_init(const char *status_text)
{
	for (const char *l = status_text; l && *l;) {
		const char *end = strchrnul(l, '\n');
		if (strncmp(l, "NSpid:", 6) == 0) {
			const char *last = NULL;
			for (const char *p = l + 6; p < end; p++)
				if (*p == '\t')
					last = p;
			return last && last != l + 6 && strtol(last + 1, NULL, 10) == 1;
		}
		l = *end ? end + 1 : NULL;
	}
	return false;
}

void procstat_self(struct proc_figures *out)
{
	memset(out, 0, sizeof(*out));
	long tck = sysconf(_SC_CLK_TCK);
	_cleanup_free_ char *stat = NULL, *pstat = NULL, *statm = NULL;
	size_t len;
	uint64_t start;
	int64_t btime;
	if (read_file("/proc/self/stat", PROC_FILE_MAX, &stat, &len) == 0 &&
	    procstat_parse_stat(stat, tck, &out->cpu_ns, &out->threads, &start) == 0 &&
	    read_file("/proc/stat", 1u << 20, &pstat, &len) == 0 && procstat_parse_btime(pstat, &btime) == 0) {
		out->have_stat = true;
		out->start_time_ns = btime * 1000000000LL + (int64_t)(start * (1000000000ull / (uint64_t)tck));
	}
	uint64_t pages;
	long psz = sysconf(_SC_PAGESIZE);
	if (read_file("/proc/self/statm", PROC_FILE_MAX, &statm, &len) == 0 &&
	    procstat_parse_statm(statm, &pages) == 0 && psz > 0) {
		out->have_rss = true;
		out->rss_bytes = pages * (uint64_t)psz;
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		uint64_t n = 0;
		while ((e = readdir(d)))
			n += e->d_name[0] != '.';
		closedir(d);
		out->have_fds = true;
		out->open_fds = n > 0 ? n - 1 : 0; /* less the directory's own fd */
	}
}
