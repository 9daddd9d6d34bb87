/* Routing of every CRI RPC; see cri.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cri.h"
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
		{container_service_handlers, n_container_service_handlers},
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
	if (required && (!v || !*v)) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "%s is required", field);
		return false;
	}
	if (v && strlen(v) > max) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "%s is longer than %zu bytes", field, max);
		return false;
	}
	for (const char *s = v; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "%s contains control characters", field);
			return false;
		}
	return true;
}
