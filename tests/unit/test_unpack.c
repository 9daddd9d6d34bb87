/* Unit tests for imaged/unpack.c: real tar streams (built with libarchive's
 * write API or byte by byte for what no writer would produce), real
 * compression, real extraction into a temporary directory. Needs root
 * (ownership, device nodes, trusted.* xattrs). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>
#include <zstd.h>

#include "digest.h"
#include "macro.h"
#include "unpack.h"

/* ---- growable byte buffers ---- */

struct buf {
	uint8_t *p;
	size_t len, cap;
};

static void buf_append(struct buf *b, const void *d, size_t n)
{
	if (b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap : 4096;
		while (ncap < b->len + n)
			ncap *= 2;
		b->p = realloc(b->p, ncap);
		assert_non_null(b->p);
		b->cap = ncap;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* ---- the test directory: base/a/dest, with a sentinel outside dest ---- */

static char base[64], dest[128], sentinel[128];

static int setup_dirs(void **state)
{
	char p[256];
	int fd;

	snprintf(base, sizeof(base), "/tmp/test_unpack.XXXXXX");
	assert_non_null(mkdtemp(base));
	snprintf(p, sizeof(p), "%s/a", base);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(dest, sizeof(dest), "%s/a/dest", base);
	assert_int_equal(mkdir(dest, 0755), 0);
	snprintf(sentinel, sizeof(sentinel), "%s/sentinel", base);
	assert_int_equal(mkdir(sentinel, 0755), 0);
	snprintf(p, sizeof(p), "%s/keep", sentinel);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "sentinel\n", 9), 9);
	close(fd);
	/* old timestamps, so a write would show */
	struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
	assert_int_equal(utimensat(AT_FDCWD, sentinel, ts, 0), 0);
	return 0;
}

static int teardown_dirs(void **state)
{
	char cmd[256];

	unsetenv("CRIOD_FORCE_ZLIB");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static char *dpath(const char *rel)
{
	static char p[4][PATH_MAX * 2];
	static int i;
	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", dest, rel);
	return p[i];
}

/* Everything outside dest below base, plus host files we must not touch. */
static struct buf snap_buf;

static int snap_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char line[PATH_MAX + 256];
	int n;

	if (strcmp(path, dest) == 0)
		return FTW_SKIP_SUBTREE;
	n = snprintf(line, sizeof(line), "%s mode=%o uid=%u gid=%u size=%lld mtime=%lld.%09ld ctime=%lld.%09ld ino=%lu nlink=%lu\n",
		     path, st->st_mode, st->st_uid, st->st_gid, (long long)st->st_size, (long long)st->st_mtim.tv_sec,
		     st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec, (unsigned long)st->st_ino,
		     (unsigned long)st->st_nlink);
	buf_append(&snap_buf, line, (size_t)n);
	return FTW_CONTINUE;
}

static char *snapshot(void)
{
	static const char *host[] = { "/etc/passwd", "/etc/shadow", "/etc/criod-unpack-escape",
				      "/tmp/criod-unpack-escape", "/criod-unpack-escape" };
	struct stat st;
	char line[PATH_MAX + 256];

	memset(&snap_buf, 0, sizeof(snap_buf));
	assert_int_equal(nftw(base, snap_cb, 16, FTW_PHYS | FTW_ACTIONRETVAL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(host); i++) {
		int n;
		if (lstat(host[i], &st) < 0)
			n = snprintf(line, sizeof(line), "%s missing\n", host[i]);
		else
			n = snprintf(line, sizeof(line), "%s mode=%o uid=%u size=%lld mtime=%lld.%09ld ctime=%lld.%09ld ino=%lu nlink=%lu\n",
				     host[i], st.st_mode, st.st_uid, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
				     st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec,
				     (unsigned long)st.st_ino, (unsigned long)st.st_nlink);
		buf_append(&snap_buf, line, (size_t)n);
	}
	buf_append(&snap_buf, "", 1);
	return (char *)snap_buf.p;
}

/* ---- tar building with libarchive ---- */

static la_ssize_t tar_write_cb(struct archive *a, void *userdata, const void *buf, size_t len)
{
	buf_append(userdata, buf, len);
	return (la_ssize_t)len;
}

struct tb {
	struct archive *a;
	struct buf out;
};

static void tb_open(struct tb *t)
{
	memset(t, 0, sizeof(*t));
	t->a = archive_write_new();
	assert_non_null(t->a);
	assert_int_equal(archive_write_set_format_pax_restricted(t->a), ARCHIVE_OK);
	assert_int_equal(archive_write_open2(t->a, &t->out, NULL, tar_write_cb, NULL, NULL), ARCHIVE_OK);
}

static struct buf tb_close(struct tb *t)
{
	assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
	archive_write_free(t->a);
	return t->out;
}

struct ent {
	const char *path;
	mode_t type; /* AE_IFREG if 0 */
	mode_t perm;
	int64_t uid, gid;
	time_t mtime;
	long nsec;
	const void *data;
	size_t len;
	const char *symlink;
	const char *hardlink;
	unsigned maj, min;
	const char *xkey[4];
	const void *xval[4];
	size_t xlen[4];
};

static void tb_add(struct tb *t, const struct ent *x)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, x->path);
	archive_entry_set_filetype(e, x->type ? x->type : AE_IFREG);
	archive_entry_set_perm(e, x->perm ? x->perm : (x->type == AE_IFDIR ? 0755 : 0644));
	archive_entry_set_uid(e, x->uid);
	archive_entry_set_gid(e, x->gid);
	archive_entry_set_mtime(e, x->mtime ? x->mtime : 1600000000, x->nsec);
	if (x->symlink)
		archive_entry_set_symlink(e, x->symlink);
	if (x->hardlink)
		archive_entry_set_hardlink(e, x->hardlink);
	if (x->type == AE_IFCHR || x->type == AE_IFBLK) {
		archive_entry_set_rdevmajor(e, x->maj);
		archive_entry_set_rdevminor(e, x->min);
	}
	for (int i = 0; i < 4 && x->xkey[i]; i++)
		archive_entry_xattr_add_entry(e, x->xkey[i], x->xval[i], x->xlen[i]);
	archive_entry_set_size(e, (la_int64_t)(x->hardlink ? 0 : x->len));
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	if (x->len && !x->hardlink)
		assert_int_equal(archive_write_data(t->a, x->data, x->len), (la_ssize_t)x->len);
	archive_entry_free(e);
}

static void tb_file(struct tb *t, const char *path, const char *data)
{
	tb_add(t, &(struct ent){ .path = path, .data = data, .len = strlen(data) });
}

static void tb_dir(struct tb *t, const char *path)
{
	tb_add(t, &(struct ent){ .path = path, .type = AE_IFDIR });
}

static void tb_symlink(struct tb *t, const char *path, const char *target)
{
	tb_add(t, &(struct ent){ .path = path, .type = AE_IFLNK, .perm = 0777, .symlink = target });
}

