/* Streaming, hostile-input-safe layer extraction; see unpack.h.
 *
 * Pipeline: the caller's read callback -> decompressor (ISA-L gzip, zlib
 * gzip fallback, zstd, or passthrough) into one fixed 256 KiB buffer ->
 * sha256 of every uncompressed byte (the diff_id) -> libarchive's tar reader
 * (formats only, no filters) -> our own extraction with *at syscalls. The
 * whole layer is never held in memory: one input buffer, one output buffer,
 * the decoder state, and per-entry metadata.
 *
 * Confinement. Every path is resolved relative to dest_fd: the parent
 * directory of an entry with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
 * | RESOLVE_NO_XDEV), so absolute symlinks and ".." inside symlink targets
 * are clamped to dest; the final component is only ever handled with *at
 * calls that do not follow it (O_NOFOLLOW, O_EXCL, AT_SYMLINK_NOFOLLOW,
 * mkdirat/symlinkat/mknodat/linkat/unlinkat). Missing parents are created
 * one at a time with mkdirat() relative to the already resolved parent.
 *
 * Decisions:
 *  - Entry names: leading "/" and "./", empty and "." components are
 *    dropped ("/abs/x" lands at dest/abs/x). A ".." component is refused,
 *    never clamped: one that would climb above the root ("../x", "a/../../x")
 *    fails with -EXDEV ("escapes the layer root"), any other ("a/../b")
 *    with -EINVAL. Real layers never contain "..", and a lexical clean
 *    would disagree with the filesystem when "a" is a symlink. The same rule
 *    applies to hardlink targets and whiteout names. ".." inside *symlink
 *    targets* is kept verbatim (it is data) and clamped by RESOLVE_IN_ROOT
 *    whenever we resolve through the link.
 *  - "." / "./" / "/" (the root itself) as a directory entry sets owner,
 *    mode, xattrs and mtime of dest; as anything else it is an error.
 *  - Hardlinks: the target must be a non-directory this layer extracted
 *    earlier. In WHITEOUT_OVERLAY mode dest holds only this layer, so the
 *    target must exist in dest (resolved with RESOLVE_IN_ROOT); in
 *    WHITEOUT_APPLY mode it must additionally be a path this layer created
 *    (a lower layer's file is refused, -ENOENT).
 *  - Opaque directories in WHITEOUT_APPLY mode: we keep a hash set of the
 *    normalised paths this layer created, plus all their ancestors. When
 *    ".wh..wh..opq" is seen in D, every child of D that is not in the set
 *    is removed (rm -rf, confined); children in the set that are
 *    directories are walked the same way (an upper directory inside an
 *    opaque one hides the lower contents too), children in the set that are
 *    not directories stay. So the marker works wherever it appears in the
 *    tar: entries of D before it are in the set and kept, entries after it
 *    are created after the purge. Paths are compared as written in the tar
 *    (a layer reaching D through a symlink by another name is not matched).
 *  - "trusted.overlay.*" xattrs in the layer are dropped (debug log): only
 *    our own whiteout translation may set overlay metadata, a layer must not
 *    smuggle in redirects, metacopy or opaque markers. Xattrs the
 *    filesystem refuses (ENOTSUP, EPERM for user.* on special files, ...)
 *    are skipped with a debug log.
 *  - Other ".wh..wh.*" entries (aufs metadata like .wh..wh.plnk) are
 *    ignored, as docker does.
 *  - Data after the tar end-of-archive blocks is drained and hashed; data
 *    after the last gzip member must be another gzip member (like Go's
 *    gzip reader), otherwise the layer is refused.
 *  - Malformed data (corrupt compression, truncated stream, bad tar) is
 *    -EBADMSG; read callback errors are passed through. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <archive.h>
#include <archive_entry.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>
#include <zstd.h>

#include "digest.h"
#include "log.h"
#include "macro.h"
#include "unpack.h"
#include "util.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif

#define UNPACK_BUF_SIZE (256 * 1024)
#define SPACE_CHECK_BYTES (4u << 20) /* statvfs for min_free_space this often */
#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"

/* ---- decompression ---- */

struct source {
	enum layer_compression comp;
	unpack_read_fn read;
	void *userdata;

	uint8_t *in; /* compressed bytes, in[in_pos..in_len) not consumed yet */
	size_t in_len, in_pos;
	bool in_eof;

	bool use_isal;
	struct inflate_state *isal;
	z_stream zs;
	bool zs_init;
	ZSTD_DStream *zstd;
	size_t zstd_hint; /* last ZSTD_decompressStream return: 0 = frame complete */
	bool member_done; /* gzip: the current member ended (trailer checked) */
	bool started;     /* at least one compressed byte was consumed */
	bool done;        /* end of the uncompressed stream */

	uint8_t *out; /* handed to libarchive */
	struct digester *dig;
	uint64_t total;

	/* the caller's limits (unpack_layer_limited), or NULL */
	const struct unpack_limits *lim;
	int dest_fd;             /* whose filesystem min_free is about */
	uint64_t next_space_check; /* at this many uncompressed bytes */

	int err; /* first error, negative errno */
	char errmsg[256];
};

static int source_fail(struct source *s, int r, const char *fmt, ...) _printf_(3, 4);
static int source_fail(struct source *s, int r, const char *fmt, ...)
{
	va_list ap;

	if (!s->err) {
		s->err = -abs(r);
		va_start(ap, fmt);
		vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
		va_end(ap);
	}
	return s->err;
}

static bool force_zlib(void)
{
	const char *e = getenv("CRIOD_FORCE_ZLIB");
	return e && strcmp(e, "1") == 0;
}

static int source_init(struct source *s, enum layer_compression comp, unpack_read_fn read, void *userdata)
{
	memset(s, 0, sizeof(*s));
	s->comp = comp;
	s->read = read;
	s->userdata = userdata;
	s->zstd_hint = 1;
	s->in = malloc(UNPACK_BUF_SIZE);
	s->out = malloc(UNPACK_BUF_SIZE);
	s->dig = digester_new();
	if (!s->in || !s->out || !s->dig)
		return -ENOMEM;

	switch (comp) {
	case LAYER_PLAIN:
		return 0;
	case LAYER_GZIP:
		if (!force_zlib()) {
			s->isal = malloc(sizeof(*s->isal));
			if (s->isal) {
				isal_inflate_init(s->isal);
				s->isal->crc_flag = ISAL_GZIP;
				s->use_isal = true;
				return 0;
			}
			log_debug(NULL, "ISA-L inflate unavailable, using zlib");
		}
		if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
			return -ENOMEM;
		s->zs_init = true;
		return 0;
	case LAYER_ZSTD:
		s->zstd = ZSTD_createDStream();
		if (!s->zstd)
			return -ENOMEM;
		if (ZSTD_isError(ZSTD_initDStream(s->zstd)))
			return -ENOMEM;
		return 0;
	default:
		return -ENOTSUP;
	}
}

