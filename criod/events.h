/* GetContainerEvents: criod's container state transitions, streamed to
 * every subscriber (kubelet's Evented PLEG, crictl events), and those of
 * pod sandboxes under the pod's id (events_send_pod).
 *
 * CREATED, STARTED and DELETED are sent where criod's own operations
 * complete (CreateContainer, StartContainer, RemoveContainer and a pod's
 * removal). STOPPED is sent once per container, by whichever sees the exit
 * first: a StopContainer (or a pod's stop or removal) waiting for it, or the
 * container's exit watch: one ContainerState call with wait_exit_ms, which
 * conmon answers as soon as it has recorded the exit, kept out for every
 * running container and asked again when it times out. Each event carries
 * the pod's status and the statuses of the pod's containers (the one the
 * event is about as the transition left it).
 *
 * Subscribers never hold criod up: each event is queued on every stream
 * (at most EVENTS_SEND_LIMIT bytes that the client has not taken through
 * HTTP/2 flow control); a subscriber that lets that fill has its stream
 * reset (RESOURCE_EXHAUSTED) and a line in the log. */
#pragma once

#include <stdbool.h>

#include "cri/api.pb-c.h"

/* Bytes of events queued for one subscriber beyond what its flow-control
 * window took: a few hundred events of a pod with a few containers. */
#define EVENTS_SEND_LIMIT ((size_t)1 << 20)

struct criod;
struct container;
struct pod;
struct ctr_status;

int events_init(struct criod *c);
/* End every stream (UNAVAILABLE: criod is stopping) and free the hub. */
void events_shutdown(struct criod *c);
/* Subscribers connected now. */
size_t events_subscribers(const struct criod *c);

/* Send one event about ctr to every subscriber. st: the container's state
 * as the transition left it (NULL: read from conmon's state file). */
void events_send(struct criod *c, struct container *ctr, Runtime__V1__ContainerEventType type,
		 const struct ctr_status *st);
/* An event about a pod sandbox itself (container_id is the pod's id, as
 * containerd sends them): CREATED and STARTED when RunPodSandbox has made
 * it, STOPPED when StopPodSandbox made it NOTREADY, DELETED when it is
 * removed. */
void events_send_pod(struct criod *c, const struct pod *p, Runtime__V1__ContainerEventType type);
/* The container has exited (st as it ended, or NULL): STOPPED, once. */
void events_exited(struct criod *c, struct container *ctr, const struct ctr_status *st);
/* Keep a State call waiting for ctr's exit (after StartContainer). */
void events_watch(struct criod *c, struct container *ctr);
/* At start: watch every running container; those exited already are not
 * reported again. */
void events_recover(struct criod *c);
