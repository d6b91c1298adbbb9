"""Docker's json-file log: the writer (with rotation) the supervisor uses and the readers the daemon uses."""

from __future__ import annotations

import calendar
import ctypes
import json
import os
import select
import time
from json.decoder import scanstring as _scanstring
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from engine.errors import SystemFailure

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


# ---------------------------------------------------------------------------------------------------- reading

# An entry as the readers hand it out in batches: the stream, the bytes, and the time exactly as stored (RFC3339,
# nine fraction digits, Z): byte order is time order, so since/until compare without parsing, and a timestamps
# prefix is the stored time as is.
RawEntry = tuple[str, bytes, bytes]

# Read (and send) at most this much at a time: a follower looks for rotations between blocks, and a slow client
# holds it in a send for a block at a time, during which the writer must not get max_files files ahead.
READ_BLOCK = 256 * 1024
_HEAD = b'{"log":"'
_MID = b'","stream":"'
_TIME_KEY = b'","time":"'
_STREAM_NAMES = {b"stdout": "stdout", b"stderr": "stderr"}
# From _MID to the end of a line this module wrote: _MID, 6 stream letters, _TIME_KEY, 30 time characters, "}.
_TAIL_LEN = len(_MID) + 6 + len(_TIME_KEY) + 30 + 2


def time_key(ns: int) -> bytes:
    """Return a time in its stored form (RawEntry's third field), for since/until comparisons."""
    return format_time(ns).encode("ascii")


def _slow_entry(line: bytes) -> RawEntry | None:
    entry = decode_entry(line)
    return None if entry is None else (entry[0], entry[1], time_key(entry[2]))


def scan_lines(lines: list[bytes]) -> list[RawEntry]:
    """Decode json-file lines (without their newline) into RawEntry, skipping empty and torn ones.

    This is the hot loop of a log follow: lines in the shape encode_entry writes are taken apart with slices and
    byte searches that run in C (a JSON parser per line would cap a follow near 20,000 lines a second); other
    shapes, and escapes other than a final newline, go through the JSON parser.
    """
    out: list[RawEntry] = []
    append = out.append
    names = _STREAM_NAMES
    for line in lines:
        i = line.rfind(_MID)
        if i > 7 and len(line) - i == _TAIL_LEN and line[i + 18:i + 28] == _TIME_KEY and line.startswith(_HEAD):
            stream = names.get(line[i + 12:i + 18])
            data = line[8:i]
            if stream is not None and line[-2:] == b'"}':
                if b"\\" in data:
                    if data[-2:] == b"\\n" and data.find(b"\\", 0, len(data) - 2) < 0:
                        data = data[:-2] + b"\n"
                    else:
                        try:  # the JSON string scanner alone (C), not json.loads: tabs and quotes are common
                            data = _scanstring(data.decode("ascii") + '"', 0)[0].encode("utf-8", "surrogateescape")
                        except ValueError:  # raw UTF-8 (Docker's own files), or not JSON at all
                            entry = _slow_entry(line)
                            if entry is not None:
                                append(entry)
                            continue
                append((stream, data, line[i + 28:i + 58]))
                continue
        if line:
            entry = _slow_entry(line)
            if entry is not None:
                append(entry)
    return out


def _line_time(line: bytes) -> bytes | None:
    """Return the stored time of one json-file line, or None for a torn line."""
    i = line.rfind(_MID)
    if i > 7 and len(line) - i == _TAIL_LEN and line[i + 18:i + 28] == _TIME_KEY:
        return line[i + 28:i + 58]
    entry = _slow_entry(line)
    return None if entry is None else entry[2]


class _Moved(Exception):
    """A log file was renamed between looking at it and opening it."""


