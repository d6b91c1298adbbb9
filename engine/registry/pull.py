"""docker pull: resolve a reference to one platform's manifest, fetch verified blobs, store the image whole or not at all."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from typing import Generator

from engine.errors import InvalidParameter, NoSuchImage, NotFound
from engine.images.layers import chain_id
from engine.images.reference import Reference, short_id
from engine.images.store import Image, ImageStore, host_architecture
from engine.registry.auth import AuthConfig
from engine.registry.client import (MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST,
                                    RegistryClient, RegistryError, open_spool)
from engine.registry.config import RegistryHosts

_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}
_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
PROGRESS_INTERVAL = 0.1   # seconds between two Downloading messages of one layer


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    """Return linux/<this host's architecture>."""
    return Platform("linux", host_architecture())


def parse_platform(text: str) -> Platform:
    """Parse os[/arch[/variant]] (or a bare arch) as containerd's platforms.Parse; InvalidParameter if bad."""
    parts = [p.strip().lower() for p in text.strip().split("/")]
    if not parts or any(not p for p in parts) or len(parts) > 3:
        raise InvalidParameter(f'"{text}": unknown operating system or architecture: invalid argument')
    if len(parts) == 1:
        if parts[0] in ("linux", "windows", "darwin", "freebsd"):
            return Platform(parts[0], host_architecture())
        return Platform("linux", _ARCH_ALIASES.get(parts[0], parts[0]))
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "arm64" and variant == "v8":
        variant = ""  # arm64's only variant is the default one
    return Platform(parts[0], arch, variant)


def platform_matches(want: Platform, desc_platform: dict) -> bool:
    """Tell whether a manifest list entry's platform is the wanted one (variant only when asked for)."""
    if not isinstance(desc_platform, dict):
        return False
    arch = _ARCH_ALIASES.get(str(desc_platform.get("architecture", "")), desc_platform.get("architecture", ""))
    variant = str(desc_platform.get("variant") or "")
    if arch == "arm64" and variant == "v8":
        variant = ""
    if desc_platform.get("os") != want.os or arch != want.architecture:
        return False
    return not want.variant or variant == want.variant


def _translate(err: RegistryError, ref: Reference) -> NotFound | RegistryError:
    """Word a registry's refusal as dockerd's translatePullError does."""
    if err.code == "DENIED" or err.status == 403:
        return NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or may require "
                        f"'docker login': {err.message}")
    if err.code == "NAME_UNKNOWN":
        return NotFound(f"repository {ref.familiar_name} not found: {err.message}")
    if err.code in ("MANIFEST_UNKNOWN", "NOT_FOUND") or err.status == 404:
        return NotFound(f"manifest for {ref.familiar()} not found: {err.message}")
    return err


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n}B"


def progress_message(status: str, layer_id: str, current: int, total: int | None) -> dict:
    """Build a Downloading/Pushing message: progressDetail for the CLI, a preformatted bar for others."""
    detail: dict = {"current": current}
    bar = ""
    if total and total > 0:
        detail["total"] = total
        width = 50
        done = min(width, int(width * current / total))
        arrow = ">" if done < width else ""
        bar = f"[{'=' * done}{arrow}{' ' * (width - done - len(arrow))}] {_human(current):>8}/{_human(total)}"
    else:
        bar = f"{_human(current):>8}"
    return {"status": status, "progressDetail": detail, "progress": bar, "id": layer_id}


def _status(status: str, layer_id: str) -> dict:
    return {"status": status, "progressDetail": {}, "id": layer_id}


def _check_digest(value: object, what: str) -> str:
    if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
        raise InvalidParameter(f"invalid manifest: {what} has an unsupported digest {value!r}")
    return value


def resolve_manifest(client: RegistryClient, ref: Reference, want: Platform) -> tuple[str, dict]:
    """Fetch the manifest ref names; follow a manifest list or OCI index to want's entry.

    Return (the digest ref resolved to, which is what RepoDigests records, and the image manifest).
    """
    tag_or_digest = ref.digest or ref.tag
    try:
        body, media_type, digest = client.get_manifest(ref.path, tag_or_digest)
    except RegistryError as e:
        raise _translate(e, ref) from None
    doc = json.loads(body)
    if not isinstance(doc, dict):
        raise InvalidParameter(f"invalid manifest for {ref.familiar()}: not a JSON object")
    if media_type in (MT_DOCKER_LIST, MT_OCI_INDEX) or (
            "manifests" in doc and "layers" not in doc):
        chosen = None
        for entry in doc.get("manifests") or []:
            if isinstance(entry, dict) and platform_matches(want, entry.get("platform") or {}):
                chosen = entry
                break
        if chosen is None:
            raise NotFound(f"no matching manifest for {want} in the manifest list entries")
        sub = _check_digest(chosen.get("digest"), "a manifest list entry")
        try:
            body, media_type, _ = client.get_manifest(ref.path, sub)
        except RegistryError as e:
            raise _translate(e, ref) from None
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise InvalidParameter(f"invalid manifest {sub}: not a JSON object")
    if media_type not in (MT_DOCKER_MANIFEST, MT_OCI_MANIFEST) and not (
            doc.get("schemaVersion") == 2 and "config" in doc and "layers" in doc):
        if doc.get("schemaVersion") == 1:
            raise InvalidParameter(f"{ref.familiar()}: schema 1 manifests are not supported (Docker dropped them too)")
        raise InvalidParameter(f"unsupported manifest media type {media_type!r} for {ref.familiar()}")
    return digest, doc


