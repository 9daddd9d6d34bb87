"""End-to-end fixtures: the real daemons, started from the build tree in a
private directory with their own sockets and state, and a real gRPC client
(Debian's python3-grpcio) whose message classes protoc generates from proto/
at test time.

Environment:
  CRIOD_BUILD_DIR  build tree holding criod, imaged, netd, spawnd (default: build)
  CRIOD_SANITIZERS set to 1 when the binaries are an ASan/UBSan build
"""
import atexit
import glob
import importlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import pytest

import confinement

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("CRIOD_BUILD_DIR", os.path.join(ROOT, "build")))
SANITIZERS = os.environ.get("CRIOD_SANITIZERS") == "1"
TEST_USER = "criodtest"
DAEMONS = ("imaged", "netd", "spawnd")
LOG_LINE = re.compile(
    r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z comp=(criod|imaged|imaged-fetch|netd|spawnd|spawnd-launcher|conmon) '
    r'level=(debug|info|warn|error) req=\S+ msg="(?:[^"\\]|\\.)*"( .*)?$')
# The first line of an ASan, LSan or UBSan report.
SANITIZER_LINE = re.compile(r"==\d+==ERROR: \w+Sanitizer|^SUMMARY: \w+Sanitizer|^\w+Sanitizer:DEADLYSIGNAL$|: runtime error: ")


# ---------------------------------------------------------------- protobufs

def _generate_protos():
    out = tempfile.mkdtemp(prefix="criod-pb-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + out,
                    "cri/api.proto", "internal/envelope.proto", "internal/imaged.proto"], check=True)
    sys.path.insert(0, out)
    api = importlib.import_module("cri.api_pb2")
    envelope = importlib.import_module("internal.envelope_pb2")
    imaged = importlib.import_module("internal.imaged_pb2")
    return out, api, envelope, imaged


_PB_DIR, api_pb2, envelope_pb2, imaged_pb2 = _generate_protos()


@pytest.fixture(scope="session")
def pb():
    return api_pb2


@pytest.fixture(scope="session")
def envpb():
    return envelope_pb2


@pytest.fixture(scope="session")
def imgpb():
    return imaged_pb2


class CriClient:
    """Calls any RPC of runtime.v1 by name through a real gRPC channel."""

    def __init__(self, socket_path):
        self.channel = grpc.insecure_channel(
            "unix:" + socket_path,
            options=[("grpc.max_receive_message_length", 32 << 20),
                     ("grpc.max_send_message_length", 32 << 20)])

    @staticmethod
    def method(service, name):
        return api_pb2.DESCRIPTOR.services_by_name[service].methods_by_name[name]

    def call(self, service, name, request=None, timeout=10, metadata=None):
        m = self.method(service, name)
        req_cls = getattr(api_pb2, m.input_type.name)
        resp_cls = getattr(api_pb2, m.output_type.name)
        path = "/runtime.v1.%s/%s" % (service, name)
        if m.server_streaming:
            stub = self.channel.unary_stream(path, request_serializer=req_cls.SerializeToString,
                                             response_deserializer=resp_cls.FromString)
            return list(stub(request if request is not None else req_cls(), timeout=timeout,
                             metadata=metadata))
        stub = self.channel.unary_unary(path, request_serializer=req_cls.SerializeToString,
                                        response_deserializer=resp_cls.FromString)
        return stub(request if request is not None else req_cls(), timeout=timeout, metadata=metadata)

    def raw(self, path, payload, timeout=10):
        """Send arbitrary bytes as the request message."""
        stub = self.channel.unary_unary(path, request_serializer=lambda b: b,
                                        response_deserializer=lambda b: b)
        return stub(payload, timeout=timeout)

    def runtime(self, name, request=None, **kw):
        return self.call("RuntimeService", name, request, **kw)

    def image(self, name, request=None, **kw):
        return self.call("ImageService", name, request, **kw)

    def close(self):
        self.channel.close()


# ---------------------------------------------------------------- the suite

def _ensure_user():
    """A dedicated unprivileged user for criod; removed again if we made it."""
    try:
        pwd.getpwnam(TEST_USER)
        return False
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", TEST_USER], check=True)
        return True


