"""Volume backups: write, verify and restore streamed tar archives with a manifest, and keep them in a store."""

from __future__ import annotations

import ctypes
import errno
import gzip
import hashlib
import json
import logging
import os
import stat
import struct
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import xxhash

from engine import state as st
from engine import tarsafe
from engine.config import EngineConfig
from engine.errors import Conflict, EngineError, InvalidParameter, NotFound, SystemFailure
from engine.events import EventLog
from engine.volumes.archive_file import GZIP_LEVEL, ZSTD_LEVEL, ArchiveFile, ReadAhead, Written, read_back

log = logging.getLogger(__name__)

CHUNK = 1 << 20
FORMAT = "dockweb-backup"
FORMAT_VERSION = 1
MANIFEST_DIR = ".dockweb-backup"
MANIFEST_NAME = f"{MANIFEST_DIR}/manifest.jsonl"
COMPRESSIONS = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}
CONSISTENCY_MODES = ("pause", "stop", "none")
CONSISTENCY_LABEL = "dockweb.backup.consistency"

# Progress callbacks receive (current bytes, total bytes, files done); they may raise to cancel.
Progress = Callable[[int, int, int], None]
PROGRESS_INTERVAL = 0.25      # seconds between progress reports


class Cancelled(EngineError):
    """The operation was cancelled (its client went away); nothing was published."""


# ---------------------------------------------------------------------------------------------------------------
# Writing tar headers (pax format, readable by GNU tar)

def _octal(value: int, width: int) -> bytes | None:
    """Encode value as a NUL-terminated octal field, or None when it does not fit."""
    if value < 0 or value >= 8 ** (width - 1):
        return None
    return b"%0*o\0" % (width - 1, value)


def _pax_record(key: str, value: bytes) -> bytes:
    body = key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
    n = len(body) + 2
    while len(b"%d " % n) + len(body) != n:
        n = len(b"%d " % n) + len(body)
    return b"%d " % n + body


def _pax_time(ns: int) -> bytes:
    sign = b"-" if ns < 0 else b""
    secs, frac = divmod(abs(ns), 1_000_000_000)
    return sign + (b"%d.%09d" % (secs, frac) if frac else b"%d" % secs)


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")


def _oct(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value) if 0 <= value < 8 ** (width - 1) else bytes(width)


def _ustar(name: bytes, prefix: bytes, mode: int, uid: int, gid: int, size: int, mtime: int, typ: bytes,
           linkname: bytes, devmajor: int, devminor: int) -> bytes:
    """Pack one ustar header block; fields that do not fit are zero (the pax header carries them)."""
    h = _USTAR.pack(name, _oct(mode, 8), _oct(uid, 8), _oct(gid, 8), _oct(size, 12), _oct(max(mtime, 0), 12),
                    b"        ", typ, linkname, b"ustar\x0000", b"", b"", _oct(devmajor, 8), _oct(devminor, 8),
                    prefix)
    return h[:148] + b"%06o\0 " % sum(h) + h[156:]


# What follows the typeflag in a header with no link name, owner names, device numbers or name prefix.
_PLAIN_TAIL = bytes(100) + b"ustar\x0000" + bytes(64) + b"0000000\x00" * 2 + bytes(167)
_ID_LIMIT = 8 ** 7             # mode, uid and gid fit their 8-byte octal fields below this
_SIZE_LIMIT = 8 ** 11          # size and mtime (seconds) fit their 12-byte octal fields below this


def _plain_ustar(name: bytes, typ: bytes, mode: int, uid: int, gid: int, size: int, mtime: int) -> bytes:
    """Pack a ustar header whose fields all fit, with no link name or prefix (what _ustar packs, faster)."""
    h = (name.ljust(100, b"\0") + b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (mode, uid, gid, size, mtime)
         + typ + _PLAIN_TAIL)
    return h[:148] + b"%06o\0 " % sum(h) + h[156:]


def _plain_header(raw: bytes, typ: bytes, mode: int, uid: int, gid: int, size: int, mtime_ns: int) -> bytes:
    """Return the header blocks of the common member: a short name, small ids, only the mtime needs pax.

    The bytes are the ones TarWriter.header's general path writes (a test holds them equal).
    """
    secs, frac = divmod(mtime_ns, 1_000_000_000)
    head = _plain_ustar(raw, typ, mode, uid, gid, size, secs)
    if not frac:
        return head
    record = _pax_record("mtime", b"%d.%09d" % (secs, frac))
    base = raw.rsplit(b"/", 1)[-1][:80] or b"root"
    return (_plain_ustar(b"PaxHeaders/" + base, tarsafe.PAX, 0o644, 0, 0, len(record), secs) + record
            + bytes(-len(record) % 512) + head)


def _split_name(raw: bytes) -> tuple[bytes, bytes] | None:
    """Split a name into ustar (name, prefix) fields, or None when it needs a pax path record."""
    if len(raw) <= 100:
        return raw, b""
    i = raw.find(b"/", max(0, len(raw) - 101))
    while 0 <= i:
        if i <= 155 and len(raw) - i - 1 <= 100 and i > 0:
            return raw[i + 1:], raw[:i]
        i = raw.find(b"/", i + 1)
    return None


@dataclass
class Entry:
    """One archive member as the manifest records it."""
    path: str
    type: str                 # file | dir | symlink | hardlink | char | block | fifo
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int = 0
    sha256: str = ""
    link: str = ""
    major: int = 0
    minor: int = 0
    xattrs: dict = field(default_factory=dict)    # name -> sha256 of the value (values can be binary)

    def line(self) -> str:
        """Return the canonical manifest line: verify rebuilds it from the archive and compares the text."""
        doc = {"path": self.path, "type": self.type, "mode": self.mode, "uid": self.uid, "gid": self.gid,
               "mtime_ns": self.mtime_ns}
        if self.type == "file":
            doc["size"] = self.size
            doc["sha256"] = self.sha256
        if self.link:
            doc["link"] = self.link
        if self.type in ("char", "block"):
            doc["major"], doc["minor"] = self.major, self.minor
        if self.xattrs:
            doc["xattrs"] = self.xattrs
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


_json_string = json.encoder.encode_basestring     # what json.dumps(ensure_ascii=False) uses for a str (C code)


def file_line(path: str, mode: int, uid: int, gid: int, mtime_ns: int, size: int, sha256: str) -> str:
    """Return Entry(path, "file", ...).line() of a file without xattrs, without building the entry (hot path)."""
    return ('{"gid":%d,"mode":%d,"mtime_ns":%d,"path":%s,"sha256":"%s","size":%d,"type":"file","uid":%d}\n'
            % (gid, mode, mtime_ns, _json_string(path), sha256, size, uid))


_TYPE_OF_MEMBER = {tarsafe.DIR: "dir", tarsafe.SYM: "symlink", tarsafe.LNK: "hardlink", tarsafe.CHR: "char",
                   tarsafe.BLK: "block", tarsafe.FIFO: "fifo", tarsafe.GNU_DUMPDIR: "dir"}
