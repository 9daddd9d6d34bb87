"""The Debian package, installed, run, upgraded and purged on this machine.

scripts/package builds criod_<v>.deb and a rebuild with a higher version
(or CRIOD_DEBS names a directory holding both, built once by
`scripts/package DIR 0.1.0+1`). Then, as root:

  install   dpkg -i: the files where Debian puts them (criod in /usr/sbin,
            the daemons and helpers in /usr/lib/criod, the units, sysusers.d,
            tmpfiles.d, the conffile /etc/criod/criod.conf, man pages, docs),
            the criod system user, /run/criod and /var/lib/criod; the
            installed units pass systemd-analyze verify and security.
  run       this machine has no systemd as PID 1, so the daemons are
            started as their units start them: each unit's ExecStart as
            root, criod handed a listening /run/criod/criod.sock the way
            criod.socket makes it (owner criod, mode 0660, fd 3 with
            LISTEN_FDS) and dropping to the user criod; the installed
            configuration plus one drop-in trusting the test's loopback
            registry. A crictl smoke: pull, runp, create, start, exec, logs.
  upgrade   dpkg -i of the newer build while the pod and container run,
            then every daemon restarted from the new files (as
            dh_installsystemd's restart-after-upgrade does): the container's
            init and its conmon are the same processes, still running, and
            reachable through the new criod (exec, logs); then stop, rm,
            stopp, rmp, rmi.
  purge     daemons stopped, dpkg --purge: no file of the package, no
            criod user or group, no /etc/criod, /run/criod, /var/lib/criod,
            no mount, link, nftables table or cgroup it made.

Skipped (saying why) when not root, without crictl, or when the machine
already has a criod package, user or directory this test would take.
"""
import json
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

import registry as R
from conftest import ROOT
from test_pods import restore_forwarding_sysctls  # noqa: F401 - fixture: netd turns on forwarding
import test_units

CRICTL_PATHS = (os.path.normpath(os.path.join(ROOT, "..", "shared", "cri-tools", "crictl")),
                "/work/shared/cri-tools/crictl")
NEW_VERSION = "0.1.0+1"
SOCK = "/run/criod/criod.sock"
UNITDIR = "/lib/systemd/system"
UNITS = ("criod.service", "criod-imaged.service", "criod-netd.service", "criod-spawnd.service",
         "criod-spawnd-launcher.service", "criod.socket", "criod-streaming.socket")
FILES = ["/usr/sbin/criod"] + ["/usr/lib/criod/" + n for n in ("imaged", "imaged-fetch", "netd", "spawnd",
                                                               "spawnd-launcher", "conmon", "pause")] + \
        [os.path.join(UNITDIR, u) for u in UNITS] + \
        ["/usr/lib/sysusers.d/criod.conf", "/usr/lib/tmpfiles.d/criod.conf", "/etc/criod/criod.conf",
         "/usr/share/man/man8/criod.8.gz", "/usr/share/man/man5/criod.conf.5.gz",
         "/usr/share/doc/criod/README.md", "/usr/share/doc/criod/ARCHITECTURE.md",
         "/usr/share/doc/criod/examples/hardened.conf", "/usr/share/doc/criod/copyright"]
# The host-wide names of the default configuration (netd, spawnd).
BRIDGE, NFT_TABLE, CGROUP = "criod0", "criod", "/sys/fs/cgroup/criod"
DAEMON_UNITS = ("criod-imaged.service", "criod-netd.service", "criod-spawnd.service")


