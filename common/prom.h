/* Prometheus text exposition format (version 0.0.4) and fixed-bucket
 * histograms, for criod's metrics endpoint and the figures the root daemons
 * report through their Metrics request.
 *
 * Writer: families are written one at a time, each as "# HELP", "# TYPE"
 * and its samples; label values are escaped (backslash, quote, newline),
 * numbers are written as Prometheus parses them (integers exactly, +Inf,
 * NaN). Names are not checked here: every name is a literal in criod.
 * Output goes to a growing buffer; after an allocation failure every call
 * is a no-op and prom_buf_failed() says so. (pure) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct prom_buf {
	char *data;
	size_t len, cap;
	bool failed;
};

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM };

/* One label: name and value (NULL value is written as ""). */
struct prom_label {
	const char *name, *value;
};

void prom_buf_free(struct prom_buf *b);
bool prom_buf_failed(const struct prom_buf *b);

/* "# HELP name help\n# TYPE name type\n" (help escaped as the format wants). */
void prom_family(struct prom_buf *b, const char *name, const char *help, enum prom_type type);
/* name{labels} value\n; n may be 0 (no braces). */
void prom_sample(struct prom_buf *b, const char *name, const struct prom_label *labels, size_t n, double value);
/* The same for an exact unsigned integer. */
void prom_sample_u64(struct prom_buf *b, const char *name, const struct prom_label *labels, size_t n, uint64_t value);

/* A histogram with fixed upper bounds (ascending, finite), counts per
 * bucket (not cumulative; counts[n_bounds] is the +Inf bucket), their sum. */
#define PROM_MAX_BUCKETS 24
struct prom_hist {
	const double *bounds;
	size_t n_bounds;
	uint64_t counts[PROM_MAX_BUCKETS + 1];
	double sum;
};

/* Bounds in seconds shared by criod's latency histograms: 1 ms to 2 min. */
extern const double prom_latency_bounds[];
extern const size_t prom_n_latency_bounds;

/* Set up h over bounds (at most PROM_MAX_BUCKETS; more are cut). */
void prom_hist_init(struct prom_hist *h, const double *bounds, size_t n_bounds);
/* Count one value into the first bucket whose bound is >= v (le). */
void prom_hist_observe(struct prom_hist *h, double v);
uint64_t prom_hist_count(const struct prom_hist *h);
/* name_bucket{labels,le=...} cumulative, name_sum, name_count. */
void prom_hist_write(struct prom_buf *b, const char *name, const struct prom_label *labels, size_t n,
		     const struct prom_hist *h);

/* One operation's outcomes by gRPC status (0..16): a latency histogram and
 * a byte count each (pulls, pod network setups). */
#define PROM_N_STATUS 17
struct prom_by_status {
	struct prom_hist h[PROM_N_STATUS];
	uint64_t bytes[PROM_N_STATUS];
};
void prom_by_status_init(struct prom_by_status *s, const double *bounds, size_t n_bounds);
/* A status outside 0..16 counts as UNKNOWN (2). */
void prom_by_status_observe(struct prom_by_status *s, int status, double seconds, uint64_t bytes);
