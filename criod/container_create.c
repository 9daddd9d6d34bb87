/* CreateContainer: the chain of calls that makes a container (see
 * container_service.c's opening comment): the CREATING record, imaged's
 * rootfs, the OCI spec (criod/oci_spec.c) with the host's devices, spawnd's
 * check and conmon, and the teardown of every step when one fails. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <json-c/json.h>

#include "api.h"
#include "container_op.h"
#include "cri_validate.h"
#include "events.h"
#include "internal/conmon.pb-c.h"
#include "internal/envelope.pb-c.h"
#include "internal/imaged.pb-c.h"
#include "internal/spawnd.pb-c.h"
#include "log.h"
#include "macro.h"
#include "oci_spec.h"
#include "seccomp_profile.h"
#include "status.h"
#include "util.h"

/* ---------------------------------------------------------------- validation */

static bool validate_create(struct grpc_call *call, const Runtime__V1__CreateContainerRequest *req)
{
	char err[512];
	int st = cri_check_create(req, err, sizeof(err));
	if (st == STATUS_OK)
		return true;
	grpc_call_fail(call, st, "%s", err);
	return false;
}

/* ---------------------------------------------------------------- CreateContainer */

static void create_fail(struct ctr_op *op, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void create_fail(struct ctr_op *op, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
	struct container *ctr = op->ctr;
	log_warn(op->req, "container creation failed", "container=%s name=%s error=\"%s\"", ctr->id, ctr_name(ctr),
		 op->message);
	grpc_call_fail(op->call, status, "%s", op->message);
	op->call = NULL;
	op->create_req = NULL;
	ctr->failed = true; /* kubelet may retry with the same name at once */
	struct pod *p = op->pod;
	op->pod = NULL;
	pod_task_done(p);
	/* Undo whatever was made; the record stays CREATING until that worked. */
	op->status = STATUS_OK;
	op->message[0] = '\0';
	teardown(op, cleanup_done);
}

static void spawnd_create_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_,
			       size_t nfds _unused_, void *ud)
{
	struct ctr_op *op = ud;
	struct container *ctr = op->ctr;
	if (status != STATUS_OK) {
		create_fail(op, status, "spawnd: %s", message);
		return;
	}
	if (grpc_call_cancelled(op->call)) {
		/* Nobody learns this container's id: kubelet creates it again. */
		create_fail(op, STATUS_DEADLINE_EXCEEDED, "the client gave up before the container was created");
		return;
	}
	const Criod__Internal__CreateContainerResponse *r = (const void *)resp;
	char *sock = strdup(r->socket_path ? r->socket_path : ""), *dir = strdup(r->state_dir ? r->state_dir : "");
	if (!sock || !dir) {
		free(sock);
		free(dir);
		create_fail(op, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	free(ctr->socket_path);
	ctr->socket_path = sock;
	free(ctr->state_dir);
	ctr->state_dir = dir;
	ctr->pid = r->pid;
	ctr->state = CTR_CREATED;
	int ret = ctr_save(ctr); /* with the spec's process.user (ctr_write_spec) */
	if (ret < 0) {
		ctr->state = CTR_CREATING;
		create_fail(op, STATUS_INTERNAL, "cannot save container state: %s", strerror(-ret));
		return;
	}
	log_info(op->req, "container created", "container=%s name=%s pod=%s pid=%lld", ctr->id, ctr_name(ctr),
		 ctr->pod_id, (long long)ctr->pid);
	events_send(op->c, ctr, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT, NULL);
	Runtime__V1__CreateContainerResponse out = RUNTIME__V1__CREATE_CONTAINER_RESPONSE__INIT;
	out.container_id = ctr->id;
	struct pod *p = op->pod;
	op->pod = NULL;
	op_finish(op, &out.base);
	pod_task_done(p);
}

struct devlist {
	struct oci_device *v;
	size_t n, cap;
	char **paths; /* owned path strings of host devices */
	size_t n_paths;
};

static void devlist_free(struct devlist *l)
{
	for (size_t i = 0; i < l->n_paths; i++)
		free(l->paths[i]);
	free(l->paths);
	free(l->v);
}

static int devlist_add(struct devlist *l, const struct oci_device *d)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct oci_device *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *d;
	return 0;
}

static bool dev_from_stat(const struct stat *st, struct oci_device *d)
{
	d->type = S_ISCHR(st->st_mode) ? 'c' : S_ISBLK(st->st_mode) ? 'b' : S_ISFIFO(st->st_mode) ? 'p' : 0;
	if (!d->type)
		return false;
	d->major = major(st->st_rdev);
	d->minor = minor(st->st_rdev);
	d->file_mode = st->st_mode & 07777;
	d->uid = st->st_uid;
	d->gid = st->st_gid;
	return true;
}

/* The host's device nodes for a privileged container (as containerd's
 * HostDevices: /dev without pts, shm, fd, mqueue and console). */
static void host_devices(struct devlist *l, const char *dir, int depth)
{
	static const char *const skip[] = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "console"};
	DIR *d = depth < 4 ? opendir(dir) : NULL;
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) && l->n < MAX_HOST_DEVICES) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		bool skipped = false;
		for (size_t i = 0; i < ARRAY_SIZE(skip) && !skipped; i++)
			skipped = depth == 0 && strcmp(de->d_name, skip[i]) == 0;
		if (skipped)
			continue;
		char *path;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
			break;
		struct stat st;
		struct oci_device dev = {0};
		if (lstat(path, &st) < 0) {
			free(path);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			host_devices(l, path, depth + 1);
			free(path);
			continue;
		}
		if (!dev_from_stat(&st, &dev) || dev.type == 'p' || (dev.major == 0 && dev.minor == 0)) {
			free(path);
			continue;
		}
		char **paths = realloc(l->paths, (l->n_paths + 1) * sizeof(*paths));
		if (!paths) {
			free(path);
			break;
		}
		l->paths = paths;
		l->paths[l->n_paths++] = path;
		dev.path = path;
		if (devlist_add(l, &dev) < 0)
			break;
	}
	closedir(d);
}

