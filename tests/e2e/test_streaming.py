"""Streaming (issue 15): Exec, Attach and PortForward through criod's
streaming server, with crictl v1.32 (a real client: client-go's SPDY and
WebSocket executors, port-forward over SPDY and SPDY-over-WebSocket) and a
raw-socket client for the protocol's edge cases.

crictl, over --transport spdy and --transport websocket each:
  exec      stdout and stderr of a plain command; `exec -i` with stdin from
            a pipe (cat echoes it); `exec -it` under a pseudo-terminal (python
            pty): the command sees a terminal (tty prints /dev/pts/N) of the
            size of crictl's; exit codes: `sh -c 'exit 3'` makes crictl say
            "command terminated with exit code 3" (from the Status'
            NonZeroExitCode cause; crictl itself exits 1), a SIGKILL 137.
  attach    to a container running `cat` with stdin: what we write comes
            back on stdout.
  port-forward  a local port to a server listening on the pod's loopback
            (busybox nc): the bytes come back.
Raw client (the URL from the Exec RPC):
  RPC checks: unknown container NOT_FOUND, a stopped one FAILED_PRECONDITION,
  no stream asked INVALID_ARGUMENT, tty with stderr INVALID_ARGUMENT; the URL
  is http://127.0.0.1:<port>/exec/<32 hex>.
  a GET without upgrade headers: 400 with a message; a SPDY upgrade without
  X-Stream-Protocol-Version 400, with only unknown versions 403 naming the
  accepted ones; a garbage request line 400; a head over 16 KiB 431; the
  same token twice: the second 404; an unknown token 404; a token after its
  lifetime (token_timeout = 2s in this suite's config) 404.
  WebSocket: an unmasked frame gets close 1002, a frame over 1 MiB close 1009.
  client gone mid-stream: an exec of `sleep` whose client disconnects leaves
  no sleep in the container (conmon kills it when criod closes the fds);
  criod SIGKILLed mid-session: the same, and the restarted criod serves
  exec again while the old URL is dead.
TLS: with tls_cert/tls_key the URLs are https and a client trusting the
  certificate is answered over TLS, a plain request is not; a key without a
  certificate stops criod at start, saying so.
"""
import base64
import contextlib
import hashlib
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import time
import urllib.parse
import zlib

import grpc
import pytest

from conftest import api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_containers import conmon_pids, ctr_suite
from test_crictl import (Crictl, Images, create_ctr, find_crictl, made_of, remove_image_quietly, run_pod,
                         start_ctr, CRICTL_PATHS)
from test_pods import wait_for

RPC = 60
TRANSPORTS = ("spdy", "websocket")


@pytest.fixture(scope="module")
def crictl_path():
    p = find_crictl()
    if p is None:
        pytest.skip("crictl not found (looked for %s)" % " and ".join(CRICTL_PATHS))
    return p


@pytest.fixture(scope="module")
def ssuite(crictl_path, test_user, registries):  # noqa: F811
    with ctr_suite(registries, extra="[streaming]\ntoken_timeout = 2s\nidle_timeout = 30s\n") as s:
        s.start_all()
        yield s


@pytest.fixture(scope="module")
def crictl(crictl_path, ssuite):
    return Crictl(crictl_path, ssuite)


@pytest.fixture(scope="module")
def gcri(ssuite):
    c = ssuite.client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def app(crictl, gcri, registries):  # noqa: F811
    images = Images(registries.plain)
    try:
        crictl.out("pull", images.ref("app"))
        yield images.ref("app")
    finally:
        remove_image_quietly(gcri, images.imgs["app"].id)


@pytest.fixture(scope="module")
def box(crictl, gcri, app):
    """One pod with a long-running container for exec."""
    with made_of(gcri) as m:
        pod = run_pod(crictl, m)
        c = start_ctr(crictl, create_ctr(crictl, m, pod, app, ["/bin/sh", "-c", "while true; do sleep 1; done"]))
        yield c


def ps_in(crictl, c):
    r = crictl.run("exec", "-s", c.id, "ps", "-o", "pid,args")
    return r.stdout


