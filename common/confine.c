/* Capabilities, no_new_privs and a seccomp allowlist, applied once at
 * start; see confine.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "caps.h"
#include "confine.h"
#include "log.h"
#include "macro.h"
#include "util.h"

bool confine_log_only;
const char *confine_probe;

/* glibc, libevent, protobuf-c and common/ (log, ipc, config, spawn's parent
 * side, workq): what every daemon does whatever its requests are. */
const char *const confine_base_syscalls[] = {
	/* memory */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise",
	/* threads, signals, time */
	"futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "clone", "clone3",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigtimedwait", "tgkill",
	"restart_syscall", "exit", "exit_group", "sched_yield", "sched_getaffinity", "clock_gettime",
	"clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "timerfd_create",
	"timerfd_settime", "timerfd_gettime",
	/* identity */
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
	"getgroups", "uname", "getrandom", "prlimit64", "getrlimit", "sysinfo", "getcpu",
	/* event loop and sockets (AF_UNIX ipc) */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "pipe2",
	"poll", "ppoll", "select", "pselect6", "socket", "socketpair", "connect", "bind", "listen",
	"accept4", "accept", "recvmsg", "sendmsg", "recvfrom", "sendto", "getsockopt", "setsockopt",
	"getsockname", "getpeername", "shutdown",
	/* files */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "close_range", "openat",
	"openat2", "open", "fstat", "newfstatat", "stat", "lstat", "statx", "statfs", "fstatfs", "lseek",
	"fcntl", "ioctl", "dup", "dup2", "dup3", "getdents64", "readlink", "readlinkat", "access",
	"faccessat", "faccessat2", "mkdirat", "mkdir", "unlinkat", "unlink", "rmdir", "renameat",
	"renameat2", "rename", "fsync", "fdatasync", "syncfs", "ftruncate", "fchmod", "fchmodat", "fchown",
	"fchownat", "linkat", "symlinkat", "umask", "fadvise64", "sync_file_range", "getcwd", "chdir",
	"fchdir", "flock", "memfd_create",
	/* children and pids */
	"wait4", "waitid", "kill", "pidfd_open", "pidfd_send_signal", "prctl",
	NULL,
};

#if defined(CRIOD_SANITIZERS) || defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer and LeakSanitizer: the leak check at exit stops the
 * world with ptrace from a clone()d tracer (prctl, wait4) and lists
 * /proc/self/task (getdents); the sanitizers open files with open(2) (for
 * imaged-fetch, whose own list has none of these). */
static const char *const sanitizer_syscalls[] = {
	"ptrace", "sched_getparam", "sched_setaffinity", "personality", "getrusage", "mincore", "prctl", "wait4",
	"getdents", "open", NULL,
};
#else
static const char *const sanitizer_syscalls[] = { NULL };
#endif

/* ---- a refused call: one log line, and the call fails with EPERM ---- */

/* Calls newer than the libseccomp we may build with (2.5.4 knows neither):
 * numbered alike on every architecture (the unified table, 424 on). */
static const struct {
	const char *name;
	int nr;
} newer_syscalls[] = {
	{"fchmodat2", 452}, {"setxattrat", 463}, {"getxattrat", 464}, {"listxattrat", 465}, {"removexattrat", 466},
};

/* Names by number, resolved before the filter is loaded: the handler may
 * not allocate. */
#define NAMED_SYSCALLS 512
static char *syscall_names[NAMED_SYSCALLS];

static void names_resolve(void)
{
	for (int nr = 0; nr < NAMED_SYSCALLS; nr++)
		if (!syscall_names[nr])
			syscall_names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	for (size_t k = 0; k < ARRAY_SIZE(newer_syscalls); k++)
		if (!syscall_names[newer_syscalls[k].nr])
			syscall_names[newer_syscalls[k].nr] = (char *)newer_syscalls[k].name;
}

static void on_sigsys(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	int saved = errno;

	(void)sig;
	int nr = si->si_syscall;

	log_signal_safe(LOG_LEVEL_ERROR, "seccomp refused a system call", "syscall",
			nr >= 0 && nr < NAMED_SYSCALLS ? syscall_names[nr] : NULL, "nr", nr);
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
#error "confine: set the return register of a refused call for this architecture"
#endif
	errno = saved;
}

/* ---- capabilities ---- */

