"""The image service end to end: CRI PullImage, ListImages, ImageStatus,
RemoveImage and ImageFsInfo through criod's socket, answered by imaged,
against real docker-registry processes on 127.0.0.1 (see registry.py).

The test_infra_* tests check the test infrastructure itself (image builder,
registries, push, auth, fault proxy) without criod.

CRI behaviour asserted here (containerd / CRI-O semantics):
  - PullImage: image_ref = "sha256:<config digest>" of the linux/amd64 image
    (an OCI index or Docker manifest list resolves to its amd64 entry).
  - Image: id = image_ref; repo_tags = ["HOST/REPO:TAG"] for every tag
    pulled; repo_digests = ["HOST/REPO@<digest of the manifest the tag
    points to>"] (for an index or list: the index digest); size = sum of the
    compressed layer sizes; config.User "1234" or "1234:5678" -> uid=1234,
    username=""; "nobody" -> username="nobody", uid unset; "" -> neither.
  - A reference without a tag means :latest.
  - ImageStatus by tag, id or digest reference; an absent image is an OK
    reply with image unset; verbose=true adds info values that are JSON and
    hold the image config; non-verbose has no info.
  - RemoveImage by tag removes that tag (the image goes with its last tag),
    by id or digest reference removes the image; an absent image is OK.
"""
import contextlib
import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tarfile
import tempfile
import threading
import time

import grpc
import pytest

import registry as R
from conftest import Suite, api_pb2 as pb, envelope_pb2, imaged_pb2, unix_connect
from test_pods import wait_for as poll_until
from registry import counting_proxy, fault_proxy, registries  # noqa: F401 - fixtures

IMAGED_MOUNT_ROOTFS = 7
IMAGED_UNMOUNT_ROOTFS = 8
PULL_TIMEOUT = 90


# ---------------------------------------------------------------- suite with registries

def unmount_under(base):
    """Safety net before removing a suite: lazily unmount whatever imaged
    left mounted below base (deepest first)."""
    mounts = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp.startswith(base.rstrip("/") + "/"):
                    mounts.append(mp)
    except OSError:
        return
    for mp in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False, capture_output=True)


@contextlib.contextmanager
def registry_suite(registries, extra_config=""):  # noqa: F811 - the fixture's value
    s = Suite(extra_config=registries.config() + extra_config)
    try:
        yield s
        s.stop_all()
        s.check_logs()
        assert not s.failures, "\n".join(s.failures)
    finally:
        s.stop_all()
        unmount_under(s.base)
        s.cleanup()


@pytest.fixture(scope="session")
def img_suite(test_user, registries):  # noqa: F811
    """A suite whose config names every test registry (session-wide)."""
    with registry_suite(registries) as s:
        s.start_all()
        yield s


@pytest.fixture
def icri(img_suite):
    c = img_suite.client()
    yield c
    c.close()


# ---------------------------------------------------------------- helpers

def tok():
    return secrets.token_hex(6)


def ident(t, *more):
    """A small layer that makes an image unique (its own id)."""
    return [R.file("id-" + t, t + "\n"), *more]


def publish(reg, img, prefix, tags=("v1",), client=None):
    repo = "e2e/%s-%s" % (prefix, tok())
    (client or reg.client()).push_image(repo, img, tags=tags)
    return repo


def pull(cri, ref, auth=None, timeout=PULL_TIMEOUT):
    req = pb.PullImageRequest(image=pb.ImageSpec(image=ref))
    if auth is not None:
        req.auth.CopyFrom(auth)
    return cri.image("PullImage", req, timeout=timeout).image_ref


def pull_error(cri, ref, auth=None, timeout=PULL_TIMEOUT):
    with pytest.raises(grpc.RpcError) as e:
        pull(cri, ref, auth, timeout)
    return e.value


def list_images(cri, filter_ref=None):
    req = pb.ListImagesRequest()
    if filter_ref is not None:
        req.filter.image.image = filter_ref
    return list(cri.image("ListImages", req).images)


def listed(cri, image_id):
    found = [i for i in list_images(cri) if i.id == image_id]
    assert len(found) <= 1, found
    return found[0] if found else None


