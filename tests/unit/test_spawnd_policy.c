/* Unit tests for conmon/spawnd_policy.c's pure checks: a spec as criod's
 * builder writes it, mutated field by field, against the default policy
 * and a hardened one (the [policy] keys parsed by common/config.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "config.h"
#include "spawnd_policy.h"

#define POD_DIR "/var/lib/criod/criod/pods/p1"
#define POD_SHM "/run/criod/pods/p1/shm"

/* What criod builds for an ordinary container (criod/oci_spec.c). */
static const char spec_text[] =
	"{\"ociVersion\":\"1.0.2\","
	"\"process\":{\"terminal\":false,\"user\":{\"uid\":0,\"gid\":0,\"additionalGids\":[0]},"
	"\"args\":[\"sleep\",\"1\"],\"env\":[\"PATH=/bin\"],\"cwd\":\"/\","
	"\"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\"],\"effective\":[\"CAP_CHOWN\",\"CAP_KILL\"],"
	"\"permitted\":[\"CAP_CHOWN\",\"CAP_KILL\"],\"inheritable\":[],\"ambient\":[]},"
	"\"noNewPrivileges\":false,\"oomScoreAdj\":0},"
	"\"root\":{\"path\":\"/r\",\"readonly\":false},"
	"\"mounts\":["
	"{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"]},"
	"{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"strictatime\","
	"\"mode=755\",\"size=65536k\"]},"
	"{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":[\"nosuid\",\"noexec\",\"nodev\","
	"\"ro\"]},"
	"{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\",\"source\":\"cgroup\",\"options\":[\"nosuid\","
	"\"noexec\",\"nodev\",\"relatime\",\"ro\"]},"
	"{\"destination\":\"/etc/hosts\",\"type\":\"bind\",\"source\":\"" POD_DIR "/hosts\",\"options\":[\"rbind\","
	"\"rprivate\",\"rw\"]},"
	"{\"destination\":\"/dev/shm\",\"type\":\"bind\",\"source\":\"" POD_SHM "\",\"options\":[\"rbind\","
	"\"rprivate\",\"nosuid\",\"noexec\",\"nodev\",\"rw\"]}],"
	"\"annotations\":{\"a\":\"b\"},"
	"\"linux\":{\"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"},"
	"{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":3,\"access\":\"rwm\"},"
	"{\"allow\":true,\"type\":\"c\",\"major\":136,\"access\":\"rwm\"},"
	"{\"allow\":true,\"type\":\"b\",\"access\":\"m\"}]},"
	"\"cgroupsPath\":\"/criod/criod-x\","
	"\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/run/criod/netns/p1\"},"
	"{\"type\":\"ipc\",\"path\":\"/run/criod/pods/p1/ns/ipc\"},{\"type\":\"uts\",\"path\":\"/run/criod/pods/p1/ns/uts\"},"
	"{\"type\":\"mount\"}],"
	"\"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}]},"
	"\"maskedPaths\":[\"/proc/acpi\",\"/proc/asound\",\"/proc/kcore\",\"/proc/keys\",\"/proc/latency_stats\","
	"\"/proc/timer_list\",\"/proc/timer_stats\",\"/proc/sched_debug\",\"/proc/scsi\",\"/sys/firmware\","
	"\"/sys/devices/virtual/powercap\"],"
	"\"readonlyPaths\":[\"/proc/bus\",\"/proc/fs\",\"/proc/irq\",\"/proc/sys\",\"/proc/sysrq-trigger\"],"
	"\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"}}}";

static const char hardened[] = "[policy]\n"
			       "allow_privileged = false\n"
			       "allow_any_host_path = false\n"
			       "host_path_prefixes = /var/lib/kubelet/pods, /data\n"
			       "host_path_readonly_prefixes = /var/log/pods, /data/ro\n"
			       "allowed_capabilities = CAP_NET_ADMIN\n"
			       "allow_host_namespaces = false\n"
			       "allowed_devices =\n"
			       "allow_unconfined_seccomp = false\n"
			       "allow_unconfined_apparmor = false\n"
			       "allowed_sysctls = net.ipv4.ip_forward, kernel.shm*\n";

static struct criod_config dflt, hard;
static bool aa_on; /* the host has AppArmor */
/* The pod as spawnd's record has it: by default one made with the host's
 * namespaces and privileged, so that only the keys decide. */
static bool pod_hostnet = true, pod_hostpid = true, pod_priv = true;
static const struct policy_device gpu = {'c', 195, 0};

