/* ListMetricDescriptors and ListPodSandboxMetrics: the pod and container
 * figures of stats_service.c's samples under cAdvisor's metric names and
 * labels, for kubelet's /metrics/cadvisor when it takes them from the
 * runtime (PodAndContainerStatsFromCRI: kubelet asks for the descriptors
 * once, then for the metrics at every scrape, and turns each Metric into a
 * Prometheus sample of the descriptor with the same name, label_values in
 * the order of its label_keys).
 *
 * Labels are those kubelet gives cAdvisor's container metrics: container
 * (the CRI container name; "" for the pod's own cgroup), id (the cgroup
 * path), image (as the container config names it), name (the container
 * id; "" for the pod), namespace and pod (the pod's metadata). Some
 * families add their own: cpu ("total": no per-CPU figures), interface,
 * failure_type and scope, device.
 *
 * Values are UInt64 in CRI, so seconds are whole seconds (cAdvisor's are
 * floats): container_cpu_usage_seconds_total truncates. A figure that could
 * not be read is left out, never sent as 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "containers.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "list_reply.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "stats_job.h"
#include "status.h"

enum { L_CONTAINER, L_ID, L_IMAGE, L_NAME, L_NAMESPACE, L_POD, N_BASE };
static const char *const base_keys[N_BASE] = {"container", "id", "image", "name", "namespace", "pod"};

#define MAX_EXTRA 2

struct desc {
	const char *name, *help;
	const char *extra[MAX_EXTRA]; /* label keys after the base ones */
};

static const struct desc descs[] = {
	{"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", {"cpu"}},
	{"container_memory_usage_bytes",
	 "Current memory usage in bytes, including all memory regardless of when it was accessed", {NULL}},
	{"container_memory_working_set_bytes", "Current working set in bytes.", {NULL}},
	{"container_memory_rss", "Size of RSS in bytes.", {NULL}},
	{"container_memory_swap", "Container swap usage in bytes.", {NULL}},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.",
	 {"failure_type", "scope"}},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", {NULL}},
	{"container_threads", "Number of threads running inside the container", {NULL}},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.",
	 {"device"}},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", {NULL}},
	{"container_last_seen", "Last time a container was seen by the exporter", {NULL}},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received", {"interface"}},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving",
	 {"interface"}},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", {"interface"}},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting",
	 {"interface"}},
};

void stats_metric_descriptors(struct grpc_call *call, const ProtobufCMessage *msg _unused_, void *ud _unused_)
{
	Runtime__V1__MetricDescriptor d[ARRAY_SIZE(descs)], *dp[ARRAY_SIZE(descs)];
	char *keys[ARRAY_SIZE(descs)][N_BASE + MAX_EXTRA];
	for (size_t i = 0; i < ARRAY_SIZE(descs); i++) {
		runtime__v1__metric_descriptor__init(&d[i]);
		d[i].name = (char *)descs[i].name;
		d[i].help = (char *)descs[i].help;
		size_t n = 0;
		for (size_t k = 0; k < N_BASE; k++)
			keys[i][n++] = (char *)base_keys[k];
		for (size_t k = 0; k < MAX_EXTRA && descs[i].extra[k]; k++)
			keys[i][n++] = (char *)descs[i].extra[k];
		d[i].label_keys = keys[i];
		d[i].n_label_keys = n;
		dp[i] = &d[i];
	}
	Runtime__V1__ListMetricDescriptorsResponse resp = RUNTIME__V1__LIST_METRIC_DESCRIPTORS_RESPONSE__INIT;
	resp.descriptors = dp;
	resp.n_descriptors = ARRAY_SIZE(descs);
	grpc_call_reply(call, &resp.base);
}

void stats_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *msg _unused_, void *ud)
{
	struct criod *c = ud;
	stats_samples_prune(c);
	stats_pods_job(c, call, JOB_METRICS, NULL, NULL, &runtime__v1__list_pod_sandbox_metrics_response__descriptor);
}

void stats_stream_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *msg _unused_, void *ud)
{
	struct criod *c = ud;
	stats_samples_prune(c);
	stats_pods_job(c, call, JOB_METRICS, NULL, NULL, &runtime__v1__stream_pod_sandbox_metrics_response__descriptor);
}

/* ---------------------------------------------------------------- building */

/* Every object of the reply is malloc'd so that one
 * protobuf_c_message_free_unpacked frees it all. */
struct mlist {
	Runtime__V1__Metric **v;
	size_t n, cap;
	bool *failed;
};

static char *dup_(const char *s, bool *failed)
{
	char *r = strdup(s ? s : "");
	if (!r)
		*failed = true;
	return r;
}

