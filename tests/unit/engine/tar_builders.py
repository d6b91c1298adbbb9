"""Build tar streams for the tarsafe and backup tests: hostile members included, and tree snapshots to compare."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path


def member(name: str, kind: str = "file", data: bytes = b"", link: str = "", mode: int = 0o644,
           **attrs) -> tuple[tarfile.TarInfo, bytes]:
    """Describe one member: kind is file, dir, symlink, hardlink, char, block or fifo."""
    ti = tarfile.TarInfo(name)
    ti.mode = mode
    ti.mtime = attrs.pop("mtime", 1_700_000_000)
    ti.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
               "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
               "fifo": tarfile.FIFOTYPE}[kind]
    ti.linkname = link
    ti.size = len(data) if kind == "file" else 0
    for key, value in attrs.items():
        setattr(ti, key, value)
    return ti, data


def tar_bytes(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """Write members into an uncompressed pax tar (tarfile writes names as given, hostile ones included)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return buf.getvalue()


def snapshot(root: Path) -> dict[str, tuple]:
    """Describe every entry under root (and root itself) without following symlinks."""
    out: dict[str, tuple] = {}

    def describe(path: Path) -> tuple:
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        extra: object = None
        if stat.S_ISREG(st.st_mode):
            extra = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(path)
        return kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size, extra

    if not os.path.lexists(root):
        return out
    out["."] = describe(root)
    if not root.is_dir() or root.is_symlink():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = describe(p)
    return out
