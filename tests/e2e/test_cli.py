"""The command line of every component (--version, --help, `config`,
`check`) and criod's systemd socket activation: a listening socket passed
as fd 3 with LISTEN_PID/LISTEN_FDS, as criod.socket does, served instead
of one criod binds itself."""
import os
import re
import socket
import subprocess

import pytest

from conftest import BUILD, DAEMONS, TEST_USER, CriClient

COMPONENTS = ("criod",) + DAEMONS


def binary(name):
    return os.path.join(BUILD, {"spawnd": "conmon", "imaged-fetch": "imaged"}.get(name, name), name)


def run(args, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, **kw)


@pytest.mark.parametrize("name", COMPONENTS)
def test_version_and_help(name):
    p = run([binary(name), "--version"])
    assert p.returncode == 0 and p.stdout.decode() == "%s 0.1.0\n" % name, p
    p = run([binary(name), "--help"])
    out = p.stdout.decode()
    assert p.returncode == 0 and out.startswith("Usage: %s [--config FILE]" % name), p
    assert "config|check" in out and "--version" in out
    # A bad command line is exit status 2 with the usage on stderr.
    p = run([binary(name), "--no-such-option"])
    assert p.returncode == 2 and b"Usage: " in p.stderr and p.stdout == b""
    p = run([binary(name), "frobnicate"])
    assert p.returncode == 2 and b"Usage: " in p.stderr


def shown_keys(text):
    """{(section, key): (value, origin)} of `criod config` output."""
    keys, section, origin = {}, None, None
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line.startswith("# ") and section:
            origin = line[2:]
        elif "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            keys[(section, k.strip())] = (v.strip(), origin)
    return keys


def test_config_prints_every_key_with_its_origin(tmp_path):
    conf = tmp_path / "criod.conf"
    conf.write_text("[paths]\nrun_dir = %s\n\n[imaged]\nmax_concurrent_downloads = 5\n" % (tmp_path / "run"))
    (tmp_path / "criod.conf.d").mkdir()
    (tmp_path / "criod.conf.d" / "50-hardened.conf").write_bytes(
        open(os.path.join(os.path.dirname(__file__), "..", "..", "packaging", "criod.conf.d", "hardened.conf"),
             "rb").read())
    p = run([binary("criod"), "--config", str(conf), "config"])
    assert p.returncode == 0 and p.stderr == b"", p
    keys = shown_keys(p.stdout.decode())
    assert keys[("imaged", "max_concurrent_downloads")] == ("5", "%s:5" % conf)
    assert keys[("paths", "run_dir")] == (str(tmp_path / "run"), "%s:2" % conf)
    assert keys[("criod", "socket")] == (str(tmp_path / "run" / "criod.sock"),
                                         "<run_dir>/criod.sock, run_dir from %s:2" % conf)
    assert keys[("imaged", "rootfs_mode")] == ("auto", "default")
    dropin = tmp_path / "criod.conf.d" / "50-hardened.conf"
    lines = dropin.read_text().splitlines()
    want = [i + 1 for i, l in enumerate(lines) if l.startswith("allow_privileged")]
    assert keys[("policy", "allow_privileged")] == ("false", "%s:%d" % (dropin, want[0]))
    # Every key of the table: as many as `imaged config` shows (the same
    # table), each with an origin.
    assert all(o for _, o in keys.values())
    assert len([k for k in keys if not k[0].startswith(("registry.", "runtime."))]) >= 40

    # What it prints is a configuration criod accepts, to the same values.
    shown = tmp_path / "shown.conf"
    shown.write_bytes(p.stdout)
    p2 = run([binary("criod"), "--config", str(shown), "check"])
    assert p2.returncode == 0 and p2.stdout.decode() == "criod check: %s: ok\n" % shown, p2
    p3 = run([binary("criod"), "--config", str(shown), "config"])
    again = shown_keys(p3.stdout.decode())
    assert {k: v for k, (v, _) in again.items()} == {k: v for k, (v, _) in keys.items()}


