"""imaged and its per-pull helper imaged-fetch confined.

imaged keeps the capabilities of its store and mounts, no_new_privs and a
seccomp allowlist. imaged-fetch, which parses registry bytes, holds least:
only the capabilities writing a layer takes, no_new_privs, a filter of its
own stacked on imaged's, only the fds imaged hands it, and a mount
namespace of its own whose root is a read-only tmpfs holding the few files
it reads by name (CA bundle, resolver files). A layer with device nodes,
setuid files, file capabilities, opaque directories and owners other than
root still unpacks right."""
import errno
import os
import signal
import stat
import struct

import conftest
import confinement
import pytest
import registry as R
from registry import fault_proxy, registries  # noqa: F401 - fixtures
from test_images import (fetch_helpers, ident, mounted_rootfs, publish, pull, pull_in_background, registry_suite,
                         remove, tok, wait_for)

IMAGED_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETPCAP", "CAP_SYS_ADMIN",
               "CAP_MKNOD", "CAP_SETFCAP"}
FETCH_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_MKNOD", "CAP_SETFCAP"}


def mask(names):
    return sum(1 << confinement.CAP_NAMES.index(n) for n in names)


@pytest.fixture(scope="module")
def rsuite(test_user, registries):  # noqa: F811
    with registry_suite(registries) as s:
        s.start_all()
        yield s


def fetch_binary(suite):
    return os.path.join(os.path.dirname(suite.binary("imaged")), "imaged-fetch")


def test_imaged_holds_its_named_caps_and_a_filter(rsuite):
    c = confinement.Confinement(rsuite.pid("imaged"))
    c.assert_holds(IMAGED_CAPS, no_new_privs=True)
    assert 'msg="confined" caps=%#x no_new_privs=1 seccomp=enforce' % mask(IMAGED_CAPS) in rsuite.log("imaged")


def test_fetch_helper_during_a_pull_holds_least(rsuite, registries, fault_proxy):  # noqa: F811
    """Caught mid-pull (stopped for a moment, as the stall test does): the
    helper's capability sets, NoNewPrivs, two stacked filters (imaged's and
    its own), a mount namespace that is not imaged's, an empty network
    namespace, a root that is the
    read-only view, and no fd but stdio, its channels, the layer directory
    and its network sockets."""
    t = tok()
    content = os.urandom(6 << 20)
    layer = R.Layer([R.file("conf-" + t, content)], "none")
    img = R.make_image([layer, ident(t)])
    ref = "%s/%s:v1" % (fault_proxy.host, publish(registries.plain, img, "confine"))
    imaged = rsuite.pid("imaged")
    c = rsuite.client()
    fault_proxy.throttle(2 << 20)
    try:
        th, errors = pull_in_background(c, ref)
        wait_for(lambda: fault_proxy.bytes_sent(layer.digest) > (1 << 20), "the pull never got going")
        helpers = fetch_helpers(imaged)
        assert len(helpers) == 1, helpers
        pid = helpers[0]
        os.kill(pid, signal.SIGSTOP)
        try:
            conf = confinement.Confinement(pid)
            fds = {}
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except FileNotFoundError:
                    pass
            ns_mnt = os.readlink("/proc/%d/ns/mnt" % pid)
            ns_net = os.readlink("/proc/%d/ns/net" % pid)
            with open("/proc/%d/net/dev" % pid) as f:
                links = [line.split(":")[0].strip() for line in f.readlines()[2:]]
            root_entries = set(os.listdir("/proc/%d/root" % pid))
            has_shadow = os.path.exists("/proc/%d/root/etc/shadow" % pid)
            has_cas = os.path.exists("/proc/%d/root/etc/ssl/certs/ca-certificates.crt" % pid)
            with open("/proc/%d/mountinfo" % pid) as f:
                mounts = [line.split() for line in f]
        finally:
            os.kill(pid, signal.SIGCONT)
        th.join(120)
        assert not th.is_alive() and errors == [], errors
    finally:
        fault_proxy.throttle(None)
        c.close()

    conf.assert_holds(FETCH_CAPS, no_new_privs=True)
    assert conf.seccomp_filters == 2, conf.fields.get("Seccomp_filters")  # imaged's, then its own
    assert ns_mnt != os.readlink("/proc/%d/ns/mnt" % imaged)
    # No network of its own: an empty namespace (lo only, down); its
    # connections are sockets imaged made (FetchConnect).
    assert ns_net != os.readlink("/proc/%d/ns/net" % imaged)
    assert links == ["lo"], links
    # The root is the view: a read-only tmpfs with the files it reads, no host tree.
    root = [m for m in mounts if m[4] == "/"]
    assert len(root) == 1, mounts
    sep = root[0].index("-")
    assert root[0][sep + 1] == "tmpfs" and "ro" in root[0][5].split(","), root[0]
    assert root_entries <= {"etc", "usr", "proc", "tmp"}, root_entries
    assert not has_shadow and "var" not in root_entries
    assert has_cas or not os.path.exists("/etc/ssl/certs/ca-certificates.crt")
    # Every fd: stdio, a socket (channels to imaged, the registry), curl's
    # wakeup pipe or eventfd, or the layer directory imaged passed (and the
    # file being written in it).
    channels = [fd for fd, t in fds.items() if 3 <= fd < 3 + 8 and t.startswith("socket:")]
    assert 3 in channels, fds
    imaged_root = os.path.join(rsuite.state_dir, "imaged")
    for fd, target in fds.items():
        if fd <= 2:
            continue
        ok = target.startswith("socket:") or target.startswith("pipe:") or target == "anon_inode:[eventfd]" or \
            (target.startswith(imaged_root + "/tmp/") and "/diff" in target[len(imaged_root):])
        assert ok, (fd, target, fds)
    c = rsuite.client()
    try:
        assert pull(c, ref) == img.id  # already there
        remove(c, img.id)
    finally:
        c.close()


