/* criod.conf: a small INI parser driven by one table of keys.
 *
 * Adding a key means adding a field to struct criod_config and one row to
 * config_keys[] below: section, key, type, offset, range and default. The
 * defaults are written as text and go through the same parser as the file,
 * so a default can never be something the file could not say. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_keys.h"
#include "log.h"
#include "macro.h"
#include "util.h"

#define CONFIG_FILE_MAX (1u << 20) /* bytes per file */
#define CONFIG_LINE_MAX 4096       /* bytes per line, without the newline */
#define CONFIG_DROPINS_MAX 1024
#define CONFIG_PATH_MAX 1024      /* daemons append their own components below PATH_MAX */
#define CONFIG_SOCKET_MAX 107      /* sizeof(sun_path) - 1 */
#define CONFIG_USER_MAX 32
#define CONFIG_STRING_MAX 4096
#define CONFIG_QUOTE_MAX 64        /* bytes of a bad value repeated in a message */
#define CONFIG_HOST_MAX 255        /* a registry host[:port] */
#define CONFIG_REGISTRIES_MAX 256  /* [registry.HOST] sections, all files together */
#define CONFIG_MIRRORS_MAX 16      /* hosts in one mirrors list */
#define CONFIG_PROFILE_ROOTS_MAX 16 /* directories in [policy] seccomp_profile_roots, log_roots */
#define CONFIG_POLICY_LIST_MAX 64  /* entries in [policy] host_path_*prefixes, allowed_* */
#define CONFIG_WORD_MAX 255
/* The capability names [policy] allowed_capabilities takes (Linux 5.9+). */
#define CAPABILITY_CHOICES                                                                                     \
	"ALL|CAP_CHOWN|CAP_DAC_OVERRIDE|CAP_DAC_READ_SEARCH|CAP_FOWNER|CAP_FSETID|CAP_KILL|CAP_SETGID|"          \
	"CAP_SETUID|CAP_SETPCAP|CAP_LINUX_IMMUTABLE|CAP_NET_BIND_SERVICE|CAP_NET_BROADCAST|CAP_NET_ADMIN|"      \
	"CAP_NET_RAW|CAP_IPC_LOCK|CAP_IPC_OWNER|CAP_SYS_MODULE|CAP_SYS_RAWIO|CAP_SYS_CHROOT|CAP_SYS_PTRACE|"    \
	"CAP_SYS_PACCT|CAP_SYS_ADMIN|CAP_SYS_BOOT|CAP_SYS_NICE|CAP_SYS_RESOURCE|CAP_SYS_TIME|"                 \
	"CAP_SYS_TTY_CONFIG|CAP_MKNOD|CAP_LEASE|CAP_AUDIT_WRITE|CAP_AUDIT_CONTROL|CAP_SETFCAP|"                \
	"CAP_MAC_OVERRIDE|CAP_MAC_ADMIN|CAP_SYSLOG|CAP_WAKE_ALARM|CAP_BLOCK_SUSPEND|CAP_AUDIT_READ|"           \
	"CAP_PERFMON|CAP_BPF|CAP_CHECKPOINT_RESTORE"
#define REGISTRY_PREFIX "registry."
#define CONFIG_RUNTIMES_MAX 64     /* [runtime.NAME] sections, all files together */
#define CONFIG_RUNTIME_NAME_MAX 63 /* bytes of a runtime handler name */
#define RUNTIME_PREFIX "runtime."
#define RUNTIME_NAME_SYNTAX "1 to 63 letters, digits, '.', '_' or '-'"
#define BUILTIN_RUNTIME_NAME "runc"
#define BUILTIN_RUNTIME_PATH "/usr/sbin/runc"
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

#define OFF(f) offsetof(struct criod_config, f)

