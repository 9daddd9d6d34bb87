"""The images critest pulls, built from Debian packages with the builders of
tests/e2e/registry.py, under the names and with the contents cri-tools'
pkg/validate expects (what each spec runs in them is noted below).

Sources, all Debian's:
  busybox-static (installed)  the base of every image: /bin/busybox and every
                              applet as a hard link in /bin, like the upstream
                              busybox image
  busybox (downloaded, not installed: it conflicts with busybox-static)
                              the dynamic build, as the busybox image's
                              /bin/sh: it looks commands up in PATH and execs
                              them, where busybox-static runs its applets in
                              the shell's own process ("runtime should
                              support MaskedPaths" masks /bin/ls and expects
                              "/bin/sh: ls: Permission denied")
  procps, util-linux (installed)  pgrep and ipcs, which busybox lacks
  nginx (downloaded, not installed: its postinst would start a service)
                              the web servers
  gcc + libc6-dev (installed) the nonewprivs image's setuid helper, nnp.c
Shared libraries come from the host, found with ldd.
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import registry as R  # noqa: E402

E2E = "registry.k8s.io/e2e-test-images/"
STAGING = "gcr.io/k8s-staging-cri-tools/"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""

NGINX_CONF = """user www-data;
worker_processes 1;
pid /var/run/nginx.pid;
error_log /dev/stderr notice;
events {
    worker_connections 64;
}
http {
    access_log /dev/stdout;
    server {
        listen %d;
        server_name localhost;
        location / {
            root /usr/share/nginx/html;
            index index.html;
        }
    }
}
"""
INDEX_HTML = "<!DOCTYPE html>\n<html><head><title>%s</title></head><body><h1>%s</h1></body></html>\n"

HTTPD_FOREGROUND = """#!/bin/sh
# busybox httpd in the foreground; the line below is what "should support
# container log" looks for in the log.
echo "httpd: serving /usr/local/apache2/htdocs on port 80"
exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs
"""


class BuildError(Exception):
    pass


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise BuildError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, (r.stderr or r.stdout).strip()))
    return r.stdout


def download_debs(workdir, packages):
    """apt-get download (into workdir, no install) and dpkg-deb -x; returns
    the extraction root. Runs `apt-get update` once if the lists are stale."""
    debs = os.path.join(workdir, "debs")
    root = os.path.join(workdir, "debroot")
    os.makedirs(debs, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    cmd = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *packages]
    r = subprocess.run(cmd, cwd=debs, capture_output=True, text=True)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
        _run(cmd, cwd=debs)
    for name in sorted(os.listdir(debs)):
        if name.endswith(".deb"):
            _run(["dpkg-deb", "-x", os.path.join(debs, name), root])
    return root


def shared_libs(binary):
    """The absolute paths of the libraries and loader `binary` needs."""
    out = _run(["ldd", binary])
    paths = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            raise BuildError("%s: %s (a library missing on this machine)" % (binary, line))
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" ")[0]
            if target.startswith("/"):
                paths.append(target)
        elif line.startswith("/"):
            paths.append(line.split(" ")[0])
    return paths


def read(path):
    with open(path, "rb") as f:
        return f.read()


def with_libs(binaries):
    """Members for the shared libraries of binaries (host path -> image path
    pairs), under the paths ldd names (/lib/x86_64-linux-gnu, /lib64 as
    directories of their own)."""
    members, seen, dirs = [], set(), set()
    for host_path in binaries:
        for lib in shared_libs(host_path):
            if lib in seen:
                continue
            seen.add(lib)
            d = os.path.dirname(lib).lstrip("/")
            parts = d.split("/")
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                if sub not in dirs:
                    dirs.add(sub)
                    members.append(R.directory(sub))
            members.append(R.file(lib, read(os.path.realpath(lib)), 0o755))
    return members


def base_members():
    """busybox-static with all its applets in /bin, the upstream busybox
    image's users and groups, and the usual directories."""
    applets = _run([R.BUSYBOX, "--list"]).split()
    m = [R.directory(d) for d in ("bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "usr/sbin",
                                  "usr/local", "usr/local/bin", "sbin", "var", "var/spool", "var/spool/mail",
                                  "var/www", "run")]
    m += [R.directory("root", 0o700), R.directory("tmp", 0o1777), R.symlink("var/run", "../run")]
    m.append(R.file("bin/busybox", read(R.BUSYBOX), 0o755))
    # Hard links, as in the upstream image: runc masks a path by mounting
    # /dev/null on it, which through a symlink would mask /bin/busybox
    # itself ("runtime should support MaskedPaths" masks /bin/ls).
    m += [R.hardlink("bin/" + a, "bin/busybox") for a in applets if a != "busybox"]
    m += [R.file("etc/passwd", PASSWD), R.file("etc/group", GROUP),
          R.file("etc/hostname", "localhost\n"), R.file("etc/hosts", "127.0.0.1 localhost\n")]
    return m


