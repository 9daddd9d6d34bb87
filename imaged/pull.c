/* One image pull; see pull.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "manifest.h"
#include "pull.h"
#include "fetcher.h"
#include "ref.h"
#include "registry_policy.h"
#include "status.h"
#include "tree.h"

#define MAX_CONFIG_SIZE (8u << 20)

/* Layers being fetched right now, by chain id, across all pulls. */
static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inflight_cond = PTHREAD_COND_INITIALIZER;
static char (*inflight)[DIGEST_STR_MAX];
static size_t n_inflight;

static bool inflight_has(const char *chain)
{
	for (size_t i = 0; i < n_inflight; i++)
		if (strcmp(inflight[i], chain) == 0)
			return true;
	return false;
}

/* Returns 1 if the caller must fetch the layer (it is now marked in
 * flight), 0 if it exists (possibly after waiting for another pull). */
static int inflight_acquire(struct store *s, const char *chain)
{
	pthread_mutex_lock(&inflight_lock);
	while (inflight_has(chain))
		pthread_cond_wait(&inflight_cond, &inflight_lock);
	if (store_layer_exists(s, chain)) {
		pthread_mutex_unlock(&inflight_lock);
		return 0;
	}
	char(*n)[DIGEST_STR_MAX] = realloc(inflight, (n_inflight + 1) * sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&inflight_lock);
		return -ENOMEM;
	}
	inflight = n;
	snprintf(inflight[n_inflight++], DIGEST_STR_MAX, "%s", chain);
	pthread_mutex_unlock(&inflight_lock);
	return 1;
}

static void inflight_release(const char *chain)
{
	pthread_mutex_lock(&inflight_lock);
	for (size_t i = 0; i < n_inflight; i++)
		if (strcmp(inflight[i], chain) == 0) {
			memcpy(inflight[i], inflight[--n_inflight], DIGEST_STR_MAX);
			break;
		}
	pthread_cond_broadcast(&inflight_cond);
	pthread_mutex_unlock(&inflight_lock);
}

static int status_of(int negerr)
{
	switch (-negerr) {
	case EINVAL:
		return STATUS_INVALID_ARGUMENT;
	case ENOENT:
		return STATUS_NOT_FOUND;
	case EACCES:
	case EPERM:
		return STATUS_PERMISSION_DENIED;
	case EBADMSG:
	case EXDEV:
	case ENOTSUP:
		return STATUS_FAILED_PRECONDITION;
	case ETIMEDOUT:
		return STATUS_DEADLINE_EXCEEDED;
	case ECANCELED:
		return STATUS_CANCELLED;
	case EFBIG:  /* a layer beyond [imaged] max_layer_size */
	case E2BIG:  /* ... max_layer_entries */
	case ENOSPC: /* ... min_free_space, or a full disk */
	case EDQUOT:
		return STATUS_RESOURCE_EXHAUSTED;
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case EPROTO:
	case EIO:
		return STATUS_UNAVAILABLE;
	default:
		return status_from_errno(negerr);
	}
}

static void fail(struct pull_result *res, int negerr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct pull_result *res, int negerr, const char *fmt, ...)
{
	if (res->status != STATUS_OK)
		return; /* keep the first failure */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
	res->status = status_of(negerr);
}

/* ---------------------------------------------------------------- layers */

struct layer_job {
	const struct descriptor *desc;
	const char *diff_id;
	char chain[DIGEST_STR_MAX];
};

struct pull_ctx {
	struct store *store;
	struct fetcher *fetch;
	const char *req;
	struct layer_job *jobs; /* largest layer first */
	size_t n_jobs;
	size_t next; /* next job to take, under lock */
	pthread_mutex_t lock;
	struct pull_result *res;
};

/* One download thread: its channel to the fetch helper. */
struct layer_worker {
	struct pull_ctx *p;
	unsigned chan;
};

