"""spawnd, its launcher and conmon confined (issue 14; conmon/spawnd_confine.h,
conmon/spawnd_launch.h). spawnd forks its launcher before it confines
itself; the launcher starts every conmon, so:
  - spawnd, which parses criod's requests, carries a strict filter of its
    own on every node (a call outside it fails ENOSYS; the kernel logs
    it), no_new_privs, and holds runc's needs and runc's default set, its
    bounding set left at the node's bound (criod reads it);
  - the launcher and conmon pass their capability bounding set and filter
    on to runc and to every container: they keep every capability when
    [policy] allows privileged containers (this suite's default), and
    runc's needs, runc's default set and allowed_capabilities otherwise
    (the hardened suite below); no_new_privs is not set on them (containers
    would inherit it);
  - the launcher loads a filter only where the node lets no container run
    unconfined (hardened.conf), and conmon then the same; with the default
    policy conmon loads one suited to its container: none for an
    Unconfined one (Seccomp 0, as critest checks; a privileged one reaches
    swapon), and for a confined one what its own profile may let through
    with conmon's and runc's calls, below the container's own filter; on
    the hardened node the launcher, conmon and every container carry the
    node's filter;
  - a setuid-root binary run by uid 1000 in a container that allows
    privilege escalation gains euid 0 (no_new_privs is not inherited).
"""
import errno
import os
import platform
import select
import signal
import subprocess
import tempfile

import pytest

import confinement
import conftest
import registry as R
from registry import registries  # noqa: F401 - fixture
from test_containers import (SLEEP, build_image, conmon_pids, ctr_images, ctx_of, csuite,  # noqa: F401
                             extra_layer, sc_of, started_suite, IMAGE_ENV, PULL_TIMEOUT)
from conftest import api_pb2 as pb

# "Every capability" is what the suite's daemons start with: the bounding
# set of this process (a test host may lack some).
ALL_CAPS = confinement.Confinement(os.getpid()).bnd
# conmon/spawnd_confine.h SPAWND_RUNC_CAPS
RUNC_CAPS = {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SETPCAP", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_SETUID",
             "CAP_SETGID", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SYS_RESOURCE"}
# common/caps.h CAP_DEFAULT_MASK
DEFAULT_CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
                "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD",
                "CAP_AUDIT_WRITE", "CAP_SETFCAP"}
HARDENED = os.path.join(conftest.ROOT, "packaging", "criod.conf.d", "hardened.conf")
ERRNO_CODE = "0x50000"  # SECCOMP_RET_ERRNO (the audit line leaves out the errno)

