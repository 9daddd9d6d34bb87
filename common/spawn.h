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
};

/* fork + exec; every other fd is closed in the child and signals reset.
 * On success stores the pid and returns 0; exec failure in the child is
 * reported back to the caller as the child's errno (negative). */
int spawn_process(const struct spawn_opts *o, pid_t *pid);
