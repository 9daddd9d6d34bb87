/* Finding, signalling and waiting for processes by (pid, start time), and
 * oom_score_adj with clamping; see spawnd_proc.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "spawnd_proc.h"
#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int proc_stat_parse(const char *text, char *state, uint64_t *start_time)
{
	const char *p;

	if (!text)
		return -EINVAL;
	p = strrchr(text, ')'); /* the command name may contain ')' */
	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	p += 2;
	if (state)
		*state = *p;
	/* Fields 3..22: skip 19 separators after the state. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EINVAL;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || (*end != ' ' && *end != '\n' && *end != '\0'))
		return -EINVAL;
	if (start_time)
		*start_time = v;
	return 0;
}

int proc_stat(pid_t pid, char *state, uint64_t *start_time)
{
	char path[64];
	_cleanup_free_ char *text = NULL;

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int r = read_file(path, 4096, &text, NULL);
	if (r == -ENOENT)
		return -ESRCH;
	if (r < 0)
		return r;
	return proc_stat_parse(text, state, start_time);
}

int proc_alive(pid_t pid, uint64_t start_time)
{
	char state;
	uint64_t st;

	if (proc_stat(pid, &state, &st) < 0)
		return 0;
	return st == start_time && state != 'Z' && state != 'X';
}

int proc_pidfd(pid_t pid, uint64_t start_time, int *pidfd)
{
	*pidfd = -1;
	if (pid <= 0)
		return -ESRCH;
	int fd = pidfd_open_pid(pid);
	if (fd < 0 && fd != -ENOSYS)
		return -ESRCH;
	/* The pid cannot be reused while fd is open: checking now is final. */
	if (!proc_alive(pid, start_time)) {
		if (fd >= 0)
			close(fd);
		return -ESRCH;
	}
	*pidfd = fd >= 0 ? fd : -1;
	return 0;
}

int proc_signal(pid_t pid, int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
	if (pidfd >= 0)
		return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
#endif
	return kill(pid, sig) < 0 ? -errno : 0;
}

static void reap(pid_t pid, uint64_t start_time, int pidfd)
{
	if (pidfd >= 0) {
		siginfo_t si;
		/* Exactly this process, and only if it is our child. */
		(void)syscall(SYS_waitid, P_PIDFD, pidfd, &si, WEXITED | WNOHANG, NULL);
		return;
	}
	char state;
	uint64_t st;
	if (proc_stat(pid, &state, &st) == 0 && st == start_time && state == 'Z')
		(void)waitpid(pid, NULL, WNOHANG);
}

int proc_wait_gone(pid_t pid, uint64_t start_time, int pidfd, int timeout_ms)
{
	int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;

	for (;;) {
		if (pidfd >= 0) {
			struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
			int64_t left = (deadline - now_monotonic_ns()) / 1000000;
			int n = poll(&pfd, 1, left > 0 ? (int)left : 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n > 0) {
				reap(pid, start_time, pidfd);
				return 0;
			}
			if (n < 0)
				return -errno;
			return -ETIMEDOUT;
		}
		reap(pid, start_time, -1);
		if (!proc_alive(pid, start_time))
			return 0;
		if (now_monotonic_ns() >= deadline)
			return -ETIMEDOUT;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

int proc_kill_wait(pid_t pid, uint64_t start_time, int timeout_ms)
{
	_cleanup_close_ int pidfd = -1;

	if (proc_pidfd(pid, start_time, &pidfd) < 0) {
		/* Already gone; a zombie child of ours is still reaped. */
		reap(pid, start_time, -1);
		return 0;
	}
	int r = proc_signal(pid, pidfd, SIGKILL);
	if (r < 0 && r != -ESRCH)
		return r;
	return proc_wait_gone(pid, start_time, pidfd, timeout_ms);
}

/* ---------------------------------------------------------------- oom_score_adj */

static int oom_write(const char *path, int v)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", v);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	ssize_t w = write(fd, buf, (size_t)len);
	if (w < 0)
		return -errno;
	return w == len ? 0 : -EIO;
}

static int oom_read(const char *path, int *v)
{
	_cleanup_free_ char *text = NULL;
	int r = read_file(path, 64, &text, NULL);
	if (r < 0)
		return r;
	char *end;
	errno = 0;
	long x = strtol(text, &end, 10);
	if (errno || end == text || x < -1000 || x > 1000)
		return -EINVAL;
	*v = (int)x;
	return 0;
}

static bool refused(int r)
{
	return r == -EACCES || r == -EPERM;
}

int oom_score_adj_apply(pid_t pid, int requested, int *applied, const char *req)
{
	char path[64];
	int cur, r;

	if (pid <= 0 || requested < -1000 || requested > 1000 || !applied)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
	r = oom_write(path, requested);
	if (r == 0) {
		*applied = requested;
		return 0;
	}
	if (!refused(r))
		return r;
	/* Anything at or above the current value is allowed (it is at least
	 * the inherited minimum); bisect for the lowest value above requested. */
	r = oom_read(path, &cur);
	if (r < 0)
		return r;
	if (cur <= requested)
		return -EACCES; /* refused although not lower: not a clamp we understand */
	int lo = requested, hi = cur; /* lo refused, hi accepted (and set) */
	while (hi - lo > 1) {
		int mid = lo + (hi - lo) / 2;
		r = oom_write(path, mid);
		if (r == 0)
			hi = mid;
		else if (refused(r))
			lo = mid;
		else
			return r;
	}
	/* The last accepted write was hi, or nothing was written and the value
	 * is still cur == hi. */
	r = oom_read(path, applied);
	if (r < 0)
		return r;
	log_warn(req, "oom_score_adj clamped to the lowest value the host allows", "pid=%d requested=%d applied=%d",
		 (int)pid, requested, *applied);
	return 0;
}
