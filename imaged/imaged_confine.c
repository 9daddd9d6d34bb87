/* imaged's and imaged-fetch's seccomp allowlists; see imaged_confine.h. */
#include <stddef.h>

#include "imaged_confine.h"
#include "macro.h"

const char *const fetch_syscalls[] = {
	/* memory, threads (one per channel, curl's resolver), signals, time */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "futex", "set_robust_list", "get_robust_list",
	"rseq", "set_tid_address", "clone", "clone3", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
	"sigaltstack", "tgkill", "restart_syscall", "exit", "exit_group", "sched_yield", "sched_getaffinity",
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "getrandom",
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
	"uname", "prlimit64", "getrlimit", "sysinfo", "getcpu", "arch_prctl",
	/* the channels to imaged; HTTP and TLS (libcurl) on the sockets imaged
	 * connects for it (FetchConnect); curl's wake-up socket pair */
	"socketpair", "getsockopt", "setsockopt", "getsockname", "getpeername", "recvmsg", "sendmsg", "recvfrom",
	"sendto", "shutdown", "poll", "ppoll", "select", "pselect6", "pipe2", "eventfd2",
	/* files: what the view holds (CAs, resolver), and the layer, written
	 * only below the directory fd imaged hands over */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "openat", "openat2", "fstat",
	"newfstatat", "statx", "statfs", "fstatfs", "lseek", "fcntl", "ioctl", "dup", "dup3", "getdents64",
	"readlinkat", "mkdirat", "unlinkat", "renameat2", "linkat", "symlinkat", "mknodat", "fchmod", "fchmodat",
	"fchmodat2", "fchown", "fchownat", "utimensat", "fsetxattr", "lsetxattr", "setxattrat", "fgetxattr",
	"flistxattr", "umask", "fsync", "sync_file_range", "ftruncate", "fallocate", "faccessat", "faccessat2",
	NULL,
};

/* Only through a proxy, which curl resolves and connects to itself. */
const char *const fetch_net_syscalls[] = {
	"socket", "connect", "bind", "recvmmsg", "sendmmsg", NULL,
};

/* imaged's own, beyond the base and fetch_syscalls. */
static const char *const imaged_own[] = {
	/* rootfs mounts (overlay) and their removal */
	"mount", "umount2",
	/* the store: xattrs of layers and copied rootfs trees, device nodes,
	 * times, modes of symlinks (rootfs_mode = copy) */
	"fgetxattr", "lgetxattr", "getxattr", "flistxattr", "llistxattr", "listxattr", "getxattrat", "listxattrat",
	"lsetxattr", "fremovexattr", "copy_file_range", "sendfile",
	/* starting imaged-fetch (common/spawn.c's child), which then makes its
	 * own mount namespace and view and confines itself */
	"execve", "execveat", "setsid", "unshare", "pivot_root", "mount_setattr", "capget", "capset", "seccomp",
	/* FetchConnect: resolving (glibc's resolver) and connecting for it */
	"socket", "connect", "bind", "recvmmsg", "sendmmsg",
	NULL,
};

const char *const *imaged_syscalls(void)
{
	static const char *all[256];
	size_t n = 0;

	if (all[0])
		return all;
	for (size_t i = 0; imaged_own[i]; i++)
		all[n++] = imaged_own[i];
	for (size_t i = 0; fetch_syscalls[i] && n + 1 < ARRAY_SIZE(all); i++)
		all[n++] = fetch_syscalls[i];
	all[n] = NULL;
	return all;
}