static void tb_hardlink(struct tb *t, const char *path, const char *target)
{
	tb_add(t, &(struct ent){ .path = path, .hardlink = target });
}

/* ---- raw tar, for what libarchive's writer would not produce ---- */

static void octal(char *f, size_t w, uint64_t v)
{
	snprintf(f, w, "%0*llo", (int)w - 1, (unsigned long long)v);
}

/* A ustar header claiming `size`, followed by len bytes of data padded
 * to the block (a short len makes a truncated archive). */
static void raw_entry(struct buf *b, const char *name, char type, const char *linkname, uint64_t size,
		      const void *data, size_t len)
{
	uint8_t h[512] = { 0 };
	unsigned sum = 0;
	static const uint8_t zeros[512];

	assert_true(strlen(name) < 100);
	memcpy(h, name, strlen(name));
	octal((char *)h + 100, 8, type == '5' ? 0755 : 0644);
	octal((char *)h + 108, 8, 0);
	octal((char *)h + 116, 8, 0);
	octal((char *)h + 124, 12, size);
	octal((char *)h + 136, 12, 1600000000);
	memset(h + 148, ' ', 8);
	h[156] = (uint8_t)type;
	if (linkname)
		memcpy(h + 157, linkname, strlen(linkname));
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	buf_append(b, h, 512);
	buf_append(b, data, len);
	if (len % 512)
		buf_append(b, zeros, 512 - len % 512);
}

/* A pax extended header with one record key=value (value may hold NULs). */
static void raw_pax(struct buf *b, const char *key, const void *val, size_t vlen)
{
	struct buf rec = { 0 };
	size_t body = strlen(key) + vlen + 3, total = body + 1, digits;
	char num[32];

	for (;;) { /* the length counts its own digits */
		digits = (size_t)snprintf(num, sizeof(num), "%zu", total);
		if (body + digits == total)
			break;
		total = body + digits;
	}
	buf_append(&rec, num, digits);
	buf_append(&rec, " ", 1);
	buf_append(&rec, key, strlen(key));
	buf_append(&rec, "=", 1);
	buf_append(&rec, val, vlen);
	buf_append(&rec, "\n", 1);
	assert_int_equal(rec.len, total);
	raw_entry(b, "PaxHeader", 'x', NULL, rec.len, rec.p, rec.len);
	buf_free(&rec);
}

static void raw_end(struct buf *b)
{
	static const uint8_t zeros[1024];
	buf_append(b, zeros, sizeof(zeros));
}

/* ---- compression ---- */

static struct buf gzip_of(const void *in, size_t len)
{
	struct buf out = { 0 };
	z_stream z = { 0 };
	uint8_t chunk[16384];
	int ret;

	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		ret = deflate(&z, Z_FINISH);
		assert_true(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR);
		buf_append(&out, chunk, sizeof(chunk) - z.avail_out);
	} while (ret != Z_STREAM_END);
	deflateEnd(&z);
	return out;
}

static struct buf zstd_of(const void *in, size_t len)
{
	struct buf out = { 0 };
	size_t bound = ZSTD_compressBound(len), n;
	ZSTD_CCtx *cc = ZSTD_createCCtx();

	assert_non_null(cc);
	/* with the content checksum, as registries' encoders write it */
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1)));
	out.p = malloc(bound);
	assert_non_null(out.p);
	out.cap = bound;
	n = ZSTD_compress2(cc, out.p, bound, in, len);
	assert_false(ZSTD_isError(n));
	out.len = n;
	ZSTD_freeCCtx(cc);
	return out;
}

static struct buf compress_as(enum layer_compression comp, const struct buf *tar)
{
	struct buf out = { 0 };

	switch (comp) {
	case LAYER_GZIP:
		return gzip_of(tar->p, tar->len);
	case LAYER_ZSTD:
		return zstd_of(tar->p, tar->len);
	default:
		buf_append(&out, tar->p, tar->len);
		return out;
	}
}

/* ---- running the extraction ---- */

struct memsrc {
	const uint8_t *p;
	size_t len, pos, chunk;
	ssize_t fail_with; /* returned once the data is exhausted, if set */
};

