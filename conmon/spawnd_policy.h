/* The node policy spawnd enforces on a container's OCI spec: every field
 * criod may send is on an allowlist (anything else is refused, naming its
 * JSON path), and what a field may say is bounded by the [policy] section
 * of the configuration spawnd read (common/config.h), never by anything
 * criod claims. The checks run after container_spec_check (rootfs,
 * namespaces of the pod, cgroupsPath below the pod's cgroup, no hooks) and
 * before anything is made: a refusal leaves no bundle and no conmon.
 *
 * ---- The rules, field by field (the key that governs each) ----
 *
 *   fields          only those criod's spec builder (criod/oci_spec.c)
 *                   writes, each of its JSON type: top level ociVersion,
 *                   process, root, mounts, annotations, linux; process
 *                   terminal, user{uid,gid,additionalGids}, args, env, cwd,
 *                   capabilities{bounding,effective,permitted,inheritable,
 *                   ambient}, noNewPrivileges, apparmorProfile, oomScoreAdj;
 *                   root{path,readonly}; mounts[]{destination,type,source,
 *                   options}; linux rootfsPropagation, sysctl, resources
 *                   {devices,memory,cpu,hugepageLimits,unified},
 *                   cgroupsPath, namespaces, seccomp, maskedPaths,
 *                   readonlyPaths, devices. Else INVALID_ARGUMENT naming
 *                   the path ("linux.intelRdt: unknown field").
 *   mounts          type bind, proc, tmpfs, devpts, mqueue, sysfs or
 *                   cgroup; options from the list mount(8) and runc share
 *                   for those. A mount with "bind"/"rbind" (or type bind)
 *                   is a bind mount of a host path, whatever its type.
 *   bind sources    the pod's own files (criod's hostname, hosts and
 *                   resolv.conf in <state_dir>/criod/pods/<pod>/, regular
 *                   files reached without a symlink; spawnd's
 *                   <run_dir>/pods/<pod>/shm; the host's /dev/shm only for
 *                   a pod without an IPC namespace of its own, under
 *                   allow_host_namespaces); else with allow_any_host_path
 *                   (default true) anything; else the source, clean and
 *                   absolute, and the same path with its symlinks resolved,
 *                   must lie beneath host_path_prefixes, or beneath
 *                   host_path_readonly_prefixes with the mount read-only
 *                   (its last "ro"/"rw" option is "ro", or it has runc's
 *                   recursive "rro"; the longest
 *                   matching prefix decides), and no directory on the way
 *                   may be one criod's user can change.
 *   capabilities    every name in every set a known CAP_ name
 *                   (INVALID_ARGUMENT otherwise) and in
 *                   allowed_capabilities ("ALL": any, the default) or
 *                   runc's default set criod starts from.
 *   privileged      (allow_privileged, default true) a spec is privileged,
 *                   as criod builds it for security_context.privileged,
 *                   when any of: a device cgroup rule allows reading or
 *                   writing every device (no type or type "a", no
 *                   major/minor); /sys or /sys/fs/cgroup (a sysfs or cgroup
 *                   mount) is not read-only; linux.maskedPaths lacks one of
 *                   the default masked paths or linux.readonlyPaths one of
 *                   the default read-only paths (a masked path counts as
 *                   read-only); a mount or the rootfs propagation is
 *                   shared (kubelet's Bidirectional, which needs a
 *                   privileged container). Every capability, no seccomp and
 *                   the host's devices are governed by their own keys.
 *                   With allow_privileged, every device, rw /sys or cgroups
 *                   and shared propagation still only in a pod spawnd made
 *                   privileged (else -EPERM, rule POLICY_RULE_POD_PRIVILEGED),
 *                   as kubelet, containerd and CRI-O have it; the masked
 *                   and read-only paths only by the key (the CRI lets any
 *                   container set them: kubelet's procMount).
 *   namespaces      (allow_host_namespaces, default true) false: network,
 *                   ipc, uts and pid must each be in linux.namespaces (an
 *                   absent one is the host's). true: an absent one only
 *                   where spawnd made the pod with the host's (network and
 *                   uts: host_network; ipc, pid: NS_NODE), else -EPERM,
 *                   rule POLICY_RULE_POD_HOST_NS.
 *   devices         linux.devices[] (type, major, minor) and every device
 *                   cgroup rule that allows "r" or "w" must be one of
 *                   runc's default devices (null, zero, full, random,
 *                   urandom, tty, console, ptmx, pts) or a device node
 *                   found now at a path matching allowed_devices ("ALL":
 *                   any, the default; fnmatch patterns such as
 *                   /dev/nvidia*). "m" (mknod) rules are always allowed;
 *                   deny rules too.
 *   seccomp         (allow_unconfined_seccomp, default true) false:
 *                   linux.seccomp is required and its defaultAction must
 *                   not be SCMP_ACT_ALLOW or SCMP_ACT_LOG (an allow-all
 *                   filter is unconfined by another name).
 *   apparmor        (allow_unconfined_apparmor, default true) false, on a
 *                   host with AppArmor enabled: process.apparmorProfile
 *                   must be set and not "unconfined".
 *   unified         always: linux.resources.unified keys only files of a
 *                   resource controller (cpu., cpuset., memory., io.,
 *                   pids., hugetlb., rdma., misc.), never the core's
 *                   cgroup.* (-EPERM, rule "cgroup v2 resource files
 *                   only"); values at most 4096 bytes, no control
 *                   characters but newline.
 *   sysctl          always: namespaced ones only (kernel.shm*, kernel.msg*,
 *                   kernel.sem, fs.mqueue.*, net.*, "/" read as "."), the
 *                   IPC ones only with an IPC namespace, net.* only with a
 *                   network namespace of the container's own; and each
 *                   must match allowed_sysctls (fnmatch; default all of
 *                   those).
 *
 * A policy refusal is -EPERM (PERMISSION_DENIED) with err naming the key
 * ("[policy] allow_privileged: ...") and the field; a malformed or unknown
 * field -EINVAL (INVALID_ARGUMENT); *rule names the key (or "spec") for
 * the log line. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

struct criod_config;

#define POLICY_RULE_SPEC "spec"
/* Refusals that rest on spawnd's record of the pod (what CreatePodInfra
 * made under the policy), not on a key alone. */
