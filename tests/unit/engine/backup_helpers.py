"""Shared pieces of the backup tests: a store on a temp engine root, a tree with every kind of entry, a deep snapshot."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

from engine.config import EngineConfig
from engine.events import EventLog
from engine.volumes.backup import BackupStore
from engine.volumes.store import VolumeStore

MTIME = 1_650_000_000_123_456_789


class FakeContainer:
    def __init__(self, cid: str, status: str = "running", labels: dict | None = None) -> None:
        self.id = cid
        self.labels = labels or {}
        self.state = type("S", (), {"status": status})()


class FakeContainers:
    """Records pause/unpause/stop/start calls; containers_using_volume answers from a dict."""

    def __init__(self, users: dict[str, list[FakeContainer]] | None = None) -> None:
        self.users = users or {}
        self.calls: list[tuple[str, str]] = []

    def containers_using_volume(self, name: str) -> list[tuple[str, bool]]:
        return [(c.id, c.state.status in ("running", "paused")) for c in self.users.get(name, [])]

    def get(self, cid: str) -> FakeContainer:
        return next(c for cs in self.users.values() for c in cs if c.id == cid)

    def _set(self, cid: str, verb: str, status: str) -> None:
        self.calls.append((verb, cid))
        self.get(cid).state.status = status

    def pause(self, cid: str) -> None:
        self._set(cid, "pause", "paused")

    def unpause(self, cid: str) -> None:
        self._set(cid, "unpause", "running")

    def stop(self, cid: str) -> None:
        self._set(cid, "stop", "exited")

    def start(self, cid: str) -> None:
        self._set(cid, "start", "running")


def make_store(tmp_path: Path, containers=None) -> tuple[BackupStore, VolumeStore]:
    config = EngineConfig(root=tmp_path / "root", socket=tmp_path / "engine.sock")
    config.ensure_dirs()
    events = EventLog()
    volumes = VolumeStore(config, events)
    return BackupStore(config, events, volumes, containers), volumes


def xattrs_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.dockweb-probe", b"1")
        os.removexattr(path, "user.dockweb-probe")
        return True
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
            return False
        raise


def fill_tree(root: Path) -> None:
    """Files, symlinks, hard links, empty dirs, a sparse file, unusual modes and owners, xattrs, exact mtimes."""
    is_root = os.geteuid() == 0
    (root / "docs" / "deep" / "er").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "docs" / "readme.txt").write_bytes(b"hello volume\n" * 100)
    (root / "docs" / "deep" / "er" / "bin.dat").write_bytes(bytes(range(256)) * 4000)
    (root / "zero-length").write_bytes(b"")
    os.link(root / "docs" / "readme.txt", root / "hardlink-to-readme")
    os.symlink("docs/readme.txt", root / "rel-link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("nowhere/at/all", root / "dangling")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(32 << 20)
        f.seek(8 << 20)
        f.write(b"island")
    (root / "name with spaces & ünïcode").write_bytes(b"odd name")
    (root / ("long" * 40)).mkdir()
    (root / ("long" * 40) / ("name" * 30)).write_bytes(b"long path")
    (root / "secret").write_bytes(b"private")
    os.chmod(root / "secret", 0o000)
    os.chmod(root / "docs" / "deep", 0o1777)
    os.chmod(root / "zero-length", 0o604)
    if is_root:
        os.chown(root / "docs" / "readme.txt", 1234, 5678)
        os.chown(root / "empty", 999, 998)
        os.chown(root / "rel-link", 4321, 8765, follow_symlinks=False)
    if xattrs_supported(root):
        os.setxattr(root / "docs" / "readme.txt", "user.comment", b"kept across backups")
        os.setxattr(root / "empty", "user.binary", bytes(range(256)))
        if is_root:
            os.setxattr(root / "docs", "trusted.dockweb", b"root only")
    # mtimes last, deepest first: creating entries changes their directory's mtime.
    for dirpath, dirnames, filenames in sorted(os.walk(root), key=lambda t: -t[0].count("/")):
        for name in dirnames + filenames:
            os.utime(Path(dirpath) / name, ns=(MTIME, MTIME), follow_symlinks=False)
    os.utime(root, ns=(MTIME + 7, MTIME + 7))


def deep_snapshot(root: Path) -> dict:
    """Every entry with type, mode, owner, size, content hash, link target, mtime (ns), xattrs and link groups."""
    out: dict = {}
    inodes: dict[int, list[str]] = {}

    def describe(p: Path, rel: str) -> None:
        st = os.lstat(p)
        extra = None
        if stat.S_ISREG(st.st_mode):
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW) if st.st_mode & 0o444 or os.geteuid() == 0 else None
            if fd is not None:
                h = hashlib.sha256()
                with os.fdopen(fd, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                extra = h.hexdigest()
            if st.st_nlink > 1:
                inodes.setdefault(st.st_ino, []).append(rel)
        elif stat.S_ISLNK(st.st_mode):
            extra = os.readlink(p)
        try:
            xattrs = {k: os.getxattr(p, k, follow_symlinks=False) for k in sorted(os.listxattr(p, follow_symlinks=False))}
        except OSError:
            xattrs = {}
        out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                    st.st_size if not stat.S_ISDIR(st.st_mode) else 0, extra, st.st_mtime_ns, xattrs)

    describe(root, ".")
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            describe(p, str(p.relative_to(root)))
    out["<hard links>"] = sorted(sorted(g) for g in inodes.values())
    return out
