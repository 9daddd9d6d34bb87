"""What a pull may reach and how much it may take (issue 13), end to end
through criod and imaged:

  - the registries policy: a registry on a loopback, link-local, private or
    unspecified address (as a literal, or a name resolving to one) is
    refused PERMISSION_DENIED before any connection unless a
    [registry.HOST] section lists it or [policy] allow_private_registries
    is true; redirects and token realms are held to the same rule;
  - limits on layers: [imaged] max_layer_size (uncompressed bytes),
    max_layer_entries, min_free_space: RESOURCE_EXHAUSTED, nothing left in
    the store's tmp/ or layers/;
  - [imaged] max_pending_pulls, and bounded credentials.

Nothing here connects anywhere but 127.0.0.1: the refused non-loopback
addresses (169.254.169.254, 10.0.0.1) must be refused before a connect is
even tried, which the tests assert by timing and by the message; loopback
targets count their connections.
"""
import http.client
import http.server
import os
import threading
import time

import grpc
import pytest

import registry as R
from registry import registries  # noqa: F401 - fixture
from test_images import (PULL_TIMEOUT, imaged_dir, listed, pb, publish, pull, pull_error, registry_suite, tok,
                         ident)


@pytest.fixture(scope="module")
def pol_suite(test_user, registries):  # noqa: F811
    """The registries the image tests list, and nothing else."""
    with registry_suite(registries) as s:
        s.start_all()
        yield s


@pytest.fixture
def pcri(pol_suite):
    c = pol_suite.client()
    yield c
    c.close()


def denied(e, *words):
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (e.code(), e.details())
    for w in words:
        assert w in e.details(), (w, e.details())


