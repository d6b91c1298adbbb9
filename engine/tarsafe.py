"""Read tar streams and extract them safely: every entry created relative to the target, never through a symlink."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from engine.errors import InvalidParameter, SystemFailure

BLOCK = 512
CHUNK = 1 << 20
# A pax header or GNU long name is read into memory whole: cap it so a header cannot be a memory bomb.
MAX_HEADER_DATA = 1 << 20
PATH_MAX = 4096
NAME_MAX = 255

# Member types (the typeflag byte).
REG, AREG, LNK, SYM, CHR, BLK, DIR, FIFO, CONT = b"0", b"\0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"
PAX, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK, GNU_SPARSE = b"x", b"g", b"L", b"K", b"S"
GNU_VOLUME, GNU_DUMPDIR = b"V", b"D"
_SKIPPED_TYPES = (GNU_VOLUME,)

_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_RD_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SETID = stat.S_ISUID | stat.S_ISGID


class TarFormatError(InvalidParameter):
    """The stream is not a readable tar archive (bad checksum, truncated, malformed header)."""


class UnsafeArchive(InvalidParameter):
    """A member would escape the target, write through a symlink, or break a limit; the message names it."""

    def __init__(self, member: str, reason: str) -> None:
        super().__init__(f"refusing {_quote(member)}: {reason}")
        self.member = member
        self.reason = reason


def _quote(name: str) -> str:
    shown = name if len(name) <= 200 else name[:200] + "..."
    return '"' + shown.encode("utf-8", "surrogateescape").decode("utf-8", "replace") + '"'


# ---------------------------------------------------------------------------------------------------------------
# Reading: a small tar parser (ustar, pax, GNU long names and sparse files), sequential and constant-memory.

@dataclass
class Member:
    name: str
    type: bytes
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0                 # bytes of data stored in the archive after the header(s)
    realsize: int = 0             # the file's length once extracted (differs from size for sparse files)
    mtime_ns: int = 0
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    sparse: list[tuple[int, int]] | None = None   # (offset, length) data regions; None for a plain file

    def isreg(self) -> bool:
        return self.type in (REG, AREG, CONT)

    def isdir(self) -> bool:
        return self.type in (DIR, GNU_DUMPDIR)


def _number(field_: bytes) -> int:
    """Decode a numeric header field: octal text, or GNU base-256 when the high bit of the first byte is set."""
    if field_ and field_[0] & 0x80:
        value = int.from_bytes(field_[1:], "big")
        if field_[0] == 0xFF:            # negative base-256
            value -= 1 << (8 * (len(field_) - 1))
        return value
    text = field_.split(b"\0", 1)[0]
    try:
        return int(text, 8)              # int() itself ignores surrounding spaces
    except ValueError:
        if not text.strip(b" "):
            return 0
        raise TarFormatError(f"invalid tar header: bad number {text.strip(b' ')[:20]!r}") from None


def _text(field_: bytes) -> str:
    if not field_ or not field_[0]:
        return ""                        # most link, owner and prefix fields are empty
    return field_.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax_time_ns(value: bytes) -> int:
    text = value.decode("ascii", "replace").strip()
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    try:
        ns = int(whole or "0") * 1_000_000_000 + int((frac[:9] or "0").ljust(9, "0"))
    except ValueError:
        raise TarFormatError(f"invalid pax time {text[:40]!r}") from None
    return -ns if negative else ns


def parse_pax(data: bytes) -> list[tuple[str, bytes]]:
    """Split pax extended header data into (key, value) records, in order (GNU sparse 0.0 repeats keys)."""
    records: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise TarFormatError("invalid pax header: record without a length")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("invalid pax header: bad record length") from None
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1:end] != b"\n":
            raise TarFormatError("invalid pax header: record length out of bounds")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq:
            raise TarFormatError("invalid pax header: record without '='")
        records.append((key.decode("utf-8", "surrogateescape"), value))
        pos = end
    return records


class TarReader:
    """Iterate the members of an uncompressed tar stream; read each member's data before asking for the next."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buf = b""
        self._off = 0
        self._remaining = 0       # data bytes of the current member not yet read
        self._padding = 0         # zero padding after the current member's data
        self._global: list[tuple[str, bytes]] = []
        self.offset = 0           # bytes consumed from the stream
        self.current: Member | None = None

    # -- low-level reads ---------------------------------------------------------------------------------------

    def _fill(self, n: int) -> bool:
        """Make at least n bytes available in the buffer; False at EOF before that."""
        have = len(self._buf) - self._off
        if have >= n:
            return True
        if not have:
            # The usual case (the buffer ran out at a member boundary): take the chunk as it is, no copy.
            chunk = self._stream.read(max(CHUNK, n))
            self._buf, self._off = chunk, 0
            if len(chunk) >= n:
                return True
            have = len(chunk)
            if not chunk:
                return False
        parts = [self._buf[self._off:]]
        while have < n:
            chunk = self._stream.read(max(CHUNK, n - have))
            if not chunk:
                self._buf, self._off = b"".join(parts), 0
                return False
            parts.append(chunk)
            have += len(chunk)
        self._buf, self._off = b"".join(parts), 0
        return True

    def _take(self, n: int) -> bytes:
        if not self._fill(n):
            name = self.current.name if self.current else "(header)"
            raise TarFormatError(f"the archive ends in the middle of {_quote(name)}")
        out = self._buf[self._off:self._off + n]
        self._off += n
        self.offset += n
        return out

    def _skip(self, n: int) -> None:
        while n:
            chunk = self._read_raw(min(n, CHUNK))
            if not chunk:
                name = self.current.name if self.current else "(header)"
                raise TarFormatError(f"the archive ends in the middle of {_quote(name)}")
            n -= len(chunk)

    def _read_raw(self, n: int) -> bytes:
        """Return up to n bytes: what is buffered first, else one read of the stream (no copy for big reads)."""
        have = len(self._buf) - self._off
        if have:
            take = min(have, n)
            out = self._buf[self._off:self._off + take] if (take < have or self._off) else self._buf
            self._off += take
            if self._off >= len(self._buf):
                self._buf, self._off = b"", 0
        else:
            out = self._stream.read(n)
            if len(out) > n:         # a reader that ignores n: keep the rest
                self._buf, self._off = out, n
                out = out[:n]
        self.offset += len(out)
        return out

    # -- member data -------------------------------------------------------------------------------------------

    def read(self, n: int = CHUNK) -> bytes:
        """Return up to n bytes of the current member's data; b"" when it is all read."""
        if self._remaining <= 0:
            return b""
        chunk = self._read_raw(min(n, self._remaining))
        if not chunk:
            name = self.current.name if self.current else ""
            raise TarFormatError(f"the archive ends in the middle of {_quote(name)}")
        self._remaining -= len(chunk)
        return chunk

    def _finish_member(self) -> None:
        if self._remaining:
            self._skip(self._remaining)
            self._remaining = 0
        if self._padding:
            self._skip(self._padding)
            self._padding = 0

    def _read_data(self, header: bytes, size: int, what: str) -> bytes:
        if size > MAX_HEADER_DATA:
            raise UnsafeArchive(_text(header[0:100]) or what,
                                f"{what} header data of {size} bytes is larger than {MAX_HEADER_DATA}")
        data = self._take(size)
        self._skip(-size % BLOCK)
        return data

    # -- headers -----------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Member]:
        while True:
            m = self.next()
            if m is None:
                return
            yield m

    def next(self) -> Member | None:
        """Return the next member (skipping the rest of the current one), or None at the end of the archive."""
        self._finish_member()
        self.current = None
        pax: list[tuple[str, bytes]] = list(self._global) if self._global else []
        longname: str | None = None
        longlink: str | None = None
        while True:
            if not self._fill(BLOCK):
                if len(self._buf) - self._off == 0:
                    return None   # EOF without the zero blocks: GNU tar accepts it with a warning
                raise TarFormatError("the archive ends in the middle of a header")
            header = self._take(BLOCK)
            if not header[0] and header.count(0) == BLOCK:
                return None
            self._check_sum(header)
            typ = header[156:157]
            size = _number(header[124:136])
            if size < 0:
                raise TarFormatError("invalid tar header: negative size")
            if typ == PAX:
                pax.extend(parse_pax(self._read_data(header, size, "pax")))
                continue
            if typ == PAX_GLOBAL:
                self._global.extend(parse_pax(self._read_data(header, size, "pax global")))
                pax.extend(self._global)
                continue
            if typ == GNU_LONGNAME:
                longname = _text(self._read_data(header, size, "long name"))
                continue
            if typ == GNU_LONGLINK:
                longlink = _text(self._read_data(header, size, "long link name"))
                continue
            m = self._member(header, typ, size, pax, longname, longlink)
            self.current = m
            self._remaining = m.size
            self._padding = -m.size % BLOCK
            if m.sparse is not None and m.type == REG and self._sparse_1_0:
                self._read_sparse_map(m)
            return m

    def _check_sum(self, header: bytes) -> None:
        where = self.offset - BLOCK
        try:
            stored = _number(header[148:156])
        except TarFormatError:
            raise TarFormatError(f"invalid tar header at offset {where}: not a tar archive, or a corrupt one") \
                from None
        unsigned = sum(header) - sum(header[148:156]) + 8 * 32
        if stored == unsigned:
            return
        signed = unsigned - 2 * sum(b for b in header if b > 127)
        if stored != signed:
            raise TarFormatError(f"invalid tar header at offset {where}: checksum mismatch")

    def _member(self, h: bytes, typ: bytes, size: int, pax: list[tuple[str, bytes]], longname: str | None,
                longlink: str | None) -> Member:
        name = _text(h[0:100])
        magic = h[257:263]
        if magic == b"ustar\x00":                  # POSIX ustar: a prefix field extends the name
            prefix = _text(h[345:500])
            if prefix:
                name = prefix + "/" + name
        m = Member(name=name, type=typ, mode=_number(h[100:108]) & 0o7777, uid=_number(h[108:116]),
                   gid=_number(h[116:124]), size=size, realsize=size, mtime_ns=_number(h[136:148]) * 1_000_000_000,
                   linkname=_text(h[157:257]), uname=_text(h[265:297]), gname=_text(h[297:329]))
        if typ in (CHR, BLK):
            m.devmajor, m.devminor = _number(h[329:337]), _number(h[337:345])
        if longname is not None:
            m.name = longname
        if longlink is not None:
            m.linkname = longlink
        self._sparse_1_0 = False
        if typ == GNU_SPARSE:
            self._gnu_old_sparse(m, h)
        self._apply_pax(m, pax)
        if m.isdir() or typ in (LNK, SYM, CHR, BLK, FIFO):
            # Only regular files carry data; a size on a hard link (pax "hardlink with data") is skipped.
            m.realsize = 0 if typ != LNK else m.realsize
        return m

    def _apply_pax(self, m: Member, pax: list[tuple[str, bytes]]) -> None:
        offsets: list[int] = []
        numbytes: list[int] = []
        sparse_name: str | None = None
        sparse_map: bytes | None = None
        major = minor = None
        realsize: int | None = None
        for key, value in pax:
            if key == "path":
                m.name = value.decode("utf-8", "surrogateescape")
            elif key == "linkpath":
                m.linkname = value.decode("utf-8", "surrogateescape")
            elif key == "size":
                m.size = m.realsize = int(value)
            elif key in ("uid", "gid"):
                setattr(m, key, int(value))
            elif key in ("uname", "gname"):
                setattr(m, key, value.decode("utf-8", "surrogateescape"))
            elif key == "mtime":
                m.mtime_ns = _pax_time_ns(value)
            elif key.startswith("SCHILY.xattr."):
                m.xattrs[key[len("SCHILY.xattr."):]] = value
            elif key == "GNU.sparse.offset":
                offsets.append(int(value))
            elif key == "GNU.sparse.numbytes":
                numbytes.append(int(value))
            elif key == "GNU.sparse.map":
                sparse_map = value
            elif key == "GNU.sparse.name":
                sparse_name = value.decode("utf-8", "surrogateescape")
            elif key in ("GNU.sparse.size", "GNU.sparse.realsize"):
                realsize = int(value)
            elif key == "GNU.sparse.major":
                major = int(value)
            elif key == "GNU.sparse.minor":
                minor = int(value)
        if sparse_name is not None:
            m.name = sparse_name
        if major == 1 and minor == 0:
            self._sparse_1_0 = True           # the map is at the start of the data: read by next()
            m.sparse = []
        elif sparse_map is not None:          # pax 0.1
            nums = [int(x) for x in sparse_map.split(b",") if x.strip()]
            if len(nums) % 2:
                raise TarFormatError(f"invalid sparse map for {_quote(m.name)}")
            m.sparse = list(zip(nums[0::2], nums[1::2]))
        elif offsets:                         # pax 0.0
            if len(offsets) != len(numbytes):
                raise TarFormatError(f"invalid sparse map for {_quote(m.name)}")
            m.sparse = list(zip(offsets, numbytes))
        if m.sparse is not None:
            m.type = REG
            m.realsize = realsize if realsize is not None else m.realsize
        if m.realsize < 0 or m.size < 0:
            raise TarFormatError(f"invalid size for {_quote(m.name)}")

    def _gnu_old_sparse(self, m: Member, h: bytes) -> None:
        regions = self._sparse_entries(h[386:482], 4)
        extended = h[482]
        while extended:
            ext = self._take(BLOCK)
            regions += self._sparse_entries(ext[:504], 21)
            extended = ext[504]
            if len(regions) > 1_000_000:
                raise UnsafeArchive(m.name, "sparse map has more than 1000000 regions")
        m.sparse = regions
        m.type = REG
        m.realsize = _number(h[483:495])

    @staticmethod
    def _sparse_entries(raw: bytes, count: int) -> list[tuple[int, int]]:
        out = []
        for i in range(count):
            off, num = raw[i * 24:i * 24 + 12], raw[i * 24 + 12:i * 24 + 24]
            if off[:1] == b"\0":
                break
            out.append((_number(off), _number(num)))
        return out

    def _read_sparse_map(self, m: Member) -> None:
        """Read a pax 1.0 sparse map: decimal numbers one a line at the start of the data, padded to a block."""
        consumed = 0
        buf = b""

        def number() -> int:
            nonlocal buf, consumed
            while b"\n" not in buf:
                if consumed >= m.size or consumed > MAX_HEADER_DATA:
                    raise TarFormatError(f"invalid sparse map for {_quote(m.name)}")
                block = self._take(BLOCK)
                consumed += BLOCK
                buf += block
            line, _, buf = buf.partition(b"\n")
            try:
                return int(line)
            except ValueError:
                raise TarFormatError(f"invalid sparse map for {_quote(m.name)}") from None

        count = number()
        m.sparse = [(number(), number()) for _ in range(count)]
        self._remaining = m.size - consumed
        m.size = self._remaining
        if self._remaining < 0:
            raise TarFormatError(f"invalid sparse map for {_quote(m.name)}")


