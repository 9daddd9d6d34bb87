"""criod killed with SIGKILL in the middle of a call that spans the root
daemons: at its next start it finds the CREATING record it wrote first and
undoes what the daemons made, so nothing is left that no call can remove;
a pod whose record is unreadable is removed the same way, by its id."""
import os
import re
import signal
import threading

import grpc

import test_pods as tp
from test_containers import SLEEP, container_teardown, ctx_of, ctr_images, runc_state, wait_runc_gone  # noqa: F401
from test_images import registries  # noqa: F401 - fixture
from test_containers import started_suite

pb = tp.pb
CTR_RECORD = "ctr.pb"  # criod/containers.c RECORD_FILE


def entries(path):
    return set(os.listdir(path)) if os.path.isdir(path) else set()


def in_background(fn):
    """fn() on a thread; returns (thread, box) where box gets its outcome."""
    box = {}

    def run():
        try:
            box["ok"] = fn()
        except grpc.RpcError as e:
            box["err"] = e.code()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def test_criod_killed_during_run_pod_sandbox_undoes_the_pod(test_user):
    with tp.pod_suite() as s:
        s.start_all()
        cri = s.client()
        pods_dir = os.path.join(s.state_dir, "criod", "pods")
        before = entries(pods_dir)
        ports_before = tp.bridge_ports(s.bridge)
        cfg = tp.pod_config(s)
        netd = s.pid("netd")
        os.kill(netd, signal.SIGSTOP)  # RunPodSandbox waits for netd ...
        try:
            t, box = in_background(lambda: cri.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=cfg),
                                                       timeout=60))
            new = tp.wait_for(lambda: entries(pods_dir) - before, 10)
            assert new, "criod wrote no pod record before asking netd"
            pod_id = next(iter(new))
            s.stop("criod", sig=signal.SIGKILL, check=False)  # ... when criod dies
        finally:
            os.kill(netd, signal.SIGCONT)
        t.join(10)
        assert box.get("err") == grpc.StatusCode.UNAVAILABLE, box
        cri.close()
        s.start("criod")
        cri = s.client()
        # The recovery at start tears the pod down on every daemon and
        # removes the record; the pod is never reported ready.
        assert tp.wait_for(lambda: pod_id not in entries(pods_dir), 20), entries(pods_dir)
        assert pod_id not in {p.id for p in cri.runtime("ListPodSandbox").items}
        assert tp.wait_for(lambda: not tp.pause_pids(s, pod_id), 10)
        assert tp.wait_for(lambda: tp.bridge_ports(s.bridge) <= ports_before, 10), tp.bridge_ports(s.bridge)
        assert tp.wait_for(lambda: not tp.files_mentioning(s.run_dir, [re.compile(pod_id)], contents=False), 10)
        assert tp.wait_for(lambda: not tp.files_mentioning(s.state_dir, [re.compile(pod_id)], contents=False), 10)
        # kubelet's retry with the same name succeeds.
        again = tp.run(cri, cfg)
        assert tp.status(cri, again).status.state == pb.SANDBOX_READY
        tp.remove(cri, again)
        cri.close()


