"""The streaming list RPCs (KEP-5825: StreamPodSandboxes, StreamContainers,
StreamContainerStats, StreamPodSandboxStats, StreamPodSandboxMetrics,
StreamImages), end to end through criod's socket with Debian's
python3-grpcio, against the unary List* answers.

The suite is test_containers.started_suite (its own bridge, subnet, nft
table and cgroup parent, the test images pulled). Three pods and three
containers carry a 400 KiB annotation each, so each list is over criod's
1 MiB chunk bound (criod/list_reply.h). Behaviour asserted:
  same       every Stream* call returns, across its messages, exactly the
             items of its List* twin, with no id twice: the same
             messages for pods, containers and images; the same ids and
             attributes for the stats (their figures move between calls);
             the same pods, containers and metric names for the metrics.
  filters    the same holds under each filter the List* RPC takes: by id
             (and id prefix), pod sandbox id, state and label selector for
             pods and containers; id, pod and labels for container stats;
             id and labels for pod stats; the image reference for images;
             a filter that selects nothing gives no item.
  chunks     a list over 1 MiB comes in more than one message, none over
             1 MiB but one holding a single item that is (the first pod's
             stats: its annotation and its three containers'); criod logs
             "list streamed" with the item and chunk counts.
  bad input  a control character in a stats filter's id is
             INVALID_ARGUMENT naming filter.id, as for the List* RPC.
  gone       a client that takes one message of a stream (its channel's
             window kept small) and cancels: it sees CANCELLED; criod keeps
             serving: ten such calls, then the same stream read whole,
             ListPodSandbox and Version answer, and criod is still running."""
import grpc
import pytest

from conftest import api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_containers import SLEEP, ctr_images, ctx_of, started_suite  # noqa: F401
from test_pods import stop as stop_pod

CHUNK = 1 << 20
BLOB = "x" * (400 << 10)
RPC = 60


@pytest.fixture(scope="module")
def lsuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


@pytest.fixture(scope="module")
def world(lsuite, ctr_images):  # noqa: F811
    """Three pods (one stopped) and, in the first, three containers (one
    running), each with a 400 KiB annotation and a group label."""
    with ctx_of(lsuite, ctr_images) as ctx:
        pods = [ctx.pod(labels={"group": g, "n": str(i)}, annotations={"blob": BLOB})
                for i, g in enumerate(("a", "a", "b"))]
        ctrs = [ctx.create_cfg(pods[0], ctx.config(command=SLEEP, labels={"group": g, "n": str(i)},
                                                   annotations={"blob": BLOB}))
                for i, g in enumerate(("a", "b", "b"))]
        ctx.start(ctrs[0])
        stop_pod(ctx.cri, pods[2].id)
        yield ctx, pods, ctrs


FIELDS = {"StreamPodSandboxes": "pod_sandboxes", "StreamContainers": "containers",
          "StreamContainerStats": "container_stats", "StreamPodSandboxStats": "pod_sandbox_stats",
          "StreamPodSandboxMetrics": "pod_sandbox_metrics", "StreamImages": "images"}


def stream(cri, service, name, req, **kw):
    """The messages of one Stream* call: each within the chunk bound, or a
    single item over it on its own."""
    msgs = cri.call(service, name, req, timeout=RPC, **kw)
    for m in msgs:
        n = len(getattr(m, FIELDS[name]))
        assert m.ByteSize() <= CHUNK or n == 1, "%s: %d items in %d bytes" % (name, n, m.ByteSize())
    return msgs


def items_of(msgs, field):
    out = [it for m in msgs for it in getattr(m, field)]
    return out


def by_id(items, key=lambda it: it.id):
    ids = [key(it) for it in items]
    assert len(ids) == len(set(ids)), "an id twice: %s" % ids
    return dict(zip(ids, items))


def pods_both(cri, f):
    listed = cri.runtime("ListPodSandbox", pb.ListPodSandboxRequest(filter=f), timeout=RPC).items
    msgs = stream(cri, "RuntimeService", "StreamPodSandboxes", pb.StreamPodSandboxesRequest(filter=f))
    return by_id(listed), by_id(items_of(msgs, "pod_sandboxes")), msgs


def ctrs_both(cri, f):
    listed = cri.runtime("ListContainers", pb.ListContainersRequest(filter=f), timeout=RPC).containers
    msgs = stream(cri, "RuntimeService", "StreamContainers", pb.StreamContainersRequest(filter=f))
    return by_id(listed), by_id(items_of(msgs, "containers")), msgs


