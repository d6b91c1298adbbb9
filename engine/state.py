"""Atomic on-disk records: write a temp file, fsync, rename; ids and times."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def new_id() -> str:
    """Return a new 64-hex-digit object id."""
    return secrets.token_hex(32)


def write_json(path: Path, data: Any, fsync: bool = True) -> None:
    """Write data as JSON to path atomically: readers see the old or the new file, never half."""
    path = Path(path)
    # A unique temp name per writer: threads of one process may write the same record at once.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            # dumps, not dump: dump streams through the pure-Python encoder, dumps uses the C one (10x faster).
            f.write(json.dumps(data, separators=(",", ":")))
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON record, or return default when it does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def now_ns() -> int:
    return time.time_ns()


def rfc3339(ns: int | None) -> str:
    """Format unix nanoseconds as Docker does (RFC3339 with nanoseconds, UTC); zero time for None."""
    if not ns:
        return "0001-01-01T00:00:00Z"
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def parse_time(value: str) -> float:
    """Parse a Docker API time: unix seconds, seconds.nanoseconds, or RFC3339."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    v = value.replace("Z", "+00:00")
    if "." in v:
        head, rest = v.split(".", 1)
        n = 0
        while n < len(rest) and rest[n].isdigit():
            n += 1
        v = f"{head}.{rest[:n][:6].ljust(6, '0')}{rest[n:]}"
    parsed = datetime.fromisoformat(v)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()
