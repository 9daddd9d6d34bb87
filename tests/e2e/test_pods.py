"""Pods end to end: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
PodSandboxStatus and ListPodSandbox through criod's socket, with netd
(network namespaces, veths, the bridge, addresses, nftables, IPAM) and
spawnd (the pause process, its namespaces, /dev/shm, the pod cgroup) doing
the privileged work for real.

Every suite here gets its own [netd] bridge ("crdt" + 6 hex), IPv4 subnet
(10.213.X.0/24 or /28, never overlapping a host route or address), nftables
table (inet "criod_t_" + 12 hex) and cgroup parent ("/criod-test-" + 12 hex),
and pod_suite() removes all of it afterwards, even on failure: pod
processes, mounts, the bridge and its ports, the nft table, cgroup dirs,
the temp dir (and, for the CNI suite, what the plugins added to the host's
nftables ruleset).

Traffic goes only to 127.0.0.1 or to pod addresses inside the test bridge's
subnet: pings are sent from inside pod network namespaces to addresses
checked to be in the suite's subnet, and the host talks to a pod address
only after `ip route get` shows it goes out through the test bridge.

The test_infra_* test checks these helpers (fake pods built by hand, the
servers in namespaces, the teardown) without criod.

Layout and behaviour asserted (containerd / CRI-O semantics), so the
implementation can match:
  <run_dir>/netns/<pod id>          the pod netns (bind mount, nsfs) while it runs
  <run_dir>/pods/<pod id>/ns/{ipc,uts,pid}   namespaces the pause process holds
  <run_dir>/pods/<pod id>/shm       tmpfs (size = [pods] shm_size, 64 MiB) unless ipc = NODE
  <state_dir>/criod/pods/<pod id>/resolv.conf   written from dns_config
  <state_dir>/netd/ipam/            a file named by (or holding) each allocated IP
  /sys/fs/cgroup/<hierarchy><cgroup_parent>/criod-<pod id>   the pod cgroup (cgroupfs)
  inside the pod netns: eth0 with the pod IP, lo up, a default route via an
  address of the bridge (the gateway).
"""
import contextlib
import ipaddress
import json
import os
import random
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import grpc
import pytest

from conftest import Suite, api_pb2 as pb

PY = "/usr/bin/python3"
CGROUP_MOUNT = "/sys/fs/cgroup"
CNI_BIN = "/usr/lib/cni"
RPC_TIMEOUT = 60
HEX64 = re.compile(r"^[0-9a-f]{64}$")
_USED_SUBNETS = []  # chosen by this process, so two live suites never overlap


# ================================================================ small host helpers

def tok(n=6):
    return secrets.token_hex(n)


def sh(*cmd, check=True, timeout=30, **kw):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def busybox():
    path = shutil.which("busybox") or "/bin/busybox"
    assert os.path.exists(path), "busybox-static is needed (scripts/deps installs it)"
    return path


def wait_for(cond, timeout=5.0, interval=0.05):
    """Poll cond() until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def _unescape(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """[(mount point, fstype, super options)] of our mount namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            out.append((_unescape(parts[4]), parts[sep + 1], parts[sep + 3] if len(parts) > sep + 3 else ""))
    return out


def mounts_under(path):
    path = path.rstrip("/")
    return [m for m in mounts() if m[0] == path or m[0].startswith(path + "/")]


def mount_at(path):
    """The topmost mount at exactly path, or None."""
    found = [m for m in mounts() if m[0] == path]
    return found[-1] if found else None