def status(cri, ref, verbose=False):
    return cri.image("ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=ref), verbose=verbose))


def remove(cri, ref):
    return cri.image("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)))


def fs_usage(cri):
    r = cri.image("ImageFsInfo", pb.ImageFsInfoRequest())
    assert len(r.image_filesystems) >= 1, r
    return r.image_filesystems[0]


def imaged_dir(suite):
    return os.path.join(suite.state_dir, "imaged")


def find_named(root, needle, only_dirs=False):
    """Paths under root (not following symlinks) whose name contains needle:
    every kind of entry, or directories only."""
    out = []
    for d, dirnames, filenames in os.walk(root, onerror=lambda e: None):
        for n in dirnames + ([] if only_dirs else filenames):
            if needle in n:
                out.append(os.path.join(d, n))
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def assert_image(img_msg, image, tags, digest_refs):
    assert img_msg.id == image.id
    assert sorted(img_msg.repo_tags) == sorted(tags)
    assert sorted(img_msg.repo_digests) == sorted(digest_refs)
    assert img_msg.size == image.size, (img_msg.size, image.size, image.layer_sizes)


class ImagedError(Exception):
    def __init__(self, status, message):
        super().__init__("imaged status %d: %s" % (status, message))
        self.status, self.message = status, message


class ImagedClient:
    """criod's internal protocol to imaged, as root: 4-byte little-endian
    length + criod.internal.Envelope."""

    def __init__(self, path):
        self.sock = unix_connect(path, timeout=60)
        self.next_id = 1

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "imaged closed the connection"
            buf += chunk
        return buf

    def call(self, method, req, resp_cls):
        cid = self.next_id
        self.next_id += 1
        body = envelope_pb2.Envelope(call_id=cid, method=method, request_id="e2e-images-%d" % cid,
                                     body=req.SerializeToString()).SerializeToString()
        self.sock.sendall(struct.pack("<I", len(body)) + body)
        (n,) = struct.unpack("<I", self._recv(4))
        reply = envelope_pb2.Envelope.FromString(self._recv(n))
        assert reply.call_id == cid, reply
        if reply.status:
            raise ImagedError(reply.status, reply.message)
        return resp_cls.FromString(reply.body)

    def mount(self, cid, image):
        return self.call(IMAGED_MOUNT_ROOTFS, imaged_pb2.MountRootfsRequest(container_id=cid, image=image),
                         imaged_pb2.MountRootfsResponse)

    def unmount(self, cid):
        return self.call(IMAGED_UNMOUNT_ROOTFS, imaged_pb2.UnmountRootfsRequest(container_id=cid),
                         imaged_pb2.UnmountRootfsResponse)

    def close(self):
        self.sock.close()


def is_mountpoint(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].encode().decode("unicode_escape") == path for line in f)


@contextlib.contextmanager
def mounted_rootfs(suite, image, cid):
    c = ImagedClient(suite.sock("imaged"))
    try:
        r = c.mount(cid, image)
        yield r
    finally:
        try:
            c.unmount(cid)
        finally:
            c.close()


# ================================================================ infrastructure self-tests (no criod)

def test_infra_every_manifest_kind_and_compression_roundtrips(registries):  # noqa: F811
    c = registries.plain.client()
    for kind in R.KINDS:
        for comp in R.COMPRESSIONS:
            t = tok()
            img = R.make_image([R.busybox_layer(comp), ident(t)], kind=kind, compression=comp)
            repo = publish(registries.plain, img, "infra", tags=("v1", "v2"))
            for ref in ("v1", "v2", img.digest):
                ct, body = c.get_manifest(repo, ref)
                assert ct == img.media_type and R.sha256_digest(body) == img.digest, (kind, comp, ct)
            doc = json.loads(img.manifest_bytes)
            if kind in ("oci-index", "docker-list"):
                plats = [(m["platform"]["os"], m["platform"]["architecture"]) for m in doc["manifests"]]
                assert plats == [("linux", "arm64"), ("linux", "amd64")]
                assert doc["manifests"][-1]["digest"] == img.manifest_digest
                _, body = c.get_manifest(repo, img.manifest_digest)
                doc = json.loads(body)
            assert doc["config"]["digest"] == img.id
            cfg = json.loads(c.get_blob(repo, img.id))
            assert cfg["architecture"] == "amd64" and cfg["os"] == "linux"
            assert cfg["rootfs"]["diff_ids"] == [l.diff_id for l in img.layers]
            for l, d in zip(img.layers, doc["layers"]):
                assert d["mediaType"] == R.LAYER_MEDIA_TYPES[(kind.split("-")[0], comp)]
                blob = c.get_blob(repo, l.digest)
                assert R.sha256_digest(blob) == l.digest == d["digest"] and len(blob) == d["size"]
                assert R.sha256_digest(R.decompress(blob, comp)) == l.diff_id
            assert img.size == sum(d["size"] for d in doc["layers"])
    names = [n for n, _, _ in R.tar_names(R.busybox_layer("gzip").tar)]
    assert "bin/busybox" in names and "bin/sh" in names


def test_infra_hostile_members_are_written_verbatim():
    t = R.build_tar([R.raw("../../escape", "x"), R.raw("/abs", "y"),
                     R.raw("evil", type_=tarfile.SYMTYPE, linkname="/"), R.raw("evil/tmp/pwned", "z"),
                     R.raw("pl", type_=tarfile.LNKTYPE, linkname="/etc/passwd"),
                     R.whiteout("etc/gone"), R.opaque("etc/app"), R.chardev("dev/n", 1, 3),
                     R.file("su", "#!", mode=0o4755, uid=1234, gid=5678)])
    assert R.tar_names(t) == [("../../escape", tarfile.REGTYPE, ""), ("/abs", tarfile.REGTYPE, ""),
                              ("evil", tarfile.SYMTYPE, "/"), ("evil/tmp/pwned", tarfile.REGTYPE, ""),
                              ("pl", tarfile.LNKTYPE, "/etc/passwd"), ("etc/.wh.gone", tarfile.REGTYPE, ""),
                              ("etc/app/.wh..wh..opq", tarfile.REGTYPE, ""), ("dev/n", tarfile.CHRTYPE, ""),
                              ("su", tarfile.REGTYPE, "")]


def test_infra_tls_basic_and_token_auth(registries):  # noqa: F811
    img = R.make_image([ident(tok())])
    # TLS: trusted with the test CA only.
    repo = publish(registries.tls, img, "infra-tls")
    assert R.RegistryClient(registries.tls_untrusted.host, "https",
                            ca_file=registries.tls_files["ca"]).get_manifest(repo, "v1")
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        R.RegistryClient(registries.tls_untrusted.host, "https").ping()
    # htpasswd basic auth, also through the auth.json alias.
    U, P = registries.USER, registries.PASSWORD
    assert registries.basic.client().ping() == 401
    repo = publish(registries.basic, img, "infra-basic", client=registries.basic.client(U, P))
    assert R.RegistryClient(registries.basic_authjson.host, username=U, password=P).get_manifest(repo, "v1")
    assert registries.basic.client(U, "wrong").request("GET", "/v2/%s/manifests/v1" % repo)[0] == 401
    assert registries.basic.client().request("GET", "/v2/%s/manifests/v1" % repo)[0] == 401
    # Token auth: the registry accepts our JWTs; anonymous tokens grant nothing.
    repo = publish(registries.token, img, "infra-token", client=registries.token.client(U, P))
    ct, body = registries.token.client(U, P).get_manifest(repo, "v1")
    assert R.sha256_digest(body) == img.digest
    anon = registries.token.client()
    assert anon.request("GET", "/v2/%s/manifests/v1" % repo, scope="repository:%s:pull" % repo)[0] == 401
    with pytest.raises(R.RegistryError) as e:
        registries.token.client(U, "wrong").get_manifest(repo, "v1")
    assert e.value.status == 401
    reqs = registries.token_server.requests
    assert {"method": "GET", "user": U, "scopes": ["repository:%s:pull" % repo], "status": 200} in reqs


def test_infra_fault_proxy(registries, fault_proxy):  # noqa: F811
    p = fault_proxy
    layer = R.Layer([R.file("big", os.urandom(1 << 20))], "none")
    img = R.make_image([layer])
    repo = publish(registries.plain, img, "infra-proxy")
    c = R.RegistryClient(p.host)
    path = "/v2/%s/blobs/%s" % (repo, layer.digest)
    # Dropped once after N bytes; a Range request resumes.
    p.drop_after(layer.digest, 100000)
    conn = http.client.HTTPConnection(R.LOCALHOST, p.port, timeout=10)
    conn.request("GET", path)
    with pytest.raises(http.client.IncompleteRead) as e:
        conn.getresponse().read()
    assert len(e.value.partial) == 100000
    rest = c.get_blob(repo, layer.digest, headers={"Range": "bytes=100000-"})
    assert R.sha256_digest(e.value.partial + rest) == layer.digest
    assert R.sha256_digest(c.get_blob(repo, layer.digest)) == layer.digest
    # Corrupt: same length, different digest, every time until cleared.
    p.corrupt(layer.digest, size=layer.size)
    for _ in range(2):
        bad = c.get_blob(repo, layer.digest)
        assert len(bad) == layer.size and R.sha256_digest(bad) != layer.digest
    p.clear()
    assert R.sha256_digest(c.get_blob(repo, layer.digest)) == layer.digest
    # 503 a few times, then through.
    p.fail(503, times=2)
    assert [c.ping() for _ in range(3)] == [503, 503, 200]
    # Every blob GET is logged.
    assert len(p.blob_gets(layer.digest)) == 6
    # Throttled.
    p.throttle(4 << 20)
    t0 = time.monotonic()
    c.get_blob(repo, layer.digest)
    assert time.monotonic() - t0 >= 0.2
    p.throttle(None)
    # A closed port refuses connections.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((R.LOCALHOST, registries.mirror_down.port), timeout=2)


# ================================================================ pulls and the image record

PULL_CASES = [("oci", "gzip"), ("oci", "zstd"), ("oci", "none"), ("oci-index", "gzip"), ("oci-index", "zstd"),
              ("docker", "gzip"), ("docker", "none"), ("docker-list", "gzip")]


@pytest.mark.parametrize("kind,compression", PULL_CASES, ids=["%s-%s" % c for c in PULL_CASES])
def test_pull_each_manifest_kind_and_compression(icri, registries, kind, compression):  # noqa: F811
    t = tok()
    img = R.make_image([R.busybox_layer(compression), ident(t, R.file("etc/motd", "hello " + t))],
                       kind=kind, compression=compression)
    host = registries.plain.host
    repo = publish(registries.plain, img, kind)
    ref = "%s/%s:v1" % (host, repo)
    assert pull(icri, ref) == img.id
    tags = [ref]
    digests = ["%s/%s@%s" % (host, repo, img.digest)]
    assert_image(listed(icri, img.id), img, tags, digests)
    for by in (ref, img.id, digests[0]):
        r = status(icri, by)
        assert r.HasField("image"), by
        assert_image(r.image, img, tags, digests)
    # Pulling again is a no-op answering the same id.
    assert pull(icri, ref) == img.id
    assert len([i for i in list_images(icri) if i.id == img.id]) == 1


def test_image_user_uid_and_username(icri, registries):  # noqa: F811
    cases = [("1234", 1234, ""), ("4321:5678", 4321, ""), ("nobody", None, "nobody"),
             ("app:staff", None, "app"), ("", None, "")]
    host = registries.plain.host
    for user, uid, username in cases:
        img = R.make_image([ident(tok())], user=user)
        ref = "%s/%s:v1" % (host, publish(registries.plain, img, "user"))
        assert pull(icri, ref) == img.id
        for got in (listed(icri, img.id), status(icri, ref).image):
            assert got.username == username, (user, got)
            if uid is None:
                assert not got.HasField("uid"), (user, got)
            else:
                assert got.HasField("uid") and got.uid.value == uid, (user, got)
            assert not got.pinned


def test_list_images_filter_by_image_spec(icri, registries):  # noqa: F811
    host = registries.plain.host
    a = R.make_image([ident(tok())])
    b = R.make_image([ident(tok())])
    ra = "%s/%s:v1" % (host, publish(registries.plain, a, "filter-a"))
    rb = "%s/%s:v1" % (host, publish(registries.plain, b, "filter-b"))
    pull(icri, ra)
    pull(icri, rb)
    ids = {i.id for i in list_images(icri)}
    assert {a.id, b.id} <= ids
    assert [i.id for i in list_images(icri, ra)] == [a.id]
    assert [i.id for i in list_images(icri, rb)] == [b.id]
    assert [i.id for i in list_images(icri, a.id)] == [a.id]
    assert list_images(icri, "%s/e2e/no-such-image-%s:v1" % (host, tok())) == []
    assert {i.id for i in list_images(icri, "")} == ids  # an empty filter is no filter


def test_image_status_lookups_unknown_and_verbose(icri, registries):  # noqa: F811
    t = tok()
    host = registries.plain.host
    img = R.make_image([ident(t)], env=["PATH=/bin", "CRIOD_E2E_MARKER=" + t], cmd=["/bin/true"])
    repo = publish(registries.plain, img, "status")
    ref = "%s/%s:v1" % (host, repo)
    pull(icri, ref)
    dref = "%s/%s@%s" % (host, repo, img.digest)
    for by in (ref, img.id, dref):
        r = status(icri, by)
        assert r.image.id == img.id, by
        assert len(r.info) == 0, "info only when verbose"
    r = status(icri, ref, verbose=True)
    assert r.image.id == img.id and r.info, r
    docs = [json.loads(v) for v in r.info.values()]  # every value is JSON
    assert any("CRIOD_E2E_MARKER=" + t in json.dumps(d) for d in docs), r.info
    # Absent images: an OK reply without image.
    for absent in ("%s/e2e/absent-%s:v1" % (host, t), "%s/%s:other-tag" % (host, repo),
                   "sha256:" + "0" * 64, "%s/%s@sha256:%s" % (host, repo, "1" * 64)):
        r = status(icri, absent)
        assert not r.HasField("image"), absent
        r = status(icri, absent, verbose=True)
        assert not r.HasField("image"), absent


def test_pull_by_digest_then_by_tag(icri, registries):  # noqa: F811
    host = registries.plain.host
    img = R.make_image([ident(tok())], kind="oci-index")
    repo = publish(registries.plain, img, "bydigest")
    dref = "%s/%s@%s" % (host, repo, img.digest)
    assert pull(icri, dref) == img.id
    got = listed(icri, img.id)
    assert list(got.repo_tags) == [] and list(got.repo_digests) == [dref], got
    assert status(icri, dref).image.id == img.id
    tref = "%s/%s:v1" % (host, repo)
    assert pull(icri, tref) == img.id
    assert_image(listed(icri, img.id), img, [tref], [dref])
    # A tag and a digest: the digest decides (tag v2 does not exist upstream).
    both = "%s/%s:v2@%s" % (host, repo, img.digest)
    assert pull(icri, both) == img.id
    remove(icri, img.id)
    assert listed(icri, img.id) is None


def test_pull_without_tag_means_latest(icri, registries):  # noqa: F811
    host = registries.plain.host
    img = R.make_image([ident(tok())])
    repo = publish(registries.plain, img, "latest", tags=("latest",))
    assert pull(icri, "%s/%s" % (host, repo)) == img.id
    got = listed(icri, img.id)
    assert list(got.repo_tags) == ["%s/%s:latest" % (host, repo)]
    assert status(icri, "%s/%s" % (host, repo)).image.id == img.id


# ================================================================ removal and disk usage

def _marked_image(t, mb=1):
    return R.make_image([R.busybox_layer("gzip"),
                         ident(t, R.file("opt/marker-" + t, os.urandom(mb << 20)))])


def test_remove_by_tag_id_and_digest(icri, img_suite, registries):  # noqa: F811
    host = registries.plain.host
    root = imaged_dir(img_suite)
    # Two tags: removing one tag keeps the image under the other.
    t = tok()
    img = _marked_image(t)
    repo = publish(registries.plain, img, "rm-tag", tags=("one", "two"))
    used0 = fs_usage(icri).used_bytes.value
    one, two = "%s/%s:one" % (host, repo), "%s/%s:two" % (host, repo)
    assert pull(icri, one) == img.id and pull(icri, two) == img.id
    assert sorted(listed(icri, img.id).repo_tags) == sorted([one, two])
    assert find_named(root, "marker-" + t), "the unpacked layer should hold the marker file"
    used1 = fs_usage(icri).used_bytes.value
    assert used1 >= used0 + (512 << 10), (used0, used1)
    remove(icri, one)
    assert list(listed(icri, img.id).repo_tags) == [two]
    assert not status(icri, one).HasField("image")
    assert status(icri, two).image.id == img.id
    remove(icri, two)
    assert listed(icri, img.id) is None
    assert not status(icri, img.id).HasField("image")
    assert find_named(root, "marker-" + t) == []
    used2 = fs_usage(icri).used_bytes.value
    assert used2 <= used1 - (512 << 10), (used1, used2)
    remove(icri, two)  # absent: still OK
    remove(icri, img.id)

    # By id, then by digest reference.
    for how in ("id", "digest"):
        t = tok()
        img = _marked_image(t)
        repo = publish(registries.plain, img, "rm-" + how)
        ref = "%s/%s:v1" % (host, repo)
        pull(icri, ref)
        assert find_named(root, "marker-" + t)
        remove(icri, img.id if how == "id" else "%s/%s@%s" % (host, repo, img.digest))
        assert listed(icri, img.id) is None, how
        assert not status(icri, ref).HasField("image")
        assert find_named(root, "marker-" + t) == [], how
        remove(icri, img.id)
        remove(icri, ref)


def test_shared_layer_survives_removal_of_one_image(icri, img_suite, registries, counting_proxy):  # noqa: F811
    host = counting_proxy.host
    t = tok()
    shared = R.Layer([R.file("shared/shared-" + t, os.urandom(64 << 10) + b"shared")])
    a = R.make_image([R.busybox_layer("gzip"), shared, [R.file("only-a-" + t, "a")]])
    b = R.make_image([R.busybox_layer("gzip"), shared, [R.file("only-b-" + t, "b")]])
    ra = "%s/%s:v1" % (host, publish(registries.plain, a, "share-a"))
    repo_b = publish(registries.plain, b, "share-b")
    rb = "%s/%s:v1" % (host, repo_b)
    assert pull(icri, ra) == a.id and pull(icri, rb) == b.id
    assert len(counting_proxy.blob_gets(shared.digest)) == 1, "a layer already present is not fetched again"
    remove(icri, a.id)
    root = imaged_dir(img_suite)
    assert listed(icri, a.id) is None
    assert find_named(root, "only-a-" + t) == []
    assert find_named(root, "shared-" + t) and find_named(root, "only-b-" + t)
    got = status(icri, rb).image
    assert_image(got, b, [rb], ["%s/%s@%s" % (host, repo_b, b.digest)])
    # Pulling b again fetches no blob.
    counting_proxy.reset_log()
    assert pull(icri, rb) == b.id
    for d in b.layer_digests + [b.id]:
        assert counting_proxy.blob_gets(d) == [], d
    # And b is whole: its root filesystem has the shared file.
    with mounted_rootfs(img_suite, b.id, "b" * 64) as m:
        assert m.image_id == b.id
        with open(os.path.join(m.rootfs, "shared", "shared-" + t), "rb") as f:
            assert f.read().endswith(b"shared")
        assert os.path.exists(os.path.join(m.rootfs, "only-b-" + t))
        assert not os.path.exists(os.path.join(m.rootfs, "only-a-" + t))
    remove(icri, b.id)


def test_image_fs_info(icri, img_suite, registries):  # noqa: F811
    u0 = fs_usage(icri)
    assert u0.used_bytes.value > 0 and u0.inodes_used.value > 0
    assert u0.timestamp > 0
    mp = os.path.realpath(u0.fs_id.mountpoint)
    assert mp.startswith(os.path.realpath(img_suite.state_dir) + "/"), mp
    t = tok()
    img = R.make_image([ident(t, *[R.file("many/f%d" % i, os.urandom(16 << 10)) for i in range(32)])])
    pull(icri, "%s/%s:v1" % (registries.plain.host, publish(registries.plain, img, "fsinfo")))
    u1 = fs_usage(icri)
    assert u1.used_bytes.value >= u0.used_bytes.value + (256 << 10), (u0, u1)
    assert u1.inodes_used.value >= u0.inodes_used.value + 16, (u0, u1)
    assert u1.fs_id.mountpoint == u0.fs_id.mountpoint
    remove(icri, img.id)


# ================================================================ bad input and unreachable registries

def test_pull_invalid_references(icri, registries):  # noqa: F811
    e = pull_error(icri, "")
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "image" in e.details().lower(), e.details()
    with pytest.raises(grpc.RpcError) as ei:
        icri.image("PullImage", pb.PullImageRequest(), timeout=30)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    host = registries.plain.host
    # Every reference names 127.0.0.1 so that a parser accepting one by
    # mistake still sends nothing off this machine.
    for bad in ("%s/e2e/UPPER:v1" % host, "%s/e2e/x y:v1" % host, "%s/e2e/x::v1" % host, "%s/e2e/x@sha256:abc" % host,
                "%s/e2e/x:%s" % (host, "t" * 129), "%s/e2e//x:v1" % host, "%s/e2e/x:-bad" % host):
        e = pull_error(icri, bad)
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, e.code(), e.details())
        assert bad in e.details(), (bad, e.details())


