"""What the confinement tests share: a process's capability sets,
no_new_privs and seccomp mode from /proc/<pid>/status, the capability names
of a mask, the kernel's seccomp audit lines (dmesg), and a probe run of a
daemon binary (--confine-probe) that shows a call outside its filter is
refused and logged."""
import re
import subprocess

import conftest

# The pids of probe runs: their refused calls are the point, so the suites'
# check for refused calls (conftest.Suite.check_logs) leaves them out.
PROBE_PIDS = set()

CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]


def cap_set(mask):
    """The names of the capabilities in a CapXxx mask."""
    return {n for i, n in enumerate(CAP_NAMES) if mask >> i & 1}


class Confinement:
    def __init__(self, pid):
        self.pid = pid
        fields = {}
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        self.fields = fields
        self.eff = cap_set(int(fields["CapEff"], 16))
        self.prm = cap_set(int(fields["CapPrm"], 16))
        self.inh = cap_set(int(fields["CapInh"], 16))
        self.bnd = cap_set(int(fields["CapBnd"], 16))
        self.amb = cap_set(int(fields.get("CapAmb", "0"), 16))
        self.no_new_privs = fields["NoNewPrivs"] == "1"
        self.seccomp = int(fields["Seccomp"])  # 2: a filter
        self.seccomp_filters = int(fields.get("Seccomp_filters", "0"))

    def assert_holds(self, caps, no_new_privs):
        """Exactly caps in effective, permitted and bounding; nothing
        inheritable or ambient; a seccomp filter."""
        caps = set(caps)
        assert self.eff == caps, "effective %s, want %s" % (sorted(self.eff), sorted(caps))
        assert self.prm == caps, "permitted %s, want %s" % (sorted(self.prm), sorted(caps))
        assert self.bnd == caps, "bounding %s, want %s" % (sorted(self.bnd), sorted(caps))
        assert not self.inh, "inheritable %s" % sorted(self.inh)
        assert not self.amb, "ambient %s" % sorted(self.amb)
        assert self.no_new_privs == no_new_privs, "NoNewPrivs %s" % self.fields["NoNewPrivs"]
        assert self.seccomp == 2, "Seccomp %d (no filter)" % self.seccomp


def mask(names):
    """The capability names as a bit mask."""
    return sum(1 << CAP_NAMES.index(n) for n in names)


AUDIT = re.compile(r'audit: type=1326 .* pid=(\d+) comm="([^"]*)" exe="([^"]*)" .* syscall=(\d+) .* '
                   r'code=(0x[0-9a-f]+)')


STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]")


def dmesg_lines():
    r = subprocess.run(["dmesg"], capture_output=True, text=True)
    return r.stdout.splitlines() if r.returncode == 0 else None


def dmesg_now():
    """The stamp of the kernel's newest line (None: dmesg is not readable)."""
    lines = dmesg_lines()
    if lines is None:
        return None
    for line in reversed(lines):
        m = STAMP.match(line)
        if m:
            return float(m.group(1))
    return 0.0


def dmesg_since(stamp):
    """The kernel's lines after stamp (the ring may have dropped older ones)."""
    out = []
    for line in dmesg_lines() or []:
        m = STAMP.match(line)
        if m and float(m.group(1)) > stamp:
            out.append(line)
    return out


def seccomp_audits(lines):
    """(pid, comm, exe, syscall, code) of each kernel seccomp audit line."""
    out = []
    for line in lines:
        m = AUDIT.search(line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3), int(m.group(4)), m.group(5)))
    return out


def probe(binary, config, syscall, extra_args=()):
    """Run a daemon binary so it confines itself as it does at start, then
    makes syscall with zero arguments: (errno the call got, its log)."""
    p = subprocess.Popen([binary, "--config", config, "--confine-probe=" + syscall, *extra_args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    PROBE_PIDS.add(p.pid)
    out, _ = p.communicate(timeout=30)
    assert p.returncode == 0, "probe exited %s:\n%s" % (p.returncode, out)
    m = re.search(r'msg="confine probe" syscall=%s nr=\d+ ret=(-?\d+) errno=(\d+)' % re.escape(syscall), out)
    assert m, "no probe result in:\n" + out
    for line in out.splitlines():
        assert conftest.LOG_LINE.match(line), "not in the shared log format: %r" % line
    return int(m.group(2)), out


def probe_daemon(name, syscall, extra=""):
    """probe() of one daemon of a suite of its own, not started (its own run
    directory, bridge, nft table and cgroup names; extra: more config),
    removed afterwards."""
    s = conftest.Suite(extra_config=extra)
    try:
        return probe(s.binary(name), s.config, syscall)
    finally:
        s.cleanup()
