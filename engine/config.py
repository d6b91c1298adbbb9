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
    # Registries reached over plain http (or https without certificate checks): "host:port", "host" or a CIDR.
    # Like dockerd, localhost and 127.0.0.0/8 are insecure whatever this says (DOCKWEB_INSECURE_REGISTRIES).
    insecure_registries: tuple[str, ...] = ()
    # ADD <url> in builds: loopback, link-local and private addresses are refused unless allowed (tests, labs).
    build_add_allow_private: bool = False
    build_add_max_bytes: int = 1 << 30
    build_add_timeout: float = 300.0
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
        if os.environ.get("DOCKWEB_INSECURE_REGISTRIES"):
            kwargs["insecure_registries"] = tuple(
                h.strip() for h in os.environ["DOCKWEB_INSECURE_REGISTRIES"].split(",") if h.strip())
        allow = os.environ.get("DOCKWEB_BUILD_ADD_ALLOW_PRIVATE", "").strip().lower()
        if allow:
            if allow not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(f"DOCKWEB_BUILD_ADD_ALLOW_PRIVATE must be 1/true/yes or 0/false/no, not {allow!r}")
            kwargs["build_add_allow_private"] = allow in ("1", "true", "yes")
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("root", "socket", "busybox_path"):
            if key in kwargs:
                kwargs[key] = Path(kwargs[key])
        return cls(**kwargs)
