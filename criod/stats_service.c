/* The CRI stats RPCs: ContainerStats, ListContainerStats, PodSandboxStats
 * and ListPodSandboxStats.
 *
 * Who reads what:
 *  - CPU, memory, swap and process figures: criod reads the cgroup files
 *    itself (cgroup_stats.c; world-readable on v1 and v2). A container's
 *    cgroup is <pod cgroup>/criod-<id> (the cgroupsPath oci_spec.c writes
 *    below the cgroup spawnd made for the pod, p->cgroup); a pod's is
 *    p->cgroup, which holds the pause process and every container.
 *  - usage_nano_cores: from the previous sample of the same container or
 *    pod, kept here (one per id, dropped when the id is gone); the first
 *    sample has none, and one within CPU_MIN_INTERVAL_NS of the last
 *    answers the last interval's rate.
 *  - The writable layer: imaged's RootfsUsage (it owns the upper
 *    directories; cached there), one pipelined call per container.
 *  - A pod's interfaces: netd's PodNetworkStats (counters read inside the
 *    pod's namespace), for ready pods with a network of their own.
 * A figure that cannot be had (a created container has no cgroup yet; a
 * daemon that did not answer) is left out of the reply, never made up:
 * the entry is present, with its timestamps, and empty. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cgroup_stats.h"
#include "containers.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "internal/imaged.pb-c.h"
#include "internal/netd.pb-c.h"
#include "list_reply.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "stats_job.h"
#include "status.h"
#include "util.h"

#define CGROUP_FS "/sys/fs/cgroup"
#define STATS_IPC_TIMEOUT_MS 10000

/* ---------------------------------------------------------------- CPU samples */

/* Samples closer together than this (kubelet asking ListPodSandboxStats
 * and ListContainerStats back to back, say) answer the rate of the last
 * interval instead of one over a few microseconds. */
#define CPU_MIN_INTERVAL_NS (100 * 1000000LL)

struct cpu_sample {
	struct cpu_sample *next;
	char id[65];
	uint64_t cpu_ns;
	int64_t t_ns; /* monotonic */
	bool have_cores;
	uint64_t cores; /* over the interval that ended at t_ns */
};

static struct cpu_sample *samples;

/* Record this sample; *cores from the one before, if there was one. */
static bool sample_cores(const char *id, uint64_t cpu_ns, int64_t t_ns, uint64_t *cores)
{
	struct cpu_sample *s;
	for (s = samples; s; s = s->next)
		if (strcmp(s->id, id) == 0)
			break;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return false;
		snprintf(s->id, sizeof(s->id), "%s", id);
		s->next = samples;
		samples = s;
	} else if (t_ns - s->t_ns < CPU_MIN_INTERVAL_NS && cpu_ns >= s->cpu_ns) {
		*cores = s->cores;
		return s->have_cores;
	} else {
		/* A counter that went back is a new cgroup: no rate yet. */
		s->have_cores = t_ns > s->t_ns && cpu_ns >= s->cpu_ns;
		if (s->have_cores)
			s->cores = cg_nano_cores(s->cpu_ns, s->t_ns, cpu_ns, t_ns);
	}
	s->cpu_ns = cpu_ns;
	s->t_ns = t_ns;
	*cores = s->cores;
	return s->have_cores;
}

/* Drop the samples of containers and pods that are gone. */
void stats_samples_prune(struct criod *c)
{
	for (struct cpu_sample **pp = &samples; *pp;) {
		struct cpu_sample *s = *pp;
		struct container *ctr = ctrs_find(&c->ctrs, s->id);
		struct pod *p = pods_find(&c->pods, s->id);
		if ((ctr && strcmp(ctr->id, s->id) == 0) || (p && strcmp(p->id, s->id) == 0)) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		free(s);
	}
}

/* ---------------------------------------------------------------- a job */

static void job_finish(struct stats_job *job);

static void job_put(struct stats_job *job)
{
	if (--job->pending == 0 && job->issued)
		job_finish(job);
}

static bool cgroup_v2_host(void)
{
	static int v = -1;
	if (v < 0)
		v = cg_root_is_v2(CGROUP_FS);
	return v == 1;
}

