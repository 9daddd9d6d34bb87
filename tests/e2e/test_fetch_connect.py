"""FetchConnect as a hostile imaged-fetch would send it (issue 14).

imaged-fetch has no network of its own: every connection a pull makes is
asked of imaged (FetchConnect on the helper's fd 3), which checks it and
hands back the connected socket. Here a fake helper, a script that imaged
starts in place of imaged-fetch (from a copy of imaged's binary in a
directory of the test's, since imaged runs the imaged-fetch next to its
own binary), asks for connections the pull does not use: each is refused
with a clear message, logged by imaged, and never connected; a host the
configuration lists is connected and its socket handed over.

Through a proxy (http_proxy in imaged's environment) the helper stays
without network and uses no proxy itself: imaged opens the tunnel (HTTP
CONNECT) and hands it over. A real pull goes through a forward proxy the
test runs on loopback, only as CONNECT tunnels to the registry; with
no_proxy naming the registry it goes direct; and a fake helper asking for
the cloud metadata address gets no tunnel, the proxy never asked.
"""
import http.client
import http.server
import urllib.parse
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile

import grpc

import conftest
from conftest import ROOT
from registry import registries  # noqa: F401 - fixture
import registry as R
from test_images import publish, pull, pull_error, registry_suite, tok

FAKE = r'''#!/usr/bin/python3
import json, os, socket, struct, sys
sys.path.insert(0, %(pb)r)
from internal import envelope_pb2, fetch_pb2

def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b

def recv_frame(s):
    head, fds, _, _ = socket.recv_fds(s, 4, 4)
    if not head:
        raise EOFError
    head += recv_exact(s, 4 - len(head))
    (n,) = struct.unpack("<I", head)
    env = envelope_pb2.Envelope()
    env.ParseFromString(recv_exact(s, n))
    return env, fds

def send(s, call_id, method, body):
    b = envelope_pb2.Envelope(call_id=call_id, method=method, body=body.SerializeToString()).SerializeToString()
    s.sendall(struct.pack("<I", len(b)) + b)

conn = socket.socket(fileno=3)
chan = socket.socket(fileno=4)
env, _ = recv_frame(chan)                       # FetchStart
send(chan, env.call_id, env.method, fetch_pb2.FetchStartResponse())
results = []
for i, t in enumerate(json.load(open(%(targets)r))):
    authority, port, tls = (t + [False])[:3]
    send(conn, 100 + i, 5, fetch_pb2.FetchConnectRequest(authority=authority, port=port, tls=tls))
    env, fds = recv_frame(conn)
    o = fetch_pb2.FetchConnectResponse()
    o.ParseFromString(env.body)
    peer = None
    for fd in fds:
        s = socket.socket(fileno=fd)
        peer = list(s.getpeername()[:2])
        s.close()
    results.append({"authority": authority, "port": port, "call_id": env.call_id, "status": env.status,
                    "error": o.error, "message": o.message, "nfds": len(fds), "peer": peer})
with open(%(results)r + ".tmp", "w") as f:
    json.dump(results, f)
os.rename(%(results)r + ".tmp", %(results)r)
env, _ = recv_frame(chan)                       # FetchManifest: the pull ends here
send(chan, env.call_id, env.method, fetch_pb2.FetchManifestResponse(error=-1, message="fake helper done"))
try:
    recv_frame(chan)
except EOFError:
    pass
'''


