"""The threaded archive writer and reader: what reaches the file, its checksums, and clean stops on failure."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import threading
import time

import pytest
import xxhash
import zstandard

from engine.volumes import archive_file
from engine.volumes.archive_file import ArchiveFile, ReadAhead, read_back
from engine.volumes.backup import check_archive_file


def archive_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("archive-")]


def payload() -> list[bytes]:
    rng = os.urandom(3 << 20)
    text = b"volume backup restore " * 200_000
    return [rng[:1 << 20], text, bytearray(rng[1 << 20:]), memoryview(text)[:12345]]


DECOMPRESS = {"zstd": lambda b: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(b)).read(),
              "gzip": gzip.decompress, "none": lambda b: b}


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_the_file_holds_the_compressed_stream_and_its_checksums(tmp_path, compression):
    path = tmp_path / "a"
    blocks = payload()
    expected = b"".join(bytes(b) for b in blocks)
    with open(path, "xb", buffering=0) as f:
        sink = ArchiveFile(f, compression)
        for b in blocks:
            sink.write(b)
        written = sink.close()
    data = path.read_bytes()
    assert DECOMPRESS[compression](data) == expected
    assert (written.size, written.xxh3, written.sha256) == (len(data), xxhash.xxh3_64_intdigest(data),
                                                            hashlib.sha256(data).hexdigest())
    assert read_back(path) == (written.xxh3, written.size)
    assert check_archive_file(path, written) == (True, f"read back {len(data)} bytes, checksums match")
    assert archive_threads() == []


def test_a_flipped_byte_fails_the_read_back_check(tmp_path):
    path = tmp_path / "a"
    with open(path, "xb", buffering=0) as f:
        sink = ArchiveFile(f, "zstd")
        sink.write(b"x" * 100_000)
        written = sink.close()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(data)
    assert check_archive_file(path, written) == (False, "the archive read back differs from what was written")


def test_a_write_error_reaches_the_caller_and_stops_both_threads(tmp_path):
    r, w = os.pipe()
    os.close(r)                       # writing to a pipe nobody reads: EPIPE in the writer thread
    f = os.fdopen(w, "wb", buffering=0)
    sink = ArchiveFile(f, "zstd")
    with pytest.raises(OSError):
        for _ in range(64):
            sink.write(os.urandom(1 << 20))
        sink.close()
    sink.abort()
    f.close()
    assert archive_threads() == []


def test_abort_mid_stream_stops_both_threads(tmp_path, monkeypatch):
    slow = archive_file.ArchiveFile._write_out

    def slow_write(self, data):
        time.sleep(0.01)
        slow(self, data)

    monkeypatch.setattr(archive_file.ArchiveFile, "_write_out", slow_write)
    with open(tmp_path / "a", "xb", buffering=0) as f:
        sink = ArchiveFile(f, "none")
        for _ in range(10):
            sink.write(os.urandom(1 << 20))
        sink.abort()
    assert archive_threads() == []


def test_read_ahead_returns_the_stream_in_order_whatever_the_read_sizes():
    data = os.urandom(5 << 20)
    src = io.BytesIO(data)
    r = ReadAhead(src.read)
    got = bytearray()
    sizes = [1, 511, 512, 1 << 20, 3, 2 << 20]
    i = 0
    while True:
        chunk = r.read(sizes[i % len(sizes)])
        if not chunk:
            break
        assert len(chunk) <= sizes[i % len(sizes)]
        got += chunk
        i += 1
    assert bytes(got) == data
    assert r.read() == b""
    r.close()
    assert archive_threads() == []


def test_read_ahead_raises_the_sources_error_where_it_happened():
    src = io.BytesIO(b"a" * (2 << 20))

    def read(n):
        chunk = src.read(n)
        if not chunk:
            raise ValueError("the archive is corrupt")
        return chunk

    r = ReadAhead(read)
    assert len(r.read(1 << 20)) + len(r.read(1 << 20)) == 2 << 20
    with pytest.raises(ValueError, match="corrupt"):
        r.read()
    r.close()


def test_closing_read_ahead_early_stops_its_thread_even_with_a_full_queue():
    r = ReadAhead(lambda n: b"z" * n)      # an endless stream: the thread fills the queue and blocks
    assert r.read(10) == b"z" * 10
    time.sleep(0.05)
    r.close()
    assert archive_threads() == []


def test_an_error_when_the_stream_finishes_is_raised_and_the_thread_ends():
    def done():
        raise OSError(28, "No space left on device")

    stage = archive_file._Stage("archive-test", lambda item: None, done)
    stage.put(b"x")
    with pytest.raises(OSError, match="No space left"):
        stage.finish()
    assert archive_threads() == []
