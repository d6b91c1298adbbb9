"""docker pull: resolve a reference to one platform's manifest, fetch verified blobs, store the image whole or not at all."""

from __future__ import annotations

import json
import logging
import queue
import re
import shutil
import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Generator, Iterator

from engine.errors import InvalidParameter, NoSuchImage, NotFound
from engine.images.layers import chain_id
from engine.images.reference import Reference, short_id
from engine.images.store import Image, ImageStore, host_architecture
from engine.registry.auth import AuthConfig
from engine.registry.client import (MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST, Aborted,
                                    RegistryClient, RegistryError)
from engine.registry.config import RegistryHosts

log = logging.getLogger(__name__)

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
MAX_CONCURRENT_DOWNLOADS = 3   # dockerd's max-concurrent-downloads default


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
    surface as a plain HTTP error. Layers go to spool files first (digest verified), then into the store
    under a hold: a failure anywhere leaves no layer and no image behind.
    """
    client = _client(hosts, ref, auth)
    image, updated = yield from _pull_tag(store, client, ref, platform)
    yield _final_status(ref, updated)
    return image


def pull_all_tags_messages(store: ImageStore, hosts: RegistryHosts, ref: Reference, auth: dict | None = None,
                           platform: str | None = None) -> Generator[dict, None, list[Image]]:
    """Pull every tag of the repository ref names (docker pull -a), one after the other, as dockerd does.

    Each tag gets its "Pulling from" and "Digest:" lines; one status line for the repository closes the stream.
    """
    if not ref.is_name_only():
        raise InvalidParameter(f"pulling all tags needs a repository name without tag or digest, "
                               f"not {ref.familiar()}")
    client = _client(hosts, ref, auth)
    try:
        tags = client.list_tags(ref.path)
    except RegistryError as e:
        raise _translate(e, ref) from None
    if not tags:
        raise NotFound(f"repository {ref.familiar_name} has no tags to pull")
    images, updated = [], False
    for tag in tags:
        image, tag_updated = yield from _pull_tag(store, client, Reference(ref.domain, ref.path, tag), platform)
        images.append(image)
        updated = updated or tag_updated
    yield _final_status(ref, updated)
    return images


def _client(hosts: RegistryHosts, ref: Reference, auth: dict | None) -> RegistryClient:
    client = RegistryClient(hosts, ref.domain, AuthConfig.from_dict(auth))
    client.add_scope(ref.path, "pull")
    return client


def _final_status(ref: Reference, updated: bool) -> dict:
    if updated:
        return {"status": f"Status: Downloaded newer image for {ref.familiar()}"}
    return {"status": f"Status: Image is up to date for {ref.familiar()}"}


def _pull_tag(store: ImageStore, client: RegistryClient, ref: Reference,
              platform: str | None) -> Generator[dict, None, tuple[Image, bool]]:
    """Pull one tag or digest up to its "Digest:" line; return the image and whether ref now names another one."""
    want = parse_platform(platform) if platform else host_platform()
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

    yield {"status": f"Pulling from {ref.path}", "id": ref.digest or ref.tag}
    try:
        before = store.resolve(ref.full())
    except NoSuchImage:
        before = None
    spool = store.spool_dir()
    try:
        with store.hold() as held:
            jobs, parent = [], ""
            for layer, diff_id in zip(layers, diff_ids):
                chain = chain_id(parent, diff_id)
                size = layer.get("size")
                jobs.append(_LayerJob(layer["digest"], diff_id, parent,
                                      size if isinstance(size, int) and size >= 0 else None,
                                      _LAYER_TYPES[layer["mediaType"]], store.has_layer(chain, held)))
                parent = chain
            yield from _layer_announcements(jobs)
            todo = [job for job in jobs if not job.present]
            if todo:
                yield from _fetch_and_apply(store, client, ref, todo, held, spool)
            image_id = store.commit_image(config_bytes, held)
            if ref.tag:
                store.set_tag(Reference(ref.domain, ref.path, ref.tag), image_id)
            store.set_tag(Reference(ref.domain, ref.path, "", digest), image_id)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    for job in todo:
        store.record_blob(job.diff_id, job.digest, ref.name, job.compression, job.size or 0)
    store.publish(image_id, "pull", ref.familiar())
    yield {"status": f"Digest: {digest}"}
    return store.get(image_id), before != image_id


@dataclass
class _LayerJob:
    """One layer of the manifest: its blob, what it unpacks to, and on top of which chain."""

    digest: str
    diff_id: str
    parent: str               # chain id of the layers below, "" for the first
    size: int | None          # as the manifest gives it
    compression: str
    present: bool             # unpacked in the store already (and held for this pull)

    @property
    def id(self) -> str:
        return short_id(self.digest)


def _layer_announcements(jobs: list[_LayerJob]) -> Iterator[dict]:
    """Say what happens to each layer before any transfer starts, as dockerd's first lines do."""
    announced: set[str] = set()
    for job in jobs:
        if job.id not in announced:
            announced.add(job.id)
            yield _status("Already exists" if job.present else "Pulling fs layer", job.id)
    waiting = list(dict.fromkeys(job.id for job in jobs if not job.present))[MAX_CONCURRENT_DOWNLOADS:]
    for lid in waiting:
        yield _status("Waiting", lid)