# ================================================================ crictl exec

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_plain(crictl, box, transport):
    r = crictl.run("exec", "--transport", transport, box.id, "/bin/sh", "-c", "echo out; echo err >&2")
    assert r.stdout == "out\n", r
    assert "err\n" in r.stderr, r


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_exit_code(crictl, box, transport):
    """crictl reports the code from the Status' ExitCode cause (and exits 1)."""
    r = crictl.run("exec", "--transport", transport, box.id, "/bin/sh", "-c", "exit 3", check=False)
    assert r.returncode != 0 and "command terminated with exit code 3" in r.stderr, r
    r = crictl.run("exec", "--transport", transport, box.id, "/bin/sh", "-c", "kill -9 $$", check=False)
    assert r.returncode != 0 and "command terminated with exit code 137" in r.stderr, r


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_stdin(crictl, box, transport):
    data = "".join("line %d\n" % i for i in range(2000))
    cmd = [crictl.path, "-c", crictl.config, "-r", crictl.endpoint, "-i", crictl.endpoint, "exec", "-i",
           "--transport", transport, box.id, "/bin/cat"]
    r = subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=120, env=crictl.env)
    assert r.returncode == 0, r
    assert r.stdout == data


def run_in_pty(argv, env, send=b"", timeout=60, rows=33, cols=101):
    """Run argv with a pseudo-terminal of rows x cols as its stdio; write
    send; return (exit status, everything it printed)."""
    import fcntl
    import termios
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = b""
    if send:
        os.write(fd, send)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_tty(crictl, box, transport):
    argv = [crictl.path, "-c", crictl.config, "-r", crictl.endpoint, "-i", crictl.endpoint, "exec", "-it",
            "--transport", transport, box.id, "/bin/sh", "-c",
            # the client sends its size once the session is up, which may be
            # after the command starts: wait for it to arrive
            "tty; for i in $(seq 100); do s=$(stty size 2>/dev/null); case $s in ''|'0 0') sleep 0.1;; *) break;; "
            "esac; done; echo size $s; exit 5"]
    code, out = run_in_pty(argv, crictl.env)
    text = out.decode(errors="replace")
    assert code != 0 and "command terminated with exit code 5" in text, text
    assert re.search(r"/dev/pts/\d+", text), text
    assert "size 33 101" in text, text


# ================================================================ attach and port-forward

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_attach(crictl, gcri, app, transport):
    with made_of(gcri) as m:
        pod = run_pod(crictl, m)
        c = create_ctr(crictl, m, pod, app, ["/bin/cat"])
        path = crictl.write(pod.name + "-stdin.json", dict(c.cfg, stdin=True, stdin_once=False,
                                                            metadata={"name": c.name + "i", "attempt": 0},
                                                            log_path=c.name + "i/0.log"))
        cid = crictl.out("create", "--no-pull", pod.id, path, pod.path)
        m.ctrs.append(cid)
        crictl.out("start", cid)
        cmd = [crictl.path, "-c", crictl.config, "-r", crictl.endpoint, "-i", crictl.endpoint, "attach", "-i",
               "--transport", transport, cid]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=crictl.env)
        try:
            p.stdin.write(b"hello attach\n")
            p.stdin.flush()
            got = b""
            deadline = time.monotonic() + 30
            while b"hello attach\n" not in got and time.monotonic() < deadline:
                r, _, _ = select.select([p.stdout], [], [], 1)
                if r:
                    chunk = os.read(p.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    got += chunk
            assert b"hello attach\n" in got, (got, p.stderr.read1() if p.poll() is not None else b"")
        finally:
            p.kill()
            p.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_port_forward(crictl, gcri, app, transport):
    with made_of(gcri) as m:
        pod = run_pod(crictl, m)
        # a one-shot echo-ish server on the pod's loopback: prints a banner
        start_ctr(crictl, create_ctr(crictl, m, pod, app, [
            "/bin/sh", "-c", "while true; do echo banner-$$ | nc -l -p 8080 127.0.0.1 || nc -l -p 8080 -s 127.0.0.1; done"]))
        local = free_port()
        cmd = [crictl.path, "-c", crictl.config, "-r", crictl.endpoint, "-i", crictl.endpoint, "port-forward",
               "--transport", transport, pod.id, "%d:8080" % local]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=crictl.env)
        try:
            def fetch():
                try:
                    with socket.create_connection(("127.0.0.1", local), timeout=5) as s:
                        s.settimeout(5)
                        data = b""
                        while True:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            data += chunk
                        return data if data.startswith(b"banner-") else None
                except OSError:
                    return None
            got = wait_for(fetch, 30, 0.2)
            assert got, p.stderr.read1() if p.poll() is not None else "no banner"
        finally:
            p.terminate()
            p.wait(timeout=10)