static const struct cfg_key config_keys[] = {
	{ "paths", "run_dir", CFG_PATH, OFF(run_dir), 0, CONFIG_PATH_MAX, "/run/criod", NULL, NULL },
	{ "paths", "state_dir", CFG_PATH, OFF(state_dir), 0, CONFIG_PATH_MAX, "/var/lib/criod", NULL, NULL },
	{ "log", "level", CFG_LOG_LEVEL, OFF(log_level), 0, 0, "info", NULL, NULL },
	{ "criod", "user", CFG_USER, OFF(criod_user), 0, 0, "criod", NULL, NULL },
	{ "criod", "socket", CFG_PATH, OFF(criod_socket), 0, CONFIG_SOCKET_MAX, NULL, "criod.sock", NULL },
	/* The internal RPC carries at most 16 MiB (IPC_MAX_FRAME). */
	{ "criod", "max_message_size", CFG_SIZE, OFF(max_msg_size), 4096, 16u << 20, "16MiB", NULL, NULL },
	{ "criod", "max_streams", CFG_UINT, OFF(max_streams), 1, 65536, "1000", NULL, NULL },
	{ "streaming", "address", CFG_STRING, OFF(stream_address), 0, 45, "127.0.0.1", NULL, NULL },
	{ "streaming", "port", CFG_UINT, OFF(stream_port), 0, 65535, "0", NULL, NULL },
	{ "streaming", "tls_cert", CFG_STRING, OFF(stream_tls_cert), 0, CONFIG_PATH_MAX, "", NULL, NULL },
	{ "streaming", "tls_key", CFG_STRING, OFF(stream_tls_key), 0, CONFIG_PATH_MAX, "", NULL, NULL },
	{ "streaming", "idle_timeout", CFG_DURATION_MS, OFF(stream_idle_timeout_ms), 1000, 7ull * 24 * 3600 * 1000,
	  "4h", NULL, NULL },
	{ "streaming", "token_timeout", CFG_DURATION_MS, OFF(stream_token_timeout_ms), 1000, 3600ull * 1000, "1min",
	  NULL, NULL },
	{ "imaged", "socket", CFG_PATH, OFF(imaged_socket), 0, CONFIG_SOCKET_MAX, NULL, "imaged.sock", NULL },
	{ "imaged", "auth_file", CFG_PATH, OFF(auth_file), 0, CONFIG_PATH_MAX, "/etc/criod/auth.json", NULL, NULL },
	{ "imaged", "max_concurrent_downloads", CFG_UINT, OFF(max_concurrent_downloads), 1, 32, "3", NULL, NULL },
	{ "imaged", "fetch_stall_timeout", CFG_DURATION_MS, OFF(fetch_stall_ms), 1000, 3600ull * 1000, "90s", NULL, NULL },
	{ "imaged", "rootfs_mode", CFG_CHOICE, OFF(rootfs_mode), 0, 0, "auto", NULL, "auto|overlay|copy" },
	{ "netd", "socket", CFG_PATH, OFF(netd_socket), 0, CONFIG_SOCKET_MAX, NULL, "netd.sock", NULL },
	{ "netd", "backend", CFG_CHOICE, OFF(net_backend), 0, 0, "netlink", NULL, "netlink|cni" },
	{ "netd", "bridge", CFG_STRING, OFF(net_bridge), 0, 15, "criod0", NULL, NULL },
	{ "netd", "subnet", CFG_STRING, OFF(net_subnet), 0, 64, "10.88.0.0/16", NULL, NULL },
	{ "netd", "subnet6", CFG_STRING, OFF(net_subnet6), 0, 64, "", NULL, NULL },
	{ "netd", "masquerade", CFG_BOOL, OFF(net_masquerade), 0, 0, "true", NULL, NULL },
	{ "netd", "nft_table", CFG_STRING, OFF(net_nft_table), 0, 32, "criod", NULL, NULL },
	{ "netd", "mtu", CFG_UINT, OFF(net_mtu), 576, 65535, "1500", NULL, NULL },
	{ "netd", "cni_conf_dir", CFG_PATH, OFF(cni_conf_dir), 0, CONFIG_PATH_MAX, "/etc/cni/net.d", NULL, NULL },
	{ "netd", "cni_bin_dirs", CFG_STRING, OFF(cni_bin_dirs), 0, 1024, "/usr/lib/cni:/opt/cni/bin", NULL, NULL },
	{ "pods", "cgroup_driver", CFG_CHOICE, OFF(cgroup_driver), 0, 0, "cgroupfs", NULL, "cgroupfs|systemd" },
	{ "pods", "default_cgroup_parent", CFG_STRING, OFF(default_cgroup_parent), 0, 1024, "", NULL, NULL },
	{ "pods", "shm_size", CFG_SIZE, OFF(shm_size), 1u << 20, 1ull << 40, "64MiB", NULL, NULL },
	{ "pods", "default_runtime", CFG_STRING, OFF(default_runtime), 0, CONFIG_RUNTIME_NAME_MAX, BUILTIN_RUNTIME_NAME, NULL, NULL },
	{ "spawnd", "socket", CFG_PATH, OFF(spawnd_socket), 0, CONFIG_SOCKET_MAX, NULL, "spawnd.sock", NULL },
	{ "rpc", "timeout_ms", CFG_DURATION_MS, OFF(rpc_timeout_ms), 1, 24ull * 3600 * 1000, "120000", NULL, NULL },
	/* The root daemons' side of the internal RPC (common/ipc.h): spawnd's
	 * CreateContainer takes 4 MiB, so less than that would refuse it. */
	{ "rpc", "frame_timeout", CFG_DURATION_MS, OFF(rpc_frame_timeout_ms), 100, 3600ull * 1000, "10s", NULL, NULL },
	{ "rpc", "max_buffered", CFG_SIZE, OFF(rpc_max_buffered), 4u << 20, 1ull << 30, "16MiB", NULL, NULL },
	{ "policy", "seccomp_profile_roots", CFG_PATH_LIST, OFF(seccomp_profile_roots), 0, CONFIG_PROFILE_ROOTS_MAX,
	  "/var/lib/kubelet/seccomp", NULL, NULL },
	{ "policy", "log_roots", CFG_PATH_LIST, OFF(log_roots), 0, CONFIG_PROFILE_ROOTS_MAX, "/var/log/pods", NULL, NULL },
	/* The container spec policy spawnd enforces (conmon/spawnd_policy.h). */
	{ "policy", "allow_privileged", CFG_BOOL, OFF(allow_privileged), 0, 0, "true", NULL, NULL },
	{ "policy", "allow_any_host_path", CFG_BOOL, OFF(allow_any_host_path), 0, 0, "true", NULL, NULL },
	{ "policy", "host_path_prefixes", CFG_PATH_LIST, OFF(host_path_prefixes), 0, CONFIG_POLICY_LIST_MAX, "", NULL,
	  NULL },
	{ "policy", "host_path_readonly_prefixes", CFG_PATH_LIST, OFF(host_path_readonly_prefixes), 0,
	  CONFIG_POLICY_LIST_MAX, "", NULL, NULL },
	{ "policy", "allowed_capabilities", CFG_WORD_LIST, OFF(allowed_capabilities), 0, CONFIG_POLICY_LIST_MAX, "ALL",
	  NULL, CAPABILITY_CHOICES },
	{ "policy", "allow_host_namespaces", CFG_BOOL, OFF(allow_host_namespaces), 0, 0, "true", NULL, NULL },
	{ "policy", "allowed_devices", CFG_GLOB_LIST, OFF(allowed_devices), 0, CONFIG_POLICY_LIST_MAX, "ALL", NULL,
	  NULL },
	{ "policy", "allow_unconfined_seccomp", CFG_BOOL, OFF(allow_unconfined_seccomp), 0, 0, "true", NULL, NULL },
	{ "policy", "allow_unconfined_apparmor", CFG_BOOL, OFF(allow_unconfined_apparmor), 0, 0, "true", NULL, NULL },
	{ "policy", "allowed_sysctls", CFG_WORD_LIST, OFF(allowed_sysctls), 0, CONFIG_POLICY_LIST_MAX,
	  "kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, net.*", NULL, NULL },
	{ "policy", "cgroup_roots", CFG_PATH_LIST, OFF(cgroup_roots), 0, CONFIG_PROFILE_ROOTS_MAX,
	  "/kubepods, /kubepods.slice", NULL, NULL },
	/* netd's hostPort policy (netd/hostport_policy.h) */
	{ "policy", "host_port_range", CFG_PORT_RANGE, OFF(host_port_range), 0, 32, "1-65535", NULL, NULL },
	{ "policy", "host_port_local", CFG_BOOL, OFF(host_port_local), 0, 0, "true", NULL, NULL },
	{ "policy", "host_port_allow_in_use", CFG_BOOL, OFF(host_port_allow_in_use), 0, 0, "false", NULL, NULL },
	/* imaged's limits and registries policy (imaged/registry_policy.h, unpack.h, main.c) */
	{ "policy", "allow_private_registries", CFG_BOOL, OFF(allow_private_registries), 0, 0, "false", NULL, NULL },
	{ "imaged", "max_layer_size", CFG_SIZE, OFF(max_layer_size), 1u << 20, 4096ull << 30, "32GiB", NULL, NULL },
	{ "imaged", "max_layer_entries", CFG_UINT, OFF(max_layer_entries), 1, 1000000000, "10000000", NULL, NULL },
	{ "imaged", "min_free_space", CFG_SIZE, OFF(min_free_space), 0, 4096ull << 30, "1GiB", NULL, NULL },
	{ "imaged", "max_pending_pulls", CFG_UINT, OFF(max_pending_pulls), 1, 4096, "64", NULL, NULL },
	/* criod's metrics endpoint: a unix socket, or loopback TCP only. */
	{ "metrics", "enabled", CFG_BOOL, OFF(metrics_enabled), 0, 0, "true", NULL, NULL },
	{ "metrics", "socket", CFG_PATH, OFF(metrics_socket), 0, CONFIG_SOCKET_MAX, NULL, "metrics.sock", NULL },
	{ "metrics", "port", CFG_UINT, OFF(metrics_port), 0, 65535, "0", NULL, NULL },
};

#define N_KEYS ARRAY_SIZE(config_keys)
#define RUN_DIR_KEY 0 /* config_keys[0] is [paths] run_dir */

/* The keys of every [registry.HOST] section; offsets into struct registry_config. */
#define ROFF(f) offsetof(struct registry_config, f)