def test_pull_missing_tag_or_repository_is_not_found(icri, registries):  # noqa: F811
    host = registries.plain.host
    img = R.make_image([ident(tok())])
    repo = publish(registries.plain, img, "notfound")
    missing_repo = "e2e/no-such-repo-" + tok()
    for ref, name in (("%s/%s:no-such-tag" % (host, repo), repo), ("%s/%s:v1" % (host, missing_repo), missing_repo),
                      ("%s/%s@sha256:%s" % (host, repo, "2" * 64), repo)):
        e = pull_error(icri, ref)
        assert e.code() == grpc.StatusCode.NOT_FOUND, (ref, e.code(), e.details())
        assert name in e.details(), (ref, e.details())
        assert not status(icri, ref).HasField("image")


def test_pull_from_unreachable_registry(icri, registries):  # noqa: F811
    ref = "%s/e2e/anything:v1" % registries.unreachable.host
    t0 = time.monotonic()
    e = pull_error(icri, ref)
    assert registries.unreachable.host in e.details(), e.details()
    assert e.code() == grpc.StatusCode.UNAVAILABLE, e
    assert time.monotonic() - t0 < 60


def test_blocked_registry(icri, registries):  # noqa: F811
    blocked = registries.blocked
    blocked.reset_log()
    img = R.make_image([ident(tok())])
    ref = "%s/%s:v1" % (blocked.host, publish(registries.plain, img, "blocked"))
    e = pull_error(icri, ref)
    # registry.c: "registry HOST is blocked by configuration" (EPERM)
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
    assert blocked.host in e.details() and "blocked" in e.details(), e.details()
    assert blocked.requests == [], "a blocked registry gets no request"
    assert listed(icri, img.id) is None


