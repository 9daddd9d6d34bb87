/* One structured log format for every component. Each event is one line on
 * stderr (journald takes it from there):
 *
 *   ts=2026-11-23T07:43:00.123456Z comp=imaged level=info req=4f2a... msg="listening" path=/run/criod/imaged.sock
 *
 * msg is a fixed description; the fields after it are key=value pairs formatted
 * by the caller. Control characters anywhere are escaped so hostile input can
 * never forge a line. A log call with a non-zero errno adds err="..." errno=N. */
#pragma once

#include <stdarg.h>

#include "macro.h"

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_init(const char *component);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* The request id this thread works for, used when a log call passes none
 * (code that does not know it, e.g. the registry client in imaged-fetch).
 * The string must outlive its use; NULL clears it. */
void log_set_thread_request(const char *req);
/* Parse "debug", "info", "warn", "error"; returns -EINVAL otherwise. */
int log_level_from_string(const char *s);

/* errnum is an errno value (sign ignored), 0 for none. req may be NULL.
 * Returns -abs(errnum) so callers can `return log_error_errno(r, ...)`. */
int log_emit(enum log_level level, int errnum, const char *req, const char *msg,
	     const char *fields_fmt, ...) _printf_(5, 6);
int log_emitv(enum log_level level, int errnum, const char *req, const char *msg,
	      const char *fields_fmt, va_list ap) _printf_(5, 0);

/* log_info(req, "message", "key=%s n=%d", a, b); the fields are optional. */
#define log_debug(req, msg, ...) log_emit(LOG_LEVEL_DEBUG, 0, req, msg, "" __VA_ARGS__)
#define log_info(req, msg, ...) log_emit(LOG_LEVEL_INFO, 0, req, msg, "" __VA_ARGS__)
#define log_warn(req, msg, ...) log_emit(LOG_LEVEL_WARN, 0, req, msg, "" __VA_ARGS__)
#define log_error(req, msg, ...) log_emit(LOG_LEVEL_ERROR, 0, req, msg, "" __VA_ARGS__)
#define log_warn_errno(r, req, msg, ...) log_emit(LOG_LEVEL_WARN, r, req, msg, "" __VA_ARGS__)
#define log_error_errno(r, req, msg, ...) log_emit(LOG_LEVEL_ERROR, r, req, msg, "" __VA_ARGS__)

/* For a signal handler: one line in the same format, built without locks,
 * malloc or stdio, with a token field (s may be NULL: "?") and a number. */
void log_signal_safe(enum log_level level, const char *msg, const char *k1, const char *s, const char *k2, long v);
