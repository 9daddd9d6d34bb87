/* How a launcher of its own unit (issue 14: criod-spawnd-launcher.service,
 * not yet built) will know that the process connected to its socket is
 * spawnd, from its own knowledge and never from what the peer says: the
 * peer's uid (SO_PEERCRED) is 0, its cgroup (/proc/<pid>/cgroup, the
 * unified "0::" line or systemd's "name=systemd" one) is spawnd's unit's,
 * and its /proc/<pid>/exe is the spawnd binary. The pid is pinned with a
 * pidfd (SO_PEERPIDFD, else pidfd_open right after accept) and checked
 * alive after /proc is read, so a pid reused meanwhile is refused. */
#pragma once

#include <stddef.h>

struct launch_peer {
	const char *exe;    /* the binary the peer must run, resolved (realpath) */
	const char *cgroup; /* the cgroup it must be in, e.g. "/system.slice/criod-spawnd.service"; never "/" */
};

/* 0 if fd's connected peer is what want says, else a negative errno
 * (-EPERM for a peer that is someone else) with err saying why. */
int launch_peer_check(int fd, const struct launch_peer *want, char *err, size_t errlen);