# ================================================================ TLS and credentials

def test_tls_registry_with_and_without_ca_file(icri, registries):  # noqa: F811
    img = R.make_image([R.busybox_layer("gzip"), ident(tok())])
    repo = publish(registries.tls, img, "tls")
    untrusted = "%s/%s:v1" % (registries.tls_untrusted.host, repo)
    e = pull_error(icri, untrusted)
    # A transport failure, as a refused connection is (registry_xfer.c):
    # UNAVAILABLE, saying the certificate did not verify.
    assert e.code() == grpc.StatusCode.UNAVAILABLE, (e.code(), e.details())
    assert registries.tls_untrusted.host in e.details() and "certificate" in e.details(), e.details()
    assert listed(icri, img.id) is None
    assert pull(icri, "%s/%s:v1" % (registries.tls.host, repo)) == img.id
    assert list(listed(icri, img.id).repo_tags) == ["%s/%s:v1" % (registries.tls.host, repo)]


def test_basic_auth_registry(icri, registries):  # noqa: F811
    U, P = registries.USER, registries.PASSWORD
    host = registries.basic.host
    owner = registries.basic.client(U, P)
    imgs = [R.make_image([ident(tok())]) for _ in range(4)]
    repos = [publish(registries.basic, i, "basic", client=owner) for i in imgs]
    # Anonymous and wrong password: refused, nothing pulled.
    # A refused authentication is EACCES in imaged: PERMISSION_DENIED.
    e = pull_error(icri, "%s/%s:v1" % (host, repos[0]))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
    assert host in e.details(), e.details()
    wrong = "wr0ng-" + tok()
    e = pull_error(icri, "%s/%s:v1" % (host, repos[0]), pb.AuthConfig(username=U, password=wrong))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
    assert host in e.details() and wrong not in e.details(), e.details()
    assert listed(icri, imgs[0].id) is None
    # Username and password, or the "auth" field.
    assert pull(icri, "%s/%s:v1" % (host, repos[0]), pb.AuthConfig(username=U, password=P)) == imgs[0].id
    assert pull(icri, "%s/%s:v1" % (host, repos[1]),
                pb.AuthConfig(auth=R.basic_auth(U, P), server_address=host)) == imgs[1].id
    # auth.json lists the alias host: no credentials in the request needed.
    alias = registries.basic_authjson.host
    assert pull(icri, "%s/%s:v1" % (alias, repos[2])) == imgs[2].id
    assert list(listed(icri, imgs[2].id).repo_tags) == ["%s/%s:v1" % (alias, repos[2])]
    # Credentials in the request win over auth.json.
    e = pull_error(icri, "%s/%s:v1" % (alias, repos[3]), pb.AuthConfig(username=U, password="wrong"))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
    assert alias in e.details() and "wrong" not in e.details(), e.details()
    assert listed(icri, imgs[3].id) is None


def test_token_auth_registry(icri, registries):  # noqa: F811
    U, P = registries.USER, registries.PASSWORD
    host = registries.token.host
    img = R.make_image([R.busybox_layer("gzip"), ident(tok())])
    repo = publish(registries.token, img, "token", client=registries.token.client(U, P))
    ref = "%s/%s:v1" % (host, repo)
    e = pull_error(icri, ref)
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
    assert host in e.details() or repo in e.details(), e.details()
    assert listed(icri, img.id) is None
    # The token server refuses the password (registry_auth.c: EACCES).
    e = pull_error(icri, ref, pb.AuthConfig(username=U, password="wrong"))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
    assert "token server" in e.details() and "wrong" not in e.details(), e.details()
    assert listed(icri, img.id) is None
    before = len(registries.token_server.requests)
    assert pull(icri, ref, pb.AuthConfig(username=U, password=P)) == img.id
    new = registries.token_server.requests[before:]
    assert any(r["user"] == U and r["status"] == 200 and "repository:%s:pull" % repo in r["scopes"]
               for r in new), new
    assert_image(listed(icri, img.id), img, [ref], ["%s/%s@%s" % (host, repo, img.digest)])


# ================================================================ mirrors

def test_mirror_used_when_origin_and_first_mirror_are_down(icri, registries):  # noqa: F811
    img = R.make_image([R.busybox_layer("gzip"), ident(tok())], kind="oci-index")
    repo = publish(registries.plain, img, "mirrored")
    origin = registries.mirror_origin.host
    ref = "%s/%s:v1" % (origin, repo)
    assert pull(icri, ref) == img.id
    # The image is named as asked, not after the mirror.
    assert_image(listed(icri, img.id), img, [ref], ["%s/%s@%s" % (origin, repo, img.digest)])


