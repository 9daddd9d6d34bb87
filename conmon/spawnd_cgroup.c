/* Pod and container cgroups; see spawnd_cgroup.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "spawnd_cgroup.h"
#include "macro.h"
#include "proc_cgroup.h"
#include "spawnd_proc.h"
#include "util.h"

#define POD_PREFIX "criod-"
#define SCOPE_SUFFIX ".scope"
#define SLICE_SUFFIX ".slice"
#define MAX_DEPTH 32

int cgroup_driver_from_string(const char *s, enum cgroup_driver *out)
{
	if (s && strcmp(s, "cgroupfs") == 0)
		*out = CGROUP_DRIVER_CGROUPFS;
	else if (s && strcmp(s, "systemd") == 0)
		*out = CGROUP_DRIVER_SYSTEMD;
	else
		return -EINVAL;
	return 0;
}

const char *cgroup_driver_to_string(enum cgroup_driver d)
{
	return d == CGROUP_DRIVER_SYSTEMD ? "systemd" : "cgroupfs";
}

const char *cgroup_mode_to_string(enum cgroup_mode m)
{
	return m == CGROUP_MODE_V2 ? "v2" : m == CGROUP_MODE_HYBRID ? "hybrid" : "v1";
}

/* ---------------------------------------------------------------- pure */

/* The v1 and v2 controllers whose files are named "<controller>.<x>". */
static const char *const kernel_controllers[] = {
	"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "net_prio", "blkio",
	"perf_event", "hugetlb", "pids", "rdma", "misc", "io",
};

static bool component_is_valid(const char *c, size_t len)
{
	if (len == 0 || len > CGROUP_NAME_MAX)
		return false;
	if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = c[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-' || ch == ':' || ch == '@' || ch == '\\'))
			return false;
	}
	/* Names the cgroup filesystems use for their own files. */
	static const char *const reserved[] = {"tasks", "notify_on_release", "release_agent"};
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (len == strlen(reserved[i]) && memcmp(c, reserved[i], len) == 0)
			return false;
	if (len >= 7 && memcmp(c, "cgroup.", 7) == 0)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(kernel_controllers); i++) {
		size_t n = strlen(kernel_controllers[i]);
		if (len > n && memcmp(c, kernel_controllers[i], n) == 0 && c[n] == '.')
			return false;
	}
	return true;
}

bool cgroup_path_is_valid(const char *path)
{
	if (!path || path[0] != '/')
		return false;
	size_t len = strnlen(path, CGROUP_PATH_MAX + 1);
	if (len > CGROUP_PATH_MAX)
		return false;
	if (len == 1)
		return true; /* the root */
	const char *p = path + 1;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (!component_is_valid(p, n))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* systemd's unit_name_is_valid(n, UNIT_NAME_PLAIN) for a unit of type
 * slice: 1..255 bytes, "<prefix>.slice" with a non-empty prefix of
 * [0-9A-Za-z:_.\\-] (no "@": no template or instance). */
static bool slice_unit_is_valid(const char *n, size_t len)
{
	if (len == 0 || len >= 256)
		return false;
	if (len <= STRLEN(SLICE_SUFFIX) || memcmp(n + len - STRLEN(SLICE_SUFFIX), SLICE_SUFFIX,
						  STRLEN(SLICE_SUFFIX)) != 0)
		return false;
	/* The suffix starts at the last dot, which is the one of ".slice". */
	for (size_t i = 0; i < len - STRLEN(SLICE_SUFFIX); i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
		      c == '_' || c == '.' || c == '\\' || c == '-'))
			return false;
	}
	return true;
}

bool systemd_slice_is_valid(const char *slice)
{
	if (!slice)
		return false;
	size_t len = strnlen(slice, 256);
	return slice_unit_is_valid(slice, len);
}

/* systemd's controller list (cgroup_controller_table) for cg_needs_escape. */
static const char *const systemd_controllers[] = {
	"cpu", "cpuacct", "cpuset", "io", "blkio", "memory", "devices", "pids",
	"bpf-firewall", "bpf-devices", "bpf-foreign", "bpf-socket-bind", "bpf-restrict-network-interfaces",
};

