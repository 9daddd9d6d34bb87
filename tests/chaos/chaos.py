"""The chaos harness (scripts/chaos): a private suite (tests/e2e's Suite: own
bridge, nft table, subnet, cgroup parent, run and state directories) under a
churn of pods and containers from several clients while one process at a
time is killed with SIGKILL and restarted the way its unit would be
(packaging/systemd: Restart=on-failure; a conmon is not restarted, imaged
makes a new imaged-fetch for the next pull).

Clients (threads, each its own gRPC channel, retrying a failed teardown as
kubelet does): RunPodSandbox (some pods with a hostPort, some host-network),
CreateContainer, StartContainer, ExecSync, StopContainer, RemoveContainer,
StopPodSandbox, RemovePodSandbox; one more pulls an image from a loopback
docker-registry (RemoveImage, PullImage) over and over. A few long-lived
pods with a running container are left alone by the churn.

At the end every pod is removed through CRI and the host is checked against
what it held before the churn: no network namespace, veth, bridge port,
nftables rule, IPAM entry, mount, cgroup, process, daemon fd, state file,
runc container or image-store entry left. "lost" counts what a client was
told and is not so: a pod or container created OK and never removed that
criod no longer lists, one removed OK that it still lists, an ExecSync OK
with the wrong output, a long-lived container whose conmon was not killed
that no longer runs, one whose conmon was killed not reported exited with a
reason once stopped. The last line is `kills: N, leaks: L, lost: M`.

Usage: chaos.py [--kills N] [--seed S] [--clients C] [--junit FILE]
Environment: CRIOD_BUILD_DIR (default build/ of the source tree).
"""
import argparse
import collections
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))

import grpc  # noqa: E402

import conftest  # noqa: E402
import registry as R  # noqa: E402
import test_containers as tc  # noqa: E402
import test_pods as tp  # noqa: E402

pb = conftest.api_pb2
DAEMONS = ("criod", "imaged", "netd", "spawnd")
TARGETS = ("criod", "imaged", "imaged-fetch", "netd", "spawnd", "conmon")
RPC = 30
LONG_LIVED = 3


def log(msg):
    print("chaos: " + msg, flush=True)


# ---------------------------------------------------------------- processes

def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def conmons(s):
    """{pid: container id} of this suite's monitors."""
    out = {}
    for pid in all_pids():
        argv = cmdline(pid)
        if argv and os.path.basename(argv[0]) == "conmon" and "--id" in argv and any(s.base in a for a in argv):
            i = argv.index("--id")
            if i + 1 < len(argv):
                out[pid] = argv[i + 1]
    return out


def fetch_helpers(s):
    imaged = s.procs.get("imaged")
    if not imaged:
        return []
    return [p for p in all_pids() if ppid_of(p) == imaged.pid and cmdline(p)
            and os.path.basename(cmdline(p)[0]) == "imaged-fetch"]


def fd_targets(pid):
    out = []
    d = "/proc/%d/fd" % pid
    try:
        for fd in os.listdir(d):
            try:
                out.append(os.readlink(os.path.join(d, fd)))
            except OSError:
                pass
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- host snapshot

def files_under(top):
    out = set()
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(d, n), top))
    return out


def cgroups_under(s):
    out = set()
    for root in tp.cgroup_roots():
        d = os.path.join(root, s.cgroup_parent.lstrip("/"))
        for sub, dirs, _ in os.walk(d):
            for n in dirs:
                out.add(os.path.relpath(os.path.join(sub, n), root))
    return out


def suite_processes(s):
    """Processes naming the suite's directory, but the daemons and imaged's
    fetch helpers (which imaged may keep between pulls)."""
    daemons = {p.pid for p in s.procs.values()}
    helpers = set(fetch_helpers(s))
    # A daemon's own forked helpers (spawnd's launcher) are part of it.
    argv0 = {p.pid: (cmdline(p.pid) or [""])[0] for p in s.procs.values()}
    helpers |= {pid for pid in all_pids() if ppid_of(pid) in argv0 and (cmdline(pid) or [None])[0] == argv0[ppid_of(pid)]}
    out = {}
    for pid in all_pids():
        if pid in daemons or pid in helpers or pid == os.getpid():
            continue
        argv = cmdline(pid)
        if any(s.base + "/" in a for a in argv):
            out[pid] = " ".join(argv)[:200]
    return out