def pull_messages(store: ImageStore, hosts: RegistryHosts, ref: Reference, auth: dict | None = None,
                  platform: str | None = None) -> Generator[dict, None, Image]:
    """Pull ref, yielding Docker's JSON progress messages; return the stored image.

    The first message comes only once the manifest is known, so a missing repository or refused credentials
    surface as a plain HTTP error. Layers go to a spool file first (digest verified), then into the store
    under a hold: a failure anywhere leaves no layer and no image behind.
    """
    want = parse_platform(platform) if platform else host_platform()
    client = RegistryClient(hosts, ref.domain, AuthConfig.from_dict(auth))
    client.add_scope(ref.path, "pull")
    digest, manifest = resolve_manifest(client, ref, want)
    config_desc = manifest.get("config") or {}
    config_digest = _check_digest(config_desc.get("digest"), "the image config")
    layers = manifest.get("layers") or []
    if not isinstance(layers, list):
        raise InvalidParameter(f"invalid manifest for {ref.familiar()}: layers is not a list")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise InvalidParameter(f"invalid manifest for {ref.familiar()}: layer {i} is not an object")
        _check_digest(layer.get("digest"), f"layer {i}")
        if layer.get("mediaType") not in _LAYER_TYPES:
            raise InvalidParameter(f"unsupported layer media type {layer.get('mediaType')!r} in {ref.familiar()}")
    try:
        config_bytes = client.get_small_blob(ref.path, config_digest)
    except RegistryError as e:
        raise _translate(e, ref) from None
    try:
        config = json.loads(config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    except (ValueError, AttributeError, TypeError):
        raise InvalidParameter(f"invalid image config {config_digest}: not an image config") from None
    if len(diff_ids) != len(layers):
        raise InvalidParameter(f"invalid image config {config_digest}: {len(diff_ids)} diff_ids for "
                               f"{len(layers)} layers")
    for d in diff_ids:
        _check_digest(d, "a rootfs diff_id")
    if platform and (config.get("os") != want.os or
                     _ARCH_ALIASES.get(config.get("architecture", ""), config.get("architecture")) != want.architecture):
        actual = "/".join(p for p in (config.get("os"), config.get("architecture"), config.get("variant")) if p)
        raise NotFound(f"image with reference {ref.familiar()} was found but does not match the specified "
                       f"platform: wanted {want}, actual: {actual}")

    tag_or_digest = ref.digest or ref.tag
    yield {"status": f"Pulling from {ref.path}", "id": tag_or_digest}
    try:
        before = store.resolve(ref.full())
    except NoSuchImage:
        before = None
    spool = store.spool_dir()
    try:
        with store.hold() as held:
            parents, present = [], []
            parent = ""
            for layer, diff_id in zip(layers, diff_ids):
                parents.append(parent)
                parent = chain_id(parent, diff_id)
                present.append(store.has_layer(parent, held))
            for layer, here in zip(layers, present):
                yield _status("Already exists" if here else "Pulling fs layer", short_id(layer["digest"]))
            downloaded = []
            for layer, diff_id, parent, here in zip(layers, diff_ids, parents, present):
                if here:
                    continue
                yield from _pull_layer(store, client, ref, layer, diff_id, parent, held, spool)
                downloaded.append((layer, diff_id))
            image_id = store.commit_image(config_bytes, held)
            if ref.tag:
                store.set_tag(Reference(ref.domain, ref.path, ref.tag), image_id)
            store.set_tag(Reference(ref.domain, ref.path, "", digest), image_id)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    for layer, diff_id in downloaded:
        store.record_blob(diff_id, layer["digest"], ref.name, _LAYER_TYPES[layer["mediaType"]],
                          int(layer.get("size") or 0))
    store.publish(image_id, "pull", ref.familiar())
    yield {"status": f"Digest: {digest}"}
    if before == image_id:
        yield {"status": f"Status: Image is up to date for {ref.familiar()}"}
    else:
        yield {"status": f"Status: Downloaded newer image for {ref.familiar()}"}
    return store.get(image_id)


def _pull_layer(store: ImageStore, client: RegistryClient, ref: Reference, layer: dict, diff_id: str,
                parent: str, held: set[str], spool) -> Generator[dict, None, None]:
    """Download one layer blob to a spool file (verified), then unpack it into the store."""
    digest = layer["digest"]
    lid = short_id(digest)
    size = layer.get("size")
    size = int(size) if isinstance(size, int) and size >= 0 else None
    with open_spool(spool) as f:
        last = 0.0
        got = 0
        for got in client.download_blob(ref.path, digest, size, f):
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                last = now
                yield progress_message("Downloading", lid, got, size)
        yield progress_message("Downloading", lid, got, size)
        yield _status("Verifying Checksum", lid)
        yield _status("Download complete", lid)
        yield progress_message("Extracting", lid, got, size)
        f.seek(0)
        store.add_layer(f, parent, held, expect_diff_id=diff_id)
    yield _status("Pull complete", lid)