/* systemd's cg_needs_escape for a name that is already a valid file name. */
static bool cg_needs_escape(const char *p)
{
	if (p[0] == '_' || p[0] == '.')
		return true;
	if (strcmp(p, "notify_on_release") == 0 || strcmp(p, "release_agent") == 0 || strcmp(p, "tasks") == 0)
		return true;
	if (strncmp(p, "cgroup.", 7) == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(systemd_controllers); i++) {
		size_t n = strlen(systemd_controllers[i]);
		if (strncmp(p, systemd_controllers[i], n) == 0 && p[n] == '.')
			return true;
	}
	return false;
}

/* Append "/" + cg_escape(name) to buf (of size CGROUP_PATH_MAX + 1). */
static int append_escaped(char *buf, size_t *len, const char *name, size_t n)
{
	bool esc;
	char tmp[257];

	if (n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, name, n);
	tmp[n] = '\0';
	esc = cg_needs_escape(tmp);
	if (n + esc > 255) /* the escaped name must still be a valid file name */
		return -EINVAL;
	if (*len + 1 + esc + n > CGROUP_PATH_MAX)
		return -ENAMETOOLONG;
	buf[(*len)++] = '/';
	if (esc)
		buf[(*len)++] = '_';
	memcpy(buf + *len, tmp, n);
	*len += n;
	buf[*len] = '\0';
	return 0;
}

int systemd_slice_expand(const char *slice, char **out)
{
	char buf[CGROUP_PATH_MAX + 1] = "";
	size_t len = 0;
	int r;

	if (!slice || !out)
		return -EINVAL;
	*out = NULL;
	if (strcmp(slice, "-.slice") == 0) {
		*out = strdup("/");
		return *out ? 0 : -ENOMEM;
	}
	if (!systemd_slice_is_valid(slice))
		return -EINVAL;
	size_t prefix_len = strlen(slice) - STRLEN(SLICE_SUFFIX);
	const char *dash = memchr(slice, '-', prefix_len);
	if (dash == slice)
		return -EINVAL; /* no leading dash */
	while (dash) {
		size_t n = (size_t)(dash - slice);
		char unit[256 + STRLEN(SLICE_SUFFIX)];

		/* No trailing or doubled dash. */
		if (n + 1 >= prefix_len || dash[1] == '-')
			return -EINVAL;
		memcpy(unit, slice, n);
		memcpy(unit + n, SLICE_SUFFIX, sizeof(SLICE_SUFFIX));
		if (!slice_unit_is_valid(unit, n + STRLEN(SLICE_SUFFIX)))
			return -EINVAL;
		r = append_escaped(buf, &len, unit, n + STRLEN(SLICE_SUFFIX));
		if (r < 0)
			return r;
		dash = memchr(dash + 1, '-', prefix_len - n - 1);
	}
	r = append_escaped(buf, &len, slice, strlen(slice));
	if (r < 0)
		return r;
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

int cgroup_pod_path(enum cgroup_driver driver, const char *parent, const char *default_parent,
		    const char *pod_id, char **out)
{
	char *p = NULL;
	int r;

	if (!out || !id_is_valid(pod_id))
		return -EINVAL;
	*out = NULL;
	if (!parent || !*parent)
		parent = default_parent;
	if (!parent || !*parent)
		parent = driver == CGROUP_DRIVER_SYSTEMD ? "criod.slice" : "/criod";

	if (driver == CGROUP_DRIVER_SYSTEMD) {
		_cleanup_free_ char *expanded = NULL;
		r = systemd_slice_expand(parent, &expanded);
		if (r < 0)
			return r;
		r = asprintf(&p, "%s/" POD_PREFIX "%s" SCOPE_SUFFIX, strcmp(expanded, "/") == 0 ? "" : expanded,
			     pod_id);
	} else {
		if (!cgroup_path_is_valid(parent))
			return -EINVAL;
		r = asprintf(&p, "%s/" POD_PREFIX "%s", strcmp(parent, "/") == 0 ? "" : parent, pod_id);
	}
	if (r < 0)
		return -ENOMEM;
	if (!cgroup_path_is_valid(p)) {
		free(p);
		return -ENAMETOOLONG; /* every part was valid: the whole is too long */
	}
	*out = p;
	return 0;
}

bool cgroup_is_pod_path(const char *path, const char *pod_id)
{
	if (!cgroup_path_is_valid(path) || !id_is_valid(pod_id))
		return false;
	const char *last = strrchr(path, '/') + 1;
	if (strncmp(last, POD_PREFIX, STRLEN(POD_PREFIX)) != 0 ||
	    strncmp(last + STRLEN(POD_PREFIX), pod_id, 64) != 0)
		return false;
	const char *rest = last + STRLEN(POD_PREFIX) + 64;
	return *rest == '\0' || strcmp(rest, SCOPE_SUFFIX) == 0;
}

/* ---------------------------------------------------------------- the host */

/* criod-<64 hex>[.scope]: some pod's cgroup */
static bool is_pod_dir_name(const char *name)
{
	char id[65];
	if (strncmp(name, POD_PREFIX, STRLEN(POD_PREFIX)) != 0 || strlen(name) < STRLEN(POD_PREFIX) + 64)
		return false;
	memcpy(id, name + STRLEN(POD_PREFIX), 64);
	id[64] = '\0';
	const char *rest = name + STRLEN(POD_PREFIX) + 64;
	return id_is_valid(id) && (*rest == '\0' || strcmp(rest, SCOPE_SUFFIX) == 0);
}

/* Depth-first below dir (rel its path in the hierarchy, "" at the root). */
static char *find_pod_below(int fd0, const char *rel, const char *pod_id, int depth)
{
	DIR *d = fdopendir(fd0);
	char *found = NULL;

	if (!d) {
		close(fd0);
		return NULL;
	}
	for (struct dirent *de; !found && (de = readdir(d));) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *sub = NULL;
		if (asprintf(&sub, "%s/%s", rel, de->d_name) < 0)
			break;
		if (cgroup_is_pod_path(sub, pod_id)) {
			found = TAKE_PTR(sub);
			break;
		}
		/* another pod's cgroup holds only that pod's containers */
		if (is_pod_dir_name(de->d_name) || depth + 1 >= CGROUP_FIND_DEPTH)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			found = find_pod_below(fd, sub, pod_id, depth + 1);
	}
	closedir(d);
	return found;
}

