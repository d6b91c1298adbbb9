"""Volume backup endpoints (dockweb's extension of the Engine API, under /dockweb): back up, list, verify, restore."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Iterator

from engine.api.server import Request, Response, StreamResponse, empty, json_response
from engine.api.streams import error_line, json_line
from engine.errors import EngineError, InvalidParameter, NotFound, SystemFailure
from engine.volumes.backup import COMPRESSIONS, Cancelled

log = logging.getLogger("engine.api")

_CONTENT_TYPES = {"zstd": "application/zstd", "gzip": "application/gzip", "none": "application/x-tar"}
_TICK = 1.0          # seconds between keepalive ticks: the server checks whether the client is still there


def _store(engine: Any):
    store = getattr(engine, "backups", None)
    if store is None:
        raise SystemFailure("this engine has no backup store")
    return store


def _field(body: dict, name: str, default: Any = None) -> Any:
    """Read a body field by its CamelCase name or its lowercase form."""
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object")
    for key in (name, name.lower(), name[0].lower() + name[1:]):
        if key in body:
            return body[key]
    return default


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidParameter(f"{name} must be true or false")


def _streamed(work: Callable[[Callable[[int, int, int], None]], dict], status: str,
              req: Request | None = None) -> StreamResponse:
    """Run work(progress) in a thread and stream its progress, then its result, as JSON lines.

    If the client goes away the operation is cancelled: the next progress call raises Cancelled, so it stops
    and leaves nothing half-done (archives and restores are atomic). The stream notices a closed client when a
    write fails; given req (its body read), each progress call also looks at the connection itself, so the
    last one, made just before an archive is published or a restore swapped in, sees a client that left a
    moment ago instead of committing on its behalf.
    """
    messages: queue.Queue = queue.Queue(maxsize=256)
    cancelled = threading.Event()

    def progress(current: int, total: int, files: int) -> None:
        if cancelled.is_set() or (req is not None and req.client_gone()):
            cancelled.set()
            raise Cancelled("cancelled: the client went away")
        try:
            messages.put_nowait(("progress", {"status": status, "progressDetail": {"current": current,
                                                                                     "total": total},
                                               "files": files}))
        except queue.Full:
            pass        # a slow client misses intermediate progress, never the result

    def run() -> None:
        try:
            messages.put(("done", work(progress)))
        except BaseException as e:      # reported in the stream; the thread must not die silently
            messages.put(("error", e))

    threading.Thread(target=run, name="backup-op", daemon=True).start()

    def chunks() -> Iterator[bytes]:
        try:
            yield json_line({"status": status})
            while True:
                try:
                    kind, item = messages.get(timeout=_TICK)
                except queue.Empty:
                    yield b""       # keepalive tick
                    continue
                if kind == "progress":
                    yield json_line(item)
                elif kind == "done":
                    yield json_line(item)
                    return
                else:
                    if isinstance(item, EngineError):
                        if isinstance(item, SystemFailure):
                            log.error("%s failed", status, exc_info=item)
                        yield error_line(item.message)
                    else:
                        log.error("%s failed", status, exc_info=item)
                        yield error_line(f"internal error: {item}")
                    return
        finally:
            cancelled.set()     # no effect once the work is done; cancels it if the client left early

    return StreamResponse(chunks())


# ---------------------------------------------------------------------------------------------------------------

def create_backup(engine: Any, req: Request, name: str) -> StreamResponse:
    body = req.json()
    compression = _field(body, "Compression", "zstd")
    consistency = _field(body, "Consistency", "pause")
    verify = _field(body, "Verify", "checksum")
    store = _store(engine)
    store.check_args(compression, consistency, verify)
    engine.volumes.get(name)           # 404 now, not inside the stream

    def work(progress) -> dict:
        b = store.create(name, compression, consistency, progress=progress, verify=verify)
        return {"status": "Backup complete", "Backup": b.to_api()}

    return _streamed(work, f"Backing up volume {name}", req)


def list_volume_backups(engine: Any, req: Request, name: str) -> Response:
    store = _store(engine)
    found = store.list(name)
    if not found:
        engine.volumes.get(name)       # no backups and no such volume: 404
    return json_response([b.to_api() for b in found])


def list_backups(engine: Any, req: Request) -> Response:
    return json_response([b.to_api() for b in _store(engine).list(req.arg("volume") or None)])


def inspect_backup(engine: Any, req: Request, bid: str) -> Response:
    return json_response(_store(engine).get(bid).to_api())


def verify_backup(engine: Any, req: Request, bid: str) -> StreamResponse:
    store = _store(engine)
    b = store.get(bid)

    def work(progress) -> dict:
        checked = store.verify(b.id, progress=progress)
        ok = checked.verified.get("Ok")
        return {"status": "Verified" if ok else "Verification failed", "Backup": checked.to_api()}

    return _streamed(work, f"Verifying backup {b.id[:12]}", req)


def delete_backup(engine: Any, req: Request, bid: str) -> Response:
    _store(engine).remove(bid)
    return empty(204)


def restore_backup(engine: Any, req: Request, bid: str) -> StreamResponse:
    store = _store(engine)
    b = store.get(bid)
    body = req.json()
    target = _field(body, "Volume") or b.volume
    if not isinstance(target, str):
        raise InvalidParameter("Volume must be a volume name")
    keep_setid = _bool(_field(body, "KeepSetid", False), "KeepSetid")
    allow_devices = _bool(_field(body, "AllowDevices", False), "AllowDevices")
    store.check_restore(b, target)      # 409 / 400 before the stream starts

    def work(progress) -> dict:
        out = store.restore(b.id, target, keep_setid=keep_setid, allow_devices=allow_devices, progress=progress)
        return {"status": "Restore complete", "Restore": out}

    return _streamed(work, f"Restoring backup {b.id[:12]} into volume {target}", req)


def download_archive(engine: Any, req: Request, bid: str) -> StreamResponse:
    store = _store(engine)
    b = store.get(bid)
    try:
        f = open(store.archive_path(b), "rb", buffering=0)
    except FileNotFoundError:
        raise NotFound(f"No such backup: {bid}") from None

    def chunks() -> Iterator[bytes]:
        with f:
            while True:
                data = f.read(1 << 20)
                if not data:
                    return
                yield data

    headers = {"Content-Disposition": f'attachment; filename="{b.volume}-{b.id[:12]}{COMPRESSIONS[b.compression]}"',
               "X-Dockweb-Checksum": f"sha256:{b.sha256}"}
    return StreamResponse(chunks(), content_type=_CONTENT_TYPES[b.compression], headers=headers)


class _BodyReader:
    """A read()-able view of the request body, for the tar reader."""

    def __init__(self, req: Request) -> None:
        self._it = req.body_stream()
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        if not self._buf:
            self._buf = next(self._it, b"")
        if n < 0 or n >= len(self._buf):
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def readable(self) -> bool:
        return True


def upload_archive(engine: Any, req: Request, name: str) -> StreamResponse:
    store = _store(engine)
    strip = req.int_arg("strip", 0)
    compression = req.arg("compression", "zstd")
    verify = req.arg("verify", "checksum")
    store.check_args(compression, None, verify)
    if strip is None or strip < 0:
        raise InvalidParameter("strip must be zero or more")
    engine.volumes.get(name)
    total = req.content_length if not req.chunked else 0

    def work(progress) -> dict:
        b = store.upload(name, _BodyReader(req), strip_components=strip, compression=compression,
                         progress=progress, total=total, verify=verify)
        return {"status": "Upload complete", "Backup": b.to_api()}

    return _streamed(work, f"Uploading an archive for volume {name}")


_ID = r"(?P<bid>[^/]+)"
_VOL = r"(?P<name>[^/]+)"

ROUTES = [
    ("POST", rf"/dockweb/volumes/{_VOL}/backups", create_backup),
    ("GET", rf"/dockweb/volumes/{_VOL}/backups", list_volume_backups),
    ("POST", rf"/dockweb/volumes/{_VOL}/backups/upload", upload_archive),
    ("GET", r"/dockweb/backups", list_backups),
    ("GET", rf"/dockweb/backups/{_ID}", inspect_backup),
    ("DELETE", rf"/dockweb/backups/{_ID}", delete_backup),
    ("POST", rf"/dockweb/backups/{_ID}/verify", verify_backup),
    ("POST", rf"/dockweb/backups/{_ID}/restore", restore_backup),
    ("GET", rf"/dockweb/backups/{_ID}/archive", download_archive),
]