_MEMBER_TYPE = {"dir": tarsafe.DIR, "symlink": tarsafe.SYM, "hardlink": tarsafe.LNK, "char": tarsafe.CHR,
                "block": tarsafe.BLK, "fifo": tarsafe.FIFO, "file": tarsafe.REG}


def _xattr_digests(xattrs: dict[str, bytes]) -> dict[str, str]:
    return {k: hashlib.sha256(v).hexdigest() for k, v in sorted(xattrs.items())}


def entry_of_member(parts: Iterable[str], m: tarsafe.Member, sha256: str = "") -> Entry:
    """Describe an archive member as a manifest entry (the path without a leading ./, "." for the root)."""
    path = "/".join(parts) or "."
    typ = "file" if m.isreg() else _TYPE_OF_MEMBER.get(m.type, "other")
    link = m.linkname if typ in ("symlink", "hardlink") else ""
    if typ == "hardlink":
        link = "/".join(p for p in m.linkname.split("/") if p not in ("", ".")) or "."
    return Entry(path=path, type=typ, mode=m.mode & 0o7777, uid=m.uid, gid=m.gid, mtime_ns=m.mtime_ns,
                 size=m.realsize if typ == "file" else 0, sha256=sha256, link=link, major=m.devmajor,
                 minor=m.devminor, xattrs=_xattr_digests(m.xattrs))


