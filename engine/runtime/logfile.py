"""Docker's json-file log: the writer (with rotation) the supervisor uses and the readers the daemon uses."""

from __future__ import annotations

import calendar
import json
import os
import time
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Callable, Iterator

STREAMS = ("stdout", "stderr")
# Docker's json-file splits lines longer than 16K into several entries (the last one carries the "\n").
MAX_ENTRY = 16 * 1024

Entry = tuple[str, bytes, int]  # (stream, data, time_ns)

_prefix_cache: dict[int, str] = {}
_seconds_cache: dict[str, int] = {}


def format_time(ns: int) -> str:
    """Format unix nanoseconds as RFC3339 with nanoseconds in UTC (the per-second prefix is cached)."""
    secs, frac = divmod(ns, 1_000_000_000)
    prefix = _prefix_cache.get(secs)
    if prefix is None:
        if len(_prefix_cache) > 64:
            _prefix_cache.clear()
        prefix = _prefix_cache[secs] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{prefix}.{frac:09d}Z"


def parse_time(value: str) -> int:
    """Parse an RFC3339(Nano) time such as Docker writes into unix nanoseconds."""
    head = value[:19]
    secs = _seconds_cache.get(head)
    if secs is None:
        if len(_seconds_cache) > 1024:
            _seconds_cache.clear()
        secs = _seconds_cache[head] = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    rest = value[19:]
    frac = 0
    if rest.startswith("."):
        digits = rest[1:]
        n = 0
        while n < len(digits) and digits[n].isdigit():
            n += 1
        frac = int((digits[:n] + "000000000")[:9]) if n else 0
        rest = digits[n:]
    offset = 0
    if rest and rest[0] in "+-":
        hours, minutes = int(rest[1:3]), int(rest[4:6])
        offset = (hours * 3600 + minutes * 60) * (1 if rest[0] == "+" else -1)
    return (secs - offset) * 1_000_000_000 + frac


def _suffix(stream: str, time_ns: int) -> str:
    return f',"stream":"{stream}","time":"{format_time(time_ns)}"}}\n'


def encode_entry(stream: str, data: bytes, time_ns: int, suffix: str | None = None) -> str:
    """Encode one json-file line (pure ASCII). Bytes that are not UTF-8 survive the round trip (surrogateescape)."""
    return '{"log":' + encode_basestring_ascii(data.decode("utf-8", "surrogateescape")) + (
        suffix or _suffix(stream, time_ns))