def pid_alive(pid):
    """A process that exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


NS_KINDS = ("net", "uts", "ipc", "pid", "mnt", "cgroup", "user", "time")


def ns_holders(paths):
    """Pids with any namespace equal to one of the nsfs files in paths."""
    keys = set()
    for p in paths:
        try:
            st = os.stat(p)
            keys.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    pids = set()
    if not keys:
        return pids
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        for kind in NS_KINDS:
            try:
                st = os.stat("/proc/%s/ns/%s" % (d, kind))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in keys:
                pids.add(int(d))
                break
    return pids


def cgroup_roots():
    """Every cgroup hierarchy mounted under /sys/fs/cgroup (v1 controllers,
    the named systemd one, the unified one; or just /sys/fs/cgroup on pure v2)."""
    roots = set()
    for mp, fstype, _ in mounts():
        if fstype in ("cgroup", "cgroup2") and (mp == CGROUP_MOUNT or mp.startswith(CGROUP_MOUNT + "/")):
            roots.add(mp)
    return sorted(roots)


def cgroup_procs_under(path):
    pids = set()
    for d, _, files in os.walk(path):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids.update(int(x) for x in f.read().split())
            except OSError:
                pass
    return pids


def kill_pids(pids, timeout=5):
    pids = {p for p in pids if p != os.getpid()}
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not any(pid_alive(p) for p in pids), timeout)


def ip_routes_and_addrs():
    """Every network the host routes or has an address in (not default routes)."""
    nets = []
    for fam in ("-4", "-6"):
        for args in (["route", "show", "table", "all"], ["-o", "addr", "show"]):
            r = sh("ip", fam, *args, check=False)
            for line in r.stdout.splitlines():
                for t in line.split():
                    if "/" in t or re.match(r"^[0-9a-fA-F:.]+$", t):
                        try:
                            n = ipaddress.ip_network(t, strict=False)
                        except ValueError:
                            continue
                        if n.prefixlen > 0:
                            nets.append(n)
    return nets


def pick_subnet(prefix=24):
    taken = ip_routes_and_addrs() + _USED_SUBNETS
    for _ in range(500):
        third = random.randrange(1, 255)
        fourth = random.randrange(0, 256, 1 << (32 - prefix)) if prefix > 24 else 0
        n = ipaddress.ip_network("10.213.%d.%d/%d" % (third, fourth, prefix))
        if not any(n.overlaps(t) for t in taken if t.version == 4):
            _USED_SUBNETS.append(n)
            return n
    raise AssertionError("no free 10.213.x.0/%d subnet" % prefix)


def pick_subnet6():
    taken = ip_routes_and_addrs() + _USED_SUBNETS
    for _ in range(100):
        n = ipaddress.ip_network("fd%02x:%04x:%04x:%04x::/64" % (
            random.randrange(256), random.randrange(1 << 16), random.randrange(1 << 16), random.randrange(1 << 16)))
        if not any(n.overlaps(t) for t in taken if t.version == 6):
            _USED_SUBNETS.append(n)
            return n
    raise AssertionError("no free IPv6 subnet")


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------- nftables

def nft_json():
    r = sh("nft", "-j", "list", "ruleset", check=False)
    if r.returncode != 0 or not r.stdout.strip():
        return []
    return json.loads(r.stdout).get("nftables", [])


def nft_tables():
    return {(o["table"]["family"], o["table"]["name"]) for o in nft_json() if "table" in o}


def nft_table_text(family, name):
    r = sh("nft", "-a", "list", "table", family, name, check=False)
    return r.stdout if r.returncode == 0 else ""


def nft_normalized(family, name):
    """The table without handles and counters, for before/after comparison."""
    t = nft_table_text(family, name)
    t = re.sub(r"\s*# handle \d+", "", t)
    t = re.sub(r"counter packets \d+ bytes \d+", "counter", t)
    return t


# iptables-nft (used by CNI plugins) creates these tables on demand.
IPTABLES_TABLES = {(fam, name) for fam in ("ip", "ip6") for name in ("nat", "filter", "mangle", "raw", "security")}
BASE_CHAINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


def nft_snapshot():
    """Tables and chains of the whole ruleset, before a CNI suite."""
    objs = nft_json()
    return ({(o["table"]["family"], o["table"]["name"]) for o in objs if "table" in o},
            {(o["chain"]["family"], o["chain"]["table"], o["chain"]["name"]) for o in objs if "chain" in o})


def _jump_targets(rule):
    out = set()
    for e in rule.get("expr", []):
        if isinstance(e, dict):
            for verb in ("jump", "goto"):
                if verb in e and isinstance(e[verb], dict):
                    out.add(e[verb].get("target"))
    return out


def restore_cni_ruleset(before, marker):
    """Undo what CNI plugins (portmap through iptables-nft) added for this
    suite's network (named marker; its per-pod rules carry it in their
    comments), without touching what other users of the host's iptables
    tables have there: delete the CNI-* chains that are new since `before`
    and hold a rule naming marker, every rule naming marker or jumping to
    such a chain, and iptables tables that did not exist before and now hold
    nothing but the generic CNI-HOSTPORT-* plumbing."""
    before_tables, before_chains = before
    objs = nft_json()
    rules = [o["rule"] for o in objs if "rule" in o]
    ours = {(r["family"], r["table"], r["chain"]) for r in rules
            if r["chain"].startswith("CNI-") and marker in json.dumps(r)
            and (r["family"], r["table"], r["chain"]) not in before_chains}
    for r in rules:
        k = (r["family"], r["table"], r["chain"])
        if k in ours:
            continue
        if marker in json.dumps(r) or any((r["family"], r["table"], t) in ours for t in _jump_targets(r)):
            sh("nft", "delete", "rule", r["family"], r["table"], r["chain"], "handle", str(r["handle"]), check=False)
    for fam, table, chain in ours:
        sh("nft", "flush", "chain", fam, table, chain, check=False)
    for fam, table, chain in ours:
        sh("nft", "delete", "chain", fam, table, chain, check=False)
    objs = nft_json()
    for fam, name in {(o["table"]["family"], o["table"]["name"]) for o in objs if "table" in o} - before_tables:
        if (fam, name) not in IPTABLES_TABLES:
            continue
        chains = [o["chain"]["name"] for o in objs if "chain" in o
                  and (o["chain"]["family"], o["chain"]["table"]) == (fam, name)]
        rules = [o["rule"] for o in objs if "rule" in o and (o["rule"]["family"], o["rule"]["table"]) == (fam, name)]
        if all(c in BASE_CHAINS or c.startswith("CNI-HOSTPORT-") for c in chains) and \
                not any("comment" in r or "name:" in json.dumps(r) for r in rules):
            sh("nft", "delete", "table", fam, name, check=False)


# ---------------------------------------------------------------- links

def link_exists(name):
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


def bridge_ports(bridge):
    """Names of the links enslaved to bridge (empty if there is no bridge)."""
    r = sh("ip", "-o", "link", "show", "master", bridge, check=False)
    if r.returncode != 0:
        return set()
    return {m.group(1) for m in re.finditer(r"^\d+:\s+([^:@\s]+)", r.stdout, re.M)}


def bridge_addrs(bridge):
    r = sh("ip", "-o", "addr", "show", "dev", bridge, check=False)
    return {a.split("/")[0] for a in re.findall(r"inet6? (\S+)", r.stdout)}


# ================================================================ the suite

@pytest.fixture(scope="module", autouse=True)
def restore_forwarding_sysctls():
    """netd or the CNI bridge plugin may turn on forwarding; put it back."""
    keys = ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding",
            "/proc/sys/net/ipv4/conf/all/route_localnet"]
    saved = {}
    for k in keys:
        try:
            with open(k) as f:
                saved[k] = f.read().strip()
        except OSError:
            pass
    yield
    for k, v in saved.items():
        try:
            with open(k) as f:
                if f.read().strip() == v:
                    continue
            with open(k, "w") as f:
                f.write(v)
        except OSError:
            pass


def _net_teardown(s):
    """Remove everything a pod suite may have left on the host. Safe to
    call with the daemons never started or already gone."""
    # Our own helper processes (servers in pod namespaces).
    for p in list(s.helpers):
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (p.stdout, p.stderr):
            if f:
                f.close()
    # Processes in the pods' namespaces or cgroups (pause processes).
    ns_files = [mp for mp, fstype, _ in mounts_under(s.base) if fstype == "nsfs"]
    pids = ns_holders(ns_files)
    for root in cgroup_roots():
        top = root + s.cgroup_parent
        if os.path.isdir(top):
            pids |= cgroup_procs_under(top)
    kill_pids(pids)
    # Mounts below the suite's directory, deepest first.
    for _ in range(5):
        ms = sorted({m[0] for m in mounts_under(s.base)}, key=len, reverse=True)
        if not ms:
            break
        for mp in ms:
            if sh("umount", mp, check=False).returncode != 0:
                sh("umount", "-l", mp, check=False)
    # The bridge and whatever is still attached to it.
    for port in bridge_ports(s.bridge):
        sh("ip", "link", "del", "dev", port, check=False)
    if link_exists(s.bridge):
        sh("ip", "link", "del", "dev", s.bridge, check=False)
    # netd's nftables table.
    if ("inet", s.nft_table) in nft_tables():
        sh("nft", "delete", "table", "inet", s.nft_table, check=False)
    if s.cni_ruleset_before is not None:
        restore_cni_ruleset(s.cni_ruleset_before, s.cni_net_name)
    # The cgroup parent, in every hierarchy, children first.
    for root in cgroup_roots():
        top = root + s.cgroup_parent
        if not os.path.isdir(top):
            continue
        dirs = [d for d, _, _ in os.walk(top)]
        for d in sorted(dirs, key=len, reverse=True):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    kill_pids(cgroup_procs_under(d), timeout=1)
                    time.sleep(0.05)


@contextlib.contextmanager
def pod_suite(prefix=24, dual_stack=False, cni=False, extra="", cni_bin_dirs=CNI_BIN):
    """A private suite (not started) whose netd has its own bridge, subnet,
    nft table, and whose pods go under a cgroup parent of their own (CNI:
    plugins from cni_bin_dirs, first match wins).
    Attributes added to the Suite: bridge, subnet, subnet6 (or None),
    nft_table, cgroup_parent, backend, cni_data_dir (CNI suite), helpers."""
    s = Suite()
    s.bridge = "crdt" + tok(3)
    s.nft_table = "criod_t_" + tok(6)
    s.cgroup_parent = "/criod-test-" + tok(6)
    s.backend = "cni" if cni else "netlink"
    s.helpers = []
    s.cni_ruleset_before = None
    s.cni_net_name = "criod-e2e-" + tok(4)
    s.cni_data_dir = None
    try:
        if cni:
            s.cni_ruleset_before = nft_snapshot()
            taken = ip_routes_and_addrs() + _USED_SUBNETS
            s.subnet = next(n for n in (ipaddress.ip_network("10.214.%d.0/24" % random.randrange(1, 255))
                                        for _ in range(500)) if not any(n.overlaps(t) for t in taken))
            _USED_SUBNETS.append(s.subnet)
        else:
            s.subnet = pick_subnet(prefix)
        s.subnet6 = pick_subnet6() if dual_stack else None
        conf = ["[netd]", "backend = " + s.backend, "bridge = " + s.bridge, "subnet = %s" % s.subnet,
                "nft_table = " + s.nft_table]
        if s.subnet6:
            conf.append("subnet6 = %s" % s.subnet6)
        if cni:
            conf_dir = os.path.join(s.base, "cni", "net.d")
            os.makedirs(conf_dir)
            s.cni_data_dir = os.path.join(s.base, "cni", "ipam")
            with open(os.path.join(conf_dir, "10-criod-e2e.conflist"), "w") as f:
                json.dump({"cniVersion": "1.0.0", "name": s.cni_net_name, "plugins": [
                    {"type": "bridge", "bridge": s.bridge, "isGateway": True, "ipMasq": False,
                     "ipam": {"type": "host-local", "dataDir": s.cni_data_dir,
                              "ranges": [[{"subnet": str(s.subnet)}]], "routes": [{"dst": "0.0.0.0/0"}]}},
                    {"type": "portmap", "capabilities": {"portMappings": True}}]}, f, indent=1)
            conf += ["cni_conf_dir = " + conf_dir, "cni_bin_dirs = " + cni_bin_dirs]
        conf += ["[pods]", "cgroup_driver = cgroupfs", "default_cgroup_parent = " + s.cgroup_parent]
        with open(s.config, "a") as f:
            f.write("\n".join(conf) + "\n" + extra)
        yield s
        s.stop_all()
        s.check_logs()
        assert not s.failures, "\n".join(s.failures)
    finally:
        try:
            s.stop_all()
        finally:
            try:
                _net_teardown(s)
            finally:
                s.cleanup()


@pytest.fixture(scope="module")
def psuite(test_user):
    """The shared suite: netlink backend, a /24."""
    with pod_suite() as s:
        s.start_all()
        yield s


@pytest.fixture(scope="module")
def small_suite(test_user):
    """A /28 (13 usable addresses) with IPv6 as well."""
    with pod_suite(prefix=28, dual_stack=True) as s:
        s.start_all()
        yield s


# ================================================================ pod helpers

def netns_path(s, pod_id):
    return os.path.join(s.run_dir, "netns", pod_id)


def pod_run_dir(s, pod_id):
    return os.path.join(s.run_dir, "pods", pod_id)


def ns_file(s, pod_id, kind):
    return os.path.join(pod_run_dir(s, pod_id), "ns", kind)


def shm_path(s, pod_id):
    return os.path.join(pod_run_dir(s, pod_id), "shm")


def resolv_conf_path(s, pod_id):
    """Where criod writes the pod's resolv.conf (the one place to adapt)."""
    return os.path.join(s.state_dir, "criod", "pods", pod_id, "resolv.conf")


def ipam_dir(s):
    return s.cni_data_dir if s.backend == "cni" else os.path.join(s.state_dir, "netd", "ipam")


def pod_cgroup_rel(s, pod_id, parent=None):
    return (parent or s.cgroup_parent) + "/criod-" + pod_id


def pod_cgroup_dirs(s, pod_id, parent=None):
    return [r + pod_cgroup_rel(s, pod_id, parent) for r in cgroup_roots()
            if os.path.isdir(r + pod_cgroup_rel(s, pod_id, parent))]


def pause_pids(s, pod_id):
    """The pod's pause process: whoever holds the namespaces in
    <run_dir>/pods/<id>/ns/ (spawnd bind-mounts them from the pause)."""
    d = os.path.join(pod_run_dir(s, pod_id), "ns")
    files = [os.path.join(d, k) for k in ("ipc", "uts", "pid") if os.path.exists(os.path.join(d, k))]
    return ns_holders(files)


def ip_pattern(ip):
    return re.compile(r"(?<![0-9A-Fa-f.:])%s(?![0-9A-Fa-f])" % re.escape(ip))


def files_mentioning(root, needles, contents=True, limit=1 << 20):
    """Files and dirs under root whose name (or, for small regular files,
    content) matches one of the compiled patterns."""
    hits = []
    for d, dirs, files in os.walk(root, onerror=lambda e: None):
        for n in dirs + files:
            p = os.path.join(d, n)
            if any(x.search(n) for x in needles):
                hits.append(p)
                continue
            if contents and n in files and os.path.isfile(p) and not os.path.islink(p):
                try:
                    if os.path.getsize(p) <= limit:
                        with open(p, "r", errors="replace") as f:
                            text = f.read()
                        if any(x.search(text) for x in needles):
                            hits.append(p + " (content)")
                except OSError:
                    pass
    return hits


def nsenter_net(s, pod_id, *cmd, timeout=20, check=False):
    return sh("nsenter", "--net=" + netns_path(s, pod_id), *cmd, timeout=timeout, check=check)


def in_pod_subnet(s, ip):
    a = ipaddress.ip_address(ip)
    return any(n is not None and n.version == a.version and a in n for n in (s.subnet, s.subnet6))


def ping_from(s, pod_id, ip, tries=3, wait=2):
    """Ping ip from inside the pod's netns (only ever an address of the
    suite's subnets). True if it answered."""
    assert in_pod_subnet(s, ip), "refusing to ping %s: not in the suite's pod subnet" % ip
    for i in range(tries):
        r = nsenter_net(s, pod_id, busybox(), "ping", "-c1", "-W%d" % wait, ip)
        if r.returncode == 0:
            return True
        if i + 1 < tries:
            time.sleep(0.3)
    return False


