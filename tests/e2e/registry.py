"""Image-test infrastructure: build OCI/Docker images in pure Python, run
Debian's docker-registry on 127.0.0.1 (plain HTTP, TLS, htpasswd basic auth,
token auth with a test token server), push to it over the registry API v2,
and put fault-injecting proxies in front of it.

Nothing here talks to anything but 127.0.0.1. Every process, thread, port and
temporary directory is released by stop()/the fixtures' teardown.

Building blocks:
  file/directory/symlink/hardlink/chardev/blockdev/fifo/whiteout/opaque/raw
                          tar members (raw: a hostile member written verbatim)
  Layer(members, compression)      gzip | zstd | none
  busybox_layer(compression)       bin/busybox from busybox-static + applets
  make_image(layers, kind=...)     oci | oci-index | docker | docker-list
  Registry(workdir, tls=, htpasswd=, token=)   docker-registry serve
  TokenServer(workdir, users)      Docker token spec, JWTs with an x5c chain
  RegistryClient(host, ...)        push_image / get_manifest / get_blob
  FaultProxy(upstream)             HTTP proxy: drop / corrupt / 5xx / throttle
  TcpForwarder(upstream)           a second host:port for the same server
  ClosedPort()                     a reserved port nothing listens on
"""
import base64
import datetime
import functools
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"
BUSYBOX = "/bin/busybox"
LOCALHOST = "127.0.0.1"
MTIME = 1700000000

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_TYPES = {
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ("docker", "zstd"): "application/vnd.docker.image.rootfs.diff.tar.zstd",
    ("docker", "none"): "application/vnd.docker.image.rootfs.diff.tar",
}
KINDS = ("oci", "oci-index", "docker", "docker-list")
COMPRESSIONS = ("gzip", "zstd", "none")
ACCEPT_ALL = ", ".join([MT_OCI_INDEX, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_DOCKER_MANIFEST])


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------- tar members

class Member:
    """One tar member: a TarInfo written verbatim, and its data."""

    def __init__(self, info, data=None):
        self.info = info
        self.data = data

    def __repr__(self):
        return "Member(%r, type=%r, link=%r)" % (self.info.name, self.info.type, self.info.linkname)


def _tarinfo(name, type_, mode, uid=0, gid=0, size=0, linkname="", xattrs=None):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.size = size
    ti.linkname = linkname
    ti.mtime = MTIME
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    return ti


def _clean(path):
    return path.lstrip("/")


def file(path, data=b"", mode=0o644, uid=0, gid=0, xattrs=None):
    if isinstance(data, str):
        data = data.encode()
    return Member(_tarinfo(_clean(path), tarfile.REGTYPE, mode, uid, gid, len(data), xattrs=xattrs), data)


def directory(path, mode=0o755, uid=0, gid=0):
    return Member(_tarinfo(_clean(path).rstrip("/"), tarfile.DIRTYPE, mode, uid, gid))


def symlink(path, target, uid=0, gid=0):
    return Member(_tarinfo(_clean(path), tarfile.SYMTYPE, 0o777, uid, gid, linkname=target))


def hardlink(path, target):
    """A hard link to another member of the same layer (target: its name)."""
    return Member(_tarinfo(_clean(path), tarfile.LNKTYPE, 0o644, linkname=target))


def chardev(path, major, minor, mode=0o666):
    ti = _tarinfo(_clean(path), tarfile.CHRTYPE, mode)
    ti.devmajor, ti.devminor = major, minor
    return Member(ti)


def blockdev(path, major, minor, mode=0o660):
    ti = _tarinfo(_clean(path), tarfile.BLKTYPE, mode)
    ti.devmajor, ti.devminor = major, minor
    return Member(ti)


def fifo(path, mode=0o644):
    return Member(_tarinfo(_clean(path), tarfile.FIFOTYPE, mode))


def whiteout(path):
    """Delete `path` of the layers below (an empty ".wh.<name>" file)."""
    parent, _, name = _clean(path).rstrip("/").rpartition("/")
    return file((parent + "/" if parent else "") + ".wh." + name)


def opaque(dirpath):
    """Hide everything the layers below have in dirpath."""
    return file(_clean(dirpath).rstrip("/") + "/.wh..wh..opq")


def raw(name, data=b"", type_=tarfile.REGTYPE, linkname="", mode=0o644, uid=0, gid=0):
    """A member written exactly as given: "../../x", "/abs", links to "/"...
    type_ is a tarfile type (tarfile.SYMTYPE, LNKTYPE, ...)."""
    assert isinstance(type_, bytes), type_
    if isinstance(data, str):
        data = data.encode()
    size = len(data) if type_ in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    return Member(_tarinfo(name, type_, mode, uid, gid, size, linkname), data if size else None)