static int setup(void **state)
{
	(void)state;
	char *e = NULL;
	config_defaults(&dflt);
	config_defaults(&hard);
	if (config_parse_string(&hard, "hardened.conf", hardened, &e) < 0) {
		fprintf(stderr, "%s\n", e);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	config_free(&dflt);
	config_free(&hard);
	return 0;
}

/* Check spec_text after edit (a JSON object merged in: a member set to
 * null is removed; "path": replaces at that JSON pointer-ish path via
 * the callback). Returns the result, err and rule. */
typedef void (*mutator)(json_object *spec);

static int check(const struct criod_config *cfg, mutator mut, char *err, size_t errlen, const char **rule)
{
	json_object *spec = json_tokener_parse(spec_text);
	assert_non_null(spec);
	if (mut)
		mut(spec);
	struct spawnd_policy_ctx ctx = {
		.cfg = cfg,
		.pod_files_dir = POD_DIR,
		.pod_shm = POD_SHM,
		.pod_ipc_ns = true,
		.pod_id = "p1",
		.pod_host_network = pod_hostnet,
		.pod_host_pid = pod_hostpid,
		.pod_privileged = pod_priv,
		.apparmor_enabled = aa_on,
		.devices = &gpu,
		.n_devices = 1,
	};
	int r = spawnd_policy_check_spec(spec, &ctx, err, errlen, rule);
	json_object_put(spec);
	return r;
}

static void expect(const struct criod_config *cfg, mutator mut, int want, const char *want_rule, const char *words)
{
	char err[1024] = "";
	const char *rule = NULL;
	int r = check(cfg, mut, err, sizeof(err), &rule);
	if (r != want || (want_rule && (!rule || strcmp(rule, want_rule) != 0)) || (words && !strstr(err, words)))
		fail_msg("got %d (%s) rule %s, want %d rule %s with \"%s\"", r, err, rule ? rule : "-", want,
			 want_rule ? want_rule : "-", words ? words : "");
}

static json_object *at(json_object *o, const char *a, const char *b)
{
	json_object *v = json_object_object_get(o, a);
	return b ? json_object_object_get(v, b) : v;
}

static json_object *mount_at(json_object *spec, const char *dst)
{
	json_object *a = json_object_object_get(spec, "mounts");
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *m = json_object_array_get_idx(a, i);
		if (strcmp(json_object_get_string(json_object_object_get(m, "destination")), dst) == 0)
			return m;
	}
	return NULL;
}

static void add_bind(json_object *spec, const char *src, const char *opt)
{
	json_object *m = json_object_new_object();
	json_object_object_add(m, "destination", json_object_new_string("/x"));
	json_object_object_add(m, "type", json_object_new_string("bind"));
	json_object_object_add(m, "source", json_object_new_string(src));
	json_object *o = json_object_new_array();
	json_object_array_add(o, json_object_new_string("rbind"));
	json_object_array_add(o, json_object_new_string(opt));
	json_object_object_add(m, "options", o);
	json_object_array_add(json_object_object_get(spec, "mounts"), m);
}

static void add_cap(json_object *spec, const char *set, const char *cap)
{
	json_object_array_add(at(at(spec, "process", "capabilities"), set, NULL), json_object_new_string(cap));
}

static void rm_ns(json_object *spec, const char *type)
{
	json_object *a = at(spec, "linux", "namespaces"), *n = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);
		if (strcmp(json_object_get_string(json_object_object_get(e, "type")), type) != 0)
			json_object_array_add(n, json_object_get(e));
	}
	json_object_object_add(json_object_object_get(spec, "linux"), "namespaces", n);
}

static void add_devrule(json_object *spec, const char *json)
{
	json_object_array_add(at(at(spec, "linux", "resources"), "devices", NULL), json_tokener_parse(json));
}

static void add_device(json_object *spec, const char *json)
{
	json_object *l = json_object_object_get(spec, "linux"), *a = json_object_object_get(l, "devices");
	if (!a) {
		a = json_object_new_array();
		json_object_object_add(l, "devices", a);
	}
	json_object_array_add(a, json_tokener_parse(json));
}

static void set_sysctl(json_object *spec, const char *k)
{
	json_object_object_add(at(spec, "linux", "sysctl"), k, json_object_new_string("1"));
}