static void sample_cgroup(const char *id, const char *path, int64_t *ts, struct cg_stats *cg, bool *have_cores,
			  uint64_t *cores)
{
	*ts = now_realtime_ns();
	memset(cg, 0, sizeof(*cg));
	if (!path || !*path)
		return;
	int64_t mono = now_monotonic_ns();
	if (cg_read_stats(CGROUP_FS, cgroup_v2_host(), path, cg) < 0)
		return;
	if (cg->have_cpu)
		*have_cores = sample_cores(id, cg->cpu_ns, mono, cores);
}

static void usage_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
		       void *ud)
{
	struct cstat *cs = ud;
	if (status == STATUS_OK) {
		const Criod__Internal__RootfsUsageResponse *r = (const void *)resp;
		cs->have_fs = true;
		cs->fs_bytes = r->used_bytes;
		cs->fs_inodes = r->inodes_used;
		cs->fs_ts = r->timestamp_ns;
		snprintf(cs->fs_mount, sizeof(cs->fs_mount), "%s", r->mountpoint ? r->mountpoint : "");
	} else if (status == STATUS_NOT_FOUND) {
		log_debug(cs->job->req, "no writable layer figure", "container=%s error=\"%s\"", cs->id, message);
	} else {
		log_warn(cs->job->req, "imaged did not measure a writable layer", "container=%s status=%d error=\"%s\"",
			 cs->id, status, message);
	}
	job_put(cs->job);
}

static void net_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct pstat *ps = ud;
	if (status == STATUS_OK) {
		const Criod__Internal__PodNetworkStatsResponse *r = (const void *)resp;
		ps->have_net = true;
		ps->net_ts = r->timestamp_ns;
		snprintf(ps->net_default, sizeof(ps->net_default), "%s", r->default_interface ? r->default_interface : "");
		for (size_t i = 0; i < r->n_interfaces && ps->n_ifs < MAX_IFACES; i++) {
			const Criod__Internal__InterfaceStats *is = r->interfaces[i];
			if (!is || !is->name || !*is->name)
				continue;
			struct iface *f = &ps->ifs[ps->n_ifs++];
			snprintf(f->name, sizeof(f->name), "%s", is->name);
			f->rx_bytes = is->rx_bytes;
			f->rx_errors = is->rx_errors;
			f->tx_bytes = is->tx_bytes;
			f->tx_errors = is->tx_errors;
		}
	} else if (status == STATUS_NOT_FOUND) {
		log_debug(ps->job->req, "no pod network figures", "pod=%s error=\"%s\"", ps->id, message);
	} else {
		log_warn(ps->job->req, "netd did not read a pod's interfaces", "pod=%s status=%d error=\"%s\"", ps->id,
			 status, message);
	}
	job_put(ps->job);
}

static void issue(struct stats_job *job, struct ipc_client *cl, const struct ipc_method *m, const ProtobufCMessage *req,
		  ipc_reply_fn cb, void *ud)
{
	if (job->c->stopping || !cl)
		return;
	job->pending++;
	int r = ipc_client_call(cl, m, job->req, req, NULL, 0, STATS_IPC_TIMEOUT_MS, cb, ud);
	if (r < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "cannot queue %s: %s", m->name, strerror(-r));
		cb(STATUS_UNAVAILABLE, msg, NULL, NULL, 0, ud);
	}
}

static void container_sample(struct stats_job *job, struct cstat *cs, const struct container *ctr,
			     const struct pod *p)
{
	cs->job = job;
	snprintf(cs->id, sizeof(cs->id), "%s", ctr->id);
	_cleanup_free_ char *path = NULL;
	if (p && p->cgroup && *p->cgroup &&
	    asprintf(&path, "%s/criod-%s", strcmp(p->cgroup, "/") == 0 ? "" : p->cgroup, ctr->id) < 0)
		path = NULL;
	sample_cgroup(ctr->id, path, &cs->ts, &cs->cg, &cs->have_cores, &cs->cores);
	Criod__Internal__RootfsUsageRequest req = CRIOD__INTERNAL__ROOTFS_USAGE_REQUEST__INIT;
	req.container_id = cs->id;
	issue(job, job->c->imaged, API_IMAGED(IMAGED_ROOTFS_USAGE), &req.base, usage_done, cs);
}

