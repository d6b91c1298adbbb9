"""docker save and docker load: image archives in the OCI layout with dockerd's manifest.json, and the legacy one."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from engine.errors import InvalidParameter
from engine.images import reference
from engine.images.layers import CHUNK, IterReader, apply_tar, chain_id, is_compressed
from engine.images.reference import Reference
from engine.images.store import Image, ImageStore, _remove_path, host_architecture

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
BLOCK = 512


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# -- save --------------------------------------------------------------------------------------------------------

def resolve_save_names(store: ImageStore, names: list[str]) -> dict[str, list[Reference]]:
    """Map image ids to the tags to export for `docker save` names, as dockerd picks them."""
    assocs: dict[str, list[Reference]] = {}

    def add(iid: str, ref: Reference | None) -> None:
        refs = assocs.setdefault(iid, [])
        if ref is not None and ref not in refs:
            refs.append(ref)

    if not names:
        raise InvalidParameter("no images specified")
    for name in names:
        if reference.digest_of(name):
            add(store.resolve(name), None)
            continue
        named = reference.parse(name)
        if named.is_name_only():
            # A bare repository exports every tag of it; failing that, it may be a short id.
            tagged = [r for iid in {im.id for im in store.list()} for r in store.references(iid)
                      if r.name == named.name and r.tag]
            for r in tagged:
                add(store.resolve(r.full()), r)
            if not tagged:
                add(store.resolve(name), None)
            continue
        iid = store.resolve(name)
        key = named if named.digest else named.with_default_tag()
        add(iid, key if key.full() in {r.full() for r in store.references(iid)} else None)
    return assocs


def _tar_header(name: str, size: int, is_dir: bool = False) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = 0 if is_dir else size
    ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    ti.mode = 0o755 if is_dir else 0o644
    ti.mtime = 0  # deterministic archives: the same images give the same bytes
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _tar_bytes(name: str, data: bytes) -> Iterator[bytes]:
    yield _tar_header(name, len(data)) + data + b"\0" * (-len(data) % BLOCK)


def _tar_file(name: str, path: Path) -> Iterator[bytes]:
    size = path.stat().st_size
    yield _tar_header(name, size)
    sent = 0
    with open(path, "rb") as f:
        while sent < size:
            chunk = f.read(min(CHUNK, size - sent))
            if not chunk:
                raise OSError(f"{path} shrank while it was being saved")
            sent += len(chunk)
            yield chunk
    pad = -size % BLOCK
    if pad:
        yield b"\0" * pad


def save(store: ImageStore, names: list[str]) -> Iterator[bytes]:
    """Resolve names now (NoSuchImage before any byte), then return a generator of the archive's bytes."""
    assocs = resolve_save_names(store, names)
    images = {iid: store.get(iid) for iid in assocs}
    return _save_stream(store, images, assocs)


def _save_stream(store: ImageStore, images: dict[str, Image], assocs: dict[str, list[Reference]]) -> Iterator[bytes]:
    blobs: dict[str, tuple[Path | None, bytes | None]] = {}   # hex -> a file or in-memory bytes
    index_manifests, legacy, repositories = [], [], {}
    for iid, image in images.items():
        refs = assocs[iid]
        config_path = store.config_blob(iid)
        layer_descs = []
        for diff_id in image.diff_ids:
            path = store.layer_blob(diff_id)
            blobs[diff_id.split(":")[1]] = (path, None)
            layer_descs.append({"mediaType": MT_OCI_LAYER, "digest": diff_id, "size": path.stat().st_size})
        blobs[iid.split(":")[1]] = (config_path, None)
        manifest = _dumps({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                           "config": {"mediaType": MT_OCI_CONFIG, "digest": iid,
                                      "size": config_path.stat().st_size},
                           "layers": layer_descs})
        manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        blobs[manifest_digest.split(":")[1]] = (None, manifest)
        desc = {"mediaType": MT_OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}
        tags = [r for r in refs if r.tag]
        for r in tags:
            index_manifests.append({**desc, "annotations": {ANNOTATION_IMAGE_NAME: r.full(),
                                                            ANNOTATION_REF_NAME: r.tag}})
        if not tags:
            index_manifests.append(desc)
        legacy.append({"Config": f"blobs/sha256/{iid.split(':')[1]}",
                       "RepoTags": [r.familiar() for r in tags] or None,
                       "Layers": [f"blobs/sha256/{d.split(':')[1]}" for d in image.diff_ids]})
        if image.diff_ids:
            for r in tags:
                repositories.setdefault(r.familiar_name, {})[r.tag] = image.diff_ids[-1].split(":")[1]

    # dockerd writes a directory and tars it in name order; streaming the same order keeps archives alike.
    yield _tar_header("blobs/", 0, is_dir=True)
    yield _tar_header("blobs/sha256/", 0, is_dir=True)
    for hexd in sorted(blobs):
        path, data = blobs[hexd]
        if path is not None:
            yield from _tar_file(f"blobs/sha256/{hexd}", path)
        else:
            yield from _tar_bytes(f"blobs/sha256/{hexd}", data or b"")
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": index_manifests}
    yield from _tar_bytes("index.json", _dumps(index) + b"\n")
    yield from _tar_bytes("manifest.json", _dumps(legacy) + b"\n")
    yield from _tar_bytes("oci-layout", _dumps({"imageLayoutVersion": "1.0.0"}))
    if repositories:
        yield from _tar_bytes("repositories", _dumps(repositories) + b"\n")
    yield b"\0" * (BLOCK * 2)
    for iid, refs in assocs.items():
        store.publish(iid, "save", refs[0].familiar() if refs else iid)