class Suite:
    def __init__(self, extra_config=""):
        self.base = tempfile.mkdtemp(prefix="criod-e2e-")
        os.chmod(self.base, 0o755)
        self.run_dir = os.path.join(self.base, "run")
        self.state_dir = os.path.join(self.base, "state")
        self.log_dir = os.path.join(self.base, "log")
        os.makedirs(self.log_dir)
        self.config = os.path.join(self.base, "criod.conf")
        self.log_root = os.path.join(self.base, "podlogs")
        os.makedirs(self.log_root)
        # Sanitizer reports of every process of the suite, conmon's too
        # (CRIOD_SANITIZERS=1): any file here fails the suite.
        self.sanitizer_dir = os.path.join(self.base, "sanitizer")
        os.makedirs(self.sanitizer_dir)
        os.chmod(self.sanitizer_dir, 0o1777)  # criod runs as the test user
        # Host-wide names netd and spawnd would otherwise use (criod0,
        # 10.88.0.0/16, table criod, /criod) are made unique per suite and
        # removed again in cleanup(); extra_config may override them.
        tag = os.urandom(3).hex()
        self.bridge = "crds" + tag
        self.nft_table = "criod_s_" + tag
        self.cgroup_parent = "/criod-suite-" + tag
        self.subnet = "10.216.%d.0/24" % (int(tag[:2], 16))
        with open(self.config, "w") as f:
            f.write("[paths]\nrun_dir = %s\nstate_dir = %s\n[log]\nlevel = debug\n"
                    "[criod]\nuser = %s\n" % (self.run_dir, self.state_dir, TEST_USER))
            f.write("[netd]\nbridge = %s\nsubnet = %s\nnft_table = %s\n"
                    "[pods]\ndefault_cgroup_parent = %s\n" % (self.bridge, self.subnet, self.nft_table,
                                                             self.cgroup_parent))
            # Container logs only beneath <base>/podlogs (the tests' pods
            # put their log_directory there), as kubelet's beneath
            # /var/log/pods.
            f.write("[policy]\nlog_roots = %s\n" % self.log_root)
            # More sections (e.g. [registry.HOST]) for tests that need them.
            f.write(extra_config)
        self.socket = os.path.join(self.run_dir, "criod.sock")
        self.procs = {}
        self.logs = {}
        # More environment for one daemon: {"imaged": {"http_proxy": ...}}.
        self.daemon_env = {}
        self.failures = []
        # The kernel's seccomp audit lines so far: check_logs fails on any
        # later one from a process of this suite (a feature that needed a
        # call its filter refuses).
        self.dmesg_seen = confinement.dmesg_now()

    def binary(self, name):
        return os.path.join(BUILD, "conmon" if name in ("spawnd", "spawnd-launcher") else name, name)

    def sock(self, name):
        return os.path.join(self.run_dir, name + ".sock")

    def start(self, name, extra_args=(), preexec_fn=None, extra_env=None):
        assert name not in self.procs, name + " already running"
        log = open(os.path.join(self.log_dir, name + ".log"), "ab")
        self.logs[name] = log.name
        start_offset = log.tell()
        env = dict(os.environ)
        asan = "detect_leaks=1:abort_on_error=0:exitcode=66"
        ubsan = "print_stacktrace=1:halt_on_error=1:exitcode=67"
        if SANITIZERS:
            # Reports to files check_logs reads: the daemons' go to stderr
            # too, but conmon's stderr is a file in its state directory
            # (the sanitizer build passes these settings on to conmon).
            asan += ":log_path=" + os.path.join(self.sanitizer_dir, "asan")
            ubsan += ":log_path=" + os.path.join(self.sanitizer_dir, "ubsan")
        env.setdefault("ASAN_OPTIONS", asan)
        env.setdefault("UBSAN_OPTIONS", ubsan)
        env.update(self.daemon_env.get(name, {}))
        env.update(extra_env or {})
        p = subprocess.Popen([self.binary(name), "--config", self.config, *extra_args],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, preexec_fn=preexec_fn)
        log.close()
        self.procs[name] = p
        self.wait_ready(name, start_offset)
        return p

    def wait_ready(self, name, offset, timeout=15):
        """Wait for this run's "ready" line (the log may hold earlier runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.procs[name]
            if p.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (name, p.returncode, self.log(name)))
            if 'msg="ready"' in self.log(name)[offset:]:
                return
            time.sleep(0.02)
        raise RuntimeError("%s did not come up:\n%s" % (name, self.log(name)))

    def stop(self, name, sig=signal.SIGTERM, check=True):
        p = self.procs.pop(name)
        if p.poll() is None:
            p.send_signal(sig)
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
            self.failures.append("%s did not stop on %s" % (name, sig))
        if check and sig == signal.SIGTERM and rc != 0:
            self.failures.append("%s exited %s on SIGTERM:\n%s" % (name, rc, self.log(name)[-4000:]))
        return rc

    def restart(self, name):
        self.stop(name)
        return self.start(name)

    def log(self, name):
        with open(self.logs[name], "r", errors="replace") as f:
            return f.read()

    def log_has(self, name, text):
        try:
            return text in self.log(name)
        except FileNotFoundError:
            return False

    def pid(self, name):
        return self.procs[name].pid

    def client(self):
        return CriClient(self.socket)

    def start_all(self):
        for d in DAEMONS:
            self.start(d)
        self.start("criod")

    def stop_all(self):
        for name in ["criod", *DAEMONS]:
            if name in self.procs:
                self.stop(name)

    def check_logs(self):
        """Every line every daemon wrote must be in the shared format, and
        no process of the suite (conmon included) wrote a sanitizer report."""
        for path in sorted(glob.glob(os.path.join(self.sanitizer_dir, "*"))):
            with open(path, "r", errors="replace") as f:
                self.failures.append("sanitizer report %s:\n%s" % (os.path.basename(path), f.read()[:8000]))
        for name, path in list(self.logs.items()) + self.conmon_logs():
            with open(path, "r", errors="replace") as f:
                lines = f.read().split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            for i, line in enumerate(lines):
                if 'msg="seccomp refused a system call"' in line:
                    self.failures.append("%s: a call its seccomp filter refuses: %s" % (name, line))
                if not LOG_LINE.match(line) and any(SANITIZER_LINE.search(x) for x in lines[i:i + 3]):
                    self.failures.append("%s: a sanitizer report in %s:\n%s" % (name, path, "\n".join(lines[i:i + 40])))
                    break
                if not LOG_LINE.match(line):
                    # Say what followed too: a sanitizer report starts with
                    # an empty line.
                    self.failures.append("%s log line not in the shared format: %r, then:\n%s"
                                         % (name, line, "\n".join(lines[i + 1:i + 40])))
                    break

        self.check_seccomp_audits()

    def conmon_logs(self):
        """conmon's own logs, (name, path): its stdout and stderr, where a
        report of a build whose sanitizers have no log_path lands. Only
        those of containers still on disk: a removed container's goes with
        its directory; the sanitizer build sends every conmon's reports to
        sanitizer_dir instead (common/spawn.c passes ASAN_OPTIONS on)."""
        return [("conmon " + os.path.basename(os.path.dirname(p)), p) for p in
                sorted(glob.glob(os.path.join(self.state_dir, "spawnd", "containers", "*", "conmon.log")))]

    def check_seccomp_audits(self):
        """No call of this suite's daemons, helpers, monitors or runtime was
        refused by a filter of ours (the kernel logs each: the filters set
        SECCOMP_FILTER_FLAG_LOG). Containers' own profiles log nothing."""
        if self.dmesg_seen is None:
            return
        # runc runs as a sealed memfd copy of itself (CVE-2019-5736)
        ours = (BUILD + "/", "/usr/sbin/runc", "/usr/bin/runc", "/memfd:runc_cloned")
        for pid, comm, exe, nr, code in confinement.seccomp_audits(confinement.dmesg_since(self.dmesg_seen)):
            if pid in confinement.PROBE_PIDS or not exe.startswith(ours):
                continue
            self.failures.append("seccomp refused syscall %d (action %s) in %s (%s, pid %d)"
                                 % (nr, code, comm, exe, pid))

    def cleanup(self):
        self.stop_all()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        subprocess.run(["nft", "delete", "table", "inet", self.nft_table], capture_output=True, check=False)
        for root in glob.glob("/sys/fs/cgroup/*") + ["/sys/fs/cgroup"]:
            d = os.path.join(root, self.cgroup_parent.lstrip("/"))
            if os.path.isdir(d):
                for sub in sorted(glob.glob(os.path.join(d, "**", ""), recursive=True), key=len, reverse=True):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def test_user():
    made = _ensure_user()
    yield pwd.getpwnam(TEST_USER)
    if made:
        subprocess.run(["userdel", TEST_USER], check=False)


@pytest.fixture(scope="session")
def suite(test_user):
    s = Suite()
    try:
        s.start_all()
        yield s
        s.stop_all()
        s.check_logs()
        assert not s.failures, "\n".join(s.failures)
    finally:
        s.cleanup()


@pytest.fixture
def fresh_suite(test_user):
    """A suite of its own for tests that break or restart daemons."""
    s = Suite()
    try:
        yield s
        s.stop_all()
        s.check_logs()
        assert not s.failures, "\n".join(s.failures)
    finally:
        s.cleanup()


@pytest.fixture
def cri(suite):
    c = suite.client()
    yield c
    c.close()


def unix_connect(path, timeout=5):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def recv_all(s, limit=1 << 20):
    """Read until the peer closes the connection (EOF or a reset) and return
    what it sent; a peer that is still silent after the socket's timeout has
    not closed, and that fails the test."""
    data = b""
    try:
        while len(data) < limit:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        raise AssertionError("the peer did not close the connection within %ss (got %d bytes)"
                             % (s.gettimeout(), len(data)))
    raise AssertionError("the peer sent more than %d bytes without closing" % limit)
