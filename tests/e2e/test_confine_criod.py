"""criod confined: no capability in any set, no_new_privs, and a seccomp
allowlist whose refusals fail the call with EPERM and are logged by criod
(and by the kernel)."""
import errno

import confinement


def test_criod_holds_nothing_and_has_a_filter(suite, cri):
    cri.runtime("Version")  # serving, confined
    c = confinement.Confinement(suite.pid("criod"))
    c.assert_holds(set(), no_new_privs=True)
    assert 'msg="confined" caps=0 no_new_privs=1 seccomp=enforce' in suite.log("criod")


def test_criod_filter_refuses_mount_and_logs_it(test_user):
    before = confinement.dmesg_now()
    err, out = confinement.probe_daemon("criod", "mount")
    assert err == errno.EPERM, out
    assert 'msg="seccomp refused a system call" syscall=mount nr=' in out, out
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        assert any(a[0] in confinement.PROBE_PIDS and a[2].endswith("/criod") for a in audits), audits


def test_criod_filter_lets_its_own_calls_through(test_user):
    err, out = confinement.probe_daemon("criod", "getppid")
    assert err == 0, out
    assert "seccomp refused" not in out, out
