/* GetContainerEvents and the containers' exit watch; see events.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "api.h"
#include "container_op.h"
#include "containers.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "events.h"
#include "internal/conmon.pb-c.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "status.h"
#include "util.h"

/* A watch answered sooner than this with the container still running (a
 * monitor holding its most waiting calls answers at once) is asked again
 * only after WATCH_RETRY_SECS, as is one whose monitor did not answer. */
#define WATCH_MIN_NS (500 * 1000000LL)
#define WATCH_RETRY_SECS 1
#define WATCH_REQ "exit-watch"

struct subscriber {
	struct subscriber *next, **pprev;
	struct events *hub;
	struct grpc_call *call;
	uint64_t sent;
};

struct events {
	struct subscriber *subs;
	size_t n_subs;
};

int events_init(struct criod *c)
{
	c->events = calloc(1, sizeof(*c->events));
	return c->events ? 0 : -ENOMEM;
}

static void sub_unlink(struct subscriber *s)
{
	if (!s->pprev)
		return;
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	s->pprev = NULL;
	s->next = NULL;
	s->hub->n_subs--;
}

void events_shutdown(struct criod *c)
{
	struct events *h = c->events;
	if (!h)
		return;
	while (h->subs) {
		struct subscriber *s = h->subs;
		sub_unlink(s);
		grpc_call_finish(s->call, STATUS_UNAVAILABLE, "criod is shutting down");
		free(s);
	}
	free(h);
	c->events = NULL;
}

size_t events_subscribers(const struct criod *c)
{
	return c->events ? c->events->n_subs : 0;
}

/* The client went away (or its deadline passed). */
static void sub_cancelled(struct grpc_call *call, void *ud)
{
	struct subscriber *s = ud;
	sub_unlink(s);
	log_info(grpc_call_request_id(call), "events subscriber gone", "events_sent=%llu subscribers=%zu",
		 (unsigned long long)s->sent, s->hub->n_subs);
	grpc_call_finish(call, STATUS_CANCELLED, "cancelled");
	free(s);
}

static void get_container_events(struct grpc_call *call, const ProtobufCMessage *req _unused_, void *ud)
{
	struct criod *c = ud;
	struct events *h = c->events;
	struct subscriber *s = h && !c->stopping ? calloc(1, sizeof(*s)) : NULL;
	if (!s) {
		grpc_call_fail(call, h && !c->stopping ? STATUS_RESOURCE_EXHAUSTED : STATUS_UNAVAILABLE,
			       h && !c->stopping ? "out of memory" : "criod is shutting down");
		return;
	}
	s->hub = h;
	s->call = call;
	s->next = h->subs;
	if (h->subs)
		h->subs->pprev = &s->next;
	s->pprev = &h->subs;
	h->subs = s;
	h->n_subs++;
	grpc_call_set_send_limit(call, EVENTS_SEND_LIMIT);
	grpc_call_set_cancel(call, sub_cancelled, s);
	log_info(grpc_call_request_id(call), "events subscriber", "subscribers=%zu", h->n_subs);
}

static const char *event_name(Runtime__V1__ContainerEventType type)
{
	switch (type) {
	case RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT: return "created";
	case RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT: return "started";
	case RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT: return "stopped";
	case RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT: return "deleted";
	default: return "unknown";
	}
}

