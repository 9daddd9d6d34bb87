"""Container and pod stats end to end: ContainerStats, ListContainerStats,
PodSandboxStats and ListPodSandboxStats through criod's socket, against
workloads whose figures are known, and the two root-side requests behind
them (imaged's RootfsUsage, netd's PodNetworkStats) from a hostile peer.

The suite is test_containers.started_suite (its own bridge, subnet, nft
table and cgroup parent, the test images pulled). Behaviour asserted:
  memory   a container that wrote 40 MiB into the pod's /dev/shm (tmpfs,
           charged to the writer's memory cgroup) has working_set_bytes and
           usage_bytes >= 40 MiB; working set <= usage; rss and page faults
           present; available_bytes only with a memory limit, then limit -
           working set; swap usage where the host accounts swap (no swap
           limit here, so no swap available figure); the pod's memory at
           least its container's.
  cpu      a spinning container: usage_core_nano_seconds grows by >= 0.1 s
           of CPU over 1 s (a core, less what other work on the host takes),
           and the second sample has usage_nano_cores = the CPU used since
           the first over the time between them (the first sample of an id
           has none; one within 100 ms of the last has the last rate); the
           pod's CPU at least its container's, its rate likewise.
  layer    writable_layer: the store's mountpoint, used bytes and inodes; an
           8 MiB file written into the rootfs shows within imaged's cache
           time (5 s) as >= 8 MiB more bytes and one more inode; two calls
           within the cache time have the same timestamp (one walk).
  pod      process_count >= 2 (pause and the container); containers[] holds
           the pod's containers; 200 UDP datagrams of 1000 bytes sent to
           the pod's IP show as >= 200000 more rx_bytes on eth0, the
           default interface; loopback is not listed.
  created  a created, never started container is listed and answers
           ContainerStats: attributes and timestamps, no CPU or memory
           figures (it has no cgroup yet), and its writable layer.
  filters  ListContainerStats by id (full or prefix), pod (full or prefix)
           and labels (all must match); ListPodSandboxStats by id and
           labels; a filter that matches nothing is an empty list.
  errors   ContainerStats/PodSandboxStats without an id: INVALID_ARGUMENT;
           of an unknown id: NOT_FOUND.
  hostile  as criod's uid, straight to the sockets: RootfsUsage with a
           container id that is not 64 lowercase hex (short, upper case, a
           path) is INVALID_ARGUMENT naming container_id; a valid id imaged
           did not mount is NOT_FOUND; PodNetworkStats likewise for pod_id.
  crictl   `crictl stats -o json` and `statsp -o json` show the same figures
           (crictl v1.32 from ../shared/cri-tools; skipped without it)."""
import glob
import json
import os
import socket
import struct
import subprocess
import sys
import time

import grpc
import pytest

from conftest import api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_containers import SLEEP, ctr_images, ctx_of, started_suite  # noqa: F401
from test_pods import HEX64, rpc_error, wait_for

MiB = 1 << 20
IMAGED_ROOTFS_USAGE = 9     # common/api.h
NETD_POD_NETWORK_STATS = 5
INVALID, NOT_FOUND = 3, 5   # gRPC status codes
SPIN = ["sh", "-c", "while :; do :; done"]


@pytest.fixture(scope="module")
def ssuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


@pytest.fixture
def ctx(ssuite, ctr_images):  # noqa: F811
    with ctx_of(ssuite, ctr_images) as c:
        yield c


def cstats(ctx, cid):
    return ctx.cri.runtime("ContainerStats", pb.ContainerStatsRequest(container_id=cid)).stats


def list_cstats(ctx, id=None, pod=None, labels=None, filter=True):
    if not filter:
        return list(ctx.cri.runtime("ListContainerStats", pb.ListContainerStatsRequest()).stats)
    f = pb.ContainerStatsFilter(id=id or "", pod_sandbox_id=pod or "", label_selector=labels or {})
    return list(ctx.cri.runtime("ListContainerStats", pb.ListContainerStatsRequest(filter=f)).stats)


def pstats(ctx, pod_id):
    return ctx.cri.runtime("PodSandboxStats", pb.PodSandboxStatsRequest(pod_sandbox_id=pod_id)).stats