/* config.devices, resolved with stat() (criod can stat the host's /dev). */
static int resolve_devices(const Runtime__V1__ContainerConfig *cfg, bool privileged, struct devlist *l, char *err,
			   size_t errlen)
{
	for (size_t i = 0; i < cfg->n_devices; i++) {
		const Runtime__V1__Device *d = cfg->devices[i];
		struct oci_device dev = {.path = d && d->container_path ? d->container_path : "", .type = 'c'};
		const char *host = d && d->host_path ? d->host_path : "";
		if (host[0] == '/') { /* anything else the spec builder refuses, naming the field */
			struct stat st;
			if (stat(host, &st) < 0) {
				int r = -errno;
				snprintf(err, errlen, "config.devices[%zu].host_path: cannot stat %s: %s", i, host,
					 strerror(-r));
				return -EINVAL;
			}
			if (!dev_from_stat(&st, &dev)) {
				snprintf(err, errlen, "config.devices[%zu].host_path: %s is not a device node", i, host);
				return -EINVAL;
			}
			dev.path = d->container_path ? d->container_path : "";
		}
		if (devlist_add(l, &dev) < 0)
			return -ENOMEM;
	}
	if (privileged)
		host_devices(l, "/dev", 0);
	return 0;
}

/* Build the OCI spec from the config, the pod and what imaged said. */
static int build_spec(struct ctr_op *op, const Criod__Internal__MountRootfsResponse *m, struct oci_spec_result *res,
		      char *err, size_t errlen)
{
	struct container *ctr = op->ctr;
	const struct pod *p = op->pod;
	const Runtime__V1__ContainerConfig *config = ctr->config;
	const Runtime__V1__LinuxContainerSecurityContext *sc = config->linux ? config->linux->security_context : NULL;
	_cleanup_free_ char *hostname = NULL, *hosts = NULL, *resolv = NULL, *target_ns = NULL;
	struct devlist devs = {0};
	char node[256] = "";
	int r;

	if (asprintf(&hostname, "%s/hostname", p->dir) < 0 || asprintf(&hosts, "%s/hosts", p->dir) < 0 ||
	    asprintf(&resolv, "%s/resolv.conf", p->dir) < 0)
		return -ENOMEM;
	/* Containers go below the pod's cgroup, which spawnd made directly in
	 * cgroupfs with either driver (the systemd driver only names it the
	 * systemd way); spawnd accepts nothing else. */
	struct oci_pod_info pod = {
		.netns_path = p->netns_path,
		.ipc_ns = p->ipc_ns,
		.uts_ns = p->uts_ns,
		.pid_ns = p->pid_ns,
		.shm_path = p->shm,
		.hostname_path = hostname,
		.hosts_path = hosts,
		.resolv_path = resolv,
		.cgroup_parent = p->cgroup,
		.cgroup_v2 = host_cgroup_v2(),
	};
	if (gethostname(node, sizeof(node) - 1) < 0)
		node[0] = '\0';
	struct oci_spec_input in = {
		.container_id = ctr->id,
		.config = config,
		.pod_config = p->config,
		.pod = &pod,
		.image_config_json = m->config_json ? m->config_json : "",
		.rootfs = m->rootfs,
		.etc_passwd = m->etc_passwd && *m->etc_passwd ? m->etc_passwd : NULL,
		.etc_group = m->etc_group && *m->etc_group ? m->etc_group : NULL,
		/* What spawnd could apply to the pause process is what the host
		 * allows; kubelet never asks less than that for a container. */
		.oom_score_adj_min = p->oom_score_adj,
		.seccomp_profile_root = "",
		.apparmor_enabled = host_apparmor(),
		.node_hostname = node,
		.sandbox_id = p->id,
		.host_cap_bounding = host_caps(op->c),
		/* read before the rootfs was mounted (create_open_profile) */
		.localhost_seccomp_json = op->profile,
	};

	const Runtime__V1__NamespaceOption *ns = sc ? sc->namespace_options : NULL;
	if (ns && ns->pid == RUNTIME__V1__NAMESPACE_MODE__TARGET && ns->target_id && *ns->target_id) {
		struct container *t = ctrs_find(&op->c->ctrs, ns->target_id);
		if (!t || t->state != CTR_CREATED || strcmp(t->pod_id, p->id) != 0 || t->pid <= 0) {
			snprintf(err, errlen, SC_FIELD ".namespace_options.target_id: no container \"%.64s\" in this pod",
				 ns->target_id);
			return -EINVAL;
		}
		if (asprintf(&target_ns, "/proc/%lld/ns/pid", (long long)t->pid) < 0)
			return -ENOMEM;
		in.target_pid_ns = target_ns;
	}

	if ((r = resolve_devices(config, sc && sc->privileged, &devs, err, errlen)) < 0) {
		devlist_free(&devs);
		return r;
	}
	in.devices = devs.v;
	in.n_devices = devs.n;
	r = oci_spec_build(&in, res, err, errlen);
	devlist_free(&devs);
	return r;
}