static void deliver(struct events *h, const Runtime__V1__ContainerEventResponse *ev)
{
	struct subscriber *next;
	for (struct subscriber *s = h->subs; s; s = next) {
		next = s->next;
		int r = grpc_call_send(s->call, &ev->base);
		if (r == 0) {
			s->sent++;
			continue;
		}
		const char *rid = grpc_call_request_id(s->call);
		sub_unlink(s);
		if (r == -ENOBUFS) {
			log_warn(rid, "events subscriber does not keep up, ending its stream",
				 "queued_bytes=%zu limit=%zu events_sent=%llu subscribers=%zu",
				 grpc_call_queued_bytes(s->call), EVENTS_SEND_LIMIT, (unsigned long long)s->sent,
				 h->n_subs);
			grpc_call_reset(s->call, STATUS_RESOURCE_EXHAUSTED,
					"the subscriber did not take %zu bytes of events", EVENTS_SEND_LIMIT);
		} else if (r == -EMSGSIZE) {
			log_warn(rid, "container event exceeds the message size limit, ending the stream",
				 "container=%s", ev->container_id);
			grpc_call_finish(s->call, STATUS_RESOURCE_EXHAUSTED, "an event exceeds the message size limit");
		} else {
			log_warn_errno(r, rid, "cannot queue container event, ending the stream", "container=%s",
				       ev->container_id);
			grpc_call_finish(s->call, r == -ECANCELED ? STATUS_CANCELLED : STATUS_INTERNAL,
					 "cannot queue an event");
		}
		free(s);
	}
}

/* One event about id (a container of pod_id, or the pod itself): p is the
 * pod (NULL: not known); ctr and st the container the event is about, if
 * it is one, and its state as the transition left it (NULL: its file). */
static void send_event(struct criod *c, const char *id, const struct pod *p, const char *pod_id,
		       Runtime__V1__ContainerEventType type, const struct container *ctr, const struct ctr_status *st)
{
	struct events *h = c->events;
	log_debug(NULL, "container event", "%s=%s event=%s subscribers=%zu", ctr ? "container" : "pod", id,
		  event_name(type), h ? h->n_subs : 0);
	if (!h || !h->subs)
		return;
	Runtime__V1__ContainerEventResponse ev = RUNTIME__V1__CONTAINER_EVENT_RESPONSE__INIT;
	ev.container_id = (char *)id;
	ev.container_event_type = type;
	ev.created_at = now_realtime_ns();

	struct pod_status_msg pm;
	if (p) {
		pod_status_fill(&pm, p);
		ev.pod_sandbox_status = &pm.st;
	}
	/* The pod's containers (a deleted one is gone from them). */
	size_t n = 0;
	for (struct container *k = c->ctrs.ctrs; k; k = k->next)
		if (!k->gone && k->state == CTR_CREATED && strcmp(k->pod_id, pod_id) == 0)
			n++;
	_cleanup_free_ struct ctr_status_msg *msgs = calloc(n ? n : 1, sizeof(*msgs));
	_cleanup_free_ Runtime__V1__ContainerStatus **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!msgs || !ptrs) {
		log_error_errno(-ENOMEM, NULL, "cannot build container event", "id=%s", id);
		return;
	}
	size_t i = 0;
	for (struct container *k = c->ctrs.ctrs; k && i < n; k = k->next) {
		if (k->gone || k->state != CTR_CREATED || strcmp(k->pod_id, pod_id) != 0)
			continue;
		struct ctr_status disk;
		if (k != ctr || !st) {
			ctr_disk_status(k, &disk);
			ctr_status_fill(&msgs[i], k, &disk);
		} else {
			ctr_status_fill(&msgs[i], k, st);
		}
		ptrs[i] = &msgs[i].s;
		i++;
	}
	ev.containers_statuses = ptrs;
	ev.n_containers_statuses = i;
	deliver(h, &ev);
}

void events_send(struct criod *c, struct container *ctr, Runtime__V1__ContainerEventType type,
		 const struct ctr_status *st)
{
	struct pod *p = pods_find(&c->pods, ctr->pod_id);
	send_event(c, ctr->id, p && strcmp(p->id, ctr->pod_id) == 0 ? p : NULL, ctr->pod_id, type, ctr, st);
}

void events_send_pod(struct criod *c, const struct pod *p, Runtime__V1__ContainerEventType type)
{
	send_event(c, p->id, p, p->id, type, NULL, NULL);
}

void events_exited(struct criod *c, struct container *ctr, const struct ctr_status *st)
{
	if (ctr->exit_reported || ctr->gone)
		return;
	ctr->exit_reported = true;
	events_send(c, ctr, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT, st);
}

