"""Metrics end to end: criod's Prometheus endpoint (HTTP over the unix
socket <run_dir>/metrics.sock, the default), the CRI's ListMetricDescriptors
and ListPodSandboxMetrics, and the Metrics request of each root daemon sent
as a hostile front end would.

The suite is test_containers.started_suite (the test images pulled).
Behaviour asserted:
  scrape     families with HELP and TYPE; `promtool check metrics` (Debian's
             prometheus package) finds nothing wrong with the output.
  pulls      a pull of a new image counts one more criod_image_pulls_total
             {result="OK"}, and criod_image_pull_bytes_total{result="OK"}
             grows by exactly what came from the registry (the index, the
             amd64 manifest, the config and the layer); a pull of a missing
             tag counts under result="NOT_FOUND"; the duration histogram's
             count follows.
  calls      Version three times and ContainerStatus of an unknown id twice
             show as criod_cri_requests_total{method,code} +3 OK and +2
             NOT_FOUND, the latency histogram's count +3 for Version, its
             buckets cumulative and +Inf equal to the count.
  state      a running container and its ready pod show in criod_containers
             {state="running"} and criod_pod_sandboxes{state="ready"}; netd's
             criod_pod_ips_in_use{family="ipv4"} is the number of pods with a
             network, criod_pod_ip_capacity the subnet's 253 addresses, and a
             setup counted in criod_pod_network_setup_duration_seconds.
  process    criod_daemon_up 1 and resident memory, CPU, open fds, threads,
             start time and uptime for criod, imaged, netd and spawnd, the
             start time that of each daemon's process.
  http       any path but /metrics is 404, a POST 405; a malformed head
             (no or a wrong version, NUL, a bad header name, a control byte
             in a value) 400, one over 8 KiB 431 (complete or not); then
             the endpoint still serves.
  cri        ListMetricDescriptors names cAdvisor's families with kubelet's
             labels; ListPodSandboxMetrics for a pod whose container holds
             40 MiB in /dev/shm shows container_memory_working_set_bytes
             >= 40 MiB with the labels lined up (container, id, image, name,
             namespace, pod), the pod's own cgroup figures and its eth0
             network counters.
  hostile    as criod's uid, straight to each root daemon's socket: Metrics
             with a body over its 1 KiB cap is RESOURCE_EXHAUSTED and the
             connection goes on; a Metrics request answers the daemon's own
             figures (component, the start time of its pid), nothing more."""
import json
import os
import re
import socket
import subprocess
import sys
import time

import grpc
import pytest

import registry as R
from conftest import api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_containers import SLEEP, ctr_images, ctx_of, started_suite  # noqa: F401
from test_pods import tok, wait_for

MiB = 1 << 20
IMAGED_METRICS, NETD_METRICS, SPAWND_METRICS = 10, 7, 9  # common/api.h
RESOURCE_EXHAUSTED = 8
DAEMONS = ("criod", "imaged", "netd", "spawnd")


@pytest.fixture(scope="module")
def msuite(test_user, registries, ctr_images):  # noqa: F811
    with started_suite(registries, ctr_images) as s:
        yield s


@pytest.fixture
def ctx(msuite, ctr_images):  # noqa: F811
    with ctx_of(msuite, ctr_images) as c:
        yield c


# ================================================================ HTTP and the text format