def pod_rules(s):
    return {m.group(1) for m in re.finditer(r'comment "pod:([0-9a-f]{64})"', tp.nft_table_text("inet", s.nft_table))}


def veths_of(ids):
    r = tp.sh("ip", "-o", "link", "show", check=False)
    names = set(re.findall(r"^\d+:\s+([^:@\s]+)", r.stdout, re.M))
    prefixes = {"veth" + i[:11] for i in ids}
    return {n for n in names if n in prefixes}


def runc_containers(s):
    return {c["id"] for root in tc.runc_roots(s) for c in tc.runc_list(root)}


def snapshot(s):
    return {
        "state files": files_under(s.state_dir),
        "run files": files_under(s.run_dir),
        "mounts": {m[0] for m in tp.mounts_under(s.base)},
        "cgroups": cgroups_under(s),
        "processes": set(suite_processes(s).values()),
        "bridge ports": tp.bridge_ports(s.bridge),
        "nftables pod rules": pod_rules(s),
        "runc containers": runc_containers(s),
    }


# Files that come and go with the daemons themselves, not with pods.
TRANSIENT = re.compile(r"(^|/)[^/]*\.(sock|pid|lock)$")


def leaks_against(base, now):
    out = []
    for k, v in now.items():
        extra = v - base[k]
        if k.endswith("files"):
            extra = {f for f in extra if not TRANSIENT.search(f)}
        for x in sorted(extra):
            out.append("%s: %s" % (k, x))
    return out


# ---------------------------------------------------------------- the churn

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.lost = []
        self.pods_ok, self.pods_removed = set(), set()
        self.ctrs_ok, self.ctrs_removed = {}, set()  # ctr id -> pod id

    def count(self, name, code):
        with self.lock:
            self.calls[(name, code)] += 1

    def lose(self, what):
        with self.lock:
            self.lost.append(what)
        log("LOST: " + what)


class Client:
    def __init__(self, s, stats, rng):
        self.s, self.stats, self.rng = s, stats, rng
        self.cri = s.client()

    def call(self, name, req, timeout=RPC, image=False):
        try:
            r = (self.cri.image if image else self.cri.runtime)(name, req, timeout=timeout)
            self.stats.count(name, "OK")
            return r
        except grpc.RpcError as e:
            self.stats.count(name, e.code().name)
            raise

    def retry(self, name, req, tries=20, pause=0.5, ok_codes=()):
        """As kubelet: a teardown call again until it succeeds (or we stop)."""
        for _ in range(tries):
            try:
                return self.call(name, req)
            except grpc.RpcError as e:
                if e.code() in ok_codes:
                    return None
                time.sleep(pause)
        raise RuntimeError("%s did not succeed after %d tries" % (name, tries))

    def close(self):
        self.cri.close()


def pod_cfg(s, rng, ports=True, host_net=True):
    kind = rng.random()
    network = pb.NODE if host_net and kind < 0.2 else pb.POD
    mappings = [(pb.TCP, 8080, tp.free_port())] if ports and network == pb.POD and kind > 0.6 else []
    return tp.pod_config(s, ports=mappings, network=network, namespace="chaos")


def ctr_cfg(images, pod, name):
    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=images.ref("base")),
                             log_path="%s.log" % name)
    cfg.command.extend(["sleep", "3600"])
    cfg.linux.security_context.namespace_options.CopyFrom(pod.linux.security_context.namespace_options)
    return cfg


