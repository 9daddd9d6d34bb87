"""What a SIGKILL in the middle of a write or a removal leaves in the state
directories is removed at the next start (found by scripts/chaos): criod's
pod and container directories without their record (a crash in pod_destroy
or ctr_destroy after the record went, or in pod_new/ctr_new before it was
written) and the temporary files of interrupted atomic writes in them;
imaged's temporary files in images/ and blobs/sha256/. Directories with a
record are kept."""
import os
import re
import signal

import test_pods as tp


def own_like(path, ref):
    st = os.stat(ref)
    os.chown(path, st.st_uid, st.st_gid)


def test_criod_start_removes_directories_without_a_record(test_user):
    with tp.pod_suite() as s:
        s.start_all()
        cri = s.client()
        kept = tp.run(cri, tp.pod_config(s))
        cri.close()
        s.stop("criod")
        made = []
        for kind, files in (("pods", ["hostname", ".pod.pb.0123456789abcdef.tmp"]),
                            ("containers", ["config.json", "removing", ".ctr.pb.0123456789abcdef.tmp"]),
                            ("pods", [])):
            root = os.path.join(s.state_dir, "criod", kind)
            d = os.path.join(root, os.urandom(32).hex())
            os.mkdir(d, 0o700)
            own_like(d, root)
            for f in files:
                with open(os.path.join(d, f), "w") as fh:
                    fh.write("left by a crash\n")
                own_like(os.path.join(d, f), root)
            made.append((kind, d))
        stray = os.path.join(s.state_dir, "criod", "pods", kept, ".pod.pb.fedcba9876543210.tmp")
        s.start("criod")
        for kind, d in made:
            assert not os.path.exists(d), d
            assert 'msg="removed a %s directory without a record" %s=%s' % (
                kind[:-1] if kind == "pods" else "container", "pod" if kind == "pods" else "container",
                os.path.basename(d)) in s.log("criod")
        assert os.path.isfile(os.path.join(s.state_dir, "criod", "pods", kept, "pod.pb"))
        cri = s.client()
        assert [p.id for p in tp.list_pods(cri)] == [kept]
        tp.remove(cri, kept)
        assert not os.path.exists(os.path.join(s.state_dir, "criod", "pods", kept))
        assert not os.path.exists(stray)
        cri.close()


def test_imaged_start_removes_interrupted_writes(test_user):
    with tp.pod_suite() as s:
        s.start_all()
        s.stop("imaged")
        store = os.path.join(s.state_dir, "imaged")
        left = [os.path.join(store, "images", "." + "a" * 64 + ".json.0123456789abcdef.tmp"),
                os.path.join(store, "blobs", "sha256", "." + "b" * 64 + ".0123456789abcdef.tmp")]
        for f in left:
            with open(f, "w") as fh:
                fh.write("half")
        s.start("imaged")
        for f in left:
            assert not os.path.exists(f), f
            assert 'msg="removed an interrupted write" dir=%s file=%s' % (
                os.path.relpath(os.path.dirname(f), store), os.path.basename(f)) in s.log("imaged")


def spawnd_restart_with_unreadable_record(s, pod, rec, before_start=lambda: None):
    """SIGKILL spawnd, run before_start, make pod's record unreadable, start
    spawnd and check it tore the pod down by its id, naming its cgroup."""
    s.stop("spawnd", signal.SIGKILL, check=False)
    before_start()
    with open(rec, "w") as f:
        f.write('{"pod_id": "%s", "state": "ready", "pause_pid": ' % pod.id)
    s.start("spawnd")
    log = s.log("spawnd")
    assert re.search(r'msg="unreadable pod record; tearing the pod down by its id" path=\S+/%s\.json '
                     r'cgroup=/\S*/criod-%s ' % (pod.id, pod.id), log), log


def test_spawnd_start_tears_down_a_pod_whose_record_is_unreadable(test_user):
    """A pod whose spawnd record cannot be read is torn down by its id when
    spawnd starts (what the record allowed it, privileged or the host's PID
    namespace, is not known): its pause process and whatever else is in its
    cgroup, its namespace and /dev/shm mounts, its directory, its cgroup and
    the record go; another pod is untouched; StopPodSandbox and
    RemovePodSandbox of the torn-down pod still succeed and leave nothing."""
    with tp.pod_suite() as s:
        s.start_all()
        with tp.pods_of(s) as pods:
            a = pods.run()
            b = pods.run()
            assert a.pause and tp.mounts_under(tp.pod_run_dir(s, a.id))
            assert tp.pod_cgroup_dirs(s, a.id)
            rec = os.path.join(s.state_dir, "spawnd", "pods", a.id + ".json")
            assert os.path.exists(rec)
            # The pod cgroup is found from the processes in its namespaces.
            spawnd_restart_with_unreadable_record(s, a, rec)
            tp.wait_for(lambda: not any(tp.pid_alive(p) for p in a.pause), 5)
            assert not any(tp.pid_alive(p) for p in a.pause), a.pause
            assert tp.mounts_under(tp.pod_run_dir(s, a.id)) == []
            assert not os.path.lexists(tp.pod_run_dir(s, a.id))
            assert tp.pod_cgroup_dirs(s, a.id) == []
            assert not os.path.exists(rec)
            # The other pod keeps its pause and mounts.
            assert all(tp.pid_alive(p) for p in b.pause) and b.pause
            assert tp.mounts_under(tp.pod_run_dir(s, b.id))
            tp.stop(pods.cri, a.id)
            tp.remove(pods.cri, a.id)
            tp.assert_gone(s, pods.cri, a)
            tp.remove(pods.cri, b.id)
            tp.assert_gone(s, pods.cri, b)


def test_spawnd_start_finds_the_cgroup_of_an_unreadable_pod_without_processes(test_user):
    """The pod of an unreadable spawnd record whose pause died too (nothing
    is left in its namespaces to read the cgroup from): spawnd finds the
    pod cgroup by its name in the hierarchies and removes it with the rest."""
    with tp.pod_suite() as s:
        s.start_all()
        with tp.pods_of(s) as pods:
            a = pods.run()
            assert a.pause and tp.pod_cgroup_dirs(s, a.id)
            rec = os.path.join(s.state_dir, "spawnd", "pods", a.id + ".json")
            def kill_pause():
                for p in a.pause:
                    os.kill(p, signal.SIGKILL)
                tp.wait_for(lambda: not any(tp.pid_alive(p) for p in a.pause), 5)
                assert not any(tp.pid_alive(p) for p in a.pause), a.pause
            spawnd_restart_with_unreadable_record(s, a, rec, kill_pause)
            tp.wait_for(lambda: not tp.pod_cgroup_dirs(s, a.id), 5)
            assert tp.pod_cgroup_dirs(s, a.id) == []
            assert tp.mounts_under(tp.pod_run_dir(s, a.id)) == []
            assert not os.path.exists(rec)
            tp.stop(pods.cri, a.id)
            tp.remove(pods.cri, a.id)
            tp.assert_gone(s, pods.cri, a)
