"""Hijacking for attach and exec start: 101 in its own write, early stdin handed over, the socket left to the handler."""

from __future__ import annotations

import json
import socket
import threading

from engine.api import streams
from engine.api.server import HIJACKED
from engine.errors import Conflict, NotFound
from tests.unit.engine.test_api_harness import connect, read_all, read_until, request, running_server


class Attacher:
    """A fake attach handler: validates, hijacks, echoes stdin back as a stdout frame, then closes."""

    def __init__(self) -> None:
        self.pending = None
        self.body = None
        self.done = threading.Event()

    def attach(self, engine, req, ref):
        if ref == "stopped":
            raise Conflict("You cannot attach to a stopped container, start it first")
        if ref == "missing":
            raise NotFound(f"No such container: {ref}")
        self.body = req.json()
        sock, pending = req.hijack(streams.MULTIPLEXED_STREAM)
        self.pending = pending
        threading.Thread(target=self._pump, args=(sock, pending), daemon=True).start()
        return HIJACKED

    def _pump(self, sock: socket.socket, pending: bytes) -> None:
        data = bytearray(pending)
        while True:
            chunk = sock.recv(4096)
            if not chunk:       # the client half-closed: stdin is done, output keeps flowing
                break
            data += chunk
        sock.sendall(streams.frame(streams.STDOUT, bytes(data)))
        sock.close()
        self.done.set()


def make_routes(attacher: Attacher):
    return [("POST", r"/containers/(?P<ref>[^/]+)/attach", attacher.attach),
            ("POST", r"/exec/(?P<ref>[^/]+)/start", attacher.attach)]


UPGRADE = b"Connection: Upgrade\r\nUpgrade: tcp\r\n"


def test_attach_answers_exactly_101_upgraded_with_three_headers(tmp_path):
    attacher = Attacher()
    with running_server(tmp_path, make_routes(attacher)) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /v1.50/containers/c1/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: text/plain\r\nContent-Length: 0\r\n" + UPGRADE + b"\r\n")
        head = read_until(sock, b"\r\n\r\n")
        assert head == (b"HTTP/1.1 101 UPGRADED\r\n"
                        b"Content-Type: application/vnd.docker.multiplexed-stream\r\n"
                        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == streams.frame(streams.STDOUT, b"")     # the fake echoes no stdin back
        sock.close()


def test_101_arrives_in_its_own_write_before_any_stream_data(tmp_path):
    attacher = Attacher()
    with running_server(tmp_path, make_routes(attacher)) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /containers/c1/attach HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + UPGRADE + b"\r\n")
        first = sock.recv(65536)
        # The handler writes nothing until stdin ends, so the first read holds exactly the head.
        assert first.endswith(b"Upgrade: tcp\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        read_all(sock)
        sock.close()


def test_stdin_sent_with_the_request_is_handed_to_the_handler(tmp_path):
    attacher = Attacher()
    with running_server(tmp_path, make_routes(attacher)) as srv:
        sock = connect(srv)
        # Request head and early stdin in one packet, then a half-close, as `printf .. | docker run -i` does.
        sock.sendall(b"POST /containers/c1/attach?stdin=1 HTTP/1.1\r\nHost: x\r\n" + UPGRADE +
                     b"\r\necho piped\n")
        sock.shutdown(socket.SHUT_WR)
        data = read_all(sock)
        head, _, stream = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED")
        assert attacher.pending == b"echo piped\n"
        assert stream == streams.frame(streams.STDOUT, b"echo piped\n")
        sock.close()


def test_exec_start_body_is_read_before_the_leftover_bytes(tmp_path):
    attacher = Attacher()
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    with running_server(tmp_path, make_routes(attacher)) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /exec/e1/start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + UPGRADE +
                     b"Content-Length: %d\r\n\r\n%bstdin-bytes" % (len(body), body))
        sock.shutdown(socket.SHUT_WR)
        read_all(sock)
        assert attacher.body == {"Detach": False, "Tty": False}
        assert attacher.pending == b"stdin-bytes"
        sock.close()


def test_without_an_upgrade_header_the_hijack_answers_200(tmp_path):
    attacher = Attacher()
    with running_server(tmp_path, make_routes(attacher)) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /containers/c1/attach HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        head = read_until(sock, b"\r\n\r\n")
        assert head == b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n"
        sock.shutdown(socket.SHUT_WR)
        read_all(sock)
        sock.close()


def test_validation_errors_come_before_the_hijack_as_plain_json(tmp_path):
    attacher = Attacher()
    with running_server(tmp_path, make_routes(attacher)) as srv:
        status, _, body = request(srv, "POST", "/containers/stopped/attach", b"",
                                  {"Connection": "Upgrade", "Upgrade": "tcp"})
        assert status == 409
        assert json.loads(body)["message"].startswith("You cannot attach to a stopped container")
        status, _, body = request(srv, "POST", "/containers/missing/attach", b"")
        assert (status, json.loads(body)) == (404, {"message": "No such container: missing"})


def test_server_leaves_the_hijacked_socket_open_for_the_handler(tmp_path):
    attacher = Attacher()
    with running_server(tmp_path, make_routes(attacher)) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /containers/c1/attach HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + UPGRADE + b"\r\n")
        read_until(sock, b"\r\n\r\n")
        # Well after the server thread returned, the handler's pump still reads and writes this socket.
        threading.Event().wait(0.2)
        sock.sendall(b"late")
        sock.shutdown(socket.SHUT_WR)
        assert read_all(sock) == streams.frame(streams.STDOUT, b"late")
        assert attacher.done.wait(2)
        sock.close()


def test_error_after_hijack_is_written_into_the_stream(tmp_path):
    def exec_start(engine, req, ref):
        req.hijack(streams.RAW_STREAM)
        raise Conflict('exec: "nosuch": executable file not found in $PATH')

    with running_server(tmp_path, [("POST", r"/exec/(?P<ref>[^/]+)/start", exec_start)]) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /exec/e1/start HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n" + UPGRADE + b"\r\n")
        data = read_all(sock)
        head, _, stream = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 UPGRADED")
        assert stream == b'exec: "nosuch": executable file not found in $PATH\r\n'
        sock.close()


def test_returning_hijacked_without_hijacking_is_a_500(tmp_path):
    with running_server(tmp_path, [("POST", r"/bad", lambda e, r: HIJACKED)]) as srv:
        status, _, body = request(srv, "POST", "/bad", b"")
        assert status == 500
