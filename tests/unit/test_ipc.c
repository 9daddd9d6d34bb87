/* The internal RPC layer: a real server and a real client on one event loop
 * over a real unix socket. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "internal/envelope.pb-c.h"
#include "internal/netd.pb-c.h"
#include "ipc.h"
#include "log.h"
#include "status.h"

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

struct result {
	int done;
	int status;
	char message[256];
	char component[64];
	int64_t pid;
	char fd_content[64];
};

static struct ipc_call *parked; /* a call the "never" handler keeps */

static void h_ping(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
{
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	r.component = (char *)"test";
	r.pid = 42;
	ipc_call_reply(call, &r.base, NULL, 0);
}

/* Reads what the passed fd holds and answers it as the component name. */
static void h_readfd(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
{
	char buf[64] = {0};
	if (nfds != 1) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "want one fd, got %zu", nfds);
		return;
	}
	ssize_t n = pread(fds[0], buf, sizeof(buf) - 1, 0);
	close(fds[0]);
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	r.component = n > 0 ? buf : (char *)"";
	ipc_call_reply(call, &r.base, NULL, 0);
}

/* Answers with an fd of its own (as spawnd's OpenSeccompProfile does),
 * which it closes at once: the reply carries a duplicate. */
static void h_givefd(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
{
	char tmpl[] = "/tmp/criod-ipc-give-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(write(fd, "from the daemon", 15), 15);
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	r.component = (char *)"gave";
	ipc_call_reply(call, &r.base, &fd, 1);
	close(fd);
}

static void h_fail(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
{
	ipc_call_fail(call, STATUS_NOT_FOUND, "no such thing: %s", "x");
}

static void h_never(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
{
	parked = call;
}

/* Counts its calls and answers the request's length. */
static int small_calls;
static void h_small(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
{
	small_calls++;
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	r.component = (char *)"small";
	r.pid = (int64_t)strlen(((const Criod__Internal__PingResponse *)req)->component);
	ipc_call_reply(call, &r.base, NULL, 0);
}

static int setup_calls;
static void h_setup(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud)
{
	setup_calls++;
	Criod__Internal__SetupPodNetworkResponse r = CRIOD__INTERNAL__SETUP_POD_NETWORK_RESPONSE__INIT;
	ipc_call_reply(call, &r.base, NULL, 0);
}

#define PING_DESC &criod__internal__ping_request__descriptor, &criod__internal__ping_response__descriptor
/* A request with a string: the PingResponse message. */
#define STRING_DESC &criod__internal__ping_response__descriptor, &criod__internal__ping_response__descriptor
#define SETUP_DESC                                             \
	&criod__internal__setup_pod_network_request__descriptor, \
		&criod__internal__setup_pod_network_response__descriptor

#define SMALL_CAP 1024
static const struct ipc_method server_methods[] = {
	{1, "Ping", PING_DESC, 0, h_ping, 0},
	{2, "ReadFd", PING_DESC, 1, h_readfd, 0},
	{3, "Fail", PING_DESC, 0, h_fail, 0},
	{4, "Never", PING_DESC, 0, h_never, 0},
	{5, "GiveFd", PING_DESC, 0, h_givefd, 0},
	{6, "Small", STRING_DESC, 0, h_small, SMALL_CAP},
	{7, "Setup", SETUP_DESC, 0, h_setup, IPC_KiB(64)},
};
static const struct ipc_method m_ping = {1, "Ping", PING_DESC, 0, NULL, 0};
static const struct ipc_method m_readfd = {2, "ReadFd", PING_DESC, 1, NULL, 0};
static const struct ipc_method m_fail = {3, "Fail", PING_DESC, 0, NULL, 0};
static const struct ipc_method m_never = {4, "Never", PING_DESC, 0, NULL, 0};
static const struct ipc_method m_givefd = {5, "GiveFd", PING_DESC, 0, NULL, 0};
static const struct ipc_method m_small = {6, "Small", STRING_DESC, 0, NULL, 0};
static const struct ipc_method m_unknown = {99, "Unknown", PING_DESC, 0, NULL, 0};
static const struct ipc_method m_ping_2fds = {1, "Ping", PING_DESC, 2, NULL, 0};

static void on_reply(int status, const char *message, const ProtobufCMessage *resp, int *fds, size_t nfds,
		     void *ud)
{
	struct result *r = ud;
	r->done++;
	r->status = status;
	snprintf(r->message, sizeof(r->message), "%s", message ? message : "");
	if (resp) {
		const Criod__Internal__PingResponse *p = (const Criod__Internal__PingResponse *)resp;
		snprintf(r->component, sizeof(r->component), "%s", p->component);
		r->pid = p->pid;
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
}

/* on_reply, and what the reply's fds hold (the first one's content). */
static size_t reply_nfds;
static void on_reply_fds(int status, const char *message, const ProtobufCMessage *resp, int *fds, size_t nfds,
			 void *ud)
{
	struct result *r = ud;
	reply_nfds = nfds;
	if (nfds > 0) {
		ssize_t n = pread(fds[0], r->fd_content, sizeof(r->fd_content) - 1, 0);
		r->fd_content[n > 0 ? n : 0] = '\0';
	}
	on_reply(status, message, resp, fds, nfds, ud);
}

struct fixture {
	char dir[64];
	char path[128];
	struct event_base *base;
	struct ipc_server *srv;
	struct ipc_client *cli;
};

/* The loop raw_send runs while the socket is full. */
static struct fixture *global_fixture;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/criod-ipc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/d.sock", f->dir);
	f->base = event_base_new();
	uid_t allowed[] = {getuid()};
	assert_int_equal(ipc_server_new(f->base, f->path, 0600, allowed, 1, server_methods,
					sizeof(server_methods) / sizeof(server_methods[0]), NULL, &f->srv),
			 0);
	f->cli = ipc_client_new(f->base, "testd", f->path);
	assert_non_null(f->cli);
	global_fixture = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	ipc_client_free(f->cli);
	ipc_server_free(f->srv);
	event_base_free(f->base);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void run_until(struct fixture *f, const int *flag, int want)
{
	for (int i = 0; i < 2000 && *flag < want; i++)
		event_base_loop(f->base, EVLOOP_ONCE);
	assert_true(*flag >= want);
}

static void test_ping_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct result r = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	assert_int_equal(ipc_client_call(f->cli, &m_ping, "req-1", &req.base, NULL, 0, 5000, on_reply, &r), 0);
	assert_int_equal(r.done, 0); /* never synchronous */
	run_until(f, &r.done, 1);
	assert_int_equal(r.status, STATUS_OK);
	assert_string_equal(r.component, "test");
	assert_int_equal(r.pid, 42);
}

static void test_pipelined_calls(void **state)
{
	struct fixture *f = *state;
	struct result r[50];
	memset(r, 0, sizeof(r));
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	for (int i = 0; i < 50; i++)
		assert_int_equal(ipc_client_call(f->cli, i % 2 ? &m_fail : &m_ping, NULL, &req.base, NULL, 0, 5000,
						 on_reply, &r[i]),
				 0);
	for (int i = 0; i < 50; i++) {
		run_until(f, &r[i].done, 1);
		assert_int_equal(r[i].done, 1);
		if (i % 2) {
			assert_int_equal(r[i].status, STATUS_NOT_FOUND);
			assert_string_equal(r[i].message, "no such thing: x");
		} else {
			assert_int_equal(r[i].status, STATUS_OK);
		}
	}
}

static void test_fd_passing(void **state)
{
	struct fixture *f = *state;
	char tmpl[] = "/tmp/criod-ipc-fd-XXXXXX";
	int fd = mkstemp(tmpl);
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(write(fd, "through the socket", 18), 18);
	struct result r = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	assert_int_equal(ipc_client_call(f->cli, &m_readfd, NULL, &req.base, &fd, 1, 5000, on_reply, &r), 0);
	run_until(f, &r.done, 1);
	assert_int_equal(r.status, STATUS_OK);
	assert_string_equal(r.component, "through the socket");
	/* The caller keeps its own fd. */
	assert_true(fcntl(fd, F_GETFD) >= 0);
	close(fd);
}

static void test_reply_carries_fd(void **state)
{
	struct fixture *f = *state;
	struct result r = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	assert_int_equal(ipc_client_call(f->cli, &m_givefd, NULL, &req.base, NULL, 0, 5000, on_reply_fds, &r), 0);
	run_until(f, &r.done, 1);
	assert_int_equal(r.status, STATUS_OK);
	assert_string_equal(r.component, "gave");
	assert_int_equal(reply_nfds, 1);
	assert_string_equal(r.fd_content, "from the daemon");
	/* An error reply carries none. */
	struct result e = {0};
	assert_int_equal(ipc_client_call(f->cli, &m_fail, NULL, &req.base, NULL, 0, 5000, on_reply_fds, &e), 0);
	run_until(f, &e.done, 1);
	assert_int_equal(e.status, STATUS_NOT_FOUND);
	assert_int_equal(reply_nfds, 0);
}

static void test_refused_fds_and_unknown_method(void **state)
{
	struct fixture *f = *state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	struct result r1 = {0}, r2 = {0}, r3 = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	/* Ping takes no fds: refused before its handler runs. */
	assert_int_equal(ipc_client_call(f->cli, &m_ping_2fds, NULL, &req.base, fds, 2, 5000, on_reply, &r1), 0);
	assert_int_equal(ipc_client_call(f->cli, &m_unknown, NULL, &req.base, NULL, 0, 5000, on_reply, &r2), 0);
	assert_int_equal(ipc_client_call(f->cli, &m_ping, NULL, &req.base, NULL, 0, 5000, on_reply, &r3), 0);
	run_until(f, &r3.done, 1);
	run_until(f, &r1.done, 1);
	run_until(f, &r2.done, 1);
	assert_int_equal(r1.status, STATUS_INVALID_ARGUMENT);
	assert_int_equal(r2.status, STATUS_UNIMPLEMENTED);
	assert_int_equal(r3.status, STATUS_OK);
	close(fds[0]);
	close(fds[1]);
}

static void test_deadline_and_late_reply_dropped(void **state)
{
	struct fixture *f = *state;
	struct result r = {0}, r2 = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	parked = NULL;
	assert_int_equal(ipc_client_call(f->cli, &m_never, NULL, &req.base, NULL, 0, 50, on_reply, &r), 0);
	run_until(f, &r.done, 1);
	assert_int_equal(r.status, STATUS_DEADLINE_EXCEEDED);
	assert_non_null(parked);
	/* The handler answers after the deadline: the client drops it. */
	Criod__Internal__PingResponse resp = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	ipc_call_reply(parked, &resp.base, NULL, 0);
	parked = NULL;
	assert_int_equal(ipc_client_call(f->cli, &m_ping, NULL, &req.base, NULL, 0, 5000, on_reply, &r2), 0);
	run_until(f, &r2.done, 1);
	assert_int_equal(r2.status, STATUS_OK);
	assert_int_equal(r.done, 1);
}

static void test_server_gone_then_back(void **state)
{
	struct fixture *f = *state;
	struct result r = {0}, r2 = {0}, r3 = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	/* A call pending when the server goes away fails UNAVAILABLE. */
	parked = NULL;
	assert_int_equal(ipc_client_call(f->cli, &m_never, NULL, &req.base, NULL, 0, 5000, on_reply, &r), 0);
	for (int i = 0; i < 200 && !parked; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_non_null(parked);
	ipc_server_free(f->srv);
	f->srv = NULL;
	run_until(f, &r.done, 1);
	assert_int_equal(r.status, STATUS_UNAVAILABLE);
	/* The parked call outlives its connection; completing it is harmless. */
	ipc_call_fail(parked, STATUS_CANCELLED, "late");
	parked = NULL;
	/* Nobody listening: UNAVAILABLE naming the daemon. */
	assert_int_equal(ipc_client_call(f->cli, &m_ping, NULL, &req.base, NULL, 0, 5000, on_reply, &r2), 0);
	run_until(f, &r2.done, 1);
	assert_int_equal(r2.status, STATUS_UNAVAILABLE);
	assert_non_null(strstr(r2.message, "testd"));
	/* The daemon comes back: the next call reconnects. */
	uid_t allowed[] = {getuid()};
	assert_int_equal(ipc_server_new(f->base, f->path, 0600, allowed, 1, server_methods, 4, NULL, &f->srv), 0);
	assert_int_equal(ipc_client_call(f->cli, &m_ping, NULL, &req.base, NULL, 0, 5000, on_reply, &r3), 0);
	run_until(f, &r3.done, 1);
	assert_int_equal(r3.status, STATUS_OK);
}

static void test_unauthorized_peer_refused(void **state)
{
	struct fixture *f = *state;
	ipc_server_free(f->srv);
	uid_t allowed[] = {getuid() + 12345};
	assert_int_equal(ipc_server_new(f->base, f->path, 0600, allowed, 1, server_methods, 4, NULL, &f->srv), 0);
	struct result r = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	assert_int_equal(ipc_client_call(f->cli, &m_ping, NULL, &req.base, NULL, 0, 5000, on_reply, &r), 0);
	run_until(f, &r.done, 1);
	assert_int_equal(r.status, STATUS_UNAVAILABLE);
}

static void test_stale_socket_replaced_other_file_kept(void **state)
{
	struct fixture *f = *state;
	char p[160];
	snprintf(p, sizeof(p), "%s/plain", f->dir);
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ipc_listen_unix(p, 0600), -EEXIST);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	unlink(p);
	/* f->path is served: a second instance must not steal it. */
	assert_int_equal(ipc_listen_unix(f->path, 0640), -EADDRINUSE);
	/* A socket nobody serves any more is replaced. */
	snprintf(p, sizeof(p), "%s/stale.sock", f->dir);
	int l = ipc_listen_unix(p, 0600);
	assert_true(l >= 0);
	close(l);
	l = ipc_listen_unix(p, 0640);
	assert_true(l >= 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	close(l);
	unlink(p);
}

static void test_client_free_completes_pending(void **state)
{
	struct fixture *f = *state;
	struct result r = {0};
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	parked = NULL;
	assert_int_equal(ipc_client_call(f->cli, &m_never, NULL, &req.base, NULL, 0, 5000, on_reply, &r), 0);
	for (int i = 0; i < 200 && !parked; i++)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_non_null(parked);
	/* The owner goes away with a call outstanding: it still hears back. */
	ipc_client_free(f->cli);
	f->cli = NULL;
	assert_int_equal(r.done, 1);
	assert_int_equal(r.status, STATUS_CANCELLED);
	ipc_call_fail(parked, STATUS_CANCELLED, "late");
	parked = NULL;
}

static void test_frame_encode(void **state)
{
	Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
	env.call_id = 300;
	env.method = 2;
	uint8_t *buf;
	size_t len;
	assert_int_equal(ipc_frame_encode(&env, &buf, &len), 0);
	size_t body = (size_t)buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16 | (size_t)buf[3] << 24;
	assert_int_equal(body + 4, len);
	Criod__Internal__Envelope *back = criod__internal__envelope__unpack(NULL, body, buf + 4);
	assert_non_null(back);
	assert_int_equal(back->call_id, 300);
	assert_int_equal(back->method, 2);
	criod__internal__envelope__free_unpacked(back, NULL);
	free(buf);
}

/* ---- limits: what one hostile peer can make a server hold ---- */

/* Run the loop for ms milliseconds. */
static void pump(struct fixture *f, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

static int raw_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Send bytes with fds attached to their first byte. */
static void raw_send(int fd, const void *data, size_t len, const int *fds, size_t nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 64)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > 0) {
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	assert_true(n > 0);
	/* The rest without fds; the server runs on this loop, so let it read. */
	for (size_t off = (size_t)n; off < len;) {
		n = send(fd, (const char *)data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			pump(global_fixture, 1);
			continue;
		}
		off += (size_t)n;
	}
}

/* One envelope as a frame: method, call id, body, declared nfds. */
static void raw_send_frame(int fd, uint32_t method, uint64_t call_id, const void *body, size_t body_len,
			   uint32_t declared_fds, const int *fds, size_t nfds)
{
	Criod__Internal__Envelope env = CRIOD__INTERNAL__ENVELOPE__INIT;
	env.call_id = call_id;
	env.method = method;
	env.request_id = (char *)"raw";
	env.body.data = (uint8_t *)body;
	env.body.len = body_len;
	env.nfds = declared_fds;
	uint8_t *buf;
	size_t len;
	assert_int_equal(ipc_frame_encode(&env, &buf, &len), 0);
	raw_send(fd, buf, len, fds, nfds);
	free(buf);
}

/* Run the loop until fd is readable (or 2 s pass); returns poll's revents. */
static short pump_until_readable(struct fixture *f, int fd)
{
	for (int i = 0; i < 400; i++) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0)
			return p.revents;
		pump(f, 5);
	}
	return 0;
}

/* The server's answer on a raw connection (decoded envelope), or NULL when it
 * closed the connection instead. */
static Criod__Internal__Envelope *raw_reply(struct fixture *f, int fd)
{
	assert_true(pump_until_readable(f, fd) != 0);
	void *e = NULL;
	int fds[IPC_MAX_FDS];
	size_t nfds = 0;
	if (ipc_sync_recv(fd, &e, fds, &nfds) < 0)
		return NULL;
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	return e;
}

/* Whether the server closed fd: EOF (or a reset) without a byte, not a timeout. */
static bool raw_closed(struct fixture *f, int fd)
{
	if (pump_until_readable(f, fd) == 0)
		return false;
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void raw_ping_ok(struct fixture *f, int fd, uint64_t id)
{
	raw_send_frame(fd, 1, id, NULL, 0, 0, NULL, 0);
	Criod__Internal__Envelope *env = raw_reply(f, fd);
	assert_non_null(env);
	assert_int_equal(env->call_id, id);
	assert_int_equal(env->status, STATUS_OK);
	criod__internal__envelope__free_unpacked(env, NULL);
}

static int open_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Capture what this process logs (stderr) in a file, at level warn. */
struct capture {
	int saved;
	char path[160];
	enum log_level level;
};

static void capture_start(struct fixture *f, struct capture *c)
{
	snprintf(c->path, sizeof(c->path), "%s/log", f->dir);
	int fd = open(c->path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	c->saved = dup(STDERR_FILENO);
	assert_true(c->saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	c->level = log_get_level();
	log_set_level(LOG_LEVEL_WARN);
}

static void capture_stop(struct capture *c)
{
	log_set_level(c->level);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
}

/* Lines of the capture holding all of the words (up to 3). */
static int capture_count(const struct capture *c, const char *w1, const char *w2)
{
	FILE *fp = fopen(c->path, "r");
	assert_non_null(fp);
	char line[1024];
	int n = 0;
	while (fgets(line, sizeof(line), fp))
		if (strstr(line, w1) && (!w2 || strstr(line, w2)))
			n++;
	fclose(fp);
	return n;
}

static void test_connections_per_uid_capped(void **state)
{
	struct fixture *f = *state;
	ipc_server_set_max_conns_per_uid(f->srv, 3);
	int fds[5];
	for (int i = 0; i < 5; i++) {
		fds[i] = raw_connect(f->path);
		pump(f, 10);
	}
	/* The two over the cap are closed at once: EOF, not a timeout. */
	assert_true(raw_closed(f, fds[3]));
	assert_true(raw_closed(f, fds[4]));
	/* The first three are served. */
	for (int i = 0; i < 3; i++)
		raw_ping_ok(f, fds[i], 100 + i);
	/* A closed one frees its slot. */
	close(fds[0]);
	pump(f, 20);
	int again = raw_connect(f->path);
	pump(f, 10);
	raw_ping_ok(f, again, 200);
	close(again);
	for (int i = 1; i < 5; i++)
		close(fds[i]);
}

static void test_fds_only_with_their_frame(void **state)
{
	struct fixture *f = *state;
	int base_fds = open_fd_count();
	int many[20];
	for (int i = 0; i < 20; i++) {
		many[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		assert_true(many[i] >= 0);
	}
	base_fds += 20;

	/* A frame that declares no fd, sent with one: closed, no handler, no reply. */
	int s = raw_connect(f->path);
	raw_send_frame(s, 1, 1, NULL, 0, 0, many, 1);
	assert_true(raw_closed(f, s));
	close(s);

	/* fds parked with a frame that never completes: at most IPC_MAX_FDS. */
	s = raw_connect(f->path);
	raw_send(s, "\x40", 1, many, 10);
	pump(f, 20);
	raw_send(s, "\x00", 1, many + 10, 10);
	assert_true(raw_closed(f, s));
	close(s);

	/* More than IPC_MAX_FDS in one message. */
	s = raw_connect(f->path);
	raw_send(s, "\x40", 1, many, IPC_MAX_FDS + 1);
	assert_true(raw_closed(f, s));
	close(s);

	/* fds while an oversized frame is being discarded belong to no frame. */
	s = raw_connect(f->path);
	/* 1 MiB: call 5, method 6, and enough of the rest to be answered. */
	uint8_t hdr[4 + 32] = {0x00, 0x00, 0x10, 0x00, 0x08, 0x05, 0x10, 0x06};
	raw_send(s, hdr, sizeof(hdr), NULL, 0);
	Criod__Internal__Envelope *env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->status, STATUS_RESOURCE_EXHAUSTED);
	criod__internal__envelope__free_unpacked(env, NULL);
	raw_send(s, "junk", 4, many, 1);
	assert_true(raw_closed(f, s));
	close(s);

	/* The right number, declared: served (ReadFd takes one). */
	s = raw_connect(f->path);
	char tmpl[] = "/tmp/criod-ipc-fd-XXXXXX";
	int tf = mkstemp(tmpl);
	assert_true(tf >= 0);
	unlink(tmpl);
	assert_int_equal(write(tf, "ok", 2), 2);
	raw_send_frame(s, 2, 9, NULL, 0, 1, &tf, 1);
	env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->status, STATUS_OK);
	criod__internal__envelope__free_unpacked(env, NULL);
	close(tf);
	close(s);
	pump(f, 20);

	/* The server kept none of them. */
	for (int i = 0; i < 20; i++)
		close(many[i]);
	assert_int_equal(open_fd_count(), base_fds - 20);
}

static void test_oversized_request_refused_before_decoding(void **state)
{
	struct fixture *f = *state;
	small_calls = 0;
	/* Through the client: over the method's cap, RESOURCE_EXHAUSTED naming both. */
	char big[SMALL_CAP + 100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	Criod__Internal__PingResponse q = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	q.component = big;
	struct result r = {0};
	assert_int_equal(ipc_client_call(f->cli, &m_small, NULL, &q.base, NULL, 0, 5000, on_reply, &r), 0);
	run_until(f, &r.done, 1);
	assert_int_equal(r.status, STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(r.message, "Small"));
	assert_non_null(strstr(r.message, "1024 bytes"));
	assert_int_equal(small_calls, 0);
	/* Under it: served. */
	big[900] = '\0';
	struct result r2 = {0};
	assert_int_equal(ipc_client_call(f->cli, &m_small, NULL, &q.base, NULL, 0, 5000, on_reply, &r2), 0);
	run_until(f, &r2.done, 1);
	assert_int_equal(r2.status, STATUS_OK);
	assert_int_equal(r2.pid, 900);
	assert_int_equal(small_calls, 1);

	/* A body that would not even decode: still RESOURCE_EXHAUSTED, so it
	 * was never decoded; a short one of the same bytes does not decode. */
	uint8_t junk[SMALL_CAP + 1];
	memset(junk, 0xff, sizeof(junk));
	int s = raw_connect(f->path);
	raw_send_frame(s, 6, 11, junk, sizeof(junk), 0, NULL, 0);
	Criod__Internal__Envelope *env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->call_id, 11);
	assert_int_equal(env->status, STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(env->message, "Small"));
	criod__internal__envelope__free_unpacked(env, NULL);
	raw_send_frame(s, 6, 12, junk, 100, 0, NULL, 0);
	env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->status, STATUS_INVALID_ARGUMENT);
	criod__internal__envelope__free_unpacked(env, NULL);

	/* A frame over what the server buffers at all (its largest cap plus
	 * the envelope): answered from its first bytes and discarded as it
	 * streams in; the connection goes on. */
	size_t max_frame = ipc_server_max_frame(f->srv);
	assert_int_equal(max_frame, IPC_KiB(64) + IPC_ENVELOPE_OVERHEAD);
	size_t len = 8u << 20;
	uint8_t hdr[4 + 32] = {len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >> 24, 0x08, 13, 0x10, 6};
	raw_send(s, hdr, sizeof(hdr), NULL, 0);
	env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->call_id, 13);
	assert_int_equal(env->status, STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(env->message, "Small"));
	criod__internal__envelope__free_unpacked(env, NULL);
	uint8_t *rest = calloc(1, len - 32);
	assert_non_null(rest);
	raw_send(s, rest, len - 32, NULL, 0);
	free(rest);
	raw_ping_ok(f, s, 14);
	close(s);
	assert_int_equal(small_calls, 1);

	/* Beyond even a client's frame limit: closed. */
	s = raw_connect(f->path);
	raw_send(s, "\xff\xff\xff\xff\x08\x01\x10\x01", 8, NULL, 0);
	assert_true(raw_closed(f, s));
	close(s);
}

/* Small bodies that would decode into a large heap: empty repeated
 * messages, unknown fields. Refused from the descriptor, never unpacked. */
static void test_decoded_size_bounded(void **state)
{
	struct fixture *f = *state;
	setup_calls = 0;
	size_t n = 60000;
	uint8_t *body = malloc(n);
	assert_non_null(body);
	/* port_mappings (field 5), empty, 30000 times: about 2 bytes each
	 * on the wire, well over 100 decoded. */
	for (size_t i = 0; i < n; i += 2) {
		body[i] = 0x2a;
		body[i + 1] = 0x00;
	}
	int s = raw_connect(f->path);
	raw_send_frame(s, 7, 21, body, n, 0, NULL, 0);
	Criod__Internal__Envelope *env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->status, STATUS_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(env->message, "Setup"));
	assert_non_null(strstr(env->message, "decoded"));
	criod__internal__envelope__free_unpacked(env, NULL);
	/* Unknown fields (field 15, varint 0). */
	for (size_t i = 0; i < n; i += 2) {
		body[i] = 0x78;
		body[i + 1] = 0x00;
	}
	raw_send_frame(s, 7, 22, body, n, 0, NULL, 0);
	env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->status, STATUS_RESOURCE_EXHAUSTED);
	criod__internal__envelope__free_unpacked(env, NULL);
	/* The envelope itself full of unknown fields: a malformed frame. */
	uint8_t frame[4 + 60000];
	size_t flen = sizeof(frame) - 4;
	frame[0] = flen & 0xff;
	frame[1] = (flen >> 8) & 0xff;
	frame[2] = (flen >> 16) & 0xff;
	frame[3] = 0;
	frame[4] = 0x08;
	frame[5] = 23;
	frame[6] = 0x10;
	frame[7] = 7;
	for (size_t i = 8; i < sizeof(frame); i += 2) {
		frame[i] = 0x78;
		frame[i + 1] = 0x00;
	}
	raw_send(s, frame, sizeof(frame), NULL, 0);
	assert_true(raw_closed(f, s));
	close(s);
	/* A real request with many mappings is served. */
	Criod__Internal__SetupPodNetworkRequest q = CRIOD__INTERNAL__SETUP_POD_NETWORK_REQUEST__INIT;
	Criod__Internal__PortMapping pm[200], *pms[200];
	for (int i = 0; i < 200; i++) {
		criod__internal__port_mapping__init(&pm[i]);
		pm[i].protocol = (char *)"tcp";
		pm[i].container_port = 1000 + i;
		pm[i].host_port = 2000 + i;
		pm[i].host_ip = (char *)"127.0.0.1";
		pms[i] = &pm[i];
	}
	q.pod_id = (char *)"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	q.n_port_mappings = 200;
	q.port_mappings = pms;
	size_t qlen = criod__internal__setup_pod_network_request__get_packed_size(&q);
	assert_true(qlen <= n);
	criod__internal__setup_pod_network_request__pack(&q, body);
	s = raw_connect(f->path);
	raw_send_frame(s, 7, 24, body, qlen, 0, NULL, 0);
	env = raw_reply(f, s);
	assert_non_null(env);
	assert_int_equal(env->status, STATUS_OK);
	criod__internal__envelope__free_unpacked(env, NULL);
	close(s);
	free(body);
	assert_int_equal(setup_calls, 1);
}

static long cpu_us(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000L + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

/* Out of fds, the server pauses accepting instead of spinning on a
 * listening socket that stays readable; it resumes once fds are free. In a
 * child, which lowers its own RLIMIT_NOFILE. */
static void test_accept_backs_off_when_out_of_fds(void **state)
{
	struct fixture *f = *state;
	char res_path[160];
	snprintf(res_path, sizeof(res_path), "%s/result", f->dir);
	struct capture cap;
	capture_start(f, &cap);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char sock[160];
		snprintf(sock, sizeof(sock), "%s/e.sock", f->dir);
		struct event_base *base = event_base_new();
		uid_t allowed[] = {getuid()};
		struct ipc_server *srv;
		if (!base || ipc_server_new(base, sock, 0600, allowed, 1, server_methods, 1, NULL, &srv) < 0)
			_exit(10);
		struct fixture cf = {.base = base};
		int peers[3];
		for (int i = 0; i < 3; i++) {
			peers[i] = raw_connect(sock);
			raw_send_frame(peers[i], 1, 1, NULL, 0, 0, NULL, 0);
		}
		/* Fill the fd table. */
		struct rlimit rl = {.rlim_cur = (rlim_t)open_fd_count() + 16, .rlim_max = 0};
		struct rlimit old;
		getrlimit(RLIMIT_NOFILE, &old);
		rl.rlim_max = old.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(11);
		int fill[64], nfill = 0;
		while (nfill < 64 && (fill[nfill] = dup(0)) >= 0)
			nfill++;
		if (errno != EMFILE)
			_exit(12);
		long cpu0 = cpu_us();
		pump(&cf, 300);
		long spent = cpu_us() - cpu0;
		/* Free fds: the peers are accepted and answered. */
		for (int i = 0; i < nfill; i++)
			close(fill[i]);
		int answered = 0;
		for (int t = 0; t < 300 && answered < 3; t++) {
			pump(&cf, 10);
			answered = 0;
			for (int i = 0; i < 3; i++) {
				struct pollfd p = {.fd = peers[i], .events = POLLIN};
				answered += poll(&p, 1, 0) > 0;
			}
		}
		FILE *rf = fopen(res_path, "w");
		if (!rf)
			_exit(13);
		fprintf(rf, "%ld %d\n", spent, answered);
		fclose(rf);
		ipc_server_free(srv);
		event_base_free(base);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	capture_stop(&cap);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	FILE *rf = fopen(res_path, "r");
	assert_non_null(rf);
	long spent = -1;
	int answered = -1;
	assert_int_equal(fscanf(rf, "%ld %d", &spent, &answered), 2);
	fclose(rf);
	unlink(res_path);
	/* 300 ms of a spinning loop would be ~300 ms of CPU and a log line per
	 * accept; a back-off of 100 then 200 ms is a few wake-ups. */
	int paused = capture_count(&cap, "msg=\"accept paused\"", "Too many open files");
	print_message("accept back-off: cpu %ld us in 300 ms, %d pause lines, %d peers answered\n", spent, paused,
		      answered);
	assert_true(spent < 60000);
	assert_true(paused >= 1 && paused <= 4);
	assert_true(capture_count(&cap, "msg=\"accept paused\"", "retry_ms=100") == 1);
	assert_int_equal(answered, 3);
	unlink(cap.path);
}

static void test_refusal_logs_rate_limited(void **state)
{
	struct fixture *f = *state;
	ipc_server_free(f->srv);
	uid_t allowed[] = {getuid() + 12345};
	assert_int_equal(ipc_server_new(f->base, f->path, 0600, allowed, 1, server_methods, 4, NULL, &f->srv), 0);
	struct capture cap;
	capture_start(f, &cap);
	/* 50 refusals at once (one accept callback): IPC_LOG_REFUSALS_PER_SEC lines. */
	int peers[50];
	for (int i = 0; i < 50; i++)
		peers[i] = raw_connect(f->path);
	pump(f, 20);
	for (int i = 0; i < 50; i++) {
		assert_true(raw_closed(f, peers[i]));
		close(peers[i]);
	}
	assert_int_equal(capture_count(&cap, "refused connection from unauthorized peer", NULL),
			 IPC_LOG_REFUSALS_PER_SEC);
	/* The next window says how many it left out, then logs again. */
	usleep(1100 * 1000);
	int s = raw_connect(f->path);
	assert_true(raw_closed(f, s));
	close(s);
	capture_stop(&cap);
	assert_int_equal(capture_count(&cap, "refused connection from unauthorized peer", NULL),
			 IPC_LOG_REFUSALS_PER_SEC + 1);
	char want[64];
	snprintf(want, sizeof(want), "suppressed=%d", 50 - IPC_LOG_REFUSALS_PER_SEC);
	assert_int_equal(capture_count(&cap, "msg=\"ipc refusals not logged\" reason=peer", want), 1);
	unlink(cap.path);
}

/* ---- blocking calls over a socket pair ---- */

enum sync_mode { SYNC_ECHO_FD, SYNC_WRONG_ID, SYNC_REFUSE, SYNC_SLOW };
struct sync_server {
	int fd;
	enum sync_mode mode;
};

/* Answer one Ping: the component is what the passed fd holds. */
static void *sync_serve_one(void *arg)
{
	struct sync_server *sv = arg;
	void *e;
	int fds[IPC_MAX_FDS];
	size_t nfds;
	if (ipc_sync_recv(sv->fd, &e, fds, &nfds) < 0)
		return NULL;
	Criod__Internal__Envelope *env = e;
	char buf[64] = "";
	if (nfds == 1) {
		ssize_t n = pread(fds[0], buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		close(fds[0]);
	}
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	r.component = buf;
	if (sv->mode == SYNC_SLOW)
		usleep(300 * 1000);
	uint64_t id = sv->mode == SYNC_WRONG_ID ? env->call_id + 1 : env->call_id;
	if (sv->mode == SYNC_REFUSE)
		ipc_sync_send(sv->fd, id, env->method, NULL, STATUS_INVALID_ARGUMENT, "no such thing", NULL, NULL, 0);
	else
		ipc_sync_send(sv->fd, id, env->method, env->request_id, 0, NULL, &r.base, NULL, 0);
	criod__internal__envelope__free_unpacked(env, NULL);
	return NULL;
}

static int sync_ping_wait(enum sync_mode mode, int pass_fd, const struct ipc_sync_wait *wait, char *component,
			  char *err, size_t errlen)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct sync_server srv = {.fd = sv[1], .mode = mode};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, sync_serve_one, &srv), 0);
	Criod__Internal__PingRequest q = CRIOD__INTERNAL__PING_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	int r = ipc_sync_call(sv[0], API_IMAGED(IMAGED_PING), "req-1", &q.base, pass_fd >= 0 ? &pass_fd : NULL,
			      pass_fd >= 0 ? 1 : 0, wait, &resp, err, errlen);
	pthread_join(th, NULL);
	if (r == 0) {
		snprintf(component, 64, "%s", ((Criod__Internal__PingResponse *)resp)->component);
		protobuf_c_message_free_unpacked(resp, NULL);
	}
	close(sv[0]);
	close(sv[1]);
	return r;
}

