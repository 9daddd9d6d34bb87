/* UpdatePodSandboxResources: a notification, answered as CRI-O answers it.
 *
 * kubelet sends it (KEP-1287, in-place pod resize; best effort: its failure
 * does not hold the resize back) after it has itself written the new
 * pod-level limits into the pod's cgroup, the LinuxPodSandboxConfig's
 * cgroup_parent. spawnd's pod cgroup (<cgroup_parent>/criod-<id>,
 * holding pause and every container) sets no limits of its own, so the
 * parent's new ones already bound everything in it: there is nothing for
 * spawnd to write and no privilege to ask for. CRI-O looks the sandbox up
 * (NOT_FOUND) and hands the resources to NRI; containerd hands them to NRI
 * too. criod has no NRI: it checks the request by the rules
 * UpdateContainerResources applies, so a malformed one is INVALID_ARGUMENT
 * naming the field, and logs what kubelet said. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "container_op.h"
#include "cri.h"
#include "cri/api.pb-c.h"
#include "cri_validate.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "status.h"

static bool resources_ok(struct grpc_call *call, const Runtime__V1__LinuxContainerResources *res, const char *field)
{
	if (!res)
		return true;
	char err[256] = "";
	_cleanup_free_ char *json = NULL;
	int r = ctr_resources_json(res, field, &json, err, sizeof(err));
	if (r == 0)
		return true;
	grpc_call_fail(call, r == -EINVAL ? STATUS_INVALID_ARGUMENT : status_from_errno(r), "%s",
		       *err ? err : strerror(-r));
	return false;
}

static void update_pod_sandbox_resources(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__UpdatePodSandboxResourcesRequest *req = (const void *)msg;
	if (!cri_field_ok(call, "pod_sandbox_id", req->pod_sandbox_id, true, CRI_MAX_FIELD))
		return;
	struct pod *p = pods_find(&c->pods, req->pod_sandbox_id);
	if (!p || p->state == POD_CREATING || p->gone) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "pod sandbox %s not found", req->pod_sandbox_id);
		return;
	}
	if (!resources_ok(call, req->overhead, "overhead") || !resources_ok(call, req->resources, "resources"))
		return;
	const Runtime__V1__LinuxContainerResources *r = req->resources;
	log_info(grpc_call_request_id(call), "pod resources updated by kubelet",
		 "pod=%s cpu_quota=%" PRId64 " cpu_period=%" PRId64 " cpu_shares=%" PRId64 " memory_limit=%" PRId64
		 " overhead=%s",
		 p->id, r ? r->cpu_quota : 0, r ? r->cpu_period : 0, r ? r->cpu_shares : 0,
		 r ? r->memory_limit_in_bytes : 0, req->overhead ? "yes" : "no");
	Runtime__V1__UpdatePodSandboxResourcesResponse out = RUNTIME__V1__UPDATE_POD_SANDBOX_RESOURCES_RESPONSE__INIT;
	grpc_call_reply(call, &out.base);
}

const struct cri_handler pod_resources_handlers[] = {
	{"RuntimeService", "UpdatePodSandboxResources", update_pod_sandbox_resources},
};
const size_t n_pod_resources_handlers = ARRAY_SIZE(pod_resources_handlers);
