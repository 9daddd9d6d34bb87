/* Host paths beneath the node policy's roots; see beneath.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "macro.h"
#include "util.h"

#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

bool path_is_clean_abs(const char *p, size_t len)
{
	if (!p || len == 0 || p[0] != '/')
		return false;
	if (len == 1)
		return true;
	for (size_t i = 1; i <= len;) {
		size_t n = 0;
		while (i + n < len && p[i + n] != '/')
			n++;
		if (n == 0 || (n == 1 && p[i] == '.') || (n == 2 && p[i] == '.' && p[i + 1] == '.'))
			return false;
		i += n + 1;
	}
	return true;
}

int path_beneath_roots(const char *path, size_t len, size_t max_len, char *const *roots, size_t n_roots,
		       size_t *root, size_t *rel_off, const char **why)
{
	static char too_long[64];
	size_t best = SIZE_MAX, best_len = 0;

	*why = NULL;
	if (!path || len == 0) {
		*why = "is empty";
		return -EINVAL;
	}
	if (memchr(path, '\0', len)) {
		*why = "contains a NUL byte";
		return -EINVAL;
	}
	if (len > max_len) {
		snprintf(too_long, sizeof(too_long), "is longer than %zu bytes", max_len);
		*why = too_long;
		return -ENAMETOOLONG;
	}
	if (mem_has_ctl(path, len)) {
		*why = "contains a control character";
		return -EINVAL;
	}
	if (path[0] != '/') {
		*why = "is not an absolute path";
		return -EINVAL;
	}
	if (!path_is_clean_abs(path, len)) {
		*why = "is not a clean path (no empty, \".\" or \"..\" components, no trailing \"/\")";
		return -EINVAL;
	}
	for (size_t i = 0; i < n_roots; i++) {
		const char *r = roots[i];
		size_t n = r ? strlen(r) : 0;
		if (!path_is_clean_abs(r, n))
			continue;
		if (n == 1) /* "/" (the configuration refuses it) */
			n = 0;
		if (n > len || memcmp(path, r, n) != 0 || (n < len && path[n] != '/'))
			continue;
		if (best == SIZE_MAX || n > best_len) {
			best = i;
			best_len = n;
		}
	}
	if (best == SIZE_MAX) {
		*why = "is not beneath any of the roots";
		return -EACCES;
	}
	*root = best;
	*rel_off = best_len < len ? best_len + 1 : len;
	return 0;
}

void path_roots_join(char *buf, size_t size, char *const *roots, size_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	if (n == 0) {
		snprintf(buf, size, "none configured");
		return;
	}
	for (size_t i = 0; i < n && used < size; i++) {
		int k = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", roots[i]);
		if (k < 0)
			break;
		used += (size_t)k;
	}
}

/* The directory name (one component) beneath dir_fd, made if missing. */
static int dir_beneath(int dir_fd, const char *name, mode_t mode)
{
	int fd = openat2_retry(dir_fd, name, O_PATH | O_DIRECTORY | O_CLOEXEC, BENEATH);
	if (fd != -ENOENT)
		return fd;
	if (mkdirat(dir_fd, name, mode) < 0 && errno != EEXIST)
		return -errno;
	return openat2_retry(dir_fd, name, O_PATH | O_DIRECTORY | O_CLOEXEC, BENEATH);
}

int open_append_beneath(int root_fd, const char *rel, mode_t dir_mode, mode_t file_mode)
{
	char buf[PATH_MAX];
	size_t len = rel ? strlen(rel) : 0;
	struct stat st;

	if (len == 0 || len >= sizeof(buf) || rel[0] == '/')
		return -EINVAL;
	memcpy(buf, rel, len + 1);
	/* mkdirat and the final openat2 name one component each: walk there
	 * one directory at a time, each opened beneath the last. */
	_cleanup_close_ int dir = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
	if (dir < 0)
		return -errno;
	char *name = buf;
	for (char *slash; (slash = strchr(name, '/'));) {
		*slash = '\0';
		if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			return -EINVAL;
		int next = dir_beneath(dir, name, dir_mode);
		if (next < 0)
			return next;
		close(dir);
		dir = next;
		name = slash + 1;
	}
	if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	/* A new file: created here (one component in a directory already
	 * reached; O_EXCL never follows a symlink), never anything else. */
	int fd = openat(dir, name, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, file_mode);
	if (fd >= 0)
		return fd;
	if (errno != EEXIST)
		return -errno;
	/* An existing one: looked at before it is opened for writing. */
	_cleanup_close_ int pfd = openat2_retry(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, BENEATH);
	if (pfd < 0)
		return pfd;
	if (fstat(pfd, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return -ELOOP;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	fd = open(self, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st2;
	if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}
