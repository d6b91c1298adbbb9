"""ADD <url>: downloads into the image, and private addresses are refused unless the engine allows them."""

import http.server
import socket
import threading

import pytest

from tests.integration.build_helpers import build, counts, write

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = b"downloaded content\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_in_netns(daemon) -> tuple[http.server.HTTPServer, int]:
    """An HTTP server on 127.0.0.1 of the daemon's network namespace (its socket is made there)."""
    def listen() -> socket.socket:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        return s

    sock = daemon.in_netns_call(listen)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, sock.getsockname()[1]


@pytest.fixture
def allow_private(monkeypatch):
    monkeypatch.setenv("DOCKWEB_BUILD_ADD_ALLOW_PRIVATE", "1")


def test_add_url_downloads_with_mode_0600_when_private_addresses_are_allowed(allow_private, engine_daemon, tmp_path):
    server, port = serve_in_netns(engine_daemon)
    try:
        ctx = write(tmp_path, {"Dockerfile": f"FROM busybox\nADD http://127.0.0.1:{port}/files/data.txt /dl/\n"})
        out = build(engine_daemon, ctx, "-t", "added")
        assert out.returncode == 0, out.stdout + out.stderr
        shown = engine_daemon.docker("run", "--rm", "added", "sh", "-c",
                                     "stat -c '%a %u' /dl/data.txt; cat /dl/data.txt", text=True)
        assert shown.stdout == "600 0\ndownloaded content\n", shown.stderr
        again = build(engine_daemon, ctx, "-t", "added")
        assert again.stdout.count("Using cache") == 1     # same content, same cache key
    finally:
        server.shutdown()


def test_add_url_to_loopback_is_refused_by_default(engine, tmp_path):
    server, port = serve_in_netns(engine)
    try:
        ctx = write(tmp_path, {"Dockerfile": f"FROM busybox\nADD http://127.0.0.1:{port}/x.txt /\n"})
        before = counts(engine)
        out = build(engine, ctx)
        assert out.returncode != 0
        assert "refusing to download" in out.stderr and "loopback, link-local or private" in out.stderr
        assert counts(engine) == before
    finally:
        server.shutdown()
