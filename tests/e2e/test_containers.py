"""Containers end to end: CreateContainer, StartContainer, StopContainer,
RemoveContainer, ContainerStatus, ListContainers, UpdateContainerResources,
ReopenContainerLog and ExecSync through criod's socket, with imaged
mounting the rootfs, spawnd starting one conmon per container and conmon
running Debian's runc for real. Every assertion about the container is
observed from inside it (ExecSync, /proc/1/status, mountinfo), from its CRI
log file, or from the host (runc state, cgroup files, /proc).

Images are built here with registry.py (busybox-static plus a layer with
more applets, /etc/passwd and /etc/group), pushed to the session's plain
docker-registry on 127.0.0.1 and pulled with CRI PullImage. Suites come from
test_pods.pod_suite (own bridge, subnet, nft table, cgroup parent) and
ctr_suite() adds a container safety net to its teardown: processes whose
command line names the suite's directory (conmon, runc) are killed, every
container in `runc --root <run_dir>/runc list` is `delete --force`d and its
cgroups removed; pod_suite then kills whatever is left in the pods'
namespaces and cgroups, unmounts everything below the suite (rootfs mounts
included) and removes the bridge, the nft table, cgroups and the temp dir.

The test_infra_* test checks the images, the helpers and that teardown
(with containers made by hand with runc) without criod's container RPCs.

Behaviour asserted (containerd / CRI-O semantics), so the implementation
can match:
  layout   runc state under <run_dir>/runc (runc --root); conmon's command
           line holds "--id <container id>"; a container's init is the pid
           runc state names; ContainerStatus(verbose).info["info"] is JSON
           with "pid" = that pid.
  create   CONTAINER_CREATED, created_at (ns) set, started_at/finished_at 0;
           id 64 hex; metadata, labels, annotations echoed; image.image =
           the reference in the config; image_ref = the image id
           ("sha256:<config digest>", what PullImage returned); image_id
           empty or the same; log_path = <pod log_directory>/<config.log_path>;
           mounts = the config's (container_path, host_path, readonly).
           Same name + attempt twice in a pod: refused, naming the name.
           Unknown pod: NOT_FOUND. Image not present: NOT_FOUND.
  start    CONTAINER_RUNNING, started_at >= created_at.
  list     filters id (exact), pod_sandbox_id, state, label_selector (every
           label must match), ANDed; items carry id, pod_sandbox_id,
           metadata, image, image_ref, state, created_at, labels, annotations.
  command  config.command replaces the image Entrypoint and drops its Cmd;
           config.args replaces the image Cmd; env: image Env, then
           config.envs override; HOSTNAME = the pod's hostname; cwd:
           config.working_dir, else image WorkingDir, else "/".
  logs     "<RFC 3339 UTC, nanoseconds> <stdout|stderr> <F|P> <text>" per
           line; a last line without newline is a P record; lines longer
           than the buffer are P records closed by an F; ReopenContainerLog
           after a rename: new lines go to a new file at log_path, no line
           lost or doubled; ReopenContainerLog of an exited container fails.
  exit     exit 3 -> EXITED, exit_code 3, reason "Error", finished_at >=
           started_at; exit 0 -> reason "Completed"; killed by the cgroup
           OOM killer (memory_limit 16 MiB) -> reason "OOMKilled", 137.
  stop     SIGTERM by default; image StopSignal (SIGUSR1) used; config
           stop_signal overrides it; a process ignoring it is SIGKILLed after
           the timeout (137, within ~timeout+3 s); timeout 0 kills at once;
           Stop twice, and Stop of an unknown id: OK.
  exec     ExecSync: stdout, stderr, exit code, the container's env; 1 MiB
           of output intact; timeout 1 s on `sleep 100` -> DEADLINE_EXCEEDED
           within ~5 s and no `sleep 100` left; unknown id -> NOT_FOUND.
  security run_as_user / run_as_username / run_as_group / supplemental_groups
           (uids, gids, /etc/group memberships merged); unknown uid -> gid 0;
           default caps = containerd's 14 (0xa80425fb) in CapEff/CapPrm/CapBnd;
           add/drop incl. "ALL"; non-root -> CapEff 0; privileged (needs a
           privileged pod) -> CapEff = the daemons' bounding set, /sys and
           /proc/sys rw, nothing masked, no seccomp profile of its own (only
           spawnd's and conmon's filters, which every container inherits),
           host devices;
           readonly_rootfs; default masked paths (files -> char device, empty;
           dirs -> empty) and read-only /proc/sys, /sys ro; explicit
           masked_paths/readonly_paths; no_new_privs -> NoNewPrivs 1;
           seccomp RuntimeDefault -> a third filter over spawnd's and
           conmon's, Unconfined -> only those two.
  pod      sysctls from the pod config inside (host untouched); containers
           of a pod share net/ipc/uts with the pause and each other, own
           mnt; pid CONTAINER -> own pid 1; pid POD -> pid 1 is the pause
           and containers see each other; hostname, /etc/hostname, /etc/hosts
           (= the pod's file: localhost, IP + hostname), /etc/resolv.conf
           from dns_config; /dev/shm is the pod's tmpfs (shared).
  mounts   host dir rw (both ways) and readonly, a host file, PRIVATE
           propagation; relative container_path -> INVALID_ARGUMENT naming
           container_path.
  resources cpu shares/quota/period, memory limit, oom_score_adj in the
           container's cgroup files; UpdateContainerResources changes them
           and ContainerStatus.resources reports them; unknown id NOT_FOUND.
  invalid  INVALID_ARGUMENT naming the field: no config, metadata, name,
           image; unknown capability (add or drop); unknown
           run_as_username; privileged container in a non-privileged pod;
           a Localhost seccomp profile outside [policy]
           seccomp_profile_roots is PERMISSION_DENIED (test_seccomp.py);
           nothing is left of them.
  restarts criod restart: statuses identical, Exec works; spawnd restart:
           same init pid, Stop/Remove work, new containers start; conmon
           SIGKILLed: ContainerStatus never NOT_FOUND, EXITED or UNKNOWN,
           Stop and Remove clean it up (process, runc state).
  removal  RemovePodSandbox with created/running/exited containers removes
           them all (not listed, NOT_FOUND, processes, conmons, runc state,
           mounts, files named by the id, cgroups gone); RemoveContainer of
           a running container kills it; RemoveContainer twice / unknown: OK.
"""
import contextlib
import datetime
import glob
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
import types

import grpc
import pytest

import conftest

import registry as R
from conftest import api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_pods import (HEX64, Pod, cgroup_roots, files_mentioning, kill_pids, mounts, mounts_under, pause_pids,
                       pid_alive, pod_config, pod_suite, restore_forwarding_sysctls, rpc_error, sh,  # noqa: F401
                       shm_path, tok, wait_for)
from test_pods import pod_cgroup_dirs
from test_pods import remove as remove_pod
from test_pods import stop as stop_pod

RPC = 60
PULL_TIMEOUT = 90
MiB = 1 << 20
RUNC = "/usr/sbin/runc"
PY = "/usr/bin/python3"
DEFAULT_CAPS = sum(1 << b for b in (0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31))  # 0xa80425fb
CAP_KILL, CAP_NET_ADMIN = 5, 12
OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
LOG_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$",
                    re.S)


# ================================================================ images

EXTRA_APPLETS = ("dd", "tail", "sort", "ip", "pwd", "cut", "tr", "seq", "sed", "awk", "tee", "nproc", "umount",
                 "pidof", "timeout", "xargs", "basename", "dirname", "find", "uniq")
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = ("root:x:0:\n"
         "app:x:1000:\n"
         "extra:x:2000:app\n"
         "other:x:3000:\n"
         "nogroup:x:65534:\n")
IMAGE_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMG_A=from-image",
             "IMG_B=from-image"]
STOPSIG_SCRIPT = "trap 'exit 42' USR1; trap 'exit 43' USR2; while true; do sleep 0.1; done"


def extra_layer():
    members = [R.file("etc/passwd", PASSWD), R.file("etc/group", GROUP), R.directory("home"),
               R.directory("home/app", 0o755, uid=1000, gid=1000), R.directory("srv"), R.directory("srv/app"),
               R.directory("data")]
    members += [R.symlink("bin/" + a, "busybox") for a in EXTRA_APPLETS if a not in R.BUSYBOX_APPLETS]
    return R.Layer(members)


def build_image(layers, stop_signal=None, volumes=None, **config_kw):
    """registry.make_image (OCI), plus an image config StopSignal and Volumes."""
    if not stop_signal and not volumes:
        return R.make_image(layers, kind="oci", **config_kw)
    img = R.Image("oci")
    img.layers = list(layers)
    img.size = sum(l.size for l in img.layers)
    img.config = R.make_config(img.layers, **config_kw)
    if stop_signal:
        img.config["config"]["StopSignal"] = stop_signal
    if volumes:
        img.config["config"]["Volumes"] = {v: {} for v in volumes}
    img.config_bytes, img.config_digest, _, img.manifest_digest = R._single_manifest(img, img.layers, img.config,
                                                                                     "oci")
    img.id = img.config_digest
    img.digest = img.manifests[-1][0]
    return img


class Images:
    """The test images, pushed to the plain registry as <repo>:<name>."""

    def __init__(self, registry):
        self.registry = registry
        self.repo = "e2e/ctr-" + tok()
        layers = [R.busybox_layer(), extra_layer()]
        self.imgs = {
            # a shell, env and a working directory
            "base": build_image(layers, env=IMAGE_ENV, cmd=["/bin/sh"], workdir="/srv/app"),
            # Entrypoint + Cmd for the command merge
            "echo": build_image(layers, env=IMAGE_ENV, entrypoint=["/bin/echo", "ep"], cmd=["cmd1", "cmd2"]),
            # StopSignal SIGUSR1, a script that exits 42 on it (43 on USR2)
            "stopsig": build_image(layers, stop_signal="SIGUSR1", env=IMAGE_ENV,
                                   cmd=["/bin/sh", "-c", STOPSIG_SCRIPT]),
            # Volumes: /data (in the image already), nested new ones, one
            # through a symlink (resolved inside the rootfs)
            "volumes": build_image(layers + [R.Layer([R.symlink("link", "/srv")])], env=IMAGE_ENV,
                                   cmd=["/bin/sh"], volumes=["/data", "/vol/a/b", "/link/v", "/vol/./c/"]),
            # hostile: /etc/passwd is a device node, which imaged must not
            # open to read the image's users
            "dev-passwd": build_image(layers + [R.Layer([R.chardev("etc/passwd", 1, 3)])], env=IMAGE_ENV,
                                      cmd=["/bin/sh"]),
        }
        client = registry.client()
        for name, img in self.imgs.items():
            client.push_image(self.repo, img, tags=(name,))

    def ref(self, name):
        return "%s/%s:%s" % (self.registry.host, self.repo, name)

    def id(self, name):
        return self.imgs[name].id

    def pull_all(self, cri):
        for name in self.imgs:
            got = cri.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=self.ref(name))),
                            timeout=PULL_TIMEOUT).image_ref
            assert got == self.id(name), (name, got, self.id(name))


@pytest.fixture(scope="session")
def ctr_images(registries):  # noqa: F811
    return Images(registries.plain)


# ================================================================ host-side helpers

def runc_root(s):
    return os.path.join(s.run_dir, "runc")


def runc_roots(s):
    """<run_dir>/runc and any other directory named runc below the suite."""
    roots = [runc_root(s)]
    for top in (s.run_dir, s.state_dir):
        for d, dirs, _ in os.walk(top):
            if d.count(os.sep) - top.count(os.sep) > 3:
                dirs[:] = []
                continue
            if os.path.basename(d) == "runc" and d not in roots:
                roots.append(d)
    return [r for r in roots if os.path.isdir(r)]


def runc_list(root):
    r = sh(RUNC, "--root", root, "list", "--format", "json", check=False)
    if r.returncode != 0 or not r.stdout.strip():
        return []
    return json.loads(r.stdout) or []


