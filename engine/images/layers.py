"""Apply a layer tar safely into a layer directory, converting OCI whiteouts to overlayfs, hashing as it goes."""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from engine.errors import InvalidParameter, SystemFailure

CHUNK = 1 << 20
# tarfile's stream mode copies its whole read buffer on every small read: a small buffer parses headers faster.
TAR_BUFSIZE = 16 * 1024
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
MAX_SYMLINK_HOPS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """Return Docker's chain id: the diff id for a base layer, else sha256 of "<parent chain> <diff id>"."""
    if not parent_chain:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Return the chain id of every layer of a rootfs, bottom first."""
    out: list[str] = []
    for d in diff_ids:
        out.append(chain_id(out[-1] if out else None, d))
    return out


class IterReader:
    """A read()-able file object over an iterator of byte chunks (an HTTP body stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = b""
        self._off = 0          # what is consumed of _buf: small reads of a big chunk copy only what they return

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) - self._off < n:
            chunk = next(self._it, None)
            if chunk is None:
                break
            self._buf = (self._buf[self._off:] + chunk) if self._buf else chunk
            self._off = 0
        if n < 0 or self._off + n >= len(self._buf):
            out = self._buf[self._off:] if self._off else self._buf
            self._buf, self._off = b"", 0
        else:
            out = self._buf[self._off:self._off + n]
            self._off += n
        return out

    def readable(self) -> bool:
        return True


class _Prefixed:
    """A reader that first returns bytes already peeked from the underlying stream."""

    def __init__(self, raw: BinaryIO, prefix: bytes) -> None:
        self._raw, self._prefix = raw, prefix

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n < 0:
                out, self._prefix = self._prefix + self._raw.read(), b""
                return out
            out, self._prefix = self._prefix[:n], self._prefix[n:]
            return out
        return self._raw.read(n)

    def readable(self) -> bool:
        return True


def _read_exact(raw: BinaryIO, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = raw.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def decompressed(raw: BinaryIO) -> BinaryIO:
    """Return a reader of the uncompressed stream: gzip, zstd, bzip2 and xz are detected by their magic."""
    head = _read_exact(raw, 6)
    src = _Prefixed(raw, head)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[arg-type]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        import zstandard  # only needed for zstd layers (OCI images from other tools)

        return zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)  # type: ignore[arg-type]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(src)  # type: ignore[arg-type]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(src)  # type: ignore[arg-type]
    return src  # type: ignore[return-value]


class HashingReader:
    """Pass reads through, hashing every byte (the diff id) and optionally copying them to a file."""

    def __init__(self, raw: BinaryIO, tee: BinaryIO | None = None, digest: bool = True) -> None:
        self._raw, self._tee = raw, tee
        self._sha = hashlib.sha256() if digest else None
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except (OSError, EOFError, lzma.LZMAError, ValueError) as e:
            raise InvalidParameter(f"invalid layer data: {e}") from e
        except Exception as e:  # zstandard.ZstdError has no common base worth importing here
            if type(e).__name__ == "ZstdError":
                raise InvalidParameter(f"invalid layer data: {e}") from e
            raise
        if data:
            if self._sha is not None:
                self._sha.update(data)
            self.count += len(data)
            if self._tee is not None:
                self._tee.write(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and hash) everything left, such as the zero padding after the end-of-archive marker."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest() if self._sha is not None else ""


@dataclass
class AppliedLayer:
    diff_id: str          # sha256 of the uncompressed tar stream
    size: int             # bytes of regular file content in the layer
    tar_size: int         # bytes of the uncompressed tar stream


def _clean_parts(name: str) -> list[str]:
    """Split a tar entry name into safe components; absolute names are rooted, a '..' escape is refused."""
    rooted = name.startswith("/")
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
            elif not rooted:
                raise InvalidParameter(f"invalid layer tar: entry {name!r} is outside of the layer root")
            continue
        parts.append(p)
    return parts