class TarWriter:
    """Write pax-format members to a binary sink, batching small writes into 1 MiB blocks."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.buf = bytearray()
        self.offset = 0

    def _emit(self, data: bytes | memoryview) -> None:
        self.offset += len(data)
        if len(data) >= CHUNK // 2:
            if self.buf:
                self.sink.write(self.buf)
                self.buf = bytearray()
            self.sink.write(data)
            return
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.sink.write(self.buf)
            self.buf = bytearray()

    def header(self, name: str, typ: bytes, mode: int, uid: int, gid: int, size: int, mtime_ns: int,
               linkname: str = "", devmajor: int = 0, devminor: int = 0, xattrs: dict[str, bytes] | None = None,
               extra: list[tuple[str, bytes]] | None = None) -> None:
        """Write one member header, preceded by a pax header when a field does not fit ustar."""
        raw = name.encode("utf-8", "surrogateescape")
        # Most members need nothing but a pax mtime: pack those directly (the general path below, faster).
        if not (linkname or xattrs or extra or devmajor or devminor) and len(raw) <= 100 \
                and 0 <= mode < _ID_LIMIT and 0 <= uid < _ID_LIMIT and 0 <= gid < _ID_LIMIT \
                and 0 <= size < _SIZE_LIMIT and 0 <= mtime_ns < _SIZE_LIMIT * 1_000_000_000:
            self._emit(_plain_header(raw, typ, mode, uid, gid, size, mtime_ns))
            return
        self._general_header(raw, typ, mode, uid, gid, size, mtime_ns, linkname, devmajor, devminor, xattrs, extra)

    def _general_header(self, raw: bytes, typ: bytes, mode: int, uid: int, gid: int, size: int, mtime_ns: int,
                        linkname: str, devmajor: int, devminor: int, xattrs: dict[str, bytes] | None,
                        extra: list[tuple[str, bytes]] | None) -> None:
        rawlink = linkname.encode("utf-8", "surrogateescape")
        pax: list[tuple[str, bytes]] = list(extra or ())
        split = _split_name(raw)
        if split is None:
            pax.append(("path", raw))
            split = (raw[:100], b"")
        if len(rawlink) > 100:
            pax.append(("linkpath", rawlink))
            rawlink = rawlink[:100]
        if _octal(size, 12) is None:
            pax.append(("size", b"%d" % size))
        for key, value in (("uid", uid), ("gid", gid)):
            if _octal(value, 8) is None:
                pax.append((key, b"%d" % value))
        if mtime_ns % 1_000_000_000 or mtime_ns < 0 or _octal(mtime_ns // 1_000_000_000, 12) is None:
            pax.append(("mtime", _pax_time(mtime_ns)))
        for key, value in sorted((xattrs or {}).items()):
            pax.append(("SCHILY.xattr." + key, value))
        if pax:
            data = b"".join(_pax_record(k, v) for k, v in pax)
            base = raw.rsplit(b"/", 1)[-1][:80] or b"root"
            self._emit(_ustar(b"PaxHeaders/" + base, b"", 0o644, 0, 0, len(data), mtime_ns // 1_000_000_000,
                              tarsafe.PAX, b"", 0, 0))
            self._emit(data + bytes(-len(data) % 512))
        self._emit(_ustar(split[0], split[1], mode, uid, gid, size, mtime_ns // 1_000_000_000, typ, rawlink,
                          devmajor, devminor))

    def data(self, chunk: bytes | memoryview) -> None:
        self._emit(chunk)

    def pad(self, size: int) -> None:
        if size % 512:
            self._emit(bytes(512 - size % 512))

    def close(self) -> None:
        """Write the end-of-archive marker (two zero blocks) and flush."""
        self._emit(bytes(1024))
        if self.buf:
            self.sink.write(self.buf)
            self.buf = bytearray()


# ---------------------------------------------------------------------------------------------------------------
# Sinks: compression and hashing of the archive file

def compressor(sink: BinaryIO, compression: str):
    """Return a writable that compresses into sink; close() it to finish the stream (sink stays open)."""
    if compression == "zstd":
        import zstandard

        # threads=1: compression runs in a zstd worker thread (no GIL) while Python reads and hashes files.
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=1, write_checksum=True)
        return cctx.stream_writer(sink, closefd=False, write_size=CHUNK)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
    if compression == "none":
        return _Uncompressed(sink)
    raise InvalidParameter(f"invalid compression {compression!r}: use one of zstd, gzip, none")


class _Uncompressed:
    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink

    def write(self, data) -> int:
        return self.sink.write(data)

    def close(self) -> None:
        pass


class _HashingReader:
    """Read a file, counting the bytes and hashing them with hasher, if given (the archive checksum)."""

    def __init__(self, f: BinaryIO, hasher=None) -> None:
        self.f = f
        self.hasher = hasher
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        if self.hasher is not None:
            self.hasher.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True


class _DecompressError(InvalidParameter):
    pass


class _SafeReader:
    """Turn decompression errors (zstd checksum, gzip CRC, truncation) into InvalidParameter."""

    def __init__(self, raw) -> None:
        self.raw = raw

    def read(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except (OSError, EOFError, ValueError) as e:
            raise _DecompressError(f"the archive is corrupt: {e}") from e
        except Exception as e:
            if type(e).__name__ == "ZstdError":
                raise _DecompressError(f"the archive is corrupt: {e}") from e
            raise

    def readable(self) -> bool:
        return True


def decompressor(raw: BinaryIO, compression: str) -> BinaryIO:
    """Return a reader of the uncompressed tar stream of an archive written with compression."""
    if compression == "zstd":
        import zstandard

        return _SafeReader(zstandard.ZstdDecompressor().stream_reader(raw, read_size=CHUNK,
                                                                      read_across_frames=True))
    if compression == "gzip":
        return _SafeReader(gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "none":
        return _SafeReader(raw)
    raise InvalidParameter(f"invalid compression {compression!r}: use one of zstd, gzip, none")


# ---------------------------------------------------------------------------------------------------------------
# Backing up a directory

@dataclass
class ArchiveStats:
    files: int = 0            # entries written (files, dirs, links, nodes)
    bytes: int = 0            # bytes of regular file content
    tar_size: int = 0         # bytes of the uncompressed tar stream
    manifest_sha256: str = ""


_RD_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
SEEK_DATA, SEEK_HOLE = 3, 4


def _read_xattrs(target: int | str, follow: bool = True) -> dict[str, bytes]:
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out = {}
    for name in names:
        if name.startswith(("user.", "trusted.")) or name == "security.capability":
            try:
                out[name] = os.getxattr(target, name, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
    return out


def _data_regions(fd: int, size: int) -> list[tuple[int, int]] | None:
    """Return the data regions of a file with holes (SEEK_DATA/SEEK_HOLE), or None when it has none."""
    regions = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:       # only a hole until the end
                break
            return None
        end = min(os.lseek(fd, start, SEEK_HOLE), size)
        regions.append((start, end - start))
        pos = end
    if len(regions) == 1 and regions[0] == (0, size):
        return None
    if not regions or regions[-1][0] + regions[-1][1] != size:
        regions.append((size, 0))            # GNU convention: a final empty region marks the length
    return regions


class _Archiver:
    """Walk a directory with no-follow fds and write every entry to a TarWriter, recording manifest lines."""

    def __init__(self, writer: TarWriter, manifest: BinaryIO, progress: Progress | None, total: int) -> None:
        self.w = writer
        self.manifest = manifest
        self.progress = progress
        self.total = total
        self.stats = ArchiveStats()
        self.links: dict[tuple[int, int], str] = {}   # (dev, ino) -> first path, only for files with nlink > 1
        self._last = time.monotonic()

    def record(self, e: Entry | str) -> None:
        """Add an entry (or its manifest line) to the manifest and report progress now and then."""
        self.manifest.write((e if isinstance(e, str) else e.line()).encode("utf-8", "surrogateescape"))
        self.stats.files += 1
        if self.progress is not None:
            now = time.monotonic()
            if now - self._last >= PROGRESS_INTERVAL:
                self._last = now
                self.progress(self.stats.bytes, self.total, self.stats.files)

    def run(self, root: Path) -> None:
        fd = os.open(root, _DIR_FLAGS)
        st_ = os.fstat(fd)
        xattrs = _read_xattrs(fd)
        self.w.header("./", tarsafe.DIR, stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid, 0, st_.st_mtime_ns,
                      xattrs=xattrs)
        self.record(Entry(".", "dir", stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid, st_.st_mtime_ns,
                          xattrs=_xattr_digests(xattrs)))
        # An explicit stack instead of recursion: deep trees must not hit Python's recursion limit.
        stack: list[tuple[int, str, Iterator[str]]] = [(fd, "", iter(self._names(fd, top=True)))]
        try:
            while stack:
                dfd, prefix, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(dfd)
                    stack.pop()
                    continue
                sub = self.entry(dfd, prefix, name)
                if sub is not None:
                    stack.append(sub)
        finally:
            for dfd, _, _ in stack:
                os.close(dfd)

    @staticmethod
    def _names(dfd: int, top: bool = False) -> list[str]:
        names = sorted(os.listdir(dfd))
        if top and MANIFEST_DIR in names:
            raise InvalidParameter(f"the volume contains {MANIFEST_DIR}, a name backups reserve for their "
                                   "manifest: rename it to back this volume up")
        return names

    def entry(self, dfd: int, prefix: str, name: str) -> tuple[int, str, Iterator[str]] | None:
        path = prefix + name
        try:
            st_ = os.lstat(name, dir_fd=dfd)
        except FileNotFoundError:
            return None        # removed while we walked (consistency "none")
        mode = st_.st_mode
        perm = stat.S_IMODE(mode)
        if stat.S_ISREG(mode):
            self.regular(dfd, path, name, st_)
        elif stat.S_ISDIR(mode):
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            except FileNotFoundError:
                return None
            st_ = os.fstat(fd)
            xattrs = _read_xattrs(fd)
            self.w.header(path + "/", tarsafe.DIR, stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid, 0,
                          st_.st_mtime_ns, xattrs=xattrs)
            self.record(Entry(path, "dir", stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid, st_.st_mtime_ns,
                              xattrs=_xattr_digests(xattrs)))
            return fd, path + "/", iter(self._names(fd))
        elif stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=dfd)
            xattrs = _read_xattrs(f"/proc/self/fd/{dfd}/{name}", follow=False)
            self.w.header(path, tarsafe.SYM, perm, st_.st_uid, st_.st_gid, 0, st_.st_mtime_ns, linkname=target,
                          xattrs=xattrs)
            self.record(Entry(path, "symlink", perm, st_.st_uid, st_.st_gid, st_.st_mtime_ns, link=target,
                              xattrs=_xattr_digests(xattrs)))
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            typ, kind = ((tarsafe.CHR, "char") if stat.S_ISCHR(mode) else (tarsafe.BLK, "block")
                         if stat.S_ISBLK(mode) else (tarsafe.FIFO, "fifo"))
            major = os.major(st_.st_rdev) if kind != "fifo" else 0
            minor = os.minor(st_.st_rdev) if kind != "fifo" else 0
            self.w.header(path, typ, perm, st_.st_uid, st_.st_gid, 0, st_.st_mtime_ns, devmajor=major,
                          devminor=minor)
            self.record(Entry(path, kind, perm, st_.st_uid, st_.st_gid, st_.st_mtime_ns, major=major, minor=minor))
        else:
            log.info("backup: skipping socket %s (GNU tar skips sockets too)", path)
        return None

    def regular(self, dfd: int, path: str, name: str, st_: os.stat_result) -> None:
        if st_.st_nlink > 1:
            key = (st_.st_dev, st_.st_ino)
            first = self.links.get(key)
            if first is not None:
                perm = stat.S_IMODE(st_.st_mode)
                self.w.header(path, tarsafe.LNK, perm, st_.st_uid, st_.st_gid, 0, st_.st_mtime_ns, linkname=first)
                self.record(Entry(path, "hardlink", perm, st_.st_uid, st_.st_gid, st_.st_mtime_ns, link=first))
                return
        try:
            fd = os.open(name, _RD_FLAGS, dir_fd=dfd)
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            if e.errno == errno.ELOOP:
                return                  # swapped for a symlink since the lstat: never followed
            raise
        try:
            st_ = os.fstat(fd)          # the attributes of what we read, not of what lstat saw
            if not stat.S_ISREG(st_.st_mode):
                return                  # replaced by something else since the lstat (consistency "none")
            size = st_.st_size
            perm = stat.S_IMODE(st_.st_mode)
            xattrs = _read_xattrs(fd)
            regions = _data_regions(fd, size) if st_.st_blocks * 512 < size else None
            sha = hashlib.sha256()
            if regions is None:
                self.w.header(path, tarsafe.REG, perm, st_.st_uid, st_.st_gid, size, st_.st_mtime_ns,
                              xattrs=xattrs)
                self._copy(fd, 0, size, sha)
                self.w.pad(size)
            else:
                self._sparse(fd, path, st_, perm, size, regions, xattrs, sha)
        finally:
            os.close(fd)
        if st_.st_nlink > 1:
            self.links[(st_.st_dev, st_.st_ino)] = path     # only once the first link is in the archive
        self.stats.bytes += size
        if xattrs:
            self.record(Entry(path, "file", perm, st_.st_uid, st_.st_gid, st_.st_mtime_ns, size=size,
                              sha256=sha.hexdigest(), xattrs=_xattr_digests(xattrs)))
        else:
            self.record(file_line(path, perm, st_.st_uid, st_.st_gid, st_.st_mtime_ns, size, sha.hexdigest()))

    def _copy(self, fd: int, offset: int, length: int, sha) -> None:
        """Copy length bytes at offset into the archive; a file that shrank meanwhile is padded with zeros."""
        left = length
        while left:
            chunk = os.pread(fd, min(CHUNK, left), offset)
            if not chunk:
                chunk = bytes(min(CHUNK, left))
            sha.update(chunk)
            self.w.data(chunk)
            offset += len(chunk)
            left -= len(chunk)

    def _sparse(self, fd: int, path: str, st_: os.stat_result, perm: int, size: int,
                regions: list[tuple[int, int]], xattrs: dict[str, bytes], sha) -> None:
        # GNU pax sparse format 1.0: the map (decimal lines, padded to a block) starts the member's data.
        text = b"%d\n" % len(regions) + b"".join(b"%d\n%d\n" % r for r in regions)
        text += bytes(-len(text) % 512)
        stored = len(text) + sum(n for _, n in regions)
        head, _, base = path.rpartition("/")
        fake = (head + "/" if head else "") + "GNUSparseFile.0/" + base
        extra = [("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0"),
                 ("GNU.sparse.name", path.encode("utf-8", "surrogateescape")),
                 ("GNU.sparse.realsize", b"%d" % size)]
        self.w.header(fake, tarsafe.REG, perm, st_.st_uid, st_.st_gid, stored, st_.st_mtime_ns, xattrs=xattrs,
                      extra=extra)
        self.w.data(text)
        pos = 0
        for offset, length in regions:
            tarsafe._hash_zeros(sha, offset - pos)
            self._copy(fd, offset, length, sha)
            pos = offset + length
        tarsafe._hash_zeros(sha, size - pos)
        self.w.pad(stored)


def _manifest_head(volume: str, labels: dict) -> bytes:
    head = {"format": FORMAT, "version": FORMAT_VERSION, "volume": volume, "labels": labels or {}}
    return (json.dumps(head, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def _manifest_tail(files: int, nbytes: int) -> bytes:
    return (json.dumps({"totals": {"entries": files, "bytes": nbytes}}, sort_keys=True,
                       separators=(",", ":")) + "\n").encode()


def _append_manifest(w: TarWriter, manifest: BinaryIO, mtime_ns: int) -> str:
    """Write the manifest as the last member (its size is known only now); return its sha256."""
    size = manifest.tell()
    manifest.seek(0)
    w.header(MANIFEST_DIR + "/", tarsafe.DIR, 0o755, 0, 0, 0, mtime_ns)
    w.header(MANIFEST_NAME, tarsafe.REG, 0o644, 0, 0, size, mtime_ns)
    sha = hashlib.sha256()
    while True:
        chunk = manifest.read(CHUNK)
        if not chunk:
            break
        sha.update(chunk)
        w.data(chunk)
    w.pad(size)
    return sha.hexdigest()


def tree_size(root: Path) -> int:
    """Sum the sizes of the regular files under root, without following symlinks (the progress total)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        total += e.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
    return total


