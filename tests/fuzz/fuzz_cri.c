/* CRI request validation and translation (criod/cri_validate.c,
 * criod/oci_spec.c): a CreateContainerRequest as kubelet or anyone on the
 * CRI socket sends it, protobuf-c decoded as criod's gRPC layer decodes it,
 * through RunPodSandbox's checks of its sandbox_config and CreateContainer's
 * own, and when those pass, into the OCI spec builder with the image's
 * config, /etc/passwd, /etc/group and a Localhost seccomp profile from the
 * input. The spec built then goes through spawnd's policy, as it would on
 * the root side. Oracles beyond the sanitizers: a spec that builds is one
 * JSON object; a refusal names a field.
 *
 * The same first part is also decoded as an UpdateRuntimeConfigRequest,
 * whose pod CIDR goes through criod/pod_cidr.c (oracle: the canonical form
 * parses back to itself).
 *
 * Input parts (FUZZ_SEP): the encoded request, the image config, passwd,
 * group, the seccomp profile. */
#include <errno.h>
#include <stdio.h>

#include <json-c/json.h>

#include "config.h"
#include "cri/api.pb-c.h"
#include "cri_validate.h"
#include "fuzz.h"
#include "oci_spec.h"
#include "pod_cidr.h"
#include "spawnd_policy.h"
#include "status.h"

#define CID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SID "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static struct criod_config dflt;

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_cri");
	config_defaults(&dflt);
	return 0;
}

static void resources(const Runtime__V1__LinuxContainerResources *res)
{
	for (int v2 = 0; v2 < 2; v2++) {
		char *json = NULL, err[512];
		if (oci_resources_json(res, v2, "linux", &json, err, sizeof(err)) == 0) {
			json_object *o = json_tokener_parse(json);
			if (!json_object_is_type(o, json_type_object)) {
				fprintf(stderr, "oci_resources_json made no JSON object: %s\n", json);
				abort();
			}
			json_object_put(o);
		}
		free(json);
	}
}

