/* criod's pod table and its persistence; see pods.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "containers.h"
#include "internal/state.pb-c.h"
#include "log.h"
#include "macro.h"
#include "pods.h"
#include "util.h"

#define MAX_RECORD (4u << 20)

static char *dup_str(const char *s) { return strdup(s ? s : ""); }

static void pod_free(struct pod *p)
{
	if (!p)
		return;
	free(p->runtime_handler);
	free(p->config_bytes);
	if (p->config)
		protobuf_c_message_free_unpacked(&p->config->base, NULL);
	free(p->netns_path);
	for (size_t i = 0; i < p->n_ips; i++)
		free(p->ips[i]);
	free(p->ipc_ns);
	free(p->uts_ns);
	free(p->pid_ns);
	free(p->shm);
	free(p->cgroup);
	free(p->dir);
	free(p);
}

static int pod_set_config(struct pod *p, const uint8_t *bytes, size_t len)
{
	p->config_bytes = malloc(len ? len : 1);
	if (!p->config_bytes)
		return -ENOMEM;
	memcpy(p->config_bytes, bytes, len);
	p->config_len = len;
	p->config = runtime__v1__pod_sandbox_config__unpack(NULL, len, p->config_bytes);
	return p->config ? 0 : -EINVAL;
}

static int pod_write(struct pod *p, bool durable)
{
	Criod__Internal__PodRecord r = CRIOD__INTERNAL__POD_RECORD__INIT;
	r.id = p->id;
	r.config.data = p->config_bytes;
	r.config.len = p->config_len;
	r.state = (Criod__Internal__PodRecord__State)p->state;
	r.created_at = p->created_at;
	r.runtime_handler = p->runtime_handler;
	r.netns_path = p->netns_path;
	r.ips = p->ips;
	r.n_ips = p->n_ips;
	r.pause_pid = p->pause_pid;
	r.ipc_ns_path = p->ipc_ns;
	r.uts_ns_path = p->uts_ns;
	r.pid_ns_path = p->pid_ns;
	r.shm_path = p->shm;
	r.cgroup_path = p->cgroup;
	r.oom_score_adj = p->oom_score_adj;
	size_t n = criod__internal__pod_record__get_packed_size(&r);
	_cleanup_free_ uint8_t *buf = malloc(n ? n : 1);
	_cleanup_free_ char *path = NULL;
	if (!buf || asprintf(&path, "%s/pod.pb", p->dir) < 0)
		return -ENOMEM;
	criod__internal__pod_record__pack(&r, buf);
	int ret = durable ? write_file_atomic(path, buf, n, 0600) : write_file_boot(path, buf, n, 0600);
	if (ret < 0)
		return log_error_errno(ret, NULL, "cannot save pod state", "pod=%s", p->id);
	return 0;
}

int pod_save(struct pod *p)
{
	return pod_write(p, true);
}

static struct pod *pod_load(const char *dir, const char *id)
{
	_cleanup_free_ char *path = NULL, *buf = NULL;
	size_t len;
	if (asprintf(&path, "%s/%s/pod.pb", dir, id) < 0 || read_file(path, MAX_RECORD, &buf, &len) < 0)
		return NULL;
	Criod__Internal__PodRecord *r = criod__internal__pod_record__unpack(NULL, len, (uint8_t *)buf);
	if (!r)
		return NULL;
	struct pod *p = calloc(1, sizeof(*p));
	bool ok = p && strcmp(r->id, id) == 0 && r->n_ips <= POD_MAX_IPS;
	if (ok) {
		snprintf(p->id, sizeof(p->id), "%s", r->id);
		p->state = (enum pod_state)r->state;
		p->created_at = r->created_at;
		p->pause_pid = r->pause_pid;
		p->oom_score_adj = r->oom_score_adj;
		p->runtime_handler = dup_str(r->runtime_handler);
		p->netns_path = dup_str(r->netns_path);
		p->ipc_ns = dup_str(r->ipc_ns_path);
		p->uts_ns = dup_str(r->uts_ns_path);
		p->pid_ns = dup_str(r->pid_ns_path);
		p->shm = dup_str(r->shm_path);
		p->cgroup = dup_str(r->cgroup_path);
		for (size_t i = 0; i < r->n_ips; i++)
			p->ips[p->n_ips++] = dup_str(r->ips[i]);
		ok = asprintf(&p->dir, "%s/%s", dir, id) >= 0 && pod_set_config(p, r->config.data, r->config.len) == 0;
	}
	criod__internal__pod_record__free_unpacked(r, NULL);
	if (!ok) {
		pod_free(p);
		return NULL;
	}
	return p;
}

/* A directory without its record is what a crash in pod_new (before the
 * first save) or pod_destroy (after the record went) leaves: remove it. */