def write_archive(src: Path, out: BinaryIO, compression: str | None = "zstd", *, volume: str = "",
                  labels: dict | None = None, progress: Progress | None = None,
                  tmp_dir: Path | None = None) -> ArchiveStats:
    """Write a backup archive of the directory src to out: a tar with a trailing manifest, compressed.

    compression None: out compresses itself (an ArchiveFile), the tar is written to it as is.
    """
    total = tree_size(src) if progress is not None else 0
    comp = compressor(out, compression) if compression else _Uncompressed(out)
    w = TarWriter(comp)
    # The manifest lists every entry: spool it to disk so memory stays flat however big the volume is.
    with tempfile.TemporaryFile(dir=tmp_dir) as manifest:
        manifest.write(_manifest_head(volume, labels or {}))
        a = _Archiver(w, manifest, progress, total)
        try:
            a.run(Path(src))
        except OSError as e:
            raise SystemFailure(f"reading {src} for the backup: {e.strerror or e}") from e
        manifest.write(_manifest_tail(a.stats.files, a.stats.bytes))
        a.stats.manifest_sha256 = _append_manifest(w, manifest, time.time_ns())
    w.close()
    comp.close()
    a.stats.tar_size = w.offset
    if progress is not None:
        progress(a.stats.bytes, total, a.stats.files)
    return a.stats


# ---------------------------------------------------------------------------------------------------------------
# Verifying an archive against its manifest

@dataclass
class VerifyResult:
    ok: bool
    message: str
    files: int = 0
    bytes: int = 0
    sha256: str = ""          # of the archive file as read
    tar_size: int = 0


class ManifestChecker:
    """Rebuild manifest lines from the members as they stream by and compare them with the trailing manifest."""

    def __init__(self, tmp_dir: Path | None = None) -> None:
        self.seen = tempfile.TemporaryFile(dir=tmp_dir)
        self.manifest = tempfile.TemporaryFile(dir=tmp_dir)
        self.has_manifest = False
        self.after_manifest = False
        self.files = 0
        self.bytes = 0

    def close(self) -> None:
        self.seen.close()
        self.manifest.close()

    def is_manifest(self, m: tarsafe.Member) -> bool:
        name = "/".join(p for p in m.name.split("/") if p not in ("", "."))
        return name in (MANIFEST_NAME, MANIFEST_DIR)

    def take_manifest(self, m: tarsafe.Member, reader: tarsafe.TarReader) -> None:
        """Spool the manifest member's data (a directory entry for it is just skipped)."""
        if m.isdir():
            return
        while True:
            chunk = reader.read(CHUNK)
            if not chunk:
                break
            self.manifest.write(chunk)
        self.has_manifest = True

    def add(self, parts, m: tarsafe.Member, sha256: str) -> None:
        if self.has_manifest:
            self.after_manifest = True
        self.seen.write(entry_of_member(parts, m, sha256).line().encode("utf-8", "surrogateescape"))
        self.files += 1
        if m.isreg():
            self.bytes += m.realsize

    def result(self) -> tuple[bool, str]:
        """Compare what was seen with the manifest, line by line (both are on disk: memory stays flat)."""
        if not self.has_manifest:
            return False, f"the archive has no manifest ({MANIFEST_NAME})"
        if self.after_manifest:
            return False, "the archive has members after its manifest"
        self.seen.seek(0)
        self.manifest.seek(0)
        head = self.manifest.readline()
        try:
            doc = json.loads(head)
        except ValueError:
            return False, "the manifest is not readable"
        if doc.get("format") != FORMAT:
            return False, "the manifest is not a dockweb backup manifest"
        n = 0
        while True:
            want = self.manifest.readline()
            got = self.seen.readline()
            if want.startswith(b'{"totals"'):
                if got:
                    return False, f"the archive has more entries than its manifest lists ({n})"
                totals = json.loads(want)["totals"]
                if totals.get("entries") != n or totals.get("bytes") != self.bytes:
                    return False, "the manifest totals do not match the archive"
                return True, f"verified {n} entries, {self.bytes} bytes"
            if not want:
                return False, "the manifest ends without totals"
            if want != got:
                path = _path_of(want) or _path_of(got)
                return False, f"entry {path!r} does not match the manifest"
            n += 1


