/* rm -rf confined to one tree; see tree.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "tree.h"
#include "util.h"

#define REMOVE_MAX_DEPTH 4096 /* > PATH_MAX / 2: deeper than any tree we create */
#define REMOVE_KEEP_OPEN 32   /* directory levels kept open while removing */

struct rm_frame {
	char *name;
	DIR *d; /* open while the level is being scanned and shallow enough */
};

/* Open frames[i] as a directory without following symlinks or crossing a
 * mount point, starting from the deepest ancestor that is still open. */
static int rm_open(int parent_fd, struct rm_frame *fr, size_t i)
{
	size_t j = i;
	int base = parent_fd, fd = -1;

	while (j > 0 && !fr[j - 1].d)
		j--;
	if (j > 0)
		base = dirfd(fr[j - 1].d);
	for (; j <= i; j++) {
		/* Never into another mount (a bind mount of a host directory
		 * left in a container's tree): -EXDEV, and nothing below it is
		 * touched. */
		int nfd = openat2_retry(base, fr[j].name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
					RESOLVE_BENEATH | RESOLVE_NO_XDEV | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
		if (fd >= 0)
			close(fd);
		if (nfd < 0)
			return nfd;
		fd = base = nfd;
	}
	return fd;
}

int remove_tree_at(int parent_fd, const char *name)
{
	struct rm_frame *fr = NULL;
	size_t depth = 0, cap = 0;
	int retries = 0, r = 0;
	struct stat st;

	if (!name || !*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;

	cap = 16;
	fr = calloc(cap, sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	fr[0].name = strdup(name);
	if (!fr[0].name) {
		free(fr);
		return -ENOMEM;
	}
	depth = 1;

	while (depth > 0) {
		struct rm_frame *f = &fr[depth - 1];
		struct dirent *de;
		char *descend = NULL;
		int pfd, tmp = -1;

		if (!f->d) {
			int fd = rm_open(parent_fd, fr, depth - 1);
			if (fd < 0) {
				if (fd == -ENOENT && depth == 1)
					break; /* gone already */
				r = fd;
				break;
			}
			f->d = fdopendir(fd);
			if (!f->d) {
				r = -errno;
				close(fd);
				break;
			}
		}
		errno = 0;
		while ((de = readdir(f->d))) {
			bool isdir;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			isdir = de->d_type == DT_DIR;
			if (de->d_type == DT_UNKNOWN) {
				struct stat cst;
				if (fstatat(dirfd(f->d), de->d_name, &cst, AT_SYMLINK_NOFOLLOW) < 0) {
					if (errno == ENOENT)
						continue;
					r = -errno;
					break;
				}
				isdir = S_ISDIR(cst.st_mode);
			}
			if (!isdir) {
				if (unlinkat(dirfd(f->d), de->d_name, 0) == 0 || errno == ENOENT)
					continue;
				if (errno != EISDIR) {
					r = -errno;
					break;
				}
			}
			descend = strdup(de->d_name);
			if (!descend)
				r = -ENOMEM;
			break;
		}
		if (r == 0 && !de && errno)
			r = -errno;
		if (r < 0) {
			free(descend);
			break;
		}
		if (descend) {
			if (depth >= REMOVE_MAX_DEPTH) {
				free(descend);
				r = -ELOOP;
				break;
			}
			if (depth == cap) {
				struct rm_frame *nf = realloc(fr, sizeof(*nf) * cap * 2);
				if (!nf) {
					free(descend);
					r = -ENOMEM;
					break;
				}
				memset(nf + cap, 0, sizeof(*nf) * cap);
				fr = nf;
				cap *= 2;
				f = &fr[depth - 1];
			}
			/* Deep levels give their fd back and rescan on return. */
			if (depth > REMOVE_KEEP_OPEN) {
				closedir(f->d);
				f->d = NULL;
			}
			fr[depth].name = descend;
			fr[depth].d = NULL;
			depth++;
			retries = 0;
			continue;
		}

		/* Everything below f is gone: remove f itself. */
		closedir(f->d);
		f->d = NULL;
		if (depth == 1) {
			pfd = parent_fd;
		} else if (fr[depth - 2].d) {
			pfd = dirfd(fr[depth - 2].d);
		} else {
			tmp = rm_open(parent_fd, fr, depth - 2);
			if (tmp < 0) {
				r = tmp;
				break;
			}
			pfd = tmp;
		}
		if (unlinkat(pfd, f->name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			r = -errno;
			if (tmp >= 0)
				close(tmp);
			if (r == -ENOTEMPTY && ++retries < 8) {
				r = 0;
				continue; /* something appeared meanwhile: rescan */
			}
			break;
		}
		if (tmp >= 0)
			close(tmp);
		retries = 0;
		free(f->name);
		f->name = NULL;
		depth--;
	}

	for (size_t i = 0; i < depth; i++) {
		if (fr[i].d)
			closedir(fr[i].d);
		free(fr[i].name);
	}
	free(fr);
	return r;
}