class Redirector:
    """A registry front on 127.0.0.1 that forwards to upstream but answers
    a GET of the chosen blobs with a 307 to another base URL."""

    def __init__(self, upstream_port):
        owner = self
        self.upstream_port = upstream_port
        self.redirects = {}  # digest -> base URL
        self.realm = None    # when set: every request is a 401 naming this token realm
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                owner.requests.append((self.command, self.path))
                if owner.realm:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer realm="%s",service="x"' % owner.realm)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                for digest, base in owner.redirects.items():
                    if self.path.endswith("/blobs/" + digest):
                        self.send_response(307)
                        self.send_header("Location", base + self.path)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                up = http.client.HTTPConnection(R.LOCALHOST, owner.upstream_port, timeout=30)
                try:
                    up.request(self.command, self.path,
                               headers={k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")})
                    resp = up.getresponse()
                    body = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() in ("content-type", "docker-content-digest", "content-range"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                finally:
                    up.close()

            do_HEAD = do_GET

        self.http = R.HTTPThread(Handler)
        self.port, self.host = self.http.port, self.http.host

    def stop(self):
        self.http.close()


# ================================================================ the registries policy

def test_unlisted_loopback_registry_is_refused_before_any_connection(test_user, pcri, registries):  # noqa: F811
    img = R.make_image([ident(tok())])
    repo = publish(registries.plain, img, "unlisted")
    fwd = R.TcpForwarder(registries.plain.port)  # the same registry on a port no section names
    try:
        ref = "%s/%s:v1" % (fwd.host, repo)
        t0 = time.monotonic()
        e = pull_error(pcri, ref)
        denied(e, fwd.host, "loopback", "allow_private_registries", "[registry.%s]" % fwd.host)
        assert time.monotonic() - t0 < 10, "refused at once, not after retries"
        assert fwd.accepted == 0, "the unlisted registry was contacted"
        assert listed(pcri, img.id) is None
        # A name that resolves to loopback: refused at connect time, still
        # without a connection.
        port = fwd.port
        e = pull_error(pcri, "localhost:%d/%s:v1" % (port, repo))
        denied(e, "localhost:%d" % port, "resolves to", "loopback")
        assert fwd.accepted == 0, "a name resolving to loopback was connected to"
        # Listed, the same registry pulls.
        with registry_suite(registries, "[registry.%s]\ninsecure = true\n" % fwd.host) as s:
            s.start_all()
            c = s.client()
            try:
                assert pull(c, ref) == img.id
            finally:
                c.close()
        assert fwd.accepted >= 1
    finally:
        fwd.stop()


@pytest.mark.parametrize("host,klass", [("169.254.169.254", "link-local"), ("[::1]:2379", "loopback"),
                                        ("10.0.0.1", "private"), ("0.0.0.0:5000", "unspecified"),
                                        ("2130706433:10250", "loopback"), ("[::ffff:a9fe:a9fe]:80", "link-local")])
def test_private_address_literals_are_refused_without_connecting(pcri, host, klass):
    t0 = time.monotonic()
    e = pull_error(pcri, "%s/e2e/probe:v1" % host, timeout=30)
    denied(e, host, klass, "allow_private_registries")
    if "169.254.169.254" in host or "a9fe:a9fe" in host:
        assert "cloud metadata" in e.details(), e.details()
    # A connect attempt to a non-local address would take the connect
    # timeout or retries; the refusal comes first.
    assert time.monotonic() - t0 < 5, e.details()
    assert "curl" not in e.details() and "Connection" not in e.details(), e.details()


def test_allow_private_registries(test_user, registries):  # noqa: F811
    img = R.make_image([ident(tok())])
    repo = publish(registries.plain, img, "allowpriv")
    fwd = R.TcpForwarder(registries.plain.port)
    try:
        # Plain HTTP needs a section; https to an unlisted host fails to
        # connect instead of being refused by the policy.
        with registry_suite(registries, "[policy]\nallow_private_registries = true\n") as s:
            s.start_all()
            c = s.client()
            try:
                e = pull_error(c, "%s/%s:v1" % (fwd.host, repo))
                assert e.code() != grpc.StatusCode.PERMISSION_DENIED, e.details()
                assert fwd.accepted >= 1, "allowed, so it was contacted"
                # An unlisted host's transport failure is not a port scanner:
                # no curl details.
                assert "cannot reach registry %s" % fwd.host in e.details(), e.details()
                assert "curl" not in e.details() and "SSL" not in e.details(), e.details()
            finally:
                c.close()
    finally:
        fwd.stop()


def test_redirect_to_unlisted_loopback_port_is_refused(pcri, pol_suite, registries):  # noqa: F811
    layer = R.Layer([R.file("redir-" + tok(), os.urandom(64 << 10))])
    img = R.make_image([layer])
    repo = publish(registries.plain, img, "redirect")
    red = Redirector(registries.plain.port)
    fwd = R.TcpForwarder(registries.plain.port)
    try:
        # The redirector is listed for this test in a suite of its own.
        extra = "[registry.%s]\ninsecure = true\n" % red.host
        with registry_suite(registries, extra) as s:
            s.start_all()
            c = s.client()
            try:
                red.redirects[layer.digest] = "http://" + fwd.host
                e = pull_error(c, "%s/%s:v1" % (red.host, repo))
                denied(e, fwd.host, "loopback")
                assert fwd.accepted == 0, "the redirect target was contacted"
                assert any(layer.digest in p for _, p in red.requests), red.requests
                assert listed(c, img.id) is None
                assert os.listdir(os.path.join(imaged_dir(s), "tmp")) == []
                # To a listed host, the same redirect is followed.
                red.redirects[layer.digest] = "http://" + registries.plain.host
                assert pull(c, "%s/%s:v1" % (red.host, repo)) == img.id
            finally:
                c.close()
    finally:
        fwd.stop()
        red.stop()


# ================================================================ limits on layers

LIMITS = "[imaged]\nmax_layer_size = 1MiB\nmax_layer_entries = 50\n"


@pytest.fixture(scope="module")
def limit_suite(test_user, registries):  # noqa: F811
    with registry_suite(registries, LIMITS) as s:
        s.start_all()
        yield s


def store_is_clean(suite):
    root = imaged_dir(suite)
    assert os.listdir(os.path.join(root, "tmp")) == [], os.listdir(os.path.join(root, "tmp"))
    assert os.listdir(os.path.join(root, "layers")) == [], os.listdir(os.path.join(root, "layers"))


def exhausted(e, *words):
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
    for w in words:
        assert w in e.details(), (w, e.details())


def test_zstd_bomb_layer_is_cut_at_max_layer_size(limit_suite, registries):  # noqa: F811
    bomb = R.Layer([R.file("bomb-" + tok(), b"\0" * (16 << 20))], compression="zstd")
    assert bomb.size < 64 << 10, bomb.size  # tiny on the wire, 16 MiB unpacked
    img = R.make_image([bomb])
    repo = publish(registries.plain, img, "bomb")
    c = limit_suite.client()
    try:
        e = pull_error(c, "%s/%s:v1" % (registries.plain.host, repo))
        exhausted(e, bomb.digest, "max_layer_size", str(1 << 20))
        assert listed(c, img.id) is None
        store_is_clean(limit_suite)
        # gzip too, and the same limit allows a layer below it.
        gz = R.Layer([R.file("bomb-" + tok(), b"\0" * (4 << 20))], compression="gzip")
        repo2 = publish(registries.plain, R.make_image([gz]), "bomb")
        exhausted(pull_error(c, "%s/%s:v1" % (registries.plain.host, repo2)), gz.digest, "max_layer_size")
        store_is_clean(limit_suite)
    finally:
        c.close()


def test_too_many_entries_is_refused(limit_suite, registries):  # noqa: F811
    t = tok()
    many = R.Layer([R.file("e-%s-%d" % (t, i), "x") for i in range(60)], compression="zstd")
    img = R.make_image([many])
    repo = publish(registries.plain, img, "entries")
    c = limit_suite.client()
    try:
        e = pull_error(c, "%s/%s:v1" % (registries.plain.host, repo))
        exhausted(e, many.digest, "max_layer_entries (50)")
        store_is_clean(limit_suite)
        # Within both limits a pull works in the same suite.
        ok = R.make_image([[R.file("ok-%s-%d" % (t, i), "x") for i in range(10)]])
        assert pull(c, "%s/%s:v1" % (registries.plain.host, publish(registries.plain, ok, "entries"))) == ok.id
    finally:
        c.close()


def test_min_free_space_stops_unpacking(test_user, registries):  # noqa: F811
    img = R.make_image([ident(tok())])
    repo = publish(registries.plain, img, "nospace")
    # More free space than this machine has.
    with registry_suite(registries, "[imaged]\nmin_free_space = 4096GiB\n") as s:
        s.start_all()
        c = s.client()
        try:
            e = pull_error(c, "%s/%s:v1" % (registries.plain.host, repo))
            exhausted(e, img.layer_digests[0], "min_free_space")
            store_is_clean(s)
        finally:
            c.close()


# ================================================================ the pull queue and credentials

def test_pull_queue_is_bounded(test_user, registries):  # noqa: F811
    proxy = registries.proxy
    proxy.clear()
    proxy.reset_log()
    layers = [R.Layer([R.file("q-%d-%s" % (i, tok()), os.urandom(512 << 10))]) for i in range(3)]
    imgs = [R.make_image([layer]) for layer in layers]
    refs = ["%s/%s:v1" % (proxy.host, publish(registries.plain, img, "queue")) for img in imgs]
    with registry_suite(registries, "[imaged]\nmax_pending_pulls = 2\n") as s:
        s.start_all()
        results, errors = {}, []

        def worker(key, ref):
            c = s.client()
            try:
                results[key] = pull(c, ref)
            except Exception as e:  # noqa: BLE001 - asserted below
                errors.append((key, e))
            finally:
                c.close()

        proxy.throttle(64 << 10)  # about 8 s a layer: the two pulls stay pending
        try:
            threads = [threading.Thread(target=worker, args=(k, refs[k])) for k in (0, 1)]
            for th in threads:
                th.start()
            deadline = time.monotonic() + 30
            while not (proxy.blob_gets(layers[0].digest) and proxy.blob_gets(layers[1].digest)):
                assert time.monotonic() < deadline, proxy.requests
                time.sleep(0.05)
            # An identical pull joins the first and is not refused.
            same = threading.Thread(target=worker, args=("0-again", refs[0]))
            same.start()
            threads.append(same)
            c = s.client()
            try:
                t0 = time.monotonic()
                e = pull_error(c, refs[2])
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
                assert "too many pulls in progress" in e.details() and "max_pending_pulls" in e.details(), e.details()
                assert time.monotonic() - t0 < 5
                assert not proxy.blob_gets(layers[2].digest)
            finally:
                c.close()
        finally:
            proxy.throttle(None)
        for th in threads:
            th.join(PULL_TIMEOUT)
        assert errors == [], errors
        assert results == {0: imgs[0].id, 1: imgs[1].id, "0-again": imgs[0].id}, results
        assert len(proxy.blob_gets(layers[0].digest)) == 1, "the identical pull shared the job"
        # The queue has room again.
        c = s.client()
        try:
            assert pull(c, refs[2]) == imgs[2].id
        finally:
            c.close()
    proxy.clear()


@pytest.mark.parametrize("field", ["username", "password", "auth", "identity_token", "registry_token"])
def test_overlong_credential_is_invalid_argument(pcri, registries, field):  # noqa: F811
    counter = registries.counter
    counter.reset_log()
    ref = "%s/e2e/creds-%s:v1" % (counter.host, tok())
    e = pull_error(pcri, ref, pb.AuthConfig(**{field: "a" * ((64 << 10) + 1)}))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
    assert field in e.details() and "65536" in e.details(), e.details()
    assert counter.requests == [], "nothing was fetched"


def test_token_realm_and_mirror_on_unlisted_loopback_ports(test_user, registries):  # noqa: F811
    img = R.make_image([ident(tok())])
    repo = publish(registries.plain, img, "realm")
    red = Redirector(registries.plain.port)
    fwd = R.TcpForwarder(registries.plain.port)
    try:
        # The registry is listed, its mirror (fwd) is not: the mirror is
        # skipped without a connection and the origin serves.
        extra = "[registry.%s]\ninsecure = true\nmirrors = %s\n" % (red.host, fwd.host)
        with registry_suite(registries, extra) as s:
            s.start_all()
            c = s.client()
            try:
                assert pull(c, "%s/%s:v1" % (red.host, repo)) == img.id
                assert fwd.accepted == 0, "the unlisted mirror was contacted"
                assert s.log_has("imaged", "skipping a registry mirror the registries policy refuses")
                # A token realm on an unlisted loopback port: refused.
                red.realm = "http://%s/token" % fwd.host
                e = pull_error(c, "%s/%s:v2" % (red.host, repo))
                denied(e, fwd.host, "loopback")
                assert fwd.accepted == 0, "the token realm was contacted"
            finally:
                c.close()
    finally:
        fwd.stop()
        red.stop()
