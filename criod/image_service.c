/* runtime.v1.ImageService: every call is answered by imaged. criod checks
 * the request's shape, forwards it, and turns imaged's reply into the CRI
 * message kubelet expects. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "internal/imaged.pb-c.h"
#include "list_reply.h"
#include "log.h"
#include "macro.h"
#include "status.h"
#include "util.h"

/* Pulls can take long; without a client deadline give them an hour. */
#define PULL_TIMEOUT_MS (3600u * 1000u)

/* The time left before the client's deadline, or fallback without one. */
static uint64_t call_timeout_ms(struct grpc_call *call, uint64_t fallback)
{
	int64_t deadline = grpc_call_deadline_ns(call);
	if (deadline <= 0)
		return fallback;
	int64_t left = (deadline - now_monotonic_ns()) / 1000000;
	return left > 0 ? (uint64_t)left : 1;
}

/* One forwarded call: the gRPC call waiting for imaged's answer. */
struct fwd {
	struct grpc_call *call;
	bool verbose;
	const ProtobufCMessageDescriptor *list; /* ListImages' or StreamImages' answer */
};

static struct fwd *fwd_new(struct grpc_call *call)
{
	struct fwd *f = calloc(1, sizeof(*f));
	if (!f)
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
	else
		f->call = call;
	return f;
}

static void forward(struct criod *c, struct fwd *f, const struct ipc_method *m, const ProtobufCMessage *req,
		    uint64_t timeout_ms, ipc_reply_fn cb)
{
	int r = ipc_client_call(c->imaged, m, grpc_call_request_id(f->call), req, NULL, 0, timeout_ms, cb, f);
	if (r < 0) {
		grpc_call_fail(f->call, STATUS_UNAVAILABLE, "cannot reach imaged: %s", strerror(-r));
		free(f);
	}
}

/* Fails the call and frees f when imaged answered with an error. */
static bool forwarded_ok(struct fwd *f, int status, const char *message)
{
	if (status == STATUS_OK)
		return true;
	grpc_call_fail(f->call, status, "%s", message);
	free(f);
	return false;
}

static const char *spec_image(const Runtime__V1__ImageSpec *spec)
{
	return spec && spec->image ? spec->image : "";
}

/* The CRI Image for imaged's record; strings point into src. */
struct cri_image {
	Runtime__V1__Image img;
	Runtime__V1__Int64Value uid;
	Runtime__V1__ImageSpec spec;
};

static void to_cri_image(const Criod__Internal__Image *src, struct cri_image *out)
{
	runtime__v1__image__init(&out->img);
	runtime__v1__int64_value__init(&out->uid);
	runtime__v1__image_spec__init(&out->spec);
	out->img.id = src->id;
	out->img.repo_tags = src->repo_tags;
	out->img.n_repo_tags = src->n_repo_tags;
	out->img.repo_digests = src->repo_digests;
	out->img.n_repo_digests = src->n_repo_digests;
	out->img.size = src->size;
	out->img.pinned = src->pinned;
	if (src->username && *src->username) {
		out->img.username = src->username;
	} else if (src->uid >= 0) {
		out->uid.value = src->uid;
		out->img.uid = &out->uid;
	}
	out->spec.image = src->id;
	out->img.spec = &out->spec;
}

/* ---------------------------------------------------------------- PullImage */

static void pull_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct fwd *f = ud;
	if (!forwarded_ok(f, status, message))
		return;
	const Criod__Internal__PullResponse *r = (const void *)resp;
	Runtime__V1__PullImageResponse out = RUNTIME__V1__PULL_IMAGE_RESPONSE__INIT;
	out.image_ref = r->image_ref;
	grpc_call_reply(f->call, &out.base);
	free(f);
}

