"""The API server speaks HTTP/1.1 on its unix socket: framing, keep-alive, versions, headers, errors, the socket file."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time

import pytest

from engine.api.server import Response, Server, empty, json_response
from engine.errors import Conflict, NotFound, NotModified, SystemFailure
from tests.unit.engine.test_api_harness import (FakeEngine, connect, read_all, read_response, request, running_server)


def echo(engine, req):
    body = req.read_body()
    return json_response({"method": req.method, "path": req.path, "version": req.api_version,
                          "query": req.query_string, "body": body.decode(), "length": len(body)})


def boom(engine, req):
    raise RuntimeError("kaboom")


def stopped(engine, req, ref):
    raise NotModified()


def conflict(engine, req, ref):
    raise Conflict(f"cannot remove {ref}: it is running")


def missing(engine, req, ref):
    raise NotFound(f"No such container: {ref}")


def failing(engine, req):
    raise SystemFailure("mounting overlay for abc: No space left on device")


def no_content(engine, req):
    return empty()


ROUTES = [
    ("GET", r"/echo", echo),
    ("POST", r"/echo", echo),
    ("HEAD", r"/echo", echo),
    ("GET", r"/boom", boom),
    ("POST", r"/containers/(?P<ref>[^/]+)/stop", stopped),
    ("DELETE", r"/containers/(?P<ref>[^/]+)", conflict),
    ("HEAD", r"/containers/(?P<ref>[^/]+)/archive", missing),
    ("GET", r"/fail", failing),
    ("POST", r"/nocontent", no_content),
]


@pytest.fixture
def server(tmp_path):
    with running_server(tmp_path, ROUTES) as srv:
        yield srv


def test_every_response_carries_the_docker_headers(server):
    status, headers, _ = request(server, "GET", "/echo")
    assert status == 200
    assert headers["api-version"] == "1.50"
    assert headers["ostype"] == "linux"
    assert headers["server"].startswith("Docker/") and headers["server"].endswith("(linux)")
    assert headers["docker-experimental"] == "false"


def test_version_prefix_is_stripped_into_api_version(server):
    status, _, body = request(server, "GET", "/v1.41/echo?a=1")
    assert status == 200
    doc = json.loads(body)
    assert (doc["path"], doc["version"], doc["query"]) == ("/echo", "1.41", "a=1")


def test_unversioned_path_means_the_server_maximum(server):
    _, _, body = request(server, "GET", "/echo")
    assert json.loads(body)["version"] == "1.50"


def test_too_new_client_version_is_a_400_with_dockerds_message(server):
    status, headers, body = request(server, "GET", "/v1.52/echo")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "client version 1.52 is too new. Maximum supported API version is 1.50"}


def test_too_old_client_version_is_a_400_with_dockerds_message(server):
    status, _, body = request(server, "GET", "/v1.12/echo")
    assert status == 400
    assert json.loads(body)["message"] == ("client version 1.12 is too old. Minimum supported API version is 1.24, "
                                           "please upgrade your client to a newer version")


def test_unknown_route_is_page_not_found(server):
    status, _, body = request(server, "GET", "/v1.50/nosuch/thing")
    assert status == 404
    assert json.loads(body) == {"message": "page not found"}


def test_known_path_with_another_method_is_405(server):
    status, headers, body = request(server, "PUT", "/echo")
    assert status == 405
    assert set(headers["allow"].split(", ")) == {"GET", "POST", "HEAD"}
    assert "PUT" in json.loads(body)["message"]


def test_engine_errors_map_to_their_status_and_message(server):
    status, _, body = request(server, "DELETE", "/containers/web")
    assert status == 409
    assert json.loads(body) == {"message": "cannot remove web: it is running"}


def test_not_modified_has_no_body_and_keeps_the_connection(server):
    sock = connect(server)
    buf = bytearray()
    sock.sendall(b"POST /containers/x/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                 b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = read_response(sock, buf)
    assert (status, body) == (304, b"")
    assert "content-length" not in headers
    status, _, body = read_response(sock, buf)
    assert status == 200 and json.loads(body)["path"] == "/echo"
    sock.close()


def test_no_content_response_has_no_body_headers(server):
    status, headers, body = request(server, "POST", "/nocontent")
    assert (status, body) == (204, b"")
    assert "content-type" not in headers


def test_unexpected_exception_is_a_logged_500(server, caplog):
    with caplog.at_level(logging.ERROR, logger="engine.api"):
        status, _, body = request(server, "GET", "/boom")
    assert status == 500
    assert json.loads(body)["message"] == "internal error: RuntimeError: kaboom"
    assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in caplog.records)


def test_system_failure_is_a_500_with_its_message(server):
    status, _, body = request(server, "GET", "/fail")
    assert status == 500
    assert json.loads(body)["message"] == "mounting overlay for abc: No space left on device"


def test_head_response_never_carries_a_body_even_for_errors(server):
    sock = connect(server)
    buf = bytearray()
    sock.sendall(b"HEAD /containers/x/archive?path=/nope HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = read_response(sock, buf, head_only=True)
    assert (status, body) == (404, b"")
    status, _, body = read_response(sock, buf, head_only=True)
    assert (status, body) == (200, b"")
    # Had a body followed either HEAD answer, this would not parse as the GET's response.
    rest = bytes(buf) + read_all(sock)
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"method":"GET"' in rest
    sock.close()


def test_keep_alive_serves_sequential_requests_on_one_connection(server):
    sock = connect(server)
    buf = bytearray()
    for i in range(3):
        sock.sendall(f"GET /echo?i={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, body = read_response(sock, buf)
        assert status == 200 and json.loads(body)["query"] == f"i={i}"
        assert "connection" not in headers
    sock.close()


def test_pipelined_requests_with_bodies_are_answered_in_order(server):
    sock = connect(server)
    buf = bytearray()
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
                 b"GET /echo?last=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    bodies = [json.loads(read_response(sock, buf)[2]) for _ in range(3)]
    assert [b["body"] for b in bodies] == ["hello", "abcdefg", ""]
    assert bodies[2]["query"] == "last=1"
    sock.close()


def test_unread_request_body_is_drained_before_the_next_request(tmp_path):
    def ignore_body(engine, req):
        return json_response({"ok": True})
    routes = ROUTES + [("POST", r"/ignore", ignore_body)]
    with running_server(tmp_path, routes) as srv:
        sock = connect(srv)
        buf = bytearray()
        sock.sendall(b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, buf)[0] == 200
        status, _, body = read_response(sock, buf)
        assert status == 200 and json.loads(body)["path"] == "/echo"
        sock.close()


def test_chunked_request_body_reaches_the_handler_as_a_stream(tmp_path):
    seen: list[bytes] = []
    second_chunk_sent = threading.Event()

    def upload(engine, req):
        for piece in req.body_stream():
            seen.append(piece)
            if len(seen) == 1:
                # The handler got the first chunk while the client still holds the second one back.
                assert not second_chunk_sent.is_set()
        return json_response({"pieces": len(seen)})

    with running_server(tmp_path, [("PUT", r"/upload", upload)]) as srv:
        sock = connect(srv)
        sock.sendall(b"PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        for _ in range(100):
            if seen:
                break
            threading.Event().wait(0.01)
        assert seen == [b"first"]
        second_chunk_sent.set()
        sock.sendall(b"6\r\nsecond\r\n0\r\n\r\n")
        status, _, body = read_response(sock, bytearray())
        assert status == 200 and json.loads(body) == {"pieces": 2}
        assert b"".join(seen) == b"firstsecond"
        sock.close()


def test_connection_close_is_honoured(server):
    sock = connect(server)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_all(sock)        # returns only because the server closed its side
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close\r\n" in data
    sock.close()


def test_http_1_0_closes_after_the_response(server):
    sock = connect(server)
    sock.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
    assert read_all(sock).startswith(b"HTTP/1.1 200 OK\r\n")
    sock.close()


def test_expect_100_continue_is_answered_before_the_body_is_read(server):
    sock = connect(server)
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(4096)
    assert bytes(buf).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    del buf[:len(b"HTTP/1.1 100 Continue\r\n\r\n")]
    sock.sendall(b"data")
    status, _, body = read_response(sock, buf)
    assert status == 200 and json.loads(body)["body"] == "data"
    sock.close()


def test_malformed_request_line_is_a_400_and_closes(server):
    sock = connect(server)
    sock.sendall(b"NONSENSE\r\n\r\n")
    data = read_all(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"malformed request line" in data
    sock.close()


def test_percent_encoded_path_is_decoded_before_routing(server):
    _, _, body = request(server, "GET", "/%65cho")
    assert json.loads(body)["path"] == "/echo"


def test_socket_file_gets_the_configured_mode_and_its_parent_dir_is_created(tmp_path):
    with running_server(tmp_path, ROUTES, mode=0o660) as srv:
        st = os.stat(srv.socket_path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert srv.socket_path.parent == tmp_path / "run"


def test_stale_socket_file_is_replaced(tmp_path):
    path = tmp_path / "run" / "engine.sock"
    path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()            # bound but nobody listens: a dead daemon's leftover
    srv = Server(FakeEngine(tmp_path / "root"), path, 0o660, ROUTES).start()
    try:
        assert request(srv, "GET", "/echo")[0] == 200
    finally:
        srv.shutdown()


def test_live_socket_is_not_replaced(tmp_path):
    with running_server(tmp_path, ROUTES) as srv:
        with pytest.raises(SystemFailure, match="another daemon is already listening"):
            Server(FakeEngine(tmp_path / "root2"), srv.socket_path, 0o660, ROUTES)
        assert request(srv, "GET", "/echo")[0] == 200


def test_a_regular_file_at_the_socket_path_is_refused(tmp_path):
    path = tmp_path / "engine.sock"
    path.write_text("not a socket")
    with pytest.raises(SystemFailure, match="is not a socket"):
        Server(FakeEngine(tmp_path / "root"), path, 0o660, ROUTES)
    assert path.read_text() == "not a socket"


def test_shutdown_removes_the_socket_and_closes_idle_connections(tmp_path):
    srv = Server(FakeEngine(tmp_path / "root"), tmp_path / "engine.sock", 0o660, ROUTES).start()
    sock = connect(srv)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    read_response(sock, bytearray())
    srv.shutdown()
    assert not srv.socket_path.exists()
    assert read_all(sock) == b""
    sock.close()


def test_serve_forever_returns_after_shutdown_from_another_thread(tmp_path):
    srv = Server(FakeEngine(tmp_path / "root"), tmp_path / "engine.sock", 0o660, ROUTES)
    t = threading.Thread(target=srv.serve_forever)
    t.start()
    assert request(srv, "GET", "/echo")[0] == 200
    srv.shutdown()
    t.join(5)
    assert not t.is_alive()


def test_access_log_line_at_debug_level(server, caplog):
    with caplog.at_level(logging.DEBUG, logger="engine.api"):
        request(server, "GET", "/v1.50/echo?x=1")
        # The line is written after the response went out (it times the send): give the thread a moment.
        deadline = time.monotonic() + 2
        while not any("GET /v1.50/echo?x=1 200" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no access log line"
            time.sleep(0.01)


def test_response_objects_default_to_json():
    r = Response()
    assert (r.status, r.body, r.content_type, r.headers) == (200, b"", "application/json", {})
    assert json_response({"a": 1}, 201).body == b'{"a":1}\n'


def test_shutdown_before_serving_releases_the_socket(tmp_path):
    srv = Server(FakeEngine(tmp_path / "root"), tmp_path / "engine.sock", 0o660, ROUTES)
    srv.shutdown()
    assert not srv.socket_path.exists()
    assert srv._listener.fileno() == -1


def test_shutdown_as_a_connection_arrives_wakes_the_loop_before_it_closes_the_wake_pipe(tmp_path):
    """The accept loop can wake for a connection just after shutdown() marks the server stopped, and leave: it
    must not close the wake pipe before shutdown() wrote to it (EBADF, or a write into whatever file reused the
    descriptor number)."""
    srv = Server(FakeEngine(tmp_path / "root"), tmp_path / "engine.sock", 0o660, ROUTES).start()
    stopped = srv._stopped
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    class ConnectOnSet(threading.Event):
        def set(self) -> None:
            stopped.set()
            client.connect(str(srv.socket_path))   # wakes the loop, which now sees the server stopped
            deadline = time.monotonic() + 0.5
            while srv._listener.fileno() != -1 and time.monotonic() < deadline:
                time.sleep(0.01)                     # without the lock, the loop closes everything here

        def is_set(self) -> bool:
            return stopped.is_set()

        def wait(self, timeout=None) -> bool:
            return stopped.wait(timeout)

    srv._stopped = ConnectOnSet()
    srv.shutdown()                                   # raised OSError(EBADF) before
    srv._thread.join(5)
    assert srv._listener.fileno() == -1 and not srv._thread.is_alive()
    client.close()
