"""Streamed responses: headers before the first chunk, flushed chunks, keepalive ticks, disconnects, late errors."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from engine.api import streams
from engine.api.server import StreamResponse, json_response
from engine.errors import InvalidParameter, NotFound
from tests.unit.engine.test_api_harness import connect, read_all, read_until, request, running_server


def decode_chunked(data: bytes) -> list[bytes]:
    """Split a chunked body (after the head) into its chunks; the terminating chunk must be present."""
    chunks = []
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            assert data.startswith(b"\r\n"), "missing the final CRLF"
            return chunks
        chunks.append(data[:size])
        assert data[size:size + 2] == b"\r\n"
        data = data[size + 2:]


# -- helpers in streams.py --------------------------------------------------------------------------------------

def test_frame_has_the_stdcopy_header():
    assert streams.frame(streams.STDOUT, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert streams.frame(streams.STDERR, b"x" * 70000)[:8] == b"\x02\x00\x00\x00\x00\x01\x11\x70"


def test_stream_content_type_depends_on_tty_and_version():
    assert streams.stream_content_type(True) == "application/vnd.docker.raw-stream"
    assert streams.stream_content_type(False, "1.50") == "application/vnd.docker.multiplexed-stream"
    assert streams.stream_content_type(False, "1.41") == "application/vnd.docker.raw-stream"


def test_json_stream_writes_one_object_per_line():
    out = list(streams.json_stream([{"status": "a"}, {"stream": "b\n"}]))
    assert out == [b'{"status":"a"}\n', b'{"stream":"b\\n"}\n']


def test_error_after_start_becomes_error_detail_and_error():
    def pull():
        yield {"status": "Pulling from library/busybox"}
        raise NotFound("manifest unknown")
    out = list(streams.json_stream(pull()))
    assert json.loads(out[-1]) == {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}


def test_primed_json_stream_raises_an_error_before_any_output():
    def pull():
        raise NotFound("pull access denied for nosuch")
        yield {}
    with pytest.raises(NotFound, match="pull access denied"):
        streams.json_stream(pull(), prime=True)


def test_prime_keeps_the_first_chunk():
    assert list(streams.prime(iter([b"a", b"b"]))) == [b"a", b"b"]
    assert list(streams.prime(iter([]))) == []


# -- StreamResponse through the server ---------------------------------------------------------------------------

class Probe:
    """A generator whose progress the test controls, recording whether it was closed."""

    def __init__(self) -> None:
        self.advanced = threading.Event()
        self.release = threading.Event()
        self.closed = threading.Event()

    def gen(self, ticks: bool = False):
        try:
            self.advanced.set()
            yield b"first\n"
            while not self.release.wait(0.05):
                if ticks:
                    yield b""
            yield b"second\n"
        finally:
            self.closed.set()


def test_headers_are_flushed_before_the_iterator_is_first_advanced(tmp_path):
    probe = Probe()
    started = threading.Event()

    def chunks():
        started.wait(5)     # blocks until the test has seen the headers: like /wait before the container exits
        yield from probe.gen()

    def wait(engine, req):
        return StreamResponse(chunks())

    with running_server(tmp_path, [("POST", r"/wait", wait)]) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        head = read_until(sock, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Transfer-Encoding: chunked\r\n" in head
        assert not probe.advanced.is_set()
        started.set()
        assert read_until(sock, b"first\n\r\n", bytearray(head)).endswith(b"\r\n\r\n6\r\nfirst\n\r\n")
        probe.release.set()
        sock.close()


def test_each_chunk_is_flushed_and_the_body_ends_with_a_last_chunk(tmp_path):
    probe = Probe()

    def handler(engine, req):
        return StreamResponse(probe.gen(), content_type="text/plain")

    with running_server(tmp_path, [("GET", r"/s", handler), ("GET", r"/after", lambda e, r: json_response(1))]) as srv:
        sock = connect(srv)
        sock.sendall(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until(sock, b"first\n\r\n")       # arrives while the generator is still blocked
        assert not probe.closed.is_set()
        probe.release.set()
        data = read_until(sock, b"0\r\n\r\n", bytearray(data))
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Content-Type: text/plain" in head
        assert decode_chunked(body) == [b"first\n", b"second\n"]
        # The connection stays usable after a complete chunked body.
        sock.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_all(sock).startswith(b"HTTP/1.1 200 OK")
        sock.close()


def test_keepalive_tick_is_not_sent_and_detects_a_client_that_left(tmp_path):
    probe = Probe()

    def handler(engine, req):
        return StreamResponse(probe.gen(ticks=True))

    with running_server(tmp_path, [("GET", r"/events", handler)]) as srv:
        sock = connect(srv)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until(sock, b"first\n\r\n")
        time.sleep(0.2)     # several ticks pass: none of them may reach the client as an (empty = final) chunk
        sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            sock.recv(100)
        assert b"0\r\n\r\n" not in data
        sock.close()
        assert probe.closed.wait(2), "the generator was not closed after the client disconnected"
        assert not probe.release.is_set()


def test_client_disconnect_is_detected_by_a_failed_write(tmp_path):
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield b"x" * 65536
        finally:
            closed.set()

    def handler(engine, req):
        return StreamResponse(endless(), content_type="application/octet-stream")

    with running_server(tmp_path, [("GET", r"/logs", handler)]) as srv:
        sock = connect(srv)
        sock.sendall(b"GET /logs HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(sock, b"xxxx")
        sock.close()
        assert closed.wait(5)


def test_error_inside_a_json_stream_becomes_a_final_error_message(tmp_path):
    def build():
        yield b'{"stream":"Step 1/2"}\n'
        raise InvalidParameter("unknown instruction: FORM")

    def handler(engine, req):
        return StreamResponse(build())

    with running_server(tmp_path, [("POST", r"/build", handler)]) as srv:
        status, headers, body = request(srv, "POST", "/build", b"")
        assert status == 200
        lines = [json.loads(line) for line in body.splitlines()]
        assert lines[-1] == {"errorDetail": {"message": "unknown instruction: FORM"},
                             "error": "unknown instruction: FORM"}


def test_error_inside_a_byte_stream_cuts_the_body_off(tmp_path):
    def tar():
        yield b"partial"
        raise OSError("disk read failed")

    def handler(engine, req):
        return StreamResponse(tar(), content_type="application/x-tar")

    with running_server(tmp_path, [("GET", r"/export", handler)]) as srv:
        sock = connect(srv)
        sock.sendall(b"GET /export HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_all(sock)
        assert b"7\r\npartial\r\n" in data
        assert not data.endswith(b"0\r\n\r\n"), "a failed stream must not look complete"
        sock.close()


def test_head_on_a_stream_sends_headers_only(tmp_path):
    advanced = threading.Event()

    def gen():
        advanced.set()
        yield b"body"

    with running_server(tmp_path, [("HEAD", r"/s", lambda e, r: StreamResponse(gen()))]) as srv:
        sock = connect(srv)
        sock.sendall(b"HEAD /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_all(sock)
        assert data.endswith(b"\r\n\r\n") and b"body" not in data
        assert not advanced.is_set()
        sock.close()
