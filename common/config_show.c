/* The configuration described: `criod config` (every key in force with
 * where it came from), `criod check` (the files valid or the first error,
 * naming file, line and key) and the key table of criod.conf(5), all
 * written from config.c's key table so none of them can drift from it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_keys.h"
#include "config_show.h"
#include "macro.h"

/* ---- values as the file would say them ---- */

struct unit_name {
	uint64_t factor;
	const char *suffix;
};

static const struct unit_name size_units[] = { { 1ull << 30, "GiB" }, { 1ull << 20, "MiB" }, { 1ull << 10, "KiB" } };
static const struct unit_name duration_units[] = { { 3600 * 1000, "h" }, { 60 * 1000, "min" }, { 1000, "s" } };

/* v in the largest unit that divides it exactly: 16MiB, 90s, 4095. */
static int format_units(uint64_t v, const struct unit_name *u, size_t n, const char *plain, char **out)
{
	for (size_t i = 0; i < n && v; i++)
		if (v % u[i].factor == 0)
			return asprintf(out, "%llu%s", (unsigned long long)(v / u[i].factor), u[i].suffix) < 0 ? -ENOMEM : 0;
	return asprintf(out, "%llu%s", (unsigned long long)v, plain) < 0 ? -ENOMEM : 0;
}

/* Text as a value line: bare when the parser would read it back as is,
 * else "quoted" with \" and \\ (the only escapes the file has). */
static int format_text(const char *s, char **out)
{
	size_t n = strlen(s), o = 0;
	bool bare = n > 0 && s[0] != '"' && s[0] != ' ' && s[0] != '\t' && s[n - 1] != ' ' && s[n - 1] != '\t';
	char *r;

	if (bare)
		return (*out = strdup(s)) ? 0 : -ENOMEM;
	if (!(r = malloc(2 * n + 3)))
		return -ENOMEM;
	r[o++] = '"';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			r[o++] = '\\';
		r[o++] = s[i];
	}
	r[o++] = '"';
	r[o] = '\0';
	*out = r;
	return 0;
}

int config_format_value(const struct cfg_key *k, const void *base, char **out)
{
	void *b = (void *)base;

	*out = NULL;
	if (is_text_type(k->type)) {
		const char *s = *text_field(b, k);
		return s ? format_text(s, out) : 0;
	}
	if (is_list_type(k->type)) {
		char **l = *list_field(b, k);
		size_t n = *list_count_field(b, k), len = 1;
		char *r;

		for (size_t i = 0; i < n; i++)
			len += strlen(l[i]) + 2;
		if (!(r = malloc(len)))
			return -ENOMEM;
		r[0] = '\0';
		for (size_t i = 0; i < n; i++) {
			if (i)
				strcat(r, ", ");
			strcat(r, l[i]);
		}
		*out = r;
		return 0;
	}
	switch (k->type) {
	case CFG_BOOL:
		return (*out = strdup(*bool_field(b, k) ? "true" : "false")) ? 0 : -ENOMEM;
	case CFG_UINT:
		return asprintf(out, "%llu", (unsigned long long)*uint_field(b, k)) < 0 ? -ENOMEM : 0;
	case CFG_SIZE:
		return format_units(*uint_field(b, k), size_units, ARRAY_SIZE(size_units), "", out);
	case CFG_DURATION_MS:
		return format_units(*uint_field(b, k), duration_units, ARRAY_SIZE(duration_units), "ms", out);
	default:
		return -EINVAL;
	}
}

/* ---- ranges, as the man page and `criod config --keys` say them ---- */

static char *choices_text(const char *choices)
{
	size_t n = strlen(choices), o = 0;
	char *r = malloc(2 * n + 1);

	if (!r)
		return NULL;
	for (const char *c = choices; *c; c++) {
		if (*c == '|') {
			r[o++] = ',';
			r[o++] = ' ';
		} else
			r[o++] = *c;
	}
	r[o] = '\0';
	return r;
}

