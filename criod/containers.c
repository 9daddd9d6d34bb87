/* criod's container table and its persistence; see containers.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "containers.h"
#include "internal/conmon.pb-c.h"
#include "internal/state.pb-c.h"
#include "ipc.h"
#include "log.h"
#include "macro.h"
#include "util.h"

#define MAX_RECORD (20u << 20)
#define MAX_SPEC (20u << 20)
#define MAX_STATE_FILE (64u << 10)
#define MAX_GIDS 65536
#define CONMON_STATE_FILE "state.pb"
#define CONMON_PID_FILE "conmon.pid"
#define SPEC_FILE "config.json"
#define RECORD_FILE "ctr.pb"
#define EXITED_FILE "exited"
#define EXITED_REBOOT "reboot" /* the exited file's fourth word: ended by a host restart */
#define REMOVING_FILE "removing"

static char *dup_str(const char *s) { return strdup(s ? s : ""); }

static void ctr_free(struct container *c)
{
	if (!c)
		return;
	ipc_client_free(c->conmon);
	if (c->conmon_pidfd >= 0)
		close(c->conmon_pidfd);
	if (c->init_ev) {
		int fd = event_get_fd(c->init_ev);
		free(event_get_callback_arg(c->init_ev));
		event_free(c->init_ev);
		close(fd);
	}
	while (c->queue) {
		struct ctr_task *k = c->queue;
		c->queue = k->next;
		free(k);
	}
	free(c->config_bytes);
	if (c->config)
		protobuf_c_message_free_unpacked(&c->config->base, NULL);
	free(c->image_ref);
	free(c->image);
	free(c->log_path);
	free(c->socket_path);
	free(c->state_dir);
	free(c->stop_signal);
	free(c->resources_json);
	free(c->dir);
	free(c->gids);
	free(c);
}

int ctr_set_config(struct container *c, const uint8_t *bytes, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, bytes, len);
	Runtime__V1__ContainerConfig *cfg = runtime__v1__container_config__unpack(NULL, len, copy);
	if (!cfg) {
		free(copy);
		return -EINVAL;
	}
	free(c->config_bytes);
	if (c->config)
		protobuf_c_message_free_unpacked(&c->config->base, NULL);
	c->config_bytes = copy;
	c->config_len = len;
	c->config = cfg;
	return 0;
}

int ctr_save(struct container *c)
{
	Criod__Internal__ContainerRecord r = CRIOD__INTERNAL__CONTAINER_RECORD__INIT;
	r.id = c->id;
	r.pod_id = c->pod_id;
	r.config.data = c->config_bytes;
	r.config.len = c->config_len;
	r.state = (Criod__Internal__ContainerRecord__State)c->state;
	r.created_at = c->created_at;
	r.image_ref = c->image_ref;
	r.image = c->image;
	r.log_path = c->log_path;
	r.socket_path = c->socket_path;
	r.conmon_state_dir = c->state_dir;
	r.pid = c->pid;
	r.stop_signal = c->stop_signal;
	r.resources_json = c->resources_json;
	r.user_known = c->user_known;
	r.uid = c->uid;
	r.gid = c->gid;
	r.gids = c->gids;
	r.n_gids = c->n_gids;
	size_t n = criod__internal__container_record__get_packed_size(&r);
	_cleanup_free_ uint8_t *buf = malloc(n ? n : 1);
	_cleanup_free_ char *path = NULL;
	if (!buf || asprintf(&path, "%s/" RECORD_FILE, c->dir) < 0)
		return -ENOMEM;
	criod__internal__container_record__pack(&r, buf);
	int ret = write_file_atomic(path, buf, n, 0600);
	if (ret < 0)
		return log_error_errno(ret, NULL, "cannot save container state", "container=%s", c->id);
	return 0;
}