static ssize_t mem_read(void *userdata, void *buf, size_t len)
{
	struct memsrc *m = userdata;
	size_t n = m->len - m->pos;

	if (n == 0 && m->fail_with)
		return m->fail_with;
	if (n > len)
		n = len;
	if (n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static char errbuf[1024];

static int run_chunked(const struct buf *blob, enum layer_compression comp, enum whiteout_mode mode,
		       struct unpack_result *res, size_t chunk)
{
	struct memsrc m = { .p = blob->p, .len = blob->len, .chunk = chunk };
	struct unpack_result tmp;
	int fd, r;

	fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	errbuf[0] = '\0';
	r = unpack_layer(fd, comp, mode, mem_read, &m, res ? res : &tmp, errbuf, sizeof(errbuf));
	close(fd);
	if (getenv("TEST_UNPACK_VERBOSE"))
		fprintf(stderr, "unpack_layer: r=%d err=%s\n", r, errbuf);
	if (r == 0)
		assert_int_equal(m.pos, m.len); /* the whole blob was consumed */
	return r;
}

static int run(const struct buf *blob, enum layer_compression comp, enum whiteout_mode mode,
	       struct unpack_result *res)
{
	return run_chunked(blob, comp, mode, res, 7919); /* odd chunks cross every boundary */
}

/* Run a hostile layer and check nothing outside dest changed. */
static int run_hostile(const struct buf *tar, enum whiteout_mode mode)
{
	_cleanup_free_ char *before = strdup(snapshot());
	char *after;
	int r;

	buf_free(&snap_buf);
	r = run(tar, LAYER_PLAIN, mode, NULL);
	after = snapshot();
	assert_string_equal(before, after);
	buf_free(&snap_buf);
	return r;
}

static void assert_file(const char *rel, const char *content)
{
	char buf[4096];
	int fd = open(dpath(rel), O_RDONLY | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		fail_msg("%s: %s", rel, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, content);
}

static void assert_missing(const char *rel)
{
	struct stat st;
	if (lstat(dpath(rel), &st) == 0)
		fail_msg("%s exists", rel);
	assert_int_equal(errno, ENOENT);
}

static struct stat lstat_of(const char *rel)
{
	struct stat st;
	if (lstat(dpath(rel), &st) < 0)
		fail_msg("%s: %s", rel, strerror(errno));
	return st;
}

static void assert_diff_id(const struct unpack_result *res, const struct buf *tar)
{
	char want[DIGEST_STR_MAX];

	digest_buffer(tar->p, tar->len, want);
	assert_string_equal(res->diff_id, want);
	assert_int_equal(res->tar_bytes, tar->len);
}

/* ---- a representative layer ---- */

static const uint8_t cap_blob[20] = {
	/* VFS_CAP_REVISION_2 | effective; permitted = CAP_NET_BIND_SERVICE */
	0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static uint8_t *big_data(size_t len)
{
	uint8_t *p = malloc(len);
	uint32_t x = 12345;

	assert_non_null(p);
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
	return p;
}

#define BIG_LEN (700 * 1024 + 3)

static struct buf std_tar(void)
{
	struct tb t;
	_cleanup_free_ uint8_t *big = big_data(BIG_LEN);

	tb_open(&t);
	tb_add(&t, &(struct ent){ .path = "./", .type = AE_IFDIR, .perm = 0751 });
	tb_add(&t, &(struct ent){ .path = "./d/", .type = AE_IFDIR, .perm = 0750, .uid = 1000, .gid = 2000, .mtime = 1000000 });
	tb_add(&t, &(struct ent){ .path = "d/f", .perm = 04755, .uid = 1000, .gid = 1001, .mtime = 1234567890, .nsec = 123456789,
				  .data = "hello\n", .len = 6,
				  .xkey = { "user.foo", "trusted.t", "security.capability", "trusted.overlay.opaque" },
				  .xval = { "bar", "1", cap_blob, "y" },
				  .xlen = { 3, 1, sizeof(cap_blob), 1 } });
	tb_add(&t, &(struct ent){ .path = "sgid", .perm = 02711, .gid = 50, .data = "x", .len = 1 });
	tb_add(&t, &(struct ent){ .path = "sticky", .type = AE_IFDIR, .perm = 01777 });
	tb_add(&t, &(struct ent){ .path = "d/l", .type = AE_IFLNK, .perm = 0777, .uid = 1001, .gid = 1002, .mtime = 1500000000,
				  .symlink = "../d/f" });
	tb_hardlink(&t, "d/h", "d/f");
	tb_add(&t, &(struct ent){ .path = "dev/null2", .type = AE_IFCHR, .perm = 0666, .maj = 1, .min = 3 });
	tb_add(&t, &(struct ent){ .path = "dev/loop9", .type = AE_IFBLK, .perm = 0660, .gid = 6, .maj = 7, .min = 9 });
	tb_add(&t, &(struct ent){ .path = "p", .type = AE_IFIFO, .perm = 0620, .uid = 3 });
	tb_add(&t, &(struct ent){ .path = "empty", .perm = 0400 });
	tb_add(&t, &(struct ent){ .path = "deep/er/big", .data = big, .len = BIG_LEN });
	return tb_close(&t);
}

static void check_std(const struct unpack_result *res, const struct buf *tar)
{
	struct stat st;
	char buf[256];
	ssize_t n;
	int fd;
	_cleanup_free_ uint8_t *big = big_data(BIG_LEN), *got = malloc(BIG_LEN + 1);

	assert_diff_id(res, tar);
	assert_int_equal(res->entries, 12);

	st = lstat_of(".");
	assert_int_equal(st.st_mode & 07777, 0751);

	st = lstat_of("d");
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 2000);
	assert_int_equal(st.st_mtim.tv_sec, 1000000); /* set after its children */
	assert_int_equal(st.st_mtim.tv_nsec, 0);

	assert_file("d/f", "hello\n");
	st = lstat_of("d/f");
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 04755);
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_gid, 1001);
	assert_int_equal(st.st_mtim.tv_sec, 1234567890);
	assert_int_equal(st.st_mtim.tv_nsec, 123456789);
	assert_int_equal(st.st_nlink, 2);
	n = lgetxattr(dpath("d/f"), "user.foo", buf, sizeof(buf));
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "bar", 3);
	n = lgetxattr(dpath("d/f"), "trusted.t", buf, sizeof(buf));
	assert_int_equal(n, 1);
	assert_memory_equal(buf, "1", 1);
	n = lgetxattr(dpath("d/f"), "security.capability", buf, sizeof(buf));
	assert_int_equal(n, sizeof(cap_blob));
	assert_memory_equal(buf, cap_blob, sizeof(cap_blob));
	/* overlay metadata never comes from the layer */
	assert_int_equal(lgetxattr(dpath("d/f"), "trusted.overlay.opaque", buf, sizeof(buf)), -1);

	st = lstat_of("sgid");
	assert_int_equal(st.st_mode & 07777, 02711);
	assert_int_equal(st.st_gid, 50);
	st = lstat_of("sticky");
	assert_int_equal(st.st_mode & 07777, 01777);

	st = lstat_of("d/l");
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_uid, 1001);
	assert_int_equal(st.st_gid, 1002);
	assert_int_equal(st.st_mtim.tv_sec, 1500000000);
	n = readlink(dpath("d/l"), buf, sizeof(buf));
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "../d/f", 6);

	struct stat a = lstat_of("d/f"), b = lstat_of("d/h");
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_dev, b.st_dev);

	st = lstat_of("dev/null2");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(1, 3));
	assert_int_equal(st.st_mode & 07777, 0666);
	st = lstat_of("dev/loop9");
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(7, 9));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, 6);
	st = lstat_of("dev");
	assert_int_equal(st.st_mode & 07777, 0755); /* implicit parent */
	assert_int_equal(st.st_uid, 0);
	st = lstat_of("p");
	assert_true(S_ISFIFO(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0620);
	assert_int_equal(st.st_uid, 3);

	st = lstat_of("empty");
	assert_int_equal(st.st_size, 0);
	assert_int_equal(st.st_mode & 07777, 0400);

	fd = open(dpath("deep/er/big"), O_RDONLY);
	assert_true(fd >= 0);
	size_t got_len = 0;
	while ((n = read(fd, got + got_len, BIG_LEN + 1 - got_len)) > 0)
		got_len += (size_t)n;
	close(fd);
	assert_int_equal(got_len, BIG_LEN);
	assert_memory_equal(got, big, BIG_LEN);
}

static void test_plain(void **state)
{
	struct buf tar = std_tar();
	struct unpack_result res;

	assert_int_equal(run(&tar, LAYER_PLAIN, WHITEOUT_OVERLAY, &res), 0);
	check_std(&res, &tar);
	buf_free(&tar);
}

static void test_plain_big_chunks(void **state)
{
	struct buf tar = std_tar();
	struct unpack_result res;

	assert_int_equal(run_chunked(&tar, LAYER_PLAIN, WHITEOUT_APPLY, &res, 1 << 20), 0);
	check_std(&res, &tar);
	buf_free(&tar);
}

static void test_gzip_isal(void **state)
{
	struct buf tar = std_tar(), gz = gzip_of(tar.p, tar.len);
	struct unpack_result res;

	unsetenv("CRIOD_FORCE_ZLIB");
	assert_int_equal(run(&gz, LAYER_GZIP, WHITEOUT_OVERLAY, &res), 0);
	check_std(&res, &tar);
	buf_free(&tar);
	buf_free(&gz);
}