static bool remove_unrecorded(const char *root, const char *id)
{
	_cleanup_free_ char *dir = NULL, *record = NULL;
	if (asprintf(&dir, "%s/%s", root, id) < 0 || asprintf(&record, "%s/pod.pb", dir) < 0)
		return false;
	struct stat st;
	if (lstat(record, &st) == 0 || errno != ENOENT)
		return false;
	int r = rmdir_with_files(dir);
	if (r < 0) {
		log_warn_errno(r, NULL, "cannot remove a pod directory without a record", "path=%s", dir);
		return false;
	}
	log_info(NULL, "removed a pod directory without a record", "pod=%s", id);
	return true;
}

/* Records are written atomically, so one that cannot be read is a disk
 * fault or a hand edit. Left alone, its pod's infrastructure, network and
 * containers would stay where no call reaches them: such a pod is kept
 * aside, knowing only its id and directory, and removed (pods_recover). */
static struct pod *pod_unreadable(struct pod_table *t, const char *id)
{
	struct pod *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (asprintf(&p->dir, "%s/%s", t->root, id) < 0) {
		free(p);
		return NULL;
	}
	snprintf(p->id, sizeof(p->id), "%.64s", id); /* id_is_valid: 64 hex digits */
	p->state = POD_NOTREADY;
	p->unreadable = true;
	p->table = t;
	return p;
}

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_MAX 64

/* The boot a file holds (its first line), or "" when it cannot be read. */
static void boot_id_read(const char *path, char out[BOOT_ID_MAX + 1])
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	out[0] = '\0';
	if (read_file(path, BOOT_ID_MAX, &buf, &len) < 0)
		return;
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(out, BOOT_ID_MAX + 1, "%s", buf);
}

/* A READY pod's pause, namespaces, mounts and network end with the boot
 * that made them, and its record alone would keep saying READY after a
 * host restart, so kubelet would never make the pod again. Likewise a
 * container's monitor and processes: conmon's CREATED state.pb is written
 * boot-scoped, and a conmon.pid or state.pb a host crash lost would read
 * as a live monitor or UNKNOWN for ever. criod keeps the boot its records
 * were made in (<state_dir>/criod/boot_id): when it starts in another boot
 * every READY pod becomes NOTREADY and every created container that conmon
 * did not record as exited becomes EXITED 255 (ctrs_after_reboot), all
 * durably before the new boot is recorded, so a kill in between redoes it;
 * StopPodSandbox/RemovePodSandbox and RemoveContainer then undo what is
 * left as for any stopped pod or exited container. No boot_id yet (the
 * first start of this tree) changes nothing. */
int host_boot_check(struct pod_table *t, struct container_table *ctrs, const char *state_dir)
{
	_cleanup_free_ char *path = NULL;
	char now[BOOT_ID_MAX + 1], then[BOOT_ID_MAX + 1];
	if (asprintf(&path, "%s/criod/boot_id", state_dir) < 0)
		return -ENOMEM;
	boot_id_read(BOOT_ID_PATH, now);
	if (!now[0])
		return log_error_errno(EIO, NULL, "cannot read the boot id", "path=%s", BOOT_ID_PATH);
	boot_id_read(path, then);
	if (strcmp(now, then) == 0)
		return 0;
	if (then[0]) {
		size_t n = 0;
		for (struct pod *p = t->pods; p; p = p->next) {
			if (p->state != POD_READY)
				continue;
			p->state = POD_NOTREADY;
			int r = pod_save(p);
			if (r < 0)
				return r;
			n++;
		}
		log_info(NULL, "the host restarted since the pods were made: READY pods are now NOTREADY",
			 "pods=%zu boot_id=%s previous_boot_id=%s", n, now, then);
		int r = ctrs_after_reboot(ctrs);
		if (r < 0)
			return r;
	}
	char line[BOOT_ID_MAX + 2];
	snprintf(line, sizeof(line), "%s\n", now);
	int r = write_file_atomic(path, line, strlen(line), 0600);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot record the boot id", "path=%s", path);
	return 0;
}