static void mount_done(int status, const char *message, const ProtobufCMessage *resp, int *fds _unused_, size_t nfds _unused_,
		       void *ud)
{
	struct ctr_op *op = ud;
	struct container *ctr = op->ctr;
	if (status != STATUS_OK) {
		create_fail(op, status, "imaged: %s", message);
		return;
	}
	const Criod__Internal__MountRootfsResponse *m = (const void *)resp;
	char *ref = strdup(m->image_id ? m->image_id : "");
	if (!ref) {
		create_fail(op, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	free(ctr->image_ref);
	ctr->image_ref = ref;
	if (!m->rootfs || m->rootfs[0] != '/') {
		create_fail(op, STATUS_INTERNAL, "imaged: no rootfs for container %s", ctr->id);
		return;
	}

	struct oci_spec_result res = {0};
	char err[512] = "";
	int r = build_spec(op, m, &res, err, sizeof(err));
	if (r < 0) {
		create_fail(op, r == -EINVAL ? STATUS_INVALID_ARGUMENT : status_from_errno(r), "%s",
			    *err ? err : strerror(-r));
		return;
	}
	if (res.n_image_volumes)
		log_debug(op->req, "image volumes: imaged created their directories", "container=%s volumes=%zu first=%s", ctr->id,
			  res.n_image_volumes, res.image_volumes[0]);
	char *sig = strdup(res.stop_signal ? res.stop_signal : "");
	if (!sig) {
		oci_spec_result_free(&res);
		create_fail(op, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	free(ctr->stop_signal);
	ctr->stop_signal = sig;
	/* The record stays as ctr_new wrote it (CREATING: a restart undoes
	 * the container by its id alone); the spec becomes durable with the
	 * record that says CREATED. */
	if ((r = ctr_write_spec(ctr, res.json)) < 0) {
		oci_spec_result_free(&res);
		create_fail(op, STATUS_INTERNAL, "cannot save container state: %s", strerror(-r));
		return;
	}

	_cleanup_free_ char *fallback_log = NULL;
	const char *log_path = ctr->log_path;
	if (!*log_path) {
		/* kubelet asked for no log, but conmon needs a file: one in the
		 * container's state directory spawnd makes (root's, so spawnd
		 * accepts it; it goes with the container). */
		if (asprintf(&fallback_log, "%s/spawnd/containers/%s/console.log", op->c->cfg->state_dir, ctr->id) < 0) {
			oci_spec_result_free(&res);
			create_fail(op, STATUS_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
		log_path = fallback_log;
	}
	const struct pod *p = op->pod;
	Criod__Internal__CreateContainerRequest req = CRIOD__INTERNAL__CREATE_CONTAINER_REQUEST__INIT;
	req.container_id = ctr->id;
	req.pod_id = (char *)p->id;
	req.config_json.data = (uint8_t *)res.json;
	req.config_json.len = strlen(res.json);
	req.log_path = (char *)log_path;
	req.tty = ctr->config->tty;
	req.stdin = ctr->config->stdin;
	req.stdin_once = ctr->config->stdin_once;
	req.runtime_handler = p->runtime_handler;
	call_ipc(op, op->c->spawnd, API_SPAWND(SPAWND_CREATE_CONTAINER), &req.base, op_timeout(op, CREATE_TIMEOUT_MS), spawnd_create_done);
	oci_spec_result_free(&res);
}

static void create_mount(struct ctr_op *op)
{
	Criod__Internal__MountRootfsRequest mreq = CRIOD__INTERNAL__MOUNT_ROOTFS_REQUEST__INIT;
	mreq.container_id = op->ctr->id;
	mreq.image = op->ctr->image;
	call_ipc(op, op->c->imaged, API_IMAGED(IMAGED_MOUNT_ROOTFS), &mreq.base, op_timeout(op, op->c->cfg->rpc_timeout_ms), mount_done);
}

/* The field a Localhost profile came from, for messages. */
static const char *profile_field(const Runtime__V1__ContainerConfig *config)
{
	const Runtime__V1__LinuxContainerSecurityContext *sc = config->linux ? config->linux->security_context : NULL;
	return sc && sc->seccomp ? SC_FIELD ".seccomp.localhost_ref" : SC_FIELD ".seccomp_profile_path";
}

/* The profile from the fd spawnd passed: a regular file (so O_NONBLOCK
 * reads never wait; EAGAIN would be an error, not a wait), read with
 * pread from 0 whatever its offset, at most SECCOMP_PROFILE_MAX bytes. */
static int read_profile_fd(int fd, char **out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	if (st.st_size > (off_t)SECCOMP_PROFILE_MAX)
		return -EFBIG;
	size_t cap = (size_t)st.st_size + 1, n = 0;
	_cleanup_free_ char *buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (n == cap) { /* it grew since the fstat */
			if (cap > SECCOMP_PROFILE_MAX)
				return -EFBIG;
			size_t ncap = cap * 2 > SECCOMP_PROFILE_MAX + 1 ? SECCOMP_PROFILE_MAX + 1 : cap * 2;
			char *nb = realloc(buf, ncap + 1);
			if (!nb)
				return -ENOMEM;
			buf = nb;
			cap = ncap;
		}
		ssize_t k = pread(fd, buf + n, cap - n, (off_t)n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > SECCOMP_PROFILE_MAX)
		return -EFBIG;
	if (memchr(buf, '\0', n))
		return -EILSEQ;
	buf[n] = '\0';
	*out = TAKE_PTR(buf);
	return 0;
}

static void profile_done(int status, const char *message, const ProtobufCMessage *resp _unused_, int *fds, size_t nfds,
			 void *ud)
{
	struct ctr_op *op = ud;
	const char *field = profile_field(op->ctr->config);
	_cleanup_close_ int fd = status == STATUS_OK && nfds == 1 ? fds[0] : -1;
	for (size_t i = 0; fd < 0 && i < nfds; i++)
		close(fds[i]);
	if (status != STATUS_OK) {
		create_fail(op, status, "%s: %s", field, message);
		return;
	}
	if (fd < 0) {
		create_fail(op, STATUS_INTERNAL, "%s: spawnd answered with %zu file descriptors instead of the profile's",
			    field, nfds);
		return;
	}
	int r = read_profile_fd(fd, &op->profile);
	if (r < 0) {
		create_fail(op, r == -EFBIG || r == -EILSEQ ? STATUS_INVALID_ARGUMENT : STATUS_INTERNAL,
			    "%s: cannot read seccomp profile %s: %s", field, op->profile_path,
			    r == -EFBIG	   ? "larger than 4 MiB"
			    : r == -EILSEQ ? "it contains a NUL byte"
			    : r == -EBADFD ? "spawnd passed something other than a regular file"
					   : strerror(-r));
		return;
	}
	log_debug(op->req, "seccomp profile read", "container=%s path=%s bytes=%zu", op->ctr->id, op->profile_path,
		  strlen(op->profile));
	create_mount(op);
}

/* A Localhost seccomp profile is a host file, often in a root-only
 * directory kubelet made: spawnd opens it (beneath [policy]
 * seccomp_profile_roots) and passes the fd; criod reads it from there.
 * Before the rootfs is mounted, so a refused profile costs nothing. */
static void create_open_profile(struct ctr_op *op)
{
	struct oci_spec_input in = {.container_id = op->ctr->id, .config = op->ctr->config, .seccomp_profile_root = ""};
	char err[512] = "";
	const char *path = NULL;
	if (oci_spec_seccomp_localhost_path(&in, &path, err, sizeof(err)) < 0) {
		create_fail(op, STATUS_INVALID_ARGUMENT, "%s", err);
		return;
	}
	if (!path) {
		create_mount(op);
		return;
	}
	op->profile_path = path;
	Criod__Internal__OpenSeccompProfileRequest req = CRIOD__INTERNAL__OPEN_SECCOMP_PROFILE_REQUEST__INIT;
	req.path.data = (uint8_t *)path;
	req.path.len = strlen(path);
	call_ipc(op, op->c->spawnd, API_SPAWND(SPAWND_OPEN_SECCOMP_PROFILE), &req.base, op_timeout(op, op->c->cfg->rpc_timeout_ms),
		 profile_done);
}

/* spawnd's Ping reported cap_bounding 0, which its contract gives only
 * the other daemons: no bounding set to build a privileged container's
 * "every capability" from. Known for that spawnd, so no create pings
 * again until another spawnd answers. */
static void caps_none(struct ctr_op *op, int64_t spawnd_pid)
{
	create_fail(op, STATUS_INTERNAL,
		    "spawnd (pid %lld) reports no capability bounding set of its launcher (Ping cap_bounding 0)",
		    (long long)spawnd_pid);
}

static void caps_ping_done(int status, const char *message, const ProtobufCMessage *resp, int *fds, size_t nfds,
			   void *ud)
{
	struct ctr_op *op = ud;
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (status != STATUS_OK) {
		create_fail(op, status, "spawnd: %s", message);
		return;
	}
	const Criod__Internal__PingResponse *r = (const void *)resp;
	host_caps_learn((pid_t)r->pid, r->cap_bounding);
	log_debug(op->req, "spawnd's launcher bounding set", "spawnd_pid=%lld cap_bounding=%016llx",
		  (long long)r->pid, (unsigned long long)r->cap_bounding);
	if (!r->cap_bounding) {
		caps_none(op, r->pid);
		return;
	}
	create_open_profile(op);
}

/* What "every capability" is (host_caps) comes from the connected
 * spawnd's Ping: asked once per spawnd, before the spec is built. */
static void create_learn_caps(struct ctr_op *op)
{
	if (host_caps_known(op->c)) {
		if (!host_caps(op->c)) {
			caps_none(op, ipc_client_peer_pid(op->c->spawnd));
			return;
		}
		create_open_profile(op);
		return;
	}
	Criod__Internal__PingRequest req = CRIOD__INTERNAL__PING_REQUEST__INIT;
	call_ipc(op, op->c->spawnd, API_SPAWND(SPAWND_PING), &req.base, op_timeout(op, op->c->cfg->rpc_timeout_ms),
		 caps_ping_done);
}

static void create_task(struct pod *p, void *arg)
{
	struct ctr_op *op = arg;
	struct criod *c = op->c;
	const Runtime__V1__CreateContainerRequest *req = op->create_req;
	const Runtime__V1__ContainerConfig *cfg = req->config;
	if (p->gone || p->state != POD_READY) {
		grpc_call_fail(op->call, p->gone ? STATUS_NOT_FOUND : STATUS_FAILED_PRECONDITION,
			       "pod sandbox %s is %s", req->pod_sandbox_id, p->gone ? "not found" : "not ready");
		pod_task_done(p);
		op_free(op);
		return;
	}
	struct container *other = ctrs_find_name(&c->ctrs, p->id, cfg->metadata);
	if (other) {
		grpc_call_fail(op->call, STATUS_ALREADY_EXISTS,
			       "container name %s_%s_%u is already reserved by container %s", cfg->metadata->name, p->id,
			       cfg->metadata->attempt, other->id);
		pod_task_done(p);
		op_free(op);
		return;
	}
	/* The log file: the pod's log_directory joined with config.log_path. */
	const char *dir = p->config->log_directory ? p->config->log_directory : "";
	_cleanup_free_ char *log_path = NULL;
	if (*dir && cfg->log_path && *cfg->log_path) {
		if (dir[0] != '/') {
			grpc_call_fail(op->call, STATUS_INVALID_ARGUMENT,
				       "the pod's log_directory \"%s\" is not an absolute path", dir);
			pod_task_done(p);
			op_free(op);
			return;
		}
		size_t n = strlen(dir);
		if (asprintf(&log_path, "%s%s%s", dir, dir[n - 1] == '/' ? "" : "/", cfg->log_path) < 0)
			log_path = NULL;
	} else {
		log_path = strdup("");
	}
	struct container *ctr = NULL;
	int r = log_path ? ctr_new(&c->ctrs, p->id, cfg, log_path, &ctr) : -ENOMEM;
	if (r < 0) {
		grpc_call_fail(op->call, status_from_errno(r), "cannot record the container: %s", strerror(-r));
		pod_task_done(p);
		op_free(op);
		return;
	}
	op->pod = p;
	op->ctr = ctr; /* ctr_new left it busy for us */
	log_info(op->req, "creating container", "container=%s name=%s attempt=%u pod=%s image=%s", ctr->id,
		 cfg->metadata->name, cfg->metadata->attempt, p->id, ctr->image);
	create_learn_caps(op);
}

void create_container(struct grpc_call *call, const ProtobufCMessage *msg, void *ud)
{
	struct criod *c = ud;
	const Runtime__V1__CreateContainerRequest *req = (const void *)msg;
	if (!validate_create(call, req))
		return;
	struct pod *p = pods_find(&c->pods, req->pod_sandbox_id);
	if (!p || p->state == POD_CREATING) {
		grpc_call_fail(call, STATUS_NOT_FOUND, "pod sandbox %s not found", req->pod_sandbox_id);
		return;
	}
	struct ctr_op *op = op_new(c, call, NULL);
	if (!op)
		return;
	op->create_req = req; /* the call owns it until it is answered */
	if (pod_enqueue(p, create_task, op) < 0) {
		grpc_call_fail(call, STATUS_RESOURCE_EXHAUSTED, "out of memory");
		op_free(op);
	}
}

