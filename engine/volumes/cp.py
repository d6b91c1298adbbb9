"""docker cp: stat, read (as a tar stream) and extract paths inside a container, its volumes and bind mounts.

Every path is resolved inside the container's root by a forked child that entered it (engine.volumes.fsaccess),
so symlinks resolve against the container's "/" and can never lead to the host's files.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from engine import tarsafe
from engine.errors import Forbidden, InvalidParameter, NotFound
from engine.volumes.fsaccess import FsTarget, Reporter, Worker, fork_worker, raise_report
from engine.volumes.mounts import find_mount

CHUNK = 256 * 1024
# Go's os.FileMode bits, which the stat header carries.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


@dataclass
class CopyTarget(FsTarget):
    """A container's filesystem plus what docker cp needs to judge writes and name errors."""

    ref: str = ""                       # the container as the user named it (for error messages)
    tmpfs_dests: tuple = ()             # HostConfig.Tmpfs destinations
    owner: tuple | None = None          # (uid, gid) of the container's Config.User, for copyUIDGID


def go_file_mode(st_mode: int) -> int:
    """Convert a stat mode to Go's os.FileMode (what the X-Docker-Container-Path-Stat header carries)."""
    mode = st_mode & 0o777
    if st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_MODE_DIR, stat.S_IFLNK: GO_MODE_SYMLINK, stat.S_IFIFO: GO_MODE_NAMED_PIPE,
             stat.S_IFSOCK: GO_MODE_SOCKET, stat.S_IFBLK: GO_MODE_DEVICE,
             stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE}.get(kind, 0)
    return mode


