/* imaged: the root image daemon. It owns all image storage; criod asks it,
 * through the short request list below, to pull, list, inspect and remove
 * images and to mount container root filesystems. Every argument is checked
 * here as if criod were hostile: references are parsed and bounded, ids are
 * 64 hex characters, and every path imaged touches is its own. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "daemon.h"
#include "internal/envelope.pb-c.h"
#include "internal/imaged.pb-c.h"
#include "fetcher.h"
#include "imaged_confine.h"
#include "log.h"
#include "macro.h"
#include "prom.h"
#include "pull.h"
#include "ref.h"
#include "request.h"
#include "status.h"
#include "store.h"
#include "usage.h"
#include "util.h"
#include "workq.h"

#define MAX_NAME IMAGED_MAX_NAME
#define WORKER_THREADS 4
#define MAX_CONFIG_JSON (8u << 20)
#define MAX_ETC_FILE (1u << 20) /* an image's /etc/passwd, /etc/group */

struct imaged;

/* A pull in progress; later identical requests wait for it. */
struct pull_op {
	struct pull_op *next;
	struct imaged *im;
	char *key;
	char *image;
	struct pull_auth auth;
	char req[72];
	struct pull_result res;
	struct ipc_call **calls;
	size_t n_calls;
	int64_t start_ns; /* monotonic */
};

struct imaged {
	struct daemon *d;
	struct store *store;
	struct workq *wq;
	enum rootfs_mode rootfs_mode;
	struct pull_op *pulls;
	struct prom_by_status pull_figs; /* pulls ended, by status (Metrics) */
};

static bool name_ok(struct ipc_call *call, const char *field, const char *v)
{
	char err[128];
	int st = imaged_check_name(field, v, err, sizeof(err));
	if (st == STATUS_OK)
		return true;
	ipc_call_fail(call, st, "%s", err);
	return false;
}

/* Resolve what a client calls an image: an id, an id prefix, or a
 * reference in any form kubelet uses (normalised before the lookup). */
static bool has_tag(const struct image_rec *r, const char *tag)
{
	for (size_t i = 0; i < r->n_repo_tags; i++)
		if (strcmp(r->repo_tags[i], tag) == 0)
			return true;
	return false;
}

/* Resolve what a client calls an image: an id, an id prefix, or a
 * reference in any form kubelet uses (normalised before the lookup). When
 * the name was one of the image's tags, *tag_out (if given) gets it. */
static const struct image_rec *find_image(struct store *s, const char *name, char **tag_out)
{
	const struct image_rec *r = store_image_find(s, name);
	if (r) {
		if (tag_out && has_tag(r, name))
			*tag_out = strdup(name);
		return r;
	}
	struct image_ref ref = {0};
	char err[256];
	if (ref_parse(name, &ref, err, sizeof(err)) < 0)
		return NULL;
	_cleanup_free_ char *tagged = ref.tag ? ref_tagged(&ref) : NULL;
	_cleanup_free_ char *digested = ref.digest ? ref_digested(&ref, ref.digest) : NULL;
	if (digested)
		r = store_image_find(s, digested);
	if (!r && tagged) {
		r = store_image_find(s, tagged);
		if (r && tag_out && has_tag(r, tagged))
			*tag_out = TAKE_PTR(tagged);
	}
	ref_free(&ref);
	return r;
}

static void fill_image(struct imaged *im, const struct image_rec *r, bool with_config, Criod__Internal__Image *out,
		       char **config_json)
{
	out->id = (char *)r->id;
	out->repo_tags = r->repo_tags;
	out->n_repo_tags = r->n_repo_tags;
	out->repo_digests = r->repo_digests;
	out->n_repo_digests = r->n_repo_digests;
	out->size = r->size;
	out->manifest_digest = (char *)r->manifest_digest;
	out->uid = r->uid;
	out->username = r->username ? r->username : (char *)"";
	if (with_config) {
		size_t len;
		if (store_blob_get(im->store, r->id, MAX_CONFIG_JSON, config_json, &len) == 0)
			out->config_json = *config_json;
	}
}

