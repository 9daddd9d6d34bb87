/* Stopping a container: its stop signal (the image's or the
 * container's StopSignal, by name or number), then SIGKILL once the grace
 * period is over, while polling conmon's State on a timer; when conmon is
 * gone, spawnd kills by the init's pid. Nothing here blocks the loop. Used
 * by StopContainer, RemoveContainer and a pod's stop (container_service.c). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "container_op.h"
#include "containers.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "events.h"
#include "internal/conmon.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "status.h"
#include "util.h"

/* ---------------------------------------------------------------- signals */

static const struct {
	const char *name;
	int num;
} signal_names[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},   {"TRAP", SIGTRAP},
	{"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},   {"FPE", SIGFPE},   {"KILL", SIGKILL},
	{"USR1", SIGUSR1}, {"SEGV", SIGSEGV},     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
	{"TERM", SIGTERM},
#ifdef SIGSTKFLT
	{"STKFLT", SIGSTKFLT},
#endif
	{"CHLD", SIGCHLD}, {"CLD", SIGCHLD},      {"CONT", SIGCONT}, {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
	{"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
	{"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},  {"POLL", SIGIO},
	{"PWR", SIGPWR},   {"SYS", SIGSYS},
};
/* The kernel's real-time range as the runtimes name it (glibc keeps 32, 33). */
#define RTMIN 34
#define RTMAX 64

/* "SIGTERM", "TERM", "sigterm", "15", "SIGRTMIN+3", "RTMAX-2": 1..64, or -1. */
static int signal_parse(const char *s)
{
	if (!s || !*s)
		return -1;
	size_t n = strlen(s);
	if (strspn(s, "0123456789") == n) {
		long v = n <= 3 ? strtol(s, NULL, 10) : -1;
		return v >= 1 && v <= 64 ? (int)v : -1;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(signal_names); i++)
		if (strcasecmp(s, signal_names[i].name) == 0)
			return signal_names[i].num;
	int base = strncasecmp(s, "RTMIN", 5) == 0 ? RTMIN : strncasecmp(s, "RTMAX", 5) == 0 ? RTMAX : 0;
	if (!base)
		return -1;
	s += 5;
	if (!*s)
		return base;
	if ((*s != '+' && *s != '-') || !s[1] || strspn(s + 1, "0123456789") != strlen(s + 1) || strlen(s + 1) > 2)
		return -1;
	int v = base + (*s == '+' ? 1 : -1) * atoi(s + 1);
	return v >= RTMIN && v <= RTMAX ? v : -1;
}

/* The CRI Signal value of a signal number. */
Runtime__V1__Signal signal_enum(int sig)
{
	char name[32] = "";
	if (sig == RTMIN)
		snprintf(name, sizeof(name), "SIGRTMIN");
	else if (sig == RTMAX)
		snprintf(name, sizeof(name), "SIGRTMAX");
	else if (sig > RTMIN && sig < RTMIN + 16)
		snprintf(name, sizeof(name), "SIGRTMINPLUS%d", sig - RTMIN);
	else if (sig > RTMIN && sig < RTMAX)
		snprintf(name, sizeof(name), "SIGRTMAXMINUS%d", RTMAX - sig);
	else
		for (size_t i = 0; i < ARRAY_SIZE(signal_names); i++)
			if (signal_names[i].num == sig) {
				snprintf(name, sizeof(name), "SIG%s", signal_names[i].name);
				break;
			}
	const ProtobufCEnumValue *v =
		*name ? protobuf_c_enum_descriptor_get_value_by_name(&runtime__v1__signal__descriptor, name) : NULL;
	return v ? (Runtime__V1__Signal)v->value : RUNTIME__V1__SIGNAL__RUNTIME_DEFAULT;
}

int stop_signal_of(const struct container *ctr)
{
	int sig = signal_parse(ctr->stop_signal);
	return sig > 0 ? sig : SIGTERM;
}


/* ---------------------------------------------------------------- stopping */

static struct ctr_op *waiting; /* operations waiting on their poll timer */

static void stop_look(struct ctr_op *op);

static void stop_end(struct ctr_op *op) { op->stop_next(op); }

static void poll_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct ctr_op *op = arg;
	if (op->wait_pprev) {
		*op->wait_pprev = op->wait_next;
		if (op->wait_next)
			op->wait_next->wait_pprev = op->wait_pprev;
		op->wait_pprev = NULL;
		op->wait_next = NULL;
	}
	stop_look(op);
}

static void stop_poll_later(struct ctr_op *op)
{
	if (op->c->stopping) {
		op_error(op, STATUS_CANCELLED, "criod is shutting down");
		stop_end(op);
		return;
	}
	if (!op->timer)
		op->timer = evtimer_new(op->c->base, poll_cb, op);
	op->poll_ms = op->poll_ms ? op->poll_ms * 2 : POLL_FIRST_MS;
	if (op->poll_ms > POLL_MAX_MS)
		op->poll_ms = POLL_MAX_MS;
	struct timeval tv = {op->poll_ms / 1000, (op->poll_ms % 1000) * 1000};
	if (!op->timer || evtimer_add(op->timer, &tv) < 0) {
		op_error(op, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		stop_end(op);
		return;
	}
	op->wait_next = waiting;
	if (waiting)
		waiting->wait_pprev = &op->wait_next;
	op->wait_pprev = &waiting;
	waiting = op;
}

static void stop_kill_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_, size_t nfds _unused_,
			   void *ud)
{
	struct ctr_op *op = ud;
	if (status != STATUS_OK && status != STATUS_UNAVAILABLE) {
		op_error(op, status, "cannot signal container %s: %s", op->ctr->id, message);
		stop_end(op);
		return;
	}
	/* Wait for the exit (or, unreachable, learn whether conmon is gone). */
	op->poll_ms = 0;
	stop_look(op);
}

static void send_kill(struct ctr_op *op, int sig, bool all)
{
	Criod__Internal__KillContainerRequest req = CRIOD__INTERNAL__KILL_CONTAINER_REQUEST__INIT;
	req.signal = sig;
	req.all = all;
	log_info(op->req, "signalling container", "container=%s signal=%d all=%d", op->ctr->id, sig, all);
	call_ipc(op, ctr_conmon(op->ctr), API_CONMON(CONMON_KILL), &req.base, RUNTIME_TIMEOUT_MS, stop_kill_done);
}

static void forced_kill_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_,
			     size_t nfds _unused_, void *ud)
{
	struct ctr_op *op = ud;
	struct container *ctr = op->ctr;
	if (status != STATUS_OK) {
		op_error(op, status, "the monitor of container %s is gone, and spawnd could not kill it: %s", ctr->id,
			 message);
		stop_end(op);
		return;
	}
	op->exit_code = 128 + SIGKILL;
	int r = ctr_mark_exited(ctr, op->exit_code, op->forced_started_at);
	if (r < 0)
		op_error(op, STATUS_INTERNAL, "cannot save container state: %s", strerror(-r));
	else
		log_info(op->req, "container killed through spawnd, its monitor being gone", "container=%s", ctr->id);
	if (r >= 0)
		events_exited(op->c, ctr, NULL);
	stop_end(op);
}

/* conmon died while the container runs: spawnd takes it out of the
 * runtime (runtime delete --force, which kills it). */
static void forced_kill(struct ctr_op *op, const struct ctr_status *st)
{
	log_warn(op->req, "container monitor is gone; asking spawnd to kill the container", "container=%s",
		 op->ctr->id);
	op->forced_started_at = st->started_at;
	Criod__Internal__RemoveContainerRequest req = CRIOD__INTERNAL__REMOVE_CONTAINER_REQUEST__INIT;
	req.container_id = op->ctr->id;
	call_ipc(op, op->c->spawnd, API_SPAWND(SPAWND_REMOVE_CONTAINER), &req.base, op_timeout(op, op->c->cfg->rpc_timeout_ms), forced_kill_done);
}

static void stop_on_status(struct ctr_op *op, const struct ctr_status *st, const char *unreachable)
{
	struct container *ctr = op->ctr;
	if (st->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED) {
		op->exit_code = st->exit_code;
		op->exit_started_at = st->started_at;
		op->exit_finished_at = st->finished_at;
		events_exited(op->c, ctr, st);
		stop_end(op);
		return;
	}
	if (unreachable && *ctr->state_dir && !ctr_conmon_alive(ctr)) {
		forced_kill(op, st);
		return;
	}
	if (unreachable && (op->phase == STOP_LOOK || st->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN)) {
		op_error(op, STATUS_UNAVAILABLE, "cannot reach the monitor of container %s: %s%s%s", ctr->id, unreachable,
			 st->message ? "; " : "", st->message ? st->message : "");
		stop_end(op);
		return;
	}
	int64_t now = now_monotonic_ns();
	switch (op->phase) {
	case STOP_LOOK:
		if (st->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING && op->stop_timeout_s > 0) {
			op->phase = STOP_SIGNALLED;
			op->deadline = now + op->stop_timeout_s * 1000000000LL;
			send_kill(op, stop_signal_of(ctr), false);
		} else {
			op->phase = STOP_KILLED;
			op->deadline = now + KILL_WAIT_NS;
			send_kill(op, SIGKILL, true);
		}
		return;
	case STOP_SIGNALLED:
		if (now < op->deadline) {
			stop_poll_later(op);
			return;
		}
		op->phase = STOP_KILLED;
		op->deadline = now + KILL_WAIT_NS;
		op->poll_ms = 0;
		send_kill(op, SIGKILL, true);
		return;
	case STOP_KILLED:
		if (now < op->deadline) {
			stop_poll_later(op);
			return;
		}
		op_error(op, STATUS_DEADLINE_EXCEEDED, "container %s did not exit within %lld s of SIGKILL", ctr->id,
			 KILL_WAIT_NS / 1000000000LL);
		stop_end(op);
		return;
	}
}

static void stop_state_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
			    void *ud)
{
	struct ctr_op *op = ud;
	struct ctr_status st;
	if (status == STATUS_OK) {
		ctr_status_from_state((const void *)resp, &st);
		stop_on_status(op, &st, NULL);
		return;
	}
	if (op->c->stopping) {
		op_error(op, STATUS_CANCELLED, "criod is shutting down");
		stop_end(op);
		return;
	}
	ctr_disk_status(op->ctr, &st);
	stop_on_status(op, &st, message);
}