def list_pstats(ctx, id=None, labels=None):
    f = pb.PodSandboxStatsFilter(id=id or "", label_selector=labels or {})
    return list(ctx.cri.runtime("ListPodSandboxStats", pb.ListPodSandboxStatsRequest(filter=f)).stats)


def ids(stats):
    return {s.attributes.id for s in stats}


# ================================================================ figures

def test_memory_working_set_of_a_container_holding_40_mib(ctx):
    pod = ctx.pod()
    c = ctx.run(pod, command=["sh", "-c", "dd if=/dev/zero of=/dev/shm/hold bs=1M count=40 && sleep 3600"])
    assert wait_for(lambda: c.out("wc -c </dev/shm/hold 2>/dev/null || echo 0") == str(40 * MiB), 15, 0.2)
    st = cstats(ctx, c.id)
    assert st.attributes.id == c.id
    assert st.attributes.metadata.name == c.name
    m = st.memory
    assert m.timestamp > 0
    assert m.working_set_bytes.value >= 40 * MiB, m
    assert m.usage_bytes.value >= m.working_set_bytes.value, m
    assert m.HasField("rss_bytes") and m.HasField("page_faults") and m.page_faults.value > 0, m
    assert not m.HasField("available_bytes"), m  # no memory limit
    # Swap: with v1's swap accounting (memsw files) or v2's memory.swap.*.
    if os.path.exists("/sys/fs/cgroup/memory/memory.memsw.usage_in_bytes") or \
            glob.glob("/sys/fs/cgroup/*/memory.swap.current"):
        assert st.HasField("swap") and st.swap.timestamp == m.timestamp, st
        assert st.swap.HasField("swap_usage_bytes") and not st.swap.HasField("swap_available_bytes"), st.swap
    else:
        assert not st.HasField("swap"), st
    p = pstats(ctx, pod.id)
    assert p.linux.memory.working_set_bytes.value >= m.working_set_bytes.value - 1 * MiB, (p.linux.memory, m)


def test_available_bytes_with_a_memory_limit(ctx):
    pod = ctx.pod()
    c = ctx.run(pod, command=SLEEP, resources={"memory_limit_in_bytes": 256 * MiB})
    m = cstats(ctx, c.id).memory
    assert m.HasField("available_bytes"), m
    assert m.available_bytes.value == 256 * MiB - m.working_set_bytes.value, m


def test_cpu_of_a_spinning_container(ctx):
    pod = ctx.pod()
    c = ctx.run(pod, command=SPIN)
    first = cstats(ctx, c.id).cpu
    assert first.timestamp > 0 and first.HasField("usage_core_nano_seconds"), first
    # The first sample of an id has no rate; a second one has.
    assert not first.HasField("usage_nano_cores"), first
    time.sleep(1)
    second = cstats(ctx, c.id).cpu
    grown = second.usage_core_nano_seconds.value - first.usage_core_nano_seconds.value
    assert second.timestamp > first.timestamp
    # A whole core on an idle machine; other work on the host may take some.
    assert grown >= 0.1e9, (first, second)
    assert second.HasField("usage_nano_cores") and second.usage_nano_cores.value >= 0.1e9, second
    assert second.usage_nano_cores.value <= (os.cpu_count() + 0.5) * 1e9, second
    assert_rate(first, second)
    # At once again (kubelet asks for pods and containers back to back):
    # within 100 ms of the last sample, the last interval's rate.
    third = list_cstats(ctx, id=c.id)[0].cpu
    if third.timestamp - second.timestamp < 0.05e9:
        assert third.usage_nano_cores.value == second.usage_nano_cores.value, (second, third)
    # The pod: its cgroup holds the container's.
    p1 = pstats(ctx, pod.id).linux.cpu
    assert not p1.HasField("usage_nano_cores"), p1
    time.sleep(0.5)
    p2 = pstats(ctx, pod.id).linux.cpu
    assert p2.usage_core_nano_seconds.value >= second.usage_core_nano_seconds.value, (p2, second)
    assert p2.usage_core_nano_seconds.value > p1.usage_core_nano_seconds.value
    assert p2.HasField("usage_nano_cores") and p2.usage_nano_cores.value >= 0.1e9, p2
    assert_rate(p1, p2)


