"""The node policy spawnd enforces on container specs (issue 13): every field
of the OCI spec criod sends is on an allowlist, and what it may say is
bounded by [policy] in spawnd's own configuration (conmon/spawnd_policy.h).

The suite of this module runs with packaging/criod.conf.d/hardened.conf,
its host path prefixes moved to directories of the suite (<base>/allowed
read-write, <base>/ro read-only) and CAP_NET_ADMIN added to the allowed
capabilities.

Behaviour asserted:
  through criod  an ordinary container (RuntimeDefault seccomp, its pod's
           namespaces, an allowed capability, host paths beneath the
           prefixes, an allowed sysctl) runs; a privileged container, a host
           path outside the prefixes, one reached through a symlink, a
           read-write mount of a read-only prefix, Bidirectional
           propagation, a capability outside the list, host network and host
           PID, no seccomp, a host device, a sysctl outside the list: each
           PERMISSION_DENIED naming the rule, logged by spawnd with the rule,
           and nothing left (no container, no bundle under
           <run_dir>/containers, no spawnd state, no conmon). A privileged,
           host network, host PID or host IPC pod: PERMISSION_DENIED by
           spawnd naming the key, and what netd made undone by criod.
  spawnd   a raw client with criod's uid on spawnd's socket (a hostile front
           end) sends CreateContainer with the spec criod built for a real
           container, mutated: host bind mounts outside the policy (/, /etc,
           /root, through a tmpfs with rbind), privileged parts (every
           device, rw sysfs, nothing masked, rshared), capabilities outside
           the list or unknown, hooks, unknown fields at every level, wrong
           types, mount types and places criod never uses, namespace paths
           of another pod or the host, no network namespace, cgroupsPath
           outside the pod's cgroup, another container's rootfs, another
           pod's id, host devices (/dev/sda, /dev/mem) in linux.devices and
           the device cgroup, non-namespaced sysctls (kernel.core_pattern,
           kernel/core_pattern), no seccomp or an allow-all filter. Each is
           refused with the documented status (PERMISSION_DENIED naming the
           rule, or INVALID_ARGUMENT naming the field), logged with its
           request id, and nothing is made; the same spec with only the ids
           changed passes every check (FAILED_PRECONDITION: no rootfs).
  spawnd   CreatePodInfra from the hostile front end with host network,
           IPC or PID, or privileged: PERMISSION_DENIED, nothing made.
  record   with the default policy, a container's host namespaces and
           privileged parts rest on spawnd's record of its pod: refused in
           an ordinary pod ("the pod's host namespaces", "privileged pod"),
           passed in pods made so.
  update   UpdateContainerResources straight to conmon: unknown fields,
           cgroup.* files, device rules outside the policy, every device for
           an unprivileged container: refused, logged, nothing applied.
  target   a TARGET PID namespace is pinned at create (<bundle>/pidns, the
           path the runtime reads); a target gone before Start fails Start
           (INTERNAL), a host process or a non-init is refused at create.
  defaults the default policy keeps what kubelet may ask for (the rest of
           the e2e suite and critest run with it; test_containers.py covers
           privileged, host paths, capabilities, devices and sysctls).
"""
import copy
import importlib
import json
import os
import re
import secrets
import struct
import subprocess
import sys

import grpc
import pytest

import conftest
from conftest import envelope_pb2
from conftest import api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_containers import (RPC, SLEEP, cgroup_v1, ctr_images, ctx_of, ns_inode, pids_mentioning, sc_of,  # noqa: F401
                             started_suite, with_pod_namespaces)
from test_pods import (bridge_ports, list_pods, mount_at, mounts_under, pause_pids, pod_cgroup_dirs, rpc_error,
                       wait_for)
from test_seccomp import HOSTILE_SCRIPT, spawnd_pb2


def _conmon_pb2():
    subprocess.run(["protoc", "--proto_path=" + os.path.join(conftest.ROOT, "proto"),
                    "--python_out=" + conftest._PB_DIR, "internal/conmon.proto"], check=True)
    importlib.invalidate_caches()
    return importlib.import_module("internal.conmon_pb2")


conmon_pb2 = _conmon_pb2()

SPAWND_CREATE_POD_INFRA = 2  # common/api.h
SPAWND_CREATE_CONTAINER = 5
DENIED = grpc.StatusCode.PERMISSION_DENIED
HARDENED = os.path.join(conftest.ROOT, "packaging", "criod.conf.d", "hardened.conf")
RUNTIME_DEFAULT = sc_of(seccomp=pb.SecurityProfile.RuntimeDefault)


def hardened_sc(**kw):
    return sc_of(seccomp=pb.SecurityProfile.RuntimeDefault, **kw)


@pytest.fixture(scope="module")
def hsuite(test_user, registries, ctr_images):  # noqa: F811
    with open(HARDENED) as f:
        hardened = f.read()

    def configure(s):
        # the suite's own directories stand for kubelet's
        s.allowed = os.path.join(s.base, "allowed")
        s.ro = os.path.join(s.base, "ro")
        s.outside = os.path.join(s.base, "outside")
        for d in (s.allowed, s.ro, s.outside):
            os.makedirs(d)
            with open(os.path.join(d, "f"), "w") as f:
                f.write(os.path.basename(d) + "\n")
        os.symlink(s.outside, os.path.join(s.allowed, "link-out"))
        with open(s.config, "a") as f:
            f.write(hardened + "\n[policy]\nhost_path_prefixes = %s\nhost_path_readonly_prefixes = %s\n"
                    "allowed_capabilities = CAP_NET_ADMIN\n" % (s.allowed, s.ro))

    with started_suite(registries, ctr_images, configure=configure) as s:
        yield s


@pytest.fixture
def ctx(hsuite, ctr_images):  # noqa: F811
    with ctx_of(hsuite, ctr_images) as c:
        yield c


def made(s):
    """What spawnd made for containers: bundles and state directories."""
    out = set()
    for d in (os.path.join(s.run_dir, "containers"), os.path.join(s.state_dir, "spawnd", "containers")):
        if os.path.isdir(d):
            out |= set(os.listdir(d))
    return out


