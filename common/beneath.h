/* Host paths a root daemon opens for criod only beneath directories the
 * node policy names ([policy] seccomp_profile_roots, [policy] log_roots):
 * the pure check of a path against the roots, and opening beneath a root
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS), so that neither "..", a symlink nor a magic link
 * below the root leads anywhere else. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Clean and absolute: "/", or "/a/b" without empty, "." or ".." components
 * and without a trailing "/" (len bytes of p; nothing beyond is read). */
bool path_is_clean_abs(const char *p, size_t len);

/* len bytes at path (not necessarily NUL-terminated) must be 1 to max_len
 * bytes without NUL or other control characters, clean and absolute, and
 * equal to or beneath one of roots (clean absolute directories; others are
 * skipped). The longest such root is chosen: *root is its index and
 * *rel_off the offset in path of the part below it (len when path is the
 * root itself). Returns 0; -EINVAL or -ENAMETOOLONG with *why saying what
 * is wrong (a static string such as "is not an absolute path"); -EACCES
 * when no root holds it (*why "is not beneath any of the roots"). */
int path_beneath_roots(const char *path, size_t len, size_t max_len, char *const *roots, size_t n_roots,
		       size_t *root, size_t *rel_off, const char **why);

/* The roots as "a, b, c" (or "none configured") into buf, cut short if
 * need be: for messages that say which directories were allowed. */
void path_roots_join(char *buf, size_t size, char *const *roots, size_t n);

/* Open rel (a clean relative path) beneath the directory root_fd for
 * appending, as a log is: missing directories on the way are made with
 * dir_mode, a missing file is created with file_mode; an existing entry
 * must be a regular file, and nothing else is ever opened for writing (it
 * is looked at with O_PATH first). Nothing below root_fd is followed.
 * Returns the fd (O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY) or negative
 * errno: -ELOOP for a symlink on the way, -EXDEV for a path leading out,
 * -EISDIR / -EPERM for an entry that is not a regular file. */
int open_append_beneath(int root_fd, const char *rel, mode_t dir_mode, mode_t file_mode);