int config_key_range(const struct cfg_key *k, char **out)
{
	_cleanup_free_ char *lo = NULL, *hi = NULL, *ch = NULL;
	size_t max = k->max ? k->max : config_string_max;
	int r = 0;

	*out = NULL;
	switch (k->type) {
	case CFG_STRING:
		return asprintf(out, "text of at most %zu bytes", max) < 0 ? -ENOMEM : 0;
	case CFG_PATH:
		return asprintf(out, "an absolute path without \"..\", at most %zu bytes", max) < 0 ? -ENOMEM : 0;
	case CFG_USER:
		return (*out = strdup("a user name (letters, digits, \"_\", \"-\", \".\"; at most 32 bytes)")) ? 0 : -ENOMEM;
	case CFG_LOG_LEVEL:
		return (*out = strdup("debug, info, warn or error")) ? 0 : -ENOMEM;
	case CFG_CHOICE:
		if (!(ch = choices_text(k->choices)))
			return -ENOMEM;
		return asprintf(out, "one of: %s", ch) < 0 ? -ENOMEM : 0;
	case CFG_BOOL:
		return (*out = strdup("true or false (also yes/no, on/off, 1/0)")) ? 0 : -ENOMEM;
	case CFG_PORT_RANGE:
		return (*out = strdup("\"lo-hi\" or one port, 1 <= lo <= hi <= 65535")) ? 0 : -ENOMEM;
	case CFG_UINT:
		return asprintf(out, "%llu..%llu", (unsigned long long)k->min, (unsigned long long)k->max) < 0 ? -ENOMEM
														: 0;
	case CFG_SIZE:
	case CFG_DURATION_MS: {
		bool size = k->type == CFG_SIZE;
		const struct unit_name *u = size ? size_units : duration_units;
		size_t n = size ? ARRAY_SIZE(size_units) : ARRAY_SIZE(duration_units);
		if ((r = format_units(k->min, u, n, size ? "" : "ms", &lo)) < 0 ||
		    (r = format_units(k->max, u, n, size ? "" : "ms", &hi)) < 0)
			return r;
		return asprintf(out, "%s..%s (%s)", lo, hi,
				size ? "bytes, or with K, M, G, KiB, MiB, GiB" : "milliseconds, or with ms, s, min, h") < 0
			       ? -ENOMEM
			       : 0;
	}
	case CFG_HOST_LIST:
		return asprintf(out, "comma-separated registry hosts (host[:port]), at most %llu",
				(unsigned long long)k->max) < 0
			       ? -ENOMEM
			       : 0;
	case CFG_PATH_LIST:
		return asprintf(out, "comma-separated clean absolute directories other than \"/\", at most %llu",
				(unsigned long long)k->max) < 0
			       ? -ENOMEM
			       : 0;
	case CFG_GLOB_LIST:
		return asprintf(out, "ALL, or comma-separated absolute paths or fnmatch patterns, at most %llu",
				(unsigned long long)k->max) < 0
			       ? -ENOMEM
			       : 0;
	case CFG_WORD_LIST:
		if (k->choices) {
			if (!(ch = choices_text(k->choices)))
				return -ENOMEM;
			return asprintf(out, "comma-separated, at most %llu, of: %s", (unsigned long long)k->max, ch) < 0
				       ? -ENOMEM
				       : 0;
		}
		return asprintf(out, "comma-separated names or fnmatch patterns of letters, digits and \"_.*?/-\" "
				     "(each at most %zu bytes), at most %llu",
				config_word_max, (unsigned long long)k->max) < 0
			       ? -ENOMEM
			       : 0;
	}
	return -EINVAL;
}

/* ---- criod config ---- */

static bool seen_section(size_t upto, const char *section)
{
	for (size_t j = 0; j < upto; j++)
		if (strcmp(config_table[j].section, section) == 0)
			return true;
	return false;
}

static int show_key(FILE *out, const struct cfg_key *k, const void *base, const char *section,
		    const struct config_trace *t, const char *unset_origin)
{
	const struct config_origin *o = config_trace_find(t, section, k->key);
	_cleanup_free_ char *v = NULL;
	int r = config_format_value(k, base, &v);

	if (r < 0)
		return r;
	if (o)
		fprintf(out, "# %s:%u\n", o->file, o->line);
	else if (k->derive) {
		const struct config_origin *rd = config_trace_find(t, "paths", "run_dir");
		if (rd)
			fprintf(out, "# <run_dir>/%s, run_dir from %s:%u\n", k->derive, rd->file, rd->line);
		else
			fprintf(out, "# default (<run_dir>/%s)\n", k->derive);
	} else
		fprintf(out, "# %s\n", unset_origin);
	if (!v) {
		/* Only optional paths have no value; "key =" would not parse. */
		fprintf(out, "# %s = (not set)\n", k->key);
		return 0;
	}
	fprintf(out, "%s =%s%s\n", k->key, *v ? " " : "", v);
	return 0;
}