def test_mirror_down_falls_back_to_origin(icri, registries):  # noqa: F811
    origin = registries.fallback
    origin.reset_log()
    img = R.make_image([ident(tok())], kind="docker")
    repo = publish(registries.plain, img, "fallback")
    ref = "%s/%s:v1" % (origin.host, repo)
    assert pull(icri, ref) == img.id
    assert origin.count("GET", "/manifests/") >= 1
    assert list(listed(icri, img.id).repo_tags) == [ref]


# ================================================================ faults on the wire

def test_corrupt_blob_fails_and_leaves_nothing(icri, img_suite, registries, fault_proxy):  # noqa: F811
    t = tok()
    layer = R.Layer([R.file("corrupt-marker-" + t, os.urandom(256 << 10))])
    img = R.make_image([R.busybox_layer("gzip"), layer])
    repo = publish(registries.plain, img, "corrupt")
    ref = "%s/%s:v1" % (fault_proxy.host, repo)
    before = {i.id for i in list_images(icri)}
    fault_proxy.corrupt(layer.digest, size=layer.size)
    e = pull_error(icri, ref)
    # The layer's gzip check (CRC) fails as its last bytes arrive, before
    # the digest is compared: the image is unusable as published.
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "corrupt" in e.details(), e
    assert fault_proxy.blob_gets(layer.digest), "the corrupt blob was never fetched"
    assert {i.id for i in list_images(icri)} == before
    assert not status(icri, ref).HasField("image")
    assert find_named(imaged_dir(img_suite), "corrupt-marker-" + t) == []
    # The same pull through a healthy path works.
    fault_proxy.clear()
    assert pull(icri, ref) == img.id
    assert_image(listed(icri, img.id), img, [ref], ["%s/%s@%s" % (fault_proxy.host, repo, img.digest)])
    remove(icri, img.id)


def test_connection_dropped_mid_blob_is_resumed(icri, img_suite, registries, fault_proxy):  # noqa: F811
    t = tok()
    content = os.urandom(2 << 20)
    layer = R.Layer([R.file("resume-" + t, content)])
    img = R.make_image([layer])
    repo = publish(registries.plain, img, "resume")
    ref = "%s/%s:v1" % (fault_proxy.host, repo)
    fault_proxy.drop_after(layer.digest, layer.size // 3, times=1)
    assert pull(icri, ref) == img.id
    gets = fault_proxy.blob_gets(layer.digest)
    assert len(gets) >= 2 and gets[0]["fault"], gets
    assert_image(listed(icri, img.id), img, [ref], ["%s/%s@%s" % (fault_proxy.host, repo, img.digest)])
    paths = find_named(imaged_dir(img_suite), "resume-" + t)
    assert paths
    for p in paths:
        assert sha256_file(p) == hashlib.sha256(content).hexdigest(), p
    remove(icri, img.id)


def test_transient_503_is_retried(icri, registries, fault_proxy):  # noqa: F811
    img = R.make_image([ident(tok())])
    repo = publish(registries.plain, img, "retry")
    fault_proxy.fail(503, times=2)
    assert pull(icri, "%s/%s:v1" % (fault_proxy.host, repo)) == img.id
    assert fault_proxy.count() >= 3


def test_concurrent_pulls_of_one_image(img_suite, registries, counting_proxy):  # noqa: F811
    img = R.make_image([[R.file("c1-" + tok(), os.urandom(512 << 10))],
                        [R.file("c2-" + tok(), os.urandom(512 << 10))]])
    repo = publish(registries.plain, img, "concurrent")
    ref = "%s/%s:v1" % (counting_proxy.host, repo)
    counting_proxy.throttle(2 << 20)  # long enough for the pulls to overlap
    results, errors = [], []
    clients = [img_suite.client() for _ in range(8)]
    go = threading.Barrier(8)

    def worker(c):
        try:
            go.wait()
            results.append(pull(c, ref))
        except Exception as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join(PULL_TIMEOUT + 10)
    for c in clients:
        c.close()
    counting_proxy.throttle(None)
    assert errors == [] and results == [img.id] * 8, (errors, results)
    c = img_suite.client()
    try:
        assert len([i for i in list_images(c) if i.id == img.id]) == 1
        assert list(listed(c, img.id).repo_tags) == [ref]
        for d in img.layer_digests + [img.id]:
            assert len(counting_proxy.blob_gets(d)) == 1, (d, counting_proxy.blob_gets(d))
        remove(c, img.id)
    finally:
        c.close()


# ================================================================ hostile layers

ESCAPES = ["dotdot", "absolute", "symlink-absolute", "symlink-relative", "symlink-then-overwrite",
           "hardlink-host-file"]
# How the tar writer answers each: an absolute path or an absolute symlink
# is kept inside the layer (the pull succeeds); the others fail the pull,
# with the status and words below. A name with ".." is refused outright;
# a parent or a hardlink target reached through a symlink out of the root
# is looked up inside it, where it does not exist.
ESCAPE_REFUSALS = {
    "dotdot": (grpc.StatusCode.FAILED_PRECONDITION, "escapes the layer root"),
    "symlink-relative": (grpc.StatusCode.NOT_FOUND, "parent directory: No such file or directory"),
    "symlink-then-overwrite": (grpc.StatusCode.NOT_FOUND, "parent directory: No such file or directory"),
    "hardlink-host-file": (grpc.StatusCode.NOT_FOUND, "hardlink target"),
}


def _hostile_layer(style, t, sentinel):
    up = "../" * 16
    members = [R.file("inside-" + t, "layer root\n")]
    if style == "dotdot":
        members += [R.raw(up + sentinel.lstrip("/") + "/pwned-" + t + "-dotdot", "pwned"),
                    R.raw("../../pwned-" + t + "-rel", "pwned"),
                    R.raw("a/../../pwned-" + t + "-rel2", "pwned")]
    elif style == "absolute":
        members += [R.raw(sentinel + "/pwned-" + t + "-abs", "pwned"),
                    R.raw("/tmp/pwned-" + t + "-abs", "pwned")]
    elif style == "symlink-absolute":
        members += [R.raw("evil", type_=tarfile.SYMTYPE, linkname="/"),
                    R.raw("evil" + sentinel + "/pwned-" + t + "-symlink", "pwned"),
                    R.raw("evil2", type_=tarfile.SYMTYPE, linkname=sentinel),
                    R.raw("evil2/victim", "pwned")]
    elif style == "symlink-relative":
        members += [R.raw("rel", type_=tarfile.SYMTYPE, linkname=up.rstrip("/") + sentinel),
                    R.raw("rel/pwned-" + t + "-relsym", "pwned"),
                    R.raw("rel/victim", "pwned")]
    elif style == "symlink-then-overwrite":
        members += [R.raw("vict", type_=tarfile.SYMTYPE, linkname=sentinel + "/victim"),
                    R.raw("vict", "pwned"),
                    R.raw("dirlink", type_=tarfile.SYMTYPE, linkname=sentinel),
                    R.raw("dirlink/victim", "pwned")]
    elif style == "hardlink-host-file":
        members += [R.raw("pl", type_=tarfile.LNKTYPE, linkname="/etc/passwd"),
                    R.raw("pl2", type_=tarfile.LNKTYPE, linkname=up + "etc/passwd"),
                    R.raw("vl", type_=tarfile.LNKTYPE, linkname=sentinel + "/victim"),
                    R.raw("vl", "pwned")]
    return members


def _inside_a_layer_root(path, marker):
    d = os.path.dirname(path)
    while d and d != "/":
        if os.path.exists(os.path.join(d, marker)):
            return True
        d = os.path.dirname(d)
    return False


class EscapeWatch:
    """Sentinels around one hostile pull: /tmp/criod-escape-<t>/victim, the
    state of /etc/passwd, and the directories an escape would land in."""

    def __init__(self, t, base, more_watched=()):
        self.t, self.base = t, base
        self.sentinel = "/tmp/criod-escape-" + t
        os.makedirs(self.sentinel)
        self.victim = os.path.join(self.sentinel, "victim")
        with open(self.victim, "w") as f:
            f.write("original\n")
        with open("/etc/passwd", "rb") as f:
            self.passwd = f.read()
        self.passwd_st = os.stat("/etc/passwd")
        self.victim_st = os.stat(self.victim)
        self.watched = ["/", "/tmp", "/etc", base, os.path.dirname(base), *more_watched]

    def check(self):
        """Assert that nothing outside a layer root was written or linked."""
        t = self.t
        with open("/etc/passwd", "rb") as f:
            assert f.read() == self.passwd, "/etc/passwd was changed"
        assert os.stat("/etc/passwd").st_nlink == self.passwd_st.st_nlink, "a hard link to /etc/passwd was made"
        with open(self.victim) as f:
            assert f.read() == "original\n", "the sentinel file was written through the layer"
        assert os.stat(self.victim).st_nlink == self.victim_st.st_nlink, "a hard link to the sentinel was made"
        assert os.listdir(self.sentinel) == ["victim"], os.listdir(self.sentinel)
        for d in self.watched:
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            assert not [n for n in names if t in n and not n.startswith("criod-escape-")], (d, names)
        for p in find_named(self.base, "pwned-" + t):
            assert _inside_a_layer_root(p, "inside-" + t), "written outside the layer: " + p
        host_files = {(self.passwd_st.st_dev, self.passwd_st.st_ino), (self.victim_st.st_dev, self.victim_st.st_ino)}
        for d, _, files in os.walk(self.base):
            for n in files:
                try:
                    st = os.lstat(os.path.join(d, n))
                except FileNotFoundError:
                    continue
                assert (st.st_dev, st.st_ino) not in host_files, "hard link to a host file: " + os.path.join(d, n)

    def cleanup(self):
        with open("/etc/passwd", "rb") as f:
            changed = f.read() != self.passwd
        if changed:
            with open("/etc/passwd", "wb") as w:
                w.write(self.passwd)
        shutil.rmtree(self.sentinel, ignore_errors=True)
        for d in ("/", "/tmp", "/etc"):
            for n in os.listdir(d):
                if n.startswith("pwned-" + self.t):
                    p = os.path.join(d, n)
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p, ignore_errors=True)
                    else:
                        os.unlink(p)


