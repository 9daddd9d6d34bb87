/* What spawnd, its launcher and conmon hold (docs/ARCHITECTURE.md, "What
 * each process holds").
 *
 * The launcher (spawnd_launch.h) and conmon pass their capability bounding
 * set and their seccomp filter on to runc and to every container runc
 * starts, so neither is cut to what they themselves call: the bounding set
 * covers every capability the node policy lets a container have, the
 * filter every call a container may make, and no_new_privs is never set (it
 * would be inherited and stop setuid binaries in containers that allow
 * privilege escalation). The filter refuses with ENOSYS.
 *
 * spawnd itself starts no container (the launcher does), so it holds only
 * what its own work takes: spawnd_confine() below. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "caps.h"
#include "config.h"

/* What runc itself needs to build and enter a container, whatever the
 * container then keeps, and what spawnd needs for pods and pause (the
 * hardened suite of tests/e2e/test_confine_spawnd.py runs with exactly
 * these and runc's default set):
 *   SYS_ADMIN     mounts, pivot_root, namespaces (unshare, setns), sethostname,
 *                 the pods' namespace pins and /dev/shm, seccomp without no_new_privs;
 *   SYS_PTRACE    /proc/PID/ns/ of processes of other users: spawnd pins
 *                 pause's (65534) namespaces, runc exec enters a non-root
 *                 container's (without it: EACCES);
 *   SETPCAP       setting a container's capability sets, dropping its bounding set;
 *   SYS_CHROOT    pivot_root into the rootfs;
 *   MKNOD         the container's /dev nodes;
 *   SETUID/SETGID the container's user and groups (pause's 65534 too);
 *   CHOWN         /dev nodes, ttys and mounts owned by the container's user;
 *   DAC_OVERRIDE  files and directories of other users (the rootfs, the
 *                 container's /proc/PID; it covers DAC_READ_SEARCH's searches);
 *   FOWNER        chmod/utimes of files the caller does not own;
 *   KILL          signals to pause (65534) and to containers of any user;
 *   SYS_RESOURCE  rlimits above the hard limit, oom_score_adj below its own
 *                 (kubelet's -998 for pods' pause). */
#define SPAWND_RUNC_CAPS                                                                                         \
	(CAPBIT(21) /* SYS_ADMIN */ | CAPBIT(19) /* SYS_PTRACE */ | CAPBIT(8) /* SETPCAP */ |                    \
	 CAPBIT(18) /* SYS_CHROOT */ | CAPBIT(27) /* MKNOD */ | CAPBIT(7) /* SETUID */ | CAPBIT(6) /* SETGID */ | \
	 CAPBIT(0) /* CHOWN */ | CAPBIT(1) /* DAC_OVERRIDE */ | CAPBIT(3) /* FOWNER */ | CAPBIT(5) /* KILL */ |   \
	 CAPBIT(24) /* SYS_RESOURCE */)

/* The capabilities spawnd keeps: every one when [policy] allows privileged
 * containers or allowed_capabilities is ALL; otherwise SPAWND_RUNC_CAPS,
 * runc's default set (CAP_DEFAULT_MASK) and allowed_capabilities. */
uint64_t spawnd_confine_caps(const struct criod_config *cfg);

/* The allowlist the launcher and conmon load, for a process whose bounding set
 * is caps: the names of the RuntimeDefault profile (common/seccomp_default.c)
 * whose includes.caps caps holds, runc's, spawnd's and conmon's own, less
 * the calls that alter the host kernel (spawnd_confine.c). *names is a
 * NULL-terminated array the caller frees with spawnd_confine_names_free. */
int spawnd_confine_names(uint64_t caps, char ***names);
void spawnd_confine_names_free(char **names);

/* Whether the launcher and conmon load the filter: only when the node policy
 * lets no container run unconfined (allow_privileged and
 * allow_unconfined_seccomp both false, as packaging/criod.conf.d/
 * hardened.conf sets them). Otherwise a filter on them would be every
 * container's too: an Unconfined or privileged container would not be
 * unconfined (critest checks Seccomp 0) and could not load a module. */
bool spawnd_confine_filtered(const struct criod_config *cfg);

/* Confine the calling process (the launcher or conmon) to caps, no
 * no_new_privs, and the list above where spawnd_confine_filtered(cfg). */
int spawnd_confine_apply(const char *component, uint64_t caps, const struct criod_config *cfg);

/* spawnd's own allowlist beyond confine_base_syscalls (spawnd_confine.c). */
extern const char *const spawnd_syscalls[];

/* spawnd, once at start (after its roots and mounts are set up, and after
 * the launcher is forked): SPAWND_RUNC_CAPS and CAP_DEFAULT_MASK held, the
 * bounding set left at spawnd_confine_caps (or its unit's), no_new_privs,
 * spawnd_syscalls with confine_base_syscalls, ENOSYS for anything else.
 * The launcher (spawnd_launch.h) takes spawnd_confine_apply instead. */
int spawnd_confine(const struct criod_config *cfg);
/* conmon, once at start (bundle: its --bundle, whose config.json spawnd
 * checked): the bounding set the launcher left it. On a hardened node
 * (spawnd_confine_filtered) the same list as the launcher's, under the same
 * rule. On any other node a filter suited to its container, which runc
 * exec's processes inherit: none when the container is unconfined (no
 * linux.seccomp, or a default action that lets calls through), else the
 * names the container's own profile may let through (host-kernel calls
 * included), the RuntimeDefault names its caps allow, runc's, conmon's own
 * and the base: a container gets nothing less than its own profile gives,
 * and conmon's request handling is filtered. */
int conmon_confine(const struct criod_config *cfg, const char *bundle);
/* That list: *confined false and *names NULL for an unconfined container. */
int conmon_confine_names(uint64_t caps, const char *bundle, bool *confined, char ***names);
