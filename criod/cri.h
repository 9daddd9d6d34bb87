/* criod's CRI front end: the state every handler shares and the routing of
 * every RPC of runtime.v1.RuntimeService and runtime.v1.ImageService. */
#pragma once

#include "config.h"
#include "containers.h"
#include "grpc.h"
#include "ipc.h"
#include "pods.h"

struct criod {
	struct event_base *base;
	const struct criod_config *cfg;
	struct ipc_client *imaged, *netd, *spawnd;
	struct pod_table pods;
	struct container_table ctrs;
	bool stopping; /* set before the daemon clients go away */
	struct cri_later *later; /* pending deferred calls (cri_later) */
	struct events *events;   /* GetContainerEvents' subscribers (events.h) */
	char *pod_cidr;          /* UpdateRuntimeConfig's, "" until kubelet sends one */
	struct criod_metrics *metrics; /* metrics.h */
	struct stream_server *stream; /* Exec, Attach, PortForward URLs (stream_server.h) */
};

/* A handler criod has built, keyed by service and method name. */
struct cri_handler {
	const char *service; /* "RuntimeService" or "ImageService" */
	const char *method;  /* "Version" */
	grpc_handler_fn fn;
};

extern const struct cri_handler runtime_service_handlers[];
extern const size_t n_runtime_service_handlers;
extern const struct cri_handler image_service_handlers[];
extern const size_t n_image_service_handlers;
extern const struct cri_handler pod_service_handlers[];
extern const size_t n_pod_service_handlers;
extern const struct cri_handler pod_resources_handlers[];
extern const size_t n_pod_resources_handlers;
extern const struct cri_handler container_service_handlers[];
extern const size_t n_container_service_handlers;
extern const struct cri_handler stats_service_handlers[];
extern const size_t n_stats_service_handlers;
extern const struct cri_handler events_service_handlers[];
extern const size_t n_events_service_handlers;

/* Read the pod CIDR UpdateRuntimeConfig recorded (runtime_service.c). */
void runtime_config_load(struct criod *c);
extern const struct cri_handler stream_service_handlers[];
extern const size_t n_stream_service_handlers;

/* Undo pods a crash left half-made (in the background, retrying). */
void pods_recover(struct criod *c);

/* Undo containers a crash left half-made (in the background, retrying). */
void containers_recover(struct criod *c);
/* At shutdown, after the daemon clients are gone: end waiting operations,
 * drop cleanup retries and every container monitor's client. */
void containers_shutdown(struct criod *c);
/* Stop (SIGKILL at once; remove = false) or remove every container of a
 * pod, in parallel; done runs exactly once, possibly before this returns,
 * with STATUS_OK or the first failure. For StopPodSandbox and
 * RemovePodSandbox, before the pod's own teardown. */
typedef void (*containers_done_fn)(void *arg, int status, const char *message);
void containers_for_pod(struct criod *c, const char *pod_id, bool remove, const char *req, containers_done_fn done,
			void *arg);

/* Call fn(c, id) on the loop after delay_secs (used to retry undoing a
 * half-made pod or container). Does nothing once criod is stopping: the
 * record stays on disk and the next start picks it up. */
typedef void (*cri_later_fn)(struct criod *c, const char *id);
void cri_later(struct criod *c, int delay_secs, cri_later_fn fn, const char *id);
/* Drop every pending deferred call (at shutdown). */
void cri_later_cancel_all(struct criod *c);

/* Check a request string: present when required, at most max bytes, no
 * control characters; otherwise fail the call with INVALID_ARGUMENT naming
 * the field and return false. */
bool cri_field_ok(struct grpc_call *call, const char *field, const char *v, bool required, size_t max);

/* Build the route table from the protobuf service descriptors: every RPC of
 * both services is routed; those without a handler answer UNIMPLEMENTED.
 * Returns a malloc'd array (paths included) and its length in *n. */
struct grpc_method *cri_build_methods(size_t *n);
void cri_free_methods(struct grpc_method *m, size_t n);
