"""Localhost seccomp profiles (issue 12). kubelet and critest write profiles
as root, often in 0700 directories; criod runs unprivileged and cannot read
them. spawnd opens a profile for criod (OpenSeccompProfile) when it is a
regular file beneath [policy] seccomp_profile_roots, reached without a
symlink, and passes the open file; criod reads the profile from the fd.

The suite's roots are one temporary directory (root's, 0700) of this
module, so criod's user cannot read anything in it itself.

Behaviour asserted:
  through criod  a profile in a 0700 root-owned directory beneath a root
           applies (the container's Seccomp is 2 and chmod fails with EPERM,
           a sibling without the profile can chmod), through
           security_context.seccomp.localhost_ref and the deprecated
           seccomp_profile_path "localhost/<path>"; refusals pass spawnd's
           status on with the field named: outside every root ->
           PERMISSION_DENIED naming [policy] seccomp_profile_roots; a
           symlink beneath the root to a file outside -> PERMISSION_DENIED;
           missing -> NOT_FOUND; a directory or a FIFO -> INVALID_ARGUMENT;
           nothing is left of refused containers.
  spawnd   a raw client with criod's uid on spawnd's socket (a hostile front
           end): relative paths, "..", paths outside the roots (/etc/shadow,
           /proc/self/..., /dev/null), a symlink to /etc/shadow beneath the
           root, an over-long path, a NUL byte, a device node, a FIFO, a
           directory: each refused with the documented status and no fd; a
           good path answers one fd, readable by that uid although the file
           is not; spawnd keeps no fd and logs every call with its request id.
"""
import array
import importlib
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import tempfile

import grpc
import pytest

import conftest
from conftest import envelope_pb2
from registry import registries  # noqa: F401 - fixture
from test_containers import (RPC, SLEEP, ctr_images, ctx_of, runc_list, runc_root, sc_of,  # noqa: F401
                             started_suite, with_pod_namespaces)
from conftest import api_pb2 as pb
from test_pods import rpc_error, wait_for

SPAWND_OPEN_SECCOMP_PROFILE = 7  # common/api.h
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
KEY = "[policy] seccomp_profile_roots"
REF_FIELD = "config.linux.security_context.seccomp.localhost_ref"
LEGACY_FIELD = "config.linux.security_context.seccomp_profile_path"

BLOCK_CHMOD = json.dumps({
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["chmod", "fchmod", "fchmodat"], "action": "SCMP_ACT_ERRNO"}],
})


def _spawnd_pb2():
    subprocess.run(["protoc", "--proto_path=" + os.path.join(conftest.ROOT, "proto"),
                    "--python_out=" + conftest._PB_DIR, "internal/spawnd.proto"], check=True)
    importlib.invalidate_caches()
    return importlib.import_module("internal.spawnd_pb2")


spawnd_pb2 = _spawnd_pb2()


# ================================================================ the profile tree

