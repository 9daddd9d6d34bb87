"""A root daemon that goes away while criod waits on its answer: held
with SIGSTOP once criod's request is queued on its socket, then SIGKILLed.
The call fails UNAVAILABLE naming the daemon, criod undoes what the other
daemon made, and the same call succeeds once the daemon is back, with
nothing of the failed attempt left."""
import os
import re
import signal
import subprocess
import threading

import grpc
import pytest

import test_pods as tp

pb = tp.pb


def entries(path):
    return set(os.listdir(path)) if os.path.isdir(path) else set()


def queued_on(sock_path):
    """What waits unanswered on the daemon's socket: connections not yet
    accepted (the listening socket's Recv-Q) and bytes unread on accepted
    ones (their Recv-Q), from ss."""
    r = subprocess.run(["ss", "-xanH"], capture_output=True, text=True, check=True)
    total = 0
    for line in r.stdout.splitlines():
        f = line.split()  # Netid State Recv-Q Send-Q Local Port Peer Port
        if len(f) >= 6 and f[4] == sock_path and f[1] in ("LISTEN", "ESTAB"):
            total += int(f[2])
    return total


@pytest.mark.parametrize("daemon", ["netd", "spawnd"])
def test_daemon_killed_during_run_pod_sandbox(test_user, daemon):
    with tp.pod_suite() as s:
        s.start_all()
        cri = s.client()
        pods_dir = os.path.join(s.state_dir, "criod", "pods")
        before = entries(pods_dir)
        ports_before = tp.bridge_ports(s.bridge)
        cfg = tp.pod_config(s)
        box = {}

        def call():
            try:
                box["ok"] = tp.run(cri, cfg)
            except grpc.RpcError as e:
                box["err"] = e
        os.kill(s.pid(daemon), signal.SIGSTOP)
        try:
            t = threading.Thread(target=call, daemon=True)
            t.start()
            new = tp.wait_for(lambda: entries(pods_dir) - before, 20)
            assert new, "criod wrote no pod record"
            pod_id = next(iter(new))
            # criod's request is on the stopped daemon's socket, unread:
            # the daemon dies holding the call.
            assert tp.wait_for(lambda: queued_on(s.sock(daemon)) > 0, 20), \
                subprocess.run(["ss", "-xn"], capture_output=True, text=True).stdout
            s.stop(daemon, sig=signal.SIGKILL, check=False)
        finally:
            if daemon in s.procs:
                os.kill(s.pid(daemon), signal.SIGCONT)
        t.join(60)
        assert not t.is_alive(), "RunPodSandbox did not return once %s died" % daemon
        e = box.get("err")
        assert e is not None, box
        assert e.code() == grpc.StatusCode.UNAVAILABLE and daemon in e.details(), (e.code(), e.details())
        assert pod_id not in {p.id for p in cri.runtime("ListPodSandbox").items}
        s.start(daemon)
        # The same call, as kubelet retries it, succeeds once the daemon is
        # back; criod has finished undoing the failed attempt by then (or
        # finishes it first: the name is the failed pod's until then).
        again = None
        deadline_ok = tp.wait_for(lambda: pod_id not in entries(pods_dir), 30)
        assert deadline_ok, "the failed pod's record stayed: %s" % s.log("criod")[-3000:]
        again = tp.run(cri, cfg)
        assert again != pod_id
        assert tp.status(cri, again).status.state == pb.SANDBOX_READY
        assert tp.ping_from(s, again, tp.gateway_of(s, again))
        # Nothing of the failed attempt is left on any daemon.
        assert not tp.pause_pids(s, pod_id)
        assert not os.path.lexists(tp.netns_path(s, pod_id))
        for where in (s.state_dir, s.run_dir):
            assert not tp.files_mentioning(where, [re.compile(pod_id)], contents=False), where
        tp.remove(cri, again)
        assert tp.wait_for(lambda: tp.bridge_ports(s.bridge) <= ports_before, 10), tp.bridge_ports(s.bridge)
        cri.close()