# A static probe for the image: "NAME..." makes each call with zero
# arguments and prints "NAME ret errno"; "ids" prints the uid and euid.
PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
static const struct { const char *name; long nr; } calls[] = {
	{"init_module", SYS_init_module}, {"swapon", SYS_swapon}, {"open_by_handle_at", SYS_open_by_handle_at},
	{"getppid", SYS_getppid}, {"mount", SYS_mount},
};
int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "ids") == 0) {
			printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
			continue;
		}
		for (size_t k = 0; k < sizeof(calls) / sizeof(calls[0]); k++) {
			if (strcmp(argv[i], calls[k].name) != 0)
				continue;
			errno = 0;
			long r = syscall(calls[k].nr, 0, 0, 0, 0, 0, 0);
			printf("%s %ld %d\n", argv[i], r, r < 0 ? errno : 0);
		}
	}
	return 0;
}
"""
SYSCALL_NR = {"x86_64": {"init_module": 175, "swapon": 167, "open_by_handle_at": 304},
              "aarch64": {"init_module": 105, "swapon": 224, "open_by_handle_at": 265}}[platform.machine()]


def build_probe():
    with tempfile.TemporaryDirectory() as d:
        src, out = os.path.join(d, "probe.c"), os.path.join(d, "probe")
        with open(src, "w") as f:
            f.write(PROBE_C)
        subprocess.run(["gcc", "-static", "-O2", "-o", out, src], check=True)
        with open(out, "rb") as f:
            return f.read()


@pytest.fixture(scope="module")
def probe_image(csuite, ctr_images):  # noqa: F811
    """The test images plus /bin/probe (root's, setuid) and /bin/probe-plain,
    pushed as <repo>:confine and pulled into the suite."""
    data = build_probe()
    layers = [R.busybox_layer(), extra_layer(),
              R.Layer([R.file("bin/probe", data, mode=0o4755), R.file("bin/probe-plain", data, mode=0o755)])]
    img = build_image(layers, env=IMAGE_ENV, cmd=["/bin/sh"])
    ctr_images.registry.client().push_image(ctr_images.repo, img, tags=("confine",))
    c = csuite.client()
    try:
        got = c.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ctr_images.ref("confine"))),
                      timeout=PULL_TIMEOUT).image_ref
    finally:
        c.close()
    assert got == img.id
    return "confine"


@pytest.fixture
def ctx(csuite, ctr_images):  # noqa: F811
    with ctx_of(csuite, ctr_images) as c:
        yield c


def run(c, *cmd):
    r = c.exec(list(cmd))
    assert r.exit_code == 0, (cmd, r)
    return r.stdout.decode().strip()


def probe_lines(out):
    got = {}
    for line in out.splitlines():
        name, ret, err = line.split()
        got[name] = (int(ret), int(err))
    return got


def filters(pid):
    return confinement.Confinement(pid).seccomp_filters


def the_conmon(cid):
    pids = conmon_pids(cid)
    assert len(pids) == 1, pids
    return pids[0]


# ================================================================ the default suite (privileged allowed)

def launcher_of(spawnd_pid):
    """spawnd's launcher: its one child named spawnd-launcher."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        if st.get("Name") == "spawnd-launcher" and int(st.get("PPid", "0")) == spawnd_pid:
            found.append(int(d))
    assert len(found) == 1, found
    return found[0]


def confined_line(log, comp):
    lines = [l for l in log.splitlines() if " comp=%s " % comp in l and 'msg="confined"' in l]
    assert len(lines) == 1, lines
    return lines[0]


SPAWND_HELD = (RUNC_CAPS | DEFAULT_CAPS) & ALL_CAPS


def test_spawnd_holds_its_own_strict_filter_and_no_new_privs(csuite):
    """spawnd parses criod's requests; no container descends from it (the
    launcher starts conmon), so it carries a filter of its own on every
    node, no_new_privs, and only the capabilities its own work and its
    helpers' (pause, runc delete) take. Its bounding set stays the node's
    bound: criod reads it as a privileged container's capabilities."""
    c = confinement.Confinement(csuite.pid("spawnd"))
    assert c.eff == SPAWND_HELD and c.prm == SPAWND_HELD, c.fields
    assert c.bnd == ALL_CAPS and not c.inh and not c.amb, c.fields
    assert c.no_new_privs and c.seccomp == 2 and c.seccomp_filters == 1, c.fields
    line = confined_line(csuite.log("spawnd"), "spawnd")
    assert 'caps=%#x no_new_privs=1 seccomp=enforce bounding=%#x' % (
        confinement.mask(SPAWND_HELD), confinement.mask(ALL_CAPS)) in line, line


def test_launcher_holds_what_containers_need_and_nothing_of_spawnds(csuite):
    """The launcher, forked before spawnd confined itself: every capability
    (privileged containers are allowed here), no no_new_privs, no filter
    (Unconfined containers are allowed), single-threaded, and no
    descriptor beyond stdio and its socket to spawnd."""
    sp = csuite.pid("spawnd")
    lp = launcher_of(sp)
    c = confinement.Confinement(lp)
    assert c.bnd == ALL_CAPS and c.eff == ALL_CAPS and not c.inh and not c.amb, c.fields
    assert not c.no_new_privs and c.seccomp == 0, c.fields
    assert c.fields["Threads"] == "1", c.fields
    fds = sorted(int(f) for f in os.listdir("/proc/%d/fd" % lp))
    # stdio, its socket to spawnd and, once it started one, its socket to
    # the standby conmon (conmon/conmon_standby.h)
    assert fds in ([0, 1, 2, 3], [0, 1, 2, 3, 4]), fds
    assert all(os.readlink("/proc/%d/fd/%d" % (lp, f)).startswith("socket:") for f in fds[3:])
    line = confined_line(csuite.log("spawnd"), "spawnd-launcher")
    assert 'no_new_privs=0 seccomp=off bounding=%#x' % confinement.mask(ALL_CAPS) in line, line


def test_conmon_holds_what_the_launcher_left_it(ctx, probe_image):
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    cm = confinement.Confinement(the_conmon(c.id))
    assert cm.bnd == ALL_CAPS and cm.eff == ALL_CAPS and not cm.no_new_privs and cm.seccomp == 0, cm.fields
    # An Unconfined container (no profile asked for) is unconfined.
    ctr = confinement.Confinement(c.pid())
    assert ctr.seccomp == 0 and ctr.seccomp_filters == 0, ctr.fields
    assert not ctr.no_new_privs
    # A confined container's conmon loads a filter of what the
    # container's own profile may let through and conmon's and runc's
    # needs (it parses criod's Attach, Exec and Update), below the
    # container's own profile: the container loses nothing by it.
    d = ctx.run(p, image=probe_image, command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.RuntimeDefault))
    dm = confinement.Confinement(the_conmon(d.id))
    assert dm.bnd == ALL_CAPS and not dm.no_new_privs and dm.seccomp == 2 and dm.seccomp_filters == 1, dm.fields
    ctr = confinement.Confinement(d.pid())
    assert ctr.seccomp == 2 and ctr.seccomp_filters == 2, ctr.fields  # conmon's and its own profile
    # A call RuntimeDefault refuses gets the profile's EPERM, not conmon's
    # ENOSYS (the newer filter's errno wins); one it allows passes both.
    got = probe_lines(run(d, "/bin/probe-plain", "swapon", "getppid"))
    assert got["swapon"] == (-1, errno.EPERM), got
    assert got["getppid"][1] == 0 and got["getppid"][0] >= 0, got


