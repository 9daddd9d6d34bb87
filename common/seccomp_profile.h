/* Localhost seccomp profiles: host files kubelet writes as root, often in
 * 0700 directories, that criod (unprivileged) cannot read itself. spawnd
 * opens one for criod (OpenSeccompProfile, proto/internal/spawnd.proto)
 * when it lies beneath one of [policy] seccomp_profile_roots, and passes
 * the open file; criod reads it from the fd. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The largest profile, in bytes: what spawnd opens and criod reads and
 * parses (criod/oci_spec.c). */
#define SECCOMP_PROFILE_MAX (4u << 20)
/* The longest profile path, in bytes (PATH_MAX without its NUL). */
#define SECCOMP_PROFILE_PATH_MAX 4095
/* The configuration key the roots come from, for messages. */
#define SECCOMP_PROFILE_ROOTS_KEY "[policy] seccomp_profile_roots"

/* The RuntimeDefault profile (Docker JSON format; common/seccomp_default.c):
 * what criod gives a container that asks for it, and part of what spawnd
 * and conmon allow (conmon/spawnd_confine.c). */
extern const char oci_default_seccomp_profile[];

/* The pure part of the check, on len bytes at path (not necessarily
 * NUL-terminated; nothing beyond len is read): path must be 1 to
 * SECCOMP_PROFILE_PATH_MAX bytes without NUL or other control characters,
 * absolute and clean (no empty, "." or ".." components, no trailing "/"),
 * and equal to or beneath one of roots (clean absolute directories without
 * a trailing "/"; others are skipped). The longest such root is chosen:
 * *root is its index and *rel_off the offset in path of the part below it
 * (len when path is the root itself). Returns 0; -EINVAL or -ENAMETOOLONG
 * with *why saying what is wrong (a static string: "is not an absolute
 * path"); -EACCES when no root holds it. */
int seccomp_profile_path_check(const char *path, size_t len, char *const *roots, size_t n_roots, size_t *root,
			       size_t *rel_off, const char **why);

/* spawnd's OpenSeccompProfile: the checks above, then the root directory
 * is opened (the administrator's path, symlinks in it followed) and the
 * profile below it with openat2(O_PATH, RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS); it must be a regular file
 * of at most SECCOMP_PROFILE_MAX bytes, and only then is it opened for
 * reading (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, through the O_PATH
 * descriptor, so no FIFO or device is ever opened). Returns that fd, with
 * *size its size, or negative errno with *status the gRPC status and err
 * the message: INVALID_ARGUMENT (a bad path, not a regular file, too
 * large), PERMISSION_DENIED (beneath no root, or a symbolic link on the
 * way), NOT_FOUND (no such file, or no such root). */
int seccomp_profile_open(const char *path, size_t len, char *const *roots, size_t n_roots, uint64_t *size,
			 int *status, char *err, size_t errlen);
