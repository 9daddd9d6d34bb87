/* The key table of common/config.c, shared with what describes it
 * (config_show.c: `criod config`, `criod check`, the criod.conf(5) key
 * table). Not for the daemons: they read struct criod_config. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cfg_type {
	CFG_STRING,      /* any text up to max bytes (max 0: CONFIG_STRING_MAX) */
	CFG_PATH,        /* absolute, no "..", up to max bytes */
	CFG_USER,        /* a user name */
	CFG_UINT,        /* decimal, min..max */
	CFG_SIZE,        /* bytes with an optional K/M/G or KiB/MiB/GiB suffix, min..max */
	CFG_DURATION_MS, /* milliseconds with an optional ms/s/min/h suffix, min..max */
	CFG_BOOL,        /* true/false/yes/no/on/off/1/0 */
	CFG_LOG_LEVEL,   /* debug, info, warn, error */
	CFG_CHOICE,      /* one of the words in choices ("a|b|c") */
	CFG_HOST_LIST,   /* comma-separated registry hosts, up to max of them: a char ** at offset,
			  * its size_t count right after it */
	CFG_PATH_LIST,   /* comma-separated clean absolute directories other than "/", each up to
			  * CONFIG_PATH_MAX bytes, up to max of them; stored as CFG_HOST_LIST */
	CFG_WORD_LIST,   /* comma-separated words: one of choices ("a|b|c") when given, else 1 to
			  * CONFIG_WORD_MAX bytes of [A-Za-z0-9_.*?/-]; stored as CFG_HOST_LIST */
	CFG_GLOB_LIST,   /* comma-separated "ALL" or absolute paths (fnmatch patterns), without
			  * "..", control characters or ","; stored as CFG_HOST_LIST */
	CFG_PORT_RANGE,  /* "lo-hi" or "port", 1 <= lo <= hi <= 65535 (config_parse_port_range); kept as text */
};

struct cfg_key {
	const char *section;
	const char *key;
	enum cfg_type type;
	size_t offset;     /* of a char * (text types), uint64_t (numbers), bool or list */
	uint64_t min, max; /* numbers: the range; text types: max length (0: type default) */
	const char *def;   /* the default, as it would be written in the file */
	const char *derive; /* default is <run_dir>/<derive> unless the key is set */
	const char *choices; /* CFG_CHOICE: the allowed words, "|"-separated */
};

/* config.c's tables: every key of the fixed sections, in file order, and
 * the keys of each [registry.HOST] and [runtime.NAME] section. */
extern const struct cfg_key *const config_table;
extern const size_t config_table_n;
extern const struct cfg_key *const config_registry_table;
extern const size_t config_registry_table_n;
extern const struct cfg_key *const config_runtime_table;
extern const size_t config_runtime_table_n;
extern const size_t config_string_max; /* a text key's max when its row says 0 */
extern const size_t config_list_item_max; /* bytes of one path or glob in a list */
extern const size_t config_word_max;      /* bytes of one word in a word list */

static inline bool is_text_type(enum cfg_type t)
{
	return t == CFG_STRING || t == CFG_PATH || t == CFG_USER || t == CFG_LOG_LEVEL || t == CFG_CHOICE ||
	       t == CFG_PORT_RANGE;
}

static inline bool is_list_type(enum cfg_type t)
{
	return t == CFG_HOST_LIST || t == CFG_PATH_LIST || t == CFG_WORD_LIST || t == CFG_GLOB_LIST;
}

/* The field of row k in base (a struct criod_config, or a struct
 * registry_config for registry_keys[]). */
static inline char **text_field(void *base, const struct cfg_key *k)
{
	return (char **)(void *)((char *)base + k->offset);
}

static inline uint64_t *uint_field(void *base, const struct cfg_key *k)
{
	return (uint64_t *)(void *)((char *)base + k->offset);
}

static inline bool *bool_field(void *base, const struct cfg_key *k)
{
	return (bool *)(void *)((char *)base + k->offset);
}

static inline char ***list_field(void *base, const struct cfg_key *k)
{
	return (char ***)(void *)((char *)base + k->offset);
}

static inline size_t *list_count_field(void *base, const struct cfg_key *k)
{
	return (size_t *)(void *)((char *)base + k->offset + sizeof(char **));
}