def test_privileged_container_is_not_held_by_a_node_filter(ctx, probe_image):
    """Where the node allows privileged containers, no filter of spawnd's
    stands between them and the kernel: swapon and open_by_handle_at (with
    zero arguments: harmless) get the kernel's own answer, not ENOSYS."""
    p = ctx.pod(privileged=True)
    c = ctx.run(p, image=probe_image, command=SLEEP, sc=sc_of(privileged=True))
    st = confinement.Confinement(c.pid())
    assert ALL_CAPS <= st.eff, sorted(ALL_CAPS - st.eff)
    assert st.seccomp == 0, st.fields
    got = probe_lines(run(c, "/bin/probe-plain", "swapon", "open_by_handle_at", "getppid"))
    for name in ("swapon", "open_by_handle_at"):
        assert got[name][0] == -1 and got[name][1] not in (0, errno.ENOSYS), (name, got)
    assert got["getppid"][1] == 0 and got["getppid"][0] >= 0, got


def test_setuid_in_a_container_still_works(ctx, probe_image):
    """allowPrivilegeEscalation (no_new_privs false): uid 1000 runs the
    setuid-root probe and gets euid 0, so no no_new_privs was inherited."""
    p = ctx.pod()
    c = ctx.run(p, image=probe_image, command=SLEEP, sc=sc_of(run_as_user=1000, run_as_group=1000))
    assert not confinement.Confinement(c.pid()).no_new_privs
    assert run(c, "/bin/probe", "ids") == "uid=1000 euid=0"
    assert run(c, "/bin/probe-plain", "ids") == "uid=1000 euid=1000"
    # And with no_new_privs asked for, runc sets it for that container only.
    d = ctx.run(p, image=probe_image, command=SLEEP, sc=sc_of(run_as_user=1000, run_as_group=1000, no_new_privs=True))
    assert confinement.Confinement(d.pid()).no_new_privs
    assert run(d, "/bin/probe", "ids") == "uid=1000 euid=1000"


def hardened_config():
    with open(HARDENED) as f:
        return f.read()


