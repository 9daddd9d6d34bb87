/* HTTP/1.1 request parsing for the streaming server (criod/stream_server.c):
 * one request head (request line and headers), bounded, no body. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEAD 16384  /* bytes of request line and headers together */
#define HTTP_MAX_HEADERS 64

struct http_header {
	const char *name, *value; /* NUL-terminated, inside the request's copy */
};

struct http_request {
	char *buf; /* the head, copied; names and values point into it */
	const char *method, *target, *path, *query; /* query: "" when none */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t n_headers;
};

/* Parse a request head at the start of data. Returns the bytes it took
 * (through the blank line) when complete, 0 when more bytes are needed,
 * -EMSGSIZE when the head is longer than max (or has too many headers),
 * -EBADMSG when it is not HTTP/1.1 (or 1.0). On success req owns a copy
 * (http_request_free). */
int http_parse_request(const char *data, size_t len, size_t max, struct http_request *req);
void http_request_free(struct http_request *req);

/* The first value of a header (case-insensitive name), or NULL. */
const char *http_header(const struct http_request *req, const char *name);
/* Whether a header's comma-separated values (every header of that name)
 * hold token, case-insensitively. */
bool http_header_has_token(const struct http_request *req, const char *name, const char *token);
/* Call fn for each comma-separated, trimmed value of every header of that
 * name, in order, until it returns true; returns what fn last returned. */
typedef bool (*http_value_fn)(const char *value, size_t len, void *arg);
bool http_header_each(const struct http_request *req, const char *name, http_value_fn fn, void *arg);
/* The value of query parameter name at index (0 for the first), decoded
 * into out (at most outlen-1 bytes); false when there is no such value. */
bool http_query_param(const struct http_request *req, const char *name, size_t index, char *out, size_t outlen);

/* The reason phrase of a status code we send. */
const char *http_reason(int code);
