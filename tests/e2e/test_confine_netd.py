"""netd confined: CAP_NET_ADMIN and CAP_SYS_ADMIN only, no_new_privs, and a
seccomp allowlist whose refusals fail the call with EPERM and are logged by
netd (and by the kernel). netd confines itself before it makes anything, so
a probe run leaves no bridge, nftables table, mount or state behind. The
CNI plugins netd runs are root children holding netd's sets and no more."""
import errno
import os
import subprocess
import tempfile

import pytest

import confinement
import conftest
import test_pods
from test_pods import restore_forwarding_sysctls  # noqa: F401 (autouse: the bridge plugin turns on forwarding)

NETD_CAPS = {"CAP_NET_ADMIN", "CAP_SYS_ADMIN"}


def test_netd_holds_net_admin_and_sys_admin_and_has_a_filter(suite, cri):
    cri.runtime("Version")  # netd answered criod's start-up ping: serving, confined
    c = confinement.Confinement(suite.pid("netd"))
    c.assert_holds(NETD_CAPS, no_new_privs=True)
    assert 'msg="confined" caps=0x201000 no_new_privs=1 seccomp=enforce' in suite.log("netd")


def probe_netd(syscall):
    """A probe of netd from a suite of its own, not started; asserts that
    confining made nothing: no bridge, no table, no namespace directory
    (or its mount), no state, before the suite's cleanup would hide it."""
    s = conftest.Suite()
    try:
        err, out = confinement.probe(s.binary("netd"), s.config, syscall)
        link = subprocess.run(["ip", "link", "show", "dev", s.bridge], capture_output=True, text=True)
        assert link.returncode != 0, link.stdout
        table = subprocess.run(["nft", "list", "table", "inet", s.nft_table], capture_output=True, text=True)
        assert table.returncode != 0, table.stdout
        with open("/proc/self/mountinfo") as f:
            mounts = f.read()
        assert s.base not in mounts, [m for m in mounts.splitlines() if s.base in m]
        assert not os.path.exists(os.path.join(s.run_dir, "netns"))
        assert not os.path.exists(os.path.join(s.state_dir, "netd"))
        return err, out
    finally:
        s.cleanup()


def test_netd_filter_refuses_bpf_and_logs_it(test_user):
    # bpf(0, NULL, 0) would be EINVAL if allowed (CAP_SYS_ADMIN counts for
    # CAP_BPF); the filter makes it EPERM.
    before = confinement.dmesg_now()
    err, out = probe_netd("bpf")
    assert err == errno.EPERM, out
    assert 'msg="seccomp refused a system call" syscall=bpf nr=' in out, out
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        assert any(a[0] in confinement.PROBE_PIDS and a[2].endswith("/netd") for a in audits), audits


def test_netd_filter_lets_its_own_calls_through(test_user):
    # unshare(0) changes nothing and succeeds: netd's own list (not the
    # base one) has it, for the pods' namespaces.
    err, out = probe_netd("unshare")
    assert err == 0, out
    assert "seccomp refused" not in out, out


# A wrapper in front of the bridge plugin records the status of the process
# netd started (the shell, $$) before it becomes the plugin; with builtins
# only: it runs under netd's filter, which has no vfork for the shell.
WRAPPER = """#!/bin/sh
while IFS= read -r line; do printf '%%s\\n' "$line"; done < /proc/$$/status > "%(out)s"
exec %(real)s
"""


@pytest.fixture(scope="module")
def cni_wrapped_suite(test_user):
    for plugin in ("bridge", "host-local", "portmap"):
        if not os.path.exists(os.path.join(test_pods.CNI_BIN, plugin)):
            pytest.skip("containernetworking-plugins is not installed (scripts/deps installs it)")
    with tempfile.TemporaryDirectory(prefix="criod-e2e-cni-wrap-") as wrap:
        status_file = os.path.join(wrap, "bridge.status")
        with open(os.path.join(wrap, "bridge"), "w") as f:
            f.write(WRAPPER % {"out": status_file, "real": os.path.join(test_pods.CNI_BIN, "bridge")})
        os.chmod(os.path.join(wrap, "bridge"), 0o755)
        # The wrapper first, then the real plugins (host-local, portmap).
        with test_pods.pod_suite(cni=True, cni_bin_dirs="%s:%s" % (wrap, test_pods.CNI_BIN)) as s:
            s.start_all()
            s.plugin_status = status_file
            yield s


def test_cni_plugins_hold_netds_capabilities_and_its_filter(cni_wrapped_suite):
    s = cni_wrapped_suite
    with test_pods.pods_of(s) as ps:
        p = ps.run()
        assert p.ip, "no address"
        with open(s.plugin_status) as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        caps = {k: confinement.cap_set(int(fields[k].strip(), 16)) for k in ("CapEff", "CapPrm", "CapBnd")}
        assert caps == {k: NETD_CAPS for k in caps}, caps
        assert confinement.cap_set(int(fields["CapInh"].strip(), 16)) == set()
        assert confinement.cap_set(int(fields["CapAmb"].strip(), 16)) == set()
        assert fields["NoNewPrivs"].strip() == "1"
        assert fields["Seccomp"].strip() == "2"
        test_pods.remove(ps.cri, p.id)
        assert test_pods.leftovers(s, ps.cri, p.id, [p.ip], p.ports, p.pause) == []