/* process.user of a config.json. */
static int spec_user(struct container *c, const char *json)
{
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		return -ENOMEM;
	json_object *doc = json_tokener_parse_ex(tok, json, (int)strlen(json));
	json_tokener_free(tok);
	if (!doc)
		return -EINVAL;
	json_object *process, *user, *v;
	int r = -EINVAL;
	if (json_object_object_get_ex(doc, "process", &process) && json_object_object_get_ex(process, "user", &user)) {
		free(c->gids);
		c->gids = NULL;
		c->n_gids = 0;
		c->uid = json_object_object_get_ex(user, "uid", &v) ? (uint32_t)json_object_get_int64(v) : 0;
		c->gid = json_object_object_get_ex(user, "gid", &v) ? (uint32_t)json_object_get_int64(v) : 0;
		if (json_object_object_get_ex(user, "additionalGids", &v) && json_object_is_type(v, json_type_array)) {
			size_t n = json_object_array_length(v);
			if (n > MAX_GIDS)
				n = MAX_GIDS;
			c->gids = calloc(n ? n : 1, sizeof(*c->gids));
			if (!c->gids) {
				json_object_put(doc);
				return -ENOMEM;
			}
			for (size_t i = 0; i < n; i++)
				c->gids[c->n_gids++] = json_object_get_int64(json_object_array_get_idx(v, i));
		}
		c->user_known = true;
		r = 0;
	}
	json_object_put(doc);
	return r;
}

char *ctr_spec_path(const struct container *c)
{
	char *path;
	return asprintf(&path, "%s/" SPEC_FILE, c->dir) < 0 ? NULL : path;
}

int ctr_write_spec(struct container *c, const char *json)
{
	_cleanup_free_ char *path = ctr_spec_path(c);
	if (!path)
		return -ENOMEM;
	int r = write_file_boot(path, json, strlen(json), 0600);
	if (r < 0)
		return r;
	(void)spec_user(c, json);
	return 0;
}

static struct container *ctr_load(const char *dir, const char *id)
{
	_cleanup_free_ char *path = NULL, *buf = NULL, *spec = NULL;
	size_t len;
	if (asprintf(&path, "%s/%s/" RECORD_FILE, dir, id) < 0 || read_file(path, MAX_RECORD, &buf, &len) < 0)
		return NULL;
	Criod__Internal__ContainerRecord *r = criod__internal__container_record__unpack(NULL, len, (uint8_t *)buf);
	if (!r)
		return NULL;
	struct container *c = calloc(1, sizeof(*c));
	if (c)
		c->conmon_pidfd = -1;
	bool ok = c && strcmp(r->id, id) == 0 && id_is_valid(r->pod_id);
	if (ok) {
		snprintf(c->id, sizeof(c->id), "%s", r->id);
		snprintf(c->pod_id, sizeof(c->pod_id), "%s", r->pod_id);
		c->state = r->state == CRIOD__INTERNAL__CONTAINER_RECORD__STATE__CREATED ? CTR_CREATED : CTR_CREATING;
		c->created_at = r->created_at;
		c->pid = r->pid;
		c->image_ref = dup_str(r->image_ref);
		c->image = dup_str(r->image);
		c->log_path = dup_str(r->log_path);
		c->socket_path = dup_str(r->socket_path);
		c->state_dir = dup_str(r->conmon_state_dir);
		c->stop_signal = dup_str(r->stop_signal);
		c->resources_json = dup_str(r->resources_json);
		if (r->user_known && r->n_gids <= MAX_GIDS && (c->gids = calloc(r->n_gids ? r->n_gids : 1, sizeof(*c->gids)))) {
			c->user_known = true;
			c->uid = r->uid;
			c->gid = r->gid;
			memcpy(c->gids, r->gids, r->n_gids * sizeof(*c->gids));
			c->n_gids = r->n_gids;
		}
		ok = c->image_ref && c->image && c->log_path && c->socket_path && c->state_dir && c->stop_signal &&
		     c->resources_json && asprintf(&c->dir, "%s/%s", dir, id) >= 0 &&
		     ctr_set_config(c, r->config.data, r->config.len) == 0;
	}
	criod__internal__container_record__free_unpacked(r, NULL);
	if (!ok) {
		ctr_free(c);
		return NULL;
	}
	free(path);
	path = c->user_known ? NULL : ctr_spec_path(c); /* a record older than its user fields */
	if (path && read_file(path, MAX_SPEC, &spec, &len) == 0)
		(void)spec_user(c, spec);
	free(path);
	free(spec);
	spec = NULL;
	long long at, started = 0;
	int code;
	char why[16] = "";
	if (asprintf(&path, "%s/" EXITED_FILE, c->dir) >= 0 && read_file(path, 256, &spec, &len) == 0 &&
	    sscanf(spec, "%lld %d %lld %15s", &at, &code, &started, why) >= 2) {
		c->forced_exit = true;
		c->forced_finished_at = at;
		c->forced_exit_code = code;
		c->forced_started_at = started;
		c->forced_by_reboot = strcmp(why, EXITED_REBOOT) == 0;
	}
	free(path);
	free(spec);
	path = NULL;
	spec = NULL;
	long long finished;
	if (asprintf(&path, "%s/" REMOVING_FILE, c->dir) >= 0 && read_file(path, 256, &spec, &len) == 0 &&
	    sscanf(spec, "%lld %d %lld", &finished, &code, &started) == 3) {
		c->removing = true;
		c->removing_finished_at = finished;
		c->removing_exit_code = code;
		c->removing_started_at = started;
	}
	return c;
}

