/* Routing of every CRI RPC; see cri.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.h"
#include "cri_validate.h"
#include "cri/api.pb-c.h"
#include "macro.h"
#include "status.h"

/* Server-streaming RPCs: the framing differs, so the route must know. */
static bool is_server_streaming(const char *method)
{
	return strcmp(method, "GetContainerEvents") == 0 || strncmp(method, "Stream", 6) == 0;
}

static grpc_handler_fn find_handler(const char *service, const char *method)
{
	const struct {
		const struct cri_handler *list;
		size_t n;
	} tables[] = {
		{runtime_service_handlers, n_runtime_service_handlers},
		{image_service_handlers, n_image_service_handlers},
		{pod_service_handlers, n_pod_service_handlers},
		{pod_resources_handlers, n_pod_resources_handlers},
		{container_service_handlers, n_container_service_handlers},
		{stats_service_handlers, n_stats_service_handlers},
		{events_service_handlers, n_events_service_handlers},
		{stream_service_handlers, n_stream_service_handlers},
	};
	for (size_t t = 0; t < ARRAY_SIZE(tables); t++)
		for (size_t i = 0; i < tables[t].n; i++) {
			const struct cri_handler *h = &tables[t].list[i];
			if (strcmp(h->service, service) == 0 && strcmp(h->method, method) == 0)
				return h->fn;
		}
	return NULL;
}

struct grpc_method *cri_build_methods(size_t *n)
{
	static const ProtobufCServiceDescriptor *const services[] = {
		&runtime__v1__runtime_service__descriptor,
		&runtime__v1__image_service__descriptor,
	};
	size_t total = 0;
	for (size_t s = 0; s < ARRAY_SIZE(services); s++)
		total += services[s]->n_methods;
	struct grpc_method *m = calloc(total, sizeof(*m));
	if (!m)
		return NULL;
	size_t k = 0;
	for (size_t s = 0; s < ARRAY_SIZE(services); s++) {
		const ProtobufCServiceDescriptor *sd = services[s];
		for (unsigned i = 0; i < sd->n_methods; i++, k++) {
			char *path;
			if (asprintf(&path, "/%s/%s", sd->name, sd->methods[i].name) < 0) {
				cri_free_methods(m, k);
				return NULL;
			}
			m[k].path = path;
			m[k].request = sd->methods[i].input;
			m[k].handler = find_handler(sd->short_name, sd->methods[i].name);
			m[k].server_streaming = is_server_streaming(sd->methods[i].name);
		}
	}
	*n = total;
	return m;
}

void cri_free_methods(struct grpc_method *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)m[i].path);
	free(m);
}

bool cri_field_ok(struct grpc_call *call, const char *field, const char *v, bool required, size_t max)
{
	char err[512];
	int st = cri_check_field(field, v, required, max, err, sizeof(err));
	if (st == STATUS_OK)
		return true;
	grpc_call_fail(call, st, "%s", err);
	return false;
}

struct cri_later {
	struct cri_later *next;
	struct criod *c;
	cri_later_fn fn;
	char id[65];
	struct event *ev;
};

static void cri_later_unlink(struct criod *c, struct cri_later *l)
{
	for (struct cri_later **pp = &c->later; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			return;
		}
}

static void cri_later_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct cri_later *l = arg;
	cri_later_unlink(l->c, l);
	event_free(l->ev);
	l->fn(l->c, l->id);
	free(l);
}

void cri_later(struct criod *c, int delay_secs, cri_later_fn fn, const char *id)
{
	if (c->stopping)
		return;
	struct cri_later *l = calloc(1, sizeof(*l));
	if (!l)
		return;
	l->c = c;
	l->fn = fn;
	snprintf(l->id, sizeof(l->id), "%s", id);
	l->ev = evtimer_new(c->base, cri_later_cb, l);
	struct timeval tv = {delay_secs, 0};
	if (!l->ev || evtimer_add(l->ev, &tv) < 0) {
		if (l->ev)
			event_free(l->ev);
		free(l);
		return;
	}
	l->next = c->later;
	c->later = l;
}

void cri_later_cancel_all(struct criod *c)
{
	while (c->later) {
		struct cri_later *l = c->later;
		c->later = l->next;
		event_free(l->ev);
		free(l);
	}
}
