/* The control protocol of a streaming session's ctl socket
 * (criod/stream_backend.h): criod's streaming server at one end, the
 * container's conmon at the other (conmon/conmon_stream.c). */
#pragma once

#include <stdint.h>

/* ---- the control protocol on stream_fds.ctl (SOCK_SEQPACKET, one record
 * per packet, host byte order: both ends are on this host) ---- */
enum stream_ctl_type {
	STREAM_CTL_RESIZE = 1, /* criod -> conmon: a = columns (width), b = rows (height) */
	STREAM_CTL_EXIT = 2,   /* conmon -> criod, Exec only, after the process
				* exited and no process holds its out/err (or
				* terminal) any more, so both read EOF once
				* drained: a = exit code (as int32_t; 128+N when
				* killed by signal N). conmon closes ctl next. */
};

struct stream_ctl {
	uint32_t type;
	uint32_t a, b;
};