/* Ask conmon for the state; once signalled, let it hold the answer until
 * the container exits or the phase's deadline passes (a monitor that does
 * not know wait_exit_ms answers at once, and the poll timer paces us). */
static void stop_look(struct ctr_op *op)
{
	Criod__Internal__ContainerStateRequest req = CRIOD__INTERNAL__CONTAINER_STATE_REQUEST__INIT;
	if (op->phase != STOP_LOOK) {
		int64_t left_ms = (op->deadline - now_monotonic_ns() + 999999) / 1000000;
		req.wait_exit_ms = left_ms <= 0 ? 0 : left_ms > STATE_WAIT_MAX_MS ? STATE_WAIT_MAX_MS : (uint32_t)left_ms;
	}
	call_ipc(op, ctr_conmon(op->ctr), API_CONMON(CONMON_STATE), &req.base, STATE_TIMEOUT_MS + req.wait_exit_ms, stop_state_done);
}

/* Stop op->ctr: the stop signal, then SIGKILL after timeout_s (at once when
 * 0 or the container is not running), then wait for the exit. next(op)
 * runs with op->status set on failure. */
void stop_begin(struct ctr_op *op, int64_t timeout_s, op_fn next)
{
	op->stop_next = next;
	op->stop_timeout_s = timeout_s > 0 ? timeout_s : 0;
	op->phase = STOP_LOOK;
	op->poll_ms = 0;
	op->exit_code = -1;
	stop_look(op);
}

void stop_shutdown(void)
{
	/* Operations waiting on a timer look once more and, finding criod
	 * stopping, end. */
	while (waiting) {
		struct ctr_op *op = waiting;
		event_del(op->timer);
		poll_cb(-1, 0, op);
	}
}