def fake_helper(work, targets):
    """A directory holding a copy of imaged and the fake imaged-fetch asking
    for targets; returns (bindir, results path)."""
    pbdir = os.path.join(work, "pb")
    os.mkdir(pbdir)
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + pbdir,
                    "internal/envelope.proto", "internal/imaged.proto", "internal/fetch.proto"], check=True)
    tpath, rpath = os.path.join(work, "targets.json"), os.path.join(work, "results.json")
    with open(tpath, "w") as f:
        json.dump(targets, f)
    bindir = os.path.join(work, "bin")
    os.mkdir(bindir)
    shutil.copy2(os.path.join(conftest.BUILD, "imaged", "imaged"), bindir)
    fake = os.path.join(bindir, "imaged-fetch")
    with open(fake, "w") as f:
        f.write(FAKE % {"pb": pbdir, "targets": tpath, "results": rpath})
    os.chmod(fake, 0o755)
    os.chmod(work, 0o755)
    return bindir, rpath


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1 (absolute-form GET and HEAD, and
    CONNECT tunnels, which curl opens for https), recording each request
    line it serves."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def forward(self):
                seen.append("%s %s" % (self.command, self.path))
                u = urllib.parse.urlsplit(self.path)
                if u.scheme != "http" or not u.netloc:
                    self.send_error(400, "absolute http URL expected")
                    return
                up = http.client.HTTPConnection(u.netloc, timeout=30)
                target = u.path + ("?" + u.query if u.query else "")
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
                up.request(self.command, target, headers=hdrs)
                r = up.getresponse()
                body = r.read()
                self.send_response(r.status, r.reason)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                up.close()

            do_GET = do_HEAD = forward

            def do_CONNECT(self):
                seen.append("CONNECT %s" % self.path)
                host, _, port = self.path.rpartition(":")
                up = socket.create_connection((host, int(port)), timeout=30)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                ends = [self.connection, up]
                while True:
                    ready, _, _ = select.select(ends, [], [], 30)
                    if not ready:
                        break
                    done = False
                    for r in ready:
                        data = r.recv(65536)
                        if not data:
                            done = True
                            break
                        (up if r is self.connection else self.connection).sendall(data)
                    if done:
                        break
                up.close()
                self.close_connection = True

        self.http = R.HTTPThread(Handler)
        self.port = self.http.port

    def close(self):
        self.http.close()


def pull_with_proxy_env(registries, name, env):  # noqa: F811
    """Publish a fresh image named name, pull it through a suite whose
    imaged has env in its environment; the imaged log."""
    img = R.make_image([R.busybox_layer("gzip"), [R.file("etc/motd", name + " " + tok())]])
    repo = publish(registries.plain, img, name)
    ref = "%s/%s:v1" % (registries.plain.host, repo)
    with registry_suite(registries) as s:
        s.daemon_env["imaged"] = env
        s.start_all()
        c = s.client()
        try:
            assert pull(c, ref) == img.id
        finally:
            c.close()
        return s.log("imaged")


def test_pull_through_a_proxy_keeps_the_helper_without_network(test_user, registries):  # noqa: F811
    proxy = ForwardProxy()
    try:
        log = pull_with_proxy_env(registries, "proxied", {"http_proxy": "http://127.0.0.1:%d" % proxy.port})
        # Every connection of the pull was a tunnel imaged asked for.
        assert proxy.seen, "the proxy was not used"
        assert all(x == "CONNECT " + registries.plain.host for x in proxy.seen), proxy.seen
        assert 'msg="connected imaged-fetch through its proxy"' in log, log
        assert "proxy=127.0.0.1:%d" % proxy.port in log, log
        assert "keeps the host's network" not in log, log
    finally:
        proxy.close()


def test_pull_with_no_proxy_naming_the_registry_goes_direct(test_user, registries):  # noqa: F811
    proxy = ForwardProxy()
    try:
        log = pull_with_proxy_env(registries, "unproxied",
                                  {"http_proxy": "http://127.0.0.1:%d" % proxy.port,
                                   "no_proxy": "example.invalid, 127.0.0.0/8"})
        assert proxy.seen == [], proxy.seen
        assert "keeps the host's network" not in log, log
    finally:
        proxy.close()


