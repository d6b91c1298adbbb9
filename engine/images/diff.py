"""Read an overlay upper dir against its lower layers: docker diff's change list, OCI layer tars, merged exports."""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from engine.errors import SystemFailure
from engine.images.layers import OVERLAY_XATTR_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX

MODIFIED, ADDED, DELETED = 0, 1, 2
CHUNK = 1 << 20
Skip = Callable[[str, os.stat_result], bool]


def is_whiteout(st: os.stat_result) -> bool:
    """Tell whether an overlay entry is a whiteout (a 0/0 character device)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | Path) -> bool:
    """Tell whether an overlay directory hides everything below it (trusted.overlay.opaque=y)."""
    try:
        return os.getxattr(path, OVERLAY_XATTR_PREFIX + "opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def _scandir(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            # Go's filepath.Walk order (bytes), which is what docker diff lists.
            return sorted(it, key=lambda e: os.fsencode(e.name))
    except FileNotFoundError:
        return []


class LayerView:
    """The merged view of read-only layer dirs (top first), as overlayfs would show it, looked up by path."""

    def __init__(self, layers: Sequence[Path]) -> None:
        self.layers = [str(p) for p in layers]

    def lookup(self, rel: str) -> os.stat_result | None:
        """Return the lstat of /rel in the merged layers, or None when no layer shows it."""
        parts = [p for p in rel.split("/") if p]
        if not parts:
            return os.lstat(self.layers[0]) if self.layers else None
        for layer in self.layers:
            cur, blocked = layer, False
            for i, p in enumerate(parts):
                cur = os.path.join(cur, p)
                try:
                    st = os.lstat(cur)
                except (FileNotFoundError, NotADirectoryError):
                    st = None
                if st is None:
                    break
                if is_whiteout(st):
                    return None
                if i == len(parts) - 1:
                    return st
                if not stat.S_ISDIR(st.st_mode):
                    return None                    # a file in this layer hides the directory below
                if is_opaque(cur):
                    blocked = True                 # layers below this one do not show this subtree
            if blocked:
                return None
        return None

    def has(self, rel: str) -> bool:
        """Tell whether /rel exists in the merged layers."""
        return self.lookup(rel) is not None

    def listdir(self, rel: str) -> dict[str, tuple[str, os.stat_result]]:
        """Return {name: (full path, lstat)} of the merged directory /rel (whiteouts applied)."""
        out: dict[str, tuple[str, os.stat_result]] = {}
        hidden: set[str] = set()
        parts = [p for p in rel.split("/") if p]
        for layer in self.layers:
            d = os.path.join(layer, *parts) if parts else layer
            try:
                st = os.lstat(d)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(st.st_mode):
                break                              # a file or whiteout ends the union here
            for e in _scandir(d):
                if e.name in out or e.name in hidden:
                    continue
                est = os.lstat(e.path)
                if is_whiteout(est):
                    hidden.add(e.name)
                else:
                    out[e.name] = (e.path, est)
            if is_opaque(d):
                break
        return out


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (stat.S_IMODE(a.st_mode) == stat.S_IMODE(b.st_mode) and a.st_uid == b.st_uid
            and a.st_gid == b.st_gid)


def _walk_upper(upper: str, lower: LayerView, skip: Skip | None) -> Iterator[tuple[str, str, os.stat_result, bool]]:
    """Yield (rel path, full path, lstat, under an opaque dir) depth-first, directories before their content."""
    def walk(rel: str, full: str, opaque: bool) -> Iterator[tuple[str, str, os.stat_result, bool]]:
        for e in _scandir(full):
            crel = f"{rel}/{e.name}"
            st = os.lstat(e.path)
            if skip is not None and skip(crel, st):
                continue
            yield crel, e.path, st, opaque
            if stat.S_ISDIR(st.st_mode):
                yield from walk(crel, e.path, opaque or is_opaque(e.path))
    return walk("", upper, False)


def changes(upper: Path, lowers: Sequence[Path] = (), skip: Skip | None = None) -> list[tuple[int, str]]:
    """List docker diff's changes of an upper dir over its lowers: (0 modified|1 added|2 deleted, "/path")."""
    lower = LayerView(lowers)
    out: list[tuple[int, str]] = []
    changed_dirs: set[str] = set()
    for rel, full, st, under_opaque in _walk_upper(str(upper), lower, skip):
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_whiteout(st):
            kind = DELETED
        else:
            below = None if under_opaque else lower.lookup(rel)
            kind = ADDED if below is None else MODIFIED
            if is_dir and below is not None and stat.S_ISDIR(below.st_mode) and _same_dir(st, below) \
                    and not is_opaque(full):
                # A directory copied up only because something inside it changed (or a mount point was made
                # in it): moby's parent rule below records it when an entry inside is added or deleted.
                continue
        if is_dir:
            changed_dirs.add(rel)
        if kind in (ADDED, DELETED):
            parent = os.path.dirname(rel)
            if parent != "/" and parent not in changed_dirs:
                out.append((MODIFIED, parent))
                changed_dirs.add(parent)
        out.append((kind, rel))
    return out