/* ---- the mutations ---- */
static void m_unknown_top(json_object *s) { json_object_object_add(s, "hooks2", json_object_new_object()); }
static void m_unknown_linux(json_object *s) { json_object_object_add(at(s, "linux", NULL), "intelRdt", json_object_new_object()); }
static void m_unknown_mount(json_object *s) { json_object_object_add(mount_at(s, "/proc"), "uidMappings", json_object_new_array()); }
static void m_bad_type(json_object *s) { json_object_object_add(at(s, "process", "user"), "uid", json_object_new_string("0")); }
static void m_neg_uid(json_object *s) { json_object_object_add(at(s, "process", "user"), "uid", json_object_new_int(-1)); }
static void m_str_array(json_object *s)
{
	json_object *a = json_object_new_array();
	json_object_array_add(a, json_object_new_int(1));
	json_object_object_add(at(s, "process", NULL), "args", a);
}
static void m_bind_etc(json_object *s) { add_bind(s, "/etc", "rw"); }
static void m_bind_etc_ro(json_object *s) { add_bind(s, "/etc", "ro"); }
static void m_bind_data(json_object *s) { add_bind(s, "/data/x", "rw"); }
static void m_bind_data_ro_rw(json_object *s) { add_bind(s, "/data/ro/x", "rw"); }
static void m_bind_data_ro_ro(json_object *s) { add_bind(s, "/data/ro/x", "ro"); }
static void m_bind_log_ro_then_rw(json_object *s)
{
	add_bind(s, "/var/log/pods/a", "ro");
	json_object *o = json_object_object_get(mount_at(s, "/x"), "options");
	json_object_array_add(o, json_object_new_string("rw"));
}
static void m_bind_data_ro_rro(json_object *s)
{
	add_bind(s, "/data/ro/x", "rw");
	json_object_array_add(json_object_object_get(mount_at(s, "/x"), "options"), json_object_new_string("rro"));
}
static void m_bind_unclean(json_object *s) { add_bind(s, "/data/../etc", "ro"); }
static void m_bind_prefix_sibling(json_object *s) { add_bind(s, "/database", "rw"); }
static void m_bind_pod_file(json_object *s) { add_bind(s, POD_DIR "/resolv.conf", "rw"); }
static void m_bind_other_pod_file(json_object *s) { add_bind(s, "/var/lib/criod/criod/pods/p2/resolv.conf", "rw"); }
static void m_bind_pod_other_file(json_object *s) { add_bind(s, POD_DIR "/pod.pb", "rw"); }
static void m_host_shm(json_object *s) { add_bind(s, "/dev/shm", "rw"); }
static void m_tmpfs_rbind(json_object *s)
{
	add_bind(s, "/", "rw");
	json_object_object_add(mount_at(s, "/x"), "type", json_object_new_string("tmpfs"));
}
static void m_ext4(json_object *s) { json_object_object_add(mount_at(s, "/dev"), "type", json_object_new_string("ext4")); }
static void m_proc_elsewhere(json_object *s) { json_object_object_add(mount_at(s, "/proc"), "destination", json_object_new_string("/mnt")); }
static void m_odd_option(json_object *s)
{
	json_object_array_add(json_object_object_get(mount_at(s, "/proc"), "options"), json_object_new_string("x-odd"));
}
static void m_sys_rw(json_object *s)
{
	json_object_array_add(json_object_object_get(mount_at(s, "/sys"), "options"), json_object_new_string("rw"));
}
static void m_rshared(json_object *s)
{
	json_object_array_add(json_object_object_get(mount_at(s, "/etc/hosts"), "options"), json_object_new_string("rshared"));
}
static void m_all_devices(json_object *s) { add_devrule(s, "{\"allow\":true,\"access\":\"rwm\"}"); }
static void m_all_devices_a(json_object *s) { add_devrule(s, "{\"allow\":true,\"type\":\"a\",\"access\":\"rw\"}"); }
static void m_no_masked(json_object *s) { json_object_object_add(at(s, "linux", NULL), "maskedPaths", json_object_new_array()); }
static void m_no_readonly(json_object *s) { json_object_object_del(at(s, "linux", NULL), "readonlyPaths"); }
static void m_sys_admin(json_object *s) { add_cap(s, "bounding", "CAP_SYS_ADMIN"); }
static void m_net_admin(json_object *s) { add_cap(s, "effective", "CAP_NET_ADMIN"); }
static void m_ambient_module(json_object *s) { add_cap(s, "ambient", "CAP_SYS_MODULE"); }
static void m_cap_unknown(json_object *s) { add_cap(s, "bounding", "CAP_FOO"); }
static void m_cap_lower(json_object *s) { add_cap(s, "bounding", "cap_chown"); }
static void m_host_net(json_object *s)
{
	rm_ns(s, "network");
	json_object_object_del(at(s, "linux", NULL), "sysctl");
}
static void m_host_pid(json_object *s) { rm_ns(s, "pid"); }
static void m_host_uts(json_object *s) { rm_ns(s, "uts"); }
static void m_host_ipc(json_object *s) { rm_ns(s, "ipc"); }
static void m_dev_sda(json_object *s)
{
	add_device(s, "{\"path\":\"/dev/sda\",\"type\":\"b\",\"major\":8,\"minor\":0,\"fileMode\":432,\"uid\":0,\"gid\":0}");
}
static void m_dev_gpu(json_object *s)
{
	add_device(s, "{\"path\":\"/dev/nvidia0\",\"type\":\"c\",\"major\":195,\"minor\":0}");
	add_devrule(s, "{\"allow\":true,\"type\":\"c\",\"major\":195,\"minor\":0,\"access\":\"rw\"}");
}
static void m_dev_null_again(json_object *s) { add_device(s, "{\"path\":\"/dev/null2\",\"type\":\"c\",\"major\":1,\"minor\":3}"); }
static void m_rule_mem(json_object *s) { add_devrule(s, "{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":1,\"access\":\"r\"}"); }
static void m_rule_c_any(json_object *s) { add_devrule(s, "{\"allow\":true,\"type\":\"c\",\"access\":\"w\"}"); }
static void m_rule_mknod(json_object *s) { add_devrule(s, "{\"allow\":true,\"type\":\"c\",\"access\":\"m\"}"); }
static void m_rule_bad_access(json_object *s) { add_devrule(s, "{\"allow\":true,\"type\":\"c\",\"access\":\"rx\"}"); }
static void m_no_seccomp(json_object *s) { json_object_object_del(at(s, "linux", NULL), "seccomp"); }
static void m_allow_seccomp(json_object *s)
{
	json_object_object_add(at(s, "linux", "seccomp"), "defaultAction", json_object_new_string("SCMP_ACT_LOG"));
}
static void m_unconfined_aa(json_object *s)
{
	json_object_object_add(at(s, "process", NULL), "apparmorProfile", json_object_new_string("unconfined"));
}
static void m_aa(json_object *s)
{
	json_object_object_add(at(s, "process", NULL), "apparmorProfile", json_object_new_string("criod-default"));
}
static void m_core_pattern(json_object *s) { set_sysctl(s, "kernel.core_pattern"); }
static void m_core_pattern_slash(json_object *s) { set_sysctl(s, "kernel/core_pattern"); }
static void m_sysctl_dotdot(json_object *s) { set_sysctl(s, "net..kernel.core_pattern"); }
static void m_sysctl_shm(json_object *s) { set_sysctl(s, "kernel.shmmax"); }
static void m_sysctl_msg(json_object *s) { set_sysctl(s, "kernel.msgmax"); }
static void m_sysctl_net_hostns(json_object *s) { rm_ns(s, "network"); }

