"""System endpoints: ping, version, info, events, disk usage, auth and plugins."""

from __future__ import annotations

import functools
import os
import platform
import re
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from engine import API_VERSION, ENGINE_VERSION, MIN_API_VERSION
from engine.api.server import Request, Response, StreamResponse, json_response, version_tuple
from engine.api.streams import json_line
from engine.errors import InvalidParameter, NotFound
from engine.events import Event
from engine.state import parse_time, rfc3339

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
            "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


# ---------------------------------------------------------------------------------------------------------------
# ping and version

_PING_HEADERS = {
    "Builder-Version": "1",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


def ping(engine: Any, req: Request) -> Response:
    """Answer the CLI's version negotiation: headers matter, the body is "OK" (none for HEAD)."""
    body = b"" if req.method == "HEAD" else b"OK"
    return Response(200, body, "text/plain; charset=utf-8", dict(_PING_HEADERS))


def version(engine: Any, req: Request) -> Response:
    """Describe the engine as GET /version does."""
    return json_response(_version_doc())


@functools.lru_cache(maxsize=1)
def _version_doc() -> dict:
    arch = _GO_ARCH.get(platform.machine(), platform.machine())
    build_time = rfc3339(int(Path(__file__).parents[2].joinpath("__init__.py").stat().st_mtime * 1e9))
    commit = _git_commit()
    details = {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": build_time, "Experimental": "false",
               "GitCommit": commit, "GoVersion": "n/a", "KernelVersion": platform.release(),
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return {
        "Platform": {"Name": "dockweb Engine"},
        "Components": [
            {"Name": "Engine", "Version": ENGINE_VERSION, "Details": details},
            {"Name": "python", "Version": platform.python_version(),
             "Details": {"Implementation": platform.python_implementation()}},
        ],
        "Version": ENGINE_VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": commit,
        "GoVersion": "n/a",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": platform.release(),
        "Experimental": False,
        "BuildTime": build_time,
    }


def _git_commit() -> str:
    """Return the short commit the engine runs from: $DOCKWEB_GIT_COMMIT, else the checkout's HEAD, else ""."""
    if os.environ.get("DOCKWEB_GIT_COMMIT"):
        return os.environ["DOCKWEB_GIT_COMMIT"][:7]
    git = Path(__file__).parents[3] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:7]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:7]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line[:7]
    except OSError:
        pass
    return ""


# ---------------------------------------------------------------------------------------------------------------
# info

