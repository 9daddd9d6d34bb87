"""Issue 18's reliability promises that need a suite of their own: criod
SIGKILLed while many containers run keeps every one with its state; a full
state directory fails the calls that must write with RESOURCE_EXHAUSTED,
naming the record, and loses nothing already there (the calls work again
once there is room)."""
import os
import signal
import subprocess

import grpc
import pytest

import test_pods as tp
from test_containers import SLEEP, ctr_images, ctr_suite, ctx_of, runc_state, wait_runc_gone  # noqa: F401
from test_images import registries  # noqa: F401 - fixture

pb = tp.pb
N_PODS, PER_POD = 25, 4  # 100 containers, as issue 18 asks


def test_criod_killed_with_100_running_containers_keeps_them_all(test_user, registries, ctr_images):  # noqa: F811
    with ctr_suite(registries) as s:
        s.start_all()
        with ctx_of(s, ctr_images) as cx:
            cx.images.pull_all(cx.cri)
            ctrs = []
            for _ in range(N_PODS):
                p = cx.pod()
                ctrs += [cx.run(p, command=SLEEP, labels={"i": str(len(ctrs) + k)}) for k in range(PER_POD)]
            before = {c.id: c.status().status for c in ctrs}
            pids = {c.id: c.pid() for c in ctrs}
            listed = sorted(i.SerializeToString(deterministic=True) for i in cx.list())
            pods = sorted(i.SerializeToString(deterministic=True) for i in tp.list_pods(cx.cri))
            s.stop("criod", sig=signal.SIGKILL, check=False)
            s.start("criod")
            cx.reconnect()
            assert sorted(i.SerializeToString(deterministic=True) for i in cx.list()) == listed
            assert sorted(i.SerializeToString(deterministic=True) for i in tp.list_pods(cx.cri)) == pods
            for c in ctrs:
                assert c.status().status == before[c.id], c.name
                assert c.status().status.state == pb.CONTAINER_RUNNING
                assert c.pid() == pids[c.id]
            for c in ctrs[::10]:
                assert c.out("echo alive") == "alive"


def fill(path):
    """Fill the filesystem at path; returns the filler file."""
    f = os.path.join(path, "filler")
    subprocess.run(["dd", "if=/dev/zero", "of=" + f, "bs=64k"], capture_output=True, check=False)
    return f


def rpc_code(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value


def test_full_state_directory_fails_resource_exhausted_and_loses_nothing(test_user, registries,  # noqa: F811
                                                                         ctr_images):  # noqa: F811
    with ctr_suite(registries, extra="[imaged]\nmin_free_space = 0\n") as s:
        os.makedirs(s.state_dir)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0755", "tmpfs", s.state_dir], check=True)
        try:
            s.start_all()
            with ctx_of(s, ctr_images) as cx:
                cx.images.pull_all(cx.cri)
                p = cx.pod()
                kept = cx.run(p, command=SLEEP)
                made = cx.create(p, command=SLEEP)
                before = {c.id: c.status().status for c in (kept, made)}
                filler = fill(s.state_dir)
                try:
                    e = rpc_code(lambda: tp.run(cx.cri, tp.pod_config(s)))
                    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
                    assert "cannot record the pod" in e.details(), e.details()
                    e = rpc_code(lambda: cx.create(p, command=SLEEP))
                    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
                    assert "cannot record the container" in e.details(), e.details()
                    e = rpc_code(lambda: cx.remove(kept.id))
                    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
                    assert "cannot save the state of container %s" % kept.id in e.details(), e.details()
                    # The refused removal stopped the container (a stop
                    # writes nothing of criod's) but removed nothing.
                    assert kept.status().status.state == pb.CONTAINER_EXITED
                    assert runc_state(s, kept.id) is not None
                    assert made.status().status == before[made.id]
                finally:
                    os.unlink(filler)
                # Nothing was lost, on disk either: a restart finds it all.
                s.stop("criod", sig=signal.SIGKILL, check=False)
                s.start("criod")
                cx.reconnect()
                assert {c.id for c in cx.list()} == {kept.id, made.id}
                assert [x.id for x in tp.list_pods(cx.cri)] == [p.id]
                assert made.status().status == before[made.id]
                cx.start(made)
                assert made.out("echo ok") == "ok"
                cx.remove(kept.id)
                assert wait_runc_gone(s, kept.id, 5), runc_state(s, kept.id)
                tp.remove(cx.cri, p.id)
        finally:
            s.stop_all()
            tc_teardown(s)
            subprocess.run(["umount", "-R", s.state_dir], check=False)


def tc_teardown(s):
    import test_containers
    test_containers.container_teardown(s)
    for m in sorted(tp.mounts_under(s.state_dir), key=lambda m: len(m[0]), reverse=True):
        if m[0] != s.state_dir:
            subprocess.run(["umount", "-l", m[0]], check=False)
