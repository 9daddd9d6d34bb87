"""The root side of streaming, driven row by row as criod's streaming server
would (criod/stream_backend.h) and as a hostile front end would: conmon's
ExecStream and AttachStream, netd's PortForward and spawnd's
HostPortForward, spoken over the internal RPC directly (framing as
common/ipc.h, the reply's descriptors taken with socket.recv_fds), on
connections made with criod's uid (the daemons trust nothing it sends), on
a node with the default policy and on one with hardened.conf.

Behaviour asserted:
  ExecStream   pipes: stdout/stderr as written, stdin reaches the process,
               STREAM_CTL_EXIT carries the exit code (and 128+9 for a
               SIGKILL), sent once the output is closed; tty: one pty
               master for in and out, a resize record shows in `stty size`;
               closing ctl SIGKILLs the process (none left in the
               container's cgroup, none of conmon's files left); at most
               CONMON_EXEC_STREAMS_MAX at once (RESOURCE_EXHAUSTED); bad
               arguments INVALID_ARGUMENT naming the field; a runtime error
               (no such executable) INTERNAL with its message; not running
               FAILED_PRECONDITION.
  AttachStream two attachers see the container's output while its CRI log
               keeps growing; one that never reads is dropped, the other
               and the log go on; stdin reaches the container, with
               stdin_once closed after the first attacher's stdin ends; a
               container without stdin gives none; a TTY container's
               resize shows in `stty size`; at most CONMON_ATTACH_MAX.
  PortForward  netd: a `busybox nc -l` in the pod is reached through the
               socket netd connected inside its namespace; nothing
               listening: UNAVAILABLE naming the port; port 0 / 65536, a bad
               id: INVALID_ARGUMENT; a pod netd did not make (a host-network
               pod, an unknown id): NOT_FOUND. spawnd: the same for a
               host-network pod (a listener on the host's loopback); a pod
               with its own network namespace FAILED_PRECONDITION.
"""
import contextlib
import os
import select
import socket
import struct
import subprocess
import time

import pytest

import conftest
from conftest import envelope_pb2
from registry import registries  # noqa: F401 - fixture
from test_containers import (SLEEP, cgroup_mountpoints, ctr_images, ctx_of, proc_cgroups, sc_of,  # noqa: F401
                             started_suite)
from test_pods import wait_for

subprocess.run(["protoc", "--proto_path=" + os.path.join(conftest.ROOT, "proto"), "--python_out=" + conftest._PB_DIR,
                "internal/conmon.proto", "internal/netd.proto", "internal/spawnd.proto"], check=True)
import internal.conmon_pb2 as cpb  # noqa: E402
import internal.netd_pb2 as npb  # noqa: E402
import internal.spawnd_pb2 as spb  # noqa: E402

# common/api.h
CONMON_EXEC_STREAM, CONMON_ATTACH_STREAM = 9, 10
NETD_PORT_FORWARD = 6
SPAWND_HOST_PORT_FORWARD = 8
# conmon/conmon.h
EXEC_STREAMS_MAX, ATTACH_MAX, ATTACH_BUFFER = 32, 16, 1 << 20
# common/status.h
OK, INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE = 0, 3, 5, 9, 8, 13, 14
# common/stream_ctl.h
CTL_RESIZE, CTL_EXIT = 1, 2
CTL = struct.Struct("=III")


def connect_as(path, user):
    """A connection to path made by a child running as user (so the daemon's
    SO_PEERCRED sees criod's uid, as from a hostile front end), handed back."""
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            socket.send_fds(b, [b"x"], [s.fileno()])
            code = 0
        finally:
            os._exit(code)
    b.close()
    try:
        _msg, fds, _flags, _addr = socket.recv_fds(a, 1, 1)
    finally:
        a.close()
        _, status = os.waitpid(pid, 0)
    assert status == 0 and len(fds) == 1, (status, fds)
    return socket.socket(fileno=fds[0])


