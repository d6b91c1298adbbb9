"""Helpers for the image tests: tar builders, a store on tmp_path, a fake containers manager."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.events import EventLog
from engine.images.store import ImageStore

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (device nodes, trusted xattrs, chown)")


def entry(name: str, data: bytes | None = None, *, kind: bytes | None = None, mode: int | None = None,
          link: str = "", uid: int = 0, gid: int = 0, mtime: int = 1_600_000_000, major: int = 0,
          minor: int = 0, pax: dict | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    """Describe one tar entry: a file when data is given, a directory for names ending in '/'."""
    ti = tarfile.TarInfo(name)
    if kind is None:
        kind = tarfile.DIRTYPE if name.endswith("/") else tarfile.SYMTYPE if link else tarfile.REGTYPE
    ti.type = kind
    ti.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    ti.linkname = link
    ti.uid, ti.gid, ti.mtime = uid, gid, mtime
    ti.devmajor, ti.devminor = major, minor
    if pax:
        ti.pax_headers = dict(pax)
    if kind == tarfile.REGTYPE:
        data = data or b""
        ti.size = len(data)
    return ti, data


def build_tar(*entries: tuple[tarfile.TarInfo, bytes | None], compress: str | None = None) -> bytes:
    """Return a tar (PAX format) of the entries, optionally gzip- or zstd-compressed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None and ti.isreg() else None)
    raw = buf.getvalue()
    if compress == "gzip":
        return gzip.compress(raw)
    if compress == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    return raw


def simple_rootfs(marker: bytes = b"hello\n") -> bytes:
    """Return a small uncompressed rootfs tar with a marker file."""
    return build_tar(entry("bin/"), entry("etc/"), entry("etc/marker", marker),
                     entry("bin/sh", b"#!fake shell\n", mode=0o755))


def make_store(tmp_path: Path, name: str = "root") -> ImageStore:
    """Open an image store under tmp_path/name."""
    return ImageStore(EngineConfig(root=tmp_path / name), EventLog())


def leftovers(store: ImageStore) -> list[str]:
    """List what sits in the store's temporary directory (should be nothing between operations)."""
    return sorted(os.listdir(store.root / "tmp"))


class FakeContainers:
    """The container manager's image_users, with a fixed answer per image id."""

    def __init__(self) -> None:
        self.users: dict[str, list[tuple[str, bool]]] = {}

    def image_users(self, image_id: str) -> list[tuple[str, bool]]:
        return list(self.users.get(image_id, []))
