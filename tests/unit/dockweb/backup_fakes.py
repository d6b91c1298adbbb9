"""A fake of the engine's /dockweb backup endpoints (dockweb.backups.engine_api), for the backup unit tests."""

from __future__ import annotations

import hashlib
import io
import itertools
from contextlib import contextmanager

from dockweb.core.errors import EngineError, EngineNotFound


class FakeBackupEngine:
    """Backups as bytes in a dict; records every call; `fail` makes the next create raise that message."""

    def __init__(self) -> None:
        self.archives: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.restored: dict[str, bytes] = {}
        self.users: dict[str, list[dict]] = {}
        self.fail = ""
        self._ids = itertools.count(1)

    def _new(self, volume: str, data: bytes, compression: str = "zstd", origin: str = "backup") -> dict:
        bid = f"{next(self._ids):064x}"
        doc = {"Id": bid, "Volume": volume, "Compression": compression, "Origin": origin, "Size": len(data),
               "Bytes": len(data), "Files": 3, "Checksums": {"Archive": "sha256:" + hashlib.sha256(data).hexdigest()},
               "Verified": {"Ok": True, "Level": "checksum", "Message": "read back, checksums match"}}
        self.archives[bid] = {"doc": doc, "data": data}
        return doc

    def create_backup(self, host, volume, *, compression, consistency, progress=None, verify="checksum"):
        self.calls.append(("create", volume, compression, consistency, verify))
        if self.fail:
            message, self.fail = self.fail, ""
            raise EngineError(message)
        if progress:
            progress(50, 100, 1)
        return self._new(volume, f"archive of {volume} #{len(self.calls)}".encode() * 1000, compression)

    def verify_backup(self, host, engine_id, progress=None):
        self.calls.append(("verify", engine_id))
        return self.archives[engine_id]["doc"]

    def restore_backup(self, host, engine_id, volume, progress=None):
        self.calls.append(("restore", engine_id, volume))
        if engine_id not in self.archives:
            raise EngineNotFound(f"No such backup: {engine_id}")
        self.restored[volume] = self.archives[engine_id]["data"]
        return {"Backup": engine_id, "Volume": volume, "Files": 3, "Bytes": 10}

    def delete_backup(self, host, engine_id):
        self.calls.append(("delete", engine_id))
        if self.archives.pop(engine_id, None) is None:
            raise EngineNotFound(f"No such backup: {engine_id}")

    @contextmanager
    def download(self, host, engine_id):
        self.calls.append(("download", engine_id))
        yield io.BytesIO(self.archives[engine_id]["data"]), {}

    def upload(self, host, volume, body, *, strip=0, compression="zstd", progress=None):
        data = b"".join(body)
        self.calls.append(("upload", volume, strip))
        return self._new(volume, data, compression, "upload")

    def containers_using(self, host, volume):
        return self.users.get(volume, [])


def install(monkeypatch) -> FakeBackupEngine:
    from dockweb.backups import engine_api

    fake = FakeBackupEngine()
    for name in ("create_backup", "verify_backup", "restore_backup", "delete_backup", "download", "upload",
                 "containers_using"):
        monkeypatch.setattr(engine_api, name, getattr(fake, name))
    return fake
