"""The build context: receive the tar safely, apply .dockerignore, find the Dockerfile, resolve and hash COPY sources."""

from __future__ import annotations

import email.utils
import fnmatch
import hashlib
import http.client
import ipaddress
import os
import posixpath
import socket
import ssl
import stat
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from engine import tarsafe
from engine.errors import InvalidParameter, SystemFailure
from engine.images.layers import _Prefixed, _read_exact, decompressed

MAX_SYMLINKS = 40
DEFAULT_DOCKERFILE = "Dockerfile"


class ContextError(InvalidParameter):
    """A COPY/ADD source cannot be used: missing, outside the context, or no match."""


@dataclass
class Source:
    """One resolved COPY/ADD source inside the context."""

    name: str          # the path as the Dockerfile named it (after glob expansion), context-relative
    path: Path         # the real path on disk, inside the context (symlinks resolved; there once extracted)
    is_dir: bool
    ctx: "BuildContext | None" = None   # the context it resolves in (None: a file of its own, an ADD download)
    rel: str = ""      # path relative to the context root, symlinks resolved ("" is the root)


@dataclass(eq=False)
class _Node:
    """One entry of a received context as extracting it would leave it (a hard link shares its file's node)."""

    kind: int                          # stat.S_IFDIR, S_IFREG, S_IFLNK (or a FIFO/device when allowed)
    mode: int
    uid: int
    gid: int
    size: int = 0
    offset: int = -1                   # where a plain file's data starts in the spooled tar (-1: sparse)
    target: str = ""                   # a symlink's target
    children: dict[str, "_Node"] | None = None
    digest: str = ""                   # sha256 of a file's content, computed when first needed
    mtime_ns: int = 0