def bind(src, dst, ro=False, prop=pb.PROPAGATION_PRIVATE):
    return pb.Mount(container_path=dst, host_path=src, readonly=ro, propagation=prop)


# ================================================================ through criod

def test_hardened_policy_allows_an_ordinary_container(ctx):
    s = ctx.s
    p = ctx.pod(sysctls={"net.ipv4.ip_local_port_range": "20000 30000"})
    c = ctx.run(p, command=SLEEP, sc=hardened_sc(add_caps=["NET_ADMIN"]),
                mounts=[bind(s.allowed, "/a"), bind(s.ro, "/r", ro=True)])
    assert c.out("cat /a/f /r/f") == "allowed\nro"
    c.out("echo x > /a/new")
    assert c.sh("touch /r/new")[0] != 0
    assert c.proc1()["Seccomp"] == "2"
    assert c.out("cat /proc/sys/net/ipv4/ip_local_port_range").split() == ["20000", "30000"]
    assert c.out("cat /etc/hostname") == p.cfg.hostname


def test_hardened_policy_pins_the_pods_files(ctx):
    """The pod's hostname, hosts and resolv.conf live in criod's directory;
    with host paths restricted spawnd mounts copies it made in the bundle at
    create, so swapping one for a symlink before start reaches nothing."""
    s = ctx.s
    p = ctx.pod()
    c = ctx.create(p, command=SLEEP, sc=RUNTIME_DEFAULT)
    bundle = os.path.join(s.run_dir, "containers", c.id)
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    srcs = {m["destination"]: m["source"] for m in spec["mounts"]}
    for dst, name in (("/etc/hostname", "hostname"), ("/etc/hosts", "hosts"), ("/etc/resolv.conf", "resolv.conf")):
        assert srcs[dst] == os.path.join(bundle, name), (dst, srcs[dst])
        st = os.stat(srcs[dst])
        assert st.st_uid == 0 and st.st_mode & 0o777 == 0o644, (dst, oct(st.st_mode))
    pod_dir = os.path.join(s.state_dir, "criod", "pods", p.id)
    with open(os.path.join(pod_dir, "hosts")) as f:
        hosts = f.read()
    # what a compromised criod would do between create and start
    os.rename(os.path.join(pod_dir, "hosts"), os.path.join(pod_dir, "hosts.orig"))
    os.symlink("/etc/shadow", os.path.join(pod_dir, "hosts"))
    try:
        ctx.start(c)
        assert c.out("cat /etc/hosts") == hosts.strip()
    finally:
        os.unlink(os.path.join(pod_dir, "hosts"))
        os.rename(os.path.join(pod_dir, "hosts.orig"), os.path.join(pod_dir, "hosts"))
    # and a symlink there at create is refused
    os.rename(os.path.join(pod_dir, "resolv.conf"), os.path.join(pod_dir, "resolv.orig"))
    os.symlink("/etc/shadow", os.path.join(pod_dir, "resolv.conf"))
    try:
        err = rpc_error(ctx.create, p, command=SLEEP, sc=RUNTIME_DEFAULT)
        assert err.code() == DENIED and "resolv.conf is not a regular file" in err.details(), err.details()
    finally:
        os.unlink(os.path.join(pod_dir, "resolv.conf"))
        os.rename(os.path.join(pod_dir, "resolv.orig"), os.path.join(pod_dir, "resolv.conf"))


