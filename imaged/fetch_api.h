/* imaged <-> imaged-fetch: the helper's fixed request list (numbers in
 * common/api.h, messages in proto/internal/fetch.proto). max_fds is exact:
 * FetchLayer takes the one directory to extract into, the others none. */
#pragma once

#include <stdint.h>

#include "api.h"
#include "ipc.h"

#define FETCH_N_METHODS 4
/* Channels (socket pairs, one per download thread) of one helper. */
#define FETCH_MAX_CHANNELS 32

extern const struct ipc_method fetch_methods[FETCH_N_METHODS];
/* The method with that number, or NULL. */
const struct ipc_method *fetch_method(uint32_t id);
