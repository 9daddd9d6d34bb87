"""A hostile front end: processes with criod's uid (the test user) talk to
the root daemons' sockets and to a container's conmon directly and try to
make them hold more than the internal RPC's limits allow (common/ipc.h):
connections beyond the per-uid cap, bodies over a method's cap or that
would expand when decoded, file descriptors parked on a connection. Each
attempt must be refused (closed at once, or answered RESOURCE_EXHAUSTED)
while the daemon stays small and keeps answering."""
import json
import os
import subprocess
import sys

import pytest

from conftest import SANITIZERS, envelope_pb2
from registry import registries  # noqa: F401 - fixture
from test_containers import SLEEP, conmon_pids, ctr_images, ctx_of, started_suite  # noqa: F401
from test_pods import wait_for

MAX_CONNS_PER_UID = 32        # IPC_DEFAULT_MAX_CONNS_PER_UID
RESOURCE_EXHAUSTED = 8
NETD_SETUP_POD = 2            # common/api.h
CONMON_EXEC = 5
# A daemon's high-water mark after the attempts. Without the limits a 16 MiB
# body of empty repeated fields took netd to 832 MiB and conmon to 576 MiB.
HWM_LIMIT = (192 if SANITIZERS else 64) << 20

# Run as the criod user. argv: mode, socket path, then the mode's arguments;
# prints one JSON line (and for "conns" waits for a line on stdin before it
# lets go of its connections).
SCRIPT = r"""
import json, os, select, socket, struct, sys, time

def frame(body):
    return struct.pack("<I", len(body)) + body

def varint(v):
    out = b""
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def envelope(call_id, method, body=b"", nfds=0):
    e = b"\x08" + varint(call_id) + b"\x10" + varint(method) + b"\x1a\x07hostile"
    if body:
        e += b"\x32" + varint(len(body)) + body
    if nfds:
        e += b"\x38" + varint(nfds)
    return frame(e)

def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s

def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf

def reply(s):
    # (status, message) of the next reply; None if the peer closed instead.
    try:
        hdr = recv_exact(s, 4)
        if hdr is None:
            return None
        body = recv_exact(s, struct.unpack("<I", hdr)[0])
    except ConnectionResetError:
        return None
    status, message, pos = 0, "", 0
    while pos < len(body):
        tag = body[pos]; pos += 1
        if tag & 7 == 0:
            v, shift = 0, 0
            while True:
                b = body[pos]; pos += 1
                v |= (b & 0x7f) << shift; shift += 7
                if not b & 0x80:
                    break
            if tag >> 3 == 4:
                status = v
        elif tag & 7 == 2:
            n, shift = 0, 0
            while True:
                b = body[pos]; pos += 1
                n |= (b & 0x7f) << shift; shift += 7
                if not b & 0x80:
                    break
            if tag >> 3 == 5:
                message = body[pos:pos + n].decode(errors="replace")
            pos += n
    return {"status": status, "message": message}

def closed_at_once(s):
    # EOF or a reset within the timeout: the daemon closed it.
    t0 = time.monotonic()
    try:
        data = s.recv(1)
    except ConnectionResetError:
        return {"closed": True, "how": "ECONNRESET", "s": time.monotonic() - t0}
    except socket.timeout:
        return {"closed": False, "how": "timeout", "s": time.monotonic() - t0}
    return {"closed": data == b"", "how": "EOF" if data == b"" else "data", "s": time.monotonic() - t0}

mode, path = sys.argv[1], sys.argv[2]
out = {}
if mode == "conns":
    n = int(sys.argv[3])
    socks = [connect(path) for _ in range(n)]
    time.sleep(0.5)
    ready, _, _ = select.select(socks, [], [], 0)
    open_socks = [s for s in socks if s not in ready]
    out["open"] = len(open_socks)
    out["closed"] = []
    for s in ready:
        s.settimeout(5)
        out["closed"].append(closed_at_once(s))
    # The ones kept are served.
    open_socks[0].sendall(envelope(7, 1))
    out["ping"] = reply(open_socks[0])
    print(json.dumps(out), flush=True)
    sys.stdin.readline()
    # Still at the cap: one more is closed; after letting go, served again.
    extra = connect(path)
    extra.settimeout(5)
    out2 = {"extra": closed_at_once(extra)}
    for s in open_socks:
        s.close()
    time.sleep(0.3)
    again = connect(path)
    again.sendall(envelope(8, 1))
    out2["again"] = reply(again)
    print(json.dumps(out2), flush=True)
elif mode == "big":
    # A body of `count` repetitions of the hex pattern, as method.
    method, pattern, count = int(sys.argv[3]), bytes.fromhex(sys.argv[4]), int(sys.argv[5])
    s = connect(path)
    s.settimeout(60)
    s.sendall(envelope(21, method, pattern * count))
    out["refusal"] = reply(s)
    s.sendall(envelope(22, 1))
    out["ping"] = reply(s)
elif mode == "fds":
    null = os.open("/dev/null", os.O_RDONLY)
    fds = [null] * 10
    rights = lambda k: [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % k, *fds[:k]))]
    # A whole frame that declares no fd, sent with one.
    s = connect(path)
    s.sendmsg([envelope(31, 1)], rights(1))
    s.settimeout(5)
    out["undeclared"] = closed_at_once(s)
    # fds parked with a frame that never completes: 10, then 10 more.
    s = connect(path)
    s.sendmsg([b"\x40"], rights(10))
    time.sleep(0.2)
    s.sendmsg([b"\x00"], rights(10))
    s.settimeout(5)
    out["parked"] = closed_at_once(s)
    # A frame that declares its fd is answered (Ping takes none: refused
    # by the table, INVALID_ARGUMENT, connection kept).
    s = connect(path)
    s.sendmsg([envelope(32, 1, nfds=1)], rights(1))
    out["declared"] = reply(s)
print(json.dumps(out), flush=True)
"""