static void test_default_policy(void **state)
{
	(void)state;
	/* What criod builds passes, and so does what kubelet may ask for. */
	expect(&dflt, NULL, 0, NULL, NULL);
	mutator allowed[] = {m_bind_etc,     m_tmpfs_rbind, m_sys_rw,	     m_rshared,	      m_all_devices,
			     m_no_masked,    m_sys_admin,   m_ambient_module, m_host_net,      m_host_pid,
			     m_dev_sda,	     m_rule_mem,    m_no_seccomp,     m_unconfined_aa, m_sysctl_msg,
			     m_host_shm,     m_bind_unclean};
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		expect(&dflt, allowed[i], 0, NULL, NULL);
	/* Always refused: unknown fields, wrong types, mounts criod never
	 * makes, unknown capabilities, non-namespaced sysctls. */
	expect(&dflt, m_unknown_top, -EINVAL, POLICY_RULE_SPEC, "hooks2: unknown field");
	expect(&dflt, m_unknown_linux, -EINVAL, POLICY_RULE_SPEC, "linux.intelRdt: unknown field");
	expect(&dflt, m_unknown_mount, -EINVAL, POLICY_RULE_SPEC, "mounts[0].uidMappings: unknown field");
	expect(&dflt, m_bad_type, -EINVAL, POLICY_RULE_SPEC, "process.user.uid: must be a non-negative integer");
	expect(&dflt, m_neg_uid, -EINVAL, POLICY_RULE_SPEC, "process.user.uid");
	expect(&dflt, m_str_array, -EINVAL, POLICY_RULE_SPEC, "process.args: must be an array of strings");
	expect(&dflt, m_ext4, -EINVAL, POLICY_RULE_SPEC, "\"ext4\" is not a type");
	expect(&dflt, m_proc_elsewhere, -EINVAL, POLICY_RULE_SPEC, "a proc mount only at /proc");
	expect(&dflt, m_odd_option, -EINVAL, POLICY_RULE_SPEC, "x-odd");
	expect(&dflt, m_cap_unknown, -EINVAL, POLICY_RULE_SPEC, "not a capability name");
	expect(&dflt, m_cap_lower, -EINVAL, POLICY_RULE_SPEC, "not a capability name");
	expect(&dflt, m_rule_bad_access, -EINVAL, POLICY_RULE_SPEC, "access");
	expect(&dflt, m_core_pattern, -EPERM, "namespaced sysctls only", "kernel.core_pattern");
	expect(&dflt, m_core_pattern_slash, -EPERM, "namespaced sysctls only", NULL);
	expect(&dflt, m_sysctl_dotdot, -EPERM, "namespaced sysctls only", NULL);
	expect(&dflt, m_sysctl_net_hostns, -EPERM, "namespaced sysctls only", "no network namespace");
}

