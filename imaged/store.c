/* imaged's image store; see store.h for the layout and the guarantees. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <linux/openat2.h>

#include "log.h"
#include "macro.h"
#include "store.h"
#include "tree.h"
#include "util.h"

#define MAX_IMAGE_RECORD (4u << 20)

struct pin {
	char chain[DIGEST_STR_MAX];
	unsigned count;
};

struct container_rec {
	char id[65];
	char image[DIGEST_STR_MAX];
};

struct store {
	char *root;
	int root_fd;
	pthread_mutex_t lock; /* pins; blob/layer commits are atomic renames */
	struct pin *pins;
	size_t n_pins;
	struct image_rec **images; /* loop thread only */
	size_t n_images;
	struct container_rec *containers; /* loop thread only */
	size_t n_containers;
};

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void image_rec_free(struct image_rec *r)
{
	if (!r)
		return;
	strv_free(r->repo_tags, r->n_repo_tags);
	strv_free(r->repo_digests, r->n_repo_digests);
	strv_free(r->layers, r->n_layers);
	free(r->username);
	free(r);
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0)
			return 0;
	char **nv = realloc(*v, (*n + 1) * sizeof(char *));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 1;
}

static bool strv_remove(char **v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(v[i], s) == 0) {
			free(v[i]);
			memmove(v + i, v + i + 1, (*n - i - 1) * sizeof(char *));
			(*n)--;
			return true;
		}
	return false;
}

const char *store_root(const struct store *s) { return s->root; }

static char *path_join(const struct store *s, const char *a, const char *b)
{
	char *p;
	if (asprintf(&p, "%s/%s%s%s", s->root, a, b ? "/" : "", b ? b : "") < 0)
		return NULL;
	return p;
}

/* ---------------------------------------------------------------- records */

static json_object *strv_json(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static int image_rec_write(struct store *s, const struct image_rec *r)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(r->id));
	json_object_object_add(o, "manifest_digest", json_object_new_string(r->manifest_digest));
	json_object_object_add(o, "repo_tags", strv_json(r->repo_tags, r->n_repo_tags));
	json_object_object_add(o, "repo_digests", strv_json(r->repo_digests, r->n_repo_digests));
	json_object_object_add(o, "layers", strv_json(r->layers, r->n_layers));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)r->size));
	json_object_object_add(o, "uid", json_object_new_int64(r->uid));
	if (r->username)
		json_object_object_add(o, "username", json_object_new_string(r->username));
	json_object_object_add(o, "created_ns", json_object_new_int64(r->created_ns));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	_cleanup_free_ char *p = NULL;
	if (asprintf(&p, "%s/images/%s.json", s->root, digest_hex(r->id)) < 0) {
		json_object_put(o);
		return -ENOMEM;
	}
	int ret = write_file_atomic(p, text, strlen(text), 0600);
	json_object_put(o);
	if (ret < 0)
		return log_error_errno(ret, NULL, "cannot write image record", "path=%s", p);
	return 0;
}

static int json_strv(json_object *o, const char *key, bool digests, char ***out, size_t *n)
{
	json_object *a;
	if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array))
		return -EINVAL;
	size_t len = json_object_array_length(a);
	if (len > 4096)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		json_object *e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_string))
			return -EINVAL;
		const char *str = json_object_get_string(e);
		if (digests && !digest_is_valid(str))
			return -EINVAL;
		if (strv_add(out, n, str) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int image_rec_parse(const char *text, struct image_rec **out)
{
	json_object *o = json_tokener_parse(text);
	if (!o)
		return -EINVAL;
	struct image_rec *r = calloc(1, sizeof(*r));
	int ret = -EINVAL;
	json_object *v;
	if (!r)
		goto out;
	if (!json_object_object_get_ex(o, "id", &v) || !digest_is_valid(json_object_get_string(v)))
		goto out;
	snprintf(r->id, sizeof(r->id), "%s", json_object_get_string(v));
	if (!json_object_object_get_ex(o, "manifest_digest", &v) || !digest_is_valid(json_object_get_string(v)))
		goto out;
	snprintf(r->manifest_digest, sizeof(r->manifest_digest), "%s", json_object_get_string(v));
	if (json_strv(o, "repo_tags", false, &r->repo_tags, &r->n_repo_tags) < 0 ||
	    json_strv(o, "repo_digests", false, &r->repo_digests, &r->n_repo_digests) < 0 ||
	    json_strv(o, "layers", true, &r->layers, &r->n_layers) < 0)
		goto out;
	if (json_object_object_get_ex(o, "size", &v))
		r->size = (uint64_t)json_object_get_int64(v);
	r->uid = -1;
	if (json_object_object_get_ex(o, "uid", &v))
		r->uid = json_object_get_int64(v);
	if (json_object_object_get_ex(o, "username", &v) && json_object_is_type(v, json_type_string) &&
	    !(r->username = strdup(json_object_get_string(v))))
		goto out;
	if (json_object_object_get_ex(o, "created_ns", &v))
		r->created_ns = json_object_get_int64(v);
	*out = TAKE_PTR(r);
	ret = 0;
out:
	image_rec_free(r);
	json_object_put(o);
	return ret;
}

/* ---------------------------------------------------------------- open */

static int remove_children(int dirfd)
{
	_cleanup_close_ int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d)
		return -errno;
	TAKE_FD(fd);
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int r = remove_tree_at(dirfd, de->d_name);
		if (r < 0 && ret == 0)
			ret = r;
	}
	closedir(d);
	return ret;
}