char *cgroup_find_pod(const struct cgroup_host *h, const char *pod_id)
{
	if (!id_is_valid(pod_id))
		return NULL;
	for (size_t i = 0; i < h->n; i++) {
		int fd = open(h->h[i].mount, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		char *found = fd >= 0 ? find_pod_below(fd, "", pod_id, 0) : NULL;
		if (found)
			return found;
	}
	return NULL;
}

void cgroup_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

void cgroup_host_free(struct cgroup_host *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free(h->h[i].mount);
		free(h->h[i].name);
	}
	free(h->h);
	h->h = NULL;
	h->n = 0;
}

static int host_add(struct cgroup_host *h, const char *mount, const char *name, bool cpuset)
{
	struct cgroup_hierarchy *nh = realloc(h->h, (h->n + 1) * sizeof(*nh));
	if (!nh)
		return -ENOMEM;
	h->h = nh;
	nh[h->n].mount = strdup(mount);
	nh[h->n].name = strdup(name);
	nh[h->n].cpuset = cpuset;
	if (!nh[h->n].mount || !nh[h->n].name) {
		free(nh[h->n].mount);
		free(nh[h->n].name);
		return -ENOMEM;
	}
	h->n++;
	return 0;
}

static int cmp_hier(const void *a, const void *b)
{
	return strcmp(((const struct cgroup_hierarchy *)a)->name, ((const struct cgroup_hierarchy *)b)->name);
}