static const struct cfg_key registry_keys[] = {
	{ "registry.HOST", "insecure", CFG_BOOL, ROFF(insecure), 0, 0, NULL, NULL, NULL },
	{ "registry.HOST", "ca_file", CFG_PATH, ROFF(ca_file), 0, CONFIG_PATH_MAX, NULL, NULL, NULL },
	{ "registry.HOST", "mirrors", CFG_HOST_LIST, ROFF(mirrors), 0, CONFIG_MIRRORS_MAX, NULL, NULL, NULL },
	{ "registry.HOST", "blocked", CFG_BOOL, ROFF(blocked), 0, 0, NULL, NULL, NULL },
};

/* The keys of every [runtime.NAME] section; offsets into struct runtime_config. */
#define RTOFF(f) offsetof(struct runtime_config, f)

static const struct cfg_key runtime_keys[] = {
	{ "runtime.NAME", "path", CFG_PATH, RTOFF(path), 0, CONFIG_PATH_MAX, NULL, NULL, NULL },
};

const struct cfg_key *const config_table = config_keys;
const size_t config_table_n = N_KEYS;
const struct cfg_key *const config_registry_table = registry_keys;
const size_t config_registry_table_n = ARRAY_SIZE(registry_keys);
const struct cfg_key *const config_runtime_table = runtime_keys;
const size_t config_runtime_table_n = ARRAY_SIZE(runtime_keys);
const size_t config_string_max = CONFIG_STRING_MAX;
const size_t config_list_item_max = CONFIG_PATH_MAX;
const size_t config_word_max = CONFIG_WORD_MAX;

_Static_assert(offsetof(struct registry_config, n_mirrors) == offsetof(struct registry_config, mirrors) + sizeof(char **),
	       "CFG_HOST_LIST wants the count right after the list");
_Static_assert(offsetof(struct criod_config, n_seccomp_profile_roots) ==
		       offsetof(struct criod_config, seccomp_profile_roots) + sizeof(char **),
	       "CFG_PATH_LIST wants the count right after the list");
_Static_assert(offsetof(struct criod_config, n_log_roots) == offsetof(struct criod_config, log_roots) + sizeof(char **),
	       "CFG_PATH_LIST wants the count right after the list");
#define LIST_COUNT_FOLLOWS(l, n)                                                                                 \
	_Static_assert(offsetof(struct criod_config, n) == offsetof(struct criod_config, l) + sizeof(char **), \
		       #l ": a list wants its count right after it")
LIST_COUNT_FOLLOWS(host_path_prefixes, n_host_path_prefixes);
LIST_COUNT_FOLLOWS(host_path_readonly_prefixes, n_host_path_readonly_prefixes);
LIST_COUNT_FOLLOWS(allowed_capabilities, n_allowed_capabilities);
LIST_COUNT_FOLLOWS(allowed_devices, n_allowed_devices);
LIST_COUNT_FOLLOWS(allowed_sysctls, n_allowed_sysctls);
_Static_assert(offsetof(struct criod_config, n_cgroup_roots) ==
		       offsetof(struct criod_config, cgroup_roots) + sizeof(char **),
	       "CFG_PATH_LIST wants the count right after the list");

/* What the files loaded so far have set explicitly. */
struct load_state {
	bool set[N_KEYS];
	char *run_dir_where; /* "file:line" of the last run_dir, for derived errors */
	struct config_trace *trace; /* NULL: not recorded */
};

/* ---- messages ---- */

/* "value" with control and non-ASCII bytes escaped, cut at CONFIG_QUOTE_MAX. */
static char *quote(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s), o = 0;
	size_t shown = n > CONFIG_QUOTE_MAX ? CONFIG_QUOTE_MAX : n;
	char *r = malloc(shown * 4 + 8);

	if (!r)
		return NULL;
	r[o++] = '"';
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			r[o++] = '\\';
			r[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			r[o++] = '\\';
			r[o++] = 'x';
			r[o++] = hex[c >> 4];
			r[o++] = hex[c & 0xf];
		} else
			r[o++] = (char)c;
	}
	if (shown < n) {
		memcpy(r + o, "...", 3);
		o += 3;
	}
	r[o++] = '"';
	r[o] = '\0';
	return r;
}

_printf_(3, 4) static int set_error(char **error, int err, const char *fmt, ...)
{
	va_list ap;

	if (!error)
		return err;
	free(*error);
	*error = NULL;
	va_start(ap, fmt);
	if (vasprintf(error, fmt, ap) < 0)
		*error = NULL;
	va_end(ap);
	return err;
}

/* ---- value parsers ---- */

int config_parse_uint(const char *s, uint64_t *out)
{
	uint64_t v;
	int r;

	if (!s || !out)
		return -EINVAL;
	r = parse_u64_digits(&s, &v);
	if (r < 0)
		return r;
	if (*s)
		return -EINVAL;
	*out = v;
	return 0;
}

struct unit {
	const char *suffix;
	uint64_t factor;
};

static int parse_with_units(const char *s, const struct unit *units, size_t n_units, uint64_t *out)
{
	uint64_t v;
	int r;

	if (!s || !out)
		return -EINVAL;
	r = parse_u64_digits(&s, &v);
	if (r == -ERANGE) {
		/* Still tell "too big" from "garbage" for the message. */
		while (*s >= '0' && *s <= '9')
			s++;
	} else if (r < 0)
		return r;
	while (*s == ' ' || *s == '\t')
		s++;
	for (size_t i = 0; i < n_units; i++) {
		if (strcmp(s, units[i].suffix) != 0)
			continue;
		if (r < 0)
			return r;
		if (units[i].factor > 1 && v > UINT64_MAX / units[i].factor)
			return -ERANGE;
		*out = v * units[i].factor;
		return 0;
	}
	return -EINVAL;
}

int config_parse_size(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
		{ "", 1 },           { "B", 1 },
		{ "K", 1ull << 10 }, { "k", 1ull << 10 }, { "KiB", 1ull << 10 },
		{ "M", 1ull << 20 }, { "MiB", 1ull << 20 },
		{ "G", 1ull << 30 }, { "GiB", 1ull << 30 },
	};
	return parse_with_units(s, units, ARRAY_SIZE(units), out);
}

int config_parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
		{ "", 1 },           { "ms", 1 },
		{ "s", 1000 },       { "min", 60 * 1000 },
		{ "h", 3600 * 1000 },
	};
	return parse_with_units(s, units, ARRAY_SIZE(units), out);
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	if (!s || !out)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_port_range(const char *s, uint16_t *lo, uint16_t *hi)
{
	uint64_t a, b;
	int r;

	if (!s || !lo || !hi)
		return -EINVAL;
	r = parse_u64_digits(&s, &a);
	if (r < 0)
		return r;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0') {
		b = a;
	} else {
		if (*s++ != '-')
			return -EINVAL;
		while (*s == ' ' || *s == '\t')
			s++;
		r = parse_u64_digits(&s, &b);
		if (r < 0)
			return r;
		if (*s)
			return -EINVAL;
	}
	if (a < 1 || b > 65535 || a > b)
		return -ERANGE;
	*lo = (uint16_t)a;
	*hi = (uint16_t)b;
	return 0;
}