def sh(*args, check=True, timeout=300, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


def find_crictl():
    for p in CRICTL_PATHS:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def machine_state():
    """What install and purge must leave as they found it."""
    def lines(*cmd):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return p.stdout
    with open("/etc/passwd") as f:
        users = sorted(l.split(":")[0] for l in f)
    with open("/etc/group") as f:
        groups = sorted(l.split(":")[0] for l in f)
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(l.split()[4] for l in f if l.split()[4].startswith(("/run/criod", "/var/lib/criod")))
    return {
        "users": users, "groups": groups, "mounts": mounts,
        "criod0": os.path.exists("/sys/class/net/" + BRIDGE),
        "nft": NFT_TABLE in lines("nft", "list", "tables").split(),
        "cgroup": os.path.isdir(CGROUP),
        "paths": [p for p in ["/etc/criod", "/run/criod", "/var/lib/criod", "/usr/lib/criod", "/var/log/pods"]
                  if os.path.exists(p)],
        "wants": sorted(os.listdir("/etc/systemd/system")) if os.path.isdir("/etc/systemd/system") else [],
    }


def unit_value(unit, section, key):
    vals, cur = [], None
    with open(os.path.join(UNITDIR, unit)) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                cur = line
            elif cur == section and line.startswith(key + "="):
                vals.append(line.split("=", 1)[1])
    return vals


class Node:
    """The installed daemons, started the way their units start them."""

    def __init__(self, workdir):
        self.logdir = os.path.join(workdir, "journal")
        os.makedirs(self.logdir, exist_ok=True)
        self.procs = {}
        self.started = set()  # every unit started, for the log checks at the end

    def log(self, unit):
        with open(os.path.join(self.logdir, unit + ".log"), errors="replace") as f:
            return f.read()

    def _wait_ready(self, unit, offset):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.procs[unit].poll() is not None:
                raise AssertionError("%s exited %s:\n%s" % (unit, self.procs[unit].returncode, self.log(unit)))
            if 'msg="ready"' in self.log(unit)[offset:]:
                return
            time.sleep(0.05)
        raise AssertionError("%s not ready:\n%s" % (unit, self.log(unit)))

    def start(self, unit):
        exe = unit_value(unit, "[Service]", "ExecStart")
        assert len(exe) == 1 and os.access(exe[0], os.X_OK), (unit, exe)
        path = os.path.join(self.logdir, unit + ".log")
        log = open(path, "ab")
        offset = log.tell()
        # systemd's environment for a system service: a fixed PATH, cwd /.
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        if unit == "criod.service":
            sock = self.socket_unit()
            script = 'export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=criod.socket; exec "$0"'
            self.procs[unit] = subprocess.Popen(
                ["/bin/sh", "-c", script, exe[0]], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd="/",
                env=env, close_fds=False, preexec_fn=lambda: os.dup2(sock.fileno(), 3))
            sock.close()
        else:
            self.procs[unit] = subprocess.Popen([exe[0]], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                cwd="/", env=env)
        log.close()
        self.started.add(unit)
        self._wait_ready(unit, offset)

    def socket_unit(self):
        """What systemd makes of the installed criod.socket."""
        listen = unit_value("criod.socket", "[Socket]", "ListenStream")
        assert listen == [SOCK]
        user = pwd.getpwnam(unit_value("criod.socket", "[Socket]", "SocketUser")[0])
        group = grp.getgrnam(unit_value("criod.socket", "[Socket]", "SocketGroup")[0])
        mode = int(unit_value("criod.socket", "[Socket]", "SocketMode")[0], 8)
        os.makedirs(os.path.dirname(SOCK), mode=int(unit_value("criod.socket", "[Socket]", "DirectoryMode")[0], 8),
                    exist_ok=True)
        if os.path.exists(SOCK):
            os.unlink(SOCK)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(SOCK)
        os.chown(SOCK, user.pw_uid, group.gr_gid)
        os.chmod(SOCK, mode)
        s.listen(128)
        return s

    def stop(self, unit):
        p = self.procs.pop(unit, None)
        if not p:
            return
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("%s did not stop on SIGTERM" % unit)
        assert rc == 0, "%s exited %d on SIGTERM:\n%s" % (unit, rc, self.log(unit)[-3000:])

    def start_all(self):
        for u in DAEMON_UNITS + ("criod.service",):
            self.start(u)

    def stop_all(self):
        for u in ("criod.service",) + DAEMON_UNITS:
            self.stop(u)

    def kill_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.procs.clear()


@pytest.fixture(scope="module")
def debs():
    """The two builds: the package and a rebuild with a higher version."""
    if os.environ.get("CRIOD_SANITIZERS") == "1":
        pytest.skip("the package is the plain build; its test runs once, in the plain e2e run")
    given = os.environ.get("CRIOD_DEBS")
    if given:
        d, tmp = given, None
    else:
        tmp = tempfile.mkdtemp(prefix="criod-debs-")
        d = tmp
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=%d" % (os.cpu_count() or 1))
        sh(os.path.join(ROOT, "scripts", "package"), d, NEW_VERSION, env=env, timeout=1200)
    found = {}
    for n in os.listdir(d):
        m = re.match(r"^criod_([^_]+)_[a-z0-9]+\.deb$", n)
        if m:
            found[m.group(1)] = os.path.join(d, n)
    assert NEW_VERSION in found and len(found) == 2, "want two builds of criod in %s, found %s" % (d, found)
    old = [v for v in found if v != NEW_VERSION][0]
    sh("dpkg", "--compare-versions", NEW_VERSION, "gt", old)
    yield found[old], found[NEW_VERSION]
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


class Crictl:
    def __init__(self, path, workdir):
        self.path = path
        self.config = os.path.join(workdir, "crictl.yaml")
        with open(self.config, "w") as f:
            f.write("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n" % (SOCK, SOCK))
        self.env = {k: v for k, v in os.environ.items()
                    if not (k.startswith("CRI_") or k.startswith("CRICTL_") or k.endswith("_ENDPOINT"))}

    def run(self, *args):
        p = subprocess.run([self.path, "-c", self.config, "-r", "unix://" + SOCK, "-i", "unix://" + SOCK, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180, env=self.env)
        assert p.returncode == 0, "crictl %s exited %d:\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr)
        return p.stdout.strip()

    def json(self, *args):
        return json.loads(self.run(*args))


def wait_for(what, fn, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def check_installed_units(tmp):
    """The installed units: verify and the security exposure targets, as
    tests/e2e/test_units.py checks the sources."""
    for u in test_units.TARGETS:
        rc, out, err = test_units.run(["security", "--offline=true", "--no-pager", os.path.join(UNITDIR, u)])
        found = test_units.EXPOSURE.findall(out)
        assert rc == 0 and len(found) == 1, (u, out, err)
        assert float(found[0][1]) <= test_units.TARGETS[u], "%s: exposure %s" % (u, found[0][1])
    root = os.path.join(tmp, "verify-root")
    test_units._fake_root(root, [os.path.join(UNITDIR, u) for u in UNITS])
    rc, out, err = test_units._verify(root, list(UNITS))
    assert rc == 0 and not (out + err).strip(), "systemd-analyze verify:\n%s%s" % (out, err)


@pytest.fixture
def plain_registry(tmp_path):
    """One plain-HTTP docker-registry on 127.0.0.1 (registry.py)."""
    reg = R.Registry(str(tmp_path)).start()
    try:
        yield reg
    finally:
        reg.stop()


def test_install_run_upgrade_purge(debs, plain_registry, restore_forwarding_sysctls, tmp_path):
    if os.environ.get("CRIOD_SANITIZERS") == "1":
        pytest.skip("the package is the plain build; its test runs once, in the plain e2e run")
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root")
    crictl_path = find_crictl()
    if not crictl_path:
        pytest.skip("no crictl at %s" % " or ".join(CRICTL_PATHS))
    if subprocess.run(["dpkg-query", "-W", "criod"], capture_output=True).returncode == 0:
        pytest.skip("a criod package is installed on this machine already")
    before = machine_state()
    taken = [p for p in ("/etc/criod", "/run/criod", "/var/lib/criod", "/usr/lib/criod") if p in before["paths"]]
    if "criod" in before["users"] or taken or before["criod0"] or before["nft"] or before["cgroup"]:
        pytest.skip("the machine has a criod user, directory, bridge, table or cgroup already: %s" % taken)
    old_deb, new_deb = debs

    reg = plain_registry
    repo = "e2e/package-" + uuid.uuid4().hex[:8]
    reg.client().push_image(repo, R.make_image([R.busybox_layer()], cmd=["/bin/sh"]), tags=("v1",))
    image = "%s/%s:v1" % (reg.host, repo)

    node = Node(str(tmp_path))
    crictl = Crictl(crictl_path, str(tmp_path))
    pod_uid = uuid.uuid4().hex
    logdir = "/var/log/pods/default_pkg-smoke_%s" % pod_uid
    try:
        # ---- install
        sh("dpkg", "-i", old_deb)
        for f in FILES:
            assert os.path.exists(f), "%s not installed" % f
        conffiles = sh("dpkg-query", "-W", "-f=${Conffiles}", "criod").stdout
        assert re.search(r"^ /etc/criod/criod.conf [0-9a-f]{32}$", conffiles, re.M), conffiles
        u = pwd.getpwnam("criod")
        assert u.pw_uid < 1000 and u.pw_shell == "/usr/sbin/nologin" and u.pw_dir == "/nonexistent"
        for d in ("/run/criod", "/var/lib/criod"):
            st = os.stat(d)
            assert st.st_uid == 0 and st.st_mode & 0o777 == 0o755, d
        assert sh("/usr/sbin/criod", "--version").stdout == "criod 0.1.0\n"
        check = sh("/usr/sbin/criod", "check").stdout
        assert check == "criod check: /etc/criod/criod.conf: ok\n", check
        check_installed_units(str(tmp_path))

        # ---- run: the installed configuration plus a drop-in for the registry
        with open("/etc/criod/criod.conf.d/90-test-registry.conf", "w") as f:
            f.write("[registry.%s]\ninsecure = true\n" % reg.host)
        shown = sh("/usr/sbin/criod", "config").stdout
        assert "\n[registry.%s]\n# /etc/criod/criod.conf.d/90-test-registry.conf:2\ninsecure = true\n" % reg.host \
            in shown
        node.start_all()
        criod_pid = node.procs["criod.service"].pid
        with open("/proc/%d/status" % criod_pid) as f:
            st = f.read()
        assert re.search(r"^Uid:\t%d\t" % u.pw_uid, st, re.M) and "CapEff:\t0000000000000000" in st
        assert re.search(r"^RuntimeName:\s+criod$", crictl.run("version"), re.M)

        crictl.run("pull", image)
        pod_cfg = tmp_path / "pod.json"
        pod_cfg.write_text(json.dumps({
            "metadata": {"name": "pkg-smoke", "namespace": "default", "uid": pod_uid, "attempt": 0},
            "log_directory": logdir, "linux": {}}))
        ctr_cfg = tmp_path / "ctr.json"
        ctr_cfg.write_text(json.dumps({
            "metadata": {"name": "app"}, "image": {"image": image},
            "command": ["/bin/sh", "-c", "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done"],
            "log_path": "app.log", "linux": {}}))
        os.makedirs(logdir, 0o755)  # kubelet makes the pod's log directory
        pod = crictl.run("runp", str(pod_cfg))
        ctr = crictl.run("create", pod, str(ctr_cfg), str(pod_cfg))
        crictl.run("start", ctr)
        assert crictl.json("inspect", ctr)["status"]["state"] == "CONTAINER_RUNNING"
        assert crictl.run("exec", "-s", ctr, "/bin/echo", "through", "conmon") == "through conmon"
        wait_for("the container's first log line", lambda: "started" in crictl.run("logs", ctr))
        info = crictl.json("inspect", ctr)["info"]
        init_pid = info["pid"]
        # the container's init is a child of its conmon (a subreaper)
        with open("/proc/%d/status" % init_pid) as f:
            conmon_pid = int(re.search(r"^PPid:\s+(\d+)$", f.read(), re.M).group(1))
        assert os.readlink("/proc/%d/exe" % conmon_pid) == "/usr/lib/criod/conmon"

        # ---- upgrade with the pod and container running
        sh("dpkg", "-i", new_deb)
        assert sh("dpkg-query", "-W", "-f=${Version}", "criod").stdout == NEW_VERSION
        old_pids = {u_: node.procs[u_].pid for u_ in node.procs}
        node.stop_all()
        node.start_all()
        assert all(node.procs[u_].pid != old_pids[u_] for u_ in old_pids)
        # the same container processes, still running, on the new daemons
        os.kill(init_pid, 0)
        os.kill(conmon_pid, 0)
        with open("/proc/%d/status" % init_pid) as f:
            assert re.search(r"^PPid:\s+%d$" % conmon_pid, f.read(), re.M)
        assert crictl.json("inspect", ctr)["status"]["state"] == "CONTAINER_RUNNING"
        assert crictl.json("inspect", ctr)["info"]["pid"] == init_pid
        assert crictl.json("inspectp", pod)["status"]["state"] == "SANDBOX_READY"
        assert crictl.run("exec", "-s", ctr, "/bin/echo", "after", "upgrade") == "after upgrade"
        assert "started" in crictl.run("logs", ctr)

        crictl.run("stop", "-t", "30", ctr)  # SIGTERM first: the trap exits 0
        status = crictl.json("inspect", ctr)["status"]
        assert status["state"] == "CONTAINER_EXITED" and status["reason"] == "Completed", status
        crictl.run("rm", ctr)
        crictl.run("stopp", pod)
        crictl.run("rmp", pod)
        crictl.run("rmi", image)
        assert crictl.run("ps", "-a", "-q") == "" and crictl.run("pods", "-q") == ""
        node.stop_all()
        # criod-spawnd-launcher.service is not started here: spawnd runs from
        # its ExecStart alone, without the unit's Environment=, so it forks
        # its launcher (test_confine_launcher.py runs the launcher unit's way).
        assert node.started == set(DAEMON_UNITS + ("criod.service",)), node.started
        for unit in sorted(node.started):
            assert 'seccomp refused' not in node.log(unit), node.log(unit)
    finally:
        node.kill_all()
        try:
            os.unlink("/etc/criod/criod.conf.d/90-test-registry.conf")
        except FileNotFoundError:
            pass
        shutil.rmtree(logdir, ignore_errors=True)
        if "/var/log/pods" not in before["paths"]:
            shutil.rmtree("/var/log/pods", ignore_errors=True)
        # ---- purge (also after a failure: the machine as it was)
        purge = subprocess.run(["dpkg", "--purge", "criod"], capture_output=True, text=True, timeout=300)
    assert purge.returncode == 0, purge.stdout + purge.stderr
    for f in FILES:
        assert not os.path.exists(f), "%s left after purge" % f
    after = machine_state()
    assert after == before, "purge left the machine different:\n%s\n%s" % (before, after)