class BuildContext:
    """A received build context: its tar spooled in one file and indexed, extracted to disk only when a step needs
    files from disk (ADD of a local archive, a sparse file; the root property). close() removes it.

    Receiving never creates the context's files: COPY sources are resolved and hashed from the index and the
    spooled bytes (a cached rebuild costs what reading the tar costs), and a COPY that runs reads them from the
    spool too. The index mirrors what tarsafe.extract followed by the .dockerignore pass leaves on disk (same
    refusals, same replacement rules), so hashes agree either way.
    """

    def __init__(self, base: Path, dockerfile: bytes, dockerfile_name: str, index: "_Index | None" = None,
                 limits: tarsafe.ExtractLimits | None = None) -> None:
        self.base = base                   # private directory holding the context (and nothing else)
        self._root = base / "context"
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name
        self.index = index if index is not None else _Index.empty()
        self._limits = limits
        self._extracted = index is None or index.spool is None
        self._spool_file: BinaryIO | None = None   # open while sources_hash reads file contents

    @property
    def root(self) -> Path:
        """The context's directory, extracted on first use."""
        self.materialize()
        return self._root

    @property
    def extracted(self) -> bool:
        return self._extracted

    def materialize(self) -> None:
        """Extract the spooled context into root (once), then drop what .dockerignore excludes."""
        if self._extracted:
            return
        with open(self.index.spool, "rb") as f:  # type: ignore[arg-type]
            tarsafe.extract(f, self._root, self._limits or tarsafe.ExtractLimits(keep_setid=True))
        _apply_dockerignore(self._root, self.dockerfile_name)
        self._extracted = True

    def close(self) -> None:
        """Remove the context (spool and extracted files)."""
        tarsafe.remove_tree(self.base)

    # -- sources -------------------------------------------------------------------------------------------------

    def sources(self, patterns: list[str], cmd: str, wildcards: bool = True) -> list[Source]:
        """Resolve COPY/ADD sources (globs allowed) inside the context, following symlinks only inside it."""
        out: list[Source] = []
        for pattern in patterns:
            rel = _clean(pattern, cmd)
            if wildcards and _has_wildcards(rel):
                matched = [m for m in self.index.walk_names() if _go_match(rel, m)]
                for m in matched:
                    out.append(self._source(m, cmd))
                continue
            out.append(self._source(rel, cmd))
        if not out:
            raise ContextError(f"{cmd} failed: no source files were specified")
        return out

    def _source(self, rel: str, cmd: str) -> Source:
        parts = self.index.resolve(rel, cmd)
        node = self.index.lookup(parts)
        if node is None:
            raise ContextError(f"{cmd} failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {rel or '.'}: file does not exist")
        return Source(rel or ".", Path(self._root, *parts), node.kind == stat.S_IFDIR, self, "/".join(parts))

    def sources_hash(self, sources: list[Source]) -> str:
        """Hash sources from the index: the same value sources_hash() computes from the extracted files."""
        try:
            hashes = [self._source_hash(s) for s in sources]
        finally:
            if self._spool_file is not None:
                self._spool_file.close()
                self._spool_file = None
        return _combine(sources, hashes)

    def _source_hash(self, src: Source) -> str:
        parts = [p for p in src.rel.split("/") if p]
        node = self.index.lookup(parts)
        if node is None:
            raise ContextError(f"stat {src.name}: file does not exist")
        h = hashlib.sha256()
        if node.kind != stat.S_IFDIR:
            h.update(f"{stat.S_IMODE(node.mode):o}\0{node.uid}\0{node.gid}\0{self._digest(node, parts)}".encode())
            return "file:" + h.hexdigest()

        def walk(dnode: _Node, rel_dir: str, dparts: list[str]) -> None:
            # os.walk's order: the directory's own line, its files and symlinks sorted, then its subdirectories.
            h.update(self._entry_line(rel_dir, dnode, dparts).encode("utf-8", "surrogateescape"))
            children = dnode.children or {}
            for n in sorted(n for n, c in children.items() if c.kind != stat.S_IFDIR):
                rel = n if rel_dir == "." else f"{rel_dir}/{n}"
                h.update(self._entry_line(rel, children[n], dparts + [n]).encode("utf-8", "surrogateescape"))
            for n in sorted(n for n, c in children.items() if c.kind == stat.S_IFDIR):
                walk(children[n], n if rel_dir == "." else f"{rel_dir}/{n}", dparts + [n])

        walk(node, ".", parts)
        return "dir:" + h.hexdigest()

    def _entry_line(self, rel: str, node: _Node, parts: list[str]) -> str:
        line = f"{rel}\0{node.kind:o}\0{stat.S_IMODE(node.mode):o}\0{node.uid}\0{node.gid}"
        if node.kind == stat.S_IFREG:
            line += "\0" + self._digest(node, parts)
        elif node.kind == stat.S_IFLNK:
            line += "\0" + node.target
        return line + "\n"

    def _digest(self, node: _Node, parts: list[str]) -> str:
        if not node.digest:
            if node.offset < 0:
                # A sparse file: its logical content is what extraction writes.
                node.digest = _hash_file(str(Path(self.root, *parts)))
            else:
                if self._spool_file is None:
                    self._spool_file = open(self.index.spool, "rb")  # type: ignore[arg-type]
                node.digest = self.index.hash_data(node, self._spool_file)
        return node.digest

    def spooled_node(self, src: Source) -> "_Node | None":
        """Return a source's index node when COPY can read it from the spool (the context is not extracted)."""
        if self._extracted or self.index.has_sparse or src.ctx is not self:
            return None
        return self.index.lookup([p for p in src.rel.split("/") if p])

    @property
    def spool(self) -> Path | None:
        return self.index.spool

    def is_archive(self, src: Source) -> bool:
        """Tell whether a file source is a tar archive (maybe compressed), which ADD unpacks."""
        from engine.images.layers import decompressed

        parts = [p for p in src.rel.split("/") if p]
        node = self.index.lookup(parts)
        if self._extracted or node is None or node.kind != stat.S_IFREG or node.offset < 0:
            return _is_archive_file(self.root / src.rel if src.rel else self.root)
        try:
            with open(self.index.spool, "rb") as f:  # type: ignore[arg-type]
                f.seek(node.offset)
                head = _read_exact(decompressed(_Limited(f, node.size)), 512)  # type: ignore[arg-type]
        except Exception:      # not an archive we can read (a corrupt .gz, an unknown zstd frame): copied as is
            return False
        return _looks_like_tar(head)