/* ---------------------------------------------------------------- Pull */

static void pull_op_free(struct pull_op *op)
{
	free(op->key);
	free(op->image);
	free(op->auth.username);
	free(op->auth.password);
	free(op->auth.auth);
	free(op->auth.identity_token);
	free(op->auth.registry_token);
	free(op->calls);
	free(op);
}

static void pull_work(void *arg)
{
	struct pull_op *op = arg;
	pull_run(&op->im->d->cfg, op->im->store, op->image, &op->auth, op->req, &op->res);
}

static void pull_done(void *arg)
{
	struct pull_op *op = arg;
	struct imaged *im = op->im;
	for (struct pull_op **pp = &im->pulls; *pp; pp = &(*pp)->next)
		if (*pp == op) {
			*pp = op->next;
			break;
		}
	struct pull_result *res = &op->res;
	if (res->status == STATUS_OK) {
		int r = store_image_register(im->store, res->id, res->manifest_digest, res->layers, res->n_layers,
					     res->size, res->user_uid, res->user_name, res->tag, res->repo_digest);
		if (r < 0) {
			res->status = status_from_errno(r);
			snprintf(res->message, sizeof(res->message), "cannot register image: %s", strerror(-r));
		}
	}
	prom_by_status_observe(&im->pull_figs, res->status, (double)(now_monotonic_ns() - op->start_ns) / 1e9,
			       res->received);
	if (res->status == STATUS_OK)
		log_info(op->req, "pulled image", "image=\"%s\" id=%s layers=%zu size=%llu", op->image, res->id,
			 res->n_layers, (unsigned long long)res->size);
	for (size_t i = 0; i < op->n_calls; i++) {
		if (res->status == STATUS_OK) {
			Criod__Internal__PullResponse resp = CRIOD__INTERNAL__PULL_RESPONSE__INIT;
			resp.image_ref = res->id;
			ipc_call_reply(op->calls[i], &resp.base, NULL, 0);
		} else {
			ipc_call_fail(op->calls[i], res->status, "%s", res->message);
		}
	}
	pull_result_release(im->store, res);
	pull_op_free(op);
	/* The pull's buffers (inflate windows, tar blocks, curl's) were freed
	 * in the worker threads' malloc arenas, which glibc keeps: give the
	 * pages back once nothing is being pulled. */
	if (!im->pulls)
		heap_trim();
}

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

static size_t pulls_pending(const struct imaged *im)
{
	size_t n = 0;
	for (const struct pull_op *o = im->pulls; o; o = o->next)
		n++;
	return n;
}

static void handle_pull(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	const Criod__Internal__PullRequest *req = (const void *)msg;
	_cleanup_free_ char *key = NULL;
	char err[512];
	int st = imaged_check_pull(req, &key, err, sizeof(err));
	if (st != STATUS_OK) {
		ipc_call_fail(call, st, "%s", err);
		return;
	}
	struct pull_op *op = NULL;
	for (struct pull_op *o = im->pulls; o; o = o->next)
		if (strcmp(o->key, key) == 0)
			op = o;
	bool fresh = !op;
	if (fresh) {
		/* Queued and running pulls are bounded; an identical pull joins
		 * its job above and costs nothing. */
		size_t pending = pulls_pending(im);
		if (pending >= im->d->cfg.max_pending_pulls) {
			log_warn(ipc_call_request_id(call), "refused a pull: too many pulls in progress",
				 "image=\"%s\" pending=%zu max_pending_pulls=%llu", req->image, pending,
				 (unsigned long long)im->d->cfg.max_pending_pulls);
			ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED,
				      "too many pulls in progress (%zu, [imaged] max_pending_pulls): try again later", pending);
			return;
		}
		op = calloc(1, sizeof(*op));
		if (!op) {
			ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
		op->im = im;
		op->start_ns = now_monotonic_ns();
		op->key = TAKE_PTR(key);
		op->image = strdup(req->image);
		snprintf(op->req, sizeof(op->req), "%s", ipc_call_request_id(call));
		if (req->auth) {
			op->auth.username = dup_or_null(req->auth->username);
			op->auth.password = dup_or_null(req->auth->password);
			op->auth.auth = dup_or_null(req->auth->auth);
			op->auth.identity_token = dup_or_null(req->auth->identity_token);
			op->auth.registry_token = dup_or_null(req->auth->registry_token);
		}
	}
	struct ipc_call **nc = realloc(op->calls, (op->n_calls + 1) * sizeof(*nc));
	if (!nc || !op->image) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		if (fresh)
			pull_op_free(op);
		return;
	}
	op->calls = nc;
	op->calls[op->n_calls++] = call;
	if (!fresh) {
		log_info(ipc_call_request_id(call), "joining pull in progress", "image=\"%s\"", req->image);
		return;
	}
	int r = workq_submit(im->wq, pull_work, pull_done, op);
	if (r < 0) {
		ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot start pull: %s", strerror(-r));
		pull_op_free(op);
		return;
	}
	op->next = im->pulls;
	im->pulls = op;
	log_info(op->req, "pulling image", "image=\"%s\"", req->image);
}

