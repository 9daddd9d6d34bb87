/* The one way every component starts a child process. */
#pragma once

#include <sys/types.h>

struct spawn_opts {
	const char *const *argv;  /* argv[0] is the path to execute (no PATH search) */
	const char *const *envp;  /* NULL: a minimal PATH-only environment */
	const char *cwd;          /* NULL: unchanged */
	int stdin_fd;             /* -1: /dev/null */
	int stdout_fd;            /* -1: /dev/null */
	int stderr_fd;            /* -1: inherit the parent's stderr */
	const int *keep_fds;      /* further fds kept open in the child as fd 3, 4, ... in order */
	size_t n_keep_fds;
	int new_session;          /* setsid() in the child */

	/* For processes that hold a pod's namespaces (all zero: a plain fork).
	 * In the child, after setsid and before its fds are set up, in this
	 * order; a failure of any step is the spawn's errno. */
	int clone_flags;          /* CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWNS,
				   * CLONE_NEWCGROUP: the child starts in new namespaces of these kinds
				   * (with CLONE_NEWPID it is PID 1 of the new one; a new cgroup
				   * namespace is made after the cgroups below were joined); any
				   * other bit: -EINVAL */
	const char *const *cgroup_procs; /* NULL-terminated cgroup.procs files the child moves itself into */
	const int *setns_fds;     /* namespace fds (e.g. <run_dir>/netns/<id>) the child then joins */
	size_t n_setns_fds;
	const char *hostname;     /* sethostname() in the child; only with CLONE_NEWUTS (else -EINVAL) */
};

/* fork (clone when clone_flags asks for namespaces) + exec; every other fd
 * is closed in the child and signals reset.
 * On success stores the pid and returns 0; exec failure in the child is
 * reported back to the caller as the child's errno (negative). */
int spawn_process(const struct spawn_opts *o, pid_t *pid);