def _path_of(line: bytes) -> str:
    try:
        return json.loads(line).get("path", "")
    except ValueError:
        return ""


def verify_archive(path: Path, compression: str, expected_sha256: str = "", progress: Progress | None = None,
                   tmp_dir: Path | None = None) -> VerifyResult:
    """Read an archive and check its checksum, its structure and every member against its manifest."""
    total = os.stat(path).st_size
    checker = ManifestChecker(tmp_dir)
    last = [time.monotonic()]
    try:
        with open(path, "rb", buffering=0) as f:
            raw = _HashingReader(f, hashlib.sha256())
            reader = tarsafe.TarReader(decompressor(raw, compression))
            try:
                for m in reader:
                    if checker.is_manifest(m):
                        checker.take_manifest(m, reader)
                        continue
                    parts = tarsafe.clean_parts(m.name)
                    sha = ""
                    if m.isreg():
                        h = hashlib.sha256()
                        pos = 0
                        for offset, length in (m.sparse or [(0, m.realsize)]):
                            tarsafe._hash_zeros(h, offset - pos)
                            left = length
                            while left:
                                chunk = reader.read(min(CHUNK, left))
                                if not chunk:
                                    raise tarsafe.TarFormatError(f"the archive ends inside {m.name!r}")
                                h.update(chunk)
                                left -= len(chunk)
                            pos = offset + length
                        tarsafe._hash_zeros(h, m.realsize - pos)
                        sha = h.hexdigest()
                    checker.add(parts or [], m, sha)
                    if progress is not None and time.monotonic() - last[0] >= PROGRESS_INTERVAL:
                        last[0] = time.monotonic()
                        progress(raw.size, total, checker.files)
                while raw.read(CHUNK):
                    pass          # the rest of the compressed stream counts for the archive checksum
            except InvalidParameter as e:
                return VerifyResult(False, e.message, checker.files, checker.bytes, "", reader.offset)
            digest = raw.hasher.hexdigest()
        if expected_sha256 and digest != expected_sha256:
            return VerifyResult(False, "the archive checksum does not match the one recorded at backup",
                                checker.files, checker.bytes, digest, reader.offset)
        ok, message = checker.result()
        return VerifyResult(ok, message, checker.files, checker.bytes, digest, reader.offset)
    finally:
        checker.close()


# ---------------------------------------------------------------------------------------------------------------
# Restoring an archive into a directory, atomically

_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """Swap two directories atomically (renameat2 RENAME_EXCHANGE)."""
    AT_FDCWD = -100
    rc = _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


class ArchiveStream:
    """The uncompressed tar stream of an archive file, with the digest of the file's bytes once read.

    A thread reads, hashes and decompresses the file a few blocks ahead (python-zstandard, hashlib and zlib
    release the GIL), so that work overlaps with the extraction in the caller's thread. digest: "sha256" (the
    archive's published checksum), "xxh3" (the same check at memory speed, where sha256 would cost the
    reading thread more than decompressing) or None.
    """

    def __init__(self, path: Path, compression: str, digest: str | None = "sha256") -> None:
        self.file = open(path, "rb", buffering=0)
        hasher = {"sha256": hashlib.sha256, "xxh3": xxhash.xxh3_64}[digest]() if digest else None
        try:
            self.hashing = _HashingReader(self.file, hasher)
            self.reader = ReadAhead(decompressor(self.hashing, compression).read)
        except BaseException:
            self.file.close()
            raise

    def read(self, n: int = CHUNK) -> bytes:
        return self.reader.read(n)

    def readable(self) -> bool:
        return True

    def finish(self) -> str:
        """Read to the end (the decompressor checks the stream is whole) and return the archive's digest (hex)."""
        while self.read(CHUNK):
            pass
        while self.hashing.read(CHUNK):
            pass          # bytes after the last frame count for the checksum too
        return self.hashing.hasher.hexdigest() if self.hashing.hasher is not None else ""

    def close(self) -> None:
        self.reader.close()
        self.file.close()


def discard_old_data(swapped_out: Path) -> None:
    """Delete the data a restore swapped out, off the caller's time: on this kind of disk unlinking tens of
    thousands of small files takes longer than the restore itself. Renamed first to ._data.old-*, which the
    store also removes when it opens, so a daemon killed meanwhile leaves nothing behind for long."""
    old = swapped_out.with_name(swapped_out.name.replace("._data.staging-", "._data.old-", 1))
    try:
        os.rename(swapped_out, old)
    except OSError:
        old = swapped_out
    threading.Thread(target=tarsafe.remove_tree, args=(old,), name="restore-discard", daemon=True).start()


def restore_archive(archive: Path, compression: str, data_dir: Path, *, limits: tarsafe.ExtractLimits,
                    expected_sha256: str = "", expected_xxh3: str = "", strip_components: int = 0,
                    progress: Progress | None = None, total: int = 0) -> tarsafe.ExtractResult:
    """Extract an archive into a staging directory beside data_dir, check it, then swap it in.

    The archive's checksum (its XXH3 when expected_xxh3 is given, else its sha256) is checked against the one
    recorded when it was written and verified, before the swap; the staging directory is removed on any
    failure, so data_dir is either untouched or fully replaced.
    """
    data_dir = Path(data_dir)
    reader_progress = None
    if progress is not None:
        reader_progress = lambda offset, files: progress(offset, total, files)  # noqa: E731

    def intercept(m: tarsafe.Member, reader: tarsafe.TarReader) -> bool:
        # The manifest is the archive's own bookkeeping, not volume content.
        name = "/".join(p for p in m.name.split("/") if p not in ("", "."))
        return name in (MANIFEST_NAME, MANIFEST_DIR) and not strip_components

    expected = expected_xxh3 or expected_sha256
    stream = ArchiveStream(archive, compression, "xxh3" if expected_xxh3 else "sha256" if expected_sha256 else None)
    try:
        staging, result = tarsafe.extract_to_staging(stream, data_dir, limits, strip_components=strip_components,
                                                     progress=reader_progress, intercept=intercept)
        try:
            digest = stream.finish()
            if expected and digest != expected:
                raise InvalidParameter("the archive checksum does not match the one recorded at backup: "
                                       "the archive changed since; nothing was restored")
            try:
                exchange(staging, data_dir)
            except FileNotFoundError:
                os.rename(staging, data_dir)     # no data directory yet: a plain rename is atomic too
                return result
            except OSError as e:
                raise SystemFailure(f"swapping the restored data into {data_dir}: {e.strerror}") from e
        except BaseException:
            tarsafe.remove_tree(staging)
            raise
        discard_old_data(staging)               # the old data, swapped out
        return result
    finally:
        stream.close()