# -- load --------------------------------------------------------------------------------------------------------

@dataclass
class _Planned:
    config_bytes: bytes
    layers: list[Path]
    tags: list[Reference] = field(default_factory=list)
    legacy_config: dict | None = None   # a v1 archive: the config is completed once the layers are hashed


class _Spool:
    """An unpacked archive: every path lookup stays inside it, whatever symlinks the archive holds."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, name: str, what: str) -> Path:
        p = (self.root / name.lstrip("/")).resolve()
        if p != self.root and self.root not in p.parents:
            raise InvalidParameter(f"invalid archive: {what} {name!r} points outside of the archive")
        if not p.is_file():
            raise InvalidParameter(f"invalid archive: {what} {name!r} is missing")
        return p

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def json(self, name: str, what: str) -> object:
        try:
            return json.loads(self.path(name, what).read_bytes())
        except ValueError as e:
            raise InvalidParameter(f"invalid archive: {what} {name!r} is not valid JSON: {e}") from None

    def blob(self, digest: str, what: str) -> Path:
        algo, _, hexd = str(digest).partition(":")
        if algo != "sha256" or len(hexd) != 64:
            raise InvalidParameter(f"invalid archive: {what} has a bad digest {digest!r}")
        return self.path(f"blobs/sha256/{hexd}", what)


def _plan_docker_manifest(spool: _Spool) -> list[_Planned]:
    manifest = spool.json("manifest.json", "manifest")
    if not isinstance(manifest, list):
        raise InvalidParameter("invalid archive: manifest.json must be a list")
    plans = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidParameter("invalid archive: a manifest.json entry has no Config")
        layers = entry.get("Layers") or []
        tags = [reference.parse_tagged(t) for t in entry.get("RepoTags") or []]
        plans.append(_Planned(spool.path(entry["Config"], "config").read_bytes(),
                              [spool.path(name, "layer") for name in layers], tags))
    return plans


def _pick_manifest(spool: _Spool, desc: dict, depth: int = 0) -> dict:
    """Follow an OCI index (or Docker manifest list) to the manifest for this host's platform."""
    if depth > 4:
        raise InvalidParameter("invalid archive: index nesting is too deep")
    doc = spool.json(f"blobs/sha256/{str(desc.get('digest', '')).partition(':')[2]}", "manifest")
    if not isinstance(doc, dict):
        raise InvalidParameter("invalid archive: a manifest is not a JSON object")
    if doc.get("mediaType") in (MT_OCI_INDEX, MT_DOCKER_LIST) or "manifests" in doc:
        candidates = [m for m in doc.get("manifests") or [] if isinstance(m, dict)]
        arch = host_architecture()
        for m in candidates:
            plat = m.get("platform") or {}
            if plat.get("os", "linux") == "linux" and plat.get("architecture", arch) == arch:
                return _pick_manifest(spool, m, depth + 1)
        raise InvalidParameter(f"invalid archive: no image for linux/{arch} in the index")
    return doc


def _plan_oci_index(spool: _Spool) -> list[_Planned]:
    index = spool.json("index.json", "index")
    plans = []
    for desc in (index.get("manifests") if isinstance(index, dict) else None) or []:
        manifest = _pick_manifest(spool, desc)
        config = manifest.get("config") or {}
        layers = [spool.blob(layer.get("digest", ""), "layer") for layer in manifest.get("layers") or []]
        annotations = desc.get("annotations") or {}
        tags = []
        name = annotations.get(ANNOTATION_IMAGE_NAME) or annotations.get(ANNOTATION_REF_NAME) or ""
        if name and ("/" in name or ":" in name):
            try:
                tags.append(reference.parse_tagged(name))
            except InvalidParameter:
                pass  # a bare OCI ref.name such as "latest" names no repository: load untagged
        plans.append(_Planned(spool.blob(config.get("digest", ""), "config").read_bytes(), layers, tags))
    if not plans:
        raise InvalidParameter("invalid archive: index.json lists no image")
    return plans


_V1_DROP = ("id", "parent", "Size", "parent_id", "layer_id", "throwaway", "checksum")