/* The temporary files (".NAME.RANDOM.tmp") of writes a crash interrupted
 * in one of the store's flat directories: the file they were to replace is
 * intact, or was never there. */
static void remove_interrupted_writes(int root_fd, const char *sub)
{
	_cleanup_close_ int fd = openat(root_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d)
		return;
	int dfd = TAKE_FD(fd);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (de->d_name[0] != '.' || n < 6 || strcmp(de->d_name + n - 4, ".tmp") != 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			log_info(NULL, "removed an interrupted write", "dir=%s file=%s", sub, de->d_name);
		else
			log_warn_errno(errno, NULL, "cannot remove an interrupted write", "dir=%s file=%s", sub, de->d_name);
	}
	closedir(d);
}

static bool image_uses_layer(const struct store *s, const char *chain)
{
	for (size_t i = 0; i < s->n_images; i++)
		for (size_t k = 0; k < s->images[i]->n_layers; k++)
			if (strcmp(s->images[i]->layers[k], chain) == 0)
				return true;
	return false;
}

static bool layer_pinned(struct store *s, const char *chain)
{
	pthread_mutex_lock(&s->lock);
	bool pinned = false;
	for (size_t i = 0; i < s->n_pins; i++)
		if (strcmp(s->pins[i].chain, chain) == 0 && s->pins[i].count > 0)
			pinned = true;
	pthread_mutex_unlock(&s->lock);
	return pinned;
}

/* Move a tree into tmp/ (one rename) and delete it from there: a crash in
 * the middle leaves it in tmp/, which the next start empties. */
