"""containerd (Debian's package, its CRI plugin) for the benchmark.

Started on its own socket, root, state, runc root, CNI config (a bridge of
its own with host-local IPAM in a temp dir, no masquerade) and registry
config (hosts.toml: the loopback registry over plain HTTP), with
restrict_oom_score_adj so it runs where oom_score_adj cannot be lowered.
stop() kills the daemon, its shims and their containers and removes the
bridge, the cgroup parent, the netns files it made and the temp dir.
"""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

CONTAINERD = "/usr/bin/containerd"
CNI_BIN = "/usr/lib/cni"

CONFIG = """version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "{pause}"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "{runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"""


class Containerd:
    def __init__(self, registry_host, pause_ref, subnet, cgroup_parent):
        self.base = tempfile.mkdtemp(prefix="criod-bench-ctd-")
        os.chmod(self.base, 0o755)
        self.sock = os.path.join(self.base, "containerd.sock")
        self.bridge = "cbch" + os.urandom(3).hex()
        self.cgroup_parent = cgroup_parent
        self.proc = None
        p = lambda *a: os.path.join(self.base, *a)  # noqa: E731
        for d in ("root", "state", "runc", "net.d", "ipam", "certs.d/" + registry_host, "log"):
            os.makedirs(p(d))
        with open(p("net.d", "10-bench.conflist"), "w") as f:
            f.write('{"cniVersion": "1.0.0", "name": "criod-bench", "plugins": [{"type": "bridge", '
                    '"bridge": "%s", "isGateway": true, "ipMasq": false, "ipam": {"type": "host-local", '
                    '"dataDir": "%s", "ranges": [[{"subnet": "%s"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}'
                    % (self.bridge, p("ipam"), subnet))
        with open(p("certs.d", registry_host, "hosts.toml"), "w") as f:
            f.write('server = "http://%s"\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n'
                    % (registry_host, registry_host))
        self.config = p("config.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(root=p("root"), state=p("state"), sock=self.sock, pause=pause_ref,
                                  runc_root=p("runc"), cni_bin=CNI_BIN, cni_conf=p("net.d"), certs=p("certs.d")))
        self.log = p("log", "containerd.log")

    def start(self, timeout=30):
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([CONTAINERD, "--config", self.config], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited %s:\n%s" % (self.proc.returncode, self.tail()))
            if os.path.exists(self.sock):
                return self
            time.sleep(0.05)
        raise RuntimeError("containerd did not come up:\n" + self.tail())

    def tail(self, n=3000):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def shim_pids(self):
        """containerd-shim-runc-v2 processes serving this daemon (-address <sock>)."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"containerd-shim-runc-v2") and self.sock.encode() in args:
                out.append(int(d))
        return out

    def stop(self):
        shims = self.shim_pids()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        runc_root = os.path.join(self.base, "runc")
        for ns in glob.glob(os.path.join(runc_root, "*")):
            for cdir in glob.glob(os.path.join(ns, "*")):
                subprocess.run(["runc", "--root", ns, "delete", "--force", os.path.basename(cdir)],
                               capture_output=True, check=False)
        for pid in shims + self.shim_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
        # Mounts below the state/root dirs (rootfs overlays, shm, sandbox files).
        with open("/proc/self/mountinfo") as f:
            mps = [l.split()[4] for l in f]
        for mp in sorted((m for m in mps if m.startswith(self.base + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        for root in glob.glob("/sys/fs/cgroup/*") + ["/sys/fs/cgroup"]:
            d = os.path.join(root, self.cgroup_parent.lstrip("/"))
            if os.path.isdir(d):
                for sub in sorted(glob.glob(os.path.join(d, "**", ""), recursive=True), key=len, reverse=True):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
        shutil.rmtree(self.base, ignore_errors=True)
        # The shims' socket directory is fixed (/run/containerd/s); remove it
        # (and /run/containerd) only if empty, i.e. no other containerd uses it.
        for d in ("/run/containerd/s", "/run/containerd"):
            try:
                os.rmdir(d)
            except OSError:
                pass