def test_pods_stream_like_list(world, lsuite):
    ctx, pods, _ = world
    mine = {p.id for p in pods}
    cases = [
        (None, mine),
        (pb.PodSandboxFilter(id=pods[1].id), {pods[1].id}),
        (pb.PodSandboxFilter(id=pods[1].id[:12]), {pods[1].id}),
        (pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY)), {pods[2].id}),
        (pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY)), {pods[0].id, pods[1].id}),
        (pb.PodSandboxFilter(label_selector={"group": "a"}), {pods[0].id, pods[1].id}),
        (pb.PodSandboxFilter(label_selector={"group": "a", "n": "1"}), {pods[1].id}),
        (pb.PodSandboxFilter(label_selector={"group": "c"}), set()),
        (pb.PodSandboxFilter(id="0" * 64), set()),
    ]
    for f, want in cases:
        listed, streamed, msgs = pods_both(ctx.cri, f)
        assert set(listed) & mine == want, f
        assert streamed == listed, f
        if f is None:
            # 3 x 400 KiB: more than one chunk
            assert len(msgs) >= 2, len(msgs)
            assert streamed[pods[0].id].annotations["blob"] == BLOB
        if not want and f is not None:
            assert not streamed and all(not m.pod_sandboxes for m in msgs), f
    assert [l for l in lsuite.log("criod").split("\n")
            if 'msg="list streamed"' in l and "StreamPodSandboxesResponse" in l and "items=3 " in l
            and "chunks=1 " not in l], "no streamed-list line for the three pods"


def test_containers_stream_like_list(world):
    ctx, pods, ctrs = world
    mine = {c.id for c in ctrs}
    cases = [
        (None, mine),
        (pb.ContainerFilter(id=ctrs[2].id), {ctrs[2].id}),
        (pb.ContainerFilter(id=ctrs[2].id[:12]), {ctrs[2].id}),
        (pb.ContainerFilter(pod_sandbox_id=pods[0].id), mine),
        (pb.ContainerFilter(pod_sandbox_id=pods[1].id), set()),
        (pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING)), {ctrs[0].id}),
        (pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_CREATED)), {ctrs[1].id, ctrs[2].id}),
        (pb.ContainerFilter(label_selector={"group": "b"}), {ctrs[1].id, ctrs[2].id}),
        (pb.ContainerFilter(pod_sandbox_id=pods[0].id, label_selector={"n": "2"}), {ctrs[2].id}),
    ]
    for f, want in cases:
        listed, streamed, msgs = ctrs_both(ctx.cri, f)
        assert set(listed) & mine == want, f
        assert streamed == listed, f
        if f is None:
            assert len(msgs) >= 2, len(msgs)


def stats_key(s):
    return s.attributes.id


def same_attrs(listed, streamed):
    assert set(listed) == set(streamed)
    for k in listed:
        assert listed[k].attributes == streamed[k].attributes, k


def test_container_stats_stream_like_list(world):
    ctx, pods, ctrs = world
    mine = {c.id for c in ctrs}
    cases = [
        (None, mine),
        (pb.ContainerStatsFilter(id=ctrs[1].id), {ctrs[1].id}),
        (pb.ContainerStatsFilter(pod_sandbox_id=pods[0].id), mine),
        (pb.ContainerStatsFilter(pod_sandbox_id=pods[1].id), set()),
        (pb.ContainerStatsFilter(label_selector={"group": "b"}), {ctrs[1].id, ctrs[2].id}),
    ]
    for f, want in cases:
        listed = by_id(ctx.cri.runtime("ListContainerStats", pb.ListContainerStatsRequest(filter=f),
                                       timeout=RPC).stats, stats_key)
        msgs = stream(ctx.cri, "RuntimeService", "StreamContainerStats", pb.StreamContainerStatsRequest(filter=f))
        streamed = by_id(items_of(msgs, "container_stats"), stats_key)
        assert set(listed) & mine == want, f
        same_attrs(listed, streamed)
        if f is None:
            assert len(msgs) >= 2, len(msgs)
            assert streamed[ctrs[0].id].cpu.timestamp > 0