def go_time(ns: int) -> str:
    """Format ns as Go's time.Time JSON (RFC3339Nano, trailing zeros trimmed), in UTC."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{frac:09d}".rstrip("0") if frac else ""
    return f"{base}{fraction}Z"


def encode_stat(doc: dict) -> str:
    """Encode a path stat as the X-Docker-Container-Path-Stat header value."""
    return base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def container_path(path: str) -> str:
    """Make path absolute in the container, keeping a trailing "/" or "/." (they mean "must be a directory")."""
    if not path:
        raise InvalidParameter("path cannot be empty")
    clean = posixpath.normpath("/" + path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if path.endswith("/.") and clean != "/":
        return clean + "/."
    if path.endswith("/") and clean != "/":
        return clean + "/"
    return clean


def _not_found(t: CopyTarget, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {t.ref}")


# ------------------------------------------------------------------------------------------- in the child


def _stat_doc(t: CopyTarget, abs_path: str) -> dict:
    try:
        st = os.lstat(abs_path)
    except FileNotFoundError:
        raise _not_found(t, abs_path) from None
    except NotADirectoryError:
        raise InvalidParameter(f"{abs_path}: not a directory") from None
    link = ""
    if stat.S_ISLNK(st.st_mode):
        # Fully evaluated inside the container: we are chrooted (or setns'd) into its root.
        link = os.path.realpath(abs_path)
    name = posixpath.basename(abs_path.rstrip("/")) or "/"
    return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode), "mtime": go_time(st.st_mtime_ns),
            "linkTarget": link}


class _TarWriter:
    """Write a tar stream of a tree to a pipe with numeric owners only.

    Never look owners up by name: in the container's root that would make glibc read its nsswitch.conf and load
    its NSS libraries into this root process (CVE-2019-14271).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.links: dict[tuple[int, int], str] = {}

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def add(self, path: str, name: str, st: os.stat_result) -> None:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.uname = ti.gname = ""
        ti.mtime = int(st.st_mtime)   # whole seconds, as Go's default tar format: no pax header for a fraction
        kind = stat.S_IFMT(st.st_mode)
        size = 0
        if kind == stat.S_IFREG:
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                ti.type, ti.linkname = tarfile.LNKTYPE, self.links[key]
            else:
                if st.st_nlink > 1:
                    self.links[key] = name
                ti.type, size = tarfile.REGTYPE, st.st_size
        elif kind == stat.S_IFDIR:
            ti.type = tarfile.DIRTYPE
            if not ti.name.endswith("/"):
                ti.name += "/"
        elif kind == stat.S_IFLNK:
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif kind in (stat.S_IFCHR, stat.S_IFBLK):
            ti.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif kind == stat.S_IFIFO:
            ti.type = tarfile.FIFOTYPE
        else:
            return   # sockets have no tar form
        ti.size = size
        if size:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                return   # vanished since the walk listed it
        self._write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if not size:
            return
        try:
            left = size
            while left:
                data = os.read(fd, min(CHUNK, left))
                if not data:
                    break   # shrank while we read: pad with zeros to the size the header promised
                self._write(data)
                left -= len(data)
            if left:
                self._write(bytes(left))
        finally:
            os.close(fd)
        if size % tarfile.BLOCKSIZE:
            self._write(bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def tree(self, path: str, name: str, top_dev: int, keep_dirs: set[str]) -> None:
        st = os.lstat(path)
        self.add(path, name, st)
        if not stat.S_ISDIR(st.st_mode):
            return
        # Do not wander into other filesystems (/proc, /sys, /dev, tmpfs) unless they are the container's binds
        # and volumes: Docker's archive is the rootfs with the volumes mounted, nothing else.
        if st.st_dev != top_dev and path not in keep_dirs:
            return
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            try:
                self.tree(entry.path, f"{name.rstrip('/')}/{entry.name}", top_dev, keep_dirs)
            except FileNotFoundError:
                continue

    def close(self) -> None:
        self._write(bytes(2 * tarfile.BLOCKSIZE))


def _check_writable(t: CopyTarget, resolved: str) -> None:
    m = find_mount(list(t.mounts), resolved)
    if m is not None:
        if not m.rw:
            raise Forbidden("mounted volume is marked read-only")
        return
    if any(resolved == d or resolved.startswith(d.rstrip("/") + "/") for d in t.tmpfs_dests):
        return
    if t.readonly:
        raise Forbidden("container rootfs is marked read-only")


# ------------------------------------------------------------------------------------------- in the daemon


def stat_path(t: CopyTarget, path: str) -> dict:
    """Stat a path in the container (HEAD /containers/{id}/archive)."""
    abs_path = container_path(path)

    def body(rep: Reporter, _fd) -> None:
        rep.send({"stat": _stat_doc(t, abs_path)})

    w = fork_worker(t, body)
    try:
        doc = w.report()
        raise_report(doc)
        return doc["stat"]
    finally:
        w.wait()


def read_archive(t: CopyTarget, path: str) -> tuple[dict, Iterator[bytes]]:
    """Return the stat of a path and a tar stream of it, its root entry named after the path's last element."""
    abs_path = container_path(path)
    keep = {m.destination for m in t.mounts}

    def body(rep: Reporter, fd: int) -> None:
        doc = _stat_doc(t, abs_path)
        st = os.lstat(abs_path)
        rep.send({"stat": doc})
        writer = _TarWriter(fd)
        source = abs_path.removesuffix("/.").rstrip("/") or "/"
        name = doc["name"] if doc["name"] != "/" else "."
        writer.tree(source, name, st.st_dev, keep)
        writer.close()
        os.close(fd)
        rep.send({"ok": True})

    w = fork_worker(t, body, data="out")
    doc = w.report()
    if "error" in doc:
        w.wait()
        raise_report(doc)
    return doc["stat"], _stream(w)


def _stream(w: Worker) -> Iterator[bytes]:
    finished = False
    try:
        while True:
            data = os.read(w.data, CHUNK)
            if not data:
                break
            yield data
        raise_report(w.report())
        finished = True
    finally:
        if not finished:
            w.kill()     # the client went away: stop the child instead of letting it write into nothing
        w.wait()


def extract_archive(t: CopyTarget, path: str, chunks: Iterator[bytes], no_overwrite_dir_non_dir: bool = False,
                    copy_uid_gid: bool = False) -> dict:
    """Extract a tar stream into an existing directory of the container (PUT /containers/{id}/archive)."""
    abs_path = container_path(path)

    def body(rep: Reporter, fd: int) -> None:
        # Unlike GET, a final symlink is followed: extracting "into" a link to a directory is allowed.
        resolved = os.path.realpath(abs_path)
        try:
            st = os.stat(resolved)
        except FileNotFoundError:
            raise _not_found(t, abs_path) from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidParameter("extraction point is not a directory")
        _check_writable(t, resolved)
        rep.send({"ready": True})

        def intercept(m: tarsafe.Member, _reader) -> bool:
            if copy_uid_gid and t.owner is not None:
                # dockerd chowns to the container's user only when one is configured (tarCopyOptions).
                m.uid, m.gid = t.owner
            if no_overwrite_dir_non_dir and m.isdir():
                parts = tarsafe.clean_parts(m.name)
                if parts:
                    existing = os.path.join(resolved, *parts)
                    if os.path.lexists(existing) and not os.path.isdir(existing):
                        raise InvalidParameter(f'cannot overwrite non-directory "{existing}" with directory '
                                               f'"{m.name}"')
            return False

        with os.fdopen(fd, "rb", buffering=CHUNK) as stream:
            # Devices and FIFOs are refused: a container that needs one can mknod it itself.
            result = tarsafe.extract(stream, Path(resolved), tarsafe.ExtractLimits(keep_setid=True),
                                     intercept=intercept)
        rep.send({"ok": True, "files": result.files, "bytes": result.bytes})

    w = fork_worker(t, body, data="in")
    finished = False
    try:
        doc = w.report()
        raise_report(doc)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(w.data, view):]
        except BrokenPipeError:
            pass    # the child stopped reading: its report says why
        w.close_data()
        doc = w.report()
        finished = True
        raise_report(doc)
        return doc
    finally:
        if not finished:
            w.kill()     # the upload broke off: do not let the child extract a truncated stream
        w.wait()