class _Limited:
    """Read at most n bytes of a file (one member's data in the spooled tar)."""

    def __init__(self, f: BinaryIO, n: int) -> None:
        self._f, self._left = f, n

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n) if n else b""
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True


def _is_archive_file(path: Path) -> bool:
    from engine.images.layers import decompressed

    try:
        with open(path, "rb") as f:
            head = _read_exact(decompressed(f), 512)
    except Exception:      # not an archive we can read: copied as is
        return False
    return _looks_like_tar(head)


class _Index:
    """The tree a context tar extracts to, built from its headers as tarsafe.extract would build it on disk."""

    def __init__(self, spool: Path | None, limits: tarsafe.ExtractLimits) -> None:
        self.spool = spool
        self.limits = limits
        self.chown = limits.same_owner and os.geteuid() == 0
        self.own = (os.geteuid(), os.getegid())
        umask = os.umask(0)
        os.umask(umask)
        self.dir_mode = 0o755 & ~umask     # what extraction's mkdir gives a directory no member describes
        self.now_ns = time.time_ns()       # the mtime of a directory no member describes (made at receive)
        self.has_sparse = False            # a sparse file's bytes cannot be read from the spool as they are
        self.root = _Node(stat.S_IFDIR, stat.S_IFDIR | (0o777 & ~umask), *self.own, children={},
                          mtime_ns=self.now_ns)

    @classmethod
    def empty(cls) -> "_Index":
        return cls(None, tarsafe.ExtractLimits())

    # -- building ----------------------------------------------------------------------------------------------

    def add(self, m: tarsafe.Member, offset: int) -> None:
        """Record one member (in archive order), refusing what extraction refuses, with the same messages."""
        parts = tarsafe.clean_parts(m.name)
        if parts is None:
            return
        owner = (m.uid, m.gid) if self.chown else self.own
        mode = m.mode & 0o7777
        if not self.limits.keep_setid:
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
        if m.isreg():
            if not parts:
                raise tarsafe.UnsafeArchive(m.name, "a file cannot replace the target directory")
            node = _Node(stat.S_IFREG, stat.S_IFREG | mode, *owner, size=m.realsize,
                         offset=offset if m.sparse is None else -1, mtime_ns=m.mtime_ns)
            self.has_sparse = self.has_sparse or m.sparse is not None
            self._put(parts, node, m.name)
        elif m.isdir():
            if not parts:
                self.root.mode, (self.root.uid, self.root.gid) = stat.S_IFDIR | mode, owner
                self.root.mtime_ns = m.mtime_ns
                return
            parent = self._dir(parts[:-1], m.name, create=True)
            old = parent.children.get(parts[-1])  # type: ignore[union-attr]
            if old is not None and old.kind == stat.S_IFDIR:
                old.mode, (old.uid, old.gid), old.mtime_ns = stat.S_IFDIR | mode, owner, m.mtime_ns
            else:
                parent.children[parts[-1]] = _Node(stat.S_IFDIR, stat.S_IFDIR | mode, *owner,  # type: ignore
                                                   children={}, mtime_ns=m.mtime_ns)
        elif m.type == tarsafe.SYM:
            if not parts:
                raise tarsafe.UnsafeArchive(m.name, "a symlink cannot replace the target directory")
            self._put(parts, _Node(stat.S_IFLNK, stat.S_IFLNK | 0o777, *owner, target=m.linkname,
                                   mtime_ns=m.mtime_ns), m.name)
        elif m.type == tarsafe.LNK:
            if not parts:
                raise tarsafe.UnsafeArchive(m.name, "a hard link cannot replace the target directory")
            self._put(parts, self._link_source(m), m.name)
        elif m.type in (tarsafe.CHR, tarsafe.BLK, tarsafe.FIFO):
            if not parts:
                raise tarsafe.UnsafeArchive(m.name, "a node cannot replace the target directory")
            if not self.limits.allow_devices:
                what = "FIFOs are" if m.type == tarsafe.FIFO else "device nodes are"
                raise tarsafe.UnsafeArchive(m.name, f"{what} not allowed in this archive")
            kind = {tarsafe.CHR: stat.S_IFCHR, tarsafe.BLK: stat.S_IFBLK, tarsafe.FIFO: stat.S_IFIFO}[m.type]
            self._put(parts, _Node(kind, kind | mode, *owner, mtime_ns=m.mtime_ns), m.name)
        elif m.type in tarsafe._SKIPPED_TYPES:
            return
        else:
            raise tarsafe.UnsafeArchive(m.name, f"unsupported member type {m.type!r}")

    def _dir(self, parts: list[str], member: str, create: bool) -> _Node:
        node = self.root
        for i, comp in enumerate(parts):
            child = node.children.get(comp)  # type: ignore[union-attr]
            if child is None:
                if not create:
                    raise FileNotFoundError(comp)
                child = _Node(stat.S_IFDIR, stat.S_IFDIR | self.dir_mode, *self.own, children={},
                              mtime_ns=self.now_ns)
                node.children[comp] = child  # type: ignore[index]
            elif child.kind != stat.S_IFDIR:
                where = "/".join(parts[:i + 1])
                if child.kind == stat.S_IFLNK:
                    raise tarsafe.UnsafeArchive(member, f"{where} is a symlink: writing through it is not allowed")
                raise tarsafe.UnsafeArchive(member, f"{where} is not a directory")
            node = child
        return node

    def _put(self, parts: list[str], node: _Node, member: str) -> None:
        parent = self._dir(parts[:-1], member, create=True)
        old = parent.children.get(parts[-1])  # type: ignore[union-attr]
        if old is not None and old.kind == stat.S_IFDIR:
            raise tarsafe.UnsafeArchive(member, "it would replace a directory")
        parent.children[parts[-1]] = node  # type: ignore[index]

    def _link_source(self, m: tarsafe.Member) -> _Node:
        quoted = tarsafe._quote(m.linkname)
        if not m.linkname:
            raise tarsafe.UnsafeArchive(m.name, "hard link without a target")
        try:
            src = tarsafe.clean_parts(m.linkname)
        except tarsafe.UnsafeArchive as e:
            raise tarsafe.UnsafeArchive(m.name, f"hard link to {quoted}: {e.reason}") from None
        if not src:
            raise tarsafe.UnsafeArchive(m.name, f"hard link to {quoted} outside the target")
        try:
            parent = self._dir(src[:-1], m.name, create=False)
        except FileNotFoundError:
            raise tarsafe.UnsafeArchive(m.name, f"hard link to {quoted}, which is not in the archive") from None
        node = parent.children.get(src[-1])  # type: ignore[union-attr]
        if node is None:
            raise tarsafe.UnsafeArchive(m.name, f"hard link to {quoted}, which is not in the archive")
        if node.kind != stat.S_IFREG:
            raise tarsafe.UnsafeArchive(m.name, f"hard link to {quoted}, which is not a regular file")
        return node

    # -- reading -----------------------------------------------------------------------------------------------

    def lookup(self, parts: list[str]) -> _Node | None:
        """Return the node at parts (no symlink followed), or None."""
        node = self.root
        for comp in parts:
            if node.kind != stat.S_IFDIR:
                return None
            node = node.children.get(comp)  # type: ignore[union-attr,assignment]
            if node is None:
                return None
        return node

    def resolve(self, rel: str, cmd: str) -> list[str]:
        """resolve_in() over the index: follow symlinks inside the context, refuse one leading out of it."""
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if not resolved:
                    raise ContextError(f"{cmd} failed: forbidden path outside the build context: {rel} ()")
                resolved.pop()
                continue
            node = self.lookup(resolved + [part])
            if node is not None and node.kind == stat.S_IFLNK:
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise ContextError(f"{cmd} failed: too many levels of symbolic links resolving {rel}")
                parts = _link_parts(node.target, rel, resolved, cmd) + parts
                continue
            resolved.append(part)
        return resolved

    def walk_names(self) -> list[str]:
        """Every path in the context, as the os.walk of the extracted tree lists them (for globs)."""
        names: list[str] = []

        def walk(node: _Node, rel_dir: str) -> None:
            children = node.children or {}
            for n in sorted(children):
                names.append(n if rel_dir == "" else f"{rel_dir}/{n}")
            for n in sorted(n for n, c in children.items() if c.kind == stat.S_IFDIR):
                walk(children[n], n if rel_dir == "" else f"{rel_dir}/{n}")

        walk(self.root, "")
        return names

    def read(self, node: _Node) -> bytes:
        """Return a plain file's content from the spool."""
        with open(self.spool, "rb") as f:  # type: ignore[arg-type]
            f.seek(node.offset)
            return f.read(node.size)

    def hash_data(self, node: _Node, f: BinaryIO) -> str:
        """Return the sha256 of a plain file's content, read from the open spool f."""
        h = hashlib.sha256()
        f.seek(node.offset)
        left = node.size
        while left:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise SystemFailure("the spooled build context is shorter than its index")
            h.update(chunk)
            left -= len(chunk)
        return h.hexdigest()

    # -- .dockerignore -----------------------------------------------------------------------------------------

    def apply_dockerignore(self, dockerfile_name: str) -> None:
        """Drop what .dockerignore excludes, as _apply_dockerignore does on disk."""
        ignore = self.root.children.get(".dockerignore")  # type: ignore[union-attr]
        if ignore is None or ignore.kind != stat.S_IFREG:
            return
        from engine.build.dockerignore import Matcher, read_patterns

        text = self.read(ignore) if ignore.offset >= 0 else None
        if text is None:
            raise _NeedsDisk()
        matcher = Matcher(read_patterns(text.decode("utf-8", "replace")))

        def prune(node: _Node, rel_dir: str) -> None:
            children = node.children or {}
            for n in list(children):
                child = children[n]
                rel = n if rel_dir == "" else f"{rel_dir}/{n}"
                if child.kind == stat.S_IFDIR:
                    prune(child, rel)
                    if matcher.excluded(rel, True) and not child.children:
                        del children[n]
                elif matcher.excluded(rel, False):
                    del children[n]

        prune(self.root, "")


