"""EngineConfig: where the engine keeps its state and how it runs containers; passed in, never global."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class EngineConfig:
    root: Path = Path("/var/lib/dockweb")
    socket: Path = Path("/run/dockweb/engine.sock")
    socket_mode: int = 0o660
    # cgroup parent for containers, relative to each hierarchy's mount point.
    cgroup_parent: str = "dockweb"
    # json log rotation: unlike Docker's unbounded default, cap every container's log.
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 3
    busybox_path: Path = Path("/bin/busybox")
    default_shm_size: int = 64 * 1024 * 1024
    extra: dict = field(default_factory=dict)

    @property
    def containers_dir(self) -> Path:
        return self.root / "containers"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def volumes_dir(self) -> Path:
        return self.root / "volumes"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def container_dir(self, cid: str) -> Path:
        return self.containers_dir / cid

    def ensure_dirs(self) -> None:
        """Create the engine's directories (idempotent)."""
        for d in (self.root, self.containers_dir, self.images_dir, self.volumes_dir, self.tmp_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)

    @classmethod
    def from_env(cls, **overrides) -> "EngineConfig":
        """Build a config from DOCKWEB_ENGINE_ROOT / DOCKWEB_ENGINE_SOCKET, then explicit overrides."""
        kwargs: dict = {}
        if os.environ.get("DOCKWEB_ENGINE_ROOT"):
            kwargs["root"] = Path(os.environ["DOCKWEB_ENGINE_ROOT"])
        if os.environ.get("DOCKWEB_ENGINE_SOCKET"):
            kwargs["socket"] = Path(os.environ["DOCKWEB_ENGINE_SOCKET"])
        if os.environ.get("DOCKWEB_CGROUP_PARENT"):
            kwargs["cgroup_parent"] = os.environ["DOCKWEB_CGROUP_PARENT"]
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("root", "socket", "busybox_path"):
            if key in kwargs:
                kwargs[key] = Path(kwargs[key])
        return cls(**kwargs)