static int sync_ping(enum sync_mode mode, int pass_fd, char *component, char *err, size_t errlen)
{
	return sync_ping_wait(mode, pass_fd, NULL, component, err, errlen);
}

struct idle_count {
	int calls;
	int give_up_after; /* 0: never */
};

static int count_idle(void *ud)
{
	struct idle_count *c = ud;
	c->calls++;
	return c->give_up_after && c->calls >= c->give_up_after ? -ETIMEDOUT : 0;
}

/* A slow peer: the idle hook runs while the reply is awaited, and the
 * reply still arrives when it says wait on. */
static void test_sync_call_idle_hook_waits_on(void **state)
{
	struct idle_count c = {0};
	struct ipc_sync_wait w = {.idle_ms = 20, .idle = count_idle, .ud = &c};
	char comp[64] = "", err[256] = "";
	assert_int_equal(sync_ping_wait(SYNC_SLOW, -1, &w, comp, err, sizeof(err)), 0);
	assert_true(c.calls >= 3);
}

/* A silent peer: the hook's error ends the call, which names the method. */
static void test_sync_call_idle_hook_gives_up(void **state)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct idle_count c = {.give_up_after = 3};
	struct ipc_sync_wait w = {.idle_ms = 10, .idle = count_idle, .ud = &c};
	Criod__Internal__PingRequest q = CRIOD__INTERNAL__PING_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	char err[256] = "";
	assert_int_equal(ipc_sync_call(sv[0], API_IMAGED(IMAGED_PING), NULL, &q.base, NULL, 0, &w, &resp, err, sizeof(err)),
			 -ETIMEDOUT);
	assert_null(resp);
	assert_int_equal(c.calls, 3);
	assert_non_null(strstr(err, "no reply to"));
	close(sv[0]);
	close(sv[1]);
}

