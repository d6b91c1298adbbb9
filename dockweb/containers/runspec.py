"""What `run` takes: RunSpec, parsed and validated from a form or JSON, with an error message per field."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping

from django.core.exceptions import ValidationError

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
PORT_RE = re.compile(r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):)?(?:(?P<public>\d+):)?(?P<private>\d+)"
                     r"(?:/(?P<proto>tcp|udp|sctp))?$")
SIZE_RE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[bkmg]?)i?b?$", re.I)
RESTART_RE = re.compile(r"^(no|always|unless-stopped|on-failure(?::(?P<retries>\d+))?)$")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
MIN_MEMORY = 6 * 1024 * 1024  # dockerd's floor: "Minimum memory limit allowed is 6MB"


@dataclass
class PortBinding:
    private: int
    protocol: str = "tcp"
    public: int | None = None
    ip: str = ""


@dataclass
class Mount:
    source: str       # a volume name, or an absolute host path (a bind mount: site admins only)
    target: str
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        return self.source.startswith("/")


@dataclass
class RunSpec:
    image: str
    name: str = ""
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ports: list[PortBinding] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    restart_policy: str = "no"
    memory: int | None = None      # bytes
    cpus: float | None = None
    pids_limit: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    team: str = ""                 # team slug; "" = unassigned (site admins only)
    host: str = ""                 # host name; "" = the first host


def _lines(value: Any) -> list[str]:
    """Accept a list, or text with one item per line (forms), dropping blanks."""
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    raise ValueError("give a list or one item per line")


def _pairs(value: Any, what: str) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for line in _lines(value):
        key, sep, val = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{line!r} is not KEY=VALUE")
        out[key.strip()] = val
    return out


def parse_size(value: Any) -> int | None:
    """Parse 512m / 1g / 1048576 into bytes."""
    if value in (None, ""):
        return None
    if isinstance(value, int):
        return value
    m = SIZE_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a size: write 512m, 1g or a number of bytes")
    return int(float(m["n"]) * _UNITS[m["unit"].lower()])


def parse_port(text: str) -> PortBinding:
    m = PORT_RE.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a port: write 8080:80, 127.0.0.1:8080:80/tcp or 80")
    private = int(m["private"])
    public = int(m["public"]) if m["public"] else None
    for n in (private, public):
        if n is not None and not 1 <= n <= 65535:
            raise ValueError(f"{text!r}: ports are 1-65535")
    return PortBinding(private=private, protocol=m["proto"] or "tcp", public=public, ip=m["ip"] or "")


def parse_mount(text: str) -> Mount:
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise ValueError(f"{text!r} is not a mount: write VOLUME:/path or VOLUME:/path:ro")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise ValueError(f"{text!r}: the mode is ro or rw, not {mode!r}")
    return Mount(source=parts[0], target=parts[1], read_only=mode == "ro")


def parse_run_input(data: Mapping[str, Any]) -> RunSpec:
    """Build a RunSpec from form or JSON input; raise ValidationError({field: [message]}) naming each bad field."""
    errors: dict[str, list[str]] = {}

    def take(name: str, parse, default=None):
        try:
            return parse(data.get(name))
        except (ValueError, TypeError) as e:
            errors.setdefault(name, []).append(str(e))
            return default

    image = str(data.get("image") or "").strip()
    if not image:
        errors["image"] = ["Give an image, for example busybox or nginx:1.27"]
    elif any(c.isspace() for c in image):
        errors["image"] = [f"{image!r} is not an image reference (no spaces)"]
    name = str(data.get("name") or "").strip().lstrip("/")
    if name and not NAME_RE.match(name):
        errors["name"] = [f"{name!r}: a name starts with a letter or digit, then letters, digits, _ . -"]

    def command(value):
        if value in (None, ""):
            return []
        if isinstance(value, str):
            return shlex.split(value)
        if isinstance(value, list):
            return [str(v) for v in value]
        raise ValueError("give the command as text or a list")

    def restart(value):
        value = str(value or "no").strip()
        if not RESTART_RE.match(value):
            raise ValueError(f"{value!r}: use no, always, unless-stopped or on-failure[:N]")
        return value

    def memory(value):
        n = parse_size(value)
        if n is not None and n < MIN_MEMORY:
            raise ValueError("the minimum memory limit is 6m")
        return n

    def cpus(value):
        if value in (None, ""):
            return None
        n = float(value)
        if not 0.01 <= n <= 1024:
            raise ValueError("CPUs is a number like 0.5 or 2")
        return n

    def pids(value):
        if value in (None, ""):
            return None
        n = int(value)
        if n < 1 and n != -1:
            raise ValueError("the pids limit is a positive number (or -1 for none)")
        return n

    spec = RunSpec(
        image=image, name=name,
        command=take("command", command, []),
        env=take("env", lambda v: _pairs(v, "env"), {}),
        ports=take("ports", lambda v: [parse_port(p) for p in _lines(v)], []),
        mounts=take("volumes", lambda v: [parse_mount(m) for m in _lines(v)], []),
        restart_policy=take("restart_policy", restart, "no"),
        memory=take("memory", memory), cpus=take("cpus", cpus), pids_limit=take("pids_limit", pids),
        labels=take("labels", lambda v: _pairs(v, "labels"), {}),
        team=str(data.get("team") or "").strip(), host=str(data.get("host") or "").strip(),
    )
    if any(k.startswith("dockweb.") for k in spec.labels):
        errors.setdefault("labels", []).append("labels starting with dockweb. are set by dockweb itself")
    if errors:
        raise ValidationError(errors)
    return spec
