/* imaged's side of the fetch helper; see fetcher.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fetch_api.h"
#include "fetch_connect.h"
#include "fetcher.h"
#include "internal/envelope.pb-c.h"
#include "internal/fetch.pb-c.h"
#include "log.h"
#include "macro.h"
#include "spawn.h"
#include "status.h"
#include "util.h"

#define MAX_MANIFEST (4u << 20)
#define MAX_CONTENT_TYPE 256
#define STOP_GRACE_MS 2000

extern char **environ;

struct fetcher {
	pid_t pid;
	int connect_fd; /* FetchConnect, from the helper; -1 when not made */
	pthread_t connect_thread;
	bool connect_serving;
	char image[512];
	_Atomic bool stalled; /* killed for making no progress: every call fails with that */
	unsigned nchan;
	int fds[FETCH_MAX_CHANNELS];
	char req[72];
};

static char *helper_path, *helper_config, *helper_level;
static const struct criod_config *helper_cfg;
static uint64_t stall_ms = 90000;

/* Running helpers, so that shutdown can stop them. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t live[64];
static size_t n_live;
static bool cancelled;

int fetcher_setup(const struct criod_config *cfg, const char *config_path, const char *log_level, uint64_t stall)
{
	stall_ms = stall;
	helper_cfg = cfg;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return log_error_errno(errno, NULL, "cannot find imaged's own binary");
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if (asprintf(&helper_path, "%s/imaged-fetch", exe) < 0)
		return -ENOMEM;
	helper_config = config_path ? strdup(config_path) : NULL;
	helper_level = strdup(log_level);
	if ((config_path && !helper_config) || !helper_level)
		return -ENOMEM;
	if (access(helper_path, X_OK) < 0)
		return log_error_errno(errno, NULL, "fetch helper missing: pulls will fail", "path=%s", helper_path);
	return 0;
}

static void live_remove(pid_t pid)
{
	pthread_mutex_lock(&live_lock);
	for (size_t i = 0; i < n_live; i++)
		if (live[i] == pid) {
			live[i] = live[--n_live];
			break;
		}
	pthread_mutex_unlock(&live_lock);
}

void fetcher_cancel_all(void)
{
	pthread_mutex_lock(&live_lock);
	cancelled = true;
	for (size_t i = 0; i < n_live; i++)
		kill(live[i], SIGKILL);
	pthread_mutex_unlock(&live_lock);
}

void fetcher_stop(struct fetcher *f)
{
	if (!f)
		return;
	for (unsigned i = 0; i < f->nchan; i++)
		close(f->fds[i]);
	/* The helper's connect calls end (it is going; one in progress fails). */
	if (f->connect_fd >= 0)
		shutdown(f->connect_fd, SHUT_RDWR);
	if (f->pid > 0) {
		live_remove(f->pid);
		/* Closed channels end the helper; give it a moment, then make sure. */
		_cleanup_close_ int pfd = pidfd_open_pid(f->pid);
		if (pfd >= 0) {
			struct pollfd p = {.fd = pfd, .events = POLLIN};
			if (poll(&p, 1, STOP_GRACE_MS) == 0) {
				log_warn(f->req, "fetch helper did not exit, killing it", "pid=%d", (int)f->pid);
				kill(f->pid, SIGKILL);
			}
		} else {
			kill(f->pid, SIGKILL);
		}
		int st;
		while (waitpid(f->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	if (f->connect_serving)
		pthread_join(f->connect_thread, NULL);
	if (f->connect_fd >= 0)
		close(f->connect_fd);
	free(f);
}

static int call(struct fetcher *f, unsigned chan, uint32_t method, const ProtobufCMessage *q, int fd,
		ProtobufCMessage **resp, char *err, size_t errlen);

/* A reply's error field: 0, or a negative errno with its message. */
static int reply_error(int error, const char *message, char *err, size_t errlen)
{
	if (error == 0)
		return 0;
	if (error < 0 && error > -4096) {
		snprintf(err, errlen, "%s", message && *message ? message : strerror(-error));
		return error;
	}
	snprintf(err, errlen, "fetch helper: bad error value %d", error);
	return -EPROTO;
}

/* Answer the helper's FetchConnect calls until it closes the channel. The
 * helper is treated as hostile: a frame that is not a FetchConnect with
 * no fds is answered INVALID_ARGUMENT; fetch_connect decides the rest. */
static void *connect_serve(void *arg)
{
	struct fetcher *f = arg;
	for (;;) {
		void *e = NULL;
		int fds[IPC_MAX_FDS];
		size_t nfds = 0;
		int r = ipc_sync_recv(f->connect_fd, &e, fds, &nfds);
		if (r < 0) {
			if (r != -EPIPE)
				log_warn_errno(r, f->req, "bad frame on the fetch helper's connect channel, closing it",
					       "pid=%d", (int)f->pid);
			return NULL;
		}
		Criod__Internal__Envelope *env = e;
		Criod__Internal__FetchConnectRequest *q = NULL;
		const char *why = NULL;
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		if (env->method != FETCH_CONNECT)
			why = "unknown method";
		else if (nfds != 0)
			why = "wrong number of file descriptors";
		else if (!(q = criod__internal__fetch_connect_request__unpack(NULL, env->body.len, env->body.data)))
			why = "request does not decode";
		if (why) {
			log_warn(f->req, "bad request from the fetch helper", "pid=%d method=%u error=\"%s\"", (int)f->pid,
				 env->method, why);
			r = ipc_sync_send(f->connect_fd, env->call_id, env->method, f->req, STATUS_INVALID_ARGUMENT, why,
					  NULL, NULL, 0);
		} else {
			Criod__Internal__FetchConnectResponse o = CRIOD__INTERNAL__FETCH_CONNECT_RESPONSE__INIT;
			char err[1024] = "";
			int sock = -1;
			o.error = fetch_connect(helper_cfg, f->image, q->authority, q->port, q->tls, f->req, &sock, err,
						sizeof(err));
			o.message = err;
			r = ipc_sync_send(f->connect_fd, env->call_id, FETCH_CONNECT, f->req, 0, NULL, &o.base,
					  sock >= 0 ? &sock : NULL, sock >= 0 ? 1 : 0);
			if (sock >= 0)
				close(sock);
			criod__internal__fetch_connect_request__free_unpacked(q, NULL);
		}
		criod__internal__envelope__free_unpacked(env, NULL);
		if (r < 0)
			return NULL;
	}
}

int fetcher_start(const char *image, const struct pull_auth *auth, const char *req, unsigned nchan,
		  struct fetcher **out, char *err, size_t errlen)
{
	if (!helper_path) {
		snprintf(err, errlen, "the fetch helper is not set up");
		return -ENOENT;
	}
	if (nchan < 1 || nchan > FETCH_MAX_CHANNELS)
		return -EINVAL;
	struct fetcher *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	snprintf(f->req, sizeof(f->req), "%s", req ? req : "");
	snprintf(f->image, sizeof(f->image), "%s", image);
	/* child[0] is the connect channel (the helper's fd 3), then the
	 * channels imaged calls on. */
	int child[FETCH_MAX_CHANNELS + 1];
	unsigned nchild = 0;
	int r = 0, sv[2];
	f->connect_fd = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		r = -errno;
	else {
		f->connect_fd = sv[0];
		child[nchild++] = sv[1];
	}
	for (unsigned i = 0; r == 0 && i < nchan; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			r = -errno;
			break;
		}
		f->fds[f->nchan++] = sv[0];
		child[nchild++] = sv[1];
	}
	if (r < 0) {
		for (unsigned i = 0; i < nchild; i++)
			close(child[i]);
		fetcher_stop(f);
		snprintf(err, errlen, "cannot make the fetch helper's sockets: %s", strerror(-r));
		return r;
	}
	/* The connect channel is fd 3, the channels fds 4 .. 4+nchan-1: the
	 * helper counts them. */
	const char *argv[6] = {helper_path, "--log-level", helper_level};
	size_t argc = 3;
	if (helper_config) {
		argv[argc++] = "--config";
		argv[argc++] = helper_config;
	}
	struct spawn_opts so = {
		.argv = argv,
		/* imaged's environment: the proxy variables are the helper's to honour. */
		.envp = (const char *const *)environ,
		.stdin_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = -1,
		.keep_fds = child,
		.n_keep_fds = nchild,
	};
	pthread_mutex_lock(&live_lock);
	if (cancelled)
		r = -ECANCELED;
	else if (n_live == ARRAY_SIZE(live))
		r = -EAGAIN;
	else if ((r = spawn_process(&so, &f->pid)) == 0)
		live[n_live++] = f->pid;
	pthread_mutex_unlock(&live_lock);
	for (unsigned i = 0; i < nchild; i++)
		close(child[i]);
	if (r == 0) {
		int e = pthread_create(&f->connect_thread, NULL, connect_serve, f);
		if (e == 0)
			f->connect_serving = true;
		else
			log_warn_errno(-e, f->req, "cannot serve the fetch helper's connect channel: its pull has no network");
	}
	if (r < 0) {
		f->pid = 0;
		fetcher_stop(f);
		snprintf(err, errlen, r == -ECANCELED ? "imaged is stopping" : "cannot start the fetch helper %s: %s",
			 helper_path, strerror(-r));
		return r;
	}

	Criod__Internal__FetchStartRequest q = CRIOD__INTERNAL__FETCH_START_REQUEST__INIT;
	Criod__Internal__RegistryAuth a = CRIOD__INTERNAL__REGISTRY_AUTH__INIT;
	q.image = (char *)image;
#define SET(x) a.x = auth && auth->x ? auth->x : (char *)""
	SET(username);
	SET(password);
	SET(auth);
	SET(identity_token);
	SET(registry_token);
#undef SET
	q.auth = &a;
	ProtobufCMessage *resp = NULL;
	r = call(f, 0, FETCH_START, &q.base, -1, &resp, err, errlen);
	if (r == 0) {
		const Criod__Internal__FetchStartResponse *o = (const void *)resp;
		r = reply_error(o->error, o->message, err, errlen);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	if (r < 0) {
		fetcher_stop(f);
		return r;
	}
	*out = f;
	return 0;
}

/* The bytes the helper has read so far (network, channels, files): any
 * thread of it making progress moves it. */
static int helper_rchar(pid_t pid, uint64_t *out)
{
	char path[64];
	_cleanup_free_ char *text = NULL;
	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	int r = read_file(path, 4096, &text, NULL);
	if (r < 0)
		return r;
	const char *p = strstr(text, "rchar: ");
	if (!p)
		return -EPROTO;
	*out = strtoull(p + 7, NULL, 10);
	return 0;
}

struct stall_watch {
	struct fetcher *f;
	uint64_t rchar;
	int64_t since; /* monotonic ns of the last progress seen */
};

/* While a call waits: a helper that has read nothing for stall_ms is
 * killed (it is imaged's unreaped child, so its pid is still its own). */
static int stall_check(void *ud)
{
	struct stall_watch *w = ud;
	uint64_t now_rchar;
	if (helper_rchar(w->f->pid, &now_rchar) < 0)
		return 0; /* gone: the channel reports it */
	int64_t now = now_monotonic_ns();
	if (now_rchar != w->rchar) {
		w->rchar = now_rchar;
		w->since = now;
		return 0;
	}
	if ((uint64_t)(now - w->since) / 1000000 < stall_ms)
		return 0;
	log_warn(w->f->req, "fetch helper made no progress, killing it", "pid=%d stalled_ms=%llu", (int)w->f->pid,
		 (unsigned long long)stall_ms);
	w->f->stalled = true;
	kill(w->f->pid, SIGKILL);
	return -ETIMEDOUT;
}

/* One call on a channel; a transport failure means the helper is gone or
 * broken: -ETIMEDOUT when it was killed for stalling, -ECANCELED when
 * imaged is stopping, else -EIO. The reply's own error field is the
 * caller's to read (reply_error). */
static int call(struct fetcher *f, unsigned chan, uint32_t method, const ProtobufCMessage *q, int fd,
		ProtobufCMessage **resp, char *err, size_t errlen)
{
	if (chan >= f->nchan) {
		snprintf(err, errlen, "no fetch channel %u", chan);
		return -EINVAL;
	}
	struct stall_watch sw = {.f = f, .since = now_monotonic_ns()};
	(void)helper_rchar(f->pid, &sw.rchar);
	/* Look a few times per stall period. */
	uint64_t every = stall_ms / 4 < 1000 ? stall_ms / 4 : 1000;
	struct ipc_sync_wait wait = {.idle_ms = (int)(every ? every : 1), .idle = stall_check, .ud = &sw};
	char terr[256] = "";
	int r = ipc_sync_call(f->fds[chan], &fetch_methods[method - 1], f->req, q, fd >= 0 ? &fd : NULL,
			      fd >= 0 ? 1 : 0, &wait, resp, terr, sizeof(terr));
	if (r < 0 && f->stalled) {
		snprintf(err, errlen, "fetch helper read nothing for %llu ms and was killed",
			 (unsigned long long)stall_ms);
		return -ETIMEDOUT;
	}
	if (r < 0) {
		pthread_mutex_lock(&live_lock);
		bool c = cancelled;
		pthread_mutex_unlock(&live_lock);
		if (c) {
			snprintf(err, errlen, "imaged is stopping");
			return -ECANCELED;
		}
		snprintf(err, errlen, "fetch helper: %s", terr);
		return -EIO;
	}
	return 0;
}

/* A reply body as a malloc'd, NUL-terminated copy. */
static int copy_body(const ProtobufCBinaryData *b, char **body, size_t *len)
{
	if (!(*body = malloc(b->len + 1)))
		return -ENOMEM;
	memcpy(*body, b->data, b->len);
	(*body)[b->len] = '\0';
	*len = b->len;
	return 0;
}

int fetcher_get_manifest(struct fetcher *f, unsigned chan, const char *reference, char **body, size_t *len,
			 char **content_type, char digest[DIGEST_STR_MAX], char *err, size_t errlen)
{
	Criod__Internal__FetchManifestRequest q = CRIOD__INTERNAL__FETCH_MANIFEST_REQUEST__INIT;
	q.reference = (char *)reference;
	ProtobufCMessage *resp = NULL;
	int r = call(f, chan, FETCH_MANIFEST, &q.base, -1, &resp, err, errlen);
	if (r < 0)
		return r;
	Criod__Internal__FetchManifestResponse *o = (void *)resp;
	if ((r = reply_error(o->error, o->message, err, errlen)) < 0)
		goto out;
	char mine[DIGEST_STR_MAX];
	digest_buffer(o->body.data, o->body.len, mine);
	if (o->body.len > MAX_MANIFEST || strlen(o->content_type) > MAX_CONTENT_TYPE || strcmp(mine, o->digest) != 0 ||
	    (strncmp(reference, "sha256:", 7) == 0 && strcmp(reference, mine) != 0)) {
		snprintf(err, errlen, "fetch helper: manifest %s does not match what was asked", reference);
		r = -EPROTO;
		goto out;
	}
	*content_type = *o->content_type ? strdup(o->content_type) : NULL;
	if ((*o->content_type && !*content_type) || copy_body(&o->body, body, len) < 0) {
		free(*content_type);
		*body = *content_type = NULL;
		r = -ENOMEM;
		goto out;
	}
	memcpy(digest, mine, DIGEST_STR_MAX);
out:
	protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}

int fetcher_get_blob(struct fetcher *f, unsigned chan, const char *digest, size_t max, char **body, size_t *len,
		     char *err, size_t errlen)
{
	Criod__Internal__FetchBlobRequest q = CRIOD__INTERNAL__FETCH_BLOB_REQUEST__INIT;
	q.digest = (char *)digest;
	q.max_size = max;
	ProtobufCMessage *resp = NULL;
	int r = call(f, chan, FETCH_BLOB, &q.base, -1, &resp, err, errlen);
	if (r < 0)
		return r;
	Criod__Internal__FetchBlobResponse *o = (void *)resp;
	if ((r = reply_error(o->error, o->message, err, errlen)) < 0)
		goto out;
	char mine[DIGEST_STR_MAX];
	digest_buffer(o->body.data, o->body.len, mine);
	if (o->body.len > max || strcmp(mine, digest) != 0) {
		snprintf(err, errlen, "fetch helper: blob %s does not match what was asked", digest);
		r = -EPROTO;
		goto out;
	}
	r = copy_body(&o->body, body, len);
out:
	protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}

/* The opaque directories the helper listed get trusted.overlay.opaque,
 * which takes CAP_SYS_ADMIN (the helper's filter and capabilities leave
 * it out). Each is opened inside the layer's directory, never through a
 * symlink or out of it: a hostile helper can only name a directory of the
 * layer it wrote, which a layer may make opaque anyway. */
static int mark_opaque(int dir_fd, const Criod__Internal__FetchLayerResponse *o, char *err, size_t errlen)
{
	if (o->n_opaque_dirs > o->entries) {
		snprintf(err, errlen, "fetch helper: %zu opaque directories in a layer of %llu entries", o->n_opaque_dirs,
			 (unsigned long long)o->entries);
		return -EPROTO;
	}
	for (size_t i = 0; i < o->n_opaque_dirs; i++) {
		const char *d = o->opaque_dirs[i];
		if (!*d || *d == '/' || strlen(d) >= PATH_MAX) {
			snprintf(err, errlen, "fetch helper: opaque directory %zu is not a relative path", i);
			return -EPROTO;
		}
		_cleanup_close_ int fd = openat2_retry(dir_fd, d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
							RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
								RESOLVE_NO_XDEV);
		if (fd < 0) {
			snprintf(err, errlen, "fetch helper: opaque directory %zu of the layer: %s", i, strerror(-fd));
			return -EPROTO;
		}
		if (fsetxattr(fd, "trusted.overlay.opaque", "y", 1, 0) < 0) {
			int e = errno;
			snprintf(err, errlen, "cannot mark an opaque directory of the layer: %s", strerror(e));
			return -e;
		}
	}
	return 0;
}

int fetcher_get_layer(struct fetcher *f, unsigned chan, const char *digest, int64_t size,
		      enum layer_compression comp, int dir_fd, struct fetched_layer *out, char *err, size_t errlen)
{
	Criod__Internal__FetchLayerRequest q = CRIOD__INTERNAL__FETCH_LAYER_REQUEST__INIT;
	q.digest = (char *)digest;
	q.size = size;
	q.compression = comp;
	ProtobufCMessage *resp = NULL;
	int r = call(f, chan, FETCH_LAYER, &q.base, dir_fd, &resp, err, errlen);
	if (r < 0)
		return r;
	Criod__Internal__FetchLayerResponse *o = (void *)resp;
	if ((r = reply_error(o->error, o->message, err, errlen)) < 0)
		goto out;
	if (!digest_is_valid(o->diff_id)) {
		snprintf(err, errlen, "fetch helper: layer %s came back without a valid diff id", digest);
		r = -EPROTO;
		goto out;
	}
	if ((r = mark_opaque(dir_fd, o, err, errlen)) < 0)
		goto out;
	snprintf(out->diff_id, sizeof(out->diff_id), "%s", o->diff_id);
	out->tar_bytes = o->tar_bytes;
	out->entries = o->entries;
	out->received = o->received;
out:
	protobuf_c_message_free_unpacked(resp, NULL);
	return r;
}
