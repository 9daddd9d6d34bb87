"""GetContainerEvents, RuntimeConfig, UpdateRuntimeConfig and Status's
verbose info, end to end through criod's socket (Debian's python3-grpcio,
a raw HTTP/2 client from python3-h2, and crictl v1.32 from
../shared/cri-tools, skipped without it).

The suite is test_containers.started_suite (its own bridge, subnet, nft
table and cgroup parent, the test images pulled). Behaviour asserted:
  lifecycle  a subscriber sees, for one container, exactly CREATED, STARTED,
             STOPPED, DELETED in that order (a later container's CREATED
             shows nothing else came); each names the container, carries
             created_at between the RPC's start and the next event, the
             pod's status (id, SANDBOX_READY, metadata) and the pod's
             containers' statuses: CREATED -> CONTAINER_CREATED, STARTED ->
             CONTAINER_RUNNING, STOPPED -> CONTAINER_EXITED with its exit
             code, DELETED -> the container no longer among them.
  pods       events about a pod sandbox carry its id as container_id (as
             containerd sends them): CREATED and STARTED (SANDBOX_READY, no
             containers) when RunPodSandbox is done; StopPodSandbox: its
             containers' STOPPED, then the pod's (SANDBOX_NOTREADY), once;
             RemovePodSandbox: its containers' DELETED, then the pod's; a
             ready pod removed at once: STOPPED, then DELETED.
  exit       a container that exits by itself (exit 3) is reported STOPPED
             with exit code 3, reason Error and finished_at, with no
             StopContainer: criod's exit watch (log line req=exit-watch
             "container exited"). The delay from conmon's recorded exit to
             the event is printed (a figure, not asserted).
  monitor    a container whose conmon is SIGKILLed while it runs is reported
             STOPPED when its init ends (killed from the host here: nobody
             is left to record a status), EXITED with exit code 255, reason
             Unknown and the message that its monitor died: criod watches
             the init's pidfd (log line "watching the container's init",
             then "container exited without its monitor"), once; a stop
             and removal then send DELETED only.
  many       three subscribers see the same events, in the same order.
  slow       a raw HTTP/2 subscriber that opens a zero window and never
             reads: once more than criod's 1 MiB bound of events is queued
             for it (a pod whose containers carry 16 KiB annotations), its
             stream is reset with ENHANCE_YOUR_CALM (what gRPC clients report
             as RESOURCE_EXHAUSTED) and criod logs "events subscriber does
             not keep up" with its request id; so is a python3-grpcio
             subscriber that never iterates its stream (its channel's window
             kept small: no BDP probing), which then reads
             RESOURCE_EXHAUSTED; meanwhile a third subscriber got every
             event and criod answers other calls.
  restart    a subscriber's stream ends UNAVAILABLE when criod stops; after
             criod started again a new subscriber gets STOPPED (exit code 4)
             for a container that was started before the restart and exits
             after it, and DELETED when it is removed; the pod CIDR recorded
             before the restart is still reported.
  config     RuntimeConfig: cgroup driver CGROUPFS (the suite's default);
             SYSTEMD from a criod whose [pods] cgroup_driver is systemd.
             UpdateRuntimeConfig: a valid pod CIDR (and a dual-stack pair)
             is recorded in canonical form in <state>/criod/pod_cidr and in
             Status's podCIDR; bad ones are INVALID_ARGUMENT naming
             runtime_config.network_config.pod_cidr and change nothing; an
             empty one clears it; no runtime_config changes nothing.
  status     verbose info: imaged, netd, spawnd reachable, with their pids
             and the package version; criod's version, pid, uid and
             counts; the config in force (paths, sockets, network, policy);
             cgroupDriver; every value is JSON.
  crictl     `crictl events` prints CREATED, STARTED, STOPPED, DELETED for a
             lifecycle and STOPPED for a container exiting by itself;
             `crictl info` shows the verbose info; `crictl runtime-config`
             prints "cgroup driver: CGROUPFS"; `crictl update-runtime-config -p` the pod
             CIDR, then shown by info."""
