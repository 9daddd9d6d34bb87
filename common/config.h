/* The one configuration of the suite: /etc/criod/criod.conf plus drop-ins in
 * /etc/criod/criod.conf.d/<name>.conf (read in lexical order, later wins). Every
 * component reads the same files; every key has a built-in default, so the
 * suite runs with no file at all.
 *
 * Syntax (INI style):
 *   # comment            ; comment
 *   [section]
 *   key = value          value may be "double quoted"
 *
 * An unknown section or key, a bad value, or a malformed line is an error
 * naming the file, the line and the key. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The configure-time sysconfdir (/etc for the packages), so an installed
 * build reads its own: <sysconfdir>/criod/criod.conf. */
#ifdef SYSCONFDIR
#define CRIOD_DEFAULT_CONFIG SYSCONFDIR "/criod/criod.conf"
#else
#define CRIOD_DEFAULT_CONFIG "/etc/criod/criod.conf"
#endif

/* [registry.HOST] sections, e.g. [registry.localhost:5000] or [registry.docker.io] */
struct registry_config {
	char *host;       /* "localhost:5000", "docker.io" (the section name after "registry.") */
	bool insecure;    /* insecure = true: plain HTTP for this registry (default false: HTTPS) */
	char *ca_file;    /* ca_file = /path: extra CA bundle trusted for this registry */
	char **mirrors;   /* mirrors = host1, host2: tried first, in order, then the origin */
	size_t n_mirrors;
	bool blocked;     /* blocked = true: pulls from this registry are refused */
};

/* [runtime.NAME] sections, e.g. [runtime.runc] or [runtime.kata]: the OCI
 * runtimes a RunPodSandbox runtime_handler may name. Without any such
 * section there is one built-in handler, runc -> /usr/sbin/runc. */
struct runtime_config {
	char *name; /* "runc" (the section name after "runtime.") */
	char *path; /* path = /abs/path: the OCI runtime binary (required) */
};

struct criod_config {
	/* [paths] */
	char *run_dir;   /* sockets and runtime state: /run/criod */
	char *state_dir; /* persistent state: /var/lib/criod; each daemon owns a subdirectory */

	/* [log] */
	char *log_level; /* debug, info, warn, error */

	/* [criod] */
	char *criod_user;       /* unprivileged user criod runs as: criod */
	char *criod_socket;     /* CRI socket: <run_dir>/criod.sock */
	uint64_t max_msg_size;  /* largest gRPC message accepted or sent: 16 MiB */
	uint64_t max_streams;   /* concurrent HTTP/2 streams per connection: 1000 */

	/* [metrics]: criod's Prometheus endpoint (HTTP, GET /metrics) */
	bool metrics_enabled;  /* enabled = true; false: no endpoint at all */
	char *metrics_socket;  /* socket = <run_dir>/metrics.sock (mode 0660, the criod user's) */
	uint64_t metrics_port; /* port = 0; 1..65535: 127.0.0.1:PORT instead of the socket */
	/* [streaming]: the Exec/Attach/PortForward server (criod/stream_server.h) */
	char *stream_address;             /* IP address to listen on: 127.0.0.1 */
	uint64_t stream_port;             /* TCP port: 0 = any free one, chosen at start */
	char *stream_tls_cert;            /* PEM certificate chain, "" = plain HTTP */
	char *stream_tls_key;             /* PEM private key, with tls_cert */
	uint64_t stream_idle_timeout_ms;  /* a session with no traffic this long is closed: 4h */
	uint64_t stream_token_timeout_ms; /* a URL not used this long expires: 1min */

	/* [imaged], [netd], [spawnd]: each root daemon's socket */
	char *imaged_socket; /* <run_dir>/imaged.sock */
	char *netd_socket;   /* <run_dir>/netd.sock */
	char *spawnd_socket; /* <run_dir>/spawnd.sock */