def http(s, method="GET", path="/metrics", raw=None):
    """(status code, headers text, body) of one request on the socket
    (raw: these bytes instead of a request made of method and path)."""
    sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sk.settimeout(20)
    sk.connect(os.path.join(s.run_dir, "metrics.sock"))
    if raw is None:
        raw = ("%s %s HTTP/1.1\r\nHost: criod\r\nUser-Agent: e2e\r\n\r\n" % (method, path)).encode()
    sk.sendall(raw)
    data = b""
    while True:
        chunk = sk.recv(65536)
        if not chunk:
            break
        data += chunk
    sk.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    code = int(lines[0].split()[1])
    length = [int(v.split(":", 1)[1]) for v in lines[1:] if v.lower().startswith("content-length:")]
    assert length and length[0] == len(body), (lines, len(body))
    return code, "\r\n".join(lines[1:]), body.decode()


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset of (label, value)): float} and {family: type}."""
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
            continue
        assert line and not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, line
        labels = frozenset((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                           for k, v in LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    assert set(types) == helps, (set(types) ^ helps)
    return samples, types


def scrape(s):
    code, headers, body = http(s)
    assert code == 200, (code, body)
    assert "text/plain; version=0.0.4" in headers, headers
    return parse(body)


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def hist(samples, name, **labels):
    """(buckets [(le, cumulative)], sum, count) of one histogram series."""
    want = set(labels.items())
    buckets = sorted(((float(dict(k)["le"]), v) for (n, k), v in samples.items()
                      if n == name + "_bucket" and want <= set(k) and len(k) == len(want) + 1), key=lambda x: x[0])
    return buckets, value(samples, name + "_sum", **labels), value(samples, name + "_count", **labels)


def assert_histogram(samples, name, **labels):
    buckets, _, count = hist(samples, name, **labels)
    assert buckets and buckets[-1][0] == float("inf"), (name, labels, buckets)
    assert buckets[-1][1] == count, (name, labels, buckets, count)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    return count


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


# ================================================================ the endpoint

def test_scrape_is_valid_and_has_every_family(ctx):
    pod = ctx.pod()
    ctx.run(pod, command=SLEEP)
    code, _, text = http(ctx.s)
    assert code == 200
    samples, types = parse(text)
    for fam, typ in [("criod_cri_requests_total", "counter"), ("criod_cri_request_duration_seconds", "histogram"),
                     ("criod_containers", "gauge"), ("criod_pod_sandboxes", "gauge"),
                     ("criod_daemon_up", "gauge"), ("criod_process_resident_memory_bytes", "gauge"),
                     ("criod_process_cpu_seconds_total", "counter"), ("criod_process_open_fds", "gauge"),
                     ("criod_process_threads", "gauge"), ("criod_process_start_time_seconds", "gauge"),
                     ("criod_process_uptime_seconds", "gauge"), ("criod_image_pulls_total", "counter"),
                     ("criod_image_pull_bytes_total", "counter"), ("criod_image_pull_duration_seconds", "histogram"),
                     ("criod_image_pulls_in_progress", "gauge"),
                     ("criod_pod_network_setup_duration_seconds", "histogram"), ("criod_pod_ips_in_use", "gauge"),
                     ("criod_pod_ip_capacity", "gauge"), ("criod_spawnd_pods", "gauge")]:
        assert types.get(fam) == typ, (fam, types.get(fam))
    rc, out = promtool_check(text)
    assert rc == 0 and not out.strip(), out


def test_pulls_counted_with_their_bytes(ctx, registries):  # noqa: F811
    reg = registries.plain
    layer = R.Layer([R.file("payload", os.urandom(300 << 10))])
    img = R.make_image([layer])
    repo = "e2e/metrics-" + tok()
    reg.client().push_image(repo, img, tags=("v1",))
    before, _ = scrape(ctx.s)
    ctx.cri.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image="%s/%s:v1" % (reg.host, repo))),
                  timeout=120)
    with pytest.raises(grpc.RpcError) as e:
        ctx.cri.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image="%s/%s:nope" % (reg.host, repo))),
                      timeout=120)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    after, _ = scrape(ctx.s)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    assert grew("criod_image_pulls_total", result="OK") == 1
    assert grew("criod_image_pulls_total", result="NOT_FOUND") == 1
    # What came from the registry: the index, the amd64 manifest, the
    # config and the one layer (compressed).
    manifests = {d: b for d, _, b in img.manifests}
    expect = len(manifests[img.digest]) + len(img.config_bytes) + layer.size
    if img.manifest_digest != img.digest:
        expect += len(manifests[img.manifest_digest])
    assert grew("criod_image_pull_bytes_total", result="OK") == expect, (expect, layer.size)
    c_ok = assert_histogram(after, "criod_image_pull_duration_seconds", result="OK")
    assert c_ok == value(after, "criod_image_pulls_total", result="OK")
    assert assert_histogram(after, "criod_image_pull_duration_seconds", result="NOT_FOUND") >= 1
    assert value(after, "criod_image_pulls_in_progress") == 0
    ctx.cri.image("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=img.id)))


def test_cri_calls_counted_by_method_and_status(ctx):
    before, _ = scrape(ctx.s)
    for _ in range(3):
        ctx.cri.runtime("Version", pb.VersionRequest())
    for _ in range(2):
        with pytest.raises(grpc.RpcError) as e:
            ctx.cri.runtime("ContainerStatus", pb.ContainerStatusRequest(container_id="0" * 64))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    after, _ = scrape(ctx.s)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    assert grew("criod_cri_requests_total", method="Version", code="OK") == 3
    assert grew("criod_cri_requests_total", method="ContainerStatus", code="NOT_FOUND") == 2
    assert value(after, "criod_cri_requests_total", method="ContainerStatus", code="OK") == \
        value(before, "criod_cri_requests_total", method="ContainerStatus", code="OK")
    b0 = hist(before, "criod_cri_request_duration_seconds", method="Version")[2]
    assert assert_histogram(after, "criod_cri_request_duration_seconds", method="Version") == b0 + 3
    assert assert_histogram(after, "criod_cri_request_duration_seconds", method="ContainerStatus") >= 2
    # The pulls of the suite's set-up were PullImage calls.
    assert value(after, "criod_cri_requests_total", method="PullImage", code="OK") >= 5


def test_state_and_network_figures(ctx):
    pod = ctx.pod()
    ctx.run(pod, command=SLEEP)
    host = ctx.pod(network=pb.NODE)
    samples, _ = scrape(ctx.s)
    assert value(samples, "criod_containers", state="running") >= 1
    assert value(samples, "criod_pod_sandboxes", state="ready") >= 2
    ready = [p for p in ctx.cri.runtime("ListPodSandbox", pb.ListPodSandboxRequest()).items
             if p.state == pb.SANDBOX_READY]
    networked = [p for p in ready if p.id != host.id and
                 ctx.cri.runtime("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=p.id))
                 .status.network.ip]
    assert value(samples, "criod_pod_ips_in_use", family="ipv4") == len(networked) >= 1
    assert value(samples, "criod_pod_ip_capacity", family="ipv4") == 253  # a /24 less network, gateway, broadcast
    assert assert_histogram(samples, "criod_pod_network_setup_duration_seconds", result="OK") >= 1
    assert value(samples, "criod_spawnd_pods") >= 2


def proc_start(pid):
    with open("/proc/%d/stat" % pid) as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        btime = [int(line.split()[1]) for line in f if line.startswith("btime ")][0]
    return btime + start_ticks / os.sysconf("SC_CLK_TCK")


def test_process_figures_of_every_daemon(ctx):
    samples, _ = scrape(ctx.s)
    for d in DAEMONS:
        assert value(samples, "criod_daemon_up", daemon=d) == 1, d
        assert value(samples, "criod_process_resident_memory_bytes", daemon=d) > 1 * MiB, d
        assert value(samples, "criod_process_open_fds", daemon=d) >= 3, d
        assert value(samples, "criod_process_threads", daemon=d) >= 1, d
        assert ("criod_process_cpu_seconds_total", frozenset({("daemon", d)})) in samples, d
        start = value(samples, "criod_process_start_time_seconds", daemon=d)
        assert abs(start - proc_start(ctx.s.pid(d))) < 0.05, (d, start, proc_start(ctx.s.pid(d)))
        assert value(samples, "criod_process_uptime_seconds", daemon=d) > 0, d


def test_http_errors(ctx):
    code, _, body = http(ctx.s, path="/")
    assert code == 404 and "GET /metrics" in body
    code, _, _ = http(ctx.s, path="/metrics/extra")
    assert code == 404
    code, _, _ = http(ctx.s, method="POST")
    assert code == 405
    code, _, body = http(ctx.s, path="/metrics?x=1")
    assert code == 200 and "criod_daemon_up" in body
    # Heads the shared HTTP/1.1 parser (criod/stream_http.c) refuses.
    for raw in (b"GET /metrics\r\n\r\n",                                # no version
                b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n",           # not 1.x
                b"GET /metr\0ics HTTP/1.1\r\nHost: x\r\n\r\n",         # NUL
                b"GET /metrics HTTP/1.1\r\nBad Header: x\r\n\r\n",      # a space in a name
                b"GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n"):        # a control byte in a value
        code, _, body = http(ctx.s, raw=raw)
        assert code == 400, (raw, code, body)
    code, _, _ = http(ctx.s, raw=b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    assert code == 431
    code, _, _ = http(ctx.s, raw=b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)  # no end: over the bound
    assert code == 431
    code, _, body = http(ctx.s)  # still serving
    assert code == 200 and "criod_daemon_up" in body


# ================================================================ ListMetricDescriptors, ListPodSandboxMetrics

BASE_KEYS = ["container", "id", "image", "name", "namespace", "pod"]


def test_pod_sandbox_metrics_show_a_container_holding_40_mib(ctx):
    descs = {d.name: list(d.label_keys)
             for d in ctx.cri.runtime("ListMetricDescriptors", pb.ListMetricDescriptorsRequest()).descriptors}
    assert descs["container_cpu_usage_seconds_total"] == BASE_KEYS + ["cpu"]
    for name in ("container_memory_working_set_bytes", "container_memory_usage_bytes", "container_memory_rss",
                 "container_spec_memory_limit_bytes", "container_last_seen"):
        assert descs[name] == BASE_KEYS, name
    for name in ("container_network_receive_bytes_total", "container_network_transmit_bytes_total",
                 "container_network_receive_errors_total", "container_network_transmit_errors_total"):
        assert descs[name] == BASE_KEYS + ["interface"], name
    assert descs["container_memory_failures_total"] == BASE_KEYS + ["failure_type", "scope"]

    pod = ctx.pod()
    c = ctx.run(pod, command=["sh", "-c", "dd if=/dev/zero of=/dev/shm/hold bs=1M count=40 && sleep 3600"])
    assert wait_for(lambda: c.out("wc -c </dev/shm/hold 2>/dev/null || echo 0") == str(40 * MiB), 15, 0.2)
    resp = ctx.cri.runtime("ListPodSandboxMetrics", pb.ListPodSandboxMetricsRequest())
    pms = {p.pod_sandbox_id: p for p in resp.pod_metrics}
    assert pod.id in pms, list(pms)
    pm = pms[pod.id]

    def by_name(metrics):
        out = {}
        for m in metrics:
            assert m.name in descs, m.name
            assert len(m.label_values) == len(descs[m.name]), m
            out.setdefault(m.name, []).append(m)
        return out
    ctrs = {cm.container_id: by_name(cm.metrics) for cm in pm.container_metrics}
    assert c.id in ctrs, list(ctrs)
    cm = ctrs[c.id]
    ws = cm["container_memory_working_set_bytes"][0]
    assert ws.value.value >= 40 * MiB, ws
    assert ws.metric_type == pb.GAUGE and ws.timestamp > 0
    labels = dict(zip(BASE_KEYS, ws.label_values))
    assert labels["container"] == c.name and labels["name"] == c.id
    assert labels["pod"] == pod.cfg.metadata.name and labels["namespace"] == pod.cfg.metadata.namespace
    assert labels["id"].endswith("/criod-" + c.id) and labels["image"] == ctx.images.ref("base"), labels
    assert cm["container_memory_usage_bytes"][0].value.value >= ws.value.value
    cpu = cm["container_cpu_usage_seconds_total"][0]
    assert cpu.metric_type == pb.COUNTER and cpu.label_values[-1] == "total"
    assert {tuple(m.label_values[-2:]) for m in cm["container_memory_failures_total"]} == \
        {("pgfault", "container"), ("pgmajfault", "container"), ("pgfault", "hierarchy"),
         ("pgmajfault", "hierarchy")}
    assert cm["container_spec_memory_limit_bytes"][0].value.value == 0  # no limit
    assert cm["container_fs_usage_bytes"][0].label_values[-1].startswith(ctx.s.state_dir)
    # The pod's own cgroup: container and name empty; its interfaces.
    pod_m = by_name(pm.metrics)
    pws = pod_m["container_memory_working_set_bytes"][0]
    assert dict(zip(BASE_KEYS, pws.label_values))["container"] == "" and pws.value.value >= 40 * MiB - MiB
    rx = {m.label_values[-1]: m for m in pod_m["container_network_receive_bytes_total"]}
    assert "eth0" in rx and rx["eth0"].metric_type == pb.COUNTER, list(rx)
    assert "lo" not in rx


# ================================================================ a hostile front end

HOSTILE = r"""
import json, socket, struct, sys

