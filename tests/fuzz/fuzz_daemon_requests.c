/* netd's and imaged's request decoding and checks, as a hostile criod
 * sends them: the body protobuf-c decoded with the method's descriptor, as
 * common/ipc.c decodes it, then what the daemon checks before acting:
 *   netd   SetupPodNetwork (netd/request.c: pod id, metadata, cgroup
 *          parent, port mappings normalised) and the pod id of the others;
 *   imaged Pull (imaged/request.c: image reference, credentials) and the
 *          image name of ImageStatus / RemoveImage / MountRootfs.
 * spawnd's are in fuzz_spawnd_requests.c. Input: one byte choosing the
 * request (mod 4), then the encoded body. Oracles beyond the sanitizers: a
 * refusal names its field; what netd accepts is normalised as documented
 * (host ports set, no two mappings claiming one host port); imaged gives a
 * key exactly when it accepts. */
#include <stdio.h>

#include "fuzz.h"
#include "internal/imaged.pb-c.h"
#include "internal/netd.pb-c.h"
#include "request.h" /* netd's */
#include "status.h"
#include "util.h"
#include "../../imaged/request.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_daemon_requests");
	return 0;
}

static void netd_setup(const uint8_t *p, size_t n)
{
	Criod__Internal__SetupPodNetworkRequest *req = criod__internal__setup_pod_network_request__unpack(NULL, n, p);
	if (!req)
		return;
	for (int ipv6 = 0; ipv6 < 2; ipv6++) {
		struct pod_record rec;
		char err[512] = "";
		memset(&rec, 0, sizeof(rec));
		int st = netd_check_setup(req, ipv6, &rec, err, sizeof(err));
		if (st != STATUS_OK && !*err)
			abort();
		if (st == STATUS_OK) {
			if (rec.n_ports > req->n_port_mappings || rec.n_ports > NETD_MAX_PORTS)
				abort();
			for (size_t i = 0; i < rec.n_ports; i++) {
				if (rec.ports[i].host_port == 0 || rec.ports[i].container_port == 0)
					abort();
				for (size_t j = 0; j < i; j++)
					if (netd_ports_conflict(&rec.ports[i], &rec.ports[j])) {
						fprintf(stderr, "accepted mappings %zu and %zu claim one host port\n", j, i);
						abort();
					}
			}
		}
		free(rec.ports);
	}
	criod__internal__setup_pod_network_request__free_unpacked(req, NULL);
}

static void netd_pod_id(const uint8_t *p, size_t n)
{
	Criod__Internal__TeardownPodNetworkRequest *req =
		criod__internal__teardown_pod_network_request__unpack(NULL, n, p);
	if (!req)
		return;
	char err[128] = "";
	if (netd_check_pod_id(req->pod_id, err, sizeof(err)) == STATUS_OK && strlen(req->pod_id) != 64)
		abort();
	criod__internal__teardown_pod_network_request__free_unpacked(req, NULL);
}

static void imaged_pull(const uint8_t *p, size_t n)
{
	Criod__Internal__PullRequest *req = criod__internal__pull_request__unpack(NULL, n, p);
	if (!req)
		return;
	char *key = NULL, err[512] = "";
	int st = imaged_check_pull(req, &key, err, sizeof(err));
	if ((st == STATUS_OK) != (key != NULL) || (st != STATUS_OK && !*err))
		abort();
	free(key);
	criod__internal__pull_request__free_unpacked(req, NULL);
}

static void imaged_names(const uint8_t *p, size_t n)
{
	Criod__Internal__MountRootfsRequest *req = criod__internal__mount_rootfs_request__unpack(NULL, n, p);
	if (!req)
		return;
	char err[256] = "";
	if (id_is_valid(req->container_id))
		(void)imaged_check_name("image", req->image, err, sizeof(err));
	criod__internal__mount_rootfs_request__free_unpacked(req, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > (1u << 20))
		return -1;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] & 3) {
	case 0: netd_setup(p, n); break;
	case 1: netd_pod_id(p, n); break;
	case 2: imaged_pull(p, n); break;
	case 3: imaged_names(p, n); break;
	}
	return 0;
}
