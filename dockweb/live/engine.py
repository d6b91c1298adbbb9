"""An asyncio HTTP client for the engine's streaming endpoints: logs follow, stats, exec and attach hijacks.

docker-py is blocking: a thread per open stream and a copy per line would not sustain 100,000 log lines a second
into a websocket, and a blocked read cannot be cancelled when the last viewer leaves. These calls run on the
event loop of the web process instead, read in large blocks, and stop as soon as their task is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import struct
from dataclasses import dataclass, field
from typing import AsyncIterator
from urllib.parse import urlencode, urlsplit

from django.conf import settings

from dockweb.core.errors import EngineConflict, EngineError, EngineInvalid, EngineNotFound, EngineUnavailable

_FRAME = struct.Struct(">BxxxI")  # stdcopy: stream (1 stdout, 2 stderr), 3 zero bytes, big-endian length
RAW_STREAM = "application/vnd.docker.raw-stream"
MUX_STREAM = "application/vnd.docker.multiplexed-stream"
READ_SIZE = 256 * 1024
_BY_STATUS = {400: EngineInvalid, 404: EngineNotFound, 409: EngineConflict, 503: EngineUnavailable}


async def connect(engine_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection to the engine at engine_url (unix:///path, tcp://host:port or http://host:port)."""
    parts = urlsplit(engine_url)
    try:
        if parts.scheme in ("unix", "http+unix"):
            return await asyncio.open_unix_connection(parts.path, limit=READ_SIZE)
        if parts.scheme in ("tcp", "http"):
            return await asyncio.open_connection(parts.hostname, parts.port or 2375, limit=READ_SIZE)
    except OSError as e:
        raise EngineUnavailable(f"cannot reach the engine at {engine_url}: {e.strerror or e}") from e
    raise EngineUnavailable(f"engine URL {engine_url}: live streams support unix:// and tcp:// (no TLS) only")


def api_path(path: str, params: dict | None = None) -> str:
    """Prefix path with the pinned API version and append the query string."""
    query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
    return f"/v{settings.ENGINE_API_VERSION}{path}" + (f"?{query}" if query else "")


@dataclass
class Response:
    """An engine answer: status, headers (lower-case names), and the connection its body is read from."""

    status: int
    headers: dict[str, str]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    _chunked: bool = False
    _decoder: "Dechunker | None" = field(default=None, repr=False)
    _left: int | None = None  # Content-Length still to read, when the engine sent one

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    async def read(self) -> bytes:
        """Return the next block of the body (as much as has arrived), or b"" at its end."""
        while True:
            if self._left is not None:
                if self._left <= 0:
                    return b""
                data = await self.reader.read(min(READ_SIZE, self._left))
                self._left -= len(data)
                return data
            data = await self.reader.read(READ_SIZE)
            if not self._chunked:
                return data
            if self._decoder is None:
                self._decoder = Dechunker()
            if not data:
                return b""
            out = self._decoder.feed(data)
            if out or self._decoder.done:
                return out

    async def read_all(self, limit: int = 16 * 1024 * 1024) -> bytes:
        body = bytearray()
        while len(body) < limit:
            data = await self.read()
            if not data:
                break
            body += data
        return bytes(body)

    def close(self) -> None:
        self.writer.close()


async def request(engine_url: str, method: str, path: str, params: dict | None = None, body: dict | None = None,
                  upgrade: bool = False) -> Response:
    """Send one request on a new connection; return the response once its head arrived (errors raise).

    GETs speak HTTP/1.0 so the engine streams the body unframed until it closes the connection (no chunk
    headers to parse per log line); a hijack (upgrade=True) asks for the raw stream with Upgrade: tcp.
    """
    reader, writer = await connect(engine_url)
    try:
        payload = json.dumps(body).encode() if body is not None else b""
        version = "HTTP/1.1" if upgrade or payload or method != "GET" else "HTTP/1.0"
        head = [f"{method} {api_path(path, params)} {version}", "Host: docker"]
        if payload or method == "POST":
            head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        if upgrade:
            head += ["Connection: Upgrade", "Upgrade: tcp"]
        elif version == "HTTP/1.1":
            head.append("Connection: close")  # one request per connection: the body ends when it closes
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        await writer.drain()
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            raise EngineUnavailable(f"the engine at {engine_url} closed the connection without answering") from e
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        resp = Response(status, headers, reader, writer, _chunked=chunked,
                        _left=int(length) if length and length.isdigit() and not chunked and not upgrade else None)
        if status >= 400:
            text = (await resp.read_all(64 * 1024)).decode("utf-8", "replace")
            try:
                message = json.loads(text).get("message") or text
            except (ValueError, AttributeError):
                message = text
            raise _BY_STATUS.get(status, EngineError)(message.strip() or f"the engine answered {status}")
        return resp
    except BaseException:
        writer.close()
        raise


async def call_json(engine_url: str, method: str, path: str, params: dict | None = None,
                    body: dict | None = None):
    """Make one short request and return its decoded JSON body (None when empty)."""
    resp = await request(engine_url, method, path, params, body)
    try:
        data = await resp.read_all()
    finally:
        resp.close()
    return json.loads(data) if data.strip() else None


