/* What spawnd_container.c (the lifecycle: bundle, monitor, records,
 * removal) and spawnd_container_spec.c (the checks of a request against
 * the node: log_path, the spec, a TARGET PID namespace) share; nothing
 * else includes it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#define JSON_DEPTH 64

/* A member; NULL when absent or null. */
static inline json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* ---- TARGET PID namespaces, pinned at create (spawnd_container_spec.c) ---- */

/* The spec's pid namespace entry with a /proc path, or NULL. */
json_object *target_pidns_entry(json_object *spec);
/* Open the PID namespace of the process path names (checked syntax):
 * *nsfd. The process must be the one the pid named when the pidfd was
 * opened, PID 1 of a PID namespace of its own (a container's init) and in
 * the pod's cgroup. -ESRCH: gone; -EINVAL: not such a process. */
int pin_target_pidns(const char *path, const char *cgroup_parent, int *nsfd, char *err, size_t errlen);
/* Bind-mount the pinned namespace at <bundle>/pidns. */
int pidns_pin_mount(const char *bundle, int nsfd, char *err, size_t errlen);