/* ---------------------------------------------------------------- List, Status */

static void handle_list(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	const Criod__Internal__ListImagesRequest *req = (const void *)msg;
	if (req->filter && strlen(req->filter) > MAX_NAME) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "filter is longer than %d bytes", MAX_NAME);
		return;
	}
	size_t n = store_image_count(im->store);
	_cleanup_free_ Criod__Internal__Image *imgs = calloc(n ? n : 1, sizeof(*imgs));
	_cleanup_free_ Criod__Internal__Image **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!imgs || !ptrs) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	const struct image_rec *only = NULL;
	if (req->filter && *req->filter && !(only = find_image(im->store, req->filter, NULL)))
		n = 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const struct image_rec *r = store_image_at(im->store, i);
		if (only && r != only)
			continue;
		criod__internal__image__init(&imgs[k]);
		fill_image(im, r, false, &imgs[k], NULL);
		ptrs[k] = &imgs[k];
		k++;
	}
	Criod__Internal__ListImagesResponse resp = CRIOD__INTERNAL__LIST_IMAGES_RESPONSE__INIT;
	resp.images = ptrs;
	resp.n_images = k;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static void handle_status(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	const Criod__Internal__ImageStatusRequest *req = (const void *)msg;
	if (!name_ok(call, "image", req->image))
		return;
	Criod__Internal__ImageStatusResponse resp = CRIOD__INTERNAL__IMAGE_STATUS_RESPONSE__INIT;
	Criod__Internal__Image img = CRIOD__INTERNAL__IMAGE__INIT;
	_cleanup_free_ char *config = NULL;
	const struct image_rec *r = find_image(im->store, req->image, NULL);
	if (r) {
		fill_image(im, r, req->with_config, &img, &config);
		resp.image = &img;
	}
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* ---------------------------------------------------------------- Remove */

static void handle_remove(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	const Criod__Internal__RemoveImageRequest *req = (const void *)msg;
	if (!name_ok(call, "image", req->image))
		return;
	_cleanup_free_ char *tag = NULL;
	const struct image_rec *r = find_image(im->store, req->image, &tag);
	Criod__Internal__RemoveImageResponse resp = CRIOD__INTERNAL__REMOVE_IMAGE_RESPONSE__INIT;
	if (!r) {
		/* Already gone: removal is idempotent. */
		ipc_call_reply(call, &resp.base, NULL, 0);
		return;
	}
	char id[DIGEST_STR_MAX];
	snprintf(id, sizeof(id), "%s", r->id);
	int ret = store_image_remove(im->store, r, tag);
	if (ret == -EBUSY) {
		ipc_call_fail(call, STATUS_FAILED_PRECONDITION, "image %s is in use by a container", id);
		return;
	}
	if (ret < 0) {
		ipc_call_fail(call, status_from_errno(ret), "cannot remove image %s: %s", id, strerror(-ret));
		return;
	}
	log_info(ipc_call_request_id(call), "image removed", "name=\"%s\" id=%s", req->image, id);
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* ---------------------------------------------------------------- FsInfo */

struct fsinfo_op {
	struct imaged *im;
	struct ipc_call *call;
	int ret;
	uint64_t bytes, inodes;
};

static void fsinfo_work(void *arg)
{
	struct fsinfo_op *op = arg;
	op->ret = store_usage(op->im->store, &op->bytes, &op->inodes);
}

static void fsinfo_done(void *arg)
{
	struct fsinfo_op *op = arg;
	if (op->ret < 0) {
		ipc_call_fail(op->call, status_from_errno(op->ret), "cannot measure the image store: %s",
			      strerror(-op->ret));
	} else {
		Criod__Internal__ImageFsInfoResponse resp = CRIOD__INTERNAL__IMAGE_FS_INFO_RESPONSE__INIT;
		resp.mountpoint = (char *)store_root(op->im->store);
		resp.used_bytes = op->bytes;
		resp.inodes_used = op->inodes;
		resp.timestamp_ns = now_realtime_ns();
		ipc_call_reply(op->call, &resp.base, NULL, 0);
	}
	free(op);
}

static void handle_fsinfo(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	struct fsinfo_op *op = calloc(1, sizeof(*op));
	if (!op) {
		ipc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	op->im = im;
	op->call = call;
	int r = workq_submit(im->wq, fsinfo_work, fsinfo_done, op);
	if (r < 0) {
		free(op);
		ipc_call_fail(call, STATUS_UNAVAILABLE, "cannot measure the image store: %s", strerror(-r));
	}
}

/* ---------------------------------------------------------------- rootfs */

/* Proto3 strings must be UTF-8: bytes of an image's /etc/passwd that are
 * not (a Latin-1 GECOS field, say) become '?'. Names that need them could
 * not be matched against a CRI username anyway. */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		unsigned c = *p;
		size_t n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 && c >= 0xc2 ? 1 : (c & 0xf0) == 0xe0 ? 2
			 : (c & 0xf8) == 0xf0 && c <= 0xf4 ? 3 : (size_t)-1;
		bool ok = n != (size_t)-1;
		for (size_t i = 1; ok && i <= n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		/* Overlong three-byte forms, UTF-16 surrogates, beyond U+10FFFF. */
		if (ok && n == 2 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)))
			ok = false;
		if (ok && n == 3 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
			ok = false;
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n + 1;
	}
}

static void handle_mount(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	const Criod__Internal__MountRootfsRequest *req = (const void *)msg;
	if (!id_is_valid(req->container_id)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "container_id must be 64 lowercase hex characters");
		return;
	}
	if (!name_ok(call, "image", req->image))
		return;
	const struct image_rec *r = find_image(im->store, req->image, NULL);
	if (!r) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "image \"%s\" is not present", req->image);
		return;
	}
	_cleanup_free_ char *rootfs = NULL;
	char err[512] = "";
	int ret = store_rootfs_mount(im->store, req->container_id, r, im->rootfs_mode, &rootfs, err, sizeof(err));
	if (ret < 0) {
		ipc_call_fail(call, ret == -EEXIST ? STATUS_ALREADY_EXISTS : status_from_errno(ret), "%s", err);
		return;
	}
	/* What criod needs to build the container's spec: the image's user
	 * database as the container will see it, and the image config. */
	_cleanup_free_ char *passwd = NULL, *group = NULL, *config = NULL;
	size_t len;
	int status = STATUS_FAILED_PRECONDITION;
	ret = store_rootfs_read_file(im->store, req->container_id, "etc/passwd", MAX_ETC_FILE, &passwd, &len, err,
				     sizeof(err));
	if (ret >= 0)
		ret = store_rootfs_read_file(im->store, req->container_id, "etc/group", MAX_ETC_FILE, &group, &len,
					     err, sizeof(err));
	if (ret >= 0) {
		ret = store_blob_get(im->store, r->id, MAX_CONFIG_JSON, &config, &len);
		if (ret < 0) {
			status = STATUS_INTERNAL;
			snprintf(err, sizeof(err), "cannot read the config of image %s: %s", r->id, strerror(-ret));
		}
	}
	size_t n_volumes = 0;
	if (ret >= 0) {
		/* The image's volumes: plain directories in the rootfs. */
		ret = store_rootfs_make_volumes(im->store, req->container_id, config, &n_volumes, err, sizeof(err));
		if (ret == -EINVAL || ret == -E2BIG || ret == -ENAMETOOLONG)
			status = STATUS_INVALID_ARGUMENT;
	}
	if (ret < 0) {
		if (ret == -ENOMEM)
			status = STATUS_RESOURCE_EXHAUSTED;
		int u = store_rootfs_unmount(im->store, req->container_id);
		if (u < 0)
			log_warn_errno(u, ipc_call_request_id(call), "cannot undo the rootfs mount", "container=%s",
				       req->container_id);
		log_error_errno(ret, ipc_call_request_id(call), "cannot read the image files of a rootfs",
				"container=%s image=%s error=\"%s\"", req->container_id, r->id, err);
		ipc_call_fail(call, status, "%s", err);
		return;
	}
	utf8_sanitize(passwd);
	utf8_sanitize(group);
	log_info(ipc_call_request_id(call), "rootfs mounted", "container=%s image=%s rootfs=%s volumes=%zu",
		 req->container_id, r->id, rootfs, n_volumes);
	Criod__Internal__MountRootfsResponse resp = CRIOD__INTERNAL__MOUNT_ROOTFS_RESPONSE__INIT;
	resp.rootfs = rootfs;
	resp.image_id = (char *)r->id;
	resp.etc_passwd = passwd;
	resp.etc_group = group;
	resp.config_json = config;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

