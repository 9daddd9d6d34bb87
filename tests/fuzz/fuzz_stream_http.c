/* The HTTP/1.1 request heads of criod's streaming server
 * (criod/stream_http.c): what any client of the streaming port sends
 * before the upgrade, parsed with the real bound or a small one (the
 * first byte), then asked what stream_server.c asks (the upgrade headers'
 * tokens, the WebSocket key and protocols, every query parameter the
 * port-forward and exec URLs take). Oracles: a head never claims more
 * bytes than it was given or than the bound; no prefix of an accepted
 * head is complete or refused; the method is a token, the path starts
 * with '/', names are tokens and values hold no control bytes but HT; a
 * decoded query value fits its buffer. */
#include <errno.h>
#include <stdio.h>

#include "fuzz.h"
#include "stream_http.h"

int LLVMFuzzerInitialize(int *argc _unused_, char ***argv _unused_)
{
	fuzz_quiet_logs("fuzz_stream_http");
	return 0;
}

static void finding(const char *what)
{
	fprintf(stderr, "FINDING: %s\n", what);
	abort();
}

static bool tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool each_value(const char *v, size_t len, void *arg)
{
	size_t *n = arg;
	if (len == 0 || v[0] == ' ' || v[0] == ',' || v[len - 1] == ' ' || memchr(v, ',', len))
		finding("a header value list item is empty, untrimmed or holds a comma");
	(*n)++;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return -1;
	size_t max = data[0] & 1 ? HTTP_MAX_HEAD : 64 + data[0];
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	struct http_request req;
	int r = http_parse_request(in, n, max, &req);
	if (r == 0 || r == -EMSGSIZE || r == -EBADMSG) {
		if (req.buf || req.n_headers)
			finding("a head not accepted left storage behind");
		return 0;
	}
	if (r < 0)
		finding("http_parse_request failed with an undocumented error");
	if ((size_t)r > n || (size_t)r > max)
		finding("a head longer than its input or bound accepted");
	if (memcmp(in + r - 4, "\r\n\r\n", 4) != 0)
		finding("an accepted head does not end with a blank line");
	if (!*req.method || !*req.path || req.path[0] != '/' || !req.query)
		finding("an accepted head without method or absolute path");
	for (const char *m = req.method; *m; m++)
		if (!tchar((unsigned char)*m))
			finding("a method that is not a token");
	if (req.n_headers > HTTP_MAX_HEADERS)
		finding("more headers than the bound");
	for (size_t i = 0; i < req.n_headers; i++) {
		const char *name = req.headers[i].name, *v = req.headers[i].value;
		if (!*name)
			finding("an empty header name accepted");
		for (const char *c = name; *c; c++)
			if (!tchar((unsigned char)*c))
				finding("a header name that is not a token");
		for (const char *c = v; *c; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				finding("a header value with a control byte");
		if (!http_header(&req, name))
			finding("http_header does not find a parsed name");
		size_t items = 0;
		http_header_each(&req, name, each_value, &items);
	}
	static const char *const hdrs[] = {"Connection", "Upgrade", "Sec-WebSocket-Protocol", "X-Stream-Protocol-Version"};
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		(void)http_header_has_token(&req, hdrs[i], "upgrade");
		(void)http_header_has_token(&req, hdrs[i], "");
	}
	(void)http_header(&req, "Sec-WebSocket-Key");
	static const char *const params[] = {"port", "command", "tty", "input", "output", "error", ""};
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		char small[16], big[256];
		for (size_t k = 0; k < 80; k++) {
			memset(small, 0x5a, sizeof(small));
			bool a = http_query_param(&req, params[i], k, small, sizeof(small));
			bool b = http_query_param(&req, params[i], k, big, sizeof(big));
			if (a && (strlen(small) >= sizeof(small) || !b || strcmp(small, big) != 0))
				finding("a query value decoded differently into a smaller buffer, or over it");
			if (!b)
				break;
		}
	}
	/* no prefix of a complete head is complete, or refused */
	struct http_request part;
	int pr = http_parse_request(in, (size_t)r - 1, max, &part);
	if (pr != 0)
		finding("a prefix of an accepted head was not 'more needed'");
	http_request_free(&req);
	return 0;
}
