/* Small helpers shared by every component. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/capability.h>

#include "macro.h"
#include "util.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#endif
#ifndef PR_CAP_AMBIENT_CLEAR_ALL
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

bool id_is_valid(const char *id)
{
	size_t i;

	if (!id)
		return false;
	for (i = 0; i < 64; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false; /* also stops at the terminating NUL */
	}
	return id[64] == '\0';
}

bool name_is_valid(const char *name, size_t max)
{
	size_t n;

	if (!name || max == 0)
		return false;
	n = strnlen(name, max + 1);
	if (n == 0 || n > max)
		return false;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int getrandom_full(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t r = getrandom(p, len, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

int random_hex(char *buf, size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char chunk[64];
	size_t done = 0;

	if (!buf)
		return -EINVAL;
	while (done < nbytes) {
		size_t n = nbytes - done < sizeof(chunk) ? nbytes - done : sizeof(chunk);
		int r = getrandom_full(chunk, n);
		if (r < 0) {
			buf[0] = '\0';
			return r;
		}
		for (size_t i = 0; i < n; i++) {
			buf[2 * (done + i)] = hex[chunk[i] >> 4];
			buf[2 * (done + i) + 1] = hex[chunk[i] & 0xf];
		}
		done += n;
	}
	buf[2 * nbytes] = '\0';
	explicit_bzero(chunk, sizeof(chunk));
	return 0;
}

static int mkdir_one(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = NULL;
	char *s;
	int r;

	if (!path || !*path)
		return -EINVAL;
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	/* "a/b/" names b: drop trailing slashes so b gets the mode. */
	for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
		p[n - 1] = '\0';
	/* Create each prefix ending before a '/' (0755, like mkdir -p -m),
	 * then the whole path with the mode asked for. */
	for (s = p + 1; *s; s++) {
		if (*s != '/' || s[-1] == '/')
			continue;
		*s = '\0';
		r = mkdir_one(p, 0755);
		*s = '/';
		if (r < 0)
			return r;
	}
	return mkdir_one(p, mode);
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static int replace_file(const char *path, const void *data, size_t len, mode_t mode, bool durable)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_close_ int dfd = -1;
	const char *slash, *base;
	size_t dirlen, baselen;
	int r;

	if (!path || !*path || (len > 0 && !data))
		return -EINVAL;
	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return -EINVAL;
	dirlen = slash ? (size_t)(slash - path) : 0;
	baselen = strlen(base);
	if (baselen > 64)
		baselen = 64; /* keep the temp name within NAME_MAX */

	if (!slash)
		dir = strdup(".");
	else if (dirlen == 0)
		dir = strdup("/");
	else
		dir = strndup(path, dirlen);
	if (!dir)
		return -ENOMEM;

	for (int attempt = 0;; attempt++) {
		char rnd[17];

		r = random_hex(rnd, 8);
		if (r < 0)
			return r;
		free(tmp);
		if (asprintf(&tmp, "%.*s%s.%.*s.%s.tmp", (int)dirlen, path, slash ? "/" : "",
			     (int)baselen, base, rnd) < 0) {
			tmp = NULL;
			return -ENOMEM;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, mode & 07777);
		if (fd >= 0)
			break;
		if (errno != EEXIST || attempt >= 16)
			return -errno;
	}

	/* From here on the temp file exists and must go on any failure. */
	if (fchmod(fd, mode & 07777) < 0) {
		r = -errno;
		goto fail;
	}
	r = write_all(fd, data, len);
	if (r < 0)
		goto fail;
	if (durable && fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	r = close(TAKE_FD(fd));
	if (r < 0 && errno != EINTR) {
		r = -errno;
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto fail;
	}

	if (!durable)
		return 0;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fsync(dfd) < 0)
		return -errno;
	return 0;

fail:
	if (fd >= 0)
		close(TAKE_FD(fd));
	unlink(tmp);
	return r;
}

int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	return replace_file(path, data, len, mode, true);
}

int write_file_boot(const char *path, const void *data, size_t len, mode_t mode)
{
	return replace_file(path, data, len, mode, false);
}

int rmdir_with_files(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	return rmdir(dir) < 0 && errno != ENOENT ? -errno : 0;
}

int read_file(const char *path, size_t max, char **out, size_t *out_len)
{
	if (!path || !out)
		return -EINVAL;
	*out = NULL;
	if (out_len)
		*out_len = 0;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	return read_fd(fd, max, out, out_len);
}

int read_fd(int fd, size_t max, char **out, size_t *out_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap;
	struct stat st;

	if (fd < 0 || !out)
		return -EINVAL;
	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (max >= SIZE_MAX - 1)
		max = SIZE_MAX - 2;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode) && st.st_size > 0 && (uintmax_t)st.st_size > max)
		return -EFBIG;

	/* st_size is only a hint (procfs reports 0, files change). */
	if (S_ISREG(st.st_mode) && st.st_size > 0)
		cap = (size_t)st.st_size + 1;
	else
		cap = 4096;
	if (cap > max + 1)
		cap = max + 1;
	if (cap < 64)
		cap = 64;
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;

	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap;
			char *nb;

			if (len > max)
				break;
			ncap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
			if (ncap <= cap)
				ncap = max + 1;
			nb = realloc(buf, ncap + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			break;
	}
	if (len > max)
		return -EFBIG;

	buf[len] = '\0';
	*out = TAKE_PTR(buf);
	if (out_len)
		*out_len = len;
	return 0;
}

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) < 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t now_monotonic_ns(void)
{
	return now_ns(CLOCK_MONOTONIC);
}