static void test_hardened_policy(void **state)
{
	(void)state;
	expect(&hard, NULL, 0, NULL, NULL);
	/* allowed under the hardened one */
	mutator allowed[] = {m_bind_data_ro_rro, m_bind_data,   m_bind_data_ro_ro, m_bind_pod_file, m_net_admin, m_dev_gpu,
			     m_dev_null_again, m_rule_mknod, m_sysctl_shm,	 m_aa};
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		expect(&hard, allowed[i], 0, NULL, NULL);
	expect(&hard, m_bind_etc, -EPERM, "[policy] host_path_prefixes", "/etc");
	expect(&hard, m_bind_etc_ro, -EPERM, "[policy] host_path_prefixes", NULL);
	expect(&hard, m_tmpfs_rbind, -EPERM, "[policy] host_path_prefixes", NULL);
	expect(&hard, m_bind_prefix_sibling, -EPERM, "[policy] host_path_prefixes", "/database");
	expect(&hard, m_bind_other_pod_file, -EPERM, "[policy] host_path_prefixes", NULL);
	expect(&hard, m_bind_pod_other_file, -EPERM, "[policy] host_path_prefixes", "pod.pb");
	expect(&hard, m_bind_unclean, -EINVAL, POLICY_RULE_SPEC, "clean absolute path");
	/* the longest prefix decides: /data/ro beneath /data is read-only */
	expect(&hard, m_bind_data_ro_rw, -EPERM, "[policy] host_path_readonly_prefixes", "read-only");
	expect(&hard, m_bind_log_ro_then_rw, -EPERM, "[policy] host_path_readonly_prefixes", NULL);
	expect(&hard, m_host_shm, -EPERM, "[policy] host_path_prefixes", NULL); /* the pod has an IPC namespace */
	expect(&hard, m_sys_rw, -EPERM, "[policy] allow_privileged", "/sys");
	expect(&hard, m_rshared, -EPERM, "[policy] allow_privileged", "Bidirectional");
	expect(&hard, m_all_devices, -EPERM, "[policy] allow_privileged", "every device");
	expect(&hard, m_all_devices_a, -EPERM, "[policy] allow_privileged", "every device");
	expect(&hard, m_no_masked, -EPERM, "[policy] allow_privileged", "maskedPaths lacks /proc/acpi");
	expect(&hard, m_no_readonly, -EPERM, "[policy] allow_privileged", "readonlyPaths lacks /proc/bus");
	expect(&hard, m_sys_admin, -EPERM, "[policy] allowed_capabilities", "CAP_SYS_ADMIN");
	expect(&hard, m_ambient_module, -EPERM, "[policy] allowed_capabilities", "ambient");
	expect(&hard, m_host_net, -EPERM, "[policy] allow_host_namespaces", "network");
	expect(&hard, m_host_pid, -EPERM, "[policy] allow_host_namespaces", "pid");
	expect(&hard, m_host_uts, -EPERM, "[policy] allow_host_namespaces", "uts");
	expect(&hard, m_dev_sda, -EPERM, "[policy] allowed_devices", "/dev/sda");
	expect(&hard, m_rule_mem, -EPERM, "[policy] allowed_devices", "c 1:1");
	expect(&hard, m_rule_c_any, -EPERM, "[policy] allowed_devices", NULL);
	expect(&hard, m_no_seccomp, -EPERM, "[policy] allow_unconfined_seccomp", "absent");
	expect(&hard, m_allow_seccomp, -EPERM, "[policy] allow_unconfined_seccomp", "SCMP_ACT_LOG");
	expect(&hard, m_sysctl_msg, -EPERM, "[policy] allowed_sysctls", "kernel.msgmax");
	expect(&hard, m_core_pattern, -EPERM, "namespaced sysctls only", NULL);
}

/* A container's host namespaces and privileges rest on spawnd's record of
 * its pod (what CreatePodInfra made under the policy), not on the spec
 * criod sends: the default policy allows them only in a pod made so. */