def test_criod_killed_during_create_container_undoes_the_container(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        ctrs_dir = os.path.join(s.state_dir, "criod", "containers")
        before = entries(ctrs_dir)
        cfg = cx.config(command=SLEEP)
        cfg.linux.security_context.namespace_options.CopyFrom(p.cfg.linux.security_context.namespace_options)
        imaged = s.pid("imaged")
        os.kill(imaged, signal.SIGSTOP)  # CreateContainer waits for imaged's rootfs ...
        try:
            cri = cx.cri
            t, box = in_background(lambda: cri.runtime("CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=p.id, config=cfg, sandbox_config=p.cfg), timeout=60))
            new = tp.wait_for(lambda: entries(ctrs_dir) - before, 10)
            assert new, "criod wrote no container record before asking imaged"
            cid = next(iter(new))
            s.stop("criod", sig=signal.SIGKILL, check=False)  # ... when criod dies
        finally:
            os.kill(imaged, signal.SIGCONT)
        t.join(10)
        assert box.get("err") == grpc.StatusCode.UNAVAILABLE, box
        s.start("criod")
        cx.reconnect()
        assert tp.wait_for(lambda: cid not in entries(ctrs_dir), 20), entries(ctrs_dir)
        assert cid not in {c.id for c in cx.list(pod=p.id)}
        assert tp.wait_for(lambda: not [m for m in tp.mounts_under(s.base) if cid in m[0]], 10)
        assert wait_runc_gone(s, cid, 5), runc_state(s, cid)
        assert tp.wait_for(lambda: not tp.files_mentioning(s.state_dir, [re.compile(cid)], contents=False), 10)
        # The pod still serves a new container.
        c = cx.run(p, command=SLEEP)
        assert c.out("echo ok") == "ok"


def corrupt(path):
    """Overwrite a record with bytes that are no record, keeping its owner."""
    st = os.stat(path)
    with open(path, "wb") as f:
        f.write(b"\xff\xff\xff not a record")
    os.chown(path, st.st_uid, st.st_gid)


def test_unreadable_pod_record_is_torn_down_and_removed(test_user, registries, ctr_images):  # noqa: F811
    """A pod record that cannot be read (records are written atomically, so
    a disk fault or a hand edit): at start criod removes the pod as
    RemovePodSandbox would, by its id, since no call could reach it any
    more: its running container, pause, network and directory go, and
    other pods are untouched."""
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        ports_before = tp.bridge_ports(s.bridge)
        kept = cx.pod()
        k = cx.run(kept, command=SLEEP)
        p = cx.pod()
        c = cx.run(p, command=SLEEP)
        assert tp.pause_pids(s, p.id) and runc_state(s, c.id) is not None
        s.stop("criod")
        corrupt(os.path.join(s.state_dir, "criod", "pods", p.id, "pod.pb"))
        s.start("criod")
        cx.reconnect()
        assert ('msg="unreadable pod state: the pod will be torn down and removed" pod=%s' % p.id) in s.log("criod")
        assert tp.wait_for(lambda: 'msg="removed a pod whose record was unreadable" pod=%s' % p.id in s.log("criod"),
                           30), s.log("criod")[-3000:]
        assert p.id not in entries(os.path.join(s.state_dir, "criod", "pods"))
        assert p.id not in {x.id for x in cx.cri.runtime("ListPodSandbox").items}
        assert c.id not in {x.id for x in cx.list()}
        assert wait_runc_gone(s, c.id, 5), runc_state(s, c.id)
        assert not tp.pause_pids(s, p.id)
        assert tp.wait_for(lambda: not [m for m in tp.mounts_under(s.base) if c.id in m[0] or p.id in m[0]], 10)
        for where in (s.state_dir, s.run_dir):
            assert tp.wait_for(lambda: not tp.files_mentioning(where, [re.compile(p.id), re.compile(c.id)], contents=False), 10), where
        # the other pod and its container are as they were
        assert k.out("echo ok") == "ok"
        assert tp.status(cx.cri, kept.id).status.state == pb.SANDBOX_READY
        cx.cri.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=kept.id))
        cx.cri.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=kept.id))
        assert tp.wait_for(lambda: tp.bridge_ports(s.bridge) <= ports_before, 10), tp.bridge_ports(s.bridge)


def test_unreadable_container_record_is_torn_down_and_removed(test_user, registries, ctr_images):  # noqa: F811
    """A running container whose record cannot be read: at start criod
    removes it by its id as an unfinished creation (conmon, spawnd's bundle,
    imaged's rootfs, its directory); its pod and the pod's other container
    stay and serve."""
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        k = cx.run(p, command=SLEEP)
        c = cx.run(p, command=SLEEP)
        assert runc_state(s, c.id) is not None
        s.stop("criod")
        corrupt(os.path.join(s.state_dir, "criod", "containers", c.id, CTR_RECORD))
        s.start("criod")
        cx.reconnect()
        assert ('msg="unreadable container state: the container will be torn down and removed" container=%s'
                % c.id) in s.log("criod")
        assert tp.wait_for(lambda: 'msg="removed a container whose record was unreadable" container=%s' % c.id
                           in s.log("criod"), 30), s.log("criod")[-3000:]
        assert c.id not in entries(os.path.join(s.state_dir, "criod", "containers"))
        assert c.id not in {x.id for x in cx.list()}
        assert wait_runc_gone(s, c.id, 5), runc_state(s, c.id)
        assert tp.wait_for(lambda: not [m for m in tp.mounts_under(s.base) if c.id in m[0]], 10)
        for where in (s.state_dir, s.run_dir):
            assert tp.wait_for(lambda: not tp.files_mentioning(where, [re.compile(c.id)], contents=False), 10), where
        assert k.out("echo ok") == "ok"
        assert tp.status(cx.cri, p.id).status.state == pb.SANDBOX_READY


def test_unreadable_record_of_an_unknown_pod_is_removed(test_user):
    """An unreadable record no daemon knows of: every teardown step finds
    nothing to do, so the directory goes and criod serves."""
    with tp.pod_suite() as s:
        s.start_all()
        cri = s.client()
        kept = tp.run(cri, tp.pod_config(s))
        cri.close()
        s.stop("criod")
        bogus = "f" * 64
        d = os.path.join(s.state_dir, "criod", "pods", bogus)
        os.makedirs(d, mode=0o700)
        with open(os.path.join(d, "pod.pb"), "wb") as f:
            f.write(b"\xff\xff\xff not a record")
        os.chown(d, *(lambda st: (st.st_uid, st.st_gid))(os.stat(os.path.dirname(d))))
        s.start("criod")
        assert tp.wait_for(lambda: 'msg="removed a pod whose record was unreadable" pod=%s' % bogus in s.log("criod"),
                           20), s.log("criod")[-3000:]
        assert not os.path.exists(d)
        cri = s.client()
        ids = {p.id for p in cri.runtime("ListPodSandbox").items}
        assert kept in ids and bogus not in ids, ids
        tp.remove(cri, kept)
        cri.close()


