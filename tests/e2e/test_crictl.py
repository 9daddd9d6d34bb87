"""criod through crictl, a real CRI client: what a user sees from
`crictl ... -o json` (and a few table outputs) for the runtime, images,
pods and containers.

crictl v1.32.0 is the static binary in shared/cri-tools/ beside the
repository (ROOT/../shared/cri-tools/crictl, else /work/shared/cri-tools/crictl);
without it every test here is skipped, saying where it looked. Each call is
`crictl -c <suite>/crictl.yaml -r unix://<sock> -i unix://<sock> -t 60s ...`
with the CRI_* / CRICTL_* / *_ENDPOINT environment variables removed, so no
host configuration leaks in.

The suite is test_containers.ctr_suite (test_pods.pod_suite with its own
bridge, subnet, nft table and cgroup parent, trusting the session's plain
loopback registry, with the container safety net in its teardown). Two
images are built here with registry.py (busybox-static) and pushed to that
registry: "app" (pulled once for the module's pod and containers) and
"pullme" (pulled, listed, inspected and removed by the image test). Every
pod, container and image a test makes is removed again through gRPC even
when the test fails (the `made` fixture and the module fixtures' teardown).

What crictl shows, asserted here (crictl marshals the CRI messages as
protobuf JSON: camelCase names, enums by name, 64-bit integers as strings;
inspect* turn timestamps into RFC 3339 and merge the verbose `info` map's
JSON values into the output):
  version   RuntimeName criod, RuntimeApiVersion v1, RuntimeVersion = the
            package version (configure.ac), Version 0.1.0.
  info      status.conditions RuntimeReady and NetworkReady true; the
            runtime handlers "" and "runc"; the verbose info names imaged,
            netd and spawnd reachable with their pids, criod's version and
            the cgroup driver (test_events.py asserts the rest).
  images    pull prints the image id; images -o json: id, repoTags
            [HOST/REPO:TAG], repoDigests [HOST/REPO@<manifest digest>], size
            (sum of compressed layers); images REF filters; inspecti -o json:
            status as above, info.id, info.manifestDigest and info.imageSpec
            (the image config); rmi prints "Deleted: REF" and the image is no
            longer listed or inspectable; imagefsinfo: one image filesystem
            below the suite's state dir with used bytes and inodes > 0 and a
            timestamp in nanoseconds.
  pods      runp prints the 64-hex id; pods -o json: SANDBOX_READY, metadata,
            labels, annotations, runtimeHandler ""; client-side and server
            filters (--name, --namespace, --label, --state, --id); inspectp:
            status.network.ip in the suite's subnet, linux.namespaces.options,
            info.pid = the pause process, info.netnsPath; rmp of a ready pod
            is refused by crictl ("please stop it first"); stopp ->
            SANDBOX_NOTREADY; rmp -> not listed, inspectp NotFound.
  containers create/start print the id; ps -a -o json: CONTAINER_CREATED,
            then CONTAINER_RUNNING, with podSandboxId, metadata, image,
            imageRef (the image id), labels, annotations; inspect -o json:
            status (state, times, logPath = log_directory/log_path, exitCode,
            reason) and info (pid = runc's pid of the init, sandboxID,
            imageRef, logPath, runtimeSpec with the command, runtimeSpecPath);
            inspect -q has no info; exec -s prints stdout then stderr (each
            followed by a newline) and exits 0, a command exiting 3 makes
            crictl exit 1 naming "exited with 3" and the stderr; --timeout
            on a command that outlives it: "timed out"; logs: stdout and
            stderr lines split again, a partial last line kept, --tail (the
            file's last record), -t timestamps, -f returns once the
            container has exited; update --memory/--cpu-quota/--cpu-period
            -> inspect's status.resources.linux and the cgroup files; rm of
            a running container is refused by crictl; stop -t N sends
            SIGTERM first (the trap's exit code 7, reason Error), exit 0 ->
            Completed; rm -> not listed, the log file gone (crictl deletes
            status.logPath), inspect NotFound; ps filters --pod, --label
            (ANDed), --name (regex), --state, --id, --image (tag or id),
            --namespace (kubelet's io.kubernetes.pod.namespace label),
            --latest/--last (createdAt order); the table's POD/NAMESPACE
            columns from kubelet's labels.
  errors    inspect/inspectp of an unknown id: exit 1, "NotFound" and the id;
            inspecti of an absent image: "no such image"; exec -s of an
            unknown id: NotFound; create with an image that is not present:
            NotFound, and nothing is left in ps -a; logs of an unknown id:
            NotFound; rmi of an image a container uses: FailedPrecondition,
            and the image stays.
"""
import contextlib
import json
import os
import re
import subprocess
import time

import grpc
import pytest