import json
import os
import queue
import re
import select
import signal
import socket
import subprocess
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from conftest import Suite, api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_containers import SLEEP, conmon_pids, ctr_images, ctx_of, pid_alive, started_suite  # noqa: F401
from test_crictl import Crictl, find_crictl, package_version
from test_pods import remove as remove_pod
from test_pods import stop as stop_pod
from test_pods import wait_for

EVENTS = "/runtime.v1.RuntimeService/GetContainerEvents"
CREATED, STARTED, STOPPED, DELETED = (pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT,
                                      pb.CONTAINER_STOPPED_EVENT, pb.CONTAINER_DELETED_EVENT)
NAMES = {CREATED: "CONTAINER_CREATED_EVENT", STARTED: "CONTAINER_STARTED_EVENT",
         STOPPED: "CONTAINER_STOPPED_EVENT", DELETED: "CONTAINER_DELETED_EVENT"}
WAIT = 60
ENHANCE_YOUR_CALM = 0xb


@pytest.fixture(scope="module")
def esuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


@pytest.fixture
def ctx(esuite, ctr_images):  # noqa: F811
    with ctx_of(esuite, ctr_images) as c:
        yield c


class Subscriber:
    """One GetContainerEvents stream, read by a thread into a queue."""

    def __init__(self, s):
        self.cri = s.client()
        stub = self.cri.channel.unary_stream(EVENTS, request_serializer=pb.GetEventsRequest.SerializeToString,
                                             response_deserializer=pb.ContainerEventResponse.FromString)
        self.call = stub(pb.GetEventsRequest())
        self.q = queue.Queue()
        self.error = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for ev in self.call:
                self.q.put(ev)
        except grpc.RpcError as e:
            self.error = e
        self.q.put(None)

    def next(self, cid, timeout=WAIT):
        """The next event about container cid (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no event for %s within %ss" % (cid, timeout)
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                continue
            assert ev is not None, "stream ended: %s" % self.error
            if ev.container_id == cid:
                return ev

    def until(self, cid, etype, timeout=WAIT):
        """Every event up to and including the first of etype about cid:
        [(container_id, type)] and that event."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no %s for %s within %ss; saw %s" % (NAMES[etype], cid, timeout, seen)
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                continue
            assert ev is not None, "stream ended: %s" % self.error
            seen.append((ev.container_id, ev.container_event_type))
            if ev.container_id == cid and ev.container_event_type == etype:
                return seen, ev

    def ended(self, timeout=WAIT):
        self.t.join(timeout)
        assert not self.t.is_alive(), "the stream did not end"
        return self.error

    def close(self):
        self.call.cancel()
        self.t.join(10)
        self.cri.close()


def verbose(cri):
    r = cri.runtime("Status", pb.StatusRequest(verbose=True))
    return {k: json.loads(v) for k, v in r.info.items()}


def wait_subscribers(cri, n):
    """Wait until criod has n subscribers (it registers a stream when the
    request arrives, which the client sends on its own schedule)."""
    got = wait_for(lambda: verbose(cri)["criod"]["eventSubscribers"] == n, WAIT, 0.05)
    assert got, "criod has %s subscribers, not %d" % (verbose(cri)["criod"]["eventSubscribers"], n)


def statuses(ev):
    return {s.id: s for s in ev.containers_statuses}


def lifecycle(ctx, pod, command=SLEEP):
    """Create, start, stop, remove; returns the container and the times
    each call began (ns)."""
    t = {}
    t["create"] = time.time_ns()
    c = ctx.create(pod, command=command)
    t["start"] = time.time_ns()
    ctx.start(c)
    t["stop"] = time.time_ns()
    ctx.stop(c.id)
    t["remove"] = time.time_ns()
    ctx.remove(c.id)
    t["end"] = time.time_ns()
    ctx.ctrs.remove(c.id)
    return c, t


def marker(ctx, pod, subs):
    """A container whose CREATED every subscriber then waits for: whatever
    came before it has been delivered. Returns [(id, type)] per subscriber."""
    m = ctx.create(pod, command=SLEEP)
    return [sub.until(m.id, CREATED)[0] for sub in subs]