class _NeedsDisk(Exception):
    """The index cannot answer without the extracted files (a sparse .dockerignore or Dockerfile)."""


def _link_parts(target: str, rel: str, resolved: list[str], cmd: str) -> list[str]:
    """Check a symlink met while resolving rel stays inside the context; return its target's components."""
    if target.startswith("/"):
        raise ContextError(f"{cmd} failed: forbidden path outside the build context: {rel} (symlink to {target})")
    depth = len(resolved)
    for t in target.split("/"):
        if t == "..":
            depth -= 1
        elif t not in ("", "."):
            depth += 1
        if depth < 0:
            raise ContextError(f"{cmd} failed: forbidden path outside the build context: {rel} "
                               f"(symlink to {target})")
    return [p for p in target.split("/") if p not in ("", ".")]


def resolve_in(root: Path, rel: str, cmd: str = "COPY") -> Path:
    """Resolve a context-relative path, following symlinks; a path or link leading out of root is refused."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not resolved:
                raise ContextError(f"{cmd} failed: forbidden path outside the build context: {rel} ()")
            resolved.pop()
            continue
        full = os.path.join(root, *resolved, part)
        if os.path.islink(full):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise ContextError(f"{cmd} failed: too many levels of symbolic links resolving {rel}")
            target = os.readlink(full)
            if target.startswith("/"):
                raise ContextError(f"{cmd} failed: forbidden path outside the build context: {rel} "
                                   f"(symlink to {target})")
            depth = len(resolved)
            for t in target.split("/"):
                if t == "..":
                    depth -= 1
                elif t not in ("", "."):
                    depth += 1
                if depth < 0:
                    raise ContextError(f"{cmd} failed: forbidden path outside the build context: {rel} "
                                       f"(symlink to {target})")
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return Path(root, *resolved)


def _clean(pattern: str, cmd: str) -> str:
    """Clean a source path: context-relative (a leading / is the context root); climbing out of it is refused."""
    normal = posixpath.normpath(pattern.lstrip("/") or ".")
    if normal == ".." or normal.startswith("../"):
        raise ContextError(f"{cmd} failed: forbidden path outside the build context: {pattern} ()")
    return "" if normal == "." else normal


def _has_wildcards(path: str) -> bool:
    return any(c in path for c in "*?[")


def _go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: wildcards never match a "/", so the number of components must agree."""
    pparts, nparts = pattern.split("/"), name.split("/")
    if len(pparts) != len(nparts):
        return False
    return all(fnmatch.fnmatchcase(n, p.replace("[^", "[!")) for p, n in zip(pparts, nparts))