def test_pod_stats_stream_like_list(world):
    ctx, pods, ctrs = world
    mine = {p.id for p in pods}
    cases = [
        (None, mine),
        (pb.PodSandboxStatsFilter(id=pods[0].id), {pods[0].id}),
        (pb.PodSandboxStatsFilter(label_selector={"group": "b"}), {pods[2].id}),
        (pb.PodSandboxStatsFilter(label_selector={"group": "none"}), set()),
    ]
    for f, want in cases:
        listed = by_id(ctx.cri.runtime("ListPodSandboxStats", pb.ListPodSandboxStatsRequest(filter=f),
                                       timeout=RPC).stats, stats_key)
        msgs = stream(ctx.cri, "RuntimeService", "StreamPodSandboxStats", pb.StreamPodSandboxStatsRequest(filter=f))
        streamed = by_id(items_of(msgs, "pod_sandbox_stats"), stats_key)
        assert set(listed) & mine == want, f
        same_attrs(listed, streamed)
        for k in listed:
            assert ({c.attributes.id for c in streamed[k].linux.containers}
                    == {c.attributes.id for c in listed[k].linux.containers}), k
        if f is None:
            assert len(msgs) >= 2, len(msgs)
            assert {c.attributes.id for c in streamed[pods[0].id].linux.containers} == {c.id for c in ctrs}


def test_pod_metrics_stream_like_list(world):
    ctx, pods, ctrs = world

    def shape(items):
        out = {}
        for pm in items:
            assert pm.pod_sandbox_id not in out
            out[pm.pod_sandbox_id] = ({m.name for m in pm.metrics},
                                      {c.container_id: frozenset(m.name for m in c.metrics)
                                       for c in pm.container_metrics})
        return out

    listed = shape(ctx.cri.runtime("ListPodSandboxMetrics", pb.ListPodSandboxMetricsRequest(),
                                   timeout=RPC).pod_metrics)
    msgs = stream(ctx.cri, "RuntimeService", "StreamPodSandboxMetrics", pb.StreamPodSandboxMetricsRequest())
    streamed = shape(items_of(msgs, "pod_sandbox_metrics"))
    assert streamed == listed
    assert {p.id for p in pods} <= set(streamed)
    assert set(streamed[pods[0].id][1]) == {c.id for c in ctrs}
    assert "container_cpu_usage_seconds_total" in streamed[pods[0].id][0]


def test_images_stream_like_list(world, ctr_images):  # noqa: F811
    ctx, _, _ = world
    listed = ctx.cri.image("ListImages", pb.ListImagesRequest(), timeout=RPC).images
    msgs = stream(ctx.cri, "ImageService", "StreamImages", pb.StreamImagesRequest())
    assert by_id(items_of(msgs, "images")) == by_id(listed)
    assert ctr_images.id("base") in by_id(listed)
    ref = ctr_images.ref("base")
    f = pb.ImageFilter(image=pb.ImageSpec(image=ref))
    one = ctx.cri.image("ListImages", pb.ListImagesRequest(filter=f), timeout=RPC).images
    msgs = stream(ctx.cri, "ImageService", "StreamImages", pb.StreamImagesRequest(filter=f))
    assert [i.id for i in one] == [ctr_images.id("base")]
    assert by_id(items_of(msgs, "images")) == by_id(one)


def test_stream_bad_filter_like_list(world):
    ctx, _, _ = world
    for name, req in (("StreamContainerStats", pb.StreamContainerStatsRequest(
                           filter=pb.ContainerStatsFilter(id="a\nb"))),
                      ("StreamPodSandboxStats", pb.StreamPodSandboxStatsRequest(
                           filter=pb.PodSandboxStatsFilter(id="a\nb")))):
        with pytest.raises(grpc.RpcError) as e:
            ctx.cri.runtime(name, req, timeout=RPC)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, e.value)
        assert "filter.id" in e.value.details(), (name, e.value.details())


def test_client_gone_mid_stream(world, lsuite):
    ctx, pods, _ = world
    path = "/runtime.v1.RuntimeService/StreamPodSandboxes"
    for i in range(10):
        # A small window that bandwidth probing does not grow: criod has
        # more queued than the client took when it goes.
        ch = grpc.insecure_channel("unix:" + lsuite.socket, options=[
            ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024),
            ("grpc.max_receive_message_length", 32 << 20)])
        try:
            it = ch.unary_stream(path, request_serializer=pb.StreamPodSandboxesRequest.SerializeToString,
                                 response_deserializer=pb.StreamPodSandboxesResponse.FromString)(
                pb.StreamPodSandboxesRequest(), timeout=RPC, metadata=[("x-request-id", "stream-gone-%d" % i)])
            first = next(it)
            assert first.pod_sandboxes
            it.cancel()
            with pytest.raises(grpc.RpcError) as e:
                for _ in it:
                    pass
            assert e.value.code() == grpc.StatusCode.CANCELLED, e.value
        finally:
            ch.close()
    assert lsuite.procs["criod"].poll() is None
    listed, streamed, _ = pods_both(ctx.cri, None)
    assert streamed == listed and {p.id for p in pods} <= set(streamed)
    assert ctx.cri.runtime("Version").runtime_name == "criod"
