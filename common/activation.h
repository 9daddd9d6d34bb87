/* systemd socket activation (sd_listen_fds(3)), without libsystemd: the
 * listening socket a .socket unit made, passed as fd 3 with LISTEN_PID and
 * LISTEN_FDS in the environment. */
#pragma once

#include <stddef.h>

#define ACTIVATION_FD 3 /* SD_LISTEN_FDS_START */

/* The one listening AF_UNIX stream socket systemd passed this process:
 * returns 1 with it in *fd (close-on-exec, non-blocking) and its path in
 * path (up to len bytes, "" if unnamed); 0 with *fd -1 when nothing was
 * passed (LISTEN_PID unset or another process's), so the caller binds its
 * own; negative errno, logged, when what was passed is not that one socket.
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are removed from the
 * environment either way, so no child takes them for its own. */
int activation_listen_fd(int *fd, char *path, size_t len);
/* The same, also taking a listening AF_INET or AF_INET6 stream socket
 * (criod's streaming server, criod-streaming.socket) into *tcp_fd when one
 * was passed with it (-1 otherwise); the sockets may come in any order. */
int activation_listen_fds(int *fd, char *path, size_t len, int *tcp_fd);