# ================================================================ events

def test_lifecycle_events(ctx, esuite):
    sub = Subscriber(esuite)
    try:
        wait_subscribers(ctx.cri, 1)
        pod = ctx.pod()
        c, t = lifecycle(ctx, pod)
        evs = [sub.next(c.id) for _ in range(4)]
        assert [e.container_event_type for e in evs] == [CREATED, STARTED, STOPPED, DELETED], evs
        bounds = [(t["create"], t["start"]), (t["start"], t["stop"]), (t["stop"], t["remove"]),
                  (t["remove"], t["end"])]
        for ev, (lo, hi) in zip(evs, bounds):
            assert lo <= ev.created_at <= hi, (NAMES[ev.container_event_type], lo, ev.created_at, hi)
            assert ev.pod_sandbox_status.id == pod.id
            assert ev.pod_sandbox_status.state == pb.SANDBOX_READY
            assert ev.pod_sandbox_status.metadata.name == pod.name
        created, started, stopped, deleted = (statuses(e) for e in evs)
        assert created[c.id].state == pb.CONTAINER_CREATED
        assert created[c.id].metadata.name == c.name
        assert started[c.id].state == pb.CONTAINER_RUNNING
        assert started[c.id].started_at > 0
        assert stopped[c.id].state == pb.CONTAINER_EXITED
        assert stopped[c.id].exit_code == 137  # sleep, killed at once
        assert stopped[c.id].finished_at >= stopped[c.id].started_at
        assert c.id not in deleted
        # Nothing else about the container came before a later one's event.
        (seen,) = marker(ctx, pod, [sub])
        assert all(cid != c.id for cid, _ in seen), seen
    finally:
        sub.close()


def test_pod_sandbox_events(ctx, esuite):
    sub = Subscriber(esuite)
    try:
        wait_subscribers(ctx.cri, 1)
        pod = ctx.pod()
        ev = sub.next(pod.id)
        assert ev.container_event_type == CREATED
        assert ev.pod_sandbox_status.id == pod.id and ev.pod_sandbox_status.state == pb.SANDBOX_READY
        assert not ev.containers_statuses
        assert sub.next(pod.id).container_event_type == STARTED
        c = ctx.run(pod, command=SLEEP)
        stop_pod(ctx.cri, pod.id)
        # The container's end, then the pod's.
        seen, ev = sub.until(pod.id, STOPPED)
        assert (c.id, STOPPED) in seen, seen
        assert ev.pod_sandbox_status.state == pb.SANDBOX_NOTREADY
        assert statuses(ev)[c.id].state == pb.CONTAINER_EXITED
        stop_pod(ctx.cri, pod.id)  # again: nothing changes, no event
        remove_pod(ctx.cri, pod.id)
        ctx.ctrs.remove(c.id)
        ctx.pods.remove(pod.id)
        seen, ev = sub.until(pod.id, DELETED)
        assert [x for x in seen if x[0] in (c.id, pod.id)] == [(c.id, DELETED), (pod.id, DELETED)], seen
        assert not ev.containers_statuses
        # A ready pod removed at once is reported stopped, then deleted.
        p2 = ctx.pod()
        assert [sub.next(p2.id).container_event_type for _ in range(2)] == [CREATED, STARTED]
        remove_pod(ctx.cri, p2.id)
        ctx.pods.remove(p2.id)
        assert [sub.next(p2.id).container_event_type for _ in range(2)] == [STOPPED, DELETED]
    finally:
        sub.close()