static void handle_unmount(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	const Criod__Internal__UnmountRootfsRequest *req = (const void *)msg;
	if (!id_is_valid(req->container_id)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "container_id must be 64 lowercase hex characters");
		return;
	}
	int ret = store_rootfs_unmount(im->store, req->container_id);
	if (ret < 0) {
		ipc_call_fail(call, status_from_errno(ret), "cannot remove rootfs of %s: %s", req->container_id,
			      strerror(-ret));
		return;
	}
	log_info(ipc_call_request_id(call), "rootfs removed", "container=%s", req->container_id);
	Criod__Internal__UnmountRootfsResponse resp = CRIOD__INTERNAL__UNMOUNT_ROOTFS_RESPONSE__INIT;
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* RootfsUsage: the writable layer of a container imaged mounted, measured
 * by usage.c (cached, bounded walk). */
static void handle_rootfs_usage(struct ipc_call *call, const ProtobufCMessage *msg, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	const Criod__Internal__RootfsUsageRequest *req = (const void *)msg;
	if (!id_is_valid(req->container_id)) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "container_id must be 64 lowercase hex characters");
		return;
	}
	if (!store_rootfs_known(im->store, req->container_id)) {
		ipc_call_fail(call, STATUS_NOT_FOUND, "container %s has no root filesystem here", req->container_id);
		return;
	}
	usage_request(im->d->base, call, store_root(im->store), req->container_id);
}

