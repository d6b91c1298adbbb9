"""A container's mount points: resolve volumes-from, binds, mounts and image VOLUMEs as dockerd does, and record them."""

from __future__ import annotations

import os
import posixpath
from dataclasses import asdict, dataclass
from typing import Callable

from engine.containers import spec as specmod
from engine.errors import InvalidParameter, NotFound
from engine.volumes.store import VolumeStore


@dataclass
class ContainerMount:
    """One mount point of a container as dockerd keeps it (daemon/volume/mounts.MountPoint)."""

    type: str                   # "volume" | "bind" | "tmpfs"
    destination: str
    source: str = ""            # host path: the bound directory, or the volume's data directory
    name: str = ""              # volume name
    driver: str = ""            # volume driver
    mode: str = ""              # the Binds mode as given ("ro,z"); "z" for local volumes without one
    rw: bool = True
    propagation: str = ""       # binds only ("rprivate" by default)
    non_recursive: bool = False
    subpath: str = ""           # volume sub-directory to mount instead of the whole volume
    tmpfs_data: str = ""
    copy_data: bool = False     # copy the image's directory into the volume when the volume is empty
    anonymous: bool = False

    def to_api(self) -> dict:
        """Shape the mount as inspect's Mounts[] entry (Name and Driver only for volumes, as Go's omitempty)."""
        doc: dict = {"Type": self.type}
        if self.name:
            doc["Name"] = self.name
        doc["Source"] = self.source
        doc["Destination"] = self.destination
        if self.driver:
            doc["Driver"] = self.driver
        doc.update({"Mode": self.mode, "RW": self.rw, "Propagation": self.propagation})
        return doc

    def host_source(self) -> str:
        """Return the host path the container binds (the volume's subpath when one is set)."""
        return posixpath.join(self.source, self.subpath) if self.subpath else self.source

    def to_point(self) -> specmod.MountPoint:
        """Turn the mount into the MountPoint build_spec writes into config.json."""
        if self.type == "tmpfs":
            return specmod.MountPoint(self.destination, "tmpfs", "tmpfs", data=self.tmpfs_data)
        return specmod.MountPoint(self.destination, self.host_source(), "bind", not self.rw, self.propagation,
                                  self.non_recursive)

    def record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, doc: dict) -> "ContainerMount":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})


@dataclass
class Resolution:
    mounts: list[ContainerMount]
    created: list[str]          # volumes this create made (removed again if the create fails)


def resolve(opts: specmod.CreateOptions, proc: specmod.ProcessConfig, volumes: VolumeStore,
            mounts_of: Callable[[str], list[ContainerMount]]) -> Resolution:
    """Decide every mount point of a new container, creating the volumes it names (moby registerMountPoints).

    Order: volumes-from first, then Binds and Mounts (which replace a volumes-from mount at the same
    destination), then an anonymous volume for each Config.Volumes path (image VOLUMEs included) that nothing
    else covers. mounts_of(ref) returns another container's mounts (NotFound when there is none).
    """
    by_dest: dict[str, ContainerMount] = {}
    created: list[str] = []
    try:
        for spec_ in opts.volumes_from:
            ref, _, mode = spec_.partition(":")
            try:
                theirs = mounts_of(ref)
            except NotFound as e:
                raise InvalidParameter(e.message) from None
            for m in theirs:
                # volumes-from keeps the source, never copies, and can only narrow rw to ro.
                by_dest[m.destination] = ContainerMount(
                    type=m.type, destination=m.destination, source=m.source, name=m.name, driver=m.driver,
                    rw=m.rw and mode != "ro", propagation=m.propagation, non_recursive=m.non_recursive,
                    subpath=m.subpath, tmpfs_data=m.tmpfs_data)
        for req in opts.mounts:
            by_dest[req.destination] = _from_request(req, volumes, created)
        tmpfs_dests = {posixpath.normpath(d) for d in opts.tmpfs}
        for dest in proc.volumes:
            dest = posixpath.normpath(dest)
            if dest in by_dest or dest in tmpfs_dests:
                continue
            v = volumes.create(None, opts.volume_driver or "local", anonymous=True)
            created.append(v.name)
            by_dest[dest] = ContainerMount(type="volume", destination=dest, source=str(volumes.mount_source(v)),
                                           name=v.name, driver=v.driver, copy_data=True, anonymous=True)
    except BaseException:
        discard_created(volumes, created)
        raise
    mounts = sorted(by_dest.values(), key=lambda m: (posixpath.normpath(m.destination).count("/"), m.destination))
    return Resolution(mounts, created)


def _from_request(req: specmod.MountRequest, volumes: VolumeStore, created: list[str]) -> ContainerMount:
    if req.type == "tmpfs":
        return ContainerMount(type="tmpfs", destination=req.destination, rw=not req.read_only,
                              tmpfs_data=req.tmpfs_data)
    if req.type == "bind":
        _ensure_bind_source(req)
        return ContainerMount(type="bind", destination=req.destination, source=req.source, mode=req.mode,
                              rw=not req.read_only, propagation=req.propagation or "rprivate",
                              non_recursive=req.non_recursive)
    existed = bool(req.source) and volumes.exists(req.source)
    v = volumes.create(req.source or None, req.volume_driver or "local",
                       driver_opts=req.volume_options or None, labels=req.volume_labels or None,
                       anonymous=not req.source)
    if not existed:
        created.append(v.name)
    source = str(volumes.mount_source(v))
    if req.subpath:
        _check_subpath(source, req.subpath, v.name)
    return ContainerMount(type="volume", destination=req.destination, source=source, name=v.name,
                          driver=v.driver, mode=req.mode or "z", rw=not req.read_only, subpath=req.subpath,
                          copy_data=not req.nocopy and not req.subpath, anonymous=v.anonymous)


def _ensure_bind_source(req: specmod.MountRequest) -> None:
    if os.path.exists(req.source):
        return
    if not req.from_binds and not req.create_mountpoint:
        raise InvalidParameter(f'invalid mount config for type "bind": bind source path does not exist: '
                               f"{req.source}")
    # `-v /host/dir:/dst` creates a missing host directory, as dockerd does when it sets the mount up.
    try:
        os.makedirs(req.source, mode=0o755, exist_ok=True)
    except OSError as e:
        raise InvalidParameter(f"error while creating mount source path '{req.source}': "
                               f"mkdir {req.source}: {e.strerror.lower()}") from e


def _check_subpath(source: str, subpath: str, name: str) -> None:
    full = os.path.realpath(os.path.join(source, subpath))
    if full != source and not full.startswith(source.rstrip("/") + "/"):
        raise InvalidParameter(f"cannot mount volume {name} subpath {subpath!r}: it leaves the volume")
    if not os.path.isdir(full):
        raise InvalidParameter(f"cannot access path {full}: lstat {full}: no such file or directory")


def discard_created(volumes: VolumeStore, names: list[str]) -> None:
    """Remove anonymous volumes a failed create made (named ones stay, as dockerd leaves them)."""
    for name in names:
        try:
            if volumes.get(name).anonymous:
                volumes.remove(name, in_use=lambda _n: [])
        except Exception:
            pass


def find_mount(mounts: list[ContainerMount], path: str) -> ContainerMount | None:
    """Return the innermost mount holding the in-container path (moby's HasResource)."""
    best = None
    for m in mounts:
        dest = m.destination.rstrip("/") or "/"
        if path == dest or path.startswith(dest + "/") or dest == "/":
            if best is None or len(dest) > len(best.destination):
                best = m
    return best
