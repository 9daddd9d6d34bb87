"""The foundation: the CRI front end, its routing, robustness, privileges,
and the root daemons' peer checks, all through real sockets."""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from conftest import DAEMONS, recv_all, unix_connect
from test_pods import wait_for

BUILT = {("RuntimeService", "Version"), ("RuntimeService", "Status"),
         ("ImageService", "PullImage"), ("ImageService", "ListImages"), ("ImageService", "ImageStatus"),
         ("ImageService", "RemoveImage"), ("ImageService", "ImageFsInfo"),
         ("RuntimeService", "RunPodSandbox"), ("RuntimeService", "StopPodSandbox"),
         ("RuntimeService", "RemovePodSandbox"), ("RuntimeService", "PodSandboxStatus"),
         ("RuntimeService", "ListPodSandbox"),
         ("RuntimeService", "CreateContainer"), ("RuntimeService", "StartContainer"),
         ("RuntimeService", "StopContainer"), ("RuntimeService", "RemoveContainer"),
         ("RuntimeService", "ContainerStatus"), ("RuntimeService", "ListContainers"),
         ("RuntimeService", "UpdateContainerResources"), ("RuntimeService", "ReopenContainerLog"),
         ("RuntimeService", "ExecSync"),
         ("RuntimeService", "ContainerStats"), ("RuntimeService", "ListContainerStats"),
         ("RuntimeService", "PodSandboxStats"), ("RuntimeService", "ListPodSandboxStats"),
         ("RuntimeService", "GetContainerEvents"), ("RuntimeService", "RuntimeConfig"),
         ("RuntimeService", "UpdateRuntimeConfig"),
         ("RuntimeService", "ListMetricDescriptors"), ("RuntimeService", "ListPodSandboxMetrics"),
         ("RuntimeService", "Exec"), ("RuntimeService", "Attach"), ("RuntimeService", "PortForward"),
         ("RuntimeService", "StreamPodSandboxes"), ("RuntimeService", "StreamContainers"),
         ("RuntimeService", "StreamContainerStats"), ("RuntimeService", "StreamPodSandboxStats"),
         ("RuntimeService", "StreamPodSandboxMetrics"), ("ImageService", "StreamImages"),
         ("RuntimeService", "UpdatePodSandboxResources")}


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return fields


def test_version(cri):
    v = cri.runtime("Version")
    assert v.runtime_name == "criod"
    assert v.runtime_api_version == "v1"
    assert v.version == "0.1.0"
    assert re.match(r"^\d+\.\d+\.\d+", v.runtime_version)


# The RPCs of the schema no issue has built yet: each answers UNIMPLEMENTED
# naming itself. A new RPC in proto/cri/api.proto must be added to one list.
NOT_BUILT = {("RuntimeService", n) for n in (
    "CheckpointContainer",)}


def test_every_rpc_of_both_services_answers(cri, pb):
    seen = set()
    for service in ("RuntimeService", "ImageService"):
        for m in pb.DESCRIPTOR.services_by_name[service].methods:
            seen.add((service, m.name))
            if (service, m.name) in BUILT and m.name == "GetContainerEvents":
                # The event stream stays open (until the deadline, here);
                # the streamed lists end once sent (below).
                with pytest.raises(grpc.RpcError) as e:
                    cri.call(service, m.name, timeout=0.5)
                assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, (service, m.name, e.value)
                continue
            if (service, m.name) in BUILT:
                # Built: an empty request gets an answer, or an error that
                # is about the request, never UNIMPLEMENTED.
                try:
                    cri.call(service, m.name)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (service, m.name, e)
                continue
            with pytest.raises(grpc.RpcError) as e:
                cri.call(service, m.name)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, (service, m.name)
            assert m.name in e.value.details(), e.value.details()
    # Every RPC of the schema was called, and each is in exactly one list.
    assert seen == BUILT | NOT_BUILT, (sorted(seen - BUILT - NOT_BUILT), sorted((BUILT | NOT_BUILT) - seen))
    assert not BUILT & NOT_BUILT


