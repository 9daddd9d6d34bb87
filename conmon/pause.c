/* pause: the process that holds a pod's namespaces. spawnd starts it in the
 * pod's new IPC, UTS and (for a shared pod PID namespace) PID namespaces;
 * it does nothing but wait. As PID 1 of a PID namespace it reaps the
 * zombies reparented to it; SIGTERM or SIGINT end it with status 0 (PID 1 of
 * a namespace gets only the signals it has handlers for). No dependencies
 * beyond libc, so it links statically as well.
 *
 * Before it waits it gives up everything a pod's processes could reach
 * through it (/proc/<pid>/root, ptrace with SYS_PTRACE in a shared PID
 * namespace): a mount namespace of its own whose root is an empty,
 * read-only tmpfs (the host's root detached), no open files but stdio, uid
 * and gid 65534 with no supplementary groups, every capability set empty,
 * not dumpable, no_new_privs, and a seccomp filter that kills it for any
 * call but the few its wait loop makes. It says "ok" on stdout when all of
 * that is done, or what failed (spawnd waits for that line), then points
 * stdout at stdin (/dev/null). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAUSE_UID 65534
#define PAUSE_GID 65534

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

#if defined(__x86_64__)
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_I386
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_PPC64LE
#elif defined(__s390x__)
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_S390X
#elif defined(__riscv) && __riscv_xlen == 64
#define PAUSE_AUDIT_ARCH AUDIT_ARCH_RISCV64
#else
#error "pause: no seccomp architecture for this target"
#endif

#define ALLOW(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

/* The wait loop's calls, exiting, and writing the report. Anything else
 * kills the process (logged by the kernel's audit as a seccomp kill). */
static int seccomp_confine(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PAUSE_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#if defined(__x86_64__)
		/* x32 calls share the arch value: refuse the x32 bit */
		BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#endif
		ALLOW(__NR_rt_sigsuspend),
		ALLOW(__NR_rt_sigreturn),
		ALLOW(__NR_wait4),
		ALLOW(__NR_restart_syscall),
		ALLOW(__NR_exit_group),
		ALLOW(__NR_exit),
		/* the report to spawnd, then stdout onto /dev/null */
		ALLOW(__NR_write),
#ifdef __NR_dup2
		ALLOW(__NR_dup2),
#endif
		ALLOW(__NR_dup3),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

/* An empty, read-only root in a mount namespace of its own; the host's
 * root is detached. /proc always exists where spawnd runs, so the new
 * root is mounted there first. */
static const char *isolate_mounts(void)
{
	if (unshare(CLONE_NEWNS) < 0)
		return "unshare(CLONE_NEWNS)";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return "making / private";
	if (mount("pause", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=2,mode=0555") <
	    0)
		return "mounting the empty root";
	if (chdir("/proc") < 0)
		return "chdir to the empty root";
	if (syscall(__NR_pivot_root, ".", ".") < 0)
		return "pivot_root";
	if (umount2(".", MNT_DETACH) < 0)
		return "detaching the host's root";
	if (chdir("/") < 0)
		return "chdir /";
	return NULL;
}

static const char *drop_privileges(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];

	for (int cap = 0; cap <= 63; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return "dropping the bounding set";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return "clearing the ambient set";
	if (setgroups(0, NULL) < 0)
		return "setgroups";
	if (setresgid(PAUSE_GID, PAUSE_GID, PAUSE_GID) < 0)
		return "setresgid";
	if (setresuid(PAUSE_UID, PAUSE_UID, PAUSE_UID) < 0)
		return "setresuid";
	memset(data, 0, sizeof(data));
	if (syscall(__NR_capset, &hdr, data) < 0)
		return "capset";
	/* After setresuid, which makes it dumpable again. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return "PR_SET_DUMPABLE";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return "PR_SET_NO_NEW_PRIVS";
	return NULL;
}

static void close_other_fds(void)
{
	if (syscall(__NR_close_range, 3, ~0U, 0) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

static int confine(void)
{
	const char *what;
	int saved;

	close_other_fds();
	what = isolate_mounts();
	if (!what)
		what = drop_privileges();
	if (!what && seccomp_confine() < 0)
		what = "seccomp filter";
	saved = errno;
	if (what)
		dprintf(STDOUT_FILENO, "pause: %s: %s\n", what, strerror(saved));
	else
		(void)!write(STDOUT_FILENO, "ok\n", 3);
	/* The report is sent; nothing more goes to spawnd's pipe. */
	dup2(STDIN_FILENO, STDOUT_FILENO);
	return what ? -1 : 0;
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

	if (confine() < 0)
		_exit(1);
	on_child(SIGCHLD); /* anything that was already waiting */
	while (!stop)
		sigsuspend(&wait_mask);
	_exit(0);
}