/* A directory without its record is what a crash in ctr_new (before the
 * first save) or ctr_destroy (after the record went) leaves: remove it. */
static bool remove_unrecorded(const char *root, const char *id)
{
	_cleanup_free_ char *dir = NULL, *record = NULL;
	if (asprintf(&dir, "%s/%s", root, id) < 0 || asprintf(&record, "%s/" RECORD_FILE, dir) < 0)
		return false;
	struct stat st;
	if (lstat(record, &st) == 0 || errno != ENOENT)
		return false;
	if (rmdir_with_files(dir) < 0) {
		log_warn_errno(errno, NULL, "cannot remove a container directory without a record", "path=%s", dir);
		return false;
	}
	log_info(NULL, "removed a container directory without a record", "container=%s", id);
	return true;
}

static void reap_cb(evutil_socket_t fd _unused_, short what _unused_, void *arg)
{
	struct container_table *t = arg;
	struct container **lists[] = {&t->ctrs, &t->unreadable};
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		for (struct container **pp = lists[i]; *pp;) {
			struct container *c = *pp;
			if (c->gone && !c->busy && !c->queue) {
				*pp = c->next;
				ctr_free(c);
			} else {
				pp = &c->next;
			}
		}
}

/* Records are written atomically, so one that cannot be read is a disk
 * fault or a hand edit. Ignored, its conmon, bundle and rootfs would stay
 * where no call reaches them: such a container is kept aside, knowing only
 * its id and directory, and removed by its id (containers_recover) as an
 * unfinished creation is: conmon at the socket spawnd gives it, spawnd,
 * imaged. */
static struct container *ctr_unreadable(struct container_table *t, const char *id)
{
	struct container *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->conmon_pidfd = -1;
	snprintf(c->id, sizeof(c->id), "%.64s", id); /* id_is_valid: 64 hex digits */
	c->state = CTR_CREATING; /* what teardown undoes without knowing more */
	c->unreadable = true;
	c->table = t;
	c->image_ref = strdup("");
	c->image = strdup("");
	c->log_path = strdup("");
	c->socket_path = strdup("");
	c->state_dir = strdup("");
	c->stop_signal = strdup("");
	c->resources_json = strdup("");
	if (!c->image_ref || !c->image || !c->log_path || !c->socket_path || !c->state_dir || !c->stop_signal ||
	    !c->resources_json || asprintf(&c->dir, "%s/%s", t->root, id) < 0) {
		ctr_free(c);
		return NULL;
	}
	return c;
}

