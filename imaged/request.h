/* imaged's checks of what criod asks, apart from the handlers so that they
 * are pure (no store, no I/O): tests/fuzz/fuzz_daemon_requests.c feeds them
 * decoded hostile requests. */
#pragma once

#include <stddef.h>

#include "internal/imaged.pb-c.h"

#define IMAGED_MAX_NAME 4096
#define IMAGED_MAX_AUTH_FIELD (64u << 10) /* one credential of a pull */

/* An image name or id field: present and bounded. STATUS_OK, or
 * INVALID_ARGUMENT with err naming the field. */
int imaged_check_name(const char *field, const char *v, char *err, size_t errlen);

/* A Pull: the image (a reference, parsed) and each credential bounded.
 * STATUS_OK with *key the malloc'd normalised reference the pull is known
 * by (the digested form when a digest was given, else the tagged one), or
 * a status with err naming the field. */
int imaged_check_pull(const Criod__Internal__PullRequest *req, char **key, char *err, size_t errlen);
