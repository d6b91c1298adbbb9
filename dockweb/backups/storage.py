"""Where archives are kept besides the engine's own store: dockweb's backup directory, or an S3-compatible bucket."""

from __future__ import annotations

import hashlib
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from django.conf import settings

from dockweb.core.errors import EngineError

CHUNK = 1 << 20


class StorageError(EngineError):
    """The backup store failed or refused (a message the user can act on)."""


class HashingReader:
    """Wrap a reader: count and sha256 the bytes read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def backup_dir() -> Path:
    """dockweb's backup directory (settings.BACKUP_DIR: DOCKWEB_BACKUP_DIR, else <DOCKWEB_STATE_DIR>/backups)."""
    return Path(settings.BACKUP_DIR)


class FileStore:
    """Archives as files under a directory: written to a hidden temp file, fsynced, then renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise StorageError(f"backup key {key!r} leaves the backup directory")
        return path

    def put(self, key: str, src: BinaryIO) -> tuple[int, str]:
        """Store what src yields under key; return (size, "sha256:...")."""
        path = self._path(key)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        reader = HashingReader(src)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "xb") as f:
                while chunk := reader.read(CHUNK):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as e:
            raise StorageError(f"writing backup {key} to {self.root}: {e.strerror or e}") from e
        finally:
            tmp.unlink(missing_ok=True)
        return reader.size, reader.digest

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            f = open(self._path(key), "rb")
        except FileNotFoundError:
            raise StorageError(f"backup archive {key} is missing from {self.root}") from None
        with f:
            yield f

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """Archives as objects in a bucket (boto3; multipart uploads of 8 MiB parts: memory stays bounded)."""

    def __init__(self, target) -> None:
        import boto3
        from botocore.config import Config

        from dockweb.backups.crypto import unseal

        self.target = target
        self.bucket = target.bucket
        self.prefix = target.prefix.strip("/")
        self.client = boto3.client(
            "s3", endpoint_url=target.endpoint_url or None, region_name=target.region or "us-east-1",
            aws_access_key_id=target.access_key, aws_secret_access_key=unseal(target.secret_key_sealed),
            config=Config(retries={"max_attempts": 3}, s3={"addressing_style": "path"}))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, doing: str, e: Exception) -> StorageError:
        return StorageError(f"{doing} in bucket {self.bucket} at {self.target.endpoint_url or 'AWS'}: {e}")

    def put(self, key: str, src: BinaryIO) -> tuple[int, str]:
        from boto3.s3.transfer import TransferConfig

        reader = HashingReader(src)
        try:
            # One part in flight at a time: the parts come from a stream, read in order.
            self.client.upload_fileobj(reader, self.bucket, self._key(key),
                                       Config=TransferConfig(use_threads=False, multipart_chunksize=8 << 20))
        except Exception as e:   # boto3 raises botocore and s3transfer errors of many kinds
            raise self._fail(f"uploading backup {key}", e) from e
        return reader.size, reader.digest

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except Exception as e:
            raise self._fail(f"reading backup {key}", e) from e
        try:
            yield body
        finally:
            body.close()

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            raise self._fail(f"deleting backup {key}", e) from e

    def check(self) -> None:
        """Answer whether the bucket is reachable with these credentials (StorageError when not)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as e:
            raise self._fail("checking access", e) from e


def store_for(storage: str, s3_target=None):
    if storage == "s3":
        if s3_target is None:
            raise StorageError("this backup's S3 target was removed")
        return S3Store(s3_target)
    if storage == "dockweb":
        return FileStore(backup_dir())
    raise StorageError(f"no object store for storage {storage!r}")
