/* fork (or clone into new namespaces) + execve with a clean child: signal
 * mask and dispositions reset, namespaces and cgroups joined, stdio set up,
 * the requested fds moved to 3, 4, ... and everything else closed. An error
 * in the child before or at execve is sent back through a close-on-exec
 * pipe, so the caller learns about a missing binary synchronously. The child
 * runs only async-signal-safe code. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "spawn.h"

#define SPAWN_MAX_KEEP_FDS 1024
#define SPAWN_CLONE_FLAGS (CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWCGROUP)

static const char *const default_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	NULL,
};

#ifdef CRIOD_SANITIZERS
/* A sanitizer build passes the sanitizers' settings on to the processes it
 * starts (conmon above all, whose stderr is a file nobody reads), so that
 * their reports land where the test run looks (log_path) and fail it. */
static const char *san_env[8];
static pthread_once_t san_once = PTHREAD_ONCE_INIT;

static void san_env_init(void)
{
	static const char *const names[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
	size_t n = 0;

	san_env[n++] = default_env[0];
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const char *v = getenv(names[i]);
		char *kv = NULL;
		if (v && asprintf(&kv, "%s=%s", names[i], v) > 0)
			san_env[n++] = kv; /* kept for the life of the process */
	}
	san_env[n] = NULL;
}

static const char *const *child_default_env(void)
{
	pthread_once(&san_once, san_env_init);
	return san_env;
}
#else
static const char *const *child_default_env(void) { return default_env; }
#endif

static int close_from(unsigned int first, unsigned int last)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, first, last, 0) == 0)
		return 0;
#endif
	{
		struct rlimit rl;
		unsigned long max = 1UL << 20;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < max)
			max = rl.rlim_max;
		for (unsigned long fd = first; fd <= last && fd < max; fd++)
			close((int)fd);
	}
	return 0;
}

_noreturn_ static void child_fail(int errfd, int err)
{
	ssize_t _unused_ w;

	do
		w = write(errfd, &err, sizeof(err));
	while (w < 0 && errno == EINTR);
	_exit(127);
}

/* src[i] becomes fd i for i in 0..n-1; src[i] < 0 means "leave fd i alone". */
_noreturn_ static void child(const struct spawn_opts *o, const char *const *envp, int errfd,
			      int devnull)
{
	sigset_t mask;
	int nfds = 3 + (int)o->n_keep_fds;
	int src[3 + SPAWN_MAX_KEEP_FDS];
	int high = nfds; /* every temporary lives at or above this */

	/* The raw system call, not sigaction(3): glibc refuses to touch the
	 * signals it reserves (32, 33), and an ignore inherited on those would
	 * otherwise pass on to the OCI runtime and the container. */
	struct {
		void (*handler)(int);
		unsigned long flags;
		void (*restorer)(void);
		uint64_t mask;
	} ksa = {.handler = SIG_DFL};
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
	sigemptyset(&mask);
	if (sigprocmask(SIG_SETMASK, &mask, NULL) < 0)
		child_fail(errfd, errno);

	if (o->new_session && setsid() < 0)
		child_fail(errfd, errno);

	/* Namespaces and cgroups; clone() already made the new namespaces
	 * (all but the cgroup one, which must be rooted in the joined cgroup). */
	for (const char *const *cg = o->cgroup_procs; cg && *cg; cg++) {
		int fd = open(*cg, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			child_fail(errfd, errno);
		if (write(fd, "0", 1) != 1)
			child_fail(errfd, errno ? errno : EIO);
		close(fd);
	}
	if ((o->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) < 0)
		child_fail(errfd, errno);
	for (size_t i = 0; i < o->n_setns_fds; i++)
		if (setns(o->setns_fds[i], 0) < 0)
			child_fail(errfd, errno);
	if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
		child_fail(errfd, errno);

	/* Move the error pipe out of the way of every target fd. */
	if (errfd < high) {
		int nfd = fcntl(errfd, F_DUPFD_CLOEXEC, high);
		if (nfd < 0)
			child_fail(errfd, errno);
		close(errfd); /* it might otherwise survive as an "inherited" fd 2 */
		errfd = nfd;
	}

	src[0] = o->stdin_fd >= 0 ? o->stdin_fd : devnull;
	src[1] = o->stdout_fd >= 0 ? o->stdout_fd : devnull;
	src[2] = o->stderr_fd; /* -1: inherit */
	for (size_t i = 0; i < o->n_keep_fds; i++)
		src[3 + i] = o->keep_fds[i];

	/* Two phases so that overlapping sources and targets (keep_fds = {4, 3},
	 * stdout_fd = 0, ...) cannot clobber each other: first copy every
	 * source above all targets, then put each copy in place. */
	for (int i = 0; i < nfds; i++) {
		if (src[i] < 0)
			continue;
		src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, high);
		if (src[i] < 0)
			child_fail(errfd, errno);
	}
	for (int i = 0; i < nfds; i++) {
		if (src[i] < 0)
			continue;
		if (dup2(src[i], i) < 0) /* the new fd i is not close-on-exec */
			child_fail(errfd, errno);
	}
	if (src[2] < 0) {
		/* Inherited stderr: make sure it survives exec. */
		int fl = fcntl(2, F_GETFD);
		if (fl >= 0 && (fl & FD_CLOEXEC))
			fcntl(2, F_SETFD, fl & ~FD_CLOEXEC);
	}

	/* Everything from `high` up goes, except the error pipe (which is
	 * close-on-exec and so goes at exec). */
	if (errfd > high)
		close_from((unsigned)high, (unsigned)errfd - 1);
	close_from((unsigned)errfd + 1, ~0U);

	if (o->cwd && chdir(o->cwd) < 0)
		child_fail(errfd, errno);

	execve(o->argv[0], (char *const *)o->argv, (char *const *)envp);
	child_fail(errfd, errno);
}