static void test_gzip_zlib(void **state)
{
	struct buf tar = std_tar(), gz = gzip_of(tar.p, tar.len);
	struct unpack_result res;

	setenv("CRIOD_FORCE_ZLIB", "1", 1);
	assert_int_equal(run(&gz, LAYER_GZIP, WHITEOUT_OVERLAY, &res), 0);
	unsetenv("CRIOD_FORCE_ZLIB");
	check_std(&res, &tar);
	buf_free(&tar);
	buf_free(&gz);
}

/* Three members split at odd places (even inside a tar header). */
static void multi_member(bool zlib, size_t chunk)
{
	struct buf tar = std_tar(), gz = { 0 };
	size_t cut[4] = { 0, 777, tar.len / 2 + 5, tar.len };
	struct unpack_result res;
	char cmd[512];

	for (int i = 0; i < 3; i++) {
		struct buf m = gzip_of(tar.p + cut[i], cut[i + 1] - cut[i]);
		buf_append(&gz, m.p, m.len);
		buf_free(&m);
	}
	if (zlib)
		setenv("CRIOD_FORCE_ZLIB", "1", 1);
	assert_int_equal(run_chunked(&gz, LAYER_GZIP, WHITEOUT_OVERLAY, &res, chunk), 0);
	unsetenv("CRIOD_FORCE_ZLIB");
	check_std(&res, &tar);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/* && chmod 0755 '%s'", dest, dest);
	assert_int_equal(system(cmd), 0);
	buf_free(&tar);
	buf_free(&gz);
}

static void test_gzip_multi_member(void **state)
{
	multi_member(false, 7919);
	multi_member(true, 7919);
	multi_member(false, 1);
	multi_member(true, 1 << 20);
}

static void test_zstd(void **state)
{
	struct buf tar = std_tar(), z = { 0 };
	struct unpack_result res;

	/* two frames */
	struct buf f1 = zstd_of(tar.p, 10000), f2 = zstd_of(tar.p + 10000, tar.len - 10000);
	buf_append(&z, f1.p, f1.len);
	buf_append(&z, f2.p, f2.len);
	assert_int_equal(run(&z, LAYER_ZSTD, WHITEOUT_OVERLAY, &res), 0);
	check_std(&res, &tar);
	buf_free(&f1);
	buf_free(&f2);
	buf_free(&z);
	buf_free(&tar);
}

static void test_trailing_garbage_in_tar(void **state)
{
	struct tb t;
	struct buf tar;
	struct unpack_result res;

	tb_open(&t);
	tb_file(&t, "a", "A");
	tar = tb_close(&t);
	for (int i = 0; i < 3000; i++)
		buf_append(&tar, "G", 1);
	for (int comp = LAYER_PLAIN; comp <= LAYER_ZSTD; comp++) {
		struct buf blob = compress_as(comp, &tar);
		assert_int_equal(run(&blob, comp, WHITEOUT_OVERLAY, &res), 0);
		assert_diff_id(&res, &tar); /* covers the garbage too */
		assert_int_equal(res.entries, 1);
		assert_file("a", "A");
		buf_free(&blob);
	}
	buf_free(&tar);
}

static void test_trailing_garbage_after_gzip(void **state)
{
	struct tb t;
	struct buf tar, gz;

	tb_open(&t);
	tb_file(&t, "a", "A");
	tar = tb_close(&t);
	gz = gzip_of(tar.p, tar.len);
	buf_append(&gz, "garbage!", 8);
	assert_int_equal(run(&gz, LAYER_GZIP, WHITEOUT_OVERLAY, NULL), -EBADMSG);
	setenv("CRIOD_FORCE_ZLIB", "1", 1);
	assert_int_equal(run(&gz, LAYER_GZIP, WHITEOUT_OVERLAY, NULL), -EBADMSG);
	unsetenv("CRIOD_FORCE_ZLIB");
	buf_free(&gz);
	buf_free(&tar);
}

static void test_corrupt_and_truncated(void **state)
{
	struct buf tar = std_tar();

	for (int comp = LAYER_GZIP; comp <= LAYER_ZSTD; comp++) {
		for (int zlib = 0; zlib < (comp == LAYER_GZIP ? 2 : 1); zlib++) {
			struct buf blob = compress_as(comp, &tar), bad = { 0 };
			int r;

			if (zlib)
				setenv("CRIOD_FORCE_ZLIB", "1", 1);
			/* corrupt the middle */
			buf_append(&bad, blob.p, blob.len);
			for (size_t i = bad.len / 3; i < bad.len / 3 + 64; i++)
				bad.p[i] ^= 0x5a;
			r = run(&bad, comp, WHITEOUT_OVERLAY, NULL);
			assert_int_equal(r, -EBADMSG);
			assert_true(strlen(errbuf) > 0);
			/* cut in the middle */
			bad.len = blob.len / 2;
			memcpy(bad.p, blob.p, bad.len);
			assert_int_equal(run(&bad, comp, WHITEOUT_OVERLAY, NULL), -EBADMSG);
			/* only the last 3 bytes missing: the tar is complete, the
			 * compressed stream is not */
			bad.len = blob.len - 3;
			assert_int_equal(run(&bad, comp, WHITEOUT_OVERLAY, NULL), -EBADMSG);
			assert_non_null(strstr(errbuf, "truncated"));
			/* empty */
			bad.len = 0;
			assert_int_equal(run(&bad, comp, WHITEOUT_OVERLAY, NULL), -EBADMSG);
			unsetenv("CRIOD_FORCE_ZLIB");
			buf_free(&bad);
			buf_free(&blob);
		}
	}
	buf_free(&tar);
}

static void test_truncated_tar(void **state)
{
	struct buf tar = { 0 };
	char data[1000];

	memset(data, 'x', sizeof(data));
	raw_entry(&tar, "huge", '0', NULL, 1ull << 30, data, sizeof(data));
	for (int comp = LAYER_PLAIN; comp <= LAYER_ZSTD; comp++) {
		struct buf blob = compress_as(comp, &tar);
		assert_int_equal(run(&blob, comp, WHITEOUT_OVERLAY, NULL), -EBADMSG);
		assert_non_null(strstr(errbuf, "huge"));
		buf_free(&blob);
	}
	buf_free(&tar);
}

static void test_not_a_tar(void **state)
{
	struct buf junk = { 0 };
	_cleanup_free_ uint8_t *rnd = big_data(5000);

	buf_append(&junk, rnd, 5000);
	assert_int_equal(run(&junk, LAYER_PLAIN, WHITEOUT_OVERLAY, NULL), -EBADMSG);
	buf_free(&junk);
}

