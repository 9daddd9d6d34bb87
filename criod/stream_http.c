/* HTTP/1.1 request heads for the streaming server; see stream_http.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stream_http.h"
#include "util.h"

static bool is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char *trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	return s;
}

int http_parse_request(const char *data, size_t len, size_t max, struct http_request *req)
{
	memset(req, 0, sizeof(*req));
	/* Find the end of the head within max bytes. */
	size_t n = len < max ? len : max, end = 0;
	for (size_t i = 0; i + 3 < n + 0 && !end; i++)
		if (data[i] == '\r' && data[i + 1] == '\n' && data[i + 2] == '\r' && data[i + 3] == '\n')
			end = i + 4;
	/* Control characters other than CR LF HT (NUL above all: the head is
	 * parsed as a C string) never belong in a head: answer garbage at
	 * once, also before waiting for max bytes. */
	for (size_t i = 0; i < (end ? end : n); i++) {
		unsigned char c = (unsigned char)data[i];
		if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
			return -EBADMSG;
	}
	if (!end)
		return len >= max ? -EMSGSIZE : 0;
	char *buf = malloc(end + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, data, end);
	buf[end] = '\0';
	req->buf = buf;

	/* request line: METHOD SP target SP HTTP/1.x CRLF */
	char *line = buf, *eol = strstr(line, "\r\n");
	*eol = '\0';
	char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strchr(sp2 + 1, ' '))
		goto bad;
	*sp1 = *sp2 = '\0';
	for (char *m = line; *m; m++)
		if (!is_tchar((unsigned char)*m))
			goto bad;
	if (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0)
		goto bad;
	req->method = line;
	req->target = sp1 + 1;
	if (req->target[0] != '/')
		goto bad;
	for (const char *t = req->target; *t; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			goto bad;
	/* path and query: split a second copy (target stays whole) */
	char *q = strchr(sp1 + 1, '?');
	req->path = req->target;
	req->query = "";
	if (q) {
		*q = '\0'; /* target now ends at the path; keep the query */
		req->query = q + 1;
	}

	for (char *p = eol + 2; p < buf + end - 2;) {
		char *e = strstr(p, "\r\n");
		if (!e)
			goto bad;
		if (e == p)
			break;
		if (*p == ' ' || *p == '\t') /* obsolete line folding: refused (RFC 9112 5.2) */
			goto bad;
		char *colon = memchr(p, ':', (size_t)(e - p));
		if (!colon || colon == p)
			goto bad;
		for (char *c = p; c < colon; c++)
			if (!is_tchar((unsigned char)*c))
				goto bad;
		for (char *c = colon + 1; c < e; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				goto bad;
		if (req->n_headers == HTTP_MAX_HEADERS) {
			http_request_free(req);
			return -EMSGSIZE;
		}
		*colon = '\0';
		req->headers[req->n_headers].name = p;
		req->headers[req->n_headers].value = trim(colon + 1, e);
		req->n_headers++;
		p = e + 2;
	}
	return (int)end;
bad:
	http_request_free(req);
	return -EBADMSG;
}

void http_request_free(struct http_request *req)
{
	free(req->buf);
	memset(req, 0, sizeof(*req));
}

const char *http_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->n_headers; i++)
		if (strcasecmp(req->headers[i].name, name) == 0)
			return req->headers[i].value;
	return NULL;
}

bool http_header_each(const struct http_request *req, const char *name, http_value_fn fn, void *arg)
{
	for (size_t i = 0; i < req->n_headers; i++) {
		if (strcasecmp(req->headers[i].name, name) != 0)
			continue;
		const char *v = req->headers[i].value;
		while (*v) {
			while (*v == ' ' || *v == '\t' || *v == ',')
				v++;
			const char *e = v;
			while (*e && *e != ',')
				e++;
			size_t l = (size_t)(e - v);
			while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
				l--;
			if (l && fn(v, l, arg))
				return true;
			v = e;
		}
	}
	return false;
}

struct token_arg {
	const char *token;
};

static bool token_eq(const char *v, size_t len, void *arg)
{
	const struct token_arg *t = arg;
	return strlen(t->token) == len && strncasecmp(v, t->token, len) == 0;
}

bool http_header_has_token(const struct http_request *req, const char *name, const char *token)
{
	struct token_arg t = {token};
	return http_header_each(req, name, token_eq, &t);
}

bool http_query_param(const struct http_request *req, const char *name, size_t index, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	for (const char *p = req->query; *p;) {
		const char *e = strchr(p, '&');
		if (!e)
			e = p + strlen(p);
		const char *eq = memchr(p, '=', (size_t)(e - p));
		const char *ke = eq ? eq : e;
		if ((size_t)(ke - p) == nl && strncmp(p, name, nl) == 0) {
			if (index == 0)
				return pct_decode(eq ? eq + 1 : e, (size_t)(e - (eq ? eq + 1 : e)), true, out, outlen);
			index--;
		}
		p = *e ? e + 1 : e;
	}
	return false;
}

const char *http_reason(int code)
{
	switch (code) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}
