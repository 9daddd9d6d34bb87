"""The node's hostPort policy (issue 13), enforced by netd from criod.conf
[policy] whatever criod sends:

  host_port_range         a hostPort outside it is PERMISSION_DENIED naming
                          the key; nothing of the pod is made (no netns, no
                          veth, no address, no rule)
  host_port_allow_in_use  false (default): a hostPort on which a host socket
                          receives (a TCP listener, a bound UDP socket, in
                          the host's namespace, on the mapping's host_ip or
                          a wildcard) is FAILED_PRECONDITION naming the port
  host_port_local         true (default): 127.0.0.1:hostPort reaches the pod;
                          false: no output-chain jump, route_localnet off,
                          hostPorts answer only traffic from outside the host
                          (here: a network namespace the test makes, joined
                          to the host by a veth pair on a /30 no host route
                          overlaps)

Through criod, and from a hostile front end: a raw client with criod's uid
on netd's socket (hostPort 22 and 53/udp when something listens there, else
ports the test listens on itself; out-of-range, 0, negative, 65536, garbage
host_ip), each refused with the documented status and nothing made.

Traffic goes only to 127.0.0.1, to pod addresses routed through the suite's
bridge, and to the address of the test's own veth.
"""
import contextlib
import importlib
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys

import grpc
import pytest

import conftest
from conftest import api_pb2 as pb, envelope_pb2
from test_pods import (ipam_dir, netns_path, nft_table_text, pick_subnet, pod_config, pod_server,
                       pod_suite, pods_of, remove, rpc_error, run, sh, tcp_get, tok, udp_ask, wait_for, bridge_ports,
                       assert_gone, link_exists, restore_forwarding_sysctls)  # noqa: F401

NETD_SETUP_POD, NETD_TEARDOWN_POD = 2, 3  # common/api.h
RANGE_KEY = "[policy] host_port_range"
IN_USE_KEY = "[policy] host_port_allow_in_use"
IN_USE = "is in use by a host service"
DENIED = grpc.StatusCode.PERMISSION_DENIED
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def _netd_pb2():
    subprocess.run(["protoc", "--proto_path=" + os.path.join(conftest.ROOT, "proto"),
                    "--python_out=" + conftest._PB_DIR, "internal/netd.proto"], check=True)
    importlib.invalidate_caches()
    return importlib.import_module("internal.netd_pb2")


netd_pb2 = _netd_pb2()


# ================================================================ helpers

def listening(port, proto):
    """Does a host socket (this namespace) receive on port? TCP LISTEN or an
    unconnected UDP socket, as netd reads them."""
    for f in ("/proc/net/%s" % proto, "/proc/net/%s6" % proto):
        try:
            lines = open(f).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, remote, st = line.split()[1:4]
            if int(local.split(":")[1], 16) != port:
                continue
            if (proto == "tcp" and st == "0A") or (proto == "udp" and st == "07" and remote.endswith(":0000")):
                return True
    return False


