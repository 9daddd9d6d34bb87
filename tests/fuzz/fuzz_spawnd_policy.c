/* spawnd's node policy (conmon/spawnd_policy.c) over a CreateContainer
 * spec: the config.json criod sends, which spawnd takes as hostile. Each
 * input is checked under the default and a hardened [policy], for a pod
 * made privileged with the host's namespaces and for one made without, and
 * its linux.resources through the UpdateContainerResources check. The
 * file-system half (spawnd_policy_check_host) is not run: it reads the
 * host's paths. */
#include <stdio.h>

#include <json-c/json.h>

#include "config.h"
#include "fuzz.h"
#include "spawnd_policy.h"

static struct criod_config dflt, hard;
static const struct policy_device gpu = {'c', 195, 0};

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

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	char *e = NULL;
	fuzz_quiet_logs("fuzz_spawnd_policy");
	config_defaults(&dflt);
	config_defaults(&hard);
	if (config_parse_string(&hard, "hardened.conf", hardened, &e) < 0) {
		fprintf(stderr, "%s\n", e);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return -1;
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		abort();
	json_object *spec = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!spec)
		return 0;
	for (int c = 0; c < 2; c++)
		for (int pod = 0; pod < 2; pod++) {
			struct spawnd_policy_ctx ctx = {
				.cfg = c ? &hard : &dflt,
				.pod_files_dir = "/var/lib/criod/criod/pods/p1",
				.pod_shm = pod ? "/run/criod/pods/p1/shm" : NULL,
				.pod_ipc_ns = pod,
				.pod_id = "p1",
				.pod_host_network = pod,
				.pod_host_pid = pod,
				.pod_privileged = pod,
				.apparmor_enabled = c,
				.devices = &gpu,
				.n_devices = 1,
			};
			char err[1024];
			const char *rule = NULL;
			int r = spawnd_policy_check_spec(spec, &ctx, err, sizeof(err), &rule);
			if (r < 0 && (!rule || !*err)) {
				fprintf(stderr, "refused without a rule or a message (%d)\n", r);
				abort();
			}
			json_object *linux_ = json_object_object_get(spec, "linux");
			json_object *res = json_object_is_type(linux_, json_type_object)
						   ? json_object_object_get(linux_, "resources")
						   : NULL;
			if (res) {
				rule = NULL;
				r = spawnd_policy_check_resources(res, &ctx, err, sizeof(err), &rule);
				if (r < 0 && !*err)
					abort();
				(void)spawnd_policy_resources_privileged(res);
			}
		}
	json_object_put(spec);
	return 0;
}