static void pull_image(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__PullImageRequest *req = (const void *)msg;
	if (!*spec_image(req->image)) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "image.image: an image reference is required");
		return;
	}
	struct fwd *f = fwd_new(call);
	if (!f)
		return;
	Criod__Internal__PullRequest preq = CRIOD__INTERNAL__PULL_REQUEST__INIT;
	Criod__Internal__RegistryAuth auth = CRIOD__INTERNAL__REGISTRY_AUTH__INIT;
	preq.image = req->image->image;
	if (req->auth) {
		auth.username = req->auth->username;
		auth.password = req->auth->password;
		auth.auth = req->auth->auth;
		auth.identity_token = req->auth->identity_token;
		auth.registry_token = req->auth->registry_token;
		preq.auth = &auth;
	}
	forward(ud, f, API_IMAGED(IMAGED_PULL), &preq.base, call_timeout_ms(call, PULL_TIMEOUT_MS), pull_done);
}

/* ---------------------------------------------------------------- ListImages */

static void list_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_, void *ud)
{
	struct fwd *f = ud;
	if (!forwarded_ok(f, status, message))
		return;
	const Criod__Internal__ListImagesResponse *r = (const void *)resp;
	size_t n = r->n_images;
	_cleanup_free_ struct cri_image *imgs = calloc(n ? n : 1, sizeof(*imgs));
	_cleanup_free_ Runtime__V1__Image **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	if (!imgs || !ptrs) {
		grpc_call_fail(f->call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		free(f);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		to_cri_image(r->images[i], &imgs[i]);
		ptrs[i] = &imgs[i].img;
	}
	list_reply(f->call, f->list, (ProtobufCMessage *const *)ptrs, n);
	free(f);
}

/* ListImages and StreamImages: imaged lists what filter selects. */
static void image_list(struct grpc_call *call, struct criod *c, const Runtime__V1__ImageFilter *filter,
		       const ProtobufCMessageDescriptor *desc)
{
	struct fwd *f = fwd_new(call);
	if (!f)
		return;
	f->list = desc;
	Criod__Internal__ListImagesRequest lreq = CRIOD__INTERNAL__LIST_IMAGES_REQUEST__INIT;
	lreq.filter = (char *)(filter ? spec_image(filter->image) : "");
	forward(c, f, API_IMAGED(IMAGED_LIST), &lreq.base, call_timeout_ms(call, c->cfg->rpc_timeout_ms), list_done);
}

static void list_images(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__ListImagesRequest *req = (const void *)msg;
	image_list(call, ud, req->filter, &runtime__v1__list_images_response__descriptor);
}

static void stream_images(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	const Runtime__V1__StreamImagesRequest *req = (const void *)msg;
	image_list(call, ud, req->filter, &runtime__v1__stream_images_response__descriptor);
}

/* ---------------------------------------------------------------- ImageStatus */

static void status_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
			void *ud)
{
	struct fwd *f = ud;
	if (!forwarded_ok(f, status, message))
		return;
	const Criod__Internal__ImageStatusResponse *r = (const void *)resp;
	Runtime__V1__ImageStatusResponse out = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INIT;
	struct cri_image img;
	Runtime__V1__ImageStatusResponse__InfoEntry entry = RUNTIME__V1__IMAGE_STATUS_RESPONSE__INFO_ENTRY__INIT;
	Runtime__V1__ImageStatusResponse__InfoEntry *entries[] = {&entry};
	_cleanup_free_ char *info = NULL;
	/* An absent image is not an error: the image field stays unset. */
	if (r->image) {
		to_cri_image(r->image, &img);
		out.image = &img.img;
		if (f->verbose) {
			const char *cfg = r->image->config_json && *r->image->config_json ? r->image->config_json : "null";
			if (asprintf(&info, "{\"id\":\"%s\",\"manifestDigest\":\"%s\",\"imageSpec\":%s}", r->image->id,
				     r->image->manifest_digest, cfg) < 0)
				info = NULL;
			if (info) {
				entry.key = (char *)"info";
				entry.value = info;
				out.info = entries;
				out.n_info = 1;
			}
		}
	}
	grpc_call_reply(f->call, &out.base);
	free(f);
}