def assert_routed_via_bridge(s, ip):
    """Before the host sends anything to a pod address: it must leave
    through the test bridge, never the host's uplink."""
    assert in_pod_subnet(s, ip), ip
    r = sh("ip", "-o", "route", "get", ip, check=False)
    assert r.returncode == 0 and (" dev %s " % s.bridge) in r.stdout + " ", \
        "%s is not routed through the test bridge %s: %s" % (ip, s.bridge, r.stdout + r.stderr)


POD_SERVER = r"""
import socket, sys, threading
tok, tcp_port, udp_port = sys.argv[1].encode(), int(sys.argv[2]), int(sys.argv[3])
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", tcp_port))
t.listen(64)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", udp_port))
def udp():
    while True:
        data, addr = u.recvfrom(4096)
        u.sendto(b"udp:" + tok + b":" + data, addr)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, addr = t.accept()
    try:
        c.sendall(b"tcp:" + tok + b"\n")
    finally:
        c.close()
"""


def start_pod_server(s, pod_id, tcp_port=8080, udp_port=8081):
    """Start a TCP and UDP server inside the pod's netns (tracked in
    s.helpers, which the suite teardown kills); returns (Popen, token).
    TCP answers b"tcp:<token>\\n" and closes; UDP echoes b"udp:<token>:<data>"."""
    t = tok()
    p = subprocess.Popen(["nsenter", "--net=" + netns_path(s, pod_id), PY, "-c", POD_SERVER, t,
                          str(tcp_port), str(udp_port)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    s.helpers.append(p)
    ready, _, _ = select.select([p.stdout], [], [], 10)
    line = p.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        stop_pod_server(s, p)
        raise AssertionError("pod server did not start: %r %r" % (line, p.stderr.read()))
    return p, t


def stop_pod_server(s, p):
    if p.poll() is None:
        p.kill()
    p.wait(timeout=10)
    p.stdout.close()
    p.stderr.close()
    if p in s.helpers:
        s.helpers.remove(p)


@contextlib.contextmanager
def pod_server(s, pod_id, tcp_port=8080, udp_port=8081):
    """start_pod_server() for the length of a with block; yields the token.
    Stop it before stopping the pod: a process inside the netns keeps it
    (and its veth) alive, as a container would."""
    p, t = start_pod_server(s, pod_id, tcp_port, udp_port)
    try:
        yield t
    finally:
        stop_pod_server(s, p)


def tcp_get(host, port, timeout=3):
    """Connect and read until close; None if it did not connect."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as c:
            data = b""
            while True:
                chunk = c.recv(4096)
                if not chunk:
                    return data
                data += chunk
    except OSError:
        return None


def udp_ask(host, port, msg, timeout=1.0, tries=3):
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(timeout)
            try:
                u.sendto(msg, (host, port))
                return u.recvfrom(4096)[0]
            except OSError:
                pass
    return None


def eventually_equal(fn, want, timeout=3):
    got = wait_for(lambda: fn() == want, timeout)
    return fn() if not got else want


def host_listener_reached(port, kind=socket.SOCK_STREAM):
    """Listen on 127.0.0.1:port ourselves and check that a connection (or a
    datagram) to it arrives here, i.e. no hostPort rule diverts it any more."""
    srv = socket.socket(socket.AF_INET, kind)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    try:
        if kind == socket.SOCK_STREAM:
            srv.listen(4)
            srv.settimeout(3)
            c = socket.socket()
            c.settimeout(3)
            try:
                c.connect(("127.0.0.1", port))
                a, _ = srv.accept()
                a.close()
                return True
            except OSError:
                return False
            finally:
                c.close()
        srv.settimeout(2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"here?", ("127.0.0.1", port))
            try:
                return srv.recvfrom(64)[0] == b"here?"
            except OSError:
                return False
    finally:
        srv.close()


# ---------------------------------------------------------------- CRI calls

def pod_config(s, name=None, namespace="e2e-pods", uid=None, attempt=0, hostname=None, labels=None,
               annotations=None, ports=(), dns=None, network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD,
               cgroup_parent=None):
    name = name or "pod-" + tok()
    cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid or "uid-" + tok(8), namespace=namespace,
                                       attempt=attempt),
        hostname=hostname if hostname is not None else name,
        log_directory=os.path.join(s.base, "podlogs", name),
        labels=labels or {}, annotations=annotations or {})
    os.makedirs(cfg.log_directory, exist_ok=True)
    if dns:
        cfg.dns_config.CopyFrom(pb.DNSConfig(**dns))
    for proto, cport, hport in ports:
        cfg.port_mappings.add(protocol=proto, container_port=cport, host_port=hport)
    cfg.linux.cgroup_parent = cgroup_parent if cgroup_parent is not None else s.cgroup_parent
    cfg.linux.security_context.namespace_options.CopyFrom(pb.NamespaceOption(network=network, pid=pid, ipc=ipc))
    return cfg


def run(cri, cfg, handler="", timeout=RPC_TIMEOUT):
    return cri.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                       timeout=timeout).pod_sandbox_id


def status(cri, pod_id, verbose=False):
    return cri.runtime("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose))


def stop(cri, pod_id):
    return cri.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=RPC_TIMEOUT)


def remove(cri, pod_id):
    return cri.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                       timeout=RPC_TIMEOUT)


def list_pods(cri, id=None, state=None, labels=None):
    f = pb.PodSandboxFilter()
    if id is not None:
        f.id = id
    if state is not None:
        f.state.CopyFrom(pb.PodSandboxStateValue(state=state))
    for k, v in (labels or {}).items():
        f.label_selector[k] = v
    return list(cri.runtime("ListPodSandbox", pb.ListPodSandboxRequest(filter=f)).items)


def rpc_error(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value


def all_ips(st):
    return [st.status.network.ip] + [x.ip for x in st.status.network.additional_ips]


class Pod:
    """A pod this test made: its id, IPs, the host-side bridge ports that
    appeared with it and its pause process."""

    def __init__(self, s, cri, cfg):
        self.s, self.cri, self.cfg = s, cri, cfg
        ports_before = bridge_ports(s.bridge)
        self.t0 = time.time_ns()
        self.id = run(cri, cfg)
        self.t1 = time.time_ns()
        self.ports = bridge_ports(s.bridge) - ports_before
        st = status(cri, self.id)
        self.status = st.status
        self.ip = st.status.network.ip
        self.ips = [x for x in all_ips(st) if x]
        self.pause = pause_pids(s, self.id)

    @property
    def name(self):
        return self.cfg.metadata.name


class Pods:
    """Starts pods and removes whatever is left of them at the end of a test."""

    def __init__(self, s, cri):
        self.s, self.cri, self.made = s, cri, []

    def run(self, **kw):
        cfg = pod_config(self.s, **kw)
        p = Pod(self.s, self.cri, cfg)
        self.made.append(p.id)
        return p

    def cleanup(self):
        for pod_id in self.made:
            try:
                remove(self.cri, pod_id)
            except grpc.RpcError:
                pass


@contextlib.contextmanager
def pods_of(s):
    p = Pods(s, s.client())
    try:
        yield p
    finally:
        p.cleanup()
        p.cri.close()


@pytest.fixture
def pods(psuite):
    with pods_of(psuite) as p:
        yield p


@pytest.fixture
def small_pods(small_suite):
    with pods_of(small_suite) as p:
        yield p


# ---------------------------------------------------------------- what a pod leaves behind

def assert_network_up(s, pod):
    assert pod.ip and in_pod_subnet(s, pod.ip), pod.ip
    assert mount_at(netns_path(s, pod.id)) and mount_at(netns_path(s, pod.id))[1] == "nsfs"
    r = nsenter_net(s, pod.id, "ip", "-o", "addr", "show", check=True)
    assert re.search(r"^\d+: eth0\s+inet %s/" % re.escape(pod.ip), r.stdout, re.M), r.stdout
    assert re.search(r"^\d+: lo\s+inet 127\.0\.0\.1/", r.stdout, re.M), r.stdout
    assert "UP" in nsenter_net(s, pod.id, "ip", "-o", "link", "show", "lo", check=True).stdout


def gateway_of(s, pod_id):
    r = nsenter_net(s, pod_id, "ip", "-4", "route", "show", "default", check=True)
    m = re.search(r"default via (\S+)", r.stdout)
    assert m, "no default route in the pod: %r" % r.stdout
    return m.group(1)


def network_torn_down(s, pod):
    """netns gone, or at least no eth0 in it; the pod's host-side ports gone."""
    path = netns_path(s, pod.id)
    if mount_at(path):
        r = nsenter_net(s, pod.id, "ip", "-o", "link", "show")
        if r.returncode == 0 and re.search(r"^\d+: eth0[:@]", r.stdout, re.M):
            return False
    return not (pod.ports & bridge_ports(s.bridge))


def leftovers(s, cri, pod_id, ips=(), ports=(), pause=(), cgroup_parent=None):
    """Everything still there of a removed pod (empty list when clean)."""
    left = []
    try:
        status(cri, pod_id)
        left.append("PodSandboxStatus still answers")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            left.append("PodSandboxStatus: %s %s" % (e.code(), e.details()))
    try:
        if any(p.id == pod_id for p in list_pods(cri)):
            left.append("still listed")
    except grpc.RpcError as e:
        left.append("ListPodSandbox: %s %s" % (e.code(), e.details()))
    if os.path.lexists(netns_path(s, pod_id)):
        left.append("netns file " + netns_path(s, pod_id))
    left += ["mount " + m[0] for m in mounts_under(pod_run_dir(s, pod_id))]
    left += ["mount " + m[0] for m in mounts_under(netns_path(s, pod_id))]
    if os.path.lexists(pod_run_dir(s, pod_id)):
        left.append("dir " + pod_run_dir(s, pod_id))
    idpat = [re.compile(re.escape(pod_id)), re.compile(re.escape(pod_id[:12]))]
    left += ["run_dir: " + p for p in files_mentioning(s.run_dir, idpat[:1], contents=False)]
    for d in ("criod", "netd"):
        left += ["state: " + p for p in files_mentioning(os.path.join(s.state_dir, d), idpat[:1])]
    ipats = [ip_pattern(ip) for ip in ips if ip]
    left += ["ipam: " + ip for ip in ips if ip and ipam_holds(s, ip)]
    table = nft_table_text("inet", s.nft_table)
    for x in idpat[1:] + ipats:
        if x.search(table):
            left.append("nft table inet %s mentions %s" % (s.nft_table, x.pattern))
    # A removed namespace takes its veth pair along, asynchronously.
    wait_for(lambda: not (set(ports) & bridge_ports(s.bridge)), 2)
    still = set(ports) & bridge_ports(s.bridge)
    if still:
        left.append("bridge ports %s" % sorted(still))
    left += ["pause pid %d alive" % p for p in pause if pid_alive(p)]
    left += ["cgroup " + d for d in pod_cgroup_dirs(s, pod_id, cgroup_parent)]
    return left


def assert_gone(s, cri, pod, cgroup_parent=None):
    """After RemovePodSandbox: nothing of the pod is left (a short grace
    for asynchronous cleanup)."""
    def check():
        return leftovers(s, cri, pod.id, pod.ips, pod.ports, pod.pause, cgroup_parent)
    wait_for(lambda: not check(), 2)
    left = check()
    assert left == [], "pod %s left behind: %s" % (pod.id, left)


def ipam_holds(s, ip):
    """Does the IPAM state still allocate ip? netlink backend: a file under
    <state_dir>/netd/ipam named by or holding it; CNI host-local: the file
    <dataDir>/<network>/<ip> (its last_reserved_ip file may keep naming it)."""
    if s.backend == "cni":
        return os.path.exists(os.path.join(s.cni_data_dir, s.cni_net_name, ip))
    return bool(files_mentioning(ipam_dir(s), [ip_pattern(ip)]))


# ================================================================ infrastructure self-test (no criod)

class FakePod:
    """A pod built by hand the way the spec says netd and spawnd build one,
    to check the helpers and the teardown without criod."""

    def __init__(self, s, ip, gw, prefix):
        self.id = tok(32)
        self.ip, self.ips = ip, [ip]
        ns = netns_path(s, self.id)
        os.makedirs(os.path.dirname(ns), exist_ok=True)
        open(ns, "w").close()
        sh("unshare", "--net=" + ns, "true")
        host_if = "vf" + tok(4)
        sh("nsenter", "--net=" + ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", host_if,
           "netns", str(os.getpid()))
        sh("ip", "link", "set", host_if, "master", s.bridge, "up")
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "%s/%d" % (ip, prefix), "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"], ["ip", "route", "add", "default", "via", gw]):
            sh("nsenter", "--net=" + ns, *cmd)
        self.ports = {host_if}
        # The "pause": new UTS and IPC namespaces, in the pod netns.
        p = subprocess.Popen(["nsenter", "--net=" + ns, "unshare", "--uts", "--ipc", "sleep", "600"],
                             stdin=subprocess.DEVNULL)
        # Not in s.helpers: the teardown must find it through its namespaces.
        s.fake_procs = getattr(s, "fake_procs", []) + [p]
        nsdir = os.path.join(pod_run_dir(s, self.id), "ns")
        os.makedirs(nsdir)
        me_uts = os.stat("/proc/self/ns/uts").st_ino
        wait_for(lambda: os.stat("/proc/%d/ns/uts" % p.pid).st_ino != me_uts, 5, 0.01)
        for kind in ("uts", "ipc"):
            open(os.path.join(nsdir, kind), "w").close()
            sh("mount", "--bind", "/proc/%d/ns/%s" % (p.pid, kind), os.path.join(nsdir, kind))
        sh("nsenter", "--uts=" + os.path.join(nsdir, "uts"), "sh", "-c",
           "echo fake-%s > /proc/sys/kernel/hostname" % self.id[:8])
        os.makedirs(shm_path(s, self.id))
        sh("mount", "-t", "tmpfs", "-o", "size=64m,nosuid,nodev,noexec", "shm", shm_path(s, self.id))
        self.pause = {p.pid}
        for root in cgroup_roots():
            if os.path.basename(root) in ("pids", "unified") or root == CGROUP_MOUNT:
                d = root + pod_cgroup_rel(s, self.id)
                os.makedirs(d)
                with open(os.path.join(d, "cgroup.procs"), "w") as f:
                    f.write(str(p.pid))
        d = os.path.join(s.cni_data_dir, s.cni_net_name) if s.backend == "cni" else ipam_dir(s)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, ip), "w") as f:
            f.write(self.id)


