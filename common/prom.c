/* Prometheus text format and histograms; see prom.h. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "prom.h"

const double prom_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				      0.5,   1,      2.5,   5,    10,    30,   60,  120};
const size_t prom_n_latency_bounds = ARRAY_SIZE(prom_latency_bounds);

void prom_buf_free(struct prom_buf *b)
{
	free(b->data);
	*b = (struct prom_buf){0};
}

bool prom_buf_failed(const struct prom_buf *b) { return b->failed; }

static bool reserve(struct prom_buf *b, size_t more)
{
	if (b->failed)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more + 1)
		cap *= 2;
	char *d = realloc(b->data, cap);
	if (!d) {
		b->failed = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

static void put(struct prom_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void puts_(struct prom_buf *b, const char *s) { put(b, s, strlen(s)); }

_printf_(2, 3) static void putf(struct prom_buf *b, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Label values escape \, " and newline; HELP text escapes \ and newline. */
static void put_escaped(struct prom_buf *b, const char *s, bool quote)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			puts_(b, "\\\\");
		else if (*s == '\n')
			puts_(b, "\\n");
		else if (quote && *s == '"')
			puts_(b, "\\\"");
		else
			put(b, s, 1);
	}
}

void prom_family(struct prom_buf *b, const char *name, const char *help, enum prom_type type)
{
	static const char *const types[] = {[PROM_COUNTER] = "counter", [PROM_GAUGE] = "gauge",
					    [PROM_HISTOGRAM] = "histogram"};
	puts_(b, "# HELP ");
	puts_(b, name);
	puts_(b, " ");
	put_escaped(b, help, false);
	puts_(b, "\n# TYPE ");
	puts_(b, name);
	puts_(b, " ");
	puts_(b, types[type]);
	puts_(b, "\n");
}

static void put_labels(struct prom_buf *b, const struct prom_label *labels, size_t n, const char *le)
{
	if (!n && !le)
		return;
	puts_(b, "{");
	for (size_t i = 0; i < n; i++) {
		if (i)
			puts_(b, ",");
		puts_(b, labels[i].name);
		puts_(b, "=\"");
		put_escaped(b, labels[i].value, true);
		puts_(b, "\"");
	}
	if (le) {
		puts_(b, n ? ",le=\"" : "le=\"");
		puts_(b, le);
		puts_(b, "\"");
	}
	puts_(b, "}");
}

/* A float as Prometheus reads it: integers without exponent where exact,
 * else the shortest %g that reads back as the same double; +Inf, -Inf, NaN. */
static void format_value(char *out, size_t size, double v)
{
	if (isnan(v)) {
		snprintf(out, size, "NaN");
	} else if (isinf(v)) {
		snprintf(out, size, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(out, size, "%.0f", v);
	} else {
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(out, size, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				return;
		}
	}
}

static void put_value(struct prom_buf *b, double v)
{
	char tmp[40];
	format_value(tmp, sizeof(tmp), v);
	puts_(b, tmp);
}

void prom_sample(struct prom_buf *b, const char *name, const struct prom_label *labels, size_t n, double value)
{
	puts_(b, name);
	put_labels(b, labels, n, NULL);
	puts_(b, " ");
	put_value(b, value);
	puts_(b, "\n");
}

void prom_sample_u64(struct prom_buf *b, const char *name, const struct prom_label *labels, size_t n, uint64_t value)
{
	puts_(b, name);
	put_labels(b, labels, n, NULL);
	putf(b, " %llu\n", (unsigned long long)value);
}

void prom_hist_init(struct prom_hist *h, const double *bounds, size_t n_bounds)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n_bounds = n_bounds > PROM_MAX_BUCKETS ? PROM_MAX_BUCKETS : n_bounds;
}

void prom_hist_observe(struct prom_hist *h, double v)
{
	size_t i = 0;
	while (i < h->n_bounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	if (!isnan(v))
		h->sum += v;
}

uint64_t prom_hist_count(const struct prom_hist *h)
{
	uint64_t n = 0;
	for (size_t i = 0; i <= h->n_bounds; i++)
		n += h->counts[i];
	return n;
}

void prom_hist_write(struct prom_buf *b, const char *name, const struct prom_label *labels, size_t n,
		     const struct prom_hist *h)
{
	char bucket[128], sum[128], count[128];
	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	snprintf(sum, sizeof(sum), "%s_sum", name);
	snprintf(count, sizeof(count), "%s_count", name);
	uint64_t cum = 0;
	for (size_t i = 0; i <= h->n_bounds; i++) {
		char le[40];
		cum += h->counts[i];
		if (i < h->n_bounds)
			format_value(le, sizeof(le), h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		puts_(b, bucket);
		put_labels(b, labels, n, le);
		putf(b, " %llu\n", (unsigned long long)cum);
	}
	prom_sample(b, sum, labels, n, h->sum);
	prom_sample_u64(b, count, labels, n, cum);
}

void prom_by_status_init(struct prom_by_status *s, const double *bounds, size_t n_bounds)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < PROM_N_STATUS; i++)
		prom_hist_init(&s->h[i], bounds, n_bounds);
}

void prom_by_status_observe(struct prom_by_status *s, int status, double seconds, uint64_t bytes)
{
	if (status < 0 || status >= PROM_N_STATUS)
		status = 2;
	prom_hist_observe(&s->h[status], seconds);
	s->bytes[status] += bytes;
}
