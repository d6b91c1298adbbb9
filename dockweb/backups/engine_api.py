"""dockweb's backup endpoints of a host's engine (/dockweb/...), called through docker-py's low-level client."""

from __future__ import annotations

from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterable, Iterator

from dockweb.core import client
from dockweb.core.errors import EngineError

# (bytes done, bytes total, files done)
Progress = Callable[[int, int, int], None]


def _api(host):
    return client.engine_client(host).api


def _follow(api, response, progress: Progress | None) -> dict:
    """Read the engine's JSON message stream; return its last message, raise on an error message."""
    api._raise_for_status(response)
    last: dict = {}
    for item in api._stream_helper(response, decode=True):
        if item.get("error"):
            raise EngineError(item["error"])
        detail = item.get("progressDetail")
        if detail and progress is not None:
            progress(int(detail.get("current") or 0), int(detail.get("total") or 0), int(item.get("files") or 0))
        last = item
    return last


def _result(doc: dict, key: str, doing: str) -> dict:
    if key not in doc:
        raise EngineError(f"the engine's answer to {doing} ended without a result")
    return doc[key]


def create_backup(host, volume: str, *, compression: str, consistency: str, progress: Progress | None = None,
                  verify: str = "checksum") -> dict:
    """Back the volume up into the engine's store; return the engine's backup (Id, Size, Files, Checksums...)."""
    api = _api(host)
    doing = f"backing up volume {volume}"
    with client.calling(host, doing):
        res = api._post_json(api._url("/dockweb/volumes/{0}/backups", volume), stream=True,
                             data={"Compression": compression, "Consistency": consistency, "Verify": verify})
        return _result(_follow(api, res, progress), "Backup", doing)


def verify_backup(host, engine_id: str, progress: Progress | None = None) -> dict:
    api = _api(host)
    doing = f"verifying backup {engine_id[:12]}"
    with client.calling(host, doing):
        res = api._post(api._url("/dockweb/backups/{0}/verify", engine_id), stream=True)
        return _result(_follow(api, res, progress), "Backup", doing)


def restore_backup(host, engine_id: str, volume: str, progress: Progress | None = None) -> dict:
    api = _api(host)
    doing = f"restoring backup {engine_id[:12]} into volume {volume}"
    with client.calling(host, doing):
        res = api._post_json(api._url("/dockweb/backups/{0}/restore", engine_id), stream=True,
                             data={"Volume": volume})
        return _result(_follow(api, res, progress), "Restore", doing)


def inspect_backup(host, engine_id: str) -> dict:
    api = _api(host)
    with client.calling(host, f"inspecting backup {engine_id[:12]}"):
        return api._result(api._get(api._url("/dockweb/backups/{0}", engine_id)), json=True)


def delete_backup(host, engine_id: str) -> None:
    api = _api(host)
    with client.calling(host, f"deleting backup {engine_id[:12]}"):
        api._raise_for_status(api._delete(api._url("/dockweb/backups/{0}", engine_id)))


@contextmanager
def download(host, engine_id: str) -> Iterator[tuple[BinaryIO, dict]]:
    """Yield a reader of the backup's archive as the engine stores it, and the response headers."""
    api = _api(host)
    with client.calling(host, f"downloading backup {engine_id[:12]}"):
        res = api._get(api._url("/dockweb/backups/{0}/archive", engine_id), stream=True)
        api._raise_for_status(res)
        try:
            yield res.raw, dict(res.headers)
        finally:
            res.close()


def upload(host, volume: str, body: Iterable[bytes], *, strip: int = 0, compression: str = "zstd",
           progress: Progress | None = None) -> dict:
    """Send an archive (plain, gzip, zstd, bzip2 or xz tar) as a backup of volume; return the engine's backup."""
    api = _api(host)
    doing = f"uploading an archive for volume {volume}"
    with client.calling(host, doing):
        res = api._post(api._url("/dockweb/volumes/{0}/backups/upload", volume), data=body, stream=True,
                        params={"strip": strip, "compression": compression},
                        headers={"Content-Type": "application/x-tar"})
        return _result(_follow(api, res, progress), "Backup", doing)


def containers_using(host, volume: str) -> list[dict]:
    """Return [{"id", "name", "running"}] for the containers that mount volume."""
    api = _api(host)
    with client.calling(host, f"listing the containers using volume {volume}"):
        found = api.containers(all=True, filters={"volume": volume})
    return [{"id": c["Id"], "name": (c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/"),
             "running": c.get("State") == "running"} for c in found]


def chunks(reader: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while data := reader.read(size):
        yield data