	/* [imaged] further keys */
	char *auth_file;                   /* auth.json with registry credentials: /etc/criod/auth.json */
	uint64_t max_concurrent_downloads; /* layers fetched at once per pull: 3 (1..32) */
	uint64_t fetch_stall_ms;           /* a fetch helper that reads nothing this long is killed: 90s */
	char *rootfs_mode;                 /* "auto" (overlay if the kernel has it, else copy), "overlay", "copy" */
	uint64_t max_layer_size;           /* uncompressed bytes of one layer: 32GiB (1MiB..4096GiB) */
	uint64_t max_layer_entries;        /* tar entries of one layer: 10000000 */
	uint64_t min_free_space;           /* unpacking stops when the store's filesystem would go below: 1GiB */
	uint64_t max_pending_pulls;        /* pulls queued or running (identical ones count once): 64 */
	bool allow_private_registries;     /* [policy]: pull from loopback/private/link-local hosts not listed
					    * in a [registry.HOST] section: false */

	/* every [registry.HOST] section, in file order (a later section for the
	 * same host, e.g. in a drop-in, replaces the keys it sets) */
	struct registry_config *registries;
	size_t n_registries;

	/* [netd] further keys */
	char *net_backend;      /* "netlink" (built in) or "cni" */
	char *net_bridge;       /* host bridge for pod veths: criod0 */
	char *net_subnet;       /* IPv4 pod subnet: 10.88.0.0/16 */
	char *net_subnet6;      /* IPv6 pod subnet, "" for IPv4 only (e.g. fd00:88::/64 for dual stack) */
	bool net_masquerade;    /* masquerade pod egress: true */
	char *net_nft_table;    /* nftables table netd owns (family inet): criod */
	uint64_t net_mtu;       /* 1500 */
	char *cni_conf_dir;     /* /etc/cni/net.d */
	char *cni_bin_dirs;     /* ":"-separated plugin directories: /usr/lib/cni:/opt/cni/bin */

	/* [pods] */
	char *cgroup_driver;         /* "cgroupfs" or "systemd" */
	char *default_cgroup_parent; /* "" means /criod (cgroupfs) or criod.slice (systemd) */
	uint64_t shm_size;           /* a pod's /dev/shm: 64 MiB */
	char *default_runtime;       /* the [runtime.NAME] a runtime_handler of "" means: runc */

	/* every [runtime.NAME] section, in file order (a later section for the
	 * same name replaces the keys it sets); the first such section in any
	 * file replaces the built-in runc handler */
	struct runtime_config *runtimes;
	size_t n_runtimes;
	bool runtimes_builtin; /* runtimes is still the built-in list */

	/* [rpc] */
	uint64_t rpc_timeout_ms; /* default deadline for a call to a root daemon: 120000 */
	uint64_t rpc_frame_timeout_ms; /* a root daemon: a request frame begun must be complete
					* within this: 10s (IPC_DEFAULT_FRAME_TIMEOUT_MS) */
	uint64_t rpc_max_buffered;     /* a root daemon: bytes of partial frames all its
					* connections may hold beyond 64 KiB each: 16MiB */

	/* [policy] */
	/* The directories Localhost seccomp profiles may come from (spawnd's
	 * OpenSeccompProfile): clean absolute paths, never "/", at most 16:
	 * /var/lib/kubelet/seccomp (kubelet's <root-dir>/seccomp) */
	char **seccomp_profile_roots;
	size_t n_seccomp_profile_roots;
	/* The directories container logs may be written beneath (a CRI
	 * log_directory/log_path): conmon opens the root once and every log
	 * below it with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), at
	 * create and at every reopen. Same rules as above: /var/log/pods
	 * (kubelet's pod log directory) */
	char **log_roots;
	size_t n_log_roots;
	/* What spawnd lets a container spec say (conmon/spawnd_policy.h): the
	 * node policy the root side enforces, whatever criod sends. Defaults
	 * allow what kubelet may ask for today. */
	bool allow_privileged;         /* a privileged spec (see spawnd_policy.h): true */
	bool allow_any_host_path;      /* bind mounts of any host path: true; false: only beneath the prefixes */
	char **host_path_prefixes;     /* with allow_any_host_path false: directories bind mounts may come from */
	size_t n_host_path_prefixes;
	char **host_path_readonly_prefixes; /* ...only read-only */
	size_t n_host_path_readonly_prefixes;
	char **allowed_capabilities;   /* CAP_* names or ALL (the default) */
	size_t n_allowed_capabilities;
	bool allow_host_namespaces;    /* host network, PID, IPC, UTS: true */
	char **allowed_devices;        /* host device paths or globs, or ALL (the default) */
	size_t n_allowed_devices;
	bool allow_unconfined_seccomp; /* true */
	bool allow_unconfined_apparmor; /* true */
	char **allowed_sysctls;        /* namespaced sysctl names or globs: kernel.shm*, kernel.msg*, kernel.sem,
					* fs.mqueue.*, net.* */
	size_t n_allowed_sysctls;
	/* The cgroups pods may live under (a pod's cgroup_parent, as a
	 * cgroupfs path, systemd slices expanded): spawnd refuses any other,
	 * except beneath [pods] default_cgroup_parent: /kubepods,
	 * /kubepods.slice (kubelet's, for both drivers) */
	char **cgroup_roots;
	size_t n_cgroup_roots;
	/* netd's hostPort policy (netd/hostport_policy.h): the host ports a
	 * pod may map, "lo-hi" (config_parse_port_range): 1-65535 */
	char *host_port_range;
	bool host_port_local;        /* DNAT locally generated traffic, 127.0.0.1 too: true */
	bool host_port_allow_in_use; /* map a port a host socket listens on: false */
};

