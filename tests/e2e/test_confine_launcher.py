"""spawnd's launcher as a process of its own unit (issue 14;
conmon/spawnd_launcher.c, criod-spawnd-launcher.service): spawnd-launcher
listens on a root-only SOCK_SEQPACKET socket and accepts only spawnd - uid
0, the spawnd binary beside it, in exactly the cgroup $CRIOD_SPAWND_CGROUP
names - checking each connection before it reads anything from it.

The cgroups are ones the test makes (in the hierarchy launch_peer_check
reads: the unified one on a cgroup v2 host, systemd's name=systemd one
otherwise) and removes again; nothing of the check is mocked.
"""
import contextlib
import ctypes
import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap

import pytest

import conftest
import registry as R  # noqa: F401
from registry import registries  # noqa: F401 - fixture
from test_containers import (SLEEP, caps, conmon_pids, ctr_images, ctr_suite, ctx_of, host_status, kill_pids,  # noqa: F401
                             sc_of)
from conftest import api_pb2 as pb  # noqa: F401

LAUNCH_MAGIC = 0x6c61756e
HELLO_SIZE = 24  # struct launch_hello


def cgroup_root():
    """The hierarchy whose cgroup launch_peer_check compares: the unified
    one on a v2 host, else systemd's named one, else the hybrid unified."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "/sys/fs/cgroup"
    for d in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
        if os.path.isdir(d):
            return d
    pytest.skip("no cgroup hierarchy to make the test's cgroups in")


@contextlib.contextmanager
def made_cgroup(name):
    """A cgroup /<name>-<tag> made for the test; on the way out whatever is
    still in it is killed and it is removed."""
    rel = "/%s-%s" % (name, os.urandom(3).hex())
    path = cgroup_root() + rel
    os.mkdir(path)
    try:
        yield rel, path
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                with open(os.path.join(path, "cgroup.procs")) as f:
                    kill_pids({int(x) for x in f.read().split()}, timeout=1)
        assert not os.path.exists(path), "cgroup %s left behind" % path


def joiner(cg_path):
    """A preexec_fn that moves the child into the cgroup at cg_path."""
    def join():
        with open(os.path.join(cg_path, "cgroup.procs"), "w") as f:
            f.write("0")
    return join


def launcher_env(s, spawnd_cgroup):
    return {"CRIOD_SPAWND_LAUNCHER": launcher_socket(s), "CRIOD_SPAWND_CGROUP": spawnd_cgroup}


def launcher_socket(s):
    return os.path.join(s.run_dir, "spawnd-launcher.sock")


def request(cid, log_path):
    """A well-formed struct launch_request (conmon/spawnd_launch.h)."""
    body = struct.pack("<III65s256s4096s", LAUNCH_MAGIC, 1, 0, cid.encode(), b"runc", log_path.encode())
    return body + b"\0" * (-len(body) % 4)


# Run as a separate process (optionally moved into a cgroup first): connect,
# send a request with its two descriptors at once, report what came back.
PEER = textwrap.dedent(r"""
    import os, socket, sys
    path, req, logp = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    log = open(logp, "w")
    r, w = os.pipe()
    try:
        socket.send_fds(s, [req], [log.fileno(), w])
        sent = "sent"
    except OSError as e:
        sent = "send-" + str(e.errno)
    os.close(w)
    s.settimeout(30)
    try:
        got = len(s.recv(65536))
    except ConnectionResetError:  # closed with the request unread
        got = "reset"
    print(sent, got, os.getpid())
