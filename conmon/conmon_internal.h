/* conmon's own state, shared by its files (conmon.c: the monitor, its
 * control methods and the container's output; conmon_stream.c: ExecStream
 * and AttachStream). Not an interface: conmon.h is. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>

#include "config.h"
#include "conmon.h"
#include "conmon_crilog.h"
#include "internal/conmon.pb-c.h"
#include "ipc.h"

#define CONMON_STRAYS 64

struct xstream;
struct attacher;

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
	struct state_wait *waits; /* State calls waiting for the exit */
	unsigned n_waits;
	int exit_status;
};

/* A State call held until the container exits or its wait ends. */
struct state_wait {
	struct state_wait *next;
	struct conmon *cm;
	struct ipc_call *call;
	struct event *timer;
};


/* ---- conmon.c, for conmon_stream.c ---- */
char *conmon_path_in(const char *dir, const char *name);
int32_t conmon_exit_code_of(int wstatus);
/* The last error the runtime logged in the JSON log file at path. */
void conmon_runtime_log_error(const char *path, char *out, size_t size);
/* Take the pty master the runtime sent on the console socket lfd. */
int conmon_console_receive(int lfd, int *master);
int conmon_read_pid_file(const char *path, pid_t *out);
/* Run fn on the loop soon (exits_ev): process_exits after reap_all. */
void conmon_exits_pending(struct conmon *cm);

/* ---- conmon_stream.c ---- */
void handle_exec_stream(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud);
void handle_attach_stream(struct ipc_call *call, const ProtobufCMessage *msg, int *fds, size_t nfds, void *ud);
/* reap_all reaped pid: true when it is a stream's (runtime or process). */
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