/* Fill *cfg with the built-in defaults, then apply path (NULL means
 * CRIOD_DEFAULT_CONFIG, which may be absent; an explicit path must exist) and
 * its drop-in directory "<path>.d". On error returns negative errno and sets
 * *error to a malloc'd message naming file, line and key. */
int config_load(struct criod_config *cfg, const char *path, char **error);

/* Where the values in force came from (`criod config`): the files read, in
 * order, and for each key a file set, the file and line of the last
 * setting. A key without an origin has its built-in default (or, for a
 * socket, its place under [paths] run_dir). */
struct config_origin {
	char *section; /* "paths", "registry.localhost:5000", "runtime.runc" */
	char *key;
	char *file;
	unsigned line;
};
struct config_trace {
	char **files; /* every file read, the main one first, then the drop-ins */
	size_t n_files;
	struct config_origin *origins;
	size_t n_origins;
};
/* config_load, recording into *trace (which it empties first; emptied
 * again on error). */
int config_load_traced(struct criod_config *cfg, const char *path, struct config_trace *trace, char **error);
/* The origin of [section] key, NULL if no file set it. */
const struct config_origin *config_trace_find(const struct config_trace *t, const char *section, const char *key);
void config_trace_free(struct config_trace *t);
/* Parse one buffer as if it were the file named `name` (used by tests).
 * It is applied on top of *cfg, which must already hold a configuration
 * (config_defaults or config_load). All or nothing: on error *cfg is
 * unchanged. A run_dir set in the buffer moves the sockets not set in it. */
int config_parse_string(struct criod_config *cfg, const char *name, const char *text, char **error);
/* Overwrites *cfg without freeing it. */
void config_defaults(struct criod_config *cfg);
/* Frees the strings and sets them to NULL; safe to call twice. */
void config_free(struct criod_config *cfg);
/* The [registry.HOST] section for host, or NULL. */
const struct registry_config *config_registry(const struct criod_config *cfg, const char *host);

/* The handler name names: "" or NULL means [pods] default_runtime. NULL if
 * not configured. */
const struct runtime_config *config_runtime(const struct criod_config *cfg, const char *name);

/* The value syntaxes of the file, for anything else that parses such values.
 * Return 0, -EINVAL (not of that syntax) or -ERANGE (does not fit 64 bits). */
int config_parse_uint(const char *s, uint64_t *out);          /* decimal digits only */
int config_parse_size(const char *s, uint64_t *out);          /* 123, 512K, 16M, 1G, 16MiB, 4 KiB, 10B */
int config_parse_duration_ms(const char *s, uint64_t *out);   /* 250, 250ms, 30s, 2min, 1h */
int config_parse_bool(const char *s, bool *out);              /* true/false, yes/no, on/off, 1/0 */
int config_parse_port_range(const char *s, uint16_t *lo, uint16_t *hi); /* "lo-hi" or "port", 1..65535 */
