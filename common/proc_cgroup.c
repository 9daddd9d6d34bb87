/* The parser of /proc/<pid>/cgroup lines; see proc_cgroup.h. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "proc_cgroup.h"

int proc_cgroup_parse_line(char *line, struct proc_cgroup_line *out)
{
	unsigned long id = 0;
	char *p = line;

	if (!line || !out)
		return -EINVAL;
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = '\0';
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		id = id * 10 + (unsigned long)(*p - '0');
		if (id > UINT_MAX)
			return -EINVAL;
	}
	if (*p != ':')
		return -EINVAL;
	char *ctl = p + 1, *c2 = strchr(ctl, ':');
	if (!c2 || c2[1] != '/')
		return -EINVAL;
	*c2 = '\0';
	out->id = (unsigned)id;
	out->controllers = ctl;
	out->path = c2 + 1;
	return 0;
}

bool proc_cgroup_next(char **cursor, struct proc_cgroup_line *out)
{
	while (*cursor && **cursor) {
		char *line = *cursor, *nl = strchr(line, '\n');
		if (nl) {
			*nl = '\0';
			*cursor = nl + 1;
		} else
			*cursor = line + strlen(line);
		if (proc_cgroup_parse_line(line, out) == 0)
			return true;
	}
	return false;
}

bool proc_cgroup_is_unified(const struct proc_cgroup_line *line)
{
	return line->id == 0 && line->controllers[0] == '\0';
}

bool proc_cgroup_has_controller(const struct proc_cgroup_line *line, const char *controller)
{
	size_t n = strlen(controller);

	if (n == 0)
		return false;
	for (const char *p = line->controllers; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, controller, n) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}