# ---------------------------------------------------------------------------------------------------------------
# The backup store

@dataclass
class Backup:
    id: str
    volume: str
    created: str
    compression: str
    consistency: str = "none"
    origin: str = "backup"             # backup | upload
    size: int = 0                      # bytes of the archive file
    tar_size: int = 0                  # bytes of the uncompressed tar stream
    files: int = 0
    bytes: int = 0
    sha256: str = ""
    xxh3: str = ""                     # the archive's XXH3 (hex): what a restore checks, at memory speed
    manifest_sha256: str = ""
    duration: float = 0.0
    source_containers: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    verified: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return self.id + COMPRESSIONS[self.compression]

    def to_api(self) -> dict:
        """Shape the backup for the API (CamelCase, like the Engine API's objects)."""
        return {
            "Id": self.id, "Volume": self.volume, "Created": self.created, "Compression": self.compression,
            "Consistency": self.consistency, "Origin": self.origin, "Size": self.size, "TarSize": self.tar_size,
            "Files": self.files, "Bytes": self.bytes,
            "Checksums": {"Archive": f"sha256:{self.sha256}", "Manifest": f"sha256:{self.manifest_sha256}"},
            "Duration": round(self.duration, 3), "SourceContainers": list(self.source_containers),
            "Labels": dict(self.labels), "Verified": dict(self.verified),
        }


class _Paused:
    """Quiesce the containers using a volume (pause or stop each), and always bring them back."""

    def __init__(self, containers, volume: str, mode: str) -> None:
        self.containers = containers
        self.volume = volume
        self.mode = mode
        self.paused: list[str] = []
        self.stopped: list[str] = []
        self.users: list[str] = []

    def __enter__(self) -> "_Paused":
        c = self.containers
        if c is None or not hasattr(c, "containers_using_volume"):
            return self
        try:
            for cid, running in c.containers_using_volume(self.volume):
                self.users.append(cid)
                if not running:
                    continue
                container = c.get(cid)
                mode = container.labels.get(CONSISTENCY_LABEL, self.mode)
                if mode not in CONSISTENCY_MODES:
                    raise InvalidParameter(f"container {cid[:12]} has an invalid {CONSISTENCY_LABEL} label "
                                           f"{mode!r}: use pause, stop or none")
                if mode == "pause" and container.state.status == "running":
                    c.pause(cid)
                    self.paused.append(cid)
                elif mode == "stop":
                    c.stop(cid)
                    self.stopped.append(cid)
        except BaseException:
            self.resume()
            raise
        return self

    def resume(self) -> None:
        failures = []
        for cid in self.paused:
            try:
                self.containers.unpause(cid)
            except Exception as e:      # keep resuming the others
                failures.append(f"unpausing {cid[:12]}: {e}")
        for cid in self.stopped:
            try:
                self.containers.start(cid)
            except Exception as e:
                failures.append(f"starting {cid[:12]}: {e}")
        self.paused, self.stopped = [], []
        if failures:
            raise SystemFailure("the backup could not resume its containers: " + "; ".join(failures))

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.resume()
        except SystemFailure:
            if exc is None:
                raise
            log.exception("resuming containers after a failed backup of %s", self.volume)