def remove_pod(cl, pod_id):
    st = cl.stats
    cl.retry("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    cl.retry("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    with st.lock:
        st.pods_removed.add(pod_id)
        for cid, p in st.ctrs_ok.items():
            if p == pod_id:
                st.ctrs_removed.add(cid)


def churn_cycle(cl, images):
    s, rng, st = cl.s, cl.rng, cl.stats
    cfg = pod_cfg(s, rng)
    try:
        pod_id = cl.call("RunPodSandbox", pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
    except grpc.RpcError:
        return
    with st.lock:
        st.pods_ok.add(pod_id)
    cids = []
    for k in range(rng.randint(1, 2)):
        try:
            cid = cl.call("CreateContainer", pb.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=ctr_cfg(images, cfg, "c%d" % k), sandbox_config=cfg),
                timeout=60).container_id
        except grpc.RpcError:
            continue
        with st.lock:
            st.ctrs_ok[cid] = pod_id
        cids.append(cid)
        try:
            cl.call("StartContainer", pb.StartContainerRequest(container_id=cid))
            r = cl.call("ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=["echo", "ok"], timeout=10))
            if r.exit_code != 0 or r.stdout != b"ok\n":
                st.lose("ExecSync in %s answered OK with exit %d, stdout %r" % (cid, r.exit_code, r.stdout))
        except grpc.RpcError:
            pass
    time.sleep(rng.uniform(0.1, 0.8))
    if cids and rng.random() < 0.5:
        cid = rng.choice(cids)
        with contextlib.suppress(RuntimeError):
            cl.retry("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=0), tries=4)
        try:
            cl.retry("RemoveContainer", pb.RemoveContainerRequest(container_id=cid), tries=4)
            with st.lock:
                st.ctrs_removed.add(cid)
        except RuntimeError:
            pass
    with contextlib.suppress(RuntimeError):
        remove_pod(cl, pod_id)


def churn(cl, images, stop, errors):
    try:
        while not stop.is_set():
            churn_cycle(cl, images)
    except Exception:  # noqa: BLE001 - a harness bug: report it
        errors.append(traceback.format_exc())


def puller(cl, images, stop, errors):
    ref = pb.ImageSpec(image=images.ref("echo"))
    try:
        while not stop.is_set():
            with contextlib.suppress(grpc.RpcError):
                cl.call("RemoveImage", pb.RemoveImageRequest(image=ref), image=True)
            with contextlib.suppress(grpc.RpcError):
                cl.call("PullImage", pb.PullImageRequest(image=ref), timeout=90, image=True)
            time.sleep(cl.rng.uniform(0.1, 0.5))
    except Exception:  # noqa: BLE001
        errors.append(traceback.format_exc())


# ---------------------------------------------------------------- kills

def restart(s, name):
    """As systemd's Restart=on-failure after a SIGKILL: RestartSec=100ms."""
    p = s.procs[name]
    p.wait(timeout=30)
    time.sleep(0.1)
    s.procs.pop(name)
    s.start(name)


def kill_one(s, rng, killed_conmons):
    target = rng.choice(TARGETS)
    if target == "conmon":
        mons = conmons(s)
        if not mons:
            target = rng.choice(DAEMONS)
        else:
            pid = rng.choice(sorted(mons))
            cid = mons[pid]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed_conmons.add(cid)
            return "conmon %s" % cid[:12]
    if target == "imaged-fetch":
        helpers = tp.wait_for(lambda: fetch_helpers(s), 5, 0.01)
        if helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rng.choice(helpers), signal.SIGKILL)
            return "imaged-fetch"
        target = "imaged"
    os.kill(s.procs[target].pid, signal.SIGKILL)
    restart(s, target)
    return target


# ---------------------------------------------------------------- the end

def check_fds(s, base_fds):
    out = []
    for name, p in s.procs.items():
        targets = fd_targets(p.pid)
        ns = [t for t in targets if re.match(r"^(net|mnt|pid|ipc|uts|cgroup):\[", t)]
        if ns:
            out.append("fds: %s holds namespace fds %s" % (name, ns))
        if base_fds.get(name, (None,))[0] == p.pid:
            grown = len(targets) - base_fds[name][1]
            if grown > 8:
                out.append("fds: %s has %d more fds than before the churn" % (name, grown))
    return out


def check_long_lived(cl, long_lived, killed_conmons):
    for cid in long_lived:
        try:
            st = cl.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid)).status
        except grpc.RpcError as e:
            cl.stats.lose("long-lived container %s: ContainerStatus %s" % (cid, e.code().name))
            continue
        if cid not in killed_conmons:
            if st.state != pb.CONTAINER_RUNNING:
                cl.stats.lose("long-lived container %s no longer runs: %s %s %s" % (
                    cid, pb.ContainerState.Name(st.state), st.reason, st.message))
            continue
        # Its monitor was killed: not reported running; stopped (as kubelet
        # stops a container it cannot account for), it is exited, with a
        # reason.
        if st.state == pb.CONTAINER_RUNNING:
            cl.stats.lose("container %s is reported running though its monitor was killed" % cid)
        try:
            cl.retry("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=0), tries=10)
            st = cl.call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid)).status
            if st.state != pb.CONTAINER_EXITED or not st.reason:
                cl.stats.lose("container %s whose monitor was killed: %s reason=%r message=%r after StopContainer" % (
                    cid, pb.ContainerState.Name(st.state), st.reason, st.message))
        except (grpc.RpcError, RuntimeError) as e:
            cl.stats.lose("container %s whose monitor was killed cannot be stopped: %s" % (cid, e))