static void image_status(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__ImageStatusRequest *req = (const void *)msg;
	if (!*spec_image(req->image)) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "image.image: an image reference or id is required");
		return;
	}
	struct fwd *f = fwd_new(call);
	if (!f)
		return;
	f->verbose = req->verbose;
	Criod__Internal__ImageStatusRequest sreq = CRIOD__INTERNAL__IMAGE_STATUS_REQUEST__INIT;
	sreq.image = req->image->image;
	sreq.with_config = req->verbose;
	forward(c, f, API_IMAGED(IMAGED_STATUS), &sreq.base, call_timeout_ms(call, c->cfg->rpc_timeout_ms), status_done);
}

/* ---------------------------------------------------------------- RemoveImage */

static void remove_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds _unused_, size_t nfds _unused_,
			void *ud)
{
	struct fwd *f = ud;
	if (!forwarded_ok(f, status, message))
		return;
	Runtime__V1__RemoveImageResponse out = RUNTIME__V1__REMOVE_IMAGE_RESPONSE__INIT;
	grpc_call_reply(f->call, &out.base);
	free(f);
}

static void remove_image(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__RemoveImageRequest *req = (const void *)msg;
	if (!*spec_image(req->image)) {
		grpc_call_fail(call, STATUS_INVALID_ARGUMENT, "image.image: an image reference or id is required");
		return;
	}
	struct fwd *f = fwd_new(call);
	if (!f)
		return;
	Criod__Internal__RemoveImageRequest rreq = CRIOD__INTERNAL__REMOVE_IMAGE_REQUEST__INIT;
	rreq.image = req->image->image;
	forward(c, f, API_IMAGED(IMAGED_REMOVE), &rreq.base, call_timeout_ms(call, c->cfg->rpc_timeout_ms), remove_done);
}

/* ---------------------------------------------------------------- ImageFsInfo */

static void fsinfo_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
			void *ud)
{
	struct fwd *f = ud;
	if (!forwarded_ok(f, status, message))
		return;
	const Criod__Internal__ImageFsInfoResponse *r = (const void *)resp;
	Runtime__V1__FilesystemIdentifier fsid = RUNTIME__V1__FILESYSTEM_IDENTIFIER__INIT;
	Runtime__V1__UInt64Value used = RUNTIME__V1__UINT64_VALUE__INIT, inodes = RUNTIME__V1__UINT64_VALUE__INIT;
	Runtime__V1__FilesystemUsage usage = RUNTIME__V1__FILESYSTEM_USAGE__INIT;
	fsid.mountpoint = r->mountpoint;
	used.value = r->used_bytes;
	inodes.value = r->inodes_used;
	usage.timestamp = r->timestamp_ns;
	usage.fs_id = &fsid;
	usage.used_bytes = &used;
	usage.inodes_used = &inodes;
	Runtime__V1__FilesystemUsage *list[] = {&usage};
	Runtime__V1__ImageFsInfoResponse out = RUNTIME__V1__IMAGE_FS_INFO_RESPONSE__INIT;
	out.image_filesystems = list;
	out.n_image_filesystems = 1;
	grpc_call_reply(f->call, &out.base);
	free(f);
}

static void image_fs_info(struct grpc_call *call, const ProtobufCMessage *msg _unused_, void *ud)
{
	struct criod *c = ud;
	struct fwd *f = fwd_new(call);
	if (!f)
		return;
	Criod__Internal__ImageFsInfoRequest req = CRIOD__INTERNAL__IMAGE_FS_INFO_REQUEST__INIT;
	forward(c, f, API_IMAGED(IMAGED_FS_INFO), &req.base, call_timeout_ms(call, c->cfg->rpc_timeout_ms), fsinfo_done);
}

const struct cri_handler image_service_handlers[] = {
	{"ImageService", "PullImage", pull_image},
	{"ImageService", "ListImages", list_images},
	{"ImageService", "StreamImages", stream_images},
	{"ImageService", "ImageStatus", image_status},
	{"ImageService", "RemoveImage", remove_image},
	{"ImageService", "ImageFsInfo", image_fs_info},
};
const size_t n_image_service_handlers = ARRAY_SIZE(image_service_handlers);
