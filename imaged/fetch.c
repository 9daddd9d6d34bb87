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
 * out of imaged also keeps imaged small while no pull runs. Before it reads
 * a request it confines itself (fetch_confine): only its channels open, a
 * mount namespace whose root is a read-only view of the few files it reads,
 * the capabilities a layer's metadata takes, no_new_privs, its own filter,
 * and (unless a proxy is configured) an empty network namespace: every
 * connection it needs it asks imaged for with FetchConnect on fd 3, and
 * gets the connected socket (imaged/fetch_connect.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "fetch_api.h"
#include "proxy.h"
#include "imaged_confine.h"
#include "internal/envelope.pb-c.h"
#include "internal/fetch.pb-c.h"
#include "log.h"
#include "macro.h"
#include "manifest.h"
#include "ref.h"
#include "registry.h"
#include "status.h"
#include "unpack.h"
#include "util.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#endif

#define FIRST_CHANNEL FETCH_FIRST_CHANNEL
#define MAX_BLOB (8u << 20)

static const struct criod_config *cfg;
static struct registry_client *reg; /* set by FetchStart, before the other channels are served */

/* The request the calling thread serves, for FetchConnect. */
static __thread const char *thread_req;

/* FetchConnect on the connect channel: one call at a time, whichever
 * download thread's transfer asks. */
static pthread_mutex_t connect_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t connect_calls;

static int connect_reply(uint64_t call_id, void *e, int *fds, size_t nfds, char *err, size_t errlen)
{
	Criod__Internal__Envelope *env = e;
	Criod__Internal__FetchConnectResponse *o = NULL;
	int r;
	if (env->call_id != call_id || env->method != FETCH_CONNECT)
		r = errf(err, errlen, -EPROTO, "imaged answered another call on the connect channel");
	else if (env->status != 0)
		r = errf(err, errlen, -EPROTO, "imaged refused the FetchConnect frame: %s",
			 env->message ? env->message : "");
	else if (!(o = criod__internal__fetch_connect_response__unpack(NULL, env->body.len, env->body.data)))
		r = errf(err, errlen, -EPROTO, "imaged's FetchConnect reply does not decode");
	else if (o->error < 0 && o->error > -4096)
		r = errf(err, errlen, o->error, "%s", *o->message ? o->message : strerror(-o->error));
	else if (o->error != 0 || nfds != 1)
		r = errf(err, errlen, -EPROTO, "imaged's FetchConnect reply is malformed");
	else {
		r = fds[0];
		fds[0] = -1;
	}
	for (size_t i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (o)
		criod__internal__fetch_connect_response__free_unpacked(o, NULL);
	return r;
}

static int connect_via_imaged(const char *authority, unsigned port, bool tls, char *err, size_t errlen)
{
	Criod__Internal__FetchConnectRequest q = CRIOD__INTERNAL__FETCH_CONNECT_REQUEST__INIT;
	q.authority = (char *)authority;
	q.port = port;
	q.tls = tls;
	void *e = NULL;
	int fds[IPC_MAX_FDS];
	size_t nfds = 0;
	pthread_mutex_lock(&connect_lock);
	uint64_t id = ++connect_calls;
	int r = ipc_sync_send(FETCH_CONNECT_FD, id, FETCH_CONNECT, thread_req, 0, NULL, &q.base, NULL, 0);
	if (r == 0)
		r = ipc_sync_recv(FETCH_CONNECT_FD, &e, fds, &nfds);
	pthread_mutex_unlock(&connect_lock);
	if (r < 0)
		return errf(err, errlen, r == -EPIPE ? -ECONNABORTED : r, "imaged's connect channel: %s", strerror(-r));
	r = connect_reply(id, e, fds, nfds, err, errlen);
	criod__internal__envelope__free_unpacked(e, NULL);
	return r;
}

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
		heap_trim();
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
		if (!m || env->method == FETCH_CONNECT)
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
			thread_req = env->request_id;
			r = answer(fd, env, req, fds);
			thread_req = NULL;
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

/* The channels are the stream sockets at fds 4, 5, ... (imaged passes
 * them in order, after the connect channel at 3); the count is where they
 * end. No connect channel, no channels. */
static unsigned count_channels(void)
{
	unsigned n = 0;
	int type;
	socklen_t tl = sizeof(type);
	if (getsockopt(FETCH_CONNECT_FD, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
		return 0;
	for (; n < FETCH_MAX_CHANNELS; n++) {
		tl = sizeof(type);
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

/* ---- confinement: its own mount namespace, a read-only view of the few
 * files it reads, the layer capabilities, a strict filter ---- */

#define VIEW "/tmp" /* where the view is built, in the new namespace only */
#define VIEW_MAX_FILES 64

struct view_file {
	const char *path; /* where it is in the view (the same as on the host) */
	int fd;           /* O_PATH, opened before anything is covered */
	bool dir, writable;
};

static int view_add(struct view_file *v, size_t *n, const char *path, bool writable)
{
	if (!path || *path != '/')
		return 0;
	if (*n == VIEW_MAX_FILES) {
		log_warn(NULL, "imaged-fetch's view is full: a file it may read is left out", "path=%s max=%d", path,
			 VIEW_MAX_FILES);
		return 0;
	}
	int fd = open(path, O_PATH | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (e == ENOENT || e == ENOTDIR || e == EACCES)
			return 0; /* reading it would fail the same way */
		return log_error_errno(e, NULL, "cannot open a file for imaged-fetch's view", "path=%s", path);
	}
	v[(*n)++] = (struct view_file){.path = path, .fd = fd, .dir = S_ISDIR(st.st_mode), .writable = writable};
	return 0;
}

static int view_bind(const struct view_file *f)
{
	_cleanup_free_ char *target = NULL, *parent = NULL;
	char src[64];
	if (asprintf(&target, VIEW "%s", f->path) < 0 || !(parent = strdup(target)))
		return -ENOMEM;
	*strrchr(parent, '/') = '\0';
	int r = mkdir_p(parent, 0755);
	if (r < 0)
		return r;
	if (f->dir)
		r = mkdir(target, 0755) < 0 && errno != EEXIST ? -errno : 0;
	else {
		/* O_RDONLY: the file may already be there, in a directory bound
		 * read-only before it (a ca_file in /etc/ssl/certs). */
		int fd = open(target, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		r = fd < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
	}
	if (r < 0)
		return r;
	snprintf(src, sizeof(src), "/proc/self/fd/%d", f->fd);
	unsigned long ro = f->writable ? 0 : MS_RDONLY;
	if (mount(src, target, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | ro | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -errno;
	return 0;
}

#ifdef CRIOD_SANITIZERS
/* A test build's sanitizer reports go to the log_path of its options. */
static void view_add_sanitizer_logs(struct view_file *v, size_t *n)
{
	static char dirs[3][PATH_MAX];
	static const char *const vars[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"};
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
		const char *o = getenv(vars[i]), *p = o ? strstr(o, "log_path=") : NULL;
		if (!p)
			continue;
		p += STRLEN("log_path=");
		size_t len = strcspn(p, ": ");
		if (len >= sizeof(dirs[i]))
			continue;
		memcpy(dirs[i], p, len);
		dirs[i][len] = '\0';
		char *slash = strrchr(dirs[i], '/');
		if (slash && slash != dirs[i]) {
			*slash = '\0';
			(void)view_add(v, n, dirs[i], true);
		}
	}
}
#endif

/* Without fchmodat2 (Linux 6.6) and setxattrat (6.13), the layer's device
 * nodes and symlinks are reached through /proc/self/fd: the view then has a
 * /proc of its own (processes only). */
static bool view_needs_proc(void)
{
#ifdef CRIOD_SANITIZERS
	return true; /* LeakSanitizer reads /proc/self/maps at exit */
#else
	struct { uint64_t value; uint32_t size, flags; } xa = {0};
	return (syscall(SYS_fchmodat2, -1, "", 0, 0) < 0 && errno == ENOSYS) ||
	       (syscall(SYS_setxattrat, -1, "", 0, "", &xa, sizeof(xa)) < 0 && errno == ENOSYS);
#endif
}

/* A mount namespace of its own whose root is an empty read-only tmpfs
 * holding only what the helper reads by name: the CA bundle, the
 * registries' ca_file, the auth file, the resolver's files. The layer
 * directory comes as an fd, which the view does not touch. */
static int view_narrow(const struct criod_config *c)
{
	struct view_file v[VIEW_MAX_FILES];
	size_t n = 0;
	int r = 0;
	static const char *const fixed[] = {
		"/etc/ssl/certs", "/usr/share/ca-certificates", "/etc/resolv.conf", "/etc/hosts",
		"/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf",
	};

	if (unshare(CLONE_NEWNS) < 0)
		return log_error_errno(errno, NULL, "cannot make a mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return log_error_errno(errno, NULL, "cannot make the mounts private");
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(fixed); i++)
		r = view_add(v, &n, fixed[i], false);
	for (size_t i = 0; r >= 0 && i < c->n_registries; i++)
		r = view_add(v, &n, c->registries[i].ca_file, false);
	if (r >= 0)
		r = view_add(v, &n, c->auth_file, false);
#ifdef CRIOD_SANITIZERS
	if (r >= 0)
		view_add_sanitizer_logs(v, &n);
#endif
	if (r >= 0 && mount("tmpfs", VIEW, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m") < 0)
		r = log_error_errno(errno, NULL, "cannot mount the view", "path=" VIEW);
	for (size_t i = 0; r >= 0 && i < n; i++)
		if ((r = view_bind(&v[i])) < 0)
			log_error_errno(r, NULL, "cannot bind a file into the view", "path=%s", v[i].path);
	for (size_t i = 0; i < n; i++)
		close(v[i].fd);
	if (r >= 0 && view_needs_proc()) {
		if (mkdir(VIEW "/proc", 0555) < 0 ||
		    mount("proc", VIEW "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0)
			r = log_error_errno(errno, NULL, "cannot mount /proc in the view");
	}
	if (r < 0)
		return r;
	/* The view becomes / and the host's tree goes. */
	if (chdir(VIEW) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0)
		return log_error_errno(errno, NULL, "cannot move into the view");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return log_error_errno(errno, NULL, "cannot make the view read-only");
	return 0;
}

/* Only the channels stay open (with stdio), the view is narrowed, the
 * network namespace emptied, then capabilities, no_new_privs and the
 * filter: before any registry byte. Through a proxy imaged opens the
 * tunnel and hands it over (imaged/proxy.h); curl here uses none. Only an
 * https:// proxy (a tunnel inside TLS is no socket to hand over) or a
 * proxy variable that does not parse keeps the host's network and
 * fetch_net_syscalls, curl then going through the proxy itself. */
static int fetch_confine(const struct criod_config *c, unsigned nchan)
{
	if (syscall(SYS_close_range, FIRST_CHANNEL + nchan, ~0U, 0) < 0)
		return log_error_errno(errno, NULL, "cannot close inherited file descriptors");
	int r = registry_global_init();
	if (r < 0)
		return log_error_errno(r, NULL, "cannot initialise libcurl");
	r = view_narrow(c);
	if (r < 0)
		return r;
	static const char *calls[256];
	size_t n = 0;
	for (size_t i = 0; fetch_syscalls[i] && n + 1 < ARRAY_SIZE(calls); i++)
		calls[n++] = fetch_syscalls[i];
	bool any = false;
	char why[512] = "";
	int pr = proxy_env_tunnelable(&any, why, sizeof(why));
	bool host_net = pr < 0;
	if (host_net) {
		log_warn_errno(pr, NULL, "imaged-fetch keeps the host's network for this proxy", "error=\"%s\"", why);
		for (size_t i = 0; fetch_net_syscalls[i] && n + 1 < ARRAY_SIZE(calls); i++)
			calls[n++] = fetch_net_syscalls[i];
	} else {
		if (unshare(CLONE_NEWNET) < 0)
			return log_error_errno(errno, NULL, "cannot make an empty network namespace");
		registry_set_connector(connect_via_imaged);
	}
	calls[n] = NULL;
	static const char *const connect_noop[] = {"connect", NULL};
	const struct confine_policy p = {
		.caps = FETCH_CAPS,
		.no_new_privs = true,
		.action = CONFINE_DENY_LOGGED,
		.syscalls = calls,
		.noops = host_net ? NULL : connect_noop,
	};
	return confine_self("imaged-fetch", &p);
}

int main(int argc, char **argv)
{
	struct daemon d;

	/* Die with imaged (the thread that started us lives as long as it). */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGPIPE, SIG_IGN);
	daemon_configure(&d, "imaged-fetch", argc, argv);
	cfg = &d.cfg;
	unsigned nchan = count_channels();
	if (fetch_confine(cfg, nchan) < 0) {
		config_free(&d.cfg);
		return 1;
	}
	int status = run(nchan);
	registry_client_free(reg);
	config_free(&d.cfg);
	return status;
}