# ---------------------------------------------------------------------------------------------------------------
# Names

def clean_parts(name: str, strip_components: int = 0) -> list[str] | None:
    """Split a member name into components; refuse absolute and '..' names; None when stripped away."""
    if name.startswith("/"):
        raise UnsafeArchive(name, "absolute path")
    if len(name.encode("utf-8", "surrogateescape")) > PATH_MAX:
        raise UnsafeArchive(name, f"name is longer than {PATH_MAX} bytes")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    for p in parts:
        if p == "..":
            raise UnsafeArchive(name, "path escapes the target")
        if len(p.encode("utf-8", "surrogateescape")) > NAME_MAX:
            raise UnsafeArchive(name, f"a path component is longer than {NAME_MAX} bytes")
        if "\0" in p:
            raise UnsafeArchive(name, "name contains a NUL byte")
    if strip_components:
        if len(parts) <= strip_components:
            return None
        parts = parts[strip_components:]
    return parts


# ---------------------------------------------------------------------------------------------------------------
# Extraction

@dataclass
class ExtractLimits:
    max_bytes: int | None = None
    max_members: int | None = None
    allow_devices: bool = False
    keep_setid: bool = False
    same_owner: bool = True


@dataclass
class ExtractResult:
    files: int
    bytes: int


Progress = Callable[[int, int], None]
OnFile = Callable[[str, Member, "object | None"], None]