class Rpc:
    """One connection to a daemon's socket as criod's user, one call at a time."""
    user = None  # the criod user (set by the module's fixture)

    def __init__(self, path):
        self.s = connect_as(path, Rpc.user)
        self.s.settimeout(90)
        self.n = 0

    def close(self):
        self.s.close()

    def call(self, method, req, resp_cls=None):
        """(status, message, response or None, fds)."""
        self.n += 1
        env = envelope_pb2.Envelope(call_id=self.n, method=method, request_id="stream-rows-%d" % self.n,
                                    body=req.SerializeToString())
        data = env.SerializeToString()
        self.s.sendall(struct.pack("<I", len(data)) + data)
        buf, fds = b"", []
        while len(buf) < 4 or len(buf) < 4 + struct.unpack("<I", buf[:4])[0]:
            chunk, got, _flags, _addr = socket.recv_fds(self.s, 1 << 20, 16)
            fds += got
            assert chunk, "connection closed"
            buf += chunk
        rep = envelope_pb2.Envelope.FromString(buf[4:])
        assert rep.call_id == self.n and rep.nfds == len(fds), (rep, fds)
        resp = resp_cls.FromString(rep.body) if resp_cls and rep.status == OK else None
        if rep.status != OK:
            assert not fds, fds
        return rep.status, rep.message, resp, fds


@contextlib.contextmanager
def rpc(path):
    r = Rpc(path)
    try:
        yield r
    finally:
        r.close()


class Stream:
    """The fds of a session as stream_backend.h names them."""

    def __init__(self, resp, fds):
        fds = list(fds)
        self.ctl = socket.socket(fileno=fds.pop(0))
        self.fds = {}
        self.input = fds.pop(0) if resp.stdin else -1
        self.out = fds.pop(0) if resp.stdout else -1
        self.err = fds.pop(0) if resp.stderr else -1
        assert not fds

    def close(self):
        for fd in (self.input, self.out, self.err):
            if fd >= 0:
                os.close(fd)
        self.input = self.out = self.err = -1
        self.ctl.close()

    def close_stdin(self):
        os.close(self.input)
        self.input = -1

    def write(self, data):
        os.write(self.input, data)

    def resize(self, cols, rows):
        self.ctl.send(CTL.pack(CTL_RESIZE, cols, rows))

    def read_until(self, fd, pred, timeout=30):
        data = b""
        deadline = time.monotonic() + timeout
        while not pred(data):
            left = deadline - time.monotonic()
            assert left > 0, "timed out; got %r" % data
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: a pty whose other side is closed
                chunk = b""
            if not chunk:
                break
            data += chunk
        return data

    def read_all(self, fd, timeout=30):
        return self.read_until(fd, lambda d: False, timeout)

    def exit_code(self, timeout=30):
        """The STREAM_CTL_EXIT record, then EOF."""
        self.ctl.settimeout(timeout)
        rec = self.ctl.recv(64)
        assert len(rec) == CTL.size, rec
        t, a, _b = CTL.unpack(rec)
        assert t == CTL_EXIT, rec
        assert self.ctl.recv(64) == b""
        return struct.unpack("=i", struct.pack("=I", a))[0]


HARDENED = os.path.join(conftest.ROOT, "packaging", "criod.conf.d", "hardened.conf")


@pytest.fixture(scope="module", params=["default", "hardened"])
def ssuite(request, test_user, registries, ctr_images):  # noqa: F811
    """Both policies: hardened.conf loads the filter every container (and
    every exec) inherits in spawnd and conmon, and spawnd's own is stricter.
    Its host namespaces are let through here, so that HostPortForward runs
    under that filter too."""
    Rpc.user = test_user
    extra = ""
    if request.param == "hardened":
        with open(HARDENED) as f:
            extra = f.read().replace("allow_host_namespaces = false", "allow_host_namespaces = true")
        assert "allow_host_namespaces = true" in extra
    with started_suite(registries, ctr_images, extra=extra) as s:
        yield s


@pytest.fixture(scope="module")
def sctx(ssuite, ctr_images):  # noqa: F811
    with ctx_of(ssuite, ctr_images) as ctx:
        yield ctx