def assert_rate(a, b):
    """usage_nano_cores of sample b is the CPU used since sample a over the
    time between them (timestamps taken a moment apart from the reads)."""
    expect = (b.usage_core_nano_seconds.value - a.usage_core_nano_seconds.value) * 1e9 / (b.timestamp - a.timestamp)
    assert abs(b.usage_nano_cores.value - expect) <= 0.1 * expect + 0.02e9, (a, b, expect)


def test_writable_layer_shows_a_file_written_to_the_rootfs(ctx):
    pod = ctx.pod()
    c = ctx.run(pod, command=SLEEP)
    before = cstats(ctx, c.id).writable_layer
    assert before.fs_id.mountpoint.startswith(ctx.s.state_dir), before
    assert before.timestamp > 0 and before.inodes_used.value >= 1, before
    # Within the cache time, the same walk answers.
    again = cstats(ctx, c.id).writable_layer
    assert again.timestamp == before.timestamp and again.used_bytes.value == before.used_bytes.value
    c.out("dd if=/dev/urandom of=/big bs=1M count=8 2>/dev/null && sync")

    def grown():
        w = cstats(ctx, c.id).writable_layer
        return w if w.used_bytes.value >= before.used_bytes.value + 8 * MiB else None
    w = wait_for(grown, 12, 0.5)
    assert w, (before, cstats(ctx, c.id).writable_layer)
    assert w.inodes_used.value >= before.inodes_used.value + 1, (before, w)
    assert w.timestamp > before.timestamp


def test_pod_processes_containers_and_network(ctx, ssuite):
    pod = ctx.pod(labels={"stats": "net"})
    c1 = ctx.run(pod, command=SLEEP)
    c2 = ctx.run(pod, command=SLEEP)
    p = pstats(ctx, pod.id)
    assert p.attributes.id == pod.id and p.attributes.metadata.name == pod.name
    assert p.attributes.labels["stats"] == "net"
    assert p.linux.process.process_count.value >= 3, p.linux.process  # pause + 2 sleeps
    assert ids(p.linux.containers) == {c1.id, c2.id}
    net = p.linux.network
    names = [i.name for i in net.interfaces]
    assert "eth0" in names and "lo" not in names, names
    assert net.default_interface.name == "eth0"
    rx0 = net.default_interface.rx_bytes.value
    tx0 = net.default_interface.tx_bytes.value
    assert pod.ip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(200):
            s.sendto(b"x" * 1000, (pod.ip, 9))
            time.sleep(0.001)

    def received():
        n = pstats(ctx, pod.id).linux.network.default_interface
        return n if n.rx_bytes.value >= rx0 + 200 * 1000 else None
    n = wait_for(received, 10, 0.2)
    assert n, (rx0, pstats(ctx, pod.id).linux.network)
    assert n.tx_bytes.value >= tx0  # the port-unreachable answers, rate limited
    assert n.rx_errors.value == 0 and n.tx_errors.value == 0


def test_created_container_has_empty_stats(ctx):
    pod = ctx.pod()
    c = ctx.create(pod, command=SLEEP)
    st = cstats(ctx, c.id)
    assert st.attributes.id == c.id and st.attributes.metadata.name == c.name
    assert st.cpu.timestamp > 0 and not st.cpu.HasField("usage_core_nano_seconds"), st.cpu
    assert st.memory.timestamp > 0 and not st.memory.HasField("working_set_bytes"), st.memory
    assert st.writable_layer.inodes_used.value >= 1, st.writable_layer
    assert c.id in ids(list_cstats(ctx, filter=False))
    p = pstats(ctx, pod.id)
    assert c.id in ids(p.linux.containers)


# ================================================================ filters and errors

