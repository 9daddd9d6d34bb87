/* Network namespaces that outlive any process: each one is bind-mounted
 * onto a file <run_dir>/netns/<pod_id>, the way iproute2's "ip netns add"
 * does it. netd never changes the network namespace of a thread it keeps:
 * namespaces are made by a short-lived thread that unshares, and work
 * inside one runs on a short-lived thread that setns()es into it. */
#pragma once

#include <stdbool.h>

/* Create dir (0755) and make it a shared mount point (a bind mount of
 * itself, MS_SHARED|MS_REC) so the namespace mounts under it propagate to
 * other mount namespaces. Idempotent. */
int netns_prepare_dir(const char *dir);
/* If dir is a mount point holding no namespace mount, unmount it (the
 * self-bind made by netns_prepare_dir). */
void netns_release_dir(const char *dir);
/* Make a new network namespace bind-mounted at path (-EEXIST if path exists). */
int netns_create(const char *path);
/* Unmount (MNT_DETACH) and unlink path. Missing is fine. */
int netns_remove(const char *path);
/* path is a namespace mount (nsfs). */
bool netns_is_mounted(const char *path);
/* Run fn(arg) on a new thread that has joined the namespace at path; its
 * return value (0 or negative errno) is returned. */
int netns_run(const char *path, int (*fn)(void *arg), void *arg);