# -- content hashes (the cache key of COPY and ADD) -----------------------------------------------------------------

def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def _entry_line(rel: str, full: str) -> str:
    st = os.lstat(full)
    kind = stat.S_IFMT(st.st_mode)
    line = f"{rel}\0{kind:o}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}"
    if stat.S_ISREG(st.st_mode):
        line += "\0" + _hash_file(full)
    elif stat.S_ISLNK(st.st_mode):
        line += "\0" + os.readlink(full)
    return line + "\n"


def source_hash(src: Source) -> str:
    """Hash a source's names, modes, owners and content from disk: "file:<hex>" for a file, "dir:<hex>" for a tree."""
    if src.ctx is not None:
        src.ctx.materialize()
    h = hashlib.sha256()
    if not src.is_dir:
        # A single file's hash is its content, as in Docker's "file:<sha256>" history comment; the mode and
        # owner are part of the cache key too.
        st = os.stat(src.path)
        content = _hash_file(str(src.path))
        h.update(f"{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}\0{content}".encode())
        return "file:" + h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(src.path):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, src.path)
        h.update(_entry_line(rel_dir, dirpath).encode("utf-8", "surrogateescape"))
        for n in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            full = os.path.join(dirpath, n)
            rel = n if rel_dir == "." else f"{rel_dir}/{n}"
            h.update(_entry_line(rel, full).encode("utf-8", "surrogateescape"))
    return "dir:" + h.hexdigest()


