/* imaged <-> imaged-fetch: the helper's fixed request list (numbers in
 * common/api.h, messages in proto/internal/fetch.proto). max_fds is exact:
 * FetchLayer takes the one directory to extract into, the others none.
 * FetchConnect goes the other way (helper -> imaged) on the connect
 * channel, the helper's fd 3; its reply carries the connected socket. */
#pragma once

#include <stdint.h>

#include "api.h"
#include "ipc.h"

#define FETCH_N_METHODS 5
/* The helper's fd of the connect channel, and of its first imaged -> helper
 * channel (socket pairs, one per download thread; at most
 * FETCH_MAX_CHANNELS, in order from there). */
#define FETCH_CONNECT_FD 3
#define FETCH_FIRST_CHANNEL 4
#define FETCH_MAX_CHANNELS 32

extern const struct ipc_method fetch_methods[FETCH_N_METHODS];
/* The method with that number, or NULL. */
const struct ipc_method *fetch_method(uint32_t id);