static void test_read_error(void **state)
{
	struct buf tar = std_tar();
	struct memsrc m = { .p = tar.p, .len = tar.len / 2, .chunk = 4096, .fail_with = -EIO };
	struct unpack_result res;
	int fd = open(dest, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	assert_int_equal(unpack_layer(fd, LAYER_PLAIN, WHITEOUT_OVERLAY, mem_read, &m, &res, errbuf, sizeof(errbuf)),
			 -EIO);
	assert_int_equal(unpack_layer(fd, LAYER_UNSUPPORTED, WHITEOUT_OVERLAY, mem_read, &m, &res, errbuf,
				      sizeof(errbuf)),
			 -ENOTSUP);
	close(fd);
	buf_free(&tar);
}

static void test_empty_tar(void **state)
{
	struct tb t;
	struct buf tar;
	struct unpack_result res;

	tb_open(&t);
	tar = tb_close(&t);
	assert_int_equal(run(&tar, LAYER_PLAIN, WHITEOUT_OVERLAY, &res), 0);
	assert_diff_id(&res, &tar);
	assert_int_equal(res.entries, 0);
	buf_free(&tar);
}

/* A 96 MiB file of zeros in ~100 KiB of gzip: streamed, not buffered. */
static void test_gzip_bomb_streams(void **state)
{
	const size_t size = 96u << 20;
	struct buf gz = { 0 }, head = { 0 };
	z_stream z = { 0 };
	static uint8_t zeros[1 << 16], chunk[1 << 16];
	struct rusage ru0, ru1;
	struct unpack_result res;
	struct stat st;
	size_t left = size;

	raw_entry(&head, "zeros", '0', NULL, size, NULL, 0);
	assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
	for (int phase = 0; phase < 3; phase++) {
		const uint8_t *in = phase == 0 ? head.p : zeros;
		size_t n = phase == 0 ? head.len : phase == 1 ? left : 1024;
		int flush = phase == 2 ? Z_FINISH : Z_NO_FLUSH;
		int ret;

		do {
			size_t take = n > sizeof(zeros) ? sizeof(zeros) : n;
			z.next_in = (Bytef *)(uintptr_t)in;
			z.avail_in = (uInt)take;
			n -= take;
			do {
				z.next_out = chunk;
				z.avail_out = sizeof(chunk);
				ret = deflate(&z, n == 0 ? flush : Z_NO_FLUSH);
				buf_append(&gz, chunk, sizeof(chunk) - z.avail_out);
			} while (z.avail_out == 0);
		} while (n > 0);
		(void)ret;
	}
	deflateEnd(&z);
	buf_free(&head);
	assert_true(gz.len < 1u << 20);

	getrusage(RUSAGE_SELF, &ru0);
	assert_int_equal(run_chunked(&gz, LAYER_GZIP, WHITEOUT_OVERLAY, &res, 1 << 16), 0);
	getrusage(RUSAGE_SELF, &ru1);
	assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 32 * 1024); /* KiB */
	assert_int_equal(res.tar_bytes, 512 + size + 1024);
	st = lstat_of("zeros");
	assert_int_equal(st.st_size, size);
	buf_free(&gz);
}

/* ---- limits ([imaged] max_layer_size, max_layer_entries, min_free_space) ---- */

static int run_limited(const struct buf *blob, enum layer_compression comp, const struct unpack_limits *lim,
		       struct unpack_result *res)
{
	struct memsrc m = { .p = blob->p, .len = blob->len, .chunk = 1 << 16 };
	int fd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	assert_true(fd >= 0);
	errbuf[0] = '\0';
	r = unpack_layer_limited(fd, comp, WHITEOUT_OVERLAY, mem_read, &m, lim, res, errbuf, sizeof(errbuf));
	close(fd);
	return r;
}

static void test_limits(void **state)
{
	struct buf tar = std_tar();
	struct buf zst = compress_as(LAYER_ZSTD, &tar);
	struct unpack_result res;

	/* Within the limits (and none): unpacked as without. */
	struct unpack_limits roomy = { .max_bytes = tar.len, .max_entries = 100, .min_free = 1 };
	assert_int_equal(run_limited(&zst, LAYER_ZSTD, &roomy, &res), 0);
	assert_int_equal(res.tar_bytes, tar.len);
	struct unpack_limits none = { 0 };
	assert_int_equal(run_limited(&zst, LAYER_ZSTD, &none, &res), 0);

	/* One byte less than the tar stream: refused as the bytes stream. */
	struct unpack_limits small = { .max_bytes = tar.len - 1 };
	assert_int_equal(run_limited(&zst, LAYER_ZSTD, &small, &res), -EFBIG);
	assert_non_null(strstr(errbuf, "max_layer_size"));
	assert_int_equal(run_limited(&tar, LAYER_PLAIN, &small, &res), -EFBIG);

	/* Entries: the first one too many is refused before it is written. */
	struct unpack_limits few = { .max_entries = 3 };
	assert_int_equal(run_limited(&zst, LAYER_ZSTD, &few, &res), -E2BIG);
	assert_non_null(strstr(errbuf, "max_layer_entries (3)"));
	assert_int_equal(res.entries, 4);

	/* Free space: more than any filesystem here has. */
	struct unpack_limits full = { .min_free = UINT64_MAX / 2 };
	assert_int_equal(run_limited(&zst, LAYER_ZSTD, &full, &res), -ENOSPC);
	assert_non_null(strstr(errbuf, "min_free_space"));
	buf_free(&zst);
	buf_free(&tar);
}

/* ---- whiteouts ---- */

static void test_overlay_whiteouts(void **state)
{
	struct tb t;
	struct buf tar;
	struct stat st;
	char v[8];

	tb_open(&t);
	tb_file(&t, ".wh.gone", "");
	tb_dir(&t, "d");
	tb_file(&t, "d/.wh..wh..opq", "");
	tb_file(&t, "d/keep", "k");
	tb_file(&t, "d/.wh.x", "");
	tb_file(&t, "e/.wh..wh..opq", ""); /* directory only implied */
	tb_file(&t, ".wh..wh.plnk", "");    /* aufs metadata, ignored */
	tar = tb_close(&t);

	assert_int_equal(run(&tar, LAYER_PLAIN, WHITEOUT_OVERLAY, NULL), 0);
	st = lstat_of("gone");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(0, 0));
	assert_int_equal(st.st_mode & 07777, 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, 0);
	st = lstat_of("d/x");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, 0);
	assert_int_equal(lgetxattr(dpath("d"), "trusted.overlay.opaque", v, sizeof(v)), 1);
	assert_int_equal(v[0], 'y');
	assert_int_equal(lgetxattr(dpath("e"), "trusted.overlay.opaque", v, sizeof(v)), 1);
	assert_file("d/keep", "k");
	assert_missing(".wh.gone");
	assert_missing("d/.wh..wh..opq");
	assert_missing("d/.wh.x");
	assert_missing(".wh..wh.plnk");
	assert_missing("plnk");
	buf_free(&tar);

	/* ".wh.." is no whiteout of anything */
	tb_open(&t);
	tb_file(&t, "d/.wh..", "");
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), -EINVAL);
	buf_free(&tar);
}

/* WHITEOUT_OVERLAY_LISTED (imaged-fetch, without CAP_SYS_ADMIN): the
 * opaque directories come back listed, once each, and are not marked. */