""")


def hostile_peer(s, cid, cg_path=None):
    logp = os.path.join(s.base, "peer-%s.log" % cid[:8])
    sdir = os.path.join(s.state_dir, "spawnd", "containers", cid)
    p = subprocess.run([sys.executable, "-c", PEER, launcher_socket(s), request(cid, sdir + "/console.log").hex(),
                        logp], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       preexec_fn=joiner(cg_path) if cg_path else None)
    assert p.returncode == 0, p.stderr.decode()
    sent, n, pid = p.stdout.decode().split()
    return sent, n, int(pid)


def test_launcher_socket_is_root_only_and_refuses_any_peer_but_spawnd(test_user):
    s = conftest.Suite()
    try:
        with made_cgroup("criod-test-spawnd") as (spawnd_rel, spawnd_path):
            lp = s.start("spawnd-launcher", extra_env=launcher_env(s, spawnd_rel))
            sock = launcher_socket(s)
            st = os.stat(sock)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, st
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with pytest.raises(OSError) as e:  # a stream socket cannot reach a SOCK_SEQPACKET one
                probe.connect(sock)
            probe.close()
            assert e.value.errno == 91, e.value  # EPROTOTYPE

            # Not root: the socket's mode keeps it out.
            p = subprocess.run([sys.executable, "-c", "import socket,sys\ns=socket.socket(socket.AF_UNIX,"
                                "socket.SOCK_SEQPACKET)\ntry:\n s.connect(sys.argv[1])\nexcept OSError as e:\n"
                                " print(e.errno)", sock], user=test_user.pw_uid, stdout=subprocess.PIPE, timeout=30)
            assert p.stdout.decode().strip() == "13", p  # EACCES

            python = os.path.realpath(sys.executable)
            spawnd = os.path.realpath(s.binary("spawnd"))
            # Root, another binary, in no unit's cgroup; then root, another
            # binary, in spawnd's very cgroup: both refused before a byte
            # is read, the well-formed request with them starts nothing.
            for cg in (None, spawnd_path):
                cid = os.urandom(32).hex()
                sent, n, pid = hostile_peer(s, cid, cg)
                # Closed on it, no hello: the request was queued unread
                # (reset) or the close came first (EPIPE on the send).
                assert (sent, n) in (("sent", "0"), ("sent", "reset"), ("send-32", "0")), (sent, n)
                line = [l for l in s.log("spawnd-launcher").splitlines()
                        if 'msg="launcher refused a connection"' in l and "peer pid %d " % pid in l]
                assert len(line) == 1, s.log("spawnd-launcher")
                assert 'reason="peer pid %d runs %s, not %s"' % (pid, python, spawnd) in line[0], line[0]
                assert conmon_pids(cid) == [], "a conmon was started for a refused peer's request"
                assert cid not in s.log("spawnd-launcher")
            assert 'msg="launcher refused a request"' not in s.log("spawnd-launcher")
            assert "spawnd connected" not in s.log("spawnd-launcher")
            assert lp.poll() is None
            s.stop("spawnd-launcher")
            assert not os.path.exists(sock), "the launcher left its socket behind"
    finally:
        s.cleanup()


def test_launcher_needs_its_socket_and_spawnds_cgroup(test_user):
    """Without CRIOD_SPAWND_CGROUP (or with /, which is no unit's) it does
    not start."""
    s = conftest.Suite()
    try:
        for cg in ("", "/"):
            env = dict(os.environ, CRIOD_SPAWND_LAUNCHER=launcher_socket(s), CRIOD_SPAWND_CGROUP=cg)
            p = subprocess.run([s.binary("spawnd-launcher"), "--config", s.config], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            assert p.returncode == 1 and b"to spawnd's cgroup (not /)" in p.stdout, p.stdout
            assert not os.path.exists(launcher_socket(s))
    finally:
        s.cleanup()


def ppid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def ancestors(pid):
    out = []
    while pid > 1:
        pid = ppid_of(pid)
        out.append(pid)
    return out


def cgroup_of(pid):
    """pid's cgroup in the hierarchy launch_peer_check reads."""
    root = cgroup_root()
    with open("/proc/%d/cgroup" % pid) as f:
        lines = [l.split(":", 2) for l in f.read().splitlines()]
    if root == "/sys/fs/cgroup" or root.endswith("/unified"):
        return next(p for h, c, p in lines if h == "0")
    return next(p for h, c, p in lines if c == "name=systemd")


PR_CAPBSET_DROP = 24
CUT = (12, 16)  # CAP_NET_ADMIN, CAP_SYS_MODULE: what a hardened unit's bound leaves out


def joiner_cut(cg_path):
    """joiner, then the bounding set cut as criod-spawnd.service's
    CapabilityBoundingSet cuts spawnd's (not to the same set: enough that
    spawnd's bound is not the launcher's)."""
    join = joiner(cg_path)
    libc = ctypes.CDLL(None, use_errno=True)

    def f():
        join()
        for cap in CUT:
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "PR_CAPBSET_DROP")
    return f


def start_spawnd_failing(s, **kw):
    """spawnd started as given must not come up: its log."""
    with pytest.raises(RuntimeError) as e:
        s.start("spawnd", **kw)
    rc = s.stop("spawnd", check=False)
    assert rc == 1, (rc, str(e.value))
    return s.log("spawnd")