def test_list_filters(ctx):
    pod_a = ctx.pod(labels={"tier": "a"})
    pod_b = ctx.pod(labels={"tier": "b"})
    a1 = ctx.run(pod_a, command=SLEEP, labels={"app": "x", "role": "one"})
    a2 = ctx.run(pod_a, command=SLEEP, labels={"app": "x", "role": "two"})
    b1 = ctx.run(pod_b, command=SLEEP, labels={"app": "y"})
    everything = ids(list_cstats(ctx, filter=False))
    assert {a1.id, a2.id, b1.id} <= everything
    assert ids(list_cstats(ctx, id=a1.id)) == {a1.id}
    assert ids(list_cstats(ctx, id=a1.id[:12])) == {a1.id}
    assert ids(list_cstats(ctx, pod=pod_a.id)) == {a1.id, a2.id}
    assert ids(list_cstats(ctx, pod=pod_b.id[:12])) == {b1.id}
    assert ids(list_cstats(ctx, labels={"app": "x"})) == {a1.id, a2.id}
    assert ids(list_cstats(ctx, labels={"app": "x", "role": "two"})) == {a2.id}
    assert ids(list_cstats(ctx, labels={"app": "z"})) == set()
    assert ids(list_cstats(ctx, pod=pod_b.id, labels={"app": "x"})) == set()
    assert ids(list_cstats(ctx, id="f" * 64)) == set()
    every_pod = ids(list_pstats(ctx))
    assert {pod_a.id, pod_b.id} <= every_pod
    assert ids(list_pstats(ctx, id=pod_a.id)) == {pod_a.id}
    assert ids(list_pstats(ctx, labels={"tier": "b"})) == {pod_b.id}
    assert ids(list_pstats(ctx, labels={"tier": "c"})) == set()
    by_pod = {p.attributes.id: p for p in list_pstats(ctx)}
    assert ids(by_pod[pod_a.id].linux.containers) == {a1.id, a2.id}
    # Every listed container carries figures.
    for st in list_cstats(ctx, pod=pod_a.id):
        assert st.cpu.HasField("usage_core_nano_seconds") and st.memory.HasField("working_set_bytes"), st


def test_errors(ctx):
    for name, req in (("ContainerStats", pb.ContainerStatsRequest()),
                      ("PodSandboxStats", pb.PodSandboxStatsRequest())):
        e = rpc_error(ctx.cri.runtime, name, req)
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "_id is required" in e.details(), (name, e)
    e = rpc_error(cstats, ctx, "0" * 64)
    assert e.code() == grpc.StatusCode.NOT_FOUND, e
    e = rpc_error(pstats, ctx, "0" * 64)
    assert e.code() == grpc.StatusCode.NOT_FOUND, e


def test_removed_container_is_gone_from_stats(ctx):
    pod = ctx.pod()
    c = ctx.run(pod, command=SLEEP)
    assert c.id in ids(list_cstats(ctx, pod=pod.id))
    ctx.stop(c.id)
    ctx.remove(c.id)
    assert c.id not in ids(list_cstats(ctx, filter=False))
    assert rpc_error(cstats, ctx, c.id).code() == grpc.StatusCode.NOT_FOUND
    assert ids(pstats(ctx, pod.id).linux.containers) == set()


# ================================================================ a hostile front end

HOSTILE = r"""
import json, socket, struct, sys

def varint(v):
    out = b""
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(n, data):
    return bytes([n << 3 | 2]) + varint(len(data)) + data

path, method = sys.argv[1], int(sys.argv[2])
out = []
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(path)
for i, arg in enumerate(sys.argv[3:]):
    body = field(1, bytes.fromhex(arg))  # the request's field 1, the id
    env = b"\x08" + varint(i + 1) + b"\x10" + varint(method) + b"\x1a\x07hostile" + field(6, body)
    s.sendall(struct.pack("<I", len(env)) + env)
    n = struct.unpack("<I", s.recv(4, socket.MSG_WAITALL))[0]
    data = s.recv(n, socket.MSG_WAITALL)
    out.append(data.hex())
print(json.dumps(out))
"""