static bool user_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_USER_MAX)
		return false;
	if (!(isalpha((unsigned char)s[0]) || s[0] == '_') || !isascii((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '$' && i == n - 1)
			break;
		if (!isascii(c) || !(isalnum(c) || c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* NULL if fine, else why not (a static string). */
static const char *path_problem(const char *s, size_t max)
{
	const char *p;

	if (s[0] != '/')
		return "is not an absolute path";
	if (strlen(s) > max)
		return NULL; /* reported with the limit by the caller */
	for (p = s; (p = strstr(p, "..")); p += 2)
		if ((p == s || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return "must not contain \"..\"";
	return NULL;
}

/* Is s one of the "|"-separated words in choices? */
static bool choice_ok(const char *choices, const char *s)
{
	size_t n = strlen(s);
	for (const char *p = choices; p && *p;) {
		const char *end = strchr(p, '|');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && strncmp(p, s, n) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* ---- registry hosts ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static char *trim(char *s)
{
	size_t n;

	while (is_space(*s))
		s++;
	n = strlen(s);
	while (n > 0 && is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* host[:port] or [IPv6][:port], as the registry part of an image name. */
static bool registry_host_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= CONFIG_HOST_MAX && host_port_is_valid(s, n);
}

#define HOST_SYNTAX "host[:port] or [IPv6]:port"

static void free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* NULL if item may be in row k's list, else why not (a static string). */
static const char *list_item_problem(const struct cfg_key *k, const char *item)
{
	if (k->type == CFG_HOST_LIST)
		return registry_host_ok(item) ? NULL : "is not a valid host (" HOST_SYNTAX ")";
	if (k->type == CFG_WORD_LIST) {
		if (k->choices)
			return choice_ok(k->choices, item) ? NULL : "is not a name this key takes (see criod.conf)";
		if (strlen(item) > CONFIG_WORD_MAX)
			return "is too long (max " STRINGIFY(CONFIG_WORD_MAX) " bytes)";
		for (const char *p = item; *p; p++)
			if (!isascii((unsigned char)*p) || !(isalnum((unsigned char)*p) || strchr("_.*?/-", *p)))
				return "is not a word of letters, digits and \"_.*?/-\"";
		return NULL;
	}
	if (k->type == CFG_GLOB_LIST) {
		if (strcmp(item, "ALL") == 0)
			return NULL;
		const char *problem = path_problem(item, CONFIG_PATH_MAX);
		if (problem)
			return problem;
		if (strlen(item) > CONFIG_PATH_MAX)
			return "is too long (max " STRINGIFY(CONFIG_PATH_MAX) " bytes)";
		if (str_has_ctl(item))
			return "contains a control character";
		return NULL;
	}
	const char *problem = path_problem(item, CONFIG_PATH_MAX);
	if (problem)
		return problem;
	if (strlen(item) > CONFIG_PATH_MAX)
		return "is too long (max " STRINGIFY(CONFIG_PATH_MAX) " bytes)";
	if (strcmp(item, "/") == 0)
		return "would be every file of the host";
	for (const char *p = item; *p; p++)
		if (p[0] == '/' && (p[1] == '/' || (p[1] == '.' && (p[2] == '/' || p[2] == '\0'))))
			return "is not a clean path (no \"//\" or \".\" components)";
	return NULL;
}

/* "a, b:5000, [::1]:5000" or "/a, /b" into row k's list; "" empties it. */
static int set_list(void *base, const struct cfg_key *k, const char *value, char **why)
{
	_cleanup_free_ char *copy = strdup(value);
	const char *noun = k->type == CFG_HOST_LIST ? "hosts" : k->type == CFG_PATH_LIST ? "directories" : "entries";
	char **list = NULL, *p, *next;
	size_t n = 0;

	*why = NULL;
	if (!copy)
		return set_error(why, -ENOMEM, "out of memory");
	p = trim(copy);
	if (*p != '\0') {
		for (;; p = next + 1) {
			char *item;
			const char *problem;

			next = strchr(p, ',');
			if (next)
				*next = '\0';
			item = trim(p);
			if (*item == '\0') {
				free_list(list, n);
				return set_error(why, -EINVAL, "empty entry in the list");
			}
			if (k->type == CFG_PATH_LIST) {
				/* "/run/criod/" and "/run/criod" are the same directory. */
				size_t len = strlen(item);
				while (len > 1 && item[len - 1] == '/')
					item[--len] = '\0';
			}
			if ((problem = list_item_problem(k, item))) {
				_cleanup_free_ char *q = quote(item);
				free_list(list, n);
				return set_error(why, -EINVAL, "%s %s", q ? q : "\"?\"", problem);
			}
			if (n == k->max) {
				free_list(list, n);
				return set_error(why, -E2BIG, "too many %s (max %llu)", noun, (unsigned long long)k->max);
			}
			{
				char **nl = realloc(list, (n + 1) * sizeof(*list));
				if (!nl) {
					free_list(list, n);
					return set_error(why, -ENOMEM, "out of memory");
				}
				list = nl;
			}
			list[n] = strdup(item);
			if (!list[n]) {
				free_list(list, n);
				return set_error(why, -ENOMEM, "out of memory");
			}
			n++;
			if (!next)
				break;
		}
	}
	free_list(*list_field(base, k), *list_count_field(base, k));
	*list_field(base, k) = list;
	*list_count_field(base, k) = n;
	return 0;
}

/* Parse value for row k into base (see text_field). On failure returns
 * negative errno and sets *why to a malloc'd reason ("\"abc\" is not a number"). */
static int set_value(void *base, const struct cfg_key *k, const char *value, char **why)
{
	_cleanup_free_ char *q = quote(value);
	const char *qs = q ? q : "\"?\"";
	uint64_t v;
	int r;

	*why = NULL;
	if (is_text_type(k->type)) {
		size_t max = k->max ? k->max : CONFIG_STRING_MAX;
		const char *problem = NULL;
		char *copy, **f;

		switch (k->type) {
		case CFG_PATH:
			problem = path_problem(value, max);
			break;
		case CFG_USER:
			if (!user_name_ok(value))
				problem = "is not a valid user name";
			break;
		case CFG_LOG_LEVEL:
			if (log_level_from_string(value) < 0)
				problem = "is not a log level (debug, info, warn, error)";
			break;
		case CFG_CHOICE:
			if (!choice_ok(k->choices, value)) {
				char list[128];
				size_t j = 0;
				for (const char *c = k->choices; *c && j + 3 < sizeof(list); c++) {
					if (*c == '|') {
						list[j++] = ',';
						list[j++] = ' ';
					} else {
						list[j++] = *c;
					}
				}
				list[j] = '\0';
				return set_error(why, -EINVAL, "%s is not one of: %s", qs, list);
			}
			break;
		case CFG_PORT_RANGE: {
			uint16_t lo, hi;
			if (config_parse_port_range(value, &lo, &hi) < 0)
				problem = "is not a port range (lo-hi, 1 <= lo <= hi <= 65535, e.g. 1-65535 or 30000-32767)";
			break;
		}
		default:
			break;
		}
		if (problem)
			return set_error(why, -EINVAL, "%s %s", qs, problem);
		if (strlen(value) > max)
			return set_error(why, -ENAMETOOLONG, "%s is too long (max %zu bytes)", qs, max);

		copy = strdup(value);
		if (!copy)
			return set_error(why, -ENOMEM, "out of memory");
		if (k->type == CFG_PATH) {
			/* "/run/criod/" and "/run/criod" are the same directory. */
			size_t n = strlen(copy);
			while (n > 1 && copy[n - 1] == '/')
				copy[--n] = '\0';
		}
		f = text_field(base, k);
		free(*f);
		*f = copy;
		return 0;
	}

	switch (k->type) {
	case CFG_BOOL: {
		bool b;
		if (config_parse_bool(value, &b) < 0)
			return set_error(why, -EINVAL, "%s is not a boolean (true, false, yes, no, 1, 0)", qs);
		*bool_field(base, k) = b;
		return 0;
	}
	case CFG_HOST_LIST:
	case CFG_PATH_LIST:
	case CFG_WORD_LIST:
	case CFG_GLOB_LIST:
		return set_list(base, k, value, why);
	case CFG_UINT:
		r = config_parse_uint(value, &v);
		if (r == -EINVAL)
			return set_error(why, r, "%s is not a number", qs);
		break;
	case CFG_SIZE:
		r = config_parse_size(value, &v);
		if (r == -EINVAL)
			return set_error(why, r, "%s is not a size (e.g. 512K, 16MiB, 1G)", qs);
		break;
	case CFG_DURATION_MS:
		r = config_parse_duration_ms(value, &v);
		if (r == -EINVAL)
			return set_error(why, r, "%s is not a duration (milliseconds, or e.g. 30s, 2min, 1h)", qs);
		break;
	default:
		return set_error(why, -EINVAL, "internal error: bad key type");
	}
	if (r < 0 || v < k->min || v > k->max)
		return set_error(why, -ERANGE, "%s is out of range (%llu..%llu)", qs,
				 (unsigned long long)k->min, (unsigned long long)k->max);
	*uint_field(base, k) = v;
	return 0;
}

/* ---- lifecycle ---- */

static void registry_config_free(struct registry_config *rc)
{
	free(rc->host);
	free(rc->ca_file);
	free_list(rc->mirrors, rc->n_mirrors);
	memset(rc, 0, sizeof(*rc));
}

static void runtime_config_free(struct runtime_config *rt)
{
	free(rt->name);
	free(rt->path);
	memset(rt, 0, sizeof(*rt));
}

static void runtimes_free(struct criod_config *cfg)
{
	for (size_t i = 0; i < cfg->n_runtimes; i++)
		runtime_config_free(&cfg->runtimes[i]);
	free(cfg->runtimes);
	cfg->runtimes = NULL;
	cfg->n_runtimes = 0;
}

void config_free(struct criod_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (is_text_type(config_keys[i].type)) {
			char **f = text_field(cfg, &config_keys[i]);
			free(*f);
			*f = NULL;
		} else if (is_list_type(config_keys[i].type)) {
			free_list(*list_field(cfg, &config_keys[i]), *list_count_field(cfg, &config_keys[i]));
			*list_field(cfg, &config_keys[i]) = NULL;
			*list_count_field(cfg, &config_keys[i]) = 0;
		}
	}
	for (size_t i = 0; i < cfg->n_registries; i++)
		registry_config_free(&cfg->registries[i]);
	free(cfg->registries);
	cfg->registries = NULL;
	cfg->n_registries = 0;
	runtimes_free(cfg);
}

/* Deep copy; on failure *dst holds what was copied so far (freeable). */
static int registry_config_copy(struct registry_config *dst, const struct registry_config *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->insecure = src->insecure;
	dst->blocked = src->blocked;
	if (src->host && !(dst->host = strdup(src->host)))
		return -ENOMEM;
	if (src->ca_file && !(dst->ca_file = strdup(src->ca_file)))
		return -ENOMEM;
	if (src->n_mirrors > 0) {
		dst->mirrors = calloc(src->n_mirrors, sizeof(*dst->mirrors));
		if (!dst->mirrors)
			return -ENOMEM;
		for (size_t i = 0; i < src->n_mirrors; i++) {
			dst->mirrors[i] = strdup(src->mirrors[i]);
			if (!dst->mirrors[i])
				return -ENOMEM;
			dst->n_mirrors = i + 1;
		}
	}
	return 0;
}

const struct registry_config *config_registry(const struct criod_config *cfg, const char *host)
{
	if (!cfg || !host)
		return NULL;
	for (size_t i = 0; i < cfg->n_registries; i++)
		if (cfg->registries[i].host && strcasecmp(cfg->registries[i].host, host) == 0)
			return &cfg->registries[i];
	return NULL;
}

const struct runtime_config *config_runtime(const struct criod_config *cfg, const char *name)
{
	if (!cfg)
		return NULL;
	if (!name || !*name)
		name = cfg->default_runtime;
	if (!name)
		return NULL;
	for (size_t i = 0; i < cfg->n_runtimes; i++)
		if (cfg->runtimes[i].name && strcmp(cfg->runtimes[i].name, name) == 0)
			return &cfg->runtimes[i];
	return NULL;
}

static bool runtime_name_ok(const char *n)
{
	size_t l = strlen(n);

	if (l == 0 || l > CONFIG_RUNTIME_NAME_MAX)
		return false;
	for (const char *p = n; *p; p++)
		if (!(isascii((unsigned char)*p) && (isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-')))
			return false;
	return true;
}

/* The index of name's entry in cfg->runtimes, added if new. The first
 * [runtime.NAME] section replaces the built-in list. */
static ssize_t runtime_entry(struct criod_config *cfg, const char *name)
{
	struct runtime_config *n;

	if (cfg->runtimes_builtin) {
		runtimes_free(cfg);
		cfg->runtimes_builtin = false;
	}
	for (size_t i = 0; i < cfg->n_runtimes; i++)
		if (strcmp(cfg->runtimes[i].name, name) == 0)
			return (ssize_t)i;
	if (cfg->n_runtimes >= CONFIG_RUNTIMES_MAX)
		return -E2BIG;
	n = realloc(cfg->runtimes, (cfg->n_runtimes + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	cfg->runtimes = n;
	memset(&n[cfg->n_runtimes], 0, sizeof(*n));
	n[cfg->n_runtimes].name = strdup(name);
	if (!n[cfg->n_runtimes].name)
		return -ENOMEM;
	return (ssize_t)cfg->n_runtimes++;
}

/* After every file: each runtime has a path and default_runtime names one. */
static int check_runtimes(const struct criod_config *cfg, const char *where, char **error)
{
	char known[512] = "";
	size_t used = 0;

	for (size_t i = 0; i < cfg->n_runtimes; i++) {
		if (!cfg->runtimes[i].path)
			return set_error(error, -EINVAL, "%s: [" RUNTIME_PREFIX "%s]: path is required", where,
					 cfg->runtimes[i].name);
		if (used < sizeof(known)) {
			int n = snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
					 cfg->runtimes[i].name);
			if (n > 0)
				used += (size_t)n;
		}
	}
	if (!config_runtime(cfg, "")) {
		_cleanup_free_ char *q = quote(cfg->default_runtime ? cfg->default_runtime : "");
		return set_error(error, -EINVAL,
				 "%s: [pods] default_runtime: %s is not a configured [" RUNTIME_PREFIX "NAME] (configured: %s)",
				 where, q ? q : "\"?\"", cfg->n_runtimes ? known : "none");
	}
	return 0;
}

static int derive_one(struct criod_config *cfg, const struct cfg_key *k, const char *run_dir, char **why)
{
	_cleanup_free_ char *p = NULL;
	size_t n = strlen(run_dir);

	if (asprintf(&p, "%s%s%s", run_dir, n > 0 && run_dir[n - 1] == '/' ? "" : "/", k->derive) < 0)
		return set_error(why, -ENOMEM, "out of memory");
	return set_value(cfg, k, p, why);
}

_noreturn_ static void config_bad_default(const struct cfg_key *k, const char *why)
{
	fprintf(stderr, "criod: built-in default of [%s] %s: %s\n", k->section, k->key, why ? why : "?");
	abort();
}

void config_defaults(struct criod_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_KEYS; i++) {
		_cleanup_free_ char *why = NULL;
		const struct cfg_key *k = &config_keys[i];

		if (k->def && set_value(cfg, k, k->def, &why) < 0)
			config_bad_default(k, why);
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		_cleanup_free_ char *why = NULL;
		const struct cfg_key *k = &config_keys[i];

		if (k->derive && derive_one(cfg, k, cfg->run_dir, &why) < 0)
			config_bad_default(k, why);
	}
	cfg->runtimes = calloc(1, sizeof(*cfg->runtimes));
	if (!cfg->runtimes || !(cfg->runtimes[0].name = strdup(BUILTIN_RUNTIME_NAME)) ||
	    !(cfg->runtimes[0].path = strdup(BUILTIN_RUNTIME_PATH))) {
		fprintf(stderr, "criod: out of memory\n");
		abort();
	}
	cfg->n_runtimes = 1;
	cfg->runtimes_builtin = true;
}

static int config_copy(struct criod_config *dst, const struct criod_config *src)
{
	*dst = *src;
	dst->registries = NULL;
	dst->n_registries = 0;
	dst->runtimes = NULL;
	dst->n_runtimes = 0;
	for (size_t i = 0; i < N_KEYS; i++)
		if (is_list_type(config_keys[i].type)) {
			*list_field(dst, &config_keys[i]) = NULL;
			*list_count_field(dst, &config_keys[i]) = 0;
		}
	for (size_t i = 0; i < N_KEYS; i++) {
		char **f;

		if (!is_text_type(config_keys[i].type))
			continue;
		f = text_field(dst, &config_keys[i]);
		if (*f && !(*f = strdup(*f))) {
			/* Forget the strings not copied yet; they belong to src. */
			for (size_t j = i; j < N_KEYS; j++)
				if (is_text_type(config_keys[j].type))
					*text_field(dst, &config_keys[j]) = NULL;
			config_free(dst);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct cfg_key *k = &config_keys[i];
		size_t n = is_list_type(k->type) ? *list_count_field((void *)src, k) : 0;
		char **from = n ? *list_field((void *)src, k) : NULL, **to;

		if (n == 0)
			continue;
		to = calloc(n, sizeof(*to));
		if (!to) {
			config_free(dst);
			return -ENOMEM;
		}
		*list_field(dst, k) = to;
		for (size_t j = 0; j < n; j++) {
			if (!(to[j] = strdup(from[j]))) {
				config_free(dst);
				return -ENOMEM;
			}
			*list_count_field(dst, k) = j + 1;
		}
	}
	if (src->n_registries > 0) {
		dst->registries = calloc(src->n_registries, sizeof(*dst->registries));
		if (!dst->registries) {
			config_free(dst);
			return -ENOMEM;
		}
		for (size_t i = 0; i < src->n_registries; i++) {
			dst->n_registries = i + 1;
			if (registry_config_copy(&dst->registries[i], &src->registries[i]) < 0) {
				config_free(dst);
				return -ENOMEM;
			}
		}
	}
	if (src->n_runtimes > 0) {
		dst->runtimes = calloc(src->n_runtimes, sizeof(*dst->runtimes));
		if (!dst->runtimes) {
			config_free(dst);
			return -ENOMEM;
		}
		for (size_t i = 0; i < src->n_runtimes; i++) {
			dst->n_runtimes = i + 1;
			if ((src->runtimes[i].name && !(dst->runtimes[i].name = strdup(src->runtimes[i].name))) ||
			    (src->runtimes[i].path && !(dst->runtimes[i].path = strdup(src->runtimes[i].path)))) {
				config_free(dst);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

/* Give each derived key that no file set a value under the final run_dir. */
static int apply_derived(struct criod_config *cfg, const struct load_state *st, char **error)
{
	if (!st->set[RUN_DIR_KEY] || !cfg->run_dir)
		return 0;
	for (size_t i = 0; i < N_KEYS; i++) {
		_cleanup_free_ char *why = NULL;
		const struct cfg_key *k = &config_keys[i];
		int r;

		if (!k->derive || st->set[i])
			continue;
		r = derive_one(cfg, k, cfg->run_dir, &why);
		if (r < 0)
			return set_error(error, r == -ENOMEM ? r : -EINVAL, "%s: [paths] run_dir: derived [%s] %s: %s",
					 st->run_dir_where ? st->run_dir_where : "?", k->section, k->key,
					 why ? why : "invalid");
	}
	return 0;
}

/* ---- provenance (config_load_traced) ---- */

static int trace_add_file(struct config_trace *t, const char *file)
{
	char **n;

	if (!t)
		return 0;
	n = realloc(t->files, (t->n_files + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	t->files = n;
	if (!(n[t->n_files] = strdup(file)))
		return -ENOMEM;
	t->n_files++;
	return 0;
}

static int trace_set(struct config_trace *t, const char *section, const char *key, const char *file, unsigned line)
{
	struct config_origin *o = t ? (struct config_origin *)config_trace_find(t, section, key) : NULL;
	char *f;

	if (!t)
		return 0;
	if (!(f = strdup(file)))
		return -ENOMEM;
	if (!o) {
		struct config_origin *n = realloc(t->origins, (t->n_origins + 1) * sizeof(*n));
		if (!n) {
			free(f);
			return -ENOMEM;
		}
		t->origins = n;
		o = &n[t->n_origins];
		memset(o, 0, sizeof(*o));
		if (!(o->section = strdup(section)) || !(o->key = strdup(key))) {
			free(o->section);
			free(f);
			return -ENOMEM;
		}
		t->n_origins++;
	}
	free(o->file);
	o->file = f;
	o->line = line;
	return 0;
}

const struct config_origin *config_trace_find(const struct config_trace *t, const char *section, const char *key)
{
	if (!t || !section || !key)
		return NULL;
	for (size_t i = 0; i < t->n_origins; i++)
		if (strcmp(t->origins[i].section, section) == 0 && strcmp(t->origins[i].key, key) == 0)
			return &t->origins[i];
	return NULL;
}

void config_trace_free(struct config_trace *t)
{
	if (!t)
		return;
	free_list(t->files, t->n_files);
	for (size_t i = 0; i < t->n_origins; i++) {
		free(t->origins[i].section);
		free(t->origins[i].key);
		free(t->origins[i].file);
	}
	free(t->origins);
	memset(t, 0, sizeof(*t));
}

/* ---- the parser ---- */

static bool section_known(const char *s)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(config_keys[i].section, s) == 0)
			return true;
	return false;
}

static ssize_t key_index(const char *section, const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

static const struct cfg_key *runtime_key(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(runtime_keys); i++)
		if (strcmp(runtime_keys[i].key, key) == 0)
			return &runtime_keys[i];
	return NULL;
}

static const struct cfg_key *registry_key(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(registry_keys); i++)
		if (strcmp(registry_keys[i].key, key) == 0)
			return &registry_keys[i];
	return NULL;
}

/* The index of host's entry in cfg->registries, added if new: a section
 * repeated later (or in a drop-in) sets keys of the same entry. */
static ssize_t registry_entry(struct criod_config *cfg, const char *host)
{
	struct registry_config *n;

	for (size_t i = 0; i < cfg->n_registries; i++)
		if (strcasecmp(cfg->registries[i].host, host) == 0)
			return (ssize_t)i;
	if (cfg->n_registries >= CONFIG_REGISTRIES_MAX)
		return -E2BIG;
	n = realloc(cfg->registries, (cfg->n_registries + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	cfg->registries = n;
	memset(&n[cfg->n_registries], 0, sizeof(*n));
	n[cfg->n_registries].host = strdup(host);
	if (!n[cfg->n_registries].host)
		return -ENOMEM;
	return (ssize_t)cfg->n_registries++;
}

/* Unquote a "..." value in place. Returns NULL on success or the problem. */
static const char *unquote(char *v)
{
	char *r = v + 1, *w = v;

	for (;;) {
		if (*r == '\0')
			return "missing closing quote";
		if (*r == '"')
			break;
		if (*r == '\\') {
			if (r[1] != '"' && r[1] != '\\')
				return "invalid escape in quoted value (only \\\" and \\\\ are allowed)";
			r++;
		}
		*w++ = *r++;
	}
	if (r[1] != '\0')
		return "unexpected text after closing quote";
	*w = '\0';
	return NULL;
}

static int parse_buffer(struct criod_config *cfg, struct load_state *st, const char *name,
			const char *text, size_t len, char **error)
{
	char line[CONFIG_LINE_MAX + 1];
	char section[CONFIG_LINE_MAX + 1] = "";
	size_t pos = 0;
	unsigned lineno = 0;
	ssize_t reg = -1; /* the [registry.HOST] section we are in, as an index into cfg->registries */
	ssize_t rt = -1;  /* the [runtime.NAME] section we are in, as an index into cfg->runtimes */

	/* A UTF-8 byte order mark is not part of the first line. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *s, *eq, *key, *value;
		const struct cfg_key *k;
		ssize_t ki = -1;

		lineno++;
		if (ll > CONFIG_LINE_MAX)
			return set_error(error, -EINVAL, "%s:%u: line too long (max %u bytes)", name, lineno,
					 CONFIG_LINE_MAX);
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl ? 1 : 0);

		if (ll > 0 && line[ll - 1] == '\r')
			line[--ll] = '\0'; /* CRLF */
		for (size_t i = 0; i < ll; i++) {
			unsigned char c = (unsigned char)line[i];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return set_error(error, -EINVAL, "%s:%u: invalid control character 0x%02x", name,
						 lineno, c);
		}

		s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;

		if (*s == '[') {
			size_t n = strlen(s);
			char *sec;

			if (s[n - 1] != ']')
				return set_error(error, -EINVAL, "%s:%u: expected \"[section]\"", name, lineno);
			s[n - 1] = '\0';
			sec = trim(s + 1);
			if (strncmp(sec, REGISTRY_PREFIX, STRLEN(REGISTRY_PREFIX)) == 0) {
				const char *host = sec + STRLEN(REGISTRY_PREFIX);

				if (!registry_host_ok(host)) {
					_cleanup_free_ char *q = quote(host);
					return set_error(error, -EINVAL,
							 "%s:%u: section [" REGISTRY_PREFIX "HOST]: %s is not a registry host (" HOST_SYNTAX ")",
							 name, lineno, q ? q : "\"?\"");
				}
				rt = -1;
				reg = registry_entry(cfg, host);
				if (reg == -E2BIG)
					return set_error(error, -EINVAL, "%s:%u: too many [" REGISTRY_PREFIX "HOST] sections (max %u)",
							 name, lineno, CONFIG_REGISTRIES_MAX);
				if (reg < 0)
					return set_error(error, (int)reg, "%s:%u: out of memory", name, lineno);
				snprintf(section, sizeof(section), "%s", sec);
				continue;
			}
			reg = -1;
			rt = -1;
			if (strncmp(sec, RUNTIME_PREFIX, STRLEN(RUNTIME_PREFIX)) == 0) {
				const char *rname = sec + STRLEN(RUNTIME_PREFIX);

				if (!runtime_name_ok(rname)) {
					_cleanup_free_ char *q = quote(rname);
					return set_error(error, -EINVAL,
							 "%s:%u: section [" RUNTIME_PREFIX "NAME]: %s is not a runtime handler name (" RUNTIME_NAME_SYNTAX ")",
							 name, lineno, q ? q : "\"?\"");
				}
				rt = runtime_entry(cfg, rname);
				if (rt == -E2BIG)
					return set_error(error, -EINVAL, "%s:%u: too many [" RUNTIME_PREFIX "NAME] sections (max %u)",
							 name, lineno, CONFIG_RUNTIMES_MAX);
				if (rt < 0)
					return set_error(error, (int)rt, "%s:%u: out of memory", name, lineno);
				snprintf(section, sizeof(section), "%s", sec);
				continue;
			}
			if (!section_known(sec)) {
				_cleanup_free_ char *q = quote(sec);
				/* Quote only when the name itself looks odd. */
				bool plain = *sec != '\0';
				for (const char *p = sec; *p; p++)
					if (!(isascii((unsigned char)*p) && (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.')))
						plain = false;
				if (plain)
					return set_error(error, -EINVAL, "%s:%u: unknown section [%s]", name, lineno, sec);
				return set_error(error, -EINVAL, "%s:%u: unknown section %s", name, lineno,
						 q ? q : "\"?\"");
			}
			snprintf(section, sizeof(section), "%s", sec);
			continue;
		}

		eq = strchr(s, '=');
		if (!eq)
			return set_error(error, -EINVAL, "%s:%u: expected \"key = value\"", name, lineno);
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		if (*key == '\0')
			return set_error(error, -EINVAL, "%s:%u: expected \"key = value\"", name, lineno);
		if (section[0] == '\0') {
			_cleanup_free_ char *q = quote(key);
			return set_error(error, -EINVAL, "%s:%u: key %s before any [section]", name, lineno,
					 q ? q : "\"?\"");
		}
		if (reg >= 0) {
			k = registry_key(key);
		} else if (rt >= 0) {
			k = runtime_key(key);
		} else {
			ki = key_index(section, key);
			k = ki >= 0 ? &config_keys[ki] : NULL;
		}
		if (!k) {
			_cleanup_free_ char *q = quote(key);
			return set_error(error, -EINVAL, "%s:%u: unknown key %s in section [%s]", name, lineno,
					 q ? q : "\"?\"", section);
		}
		if (*value == '"') {
			const char *problem = unquote(value);
			if (problem)
				return set_error(error, -EINVAL, "%s:%u: [%s] %s: %s", name, lineno, section,
						 k->key, problem);
		}

		{
			_cleanup_free_ char *why = NULL;
			void *base = reg >= 0  ? (void *)&cfg->registries[reg]
				     : rt >= 0 ? (void *)&cfg->runtimes[rt]
						: (void *)cfg;
			int r = set_value(base, k, value, &why);
			if (r < 0)
				return set_error(error, r == -ENOMEM ? r : -EINVAL, "%s:%u: [%s] %s: %s", name,
						 lineno, section, k->key, why ? why : "invalid value");
			/* A registry's section by its entry's spelling of the host. */
			if (reg >= 0)
				snprintf(section, sizeof(section), REGISTRY_PREFIX "%s", cfg->registries[reg].host);
			if ((r = trace_set(st->trace, section, k->key, name, lineno)) < 0)
				return set_error(error, r, "%s:%u: out of memory", name, lineno);
		}
		if (ki < 0)
			continue; /* a registry or runtime key */
		st->set[ki] = true;
		if (ki == RUN_DIR_KEY) {
			free(st->run_dir_where);
			if (asprintf(&st->run_dir_where, "%s:%u", name, lineno) < 0)
				st->run_dir_where = NULL;
		}
	}
	return 0;
}

/* Read one file; *text is NULL (and 0 returned) if it is absent and may be. */
static int read_config_file(const char *path, bool must_exist, char **text, size_t *len, char **error)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t n = 0;

	*text = NULL;
	*len = 0;
	/* O_NONBLOCK: a FIFO in the config directory must not hang us. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT && !must_exist)
			return 0;
		return set_error(error, -errno, "%s: cannot open: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) < 0)
		return set_error(error, -errno, "%s: cannot stat: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return set_error(error, -EINVAL, "%s: not a regular file", path);
	if (st.st_size > (off_t)CONFIG_FILE_MAX)
		return set_error(error, -EFBIG, "%s: file too large (max %u bytes)", path, CONFIG_FILE_MAX);

	buf = malloc(CONFIG_FILE_MAX + 2);
	if (!buf)
		return set_error(error, -ENOMEM, "%s: out of memory", path);
	for (;;) {
		ssize_t r = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return set_error(error, -errno, "%s: cannot read: %s", path, strerror(errno));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CONFIG_FILE_MAX)
			return set_error(error, -EFBIG, "%s: file too large (max %u bytes)", path,
					 CONFIG_FILE_MAX);
	}
	buf[n] = '\0';
	*text = TAKE_PTR(buf);
	*len = n;
	return 0;
}

static int load_one(struct criod_config *cfg, struct load_state *st, const char *path, bool must_exist,
		    char **error)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r;

	r = read_config_file(path, must_exist, &text, &len, error);
	if (r < 0 || !text)
		return r;
	if (trace_add_file(st->trace, path) < 0)
		return set_error(error, -ENOMEM, "%s: out of memory", path);
	return parse_buffer(cfg, st, path, text, len, error);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_dropin_name(const char *n)
{
	size_t l = strlen(n);
	return n[0] != '.' && l > 5 && strcmp(n + l - 5, ".conf") == 0;
}

static int load_dropins(struct criod_config *cfg, struct load_state *st, const char *path, char **error)
{
	_cleanup_free_ char *dir = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (asprintf(&dir, "%s.d", path) < 0) {
		dir = NULL;
		return set_error(error, -ENOMEM, "out of memory");
	}
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return set_error(error, -errno, "%s: cannot open directory: %s", dir, strerror(errno));
	}
	while ((errno = 0, de = readdir(d))) {
		char *p;
		struct stat sb;

		if (!is_dropin_name(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &sb, 0) < 0) {
			r = set_error(error, -errno, "%s/%s: cannot stat: %s", dir, de->d_name, strerror(errno));
			goto out;
		}
		if (!S_ISREG(sb.st_mode))
			continue; /* a directory named x.conf is not a drop-in */
		if (n == CONFIG_DROPINS_MAX) {
			r = set_error(error, -E2BIG, "%s: too many drop-ins (max %u)", dir, CONFIG_DROPINS_MAX);
			goto out;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **nn = realloc(names, ncap * sizeof(*names));
			if (!nn) {
				r = set_error(error, -ENOMEM, "out of memory");
				goto out;
			}
			names = nn;
			cap = ncap;
		}
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0) {
			r = set_error(error, -ENOMEM, "out of memory");
			goto out;
		}
		names[n++] = p;
	}
	if (errno) {
		r = set_error(error, -errno, "%s: cannot read directory: %s", dir, strerror(errno));
		goto out;
	}
	closedir(d);
	d = NULL;

	/* Plain byte order, not the locale's collation. */
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && r == 0; i++)
		r = load_one(cfg, st, names[i], true, error);
out:
	if (d)
		closedir(d);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int config_load(struct criod_config *cfg, const char *path, char **error)
{
	return config_load_traced(cfg, path, NULL, error);
}

int config_load_traced(struct criod_config *cfg, const char *path, struct config_trace *trace, char **error)
{
	struct criod_config tmp;
	struct load_state st = { .trace = trace };
	const char *p = path ? path : CRIOD_DEFAULT_CONFIG;
	int r;

	if (error)
		*error = NULL;
	config_trace_free(trace);
	config_defaults(&tmp);
	r = load_one(&tmp, &st, p, path != NULL, error);
	if (r >= 0)
		r = load_dropins(&tmp, &st, p, error);
	if (r >= 0)
		r = apply_derived(&tmp, &st, error);
	if (r >= 0)
		r = check_runtimes(&tmp, p, error);
	free(st.run_dir_where);
	if (r < 0) {
		config_free(&tmp);
		config_trace_free(trace);
		config_defaults(cfg); /* always something config_free can take */
		return r;
	}
	*cfg = tmp;
	return 0;
}

int config_parse_string(struct criod_config *cfg, const char *name, const char *text, char **error)
{
	struct criod_config tmp;
	struct load_state st = { 0 };
	int r;

	if (error)
		*error = NULL;
	if (!cfg || !text)
		return set_error(error, -EINVAL, "no configuration given");
	if (!name)
		name = "<string>";
	r = config_copy(&tmp, cfg);
	if (r < 0)
		return set_error(error, r, "out of memory");
	r = parse_buffer(&tmp, &st, name, text, strlen(text), error);
	if (r >= 0)
		r = apply_derived(&tmp, &st, error);
	if (r >= 0)
		r = check_runtimes(&tmp, name, error);
	free(st.run_dir_where);
	if (r < 0) {
		config_free(&tmp);
		return r;
	}
	config_free(cfg);
	*cfg = tmp;
	return 0;
}