# ================================================================ RPC checks and the raw protocol

def exec_url(gcri, cid, **kw):
    req = pb.ExecRequest(container_id=cid, cmd=kw.pop("cmd", ["/bin/sh", "-c", "echo hi"]), **kw)
    return gcri.runtime("Exec", req, timeout=RPC).url


def test_exec_rpc_checks(gcri, box):
    url = exec_url(gcri, box.id, stdout=True)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/exec/[0-9a-f]{32}", url), url
    with pytest.raises(grpc.RpcError) as e:
        exec_url(gcri, "0" * 64, stdout=True)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "container_id" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        exec_url(gcri, box.id)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "stdin, stdout, or stderr" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        exec_url(gcri, box.id, tty=True, stdout=True, stderr=True)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tty" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        exec_url(gcri, box.id, stdout=True, cmd=[])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "cmd" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        gcri.runtime("PortForward", pb.PortForwardRequest(pod_sandbox_id="0" * 64), timeout=RPC)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "pod_sandbox_id" in e.value.details()


def test_exec_stopped_container(crictl, gcri, app):
    with made_of(gcri) as m:
        pod = run_pod(crictl, m)
        c = create_ctr(crictl, m, pod, app, ["/bin/true"])
        with pytest.raises(grpc.RpcError) as e:
            exec_url(gcri, c.id, stdout=True)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "not running" in e.value.details()


