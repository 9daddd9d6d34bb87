/* Unit tests for conmon/spawnd_peer.c's launch_peer_check, on a real
 * socket whose peer is this process: refused for another binary, another
 * cgroup, a pid that is gone, or no configured cgroup; accepted once this
 * process is moved into the cgroup it must be in (a cgroup made for the
 * test in the name=systemd or unified hierarchy; skipped when neither is
 * writable or not run as root). */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawnd_peer.h"

static char self_exe[PATH_MAX];

static int check(const char *exe, const char *cgroup, char *err)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	struct launch_peer want = {.exe = exe, .cgroup = cgroup};
	err[0] = '\0';
	int r = launch_peer_check(sv[0], &want, err, 256);
	close(sv[0]);
	close(sv[1]);
	return r;
}

static int setup(void **state)
{
	(void)state;
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n < 0)
		return -1;
	self_exe[n] = '\0';
	return 0;
}

static void test_refused(void **state)
{
	char err[256];
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(check("/usr/lib/criod/spawnd", "/system.slice/criod-spawnd.service", err), -EPERM);
	assert_non_null(strstr(err, "not /usr/lib/criod/spawnd"));
	assert_int_equal(check(self_exe, "/system.slice/criod-spawnd.service", err), -EPERM);
	assert_non_null(strstr(err, "is not in cgroup /system.slice/criod-spawnd.service"));
	assert_int_equal(check(self_exe, "/", err), -EINVAL);
	assert_int_equal(check(self_exe, NULL, err), -EINVAL);
	assert_int_equal(check("spawnd", "/x", err), -EINVAL);
}

static void test_accepted_in_its_cgroup(void **state)
{
	static const char *const roots[] = {"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"};
	char dir[PATH_MAX], procs[PATH_MAX + 16], name[64], err[256];
	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(name, sizeof(name), "/criod-test-peer-%d", (int)getpid());
	const char *root = NULL;
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]) && !root; i++) {
		snprintf(dir, sizeof(dir), "%s%s", roots[i], name);
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", roots[i]);
		if (access(procs, W_OK) == 0 && mkdir(dir, 0755) == 0)
			root = roots[i];
	}
	if (!root)
		skip();
	char orig[PATH_MAX] = "", line[PATH_MAX + 64];
	const char *tag = strcmp(root, "/sys/fs/cgroup/systemd") == 0 ? ":name=systemd:" : "0::";
	FILE *cg = fopen("/proc/self/cgroup", "r");
	assert_non_null(cg);
	while (fgets(line, sizeof(line), cg)) {
		char *t = strstr(line, tag);
		if (t && (t == line || tag[0] == ':')) {
			snprintf(orig, sizeof(orig), "%s", t + strlen(tag));
			orig[strcspn(orig, "\n")] = '\0';
			if (strcmp(orig, "/") == 0)
				orig[0] = '\0';
		}
	}
	fclose(cg);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	FILE *f = fopen(procs, "w");
	assert_non_null(f);
	fprintf(f, "%d\n", (int)getpid());
	int moved = fclose(f);
	int r = -1;
	if (moved == 0)
		r = check(self_exe, name, err);
	/* back where it was, the test cgroup gone */
	snprintf(procs, sizeof(procs), "%s%s/cgroup.procs", root, orig);
	f = fopen(procs, "w");
	if (f) {
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
	}
	rmdir(dir);
	assert_int_equal(moved, 0);
	assert_int_equal(r, 0);
	/* the same process, another binary configured: refused */
	assert_int_equal(check("/usr/lib/criod/spawnd", name, err), -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_accepted_in_its_cgroup),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
