"""The standby conmon (conmon/conmon_standby.h): spawnd's launcher keeps
one conmon started ahead of the next CreateContainer, which becomes that
container's monitor without two forks, an exec and the dynamic loader on
the request's path (docs/PERFORMANCE.md, issue 20).

Behaviour asserted:
  taken    the next container's conmon is the standby that was waiting (the
           same pid), its command line rewritten to the container's
           ("--id <id>", what ps and these tests read), its log the
           container's own conmon.log, and it monitors for real (ExecSync,
           stop with an exit code); a new standby waits for the one after;
  gone     a standby killed while it waits: the next CreateContainer still
           works (the launcher starts conmon as before and says so in its
           log) and a new standby is started after it;
  stopped  a spawnd restart (its launcher goes with it) ends the waiting
           standby; the new launcher starts its own.
"""
import os
import re
import signal

from registry import registries  # noqa: F401 - fixture
from test_containers import SLEEP, cmdline, conmon_pids, csuite, ctr_images, ctx  # noqa: F401
from test_pods import wait_for
from conftest import api_pb2 as pb


def standbys(s):
    """The pids of this suite's waiting standby conmons: those its launcher
    logged starting (spawnd's log holds the forked launcher's, at debug)
    that are alive and still have the command line "<build>/conmon/conmon
    --standby <padding>" (other suites' launchers keep their own)."""
    exe = s.binary("conmon").encode()
    logged = {int(m) for m in re.findall(r'msg="standby conmon started" pid=(\d+)', s.log("spawnd"))}
    return sorted(p for p in logged if alive(p) and cmdline(p)[:2] == [exe, b"--standby"])


def alive(pid):
    try:
        with open("/proc/%s/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def one_standby(s, other_than=()):
    pids = wait_for(lambda: [p for p in standbys(s) if p not in other_than] if len(standbys(s)) == 1 else None,
                    timeout=10)
    assert pids and len(pids) == 1, "expected one standby conmon, found %s" % standbys(s)
    return pids[0]


def test_next_container_takes_the_standby(ctx):
    s = ctx.s
    waiting = one_standby(s)
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    assert [int(x) for x in conmon_pids(c.id)] == [waiting]
    argv = cmdline(waiting)
    assert b"--standby" not in argv, argv[:3]
    assert argv[argv.index(b"--id") + 1] == c.id.encode()
    assert argv[argv.index(b"--sync-fd") + 1] == b"3"
    # its stdout/stderr are the container's conmon.log, as for a conmon started anew
    log = os.path.join(s.state_dir, "spawnd", "containers", c.id, "conmon.log")
    assert os.path.realpath("/proc/%d/fd/2" % waiting) == log
    r = c.exec(["/bin/sh", "-c", "echo through the standby"])
    assert r.exit_code == 0 and r.stdout == b"through the standby\n"
    ctx.stop(c.id, timeout=0)
    st = c.status().status
    assert st.state == pb.CONTAINER_EXITED and st.exit_code == 137
    # the next one waits already
    one_standby(s, other_than=(waiting,))


def test_killed_standby_is_replaced(ctx):
    s = ctx.s
    waiting = one_standby(s)
    os.kill(waiting, signal.SIGKILL)
    assert wait_for(lambda: not alive(waiting), timeout=10)
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    assert c.status().status.state == pb.CONTAINER_RUNNING
    pids = [int(x) for x in conmon_pids(c.id)]
    assert len(pids) == 1 and pids[0] != waiting
    assert wait_for(lambda: s.log_has("spawnd", "the standby conmon is gone; starting conmon anew"))
    r = c.exec(["/bin/echo", "anew"])
    assert r.exit_code == 0 and r.stdout == b"anew\n"
    one_standby(s, other_than=(waiting,))


def test_spawnd_restart_ends_the_waiting_standby(ctx):
    s = ctx.s
    waiting = one_standby(s)
    s.restart("spawnd")
    assert wait_for(lambda: not alive(waiting), timeout=10), "the old launcher's standby outlived it"
    fresh = one_standby(s, other_than=(waiting,))
    assert fresh != waiting
    ctx.reconnect()
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    assert [int(x) for x in conmon_pids(c.id)] == [fresh]