def test_check_names_file_line_and_key(tmp_path):
    conf = tmp_path / "criod.conf"
    conf.write_text("[log]\nlevel = info\n")
    (tmp_path / "criod.conf.d").mkdir()
    bad = tmp_path / "criod.conf.d" / "10-bad.conf"
    bad.write_text("[policy]\n\nallow_privileged = maybe\n")
    for name in COMPONENTS:
        p = run([binary(name), "--config", str(conf), "check"])
        assert p.returncode == 1, p
        assert p.stdout == b""
        assert p.stderr.decode() == ('%s check: %s:3: [policy] allow_privileged: "maybe" is not a boolean '
                                     '(true, false, yes, no, 1, 0)\n' % (name, bad)), p
    bad.write_text("[policy]\nallow_privileged = false\n")
    p = run([binary("criod"), "--config", str(conf), "check"])
    assert p.returncode == 0 and p.stdout.decode() == "criod check: %s: ok\ncriod check: %s: ok\n" % (conf, bad)
    # Nothing of a check is a daemon start: no socket, no directory made.
    assert sorted(os.listdir(tmp_path)) == ["criod.conf", "criod.conf.d"]


def start_activated(suite, sock_fd, env_extra=None, name="criod", tcp_fd=None):
    """Start criod the way systemd starts a socket-activated service: the
    listening socket as fd 3, LISTEN_PID its own pid, LISTEN_FDS=1 (with
    tcp_fd: that one as fd 4 too, LISTEN_FDS=2, as criod-streaming.socket
    adds)."""
    log = open(os.path.join(suite.log_dir, name + ".log"), "ab")
    suite.logs[name] = log.name
    offset = log.tell()
    script = 'export LISTEN_PID=$$ LISTEN_FDS=%d %s; exec "$0" "$@"' % (1 if tcp_fd is None else 2, " ".join(
        "%s=%s" % kv for kv in (env_extra or {}).items()))
    # fd 3 in the child, inheritable (dup2 clears close-on-exec); every
    # other descriptor of this process is close-on-exec.
    p = subprocess.Popen(["/bin/sh", "-c", script, binary("criod"), "--config", suite.config],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=False,
                         preexec_fn=lambda: (os.dup2(sock_fd, 3), tcp_fd is not None and os.dup2(tcp_fd, 4)))
    log.close()
    suite.procs[name] = p
    return p, offset


def test_socket_activation_serves_the_passed_socket(fresh_suite, test_user):
    s = fresh_suite
    for d in DAEMONS:
        s.start(d)
    os.makedirs(s.run_dir, exist_ok=True)
    path = os.path.join(s.run_dir, "activated.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    # criod.socket: SocketUser=criod, SocketMode=0660
    os.chown(path, test_user.pw_uid, test_user.pw_gid)
    os.chmod(path, 0o660)
    try:
        p, offset = start_activated(s, lsock.fileno())
        s.wait_ready("criod", offset)
    finally:
        lsock.close()  # criod holds its own copy
    log = s.log("criod")[offset:]
    assert 'msg="socket passed by systemd" fd=3 path=%s' % path in log
    assert re.search(r'msg="listening" path=%s user=%s ' % (re.escape(path), TEST_USER), log)
    # It bound nothing of its own: the configured socket does not exist.
    assert not os.path.exists(s.socket)
    c = CriClient(path)
    try:
        v = c.runtime("Version")
        assert v.runtime_name == "criod"
        st = c.runtime("Status")
        assert all(cond.status for cond in st.status.conditions), st
    finally:
        c.close()
    # criod runs unprivileged on the passed socket as on its own.
    with open("/proc/%d/status" % p.pid) as f:
        status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
    assert status["Uid"].split()[0] == str(test_user.pw_uid)
    assert status["CapEff"].strip() == "0000000000000000"


def start_with_streaming_socket(s, test_user):
    """criod started as criod.socket and criod-streaming.socket would: a
    unix socket at fd 3, a TCP one on 127.0.0.1 at fd 4. Returns the TCP
    port and what criod logged."""
    os.makedirs(s.run_dir, exist_ok=True)
    path = os.path.join(s.run_dir, "activated.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    os.chown(path, test_user.pw_uid, test_user.pw_gid)
    tsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tsock.bind(("127.0.0.1", 0))
    tsock.listen(16)
    port = tsock.getsockname()[1]
    try:
        p, offset = start_activated(s, lsock.fileno(), tcp_fd=tsock.fileno())
        s.wait_ready("criod", offset)
    finally:
        lsock.close()
        tsock.close()
    log = s.log("criod")[offset:]
    return port, log


def test_socket_activation_passes_the_streaming_socket(fresh_suite, test_user):
    """criod-streaming.socket's TCP socket as fd 4: the streaming server
    serves it (its URLs name its address) and binds nothing of its own."""
    s = fresh_suite
    for d in DAEMONS:
        s.start(d)
    port, log = start_with_streaming_socket(s, test_user)
    assert 'msg="streaming socket passed by systemd" fd=4 address=127.0.0.1' in log, log
    assert 'msg="streaming server listening" url=http://127.0.0.1:%d ' % port in log, log
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET /exec/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"0" * 32))
        assert c.recv(4096).startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert "address and port are not used" not in log, log  # the config names no other


