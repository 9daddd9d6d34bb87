/* The standby conmon's message (conmon_standby.h): packed by the
 * launcher, received by the standby. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conmon_standby.h"
#include "macro.h"
#include "util.h"

int standby_pack(const char *const *argv, char *buf, size_t size)
{
	size_t n = 0, k = 0;

	if (!argv || !argv[0])
		return -EINVAL;
	for (; argv[k]; k++) {
		size_t len = strlen(argv[k]) + 1;
		if (k + 1 >= STANDBY_ARGC_MAX || len > size - n)
			return -E2BIG;
		memcpy(buf + n, argv[k], len);
		n += len;
	}
	return (int)n;
}

int standby_unpack(char *buf, size_t n, char **argv, size_t max)
{
	size_t k = 0;

	if (n == 0 || buf[n - 1] != '\0' || max < 2)
		return -EINVAL;
	for (size_t off = 0; off < n;) {
		size_t len = strlen(buf + off);
		if (len == 0)
			return -EINVAL;
		if (k + 1 >= max)
			return -E2BIG;
		argv[k++] = buf + off;
		off += len + 1;
	}
	argv[k] = NULL;
	return (int)k;
}

/* Write the new command line over the old one's strings (contiguous from
 * argv[0]), the rest of that area zeroed; left as it was if it does not
 * fit (the launcher pads the standby's so that it always does). */
static void retitle(int argc, char **argv, const char *buf, size_t n)
{
	char *start = argv[0], *end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;

	if (n > (size_t)(end - start))
		return;
	memcpy(start, buf, n);
	memset(start + n, 0, (size_t)(end - start) - n);
}

int standby_receive(int argc, char **argv, int *nargc, char ***nargv)
{
	static char buf[STANDBY_ARGV_MAX];
	union {
		char b[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof(u.b)};
	int fds[3] = {-1, -1, -1};
	ssize_t n;

	do
		n = recvmsg(STANDBY_FD, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	size_t nfds = msg_take_fds(&mh, fds, ARRAY_SIZE(fds));
	int r = 0;
	if (n == 0 && nfds == 0)
		r = -ECONNRESET;
	else if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfds != 2)
		r = -EBADMSG;
	static char copy[STANDBY_ARGV_MAX]; /* conmon's argv from now on */
	static char *v[STANDBY_ARGC_MAX];
	int k = 0;
	if (r >= 0) {
		memcpy(copy, buf, (size_t)n);
		k = standby_unpack(copy, (size_t)n, v, STANDBY_ARGC_MAX);
		if (k < 0)
			r = k == -E2BIG ? -E2BIG : -EBADMSG;
	}
	/* The log onto 1 and 2, the sync pipe onto 3 (which closes the socket). */
	if (r >= 0 && (dup2(fds[0], STDOUT_FILENO) < 0 || dup2(fds[0], STDERR_FILENO) < 0 ||
		       dup2(fds[1], STANDBY_FD) < 0))
		r = -errno;
	for (size_t i = 0; i < nfds && i < ARRAY_SIZE(fds); i++)
		if (fds[i] > STANDBY_FD)
			close(fds[i]);
	if (r < 0)
		return r;
	retitle(argc, argv, buf, (size_t)n);
	*nargc = k;
	*nargv = v;
	return 0;
}