import registry as R
from conftest import ROOT, api_pb2 as pb
from registry import registries  # noqa: F401 - fixture
from test_containers import cg_values, ctr_suite, parse_log, parse_rfc3339, runc_pid
from test_pods import HEX64, in_pod_subnet, pause_pids, restore_forwarding_sysctls, tok, wait_for  # noqa: F401
from test_pods import remove as remove_pod
from test_pods import stop as stop_pod

CRICTL_PATHS = (os.path.normpath(os.path.join(ROOT, "..", "shared", "cri-tools", "crictl")),
                "/work/shared/cri-tools/crictl")
RPC = 60
SLEEP_SCRIPT = "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done"


def find_crictl():
    for p in CRICTL_PATHS:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def package_version():
    with open(os.path.join(ROOT, "configure.ac")) as f:
        m = re.search(r"AC_INIT\(\[criod\],\s*\[([^\]]+)\]", f.read())
    assert m, "AC_INIT not found in configure.ac"
    return m.group(1)


# ================================================================ crictl

class Crictl:
    """crictl pointed at one suite's socket, with a config file of its own."""

    def __init__(self, path, s):
        self.path, self.s = path, s
        self.endpoint = "unix://" + s.socket
        self.config = os.path.join(s.base, "crictl.yaml")
        with open(self.config, "w") as f:
            f.write("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 60\ndebug: false\n"
                    "pull-image-on-create: false\n" % (self.endpoint, self.endpoint))
        self.env = {k: v for k, v in os.environ.items()
                    if not (k.startswith("CRI_") or k.startswith("CRICTL_") or k.endswith("_ENDPOINT"))}
        self.workdir = os.path.join(s.base, "crictl-files")
        os.makedirs(self.workdir, exist_ok=True)

    def run(self, *args, check=True, timeout=180):
        cmd = [self.path, "-c", self.config, "-r", self.endpoint, "-i", self.endpoint, "-t", "%ds" % RPC,
               *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and r.returncode != 0:
            raise AssertionError("crictl %s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def fails(self, *args):
        """Run a command that must fail; returns its stderr."""
        r = self.run(*args, check=False)
        assert r.returncode != 0, "crictl %s succeeded: %s" % (" ".join(args), r.stdout)
        return r.stderr

    def json(self, *args):
        r = self.run(*args)
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("crictl %s: not JSON (%s): %r" % (" ".join(args), e, r.stdout[:2000]))

    def out(self, *args):
        return self.run(*args).stdout.strip()

    def ids(self, *args):
        """The ids a -q listing printed, as a set."""
        return set(self.run(*args, "-q").stdout.split())

    def write(self, name, obj):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)
        return path


def table(text):
    """A crictl table: [{HEADER: cell}], the columns cut where the header's
    words start (cells may hold spaces, e.g. "2 seconds ago")."""
    lines = [l for l in text.split("\n") if l.strip()]
    assert lines, "empty table"
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [header[a:b].strip() for a, b in zip(starts, starts[1:] + [None])]
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() if b else line[a:].strip() for a, b in zip(starts, starts[1:] + [None])]
        rows.append(dict(zip(names, cells)))
    return rows


# ================================================================ images

class Images:
    """Two images: app (the module's containers) and pullme (the image test)."""

    def __init__(self, reg):
        self.reg = reg
        self.repo = "e2e/crictl-" + tok()
        self.imgs = {
            "app": R.make_image([R.busybox_layer()], cmd=["/bin/sh"]),
            "pullme": R.make_image([R.busybox_layer(), R.Layer([R.file("crictl-marker", tok(16))])],
                                   cmd=["/bin/sh"], labels={"org.example.crictl": "yes"}),
        }
        client = reg.client()
        for name, img in self.imgs.items():
            client.push_image(self.repo, img, tags=(name,))

    def ref(self, name):
        return "%s/%s:%s" % (self.reg.host, self.repo, name)

    def digest_ref(self, name):
        return "%s/%s@%s" % (self.reg.host, self.repo, self.imgs[name].digest)


@pytest.fixture(scope="module")
def crictl_path():
    p = find_crictl()
    if p is None:
        pytest.skip("crictl not found (looked for %s)" % " and ".join(CRICTL_PATHS))
    return p


@pytest.fixture(scope="module")
def csuite(crictl_path, test_user, registries):  # noqa: F811
    with ctr_suite(registries) as s:
        s.start_all()
        yield s


@pytest.fixture(scope="module")
def crictl(crictl_path, csuite):
    return Crictl(crictl_path, csuite)


@pytest.fixture(scope="module")
def gcri(csuite):
    """A gRPC client for the safety-net cleanup (never for assertions)."""
    c = csuite.client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def images(registries):  # noqa: F811
    return Images(registries.plain)