def runtime_default():
    """Every container here has the RuntimeDefault profile (hardened.conf
    allows no unconfined one)."""
    return sc_of(seccomp=conftest.api_pb2.SecurityProfile.RuntimeDefault)


def conmon_sock(s, c):
    return wait_for(lambda: next((p for p in (os.path.join(s.run_dir, "containers", c.id, "conmon.sock"),
                                              os.path.join(s.run_dir, "s", c.id)) if os.path.exists(p)), None))


def cgroup_procs(pid):
    """The pids in the cgroup of pid (v2; v1: its pids and memory cgroups)."""
    mp, cgs = cgroup_mountpoints(), proc_cgroups(pid)
    out = set()
    for key in ("", "pids", "memory"):
        if key in mp and key in cgs:
            try:
                with open(os.path.join(mp[key] + cgs[key], "cgroup.procs")) as f:
                    out |= {int(x) for x in f.read().split()}
            except OSError:
                pass
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.fixture(scope="module")
def running(ssuite, sctx):
    """A running container and its conmon socket."""
    pod = sctx.pod()
    c = sctx.run(pod, sc=runtime_default(), command=SLEEP)
    return {"pod": pod, "ctr": c, "sock": conmon_sock(ssuite, c)}


def exec_stream(sock, cmd, tty=False, stdin=False, stdout=True, stderr=True):
    with rpc(sock) as r:
        st, msg, resp, fds = r.call(CONMON_EXEC_STREAM, cpb.ExecStreamRequest(cmd=cmd, tty=tty, stdin=stdin,
                                                                              stdout=stdout, stderr=stderr),
                                    cpb.StreamResponse)
    assert st == OK, (st, msg)
    return Stream(resp, fds)


# ================================================================ ExecStream

def test_exec_stream_pipes_output_and_exit_code(running):
    x = exec_stream(running["sock"], ["sh", "-c", "echo out; echo err >&2; exit 7"])
    try:
        assert x.input == -1 and x.out >= 0 and x.err >= 0
        assert x.read_all(x.out) == b"out\n"
        assert x.read_all(x.err) == b"err\n"
        assert x.exit_code() == 7
    finally:
        x.close()


def test_exec_stream_stdin_reaches_the_process(running):
    x = exec_stream(running["sock"], ["sh", "-c", "read a; echo got:$a; cat"], stdin=True, stderr=False)
    try:
        assert x.err == -1
        x.write(b"hello\n")
        assert x.read_until(x.out, lambda d: b"got:hello\n" in d) == b"got:hello\n"
        x.write(b"more\n")
        x.close_stdin()  # cat sees EOF and exits
        assert x.read_all(x.out) == b"more\n"
        assert x.exit_code() == 0
    finally:
        x.close()


def test_exec_stream_exit_waits_for_the_output(running):
    # The shell exits at once; a background child holds stdout for a while:
    # the exit comes only after the output is closed, so nothing is lost.
    x = exec_stream(running["sock"], ["sh", "-c", "(sleep 1; echo late) & exit 3"], stderr=False)
    try:
        assert x.read_all(x.out) == b"late\n"
        assert x.exit_code() == 3
    finally:
        x.close()


def test_exec_stream_tty_resize_shows_in_stty(running):
    x = exec_stream(running["sock"], ["sh"], tty=True, stdin=True, stderr=False)
    try:
        assert x.input >= 0 and x.out >= 0 and x.err == -1
        assert os.isatty(x.out)
        x.resize(123, 45)
        x.write(b"stty size; exit 5\n")
        out = x.read_until(x.out, lambda d: b"45 123" in d)
        assert b"45 123" in out, out
        x.read_all(x.out)
        assert x.exit_code() == 5
    finally:
        x.close()


def test_exec_stream_tty_output_before_the_exit_is_kept(running):
    x = exec_stream(running["sock"], ["echo", "tty-out"], tty=True, stdin=False, stderr=False)
    try:
        assert x.input == -1 and os.isatty(x.out)
        assert x.read_all(x.out) == b"tty-out\r\n"  # the terminal's ONLCR
        assert x.exit_code() == 0
    finally:
        x.close()


