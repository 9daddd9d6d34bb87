/* spawnd's confinement (spawnd_confine.h): the capabilities the node policy
 * lets containers have plus what runc needs, the list of conmon_confine.c,
 * no no_new_privs. */
#include <errno.h>
#include <stdint.h>

#include "confine.h"
#include "log.h"
#include "spawnd_confine.h"
#include "spawnd_policy.h"

uint64_t spawnd_confine_caps(const struct criod_config *cfg)
{
	/* A privileged container gets every capability the host has. */
	if (cfg->allow_privileged)
		return UINT64_MAX;
	uint64_t allowed = spawnd_policy_caps_allowed(cfg);
	if (allowed == UINT64_MAX)
		return UINT64_MAX;
	return allowed | CAP_DEFAULT_MASK | SPAWND_RUNC_CAPS;
}

int spawnd_confine(const struct criod_config *cfg)
{
	return spawnd_confine_apply("spawnd", spawnd_confine_caps(cfg), cfg);
}
