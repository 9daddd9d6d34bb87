/* Small helpers shared by every component. All return negative errno on
 * failure unless noted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Identifiers the daemons accept from criod: exactly 64 lowercase hex chars. */
bool id_is_valid(const char *id);
/* A bounded name: 1..max bytes of [A-Za-z0-9._-], not "." or "..". */
bool name_is_valid(const char *name, size_t max);
/* "host[:port]" or "[IPv6][:port]" (n bytes): DNS labels of [A-Za-z0-9-]
 * up to 63 bytes, a real IPv6 address without zone, ports 1..65535. The
 * registry part of image names and [registry.HOST] sections use it. */
bool host_port_is_valid(const char *s, size_t n);
/* The decimal digits at *p (at least one) as a uint64_t; *p moves past
 * them. -EINVAL when no digit is there, -ERANGE past UINT64_MAX; *p and
 * *out are left alone on failure. */
int parse_u64_digits(const char **p, uint64_t *out);
/* A malloc'd formatted string; NULL when out of memory. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write a formatted message into err (when err and errlen are set) and
 * return r: the one way a checker reports why it refused. */
int errf(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same, but only when err holds no message yet: where several steps
 * may fail in turn, the first failure is the one worth reporting. */
int errf_first(char *err, size_t errlen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A control character: below 0x20, or DEL. */
static inline bool char_is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}
/* Whether s (NUL-terminated) / the n bytes at s hold a control character:
 * the one check every parser of names, paths and values makes. */
bool str_has_ctl(const char *s);
/* Percent-decode n bytes of s into out (outlen with the NUL), '+' as a
 * space when plus_is_space (a query string); false for a malformed
 * escape, a decoded NUL, or too long. */
bool pct_decode(const char *s, size_t n, bool plus_is_space, char *out, size_t outlen);
bool mem_has_ctl(const void *s, size_t n);
/* Fill buf (len >= 2*nbytes+1) with random lowercase hex from getrandom(). */
int random_hex(char *buf, size_t nbytes);

/* mkdir -p: missing parents are created 0755, the last component with
 * mode; existing directories are left as they are. */
int mkdir_p(const char *path, mode_t mode);
/* Atomically replace path with data: write to a temp file in the same
 * directory, fsync it, rename over path, fsync the directory. */
int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* The same without either fsync, for boot-scoped state: records of
 * processes, mounts and namespaces that a host restart takes away anyway
 * (spawnd's records, bundles, a pod's hosts files). Still atomic to every
 * reader and across a kill -9 of the writer (the page cache outlives it);
 * after a host crash the file may be old, empty or missing, and its reader
 * must treat it as it treats a corrupt one. */
int write_file_boot(const char *path, const void *data, size_t len, mode_t mode);
/* Remove a directory of plain files: unlink every entry (the temporary
 * files of writes a crash interrupted too; nothing is recursed into), then
 * the directory. A missing directory is removed already. */
int rmdir_with_files(const char *dir);
/* Read a whole file (up to max bytes) into a malloc'd NUL-terminated buffer. */
int read_file(const char *path, size_t max, char **out, size_t *out_len);
/* The same from an open fd, read from its current offset to its end. */
int read_fd(int fd, size_t max, char **out, size_t *out_len);

/* Monotonic and wall-clock time in nanoseconds. */
int64_t now_monotonic_ns(void);
int64_t now_realtime_ns(void);

/* openat2(2) with how = {flags, resolve}, retried on EAGAIN/EINTR (a
 * concurrent rename). Returns the fd or negative errno. Used with
 * RESOLVE_IN_ROOT wherever a path inside an untrusted tree is opened. */
int openat2_retry(int dirfd, const char *path, uint64_t flags, uint64_t resolve);

/* pidfd_open(2) of pid (close-on-exec): the fd, or negative errno (-ENOSYS
 * where the headers lack it). The fd names that process whatever later
 * happens to the number; it polls readable once the process is gone. */
int pidfd_open_pid(pid_t pid);
/* The descriptors a recvmsg() put in mh's SCM_RIGHTS messages: the first
 * max of them stored in fds, any beyond closed; their total count (more
 * than max: there were extra, now closed). */
struct msghdr;
size_t msg_take_fds(struct msghdr *mh, int *fds, size_t max);

/* Look up a user by name. */
int lookup_user(const char *name, uid_t *uid, gid_t *gid);

/* Switch the calling process to user `name`: supplementary groups cleared,
 * real/effective/saved uid and gid set, every capability dropped (bounding
 * set, ambient set, permitted), no_new_privs set. Verifies it cannot regain root.
 * Capability sets are per thread: call it before starting any thread. If the
 * process already runs as that user it only sheds capabilities and sets
 * no_new_privs. -EINVAL if `name` is root. Any error must be fatal. */
int drop_privileges(const char *name);
/* The highest capability number this kernel knows
 * (/proc/sys/kernel/cap_last_cap), CAP_LAST_CAP when it cannot be read. */
int cap_last_cap(void);