class _TarOut:
    """Write filesystem entries as tar members: hard links kept, overlay xattrs dropped, ids numeric."""

    def __init__(self, out: BinaryIO) -> None:
        self.tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.links: dict[tuple[int, int], str] = {}
        self.count = 0

    def close(self) -> None:
        self.tf.close()

    def add(self, name: str, full: str, st: os.stat_result) -> None:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        ti.mtime = int(st.st_mtime)
        mode = st.st_mode
        fobj = None
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.links:
                ti.type, ti.linkname = tarfile.LNKTYPE, self.links[key]
            else:
                if st.st_nlink > 1:
                    self.links[key] = name
                ti.type, ti.size = tarfile.REGTYPE, st.st_size
                fobj = open(full, "rb")
        elif stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        else:
            return                                  # sockets are not archived (as Docker)
        ti.pax_headers = self._xattrs(full, mode)
        self.count += 1
        try:
            self.tf.addfile(ti, fobj)
        finally:
            if fobj is not None:
                fobj.close()

    def _xattrs(self, full: str, mode: int) -> dict[str, str]:
        if stat.S_ISLNK(mode):
            return {}
        try:
            names = os.listxattr(full, follow_symlinks=False)
        except OSError:
            return {}
        out = {}
        for key in sorted(names):
            if key.startswith(OVERLAY_XATTR_PREFIX):
                continue
            try:
                value = os.getxattr(full, key, follow_symlinks=False)
            except OSError:
                continue
            out["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
        return out

    def marker(self, name: str, like: os.stat_result | None) -> None:
        """Write an empty regular file (a whiteout), owned like the entry it replaces or its directory."""
        ti = tarfile.TarInfo(name)
        ti.type, ti.size = tarfile.REGTYPE, 0
        ti.mode = 0o600 if like is None or not stat.S_ISDIR(like.st_mode) else stat.S_IMODE(like.st_mode)
        if like is not None:
            ti.uid, ti.gid, ti.mtime = like.st_uid, like.st_gid, int(like.st_mtime)
        self.count += 1
        self.tf.addfile(ti)


def write_layer(upper: Path, out: BinaryIO, lower_has: Callable[[str], bool] | None = None,
                lowers: Sequence[Path] = (), skip: Skip | None = None) -> int:
    """Write an overlay upper dir as an OCI layer tar (whiteouts .wh.<name>, opaque .wh..wh..opq); return entries.

    Order is deterministic (sorted, directories before their content). Directories copied up only because
    something inside them changed stay in the layer (their children need a parent); with lowers given, a
    copied-up directory with nothing left to carry (same mode and owner, no change inside) is left out.
    No entry written means the step changed nothing: the caller records an empty layer.
    """
    view = LayerView(lowers)
    w = _TarOut(out)
    try:
        _write_dir(w, str(upper), "", view if lowers else None, lower_has, skip)
    except OSError as e:
        raise SystemFailure(f"writing the layer of {upper}: {e.strerror or e}") from e
    finally:
        w.close()
    return w.count


def _write_dir(w: _TarOut, full: str, rel: str, view: LayerView | None, lower_has, skip: Skip | None) -> None:
    """Write the content of one upper directory, depth first."""
    for e in _scandir(full):
        crel = f"{rel}/{e.name}"
        name = crel.lstrip("/")
        st = os.lstat(e.path)
        if skip is not None and skip(crel, st):
            continue
        if is_whiteout(st):
            if lower_has is not None and not lower_has(crel):
                continue                       # nothing below to hide
            w.marker(os.path.join(os.path.dirname(name), WHITEOUT_PREFIX + e.name), None)
            continue
        if not stat.S_ISDIR(st.st_mode):
            w.add(name, e.path, st)
            continue
        opaque = is_opaque(e.path)
        below = view.lookup(crel) if view is not None else None
        plain_copy_up = (below is not None and stat.S_ISDIR(below.st_mode) and _same_dir(st, below)
                         and not opaque)
        if plain_copy_up and not _has_content(e.path, crel, view, lower_has, skip):
            continue                           # tarfile streams: decide before writing the directory
        w.add(name + "/", e.path, st)
        if opaque:
            w.marker(f"{name}/{WHITEOUT_OPAQUE}", st)
        _write_dir(w, e.path, crel, view, lower_has, skip)


def _has_content(full: str, rel: str, view: LayerView | None, lower_has, skip: Skip | None) -> bool:
    """Tell whether an upper directory holds anything the layer must carry."""
    for e in _scandir(full):
        crel = f"{rel}/{e.name}"
        st = os.lstat(e.path)
        if skip is not None and skip(crel, st):
            continue
        if is_whiteout(st):
            if lower_has is not None and not lower_has(crel):
                continue
            return True
        if not stat.S_ISDIR(st.st_mode):
            return True
        below = view.lookup(crel) if view is not None else None
        if below is None or not stat.S_ISDIR(below.st_mode) or not _same_dir(st, below) or is_opaque(e.path):
            return True
        if _has_content(e.path, crel, view, lower_has, skip):
            return True
    return False


def write_merged(layers: Sequence[Path], out: BinaryIO) -> None:
    """Write the merged view of layer dirs (top first, overlay rules) as one plain tar (docker export)."""
    view = LayerView(layers)
    w = _TarOut(out)
    try:
        def walk(rel: str) -> None:
            entries = view.listdir(rel)
            for name in sorted(entries, key=os.fsencode):
                full, st = entries[name]
                crel = f"{rel}/{name}"
                if stat.S_ISDIR(st.st_mode):
                    w.add(crel.lstrip("/") + "/", full, st)
                    walk(crel)
                else:
                    w.add(crel.lstrip("/"), full, st)
        walk("")
    except OSError as e:
        if e.errno == errno.EPIPE:
            raise
        raise SystemFailure(f"exporting the filesystem: {e.strerror or e}") from e
    finally:
        w.close()


def runtime_mount_skip(upper: Path, mount_points: Sequence[str], lower: LayerView) -> Skip:
    """Return a skip rule for the empty files and dirs a container's runtime made as mount points.

    Docker keeps those in an "init" layer under the container's own, so neither docker diff nor a build
    layer shows them; here they land in the upper dir and are left out when the image did not have them.
    """
    points = {"/" + p.strip("/") for p in mount_points if p.strip("/")}
    upper_root = str(upper)

    def skip(rel: str, st: os.stat_result) -> bool:
        if rel not in points:
            return False
        if stat.S_ISREG(st.st_mode):
            empty = st.st_size == 0
        else:
            empty = stat.S_ISDIR(st.st_mode) and not os.listdir(upper_root + rel)
        return empty and not lower.has(rel)

    return skip
