/* imaged-fetch: the helper imaged starts for one pull.
 *
 * Everything that parses bytes from a registry runs here, not in the
 * daemon that owns the image store: HTTP and TLS (libcurl), token replies,
 * gzip/zstd inflation and tar extraction (libarchive). imaged keeps the
 * store, the manifests' meaning, the layer pins and the decision what to
 * fetch; it asks, over the socket pairs it passed as fds 3, 4, ..., for the
 * short list of requests in fetch_api.h, one socket per download thread.
 * The helper writes only into the directories imaged hands it (one per
 * layer, as an fd; every path resolved inside it), and exits when imaged
 * closes the sockets or dies (PR_SET_PDEATHSIG). Keeping these libraries
 * out of imaged also keeps imaged small while no pull runs. */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "fetch_api.h"
#include "internal/envelope.pb-c.h"
#include "internal/fetch.pb-c.h"
#include "log.h"
#include "macro.h"
#include "manifest.h"
#include "ref.h"
#include "registry.h"
#include "status.h"
#include "unpack.h"

#define FIRST_CHANNEL 3
#define MAX_BLOB (8u << 20)

static const struct criod_config *cfg;
static struct registry_client *reg; /* set by FetchStart, before the other channels are served */

static ssize_t blob_read(void *ud, void *buf, size_t len) { return registry_blob_read(ud, buf, len); }

static int do_start(const Criod__Internal__FetchStartRequest *q, char *err, size_t errlen)
{
	if (reg) {
		snprintf(err, errlen, "already started");
		return -EALREADY;
	}
	struct image_ref ref = {0};
	int r = ref_parse(q->image, &ref, err, errlen);
	if (r < 0)
		return r;
	const Criod__Internal__RegistryAuth *a = q->auth;
	struct registry_auth ra = {0};
	if (a) {
		ra.username = a->username;
		ra.password = a->password;
		ra.auth = a->auth;
		ra.identity_token = a->identity_token;
		ra.registry_token = a->registry_token;
	}
	r = registry_client_new(cfg, &ref, &ra, &reg, err, errlen);
	ref_free(&ref);
	return r;
}

static int do_layer(const Criod__Internal__FetchLayerRequest *q, int dfd, Criod__Internal__FetchLayerResponse *o,
		    struct unpack_result *ur, char *err, size_t errlen)
{
	if (q->compression < LAYER_PLAIN || q->compression > LAYER_ZSTD) {
		snprintf(err, errlen, "unknown compression %d", q->compression);
		return -EINVAL;
	}
	struct stat st;
	if (fstat(dfd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "the layer's destination is not a directory");
		return -ENOTDIR;
	}
	struct registry_blob *blob = NULL;
	char uerr[512] = "";
	int r = registry_blob_open(reg, q->digest, q->size, &blob, uerr, sizeof(uerr));
	if (r < 0) {
		snprintf(err, errlen, "layer %s: %s", q->digest, uerr);
		return r;
	}
	const struct unpack_limits lim = {
		.max_bytes = cfg->max_layer_size,
		.max_entries = cfg->max_layer_entries,
		.min_free = cfg->min_free_space,
	};
	r = unpack_layer_limited(dfd, (enum layer_compression)q->compression, WHITEOUT_OVERLAY_LISTED, blob_read, blob,
				 &lim, ur, uerr, sizeof(uerr));
	if (r < 0) {
		/* A failed read is the network's (or the digest's) fault, say so;
		 * a limit is the layer's. */
		const char *berr = registry_blob_error(blob);
		bool limit = r == -EFBIG || r == -E2BIG || r == -ENOSPC;
		snprintf(err, errlen, "layer %s: %s", q->digest, berr && *berr && !limit ? berr : uerr);
	} else {
		o->diff_id = ur->diff_id;
		o->tar_bytes = ur->tar_bytes;
		o->entries = ur->entries;
		o->opaque_dirs = ur->opaque;
		o->n_opaque_dirs = ur->n_opaque;
		o->received = registry_blob_received(blob);
	}
	registry_blob_close(blob);
	return r;
}

/* Answer one decoded request; returns negative errno only when the reply
 * could not be sent (the channel is then done). */
