/* criod's Prometheus endpoint; see metrics.h.
 *
 * The HTTP side is deliberately small: one request per connection (the
 * response says Connection: close), a request head of at most
 * METRICS_MAX_HEAD bytes read within HTTP_TIMEOUT_S, GET (or HEAD) of
 * /metrics only, at most HTTP_MAX_CONNS connections at once. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "api.h"
#include "containers.h"
#include "cri.h"
#include "internal/envelope.pb-c.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "pods.h"
#include "procstat.h"
#include "prom.h"
#include "status.h"
#include "stream_http.h"
#include "util.h"

#define METRICS_MAX_HEAD 8192
#define LINGER_S 2
#define LINGER_MAX (256 * 1024)
#define HTTP_MAX_CONNS 16
#define HTTP_TIMEOUT_S 10
#define METRICS_DAEMON_TIMEOUT_MS 5000
#define MAX_RESULT 32

enum { D_IMAGED, D_NETD, D_SPAWND, N_DAEMONS };
static const char *const daemon_names[N_DAEMONS] = {"imaged", "netd", "spawnd"};

struct method_figs {
	uint64_t by_status[PROM_N_STATUS];
	struct prom_hist h;
};

struct criod_metrics {
	struct criod *c;
	const struct grpc_method *methods;
	size_t n_methods;
	struct method_figs *figs;     /* one per method */
	struct method_figs unknown;   /* a :path not in the table */
	struct evconnlistener *listener;
	struct http_conn *conns;
	size_t n_conns;
	struct scrape *scrapes; /* waiting for daemons */
	bool stopped;
};

/* ---------------------------------------------------------------- counting */

int metrics_new(struct criod *c, const struct grpc_method *methods, size_t n, struct criod_metrics **out)
{
	struct criod_metrics *m = calloc(1, sizeof(*m));
	if (!m || !(m->figs = calloc(n ? n : 1, sizeof(*m->figs)))) {
		free(m);
		return -ENOMEM;
	}
	m->c = c;
	m->methods = methods;
	m->n_methods = n;
	for (size_t i = 0; i < n; i++)
		prom_hist_init(&m->figs[i].h, prom_latency_bounds, prom_n_latency_bounds);
	prom_hist_init(&m->unknown.h, prom_latency_bounds, prom_n_latency_bounds);
	*out = m;
	return 0;
}

void metrics_call_done(void *ud, const struct grpc_method *method, int status, int64_t duration_ns)
{
	struct criod_metrics *m = ud;
	if (!m)
		return;
	struct method_figs *f = &m->unknown;
	if (method && method >= m->methods && method < m->methods + m->n_methods)
		f = &m->figs[method - m->methods];
	if (status < 0 || status >= PROM_N_STATUS)
		status = STATUS_UNKNOWN;
	f->by_status[status]++;
	prom_hist_observe(&f->h, (double)duration_ns / 1e9);
}

/* ---------------------------------------------------------------- a daemon's reply */

struct result_figs {
	char result[MAX_RESULT];
	uint64_t count, bytes;
	double bounds[PROM_MAX_BUCKETS];
	struct prom_hist h;
};

struct daemon_figs {
	bool up;
	Criod__Internal__ProcessFigures proc; /* scalars only (missing dropped) */
	bool have_rss, have_stat, have_fds;
	struct result_figs pulls[PROM_N_STATUS], setups[PROM_N_STATUS];
	size_t n_pulls, n_setups;
	struct {
		char family[8];
		uint64_t in_use, capacity;
	} ips[2];
	size_t n_ips;
	uint64_t pulls_in_progress, pods;
};