def _confined_extract(tar_bytes, root):
    """A deliberately strict extractor (the positive control for
    EscapeWatch): no absolute or ".." names, nothing through symlinks, hard
    links only to earlier members, files replace what was there."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        for ti in tf.getmembers():
            parts = ti.name.split("/")
            if ti.name.startswith("/") or ".." in parts:
                continue
            d = root
            ok = True
            for comp in parts[:-1]:
                d = os.path.join(d, comp)
                if os.path.islink(d):
                    ok = False
                    break
                os.makedirs(d, exist_ok=True)
            if not ok:
                continue
            path = os.path.join(root, *parts)
            if os.path.lexists(path) and not os.path.isdir(path):
                os.unlink(path)
            if ti.issym():
                os.symlink(ti.linkname, path)
            elif ti.islnk():
                if ti.linkname.startswith("/") or ".." in ti.linkname.split("/"):
                    continue
                src = os.path.join(root, ti.linkname)
                if os.path.islink(src) or not os.path.isfile(src):
                    continue
                os.link(src, path)
            elif ti.isfile():
                with open(path, "xb") as f:
                    f.write(tf.extractfile(ti).read())


def test_infra_escape_watch_catches_naive_extraction():
    """The hostile-layer checks are not vacuous: an unsafe extraction of each
    layer trips them, a confined one does not."""
    for style in ESCAPES:
        for safe in (False, True):
            t = tok()
            base = tempfile.mkdtemp(prefix="criod-escape-watch-")
            root = os.path.join(base, "state", "imaged", "layers", "x" + t)
            os.makedirs(root)
            w = EscapeWatch(t, base)
            try:
                tar = R.build_tar(_hostile_layer(style, t, w.sentinel))
                if safe:
                    _confined_extract(tar, root)
                    w.check()
                else:
                    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as tf:
                        try:
                            tf.extractall(root)
                        except OSError:
                            pass
                    with pytest.raises(AssertionError):
                        w.check()
            finally:
                w.cleanup()
                shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("style", ESCAPES)
def test_hostile_layer_cannot_escape(icri, img_suite, registries, style):  # noqa: F811
    t = tok()
    w = EscapeWatch(t, img_suite.base, [img_suite.state_dir, imaged_dir(img_suite)])
    pulled = False
    try:
        img = R.make_image([_hostile_layer(style, t, w.sentinel)])
        repo = publish(registries.plain, img, "hostile-" + style)
        ref = "%s/%s:v1" % (registries.plain.host, repo)
        try:
            pulled = pull(icri, ref) == img.id
        except grpc.RpcError as e:
            want = ESCAPE_REFUSALS.get(style)
            assert want, (style, "was refused, but it should be pulled (confined)", e)
            assert e.code() == want[0] and want[1] in e.details(), (style, e)
        assert pulled or style in ESCAPE_REFUSALS, style
        w.check()
        if pulled:
            assert listed(icri, img.id) is not None
        else:
            # A refused layer leaves no image and nothing unpacked.
            assert listed(icri, img.id) is None and not status(icri, ref).HasField("image")
            assert find_named(imaged_dir(img_suite), "inside-" + t) == [], "a failed pull left its layer"
    finally:
        w.cleanup()
        if pulled:
            remove(icri, img.id)


# ================================================================ layer contents

def test_whiteouts_and_opaque_dirs_pull(icri, registries):  # noqa: F811
    t = tok()
    lower = [R.directory("etc/app"), R.file("etc/app/a", "a"), R.file("etc/app/b", "b"),
             R.file("etc/gone", "gone"), R.file("etc/kept", "kept"), R.file("id-" + t, t)]
    upper = [R.whiteout("etc/gone"), R.directory("etc/app"), R.opaque("etc/app"), R.file("etc/app/c", "c")]
    img = R.make_image([R.busybox_layer("gzip"), lower, upper])
    repo = publish(registries.plain, img, "whiteout")
    ref = "%s/%s:v1" % (registries.plain.host, repo)
    assert pull(icri, ref) == img.id
    assert_image(listed(icri, img.id), img, [ref], ["%s/%s@%s" % (registries.plain.host, repo, img.digest)])


@pytest.mark.parametrize("mode", ["overlay", "copy"])
def test_whiteouts_take_effect_in_the_rootfs(test_user, registries, mode):  # noqa: F811
    """A deleted file and an opaque directory, seen from a container's root
    filesystem, both as an overlay mount and as the copy fallback."""
    t = tok()
    lower = [R.directory("etc/app"), R.file("etc/app/a", "a"), R.directory("etc/app/sub"),
             R.file("etc/app/sub/x", "x"), R.file("etc/gone", "gone"), R.file("etc/kept", "kept"),
             R.file("id-" + t, t)]
    upper = [R.whiteout("etc/gone"), R.directory("etc/app"), R.opaque("etc/app"), R.file("etc/app/c", "c"),
             R.file("etc/new", "new")]
    img = R.make_image([R.busybox_layer("gzip"), lower, upper])
    repo = publish(registries.plain, img, "wh-" + mode)
    ref = "%s/%s:v1" % (registries.plain.host, repo)
    s = Suite(extra_config=registries.config() + "[imaged]\nrootfs_mode = %s\n" % mode)
    try:
        s.start_all()
        c = s.client()
        assert pull(c, ref) == img.id
        c.close()
        cid = "c" * 64
        with mounted_rootfs(s, img.id, cid) as m:
            root = m.rootfs
            assert is_mountpoint(root) == (mode == "overlay")
            assert os.path.isfile(os.path.join(root, "bin/busybox"))
            assert not os.path.lexists(os.path.join(root, "etc/gone"))
            with open(os.path.join(root, "etc/kept")) as f:
                assert f.read() == "kept"
            with open(os.path.join(root, "etc/new")) as f:
                assert f.read() == "new"
            assert sorted(os.listdir(os.path.join(root, "etc/app"))) == ["c"]
            for dirpath, dirnames, filenames in os.walk(root):
                for n in dirnames + filenames:
                    assert not n.startswith(".wh."), os.path.join(dirpath, n)
            # The container's writes land in its own layer, not the image's.
            with open(os.path.join(root, "etc/kept"), "w") as f:
                f.write("changed")
        with mounted_rootfs(s, img.id, cid) as m:
            with open(os.path.join(m.rootfs, "etc/kept")) as f:
                assert f.read() == "kept"
        assert not os.path.exists(os.path.join(imaged_dir(s), "containers", cid))
        s.stop_all()
        s.check_logs()
        assert not s.failures, "\n".join(s.failures)
    finally:
        s.stop_all()
        unmount_under(s.base)
        s.cleanup()


def _user_xattrs_supported(path):
    probe = os.path.join(path, ".xattr-probe")
    with open(probe, "w"):
        pass
    try:
        os.setxattr(probe, "user.criod", b"1")
        return True
    except OSError:
        return False
    finally:
        os.unlink(probe)


def test_special_files_keep_their_metadata(icri, img_suite, registries):  # noqa: F811
    t = tok()
    layer = [R.file("id-" + t, t),
             R.file("bin/su-" + t, "#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678, xattrs={"user.criod": "e2e"}),
             R.file("bin/sg", "x", mode=0o2711, uid=0, gid=42),
             R.directory("shared", mode=0o2775, uid=1000, gid=1000),
             R.directory("sticky", mode=0o1777),
             R.chardev("dev/null-" + t, 1, 3, mode=0o666),
             R.blockdev("dev/loop-" + t, 7, 0, mode=0o660),
             R.fifo("run/fifo"),
             R.hardlink("bin/su-link", "bin/su-" + t),
             R.symlink("bin/dangling", "/no/such/target"),
             R.symlink("etc/abs-link", "/etc/passwd")]
    img = R.make_image([R.busybox_layer("gzip"), layer])
    ref = "%s/%s:v1" % (registries.plain.host, publish(registries.plain, img, "special"))
    assert pull(icri, ref) == img.id
    with mounted_rootfs(img_suite, img.id, "c" * 64) as m:
        r = m.rootfs
        st = os.lstat(os.path.join(r, "bin/su-" + t))
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o4755, 1234, 5678)
        assert os.lstat(os.path.join(r, "bin/su-link")).st_ino == st.st_ino
        st = os.lstat(os.path.join(r, "bin/sg"))
        assert (st.st_mode & 0o7777, st.st_gid) == (0o2711, 42)
        st = os.lstat(os.path.join(r, "shared"))
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o2775, 1000, 1000)
        assert os.lstat(os.path.join(r, "sticky")).st_mode & 0o7777 == 0o1777
        st = os.lstat(os.path.join(r, "dev/null-" + t))
        assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
        st = os.lstat(os.path.join(r, "dev/loop-" + t))
        assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (7, 0)
        assert stat.S_ISFIFO(os.lstat(os.path.join(r, "run/fifo")).st_mode)
        assert os.readlink(os.path.join(r, "bin/dangling")) == "/no/such/target"
        assert os.readlink(os.path.join(r, "etc/abs-link")) == "/etc/passwd"
        assert os.path.exists(os.path.join(r, "bin/busybox"))
        xattrs = _user_xattrs_supported(img_suite.state_dir)
        if xattrs:
            assert os.getxattr(os.path.join(r, "bin/su-" + t), "user.criod") == b"e2e"
    remove(icri, img.id)
    if not xattrs:
        pytest.skip("the state directory's file system has no user xattrs: the layer's user.criod was not checked")


# ================================================================ imaged restart and images in use

def test_imaged_killed_mid_pull(test_user, registries, fault_proxy):  # noqa: F811
    t = tok()
    content = os.urandom(12 << 20)
    layer = R.Layer([R.file("big-" + t, content)], "none")
    img = R.make_image([layer, ident(t)])
    repo = publish(registries.plain, img, "killed")
    ref = "%s/%s:v1" % (fault_proxy.host, repo)
    with registry_suite(registries) as s:
        s.start_all()
        c = s.client()
        try:
            fault_proxy.throttle(2 << 20)
            errors, done = [], []

            def worker():
                try:
                    done.append(pull(c, ref, timeout=120))
                except grpc.RpcError as e:
                    errors.append(e)

            th = threading.Thread(target=worker)
            th.start()
            deadline = time.monotonic() + 30
            while fault_proxy.bytes_sent(layer.digest) < (2 << 20):
                assert time.monotonic() < deadline and th.is_alive(), "the pull never got going"
                time.sleep(0.05)
            helpers = fetch_helpers(s.pid("imaged"))
            assert len(helpers) == 1, helpers
            s.stop("imaged", sig=signal.SIGKILL, check=False)
            wait_for(lambda: not os.path.exists("/proc/%d" % helpers[0])
                     or open("/proc/%d/stat" % helpers[0]).read().rsplit(")", 1)[1].split()[0] == "Z",
                     "the fetch helper outlived imaged", 10)
            th.join(60)
            assert not th.is_alive(), "PullImage did not return after imaged died"
            assert done == [] and len(errors) == 1, (done, errors)
            assert errors[0].code() == grpc.StatusCode.UNAVAILABLE, errors[0]  # imaged went away
            assert c.runtime("Version").runtime_name == "criod"
            fault_proxy.clear()
            fault_proxy.throttle(None)
            s.start("imaged")
            assert listed(c, img.id) is None
            assert not status(c, ref).HasField("image")
            root = imaged_dir(s)
            # Temp dirs of the killed pull are gone (an empty staging dir may stay).
            leftovers = {d: os.listdir(d) for d in find_named(root, "tmp", only_dirs=True) if os.listdir(d)}
            assert leftovers == {}, leftovers
            assert find_named(root, "big-" + t) == [], "a half-unpacked layer survived the restart"
            assert pull(c, ref) == img.id
            assert_image(listed(c, img.id), img, [ref], ["%s/%s@%s" % (fault_proxy.host, repo, img.digest)])
            paths = find_named(root, "big-" + t)
            assert paths and all(sha256_file(p) == hashlib.sha256(content).hexdigest() for p in paths)
        finally:
            fault_proxy.throttle(None)
            c.close()


# ================================================================ the per-pull fetch helper

def fetch_helpers(parent=None):
    """Pids of running imaged-fetch processes (children of parent if given)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if exe.endswith("/imaged-fetch") and (parent is None or ppid == parent):
            out.append(int(d))
    return out