def http(url, head, extra=b""):
    """Send a request head for url's path; return (status, headers, body
    start) of the answer, the socket still open."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(head.replace(b"PATH", (u.path + ("?" + u.query if u.query else "")).encode()) + extra)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head_, _, rest = data.partition(b"\r\n\r\n")
    lines = head_.decode().split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    return s, status, headers, rest


def read_body(s, rest, headers):
    n = int(headers.get("content-length", ["0"])[0])
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return rest.decode()


SPDY_HEAD = (b"POST PATH HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
             b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")


def test_bad_upgrades(gcri, box):
    cases = [
        (b"GET PATH HTTP/1.1\r\nHost: x\r\n\r\n", 400, "unable to upgrade"),
        (b"POST PATH HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n", 400,
         "X-Stream-Protocol-Version is required"),
        (b"POST PATH HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
         b"X-Stream-Protocol-Version: v9.channel.k8s.io\r\n\r\n", 403, "unable to negotiate protocol"),
        (b"GET PATH HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v9.channel.k8s.io\r\n\r\n", 403,
         "not supported"),
        (b"GET PATH HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n"
         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400, "Sec-WebSocket-Version"),
        (b"DELETE PATH HTTP/1.1\r\n\r\n", 405, "GET or POST"),
    ]
    for head, code, text in cases:
        url = exec_url(gcri, box.id, stdout=True)
        s, status, headers, rest = http(url, head)
        with s:
            body = read_body(s, rest, headers)
            s.settimeout(10)
            assert s.recv(1) == b"", "no end of the connection after the refusal"
        assert status == code and text in body, (head, status, body)
        if code == 403 and b"SPDY" in head:
            assert "v4.channel.k8s.io" in headers.get("x-accepted-stream-protocol-versions", []), headers
    # garbage and oversized heads, on a valid token
    url = exec_url(gcri, box.id, stdout=True)
    s, status, headers, rest = http(url, b"\x16\x03\x01garbage\r\n\r\n")
    s.close()
    assert status == 400
    s, status, headers, rest = http(url, b"GET PATH HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    s.close()
    assert status == 431


def test_tokens_single_use_and_expiry(gcri, box):
    url = exec_url(gcri, box.id, stdout=True)
    s, status, _, _ = http(url, SPDY_HEAD)
    s.close()
    assert status == 101
    s, status, headers, rest = http(url, SPDY_HEAD)
    with s:
        assert status == 404, status
    unknown = re.sub(r"[0-9a-f]{32}$", "f" * 32, url)
    s, status, _, _ = http(unknown, SPDY_HEAD)
    s.close()
    assert status == 404
    # the suite's token_timeout is 2 s
    url = exec_url(gcri, box.id, stdout=True)
    time.sleep(2.5)
    s, status, _, _ = http(url, SPDY_HEAD)
    s.close()
    assert status == 404


def ws_connect(url, protocol):
    key = base64.b64encode(os.urandom(16)).decode()
    head = ("GET PATH HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n"
            % (key, protocol)).encode()
    s, status, headers, rest = http(url, head)
    assert status == 101, (status, rest)
    want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    assert headers["sec-websocket-accept"] == [want.decode()]
    assert headers["sec-websocket-protocol"] == [protocol]
    return s, rest


def ws_frame(payload, opcode=2, mask=True, fin=True):
    h = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        h += bytes([mbit | n])
    elif n < 65536:
        h += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        h += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return h + payload
    m = os.urandom(4)
    return h + m + bytes(b ^ m[i & 3] for i, b in enumerate(payload))


def ws_read_frames(s, buf, until_close=True, timeout=30):
    """Server frames (unmasked) until a close frame or EOF: [(opcode, payload)]."""
    frames = []
    s.settimeout(timeout)
    while True:
        while True:
            if len(buf) >= 2:
                n = buf[1] & 0x7f
                off = 2
                if n == 126 and len(buf) >= 4:
                    n, off = struct.unpack(">H", buf[2:4])[0], 4
                elif n == 127 and len(buf) >= 10:
                    n, off = struct.unpack(">Q", buf[2:10])[0], 10
                if n < 126 or off > 2:
                    if len(buf) >= off + n:
                        frames.append((buf[0] & 0x0f, buf[off:off + n]))
                        buf = buf[off + n:]
                        if frames[-1][0] == 8:
                            return frames
                        continue
            break
        chunk = s.recv(65536)
        if not chunk:
            return frames
        buf += chunk


def test_ws_exec_v5_and_status(gcri, box):
    """v5: the empty frame on stdout first, stdout, the close signal for
    stdin, the Status with the exit code on channel 3, close 1000."""
    url = exec_url(gcri, box.id, stdin=True, stdout=True, stderr=True, cmd=["/bin/sh", "-c", "cat; exit 4"])
    s, rest = ws_connect(url, "v5.channel.k8s.io")
    with s:
        s.sendall(ws_frame(b"\x00piped\n") + ws_frame(b"\xff\x00"))
        frames = ws_read_frames(s, rest)
    assert frames[0] == (2, b"\x01"), frames
    out = b"".join(p[1:] for op, p in frames if op == 2 and p[:1] == b"\x01")
    assert out == b"piped\n", frames
    status = json.loads(b"".join(p[1:] for op, p in frames if op == 2 and p[:1] == b"\x03"))
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode", status
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "4"}], status
    assert frames[-1][0] == 8 and struct.unpack(">H", frames[-1][1][:2])[0] == 1000, frames[-1]


def test_ws_base64_exec(gcri, box):
    url = exec_url(gcri, box.id, stdout=True, cmd=["/bin/sh", "-c", "printf 'a\\001b'"])
    s, rest = ws_connect(url, "v4.base64.channel.k8s.io")
    with s:
        frames = ws_read_frames(s, rest)
    out = b"".join(base64.b64decode(p[1:]) for op, p in frames if op == 1 and p[:1] == b"1")
    assert out == b"a\x01b", frames
    status = json.loads(b"".join(base64.b64decode(p[1:]) for op, p in frames if op == 1 and p[:1] == b"3"))
    assert status == {"metadata": {}, "status": "Success"}


def test_ws_bad_frames(gcri, box):
    for frame, code in ((ws_frame(b"\x00x", mask=False), 1002),
                        (ws_frame(b"\x00" * (1 << 20 + 1)), 1009)):
        url = exec_url(gcri, box.id, stdin=True, stdout=True, cmd=["/bin/cat"])
        s, rest = ws_connect(url, "v4.channel.k8s.io")
        with s:
            with contextlib.suppress(OSError):
                s.sendall(frame)
            frames = ws_read_frames(s, rest)
        closes = [p for op, p in frames if op == 8]
        assert closes and struct.unpack(">H", closes[0][:2])[0] == code, frames


def test_client_gone_kills_exec(crictl, gcri, box):
    marker = "9%d" % (os.getpid() % 1000 + 1000)
    url = exec_url(gcri, box.id, stdout=True, cmd=["/bin/sleep", marker])
    s, rest = ws_connect(url, "v4.channel.k8s.io")
    assert wait_for(lambda: ("sleep " + marker) in ps_in(crictl, box), 20, 0.2), ps_in(crictl, box)
    s.close()
    assert wait_for(lambda: ("sleep " + marker) not in ps_in(crictl, box), 20, 0.2), ps_in(crictl, box)


def test_spdy_oversized_frame(gcri, box):
    url = exec_url(gcri, box.id, stdout=True)
    s, status, _, rest = http(url, SPDY_HEAD)
    with s:
        assert status == 101
        s.sendall(struct.pack(">IB", 1, 0) + b"\xff\xff\xff")  # a DATA frame of 16 MiB - 1
        s.settimeout(10)
        data = rest
        while True:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    # GOAWAY (type 7) with PROTOCOL_ERROR, then the connection closes
    assert data[:4] == b"\x80\x03\x00\x07" and struct.unpack(">I", data[12:16])[0] == 1, data


def test_criod_killed_mid_session(crictl, gcri, box, ssuite):
    """criod SIGKILLed while an exec session is open: its descriptors close
    with it, so conmon kills the exec'd process; the restarted criod serves
    new sessions (its old URLs are gone with it: tokens live in memory)."""
    marker = "8%d" % (os.getpid() % 1000 + 1000)
    url = exec_url(gcri, box.id, stdout=True, cmd=["/bin/sleep", marker])
    unused = exec_url(gcri, box.id, stdout=True)
    s, rest = ws_connect(url, "v4.channel.k8s.io")
    try:
        assert wait_for(lambda: ("sleep " + marker) in ps_in(crictl, box), 20, 0.2), ps_in(crictl, box)
        ssuite.stop("criod", sig=9, check=False)
        ssuite.start("criod")
        assert wait_for(lambda: ("sleep " + marker) not in ps_in(crictl, box), 20, 0.2), ps_in(crictl, box)
    finally:
        s.close()
    r = crictl.run("exec", box.id, "/bin/sh", "-c", "echo again")
    assert r.stdout == "again\n", r
    # the module's client still held its connection to the killed criod:
    # its next call can fail UNAVAILABLE before it reconnects; let it
    # reconnect here, not in a later test
    def answers():
        try:
            gcri.runtime("Version", pb.VersionRequest(), timeout=RPC)
            return True
        except grpc.RpcError:
            return False
    assert wait_for(answers, 20, 0.2)
    # the restarted server listens on a port of its own; the old URL's is
    # either closed or another server's, which does not know the token
    u = urllib.parse.urlsplit(unused)
    try:
        c, status, _, _ = http(unused, SPDY_HEAD)
        c.close()
        assert status == 404, status
    except OSError:
        pass  # nothing listens there any more
    assert u.port


def open_fds(pid):
    """{fd: what it points to} of pid."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return out