static int discard_tree(struct store *s, const char *dir, const char *name)
{
	char tmpname[64];
	char rnd[17];
	random_hex(rnd, 8);
	snprintf(tmpname, sizeof(tmpname), "gone-%s", rnd);
	_cleanup_close_ int dfd = openat(s->root_fd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int tfd = openat(s->root_fd, "tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || tfd < 0)
		return -errno;
	if (renameat(dfd, name, tfd, tmpname) < 0)
		return errno == ENOENT ? 0 : -errno;
	return remove_tree_at(tfd, tmpname);
}

/* Delete layers no image references and nobody pins. */
static void gc_layers(struct store *s)
{
	_cleanup_close_ int fd = openat(s->root_fd, "layers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d)
		return;
	TAKE_FD(fd);
	struct dirent *de;
	char **victims = NULL;
	size_t n = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char chain[DIGEST_STR_MAX];
		snprintf(chain, sizeof(chain), "sha256:%.64s", de->d_name);
		if (!digest_is_valid(chain) || strlen(de->d_name) != 64 ||
		    (!image_uses_layer(s, chain) && !layer_pinned(s, chain)))
			(void)strv_add(&victims, &n, de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		int r = discard_tree(s, "layers", victims[i]);
		if (r < 0)
			log_warn_errno(r, NULL, "cannot remove unused layer", "layer=%s", victims[i]);
		else
			log_info(NULL, "removed unused layer", "layer=%s", victims[i]);
	}
	strv_free(victims, n);
}

static void load_images(struct store *s)
{
	_cleanup_close_ int fd = openat(s->root_fd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d)
		return;
	int dfd = dirfd(d);
	TAKE_FD(fd);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.')
			continue;
		if (len != 64 + 5 || strcmp(de->d_name + 64, ".json") != 0) {
			/* An interrupted atomic write's temp file. */
			(void)unlinkat(dfd, de->d_name, 0);
			continue;
		}
		_cleanup_free_ char *p = path_join(s, "images", de->d_name);
		_cleanup_free_ char *text = NULL;
		size_t tl;
		struct image_rec *r = NULL;
		if (!p || read_file(p, MAX_IMAGE_RECORD, &text, &tl) < 0 || image_rec_parse(text, &r) < 0) {
			log_warn(NULL, "ignoring unreadable image record", "file=%s", de->d_name);
			continue;
		}
		/* A record whose layers are gone is not an image. */
		bool ok = true;
		for (size_t i = 0; i < r->n_layers && ok; i++)
			ok = store_layer_exists(s, r->layers[i]);
		if (!ok) {
			log_warn(NULL, "dropping image with missing layers", "image=%s", r->id);
			(void)unlinkat(dfd, de->d_name, 0);
			image_rec_free(r);
			continue;
		}
		struct image_rec **ni = realloc(s->images, (s->n_images + 1) * sizeof(*ni));
		if (!ni) {
			image_rec_free(r);
			break;
		}
		s->images = ni;
		s->images[s->n_images++] = r;
	}
	closedir(d);
}

static void load_containers(struct store *s)
{
	_cleanup_close_ int fd = openat(s->root_fd, "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d)
		return;
	TAKE_FD(fd);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!id_is_valid(de->d_name))
			continue;
		char rel[128];
		snprintf(rel, sizeof(rel), "containers/%.64s/image", de->d_name);
		_cleanup_free_ char *p = path_join(s, rel, NULL);
		_cleanup_free_ char *text = NULL;
		size_t tl;
		if (!p || read_file(p, 128, &text, &tl) < 0 || !digest_is_valid(text))
			continue;
		struct container_rec *nc = realloc(s->containers, (s->n_containers + 1) * sizeof(*nc));
		if (!nc)
			break;
		s->containers = nc;
		memcpy(nc[s->n_containers].id, de->d_name, 64); /* validated: 64 hex */
		nc[s->n_containers].id[64] = '\0';
		snprintf(nc[s->n_containers].image, sizeof(nc->image), "%s", text);
		s->n_containers++;
	}
	closedir(d);
}

int store_open(const char *root, struct store **out)
{
	static const char *const dirs[] = {"blobs", "blobs/sha256", "layers", "images", "containers", "tmp"};
	_cleanup_close_ int tmpfd = -1;
	struct store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->root_fd = -1;
	int r = -ENOMEM;
	if (!(s->root = strdup(root)))
		goto fail;
	if ((r = mkdir_p(root, 0700)) < 0) {
		log_error_errno(r, NULL, "cannot create image store", "path=%s", root);
		goto fail;
	}
	s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->root_fd < 0) {
		r = -errno;
		goto fail;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (mkdirat(s->root_fd, dirs[i], 0700) < 0 && errno != EEXIST) {
			r = log_error_errno(errno, NULL, "cannot create store directory", "dir=%s", dirs[i]);
			goto fail;
		}
	/* Work that a crash interrupted. */
	tmpfd = openat(s->root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tmpfd >= 0 && (r = remove_children(tmpfd)) < 0)
		log_warn_errno(r, NULL, "cannot empty the store's tmp directory");
	remove_interrupted_writes(s->root_fd, "images");
	remove_interrupted_writes(s->root_fd, "blobs/sha256");
	load_images(s);
	load_containers(s);
	gc_layers(s);
	log_info(NULL, "image store open", "path=%s images=%zu containers=%zu", root, s->n_images,
		 s->n_containers);
	*out = s;
	return 0;
fail:
	store_close(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_images; i++)
		image_rec_free(s->images[i]);
	free(s->images);
	free(s->containers);
	free(s->pins);
	if (s->root_fd >= 0)
		close(s->root_fd);
	pthread_mutex_destroy(&s->lock);
	free(s->root);
	free(s);
}

int store_mkdtemp(struct store *s, char **path)
{
	char *p;
	if (asprintf(&p, "%s/tmp/work-XXXXXX", s->root) < 0)
		return -ENOMEM;
	if (!mkdtemp(p)) {
		int r = -errno;
		free(p);
		return r;
	}
	*path = p;
	return 0;
}

/* ---------------------------------------------------------------- blobs */

static char *blob_path(const struct store *s, const char *digest)
{
	char *p;
	if (asprintf(&p, "%s/blobs/sha256/%s", s->root, digest_hex(digest)) < 0)
		return NULL;
	return p;
}

int store_blob_put(struct store *s, const char *digest, const void *data, size_t len)
{
	if (!digest_is_valid(digest))
		return -EINVAL;
	char actual[DIGEST_STR_MAX];
	digest_buffer(data, len, actual);
	if (strcmp(actual, digest) != 0)
		return -EBADMSG;
	_cleanup_free_ char *p = blob_path(s, digest);
	if (!p)
		return -ENOMEM;
	return write_file_atomic(p, data, len, 0600);
}

int store_blob_get(struct store *s, const char *digest, size_t max, char **data, size_t *len)
{
	if (!digest_is_valid(digest))
		return -EINVAL;
	_cleanup_free_ char *p = blob_path(s, digest);
	if (!p)
		return -ENOMEM;
	_cleanup_free_ char *buf = NULL;
	size_t n;
	int r = read_file(p, max, &buf, &n);
	if (r < 0)
		return r;
	char actual[DIGEST_STR_MAX];
	digest_buffer(buf, n, actual);
	if (strcmp(actual, digest) != 0) {
		log_warn(NULL, "stored blob is corrupt, discarding", "digest=%s", digest);
		unlink(p);
		return -ENOENT;
	}
	*data = TAKE_PTR(buf);
	*len = n;
	return 0;
}

/* ---------------------------------------------------------------- layers */

void layer_chain_id(const char *parent, const char *diff_id, char out[DIGEST_STR_MAX])
{
	if (!parent) {
		snprintf(out, DIGEST_STR_MAX, "%s", diff_id);
		return;
	}
	char buf[2 * DIGEST_STR_MAX + 2];
	int n = snprintf(buf, sizeof(buf), "%s %s", parent, diff_id);
	digest_buffer(buf, (size_t)n, out);
}

bool store_layer_exists(struct store *s, const char *chain_id)
{
	char rel[128];
	snprintf(rel, sizeof(rel), "layers/%s/meta", digest_hex(chain_id));
	return faccessat(s->root_fd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int store_layer_commit(struct store *s, const char *chain_id, const char *tmpdir, const char *blob_digest,
		       const char *diff_id, uint64_t compressed_size)
{
	char meta[256];
	int n = snprintf(meta, sizeof(meta), "%s %s %llu\n", blob_digest, diff_id,
			 (unsigned long long)compressed_size);
	_cleanup_free_ char *mp = NULL;
	if (asprintf(&mp, "%s/meta", tmpdir) < 0)
		return -ENOMEM;
	int r = write_file_atomic(mp, meta, (size_t)n, 0600);
	if (r < 0)
		return r;
	char rel[128];
	snprintf(rel, sizeof(rel), "layers/%s", digest_hex(chain_id));
	if (renameat(AT_FDCWD, tmpdir, s->root_fd, rel) < 0) {
		r = -errno;
		if (r == -EEXIST || r == -ENOTEMPTY) {
			/* Another pull committed the same layer first. */
			_cleanup_free_ char *dup = strdup(tmpdir);
			char *slash = dup ? strrchr(dup, '/') : NULL;
			if (slash) {
				*slash = '\0';
				_cleanup_close_ int pfd = open(dup, O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (pfd >= 0)
					(void)remove_tree_at(pfd, slash + 1);
			}
			return 0;
		}
		return log_error_errno(r, NULL, "cannot commit layer", "layer=%s", chain_id);
	}
	return 0;
}

void store_layer_pin(struct store *s, const char *chain_id)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_pins; i++)
		if (strcmp(s->pins[i].chain, chain_id) == 0) {
			s->pins[i].count++;
			pthread_mutex_unlock(&s->lock);
			return;
		}
	struct pin *np = realloc(s->pins, (s->n_pins + 1) * sizeof(*np));
	if (np) {
		s->pins = np;
		snprintf(np[s->n_pins].chain, sizeof(np->chain), "%s", chain_id);
		np[s->n_pins].count = 1;
		s->n_pins++;
	}
	pthread_mutex_unlock(&s->lock);
}

void store_layer_unpin(struct store *s, const char *chain_id)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_pins; i++)
		if (strcmp(s->pins[i].chain, chain_id) == 0) {
			if (--s->pins[i].count == 0) {
				s->pins[i] = s->pins[s->n_pins - 1];
				s->n_pins--;
			}
			break;
		}
	pthread_mutex_unlock(&s->lock);
}

