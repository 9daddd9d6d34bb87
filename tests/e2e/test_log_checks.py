"""The suite's own log check (conftest.Suite.check_logs) is shown to fail
where it should: a sanitizer report in the sanitizer directory, in a
daemon's log or in a conmon's log (conmon.log in its state directory, its
stdout and stderr) is flagged naming where it was; and, in the sanitizer
build, a real report of a conmon reaches the run."""
import os
import signal

import pytest

import conftest
import test_pods as tp
from conftest import Suite
from test_containers import SLEEP, conmon_pids, ctr_images, ctx_of, started_suite  # noqa: F401
from test_images import registries  # noqa: F401 - fixture

CID = "c" * 64
ASAN = ["", "AddressSanitizer:DEADLYSIGNAL", "=================================================================",
        "==4242==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000010 at pc 0x1 bp 0x2 sp 0x3",
        "READ of size 1 at 0x602000000010 thread T0", "    #0 0x55 in main conmon/conmon.c:1",
        "SUMMARY: AddressSanitizer: heap-use-after-free conmon/conmon.c:1 in main"]
OK_LINE = 'ts=2026-12-04T11:00:00.000000Z comp=conmon level=info req=- msg="container started" id=' + CID


def planted_suite(conmon_lines=None, daemon_lines=None, sanitizer_file=None):
    """A Suite that never starts anything, holding the planted logs."""
    s = Suite()
    if conmon_lines is not None:
        d = os.path.join(s.state_dir, "spawnd", "containers", CID)
        os.makedirs(d)
        with open(os.path.join(d, "conmon.log"), "w") as f:
            f.write("\n".join(conmon_lines) + "\n")
    if daemon_lines is not None:
        s.logs["netd"] = os.path.join(s.log_dir, "netd.log")
        with open(s.logs["netd"], "w") as f:
            f.write("\n".join(daemon_lines) + "\n")
    if sanitizer_file is not None:
        with open(os.path.join(s.sanitizer_dir, sanitizer_file), "w") as f:
            f.write("\n".join(ASAN) + "\n")
    s.dmesg_seen = None  # nothing of this suite ran: the kernel's audit lines are not its
    return s


def failures_of(s):
    try:
        s.check_logs()
        return s.failures
    finally:
        s.cleanup()


def test_check_logs_passes_clean_logs():
    assert failures_of(planted_suite(conmon_lines=[OK_LINE], daemon_lines=[OK_LINE.replace("conmon", "netd", 1)])) \
        == []


def test_check_logs_flags_a_report_in_a_conmon_log():
    f = failures_of(planted_suite(conmon_lines=[OK_LINE] + ASAN[1:] + [OK_LINE]))
    assert len(f) == 1, f
    assert f[0].startswith("conmon %s: a sanitizer report in " % CID), f
    assert "conmon.log" in f[0] and "heap-use-after-free" in f[0], f


def test_check_logs_flags_a_report_in_a_daemon_log():
    f = failures_of(planted_suite(daemon_lines=[OK_LINE.replace("conmon", "netd", 1)] + ASAN))
    assert len(f) == 1 and f[0].startswith("netd: a sanitizer report in "), f
    assert "AddressSanitizer" in f[0], f


def test_check_logs_flags_a_file_in_the_sanitizer_directory():
    f = failures_of(planted_suite(sanitizer_file="asan.4242"))
    assert len(f) == 1 and f[0].startswith("sanitizer report asan.4242:"), f
    assert "heap-use-after-free" in f[0], f


def test_check_logs_flags_a_line_not_in_the_shared_format_in_a_conmon_log():
    f = failures_of(planted_suite(conmon_lines=[OK_LINE, "runc said something"]))
    assert len(f) == 1 and f[0].startswith("conmon %s log line not in the shared format: 'runc said something'"
                                           % CID), f


@pytest.mark.skipif(not conftest.SANITIZERS, reason="only the sanitizer build (CRIOD_SANITIZERS=1) has a conmon "
                    "whose SIGSEGV handler writes a report")
def test_a_conmon_sanitizer_report_reaches_the_run(test_user, registries, ctr_images):  # noqa: F811
    """A conmon that crashes (here: SIGSEGV, which ASan's handler reports
    as any fault) writes its report where check_logs reads it, and the run
    fails on it; the report is then taken away so this suite passes."""
    with started_suite(registries, ctr_images) as s, ctx_of(s, ctr_images) as cx:
        p = cx.pod()
        c = cx.run(p, command=SLEEP)
        pids = conmon_pids(c.id)
        assert len(pids) == 1, pids
        report = os.path.join(s.sanitizer_dir, "asan.%d" % pids[0])
        os.kill(pids[0], signal.SIGSEGV)
        assert tp.wait_for(lambda: not tp.pid_alive(pids[0]), 30), "conmon survived SIGSEGV"

        def written():
            with open(report, errors="replace") as f:
                return "SUMMARY: AddressSanitizer: SEGV" in f.read()
        assert tp.wait_for(lambda: os.path.exists(report) and written(), 30), os.listdir(s.sanitizer_dir)
        s.check_logs()
        # The report file, and ASan's line on conmon's stderr (conmon.log).
        ours = ["sanitizer report asan.%d:" % pids[0], "conmon %s: a sanitizer report in " % c.id]
        for want in ours:
            assert [x for x in s.failures if x.startswith(want)], (want, s.failures)
        # Made on purpose: not this run's failure. Removing the container
        # takes its conmon.log.
        os.unlink(report)
        cx.stop(c.id, 0)
        cx.remove(c.id)
        assert not [x for x in s.conmon_logs() if x[0] == "conmon " + c.id]
        s.failures = [x for x in s.failures if not x.startswith(tuple(ours))]
        assert s.failures == [], s.failures