def test_unknown_method_and_service(cri):
    for path in ("/runtime.v1.RuntimeService/NoSuchCall", "/runtime.v2.RuntimeService/Version", "/x"):
        with pytest.raises(grpc.RpcError) as e:
            cri.raw(path, b"")
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_status_reports_daemons_ready(cri, pb):
    r = cri.runtime("Status", pb.StatusRequest(verbose=True))
    conds = {c.type: c for c in r.status.conditions}
    assert conds["RuntimeReady"].status is True
    assert conds["NetworkReady"].status is True
    assert {"imaged", "netd", "spawnd"} <= set(r.info.keys())
    assert all('"reachable":true' in r.info[d] for d in ("imaged", "netd", "spawnd"))


def test_criod_runs_unprivileged(suite, test_user):
    st = proc_status(suite.pid("criod"))
    uids = [int(x) for x in st["Uid"].split()]
    gids = [int(x) for x in st["Gid"].split()]
    assert uids == [test_user.pw_uid] * 4
    assert gids == [test_user.pw_gid] * 4
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"
    assert st["Groups"] == "" or st["Groups"] == str(test_user.pw_gid)
    ps = subprocess.run(["ps", "-o", "user=", "-p", str(suite.pid("criod"))], capture_output=True, text=True)
    assert ps.stdout.strip() == test_user.pw_name
    # The root daemons are root; the CRI socket belongs to criod's user.
    for d in DAEMONS:
        assert proc_status(suite.pid(d))["Uid"].split()[0] == "0"
    assert os.stat(suite.socket).st_uid == test_user.pw_uid
    assert os.stat(suite.socket).st_mode & 0o777 == 0o660


PEER_SCRIPT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    data = s.recv(65536)
except (ConnectionResetError, BrokenPipeError):
    data = b""
