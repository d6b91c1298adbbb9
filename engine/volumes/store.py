"""The local volume driver: volume records and data directories under <root>/volumes, with Docker's semantics."""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from engine import state as st
from engine.config import EngineConfig
from engine.errors import Conflict, InvalidParameter, NotFound, SystemFailure
from engine.events import EventLog

log = logging.getLogger(__name__)

# The label Docker (API >= 1.42) puts on anonymous volumes; prune keys on it.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
VALID_OPTS = ("type", "o", "device", "size")
# An option needs these others (moby volume/local mandatoryOpts).
MANDATORY_OPTS = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
LIST_FILTERS = {"dangling", "name", "driver", "label", "label!"}
PRUNE_FILTERS = {"label", "label!", "all"}

InUse = Callable[[str], list[str]]


def _no_users(_name: str) -> list[str]:
    return []


@dataclass
class Volume:
    name: str
    mountpoint: Path
    driver: str = "local"
    created_at: str = ""
    labels: dict | None = None
    options: dict | None = None
    anonymous: bool = False

    @property
    def needs_mount(self) -> bool:
        """Tell whether the driver options ask for a filesystem mounted on the data directory (tmpfs, bind...)."""
        opts = self.options or {}
        return bool(opts.get("type") or opts.get("device"))

    def to_api(self, usage: dict | None = None) -> dict:
        """Shape the volume as the Engine API's Volume object (UsageData only when given)."""
        doc = {
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": self.labels,
            "Mountpoint": str(self.mountpoint),
            "Name": self.name,
            "Options": self.options,
            "Scope": "local",
        }
        if usage is not None:
            doc["UsageData"] = usage
        return doc

    def record(self) -> dict:
        return {"name": self.name, "driver": self.driver, "created_at": self.created_at, "labels": self.labels,
                "options": self.options, "anonymous": self.anonymous}


def validate_name(name: str) -> None:
    """Refuse a volume name the local driver cannot use as a directory name (moby's wording)."""
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two alphanumeric characters")
    if not NAME_RE.match(name):
        raise InvalidParameter(
            f'"{name}" includes invalid characters for a local volume name, only "{NAME_CHARS}" are allowed. '
            "If you intended to pass a host directory, use absolute path")


