/* How every process confines itself, once, at start: its capability sets
 * cut to a named mask, no_new_privs where it never execs something that
 * gains privilege, and a seccomp allowlist (libseccomp).
 *
 * What a process keeps, and why, is its own table (docs/ARCHITECTURE.md,
 * "What each process holds"); this file only applies one. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum confine_action {
	/* A call outside the allowlist fails with EPERM and the process logs
	 * one line naming it (SIGSYS handler); the kernel logs it too. */
	CONFINE_DENY_LOGGED,
	/* The filter passes to children that run containers (spawnd, conmon,
	 * runc and what runc starts): a call outside it fails with ENOSYS, as
	 * for a syscall the kernel lacks, so a container's libc falls back
	 * (clone3 -> clone) instead of taking a signal; the kernel logs it. */
	CONFINE_DENY_INHERITED,
	/* For a process whose only children are its own helpers (spawnd:
	 * pause, `runc delete`), not containers: a call outside the list
	 * fails with ENOSYS (a handler would not survive their exec), the
	 * kernel logs it, and only the native ABI is allowed. */
	CONFINE_DENY_ENOSYS,
};

struct confine_policy {
	uint64_t caps;                /* kept in bounding, permitted and effective (caps.h CAPBIT) */
	uint64_t bounding;            /* kept in the bounding set only, beyond caps (0: none) */
	bool no_new_privs;
	/* No seccomp filter at all: for a process whose filter would pass on
	 * to containers the node policy lets run unconfined (spawnd, conmon). */
	bool no_filter;
	enum confine_action action;
	const char *const *syscalls;  /* NULL-terminated; names unknown on this arch are skipped */
	const char *const *syscalls2; /* a second list (e.g. the shared base), may be NULL */
	/* Calls that return 0 without being made (SECCOMP_RET_ERRNO with 0):
	 * imaged-fetch's connect, on sockets imaged connected already (libcurl
	 * 7.88 calls connect on them whatever the socket-option callback says,
	 * curl #10626), so it can neither fail nor re-aim one. May be NULL. */
	const char *const *noops;
	/* A root-only directory where the compiled filter is kept for the
	 * next process of the same policy, which then loads it without
	 * libseccomp's compilation (confine.c); NULL: always compiled. */
	const char *filter_cache;
};

/* The syscalls every daemon built on common/ (libevent, ipc, log, config)
 * needs; NULL-terminated. */
extern const char *const confine_base_syscalls[];

/* Set by --seccomp-log (daemon.c): allowlist misses are logged by the kernel
 * and allowed, to find what a filter lacks. Never for production. */
extern bool confine_log_only;
/* Set by --confine-probe=NAME (daemon.c): right after confining, the
 * process makes that syscall with zero arguments, logs what it returned and
 * exits 0; the tests' proof that a call outside the filter is refused. */
extern const char *confine_probe;

/* Apply p to the calling process (all its threads). component names the
 * process in the log line of a refused call. Logs one line, "confined",
 * with the effective and bounding sets the process holds after the cut
 * (caps=, bounding=: what the kernel says, not p's mask). Returns 0 or a
 * negative errno, logged. */
int confine_self(const char *component, const struct confine_policy *p);
