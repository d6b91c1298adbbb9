"""Read a volume's files for the dashboard's file browser: list a directory, stream a file, never leave the volume.

Paths are resolved one component at a time from a directory fd on the volume's root, each opened with O_NOFOLLOW:
a symbolic link is listed (with its target) but never followed, so nothing outside the volume can be read, whatever
a container wrote into it. Everything is read-only.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from engine.errors import InvalidParameter, NotFound, SystemFailure
from engine.state import rfc3339

MAX_ENTRIES = 2000
CHUNK = 1 << 20

_KINDS = {stat.S_IFDIR: "dir", stat.S_IFREG: "file", stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo",
          stat.S_IFSOCK: "socket", stat.S_IFCHR: "char-device", stat.S_IFBLK: "block-device"}


@dataclass
class Entry:
    name: str
    kind: str
    size: int
    mode: str
    uid: int
    gid: int
    modified: str
    target: str | None = None

    def to_api(self) -> dict:
        doc = {"Name": self.name, "Type": self.kind, "Size": self.size, "Mode": self.mode, "Uid": self.uid,
               "Gid": self.gid, "Modified": self.modified}
        if self.target is not None:
            doc["LinkTarget"] = self.target
        return doc


def parts_of(path: str) -> list[str]:
    """Split a volume-relative path into components, refusing '..' (the browser never needs to climb)."""
    parts = [p for p in (path or "/").split("/") if p and p != "."]
    if ".." in parts:
        raise InvalidParameter(f"path {path!r} must not contain '..'")
    return parts


def _open_dir(root: Path, parts: list[str], path: str) -> int:
    """Open the directory at parts under root, refusing symlinks at every step."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise SystemFailure(f"opening volume directory {root}: {e.strerror}") from e
    for part in parts:
        try:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as e:
            os.close(fd)
            raise _path_error(path, e) from None
        os.close(fd)
        fd = nfd
    return fd


def _path_error(path: str, e: OSError) -> Exception:
    if e.errno == 2:
        return NotFound(f"no such file or directory in the volume: {path}")
    if e.errno in (20, 40):  # ENOTDIR, ELOOP: a file or a symlink where a directory was expected
        return InvalidParameter(f"{path} is not a directory (symbolic links are not followed)")
    return SystemFailure(f"reading {path} in the volume: {e.strerror}")


def list_dir(root: Path, path: str, limit: int = MAX_ENTRIES) -> dict:
    """List the directory at path inside root: directories first, then by name; at most limit entries."""
    fd = _open_dir(root, parts_of(path), path)
    try:
        entries: list[Entry] = []
        total = 0
        with os.scandir(fd) as it:
            for de in it:
                total += 1
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed while listing
                kind = _KINDS.get(stat.S_IFMT(st.st_mode), "other")
                target = os.readlink(de.name, dir_fd=fd) if kind == "symlink" else None
                entries.append(Entry(de.name, kind, st.st_size, f"{stat.S_IMODE(st.st_mode):04o}", st.st_uid,
                                     st.st_gid, rfc3339(st.st_mtime_ns), target))
    except OSError as e:
        raise SystemFailure(f"listing {path} in the volume: {e.strerror}") from e
    finally:
        os.close(fd)
    entries.sort(key=lambda e: (e.kind != "dir", e.name))
    return {"Path": "/" + "/".join(parts_of(path)), "Entries": [e.to_api() for e in entries[:limit]],
            "Total": total, "Truncated": total > limit}


def open_file(root: Path, path: str) -> tuple[int, int]:
    """Open the regular file at path inside root without following symlinks; return (fd, size)."""
    parts = parts_of(path)
    if not parts:
        raise InvalidParameter("path names the volume's root directory, not a file")
    dfd = _open_dir(root, parts[:-1], path)
    try:
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except OSError as e:
        if e.errno == 40:
            raise InvalidParameter(f"{path} is a symbolic link: the browser does not follow links") from None
        raise _path_error(path, e) from None
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise InvalidParameter(f"{path} is not a regular file")
    return fd, st.st_size


def read_chunks(fd: int, limit: int | None = None) -> Iterator[bytes]:
    """Yield the file's bytes (at most limit), closing fd at the end."""
    left = limit if limit is not None else -1
    try:
        while left != 0:
            data = os.read(fd, CHUNK if left < 0 else min(CHUNK, left))
            if not data:
                return
            if left > 0:
                left -= len(data)
            yield data
    finally:
        os.close(fd)
