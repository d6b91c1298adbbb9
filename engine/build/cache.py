"""The build cache: which image a build step produced from a given parent, instruction, build args and sources."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Callable

from engine.state import read_json, write_json


def step_key(parent: str, instruction: str, build_args: dict[str, str] | None = None, sources: str = "",
             config: dict | None = None) -> str:
    """Return the cache key of a step: the parent image, the instruction as evaluated, args, source hash, config."""
    doc = {"parent": parent, "instruction": instruction, "args": sorted((build_args or {}).items()),
           "sources": sources, "config": config or {}}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class BuildCache:
    """Step key -> image id, on disk in one JSON file; an entry whose image is gone is a miss (and dropped)."""

    def __init__(self, path: Path, image_exists: Callable[[str], bool]) -> None:
        self.path = path
        self._exists = image_exists
        self._lock = threading.Lock()
        self._entries: dict[str, str] = dict(read_json(path, {}) or {})

    def lookup(self, key: str) -> str | None:
        """Return the image id cached for key, if that image still exists."""
        with self._lock:
            iid = self._entries.get(key)
        if iid is None:
            return None
        if not self._exists(iid):
            with self._lock:
                if self._entries.get(key) == iid:
                    del self._entries[key]
                    self._save()
            return None
        return iid

    def store(self, key: str, image_id: str) -> None:
        """Remember that the step key produced image_id."""
        with self._lock:
            if self._entries.get(key) == image_id:
                return
            self._entries[key] = image_id
            self._save()

    def forget_images(self, image_ids: set[str]) -> None:
        """Drop the entries that point at images a failed build removed."""
        with self._lock:
            gone = [k for k, v in self._entries.items() if v in image_ids]
            for k in gone:
                del self._entries[k]
            if gone:
                self._save()

    def entries(self) -> list[tuple[str, str]]:
        """Return (step key, image id) for every entry."""
        with self._lock:
            return sorted(self._entries.items())

    def prune(self) -> dict:
        """Forget every entry (POST /build/prune); the images themselves stay until image prune."""
        with self._lock:
            keys = sorted(self._entries)
            self._entries.clear()
            self._save()
        return {"CachesDeleted": keys or None, "SpaceReclaimed": 0}

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self._entries, fsync=False)
