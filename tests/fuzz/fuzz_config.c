/* The configuration parser (common/config.c): one buffer as a drop-in on
 * top of the defaults, and each line's value through the value parsers
 * every other component reuses. Oracle beyond the sanitizers: a refused
 * buffer leaves the configuration as it was (all or nothing), and a loaded
 * one still answers its lookups. */
#include <stdio.h>

#include "config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_config");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return -1;
	char *text = fuzz_strndup(data, size);
	struct criod_config cfg;
	char *error = NULL;

	config_defaults(&cfg);
	char *run_dir = strdup(cfg.run_dir), *socket = strdup(cfg.criod_socket);
	int r = config_parse_string(&cfg, "fuzz.conf", text, &error);
	if (r < 0) {
		if (!error || strcmp(cfg.run_dir, run_dir) != 0 || strcmp(cfg.criod_socket, socket) != 0) {
			fprintf(stderr, "a refused buffer changed the configuration (or gave no error): %s\n",
				error ? error : "(none)");
			abort();
		}
	} else {
		/* applied twice (a drop-in saying the same again) must hold too */
		char *error2 = NULL;
		if (config_parse_string(&cfg, "fuzz2.conf", text, &error2) < 0) {
			fprintf(stderr, "accepted once, refused applied again: %s\n", error2 ? error2 : "(none)");
			abort();
		}
		free(error2);
		for (size_t i = 0; i < cfg.n_registries; i++)
			if (config_registry(&cfg, cfg.registries[i].host) == NULL)
				abort();
		(void)config_runtime(&cfg, NULL);
		(void)config_runtime(&cfg, "runc");
	}
	free(error);
	config_free(&cfg);
	config_free(&cfg);

	/* every line's value, as each value syntax */
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char *v = strchr(line, '=');
		v = v ? v + 1 : line;
		uint64_t u;
		bool b;
		uint16_t lo, hi;
		(void)config_parse_uint(v, &u);
		(void)config_parse_size(v, &u);
		(void)config_parse_duration_ms(v, &u);
		(void)config_parse_bool(v, &b);
		if (config_parse_port_range(v, &lo, &hi) == 0 && (lo == 0 || lo > hi))
			abort();
	}
	free(run_dir);
	free(socket);
	free(text);
	return 0;
}
