/* Every daemon's request table, used by both ends: the daemon binds its
 * handlers to it (api_bind), criod calls through its rows (API_IMAGED()
 * and the like); see api.h. The last column is the largest request body a
 * daemon takes, in bytes. */
#include <stdlib.h>

#include "api.h"
#include "internal/conmon.pb-c.h"
#include "internal/envelope.pb-c.h"
#include "internal/imaged.pb-c.h"
#include "internal/netd.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "log.h"

#define ROW(id, name, req, resp, max) \
	[(id) - 1] = {id, name, &criod__internal__##req##__descriptor, &criod__internal__##resp##__descriptor, \
		      0, NULL, max}

/* What criod may ask of imaged. */
const struct ipc_method imaged_methods[IMAGED_N_METHODS] = {
	ROW(IMAGED_PING, "Ping", ping_request, ping_response, IPC_KiB(64)),
	ROW(IMAGED_PULL, "Pull", pull_request, pull_response, IPC_KiB(256)), /* auth tokens */
	ROW(IMAGED_LIST, "ListImages", list_images_request, list_images_response, IPC_KiB(64)),
	ROW(IMAGED_STATUS, "ImageStatus", image_status_request, image_status_response, IPC_KiB(64)),
	ROW(IMAGED_REMOVE, "RemoveImage", remove_image_request, remove_image_response, IPC_KiB(64)),
	ROW(IMAGED_FS_INFO, "ImageFsInfo", image_fs_info_request, image_fs_info_response, IPC_KiB(64)),
	ROW(IMAGED_MOUNT_ROOTFS, "MountRootfs", mount_rootfs_request, mount_rootfs_response, IPC_KiB(64)),
	ROW(IMAGED_UNMOUNT_ROOTFS, "UnmountRootfs", unmount_rootfs_request, unmount_rootfs_response, IPC_KiB(64)),
	ROW(IMAGED_ROOTFS_USAGE, "RootfsUsage", rootfs_usage_request, rootfs_usage_response, IPC_KiB(64)),
	ROW(IMAGED_METRICS, "Metrics", metrics_request, metrics_response, IPC_KiB(1)),
};

/* What criod may ask of netd. */
const struct ipc_method netd_methods[NETD_N_METHODS] = {
	ROW(NETD_PING, "Ping", ping_request, ping_response, IPC_KiB(64)),
	/* port mappings */
	ROW(NETD_SETUP_POD, "SetupPodNetwork", setup_pod_network_request, setup_pod_network_response, IPC_KiB(64)),
	ROW(NETD_TEARDOWN_POD, "TeardownPodNetwork", teardown_pod_network_request, teardown_pod_network_response,
	    IPC_KiB(64)),
	ROW(NETD_POD_STATUS, "PodNetworkStatus", pod_network_status_request, pod_network_status_response, IPC_KiB(64)),
	ROW(NETD_POD_NETWORK_STATS, "PodNetworkStats", pod_network_stats_request, pod_network_stats_response,
	    IPC_KiB(64)),
	ROW(NETD_PORT_FORWARD, "PortForward", port_forward_request, port_forward_response, IPC_KiB(64)),
	ROW(NETD_METRICS, "Metrics", metrics_request, metrics_response, IPC_KiB(1)),
};

/* What criod may ask of spawnd. */
const struct ipc_method spawnd_methods[SPAWND_N_METHODS] = {
	ROW(SPAWND_PING, "Ping", ping_request, ping_response, IPC_KiB(64)),
	ROW(SPAWND_CREATE_POD_INFRA, "CreatePodInfra", create_pod_infra_request, create_pod_infra_response,
	    IPC_KiB(64)),
	ROW(SPAWND_STOP_POD_INFRA, "StopPodInfra", stop_pod_infra_request, stop_pod_infra_response, IPC_KiB(64)),
	ROW(SPAWND_REMOVE_POD_INFRA, "RemovePodInfra", remove_pod_infra_request, remove_pod_infra_response,
	    IPC_KiB(64)),
	ROW(SPAWND_CREATE_CONTAINER, "CreateContainer", create_container_request, create_container_response,
	    IPC_MiB(4)), /* the OCI spec */
	ROW(SPAWND_REMOVE_CONTAINER, "RemoveContainer", remove_container_request, remove_container_response,
	    IPC_KiB(64)),
	ROW(SPAWND_OPEN_SECCOMP_PROFILE, "OpenSeccompProfile", open_seccomp_profile_request,
	    open_seccomp_profile_response, IPC_KiB(64)),
	ROW(SPAWND_HOST_PORT_FORWARD, "HostPortForward", host_port_forward_request, host_port_forward_response,
	    IPC_KiB(64)),
	ROW(SPAWND_METRICS, "Metrics", metrics_request, metrics_response, IPC_KiB(1)),
};

/* What criod may ask of a container's monitor (conmon). */
const struct ipc_method conmon_methods[CONMON_N_METHODS] = {
	ROW(CONMON_PING, "Ping", ping_request, ping_response, IPC_KiB(64)),
	ROW(CONMON_STATE, "State", container_state_request, container_state_response, IPC_KiB(64)),
	ROW(CONMON_START, "Start", start_container_request, start_container_response, IPC_KiB(64)),
	ROW(CONMON_KILL, "Kill", kill_container_request, kill_container_response, IPC_KiB(64)),
	ROW(CONMON_EXEC, "Exec", exec_request, exec_response, IPC_MiB(2)), /* argv: ARG_MAX */
	ROW(CONMON_REOPEN_LOG, "ReopenLog", reopen_log_request, reopen_log_response, IPC_KiB(64)),
	ROW(CONMON_UPDATE, "Update", update_resources_request, update_resources_response, IPC_KiB(64)),
	ROW(CONMON_DELETE, "Delete", delete_container_request, delete_container_response, IPC_KiB(64)),
	ROW(CONMON_EXEC_STREAM, "ExecStream", exec_stream_request, stream_response, IPC_MiB(2)), /* argv: ARG_MAX */
	ROW(CONMON_ATTACH_STREAM, "AttachStream", attach_stream_request, stream_response, IPC_KiB(64)),
};

void api_bind(struct ipc_method *out, const struct ipc_method *table, size_t n, const ipc_handler_fn *handlers)
{
	for (size_t i = 0; i < n; i++) {
		out[i] = table[i];
		out[i].handler = handlers[i];
		if (!out[i].handler || out[i].id != i + 1) {
			log_error(NULL, "request table without a handler", "method=%s id=%u", out[i].name, out[i].id);
			abort();
		}
	}
}