static void add(struct mlist *l, const char *name, Runtime__V1__MetricType type, int64_t ts, const char *const *base,
		const char *e1, const char *e2, uint64_t value)
{
	if (*l->failed)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		Runtime__V1__Metric **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			*l->failed = true;
			return;
		}
		l->v = v;
		l->cap = cap;
	}
	Runtime__V1__Metric *m = calloc(1, sizeof(*m));
	Runtime__V1__UInt64Value *uv = calloc(1, sizeof(*uv));
	char **lv = calloc(N_BASE + MAX_EXTRA, sizeof(*lv));
	if (!m || !uv || !lv) {
		free(m);
		free(uv);
		free(lv);
		*l->failed = true;
		return;
	}
	runtime__v1__metric__init(m);
	runtime__v1__uint64_value__init(uv);
	uv->value = value;
	m->value = uv;
	m->name = dup_(name, l->failed);
	m->timestamp = ts;
	m->metric_type = type;
	m->label_values = lv;
	for (size_t i = 0; i < N_BASE; i++)
		lv[m->n_label_values++] = dup_(base[i], l->failed);
	if (e1)
		lv[m->n_label_values++] = dup_(e1, l->failed);
	if (e2)
		lv[m->n_label_values++] = dup_(e2, l->failed);
	l->v[l->n++] = m;
}

#define COUNTER RUNTIME__V1__METRIC_TYPE__COUNTER
#define GAUGE RUNTIME__V1__METRIC_TYPE__GAUGE

/* The cgroup figures every container and the pod have. */
static void add_cgroup(struct mlist *l, const char *const *base, int64_t ts, const struct cg_stats *cg, bool leaf)
{
	if (cg->have_cpu)
		add(l, "container_cpu_usage_seconds_total", COUNTER, ts, base, "total", NULL, cg->cpu_ns / 1000000000ull);
	if (cg->have_mem) {
		add(l, "container_memory_usage_bytes", GAUGE, ts, base, NULL, NULL, cg->mem_usage);
		add(l, "container_memory_working_set_bytes", GAUGE, ts, base, NULL, NULL, cg->working_set);
		add(l, "container_memory_rss", GAUGE, ts, base, NULL, NULL, cg->rss);
		/* The figures are memory.stat's hierarchical ones; a container's
		 * cgroup has no children, so they are its own too. */
		add(l, "container_memory_failures_total", COUNTER, ts, base, "pgfault", "hierarchy", cg->pgfault);
		add(l, "container_memory_failures_total", COUNTER, ts, base, "pgmajfault", "hierarchy", cg->pgmajfault);
		if (leaf) {
			add(l, "container_memory_failures_total", COUNTER, ts, base, "pgfault", "container", cg->pgfault);
			add(l, "container_memory_failures_total", COUNTER, ts, base, "pgmajfault", "container",
			    cg->pgmajfault);
		}
		/* cAdvisor's 0 for no limit */
		add(l, "container_spec_memory_limit_bytes", GAUGE, ts, base, NULL, NULL, cg->have_limit ? cg->mem_limit : 0);
	}
	if (cg->have_swap)
		add(l, "container_memory_swap", GAUGE, ts, base, NULL, NULL, cg->swap_usage);
	if (cg->have_pids)
		add(l, "container_threads", GAUGE, ts, base, NULL, NULL, cg->pids);
	add(l, "container_last_seen", GAUGE, ts, base, NULL, NULL, (uint64_t)(ts / 1000000000LL));
}

static const char *meta(const Runtime__V1__PodSandboxConfig *cfg, bool ns)
{
	if (!cfg || !cfg->metadata)
		return "";
	const char *v = ns ? cfg->metadata->namespace_ : cfg->metadata->name;
	return v ? v : "";
}

static char *cgroup_of(const struct pod *p, const char *ctr_id)
{
	char *path = NULL;
	if (!p->cgroup || !*p->cgroup)
		return strdup("");
	if (!ctr_id)
		return strdup(p->cgroup);
	if (asprintf(&path, "%s/criod-%s", strcmp(p->cgroup, "/") == 0 ? "" : p->cgroup, ctr_id) < 0)
		return NULL;
	return path;
}