def check_told(cl):
    """What the clients were told against what criod lists."""
    st = cl.stats
    pods = {p.id for p in cl.call("ListPodSandbox", pb.ListPodSandboxRequest()).items}
    ctrs = {c.id for c in cl.call("ListContainers", pb.ListContainersRequest()).containers}
    with st.lock:
        for p in sorted(st.pods_ok - st.pods_removed - pods):
            st.lost.append("pod %s was created OK, never removed, and is not listed" % p)
        for p in sorted(st.pods_removed & pods):
            st.lost.append("pod %s was removed OK and is still listed" % p)
        for c in sorted(set(st.ctrs_ok) - st.ctrs_removed - ctrs):
            st.lost.append("container %s was created OK, never removed, and is not listed" % c)
        for c in sorted(st.ctrs_removed & ctrs):
            st.lost.append("container %s was removed OK and is still listed" % c)
    return pods


def remove_everything(cl):
    for p in cl.call("ListPodSandbox", pb.ListPodSandboxRequest()).items:
        remove_pod(cl, p.id)


def converged(s, base, base_fds, ids):
    now = snapshot(s)
    leaks = leaks_against(base, now)
    leaks += ["veth: %s" % v for v in sorted(veths_of(ids))]
    leaks += check_fds(s, base_fds)
    return leaks


# ---------------------------------------------------------------- main

def run(args):
    rng = random.Random(args.seed)
    workdir = tempfile_dir()
    reg = R.Registry(workdir, "plain").start()
    try:
        images = tc.Images(reg)
        regs = types.SimpleNamespace(plain=reg)
        with tc.ctr_suite(regs) as s:
            return chaos(s, images, rng, args)
    finally:
        reg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def tempfile_dir():
    import tempfile
    d = tempfile.mkdtemp(prefix="criod-chaos-registry-")
    os.chmod(d, 0o755)
    return d


