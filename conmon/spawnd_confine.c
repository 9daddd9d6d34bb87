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
	uint64_t caps = spawnd_confine_caps(cfg);
	char **names = NULL;
	int r = spawnd_confine_names(caps, &names);

	if (r < 0)
		return log_error_errno(r, NULL, "cannot build the seccomp allowlist", "component=spawnd");
	struct confine_policy p = {
		.caps = caps,
		.no_new_privs = false, /* inherited by containers: setuid binaries in them must work */
		.action = CONFINE_DENY_INHERITED,
		.syscalls = (const char *const *)names,
		.no_filter = !spawnd_confine_filtered(cfg),
	};
	r = confine_self("spawnd", &p);
	spawnd_confine_names_free(names);
	return r;
}
