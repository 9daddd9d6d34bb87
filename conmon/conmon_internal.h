/* conmon's own state, shared by its files (conmon.c: the monitor and the
 * container's output; conmon_runtime.c: the runtime's commands;
 * conmon_exec.c: Exec; conmon_control.c: the other control methods and
 * the request table; conmon_stream.c: ExecStream and AttachStream). Not an
 * interface: conmon.h is. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

#include <event2/event.h>

#include "config.h"
#include "conmon.h"
#include "conmon_crilog.h"
#include "internal/conmon.pb-c.h"
#include "api.h"
#include "ipc.h"

#define CONMON_STRAYS 64
#define ERRMSG_MAX 512
#define READ_ROUNDS 16   /* reads per event, so one busy stream cannot starve the rest */
#define DRAIN_ROUNDS 1024 /* reads when draining at an exit: more than a full pipe, bounded for writers that go on */

struct xstream;
struct attacher;
struct runtime_async;

typedef Criod__Internal__ContainerStateResponse__State cstate;
#define ST_CREATED CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__STATE__CREATED
#define ST_RUNNING CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__STATE__RUNNING
#define ST_EXITED CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__STATE__EXITED

struct conmon;

/* A growing byte buffer for exec output. */
struct obuf {
	uint8_t *data;
	size_t len, cap;
	bool truncated;
};

struct exec_op {
	struct exec_op *next;
	struct conmon *cm;
	struct ipc_call *call;
	char req[72];
	unsigned seq;
	pid_t pid;  /* the runtime's exec process until reaped, then 0 */
	pid_t pgid; /* its session and process group (the same number) */
	bool reaped; /* the runtime exited (wstatus); the reply is pending */
	int wstatus;
	char *pid_file;
	int fd[2]; /* stdout, stderr read ends */
	struct event *ev[2];
	struct obuf out[2];
	struct event *timer;
	bool timed_out;
};

/* One output of the container: a pipe, or the pty master. */
struct out_src {
	struct conmon *cm;
	int fd;
	struct event *ev;
	struct crilog_stream s;
};

struct conmon {
	/* command line */
	const char *id, *bundle, *runtime, *runtime_root, *log_path, *state_dir, *socket_path;
	const char *config_path, *log_level;
	/* the configuration spawnd read (--config): [policy] for Update */
	struct criod_config cfg;
	/* --log-root: the directory spawnd chose for log_path (one of
	 * [policy] log_roots), opened once (O_PATH), and log_path below it:
	 * every open of the log is beneath it */
	const char *log_root;
	int log_root_fd;
	const char *log_rel;
	uid_t allowed_uid;
	bool have_uid, tty, keep_stdin;
	int sync_fd;

	struct event_base *base;
	struct event *sig_chld, *sig_term, *sig_int;
	struct ipc_server *srv;
	struct event *exits_ev; /* processes reaped children outside of handlers */
	pid_t sync_pid;         /* the runtime command a handler is waiting for */
	bool sync_reaped;
	int sync_wstatus;

	/* the container */
	pid_t pid;
	bool reaped;       /* init reaped: pid is no longer ours */
	bool init_pending; /* reaped, exit not processed yet */
	int init_wstatus;
	cstate state;
	int64_t created_at, started_at, finished_at;
	int32_t exit_code;
	bool oom_killed;
	char *oom_file; /* memory.oom_control (v1) or memory.events (v2) of its memory cgroup */
	uint64_t oom_base;

	/* its output */
	struct crilog log;
	bool log_failing;
	struct out_src out[2];
	int stdin_fd; /* kept for a later attach (--stdin) */
	bool stdin_once; /* --stdin-once: closed when the first attacher's stdin ends */

	/* streaming (conmon_stream.c) */
	struct xstream *xstreams; /* ExecStream sessions */
	unsigned n_xstreams, xstream_seq;
	struct attacher *attachers; /* AttachStream sessions */
	unsigned n_attachers;
	struct event *stdin_wev; /* stdin_fd writable again (attachers' input waits) */
	/* children reaped that nobody tracked (yet): an exec'd process whose
	 * runtime exec --detach left it to us before its pid file was read */
	struct stray {
		pid_t pid;
		int wstatus;
	} strays[CONMON_STRAYS];
	unsigned stray_next;

	struct exec_op *execs;
	unsigned n_execs, exec_seq;
	/* the runtime's delete conmon starts itself once the exit is recorded
	 * (conmon_early_delete), and the runtime command it runs, if any */
	enum early_delete {
		EARLY_DELETE_NONE,    /* not started: not exited, never started, or Delete came first */
		EARLY_DELETE_RUNNING,
		EARLY_DELETE_OK,      /* the runtime has nothing of the container any more */
		EARLY_DELETE_FAILED,  /* Delete runs it again */
	} early_delete;
	int64_t early_delete_t0; /* when it began (monotonic ns), for the log */
	bool exiting; /* Delete or shutdown under way: an exit starts no runtime delete */
	struct runtime_async *rt_async; /* the runtime command run without blocking, or NULL */

	struct state_wait *waits; /* State calls waiting for the exit */
	unsigned n_waits;
	int exit_status;
	struct ipc_method methods[CONMON_N_METHODS]; /* served: the table with conmon_handlers */
};

/* A State call held until the container exits or its wait ends. */
struct state_wait {
	struct state_wait *next;
	struct conmon *cm;
	struct ipc_call *call;
	struct event *timer;
};