static void copy_result(const char *name, const Criod__Internal__HistogramFigures *h, struct result_figs *out)
{
	size_t o = 0;
	/* A status name: upper-case letters and underscores; anything else is
	 * replaced (the writer escapes labels in any case). */
	for (const char *s = name ? name : ""; *s && o + 1 < sizeof(out->result); s++)
		out->result[o++] = (*s >= 'A' && *s <= 'Z') || *s == '_' ? *s : '_';
	out->result[o] = '\0';
	size_t nb = 0;
	if (h && h->n_upper_bounds <= PROM_MAX_BUCKETS && h->n_counts == h->n_upper_bounds + 1) {
		nb = h->n_upper_bounds;
		for (size_t i = 0; i < nb; i++)
			out->bounds[i] = h->upper_bounds[i];
		for (size_t i = 1; i < nb; i++)
			if (!(out->bounds[i] > out->bounds[i - 1]))
				nb = 0; /* not ascending: no buckets but +Inf */
	}
	prom_hist_init(&out->h, out->bounds, nb);
	if (h && h->n_counts == h->n_upper_bounds + 1 && h->n_upper_bounds <= PROM_MAX_BUCKETS) {
		if (nb)
			for (size_t i = 0; i <= nb; i++)
				out->h.counts[i] = h->counts[i];
		else
			for (size_t i = 0; i < h->n_counts; i++)
				out->h.counts[0] += h->counts[i];
		out->h.sum = h->sum;
	}
}

static void copy_reply(const Criod__Internal__MetricsResponse *r, struct daemon_figs *d)
{
	d->up = true;
	if (r->process) {
		criod__internal__process_figures__init(&d->proc);
		d->proc.rss_bytes = r->process->rss_bytes;
		d->proc.cpu_ns = r->process->cpu_ns;
		d->proc.open_fds = r->process->open_fds;
		d->proc.threads = r->process->threads;
		d->proc.start_time_ns = r->process->start_time_ns;
		d->have_rss = d->have_stat = d->have_fds = true;
		for (size_t i = 0; i < r->process->n_missing; i++) {
			const char *w = r->process->missing[i] ? r->process->missing[i] : "";
			if (strcmp(w, "rss") == 0)
				d->have_rss = false;
			else if (strcmp(w, "stat") == 0)
				d->have_stat = false;
			else if (strcmp(w, "fds") == 0)
				d->have_fds = false;
		}
	}
	for (size_t i = 0; i < r->n_pulls && d->n_pulls < PROM_N_STATUS; i++) {
		if (!r->pulls[i])
			continue;
		struct result_figs *f = &d->pulls[d->n_pulls++];
		copy_result(r->pulls[i]->result, r->pulls[i]->seconds, f);
		f->count = r->pulls[i]->count;
		f->bytes = r->pulls[i]->bytes;
	}
	for (size_t i = 0; i < r->n_setups && d->n_setups < PROM_N_STATUS; i++)
		if (r->setups[i])
			copy_result(r->setups[i]->result, r->setups[i]->seconds, &d->setups[d->n_setups++]);
	for (size_t i = 0; i < r->n_ips && d->n_ips < 2; i++) {
		const char *fam = r->ips[i] && r->ips[i]->family ? r->ips[i]->family : "";
		if (strcmp(fam, "ipv4") != 0 && strcmp(fam, "ipv6") != 0)
			continue;
		snprintf(d->ips[d->n_ips].family, sizeof(d->ips[0].family), "%s", fam);
		d->ips[d->n_ips].in_use = r->ips[i]->in_use;
		d->ips[d->n_ips].capacity = r->ips[i]->capacity;
		d->n_ips++;
	}
	d->pulls_in_progress = r->pulls_in_progress;
	d->pods = r->pods;
}

/* ---------------------------------------------------------------- rendering */

static void own_process(struct daemon_figs *d)
{
	struct proc_figures f;
	procstat_self(&f);
	d->up = true;
	criod__internal__process_figures__init(&d->proc);
	d->proc.rss_bytes = f.rss_bytes;
	d->proc.cpu_ns = f.cpu_ns;
	d->proc.open_fds = f.open_fds;
	d->proc.threads = f.threads;
	d->proc.start_time_ns = f.start_time_ns;
	d->have_rss = f.have_rss;
	d->have_stat = f.have_stat;
	d->have_fds = f.have_fds;
}