static void source_free(struct source *s)
{
	free(s->in);
	free(s->out);
	free(s->isal);
	if (s->zs_init)
		inflateEnd(&s->zs);
	ZSTD_freeDStream(s->zstd);
	digester_free(s->dig);
}

/* Make compressed input available unless the callback reached its end.
 * Returns 0 or negative errno. */
static int source_fill(struct source *s)
{
	ssize_t n;

	if (s->in_pos < s->in_len || s->in_eof)
		return 0;
	for (;;) {
		n = s->read(s->userdata, s->in, UNPACK_BUF_SIZE);
		if (n == -EINTR)
			continue;
		break;
	}
	if (n < 0)
		return source_fail(s, (int)n, "reading the layer: %s", strerror((int)-n));
	if ((size_t)n > UNPACK_BUF_SIZE)
		return source_fail(s, EIO, "reading the layer: callback returned too much");
	s->in_pos = 0;
	s->in_len = (size_t)n;
	if (n == 0)
		s->in_eof = true;
	return 0;
}

static ssize_t read_plain(struct source *s, uint8_t *buf, size_t cap)
{
	int r = source_fill(s);
	size_t n;

	if (r < 0)
		return r;
	if (s->in_pos == s->in_len)
		return 0;
	n = s->in_len - s->in_pos;
	if (n > cap)
		n = cap;
	memcpy(buf, s->in + s->in_pos, n);
	s->in_pos += n;
	return (ssize_t)n;
}

static ssize_t read_isal(struct source *s, uint8_t *buf, size_t cap)
{
	struct inflate_state *st = s->isal;
	int stalls = 0;

	for (;;) {
		int r, ret;
		size_t avail, consumed, produced;
		enum isal_block_state before;

		if (s->member_done) {
			/* A member ended: the stream ends here or another member follows. */
			r = source_fill(s);
			if (r < 0)
				return r;
			if (s->in_pos == s->in_len)
				return 0;
			isal_inflate_reset(st); /* keeps crc_flag = ISAL_GZIP */
			s->member_done = false;
		}
		r = source_fill(s);
		if (r < 0)
			return r;
		avail = s->in_len - s->in_pos;
		st->next_in = s->in + s->in_pos;
		st->avail_in = (uint32_t)avail;
		st->next_out = buf;
		st->avail_out = (uint32_t)cap;
		before = st->block_state;
		ret = isal_inflate(st);
		consumed = avail - st->avail_in;
		produced = cap - st->avail_out;
		s->in_pos += consumed;
		if (consumed)
			s->started = true;
		if (ret != ISAL_DECOMP_OK)
			return source_fail(s, EBADMSG, "gzip: corrupt data (ISA-L error %d)", ret);
		if (st->block_state == ISAL_BLOCK_FINISH)
			s->member_done = true;
		if (produced)
			return (ssize_t)produced;
		if (s->member_done || consumed || st->block_state != before)
			continue;
		if (++stalls > 1)
			return source_fail(s, EBADMSG, "gzip: %s", s->in_eof ? "truncated stream" : "decoder stalled");
	}
}

static ssize_t read_zlib(struct source *s, uint8_t *buf, size_t cap)
{
	int stalls = 0;

	for (;;) {
		int r, ret;
		size_t avail, consumed, produced;

		if (s->member_done) {
			r = source_fill(s);
			if (r < 0)
				return r;
			if (s->in_pos == s->in_len)
				return 0;
			if (inflateReset(&s->zs) != Z_OK)
				return source_fail(s, EBADMSG, "gzip: cannot reset the decoder");
			s->member_done = false;
		}
		r = source_fill(s);
		if (r < 0)
			return r;
		avail = s->in_len - s->in_pos;
		s->zs.next_in = s->in + s->in_pos;
		s->zs.avail_in = (uInt)avail;
		s->zs.next_out = buf;
		s->zs.avail_out = (uInt)cap;
		ret = inflate(&s->zs, Z_NO_FLUSH);
		consumed = avail - s->zs.avail_in;
		produced = cap - s->zs.avail_out;
		s->in_pos += consumed;
		if (consumed)
			s->started = true;
		if (ret == Z_STREAM_END)
			s->member_done = true;
		else if (ret == Z_MEM_ERROR)
			return source_fail(s, ENOMEM, "gzip: out of memory");
		else if (ret != Z_OK && ret != Z_BUF_ERROR)
			return source_fail(s, EBADMSG, "gzip: corrupt data (%s)", s->zs.msg ? s->zs.msg : "zlib error");
		if (produced)
			return (ssize_t)produced;
		if (s->member_done || consumed)
			continue;
		if (++stalls > 1)
			return source_fail(s, EBADMSG, "gzip: %s", s->in_eof ? "truncated stream" : "decoder stalled");
	}
}

static ssize_t read_zstd(struct source *s, uint8_t *buf, size_t cap)
{
	int stalls = 0;

	for (;;) {
		int r = source_fill(s);
		ZSTD_inBuffer ib;
		ZSTD_outBuffer ob = { buf, cap, 0 };
		size_t ret;

		if (r < 0)
			return r;
		ib.src = s->in;
		ib.size = s->in_len;
		ib.pos = s->in_pos;
		if (s->in_eof && ib.pos == ib.size && s->zstd_hint == 0)
			return 0; /* every frame complete and flushed */
		ret = ZSTD_decompressStream(s->zstd, &ob, &ib);
		if (ib.pos != s->in_pos)
			s->started = true;
		if (ZSTD_isError(ret))
			return source_fail(s, EBADMSG, "zstd: %s", ZSTD_getErrorName(ret));
		r = ib.pos != s->in_pos;
		s->in_pos = ib.pos;
		s->zstd_hint = ret;
		if (ob.pos)
			return (ssize_t)ob.pos;
		if (r || ret == 0)
			continue;
		if (++stalls > 1)
			return source_fail(s, EBADMSG, "zstd: %s", s->in_eof ? "truncated stream" : "decoder stalled");
	}
}

/* The limits on the bytes about to be handed on: the layer's size, and
 * (every SPACE_CHECK_BYTES, from the first byte) the free space of the
 * destination's filesystem; what is unpacked is at most what is inflated. */