def run_as(user, mode, path, *args, timeout=120):
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode, path, *map(str, args)], user=user.pw_uid,
                       group=user.pw_gid, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) << 10
    raise KeyError(key)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@pytest.fixture(scope="module")
def hsuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


@pytest.fixture(scope="module")
def container(hsuite, ctr_images):  # noqa: F811
    """A running container: its conmon's socket and pid."""
    with ctx_of(hsuite, ctr_images) as ctx:
        c = ctx.run(ctx.pod(), command=SLEEP)
        pids = wait_for(lambda: conmon_pids(c.id), timeout=10)
        assert len(pids) == 1, pids
        sock = wait_for(lambda: next((p for p in (os.path.join(hsuite.run_dir, "containers", c.id, "conmon.sock"),
                                                  os.path.join(hsuite.run_dir, "s", c.id))
                                      if os.path.exists(p)), None))
        assert sock, "no conmon socket for %s" % c.id
        yield {"sock": sock, "pid": pids[0], "ctr": c}


def targets(s, container):
    return [(d, s.sock(d), s.pid(d)) for d in ("netd", "spawnd", "imaged")] + \
        [("conmon", container["sock"], container["pid"])]


def test_connections_over_the_cap_are_closed_at_once(hsuite, container, test_user):
    s = hsuite
    n = MAX_CONNS_PER_UID + 8
    for name, path, _pid in targets(s, container):
        p = subprocess.Popen([sys.executable, "-c", SCRIPT, "conns", path, str(n)], user=test_user.pw_uid,
                             group=test_user.pw_gid, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            first = json.loads(p.stdout.readline())
            # criod itself holds one connection of the same uid.
            assert first["open"] in (MAX_CONNS_PER_UID - 1, MAX_CONNS_PER_UID), (name, first)
            assert len(first["closed"]) == n - first["open"], (name, first)
            for c in first["closed"]:
                assert c["closed"] and c["how"] in ("EOF", "ECONNRESET") and c["s"] < 1, (name, c)
            assert first["ping"] == {"status": 0, "message": ""}, (name, first)
            # While the front end's uid is at the cap, root still gets in and
            # criod's own connections still serve (Status pings all three).
            if name != "conmon":
                cri = s.client()
                try:
                    conds = {x.type: x.status for x in cri.runtime("Status").status.conditions}
                finally:
                    cri.close()
                assert conds == {"RuntimeReady": True, "NetworkReady": True}, (name, conds)
                assert run_root_ping(path) == 0, name
            p.stdin.write("go\n")
            p.stdin.flush()
            second = json.loads(p.stdout.readline())
            assert second["extra"]["closed"] and second["extra"]["s"] < 1, (name, second)
            assert second["again"] == {"status": 0, "message": ""}, (name, second)
            assert p.wait(timeout=30) == 0, p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if name != "conmon":
            assert wait_for(lambda: 'msg="refused connection: too many from this peer" peer_uid=%d'
                            % test_user.pw_uid in s.log(name)), name
            assert "limit=%d" % MAX_CONNS_PER_UID in s.log(name)


def run_root_ping(path):
    """Ping on a fresh connection as root: its status, or None if closed."""
    import socket
    import struct
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.settimeout(10)
    sk.connect(path)
    body = envelope_pb2.Envelope(call_id=3, method=1, request_id="root-ping").SerializeToString()
    sk.sendall(struct.pack("<I", len(body)) + body)
    hdr = sk.recv(4)
    if len(hdr) < 4:
        return None
    n = struct.unpack("<I", hdr)[0]
    data = b""
    while len(data) < n:
        chunk = sk.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    sk.close()
    return envelope_pb2.Envelope.FromString(data).status


# (daemon, method, its cap, wire bytes of one empty repeated element)
EXPANDING = [
    ("netd", NETD_SETUP_POD, "SetupPodNetwork", 64 << 10, "2a00"),  # empty port_mappings
    ("conmon", CONMON_EXEC, "Exec", 2 << 20, "0a00"),                # empty cmd strings
]


@pytest.mark.parametrize("name,method,mname,cap,element", EXPANDING, ids=[e[0] for e in EXPANDING])
def test_expanding_bodies_refused_and_the_daemon_stays_small(hsuite, container, test_user, name, method, mname,
                                                            cap, element):
    s = hsuite
    path, pid = (container["sock"], container["pid"]) if name == "conmon" else (s.sock(name), s.pid(name))
    # 16 MiB of empty repeated fields: over the method's cap, so over what
    # the daemon buffers at all; answered from the frame's first bytes.
    r = run_as(test_user, "big", path, method, element, 8 << 20)
    assert r["refusal"]["status"] == RESOURCE_EXHAUSTED, r
    assert mname in r["refusal"]["message"] and "%d bytes" % cap in r["refusal"]["message"], r
    # The rest of the frame was discarded; the connection goes on.
    assert r["ping"] == {"status": 0, "message": ""}, r
    # Just under the cap, but far more decoded: refused before unpacking.
    r = run_as(test_user, "big", path, method, element, (cap - 64) // 2)
    assert r["refusal"]["status"] == RESOURCE_EXHAUSTED, r
    assert mname in r["refusal"]["message"] and "decoded" in r["refusal"]["message"], r
    assert r["ping"] == {"status": 0, "message": ""}, r
    hwm = vm(pid, "VmHWM")
    assert hwm < HWM_LIMIT, (name, hwm)
    if name != "conmon":
        log = s.log(name)
        assert 'msg="refused oversized request" method=%s' % mname in log
        assert 'msg="refused request too large decoded" method=%s' % mname in log


def test_parked_fds_disconnect(hsuite, container, test_user):
    s = hsuite
    for name, path, pid in targets(s, container):
        before = fd_count(pid)
        r = run_as(test_user, "fds", path)
        assert r["undeclared"]["closed"] and r["undeclared"]["s"] < 1, (name, r)
        assert r["parked"]["closed"] and r["parked"]["s"] < 1, (name, r)
        assert r["declared"]["status"] == 3 and "file descriptors" in r["declared"]["message"], (name, r)
        # The daemon kept none of them.
        assert wait_for(lambda: fd_count(pid) <= before, timeout=5), (name, fd_count(pid), before)
        assert run_root_ping(path) == 0, name
        if name != "conmon":
            assert 'msg="ipc peer sent file descriptors no frame declares, closing"' in s.log(name), name