static void pod_sample(struct stats_job *job, struct pstat *ps, const struct pod *p)
{
	ps->job = job;
	snprintf(ps->id, sizeof(ps->id), "%s", p->id);
	sample_cgroup(p->id, p->cgroup, &ps->ts, &ps->cg, &ps->have_cores, &ps->cores);
	if (p->state == POD_READY && !pod_host_network(p)) {
		Criod__Internal__PodNetworkStatsRequest req = CRIOD__INTERNAL__POD_NETWORK_STATS_REQUEST__INIT;
		req.pod_id = ps->id;
		issue(job, job->c->netd, API_NETD(NETD_POD_NETWORK_STATS), &req.base, net_done, ps);
	}
}

static struct stats_job *job_new(struct criod *c, struct grpc_call *call, enum job_kind kind, size_t n_cs, size_t n_ps)
{
	struct stats_job *job = calloc(1, sizeof(*job));
	if (job) {
		job->cs = calloc(n_cs ? n_cs : 1, sizeof(*job->cs));
		job->ps = calloc(n_ps ? n_ps : 1, sizeof(*job->ps));
	}
	if (!job || !job->cs || !job->ps) {
		if (job) {
			free(job->cs);
			free(job->ps);
		}
		free(job);
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	job->c = c;
	job->call = call;
	job->kind = kind;
	snprintf(job->req, sizeof(job->req), "%s", grpc_call_request_id(call));
	return job;
}

/* Every call is out; finish now if every reply is in. */
static void job_go(struct stats_job *job)
{
	job->issued = true;
	job->pending++;
	job_put(job);
}

/* ---------------------------------------------------------------- replies */

/* Room for one container's reply. */
struct cmsg {
	Runtime__V1__ContainerStats st;
	Runtime__V1__ContainerAttributes attr;
	Runtime__V1__CpuUsage cpu;
	Runtime__V1__MemoryUsage mem;
	Runtime__V1__SwapUsage swap;
	Runtime__V1__FilesystemUsage fs;
	Runtime__V1__FilesystemIdentifier fsid;
	Runtime__V1__UInt64Value v[12];
	size_t nv;
};

struct pmsg {
	Runtime__V1__PodSandboxStats st;
	Runtime__V1__PodSandboxAttributes attr;
	Runtime__V1__LinuxPodSandboxStats linux_;
	Runtime__V1__CpuUsage cpu;
	Runtime__V1__MemoryUsage mem;
	Runtime__V1__ProcessUsage proc;
	Runtime__V1__NetworkUsage net;
	Runtime__V1__NetworkInterfaceUsage ifs[MAX_IFACES];
	Runtime__V1__NetworkInterfaceUsage *ifp[MAX_IFACES];
	Runtime__V1__UInt64Value v[12 + 4 * MAX_IFACES];
	size_t nv;
	Runtime__V1__ContainerStats **ctrs;
};

static Runtime__V1__UInt64Value *u64(Runtime__V1__UInt64Value *v, size_t *nv, uint64_t x)
{
	Runtime__V1__UInt64Value *r = &v[(*nv)++];
	runtime__v1__uint64_value__init(r);
	r->value = x;
	return r;
}
#define U64(m, x) u64((m)->v, &(m)->nv, (x))

static void fill_cpu_mem(Runtime__V1__CpuUsage *cpu, Runtime__V1__MemoryUsage *mem, Runtime__V1__UInt64Value *v,
			 size_t *nv, int64_t ts, const struct cg_stats *cg, bool have_cores, uint64_t cores)
{
	runtime__v1__cpu_usage__init(cpu);
	cpu->timestamp = ts;
	if (cg->have_cpu) {
		cpu->usage_core_nano_seconds = u64(v, nv, cg->cpu_ns);
		if (have_cores)
			cpu->usage_nano_cores = u64(v, nv, cores);
	}
	runtime__v1__memory_usage__init(mem);
	mem->timestamp = ts;
	if (cg->have_mem) {
		mem->working_set_bytes = u64(v, nv, cg->working_set);
		mem->usage_bytes = u64(v, nv, cg->mem_usage);
		mem->rss_bytes = u64(v, nv, cg->rss);
		mem->page_faults = u64(v, nv, cg->pgfault);
		mem->major_page_faults = u64(v, nv, cg->pgmajfault);
		if (cg->have_limit)
			mem->available_bytes =
				u64(v, nv, cg->mem_limit > cg->working_set ? cg->mem_limit - cg->working_set : 0);
	}
}

/* The reply for one container, NULL when it is gone meanwhile. */
static Runtime__V1__ContainerStats *container_msg(struct criod *c, const struct cstat *cs, struct cmsg *m)
{
	struct container *ctr = ctrs_find(&c->ctrs, cs->id);
	if (!ctr || strcmp(ctr->id, cs->id) != 0 || ctr->gone)
		return NULL;
	const Runtime__V1__ContainerConfig *cfg = ctr->config;
	runtime__v1__container_stats__init(&m->st);
	runtime__v1__container_attributes__init(&m->attr);
	m->attr.id = ctr->id;
	m->attr.metadata = cfg->metadata;
	/* Map entries share one layout (base, key, value). */
	m->attr.labels = (Runtime__V1__ContainerAttributes__LabelsEntry **)cfg->labels;
	m->attr.n_labels = cfg->n_labels;
	m->attr.annotations = (Runtime__V1__ContainerAttributes__AnnotationsEntry **)cfg->annotations;
	m->attr.n_annotations = cfg->n_annotations;
	m->st.attributes = &m->attr;
	fill_cpu_mem(&m->cpu, &m->mem, m->v, &m->nv, cs->ts, &cs->cg, cs->have_cores, cs->cores);
	m->st.cpu = &m->cpu;
	m->st.memory = &m->mem;
	if (cs->cg.have_swap) {
		runtime__v1__swap_usage__init(&m->swap);
		m->swap.timestamp = cs->ts;
		m->swap.swap_usage_bytes = U64(m, cs->cg.swap_usage);
		if (cs->cg.have_swap_limit)
			m->swap.swap_available_bytes =
				U64(m, cs->cg.swap_limit > cs->cg.swap_usage ? cs->cg.swap_limit - cs->cg.swap_usage : 0);
		m->st.swap = &m->swap;
	}
	if (cs->have_fs) {
		runtime__v1__filesystem_usage__init(&m->fs);
		runtime__v1__filesystem_identifier__init(&m->fsid);
		m->fsid.mountpoint = (char *)cs->fs_mount;
		m->fs.fs_id = &m->fsid;
		m->fs.timestamp = cs->fs_ts;
		m->fs.used_bytes = U64(m, cs->fs_bytes);
		m->fs.inodes_used = U64(m, cs->fs_inodes);
		m->st.writable_layer = &m->fs;
	}
	return &m->st;
}

static Runtime__V1__PodSandboxStats *pod_msg(struct criod *c, const struct pstat *ps, struct pmsg *m,
					     struct cmsg *cm, Runtime__V1__ContainerStats **cptrs)
{
	struct pod *p = pods_find(&c->pods, ps->id);
	if (!p || strcmp(p->id, ps->id) != 0)
		return NULL;
	const Runtime__V1__PodSandboxConfig *cfg = p->config;
	runtime__v1__pod_sandbox_stats__init(&m->st);
	runtime__v1__pod_sandbox_attributes__init(&m->attr);
	runtime__v1__linux_pod_sandbox_stats__init(&m->linux_);
	m->attr.id = p->id;
	m->attr.metadata = cfg->metadata;
	m->attr.labels = (Runtime__V1__PodSandboxAttributes__LabelsEntry **)cfg->labels;
	m->attr.n_labels = cfg->n_labels;
	m->attr.annotations = (Runtime__V1__PodSandboxAttributes__AnnotationsEntry **)cfg->annotations;
	m->attr.n_annotations = cfg->n_annotations;
	m->st.attributes = &m->attr;
	m->st.linux = &m->linux_;
	fill_cpu_mem(&m->cpu, &m->mem, m->v, &m->nv, ps->ts, &ps->cg, ps->have_cores, ps->cores);
	m->linux_.cpu = &m->cpu;
	m->linux_.memory = &m->mem;
	runtime__v1__process_usage__init(&m->proc);
	m->proc.timestamp = ps->ts;
	if (ps->cg.have_pids)
		m->proc.process_count = U64(m, ps->cg.pids);
	m->linux_.process = &m->proc;
	if (ps->have_net) {
		runtime__v1__network_usage__init(&m->net);
		m->net.timestamp = ps->net_ts;
		for (size_t i = 0; i < ps->n_ifs; i++) {
			Runtime__V1__NetworkInterfaceUsage *f = &m->ifs[i];
			runtime__v1__network_interface_usage__init(f);
			f->name = (char *)ps->ifs[i].name;
			f->rx_bytes = U64(m, ps->ifs[i].rx_bytes);
			f->rx_errors = U64(m, ps->ifs[i].rx_errors);
			f->tx_bytes = U64(m, ps->ifs[i].tx_bytes);
			f->tx_errors = U64(m, ps->ifs[i].tx_errors);
			m->ifp[i] = f;
			if (strcmp(f->name, ps->net_default) == 0)
				m->net.default_interface = f;
		}
		m->net.interfaces = m->ifp;
		m->net.n_interfaces = ps->n_ifs;
		m->linux_.network = &m->net;
	}
	size_t k = 0;
	for (size_t i = 0; i < ps->n; i++) {
		Runtime__V1__ContainerStats *s = container_msg(c, &ps->job->cs[ps->first + i], &cm[ps->first + i]);
		if (s)
			cptrs[k++] = s;
	}
	m->linux_.containers = cptrs;
	m->linux_.n_containers = k;
	return &m->st;
}

static void job_free(struct stats_job *job)
{
	free(job->cs);
	free(job->ps);
	free(job);
}

static void job_finish(struct stats_job *job)
{
	struct criod *c = job->c;
	if (job->kind == JOB_METRICS) {
		stats_metrics_reply(job);
		job_free(job);
		return;
	}
	size_t ncs = job->n_cs ? job->n_cs : 1, nps = job->n_ps ? job->n_ps : 1;
	_cleanup_free_ struct cmsg *cm = calloc(ncs, sizeof(*cm));
	_cleanup_free_ Runtime__V1__ContainerStats **cptrs = calloc(ncs, sizeof(*cptrs));
	_cleanup_free_ struct pmsg *pm = NULL;
	_cleanup_free_ Runtime__V1__PodSandboxStats **pptrs = NULL;
	if (job->kind == JOB_POD || job->kind == JOB_PODS) {
		pm = calloc(nps, sizeof(*pm));
		pptrs = calloc(nps, sizeof(*pptrs));
	}
	if (!cm || !cptrs || ((job->kind == JOB_POD || job->kind == JOB_PODS) && (!pm || !pptrs))) {
		grpc_call_fail(job->call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		job_free(job);
		return;
	}
	switch (job->kind) {
	case JOB_CONTAINER: {
		Runtime__V1__ContainerStats *s = container_msg(c, &job->cs[0], &cm[0]);
		if (!s) {
			grpc_call_fail(job->call, STATUS_NOT_FOUND, "container %s is gone", job->cs[0].id);
			break;
		}
		Runtime__V1__ContainerStatsResponse resp = RUNTIME__V1__CONTAINER_STATS_RESPONSE__INIT;
		resp.stats = s;
		grpc_call_reply(job->call, &resp.base);
		break;
	}
	case JOB_CONTAINERS: {
		size_t k = 0;
		for (size_t i = 0; i < job->n_cs; i++) {
			Runtime__V1__ContainerStats *s = container_msg(c, &job->cs[i], &cm[i]);
			if (s)
				cptrs[k++] = s;
		}
		list_reply(job->call, job->list, (ProtobufCMessage *const *)cptrs, k);
		break;
	}
	case JOB_POD:
	case JOB_PODS: {
		size_t k = 0;
		for (size_t i = 0; i < job->n_ps; i++) {
			const struct pstat *ps = &job->ps[i];
			Runtime__V1__PodSandboxStats *s = pod_msg(c, ps, &pm[i], cm, cptrs + ps->first);
			if (s)
				pptrs[k++] = s;
		}
		if (job->kind == JOB_POD) {
			if (!k) {
				grpc_call_fail(job->call, STATUS_NOT_FOUND, "pod sandbox %s is gone", job->ps[0].id);
				break;
			}
			Runtime__V1__PodSandboxStatsResponse resp = RUNTIME__V1__POD_SANDBOX_STATS_RESPONSE__INIT;
			resp.stats = pptrs[0];
			grpc_call_reply(job->call, &resp.base);
		} else {
			list_reply(job->call, job->list, (ProtobufCMessage *const *)pptrs, k);
		}
		break;
	}
	case JOB_METRICS: /* answered above */
		break;
	}
	job_free(job);
}

/* ---------------------------------------------------------------- selection */

static bool counted(const struct container *ctr) { return !ctr->gone && !ctr->failed && ctr->state != CTR_CREATING; }

static bool pod_counted(const struct pod *p) { return !p->gone && !p->failed && p->state != POD_CREATING; }

static bool has_label(ProtobufCMessage **entries, size_t n, const char *k, const char *v)
{
	/* Every map entry is {base, key, value}; the container's and the
	 * pod's config use the same layout. */
	for (size_t j = 0; j < n; j++) {
		const Runtime__V1__ContainerConfig__LabelsEntry *e = (const void *)entries[j];
		if (strcmp(e->key ? e->key : "", k ? k : "") == 0 && strcmp(e->value ? e->value : "", v ? v : "") == 0)
			return true;
	}
	return false;
}

static bool ctr_selected(struct criod *c, const struct container *ctr, const Runtime__V1__ContainerStatsFilter *f)
{
	if (!counted(ctr))
		return false;
	if (!f)
		return true;
	if (f->id && *f->id && ctrs_find(&c->ctrs, f->id) != ctr)
		return false;
	if (f->pod_sandbox_id && *f->pod_sandbox_id && strcmp(ctr->pod_id, f->pod_sandbox_id) != 0) {
		struct pod *p = pods_find(&c->pods, f->pod_sandbox_id);
		if (!p || strcmp(p->id, ctr->pod_id) != 0)
			return false;
	}
	for (size_t i = 0; i < f->n_label_selector; i++)
		if (!has_label((ProtobufCMessage **)ctr->config->labels, ctr->config->n_labels, f->label_selector[i]->key,
			       f->label_selector[i]->value))
			return false;
	return true;
}

static bool pod_selected(struct criod *c, const struct pod *p, const Runtime__V1__PodSandboxStatsFilter *f)
{
	if (!pod_counted(p))
		return false;
	if (!f)
		return true;
	if (f->id && *f->id && pods_find(&c->pods, f->id) != p)
		return false;
	for (size_t i = 0; i < f->n_label_selector; i++)
		if (!has_label((ProtobufCMessage **)p->config->labels, p->config->n_labels, f->label_selector[i]->key,
			       f->label_selector[i]->value))
			return false;
	return true;
}

static struct pod *pod_of(struct criod *c, const struct container *ctr)
{
	struct pod *p = pods_find(&c->pods, ctr->pod_id);
	return p && strcmp(p->id, ctr->pod_id) == 0 ? p : NULL;
}

/* ---------------------------------------------------------------- handlers */

static void container_stats(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__ContainerStatsRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "container_id", req->container_id, true, 128))
		return;
	struct container *ctr = ctrs_find(&c->ctrs, req->container_id);
	if (!ctr || !counted(ctr)) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "container %s not found", req->container_id);
		return;
	}
	struct stats_job *job = job_new(c, call, JOB_CONTAINER, 1, 0);
	if (!job)
		return;
	job->n_cs = 1;
	container_sample(job, &job->cs[0], ctr, pod_of(c, ctr));
	job_go(job);
}