#define POLICY_RULE_POD_PRIVILEGED "privileged pod"
#define POLICY_RULE_POD_HOST_NS "the pod's host namespaces"

/* A host device node the policy allows: its type ('c' or 'b') and numbers. */
struct policy_device {
	char type;
	int64_t major, minor;
};

struct spawnd_policy_ctx {
	const struct criod_config *cfg; /* [policy] */
	const char *pod_files_dir; /* <state_dir>/criod/pods/<pod_id>: criod's hostname, hosts, resolv.conf */
	const char *pod_shm;       /* <run_dir>/pods/<pod_id>/shm when the pod holds one, else NULL */
	bool pod_ipc_ns;           /* the pod holds an IPC namespace of its own */
	/* The rest of what spawnd made the pod with (its record, never what
	 * criod says): a container shares a host namespace only where its pod
	 * does, and is privileged only in a pod made privileged. */
	const char *pod_id;        /* for messages */
	bool pod_host_network;     /* the host's network and UTS namespaces */
	bool pod_host_pid;         /* the host's PID namespace */
	bool pod_privileged;
	bool apparmor_enabled;     /* the host has AppArmor on */
	/* the device nodes allowed_devices names (spawnd_policy_devices), unless "ALL" */
	const struct policy_device *devices;
	size_t n_devices;
	/* whose changes a host path must be safe from (the host checks) */
	uid_t criod_uid;
	gid_t criod_gid;
	/* The container's bundle: with host paths restricted, the pod's own
	 * files (which live in criod's directory, where criod could swap one
	 * for a symlink before the runtime mounts it) are read once here and
	 * mounted from copies in the bundle instead (NULL: not pinned). */
	const char *bundle_dir;
	struct spawnd_policy_pins *pins;
};