int store_sync(struct store *s)
{
	if (syncfs(s->root_fd) < 0)
		return -errno;
	return 0;
}

/* ---------------------------------------------------------------- images */

size_t store_image_count(const struct store *s) { return s->n_images; }
const struct image_rec *store_image_at(const struct store *s, size_t i) { return s->images[i]; }

const struct image_rec *store_image_find(const struct store *s, const char *name)
{
	if (!name || !*name)
		return NULL;
	const char *hex = strncmp(name, "sha256:", 7) == 0 ? name + 7 : name;
	size_t hl = strlen(hex);
	bool is_hex = hl >= 12 && hl <= 64 && strspn(hex, "0123456789abcdef") == hl;
	const struct image_rec *prefix_match = NULL;
	int prefix_matches = 0;
	for (size_t i = 0; i < s->n_images; i++) {
		const struct image_rec *r = s->images[i];
		if (strcmp(r->id, name) == 0)
			return r;
		for (size_t k = 0; k < r->n_repo_tags; k++)
			if (strcmp(r->repo_tags[k], name) == 0)
				return r;
		for (size_t k = 0; k < r->n_repo_digests; k++)
			if (strcmp(r->repo_digests[k], name) == 0)
				return r;
		if (is_hex && strncmp(r->id + 7, hex, hl) == 0) {
			prefix_match = r;
			prefix_matches++;
		}
	}
	return prefix_matches == 1 ? prefix_match : NULL;
}

static struct image_rec *find_by_id(struct store *s, const char *id)
{
	for (size_t i = 0; i < s->n_images; i++)
		if (strcmp(s->images[i]->id, id) == 0)
			return s->images[i];
	return NULL;
}

int store_image_register(struct store *s, const char *id, const char *manifest_digest, char *const *layers,
			 size_t n_layers, uint64_t size, int64_t uid, const char *username, const char *tag,
			 const char *repo_digest)
{
	struct image_rec *r = find_by_id(s, id);
	bool fresh = !r;
	int ret;
	if (fresh) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		snprintf(r->id, sizeof(r->id), "%s", id);
		r->created_ns = now_realtime_ns();
		for (size_t i = 0; i < n_layers; i++)
			if (strv_add(&r->layers, &r->n_layers, layers[i]) < 0) {
				image_rec_free(r);
				return -ENOMEM;
			}
	}
	snprintf(r->manifest_digest, sizeof(r->manifest_digest), "%s", manifest_digest);
	r->size = size;
	r->uid = uid;
	free(r->username);
	r->username = username ? strdup(username) : NULL;
	/* A tag names one image: move it here from any other. */
	if (tag)
		for (size_t i = 0; i < s->n_images; i++) {
			struct image_rec *o = s->images[i];
			if (o != r && strv_remove(o->repo_tags, &o->n_repo_tags, tag) &&
			    (ret = image_rec_write(s, o)) < 0)
				log_warn_errno(ret, NULL, "cannot untag previous image", "image=%s tag=%s", o->id, tag);
		}
	if ((tag && strv_add(&r->repo_tags, &r->n_repo_tags, tag) < 0) ||
	    (repo_digest && strv_add(&r->repo_digests, &r->n_repo_digests, repo_digest) < 0)) {
		if (fresh)
			image_rec_free(r);
		return -ENOMEM;
	}
	ret = image_rec_write(s, r);
	if (ret < 0) {
		if (fresh)
			image_rec_free(r);
		return ret;
	}
	if (fresh) {
		struct image_rec **ni = realloc(s->images, (s->n_images + 1) * sizeof(*ni));
		if (!ni) {
			image_rec_free(r);
			return -ENOMEM;
		}
		s->images = ni;
		s->images[s->n_images++] = r;
	}
	return 0;
}