int config_show(FILE *out, const char *component, const struct criod_config *cfg, const struct config_trace *t)
{
	int r;

	fprintf(out, "# %s %s: the configuration in force. Before each key: \"default\", or the\n"
		     "# file and line that set it last.\n",
		component, PACKAGE_VERSION);
	if (t && t->n_files) {
		fprintf(out, "# Files read, in order:\n");
		for (size_t i = 0; i < t->n_files; i++)
			fprintf(out, "#   %s\n", t->files[i]);
	} else
		fprintf(out, "# No file read: every key has its built-in default.\n");
	for (size_t i = 0; i < config_table_n; i++) {
		const char *section = config_table[i].section;

		if (seen_section(i, section))
			continue;
		fprintf(out, "\n[%s]\n", section);
		for (size_t j = i; j < config_table_n; j++)
			if (strcmp(config_table[j].section, section) == 0 &&
			    (r = show_key(out, &config_table[j], cfg, section, t, "default")) < 0)
				return r;
	}
	for (size_t i = 0; i < cfg->n_registries; i++) {
		_cleanup_free_ char *section = NULL;
		if (asprintf(&section, "registry.%s", cfg->registries[i].host) < 0)
			return -ENOMEM;
		fprintf(out, "\n[%s]\n", section);
		for (size_t j = 0; j < config_registry_table_n; j++)
			if ((r = show_key(out, &config_registry_table[j], &cfg->registries[i], section, t,
					  "default")) < 0)
				return r;
	}
	for (size_t i = 0; i < cfg->n_runtimes; i++) {
		_cleanup_free_ char *section = NULL;
		if (asprintf(&section, "runtime.%s", cfg->runtimes[i].name) < 0)
			return -ENOMEM;
		fprintf(out, "\n[%s]\n", section);
		for (size_t j = 0; j < config_runtime_table_n; j++)
			if ((r = show_key(out, &config_runtime_table[j], &cfg->runtimes[i], section, t,
					  cfg->runtimes_builtin ? "built-in handler (no [runtime.NAME] section)"
								: "default")) < 0)
				return r;
	}
	return ferror(out) ? -EIO : 0;
}

/* ---- the key table of criod.conf(5) ---- */

/* roff: backslashes doubled, "-" a minus (paths and options), a leading
 * "." or "'" kept from being a request. */
static void roff(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
	}
}

static int man_key(FILE *out, const struct cfg_key *k, const void *defaults)
{
	_cleanup_free_ char *range = NULL, *def = NULL;
	int r;

	if ((r = config_key_range(k, &range)) < 0)
		return r;
	if (defaults && (r = config_format_value(k, defaults, &def)) < 0)
		return r;
	fputs(".TP\n.B ", out);
	roff(out, k->key);
	fputs("\n", out);
	roff(out, range);
	fputs(".\n.br\nDefault: ", out);
	if (k->derive) {
		fputs("\\fIrun_dir\\fR/", out);
		roff(out, k->derive);
	} else if (def && *def) {
		fputs("\\fB", out);
		roff(out, def);
		fputs("\\fR", out);
	} else if (def)
		fputs("empty", out);
	else
		fputs("not set", out);
	fputs(".\n", out);
	return 0;
}

int config_man_keys(FILE *out)
{
	struct criod_config d;
	int r = 0;

	config_defaults(&d);
	for (size_t i = 0; i < config_table_n && r >= 0; i++) {
		const char *section = config_table[i].section;

		if (seen_section(i, section))
			continue;
		fprintf(out, ".SS [%s]\n", section);
		for (size_t j = i; j < config_table_n && r >= 0; j++)
			if (strcmp(config_table[j].section, section) == 0)
				r = man_key(out, &config_table[j], &d);
	}
	if (r >= 0) {
		fputs(".SS [registry.\\fIHOST\\fR]\n", out);
		for (size_t j = 0; j < config_registry_table_n && r >= 0; j++) {
			struct registry_config none = { 0 };
			r = man_key(out, &config_registry_table[j],
				    is_text_type(config_registry_table[j].type) ? NULL : &none);
		}
	}
	if (r >= 0) {
		fputs(".SS [runtime.\\fINAME\\fR]\n", out);
		for (size_t j = 0; j < config_runtime_table_n && r >= 0; j++)
			r = man_key(out, &config_runtime_table[j], NULL);
	}
	config_free(&d);
	return r < 0 ? r : ferror(out) ? -EIO : 0;
}

/* ---- the commands ---- */

int config_command(const char *component, const char *command, const char *path)
{
	struct config_trace t = { 0 };
	struct criod_config cfg;
	_cleanup_free_ char *error = NULL;
	int r, status;

	r = config_load_traced(&cfg, path, &t, &error);
	if (r < 0) {
		fprintf(stderr, "%s %s: %s\n", component, command, error ? error : strerror(-r));
		config_free(&cfg);
		return 1;
	}
	if (strcmp(command, "check") == 0) {
		if (t.n_files == 0)
			printf("%s check: %s absent: the built-in defaults are valid\n", component,
			       path ? path : CRIOD_DEFAULT_CONFIG);
		for (size_t i = 0; i < t.n_files; i++)
			printf("%s check: %s: ok\n", component, t.files[i]);
		status = 0;
	} else {
		r = config_show(stdout, component, &cfg, &t);
		if (r < 0)
			fprintf(stderr, "%s config: %s\n", component, strerror(-r));
		status = r < 0 ? 1 : 0;
	}
	if (fflush(stdout) != 0)
		status = 1;
	config_trace_free(&t);
	config_free(&cfg);
	return status;
}