static int fetch_layer(struct pull_ctx *p, unsigned chan, const struct layer_job *j, char *err, size_t errlen)
{
	enum layer_compression comp = layer_compression_of(j->desc->media_type);
	if (comp == LAYER_UNSUPPORTED) {
		snprintf(err, errlen, "layer %s has unsupported media type %s", j->desc->digest, j->desc->media_type);
		return -ENOTSUP;
	}
	_cleanup_free_ char *tmp = NULL, *diff = NULL;
	int r = store_mkdtemp(p->store, &tmp);
	if (r < 0 || asprintf(&diff, "%s/diff", tmp) < 0) {
		snprintf(err, errlen, "cannot make a work directory: %s", strerror(r < 0 ? -r : ENOMEM));
		return r < 0 ? r : -ENOMEM;
	}
	struct fetched_layer fl;
	_cleanup_close_ int dfd = -1;
	if (mkdir(diff, 0755) < 0 || (dfd = open(diff, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot make %s: %s", diff, strerror(errno));
		goto out;
	}
	r = fetcher_get_layer(p->fetch, chan, j->desc->digest, j->desc->size, comp, dfd, &fl, err, errlen);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&p->lock);
	p->res->received += fl.received;
	pthread_mutex_unlock(&p->lock);
	if (strcmp(fl.diff_id, j->diff_id) != 0) {
		r = -EBADMSG;
		snprintf(err, errlen, "layer %s: uncompressed digest %s does not match the config's diff id %s",
			 j->desc->digest, fl.diff_id, j->diff_id);
		goto out;
	}
	r = store_layer_commit(p->store, j->chain, tmp, j->desc->digest, fl.diff_id, (uint64_t)j->desc->size);
	if (r < 0) {
		snprintf(err, errlen, "layer %s: cannot store it: %s", j->desc->digest, strerror(-r));
		goto out;
	}
	log_info(p->req, "layer stored", "layer=%s chain=%s bytes=%llu entries=%llu", j->desc->digest, j->chain,
		 (unsigned long long)fl.received, (unsigned long long)fl.entries);
	return 0;
out:
	{
		char *slash = strrchr(tmp, '/');
		*slash = '\0';
		_cleanup_close_ int pfd = open(tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0)
			(void)remove_tree_at(pfd, slash + 1);
	}
	return r;
}

static void *layer_worker(void *arg)
{
	const struct layer_worker *w = arg;
	struct pull_ctx *p = w->p;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		bool stop = p->next >= p->n_jobs || p->res->status != STATUS_OK;
		size_t i = p->next++;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			return NULL;
		const struct layer_job *j = &p->jobs[i];
		int r = inflight_acquire(p->store, j->chain);
		if (r <= 0) {
			if (r < 0) {
				pthread_mutex_lock(&p->lock);
				fail(p->res, r, "out of memory");
				pthread_mutex_unlock(&p->lock);
			}
			continue;
		}
		char err[512] = "";
		r = fetch_layer(p, w->chan, j, err, sizeof(err));
		inflight_release(j->chain);
		if (r < 0) {
			log_warn_errno(r, p->req, "layer failed", "layer=%s error=\"%s\"", j->desc->digest, err);
			pthread_mutex_lock(&p->lock);
			fail(p->res, r, "%s", err);
			pthread_mutex_unlock(&p->lock);
		}
	}
}

/* Largest first: the longest download starts at once instead of after a
 * thread frees, so the pull ends when the threads' shares do. */
static int by_size_desc(const void *a, const void *b)
{
	const struct descriptor *da = ((const struct layer_job *)a)->desc, *db = ((const struct layer_job *)b)->desc;
	if (da->size != db->size)
		return da->size > db->size ? -1 : 1;
	return da < db ? -1 : da > db; /* descriptors sit in manifest order */
}

/* ---------------------------------------------------------------- pull */