def sources_hash(sources: list[Source]) -> str:
    """Hash several sources: the single source's own hash, or "multi:<hex>" over all of them."""
    return _combine(sources, [source_hash(s) for s in sources])


def _combine(sources: list[Source], hashes: list[str]) -> str:
    if len(hashes) == 1:
        return hashes[0]
    return "multi:" + hashlib.sha256("\n".join(f"{s.name}\0{h}" for s, h in zip(sources, hashes)).encode(
        "utf-8", "surrogateescape")).hexdigest()


# -- receiving ------------------------------------------------------------------------------------------------------

def _looks_like_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar" or (len(head) >= 512 and _tar_checksum_ok(head[:512]))


def _tar_checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 8 * 32 + sum(block[156:512])


class _PaddedTar:
    """Complete a tar stream that stops right after its last member's data, as the docker CLI sends with `-f -`.

    The CLI rewrites the context to add the Dockerfile and never writes the last block's padding or the
    end-of-archive blocks; Go's tar reader accepts that, so zeros are supplied here once the body has ended.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._count = 0
        self._tail: bytes | None = None

    def read(self, n: int = -1) -> bytes:
        if self._tail is None:
            data = self._raw.read(n)
            if data:
                self._count += len(data)
                return data
            self._tail = b"\0" * ((-self._count) % 512 + 1024)
        if n < 0:
            n = len(self._tail)
        out, self._tail = self._tail[:n], self._tail[n:]
        return out

    def readable(self) -> bool:
        return True


class _Tee:
    """Pass reads through, copying every byte to a file (the spooled context)."""

    def __init__(self, raw: BinaryIO, out: BinaryIO) -> None:
        self._raw, self._out = raw, out

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._out.write(data)
        return data

    def readable(self) -> bool:
        return True


def receive(stream: BinaryIO, work_dir: Path, dockerfile: str | None = None,
            limits: tarsafe.ExtractLimits | None = None) -> BuildContext:
    """Receive a build context (tar, maybe compressed, or a bare Dockerfile) into a new directory under work_dir.

    The tar is spooled to one file and indexed, not extracted: see BuildContext.
    """
    limits = limits or tarsafe.ExtractLimits(keep_setid=True)
    base = Path(tempfile.mkdtemp(prefix="context-", dir=work_dir))
    root = base / "context"
    root.mkdir()
    try:
        raw = decompressed(stream)
        head = _read_exact(raw, 512)
        body = _Prefixed(raw, head)
        name = dockerfile or DEFAULT_DOCKERFILE
        if head and not _looks_like_tar(head):
            # `docker build - < Dockerfile` through an API client that does not wrap it: the body is the file.
            return BuildContext(base, body.read(), name)
        spool = base / "context.tar"
        index = _Index(spool, limits)
        if head:
            with open(spool, "wb") as out:
                _index_tar(_Tee(_PaddedTar(body), out), index, limits)  # type: ignore[arg-type]
        else:
            spool.write_bytes(b"")
        try:
            data, found = _read_dockerfile_indexed(index, dockerfile)
            index.apply_dockerignore(found)
        except _NeedsDisk:
            # A sparse Dockerfile or .dockerignore: read them from the extracted files instead.
            ctx = BuildContext(base, b"", name, None, limits)
            with open(spool, "rb") as f:
                tarsafe.extract(f, root, limits)
            data, found = _read_dockerfile(root, dockerfile)
            _apply_dockerignore(root, found)
            ctx.dockerfile, ctx.dockerfile_name = data, found
            return ctx
        return BuildContext(base, data, found, index, limits)
    except BaseException:
        tarsafe.remove_tree(base)
        raise


def _index_tar(stream: BinaryIO, index: _Index, limits: tarsafe.ExtractLimits) -> None:
    """Read every member of a context tar into the index, with extraction's limits."""
    reader = tarsafe.TarReader(stream)
    members = written = 0
    for m in reader:
        members += 1
        if limits.max_members is not None and members > limits.max_members:
            raise tarsafe.UnsafeArchive(m.name, f"the archive has more than {limits.max_members} members")
        if m.isreg() and limits.max_bytes is not None:
            written += m.realsize
            if written > limits.max_bytes:
                raise tarsafe.UnsafeArchive(m.name, f"the archive expands to more than {limits.max_bytes} bytes")
        index.add(m, reader.offset)
    # The rest of the stream (end-of-archive blocks, padding) is spooled too: extraction reads the same bytes.
    while stream.read(1 << 20):
        pass