class Tree:
    """<base>/seccomp is the configured root; <base> and everything in it is
    root's and 0700, so criod's user can read none of it."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="criod-seccomp-")
        os.chmod(self.base, 0o700)
        self.root = os.path.join(self.base, "seccomp")
        self.outside = os.path.join(self.base, "outside")
        self.sibling = self.root + "x"  # a prefix of the name, not a parent
        for d in (self.root, self.outside, self.sibling, self.path("sub")):
            os.makedirs(d, mode=0o700, exist_ok=True)
            os.chmod(d, 0o700)
        self.profile = self.write("sub/block-chmod.json", BLOCK_CHMOD)
        self.write_abs(os.path.join(self.outside, "block-chmod.json"), BLOCK_CHMOD)
        self.write_abs(os.path.join(self.sibling, "block-chmod.json"), BLOCK_CHMOD)
        os.symlink(os.path.join(self.outside, "block-chmod.json"), self.path("link-out.json"))
        os.symlink("/etc/shadow", self.path("shadow.json"))
        os.symlink("/etc", self.path("etc"))
        os.symlink("sub/block-chmod.json", self.path("link-in.json"))
        os.mkfifo(self.path("fifo.json"), 0o600)
        os.mknod(self.path("null.json"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        self.write("big.json", " " * ((4 << 20) + 1))
        self.write("bad.json", "this is not json")

    def path(self, rel):
        return os.path.join(self.root, rel)

    @staticmethod
    def write_abs(path, text):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def write(self, rel, text):
        return self.write_abs(self.path(rel), text)

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def tree():
    t = Tree()
    yield t
    t.cleanup()


@pytest.fixture(scope="module")
def ssuite(test_user, registries, ctr_images, tree):  # noqa: F811
    with started_suite(registries, ctr_images, extra="[policy]\nseccomp_profile_roots = %s\n" % tree.root) as s:
        yield s


@pytest.fixture
def ctx(ssuite, ctr_images):  # noqa: F811
    with ctx_of(ssuite, ctr_images) as c:
        yield c


def localhost(path):
    return sc_of(seccomp=pb.SecurityProfile.Localhost, seccomp_ref=path)


def legacy(path):
    sc = pb.LinuxContainerSecurityContext()
    sc.seccomp_profile_path = "localhost/" + path
    return sc


# ================================================================ through criod

def test_profile_in_root_only_directory_applies(ctx, tree, test_user):
    # criod's user cannot read it itself: the point of the request.
    r = subprocess.run([sys.executable, "-c", "open(%r).read()" % tree.profile], user=test_user.pw_uid,
                       group=test_user.pw_gid, capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "PermissionError" in r.stderr, r

    p = ctx.pod()
    blocked = ctx.run(p, command=SLEEP, sc=localhost(tree.profile))
    old_form = ctx.run(p, command=SLEEP, sc=legacy(tree.profile))
    free = ctx.run(p, command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.Unconfined))
    for c in (blocked, old_form):
        assert c.proc1()["Seccomp"] == "2"
        rc, _, err = c.sh("touch /tmp/f && chmod 600 /tmp/f")
        assert rc != 0 and "Operation not permitted" in err, (rc, err)
        assert c.out("echo still runs") == "still runs"
    assert free.out("touch /tmp/f && chmod 600 /tmp/f && stat -c %a /tmp/f") == "600"
    log = ctx.s.log("spawnd")
    assert 'msg="seccomp profile opened for the caller" path=%s ' % tree.profile in log, log[-3000:]


def test_profile_refusals_name_the_field(ctx, tree):
    s = ctx.s
    p = ctx.pod()
    runc_before = {x["id"] for x in runc_list(runc_root(s))}

    def refused(sc, code, *words):
        cfg = with_pod_namespaces(p, ctx.config(command=SLEEP, sc=sc))
        err = rpc_error(ctx.cri.runtime, "CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=p.id, config=cfg, sandbox_config=p.cfg), timeout=RPC)
        assert err.code() == code, (words, err.code(), err.details())
        for w in words:
            assert w in err.details(), (w, err.details())
        return err.details()

    outside = os.path.join(tree.outside, "block-chmod.json")
    refused(localhost(outside), DENIED, REF_FIELD, outside, KEY, tree.root)
    refused(legacy(outside), DENIED, LEGACY_FIELD, KEY)
    refused(localhost(os.path.join(tree.sibling, "block-chmod.json")), DENIED, REF_FIELD, KEY)
    refused(localhost("/etc/shadow"), DENIED, REF_FIELD, KEY)
    refused(localhost(tree.path("link-out.json")), DENIED, REF_FIELD, "symbolic link")
    refused(localhost(tree.path("link-in.json")), DENIED, REF_FIELD, "symbolic link")
    refused(localhost(tree.path("etc/shadow")), DENIED, REF_FIELD, "symbolic link")
    refused(localhost(tree.path("missing.json")), NOT_FOUND, REF_FIELD, "does not exist")
    refused(legacy(tree.path("missing.json")), NOT_FOUND, LEGACY_FIELD)
    refused(localhost(tree.path("sub")), INVALID, REF_FIELD, "directory")
    refused(localhost(tree.path("fifo.json")), INVALID, REF_FIELD, "FIFO")
    refused(localhost(tree.path("null.json")), INVALID, REF_FIELD, "character device")
    refused(localhost(tree.path("big.json")), INVALID, REF_FIELD, "more than")
    # criod's own check of the reference, before spawnd is asked.
    refused(localhost(tree.root + "/sub/../sub/block-chmod.json"), INVALID, REF_FIELD, "clean absolute path")
    # What spawnd opened is parsed as before.
    refused(localhost(tree.path("bad.json")), INVALID, REF_FIELD)
    # Nothing was made for any of them, and criod still works.
    assert ctx.list(pod=p.id) == []
    assert {x["id"] for x in runc_list(runc_root(s))} <= runc_before
    c = ctx.run(p, command=SLEEP, sc=localhost(tree.profile))
    assert c.out("echo ok") == "ok"


# ================================================================ spawnd, from a hostile front end

HOSTILE_SCRIPT = r"""
import array, json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
out = []
for frame in json.load(sys.stdin):
    s.sendall(bytes.fromhex(frame))
    buf, fds = b"", []
    while len(buf) < 4 or len(buf) < 4 + struct.unpack("<I", buf[:4])[0]:
        data, anc, _, _ = s.recvmsg(1 << 20, socket.CMSG_SPACE(16 * 4))
        if not data:
            break
        buf += data
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", cdata[:len(cdata) - len(cdata) % 4]).tolist()
    got = []
    for fd in fds:
        flags = __import__("fcntl").fcntl(fd, __import__("fcntl").F_GETFL)
        got.append({"content": os.pread(fd, 1 << 16, 0).hex(), "flags": flags,
                    "regular": __import__("stat").S_ISREG(os.fstat(fd).st_mode)})
        os.close(fd)
    out.append({"reply": buf[4:].hex(), "fds": got})