/* Metrics: imaged's process and the pulls that ended, by status, with the
 * bytes they received and their latency (identical pulls that joined one
 * count once); the request has no fields. */
static void handle_metrics(struct ipc_call *call, const ProtobufCMessage *msg _unused_, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct imaged *im = ud;
	Criod__Internal__MetricsResponse resp = CRIOD__INTERNAL__METRICS_RESPONSE__INIT;
	Criod__Internal__ProcessFigures pf;
	Criod__Internal__PullFigures f[PROM_N_STATUS], *fp[PROM_N_STATUS];
	Criod__Internal__HistogramFigures hf[PROM_N_STATUS];
	daemon_process_figures(&pf);
	resp.component = (char *)"imaged";
	resp.process = &pf;
	for (int st = 0; st < PROM_N_STATUS; st++) {
		uint64_t n = prom_hist_count(&im->pull_figs.h[st]);
		if (!n)
			continue;
		size_t k = resp.n_pulls++;
		criod__internal__pull_figures__init(&f[k]);
		f[k].result = (char *)status_name(st);
		f[k].count = n;
		f[k].bytes = im->pull_figs.bytes[st];
		daemon_hist_figures(&im->pull_figs.h[st], &hf[k]);
		f[k].seconds = &hf[k];
		fp[k] = &f[k];
	}
	resp.pulls = fp;
	resp.pulls_in_progress = pulls_pending(im);
	ipc_call_reply(call, &resp.base, NULL, 0);
}