def mapped_libraries(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(line.split()[5]) for line in f if len(line.split()) > 5}


def wait_for(cond, what, timeout=30):
    assert poll_until(cond, timeout), what


def pull_in_background(cri, ref):
    """Start a PullImage on a thread; returns the thread and the list its
    gRPC error (if any) lands in."""
    errors = []

    def worker():
        try:
            pull(cri, ref, timeout=120)
        except grpc.RpcError as e:
            errors.append(e)

    th = threading.Thread(target=worker)
    th.start()
    return th, errors


def test_registry_bytes_are_parsed_only_in_the_fetch_helper(icri, img_suite, registries, fault_proxy):  # noqa: F811
    """imaged itself never loads the HTTP, TLS or archive libraries: a pull
    runs one imaged-fetch child that has them, and it is gone afterwards."""
    imaged = img_suite.pid("imaged")
    libs = mapped_libraries(imaged)
    for lib in ("libcurl", "libarchive", "libssl", "libz.", "libzstd", "libisal"):
        assert not any(m.startswith(lib) for m in libs), (lib, sorted(libs))
    t = tok()
    content = os.urandom(6 << 20)
    layer = R.Layer([R.file("slow-" + t, content)], "none")
    img = R.make_image([layer, ident(t)])
    ref = "%s/%s:v1" % (fault_proxy.host, publish(registries.plain, img, "helper"))
    fault_proxy.throttle(2 << 20)
    try:
        result = {}
        th = threading.Thread(target=lambda: result.setdefault("id", pull(icri, ref, timeout=120)))
        th.start()
        wait_for(lambda: fault_proxy.bytes_sent(layer.digest) > 0, "the pull never got going")
        helpers = fetch_helpers(imaged)
        assert len(helpers) == 1, helpers
        assert any(m.startswith("libcurl") for m in mapped_libraries(helpers[0]))
        th.join(120)
        assert result.get("id") == img.id
        wait_for(lambda: not fetch_helpers(imaged), "the fetch helper outlived its pull", 10)
        assert not any(m.startswith("libcurl") for m in mapped_libraries(imaged))
    finally:
        fault_proxy.throttle(None)
    remove(icri, img.id)