int ctrs_open(struct container_table *t, struct event_base *base, const char *state_dir)
{
	memset(t, 0, sizeof(*t));
	t->base = base;
	if (asprintf(&t->root, "%s/criod/containers", state_dir) < 0)
		return -ENOMEM;
	t->reap_ev = evtimer_new(base, reap_cb, t);
	if (!t->reap_ev)
		return -ENOMEM;
	int r = mkdir_p(t->root, 0700);
	if (r < 0)
		return log_error_errno(r, NULL, "cannot create container state directory", "path=%s", t->root);
	DIR *d = opendir(t->root);
	if (!d)
		return log_error_errno(errno, NULL, "cannot read container state directory", "path=%s", t->root);
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d))) {
		if (!id_is_valid(de->d_name))
			continue;
		struct container *c = ctr_load(t->root, de->d_name);
		if (!c && remove_unrecorded(t->root, de->d_name))
			continue;
		if (!c) {
			c = ctr_unreadable(t, de->d_name);
			if (!c) {
				closedir(d);
				return log_error_errno(ENOMEM, NULL, "out of memory");
			}
			log_warn(NULL, "unreadable container state: the container will be torn down and removed",
				 "container=%s", de->d_name);
			c->next = t->unreadable;
			t->unreadable = c;
			continue;
		}
		c->table = t;
		c->next = t->ctrs;
		t->ctrs = c;
		n++;
	}
	closedir(d);
	log_info(NULL, "container state loaded", "containers=%zu path=%s", n, t->root);
	return 0;
}

void ctrs_close(struct container_table *t)
{
	while (t->ctrs || t->unreadable) {
		struct container **head = t->ctrs ? &t->ctrs : &t->unreadable;
		struct container *c = *head;
		*head = c->next;
		ctr_free(c);
	}
	if (t->reap_ev)
		event_free(t->reap_ev);
	t->reap_ev = NULL;
	free(t->root);
	t->root = NULL;
}