static void test_overlay_opaque_listed(void **state)
{
	struct tb t;
	struct buf tar;
	struct unpack_result res;
	char v[8];

	tb_open(&t);
	tb_dir(&t, "d");
	tb_file(&t, "d/.wh..wh..opq", "");
	tb_file(&t, "d/.wh..wh..opq", ""); /* twice: listed once */
	tb_file(&t, "d/keep", "k");
	tb_file(&t, "e/f/.wh..wh..opq", ""); /* directories only implied */
	tb_file(&t, ".wh..wh..opq", "");     /* the layer's root */
	tb_file(&t, "d/.wh.x", "");
	tar = tb_close(&t);

	assert_int_equal(run(&tar, LAYER_PLAIN, WHITEOUT_OVERLAY_LISTED, &res), 0);
	assert_int_equal(res.n_opaque, 3);
	assert_string_equal(res.opaque[0], "d");
	assert_string_equal(res.opaque[1], "e/f");
	assert_string_equal(res.opaque[2], ".");
	assert_int_equal(lgetxattr(dpath("d"), "trusted.overlay.opaque", v, sizeof(v)), -1);
	assert_int_equal(lgetxattr(dpath("e/f"), "trusted.overlay.opaque", v, sizeof(v)), -1);
	assert_true(S_ISCHR(lstat_of("d/x").st_mode));
	assert_file("d/keep", "k");
	assert_missing("d/.wh..wh..opq");
	unpack_result_free(&res);
	assert_null(res.opaque);
	assert_int_equal(res.n_opaque, 0);
	buf_free(&tar);
}

static void test_apply_whiteouts(void **state)
{
	struct tb t;
	struct buf lower, upper;
	struct unpack_result res;
	char v[8];

	tb_open(&t);
	tb_file(&t, "d/old1", "o1");
	tb_file(&t, "d/sub/old2", "o2");
	tb_file(&t, "d/same", "lower");
	tb_file(&t, "e/keep", "k");
	tb_file(&t, "x/gone", "g");
	tb_file(&t, "tree/a/b/c", "c");
	tb_symlink(&t, "tree/a/link", "/etc");
	tb_file(&t, "f", "f");
	lower = tb_close(&t);
	assert_int_equal(run(&lower, LAYER_PLAIN, WHITEOUT_APPLY, NULL), 0);

	tb_open(&t);
	tb_file(&t, "d/new1", "n1"); /* before the marker: stays */
	tb_file(&t, "d/same", "upper");
	tb_file(&t, "d/.wh..wh..opq", "");
	tb_file(&t, "d/new2", "n2"); /* after it */
	tb_dir(&t, "d/sub");
	tb_file(&t, "d/sub/new3", "n3");
	tb_file(&t, "x/.wh.gone", "");
	tb_file(&t, ".wh.tree", "");
	tb_file(&t, "e/.wh.nothing", "");
	tb_file(&t, "nowhere/.wh.x", "");
	tb_file(&t, "nowhere2/.wh..wh..opq", "");
	upper = tb_close(&t);
	assert_int_equal(run(&upper, LAYER_PLAIN, WHITEOUT_APPLY, &res), 0);
	assert_int_equal(res.entries, 11);

	assert_file("d/new1", "n1");
	assert_file("d/new2", "n2");
	assert_file("d/same", "upper");
	assert_file("d/sub/new3", "n3");
	assert_missing("d/old1");
	assert_missing("d/sub/old2");
	assert_file("e/keep", "k");
	assert_missing("x/gone");
	assert_true(S_ISDIR(lstat_of("x").st_mode));
	assert_missing("tree");
	assert_file("f", "f");
	assert_missing("nowhere");
	assert_missing("nowhere2");
	assert_missing("d/.wh..wh..opq");
	assert_missing("x/.wh.gone");
	/* apply mode writes no overlay metadata */
	assert_int_equal(lgetxattr(dpath("d"), "trusted.overlay.opaque", v, sizeof(v)), -1);
	buf_free(&upper);

	/* a hardlink to a lower layer's file is refused */
	tb_open(&t);
	tb_hardlink(&t, "e/h", "e/keep");
	upper = tb_close(&t);
	assert_int_equal(run_hostile(&upper, WHITEOUT_APPLY), -ENOENT);
	assert_missing("e/h");
	buf_free(&upper);
	buf_free(&lower);
}

/* ---- hostile layers ---- */

static void test_hostile_dotdot(void **state)
{
	static const struct {
		const char *name;
		int r;
	} cases[] = {
		{ "../../etc/criod-unpack-escape", -EXDEV },
		{ "../x", -EXDEV },
		{ "a/../../x", -EXDEV },
		{ "/../../../../../../../../etc/criod-unpack-escape", -EXDEV },
		{ "./../x", -EXDEV },
		{ "a/../b", -EINVAL },
		{ "a/..", -EINVAL },
		{ "..", -EXDEV },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct buf tar = { 0 };
		raw_entry(&tar, cases[i].name, '0', NULL, 5, "evil\n", 5);
		raw_end(&tar);
		assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), cases[i].r);
		if (!strstr(errbuf, "entry \""))
			fail_msg("error does not name the entry: %s", errbuf);
		if (cases[i].r == -EXDEV)
			assert_non_null(strstr(errbuf, "escapes the layer root"));
		buf_free(&tar);
	}
	assert_missing("x");
	assert_missing("b");
}

static void test_hostile_absolute(void **state)
{
	struct buf tar = { 0 };

	raw_entry(&tar, "/abs/x", '0', NULL, 2, "in", 2);
	raw_entry(&tar, "//./abs//y", '0', NULL, 2, "in", 2);
	raw_entry(&tar, "/", '5', NULL, 0, NULL, 0);
	raw_end(&tar);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), 0);
	assert_file("abs/x", "in");
	assert_file("abs/y", "in");
	buf_free(&tar);
}