def wait_gone(pid, timeout=20):
    """Wait for pid to be gone (reaped or a zombie); True if it is."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def test_launcher_and_spawnd_live_and_die_together(test_user):
    """No container could start without the launcher, and the launcher
    must not outlive spawnd: killing the launcher stops spawnd (a failure
    exit its supervisor restarts), and killing spawnd kills the launcher
    (PR_SET_PDEATHSIG)."""
    s = conftest.Suite()
    try:
        p = s.start("spawnd")
        lp = launcher_of(p.pid)
        os.kill(lp, signal.SIGKILL)
        assert p.wait(timeout=20) != 0
        s.procs.pop("spawnd")
        assert 'msg="the launcher exited; spawnd stops" pid=%d status=-1 signal=9' % lp in s.log("spawnd")

        p = s.start("spawnd")
        lp = launcher_of(p.pid)
        p.kill()
        p.wait(timeout=20)
        s.procs.pop("spawnd")
        assert wait_gone(lp), "the launcher %d outlived spawnd" % lp
    finally:
        s.cleanup()


@pytest.mark.parametrize("policy", ["default", "hardened"])
def test_spawnd_filter_refuses_swapon_with_enosys_and_the_kernel_logs_it(test_user, policy):
    """On every node: a call outside spawnd's list fails ENOSYS (children
    such as pause and runc delete inherit the filter, and a handler would
    not survive their exec) and the kernel logs it."""
    before = confinement.dmesg_now()
    err, out = confinement.probe_daemon("spawnd", "swapon", extra=hardened_config() if policy == "hardened" else "")
    assert err == errno.ENOSYS, out
    # ENOSYS comes from the kernel, not from a handler of spawnd's.
    assert "seccomp refused" not in out, out
    assert "no_new_privs=1 seccomp=enforce" in out, out
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        assert any(a[0] in confinement.PROBE_PIDS and a[2].endswith("/spawnd") and a[3] == SYSCALL_NR["swapon"]
                   and a[4] == ERRNO_CODE for a in audits), audits


def test_spawnd_filter_lets_runc_calls_through(test_user):
    # pivot_root(NULL, NULL) is EFAULT once past the filter (pause's).
    for extra in ("", hardened_config()):
        err, out = confinement.probe_daemon("spawnd", "pivot_root", extra=extra)
        assert err == errno.EFAULT, out


# ================================================================ a hardened node

@pytest.fixture(scope="module")
def hsuite(test_user, registries, ctr_images):  # noqa: F811
    with open(HARDENED) as f:
        hardened = f.read()
    with started_suite(registries, ctr_images, extra=hardened) as s:
        yield s


def test_hardened_spawnd_and_conmon_hold_runcs_needs_and_the_allowed_caps(hsuite, ctr_images):  # noqa: F811
    want = (RUNC_CAPS | DEFAULT_CAPS) & ALL_CAPS
    sp = confinement.Confinement(hsuite.pid("spawnd"))
    sp.assert_holds(want, no_new_privs=True)
    assert sp.seccomp_filters == 1, sp.fields  # its own
    # No container may be unconfined here, so the launcher carries the
    # filter every container inherits.
    lc = confinement.Confinement(launcher_of(hsuite.pid("spawnd")))
    lc.assert_holds(want, no_new_privs=False)
    assert lc.seccomp_filters == 1, lc.fields
    assert "no_new_privs=0 seccomp=enforce" in confined_line(hsuite.log("spawnd"), "spawnd-launcher")
    with ctx_of(hsuite, ctr_images) as ctx:
        p = ctx.pod()
        # A non-root container: runc exec enters namespaces of a process
        # of another user (CAP_SYS_PTRACE) and sets its caps and ids.
        c = ctx.run(p, command=SLEEP, sc=sc_of(run_as_user=1000, run_as_group=1000,
                                               seccomp=pb.SecurityProfile.RuntimeDefault))
        cm = confinement.Confinement(the_conmon(c.id))
        cm.assert_holds(want, no_new_privs=False)
        assert cm.seccomp_filters == 2, cm.fields  # the launcher's, inherited, and its own
        # The launcher's and conmon's filters below the container's own profile.
        assert confinement.Confinement(c.pid()).seccomp_filters == 3
        assert c.out("id -u").strip() == "1000"
        # A container can hold no more than the node allows.
        assert confinement.Confinement(c.pid()).bnd <= DEFAULT_CAPS
        # The launcher's compiled filter is kept (one policy on this node:
        # one file, root's alone) and the next conmon loads it from there,
        # confined the same.
        cache = os.path.join(hsuite.run_dir, "seccomp")
        kept = os.listdir(cache)
        assert len(kept) == 1 and kept[0].endswith(".bpf"), kept
        st = os.stat(os.path.join(cache, kept[0]))
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600) and os.stat(cache).st_mode & 0o777 == 0o700
        c2 = ctx.run(p, command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.RuntimeDefault))
        cm2 = confinement.Confinement(the_conmon(c2.id))
        cm2.assert_holds(want, no_new_privs=False)
        assert cm2.seccomp_filters == 2, cm2.fields
        assert confinement.Confinement(c2.pid()).seccomp_filters == 3
        assert os.listdir(cache) == kept