def test_closing_ctl_kills_the_process(running, ssuite):
    c = running["ctr"]
    init = c.pid()
    x = exec_stream(running["sock"], ["sh", "-c", "sleep 4321 & sleep 4322; echo never"], stderr=False)
    marks = ("sleep 4321", "sleep 4322")
    try:
        assert wait_for(lambda: {m for p in cgroup_procs(init) for m in marks if m in cmdline(p)} == set(marks),
                        timeout=15), "the exec'd processes did not show up"
    finally:
        x.close()  # ctl among them: the session ends
    assert wait_for(lambda: not [p for p in cgroup_procs(init) if any(m in cmdline(p) for m in marks)],
                    timeout=15), [cmdline(p) for p in cgroup_procs(init)]
    assert init in cgroup_procs(init)
    # conmon keeps no pid file, log or console socket of the session
    sdir = os.path.dirname(running["sock"])
    assert wait_for(lambda: not [f for f in os.listdir(sdir) if f.startswith("exec-")], timeout=10), os.listdir(sdir)
    assert 'msg="exec stream closed by criod, killing the process"' in open(conmon_log(ssuite, running["ctr"])).read()


def test_sigkill_is_128_plus_9(running):
    x = exec_stream(running["sock"], ["sh", "-c", "kill -9 $$"], stderr=False)
    try:
        assert x.read_all(x.out) == b""
        assert x.exit_code() == 137
    finally:
        x.close()


def test_exec_stream_refusals(running, ssuite):
    sock = running["sock"]
    with rpc(sock) as r:
        for req, field in [
            (cpb.ExecStreamRequest(stdout=True), "cmd"),
            (cpb.ExecStreamRequest(cmd=[""], stdout=True), "cmd"),
            (cpb.ExecStreamRequest(cmd=["x"] * 4097, stdout=True), "cmd"),
            (cpb.ExecStreamRequest(cmd=["a" * 600000, "b" * 600000], stdout=True), "cmd"),
            (cpb.ExecStreamRequest(cmd=["true"]), "stdin, stdout and stderr"),
            (cpb.ExecStreamRequest(cmd=["true"], tty=True, stdout=True, stderr=True), "stderr"),
        ]:
            st, msg, _, fds = r.call(CONMON_EXEC_STREAM, req)
            assert st == INVALID_ARGUMENT and field in msg and not fds, (st, msg)
        # over the row's cap (2 MiB): refused before it is decoded
        st, msg, _, _ = r.call(CONMON_EXEC_STREAM, cpb.ExecStreamRequest(cmd=["a" * (3 << 20)], stdout=True))
        assert st == RESOURCE_EXHAUSTED and "ExecStream" in msg, (st, msg)
        # the runtime's own refusal, with its message
        st, msg, _, fds = r.call(CONMON_EXEC_STREAM, cpb.ExecStreamRequest(cmd=["/no/such/binary"], stdout=True))
        assert st == INTERNAL and "/no/such/binary" in msg and not fds, (st, msg)
    # nothing of those is left in conmon's state directory
    sdir = os.path.dirname(sock)
    assert not [f for f in os.listdir(sdir) if f.startswith("exec-")], os.listdir(sdir)


def test_exec_streams_are_bounded(running):
    init = running["ctr"].pid()
    xs = []
    try:
        for i in range(EXEC_STREAMS_MAX):
            xs.append(exec_stream(running["sock"], ["sleep", "%d" % (5000 + i)], stderr=False))
        with rpc(running["sock"]) as r:
            st, msg, _, fds = r.call(CONMON_EXEC_STREAM, cpb.ExecStreamRequest(cmd=["true"], stdout=True))
        assert st == RESOURCE_EXHAUSTED and "%d exec streams" % EXEC_STREAMS_MAX in msg and not fds, (st, msg)
    finally:
        for x in xs:
            x.close()
    assert wait_for(lambda: not [p for p in cgroup_procs(init) if "sleep 50" in cmdline(p)], timeout=30)
    # and a new one works again
    x = exec_stream(running["sock"], ["echo", "again"], stderr=False)
    try:
        assert x.read_all(x.out) == b"again\n" and x.exit_code() == 0
    finally:
        x.close()