def test_infra_fake_pods_servers_and_teardown(test_user):
    hp_tcp, hp_udp = free_port(), free_port(socket.SOCK_DGRAM)
    # For the CNI ruleset restore: a table that exists before the suite,
    # with someone else's CNI chain, and two iptables-like tables made
    # during it (one with only our plumbing, one with someone else's chain).
    pre_table, new_table, new_foreign = "criod_pre_" + tok(4), "criod_new_" + tok(4), "criod_nf_" + tok(4)
    IPTABLES_TABLES.update({("ip", new_table), ("ip", new_foreign)})
    sh("nft", "-f", "-", input="""table ip %s {
  chain post {
    type nat hook postrouting priority 100; policy accept;
    jump CNI-PRE
  }
  chain CNI-PRE {
    counter comment "dnat name: other-net"
  }
}
""" % pre_table)
    try:
        with pod_suite(cni=True) as s:  # cni: also check the ruleset restore (no daemons run)
            saved = {"bridge": s.bridge, "table": s.nft_table, "base": s.base, "cg": s.cgroup_parent}
            hosts = list(s.subnet.hosts())
            gw = str(hosts[0])
            sh("ip", "link", "add", s.bridge, "type", "bridge")
            sh("ip", "addr", "add", "%s/%d" % (gw, s.subnet.prefixlen), "dev", s.bridge)
            sh("ip", "link", "set", s.bridge, "up")
            a = FakePod(s, str(hosts[1]), gw, s.subnet.prefixlen)
            b = FakePod(s, str(hosts[2]), gw, s.subnet.prefixlen)
            # hostPort by hand, as netd would: DNAT from 127.0.0.1 and the host.
            with open("/proc/sys/net/ipv4/conf/%s/route_localnet" % s.bridge, "w") as f:
                f.write("1")
            rules = """table inet %(t)s {
  chain out {
    type nat hook output priority -100; policy accept;
    ip daddr 127.0.0.1 tcp dport %(ht)d dnat ip to %(ip)s:8080 comment "%(id)s"
    ip daddr 127.0.0.1 udp dport %(hu)d dnat ip to %(ip)s:8081 comment "%(id)s"
  }
  chain post {
    type nat hook postrouting priority 100; policy accept;
    ip saddr 127.0.0.1 ip daddr %(ip)s masquerade
  }
}
""" % {"t": s.nft_table, "ht": hp_tcp, "hu": hp_udp, "ip": a.ip, "id": a.id[:12]}
            sh("nft", "-f", "-", input=rules)
            # What portmap would add for our network, and someone else's.
            m = s.cni_net_name
            sh("nft", "-f", "-", input="""table ip %(pre)s {
  chain CNI-DN-ours { counter comment "dnat name: %(m)s id: x"; }
  chain CNI-DN-theirs { counter comment "dnat name: other-net id: y"; }
  chain post { jump CNI-DN-ours; jump CNI-DN-theirs; }
}
table ip %(new)s {
  chain POSTROUTING { type nat hook postrouting priority 100; policy accept; jump CNI-HOSTPORT-MASQ; }
  chain CNI-HOSTPORT-MASQ { meta mark & 0x2000 == 0x2000 masquerade; }
  chain CNI-HOSTPORT-DNAT { jump CNI-DN-x; }
  chain CNI-DN-x { counter comment "dnat name: %(m)s id: z"; }
}
table ip %(nf)s {
  chain CNI-DN-y { counter comment "dnat name: other-net id: w"; }
}
""" % {"pre": pre_table, "new": new_table, "nf": new_foreign, "m": m})

            # Connectivity helpers.
            assert ping_from(s, a.id, b.ip) and ping_from(s, b.id, a.ip)
            assert gateway_of(s, a.id) == gw and gw in bridge_addrs(s.bridge)
            assert ping_from(s, a.id, gw)
            with pytest.raises(AssertionError, match="refusing"):
                ping_from(s, a.id, "192.0.2.1")
            assert_routed_via_bridge(s, a.ip)
            with pytest.raises(AssertionError):
                assert_routed_via_bridge(s, "127.0.0.1")
            assert_network_up(s, a)
            assert bridge_ports(s.bridge) == a.ports | b.ports
            with pod_server(s, a.id) as t:
                assert tcp_get(a.ip, 8080) == b"tcp:%s\n" % t.encode()
                assert tcp_get("127.0.0.1", hp_tcp) == b"tcp:%s\n" % t.encode()
                assert udp_ask("127.0.0.1", hp_udp, b"x") == b"udp:%s:x" % t.encode()
                assert udp_ask(a.ip, 8081, b"y") == b"udp:%s:y" % t.encode()
                assert len(s.helpers) == 1
            assert s.helpers == []
            # Namespaces, pause, cgroup, shm, hostname.
            assert pause_pids(s, a.id) == a.pause
            uts = ns_file(s, a.id, "uts")
            assert sh("nsenter", "--uts=" + uts, "cat", "/proc/sys/kernel/hostname").stdout.strip() == \
                "fake-" + a.id[:8]
            assert os.stat(uts).st_ino != os.stat("/proc/self/ns/uts").st_ino
            assert mount_at(shm_path(s, a.id))[1] == "tmpfs" and "size=65536k" in mount_at(shm_path(s, a.id))[2]
            assert pod_cgroup_dirs(s, a.id)
            assert any(line.rstrip().endswith(":" + pod_cgroup_rel(s, a.id))
                       for line in open("/proc/%d/cgroup" % list(a.pause)[0]))
            assert ipam_holds(s, a.ip) and not ipam_holds(s, str(hosts[3]))
            # The leftover check sees everything (criod is not running:
            # PodSandboxStatus fails, which it reports too).
            fake_cri = s.client()
            try:
                left = " ".join(leftovers(s, fake_cri, a.id, a.ips, a.ports, a.pause))
            finally:
                fake_cri.close()
            for what in ("PodSandboxStatus", "netns file", "mount " + shm_path(s, a.id), "dir ", "ipam:",
                         "nft table", "bridge ports", "pause pid", "cgroup "):
                assert what in left, (what, left)
            # Take pod b down by hand: its address stops answering.
            kill_pids(b.pause)
            sh("umount", netns_path(s, b.id))
            assert wait_for(lambda: not (b.ports & bridge_ports(s.bridge)), 5)
            assert not ping_from(s, a.id, b.ip, tries=1, wait=1)
            assert network_torn_down(s, b) and not network_torn_down(s, a)
            # The hostPort rules gone: our own listener gets the connection.
            sh("nft", "delete", "table", "inet", s.nft_table)
            assert host_listener_reached(hp_tcp) and host_listener_reached(hp_udp, socket.SOCK_DGRAM)
            sh("nft", "-f", "-", input=rules)  # back, for the teardown to remove
            # Leave a server running: the teardown must kill it.
            start_pod_server(s, a.id)
            left_pids = set(a.pause) | {p.pid for p in s.helpers}
        # Everything is gone.
        assert not link_exists(saved["bridge"])
        assert ("inet", saved["table"]) not in nft_tables()
        assert not os.path.exists(saved["base"]) and not mounts_under(saved["base"])
        assert not any(pid_alive(p) for p in left_pids)
        for p in s.fake_procs:
            p.wait(timeout=5)
        assert not any(os.path.exists(r + saved["cg"]) for r in cgroup_roots())
        assert wait_for(lambda: not (a.ports | b.ports) & {l for l in re.findall(
            r"^\d+:\s+([^:@\s]+)", sh("ip", "-o", "link").stdout, re.M)}, 5)
        text = nft_table_text("ip", pre_table)
        assert "CNI-DN-ours" not in text and "jump CNI-PRE" in text and "chain CNI-PRE" in text, text
        assert "jump CNI-DN-theirs" in text and "chain CNI-DN-theirs" in text, text
        tables = nft_tables()
        assert ("ip", new_table) not in tables and ("ip", new_foreign) in tables
    finally:
        IPTABLES_TABLES.difference_update({("ip", new_table), ("ip", new_foreign)})
        for t in (pre_table, new_table, new_foreign):
            sh("nft", "delete", "table", "ip", t, check=False)