print("REPLY" if data else "CLOSED")
"""


def ping_as(uid, sock, envpb):
    """Send a Ping envelope to a daemon socket as uid; did it answer?"""
    ping = frame(envpb.Envelope(call_id=7, method=1, request_id="peer-test"))
    r = subprocess.run([sys.executable, "-c", PEER_SCRIPT, sock, ping.hex()], user=uid, group=uid,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_root_daemons_refuse_other_uids_and_log_it(suite, envpb):
    for d in DAEMONS:
        assert ping_as(0, suite.sock(d), envpb) == "REPLY"
        assert ping_as(65534, suite.sock(d), envpb) == "CLOSED"
        deadline = time.monotonic() + 5
        while not re.search(r'msg="refused connection from unauthorized peer" peer_uid=65534 ', suite.log(d)):
            assert time.monotonic() < deadline, suite.log(d)
            time.sleep(0.05)
    # criod's own user is served: Status depends on all three answering.
    c = suite.client()
    conds = {x.type: x.status for x in c.runtime("Status").status.conditions}
    c.close()
    assert conds == {"RuntimeReady": True, "NetworkReady": True}


def frame(env):
    body = env.SerializeToString()
    return struct.pack("<I", len(body)) + body


def test_root_daemon_survives_hostile_frames(suite, envpb):
    path = suite.sock("imaged")
    bad_inputs = [
        b"\xff\xff\xff\xff" + b"x" * 64,          # length far over the limit
        struct.pack("<I", 5) + b"\xff" * 5,        # envelope that does not decode
        frame(envpb.Envelope(call_id=1, method=1, nfds=3)),  # claims fds it did not send
    ]
    for bad in bad_inputs:
        s = unix_connect(path)
        s.sendall(bad)
        assert recv_all(s) == b""
        s.close()
    # An unknown method and an undecodable body get an error reply, not a crash.
    s = unix_connect(path)
    s.sendall(frame(envpb.Envelope(call_id=9, method=999, request_id="t")))
    s.sendall(frame(envpb.Envelope(call_id=10, method=1, body=b"\xff\xff\xff")))
    replies = []
    buf = b""
    while len(replies) < 2:
        chunk = s.recv(65536)
        assert chunk
        buf += chunk
        while len(buf) >= 4:
            (n,) = struct.unpack("<I", buf[:4])
            if len(buf) < 4 + n:
                break
            replies.append(envpb.Envelope.FromString(buf[4:4 + n]))
            buf = buf[4 + n:]
    s.close()
    by_id = {r.call_id: r for r in replies}
    assert by_id[9].status == 12 and "unknown method" in by_id[9].message
    assert by_id[10].status == 3
    # Still serving.
    assert ping_as(0, path, envpb) == "REPLY"
    assert suite.procs["imaged"].poll() is None


def test_malformed_http2_closes_only_that_connection(suite, cri):
    s = unix_connect(suite.socket)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(4096))
    recv_all(s)  # the server answers with GOAWAY (or nothing) and closes: EOF or reset, not a timeout
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        for _ in range(50):
            s.sendall(b"x" * 65536)
            time.sleep(0.01)
    s.close()
    # A valid preface followed by a garbage frame.
    s = unix_connect(suite.socket)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\xff\x00\x00\x00\x00\x01" + b"\xee" * 4)
    recv_all(s)
    s.close()
    assert cri.runtime("Version").runtime_name == "criod"
    assert suite.procs["criod"].poll() is None


def h2_call(sock_path, path, body, headers_extra=()):
    """Drive one raw HTTP/2 gRPC call; returns (headers+trailers dict, data)."""
    s = unix_connect(sock_path)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", path),
                            (":authority", "localhost"), ("content-type", "application/grpc"),
                            ("te", "trailers"), *headers_extra])
    conn.send_data(sid, body, end_stream=True)
    s.sendall(conn.data_to_send())
    result, data, done = {}, b"", False
    while not done:
        chunk = s.recv(65536)
        if not chunk:
            break
        for ev in conn.receive_data(chunk):
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                result.update({k.decode(): v.decode() for k, v in ev.headers})
            elif isinstance(ev, h2.events.DataReceived):
                data += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        s.sendall(conn.data_to_send())
    s.close()
    return result, data


VERSION = "/runtime.v1.RuntimeService/Version"


def test_truncated_grpc_frames_get_an_error_status(suite):
    # Prefix says 100 bytes, only 3 follow.
    h, _ = h2_call(suite.socket, VERSION, b"\x00\x00\x00\x00\x64abc")
    assert h["grpc-status"] == "13", h
    # Not even a whole prefix.
    h, _ = h2_call(suite.socket, VERSION, b"\x00\x00")
    assert h["grpc-status"] == "13", h
    # Compressed flag without an agreed encoding.
    h, _ = h2_call(suite.socket, VERSION, b"\x01\x00\x00\x00\x00")
    assert h["grpc-status"] == "13", h
    # A well-formed call on a fresh raw connection works.
    h, data = h2_call(suite.socket, VERSION, b"\x00\x00\x00\x00\x00")
    assert h["grpc-status"] == "0" and h[":status"] == "200"
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == len(data) - 5


def test_garbage_protobuf_is_invalid_argument(cri, pb):
    for junk in (b"\xff\xff\xff\xff", b"\x0a\xff\x01abc", os.urandom(64) + b"\x0f"):
        with pytest.raises(grpc.RpcError) as e:
            cri.raw(VERSION, junk)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "VersionRequest" in e.value.details()
    assert cri.runtime("Version").runtime_name == "criod"


def test_messages_up_to_16_mib(cri, pb):
    # Unknown fields are kept by protobuf; a 15 MiB request is accepted...
    big = pb.VersionRequest(version="x" * (15 << 20))
    assert cri.runtime("Version", big, timeout=60).runtime_name == "criod"
    # ...and one over the limit is refused with RESOURCE_EXHAUSTED.
    huge = pb.VersionRequest(version="x" * ((16 << 20) + 16))
    with pytest.raises(grpc.RpcError) as e:
        cri.runtime("Version", huge, timeout=60)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert cri.runtime("Version").runtime_name == "criod"


def test_request_that_decodes_large_is_resource_exhausted(suite, cri, pb):
    """Empty repeated elements cost two bytes each on the wire but a heap
    block each decoded: criod adds up what a message would take before
    unpacking it (as the internal RPC does) and refuses one that would take
    more than 8 times its size plus 1 MiB, with a log line; the same number
    of real port mappings in a smaller message passes that check."""
    n = 1 << 19  # 1 MiB of empty PortMappings, ~30 MiB decoded
    req = pb.RunPodSandboxRequest(config=pb.PodSandboxConfig(port_mappings=[pb.PortMapping()] * n))
    with pytest.raises(grpc.RpcError) as e:
        cri.runtime("RunPodSandbox", req, timeout=60)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
    assert "RunPodSandboxRequest" in e.value.details() and "decoded" in e.value.details(), e.value.details()
    assert wait_for(lambda: suite.log_has("criod", 'msg="refused request too large decoded" '
                                          'method=/runtime.v1.RuntimeService/RunPodSandbox'), 10, 0.1)
    # a few thousand empty elements are within the bound: decoded, then
    # refused by the handler's own check of the pod's metadata
    small = pb.RunPodSandboxRequest(config=pb.PodSandboxConfig(port_mappings=[pb.PortMapping()] * 4096))
    with pytest.raises(grpc.RpcError) as e:
        cri.runtime("RunPodSandbox", small, timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value
    assert cri.runtime("Version").runtime_name == "criod"


def test_many_concurrent_streams_and_connections(suite):
    errors = []

    def worker(n):
        c = suite.client()
        try:
            calls = []
            stub = c.channel.unary_unary(VERSION, request_serializer=lambda b: b,
                                         response_deserializer=lambda b: b)
            for _ in range(n):
                calls.append(stub.future(b"", timeout=30))
            for f in calls:
                f.result()
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(50,)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_slow_daemon_never_stalls_other_calls(fresh_suite, pb):
    s = fresh_suite
    s.start_all()
    c = s.client()
    # netd stops answering: Status waits on it, everything else must not.
    os.kill(s.pid("netd"), signal.SIGSTOP)
    try:
        stub = c.channel.unary_unary("/runtime.v1.RuntimeService/Status",
                                     request_serializer=pb.StatusRequest.SerializeToString,
                                     response_deserializer=pb.StatusResponse.FromString)
        pending = stub.future(pb.StatusRequest(), timeout=30)
        # Each Version answers within its own deadline while Status waits
        # on the stuck daemon: the loop is not blocked by it.
        for _ in range(20):
            assert c.runtime("Version", timeout=5).runtime_name == "criod"
        assert not pending.done()
        # grpc-timeout is honoured while the daemon is stuck.
        with pytest.raises(grpc.RpcError) as e:
            c.runtime("Status", timeout=0.3)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The internal call's own deadline turns into NetworkReady=false.
        r = pending.result()
        conds = {x.type: x for x in r.status.conditions}
        assert conds["RuntimeReady"].status is True
        assert conds["NetworkReady"].status is False
        assert "netd" in conds["NetworkReady"].message
    finally:
        os.kill(s.pid("netd"), signal.SIGCONT)
    c.close()


def test_daemon_restart_is_picked_up(fresh_suite):
    s = fresh_suite
    s.start_all()
    c = s.client()
    s.stop("imaged")
    conds = {x.type: x for x in c.runtime("Status").status.conditions}
    assert conds["RuntimeReady"].status is False
    assert conds["RuntimeReady"].reason == "RuntimeReadyNotReady"
    assert "imaged" in conds["RuntimeReady"].message
    s.start("imaged")
    conds = {x.type: (x.status, x.message) for x in c.runtime("Status").status.conditions}
    assert conds == {"RuntimeReady": (True, ""), "NetworkReady": (True, "")}
    c.close()


def test_request_id_is_logged_by_criod_and_the_daemon(fresh_suite):
    s = fresh_suite
    s.start_all()
    c = s.client()
    c.runtime("Status", metadata=(("x-request-id", "trace-abc123"),))
    c.close()
    deadline = time.monotonic() + 5
    while not all("req=trace-abc123" in s.log(d) for d in DAEMONS):
        assert time.monotonic() < deadline, [s.log(d)[-2000:] for d in DAEMONS]
        time.sleep(0.05)
    assert "req=trace-abc123" in s.log("criod")


def test_bad_config_is_a_clear_error(fresh_suite):
    s = fresh_suite
    with open(s.config) as f:
        bad_line = len(f.read().splitlines()) + 2
    with open(s.config, "a") as f:
        f.write("[criod]\nmax_streams = lots\n")
    for name in ("criod", "imaged"):
        r = subprocess.run([s.binary(name), "--config", s.config], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2
        assert "%s:%d:" % (s.config, bad_line) in r.stderr and "max_streams" in r.stderr, r.stderr
    r = subprocess.run([s.binary("netd"), "--config", s.config + ".missing"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and ".missing" in r.stderr


def test_drop_in_overrides_main_file(fresh_suite):
    s = fresh_suite
    os.makedirs(s.config + ".d")
    alt = os.path.join(s.base, "alt.sock")
    with open(os.path.join(s.config + ".d", "10-socket.conf"), "w") as f:
        f.write("[criod]\nsocket = %s\n" % alt)
    s.start_all()
    s.socket = alt
    c = s.client()
    assert c.runtime("Version").runtime_name == "criod"
    c.close()