bool store_image_in_use(struct store *s, const char *image_id)
{
	for (size_t i = 0; i < s->n_containers; i++)
		if (strcmp(s->containers[i].image, image_id) == 0)
			return true;
	return false;
}

int store_image_remove(struct store *s, const struct image_rec *img, const char *only_tag)
{
	struct image_rec *r = find_by_id(s, img->id);
	if (!r)
		return -ENOENT;
	if (only_tag && r->n_repo_tags > 1) {
		strv_remove(r->repo_tags, &r->n_repo_tags, only_tag);
		return image_rec_write(s, r);
	}
	if (store_image_in_use(s, r->id))
		return -EBUSY;
	char rel[128];
	snprintf(rel, sizeof(rel), "images/%s.json", digest_hex(r->id));
	if (unlinkat(s->root_fd, rel, 0) < 0 && errno != ENOENT)
		return log_error_errno(errno, NULL, "cannot remove image record", "image=%s", r->id);
	(void)fsync(s->root_fd);
	for (size_t i = 0; i < s->n_images; i++)
		if (s->images[i] == r) {
			s->images[i] = s->images[--s->n_images];
			break;
		}
	/* Its config (only this image has that id) and its manifest unless
	 * another image resolved to the same one. */
	_cleanup_free_ char *cfg_blob = blob_path(s, r->id);
	if (cfg_blob)
		(void)unlink(cfg_blob);
	bool manifest_shared = false;
	for (size_t i = 0; i < s->n_images; i++)
		if (strcmp(s->images[i]->manifest_digest, r->manifest_digest) == 0)
			manifest_shared = true;
	if (!manifest_shared) {
		_cleanup_free_ char *bp = blob_path(s, r->manifest_digest);
		if (bp)
			(void)unlink(bp);
	}
	for (size_t i = 0; i < r->n_layers; i++) {
		const char *chain = r->layers[i];
		if (image_uses_layer(s, chain) || layer_pinned(s, chain))
			continue;
		int ret = discard_tree(s, "layers", digest_hex(chain));
		if (ret < 0)
			log_warn_errno(ret, NULL, "cannot remove layer", "layer=%s", chain);
	}
	log_info(NULL, "removed image", "image=%s", r->id);
	image_rec_free(r);
	return 0;
}

/* ---------------------------------------------------------------- rootfs */

static bool is_overlay_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && major(st->st_rdev) == 0 && minor(st->st_rdev) == 0;
}

/* Copy one layer's diff (overlay format) onto dst: whiteouts delete, opaque
 * directories drop what lower layers put there. Confined: every operation
 * is relative to directory fds opened without following symlinks. */