def test_exec_stream_of_a_stopped_container(ssuite, sctx):
    pod = sctx.pod()
    c = sctx.run(pod, sc=runtime_default(), command=["true"])
    sock = conmon_sock(ssuite, c)
    sctx.wait_exited(c)
    with rpc(sock) as r:
        st, msg, _, fds = r.call(CONMON_EXEC_STREAM, cpb.ExecStreamRequest(cmd=["true"], stdout=True))
        assert st == FAILED_PRECONDITION and "not running" in msg and not fds, (st, msg)
        st, msg, _, fds = r.call(CONMON_ATTACH_STREAM, cpb.AttachStreamRequest(stdout=True))
        assert st == FAILED_PRECONDITION and "not running" in msg and not fds, (st, msg)


# ================================================================ AttachStream

def run_cfg(ctx, pod, stdin=False, stdin_once=False, tty=False, **kw):
    cfg = ctx.config(sc=runtime_default(), **kw)
    cfg.stdin, cfg.stdin_once, cfg.tty = stdin, stdin_once, tty
    return ctx.start(ctx.create_cfg(pod, cfg))


def attach(sock, stdin=False, stdout=True, stderr=False):
    with rpc(sock) as r:
        st, msg, resp, fds = r.call(CONMON_ATTACH_STREAM, cpb.AttachStreamRequest(stdin=stdin, stdout=stdout,
                                                                                  stderr=stderr),
                                    cpb.StreamResponse)
    assert st == OK, (st, msg)
    return Stream(resp, fds)


CHUNK = 512 << 10
ECHO_LOOP = 'while read l; do if [ "$l" = chunk ]; then head -c %d /dev/zero | tr "\\0" a; echo; ' % CHUNK + \
            'else echo got:$l; echo err:$l >&2; fi; done'


def test_attach_fans_out_while_the_log_grows(ssuite, sctx):
    pod = sctx.pod()
    c = run_cfg(sctx, pod, stdin=True, command=["sh", "-c", ECHO_LOOP])
    sock = conmon_sock(ssuite, c)
    a = attach(sock, stdin=True, stdout=True, stderr=True)
    b = attach(sock, stdout=True)
    try:
        assert a.input >= 0 and a.err >= 0 and b.input == -1 and b.err == -1
        a.write(b"one\n")
        assert a.read_until(a.out, lambda d: b"got:one\n" in d) == b"got:one\n"
        assert a.read_until(a.err, lambda d: b"err:one\n" in d) == b"err:one\n"
        assert b.read_until(b.out, lambda d: b"got:one\n" in d) == b"got:one\n"
        # the log has it too, and keeps growing while both are attached
        assert wait_for(lambda: "got:one" in open(c.log).read())
        a.write(b"two\n")
        assert b.read_until(b.out, lambda d: b"got:two\n" in d) == b"got:two\n"
        assert a.read_until(a.out, lambda d: b"got:two\n" in d) == b"got:two\n"
        assert wait_for(lambda: "got:two" in open(c.log).read())
        # b stops reading; 2 MiB more in chunks a reads as they come: b's
        # buffer (1 MiB) fills and b is dropped, a and the log go on
        for _ in range(4):
            a.write(b"chunk\n")
            got = a.read_until(a.out, lambda d: d.endswith(b"\n"), timeout=60)
            assert got == b"a" * CHUNK + b"\n", len(got)
        assert len(b.read_all(b.out)) <= ATTACH_BUFFER
        b.ctl.settimeout(10)
        assert b.ctl.recv(64) == b""  # dropped: ctl closed
        assert wait_for(lambda: 'msg="attach ended"' in open(conmon_log(ssuite, c)).read() and
                        'reason="too slow: its output buffer is full"' in open(conmon_log(ssuite, c)).read())
        a.write(b"three\n")
        assert a.read_until(a.out, lambda d: b"got:three\n" in d).endswith(b"got:three\n")
        assert wait_for(lambda: "got:three" in open(c.log).read())
        # a new attacher is served again
        d = attach(sock)
        a.write(b"four\n")
        assert d.read_until(d.out, lambda x: b"got:four\n" in x) == b"got:four\n"
        d.close()
    finally:
        a.close()
        b.close()


