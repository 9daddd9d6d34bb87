/* The configuration described, from config.c's key table: `criod config`,
 * `criod check`, and the key table of the criod.conf(5) man page. */
#pragma once

#include <stdio.h>

#include "config.h"

struct cfg_key;

/* The value of row k in base (a struct criod_config, registry_config or
 * runtime_config) as the file would say it, in a malloc'd *out; *out is
 * NULL for a path that is not set. */
int config_format_value(const struct cfg_key *k, const void *base, char **out);
/* What row k accepts, in words ("1..32", "one of: auto, overlay, copy"). */
int config_key_range(const struct cfg_key *k, char **out);
/* Every key of cfg as a configuration file that reads back to cfg, each
 * key preceded by a comment naming its origin in t (NULL: none recorded). */
int config_show(FILE *out, const char *component, const struct criod_config *cfg, const struct config_trace *t);
/* The key table of criod.conf(5), in roff: each section, key, range and default. */
int config_man_keys(FILE *out);
/* `COMPONENT config` or `COMPONENT check` with --config path (NULL: the
 * default). Returns the exit status: 0, or 1 with the error (file, line and
 * key) on stderr. */
int config_command(const char *component, const char *command, const char *path);