def validate_driver_opts(opts: dict) -> None:
    """Check DriverOpts as the local driver does: known keys, and the keys each one needs."""
    for key in opts:
        if key not in VALID_OPTS:
            raise InvalidParameter(f'invalid option: "{key}"')
    if opts.get("size"):
        # Size quotas need project quotas on an xfs backing filesystem; refuse rather than ignore.
        raise InvalidParameter("quota size requested but no quota support")
    for key, needed in MANDATORY_OPTS.items():
        if key in opts:
            for other in needed:
                if other not in opts:
                    raise InvalidParameter(f'missing required option: "{other}"')


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dir_usage(path: Path) -> int:
    """Sum the apparent sizes of the files under path without following symlinks (Docker's du for volumes)."""
    total = 0
    for root, dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def mounted_paths() -> set[str]:
    """Return the mount points of this process's mount namespace."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # The mount point is field 5; spaces and other specials are octal-escaped (\040).
            mp = line.split()[4]
            out.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp))
    return out


class VolumeStore:
    """Own the volumes of one engine root: create, list, inspect, remove, prune, and mount driver-option volumes."""

    def __init__(self, config: EngineConfig, events: EventLog) -> None:
        self.config = config
        self.events = events
        self.dir = config.volumes_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._volumes: dict[str, Volume] = {}
        # Who uses a volume (container ids); build_engine points it at the container manager.
        self.users: InUse = _no_users
        self._load()

    # ------------------------------------------------------------------------------------------------ records

    def _load(self) -> None:
        for d in sorted(self.dir.iterdir()):
            if not d.is_dir() or d.name.startswith("."):
                continue
            doc = st.read_json(d / "volume.json")
            if not doc:
                if (d / "_data").is_dir():
                    # A volume directory without a record (made by hand or by an older layout): adopt it.
                    doc = {"name": d.name, "created_at": _created_at_of(d)}
                else:
                    continue
            self._volumes[d.name] = Volume(
                name=doc["name"], mountpoint=d / "_data", driver=doc.get("driver") or "local",
                created_at=doc.get("created_at") or _created_at_of(d), labels=doc.get("labels"),
                options=doc.get("options"), anonymous=bool(doc.get("anonymous")))

    def _save(self, v: Volume) -> None:
        st.write_json(self.dir / v.name / "volume.json", v.record())

    # ------------------------------------------------------------------------------------------------ verbs

    def create(self, name: str | None, driver: str = "local", driver_opts: dict | None = None,
               labels: dict | None = None, anonymous: bool = False) -> Volume:
        """Create a volume, or return the existing one of that name; an empty name makes an anonymous volume."""
        driver = driver or "local"
        if driver != "local":
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        if not name:
            name, anonymous = st.new_id(), True
        validate_name(name)
        opts = {str(k): str(v) for k, v in (driver_opts or {}).items()}
        validate_driver_opts(opts)
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return existing
            if anonymous:
                labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
            vdir = self.dir / name
            try:
                vdir.mkdir(mode=0o701)
                (vdir / "_data").mkdir(mode=0o755)
            except FileExistsError:
                raise Conflict(f"volume already exists under {vdir}") from None
            except OSError as e:
                raise SystemFailure(f"creating volume {name}: {e.strerror}") from e
            # mkdir honours the umask: set the mode Docker's volumes have.
            os.chmod(vdir / "_data", 0o755)
            v = Volume(name=name, mountpoint=vdir / "_data", driver=driver, created_at=_now_rfc3339(),
                       labels=dict(labels) if labels is not None else None,
                       options=opts if driver_opts is not None else None, anonymous=anonymous)
            try:
                self._save(v)
            except OSError as e:
                shutil.rmtree(vdir, ignore_errors=True)
                raise SystemFailure(f"saving volume {name}: {e.strerror}") from e
            self._volumes[name] = v
        self.events.publish("volume", "create", name, {"driver": driver})
        return v

    def get(self, name: str) -> Volume:
        """Return the volume called name; NotFound with Docker's message otherwise."""
        with self._lock:
            v = self._volumes.get(name)
        if v is None:
            raise NotFound(f"get {name}: no such volume")
        return v

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._volumes

    def all(self) -> list[Volume]:
        with self._lock:
            return list(self._volumes.values())

    def list(self, filters: dict[str, list[str]], in_use: InUse | None = None) -> list[Volume]:
        """List volumes matching the `docker volume ls` filters (dangling, name, driver, label)."""
        in_use = in_use or self.users
        for key in filters:
            if key not in LIST_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        dangling = _bool_filter(filters, "dangling")
        out = []
        for v in sorted(self.all(), key=lambda v: v.name):
            if "name" in filters and not any(_regex_match(p, v.name) for p in filters["name"]):
                continue
            if "driver" in filters and v.driver not in filters["driver"]:
                continue
            if not _labels_match(v.labels or {}, filters):
                continue
            if dangling is not None and bool(in_use(v.name)) == dangling:
                continue
            out.append(v)
        return out

    def remove(self, name: str, force: bool = False, in_use: InUse | None = None) -> None:
        """Remove a volume and its data; 409 when a container uses it; with force a missing volume is no error."""
        in_use = in_use or self.users
        with self._lock:
            v = self._volumes.get(name)
            if v is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = in_use(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._destroy(v)
        self.events.publish("volume", "destroy", name, {"driver": v.driver})

    def _destroy(self, v: Volume) -> None:
        vdir = self.dir / v.name
        self.unmount(v)
        if str(v.mountpoint) in mounted_paths():
            # Deleting through a mount would destroy the device's (or the bound directory's) files.
            raise SystemFailure(f"remove {v.name}: its data directory {v.mountpoint} is still mounted")
        # Rename first: a crash half-way through the delete must not leave a half-empty volume that loads.
        trash = self.config.tmp_dir / f"vol-{v.name}-{st.new_id()[:8]}"
        try:
            self.config.tmp_dir.mkdir(parents=True, exist_ok=True)
            os.rename(vdir, trash)
        except FileNotFoundError:
            trash = None
        except OSError as e:
            raise SystemFailure(f"remove {v.name}: {e.strerror}") from e
        del self._volumes[v.name]
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    def prune(self, filters: dict[str, list[str]], in_use: InUse | None = None, api_version: str = "1.50") -> dict:
        """Remove unused volumes: anonymous ones only from API 1.42 unless filters has all=true."""
        in_use = in_use or self.users
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise InvalidParameter(f"invalid filter '{key}'")
        prune_all = bool(_bool_filter(filters, "all"))
        anonymous_only = _version(api_version) >= (1, 42) and not prune_all
        deleted, reclaimed = [], 0
        for v in sorted(self.all(), key=lambda v: v.name):
            if anonymous_only and not (v.anonymous or ANONYMOUS_LABEL in (v.labels or {})):
                continue
            if not _labels_match(v.labels or {}, filters):
                continue
            size = 0 if v.needs_mount else dir_usage(v.mountpoint)
            try:
                self.remove(v.name, in_use=in_use)
            except (Conflict, NotFound):
                continue     # taken into use (or removed) since we looked: not prunable now
            deleted.append(v.name)
            reclaimed += size
        self.events.publish("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def usage(self, name: str, in_use: InUse | None = None) -> dict:
        """Return UsageData: the bytes under the volume and how many containers reference it."""
        in_use = in_use or self.users
        v = self.get(name)
        return {"Size": dir_usage(v.mountpoint), "RefCount": len(in_use(name))}

    def df(self) -> list[dict]:
        """List every volume with its UsageData, for GET /system/df."""
        return [v.to_api(self.usage(v.name)) for v in sorted(self.all(), key=lambda v: v.name)]

    # ------------------------------------------------------------------------------------------------ mounts

    def mount_source(self, v: Volume) -> Path:
        """Return what a container binds for this volume, mounting the driver-option filesystem on first use."""
        if not v.needs_mount:
            return v.mountpoint
        with self._lock:
            if str(v.mountpoint) in mounted_paths():
                return v.mountpoint
            from engine.runtime import mounts as rtmounts
            from engine.runtime import sys as linux
            opts = v.options or {}
            parsed = rtmounts.parse_options([o for o in (opts.get("o") or "").split(",") if o])
            fstype = opts.get("type") or None
            device = opts.get("device") or fstype or "none"
            target = str(v.mountpoint)
            try:
                if parsed.flags & linux.MS_BIND:
                    if not os.path.isabs(device):
                        raise InvalidParameter(f"volume {v.name}: bind device {device!r} must be an absolute path")
                    linux.mount(device, target, None, parsed.flags & (linux.MS_BIND | linux.MS_REC))
                    rest = parsed.flags & ~(linux.MS_BIND | linux.MS_REC)
                    if rest:
                        # A bind mount ignores the other flags: they need a remount.
                        linux.mount(None, target, None, rest | linux.MS_BIND | linux.MS_REMOUNT)
                else:
                    linux.mount(device, target, fstype, parsed.flags, parsed.data or None)
            except OSError as e:
                raise SystemFailure(f"failed to mount local volume: mount {device}:{target}, "
                                    f"flags: {parsed.flags:#x}, data: {parsed.data}: {e.strerror}") from e
        return v.mountpoint

    def unmount(self, v: Volume) -> None:
        """Unmount a driver-option volume's filesystem if it is mounted (lazily: running users keep their view)."""
        if not v.needs_mount:
            return
        from engine.runtime import sys as linux
        target = str(v.mountpoint)
        while target in mounted_paths():
            try:
                linux.umount2(target, 2)   # MNT_DETACH
            except OSError as e:
                raise SystemFailure(f"unmounting volume {v.name}: {e.strerror}") from e

    def cleanup_mounts(self, in_use: InUse | None = None) -> None:
        """At daemon start, unmount volume filesystems nobody uses and mounts left under removed volumes."""
        in_use = in_use or self.users
        prefix = str(self.dir) + "/"
        from engine.runtime import sys as linux
        for mp in sorted(mounted_paths(), key=len, reverse=True):
            if not mp.startswith(prefix):
                continue
            name, _, rest = mp[len(prefix):].partition("/")
            v = self._volumes.get(name)
            if v is not None and rest == "_data" and v.needs_mount and in_use(name):
                continue     # a container still runs with it: keep what it sees and what new users will share
            try:
                linux.umount2(mp, 2)
                log.info("unmounted stale volume mount %s", mp)
            except OSError as e:
                log.warning("unmounting stale volume mount %s: %s", mp, e.strerror)


def _created_at_of(d: Path) -> str:
    try:
        ts = d.stat().st_ctime
    except OSError:
        return _now_rfc3339()
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (1, 50)


def _regex_match(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return pattern in value


def _bool_filter(filters: dict[str, list[str]], key: str) -> bool | None:
    values = filters.get(key)
    if not values:
        return None
    out = None
    for value in values:
        low = value.lower()
        if low in ("true", "1"):
            out = True
        elif low in ("false", "0"):
            out = False if out is None else out
        else:
            raise InvalidParameter(f"invalid filter '{key}={value}'")
    return out


def _labels_match(labels: dict, filters: dict[str, list[str]]) -> bool:
    for want in filters.get("label", []):
        k, eq, v = want.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    for want in filters.get("label!", []):
        k, eq, v = want.partition("=")
        if k in labels and (not eq or labels[k] == v):
            return False
    return True