static void test_sync_call_passes_fds(void **state)
{
	char path[] = "/tmp/criod-ipc-sync-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, "through the socket", 18), 18);
	char comp[64] = "", err[256] = "";
	assert_int_equal(sync_ping(SYNC_ECHO_FD, fd, comp, err, sizeof(err)), 0);
	assert_string_equal(comp, "through the socket");
	close(fd);
}

static void test_sync_call_wrong_reply_or_refusal(void **state)
{
	char comp[64] = "", err[256] = "";
	assert_int_equal(sync_ping(SYNC_WRONG_ID, -1, comp, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "another call"));
	assert_int_equal(sync_ping(SYNC_REFUSE, -1, comp, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "no such thing"));
}

static void test_sync_recv_bad_frames(void **state)
{
	int sv[2];
	void *e;
	int fds[IPC_MAX_FDS];
	size_t nfds;
	/* The peer closed between frames. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	assert_int_equal(ipc_sync_recv(sv[0], &e, fds, &nfds), -EPIPE);
	close(sv[0]);
	/* A length beyond the frame limit. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], "\xff\xff\xff\xff", 4), 4);
	assert_int_equal(ipc_sync_recv(sv[0], &e, fds, &nfds), -EPROTO);
	close(sv[0]);
	close(sv[1]);
	/* A frame cut short. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], "\x0a\x00\x00\x00\x08\x01", 6), 6);
	close(sv[1]);
	assert_int_equal(ipc_sync_recv(sv[0], &e, fds, &nfds), -EPROTO);
	close(sv[0]);
	/* Bytes that are no envelope. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[1], "\x03\x00\x00\x00\xff\xff\xff", 7), 7);
	assert_int_equal(ipc_sync_recv(sv[0], &e, fds, &nfds), -EPROTO);
	close(sv[0]);
	close(sv[1]);
	/* The peer is gone before the call. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	Criod__Internal__PingRequest q = CRIOD__INTERNAL__PING_REQUEST__INIT;
	ProtobufCMessage *resp = NULL;
	char err[256];
	assert_int_equal(ipc_sync_call(sv[0], API_IMAGED(IMAGED_PING), NULL, &q.base, NULL, 0, NULL, &resp, err, sizeof(err)),
			 -EPIPE);
	assert_null(resp);
	close(sv[0]);
}

/* A frame's header and its call id and method, with nothing more: len is
 * what it declares. */
static void raw_send_partial(int fd, uint32_t len, uint8_t call_id, uint8_t method, size_t extra)
{
	uint8_t buf[4 + 64] = {len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >> 24, 0x08, call_id, 0x10,
			       method};
	assert_true(extra <= 64);
	raw_send(fd, buf, 4 + extra, NULL, 0);
}

static void env_status_is(struct fixture *f, int fd, uint64_t call_id, int status, const char *in_message)
{
	Criod__Internal__Envelope *env = raw_reply(f, fd);
	assert_non_null(env);
	assert_int_equal(env->call_id, call_id);
	assert_int_equal(env->status, status);
	if (in_message && !strstr(env->message, in_message))
		fail_msg("\"%s\" is not in \"%s\"", in_message, env->message);
	criod__internal__envelope__free_unpacked(env, NULL);
}

/* Whether the server has closed fd by now (without running the loop). */
static bool raw_closed_now(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 0) <= 0)
		return false;
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void test_frame_timeout_closes_stalled_frames(void **state)
{
	struct fixture *f = *state;
	ipc_server_set_frame_timeout(f->srv, 300);
	struct capture cap;
	capture_start(f, &cap);
	int idle = raw_connect(f->path);
	int stalled = raw_connect(f->path);       /* a frame's first 10 bytes, then nothing */
	int half_header = raw_connect(f->path);   /* 2 bytes of a length */
	int trickle = raw_connect(f->path);       /* a byte now and then: the bound is on the whole frame */
	int discarding = raw_connect(f->path);    /* an oversized frame being discarded */
	int busy = raw_connect(f->path);          /* whole frames, one every 100 ms */
	raw_send_partial(stalled, 100, 1, 1, 6);
	raw_send(half_header, "\x10\x00", 2, NULL, 0);
	raw_send_partial(trickle, 1000, 2, 1, 4);
	raw_send_partial(discarding, 8u << 20, 3, 6, 32);
	Criod__Internal__Envelope *env = raw_reply(f, discarding);
	assert_non_null(env);
	assert_int_equal(env->status, STATUS_RESOURCE_EXHAUSTED);
	criod__internal__envelope__free_unpacked(env, NULL);
	for (int i = 0; i < 2; i++) {
		pump(f, 100);
		raw_send(trickle, "x", 1, NULL, 0);
		raw_ping_ok(f, busy, 10 + i);
	}
	/* ~200 ms in: all still open. */
	assert_false(raw_closed_now(stalled));
	assert_false(raw_closed_now(trickle));
	for (int i = 0; i < 3; i++) {
		pump(f, 100);
		raw_ping_ok(f, busy, 20 + i);
	}
	/* Past the bound: every connection holding part of a frame is closed... */
	assert_true(raw_closed(f, stalled));
	assert_true(raw_closed(f, half_header));
	assert_true(raw_closed(f, trickle));
	assert_true(raw_closed(f, discarding));
	/* ...the ones between frames are not, however long they wait. */
	raw_ping_ok(f, idle, 30);
	raw_ping_ok(f, busy, 31);
	capture_stop(&cap);
	assert_int_equal(capture_count(&cap, "msg=\"ipc frame not completed in time, closing\"", "timeout_ms=300"), 4);
	char want[64];
	snprintf(want, sizeof(want), "peer_uid=%u peer_pid=%d bytes=10 frame_bytes=100 ", (unsigned)getuid(),
		 (int)getpid());
	assert_int_equal(capture_count(&cap, "ipc frame not completed in time", want), 1);
	assert_int_equal(capture_count(&cap, "ipc frame not completed in time", "bytes=2 frame_bytes=0 "), 1);
	unlink(cap.path);
	/* A deadline that passed while the server's loop was busy (a slow
	 * handler) is the server's fault: the frame gets a new bound. */
	int slow = raw_connect(f->path);
	pump(f, 10);
	uint8_t ping[64];
	Criod__Internal__Envelope pe = CRIOD__INTERNAL__ENVELOPE__INIT;
	pe.call_id = 50;
	pe.method = 1;
	size_t plen = criod__internal__envelope__get_packed_size(&pe);
	ping[0] = (uint8_t)plen;
	ping[1] = ping[2] = ping[3] = 0;
	criod__internal__envelope__pack(&pe, ping + 4);
	raw_send(slow, ping, 3, NULL, 0);
	pump(f, 10);
	usleep(1500 * 1000); /* the loop does not run */
	pump(f, 10);         /* the deadline fires, 1.2 s late */
	assert_false(raw_closed_now(slow));
	raw_send(slow, ping + 3, 4 + plen - 3, NULL, 0);
	env_status_is(f, slow, 50, STATUS_OK, NULL);
	close(slow);
	close(idle);
	close(stalled);
	close(half_header);
	close(trickle);
	close(discarding);
	close(busy);
	pump(f, 10);
	assert_int_equal(ipc_server_buffered(f->srv), 0);
}