static void test_pod_record_decides(void **state)
{
	(void)state;
	pod_priv = false;
	expect(&dflt, NULL, 0, NULL, NULL);
	expect(&dflt, m_all_devices, -EPERM, POLICY_RULE_POD_PRIVILEGED, "spawnd made pod p1 unprivileged");
	expect(&dflt, m_all_devices_a, -EPERM, POLICY_RULE_POD_PRIVILEGED, "every device");
	expect(&dflt, m_sys_rw, -EPERM, POLICY_RULE_POD_PRIVILEGED, "/sys");
	expect(&dflt, m_rshared, -EPERM, POLICY_RULE_POD_PRIVILEGED, "Bidirectional");
	/* what is not privileged stays the keys': masked and read-only paths
	 * any container may set (CRI masked_paths, kubelet's procMount) */
	expect(&dflt, m_no_masked, 0, NULL, NULL);
	expect(&dflt, m_no_readonly, 0, NULL, NULL);
	expect(&hard, m_no_masked, -EPERM, "[policy] allow_privileged", "maskedPaths");
	expect(&dflt, m_sys_admin, 0, NULL, NULL);
	expect(&dflt, m_dev_sda, 0, NULL, NULL);
	/* the key speaks first where it refuses anyway */
	expect(&hard, m_all_devices, -EPERM, "[policy] allow_privileged", NULL);
	pod_priv = true;

	pod_hostnet = false;
	expect(&dflt, m_host_net, -EPERM, POLICY_RULE_POD_HOST_NS, "no network namespace");
	expect(&dflt, m_host_uts, -EPERM, POLICY_RULE_POD_HOST_NS, "does not share the host's");
	expect(&dflt, m_host_pid, 0, NULL, NULL);
	pod_hostnet = true;
	pod_hostpid = false;
	expect(&dflt, m_host_pid, -EPERM, POLICY_RULE_POD_HOST_NS, "no pid namespace");
	expect(&dflt, m_host_net, 0, NULL, NULL);
	expect(&hard, m_host_pid, -EPERM, "[policy] allow_host_namespaces", "pid");
	pod_hostpid = true;
	/* the pod holds an IPC namespace (pod_ipc_ns): none for the container is the host's */
	expect(&dflt, m_host_ipc, -EPERM, POLICY_RULE_POD_HOST_NS, "no ipc namespace");
}

static void m_unified_procs(json_object *s)
{
	json_object *u = json_object_new_object();
	json_object_object_add(u, "cgroup.procs", json_object_new_string("1"));
	json_object_object_add(at(s, "linux", "resources"), "unified", u);
}

/* UpdateContainerResources: conmon checks the request's linux.resources
 * with the same rules as the spec's at create. */
static int check_res(const struct criod_config *cfg, const char *json, bool privileged, char *err, size_t errlen,
		     const char **rule)
{
	json_object *res = json_tokener_parse(json);
	assert_non_null(res);
	struct spawnd_policy_ctx ctx = {.cfg = cfg, .pod_privileged = privileged, .devices = &gpu, .n_devices = 1};
	int r = spawnd_policy_check_resources(res, &ctx, err, errlen, rule);
	json_object_put(res);
	return r;
}

static void expect_res(const struct criod_config *cfg, const char *json, bool privileged, int want,
		       const char *want_rule, const char *words)
{
	char err[1024] = "";
	const char *rule = NULL;
	int r = check_res(cfg, json, privileged, err, sizeof(err), &rule);
	if (r != want || (want_rule && (!rule || strcmp(rule, want_rule) != 0)) || (words && !strstr(err, words)))
		fail_msg("%s: got %d (%s) rule %s, want %d rule %s with \"%s\"", json, r, err, rule ? rule : "-", want,
			 want_rule ? want_rule : "-", words ? words : "");
}