static void test_hostile_symlink_escape(void **state)
{
	struct tb t;
	struct buf tar;
	char abs_sentinel_keep[256];

	snprintf(abs_sentinel_keep, sizeof(abs_sentinel_keep), "%s/keep", sentinel);

	tb_open(&t);
	tb_symlink(&t, "a", "/");
	tb_file(&t, "a/etc/criod-unpack-escape", "via abs");
	tb_symlink(&t, "b", "../../../../..");
	tb_file(&t, "b/tmp/criod-unpack-escape", "via dotdot");
	tb_symlink(&t, "c", "a/b/../../../..");
	tb_file(&t, "c/c-file", "via relative");
	/* a symlink as the final component is replaced, never followed */
	tb_symlink(&t, "f", "/etc/passwd");
	tb_file(&t, "f", "replaced");
	tb_symlink(&t, "g", abs_sentinel_keep);
	tb_file(&t, "g", "replaced");
	/* a directory entry over a symlink to the root must not chmod the root */
	tb_symlink(&t, "h", "/");
	tb_add(&t, &(struct ent){ .path = "h", .type = AE_IFDIR, .perm = 0700, .uid = 4242 });
	/* a directory replaced by a symlink, then written through */
	tb_dir(&t, "d");
	tb_file(&t, "d/old", "old");
	tb_symlink(&t, "d", "/");
	tb_file(&t, "d/through", "through");
	tb_add(&t, &(struct ent){ .path = "d/dev/null", .type = AE_IFCHR, .perm = 0666, .maj = 1, .min = 3 });
	tar = tb_close(&t);

	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), 0);
	assert_file("etc/criod-unpack-escape", "via abs");
	assert_file("tmp/criod-unpack-escape", "via dotdot");
	assert_file("c-file", "via relative");
	assert_file("f", "replaced");
	assert_file("g", "replaced");
	assert_true(S_ISLNK(lstat_of("a").st_mode));
	struct stat st = lstat_of("h");
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, 4242);
	st = lstat_of(".");
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_true(S_ISLNK(lstat_of("d").st_mode));
	assert_file("through", "through");
	assert_true(S_ISCHR(lstat_of("dev/null").st_mode));
	buf_free(&tar);

	/* through a symlink to a directory that exists only outside: refused
	 * or kept inside, never outside */
	tb_open(&t);
	tb_symlink(&t, "s", sentinel);
	tb_file(&t, "s/pwned", "x");
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), -ENOENT);
	buf_free(&tar);

	/* same with a dangling relative symlink */
	tb_open(&t);
	tb_symlink(&t, "s2", "../../sentinel");
	tb_file(&t, "s2/pwned", "x");
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), -ENOENT);
	buf_free(&tar);
}

static void test_hostile_hardlinks(void **state)
{
	static const struct {
		const char *target;
		int r;
	} cases[] = {
		{ "../../etc/passwd", -EXDEV },
		{ "../../../../../../../../etc/shadow", -EXDEV },
		{ "/etc/passwd", -ENOENT },
		{ "/etc/shadow", -ENOENT },
		{ "lnk/passwd", -ENOENT }, /* through lnk -> /etc */
		{ "lnk2/keep", -ENOENT },  /* through lnk2 -> the sentinel */
		{ "dir", -EPERM },
		{ "", -EINVAL },
	};
	struct tb t;
	struct buf tar;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		for (int mode = WHITEOUT_OVERLAY; mode <= WHITEOUT_APPLY; mode++) {
			struct buf raw = { 0 };
			int r;

			raw_entry(&raw, "lnk", '2', "/etc", 0, NULL, 0);
			raw_entry(&raw, "lnk2", '2', sentinel, 0, NULL, 0);
			raw_entry(&raw, "dir", '5', NULL, 0, NULL, 0);
			raw_entry(&raw, "h", '1', cases[i].target, 0, NULL, 0);
			raw_end(&raw);
			r = run_hostile(&raw, mode);
			if (cases[i].r == -EINVAL)
				assert_true(r == -EINVAL || r == -EBADMSG); /* empty link name */
			else
				assert_int_equal(r, cases[i].r);
			assert_missing("h");
			buf_free(&raw);
		}
	}

	/* an absolute target naming a file of this layer links to that file */
	tb_open(&t);
	tb_file(&t, "etc/passwd", "layer passwd");
	tb_hardlink(&t, "h", "/etc/passwd");
	tb_symlink(&t, "s", "/etc");
	tb_hardlink(&t, "h2", "s"); /* a link to the symlink itself */
	tb_hardlink(&t, "etc/passwd", "etc/passwd"); /* to itself */
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), 0);
	struct stat a = lstat_of("etc/passwd"), b = lstat_of("h"), c = lstat_of("h2"), s = lstat_of("s");
	assert_int_equal(a.st_ino, b.st_ino);
	assert_file("h", "layer passwd");
	assert_true(S_ISLNK(c.st_mode));
	assert_int_equal(c.st_ino, s.st_ino);
	buf_free(&tar);
}

static void test_hostile_long_names(void **state)
{
	struct tb t;
	struct buf tar;
	char comp[300], *path;
	size_t n = 0;

	/* a component over NAME_MAX */
	memset(comp, 'c', 299);
	comp[299] = '\0';
	tb_open(&t);
	tb_file(&t, comp, "x");
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), -ENAMETOOLONG);
	buf_free(&tar);

	/* a path of PATH_MAX and more */
	path = malloc(PATH_MAX * 2);
	assert_non_null(path);
	while (n < PATH_MAX + 100) {
		memset(path + n, 'p', 99);
		path[n + 99] = '/';
		n += 100;
	}
	memcpy(path + n, "f", 2);
	tb_open(&t);
	tb_file(&t, path, "x");
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), -ENAMETOOLONG);
	buf_free(&tar);

	/* just under PATH_MAX works: 39 levels of 99 characters */
	path[39 * 100] = '\0';
	strcat(path, "f");
	tb_open(&t);
	tb_file(&t, path, "deep");
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), 0);
	int dfd = open(dest, O_RDONLY | O_DIRECTORY);
	int fd = openat(dfd, path, O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	/* and remove_tree_at copes with it */
	path[99] = '\0';
	assert_int_equal(remove_tree_at(dfd, path), 0);
	close(dfd);
	assert_missing(path);
	buf_free(&tar);
	free(path);
}

static void test_hostile_nul_and_empty(void **state)
{
	struct buf tar = { 0 };
	int r;

	/* a pax path with a NUL: whatever the reader makes of it stays inside */
	static const char nulpath[] = "ok\0../../../etc/criod-unpack-escape";
	raw_pax(&tar, "path", nulpath, sizeof(nulpath) - 1);
	raw_entry(&tar, "placeholder", '0', NULL, 3, "nul", 3);
	raw_end(&tar);
	r = run_hostile(&tar, WHITEOUT_OVERLAY);
	assert_true(r == 0 || r == -EINVAL || r == -EBADMSG);
	buf_free(&tar);

	/* a pax path that normalises to nothing, for a file */
	raw_pax(&tar, "path", ".", 1);
	raw_entry(&tar, "placeholder", '0', NULL, 3, "abc", 3);
	raw_end(&tar);
	r = run_hostile(&tar, WHITEOUT_OVERLAY);
	assert_int_equal(r, -EINVAL);
	buf_free(&tar);

	/* a symlink with an empty target */
	raw_entry(&tar, "empty-link", '2', "", 0, NULL, 0);
	raw_end(&tar);
	r = run_hostile(&tar, WHITEOUT_OVERLAY);
	assert_true(r == -EINVAL || r == -EBADMSG);
	assert_missing("empty-link");
	buf_free(&tar);
}