def remove_image_quietly(cri, ref):
    with contextlib.suppress(grpc.RpcError):
        cri.image("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout=RPC)


@pytest.fixture(scope="module")
def app_image(crictl, gcri, images):
    try:
        out = crictl.out("pull", images.ref("app"))
        assert images.imgs["app"].id in out, out
        yield images.imgs["app"]
    finally:
        remove_image_quietly(gcri, images.imgs["app"].id)


# ================================================================ pods and containers

class Made:
    """What one test (or fixture) made; removed through gRPC at the end."""

    def __init__(self, cri):
        self.cri = cri
        self.pods, self.ctrs, self.images = [], [], []

    def cleanup(self):
        for cid in reversed(self.ctrs):
            with contextlib.suppress(grpc.RpcError):
                self.cri.runtime("RemoveContainer", pb.RemoveContainerRequest(container_id=cid), timeout=RPC)
        for pod_id in reversed(self.pods):
            with contextlib.suppress(grpc.RpcError):
                stop_pod(self.cri, pod_id)
            with contextlib.suppress(grpc.RpcError):
                remove_pod(self.cri, pod_id)
        for ref in self.images:
            remove_image_quietly(self.cri, ref)


@contextlib.contextmanager
def made_of(cri):
    m = Made(cri)
    try:
        yield m
    finally:
        m.cleanup()


@pytest.fixture
def made(gcri):
    with made_of(gcri) as m:
        yield m


class PodRef:
    def __init__(self, pod_id, cfg, path):
        self.id, self.cfg, self.path = pod_id, cfg, path

    @property
    def name(self):
        return self.cfg["metadata"]["name"]


def run_pod(crictl, made, labels=None, annotations=None, namespace="e2e-crictl"):
    """`crictl runp pod.json`: the config crictl reads is CRI's own JSON
    (snake_case names, enums as numbers)."""
    s = crictl.s
    name = "crpod-" + tok(4)
    cfg = {"metadata": {"name": name, "namespace": namespace, "uid": "uid-" + tok(8), "attempt": 0},
           "hostname": name,
           "log_directory": os.path.join(s.base, "podlogs", name),
           "labels": labels or {}, "annotations": annotations or {},
           "linux": {"cgroup_parent": s.cgroup_parent,
                     "security_context": {"namespace_options": {"network": pb.POD, "pid": pb.CONTAINER,
                                                                "ipc": pb.POD}}}}
    os.makedirs(cfg["log_directory"], exist_ok=True)
    path = crictl.write(name + ".json", cfg)
    pod_id = crictl.out("runp", path)
    assert HEX64.match(pod_id), pod_id
    made.pods.append(pod_id)
    return PodRef(pod_id, cfg, path)


class CtrRef:
    def __init__(self, cid, cfg, pod):
        self.id, self.cfg, self.pod = cid, cfg, pod

    @property
    def name(self):
        return self.cfg["metadata"]["name"]

    @property
    def log_path(self):
        return os.path.join(self.pod.cfg["log_directory"], self.cfg["log_path"])


def kubelet_labels(pod, name):
    """The labels kubelet puts on every container (crictl's ps shows the pod
    name and namespace from them and filters --namespace on them)."""
    return {"io.kubernetes.pod.name": pod.name, "io.kubernetes.pod.namespace": pod.cfg["metadata"]["namespace"],
            "io.kubernetes.pod.uid": pod.cfg["metadata"]["uid"], "io.kubernetes.container.name": name}


def create_ctr(crictl, made, pod, image_ref, command, name=None, labels=None, annotations=None):
    """`crictl create --no-pull POD ctr.json pod.json`."""
    name = name or "crctr-" + tok(4)
    cfg = {"metadata": {"name": name, "attempt": 0}, "image": {"image": image_ref},
           "command": command, "log_path": "%s/0.log" % name,
           "labels": labels or {}, "annotations": annotations or {},
           "linux": {"security_context": {"namespace_options": {"pid": pb.CONTAINER}}}}
    path = crictl.write(pod.name + "-" + name + ".json", cfg)
    cid = crictl.out("create", "--no-pull", pod.id, path, pod.path)
    assert HEX64.match(cid), cid
    made.ctrs.append(cid)
    return CtrRef(cid, cfg, pod)


def start_ctr(crictl, c):
    assert crictl.out("start", c.id) == c.id
    return c


def inspect(crictl, cid):
    return crictl.json("inspect", "-o", "json", cid)


def wait_exited(crictl, c, timeout=30):
    st = wait_for(lambda: (lambda j: j if j["status"]["state"] == "CONTAINER_EXITED" else None)(inspect(crictl, c.id)),
                  timeout, 0.1)
    assert st, "container %s did not exit: %s" % (c.name, inspect(crictl, c.id)["status"])
    return st


def ps_item(crictl, cid, *flags):
    items = [c for c in crictl.json("ps", "-a", "-o", "json", *flags)["containers"] if c["id"] == cid]
    assert len(items) == 1, (cid, items)
    return items[0]


@pytest.fixture(scope="module")
def mod_made(gcri, app_image):
    """The module's pod and containers; set up after (so removed before)
    the app image they use."""
    with made_of(gcri) as m:
        yield m


@pytest.fixture(scope="module")
def ctr_pod(crictl, mod_made, app_image):
    return run_pod(crictl, mod_made, labels={"crictl-test": "containers"})


@pytest.fixture(scope="module")
def sleeper(crictl, mod_made, ctr_pod, images, app_image):
    c = create_ctr(crictl, mod_made, ctr_pod, images.ref("app"), ["sh", "-c", SLEEP_SCRIPT], name="sleeper",
                   labels={"app": "sleeper", "tier": "t1", **kubelet_labels(ctr_pod, "sleeper")},
                   annotations={"note": "sleeps"})
    start_ctr(crictl, c)
    return c


@pytest.fixture(scope="module")
def echoer(crictl, mod_made, ctr_pod, images, app_image):
    c = create_ctr(crictl, mod_made, ctr_pod, images.ref("app"),
                   ["sh", "-c", "echo out1; echo err1 >&2; echo out2; printf no-newline"], name="echoer",
                   labels={"app": "echoer", "tier": "t1", **kubelet_labels(ctr_pod, "echoer")})
    start_ctr(crictl, c)
    c.exited = wait_exited(crictl, c)
    return c


# ================================================================ runtime

def test_version(crictl):
    out = crictl.out("version")
    fields = dict(re.match(r"^(\w+):\s*(.*)$", line).groups() for line in out.split("\n") if line.strip())
    assert fields == {"Version": "0.1.0", "RuntimeName": "criod", "RuntimeVersion": package_version(),
                      "RuntimeApiVersion": "v1"}, out


def test_info(crictl):
    info = crictl.json("info", "-o", "json")
    conds = {c["type"]: c for c in info["status"]["conditions"]}
    assert set(conds) == {"RuntimeReady", "NetworkReady"}, info["status"]
    for c in conds.values():
        assert c["status"] is True, c
    assert sorted(h.get("name", "") for h in info["runtimeHandlers"]) == ["", "runc"], info["runtimeHandlers"]
    for daemon in ("imaged", "netd", "spawnd"):
        assert info[daemon]["reachable"] is True, (daemon, info.get(daemon))
        assert info[daemon]["pid"] == crictl.s.pid(daemon), (daemon, info.get(daemon))
    assert info["criod"]["version"] == package_version()
    assert info["cgroupDriver"] == "cgroupfs"
    # Without verbose, only the status and the handlers.
    quiet = crictl.json("info", "-q", "-o", "json")
    assert set(quiet) == {"status", "runtimeHandlers"}, quiet


# ================================================================ images

def test_pull_list_inspect_remove_image(crictl, made, images):
    img, ref, host_repo = images.imgs["pullme"], images.ref("pullme"), "%s/%s" % (images.reg.host, images.repo)
    made.images.append(img.id)
    assert not [i for i in crictl.json("images", "-o", "json")["images"] if i["id"] == img.id]

    out = crictl.out("pull", ref)
    assert out == "Image is up to date for %s" % img.id, out

    want = {"id": img.id, "repoTags": [ref], "repoDigests": [images.digest_ref("pullme")], "size": str(img.size)}
    listed = [i for i in crictl.json("images", "-o", "json")["images"] if i["id"] == img.id]
    assert len(listed) == 1, listed
    assert {k: listed[0][k] for k in want} == want, listed[0]
    # Filtered by reference (ListImages' filter): exactly this image.
    only = crictl.json("images", "-o", "json", ref)["images"]
    assert [i["id"] for i in only] == [img.id], only
    # The table: repository, tag, truncated id.
    rows = [r for r in table(crictl.out("images")) if r["IMAGE"] == host_repo]
    assert len(rows) == 1 and rows[0]["TAG"] == "pullme", rows
    assert img.id.split(":", 1)[1].startswith(rows[0]["IMAGE ID"]), rows
    assert img.id in crictl.ids("images")

    # inspecti by tag and by id: the same status, and the image config.
    for what in (ref, img.id, images.digest_ref("pullme")):
        j = crictl.json("inspecti", "-o", "json", what)
        assert {k: j["status"][k] for k in want} == want, (what, j["status"])
        assert j["info"]["id"] == img.id, j["info"]
        assert j["info"]["manifestDigest"] == img.manifest_digest, j["info"]
        spec = j["info"]["imageSpec"]
        assert spec["config"]["Labels"] == {"org.example.crictl": "yes"}, spec
        assert spec["rootfs"]["diff_ids"] == [l.diff_id for l in img.layers], spec
    assert "info" not in crictl.json("inspecti", "-q", "-o", "json", ref)

    out = crictl.out("rmi", ref)
    assert out == "Deleted: %s" % ref, out
    assert img.id not in crictl.ids("images")
    assert not [i for i in crictl.json("images", "-o", "json")["images"] if i["id"] == img.id]
    err = crictl.fails("inspecti", ref)
    assert "no such image" in err and ref in err, err


def test_imagefsinfo(crictl, csuite, app_image):
    t0 = time.time_ns()
    j = crictl.json("imagefsinfo", "-o", "json")
    t1 = time.time_ns()
    fss = j["status"]["imageFilesystems"]
    assert len(fss) == 1, j
    fs = fss[0]
    mp = os.path.realpath(fs["fsId"]["mountpoint"])
    assert mp.startswith(os.path.realpath(csuite.state_dir) + "/"), mp
    # The app image is in the store: some bytes and inodes are used.
    assert int(fs["usedBytes"]["value"]) >= app_image.size, fs
    assert int(fs["inodesUsed"]["value"]) > len(R.BUSYBOX_APPLETS), fs
    # A timestamp in nanoseconds of the call (not seconds, not zero).
    assert t0 - 60 * 10**9 <= int(fs["timestamp"]) <= t1 + 60 * 10**9, (t0, fs["timestamp"], t1)


# ================================================================ pods

def test_pod_lifecycle(crictl, csuite, made):
    labels, annotations = {"app": "crictl-" + tok(3), "tier": "web"}, {"example.com/note": "a b=c"}
    pod = run_pod(crictl, made, labels=labels, annotations=annotations, namespace="e2e-crictl-pods")
    meta = pod.cfg["metadata"]

    def item():
        got = [p for p in crictl.json("pods", "-o", "json")["items"] if p["id"] == pod.id]
        assert len(got) == 1, got
        return got[0]

    it = item()
    assert it["state"] == "SANDBOX_READY", it
    assert it["metadata"] == meta, it
    assert it["labels"] == labels and it["annotations"] == annotations, it
    assert it["runtimeHandler"] == "", it
    assert 0 < int(it["createdAt"]) <= time.time_ns(), it
    # Filters: server side (--id, --label, --state) and crictl's own.
    assert crictl.ids("pods", "--id", pod.id) == {pod.id}
    assert crictl.ids("pods", "--label", "app=" + labels["app"]) == {pod.id}
    assert crictl.ids("pods", "--label", "app=" + labels["app"], "--label", "tier=web") == {pod.id}
    assert crictl.ids("pods", "--label", "app=" + labels["app"], "--label", "tier=db") == set()
    assert pod.id in crictl.ids("pods", "--state", "ready")
    assert pod.id not in crictl.ids("pods", "--state", "notready")
    assert crictl.ids("pods", "--name", "^%s$" % meta["name"]) == {pod.id}
    assert crictl.ids("pods", "--namespace", "^e2e-crictl-pods$") == {pod.id}
    rows = [r for r in table(crictl.out("pods")) if pod.id.startswith(r["POD ID"])]
    assert len(rows) == 1, rows
    assert (rows[0]["STATE"], rows[0]["NAME"], rows[0]["NAMESPACE"], rows[0]["ATTEMPT"]) == \
        ("Ready", meta["name"], "e2e-crictl-pods", "0"), rows

    j = crictl.json("inspectp", "-o", "json", pod.id)
    st = j["status"]
    assert st["id"] == pod.id and st["state"] == "SANDBOX_READY", st
    assert st["metadata"] == meta, st
    assert st["labels"] == labels and st["annotations"] == annotations, st
    assert in_pod_subnet(csuite, st["network"]["ip"]), (st["network"], csuite.subnet)
    assert st["linux"]["namespaces"]["options"] == {"network": "POD", "pid": "CONTAINER", "ipc": "POD",
                                                    "targetId": ""}, st["linux"]
    created = parse_rfc3339(st["createdAt"])
    assert created == int(it["createdAt"]), (st["createdAt"], it["createdAt"])
    info = j["info"]
    assert {info["pid"]} == pause_pids(csuite, pod.id), (info, pause_pids(csuite, pod.id))
    assert os.path.exists(info["netnsPath"]) and pod.id in info["netnsPath"], info
    assert info["hostname"] == meta["name"], info
    assert "info" not in crictl.json("inspectp", "-q", "-o", "json", pod.id)
    # crictl refuses to remove a pod PodSandboxStatus says is ready.
    err = crictl.fails("rmp", pod.id)
    assert "is running, please stop it first" in err, err

    assert crictl.out("stopp", pod.id) == "Stopped sandbox " + pod.id
    assert item()["state"] == "SANDBOX_NOTREADY"
    assert crictl.json("inspectp", "-o", "json", pod.id)["status"]["state"] == "SANDBOX_NOTREADY"
    assert pod.id in crictl.ids("pods", "--state", "notready")
    assert pod.id not in crictl.ids("pods", "--state", "ready")

    assert crictl.out("rmp", pod.id) == "Removed sandbox " + pod.id
    assert pod.id not in crictl.ids("pods")
    err = crictl.fails("inspectp", pod.id)
    assert "NotFound" in err and pod.id in err, err


# ================================================================ containers

def test_container_lifecycle(crictl, csuite, made, ctr_pod, images, app_image):
    c = create_ctr(crictl, made, ctr_pod, images.ref("app"), ["sh", "-c", SLEEP_SCRIPT],
                   labels={"app": "lifecycle"}, annotations={"a": "1"})
    it = ps_item(crictl, c.id)
    assert it["state"] == "CONTAINER_CREATED", it
    assert c.id not in crictl.ids("ps")  # ps without -a: running ones only
    st = inspect(crictl, c.id)["status"]
    assert st["state"] == "CONTAINER_CREATED" and st["exitCode"] == 0, st

    start_ctr(crictl, c)
    assert ps_item(crictl, c.id)["state"] == "CONTAINER_RUNNING"
    assert c.id in crictl.ids("ps")
    assert wait_for(lambda: crictl.run("logs", c.id).stdout == "ready\n", 30, 0.1), crictl.run("logs", c.id)
    # crictl refuses to remove a container ContainerStatus says is running.
    err = crictl.fails("rm", c.id)
    assert "is running, please stop it first" in err, err

    # stop -t 10: SIGTERM first; the trap exits 7.
    assert crictl.out("stop", "-t", "10", c.id) == c.id
    st = inspect(crictl, c.id)["status"]
    assert (st["state"], st["exitCode"], st["reason"]) == ("CONTAINER_EXITED", 7, "Error"), st
    assert parse_rfc3339(st["createdAt"]) <= parse_rfc3339(st["startedAt"]) <= parse_rfc3339(st["finishedAt"]), st
    assert c.id not in crictl.ids("ps")
    assert ps_item(crictl, c.id)["state"] == "CONTAINER_EXITED"

    assert os.path.exists(c.log_path)
    assert crictl.out("rm", c.id) == c.id
    assert c.id not in crictl.ids("ps", "-a")
    # crictl rm (without --keep-logs) deletes the file status.logPath names.
    assert not os.path.exists(c.log_path), c.log_path
    err = crictl.fails("inspect", c.id)
    assert "NotFound" in err and c.id in err, err


def test_ps_and_inspect_running(crictl, csuite, ctr_pod, sleeper, images, app_image):
    it = [x for x in crictl.json("ps", "-o", "json")["containers"] if x["id"] == sleeper.id]
    assert len(it) == 1, it
    it = it[0]
    assert it["podSandboxId"] == ctr_pod.id, it
    assert it["metadata"] == {"name": "sleeper", "attempt": 0}, it
    assert it["image"]["image"] == images.ref("app"), it
    assert it["imageRef"] == app_image.id, it
    assert it["state"] == "CONTAINER_RUNNING", it
    assert it["labels"] == sleeper.cfg["labels"] and it["annotations"] == {"note": "sleeps"}, it
    assert 0 < int(it["createdAt"]) <= time.time_ns(), it
    rows = [r for r in table(crictl.out("ps")) if sleeper.id.startswith(r["CONTAINER"])]
    assert len(rows) == 1, rows
    assert (rows[0]["IMAGE"], rows[0]["STATE"], rows[0]["NAME"], rows[0]["ATTEMPT"], rows[0]["POD"],
            rows[0]["NAMESPACE"]) == (images.ref("app"), "Running", "sleeper", "0", ctr_pod.name,
                                      ctr_pod.cfg["metadata"]["namespace"]), rows
    assert ctr_pod.id.startswith(rows[0]["POD ID"]), rows

    j = inspect(crictl, sleeper.id)
    st = j["status"]
    assert st["id"] == sleeper.id and st["state"] == "CONTAINER_RUNNING", st
    assert st["metadata"] == {"name": "sleeper", "attempt": 0}, st
    assert st["image"]["image"] == images.ref("app") and st["imageRef"] == app_image.id, st
    assert st["labels"] == it["labels"] and st["annotations"] == it["annotations"], st
    assert st["logPath"] == sleeper.log_path, st
    assert (st["exitCode"], st["reason"]) == (0, ""), st
    assert parse_rfc3339(st["createdAt"]) == int(it["createdAt"]), (st["createdAt"], it["createdAt"])
    assert parse_rfc3339(st["startedAt"]) >= parse_rfc3339(st["createdAt"]), st
    info = j["info"]
    assert info["pid"] == runc_pid(csuite, sleeper.id), info["pid"]
    assert info["sandboxID"] == ctr_pod.id, info
    assert info["imageRef"] == app_image.id and info["logPath"] == sleeper.log_path, info
    spec = info["runtimeSpec"]
    assert spec["process"]["args"] == sleeper.cfg["command"], spec["process"]
    assert spec["annotations"]["io.kubernetes.cri.sandbox-id"] == ctr_pod.id, spec["annotations"]
    with open(info["runtimeSpecPath"]) as f:
        assert json.load(f) == spec
    quiet = crictl.json("inspect", "-q", "-o", "json", sleeper.id)
    assert "info" not in quiet and quiet["status"]["id"] == sleeper.id, quiet


def test_update_shown_by_inspect(crictl, csuite, sleeper):
    assert crictl.out("update", "--memory", str(96 << 20), "--cpu-quota", "30000", "--cpu-period", "100000",
                      sleeper.id) == sleeper.id
    j = inspect(crictl, sleeper.id)
    lin = j["status"]["resources"]["linux"]
    assert (lin["memoryLimitInBytes"], lin["cpuQuota"], lin["cpuPeriod"]) == (str(96 << 20), "30000", "100000"), lin
    assert j["info"]["resources"]["memory"]["limit"] == 96 << 20, j["info"]["resources"]
    assert j["status"]["state"] == "CONTAINER_RUNNING", j["status"]
    # The container's cgroup files (seen from the host) say so too.
    cg = cg_values(runc_pid(csuite, sleeper.id))
    assert (cg["memory"], cg["quota"], cg["period"]) == (96 << 20, 30000, 100000), cg


def test_update_reaches_the_runtime_spec_inspect_shows(crictl, sleeper):
    assert crictl.out("update", "--memory", str(80 << 20), "--cpu-quota", "40000", "--cpu-period", "100000",
                      sleeper.id) == sleeper.id
    res = inspect(crictl, sleeper.id)["info"]["runtimeSpec"]["linux"].get("resources", {})
    assert res.get("memory", {}).get("limit") == 80 << 20, res
    assert (res.get("cpu", {}).get("quota"), res.get("cpu", {}).get("period")) == (40000, 100000), res


def test_exec_sync(crictl, ctr_pod, sleeper):
    # crictl prints stdout, then stderr, each followed by a newline.
    r = crictl.run("exec", "-s", sleeper.id, "sh", "-c", "echo hi; echo oops >&2")
    assert (r.returncode, r.stdout) == (0, "hi\n\noops\n\n"), r
    assert crictl.out("exec", "-s", sleeper.id, "cat", "/etc/hostname") == ctr_pod.cfg["hostname"]
    r = crictl.run("exec", "-s", sleeper.id, "sh", "-c", "echo partial; echo bad >&2; exit 3", check=False)
    assert r.returncode == 1, r
    assert "exited with 3" in r.stderr and "bad" in r.stderr, r.stderr
    r = crictl.run("exec", "-s", "--timeout", "1", sleeper.id, "sleep", "100", check=False)
    assert r.returncode != 0 and "timed out" in r.stderr, r
    # The timed-out command is not left running in the container.
    left = wait_for(lambda: "sleep 100" not in crictl.out("exec", "-s", sleeper.id, "ps"), 15, 0.2)
    assert left, crictl.out("exec", "-s", sleeper.id, "ps")


def test_logs(crictl, echoer):
    st = echoer.exited["status"]
    assert (st["exitCode"], st["reason"]) == (0, "Completed"), st
    r = crictl.run("logs", echoer.id)
    # Lines of each stream back on their stream; the partial last line kept.
    assert r.stdout == "out1\nout2\nno-newline", r
    assert r.stderr == "err1\n", r
    # --tail 1: the file's last record, whichever stream it is on (the
    # two pipes are read independently, so their interleaving is not fixed).
    last = parse_log(open(echoer.log_path, "rb").read())[-1]
    want = last[3] + ("\n" if last[2] == "F" else "")
    r = crictl.run("logs", "--tail", "1", echoer.id)
    assert (r.stdout, r.stderr) == ((want, "") if last[1] == "stdout" else ("", want)), (r, last)
    r = crictl.run("logs", "--tail", "0", echoer.id)
    assert (r.stdout, r.stderr) == ("", ""), r
    # --follow ends by itself: crictl stops following once ContainerStatus
    # says the container is no longer running.
    r = crictl.run("logs", "-f", echoer.id, timeout=60)
    assert (r.stdout, r.stderr) == ("out1\nout2\nno-newline", "err1\n"), r
    stamped = crictl.run("logs", "-t", echoer.id).stdout
    m = re.match(r"^(\S+) out1\n(\S+) out2\n(\S+) no-newline$", stamped)
    assert m, stamped
    ts = [parse_rfc3339(x) for x in m.groups()]
    assert ts == sorted(ts), ts
    assert parse_rfc3339(st["startedAt"]) - 10**9 <= ts[0] <= parse_rfc3339(st["finishedAt"]) + 10**9, (ts, st)


def test_ps_filters(crictl, ctr_pod, sleeper, echoer, images, app_image):
    both = {sleeper.id, echoer.id}
    assert crictl.ids("ps", "-a", "--pod", ctr_pod.id) == both
    assert crictl.ids("ps", "--pod", ctr_pod.id) == {sleeper.id}
    assert crictl.ids("ps", "--pod", ctr_pod.id, "--state", "exited") == {echoer.id}
    assert crictl.ids("ps", "--pod", ctr_pod.id, "--state", "running") == {sleeper.id}
    assert crictl.ids("ps", "--pod", ctr_pod.id, "--state", "created") == set()
    assert crictl.ids("ps", "-a", "--label", "tier=t1") == both
    assert crictl.ids("ps", "-a", "--label", "app=echoer") == {echoer.id}
    assert crictl.ids("ps", "-a", "--label", "app=sleeper", "--label", "tier=t1") == {sleeper.id}
    assert crictl.ids("ps", "-a", "--label", "app=sleeper", "--label", "tier=t2") == set()
    assert crictl.ids("ps", "-a", "--label", "app=nobody") == set()
    assert crictl.ids("ps", "-a", "--pod", ctr_pod.id, "--name", "^echo") == {echoer.id}
    assert crictl.ids("ps", "-a", "--pod", ctr_pod.id, "--name", "er$") == both
    assert crictl.ids("ps", "-a", "--id", sleeper.id) == {sleeper.id}
    assert crictl.ids("ps", "-a", "--pod", "0" * 64) == set()
    # crictl's own filters: the image (resolved through ImageStatus), the
    # pod's namespace, the newest by createdAt (echoer was created last).
    assert crictl.ids("ps", "-a", "--pod", ctr_pod.id, "--image", app_image.id) == both
    assert crictl.ids("ps", "-a", "--pod", ctr_pod.id, "--image", images.ref("app")) == both
    assert crictl.ids("ps", "-a", "--namespace", "^%s$" % ctr_pod.cfg["metadata"]["namespace"]) == both
    assert crictl.ids("ps", "-a", "--namespace", "^no-such-namespace$") == set()
    assert crictl.ids("ps", "--pod", ctr_pod.id, "--latest") == {echoer.id}
    assert crictl.ids("ps", "--pod", ctr_pod.id, "--last", "2") == both
    exited = crictl.json("ps", "-o", "json", "--pod", ctr_pod.id, "--state", "exited")["containers"]
    assert [(x["id"], x["state"], x["labels"]) for x in exited] == \
        [(echoer.id, "CONTAINER_EXITED", echoer.cfg["labels"])], exited


# ================================================================ errors

def test_errors_as_crictl_shows_them(crictl, made, ctr_pod, sleeper, images, app_image, registries):  # noqa: F811
    unknown = "f" * 64
    err = crictl.fails("inspect", unknown)
    assert "NotFound" in err and "container %s not found" % unknown in err, err
    err = crictl.fails("inspectp", unknown)
    assert "NotFound" in err and unknown in err, err
    absent = "%s/e2e/crictl-absent-%s:v1" % (registries.plain.host, tok())
    err = crictl.fails("inspecti", absent)
    assert "no such image" in err and absent in err, err
    err = crictl.fails("exec", "-s", unknown, "true")
    assert "NotFound" in err and unknown in err, err
    err = crictl.fails("logs", unknown)
    assert "NotFound" in err and unknown in err, err
    # The image a container's rootfs uses cannot go: FailedPrecondition,
    # and the image stays.
    err = crictl.fails("rmi", images.ref("app"))
    assert "FailedPrecondition" in err, err
    assert app_image.id in crictl.ids("images")
    # An image that is not present: NotFound naming it, and nothing created.
    before = crictl.ids("ps", "-a")
    cfg = {"metadata": {"name": "noimage"}, "image": {"image": absent}, "command": ["true"],
           "log_path": "noimage/0.log"}
    path = crictl.write("noimage.json", cfg)
    err = crictl.fails("create", "--no-pull", ctr_pod.id, path, ctr_pod.path)
    assert "NotFound" in err and absent in err, err
    assert crictl.ids("ps", "-a") == before