/* ---------------------------------------------------------------- the exit watch */

struct watch {
	struct criod *c;
	char id[65];
	int64_t asked_at;
};

static void watch_arm(struct criod *c, struct container *ctr);

/* The init watch: conmon died before the container ended, so nobody will
 * record its exit (ctr_disk_status then reports it EXITED, 255, "Unknown",
 * from the init's absence). A pidfd of the init, polled by the event loop,
 * turns that absence into the CONTAINER_STOPPED_EVENT kubelet waits for. */
struct init_watch {
	struct criod *c;
	struct container *ctr; /* the event is freed with it (ctr_free) */
};

static void init_watch_drop(struct container *ctr)
{
	if (!ctr->init_ev)
		return;
	int fd = event_get_fd(ctr->init_ev);
	free(event_get_callback_arg(ctr->init_ev));
	event_free(ctr->init_ev);
	ctr->init_ev = NULL;
	close(fd);
}

static void init_exited(evutil_socket_t fd, short what, void *ud)
{
	struct init_watch *w = ud;
	struct criod *c = w->c;
	struct container *ctr = w->ctr;
	(void)fd;
	(void)what;
	init_watch_drop(ctr); /* frees w */
	if (c->stopping || ctr->gone || ctr->exit_reported)
		return;
	struct ctr_status st;
	ctr_disk_status(ctr, &st);
	if (st.state != RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
		/* A stop or removal under way reports it when it ends. */
		log_debug(WATCH_REQ, "container init ended, state not yet exited", "container=%s state=%d", ctr->id,
			  (int)st.state);
		return;
	}
	log_info(WATCH_REQ, "container exited without its monitor", "container=%s name=%s exit_code=%d", ctr->id,
		 ctr_name(ctr), st.exit_code);
	events_exited(c, ctr, &st);
}

static void watch_init(struct criod *c, struct container *ctr, int64_t pid)
{
	if (ctr->init_ev || pid <= 0 || pid > INT32_MAX)
		return;
	/* The pidfd first, then the check that the process still lives: the
	 * pidfd then names it whatever happens to the number. */
	int fd = pidfd_open_pid((pid_t)pid);
	if (fd < 0) {
		if (fd != -ESRCH)
			log_warn_errno(fd, WATCH_REQ, "cannot watch the container's init", "container=%s pid=%lld",
				       ctr->id, (long long)pid);
		else if (!ctr->exit_reported) {
			struct ctr_status st;
			ctr_disk_status(ctr, &st);
			if (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
				events_exited(c, ctr, &st);
		}
		return;
	}
	struct init_watch *w = calloc(1, sizeof(*w));
	struct event *ev = w ? event_new(c->base, fd, EV_READ, init_exited, w) : NULL;
	if (!ev || event_add(ev, NULL) < 0) {
		log_warn_errno(-ENOMEM, WATCH_REQ, "cannot watch the container's init", "container=%s pid=%lld",
			       ctr->id, (long long)pid);
		if (ev)
			event_free(ev);
		free(w);
		close(fd);
		return;
	}
	w->c = c;
	w->ctr = ctr;
	ctr->init_ev = ev;
}

static void watch_retry(struct criod *c, const char *id)
{
	struct container *ctr = ctrs_find(&c->ctrs, id);
	if (ctr && strcmp(ctr->id, id) == 0)
		watch_arm(c, ctr);
}

static void watch_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
		       void *ud)
{
	struct watch *w = ud;
	struct criod *c = w->c;
	int64_t asked_at = w->asked_at;
	struct container *ctr = ctrs_find(&c->ctrs, w->id);
	if (ctr && strcmp(ctr->id, w->id) != 0)
		ctr = NULL;
	free(w);
	if (!ctr)
		return; /* removed: nothing more to tell */
	ctr->exit_watched = false;
	if (c->stopping || ctr->exit_reported)
		return;
	struct ctr_status st;
	if (status == STATUS_OK) {
		ctr_status_from_state((const void *)resp, &st);
		if (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
			log_info(WATCH_REQ, "container exited", "container=%s name=%s exit_code=%d", ctr->id,
				 ctr_name(ctr), st.exit_code);
			events_exited(c, ctr, &st);
			return;
		}
		if (now_monotonic_ns() - asked_at >= WATCH_MIN_NS)
			watch_arm(c, ctr);
		else
			cri_later(c, WATCH_RETRY_SECS, watch_retry, ctr->id);
		return;
	}
	/* conmon did not answer: gone with the container (its state file says
	 * how it ended), or not reachable for now. */
	ctr_disk_status(ctr, &st);
	if (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
		log_info(WATCH_REQ, "container exited", "container=%s name=%s exit_code=%d", ctr->id, ctr_name(ctr),
			 st.exit_code);
		events_exited(c, ctr, &st);
		return;
	}
	if (*ctr->state_dir && !ctr_conmon_alive(ctr)) {
		log_warn(WATCH_REQ, "container monitor is gone; watching the container's init", "container=%s pid=%lld error=\"%s\"",
			 ctr->id, (long long)st.pid, message ? message : "");
		watch_init(c, ctr, st.pid);
		return;
	}
	log_debug(WATCH_REQ, "exit watch failed, asking again", "container=%s error=\"%s\" retry_s=%d", ctr->id,
		  message ? message : "", WATCH_RETRY_SECS);
	cri_later(c, WATCH_RETRY_SECS, watch_retry, ctr->id);
}