class BackupStore:
    """Keep volume backups under <root>/backups: <id>.tar.zst (or .tar.gz, .tar) and <id>.json."""

    def __init__(self, config: EngineConfig, events: EventLog, volumes=None, containers=None) -> None:
        self.config = config
        self.events = events
        self.volumes = volumes
        self.containers = containers
        self.dir = config.root / "backups"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._busy: dict[str, str] = {}    # volume name -> what is running on it
        self._clean_temp()

    def _clean_temp(self) -> None:
        # Temp archives and restore staging directories of a daemon killed mid-operation: never visible, and
        # never swapped in, so they are just garbage.
        for p in self.dir.glob(".tmp-*"):
            p.unlink(missing_ok=True)
        for pattern in ("*/._data.staging-*", "*/._data.old-*"):
            for p in self.config.volumes_dir.glob(pattern):
                tarsafe.remove_tree(p)

    # -- records -----------------------------------------------------------------------------------------------

    def _save(self, b: Backup) -> None:
        st.write_json(self.dir / f"{b.id}.json", asdict(b))

    def _load(self, path: Path) -> Backup | None:
        doc = st.read_json(path)
        if not doc:
            return None
        b = Backup(**doc)
        return b if (self.dir / b.filename).exists() else None

    def list(self, volume: str | None = None) -> list[Backup]:
        """Return the backups, newest first, of one volume or of all."""
        out = []
        for p in self.dir.glob("*.json"):
            b = self._load(p)
            if b is not None and (volume is None or b.volume == volume):
                out.append(b)
        return sorted(out, key=lambda b: b.created, reverse=True)

    def get(self, ref: str) -> Backup:
        """Find a backup by id or unique id prefix."""
        if ref and all(c in "0123456789abcdef" for c in ref):
            if len(ref) == 64:
                b = self._load(self.dir / f"{ref}.json")
                if b is not None:
                    return b
            else:
                found = [p for p in self.dir.glob(f"{ref}*.json")]
                if len(found) > 1:
                    raise InvalidParameter(f"backup id prefix {ref!r} is ambiguous: give more characters")
                if found:
                    b = self._load(found[0])
                    if b is not None:
                        return b
        raise NotFound(f"No such backup: {ref}")

    def archive_path(self, b: Backup) -> Path:
        return self.dir / b.filename

    def remove(self, ref: str) -> None:
        """Delete a backup's archive and record."""
        b = self.get(ref)
        with self._lock:
            if self._busy.get(f"backup:{b.id}"):
                raise Conflict(f"backup {b.id[:12]} is being {self._busy[f'backup:{b.id}']}: try again later")
            (self.dir / f"{b.id}.json").unlink(missing_ok=True)
            self.archive_path(b).unlink(missing_ok=True)
        self.events.publish("backup", "destroy", b.id, {"volume": b.volume})

    # -- locking -----------------------------------------------------------------------------------------------

    def _claim(self, key: str, what: str) -> None:
        with self._lock:
            if key in self._busy:
                raise Conflict(f"{key.replace(':', ' ')} is busy: a {self._busy[key]} is in progress")
            self._busy[key] = what

    def _release(self, key: str) -> None:
        with self._lock:
            self._busy.pop(key, None)

    # -- operations --------------------------------------------------------------------------------------------

    def check_args(self, compression: str | None = None, consistency: str | None = None,
                   verify: str | None = None) -> None:
        """Refuse unknown compression, consistency or verify values before any work starts."""
        if verify is not None and verify not in ("checksum", "full"):
            raise InvalidParameter(f"invalid verify {verify!r}: use checksum or full")
        if compression is not None and compression not in COMPRESSIONS:
            raise InvalidParameter(f"invalid compression {compression!r}: use one of zstd, gzip, none")
        if consistency is not None and consistency not in CONSISTENCY_MODES:
            raise InvalidParameter(f"invalid consistency {consistency!r}: use one of pause, stop, none")

    def _volume(self, name: str):
        if self.volumes is None:
            raise SystemFailure("this engine has no volume store")
        return self.volumes.get(name)

    def _source_dir(self, v) -> Path:
        mount_source = getattr(self.volumes, "mount_source", None)
        return Path(mount_source(v)) if mount_source is not None else Path(v.mountpoint)

    def create(self, volume: str, compression: str = "zstd", consistency: str = "pause",
               progress: Progress | None = None, verify: str = "checksum") -> Backup:
        """Back up a volume: quiesce its containers, write and verify the archive, then publish it."""
        self.check_args(compression, consistency, verify)
        v = self._volume(volume)
        src = self._source_dir(v)
        bid = st.new_id()
        started = time.monotonic()
        b = Backup(id=bid, volume=v.name, created=st.rfc3339(time.time_ns()), compression=compression,
                   consistency=consistency, labels=dict(v.labels or {}))
        self._claim(f"volume:{v.name}", "backup")
        try:
            tmp = self.dir / f".tmp-{bid}{COMPRESSIONS[compression]}"
            try:
                with _Paused(self.containers, v.name, consistency) as quiesced:
                    b.source_containers = list(quiesced.users)
                    stats = self._write(tmp, compression, lambda out: write_archive(
                        src, out, None, volume=v.name, labels=b.labels, progress=progress, tmp_dir=self.dir))
                self._publish(b, tmp, stats, started, verify, progress)
            finally:
                tmp.unlink(missing_ok=True)
        finally:
            self._release(f"volume:{v.name}")
        self.events.publish("backup", "create", b.id, {"volume": b.volume, "compression": compression})
        return b

    def _write(self, tmp: Path, compression: str,
               produce: Callable[[BinaryIO], ArchiveStats]) -> tuple[ArchiveStats, Written]:
        try:
            return write_archive_file(tmp, compression, produce)
        except OSError as e:
            raise SystemFailure(f"writing backup archive {tmp.name}: {e.strerror or e}") from e

    def _publish(self, b: Backup, tmp: Path, written: tuple[ArchiveStats, Written], started: float,
                 verify: str = "checksum", progress: Progress | None = None) -> None:
        """Check the written archive, then rename it into place and write its record (fsync'd).

        "checksum" reads the file back and compares its XXH3 and size with what was written (its sha256 was
        taken as it was written); "full" also decompresses it and checks every member against the manifest, as
        POST .../verify does. A last progress report comes just before the rename: a caller that went away
        meanwhile (the report raises Cancelled) gets nothing published.
        """
        stats, w = written
        b.files, b.bytes, b.tar_size, b.manifest_sha256 = stats.files, stats.bytes, stats.tar_size, \
            stats.manifest_sha256
        ok, message = check_archive_file(tmp, w)
        if ok and verify == "full":
            result = verify_archive(tmp, b.compression, w.sha256, tmp_dir=self.dir)
            ok, message = result.ok, result.message
        if not ok:
            raise SystemFailure(f"the new backup of {b.volume} failed verification: {message}")
        b.size, b.sha256, b.xxh3 = w.size, w.sha256, f"{w.xxh3:016x}"
        b.duration = time.monotonic() - started
        b.verified = {"Ok": True, "Level": verify, "Message": message, "At": st.rfc3339(time.time_ns())}
        if progress is not None:
            progress(b.bytes, b.bytes, b.files)
        os.replace(tmp, self.dir / b.filename)
        self._save(b)          # the record last: a backup is listed only once both files exist
        _fsync_dir(self.dir)

    def verify(self, ref: str, progress: Progress | None = None) -> Backup:
        """Re-read a stored archive, check it against its checksum and manifest, and record the result."""
        b = self.get(ref)
        self._claim(f"backup:{b.id}", "verify")
        try:
            result = verify_archive(self.archive_path(b), b.compression, b.sha256, progress, tmp_dir=self.dir)
        finally:
            self._release(f"backup:{b.id}")
        b.verified = {"Ok": result.ok, "Level": "full", "Message": result.message,
                      "At": st.rfc3339(time.time_ns())}
        if (self.dir / f"{b.id}.json").exists():
            self._save(b)
        return b

    def check_restore(self, b: Backup, target: str) -> None:
        """Refuse a restore that cannot proceed: a target in use by running containers, or one with a mount."""
        if self.volumes.exists(target) if hasattr(self.volumes, "exists") else False:
            v = self.volumes.get(target)
            if getattr(v, "needs_mount", False):
                raise InvalidParameter(f"restoring into volume {target}, which has driver options (type/device), "
                                       "is not supported: restore into a plain local volume")
        running = self._running_users(target)
        if running:
            raise Conflict(f"volume {target} is in use by running containers "
                           f"{', '.join(c[:12] for c in running)}: stop them before restoring")
        with self._lock:
            if f"volume:{target}" in self._busy:
                raise Conflict(f"volume {target} is busy: a {self._busy[f'volume:{target}']} is in progress")

    def restore(self, ref: str, target: str | None = None, *, keep_setid: bool = False,
                allow_devices: bool = False, progress: Progress | None = None) -> dict:
        """Restore a backup into a volume (the source volume by default; created when missing)."""
        b = self.get(ref)
        name = target or b.volume
        self.check_restore(b, name)
        limits = tarsafe.ExtractLimits(max_bytes=b.bytes, max_members=b.files + 2, allow_devices=allow_devices,
                                       keep_setid=keep_setid, same_owner=True)
        self._claim(f"volume:{name}", "restore")
        started = time.monotonic()
        created = False
        try:
            try:
                v = self.volumes.get(name)
            except NotFound:
                v = self.volumes.create(name, labels=dict(b.labels))
                created = True
            self._claim(f"backup:{b.id}", "restored")
            try:
                result = restore_archive(self.archive_path(b), b.compression, Path(v.mountpoint), limits=limits,
                                         expected_sha256=b.sha256, expected_xxh3=b.xxh3, progress=progress,
                                         total=b.tar_size)
            finally:
                self._release(f"backup:{b.id}")
        except BaseException:
            if created:
                try:
                    self.volumes.remove(name, force=True)
                except Exception:
                    log.exception("removing volume %s created for a failed restore", name)
            raise
        finally:
            self._release(f"volume:{name}")
        self.events.publish("backup", "restore", b.id, {"volume": name})
        return {"Backup": b.id, "Volume": name, "Created": created, "Files": result.files, "Bytes": result.bytes,
                "Duration": round(time.monotonic() - started, 3)}

    def _running_users(self, name: str) -> list[str]:
        c = self.containers
        if c is None or not hasattr(c, "containers_using_volume"):
            return []
        return [cid for cid, running in c.containers_using_volume(name) if running]

    def upload(self, volume: str, stream: BinaryIO, *, strip_components: int = 0, compression: str = "zstd",
               progress: Progress | None = None, total: int = 0, verify: str = "checksum") -> Backup:
        """Store an archive made elsewhere (a plain tar, gzip or zstd) as a backup of volume, re-encoded."""
        self.check_args(compression)
        if strip_components < 0:
            raise InvalidParameter("strip must be zero or more")
        v = self._volume(volume)
        bid = st.new_id()
        started = time.monotonic()
        b = Backup(id=bid, volume=v.name, created=st.rfc3339(time.time_ns()), compression=compression,
                   consistency="none", origin="upload", labels=dict(v.labels or {}))
        tmp = self.dir / f".tmp-{bid}{COMPRESSIONS[compression]}"
        try:
            stats = self._write(tmp, compression, lambda out: reencode(stream, out, None, volume=v.name,
                                                          labels=b.labels, strip_components=strip_components,
                                                          progress=progress, total=total, tmp_dir=self.dir))
            self._publish(b, tmp, stats, started, verify, progress)
        finally:
            tmp.unlink(missing_ok=True)
        self.events.publish("backup", "upload", b.id, {"volume": b.volume})
        return b