/* ListContainerStats and StreamContainerStats: the containers f selects,
 * answered as list (list_reply.h) once sampled. */
static void ctr_stats_list(struct grpc_call *call, struct criod *c, const Runtime__V1__ContainerStatsFilter *f,
			   const ProtobufCMessageDescriptor *list)
{
	if (f && (!cri_field_ok(call, "filter.id", f->id, false, 128) ||
		  !cri_field_ok(call, "filter.pod_sandbox_id", f->pod_sandbox_id, false, 128)))
		return;
	stats_samples_prune(c);
	size_t n = 0;
	for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next)
		n += ctr_selected(c, ctr, f);
	struct stats_job *job = job_new(c, call, JOB_CONTAINERS, n, 0);
	if (!job)
		return;
	job->list = list;
	for (struct container *ctr = c->ctrs.ctrs; ctr && job->n_cs < n; ctr = ctr->next)
		if (ctr_selected(c, ctr, f)) {
			struct cstat *cs = &job->cs[job->n_cs++];
			container_sample(job, cs, ctr, pod_of(c, ctr));
		}
	job_go(job);
}

/* Sample the pods selected (one, or by filter) and their containers. */
void stats_pods_job(struct criod *c, struct grpc_call *call, enum job_kind kind, struct pod *one,
		    const Runtime__V1__PodSandboxStatsFilter *f, const ProtobufCMessageDescriptor *list)
{
	size_t np = 0, nc = 0;
	for (struct pod *p = c->pods.pods; p; p = p->next) {
		if (one ? p != one : !pod_selected(c, p, f))
			continue;
		np++;
		for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next)
			nc += counted(ctr) && strcmp(ctr->pod_id, p->id) == 0;
	}
	struct stats_job *job = job_new(c, call, kind, nc, np);
	if (!job)
		return;
	job->list = list;
	for (struct pod *p = c->pods.pods; p && job->n_ps < np; p = p->next) {
		if (one ? p != one : !pod_selected(c, p, f))
			continue;
		struct pstat *ps = &job->ps[job->n_ps++];
		ps->first = job->n_cs;
		for (struct container *ctr = c->ctrs.ctrs; ctr && job->n_cs < nc; ctr = ctr->next)
			if (counted(ctr) && strcmp(ctr->pod_id, p->id) == 0) {
				container_sample(job, &job->cs[job->n_cs++], ctr, p);
				ps->n++;
			}
		pod_sample(job, ps, p);
	}
	job_go(job);
}

