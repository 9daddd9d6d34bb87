/* imaged's on-disk image store, under <state_dir>/imaged/:
 *
 *   blobs/sha256/<hex>       manifests and image configs, content-addressed
 *   layers/<chainhex>/diff/  one unpacked layer (an overlayfs lower dir),
 *                            keyed by its chain id and shared between images
 *   layers/<chainhex>/meta   "<blob digest> <diff id> <compressed size>"
 *   images/<idhex>.json      one image: names, digests, layers, size
 *   containers/<cid>/        a container's rootfs (upper/, work/, rootfs/)
 *                            and the image it was made from (image)
 *   tmp/                     work in progress; emptied at every start
 *
 * Every file is written atomically (temp file, fsync, rename); a layer
 * directory appears by one rename of a finished tree; an image record is
 * written only after its layers and blobs are durable (syncfs). So a crash
 * at any point leaves no half-registered image, and what it leaves behind
 * (tmp/, layers no image references) is removed at the next start.
 *
 * The index of images lives in memory and is owned by the loop thread.
 * Worker threads only commit content-addressed blobs and layers; a layer a
 * pull is using is pinned so that a concurrent RemoveImage cannot delete
 * it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

struct store;

struct image_rec {
	char id[DIGEST_STR_MAX];              /* config digest */
	char manifest_digest[DIGEST_STR_MAX]; /* the digest the name resolved to (index or manifest) */
	char **repo_tags;
	size_t n_repo_tags;
	char **repo_digests;
	size_t n_repo_digests;
	char **layers; /* chain ids ("sha256:..."), base first */
	size_t n_layers;
	uint64_t size; /* sum of the compressed layer sizes */
	int64_t uid;    /* config.User when numeric, else -1 */
	char *username; /* config.User when a name, else NULL */
	int64_t created_ns;
};

int store_open(const char *root, struct store **out);
void store_close(struct store *s);
const char *store_root(const struct store *s);
/* An fd of the store's tmp/ directory, and a fresh private directory in it
 * (path malloc'd) for work in progress. */
int store_mkdtemp(struct store *s, char **path);

/* ---- blobs (any thread) ---- */
int store_blob_put(struct store *s, const char *digest, const void *data, size_t len);
/* Read a blob (NUL-terminated, verified against its digest); -ENOENT if absent. */
int store_blob_get(struct store *s, const char *digest, size_t max, char **data, size_t *len);

/* ---- layers (any thread) ---- */
/* chain id of a layer whose parent chain id is parent (NULL for the base). */
void layer_chain_id(const char *parent, const char *diff_id, char out[DIGEST_STR_MAX]);
bool store_layer_exists(struct store *s, const char *chain_id);
/* Move a finished tree (tmpdir containing diff/) into place as chain_id;
 * if another pull committed it first, tmpdir is removed and 0 returned. */
int store_layer_commit(struct store *s, const char *chain_id, const char *tmpdir, const char *blob_digest,
		       const char *diff_id, uint64_t compressed_size);
/* Pins keep a layer alive while a pull that needs it is running. */
void store_layer_pin(struct store *s, const char *chain_id);
void store_layer_unpin(struct store *s, const char *chain_id);
/* Make everything written so far durable (syncfs of the store). */
int store_sync(struct store *s);

/* ---- images (loop thread) ---- */
size_t store_image_count(const struct store *s);
const struct image_rec *store_image_at(const struct store *s, size_t i);
/* Find by id ("sha256:<hex>" or a unique hex prefix of at least 12), by
 * normalised tag, or by normalised digest reference. */
const struct image_rec *store_image_find(const struct store *s, const char *name);
/* Add or update an image: the tag (may be NULL) moves to it from any other
 * image; the repo digest (may be NULL) is added. Durable on return. */
int store_image_register(struct store *s, const char *id, const char *manifest_digest, char *const *layers,
			 size_t n_layers, uint64_t size, int64_t uid, const char *username, const char *tag,
			 const char *repo_digest);
/* Remove a name or a whole image (see the CRI semantics in imaged/main.c).
 * -EBUSY if a container's rootfs uses the image. Layers no other image
 * uses are deleted. */
int store_image_remove(struct store *s, const struct image_rec *img, const char *only_tag);

/* ---- container root filesystems (loop thread) ---- */
enum rootfs_mode { ROOTFS_AUTO, ROOTFS_OVERLAY, ROOTFS_COPY };
int store_rootfs_mount(struct store *s, const char *container_id, const struct image_rec *img,
		       enum rootfs_mode mode, char **rootfs, char *err, size_t errlen);
int store_rootfs_unmount(struct store *s, const char *container_id);
/* Read a file of a mounted container root filesystem (e.g. "etc/passwd")
 * as the container will see it: opened with openat2() on the rootfs
 * directory with RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
 * so symlinks (absolute ones and ".." included) resolve inside the root and
 * nothing outside it can be reached; O_NONBLOCK, so a FIFO cannot hang the
 * caller. An absent file (or a missing/non-directory parent) is *data = ""
 * and returns 0. A file that is not a regular file is -EINVAL, one larger
 * than max -EFBIG, anything else that fails the open or the read its errno;
 * err says which. *data is malloc'd and NUL-terminated; *len excludes the
 * NUL. (loop thread, like the mount) */
int store_rootfs_read_file(struct store *s, const char *container_id, const char *path, size_t max, char **data,
			   size_t *len, char *err, size_t errlen);
/* Create the image config's Volumes ("config": {"Volumes": {"/data": {}}})
 * as directories (0755, root) in a mounted container root filesystem,
 * like mkdir -p: each parent is opened with openat2() RESOLVE_IN_ROOT (as
 * above), so symlinks in the image resolve inside the root; an existing
 * directory is kept. A path that is not absolute, has a ".." component or a
 * control character, more than 128 volumes, or a path that exists and is
 * not a directory is an error (err says which). A config that is not JSON
 * or has no Volumes is 0. *made counts the paths handled. (loop thread) */
int store_rootfs_make_volumes(struct store *s, const char *container_id, const char *config_json, size_t *made,
			      char *err, size_t errlen);
bool store_image_in_use(struct store *s, const char *image_id);
/* Whether imaged mounted a root filesystem for container_id (and has not
 * removed it). (loop thread) */
bool store_rootfs_known(const struct store *s, const char *container_id);

/* ---- usage ---- */
int store_usage(struct store *s, uint64_t *bytes, uint64_t *inodes);
