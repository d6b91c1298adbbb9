"""The image store: content-addressed config and layer blobs, unpacked shared layers, tags, and image verbs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from engine import tarsafe
from engine.build.instructions import apply_changes
from engine.config import EngineConfig
from engine.errors import Conflict, InvalidParameter, NoSuchImage, SystemFailure
from engine.events import EventLog
from engine.images import reference
from engine.images.layers import (CHUNK, OVERLAY_XATTR_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX,
                                  HashingReader, apply_tar, chain_id, chain_ids)
from engine.images.reference import Reference, short_id
from engine.state import read_json, rfc3339, write_json

InUse = Callable[[str], "list[tuple[str, bool]]"]
ZERO_TIME = "0001-01-01T00:00:00Z"
_HEX_PREFIX_RE = re.compile(r"(?:sha256:)?([a-f0-9]{1,64})")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
         "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le", "s390x": "s390x",
         "riscv64": "riscv64"}


def host_architecture() -> str:
    """Return this host's architecture in Go's naming (amd64, arm64, ...)."""
    machine = platform.machine()
    return _ARCH.get(machine, machine)


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


_RFC3339_RE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)


def unix_time(value: str) -> float:
    """Return the unix time of an RFC3339 timestamp as image configs carry it (nanoseconds, any zone)."""
    m = _RFC3339_RE.fullmatch(value.strip())
    if not m:
        raise ValueError(f"not an RFC3339 time: {value!r}")
    zone = "+00:00" if m.group(3).upper() == "Z" else m.group(3)
    base = datetime.fromisoformat(m.group(1) + zone).timestamp()
    return base + (float("0." + m.group(2)) if m.group(2) else 0.0)


def _digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Image:
    id: str                  # "sha256:<64hex>", the digest of the config blob
    config: dict             # the image config JSON
    repo_tags: list[str]     # familiar names: busybox:latest
    repo_digests: list[str]
    size: int                # bytes of file content over all layers
    created: str             # RFC3339 from the config
    parent: str = ""         # "sha256:..." for images built on a local parent
    last_tag_time: str = ZERO_TIME

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def labels(self) -> dict:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    @property
    def created_ts(self) -> float:
        try:
            return unix_time(self.created) if self.created else 0.0
        except ValueError:
            return 0.0

    @property
    def created_unix(self) -> int:
        try:
            return int(unix_time(self.created)) if self.created else 0
        except ValueError:
            return 0


@dataclass
class Layer:
    chain_id: str
    diff_id: str
    parent: str              # parent chain id, "" for a base layer
    size: int                # bytes of file content in this layer
    tar_size: int            # bytes of the uncompressed layer tar (its blob)


@dataclass
class _Meta:
    config: dict
    parent: str = ""
    last_tag_time: str = ZERO_TIME
    chains: list[str] = field(default_factory=list)


class ImageStore:
    """Images on disk under config.images_dir; every mutation holds one lock and writes records atomically."""

    def __init__(self, config: EngineConfig, events: EventLog) -> None:
        self.root = config.images_dir
        self.events = events
        self._blobs = self.root / "blobs" / "sha256"
        self._layers_dir = self.root / "layers"
        self._imagedb = self.root / "imagedb"
        self._tmp = self.root / "tmp"
        self._repos_file = self.root / "repositories.json"
        for d in (self._blobs, self._layers_dir, self._imagedb, self._tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._refs: dict[str, str] = {}          # fully qualified reference -> image id
        self._images: dict[str, _Meta] = {}
        self._layers: dict[str, Layer] = {}
        self._holds: list[set[str]] = []          # chains being assembled into images right now
        self._load()

    # -- loading and garbage collection ------------------------------------------------------------------------

    def _load(self) -> None:
        # Leftovers of a crash (half-unpacked layers, spooled archives) are never referenced: drop them.
        for p in self._tmp.iterdir():
            _remove_path(p)
        for d in self._layers_dir.iterdir():
            rec = read_json(d / "layer.json")
            if rec is None:
                _remove_path(d)
                continue
            self._layers[rec["chain_id"]] = Layer(rec["chain_id"], rec["diff_id"], rec.get("parent", ""),
                                                  rec.get("size", 0), rec.get("tar_size", 0))
        for f in self._imagedb.glob("*.json"):
            iid = "sha256:" + f.stem
            meta = read_json(f, {})
            try:
                cfg = json.loads((self._blobs / f.stem).read_bytes())
            except (OSError, ValueError):
                f.unlink()
                continue
            chains = chain_ids(list((cfg.get("rootfs") or {}).get("diff_ids") or []))
            if any(c not in self._layers for c in chains):
                f.unlink()  # an image whose layers are gone cannot run: forget it
                continue
            self._images[iid] = _Meta(cfg, meta.get("parent", ""), meta.get("last_tag_time") or ZERO_TIME, chains)
        repos = read_json(self._repos_file, {}) or {}
        for by_name in (repos.get("Repositories") or {}).values():
            for ref, iid in by_name.items():
                if iid in self._images:
                    self._refs[reference.parse(ref).full()] = iid
        self._collect_garbage(set(self._layers))
        self._collect_blobs()

    def _referenced_chains(self) -> set[str]:
        used: set[str] = set()
        for meta in self._images.values():
            used.update(meta.chains)
        for held in self._holds:
            used.update(held)
        return used

    def _collect_garbage(self, candidates: set[str]) -> list[str]:
        """Drop candidate layers no image or running assembly uses; return the removed chain ids. Locked."""
        used = self._referenced_chains()
        removed = []
        for cid in candidates - used:
            layer = self._layers.pop(cid, None)
            if layer is None:
                continue
            # Rename first, so a half-deleted layer never sits under its chain id.
            _remove_path(self._layers_dir / _hex(cid), self._tmp)
            removed.append(cid)
            if not any(other.diff_id == layer.diff_id for other in self._layers.values()):
                _remove_path(self._blobs / _hex(layer.diff_id))
        return removed

    def _collect_blobs(self) -> None:
        keep = {_hex(i) for i in self._images} | {_hex(layer.diff_id) for layer in self._layers.values()}
        for p in self._blobs.iterdir():
            if p.name not in keep:
                _remove_path(p)

    def _save_refs(self) -> None:
        repos: dict[str, dict[str, str]] = {}
        for full, iid in sorted(self._refs.items()):
            ref = reference.parse(full)
            repos.setdefault(ref.familiar_name, {})[ref.familiar()] = iid
        write_json(self._repos_file, {"Repositories": repos})

    def _save_meta(self, iid: str, fsync: bool = True) -> None:
        meta = self._images[iid]
        write_json(self._imagedb / f"{_hex(iid)}.json", {"parent": meta.parent, "last_tag_time": meta.last_tag_time},
                   fsync=fsync)

    # -- reading -------------------------------------------------------------------------------------------------

    def _image(self, iid: str) -> Image:
        meta = self._images[iid]
        tags, digests = [], []
        for full, target in self._refs.items():
            if target != iid:
                continue
            ref = reference.parse(full)
            (digests if ref.digest else tags).append(ref.familiar())
        size = sum(self._layers[c].size for c in meta.chains if c in self._layers)
        return Image(iid, meta.config, sorted(tags), sorted(digests), size, meta.config.get("created", ""),
                     meta.parent, meta.last_tag_time)

    def resolve(self, ref: str) -> str:
        """Return the image id ref names (as get() resolves it); NoSuchImage otherwise."""
        with self._lock:
            dg = reference.digest_of(ref)
            if dg is not None:
                if dg in self._images:
                    return dg
                raise NoSuchImage(ref)
            named = reference.parse(ref)
            key = named.with_default_tag()
            if key.digest:
                key = Reference(key.domain, key.path, "", key.digest)
            iid = self._refs.get(key.full())
            if iid is not None:
                return iid
            m = _HEX_PREFIX_RE.fullmatch(ref)
            if m:
                found = [i for i in self._images if _hex(i).startswith(m.group(1))]
                if len(found) == 1:
                    return found[0]
            raise NoSuchImage(named.with_default_tag().familiar())

    def get(self, ref: str) -> Image:
        """Return the image named by a tag, a full or short id, or name@digest; NoSuchImage otherwise."""
        with self._lock:
            return self._image(self.resolve(ref))

    def list(self) -> list[Image]:
        """Return every image, newest first."""
        with self._lock:
            images = [self._image(i) for i in self._images]
        return sorted(images, key=lambda im: im.created_ts, reverse=True)

    def is_empty(self) -> bool:
        """Tell whether the store holds no image at all."""
        with self._lock:
            return not self._images

    def layer_dirs(self, image: Image) -> list[Path]:
        """Return the unpacked layer dirs of image, top layer first (overlay lowerdir order)."""
        return [self._layers_dir / _hex(c) / "diff" for c in reversed(chain_ids(image.diff_ids))]

    def layers(self, image: Image) -> list[Layer]:
        """Return the layer records of image, bottom first."""
        with self._lock:
            return [self._layers[c] for c in chain_ids(image.diff_ids)]

    def config_blob(self, image_id: str) -> Path:
        """Return the path of an image's config blob (its exact bytes make its id)."""
        return self._blobs / _hex(image_id)

    def layer_blob(self, diff_id: str) -> Path:
        """Return the path of a layer's uncompressed tar, as it was imported."""
        return self._blobs / _hex(diff_id)

    def layers_size(self) -> int:
        """Return the bytes of file content of all unpacked layers, each shared layer counted once (system df)."""
        with self._lock:
            return sum(layer.size for layer in self._layers.values())

    def children(self, image_id: str) -> list[str]:
        """Return the ids of images whose parent is image_id."""
        with self._lock:
            return [i for i, m in self._images.items() if m.parent == image_id]

    def references(self, image_id: str) -> list[Reference]:
        """Return the tag and digest references of an image, sorted."""
        with self._lock:
            return sorted((reference.parse(f) for f, i in self._refs.items() if i == image_id),
                          key=lambda r: r.full())

    def history(self, ref: str) -> list[dict]:
        """Return the image history as GET /images/{name}/history shows it, newest first."""
        image = self.get(ref)
        layers = self.layers(image)
        entries = image.config.get("history") or [{"created": image.created} for _ in layers]
        out, idx = [], 0
        for h in entries:
            size = 0
            if not h.get("empty_layer"):
                size = layers[idx].size if idx < len(layers) else 0
                idx += 1
            try:
                created = int(unix_time(h["created"])) if h.get("created") else 0
            except ValueError:
                created = 0
            out.append({"Id": "<missing>", "Created": created, "CreatedBy": h.get("created_by", ""),
                        "Tags": None, "Size": size, "Comment": h.get("comment", "")})
        out.reverse()
        if out:
            out[0]["Id"] = image.id
            out[0]["Tags"] = image.repo_tags or None
        return out

    # -- assembling images ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def hold(self) -> Iterator[set[str]]:
        """Protect the layers an operation adds from garbage collection until it commits or fails."""
        held: set[str] = set()
        with self._lock:
            self._holds.append(held)
        try:
            yield held
        finally:
            with self._lock:
                self._holds.remove(held)
                # Layers of a failed operation are referenced by nothing: nothing is left behind.
                self._collect_garbage(held)

    def has_layer(self, chain: str, held: set[str]) -> bool:
        """Tell whether a layer is unpacked already, holding it for the caller when it is."""
        with self._lock:
            if chain in self._layers:
                held.add(chain)
                return True
            return False

    def add_layer(self, stream: BinaryIO, parent_chain: str, held: set[str],
                  expect_diff_id: str | None = None, blob_file: Path | None = None) -> Layer:
        """Unpack a layer tar (maybe compressed) on top of parent_chain; shared if the same layer exists.

        blob_file: stream is this uncompressed file, on the store's filesystem: it becomes the blob by a hard link
        instead of being copied (docker load's unpacked archive).
        """
        tmp = Path(tempfile.mkdtemp(prefix="layer-", dir=self._tmp))
        try:
            diff = tmp / "diff"
            diff.mkdir()
            os.chmod(diff, 0o755)
            blob_tmp = tmp / "blob"
            if blob_file is not None:
                applied = apply_tar(stream, diff)
                os.link(blob_file, blob_tmp)
                fd = os.open(blob_tmp, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    # Whatever mode and owner the archive gave the file: a blob is a plain root-owned file.
                    if os.geteuid() == 0:
                        os.fchown(fd, 0, 0)
                    os.fchmod(fd, 0o644)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                # A large buffer: the tar reader hands over small pieces, each would be one write.
                with open(blob_tmp, "wb", buffering=CHUNK) as tee:
                    applied = apply_tar(stream, diff, tee=tee)
                    tee.flush()
                    os.fsync(tee.fileno())
            if expect_diff_id and applied.diff_id != expect_diff_id:
                raise InvalidParameter(f"invalid diffID for layer: expected {expect_diff_id!r}, "
                                       f"got {applied.diff_id!r}")
            cid = chain_id(parent_chain, applied.diff_id)
            layer = Layer(cid, applied.diff_id, parent_chain or "", applied.size, applied.tar_size)
            write_json(tmp / "layer.json", layer.__dict__)
            with self._lock:
                held.add(cid)
                if cid in self._layers:
                    return self._layers[cid]
                blob = self._blobs / _hex(applied.diff_id)
                if not blob.exists():
                    os.rename(blob_tmp, blob)
                else:
                    blob_tmp.unlink()
                # The rename is the commit: a layer dir under its chain id is always complete.
                os.rename(tmp, self._layers_dir / _hex(cid))
                self._layers[cid] = layer
                return layer
        except OSError as e:
            raise SystemFailure(f"storing layer: {e.strerror or e}") from e
        finally:
            _remove_path(tmp)

    def adopt_layer(self, upper: Path, tar_path: Path, parent_chain: str, held: set[str]) -> Layer:
        """Store an overlay upper dir as a layer by moving it into the store, its layer tar (written from it) kept
        as the blob: no second copy of every file. Both must be on the store's filesystem; they are consumed.

        The upper dir is first made what unpacking tar_path would have made: entries the tar leaves out (runtime
        mount points, directories copied up for nothing, sockets) are removed, overlay bookkeeping xattrs other
        than opaque are dropped, and times are the tar's (whole seconds).
        """
        tmp = Path(tempfile.mkdtemp(prefix="layer-", dir=self._tmp))
        try:
            with open(tar_path, "rb") as f:
                reader = HashingReader(f)
                members, whiteouts, opaque = _layer_members(reader)
                reader.drain()
            diff_id, tar_size = reader.digest, reader.count
            size = _reconcile_upper(upper, members, whiteouts, opaque)
            cid = chain_id(parent_chain, diff_id)
            layer = Layer(cid, diff_id, parent_chain or "", size, tar_size)
            os.rename(upper, tmp / "diff")
            os.rename(tar_path, tmp / "blob")
            write_json(tmp / "layer.json", layer.__dict__)
            fd = os.open(tmp / "blob", os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            with self._lock:
                held.add(cid)
                if cid in self._layers:
                    return self._layers[cid]
                blob = self._blobs / _hex(diff_id)
                if not blob.exists():
                    os.rename(tmp / "blob", blob)
                else:
                    (tmp / "blob").unlink()
                # The rename is the commit: a layer dir under its chain id is always complete.
                os.rename(tmp, self._layers_dir / _hex(cid))
                self._layers[cid] = layer
                return layer
        except OSError as e:
            raise SystemFailure(f"storing layer: {e.strerror or e}") from e
        finally:
            _remove_path(tmp)

    def commit_image(self, config_bytes: bytes, held: set[str], parent: str = "") -> str:
        """Register an image config blob (exact bytes) whose layers are present; return the image id."""
        try:
            cfg = json.loads(config_bytes)
        except ValueError as e:
            raise InvalidParameter(f"invalid image config: {e}") from None
        if not isinstance(cfg, dict) or not isinstance((cfg.get("rootfs") or {}).get("diff_ids", []), list):
            raise InvalidParameter("invalid image config: rootfs.diff_ids must be a list")
        chains = chain_ids(list((cfg.get("rootfs") or {}).get("diff_ids") or []))
        iid = _digest_bytes(config_bytes)
        with self._lock:
            missing = [c for c in chains if c not in self._layers]
            if missing:
                raise InvalidParameter(f"invalid image config: layer {missing[0]} is not in the store")
            if iid in self._images:
                return iid
            blob = self._blobs / _hex(iid)
            tmp = self._tmp / f"config-{_hex(iid)}"
            tmp.write_bytes(config_bytes)
            os.replace(tmp, blob)
            self._images[iid] = _Meta(cfg, parent, ZERO_TIME, chains)
            self._save_meta(iid)
            held.update(chains)
        return iid

    def set_tag(self, ref: Reference, image_id: str) -> str | None:
        """Point a tag at an image; return the id it pointed at before, if another one."""
        with self._lock:
            if image_id not in self._images:
                raise NoSuchImage(image_id)
            key = ref.full()
            old = self._refs.get(key)
            self._refs[key] = image_id
            self._images[image_id].last_tag_time = rfc3339(time.time_ns())
            if old == image_id:
                # Tagged again (a cached rebuild): only the tag time changes, and losing that to a crash is
                # harmless, so no fsync and no rewrite of the repositories file.
                self._save_meta(image_id, fsync=False)
                return None
            self._save_refs()
            self._save_meta(image_id)
            return old

    def publish(self, image_id: str, action: str, name: str | None = None) -> None:
        """Publish an image event as dockerd's LogImageEvent does (labels plus name)."""
        with self._lock:
            meta = self._images.get(image_id)
            labels = dict(((meta.config.get("config") or {}).get("Labels") or {})) if meta else {}
        labels["name"] = name or image_id
        self.events.publish("image", action, image_id, labels)

    # -- verbs ---------------------------------------------------------------------------------------------------

    def import_image(self, stream: BinaryIO, repo: str = "", tag: str = "", message: str = "",
                     changes: list[str] = (), config: dict | None = None, created_ns: int | None = None,
                     created_by: str = "", src: str = "-") -> Image:
        """Import a rootfs tar (maybe compressed) as a one-layer image, optionally tagged (docker import)."""
        ref = reference.repo_tag(repo, tag) if repo else None
        container_config = apply_changes(dict(config or {}), list(changes))
        created = rfc3339(created_ns or time.time_ns())
        comment = message or f"Imported from {src}"
        with self.hold() as held:
            layer = self.add_layer(stream, "", held)
            history: dict = {"created": created}
            if created_by:
                history["created_by"] = created_by
            history["comment"] = comment
            doc = {"architecture": host_architecture(), "comment": comment, "config": container_config,
                   "created": created, "history": [history], "os": "linux",
                   "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
            iid = self.commit_image(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode(), held)
            if ref is not None:
                self.set_tag(ref, iid)
        self.publish(iid, "import")
        if ref is not None:
            self.publish(iid, "tag", ref.familiar())
        return self.get(iid)

    def tag(self, source: str, repo: str, tag: str = "") -> Reference:
        """Tag an existing image as repo:tag (POST /images/{name}/tag)."""
        iid = self.resolve(source)
        if reference.digest_of(repo):
            raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
        ref = reference.repo_tag(repo, tag)
        self.set_tag(ref, iid)
        self.publish(iid, "tag", ref.familiar())
        return ref

    def _untag(self, ref: Reference, records: list[dict]) -> None:
        """Remove one reference and record it. Locked."""
        iid = self._refs.pop(ref.full())
        self._save_refs()
        records.append({"Untagged": ref.familiar()})
        self.publish(iid, "untag")

    def remove(self, ref: str, force: bool = False, prune: bool = True, in_use: InUse | None = None) -> list[dict]:
        """Untag and delete an image with dockerd's conflict rules (DELETE /images/{name})."""
        # Ask the container manager before taking our lock: it may hold its own lock while it calls get(),
        # and calling back into it under ours could deadlock.
        snapshot: dict[str, list[tuple[str, bool]]] = {}
        for _ in range(3):
            iid = self.resolve(ref)
            for ancestor in self._ancestry(iid):
                if ancestor not in snapshot:
                    snapshot[ancestor] = list(in_use(ancestor)) if in_use else []
            with self._lock:
                if self.resolve(ref) == iid:
                    return self._remove_locked(ref, iid, force, prune, lambda i: snapshot.get(i, []))
        raise Conflict(f"conflict: {ref} changed while it was being removed, try again")

    def _ancestry(self, iid: str) -> list[str]:
        """Return iid and its local parents, nearest first."""
        with self._lock:
            out = []
            while iid in self._images and iid not in out:
                out.append(iid)
                iid = self._images[iid].parent
            return out

    def _remove_locked(self, ref: str, iid: str, force: bool, prune: bool, users: InUse) -> list[dict]:
        """Untag or delete iid, which ref resolved to. Locked."""
        refs = self.references(iid)
        records: list[dict] = []
        by_id = _is_id_prefix(iid, ref)
        removed_repo_ref = False
        if not by_id:
            if not force and _is_single_reference(refs):
                ctrs = users(iid)
                if ctrs:
                    raise Conflict(f'conflict: unable to remove repository reference "{ref}" (must force) - '
                                   f"container {short_id(ctrs[0][0])} is using its referenced image "
                                   f"{short_id(iid)}")
            named = reference.parse(ref)
            named = named if named.digest else named.with_default_tag()
            if named.digest and named.tag:
                named = Reference(named.domain, named.path, "", named.digest)
            if named.full() not in self._refs:
                raise NoSuchImage(named.familiar())
            self._untag(named, records)
            refs = self.references(iid)
            if not named.digest and not any(not r.digest and r.name == named.name for r in refs):
                # The last tag of a repository takes that repository's digest references with it.
                for r in [r for r in refs if r.digest and r.name == named.name]:
                    self._untag(r, records)
                refs = self.references(iid)
            if refs:
                return records
            removed_repo_ref = True
        elif _is_single_reference(refs):
            conflict = self._conflict(iid, users, hard_only=force, references=False)
            if conflict:
                raise conflict
            for r in refs:
                self._untag(r, records)
        self._delete_helper(iid, records, force, prune, removed_repo_ref, users)
        return records

    def _conflict(self, iid: str, users: InUse, hard_only: bool, references: bool = True) -> Conflict | None:
        """Return dockerd's image delete conflict for iid, if any. Locked."""
        def conflict(hard: bool, message: str, used: bool = False) -> Conflict:
            forced = "cannot be forced" if hard else "must be forced"
            err = Conflict(f"conflict: unable to delete {short_id(iid)} ({forced}) - {message}")
            err.used = used  # type: ignore[attr-defined]
            return err

        if self.children(iid):
            return conflict(True, "image has dependent child images")
        ctrs = users(iid)
        running = [c for c, up in ctrs if up]
        if running:
            return conflict(True, f"image is being used by running container {short_id(running[0])}", True)
        if hard_only:
            return None
        if references and self.references(iid):
            return conflict(False, "image is referenced in multiple repositories")
        stopped = [c for c, up in ctrs if not up]
        if stopped:
            return conflict(False, f"image is being used by stopped container {short_id(stopped[0])}", True)
        return None

    def _delete_helper(self, iid: str, records: list[dict], force: bool, prune: bool, quiet: bool,
                       users: InUse) -> None:
        """Delete an image (and, with prune, its untagged unused parents) after the conflict checks. Locked."""
        conflict = self._conflict(iid, users, hard_only=force)
        if conflict:
            dangling = not self.references(iid)
            if quiet and (not dangling or getattr(conflict, "used", False)):
                return
            raise conflict
        meta = self._images[iid]
        for r in self.references(iid):
            self._untag(r, records)
        # Publish before dropping the record so the event still carries the image's labels.
        self.publish(iid, "delete")
        del self._images[iid]
        _remove_path(self._imagedb / f"{_hex(iid)}.json")
        _remove_path(self._blobs / _hex(iid))
        records.append({"Deleted": iid})
        for cid in self._collect_garbage(set(meta.chains)):
            records.append({"Deleted": cid})
        if prune and meta.parent and meta.parent in self._images:
            self._delete_helper(meta.parent, records, False, True, True, users)

    def filter_images(self, filters: dict[str, list[str]], show_all: bool = False) -> list[Image]:
        """Apply GET /images/json filters (dangling, label, reference, before, since) and hide intermediates."""
        for key in filters:
            if key not in ("dangling", "label", "reference", "before", "since", "until"):
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = _bool_filter(filters, "dangling")
        before = self.get(filters["before"][-1]).created_ts if filters.get("before") else None
        since = self.get(filters["since"][-1]).created_ts if filters.get("since") else None
        until = _until(filters)
        patterns = filters.get("reference") or []
        out = []
        for image in self.list():
            if before is not None and not image.created_ts < before:
                continue
            if since is not None and not image.created_ts > since:
                continue
            if until is not None and image.created_unix > until:
                continue
            if not _labels_match(filters.get("label") or [], image.labels):
                continue
            if patterns:
                refs = [r for r in self.references(image.id)
                        if any(reference.familiar_match(p, r) for p in patterns)]
                if not refs:
                    continue
                image.repo_tags = sorted(r.familiar() for r in refs if not r.digest)
                image.repo_digests = sorted(r.familiar() for r in refs if r.digest)
            untagged = not image.repo_tags and not image.repo_digests
            if untagged and not show_all and self.children(image.id):
                continue  # an intermediate image of a build: shown with all=1 only
            if dangling is True and image.repo_tags:
                continue
            if dangling is False and untagged:
                continue
            out.append(image)
        return out

    def prune(self, filters: dict[str, list[str]], in_use: InUse | None = None) -> dict:
        """Delete unused images: dangling ones by default, every unused one with dangling=false."""
        for key in filters:
            if key not in ("dangling", "label", "label!", "until"):
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling_only = _bool_filter(filters, "dangling")
        dangling_only = True if dangling_only is None else dangling_only
        until = _until(filters)
        deleted: list[dict] = []
        reclaimed = 0
        with self._lock:
            sizes = {cid: layer.size for cid, layer in self._layers.items()}
            candidates = []
            for image in self.list():
                refs = self.references(image.id)
                if dangling_only and self.children(image.id):
                    continue
                if not refs and self.children(image.id):
                    continue
                if until is not None and image.created_unix > until:
                    continue
                if not _labels_match(filters.get("label") or [], image.labels):
                    continue
                if filters.get("label!") and _labels_match(filters["label!"], image.labels, any_of=True):
                    continue
                candidates.append((image.id, refs))
        # remove() asks the container manager outside our lock: the loop must not hold it.
        for iid, refs in candidates:
            names = [r.full() for r in refs] if refs else [_hex(iid)]
            if refs and dangling_only and any(r.tag for r in refs):
                continue
            for name in names:
                try:
                    deleted.extend(self.remove(name, force=False, prune=True, in_use=in_use))
                except (Conflict, NoSuchImage):
                    continue  # in use, or gone with an earlier one: prune skips it
        for rec in deleted:
            reclaimed += sizes.get(rec.get("Deleted", ""), 0)
        self.events.publish("image", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def spool_dir(self) -> Path:
        """Make a private temporary directory on the store's filesystem (removed at the next start if left)."""
        return Path(tempfile.mkdtemp(prefix="spool-", dir=self._tmp))

    # -- registry blobs (REGISTRY helper) -----------------------------------------------------------------------
    # Which compressed blob holds a layer in which registry repository, as dockerd's v2 metadata service keeps it:
    # a push skips a layer the repository has ("Layer already exists") or mounts it from another repository.

    _BLOB_SOURCES_MAX = 16

    def _blob_sources_file(self) -> Path:
        return self.root / "distribution.json"

    def record_blob(self, diff_id: str, digest: str, repository: str, compression: str, size: int) -> None:
        """Remember that repository (domain/path) holds layer diff_id as blob digest (gzip, zstd or none)."""
        with self._lock:
            doc = read_json(self._blob_sources_file(), {}) or {}
            entry = {"digest": digest, "repository": repository, "compression": compression, "size": size}
            sources = [s for s in doc.get(diff_id, []) if (s.get("digest"), s.get("repository")) != (
                digest, repository)]
            doc[diff_id] = [entry, *sources][:self._BLOB_SOURCES_MAX]
            write_json(self._blob_sources_file(), doc)

    def blob_sources(self, diff_id: str) -> list[dict]:
        """Return what record_blob remembered for a layer, newest first: [{digest, repository, compression, size}]."""
        with self._lock:
            doc = read_json(self._blob_sources_file(), {}) or {}
            return [dict(s) for s in doc.get(diff_id, []) if isinstance(s, dict)]


def _layer_members(reader: BinaryIO) -> tuple[dict[str, int], set[str], set[str]]:
    """Read a layer tar's headers: {path: mtime ns} of its entries, whiteout paths, opaque directory paths."""
    members: dict[str, int] = {}
    whiteouts: set[str] = set()
    opaque: set[str] = set()
    for m in tarsafe.TarReader(reader):
        rel = "/".join(p for p in m.name.split("/") if p not in ("", "."))
        parent, _, base = rel.rpartition("/")
        if base == WHITEOUT_OPAQUE:
            opaque.add(parent)
        elif base.startswith(WHITEOUT_PREFIX):
            whiteouts.add(f"{parent}/{base[len(WHITEOUT_PREFIX):]}".lstrip("/"))
        else:
            members[rel] = m.mtime_ns
    return members, whiteouts, opaque


def _reconcile_upper(upper: Path, members: dict[str, int], whiteouts: set[str], opaque: set[str]) -> int:
    """Make an upper dir hold exactly what its layer tar unpacks to; return the bytes of file content."""
    size = 0
    dirs: list[tuple[str, int]] = []
    seen_inodes: set[tuple[int, int]] = set()

    def clean_xattrs(path: str, is_link: bool, keep_opaque: bool) -> None:
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError:
            return
        for name in names:
            # The tar keeps no xattr of a symlink and none of overlayfs' own but the opaque marker.
            drop = is_link or (name.startswith(OVERLAY_XATTR_PREFIX) and
                               not (keep_opaque and name == OVERLAY_XATTR_PREFIX + "opaque"))
            if drop:
                os.removexattr(path, name, follow_symlinks=False)

    def walk(full: str, rel: str) -> None:
        nonlocal size
        with os.scandir(full) as it:
            entries = list(it)
        for e in entries:
            crel = f"{rel}/{e.name}".lstrip("/")
            st = os.lstat(e.path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                if crel not in whiteouts:
                    os.unlink(e.path)
                continue
            if crel not in members:
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(e.path)
                else:
                    os.unlink(e.path)
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            clean_xattrs(e.path, stat.S_ISLNK(st.st_mode), crel in opaque)
            if is_dir:
                walk(e.path, crel)
                dirs.append((e.path, members[crel]))
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen_inodes:
                size += st.st_size
                if st.st_nlink > 1:
                    seen_inodes.add((st.st_dev, st.st_ino))
            os.utime(e.path, ns=(members[crel], members[crel]), follow_symlinks=False)

    walk(str(upper), "")
    # Directories last, deepest first: removing and touching entries inside changed their times.
    for path, mtime_ns in reversed(dirs):
        os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)
    clean_xattrs(str(upper), False, False)
    os.chmod(upper, 0o755)
    return size


def _make_writable_and_retry(func: Callable, path: str, _exc: object) -> None:
    # Without root, a read-only directory from a layer (0555) cannot lose its entries: open it up first.
    parent = os.path.dirname(path)
    os.chmod(parent, 0o700)
    if func is not os.open:
        func(path)


def _remove_path(path: Path, via: Path | None = None) -> None:
    """Remove a file or a tree; with via, rename it into via first so the removal looks atomic."""
    if not os.path.lexists(path):
        return
    try:
        if via is not None:
            holder = Path(tempfile.mkdtemp(prefix="del-", dir=via))
            os.rename(path, holder / "x")
            path = holder
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, onerror=_make_writable_and_retry)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise SystemFailure(f"removing {path}: {e.strerror}") from e


def _is_id_prefix(iid: str, ref: str) -> bool:
    return bool(ref) and _HEX_PREFIX_RE.fullmatch(ref) is not None and _hex(iid).startswith(
        _HEX_PREFIX_RE.fullmatch(ref).group(1))


def _is_single_reference(refs: list[Reference]) -> bool:
    """Tell whether refs are one tag (plus digests of the same repository), as dockerd's isSingleReference."""
    if len(refs) <= 1:
        return len(refs) == 1
    single = None
    canonical: set[str] = set()
    for r in refs:
        if r.digest:
            canonical.add(r.name)
        elif single is None:
            single = r
        else:
            return False
    if single is None:
        single = refs[0]
    return len(canonical) == 1 and single.name in canonical


def _bool_filter(filters: dict[str, list[str]], key: str) -> bool | None:
    values = filters.get(key)
    if not values:
        return None
    v = values[-1].strip().lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidParameter(f"invalid filter '{key}={values[-1]}'")


def _until(filters: dict[str, list[str]]) -> float | None:
    values = filters.get("until")
    if not values:
        return None
    raw = values[-1].strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", raw)
    if m:
        mult = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        return time.time() - float(m.group(1)) * mult
    try:
        return float(raw) if re.fullmatch(r"\d+(?:\.\d+)?", raw) else unix_time(raw)
    except ValueError:
        raise InvalidParameter(f"invalid filter 'until={raw}'") from None


def _labels_match(wanted: list[str], labels: dict, any_of: bool = False) -> bool:
    def one(w: str) -> bool:
        key, eq, value = w.partition("=")
        return key in labels and (not eq or labels[key] == value)

    if not wanted:
        return True
    return any(one(w) for w in wanted) if any_of else all(one(w) for w in wanted)