static int caps_limit(uint64_t keep, uint64_t bound)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	int r;

	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	/* The bounding set first: dropping from it needs CAP_SETPCAP, which
	 * the capset below may take away. */
	for (int cap = 0; cap <= 63; cap++) {
		if ((keep | bound) & CAPBIT(cap))
			continue;
		if (prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0) < 0)
			break; /* beyond what this kernel knows */
		if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0, 0, 0) < 0) {
			r = -errno;
			if (r == -EPERM)
				continue; /* without CAP_SETPCAP (criod): cleared below, no_new_privs keeps it so */
			return r;
		}
	}
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	for (int i = 0; i < 2; i++) {
		uint32_t k = (uint32_t)(keep >> (32 * i));
		data[i].permitted &= k;
		data[i].effective &= k;
		data[i].inheritable = 0;
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

/* What the process holds after the cut: its effective and bounding
 * sets, as the kernel reports them. */
static void caps_held(uint64_t *eff, uint64_t *bnd)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	*eff = 0;
	*bnd = 0;
	if (syscall(SYS_capget, &hdr, data) == 0)
		*eff = (uint64_t)data[0].effective | (uint64_t)data[1].effective << 32;
	for (int cap = 0; cap <= 63; cap++) {
		int r = prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0);
		if (r < 0)
			break;
		if (r)
			*bnd |= CAPBIT(cap);
	}
}

/* ---- seccomp ---- */

static int add_list_as(scmp_filter_ctx ctx, const char *const *names, uint32_t action)
{
	for (size_t i = 0; names && names[i]; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		bool newer = false;
		for (size_t k = 0; nr == __NR_SCMP_ERROR && k < ARRAY_SIZE(newer_syscalls); k++)
			if (strcmp(names[i], newer_syscalls[k].name) == 0) {
				nr = newer_syscalls[k].nr;
				newer = true;
			}
		if (nr == __NR_SCMP_ERROR)
			continue; /* not a call of this architecture */
		int r = seccomp_rule_add(ctx, action, nr, 0);
		if (r < 0 && r != -EEXIST && !newer)
			return r;
	}
	return 0;
}

static int add_list(scmp_filter_ctx ctx, const char *const *names) { return add_list_as(ctx, names, SCMP_ACT_ALLOW); }

/* A filter that passes on to containers covers the native architecture's
 * 32-bit ABIs too: a container's i386 (arm) binaries, which its own
 * profile allows, would otherwise be killed as of a foreign architecture. */
static int compat_arches_add(scmp_filter_ctx ctx)
{
#if defined(__x86_64__)
	static const uint32_t arches[] = {SCMP_ARCH_X86, SCMP_ARCH_X32};
#elif defined(__aarch64__)
	static const uint32_t arches[] = {SCMP_ARCH_ARM};
#else
	static const uint32_t arches[] = {SCMP_ARCH_NATIVE};
#endif
	for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]); i++) {
		int r = seccomp_arch_add(ctx, arches[i]);
		if (r < 0 && r != -EEXIST)
			return r;
	}
	return 0;
}

/* The filter's settings, before its rules: the attributes filter_load
 * sets, as filter_key names them. */
struct filter_attrs {
	uint32_t deny;
	bool log; /* SCMP_FLTATR_CTL_LOG: SECCOMP_FILTER_FLAG_LOG */
	bool compat;
};

static struct filter_attrs filter_attrs_of(const struct confine_policy *p)
{
	struct filter_attrs a = {
		.deny = confine_log_only ? SCMP_ACT_LOG
			: p->action == CONFINE_DENY_LOGGED ? SCMP_ACT_TRAP
							    : SCMP_ACT_ERRNO(ENOSYS),
		/* The kernel logs every action but allow; a filter with no-ops
		 * (whose ERRNO(0) it would log on every use) leaves refusals to
		 * the SIGSYS handler's log line (CONFINE_DENY_LOGGED). */
		.log = !(p->noops && p->action == CONFINE_DENY_LOGGED),
		.compat = p->action == CONFINE_DENY_INHERITED,
	};
	return a;
}