/* ---- conmon.c: the monitor (start-up, state, output, OOM, reaping) ---- */
char *conmon_path_in(const char *dir, const char *name);
int32_t conmon_exit_code_of(int wstatus);
/* The last error the runtime logged in the JSON log file at path. */
void conmon_runtime_log_error(const char *path, char *out, size_t size);
/* Take the pty master the runtime sent on the console socket lfd. */
int conmon_console_receive(int lfd, int *master);
int conmon_read_pid_file(const char *path, pid_t *out);
/* Run fn on the loop soon (exits_ev): conmon_process_exits after conmon_reap_all. */
void conmon_exits_pending(struct conmon *cm);
/* Copy src into dst (size > 0), cut short if need be. */
void conmon_copy_str(char *dst, size_t size, const char *src);
/* One printable line: control characters become spaces, bounded. */
void conmon_sanitize_line(char *s);
/* Wait for the child pid until deadline (monotonic ns; on timeout it is
 * killed and -ETIMEDOUT returned), serving the extra fds with on_fd
 * meanwhile; reap_others reaps other children too (see conmon.c). */
typedef void (*fd_ready_fn)(struct pollfd *p, void *ud);
int conmon_wait_child(struct conmon *cm, pid_t pid, int64_t deadline, bool reap_others, struct pollfd *extra,
		      size_t n_extra, fd_ready_fn on_fd, void *ud, int *wstatus);
/* Write <state-dir>/state.pb atomically; durably but for CREATED
 * (conmon.h, "The state directory"). */
int conmon_persist_state(struct conmon *cm);
/* Find the init's memory cgroup (v1 "N:memory:/path", else v2 "0::/path")
 * while it runs and remember its OOM-kill counter. */
void conmon_oom_setup(struct conmon *cm);
/* Start logging the container's output fd as stream name. */
int conmon_out_start(struct conmon *cm, struct out_src *o, int fd, const char *name);
/* Close the container's stdio: output pipes (a partial line still buffered
 * goes to the log first) and the stdin kept for attach. */
void conmon_close_outputs(struct conmon *cm);
/* The log, at create and at every reopen: beneath its root, nothing
 * followed, nothing but a regular file opened. */
int conmon_open_log(const struct conmon *cm);
/* Reap every child that has exited. Those we track are only marked here;
 * conmon_process_exits() acts on them from the loop (exits_ev), never in the
 * middle of a handler. */
void conmon_reap_all(struct conmon *cm);
void conmon_process_exits(struct conmon *cm);

/* ---- conmon_runtime.c: running the OCI runtime ---- */
/* Run `<runtime> --root <root> args...` to completion (at most
 * CONMON_RUNTIME_TIMEOUT_MS): its stdout and stderr share one pipe whose
 * last line becomes the error message. 0 when it exited 0. */
int conmon_runtime_run(struct conmon *cm, const char *req, const char *const *args, size_t nargs, char *err,
		       size_t errlen);
/* The same command (spawn, output, timeout) without blocking the loop: done
 * gets its result (as conmon_runtime_run's) from the loop once it is reaped
 * or has run into its timeout. One at a time (-EBUSY). */
typedef void (*runtime_done_fn)(struct conmon *cm, int r, const char *err);
int conmon_runtime_start(struct conmon *cm, const char *req, const char *const *args, size_t nargs,
			 runtime_done_fn done, char *err, size_t errlen);
/* conmon_reap_all reaped pid: true when it is that command's. */
bool conmon_runtime_async_reaped(struct conmon *cm, pid_t pid, int wstatus);
/* From the loop, after reaping: its done, once it is reaped. */
void conmon_runtime_async_process(struct conmon *cm);
/* Wait for it here (at most to its deadline), then its done: before conmon
 * exits, so the runtime is never left running on its own. */
void conmon_runtime_async_wait(struct conmon *cm);
/* `<runtime> run --detach`: create and start the container in one go. */
int conmon_run_container(struct conmon *cm, char *err, size_t errlen);

/* ---- conmon_exec.c: Exec ---- */
void handle_exec(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud);
/* The runtime's exec process was reaped (conmon_reap_all): reply. */
void conmon_exec_reaped(struct exec_op *e);
/* Kill an exec and answer its call now (Delete, shutdown). */
void conmon_exec_abort(struct exec_op *e, const char *why);

/* ---- conmon_control.c: the control methods ---- */
/* The exit is recorded (or conmon stops): answer every waiting State call. */
void conmon_state_waits_end(struct conmon *cm);
/* The exit is durable and answered: `<runtime> delete --force` now, without
 * blocking, so Delete has nothing of the runtime's left to remove. */
void conmon_early_delete(struct conmon *cm);
/* The handler of each request of common/api.c's conmon_methods. */
extern const ipc_handler_fn conmon_handlers[CONMON_N_METHODS];

/* ---- conmon_stream.c ---- */
void handle_exec_stream(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud);
void handle_attach_stream(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud);
/* conmon_reap_all reaped pid: true when it is a stream's (runtime or process). */
bool conmon_stream_reaped(struct conmon *cm, pid_t pid, int wstatus);
/* pid is a child some stream tracks (its runtime exec or its process). */
bool conmon_stream_tracks(struct conmon *cm, pid_t pid);
/* From the loop, after reaping: act on the streams' exits. */
void conmon_streams_process(struct conmon *cm);
/* The container wrote data on its stdout (i = 0; the terminal with --tty)
 * or stderr (i = 1): copy it to every attacher. */
void conmon_attach_output(struct conmon *cm, int i, const char *data, size_t len);
/* The container's output ended (it exited, its output drained): every
 * attacher gets EOF. */
void conmon_attach_end_all(struct conmon *cm);
/* Kill every exec stream, drop every attacher (Delete, shutdown). */
void conmon_streams_abort(struct conmon *cm, const char *why);
