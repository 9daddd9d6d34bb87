"""spawnd and conmon confined (issue 14; conmon/spawnd_confine.h). Their
capability bounding sets and seccomp filters pass on to runc and to every
container, so:
  - spawnd keeps every capability when [policy] allows privileged
    containers (this suite's default), and runc's needs, runc's default
    set and allowed_capabilities otherwise (the hardened suite below);
    conmon keeps exactly what spawnd left it; no_new_privs is not set
    (containers would inherit it), a filter is;
  - their filter fails a call outside it with ENOSYS (the kernel logs it):
    spawnd's probe of init_module; and inside a privileged container,
    whose own profile is Unconfined, init_module, swapon and
    open_by_handle_at fail ENOSYS (host-kernel calls no container gets)
    while getppid and mount pass;
  - a container process carries spawnd's and conmon's filters below its
    own (Seccomp_filters), and a setuid-root binary run by uid 1000 in a
    container that allows privilege escalation gains euid 0 (no_new_privs
    is not inherited).
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

def test_spawnd_holds_every_capability_no_nnp_and_a_filter(csuite):
    c = confinement.Confinement(csuite.pid("spawnd"))
    # Privileged containers are allowed here: they get every capability
    # the host has, from spawnd's bounding set through conmon and runc.
    # No no_new_privs: containers would inherit it.
    c.assert_holds(ALL_CAPS, no_new_privs=False)
    assert c.seccomp_filters == 1, c.fields
    assert 'msg="confined" caps=0xffffffffffffffff no_new_privs=0 seccomp=enforce' in csuite.log("spawnd")


def test_conmon_holds_what_spawnd_left_it(ctx):
    p = ctx.pod()
    c = ctx.run(p, command=SLEEP)
    cm = confinement.Confinement(the_conmon(c.id))
    cm.assert_holds(ALL_CAPS, no_new_privs=False)
    # spawnd's filter, inherited, and conmon's own (the same list).
    assert cm.seccomp_filters == 2, cm.fields
    # The container (Unconfined here: no profile asked for) carries both.
    ctr = confinement.Confinement(c.pid())
    assert ctr.seccomp == 2 and ctr.seccomp_filters == 2, ctr.fields
    assert not ctr.no_new_privs
    d = ctx.run(p, command=SLEEP, sc=sc_of(seccomp=pb.SecurityProfile.RuntimeDefault))
    ctr = confinement.Confinement(d.pid())
    assert ctr.seccomp_filters == 3, ctr.fields  # its own profile on top


def test_privileged_container_cannot_call_host_kernel_calls(ctx, probe_image):
    before = confinement.dmesg_now()
    p = ctx.pod(privileged=True)
    c = ctx.run(p, image=probe_image, command=SLEEP, sc=sc_of(privileged=True))
    st = confinement.Confinement(c.pid())
    assert ALL_CAPS <= st.eff, sorted(ALL_CAPS - st.eff)  # the capabilities are there
    got = probe_lines(run(c, "/bin/probe-plain", "init_module", "swapon", "open_by_handle_at", "getppid"))
    for name in ("init_module", "swapon", "open_by_handle_at"):
        assert got[name] == (-1, errno.ENOSYS), (name, got)
    assert got["getppid"][1] == 0 and got["getppid"][0] >= 0, got
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        seen = {(a[3], a[4]) for a in audits if a[2].endswith("/probe-plain")}
        for name in ("init_module", "swapon", "open_by_handle_at"):
            assert (SYSCALL_NR[name], ERRNO_CODE) in seen, (name, audits)


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


def test_spawnd_filter_refuses_init_module_with_enosys_and_the_kernel_logs_it(test_user):
    before = confinement.dmesg_now()
    err, out = confinement.probe_daemon("spawnd", "init_module")
    assert err == errno.ENOSYS, out
    # ENOSYS comes from the kernel, not from a handler of spawnd's.
    assert "seccomp refused" not in out, out
    if before is not None:
        audits = confinement.seccomp_audits(confinement.dmesg_since(before))
        assert any(a[0] in confinement.PROBE_PIDS and a[2].endswith("/spawnd") and a[3] == SYSCALL_NR["init_module"]
                   and a[4] == ERRNO_CODE for a in audits), audits


def test_spawnd_filter_lets_runc_calls_through(test_user):
    # pivot_root(NULL, NULL) is EFAULT once past the filter.
    err, out = confinement.probe_daemon("spawnd", "pivot_root")
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
    confinement.Confinement(hsuite.pid("spawnd")).assert_holds(want, no_new_privs=False)
    with ctx_of(hsuite, ctr_images) as ctx:
        p = ctx.pod()
        # A non-root container: runc exec enters namespaces of a process
        # of another user (CAP_SYS_PTRACE) and sets its caps and ids.
        c = ctx.run(p, command=SLEEP, sc=sc_of(run_as_user=1000, run_as_group=1000,
                                               seccomp=pb.SecurityProfile.RuntimeDefault))
        confinement.Confinement(the_conmon(c.id)).assert_holds(want, no_new_privs=False)
        assert c.out("id -u").strip() == "1000"
        # A container can hold no more than the node allows.
        assert confinement.Confinement(c.pid()).bnd <= DEFAULT_CAPS
