"""Stream helpers for the API: stdcopy frames, JSON message streams and errors reported after a stream started."""

from __future__ import annotations

import json
import logging
import struct
from typing import Any, Iterable, Iterator

from engine.errors import EngineError, SystemFailure

log = logging.getLogger("engine.api")

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

_HEADER = struct.Struct(">BxxxI")


def frame(stream_id: int, data: bytes) -> bytes:
    """Prefix data with Docker's 8-byte stdcopy header (stream id, 3 zero bytes, big-endian length)."""
    return _HEADER.pack(stream_id, len(data)) + data


def stream_content_type(tty: bool, api_version: str = "1.50") -> str:
    """Return the content type of an attach/exec/logs stream: raw with a TTY, multiplexed without (API >= 1.42)."""
    if tty:
        return RAW_STREAM
    major, minor = (int(p) for p in api_version.split("."))
    return MULTIPLEXED_STREAM if (major, minor) >= (1, 42) else RAW_STREAM


def json_line(obj: Any) -> bytes:
    """Encode one message of a JSON stream: compact JSON and a newline."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_message(message: str) -> dict:
    """Return the message that reports an error inside a started stream (the CLI reads errorDetail, docker-py error)."""
    return {"errorDetail": {"message": message}, "error": message}


def error_line(message: str) -> bytes:
    """Encode error_message(message) as one JSON stream line."""
    return json_line(error_message(message))


def json_stream(items: Iterable[dict], prime: bool = False) -> Iterator[bytes]:
    """Encode messages as JSON lines; an error raised after the first line becomes a final error message.

    With prime=True the first message is produced right away, in the handler: an error before any output
    then propagates as a plain HTTP error (404 for a missing repository, ...), as dockerd does.
    """
    it = iter(items)
    first: list[dict] = []
    if prime:
        try:
            first.append(next(it))
        except StopIteration:
            pass
    return _encode(it, first)


def _encode(it: Iterator[dict], first: list[dict]) -> Iterator[bytes]:
    try:
        for item in first:
            yield json_line(item)
        for item in it:
            yield json_line(item)
    except GeneratorExit:
        raise
    except Exception as e:
        message = e.message if isinstance(e, EngineError) else f"internal error: {e}"
        if not isinstance(e, EngineError) or isinstance(e, SystemFailure):
            log.error("JSON stream failed: %s", message, exc_info=e)
        yield error_line(message)
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def prime(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Advance a byte stream once now, so an error before its first chunk raises in the handler."""
    it = iter(chunks)
    try:
        first = next(it)
    except StopIteration:
        return iter(())
    return _chain_first(first, it)


def _chain_first(first: bytes, it: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield first
        yield from it
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