static void test_update_resources(void **state)
{
	(void)state;
	/* what criod's UpdateContainerResources writes */
	const char *ok = "{\"memory\":{\"limit\":104857600,\"swap\":-1},\"cpu\":{\"shares\":512,\"quota\":50000,"
			 "\"period\":100000,\"cpus\":\"0\",\"mems\":\"0\"},"
			 "\"hugepageLimits\":[{\"pageSize\":\"2MB\",\"limit\":0}],"
			 "\"unified\":{\"memory.high\":\"max\",\"hugetlb.2MB.max\":\"0\",\"pids.max\":\"100\"}}";
	expect_res(&dflt, ok, false, 0, NULL, NULL);
	expect_res(&hard, ok, false, 0, NULL, NULL);
	expect_res(&dflt, "{}", false, 0, NULL, NULL);
	/* fields criod never writes, wrong types */
	expect_res(&dflt, "{\"pids\":{\"limit\":1}}", false, -EINVAL, POLICY_RULE_SPEC, "linux.resources.pids: unknown field");
	expect_res(&dflt, "{\"blockIO\":{}}", false, -EINVAL, POLICY_RULE_SPEC, "blockIO: unknown field");
	expect_res(&dflt, "{\"memory\":{\"kernel\":1}}", false, -EINVAL, POLICY_RULE_SPEC, "memory.kernel: unknown field");
	expect_res(&dflt, "{\"memory\":{\"limit\":\"1\"}}", false, -EINVAL, POLICY_RULE_SPEC, "must be an integer");
	expect_res(&dflt, "{\"unified\":{\"memory.max\":1}}", false, -EINVAL, POLICY_RULE_SPEC, "an object of strings");
	expect_res(&dflt, "[]", false, -EINVAL, POLICY_RULE_SPEC, "must be a JSON object");
	/* cgroup v2 files: only the resource controllers', never the core's */
	expect_res(&dflt, "{\"unified\":{\"cgroup.procs\":\"1\"}}", false, -EPERM, "cgroup v2 resource files only",
		   "cgroup.procs");
	expect_res(&dflt, "{\"unified\":{\"cgroup.subtree_control\":\"+memory\"}}", false, -EPERM,
		   "cgroup v2 resource files only", NULL);
	expect_res(&dflt, "{\"unified\":{\"memory.max/../../cgroup.procs\":\"1\"}}", false, -EPERM,
		   "cgroup v2 resource files only", NULL);
	expect_res(&dflt, "{\"unified\":{\"memory.\":\"1\"}}", false, -EPERM, "cgroup v2 resource files only", NULL);
	expect_res(&dflt, "{\"unified\":{\"devices.allow\":\"a\"}}", false, -EPERM, "cgroup v2 resource files only", NULL);
	expect_res(&dflt, "{\"unified\":{\"memory.max\":\"1\\u0000x\"}}", false, -EINVAL, POLICY_RULE_SPEC,
		   "control character");
	/* device rules, as at create */
	const char *all = "{\"devices\":[{\"allow\":true,\"access\":\"rwm\"}]}";
	expect_res(&dflt, all, false, -EPERM, POLICY_RULE_POD_PRIVILEGED, "every device");
	expect_res(&dflt, all, true, 0, NULL, NULL);
	expect_res(&hard, all, true, -EPERM, "[policy] allow_privileged", "every device");
	const char *mem = "{\"devices\":[{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":1,\"access\":\"rw\"}]}";
	expect_res(&dflt, mem, false, 0, NULL, NULL); /* allowed_devices = ALL */
	expect_res(&hard, mem, false, -EPERM, "[policy] allowed_devices", "c 1:1");
	expect_res(&hard, "{\"devices\":[{\"allow\":true,\"type\":\"c\",\"major\":195,\"minor\":0,\"access\":\"rw\"}]}",
		   false, 0, NULL, NULL);
	expect_res(&hard, "{\"devices\":[{\"allow\":false,\"access\":\"rwm\"}]}", false, 0, NULL, NULL);
	expect_res(&hard, "{\"devices\":[{\"type\":\"c\"}]}", false, -EINVAL, POLICY_RULE_SPEC, "allow: required");
	/* privileged at create is what the spec spawnd checked says */
	json_object *r1 = json_tokener_parse(all), *r2 = json_tokener_parse(mem);
	assert_true(spawnd_policy_resources_privileged(r1));
	assert_false(spawnd_policy_resources_privileged(r2));
	json_object_put(r1);
	json_object_put(r2);
	/* and the spec's own at create */
	expect(&dflt, m_unified_procs, -EPERM, "cgroup v2 resource files only", "linux.resources.unified");
}

static void test_apparmor_only_where_enabled(void **state)
{
	(void)state;
	/* the spec has no apparmorProfile: refused only where the host has
	 * AppArmor, and only by the hardened policy */
	expect(&hard, m_unconfined_aa, 0, NULL, NULL);
	aa_on = true;
	expect(&hard, NULL, -EPERM, "[policy] allow_unconfined_apparmor", "absent");
	expect(&hard, m_unconfined_aa, -EPERM, "[policy] allow_unconfined_apparmor", "unconfined");
	expect(&hard, m_aa, 0, NULL, NULL);
	expect(&dflt, NULL, 0, NULL, NULL);
	expect(&dflt, m_unconfined_aa, 0, NULL, NULL);
	aa_on = false;
}

