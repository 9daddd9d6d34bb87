/* A pod's interface counters; see netstats.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "netns.h"
#include "netstats.h"
#include "util.h"

#define NET_DEV_MAX (256u << 10)

int netstats_parse(const char *text, struct if_stats *out, size_t max, size_t *n)
{
	*n = 0;
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		const char *colon = memchr(line, ':', len);
		/* The two header lines have '|' and no ':'. */
		if (colon && !memchr(line, '|', len)) {
			const char *name = line;
			while (name < colon && *name == ' ')
				name++;
			size_t nlen = (size_t)(colon - name);
			if (nlen == 0 || nlen >= sizeof(out->name))
				return -EINVAL;
			char buf[512];
			size_t rest = len - (size_t)(colon + 1 - line);
			if (rest >= sizeof(buf))
				return -EINVAL;
			memcpy(buf, colon + 1, rest);
			buf[rest] = '\0';
			uint64_t v[16];
			int used = 0;
			if (sscanf(buf,
				   " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
				   " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
				   " %" SCNu64 " %" SCNu64 " %n",
				   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
				   &v[12], &v[13], &v[14], &v[15], &used) != 16 ||
			    buf[used] != '\0')
				return -EINVAL;
			if (!(nlen == 2 && strncmp(name, "lo", 2) == 0) && *n < max) {
				struct if_stats *s = &out[(*n)++];
				memcpy(s->name, name, nlen);
				s->name[nlen] = '\0';
				s->rx_bytes = v[0];
				s->rx_errors = v[2];
				s->tx_bytes = v[8];
				s->tx_errors = v[10];
			}
		} else if (len && !memchr(line, '|', len)) {
			return -EINVAL;
		}
		line += len + (nl ? 1 : 0);
	}
	return 0;
}

struct read_arg {
	struct if_stats *out;
	size_t max, *n;
};

static int read_in_netns(void *arg)
{
	struct read_arg *a = arg;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int r = read_file("/proc/thread-self/net/dev", NET_DEV_MAX, &text, &len);
	if (r < 0)
		return r;
	return netstats_parse(text, a->out, a->max, a->n);
}

int netstats_read_netns(const char *netns_path, struct if_stats *out, size_t max, size_t *n)
{
	struct read_arg a = {out, max, n};
	*n = 0;
	return netns_run(netns_path, read_in_netns, &a);
}