def test_fetch_connect_through_a_proxy_tunnels_only_what_the_policy_allows(test_user, registries):  # noqa: F811
    work = tempfile.mkdtemp(prefix="criod-fetch-connect-")
    proxy = ForwardProxy()
    try:
        reg = registries.plain.host
        targets = [
            ["169.254.169.254", 80],                     # the cloud metadata address: no tunnel asked
            ["a/b", 443, True],                          # not host[:port]
            [reg, int(reg.rsplit(":", 1)[1])],           # the registry the configuration lists
        ]
        bindir, rpath = fake_helper(work, targets)
        with registry_suite(registries) as s:
            real = s.binary
            s.binary = lambda name: os.path.join(bindir, "imaged") if name == "imaged" else real(name)
            s.daemon_env["imaged"] = {"http_proxy": "http://127.0.0.1:%d" % proxy.port,
                                      "https_proxy": "http://127.0.0.1:%d" % proxy.port}
            s.start_all()
            c = s.client()
            try:
                e = pull_error(c, reg + "/e2e/fetch-connect:v1")
            finally:
                c.close()
            assert "fake helper done" in e.details(), e.details()
            with open(rpath) as f:
                res = json.load(f)
            log = s.log("imaged")
        meta, bad, ok = res
        assert meta["error"] == -1 and meta["nfds"] == 0, meta            # -EPERM, no socket
        assert "cloud metadata address" in meta["message"], meta
        assert bad["error"] == -22 and bad["nfds"] == 0 and "not host[:port]" in bad["message"], bad
        # The socket handed over is the proxy's, tunnelled to the registry.
        assert ok["error"] == 0 and ok["nfds"] == 1 and ok["peer"] == ["127.0.0.1", proxy.port], ok
        assert proxy.seen == ["CONNECT " + reg], proxy.seen
        assert 'msg="connection refused by the registries policy"' in log and "169.254.169.254" in log, log
    finally:
        proxy.close()
        shutil.rmtree(work, ignore_errors=True)


def test_fetch_connect_refuses_what_the_pull_does_not_use(test_user, registries):  # noqa: F811
    work = tempfile.mkdtemp(prefix="criod-fetch-connect-")
    listener = socket.socket()
    try:
        # An unlisted loopback service the helper must not reach.
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        unlisted = "127.0.0.1:%d" % listener.getsockname()[1]
        reg = registries.plain.host
        targets = [
            [unlisted, listener.getsockname()[1]],       # loopback, no [registry.HOST] section
            ["169.254.169.254", 80],                     # the cloud metadata address
            [reg, int(reg.rsplit(":", 1)[1]) + 1],       # a listed host, another port than its own
            ["registry.example", 22],                    # no port in the URL: 80 or 443 only
            ["a/b", 443],                                # not host[:port]
            [reg, int(reg.rsplit(":", 1)[1])],           # the registry the configuration lists
        ]
        bindir, rpath = fake_helper(work, targets)
        with registry_suite(registries) as s:
            real = s.binary
            s.binary = lambda name: os.path.join(bindir, "imaged") if name == "imaged" else real(name)
            s.start_all()
            c = s.client()
            try:
                e = pull_error(c, reg + "/e2e/fetch-connect:v1")
            finally:
                c.close()
            assert e.code() != grpc.StatusCode.OK
            assert "fake helper done" in e.details(), e.details()
            with open(rpath) as f:
                res = json.load(f)
            log = s.log("imaged")
        assert [r["call_id"] for r in res] == [100 + i for i in range(len(targets))], res
        assert all(r["status"] == 0 for r in res), res
        loop, meta, port, noport, bad, ok = res
        for r in (loop, meta, port, noport):
            assert r["error"] == -1 and r["nfds"] == 0, r          # -EPERM, no socket
        assert "is a loopback address" in loop["message"] and "allow_private_registries" in loop["message"], loop
        assert "[registry.%s]" % unlisted in loop["message"], loop
        assert "cloud metadata address" in meta["message"], meta
        assert "is not the port of" in port["message"], port
        assert "names no port (80 or 443)" in noport["message"], noport
        assert bad["error"] == -22 and bad["nfds"] == 0 and "not host[:port]" in bad["message"], bad
        assert ok["error"] == 0 and ok["nfds"] == 1, ok
        assert ok["peer"] == ["127.0.0.1", int(reg.rsplit(":", 1)[1])], ok
        # Never connected: the unlisted listener has nothing to accept.
        try:
            listener.accept()
            raise AssertionError("the unlisted loopback port was connected to")
        except BlockingIOError:
            pass
        assert 'msg="connection refused by the registries policy"' in log and unlisted in log, log
        assert 'msg="refused a connection imaged-fetch asked for"' in log, log
        assert "fetch-connect" in log  # the image of the pull is named with the refusal
    finally:
        listener.close()
        shutil.rmtree(work, ignore_errors=True)
