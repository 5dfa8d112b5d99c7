"""The lab's service proxy (lab/service-proxy), what clients use while a service moves: each
new connection goes where the backend file says, `point` (the post_migrate hook) moves it."""

import os
import socket
import subprocess
import sys
import threading

from module_runner import ROOT

PROXY = os.path.join(ROOT, "lab", "service-proxy")
BIN = os.path.join(ROOT, ".venv", "bin")


def backend(reply):
    """A one-line server answering `reply LINE`; returns its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            conn, _ = server.accept()
            with conn:
                conn.sendall(reply + b" " + conn.recv(100))
    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def proxy(state, *args):
    return subprocess.run([sys.executable, PROXY, *args, "--state-dir", str(state)], capture_output=True, text=True,
                          timeout=30)


def free_port():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def test_clients_follow_point_without_being_reconfigured(tmp_path):
    old, new = backend(b"old"), backend(b"new")
    listen = "127.0.0.1:%d" % free_port()
    assert proxy(tmp_path, "start", "svc", "--listen", listen).returncode == 0
    try:
        assert "already" in proxy(tmp_path, "start", "svc", "--listen", listen).stdout  # idempotent
        assert proxy(tmp_path, "ask", "svc", "hi").returncode == 1  # no backend yet: no answer, no hang
        proxy(tmp_path, "point", "svc", "127.0.0.1:%d" % old)
        assert proxy(tmp_path, "ask", "svc", "hi").stdout.strip() == "old hi"
        moved = proxy(tmp_path, "point", "svc", "127.0.0.1:%d" % new)
        assert "(was 127.0.0.1:%d)" % old in moved.stdout
        assert proxy(tmp_path, "ask", "svc", "again").stdout.strip() == "new again"
        assert "backend 127.0.0.1:%d, pid" % new in proxy(tmp_path, "status", "svc").stdout
    finally:
        proxy(tmp_path, "stop", "svc")
    assert "not running" in proxy(tmp_path, "status", "svc").stdout


def test_point_rejects_what_is_not_an_address(tmp_path):
    result = proxy(tmp_path, "point", "svc", "edge2")
    assert result.returncode != 0 and "not an ADDRESS:PORT" in result.stderr
    assert not os.path.exists(tmp_path / "svc.backend")


def test_the_proxy_script_passes_ruff():
    proc = subprocess.run([os.path.join(BIN, "ruff"), "check", PROXY], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout


def test_asking_a_proxy_that_is_not_running_says_so(tmp_path):
    (tmp_path / "svc.listen").write_text("127.0.0.1:%d\n" % free_port())
    result = proxy(tmp_path, "ask", "svc")
    assert result.returncode == 1 and "does not answer" in result.stderr
    assert "no proxy" in proxy(tmp_path, "ask", "other").stderr