def runc_state(s, cid):
    """runc's view of a container (dict), or None when runc does not know it."""
    r = sh(RUNC, "--root", runc_root(s), "state", cid, check=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def runc_pid(s, cid):
    st = runc_state(s, cid)
    assert st is not None, "runc (root %s) does not know container %s" % (runc_root(s), cid)
    return st["pid"]


def runc_cgroup_paths(root, cid):
    try:
        with open(os.path.join(root, cid, "state.json")) as f:
            return sorted(set((json.load(f).get("cgroup_paths") or {}).values()))
    except (OSError, ValueError):
        return []


def cmdline(pid):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def pids_where(pred):
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != me:
            args = cmdline(d)
            if args and pred(args) and pid_alive(int(d)):
                out.append(int(d))
    return out


def conmon_pids(cid):
    """conmon processes monitoring cid (command line "--id <cid>")."""
    c = cid.encode()
    return pids_where(lambda a: any(a[i] == b"--id" and a[i + 1] == c for i in range(len(a) - 1)))


def pids_mentioning(text):
    t = text.encode()
    return pids_where(lambda a: any(t in x for x in a))


def ns_inode(pid, kind):
    return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino


def proc_status_of(text):
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def host_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return proc_status_of(f.read())


def wait_host_sig(pid, field, sig, timeout=5):
    """Wait until host process pid has sig in its SigIgn / SigCgt mask."""
    return wait_for(lambda: int(host_status(pid)[field], 16) & (1 << (sig - 1)), timeout, 0.02)


def cgroup_mountpoints():
    """controller -> mount point; "" -> the cgroup v2 mount."""
    out = {}
    for mp, fstype, opts in mounts():
        if not (mp == "/sys/fs/cgroup" or mp.startswith("/sys/fs/cgroup/")):
            continue
        if fstype == "cgroup":
            for o in opts.split(","):
                out.setdefault(o, mp)
        elif fstype == "cgroup2":
            out.setdefault("", mp)
    return out


def cgroup_v1():
    return "memory" in cgroup_mountpoints()


def proc_cgroups(pid):
    out = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def cg_read(pid, controller, name):
    mp = cgroup_mountpoints()
    key = controller if controller in mp and controller in proc_cgroups(pid) else ""
    with open(os.path.join(mp[key] + proc_cgroups(pid)[key], name)) as f:
        return f.read().strip()


def cg_values(pid):
    """The container's cpu shares, quota, period and memory limit from the
    host's cgroup files (v1; v2 translated)."""
    if cgroup_v1():
        return {"shares": int(cg_read(pid, "cpu", "cpu.shares")),
                "quota": int(cg_read(pid, "cpu", "cpu.cfs_quota_us")),
                "period": int(cg_read(pid, "cpu", "cpu.cfs_period_us")),
                "memory": int(cg_read(pid, "memory", "memory.limit_in_bytes"))}
    quota, period = cg_read(pid, "", "cpu.max").split()
    mem = cg_read(pid, "", "memory.max")
    weight = int(cg_read(pid, "", "cpu.weight"))
    return {"weight": weight, "quota": -1 if quota == "max" else int(quota), "period": int(period),
            "memory": -1 if mem == "max" else int(mem)}


def mountinfo_opts(text, mountpoint):
    """Per-mount options of the topmost mount at mountpoint in a mountinfo text."""
    found = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[4] == mountpoint:
            found = set(parts[5].split(","))
    return found


def parse_rfc3339(ts):
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$", ts)
    assert m, ts
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = datetime.timezone.utc if m.group(3) == "Z" else datetime.timezone(
        datetime.timedelta(hours=int(m.group(3)[1:3]), minutes=int(m.group(3)[4:6])) *
        (1 if m.group(3)[0] == "+" else -1))
    secs = int(base.replace(tzinfo=tz).timestamp())
    return secs * 10**9 + int((m.group(2) or "0").ljust(9, "0"))


def parse_log(data):
    """CRI log records [(ts_ns, stream, tag, text)]; any other line fails."""
    out = []
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    assert text == "" or text.endswith("\n"), "log does not end with a newline: %r" % text[-200:]
    for line in text.split("\n")[:-1]:
        m = LOG_RE.match(line)
        assert m, "not a CRI log line: %r" % line[:300]
        out.append((parse_rfc3339(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return out


def read_log(path):
    try:
        with open(path, "rb") as f:
            return parse_log(f.read())
    except FileNotFoundError:
        return []


def joined_lines(records, stream="stdout"):
    """The stream's lines, P records joined to the record that ends them;
    a trailing unterminated line is returned as (text, partial=True)."""
    lines, cur = [], ""
    for _, st, tag, text in records:
        if st != stream:
            continue
        cur += text
        if tag == "F":
            lines.append(cur)
            cur = ""
    return lines, cur


# ================================================================ the suite

def container_teardown(s):
    """Safety net after the daemons stopped: conmons/runc processes of this
    suite, runc containers and their cgroups. pod_suite does the rest."""
    kill_pids(pids_mentioning(s.base + "/"))
    cgroups = []
    for root in runc_roots(s):
        for c in runc_list(root):
            cgroups += runc_cgroup_paths(root, c["id"])
            if sh(RUNC, "--root", root, "delete", "--force", c["id"], check=False).returncode != 0 and c.get("pid"):
                kill_pids([c["pid"]])
                sh(RUNC, "--root", root, "delete", "--force", c["id"], check=False)
    kill_pids(pids_mentioning(s.base + "/"))
    for d in sorted(set(cgroups), key=len, reverse=True):
        for _ in range(20):
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                try:
                    with open(os.path.join(d, "cgroup.procs")) as f:
                        kill_pids({int(x) for x in f.read().split()}, timeout=1)
                except OSError:
                    pass
                time.sleep(0.05)


@contextlib.contextmanager
def ctr_suite(registries, extra=""):  # noqa: F811 - the fixture's value
    """pod_suite (not started) whose config trusts the plain registry (and
    holds extra), with container_teardown before pod_suite's own teardown."""
    extra = "[registry.%s]\ninsecure = true\n" % registries.plain.host + extra
    with pod_suite(extra=extra) as s:
        try:
            yield s
        finally:
            try:
                s.stop_all()
            finally:
                container_teardown(s)


@contextlib.contextmanager
def started_suite(registries, images, extra="", configure=None):  # noqa: F811
    """ctr_suite started with every test image pulled; configure(s), when
    given, runs before the daemons start (to add what needs s.base)."""
    with ctr_suite(registries, extra) as s:
        if configure:
            configure(s)
        s.start_all()
        c = s.client()
        try:
            images.pull_all(c)
        finally:
            c.close()
        yield s


@pytest.fixture(scope="module")
def csuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


# ================================================================ CRI helpers

def sc_of(run_as_user=None, run_as_group=None, run_as_username="", supplemental_groups=(), add_caps=(),
          drop_caps=(), privileged=False, readonly_rootfs=False, no_new_privs=False, masked_paths=(),
          readonly_paths=(), seccomp=None, seccomp_ref=""):
    sc = pb.LinuxContainerSecurityContext(run_as_username=run_as_username, privileged=privileged,
                                          readonly_rootfs=readonly_rootfs, no_new_privs=no_new_privs)
    if run_as_user is not None:
        sc.run_as_user.value = run_as_user
    if run_as_group is not None:
        sc.run_as_group.value = run_as_group
    sc.supplemental_groups.extend(supplemental_groups)
    if add_caps or drop_caps:
        sc.capabilities.add_capabilities.extend(add_caps)
        sc.capabilities.drop_capabilities.extend(drop_caps)
    sc.masked_paths.extend(masked_paths)
    sc.readonly_paths.extend(readonly_paths)
    if seccomp is not None:
        sc.seccomp.profile_type = seccomp
        sc.seccomp.localhost_ref = seccomp_ref
    return sc


def with_pod_namespaces(pod, cfg):
    if not cfg.linux.security_context.HasField("namespace_options"):
        cfg.linux.security_context.namespace_options.CopyFrom(pod.cfg.linux.security_context.namespace_options)
    return cfg


class Ctr:
    def __init__(self, ctx, pod, cfg, cid):
        self.ctx, self.pod, self.cfg, self.id = ctx, pod, cfg, cid
        self.log = os.path.join(pod.cfg.log_directory, cfg.log_path)

    @property
    def name(self):
        return self.cfg.metadata.name

    def status(self, verbose=False):
        return self.ctx.status(self.id, verbose)

    def exec(self, cmd, timeout=30, rpc_timeout=RPC):
        return self.ctx.cri.runtime("ExecSync", pb.ExecSyncRequest(container_id=self.id, cmd=cmd, timeout=timeout),
                                    timeout=rpc_timeout)

    def sh(self, script, **kw):
        """(exit code, stdout, stderr) of `sh -c script` in the container."""
        r = self.exec(["sh", "-c", script], **kw)
        return r.exit_code, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")

    def out(self, script):
        rc, out, err = self.sh(script)
        assert rc == 0, (script, rc, out, err)
        return out.strip()

    def proc1(self):
        return proc_status_of(self.out("cat /proc/1/status"))

    def pid(self):
        return runc_pid(self.ctx.s, self.id)


class Ctx:
    """One test's pods and containers, removed again at the end."""

    def __init__(self, s, images):
        self.s, self.images = s, images
        self.cri = s.client()
        self.pods, self.ctrs = [], []

    def reconnect(self):
        self.cri.close()
        self.cri = self.s.client()

    def pod(self, privileged=False, sysctls=None, **kw):
        cfg = pod_config(self.s, **kw)
        if privileged:
            cfg.linux.security_context.privileged = True
        for k, v in (sysctls or {}).items():
            cfg.linux.sysctls[k] = v
        p = Pod(self.s, self.cri, cfg)
        self.pods.append(p.id)
        return p

    def config(self, name=None, image="base", command=None, args=None, envs=(), working_dir="", labels=None,
               annotations=None, mounts=(), resources=None, sc=None, attempt=0, log_path=None, stop_signal=0):
        name = name or "c-" + tok(4)
        cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name, attempt=attempt),
                                 image=pb.ImageSpec(image=self.images.ref(image)), working_dir=working_dir,
                                 labels=labels or {}, annotations=annotations or {},
                                 log_path=log_path if log_path is not None else "%s/%d.log" % (name, attempt),
                                 stop_signal=stop_signal)
        cfg.command.extend(command or [])
        cfg.args.extend(args or [])
        for k, v in envs:
            cfg.envs.add(key=k, value=v)
        for m in mounts:
            cfg.mounts.add().CopyFrom(m)
        if resources:
            cfg.linux.resources.CopyFrom(pb.LinuxContainerResources(**resources))
        if sc is not None:
            cfg.linux.security_context.CopyFrom(sc)
        return cfg

    def create_cfg(self, pod, cfg):
        """CreateContainer; like kubelet, the container's namespace options
        are the pod's unless the test set them."""
        with_pod_namespaces(pod, cfg)
        t0 = time.time_ns()
        cid = self.cri.runtime("CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=pod.id, config=cfg,
                                                                            sandbox_config=pod.cfg),
                               timeout=RPC).container_id
        c = Ctr(self, pod, cfg, cid)
        c.t_create = (t0, time.time_ns())
        self.ctrs.append(cid)
        return c

    def create(self, pod, **kw):
        return self.create_cfg(pod, self.config(**kw))

    def start(self, c):
        t0 = time.time_ns()
        self.cri.runtime("StartContainer", pb.StartContainerRequest(container_id=c.id), timeout=RPC)
        c.t_start = (t0, time.time_ns())
        return c

    def run(self, pod, **kw):
        return self.start(self.create(pod, **kw))

    def status(self, cid, verbose=False):
        return self.cri.runtime("ContainerStatus", pb.ContainerStatusRequest(container_id=cid, verbose=verbose))

    def stop(self, cid, timeout=0):
        return self.cri.runtime("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=timeout),
                                timeout=timeout + RPC)

    def remove(self, cid):
        return self.cri.runtime("RemoveContainer", pb.RemoveContainerRequest(container_id=cid), timeout=RPC)

    def list(self, id=None, pod=None, state=None, labels=None):
        f = pb.ContainerFilter()
        if id is not None:
            f.id = id
        if pod is not None:
            f.pod_sandbox_id = pod
        if state is not None:
            f.state.CopyFrom(pb.ContainerStateValue(state=state))
        for k, v in (labels or {}).items():
            f.label_selector[k] = v
        return list(self.cri.runtime("ListContainers", pb.ListContainersRequest(filter=f)).containers)

    def wait_state(self, c, states, timeout=15):
        states = (states,) if isinstance(states, int) else tuple(states)
        st = wait_for(lambda: (lambda x: x if x.state in states else None)(c.status().status), timeout, 0.1)
        assert st, "container %s not in %s after %ss: %s" % (c.name, states, timeout, c.status().status)
        return st

    def wait_exited(self, c, timeout=15):
        return self.wait_state(c, pb.CONTAINER_EXITED, timeout)

    def cleanup(self):
        for cid in reversed(self.ctrs):
            try:
                self.remove(cid)
            except grpc.RpcError:
                pass
        for pod_id in self.pods:
            try:
                remove_pod(self.cri, pod_id)
            except grpc.RpcError:
                pass
        self.cri.close()


@contextlib.contextmanager
def ctx_of(s, images):
    c = Ctx(s, images)
    try:
        yield c
    finally:
        c.cleanup()


@pytest.fixture
def ctx(csuite, ctr_images):
    with ctx_of(csuite, ctr_images) as c:
        yield c


def caps(status, key="CapEff"):
    return int(status[key], 16)


def id_set(text):
    return {int(x) for x in text.split()}


SLEEP = ["sleep", "3600"]


# ================================================================ infrastructure self-test (no container RPCs)

def test_infra_images_helpers_and_teardown(test_user, registries, ctr_images):  # noqa: F811
    imgs = ctr_images
    # The images are in the registry, with the configs the tests rely on.
    client = registries.plain.client()
    for name, img in imgs.imgs.items():
        _, body = client.get_manifest(imgs.repo, name)
        assert json.loads(body)["config"]["digest"] == img.id
    assert imgs.imgs["stopsig"].config["config"]["StopSignal"] == "SIGUSR1"
    assert imgs.imgs["echo"].config["config"]["Entrypoint"] == ["/bin/echo", "ep"]
    assert len({img.id for img in imgs.imgs.values()}) == len(imgs.imgs)
    # The shell snippets behave as the tests expect (busybox on the host).
    bb = shutil.which("busybox") or "/bin/busybox"
    p = subprocess.Popen([bb, "sh", "-c", STOPSIG_SCRIPT])
    assert wait_host_sig(p.pid, "SigCgt", signal.SIGUSR1), "the script never trapped SIGUSR1"
    p.send_signal(signal.SIGUSR1)
    assert p.wait(5) == 42
    p = subprocess.Popen([bb, "sh", "-c", "trap '' TERM; while true; do sleep 1; done"])
    assert wait_host_sig(p.pid, "SigIgn", signal.SIGTERM), "the shell never ignored SIGTERM"
    p.send_signal(signal.SIGTERM)
    # Ignored, so it is still there: its SigIgn says so, and it still runs.
    assert host_status(p.pid)["State"][0] in "RS" and p.poll() is None
    p.kill()
    p.wait(5)
    # Log parsing.
    recs = parse_log(b"2026-11-23T08:00:00.123456789Z stdout F hello world\n"
                     b"2026-11-23T08:00:00.2Z stderr F \n"
                     b"2026-11-23T08:00:01+00:00 stdout P part\n")
    assert recs[0] == (1795420800123456789, "stdout", "F", "hello world")
    assert recs[1][1:] == ("stderr", "F", "") and recs[2][1:] == ("stdout", "P", "part")
    assert joined_lines(recs) == (["hello world"], "part")
    with pytest.raises(AssertionError):
        parse_log(b"2026-11-23T08:00:00Z stdout X bad\n")
    assert DEFAULT_CAPS == 0xa80425fb
    base_dir = cg_dir = None
    fake_pids = []
    with ctr_suite(registries) as s:
        s.start_all()
        base_dir = s.base
        c = s.client()
        try:
            imgs.pull_all(c)  # PullImage of every test image works
            st = c.image("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=imgs.ref("stopsig"))))
            assert st.image.id == imgs.id("stopsig")
            pod = Pod(s, c, pod_config(s))
            assert pause_pids(s, pod.id)
        finally:
            c.close()
        # Containers made by hand, as conmon would make them with runc:
        # one left running (own netns, a cgroup outside the suite's parent,
        # a fake conmon whose command line names the suite), one OOM run.
        bundle = os.path.join(s.base, "fake-bundle")
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(rootfs)
        for layer in imgs.imgs["base"].layers:
            subprocess.run(["tar", "-x", "-C", rootfs], input=layer.tar, check=True)
        sh("mount", "--bind", rootfs, rootfs)  # like imaged's rootfs mount
        sh(RUNC, "spec", "--bundle", bundle)
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
        cg_dir = "/criod-e2e-fake-" + tok(4)  # outside the suite's cgroup parent
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["sleep", "3600"]
        spec["root"] = {"path": rootfs, "readonly": False}
        spec["linux"]["cgroupsPath"] = cg_dir
        spec["linux"]["resources"] = {"memory": {"limit": 64 * MiB}, "cpu": {"shares": 512, "quota": 50000,
                                                                             "period": 100000}}
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        cid = tok(32)
        os.makedirs(runc_root(s), exist_ok=True)
        # detached: the container keeps runc's stdio, so no pipes here
        subprocess.run([RUNC, "--root", runc_root(s), "run", "-d", "--bundle", bundle, "--pid-file",
                        os.path.join(bundle, "pid"), cid], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, timeout=30)
        pid = runc_pid(s, cid)
        assert pid_alive(pid) and cmdline(pid)[:2] == [b"sleep", b"3600"]
        assert cg_values(pid) == {"shares": 512, "quota": 50000, "period": 100000, "memory": 64 * MiB} \
            if cgroup_v1() else cg_values(pid)["memory"] == 64 * MiB
        fake = subprocess.Popen([PY, "-c", "import time; time.sleep(600)", "--id", cid, "--bundle", bundle],
                                stdin=subprocess.DEVNULL, start_new_session=True)
        assert wait_for(lambda: conmon_pids(cid) == [fake.pid], 5), conmon_pids(cid)
        assert fake.pid in pids_mentioning(s.base + "/")
        fake_pids = [pid, fake.pid]
        # The OOM command of test_exit_codes_and_oom is OOM-killed (137).
        spec["process"]["args"] = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
        spec["linux"]["cgroupsPath"] = cg_dir + "-oom"
        spec["linux"]["resources"] = {"memory": {"limit": 16 * MiB}}
        bundle2 = os.path.join(s.base, "fake-bundle-oom")
        os.makedirs(bundle2)
        spec["root"] = {"path": rootfs, "readonly": True}
        with open(os.path.join(bundle2, "config.json"), "w") as f:
            json.dump(spec, f)
        r = sh(RUNC, "--root", runc_root(s), "run", "--bundle", bundle2, tok(32), check=False,
               stdin=subprocess.DEVNULL)
        assert r.returncode == 137, (r.returncode, r.stderr)
        assert [x["id"] for x in runc_list(runc_root(s))] == [cid]
    # Everything is gone: processes, runc state, cgroups, mounts, the dir.
    assert fake.wait(5) is not None
    assert not any(pid_alive(p) for p in fake_pids)
    assert not os.path.exists(base_dir) and not mounts_under(base_dir)
    assert not any(os.path.exists(r + cg) for r in cgroup_roots() for cg in (cg_dir, cg_dir + "-oom")), cg_dir
    assert not pids_mentioning(base_dir + "/")


# ================================================================ lifecycle, status, list

def test_lifecycle_status_and_list(ctx):
    s, imgs = ctx.s, ctx.images
    p, q = ctx.pod(), ctx.pod()
    run_label = tok()
    hostdir = tempfile.mkdtemp(dir=s.base, prefix="vol-")
    annotations = {"note": "x=y; z", "k8s.io/anything": "{\"json\": true}"}
    a = ctx.create(p, labels={"run": run_label, "app": "a", "tier": "front"}, annotations=annotations,
                   mounts=[pb.Mount(container_path="/vol", host_path=hostdir, readonly=True)], command=SLEEP,
                   attempt=1)
    assert HEX64.match(a.id), a.id
    x = a.status().status
    assert x.id == a.id and x.metadata == a.cfg.metadata
    assert x.state == pb.CONTAINER_CREATED
    assert a.t_create[0] - 10**9 <= x.created_at <= a.t_create[1] + 10**9, (a.t_create, x.created_at)
    assert x.started_at == 0 and x.finished_at == 0
    assert x.image.image == imgs.ref("base")
    assert x.image_ref == imgs.id("base")
    assert x.image_id in ("", imgs.id("base"))
    assert dict(x.labels) == a.cfg.labels and dict(x.annotations) == annotations
    assert x.log_path == os.path.join(p.cfg.log_directory, a.cfg.log_path)
    assert [(m.container_path, m.host_path, m.readonly) for m in x.mounts] == [("/vol", hostdir, True)]
    # Start.
    ctx.start(a)
    y = a.status().status
    assert y.state == pb.CONTAINER_RUNNING
    assert a.t_start[0] - 10**9 <= y.started_at <= a.t_start[1] + 10**9 and y.started_at >= y.created_at
    assert y.created_at == x.created_at and y.finished_at == 0
    pid = a.pid()
    assert pid_alive(pid) and cmdline(pid)[:2] == [b"sleep", b"3600"]
    assert ns_inode(pid, "net") == os.stat(os.path.join(s.run_dir, "netns", p.id)).st_ino
    v = a.status(verbose=True)
    assert v.status == y
    assert json.loads(v.info["info"])["pid"] == pid
    for val in v.info.values():
        json.loads(val)
    assert dict(a.status().info) == {}
    # More containers in both pods, in every state.
    b = ctx.run(p, labels={"run": run_label, "app": "b", "tier": "front"}, command=SLEEP)
    c = ctx.create(p, labels={"run": run_label, "app": "a", "tier": "back"}, command=SLEEP)
    d = ctx.run(q, labels={"run": run_label, "app": "d"}, command=SLEEP)
    e = ctx.run(q, labels={"run": run_label, "app": "e"}, command=["true"])
    ctx.wait_exited(e)
    mine = lambda items: sorted(i.id for i in items if i.labels.get("run") == run_label)  # noqa: E731
    ids = lambda *cs: sorted(x.id for x in cs)  # noqa: E731
    assert mine(ctx.list()) == ids(a, b, c, d, e)
    for one in (a, b, c, d, e):
        assert [i.id for i in ctx.list(id=one.id)] == [one.id]
    assert sorted(i.id for i in ctx.list(pod=p.id)) == ids(a, b, c)
    assert sorted(i.id for i in ctx.list(pod=q.id)) == ids(d, e)
    assert mine(ctx.list(state=pb.CONTAINER_RUNNING)) == ids(a, b, d)
    assert mine(ctx.list(state=pb.CONTAINER_CREATED)) == ids(c)
    assert mine(ctx.list(state=pb.CONTAINER_EXITED)) == ids(e)
    assert mine(ctx.list(labels={"run": run_label, "app": "a"})) == ids(a, c)
    assert mine(ctx.list(labels={"run": run_label, "app": "a", "tier": "front"})) == ids(a)
    assert mine(ctx.list(labels={"run": run_label, "app": "zzz"})) == []
    assert mine(ctx.list(labels={"run": run_label, "nolabel": ""})) == []
    assert sorted(i.id for i in ctx.list(pod=p.id, state=pb.CONTAINER_RUNNING)) == ids(a, b)
    assert ctx.list(id=a.id, state=pb.CONTAINER_CREATED) == []
    assert ctx.list(id=a.id, pod=q.id) == []
    assert sorted(i.id for i in ctx.list(pod=q.id, labels={"app": "e"})) == ids(e)
    assert ctx.list(id=tok(32)) == [] and ctx.list(pod=tok(32)) == []
    item = ctx.list(id=a.id)[0]
    assert (item.id, item.pod_sandbox_id, item.metadata, item.image.image, item.image_ref, item.state,
            item.created_at, dict(item.labels), dict(item.annotations)) == \
        (a.id, p.id, a.cfg.metadata, imgs.ref("base"), imgs.id("base"), pb.CONTAINER_RUNNING, x.created_at,
         dict(a.cfg.labels), annotations)
    # The same name and attempt twice in a pod is refused; unknown pod/image/id.
    err = rpc_error(ctx.create_cfg, p, a.cfg)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and a.name in err.details(), err
    err = rpc_error(ctx.cri.runtime, "CreateContainer", pb.CreateContainerRequest(
        pod_sandbox_id=tok(32), config=ctx.config(command=SLEEP), sandbox_config=p.cfg), timeout=RPC)
    assert err.code() == NOT_FOUND, err
    cfg = ctx.config(command=SLEEP)
    cfg.image.image = "%s/e2e/never-pulled-%s:v1" % (imgs.registry.host, tok())
    err = rpc_error(ctx.create_cfg, p, cfg)
    assert err.code() == NOT_FOUND and "never-pulled" in err.details(), err
    err = rpc_error(ctx.status, tok(32))
    assert err.code() == NOT_FOUND, err
    assert sorted(i.id for i in ctx.list(pod=p.id)) == ids(a, b, c)


# ================================================================ command, env, working dir

def test_command_args_env_workdir(ctx):
    p = ctx.pod(hostname="cmd-host")
    cases = [
        ({}, "ep cmd1 cmd2"),
        ({"args": ["a1", "a2"]}, "ep a1 a2"),
        ({"command": ["/bin/echo", "c"]}, "c"),
        ({"command": ["/bin/echo", "c"], "args": ["a1"]}, "c a1"),
    ]
    made = [(ctx.run(p, image="echo", **kw), want) for kw, want in cases]
    env = ctx.run(p, command=["env"], envs=[("IMG_B", "from-config"), ("NEW", "with space")])
    wd_image = ctx.run(p, command=["sh", "-c", "pwd"])
    wd_config = ctx.run(p, command=["sh", "-c", "pwd"], working_dir="/tmp")
    wd_none = ctx.run(p, image="echo", command=["sh", "-c", "pwd"])
    made += [(wd_image, "/srv/app"), (wd_config, "/tmp"), (wd_none, "/")]
    for c, want in made:
        st = ctx.wait_exited(c)
        assert (st.exit_code, st.reason) == (0, "Completed"), (c.cfg, st)
        got = wait_for(lambda: joined_lines(read_log(c.log)) == ([want], ""), 3)
        assert got, (c.cfg.command, c.cfg.args, want, read_log(c.log))
    st = ctx.wait_exited(env)
    assert st.exit_code == 0
    assert wait_for(lambda: any(r[3].startswith("NEW=") for r in read_log(env.log)), 3)
    lines = set(joined_lines(read_log(env.log))[0])
    for want in ("IMG_A=from-image", "IMG_B=from-config", "NEW=with space", IMAGE_ENV[0], "HOSTNAME=cmd-host"):
        assert want in lines, (want, sorted(lines))
    assert "IMG_B=from-image" not in lines


# ================================================================ logs

def test_log_format_and_reopen(ctx):
    p = ctx.pod()
    t0 = time.time_ns()
    c = ctx.run(p, command=["sh", "-c", "echo out1; echo err1 >&2; echo out2; "
                                        "head -c 20000 /dev/zero | tr '\\0' x; echo; printf tail-no-newline"])
    ctx.wait_exited(c)
    assert wait_for(lambda: joined_lines(read_log(c.log))[1] == "tail-no-newline", 3), read_log(c.log)
    recs = read_log(c.log)
    t1 = time.time_ns()
    assert all(t0 - 5 * 10**9 <= r[0] <= t1 + 5 * 10**9 for r in recs), (t0, t1, recs[:3])
    for stream in ("stdout", "stderr"):
        ts = [r[0] for r in recs if r[1] == stream]
        assert ts == sorted(ts), stream
    assert joined_lines(recs, "stdout") == (["out1", "out2", "x" * 20000], "tail-no-newline")
    assert joined_lines(recs, "stderr") == (["err1"], "")
    out = [r for r in recs if r[1] == "stdout"]
    assert out[-1][2:] == ("P", "tail-no-newline")
    long_recs = [r for r in out if set(r[3]) == {"x"}]
    assert len(long_recs) >= 2 and all(r[2] == "P" for r in long_recs[:-1]) and long_recs[-1][2] == "F"
    # ReopenContainerLog after kubelet-style rotation (rename, reopen).
    r = ctx.run(p, command=["sh", "-c", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.1; done"])
    assert wait_for(lambda: len(read_log(r.log)) >= 3, 5), read_log(r.log)
    os.rename(r.log, r.log + ".1")
    ctx.cri.runtime("ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=r.id), timeout=RPC)
    assert wait_for(lambda: len(read_log(r.log)) >= 3, 5), "no new lines in the reopened log"
    # conmon writes the new file now; five more lines there, and the
    # renamed one has not grown meanwhile.
    size = os.path.getsize(r.log + ".1")
    n = len(read_log(r.log))
    assert wait_for(lambda: len(read_log(r.log)) >= n + 5, 10), "the reopened log stopped growing"
    assert os.path.getsize(r.log + ".1") == size, "the renamed file is still written"
    ctx.stop(r.id, 0)
    old, new = read_log(r.log + ".1"), read_log(r.log)
    nums = [int(x[3].split("-")[1]) for x in old + new if x[1] == "stdout"]
    assert nums == list(range(len(nums))), nums  # nothing lost, nothing doubled
    assert all(x[2] == "F" for x in old + new)
    # Reopen of a container that is not running fails.
    err = rpc_error(ctx.cri.runtime, "ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=c.id))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "not running" in err.details(), err


def test_log_path_stays_beneath_the_log_roots(ctx):
    """The node policy's [policy] log_roots (the suite's: <base>/podlogs):
    conmon writes a container's log as root, so a log_path outside every
    root (the attack: /etc/ld.so.preload, then a container printing a
    library path) is refused by spawnd, and beneath the root nothing is
    followed and nothing but a regular file is opened, at create and at
    every ReopenContainerLog."""
    s = ctx.s
    outside = tempfile.mkdtemp(prefix="criod-outside-", dir=s.base)

    def pod_with_logs(log_directory):
        cfg = pod_config(s)
        cfg.log_directory = log_directory
        p = Pod(s, ctx.cri, cfg)
        ctx.pods.append(p.id)
        return p

    def refused(p, log_path, code, *words):
        before = set(ctr.id for ctr in ctx.list(pod=p.id))
        with pytest.raises(grpc.RpcError) as e:
            ctx.create(p, command=SLEEP, log_path=log_path)
        assert e.value.code() == code, (log_path, e.value)
        for w in words:
            assert w in e.value.details(), (log_path, w, e.value.details())
        assert set(ctr.id for ctr in ctx.list(pod=p.id)) == before

    preload_existed = os.path.exists("/etc/ld.so.preload")
    refused(pod_with_logs("/etc"), "ld.so.preload", grpc.StatusCode.PERMISSION_DENIED,
            "/etc/ld.so.preload", "[policy] log_roots", s.log_root)
    assert os.path.exists("/etc/ld.so.preload") == preload_existed
    refused(pod_with_logs(outside), "c/0.log", grpc.StatusCode.PERMISSION_DENIED, "[policy] log_roots")
    assert os.listdir(outside) == []
    # Beneath the root: a symlink on the way, and a FIFO where the log goes.
    p = ctx.pod()
    os.symlink(outside, os.path.join(p.cfg.log_directory, "link"))
    refused(p, "link/0.log", grpc.StatusCode.PERMISSION_DENIED, "symlink")
    os.mkfifo(os.path.join(p.cfg.log_directory, "fifo.log"))
    refused(p, "fifo.log", grpc.StatusCode.PERMISSION_DENIED, "not a regular file")
    assert os.listdir(outside) == []
    # At reopen: the container's log directory replaced by a symlink out
    # (kubelet's rotation renames the file; a hostile rename of the
    # directory must not make conmon write elsewhere).
    c = ctx.run(p, command=["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    assert wait_for(lambda: len(read_log(c.log)) >= 2, 5), read_log(c.log)
    d = os.path.dirname(c.log)
    os.rename(d, d + ".moved")
    os.symlink(outside, d)
    with pytest.raises(grpc.RpcError) as e:
        ctx.cri.runtime("ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=c.id), timeout=RPC)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value
    assert "no symlink is followed" in e.value.details(), e.value.details()
    assert os.listdir(outside) == []
    # Put back, reopen works again, and the container kept running.
    os.unlink(d)
    os.rename(d + ".moved", d)
    os.rename(c.log, c.log + ".1")
    ctx.cri.runtime("ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=c.id), timeout=RPC)
    assert wait_for(lambda: os.path.exists(c.log) and len(read_log(c.log)) >= 1, 5)
    assert c.status().status.state == pb.CONTAINER_RUNNING
    assert os.listdir(outside) == []


@pytest.mark.skipif(not conftest.SANITIZERS, reason="only a sanitizer build (CRIOD_SANITIZERS=1) passes "
                    "the sanitizers' settings on to conmon")
def test_conmon_sanitizer_reports_reach_the_run(ctx):
    """conmon's stderr is a file in its state directory that no check
    reads; in the sanitizer build spawnd hands conmon the suite's
    ASAN_OPTIONS/UBSAN_OPTIONS, so a report of conmon's lands in the
    suite's sanitizer directory, which check_logs fails on."""
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    pids = conmon_pids(c.id)
    assert len(pids) == 1, pids
    with open("/proc/%d/environ" % pids[0], "rb") as f:
        env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
    want = ("log_path=" + os.path.join(ctx.s.sanitizer_dir, "asan")).encode()
    assert want in env.get(b"ASAN_OPTIONS", b"").split(b":"), env
    assert b"exitcode=66" in env.get(b"ASAN_OPTIONS", b"").split(b":"), env


# ================================================================ exit codes

def test_exit_codes_and_oom(ctx):
    p = ctx.pod()
    c3 = ctx.run(p, command=["sh", "-c", "exit 3"])
    c0 = ctx.run(p, command=["sh", "-c", "exit 0"])
    oom = ctx.run(p, command=["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
                  resources={"memory_limit_in_bytes": 16 * MiB})
    st = ctx.wait_exited(c3)
    assert (st.exit_code, st.reason) == (3, "Error"), st
    assert st.started_at >= st.created_at > 0 and st.finished_at >= st.started_at
    assert st.finished_at <= time.time_ns() + 10**9
    st = ctx.wait_exited(c0)
    assert (st.exit_code, st.reason) == (0, "Completed"), st
    assert st.finished_at >= st.started_at > 0
    st = ctx.wait_exited(oom, 30)
    assert (st.reason, st.exit_code) == ("OOMKilled", 137), st


# ================================================================ stop

def wait_sig(c, field, sig, timeout=5):
    """Wait until the container's pid 1 has sig in SigIgn / SigCgt."""
    return wait_for(lambda: int(c.proc1()[field], 16) & (1 << (sig - 1)), timeout, 0.1)


def test_stop_signals_and_timeouts(ctx):
    p = ctx.pod()
    ign = ctx.run(p, command=["sh", "-c", "trap '' TERM; while true; do sleep 1; done"])
    term = ctx.run(p, command=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"])
    usr1 = ctx.run(p, image="stopsig")
    usr2 = ctx.run(p, image="stopsig", stop_signal=pb.SIGUSR2)
    kill0 = ctx.run(p, command=SLEEP)
    assert wait_sig(ign, "SigIgn", signal.SIGTERM)
    assert wait_sig(term, "SigCgt", signal.SIGTERM)
    assert wait_sig(usr1, "SigCgt", signal.SIGUSR1) and wait_sig(usr2, "SigCgt", signal.SIGUSR2)
    # Ignored SIGTERM: killed when the timeout passes.
    t0 = time.monotonic()
    ctx.stop(ign.id, 2)
    dt = time.monotonic() - t0
    assert 1.5 <= dt <= 30, dt  # it waited the grace period (the ceiling only catches a hang)
    st = ign.status().status
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 137, st
    # Again, and an unknown id: OK, nothing changes.
    ctx.stop(ign.id, 2)
    assert ign.status().status == st
    ctx.stop(tok(32), 2)
    # SIGTERM by default.
    # A long grace period, so that ending well before it can only be the
    # signal's doing (no wall-clock ceiling near the real cost).
    t0 = time.monotonic()
    ctx.stop(term.id, 120)
    assert time.monotonic() - t0 < 60
    st = term.status().status
    assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 0, "Completed"), st
    # The image's StopSignal, and config.stop_signal over it.
    for c, code in ((usr1, 42), (usr2, 43)):
        t0 = time.monotonic()
        ctx.stop(c.id, 120)
        assert time.monotonic() - t0 < 60, c.name
        st = c.status().status
        assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, code), (c.name, st)
    # Timeout 0: SIGKILL at once (sleep would have died of SIGTERM first
    # with 143 had it been sent).
    ctx.stop(kill0.id, 0)
    assert kill0.status().status.exit_code == 137


# ================================================================ exec

def test_exec_sync(ctx):
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    r = c.exec(["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 7)
    r = c.exec(["true"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"", b"", 0)
    assert c.out("echo $IMG_A") == "from-image"  # the container's environment
    r = c.exec(["sh", "-c", "head -c 1048576 /dev/zero | tr '\\0' a"])
    assert r.exit_code == 0 and r.stdout == b"a" * MiB
    # Timeout: an error, and the command is gone.
    pid = c.pid()
    t0 = time.monotonic()
    err = rpc_error(c.exec, ["sleep", "100"], timeout=1, rpc_timeout=30)
    dt = time.monotonic() - t0
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    assert 0.9 <= dt <= 6, dt
    pidns = ns_inode(pid, "pid")

    def sleepers():
        return [x for x in pids_where(lambda a: a[:2] == [b"sleep", b"100"])
                if os.path.exists("/proc/%d/ns/pid" % x) and ns_inode(x, "pid") == pidns]
    assert wait_for(lambda: not sleepers(), 3), sleepers()
    assert "sleep 100" not in c.out("ps -o args 2>/dev/null || ps")
    assert c.status().status.state == pb.CONTAINER_RUNNING
    assert c.out("echo still") == "still"
    # Unknown and stopped containers.
    err = rpc_error(ctx.cri.runtime, "ExecSync", pb.ExecSyncRequest(container_id=tok(32), cmd=["true"]))
    assert err.code() == NOT_FOUND, err
    ctx.stop(c.id, 0)
    err = rpc_error(c.exec, ["true"])
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err


def test_runtime_handlers_and_image_volumes(ctx):
    # Status lists the default handler as "" and each configured one.
    st = ctx.cri.runtime("Status", pb.StatusRequest())
    assert [h.name for h in st.runtime_handlers] == ["", "runc"], st.runtime_handlers
    # A pod naming the runc handler works, and its containers run.
    cfg = pod_config(ctx.s)
    pod_id = ctx.cri.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=cfg, runtime_handler="runc"),
                             timeout=RPC).pod_sandbox_id
    ctx.pods.append(pod_id)
    pod = types.SimpleNamespace(id=pod_id, cfg=cfg)
    # The image's volumes are directories in the container (mode 0755).
    c = ctx.run(pod, image="volumes", command=SLEEP)
    assert ctx.wait_state(c, pb.CONTAINER_RUNNING).state == pb.CONTAINER_RUNNING
    for d in ("/data", "/vol/a/b", "/vol/c", "/srv/v"):
        assert c.sh("test -d %s" % d)[0] == 0, d
    assert c.out("stat -c %a /vol/a/b") == "755"
    assert not os.path.exists("/link/v")  # the symlink resolved inside the rootfs
    # An unknown handler: INVALID_ARGUMENT naming the field, nothing made.
    cfg2 = pod_config(ctx.s)
    err = rpc_error(ctx.cri.runtime, "RunPodSandbox", pb.RunPodSandboxRequest(config=cfg2, runtime_handler="nosuch"),
                    timeout=RPC)
    assert err.code() == INVALID, err
    assert "runtime_handler" in err.details() and "nosuch" in err.details() and "runc" in err.details(), err
    names = [x.metadata.name for x in ctx.cri.runtime("ListPodSandbox", pb.ListPodSandboxRequest()).items]
    assert cfg2.metadata.name not in names


# ================================================================ security context

def test_users_and_groups(ctx):
    p = ctx.pod()
    runs = {
        "default": sc_of(),
        "uid": sc_of(run_as_user=1000),
        "name": sc_of(run_as_username="app"),
        "group": sc_of(run_as_user=1000, run_as_group=3000),
        "supp": sc_of(run_as_user=1000, supplemental_groups=[4000, 5000]),
        "unknown": sc_of(run_as_user=4242),
        "nobody": sc_of(run_as_username="nobody"),
    }
    cs = {k: ctx.run(p, command=SLEEP, sc=v) for k, v in runs.items()}

    def ids(c):
        return int(c.out("id -u")), int(c.out("id -g")), id_set(c.out("id -G"))
    uid, gid, groups = ids(cs["default"])
    assert (uid, gid) == (0, 0)
    for k in ("uid", "name"):
        assert ids(cs[k]) == (1000, 1000, {1000, 2000}), k
        st = cs[k].proc1()
        assert st["Uid"].split() == ["1000"] * 4 and st["Gid"].split() == ["1000"] * 4, st
        assert id_set(st["Groups"]) >= {2000}
        assert caps(st) == 0 and caps(st, "CapBnd") == DEFAULT_CAPS  # non-root: no effective caps
    uid, gid, groups = ids(cs["group"])
    assert (uid, gid) == (1000, 3000) and {3000, 2000} <= groups, groups
    uid, gid, groups = ids(cs["supp"])
    assert (uid, gid) == (1000, 1000) and {1000, 2000, 4000, 5000} <= groups, groups
    assert ids(cs["unknown"])[:2] == (4242, 0)
    assert ids(cs["nobody"])[:2] == (65534, 65534)
    assert cs["name"].out("whoami") == "app"


def test_run_as_group_needs_a_user(ctx):
    """The CRI: run_as_group may only be set with run_as_user (or a user
    name); alone it is INVALID_ARGUMENT naming the field, even when the
    image names a user, and nothing is left of the attempt."""
    p = ctx.pod()
    before = {c.id for c in ctx.list(pod=p.id)}
    with pytest.raises(grpc.RpcError) as e:
        ctx.create(p, command=SLEEP, sc=sc_of(run_as_group=3000))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    assert "security_context.run_as_group" in e.value.details(), e.value.details()
    assert {c.id for c in ctx.list(pod=p.id)} == before
    # With a user name it is accepted.
    c = ctx.run(p, command=SLEEP, sc=sc_of(run_as_username="app", run_as_group=3000))
    assert (int(c.out("id -u")), int(c.out("id -g"))) == (1000, 3000)


def test_hostile_image_passwd_is_never_opened(ctx):
    """A layer may put a device node where /etc/passwd should be; imaged
    reads the image's users as root, and opening such a node runs its
    driver (a watchdog's reboots the host). It is looked at (O_PATH), found
    not regular and refused, and never opened: strace on imaged sees no
    open of it but with O_PATH."""
    trace = os.path.join(ctx.s.base, "imaged-open.trace")
    st = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", trace,
                           "-p", str(ctx.s.pid("imaged"))], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: os.path.exists(trace) and
                        "TracerPid:\t%d" % st.pid in open("/proc/%d/status" % ctx.s.pid("imaged")).read(), 10)
        p = ctx.pod()
        with pytest.raises(grpc.RpcError) as e:
            ctx.create(p, image="dev-passwd", command=SLEEP)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value  # the image is unusable
        assert "/etc/passwd in the image is not a regular file" in e.value.details(), e.value.details()
        assert ctx.list(pod=p.id) == []
    finally:
        st.terminate()
        st.wait(10)
    with open(trace) as f:
        calls = [line for line in f if "etc/passwd" in line]
    assert calls, "strace saw imaged open nothing named etc/passwd"
    for line in calls:
        assert "O_PATH" in line, line


def test_capabilities_and_privileged(ctx):
    p = ctx.pod()
    default = ctx.run(p, command=SLEEP)
    add = ctx.run(p, command=SLEEP, sc=sc_of(add_caps=["NET_ADMIN"]))
    drop = ctx.run(p, command=SLEEP, sc=sc_of(drop_caps=["ALL"]))
    both = ctx.run(p, command=SLEEP, sc=sc_of(drop_caps=["ALL"], add_caps=["CAP_NET_ADMIN", "KILL"]))
    st = default.proc1()
    assert (caps(st), caps(st, "CapPrm"), caps(st, "CapBnd")) == (DEFAULT_CAPS,) * 3, st
    assert caps(add.proc1()) == DEFAULT_CAPS | 1 << CAP_NET_ADMIN
    assert caps(drop.proc1()) == 0
    assert caps(both.proc1()) == (1 << CAP_NET_ADMIN) | (1 << CAP_KILL)
    mi = default.out("cat /proc/self/mountinfo")
    assert "ro" in mountinfo_opts(mi, "/sys"), mi
    # Privileged: everything the daemons hold, rw /sys, nothing masked.
    pp = ctx.pod(privileged=True)
    priv = ctx.run(pp, command=SLEEP, sc=sc_of(privileged=True))
    plain = ctx.run(pp, command=SLEEP)
    host_bnd = caps(host_status(ctx.s.pid("spawnd")), "CapBnd")
    st = priv.proc1()
    assert caps(st) == host_bnd and caps(st, "CapBnd") == host_bnd, (hex(caps(st)), hex(host_bnd))
    # Unconfined: this node allows unconfined containers, so spawnd and
    # conmon load no filter to pass on (test_confine_spawnd).
    assert (st["Seccomp"], st["Seccomp_filters"]) == ("0", "0"), st
    mi = priv.out("cat /proc/self/mountinfo")
    assert "rw" in mountinfo_opts(mi, "/sys"), mi
    assert "ro" not in (mountinfo_opts(mi, "/proc/sys") or set())
    masked = host_masked_file()
    assert masked, "no default masked file exists on this host"
    assert priv.sh("test -c %s" % masked)[0] != 0, "%s masked in a privileged container" % masked
    dev = next((d for d in ("/dev/kmsg", "/dev/loop-control", "/dev/mem") if os.path.exists(d)), None)
    assert dev, "none of /dev/kmsg, /dev/loop-control, /dev/mem exists on this host"
    assert priv.sh("test -c %s" % dev)[0] == 0, "host device %s missing" % dev
    assert caps(plain.proc1()) == DEFAULT_CAPS  # the pod's privilege is not the container's


def host_masked_file():
    """A file of the default masked paths that exists on this host."""
    return next((f for f in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
                 if os.path.isfile(f)), None)


def test_filesystem_restrictions(ctx):
    p = ctx.pod()
    default = ctx.run(p, command=SLEEP)
    ro = ctx.run(p, command=SLEEP, sc=sc_of(readonly_rootfs=True))
    custom = ctx.run(p, command=SLEEP, sc=sc_of(masked_paths=["/proc/version"], readonly_paths=["/etc"]))
    # readonly_rootfs
    assert default.sh("touch /probe")[0] == 0
    rc, _, err = ro.sh("touch /probe")
    assert rc != 0 and "Read-only" in err, err
    assert ro.sh("touch /dev/shm/probe-ro")[0] == 0
    assert "ro" in mountinfo_opts(ro.out("cat /proc/self/mountinfo"), "/")
    # default masked and read-only paths
    masked = host_masked_file()
    assert masked, "no default masked file exists on this host"
    assert default.sh("test -c %s" % masked)[0] == 0, masked
    assert default.out("cat %s | wc -c" % masked) == "0"
    mdir = next((d for d in ("/proc/acpi", "/proc/scsi", "/proc/asound", "/sys/firmware") if os.path.isdir(d)
                 and os.listdir(d)), None)
    assert mdir, "none of the default masked directories has entries on this host"
    assert default.out("ls -A %s | wc -l" % mdir) == "0", mdir
    mi = default.out("cat /proc/self/mountinfo")
    assert "ro" in mountinfo_opts(mi, "/proc/sys"), mi
    assert "ro" in mountinfo_opts(mi, "/sys"), mi
    # explicit lists
    assert custom.sh("test -c /proc/version")[0] == 0
    assert custom.out("cat /proc/version | wc -c") == "0"
    rc, _, err = custom.sh("touch /etc/probe")
    assert rc != 0 and "Read-only" in err, err
    assert custom.sh("touch /probe")[0] == 0


def test_no_new_privs_and_seccomp(ctx):
    p = ctx.pod()
    nnp = ctx.run(p, command=SLEEP, sc=sc_of(no_new_privs=True))
    default = ctx.run(p, command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.Unconfined))
    rd = ctx.run(p, command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.RuntimeDefault))
    assert nnp.proc1()["NoNewPrivs"] == "1"
    st = default.proc1()
    # Unconfined is unconfined where the node allows it: the launcher and
    # conmon then load no filter (test_confine_spawnd); RuntimeDefault is
    # its own, stacked on conmon's (what that profile may let through and
    # conmon's and runc's calls).
    assert (st["NoNewPrivs"], st["Seccomp"], st["Seccomp_filters"]) == ("0", "0", "0"), st
    st = rd.proc1()
    assert (st["Seccomp"], st["Seccomp_filters"]) == ("2", "2"), st


# ================================================================ the pod's namespaces and files

def test_pod_namespaces_sysctls_and_files(ctx):
    s = ctx.s
    hostname = "ns-host-" + tok(3)
    dns = {"servers": ["10.96.0.10", "10.96.0.11"], "searches": ["e2e.svc.cluster.local"],
           "options": ["ndots:5"]}
    sysctls = {"kernel.shm_rmid_forced": "1", "net.ipv4.ip_local_port_range": "40000 50000"}
    with open("/proc/sys/kernel/shm_rmid_forced") as f:
        host_shm = f.read()
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        host_range = f.read()
    p = ctx.pod(hostname=hostname, dns=dns, sysctls=sysctls)
    x = ctx.run(p, command=["sleep", "3601"])
    y = ctx.run(p, command=["sleep", "3602"])
    for c in (x, y):
        assert c.out("cat /proc/sys/kernel/shm_rmid_forced") == "1"
        assert c.out("cat /proc/sys/net/ipv4/ip_local_port_range").split() == ["40000", "50000"]
    with open("/proc/sys/kernel/shm_rmid_forced") as f:
        assert f.read() == host_shm
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert f.read() == host_range
    # Namespaces: net, ipc, uts of the pod (the pause's); pid, mnt their own.
    pause = list(p.pause)  # found at RunPodSandbox, before containers shared its namespaces
    assert len(pause) == 1, pause
    links = {c.id: dict(line.split(" ", 1) for line in c.out(
        "for k in net ipc uts pid mnt; do echo $k $(readlink /proc/self/ns/$k); done").splitlines()) for c in (x, y)}
    for kind in ("net", "ipc", "uts"):
        want = "%s:[%d]" % (kind, ns_inode(pause[0], kind))
        assert links[x.id][kind] == links[y.id][kind] == want, (kind, links, want)
    for kind in ("pid", "mnt"):
        assert links[x.id][kind] != links[y.id][kind], kind
    assert x.out("cat /proc/1/comm") == "sleep"  # pid CONTAINER: its own pid 1
    assert "sleep 3602" not in x.out("ps -o args 2>/dev/null || ps")
    for c in (x, y):
        assert re.search(r"inet %s/" % re.escape(p.ip), c.out("ip addr")), c.name
        assert c.out("hostname") == hostname and c.out("cat /etc/hostname") == hostname
    # /etc/hosts and /etc/resolv.conf from the pod.
    hosts = x.out("cat /etc/hosts")
    assert re.search(r"^127\.0\.0\.1\s+localhost", hosts, re.M), hosts
    assert re.search(r"^%s\s+%s\b" % (re.escape(p.ip), re.escape(hostname)), hosts, re.M), hosts
    host_file = os.path.join(s.state_dir, "criod", "pods", p.id, "hosts")
    with open(host_file) as f:
        assert f.read().strip() == hosts
    lines = [line.split() for line in x.out("cat /etc/resolv.conf").splitlines() if line.strip()
             and not line.startswith("#")]
    assert [w[1] for w in lines if w[0] == "nameserver"] == dns["servers"], lines
    assert [w[1:] for w in lines if w[0] == "search"] == [dns["searches"]], lines
    assert sorted(o for w in lines if w[0] == "options" for o in w[1:]) == dns["options"], lines
    # /dev/shm is the pod's tmpfs.
    token = tok()
    x.out("echo %s > /dev/shm/shared-%s" % (token, token))
    assert y.out("cat /dev/shm/shared-%s" % token) == token
    assert os.path.exists(os.path.join(shm_path(s, p.id), "shared-" + token))
    # A pod with a shared PID namespace: the pause is pid 1, containers see each other.
    q = ctx.pod(pid=pb.POD)
    z = ctx.run(q, command=["sleep", "3603"])
    w = ctx.run(q, command=["sleep", "3604"])
    qpause = list(q.pause)
    with open("/proc/%d/comm" % qpause[0]) as f:
        pause_comm = f.read().strip()
    assert z.out("cat /proc/1/comm") == pause_comm
    assert "sleep 3604" in z.out("ps -o args 2>/dev/null || ps") and "sleep 3603" in w.out("ps")
    assert ns_inode(z.pid(), "pid") == ns_inode(qpause[0], "pid") == ns_inode(w.pid(), "pid")


def test_pause_gives_nothing_of_the_host_away(ctx):
    """The escape of issue 13: in a pod with one PID namespace, a container
    with SYS_PTRACE (kubectl debug --profile=general) reaches the pause
    process, PID 1 there. Through it, nothing of the host: its root is an
    empty read-only directory of its own mount namespace, it holds no
    capability and no file, runs as 65534, is not dumpable, has
    no_new_privs and a seccomp filter."""
    q = ctx.pod(pid=pb.POD)
    dbg = ctx.run(q, command=SLEEP, sc=sc_of(add_caps=["SYS_PTRACE", "SYS_ADMIN"]))
    pause = list(q.pause)[0]
    st = host_status(pause)
    assert st["Uid"].split() == ["65534"] * 4 and st["Gid"].split() == ["65534"] * 4, st
    assert st["Groups"] == "", st
    for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert caps(st, k) == 0, (k, st[k])
    assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
    assert os.listdir("/proc/%d/root/" % pause) == []
    assert sorted(os.listdir("/proc/%d/fd" % pause)) == ["0", "1", "2"]
    for fd in ("0", "1", "2"):
        assert os.readlink("/proc/%d/fd/%s" % (pause, fd)) == "/dev/null"
    assert ns_inode(pause, "mnt") != ns_inode(os.getpid(), "mnt")
    # From the container: PID 1 is pause, and its root shows nothing.
    assert dbg.out("cat /proc/1/comm") == "pause"
    rc, out, err = dbg.sh("cat /proc/1/root/etc/shadow")
    assert rc != 0 and "root:" not in out, (rc, out, err)
    rc, out, err = dbg.sh("ls -A /proc/1/root/")
    assert (rc, out.strip()) == (0, ""), (rc, out, err)
    rc, out, err = dbg.sh("ls /proc/1/cwd/etc")
    assert rc != 0, (rc, out, err)
    # Its namespaces are still the pod's, and the pod works.
    assert ns_inode(dbg.pid(), "pid") == ns_inode(pause, "pid")
    assert ns_inode(dbg.pid(), "ipc") == ns_inode(pause, "ipc")
    assert dbg.out("echo alive") == "alive"
    # The pod's /dev/shm (a 1777 tmpfs) lies in a 0700 directory: no host
    # user but root reaches it.
    for d in (os.path.dirname(shm_path(ctx.s, q.id)), os.path.join(os.path.dirname(shm_path(ctx.s, q.id)), "ns")):
        assert os.stat(d).st_mode & 0o7777 == 0o700, (d, oct(os.stat(d).st_mode))
    assert os.stat(shm_path(ctx.s, q.id)).st_mode & 0o7777 == 0o1777
    assert dbg.out("stat -c %a /dev/shm") == "1777"


def test_stop_kills_every_process(ctx):
    """StopContainer leaves none of the container's processes: with its own
    PID namespace (its init's end ends the namespace) and in the pod's
    shared one (there every process of the container is signalled); the
    pod's other container lives on."""
    for mode in (pb.CONTAINER, pb.POD):
        p = ctx.pod(pid=mode)
        mark = str(3700 + mode)
        other = ctx.run(p, command=["sleep", "3699"])
        c = ctx.run(p, command=["sh", "-c", "sleep %s & sleep %s & wait" % (mark, mark)])

        def children():
            return pids_where(lambda a: a[:2] == [b"sleep", mark.encode()])
        assert wait_for(lambda: len(children()) == 2, 5), children()
        for timeout in (0, 2):  # SIGKILL at once, or after the stop signal's grace
            if timeout:
                c = ctx.run(p, command=["sh", "-c", "trap '' TERM; sleep %s & sleep %s & wait" % (mark, mark)])
                assert wait_for(lambda: len(children()) == 2, 5), children()
            ctx.stop(c.id, timeout)
            st = c.status().status
            assert st.state == pb.CONTAINER_EXITED and st.exit_code == 137, (mode, timeout, st)
            assert wait_for(lambda: not children(), 5), (mode, timeout, children())
        assert other.status().status.state == pb.CONTAINER_RUNNING
        assert other.out("echo alive") == "alive"


def test_target_pid_namespace(ctx):
    """kubectl debug --target: a container joins another container's PID
    namespace (namespace mode TARGET); a target outside the pod is refused."""
    p = ctx.pod()
    target = ctx.run(p, command=["sleep", "3605"])
    cfg = ctx.config(command=["sleep", "3606"])
    opts = cfg.linux.security_context.namespace_options
    opts.CopyFrom(p.cfg.linux.security_context.namespace_options)
    opts.pid = pb.TARGET
    opts.target_id = target.id
    dbg = ctx.start(ctx.create_cfg(p, cfg))
    assert ns_inode(dbg.pid(), "pid") == ns_inode(target.pid(), "pid")
    assert "sleep 3605" in dbg.out("ps")
    bad = ctx.config(command=["sleep", "1"])
    bopts = bad.linux.security_context.namespace_options
    bopts.CopyFrom(p.cfg.linux.security_context.namespace_options)
    bopts.pid = pb.TARGET
    bopts.target_id = "0" * 64
    with pytest.raises(grpc.RpcError) as e:
        ctx.create_cfg(p, bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "target_id" in e.value.details()


# ================================================================ mounts

def test_mounts(ctx):
    s = ctx.s
    p = ctx.pod()
    rw_dir = tempfile.mkdtemp(dir=s.base, prefix="vol-rw-")
    ro_dir = tempfile.mkdtemp(dir=s.base, prefix="vol-ro-")
    hfile = os.path.join(s.base, "vol-file-" + tok(3))
    for d in (rw_dir, ro_dir):
        with open(os.path.join(d, "from-host"), "w") as f:
            f.write("host-data\n")
    with open(hfile, "w") as f:
        f.write("key=value\n")
    ms = [pb.Mount(container_path="/data", host_path=rw_dir, propagation=pb.PROPAGATION_PRIVATE),
          pb.Mount(container_path="/data-ro", host_path=ro_dir, readonly=True),
          pb.Mount(container_path="/etc/extra.conf", host_path=hfile, readonly=True)]
    c = ctx.run(p, command=SLEEP, mounts=ms)
    assert c.out("cat /data/from-host") == "host-data"
    c.out("echo from-ctr > /data/from-ctr")
    with open(os.path.join(rw_dir, "from-ctr")) as f:
        assert f.read() == "from-ctr\n"
    with open(os.path.join(rw_dir, "late"), "w") as f:
        f.write("late\n")
    assert c.out("cat /data/late") == "late"
    assert c.out("cat /data-ro/from-host") == "host-data"
    rc, _, err = c.sh("touch /data-ro/x")
    assert rc != 0 and "Read-only" in err, err
    assert not os.path.exists(os.path.join(ro_dir, "x"))
    assert c.out("cat /etc/extra.conf") == "key=value"
    assert c.sh("echo x >> /etc/extra.conf")[0] != 0
    got = {(m.container_path, m.host_path, m.readonly) for m in c.status().status.mounts}
    assert got == {("/data", rw_dir, False), ("/data-ro", ro_dir, True), ("/etc/extra.conf", hfile, True)}, got
    # A relative container path is refused, naming the field.
    before = {i.id for i in ctx.list(pod=p.id)}
    err = rpc_error(ctx.create, p, command=SLEEP, mounts=[pb.Mount(container_path="data", host_path=rw_dir)])
    assert err.code() == INVALID and "container_path" in err.details(), err
    assert {i.id for i in ctx.list(pod=p.id)} == before


# ================================================================ resources

def test_resources_and_update(ctx):
    p = ctx.pod()
    res = {"cpu_shares": 512, "cpu_quota": 50000, "cpu_period": 100000, "memory_limit_in_bytes": 64 * MiB,
           "oom_score_adj": 500}
    c = ctx.run(p, command=SLEEP, resources=res)
    pid = c.pid()
    v1 = cgroup_v1()
    got = cg_values(pid)
    if v1:
        assert got == {"shares": 512, "quota": 50000, "period": 100000, "memory": 64 * MiB}, got
        assert int(c.out("cat /sys/fs/cgroup/memory/memory.limit_in_bytes")) == 64 * MiB
    else:
        # runc's shares to weight: 1 + (512 - 2) * 9999 / 262142
        assert got == {"weight": 20, "quota": 50000, "period": 100000, "memory": 64 * MiB}, got
    assert c.out("cat /proc/1/oom_score_adj") == "500"
    r = c.status().status.resources.linux
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit_in_bytes) == (512, 50000, 100000, 64 * MiB), r
    # Update memory and quota.
    new = pb.LinuxContainerResources(cpu_shares=512, cpu_quota=20000, cpu_period=100000,
                                     memory_limit_in_bytes=128 * MiB)
    ctx.cri.runtime("UpdateContainerResources", pb.UpdateContainerResourcesRequest(container_id=c.id, linux=new),
                    timeout=RPC)
    got = cg_values(pid)
    assert (got["quota"], got["period"], got["memory"]) == (20000, 100000, 128 * MiB), got
    if v1:
        assert got["shares"] == 512
        assert int(c.out("cat /sys/fs/cgroup/memory/memory.limit_in_bytes")) == 128 * MiB
    else:
        assert got["weight"] == 20, got
    r = c.status().status.resources.linux
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit_in_bytes) == (512, 20000, 100000, 128 * MiB), r
    assert c.status().status.state == pb.CONTAINER_RUNNING
    err = rpc_error(ctx.cri.runtime, "UpdateContainerResources",
                    pb.UpdateContainerResourcesRequest(container_id=tok(32), linux=new))
    assert err.code() == NOT_FOUND, err
    # An update is checked by the rules the spec builder applies at create
    # (one validator): refused naming the field, the cgroup left as it was.
    bad = [(pb.LinuxContainerResources(hugepage_limits=[pb.HugepageLimit(page_size="2MB", limit=2 * MiB),
                                                        pb.HugepageLimit(page_size="2MB", limit=4 * MiB)]),
            "linux.hugepage_limits[1].page_size: 2MB given twice"),
           (pb.LinuxContainerResources(cpu_quota=999), "linux.cpu_quota: 999 is invalid"),
           (pb.LinuxContainerResources(cpuset_cpus="0-1;"), "linux.cpuset_cpus: invalid CPU list")]
    if v1:
        bad.append((pb.LinuxContainerResources(unified={"memory.high": "1G"}),
                    "linux.unified: cgroup v2 settings, but this host uses cgroup v1"))
    for linux, msg in bad:
        err = rpc_error(ctx.cri.runtime, "UpdateContainerResources",
                        pb.UpdateContainerResourcesRequest(container_id=c.id, linux=linux), timeout=RPC)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and msg in err.details(), (msg, err)
    assert cg_values(pid) == got, cg_values(pid)


def test_runtime_errors_at_start(ctx):
    """The OCI runtime makes a container when it starts (one `runc run`, as
    containerd also runs it only at start): what only the runtime can find
    wrong, like a missing executable, fails StartContainer with the
    runtime's message; the container stays CREATED and is removed cleanly.
    Resources cannot be updated before the runtime has made its cgroup."""
    s = ctx.s
    p = ctx.pod()
    c = ctx.create(p, command=["/no/such/binary"])
    assert c.status().status.state == pb.CONTAINER_CREATED
    assert runc_state(s, c.id) is None
    err = rpc_error(ctx.cri.runtime, "UpdateContainerResources", pb.UpdateContainerResourcesRequest(
        container_id=c.id, linux=pb.LinuxContainerResources(cpu_shares=256)), timeout=RPC)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "not started" in err.details(), err
    err = rpc_error(ctx.cri.runtime, "StartContainer", pb.StartContainerRequest(container_id=c.id), timeout=RPC)
    assert err.code() != OK and "/no/such/binary" in err.details(), err
    assert c.status().status.state == pb.CONTAINER_CREATED
    assert runc_state(s, c.id) is None
    conmons = conmon_pids(c.id)
    assert len(conmons) == 1, conmons
    fds = len(os.listdir("/proc/%d/fd" % conmons[0]))
    # A retry fails the same way and leaves the monitor as it was.
    err = rpc_error(ctx.cri.runtime, "StartContainer", pb.StartContainerRequest(container_id=c.id), timeout=RPC)
    assert err.code() != OK and "/no/such/binary" in err.details(), err
    assert len(os.listdir("/proc/%d/fd" % conmons[0])) == fds
    ctx.remove(c.id)
    assert rpc_error(c.status).code() == NOT_FOUND
    assert wait_for(lambda: not any(pid_alive(x) for x in conmons), 5)
    assert not files_mentioning(s.run_dir, [re.compile(c.id)], contents=False)
    assert not [m for m in mounts_under(s.base) if c.id in m[0]]
    ok = ctx.run(p, command=SLEEP)
    assert ok.out("echo ok") == "ok"
    # Stopping a container never started ends it (EXITED, 128+SIGKILL);
    # it cannot be started afterwards, and its pod stops and goes.
    q = ctx.pod()
    never = ctx.create(q, command=SLEEP)
    ctx.stop(never.id, 0)
    st = never.status().status
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 137, st
    err = rpc_error(ctx.cri.runtime, "StartContainer", pb.StartContainerRequest(container_id=never.id), timeout=RPC)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
    also = ctx.create(q, command=SLEEP)
    stop_pod(ctx.cri, q.id)
    assert also.status().status.state == pb.CONTAINER_EXITED
    remove_pod(ctx.cri, q.id)
    assert rpc_error(never.status).code() == NOT_FOUND


# ================================================================ invalid configs

def test_invalid_configs(ctx):
    s = ctx.s
    p = ctx.pod()
    runc_before = {x["id"] for x in runc_list(runc_root(s))}

    def refused(cfg, *words, code=INVALID):
        err = rpc_error(ctx.cri.runtime, "CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=p.id, config=with_pod_namespaces(p, cfg), sandbox_config=p.cfg), timeout=RPC)
        assert err.code() == code, (words, err.code(), err.details())
        for w in words:
            assert w in err.details(), (w, err.details())

    err = rpc_error(ctx.cri.runtime, "CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=p.id,
                                                                                  sandbox_config=p.cfg))
    assert err.code() == INVALID and "config" in err.details(), err
    cfg = ctx.config(command=SLEEP)
    cfg.ClearField("metadata")
    refused(cfg, "metadata")
    cfg = ctx.config(command=SLEEP)
    cfg.metadata.name = ""
    refused(cfg, "name")
    cfg = ctx.config(command=SLEEP)
    cfg.ClearField("image")
    refused(cfg, "image")
    cfg = ctx.config(command=SLEEP)
    cfg.image.image = ""
    refused(cfg, "image")
    refused(ctx.config(command=SLEEP, sc=sc_of(add_caps=["CAP_NOT_A_THING"])), "capabilit", "CAP_NOT_A_THING")
    refused(ctx.config(command=SLEEP, sc=sc_of(drop_caps=["BOGUS_CAP"])), "capabilit", "BOGUS_CAP")
    # A Localhost profile outside [policy] seccomp_profile_roots (this suite
    # keeps the default): spawnd refuses to open it (more in test_seccomp.py).
    missing = os.path.join(s.base, "no-such-profile-%s.json" % tok(3))
    refused(ctx.config(command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.Localhost, seccomp_ref=missing)),
            "seccomp.localhost_ref", "[policy] seccomp_profile_roots", code=grpc.StatusCode.PERMISSION_DENIED)
    refused(ctx.config(command=SLEEP, sc=sc_of(run_as_username="no-such-user")), "run_as_username")
    refused(ctx.config(command=SLEEP, sc=sc_of(privileged=True)), "privileged")
    # Nothing was made for any of them, and criod still works.
    assert ctx.list(pod=p.id) == []
    assert {x["id"] for x in runc_list(runc_root(s))} <= runc_before
    c = ctx.run(p, command=SLEEP)
    assert c.out("echo ok") == "ok"


# ================================================================ removal

def test_remove_pod_with_containers_and_remove_idempotent(ctx):
    s = ctx.s
    p = ctx.pod()
    running = [ctx.run(p, command=SLEEP) for _ in range(2)]
    created = ctx.create(p, command=SLEEP)
    exited = ctx.run(p, command=["true"])
    ctx.wait_exited(exited)
    everything = running + [created, exited]
    pids = [c.pid() for c in running]
    conmons = [x for c in everything for x in conmon_pids(c.id)]
    assert all(conmon_pids(c.id) for c in running), "no conmon found by --id"
    remove_pod(ctx.cri, p.id)
    assert ctx.list(pod=p.id) == []
    for c in everything:
        assert ctx.list(id=c.id) == []
        assert rpc_error(c.status).code() == NOT_FOUND
    assert wait_for(lambda: not any(pid_alive(x) for x in pids + conmons), 5), "processes left"
    known = {x["id"] for x in runc_list(runc_root(s))}
    assert not known & {c.id for c in everything}, known
    for c in everything:
        assert not [m for m in mounts_under(s.base) if c.id in m[0]], c.id
        assert not files_mentioning(s.run_dir, [re.compile(c.id)], contents=False), c.id
        assert not files_mentioning(s.state_dir, [re.compile(c.id)], contents=False), c.id
        for root in cgroup_roots():
            assert not [d for d, _, _ in os.walk(root + s.cgroup_parent) if c.id in d], c.id
    # RemoveContainer: a running one is killed and removed; again and unknown: OK.
    q = ctx.pod()
    c = ctx.run(q, command=SLEEP)
    pid = c.pid()
    ctx.remove(c.id)
    assert wait_for(lambda: not pid_alive(pid), 5)
    assert rpc_error(c.status).code() == NOT_FOUND
    # the kill's exit starts conmon's delete, which may still run when
    # RemoveContainer answers (spawnd finishes once conmon is gone)
    assert wait_runc_gone(s, c.id, 5), runc_state(s, c.id)
    ctx.remove(c.id)
    ctx.remove(tok(32))
    ctx.stop(c.id, 0)  # a removed container is an unknown one


def wait_runc_gone(s, cid, timeout=15):
    """runc's state of cid is gone (conmon deletes it once the exit is
    recorded): polled until `runc state` fails, within timeout seconds."""
    return wait_for(lambda: runc_state(s, cid) is None, timeout, 0.05)


def conmon_log_of(s, cid):
    with open(os.path.join(s.state_dir, "spawnd", "containers", cid, "conmon.log"), errors="replace") as f:
        return f.read()


def assert_nothing_left(s, c, pids):
    assert rpc_error(c.status).code() == NOT_FOUND
    assert wait_for(lambda: not any(pid_alive(x) for x in pids), 5), "processes left"
    assert runc_state(s, c.id) is None
    assert not [m for m in mounts_under(s.base) if c.id in m[0]]
    # spawnd finishes a removal answered before conmon was gone once it is
    assert wait_for(lambda: not files_mentioning(s.run_dir, [re.compile(c.id)], contents=False), 5), \
        files_mentioning(s.run_dir, [re.compile(c.id)], contents=False)
    assert wait_for(lambda: not files_mentioning(s.state_dir, [re.compile(c.id)], contents=False), 5), \
        files_mentioning(s.state_dir, [re.compile(c.id)], contents=False)
    for root in cgroup_roots():
        assert not [d for d, _, _ in os.walk(root + s.cgroup_parent) if c.id in d], c.id


def test_runtime_state_goes_at_the_exit(ctx):
    """Once a container's exit is recorded conmon deletes the runtime's
    container itself (as containerd does when a task exits), so
    RemoveContainer runs no `runc delete`: after StopContainer runc's state
    goes while ContainerStatus keeps reporting EXITED with the exit code and
    reason; every request on the exited container keeps its documented
    status; RemoveContainer then leaves nothing. A running container's
    RemoveContainer still kills and removes it."""
    s = ctx.s
    p = ctx.pod()
    for stop_it, code, reason in ((True, 137, "Error"), (False, 3, "Error")):
        c = ctx.run(p, command=SLEEP if stop_it else ["sh", "-c", "sleep 0.2; exit 3"])
        pid = c.pid()
        conmons = conmon_pids(c.id)
        if stop_it:
            ctx.stop(c.id, 0)
        else:
            ctx.wait_exited(c)
        assert wait_runc_gone(s, c.id), runc_state(s, c.id)
        # runc removes its state before it exits, and conmon logs once it has reaped it
        assert wait_for(lambda: 'msg="runtime state removed after the exit" id=%s' % c.id in conmon_log_of(s, c.id),
                        5), conmon_log_of(s, c.id)[-2000:]
        st = c.status().status
        assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, code, reason), st
        assert st.finished_at >= st.started_at > 0
        assert [i.id for i in ctx.list(id=c.id, state=pb.CONTAINER_EXITED)] == [c.id]
        # The requests an exited container gets answer as before.
        ctx.stop(c.id, 0)  # again: nothing to stop, OK
        ctx.stop(c.id, 5)
        err = rpc_error(c.exec, ["true"])
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
        err = rpc_error(ctx.cri.runtime, "UpdateContainerResources", pb.UpdateContainerResourcesRequest(
            container_id=c.id, linux=pb.LinuxContainerResources(cpu_shares=256)), timeout=RPC)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "exited" in err.details(), err
        err = rpc_error(ctx.cri.runtime, "ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=c.id))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "not running" in err.details(), err
        for method, req in (("Exec", pb.ExecRequest(container_id=c.id, cmd=["true"], stdout=True)),
                            ("Attach", pb.AttachRequest(container_id=c.id, stdout=True))):
            err = rpc_error(ctx.cri.runtime, method, req)
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, (method, err)
        err = rpc_error(ctx.cri.runtime, "StartContainer", pb.StartContainerRequest(container_id=c.id), timeout=RPC)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
        # Its cgroup went with the runtime's container: stats still answer.
        cs = ctx.cri.runtime("ContainerStats", pb.ContainerStatsRequest(container_id=c.id)).stats
        assert cs.attributes.id == c.id, cs
        assert c.status().status == st
        ctx.remove(c.id)
        assert_nothing_left(s, c, [pid] + conmons)
    # RemoveContainer of a running container: killed, deleted, nothing left.
    c = ctx.run(p, command=SLEEP)
    pid, conmons = c.pid(), conmon_pids(c.id)
    ctx.remove(c.id)
    assert_nothing_left(s, c, [pid] + conmons)


RUNTIME_WRAPPER = """#!/bin/sh
# runc, but the delete conmon runs at a container's exit is slow while
# %(dir)s/slow exists and fails once per %(dir)s/fail; once per
# %(dir)s/lose a delete deletes and then fails as one that lost a race
# with another delete does.
if [ "$3" = delete ]; then
    if [ -e %(dir)s/slow ]; then sleep 2; fi
    if [ -e %(dir)s/fail ]; then
        rm -f %(dir)s/fail
        echo 'time="2026-01-01T00:00:00Z" level=error msg="injected delete failure"' >&2
        exit 1
    fi
    if [ -e %(dir)s/lose ]; then
        rm -f %(dir)s/lose
        /usr/sbin/runc "$@" >/dev/null 2>&1
        echo 'time="2026-01-01T00:00:00Z" level=error msg="container does not exist"' >&2
        exit 1
    fi
fi
exec /usr/sbin/runc "$@"
"""


@contextlib.contextmanager
def wrapper_runtime():
    """A directory with RUNTIME_WRAPPER as its runc (files in the directory
    switch its modes) and the config naming it: (dir, runc, extra config)."""
    wdir = tempfile.mkdtemp(prefix="criod-e2e-rt-")
    try:
        os.chmod(wdir, 0o755)
        wrapper = os.path.join(wdir, "runc")
        with open(wrapper, "w") as f:
            f.write(RUNTIME_WRAPPER % {"dir": wdir})
        os.chmod(wrapper, 0o755)
        yield wdir, wrapper, "[runtime.runc]\npath = %s\n" % wrapper
    finally:
        shutil.rmtree(wdir, ignore_errors=True)


def test_remove_while_the_exit_delete_runs_or_after_it_failed(test_user, registries, ctr_images):  # noqa: F811
    """RemoveContainer while conmon's delete at the exit still runs: it
    answers, and conmon exits only once that delete has ended, so nothing
    is left and no runc runs on alone. After that delete failed, Delete
    runs it again and succeeds."""
    with wrapper_runtime() as (wdir, wrapper, extra):
        with started_suite(registries, ctr_images, extra=extra) as s, ctx_of(s, ctr_images) as cx:
            p = cx.pod()
            # slow: Remove comes while the delete at the exit runs
            c = cx.run(p, command=SLEEP)
            pid, conmons = c.pid(), conmon_pids(c.id)
            open(os.path.join(wdir, "slow"), "w").close()
            cx.stop(c.id, 0)
            assert runc_state(s, c.id) is not None  # still being deleted
            cx.remove(c.id)
            os.unlink(os.path.join(wdir, "slow"))
            assert_nothing_left(s, c, [pid] + conmons)
            assert not pids_mentioning(wrapper) and not pids_mentioning(c.id)
            # fail: the delete at the exit fails, Delete's retry succeeds
            c = cx.run(p, command=SLEEP)
            pid, conmons = c.pid(), conmon_pids(c.id)
            open(os.path.join(wdir, "fail"), "w").close()
            cx.stop(c.id, 0)
            assert wait_for(lambda: "runtime delete after the exit failed" in conmon_log_of(s, c.id), 15)
            assert "injected delete failure" in conmon_log_of(s, c.id)
            assert runc_state(s, c.id) is not None
            assert c.status().status.state == pb.CONTAINER_EXITED
            cx.remove(c.id)
            assert_nothing_left(s, c, [pid] + conmons)
            # conmon SIGKILLed while its delete at the exit runs: the exit
            # is in state.pb already, and RemoveContainer (spawnd deletes
            # what the runtime still has) leaves nothing.
            c = cx.run(p, command=SLEEP)
            pid, conmons = c.pid(), conmon_pids(c.id)
            open(os.path.join(wdir, "slow"), "w").close()
            cx.stop(c.id, 0)
            assert wait_for(lambda: pids_mentioning(wrapper), 5)
            os.kill(conmons[0], signal.SIGKILL)
            assert wait_for(lambda: not pid_alive(conmons[0]), 5)
            os.unlink(os.path.join(wdir, "slow"))
            st = c.status().status
            assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 137), st
            cx.remove(c.id)
            assert_nothing_left(s, c, [pid] + conmons)
            assert wait_for(lambda: not pids_mentioning(c.id), 5), pids_mentioning(c.id)
            assert runc_state(s, c.id) is None


def record_state(s, cid):
    """The state spawnd's record of cid says, or None without one."""
    try:
        with open(os.path.join(s.state_dir, "spawnd", "containers", cid, "spawnd.json")) as f:
            return json.load(f).get("state")
    except FileNotFoundError:
        return None


def stop_and_remove_while_conmon_deletes(s, cx, p, slow):
    """A running container, stopped and removed while conmon's delete at
    the exit runs (slow): RemoveContainer answers at once, conmon still
    runs, spawnd's record says "removing"."""
    c = cx.run(p, command=SLEEP)
    pids = [c.pid()] + conmon_pids(c.id)
    open(slow, "w").close()
    cx.stop(c.id, 0)
    t0 = time.monotonic()
    cx.remove(c.id)
    took = time.monotonic() - t0
    assert took < 1.0, took  # the delete takes 2 s
    assert pid_alive(pids[1]), "conmon gone already"
    assert record_state(s, c.id) == "removing"
    assert rpc_error(c.status).code() == NOT_FOUND
    return c, pids


def test_remove_answers_before_conmon_is_gone(test_user, registries, ctr_images):  # noqa: F811
    """RemoveContainer right after StopContainer, while conmon's delete at
    the exit still runs: spawnd marks its record "removing" and answers at
    once, and removes the rest (bundle, state directory, record) once
    conmon has exited. A spawnd SIGKILLed meanwhile finishes the removal at
    its next start. StopPodSandbox and RemovePodSandbox while one is
    pending succeed (the teardown waits for it) and leave nothing."""
    with wrapper_runtime() as (wdir, wrapper, extra):
        slow = os.path.join(wdir, "slow")
        with started_suite(registries, ctr_images, extra=extra) as s, ctx_of(s, ctr_images) as cx:
            p = cx.pod()
            # answered at once; the rest once conmon exits
            c, pids = stop_and_remove_while_conmon_deletes(s, cx, p, slow)
            cx.remove(c.id)  # again: OK
            os.unlink(slow)
            assert_nothing_left(s, c, pids)
            assert wait_for(lambda: not pids_mentioning(wrapper), 5), pids_mentioning(wrapper)
            assert s.log_has("spawnd", 'msg="container removed (after conmon exited)" id=%s' % c.id)
            # spawnd SIGKILLed while the removal is pending: its next start
            # waits for conmon and finishes it
            c, pids = stop_and_remove_while_conmon_deletes(s, cx, p, slow)
            s.stop("spawnd", signal.SIGKILL, check=False)
            s.start("spawnd")
            os.unlink(slow)
            assert s.log_has("spawnd", 'msg="finished removing a container" id=%s' % c.id)
            assert record_state(s, c.id) is None
            assert_nothing_left(s, c, pids)
            assert wait_for(lambda: not pids_mentioning(c.id), 5), pids_mentioning(c.id)
            # the pod stopped and removed while a removal is pending: its
            # teardown waits for it, nothing is left
            c, pids = stop_and_remove_while_conmon_deletes(s, cx, p, slow)
            stop_pod(cx.cri, p.id)
            remove_pod(cx.cri, p.id)
            assert not any(pid_alive(x) for x in pids), "RemovePodSandbox did not wait for conmon"
            os.unlink(slow)
            assert record_state(s, c.id) is None
            assert_nothing_left(s, c, pids)
            assert not pod_cgroup_dirs(s, p.id)
            assert wait_for(lambda: not pids_mentioning(c.id), 5), pids_mentioning(c.id)
            # conmon SIGKILLed in its delete at the exit, whose runc then
            # wins the race with spawnd's: spawnd's delete fails, the
            # runtime's state is gone all the same, RemoveContainer is OK
            p = cx.pod()
            c = cx.run(p, command=SLEEP)
            pids = [c.pid()] + conmon_pids(c.id)
            open(slow, "w").close()
            cx.stop(c.id, 0)
            assert wait_for(lambda: pids_mentioning(wrapper), 5)
            os.kill(pids[1], signal.SIGKILL)
            assert wait_for(lambda: not pid_alive(pids[1]), 5)
            os.unlink(slow)
            open(os.path.join(wdir, "lose"), "w").close()
            cx.remove(c.id)
            assert s.log_has("spawnd", 'msg="the runtime\'s state went while its delete failed" id=%s' % c.id)
            assert_nothing_left(s, c, pids)
            assert wait_for(lambda: not pids_mentioning(wrapper), 5), pids_mentioning(wrapper)


# ================================================================ restarts and crashes

def test_criod_restart_keeps_containers(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        a = cx.run(p, command=SLEEP, labels={"k": "a"})
        b = cx.run(p, command=["sh", "-c", "exit 3"])
        c = cx.create(p, command=SLEEP)
        cx.wait_exited(b)
        pid = a.pid()
        before = {x.id: x.status().status for x in (a, b, c)}
        listed = sorted(i.SerializeToString(deterministic=True) for i in cx.list(pod=p.id))
        s.restart("criod")
        cx.reconnect()
        for x in (a, b, c):
            assert x.status().status == before[x.id], x.name
        assert sorted(i.SerializeToString(deterministic=True) for i in cx.list(pod=p.id)) == listed
        assert a.out("echo alive") == "alive" and a.pid() == pid
        cx.start(c)
        assert c.status().status.state == pb.CONTAINER_RUNNING
        cx.stop(a.id, 0)
        assert a.status().status.exit_code == 137
        for x in (a, b, c):
            cx.remove(x.id)
            assert wait_runc_gone(s, x.id, 5), runc_state(s, x.id)
        d = cx.run(p, command=SLEEP)
        assert d.out("echo new") == "new"


def test_spawnd_restart_keeps_containers(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        a = cx.run(p, command=SLEEP)
        pid = a.pid()
        conmon = conmon_pids(a.id)
        s.restart("spawnd")
        assert pid_alive(pid) and a.pid() == pid
        assert conmon_pids(a.id) == conmon  # conmon outlives spawnd
        assert a.status().status.state == pb.CONTAINER_RUNNING
        assert a.out("echo alive") == "alive"
        b = cx.run(p, command=SLEEP)  # spawnd answers again
        assert b.out("echo b") == "b"
        cx.stop(a.id, 0)
        st = a.status().status
        assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 137)
        assert wait_for(lambda: not pid_alive(pid), 5)
        cx.remove(a.id)
        assert wait_runc_gone(s, a.id, 5) and rpc_error(a.status).code() == NOT_FOUND


def test_conmon_killed(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        a = cx.run(p, command=SLEEP)
        other = cx.run(p, command=SLEEP)
        pid = a.pid()
        conmon = conmon_pids(a.id)
        assert len(conmon) == 1, conmon
        os.kill(conmon[0], signal.SIGKILL)
        assert wait_for(lambda: not pid_alive(conmon[0]), 5)
        seen = []

        def lost_monitor():
            try:
                st = a.status().status
            except grpc.RpcError as e:
                seen.append(e.code())
                return False
            seen.append(st.state)
            return st.state in (pb.CONTAINER_EXITED, pb.CONTAINER_UNKNOWN)
        assert wait_for(lost_monitor, 10, 0.2), seen
        assert NOT_FOUND not in seen, seen  # the container is never lost
        assert a.id in {i.id for i in cx.list(pod=p.id)}
        # kubelet stops a container it cannot account for, then removes it.
        cx.stop(a.id, 0)
        cx.remove(a.id)
        assert wait_for(lambda: not pid_alive(pid), 5), "the container's process survived Stop and Remove"
        assert rpc_error(a.status).code() == NOT_FOUND
        assert wait_runc_gone(s, a.id, 5), runc_state(s, a.id)
        assert a.id not in {i.id for i in cx.list()}
        # The other container of the pod is untouched.
        assert other.status().status.state == pb.CONTAINER_RUNNING and other.out("echo ok") == "ok"