static void list_container_stats(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__ListContainerStatsRequest *req = (const void *)msg;
	ctr_stats_list(call, ud, req->filter, &runtime__v1__list_container_stats_response__descriptor);
}

static void stream_container_stats(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__StreamContainerStatsRequest *req = (const void *)msg;
	ctr_stats_list(call, ud, req->filter, &runtime__v1__stream_container_stats_response__descriptor);
}

static void pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__PodSandboxStatsRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "pod_sandbox_id", req->pod_sandbox_id, true, 128))
		return;
	struct pod *p = pods_find(&c->pods, req->pod_sandbox_id);
	if (!p || !pod_counted(p)) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "pod sandbox %s not found", req->pod_sandbox_id);
		return;
	}
	stats_pods_job(c, call, JOB_POD, p, NULL, NULL);
}

/* ListPodSandboxStats and StreamPodSandboxStats. */
static void pod_stats_list(struct grpc_call *call, struct criod *c, const Runtime__V1__PodSandboxStatsFilter *f,
			   const ProtobufCMessageDescriptor *list)
{
	if (f && !cri_field_ok(call, "filter.id", f->id, false, 128))
		return;
	stats_samples_prune(c);
	stats_pods_job(c, call, JOB_PODS, NULL, f, list);
}

static void list_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__ListPodSandboxStatsRequest *req = (const void *)msg;
	pod_stats_list(call, ud, req->filter, &runtime__v1__list_pod_sandbox_stats_response__descriptor);
}

static void stream_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__StreamPodSandboxStatsRequest *req = (const void *)msg;
	pod_stats_list(call, ud, req->filter, &runtime__v1__stream_pod_sandbox_stats_response__descriptor);
}

const struct cri_handler stats_service_handlers[] = {
	{"RuntimeService", "ContainerStats", container_stats},
	{"RuntimeService", "ListContainerStats", list_container_stats},
	{"RuntimeService", "PodSandboxStats", pod_sandbox_stats},
	{"RuntimeService", "ListPodSandboxStats", list_pod_sandbox_stats},
	{"RuntimeService", "StreamContainerStats", stream_container_stats},
	{"RuntimeService", "StreamPodSandboxStats", stream_pod_sandbox_stats},
	/* stats_metrics.c */
	{"RuntimeService", "ListMetricDescriptors", stats_metric_descriptors},
	{"RuntimeService", "ListPodSandboxMetrics", stats_pod_sandbox_metrics},
	{"RuntimeService", "StreamPodSandboxMetrics", stats_stream_pod_sandbox_metrics},
};
const size_t n_stats_service_handlers = ARRAY_SIZE(stats_service_handlers);
