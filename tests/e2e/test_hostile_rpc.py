"""A hostile front end: processes with criod's uid (the test user) talk to
the root daemons' sockets and to a container's conmon directly and try to
make them hold more than the internal RPC's limits allow (common/ipc.h):
connections beyond the per-uid cap, bodies over a method's cap or that
would expand when decoded, file descriptors parked on a connection, frames
that never complete, many large partial frames at once. Each attempt must
be refused (closed, or answered RESOURCE_EXHAUSTED) while the daemon stays
small and keeps answering."""
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
SPAWND_CREATE_CONTAINER = 5   # its cap: 4 MiB
# The suite's [rpc] frame_timeout (the default, 10 s, would only make the
# stalled-frame test slower) and the default [rpc] max_buffered.
FRAME_TIMEOUT_S = 4
MAX_BUFFERED = 16 << 20
READ_BUFFER = 64 << 10        # IPC_READ_BUFFER: each connection's own
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
elif mode == "stall":
    # On each socket (argv[3:]): one connection with the first bytes of a
    # frame that never completes, one idle; how long until the first is
    # closed, then whether both the idle one and a new one answer Ping.
    paths = sys.argv[2:]
    stalled, idle = [], []
    for p in paths:
        st = connect(p)
        st.sendall(struct.pack("<I", 100) + b"\x08\x29\x10\x01")
        stalled.append(st)
        idle.append(connect(p))
    t0 = time.monotonic()
    out["stalled"] = []
    for st in stalled:
        st.settimeout(max(0.1, 30 - (time.monotonic() - t0)))
        try:
            data = st.recv(1)
            how = "EOF" if data == b"" else "data"
        except ConnectionResetError:
            how = "ECONNRESET"
        except socket.timeout:
            how = "open"
        out["stalled"].append({"how": how, "s": time.monotonic() - t0})
    out["idle_ping"], out["new_ping"] = [], []
    for p, s in zip(paths, idle):
        s.sendall(envelope(42, 1))
        out["idle_ping"].append(reply(s))
        n = connect(p)
        n.sendall(envelope(43, 1))
        out["new_ping"].append(reply(n))
elif mode == "hold":
    # n connections, each the first bytes of a frame of `length` for
    # `method`, then all of each frame but its last byte: the daemon holds
    # the ones its budget takes and answers the others. Prints what each
    # got and waits for a line on stdin before letting go.
    method, length, n = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    head = b"\x08\x01\x10" + varint(method) + b"\x1a\x07hostile"
    socks = [connect(path) for _ in range(n)]
    for i, s in enumerate(socks):
        s.sendall(struct.pack("<I", length) + head)
    filler = b"\x00" * (length - len(head) - 1)
    for s in socks:
        s.sendall(filler)
    # The refusals were sent when the frames began; the held ones get nothing.
    time.sleep(0.3)
    ready, _, _ = select.select(socks, [], [], 0)
    replies = [reply(s) if s in ready else "held" for s in socks]
    out["replies"] = replies
    print(json.dumps(out), flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    time.sleep(0.2)
    again = connect(path)
    again.sendall(envelope(44, 1))
    out = {"again": reply(again)}
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
    with started_suite(registries, ctr_images, extra="[rpc]\nframe_timeout = %ds\n" % FRAME_TIMEOUT_S) as s:
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


def test_stalled_frames_are_dropped_after_the_timeout(hsuite, test_user):
    s = hsuite
    names = ("netd", "spawnd", "imaged")
    r = run_as(test_user, "stall", s.sock(names[0]), *[s.sock(n) for n in names[1:]])
    for name, st, idle, new in zip(names, r["stalled"], r["idle_ping"], r["new_ping"]):
        # Closed by the daemon once the bound had passed, not at once and
        # not never (the script gives up at 30 s).
        assert st["how"] in ("EOF", "ECONNRESET"), (name, r)
        assert FRAME_TIMEOUT_S * 0.8 <= st["s"] < FRAME_TIMEOUT_S + 20, (name, r)
        # A connection between frames is kept however long it waits, and
        # the daemon still serves new ones.
        assert idle == {"status": 0, "message": ""}, (name, r)
        assert new == {"status": 0, "message": ""}, (name, r)
        assert wait_for(lambda: 'msg="ipc frame not completed in time, closing" peer_uid=%d' % test_user.pw_uid
                        in s.log(name)), name
        line = next(x for x in s.log(name).splitlines() if "ipc frame not completed in time" in x)
        assert "bytes=8 frame_bytes=100 " in line and "timeout_ms=%d" % (FRAME_TIMEOUT_S * 1000) in line, line


def test_many_large_partial_frames_stay_within_the_buffer_cap(hsuite, test_user):
    s = hsuite
    pid, path = s.pid("spawnd"), s.sock("spawnd")
    n = MAX_CONNS_PER_UID - 8
    length = 4 << 20  # spawnd's largest request: CreateContainer's cap
    each = 4 + length - READ_BUFFER
    fits = MAX_BUFFERED // each
    rss0 = vm(pid, "VmRSS")
    p = subprocess.Popen([sys.executable, "-c", SCRIPT, "hold", path, str(SPAWND_CREATE_CONTAINER), str(length),
                          str(n)], user=test_user.pw_uid, group=test_user.pw_gid, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(p.stdout.readline())
        rss = vm(pid, "VmRSS")
        p.stdin.write("go\n")
        p.stdin.flush()
        second = json.loads(p.stdout.readline())
        assert p.wait(timeout=30) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # n frames of 4 MiB were sent (without the cap spawnd would hold about
    # 96 MiB); it holds the budget, each connection's own buffer and a
    # margin.
    assert rss - rss0 < MAX_BUFFERED + n * READ_BUFFER + (48 << 20 if SANITIZERS else 8 << 20), (rss0, rss)
    replies = first["replies"]
    # The first ones the budget takes are held; every later one is answered
    # from its first bytes and its bytes are discarded.
    assert replies[:fits] == ["held"] * fits, replies
    for r in replies[fits:]:
        assert r["status"] == RESOURCE_EXHAUSTED, replies
        assert "CreateContainer" in r["message"] and "limit of %d bytes" % MAX_BUFFERED in r["message"], r
    assert second["again"] == {"status": 0, "message": ""}, second
    log = s.log("spawnd")
    assert 'msg="refused request: ipc buffer limit reached" method=CreateContainer' in log
    assert "peer_uid=%d" % test_user.pw_uid in log and "limit=%d" % MAX_BUFFERED in log