def stream_sessions(crictl, gcri, box):
    """One session of every kind, each ending its own way."""
    for transport in TRANSPORTS:
        r = crictl.run("exec", "--transport", transport, box.id, "/bin/sh", "-c", "echo out; echo err >&2")
        assert r.stdout == "out\n", r
        cmd = [crictl.path, "-c", crictl.config, "-r", crictl.endpoint, "-i", crictl.endpoint, "exec", "-i",
               "--transport", transport, box.id, "/bin/cat"]
        r = subprocess.run(cmd, input="in\n", capture_output=True, text=True, timeout=120, env=crictl.env)
        assert r.returncode == 0 and r.stdout == "in\n", r
        # port-forward to a port nothing listens on in box's pod: the
        # stream is refused, the session ends when crictl goes
        local = free_port()
        p = subprocess.Popen([crictl.path, "-c", crictl.config, "-r", crictl.endpoint, "-i", crictl.endpoint,
                              "port-forward", "--transport", transport, box.pod.id, "%d:9" % local],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=crictl.env)
        try:
            def tried():
                try:
                    with socket.create_connection(("127.0.0.1", local), timeout=5) as c:
                        c.settimeout(5)
                        while c.recv(4096):
                            pass
                    return True
                except OSError:
                    return False
            assert wait_for(tried, 30, 0.2)
        finally:
            p.terminate()
            p.wait(timeout=10)
    # a client gone mid-stream
    url = exec_url(gcri, box.id, stdout=True, cmd=["/bin/sleep", "7%d" % (os.getpid() % 1000 + 1000)])
    s, _ = ws_connect(url, "v4.channel.k8s.io")
    time.sleep(0.5)
    s.close()
    # a SPDY protocol error (an oversized frame: GOAWAY, close)
    url = exec_url(gcri, box.id, stdout=True)
    c, status, _, _ = http(url, SPDY_HEAD)
    with c:
        assert status == 101
        c.sendall(struct.pack(">IB", 1, 0) + b"\xff\xff\xff")
        c.settimeout(10)
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
    # a refused upgrade, an unknown token
    c, status, _, _ = http(exec_url(gcri, box.id, stdout=True), b"GET PATH HTTP/1.1\r\nHost: x\r\n\r\n")
    c.close()
    assert status == 400
    u = urllib.parse.urlsplit(url)
    c, status, _, _ = http(urllib.parse.urlunsplit(u._replace(path="/exec/" + "0" * 32)), SPDY_HEAD)
    c.close()
    assert status == 404