int64_t now_realtime_ns(void)
{
	return now_ns(CLOCK_REALTIME);
}

int lookup_user(const char *name, uid_t *uid, gid_t *gid)
{
	_cleanup_free_ char *buf = NULL;
	struct passwd pw, *res = NULL;
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t bufsz = sz > 0 ? (size_t)sz : 1024;

	if (!name || !*name || strnlen(name, 256) >= 256)
		return -EINVAL;
	for (;;) {
		int r;

		free(buf);
		buf = malloc(bufsz);
		if (!buf)
			return -ENOMEM;
		r = getpwnam_r(name, &pw, buf, bufsz, &res);
		if (r == ERANGE && bufsz < (1u << 20)) {
			bufsz *= 2;
			continue;
		}
		if (r != 0)
			return -r;
		break;
	}
	if (!res)
		return -ENOENT;
	if (uid)
		*uid = res->pw_uid;
	if (gid)
		*gid = res->pw_gid;
	return 0;
}

/* ---- drop_privileges ---- */

int cap_last_cap(void)
{
	_cleanup_free_ char *s = NULL;
	char *end;
	long v;

	if (read_file("/proc/sys/kernel/cap_last_cap", 64, &s, NULL) < 0)
		return CAP_LAST_CAP;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || v < 0 || v > 1023)
		return CAP_LAST_CAP;
	return (int)v;
}

static int caps_clear(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	return 0;
}

static int caps_verify_empty(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	for (size_t i = 0; i < ARRAY_SIZE(data); i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return -EPERM;
	return 0;
}

static int ambient_clear(void)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno; /* EINVAL: kernel without ambient capabilities */
	return 0;
}

/* The process must be unable to become root again. */
static int verify_dropped(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int r;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
		return -errno;
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
		return -EPERM;
	if (setuid(0) == 0 || seteuid(0) == 0)
		return -EPERM;
	if (gid != 0 && (setgid(0) == 0 || setegid(0) == 0))
		return -EPERM;
	r = caps_verify_empty();
	if (r < 0)
		return r;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return -EPERM;
	return 0;
}

int drop_privileges(const char *name)
{
	uid_t uid;
	gid_t gid;
	int r, last;

	r = lookup_user(name, &uid, &gid);
	if (r < 0)
		return r;
	if (uid == 0)
		return -EINVAL; /* "dropping" to root is a configuration error */

	if (getuid() == uid && geteuid() == uid) {
		uid_t ru, eu, su;
		if (getresuid(&ru, &eu, &su) < 0)
			return -errno;
		if (su == uid) {
			gid_t rg, eg, sg;

			/* Already that user (e.g. started by systemd with
			 * User=): shed whatever capabilities we may hold,
			 * which needs no privilege, and lock it in. The
			 * group is whatever we were started with. */
			r = ambient_clear();
			if (r < 0)
				return r;
			r = caps_clear();
			if (r < 0)
				return r;
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
				return -errno;
			if (getresgid(&rg, &eg, &sg) < 0)
				return -errno;
			if (rg != eg || eg != sg)
				return -EPERM;
			return verify_dropped(uid, rg);
		}
	}

	if (setgroups(0, NULL) < 0)
		return -errno;
	if (setresgid(gid, gid, gid) < 0)
		return -errno;

	r = ambient_clear();
	if (r < 0)
		return r;
	/* The bounding set can only be changed while we still hold
	 * CAP_SETPCAP, i.e. before setresuid. */
	last = cap_last_cap();
	for (int cap = 0; cap <= last; cap++) {
		if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0, 0, 0) < 0) {
			if (errno == EINVAL && cap > 0)
				break; /* beyond what this kernel knows */
			return -errno;
		}
	}
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return -errno;

	if (setresuid(uid, uid, uid) < 0)
		return -errno;

	r = caps_clear();
	if (r < 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;

	return verify_dropped(uid, gid);
}

