"""The backup's own tar header writer: its fast path writes the general path's bytes, and tar readers agree."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest

from engine import tarsafe
from engine.volumes.backup import Entry, TarWriter, file_line

MTIME = 1_650_000_000_123_456_789

CASES = [
    # name, type, mode, uid, gid, size, mtime_ns
    ("a.txt", tarsafe.REG, 0o644, 0, 0, 5, MTIME),
    ("dir/", tarsafe.DIR, 0o755, 1000, 1000, 0, MTIME),
    ("./", tarsafe.DIR, 0o700, 0, 0, 0, MTIME),
    ("whole-second", tarsafe.REG, 0o600, 1, 2, 3, 1_650_000_000_000_000_000),
    ("setid", tarsafe.REG, 0o6755, 0, 0, 0, MTIME),
    ("x" * 100, tarsafe.REG, 0o644, 0, 0, 1, MTIME),              # fills the name field exactly
    ("unicod\u00e9/\u00fcml", tarsafe.REG, 0o644, 0, 0, 1, MTIME),
    ("big-id", tarsafe.REG, 0o644, 8 ** 7 - 1, 8 ** 7 - 1, 1, MTIME),
    ("epoch", tarsafe.REG, 0o644, 0, 0, 0, 0),
]


def general(writer: TarWriter, name, typ, mode, uid, gid, size, mtime_ns) -> bytes:
    writer._general_header(name.encode("utf-8", "surrogateescape"), typ, mode, uid, gid, size, mtime_ns, "", 0, 0,
                           None, None)
    out, writer.buf = bytes(writer.buf), bytearray()
    return out


def fast(writer: TarWriter, *case) -> bytes:
    writer.header(*case)
    out, writer.buf = bytes(writer.buf), bytearray()
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0][:20] for c in CASES])
def test_the_fast_header_is_byte_for_byte_the_general_one(case):
    w = TarWriter(io.BytesIO())
    assert fast(w, *case) == general(w, *case)


def archive(members) -> bytes:
    """A tar of (header args, data) pairs written by TarWriter."""
    sink = io.BytesIO()
    w = TarWriter(sink)
    for args, data in members:
        w.header(*args)
        w.data(data)
        w.pad(len(data))
    w.close()
    return sink.getvalue()


MEMBERS = [
    (("short.txt", tarsafe.REG, 0o640, 1000, 100, 5, MTIME), b"hello"),
    (("d" * 90 + "/" + "f" * 60, tarsafe.REG, 0o644, 0, 0, 3, MTIME), b"abc"),          # ustar prefix split
    (("L" * 250, tarsafe.REG, 0o600, 0, 0, 2, MTIME), b"ok"),                            # pax path
    (("huge-uid", tarsafe.REG, 0o644, 3_000_000, 5, 1, 1_650_000_000_000_000_000), b"u"),  # pax uid
    (("sub/", tarsafe.DIR, 0o755, 0, 0, 0, MTIME), b""),
]


def test_python_tarfile_reads_every_field_back():
    with tarfile.open(fileobj=io.BytesIO(archive(MEMBERS))) as tf:
        got = [(m.name, m.mode, m.uid, m.gid, m.size, m.pax_headers.get("mtime"), tf.extractfile(m).read()
                if m.isfile() else b"") for m in tf.getmembers()]
    assert got == [
        ("short.txt", 0o640, 1000, 100, 5, "1650000000.123456789", b"hello"),
        ("d" * 90 + "/" + "f" * 60, 0o644, 0, 0, 3, "1650000000.123456789", b"abc"),
        ("L" * 250, 0o600, 0, 0, 2, "1650000000.123456789", b"ok"),
        ("huge-uid", 0o644, 3_000_000, 5, 1, None, b"u"),
        ("sub", 0o755, 0, 0, 0, "1650000000.123456789", b""),
    ]


def test_gnu_tar_lists_the_members_with_their_owners_and_nanosecond_mtimes(tmp_path):
    path = tmp_path / "a.tar"
    path.write_bytes(archive(MEMBERS))
    out = subprocess.run(["tar", "--numeric-owner", "--full-time", "-tvf", str(path)], capture_output=True,
                         text=True, check=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}).stdout.splitlines()
    assert [line.split()[-1] for line in out] == ["short.txt", "d" * 90 + "/" + "f" * 60, "L" * 250, "huge-uid",
                                                  "sub/"]
    assert out[0].split()[:5] == ["-rw-r-----", "1000/100", "5", "2022-04-15", "05:20:00.123456789"]
    assert out[3].split()[1] == "3000000/5"


@pytest.mark.parametrize("path", ["plain/name.txt", 'quo"te', "back\\slash", "ctl\x01\n\t", "\u00e9\u4e2d\U0001f600",
                                  b"bad-\xff-utf8".decode("utf-8", "surrogateescape")])
def test_the_fast_manifest_line_is_the_entry_line(path):
    entry = Entry(path, "file", 0o644, 1000, 1001, MTIME, size=12, sha256="ab" * 32)
    assert file_line(path, 0o644, 1000, 1001, MTIME, 12, "ab" * 32) == entry.line()
