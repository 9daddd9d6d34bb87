"""netd restarted under running pods: its start checks every ready pod's
hostPort rules with one listing of its nftables table (a listing per pod
made the start take seconds with a hundred pods) and restores exactly the
rules that went missing; while netd is down or not yet ready, RunPodSandbox
fails at once with UNAVAILABLE naming netd (criod does not wait: kubelet
retries), and succeeds once netd is back."""
import glob
import os
import re
import signal

import grpc
import pytest

import test_pods as tp

pb = tp.pb


def pod_rules(s):
    """{pod id: [rule text without handle, ...]} of the suite's table."""
    out = {}
    for line in tp.nft_table_text("inet", s.nft_table).splitlines():
        m = re.search(r'comment "pod:([0-9a-f]{64})"', line)
        if m:
            out.setdefault(m.group(1), []).append(re.sub(r"\s*# handle \d+", "", line.strip()))
    return {k: sorted(v) for k, v in out.items()}


def test_netd_start_restores_only_the_missing_hostport_rules(test_user):
    with tp.pod_suite() as s:
        s.start_all()
        cri = s.client()
        pods = [tp.run(cri, tp.pod_config(s, ports=[(pb.TCP, 80, tp.free_port())])) for _ in range(4)]
        plain = tp.run(cri, tp.pod_config(s))
        before = pod_rules(s)
        assert set(before) == set(pods), before
        s.stop("netd", sig=signal.SIGKILL, check=False)
        # Someone deletes one pod's rules while netd is away.
        gone = pods[1]
        chain = None
        for line in tp.nft_table_text("inet", s.nft_table).splitlines():
            c = re.match(r"\s*chain (\S+) \{", line)
            chain = c.group(1) if c else chain
            m = re.search(r'comment "pod:%s".*# handle (\d+)' % gone, line)
            if m:
                tp.sh("nft", "delete", "rule", "inet", s.nft_table, chain, "handle", m.group(1))
        assert gone not in pod_rules(s)
        s.start("netd")
        assert pod_rules(s) == before
        log = s.log("netd")
        assert log.count('msg="restoring missing hostPort rules"') == 1, log
        assert 'msg="restoring missing hostPort rules" pod=%s' % gone in log
        for p in pods + [plain]:
            tp.remove(cri, p)
        assert pod_rules(s) == {}
        cri.close()


def test_run_pod_sandbox_while_netd_is_down_fails_unavailable_naming_netd(test_user):
    with tp.pod_suite() as s:
        s.start_all()
        cri = s.client()
        s.stop("netd", sig=signal.SIGKILL, check=False)
        cfg = tp.pod_config(s)
        with pytest.raises(grpc.RpcError) as e:
            tp.run(cri, cfg)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
        assert "netd" in e.value.details(), e.value.details()
        # Nothing of the failed pod is listed; kubelet's retry works once
        # netd is back.
        assert not tp.list_pods(cri)
        s.start("netd")
        p = tp.run(cri, cfg)
        assert tp.status(cri, p).status.state == pb.SANDBOX_READY
        tp.remove(cri, p)
        cri.close()