/* Oversized metadata claims must not make the reader allocate them. */
static void test_hostile_huge_headers(void **state)
{
	static const char types[] = { 'x', 'L', 'K', 'g' };
	struct rusage ru0, ru1;

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		struct buf tar = { 0 };
		char data[512];

		memset(data, 'a', sizeof(data));
		raw_entry(&tar, "././@LongLink", types[i], NULL, 1ull << 31, data, sizeof(data));
		getrusage(RUSAGE_SELF, &ru0);
		assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), -EBADMSG);
		getrusage(RUSAGE_SELF, &ru1);
		assert_true(ru1.ru_maxrss - ru0.ru_maxrss < 64 * 1024); /* KiB */
		buf_free(&tar);
	}
}

/* Names are bytes: UTF-8 (or anything else) is kept as is. */
static void test_non_ascii_names(void **state)
{
	struct buf tar = { 0 };
	static const char utf8[] = "caf\xc3\xa9-\xe5\x90\x8d";
	static const char latin1[] = "na\xefve";
	char pax[64];

	raw_entry(&tar, utf8, '0', NULL, 1, "u", 1);
	raw_entry(&tar, latin1, '0', NULL, 1, "l", 1);
	snprintf(pax, sizeof(pax), "dir/%s", utf8);
	raw_pax(&tar, "path", pax, strlen(pax));
	raw_entry(&tar, "placeholder", '0', NULL, 1, "p", 1);
	raw_end(&tar);
	assert_int_equal(run(&tar, LAYER_PLAIN, WHITEOUT_OVERLAY, NULL), 0);
	assert_file(utf8, "u");
	assert_file(latin1, "l");
	assert_file(pax, "p");
	buf_free(&tar);
}

static void test_hostile_file_over_dir(void **state)
{
	struct tb t;
	struct buf tar;

	tb_open(&t);
	tb_file(&t, "d/a/b", "b");
	tb_symlink(&t, "d/a/out", sentinel); /* removed, not followed */
	tb_file(&t, "d", "now a file");
	tb_add(&t, &(struct ent){ .path = "n", .type = AE_IFIFO });
	tb_dir(&t, "n");
	tb_file(&t, "n/x", "x");
	tar = tb_close(&t);
	assert_int_equal(run_hostile(&tar, WHITEOUT_OVERLAY), 0);
	assert_file("d", "now a file");
	assert_file("n/x", "x");
	buf_free(&tar);
}

/* ---- remove_tree_at ---- */

static void test_remove_tree(void **state)
{
	int dfd = open(dest, O_RDONLY | O_DIRECTORY), fd;
	char name[16];
	_cleanup_free_ char *before = NULL;

	assert_true(dfd >= 0);
	/* 100 levels deep (more than stay open), each with files, a symlink
	 * out of the tree and a wide directory at the bottom */
	assert_int_equal(mkdirat(dfd, "t", 0755), 0);
	fd = openat(dfd, "t", O_RDONLY | O_DIRECTORY);
	for (int i = 0; i < 100; i++) {
		int nfd;
		assert_int_equal(symlinkat(sentinel, fd, "out"), 0);
		assert_int_equal(mkfifoat(fd, "fifo", 0600), 0);
		nfd = openat(fd, "file", O_WRONLY | O_CREAT, 0600);
		close(nfd);
		assert_int_equal(mkdirat(fd, "l", 0000), 0); /* unreadable to others */
		nfd = openat(fd, "l", O_RDONLY | O_DIRECTORY);
		close(fd);
		fd = nfd;
	}
	for (int i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "w%d", i);
		assert_int_equal(mkdirat(fd, name, 0755), 0);
	}
	close(fd);

	before = strdup(snapshot());
	buf_free(&snap_buf);
	assert_int_equal(remove_tree_at(dfd, "t"), 0);
	assert_string_equal(before, snapshot());
	buf_free(&snap_buf);
	assert_missing("t");

	/* a symlink is removed itself */
	assert_int_equal(symlinkat(sentinel, dfd, "link"), 0);
	assert_int_equal(remove_tree_at(dfd, "link"), 0);
	assert_missing("link");
	assert_int_equal(access(sentinel, F_OK), 0);
	/* a mount point in the tree (a host directory bind-mounted there) is
	 * never crossed: -EXDEV, and what is beneath the mount stays */
	if (geteuid() == 0) {
		char outside[] = "/tmp/criod-rm-outside-XXXXXX", inside[PATH_MAX], keep[PATH_MAX + 8];
		assert_non_null(mkdtemp(outside));
		snprintf(keep, sizeof(keep), "%s/keep", outside);
		close(open(keep, O_WRONLY | O_CREAT, 0600));
		assert_int_equal(mkdirat(dfd, "m", 0755), 0);
		assert_int_equal(mkdirat(dfd, "m/sub", 0755), 0);
		assert_int_equal(mkdirat(dfd, "m/sub/mnt", 0755), 0);
		snprintf(inside, sizeof(inside), "%s/m/sub/mnt", dest);
		if (mount(outside, inside, NULL, MS_BIND, NULL) == 0) {
			assert_int_equal(remove_tree_at(dfd, "m"), -EXDEV);
			assert_int_equal(access(keep, F_OK), 0);
			assert_int_equal(umount2(inside, MNT_DETACH), 0);
			assert_int_equal(remove_tree_at(dfd, "m"), 0);
			assert_missing("m");
		}
		assert_int_equal(access(keep, F_OK), 0);
		unlink(keep);
		rmdir(outside);
	}
	/* missing is fine, bad names are not */
	assert_int_equal(remove_tree_at(dfd, "nothing"), 0);
	assert_int_equal(remove_tree_at(dfd, ".."), -EINVAL);
	assert_int_equal(remove_tree_at(dfd, "a/b"), -EINVAL);
	assert_int_equal(remove_tree_at(dfd, ""), -EINVAL);
	close(dfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup_dirs, teardown_dirs)
		T(test_plain),
		T(test_plain_big_chunks),
		T(test_gzip_isal),
		T(test_gzip_zlib),
		T(test_gzip_multi_member),
		T(test_zstd),
		T(test_trailing_garbage_in_tar),
		T(test_trailing_garbage_after_gzip),
		T(test_corrupt_and_truncated),
		T(test_truncated_tar),
		T(test_not_a_tar),
		T(test_read_error),
		T(test_empty_tar),
		T(test_gzip_bomb_streams),
		T(test_limits),
		T(test_overlay_whiteouts),
		T(test_overlay_opaque_listed),
		T(test_apply_whiteouts),
		T(test_hostile_dotdot),
		T(test_hostile_absolute),
		T(test_hostile_symlink_escape),
		T(test_hostile_hardlinks),
		T(test_hostile_long_names),
		T(test_hostile_nul_and_empty),
		T(test_hostile_huge_headers),
		T(test_non_ascii_names),
		T(test_hostile_file_over_dir),
		T(test_remove_tree),
#undef T
	};

	if (geteuid() != 0) {
		fprintf(stderr, "test_unpack needs root (ownership, device nodes, trusted xattrs)\n");
		return 77; /* skipped */
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