# ================================================================ RunPodSandbox, PodSandboxStatus, ListPodSandbox

def test_run_pod_and_status(psuite, pods):
    s = psuite
    labels = {"app": "web", "e2e": tok()}
    annotations = {"note": "x=y; z", "k8s.io/anything": "{\"json\": true}"}
    p = pods.run(labels=labels, annotations=annotations, attempt=2, pid=pb.CONTAINER)
    assert HEX64.match(p.id), p.id
    st = status(pods.cri, p.id)
    x = st.status
    assert x.id == p.id
    assert x.metadata == p.cfg.metadata
    assert x.state == pb.SANDBOX_READY
    assert p.t0 - 1e9 <= x.created_at <= p.t1 + 1e9, (p.t0, x.created_at, p.t1)
    assert x.network.ip and ipaddress.ip_address(x.network.ip) in s.subnet
    assert list(x.network.additional_ips) == []  # IPv4 only configured
    assert ipaddress.ip_address(x.network.ip) not in (s.subnet.network_address, s.subnet.broadcast_address)
    assert x.linux.namespaces.options == p.cfg.linux.security_context.namespace_options
    assert dict(x.labels) == labels and dict(x.annotations) == annotations
    assert x.runtime_handler == ""
    assert dict(st.info) == {}
    v = status(pods.cri, p.id, verbose=True)
    assert v.status == x
    for k, val in v.info.items():
        json.loads(val)  # verbose info values are JSON
    listed = list_pods(pods.cri, id=p.id)
    assert len(listed) == 1
    item = listed[0]
    assert (item.id, item.metadata, item.state, item.created_at, dict(item.labels), dict(item.annotations),
            item.runtime_handler) == (p.id, p.cfg.metadata, pb.SANDBOX_READY, x.created_at, labels, annotations, "")
    assert_network_up(s, p)
    assert len(p.ports) == 1, p.ports  # one host-side veth on the bridge


