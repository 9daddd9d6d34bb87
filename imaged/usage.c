/* The writable layer of a container's root filesystem; see usage.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "internal/imaged.pb-c.h"
#include "log.h"
#include "macro.h"
#include "status.h"
#include "usage.h"
#include "util.h"
#include "workq.h"

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

/* ---------------------------------------------------------------- the walk */

static void walk_dir(int fd, dev_t dev, int depth, struct usage_figures *f)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (f->inodes >= USAGE_MAX_ENTRIES) {
			f->truncated = true;
			break;
		}
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		if (st.st_dev != dev)
			continue; /* a mount point: another file system's */
		f->inodes++;
		f->bytes += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth >= USAGE_MAX_DEPTH) {
			f->truncated = true;
			continue;
		}
		int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (cfd >= 0)
			walk_dir(cfd, dev, depth + 1, f);
	}
	closedir(d);
}

int usage_walk(int dir_fd, struct usage_figures *out)
{
	struct stat st;
	memset(out, 0, sizeof(*out));
	if (fstat(dir_fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	out->inodes = 1;
	out->bytes = (uint64_t)st.st_blocks * 512;
	walk_dir(fd, st.st_dev, 1, out);
	return 0;
}

/* ---------------------------------------------------------------- the cache */

struct usage_entry {
	struct usage_entry *next;
	char id[65];
	bool valid, walking;
	int64_t measured_mono, measured_real, asked_mono;
	struct usage_figures fig;
	struct ipc_call **waiting;
	size_t n_waiting;
};

/* One walk on the walk thread. */
struct usage_job {
	char id[65];
	char *root;
	char req[72];
	int ret;
	struct usage_figures fig;
	int64_t done_real;
};

static struct usage_entry *entries;
static struct workq *walker;
static char *mountpoint; /* the store root, as ImageFsInfo names it */

static struct usage_entry *entry_find(const char *id)
{
	for (struct usage_entry *e = entries; e; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static void entries_forget_old(int64_t now)
{
	for (struct usage_entry **pp = &entries; *pp;) {
		struct usage_entry *e = *pp;
		if (!e->walking && now - e->asked_mono > (int64_t)USAGE_FORGET_MS * 1000000) {
			*pp = e->next;
			free(e->waiting);
			free(e);
			continue;
		}
		pp = &e->next;
	}
}

static void reply(struct ipc_call *call, const struct usage_entry *e)
{
	Criod__Internal__RootfsUsageResponse resp = CRIOD__INTERNAL__ROOTFS_USAGE_RESPONSE__INIT;
	resp.mountpoint = mountpoint;
	resp.used_bytes = e->fig.bytes;
	resp.inodes_used = e->fig.inodes;
	resp.timestamp_ns = e->measured_real;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static void walk_work(void *arg)
{
	struct usage_job *j = arg;
	_cleanup_free_ char *rootfs = NULL, *upper = NULL;
	if (asprintf(&rootfs, "%s/containers/%s/rootfs", j->root, j->id) < 0 ||
	    asprintf(&upper, "%s/containers/%s/upper", j->root, j->id) < 0) {
		rootfs = upper = NULL;
		j->ret = -ENOMEM;
		return;
	}
	/* An overlay's writable layer is its upper directory; a copied root
	 * is all writable. */
	struct statfs sf;
	bool overlay = statfs(rootfs, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)OVERLAYFS_SUPER_MAGIC;
	_cleanup_close_ int fd = open(overlay ? upper : rootfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		j->ret = -errno;
		return;
	}
	j->ret = usage_walk(fd, &j->fig);
	j->done_real = now_realtime_ns();
}

static void walk_done(void *arg)
{
	struct usage_job *j = arg;
	struct usage_entry *e = entry_find(j->id);
	if (e) {
		e->walking = false;
		if (j->ret == 0) {
			e->valid = true;
			e->fig = j->fig;
			e->measured_mono = now_monotonic_ns();
			e->measured_real = j->done_real;
			if (j->fig.truncated)
				log_warn(j->req, "writable layer walk stopped at its bound", "container=%s inodes=%llu",
					 j->id, (unsigned long long)j->fig.inodes);
		}
		for (size_t i = 0; i < e->n_waiting; i++) {
			if (j->ret == 0)
				reply(e->waiting[i], e);
			else
				ipc_call_fail(e->waiting[i], j->ret == -ENOENT ? STATUS_NOT_FOUND : status_from_errno(j->ret),
					      "cannot measure the writable layer of container %s: %s", j->id,
					      strerror(-j->ret));
		}
		free(e->waiting);
		e->waiting = NULL;
		e->n_waiting = 0;
	}
	free(j->root);
	free(j);
}

void usage_request(struct event_base *base, struct ipc_call *call, const char *store_root, const char *container_id)
{
	int64_t now = now_monotonic_ns();
	entries_forget_old(now);
	if (!mountpoint && !(mountpoint = strdup(store_root))) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (!walker) {
		int r = workq_new(base, 1, &walker);
		if (r < 0) {
			walker = NULL;
			ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot start the usage walker: %s", strerror(-r));
			return;
		}
	}
	struct usage_entry *e = entry_find(container_id);
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e) {
			ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
		snprintf(e->id, sizeof(e->id), "%s", container_id);
		e->next = entries;
		entries = e;
	}
	e->asked_mono = now;
	if (e->valid && !e->walking && now - e->measured_mono < (int64_t)USAGE_CACHE_MS * 1000000) {
		reply(call, e);
		return;
	}
	struct ipc_call **w = realloc(e->waiting, (e->n_waiting + 1) * sizeof(*w));
	if (!w) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	e->waiting = w;
	e->waiting[e->n_waiting++] = call;
	if (e->walking)
		return;
	struct usage_job *j = calloc(1, sizeof(*j));
	int r = j && (j->root = strdup(store_root)) ? 0 : -ENOMEM;
	if (r == 0) {
		snprintf(j->id, sizeof(j->id), "%s", container_id);
		snprintf(j->req, sizeof(j->req), "%s", ipc_call_request_id(call));
		r = workq_submit(walker, walk_work, walk_done, j);
	}
	if (r < 0) {
		if (j)
			free(j->root);
		free(j);
		e->n_waiting--;
		ipc_call_fail(call, r == -ENOMEM ? STATUS_RESOURCE_EXHAUSTED : STATUS_UNAVAILABLE,
			      "cannot measure the writable layer: %s", strerror(-r));
		return;
	}
	e->walking = true;
}