def test_imaged_probe_refuses_kexec_load_and_logs_it(test_user):
    before = confinement.dmesg_now()
    err, out = confinement.probe_daemon("imaged", "kexec_load")
    assert err == errno.EPERM, out
    assert 'msg="seccomp refused a system call" syscall=kexec_load nr=' in out, out
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        assert any(a[0] in confinement.PROBE_PIDS and a[2].endswith("/imaged") for a in audits), audits


def test_imaged_probe_lets_mount_through(test_user):
    # mount with zero arguments reaches the kernel, which faults on the NULL target.
    err, out = confinement.probe_daemon("imaged", "mount")
    assert err == errno.EFAULT, out
    assert "seccomp refused" not in out, out


def fetch_probe(syscall):
    s = conftest.Suite()
    try:
        return confinement.probe(fetch_binary(s), s.config, syscall)
    finally:
        s.cleanup()


def test_fetch_probe_refuses_mount_and_unshare_and_logs_it(test_user):
    """The probe confines exactly as a pull's helper does (fds, view, caps,
    filter, empty network namespace), before it would serve its channels.
    The refusal is logged by the helper's SIGSYS handler; the kernel logs
    nothing for this filter, whose connect no-op (ERRNO 0 on the sockets
    imaged connected) it would otherwise log on every connection."""
    before = confinement.dmesg_now()
    for call in ("mount", "unshare", "ptrace" if not conftest.SANITIZERS else "setns"):
        err, out = fetch_probe(call)
        assert err == errno.EPERM, out
        assert 'msg="seccomp refused a system call" syscall=%s nr=' % call in out, out
        assert 'msg="confined" caps=%#x no_new_privs=1 seccomp=enforce' % mask(FETCH_CAPS) in out, out
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        assert not any(a[0] in confinement.PROBE_PIDS and a[2].endswith("/imaged-fetch") for a in audits), audits


def test_fetch_probe_lets_its_own_calls_through(test_user):
    err, out = fetch_probe("getppid")
    assert err == 0, out
    assert "seccomp refused" not in out, out


def vfs_cap_v2(permitted, effective=True):
    """A security.capability value (VFS_CAP_REVISION_2)."""
    return struct.pack("<IIIII", 0x02000000 | (1 if effective else 0), permitted & 0xffffffff, 0,
                       permitted >> 32, 0)


def test_layer_with_devices_setuid_file_caps_and_owners_unpacks_confined(rsuite, registries):  # noqa: F811
    """What the helper's capabilities are for: owners (CHOWN), modes of files
    it no longer owns (FOWNER), setgid for a group it is not in (FSETID),
    device nodes (MKNOD), file capabilities (SETFCAP), directories it may
    not write (DAC_OVERRIDE); opaque directories are marked by imaged."""
    t = tok()
    cap = vfs_cap_v2(1 << 13)  # cap_net_raw+ep
    capval = cap.decode("utf-8", "surrogateescape")
    lower = [R.file("opq/old-" + t, "old"), R.file("id-" + t, t)]
    upper = [R.file("bin/ping-" + t, "#!/bin/sh\n", mode=0o755, uid=0, gid=0,
                    xattrs={"security.capability": capval}),
             R.file("bin/su-" + t, "#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678),
             R.file("bin/sg-" + t, "x", mode=0o2711, uid=4321, gid=42),
             R.directory("locked", mode=0o555, uid=1000, gid=1000),
             R.file("locked/inside", "x", mode=0o400, uid=1000, gid=1000),
             R.chardev("dev/null-" + t, 1, 3, mode=0o666),
             R.blockdev("dev/loop-" + t, 7, 0, mode=0o660),
             R.opaque("opq"),
             R.file("opq/new-" + t, "new")]
    img = R.make_image([R.busybox_layer("gzip"), lower, upper])
    ref = "%s/%s:v1" % (registries.plain.host, publish(registries.plain, img, "confcaps"))
    c = rsuite.client()
    try:
        assert pull(c, ref) == img.id
        with mounted_rootfs(rsuite, img.id, "d" * 64) as m:
            r = m.rootfs
            p = os.path.join(r, "bin/ping-" + t)
            assert os.getxattr(p, "security.capability", follow_symlinks=False) == cap
            st = os.lstat(os.path.join(r, "bin/su-" + t))
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o4755, 1234, 5678)
            st = os.lstat(os.path.join(r, "bin/sg-" + t))
            assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o2711, 4321, 42)
            st = os.lstat(os.path.join(r, "locked"))
            assert (st.st_mode & 0o7777, st.st_uid) == (0o555, 1000)
            st = os.lstat(os.path.join(r, "locked/inside"))
            assert (st.st_mode & 0o7777, st.st_uid) == (0o400, 1000)
            st = os.lstat(os.path.join(r, "dev/null-" + t))
            assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
            st = os.lstat(os.path.join(r, "dev/loop-" + t))
            assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 0)
            assert sorted(os.listdir(os.path.join(r, "opq"))) == ["new-" + t]  # the opaque dir hides old-
        remove(c, img.id)
    finally:
        c.close()
