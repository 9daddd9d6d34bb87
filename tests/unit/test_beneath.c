/* Unit tests for common/beneath.c: open_append_beneath on a real tree (the
 * opener conmon uses for container logs). The pure path check is tested
 * through its seccomp wrapper in test_seccomp_profile.c. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "beneath.h"

static char base[] = "/tmp/criod-beneath-XXXXXX";
static int root_fd = -1;

static int setup(void **state)
{
	(void)state;
	char p[256];
	if (!mkdtemp(base))
		return -1;
	snprintf(p, sizeof(p), "%s/root", base);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/outside", base);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/root/link-out", base);
	if (symlink("../outside", p) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/root/file-link", base);
	if (symlink("../outside/f", p) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/root/fifo", base);
	if (mkfifo(p, 0644) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/root/dir", base);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/root", base);
	root_fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return root_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	close(root_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_creates_and_appends(void **state)
{
	(void)state;
	char p[256];
	struct stat st;
	int fd = open_append_beneath(root_fd, "pod/ctr/0.log", 0755, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "a\n", 2), 2);
	close(fd);
	snprintf(p, sizeof(p), "%s/root/pod/ctr/0.log", base);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0640 & ~umask(umask(0)));
	snprintf(p, sizeof(p), "%s/root/pod/ctr", base);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* again: appended, not truncated */
	fd = open_append_beneath(root_fd, "pod/ctr/0.log", 0755, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "b\n", 2), 2);
	close(fd);
	snprintf(p, sizeof(p), "%s/root/pod/ctr/0.log", base);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 4);
}

static void test_refuses(void **state)
{
	(void)state;
	char p[256];
	assert_int_equal(open_append_beneath(root_fd, "link-out/x.log", 0755, 0640), -ELOOP);
	assert_int_equal(open_append_beneath(root_fd, "file-link", 0755, 0640), -ELOOP);
	assert_int_equal(open_append_beneath(root_fd, "fifo", 0755, 0640), -EPERM);
	assert_int_equal(open_append_beneath(root_fd, "dir", 0755, 0640), -EISDIR);
	assert_int_equal(open_append_beneath(root_fd, "../outside/x.log", 0755, 0640), -EINVAL);
	assert_int_equal(open_append_beneath(root_fd, "a/../../outside/x.log", 0755, 0640), -EINVAL);
	assert_int_equal(open_append_beneath(root_fd, "/etc/passwd", 0755, 0640), -EINVAL);
	assert_int_equal(open_append_beneath(root_fd, "", 0755, 0640), -EINVAL);
	assert_int_equal(open_append_beneath(root_fd, "a//b", 0755, 0640), -EINVAL);
	assert_int_equal(open_append_beneath(root_fd, "a/./b", 0755, 0640), -EINVAL);
	/* nothing appeared outside */
	snprintf(p, sizeof(p), "%s/outside/x.log", base);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/outside/f", base);
	assert_int_equal(access(p, F_OK), -1);
}

static void test_clean_abs(void **state)
{
	(void)state;
	assert_true(path_is_clean_abs("/", 1));
	assert_true(path_is_clean_abs("/a/b", 4));
	assert_false(path_is_clean_abs("/a/", 3));
	assert_false(path_is_clean_abs("/a//b", 5));
	assert_false(path_is_clean_abs("/a/./b", 6));
	assert_false(path_is_clean_abs("/a/..", 5));
	assert_false(path_is_clean_abs("a/b", 3));
	assert_false(path_is_clean_abs("", 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_creates_and_appends),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_clean_abs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