def info(engine: Any, req: Request) -> Response:
    """Describe the host and the engine's objects as GET /info does."""
    from engine.registry.config import registry_config

    counts = engine.containers.counts()
    host = _host_facts()
    cg = _cgroup_facts()
    config = engine.config
    warnings = []
    if cg["version"] == "1" and not cg["SwapLimit"]:
        warnings.append("WARNING: No swap limit support")
    if not host["IPv4Forwarding"]:
        warnings.append("WARNING: IPv4 forwarding is disabled")
    return json_response({
        "ID": _engine_id(config.root),
        "Containers": counts["total"],
        "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["stopped"],
        "Images": len(engine.images.list()),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", _fs_type(Path(config.root))]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": cg["MemoryLimit"],
        "SwapLimit": cg["SwapLimit"],
        "CpuCfsPeriod": cg["CpuCfsPeriod"],
        "CpuCfsQuota": cg["CpuCfsQuota"],
        "CPUShares": cg["CPUShares"],
        "CPUSet": cg["CPUSet"],
        "PidsLimit": cg["PidsLimit"],
        "OomKillDisable": cg["version"] == "1" and cg["MemoryLimit"],
        "IPv4Forwarding": host["IPv4Forwarding"],
        "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": threading.active_count(),
        "SystemTime": rfc3339(time.time_ns()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg["version"],
        "NEventsListener": _listeners.count,
        "KernelVersion": platform.release(),
        "OperatingSystem": host["OperatingSystem"],
        "OSVersion": host["OSVersion"],
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": registry_config(config.insecure_registries),
        "NCPU": host["NCPU"],
        "MemTotal": host["MemTotal"],
        "GenericResources": None,
        "DockerRootDir": str(config.root),
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": socket.gethostname(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": ENGINE_VERSION,
        "Runtimes": {"dockweb": {"path": "dockweb"}},
        "DefaultRuntime": "dockweb",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        # Supervisors outlive the daemon and are re-adopted on restart: that is what live restore means.
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [],
        "Containerd": None,
        "Warnings": warnings,
    })


@functools.lru_cache(maxsize=1)
def _host_facts() -> dict:
    os_release = _read_os_release()
    mem_total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_total = int(line.split()[1]) * 1024
                break
    try:
        forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1"
    except OSError:
        forwarding = False
    return {
        "OperatingSystem": os_release.get("PRETTY_NAME", "Linux"),
        "OSVersion": os_release.get("VERSION_ID", ""),
        "NCPU": len(os.sched_getaffinity(0)),
        "MemTotal": mem_total,
        "IPv4Forwarding": forwarding,
    }


def _read_os_release() -> dict[str, str]:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        out = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip().strip('"').strip("'")
        return out
    return {}


def _mounts() -> list[tuple[str, str]]:
    """List (mount point, filesystem type) from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            out.append((fields[4].replace("\\040", " "), fields[sep + 1]))
    return out


def _fs_type(path: Path) -> str:
    """Return the filesystem type of the mount holding path (longest mount point prefix)."""
    best, fstype = "", "unknown"
    target = str(path.resolve())
    for mountpoint, kind in _mounts():
        inside = target == mountpoint or target.startswith(mountpoint.rstrip("/") + "/")
        if inside and len(mountpoint) >= len(best):
            best, fstype = mountpoint, kind
    return fstype


def _cgroup_facts() -> dict:
    """Detect the cgroup version as dockerd does and what the controllers can limit.

    v2 only when /sys/fs/cgroup itself is the unified hierarchy. A hybrid host's /sys/fs/cgroup/unified can
    hold a stray controller (hugetlb on this machine) while every limit lives in the v1 hierarchies.
    """
    if dict(_mounts()).get("/sys/fs/cgroup") == "cgroup2":
        try:
            controllers = set(Path("/sys/fs/cgroup/cgroup.controllers").read_text().split())
        except OSError:
            controllers = set()
        cpu = "cpu" in controllers
        return {"version": "2", "MemoryLimit": "memory" in controllers, "SwapLimit": "memory" in controllers,
                "CpuCfsPeriod": cpu, "CpuCfsQuota": cpu, "CPUShares": cpu,
                "CPUSet": "cpuset" in controllers, "PidsLimit": "pids" in controllers}
    base = Path("/sys/fs/cgroup")
    return {
        "version": "1",
        "MemoryLimit": (base / "memory/memory.limit_in_bytes").exists(),
        "SwapLimit": (base / "memory/memory.memsw.limit_in_bytes").exists(),
        "CpuCfsPeriod": (base / "cpu/cpu.cfs_period_us").exists(),
        "CpuCfsQuota": (base / "cpu/cpu.cfs_quota_us").exists(),
        "CPUShares": (base / "cpu/cpu.shares").exists(),
        "CPUSet": (base / "cpuset").is_dir(),
        "PidsLimit": (base / "pids").is_dir(),
    }


def _engine_id(root: Path) -> str:
    """Return this engine's stable ID, kept in <root>/engine-id (created on first use)."""
    path = Path(root) / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    engine_id = str(uuid.uuid4())
    try:
        tmp = path.with_name(f".engine-id.{os.getpid()}.tmp")
        tmp.write_text(engine_id + "\n")
        os.replace(tmp, path)
    except OSError:
        # A read-only root still gets a stable answer for this process.
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dockweb:{socket.gethostname()}:{root}"))
    return engine_id


# ---------------------------------------------------------------------------------------------------------------
# events

class _Listeners:
    """Count the open GET /events streams (NEventsListener in /info)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n


_listeners = _Listeners()
_EVENT_FILTERS = {"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
                  "scope", "secret", "service", "type", "volume"}
_NAMED_FILTERS = ("container", "volume", "network", "plugin", "node", "service", "secret", "config", "daemon")
_DURATION = re.compile(r"((?:[0-9]*\.)?[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}


def time_arg_ns(req: Request, name: str) -> int | None:
    """Read a since/until time: unix seconds[.nanoseconds], RFC3339, or a Go duration meaning "that long ago"."""
    value = req.arg(name)
    if value is None or not value.strip():
        return None
    value = value.strip()
    m = re.fullmatch(r"(-?[0-9]+)(?:\.([0-9]{1,9}))?", value)
    if m:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    if re.fullmatch(f"(?:{_DURATION.pattern})+", value):
        ago = sum(float(n) * _DURATION_NS[u] for n, u in _DURATION.findall(value))
        return time.time_ns() - int(ago)
    try:
        return int(parse_time(value) * 1_000_000_000)
    except ValueError:
        raise InvalidParameter(
            f"invalid value for {name}: {value!r}: use unix seconds, an RFC3339 time or a duration like 10m"
        ) from None


def events(engine: Any, req: Request) -> StreamResponse:
    """Stream events as JSON lines: the buffered ones from since, then live ones until until (or forever)."""
    since_ns = time_arg_ns(req, "since")
    until_ns = time_arg_ns(req, "until")
    if since_ns is not None and until_ns is not None and until_ns < since_ns:
        raise InvalidParameter(
            f"`since` time ({req.arg('since')}) cannot be after `until` time ({req.arg('until')})")
    match = event_matcher(req.filters())
    legacy = version_tuple(req.api_version) < (1, 52)

    def chunks():
        _listeners.add(1)
        try:
            for ev in engine.events.follow(since_ns, until_ns):
                if ev is None:
                    yield b""       # idle tick: lets the server notice a client that went away
                elif match(ev):
                    yield json_line(ev.to_api(legacy=legacy))
        finally:
            _listeners.add(-1)

    return StreamResponse(chunks())


def event_matcher(flt: dict[str, list[str]]) -> Callable[[Event], bool]:
    """Build the events filter as dockerd applies it: keys are ANDed, values of one key ORed."""
    for key in flt:
        if key not in _EVENT_FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")

    def exact(key: str, *values: str | None) -> bool:
        return key not in flt or any(v in flt[key] for v in values if v is not None)

    def fuzzy(key: str, *values: str | None) -> bool:
        return key not in flt or any(v.startswith(f) for f in flt[key] for v in values if v is not None)

    # dockerd: "exec_create" without ": <cmd>" must match "exec_create: sh", so those match by prefix.
    fuzzy_action = bool({"health_status", "exec_create", "exec_start"} & set(flt.get("event", ())))
    labels = flt.get("label", ())

    def match(ev: Event) -> bool:
        attrs = ev.attributes
        if not (fuzzy if fuzzy_action else exact)("event", ev.action):
            return False
        if not exact("type", ev.type) or not exact("scope", "local"):
            return False
        for key in _NAMED_FILTERS:
            if not fuzzy(key, ev.actor_id, attrs.get("name")):
                return False
        if "image" in flt:
            name = attrs.get("name" if ev.type == "image" else "image")
            if not exact("image", ev.actor_id, name, _strip_tag(ev.actor_id), _strip_tag(name)):
                return False
        for wanted in labels:
            key, sep, value = wanted.partition("=")
            if key not in attrs or (sep and attrs[key] != value):
                return False
        return True

    return match


def _strip_tag(ref: str | None) -> str | None:
    """Drop the tag and digest from an image reference: localhost:5000/busybox:v1 -> localhost:5000/busybox."""
    if not ref:
        return ref
    ref = ref.split("@", 1)[0]
    colon = ref.rfind(":")
    return ref[:colon] if colon > ref.rfind("/") else ref


# ---------------------------------------------------------------------------------------------------------------
# disk usage

_DF_TYPES = ("container", "image", "volume", "build-cache")


def system_df(engine: Any, req: Request) -> Response:
    """Report disk usage per object kind (the v1.50 shape of GET /system/df)."""
    types = req.args("type") or list(_DF_TYPES)
    for t in types:
        if t not in _DF_TYPES:
            raise InvalidParameter(f"unknown disk usage type {t!r}: use one of {', '.join(_DF_TYPES)}")
    doc: dict = {"LayersSize": 0}
    if "image" in types:
        images = _images_df(engine)
        doc["LayersSize"] = images["LayersSize"]
        doc["Images"] = images["Images"]
    if "container" in types:
        doc["Containers"] = _call_df(engine, "containers")
    if "volume" in types:
        doc["Volumes"] = _call_df(engine, "volumes")
    if "build-cache" in types:
        doc["BuildCache"] = _call_df(engine, "builder")
    return json_response(doc)


def _call_df(engine: Any, attr: str) -> list:
    component = getattr(engine, attr, None)
    df = getattr(component, "df", None)
    return list(df()) if df is not None else []


def _images_df(engine: Any) -> dict:
    """Ask the image store for {"LayersSize", "Images"}; without images.df(), summarise images.list()."""
    df = getattr(engine.images, "df", None)
    if df is not None:
        return df()
    users = getattr(engine.containers, "image_users", None)
    summaries = []
    for image in engine.images.list():
        cfg = (image.config or {}).get("config") or {}
        try:
            created = int(parse_time(image.created)) if image.created else 0
        except ValueError:
            created = 0
        summaries.append({
            "Id": image.id, "ParentId": "", "RepoTags": list(image.repo_tags),
            "RepoDigests": list(image.repo_digests), "Created": created, "Size": image.size,
            "SharedSize": -1, "Labels": cfg.get("Labels") or {},
            "Containers": len(users(image.id)) if users is not None else -1,
        })
    # Shared layers are counted once per image here: an upper bound until the store reports real layer sizes.
    return {"LayersSize": sum(s["Size"] for s in summaries), "Images": summaries}


# ---------------------------------------------------------------------------------------------------------------
# auth and plugins

def auth(engine: Any, req: Request) -> Response:
    """POST /auth: check the credentials against the registry (REGISTRY helper); 401 with its answer if refused."""
    from engine.registry import Unauthorized

    body = req.json()
    if not isinstance(body, dict):
        raise InvalidParameter("invalid login request: expected a JSON object with username, password, serveraddress")
    if getattr(engine, "registry", None) is None:
        server = body.get("serveraddress") or "https://index.docker.io/v1/"
        return json_response({"message": f"login attempt to {server} failed: this engine has no registry client"},
                             401)
    try:
        status = engine.registry.login(body)
    except Unauthorized as e:
        return json_response({"message": e.message}, 401)
    return json_response({"Status": status, "IdentityToken": ""})


def list_plugins(engine: Any, req: Request) -> Response:
    """List managed plugins: the engine has none."""
    return json_response([])


def inspect_plugin(engine: Any, req: Request, name: str) -> Response:
    """Inspect a plugin: none exist, so always 404 (docker inspect falls through to here)."""
    raise NotFound(f'plugin "{name}" not found')


ROUTES = [
    ("HEAD", r"/_ping", ping),
    ("GET", r"/_ping", ping),
    ("GET", r"/version", version),
    ("GET", r"/info", info),
    ("GET", r"/events", events),
    ("GET", r"/system/df", system_df),
    ("POST", r"/auth", auth),
    ("GET", r"/plugins", list_plugins),
    ("GET", r"/plugins/(?P<name>.+)/json", inspect_plugin),
]