static const char *ctr_state_label(struct container *ctr)
{
	if (ctr->state == CTR_CREATING)
		return "creating";
	struct ctr_status st;
	ctr_disk_status(ctr, &st);
	switch (st.state) {
	case RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED:
		return "created";
	case RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING:
		return "running";
	case RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED:
		return "exited";
	default:
		return "unknown";
	}
}

static void render_cri(struct criod_metrics *m, struct prom_buf *b)
{
	prom_family(b, "criod_cri_requests_total", "CRI calls answered, by method and gRPC status.", PROM_COUNTER);
	for (size_t i = 0; i <= m->n_methods; i++) {
		const struct method_figs *f = i < m->n_methods ? &m->figs[i] : &m->unknown;
		const char *name = "unknown";
		if (i < m->n_methods) {
			const char *slash = strrchr(m->methods[i].path, '/');
			name = slash ? slash + 1 : m->methods[i].path;
		}
		for (int st = 0; st < PROM_N_STATUS; st++) {
			if (!f->by_status[st])
				continue;
			struct prom_label l[] = {{"method", name}, {"code", status_name(st)}};
			prom_sample_u64(b, "criod_cri_requests_total", l, 2, f->by_status[st]);
		}
	}
	prom_family(b, "criod_cri_request_duration_seconds",
		    "Time from a CRI call's request headers to its status, by method.", PROM_HISTOGRAM);
	for (size_t i = 0; i <= m->n_methods; i++) {
		const struct method_figs *f = i < m->n_methods ? &m->figs[i] : &m->unknown;
		if (!prom_hist_count(&f->h))
			continue;
		const char *name = "unknown";
		if (i < m->n_methods) {
			const char *slash = strrchr(m->methods[i].path, '/');
			name = slash ? slash + 1 : m->methods[i].path;
		}
		struct prom_label l[] = {{"method", name}};
		prom_hist_write(b, "criod_cri_request_duration_seconds", l, 1, &f->h);
	}
}

static void render_state(struct criod_metrics *m, struct prom_buf *b)
{
	static const char *const cstates[] = {"creating", "created", "running", "exited", "unknown"};
	uint64_t cn[ARRAY_SIZE(cstates)] = {0};
	for (struct container *ctr = m->c->ctrs.ctrs; ctr; ctr = ctr->next) {
		if (ctr->gone || ctr->failed)
			continue;
		const char *s = ctr_state_label(ctr);
		for (size_t i = 0; i < ARRAY_SIZE(cstates); i++)
			if (strcmp(s, cstates[i]) == 0)
				cn[i]++;
	}
	prom_family(b, "criod_containers", "Containers criod holds, by state.", PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(cstates); i++) {
		struct prom_label l[] = {{"state", cstates[i]}};
		prom_sample_u64(b, "criod_containers", l, 1, cn[i]);
	}
	static const char *const pstates[] = {"creating", "ready", "notready"};
	uint64_t pn[ARRAY_SIZE(pstates)] = {0};
	for (struct pod *p = m->c->pods.pods; p; p = p->next) {
		if (p->gone || p->failed)
			continue;
		pn[p->state == POD_READY ? 1 : p->state == POD_NOTREADY ? 2 : 0]++;
	}
	prom_family(b, "criod_pod_sandboxes", "Pod sandboxes criod holds, by state.", PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(pstates); i++) {
		struct prom_label l[] = {{"state", pstates[i]}};
		prom_sample_u64(b, "criod_pod_sandboxes", l, 1, pn[i]);
	}
}