/* A Setup request (method 7, cap 64 KiB) whose frame is over one
 * connection's own buffer. */
static void raw_send_big_setup(int fd, uint64_t call_id)
{
	size_t n = IPC_KiB(64) - 8;
	uint8_t *body = malloc(n);
	assert_non_null(body);
	body[0] = 0x0a; /* pod_id, n - 4 bytes */
	body[1] = (uint8_t)(((n - 4) & 0x7f) | 0x80);
	body[2] = (uint8_t)((((n - 4) >> 7) & 0x7f) | 0x80);
	body[3] = (uint8_t)((n - 4) >> 14);
	memset(body + 4, 'a', n - 4);
	raw_send_frame(fd, 7, call_id, body, n, 0, NULL, 0);
	free(body);
}

static void test_partial_frames_share_a_budget(void **state)
{
	struct fixture *f = *state;
	/* Frames of 68000 bytes (under the server's max_frame): each takes
	 * 68004 - IPC_READ_BUFFER of the budget; it has room for two. */
	const size_t each = 68004 - IPC_READ_BUFFER;
	ipc_server_set_max_buffered(f->srv, 2 * each);
	setup_calls = 0;
	struct capture cap;
	capture_start(f, &cap);
	int a = raw_connect(f->path), b = raw_connect(f->path), c = raw_connect(f->path);
	raw_send_partial(a, 68000, 1, 7, 32);
	raw_send_partial(b, 68000, 2, 7, 4);
	pump(f, 20);
	assert_int_equal(ipc_server_buffered(f->srv), 2 * each);
	/* The next large one is answered from its first bytes and discarded;
	 * its connection goes on, and small frames still fit a connection's
	 * own buffer. */
	raw_send_big_setup(c, 3);
	env_status_is(f, c, 3, STATUS_RESOURCE_EXHAUSTED, "limit of 4936 bytes");
	assert_int_equal(setup_calls, 0);
	assert_int_equal(ipc_server_buffered(f->srv), 2 * each);
	raw_ping_ok(f, c, 4);
	/* One of the holders goes: the same request is served. */
	close(a);
	pump(f, 20);
	assert_int_equal(ipc_server_buffered(f->srv), each);
	raw_send_big_setup(c, 5);
	env_status_is(f, c, 5, STATUS_OK, NULL);
	assert_int_equal(setup_calls, 1);
	/* A holder that completes its frame gives its share back: the rest of
	 * it is a body of 67992 bytes, over Setup's cap. */
	size_t rest = 68000 - 4;
	uint8_t *tail = calloc(1, rest);
	assert_non_null(tail);
	memcpy(tail, "\x32\x98\x93\x04", 4);
	raw_send(b, tail, rest, NULL, 0);
	free(tail);
	env_status_is(f, b, 2, STATUS_RESOURCE_EXHAUSTED, "Setup: a request of 67992 bytes is over the limit of 65536");
	assert_int_equal(ipc_server_buffered(f->srv), 0);
	raw_ping_ok(f, b, 6);
	capture_stop(&cap);
	assert_int_equal(capture_count(&cap, "msg=\"refused request: ipc buffer limit reached\" method=Setup", NULL), 1);
	assert_int_equal(capture_count(&cap, "ipc buffer limit reached", "buffered=4936 limit=4936"), 1);
	unlink(cap.path);
	close(b);
	close(c);
}

int main(void)
{
	log_init("test");
	log_set_level(LOG_LEVEL_ERROR);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ping_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_calls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_passing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reply_carries_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_fds_and_unknown_method, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline_and_late_reply_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_gone_then_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unauthorized_peer_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_replaced_other_file_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_free_completes_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connections_per_uid_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fds_only_with_their_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversized_request_refused_before_decoding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decoded_size_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_backs_off_when_out_of_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_logs_rate_limited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_timeout_closes_stalled_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_frames_share_a_budget, setup, teardown),
		cmocka_unit_test(test_frame_encode),
		cmocka_unit_test(test_sync_call_passes_fds),
		cmocka_unit_test(test_sync_call_wrong_reply_or_refusal),
		cmocka_unit_test(test_sync_recv_bad_frames),
		cmocka_unit_test(test_sync_call_idle_hook_waits_on),
		cmocka_unit_test(test_sync_call_idle_hook_gives_up),
	};
	return cmocka_run_group_tests_name("ipc", tests, NULL, NULL);
}