int cgroup_host_detect(const char *root, struct cgroup_host *out)
{
	struct statfs sfs;
	int r;

	memset(out, 0, sizeof(*out));
	if (!root)
		root = CGROUP_ROOT;
	if (statfs(root, &sfs) < 0)
		return -errno;
	if ((unsigned long)sfs.f_type == CGROUP2_SUPER_MAGIC) {
		out->mode = CGROUP_MODE_V2;
		return host_add(out, root, "", false);
	}
	if ((unsigned long)sfs.f_type != TMPFS_MAGIC)
		return -ENOMEDIUM; /* no cgroup filesystem we know at root */

	out->mode = CGROUP_MODE_V1;
	DIR *d = opendir(root);
	if (!d)
		return -errno;
	struct dirent *de;
	r = 0;
	while ((de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&p, "%s/%s", root, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		/* cpu -> cpu,cpuacct and the like: the directory itself counts once. */
		if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		if (statfs(p, &sfs) < 0)
			continue;
		if ((unsigned long)sfs.f_type == CGROUP2_SUPER_MAGIC) {
			out->mode = CGROUP_MODE_HYBRID; /* "unified": no controllers, not used */
			continue;
		}
		if ((unsigned long)sfs.f_type != CGROUP_SUPER_MAGIC)
			continue;
		/* A mount point of its own (not a directory inside a hierarchy). */
		struct stat parent;
		if (stat(root, &parent) == 0 && parent.st_dev == st.st_dev)
			continue;
		_cleanup_free_ char *cpus = NULL;
		if (asprintf(&cpus, "%s/cpuset.cpus", p) < 0) {
			r = -ENOMEM;
			break;
		}
		r = host_add(out, p, de->d_name, access(cpus, F_OK) == 0);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r == 0 && out->n == 0)
		r = -ENOMEDIUM;
	if (r < 0) {
		cgroup_host_free(out);
		return r;
	}
	qsort(out->h, out->n, sizeof(*out->h), cmp_hier);
	return 0;
}

/* Write a short string to a cgroup file. */
static int write_str(const char *path, const char *s)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t len = strlen(s);
	ssize_t w = write(fd, s, len);
	if (w < 0)
		return -errno;
	return (size_t)w == len ? 0 : -EIO;
}

static bool blank(const char *s)
{
	for (; *s; s++)
		if (*s != ' ' && *s != '\n' && *s != '\t')
			return false;
	return true;
}

/* An empty cpuset.cpus or cpuset.mems in dir becomes its parent's. */
static int cpuset_inherit(const char *dir)
{
	static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *p = NULL, *pp = NULL, *cur = NULL, *par = NULL;
		if (asprintf(&p, "%s/%s", dir, files[i]) < 0 || asprintf(&pp, "%s/../%s", dir, files[i]) < 0)
			return -ENOMEM;
		int r = read_file(p, 65536, &cur, NULL);
		if (r < 0)
			return r;
		if (!blank(cur))
			continue;
		r = read_file(pp, 65536, &par, NULL);
		if (r < 0)
			return r;
		r = write_str(p, par);
		if (r < 0)
			return r;
	}
	return 0;
}