def test_container_exiting_by_itself_is_reported_stopped(ctx, esuite):
    sub = Subscriber(esuite)
    try:
        wait_subscribers(ctx.cri, 1)
        pod = ctx.pod()
        c = ctx.run(pod, command=["sh", "-c", "sleep 0.5; exit 3"])
        assert sub.next(c.id).container_event_type == CREATED
        assert sub.next(c.id).container_event_type == STARTED
        ev = sub.next(c.id)
        assert ev.container_event_type == STOPPED
        st = statuses(ev)[c.id]
        assert st.state == pb.CONTAINER_EXITED
        assert st.exit_code == 3
        assert st.reason == "Error"
        assert 0 < st.finished_at <= ev.created_at
        # Told by the exit watch: nobody asked criod to stop it.
        assert re.search(r'req=exit-watch msg="container exited" container=%s .*exit_code=3' % c.id,
                         esuite.log("criod")), "no exit-watch line"
        print("exit reported %.1f ms after conmon recorded it" % ((ev.created_at - st.finished_at) / 1e6))
        # A stop now finds it exited: no second STOPPED.
        ctx.stop(c.id)
        ctx.remove(c.id)
        ctx.ctrs.remove(c.id)
        assert sub.next(c.id).container_event_type == DELETED
    finally:
        sub.close()


def test_container_whose_monitor_died_is_reported_stopped_when_it_ends(ctx, esuite):
    sub = Subscriber(esuite)
    try:
        wait_subscribers(ctx.cri, 1)
        pod = ctx.pod()
        c = ctx.run(pod, command=SLEEP)
        assert sub.next(c.id).container_event_type == CREATED
        assert sub.next(c.id).container_event_type == STARTED
        pid = c.pid()
        conmon = conmon_pids(c.id)
        assert len(conmon) == 1, conmon
        os.kill(conmon[0], signal.SIGKILL)
        assert wait_for(lambda: not pid_alive(conmon[0]), 10)
        # criod's exit watch (a State call to conmon) fails with conmon;
        # it then watches the init, which still runs: no event yet.
        line = r'req=exit-watch msg="container monitor is gone; watching the container\'s init" container=%s pid=%d' % (
            c.id, pid)
        assert wait_for(lambda: re.search(line, esuite.log("criod")), WAIT), "no init watch in criod's log"
        assert pid_alive(pid)
        assert c.status().status.state == pb.CONTAINER_UNKNOWN
        os.kill(pid, signal.SIGKILL)
        ev = sub.next(c.id)
        assert ev.container_event_type == STOPPED, NAMES.get(ev.container_event_type)
        st = statuses(ev)[c.id]
        assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 255, "Unknown"), st
        assert "monitor died" in st.message, st.message
        assert re.search(r'req=exit-watch msg="container exited without its monitor" container=%s ' % c.id,
                         esuite.log("criod")), "no exit line"
        # kubelet then stops and removes it: DELETED, and no second STOPPED.
        ctx.stop(c.id)
        ctx.remove(c.id)
        ctx.ctrs.remove(c.id)
        assert sub.next(c.id).container_event_type == DELETED
    finally:
        sub.close()


def test_many_subscribers_see_the_same_events(ctx, esuite):
    subs = [Subscriber(esuite) for _ in range(3)]
    try:
        wait_subscribers(ctx.cri, 3)
        pod = ctx.pod()
        c, _ = lifecycle(ctx, pod)
        got = [[sub.next(c.id) for _ in range(4)] for sub in subs]
        for evs in got:
            assert [e.container_event_type for e in evs] == [CREATED, STARTED, STOPPED, DELETED]
            assert [e.created_at for e in evs] == [e.created_at for e in got[0]]
    finally:
        for sub in subs:
            sub.close()
    wait_subscribers(ctx.cri, 0)