def test_unreadable_pod_record_keeps_the_address_until_the_pod_is_removed(test_user):
    """A ready pod whose netd record cannot be read when netd starts keeps
    its namespace, veth, hostPort rules and address (their owner is not
    proven gone, so the address is not given to another pod); its
    StopPodSandbox/RemovePodSandbox still release all of them and the
    record."""
    with tp.pod_suite() as s:
        s.start_all()
        with tp.pods_of(s) as pods:
            a = pods.run(ports=[(pb.TCP, 80, tp.free_port())])
            assert a.id in pod_rules(s)
            rec = os.path.join(s.state_dir, "netd", "pods", a.id + ".json")
            assert os.path.exists(rec)
            s.stop("netd", sig=signal.SIGKILL, check=False)
            with open(rec, "w") as f:
                f.write('{"pod_id": "%s", "state": ' % a.id)
            # The allocator's next pick would be a's address were it free.
            for hint in glob.glob(os.path.join(tp.ipam_dir(s), "*", ".last")):
                with open(hint, "w") as f:
                    f.write("0\n")
            s.start("netd")
            log = s.log("netd")
            assert 'msg="unreadable pod record; rebuilding it from the pod id"' in log, log
            assert 'msg="pod network of an unreadable record kept until its teardown" pod=%s' % a.id in log, log
            tp.assert_network_up(s, a)
            assert tp.ipam_holds(s, a.ip)
            assert a.ports <= tp.bridge_ports(s.bridge)
            assert a.id in pod_rules(s)
            b = pods.run()
            assert b.ip and b.ip != a.ip, (a.ip, b.ip)
            tp.stop(pods.cri, a.id)
            assert tp.network_torn_down(s, a)
            assert not os.path.exists(rec)
            assert not tp.ipam_holds(s, a.ip)
            assert a.id not in pod_rules(s)
            tp.remove(pods.cri, a.id)
            tp.assert_gone(s, pods.cri, a)
            tp.assert_network_up(s, b)
            tp.remove(pods.cri, b.id)
            tp.assert_gone(s, pods.cri, b)


def test_unreadable_pod_record_on_cni_is_torn_down_through_the_plugins(test_user):
    """The CNI backend: a ready pod whose netd record cannot be read when
    netd starts is rebuilt from its id (its namespace is still mounted, so
    it keeps its network until its teardown); its StopPodSandbox then calls
    the plugins' DEL with what the id names (container id, namespace,
    interface; the record's prevResult and pod name are lost), and the
    plugins release the address, the veth and the portmap rules."""
    for plugin in ("bridge", "host-local", "portmap"):
        if not os.path.exists(os.path.join(tp.CNI_BIN, plugin)):
            pytest.skip("containernetworking-plugins is not installed (scripts/deps installs it)")
    hp = tp.free_port()
    with tp.pod_suite(cni=True) as s:
        s.start_all()
        with tp.pods_of(s) as pods:
            a = pods.run(ports=[(pb.TCP, 8080, hp)])
            data_dir = os.path.join(s.cni_data_dir, s.cni_net_name)
            assert os.path.isfile(os.path.join(data_dir, a.ip)), os.listdir(data_dir)
            assert tp.ip_pattern(a.ip).search(tp.sh("nft", "list", "ruleset").stdout), "no portmap rule"
            rec = os.path.join(s.state_dir, "netd", "pods", a.id + ".json")
            assert os.path.exists(rec)
            s.stop("netd", sig=signal.SIGKILL, check=False)
            with open(rec, "w") as f:
                f.write('{"pod_id": "%s", "state": ' % a.id)
            s.start("netd")
            log = s.log("netd")
            assert 'msg="unreadable pod record; rebuilding it from the pod id"' in log, log
            assert 'msg="pod network of an unreadable record kept until its teardown" pod=%s' % a.id in log, log
            tp.assert_network_up(s, a)
            assert os.path.isfile(os.path.join(data_dir, a.ip)), os.listdir(data_dir)
            b = pods.run()
            assert b.ip and b.ip != a.ip, (a.ip, b.ip)
            tp.stop(pods.cri, a.id)
            assert tp.wait_for(lambda: tp.network_torn_down(s, a), 5)
            assert not os.path.exists(rec)
            assert not os.path.exists(os.path.join(data_dir, a.ip)), os.listdir(data_dir)
            assert not tp.ip_pattern(a.ip).search(tp.sh("nft", "list", "ruleset").stdout), "portmap rules survived"
            tp.remove(pods.cri, a.id)
            tp.assert_gone(s, pods.cri, a)
            tp.assert_network_up(s, b)
            tp.remove(pods.cri, b.id)
            tp.assert_gone(s, pods.cri, b)