def build_tar(members, fmt=tarfile.PAX_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for m in members:
            tf.addfile(m.info, io.BytesIO(m.data) if m.data is not None else None)
    return buf.getvalue()


def tar_names(tar_bytes):
    """The member names exactly as stored (for checking hostile layers)."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tf:
        return [(ti.name, ti.type, ti.linkname) for ti in tf.getmembers()]


def compress(data, compression):
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3", "--no-progress"], input=data, capture_output=True,
                              check=True).stdout
    if compression == "none":
        return data
    raise ValueError("unknown compression %r" % compression)


def decompress(blob, compression):
    if compression == "gzip":
        return gzip.decompress(blob)
    if compression == "zstd":
        return subprocess.run(["zstd", "-q", "-d", "-c"], input=blob, capture_output=True, check=True).stdout
    return blob


class Layer:
    """A layer blob. digest/size are of the compressed blob (what the
    manifest names); diff_id is the sha256 of the uncompressed tar."""

    def __init__(self, members, compression="gzip"):
        self.tar = members if isinstance(members, bytes) else build_tar(members)
        self.compression = compression
        self.blob = compress(self.tar, compression)
        self.diff_id = sha256_digest(self.tar)
        self.digest = sha256_digest(self.blob)
        self.size = len(self.blob)

    def media_type(self, family):
        return LAYER_MEDIA_TYPES[(family, self.compression)]

    def with_compression(self, compression):
        return Layer(self.tar, compression)


BUSYBOX_APPLETS = ("sh", "ash", "ls", "cat", "echo", "sleep", "true", "false", "id", "env", "mkdir", "rm",
                   "touch", "stat", "test", "printf", "wc", "grep", "head", "ps", "hostname", "kill",
                   "date", "mount", "uname", "whoami", "readlink", "ln", "cp", "mv", "chmod", "sync")


def busybox_members():
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    members = [directory("bin"), directory("dev"), directory("etc"), directory("proc"), directory("sys"),
               directory("root", 0o700), directory("tmp", 0o1777), directory("var"), directory("usr"),
               file("bin/busybox", bb, 0o755)]
    members += [symlink("bin/" + a, "busybox") for a in BUSYBOX_APPLETS]
    members += [file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
                file("etc/group", "root:x:0:\nnogroup:x:65534:\n")]
    return members


@functools.lru_cache(maxsize=None)
def busybox_layer(compression="gzip"):
    """The shared base layer (cached: the same digest in every image)."""
    return Layer(busybox_members(), compression)


# ---------------------------------------------------------------- images

class Image:
    """What make_image built, and what a pull of it must report.

    id              "sha256:<config digest>" of the linux/amd64 image (CRI image_ref)
    digest          digest of the top-level manifest (index/list for those kinds)
    manifest_digest digest of the linux/amd64 manifest
    size            sum of the compressed layer sizes of the amd64 image
    layers          the amd64 image's Layer objects
    blobs           every blob to push, digest -> bytes
    manifests       [(digest, media type, bytes)], children first, top-level last
    """

    def __init__(self, kind):
        self.kind = kind
        self.blobs = {}
        self.manifests = []

    @property
    def layer_digests(self):
        return [l.digest for l in self.layers]

    @property
    def layer_sizes(self):
        return [l.size for l in self.layers]

    @property
    def media_type(self):
        return self.manifests[-1][1]

    @property
    def manifest_bytes(self):
        return self.manifests[-1][2]


def make_config(layers, arch="amd64", user="", env=None, cmd=None, entrypoint=None, workdir="", labels=None):
    cfg = {"User": user, "Env": env if env is not None else ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                                              "/usr/bin:/sbin:/bin"],
           "Cmd": cmd if cmd is not None else ["/bin/sh"]}
    if entrypoint:
        cfg["Entrypoint"] = entrypoint
    if workdir:
        cfg["WorkingDir"] = workdir
    if labels:
        cfg["Labels"] = labels
    return {
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "criod e2e layer %d" % i}
                    for i in range(len(layers))],
    }


def _single_manifest(img, layers, config, family):
    config_bytes = canonical_json(config)
    config_digest = sha256_digest(config_bytes)
    img.blobs[config_digest] = config_bytes
    for l in layers:
        img.blobs[l.digest] = l.blob
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST if family == "oci" else MT_DOCKER_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG if family == "oci" else MT_DOCKER_CONFIG,
                   "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": l.media_type(family), "digest": l.digest, "size": l.size} for l in layers],
    }
    mbytes = json.dumps(manifest, indent=3).encode()
    mdigest = sha256_digest(mbytes)
    img.manifests.append((mdigest, manifest["mediaType"], mbytes))
    return config_bytes, config_digest, mbytes, mdigest


def make_image(layers, kind="oci", compression=None, arch_variants=("arm64",), **config_kw):
    """layers: Layer objects or member lists (compressed with `compression`,
    default gzip; Layer objects are recompressed only when compression is
    given). The index kinds list linux/<other arch> manifests first and the
    linux/amd64 one last, so a client that takes the first entry gets it
    wrong."""
    assert kind in KINDS, kind
    ls = []
    for l in layers:
        if isinstance(l, Layer):
            ls.append(l if compression in (None, l.compression) else l.with_compression(compression))
        else:
            ls.append(Layer(l, compression or "gzip"))
    family = "oci" if kind.startswith("oci") else "docker"
    img = Image(kind)
    img.layers = ls
    img.size = sum(l.size for l in ls)
    img.config = make_config(ls, **config_kw)
    entries = []
    if kind in ("oci-index", "docker-list"):
        for arch in arch_variants:
            other = Layer([file("etc/arch", arch + "\n"), file("arch-only-" + arch, secrets.token_hex(8))],
                          ls[0].compression if ls else "gzip")
            ocfg = make_config([other], arch=arch, **config_kw)
            if arch == "arm64":
                ocfg["variant"] = "v8"
            _, _, ob, od = _single_manifest(img, [other], ocfg, family)
            plat = {"architecture": arch, "os": "linux"}
            if arch == "arm64":
                plat["variant"] = "v8"
            entries.append({"mediaType": img.manifests[-1][1], "digest": od, "size": len(ob), "platform": plat})
    img.config_bytes, img.config_digest, mbytes, img.manifest_digest = _single_manifest(img, ls, img.config,
                                                                                         family)
    img.id = img.config_digest
    if kind in ("oci-index", "docker-list"):
        entries.append({"mediaType": img.manifests[-1][1], "digest": img.manifest_digest, "size": len(mbytes),
                        "platform": {"architecture": "amd64", "os": "linux"}})
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX if kind == "oci-index" else MT_DOCKER_LIST,
                 "manifests": entries}
        ib = json.dumps(index, indent=2).encode()
        img.manifests.append((sha256_digest(ib), index["mediaType"], ib))
    img.digest = img.manifests[-1][0]
    return img


# ---------------------------------------------------------------- helpers

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOCALHOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection((LOCALHOST, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class ClosedPort:
    """A 127.0.0.1 port that is bound (so nobody else takes it) but not
    listening: connecting to it is refused. For 'registry down' tests."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((LOCALHOST, 0))
        self.port = self.sock.getsockname()[1]
        self.host = "%s:%d" % (LOCALHOST, self.port)

    def stop(self):
        self.sock.close()


def make_tls(workdir, name="server"):
    """A test CA and a server certificate for 127.0.0.1 and localhost, made
    with the openssl CLI. Returns dict(ca=, cert=, key=) paths."""
    d = os.path.join(workdir, "tls-" + name)
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = functools.partial(subprocess.run, check=True, capture_output=True)
    run(["openssl", "req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "3",
         "-subj", "/CN=criod e2e test CA %s" % secrets.token_hex(4),
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", *ec, "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=127.0.0.1"])
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
         "-CAcreateserial", "-out", p("server.pem"), "-days", "3", "-extfile", p("ext.cnf")])
    return {"ca": p("ca.pem"), "cert": p("server.pem"), "key": p("server.key")}


def make_htpasswd(path, users):
    """bcrypt entries (the only kind docker-registry accepts) via htpasswd -B."""
    lines = []
    for user, password in users.items():
        r = subprocess.run(["htpasswd", "-Bbn", "-C", "5", user, password], check=True, capture_output=True,
                           text=True)
        lines.append(r.stdout.strip())
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def basic_auth(username, password):
    return base64.b64encode(("%s:%s" % (username, password)).encode()).decode()


def write_auth_json(path, auths):
    """containers/docker auth.json: {"auths": {"host:port": {"auth": b64}}}."""
    with open(path, "w") as f:
        json.dump({"auths": {h: {"auth": basic_auth(u, p)} for h, (u, p) in auths.items()}}, f)
    os.chmod(path, 0o600)
    return path


# ---------------------------------------------------------------- token server

class _TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _reply(self, status, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        ts = self.server.owner
        u = urllib.parse.urlparse(self.path)
        if u.path != "/token":
            return self._reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        q = urllib.parse.parse_qs(u.query)
        scopes = []
        for s in q.get("scope", []):
            scopes += s.split(" ")
        user = None
        h = self.headers.get("Authorization", "")
        if h.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(h[6:]).decode().partition(":")
            except ValueError:
                user, password = "", None
            if ts.users.get(user) != password:
                ts.log_request("GET", user, scopes, 401)
                return self._reply(401, {"details": "bad credentials"},
                                   [("WWW-Authenticate", 'Basic realm="criod-test-token"')])
        return self._issue("GET", user, q.get("service", [""])[0], scopes)

    def do_POST(self):
        """OAuth2 password / refresh_token grant (distribution's POST flow)."""
        ts = self.server.owner
        n = int(self.headers.get("Content-Length") or 0)
        q = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if urllib.parse.urlparse(self.path).path != "/token":
            return self._reply(404, {})
        grant = q.get("grant_type", [""])[0]
        scopes = " ".join(q.get("scope", [])).split()
        user = None
        if grant == "password":
            user = q.get("username", [""])[0]
            if ts.users.get(user) != q.get("password", [None])[0]:
                ts.log_request("POST", user, scopes, 401)
                return self._reply(401, {"error": "invalid_grant"})
        elif grant == "refresh_token":
            user = ts.refresh_tokens.get(q.get("refresh_token", [""])[0])
            if user is None:
                ts.log_request("POST", None, scopes, 401)
                return self._reply(401, {"error": "invalid_grant"})
        else:
            return self._reply(400, {"error": "unsupported_grant_type"})
        return self._issue("POST", user, q.get("service", [""])[0], scopes)

    def _issue(self, method, user, service, scopes):
        ts = self.server.owner
        if user is None and ts.anonymous == "deny":
            ts.log_request(method, None, scopes, 401)
            return self._reply(401, {"details": "authentication required"},
                               [("WWW-Authenticate", 'Basic realm="criod-test-token"')])
        access = []
        for s in scopes:
            parts = s.split(":")
            if len(parts) < 3 or user is None:   # anonymous: a valid token granting nothing
                continue
            access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
        tok = ts.make_token(user or "", service or ts.service, access)
        ts.log_request(method, user, scopes, 200)
        resp = {"token": tok, "access_token": tok, "expires_in": 300,
                "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        if user is not None:
            rt = secrets.token_hex(16)
            ts.refresh_tokens[rt] = user
            resp["refresh_token"] = rt
        self._reply(200, resp)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HTTPThread:
    """handler_class served on host (loopback) at a free port by a
    ThreadingHTTPServer in a thread of its own, until close(): the test
    proxies and registry fronts the e2e tests start."""

    def __init__(self, handler_class, host=LOCALHOST):
        self.server = _Server((host, 0), handler_class)
        self.port = self.server.server_address[1]
        self.host = "%s:%d" % (host, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


class TokenServer:
    """Docker registry token server (distribution's token auth spec): GET
    /token?service=&scope= with optional basic auth, and the OAuth2 POST
    flow. Tokens are ES256 JWTs whose signing certificate travels in the
    "x5c" header; registry_cert is the bundle the registry trusts.
    anonymous: "empty" (a token granting no access) or "deny" (401)."""

    def __init__(self, workdir, users, service="criod-test-registry", issuer="criod-test-issuer",
                 anonymous="empty"):
        import jwt  # python3-jwt
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self._jwt = jwt
        self.users = dict(users)
        self.service, self.issuer, self.anonymous = service, issuer, anonymous
        self.refresh_tokens = {}
        self.requests = []
        self.lock = threading.Lock()
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "criod e2e token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=3))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.registry_cert = os.path.join(workdir, "token-signer.pem")
        with open(self.registry_cert, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.server = _Server((LOCALHOST, 0), _TokenHandler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.realm = "http://%s:%d/token" % (LOCALHOST, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, name="token-server", daemon=True)
        self.thread.start()

    def make_token(self, subject, audience, access, ttl=300):
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": audience, "exp": now + ttl, "nbf": now - 60,
                  "iat": now, "jti": secrets.token_hex(12), "access": access}
        return self._jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": self.x5c})

    def log_request(self, method, user, scopes, status):
        with self.lock:
            self.requests.append({"method": method, "user": user, "scopes": scopes, "status": status})

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# ---------------------------------------------------------------- registry

class Registry:
    """Debian's docker-registry (distribution 2.8) on 127.0.0.1:<free port>,
    filesystem storage in a temp dir. tls: make_tls() dict; htpasswd: a path;
    token: a TokenServer."""

    def __init__(self, workdir, name="registry", tls=None, htpasswd=None, token=None):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.name, self.tls, self.htpasswd, self.token = name, tls, htpasswd, token
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "registry.log")

    @property
    def host(self):
        return "%s:%d" % (LOCALHOST, self.port)

    @property
    def scheme(self):
        return "https" if self.tls else "http"

    def _config(self):
        lines = ["version: 0.1",
                 "log:", "  level: info", "  formatter: text", "  accesslog:", "    disabled: false",
                 "storage:", "  filesystem:", "    rootdirectory: %s" % os.path.join(self.dir, "data"),
                 "  delete:", "    enabled: true",
                 "  maintenance:", "    uploadpurging:", "      enabled: false",
                 "http:", "  addr: %s:%d" % (LOCALHOST, self.port), "  secret: %s" % secrets.token_hex(16),
                 "  headers:", "    X-Content-Type-Options: [nosniff]"]
        if self.tls:
            lines += ["  tls:", "    certificate: %s" % self.tls["cert"], "    key: %s" % self.tls["key"]]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: criod-test", "    path: %s" % self.htpasswd]
        elif self.token:
            lines += ["auth:", "  token:", "    realm: %s" % self.token.realm,
                      "    service: %s" % self.token.service, "    issuer: %s" % self.token.issuer,
                      "    rootcertbundle: %s" % self.token.registry_cert]
        return "\n".join(lines) + "\n"

    def start(self):
        for _attempt in range(5):
            self.port = free_port()
            cfg = os.path.join(self.dir, "config.yml")
            with open(cfg, "w") as f:
                f.write(self._config())
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", cfg], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, cwd=self.dir, env={"PATH": "/usr/bin:/bin"})
            log.close()
            if wait_port(self.port, proc=self.proc):
                return self
            self._kill()
            if "address already in use" not in self.log():
                break
        raise RuntimeError("docker-registry %s did not start:\n%s" % (self.name, self.log()[-3000:]))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self):
        self._kill()

    def client(self, username=None, password=None):
        return RegistryClient(self.host, scheme=self.scheme, ca_file=self.tls["ca"] if self.tls else None,
                              username=username, password=password)

    def blob_get_count(self, repo, digest):
        """GETs of a blob in the access log."""
        return len(re.findall(r'"GET /v2/%s/blobs/%s HTTP' % (re.escape(repo), re.escape(digest)), self.log()))


# ---------------------------------------------------------------- registry client (push and pull)

class RegistryError(Exception):
    def __init__(self, status, body, what):
        super().__init__("%s: HTTP %s %s" % (what, status, body[:300]))
        self.status = status
        self.body = body


_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    """Registry API v2 over urllib (never through a proxy from the
    environment): anonymous, basic or bearer-token auth after a 401."""

    def __init__(self, host, scheme="http", ca_file=None, username=None, password=None, timeout=30):
        self.host, self.scheme = host, scheme
        self.base = "%s://%s" % (scheme, host)
        self.username, self.password, self.timeout = username, password, timeout
        handlers = [urllib.request.ProxyHandler({})]
        if scheme == "https":
            handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
        self.opener = urllib.request.build_opener(*handlers)
        self.tokens = {}
        self.basic = False

    def _auth_header(self, scope):
        if scope in self.tokens:
            return {"Authorization": "Bearer " + self.tokens[scope]}
        if self.basic:
            return {"Authorization": "Basic " + basic_auth(self.username, self.password)}
        return {}

    def _fetch_token(self, challenge, scope):
        params = dict(_AUTH_PARAM.findall(challenge))
        q = {"service": params.get("service", "")}
        if scope:
            q["scope"] = scope
        url = params["realm"] + "?" + urllib.parse.urlencode(q)
        req = urllib.request.Request(url)
        if self.username is not None:
            req.add_header("Authorization", "Basic " + basic_auth(self.username, self.password))
        try:
            with self.opener.open(req, timeout=self.timeout) as r:
                doc = json.load(r)
        except urllib.error.HTTPError as e:
            raise RegistryError(e.code, e.read(), "token " + url)
        self.tokens[scope] = doc.get("token") or doc["access_token"]

    def request(self, method, path, data=None, headers=None, scope=None, what=None):
        """Returns (status, headers, body) for any status; handles 401 once."""
        url = path if path.startswith("http") else self.base + path
        for attempt in (0, 1):
            h = dict(headers or {})
            h.update(self._auth_header(scope))
            req = urllib.request.Request(url, data=data, method=method, headers=h)
            try:
                with self.opener.open(req, timeout=self.timeout) as r:
                    return r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                body = e.read()
                if e.code == 401 and attempt == 0:
                    chal = e.headers.get("WWW-Authenticate", "")
                    if chal.lower().startswith("bearer"):
                        self._fetch_token(chal, scope)
                        continue
                    if chal.lower().startswith("basic") and self.username is not None:
                        self.basic = True
                        continue
                return e.code, e.headers, body

    def _check(self, res, ok, what):
        status, headers, body = res
        if status not in ok:
            raise RegistryError(status, body, what)
        return res

    def ping(self):
        return self.request("GET", "/v2/")[0]

    def has_blob(self, repo, digest):
        return self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest),
                            scope="repository:%s:pull,push" % repo)[0] == 200

    def push_blob(self, repo, digest, data):
        scope = "repository:%s:pull,push" % repo
        if self.has_blob(repo, digest):
            return False
        _, h, _ = self._check(self.request("POST", "/v2/%s/blobs/uploads/" % repo, data=b"", scope=scope,
                                           headers={"Content-Length": "0"}), (202,), "start upload " + digest)
        loc = urllib.parse.urljoin(self.base + "/", h["Location"])
        loc += ("&" if "?" in loc else "?") + urllib.parse.urlencode({"digest": digest})
        _, h, _ = self._check(self.request("PUT", loc, data=data, scope=scope,
                                           headers={"Content-Type": "application/octet-stream",
                                                    "Content-Length": str(len(data))}),
                              (201,), "upload " + digest)
        assert h.get("Docker-Content-Digest") in (None, digest), h.get("Docker-Content-Digest")
        return True

    def push_manifest(self, repo, reference, media_type, data):
        _, h, _ = self._check(self.request("PUT", "/v2/%s/manifests/%s" % (repo, reference), data=data,
                                           scope="repository:%s:pull,push" % repo,
                                           headers={"Content-Type": media_type}),
                              (201,), "manifest %s:%s" % (repo, reference))
        got = h.get("Docker-Content-Digest")
        assert got == sha256_digest(data), (got, sha256_digest(data))
        return got

    def push_image(self, repo, image, tags=("latest",)):
        """Blobs (monolithic uploads), then every manifest by digest
        (children first), then the top-level manifest under each tag."""
        for d, data in image.blobs.items():
            self.push_blob(repo, d, data)
        for d, mt, data in image.manifests:
            self.push_manifest(repo, d, mt, data)
        for t in tags:
            self.push_manifest(repo, t, image.media_type, image.manifest_bytes)
        return image

    def get_manifest(self, repo, reference, accept=ACCEPT_ALL):
        _, h, body = self._check(self.request("GET", "/v2/%s/manifests/%s" % (repo, reference),
                                              headers={"Accept": accept}, scope="repository:%s:pull" % repo),
                                 (200,), "manifest %s:%s" % (repo, reference))
        return h.get("Content-Type"), body

    def get_blob(self, repo, digest, headers=None):
        _, _, body = self._check(self.request("GET", "/v2/%s/blobs/%s" % (repo, digest), headers=headers,
                                              scope="repository:%s:pull" % repo),
                                 (200, 206), "blob " + digest)
        return body

    def delete_manifest(self, repo, digest):
        return self.request("DELETE", "/v2/%s/manifests/%s" % (repo, digest),
                            scope="repository:%s:pull,push,delete" % repo)[0]


# ---------------------------------------------------------------- fault proxy

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "trailers", "transfer-encoding", "upgrade"}
BLOB_PATH = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$")


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        self._forward()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _forward(self):
        p = self.server.owner
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        path = urllib.parse.urlsplit(self.path).path
        m = BLOB_PATH.match(path)
        digest = m.group(2) if m else None
        rec = p._record(self.command, path, digest, self.headers.get("Range"))
        status = p._take_status_fault(path)
        if status:
            rec["status"] = status
            msg = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by FaultProxy"}]}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(msg)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(msg)
            return
        up = http.client.HTTPConnection(p.upstream_host, p.upstream_port, timeout=60)
        try:
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            up.request(self.command, self.path, body=body, headers=hdrs)
            resp = up.getresponse()
            rec["status"] = resp.status
            self.send_response_only(resp.status, resp.reason)
            length = resp.getheader("Content-Length")
            has_body = self.command != "HEAD" and resp.status not in (204, 304)
            buffered = None
            if has_body and length is None:
                buffered = resp.read()
                length = str(len(buffered))
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            if length is not None:
                self.send_header("Content-Length", length)
            self.end_headers()
            if not has_body:
                return
            start = 0
            cr = resp.getheader("Content-Range")
            if resp.status == 206 and cr:
                mm = re.match(r"bytes (\d+)-", cr)
                start = int(mm.group(1)) if mm else 0
            fault = p._take_body_fault(self.command, digest) if resp.status in (200, 206) else None
            sent = 0
            src = io.BytesIO(buffered) if buffered is not None else resp
            while True:
                chunk = src.read(65536)
                if not chunk:
                    break
                if fault and fault[0] == "corrupt":
                    pos = fault[1] - (start + sent)
                    if 0 <= pos < len(chunk):
                        chunk = chunk[:pos] + bytes([chunk[pos] ^ 0xFF]) + chunk[pos + 1:]
                        rec["fault"] = "corrupt@%d" % fault[1]
                if fault and fault[0] == "drop" and sent + len(chunk) >= fault[1]:
                    self.wfile.write(chunk[:fault[1] - sent])
                    self.wfile.flush()
                    sent = fault[1]
                    rec["fault"] = "dropped@%d" % sent
                    rec["bytes"] = sent
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                p._throttle(len(chunk), digest)
                if p.stopping.is_set():
                    self.close_connection = True
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                rec["bytes"] = sent
                p._progress(digest, len(chunk))
        except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
            rec["error"] = repr(e)
            self.close_connection = True
        finally:
            up.close()