static void watch_arm(struct criod *c, struct container *ctr)
{
	if (c->stopping || ctr->gone || ctr->state != CTR_CREATED || ctr->exit_watched || ctr->exit_reported)
		return;
	struct ipc_client *cl = ctr_conmon(ctr);
	if (!cl)
		return;
	struct watch *w = calloc(1, sizeof(*w));
	if (!w) {
		cri_later(c, WATCH_RETRY_SECS, watch_retry, ctr->id);
		return;
	}
	w->c = c;
	snprintf(w->id, sizeof(w->id), "%s", ctr->id);
	w->asked_at = now_monotonic_ns();
	Criod__Internal__ContainerStateRequest req = CRIOD__INTERNAL__CONTAINER_STATE_REQUEST__INIT;
	req.wait_exit_ms = STATE_WAIT_MAX_MS;
	ctr->exit_watched = true;
	int r = ipc_client_call(cl, API_CONMON(CONMON_STATE), WATCH_REQ, &req.base, NULL, 0, STATE_WAIT_MAX_MS + STATE_TIMEOUT_MS,
				watch_done, w);
	if (r < 0) {
		ctr->exit_watched = false;
		free(w);
		log_warn_errno(r, WATCH_REQ, "cannot queue exit watch", "container=%s", ctr->id);
		cri_later(c, WATCH_RETRY_SECS, watch_retry, ctr->id);
	}
}

void events_watch(struct criod *c, struct container *ctr)
{
	watch_arm(c, ctr);
}

void events_recover(struct criod *c)
{
	for (struct container *ctr = c->ctrs.ctrs; ctr; ctr = ctr->next) {
		if (ctr->gone || ctr->state != CTR_CREATED)
			continue;
		struct ctr_status st;
		ctr_disk_status(ctr, &st);
		if (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
			ctr->exit_reported = true;
		else if (st.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING)
			watch_arm(c, ctr);
		else if (*ctr->state_dir && st.pid > 0 && !ctr_conmon_alive(ctr))
			watch_init(c, ctr, st.pid); /* its monitor died while it runs */
	}
}

const struct cri_handler events_service_handlers[] = {
	{"RuntimeService", "GetContainerEvents", get_container_events},
};
const size_t n_events_service_handlers = ARRAY_SIZE(events_service_handlers);
