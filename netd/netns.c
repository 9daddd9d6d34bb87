/* Network namespaces bind-mounted on files; see netns.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/magic.h>

#include "log.h"
#include "macro.h"
#include "netns.h"
#include "util.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#ifndef STATX_ATTR_MOUNT_ROOT
#define STATX_ATTR_MOUNT_ROOT 0x00002000
#endif

/* dir is the root of a mount. */
static int is_mount_point(const char *dir)
{
	struct statx sx;

	if (statx(AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) < 0)
		return -errno;
	if (!(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return -EOPNOTSUPP;
	return !!(sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

int netns_prepare_dir(const char *dir)
{
	_cleanup_close_ int lockfd = -1;
	bool made = false;
	int r;

	r = mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	/* As iproute2 does: serialize with other tools setting up the same
	 * directory, then make it shared, bind-mounting it onto itself first
	 * if it is not a mount point yet (EINVAL). */
	lockfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd < 0)
		return -errno;
	if (flock(lockfd, LOCK_EX) < 0)
		log_warn_errno(errno, NULL, "cannot lock the namespace directory", "path=%s", dir);
	while (mount("", dir, "none", MS_SHARED | MS_REC, NULL) < 0) {
		if (errno != EINVAL || made) {
			r = -errno;
			log_error_errno(r, NULL, "cannot make the namespace directory a shared mount", "path=%s", dir);
			goto out;
		}
		if (mount(dir, dir, "none", MS_BIND | MS_REC, NULL) < 0) {
			r = -errno;
			log_error_errno(r, NULL, "cannot bind-mount the namespace directory onto itself", "path=%s", dir);
			goto out;
		}
		log_info(NULL, "made the namespace directory a mount point", "path=%s", dir);
		made = true;
	}
	r = 0;
out:
	flock(lockfd, LOCK_UN);
	return r;
}

void netns_release_dir(const char *dir)
{
	DIR *d;
	bool busy = false;

	if (is_mount_point(dir) != 1)
		return;
	d = opendir(dir);
	if (!d)
		return;
	for (struct dirent *de; (de = readdir(d));) {
		char path[4096];
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (netns_is_mounted(path))
			busy = true;
	}
	closedir(d);
	if (busy)
		return;
	if (umount2(dir, MNT_DETACH) < 0)
		log_warn_errno(errno, NULL, "cannot unmount the namespace directory", "path=%s", dir);
	else
		log_info(NULL, "unmounted the namespace directory", "path=%s", dir);
}

bool netns_is_mounted(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == (typeof(st.f_type))NSFS_MAGIC;
}

struct create_arg {
	const char *path;
	int ret;
};

static void *create_thread(void *p)
{
	struct create_arg *a = p;
	char self[64];

	/* Only this thread moves to the new namespace; it ends right after. */
	if (unshare(CLONE_NEWNET) < 0) {
		a->ret = -errno;
		return NULL;
	}
	snprintf(self, sizeof(self), "/proc/self/task/%ld/ns/net", (long)syscall(SYS_gettid));
	if (mount(self, a->path, "none", MS_BIND, NULL) < 0)
		a->ret = -errno;
	return NULL;
}

int netns_create(const char *path)
{
	struct create_arg a = { .path = path };
	pthread_t t;
	int fd, r;

	fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0)
		return -errno;
	close(fd);
	r = pthread_create(&t, NULL, create_thread, &a);
	if (r != 0) {
		unlink(path);
		return -r;
	}
	pthread_join(t, NULL);
	if (a.ret < 0) {
		unlink(path);
		return a.ret;
	}
	return 0;
}

int netns_remove(const char *path)
{
	int r = 0;

	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		r = -errno;
	if (r == 0 && netns_is_mounted(path))
		r = -EBUSY; /* mounted more than once: unmount the rest */
	while (r == -EBUSY && umount2(path, MNT_DETACH) == 0)
		r = netns_is_mounted(path) ? -EBUSY : 0;
	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

struct run_arg {
	int fd;
	int (*fn)(void *);
	void *arg;
	int ret;
};

static void *run_thread(void *p)
{
	struct run_arg *a = p;

	if (setns(a->fd, CLONE_NEWNET) < 0) {
		a->ret = -errno;
		return NULL;
	}
	a->ret = a->fn(a->arg);
	return NULL;
}

int netns_run(const char *path, int (*fn)(void *arg), void *arg)
{
	_cleanup_close_ int fd = -1;
	struct run_arg a = { .fn = fn, .arg = arg };
	pthread_t t;
	int r;

	if (!netns_is_mounted(path))
		return -ENOENT;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	a.fd = fd;
	r = pthread_create(&t, NULL, run_thread, &a);
	if (r != 0)
		return -r;
	pthread_join(t, NULL);
	return a.ret;
}