class _Applier:
    """Create tar entries under one root directory fd, never following a symlink out of it."""

    def __init__(self, root: Path, xattr_prefix: str) -> None:
        self.root_fd = os.open(root, _DIR_FLAGS)
        self.xattr_prefix = xattr_prefix
        self.is_root = os.geteuid() == 0
        self.dirs: list[tuple[list[str], tarfile.TarInfo]] = []
        self.size = 0
        self._cached_key: tuple[str, ...] | None = None
        self._cached_fd: int | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    def open_dir(self, parts: list[str], create: bool, follow: bool = True, entry: str = "") -> int:
        """Open the directory at parts, creating missing ones and resolving symlinks inside the root."""
        fd = os.dup(self.root_fd)
        resolved: list[str] = []
        pending = list(parts)
        hops = 0
        try:
            while pending:
                comp = pending.pop(0)
                if comp == "..":
                    # Only from symlink targets: clamp at the root as a chroot would.
                    if resolved:
                        resolved.pop()
                    os.close(fd)
                    fd = os.dup(self.root_fd)
                    pending = resolved + pending
                    resolved = []
                    continue
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.lstat(comp, dir_fd=fd)
                    if not stat.S_ISLNK(st.st_mode) or not follow:
                        raise InvalidParameter(
                            f"invalid layer tar: entry {entry!r}: {'/'.join(resolved + [comp])} is not a directory")
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise InvalidParameter(f"invalid layer tar: entry {entry!r}: too many levels of symbolic links")
                    target = os.readlink(comp, dir_fd=fd)
                    tparts = [p for p in target.split("/") if p not in ("", ".")]
                    if target.startswith("/"):
                        os.close(fd)
                        fd = os.dup(self.root_fd)
                        resolved = []
                    pending = tparts + pending
                    continue
                os.close(fd)
                fd = nfd
                resolved.append(comp)
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _remove_existing(self, pfd: int, name: str, keep_dir: bool) -> None:
        try:
            st = os.lstat(name, dir_fd=pfd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not keep_dir:
                shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    def _chown(self, name: str, pfd: int, ti: tarfile.TarInfo) -> None:
        # Without root we can only own files ourselves (rootless): keep our own ids then.
        if self.is_root:
            os.chown(name, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False)

    def _xattrs(self, name: str, pfd: int, ti: tarfile.TarInfo) -> None:
        for key, value in ti.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr."):]
            try:
                os.setxattr(f"/proc/self/fd/{pfd}/{name}", attr, value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError as e:
                # Filesystems without xattr support, and privileged namespaces when not root, are skipped
                # as Docker does for unsupported xattrs.
                if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) or (e.errno == errno.EPERM and not self.is_root):
                    continue
                raise

    def _utime(self, name: str, pfd: int, ti: tarfile.TarInfo) -> None:
        ns = int(ti.mtime * 1_000_000_000)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def apply(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        parts = _clean_parts(ti.name)
        if not parts:
            if ti.isdir():
                self.dirs.append(([], ti))
                if self.is_root:
                    os.chown(self.root_fd, ti.uid, ti.gid)
            return
        base = parts[-1]
        pfd = self._parent_fd(parts[:-1], ti.name)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(pfd, parts, ti)
        else:
            self._create(tf, pfd, parts, ti)

    def _parent_fd(self, parts: list[str], entry: str) -> int:
        """Open the parent directory, reusing the last one: tars list a directory's entries together.

        The cached fd stays right: replacing that directory (or an ancestor) takes an entry whose parent is
        a shorter path, which moves the cache to that path first.
        """
        key = tuple(parts)
        if self._cached_key != key:
            self._drop_cache()
            self._cached_fd = self.open_dir(parts, create=True, entry=entry)
            self._cached_key = key
        return self._cached_fd

    def _drop_cache(self) -> None:
        if self._cached_fd is not None:
            os.close(self._cached_fd)
        self._cached_fd, self._cached_key = None, None

    def _whiteout(self, pfd: int, parts: list[str], ti: tarfile.TarInfo) -> None:
        base = parts[-1]
        if base == WHITEOUT_OPAQUE:
            try:
                os.setxattr(pfd, self.xattr_prefix + "opaque", b"y")
            except OSError as e:
                raise SystemFailure(f"marking {'/'.join(parts[:-1]) or '/'} opaque: {e.strerror}") from e
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to do for overlayfs
        name = base[len(WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise InvalidParameter(f"invalid layer tar: bad whiteout entry {ti.name!r}")
        self._remove_existing(pfd, name, keep_dir=False)
        try:
            os.mknod(name, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=pfd)
        except OSError as e:
            raise SystemFailure(f"creating whiteout for {'/'.join(parts[:-1] + [name])}: {e.strerror}") from e
        self._chown(name, pfd, ti)

    def _create(self, tf: tarfile.TarFile, pfd: int, parts: list[str], ti: tarfile.TarInfo) -> None:
        name = parts[-1]
        self._remove_existing(pfd, name, keep_dir=ti.isdir())
        if ti.isdir():
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass
            self._chown(name, pfd, ti)
            self._xattrs(name, pfd, ti)
            self.dirs.append((parts, ti))  # mode and mtime at the end: children change the mtime
            return
        if ti.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
            try:
                src = tf.extractfile(ti)
                while src is not None:
                    chunk = src.read(CHUNK)
                    if not chunk:
                        break
                    os.write(fd, chunk)
                if self.is_root:
                    os.fchown(fd, ti.uid, ti.gid)
                os.fchmod(fd, ti.mode & 0o7777)  # after chown, which clears set-id bits
            finally:
                os.close(fd)
            self.size += ti.size
        elif ti.issym():
            os.symlink(ti.linkname, name, dir_fd=pfd)
        elif ti.islnk():
            self._hardlink(pfd, name, ti)
            return  # a hard link shares the source's inode: owner, mode and times are the source's
        elif ti.ischr() or ti.isblk() or ti.isfifo():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
            try:
                os.mknod(name, kind | 0o600, os.makedev(ti.devmajor, ti.devminor), dir_fd=pfd)
            except OSError as e:
                raise SystemFailure(f"creating device node {'/'.join(parts)}: {e.strerror}") from e
            self._chown(name, pfd, ti)
            os.chmod(name, ti.mode & 0o7777, dir_fd=pfd)
        else:
            return  # GNU volume headers and other exotic types carry no file
        if not ti.isreg():
            self._chown(name, pfd, ti)
        self._xattrs(name, pfd, ti)
        self._utime(name, pfd, ti)

    def _hardlink(self, pfd: int, name: str, ti: tarfile.TarInfo) -> None:
        src_parts = _clean_parts(ti.linkname)  # a '..' escape is refused, like Docker's "invalid hardlink"
        if not src_parts:
            raise InvalidParameter(f"invalid layer tar: hard link {ti.name!r} to the layer root")
        try:
            sfd = self.open_dir(src_parts[:-1], create=False, follow=False, entry=ti.name)
        except FileNotFoundError:
            raise InvalidParameter(f"invalid layer tar: hard link {ti.name!r} to missing {ti.linkname!r}") from None
        try:
            os.link(src_parts[-1], name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidParameter(f"invalid layer tar: hard link {ti.name!r} to missing {ti.linkname!r}") from None
        finally:
            os.close(sfd)

    def finish_dirs(self) -> None:
        """Set directory modes and times, deepest first, once nothing more is created inside them."""
        for parts, ti in reversed(self.dirs):
            try:
                fd = self.open_dir(parts, create=False, follow=False, entry=ti.name)
            except (FileNotFoundError, InvalidParameter):
                continue  # replaced by a later entry
            try:
                os.fchmod(fd, ti.mode & 0o7777)
                ns = int(ti.mtime * 1_000_000_000)
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def apply_tar(stream: BinaryIO, target: Path, tee: BinaryIO | None = None,
              xattr_prefix: str = OVERLAY_XATTR_PREFIX, digest: bool = True) -> AppliedLayer:
    """Extract a (possibly compressed) layer tar into target; return its diff id, computed while streaming.

    digest=False: no diff id (""), for a tar that is not a layer (a docker save archive being unpacked).
    """
    reader = HashingReader(decompressed(stream), tee, digest)
    applier = _Applier(target, xattr_prefix)
    try:
        try:
            with tarfile.open(fileobj=reader, mode="r|", bufsize=TAR_BUFSIZE) as tf:  # type: ignore[call-overload]
                for ti in tf:
                    applier.apply(tf, ti)
        except tarfile.TarError as e:
            raise InvalidParameter(f"invalid layer tar: {e}") from e
        reader.drain()
        applier.finish_dirs()
    except OSError as e:
        raise SystemFailure(f"applying layer into {target}: {e.strerror or e}") from e
    finally:
        applier.close()
    return AppliedLayer(reader.digest, applier.size, reader.count)


def is_compressed(path: Path) -> bool:
    """Tell whether a file starts with a compression magic that decompressed() would undo."""
    with open(path, "rb") as f:
        head = f.read(6)
    return head.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00"))


def hash_stream(stream: BinaryIO, tee: BinaryIO | None = None) -> tuple[str, int]:
    """Return the sha256 digest and length of a stream after decompression (the diff id of a layer blob)."""
    reader = HashingReader(decompressed(stream), tee)
    reader.drain()
    return reader.digest, reader.count