def varint(v):
    out = b""
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def call(s, i, method, body):
    env = b"\x08" + varint(i) + b"\x10" + varint(method) + b"\x1a\x07hostile"
    if body:
        env += b"\x32" + varint(len(body)) + body
    s.sendall(struct.pack("<I", len(env)) + env)
    n = struct.unpack("<I", s.recv(4, socket.MSG_WAITALL))[0]
    return s.recv(n, socket.MSG_WAITALL).hex()

path, method = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(path)
out = []
# over the 1 KiB cap: an unknown length-delimited field 15 of 2 KiB
out.append(call(s, 1, method, b"\x7a" + varint(2048) + b"x" * 2048))
# unknown fields under the cap: ignored, the request has none
out.append(call(s, 2, method, b"\x7a\x03abc\x08\x05"))
out.append(call(s, 3, method, b""))
print(json.dumps(out))
"""


@pytest.mark.parametrize("name,method", [("imaged", IMAGED_METRICS), ("netd", NETD_METRICS),
                                         ("spawnd", SPAWND_METRICS)])
def test_hostile_metrics_request(msuite, test_user, envpb, name, method):
    s = msuite
    r = subprocess.run([sys.executable, "-c", HOSTILE, s.sock(name), str(method)], user=test_user.pw_uid,
                       group=test_user.pw_gid, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    replies = [envpb.Envelope.FromString(bytes.fromhex(h)) for h in json.loads(r.stdout)]
    assert replies[0].status == RESOURCE_EXHAUSTED and "Metrics" in replies[0].message, replies[0]
    for rep in replies[1:]:
        assert rep.status == 0, rep
        m = envpb.MetricsResponse.FromString(rep.body)
        assert m.component == name
        assert abs(m.process.start_time_ns / 1e9 - proc_start(s.pid(name))) < 0.05, m.process
        assert m.process.rss_bytes > 0 and m.process.open_fds > 0 and not m.process.missing, m.process
        # only what the daemon owns
        if name != "imaged":
            assert not m.pulls and m.pulls_in_progress == 0, m
        if name != "netd":
            assert not m.setups and not m.ips, m
    assert 'msg="refused oversized request" method=Metrics' in s.log(name)


# ================================================================ [metrics] port and enabled

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


@pytest.mark.parametrize("mode", ["tcp", "off"])
def test_loopback_port_or_no_endpoint(test_user, mode):
    import conftest
    port = free_port()
    extra = "[metrics]\nport = %d\n" % port if mode == "tcp" else "[metrics]\nenabled = false\n"
    s = conftest.Suite(extra_config=extra)
    try:
        s.start_all()
        assert not os.path.exists(os.path.join(s.run_dir, "metrics.sock"))
        if mode == "tcp":
            sk = socket.create_connection(("127.0.0.1", port), timeout=20)
            # bound to loopback only
            assert sk.getpeername()[0] == "127.0.0.1"
            sk.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = sk.recv(65536)
                if not chunk:
                    break
                data += chunk
            sk.close()
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            samples, _ = parse(body.decode())
            assert value(samples, "criod_daemon_up", daemon="imaged") == 1
            listening = subprocess.run(["ss", "-Htlnp", "sport = :%d" % port], capture_output=True, text=True).stdout
            assert "127.0.0.1:%d" % port in listening and "criod" in listening, listening
            assert 'msg="serving metrics" address=127.0.0.1:%d' % port in s.log("criod")
        else:
            assert "serving metrics" not in s.log("criod")
        s.stop_all()
        s.check_logs()
        assert not s.failures, "\n".join(s.failures)
    finally:
        s.cleanup()