def conmon_log(s, c):
    """conmon's own log (conmon.log in its state directory)."""
    return os.path.join(s.state_dir, "spawnd", "containers", c.id, "conmon.log")


def test_attach_stdin_once(ssuite, sctx):
    pod = sctx.pod()
    c = run_cfg(sctx, pod, stdin=True, stdin_once=True,
                command=["sh", "-c", "while read l; do echo got:$l; done; echo stdin-closed; sleep 3600"])
    sock = conmon_sock(ssuite, c)
    a = attach(sock, stdin=True)
    try:
        a.write(b"x\n")
        assert a.read_until(a.out, lambda d: b"got:x\n" in d) == b"got:x\n"
        a.close_stdin()
        assert a.read_until(a.out, lambda d: b"stdin-closed\n" in d).endswith(b"stdin-closed\n")
    finally:
        a.close()
    # the container's stdin is gone: a later attach gets none
    b = attach(sock, stdin=True)
    try:
        assert b.input == -1 and b.out >= 0
    finally:
        b.close()


def test_attach_without_stdin_gets_none(running):
    a = attach(running["sock"], stdin=True, stdout=True)
    try:
        assert a.input == -1 and a.out >= 0
    finally:
        a.close()


def test_attach_tty_resize(ssuite, sctx):
    pod = sctx.pod()
    c = run_cfg(sctx, pod, stdin=True, tty=True, command=["sh"])
    sock = conmon_sock(ssuite, c)
    a = attach(sock, stdin=True, stdout=True, stderr=True)
    try:
        assert a.input >= 0 and a.out >= 0 and a.err == -1  # the terminal merges both
        a.resize(77, 22)
        a.write(b"stty size\n")
        assert b"22 77" in a.read_until(a.out, lambda d: b"22 77" in d)
    finally:
        a.close()
    assert wait_for(lambda: "22 77" in open(c.log).read())


def test_attachers_are_bounded_and_end_with_the_container(ssuite, sctx):
    pod = sctx.pod()
    c = run_cfg(sctx, pod, stdin=True, command=["sh", "-c", "read l; echo bye; exit 4"])
    sock = conmon_sock(ssuite, c)
    xs = [attach(sock) for _ in range(ATTACH_MAX)]
    try:
        with rpc(sock) as r:
            st, msg, _, fds = r.call(CONMON_ATTACH_STREAM, cpb.AttachStreamRequest(stdout=True))
            assert st == RESOURCE_EXHAUSTED and "%d attachers" % ATTACH_MAX in msg and not fds, (st, msg)
            st, msg, _, fds = r.call(CONMON_ATTACH_STREAM, cpb.AttachStreamRequest())
            assert st == INVALID_ARGUMENT and "stdout" in msg and not fds, (st, msg)
        xs[0].close()
        w = attach(sock, stdin=True)
        xs[0] = w
        w.write(b"go\n")
        # every attacher sees the last output, then EOF on its pipe and ctl
        for x in xs:
            assert x.read_all(x.out) == b"bye\n"
            x.ctl.settimeout(10)
            assert x.ctl.recv(64) == b""
    finally:
        for x in xs:
            x.close()
    assert sctx.wait_exited(c).exit_code == 4


# ================================================================ PortForward

NC_SCRIPT = "echo hello-from-pod | /bin/busybox nc -l -p 8080 > /tmp/got; sleep 3600"


def port_forward(path, method, pod_id, port, resp_cls):
    with rpc(path) as r:
        req = (npb.PortForwardRequest if method == NETD_PORT_FORWARD else spb.HostPortForwardRequest)(
            pod_id=pod_id, port=port)
        return r.call(method, req, resp_cls)