def free_port_in(lo, hi, kind=socket.SOCK_STREAM):
    """A port in lo..hi nothing on the host uses for either protocol."""
    for _ in range(200):
        p = random.randint(lo, hi)
        if listening(p, "tcp") or listening(p, "udp"):
            continue
        ok = True
        for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, k)
            try:
                s.bind(("0.0.0.0", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise AssertionError("no free port in %d..%d" % (lo, hi))


@contextlib.contextmanager
def host_listener(addr, port, kind=socket.SOCK_STREAM):
    """A socket of ours in the host's namespace, receiving on addr:port."""
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if kind == socket.SOCK_STREAM:
        s.listen(4)
    try:
        yield s
    finally:
        s.close()


def snapshot(s):
    """What netd has made on the host, to compare before and after."""
    nd = os.path.join(s.run_dir, "netns")
    pods_dir = os.path.join(s.state_dir, "netd", "pods")
    return {
        "netns": sorted(os.listdir(nd)) if os.path.isdir(nd) else [],
        "records": sorted(os.listdir(pods_dir)) if os.path.isdir(pods_dir) else [],
        "bridge_ports": sorted(bridge_ports(s.bridge)),
        "pod_rules": sorted(set(re.findall(r'comment "pod:([0-9a-f]{64})"', nft_table_text("inet", s.nft_table)))),
        "ipam": ipam_allocations(s),
    }


def ipam_allocations(s):
    """netd's address allocations: <ipam>/<subnet>/<ip> files (not its .last)."""
    out = []
    for d, _, files in os.walk(ipam_dir(s)):
        out += [os.path.join(d, f) for f in files if not f.startswith(".")]
    return sorted(out)


def refused_through_criod(s, cri, ports, code, *words):
    """RunPodSandbox with these port mappings is refused with code, the
    message holding words, and nothing is made."""
    before = snapshot(s)
    cfg = pod_config(s, ports=ports)
    e = rpc_error(run, cri, cfg)
    assert e.code() == code, (ports, e.code(), e.details())
    for w in words:
        assert w in e.details(), (ports, w, e.details())
    assert snapshot(s) == before
    assert not [p for p in cri.runtime("ListPodSandbox", pb.ListPodSandboxRequest()).items
                if p.metadata.name == cfg.metadata.name]
    table = nft_table_text("inet", s.nft_table)
    for _, _, hp in ports:
        assert not re.search(r"dport %d\b" % hp, table), table
    return e


def refusal_logged(s, port, proto, rule):
    return wait_for(lambda: re.search(
        r'msg="host port refused by the node policy" pod=[0-9a-f]{64} port=%d/%s host_ip=\S+ rule="\[policy\] %s"'
        % (port, proto, rule), s.log("netd")), 3)


def output_chain_rules(s):
    r = sh("nft", "-j", "list", "chain", "inet", s.nft_table, "output", check=False)
    if r.returncode != 0:
        return []
    return [o["rule"] for o in json.loads(r.stdout)["nftables"] if "rule" in o]


def bridge_route_localnet(s):
    with open("/proc/sys/net/ipv4/conf/%s/route_localnet" % s.bridge) as f:
        return f.read().strip()


@contextlib.contextmanager
def outside_netns():
    """A network namespace of the test's own, joined to the host by a veth
    pair on a /30 no host route or address overlaps: host end .1, the
    namespace's end .2 with a default route via .1. Yields (ns, host_ip)."""
    net = pick_subnet(30)
    host_ip, ns_ip = str(net.network_address + 1), str(net.network_address + 2)
    ns, host_if = "crdtn" + tok(4), "crdth" + tok(4)
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "addr", "add", "%s/30" % host_ip, "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "%s/30" % ns_ip, "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"], ["ip", "route", "add", "default", "via", host_ip]):
            sh("ip", "netns", "exec", ns, *cmd)
        yield ns, host_ip
    finally:
        sh("ip", "link", "del", host_if, check=False)
        sh("ip", "netns", "del", ns, check=False)
        assert not link_exists(host_if)


def tcp_get_from_netns(ns, host, port):
    r = sh("ip", "netns", "exec", ns, sys.executable, "-c",
           "import socket,sys\n"
           "try:\n"
           "    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)\n"
           "    print(c.recv(100).decode().strip())\n"
           "except OSError as e:\n"
           "    print('error', e)\n", host, str(port), check=False)
    return r.stdout.strip()


# ================================================================ suites

@pytest.fixture(scope="module")
def range_suite(test_user):
    """hostPorts only in 20000..29999."""
    with pod_suite(extra="[policy]\nhost_port_range = 20000-29999\n") as s:
        s.start_all()
        yield s


@pytest.fixture(scope="module")
def dsuite(test_user):
    """The default policy."""
    with pod_suite() as s:
        s.start_all()
        yield s


# ================================================================ through criod

def test_outside_the_range_is_refused_and_nothing_is_made(range_suite):
    s = range_suite
    assert 'msg="host port policy" host_port_range=20000-29999 host_port_local=true ' \
           'host_port_allow_in_use=false' in s.log("netd")
    with pods_of(s) as ps:
        for ports, port, proto in (([(pb.TCP, 80, 19999)], 19999, "tcp"),
                                   ([(pb.UDP, 53, 30000)], 30000, "udp"),
                                   ([(pb.TCP, 22, 22)], 22, "tcp"),
                                   ([(pb.TCP, 80, 1)], 1, "tcp"),
                                   ([(pb.TCP, 80, 65535)], 65535, "tcp"),
                                   # one bad mapping among good ones refuses the pod
                                   ([(pb.TCP, 8080, 20001), (pb.TCP, 8081, 31000)], 31000, "tcp")):
            e = refused_through_criod(s, ps.cri, ports, DENIED, RANGE_KEY, "host port %d/%s" % (port, proto),
                                      "20000-29999")
            assert refusal_logged(s, port, proto, "host_port_range"), e.details()
        # Inside the range it works, and reaches the pod at 127.0.0.1.
        hp = free_port_in(20000, 29999)
        p = ps.run(ports=[(pb.TCP, 8080, hp)])
        with pod_server(s, p.id) as t:
            assert tcp_get("127.0.0.1", hp) == b"tcp:%s\n" % t.encode()
        remove(ps.cri, p.id)
        assert_gone(s, ps.cri, p)


def test_a_port_a_host_socket_listens_on_is_refused(dsuite):
    s = dsuite
    with pods_of(s) as ps:
        for addr in ("127.0.0.1", "0.0.0.0"):
            hp = free_port_in(20000, 29999)
            with host_listener(addr, hp):
                refused_through_criod(s, ps.cri, [(pb.TCP, 8080, hp)], PRECONDITION,
                                      "host port %d/tcp %s" % (hp, IN_USE), IN_USE_KEY)
                assert refusal_logged(s, hp, "tcp", "host_port_allow_in_use")
            hp = free_port_in(20000, 29999)
            with host_listener(addr, hp, socket.SOCK_DGRAM):
                refused_through_criod(s, ps.cri, [(pb.UDP, 8081, hp)], PRECONDITION,
                                      "host port %d/udp %s" % (hp, IN_USE), IN_USE_KEY)
                assert refusal_logged(s, hp, "udp", "host_port_allow_in_use")
                # The other protocol on the same port is free.
                p = ps.run(ports=[(pb.TCP, 8080, hp)])
                remove(ps.cri, p.id)
                assert_gone(s, ps.cri, p)
        # A listener on another loopback address does not take 127.0.0.1's port.
        hp = free_port_in(20000, 29999)
        with host_listener("127.0.0.2", hp):
            cfg = pod_config(s, ports=[(pb.TCP, 8080, hp)])
            cfg.port_mappings[0].host_ip = "127.0.0.1"
            pod_id = run(ps.cri, cfg)
            ps.made.append(pod_id)
            remove(ps.cri, pod_id)
        # Once our listener is gone, the port maps, and the default policy
        # reaches the pod at 127.0.0.1 (the output chain jumps to hostports).
        hp = free_port_in(20000, 29999)
        with host_listener("127.0.0.1", hp):
            refused_through_criod(s, ps.cri, [(pb.TCP, 8080, hp)], PRECONDITION, str(hp))
        p = ps.run(ports=[(pb.TCP, 8080, hp), (pb.UDP, 8081, hp)])
        with pod_server(s, p.id) as t:
            assert tcp_get("127.0.0.1", hp) == b"tcp:%s\n" % t.encode()
            assert udp_ask("127.0.0.1", hp, b"x") == b"udp:%s:x" % t.encode()
        assert any("hostports" in json.dumps(r) for r in output_chain_rules(s))
        assert bridge_route_localnet(s) == "1"
        remove(ps.cri, p.id)
        assert_gone(s, ps.cri, p)


def test_allow_in_use(test_user):
    with pod_suite(extra="[policy]\nhost_port_allow_in_use = true\n") as s:
        s.start_all()
        with pods_of(s) as ps:
            hp = free_port_in(20000, 29999)
            with host_listener("127.0.0.1", hp):
                p = ps.run(ports=[(pb.TCP, 8080, hp)])
                remove(ps.cri, p.id)
                assert_gone(s, ps.cri, p)


def test_host_port_local_false_answers_only_from_outside(test_user):
    with pod_suite(extra="[policy]\nhost_port_local = false\n") as s:
        s.start_all()
        assert "host_port_local=false" in s.log("netd")
        # No output-chain jump, no 127.0.0.1 masquerade, no route_localnet.
        assert output_chain_rules(s) == []
        table = nft_table_text("inet", s.nft_table)
        assert "netd:localhost" not in table and "prerouting" in table, table
        assert re.search(r"chain prerouting \{[^}]*jump hostports", table), table
        assert bridge_route_localnet(s) == "0"
        with pods_of(s) as ps, outside_netns() as (ns, host_ip):
            hp = free_port_in(20000, 29999)
            p = ps.run(ports=[(pb.TCP, 8080, hp)])
            with pod_server(s, p.id) as t:
                want = "tcp:" + t
                # From another namespace, through the host's address: the pod.
                assert tcp_get_from_netns(ns, host_ip, hp) == want
                # From the host itself, neither 127.0.0.1 nor that address.
                assert tcp_get("127.0.0.1", hp) is None
                assert tcp_get(host_ip, hp) is None
            remove(ps.cri, p.id)
            assert_gone(s, ps.cri, p)
            assert tcp_get_from_netns(ns, host_ip, hp).startswith("error")


# ================================================================ from a hostile front end

HOSTILE_SCRIPT = r"""
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
out = []
for frame in json.load(sys.stdin):
    s.sendall(bytes.fromhex(frame))
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack("<I", buf[:4])[0]:
        data = s.recv(1 << 20)
        if not data:
            break
        buf += data
    out.append(buf[4:].hex())
json.dump(out, sys.stdout)
"""


def frame(call_id, method, msg):
    env = envelope_pb2.Envelope(call_id=call_id, method=method, request_id="hostile-%d" % call_id,
                                body=msg.SerializeToString()).SerializeToString()
    return struct.pack("<I", len(env)) + env


def setup_request(pod_id, *mappings):
    req = netd_pb2.SetupPodNetworkRequest(pod_id=pod_id, pod_name="hostile", pod_namespace="e2e", pod_uid="u")
    for proto, cport, hport, host_ip in mappings:
        req.port_mappings.add(protocol=proto, container_port=cport, host_port=hport, host_ip=host_ip)
    return req


def test_netd_refuses_a_hostile_front_end(test_user):
    with pod_suite(extra="[policy]\nhost_port_range = 1-40000\n") as s:
        s.start_all()
        with contextlib.ExitStack() as held:
            # hostPort 22 and 53/udp: the host's if something listens
            # there, else ports we listen on ourselves.
            ssh = 22 if listening(22, "tcp") else free_port_in(20000, 29999)
            dns = 53 if listening(53, "udp") else free_port_in(20000, 29999)
            if ssh != 22:
                held.enter_context(host_listener("0.0.0.0", ssh))
            if dns != 53:
                held.enter_context(host_listener("127.0.0.1", dns, socket.SOCK_DGRAM))
            mine_tcp = free_port_in(20000, 29999)
            held.enter_context(host_listener("127.0.0.1", mine_tcp))
            free = free_port_in(20000, 29999)
            cases = [
                # (mappings, status, words)
                ([("tcp", 22, ssh, "")], 9, ["host port %d/tcp %s" % (ssh, IN_USE), IN_USE_KEY]),
                ([("TCP", 22, ssh, "0.0.0.0")], 9, ["host port %d/tcp %s" % (ssh, IN_USE)]),
                ([("udp", 53, dns, "")], 9, ["host port %d/udp %s" % (dns, IN_USE), IN_USE_KEY]),
                ([("udp", 53, dns, "127.0.0.1")], 9, ["host port %d/udp %s" % (dns, IN_USE)]),
                ([("tcp", 80, mine_tcp, "")], 9, ["host port %d/tcp %s" % (mine_tcp, IN_USE)]),
                ([("tcp", 80, free, ""), ("tcp", 81, mine_tcp, "127.0.0.1")], 9, ["%d/tcp" % mine_tcp]),
                ([("tcp", 80, 40001, "")], 7, [RANGE_KEY, "host port 40001/tcp", "1-40000"]),
                ([("udp", 80, 65535, "")], 7, [RANGE_KEY, "host port 65535/udp"]),
                ([("tcp", 80, free, ""), ("udp", 80, 50000, "")], 7, [RANGE_KEY, "50000/udp"]),
                ([("tcp", 80, -1, "")], 3, ["host_port must be 1..65535"]),
                ([("tcp", 80, -22, "")], 3, ["host_port must be 1..65535"]),
                ([("tcp", 80, -(1 << 31), "")], 3, ["host_port must be 1..65535"]),
                ([("tcp", 80, 65536, "")], 3, ["host_port must be 1..65535"]),
                ([("tcp", 80, (1 << 31) - 1, "")], 3, ["host_port must be 1..65535"]),
                ([("tcp", 0, free, "")], 3, ["container_port must be 1..65535"]),
                ([("tcp", 65536, free, "")], 3, ["container_port must be 1..65535"]),
                ([("sctp", 80, free, "")], 3, ["protocol must be tcp or udp"]),
                ([("", 80, free, "")], 3, ["protocol must be tcp or udp"]),
                ([("tcp", 80, free, "not-an-ip")], 3, ["host_ip is not an IP address"]),
                ([("tcp", 80, free, "1.2.3.4.5")], 3, ["host_ip is not an IP address"]),
                ([("tcp", 80, free, "127.0.0.1/8")], 3, ["host_ip is not an IP address"]),
                ([("tcp", 80, free, " 127.0.0.1")], 3, ["host_ip is not an IP address"]),
                ([("tcp", 80, free, "127.0.0.1\n")], 3, ["host_ip is not an IP address"]),
                ([("tcp", 80, free, "fe80::1%lo")], 3, ["host_ip is not an IP address"]),
                ([("tcp", 80, free, "1" * 5000)], 3, ["host_ip is not an IP address"]),
                ([("tcp", 80, free, "::1")], 3, ["IPv6 but netd has no IPv6 subnet"]),
                ([("tcp", 80, free, "")] * 1 + [("tcp", 81, free, "")], 3, ["another mapping already uses"]),
            ]
            ids = [tok(32) for _ in cases]
            before = snapshot(s)
            frames = [frame(i + 1, NETD_SETUP_POD, setup_request(pid, *c[0])).hex() for i, (pid, c) in
                      enumerate(zip(ids, cases))]
            # host_port 0 is "no host port": the pod gets a network and no
            # rule; torn down again at the end.
            zero_id = tok(32)
            frames.append(frame(100, NETD_SETUP_POD, setup_request(zero_id, ("tcp", 80, 0, ""))).hex())
            r = subprocess.run([sys.executable, "-c", HOSTILE_SCRIPT, s.sock("netd")], input=json.dumps(frames),
                               user=test_user.pw_uid, group=test_user.pw_gid, capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, r.stderr
            replies = [envelope_pb2.Envelope.FromString(bytes.fromhex(x)) for x in json.loads(r.stdout)]
            assert len(replies) == len(cases) + 1
            for (mappings, st, words), env in zip(cases, replies):
                assert env.status == st, (mappings, env.status, env.message)
                for w in words:
                    assert w in env.message, (mappings, w, env.message)
                assert env.body == b"", mappings
            # Nothing was made for any of them.
            zero = replies[-1]
            assert zero.status == 0, zero.message
            after = snapshot(s)
            table = nft_table_text("inet", s.nft_table)
            for pid in ids:
                assert pid not in table
                assert not os.path.lexists(netns_path(s, pid))
            assert zero_id not in table  # no rule for host_port 0
            assert [x for x in after["netns"] if x != zero_id] == before["netns"]
            assert [x for x in after["records"] if not x.startswith(zero_id)] == before["records"]
            assert after["pod_rules"] == before["pod_rules"]
            log = s.log("netd")
            for i, (mappings, st, _) in enumerate(cases):
                assert 'req=hostile-%d msg="call failed" method=SetupPodNetwork' % (i + 1) in log, (i, mappings)
                policy_line = re.search(r'req=hostile-%d msg="host port refused by the node policy" pod=%s '
                                        r'port=\d+/(tcp|udp) host_ip=\S+ rule="\[policy\] host_port_\w+"'
                                        % (i + 1, ids[i]), log)
                assert bool(policy_line) == (st in (7, 9)), (i, mappings)
            # The zero one comes down again; netd still serves.
            r = subprocess.run([sys.executable, "-c", HOSTILE_SCRIPT, s.sock("netd")],
                               input=json.dumps([frame(101, NETD_TEARDOWN_POD,
                                                       netd_pb2.TeardownPodNetworkRequest(pod_id=zero_id)).hex()]),
                               user=test_user.pw_uid, group=test_user.pw_gid, capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stderr
            env = envelope_pb2.Envelope.FromString(bytes.fromhex(json.loads(r.stdout)[0]))
            assert env.status == 0, env.message
            assert wait_for(lambda: snapshot(s)["bridge_ports"] == before["bridge_ports"], 5)
            assert not os.path.lexists(netns_path(s, zero_id))
            assert snapshot(s) == before
            assert s.procs["netd"].poll() is None