def test_hardened_policy_refusals_name_the_rule(ctx):
    s = ctx.s
    p = ctx.pod()
    before = made(s)

    def refused(pod, rule, *words, **kw):
        cfg = with_pod_namespaces(pod, ctx.config(command=SLEEP, **kw))
        err = rpc_error(ctx.cri.runtime, "CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod.id, config=cfg, sandbox_config=pod.cfg), timeout=RPC)
        assert err.code() == DENIED, (rule, err.code(), err.details())
        for w in ("[policy] " + rule,) + words:
            assert w in err.details(), (w, err.details())
        assert ctx.list(pod=pod.id) == [], rule
        assert made(s) <= before, (rule, made(s) - before)
        assert not pids_mentioning(os.path.join(s.run_dir, "containers") + "/"), rule
        assert 'msg="refused container spec"' in s.log("spawnd") and 'rule="[policy] %s"' % rule in s.log("spawnd")
        return err.details()

    refused(p, "host_path_prefixes", s.outside, sc=RUNTIME_DEFAULT, mounts=[bind(s.outside, "/o", ro=True)])
    refused(p, "host_path_prefixes", "/etc", sc=RUNTIME_DEFAULT, mounts=[bind("/etc", "/host-etc", ro=True)])
    refused(p, "host_path_prefixes", "resolved", sc=RUNTIME_DEFAULT,
            mounts=[bind(os.path.join(s.allowed, "link-out"), "/o")])
    refused(p, "host_path_readonly_prefixes", s.ro, sc=RUNTIME_DEFAULT, mounts=[bind(s.ro, "/r")])
    refused(p, "allow_privileged", "Bidirectional", sc=RUNTIME_DEFAULT,
            mounts=[bind(s.allowed, "/a", prop=pb.PROPAGATION_BIDIRECTIONAL)])
    refused(p, "allowed_capabilities", "CAP_SYS_ADMIN", sc=hardened_sc(add_caps=["SYS_ADMIN"]))
    hostpid = sc_of(seccomp=pb.SecurityProfile.RuntimeDefault)
    hostpid.namespace_options.CopyFrom(p.cfg.linux.security_context.namespace_options)
    hostpid.namespace_options.pid = pb.NODE
    refused(p, "allow_host_namespaces", "pid", sc=hostpid)
    refused(p, "allow_unconfined_seccomp", "linux.seccomp", sc=sc_of(seccomp=pb.SecurityProfile.Unconfined))
    refused(p, "allow_unconfined_seccomp", "linux.seccomp")  # nothing asked: no filter
    dev = next((d for d in ("/dev/kmsg", "/dev/loop-control", "/dev/mem") if os.path.exists(d)), None)
    if dev:
        cfg_dev = pb.Device(container_path="/dev/x", host_path=dev, permissions="rw")
        cfg = with_pod_namespaces(p, ctx.config(command=SLEEP, sc=RUNTIME_DEFAULT))
        cfg.devices.add().CopyFrom(cfg_dev)
        err = rpc_error(ctx.cri.runtime, "CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=p.id, config=cfg, sandbox_config=p.cfg), timeout=RPC)
        assert err.code() == DENIED and "[policy] allowed_devices" in err.details(), err.details()
    sysp = ctx.pod(sysctls={"kernel.msgmax": "65536"})
    refused(sysp, "allowed_sysctls", "kernel.msgmax", sc=RUNTIME_DEFAULT)
    assert made(s) <= before
    # and the pod still takes an allowed container
    c = ctx.run(p, command=SLEEP, sc=RUNTIME_DEFAULT)
    assert c.out("echo ok") == "ok"


def pods_made(s):
    """What the daemons hold for pods: spawnd's pod directories and records,
    netd's namespaces, records and addresses."""
    out = set()
    for d in (os.path.join(s.run_dir, "pods"), os.path.join(s.state_dir, "spawnd", "pods"),
              os.path.join(s.run_dir, "netns"), os.path.join(s.state_dir, "netd", "pods")):
        if os.path.isdir(d):
            out |= {os.path.join(d, x) for x in os.listdir(d)}
    ipam = os.path.join(s.state_dir, "netd", "ipam")
    for root, _, files in os.walk(ipam):
        out |= {os.path.join(root, f) for f in files}
    return out


def test_hardened_policy_refuses_host_and_privileged_pods(ctx):
    """The pod itself is governed by the policy: a privileged pod, host
    network, host PID and host IPC are PERMISSION_DENIED by spawnd naming
    the key and the field, logged once as "refused pod" with the request id
    and the pod, and criod undoes what netd made before (no namespace,
    record, address or bridge port left; the pod is not listed)."""
    s = ctx.s
    before = pods_made(s)
    ports_before = bridge_ports(s.bridge)
    names_before = {x.metadata.name for x in list_pods(ctx.cri)}
    cases = [
        ("allow_privileged", "privileged", dict(privileged=True)),
        ("allow_host_namespaces", "host_network", dict(network=pb.NODE)),
        ("allow_host_namespaces", "pid: NS_NODE", dict(pid=pb.NODE)),
        ("allow_host_namespaces", "ipc: NS_NODE", dict(ipc=pb.NODE)),
    ]
    for key, words, kw in cases:
        mark = len(s.log("spawnd"))
        err = rpc_error(ctx.pod, **kw)
        assert err.code() == DENIED, (kw, err.code(), err.details())
        assert "[policy] " + key in err.details() and words in err.details(), (kw, err.details())
        assert err.details().startswith("spawnd: "), err.details()
        new = s.log("spawnd")[mark:]
        refusals = [ln for ln in new.splitlines() if 'msg="refused pod"' in ln]
        assert len(refusals) == 1, (kw, refusals)
        assert re.search(r'req=\S+ msg="refused pod" pod=[0-9a-f]{64} rule="\[policy\] %s"' % key, refusals[0]), \
            refusals[0]
        assert "pod infrastructure created" not in new, kw
    assert {x.metadata.name for x in list_pods(ctx.cri)} == names_before
    assert wait_for(lambda: pods_made(s) <= before, 10), pods_made(s) - before
    assert wait_for(lambda: bridge_ports(s.bridge) <= ports_before, 10), (bridge_ports(s.bridge), ports_before)
    # an ordinary pod still runs
    p = ctx.pod()
    assert ctx.run(p, command=SLEEP, sc=RUNTIME_DEFAULT).out("echo ok") == "ok"


# ================================================================ spawnd, from a hostile front end

def create_frame(call_id, req, method=SPAWND_CREATE_CONTAINER, tag="hostile-policy"):
    env = envelope_pb2.Envelope(call_id=call_id, method=method, request_id="%s-%d" % (tag, call_id),
                                body=req.SerializeToString()).SerializeToString()
    return struct.pack("<I", len(env)) + env


def hostile(s, user, frames, sock="spawnd"):
    """Send frames as criod's uid on a root daemon's socket; the replies."""
    r = subprocess.run([sys.executable, "-c", HOSTILE_SCRIPT, sock if sock.startswith("/") else s.sock(sock)],
                       input=json.dumps([f.hex() for f in frames]), user=user.pw_uid, group=user.pw_gid,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = [envelope_pb2.Envelope.FromString(bytes.fromhex(x["reply"])) for x in json.loads(r.stdout)]
    assert len(out) == len(frames)
    return out


def test_spawnd_refuses_host_and_privileged_pods_from_a_hostile_front_end(ctx, test_user):
    """CreatePodInfra straight to spawnd, as a compromised criod would
    send it: host network, host IPC, host PID, privileged, each
    PERMISSION_DENIED naming the key, logged with the request id and the
    pod, and nothing made (no pod directory, record, cgroup or pause); the
    same request without them passes the policy (and fails later, NOT_FOUND:
    its netns is not there)."""
    s = ctx.s
    p = ctx.pod()
    netns = os.path.join(s.run_dir, "netns", p.id)
    N = spawnd_pb2.NsMode
    cases = [
        ("control", dict(netns_path=os.path.join(s.run_dir, "netns", new_id())), 5, ["netns_path"]),
        ("host network", dict(host_network=True), 7, ["[policy] allow_host_namespaces", "host_network"]),
        ("host ipc", dict(netns_path=netns, ipc=N.Value("NS_NODE")), 7, ["[policy] allow_host_namespaces", "ipc"]),
        ("host pid", dict(netns_path=netns, pid=N.Value("NS_NODE")), 7, ["[policy] allow_host_namespaces", "pid"]),
        ("privileged", dict(netns_path=netns, privileged=True), 7, ["[policy] allow_privileged", "privileged"]),
        ("all of it", dict(host_network=True, ipc=N.Value("NS_NODE"), pid=N.Value("NS_NODE"), privileged=True), 7,
         ["[policy] allow_host_namespaces"]),
    ]
    ids = [new_id() for _ in cases]
    frames = [create_frame(i + 1, spawnd_pb2.CreatePodInfraRequest(pod_id=ids[i], hostname="h", **kw),
                           method=SPAWND_CREATE_POD_INFRA, tag="hostile-pod")
              for i, (_, kw, _, _) in enumerate(cases)]
    before = pods_made(s)
    replies = hostile(s, test_user, frames)
    log = s.log("spawnd")
    for i, ((what, _, status, words), env) in enumerate(zip(cases, replies)):
        assert env.status == status, (what, env.status, env.message)
        for w in words:
            assert w in env.message, (what, w, env.message)
        if status == 7:
            assert log.count('req=hostile-pod-%d msg="refused pod" pod=%s rule="[policy] ' % (i + 1, ids[i])) == 1, \
                what
    assert pods_made(s) == before, pods_made(s) - before
    for pid_ in ids:
        assert not pids_mentioning(pid_), pid_
        assert not pod_cgroup_dirs(s, pid_)
    assert s.procs["spawnd"].poll() is None




def new_id():
    return secrets.token_hex(32)


def test_spawnd_policy_refuses_a_hostile_front_end(ctx, test_user):
    s = ctx.s
    p = ctx.pod()
    other = ctx.pod()
    real = ctx.create(p, command=SLEEP, sc=RUNTIME_DEFAULT)
    other_real = ctx.create(other, command=SLEEP, sc=RUNTIME_DEFAULT)
    with open(os.path.join(s.run_dir, "containers", real.id, "config.json")) as f:
        base = json.load(f)
    with open(os.path.join(s.run_dir, "containers", other_real.id, "config.json")) as f:
        other_spec = json.load(f)

    # What criod sent: spawnd mounts its own copies of the pod's files
    # (test_hardened_policy_pins_the_pods_files), criod names its own.
    pinned = os.path.join(s.run_dir, "containers", real.id) + "/"
    for m in base["mounts"]:
        if m["source"].startswith(pinned):
            m["source"] = os.path.join(s.state_dir, "criod", "pods", p.id, m["source"][len(pinned):])
    assert any(m["destination"] == "/etc/resolv.conf" and "/criod/pods/" in m["source"] for m in base["mounts"])

    def for_id(spec, cid):
        spec = copy.deepcopy(spec)
        spec["root"]["path"] = os.path.join(s.state_dir, "imaged", "containers", cid, "rootfs")
        spec["linux"]["cgroupsPath"] = spec["linux"]["cgroupsPath"].replace(real.id, cid)
        return spec

    def ns_path(spec, kind):
        return next(n.get("path") for n in spec["linux"]["namespaces"] if n["type"] == kind)

    def mount(src, dst, opts=("rbind", "rprivate", "rw"), typ="bind"):
        return {"destination": dst, "type": typ, "source": src, "options": list(opts)}

    def add_mount(m):
        return lambda x: x["mounts"].append(m)

    def setp(path, value):
        def f(x):
            o = x
            for k in path[:-1]:
                o = o.setdefault(k, {}) if isinstance(k, str) else o[k]
            o[path[-1]] = value
        return f

    def delp(path):
        def f(x):
            o = x
            for k in path[:-1]:
                o = o[k]
            del o[path[-1]]
        return f

    def mount_opts(dst, opts):
        def f(x):
            next(m for m in x["mounts"] if m["destination"] == dst)["options"] = opts
        return f

    def no_ns(kind):
        return lambda x: x["linux"].__setitem__("namespaces", [n for n in x["linux"]["namespaces"]
                                                               if n["type"] != kind])

    def ns_to(kind, path):
        def f(x):
            for n in x["linux"]["namespaces"]:
                if n["type"] == kind:
                    n["path"] = path
        return f

    def cap_add(name):
        return lambda x: [x["process"]["capabilities"][k].append(name)
                          for k in ("bounding", "effective", "permitted")]

    def devices(dev, rule=None):
        def f(x):
            x["linux"].setdefault("devices", []).append(dev)
            if rule:
                x["linux"]["resources"]["devices"].append(rule)
        return f

    def rule_only(rule):
        return lambda x: x["linux"]["resources"]["devices"].append(rule)

    def sysctl(k, v="1"):
        return lambda x: x["linux"].setdefault("sysctl", {}).__setitem__(k, v)

    P, I, F = 7, 3, 9  # PERMISSION_DENIED, INVALID_ARGUMENT, FAILED_PRECONDITION
    R = "[policy] "
    cases = [
        # (what, mutation, status, words, pod id)
        ("control", None, F, ["MountRootfs first"], None),
        ("bind /", add_mount(mount("/", "/host")), P, [R + "host_path_prefixes", "/"], None),
        ("bind /etc ro", add_mount(mount("/etc", "/host-etc", ("rbind", "ro"))), P, [R + "host_path_prefixes"], None),
        ("bind /root rw", add_mount(mount("/root", "/r")), P, [R + "host_path_prefixes", "/root"], None),
        ("tmpfs rbind /", add_mount(mount("/", "/t", ("rbind", "rw"), typ="tmpfs")), P, [R + "host_path_prefixes"],
         None),
        ("bind unclean", add_mount(mount(s.allowed + "/../../../etc", "/e")), I, ["clean absolute path"], None),
        ("bind ro prefix rw", add_mount(mount(s.ro, "/r", ("rbind", "ro", "rw"))), P,
         [R + "host_path_readonly_prefixes"], None),
        ("another bundle's copy", add_mount(mount(pinned + "hosts", "/h")), P, [R + "host_path_prefixes"], None),
        ("bind via symlink", add_mount(mount(s.allowed + "/link-out", "/o")), P, [R + "host_path_prefixes"], None),
        ("ext4 of a disk", add_mount(mount("/dev/sda", "/disk", ("rw",), typ="ext4")), I, ["mounts[", "ext4"], None),
        ("proc elsewhere", add_mount(mount("proc", "/mnt/proc", ("nosuid",), typ="proc")), I, ["only at /proc"],
         None),
        ("odd option", mount_opts("/proc", ["nosuid", "x-foo"]), I, ["x-foo"], None),
        ("rw sysfs", mount_opts("/sys", ["nosuid", "noexec", "nodev"]), P, [R + "allow_privileged", "/sys"], None),
        ("rw cgroupfs", mount_opts("/sys/fs/cgroup", ["nosuid", "noexec", "nodev", "rw"]), P,
         [R + "allow_privileged"], None),
        ("every device", rule_only({"allow": True, "access": "rwm"}), P, [R + "allow_privileged", "every device"],
         None),
        ("nothing masked", setp(["linux", "maskedPaths"], []), P, [R + "allow_privileged", "maskedPaths"], None),
        ("no readonly", delp(["linux", "readonlyPaths"]), P, [R + "allow_privileged", "readonlyPaths"], None),
        ("rshared root", setp(["linux", "rootfsPropagation"], "rshared"), P, [R + "allow_privileged"], None),
        ("CAP_SYS_ADMIN", cap_add("CAP_SYS_ADMIN"), P, [R + "allowed_capabilities", "CAP_SYS_ADMIN"], None),
        ("CAP_SYS_MODULE ambient", setp(["process", "capabilities", "ambient"], ["CAP_SYS_MODULE"]), P,
         [R + "allowed_capabilities", "ambient"], None),
        ("CAP_FOO", cap_add("CAP_FOO"), I, ["not a capability name"], None),
        ("hooks prestart", setp(["hooks"], {"prestart": [{"path": "/bin/sh"}]}), I, ["hooks"], None),
        ("hooks createRuntime", setp(["hooks"], {"createRuntime": [{"path": "/bin/sh"}]}), I, ["hooks"], None),
        ("hooks poststart", setp(["hooks"], {"poststart": [{"path": "/bin/sh"}]}), I, ["hooks"], None),
        ("unknown top", setp(["foo"], 1), I, ["foo: unknown field"], None),
        ("unknown process", setp(["process", "rlimits"], []), I, ["process.rlimits: unknown field"], None),
        ("unknown linux", setp(["linux", "intelRdt"], {}), I, ["linux.intelRdt: unknown field"], None),
        ("unknown resources", setp(["linux", "resources", "pids"], {"limit": 1}), I,
         ["linux.resources.pids: unknown field"], None),
        ("unknown seccomp", setp(["linux", "seccomp", "listenerPath"], "/x"), I,
         ["linux.seccomp.listenerPath: unknown field"], None),
        ("unknown mount field", setp(["mounts", 0, "uidMappings"], []), I, ["mounts[0].uidMappings"], None),
        ("hostname", setp(["hostname"], "x"), I, ["hostname: unknown field"], None),
        ("wrong type", setp(["process", "user", "uid"], "0"), I, ["process.user.uid: must be"], None),
        ("another pod's netns", ns_to("network", ns_path(other_spec, "network")), I, ["network namespace"], None),
        ("host netns by path", ns_to("network", "/proc/1/ns/net"), I, ["/proc/1/ns/net"], None),
        ("host network", no_ns("network"), P, [R + "allow_host_namespaces", "network"], None),
        ("host ipc", no_ns("ipc"), P, [R + "allow_host_namespaces", "ipc"], None),
        ("no mount ns", no_ns("mount"), I, ["mount namespace"], None),
        ("cgroup /", setp(["linux", "cgroupsPath"], "/"), I, ["cgroupsPath"], None),
        ("cgroup ../..", setp(["linux", "cgroupsPath"], "../.."), I, ["cgroupsPath"], None),
        ("cgroup escape", lambda x: x["linux"].__setitem__("cgroupsPath", x["linux"]["cgroupsPath"] + "/../../.."),
         I, ["cgroupsPath"], None),
        ("other pod's cgroup", setp(["linux", "cgroupsPath"], other_spec["linux"]["cgroupsPath"]), I,
         ["cgroupsPath"], None),
        ("another rootfs", setp(["root", "path"], base["root"]["path"]), I, ["root.path"], None),
        ("another pod's id", None, I, ["namespace"], other.id),
        ("/dev/sda", devices({"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660, "uid": 0,
                              "gid": 0}), P, [R + "allowed_devices", "/dev/sda"], None),
        ("/dev/mem", devices({"path": "/dev/mem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o660, "uid": 0,
                              "gid": 0}, {"allow": True, "type": "c", "major": 1, "minor": 1, "access": "rw"}), P,
         [R + "allowed_devices", "/dev/mem"], None),
        ("cgroup rule /dev/mem", rule_only({"allow": True, "type": "c", "major": 1, "minor": 1, "access": "rwm"}), P,
         [R + "allowed_devices", "c 1:1"], None),
        ("cgroup rule block *", rule_only({"allow": True, "type": "b", "access": "rw"}), P, [R + "allowed_devices"],
         None),
        ("kernel.core_pattern", sysctl("kernel.core_pattern", "|/tmp/x"), P,
         ["namespaced sysctls only", "kernel.core_pattern"], None),
        ("kernel/core_pattern", sysctl("kernel/core_pattern", "|/tmp/x"), P, ["namespaced sysctls only"], None),
        ("net/../kernel", sysctl("net/../kernel/core_pattern", "|/tmp/x"), P, ["namespaced sysctls only"], None),
        ("net.ipv4.ip_forward", sysctl("net.ipv4.ip_forward"), P, [R + "allowed_sysctls"], None),
        ("no seccomp", delp(["linux", "seccomp"]), P, [R + "allow_unconfined_seccomp"], None),
        ("allow-all seccomp", setp(["linux", "seccomp"], {"defaultAction": "SCMP_ACT_ALLOW"}), P,
         [R + "allow_unconfined_seccomp", "SCMP_ACT_ALLOW"], None),
    ]
    ids = []
    frames = []
    for i, (what, mutate, status, words, pod_id) in enumerate(cases):
        cid = new_id()
        ids.append(cid)
        spec = for_id(base, cid)
        if mutate:
            mutate(spec)
        req = spawnd_pb2.CreateContainerRequest(
            container_id=cid, pod_id=pod_id or p.id, config_json=json.dumps(spec).encode(),
            log_path=os.path.join(s.state_dir, "spawnd", "containers", cid, "console.log"))
        frames.append(create_frame(i + 1, req).hex())
    before = made(s)
    r = subprocess.run([sys.executable, "-c", HOSTILE_SCRIPT, s.sock("spawnd")], input=json.dumps(frames),
                       user=test_user.pw_uid, group=test_user.pw_gid, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert len(results) == len(cases)
    log = s.log("spawnd")
    for i, ((what, _, status, words, _), res) in enumerate(zip(cases, results)):
        env = envelope_pb2.Envelope.FromString(bytes.fromhex(res["reply"]))
        assert env.status == status, (what, env.status, env.message)
        for w in words:
            assert w in env.message, (what, w, env.message)
        assert 'req=hostile-policy-%d msg="call failed" method=CreateContainer' % (i + 1) in log, what
        if status == P:
            assert 'req=hostile-policy-%d msg="refused container spec" id=%s' % (i + 1, ids[i]) in log, what
    # nothing was made for any of them
    assert made(s) == before, made(s) - before
    for cid in ids:
        assert not pids_mentioning(cid), cid
    assert s.procs["spawnd"].poll() is None
    # and criod's own containers still work
    ctx.start(real)
    assert real.out("echo ok") == "ok"


# ================================================================ UpdateContainerResources (conmon)

CONMON_UPDATE = 7  # common/api.h


def conmon_sock(s, cid):
    sock = wait_for(lambda: next((x for x in (os.path.join(s.run_dir, "containers", cid, "conmon.sock"),
                                              os.path.join(s.run_dir, "s", cid)) if os.path.exists(x)), None))
    assert sock, "no conmon socket for %s" % cid
    return sock


def conmon_log(s, cid):
    with open(os.path.join(s.state_dir, "spawnd", "containers", cid, "conmon.log"), errors="replace") as f:
        return f.read()


def update_frame(call_id, resources, tag="hostile-update"):
    body = conmon_pb2.UpdateResourcesRequest(linux_resources_json=json.dumps(resources))
    return create_frame(call_id, body, method=CONMON_UPDATE, tag=tag)


def own_cgroup(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return f.read()


def test_update_resources_refuses_a_hostile_front_end(ctx, test_user):
    """criod talks to conmon directly for UpdateContainerResources, so
    conmon checks the request's linux.resources with spawnd's rules before
    runc update sees it: fields criod never writes, the core's cgroup v2
    files (cgroup.procs would move a host process into the container's
    cgroup), device rules outside [policy] allowed_devices and every device
    for an unprivileged container are refused (INVALID_ARGUMENT naming the
    field, PERMISSION_DENIED naming the rule), logged by conmon with the
    request id, and nothing changes; what criod sends is applied."""
    s = ctx.s
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP, sc=RUNTIME_DEFAULT)
    sock = conmon_sock(s, c.id)
    victim = subprocess.Popen(["sleep", "300"])
    try:
        cg_before = own_cgroup(victim.pid)
        P, I = 7, 3
        R = "[policy] "
        cases = [
            ("control", {"memory": {"limit": 209715200}}, 0, []),
            ("pids", {"pids": {"limit": 1}}, I, ["linux_resources_json: linux.resources.pids: unknown field"]),
            ("blockIO", {"blockIO": {"weight": 10}}, I, ["linux.resources.blockIO: unknown field"]),
            ("memory.kernel", {"memory": {"kernel": 1}}, I, ["linux.resources.memory.kernel: unknown field"]),
            ("wrong type", {"cpu": {"shares": "2"}}, I, ["linux.resources.cpu.shares: must be"]),
            ("cgroup.procs", {"unified": {"cgroup.procs": str(victim.pid)}}, P,
             ["cgroup v2 resource files only", "cgroup.procs"]),
            ("subtree_control", {"unified": {"cgroup.subtree_control": "+pids"}}, P, ["cgroup v2 resource files only"]),
            ("path in a key", {"unified": {"memory.max/../../cgroup.procs": str(victim.pid)}}, P,
             ["cgroup v2 resource files only"]),
            ("every device", {"devices": [{"allow": True, "access": "rwm"}]}, P, [R + "allow_privileged", "every device"]),
            ("/dev/mem", {"devices": [{"allow": True, "type": "c", "major": 1, "minor": 1, "access": "rw"}]}, P,
             [R + "allowed_devices", "c 1:1"]),
            ("block *", {"devices": [{"allow": True, "type": "b", "access": "rw"}]}, P, [R + "allowed_devices"]),
        ]
        replies = hostile(s, test_user, [update_frame(i + 1, r) for i, (_, r, _, _) in enumerate(cases)], sock=sock)
        log = conmon_log(s, c.id)
        for i, ((what, _, status, words), env) in enumerate(zip(cases, replies)):
            assert env.status == status, (what, env.status, env.message)
            for w in words:
                assert w in env.message, (what, w, env.message)
            if status:
                assert 'req=hostile-update-%d msg="refused container resources" id=%s' % (i + 1, c.id) in log, what
        assert own_cgroup(victim.pid) == cg_before
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    # the control was applied; nothing else was
    mem = c.out("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert mem == "209715200", mem
    assert c.sh("head -c1 /dev/mem")[0] != 0
    # through criod: what kubelet may send still works, a core cgroup file is refused by conmon
    new = pb.LinuxContainerResources(memory_limit_in_bytes=314572800)
    ctx.cri.runtime("UpdateContainerResources", pb.UpdateContainerResourcesRequest(container_id=c.id, linux=new),
                    timeout=RPC)
    bad = pb.LinuxContainerResources(unified={"cgroup.procs": "1"})
    err = rpc_error(ctx.cri.runtime, "UpdateContainerResources",
                    pb.UpdateContainerResourcesRequest(container_id=c.id, linux=bad), timeout=RPC)
    if cgroup_v1():  # criod itself takes no unified keys there
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "cgroup v1" in err.details(), err.details()
    else:
        assert err.code() == DENIED and "cgroup v2 resource files only" in err.details(), (err.code(), err.details())
    assert c.out("cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes") \
        == "314572800"
    assert c.out("echo ok") == "ok"


# ================================================================ the default policy: the pod's record decides

@pytest.fixture(scope="module")
def dsuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


@pytest.fixture
def dctx(dsuite, ctr_images):  # noqa: F811
    with ctx_of(dsuite, ctr_images) as c:
        yield c


def bundle_spec(s, cid):
    with open(os.path.join(s.run_dir, "containers", cid, "config.json")) as f:
        return json.load(f)


def test_default_policy_container_privileges_rest_on_the_pod_record(dctx, test_user):
    """With the default policy (host namespaces and privileged allowed) a
    container still gets a host namespace only in a pod spawnd made with
    it, and a privileged spec only in a pod spawnd made privileged: spawnd's
    record of the pod decides, not the spec a compromised criod sends. A
    hostile front end's CreateContainer for an ordinary pod with the host's
    network, PID, IPC or UTS namespace, or privileged parts (every device,
    read-write /sys), is
    PERMISSION_DENIED naming the rule and logged; the same specs in pods
    made so pass every check (FAILED_PRECONDITION: no rootfs)."""
    s = dctx.s
    p = dctx.pod()
    hp = dctx.pod(network=pb.NODE, pid=pb.NODE, ipc=pb.NODE)
    pp = dctx.pod(privileged=True)
    bases = {}
    for pod, sc in ((p, None), (hp, None), (pp, sc_of(privileged=True))):
        c = dctx.create(pod, command=SLEEP, sc=sc)
        bases[pod.id] = (bundle_spec(s, c.id), c.id)
    assert not any(n["type"] in ("network", "pid", "ipc", "uts") for n in bases[hp.id][0]["linux"]["namespaces"])
    assert any(r.get("allow") and "type" not in r for r in bases[pp.id][0]["linux"]["resources"]["devices"])

    def for_id(base, cid):
        spec, old = copy.deepcopy(base[0]), base[1]
        spec["root"]["path"] = os.path.join(s.state_dir, "imaged", "containers", cid, "rootfs")
        spec["linux"]["cgroupsPath"] = spec["linux"]["cgroupsPath"].replace(old, cid)
        return spec

    def no_ns(kind):
        return lambda x: x["linux"].__setitem__("namespaces", [n for n in x["linux"]["namespaces"]
                                                               if n["type"] != kind])

    def every_device(x):
        x["linux"]["resources"]["devices"].append({"allow": True, "access": "rwm"})

    def rw_sys(x):
        next(m for m in x["mounts"] if m["destination"] == "/sys")["options"] = ["nosuid", "noexec", "nodev"]

    def unmasked(x):
        x["linux"]["maskedPaths"] = []

    P, F = 7, 9
    HOST, PRIV = "the pod's host namespaces", "privileged pod"
    cases = [
        # (what, pod, mutation, status, words)
        ("control", p, None, F, ["MountRootfs first"]),
        ("host network", p, no_ns("network"), P, [HOST, "no network namespace", p.id]),
        ("host pid", p, no_ns("pid"), P, [HOST, "no pid namespace"]),
        ("host ipc", p, no_ns("ipc"), P, [HOST, "no ipc namespace"]),
        ("host uts", p, no_ns("uts"), P, [HOST, "no uts namespace"]),
        ("every device", p, every_device, P, [PRIV, "every device", "unprivileged"]),
        ("rw sysfs", p, rw_sys, P, [PRIV, "/sys"]),
        # the CRI lets any container set its masked paths (procMount): only the key governs them
        ("nothing masked", p, unmasked, F, ["MountRootfs first"]),
        ("host pod's spec", hp, None, F, ["MountRootfs first"]),
        ("privileged pod's spec", pp, None, F, ["MountRootfs first"]),
        ("privileged pod, rw sysfs", pp, rw_sys, F, ["MountRootfs first"]),
    ]
    ids, frames = [], []
    for i, (what, pod, mutate, _, _) in enumerate(cases):
        cid = new_id()
        ids.append(cid)
        spec = for_id(bases[pod.id], cid)
        if mutate:
            mutate(spec)
        req = spawnd_pb2.CreateContainerRequest(
            container_id=cid, pod_id=pod.id, config_json=json.dumps(spec).encode(),
            log_path=os.path.join(s.state_dir, "spawnd", "containers", cid, "console.log"))
        frames.append(create_frame(i + 1, req, tag="hostile-record"))
    before = made(s)
    replies = hostile(s, test_user, frames)
    log = s.log("spawnd")
    for i, ((what, pod, _, status, words), env) in enumerate(zip(cases, replies)):
        assert env.status == status, (what, env.status, env.message)
        for w in words:
            assert w in env.message, (what, w, env.message)
        if status == P:
            assert 'req=hostile-record-%d msg="refused container spec" id=%s pod=%s rule="%s"' % (
                i + 1, ids[i], pod.id, words[0]) in log, what
    assert made(s) == before, made(s) - before
    for cid in ids:
        assert not pids_mentioning(cid), cid


def test_default_policy_update_keeps_an_unprivileged_container_so(dctx, test_user):
    """With the default policy, Update may give every device only to a
    container that had it at create (the spec spawnd checked, in its
    bundle): an unprivileged one is refused ("privileged pod"), a
    privileged one takes it."""
    s = dctx.s
    c = dctx.run(dctx.pod(), command=SLEEP)
    pp = dctx.pod(privileged=True)
    cp = dctx.run(pp, command=SLEEP, sc=sc_of(privileged=True))
    every = {"devices": [{"allow": True, "access": "rwm"}]}
    (r1,) = hostile(s, test_user, [update_frame(1, every, tag="hostile-update-d")], sock=conmon_sock(s, c.id))
    assert r1.status == 7 and "privileged pod" in r1.message and "every device" in r1.message, r1.message
    assert 'req=hostile-update-d-1 msg="refused container resources" id=%s' % c.id in conmon_log(s, c.id)
    (r2,) = hostile(s, test_user, [update_frame(1, every, tag="hostile-update-p")], sock=conmon_sock(s, cp.id))
    assert r2.status == 0, r2.message
    assert c.out("echo ok") == "ok"


# ================================================================ TARGET PID namespaces, pinned at create

def target_cfg(ctx, pod, target, command=("sleep", "3606")):
    cfg = ctx.config(command=list(command))
    opts = cfg.linux.security_context.namespace_options
    opts.CopyFrom(pod.cfg.linux.security_context.namespace_options)
    opts.pid = pb.TARGET
    opts.target_id = target.id
    return cfg


def test_target_pid_namespace_is_pinned_at_create(dctx):
    """runc opens a namespace path only at Start, so spawnd pins a TARGET
    PID namespace at create (a bind mount at <bundle>/pidns of the
    namespace it checked, through a pidfd-verified /proc/<pid>) and the
    spec the runtime reads names the pin: Start joins exactly that
    namespace. If the target exits before Start, its namespace takes no
    new process and Start fails with the runtime's error; nothing of the
    debug container runs anywhere. The pin goes with the bundle at
    RemoveContainer."""
    s = dctx.s
    p = dctx.pod()
    target = dctx.run(p, command=["sleep", "3605"])
    target_ns = ns_inode(target.pid(), "pid")
    dbg = dctx.create_cfg(p, target_cfg(dctx, p, target))
    bundle = os.path.join(s.run_dir, "containers", dbg.id)
    pin = os.path.join(bundle, "pidns")
    spec = bundle_spec(s, dbg.id)
    assert [n.get("path") for n in spec["linux"]["namespaces"] if n["type"] == "pid"] == [pin], spec
    assert mount_at(pin) and mount_at(pin)[1] == "nsfs", mount_at(pin)
    assert os.stat(pin).st_ino == target_ns
    assert 'msg="target PID namespace pinned" id=%s' % dbg.id in s.log("spawnd")
    # the normal case: Start joins it
    dctx.start(dbg)
    assert ns_inode(dbg.pid(), "pid") == target_ns
    assert "sleep 3605" in dbg.out("ps")

    # the target goes before Start
    late = dctx.create_cfg(p, target_cfg(dctx, p, target, command=("sleep", "3607")))
    late_pin = os.path.join(s.run_dir, "containers", late.id, "pidns")
    assert os.stat(late_pin).st_ino == target_ns
    dctx.stop(dbg.id)
    dctx.stop(target.id)
    dctx.remove(dbg.id)
    dctx.remove(target.id)
    err = rpc_error(dctx.cri.runtime, "StartContainer", pb.StartContainerRequest(container_id=late.id), timeout=RPC)
    assert err.code() == grpc.StatusCode.INTERNAL, (err.code(), err.details())
    assert late.status().status.state == pb.CONTAINER_CREATED
    assert not pids_mentioning("sleep 3607")
    assert wait_for(lambda: not mount_at(pin), 10), "the removed container's pin is still mounted"
    dctx.remove(late.id)
    assert wait_for(lambda: not mount_at(late_pin) and not os.path.exists(os.path.dirname(late_pin)), 10)
    assert wait_for(lambda: not [m for m in mounts_under(s.run_dir) if m[0].endswith("/pidns")], 10)


def test_target_pid_namespace_from_a_hostile_front_end(dctx, test_user):
    """A hostile CreateContainer naming /proc/<pid>/ns/pid: a host process,
    or a process of the pod that is not a container's init (the pause of a
    pod without a shared PID namespace), is INVALID_ARGUMENT; a target's
    init is pinned and passes (FAILED_PRECONDITION: no rootfs), and nothing
    is left mounted."""
    s = dctx.s
    p = dctx.pod()
    target = dctx.run(p, command=["sleep", "3608"])
    c = dctx.create(p, command=SLEEP)
    base, old = bundle_spec(s, c.id), c.id
    pause = pause_pids(s, p.id)
    assert pause, "no pause process"

    def spec_for(cid, pid):
        spec = copy.deepcopy(base)
        spec["root"]["path"] = os.path.join(s.state_dir, "imaged", "containers", cid, "rootfs")
        spec["linux"]["cgroupsPath"] = spec["linux"]["cgroupsPath"].replace(old, cid)
        for n in spec["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = "/proc/%d/ns/pid" % pid
        return spec

    cases = [
        ("target's init", target.pid(), 9, ["MountRootfs first"]),
        ("host process", os.getpid(), 3, ["not the PID namespace of a process of this pod"]),
        ("pause, no PID namespace of its own", min(pause), 3, ["not the PID namespace of a container's init"]),
        ("no such pid", 4194303, 3, ["/proc/4194303/ns/pid"]),
    ]
    frames = []
    for i, (_, pid, _, _) in enumerate(cases):
        cid = new_id()
        req = spawnd_pb2.CreateContainerRequest(
            container_id=cid, pod_id=p.id, config_json=json.dumps(spec_for(cid, pid)).encode(),
            log_path=os.path.join(s.state_dir, "spawnd", "containers", cid, "console.log"))
        frames.append(create_frame(i + 1, req, tag="hostile-target"))
    before = made(s)
    for (what, _, status, words), env in zip(cases, hostile(s, test_user, frames)):
        assert env.status == status, (what, env.status, env.message)
        for w in words:
            assert w in env.message, (what, w, env.message)
    assert made(s) == before
    assert not [m for m in mounts_under(s.run_dir) if m[0].endswith("/pidns")]
