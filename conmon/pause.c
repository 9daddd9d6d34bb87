/* pause: the process that holds a pod's namespaces. spawnd starts it in the
 * pod's new IPC, UTS and (for a shared pod PID namespace) PID namespaces;
 * it does nothing but wait. As PID 1 of a PID namespace it reaps the
 * zombies reparented to it; SIGTERM or SIGINT end it with status 0 (PID 1 of
 * a namespace gets only the signals it has handlers for). No dependencies
 * beyond libc, so it links statically as well. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_child(int sig)
{
	int saved = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t block, wait_mask;

	if (argc > 1) {
		if (strcmp(argv[1], "--version") == 0) {
			printf("pause %s\n", PACKAGE_VERSION);
			return 0;
		}
		fprintf(stderr, "usage: %s (started by spawnd; takes no arguments)\n", argv[0]);
		return 2;
	}

	/* Handlers run only inside sigsuspend: block them until then. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &block, &wait_mask) < 0)
		return 1;
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);
	sigdelset(&wait_mask, SIGCHLD);

	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = on_stop;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
		return 1;
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		return 1;

	on_child(SIGCHLD); /* anything that was already waiting */
	while (!stop)
		sigsuspend(&wait_mask);
	return 0;
}
