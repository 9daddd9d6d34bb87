/* The layer extractor (imaged/unpack.c): a hostile tar stream, extracted
 * into a temporary root. Anything written outside that root is a finding,
 * checked after each input: the root's parent and grandparent must hold
 * exactly what the harness made (a sentinel directory and file, unchanged).
 *
 * Input: one control byte, then the layer bytes. Control bits 0-1: the
 * compression (0 or 3 plain tar, 1 gzip, 2 zstd); bits 2-3: the whiteout
 * mode (overlay, apply, overlay-listed); bits 4-7: the read chunk size
 * (1 << n bytes), so entries straddle reads at every offset. Run as root:
 * ownership, device nodes and xattrs are extracted as in the layer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "unpack.h"

static char base[64], mid[96], root[128], sentinel[128], sentinel_file[160];
static struct stat sentinel_st;

static int rm_entry(const char *path, const struct stat *st _unused_, int flag, struct FTW *ftw)
{
	if (ftw->level == 0)
		return 0; /* keep the directory itself */
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

static int rm_all(const char *path, const struct stat *st _unused_, int flag, struct FTW *ftw _unused_)
{
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_base(void)
{
	(void)nftw(base, rm_all, 64, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_unpack");
	snprintf(base, sizeof(base), "/tmp/fuzz_unpack.XXXXXX");
	if (!mkdtemp(base))
		abort();
	snprintf(mid, sizeof(mid), "%s/a", base);
	snprintf(root, sizeof(root), "%s/root", mid);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", base);
	snprintf(sentinel_file, sizeof(sentinel_file), "%s/file", sentinel);
	if (mkdir(mid, 0755) < 0 || mkdir(root, 0755) < 0 || mkdir(sentinel, 0755) < 0)
		abort();
	int fd = open(sentinel_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "sentinel\n", 9) != 9 || close(fd) < 0)
		abort();
	if (stat(sentinel_file, &sentinel_st) < 0)
		abort();
	atexit(remove_base);
	return 0;
}

/* The names directory dir holds, which must be exactly want (NULL-ended). */
static void expect_only(const char *dir, const char *const *want)
{
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "FINDING: %s is gone (%s)\n", dir, strerror(errno));
		abort();
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		bool ok = false;
		for (const char *const *w = want; *w; w++)
			ok |= strcmp(e->d_name, *w) == 0;
		if (!ok) {
			fprintf(stderr, "FINDING: the layer wrote %s/%s, outside the root %s\n", dir, e->d_name, root);
			abort();
		}
	}
	closedir(d);
}

static void check_outside(void)
{
	static const char *const in_base[] = {"a", "sentinel", NULL};
	static const char *const in_mid[] = {"root", NULL};
	static const char *const in_sentinel[] = {"file", NULL};
	struct stat st, rst;

	expect_only(base, in_base);
	expect_only(mid, in_mid);
	expect_only(sentinel, in_sentinel);
	if (lstat(sentinel_file, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != sentinel_st.st_ino ||
	    st.st_mode != sentinel_st.st_mode || st.st_uid != sentinel_st.st_uid || st.st_size != sentinel_st.st_size ||
	    st.st_mtim.tv_sec != sentinel_st.st_mtim.tv_sec || st.st_mtim.tv_nsec != sentinel_st.st_mtim.tv_nsec ||
	    st.st_nlink != 1) {
		fprintf(stderr, "FINDING: the layer changed %s, outside the root\n", sentinel_file);
		abort();
	}
	if (lstat(root, &rst) < 0 || !S_ISDIR(rst.st_mode)) {
		fprintf(stderr, "FINDING: the layer replaced the root %s itself\n", root);
		abort();
	}
}

struct src {
	const uint8_t *p;
	size_t len, off, chunk;
};

static ssize_t src_read(void *ud, void *buf, size_t len)
{
	struct src *s = ud;
	size_t n = s->len - s->off;
	if (n > len)
		n = len;
	if (n > s->chunk)
		n = s->chunk;
	memcpy(buf, s->p + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (4u << 20))
		return -1;
	static const enum layer_compression comps[] = {LAYER_PLAIN, LAYER_GZIP, LAYER_ZSTD, LAYER_PLAIN};
	static const enum whiteout_mode modes[] = {WHITEOUT_OVERLAY, WHITEOUT_APPLY, WHITEOUT_OVERLAY_LISTED,
						   WHITEOUT_OVERLAY};
	uint8_t ctl = data[0];
	struct src s = {.p = data + 1, .len = size - 1, .chunk = (size_t)1 << (ctl >> 4)};
	struct unpack_limits lim = {.max_bytes = 64u << 20, .max_entries = 10000, .min_free = 0};
	struct unpack_result res;
	char err[512];

	memset(&res, 0, sizeof(res));
	int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		abort();
	int r = unpack_layer_limited(dfd, comps[ctl & 3], modes[(ctl >> 2) & 3], src_read, &s, &lim, &res, err,
				     sizeof(err));
	close(dfd);
	if (r == 0 && res.n_opaque && !res.opaque)
		abort();
	unpack_result_free(&res);
	check_outside();
	/* empty the root for the next input; anything that cannot be removed
	 * (a directory made unwritable is still root's) is a harness failure */
	if (nftw(root, rm_entry, 64, FTW_DEPTH | FTW_PHYS) < 0) {
		fprintf(stderr, "cannot empty %s: %s\n", root, strerror(errno));
		abort();
	}
	return 0;
}