int pods_open(struct pod_table *t, const char *state_dir)
{
	memset(t, 0, sizeof(*t));
	if (asprintf(&t->root, "%s/criod/pods", state_dir) < 0)
		return -ENOMEM;
	int r = mkdir_p(t->root, 0700);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot create pod state directory", "path=%s", t->root);
	DIR *d = opendir(t->root);
	if (!d)
		return log_error_errno(errno, NULL, "cannot read pod state directory", "path=%s", t->root);
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d))) {
		if (!id_is_valid(de->d_name))
			continue;
		struct pod *p = pod_load(t->root, de->d_name);
		if (!p && remove_unrecorded(t->root, de->d_name))
			continue;
		if (!p) {
			p = pod_unreadable(t, de->d_name);
			if (!p) {
				closedir(d);
				return log_error_errno(ENOMEM, NULL, "out of memory");
			}
			log_warn(NULL, "unreadable pod state: the pod will be torn down and removed", "pod=%s",
				 de->d_name);
			p->next = t->unreadable;
			t->unreadable = p;
			continue;
		}
		p->table = t;
		p->next = t->pods;
		t->pods = p;
		n++;
	}
	closedir(d);
	log_info(NULL, "pod state loaded", "pods=%zu path=%s", n, t->root);
	return 0;
}

void pods_close(struct pod_table *t)
{
	while (t->pods || t->unreadable) {
		struct pod **head = t->pods ? &t->pods : &t->unreadable;
		struct pod *p = *head;
		*head = p->next;
		while (p->queue) {
			struct pod_task *k = p->queue;
			p->queue = k->next;
			free(k);
		}
		pod_free(p);
	}
	free(t->root);
	t->root = NULL;
}