def _listing(path: str) -> list[str] | None:
    """Name the log's files oldest first, or None while a rotation is half done (a number missing, no live file)."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    numbers, live = [], False
    for name in names:
        if name == base:
            live = True
        elif name.startswith(base + ".") and name[len(base) + 1:].isdigit():
            numbers.append(int(name[len(base) + 1:]))
    numbers.sort()
    if numbers and (not live or numbers[-1] != len(numbers) or numbers[0] != 1):
        return None
    return [f"{path}.{n}" for n in reversed(numbers)] + ([path] if live else [])


def _inodes(names: list[str]) -> list[int] | None:
    try:
        return [os.stat(name).st_ino for name in names]
    except FileNotFoundError:
        return None


def _open_newer(path: str, after: int | None) -> list[tuple[BinaryIO, int]]:
    """Open the log's files newer than the one with inode `after` (all of them if None or gone), oldest first.

    The writer renames every file on each rotation, maybe while we look: open by name, then accept only if a
    second look finds the same names on the same inodes (otherwise look again). An open file survives later
    renames and even deletion, so a reader that holds the files newer than its own misses none of them, however
    fast the writer rotates afterwards.
    """
    deadline = time.monotonic() + 10.0
    pause = 0.0002
    while True:
        names = _listing(path)
        inodes = _inodes(names) if names is not None else None
        if names is not None and inodes is not None:
            start = inodes.index(after) + 1 if after in inodes else 0
            opened: list[tuple[BinaryIO, int]] = []
            try:
                for name, inode in zip(names[start:], inodes[start:]):
                    f = open(name, "rb", buffering=0)
                    opened.append((f, os.fstat(f.fileno()).st_ino))
                    if opened[-1][1] != inode:
                        raise _Moved(name)
                if _listing(path) == names and _inodes(names) == inodes:
                    return opened
            except (FileNotFoundError, _Moved):
                pass
            for f, _ in opened:
                f.close()
        if time.monotonic() > deadline:
            raise SystemFailure(f"reading the log {path}: its files kept rotating for 10 seconds")
        time.sleep(pause)  # a rotation is under way: let the writer finish it
        pause = min(pause * 2, 0.02)


def _reverse_lines(fd: int, end: int, block: int = READ_BLOCK) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, line) of the complete lines before end, last first; the piece after the last newline is not
    a complete line (it is being written, or torn) and is skipped."""
    pos = end
    pending = b""      # the bytes after the block being read, up to the next newline (or to end)
    complete = False   # whether pending is followed by a newline (not at first: that is the unfinished piece)
    while pos > 0:
        step = min(block, pos)
        pos -= step
        parts = (os.pread(fd, step, pos) + pending).split(b"\n")
        off = pos + sum(map(len, parts)) + len(parts) - 1   # just past the last part
        last = len(parts) - 1
        for k in range(last, -1, -1):
            line = parts[k]
            off -= len(line)
            if k == 0 and pos > 0:
                break  # it may begin in the block before: read that first
            if line and (k < last or complete):
                yield off, line
            off -= 1
        if last:
            complete = True
        pending = parts[0]


def _start(files: list[tuple[BinaryIO, int]], tail: int | None, since: bytes | None,
           until: bytes | None) -> tuple[int, int]:
    """Find where reading starts, as (index in files, offset): `tail` entries back (counting only those within
    since and until), never before since. Reads back from the end, so a tail of a long log costs its tail only."""
    if not files or (tail is None and since is None):
        return 0, 0
    newest = len(files) - 1
    if tail == 0:
        fd = files[newest][0].fileno()
        for off, line in _reverse_lines(fd, os.fstat(fd).st_size):
            return newest, off + len(line) + 1
        return newest, 0
    count = 0
    for index in range(newest, -1, -1):
        fd = files[index][0].fileno()
        for off, line in _reverse_lines(fd, os.fstat(fd).st_size):
            t = _line_time(line)
            if t is None:
                continue
            if since is not None and t < since:
                # Times only grow along a log (the writer stamps reads in order): all before this are older too.
                return index, off + len(line) + 1
            if until is not None and t > until:
                continue
            if tail is not None:
                count += 1
                if count >= tail:
                    return index, off
    return 0, 0