def chaos(s, images, rng, args):
    s.start_all()
    stats = Stats()
    main = Client(s, stats, random.Random(rng.random()))
    for name in ("base", "echo"):
        main.call("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=images.ref(name))), timeout=90,
                  image=True)
    # Warm up (one cycle: every daemon has made what it keeps), then the
    # long-lived pods, then the host as it should be found again.
    churn_cycle(main, images)
    long_lived, long_pods = [], []
    for i in range(LONG_LIVED):
        cfg = pod_cfg(s, rng, ports=False, host_net=False)
        pod_id = main.call("RunPodSandbox", pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        cid = main.call("CreateContainer", pb.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=ctr_cfg(images, cfg, "long"), sandbox_config=cfg), timeout=60).container_id
        main.call("StartContainer", pb.StartContainerRequest(container_id=cid))
        long_lived.append(cid)
        long_pods.append(pod_id)
    base_long = snapshot(s)  # with the long-lived pods
    base_fds = {n: (p.pid, len(fd_targets(p.pid))) for n, p in s.procs.items()}
    log("host before the churn: %s" % ", ".join("%s %d" % (k, len(v)) for k, v in base_long.items()))

    stop, errors = threading.Event(), []
    clients = [Client(s, stats, random.Random(rng.random())) for _ in range(args.clients + 1)]
    threads = [threading.Thread(target=churn, args=(c, images, stop, errors), daemon=True) for c in clients[:-1]]
    threads.append(threading.Thread(target=puller, args=(clients[-1], images, stop, errors), daemon=True))
    for t in threads:
        t.start()
    killed_conmons, kills = set(), collections.Counter()
    t0 = time.monotonic()
    try:
        for k in range(args.kills):
            time.sleep(rng.uniform(0.3, 2.0))
            what = kill_one(s, rng, killed_conmons)
            kills[what.split()[0]] += 1
            log("kill %d/%d: %s" % (k + 1, args.kills, what))
    finally:
        stop.set()
        for t in threads:
            t.join(180)
    log("churn done in %.0f s; %s" % (time.monotonic() - t0, dict(kills)))
    for c in clients:
        c.close()

    leaks = ["harness: " + e for e in errors]
    if any(t.is_alive() for t in threads):
        leaks.append("harness: a client did not finish")
    check_long_lived(main, long_lived, killed_conmons)
    check_told(main)
    # Every pod goes, the long-lived ones too; the host must then be as
    # before the long-lived pods were made (base_long without them).
    all_ids = set(stats.pods_ok) | set(stats.ctrs_ok) | set(long_pods) | set(long_lived)
    with contextlib.suppress(RuntimeError):
        remove_everything(main)
    with contextlib.suppress(grpc.RpcError):  # as it was: both images present
        main.call("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=images.ref("echo"))), timeout=90,
                  image=True)
    main.close()
    base = {k: {x for x in v if not any(i in x for i in long_pods + long_lived)} for k, v in base_long.items()}
    base["processes"] = set()
    base["bridge ports"] = set()
    base["nftables pod rules"] = set()
    base["runc containers"] = set()
    # criod retries a removal that a daemon's restart interrupted by itself
    # (every 10 s): give the host that long to converge.
    found = tp.wait_for(lambda: not converged(s, base, base_fds, all_ids), 40, 1)
    if not found:
        leaks += converged(s, base, base_fds, all_ids)
    s.stop_all()
    s.check_logs()
    leaks += ["suite: " + f[:2000] for f in s.failures]
    s.failures.clear()

    calls = collections.Counter()
    for (name, code), n in stats.calls.items():
        calls[code] += n
    log("calls: %s" % ", ".join("%s %d" % kv for kv in sorted(calls.items())))
    log("pods created %d, containers created %d, conmons killed %d" % (len(stats.pods_ok), len(stats.ctrs_ok),
                                                                        len(killed_conmons)))
    for l in leaks:
        log("LEAK: " + l)
    for l in stats.lost:
        log("LOST: " + l)
    summary = "kills: %d, leaks: %d, lost: %d" % (args.kills, len(leaks), len(stats.lost))
    if args.junit:
        write_junit(args.junit, summary, leaks, stats.lost)
    print(summary, flush=True)
    return 0 if not leaks and not stats.lost else 1


def write_junit(path, summary, leaks, lost):
    from xml.sax.saxutils import escape, quoteattr
    bad = leaks + lost
    with open(path, "w") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite name="chaos" tests="1" '
                'failures="%d" errors="0" skipped="0"><testcase classname="chaos" name=%s>'
                % (1 if bad else 0, quoteattr(summary)))
        if bad:
            f.write("<failure message=%s>%s</failure>" % (quoteattr(summary), escape("\n".join(bad))))
        f.write("</testcase></testsuite></testsuites>\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--junit")
    args = ap.parse_args()

    def terminated(signum, frame):
        raise SystemExit("chaos: terminated by signal %d; cleaning up" % signum)
    # A timeout's SIGTERM still tears the suite down (the context managers).
    signal.signal(signal.SIGTERM, terminated)
    made_user = conftest._ensure_user()
    try:
        return run(args)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        summary = "kills: %d, leaks: ?, lost: ? (the harness failed)" % args.kills
        if args.junit:
            write_junit(args.junit, summary, ["harness: " + traceback.format_exc()], [])
        print(summary, flush=True)
        return 1
    finally:
        # The machine as it was found: the suite's user goes if we made it.
        if made_user:
            subprocess.run(["userdel", conftest.TEST_USER], check=False)


if __name__ == "__main__":
    sys.exit(main())