def hostile_calls(user, path, method, values, envpb):
    r = subprocess.run([sys.executable, "-c", HOSTILE, path, str(method)] + [v.encode().hex() for v in values],
                       user=user.pw_uid, group=user.pw_gid, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [envpb.Envelope.FromString(bytes.fromhex(h)) for h in json.loads(r.stdout)]


BAD_IDS = ["", "abc", "A" * 64, "0" * 63, "0" * 65, "../../../../etc/passwd", "0" * 62 + "/.",
           "g" * 64]


def test_hostile_rootfs_usage(ctx, test_user, envpb, imgpb):
    pod = ctx.pod()
    c = ctx.run(pod, command=SLEEP)
    replies = hostile_calls(test_user, ctx.s.sock("imaged"), IMAGED_ROOTFS_USAGE, BAD_IDS + ["0" * 64, c.id],
                            envpb)
    for v, r in zip(BAD_IDS, replies):
        assert r.status == INVALID and "container_id must be 64 lowercase hex" in r.message, (v, r)
    assert replies[-2].status == NOT_FOUND and "no root filesystem" in replies[-2].message, replies[-2]
    ok = replies[-1]
    assert ok.status == 0, ok
    got = imgpb.RootfsUsageResponse.FromString(ok.body)
    assert got.inodes_used >= 1 and got.mountpoint.startswith(ctx.s.state_dir), got
    # A pod id is not a container imaged mounted.
    r = hostile_calls(test_user, ctx.s.sock("imaged"), IMAGED_ROOTFS_USAGE, [pod.id], envpb)[0]
    assert r.status == NOT_FOUND, r
    assert "RootfsUsage" in ctx.s.log("imaged")


def test_hostile_pod_network_stats(ctx, test_user, envpb):
    pod = ctx.pod()
    host = ctx.pod(network=pb.NODE)
    replies = hostile_calls(test_user, ctx.s.sock("netd"), NETD_POD_NETWORK_STATS,
                            BAD_IDS + ["0" * 64, host.id, pod.id], envpb)
    for v, r in zip(BAD_IDS, replies):
        assert r.status == INVALID and "pod_id must be 64 lowercase hex" in r.message, (v, r)
    assert replies[-3].status == NOT_FOUND and "no pod network" in replies[-3].message, replies[-3]
    # A host-network pod has no network of netd's.
    assert replies[-2].status == NOT_FOUND, replies[-2]
    assert replies[-1].status == 0 and b"eth0" in replies[-1].body, replies[-1]


# ================================================================ crictl

def crictl_or_skip(s):
    from test_crictl import Crictl, find_crictl
    path = find_crictl()
    if not path:
        pytest.skip("crictl v1.32 not found beside the repository (../shared/cri-tools/crictl)")
    return Crictl(path, s)


def test_crictl_stats_and_statsp(ctx, ssuite):
    crictl = crictl_or_skip(ssuite)
    pod = ctx.pod(labels={"crictl": "stats"})
    c = ctx.run(pod, command=["sh", "-c", "dd if=/dev/zero of=/dev/shm/hold bs=1M count=24 && sleep 3600"])
    assert wait_for(lambda: c.out("wc -c </dev/shm/hold 2>/dev/null || echo 0") == str(24 * MiB),
                    15, 0.2)
    out = crictl.json("stats", "-o", "json", "--id", c.id)
    assert [x["attributes"]["id"] for x in out["stats"]] == [c.id], out
    st = out["stats"][0]
    assert st["attributes"]["metadata"]["name"] == c.name
    assert int(st["memory"]["workingSetBytes"]["value"]) >= 24 * MiB, st
    assert int(st["cpu"]["usageCoreNanoSeconds"]["value"]) > 0, st
    assert int(st["writableLayer"]["inodesUsed"]["value"]) >= 1, st
    out = crictl.json("stats", "-o", "json", "--pod", pod.id)
    assert [x["attributes"]["id"] for x in out["stats"]] == [c.id], out
    out = crictl.json("statsp", "-o", "json", "--id", pod.id)
    assert [x["attributes"]["id"] for x in out["stats"]] == [pod.id], out
    linux = out["stats"][0]["linux"]
    assert int(linux["memory"]["workingSetBytes"]["value"]) >= 24 * MiB, linux
    assert int(linux["process"]["processCount"]["value"]) >= 2, linux
    assert linux["network"]["defaultInterface"]["name"] == "eth0", linux
    assert [x["attributes"]["id"] for x in linux["containers"]] == [c.id], linux
    out = crictl.json("statsp", "-o", "json", "--label", "crictl=stats")
    assert [x["attributes"]["id"] for x in out["stats"]] == [pod.id], out
    # The table: one row for the container, named.
    table = crictl.out("stats", "--id", c.id)
    assert c.id[:13] in table and c.name in table, table
