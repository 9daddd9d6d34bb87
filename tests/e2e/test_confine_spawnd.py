"""spawnd and conmon confined (issue 14; conmon/spawnd_confine.h). Their
capability bounding sets and seccomp filters pass on to runc and to every
container, so:
  - spawnd keeps every capability when [policy] allows privileged
    containers (this suite's default), and runc's needs, runc's default
    set and allowed_capabilities otherwise (the hardened suite below);
    conmon keeps exactly what spawnd left it; no_new_privs is not set
    (containers would inherit it);
  - they load their filter only where the node lets no container run
    unconfined (hardened.conf): with the default policy an Unconfined or
    privileged container is unconfined (Seccomp 0, as critest checks) and
    a privileged one reaches swapon; on the hardened node spawnd,
    conmon and every container carry the filter, and a call outside it
    fails ENOSYS (spawnd's probe of swapon; the kernel logs it);
  - a setuid-root binary run by uid 1000 in a container that allows
    privilege escalation gains euid 0 (no_new_privs is not inherited).
"""
import errno
import os
import platform
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

def test_spawnd_holds_every_capability_no_nnp_and_no_filter(csuite):
    c = confinement.Confinement(csuite.pid("spawnd"))
    # Privileged containers are allowed here: they get every capability
    # the host has, from spawnd's bounding set through conmon and runc.
    # No no_new_privs: containers would inherit it. No filter: it would be
    # every container's, and this node lets containers run unconfined.
    assert c.bnd == ALL_CAPS and c.eff == ALL_CAPS and not c.inh and not c.amb, c.fields
    assert not c.no_new_privs and c.seccomp == 0, c.fields
    assert 'msg="confined" caps=0xffffffffffffffff no_new_privs=0 seccomp=off' in csuite.log("spawnd")


def test_conmon_holds_what_spawnd_left_it(ctx):
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    cm = confinement.Confinement(the_conmon(c.id))
    assert cm.bnd == ALL_CAPS and cm.eff == ALL_CAPS and not cm.no_new_privs and cm.seccomp == 0, cm.fields
    # An Unconfined container (no profile asked for) is unconfined.
    ctr = confinement.Confinement(c.pid())
    assert ctr.seccomp == 0 and ctr.seccomp_filters == 0, ctr.fields
    assert not ctr.no_new_privs
    d = ctx.run(p, command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.RuntimeDefault))
    ctr = confinement.Confinement(d.pid())
    assert ctr.seccomp == 2 and ctr.seccomp_filters == 1, ctr.fields  # its own profile only


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


def test_hardened_spawnd_filter_refuses_swapon_with_enosys_and_the_kernel_logs_it(test_user):
    before = confinement.dmesg_now()
    err, out = confinement.probe_daemon("spawnd", "swapon", extra=hardened_config())
    assert err == errno.ENOSYS, out
    # ENOSYS comes from the kernel, not from a handler of spawnd's.
    assert "seccomp refused" not in out, out
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        assert any(a[0] in confinement.PROBE_PIDS and a[2].endswith("/spawnd") and a[3] == SYSCALL_NR["swapon"]
                   and a[4] == ERRNO_CODE for a in audits), audits


def test_spawnd_without_unconfined_containers_loads_no_filter_only_when_allowed(test_user):
    # The default policy: no filter, swapon reaches the kernel (EFAULT for
    # zero arguments), not ENOSYS. (init_module cannot tell: a kernel
    # without modules answers ENOSYS itself.)
    err, out = confinement.probe_daemon("spawnd", "swapon")
    assert err not in (0, errno.ENOSYS), out
    assert "seccomp=off" in out, out


def test_spawnd_filter_lets_runc_calls_through(test_user):
    # pivot_root(NULL, NULL) is EFAULT once past the filter.
    err, out = confinement.probe_daemon("spawnd", "pivot_root", extra=hardened_config())
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
    sp.assert_holds(want, no_new_privs=False)
    # No container may be unconfined here, so spawnd carries the filter.
    assert sp.seccomp_filters == 1, sp.fields
    assert "no_new_privs=0 seccomp=enforce" in hsuite.log("spawnd")
    with ctx_of(hsuite, ctr_images) as ctx:
        p = ctx.pod()
        # A non-root container: runc exec enters namespaces of a process
        # of another user (CAP_SYS_PTRACE) and sets its caps and ids.
        c = ctx.run(p, command=SLEEP, sc=sc_of(run_as_user=1000, run_as_group=1000,
                                               seccomp=pb.SecurityProfile.RuntimeDefault))
        cm = confinement.Confinement(the_conmon(c.id))
        cm.assert_holds(want, no_new_privs=False)
        assert cm.seccomp_filters == 2, cm.fields  # spawnd's, inherited, and its own
        # spawnd's and conmon's filters below the container's own profile.
        assert confinement.Confinement(c.pid()).seccomp_filters == 3
        assert c.out("id -u").strip() == "1000"
        # A container can hold no more than the node allows.
        assert confinement.Confinement(c.pid()).bnd <= DEFAULT_CAPS