static void test_sysctl_namespaced(void **state)
{
	(void)state;
	bool ipc;
	assert_true(spawnd_policy_sysctl_namespaced("kernel.shmmax", &ipc) && ipc);
	assert_true(spawnd_policy_sysctl_namespaced("kernel.sem", &ipc) && ipc);
	assert_true(spawnd_policy_sysctl_namespaced("fs.mqueue.msg_max", &ipc) && ipc);
	assert_true(spawnd_policy_sysctl_namespaced("net.ipv4.ip_forward", &ipc) && !ipc);
	assert_true(spawnd_policy_sysctl_namespaced("net/ipv4/conf/eth0/rp_filter", &ipc) && !ipc);
	assert_false(spawnd_policy_sysctl_namespaced("kernel.core_pattern", &ipc));
	assert_false(spawnd_policy_sysctl_namespaced("kernel.semx", &ipc));
	assert_false(spawnd_policy_sysctl_namespaced("kernel/core_pattern", &ipc));
	assert_false(spawnd_policy_sysctl_namespaced("net./../kernel.core_pattern", &ipc));
	assert_false(spawnd_policy_sysctl_namespaced("net..x", &ipc));
	assert_false(spawnd_policy_sysctl_namespaced("net.", &ipc));
	assert_false(spawnd_policy_sysctl_namespaced("", &ipc));
	assert_false(spawnd_policy_sysctl_namespaced("vm.overcommit_memory", &ipc));
}

static void test_config_keys(void **state)
{
	(void)state;
	struct criod_config c;
	char *e = NULL;
	config_defaults(&c);
	assert_true(c.allow_privileged && c.allow_any_host_path && c.allow_host_namespaces &&
		    c.allow_unconfined_seccomp && c.allow_unconfined_apparmor);
	assert_int_equal(c.n_allowed_capabilities, 1);
	assert_string_equal(c.allowed_capabilities[0], "ALL");
	assert_int_equal(c.n_allowed_devices, 1);
	assert_int_equal(c.n_allowed_sysctls, 5);
	assert_int_equal(c.n_host_path_prefixes, 0);
	assert_int_equal(config_parse_string(&c, "x", "[policy]\nallowed_capabilities = CAP_FOO\n", &e), -EINVAL);
	assert_non_null(strstr(e, "allowed_capabilities"));
	free(e);
	e = NULL;
	assert_int_equal(config_parse_string(&c, "x", "[policy]\nhost_path_prefixes = /\n", &e), -EINVAL);
	free(e);
	e = NULL;
	assert_int_equal(config_parse_string(&c, "x", "[policy]\nallowed_devices = dev/sda\n", &e), -EINVAL);
	free(e);
	e = NULL;
	assert_int_equal(config_parse_string(&c, "x", "[policy]\nallowed_sysctls = kernel.shm*, a b\n", &e), -EINVAL);
	free(e);
	e = NULL;
	assert_int_equal(config_parse_string(&c, "x", "[policy]\nallowed_devices = /dev/nvidia*, ALL\n"
						      "allowed_capabilities = CAP_SYS_ADMIN, ALL\n", &e), 0);
	assert_int_equal(c.n_allowed_devices, 2);
	config_free(&c);
}

/* Fuzzing finding (tests/fuzz/spawnd_policy/crash-resources-devices-not-array):
 * a linux.resources whose "devices" is not an array made json-c abort
 * (json_object_array_length's assertion) in the check conmon makes of the
 * config.json it reads back. Any JSON now answers, not privileged. */
static void test_resources_privileged_any_json(void **state)
{
	(void)state;
	static const char *const docs[] = {
		"{\"devices\":{}}", "{\"devices\":\"rwm\"}", "{\"devices\":7}", "{\"devices\":null}",
		"{\"devices\":[1,null,\"x\",{\"allow\":false}]}", "[]", "\"x\"",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_object *o = json_tokener_parse(docs[i]);
		assert_false(spawnd_policy_resources_privileged(o));
		json_object_put(o);
	}
	assert_false(spawnd_policy_resources_privileged(NULL));
	/* an every-device rule still counts */
	json_object *all = json_tokener_parse("{\"devices\":[{\"allow\":true,\"access\":\"rwm\"}]}");
	assert_true(spawnd_policy_resources_privileged(all));
	json_object_put(all);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_policy),
		cmocka_unit_test(test_hardened_policy),
		cmocka_unit_test(test_pod_record_decides),
		cmocka_unit_test(test_update_resources),
		cmocka_unit_test(test_apparmor_only_where_enabled),
		cmocka_unit_test(test_sysctl_namespaced),
		cmocka_unit_test(test_config_keys),
		cmocka_unit_test(test_resources_privileged_any_json),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