static int filter_build(const struct confine_policy *p, scmp_filter_ctx *out)
{
	struct filter_attrs a = filter_attrs_of(p);
	scmp_filter_ctx ctx = seccomp_init(a.deny);
	int r;

	if (!ctx)
		return -ENOMEM;
	/* no_new_privs is the policy's choice, made above, not libseccomp's. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, a.log ? 1 : 0);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r >= 0 && a.compat)
		r = compat_arches_add(ctx);
	if (r >= 0)
		r = add_list(ctx, p->syscalls);
	if (r >= 0)
		r = add_list(ctx, p->syscalls2);
	if (r >= 0)
		r = add_list(ctx, sanitizer_syscalls);
	if (r >= 0)
		r = add_list_as(ctx, p->noops, SCMP_ACT_ERRNO(0));
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
	*out = ctx;
	return 0;
}

/* ---- compiled filters kept for the next process of the same policy ---- */

/* libseccomp takes ~20 ms of CPU to add conmon's ~400 rules for three
 * ABIs and compile them, at every conmon's start. The program it makes is
 * a function of the policy's settings and lists, of libseccomp's version
 * and of the kernel's seccomp API level, and nothing else; so it is kept
 * in p->filter_cache, a root-only directory, as <hash>.bpf: the key (that
 * text in full, so a hash collision can only miss) then a NUL then the
 * BPF instructions, exactly as seccomp_export_bpf wrote them. A process
 * of the same policy loads those with the flags seccomp_load would use
 * (TSYNC, LOG as the attribute says). Anything unexpected (owner, mode,
 * size, key) is a miss: the filter is compiled and the file replaced. */
#define FILTER_KEY_VERSION 1
#define FILTER_MAX_BYTES (BPF_MAXINSNS * sizeof(struct sock_filter))

static void key_list(FILE *f, const char *what, const char *const *names)
{
	fprintf(f, "%s\n", what);
	for (size_t i = 0; names && names[i]; i++)
		fprintf(f, "%s\n", names[i]);
}

/* The key text (malloc'd), NUL-terminated, and its length without the NUL. */
static int filter_key(const struct confine_policy *p, char **out, size_t *outlen)
{
	struct filter_attrs a = filter_attrs_of(p);
	const struct scmp_version *v = seccomp_version();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -errno;
	fprintf(f, "criod-seccomp %d\nlibseccomp %u.%u.%u api %u\n", FILTER_KEY_VERSION, v ? v->major : 0,
		v ? v->minor : 0, v ? v->micro : 0, seccomp_api_get());
	fprintf(f, "deny %#x log %d compat %d badarch kill tsync nnp-off\n", a.deny, a.log ? 1 : 0, a.compat ? 1 : 0);
	key_list(f, "allow", p->syscalls);
	key_list(f, "allow", p->syscalls2);
	key_list(f, "allow", sanitizer_syscalls);
	key_list(f, "errno0", p->noops);
	if (fclose(f) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static char *filter_cache_path(const char *dir, const char *key, size_t len)
{
	/* FNV-1a, folded to 256 names: a file name, not a check (the key in
	 * the file is), and at most 256 files however many profiles the
	 * node's containers bring; two keys of one name replace each other. */
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)key[i]) * UINT64_C(0x100000001b3);
	char *path;
	return asprintf(&path, "%s/%02x.bpf", dir, (unsigned)((h ^ (h >> 8) ^ (h >> 16) ^ (h >> 32)) & 0xff)) < 0
		       ? NULL
		       : path;
}

/* A directory or file only root can have written. */
static bool root_only(const struct stat *st) { return st->st_uid == 0 && !(st->st_mode & 022); }

/* The program kept for key: 0 and *prog (malloc'd instructions), or a
 * negative errno for a miss. */
static int filter_cache_read(const char *dir, const char *path, const char *key, size_t keylen,
			     struct sock_fprog *prog)
{
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || !root_only(&st))
		return -ENOENT;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !root_only(&st) || st.st_size <= (off_t)(keylen + 1) ||
	    (size_t)st.st_size > keylen + 1 + FILTER_MAX_BYTES)
		return -EINVAL;
	size_t size = (size_t)st.st_size;
	_cleanup_free_ char *buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		got += (size_t)n;
	}
	size_t body = size - keylen - 1;
	if (memcmp(buf, key, keylen) != 0 || buf[keylen] != '\0' || body % sizeof(struct sock_filter) != 0)
		return -EINVAL;
	struct sock_filter *insns = malloc(body);
	if (!insns)
		return -ENOMEM;
	memcpy(insns, buf + keylen + 1, body);
	prog->len = (unsigned short)(body / sizeof(struct sock_filter));
	prog->filter = insns;
	return 0;
}