static int source_check_limits(struct source *s, size_t n)
{
	const struct unpack_limits *l = s->lim;
	struct statvfs sv;

	if (!l)
		return 0;
	if (l->max_bytes && s->total + n > l->max_bytes)
		return source_fail(s, EFBIG, "the layer inflates to more than [imaged] max_layer_size (%" PRIu64 " bytes)",
				   l->max_bytes);
	if (l->min_free && s->total + n >= s->next_space_check) {
		s->next_space_check = s->total + n + SPACE_CHECK_BYTES;
		if (fstatvfs(s->dest_fd, &sv) < 0)
			return source_fail(s, errno, "cannot tell the free space of the image store: %s", strerror(errno));
		uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
		if (avail < l->min_free)
			return source_fail(s, ENOSPC,
					   "the image store's filesystem has %" PRIu64 " bytes free, less than [imaged] "
					   "min_free_space (%" PRIu64 " bytes)", avail, l->min_free);
	}
	return 0;
}

/* Up to cap uncompressed bytes into buf; 0 at the end of the stream. Every
 * byte returned is hashed into the diff_id exactly once. */
static ssize_t source_read(struct source *s, uint8_t *buf, size_t cap)
{
	ssize_t n;

	if (s->err)
		return s->err;
	if (s->done)
		return 0;
	switch (s->comp) {
	case LAYER_PLAIN:
		n = read_plain(s, buf, cap);
		break;
	case LAYER_GZIP:
		n = s->use_isal ? read_isal(s, buf, cap) : read_zlib(s, buf, cap);
		break;
	case LAYER_ZSTD:
		n = read_zstd(s, buf, cap);
		break;
	default:
		n = -ENOTSUP;
	}
	if (n < 0)
		return n;
	if (n == 0) {
		s->done = true;
		return 0;
	}
	if (source_check_limits(s, (size_t)n) < 0)
		return s->err;
	digester_update(s->dig, buf, (size_t)n);
	s->total += (uint64_t)n;
	return n;
}

/* ---- the set of paths this layer created (WHITEOUT_APPLY) ---- */

#define PS_EXPLICIT 1u /* an entry of this layer */
#define PS_ANCESTOR 2u /* a parent directory of one */

struct pathset_slot {
	char *key;
	uint32_t hash;
	unsigned flags;
};

struct pathset {
	struct pathset_slot *tab;
	size_t cap, n;
};

static uint32_t hash_bytes(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static struct pathset_slot *pathset_lookup(struct pathset *ps, const char *key, size_t len, uint32_t h)
{
	size_t i;

	if (!ps->cap)
		return NULL;
	for (i = h & (ps->cap - 1);; i = (i + 1) & (ps->cap - 1)) {
		struct pathset_slot *sl = &ps->tab[i];
		if (!sl->key)
			return sl;
		if (sl->hash == h && strncmp(sl->key, key, len) == 0 && sl->key[len] == '\0')
			return sl;
	}
}

static int pathset_grow(struct pathset *ps)
{
	size_t ncap = ps->cap ? ps->cap * 2 : 256;
	struct pathset_slot *nt = calloc(ncap, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < ps->cap; i++) {
		struct pathset_slot *sl = &ps->tab[i];
		size_t j;
		if (!sl->key)
			continue;
		for (j = sl->hash & (ncap - 1); nt[j].key; j = (j + 1) & (ncap - 1))
			;
		nt[j] = *sl;
	}
	free(ps->tab);
	ps->tab = nt;
	ps->cap = ncap;
	return 0;
}

/* Returns 1 if key was already present (flags merged), 0 if added. */
static int pathset_add(struct pathset *ps, const char *key, size_t len, unsigned flags)
{
	uint32_t h = hash_bytes(key, len);
	struct pathset_slot *sl;

	if ((ps->n + 1) * 2 > ps->cap) {
		int r = pathset_grow(ps);
		if (r < 0)
			return r;
	}
	sl = pathset_lookup(ps, key, len, h);
	if (sl->key) {
		sl->flags |= flags;
		return 1;
	}
	sl->key = strndup(key, len);
	if (!sl->key)
		return -ENOMEM;
	sl->hash = h;
	sl->flags = flags;
	ps->n++;
	return 0;
}

static unsigned pathset_get(struct pathset *ps, const char *key)
{
	size_t len = strlen(key);
	struct pathset_slot *sl = pathset_lookup(ps, key, len, hash_bytes(key, len));
	return sl && sl->key ? sl->flags : 0;
}

/* Record an entry and every parent directory of it. */
static int pathset_mark(struct pathset *ps, const char *path)
{
	size_t len = strlen(path);
	int r;

	if (!len)
		return 0;
	r = pathset_add(ps, path, len, PS_EXPLICIT);
	if (r < 0)
		return r;
	while (len > 0) {
		while (len > 0 && path[len - 1] != '/')
			len--;
		if (len == 0)
			break;
		len--; /* drop the '/' */
		r = pathset_add(ps, path, len, PS_ANCESTOR);
		if (r < 0)
			return r;
		if (r == 1)
			break; /* present already, and so are its own parents */
	}
	return 0;
}

static void pathset_free(struct pathset *ps)
{
	for (size_t i = 0; i < ps->cap; i++)
		free(ps->tab[i].key);
	free(ps->tab);
	ps->tab = NULL;
	ps->cap = ps->n = 0;
}

/* ---- extraction context ---- */

struct dirtime {
	char *path; /* normalised, "" for the root */
	struct timespec ts[2];
};

struct ctx {
	int dest_fd;
	enum whiteout_mode mode;
	struct archive *a;
	struct source src;
	const char *entry; /* raw name of the entry being extracted */
	char *err;
	size_t errlen;
	bool err_set;
	struct pathset created;
	struct dirtime *dirs;
	size_t n_dirs, cap_dirs;
	bool list_opaque; /* WHITEOUT_OVERLAY_LISTED */
	char **opaque;
	size_t n_opaque, cap_opaque;
};

/* Copy a hostile name into an error message: bounded, no control
 * characters or quotes. */
static void sanitize(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (size_t i = 0; in[i] && o + 4 < outlen; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (i >= 200) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		out[o++] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
	}
	out[o] = '\0';
}

static int fail(struct ctx *c, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(struct ctx *c, int r, const char *fmt, ...)
{
	char msg[512], name[256];
	va_list ap;

	r = -abs(r);
	if (c->err_set)
		return r;
	c->err_set = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen) {
		if (c->entry) {
			sanitize(name, sizeof(name), c->entry);
			snprintf(c->err, c->errlen, "entry \"%s\": %s", name, msg);
		} else {
			snprintf(c->err, c->errlen, "%s", msg);
		}
	}
	return r;
}

/* The error of a failed libarchive call: our source's own error if the
 * decompressor or the read callback failed, else the tar reader's. */
static int archive_fail(struct ctx *c)
{
	int e;

	if (c->src.err)
		return fail(c, c->src.err, "%s", c->src.errmsg);
	e = archive_errno(c->a);
	return fail(c, e == ENOMEM ? ENOMEM : EBADMSG, "tar: %s",
		    archive_error_string(c->a) ? archive_error_string(c->a) : "unreadable archive");
}

static la_ssize_t archive_read_cb(struct archive *a, void *userdata, const void **buf)
{
	struct ctx *c = userdata;
	ssize_t n = source_read(&c->src, c->src.out, UNPACK_BUF_SIZE);

	if (n < 0) {
		archive_set_error(a, (int)-n, "%s", c->src.errmsg[0] ? c->src.errmsg : "read error");
		return -1;
	}
	*buf = c->src.out;
	return n;
}

/* ---- path handling ---- */

/* Normalise a tar path: drop leading "/", "." and empty components; refuse
 * "..". *out is "a/b/c" or "" (the root). */
static int normalize_path(const char *raw, char **out, const char **why)
{
	size_t len = strlen(raw), o = 0;
	char *p;
	bool dotdot = false;
	long depth = 0;

	*out = NULL;
	if (len == 0) {
		*why = "empty name";
		return -EINVAL;
	}
	if (len >= PATH_MAX) {
		*why = "name too long";
		return -ENAMETOOLONG;
	}
	p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && raw[j] != '/')
			j++;
		size_t cl = j - i;
		if (cl == 0 || (cl == 1 && raw[i] == '.')) {
			/* skip */
		} else if (cl == 2 && raw[i] == '.' && raw[i + 1] == '.') {
			dotdot = true;
			if (--depth < 0) {
				free(p);
				*why = "escapes the layer root";
				return -EXDEV;
			}
		} else if (cl > NAME_MAX) {
			free(p);
			*why = "name component too long";
			return -ENAMETOOLONG;
		} else {
			depth++;
			if (o)
				p[o++] = '/';
			memcpy(p + o, raw + i, cl);
			o += cl;
		}
		i = j + 1;
	}
	p[o] = '\0';
	if (dotdot) {
		free(p);
		*why = "\"..\" is not allowed in names";
		return -EINVAL;
	}
	*out = p;
	return 0;
}

