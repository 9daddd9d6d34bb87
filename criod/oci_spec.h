/* The OCI runtime spec (config.json) of a container, built from the CRI
 * ContainerConfig, its pod and its image, the way Kubernetes expects:
 * command/args/entrypoint/env/workdir merged, user and groups resolved from
 * the image's /etc/passwd and /etc/group, capabilities, privileged,
 * read-only rootfs, masked and read-only paths, no_new_privs, seccomp,
 * AppArmor, sysctls, namespaces, mounts with propagation, devices,
 * resources, hostname/hosts/resolv.conf/shm from the pod, tty/stdin, the
 * image's volumes. Pure: no I/O, so every rule is unit-tested. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cri/api.pb-c.h"
#include "seccomp_profile.h" /* oci_default_seccomp_profile, the profile oci_seccomp_from_profile() takes */

/* The AppArmor profile RuntimeDefault selects (when AppArmor is enabled);
 * whoever starts the container must have loaded it. */
#define OCI_APPARMOR_DEFAULT_PROFILE "criod-default"

/* A device node the caller resolved (stat() of the host path: that is I/O,
 * so it happens outside oci_spec_build). */
struct oci_device {
	const char *path;        /* the path in the container (absolute) */
	char type;               /* 'c', 'b' or 'p' */
	int64_t major, minor;
	uint32_t file_mode;      /* permission bits, e.g. 0666 */
	uint32_t uid, gid;       /* owner of the node in the container */
	const char *permissions; /* cgroup access, a subset of "rwm"; NULL/"" = from config.devices[i], else "rwm" */
};

struct oci_pod_info {
	const char *netns_path; /* "" = host network */
	const char *ipc_ns;     /* "" = host IPC (or the runtime makes none) */
	const char *uts_ns;     /* "" = host UTS */
	const char *pid_ns;     /* pod PID namespace, "" unless the pod shares one */
	const char *shm_path;   /* tmpfs to bind at /dev/shm; "" = host IPC */
	const char *hostname_path, *hosts_path, *resolv_path; /* files to bind in */
	const char *cgroup_parent; /* the pod's cgroup, a cgroupfs path */
	bool cgroup_v2;            /* the host's hierarchy: v2 takes LinuxContainerResources.unified */
};

struct oci_spec_input {
	const char *container_id; /* 64 hex */
	const Runtime__V1__ContainerConfig *config;
	const Runtime__V1__PodSandboxConfig *pod_config;
	const struct oci_pod_info *pod;
	const char *image_config_json; /* the image config document ("" if none) */
	const char *rootfs;            /* absolute path of the mounted rootfs */
	const char *etc_passwd;        /* the image's /etc/passwd contents, NULL if absent */
	const char *etc_group;         /* the image's /etc/group contents, NULL if absent */
	int64_t oom_score_adj_min;     /* the lowest oom_score_adj the host allows (clamp) */
	const char *seccomp_profile_root; /* directory Localhost profiles must live under */
	bool apparmor_enabled;
	/* Added for the rules that need I/O, which the caller does: */
	/* The contents of the Localhost seccomp profile file, read by the caller
	 * from the path oci_spec_seccomp_localhost_path() returned; NULL when
	 * no Localhost profile applies (one that applies without it: -EINVAL). */
	const char *localhost_seccomp_json;
	/* The PID namespace (e.g. /proc/<pid>/ns/pid) of the container named by
	 * namespace_options.target_id, for pid mode TARGET; NULL/"" otherwise. */
	const char *target_pid_ns;
	/* config.devices resolved by the caller: devices[i] for i <
	 * config->n_devices is config.devices[i] (same container_path, in
	 * order); any entries after those are added as they are (e.g. the
	 * host's devices for a privileged container). */
	const struct oci_device *devices;
	size_t n_devices;
	/* HOSTNAME for the environment when the pod config has no hostname
	 * (host network); NULL/"" = none. */
	const char *node_hostname;
	/* The pod sandbox id, for the io.kubernetes.cri.sandbox-id annotation; NULL = omitted. */
	const char *sandbox_id;
	/* The capabilities the process starting the container holds (its
	 * bounding set: bit n is capability n, as CapBnd in /proc/self/status).
	 * "All capabilities" (privileged, add_capabilities "ALL") means those,
	 * as containerd does; 0 = every capability criod knows (0..40). */
	uint64_t host_cap_bounding;
};

struct oci_spec_result {
	char *json;           /* config.json, malloc'd */
	uint32_t uid, gid;    /* the process's resolved user */
	char *stop_signal;    /* from the image config (e.g. "SIGTERM"), malloc'd; NULL = SIGTERM */
	int64_t oom_score_adj; /* after clamping */
	/* The image config's Volumes (clean absolute paths) that no CRI mount
	 * covers: nothing is mounted for them (CRI-O's image_volumes = "mkdir").
	 * Informational: imaged's MountRootfs already created each one as a
	 * directory in the rootfs. malloc'd. */
	char **image_volumes;
	size_t n_image_volumes;
};

/* Returns 0, or negative errno with err naming the offending field, e.g.
 * "config.linux.security_context.run_as_username: user \"x\" not found in
 * the image's /etc/passwd" (-EINVAL: the caller answers INVALID_ARGUMENT). */
int oci_spec_build(const struct oci_spec_input *in, struct oci_spec_result *out, char *err, size_t errlen);
void oci_spec_result_free(struct oci_spec_result *r);
/* The OCI linux.resources object (memory, cpu, hugepageLimits, unified; no
 * devices) of res, as JSON in *out (malloc'd), checked by the same rules the
 * spec builder applies at create: the one validator UpdateContainerResources
 * uses too. field names res in errors ("linux"). 0, or -EINVAL with err
 * naming the field. */
int oci_resources_json(const Runtime__V1__LinuxContainerResources *res, bool cgroup_v2, const char *field,
		       char **out, char *err, size_t errlen);

/* A Localhost seccomp profile file's contents (Docker/OCI JSON format) or
 * the built-in RuntimeDefault profile, converted to the OCI spec's
 * linux.seccomp object; exposed for tests. */
int oci_seccomp_from_profile(const char *profile_json, char **oci_json, char *err, size_t errlen);
/* The same for a given capability set and architecture: a rule applies
 * when the container's (bounding) capabilities hold every includes.caps
 * and none of excludes.caps, and arch is in includes.arches (when given)
 * and not in excludes.arches. caps are names as in the profile
 * ("CAP_SYS_ADMIN"); arch is libseccomp's name ("amd64", "arm64", ...),
 * NULL = this build's. includes.minKernel is taken as satisfied (criod
 * needs a newer kernel than any minKernel the built-in profile names).
 * oci_seccomp_from_profile() is this with runc's default capabilities and
 * the build's architecture. Pure; -EINVAL with err for a bad profile. */
int oci_seccomp_convert(const char *profile_json, const char *const *caps, size_t n_caps, const char *arch,
			char **oci_json, char *err, size_t errlen);
/* The Localhost seccomp profile the container needs, for the caller to read
 * into localhost_seccomp_json: *path is the validated absolute path (inside
 * in->config), or NULL when none applies (privileged, RuntimeDefault,
 * Unconfined). -EINVAL with err naming the field for a bad reference. */
int oci_spec_seccomp_localhost_path(const struct oci_spec_input *in, const char **path, char *err, size_t errlen);
