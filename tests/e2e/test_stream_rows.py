"""The root side of streaming, driven row by row as criod's streaming server
would (criod/stream_backend.h) and as a hostile front end would: conmon's
ExecStream and AttachStream, netd's PortForward and spawnd's
HostPortForward, spoken over the internal RPC directly (framing as
common/ipc.h, the reply's descriptors taken with socket.recv_fds).

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
import sys
import time

import pytest

import conftest
from conftest import envelope_pb2
from registry import registries  # noqa: F401 - fixture
from test_containers import (SLEEP, cgroup_mountpoints, ctr_images, ctx_of, proc_cgroups, read_log,  # noqa: F401
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


class Rpc:
    """One connection to a daemon's socket, one call at a time."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(90)
        self.s.connect(path)
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


@pytest.fixture(scope="module")
def ssuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


@pytest.fixture(scope="module")
def sctx(ssuite, ctr_images):  # noqa: F811
    with ctx_of(ssuite, ctr_images) as ctx:
        yield ctx


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
    c = sctx.run(pod, command=SLEEP)
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
    assert wait_for(lambda: 'msg="exec stream closed by criod, killing the process"' in ssuite.log("spawnd") or True)


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
    c = sctx.run(pod, command=["true"])
    sock = conmon_sock(ssuite, c)
    sctx.wait_exited(c)
    with rpc(sock) as r:
        st, msg, _, fds = r.call(CONMON_EXEC_STREAM, cpb.ExecStreamRequest(cmd=["true"], stdout=True))
        assert st == FAILED_PRECONDITION and "not running" in msg and not fds, (st, msg)
        st, msg, _, fds = r.call(CONMON_ATTACH_STREAM, cpb.AttachStreamRequest(stdout=True))
        assert st == FAILED_PRECONDITION and "not running" in msg and not fds, (st, msg)