int spawn_process(const struct spawn_opts *o, pid_t *pid)
{
	_cleanup_close_ int devnull = -1;
	int pfd[2];
	sigset_t all, old;
	pid_t p;
	int err = 0, r;
	ssize_t n;

	if (!o || !pid || !o->argv || !o->argv[0] || !o->argv[0][0])
		return -EINVAL;
	if (o->n_keep_fds > SPAWN_MAX_KEEP_FDS || (o->n_keep_fds > 0 && !o->keep_fds))
		return -EINVAL;
	if (o->stdin_fd < -1 || o->stdout_fd < -1 || o->stderr_fd < -1)
		return -EBADF;
	for (size_t i = 0; i < o->n_keep_fds; i++)
		if (o->keep_fds[i] < 0)
			return -EBADF;
	if (o->clone_flags & ~SPAWN_CLONE_FLAGS)
		return -EINVAL;
	if (o->hostname && !(o->clone_flags & CLONE_NEWUTS))
		return -EINVAL; /* never the host's hostname */
	if (o->n_setns_fds > SPAWN_MAX_KEEP_FDS || (o->n_setns_fds > 0 && !o->setns_fds))
		return -EINVAL;
	for (size_t i = 0; i < o->n_setns_fds; i++)
		if (o->setns_fds[i] < 0)
			return -EBADF;

	const char *const *env = child_default_env(); /* before fork: it may allocate once */

	if (o->stdin_fd < 0 || o->stdout_fd < 0) {
		devnull = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
		if (devnull < 0)
			return -errno;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;

	/* No signal handler of ours may run in the child before it resets
	 * the dispositions. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (o->clone_flags & ~CLONE_NEWCGROUP)
		/* fork() with namespaces: the raw system call with no new stack
		 * returns twice like fork. The child runs only system calls
		 * until execve, so glibc's fork bookkeeping is not needed. */
		p = (pid_t)syscall(SYS_clone, (unsigned long)((o->clone_flags & ~CLONE_NEWCGROUP) | SIGCHLD),
				   NULL, NULL, NULL, NULL);
	else
		p = fork();
	if (p == 0) {
		close(pfd[0]);
		child(o, o->envp ? o->envp : env, pfd[1], devnull);
	}
	r = p < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(pfd[1]);
	if (r < 0) {
		close(pfd[0]);
		return r;
	}

	/* EOF: execve succeeded and closed the pipe. An int: the child's errno. */
	do
		n = read(pfd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);

	if (n == (ssize_t)sizeof(err)) {
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		return err > 0 ? -err : -EIO;
	}
	if (n != 0) {
		/* Cannot tell what happened: do not leave a half-started child. */
		kill(p, SIGKILL);
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
		return n < 0 ? -EIO : -EPROTO;
	}
	*pid = p;
	return 0;
}