/* Split "a/b/c" in place into parent "a/b" and name "c"; "c" gives parent "". */
static void split_path(char *path, char **parent, char **name)
{
	char *slash = strrchr(path, '/');

	if (slash) {
		*slash = '\0';
		*parent = path;
		*name = slash + 1;
	} else {
		*parent = path + strlen(path);
		*name = path;
	}
}

static int chown_root_dir(int pfd, const char *name);

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

static int open_in_root(int dest_fd, const char *path, int flags)
{
	return openat2_retry(dest_fd, *path ? path : ".", (uint64_t)(flags | O_CLOEXEC), IN_ROOT);
}


/* An O_PATH fd of the directory "parent" (normalised, "" = root) resolved
 * inside dest; with create, missing directories are made (0755, root). */
static int open_parent(struct ctx *c, const char *parent, bool create)
{
	_cleanup_free_ char *prefix = NULL;
	int fd, cur;
	size_t len;

	fd = open_in_root(c->dest_fd, parent, O_PATH | O_DIRECTORY);
	if (fd >= 0 || fd != -ENOENT || !create)
		return fd;

	/* Walk the prefixes, creating what is missing relative to the
	 * resolved fd of the previous one. */
	len = strlen(parent);
	prefix = malloc(len + 1);
	if (!prefix)
		return -ENOMEM;
	cur = open_in_root(c->dest_fd, "", O_PATH | O_DIRECTORY);
	if (cur < 0)
		return cur;
	for (size_t i = 0; i <= len; i++) {
		const char *comp;
		int nfd;

		if (i < len && parent[i] != '/')
			continue;
		memcpy(prefix, parent, i);
		prefix[i] = '\0';
		comp = strrchr(prefix, '/');
		comp = comp ? comp + 1 : prefix;
		nfd = open_in_root(c->dest_fd, prefix, O_PATH | O_DIRECTORY);
		if (nfd == -ENOENT) {
			if (mkdirat(cur, comp, 0755) == 0) {
				int r = chown_root_dir(cur, comp);
				if (r < 0) {
					close(cur);
					return r;
				}
			} else if (errno != EEXIST) {
				int r = -errno;
				close(cur);
				return r;
			}
			nfd = open_in_root(c->dest_fd, prefix, O_PATH | O_DIRECTORY);
		}
		close(cur);
		if (nfd < 0)
			return nfd;
		cur = nfd;
	}
	return cur;
}

/* Make room for a new entry called name in pfd: an existing directory is
 * kept if keep_dir (returns 1), anything else is removed. Returns 0 when
 * the name is free. */