def test_port_forward_reaches_nc_in_the_pod(ssuite, sctx):
    pod = sctx.pod()
    c = sctx.run(pod, sc=runtime_default(), command=["sh", "-c", NC_SCRIPT])

    def connected():
        st, msg, _, fds = port_forward(ssuite.sock("netd"), NETD_PORT_FORWARD, pod.id, 8080, npb.PortForwardResponse)
        assert st in (OK, UNAVAILABLE), (st, msg)
        return fds[0] if st == OK else None
    fd = wait_for(connected, timeout=20)
    assert fd is not None, "nothing listened on 8080"
    sk = socket.socket(fileno=fd)
    try:
        assert sk.family in (socket.AF_INET, socket.AF_INET6) and sk.type == socket.SOCK_STREAM
        assert sk.getpeername()[0] in ("127.0.0.1", "::1")
        sk.settimeout(20)
        data = b""
        while b"\n" not in data:
            chunk = sk.recv(100)
            assert chunk, data
            data += chunk
        assert data == b"hello-from-pod\n"
        sk.sendall(b"to-pod\n")
        sk.shutdown(socket.SHUT_WR)
    finally:
        sk.close()
    assert wait_for(lambda: c.sh("cat /tmp/got")[1] == "to-pod\n", timeout=20)
    # nothing listens any more: refused, naming the port
    st, msg, _, fds = port_forward(ssuite.sock("netd"), NETD_PORT_FORWARD, pod.id, 8080, npb.PortForwardResponse)
    assert st == UNAVAILABLE and "port 8080" in msg and "refused" in msg and not fds, (st, msg)


def test_port_forward_refusals(ssuite, sctx):
    own = sctx.pod()
    host = sctx.pod(network=conftest.api_pb2.NODE)
    netd, spawnd = ssuite.sock("netd"), ssuite.sock("spawnd")
    for path, method, resp, pod_ok, pod_other in [
        (netd, NETD_PORT_FORWARD, npb.PortForwardResponse, own, host),
        (spawnd, SPAWND_HOST_PORT_FORWARD, spb.HostPortForwardResponse, host, own),
    ]:
        for port in (0, 65536, 1 << 31):
            st, msg, _, fds = port_forward(path, method, pod_ok.id, port, resp)
            assert st == INVALID_ARGUMENT and "port must be 1..65535" in msg and not fds, (path, port, st, msg)
        for bad in ("", "xyz", "A" * 64, pod_ok.id[:12], pod_ok.id + "0", "../" + pod_ok.id[3:]):
            st, msg, _, fds = port_forward(path, method, bad, 80, resp)
            assert st == INVALID_ARGUMENT and "pod_id" in msg and not fds, (path, bad, st, msg)
        st, msg, _, fds = port_forward(path, method, "ab" * 32, 80, resp)
        assert st == NOT_FOUND and "ab" * 32 in msg and not fds, (path, st, msg)
        # a pod of the other kind: netd made no network for a host-network
        # pod; spawnd connects in the host's namespace only for one
        st, msg, _, fds = port_forward(path, method, pod_other.id, 80, resp)
        if method == NETD_PORT_FORWARD:
            assert st == NOT_FOUND and pod_other.id in msg and not fds, (st, msg)
        else:
            assert st == FAILED_PRECONDITION and "network namespace of its own" in msg and not fds, (st, msg)


def test_host_port_forward_reaches_the_host_loopback(ssuite, sctx):
    host = sctx.pod(network=conftest.api_pb2.NODE)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        st, msg, _, fds = port_forward(ssuite.sock("spawnd"), SPAWND_HOST_PORT_FORWARD, host.id, port,
                                       spb.HostPortForwardResponse)
        assert st == OK and len(fds) == 1, (st, msg)
        sk = socket.socket(fileno=fds[0])
        srv.settimeout(10)
        peer, _ = srv.accept()
        try:
            assert peer.getpeername() == sk.getsockname()
            sk.sendall(b"ping")
            peer.settimeout(10)
            assert peer.recv(4) == b"ping"
        finally:
            peer.close()
            sk.close()
    finally:
        srv.close()
    st, msg, _, fds = port_forward(ssuite.sock("spawnd"), SPAWND_HOST_PORT_FORWARD, host.id, port,
                                   spb.HostPortForwardResponse)
    assert st == UNAVAILABLE and "port %d" % port in msg and not fds, (st, msg)
