/* The lines of /proc/<pid>/cgroup, "<hierarchy-id>:<controllers>:<path>"
 * (cgroups(7)): one parser for every reader of them (spawnd's pod, kill
 * and namespace checks, the launcher's peer check, conmon's OOM counter).
 * A cgroup v1 line names its hierarchy's controllers, comma-separated
 * ("4:cpu,cpuacct:/kubepods"), or a named hierarchy ("1:name=systemd:/");
 * the cgroup v2 (unified) line is "0::/path". The path is everything after
 * the second ':', so a cgroup whose name holds ':' stays whole. */
#pragma once

#include <stdbool.h>

struct proc_cgroup_line {
	unsigned id;             /* hierarchy id; 0 for the unified hierarchy */
	const char *controllers; /* "" on the unified line; "name=X" for a named one */
	char *path;              /* begins with '/' */
};

/* Split one line (a trailing '\n' is dropped) in place: 0, or -EINVAL if
 * it is not "<decimal id>:<controllers>:/<path>". (pure) */
int proc_cgroup_parse_line(char *line, struct proc_cgroup_line *out);

/* The next well-formed line of the text at *cursor, split in place, with
 * *cursor moved past it; malformed lines are skipped. false at the end.
 * Start with *cursor = the text (read_file's NUL-terminated buffer). (pure) */
bool proc_cgroup_next(char **cursor, struct proc_cgroup_line *out);

/* Whether line is the unified hierarchy's ("0::/path"). (pure) */
bool proc_cgroup_is_unified(const struct proc_cgroup_line *line);

/* Whether controller is one of line's comma-separated controllers
 * ("memory" in "memory", not in "memory_x"; "name=systemd" as a whole). (pure) */
bool proc_cgroup_has_controller(const struct proc_cgroup_line *line, const char *controller);