class _Cancelled(Exception):
    """Raised inside a worker thread when the pull is being abandoned; never reported."""


_DONE = object()


def _fetch_and_apply(store: ImageStore, client: RegistryClient, ref: Reference, todo: list[_LayerJob],
                     held: set[str], spool: Path) -> Generator[dict, None, None]:
    """Download the blobs MAX_CONCURRENT_DOWNLOADS at a time while one thread unpacks them in layer order.

    Workers put their messages on one queue that this generator yields from, so the stream stays in order
    per layer (every download message precedes its layer's "Extracting"). The first failure anywhere, or
    the consumer closing the generator, cancels the rest; all threads have stopped before this returns,
    so the caller's hold can collect whatever was unpacked.
    """
    events: queue.Queue = queue.Queue()
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_DOWNLOADS, thread_name_prefix="pull-download")
    downloads: dict[str, Future] = {}
    for job in todo:
        if job.digest not in downloads:
            downloads[job.digest] = pool.submit(_reporting, events, cancel, _download, client, ref, job,
                                                spool / job.digest.split(":", 1)[1], events, cancel)
    applier = threading.Thread(target=_reporting, name="pull-apply",
                               args=(events, cancel, _apply_in_order, store, todo, downloads, held, spool,
                                     events, cancel))
    applier.start()
    finished = False
    try:
        while True:
            item = events.get()
            if item is _DONE:
                finished = True
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not finished:
            # Stop the other transfers now rather than at their next chunk: a stalled one could wait a minute.
            cancel.set()
            client.abort()
        pool.shutdown(wait=True, cancel_futures=True)
        applier.join()


def _reporting(events: queue.Queue, cancel: threading.Event, fn, *args) -> None:
    """Run fn in a worker; its first real failure cancels the pull and goes to the queue for the generator."""
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 - any failure of a worker must reach the generator
        if not cancel.is_set():
            cancel.set()
            events.put(e)
        elif not isinstance(e, (_Cancelled, Aborted, CancelledError)):
            log.info("pull worker failed after the pull was cancelled: %s", e)


def _download(client: RegistryClient, ref: Reference, job: _LayerJob, path: Path, events: queue.Queue,
              cancel: threading.Event) -> None:
    """Download one blob into path (resuming after a dropped connection), its digest verified."""
    last, got = 0.0, 0
    with open(path, "wb") as f:
        for got in client.download_blob(ref.path, job.digest, job.size, f):
            if cancel.is_set():
                raise _Cancelled()
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL:
                last = now
                events.put(progress_message("Downloading", job.id, got, job.size))
    events.put(progress_message("Downloading", job.id, got, job.size))
    events.put(_status("Verifying Checksum", job.id))
    events.put(_status("Download complete", job.id))


def _apply_in_order(store: ImageStore, todo: list[_LayerJob], downloads: dict[str, Future], held: set[str],
                    spool: Path, events: queue.Queue, cancel: threading.Event) -> None:
    """Unpack the downloaded blobs bottom layer first (each layer's parent must be in the store), then _DONE."""
    uses: dict[str, int] = {}
    for job in todo:
        uses[job.digest] = uses.get(job.digest, 0) + 1
    for job in todo:
        downloads[job.digest].result()   # re-raises a download's failure; the worker has reported it
        if cancel.is_set():
            raise _Cancelled()
        path = spool / job.digest.split(":", 1)[1]
        size = path.stat().st_size
        with open(path, "rb") as f:
            store.add_layer(_ExtractReader(f, job.id, size, events, cancel), job.parent, held,
                            expect_diff_id=job.diff_id)
        uses[job.digest] -= 1
        if not uses[job.digest]:
            path.unlink()    # the spool holds at most the blobs not unpacked yet
        events.put(_status("Pull complete", job.id))
    events.put(_DONE)


class _ExtractReader:
    """The spooled blob as add_layer reads it: reports Extracting progress, stops when the pull is cancelled."""

    def __init__(self, f: BinaryIO, layer_id: str, size: int, events: queue.Queue,
                 cancel: threading.Event) -> None:
        self.f, self.layer_id, self.size, self.events, self.cancel = f, layer_id, size, events, cancel
        self.done, self.last = 0, 0.0
        events.put(progress_message("Extracting", layer_id, 0, size))

    def read(self, n: int = -1) -> bytes:
        if self.cancel.is_set():
            raise _Cancelled()
        data = self.f.read(n)
        self.done += len(data)
        now = time.monotonic()
        if now - self.last >= PROGRESS_INTERVAL or self.done == self.size:
            self.last = now
            self.events.put(progress_message("Extracting", self.layer_id, self.done, self.size))
        return data

    def readable(self) -> bool:
        return True