/* The compiled program of ctx, for the cache: key, NUL, instructions. */
static void filter_cache_write(scmp_filter_ctx ctx, const char *dir, const char *path, const char *key,
			       size_t keylen)
{
	_cleanup_close_ int fd = memfd_create("criod-seccomp", MFD_CLOEXEC);
	struct stat st;
	size_t size = 0;
	int r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	if (r >= 0 && fstat(fd, &st) < 0)
		r = -errno;
	if (r >= 0 && (st.st_size <= 0 || (size_t)st.st_size > FILTER_MAX_BYTES))
		r = -E2BIG;
	if (r >= 0)
		size = (size_t)st.st_size;
	_cleanup_free_ char *buf = r >= 0 ? malloc(keylen + 1 + size) : NULL;
	if (r >= 0 && !buf)
		r = -ENOMEM;
	if (r >= 0) {
		memcpy(buf, key, keylen + 1);
		ssize_t n = pread(fd, buf + keylen + 1, size, 0);
		r = n == (ssize_t)size ? 0 : n < 0 ? -errno : -EIO;
	}
	if (r >= 0)
		r = mkdir_p(dir, 0700);
	if (r >= 0 && (stat(dir, &st) < 0 || !root_only(&st)))
		r = -EPERM;
	if (r >= 0)
		r = write_file_boot(path, buf, keylen + 1 + size, 0600);
	if (r < 0)
		log_warn_errno(r, NULL, "seccomp filter not kept for the next process", "path=%s", path);
}

/* Load prog as seccomp_load loads the program of filter_build's ctx. */
static int filter_load_prog(const struct confine_policy *p, const struct sock_fprog *prog)
{
	unsigned int flags = SECCOMP_FILTER_FLAG_TSYNC | (filter_attrs_of(p).log ? SECCOMP_FILTER_FLAG_LOG : 0);
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog);
	if (r < 0)
		return -errno;
	return r > 0 ? -ESRCH : 0; /* TSYNC: a thread that could not be synchronised */
}

static int filter_load(const struct confine_policy *p)
{
	_cleanup_free_ char *key = NULL, *path = NULL;
	size_t keylen = 0;
	int r;

	if (p->filter_cache && filter_key(p, &key, &keylen) >= 0 &&
	    (path = filter_cache_path(p->filter_cache, key, keylen))) {
		struct sock_fprog prog = {0};
		if (filter_cache_read(p->filter_cache, path, key, keylen, &prog) == 0) {
			r = filter_load_prog(p, &prog);
			free(prog.filter);
			return r;
		}
	}
	scmp_filter_ctx ctx = NULL;
	r = filter_build(p, &ctx);
	if (r < 0)
		return r;
	if (path)
		filter_cache_write(ctx, p->filter_cache, path, key, keylen);
	r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

static _noreturn_ void run_probe(void)
{
	int nr = seccomp_syscall_resolve_name(confine_probe);

	if (nr == __NR_SCMP_ERROR) {
		log_error(NULL, "confine probe: unknown system call", "syscall=%s", confine_probe);
		_exit(2);
	}
	errno = 0;
	long ret = syscall(nr, 0, 0, 0, 0, 0, 0);
	int e = ret < 0 ? errno : 0;
	log_info(NULL, "confine probe", "syscall=%s nr=%d ret=%ld errno=%d", confine_probe, nr, ret, e);
	_exit(0);
}

int confine_self(const char *component, const struct confine_policy *p)
{
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_NODEFER };
	int r;

	r = caps_limit(p->caps, p->bounding);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot limit capabilities", "component=%s keep=%#llx", component,
				       (unsigned long long)p->caps);
	if (p->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return log_error_errno(errno, NULL, "cannot set no_new_privs", "component=%s", component);
	if (p->action == CONFINE_DENY_LOGGED && !p->no_filter) {
		names_resolve();
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGSYS, &sa, NULL) < 0)
			return log_error_errno(errno, NULL, "cannot install the SIGSYS handler", "component=%s",
					       component);
	}
	/* Read before the filter: capget and prctl need not be in it. */
	uint64_t eff, bnd;
	caps_held(&eff, &bnd);
	r = p->no_filter ? 0 : filter_load(p);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot load the seccomp filter", "component=%s", component);
	log_info(NULL, "confined", "caps=%#llx no_new_privs=%d seccomp=%s bounding=%#llx", (unsigned long long)eff,
		 p->no_new_privs ? 1 : 0, p->no_filter ? "off" : confine_log_only ? "log" : "enforce",
		 (unsigned long long)bnd);
	if (confine_probe)
		run_probe();
	return 0;
}