class RawSubscriber:
    """GetContainerEvents over raw HTTP/2 with a stream window of 0 that is
    never opened, and a socket nobody reads until read_reset()."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        self.sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.sid, [(":method", "POST"), (":scheme", "http"), (":path", EVENTS),
                                          (":authority", "localhost"), ("content-type", "application/grpc"),
                                          ("te", "trailers"), ("x-request-id", "never-reads")])
        self.conn.send_data(self.sid, b"\x00\x00\x00\x00\x00", end_stream=True)
        self.sock.sendall(self.conn.data_to_send())

    def read_reset(self, timeout=WAIT):
        """Read now: the stream's end. Returns the RST_STREAM error code
        (None if it ended otherwise) and the bytes of data received."""
        deadline = time.monotonic() + timeout
        data = 0
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 1)
            if not r:
                continue
            chunk = self.sock.recv(1 << 20)
            assert chunk, "connection closed before the stream ended"
            for ev in self.conn.receive_data(chunk):
                if isinstance(ev, h2.events.DataReceived):
                    data += len(ev.data)
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == self.sid:
                    return ev.error_code, data
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == self.sid:
                    return None, data
            self.sock.sendall(self.conn.data_to_send())
        raise AssertionError("the stream did not end")

    def close(self):
        self.sock.close()


def test_subscriber_that_never_reads_is_cut_off(ctx, esuite):
    raw = RawSubscriber(esuite.socket)
    sub = Subscriber(esuite)
    # A gRPC client that never iterates its stream, with a small window
    # that bandwidth probing does not grow.
    idle_ch = grpc.insecure_channel("unix:" + esuite.socket, options=[
        ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)])
    idle = idle_ch.unary_stream(EVENTS, request_serializer=pb.GetEventsRequest.SerializeToString,
                                response_deserializer=pb.ContainerEventResponse.FromString)(
        pb.GetEventsRequest(), metadata=[("x-request-id", "grpc-never-reads")])
    try:
        wait_subscribers(ctx.cri, 3)
        pod = ctx.pod()
        # Every CREATED carries the statuses of the pod's containers, each
        # with a 16 KiB annotation: 16 containers queue ~2 MiB for raw.
        big = {"blob": "x" * (16 << 10)}
        ids = []
        for i in range(16):
            cfg = ctx.config(command=SLEEP, annotations=big)
            ids.append(ctx.create_cfg(pod, cfg).id)
            if esuite.log_has("criod", "req=grpc-never-reads msg=\"events subscriber does not keep up"):
                break
        def cut_off():
            lines = [l for l in esuite.log("criod").split("\n") if "does not keep up" in l]
            return [l for l in lines if "req=never-reads" in l] and [l for l in lines if "req=grpc-never-reads" in l]
        assert wait_for(cut_off, WAIT, 0.1), "not both cut off"
        for line in cut_off():
            assert "limit=1048576" in line, line
        # The gRPC subscriber got them all, and criod answers.
        for cid in ids:
            assert sub.next(cid).container_event_type == CREATED
        assert ctx.cri.runtime("Version").runtime_name == "criod"
        assert len(ctx.list(pod=pod.id)) == len(ids)
        wait_subscribers(ctx.cri, 1)
        code, data = raw.read_reset()
        assert code == ENHANCE_YOUR_CALM, code
        assert data == 0  # its window never opened
        # The gRPC client reads what it took, then RESOURCE_EXHAUSTED.
        with pytest.raises(grpc.RpcError) as e:
            for _ in idle:
                pass
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value
    finally:
        raw.close()
        sub.close()
        idle.cancel()
        idle_ch.close()


def test_events_after_criod_restart(ctx, esuite):
    pod_cidr = "10.245.7.0/24"
    ctx.cri.runtime("UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=pod_cidr))))
    sub = Subscriber(esuite)
    try:
        wait_subscribers(ctx.cri, 1)
        pod = ctx.pod()
        c = ctx.run(pod, command=["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; exit 4"])
        assert sub.next(c.id).container_event_type == CREATED
        assert sub.next(c.id).container_event_type == STARTED
        esuite.restart("criod")
        err = sub.ended()
        assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE, err
    finally:
        sub.close()
    ctx.reconnect()
    sub = Subscriber(esuite)
    try:
        wait_subscribers(ctx.cri, 1)
        assert verbose(ctx.cri)["podCIDR"] == pod_cidr
        r = ctx.cri.runtime("ExecSync", pb.ExecSyncRequest(container_id=c.id, cmd=["touch", "/tmp/go"], timeout=30),
                            timeout=WAIT)
        assert r.exit_code == 0, r
        ev = sub.next(c.id)
        assert ev.container_event_type == STOPPED
        assert statuses(ev)[c.id].exit_code == 4
        ctx.remove(c.id)
        ctx.ctrs.remove(c.id)
        assert sub.next(c.id).container_event_type == DELETED
    finally:
        sub.close()
        ctx.cri.runtime("UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=""))))


# ================================================================ RuntimeConfig, UpdateRuntimeConfig

def update_cidr(cri, cidr):
    return cri.runtime("UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=cidr))))


def test_runtime_config_and_pod_cidr(ctx, esuite):
    r = ctx.cri.runtime("RuntimeConfig", pb.RuntimeConfigRequest())
    assert r.linux.cgroup_driver == pb.CGROUPFS
    path = os.path.join(esuite.state_dir, "criod", "pod_cidr")
    try:
        update_cidr(ctx.cri, "10.244.1.0/24")
        assert verbose(ctx.cri)["podCIDR"] == "10.244.1.0/24"
        with open(path) as f:
            assert f.read() == "10.244.1.0/24\n"
        update_cidr(ctx.cri, "10.244.2.0/24,FD00:10:244:0002::/64")
        assert verbose(ctx.cri)["podCIDR"] == "10.244.2.0/24,fd00:10:244:2::/64"
        for bad in ("10.244.2.1/24", "10.244.2.0", "bogus/8", "10.1.0.0/16,10.2.0.0/16", "127.0.0.0/8",
                    "10.0.0.0/33", "x" * 1000):
            with pytest.raises(grpc.RpcError) as e:
                update_cidr(ctx.cri, bad)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
            assert "runtime_config.network_config.pod_cidr" in e.value.details(), e.value.details()
        assert verbose(ctx.cri)["podCIDR"] == "10.244.2.0/24,fd00:10:244:2::/64"
        # Without a runtime_config nothing changes.
        ctx.cri.runtime("UpdateRuntimeConfig", pb.UpdateRuntimeConfigRequest())
        assert verbose(ctx.cri)["podCIDR"] == "10.244.2.0/24,fd00:10:244:2::/64"
        assert esuite.log_has("criod", "kubelet's pod CIDR is not netd's subnet")
    finally:
        update_cidr(ctx.cri, "")
    assert verbose(ctx.cri)["podCIDR"] == ""
    with open(path) as f:
        assert f.read() == "\n"


def test_runtime_config_systemd_driver(test_user):
    s = Suite(extra_config="")
    try:
        with open(s.config) as f:
            text = f.read()
        with open(s.config, "w") as f:
            f.write(text.replace("[pods]\n", "[pods]\ncgroup_driver = systemd\n"))
        s.start("criod")  # RuntimeConfig needs no root daemon
        c = s.client()
        try:
            assert c.runtime("RuntimeConfig", pb.RuntimeConfigRequest()).linux.cgroup_driver == pb.SYSTEMD
            info = verbose(c)
            assert info["cgroupDriver"] == "systemd"
            for d in ("imaged", "netd", "spawnd"):
                assert info[d]["reachable"] is False and info[d]["error"], info[d]
        finally:
            c.close()
        s.stop_all()
        s.check_logs()
        assert not s.failures, s.failures
    finally:
        s.cleanup()


# ================================================================ Status verbose

def test_status_verbose_info(ctx, esuite):
    r = ctx.cri.runtime("Status", pb.StatusRequest(verbose=True))
    info = {k: json.loads(v) for k, v in r.info.items()}
    assert set(info) == {"imaged", "netd", "spawnd", "criod", "config", "cgroupDriver", "podCIDR"}, set(info)
    version = package_version()
    for d in ("imaged", "netd", "spawnd"):
        assert info[d]["reachable"] is True, info[d]
        assert info[d]["pid"] == esuite.pid(d), info[d]
        assert info[d]["uid"] == 0
        assert info[d]["version"] == version
        assert info[d]["socket"] == esuite.sock(d)
    cr = info["criod"]
    assert cr["version"] == version and cr["pid"] == esuite.pid("criod")
    assert cr["uid"] == os.stat(esuite.socket).st_uid
    cfg = info["config"]
    assert cfg["runDir"] == esuite.run_dir and cfg["stateDir"] == esuite.state_dir
    assert cfg["sockets"]["criod"] == esuite.socket
    assert cfg["network"]["subnet"] == str(esuite.subnet) and cfg["network"]["bridge"] == esuite.bridge
    assert cfg["defaultCgroupParent"] == esuite.cgroup_parent
    assert cfg["policy"]["logRoots"] == [esuite.log_root]
    assert cfg["policy"]["allowPrivileged"] is True
    assert cfg["runtimes"] == {"runc": "/usr/sbin/runc"}
    assert info["cgroupDriver"] == "cgroupfs"
    # Counts follow what exists.
    before = info["criod"]["containers"]
    pod = ctx.pod()
    ctx.create(pod, command=SLEEP)
    assert verbose(ctx.cri)["criod"]["containers"] == before + 1
    # Not verbose: no info.
    assert not ctx.cri.runtime("Status", pb.StatusRequest()).info


# ================================================================ crictl

class CrictlEvents:
    """`crictl events -o json` in the background; its JSON objects parsed
    as they come."""

    def __init__(self, crictl):
        cmd = [crictl.path, "-c", crictl.config, "-r", crictl.endpoint, "events", "-o", "json"]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=crictl.env)
        self.buf = ""
        self.dec = json.JSONDecoder()
        self.q = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for chunk in iter(lambda: os.read(self.p.stdout.fileno(), 65536), b""):
            self.buf += chunk.decode()
            while True:
                s = self.buf.lstrip()
                try:
                    obj, end = self.dec.raw_decode(s)
                except ValueError:
                    break
                self.q.put(obj)
                self.buf = s[end:]
        self.q.put(None)

    def next(self, cid, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "crictl events: nothing for %s" % cid
            try:
                obj = self.q.get(timeout=left)
            except queue.Empty:
                continue
            assert obj is not None, "crictl events exited: %s" % self.p.stderr.read().decode()
            if obj.get("containerId") == cid:
                return obj

    def close(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(10)


def test_crictl_events_info_and_runtime_config(ctx, esuite):
    path = find_crictl()
    if not path:
        pytest.skip("crictl not found in ../shared/cri-tools")
    crictl = Crictl(path, esuite)
    ev = CrictlEvents(crictl)
    try:
        wait_subscribers(ctx.cri, 1)
        pod = ctx.pod()
        c, _ = lifecycle(ctx, pod)
        got = [ev.next(c.id) for _ in range(4)]
        assert [g["containerEventType"] for g in got] == [NAMES[t] for t in (CREATED, STARTED, STOPPED, DELETED)]
        for g in got:
            assert g["podSandboxStatus"]["id"] == pod.id
        st = {s["id"]: s for s in got[2]["containersStatuses"]}
        assert st[c.id]["state"] == "CONTAINER_EXITED"
        x = ctx.run(pod, command=["sh", "-c", "sleep 0.5; exit 5"])
        assert ev.next(x.id)["containerEventType"] == NAMES[CREATED]
        assert ev.next(x.id)["containerEventType"] == NAMES[STARTED]
        g = ev.next(x.id)
        assert g["containerEventType"] == NAMES[STOPPED]
        st = {s["id"]: s for s in g["containersStatuses"]}
        assert st[x.id]["state"] == "CONTAINER_EXITED" and st[x.id]["exitCode"] == 5
    finally:
        ev.close()
    info = crictl.json("info", "-o", "json")
    assert info["cgroupDriver"] == "cgroupfs"
    assert info["criod"]["pid"] == esuite.pid("criod")
    assert info["config"]["network"]["subnet"] == str(esuite.subnet)
    for d in ("imaged", "netd", "spawnd"):
        assert info[d]["reachable"] is True and info[d]["pid"] == esuite.pid(d)
    assert re.fullmatch(r"cgroup driver:\s+CGROUPFS", crictl.out("runtime-config")), crictl.out("runtime-config")
    try:
        crictl.run("update-runtime-config", "-p", "10.246.0.0/24")
        assert crictl.json("info", "-o", "json")["podCIDR"] == "10.246.0.0/24"
        err = crictl.fails("update-runtime-config", "-p", "10.246.0.1/24")
        assert "InvalidArgument" in err and "host bits" in err, err
    finally:
        update_cidr(ctx.cri, "")