def write_archive_file(path: Path, compression: str,
                       produce: Callable[[BinaryIO], ArchiveStats]) -> tuple[ArchiveStats, Written]:
    """Create path and write produce(sink)'s tar into it, compressed; fsync it; return the stats and what was written.

    On any failure the file is left for the caller to remove (it is a temp file, never visible).
    """
    with open(path, "xb", buffering=0) as f:
        sink = ArchiveFile(f, compression)
        try:
            stats = produce(sink)   # type: ignore[arg-type]
            written = sink.close()
        except BaseException:
            sink.abort()
            raise
        os.fsync(f.fileno())
    return stats, written


def check_archive_file(path: Path, written: Written) -> tuple[bool, str]:
    """Read a written archive back and compare its XXH3 and size with what was written."""
    xxh, size = read_back(path)
    if (xxh, size) != (written.xxh3, written.size):
        return False, "the archive read back differs from what was written"
    return True, f"read back {size} bytes, checksums match"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reencode(stream: BinaryIO, out: BinaryIO, compression: str | None, *, volume: str, labels: dict,
             strip_components: int = 0, progress: Progress | None = None, total: int = 0,
             tmp_dir: Path | None = None) -> ArchiveStats:
    """Copy a foreign tar (any compression) into a dockweb archive with a manifest, checking every name."""
    from engine.images.layers import decompressed

    comp = compressor(out, compression) if compression else _Uncompressed(out)
    w = TarWriter(comp)
    stats = ArchiveStats()
    counted = _HashingReader(stream)
    reader = tarsafe.TarReader(_SafeReader(decompressed(counted)))
    last = time.monotonic()
    with tempfile.TemporaryFile(dir=tmp_dir) as manifest:
        manifest.write(_manifest_head(volume, labels))
        seen_root = False
        for m in reader:
            parts = tarsafe.clean_parts(m.name, strip_components)
            if parts is None:
                continue
            if parts and parts[0] == MANIFEST_DIR and not strip_components and len(parts) <= 2:
                continue      # a dockweb archive's own manifest: a new one is written below
            if not parts and not m.isdir():
                raise tarsafe.UnsafeArchive(m.name, "only a directory can be the archive's root")
            if not seen_root and parts:
                # Archives made with `tar c dir` have no "./" entry: give the restore a root to set.
                now = time.time_ns()
                w.header("./", tarsafe.DIR, 0o755, 0, 0, 0, now)
                manifest.write(Entry(".", "dir", 0o755, 0, 0, now).line().encode())
                stats.files += 1
            seen_root = True
            name = "/".join(parts)
            sha = ""
            if m.isreg():
                h = hashlib.sha256()
                _copy_member(w, reader, m, name, h)
                sha = h.hexdigest()
                stats.bytes += m.realsize
            else:
                link = m.linkname
                if m.type == tarsafe.LNK:
                    lparts = tarsafe.clean_parts(m.linkname, strip_components)
                    if not lparts:
                        raise tarsafe.UnsafeArchive(m.name, f"hard link to {m.linkname!r} outside the archive")
                    link = "/".join(lparts)
                    m.linkname = link
                elif m.type not in (tarsafe.SYM, tarsafe.DIR, tarsafe.GNU_DUMPDIR, tarsafe.CHR, tarsafe.BLK,
                                    tarsafe.FIFO):
                    continue
                typ = tarsafe.DIR if m.isdir() else m.type
                w.header((name + "/" if name else "./") if m.isdir() else name, typ, m.mode, m.uid, m.gid, 0,
                         m.mtime_ns, linkname=link if m.type in (tarsafe.SYM, tarsafe.LNK) else "",
                         devmajor=m.devmajor, devminor=m.devminor, xattrs=m.xattrs)
            manifest.write(entry_of_member(parts, m, sha).line().encode("utf-8", "surrogateescape"))
            stats.files += 1
            if progress is not None and time.monotonic() - last >= PROGRESS_INTERVAL:
                last = time.monotonic()
                progress(counted.size, total, stats.files)
        if not seen_root:
            raise InvalidParameter("the uploaded archive has no members (after stripping "
                                   f"{strip_components} leading components)")
        while counted.read(CHUNK):
            pass
        manifest.write(_manifest_tail(stats.files, stats.bytes))
        stats.manifest_sha256 = _append_manifest(w, manifest, time.time_ns())
    w.close()
    comp.close()
    stats.tar_size = w.offset
    if progress is not None:
        progress(counted.size, total, stats.files)
    return stats


def _copy_member(w: TarWriter, reader: tarsafe.TarReader, m: tarsafe.Member, name: str, h) -> None:
    """Copy a regular member's data into the writer (sparse members stay sparse), hashing its content."""
    if m.sparse is None:
        w.header(name, tarsafe.REG, m.mode, m.uid, m.gid, m.realsize, m.mtime_ns, xattrs=m.xattrs)
        left = m.realsize
        while left:
            chunk = reader.read(min(CHUNK, left))
            if not chunk:
                raise tarsafe.TarFormatError(f"the archive ends inside {m.name!r}")
            h.update(chunk)
            w.data(chunk)
            left -= len(chunk)
        w.pad(m.realsize)
        return
    regions = list(m.sparse)
    text = b"%d\n" % len(regions) + b"".join(b"%d\n%d\n" % r for r in regions)
    text += bytes(-len(text) % 512)
    stored = len(text) + sum(n for _, n in regions)
    head, _, base = name.rpartition("/")
    extra = [("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0"),
             ("GNU.sparse.name", name.encode("utf-8", "surrogateescape")),
             ("GNU.sparse.realsize", b"%d" % m.realsize)]
    w.header((head + "/" if head else "") + "GNUSparseFile.0/" + base, tarsafe.REG, m.mode, m.uid, m.gid, stored,
             m.mtime_ns, xattrs=m.xattrs, extra=extra)
    w.data(text)
    pos = 0
    for offset, length in regions:
        tarsafe._hash_zeros(h, offset - pos)
        left = length
        while left:
            chunk = reader.read(min(CHUNK, left))
            if not chunk:
                raise tarsafe.TarFormatError(f"the archive ends inside {m.name!r}")
            h.update(chunk)
            w.data(chunk)
            left -= len(chunk)
        pos = offset + length
    tarsafe._hash_zeros(h, m.realsize - pos)
    w.pad(stored)
