/* Processes spawnd started and must find again, possibly after a restart
 * (they are not its children then): a process is named by its pid and its
 * start time (clock ticks after boot, field 22 of /proc/<pid>/stat), so a
 * reused pid is never taken for it; signals go through a pidfd that was
 * checked against that identity after it was opened. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* Parse the text of /proc/<pid>/stat: state (field 3) and start time
 * (field 22); the command name (field 2) may hold spaces and parentheses.
 * Either output may be NULL. -EINVAL if malformed. */
int proc_stat_parse(const char *text, char *state, uint64_t *start_time);
/* Read /proc/<pid>/stat; -ESRCH when there is no such process. */
int proc_stat(pid_t pid, char *state, uint64_t *start_time);
/* Whether pid is still the process that started at start_time and has not
 * exited (a zombie has). */
int proc_alive(pid_t pid, uint64_t start_time);

/* Pin the process: *pidfd is a pidfd for pid once it was verified to be the
 * process that started at start_time and is alive; -ESRCH if it is not (gone,
 * zombie, or a different process). Without pidfd support (kernel < 5.3)
 * *pidfd is -1 and the check is by /proc alone. */
int proc_pidfd(pid_t pid, uint64_t start_time, int *pidfd);
/* Send sig through pidfd (or kill() when pidfd is -1). */
int proc_signal(pid_t pid, int pidfd, int sig);
/* Wait up to timeout_ms for the process to exit and reap it if it is a child
 * of ours (a zombie of someone else's counts as gone). -ETIMEDOUT if it is
 * still there. Blocks. */
int proc_wait_gone(pid_t pid, uint64_t start_time, int pidfd, int timeout_ms);
/* SIGKILL the process if it is still (pid, start_time) and wait for it as
 * proc_wait_gone does. 0 also when it was already gone. */
int proc_kill_wait(pid_t pid, uint64_t start_time, int timeout_ms);

/* Set /proc/<pid>/oom_score_adj to requested (-1000..1000). When the host
 * refuses a value that low (EACCES/EPERM: no CAP_SYS_RESOURCE, so nothing
 * below the inherited oom_score_adj_min), the lowest value it does accept
 * is found by bisection between requested and the current value, applied,
 * and logged as a warning naming both (req: the request id for the log).
 * *applied gets what the process has now. */
int oom_score_adj_apply(pid_t pid, int requested, int *applied, const char *req);