/* The handler of each request of common/api.c's imaged_methods (bound at start). */
static const ipc_handler_fn imaged_handlers[IMAGED_N_METHODS] = {
	[IMAGED_PING - 1] = daemon_handle_ping,
	[IMAGED_PULL - 1] = handle_pull,
	[IMAGED_LIST - 1] = handle_list,
	[IMAGED_STATUS - 1] = handle_status,
	[IMAGED_REMOVE - 1] = handle_remove,
	[IMAGED_FS_INFO - 1] = handle_fsinfo,
	[IMAGED_MOUNT_ROOTFS - 1] = handle_mount,
	[IMAGED_UNMOUNT_ROOTFS - 1] = handle_unmount,
	[IMAGED_ROOTFS_USAGE - 1] = handle_rootfs_usage,
	[IMAGED_METRICS - 1] = handle_metrics,
};

/* What imaged keeps (imaged_confine.h); no_new_privs: the one program it
 * starts, imaged-fetch, gains nothing at exec (it runs as root and keeps
 * at most imaged's permitted set). */
static struct confine_policy imaged_confinement = {
	.caps = IMAGED_CAPS,
	.no_new_privs = true,
	.action = CONFINE_DENY_LOGGED,
	.syscalls = confine_base_syscalls,
};

/* The table served: common/api.c's rows with the handlers above. */
static struct ipc_method methods[IMAGED_N_METHODS];

int main(int argc, char **argv)
{
	api_bind(methods, imaged_methods, IMAGED_N_METHODS, imaged_handlers);
	struct daemon d;
	struct imaged im = {.d = &d};
	prom_by_status_init(&im.pull_figs, prom_latency_bounds, prom_n_latency_bounds);
	struct ipc_server *srv = NULL;
	_cleanup_free_ char *root = NULL;

	daemon_init(&d, "imaged", argc, argv);
	imaged_confinement.syscalls2 = imaged_syscalls();
	im.rootfs_mode = strcmp(d.cfg.rootfs_mode, "overlay") == 0 ? ROOTFS_OVERLAY
			 : strcmp(d.cfg.rootfs_mode, "copy") == 0  ? ROOTFS_COPY
								   : ROOTFS_AUTO;
	int r = geteuid() == 0 ? 0 : log_error_errno(EPERM, NULL, "must run as root");
	if (r >= 0 && asprintf(&root, "%s/imaged", d.cfg.state_dir) < 0)
		r = -ENOMEM;
	if (r >= 0)
		(void)fetcher_setup(&d.cfg, d.config_path, d.log_level, d.cfg.fetch_stall_ms);
	if (r >= 0)
		r = store_open(root, &im.store);
	if (r >= 0)
		r = workq_new(d.base, WORKER_THREADS, &im.wq);
	if (r >= 0)
		r = daemon_serve_root(&d, d.cfg.imaged_socket, methods, IMAGED_N_METHODS, &im, &srv);
	if (r >= 0)
		r = confine_self("imaged", &imaged_confinement);
	if (r >= 0)
		r = daemon_run(&d);
	/* Running pulls lose their fetch helpers; their callers hear CANCELLED. */
	fetcher_cancel_all();
	workq_free(im.wq);
	ipc_server_free(srv);
	store_close(im.store);
	daemon_fini(&d);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
