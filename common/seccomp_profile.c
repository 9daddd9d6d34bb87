/* Localhost seccomp profiles, opened by spawnd for criod; see
 * seccomp_profile.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "macro.h"
#include "seccomp_profile.h"
#include "status.h"
#include "util.h"

#define SHOWN_MAX 256 /* bytes of a refused path repeated in a message */

int seccomp_profile_path_check(const char *path, size_t len, char *const *roots, size_t n_roots, size_t *root,
			       size_t *rel_off, const char **why)
{
	int r = path_beneath_roots(path, len, SECCOMP_PROFILE_PATH_MAX, roots, n_roots, root, rel_off, why);
	if (r == -EACCES)
		*why = "is not beneath any of " SECCOMP_PROFILE_ROOTS_KEY;
	return r;
}

static const char *file_kind(mode_t m)
{
	return S_ISDIR(m)    ? "a directory"
	       : S_ISFIFO(m) ? "a FIFO"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISLNK(m)  ? "a symbolic link"
			     : "not a regular file";
}

_printf_(6, 7) static int refuse(int *status, int st, int r, char *err, size_t errlen, const char *fmt, ...);

static int refuse(int *status, int st, int r, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	*status = st;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return r;
}

int seccomp_profile_open(const char *path, size_t len, char *const *roots, size_t n_roots, uint64_t *size,
			 int *status, char *err, size_t errlen)
{
	char p[SECCOMP_PROFILE_PATH_MAX + 1], fdpath[64], list[512];
	const char *why;
	size_t ri, off;
	struct stat st, st2;
	int shown = len > SHOWN_MAX ? SHOWN_MAX : (int)len;
	const char *more = len > SHOWN_MAX ? "..." : "";

	*size = 0;
	*status = STATUS_OK;
	if (err && errlen)
		err[0] = '\0';
	int r = seccomp_profile_path_check(path, len, roots, n_roots, &ri, &off, &why);
	if (r == -EACCES) {
		path_roots_join(list, sizeof(list), roots, n_roots);
		return refuse(status, STATUS_PERMISSION_DENIED, r, err, errlen,
			      "seccomp profile %.*s%s is not beneath any directory of " SECCOMP_PROFILE_ROOTS_KEY " (%s)",
			      shown, path, more, list);
	}
	if (r < 0)
		return refuse(status, STATUS_INVALID_ARGUMENT, r, err, errlen, "seccomp profile path \"%.*s%s\" %s",
			      path ? shown : 0, path ? path : "", more, why);
	memcpy(p, path, len);
	p[len] = '\0';

	/* The administrator's directory: symlinks in its own path are followed. */
	_cleanup_close_ int root = open(roots[ri], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0) {
		r = -errno;
		return refuse(status, r == -ENOENT || r == -ENOTDIR ? STATUS_NOT_FOUND : status_from_errno(r), r, err,
			      errlen, "seccomp profile %s: the directory %s of " SECCOMP_PROFILE_ROOTS_KEY " cannot be opened: %s",
			      p, roots[ri], strerror(-r));
	}
	/* Below it nothing is followed, and nothing but a lookup happens until
	 * the file is known to be a regular one. */
	_cleanup_close_ int pfd = openat2_retry(root, off < len ? p + off : ".", O_PATH | O_CLOEXEC,
						RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
	if (pfd < 0) {
		r = pfd;
		if (r == -ENOENT || r == -ENOTDIR)
			return refuse(status, STATUS_NOT_FOUND, r, err, errlen, "seccomp profile %s does not exist", p);
		if (r == -ELOOP)
			return refuse(status, STATUS_PERMISSION_DENIED, r, err, errlen,
				      "seccomp profile %s is, or is reached through, a symbolic link; none is followed beneath "
				      "%s (" SECCOMP_PROFILE_ROOTS_KEY ")", p, roots[ri]);
		if (r == -EXDEV)
			return refuse(status, STATUS_PERMISSION_DENIED, r, err, errlen,
				      "seccomp profile %s leads out of %s (" SECCOMP_PROFILE_ROOTS_KEY ")", p, roots[ri]);
		if (r == -ENAMETOOLONG)
			return refuse(status, STATUS_INVALID_ARGUMENT, r, err, errlen,
				      "seccomp profile path %s has a component longer than 255 bytes", p);
		if (r == -ENOSYS)
			return refuse(status, STATUS_FAILED_PRECONDITION, r, err, errlen,
				      "seccomp profile %s: the kernel has no openat2 (Linux 5.6 or later is needed)", p);
		return refuse(status, status_from_errno(r), r, err, errlen, "cannot open seccomp profile %s: %s", p,
			      strerror(-r));
	}
	if (fstat(pfd, &st) < 0) {
		r = -errno;
		return refuse(status, STATUS_INTERNAL, r, err, errlen, "cannot stat seccomp profile %s: %s", p,
			      strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return refuse(status, STATUS_INVALID_ARGUMENT, -EINVAL, err, errlen,
			      "seccomp profile %s is %s, not a regular file", p, file_kind(st.st_mode));
	if (st.st_size > (off_t)SECCOMP_PROFILE_MAX)
		return refuse(status, STATUS_INVALID_ARGUMENT, -EFBIG, err, errlen,
			      "seccomp profile %s is %lld bytes, more than the %u allowed", p, (long long)st.st_size,
			      SECCOMP_PROFILE_MAX);

	/* The same inode, now for reading. */
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", pfd);
	_cleanup_close_ int fd = open(fdpath, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		return refuse(status, status_from_errno(r), r, err, errlen, "cannot open seccomp profile %s: %s", p,
			      strerror(-r));
	}
	if (fstat(fd, &st2) < 0) {
		r = -errno;
		return refuse(status, STATUS_INTERNAL, r, err, errlen, "cannot stat seccomp profile %s: %s", p,
			      strerror(-r));
	}
	if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino || !S_ISREG(st2.st_mode))
		return refuse(status, STATUS_INTERNAL, -ESTALE, err, errlen,
			      "seccomp profile %s: reopening it gave another file", p);
	if (st2.st_size > (off_t)SECCOMP_PROFILE_MAX)
		return refuse(status, STATUS_INVALID_ARGUMENT, -EFBIG, err, errlen,
			      "seccomp profile %s is %lld bytes, more than the %u allowed", p, (long long)st2.st_size,
			      SECCOMP_PROFILE_MAX);
	*size = (uint64_t)st2.st_size;
	return TAKE_FD(fd);
}