struct pod *pods_find_unreadable(struct pod_table *t, const char *id)
{
	for (struct pod *p = t->unreadable; p; p = p->next)
		if (!p->gone && strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

struct pod *pods_find(struct pod_table *t, const char *id)
{
	if (!id || !*id)
		return NULL;
	size_t n = strlen(id);
	struct pod *match = NULL;
	int matches = 0;
	for (struct pod *p = t->pods; p; p = p->next) {
		if (p->gone)
			continue;
		if (strcmp(p->id, id) == 0)
			return p;
		if (n >= 6 && n < 64 && strncmp(p->id, id, n) == 0) {
			match = p;
			matches++;
		}
	}
	return matches == 1 ? match : NULL;
}

static bool str_eq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

struct pod *pods_find_name(struct pod_table *t, const Runtime__V1__PodSandboxMetadata *m)
{
	for (struct pod *p = t->pods; p; p = p->next) {
		const Runtime__V1__PodSandboxMetadata *o = p->config->metadata;
		if (p->gone || p->failed || !o)
			continue;
		if (str_eq(o->name, m->name) && str_eq(o->namespace_, m->namespace_) && str_eq(o->uid, m->uid) &&
		    o->attempt == m->attempt)
			return p;
	}
	return NULL;
}

int pod_new(struct pod_table *t, const Runtime__V1__PodSandboxConfig *config, const char *runtime_handler,
	    bool durable, struct pod **out)
{
	struct pod *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	int r = random_hex(p->id, 32);
	size_t len = protobuf_c_message_get_packed_size(&config->base);
	_cleanup_free_ uint8_t *bytes = malloc(len ? len : 1);
	if (r < 0 || !bytes) {
		pod_free(p);
		return r < 0 ? r : -ENOMEM;
	}
	protobuf_c_message_pack(&config->base, bytes);
	p->state = POD_CREATING;
	p->created_at = now_realtime_ns();
	p->runtime_handler = dup_str(runtime_handler);
	p->netns_path = dup_str("");
	p->ipc_ns = dup_str("");
	p->uts_ns = dup_str("");
	p->pid_ns = dup_str("");
	p->shm = dup_str("");
	p->cgroup = dup_str("");
	if ((r = pod_set_config(p, bytes, len)) < 0 || asprintf(&p->dir, "%s/%s", t->root, p->id) < 0 ||
	    mkdir(p->dir, 0700) < 0 || (r = pod_write(p, durable)) < 0) {
		if (r == 0)
			r = -errno ? -errno : -ENOMEM;
		if (p->dir)
			rmdir(p->dir);
		pod_free(p);
		return r;
	}
	p->busy = true; /* the creator runs first */
	p->table = t;
	p->next = t->pods;
	t->pods = p;
	*out = p;
	return 0;
}

static int write_text(const struct pod *p, const char *name, const char *text)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s", p->dir, name) < 0)
		return -ENOMEM;
	return write_file_boot(path, text, strlen(text), 0644);
}

/* Append to a growing string; false when out of memory. */
static bool append(char **buf, const char *fmt, const char *arg)
{
	char *n;
	if (asprintf(&n, fmt, *buf ? *buf : "", arg) < 0)
		return false;
	free(*buf);
	*buf = n;
	return true;
}

int pod_write_files(struct pod *p, const char *hostname)
{
	int r;
	_cleanup_free_ char *host_line = NULL, *resolv = NULL;
	if (asprintf(&host_line, "%s\n", hostname) < 0)
		return -ENOMEM;
	if ((r = write_text(p, "hostname", host_line)) < 0)
		return r;

	_cleanup_free_ char *hosts = strdup("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	for (size_t i = 0; hosts && i < p->n_ips; i++) {
		_cleanup_free_ char *line = NULL;
		if (asprintf(&line, "%%s%s\t%%s\n", p->ips[i]) < 0 || !append(&hosts, line, hostname))
			return -ENOMEM;
	}
	if (!hosts)
		return -ENOMEM;
	if ((r = write_text(p, "hosts", hosts)) < 0)
		return r;

	const Runtime__V1__DNSConfig *dns = p->config->dns_config;
	if (dns) {
		resolv = strdup("");
		for (size_t i = 0; resolv && i < dns->n_servers; i++)
			if (!append(&resolv, "%snameserver %s\n", dns->servers[i]))
				return -ENOMEM;
		if (dns->n_searches) {
			if (!append(&resolv, "%ssearch%s", ""))
				return -ENOMEM;
			for (size_t i = 0; i < dns->n_searches; i++)
				if (!append(&resolv, "%s %s", dns->searches[i]))
					return -ENOMEM;
			if (!append(&resolv, "%s\n%s", ""))
				return -ENOMEM;
		}
		if (dns->n_options) {
			if (!append(&resolv, "%soptions%s", ""))
				return -ENOMEM;
			for (size_t i = 0; i < dns->n_options; i++)
				if (!append(&resolv, "%s %s", dns->options[i]))
					return -ENOMEM;
			if (!append(&resolv, "%s\n%s", ""))
				return -ENOMEM;
		}
	} else {
		/* No DNS config: the host's, as CRI-O and containerd do. */
		size_t len;
		if (read_file("/etc/resolv.conf", 1 << 20, &resolv, &len) < 0)
			resolv = strdup("");
	}
	if (!resolv)
		return -ENOMEM;
	return write_text(p, "resolv.conf", resolv);
}

void pod_destroy(struct pod_table *t _unused_, struct pod *p)
{
	/* The record first: a crash half-way leaves a directory without one,
	 * which the next start removes (pods_open). */
	_cleanup_free_ char *record = NULL;
	if (asprintf(&record, "%s/pod.pb", p->dir) >= 0)
		(void)unlink(record);
	int r = rmdir_with_files(p->dir);
	if (r < 0)
		log_warn_errno(r, NULL, "cannot remove pod directory", "path=%s", p->dir);
	p->gone = true;
}

/* A destroyed pod leaves the table once its last task is done. */
static void pod_reap(struct pod *p)
{
	struct pod_table *t = p->table;
	for (struct pod **pp = p->unreadable ? &t->unreadable : &t->pods; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	pod_free(p);
}

int pod_enqueue(struct pod *p, pod_task_fn fn, void *arg)
{
	if (!p->busy) {
		p->busy = true;
		fn(p, arg);
		return 0;
	}
	struct pod_task *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->fn = fn;
	k->arg = arg;
	struct pod_task **pp = &p->queue;
	while (*pp)
		pp = &(*pp)->next;
	*pp = k;
	return 0;
}

void pod_task_done(struct pod *p)
{
	struct pod_task *k = p->queue;
	if (!k) {
		p->busy = false;
		if (p->gone)
			pod_reap(p);
		return;
	}
	p->queue = k->next;
	pod_task_fn fn = k->fn;
	void *arg = k->arg;
	free(k);
	fn(p, arg);
}

bool pod_host_network(const struct pod *p)
{
	return pod_ns_mode(p, 'n') == RUNTIME__V1__NAMESPACE_MODE__NODE;
}

int pod_ns_mode(const struct pod *p, char which)
{
	if (!p->config) /* unreadable: what its network was is not known */
		return RUNTIME__V1__NAMESPACE_MODE__POD;
	const Runtime__V1__LinuxPodSandboxConfig *l = p->config->linux;
	const Runtime__V1__NamespaceOption *o =
		l && l->security_context ? l->security_context->namespace_options : NULL;
	if (!o)
		return RUNTIME__V1__NAMESPACE_MODE__POD;
	return which == 'n' ? o->network : which == 'p' ? o->pid : o->ipc;
}

const char *pod_hostname(const struct pod *p)
{
	if (p->config->hostname && *p->config->hostname)
		return p->config->hostname;
	return p->config->metadata && p->config->metadata->name ? p->config->metadata->name : "";
}