/* v2: enable every available controller for the children of dir. */
static void subtree_enable(const char *dir)
{
	_cleanup_free_ char *cp = NULL, *sp = NULL, *ctl = NULL;
	if (asprintf(&cp, "%s/cgroup.controllers", dir) < 0 || asprintf(&sp, "%s/cgroup.subtree_control", dir) < 0)
		return;
	if (read_file(cp, 4096, &ctl, NULL) < 0)
		return;
	char *save = NULL;
	for (char *tok = strtok_r(ctl, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		char buf[64];
		if (snprintf(buf, sizeof(buf), "+%s", tok) < (int)sizeof(buf))
			(void)write_str(sp, buf); /* best effort: some cannot be delegated */
	}
}

/* mkdir every component of path below mount; *made_from is set to the
 * first directory this call created (or NULL). */
static int create_one(const struct cgroup_hierarchy *hi, bool v2, const char *path, char **made_from)
{
	_cleanup_free_ char *full = NULL;
	if (asprintf(&full, "%s%s", hi->mount, path) < 0)
		return -ENOMEM;
	size_t base = strlen(hi->mount);
	*made_from = NULL;
	for (size_t i = base + 1;; i++) {
		char c = full[i];
		if (c != '/' && c != '\0')
			continue;
		full[i] = '\0';
		if (v2) {
			/* The parent of this level hands its controllers down. */
			char *slash = strrchr(full, '/');
			*slash = '\0';
			subtree_enable(full);
			*slash = '/';
		}
		if (mkdir(full, 0755) == 0) {
			if (!*made_from && !(*made_from = strdup(full)))
				return -ENOMEM;
		} else if (errno != EEXIST) {
			return -errno;
		}
		if (hi->cpuset) {
			int r = cpuset_inherit(full);
			if (r < 0)
				return r;
		}
		full[i] = c;
		if (c == '\0')
			return 0;
	}
}

static int rmdir_tree(const char *dir, int depth)
{
	if (depth > MAX_DEPTH)
		return -ELOOP;
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		_cleanup_free_ char *sub = NULL;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = rmdir_tree(sub, depth + 1);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0)
		return r;
	if (rmdir(dir) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* Remove the directories create_one made (made_from and below). */
static void undo_one(const char *made_from)
{
	if (made_from)
		(void)rmdir_tree(made_from, 0);
}

int cgroup_create(const struct cgroup_host *h, const char *path)
{
	char **made;
	size_t i;
	int r = 0;

	if (!cgroup_path_is_valid(path) || strcmp(path, "/") == 0)
		return -EINVAL;
	made = calloc(h->n + 1, sizeof(*made));
	if (!made)
		return -ENOMEM;
	for (i = 0; i < h->n; i++) {
		r = create_one(&h->h[i], h->mode == CGROUP_MODE_V2, path, &made[i]);
		if (r < 0)
			break;
	}
	if (r < 0)
		for (size_t j = 0; j <= i && j < h->n; j++)
			undo_one(made[j]);
	for (size_t j = 0; j < h->n; j++)
		free(made[j]);
	free(made);
	return r;
}

int cgroup_procs_files(const struct cgroup_host *h, const char *path, char ***out)
{
	char **v;

	if (!cgroup_path_is_valid(path))
		return -EINVAL;
	v = calloc(h->n + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < h->n; i++) {
		if (asprintf(&v[i], "%s%s/cgroup.procs", h->h[i].mount, strcmp(path, "/") == 0 ? "" : path) < 0) {
			v[i] = NULL;
			cgroup_strv_free(v);
			return -ENOMEM;
		}
	}
	*out = v;
	return 0;
}

int cgroup_add_pid(const struct cgroup_host *h, const char *path, pid_t pid)
{
	char **files = NULL;
	char buf[32];
	int r = cgroup_procs_files(h, path, &files);
	if (r < 0)
		return r;
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (size_t i = 0; files[i] && r >= 0; i++)
		r = write_str(files[i], buf);
	cgroup_strv_free(files);
	return r;
}

/* Collect the pids in dir/cgroup.procs and in every cgroup below it. */
static int collect_pids(const char *dir, int depth, pid_t **pids, size_t *n)
{
	if (depth > MAX_DEPTH)
		return -ELOOP;
	_cleanup_free_ char *procs = NULL, *text = NULL;
	if (asprintf(&procs, "%s/cgroup.procs", dir) < 0)
		return -ENOMEM;
	int r = read_file(procs, 16u << 20, &text, NULL);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	char *save = NULL;
	for (char *tok = strtok_r(text, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
		char *end;
		long v = strtol(tok, &end, 10);
		if (*end || v <= 0 || v > 0x3fffffff)
			continue;
		pid_t *np = realloc(*pids, (*n + 1) * sizeof(*np));
		if (!np)
			return -ENOMEM;
		*pids = np;
		(*pids)[(*n)++] = (pid_t)v;
	}
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	r = 0;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		_cleanup_free_ char *sub = NULL;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		r = collect_pids(sub, depth + 1, pids, n);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}

/* Whether /proc/<pid>/cgroup places pid in path or below, in hierarchy hi. */
static bool pid_in_cgroup(pid_t pid, const struct cgroup_hierarchy *hi, bool v2, const char *path)
{
	char p[64];
	_cleanup_free_ char *text = NULL;
	snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
	if (read_file(p, 65536, &text, NULL) < 0)
		return false;
	size_t plen = strlen(path);
	struct proc_cgroup_line l;
	for (char *cur = text; proc_cgroup_next(&cur, &l);) {
		const char *ctl = l.controllers, *cg = l.path;
		bool match;
		if (v2) {
			match = proc_cgroup_is_unified(&l);
		} else {
			/* "cpu,cpuacct" vs the directory name "cpu,cpuacct"; name=systemd vs "systemd" */
			const char *name = hi->name;
			match = strcmp(ctl, name) == 0 ||
				(strncmp(ctl, "name=", 5) == 0 && strcmp(ctl + 5, name) == 0);
		}
		if (match && strncmp(cg, path, plen) == 0 && (cg[plen] == '\0' || cg[plen] == '/'))
			return true;
	}
	return false;
}

int cgroup_kill_all(const struct cgroup_host *h, const char *path, int timeout_ms)
{
	_cleanup_free_ pid_t *pids = NULL;
	_cleanup_free_ char *dir = NULL;
	size_t n = 0;
	int r, killed = 0;

	if (!cgroup_path_is_valid(path) || strcmp(path, "/") == 0 || h->n == 0)
		return -EINVAL;
	/* One hierarchy is enough: every process is in every one. Prefer
	 * pids or memory, which are always there when present at all. */
	const struct cgroup_hierarchy *hi = &h->h[0];
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->h[i].name, "pids") == 0)
			hi = &h->h[i];
	if (asprintf(&dir, "%s%s", hi->mount, path) < 0)
		return -ENOMEM;
	r = collect_pids(dir, 0, &pids, &n);
	if (r < 0)
		return r;
	int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (size_t i = 0; i < n; i++) {
		uint64_t start;
		if (proc_stat(pids[i], NULL, &start) < 0)
			continue;
		_cleanup_close_ int pfd = -1;
		r = proc_pidfd(pids[i], start, &pfd);
		if (r < 0)
			continue; /* gone */
		/* Pinned; only now is membership meaningful. */
		if (!pid_in_cgroup(pids[i], hi, h->mode == CGROUP_MODE_V2, path))
			continue;
		if (proc_signal(pids[i], pfd, SIGKILL) < 0)
			continue;
		killed++;
		int64_t left = (deadline - now_monotonic_ns()) / 1000000;
		r = proc_wait_gone(pids[i], start, pfd, left > 0 ? (int)left : 0);
		if (r < 0)
			return r;
	}
	return killed;
}

int cgroup_remove(const struct cgroup_host *h, const char *path, int timeout_ms)
{
	int ret = 0;

	if (!cgroup_path_is_valid(path) || strcmp(path, "/") == 0)
		return -EINVAL;
	int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * 1000000;
	for (size_t i = 0; i < h->n; i++) {
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "%s%s", h->h[i].mount, path) < 0)
			return -ENOMEM;
		for (;;) {
			int r = rmdir_tree(dir, 0);
			if (r == -EBUSY && now_monotonic_ns() < deadline) {
				struct timespec ts = {0, 10 * 1000 * 1000};
				nanosleep(&ts, NULL);
				continue;
			}
			if (r < 0 && ret == 0)
				ret = r;
			break;
		}
	}
	/* On a hybrid host runc also makes the path in the controller-less
	 * unified hierarchy; nothing else removes it. */
	if (h->mode == CGROUP_MODE_HYBRID) {
		_cleanup_free_ char *dir = NULL;
		if (asprintf(&dir, "/sys/fs/cgroup/unified%s", path) >= 0)
			(void)rmdir_tree(dir, 0);
	}
	return ret;
}