/* ---- host names ---- */

static bool ascii_digit(char c) { return c >= '0' && c <= '9'; }
static bool ascii_alnum(char c) { return ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Labels of [A-Za-z0-9-], 1..63 bytes, no '-' at either end. */
static bool dns_name_ok(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			if (!ascii_alnum(s[i]) && s[i] != '-')
				return false;
			continue;
		}
		if (i == start || i - start > 63 || s[start] == '-' || s[i - 1] == '-')
			return false;
		start = i + 1;
	}
	return true;
}

/* "[" [0-9a-fA-F:]+ "]" holding a real IPv6 address (no zone, no dotted quad). */
static bool bracketed_ipv6_ok(const char *s, size_t n)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr a;

	if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 > sizeof(buf) - 1)
		return false;
	for (size_t i = 1; i < n - 1; i++)
		if (!(ascii_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F') || s[i] == ':'))
			return false;
	memcpy(buf, s + 1, n - 2);
	buf[n - 2] = '\0';
	return inet_pton(AF_INET6, buf, &a) == 1;
}

/* 1..65535, at most 5 digits. */
static bool port_ok(const char *s, size_t n)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!ascii_digit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

bool host_port_is_valid(const char *s, size_t n)
{
	size_t host_len = n;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return false;
		host_len = (size_t)(close - s) + 1;
		if (!bracketed_ipv6_ok(s, host_len))
			return false;
	} else {
		const char *colon = memchr(s, ':', n);
		if (colon)
			host_len = (size_t)(colon - s);
		if (!dns_name_ok(s, host_len))
			return false;
	}
	if (host_len == n)
		return true;
	return s[host_len] == ':' && port_ok(s + host_len + 1, n - host_len - 1);
}

/* ---- openat2 ---- */

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

int pidfd_open_pid(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	return fd < 0 ? -errno : fd;
#else
	(void)pid;
	return -ENOSYS;
#endif
}

int openat2_retry(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = {.flags = flags, .mode = 0, .resolve = resolve};
	long fd;

	/* EAGAIN: a rename somewhere in the tree raced the lookup. */
	for (int tries = 0; tries < 16; tries++) {
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != EAGAIN && errno != EINTR)
			break;
	}
	return -errno;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

int errf(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

int errf_first(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen && !err[0]) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool pct_decode(const char *s, size_t n, bool plus_is_space, char *out, size_t outlen)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			int a = i + 2 < n ? hex_digit(s[i + 1]) : -1, b = a < 0 ? -1 : hex_digit(s[i + 2]);
			if (a < 0 || b < 0)
				return false;
			c = (char)(a * 16 + b);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			c = ' ';
		}
		if (c == '\0' || k + 1 >= outlen)
			return false;
		out[k++] = c;
	}
	out[k] = '\0';
	return true;
}

bool str_has_ctl(const char *s)
{
	for (; *s; s++)
		if (char_is_ctl((unsigned char)*s))
			return true;
	return false;
}

bool mem_has_ctl(const void *s, size_t n)
{
	const unsigned char *p = s;

	for (size_t i = 0; i < n; i++)
		if (char_is_ctl(p[i]))
			return true;
	return false;
}

int parse_u64_digits(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (!(*s >= '0' && *s <= '9'))
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return 0;
}

size_t msg_take_fds(struct msghdr *mh, int *fds, size_t max)
{
	size_t n = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++, n++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n] = fd;
			else
				close(fd);
		}
	}
	return n;
}
