/* The peer check of a launcher of its own unit (spawnd_peer.h). */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"
#include "proc_cgroup.h"
#include "spawnd_peer.h"
#include "util.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

/* Whether a line of /proc/<pid>/cgroup for the unified hierarchy ("0::")
 * or systemd's ("N:name=systemd:") names exactly want. */
static bool cgroup_matches(char *text, const char *want)
{
	struct proc_cgroup_line l;
	for (char *cur = text; proc_cgroup_next(&cur, &l);)
		if ((proc_cgroup_is_unified(&l) || strcmp(l.controllers, "name=systemd") == 0) && strcmp(l.path, want) == 0)
			return true;
	return false;
}

int launch_peer_check(int fd, const struct launch_peer *want, char *err, size_t errlen)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (!want->exe || want->exe[0] != '/' || !want->cgroup || want->cgroup[0] != '/' || strcmp(want->cgroup, "/") == 0)
		return errf(err, errlen, -EINVAL, "no peer binary or cgroup configured (the root cgroup is no unit's)");
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
		return errf(err, errlen, -errno, "SO_PEERCRED: %s", strerror(errno));
	if (uc.uid != 0)
		return errf(err, errlen, -EPERM, "peer pid %d runs as uid %u, not root", (int)uc.pid, (unsigned)uc.uid);
	if (uc.pid <= 0)
		return errf(err, errlen, -EPERM, "peer has no pid in this pid namespace");
	int pidfd = -1;
	len = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
		pidfd = pidfd_open_pid(uc.pid);
		if (pidfd < 0)
			return errf(err, errlen, -EPERM, "peer pid %d: no pidfd: %s", (int)uc.pid, strerror(-pidfd));
	}
	char path[64], exe[PATH_MAX];
	_cleanup_free_ char *cg = NULL;
	size_t n;
	int r = 0;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)uc.pid);
	ssize_t k = readlink(path, exe, sizeof(exe) - 1);
	if (k < 0)
		r = errf(err, errlen, -EPERM, "peer pid %d: %s: %s", (int)uc.pid, path, strerror(errno));
	else {
		exe[k] = '\0';
		if (strcmp(exe, want->exe) != 0)
			r = errf(err, errlen, -EPERM, "peer pid %d runs %s, not %s", (int)uc.pid, exe, want->exe);
	}
	if (r == 0) {
		snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)uc.pid);
		int e = read_file(path, 1 << 16, &cg, &n);
		if (e < 0)
			r = errf(err, errlen, -EPERM, "peer pid %d: %s: %s", (int)uc.pid, path, strerror(-e));
		else if (!cgroup_matches(cg, want->cgroup))
			r = errf(err, errlen, -EPERM, "peer pid %d is not in cgroup %s", (int)uc.pid, want->cgroup);
	}
	/* What /proc said is the pidfd's process's only if it still lives. */
	if (r == 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		r = errf(err, errlen, -EPERM, "peer pid %d exited while being checked", (int)uc.pid);
	close(pidfd);
	return r;
}