json.dump(out, sys.stdout)
"""


def open_frame(call_id, path):
    body = spawnd_pb2.OpenSeccompProfileRequest(path=path).SerializeToString()
    env = envelope_pb2.Envelope(call_id=call_id, method=SPAWND_OPEN_SECCOMP_PROFILE,
                                request_id="hostile-%d" % call_id, body=body).SerializeToString()
    return struct.pack("<I", len(env)) + env


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_spawnd_refuses_a_hostile_front_end(ssuite, tree, test_user):
    s = ssuite
    R = tree.root.encode()
    cases = [
        # (path, status, words in the message)
        (b"../../etc/shadow", 3, ["not an absolute path"]),
        (b"etc/shadow", 3, ["not an absolute path"]),
        (b"block-chmod.json", 3, ["not an absolute path"]),
        (b"", 3, ["empty"]),
        (b"/etc/shadow", 7, [KEY, tree.root]),
        (R + b"/../../../../etc/shadow", 3, ["clean path"]),
        (R + b"/sub/../sub/block-chmod.json", 3, ["clean path"]),
        (R + b"/./sub/block-chmod.json", 3, ["clean path"]),
        (R + b"//sub/block-chmod.json", 3, ["clean path"]),
        (R + b"/sub/block-chmod.json/", 3, ["clean path"]),
        (R + b"/shadow.json", 7, ["symbolic link"]),
        (R + b"/etc/shadow", 7, ["symbolic link"]),
        (R + b"/link-out.json", 7, ["symbolic link"]),
        (R + b"/" + b"a" * 5000, 3, ["longer than 4095 bytes"]),
        (R + b"/" + b"a" * 300, 3, ["longer than 255 bytes"]),
        (R + b"/sub/block-chmod.json\x00/../../../../etc/shadow", 3, ["NUL"]),
        (R + b"/sub/block-chmod.json\x00", 3, ["NUL"]),
        (R + b"/a\nb.json", 3, ["control character"]),
        (b"/proc/self/root/etc/shadow", 7, [KEY]),
        (b"/proc/self/fd/0", 7, [KEY]),
        (b"/proc/1/root" + R + b"/sub/block-chmod.json", 7, [KEY]),
        (b"/dev/null", 7, [KEY]),
        (b"/dev/sda", 7, [KEY]),
        (R + b"/null.json", 3, ["character device"]),
        (R + b"/fifo.json", 3, ["FIFO"]),
        (R + b"/sub", 3, ["directory"]),
        (R, 3, ["directory"]),
        (tree.sibling.encode() + b"/block-chmod.json", 7, [KEY]),
        (R + b"/missing.json", 5, ["does not exist"]),
        (R + b"/big.json", 3, ["more than the 4194304 allowed"]),
        # and the one that is allowed
        (tree.profile.encode(), 0, []),
    ]
    spawnd_pid = s.pid("spawnd")
    fds_before = fd_count(spawnd_pid)
    frames = [open_frame(i + 1, c[0]).hex() for i, c in enumerate(cases)]
    r = subprocess.run([sys.executable, "-c", HOSTILE_SCRIPT, s.sock("spawnd")], input=json.dumps(frames),
                       user=test_user.pw_uid, group=test_user.pw_gid, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert len(results) == len(cases)
    for (path, status, words), res in zip(cases, results):
        env = envelope_pb2.Envelope.FromString(bytes.fromhex(res["reply"]))
        assert env.status == status, (path[:200], env.status, env.message)
        for w in words:
            assert w in env.message, (path[:200], w, env.message)
        if status:
            assert res["fds"] == [] and env.nfds == 0, (path[:200], res)
            continue
        # The allowed one: exactly one fd, the profile open read-only and
        # non-blocking, readable by criod's uid through the fd alone.
        assert env.nfds == 1 and len(res["fds"]) == 1, res
        got = res["fds"][0]
        assert got["regular"] and bytes.fromhex(got["content"]).decode() == BLOCK_CHMOD
        assert got["flags"] & os.O_ACCMODE == os.O_RDONLY and got["flags"] & os.O_NONBLOCK, got
        reply = spawnd_pb2.OpenSeccompProfileResponse.FromString(env.body)
        assert reply.size == len(BLOCK_CHMOD)

    # spawnd kept no fd of any call, logged each one with its request id,
    # and still serves.
    assert wait_for(lambda: fd_count(spawnd_pid) <= fds_before, timeout=5), (fd_count(spawnd_pid), fds_before)
    log = s.log("spawnd")
    for i, (_, status, _) in enumerate(cases):
        if status:
            assert 'req=hostile-%d msg="call failed" method=OpenSeccompProfile' % (i + 1) in log, i
        else:
            assert 'req=hostile-%d msg="seccomp profile opened for the caller"' % (i + 1) in log, i
    assert s.procs["spawnd"].poll() is None
    c = s.client()
    try:
        assert {x.type: x.status for x in c.runtime("Status").status.conditions}["RuntimeReady"]
    finally:
        c.close()


def test_spawnd_refuses_fds_sent_with_the_request(ssuite, test_user):
    """OpenSeccompProfile takes no fds: one sent along is refused by the
    request table before the handler runs."""
    script = r"""
import socket, sys, os, struct
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
frame = bytes.fromhex(sys.argv[2])
fd = os.open("/dev/null", os.O_RDONLY)
s.sendmsg([frame], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
data = s.recv(65536)
print(data[4:].hex())
"""
    body = spawnd_pb2.OpenSeccompProfileRequest(path=b"/var/lib/kubelet/seccomp/x.json").SerializeToString()
    env = envelope_pb2.Envelope(call_id=1, method=SPAWND_OPEN_SECCOMP_PROFILE, request_id="hostile-fds", body=body,
                                nfds=1).SerializeToString()
    r = subprocess.run([sys.executable, "-c", script, ssuite.sock("spawnd"), (struct.pack("<I", len(env)) + env).hex()],
                       user=test_user.pw_uid, group=test_user.pw_gid, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    reply = envelope_pb2.Envelope.FromString(bytes.fromhex(r.stdout.strip()))
    assert reply.status == 3 and "file descriptors" in reply.message, reply
