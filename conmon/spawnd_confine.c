/* spawnd's confinement (spawnd_confine.h). No container descends from
 * spawnd any more (conmon is started by the launcher, spawnd_launch.h), so
 * spawnd holds only what its own work takes: a strict allowlist,
 * no_new_privs, the capabilities it and its helpers use. The launcher
 * keeps what containers need: spawnd_confine_caps and the list of
 * conmon_confine.c. */
#include <errno.h>
#include <stdint.h>

#include "confine.h"
#include "log.h"
#include "spawnd_confine.h"
#include "spawnd_policy.h"

uint64_t spawnd_confine_caps(const struct criod_config *cfg)
{
	/* A privileged container gets every capability the host has. */
	if (cfg->allow_privileged)
		return UINT64_MAX;
	uint64_t allowed = spawnd_policy_caps_allowed(cfg);
	if (allowed == UINT64_MAX)
		return UINT64_MAX;
	return allowed | CAP_DEFAULT_MASK | SPAWND_RUNC_CAPS;
}

/* spawnd beyond confine_base_syscalls. Its children run under this filter
 * until they exec or load their own: pause (spawn.c, then pause.c before
 * its own filter) and `runc delete` (a Go program; RemoveContainer and a
 * failed create). */
const char *const spawnd_syscalls[] = {
	/* the pods' namespace pins, /dev/shm tmpfs and pods directory, a
	 * container's TARGET PID namespace pin in its bundle */
	"mount", "umount2",
	/* spawn.c: children in a pod's new namespaces, joining its network
	 * namespace, its hostname, their own session, the exec */
	"fork", "vfork", "clone", "clone3", "unshare", "setns", "sethostname", "setdomainname", "setsid", "execve",
	/* socket and pod file modes; <run_dir>/c, the state alias */
	"chmod", "symlink",
	/* pause before its own filter: its empty root, ids, capabilities, filter, wait */
	"pivot_root", "setgroups", "setresgid", "setresuid", "capget", "capset", "seccomp", "rt_sigsuspend",
	/* runc (Go runtime): TLS, signals to its threads, memory queries */
	"arch_prctl", "tkill", "mincore",
	NULL,
};

int spawnd_confine(const struct criod_config *cfg)
{
	struct confine_policy p = {
		/* Held: runc's needs (spawnd runs pause and `runc delete`) and
		 * runc's default set, what the hardened suite runs spawnd
		 * with; bounded by what the launcher holds, the node's
		 * capability bound (a hardened unit's may be smaller: criod
		 * takes the launcher's from spawnd's Ping as a privileged
		 * container's set). */
		.caps = SPAWND_RUNC_CAPS | CAP_DEFAULT_MASK,
		.bounding = spawnd_confine_caps(cfg),
		.no_new_privs = true, /* nothing it execs gains privilege */
		.action = CONFINE_DENY_ENOSYS,
		.syscalls = spawnd_syscalls,
		.syscalls2 = confine_base_syscalls,
	};
	return confine_self("spawnd", &p);
}