def test_stream_sessions_leave_no_descriptors(crictl, box, ssuite):
    """Every kind of session ending (exec over SPDY and over WebSocket, exec
    with stdin, port-forward to a closed port, a client gone mid-stream, a
    SPDY protocol error, a refused upgrade, an unknown token) gives back
    every descriptor it took, in criod and in the monitor: after a second
    round of them criod and box's conmon hold what they held after the
    first (which opens what is opened once: the listener, criod's
    connections to the root daemons)."""
    criod = ssuite.pid("criod")
    conmons = conmon_pids(box.id)
    assert len(conmons) == 1, conmons
    # a client of its own: the module's may still hold its connection to
    # the criod an earlier test killed, which fails its next call
    gcri = ssuite.client()
    stream_sessions(crictl, gcri, box)

    def added():
        """Descriptors (number and target: a socket's inode is its own)
        that neither process held before; one closed since is no leak."""
        return [{fd: what for fd, what in a.items() if b.get(fd) != what}
                for a, b in zip((open_fds(criod), open_fds(conmons[0])), before)]
    before = (open_fds(criod), open_fds(conmons[0]))
    for _ in range(2):
        stream_sessions(crictl, gcri, box)
    assert wait_for(lambda: added() == [{}, {}], 15, 0.2), "descriptors left: criod %s, conmon %s" % tuple(added())
    gcri.close()


