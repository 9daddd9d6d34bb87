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
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "internal/envelope.pb-c.h"
#include "ipc.h"
#include "log.h"
#include "status.h"

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

#define PING_DESC &criod__internal__ping_request__descriptor, &criod__internal__ping_response__descriptor

static const struct ipc_method server_methods[] = {
	{1, "Ping", PING_DESC, 0, h_ping},
	{2, "ReadFd", PING_DESC, 1, h_readfd},
	{3, "Fail", PING_DESC, 0, h_fail},
	{4, "Never", PING_DESC, 0, h_never},
	{5, "GiveFd", PING_DESC, 0, h_givefd},
};
static const struct ipc_method m_ping = {1, "Ping", PING_DESC, 0, NULL};
static const struct ipc_method m_readfd = {2, "ReadFd", PING_DESC, 1, NULL};
static const struct ipc_method m_fail = {3, "Fail", PING_DESC, 0, NULL};
static const struct ipc_method m_never = {4, "Never", PING_DESC, 0, NULL};
static const struct ipc_method m_givefd = {5, "GiveFd", PING_DESC, 0, NULL};
static const struct ipc_method m_unknown = {99, "Unknown", PING_DESC, 0, NULL};
static const struct ipc_method m_ping_2fds = {1, "Ping", PING_DESC, 2, NULL};

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
	int r = ipc_sync_call(sv[0], &imaged_ping_method, "req-1", &q.base, pass_fd >= 0 ? &pass_fd : NULL,
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
	assert_int_equal(ipc_sync_call(sv[0], &imaged_ping_method, NULL, &q.base, NULL, 0, &w, &resp, err, sizeof(err)),
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
	assert_int_equal(ipc_sync_call(sv[0], &imaged_ping_method, NULL, &q.base, NULL, 0, NULL, &resp, err, sizeof(err)),
			 -EPIPE);
	assert_null(resp);
	close(sv[0]);
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
		cmocka_unit_test(test_frame_encode),
		cmocka_unit_test(test_sync_call_passes_fds),
		cmocka_unit_test(test_sync_call_wrong_reply_or_refusal),
		cmocka_unit_test(test_sync_recv_bad_frames),
		cmocka_unit_test(test_sync_call_idle_hook_waits_on),
		cmocka_unit_test(test_sync_call_idle_hook_gives_up),
	};
	return cmocka_run_group_tests_name("ipc", tests, NULL, NULL);
}
