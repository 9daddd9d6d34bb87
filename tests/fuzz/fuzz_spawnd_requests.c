/* spawnd's request decoding and checks, as a hostile criod sends them: the
 * body protobuf-c decoded with the method's descriptor, as common/ipc.c
 * decodes it, then what spawnd checks before acting:
 *   CreatePodInfra   the pure checks (pod id, host name, cgroup driver and
 *                    the cgroup parent through cgroup_pod_path for both
 *                    drivers and systemd_slice_expand);
 *   CreateContainer  the spec (config_json) through the node policy
 *                    (spawnd_policy_check_spec) under the default and a
 *                    hardened [policy];
 *   OpenSeccompProfile  the path check (seccomp_profile_path_check).
 * Input: one byte choosing the request (mod 4), then the encoded body.
 * Oracles beyond the sanitizers: a pod cgroup path made from the request is
 * a valid pod path of that pod; a slice expands to an absolute path without
 * empty, "." or ".." components; a refusal names a rule and says why. */
#include <errno.h>
#include <stdio.h>

#include <json-c/json.h>

#include "config.h"
#include "fuzz.h"
#include "internal/spawnd.pb-c.h"
#include "seccomp_profile.h"
#include "spawnd_cgroup.h"
#include "spawnd_pod.h"
#include "spawnd_policy.h"
#include "status.h"
#include "util.h"

static struct criod_config dflt, hard;

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	char *e = NULL;
	fuzz_quiet_logs("fuzz_spawnd_requests");
	config_defaults(&dflt);
	config_defaults(&hard);
	if (config_parse_string(&hard, "hardened.conf",
				"[policy]\nallow_privileged = false\nallow_any_host_path = false\n"
				"host_path_prefixes = /var/lib/kubelet/pods\nallowed_capabilities = CAP_NET_ADMIN\n"
				"allow_host_namespaces = false\nallowed_devices =\nallow_unconfined_seccomp = false\n"
				"allow_unconfined_apparmor = false\nseccomp_profile_roots = /var/lib/kubelet/seccomp, /etc/p\n",
				&e) < 0) {
		fprintf(stderr, "%s\n", e);
		abort();
	}
	return 0;
}

static void spawnd_pod(const uint8_t *p, size_t n)
{
	Criod__Internal__CreatePodInfraRequest *req = criod__internal__create_pod_infra_request__unpack(NULL, n, p);
	if (!req)
		return;
	if (!id_is_valid(req->pod_id))
		goto out;
	(void)pod_hostname_is_valid(req->hostname);
	enum cgroup_driver driver;
	if (req->cgroup_driver[0] && cgroup_driver_from_string(req->cgroup_driver, &driver) < 0)
		goto out;
	if (strnlen(req->cgroup_parent, CGROUP_PATH_MAX + 1) > CGROUP_PATH_MAX)
		goto out;
	for (int d = 0; d < 2; d++) {
		char *path = NULL;
		driver = d ? CGROUP_DRIVER_SYSTEMD : CGROUP_DRIVER_CGROUPFS;
		if (cgroup_pod_path(driver, req->cgroup_parent, "", req->pod_id, &path) == 0) {
			if (!path || !cgroup_path_is_valid(path) || !cgroup_is_pod_path(path, req->pod_id)) {
				fprintf(stderr, "cgroup_pod_path(%d, \"%s\") made \"%s\", which is no valid pod path\n", d,
					req->cgroup_parent, path ? path : "(null)");
				abort();
			}
		}
		free(path);
	}
	char *slice = NULL;
	/* systemd's escapes (its controller list) are narrower than the cgroup
	 * names spawnd takes (the kernel's): an expansion may still be refused
	 * by cgroup_path_is_valid (and so by cgroup_pod_path), never malformed */
	if (systemd_slice_expand(req->cgroup_parent, &slice) == 0 &&
	    (slice[0] != '/' || strstr(slice, "//") || strstr(slice, "/../") || strstr(slice, "/./"))) {
		fprintf(stderr, "slice \"%s\" expanded to \"%s\"\n", req->cgroup_parent, slice);
		abort();
	}
	free(slice);
out:
	criod__internal__create_pod_infra_request__free_unpacked(req, NULL);
}

static void spawnd_container(const uint8_t *p, size_t n)
{
	Criod__Internal__CreateContainerRequest *req = criod__internal__create_container_request__unpack(NULL, n, p);
	if (!req)
		return;
	json_tokener *tok = json_tokener_new_ex(64);
	json_object *spec = json_tokener_parse_ex(tok, (const char *)req->config_json.data, (int)req->config_json.len);
	json_tokener_free(tok);
	for (int c = 0; spec && c < 2; c++) {
		struct spawnd_policy_ctx ctx = {
			.cfg = c ? &hard : &dflt,
			.pod_files_dir = "/var/lib/criod/criod/pods/p1",
			.pod_shm = "/run/criod/pods/p1/shm",
			.pod_ipc_ns = true,
			.pod_id = req->pod_id,
			.pod_privileged = !c,
			.pod_host_network = !c,
			.pod_host_pid = !c,
		};
		char err[1024];
		const char *rule = NULL;
		if (spawnd_policy_check_spec(spec, &ctx, err, sizeof(err), &rule) < 0 && (!rule || !*err))
			abort();
	}
	json_object_put(spec);
	criod__internal__create_container_request__free_unpacked(req, NULL);
}

static void spawnd_profile(const uint8_t *p, size_t n)
{
	Criod__Internal__OpenSeccompProfileRequest *req =
		criod__internal__open_seccomp_profile_request__unpack(NULL, n, p);
	if (!req)
		return;
	size_t root = 0, rel = 0;
	const char *why = NULL;
	int r = seccomp_profile_path_check((const char *)req->path.data, req->path.len, hard.seccomp_profile_roots,
					   hard.n_seccomp_profile_roots, &root, &rel, &why);
	if (r == 0 && (root >= hard.n_seccomp_profile_roots || rel > req->path.len))
		abort();
	if ((r == -EINVAL || r == -ENAMETOOLONG) && !why)
		abort();
	criod__internal__open_seccomp_profile_request__free_unpacked(req, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return -1;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0: spawnd_pod(p, n); break;
	case 1: spawnd_container(p, n); break;
	case 2: spawnd_profile(p, n); break;
	case 3: spawnd_pod(p, n); spawnd_container(p, n); break;
	}
	return 0;
}
