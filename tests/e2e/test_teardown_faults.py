"""A root daemon down (killed, restarting) in the middle of a container's or
pod's removal: the call fails with an error the client sees, and a retry
once the daemon is back finishes the job. Nothing is left that no call can
remove: StopPodSandbox and RemovePodSandbox converge too (issue 18: a
RemoveContainer that got past conmon and spawnd but found imaged down left
the pod unstoppable for ever)."""
import os
import re
import signal

import grpc
import pytest

import test_pods as tp
from test_containers import SLEEP, ctr_images, ctx_of, runc_state, started_suite, wait_runc_gone  # noqa: F401
from test_images import registries  # noqa: F401 - fixture

pb = tp.pb
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def ctr_mounts(s, cid):
    return [m for m in tp.mounts_under(s.base) if cid in m[0]]


def assert_container_gone(s, cx, cid):
    assert cid not in {c.id for c in cx.list()}
    assert wait_runc_gone(s, cid, 5), runc_state(s, cid)
    assert tp.wait_for(lambda: not ctr_mounts(s, cid), 10), ctr_mounts(s, cid)
    # spawnd may finish a removal it answered once conmon has exited
    assert tp.wait_for(lambda: not tp.files_mentioning(s.state_dir, [re.compile(cid)], contents=False), 5), \
        tp.files_mentioning(s.state_dir, [re.compile(cid)], contents=False)
    assert not tp.files_mentioning(s.run_dir, [re.compile(cid)], contents=False)


def assert_pod_gone(s, cx, pod_id):
    assert pod_id not in {p.id for p in cx.cri.runtime("ListPodSandbox").items}
    assert tp.wait_for(lambda: not tp.pause_pids(s, pod_id), 10)
    assert not os.path.exists(tp.netns_path(s, pod_id))
    assert not tp.files_mentioning(s.state_dir, [re.compile(pod_id)], contents=False)


def fails_unavailable(fn, who):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    assert e.value.code() == UNAVAILABLE, (e.value.code(), e.value.details())
    assert who in e.value.details(), e.value.details()
    return e.value.details()


# Which daemon is down during RemoveContainer; for spawnd and imaged the
# container's conmon has already run the runtime's delete and exited.
@pytest.mark.parametrize("daemon", ["imaged", "spawnd"])
def test_remove_container_with_a_daemon_down_converges(test_user, registries, ctr_images, daemon):  # noqa: F811
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        c = cx.run(p, command=SLEEP)
        kept = cx.run(p, command=SLEEP)
        s.stop(daemon, sig=signal.SIGKILL, check=False)
        fails_unavailable(lambda: cx.remove(c.id), daemon)
        # Still down: the pod's stop does not get stuck on the half-removed
        # container, whose monitor is gone (it fails only for what needs the
        # daemon that is down, and names it).
        if daemon == "imaged":
            tp.stop(cx.cri, p.id)
        else:
            fails_unavailable(lambda: tp.stop(cx.cri, p.id), "spawnd")
        st = cx.status(c.id).status
        assert st.state == pb.CONTAINER_EXITED, st
        assert st.reason, st
        s.start(daemon)
        # The daemon is back: stopping the pod works (again), and the
        # removal finishes, by a retry or by criod on its own.
        tp.stop(cx.cri, p.id)
        cx.remove(c.id)
        assert_container_gone(s, cx, c.id)
        assert cx.status(kept.id).status.state == pb.CONTAINER_EXITED
        tp.remove(cx.cri, p.id)
        assert_container_gone(s, cx, kept.id)
        assert_pod_gone(s, cx, p.id)


def test_half_removed_container_is_finished_by_criod_itself(test_user, registries, ctr_images):  # noqa: F811
    """Nobody retries: criod finishes the removal once imaged is back."""
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        c = cx.run(p, command=SLEEP)
        s.stop("imaged", sig=signal.SIGKILL, check=False)
        fails_unavailable(lambda: cx.remove(c.id), "imaged")
        s.start("imaged")
        assert tp.wait_for(lambda: not ctr_mounts(s, c.id), 30), ctr_mounts(s, c.id)
        assert tp.wait_for(lambda: c.id not in {x.id for x in cx.list()}, 30)
        assert_container_gone(s, cx, c.id)
        tp.remove(cx.cri, p.id)
        assert_pod_gone(s, cx, p.id)


def test_half_removed_container_survives_a_criod_restart(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        c = cx.run(p, command=SLEEP)
        s.stop("imaged", sig=signal.SIGKILL, check=False)
        fails_unavailable(lambda: cx.remove(c.id), "imaged")
        s.stop("criod", sig=signal.SIGKILL, check=False)
        s.start("criod")
        cx.reconnect()
        st = cx.status(c.id).status
        assert st.state == pb.CONTAINER_EXITED, st
        tp.stop(cx.cri, p.id)
        s.start("imaged")
        tp.remove(cx.cri, p.id)
        assert_container_gone(s, cx, c.id)
        assert_pod_gone(s, cx, p.id)


@pytest.mark.parametrize("daemon", ["netd", "spawnd"])
def test_pod_stop_and_remove_with_a_daemon_down_converge(test_user, registries, ctr_images, daemon):  # noqa: F811
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod(ports=[(pb.TCP, 8080, tp.free_port())])
        c = cx.run(p, command=SLEEP)
        s.stop(daemon, sig=signal.SIGKILL, check=False)
        fails_unavailable(lambda: tp.stop(cx.cri, p.id), daemon)
        fails_unavailable(lambda: tp.remove(cx.cri, p.id), daemon)
        s.start(daemon)
        tp.stop(cx.cri, p.id)
        tp.remove(cx.cri, p.id)
        assert_container_gone(s, cx, c.id)
        assert_pod_gone(s, cx, p.id)
        assert not tp.bridge_ports(s.bridge)
        assert not tp.files_mentioning(tp.ipam_dir(s), [tp.ip_pattern(p.ip)])