def test_tls(fresh_suite):
    """[streaming] tls_cert/tls_key: the URLs are https, the server speaks
    TLS (a client trusting the certificate gets criod's 404 for an unknown
    token) and a plain HTTP request on that port gets no HTTP answer."""
    import ssl
    s = fresh_suite
    cert, key = os.path.join(s.base, "stream.crt"), os.path.join(s.base, "stream.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)
    os.chmod(key, 0o644)  # criod reads it as the test user
    with open(s.config, "a") as f:
        f.write("[streaming]\ntls_cert = %s\ntls_key = %s\n" % (cert, key))
    s.start_all()
    m = re.search(r'msg="streaming server listening" url=https://127\.0\.0\.1:(\d+) ', s.log("criod"))
    assert m, s.log("criod")
    port = int(m.group(1))
    ctx = ssl.create_default_context(cafile=cert)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as t:
            t.sendall(b"GET /exec/%s HTTP/1.1\r\nHost: localhost\r\n\r\n" % (b"0" * 32))
            assert t.recv(4096).startswith(b"HTTP/1.1 404 Not Found\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"GET /exec/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"0" * 32))
        try:
            data = raw.recv(4096)
        except OSError:
            data = b""
        assert not data.startswith(b"HTTP/1.1 404"), data


def test_tls_key_without_cert_refused(fresh_suite):
    s = fresh_suite
    with open(s.config, "a") as f:
        f.write("[streaming]\ntls_key = %s\n" % os.path.join(s.base, "none.key"))
    for d in ("imaged", "netd", "spawnd"):
        s.start(d)
    log = open(os.path.join(s.log_dir, "criod.log"), "ab")
    s.logs["criod"] = log.name
    p = subprocess.run([s.binary("criod"), "--config", s.config], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=log, timeout=30)
    log.close()
    assert p.returncode == 1
    assert "tls_cert and tls_key go together" in s.log("criod")



def nofile_limit(soft, hard):
    """A preexec_fn giving the started daemon this RLIMIT_NOFILE."""
    import resource
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def stream_port(s):
    m = re.search(r'msg="streaming server listening" url=http://127\.0\.0\.1:(\d+) ', s.log("criod"))
    assert m, s.log("criod")
    return int(m.group(1))


def test_open_files_limit_raised_to_hard(fresh_suite):
    """criod raises its soft RLIMIT_NOFILE to the hard one (systemd's 1024
    soft limit is too low for many streaming sessions) and says so."""
    s = fresh_suite
    for d in ("imaged", "netd", "spawnd"):
        s.start(d)
    s.start("criod", preexec_fn=nofile_limit(300, 8192))
    assert re.search(r'msg="open files limit raised" from=300 to=8192\b', s.log("criod")), s.log("criod")
    assert "open files limit caps the streaming sessions" not in s.log("criod")
    with open("/proc/%d/limits" % s.pid("criod")) as f:
        assert re.search(r"Max open files\s+8192\s+8192", f.read())


def test_streaming_sessions_capped_by_open_files_limit(fresh_suite):
    """With a hard limit of 300 descriptors criod keeps 256 for everything
    else and 5 per session: 8 sessions. A 9th connection is closed at once
    (EOF) with a log line; when one ends, a new one is taken again."""
    s = fresh_suite
    for d in ("imaged", "netd", "spawnd"):
        s.start(d)
    s.start("criod", preexec_fn=nofile_limit(300, 300))
    assert re.search(r'msg="open files limit caps the streaming sessions" nofile=300 max_sessions=8\b',
                     s.log("criod")), s.log("criod")
    port = stream_port(s)
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
    try:
        extra = socket.create_connection(("127.0.0.1", port), timeout=10)
        assert extra.recv(1) == b""  # closed by criod, not timed out
        extra.close()
        assert wait_for(lambda: 'msg="stream connection refused: too many" max=8' in s.log("criod"), 10, 0.1)
        held.pop().close()
        # once criod has seen that close, a new connection is served: an
        # unknown token gets its 404
        def served():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                    c.sendall(b"GET /exec/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"0" * 32))
                    return c.recv(64).startswith(b"HTTP/1.1 404")
            except ConnectionResetError:  # refused (closed with our bytes unread): not yet
                return False
        assert wait_for(served, 10, 0.2)
    finally:
        for h in held:
            h.close()
    c = s.client()  # the CRI socket still serves
    try:
        assert c.runtime("Version", pb.VersionRequest()).runtime_name == "criod"
    finally:
        c.close()