def decode_entry(line: bytes) -> Entry | None:
    """Decode one json-file line, or None for a line that is not a complete entry (torn write after a crash)."""
    try:
        obj = json.loads(line)
        return obj.get("stream", "stdout"), obj["log"].encode("utf-8", "surrogateescape"), parse_time(obj["time"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def open_log(path: Path | str) -> int:
    """Open (create) a log file for appending; LogWriter can take the fd later."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


class LogWriter:
    """Append entries to a json-file log, rotating at max_size into path.1 .. path.<max_files-1>."""

    def __init__(self, path: Path | str, max_size: int = 0, max_files: int = 1, fd: int | None = None) -> None:
        # A str, not a Path: the supervisor writes logs for months and pathlib objects are heavy to keep.
        self.path = os.fspath(path)
        self.max_size = max_size if max_size and max_size > 0 else 0
        self.max_files = max(1, max_files or 1)
        self.fd = open_log(self.path) if fd is None else fd  # fd: already open_log()ed, now ours
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, data: bytes, time_ns: int) -> None:
        """Write one entry as is (the caller splits lines)."""
        self.write_lines([encode_entry(stream, data, time_ns)])

    def write_lines(self, lines: list[str]) -> None:
        """Write encoded (ASCII) entries, batching them into as few writes as rotation allows."""
        batch: list[str] = []
        batch_size = 0
        for line in lines:
            if self.max_size and batch_size + len(line) + self.size > self.max_size and self.size + batch_size > 0:
                self._flush(batch)
                batch, batch_size = [], 0
                self.rotate()
            batch.append(line)
            batch_size += len(line)
        self._flush(batch)

    def _flush(self, batch: list[str]) -> None:
        if not batch:
            return
        data = "".join(batch).encode("ascii")
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def rotate(self) -> None:
        """Shift path.N-1 -> path.N ... path -> path.1 and start a new file (a reader notices the new inode)."""
        os.close(self.fd)
        if self.max_files > 1:
            for n in range(self.max_files - 1, 1, -1):
                try:
                    os.replace(f"{self.path}.{n - 1}", f"{self.path}.{n}")
                except FileNotFoundError:
                    pass
            os.replace(self.path, f"{self.path}.1")
        else:
            # One file only: Docker truncates; unlinking instead gives followers a new inode to notice.
            os.unlink(self.path)
        self.fd = open_log(self.path)
        self.size = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LineSplitter:
    """Turn a stream's chunks into json-file entries: one per line, partial lines flushed at 16K or at the end."""

    def __init__(self, writer: LogWriter) -> None:
        self.writer = writer
        self.partial = {stream: b"" for stream in STREAMS}

    def feed(self, stream: str, data: bytes, time_ns: int) -> None:
        buf = self.partial[stream] + data
        cut = buf.rfind(b"\n") + 1
        suffix = _suffix(stream, time_ns)  # every line of one read shares its time
        lines = []
        if cut:
            for line in buf[:cut - 1].split(b"\n"):
                if len(line) < MAX_ENTRY:
                    lines.append(encode_entry(stream, line + b"\n", time_ns, suffix))
                else:
                    lines.extend(self._cut(stream, line + b"\n", time_ns, suffix))
        rest = buf[cut:]
        if len(rest) >= MAX_ENTRY:
            # no newline within an entry's reach: cut at 16K like Docker, keep the remainder pending
            keep = len(rest) % MAX_ENTRY
            lines.extend(self._cut(stream, rest[:len(rest) - keep], time_ns, suffix))
            rest = rest[len(rest) - keep:]
        self.partial[stream] = rest
        if lines:
            self.writer.write_lines(lines)

    @staticmethod
    def _cut(stream: str, data: bytes, time_ns: int, suffix: str) -> list[str]:
        """Split data into 16K entries (a line of exactly n*16K leaves its "\n" as an entry of its own)."""
        return [encode_entry(stream, data[i:i + MAX_ENTRY], time_ns, suffix) for i in range(0, len(data), MAX_ENTRY)]

    def flush(self, time_ns: int) -> None:
        """Write what is left of unterminated lines (at exit)."""
        for stream in STREAMS:
            if self.partial[stream]:
                self.writer.write(stream, self.partial[stream], time_ns)
                self.partial[stream] = b""


def log_files(path: Path) -> list[Path]:
    """Return the existing files of a log, oldest first: path.N .. path.1, path."""
    path = Path(path)
    rotated = []
    for p in path.parent.glob(path.name + ".*"):
        suffix = p.name[len(path.name) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files


def _in_range(time_ns: int, since_ns: int | None, until_ns: int | None) -> bool:
    return (since_ns is None or time_ns >= since_ns) and (until_ns is None or time_ns <= until_ns)


def _forward_lines(path: Path) -> Iterator[bytes]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return  # rotated away between listing and opening
    with f:
        yield from f


def _reverse_lines(path: Path, block: int = 65536) -> Iterator[bytes]:
    """Yield the lines of a file last first, reading it from the end in blocks."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        tail = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + tail
            lines = chunk.split(b"\n")
            tail = lines[0]
            for line in reversed(lines[1:]):
                if line:
                    yield line
        if tail:
            yield tail


def read_entries(path: Path, since_ns: int | None = None, until_ns: int | None = None,
                 tail: int | None = None) -> Iterator[Entry]:
    """Iterate a log's entries across rotated files, oldest first; tail keeps only the last N (None: all)."""
    files = log_files(path)
    if tail is not None and tail >= 0:
        picked: list[Entry] = []
        for f in reversed(files):
            if len(picked) >= tail:
                break
            for line in _reverse_lines(f):
                if len(picked) >= tail:
                    break
                entry = decode_entry(line)
                if entry and _in_range(entry[2], since_ns, until_ns):
                    picked.append(entry)
        yield from reversed(picked)
        return
    for f in files:
        for line in _forward_lines(f):
            entry = decode_entry(line)
            if entry is None:
                continue
            if until_ns is not None and entry[2] > until_ns:
                return
            if since_ns is None or entry[2] >= since_ns:
                yield entry


def follow_entries(path: Path, is_running: Callable[[], bool], since_ns: int | None = None,
                   until_ns: int | None = None, tail: int | None = None, poll: float = 0.05,
                   idle_tick: float | None = None) -> Iterator[Entry]:
    """Yield the history, then new entries as they are written, until is_running() is false and all is read.

    With idle_tick, yield (None, b"", 0) after that many seconds without output, so a streaming caller gets
    a chance to notice that its client has gone.
    """
    path = Path(path)
    f = None
    inode = None
    pending = b""
    try:
        # Open the live file before listing the rotated ones: if it rotates in between, skipping the rotated
        # file with our inode avoids reading it twice.
        try:
            f = open(path, "rb")
            inode = os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            pass
        history: list[Entry] = []
        for p in log_files(path)[:-1] if f else log_files(path):
            try:
                if os.stat(p).st_ino == inode:
                    continue
            except FileNotFoundError:
                continue
            for line in _forward_lines(p):
                entry = decode_entry(line)
                if entry and _in_range(entry[2], since_ns, until_ns):
                    history.append(entry)
        if f is not None:
            data = f.read()
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            for line in data[:cut].splitlines():
                entry = decode_entry(line)
                if entry and _in_range(entry[2], since_ns, until_ns):
                    history.append(entry)
        if tail is not None and tail >= 0:
            history = history[-tail:] if tail else []
        yield from history
        history = []
        if until_ns is not None and time.time_ns() > until_ns:
            return

        idle_since = time.monotonic()
        while True:
            running = is_running()  # sample before reading so the last writes before exit are not missed
            new = b""
            if f is not None:
                new = f.read()
            if not new:
                # Nothing more in our file: did the writer move on to a new one (rotation)?
                try:
                    current = os.stat(path).st_ino
                except FileNotFoundError:
                    current = None
                if current is not None and current != inode:
                    if f is not None:
                        new = f.read()  # whatever was written before the rename
                        f.close()
                    try:
                        f = open(path, "rb")
                        inode = os.fstat(f.fileno()).st_ino
                    except FileNotFoundError:
                        f, inode = None, None
                    if not new:
                        continue
                elif not running or (until_ns is not None and time.time_ns() > until_ns):
                    return
                else:
                    if idle_tick is not None and time.monotonic() - idle_since >= idle_tick:
                        idle_since = time.monotonic()
                        yield (None, b"", 0)  # type: ignore[misc]
                    time.sleep(poll)
                    continue
            idle_since = time.monotonic()
            data = pending + new
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            for line in data[:cut].splitlines():
                entry = decode_entry(line)
                if entry is None or (since_ns is not None and entry[2] < since_ns):
                    continue
                if until_ns is not None and entry[2] > until_ns:
                    return
                yield entry
    finally:
        if f is not None:
            f.close()