class _Wakeup:
    """Sleep until something in the log's directory changes (inotify), or a timeout passes.

    A written line wakes a follower at once instead of at its next poll; where inotify is unavailable (too many
    instances), this is a plain sleep.
    """

    _IN_MODIFY, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x80, 0x100
    _libc = None

    def __init__(self, directory: str) -> None:
        self.fd = -1
        try:
            if _Wakeup._libc is None:
                _Wakeup._libc = ctypes.CDLL(None, use_errno=True)
            libc = _Wakeup._libc
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                return
            mask = self._IN_MODIFY | self._IN_MOVED_TO | self._IN_CREATE
            if libc.inotify_add_watch(fd, os.fsencode(directory or "."), mask) < 0:
                os.close(fd)
                return
            self.fd = fd
        except (OSError, AttributeError):
            self.fd = -1

    @property
    def active(self) -> bool:
        return self.fd >= 0

    def wait(self, timeout: float) -> None:
        if self.fd < 0:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def entry_batches(path: Path | str, *, since_ns: int | None = None, until_ns: int | None = None,
                  tail: int | None = None, follow: bool = False, is_running: Callable[[], bool] = lambda: False,
                  poll: float = 0.05, idle_tick: float | None = None) -> Iterator[list[RawEntry]]:
    """Yield a log's entries in batches, oldest first, across its rotated files: the last `tail` (None: all)
    within since/until; with follow, then new ones as they are written until is_running() is false and all is
    read. With idle_tick, yield [] after that many seconds without output (a streaming caller gets a chance to
    notice that its client has gone).

    A follower holds open every file newer than the one it reads as soon as it sees a rotation, so a writer that
    rotates several times while the follower is busy never makes it skip a file (only a file created and deleted
    between two of its looks, max_files rotations, could be missed).
    """
    path = os.fspath(path)
    since = None if since_ns is None else time_key(since_ns)
    until = None if until_ns is None else time_key(until_ns)
    files = _open_newer(path, None)
    wakeup = _Wakeup(os.path.dirname(path)) if follow else None
    try:
        index, offset = _start(files, tail, since, until)
        for f, _ in files[:index]:
            f.close()
        files = files[index:]
        if files:
            files[0][0].seek(offset)

        def pin_newer() -> bool:
            """Open the files the writer started since we last looked; True if there are any."""
            try:
                inode = os.stat(path).st_ino
            except FileNotFoundError:
                return False
            if files and files[-1][1] == inode:
                return False
            newer = _open_newer(path, files[-1][1] if files else None)
            files.extend(newer)
            return bool(newer)

        pending = b""
        running = follow and is_running()  # sampled before reading so the last writes before exit are not missed
        idle_since = time.monotonic()
        while True:
            more = len(files) > 1  # the file we read was rotated away: at its end, it is complete
            data = files[0][0].read(READ_BLOCK) if files else b""
            if data:
                if pending:
                    data = pending + data
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                if cut:
                    batch = scan_lines(data[:cut - 1].split(b"\n"))
                    if since is not None:
                        batch = [e for e in batch if e[2] >= since]
                    if until is not None:
                        kept = [e for e in batch if e[2] <= until]
                        if len(kept) < len(batch):
                            if kept:
                                yield kept
                            return
                    if batch:
                        yield batch
                        idle_since = time.monotonic()
                if follow:
                    pin_newer()  # a stat per block: notice rotations while busy, before old files are deleted
                continue
            if more:
                files.pop(0)[0].close()
                pending = b""  # a rotated file ends with whole lines: anything left is a torn write
                continue
            if not follow:
                return
            if pin_newer():
                continue  # read the end of our file again (written before the rename), then the new ones
            if not running or (until_ns is not None and time.time_ns() > until_ns):
                return
            timeout = max(poll, 0.25) if wakeup.active else poll
            if idle_tick is not None:
                left = idle_tick - (time.monotonic() - idle_since)
                if left <= 0:
                    idle_since = time.monotonic()
                    yield []
                    continue
                timeout = min(timeout, left)
            wakeup.wait(timeout)
            running = is_running()
    finally:
        for f, _ in files:
            f.close()
        if wakeup is not None:
            wakeup.close()


def _entries(batches: Iterator[list[RawEntry]]) -> Iterator[Entry]:
    for batch in batches:
        if not batch:
            yield (None, b"", 0)  # type: ignore[misc]  (an idle tick)
        for stream, data, t in batch:
            yield stream, data, parse_time(t.decode("ascii"))


def read_entries(path: Path, since_ns: int | None = None, until_ns: int | None = None,
                 tail: int | None = None) -> Iterator[Entry]:
    """Iterate a log's entries across rotated files, oldest first; tail keeps only the last N (None: all)."""
    if tail is not None and tail < 0:
        tail = None
    yield from _entries(entry_batches(path, since_ns=since_ns, until_ns=until_ns, tail=tail))


def follow_entries(path: Path, is_running: Callable[[], bool], since_ns: int | None = None,
                   until_ns: int | None = None, tail: int | None = None, poll: float = 0.05,
                   idle_tick: float | None = None) -> Iterator[Entry]:
    """Yield the history, then new entries as they are written, until is_running() is false and all is read.

    With idle_tick, yield (None, b"", 0) after that many seconds without output.
    """
    if tail is not None and tail < 0:
        tail = None
    yield from _entries(entry_batches(path, since_ns=since_ns, until_ns=until_ns, tail=tail, follow=True,
                                      is_running=is_running, poll=poll, idle_tick=idle_tick))