static int fetch_manifest(struct store *s, struct fetcher *fetch, const char *reference, struct manifest *m,
			  char digest[DIGEST_STR_MAX], struct pull_result *res)
{
	_cleanup_free_ char *body = NULL, *ctype = NULL;
	size_t len;
	char err[512] = "";
	int r = fetcher_get_manifest(fetch, 0, reference, &body, &len, &ctype, digest, err, sizeof(err));
	if (r < 0) {
		fail(res, r, "%s", err);
		return r;
	}
	res->received += len;
	r = manifest_parse(ctype, body, len, m, err, sizeof(err));
	if (r < 0) {
		fail(res, r, "manifest %s: %s", digest, err);
		return r;
	}
	r = store_blob_put(s, digest, body, len);
	if (r < 0)
		fail(res, r, "cannot store manifest %s: %s", digest, strerror(-r));
	return r;
}

void pull_run(const struct criod_config *cfg, struct store *s, const char *image, const struct pull_auth *auth,
	      const char *req, struct pull_result *res)
{
	struct image_ref ref = {0};
	struct manifest top = {0}, plat = {0};
	struct image_config conf = {0};
	struct fetcher *fetch = NULL;
	struct layer_job *jobs = NULL;
	_cleanup_free_ char *cfg_body = NULL;
	char err[512] = "";
	int r;

	memset(res, 0, sizeof(*res));
	res->user_uid = -1;
	if ((r = ref_parse(image, &ref, err, sizeof(err))) < 0) {
		fail(res, r, "image \"%s\": %s", image, err);
		goto out;
	}
	/* The registries policy on an address literal, before a helper is even
	 * started (the helper checks it again, and every address it connects
	 * to). */
	const char *origin = ref_registry_host(ref.domain);
	if (!config_registry(cfg, ref.domain) && !config_registry(cfg, origin) &&
	    (r = registry_policy_check_host(cfg, origin, err, sizeof(err))) < 0) {
		fail(res, r, "%s", err);
		goto out;
	}
	/* One helper channel per download thread; the first also carries the
	 * manifests and the config. */
	size_t nthreads = cfg->max_concurrent_downloads ? cfg->max_concurrent_downloads : 1;
	if (nthreads > FETCH_MAX_CHANNELS)
		nthreads = FETCH_MAX_CHANNELS;
	if ((r = fetcher_start(image, auth, req, (unsigned)nthreads, &fetch, err, sizeof(err))) < 0) {
		fail(res, r, "%s", err);
		goto out;
	}
	const char *reference = ref.digest ? ref.digest : ref.tag;
	char top_digest[DIGEST_STR_MAX], plat_digest[DIGEST_STR_MAX];
	if (fetch_manifest(s, fetch, reference, &top, top_digest, res) < 0)
		goto out;
	const struct manifest *m = &top;
	if (top.kind == MANIFEST_INDEX) {
		const char *os, *arch, *variant;
		host_platform(&os, &arch, &variant);
		int k = manifest_select_platform(&top, os, arch, variant);
		if (k < 0) {
			fail(res, -ENOENT, "image %s has no manifest for %s/%s", image, os, arch);
			goto out;
		}
		if (fetch_manifest(s, fetch, top.manifests[k].digest, &plat, plat_digest, res) < 0)
			goto out;
		if (plat.kind != MANIFEST_IMAGE) {
			fail(res, -EINVAL, "index entry %s of %s is not an image manifest", plat_digest, image);
			goto out;
		}
		m = &plat;
	}

	/* The config: its digest is the image id. */
	size_t cfg_len;
	if (store_blob_get(s, m->config.digest, MAX_CONFIG_SIZE, &cfg_body, &cfg_len) < 0) {
		r = fetcher_get_blob(fetch, 0, m->config.digest, MAX_CONFIG_SIZE, &cfg_body, &cfg_len, err, sizeof(err));
		if (r < 0) {
			fail(res, r, "config %s: %s", m->config.digest, err);
			goto out;
		}
		res->received += cfg_len;
		if ((r = store_blob_put(s, m->config.digest, cfg_body, cfg_len)) < 0) {
			fail(res, r, "cannot store config %s: %s", m->config.digest, strerror(-r));
			goto out;
		}
	}
	if ((r = image_config_parse(cfg_body, cfg_len, &conf, err, sizeof(err))) < 0) {
		fail(res, r, "config %s: %s", m->config.digest, err);
		goto out;
	}
	if ((r = image_user(conf.user, &res->user_uid, &res->user_name)) < 0) {
		fail(res, r, "config %s: bad User \"%s\"", m->config.digest, conf.user ? conf.user : "");
		goto out;
	}
	if (conf.n_diff_ids != m->n_layers) {
		fail(res, -EINVAL, "image %s: the manifest has %zu layers but the config %zu diff ids", image,
		     m->n_layers, conf.n_diff_ids);
		goto out;
	}

	/* Chain ids; pin them all before looking, so that a RemoveImage
	 * running meanwhile cannot delete a layer this image will use. */
	jobs = calloc(m->n_layers ? m->n_layers : 1, sizeof(*jobs));
	res->layers = calloc(m->n_layers ? m->n_layers : 1, sizeof(char *));
	if (!jobs || !res->layers) {
		fail(res, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < m->n_layers; i++) {
		jobs[i].desc = &m->layers[i];
		jobs[i].diff_id = conf.diff_ids[i];
		layer_chain_id(i ? jobs[i - 1].chain : NULL, conf.diff_ids[i], jobs[i].chain);
		store_layer_pin(s, jobs[i].chain);
		res->layers[i] = strdup(jobs[i].chain);
		res->n_layers++;
		res->size += (uint64_t)m->layers[i].size;
		if (!res->layers[i]) {
			fail(res, -ENOMEM, "out of memory");
			goto out;
		}
	}

	/* Chain ids and res->layers are in manifest order now; the jobs need not be. */
	qsort(jobs, m->n_layers, sizeof(*jobs), by_size_desc);
	struct pull_ctx ctx = {
		.store = s, .fetch = fetch, .req = req, .jobs = jobs, .n_jobs = m->n_layers, .res = res};
	pthread_mutex_init(&ctx.lock, NULL);
	if (nthreads > m->n_layers)
		nthreads = m->n_layers;
	pthread_t threads[FETCH_MAX_CHANNELS];
	struct layer_worker workers[FETCH_MAX_CHANNELS];
	size_t started = 0;
	for (size_t i = 1; i < nthreads; i++) {
		workers[i] = (struct layer_worker){.p = &ctx, .chan = (unsigned)i};
		if (pthread_create(&threads[started], NULL, layer_worker, &workers[i]) == 0)
			started++;
	}
	workers[0] = (struct layer_worker){.p = &ctx, .chan = 0};
	layer_worker(&workers[0]); /* this thread works too */
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&ctx.lock);
	if (res->status != STATUS_OK)
		goto out;

	/* Durable before the image is registered. */
	if ((r = store_sync(s)) < 0) {
		fail(res, r, "cannot sync the image store: %s", strerror(-r));
		goto out;
	}
	snprintf(res->id, sizeof(res->id), "%s", m->config.digest);
	snprintf(res->manifest_digest, sizeof(res->manifest_digest), "%s", top_digest);
	res->tag = ref.tag ? ref_tagged(&ref) : NULL;
	res->repo_digest = ref_digested(&ref, top_digest);
	if ((ref.tag && !res->tag) || !res->repo_digest)
		fail(res, -ENOMEM, "out of memory");
out:
	free(jobs);
	image_config_free(&conf);
	manifest_free(&plat);
	manifest_free(&top);
	fetcher_stop(fetch);
	ref_free(&ref);
}

void pull_result_release(struct store *s, struct pull_result *res)
{
	for (size_t i = 0; i < res->n_layers; i++) {
		store_layer_unpin(s, res->layers[i]);
		free(res->layers[i]);
	}
	free(res->layers);
	free(res->tag);
	free(res->repo_digest);
	free(res->user_name);
	res->user_name = NULL;
	res->layers = NULL;
	res->n_layers = 0;
	res->tag = res->repo_digest = NULL;
}