class Dechunker:
    """Decode an HTTP/1.1 chunked body fed in arbitrary blocks."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = 0        # bytes left in the current chunk
        self.crlf = False    # the CRLF after a chunk's data is still to skip
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while not self.done:
            if self.need:
                take = min(self.need, len(self.buf))
                if not take:
                    break
                out += self.buf[:take]
                del self.buf[:take]
                self.need -= take
                self.crlf = self.need == 0
                continue
            if self.crlf:
                if len(self.buf) < 2:
                    break
                del self.buf[:2]
                self.crlf = False
            end = self.buf.find(b"\r\n")
            if end < 0:
                break
            size = int(bytes(self.buf[:end]).split(b";")[0] or b"0", 16)
            del self.buf[:end + 2]
            if size == 0:
                self.done = True
            self.need = size
        return bytes(out)


class LogDecoder:
    """Turn a timestamped logs body (multiplexed frames, or raw for TTY containers) into (t, stream, text) lines."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, str, str]]:
        self.buf += data
        return self._raw() if self.tty else self._frames()

    def _frames(self) -> list[tuple[str, str, str]]:
        # The hot loop of a fast log (one frame per line): slices and partition run in C, no per-line call.
        data, pos, out = bytes(self.buf), 0, []
        end, append, header = len(data), out.append, _FRAME.unpack_from
        while end - pos >= 8:
            kind, size = header(data, pos)
            stop = pos + 8 + size
            if stop > end:
                break
            t, sep, text = data[pos + 8:stop].partition(b" ")
            if not sep or len(t) > 40:
                t, text = b"", data[pos + 8:stop]
            if text[-1:] == b"\n":
                text = text[:-1]
            append((t.decode("ascii", "replace"), "err" if kind == 2 else "out", text.decode("utf-8", "replace")))
            pos = stop
        del self.buf[:pos]
        return out

    def _raw(self) -> list[tuple[str, str, str]]:
        cut = self.buf.rfind(b"\n") + 1
        if not cut:
            return []
        block = bytes(self.buf[:cut])
        del self.buf[:cut]
        return [split_entry(line, "out") for line in block.split(b"\n")[:-1]]

    def flush(self) -> list[tuple[str, str, str]]:
        """Return what is left of an unterminated line at the end of the stream."""
        rest, self.buf = bytes(self.buf), bytearray()
        return [split_entry(rest, "out")] if self.tty and rest else []


def split_entry(entry: bytes, stream: str) -> tuple[str, str, str]:
    """Split "2026-01-01T00:00:00.000000001Z text\\n" into (time, stream, text without the newline)."""
    space = entry.find(b" ")
    if space < 0 or space > 40:
        return "", stream, entry.rstrip(b"\n").decode("utf-8", "replace")
    text = entry[space + 1:]
    if text.endswith(b"\n"):
        text = text[:-1]
    return entry[:space].decode("ascii", "replace"), stream, text.decode("utf-8", "replace")


async def log_lines(engine_url: str, engine_id: str, *, follow: bool, tail: int | str = "all",
                    since: str | None = None, until: str | None = None,
                    tty: bool | None = None) -> AsyncIterator[list[tuple[str, str, str]]]:
    """Yield the container's log as batches of (t, stream, text), as they arrive; follow keeps reading."""
    params = {"stdout": 1, "stderr": 1, "timestamps": 1, "tail": tail, "follow": 1 if follow else None,
              "since": since or None, "until": until or None}
    resp = await request(engine_url, "GET", f"/containers/{engine_id}/logs", params)
    try:
        if resp.content_type in (RAW_STREAM, MUX_STREAM):
            tty = resp.content_type == RAW_STREAM
        elif tty is None:
            info = await call_json(engine_url, "GET", f"/containers/{engine_id}/json")
            tty = bool((info.get("Config") or {}).get("Tty"))
        decoder = LogDecoder(tty)
        while True:
            data = await resp.read()
            if not data:
                break
            lines = decoder.feed(data)
            if lines:
                yield lines
        rest = decoder.flush()
        if rest:
            yield rest
    finally:
        resp.close()


async def json_stream(engine_url: str, path: str, params: dict | None = None) -> AsyncIterator[dict]:
    """Yield each JSON document of a newline-delimited stream (stats, events)."""
    resp = await request(engine_url, "GET", path, params)
    buf = b""
    try:
        while True:
            data = await resp.read()
            if not data:
                break
            buf += data
            *docs, buf = buf.split(b"\n")
            for doc in docs:
                if doc.strip():
                    yield json.loads(doc)
    finally:
        resp.close()


def parse_time(value: str) -> int:
    """Parse an RFC3339 time with up to nanoseconds ("...Z" or "+01:00") into unix nanoseconds; 0 if unparsable."""
    import calendar
    import time as _time

    try:
        secs = _SECONDS.get(value[:19])
        if secs is None:
            if len(_SECONDS) > 4096:
                _SECONDS.clear()
            secs = _SECONDS[value[:19]] = calendar.timegm(_time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S"))
        rest, frac = value[19:], 0
        if rest.startswith("."):
            n = 1
            while n < len(rest) and rest[n].isdigit():
                n += 1
            frac = int((rest[1:n] + "000000000")[:9])
            rest = rest[n:]
        offset = 0
        if rest[:1] in ("+", "-"):
            offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
        return (secs - offset) * 1_000_000_000 + frac
    except (ValueError, IndexError):
        return 0


_SECONDS: dict[str, int] = {}
