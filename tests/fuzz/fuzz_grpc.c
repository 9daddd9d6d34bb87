/* criod's HTTP/2 and gRPC framing (criod/grpc.c): the bytes a client sends
 * on the CRI socket, after the connection preface (which the harness adds),
 * into a real grpc_server on a real unix socket, routed by the real CRI
 * method table (every RPC of runtime.v1.RuntimeService and ImageService,
 * paths, request types and streaming flags from the protobuf descriptors,
 * as cri_build_methods makes it). The handlers stand in for criod's: in
 * turn they answer at once, fail, hold the call and complete it later from
 * the loop (so streams close, reset and time out under held calls, and
 * cancel callbacks run), or stream messages. After each input the harness
 * closes its side and runs the loop until the server has freed the
 * connection and every held call is completed: a call left behind is a
 * finding, as is any sanitizer report. Server output is read and dropped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "cri/api.pb-c.h"
#include "fuzz.h"
#include "grpc.h"
#include "status.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static struct event_base *base;
static struct grpc_server *srv;
static char dir[64], sock[128];
static struct grpc_method *methods;
static const ProtobufCMessageDescriptor **outputs;
static size_t n_methods;
static unsigned n_calls;

/* held calls */
#define MAX_HELD 4096
static struct grpc_call *held[MAX_HELD];
static size_t n_held;
static struct event *complete_ev;

static const ProtobufCMessageDescriptor *output_of(const char *path)
{
	for (size_t i = 0; i < n_methods; i++)
		if (strcmp(methods[i].path, path) == 0)
			return outputs[i];
	return NULL;
}

static void reply_empty(struct grpc_call *call)
{
	const ProtobufCMessageDescriptor *d = output_of(grpc_call_method(call));
	if (!d) {
		grpc_call_finish(call, STATUS_INTERNAL, "no such method");
		return;
	}
	ProtobufCMessage *m = calloc(1, d->sizeof_message);
	if (!m)
		abort();
	protobuf_c_message_init(d, m);
	grpc_call_reply(call, m);
	free(m);
}

static void complete(struct grpc_call *call, unsigned how)
{
	if (how % 3 == 0) {
		reply_empty(call);
	} else if (how % 3 == 1) {
		/* a streaming reply: messages, then the status */
		const ProtobufCMessageDescriptor *d = output_of(grpc_call_method(call));
		ProtobufCMessage *m = d ? calloc(1, d->sizeof_message) : NULL;
		if (m) {
			protobuf_c_message_init(d, m);
			for (int i = 0; i < 3 && !grpc_call_cancelled(call); i++)
				(void)grpc_call_send(call, m);
		}
		free(m);
		grpc_call_finish(call, STATUS_OK, "");
	} else {
		grpc_call_finish(call, STATUS_INVALID_ARGUMENT, "refused by the fuzz handler: \"%s\" \x01 %%",
				 grpc_call_request_id(call));
	}
}

static void complete_held_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg _unused_)
{
	/* complete the oldest half: the rest wait for another turn */
	size_t n = (n_held + 1) / 2;
	for (size_t i = 0; i < n; i++)
		complete(held[i], n_calls + (unsigned)i);
	memmove(held, held + n, (n_held - n) * sizeof(held[0]));
	n_held -= n;
	if (n_held)
		event_active(complete_ev, EV_TIMEOUT, 0);
}

static void cancelled(struct grpc_call *call _unused_, void *ud _unused_)
{
	/* the handler must still complete it: from the loop, as criod does */
	if (!event_pending(complete_ev, EV_TIMEOUT, NULL))
		event_active(complete_ev, EV_TIMEOUT, 0);
}

static void handler(struct grpc_call *call, const ProtobufCMessage *req, void *ud _unused_)
{
	unsigned k = n_calls++;
	(void)grpc_call_deadline_ns(call);
	(void)grpc_call_request_id(call);
	if (req)
		(void)protobuf_c_message_get_packed_size(req);
	if (k % 4 == 3 && n_held < MAX_HELD) {
		grpc_call_set_cancel(call, cancelled, NULL);
		held[n_held++] = call;
		event_active(complete_ev, EV_TIMEOUT, 0);
		return;
	}
	complete(call, k);
}

static void cleanup(void)
{
	grpc_server_free(srv);
	event_free(complete_ev);
	event_base_free(base);
	unlink(sock);
	rmdir(dir);
	for (size_t i = 0; i < n_methods; i++)
		free((char *)methods[i].path);
	free(methods);
	free(outputs);
}

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	static const ProtobufCServiceDescriptor *const services[] = {
		&runtime__v1__runtime_service__descriptor,
		&runtime__v1__image_service__descriptor,
	};
	fuzz_quiet_logs("fuzz_grpc");
	for (size_t s = 0; s < 2; s++)
		n_methods += services[s]->n_methods;
	methods = calloc(n_methods, sizeof(*methods));
	outputs = calloc(n_methods, sizeof(*outputs));
	if (!methods || !outputs)
		abort();
	size_t k = 0;
	for (size_t s = 0; s < 2; s++)
		for (unsigned i = 0; i < services[s]->n_methods; i++, k++) {
			const ProtobufCMethodDescriptor *md = &services[s]->methods[i];
			char *path;
			if (asprintf(&path, "/%s/%s", services[s]->name, md->name) < 0)
				abort();
			methods[k].path = path;
			methods[k].request = md->input;
			/* criod has no handler for a few: answered UNIMPLEMENTED */
			methods[k].handler = i % 7 == 6 ? NULL : handler;
			methods[k].server_streaming =
				strcmp(md->name, "GetContainerEvents") == 0 || strncmp(md->name, "Stream", 6) == 0;
			outputs[k] = md->output;
		}

	snprintf(dir, sizeof(dir), "/tmp/fuzz_grpc.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(sock, sizeof(sock), "%s/cri.sock", dir);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, sock);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0)
		abort();
	base = event_base_new();
	complete_ev = base ? event_new(base, -1, 0, complete_held_cb, NULL) : NULL;
	/* small limits, so that the fuzzer reaches them */
	struct grpc_server_opts opts = {.max_msg_size = 65536, .max_streams = 100, .max_conns = 4};
	if (!complete_ev || grpc_server_new(base, lfd, &opts, methods, n_methods, NULL, &srv) < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static int send_some(int fd, const uint8_t *p, size_t n)
{
	ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	return w < 0 ? -errno : (int)w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return -1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, sock);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	uint8_t *in = malloc(sizeof(preface) - 1 + size);
	if (!in)
		abort();
	memcpy(in, preface, sizeof(preface) - 1);
	memcpy(in + sizeof(preface) - 1, data, size);
	size_t n = sizeof(preface) - 1 + size, off = 0;
	bool eof_sent = false, closed = false;
	for (int idle = 0; !closed || n_held;) {
		if (idle > 10000) {
			fprintf(stderr, "FINDING: the server neither closed the connection nor let go of %zu held calls\n",
				n_held);
			abort();
		}
		if (off < n && !closed) {
			int w = send_some(c, in + off, n - off);
			if (w > 0)
				off += (size_t)w;
			else if (w == -EPIPE || w == -ECONNRESET)
				off = n;
			else if (w != -EAGAIN)
				abort();
		} else if (!eof_sent) {
			shutdown(c, SHUT_WR);
			eof_sent = true;
		} else {
			idle++;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		char buf[65536];
		while (!closed) {
			ssize_t r = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
			if (r > 0)
				continue;
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				closed = true;
			break;
		}
	}
	close(c);
	free(in);
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	return 0;
}