/* The pod's files as read at the check, to be written into the bundle. */
#define POLICY_POD_FILE_MAX (64u << 10)
struct spawnd_policy_pins {
	size_t n;
	struct {
		char name[16]; /* "hostname", "hosts", "resolv.conf" */
		char *data;
		size_t len;
		mode_t mode;
	} f[3];
};
/* Write the pinned files into bundle (root's, 0644); 0 or negative errno
 * with err set. */
int spawnd_policy_pins_write(const struct spawnd_policy_pins *pins, const char *bundle, char *err, size_t errlen);
void spawnd_policy_pins_free(struct spawnd_policy_pins *pins);

/* The checks that need nothing but the spec, ctx and the configuration
 * (no file system): every field above. On a refusal err says what and
 * *rule which key. */
int spawnd_policy_check_spec(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			     const char **rule);

/* The host's side of the bind mounts, when host paths are restricted: the
 * pod's own files must be regular files below pod_files_dir reached
 * without a symlink; every other source resolved (realpath) must still be
 * beneath the prefixes, and its directories out of criod's user's reach.
 * Call after spawnd_policy_check_spec. */
int spawnd_policy_check_host(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			     const char **rule);

/* The capabilities [policy] allowed_capabilities lets a container hold:
 * runc's default set and the names listed; UINT64_MAX for ALL. */
uint64_t spawnd_policy_caps_allowed(const struct criod_config *cfg);

/* The device nodes (character and block) at the paths allowed_devices
 * matches (fnmatch, FNM_PATHNAME), found now by globbing. *all when the
 * list holds "ALL" (then *out is NULL). Free *out. */
int spawnd_policy_devices(const struct criod_config *cfg, bool *all, struct policy_device **out, size_t *n);

/* Whether a sysctl name (as the spec holds it, "/" or "." separated) is
 * one of the namespaced ones; *ipc says whether it needs the IPC
 * namespace (else the network's). Exposed for tests. */
bool spawnd_policy_sysctl_namespaced(const char *name, bool *ipc);

/* ---- UpdateContainerResources (conmon's Update, which criod reaches
 * directly): the linux.resources object of the request, by the same rules
 * as the spec's at create: only the fields criod writes (devices, memory,
 * cpu, hugepageLimits, unified), each of its type; every-device rules only
 * with allow_privileged and for a container that had one at create
 * (ctx->pod_privileged: spawnd_policy_resources_privileged of the spec
 * spawnd checked, its bundle's config.json); device rules against
 * allowed_devices; unified keys only files of the resource controllers. */
int spawnd_policy_check_resources(json_object *resources, const struct spawnd_policy_ctx *ctx, char *err,
				  size_t errlen, const char **rule);
/* Whether a linux.resources object allows every device (privileged). */
bool spawnd_policy_resources_privileged(json_object *resources);
/* spawnd_policy_check_resources with the devices resolved, the refusal
 * logged (msg="refused container resources" id= pod= rule= error=, the
 * request id) and the status to answer; err names linux_resources_json. */
int spawnd_policy_enforce_resources(json_object *resources, const struct spawnd_policy_ctx *ctx, const char *req,
				    const char *id, char *err, size_t errlen);

/* Everything above in order, with the devices resolved: what
 * CreateContainer calls. */
int spawnd_policy_check(json_object *spec, const struct spawnd_policy_ctx *ctx, char *err, size_t errlen,
			const char **rule);

/* spawnd_policy_check (with the host's AppArmor state filled in), a log
 * line for a refusal (request id, container, pod, the rule, why), and the
 * status to answer: STATUS_OK, or PERMISSION_DENIED / INVALID_ARGUMENT /
 * FAILED_PRECONDITION (a host path that is not there) with err set. */
int spawnd_policy_enforce(json_object *spec, const struct spawnd_policy_ctx *ctx, const char *req, const char *id,
			  const char *pod_id, char *err, size_t errlen);