class FaultProxy:
    """An HTTP reverse proxy on 127.0.0.1:<port> in front of a plain-HTTP
    registry, logging every request (self.requests) and injecting faults:

      drop_after(digest, n, times=1)  send n bytes of that blob, then close
      corrupt(digest, times=None)      flip one byte in the middle of the blob
      fail(status=503, times=3, match=None)  answer status for the next
                                       `times` requests (path containing match)
      throttle(bytes_per_second)       slow down every blob body
      clear()                          back to a transparent proxy
    """

    def __init__(self, upstream_host, upstream_port):
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.lock = threading.Lock()
        self.requests = []
        self.blob_bytes = {}
        self.stopping = threading.Event()
        self.clear()
        self.server = _Server((LOCALHOST, 0), _ProxyHandler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.host = "%s:%d" % (LOCALHOST, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)
        self.thread.start()

    @classmethod
    def of(cls, registry):
        assert not registry.tls
        return cls(LOCALHOST, registry.port)

    def clear(self):
        with self.lock:
            self.body_faults = {}      # digest -> [kind, arg, times_left or None]
            self.status_faults = []    # [status, times_left, match]
            self.rate = None

    def drop_after(self, digest, nbytes, times=1):
        with self.lock:
            self.body_faults[digest] = ["drop", nbytes, times]

    def corrupt(self, digest, offset=None, times=None, size=None):
        with self.lock:
            self.body_faults[digest] = ["corrupt", offset if offset is not None else (size or 2) // 2, times]

    def fail(self, status=503, times=3, match=None):
        with self.lock:
            self.status_faults.append([status, times, match])

    def throttle(self, bytes_per_second):
        with self.lock:
            self.rate = bytes_per_second

    def reset_log(self):
        with self.lock:
            self.requests = []
            self.blob_bytes = {}

    def _record(self, method, path, digest, rng):
        rec = {"method": method, "path": path, "digest": digest, "range": rng, "status": None, "bytes": 0,
               "fault": None, "t": time.monotonic()}
        with self.lock:
            self.requests.append(rec)
        return rec

    def _take_status_fault(self, path):
        with self.lock:
            for f in self.status_faults:
                if f[1] > 0 and (f[2] is None or f[2] in path):
                    f[1] -= 1
                    return f[0]
        return None

    def _take_body_fault(self, method, digest):
        if method != "GET" or digest is None:
            return None
        with self.lock:
            f = self.body_faults.get(digest)
            if not f:
                return None
            if f[2] is not None:
                f[2] -= 1
                if f[2] <= 0:
                    del self.body_faults[digest]
            return (f[0], f[1])

    def _throttle(self, n, digest):
        rate = self.rate
        if rate and digest:
            self.stopping.wait(n / rate)

    def _progress(self, digest, n):
        if digest:
            with self.lock:
                self.blob_bytes[digest] = self.blob_bytes.get(digest, 0) + n

    def bytes_sent(self, digest):
        with self.lock:
            return self.blob_bytes.get(digest, 0)

    def blob_gets(self, digest):
        """Requests that fetched (GET) a blob, whatever their outcome."""
        with self.lock:
            return [r for r in self.requests if r["method"] == "GET" and r["digest"] == digest]

    def count(self, method=None, contains=""):
        with self.lock:
            return sum(1 for r in self.requests if (method is None or r["method"] == method)
                       and contains in r["path"])

    def stop(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class TcpForwarder:
    """Raw TCP forwarding from 127.0.0.1:<port> to another local port: the
    same server under a second host:port (e.g. a TLS registry that criod has
    no ca_file for, or a basic-auth registry listed in auth.json)."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((LOCALHOST, 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.host = "%s:%d" % (LOCALHOST, self.port)
        self.conns = set()
        self.lock = threading.Lock()
        self.stopped = False
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept, name="tcp-forwarder", daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection((LOCALHOST, self.upstream_port), timeout=10)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            with self.lock:
                self.accepted += 1
                self.conns.update((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        self.thread.join(5)
        with self.lock:
            for s in self.conns:
                s.close()
            self.conns.clear()


# ---------------------------------------------------------------- the registry set used by the tests

class Registries:
    """Every registry, proxy and closed port the image tests use, and the
    criod configuration sections naming them.

      plain        docker-registry, plain HTTP, no auth        [insecure]
      proxy        FaultProxy -> plain                          [insecure]
      counter      FaultProxy -> plain, for counting fetches    [insecure]
      tls          docker-registry over TLS (test CA)           [ca_file]
      tls_untrusted  TcpForwarder -> tls                        [listed, no ca_file]
      basic        docker-registry, htpasswd                    [insecure]
      basic_authjson TcpForwarder -> basic, listed in auth.json [insecure]
      token        docker-registry, token auth (TokenServer)    [insecure]
      token_server the token realm on its own port               [insecure]
      mirror_origin  a closed port with mirrors = mirror_down, plain
      fallback     FaultProxy -> plain with mirrors = mirror_down
      mirror_down  a closed port                                [insecure]
      blocked      FaultProxy -> plain                          [blocked]
      unreachable  a closed port                                [insecure]

    Every host here is on 127.0.0.1, which imaged's registries policy
    refuses unless a [registry.HOST] section lists it: each one has a
    section, the token realm and the untrusted TLS alias included.
    """

    USER, PASSWORD = "criod-user", "s3cret-Pa55"

    def __init__(self):
        self.workdir = tempfile.mkdtemp(prefix="criod-registries-")
        os.chmod(self.workdir, 0o755)  # imaged (root) and criod read the CA file
        self._stoppers = []
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _own(self, obj):
        self._stoppers.append(obj.stop)
        return obj

    def _start(self):
        self.plain = self._own(Registry(self.workdir, "plain")).start()
        self.proxy = self._own(FaultProxy.of(self.plain))
        self.counter = self._own(FaultProxy.of(self.plain))
        self.tls_files = make_tls(self.workdir)
        self.tls = self._own(Registry(self.workdir, "tls", tls=self.tls_files)).start()
        self.tls_untrusted = self._own(TcpForwarder(self.tls.port))
        users = {self.USER: self.PASSWORD}
        self.basic = self._own(Registry(self.workdir, "basic",
                                        htpasswd=make_htpasswd(os.path.join(self.workdir, "htpasswd"),
                                                               users))).start()
        self.basic_authjson = self._own(TcpForwarder(self.basic.port))
        self.token_server = self._own(TokenServer(self.workdir, users))
        self.token = self._own(Registry(self.workdir, "token", token=self.token_server)).start()
        self.mirror_down = self._own(ClosedPort())
        self.mirror_origin = self._own(ClosedPort())
        self.fallback = self._own(FaultProxy.of(self.plain))
        self.blocked = self._own(FaultProxy.of(self.plain))
        self.unreachable = self._own(ClosedPort())
        self.auth_json = write_auth_json(os.path.join(self.workdir, "auth.json"),
                                         {self.basic_authjson.host: (self.USER, self.PASSWORD)})

    def config(self):
        """[registry.HOST] and [imaged] sections for criod's config file."""
        insecure = [self.plain, self.proxy, self.counter, self.basic, self.basic_authjson, self.token,
                    self.mirror_down, self.unreachable]
        out = []
        for r in insecure:
            out.append("[registry.%s]\ninsecure = true\n" % r.host)
        out.append("[registry.%s]\nca_file = %s\n" % (self.tls.host, self.tls_files["ca"]))
        # Listed (the policy lets imaged-fetch connect) but with no ca_file.
        out.append("[registry.%s]\n" % self.tls_untrusted.host)
        out.append("[registry.%s:%d]\ninsecure = true\n" % (LOCALHOST, self.token_server.port))
        out.append("[registry.%s]\ninsecure = true\nmirrors = %s, %s\n"
                   % (self.mirror_origin.host, self.mirror_down.host, self.plain.host))
        out.append("[registry.%s]\ninsecure = true\nmirrors = %s\n" % (self.fallback.host, self.mirror_down.host))
        out.append("[registry.%s]\ninsecure = true\nblocked = true\n" % self.blocked.host)
        out.append("[imaged]\nauth_file = %s\n" % self.auth_json)
        return "".join(out)

    def stop(self):
        errors = []
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the rest
                errors.append(repr(e))
        self._stoppers = []
        shutil.rmtree(self.workdir, ignore_errors=True)
        assert not errors, errors


@pytest.fixture(scope="session")
def registries():
    r = Registries()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="session")
def plain_registry(registries):
    return registries.plain


@pytest.fixture
def fault_proxy(registries):
    """The shared FaultProxy, transparent and with an empty log for each test."""
    p = registries.proxy
    p.clear()
    p.reset_log()
    yield p
    p.clear()
    p.throttle(None)


@pytest.fixture
def counting_proxy(registries):
    p = registries.counter
    p.clear()
    p.reset_log()
    yield p
    p.clear()
