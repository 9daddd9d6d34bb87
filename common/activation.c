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

/* Check that fd is a listening stream socket of one of the families; make
 * it close-on-exec and non-blocking; returns its family or negative errno. */
static int check_listener(int fd, bool inet)
{
	int v, flags;
	socklen_t vl = sizeof(v);
	bool first = fd == ACTIVATION_FD;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &vl) < 0)
		return log_error_errno(errno, NULL,
				       first ? "socket activation: fd 3 is not a socket" : "socket activation: fd 4 is not a socket");
	int domain = v;
	if (inet ? (domain != AF_INET && domain != AF_INET6) : domain != AF_UNIX)
		return -EAFNOSUPPORT;
	vl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl) < 0 || v != SOCK_STREAM)
		return log_error_errno(ESOCKTNOSUPPORT, NULL,
				       first ? "socket activation: fd 3 is not a stream socket"
					     : "socket activation: fd 4 is not a stream socket",
				       "type=%d", v);
	vl = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) < 0 || !v)
		return log_error_errno(EINVAL, NULL,
				       first ? "socket activation: fd 3 is not listening (ListenStream=, Accept=no)"
					     : "socket activation: fd 4 is not listening (ListenStream=, Accept=no)");
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return log_error_errno(errno, NULL, "socket activation: fcntl");
	return domain;
}

int activation_listen_fds(int *fd, char *path, size_t len, int *tcp_fd)
{
	long pid = env_number("LISTEN_PID"), n = env_number("LISTEN_FDS");
	bool present = getenv("LISTEN_PID") != NULL;
	struct sockaddr_un sa;
	socklen_t sl = sizeof(sa);

	*fd = -1;
	if (tcp_fd)
		*tcp_fd = -1;
	if (path && len)
		path[0] = '\0';
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (!present || pid != (long)getpid())
		return 0; /* not for us: systemd sets LISTEN_PID to the process it execs */
	if (n != 1 && !(tcp_fd && n == 2))
		return log_error_errno(EINVAL, NULL, "socket activation: expected one AF_UNIX socket (and one TCP socket)",
				       "listen_fds=%ld", n);
	for (int f = ACTIVATION_FD; f < ACTIVATION_FD + n; f++) {
		int r = check_listener(f, false);
		if (r == -EAFNOSUPPORT && tcp_fd && *tcp_fd < 0 && (r = check_listener(f, true)) >= 0) {
			*tcp_fd = f;
			continue;
		}
		if (r == -EAFNOSUPPORT)
			return log_error_errno(EAFNOSUPPORT, NULL,
					       f == ACTIVATION_FD ? "socket activation: fd 3 is not an AF_UNIX socket"
								  : "socket activation: fd 4 is not an AF_INET/AF_INET6 socket");
		if (r < 0)
			return r;
		if (*fd >= 0)
			return log_error_errno(EINVAL, NULL, "socket activation: two AF_UNIX sockets");
		*fd = f;
	}
	if (*fd < 0)
		return log_error_errno(EINVAL, NULL, "socket activation: no AF_UNIX socket");
	memset(&sa, 0, sizeof(sa));
	if (path && len && getsockname(*fd, (struct sockaddr *)&sa, &sl) == 0 &&
	    sl > offsetof(struct sockaddr_un, sun_path) && sa.sun_path[0]) {
		size_t pl = strnlen(sa.sun_path, sl - offsetof(struct sockaddr_un, sun_path));
		if (pl < len) {
			memcpy(path, sa.sun_path, pl);
			path[pl] = '\0';
		}
	}
	return 1;
}

int activation_listen_fd(int *fd, char *path, size_t len)
{
	return activation_listen_fds(fd, path, len, NULL);
}