def _plan_legacy(spool: _Spool) -> list[_Planned]:
    """Rebuild image configs from v1 directories (<id>/json, <id>/layer.tar) as dockerd's legacy loader."""
    repos = spool.json("repositories", "repositories file")
    if not isinstance(repos, dict):
        raise InvalidParameter("invalid archive: repositories must be a JSON object")
    by_leaf: dict[str, list[Reference]] = {}
    for name, tags in repos.items():
        for tag, v1id in (tags or {}).items():
            by_leaf.setdefault(v1id, []).append(reference.repo_tag(name, tag))
    plans = []
    for leaf, tags in by_leaf.items():
        chain, v1id = [], leaf
        while v1id:
            if len(chain) > 256 or "/" in v1id or v1id.startswith("."):
                raise InvalidParameter(f"invalid archive: bad parent chain at {v1id!r}")
            doc = spool.json(f"{v1id}/json", "v1 image")
            chain.append((v1id, doc))
            v1id = doc.get("parent", "") if isinstance(doc, dict) else ""
        chain.reverse()
        history, layers = [], []
        for v1id, doc in chain:
            has_layer = spool.exists(f"{v1id}/layer.tar") and not doc.get("throwaway")
            if has_layer:
                layers.append(spool.path(f"{v1id}/layer.tar", "layer"))
            entry = {"created": doc.get("created", ""), "author": doc.get("author", ""),
                     "created_by": " ".join((doc.get("container_config") or {}).get("Cmd") or []),
                     "comment": doc.get("comment", "")}
            if not has_layer:
                entry["empty_layer"] = True
            history.append({k: v for k, v in entry.items() if v})
        config = {k: v for k, v in chain[-1][1].items() if k not in _V1_DROP}
        config["history"] = history
        config["rootfs"] = {"type": "layers", "diff_ids": []}   # filled in when the layers are hashed
        plans.append(_Planned(b"", layers, tags, config))
    return plans


def _plan(spool: _Spool) -> list[_Planned]:
    if spool.exists("manifest.json"):
        return _plan_docker_manifest(spool)
    if spool.exists("index.json"):
        return _plan_oci_index(spool)
    if spool.exists("repositories"):
        return _plan_legacy(spool)
    raise InvalidParameter("invalid archive: no manifest.json, index.json or repositories file found "
                           "(is this the output of docker save?)")


def load(store: ImageStore, body: Iterable[bytes] | BinaryIO) -> list[str]:
    """Load a docker save archive (maybe compressed); return the lines to report; nothing is kept on failure."""
    stream = IterReader(body) if not hasattr(body, "read") else body
    spool_root = store.spool_dir()
    lines: list[str] = []
    try:
        try:
            # No digest of the archive itself: every blob in it is verified on its own below.
            apply_tar(stream, spool_root, xattr_prefix="user.dockweb.", digest=False)  # type: ignore[arg-type]
        except InvalidParameter as e:
            raise InvalidParameter(f"invalid archive: {e.message.removeprefix('invalid layer tar: ')}") from None
        spool = _Spool(spool_root)
        plans = _plan(spool)
        with store.hold() as held:
            committed = []
            for plan in plans:
                legacy = plan.legacy_config
                expected = [] if legacy is not None else _diff_ids(plan)
                parent, diff_ids = "", []
                for i, path in enumerate(plan.layers):
                    want = expected[i] if expected else None
                    if want and store.has_layer(chain_id(parent, want), held):
                        layer_chain, diff_id = chain_id(parent, want), want
                    else:
                        # An uncompressed layer file is the blob as it is: linked into the store, not copied.
                        blob_file = None if is_compressed(path) else path
                        with open(path, "rb") as f:
                            layer = store.add_layer(f, parent, held, expect_diff_id=want, blob_file=blob_file)
                        layer_chain, diff_id = layer.chain_id, layer.diff_id
                    parent = layer_chain
                    diff_ids.append(diff_id)
                config_bytes = plan.config_bytes
                if legacy is not None:
                    legacy["rootfs"]["diff_ids"] = diff_ids
                    config_bytes = _dumps(legacy)
                committed.append((config_bytes, plan.tags))
            # Commit only once every layer of every image is in: a bad archive leaves no half of itself.
            for config_bytes, tags in committed:
                iid = store.commit_image(config_bytes, held)
                for ref in tags:
                    old = store.set_tag(ref, iid)
                    if old:
                        lines.append(f"The image {ref.familiar()} already exists, renaming the old one with ID "
                                     f"{old} to empty string")
                    lines.append(f"Loaded image: {ref.familiar()}")
                if not tags:
                    lines.append(f"Loaded image ID: {iid}")
                store.publish(iid, "load", tags[0].familiar() if tags else iid)
    finally:
        _remove_path(spool_root)
    return lines


def _diff_ids(plan: _Planned) -> list[str]:
    try:
        config = json.loads(plan.config_bytes)
    except ValueError as e:
        raise InvalidParameter(f"invalid archive: image config is not valid JSON: {e}") from None
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config, dict) else None
    if not isinstance(diff_ids, list):
        raise InvalidParameter("invalid archive: image config has no rootfs.diff_ids")
    if len(diff_ids) != len(plan.layers):
        raise InvalidParameter(f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                               f"got {len(plan.layers)}")
    return diff_ids
