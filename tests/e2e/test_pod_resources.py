"""UpdatePodSandboxResources end to end through criod's socket (Debian's
python3-grpcio) on test_pods' pod suite.

kubelet writes a resized pod's limits into the pod's cgroup (the
LinuxPodSandboxConfig's cgroup_parent) itself and then tells the runtime;
criod answers as CRI-O does without NRI (criod/pod_resources.c). Behaviour
asserted:
  notify     for a pod whose cgroup_parent kubelet (here: the test) gave a
             256 MiB memory limit, the call with resources and overhead is
             OK and logged ("pod resources updated by kubelet" with the
             request id, the pod and the memory limit); criod changes no
             cgroup: the parent keeps the limit the test wrote and spawnd's
             pod cgroup below it (criod-<id>) has none of its own, so the
             parent's bounds pause and every container. A stopped pod is
             told too (OK).
  bad input  no pod_sandbox_id: INVALID_ARGUMENT naming pod_sandbox_id; an
             unknown or removed pod: NOT_FOUND; resources.oom_score_adj
             out of range and overhead.unified that this host refuses:
             INVALID_ARGUMENT naming the field, as UpdateContainerResources
             checks them."""
import os

import grpc
import pytest

from conftest import api_pb2 as pb
from test_pods import psuite, pods_of, remove, stop, tok  # noqa: F401 - fixtures

MIB = 1 << 20


def memory_dir(rel):
    """The memory controller's directory for a cgroup path (v1 or v2)."""
    v1 = os.path.join("/sys/fs/cgroup/memory", rel.lstrip("/"))
    return v1 if os.path.isdir("/sys/fs/cgroup/memory") else os.path.join("/sys/fs/cgroup", rel.lstrip("/"))


def memory_limit_file(d):
    return os.path.join(d, "memory.limit_in_bytes" if os.path.exists(os.path.join(d, "memory.limit_in_bytes"))
                        else "memory.max")


def read_limit(d):
    with open(memory_limit_file(d)) as f:
        v = f.read().strip()
    return None if v == "max" or int(v) >= 1 << 62 else int(v)


def update(cri, pod_id, resources=None, overhead=None, rid=None):
    req = pb.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod_id)
    if resources is not None:
        req.resources.CopyFrom(resources)
    if overhead is not None:
        req.overhead.CopyFrom(overhead)
    return cri.runtime("UpdatePodSandboxResources", req, timeout=30,
                       metadata=[("x-request-id", rid)] if rid else None)


def test_pod_resources_notification(psuite):  # noqa: F811
    s = psuite
    cri = s.client()
    parent = s.cgroup_parent + "/pod" + tok(8)
    with pods_of(s) as pods:
        pod = pods.run(cgroup_parent=parent)
        pdir = memory_dir(parent)
        own = memory_dir(parent + "/criod-" + pod.id)
        assert os.path.isdir(own), own
        # kubelet's part of a resize: the pod-level limit on the pod's cgroup
        with open(memory_limit_file(pdir), "w") as f:
            f.write(str(256 * MIB))
        res = pb.LinuxContainerResources(memory_limit_in_bytes=256 * MIB, cpu_period=100000, cpu_quota=50000,
                                         cpu_shares=512)
        over = pb.LinuxContainerResources(memory_limit_in_bytes=16 * MIB)
        rid = "pod-resize-" + tok(4)
        update(cri, pod.id, res, over, rid=rid)
        lines = [l for l in s.log("criod").split("\n") if "req=%s " % rid in l and "pod resources updated" in l]
        assert len(lines) == 1, lines
        assert "pod=%s" % pod.id in lines[0] and "memory_limit=%d" % (256 * MIB) in lines[0], lines[0]
        assert "overhead=yes" in lines[0], lines[0]
        # criod wrote no cgroup: the parent's limit bounds the pod's own
        assert read_limit(pdir) == 256 * MIB
        assert read_limit(own) is None, read_limit(own)
        # a stopped pod is told as well
        stop(cri, pod.id)
        update(cri, pod.id, res)
    cri.close()


def test_pod_resources_bad_input(psuite):  # noqa: F811
    s = psuite
    cri = s.client()
    with pods_of(s) as pods:
        pod = pods.run()
        cases = [
            ("", None, None, grpc.StatusCode.INVALID_ARGUMENT, "pod_sandbox_id"),
            ("0" * 64, None, None, grpc.StatusCode.NOT_FOUND, "0" * 64),
            (pod.id, pb.LinuxContainerResources(oom_score_adj=5000), None, grpc.StatusCode.INVALID_ARGUMENT,
             "resources.oom_score_adj"),
            (pod.id, None, pb.LinuxContainerResources(unified={"cgroup.procs": "1"}),
             grpc.StatusCode.INVALID_ARGUMENT, "overhead.unified"),
        ]
        for pod_id, res, over, code, text in cases:
            with pytest.raises(grpc.RpcError) as e:
                update(cri, pod_id, res, over)
            assert e.value.code() == code, (pod_id, e.value)
            assert text in e.value.details(), e.value.details()
        update(cri, pod.id)  # nothing to say: OK
        remove(cri, pod.id)
        with pytest.raises(grpc.RpcError) as e:
            update(cri, pod.id, pb.LinuxContainerResources(memory_limit_in_bytes=64 * MIB))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, e.value
    cri.close()