static int copy_layer(int src_dir, int dst_dir, int depth)
{
	if (depth > 256)
		return -ELOOP;
	_cleanup_close_ int sfd = openat(src_dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0)
		return -errno;
	DIR *d = fdopendir(sfd);
	if (!d)
		return -errno;
	TAKE_FD(sfd);
	int ret = 0;
	struct dirent *de;
	while (ret == 0 && (de = readdir(d))) {
		const char *n = de->d_name;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(src_dir, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			ret = -errno;
			break;
		}
		struct stat dst_st;
		bool exists = fstatat(dst_dir, n, &dst_st, AT_SYMLINK_NOFOLLOW) == 0;
		if (is_overlay_whiteout(&st)) {
			if (exists)
				ret = remove_tree_at(dst_dir, n);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			char opaque[2] = {0};
			_cleanup_close_ int child_src = openat(src_dir, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (child_src < 0) {
				ret = -errno;
				break;
			}
			bool is_opaque = fgetxattr(child_src, "trusted.overlay.opaque", opaque, 1) == 1 && opaque[0] == 'y';
			if (exists && (!S_ISDIR(dst_st.st_mode) || is_opaque)) {
				if ((ret = remove_tree_at(dst_dir, n)) < 0)
					break;
				exists = false;
			}
			if (!exists && mkdirat(dst_dir, n, 0700) < 0) {
				ret = -errno;
				break;
			}
			_cleanup_close_ int child_dst = openat(dst_dir, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (child_dst < 0) {
				ret = -errno;
				break;
			}
			if ((ret = copy_layer(child_src, child_dst, depth + 1)) < 0)
				break;
			if (fchown(child_dst, st.st_uid, st.st_gid) < 0 || fchmod(child_dst, st.st_mode & 07777) < 0) {
				ret = -errno;
				break;
			}
			struct timespec ts[2] = {st.st_atim, st.st_mtim};
			(void)futimens(child_dst, ts);
			continue;
		}
		if (exists && (ret = remove_tree_at(dst_dir, n)) < 0)
			break;
		if (S_ISREG(st.st_mode)) {
			_cleanup_close_ int in = openat(src_dir, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			_cleanup_close_ int out =
				in < 0 ? -1 : openat(dst_dir, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (in < 0 || out < 0) {
				ret = -errno;
				break;
			}
			char buf[65536];
			ssize_t k;
			while ((k = read(in, buf, sizeof(buf))) > 0)
				if (write(out, buf, (size_t)k) != k) {
					k = -1;
					break;
				}
			if (k < 0 || fchown(out, st.st_uid, st.st_gid) < 0 || fchmod(out, st.st_mode & 07777) < 0) {
				ret = -errno ? -errno : -EIO;
				break;
			}
			struct timespec ts[2] = {st.st_atim, st.st_mtim};
			(void)futimens(out, ts);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t k = readlinkat(src_dir, n, target, sizeof(target) - 1);
			if (k < 0) {
				ret = -errno;
				break;
			}
			target[k] = '\0';
			if (symlinkat(target, dst_dir, n) < 0 ||
			    fchownat(dst_dir, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
				ret = -errno;
				break;
			}
		} else {
			if (mknodat(dst_dir, n, st.st_mode, st.st_rdev) < 0 ||
			    fchownat(dst_dir, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0) {
				ret = -errno;
				break;
			}
		}
	}
	closedir(d);
	return ret;
}

static int container_dir(const struct store *s, const char *cid, const char *sub, char **out)
{
	if (asprintf(out, "%s/containers/%s%s%s", s->root, cid, sub ? "/" : "", sub ? sub : "") < 0)
		return -ENOMEM;
	return 0;
}

static int mount_overlay(struct store *s, const char *cid, const struct image_rec *img, const char *rootfs)
{
	/* lowerdir lists the top layer first; paths relative to layers/ keep
	 * the option string short (the kernel caps it at a page). */
	size_t cap = img->n_layers * 80 + 1;
	_cleanup_free_ char *lower = calloc(1, cap);
	if (!lower)
		return -ENOMEM;
	for (size_t i = img->n_layers; i-- > 0;) {
		size_t used = strlen(lower);
		snprintf(lower + used, cap - used, "%s%s/diff", used ? ":" : "", digest_hex(img->layers[i]));
	}
	_cleanup_free_ char *upper = NULL, *work = NULL, *opts = NULL, *layers = path_join(s, "layers", NULL);
	if (container_dir(s, cid, "upper", &upper) < 0 || container_dir(s, cid, "work", &work) < 0 || !layers ||
	    asprintf(&opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work) < 0)
		return -ENOMEM;
	if (strlen(opts) >= 4000)
		return -ENAMETOOLONG;
	/* The loop thread is the only one using relative paths. */
	_cleanup_close_ int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || chdir(layers) < 0)
		return -errno;
	int r = mount("overlay", rootfs, "overlay", 0, opts) < 0 ? -errno : 0;
	if (fchdir(cwd) < 0)
		log_warn_errno(errno, NULL, "cannot return to the previous working directory");
	return r;
}

static int copy_rootfs(struct store *s, const struct image_rec *img, const char *rootfs)
{
	_cleanup_close_ int dst = open(rootfs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dst < 0)
		return -errno;
	for (size_t i = 0; i < img->n_layers; i++) {
		char rel[128];
		snprintf(rel, sizeof(rel), "layers/%s/diff", digest_hex(img->layers[i]));
		_cleanup_close_ int src = openat(s->root_fd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (src < 0)
			return -errno;
		int r = copy_layer(src, dst, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

int store_rootfs_mount(struct store *s, const char *container_id, const struct image_rec *img,
		       enum rootfs_mode mode, char **rootfs_out, char *err, size_t errlen)
{
	if (!id_is_valid(container_id)) {
		snprintf(err, errlen, "container id must be 64 hex characters");
		return -EINVAL;
	}
	for (size_t i = 0; i < s->n_containers; i++)
		if (strcmp(s->containers[i].id, container_id) == 0) {
			snprintf(err, errlen, "container %s already has a root filesystem", container_id);
			return -EEXIST;
		}
	if (img->n_layers == 0) {
		snprintf(err, errlen, "image %s has no layers", img->id);
		return -EINVAL;
	}
	_cleanup_free_ char *dir = NULL, *rootfs = NULL, *imgfile = NULL;
	if (container_dir(s, container_id, NULL, &dir) < 0 || container_dir(s, container_id, "rootfs", &rootfs) < 0 ||
	    container_dir(s, container_id, "image", &imgfile) < 0)
		return -ENOMEM;
	static const char *const subs[] = {"", "/upper", "/work", "/rootfs"};
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		_cleanup_free_ char *p = NULL;
		if (asprintf(&p, "%s%s", dir, subs[i]) < 0)
			return -ENOMEM;
		if (mkdir(p, i == 0 ? 0700 : 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
			return -errno;
		}
	}
	/* Record the image first: a crash after this still knows what it was. */
	int r = write_file_atomic(imgfile, img->id, strlen(img->id), 0600);
	if (r < 0) {
		snprintf(err, errlen, "cannot record the container's image: %s", strerror(-r));
		return r;
	}
	r = -EOPNOTSUPP;
	if (mode != ROOTFS_COPY) {
		r = mount_overlay(s, container_id, img, rootfs);
		if (r < 0 && mode == ROOTFS_OVERLAY) {
			snprintf(err, errlen, "overlay mount failed: %s", strerror(-r));
			goto fail;
		}
		if (r < 0)
			log_warn_errno(r, NULL, "overlay unavailable, copying the rootfs", "container=%s", container_id);
	}
	if (r < 0) {
		r = copy_rootfs(s, img, rootfs);
		if (r < 0) {
			snprintf(err, errlen, "cannot copy the image into the rootfs: %s", strerror(-r));
			goto fail;
		}
	}
	struct container_rec *nc = realloc(s->containers, (s->n_containers + 1) * sizeof(*nc));
	if (!nc) {
		r = -ENOMEM;
		goto fail;
	}
	s->containers = nc;
	snprintf(nc[s->n_containers].id, sizeof(nc->id), "%s", container_id);
	snprintf(nc[s->n_containers].image, sizeof(nc->image), "%s", img->id);
	s->n_containers++;
	*rootfs_out = TAKE_PTR(rootfs);
	return 0;
fail:
	(void)umount2(rootfs, MNT_DETACH);
	(void)discard_tree(s, "containers", container_id);
	return r;
}

int store_rootfs_unmount(struct store *s, const char *container_id)
{
	if (!id_is_valid(container_id))
		return -EINVAL;
	_cleanup_free_ char *rootfs = NULL;
	if (container_dir(s, container_id, "rootfs", &rootfs) < 0)
		return -ENOMEM;
	/* Unmount every stacked mount, then remove the container's dirs. */
	for (int i = 0; i < 16 && umount2(rootfs, MNT_DETACH | UMOUNT_NOFOLLOW) == 0; i++)
		;
	int r = discard_tree(s, "containers", container_id);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot remove container rootfs", "container=%s", container_id);
	for (size_t i = 0; i < s->n_containers; i++)
		if (strcmp(s->containers[i].id, container_id) == 0) {
			s->containers[i] = s->containers[--s->n_containers];
			break;
		}
	return 0;
}

bool store_rootfs_known(const struct store *s, const char *container_id)
{
	for (size_t i = 0; i < s->n_containers; i++)
		if (strcmp(s->containers[i].id, container_id) == 0)
			return true;
	return false;
}

#define VOLUMES_MAX 128
#define VOLUME_PATH_MAX 4096

int store_rootfs_read_file(struct store *s, const char *container_id, const char *path, size_t max, char **data,
			   size_t *len, char *err, size_t errlen)
{
	char rel[128];
	struct stat st;

	*data = NULL;
	*len = 0;
	if (!id_is_valid(container_id)) {
		snprintf(err, errlen, "container id must be 64 hex characters");
		return -EINVAL;
	}
	snprintf(rel, sizeof(rel), "containers/%s/rootfs", container_id);
	_cleanup_close_ int root = openat(s->root_fd, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0) {
		int r = -errno;
		snprintf(err, errlen, "cannot open the root filesystem of %s: %s", container_id, strerror(-r));
		return r;
	}
	/* Symlinks are followed, but only ever inside the root. O_PATH first:
	 * a hostile layer may put a device node or a FIFO there, and opening
	 * one for reading would run its driver (a watchdog reboots the host). */
	_cleanup_close_ int path_fd = openat2_retry(root, path, O_PATH | O_CLOEXEC,
						    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
	if (path_fd == -ENOENT || path_fd == -ENOTDIR) {
		*data = strdup("");
		return *data ? 0 : -ENOMEM;
	}
	if (path_fd < 0) {
		snprintf(err, errlen, "cannot open /%s in the image: %s", path, strerror(-path_fd));
		return path_fd;
	}
	if (fstat(path_fd, &st) < 0) {
		int r = -errno;
		snprintf(err, errlen, "cannot stat /%s in the image: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "/%s in the image is not a regular file", path);
		return -EINVAL;
	}
	/* The same inode, now for reading. */
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", path_fd);
	_cleanup_close_ int fd = open(self, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;
		snprintf(err, errlen, "cannot open /%s in the image: %s", path, strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size > max) {
		snprintf(err, errlen, "/%s in the image is larger than %zu bytes", path, max);
		return -EFBIG;
	}
	_cleanup_free_ char *buf = malloc(max + 1);
	if (!buf)
		return -ENOMEM;
	size_t n = 0;
	for (;;) {
		ssize_t k = read(fd, buf + n, max + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int r = -errno;
			snprintf(err, errlen, "cannot read /%s in the image: %s", path, strerror(-r));
			return r;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > max) {
			/* It grew after the fstat. */
			snprintf(err, errlen, "/%s in the image is larger than %zu bytes", path, max);
			return -EFBIG;
		}
	}
	buf[n] = '\0';
	*data = TAKE_PTR(buf);
	*len = n;
	return 0;
}

/* Open dir (relative to root, "" for the root itself) as a directory,
 * resolving symlinks inside the root only. */
static int open_in_root(int root, const char *dir)
{
	return openat2_retry(root, *dir ? dir : ".", O_PATH | O_DIRECTORY | O_CLOEXEC,
			     RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
}

/* mkdir -p of one volume path below root, one component at a time, each
 * parent opened with RESOLVE_IN_ROOT. */
static int make_volume(int root, const char *vol, char *err, size_t errlen)
{
	char rel[VOLUME_PATH_MAX + 1];
	size_t o = 0;
	const char *p = vol;

	if (vol[0] != '/') {
		snprintf(err, errlen, "image config Volumes: \"%.100s\" is not an absolute path", vol);
		return -EINVAL;
	}
	if (strlen(vol) > VOLUME_PATH_MAX) {
		snprintf(err, errlen, "image config Volumes: \"%.100s...\" is longer than %u bytes", vol,
			 VOLUME_PATH_MAX);
		return -EINVAL;
	}
	if (str_has_ctl(vol)) {
		snprintf(err, errlen, "image config Volumes: a path has a control character");
		return -EINVAL;
	}
	rel[0] = '\0';
	while (*p) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 0)
			break;
		if (n == 1 && p[0] == '.') {
			p += n;
			continue;
		}
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			snprintf(err, errlen, "image config Volumes: \"%.100s\" has a \"..\" component", vol);
			return -EINVAL;
		}
		char name[NAME_MAX + 1];
		if (n > NAME_MAX) {
			snprintf(err, errlen, "image config Volumes: \"%.100s\": a component is too long", vol);
			return -ENAMETOOLONG;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		_cleanup_close_ int parent = open_in_root(root, rel);
		if (parent < 0) {
			snprintf(err, errlen, "image volume %.100s: cannot open /%.100s: %s", vol, rel, strerror(-parent));
			return parent;
		}
		if (mkdirat(parent, name, 0755) < 0 && errno != EEXIST) {
			int r = -errno;
			snprintf(err, errlen, "image volume %.100s: cannot create it: %s", vol, strerror(-r));
			return r;
		}
		/* rel += "/" name (fits: rel is no longer than vol) */
		if (o > 0)
			rel[o++] = '/';
		memcpy(rel + o, name, n);
		o += n;
		rel[o] = '\0';
		p += n;
	}
	if (o == 0)
		return 0; /* "/" itself */
	/* What is there now (made, or there before) must be a directory. */
	_cleanup_close_ int fd = open_in_root(root, rel);
	if (fd < 0) {
		snprintf(err, errlen, "image volume %.100s: %s", vol,
			 fd == -ENOTDIR ? "exists and is not a directory" : strerror(-fd));
		return fd;
	}
	return 0;
}

int store_rootfs_make_volumes(struct store *s, const char *container_id, const char *config_json, size_t *made,
			      char *err, size_t errlen)
{
	char rel[128];
	_cleanup_close_ int root = -1;
	int r = 0;

	*made = 0;
	if (!id_is_valid(container_id)) {
		snprintf(err, errlen, "container id must be 64 hex characters");
		return -EINVAL;
	}
	if (!config_json || !*config_json)
		return 0;
	json_object *doc = json_tokener_parse(config_json);
	if (!doc)
		return 0; /* not ours to judge; criod's spec builder says what is wrong */
	json_object *cfg = NULL, *vols = NULL;
	if (!json_object_object_get_ex(doc, "config", &cfg) || !json_object_is_type(cfg, json_type_object) ||
	    !json_object_object_get_ex(cfg, "Volumes", &vols) || !json_object_is_type(vols, json_type_object) ||
	    json_object_object_length(vols) == 0)
		goto out;
	if (json_object_object_length(vols) > VOLUMES_MAX) {
		snprintf(err, errlen, "image config Volumes: %d paths (max %u)", json_object_object_length(vols),
			 VOLUMES_MAX);
		r = -E2BIG;
		goto out;
	}
	snprintf(rel, sizeof(rel), "containers/%s/rootfs", container_id);
	root = openat(s->root_fd, rel, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open the root filesystem of %s: %s", container_id, strerror(-r));
		goto out;
	}
	json_object_object_foreach(vols, key, val)
	{
		(void)val;
		r = make_volume(root, key, err, errlen);
		if (r < 0)
			goto out;
		(*made)++;
	}
out:
	json_object_put(doc);
	return r;
}

/* ---------------------------------------------------------------- usage */

static __thread uint64_t usage_bytes, usage_inodes;

static int usage_cb(const char *path _unused_, const struct stat *st, int flag _unused_, struct FTW *ftw _unused_)
{
	usage_bytes += (uint64_t)st->st_blocks * 512;
	usage_inodes++;
	return 0;
}

int store_usage(struct store *s, uint64_t *bytes, uint64_t *inodes)
{
	usage_bytes = usage_inodes = 0;
	/* FTW_MOUNT: container rootfs mounts are not the image store. */
	if (nftw(s->root, usage_cb, 64, FTW_PHYS | FTW_MOUNT) < 0)
		return -errno;
	*bytes = usage_bytes;
	*inodes = usage_inodes;
	return 0;
}
