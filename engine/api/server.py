"""HTTP/1.1 server for the Docker Engine API on a unix socket: parse, route, answer, stream and hijack."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import selectors
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from engine import API_VERSION, ENGINE_VERSION, MIN_API_VERSION
from engine.api import errors as api_errors
from engine.errors import EngineError, InvalidParameter, SystemFailure

log = logging.getLogger("engine.api")

MAX_HEAD = 1024 * 1024          # Go's http.DefaultMaxHeaderBytes
MAX_CHUNK_LINE = 4096
RECV_SIZE = 65536
# After a response, an unread request body is drained up to this much to keep the connection; more is not
# worth reading, so the connection is closed instead (Go's server does the same with 256 KiB).
MAX_DRAIN = 256 * 1024
# Connection threads that finished wait for the next connection instead of exiting: starting a thread costs
# ~170 us, and every `docker` command opens one to three connections.
MAX_IDLE_THREADS = 16

_VERSION_PREFIX = re.compile(r"/v([0-9]+\.[0-9]+)(/.*)?")
_STANDARD_HEADERS = (
    f"Api-Version: {API_VERSION}\r\n"
    "Docker-Experimental: false\r\n"
    "Ostype: linux\r\n"
    f"Server: Docker/{ENGINE_VERSION} (linux)\r\n"
)
_NO_BODY_STATUSES = frozenset({204, 304})


def version_tuple(version: str) -> tuple[int, ...]:
    """Turn "1.50" into (1, 50) so versions compare numerically."""
    return tuple(int(p) for p in version.split("."))


_MAX_VERSION = version_tuple(API_VERSION)
_MIN_VERSION = version_tuple(MIN_API_VERSION)


# ---------------------------------------------------------------------------------------------------------------
# What handlers return

@dataclass
class Response:
    """A complete response, written with its headers in one sendall."""
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


def json_response(obj: Any, status: int = 200) -> Response:
    """Answer with obj encoded as JSON (one line, as Go's json.Encoder writes it)."""
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    return Response(status=status, body=body)


def empty(status: int = 204) -> Response:
    """Answer with no body (204 by default)."""
    return Response(status=status, body=b"", content_type="")


@dataclass
class StreamResponse:
    """A chunked response: headers are flushed before chunks is first advanced, each chunk is flushed.

    A chunk of b"" is a keepalive tick: nothing is sent, but the server checks whether the client has gone
    and closes the iterator if so. Long-waiting generators (wait, events, logs -f) should tick now and then.
    """
    chunks: Iterable[bytes]
    content_type: str = "application/json"
    status: int = 200
    headers: dict = field(default_factory=dict)


class Hijacked:
    """The type of HIJACKED: a handler returns it after req.hijack() took over the connection."""

    def __repr__(self) -> str:
        return "HIJACKED"


HIJACKED = Hijacked()

Handler = Callable[..., "Response | StreamResponse | Hijacked"]


class _BadRequest(Exception):
    """The request head could not be parsed; answer with status and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------------------------------------------------------
# Connection and request

class _Conn:
    """One client connection: the socket plus the bytes read from it but not parsed yet."""

    __slots__ = ("sock", "buf", "hijacked")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.hijacked = False

    def _fill(self) -> bool:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            return False
        self.buf += data
        return True

    def read_head(self) -> bytes | None:
        """Return the next request head (without the blank line), or None on a clean EOF between requests."""
        start = 0
        while True:
            # RFC 9112: a server should ignore empty lines received before the request line.
            while self.buf[:2] == b"\r\n":
                del self.buf[:2]
            i = self.buf.find(b"\r\n\r\n", start)
            if i >= 0:
                head = bytes(self.buf[:i])
                del self.buf[:i + 4]
                return head
            if len(self.buf) > MAX_HEAD:
                raise _BadRequest(431, "request header fields too large")
            start = max(0, len(self.buf) - 3)
            if not self._fill():
                if self.buf:
                    raise _BadRequest(400, "connection closed in the middle of a request head")
                return None

    def read_some(self, limit: int) -> bytes:
        """Return up to limit bytes: what is buffered first, else one recv; b"" at EOF."""
        if self.buf:
            data = bytes(self.buf[:limit])
            del self.buf[:limit]
            return data
        return self.sock.recv(min(limit, RECV_SIZE))

    def read_line(self) -> bytes:
        """Return one CRLF-terminated line without its CRLF (chunked framing)."""
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > MAX_CHUNK_LINE:
                raise InvalidParameter("malformed chunked request body: chunk header line too long")
            if not self._fill():
                raise InvalidParameter("request body ended before its last chunk")


class Request:
    """One parsed request; handlers read parameters and the body through it."""

    def __init__(self, conn: _Conn, method: str, target: str, path: str, query_string: str, api_version: str,
                 headers: dict, http_version: str) -> None:
        self._conn = conn
        self.method = method
        self.target = target
        self.path = path
        self.query_string = query_string
        self.api_version = api_version
        self.headers = headers
        self.http_version = http_version
        self._query: dict[str, list[str]] | None = None
        self._body: bytes | None = None
        self._body_started = False
        self._body_done = False
        self._continued = False
        self.keep_alive = self._wants_keep_alive()
        self.chunked, self.content_length = self._framing()
        self.expect_continue = headers.get("expect", "").lower() == "100-continue"
        if not self.chunked and self.content_length == 0:
            self._body_done = True

    def _wants_keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if "close" in tokens:
            return False
        return self.http_version == "HTTP/1.1" or "keep-alive" in tokens

    def _framing(self) -> tuple[bool, int]:
        te = self.headers.get("transfer-encoding")
        if te is not None:
            if te.split(",")[-1].strip().lower() != "chunked":
                raise _BadRequest(501, f"unsupported transfer encoding: {te}")
            # RFC 9112 6.3: with both headers, Transfer-Encoding wins and the connection must close afterwards.
            if "content-length" in self.headers:
                self.keep_alive = False
            return True, 0
        cl = self.headers.get("content-length")
        if cl is None:
            return False, 0
        if not cl.isdigit():
            raise _BadRequest(400, f"invalid Content-Length: {cl}")
        return False, int(cl)

    # -- query parameters --------------------------------------------------------------------------------------

    @property
    def query(self) -> dict[str, list[str]]:
        """Return the query parameters, every value of each (parsed on first use)."""
        if self._query is None:
            self._query = parse_qs(self.query_string, keep_blank_values=True) if self.query_string else {}
        return self._query

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Return the last value of query parameter name, or default."""
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        """Return every value of a repeated query parameter (t=a&t=b)."""
        return list(self.query.get(name, ()))

    def flag(self, name: str, default: bool = False) -> bool:
        """Read a boolean the way dockerd does: "", 0, no, false, none are false, anything else true."""
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "no", "false", "none")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        """Read an integer parameter; an empty or absent value gives default."""
        value = self.arg(name)
        if value is None or value.strip() == "":
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise InvalidParameter(f"invalid value for parameter {name}: {value!r} is not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        """Decode the filters parameter, map-of-sets ({"k":{"v":true}}) or map-of-lists ({"k":["v"]})."""
        raw = self.arg("filters")
        if raw is None or not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            raise InvalidParameter(f"invalid filter '{raw}'") from None
        if not isinstance(doc, dict):
            raise InvalidParameter(f"invalid filter '{raw}'")
        out: dict[str, list[str]] = {}
        for key, value in doc.items():
            if isinstance(value, dict):
                out[key] = [str(v) for v in value]
            elif isinstance(value, list):
                out[key] = [_filter_value(v) for v in value]
            elif isinstance(value, (str, bool)):
                out[key] = [_filter_value(value)]
            else:
                raise InvalidParameter(f"invalid filter '{raw}': values of {key!r} must be a list or a set")
        return out

    # -- body --------------------------------------------------------------------------------------------------

    def _send_continue(self) -> None:
        # Answer "Expect: 100-continue" only when the handler actually wants the body, as Go's server does.
        if self.expect_continue and not self._continued and not self._body_done:
            self._continued = True
            self._conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def body_stream(self) -> Iterator[bytes]:
        """Yield the request body as it arrives (Content-Length or chunked)."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._body_started or self._body_done:
            return
        self._body_started = True
        self._send_continue()
        try:
            if self.chunked:
                yield from self._chunked_body()
            else:
                remaining = self.content_length
                while remaining:
                    data = self._conn.read_some(remaining)
                    if not data:
                        raise InvalidParameter(
                            f"request body ended after {self.content_length - remaining} of "
                            f"{self.content_length} bytes")
                    remaining -= len(data)
                    yield data
            self._body_done = True
        finally:
            if not self._body_done:
                # A half-read body leaves the connection at an unknown position: it cannot be reused.
                self.keep_alive = False

    def _chunked_body(self) -> Iterator[bytes]:
        conn = self._conn
        while True:
            line = conn.read_line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise InvalidParameter(f"malformed chunked request body: bad chunk size {line[:40]!r}") from None
            if size < 0:
                raise InvalidParameter("malformed chunked request body: negative chunk size")
            if size == 0:
                while conn.read_line():      # trailers, ignored, up to the empty line
                    pass
                return
            while size:
                data = conn.read_some(size)
                if not data:
                    raise InvalidParameter("request body ended in the middle of a chunk")
                size -= len(data)
                yield data
            if conn.read_line() != b"":
                raise InvalidParameter("malformed chunked request body: missing CRLF after a chunk")

    def read_body(self) -> bytes:
        """Return the whole request body."""
        if self._body is None:
            self._body = b"".join(self.body_stream())
        return self._body

    def json(self) -> Any:
        """Decode the body as JSON; an empty body is {}."""
        body = self.read_body()
        if not body.strip():
            return {}
        try:
            return json.loads(body)
        except ValueError as e:
            raise InvalidParameter(f"invalid JSON in request body: {e}") from None

    def drain(self) -> bool:
        """Discard an unread body so the connection can serve the next request; False if it must close."""
        if self._body_done:
            return True
        if self.expect_continue and not self._continued:
            return False     # the client may or may not send the body now: the stream position is unknown
        if not self.chunked and self.content_length > MAX_DRAIN:
            return False
        total = 0
        try:
            for data in self.body_stream():
                total += len(data)
                if total > MAX_DRAIN:
                    return False
        except (EngineError, OSError):
            return False
        return self._body_done

    # -- hijack ------------------------------------------------------------------------------------------------

    def hijack(self, content_type: str) -> tuple[socket.socket, bytes]:
        """Take over the connection for a raw stream: return the socket and the bytes read past the request.

        Sends "101 UPGRADED" (or "200 OK" when the client sent no Upgrade header) in a write of its own,
        so clients that read the raw socket under a buffered HTTP reader lose nothing. The caller owns the
        socket afterwards: the server never reads, writes or closes it again.
        """
        if self._conn.hijacked:
            raise SystemFailure("connection already hijacked")
        if not self._body_done:
            self.read_body()    # exec start carries a small JSON body: early stdin starts after it
        if "upgrade" in self.headers:
            head = (f"HTTP/1.1 101 UPGRADED\r\nContent-Type: {content_type}\r\n"
                    "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        else:
            head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n\r\n"
        self._conn.hijacked = True
        sock = self._conn.sock
        sock.sendall(head.encode("latin-1"))
        pending = bytes(self._conn.buf)
        self._conn.buf.clear()
        return sock, pending

    @property
    def hijacked(self) -> bool:
        """Whether hijack() took over this request's connection."""
        return self._conn.hijacked

    def client_gone(self) -> bool:
        """Whether the client has closed its side of the connection (a non-blocking peek: EOF or an error).

        For a handler's worker thread while the response streams: a write notices a closed peer only on the next
        write, this notices it now. Only once the request body is read (a client sending nothing more is not gone).
        """
        return _client_gone(self._conn.sock)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"


def _filter_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _parse_head(conn: _Conn, head: bytes) -> Request:
    lines = head.split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[0].isalpha():
        raise _BadRequest(400, f"malformed request line: {lines[0][:80]!r}")
    method, target, http_version = parts
    if http_version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequest(505, f"unsupported HTTP version: {http_version[:20]}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400, f"malformed header line: {line[:80]!r}")
        key = name.decode("latin-1").lower()
        val = value.strip().decode("latin-1")
        if key in headers:
            if key == "content-length" and headers[key] != val:
                raise _BadRequest(400, "conflicting Content-Length headers")
            if key != "content-length":
                headers[key] = f"{headers[key]}, {val}"
        else:
            headers[key] = val
    if not target.startswith("/"):
        if "://" not in target:
            raise _BadRequest(400, f"malformed request target: {target[:80]!r}")
        split = urlsplit(target)      # absolute form: keep path and query only
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    raw_path, _, query_string = target.partition("?")
    path = unquote(raw_path)
    api_version = API_VERSION
    m = _VERSION_PREFIX.fullmatch(path)
    if m:
        api_version = m.group(1)
        path = m.group(2) or "/"
    return Request(conn, method.upper(), target, path, query_string, api_version, headers, http_version)


def _check_version(version: str) -> None:
    v = version_tuple(version)
    if v > _MAX_VERSION:
        raise InvalidParameter(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}")
    if v < _MIN_VERSION:
        raise InvalidParameter(
            f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
            "please upgrade your client to a newer version")


# ---------------------------------------------------------------------------------------------------------------
# Writing responses

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_REASONS[101] = "UPGRADED"
_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _head(status: int, keep_alive: bool, extra: list[str]) -> str:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n", _STANDARD_HEADERS, f"Date: {_date()}\r\n"]
    lines.extend(extra)
    if not keep_alive:
        lines.append("Connection: close\r\n")
    lines.append("\r\n")
    return "".join(lines)


def _header_lines(headers: dict) -> list[str]:
    return [f"{k}: {v}\r\n" for k, v in headers.items()]


def _client_gone(sock: socket.socket) -> bool:
    """Peek without blocking: EOF or an error means the client closed its side."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


# ---------------------------------------------------------------------------------------------------------------
# The server

class Server:
    """Accept connections on a unix socket; one thread per connection (reused when idle) serves its requests."""

    def __init__(self, engine: Any, socket_path: Path, mode: int = 0o660, routes: Any = None) -> None:
        if routes is None:
            from engine.api.routes import load_routes   # late: handler modules import this module
            routes = load_routes()
        from engine.api.routes import Router
        self.engine = engine
        self.router = routes if isinstance(routes, Router) else Router(routes)
        self.socket_path = Path(socket_path)
        self.mode = mode
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._handoff: queue.SimpleQueue[socket.socket | None] = queue.SimpleQueue()
        self._idle = 0          # threads blocked on _handoff, each owed at most one connection
        self._wake_r, self._wake_w = os.pipe()
        # Held by shutdown() between setting _stopped and waking the accept loop, and by _close_listener(): the
        # loop, seeing _stopped, must not close the wake pipe before shutdown() wrote to it (EBADF, or a write to
        # whatever file reused the descriptor).
        self._wake_lock = threading.Lock()
        self._listener_closed = False
        self._thread: threading.Thread | None = None
        self._looping = False
        self._listener = self._bind()
        self._inode = os.stat(self.socket_path).st_ino

    def _bind(self) -> socket.socket:
        path = self.socket_path
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(path)
        # Bind under a temporary name, set the mode, then rename into place: the socket never exists at its
        # public path with the umask's permissions, and a client never connects to a half-set-up socket.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(tmp))
            os.chmod(tmp, self.mode)
            sock.listen(128)
            os.replace(tmp, path)
        except OSError as e:
            sock.close()
            tmp.unlink(missing_ok=True)
            raise SystemFailure(f"listening on {path}: {e.strerror}") from e
        return sock

    def start(self) -> "Server":
        """Run the accept loop in a background thread."""
        self._looping = True      # before the thread runs: a quick shutdown() must wake it, not close under it
        self._thread = threading.Thread(target=self._accept_loop, name="api-accept", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until shutdown(): run the accept loop here, or wait for the background one."""
        if self._thread is None:
            self._looping = True
            self._accept_loop()
        else:
            self._stopped.wait()

    def shutdown(self) -> None:
        """Stop accepting, remove the socket file and close idle connections (hijacked ones are left alone)."""
        with self._wake_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            if self._looping and not self._listener_closed:
                os.write(self._wake_w, b"x")
        if not self._looping:
            self._close_listener()      # never served: nothing else will close it
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        try:
            if os.stat(self.socket_path).st_ino == self._inode:
                self.socket_path.unlink()
        except FileNotFoundError:
            pass
        with self._lock:
            conns = list(self._conns)
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._handoff.put(None)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_listener(self) -> None:
        with self._wake_lock:
            if self._listener_closed:
                return
            self._listener_closed = True
            self._listener.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopped.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not self._listener:
                        continue
                    try:
                        sock, _ = self._listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue
                    except OSError as e:
                        # EMFILE and friends: log and keep serving the connections we have.
                        log.error("accepting a connection on %s: %s", self.socket_path, e)
                        time.sleep(0.05)
                        continue
                    with self._lock:
                        self._conns.add(sock)
                        reuse = self._idle > 0
                        if reuse:
                            self._idle -= 1
                    if reuse:
                        self._handoff.put(sock)
                    else:
                        threading.Thread(target=self._conn_thread, args=(sock,), name="api-conn",
                                         daemon=True).start()
        finally:
            sel.close()
            self._close_listener()

    def _conn_thread(self, sock: socket.socket | None) -> None:
        while sock is not None:
            self._serve_conn(sock)
            with self._lock:
                if self._stopped.is_set() or self._idle >= MAX_IDLE_THREADS:
                    return
                self._idle += 1
            sock = self._handoff.get()

    def _serve_conn(self, sock: socket.socket) -> None:
        conn = _Conn(sock)
        try:
            while not self._stopped.is_set() and self._serve_one(conn):
                pass
        except OSError:
            pass                  # the client went away mid-request
        except Exception:
            log.exception("serving a connection")
        finally:
            with self._lock:
                self._conns.discard(sock)
            if not conn.hijacked:
                sock.close()

    def _serve_one(self, conn: _Conn) -> bool:
        """Serve one request; return whether the connection can carry another."""
        try:
            head = conn.read_head()
        except _BadRequest as e:
            self._send_bad_request(conn, e)
            return False
        if head is None:
            return False
        started = time.perf_counter()
        try:
            req = _parse_head(conn, head)
        except _BadRequest as e:
            self._send_bad_request(conn, e)
            return False
        result = self._dispatch(req)
        if conn.hijacked:
            self._log(req, 101, started)
            return False
        if isinstance(result, StreamResponse):
            ok = self._send_stream(conn, req, result)
        else:
            ok = self._send(conn, req, result)
        self._log(req, result.status, started)
        return ok and req.keep_alive and req.drain()

    def _dispatch(self, req: Request) -> Response | StreamResponse:
        try:
            if req.api_version != API_VERSION:
                _check_version(req.api_version)
            match = self.router.match(req.method, req.path)
            if match is None:
                return self._no_route(req)
            handler, params = match
            result = handler(self.engine, req, **params)
        except Exception as e:
            if req.hijacked:
                self._fail_hijacked(req, e)
                return empty(101)
            return api_errors.error_response(e, req)
        if req.hijacked:
            return empty(101)
        if isinstance(result, (Response, StreamResponse)):
            return result
        if result is HIJACKED:
            log.error("%s %s returned HIJACKED without hijacking the connection", req.method, req.path)
        else:
            log.error("%s %s returned %r instead of a Response", req.method, req.path, type(result))
        return json_response({"message": f"internal error: handler for {req.path} returned no response"}, 500)

    def _no_route(self, req: Request) -> Response:
        allowed = self.router.methods_for(req.path)
        if allowed:
            resp = json_response({"message": f"method {req.method} is not allowed on {req.path}"}, 405)
            resp.headers["Allow"] = ", ".join(allowed)
            return resp
        return json_response({"message": "page not found"}, 404)

    def _fail_hijacked(self, req: Request, e: Exception) -> None:
        # The client already has its 101: an error can only travel as text in the stream, as dockerd does.
        message = e.message if isinstance(e, EngineError) else f"internal error: {e}"
        if not isinstance(e, EngineError) or isinstance(e, SystemFailure):
            log.error("%s %s failed after hijacking", req.method, req.path, exc_info=e)
        sock = req._conn.sock
        try:
            sock.sendall(message.encode() + b"\r\n")
        except OSError:
            pass
        sock.close()

    def _send(self, conn: _Conn, req: Request, resp: Response) -> bool:
        status = resp.status
        extra = []
        has_body = status >= 200 and status not in _NO_BODY_STATUSES
        if has_body:
            if resp.content_type:
                extra.append(f"Content-Type: {resp.content_type}\r\n")
            extra.append(f"Content-Length: {len(resp.body)}\r\n")
        if resp.headers:
            extra.extend(_header_lines(resp.headers))
        data = _head(status, req.keep_alive, extra).encode("latin-1")
        if has_body and req.method != "HEAD" and resp.body:
            data += resp.body
        try:
            conn.sock.sendall(data)
        except OSError:
            return False
        return True

    def _send_stream(self, conn: _Conn, req: Request, resp: StreamResponse) -> bool:
        sock = conn.sock
        chunked = req.http_version == "HTTP/1.1"
        if not chunked:
            req.keep_alive = False      # HTTP/1.0: the body ends when the connection closes
        extra = [f"Content-Type: {resp.content_type}\r\n"]
        if chunked:
            extra.append("Transfer-Encoding: chunked\r\n")
        extra.extend(_header_lines(resp.headers))
        it = iter(resp.chunks)
        try:
            try:
                sock.sendall(_head(resp.status, req.keep_alive, extra).encode("latin-1"))
            except OSError:
                return False
            if req.method == "HEAD":
                return True
            while True:
                try:
                    chunk = next(it)
                except StopIteration:
                    break
                except Exception as e:
                    return self._stream_failed(sock, req, resp, e, chunked)
                if not chunk:
                    if _client_gone(sock):
                        return False
                    continue
                try:
                    sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                except OSError:
                    return False
            if chunked:
                try:
                    sock.sendall(b"0\r\n\r\n")
                except OSError:
                    return False
            return chunked
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()        # runs the generator's finally blocks (unsubscribe, stop following, ...)

    def _stream_failed(self, sock: socket.socket, req: Request, resp: StreamResponse, e: Exception,
                       chunked: bool) -> bool:
        """Report an error raised after the stream started: a JSON error message, or a cut-off body."""
        from engine.api.streams import error_line
        if not isinstance(e, EngineError) or isinstance(e, SystemFailure):
            log.error("%s %s failed while streaming", req.method, req.path, exc_info=e)
        if not resp.content_type.startswith("application/json"):
            return False        # close without the last chunk: the client sees a truncated body, not success
        message = e.message if isinstance(e, EngineError) else f"internal error: {e}"
        line = error_line(message)
        try:
            sock.sendall(b"%x\r\n%b\r\n0\r\n\r\n" % (len(line), line) if chunked else line)
        except OSError:
            return False
        return chunked

    def _send_bad_request(self, conn: _Conn, e: _BadRequest) -> None:
        body = json.dumps({"message": e.message}).encode() + b"\n"
        head = _head(e.status, False, ["Content-Type: application/json\r\n", f"Content-Length: {len(body)}\r\n"])
        try:
            conn.sock.sendall(head.encode("latin-1") + body)
        except OSError:
            pass

    def _log(self, req: Request, status: int, started: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %d %.1fms", req.method, req.target, status, (time.perf_counter() - started) * 1000)


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a dead daemon; refuse if a daemon still listens or it is not a socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SystemFailure(f"{path} exists and is not a socket: remove it or choose another socket path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        return
    except OSError as e:
        raise SystemFailure(f"checking whether another daemon listens on {path}: {e.strerror}") from e
    finally:
        probe.close()
    raise SystemFailure(f"another daemon is already listening on {path}")


def serve_forever(engine: Any, socket_path: Path, mode: int = 0o660, routes: Any = None) -> Server:
    """Bind the API socket and serve it from a background thread; block on .serve_forever(), stop with .shutdown()."""
    return Server(engine, socket_path, mode, routes).start()