static int clear_final(int pfd, const char *name, bool keep_dir)
{
	struct stat st;

	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		if (keep_dir)
			return 1;
		return remove_tree_at(pfd, name);
	}
	if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int chmod_nofollow(int pfd, const char *name, mode_t mode)
{
	if (syscall(SYS_fchmodat2, pfd, name, mode, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	/* glibc emulates AT_SYMLINK_NOFOLLOW with O_PATH + /proc. */
	if (fchmodat(pfd, name, mode, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

/* A directory we just made for a missing parent: root-owned 0755 whatever
 * the umask, a setgid parent or default ACLs would have given it. */
static int chown_root_dir(int pfd, const char *name)
{
	if (fchownat(pfd, name, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return chmod_nofollow(pfd, name, 0755);
}

struct xattr_args_k {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

/* setxattr on pfd/name without following it and without an fd of it
 * (symlinks, devices, fifos). */
static int setxattr_at(int pfd, const char *name, const char *key, const void *val, size_t size)
{
	struct xattr_args_k args = { .value = (uint64_t)(uintptr_t)val, .size = (uint32_t)size, .flags = 0 };
	char path[64 + NAME_MAX];

	if (syscall(SYS_setxattrat, pfd, name, AT_SYMLINK_NOFOLLOW, key, &args, sizeof(args)) == 0)
		return 0;
	if (errno != ENOSYS)
		return -errno;
	/* The magic link names pfd's directory; the final name is not followed. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", pfd, name);
	if (lsetxattr(path, key, val, size, 0) < 0)
		return -errno;
	return 0;
}

static bool xattr_skippable(int r)
{
	switch (-r) {
	case ENOTSUP:
	case EPERM:
	case EACCES:
	case EINVAL:
	case ERANGE:
	case E2BIG:
	case ENOENT:
		return true;
	default:
		return false;
	}
}

/* The layer's xattrs on fd (a regular file or directory) or, with fd < 0,
 * on pfd/name. */
static int apply_xattrs(struct ctx *c, struct archive_entry *e, int fd, int pfd, const char *name)
{
	const char *key;
	const void *val;
	size_t size;

	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &key, &val, &size) == ARCHIVE_OK) {
		int r;

		if (!key || !*key)
			continue;
		if (strncmp(key, "trusted.overlay.", STRLEN("trusted.overlay.")) == 0) {
			log_debug(NULL, "dropping overlay xattr from layer", "key=%s", key);
			continue;
		}
		if (fd >= 0)
			r = fsetxattr(fd, key, val, size, 0) < 0 ? -errno : 0;
		else
			r = setxattr_at(pfd, name, key, val, size);
		if (r == 0)
			continue;
		if (xattr_skippable(r)) {
			log_debug(NULL, "skipping unsupported xattr", "key=%s errno=%d", key, -r);
			continue;
		}
		return fail(c, r, "setting xattr %s: %s", key, strerror(-r));
	}
	return 0;
}

struct meta {
	uid_t uid;
	gid_t gid;
	mode_t perm;
	struct timespec ts[2]; /* atime, mtime */
};

static int entry_meta(struct ctx *c, struct archive_entry *e, struct meta *m)
{
	la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);

	if (uid < 0 || uid >= (la_int64_t)UINT32_MAX || gid < 0 || gid >= (la_int64_t)UINT32_MAX)
		return fail(c, EINVAL, "invalid owner %lld:%lld", (long long)uid, (long long)gid);
	m->uid = (uid_t)uid;
	m->gid = (gid_t)gid;
	m->perm = archive_entry_perm(e) & 07777;
	if (archive_entry_mtime_is_set(e)) {
		m->ts[1].tv_sec = archive_entry_mtime(e);
		m->ts[1].tv_nsec = archive_entry_mtime_nsec(e);
		if (m->ts[1].tv_nsec < 0 || m->ts[1].tv_nsec > 999999999)
			m->ts[1].tv_nsec = 0;
	} else {
		m->ts[1].tv_sec = 0;
		m->ts[1].tv_nsec = UTIME_OMIT;
	}
	if (archive_entry_atime_is_set(e)) {
		m->ts[0].tv_sec = archive_entry_atime(e);
		m->ts[0].tv_nsec = archive_entry_atime_nsec(e);
		if (m->ts[0].tv_nsec < 0 || m->ts[0].tv_nsec > 999999999)
			m->ts[0].tv_nsec = 0;
	} else {
		m->ts[0] = m->ts[1];
	}
	return 0;
}

static int defer_dir_times(struct ctx *c, const char *path, const struct meta *m)
{
	if (m->ts[1].tv_nsec == UTIME_OMIT)
		return 0;
	if (c->n_dirs == c->cap_dirs) {
		size_t ncap = c->cap_dirs ? c->cap_dirs * 2 : 64;
		struct dirtime *nd = realloc(c->dirs, ncap * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		c->dirs = nd;
		c->cap_dirs = ncap;
	}
	c->dirs[c->n_dirs].path = strdup(path);
	if (!c->dirs[c->n_dirs].path)
		return -ENOMEM;
	c->dirs[c->n_dirs].ts[0] = m->ts[0];
	c->dirs[c->n_dirs].ts[1] = m->ts[1];
	c->n_dirs++;
	return 0;
}

static int apply_dir_times(struct ctx *c)
{
	for (size_t i = 0; i < c->n_dirs; i++) {
		_cleanup_free_ char *copy = strdup(c->dirs[i].path);
		_cleanup_close_ int pfd = -1, fd = -1;
		char *parent, *name;

		if (!copy)
			return -ENOMEM;
		if (!*copy) {
			fd = openat(c->dest_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		} else {
			split_path(copy, &parent, &name);
			pfd = open_parent(c, parent, false);
			if (pfd < 0)
				continue; /* removed or replaced later in the layer */
			fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (fd < 0)
			continue;
		if (futimens(fd, c->dirs[i].ts) < 0) {
			c->entry = c->dirs[i].path;
			return fail(c, errno, "setting directory times: %s", strerror(errno));
		}
	}
	return 0;
}

/* ---- entry types ---- */

static int extract_dir(struct ctx *c, struct archive_entry *e, const char *path, char *parent, char *name)
{
	_cleanup_close_ int pfd = -1, fd = -1;
	struct meta m;
	int r;

	r = entry_meta(c, e, &m);
	if (r < 0)
		return r;
	if (!*path) {
		fd = openat(c->dest_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return fail(c, errno, "opening the layer root: %s", strerror(errno));
	} else {
		pfd = open_parent(c, parent, true);
		if (pfd < 0)
			return fail(c, pfd, "parent directory: %s", strerror(-pfd));
		r = clear_final(pfd, name, true);
		if (r < 0)
			return fail(c, r, "replacing the existing entry: %s", strerror(-r));
		if (r == 0 && mkdirat(pfd, name, 0700) < 0)
			return fail(c, errno, "mkdir: %s", strerror(errno));
		fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return fail(c, errno, "opening the directory: %s", strerror(errno));
	}
	if (fchown(fd, m.uid, m.gid) < 0)
		return fail(c, errno, "chown: %s", strerror(errno));
	if (fchmod(fd, m.perm) < 0)
		return fail(c, errno, "chmod: %s", strerror(errno));
	r = apply_xattrs(c, e, fd, -1, NULL);
	if (r < 0)
		return r;
	r = defer_dir_times(c, path, &m);
	if (r < 0)
		return fail(c, r, "out of memory");
	return 0;
}

static int write_all_at(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int extract_file(struct ctx *c, struct archive_entry *e, char *parent, char *name)
{
	_cleanup_close_ int pfd = -1, fd = -1;
	struct meta m;
	la_int64_t end = 0;
	int r;

	r = entry_meta(c, e, &m);
	if (r < 0)
		return r;
	pfd = open_parent(c, parent, true);
	if (pfd < 0)
		return fail(c, pfd, "parent directory: %s", strerror(-pfd));
	r = clear_final(pfd, name, false);
	if (r < 0)
		return fail(c, r, "replacing the existing entry: %s", strerror(-r));
	fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(c, errno, "create: %s", strerror(errno));

	for (;;) {
		const void *buf;
		size_t size;
		la_int64_t off;

		r = archive_read_data_block(c->a, &buf, &size, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_WARN)
			return archive_fail(c);
		if (off < 0)
			return fail(c, EBADMSG, "tar: negative data offset");
		r = write_all_at(fd, buf, size, (off_t)off);
		if (r < 0)
			return fail(c, r, "write: %s", strerror(-r));
		if (off + (la_int64_t)size > end)
			end = off + (la_int64_t)size;
	}
	/* A sparse file may end in a hole. */
	if (archive_entry_size_is_set(e) && archive_entry_size(e) > end && ftruncate(fd, (off_t)archive_entry_size(e)) < 0)
		return fail(c, errno, "truncate: %s", strerror(errno));
	/* Start writing the data back now, while the rest of the layer is
	 * inflated: imaged's syncfs before it registers the image then waits
	 * for the tail only. A hint; errors do not matter here. */
	if (end > 0)
		(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);

	/* chown clears setuid/setgid and file capabilities: chown, then the
	 * full mode, then the xattrs. */
	if (fchown(fd, m.uid, m.gid) < 0)
		return fail(c, errno, "chown: %s", strerror(errno));
	if (fchmod(fd, m.perm) < 0)
		return fail(c, errno, "chmod: %s", strerror(errno));
	r = apply_xattrs(c, e, fd, -1, NULL);
	if (r < 0)
		return r;
	if (futimens(fd, m.ts) < 0)
		return fail(c, errno, "setting times: %s", strerror(errno));
	return 0;
}

static int extract_symlink(struct ctx *c, struct archive_entry *e, char *parent, char *name)
{
	_cleanup_close_ int pfd = -1;
	const char *target = archive_entry_symlink(e);
	struct meta m;
	int r;

	if (!target)
		target = archive_entry_symlink_utf8(e);
	if (!target || !*target)
		return fail(c, EINVAL, "symlink without a target");
	if (strlen(target) >= PATH_MAX)
		return fail(c, ENAMETOOLONG, "symlink target too long");
	r = entry_meta(c, e, &m);
	if (r < 0)
		return r;
	pfd = open_parent(c, parent, true);
	if (pfd < 0)
		return fail(c, pfd, "parent directory: %s", strerror(-pfd));
	r = clear_final(pfd, name, false);
	if (r < 0)
		return fail(c, r, "replacing the existing entry: %s", strerror(-r));
	/* The target is data: kept verbatim, only ever resolved confined. */
	if (symlinkat(target, pfd, name) < 0)
		return fail(c, errno, "symlink: %s", strerror(errno));
	if (fchownat(pfd, name, m.uid, m.gid, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "lchown: %s", strerror(errno));
	r = apply_xattrs(c, e, -1, pfd, name);
	if (r < 0)
		return r;
	if (utimensat(pfd, name, m.ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "setting times: %s", strerror(errno));
	return 0;
}

static int extract_node(struct ctx *c, struct archive_entry *e, mode_t type, char *parent, char *name)
{
	_cleanup_close_ int pfd = -1;
	struct meta m;
	dev_t dev = 0;
	int r;

	r = entry_meta(c, e, &m);
	if (r < 0)
		return r;
	if (type != S_IFIFO)
		dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
	pfd = open_parent(c, parent, true);
	if (pfd < 0)
		return fail(c, pfd, "parent directory: %s", strerror(-pfd));
	r = clear_final(pfd, name, false);
	if (r < 0)
		return fail(c, r, "replacing the existing entry: %s", strerror(-r));
	if (mknodat(pfd, name, type | 0600, dev) < 0)
		return fail(c, errno, "mknod: %s", strerror(errno));
	if (fchownat(pfd, name, m.uid, m.gid, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "chown: %s", strerror(errno));
	r = chmod_nofollow(pfd, name, m.perm);
	if (r < 0)
		return fail(c, r, "chmod: %s", strerror(-r));
	r = apply_xattrs(c, e, -1, pfd, name);
	if (r < 0)
		return r;
	if (utimensat(pfd, name, m.ts, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "setting times: %s", strerror(errno));
	return 0;
}

static int extract_hardlink(struct ctx *c, const char *raw_target, const char *path, char *parent, char *name)
{
	_cleanup_free_ char *tpath = NULL;
	_cleanup_close_ int tpfd = -1, pfd = -1;
	char *tparent, *tname, tshow[256];
	const char *why = NULL;
	struct stat tst, st;
	int r;

	r = normalize_path(raw_target, &tpath, &why);
	if (r < 0) {
		if (r == -ENOMEM)
			return fail(c, r, "out of memory");
		sanitize(tshow, sizeof(tshow), raw_target);
		return fail(c, r, "hardlink target \"%s\": %s", tshow, why);
	}
	sanitize(tshow, sizeof(tshow), tpath);
	if (!*tpath)
		return fail(c, EPERM, "hardlink to the layer root");
	if (strcmp(tpath, path) == 0)
		return 0; /* a link to itself */
	if (c->mode == WHITEOUT_APPLY && !(pathset_get(&c->created, tpath) & PS_EXPLICIT))
		return fail(c, ENOENT, "hardlink target \"%s\" is not in this layer", tshow);
	split_path(tpath, &tparent, &tname);
	tpfd = open_parent(c, tparent, false);
	if (tpfd < 0)
		return fail(c, tpfd, "hardlink target \"%s\": %s", tshow, strerror(-tpfd));
	if (fstatat(tpfd, tname, &tst, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(c, errno, "hardlink target \"%s\": %s", tshow, strerror(errno));
	if (S_ISDIR(tst.st_mode))
		return fail(c, EPERM, "hardlink target \"%s\" is a directory", tshow);

	pfd = open_parent(c, parent, true);
	if (pfd < 0)
		return fail(c, pfd, "parent directory: %s", strerror(-pfd));
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == tst.st_dev && st.st_ino == tst.st_ino)
		return 0; /* already that file */
	r = clear_final(pfd, name, false);
	if (r < 0)
		return fail(c, r, "replacing the existing entry: %s", strerror(-r));
	/* flags 0: a symlink target is linked itself, never followed. */
	if (linkat(tpfd, tname, pfd, name, 0) < 0)
		return fail(c, errno, "link to \"%s\": %s", tshow, strerror(errno));
	return 0;
}

/* ---- whiteouts ---- */

/* WHITEOUT_APPLY opaque marker: remove everything below dfd (the directory
 * at path dpath) that this layer did not create; see the top comment. */
static int purge_lower(struct ctx *c, int dfd, const char *dpath)
{
	char **queue = NULL;
	size_t qn = 0, qcap = 0, qi = 0;
	int r = 0;

	queue = malloc(sizeof(*queue) * (qcap = 16));
	if (!queue)
		return -ENOMEM;
	queue[qn++] = strdup("");
	if (!queue[0]) {
		r = -ENOMEM;
		goto out;
	}
	for (; qi < qn && r == 0; qi++) {
		const char *rel = queue[qi];
		_cleanup_free_ char *base = NULL;
		DIR *d;
		struct dirent *de;
		int fd;
		char **rm = NULL;
		size_t rn = 0, rcap = 0;

		if (!*rel) {
			fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				r = -errno;
				break;
			}
		} else {
			/* Only ever below dfd, through real directories. */
			fd = openat2_retry(dfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
					RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
			if (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP)
				continue;
			if (fd < 0) {
				r = fd;
				break;
			}
		}
		if (asprintf(&base, "%s%s%s", dpath, *dpath && *rel ? "/" : "", rel) < 0) {
			base = NULL;
			close(fd);
			r = -ENOMEM;
			break;
		}
		d = fdopendir(fd);
		if (!d) {
			r = -errno;
			close(fd);
			break;
		}
		errno = 0;
		while (r == 0 && (de = readdir(d))) {
			_cleanup_free_ char *key = NULL;
			unsigned flags;
			bool isdir;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (asprintf(&key, "%s%s%s", base, *base ? "/" : "", de->d_name) < 0) {
				key = NULL;
				r = -ENOMEM;
				break;
			}
			flags = pathset_get(&c->created, key);
			if (!flags) {
				if (rn == rcap) {
					char **nr = realloc(rm, sizeof(*nr) * (rcap = rcap ? rcap * 2 : 16));
					if (!nr) {
						r = -ENOMEM;
						break;
					}
					rm = nr;
				}
				if (!(rm[rn] = strdup(de->d_name))) {
					r = -ENOMEM;
					break;
				}
				rn++;
				continue;
			}
			isdir = de->d_type == DT_DIR;
			if (de->d_type == DT_UNKNOWN) {
				struct stat st;
				isdir = fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
			}
			if (!isdir)
				continue;
			if (qn == qcap) {
				char **nq = realloc(queue, sizeof(*nq) * (qcap *= 2));
				if (!nq) {
					r = -ENOMEM;
					break;
				}
				queue = nq;
			}
			if (asprintf(&queue[qn], "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0) {
				r = -ENOMEM;
				break;
			}
			qn++;
		}
		if (r == 0 && errno)
			r = -errno;
		for (size_t i = 0; i < rn; i++) {
			if (r == 0)
				r = remove_tree_at(dirfd(d), rm[i]);
			free(rm[i]);
		}
		free(rm);
		closedir(d);
	}
out:
	for (size_t i = 0; i < qn; i++)
		free(queue[i]);
	free(queue);
	return r;
}

/* WHITEOUT_OVERLAY_LISTED: remember an opaque directory (once) for the
 * caller to mark. */
static int opaque_add(struct ctx *c, const char *parent)
{
	const char *dir = *parent ? parent : ".";

	for (size_t i = 0; i < c->n_opaque; i++)
		if (strcmp(c->opaque[i], dir) == 0)
			return 0;
	if (c->n_opaque == c->cap_opaque) {
		size_t cap = c->cap_opaque ? c->cap_opaque * 2 : 8;
		char **n = realloc(c->opaque, cap * sizeof(*n));
		if (!n)
			return fail(c, ENOMEM, "out of memory");
		c->opaque = n;
		c->cap_opaque = cap;
	}
	if (!(c->opaque[c->n_opaque] = strdup(dir)))
		return fail(c, ENOMEM, "out of memory");
	c->n_opaque++;
	return 0;
}

static int extract_whiteout(struct ctx *c, const char *parent, const char *name)
{
	_cleanup_close_ int pfd = -1, dfd = -1;
	const char *victim = name + STRLEN(WH_PREFIX);
	int r;

	if (strcmp(name, WH_OPAQUE) == 0) {
		if (c->mode == WHITEOUT_OVERLAY) {
			pfd = open_parent(c, parent, true);
			if (pfd < 0)
				return fail(c, pfd, "opaque directory: %s", strerror(-pfd));
			if (c->list_opaque)
				return opaque_add(c, parent);
			dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0)
				return fail(c, errno, "opaque directory: %s", strerror(errno));
			if (fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
				return fail(c, errno, "setting trusted.overlay.opaque: %s", strerror(errno));
			return 0;
		}
		pfd = open_parent(c, parent, false);
		if (pfd == -ENOENT || pfd == -ENOTDIR)
			return 0; /* nothing below to hide */
		if (pfd < 0)
			return fail(c, pfd, "opaque directory: %s", strerror(-pfd));
		dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return fail(c, errno, "opaque directory: %s", strerror(errno));
		r = purge_lower(c, dfd, parent);
		if (r < 0)
			return fail(c, r, "emptying the opaque directory: %s", strerror(-r));
		return 0;
	}
	if (strncmp(name, WH_META_PREFIX, STRLEN(WH_META_PREFIX)) == 0) {
		log_debug(NULL, "ignoring whiteout metadata entry", "name=%s", name);
		return 0;
	}
	if (!*victim || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
		return fail(c, EINVAL, "invalid whiteout");

	if (c->mode == WHITEOUT_OVERLAY) {
		pfd = open_parent(c, parent, true);
		if (pfd < 0)
			return fail(c, pfd, "parent directory: %s", strerror(-pfd));
		r = clear_final(pfd, victim, false);
		if (r < 0)
			return fail(c, r, "replacing the existing entry: %s", strerror(-r));
		if (mknodat(pfd, victim, S_IFCHR | 0, makedev(0, 0)) < 0)
			return fail(c, errno, "creating the whiteout device: %s", strerror(errno));
		if (fchownat(pfd, victim, 0, 0, AT_SYMLINK_NOFOLLOW) < 0)
			return fail(c, errno, "chown: %s", strerror(errno));
		return 0;
	}
	pfd = open_parent(c, parent, false);
	if (pfd == -ENOENT || pfd == -ENOTDIR)
		return 0;
	if (pfd < 0)
		return fail(c, pfd, "parent directory: %s", strerror(-pfd));
	r = clear_final(pfd, victim, false);
	if (r < 0)
		return fail(c, r, "removing the whited-out entry: %s", strerror(-r));
	return 0;
}

/* ---- one entry ---- */

static int extract_entry(struct ctx *c, struct archive_entry *e)
{
	_cleanup_free_ char *path = NULL, *pathcopy = NULL;
	const char *raw = archive_entry_pathname(e), *why = NULL, *hardlink;
	char *parent, *name;
	mode_t type;
	int r;

	if (!raw)
		raw = archive_entry_pathname_utf8(e);
	c->entry = raw ? raw : "";
	if (!raw || !*raw)
		return fail(c, EINVAL, "empty name");
	r = normalize_path(raw, &path, &why);
	if (r == -ENOMEM)
		return fail(c, r, "out of memory");
	if (r < 0)
		return fail(c, r, "%s", why);
	pathcopy = strdup(path);
	if (!pathcopy)
		return fail(c, ENOMEM, "out of memory");
	split_path(pathcopy, &parent, &name);

	if (strncmp(name, WH_PREFIX, STRLEN(WH_PREFIX)) == 0)
		return extract_whiteout(c, parent, name);

	hardlink = archive_entry_hardlink(e);
	if (!hardlink)
		hardlink = archive_entry_hardlink_utf8(e);
	type = archive_entry_filetype(e);
	if (!*path && (hardlink || type != AE_IFDIR))
		return fail(c, EINVAL, "the layer root must be a directory");

	if (hardlink)
		r = extract_hardlink(c, hardlink, path, parent, name);
	else
		switch (type) {
		case AE_IFDIR:
			r = extract_dir(c, e, path, parent, name);
			break;
		case AE_IFREG:
			r = extract_file(c, e, parent, name);
			break;
		case AE_IFLNK:
			r = extract_symlink(c, e, parent, name);
			break;
		case AE_IFCHR:
			r = extract_node(c, e, S_IFCHR, parent, name);
			break;
		case AE_IFBLK:
			r = extract_node(c, e, S_IFBLK, parent, name);
			break;
		case AE_IFIFO:
			r = extract_node(c, e, S_IFIFO, parent, name);
			break;
		default:
			log_debug(NULL, "skipping unsupported tar entry type", "type=0%o", (unsigned)type);
			return 0;
		}
	if (r < 0)
		return r;
	if (c->mode == WHITEOUT_APPLY) {
		r = pathset_mark(&c->created, path);
		if (r < 0)
			return fail(c, r, "out of memory");
	}
	return 0;
}

int unpack_layer(int dest_fd, enum layer_compression comp, enum whiteout_mode mode, unpack_read_fn read,
		 void *userdata, struct unpack_result *res, char *err, size_t errlen)
{
	return unpack_layer_limited(dest_fd, comp, mode, read, userdata, NULL, res, err, errlen);
}

int unpack_layer_limited(int dest_fd, enum layer_compression comp, enum whiteout_mode mode, unpack_read_fn read,
			 void *userdata, const struct unpack_limits *lim, struct unpack_result *res, char *err,
			 size_t errlen)
{
	struct ctx c = { .dest_fd = dest_fd, .mode = mode == WHITEOUT_OVERLAY_LISTED ? WHITEOUT_OVERLAY : mode,
			 .list_opaque = mode == WHITEOUT_OVERLAY_LISTED, .err = err, .errlen = errlen };
	struct archive_entry *e;
	ssize_t n;
	int r;

	if (err && errlen)
		err[0] = '\0';
	if (res)
		memset(res, 0, sizeof(*res));
	if (dest_fd < 0 || !read || !res || (mode != WHITEOUT_OVERLAY && mode != WHITEOUT_APPLY && mode != WHITEOUT_OVERLAY_LISTED))
		return fail(&c, EINVAL, "invalid arguments");
	if (comp != LAYER_PLAIN && comp != LAYER_GZIP && comp != LAYER_ZSTD) {
		memset(&c.src, 0, sizeof(c.src));
		return fail(&c, ENOTSUP, "unsupported layer compression");
	}

	r = source_init(&c.src, comp, read, userdata);
	if (r < 0) {
		fail(&c, r, "initialising the decompressor: %s", strerror(-r));
		goto out;
	}
	c.src.lim = lim;
	c.src.dest_fd = dest_fd;
	c.a = archive_read_new();
	if (!c.a) {
		r = fail(&c, ENOMEM, "out of memory");
		goto out;
	}
	/* ustar, pax and GNU tar; no filters: we decompress ourselves. */
	if (archive_read_support_format_tar(c.a) != ARCHIVE_OK ||
	    archive_read_open(c.a, &c, NULL, archive_read_cb, NULL) != ARCHIVE_OK) {
		r = archive_fail(&c);
		goto out;
	}

	for (;;) {
		c.entry = NULL;
		r = archive_read_next_header(c.a, &e);
		if (r == ARCHIVE_EOF)
			break;
		if (r == ARCHIVE_WARN) {
			log_debug(NULL, "tar reader warning", "warning=%s",
				  archive_error_string(c.a) ? archive_error_string(c.a) : "");
		} else if (r != ARCHIVE_OK) {
			r = archive_fail(&c);
			goto out;
		}
		res->entries++;
		if (lim && lim->max_entries && res->entries > lim->max_entries) {
			r = fail(&c, E2BIG, "the layer has more than [imaged] max_layer_entries (%" PRIu64 ") entries",
				 lim->max_entries);
			goto out;
		}
		r = extract_entry(&c, e);
		if (r < 0)
			goto out;
	}
	c.entry = NULL;

	/* Drain what follows the end-of-archive blocks so the caller's digest
	 * of the compressed blob and our diff_id cover every byte. */
	while ((n = source_read(&c.src, c.src.out, UNPACK_BUF_SIZE)) > 0)
		;
	if (n < 0) {
		r = fail(&c, (int)n, "%s", c.src.errmsg);
		goto out;
	}
	if (comp != LAYER_PLAIN && !c.src.started) {
		r = fail(&c, EBADMSG, "empty compressed stream");
		goto out;
	}

	r = apply_dir_times(&c);
	if (r < 0)
		goto out;

	digester_final(c.src.dig, res->diff_id);
	res->tar_bytes = c.src.total;
	res->opaque = TAKE_PTR(c.opaque);
	res->n_opaque = c.n_opaque;
	r = 0;
out:
	for (size_t i = 0; c.opaque && i < c.n_opaque; i++)
		free(c.opaque[i]);
	free(c.opaque);
	if (c.a)
		archive_read_free(c.a);
	source_free(&c.src);
	pathset_free(&c.created);
	for (size_t i = 0; i < c.n_dirs; i++)
		free(c.dirs[i].path);
	free(c.dirs);
	if (r < 0) {
		uint64_t entries = res ? res->entries : 0;
		if (res) {
			memset(res, 0, sizeof(*res));
			res->entries = entries;
		}
	}
	return r;
}

void unpack_result_free(struct unpack_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_opaque; i++)
		free(res->opaque[i]);
	free(res->opaque);
	res->opaque = NULL;
	res->n_opaque = 0;
}