def test_socket_activation_says_the_configured_streaming_port_is_unused(fresh_suite, test_user):
    """[streaming] port set while systemd passes its own socket: the passed
    socket is served and criod says the configured one is not used."""
    s = fresh_suite
    for d in DAEMONS:
        s.start(d)
    with open(s.config, "a") as f:
        f.write("[streaming]\nport = 1\n")
    port, log = start_with_streaming_socket(s, test_user)
    assert ('msg="[streaming] address and port are not used: the socket systemd passed is" '
            'config_address=127.0.0.1 config_port=1 address=127.0.0.1 port=%d' % port) in log, log
    assert 'msg="streaming server listening" url=http://127.0.0.1:%d ' % port in log, log


def test_socket_activation_for_another_pid_is_ignored(fresh_suite):
    """LISTEN_PID naming another process (a variable inherited by
    accident): criod binds its own socket as when started by hand."""
    s = fresh_suite
    for d in DAEMONS:
        s.start(d)
    log = open(os.path.join(s.log_dir, "criod.log"), "ab")
    s.logs["criod"] = log.name
    offset = log.tell()
    env = dict(os.environ, LISTEN_PID="1", LISTEN_FDS="1")
    s.procs["criod"] = subprocess.Popen([binary("criod"), "--config", s.config], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=log, env=env)
    log.close()
    s.wait_ready("criod", offset)
    assert "socket passed by systemd" not in s.log("criod")[offset:]
    c = s.client()
    try:
        assert c.runtime("Version").runtime_name == "criod"
    finally:
        c.close()


@pytest.mark.parametrize("kind", ["not-listening", "datagram", "not-a-socket"])
def test_socket_activation_refuses_what_is_not_a_listening_stream_socket(fresh_suite, tmp_path, kind):
    s = fresh_suite
    if kind == "not-listening":
        obj = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        obj.bind(str(tmp_path / "x.sock"))
        fd, want = obj.fileno(), "fd 3 is not listening"
    elif kind == "datagram":
        obj = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        fd, want = obj.fileno(), "fd 3 is not a stream socket"
    else:
        obj = open(str(tmp_path / "file"), "w")
        fd, want = obj.fileno(), "fd 3 is not a socket"
    try:
        p, offset = start_activated(s, fd)
        rc = p.wait(timeout=20)
    finally:
        obj.close()
    s.procs.pop("criod")
    assert rc == 1, s.log("criod")
    assert re.search(r'level=error req=\S+ msg="socket activation: %s' % re.escape(want), s.log("criod")), \
        s.log("criod")
    assert not os.path.exists(s.socket)