static Runtime__V1__PodSandboxMetrics *pod_metrics(struct criod *c, const struct stats_job *job,
						    const struct pstat *ps, bool *failed)
{
	struct pod *p = pods_find(&c->pods, ps->id);
	if (!p || strcmp(p->id, ps->id) != 0)
		return NULL;
	Runtime__V1__PodSandboxMetrics *pm = calloc(1, sizeof(*pm));
	if (!pm) {
		*failed = true;
		return NULL;
	}
	runtime__v1__pod_sandbox_metrics__init(pm);
	pm->pod_sandbox_id = dup_(p->id, failed);
	_cleanup_free_ char *pcg = cgroup_of(p, NULL);
	const char *base[N_BASE] = {[L_CONTAINER] = "", [L_ID] = pcg ? pcg : "", [L_IMAGE] = "", [L_NAME] = "",
				    [L_NAMESPACE] = meta(p->config, true), [L_POD] = meta(p->config, false)};
	struct mlist l = {.failed = failed};
	add_cgroup(&l, base, ps->ts, &ps->cg, false);
	if (ps->have_net)
		for (size_t i = 0; i < ps->n_ifs; i++) {
			const struct iface *f = &ps->ifs[i];
			add(&l, "container_network_receive_bytes_total", COUNTER, ps->net_ts, base, f->name, NULL,
			    f->rx_bytes);
			add(&l, "container_network_receive_errors_total", COUNTER, ps->net_ts, base, f->name, NULL,
			    f->rx_errors);
			add(&l, "container_network_transmit_bytes_total", COUNTER, ps->net_ts, base, f->name, NULL,
			    f->tx_bytes);
			add(&l, "container_network_transmit_errors_total", COUNTER, ps->net_ts, base, f->name, NULL,
			    f->tx_errors);
		}
	pm->metrics = l.v;
	pm->n_metrics = l.n;
	pm->container_metrics = calloc(ps->n ? ps->n : 1, sizeof(*pm->container_metrics));
	if (!pm->container_metrics) {
		*failed = true;
		return pm;
	}
	for (size_t i = 0; i < ps->n && !*failed; i++) {
		const struct cstat *cs = &job->cs[ps->first + i];
		struct container *ctr = ctrs_find(&c->ctrs, cs->id);
		if (!ctr || strcmp(ctr->id, cs->id) != 0 || ctr->gone)
			continue;
		Runtime__V1__ContainerMetrics *cm = calloc(1, sizeof(*cm));
		if (!cm) {
			*failed = true;
			break;
		}
		runtime__v1__container_metrics__init(cm);
		pm->container_metrics[pm->n_container_metrics++] = cm;
		cm->container_id = dup_(ctr->id, failed);
		_cleanup_free_ char *ccg = cgroup_of(p, ctr->id);
		const Runtime__V1__ContainerConfig *cfg = ctr->config;
		const char *cbase[N_BASE] = {
			[L_CONTAINER] = cfg && cfg->metadata && cfg->metadata->name ? cfg->metadata->name : "",
			[L_ID] = ccg ? ccg : "",
			[L_IMAGE] = ctr->image ? ctr->image : "",
			[L_NAME] = ctr->id,
			[L_NAMESPACE] = base[L_NAMESPACE],
			[L_POD] = base[L_POD],
		};
		struct mlist cl = {.failed = failed};
		add_cgroup(&cl, cbase, cs->ts, &cs->cg, true);
		if (cs->have_fs)
			add(&cl, "container_fs_usage_bytes", GAUGE, cs->fs_ts, cbase, cs->fs_mount, NULL, cs->fs_bytes);
		if (ctr->created_at > 0)
			add(&cl, "container_start_time_seconds", GAUGE, cs->ts, cbase, NULL, NULL,
			    (uint64_t)(ctr->created_at / 1000000000LL));
		cm->metrics = cl.v;
		cm->n_metrics = cl.n;
	}
	return pm;
}

void stats_metrics_reply(struct stats_job *job)
{
	bool failed = false;
	Runtime__V1__ListPodSandboxMetricsResponse *resp = calloc(1, sizeof(*resp));
	if (resp) {
		runtime__v1__list_pod_sandbox_metrics_response__init(resp);
		resp->pod_metrics = calloc(job->n_ps ? job->n_ps : 1, sizeof(*resp->pod_metrics));
	}
	if (!resp || !resp->pod_metrics) {
		free(resp);
		grpc_call_fail(job->call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	for (size_t i = 0; i < job->n_ps && !failed; i++) {
		Runtime__V1__PodSandboxMetrics *pm = pod_metrics(job->c, job, &job->ps[i], &failed);
		if (pm)
			resp->pod_metrics[resp->n_pod_metrics++] = pm;
	}
	if (failed)
		grpc_call_fail(job->call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
	else
		list_reply(job->call, job->list, (ProtobufCMessage *const *)resp->pod_metrics, resp->n_pod_metrics);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}
