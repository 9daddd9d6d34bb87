/* The fixed request lists of the root daemons. These numbers are the
 * security boundary between criod and root: a daemon serves exactly the
 * methods in its table (see each daemon's main.c) and nothing else. */
#pragma once

enum imaged_method {
	IMAGED_PING = 1,
	IMAGED_PULL = 2,
	IMAGED_LIST = 3,
	IMAGED_STATUS = 4,
	IMAGED_REMOVE = 5,
	IMAGED_FS_INFO = 6,
	IMAGED_MOUNT_ROOTFS = 7,
	IMAGED_UNMOUNT_ROOTFS = 8,
};

enum netd_method {
	NETD_PING = 1,
};

enum spawnd_method {
	SPAWND_PING = 1,
};

/* Client-side views of the tables (handler NULL), defined in common/api.c. */
#include "ipc.h"
extern const struct ipc_method imaged_ping_method;
extern const struct ipc_method netd_ping_method;
extern const struct ipc_method spawnd_ping_method;
