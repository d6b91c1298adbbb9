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
    path: Path         # the real path on disk, inside the context (symlinks resolved)
    is_dir: bool


class BuildContext:
    """An extracted build context in a private directory; close() removes it."""

    def __init__(self, base: Path, dockerfile: bytes, dockerfile_name: str) -> None:
        self.base = base                   # private directory holding the context (and nothing else)
        self.root = base / "context"
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name

    def close(self) -> None:
        """Remove the extracted context."""
        tarsafe.remove_tree(self.base)

    # -- sources -------------------------------------------------------------------------------------------------

    def sources(self, patterns: list[str], cmd: str, wildcards: bool = True) -> list[Source]:
        """Resolve COPY/ADD sources (globs allowed) inside the context, following symlinks only inside it."""
        out: list[Source] = []
        for pattern in patterns:
            rel = _clean(pattern, cmd)
            if wildcards and _has_wildcards(rel):
                matched = [m for m in self._walk_names() if _go_match(rel, m)]
                for m in matched:
                    out.append(self._source(m, cmd))
                continue
            out.append(self._source(rel, cmd))
        if not out:
            raise ContextError(f"{cmd} failed: no source files were specified")
        return out

    def _source(self, rel: str, cmd: str) -> Source:
        path = resolve_in(self.root, rel, cmd)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise ContextError(f"{cmd} failed: file not found in build context or excluded by .dockerignore: "
                               f"stat {rel or '.'}: file does not exist") from None
        return Source(rel or ".", path, stat.S_ISDIR(st.st_mode))

    def _walk_names(self) -> list[str]:
        names = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, self.root)
            for n in sorted(dirnames + filenames):
                names.append(n if rel_dir == "." else f"{rel_dir}/{n}")
        return names


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
    """Hash a source's names, modes, owners and content: "file:<hex>" for a file, "dir:<hex>" for a tree."""
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
    hashes = [source_hash(s) for s in sources]
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


def receive(stream: BinaryIO, work_dir: Path, dockerfile: str | None = None,
            limits: tarsafe.ExtractLimits | None = None) -> BuildContext:
    """Extract a build context (tar, maybe compressed, or a bare Dockerfile) into a new directory under work_dir."""
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
        if head:
            tarsafe.extract(_PaddedTar(body), root,  # type: ignore[arg-type]
                            limits or tarsafe.ExtractLimits(keep_setid=True))
        data, found = _read_dockerfile(root, dockerfile)
        _apply_dockerignore(root, found)
        return BuildContext(base, data, found)
    except BaseException:
        tarsafe.remove_tree(base)
        raise


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