def _read_dockerfile_indexed(index: _Index, name: str | None) -> tuple[bytes, str]:
    """_read_dockerfile() over the index."""
    candidates = [name] if name else [DEFAULT_DOCKERFILE, "dockerfile"]
    for cand in candidates:
        if cand.startswith("/") or posixpath.normpath(cand).startswith(".."):
            raise InvalidParameter(f"the Dockerfile ({cand}) must be within the build context")
        try:
            parts = index.resolve(cand, "Dockerfile")
        except ContextError:
            raise InvalidParameter(f"the Dockerfile ({cand}) must be within the build context") from None
        node = index.lookup(parts)
        if node is None or node.kind != stat.S_IFREG:
            continue   # missing, a directory, or a path through a file: the next candidate
        if node.offset < 0:
            raise _NeedsDisk()
        return index.read(node), posixpath.normpath(cand)
    raise InvalidParameter(f"Cannot locate specified Dockerfile: {name or DEFAULT_DOCKERFILE}")


def _read_dockerfile(root: Path, name: str | None) -> tuple[bytes, str]:
    candidates = [name] if name else [DEFAULT_DOCKERFILE, "dockerfile"]
    for cand in candidates:
        if cand.startswith("/") or posixpath.normpath(cand).startswith(".."):
            raise InvalidParameter(f"the Dockerfile ({cand}) must be within the build context")
        try:
            path = resolve_in(root, cand, "Dockerfile")
        except ContextError:
            raise InvalidParameter(f"the Dockerfile ({cand}) must be within the build context") from None
        try:
            return path.read_bytes(), posixpath.normpath(cand)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        except OSError as e:
            raise SystemFailure(f"reading the Dockerfile {cand}: {e.strerror}") from e
    raise InvalidParameter(f"Cannot locate specified Dockerfile: {name or DEFAULT_DOCKERFILE}")


