"""Every privileged action is logged once, by the daemon that did it, with
the CRI call's request id (x-request-id, or criod's own), the pod or
container and what was done: an operator follows one CRI call across the
daemons' logs. A refused action is logged once too, naming the rule."""
import os

import grpc
import pytest

import test_pods as tp
from test_containers import SLEEP, Ctx, csuite, ctr_images  # noqa: F401 - fixtures
from test_images import registries  # noqa: F401 - fixture

pb = tp.pb


def lines_of(text, req):
    return [l for l in text.splitlines() if " req=%s " % req in l]


def one(text, req, msg, *fields):
    """The one line with this request id and msg, holding each field."""
    hits = [l for l in lines_of(text, req) if 'msg="%s"' % msg in l]
    assert len(hits) == 1, "want one %r line for req=%s, got %d:\n%s" % (msg, req, len(hits), "\n".join(
        lines_of(text, req)) or text[-3000:])
    for f in fields:
        assert f in hits[0], (f, hits[0])
    return hits[0]


def call(cri, service, name, request, req, **kw):
    return cri.call(service, name, request, metadata=(("x-request-id", req),), **kw)


def conmon_log(s, cid):
    with open(os.path.join(s.state_dir, "spawnd", "containers", cid, "conmon.log"), errors="replace") as f:
        return f.read()


def test_one_pod_and_container_lifecycle_is_followed_across_the_daemons(csuite, ctr_images):
    s = csuite
    ctx = Ctx(s, ctr_images)
    tag = os.urandom(4).hex()
    try:
        cfg = tp.pod_config(s)
        r = "trail-%s-run" % tag
        pod_id = call(ctx.cri, "RuntimeService", "RunPodSandbox", pb.RunPodSandboxRequest(config=cfg), r,
                      timeout=60).pod_sandbox_id
        ctx.pods.append(pod_id)
        one(s.log("netd"), r, "setting up pod network", "pod=" + pod_id)
        one(s.log("spawnd"), r, "pod infrastructure created", "pod=" + pod_id)
        assert lines_of(s.log("criod"), r), "criod did not log " + r

        ccfg = ctx.config(command=SLEEP)
        ccfg.linux.security_context.namespace_options.CopyFrom(cfg.linux.security_context.namespace_options)
        r = "trail-%s-create" % tag
        cid = call(ctx.cri, "RuntimeService", "CreateContainer",
                   pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=ccfg, sandbox_config=cfg), r,
                   timeout=60).container_id
        ctx.ctrs.append(cid)
        one(s.log("imaged"), r, "rootfs mounted", "container=" + cid)
        one(s.log("spawnd"), r, "container created", "id=" + cid, "pod=" + pod_id)

        r = "trail-%s-start" % tag
        call(ctx.cri, "RuntimeService", "StartContainer", pb.StartContainerRequest(container_id=cid), r, timeout=60)
        one(conmon_log(s, cid), r, "container started", "id=" + cid)

        r = "trail-%s-stop" % tag
        call(ctx.cri, "RuntimeService", "StopContainer", pb.StopContainerRequest(container_id=cid, timeout=0), r,
             timeout=60)
        one(conmon_log(s, cid), r, "container signalled", "id=" + cid, "signal=9")

        r = "trail-%s-remove" % tag
        call(ctx.cri, "RuntimeService", "RemoveContainer", pb.RemoveContainerRequest(container_id=cid), r,
             timeout=60)
        ctx.ctrs.remove(cid)
        # spawnd removes it at once, or (conmon still finishing its delete
        # at the exit) answers and removes it once conmon exits: one of
        # the two, each under the request's id
        def removed():
            return [ln for ln in lines_of(s.log("spawnd"), r)
                    if 'msg="container removed"' in ln or 'msg="container removed (after conmon exited)"' in ln]
        assert tp.wait_for(lambda: removed(), 10), lines_of(s.log("spawnd"), r)
        assert len(removed()) == 1 and "id=" + cid in removed()[0], removed()
        one(s.log("imaged"), r, "rootfs removed", "container=" + cid)

        r = "trail-%s-stoppod" % tag
        call(ctx.cri, "RuntimeService", "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), r,
             timeout=60)
        one(s.log("netd"), r, "tearing down pod network", "pod=" + pod_id)
        one(s.log("spawnd"), r, "pod infrastructure stopped", "pod=" + pod_id)

        r = "trail-%s-rmpod" % tag
        call(ctx.cri, "RuntimeService", "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), r,
             timeout=60)
        ctx.pods.remove(pod_id)
        one(s.log("spawnd"), r, "pod infrastructure removed", "pod=" + pod_id)
        for d in ("imaged", "netd", "spawnd"):
            for line in lines_of(s.log(d), r):
                assert "level=error" not in line, line
    finally:
        ctx.cleanup()


def test_a_refused_action_is_logged_once_with_the_rule(csuite, ctr_images):
    """A container log outside [policy] log_roots is refused by spawnd: one
    line with the request id, the status, the path and the rule; no
    container is made (criod's clean-up RemoveContainer carries the same
    request id)."""
    s = csuite
    ctx = Ctx(s, ctr_images)
    tag = os.urandom(4).hex()
    records = os.path.join(s.state_dir, "spawnd", "containers")
    try:
        cfg = tp.pod_config(s)
        cfg.log_directory = os.path.join(s.base, "elsewhere-" + tag)
        os.makedirs(cfg.log_directory)
        pod_id = tp.run(ctx.cri, cfg)
        ctx.pods.append(pod_id)
        ccfg = ctx.config(command=SLEEP)
        ccfg.linux.security_context.namespace_options.CopyFrom(cfg.linux.security_context.namespace_options)
        before = set(os.listdir(records)) if os.path.isdir(records) else set()
        r = "trail-%s-refused" % tag
        with pytest.raises(grpc.RpcError) as e:
            call(ctx.cri, "RuntimeService", "CreateContainer",
                 pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=ccfg, sandbox_config=cfg), r, timeout=60)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, (e.value.code(), e.value.details())
        assert "[policy] log_roots" in e.value.details(), e.value.details()
        mine = lines_of(s.log("spawnd"), r)
        refusals = [l for l in mine if 'msg="call failed" method=CreateContainer' in l]
        assert len(refusals) == 1, "\n".join(mine)
        assert "status=PERMISSION_DENIED" in refusals[0], refusals[0]
        assert "[policy] log_roots" in refusals[0] and cfg.log_directory in refusals[0], refusals[0]
        assert not [l for l in mine if 'msg="container created"' in l], mine
        after = set(os.listdir(records)) if os.path.isdir(records) else set()
        assert after == before
        # criod's roll-back (same request id) undoes the rootfs it had
        # asked for, after the reply.
        if [l for l in lines_of(s.log("imaged"), r) if 'msg="rootfs mounted"' in l]:
            assert tp.wait_for(lambda: [l for l in lines_of(s.log("imaged"), r) if 'msg="rootfs removed"' in l],
                               10, 0.05), "\n".join(lines_of(s.log("imaged"), r))
    finally:
        ctx.cleanup()