def test_spawnd_connects_to_the_launcher_of_its_own_unit(test_user, registries, ctr_images):  # noqa: F811
    """spawnd given CRIOD_SPAWND_LAUNCHER forks no launcher: it connects to
    spawnd-launcher (in a cgroup of its own, as under
    criod-spawnd-launcher.service), whose conmons are init's children in
    the launcher's cgroup, not spawnd's descendants. Without the socket, or
    from outside the cgroup the launcher accepts, spawnd does not start;
    when the launcher goes, spawnd stops, as when a forked launcher dies."""
    with made_cgroup("criod-test-launcher") as (lrel, lpath), \
            made_cgroup("criod-test-spawnd") as (srel, spath), \
            ctr_suite(registries) as s:
        env = launcher_env(s, srel)
        lp = None
        try:
            # No launcher listening: a clear refusal to start.
            log = start_spawnd_failing(s, extra_env=env, preexec_fn=joiner(spath))
            assert 'msg="using the launcher of its own unit" socket=%s' % launcher_socket(s) in log, log
            assert "cannot use the launcher at CRIOD_SPAWND_LAUNCHER" in log, log
            assert 'msg="forking the launcher"' not in log, log

            lp = s.start("spawnd-launcher", extra_env=env, preexec_fn=joiner(lpath))
            assert cgroup_of(lp.pid) == lrel

            # The real spawnd binary, but outside the cgroup the launcher
            # accepts (the test's own): refused, and spawnd says so.
            log = start_spawnd_failing(s, extra_env=env)
            assert "the launcher refused this spawnd" in log, log
            refused = [l for l in s.log("spawnd-launcher").splitlines()
                       if 'msg="launcher refused a connection"' in l]
            assert len(refused) == 1 and "is not in cgroup %s" % srel in refused[0], s.log("spawnd-launcher")
            assert "spawnd connected" not in s.log("spawnd-launcher")

            for d in conftest.DAEMONS:
                if d == "spawnd":
                    s.start(d, extra_env=env, preexec_fn=joiner_cut(spath))
                else:
                    s.start(d)
            s.start("criod")
            spawnd = s.pid("spawnd")
            assert cgroup_of(spawnd) == srel
            assert 'msg="connected to the launcher"' in s.log("spawnd"), s.log("spawnd")
            assert 'msg="forking the launcher"' not in s.log("spawnd")
            assert 'msg="spawnd connected" spawnd_pid=%d' % spawnd in s.log("spawnd-launcher")
            # No launcher of its own among spawnd's children.
            children = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid_or_0(int(p)) == spawnd]
            assert children == [], children

            c = s.client()
            try:
                c.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ctr_images.ref("base"))),
                        timeout=300)
            finally:
                c.close()
            with ctx_of(s, ctr_images) as cx:
                pod = cx.pod()
                ctr = cx.run(pod, command=SLEEP)
                assert cx.status(ctr.id).status.state == pb.CONTAINER_RUNNING
                pids = conmon_pids(ctr.id)
                assert len(pids) == 1, pids
                conmon = pids[0]
                assert ppid_of(conmon) == 1, ppid_of(conmon)
                assert spawnd not in ancestors(conmon) and lp.pid not in ancestors(conmon)
                assert cgroup_of(conmon) == lrel, cgroup_of(conmon)
                assert ctr.out("echo hi") == "hi"

                # A privileged container gets every capability the launcher
                # has (criod asks spawnd's Ping for it), not spawnd's cut
                # bound.
                launcher_bnd = caps(host_status(lp.pid), "CapBnd")
                spawnd_bnd = caps(host_status(spawnd), "CapBnd")
                assert all(launcher_bnd >> c & 1 and not spawnd_bnd >> c & 1 for c in CUT), \
                    (hex(launcher_bnd), hex(spawnd_bnd))
                ppod = cx.pod(privileged=True)
                priv = cx.run(ppod, command=SLEEP, sc=sc_of(privileged=True))
                st = priv.proc1()
                assert caps(st, "CapBnd") == launcher_bnd and caps(st, "CapEff") == launcher_bnd, \
                    (st["CapBnd"], st["CapEff"], hex(launcher_bnd))
                assert 'msg="launcher refused a request"' not in s.log("spawnd-launcher")

            # The launcher goes: spawnd stops (failure: its unit restarts it).
            s.stop("spawnd-launcher")
            lp = None
            p = s.procs["spawnd"]
            assert p.wait(timeout=20) == 1
            s.stop("spawnd", check=False)
            assert 'msg="the launcher closed its connection; spawnd stops"' in s.log("spawnd"), s.log("spawnd")
        finally:
            if lp is not None:
                s.stop("spawnd-launcher")
            s.stop_all()


def _ppid_or_0(pid):
    try:
        return ppid_of(pid)
    except (OSError, IndexError, ValueError):
        return 0