/* figs[0] is criod's own, figs[1 + D_*] the daemons'. */
static void render_processes(struct prom_buf *b, const struct daemon_figs *figs, int64_t now_ns)
{
	static const char *const names[] = {"criod", "imaged", "netd", "spawnd"};
	prom_family(b, "criod_daemon_up", "Whether the daemon answered this scrape (criod: always 1).", PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct prom_label l[] = {{"daemon", names[i]}};
		prom_sample_u64(b, "criod_daemon_up", l, 1, figs[i].up);
	}
	prom_family(b, "criod_process_resident_memory_bytes", "Resident memory of the daemon's process.", PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (figs[i].up && figs[i].have_rss) {
			struct prom_label l[] = {{"daemon", names[i]}};
			prom_sample_u64(b, "criod_process_resident_memory_bytes", l, 1, figs[i].proc.rss_bytes);
		}
	prom_family(b, "criod_process_cpu_seconds_total", "User and system CPU time of the daemon's process.",
		    PROM_COUNTER);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (figs[i].up && figs[i].have_stat) {
			struct prom_label l[] = {{"daemon", names[i]}};
			prom_sample(b, "criod_process_cpu_seconds_total", l, 1, (double)figs[i].proc.cpu_ns / 1e9);
		}
	prom_family(b, "criod_process_open_fds", "Open file descriptors of the daemon's process.", PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (figs[i].up && figs[i].have_fds) {
			struct prom_label l[] = {{"daemon", names[i]}};
			prom_sample_u64(b, "criod_process_open_fds", l, 1, figs[i].proc.open_fds);
		}
	prom_family(b, "criod_process_threads", "Threads of the daemon's process.", PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (figs[i].up && figs[i].have_stat) {
			struct prom_label l[] = {{"daemon", names[i]}};
			prom_sample_u64(b, "criod_process_threads", l, 1, figs[i].proc.threads);
		}
	prom_family(b, "criod_process_start_time_seconds", "Start time of the daemon's process since the epoch.",
		    PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (figs[i].up && figs[i].have_stat) {
			struct prom_label l[] = {{"daemon", names[i]}};
			prom_sample(b, "criod_process_start_time_seconds", l, 1,
				    (double)(figs[i].proc.start_time_ns / 1000000) / 1e3);
		}
	prom_family(b, "criod_process_uptime_seconds", "Seconds since the daemon's process started.", PROM_GAUGE);
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (figs[i].up && figs[i].have_stat) {
			struct prom_label l[] = {{"daemon", names[i]}};
			int64_t up = now_ns - figs[i].proc.start_time_ns;
			prom_sample(b, "criod_process_uptime_seconds", l, 1, up > 0 ? (double)(up / 1000000) / 1e3 : 0);
		}
}

static void render_daemons(struct prom_buf *b, const struct daemon_figs *im, const struct daemon_figs *nd,
			   const struct daemon_figs *sd)
{
	prom_family(b, "criod_image_pulls_total", "Image pulls ended in imaged, by result (identical pulls at once count once).",
		    PROM_COUNTER);
	for (size_t i = 0; i < im->n_pulls; i++) {
		struct prom_label l[] = {{"result", im->pulls[i].result}};
		prom_sample_u64(b, "criod_image_pulls_total", l, 1, im->pulls[i].count);
	}
	prom_family(b, "criod_image_pull_bytes_total", "Bytes image pulls received from registries, by result.",
		    PROM_COUNTER);
	for (size_t i = 0; i < im->n_pulls; i++) {
		struct prom_label l[] = {{"result", im->pulls[i].result}};
		prom_sample_u64(b, "criod_image_pull_bytes_total", l, 1, im->pulls[i].bytes);
	}
	prom_family(b, "criod_image_pull_duration_seconds", "Time an image pull took in imaged, by result.",
		    PROM_HISTOGRAM);
	for (size_t i = 0; i < im->n_pulls; i++) {
		struct prom_label l[] = {{"result", im->pulls[i].result}};
		prom_hist_write(b, "criod_image_pull_duration_seconds", l, 1, &im->pulls[i].h);
	}
	if (im->up) {
		prom_family(b, "criod_image_pulls_in_progress", "Image pulls queued or running in imaged.", PROM_GAUGE);
		prom_sample_u64(b, "criod_image_pulls_in_progress", NULL, 0, im->pulls_in_progress);
	}
	prom_family(b, "criod_pod_network_setup_duration_seconds",
		    "Time netd took to set up a pod's network, request to reply, by result.", PROM_HISTOGRAM);
	for (size_t i = 0; i < nd->n_setups; i++) {
		struct prom_label l[] = {{"result", nd->setups[i].result}};
		prom_hist_write(b, "criod_pod_network_setup_duration_seconds", l, 1, &nd->setups[i].h);
	}
	prom_family(b, "criod_pod_ips_in_use", "Pod addresses netd has handed out and not released, by family.",
		    PROM_GAUGE);
	for (size_t i = 0; i < nd->n_ips; i++) {
		struct prom_label l[] = {{"family", nd->ips[i].family}};
		prom_sample_u64(b, "criod_pod_ips_in_use", l, 1, nd->ips[i].in_use);
	}
	prom_family(b, "criod_pod_ip_capacity", "Addresses netd's own IPAM can hand out, by family (0: a CNI plugin's pool).",
		    PROM_GAUGE);
	for (size_t i = 0; i < nd->n_ips; i++) {
		struct prom_label l[] = {{"family", nd->ips[i].family}};
		prom_sample_u64(b, "criod_pod_ip_capacity", l, 1, nd->ips[i].capacity);
	}
	if (sd->up) {
		prom_family(b, "criod_spawnd_pods", "Pods (pause processes) spawnd holds a record of.", PROM_GAUGE);
		prom_sample_u64(b, "criod_spawnd_pods", NULL, 0, sd->pods);
	}
}

/* ---------------------------------------------------------------- HTTP */

struct http_conn {
	struct http_conn *next;
	struct criod_metrics *m;
	struct bufferevent *bev;
	struct scrape *scrape; /* while waiting for the daemons */
	bool head_only;
	bool closing; /* response queued: freed once written */
	bool refused;   /* answered 400 or 431 before the head was all read */
	bool lingering; /* written, our side shut: reading what the client still sends */
	size_t lingered; /* bytes discarded while lingering */
};

struct scrape {
	struct scrape *next;
	struct criod_metrics *m;
	struct http_conn *conn; /* NULL once the connection is gone */
	int pending;
	struct daemon_figs figs[1 + N_DAEMONS];
};

static void conn_free(struct http_conn *hc)
{
	struct criod_metrics *m = hc->m;
	for (struct http_conn **pp = &m->conns; *pp; pp = &(*pp)->next)
		if (*pp == hc) {
			*pp = hc->next;
			break;
		}
	m->n_conns--;
	if (hc->scrape)
		hc->scrape->conn = NULL;
	bufferevent_free(hc->bev);
	free(hc);
}

static void respond(struct http_conn *hc, const char *status, const char *ctype, const char *body, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(hc->bev);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
			    "Cache-Control: no-store\r\n\r\n",
			    status, ctype, len);
	if (!hc->head_only && len)
		evbuffer_add(out, body, len);
	hc->closing = true;
	bufferevent_disable(hc->bev, EV_READ);
	bufferevent_enable(hc->bev, EV_WRITE);
}

static void respond_text(struct http_conn *hc, const char *status, const char *text)
{
	respond(hc, status, "text/plain; charset=utf-8", text, strlen(text));
}

static void scrape_unlink(struct scrape *s)
{
	for (struct scrape **pp = &s->m->scrapes; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			return;
		}
}

static void scrape_finish(struct scrape *s)
{
	struct criod_metrics *m = s->m;
	struct http_conn *hc = s->conn;
	scrape_unlink(s);
	if (hc)
		hc->scrape = NULL;
	if (hc && !m->stopped && !m->c->stopping) {
		struct prom_buf b = {0};
		own_process(&s->figs[0]);
		render_cri(m, &b);
		render_state(m, &b);
		render_processes(&b, s->figs, now_realtime_ns());
		render_daemons(&b, &s->figs[1 + D_IMAGED], &s->figs[1 + D_NETD], &s->figs[1 + D_SPAWND]);
		if (prom_buf_failed(&b))
			respond_text(hc, "503 Service Unavailable", "out of memory\n");
		else
			respond(hc, "200 OK", "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
		prom_buf_free(&b);
	}
	free(s);
}

struct daemon_call {
	struct scrape *s;
	int which;
};

static void daemon_reply(int status, const char *message, const ProtobufCMessage *resp, int *fds, size_t nfds,
			 void *ud)
{
	struct daemon_call *dc = ud;
	struct scrape *s = dc->s;
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (status == STATUS_OK && resp)
		copy_reply((const void *)resp, &s->figs[1 + dc->which]);
	else
		log_debug(NULL, "no metrics from a daemon", "daemon=%s status=%s error=\"%s\"", daemon_names[dc->which],
			  status_name(status), message ? message : "");
	free(dc);
	if (--s->pending == 0)
		scrape_finish(s);
}

static void scrape_start(struct http_conn *hc)
{
	struct criod_metrics *m = hc->m;
	struct scrape *s = calloc(1, sizeof(*s));
	if (!s) {
		respond_text(hc, "503 Service Unavailable", "out of memory\n");
		return;
	}
	s->m = m;
	s->conn = hc;
	hc->scrape = s;
	s->next = m->scrapes;
	m->scrapes = s;
	s->pending = 1;
	struct ipc_client *cl[N_DAEMONS] = {m->c->imaged, m->c->netd, m->c->spawnd};
	const struct ipc_method *mt[N_DAEMONS] = {API_IMAGED(IMAGED_METRICS), API_NETD(NETD_METRICS),
						  API_SPAWND(SPAWND_METRICS)};
	char req[20];
	if (random_hex(req, 8) < 0)
		snprintf(req, sizeof(req), "metrics");
	for (int i = 0; i < N_DAEMONS; i++) {
		if (!cl[i] || m->c->stopping)
			continue;
		struct daemon_call *dc = calloc(1, sizeof(*dc));
		if (!dc)
			continue;
		dc->s = s;
		dc->which = i;
		Criod__Internal__MetricsRequest r = CRIOD__INTERNAL__METRICS_REQUEST__INIT;
		s->pending++;
		if (ipc_client_call(cl[i], mt[i], req, &r.base, NULL, 0, METRICS_DAEMON_TIMEOUT_MS, daemon_reply, dc) < 0) {
			s->pending--;
			free(dc);
		}
	}
	if (--s->pending == 0)
		scrape_finish(s);
}

/* A whole request head is in (parsed by the streaming server's HTTP/1.1
 * parser, criod/stream_http.c, the one criod has): answer. */
static void handle_request(struct http_conn *hc, const struct http_request *req)
{
	hc->head_only = strcmp(req->method, "HEAD") == 0;
	if (strcmp(req->method, "GET") != 0 && !hc->head_only) {
		respond_text(hc, "405 Method Not Allowed", "only GET /metrics\n");
		return;
	}
	if (strcmp(req->path, "/metrics") != 0) {
		respond_text(hc, "404 Not Found", "only GET /metrics\n");
		return;
	}
	scrape_start(hc);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *hc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (hc->closing || hc->scrape) {
		hc->lingered += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (hc->lingering && hc->lingered > LINGER_MAX)
			conn_free(hc);
		return;
	}
	size_t len = evbuffer_get_length(in);
	size_t n = len < METRICS_MAX_HEAD ? len : METRICS_MAX_HEAD;
	const char *data = (const char *)evbuffer_pullup(in, (ssize_t)n);
	struct http_request req;
	int r = http_parse_request(data, n, METRICS_MAX_HEAD, &req);
	if (r == 0)
		return;
	if (r < 0) {
		hc->refused = true;
		respond_text(hc, r == -EMSGSIZE ? "431 Request Header Fields Too Large" : "400 Bad Request",
			     r == -EMSGSIZE ? "request head too large\n" : "malformed request\n");
		return;
	}
	evbuffer_drain(in, (size_t)r);
	handle_request(hc, &req);
	http_request_free(&req);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *hc = arg;
	if (!hc->closing || hc->lingering || evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	/* A response refusing a request (431, 400) may leave bytes of it
	 * unread: closing then would reset the connection, and the client
	 * could lose the response. Shut our side and read (discarding) until
	 * the client closes, LINGER_S pass or LINGER_MAX bytes came. */
	if (!hc->refused && evbuffer_get_length(bufferevent_get_input(bev)) == 0) {
		conn_free(hc);
		return;
	}
	hc->lingering = true;
	(void)shutdown(bufferevent_getfd(bev), SHUT_WR);
	struct timeval tv = {LINGER_S, 0};
	bufferevent_set_timeouts(bev, &tv, NULL);
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_enable(bev, EV_READ);
}

static void conn_event_cb(struct bufferevent *bev _unused_, short what, void *arg)
{
	struct http_conn *hc = arg;
	if (what & BEV_EVENT_TIMEOUT)
		log_debug(NULL, "metrics connection timed out", "reading=%d", !!(what & BEV_EVENT_READING));
	conn_free(hc);
}

static void accept_cb(struct evconnlistener *l _unused_, evutil_socket_t fd, struct sockaddr *sa _unused_, int socklen _unused_, void *arg)
{
	struct criod_metrics *m = arg;
	if (m->n_conns >= HTTP_MAX_CONNS) {
		log_warn(NULL, "metrics connection limit reached, refusing connection", "max_conns=%d", HTTP_MAX_CONNS);
		close(fd);
		return;
	}
	struct http_conn *hc = calloc(1, sizeof(*hc));
	if (!hc || !(hc->bev = bufferevent_socket_new(m->c->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
		free(hc);
		close(fd);
		return;
	}
	hc->m = m;
	struct timeval tv = {HTTP_TIMEOUT_S, 0};
	bufferevent_set_timeouts(hc->bev, &tv, &tv);
	bufferevent_setcb(hc->bev, conn_read_cb, conn_write_cb, conn_event_cb, hc);
	bufferevent_enable(hc->bev, EV_READ);
	hc->next = m->conns;
	m->conns = hc;
	m->n_conns++;
}

static void accept_error_cb(struct evconnlistener *l _unused_, void *arg _unused_)
{
	log_warn_errno(EVUTIL_SOCKET_ERROR(), NULL, "metrics accept failed");
}

int metrics_serve(struct criod_metrics *m, int listen_fd)
{
	m->listener = evconnlistener_new(m->c->base, accept_cb, m, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
					 listen_fd);
	if (!m->listener) {
		close(listen_fd);
		return -EIO;
	}
	evconnlistener_set_error_cb(m->listener, accept_error_cb);
	return 0;
}

int metrics_listen(const char *socket_path, uint64_t port)
{
	if (!port)
		return ipc_listen_unix(socket_path, 0660);
	if (port > 65535)
		return -EINVAL;
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(errno, NULL, "socket");
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
		return log_error_errno(errno, NULL, "cannot listen for metrics", "address=127.0.0.1:%llu",
				       (unsigned long long)port);
	return TAKE_FD(fd);
}

void metrics_stop(struct criod_metrics *m)
{
	if (!m)
		return;
	m->stopped = true;
	if (m->listener)
		evconnlistener_free(m->listener);
	m->listener = NULL;
	while (m->conns)
		conn_free(m->conns);
}

void metrics_free(struct criod_metrics *m)
{
	if (!m)
		return;
	metrics_stop(m);
	/* Every daemon client is gone, so every scrape has finished; any left
	 * (a reply callback never run) are freed here. */
	while (m->scrapes) {
		struct scrape *s = m->scrapes;
		m->scrapes = s->next;
		free(s);
	}
	free(m->figs);
	free(m);
}
