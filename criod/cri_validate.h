/* The checks of a CRI request that need nothing but the request: pure (no
 * state, no I/O, no call), so the handlers answer their result and
 * tests/fuzz/fuzz_cri.c feeds them decoded hostile requests. Each returns
 * STATUS_OK, or a gRPC status with err naming the field. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cri/api.pb-c.h"

#define CRI_MAX_FIELD 253
#define CRI_MAX_PATH_FIELD 4096
#define CRI_MAX_CONFIG (4u << 20) /* a ContainerConfig, encoded */

/* A request string: present when required, at most max bytes, no control
 * characters. */
int cri_check_field(const char *field, const char *v, bool required, size_t max, char *err, size_t errlen);

/* An RFC 1123 host name of at most 63 characters. */
bool cri_hostname_ok(const char *h);

/* RunPodSandbox's config: metadata, hostname, log directory, port
 * mappings, namespace modes, cgroup parent. */
int cri_check_pod_config(const Runtime__V1__PodSandboxConfig *cfg, char *err, size_t errlen);

/* CreateContainer's own fields (the config's translation into an OCI spec
 * checks the rest: oci_spec_build). */
int cri_check_create(const Runtime__V1__CreateContainerRequest *req, char *err, size_t errlen);
