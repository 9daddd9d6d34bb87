"""What bench/stream, bench/stats and bench/scale share.

bench/run is loaded as a module (`run`) as it is, without changing it: its
Runtime (pods of one busybox sleep container through any CRI endpoint),
Images, settle, pss_rss, criod_pids, pct and med. On top: the setup all
three do (a loopback registry, a private criod suite from tests/e2e, and
Debian's containerd through bench/containerd.py, each torn down on exit),
the CPU time of a set of processes, the load and commit a figure was
taken at, and a table printer.
"""
import contextlib
import importlib.machinery
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _load_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(HERE, "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


run = _load_run()  # sets sys.path for tests/e2e and bench/
conftest, R, TC, pb = run.conftest, run.R, run.TC, run.pb
from containerd import Containerd  # noqa: E402

log = run.log
CLK_TCK = os.sysconf("SC_CLK_TCK")


loadavg, commit = run.loadavg, run.commit


def summary(xs):
    """(median, min, max, n) of a list of numbers, Nones if empty."""
    if not xs:
        return None, None, None, 0
    return statistics.median(xs), min(xs), max(xs), len(xs)


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    return ("%%.%df" % nd) % v if abs(v) < 1000 else "%.0f" % v


def table(hdr, rows):
    lines = [hdr] + [tuple(fmt(x) for x in r) for r in rows]
    w = [max(len(str(r[i])) for r in lines) for i in range(len(hdr))]
    out = ["| " + " | ".join(str(r[i]).ljust(w[i]) for i in range(len(hdr))) + " |" for r in lines]
    out.insert(1, "|" + "|".join("-" * (x + 2) for x in w) + "|")
    return "\n".join(out)


# ================================================================ processes

def ppid_map():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                out[int(d)] = int(st[st.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
    return out


def descendants(roots):
    pp = ppid_map()
    kids = {}
    for p, q in pp.items():
        kids.setdefault(q, []).append(p)
    out, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(kids.get(p, ()))
    return out


def suite_procs(s):
    """{kind: [pids]}: criod, imaged, netd, spawnd, every conmon of the
    suite, and other helpers of theirs (spawnd's launcher, imaged-fetch);
    not pause nor the containers' own processes."""
    groups = run.criod_pids(s)
    pauses = set(groups.pop("pause"))
    daemons = {p for k in ("criod",) + conftest.DAEMONS for p in groups[k]}
    conmons = set(groups["conmon"])
    helpers = set()
    for p in descendants(daemons) - daemons - conmons - pauses:
        if run.comm(p) in ("imaged-fetch", "spawnd", "imaged", "netd", "criod", "conmon"):
            helpers.add(p)
    groups["helpers"] = sorted(helpers)
    return groups


def ctd_procs(ctd):
    return {"containerd": [ctd.proc.pid], "shims": ctd.shim_pids()}


def cpu_ticks(pid):
    """utime+stime+cutime+cstime of a process (its reaped children in it), 0 if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return 0
    v = st[st.rindex(")") + 2:].split()
    return sum(int(x) for x in v[11:15])


def cpu_of(groups):
    """{pid: ticks} for every pid of the groups."""
    return {p: cpu_ticks(p) for v in groups.values() for p in v}


def cpu_delta_s(before, after):
    """CPU seconds spent between two cpu_of() snapshots (by processes in both
    or started in between)."""
    return sum(t - before.get(p, 0) for p, t in after.items() if t >= before.get(p, 0)) / CLK_TCK


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


# ================================================================ setup

class Env:
    """A loopback registry with the sleep image, a started criod suite, and
    (unless disabled or missing) containerd; everything removed on close().

    criod_config(text) -> text rewrites the suite's config before start."""

    def __init__(self, stack, containerd=True, criod_config=None):
        self.stack = stack
        if os.geteuid() != 0:
            sys.exit("needs root")
        if not os.path.exists(os.path.join(conftest.BUILD, "criod", "criod")):
            sys.exit("no build in %s (scripts/build %s, or CRIOD_BUILD_DIR)" % (conftest.BUILD, conftest.BUILD))
        made_user = conftest._ensure_user()
        if made_user:
            stack.callback(subprocess.run, ["userdel", conftest.TEST_USER], check=False)
        netns_before = set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()
        stack.callback(self._netns_cleanup, netns_before)
        regdir = tempfile.mkdtemp(prefix="criod-bench-reg-")
        stack.callback(shutil.rmtree, regdir, True)
        self.reg = R.Registry(regdir, "bench")
        self.reg.start()
        stack.callback(self.reg.stop)
        self.images = run.Images(self.reg, 0)
        self.suite = s = stack.enter_context(TC.ctr_suite(types.SimpleNamespace(plain=self.reg)))
        with open(s.config) as f:  # the suite logs at debug; a benchmark at info
            conf = f.read().replace("level = debug", "level = info")
        if criod_config:
            conf = criod_config(conf)
        with open(s.config, "w") as f:
            f.write(conf)
        s.start_all()
        self.rts = {"criod": run.Runtime("criod", s.socket, s.base, s.cgroup_parent, self.images)}
        stack.callback(self.rts["criod"].close)
        self.ctd = None
        if containerd and os.path.exists("/usr/bin/containerd"):
            cg = "/criod-bench-ctd-" + os.urandom(3).hex()
            subnet = "10.217.%d.0/24" % (os.getpid() % 250 + 1)
            ctd = Containerd(self.reg.host, self.images.ref("pause"), subnet, cg)
            stack.callback(ctd.stop)
            try:
                ctd.start()
                drt = run.Runtime("containerd", ctd.sock, ctd.base, cg, self.images)
                stack.callback(drt.close)
                wait_version(drt)
                self.rts["containerd"] = drt
                self.ctd = ctd
            except Exception as e:  # noqa: BLE001 - report and go on without it
                log("containerd unavailable: %r\n%s" % (e, ctd.tail()))
        for rt in self.rts.values():
            rt.pull("sleep")
        if self.ctd is not None:
            self.rts["containerd"].pull("pause")

    @staticmethod
    def _netns_cleanup(before):
        if os.path.isdir("/var/run/netns"):
            for ns in set(os.listdir("/var/run/netns")) - before:
                if ns.startswith("cni-"):
                    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def wait_version(rt, timeout=60):
    end = time.monotonic() + timeout
    while True:
        try:
            return rt.cri().runtime("Version", pb.VersionRequest(), timeout=10)
        except Exception:  # noqa: BLE001 - containerd's CRI plugin may still be starting
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def bring_up(rt, count, nctrs=1, parallel=4, base=0):
    """count pods of nctrs sleep containers each, on parallel threads."""
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(parallel) as ex:
        return list(ex.map(lambda i: rt.up(base + i, nctrs=nctrs), range(count)))


def timed(fn, n):
    """n calls of fn (after one untimed), each in ms."""
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out


@contextlib.contextmanager
def exit_stack():
    stack = contextlib.ExitStack()
    try:
        yield stack
    finally:
        stack.close()