static int answer(int fd, const Criod__Internal__Envelope *env, const ProtobufCMessage *req, int *fds)
{
	char err[1024] = "";
	int r;
	const char *rid = env->request_id;
	switch (env->method) {
	case FETCH_START: {
		Criod__Internal__FetchStartResponse o = CRIOD__INTERNAL__FETCH_START_RESPONSE__INIT;
		o.error = do_start((const void *)req, err, sizeof(err));
		o.message = err;
		return ipc_sync_send(fd, env->call_id, env->method, rid, 0, NULL, &o.base, NULL, 0);
	}
	case FETCH_MANIFEST: {
		const Criod__Internal__FetchManifestRequest *q = (const void *)req;
		Criod__Internal__FetchManifestResponse o = CRIOD__INTERNAL__FETCH_MANIFEST_RESPONSE__INIT;
		_cleanup_free_ char *body = NULL, *ctype = NULL;
		char digest[DIGEST_STR_MAX] = "";
		size_t len = 0;
		o.error = registry_get_manifest(reg, q->reference, &body, &len, &ctype, digest, err, sizeof(err));
		if (o.error == 0) {
			o.body.data = (uint8_t *)body;
			o.body.len = len;
			o.content_type = ctype ? ctype : (char *)"";
			o.digest = digest;
		}
		o.message = err;
		return ipc_sync_send(fd, env->call_id, env->method, rid, 0, NULL, &o.base, NULL, 0);
	}
	case FETCH_BLOB: {
		const Criod__Internal__FetchBlobRequest *q = (const void *)req;
		Criod__Internal__FetchBlobResponse o = CRIOD__INTERNAL__FETCH_BLOB_RESPONSE__INIT;
		_cleanup_free_ char *body = NULL;
		size_t len = 0;
		o.error = registry_get_blob(reg, q->digest, q->max_size < MAX_BLOB ? q->max_size : MAX_BLOB, &body, &len,
					    err, sizeof(err));
		if (o.error == 0) {
			o.body.data = (uint8_t *)body;
			o.body.len = len;
		}
		o.message = err;
		return ipc_sync_send(fd, env->call_id, env->method, rid, 0, NULL, &o.base, NULL, 0);
	}
	case FETCH_LAYER: {
		Criod__Internal__FetchLayerResponse o = CRIOD__INTERNAL__FETCH_LAYER_RESPONSE__INIT;
		struct unpack_result ur = {0};
		o.error = do_layer((const void *)req, fds[0], &o, &ur, err, sizeof(err));
		o.message = err;
		r = ipc_sync_send(fd, env->call_id, env->method, rid, 0, NULL, &o.base, NULL, 0);
		unpack_result_free(&ur);
		/* Inflate windows and tar buffers of this layer go back now. */
		malloc_trim(0);
		return r;
	}
	}
	return 0; /* not reached: the method was looked up */
}

/* Serve one channel until imaged closes it (returns false), or, with
 * until_started, until a FetchStart succeeded (returns true). */
static bool serve(int fd, bool until_started)
{
	for (;;) {
		void *e = NULL;
		int fds[IPC_MAX_FDS];
		size_t nfds = 0;
		int r = ipc_sync_recv(fd, &e, fds, &nfds);
		if (r < 0) {
			if (r != -EPIPE)
				log_warn_errno(r, NULL, "bad frame from imaged, closing the channel", "fd=%d", fd);
			return false;
		}
		Criod__Internal__Envelope *env = e;
		const struct ipc_method *m = fetch_method(env->method);
		ProtobufCMessage *req = NULL;
		const char *why = NULL;
		if (!m)
			why = "unknown method";
		else if (nfds != m->max_fds)
			why = "wrong number of file descriptors";
		else if (!(req = protobuf_c_message_unpack(m->request, NULL, env->body.len, env->body.data)))
			why = "request does not decode";
		else if (!reg && env->method != FETCH_START)
			why = "FetchStart has not succeeded";
		if (why)
			r = ipc_sync_send(fd, env->call_id, env->method, env->request_id, STATUS_INVALID_ARGUMENT, why, NULL,
					  NULL, 0);
		else {
			log_set_thread_request(env->request_id);
			r = answer(fd, env, req, fds);
			log_set_thread_request(NULL);
		}
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		if (req)
			protobuf_c_message_free_unpacked(req, NULL);
		criod__internal__envelope__free_unpacked(env, NULL);
		if (r < 0) {
			log_warn_errno(r, NULL, "cannot answer imaged, closing the channel", "fd=%d", fd);
			return false;
		}
		if (until_started && reg)
			return true;
	}
}

static void *serve_thread(void *arg)
{
	serve((int)(intptr_t)arg, false);
	return NULL;
}

/* The channels are the stream sockets at fds 3, 4, ... (imaged passes
 * them in order); the count is where they end. */
static unsigned count_channels(void)
{
	unsigned n = 0;
	for (; n < FETCH_MAX_CHANNELS; n++) {
		int type;
		socklen_t tl = sizeof(type);
		if (getsockopt(FIRST_CHANNEL + (int)n, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
			break;
	}
	return n;
}

/* Serves the n channels until imaged closes them; the exit status. */
static int run(unsigned n)
{
	if (n == 0) {
		log_error(NULL, "started without channels: imaged-fetch is started by imaged, not by hand");
		return 2;
	}
	if (getppid() == 1)
		return 1; /* imaged died before PR_SET_PDEATHSIG took hold */

	/* The first channel serves alone until FetchStart succeeded; the others
	 * are served from then on. */
	if (!serve(FIRST_CHANNEL, true))
		return 0;
	pthread_t threads[FETCH_MAX_CHANNELS];
	size_t started = 0;
	for (unsigned i = 1; i < n; i++)
		if (pthread_create(&threads[started], NULL, serve_thread, (void *)(intptr_t)(FIRST_CHANNEL + (int)i)) == 0)
			started++;
		else
			log_warn(NULL, "cannot start a channel thread", "fd=%u", FIRST_CHANNEL + i);
	serve(FIRST_CHANNEL, false);
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d;

	/* Die with imaged (the thread that started us lives as long as it). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	daemon_configure(&d, "imaged-fetch", argc, argv);
	cfg = &d.cfg;
	int status = run(count_channels());
	registry_client_free(reg);
	config_free(&d.cfg);
	return status;
}
