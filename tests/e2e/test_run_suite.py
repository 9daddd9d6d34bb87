"""scripts/run-suite, the development suite: by default it restarts a daemon
killed under the others the way its unit does (Restart=on-failure), and the
others keep running and serving; --restart=no stops every daemon when one
dies; SIGTERM stops them all."""
import os
import signal
import subprocess

import conftest
import test_pods as tp

RUN_SUITE = os.path.join(conftest.ROOT, "scripts", "run-suite")
NAMES = ("criod", "imaged", "netd", "spawnd")


def daemon_pids(s):
    """{name: pid} of the suite's daemons (their command line names its config)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[1:3] == [b"--config", s.config.encode()]:
            name = os.path.basename(argv[0].decode())
            if name in NAMES:
                out.setdefault(name, []).append(int(pid))
    # A daemon's own helpers (a child with its command line) are not it.
    return {k: [p for p in v if ppid(p) not in v] for k, v in out.items()}


def ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def all_up(s):
    pids = daemon_pids(s)
    return pids if set(pids) == set(NAMES) and all(len(v) == 1 for v in pids.values()) else None


def start_run_suite(s, *args):
    log = open(os.path.join(s.log_dir, "run-suite.log"), "ab")
    p = subprocess.Popen([RUN_SUITE, conftest.BUILD, *args, "--config", s.config], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log, start_new_session=True)
    log.close()
    return p


def run_suite_log(s):
    with open(os.path.join(s.log_dir, "run-suite.log"), errors="replace") as f:
        return f.read()


def netd_ready_lines(s):
    return sum(1 for line in run_suite_log(s).splitlines() if "comp=netd" in line and 'msg="ready"' in line)


def stop_run_suite(s, p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=30)
    assert tp.wait_for(lambda: not daemon_pids(s), 10), daemon_pids(s)
    return rc


def test_run_suite_restarts_a_killed_daemon_under_the_others(test_user):
    with tp.pod_suite() as s:
        p = start_run_suite(s)
        try:
            before = tp.wait_for(lambda: (lambda x: x if x and os.path.exists(s.socket) else None)(all_up(s)), 30)
            assert before, (daemon_pids(s), run_suite_log(s))
            cri = s.client()
            pod = tp.run(cri, tp.pod_config(s))
            os.kill(before["netd"][0], signal.SIGKILL)
            after = tp.wait_for(lambda: (lambda x: x if x and x["netd"] != before["netd"] else None)(all_up(s)), 15)
            assert after, (daemon_pids(s), run_suite_log(s))
            for name in ("criod", "imaged", "spawnd"):
                assert after[name] == before[name], (name, before, after)
            assert "run-suite: netd failed (status 137); restarting it" in run_suite_log(s)
            # The new netd comes up and serves: the pod is torn down, a new
            # one made.
            assert tp.wait_for(lambda: netd_ready_lines(s) == 2, 15), run_suite_log(s)
            tp.remove(cri, pod)
            tp.remove(cri, tp.run(cri, tp.pod_config(s)))
            cri.close()
        finally:
            rc = stop_run_suite(s, p)
        assert rc == 0, run_suite_log(s)


def test_run_suite_restart_no_stops_everything_when_one_dies(test_user):
    with tp.pod_suite() as s:
        p = start_run_suite(s, "--restart=no")
        try:
            before = tp.wait_for(lambda: (lambda x: x if x and os.path.exists(s.socket) else None)(all_up(s)), 30)
            assert before, (daemon_pids(s), run_suite_log(s))
            os.kill(before["spawnd"][0], signal.SIGKILL)
            rc = p.wait(timeout=30)
            assert rc == 1
            assert tp.wait_for(lambda: not daemon_pids(s), 10), daemon_pids(s)
            assert "run-suite: a daemon exited for good; stopping the rest" in run_suite_log(s)
        finally:
            stop_run_suite(s, p)
