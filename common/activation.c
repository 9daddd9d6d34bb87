/* systemd socket activation; see activation.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "activation.h"
#include "log.h"
#include "macro.h"

/* The environment's decimal value of name, or -1 if absent or not a number. */
static long env_number(const char *name)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 0)
		return -1;
	return v;
}

int activation_listen_fd(int *fd, char *path, size_t len)
{
	long pid = env_number("LISTEN_PID"), n = env_number("LISTEN_FDS");
	bool present = getenv("LISTEN_PID") != NULL;
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);
	int v, flags;
	socklen_t vl;

	*fd = -1;
	if (path && len)
		path[0] = '\0';
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (!present || pid != (long)getpid())
		return 0; /* not for us: systemd sets LISTEN_PID to the process it execs */
	if (n != 1)
		return log_error_errno(EINVAL, NULL, "socket activation: expected exactly one socket", "listen_fds=%ld",
				       n);

	vl = sizeof(v);
	if (getsockopt(ACTIVATION_FD, SOL_SOCKET, SO_DOMAIN, &v, &vl) < 0)
		return log_error_errno(errno, NULL, "socket activation: fd 3 is not a socket");
	if (v != AF_UNIX)
		return log_error_errno(EAFNOSUPPORT, NULL, "socket activation: fd 3 is not an AF_UNIX socket",
				       "domain=%d", v);
	vl = sizeof(v);
	if (getsockopt(ACTIVATION_FD, SOL_SOCKET, SO_TYPE, &v, &vl) < 0 || v != SOCK_STREAM)
		return log_error_errno(ESOCKTNOSUPPORT, NULL, "socket activation: fd 3 is not a stream socket",
				       "type=%d", v);
	vl = sizeof(v);
	if (getsockopt(ACTIVATION_FD, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) < 0 || !v)
		return log_error_errno(EINVAL, NULL, "socket activation: fd 3 is not listening (ListenStream=, Accept=no)");
	if ((flags = fcntl(ACTIVATION_FD, F_GETFL)) < 0 || fcntl(ACTIVATION_FD, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(ACTIVATION_FD, F_SETFD, FD_CLOEXEC) < 0)
		return log_error_errno(errno, NULL, "socket activation: fcntl");
	memset(&sa, 0, sizeof(sa));
	if (path && len && getsockname(ACTIVATION_FD, (struct sockaddr *)&sa, &sl) == 0 &&
	    sl > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0]) {
		size_t pl = strnlen(sa.sun_path, sl - offsetof(struct sockaddr_un, sun_path));
		if (pl < len) {
			memcpy(path, sa.sun_path, pl);
			path[pl] = '\0';
		}
	}
	*fd = ACTIVATION_FD;
	return 1;
}