def test_stop_pod_namespace_held(psuite, pods):
    """netd leaves a stopped pod's veth pair to go with its namespace; when
    something outside the pod still holds that namespace, netd takes the
    veth off the bridge itself a little later, so the address it freed
    cannot answer from two places."""
    s = psuite
    a = pods.run()
    assert a.ports
    holder = subprocess.Popen(["nsenter", "--net=" + netns_path(s, a.id), "sleep", "60"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s.helpers.append(holder)
    try:
        assert wait_for(lambda: os.readlink("/proc/%d/ns/net" % holder.pid)
                        != os.readlink("/proc/self/ns/net"), 5), "the holder did not enter the namespace"
        stop(pods.cri, a.id)
        assert not os.path.lexists(netns_path(s, a.id))
        assert wait_for(lambda: not (a.ports & bridge_ports(s.bridge)), 10), \
            "the held namespace's veth stayed on the bridge"
        assert holder.poll() is None  # the namespace lives on, without its eth0
        r = sh("nsenter", "--net=/proc/%d/ns/net" % holder.pid, "ip", "-o", "link", "show")
        assert not re.search(r"^\d+: eth0[:@]", r.stdout, re.M), r.stdout
        assert not ipam_holds(s, a.ip)
    finally:
        holder.kill()
        holder.wait()
        s.helpers.remove(holder)
    remove(pods.cri, a.id)
    assert_gone(s, pods.cri, a)
    # netd killed before its look: its next start deletes the orphan (only
    # veths with its alias on its own bridge).
    b = pods.run()
    holder = subprocess.Popen(["nsenter", "--net=" + netns_path(s, b.id), "sleep", "60"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s.helpers.append(holder)
    try:
        assert wait_for(lambda: os.readlink("/proc/%d/ns/net" % holder.pid)
                        != os.readlink("/proc/self/ns/net"), 5), "the holder did not enter the namespace"
        stop(pods.cri, b.id)
        s.stop("netd", signal.SIGKILL)
        assert b.ports & bridge_ports(s.bridge), "the veth went before the check it was to test"
        s.start("netd")
        assert wait_for(lambda: not (b.ports & bridge_ports(s.bridge)), 10), "netd's start left the orphan veth"
        assert s.log_has("netd", "deleting a veth no pod network owns")
    finally:
        holder.kill()
        holder.wait()
        s.helpers.remove(holder)
    remove(pods.cri, b.id)
    assert_gone(s, pods.cri, b)


def test_run_pod_invalid_requests(psuite, pods):
    s = psuite
    ports_before = bridge_ports(s.bridge)
    netns_before = set(os.listdir(os.path.join(s.run_dir, "netns"))) \
        if os.path.isdir(os.path.join(s.run_dir, "netns")) else set()
    e = rpc_error(pods.cri.runtime, "RunPodSandbox", pb.RunPodSandboxRequest())
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "config" in e.details(), e
    cfg = pod_config(s)
    cfg.ClearField("metadata")
    e = rpc_error(run, pods.cri, cfg)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "metadata" in e.details(), e
    cfg = pod_config(s)
    cfg.metadata.name = ""
    e = rpc_error(run, pods.cri, cfg)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in e.details(), e
    # kubelet always sends name, namespace and uid; crictl cannot stop or
    # remove a pod without them.
    for field in ("namespace", "uid"):
        cfg = pod_config(s)
        setattr(cfg.metadata, field, "")
        e = rpc_error(run, pods.cri, cfg)
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        assert e.details() == "config.metadata.%s is required" % field, e.details()
    # SCTP hostPorts are refused.
    cfg = pod_config(s, ports=[(pb.SCTP, 80, free_port())])
    e = rpc_error(run, pods.cri, cfg)
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    # Nothing was made for any of them.
    assert bridge_ports(s.bridge) == ports_before
    netns_now = set(os.listdir(os.path.join(s.run_dir, "netns"))) \
        if os.path.isdir(os.path.join(s.run_dir, "netns")) else set()
    assert netns_now == netns_before
    assert pods.cri.runtime("Version").runtime_name == "criod"


def test_same_name_twice_is_refused_until_removed(psuite, pods):
    s = psuite
    p = pods.run()
    e = rpc_error(run, pods.cri, p.cfg)
    assert e.code() == grpc.StatusCode.ALREADY_EXISTS, e
    assert p.name in e.details(), e.details()
    # The failed attempt did not disturb the first pod.
    assert status(pods.cri, p.id).status.state == pb.SANDBOX_READY
    assert ping_from(s, p.id, gateway_of(s, p.id))
    # Another attempt of the same pod is a different sandbox.
    cfg = pb.PodSandboxConfig()
    cfg.CopyFrom(p.cfg)
    cfg.metadata.attempt += 1
    p2 = Pod(s, pods.cri, cfg)
    pods.made.append(p2.id)
    assert p2.id != p.id and p2.ip != p.ip
    # Once removed, the name is free again.
    remove(pods.cri, p.id)
    p3 = Pod(s, pods.cri, p.cfg)
    pods.made.append(p3.id)
    assert p3.id != p.id


def test_unknown_and_bad_ids(psuite, pods):
    c = pods.cri
    unknown = tok(32)
    e = rpc_error(status, c, unknown)
    assert e.code() == grpc.StatusCode.NOT_FOUND, e
    stop(c, unknown)
    remove(c, unknown)
    assert list_pods(c, id=unknown) == []
    for call in (status, stop, remove):
        e = rpc_error(call, c, "")
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (call.__name__, e)
    # An id is looked up, never used as a path: one within the field's
    # bounds (253 bytes, no control characters; criod/cri_validate.c) is
    # merely unknown - NOT_FOUND for the status, and nothing to do for Stop
    # and Remove, which the CRI makes idempotent - and one outside them is
    # INVALID_ARGUMENT naming the field, for all three.
    for bad in ("../../../../etc", "/etc/passwd", "a" * 65):
        e = rpc_error(status, c, bad)
        assert e.code() == grpc.StatusCode.NOT_FOUND and bad in e.details(), (bad, e)
        stop(c, bad)
        remove(c, bad)
    for bad in ("x" * 4096, tok(32).upper() + "\n"):
        for call in (status, stop, remove):
            e = rpc_error(call, c, bad)
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "pod_sandbox_id" in e.details(), \
                (call.__name__, bad, e)
    assert os.path.exists("/etc/passwd")
    assert c.runtime("Version").runtime_name == "criod"


def test_list_pod_sandbox_filters(psuite, pods):
    c = pods.cri
    run_label = tok()
    a = pods.run(labels={"run": run_label, "app": "a", "tier": "front"})
    b = pods.run(labels={"run": run_label, "app": "b", "tier": "front"})
    d = pods.run(labels={"run": run_label, "app": "a", "tier": "back"})
    stop(c, d.id)
    everything = {p.id for p in list_pods(c)}
    assert {a.id, b.id, d.id} <= everything
    mine = lambda items: sorted(p.id for p in items)  # noqa: E731
    assert mine(list_pods(c, labels={"run": run_label})) == sorted([a.id, b.id, d.id])
    # By id (exact).
    for p in (a, b, d):
        got = list_pods(c, id=p.id)
        assert [x.id for x in got] == [p.id]
    # By state.
    ready = {p.id for p in list_pods(c, state=pb.SANDBOX_READY)}
    notready = {p.id for p in list_pods(c, state=pb.SANDBOX_NOTREADY)}
    assert {a.id, b.id} <= ready and d.id not in ready
    assert d.id in notready and not ({a.id, b.id} & notready)
    # By labels: every label of the selector must match.
    assert mine(list_pods(c, labels={"run": run_label, "app": "a"})) == sorted([a.id, d.id])
    assert mine(list_pods(c, labels={"run": run_label, "app": "a", "tier": "front"})) == [a.id]
    assert mine(list_pods(c, labels={"run": run_label, "app": "c"})) == []
    assert mine(list_pods(c, labels={"run": run_label, "nolabel": ""})) == []
    # Combined (ANDed).
    assert mine(list_pods(c, state=pb.SANDBOX_READY, labels={"run": run_label, "app": "a"})) == [a.id]
    assert mine(list_pods(c, id=d.id, state=pb.SANDBOX_READY)) == []
    assert mine(list_pods(c, id=d.id, labels={"run": run_label, "app": "b"})) == []
    assert list_pods(c, id=tok(32)) == []


# ================================================================ the pod's infrastructure

def test_cgroup_parent_outside_the_policy_is_refused(psuite, pods):
    """A pod's cgroup must lie beneath [pods] default_cgroup_parent or one
    of [policy] cgroup_roots (spawnd's own configuration): a cgroup_parent
    naming any other cgroup (the root, another service's, a path out of the
    roots) is PERMISSION_DENIED naming the rule, and nothing is made."""
    s = psuite
    ports_before = bridge_ports(s.bridge)
    other = "/criod-other-" + tok(4)
    for parent in ("/", other, "/system.slice", s.cgroup_parent + "-sibling", "/kubepods-not"):
        cfg = pod_config(s, cgroup_parent=parent)
        e = rpc_error(run, pods.cri, cfg)
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (parent, e)
        assert "[policy] cgroup_roots" in e.details(), e.details()
        assert all(x.metadata.name != cfg.metadata.name for x in list_pods(pods.cri)), parent
    for root in cgroup_roots():
        assert not os.path.exists(root + other), root + other
    # netd made the network before spawnd refused; criod undid it (the
    # kernel destroys the veths with their namespaces, a moment later).
    # (Earlier tests' veths may go meanwhile: nothing new must be left.)
    assert wait_for(lambda: bridge_ports(s.bridge) <= ports_before, 10), (bridge_ports(s.bridge), ports_before)
    # Beneath the default parent it is fine (the other tests' pods are).
    p = pods.run(cgroup_parent=s.cgroup_parent + "/burstable")
    assert status(pods.cri, p.id).status.state == pb.SANDBOX_READY


def test_empty_hostname_is_the_nodes(psuite, pods):
    """An empty hostname gives the pod the node's host name, as containerd
    and CRI-O do, whatever metadata.name is (critest's names are not host
    names): in the pod's UTS namespace and in its hostname file."""
    s = psuite
    node = socket.gethostname()
    name = "pod_with_a_name-that-is-not-a-host-name_" + "x" * 40 + tok(4)
    p = pods.run(name=name, hostname="")
    r = sh("nsenter", "--uts=" + ns_file(s, p.id, "uts"), "cat", "/proc/sys/kernel/hostname")
    assert r.stdout.strip() == node
    with open(os.path.join(s.state_dir, "criod", "pods", p.id, "hostname")) as f:
        assert f.read().strip() == node
    assert status(pods.cri, p.id).status.metadata.name == name


def test_pause_hostname_shm_dns_namespaces_cgroup(psuite, pods):
    s = psuite
    hostname = "e2e-host-" + tok(4)
    dns = {"servers": ["10.96.0.10", "10.96.0.11"], "searches": ["e2e.svc.cluster.local", "svc.cluster.local"],
           "options": ["ndots:5", "timeout:1"]}
    nested = s.cgroup_parent + "/besteffort"
    p = pods.run(hostname=hostname, dns=dns, pid=pb.CONTAINER, ipc=pb.POD, cgroup_parent=nested)
    # The pause process holds fresh UTS and IPC namespaces, bind-mounted.
    for kind in ("uts", "ipc"):
        f = ns_file(s, p.id, kind)
        m = mount_at(f)
        assert m and m[1] == "nsfs", (kind, m)
        assert os.stat(f).st_ino != os.stat("/proc/self/ns/" + kind).st_ino, kind
    assert not os.path.lexists(ns_file(s, p.id, "pid"))  # pid = CONTAINER: no pod pid namespace
    assert len(p.pause) == 1, p.pause
    pause = list(p.pause)[0]
    assert pid_alive(pause)
    # ... and sits in the pod's network namespace and cgroup.
    assert os.stat("/proc/%d/ns/net" % pause).st_ino == os.stat(netns_path(s, p.id)).st_ino
    rel = pod_cgroup_rel(s, p.id, nested)
    with open("/proc/%d/cgroup" % pause) as f:
        lines = f.read().splitlines()
    assert any(line.split(":", 2)[2] == rel for line in lines), (rel, lines)
    assert pod_cgroup_dirs(s, p.id, nested)
    # Hostname.
    r = sh("nsenter", "--uts=" + ns_file(s, p.id, "uts"), "cat", "/proc/sys/kernel/hostname")
    assert r.stdout.strip() == hostname
    # /dev/shm: a 64 MiB tmpfs.
    m = mount_at(shm_path(s, p.id))
    assert m and m[1] == "tmpfs", m
    assert "size=65536k" in m[2], m
    # resolv.conf from dns_config.
    path = resolv_conf_path(s, p.id)
    assert os.path.isfile(path), "no resolv.conf at %s" % path
    with open(path) as f:
        lines = [line.split() for line in f.read().splitlines() if line.strip() and not line.startswith("#")]
    assert [x[1] for x in lines if x[0] == "nameserver"] == dns["servers"], lines
    assert [x[1:] for x in lines if x[0] == "search"] == [dns["searches"]], lines
    assert sorted(o for x in lines if x[0] == "options" for o in x[1:]) == sorted(dns["options"]), lines
    # Stop and remove: all of it goes (cgroup included).
    remove(pods.cri, p.id)
    assert_gone(s, pods.cri, p, cgroup_parent=nested)


def test_pid_namespace_pod_and_host_ipc(psuite, pods):
    s = psuite
    p = pods.run(pid=pb.POD, ipc=pb.NODE)
    pidns = ns_file(s, p.id, "pid")
    assert mount_at(pidns) and mount_at(pidns)[1] == "nsfs"
    assert os.stat(pidns).st_ino != os.stat("/proc/self/ns/pid").st_ino
    # The pause is pid 1 of it.
    pause = list(p.pause)
    assert len(pause) == 1
    with open("/proc/%d/status" % pause[0]) as f:
        nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
    assert nspid[-1] == "1", nspid
    # Host IPC: no IPC namespace file, no /dev/shm mount.
    assert not os.path.lexists(ns_file(s, p.id, "ipc"))
    assert mount_at(shm_path(s, p.id)) is None
    assert os.stat("/proc/%d/ns/ipc" % pause[0]).st_ino == os.stat("/proc/self/ns/ipc").st_ino
    st = status(pods.cri, p.id).status
    assert st.linux.namespaces.options.pid == pb.POD and st.linux.namespaces.options.ipc == pb.NODE
    remove(pods.cri, p.id)
    assert_gone(s, pods.cri, p)


def test_host_network_pod(psuite, pods):
    s = psuite
    ports_before = bridge_ports(s.bridge)
    p = pods.run(network=pb.NODE)
    assert not os.path.lexists(netns_path(s, p.id))
    st = status(pods.cri, p.id).status
    assert st.state == pb.SANDBOX_READY
    assert st.network.ip == "" and list(st.network.additional_ips) == []
    assert st.linux.namespaces.options.network == pb.NODE
    assert bridge_ports(s.bridge) == ports_before
    # Host network implies the host UTS namespace.
    assert not os.path.lexists(ns_file(s, p.id, "uts"))
    assert len(p.pause) == 1, p.pause  # the pause holds the pod's IPC namespace
    for pid in p.pause:
        assert os.stat("/proc/%d/ns/net" % pid).st_ino == os.stat("/proc/self/ns/net").st_ino
    stop(pods.cri, p.id)
    assert status(pods.cri, p.id).status.state == pb.SANDBOX_NOTREADY
    remove(pods.cri, p.id)
    assert_gone(s, pods.cri, p)


# ================================================================ networking

def test_two_pods_reach_each_other_and_the_gateway(psuite, pods):
    s = psuite
    a, b = pods.run(), pods.run()
    assert a.ip != b.ip
    assert_network_up(s, a)
    assert_network_up(s, b)
    assert ping_from(s, a.id, b.ip) and ping_from(s, b.id, a.ip)
    for p in (a, b):
        gw = gateway_of(s, p.id)
        assert gw in bridge_addrs(s.bridge), (gw, bridge_addrs(s.bridge))
        assert ping_from(s, p.id, gw)
    # A TCP server in b answers a over the pod network.
    with pod_server(s, b.id) as t:
        r = nsenter_net(s, a.id, PY, "-c", "import socket,sys; c=socket.create_connection((sys.argv[1],8080),3);"
                        "print(c.recv(100).decode().strip())", b.ip)
        assert r.stdout.strip() == "tcp:" + t, r


def test_stop_pod(psuite, pods):
    s = psuite
    a, b = pods.run(), pods.run()
    assert a.pause and all(pid_alive(x) for x in a.pause)
    assert ping_from(s, b.id, a.ip)
    stop(pods.cri, a.id)
    st = status(pods.cri, a.id).status
    assert st.state == pb.SANDBOX_NOTREADY
    assert st.metadata == a.cfg.metadata and st.created_at == a.status.created_at
    assert wait_for(lambda: not any(pid_alive(x) for x in a.pause), 2), "the pause process survived Stop"
    assert wait_for(lambda: network_torn_down(s, a), 2)
    assert not ping_from(s, b.id, a.ip, tries=1, wait=1)
    assert not ip_pattern(a.ip).search(nft_table_text("inet", s.nft_table))
    # Idempotent; unknown ids are fine too.
    stop(pods.cri, a.id)
    stop(pods.cri, tok(32))
    assert status(pods.cri, a.id).status.state == pb.SANDBOX_NOTREADY
    assert [x.state for x in list_pods(pods.cri, id=a.id)] == [pb.SANDBOX_NOTREADY]
    # b is untouched.
    assert status(pods.cri, b.id).status.state == pb.SANDBOX_READY
    assert ping_from(s, b.id, gateway_of(s, b.id))
    remove(pods.cri, a.id)
    assert_gone(s, pods.cri, a)
    remove(pods.cri, a.id)


def test_remove_without_stop_releases_everything(psuite, pods):
    s = psuite
    p = pods.run(ports=[(pb.TCP, 8080, free_port())])
    assert p.pause and p.ports
    assert ipam_holds(s, p.ip), "no IPAM record under %s names %s" % (ipam_dir(s), p.ip)
    assert ip_pattern(p.ip).search(nft_table_text("inet", s.nft_table)), "no nft rule for the hostPort"
    assert pod_cgroup_dirs(s, p.id)
    remove(pods.cri, p.id)
    assert_gone(s, pods.cri, p)
    remove(pods.cri, p.id)
    remove(pods.cri, tok(32))


def test_host_ports_tcp_and_udp(psuite, pods):
    s = psuite
    hp_tcp, hp_udp = free_port(), free_port(socket.SOCK_DGRAM)
    p = pods.run(ports=[(pb.TCP, 8080, hp_tcp), (pb.UDP, 8081, hp_udp)])
    other = pods.run()
    with pod_server(s, p.id) as t:
        want = b"tcp:%s\n" % t.encode()
        assert tcp_get("127.0.0.1", hp_tcp) == want
        assert udp_ask("127.0.0.1", hp_udp, b"ping") == b"udp:%s:ping" % t.encode()
        assert_routed_via_bridge(s, p.ip)
        assert tcp_get(p.ip, 8080) == want
        assert udp_ask(p.ip, 8081, b"direct") == b"udp:%s:direct" % t.encode()
        # Another pod reaches it on its own address too.
        r = nsenter_net(s, other.id, PY, "-c", "import socket,sys; c=socket.create_connection((sys.argv[1],8080),3);"
                        "print(c.recv(100).decode().strip())", p.ip)
        assert r.stdout.strip() == "tcp:" + t, r
    remove(pods.cri, p.id)
    assert_gone(s, pods.cri, p)
    table = nft_table_text("inet", s.nft_table)
    assert not re.search(r"dport %d\b" % hp_tcp, table) and not re.search(r"dport %d\b" % hp_udp, table), table
    # Nothing diverts the ports any more: our own listeners get the traffic.
    assert host_listener_reached(hp_tcp)
    assert host_listener_reached(hp_udp, socket.SOCK_DGRAM)


def test_concurrent_pods(psuite, pods):
    s = psuite
    n = 8
    ports_before = bridge_ports(s.bridge)
    label = tok()
    results, errors = [None] * n, []

    def worker(i):
        try:
            results[i] = run(pods.cri, pod_config(s, labels={"conc": label}))
        except grpc.RpcError as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RPC_TIMEOUT + 10)
    pods.made += [x for x in results if x]
    assert not errors, errors
    ips = [status(pods.cri, x).status.network.ip for x in results]
    assert len(set(ips)) == n and all(in_pod_subnet(s, ip) for ip in ips), ips
    assert len(bridge_ports(s.bridge) - ports_before) == n
    assert ping_from(s, results[0], ips[-1]) and ping_from(s, results[-1], ips[0])
    errors.clear()

    def remover(pod_id):
        try:
            remove(pods.cri, pod_id)
        except grpc.RpcError as e:
            errors.append(e)

    threads = [threading.Thread(target=remover, args=(x,)) for x in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(RPC_TIMEOUT + 10)
    assert not errors, errors
    assert list_pods(pods.cri, labels={"conc": label}) == []
    assert eventually_equal(lambda: bridge_ports(s.bridge), ports_before) == ports_before
    for x, ip in zip(results, ips):
        assert leftovers(s, pods.cri, x, [ip]) == []


def test_ips_are_released_and_reused_in_a_small_subnet(small_suite, small_pods):
    s = small_suite
    usable = s.subnet.num_addresses - 3  # network, broadcast, gateway
    seen = []
    for i in range(usable + 6):
        p = small_pods.run()
        assert in_pod_subnet(s, p.ip) and ipaddress.ip_address(p.ip) not in (
            s.subnet.network_address, s.subnet.broadcast_address), p.ip
        assert p.ip not in bridge_addrs(s.bridge)
        seen.append(p.ip)
        remove(small_pods.cri, p.id)
        assert not ipam_holds(s, p.ip)
    # Released means reusable: fill the subnet, see the next pod refused
    # for want of an address, free one and see exactly that one given out.
    held = [small_pods.run() for _ in range(usable)]
    assert len({p.ip for p in held}) == usable, [p.ip for p in held]
    e = rpc_error(run, small_pods.cri, pod_config(s))
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "no free address" in e.details(), e
    freed = held.pop(len(held) // 2)
    remove(small_pods.cri, freed.id)
    assert not ipam_holds(s, freed.ip)
    again = small_pods.run()
    assert again.ip == freed.ip, (again.ip, freed.ip)
    for p in held + [again]:
        remove(small_pods.cri, p.id)
    # Nothing is held once every pod is gone.
    assert [ip for ip in seen + [p.ip for p in held] if ipam_holds(s, ip)] == []


def test_dual_stack(small_suite, small_pods):
    s = small_suite
    a, b = small_pods.run(), small_pods.run()
    for p in (a, b):
        st = status(small_pods.cri, p.id).status
        assert ipaddress.ip_address(st.network.ip) in s.subnet
        v6 = [x.ip for x in st.network.additional_ips]
        assert len(v6) == 1 and ipaddress.ip_address(v6[0]) in s.subnet6, v6
        r = nsenter_net(s, p.id, "ip", "-6", "-o", "addr", "show", "dev", "eth0", check=True)
        assert v6[0] in r.stdout, r.stdout
    b6 = [x for x in b.ips if ":" in x][0]
    a6 = [x for x in a.ips if ":" in x][0]
    assert wait_for(lambda: ping_from(s, a.id, b6, tries=1), 6, 0.5), "IPv6 between pods"
    remove(small_pods.cri, a.id)
    assert_gone(s, small_pods.cri, a)
    assert not ipam_holds(s, a6)
    assert not ping_from(s, b.id, a6, tries=1, wait=1)


# ================================================================ restarts and crashes

def test_netd_restart_keeps_pods(test_user):
    with pod_suite() as s:
        s.start_all()
        with pods_of(s) as ps:
            hp = free_port()
            a = ps.run(ports=[(pb.TCP, 8080, hp)], labels={"x": "1"})
            b = ps.run()
            before = {p.id: status(ps.cri, p.id).status for p in (a, b)}
            table_before = sorted(nft_normalized("inet", s.nft_table).splitlines())
            s.restart("netd")
            for p in (a, b):
                assert status(ps.cri, p.id).status == before[p.id]
            assert sorted(nft_normalized("inet", s.nft_table).splitlines()) == table_before
            assert ping_from(s, a.id, b.ip) and ping_from(s, b.id, a.ip)
            with pod_server(s, a.id) as t:
                assert tcp_get("127.0.0.1", hp) == b"tcp:%s\n" % t.encode()
            # netd still knows which addresses are taken.
            c = ps.run()
            assert c.ip not in (a.ip, b.ip)
            assert ping_from(s, c.id, a.ip)
            for p in (a, b, c):
                remove(ps.cri, p.id)
                assert_gone(s, ps.cri, p)


def test_criod_started_in_another_boot_reports_ready_pods_notready(test_user):
    """A READY pod's pause, namespaces and network end with the host's boot,
    so criod started in another boot than its records' (its boot_id file,
    here rewritten as a host restart would leave it) reports every READY pod
    NOTREADY, keeps stopped ones as they were, records the new boot, and the
    pods still stop and remove leaving nothing; in the same boot a restart
    keeps READY (test_criod_restart_keeps_pod_state)."""
    with pod_suite() as s:
        s.start_all()
        with pods_of(s) as ps:
            a = ps.run(labels={"boot": "a"})
            b = ps.run(labels={"boot": "b"})
            stop(ps.cri, b.id)
            boot_file = os.path.join(s.state_dir, "criod", "boot_id")
            with open("/proc/sys/kernel/random/boot_id") as f:
                now = f.read()
            with open(boot_file) as f:
                assert f.read() == now
            s.stop("criod")
            with open(boot_file, "w") as f:
                f.write("00000000-0000-4000-8000-000000000000\n")
            s.start("criod")
            ps.cri.close()
            ps.cri = s.client()  # pods_of closes this one
            for p in (a, b):
                assert status(ps.cri, p.id).status.state == pb.SANDBOX_NOTREADY, p.id
            assert sorted(x.id for x in list_pods(ps.cri, state=pb.SANDBOX_NOTREADY)) == sorted([a.id, b.id])
            assert 'msg="the host restarted since the pods were made: READY pods are now NOTREADY" pods=1' \
                in s.log("criod"), s.log("criod")[-2000:]
            with open(boot_file) as f:
                assert f.read() == now
            # A second start in this boot changes nothing more.
            s.restart("criod")
            ps.cri.close()
            ps.cri = s.client()
            assert status(ps.cri, a.id).status.state == pb.SANDBOX_NOTREADY
            for p in (a, b):
                stop(ps.cri, p.id)
                remove(ps.cri, p.id)
                assert_gone(s, ps.cri, p)


def test_criod_restart_keeps_pod_state(test_user):
    with pod_suite() as s:
        s.start_all()
        with pods_of(s) as ps:
            a = ps.run(labels={"keep": "a"}, annotations={"n": "1"}, pid=pb.POD)
            b = ps.run(labels={"keep": "b"})
            stop(ps.cri, b.id)
            before = {p.id: status(ps.cri, p.id).status for p in (a, b)}
            listed = sorted((x.SerializeToString(deterministic=True) for x in list_pods(ps.cri)))
            s.restart("criod")
            ps.cri.close()
            ps.cri = s.client()  # pods_of closes this one
            for p in (a, b):
                assert status(ps.cri, p.id).status == before[p.id]
            assert sorted(x.SerializeToString(deterministic=True) for x in list_pods(ps.cri)) == listed
            assert [x.id for x in list_pods(ps.cri, state=pb.SANDBOX_NOTREADY)] == [b.id]
            # Names stay reserved.
            e = rpc_error(run, ps.cri, a.cfg)
            assert e.code() == grpc.StatusCode.ALREADY_EXISTS and a.name in e.details() and a.id in e.details(), e
            # Still working, still stoppable and removable.
            assert ping_from(s, a.id, gateway_of(s, a.id))
            stop(ps.cri, a.id)
            assert wait_for(lambda: not any(pid_alive(x) for x in a.pause), 2)
            assert status(ps.cri, a.id).status.state == pb.SANDBOX_NOTREADY
            for p in (a, b):
                remove(ps.cri, p.id)
                assert_gone(s, ps.cri, p)
            # And a new one works after all that.
            c = ps.run()
            assert ping_from(s, c.id, gateway_of(s, c.id))
            remove(ps.cri, c.id)
            assert_gone(s, ps.cri, c)


def suite_pod_state(s, cri):
    """Everything pod-related in the suite, for before/after comparisons."""
    netns_dir = os.path.join(s.run_dir, "netns")
    pods_dir = os.path.join(s.run_dir, "pods")
    criod_state = os.path.join(s.state_dir, "criod")
    hexname = re.compile(r"[0-9a-f]{64}")
    return {
        "listed": sorted(x.id for x in list_pods(cri)),
        "netns": sorted(os.listdir(netns_dir)) if os.path.isdir(netns_dir) else [],
        "pod dirs": sorted(os.listdir(pods_dir)) if os.path.isdir(pods_dir) else [],
        "mounts": sorted(m[0] for m in mounts_under(s.run_dir) if m[1] in ("nsfs", "tmpfs")),
        "bridge ports": sorted(bridge_ports(s.bridge)),
        "ipam": sorted(files_mentioning(ipam_dir(s), [re.compile(r"(?<![\d.])10\.213\.\d+\.\d+(?!\d)")])),
        "criod state": sorted(files_mentioning(criod_state, [hexname], contents=False)),
        "nft": nft_normalized("inet", s.nft_table),
        "cgroups": sorted(d for r in cgroup_roots() if os.path.isdir(r + s.cgroup_parent)
                          for d in os.listdir(r + s.cgroup_parent) if d.startswith("criod-")),
    }


def test_netd_killed_mid_setup(test_user):
    with pod_suite() as s:
        s.start_all()
        with pods_of(s) as ps:
            c = ps.cri
            # A first pod makes the table's base chains; the baseline is
            # what is left once it is gone.
            p0 = ps.run()
            remove(c, p0.id)
            baseline = suite_pod_state(s, c)
            netns_dir = os.path.join(s.run_dir, "netns")
            watches = ["now", "netns", "delay", "port", "now", "netns", "delay"]
            succeeded, failed = [], []
            for i, watch in enumerate(watches):
                cfg = pod_config(s, name="killed-%d-%s" % (i, tok(3)), ports=[(pb.TCP, 8080, free_port())])
                res = {}

                def worker():
                    try:
                        res["id"] = run(c, cfg, timeout=30)
                    except grpc.RpcError as e:
                        res["err"] = e

                netns_before = set(os.listdir(netns_dir)) if os.path.isdir(netns_dir) else set()
                ports_before = bridge_ports(s.bridge)
                th = threading.Thread(target=worker)
                th.start()
                if watch == "netns":
                    wait_for(lambda: not th.is_alive() or (os.path.isdir(netns_dir) and
                                                          set(os.listdir(netns_dir)) - netns_before), 5, 0.001)
                elif watch == "port":
                    wait_for(lambda: not th.is_alive() or bridge_ports(s.bridge) - ports_before, 5, 0.001)
                elif watch == "delay":
                    time.sleep(random.uniform(0.002, 0.08))
                s.stop("netd", sig=signal.SIGKILL, check=False)
                th.join(20)
                s.start("netd")
                th.join(40)
                assert not th.is_alive(), "RunPodSandbox did not return after netd died"
                if "id" in res:
                    succeeded.append((res["id"], cfg))
                    ps.made.append(res["id"])
                else:
                    failed.append(cfg)
            assert failed, "RunPodSandbox never failed although netd was killed under it %d times" % len(watches)
            # criod talks to the new netd: a new pod works.
            p = ps.run()
            assert ping_from(s, p.id, gateway_of(s, p.id))
            # Pods that did come up are whole.
            for pod_id, cfg in succeeded:
                st = status(c, pod_id).status
                assert st.state == pb.SANDBOX_READY and in_pod_subnet(s, st.network.ip)
                assert ping_from(s, pod_id, gateway_of(s, pod_id))
            # A failed pod's name is free again.
            again = Pod(s, c, failed[0])
            ps.made.append(again.id)
            assert ping_from(s, again.id, gateway_of(s, again.id))
            for pod_id in [p.id, again.id] + [x for x, _ in succeeded]:
                remove(c, pod_id)
            # Nothing of the failed pods (or of the others) remains.
            now = wait_for(lambda: suite_pod_state(s, c) == baseline, 15, 0.2) or suite_pod_state(s, c)
            assert now is True or now == baseline, {k: (baseline[k], now[k]) for k in baseline
                                                    if baseline[k] != now[k]}


# ================================================================ CNI backend

@pytest.fixture(scope="module")
def cni_suite(test_user):
    for plugin in ("bridge", "host-local", "portmap"):
        if not os.path.exists(os.path.join(CNI_BIN, plugin)):
            pytest.skip("containernetworking-plugins is not installed (scripts/deps installs it)")
    if not shutil.which("iptables"):
        pytest.skip("iptables is not installed (scripts/deps installs it)")
    with pod_suite(cni=True) as s:
        s.start_all()
        yield s


def test_cni_backend(cni_suite):
    s = cni_suite
    hp = free_port()
    data_dir = os.path.join(s.cni_data_dir, s.cni_net_name)
    with pods_of(s) as ps:
        a = ps.run(ports=[(pb.TCP, 8080, hp)])
        b = ps.run()
        for p in (a, b):
            assert p.ip and ipaddress.ip_address(p.ip) in s.subnet, p.ip
            assert os.path.isfile(os.path.join(data_dir, p.ip)), os.listdir(data_dir)
            assert_network_up(s, p)
        assert ping_from(s, a.id, b.ip) and ping_from(s, b.id, a.ip)
        gw = gateway_of(s, a.id)
        assert gw in bridge_addrs(s.bridge) and ping_from(s, a.id, gw)
        with pod_server(s, a.id) as t:
            assert tcp_get("127.0.0.1", hp) == b"tcp:%s\n" % t.encode()
            assert_routed_via_bridge(s, a.ip)
            assert tcp_get(a.ip, 8080) == b"tcp:%s\n" % t.encode()
        stop(ps.cri, a.id)
        assert status(ps.cri, a.id).status.state == pb.SANDBOX_NOTREADY
        assert wait_for(lambda: network_torn_down(s, a), 2)
        remove(ps.cri, a.id)
        assert not os.path.exists(os.path.join(data_dir, a.ip)), os.listdir(data_dir)
        assert not os.path.lexists(netns_path(s, a.id))
        assert not ip_pattern(a.ip).search(sh("nft", "list", "ruleset").stdout), "portmap rules survived"
        assert host_listener_reached(hp)
        assert leftovers(s, ps.cri, a.id, [a.ip], a.ports, a.pause) == []
        remove(ps.cri, b.id)
        assert not os.path.exists(os.path.join(data_dir, b.ip))
        assert leftovers(s, ps.cri, b.id, [b.ip], b.ports, b.pause) == []