def _apply_dockerignore(root: Path, dockerfile_name: str) -> None:
    """Remove what .dockerignore excludes (the client usually did already); the Dockerfile was read before."""
    ignore = root / ".dockerignore"
    if not ignore.is_file() or ignore.is_symlink():
        return
    from engine.build.dockerignore import Matcher, read_patterns

    matcher = Matcher(read_patterns(ignore.read_text(errors="replace")))
    # Bottom-up: files first, then directories left empty by it (a directory with a re-included child stays).
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel_dir = os.path.relpath(dirpath, root)
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            rel = n if rel_dir == "." else f"{rel_dir}/{n}"
            if matcher.excluded(rel, False):
                os.unlink(os.path.join(dirpath, n))
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                continue
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            if matcher.excluded(rel, True) and not os.listdir(full):
                os.rmdir(full)



# -- ADD <url> ------------------------------------------------------------------------------------------------------

def is_url(src: str) -> bool:
    """Tell whether an ADD source is a URL to download."""
    return src.startswith(("http://", "https://"))


def _check_address(url: str, host: str, ip: str, allow_private: bool) -> None:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    bad = (addr.is_loopback or addr.is_link_local or addr.is_private or addr.is_multicast or addr.is_reserved
           or addr.is_unspecified)
    if bad and not allow_private:
        raise ContextError(f"ADD failed: refusing to download {url}: {host} is {ip}, a loopback, link-local or "
                           "private address (the engine setting DOCKWEB_BUILD_ADD_ALLOW_PRIVATE=1 allows it)")


def _connect(url: str, allow_private: bool, timeout: float) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ContextError(f"ADD failed: unsupported URL {url}: only http and https are allowed")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ContextError(f"ADD failed: cannot resolve {host}: {e.strerror}") from None
    # Every address is checked, then the connection goes to a checked one (no second lookup to rebind).
    for info in infos:
        _check_address(url, host, info[4][0], allow_private)
    ip = infos[0][4][0]

    class Pinned(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.create_connection((ip, port), timeout)

    class PinnedTLS(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = socket.create_connection((ip, port), timeout)
            self.sock = ssl.create_default_context().wrap_socket(raw, server_hostname=host)

    cls = PinnedTLS if parts.scheme == "https" else Pinned
    return cls(host, port, timeout=timeout)


def download(url: str, work_dir: Path, config) -> tuple[Path, str, int | None]:
    """Download an ADD URL into work_dir with size and time caps; return (path, file name, mtime ns or None)."""
    allow_private = bool(getattr(config, "build_add_allow_private", False))
    max_bytes = int(getattr(config, "build_add_max_bytes", 1 << 30))
    deadline = time.monotonic() + float(getattr(config, "build_add_timeout", 300.0))
    current = url
    for _ in range(10):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ContextError(f"ADD failed: downloading {url} took too long")
        conn = _connect(current, allow_private, left)
        parts = urllib.parse.urlsplit(current)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", path, headers={"User-Agent": "dockweb-builder"})
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                current = urllib.parse.urljoin(current, resp.getheader("Location"))
                continue
            if resp.status >= 400:
                raise ContextError(f"ADD failed: failed to GET {url} with status {resp.status} {resp.reason}")
            name = posixpath.basename(urllib.parse.unquote(parts.path.rstrip("/"))) if not parts.path.endswith(
                "/") else ""
            if not name:
                raise ContextError(f"ADD failed: cannot determine filename from url: {url}")
            length = resp.getheader("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise ContextError(f"ADD failed: {url} is larger than the {max_bytes}-byte limit")
            out_path = Path(tempfile.mkdtemp(prefix="add-", dir=work_dir)) / name
            total = 0
            with open(out_path, "wb") as out:
                while True:
                    if time.monotonic() > deadline:
                        raise ContextError(f"ADD failed: downloading {url} took too long")
                    chunk = resp.read(1 << 16)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > max_bytes:
                        raise ContextError(f"ADD failed: {url} is larger than the {max_bytes}-byte limit")
                    out.write(chunk)
            mtime = None
            modified = resp.getheader("Last-Modified")
            if modified:
                try:
                    mtime = int(email.utils.parsedate_to_datetime(modified).timestamp()) * 1_000_000_000
                except (TypeError, ValueError):
                    mtime = None
            return out_path, name, mtime
        except (OSError, http.client.HTTPException) as e:
            raise ContextError(f"ADD failed: downloading {url}: {e}") from None
        finally:
            conn.close()
    raise ContextError(f"ADD failed: too many redirects downloading {url}")