def test_unreadable_spawnd_pod_record_tears_down_the_pod_with_its_container(test_user, registries,  # noqa: F811
                                                                          ctr_images):  # noqa: F811
    """spawnd starting with a pod record it cannot read tears that pod down
    by its id (test_crash_leftovers has the bare pod): its running container
    is killed with the pause (both are in the pod cgroup) and reported
    exited; criod's StopPodSandbox and RemovePodSandbox then succeed and
    leave nothing; another pod and its container keep running."""
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        kept = cx.pod()
        k = cx.run(kept, command=SLEEP)
        p = cx.pod()
        c = cx.run(p, command=SLEEP)
        pause = tp.pause_pids(s, p.id)
        assert pause and runc_state(s, c.id) is not None
        s.stop("spawnd", signal.SIGKILL, check=False)
        corrupt(os.path.join(s.state_dir, "spawnd", "pods", p.id + ".json"))
        s.start("spawnd")
        assert 'msg="unreadable pod record; tearing the pod down by its id"' in s.log("spawnd")
        assert not any(tp.pid_alive(x) for x in pause)
        assert not tp.mounts_under(tp.pod_run_dir(s, p.id))
        assert not tp.pod_cgroup_dirs(s, p.id)
        cx.wait_exited(c)
        cx.cri.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=p.id))
        cx.cri.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=p.id))
        assert p.id not in {x.id for x in cx.cri.runtime("ListPodSandbox").items}
        assert c.id not in {x.id for x in cx.list()}
        assert wait_runc_gone(s, c.id, 5), runc_state(s, c.id)
        assert tp.wait_for(lambda: not [m for m in tp.mounts_under(s.base) if c.id in m[0] or p.id in m[0]], 10)
        for where in (s.state_dir, s.run_dir):
            assert tp.wait_for(lambda: not tp.files_mentioning(where, [re.compile(p.id), re.compile(c.id)], contents=False), 10), where
        assert k.out("echo ok") == "ok"
        assert tp.status(cx.cri, kept.id).status.state == pb.SANDBOX_READY


def test_criod_started_in_another_boot_reports_live_containers_exited(test_user, registries, ctr_images):  # noqa: F811
    """A host restart ends every conmon and container, and conmon writes its
    CREATED state.pb and conmon.pid boot-scoped (a host crash may lose
    them; criod's config.json is boot-scoped, the user ContainerStatus
    reports from it is in criod's record): criod started in another boot than its records' (its boot_id
    file rewritten, the monitors and the init killed, the created
    container's conmon files removed, as a crash can leave them) records
    every created or running container as EXITED 255 (reason Unknown, the
    running one keeping its started_at), keeps an exited one's status as
    conmon recorded it, changes nothing more at a second start in the new
    boot, and every container is then removed leaving nothing."""
    from test_containers import conmon_pids, runc_pid
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        created = cx.create(p, command=SLEEP)
        running = cx.run(p, command=SLEEP)
        done = cx.run(p, command=["sh", "-c", "exit 3"])
        cx.wait_exited(done)
        started_at = running.status().status.started_at
        done_before = done.status().status
        assert started_at > 0 and done_before.exit_code == 3
        user = created.status().status.user
        assert user.HasField("linux"), user
        init = runc_pid(s, running.id)
        monitors = conmon_pids(created.id) + conmon_pids(running.id)
        assert len(monitors) == 2, monitors
        s.stop("criod")
        for pid in monitors + [init]:
            os.kill(pid, signal.SIGKILL)
        assert tp.wait_for(lambda: not any(os.path.exists("/proc/%d" % q) for q in monitors + [init]), 10)
        gone = os.path.join(s.state_dir, "spawnd", "containers", created.id)
        for name in ("state.pb", "conmon.pid"):
            os.unlink(os.path.join(gone, name))
        # criod's config.json is boot-scoped too; the user it names is in the record.
        os.unlink(os.path.join(s.state_dir, "criod", "containers", created.id, "config.json"))
        with open(os.path.join(s.state_dir, "criod", "boot_id"), "w") as f:
            f.write("00000000-0000-4000-8000-000000000000\n")
        s.start("criod")
        cx.reconnect()
        assert ('msg="the host restarted since the containers were made: created and running ones are now exited" '
                'containers=2') in s.log("criod"), s.log("criod")[-3000:]

        def check():
            for c in (created, running):
                st = c.status().status
                assert st.state == pb.CONTAINER_EXITED and st.exit_code == 255 and st.reason == "Unknown", (c.id, st)
                assert "host restarted" in st.message, st
            assert created.status().status.started_at == 0
            assert created.status().status.user == user
            assert running.status().status.started_at == started_at
            assert done.status().status == done_before
        check()
        s.restart("criod")
        cx.reconnect()
        check()
        for c in (created, running, done):
            cx.remove(c.id)
            assert runc_state(s, c.id) is None
        for where in (s.state_dir, s.run_dir):
            assert tp.wait_for(lambda: not tp.files_mentioning(
                where, [re.compile(c.id) for c in (created, running, done)], contents=False), 10), where