def test_fetch_helper_killed_mid_pull(icri, img_suite, registries, fault_proxy):  # noqa: F811
    """A helper that dies (crashed on hostile bytes, or killed) fails that
    pull with UNAVAILABLE; imaged keeps running, keeps nothing half-unpacked,
    and the next pull works."""
    t = tok()
    content = os.urandom(8 << 20)
    layer = R.Layer([R.file("victim-" + t, content)], "none")
    img = R.make_image([layer, ident(t)])
    ref = "%s/%s:v1" % (fault_proxy.host, publish(registries.plain, img, "helperkill"))
    imaged = img_suite.pid("imaged")
    fault_proxy.throttle(2 << 20)
    try:
        th, errors = pull_in_background(icri, ref)
        wait_for(lambda: fault_proxy.bytes_sent(layer.digest) > (1 << 20), "the pull never got going")
        helpers = fetch_helpers(imaged)
        assert len(helpers) == 1, helpers
        os.kill(helpers[0], signal.SIGKILL)
        th.join(60)
        assert not th.is_alive(), "PullImage did not return after its helper died"
        assert len(errors) == 1
        assert errors[0].code() == grpc.StatusCode.UNAVAILABLE, errors[0]
        assert "fetch helper" in errors[0].details(), errors[0].details()
    finally:
        fault_proxy.clear()
        fault_proxy.throttle(None)
    assert img_suite.procs["imaged"].poll() is None, "imaged died with its helper"
    assert listed(icri, img.id) is None
    root = imaged_dir(img_suite)
    leftovers = {d: os.listdir(d) for d in find_named(root, "tmp", only_dirs=True) if os.listdir(d)}
    assert leftovers == {}, leftovers
    assert find_named(root, "victim-" + t) == [], "a half-unpacked layer was kept"
    assert pull(icri, ref) == img.id
    assert fetch_helpers(imaged) == []
    remove(icri, img.id)


def test_imaged_stopped_mid_pull(test_user, registries, fault_proxy):  # noqa: F811
    """SIGTERM during a pull: imaged stops its fetch helper, the pull ends
    with an error, imaged exits 0 at once and leaves no helper behind."""
    t = tok()
    layer = R.Layer([R.file("term-" + t, os.urandom(8 << 20))], "none")
    img = R.make_image([layer, ident(t)])
    ref = "%s/%s:v1" % (fault_proxy.host, publish(registries.plain, img, "term"))
    with registry_suite(registries) as s:
        s.start_all()
        c = s.client()
        try:
            fault_proxy.throttle(1 << 20)
            th, errors = pull_in_background(c, ref)
            wait_for(lambda: fault_proxy.bytes_sent(layer.digest) > 0, "the pull never got going")
            helpers = fetch_helpers(s.pid("imaged"))
            assert len(helpers) == 1, helpers
            started = time.monotonic()
            assert s.stop("imaged") == 0
            assert time.monotonic() - started < 10, "imaged waited for the pull to finish"
            th.join(60)
            assert not th.is_alive() and len(errors) == 1, errors
            assert errors[0].code() == grpc.StatusCode.CANCELLED, errors[0]  # imaged stopped the pull
            assert not os.path.exists("/proc/%d" % helpers[0]) or \
                open("/proc/%d/stat" % helpers[0]).read().rsplit(")", 1)[1].split()[0] == "Z"
        finally:
            fault_proxy.clear()
            fault_proxy.throttle(None)
            c.close()


def test_stalled_fetch_helper_is_killed(test_user, registries, fault_proxy):  # noqa: F811
    """A helper that stops reading (hung, stuck on storage, or taken over
    and stalling) is killed after [imaged] fetch_stall_timeout: the pull
    fails with DEADLINE_EXCEEDED saying so, nothing half-unpacked stays,
    and the next pull works."""
    t = tok()
    layer = R.Layer([R.file("stall-" + t, os.urandom(8 << 20))], "none")
    img = R.make_image([layer, ident(t)])
    ref = "%s/%s:v1" % (fault_proxy.host, publish(registries.plain, img, "stall"))
    with registry_suite(registries, "[imaged]\nfetch_stall_timeout = 2s\n") as s:
        s.start_all()
        c = s.client()
        try:
            fault_proxy.throttle(1 << 20)
            th, errors = pull_in_background(c, ref)
            wait_for(lambda: fault_proxy.bytes_sent(layer.digest) > (1 << 20), "the pull never got going")
            helpers = fetch_helpers(s.pid("imaged"))
            assert len(helpers) == 1, helpers
            os.kill(helpers[0], signal.SIGSTOP)
            started = time.monotonic()
            th.join(60)
            assert not th.is_alive(), "PullImage did not return with its helper stopped"
            assert time.monotonic() - started < 20
            assert len(errors) == 1, errors
            assert errors[0].code() == grpc.StatusCode.DEADLINE_EXCEEDED, errors[0]
            assert "read nothing for 2000 ms" in errors[0].details(), errors[0].details()
            wait_for(lambda: fetch_helpers(s.pid("imaged")) == [], "the stalled helper was not killed")
        finally:
            fault_proxy.clear()
            fault_proxy.throttle(None)
        root = imaged_dir(s)
        leftovers = {d: os.listdir(d) for d in find_named(root, "tmp", only_dirs=True) if os.listdir(d)}
        assert leftovers == {}, leftovers
        assert find_named(root, "stall-" + t) == [], "a half-unpacked layer was kept"
        assert pull(c, ref) == img.id
        c.close()


def test_remove_image_in_use_by_a_rootfs(icri, img_suite, registries):  # noqa: F811
    t = tok()
    img = R.make_image([R.busybox_layer("gzip"), ident(t)])
    ref = "%s/%s:v1" % (registries.plain.host, publish(registries.plain, img, "inuse"))
    assert pull(icri, ref) == img.id
    cid = "a" * 64
    c = ImagedClient(img_suite.sock("imaged"))
    mounted = False
    try:
        m = c.mount(cid, img.id)
        mounted = True
        assert m.image_id == img.id
        assert os.path.isabs(m.rootfs) and os.path.isfile(os.path.join(m.rootfs, "bin/busybox"))
        assert os.path.exists(os.path.join(m.rootfs, "id-" + t))
        with pytest.raises(grpc.RpcError) as e:
            remove(icri, img.id)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value
        assert "in use" in e.value.details().lower(), e.value.details()
        assert listed(icri, img.id) is not None
        assert status(icri, ref).image.id == img.id
        c.unmount(cid)
        mounted = False
        c.unmount(cid)  # idempotent
        assert not is_mountpoint(m.rootfs)
        assert not os.path.exists(os.path.join(m.rootfs, "bin/busybox"))
        remove(icri, img.id)
        assert listed(icri, img.id) is None
    finally:
        if mounted:
            try:
                c.unmount(cid)
            except Exception:  # noqa: BLE001 - the suite teardown unmounts anyway
                pass
        c.close()