class _Extractor:
    """Create members under one target directory fd, walking parents one component at a time without following."""

    def __init__(self, target: Path, limits: ExtractLimits) -> None:
        try:
            self.root = os.open(target, _PATH_FLAGS)
        except OSError as e:
            raise SystemFailure(f"opening extraction target {target}: {e.strerror}") from e
        self.target = target
        self.limits = limits
        self.is_root = os.geteuid() == 0
        self.chown = limits.same_owner and self.is_root
        self.dirs: list[tuple[tuple[str, ...], int, int]] = []     # (parts, mode, mtime_ns), fixed up at the end
        self.root_attrs: tuple[int, int] | None = None
        self._cache_key: tuple[str, ...] | None = None
        self._cache_fd: int | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root)

    def _drop_cache(self) -> None:
        if self._cache_fd is not None:
            os.close(self._cache_fd)
        self._cache_fd = self._cache_key = None

    def walk(self, parts: tuple[str, ...], member: str, create: bool) -> int:
        """Return a new O_PATH fd of the directory at parts, creating missing ones; refuse symlinks and files."""
        fd = os.dup(self.root)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _PATH_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(comp, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass   # created meanwhile: the open below checks what it is
                    nfd = self._open_dir(fd, comp, parts[:i + 1], member)
                except OSError as e:
                    if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    nfd = self._open_dir(fd, comp, parts[:i + 1], member)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_dir(self, fd: int, comp: str, upto: tuple[str, ...], member: str) -> int:
        try:
            return os.open(comp, _PATH_FLAGS, dir_fd=fd)
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
        st = os.lstat(comp, dir_fd=fd)
        where = "/".join(upto)
        if stat.S_ISLNK(st.st_mode):
            raise UnsafeArchive(member, f"{where} is a symlink: writing through it is not allowed")
        raise UnsafeArchive(member, f"{where} is not a directory")

    def parent(self, parts: tuple[str, ...], member: str) -> int:
        """Return the (cached) fd of the parent directory; the cache is keyed by the parent's components."""
        if self._cache_key != parts:
            self._drop_cache()
            self._cache_fd = self.walk(parts, member, create=True)
            self._cache_key = parts
        return self._cache_fd  # type: ignore[return-value]

    def clear_slot(self, pfd: int, name: str, member: str, for_dir: bool) -> bool:
        """Make room for a new entry: unlink a non-directory; return True when a directory is already there."""
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if for_dir:
                return True
            raise UnsafeArchive(member, "it would replace a directory")
        os.unlink(name, dir_fd=pfd)   # a file or symlink is replaced, never written through
        return False

    def mode_of(self, m: Member) -> int:
        mode = m.mode & 0o7777
        if not self.limits.keep_setid:
            mode &= ~_SETID
        return mode

    def set_xattrs(self, target: int | str, m: Member, follow: bool = True) -> None:
        for key, value in m.xattrs.items():
            if key.startswith("user."):
                pass
            elif key.startswith("trusted.") and self.is_root:
                pass
            elif key == "security.capability" and self.is_root and self.limits.keep_setid:
                pass
            else:
                continue   # other namespaces (security.selinux, system.*) are host policy, not archive content
            try:
                os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                    continue   # filesystems without xattrs, user.* on symlinks: skipped as GNU tar does
                raise

    # -- members -----------------------------------------------------------------------------------------------

    def directory(self, parts: tuple[str, ...], m: Member) -> None:
        if not parts:
            fd = os.open(self.target, _DIR_RD_FLAGS)
            try:
                if self.chown:
                    os.fchown(fd, m.uid, m.gid)
                self.set_xattrs(fd, m)
            finally:
                os.close(fd)
            self.root_attrs = (self.mode_of(m), m.mtime_ns)
            return
        pfd = self.parent(parts[:-1], m.name)
        name = parts[-1]
        if not self.clear_slot(pfd, name, m.name, for_dir=True):
            os.mkdir(name, 0o700, dir_fd=pfd)   # owner-writable until the fix-up: children come next
        fd = os.open(name, _DIR_RD_FLAGS, dir_fd=pfd)
        try:
            if self.chown:
                os.fchown(fd, m.uid, m.gid)
            self.set_xattrs(fd, m)
        finally:
            os.close(fd)
        self.dirs.append((parts, self.mode_of(m), m.mtime_ns))

    def regular(self, parts: tuple[str, ...], m: Member, reader: TarReader, hasher_factory) -> object | None:
        pfd = self.parent(parts[:-1], m.name)
        name = parts[-1]
        try:
            fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            # O_EXCL|O_NOFOLLOW never opens what is there (a symlink included): make room, then create.
            self.clear_slot(pfd, name, m.name, for_dir=False)
            fd = os.open(name, _CREATE_FLAGS, 0o600, dir_fd=pfd)
        hasher = hasher_factory() if hasher_factory else None
        try:
            if m.sparse is not None:
                self._write_sparse(fd, m, reader, hasher)
            else:
                write = os.write
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    if hasher is not None:
                        hasher.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[write(fd, view):]
            if self.chown:
                os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, self.mode_of(m))     # after fchown, which clears set-id bits
            if m.xattrs:
                self.set_xattrs(fd, m)
            os.utime(fd, ns=(m.mtime_ns, m.mtime_ns))
        finally:
            os.close(fd)
        return hasher

    def _write_sparse(self, fd: int, m: Member, reader: TarReader, hasher) -> None:
        # Holes are never written: pwrite each data region at its offset, then set the length. The file's
        # hash is over its logical content, so the holes' zeros are hashed as they are skipped.
        pos = 0
        for offset, length in m.sparse or ():
            if offset < pos or offset + length > m.realsize:
                raise UnsafeArchive(m.name, "sparse map regions overlap or run past the file size")
            if hasher is not None:
                _hash_zeros(hasher, offset - pos)
            left = length
            at = offset
            while left:
                chunk = reader.read(min(CHUNK, left))
                if not chunk:
                    raise TarFormatError(f"the archive ends in the middle of {_quote(m.name)}")
                if hasher is not None:
                    hasher.update(chunk)
                view = memoryview(chunk)
                while view:
                    n = os.pwrite(fd, view, at)
                    view = view[n:]
                    at += n
                left -= len(chunk)
            pos = offset + length
        if hasher is not None:
            _hash_zeros(hasher, m.realsize - pos)
        os.ftruncate(fd, m.realsize)

    def symlink(self, parts: tuple[str, ...], m: Member) -> None:
        pfd = self.parent(parts[:-1], m.name)
        name = parts[-1]
        self.clear_slot(pfd, name, m.name, for_dir=False)
        os.symlink(m.linkname, name, dir_fd=pfd)
        if self.chown:
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if m.xattrs:
            self.set_xattrs(f"/proc/self/fd/{pfd}/{name}", m, follow=False)
        os.utime(name, ns=(m.mtime_ns, m.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def hardlink(self, parts: tuple[str, ...], m: Member, strip: int) -> None:
        # The source must be a regular file reached inside the target without following anything. Callers
        # extract into a fresh staging directory, so whatever is there came from this archive.
        if not m.linkname:
            raise UnsafeArchive(m.name, "hard link without a target")
        try:
            src = clean_parts(m.linkname, strip)
        except UnsafeArchive as e:
            raise UnsafeArchive(m.name, f"hard link to {_quote(m.linkname)}: {e.reason}") from None
        if not src:
            raise UnsafeArchive(m.name, f"hard link to {_quote(m.linkname)} outside the target")
        try:
            sfd = self.walk(tuple(src[:-1]), m.name, create=False)
        except FileNotFoundError:
            raise UnsafeArchive(m.name, f"hard link to {_quote(m.linkname)}, which is not in the archive") from None
        try:
            try:
                st = os.lstat(src[-1], dir_fd=sfd)
            except FileNotFoundError:
                raise UnsafeArchive(m.name, f"hard link to {_quote(m.linkname)}, which is not in the archive") \
                    from None
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeArchive(m.name, f"hard link to {_quote(m.linkname)}, which is not a regular file")
            pfd = self.parent(parts[:-1], m.name)
            self.clear_slot(pfd, parts[-1], m.name, for_dir=False)
            # linkat without AT_SYMLINK_FOLLOW: links the entry itself, checked above to be a regular file.
            os.link(src[-1], parts[-1], src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(sfd)

    def node(self, parts: tuple[str, ...], m: Member) -> None:
        kind = {CHR: stat.S_IFCHR, BLK: stat.S_IFBLK, FIFO: stat.S_IFIFO}[m.type]
        if not self.limits.allow_devices:
            what = "FIFOs are" if m.type == FIFO else "device nodes are"
            raise UnsafeArchive(m.name, f"{what} not allowed in this archive")
        pfd = self.parent(parts[:-1], m.name)
        name = parts[-1]
        self.clear_slot(pfd, name, m.name, for_dir=False)
        os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        if self.chown:
            os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        # fchmod needs a real fd and opening a FIFO or device would block or act: chmod the O_PATH fd's
        # /proc magic link, which names that very inode (no path lookup that a symlink could redirect).
        nfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            os.chmod(f"/proc/self/fd/{nfd}", self.mode_of(m))
        finally:
            os.close(nfd)
        os.utime(name, ns=(m.mtime_ns, m.mtime_ns), dir_fd=pfd, follow_symlinks=False)

    def finish_dirs(self) -> None:
        """Set directory modes and mtimes deepest-last-created first, once nothing more is created inside."""
        self._drop_cache()
        for parts, mode, mtime_ns in reversed(self.dirs):
            try:
                pfd = self.walk(parts[:-1], "/".join(parts), create=False)
            except (FileNotFoundError, UnsafeArchive):
                continue
            try:
                fd = os.open(parts[-1], _DIR_RD_FLAGS, dir_fd=pfd)
            except OSError:
                continue   # replaced by a later member
            finally:
                os.close(pfd)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)
        if self.root_attrs is not None:
            fd = os.open(self.target, _DIR_RD_FLAGS)
            try:
                os.fchmod(fd, self.root_attrs[0])
                os.utime(fd, ns=(self.root_attrs[1], self.root_attrs[1]))
            finally:
                os.close(fd)


_ZEROS = bytes(CHUNK)


def _hash_zeros(hasher, n: int) -> None:
    while n > 0:
        take = min(n, CHUNK)
        hasher.update(_ZEROS[:take] if take < CHUNK else _ZEROS)
        n -= take


def extract(stream: BinaryIO, target: Path, limits: ExtractLimits = ExtractLimits(), *, strip_components: int = 0,
            progress: Progress | None = None, on_member: Callable | None = None,
            hasher_factory: Callable | None = None,
            intercept: Callable[[Member, TarReader], bool] | None = None) -> ExtractResult:
    """Extract an uncompressed tar stream into target, refusing any member that is unsafe (UnsafeArchive).

    on_member(parts, member, hasher) is called after each member is created (hasher: the content hash of a
    regular file, from hasher_factory); restore uses it to check members against a backup's manifest.
    intercept(member, reader) may take a member over (read its data itself) by returning True.
    Memory: file data streams in 1 MiB blocks; only the list of directories (mode and mtime are set at the end,
    as GNU tar's delayed set-stat does) grows with the archive.
    """
    target = Path(target)
    reader = TarReader(stream)
    ex = _Extractor(target, limits)
    files = written = members = 0
    last_report = time.monotonic()
    try:
        for m in reader:
            members += 1
            if limits.max_members is not None and members > limits.max_members:
                raise UnsafeArchive(m.name, f"the archive has more than {limits.max_members} members")
            if intercept is not None and intercept(m, reader):
                continue
            parts_list = clean_parts(m.name, strip_components)
            if parts_list is None:
                continue
            parts = tuple(parts_list)
            hasher = None
            if m.isreg():
                if not parts:
                    raise UnsafeArchive(m.name, "a file cannot replace the target directory")
                if limits.max_bytes is not None and written + m.realsize > limits.max_bytes:
                    raise UnsafeArchive(m.name, f"the archive expands to more than {limits.max_bytes} bytes")
                hasher = ex.regular(parts, m, reader, hasher_factory)
                written += m.realsize
            elif m.isdir():
                ex.directory(parts, m)
            elif m.type == SYM:
                if not parts:
                    raise UnsafeArchive(m.name, "a symlink cannot replace the target directory")
                ex.symlink(parts, m)
            elif m.type == LNK:
                if not parts:
                    raise UnsafeArchive(m.name, "a hard link cannot replace the target directory")
                ex.hardlink(parts, m, strip_components)
            elif m.type in (CHR, BLK, FIFO):
                if not parts:
                    raise UnsafeArchive(m.name, "a node cannot replace the target directory")
                ex.node(parts, m)
            elif m.type in _SKIPPED_TYPES:
                continue
            else:
                raise UnsafeArchive(m.name, f"unsupported member type {m.type!r}")
            files += 1
            if on_member is not None:
                on_member(parts, m, hasher)
            if progress is not None:
                now = time.monotonic()
                if now - last_report >= 0.25:
                    last_report = now
                    progress(reader.offset, files)
        ex.finish_dirs()
    except OSError as e:
        name = reader.current.name if reader.current else ""
        raise SystemFailure(f"extracting {_quote(name)} into {target}: {e.strerror or e}") from e
    finally:
        ex.close()
    if progress is not None:
        progress(reader.offset, files)
    return ExtractResult(files=files, bytes=written)


def extract_to_staging(stream: BinaryIO, final: Path, limits: ExtractLimits = ExtractLimits(), *,
                       strip_components: int = 0, progress: Progress | None = None,
                       **kwargs) -> tuple[Path, ExtractResult]:
    """Extract into a new staging directory beside final; on any failure remove it and re-raise."""
    final = Path(final)
    staging = final.parent / f".{final.name}.staging-{os.urandom(6).hex()}"
    os.mkdir(staging, 0o700)
    try:
        result = extract(stream, staging, limits, strip_components=strip_components, progress=progress, **kwargs)
    except BaseException:
        remove_tree(staging)
        raise
    return staging, result


def remove_tree(path: Path) -> None:
    """Remove a directory tree without following symlinks (shutil.rmtree is fd-based on Linux)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
