"""Helpers for the API server tests: a fake engine, a server on a tmp unix socket, raw and http.client access."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from pathlib import Path
from typing import Iterator

from engine.api.server import Server
from engine.config import EngineConfig
from engine.events import EventLog


class FakeContainers:
    def __init__(self) -> None:
        self.count_doc = {"total": 3, "running": 1, "paused": 1, "stopped": 1}

    def counts(self) -> dict:
        return dict(self.count_doc)


class FakeImages:
    def __init__(self) -> None:
        self.images: list = []

    def list(self) -> list:
        return list(self.images)


class FakeEngine:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.config = EngineConfig(root=root, socket=root / "engine.sock")
        self.events = EventLog()
        self.containers = FakeContainers()
        self.images = FakeImages()


@contextlib.contextmanager
def running_server(tmp_path: Path, routes=None, engine=None, mode: int = 0o660) -> Iterator[Server]:
    """Serve routes (or the real route table) for engine on tmp_path/run/engine.sock; always shut down."""
    engine = engine if engine is not None else FakeEngine(tmp_path / "root")
    server = Server(engine, tmp_path / "run" / "engine.sock", mode, routes).start()
    try:
        yield server
    finally:
        server.shutdown()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path: Path, timeout: float = 5) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def request(server: Server, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Send one request on a fresh connection; return status, lower-cased headers and body."""
    conn = UnixHTTPConnection(server.socket_path)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(server: Server, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, object]:
    status, _, data = request(server, method, path, body)
    return status, (json.loads(data) if data else None)


def connect(server: Server, timeout: float = 5) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(server.socket_path))
    return sock


def read_until(sock: socket.socket, marker: bytes, buf: bytearray | None = None) -> bytes:
    """Read until marker has arrived; return everything read so far."""
    buf = buf if buf is not None else bytearray()
    while marker not in buf:
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return bytes(buf)


def read_all(sock: socket.socket) -> bytes:
    buf = bytearray()
    while True:
        data = sock.recv(65536)
        if not data:
            return bytes(buf)
        buf += data


def read_response(sock: socket.socket, buf: bytearray, head_only: bool = False) -> tuple[int, dict, bytes]:
    """Parse one Content-Length response from sock, keeping extra bytes in buf for the next one."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"connection closed before a full response head: {bytes(buf)!r}"
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    while len(buf) < length:
        data = sock.recv(65536)
        assert data, "connection closed in the middle of a body"
        buf += data
    body = bytes(buf[:length])
    del buf[:length]
    return status, headers, body
