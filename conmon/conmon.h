/* conmon: the per-container monitor. This header is its interface for the
 * process that starts it (spawnd) and for criod, which reads its files.
 *
 * ---- Command line ----
 *
 *   conmon --id <64 hex> --bundle <dir> --runtime <path> --runtime-root <dir>
 *          --log-path <file> --log-root <dir> --state-dir <dir> --socket <path> --allowed-uid <uid>
 *          [--tty] [--stdin] [--stdin-once] [--sync-fd <n>] [--config <criod.conf>]
 *          [--log-level <level>] [--seccomp-log]
 *
 *   --id            the container id: exactly 64 lowercase hex characters; it
 *                   is the runtime's container id too
 *   --bundle        absolute path of the OCI bundle (holds config.json); conmon
 *                   writes <bundle>/pid (the runtime's --pid-file) and, during
 *                   an Update, a temporary <bundle>/.update-<random>.json
 *   --runtime       absolute path of the OCI runtime binary (/usr/sbin/runc)
 *   --runtime-root  absolute path given to the runtime as --root
 *   --log-path      absolute path of the container's CRI log file, beneath
 *                   --log-root; opened O_APPEND, created mode 0640, its
 *                   directories made (0755) when missing
 *   --log-root      the directory (one of [policy] log_roots, as spawnd
 *                   checked it) that conmon opens once; the log is opened
 *                   beneath it at start and at every ReopenLog with
 *                   openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and
 *                   only a regular file is ever opened for writing
 *   --state-dir     absolute path of a directory conmon owns (made 0755 when
 *                   missing; it must be owned by root and writable by nobody
 *                   else, since the runtime writes there as root): the durable
 *                   state files below, readable by criod (files 0644)
 *   --socket        absolute path (at most 107 bytes) of the control socket;
 *                   created mode 0666 like the root daemons' sockets (every
 *                   peer is checked with SO_PEERCRED); a live socket there
 *                   makes conmon fail, a stale one is replaced
 *   --allowed-uid   the uid besides root that may call the control socket
 *                   (criod's); every peer is checked with SO_PEERCRED
 *   --tty           the container has a terminal (config.json process.terminal
 *                   must be true): conmon gives the runtime a console socket
 *                   <state-dir>/console.sock and reads the pty master; both
 *                   streams are logged as "stdout"
 *   --stdin         keep the container's stdin open (a pipe, or the pty
 *                   master with --tty) for a later attach; without it stdin
 *                   is /dev/null
 *   --stdin-once    with --stdin: the container's stdin is closed when the
 *                   first attacher that had it ends its stdin or its session
 *   --sync-fd       an inherited fd (a pipe's write end) to report the result
 *                   of the create on (below); without it the report goes to
 *                   stdout, which is then pointed at /dev/null
 *   --config        criod.conf; conmon only takes [log] level from it
 *   --log-level     debug, info, warn, error (overrides the configuration)
 *   --seccomp-log   spawnd's --seccomp-log, passed on: calls outside the
 *                   filter are let through and logged by the kernel
 *
 * Right after setting up (its log, socket and state), conmon confines
 * itself (conmon_confine.c): the bounding set spawnd left it and the
 * filter spawnd has, again.
 *
 * conmon's own log (the shared one-line format, component "conmon") goes to
 * its stderr. It does not daemonize: the starter detaches it (setsid, double
 * fork) and gives it /dev/null or a log file for stdin/stdout/stderr.
 *
 * ---- Start-up and the sync fd ----
 *
 * conmon writes <state-dir>/conmon.pid, listens on --socket, becomes a child
 * subreaper, opens the log and writes <state-dir>/state.pb (CREATED, pid 0).
 * Then it writes exactly one line to the sync fd and closes it:
 *   "ok 0\n"             the container is created; the control socket already
 *                        accepts calls. The runtime has nothing of it yet:
 *                        Start runs it (below). (A positive pid here, from
 *                        monitors that ran "create" at once, is the init's.)
 *   "error <message>\n"  nothing was created (or what was is gone again); the
 *                        message is one line of printable text (at most
 *                        CONMON_SYNC_MAX bytes in all); conmon then exits 1
 *
 * Start runs
 *   <runtime> --root <runtime-root> --log <state-dir>/runtime.log --log-format json
 *             run --detach --bundle <bundle> --pid-file <bundle>/pid [--console-socket <state-dir>/console.sock] <id>
 * waits for it (at most CONMON_CREATE_TIMEOUT_MS), reads the pid file and
 * records RUNNING: one runtime start-up per container start instead of two
 * (create, then start). Errors of the runtime (a bad mount, a missing
 * executable) are therefore Start's, as with containerd; UpdateResources
 * before Start is refused (FAILED_PRECONDITION): the cgroup does not exist.
 * A starter that reads EOF without a line (conmon died, or a bad command
 * line: conmon then exits 2 after saying why on stderr) must treat it as an
 * error. conmon exits 0 only after Delete.
 *
 * ---- The state directory ----
 *
 *   conmon.pid    "<pid>\n", conmon's own pid (written atomically at start)
 *   state.pb      a criod.internal.ContainerStateResponse (proto/internal/
 *                 conmon.proto), protobuf-encoded, replaced atomically at
 *                 every transition: at start-up (CREATED, created_at; with
 *                 write_file_boot, no fsync), after a successful Start
 *                 (RUNNING, pid, started_at) and when the init process has
 *                 been reaped (EXITED, finished_at, exit_code, oom_killed),
 *                 these two with write_file_atomic (temp file, fsync,
 *                 rename, fsync of the directory). So after a kill -9 the
 *                 file says the last state conmon knew, and after a host
 *                 crash the last durable one or nothing (criod, started in
 *                 another boot, records every container not EXITED here as
 *                 exited 255).
 *                 exit_code: the exit status, or 128+n after signal n.
 *   runtime.log   the runtime's own log of the run (JSON lines)
 *   console.sock  with --tty, the console socket during the run
 *   exec-<n>.pid  the runtime's --pid-file of a running Exec
 *   exec-stream-<n>.pid, exec-stream-<n>.log
 *                 the runtime's --pid-file and --log of an ExecStream's
 *                 exec --detach (a tty's console socket is in the abstract
 *                 namespace: "@criod-console-<id>-<n>-<random>")
 *
 * ---- Lifetime ----
 *
 * conmon runs until Delete (then exits 0) or SIGTERM/SIGINT (exits 0 without
 * touching the container). Once the init has exited, its exit is durably in
 * state.pb and every State waiting for it is answered, conmon runs
 * `runtime delete --force <id>` itself, while it goes on serving (as
 * containerd deletes the runc container when the task exits): from then on
 * the runtime has nothing of the container, and a Delete has no runtime
 * command left to run. It exits only once that delete has ended (Delete and
 * SIGTERM wait for it), so the runtime never runs on alone. The container never depends on conmon: if conmon
 * dies (even SIGKILL) the container keeps running (its init is reparented to
 * the next subreaper or PID 1), but nobody logs its output any more (the
 * pipes' reader is gone, so a container that keeps writing blocks) and no
 * exit status is recorded. criod then sees the socket refuse connections,
 * state.pb still saying CREATED/RUNNING and conmon.pid naming a dead
 * process, and must ask the runtime (`runc state <id>`) and report the
 * container as EXITED (exit status unknown) or UNKNOWN; it cleans up with
 * `runc delete --force <id>` (spawnd's RemoveContainer, whenever the runtime
 * still has the container: conmon died before, or during, its delete at the
 * exit, or that delete failed).
 *
 * ---- Control socket ----
 *
 * The methods of proto/internal/conmon.proto, numbered in common/api.h
 * (enum conmon_method), framed as every internal RPC (common/ipc.h):
 *   Ping        PingResponse{component "conmon", version, pid, uid}
 *   State       from memory (the same content as state.pb)
 *   Start       `runtime start <id>`; only from CREATED (else FAILED_PRECONDITION)
 *   Kill        `runtime kill [--all] <id> <signal>`, signal 1..64; if the
 *               runtime fails while conmon has not reaped the init yet, kill(2)
 *               on the init pid; OK and no action once EXITED
 *   Exec        `runtime exec --pid-file <state-dir>/exec-<n>.pid <id> <cmd...>`
 *               in its own session, stdin /dev/null, asynchronous; stdout and
 *               stderr captured up to CONMON_EXEC_MAX_OUTPUT bytes each and
 *               CONMON_EXEC_MAX_TOTAL together (the rest is read and dropped).
 *               exit_code is the command's status (128+n after signal n).
 *               When timeout_ms passes: SIGKILL to the command (pid from the
 *               pid file) and its process group (runc makes it a session
 *               leader), to the runtime's process group, and, once the
 *               runtime is reaped, to any child of conmon it does not track
 *               (a command whose runtime died becomes conmon's child); then
 *               the reply has timed_out = true, exit_code = -1
 *               (CONMON_EXEC_TIMED_OUT_CODE) and whatever output came before.
 *               A command that double-forks into yet another session inside
 *               the container is not found. Only while RUNNING (else
 *               FAILED_PRECONDITION); at most CONMON_EXEC_MAX_RUNNING at once.
 *   ReopenLog   reopen --log-path (after kubelet renamed the file)
 *   Update      `runtime update --resources <bundle>/.update-<random>.json <id>`
 *   Delete      kill running execs; `runtime delete --force <id>` unless the
 *               delete at the exit (Lifetime) did it: still running, the reply
 *               comes at once and conmon exits when it ends; failed, it is run
 *               again here and its failure fails Delete (as does that of a
 *               running container's). Remove the socket, reply, exit 0
 *   ExecStream  `runtime exec --detach [--tty --console-socket @criod-console-...]
 *               --pid-file <state-dir>/exec-stream-<n>.pid <id> <cmd...>`: the process
 *               becomes conmon's child; the reply carries criod's ends of
 *               its stdio (pipes or the pty master) and a ctl socket
 *               (common/stream_ctl.h): resize is TIOCSWINSZ on the master;
 *               STREAM_CTL_EXIT once the process is reaped and nothing holds
 *               its output; ctl closed by criod first: SIGKILL to the process
 *               and its group. At most CONMON_EXEC_STREAMS_MAX at once.
 *   AttachStream the container's own stdio: its output fanned out to each
 *               attacher's pipes as it is logged (an attacher with
 *               CONMON_ATTACH_BUFFER bytes unread is dropped, never waited
 *               for), stdin relayed to the container's (--stdin), resize on
 *               a --tty container's terminal. At most CONMON_ATTACH_MAX.
 *               Both in conmon_stream.c; proto/internal/conmon.proto says
 *               the order of the fds.
 * A runtime command that fails is INTERNAL with its last line of error
 * output (runc's msg="...") as the message; one that runs into its timeout
 * (CONMON_RUNTIME_TIMEOUT_MS, then SIGKILL) is DEADLINE_EXCEEDED; calls cut
 * short by Delete or SIGTERM are ABORTED. Start, Kill, Update and Delete run
 * the runtime to completion inside the handler, so other calls wait for
 * them (they take milliseconds); Exec and the delete at the exit never block
 * the loop. Kill, Update, Exec, ExecStream and AttachStream of an exited
 * container never reach the runtime (OK, or FAILED_PRECONDITION), so they
 * answer the same whether its delete has run or not. */
#pragma once

#define CONMON_PID_FILE "conmon.pid"
#define CONMON_STATE_FILE "state.pb"
#define CONMON_RUNTIME_LOG "runtime.log"
#define CONMON_CONSOLE_SOCKET "console.sock"

#define CONMON_SYNC_OK "ok "
#define CONMON_SYNC_ERROR "error "
#define CONMON_SYNC_MAX 4096

#define CONMON_CREATE_TIMEOUT_MS 240000 /* runtime create */
#define CONMON_RUNTIME_TIMEOUT_MS 60000 /* runtime start, kill, update, delete */
#define CONMON_EXEC_MAX_OUTPUT (16u << 20)
#define CONMON_EXEC_MAX_TOTAL (16u << 20) /* the reply must fit one internal RPC frame */
#define CONMON_EXEC_MAX_RUNNING 64
#define CONMON_EXEC_TIMED_OUT_CODE (-1)
#define CONMON_EXEC_STREAMS_MAX 32      /* ExecStream sessions at once */
#define CONMON_ATTACH_MAX 16            /* AttachStream sessions at once */
#define CONMON_ATTACH_BUFFER (1u << 20) /* an attacher's unread output before it is dropped */
