"""A container's record: what create decided, what the runtime last reported, and how status is derived."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine import state as st


@dataclass
class ContainerState:
    status: str = "created"          # created | running | paused | restarting | exited | dead | removing
    pid: int = 0
    supervisor_pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_ns: int = 0
    finished_ns: int = 0
    restart_count: int = 0
    manually_stopped: bool = False
    ever_started: bool = False


@dataclass
class Container:
    id: str
    name: str                          # without the leading "/"
    created_ns: int
    image_ref: str                     # what the user asked for (busybox, sha256:..)
    image_id: str
    path: str                          # process args[0] as Docker reports it
    args: list[str]
    config: dict                       # Docker Config as inspect shows it (merged with the image)
    host_config: dict                  # Docker HostConfig as inspect shows it
    bundle: str
    state: ContainerState = field(default_factory=ContainerState)
    # The resolved mount points (engine.volumes.mounts.ContainerMount records), decided once at create.
    mounts: list[dict] = field(default_factory=list)

    @property
    def dir(self) -> Path:
        return Path(self.bundle)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def labels(self) -> dict:
        return self.config.get("Labels") or {}

    @property
    def restart_policy(self) -> dict:
        return self.host_config.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0}

    @property
    def is_running(self) -> bool:
        return self.state.status in ("running", "paused")

    def save(self) -> None:
        """Persist the record atomically."""
        # A shallow dict: asdict() deep-copies the Config and HostConfig documents on every save.
        doc = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "state"}
        doc["state"] = vars(self.state)
        st.write_json(self.dir / "state.json", doc, fsync=False)

    @classmethod
    def load(cls, path: Path) -> "Container | None":
        doc = st.read_json(path / "state.json")
        if not doc:
            return None
        doc["state"] = ContainerState(**doc.get("state", {}))
        return cls(**doc)

    def status_text(self, now_ns: int | None = None) -> str:
        """Render the human status `docker ps` shows (Up 3 seconds, Exited (0) 2 minutes ago)."""
        now_ns = now_ns or time.time_ns()
        s = self.state
        if s.status == "running":
            return f"Up {human_duration(now_ns - s.started_ns)}"
        if s.status == "paused":
            return f"Up {human_duration(now_ns - s.started_ns)} (Paused)"
        if s.status == "restarting":
            return f"Restarting ({s.exit_code}) {human_duration(now_ns - s.finished_ns)} ago"
        if s.status == "exited":
            return f"Exited ({s.exit_code}) {human_duration(now_ns - s.finished_ns)} ago"
        if s.status == "removing":
            return "Removal In Progress"
        if s.status == "dead":
            return "Dead"
        return "Created"


def human_duration(ns: int) -> str:
    """Format a duration as Docker's units.HumanDuration does."""
    seconds = max(0, ns) / 1e9
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def pid_alive(pid: int) -> bool:
    """Tell whether a process exists (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def is_supervisor(pid: int) -> bool:
    """Tell whether pid is a live dockweb supervisor (guards against pid reuse after a crash)."""
    if not pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"engine" in f.read()
    except OSError:
        return False


def proc_exists(pid: int) -> bool:
    return pid > 0 and os.path.exists(f"/proc/{pid}")