static void build(const Runtime__V1__CreateContainerRequest *req, const char *image_config, const char *passwd,
		  const char *group, const char *profile)
{
	const Runtime__V1__ContainerConfig *cfg = req->config;
	struct oci_pod_info pod = {
		.netns_path = "/run/criod/netns/" SID,
		.ipc_ns = "/run/criod/pods/" SID "/ns/ipc",
		.uts_ns = "/run/criod/pods/" SID "/ns/uts",
		.pid_ns = "/run/criod/pods/" SID "/ns/pid",
		.shm_path = "/run/criod/pods/" SID "/shm",
		.hostname_path = "/var/lib/criod/criod/pods/" SID "/hostname",
		.hosts_path = "/var/lib/criod/criod/pods/" SID "/hosts",
		.resolv_path = "/var/lib/criod/criod/pods/" SID "/resolv.conf",
		.cgroup_parent = "/kubepods/pod1",
		.cgroup_v2 = cfg->n_annotations & 1,
	};
	/* the devices as container_create.c resolves them (a stat of the host
	 * path): every one a character device here */
	struct oci_device *devs = calloc(cfg->n_devices + 1, sizeof(*devs));
	if (!devs)
		abort();
	for (size_t i = 0; i < cfg->n_devices; i++) {
		const Runtime__V1__Device *d = cfg->devices[i];
		devs[i] = (struct oci_device){.path = d->container_path && *d->container_path ? d->container_path : "/dev/x",
					      .type = 'c', .major = 1, .minor = (int64_t)i, .file_mode = 0666,
					      .permissions = d->permissions};
	}
	struct oci_spec_input in = {
		.container_id = CID,
		.config = cfg,
		.pod_config = req->sandbox_config,
		.pod = &pod,
		.image_config_json = image_config,
		.rootfs = "/var/lib/criod/imaged/containers/" CID "/rootfs",
		.etc_passwd = *passwd ? passwd : NULL,
		.etc_group = *group ? group : NULL,
		.oom_score_adj_min = -998,
		.seccomp_profile_root = "/var/lib/kubelet/seccomp",
		.apparmor_enabled = cfg->n_envs & 1,
		.devices = devs,
		.n_devices = cfg->n_devices,
		.node_hostname = "node-1",
		.sandbox_id = SID,
		.host_cap_bounding = 0,
		.target_pid_ns = "/proc/1/ns/pid",
	};
	char err[1024];
	const char *path = NULL;
	if (oci_spec_seccomp_localhost_path(&in, &path, err, sizeof(err)) < 0) {
		free(devs);
		return;
	}
	if (path)
		in.localhost_seccomp_json = profile;
	struct oci_spec_result out;
	memset(&out, 0, sizeof(out));
	int r = oci_spec_build(&in, &out, err, sizeof(err));
	if (r == 0) {
		json_object *spec = json_tokener_parse(out.json);
		if (!json_object_is_type(spec, json_type_object)) {
			fprintf(stderr, "oci_spec_build made no JSON object: %s\n", out.json);
			abort();
		}
		struct spawnd_policy_ctx ctx = {
			.cfg = &dflt,
			.pod_files_dir = "/var/lib/criod/criod/pods/" SID,
			.pod_shm = pod.shm_path,
			.pod_ipc_ns = true,
			.pod_id = SID,
			.pod_host_network = true,
			.pod_host_pid = true,
			.pod_privileged = true,
		};
		const char *rule = NULL;
		(void)spawnd_policy_check_spec(spec, &ctx, err, sizeof(err), &rule);
		json_object_put(spec);
	} else if (!*err) {
		fprintf(stderr, "oci_spec_build refused (%d) without saying why\n", r);
		abort();
	}
	oci_spec_result_free(&out);
	free(devs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p[5];
	size_t n[5];
	char err[512];

	if (size > (1u << 20))
		return -1;
	for (unsigned i = 0; i < 5; i++)
		fuzz_part(data, size, i, &p[i], &n[i]);
	Runtime__V1__UpdateRuntimeConfigRequest *urc = runtime__v1__update_runtime_config_request__unpack(NULL, n[0], p[0]);
	if (urc && urc->runtime_config && urc->runtime_config->network_config) {
		const char *cidr = urc->runtime_config->network_config->pod_cidr;
		char canon[POD_CIDR_MAX + 1], again[POD_CIDR_MAX + 1];
		if (cidr && pod_cidr_parse(cidr, canon, sizeof(canon), err, sizeof(err)) == 0 &&
		    (pod_cidr_parse(canon, again, sizeof(again), err, sizeof(err)) < 0 || strcmp(canon, again) != 0)) {
			fprintf(stderr, "pod CIDR \"%s\" canonical \"%s\" does not parse back to itself\n", cidr, canon);
			abort();
		}
	}
	if (urc)
		runtime__v1__update_runtime_config_request__free_unpacked(urc, NULL);
	Runtime__V1__CreateContainerRequest *req = runtime__v1__create_container_request__unpack(NULL, n[0], p[0]);
	if (!req)
		return 0;
	char *image_config = fuzz_strndup(p[1], n[1]), *passwd = fuzz_strndup(p[2], n[2]),
	     *group = fuzz_strndup(p[3], n[3]), *profile = fuzz_strndup(p[4], n[4]);

	int pod_st = cri_check_pod_config(req->sandbox_config, err, sizeof(err));
	if (pod_st != STATUS_OK && !*err)
		abort();
	int st = cri_check_create(req, err, sizeof(err));
	if (st != STATUS_OK && !*err)
		abort();
	if (st == STATUS_OK && pod_st == STATUS_OK)
		build(req, image_config, passwd, group, profile);
	if (req->config && req->config->linux && req->config->linux->resources)
		resources(req->config->linux->resources);
	if (*profile) {
		char *oci = NULL;
		if (oci_seccomp_from_profile(profile, &oci, err, sizeof(err)) == 0) {
			json_object *o = json_tokener_parse(oci);
			if (!json_object_is_type(o, json_type_object))
				abort();
			json_object_put(o);
		}
		free(oci);
	}
	free(image_config);
	free(passwd);
	free(group);
	free(profile);
	runtime__v1__create_container_request__free_unpacked(req, NULL);
	return 0;
}
