"""docker push: upload an image's layers (gzip-compressed, skipped or mounted when the registry has them) and its manifest."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import time
from typing import BinaryIO, Generator

from engine.errors import InvalidParameter, NotFound
from engine.images.reference import Reference, short_id
from engine.images.store import Image, ImageStore, Layer
from engine.registry.auth import AuthConfig
from engine.registry.client import CHUNK, MT_DOCKER_MANIFEST, MT_OCI_MANIFEST, RegistryClient, open_spool
from engine.registry.config import RegistryHosts
from engine.registry.pull import PROGRESS_INTERVAL, progress_message

MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_LAYER_TYPES = {"gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
OCI_LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
                   "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
                   "none": "application/vnd.oci.image.layer.v1.tar"}
GZIP_LEVEL = 6   # Go's gzip.DefaultCompression, which dockerd uses


def push_targets(store: ImageStore, ref: Reference) -> list[tuple[Reference, str]]:
    """Return the (tag reference, image id) pairs to push: one tag, or every tag of the repository."""
    if ref.digest:
        raise InvalidParameter(f"cannot push a digest reference ({ref.familiar()}): push a tag")
    refs = []
    if ref.tag:
        refs = [ref]
    else:
        for image in store.list():
            refs += [r for r in store.references(image.id) if r.name == ref.name and r.tag and not r.digest]
    out = []
    for r in sorted(set(refs), key=lambda r: r.tag):
        try:
            out.append((r, store.resolve(r.full())))
        except NotFound:
            continue
    if not out:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    return out


def push_messages(store: ImageStore, hosts: RegistryHosts, ref: Reference, auth: dict | None = None,
                  targets: list[tuple[Reference, str]] | None = None) -> Generator[dict, None, str]:
    """Push ref (a tag, or all tags of a repository), yielding Docker's messages; return the last manifest digest."""
    targets = targets if targets is not None else push_targets(store, ref)
    yield {"status": f"The push refers to repository [{ref.name}]"}
    client = RegistryClient(hosts, ref.domain, AuthConfig.from_dict(auth))
    client.add_scope(ref.path, "pull,push")
    pushed: dict[str, dict] = {}       # diff id -> descriptor, shared by the tags of one push
    digest = ""
    for tag_ref, image_id in targets:
        image = store.get(image_id)
        digest = yield from _push_image(store, client, tag_ref, image, pushed)
    return digest


def _push_image(store: ImageStore, client: RegistryClient, ref: Reference, image: Image,
                pushed: dict[str, dict]) -> Generator[dict, None, str]:
    layers = store.layers(image)
    for layer in reversed(layers):
        yield {"status": "Preparing", "progressDetail": {}, "id": short_id(layer.diff_id)}
    descriptors = []
    for layer in layers:
        if layer.diff_id not in pushed:
            pushed[layer.diff_id] = yield from _push_layer(store, client, ref, layer)
        descriptors.append(pushed[layer.diff_id])

    config_path = store.config_blob(image.id)
    config_size = config_path.stat().st_size
    if client.blob_size(ref.path, image.id) is None:
        with open(config_path, "rb") as f:
            for _ in client.upload_blob(ref.path, f, config_size, image.id):
                pass

    # Docker's schema2 for gzip layers; OCI when a layer is zstd or uncompressed (schema2 has no type for those).
    if all(d["compression"] == "gzip" for d in descriptors):
        manifest_type, config_type, types = MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG, DOCKER_LAYER_TYPES
    else:
        manifest_type, config_type, types = MT_OCI_MANIFEST, MT_OCI_CONFIG, OCI_LAYER_TYPES
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "size": config_size, "digest": image.id},
        "layers": [{"mediaType": types[d["compression"]], "size": d["size"], "digest": d["digest"]}
                   for d in descriptors],
    }
    body = json.dumps(manifest, indent=3).encode()
    digest = client.put_manifest(ref.path, ref.tag, body, manifest_type)
    store.set_tag(Reference(ref.domain, ref.path, "", digest), image.id)
    store.publish(image.id, "push", ref.familiar())
    yield {"status": f"{ref.tag}: digest: {digest} size: {len(body)}"}
    yield {"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest, "Size": len(body)}}
    return digest


def _push_layer(store: ImageStore, client: RegistryClient, ref: Reference,
                layer: Layer) -> Generator[dict, None, dict]:
    """Make sure the repository has the layer; return its descriptor {digest, size, compression}."""
    lid = short_id(layer.diff_id)
    sources = [s for s in store.blob_sources(layer.diff_id)
               if s.get("repository", "").startswith(ref.domain + "/") and s.get("digest")]
    for s in sources:
        if s["repository"] == ref.name:
            size = client.blob_size(ref.path, s["digest"])
            if size is not None:
                yield {"status": "Layer already exists", "progressDetail": {}, "id": lid}
                return _descriptor(s, size)
    upload_location = None
    for s in sources:
        if s["repository"] == ref.name:
            continue
        from_path = s["repository"][len(ref.domain) + 1:]
        client.add_scope(from_path, "pull")
        mounted, location = client.mount_blob(ref.path, s["digest"], from_path)
        if mounted:
            store.record_blob(layer.diff_id, s["digest"], ref.name, s.get("compression", "gzip"),
                              int(s.get("size") or 0))
            yield {"status": f"Mounted from {from_path}", "progressDetail": {}, "id": lid}
            return _descriptor(s, int(s.get("size") or 0))
        upload_location = upload_location or location

    spool = store.spool_dir()
    try:
        with open_spool(spool) as f:
            digest, size = _gzip_layer(store.layer_blob(layer.diff_id), f)
            if client.blob_size(ref.path, digest) is not None:
                store.record_blob(layer.diff_id, digest, ref.name, "gzip", size)
                yield {"status": "Layer already exists", "progressDetail": {}, "id": lid}
                return {"digest": digest, "size": size, "compression": "gzip"}
            last = 0.0
            for sent in client.upload_blob(ref.path, f, size, digest, upload_location):
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL or sent == size:
                    last = now
                    yield progress_message("Pushing", lid, sent, size)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    store.record_blob(layer.diff_id, digest, ref.name, "gzip", size)
    yield {"status": "Pushed", "progressDetail": {}, "id": lid}
    return {"digest": digest, "size": size, "compression": "gzip"}


def _descriptor(source: dict, size: int) -> dict:
    return {"digest": source["digest"], "size": size if size >= 0 else int(source.get("size") or 0),
            "compression": source.get("compression") or "gzip"}


def _gzip_layer(tar_path, out: BinaryIO) -> tuple[str, int]:
    """Compress an uncompressed layer tar into out (deterministic: no name, mtime 0); return digest and size."""
    sha = hashlib.sha256()

    class _Hashing:
        def write(self, data: bytes) -> int:
            sha.update(data)
            return out.write(data)

        def flush(self) -> None:
            out.flush()

    with open(tar_path, "rb") as src:
        with gzip.GzipFile(filename="", mode="wb", fileobj=_Hashing(), compresslevel=GZIP_LEVEL,  # type: ignore[arg-type]
                           mtime=0) as gz:
            shutil.copyfileobj(src, gz, CHUNK)
    out.flush()
    size = out.tell()
    out.seek(0)
    return "sha256:" + sha.hexdigest(), size

