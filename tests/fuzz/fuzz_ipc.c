/* The internal RPC (common/ipc.c): frames and envelopes as a hostile peer
 * sends them. The input is the byte stream of one connection (4-byte
 * little-endian lengths, then envelopes); its first byte says how many
 * file descriptors (0-3, low two bits) go with the first write, and the
 * write size (1 << (bits 2-5)) bytes at a time, so frames straddle reads.
 *
 * The stream goes, over a real unix socket, into a real ipc_server whose
 * table has the shape of a root daemon's (imaged's methods, ids and byte
 * limits, and one method that takes fds, as spawnd's do); its handlers
 * answer at once, the way a daemon refuses a request. The same stream then
 * goes through the blocking receiver (ipc_sync_recv, imaged's side of its
 * fetch helper) frame by frame. Every descriptor is accounted for: none may
 * leak into the harness (checked after each input). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "api.h"
#include "fuzz.h"
#include "internal/envelope.pb-c.h"
#include "internal/imaged.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "ipc.h"
#include "status.h"

static struct event_base *base;
static struct ipc_server *srv;
static char dir[64], sock[128];
static int n_calls;

static void handler(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud);

#define M(id, name, req, resp, fds, max) {id, name, &criod__internal__##req##__descriptor, \
					  &criod__internal__##resp##__descriptor, fds, handler, max}
static const struct ipc_method methods[] = {
	M(IMAGED_PING, "Ping", ping_request, ping_response, 0, IPC_KiB(64)),
	M(IMAGED_PULL, "Pull", pull_request, pull_response, 0, IPC_KiB(256)),
	M(IMAGED_LIST, "ListImages", list_images_request, list_images_response, 0, IPC_KiB(64)),
	M(IMAGED_STATUS, "ImageStatus", image_status_request, image_status_response, 0, IPC_KiB(64)),
	M(IMAGED_REMOVE, "RemoveImage", remove_image_request, remove_image_response, 0, IPC_KiB(64)),
	M(IMAGED_FS_INFO, "ImageFsInfo", image_fs_info_request, image_fs_info_response, 0, IPC_KiB(64)),
	M(IMAGED_MOUNT_ROOTFS, "MountRootfs", mount_rootfs_request, mount_rootfs_response, 0, IPC_KiB(64)),
	M(IMAGED_UNMOUNT_ROOTFS, "UnmountRootfs", unmount_rootfs_request, unmount_rootfs_response, 0, IPC_KiB(64)),
	M(IMAGED_ROOTFS_USAGE, "RootfsUsage", rootfs_usage_request, rootfs_usage_response, 0, IPC_KiB(64)),
	/* spawnd's CreateContainer shape: a large body and descriptors */
	M(100, "CreateContainer", create_container_request, create_container_response, 2, IPC_KiB(1024)),
};

static void handler(struct ipc_call *call, const ProtobufCMessage *req, int *fds, size_t nfds, void *ud _unused_)
{
	n_calls++;
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	/* touch every decoded byte, as a handler's checks would */
	size_t n = protobuf_c_message_get_packed_size(req);
	if (n > IPC_MiB(2))
		abort();
	if (n_calls & 1) {
		ipc_call_fail(call, STATUS_INVALID_ARGUMENT, "refused by the fuzz handler (%zu bytes)", n);
		return;
	}
	Criod__Internal__PingResponse r = CRIOD__INTERNAL__PING_RESPONSE__INIT;
	r.component = (char *)"fuzz";
	r.version = (char *)ipc_call_request_id(call);
	/* any message: the reply's body is opaque to the framing */
	ipc_call_reply(call, &r.base, NULL, 0);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		abort();
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void cleanup(void)
{
	ipc_server_free(srv);
	event_base_free(base);
	unlink(sock);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_ipc");
	snprintf(dir, sizeof(dir), "/tmp/fuzz_ipc.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	base = event_base_new();
	uid_t allowed[] = {getuid()};
	if (!base || ipc_server_new(base, sock, 0600, allowed, 1, methods, sizeof(methods) / sizeof(methods[0]), NULL,
				    &srv) < 0)
		abort();
	/* no frame may wait for its end: the harness closes its side instead */
	atexit(cleanup);
	return 0;
}

static int send_some(int fd, const uint8_t *p, size_t n, int nfds)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	int fds[3];
	for (int i = 0; i < nfds; i++)
		if ((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
			abort();
	if (nfds) {
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return w < 0 ? -errno : (int)w;
}

/* Into the server: write, pump the loop, drain the replies, until the
 * server has closed the connection or taken everything and seen our EOF. */
static void run_server(const uint8_t *p, size_t n, int nfds, size_t chunk)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, sock);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		abort();
	size_t off = 0;
	bool eof_sent = false, closed = false;
	for (int idle = 0; !closed;) {
		if (idle > 1000) {
			fprintf(stderr, "the server neither read nor closed the connection\n");
			abort();
		}
		if (off < n) {
			size_t k = n - off < chunk ? n - off : chunk;
			int w = send_some(c, p + off, k, off == 0 ? nfds : 0);
			if (w > 0)
				off += (size_t)w;
			else if (w != -EAGAIN && w != -EPIPE && w != -ECONNRESET)
				abort();
			else if (w != -EAGAIN)
				off = n; /* the server closed: nothing more goes in */
		} else if (!eof_sent) {
			shutdown(c, SHUT_WR);
			eof_sent = true;
		} else {
			idle++;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		char buf[65536];
		for (;;) {
			ssize_t r = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
			if (r > 0)
				continue;
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				closed = true;
			break;
		}
	}
	close(c);
	/* let the server notice and free the connection */
	for (int i = 0; i < 4; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

/* Through the blocking receiver, frame by frame, until it refuses. */
static void run_sync(const uint8_t *p, size_t n, int nfds)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
		abort();
	size_t off = 0;
	/* the stream fits the socket buffer in one go for most inputs; larger
	 * ones are cut (the sync receiver reads one frame at a time) */
	int w = send_some(sv[0], p, n < 100000 ? n : 100000, nfds);
	if (w > 0)
		off = (size_t)w;
	(void)off;
	shutdown(sv[0], SHUT_WR);
	for (int frames = 0; frames < 1000; frames++) {
		void *env = NULL;
		int fds[IPC_MAX_FDS];
		size_t got = 0;
		int r = ipc_sync_recv(sv[1], &env, fds, &got);
		if (r < 0) {
			if (got)
				abort(); /* documented: fds closed on failure */
			break;
		}
		for (size_t i = 0; i < got; i++)
			close(fds[i]);
		criod__internal__envelope__free_unpacked(env, NULL);
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (2u << 20))
		return -1;
	int before = count_fds();
	int nfds = data[0] & 3;
	size_t chunk = (size_t)1 << (((data[0] >> 2) & 15) + 1);
	run_server(data + 1, size - 1, nfds, chunk);
	run_sync(data + 1, size - 1, nfds);
	int after = count_fds();
	if (after != before) {
		fprintf(stderr, "FINDING: %d file descriptors before the input, %d after\n", before, after);
		abort();
	}
	return 0;
}