class Images:
    """Builds every image once; push(client) pushes them under their
    repositories and tags. self.images: [(public name, Image)]."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.images = []
        self.pushes = []  # (repository in the registry, tags, Image)
        self.errors = []

    def add(self, public_repo, tags, build):
        """public_repo e.g. registry.k8s.io/e2e-test-images/busybox; build()
        returns the Image. A failing build is recorded, not raised."""
        try:
            img = build()
        except (BuildError, OSError) as e:
            self.errors.append("%s: %s" % (public_repo, e))
            return
        repo = public_repo.split("/", 1)[1]
        self.pushes.append((repo, tuple(tags), img))
        for t in tags:
            self.images.append(("%s:%s" % (public_repo, t), img))

    def build_all(self):
        base = R.Layer(base_members())
        debroot = None
        try:
            debroot = download_debs(self.workdir, ["busybox", "nginx"])
        except BuildError as e:
            self.errors.append("Debian packages busybox, nginx: %s" % e)

        def marker(name):
            # What makes each test image its own: a file named after it
            # (the upstream Dockerfile ADDs ${TEST}).
            return R.Layer([R.file(name, name + "\n")])

        def image(layers, kind="oci", **cfg):
            cfg.setdefault("env", [DEFAULT_PATH])
            return R.make_image(layers, kind=kind, **cfg)

        # registry.k8s.io/e2e-test-images/busybox:1.29-2, every spec's
        # default image: sh, top, sleep, echo, id, ls, touch, mount, ping,
        # brctl, netstat, hostname, pidof, cat, grep, dd, pgrep, ipcs.
        def busybox():
            tools = [("/usr/bin/pgrep", "usr/bin/pgrep"), ("/usr/bin/ipcs", "usr/bin/ipcs")]
            if debroot is None:
                # Still an image (for --keep-going), with busybox-static's
                # shell: only "runtime should support MaskedPaths" fails.
                self.errors.append(E2E + "busybox: built without the dynamic busybox as /bin/sh")
            else:
                tools.append((os.path.join(debroot, "bin", "busybox"), "bin/sh"))
            members = [R.directory("bin"), R.directory("usr"), R.directory("usr/bin")]
            members += [R.file(dst, read(src), 0o755) for src, dst in tools]
            members += with_libs([src for src, _ in tools])
            return image([base, R.Layer(members)], kind="docker-list", cmd=["sh"])

        self.add(E2E + "busybox", ["1.29-2"], busybox)

        def nginx(port, kind):
            if debroot is None:
                raise BuildError("nginx was not downloaded")
            binary = os.path.join(debroot, "usr", "sbin", "nginx")
            members = [R.directory(d) for d in ("usr", "usr/sbin", "usr/share", "usr/share/nginx",
                                                "usr/share/nginx/html", "etc", "etc/nginx", "var", "var/lib",
                                                "var/lib/nginx", "var/log", "var/log/nginx", "var/cache",
                                                "var/cache/nginx")]
            members += [R.file("usr/sbin/nginx", read(binary), 0o755),
                        R.file("etc/nginx/nginx.conf", NGINX_CONF % port),
                        R.file("usr/share/nginx/html/index.html", INDEX_HTML % ("nginx", "Welcome to nginx!")),
                        R.symlink("var/log/nginx/access.log", "/dev/stdout"),
                        R.symlink("var/log/nginx/error.log", "/dev/stderr")]
            members += with_libs([binary])
            return image([base, R.Layer(members)], kind=kind, cmd=["nginx", "-g", "daemon off;"])

        # nginx:1.14-2: a web server on port 80 (checkMainPage GETs / and
        # wants 200) writing /var/run/nginx.pid, whose master's cmdline says
        # "master process" and which pidof finds as "nginx".
        self.add(E2E + "nginx", ["1.14-2"], lambda: nginx(80, "docker-list"))
        # hostnet-nginx-amd64: the same on port 12003, for host-network pods.
        self.add(STAGING + "hostnet-nginx-amd64", ["latest"], lambda: nginx(12003, "oci"))

        # httpd:2.4.39-4: a web server on port 80 whose log says "httpd"
        # (busybox's httpd applet, started by a script).
        def httpd():
            members = [R.directory(d) for d in ("usr", "usr/local", "usr/local/bin", "usr/local/apache2",
                                                "usr/local/apache2/htdocs")]
            members += [R.file("usr/local/bin/httpd-foreground", HTTPD_FOREGROUND, 0o755),
                        R.file("usr/local/apache2/htdocs/index.html", INDEX_HTML % ("httpd", "It works!"))]
            return image([base, R.Layer(members)], kind="docker-list", cmd=["httpd-foreground"],
                         workdir="/usr/local/apache2")

        self.add(E2E + "httpd", ["2.4.39-4"], httpd)

        # nonewprivs:1.3: a setuid-root program printing "Effective uid: N".
        def nonewprivs():
            out = os.path.join(self.workdir, "nnp")
            _run(["gcc", "-static", "-Os", "-s", "-o", out, os.path.join(HERE, "nnp.c")])
            members = [R.directory("usr"), R.directory("usr/local"), R.directory("usr/local/bin"),
                       R.file("usr/local/bin/nnp", read(out), 0o4755)]
            return image([base, R.Layer(members)], kind="docker-list", entrypoint=["/usr/local/bin/nnp"],
                         cmd=[])

        self.add(E2E + "nonewprivs", ["1.3"], nonewprivs)

        # The image manager's test images: each its own image, except
        # test-image-tags:1/2/3, one image under three tags.
        for name, tag in (("test-image-latest", "latest"), ("test-image-tag", "test"),
                          ("test-image-1", "latest"), ("test-image-2", "latest"), ("test-image-3", "latest")):
            self.add(STAGING + name, [tag], lambda name=name, tag=tag: image([base, marker(name + "-" + tag)]))
        self.add(STAGING + "test-image-tag", ["all"], lambda: image([base, marker("test-image-tag-all")],
                                                                    kind="oci-index"))
        self.add(STAGING + "test-image-tags", ["1", "2", "3"], lambda: image([base, marker("test-image-tags")]))

        # ImageStatus's uid/username, from the config's User.
        for name, user in (("test-image-user-uid", "1002"), ("test-image-user-username", "www-data"),
                           ("test-image-user-uid-group", "1003:users"),
                           ("test-image-user-username-group", "www-data:www-data")):
            self.add(STAGING + name, ["latest"],
                     lambda name=name, user=user: image([base, marker(name)], kind="oci-index", user=user))

        # test-image-predefined-group: default-user (uid 1000, gid 1000) is
        # a member of group-defined-in-image (gid 50000); USER 1000.
        def predefined_group():
            passwd = PASSWD + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"
            group = GROUP + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"
            layer = R.Layer([R.directory("etc"), R.file("etc/passwd", passwd), R.file("etc/group", group),
                             R.directory("home"), R.directory("home/default-user", 0o755, 1000, 1000)])
            return image([base, layer], kind="oci-index", user="1000")

        self.add(STAGING + "test-image-predefined-group", ["latest"], predefined_group)
        return self

    def push(self, client):
        for repo, tags, img in self.pushes:
            client.push_image(repo, img, tags=tags)