struct container *ctrs_find_unreadable(struct container_table *t, const char *id)
{
	for (struct container *c = t->unreadable; c; c = c->next)
		if (!c->gone && strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

struct container *ctrs_find(struct container_table *t, const char *id)
{
	if (!id || !*id)
		return NULL;
	size_t n = strlen(id);
	struct container *match = NULL;
	int matches = 0;
	for (struct container *c = t->ctrs; c; c = c->next) {
		if (c->gone)
			continue;
		if (strcmp(c->id, id) == 0)
			return c;
		if (n < 64 && strncmp(c->id, id, n) == 0) {
			match = c;
			matches++;
		}
	}
	return matches == 1 ? match : NULL;
}

static bool str_eq(const char *a, const char *b) { return strcmp(a ? a : "", b ? b : "") == 0; }

struct container *ctrs_find_name(struct container_table *t, const char *pod_id, const Runtime__V1__ContainerMetadata *m)
{
	for (struct container *c = t->ctrs; c; c = c->next) {
		const Runtime__V1__ContainerMetadata *o = c->config->metadata;
		if (c->gone || c->failed || !o || strcmp(c->pod_id, pod_id) != 0)
			continue;
		if (str_eq(o->name, m->name) && o->attempt == m->attempt)
			return c;
	}
	return NULL;
}

int ctr_new(struct container_table *t, const char *pod_id, const Runtime__V1__ContainerConfig *config,
	    const char *log_path, struct container **out)
{
	struct container *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->conmon_pidfd = -1;
	int r = random_hex(c->id, 32);
	size_t len = protobuf_c_message_get_packed_size(&config->base);
	_cleanup_free_ uint8_t *bytes = malloc(len ? len : 1);
	if (r < 0 || !bytes) {
		ctr_free(c);
		return r < 0 ? r : -ENOMEM;
	}
	protobuf_c_message_pack(&config->base, bytes);
	snprintf(c->pod_id, sizeof(c->pod_id), "%s", pod_id);
	c->state = CTR_CREATING;
	c->created_at = now_realtime_ns();
	c->image = dup_str(config->image ? config->image->image : "");
	c->image_ref = dup_str("");
	c->log_path = dup_str(log_path);
	c->socket_path = dup_str("");
	c->state_dir = dup_str("");
	c->stop_signal = dup_str("");
	c->resources_json = dup_str("");
	if (!c->image || !c->image_ref || !c->log_path || !c->socket_path || !c->state_dir || !c->stop_signal ||
	    !c->resources_json) {
		ctr_free(c);
		return -ENOMEM;
	}
	if ((r = ctr_set_config(c, bytes, len)) < 0 || asprintf(&c->dir, "%s/%s", t->root, c->id) < 0 ||
	    mkdir(c->dir, 0700) < 0 || (r = ctr_save(c)) < 0) {
		if (r == 0)
			r = errno ? -errno : -ENOMEM;
		if (c->dir)
			rmdir(c->dir);
		ctr_free(c);
		return r;
	}
	c->busy = true; /* the creator runs first */
	c->table = t;
	c->next = t->ctrs;
	t->ctrs = c;
	*out = c;
	return 0;
}

static int mark_exited(struct container *c, int32_t exit_code, int64_t started_at, bool by_reboot)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	int64_t at = now_realtime_ns();
	if (asprintf(&path, "%s/" EXITED_FILE, c->dir) < 0 ||
	    asprintf(&text, "%lld %d %lld%s\n", (long long)at, exit_code, (long long)started_at,
		     by_reboot ? " " EXITED_REBOOT : "") < 0)
		return -ENOMEM;
	int r = write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		return r;
	c->forced_exit = true;
	c->forced_finished_at = at;
	c->forced_exit_code = exit_code;
	c->forced_started_at = started_at;
	c->forced_by_reboot = by_reboot;
	return 0;
}

int ctr_mark_exited(struct container *c, int32_t exit_code, int64_t started_at)
{
	return mark_exited(c, exit_code, started_at, false);
}

int ctrs_after_reboot(struct container_table *t)
{
	size_t n = 0;
	for (struct container *c = t->ctrs; c; c = c->next) {
		/* CREATING ones are undone at start; a forced exit or a removal
		 * under way already says how the container ended. */
		if (c->state != CTR_CREATED || c->forced_exit || c->removing)
			continue;
		struct ctr_status st;
		ctr_disk_status(c, &st);
		/* What state.pb itself says (st_cache), not what a dead monitor
		 * and a pid of the old boot let ctr_disk_status derive. */
		if (c->st_cached && c->st_cache.state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED)
			continue; /* conmon recorded its end (state.pb EXITED is durable) */
		int r = mark_exited(c, 255, c->st_cached ? c->st_cache.started_at : 0, true);
		if (r < 0)
			return log_error_errno(r, NULL, "cannot record a container the host restart ended",
					       "container=%s", c->id);
		n++;
	}
	log_info(NULL, "the host restarted since the containers were made: created and running ones are now exited",
		 "containers=%zu", n);
	return 0;
}

int ctr_mark_removing(struct container *c, int32_t exit_code, int64_t started_at, int64_t finished_at)
{
	if (c->removing)
		return 0;
	_cleanup_free_ char *path = NULL, *text = NULL;
	if (asprintf(&path, "%s/" REMOVING_FILE, c->dir) < 0 ||
	    asprintf(&text, "%lld %d %lld\n", (long long)finished_at, exit_code, (long long)started_at) < 0)
		return -ENOMEM;
	int r = write_file_atomic(path, text, strlen(text), 0600);
	if (r < 0)
		return r;
	c->removing = true;
	c->removing_finished_at = finished_at;
	c->removing_exit_code = exit_code;
	c->removing_started_at = started_at;
	return 0;
}

void ctr_destroy(struct container *c)
{
	/* The record first: a crash half-way leaves a directory without one,
	 * which the next start removes (ctrs_open). */
	_cleanup_free_ char *record = NULL;
	if (asprintf(&record, "%s/" RECORD_FILE, c->dir) >= 0)
		(void)unlink(record);
	int r = rmdir_with_files(c->dir);
	if (r < 0)
		log_warn_errno(r, NULL, "cannot remove container directory", "path=%s", c->dir);
	c->gone = true;
}

static void schedule_reap(struct container_table *t)
{
	struct timeval zero = {0, 0};
	if (t->reap_ev)
		evtimer_add(t->reap_ev, &zero);
}

int ctr_enqueue(struct container *c, ctr_task_fn fn, void *arg)
{
	if (!c->busy) {
		c->busy = true;
		fn(c, arg);
		return 0;
	}
	struct ctr_task *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->fn = fn;
	k->arg = arg;
	struct ctr_task **pp = &c->queue;
	while (*pp)
		pp = &(*pp)->next;
	*pp = k;
	return 0;
}

void ctr_task_done(struct container *c)
{
	struct ctr_task *k = c->queue;
	if (!k) {
		c->busy = false;
		if (c->gone)
			schedule_reap(c->table);
		return;
	}
	c->queue = k->next;
	ctr_task_fn fn = k->fn;
	void *arg = k->arg;
	free(k);
	fn(c, arg);
}

struct ipc_client *ctr_conmon(struct container *c)
{
	if (c->conmon)
		return c->conmon;
	if (!c->socket_path || !*c->socket_path)
		return NULL;
	char name[32];
	snprintf(name, sizeof(name), "conmon-%.12s", c->id);
	c->conmon = ipc_client_new(c->table->base, name, c->socket_path);
	return c->conmon;
}

/* Whether pid is a live process (not a zombie) whose command line, when
 * needle is given and /proc tells, contains needle (a reused pid does not). */
static bool pid_alive(int64_t pid, const char *needle)
{
	if (pid <= 0 || pid > INT32_MAX)
		return false;
	/* Root's processes: EPERM says it exists. */
	if (kill((pid_t)pid, 0) < 0 && errno != EPERM)
		return false;
	char path[64];
	_cleanup_free_ char *buf = NULL;
	size_t len;
	snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	if (read_file(path, 4096, &buf, &len) == 0) {
		const char *p = strrchr(buf, ')');
		if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
			return false;
	}
	if (!needle)
		return true;
	free(buf);
	buf = NULL;
	snprintf(path, sizeof(path), "/proc/%lld/cmdline", (long long)pid);
	if (read_file(path, 64 << 10, &buf, &len) < 0 || len == 0)
		return true; /* cannot tell */
	for (size_t i = 0; i + 1 < len; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	return strstr(buf, needle) != NULL;
}

bool ctr_init_alive(const struct container *c, int64_t pid)
{
	return pid_alive(pid > 0 ? pid : c->pid, NULL);
}

bool ctr_conmon_alive(struct container *c)
{
	if (c->conmon_pid == 0) {
		_cleanup_free_ char *path = NULL, *buf = NULL;
		size_t len;
		if (asprintf(&path, "%s/" CONMON_PID_FILE, c->state_dir) >= 0 && read_file(path, 64, &buf, &len) == 0) {
			char *end;
			long v = strtol(buf, &end, 10);
			if (end != buf && v > 0 && v <= INT32_MAX)
				c->conmon_pid = (pid_t)v; /* else read again next time */
		}
	}
	if (c->conmon_pid <= 0)
		return true; /* cannot tell */
	if (c->conmon_gone)
		return false;
	if (c->conmon_pidfd >= 0) {
		struct pollfd p = {.fd = c->conmon_pidfd, .events = POLLIN};
		if (poll(&p, 1, 0) == 0)
			return true;
		close(c->conmon_pidfd);
		c->conmon_pidfd = -1;
		c->conmon_gone = true;
		return false;
	}
	/* The pidfd first, then the check that it is this container's conmon:
	 * the pidfd then names that process whatever happens to the number. */
	int fd = pidfd_open_pid(c->conmon_pid);
	if (!pid_alive(c->conmon_pid, c->id)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	if (fd >= 0)
		c->conmon_pidfd = fd; /* else (no fds left) /proc next time too */
	return true;
}

void ctr_status_from_state(const Criod__Internal__ContainerStateResponse *s, struct ctr_status *out)
{
	memset(out, 0, sizeof(*out));
	switch (s->state) {
	case CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__STATE__CREATED:
		out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
		break;
	case CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__STATE__RUNNING:
		out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
		break;
	case CRIOD__INTERNAL__CONTAINER_STATE_RESPONSE__STATE__EXITED:
		out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
		break;
	default:
		out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
		break;
	}
	out->pid = s->pid;
	out->created_at = s->created_at;
	out->started_at = s->started_at;
	out->finished_at = s->finished_at;
	out->exit_code = s->exit_code;
	out->oom_killed = s->oom_killed;
}

void ctr_disk_status(struct container *c, struct ctr_status *out)
{
	memset(out, 0, sizeof(*out));
	if (c->forced_exit) {
		/* Its runtime state (and conmon's files) went when it was killed. */
		out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
		out->pid = c->pid;
		out->finished_at = c->forced_finished_at;
		out->exit_code = c->forced_exit_code;
		out->started_at = c->forced_started_at;
		out->created_at = c->created_at;
		if (c->forced_by_reboot) {
			out->reason = "Unknown";
			out->message = "the host restarted while the container existed; its exit status is unknown";
		} else
			out->message = "the container's monitor had died; it was killed when stopped";
		return;
	}
	out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
	if (!*c->state_dir) {
		out->message = "the container has no monitor";
		return;
	}
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/" CONMON_STATE_FILE, c->state_dir) < 0) {
		out->message = "out of memory";
		return;
	}
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		/* spawnd removes a monitor's state directory last, after the
		 * runtime's state: without it the container runs no more. */
		struct stat dst;
		if (c->removing || (stat(c->state_dir, &dst) < 0 && errno == ENOENT)) {
			out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
			out->pid = c->pid;
			out->created_at = c->created_at;
			if (c->removing) {
				out->exit_code = c->removing_exit_code;
				out->started_at = c->removing_started_at;
				out->finished_at = c->removing_finished_at;
			} else {
				out->exit_code = 255;
				out->reason = "Unknown";
			}
			out->message = "the container is being removed; its monitor is gone";
			return;
		}
		out->message = "the container monitor's state file cannot be read";
		return;
	}
	if (!(c->st_cached && st.st_ino == c->st_ino && st.st_size == c->st_size &&
	      st.st_mtim.tv_sec == c->st_mtim.tv_sec && st.st_mtim.tv_nsec == c->st_mtim.tv_nsec)) {
		_cleanup_free_ char *buf = NULL;
		size_t len;
		c->st_cached = false;
		if (read_file(path, MAX_STATE_FILE, &buf, &len) < 0) {
			out->message = "the container monitor's state file cannot be read";
			return;
		}
		Criod__Internal__ContainerStateResponse *s =
			criod__internal__container_state_response__unpack(NULL, len, (uint8_t *)buf);
		if (!s) {
			out->message = "the container monitor's state file does not decode";
			return;
		}
		ctr_status_from_state(s, &c->st_cache);
		criod__internal__container_state_response__free_unpacked(s, NULL);
		c->st_cached = true;
		c->st_ino = st.st_ino;
		c->st_size = st.st_size;
		c->st_mtim = st.st_mtim;
	}
	*out = c->st_cache;
	if (out->state == RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED || ctr_conmon_alive(c))
		return;
	/* conmon died before the container ended: nobody recorded an exit. */
	if (!ctr_init_alive(c, out->pid)) {
		out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
		out->exit_code = 255;
		out->reason = "Unknown";
		out->message = "the container's monitor died; its exit status is unknown";
	} else {
		out->state = RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
		out->message = "the container's monitor died while the container runs";
	}
}

const char *ctr_name(const struct container *c)
{
	return c->config && c->config->metadata && c->config->metadata->name ? c->config->metadata->name : "";
}
