"""Docker create options + image config -> validated create record -> OCI runtime spec (config.json) + runtime.json."""

from __future__ import annotations

import ipaddress
import json
import os
import posixpath
import re
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from engine.containers import seccomp_profile
from engine.containers.signals import parse_signal
from engine.errors import ContainerStartError, InvalidParameter, SystemFailure
from engine.runtime.caps import CAP_NAMES

# ------------------------------------------------------------------------------------------- Docker's defaults

DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
IN_CONTAINER_INIT = "/sbin/docker-init"  # moby's inContainerInitPath

# Index = bit number (linux/capability.h): one table for the engine, kept by the runtime.
CAPABILITIES = CAP_NAMES

# moby oci/caps DefaultCapabilities, in moby's order.
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]  # fmt: skip

# moby daemon/pkg/oci/defaults.go (Docker 28, Engine API 1.50): the fixed list, in moby's order.
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats", "/sys/devices/virtual/powercap",
    "/sys/firmware",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_masked_paths(sys_root: str = "/sys") -> list[str]:
    """Return moby's masked paths: the fixed list plus each CPU's thermal_throttle dir the host has."""
    return list(_masked_paths_for(sys_root))


@lru_cache(maxsize=4)
def _masked_paths_for(sys_root: str) -> tuple[str, ...]:
    # moby adds /sys/devices/system/cpu/cpuN/thermal_throttle for every CPU where it exists
    # (GHSA-6fw5-f8r9-fgfm), computed once per process: the host's CPUs do not change while the daemon runs.
    extra = []
    cpu_dir = os.path.join(sys_root, "devices", "system", "cpu")
    try:
        names = os.listdir(cpu_dir)
    except OSError:
        names = []
    for n in sorted((x for x in names if x.startswith("cpu") and x[3:].isdigit()), key=lambda x: int(x[3:])):
        if os.path.exists(os.path.join(cpu_dir, n, "thermal_throttle")):
            extra.append(f"/sys/devices/system/cpu/{n}/thermal_throttle")
    return tuple(MASKED_PATHS + extra)


# The device nodes runc creates in every container's /dev (runc's AllowedDevices with a path).
DEFAULT_DEVICES = [
    ("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/full", 1, 7),
    ("/dev/random", 1, 8), ("/dev/urandom", 1, 9), ("/dev/tty", 5, 0),
]


def _dev_rule(allow: bool, access: str, kind: str | None = None, major: int | None = None,
              minor: int | None = None) -> dict:
    # OCI: a missing type means "a" (all), a missing major/minor means the wildcard.
    rule: dict = {"allow": allow}
    if kind:
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


# moby's DefaultLinuxSpec device cgroup list (deny all, a few allows, fuse denied) ...
DOCKER_DEVICE_RULES = [
    _dev_rule(False, "rwm"),
    _dev_rule(True, "rwm", "c", 1, 5), _dev_rule(True, "rwm", "c", 1, 3), _dev_rule(True, "rwm", "c", 1, 9),
    _dev_rule(True, "rwm", "c", 1, 8), _dev_rule(True, "rwm", "c", 5, 0), _dev_rule(True, "rwm", "c", 5, 1),
    _dev_rule(False, "rwm", "c", 10, 229),
]
# ... followed by what runc appends to every container (specconv.AllowedDevices): mknod of anything, the
# default nodes, every pts, /dev/ptmx and /dev/net/tun. Together they are the allow-list the kernel enforces.
RUNC_DEVICE_RULES = [
    _dev_rule(True, "m", "c"), _dev_rule(True, "m", "b"),
    _dev_rule(True, "rwm", "c", 1, 3), _dev_rule(True, "rwm", "c", 1, 8), _dev_rule(True, "rwm", "c", 1, 7),
    _dev_rule(True, "rwm", "c", 5, 0), _dev_rule(True, "rwm", "c", 1, 5), _dev_rule(True, "rwm", "c", 1, 9),
    _dev_rule(True, "rwm", "c", 136), _dev_rule(True, "rwm", "c", 5, 2), _dev_rule(True, "rwm", "c", 10, 200),
]

ULIMIT_NAMES = {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
                "rtprio", "rttime", "sigpending", "stack"}  # go-units: "as" deliberately absent

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

# ------------------------------------------------------------------------ JSON types, checked as Go decodes them
# Type descriptors: ("str", go) ("bool",) ("int", go) ("strslice",) ("list", elem, go) ("map", value, go)
# ("obj", struct_name, fields, go) ("any",). Go's encoding/json ignores unknown keys, matches keys
# case-insensitively, treats null as "leave the zero value", and reports the first type mismatch as
# `json: cannot unmarshal <json kind> into Go struct field <Struct>.<path> of type <go type>`.

_STR = ("str", "string")
_BOOL = ("bool",)
_I64 = ("int", "int64")
_INT = ("int", "int")
_ANY = ("any",)
_STRS = ("list", _STR, "[]string")
_SSLICE = ("strslice",)
_STRMAP = ("map", _STR, "map[string]string")
_EMPTY_OBJ = ("obj", "", {}, "struct {}")
_INT_RANGES = {
    "int": (-(2**63), 2**63 - 1), "int64": (-(2**63), 2**63 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint": (0, 2**64 - 1), "uint64": (0, 2**64 - 1), "uint32": (0, 2**32 - 1), "uint16": (0, 2**16 - 1),
    "time.Duration": (-(2**63), 2**63 - 1),
}


def _named(go: str) -> tuple:
    return ("str", go)


_HEALTH = ("obj", "HealthConfig", {
    "Test": _STRS, "Interval": ("int", "time.Duration"), "Timeout": ("int", "time.Duration"),
    "StartPeriod": ("int", "time.Duration"), "StartInterval": ("int", "time.Duration"), "Retries": _INT,
}, "container.HealthConfig")

CONFIG_FIELDS: dict[str, tuple] = {
    "Hostname": _STR, "Domainname": _STR, "User": _STR, "AttachStdin": _BOOL, "AttachStdout": _BOOL,
    "AttachStderr": _BOOL, "ExposedPorts": ("map", _EMPTY_OBJ, "nat.PortSet"), "Tty": _BOOL, "OpenStdin": _BOOL,
    "StdinOnce": _BOOL, "Env": _STRS, "Cmd": _SSLICE, "Healthcheck": _HEALTH, "ArgsEscaped": _BOOL,
    "Image": _STR, "Volumes": ("map", _EMPTY_OBJ, "map[string]struct {}"), "WorkingDir": _STR,
    "Entrypoint": _SSLICE, "NetworkDisabled": _BOOL, "MacAddress": _STR, "OnBuild": _STRS, "Labels": _STRMAP,
    "StopSignal": _STR, "StopTimeout": _INT, "Shell": _SSLICE,
}

_THROTTLE = ("list", ("obj", "ThrottleDevice", {"Path": _STR, "Rate": ("int", "uint64")},
                      "blkiodev.ThrottleDevice"), "[]*blkiodev.ThrottleDevice")
_MOUNT = ("obj", "Mount", {
    "Type": _named("mount.Type"), "Source": _STR, "Target": _STR, "ReadOnly": _BOOL,
    "Consistency": _named("mount.Consistency"),
    "BindOptions": ("obj", "BindOptions", {
        "Propagation": _named("mount.Propagation"), "NonRecursive": _BOOL, "CreateMountpoint": _BOOL,
        "ReadOnlyNonRecursive": _BOOL, "ReadOnlyForceRecursive": _BOOL}, "mount.BindOptions"),
    "VolumeOptions": ("obj", "VolumeOptions", {
        "NoCopy": _BOOL, "Labels": _STRMAP, "Subpath": _STR,
        "DriverConfig": ("obj", "Driver", {"Name": _STR, "Options": _STRMAP}, "mount.Driver")},
        "mount.VolumeOptions"),
    "TmpfsOptions": ("obj", "TmpfsOptions", {
        "SizeBytes": _I64, "Mode": ("int", "fs.FileMode"), "Options": ("list", _STRS, "[][]string")},
        "mount.TmpfsOptions"),
    "ImageOptions": _ANY, "ClusterOptions": _ANY,
}, "mount.Mount")
_INT_RANGES["fs.FileMode"] = (0, 2**32 - 1)

HOST_CONFIG_FIELDS: dict[str, tuple] = {
    # container.Resources (embedded)
    "CpuShares": _I64, "Memory": _I64, "NanoCpus": _I64, "CgroupParent": _STR, "BlkioWeight": ("int", "uint16"),
    "BlkioWeightDevice": ("list", ("obj", "WeightDevice", {"Path": _STR, "Weight": ("int", "uint16")},
                                   "blkiodev.WeightDevice"), "[]*blkiodev.WeightDevice"),
    "BlkioDeviceReadBps": _THROTTLE, "BlkioDeviceWriteBps": _THROTTLE, "BlkioDeviceReadIOps": _THROTTLE,
    "BlkioDeviceWriteIOps": _THROTTLE, "CpuPeriod": _I64, "CpuQuota": _I64, "CpuRealtimePeriod": _I64,
    "CpuRealtimeRuntime": _I64, "CpusetCpus": _STR, "CpusetMems": _STR,
    "Devices": ("list", ("obj", "DeviceMapping", {"PathOnHost": _STR, "PathInContainer": _STR,
                                                  "CgroupPermissions": _STR}, "container.DeviceMapping"),
                "[]container.DeviceMapping"),
    "DeviceCgroupRules": _STRS, "DeviceRequests": ("list", _ANY, "[]container.DeviceRequest"),
    "KernelMemory": _I64, "KernelMemoryTCP": _I64, "MemoryReservation": _I64, "MemorySwap": _I64,
    "MemorySwappiness": _I64, "OomKillDisable": _BOOL, "PidsLimit": _I64,
    "Ulimits": ("list", ("obj", "Ulimit", {"Name": _STR, "Hard": _I64, "Soft": _I64}, "units.Ulimit"),
                "[]*units.Ulimit"),
    "CpuCount": _I64, "CpuPercent": _I64, "IOMaximumIOps": ("int", "uint64"), "IOMaximumBandwidth": ("int", "uint64"),
    # container.HostConfig
    "Binds": _STRS, "ContainerIDFile": _STR,
    "LogConfig": ("obj", "LogConfig", {"Type": _STR, "Config": _STRMAP}, "container.LogConfig"),
    "NetworkMode": _named("container.NetworkMode"),
    "PortBindings": ("map", ("list", ("obj", "PortBinding", {"HostIp": _STR, "HostPort": _STR}, "nat.PortBinding"),
                             "[]nat.PortBinding"), "nat.PortMap"),
    "RestartPolicy": ("obj", "RestartPolicy", {"Name": _named("container.RestartPolicyMode"),
                                               "MaximumRetryCount": _INT}, "container.RestartPolicy"),
    "AutoRemove": _BOOL, "VolumeDriver": _STR, "VolumesFrom": _STRS,
    "ConsoleSize": ("list", ("int", "uint"), "[2]uint"),
    "Annotations": _STRMAP, "CapAdd": _SSLICE, "CapDrop": _SSLICE, "CgroupnsMode": _named("container.CgroupnsMode"),
    "Dns": _STRS, "DnsOptions": _STRS, "DnsSearch": _STRS, "ExtraHosts": _STRS, "GroupAdd": _STRS,
    "IpcMode": _named("container.IpcMode"), "Cgroup": _named("container.CgroupSpec"), "Links": _STRS,
    "OomScoreAdj": _INT, "PidMode": _named("container.PidMode"), "Privileged": _BOOL, "PublishAllPorts": _BOOL,
    "ReadonlyRootfs": _BOOL, "SecurityOpt": _STRS, "StorageOpt": _STRMAP, "Tmpfs": _STRMAP,
    "UTSMode": _named("container.UTSMode"), "UsernsMode": _named("container.UsernsMode"), "ShmSize": _I64,
    "Sysctls": _STRMAP, "Runtime": _STR, "Isolation": _named("container.Isolation"), "MaskedPaths": _STRS,
    "ReadonlyPaths": _STRS, "Init": _BOOL, "Mounts": ("list", _MOUNT, "[]mount.Mount"),
}

CREATE_FIELDS: dict[str, tuple] = {
    **CONFIG_FIELDS,
    "HostConfig": ("obj", "HostConfig", HOST_CONFIG_FIELDS, "container.HostConfig"),
    "NetworkingConfig": _ANY,
}


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _type_error(kind: str, go: str, struct: str, path: str) -> InvalidParameter:
    return InvalidParameter(
        f"invalid JSON: json: cannot unmarshal {kind} into Go struct field {struct}.{path} of type {go}")


def _canonical_keys(obj: dict, fields: dict) -> dict:
    """Map obj's keys onto the known field names the way Go does (exact, then case-insensitive); drop the rest."""
    lower = {name.lower(): name for name in fields}
    out: dict = {}
    for key, value in obj.items():
        name = key if key in fields else lower.get(key.lower())
        if name is not None:
            out[name] = value
    return out


def _check(value: Any, t: tuple, struct: str, path: str) -> Any:
    """Check value against a type descriptor; return it with object keys canonicalised."""
    if value is None or t[0] == "any":
        return value
    kind = t[0]
    if kind == "str":
        if not isinstance(value, str):
            raise _type_error(_json_kind(value), t[1], struct, path)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(_json_kind(value), "bool", struct, path)
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(_json_kind(value), t[1], struct, path)
        lo, hi = _INT_RANGES[t[1]]
        if isinstance(value, float) or not lo <= value <= hi:
            raise _type_error(f"number {value}", t[1], struct, path)
    elif kind == "strslice":
        # strslice.StrSlice takes a string or a list of strings; its fallback error names type string.
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) or v is None for v in value):
            raise _type_error(_json_kind(value), "string", struct, path)
        return ["" if v is None else v for v in value]
    elif kind == "list":
        if not isinstance(value, list):
            raise _type_error(_json_kind(value), t[2], struct, path)
        return [_check(v, t[1], struct, path) for v in value]
    elif kind == "map":
        if not isinstance(value, dict):
            raise _type_error(_json_kind(value), t[2], struct, path)
        return {k: _check(v, t[1], struct, path) for k, v in value.items()}
    elif kind == "obj":
        if not isinstance(value, dict):
            raise _type_error(_json_kind(value), t[3], struct, path)
        fields = t[2]
        inner = t[1] or struct
        return {k: _check(v, fields[k], inner, f"{path}.{k}") for k, v in _canonical_keys(value, fields).items()}
    return value


def check_create_body(body: Any) -> dict:
    """Type-check a create body like Go's decoder; return {"Config": {...}, "HostConfig": {...}} canonicalised."""
    if not isinstance(body, dict):
        raise InvalidParameter(f"invalid JSON: json: cannot unmarshal {_json_kind(body)} into Go value of type "
                               "container.CreateRequest")
    top = {}
    for key, value in _canonical_keys(body, CREATE_FIELDS).items():
        top[key] = _check(value, CREATE_FIELDS[key], "CreateRequest", key)
    host = top.pop("HostConfig", None) or {}
    top.pop("NetworkingConfig", None)
    return {"Config": top, "HostConfig": host}


# --------------------------------------------------------------------------------------------- create records


@dataclass
class RestartPolicy:
    name: str = "no"  # "no" | "always" | "unless-stopped" | "on-failure"
    maximum_retry_count: int = 0


@dataclass
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass
class MountRequest:
    """One mount the user asked for (from Binds or Mounts), before volumes are resolved to host paths."""

    type: str  # "bind" | "volume" | "tmpfs"
    destination: str
    source: str = ""  # host path (bind), volume name ("" = anonymous volume), "" for tmpfs
    read_only: bool = False
    propagation: str = ""  # bind only; "" means Docker's default rprivate
    non_recursive: bool = False
    create_mountpoint: bool = False
    nocopy: bool = False
    subpath: str = ""
    tmpfs_data: str = ""  # tmpfs mount data, e.g. "size=64m,mode=1777"
    volume_driver: str = ""
    volume_labels: dict = field(default_factory=dict)
    volume_options: dict = field(default_factory=dict)
    from_binds: bool = False
    mode: str = ""  # the Binds mode string as given ("ro,z")


@dataclass
class MountPoint:
    """A mount resolved to its host source, ready for the OCI spec."""

    destination: str
    source: str
    type: str = "bind"  # "bind" | "tmpfs"
    read_only: bool = False
    propagation: str = ""
    non_recursive: bool = False
    data: str = ""  # tmpfs options


@dataclass
class CreateOptions:
    """The validated, normalised POST /containers/create body."""

    image: str
    name: str | None = None
    # Config
    hostname: str = ""
    domainname: str = ""
    user: str = ""
    env: list[str] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: dict[str, dict] = field(default_factory=dict)
    volumes: dict[str, dict] = field(default_factory=dict)
    healthcheck: dict | None = None
    network_disabled: bool = False
    on_build: list[str] = field(default_factory=list)
    shell: list[str] | None = None
    # HostConfig
    binds: list[str] = field(default_factory=list)
    mounts: list[MountRequest] = field(default_factory=list)  # Binds then Mounts, validated
    tmpfs: dict[str, str] = field(default_factory=dict)
    volumes_from: list[str] = field(default_factory=list)
    volume_driver: str = ""
    memory: int = 0
    memory_swap: int = 0  # as sent; 0 with a memory limit means 2 x memory (build_spec, inspect); -1 = unlimited
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None  # None = unlimited
    blkio_weight: int = 0
    oom_kill_disable: bool = False
    oom_score_adj: int = 0
    readonly_rootfs: bool = False
    cap_add: list[str] = field(default_factory=list)  # normalised: "CAP_X" or "ALL"
    cap_drop: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)  # the resulting bounding set
    security_opt: list[str] = field(default_factory=list)
    seccomp_profile: str = ""  # "" = Docker's default, "unconfined", or a profile's JSON text
    no_new_privileges: bool = False
    privileged: bool = False
    init: bool | None = None
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    network_mode: str = "bridge"  # "bridge" ("default" maps here) | "host" | "none" | "container:<ref>" | <network>
    port_bindings: dict[str, list[dict]] = field(default_factory=dict)
    publish_all_ports: bool = False
    console_size: tuple[int, int] = (0, 0)  # (height, width)
    shm_size: int = DEFAULT_SHM_SIZE
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: list[Ulimit] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    log_config: dict = field(default_factory=lambda: {"Type": "json-file", "Config": {}})
    group_add: list[str] = field(default_factory=list)
    ipc_mode: str = "private"  # "private" | "shareable" | "none" | "host"
    pid_mode: str = ""
    uts_mode: str = ""  # "" | "host"
    cgroupns_mode: str = "private"  # "private" | "host"
    cgroup_parent: str = ""
    device_cgroup_rules: list[dict] = field(default_factory=list)  # OCI device rules from DeviceCgroupRules
    masked_paths: list[str] | None = None  # None = Docker's defaults
    readonly_paths: list[str] | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    runtime: str = "runc"
    warnings: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict)  # {"Config": ..., "HostConfig": ...} as sent (canonical keys)


def _bad(msg: str) -> InvalidParameter:
    return InvalidParameter(msg)


def _go_parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(text)


def normalize_capabilities(caps: Iterable[str]) -> list[str]:
    """Upper-case, add the CAP_ prefix, keep "ALL"; ValueError(`unknown capability: "CAP_X"`) for unknown names."""
    out = []
    for c in caps:
        c = c.upper()
        if c == "ALL":
            out.append(c)
            continue
        if not c.startswith("CAP_"):
            c = "CAP_" + c
        if c not in CAPABILITIES:
            raise ValueError(f'unknown capability: "{c}"')
        out.append(c)
    return out


def tweak_capabilities(adds: Iterable[str], drops: Iterable[str], basics: Sequence[str] = DEFAULT_CAPS) -> list[str]:
    """Apply CapAdd/CapDrop to the default set as moby's TweakCapabilities does (names already normalised)."""
    adds, drops = list(adds), list(drops)
    if not adds and not drops:
        return list(basics)
    if "ALL" in adds:
        caps = [c for c in CAPABILITIES if c not in drops]
    elif "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in basics if c not in drops] + adds
    # moby can emit a name twice (--cap-add CHOWN); a set of capabilities has no duplicates, so drop them.
    return list(dict.fromkeys(caps))


def parse_security_opts(opts: Sequence[str]) -> tuple[str, bool, list[str]]:
    """Parse SecurityOpt like dockerd's parseSecurityOpt: return (seccomp profile, no_new_privileges, warnings)."""
    seccomp, nnp, warnings = "", False, []
    for opt in opts:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":  # SELinux labelling off: there is no SELinux labelling here anyway
            continue
        if "=" in opt:
            key, value = opt.split("=", 1)
        elif ":" in opt:
            key, value = opt.split(":", 1)
        else:
            raise _bad(f'invalid --security-opt 1: "{opt}"')
        if key == "label":
            continue  # SELinux labels: nothing to apply on a host without SELinux, as dockerd does there
        if key == "apparmor":
            warnings.append(f"AppArmor is not supported by this engine: security option {opt!r} is ignored")
        elif key == "seccomp":
            seccomp = value
        elif key == "no-new-privileges":
            try:
                nnp = _go_parse_bool(value)
            except ValueError:
                raise _bad(f'invalid --security-opt 2: "{opt}"') from None
        else:
            raise _bad(f'invalid --security-opt 2: "{opt}"')
    if seccomp not in ("", "unconfined", "default", "builtin"):
        try:
            profile = json.loads(seccomp)
            if not isinstance(profile, dict):
                raise ValueError("a seccomp profile is a JSON object")
            seccomp_profile.resolve(profile, DEFAULT_CAPS, kernel="99.0")  # structure check only
        except (ValueError, KeyError, TypeError) as e:
            raise _bad(f"Decoding seccomp profile failed: {e}") from None
    if seccomp in ("default", "builtin"):
        seccomp = ""
    return seccomp, nnp, warnings


def _split_proto_port(raw: str) -> tuple[str, str]:
    parts = raw.split("/", 1)
    if raw == "":
        return "", ""
    if len(parts) == 1:
        return "tcp", raw
    return parts[1] or "tcp", parts[0]


def _valid_port(text: str, allow_range: bool) -> bool:
    # go-connections nat: ParseUint(port, 10, 16) per piece; a host port may be a range "8000-8010".
    if text == "":
        return True
    pieces = text.split("-", 1) if allow_range else [text]
    if not all(p.isascii() and p.isdigit() and int(p) <= 65535 for p in pieces):
        return False
    return len(pieces) == 1 or int(pieces[0]) <= int(pieces[1])


def _validate_port_bindings(bindings: dict) -> dict:
    out = {}
    for port, lst in bindings.items():
        _proto, num = _split_proto_port(port)
        if not _valid_port(num, allow_range=False):
            raise _bad(f'invalid port specification: "{num}"')
        items = []
        for pb in lst or []:
            pb = pb or {}
            host_port = pb.get("HostPort") or ""
            if not _valid_port(_split_proto_port(host_port)[1], allow_range=True):
                raise _bad(f'invalid port specification: "{host_port}"')
            items.append({"HostIp": pb.get("HostIp") or "", "HostPort": host_port})
        out[port] = items
    return out


def _validate_extra_host(val: str) -> None:
    # Docker accepts "name:ip" (split on the first colon, so IPv6 works) and, since 25.0, "name=ip" and "[ip]".
    sep = "=" if "=" in val else ":"
    name, found, ip = val.partition(sep)
    if not found or not name:
        raise _bad(f'bad format for add-host: "{val}"')
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise _bad(f'invalid IP address in add-host: "{ip}"') from None


def _split_extra_host(val: str) -> tuple[str, str]:
    sep = "=" if "=" in val else ":"
    name, _, ip = val.partition(sep)
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    return name, ip


_RW_MODES = {"rw", "ro"}
_LABEL_MODES = {"z", "Z"}
_PROPAGATION_MODES = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
_COPY_MODES = {"nocopy"}
_CONSISTENCY_MODES = {"consistent", "cached", "delegated"}


def _valid_mount_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for opt in mode.split(","):
        for i, group in enumerate((_RW_MODES, _LABEL_MODES, _PROPAGATION_MODES, _COPY_MODES, _CONSISTENCY_MODES)):
            if opt in group:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1


def _clean(p: str) -> str:
    return posixpath.normpath(p) if p else p


def _validate_target(target: str, kind: str) -> None:
    if not target:
        raise _bad(f'invalid mount config for type "{kind}": field Target must not be empty')
    if _clean(target.replace("\\", "/")) == "/":
        raise _bad(f"invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'")
    if not target.replace("\\", "/").startswith("/"):
        raise _bad(f"invalid mount config for type \"{kind}\": invalid mount path: '{target}' mount path must be "
                   "absolute")


def parse_bind(raw: str, volume_driver: str = "") -> MountRequest:
    """Parse one HostConfig.Binds entry ("src:dst[:mode]", "vol:dst", "/dst") as moby's linux parser does."""
    arr = raw.split(":")
    if arr[0] == "":
        raise _bad(f"invalid volume specification: '{raw}'")
    source, mode = "", ""
    if len(arr) == 1:
        target = arr[0]
    elif len(arr) == 2:
        if _valid_mount_mode(arr[1]):
            raise _bad(f"invalid volume specification: '{raw}'")  # "/foo:rw": a mode needs a destination
        source, target = arr
    elif len(arr) == 3:
        source, target, mode = arr
    else:
        raise _bad(f"invalid volume specification: '{raw}'")
    if not _valid_mount_mode(mode):
        raise _bad(f"invalid mode: {mode}")
    kind = "bind" if source.startswith("/") else "volume"
    modes = mode.split(",") if mode else []
    try:
        _validate_target(target, kind)
    except InvalidParameter as e:
        raise _bad(f"invalid volume specification: '{raw}': {e.message}") from None
    propagation = next((m for m in modes if m in _PROPAGATION_MODES), "")
    if kind == "volume" and propagation:
        raise _bad(f"invalid volume specification: '{raw}': invalid mount config for type \"volume\": "
                   "field BindOptions must not be specified")
    return MountRequest(
        type=kind, destination=_clean(target), source=_clean(source) if kind == "bind" else source,
        read_only="ro" in modes, propagation=propagation, nocopy="nocopy" in modes, from_binds=True, mode=mode,
        volume_driver=volume_driver if kind == "volume" else "")


def convert_tmpfs_options(opts: dict | None, read_only: bool) -> str:
    """Turn Mount.TmpfsOptions into mount data as moby's ConvertTmpfsOptions does ("ro,mode=1777,size=64m")."""
    raw = ["ro"] if read_only else []
    opts = opts or {}
    if opts.get("Mode"):
        raw.append(f"mode={opts['Mode']:o}")
    if opts.get("SizeBytes"):
        size, suffix = opts["SizeBytes"], ""
        for s in ("k", "m", "g"):
            if size % 1024:
                break
            size, suffix = size // 1024, s
        raw.append(f"size={size}{suffix}")
    for o in opts.get("Options") or []:
        if not o or len(o) > 2:
            raise _bad(f"invalid tmpfs option {o!r}")
        raw.append(o[0] if len(o) == 1 else f"{o[0]}={o[1]}")
    return ",".join(raw)


def parse_mount(m: dict) -> MountRequest:
    """Validate one HostConfig.Mounts entry as moby's ValidateMountConfig does (host paths are not checked)."""
    kind = m.get("Type") or ""
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("image", "npipe", "cluster"):
            raise _bad(f'invalid mount config for type "{kind}": mount type {kind} is not supported by this engine')
        raise _bad(f'invalid mount config for type "{kind}": mount type unknown')
    target = m.get("Target") or ""
    _validate_target(target, kind)
    source = m.get("Source") or ""
    bind_opts, vol_opts = m.get("BindOptions"), m.get("VolumeOptions")
    pre = f'invalid mount config for type "{kind}": '
    req = MountRequest(type=kind, destination=_clean(target), read_only=bool(m.get("ReadOnly")))
    if kind == "bind":
        if not source:
            raise _bad(pre + "field Source must not be empty")
        if vol_opts is not None:
            raise _bad(pre + "field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise _bad(pre + f"invalid mount path: '{source}' mount path must be absolute")
        bind_opts = bind_opts or {}
        prop = bind_opts.get("Propagation") or ""
        if prop and prop not in _PROPAGATION_MODES:
            raise _bad(pre + f"invalid propagation mode: {prop}")
        req.source = _clean(source)
        req.propagation = prop
        req.non_recursive = bool(bind_opts.get("NonRecursive"))
        req.create_mountpoint = bool(bind_opts.get("CreateMountpoint"))
    elif kind == "volume":
        if bind_opts is not None:
            raise _bad(pre + "field BindOptions must not be specified")
        vol_opts = vol_opts or {}
        subpath = vol_opts.get("Subpath") or ""
        if subpath:
            if not source:
                raise _bad(pre + "must not set Subpath when using anonymous volumes")
            if subpath.startswith("/") or ".." in subpath.split("/"):
                raise _bad(pre + "subpath must be a relative path within the volume")
        if req.read_only and not source:
            raise _bad(pre + "must not set ReadOnly mode when using anonymous volumes")
        driver = vol_opts.get("DriverConfig") or {}
        req.source = source
        req.nocopy = bool(vol_opts.get("NoCopy"))
        req.subpath = subpath
        req.volume_labels = dict(vol_opts.get("Labels") or {})
        req.volume_driver = driver.get("Name") or ""
        req.volume_options = dict(driver.get("Options") or {})
    else:
        if bind_opts is not None:
            raise _bad(pre + "field BindOptions must not be specified")
        if source:
            raise _bad(pre + "field Source must not be specified")
        req.tmpfs_data = convert_tmpfs_options(m.get("TmpfsOptions"), req.read_only)
    return req


def parse_cpuset(spec: str) -> set[int]:
    """Parse "0-3,5" into {0,1,2,3,5}; ValueError on a bad format."""
    out: set[int] = set()
    if spec == "":
        return out
    for part in spec.split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"invalid format: {spec}")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"invalid format: {spec}")
        out.update(range(a, b + 1))
    return out


_DEVICE_RULE_RE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")


def parse_device_cgroup_rule(rule: str) -> dict:
    """Parse "c 1:3 rwm" into an OCI device rule, as moby's AppendDevicePermissionsFromCgroupRules does."""
    m = _DEVICE_RULE_RE.match("a *:* rwm" if rule == "a" else rule)
    if not m:
        raise _bad(f"invalid device cgroup rule format: '{rule}'")
    kind, major, minor, access = m.groups()
    # moby writes -1 for a wildcard major/minor in user rules (OCI reads it like an absent value).
    return _dev_rule(True, access, kind, -1 if major == "*" else int(major), -1 if minor == "*" else int(minor))


_IPC_NAMESPACED = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                   "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def validate_sysctl(key: str, host_net: bool, host_ipc: bool, host_uts: bool) -> None:
    """Accept only namespaced sysctls, with runc's wording (Docker reports these when the container starts)."""
    if key in _IPC_NAMESPACED or key.startswith("fs.mqueue."):
        if host_ipc:
            raise _bad(f'sysctl "{key}" is not allowed in the hosts ipc namespace')
        return
    if key.startswith("net."):
        if host_net:
            raise _bad(f'sysctl "{key}" not allowed in host network namespace')
        return
    if not host_uts:
        if key == "kernel.domainname":
            return
        if key == "kernel.hostname":
            raise _bad(f'sysctl "{key}" is not allowed as it conflicts with the OCI "hostname" field')
    raise _bad(f'sysctl "{key}" is not in a separate kernel namespace')


def _host_ncpu() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_list(n: int) -> str:
    return "0" if n <= 1 else f"0-{n - 1}"


def _check_container_network_mode(cfg: dict, hc: dict) -> None:
    """Refuse what a shared network namespace cannot have (runconfig validateNetContainerMode)."""
    if cfg.get("Hostname"):
        raise _bad("conflicting options: hostname and the network mode")
    if hc.get("Links"):
        raise _bad("conflicting options: container type network can't be used with links. "
                   "This would result in undefined behavior")
    if hc.get("Dns"):
        raise _bad("conflicting options: dns and the network mode")
    if hc.get("ExtraHosts"):
        raise _bad("conflicting options: custom host-to-IP mapping and the network mode")
    if cfg.get("MacAddress"):
        raise _bad("conflicting options: mac-address and the network mode")
    if hc.get("PortBindings") or hc.get("PublishAllPorts"):
        raise _bad("conflicting options: port publishing and the container type network mode")
    if cfg.get("ExposedPorts"):
        raise _bad("conflicting options: port exposing and the container type network mode")


def parse_create_body(body: dict, name: str | None, *, ncpu: int | None = None) -> CreateOptions:
    """Validate a POST /containers/create body into CreateOptions; InvalidParameter (400) with dockerd's words."""
    checked = check_create_body(body)
    cfg, hc = checked["Config"], checked["HostConfig"]
    if not cfg:
        raise _bad("Config cannot be empty in order to create a container")
    if name is not None and name != "" and not NAME_RE.match(name):
        raise _bad(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    ncpu = ncpu or _host_ncpu()

    def c(key: str, default: Any = None) -> Any:
        v = cfg.get(key)
        return default if v is None else v

    def h(key: str, default: Any = None) -> Any:
        v = hc.get(key)
        return default if v is None else v

    image = c("Image", "")
    if not image:
        raise _bad("Config.Image is required: name the image to create the container from")
    opts = CreateOptions(image=image, name=name.lstrip("/") if name else None)
    opts.raw = {"Config": cfg, "HostConfig": hc}

    # ---- network mode first: later checks depend on it (runconfig validateNetMode)
    mode = h("NetworkMode", "") or "default"
    if mode == "default":
        mode = "bridge"
    if mode.startswith("container:") or mode == "container":
        if mode in ("container", "container:"):
            raise _bad("Invalid network mode: invalid container format container:<name|id>")
        _check_container_network_mode(cfg, hc)
    elif mode not in ("bridge", "host", "none") and not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", mode):
        raise _bad(f"network {mode} not found")
    # A user-defined network's existence is the network manager's to check (engine.network).
    opts.network_mode = mode
    opts.uts_mode = h("UTSMode", "")
    if opts.uts_mode not in ("", "host"):
        raise _bad(f"invalid UTS mode: {opts.uts_mode}")
    if opts.uts_mode == "host" and c("Hostname"):
        raise _bad("conflicting options: hostname and the UTS mode")
    if mode == "host" and h("Links"):
        raise _bad("conflicting options: host type networking can't be used with links. "
                   "This would result in undefined behavior")
    if h("Isolation", "") not in ("", "default"):
        raise _bad(f"invalid isolation '{hc['Isolation']}' on linux")
    if h("CpuRealtimePeriod", 0) > 0 or h("CpuRealtimeRuntime", 0) > 0:
        raise _bad("Your kernel does not support CPU real-time scheduler")

    # ---- Config (validateContainerConfig)
    opts.hostname = c("Hostname", "")
    if len(opts.hostname) > 64:
        raise _bad(f"invalid hostname {opts.hostname!r}: the kernel allows at most 64 characters")
    opts.domainname = c("Domainname", "")
    opts.user = c("User", "")
    opts.working_dir = c("WorkingDir", "")
    if opts.working_dir:
        if not opts.working_dir.startswith("/"):
            raise _bad(f"the working directory '{opts.working_dir}' is invalid, it needs to be an absolute path")
        opts.working_dir = _clean(opts.working_dir)
    opts.stop_signal = c("StopSignal", "")
    if opts.stop_signal:
        parse_signal(opts.stop_signal)
    opts.stop_timeout = cfg.get("StopTimeout")
    opts.env = list(c("Env", []))
    for e in opts.env:
        if e.split("=", 1)[0] == "":
            raise _bad(f"invalid environment variable: {e}")
    opts.healthcheck = cfg.get("Healthcheck")
    if opts.healthcheck:
        _validate_healthcheck(opts.healthcheck)
    opts.cmd = cfg.get("Cmd")
    opts.entrypoint = cfg.get("Entrypoint")
    opts.labels = dict(c("Labels", {}))
    opts.tty = c("Tty", False)
    opts.open_stdin = c("OpenStdin", False)
    opts.stdin_once = c("StdinOnce", False)
    opts.attach_stdin = c("AttachStdin", False)
    opts.attach_stdout = c("AttachStdout", False)
    opts.attach_stderr = c("AttachStderr", False)
    opts.exposed_ports = {k: {} for k in c("ExposedPorts", {})}
    opts.volumes = {k: {} for k in c("Volumes", {})}
    opts.network_disabled = c("NetworkDisabled", False)
    opts.on_build = list(c("OnBuild", []))
    opts.shell = cfg.get("Shell")

    # ---- HostConfig (validateHostConfig, in dockerd's order)
    policy = h("RestartPolicy", {})
    rp_name = policy.get("Name") or ""
    rp_max = policy.get("MaximumRetryCount") or 0
    opts.auto_remove = h("AutoRemove", False)
    if opts.auto_remove and rp_name not in ("", "no"):
        raise _bad("can't create 'AutoRemove' container with restart policy")
    opts.binds = list(h("Binds", []))
    opts.volume_driver = h("VolumeDriver", "")
    requests = [parse_bind(b, opts.volume_driver) for b in opts.binds]
    requests += [parse_mount(m or {}) for m in h("Mounts", [])]
    seen: set[str] = set()
    for r in requests:
        if r.destination in seen:
            raise _bad(f"Duplicate mount point: {r.destination}")
        seen.add(r.destination)
    opts.mounts = requests
    opts.extra_hosts = list(h("ExtraHosts", []))
    for eh in opts.extra_hosts:
        _validate_extra_host(eh)
    opts.port_bindings = _validate_port_bindings(h("PortBindings", {}))
    if rp_name in ("always", "unless-stopped", "no"):
        if rp_max != 0:
            msg = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            raise _bad(msg + (" and cannot be negative" if rp_max < 0 else ""))
    elif rp_name == "on-failure":
        if rp_max < 0:
            raise _bad("invalid restart policy: maximum retry count cannot be negative")
    elif rp_name != "":
        raise _bad(f"invalid restart policy: unknown policy '{rp_name}'; use one of 'no', 'always', "
                   "'on-failure', or 'unless-stopped'")
    opts.restart_policy = RestartPolicy(rp_name or "no", rp_max)
    try:
        opts.cap_add = normalize_capabilities(h("CapAdd", []))
    except ValueError as e:
        raise _bad(f"invalid CapAdd: {e}") from None
    try:
        opts.cap_drop = normalize_capabilities(h("CapDrop", []))
    except ValueError as e:
        raise _bad(f"invalid CapDrop: {e}") from None
    opts.annotations = dict(h("Annotations", {}))
    if "" in opts.annotations:
        raise _bad("invalid Annotations: the empty string is not permitted as an annotation key")

    # ---- resources (verifyPlatformContainerResources)
    opts.memory = h("Memory", 0)
    opts.memory_swap = h("MemorySwap", 0)
    opts.memory_reservation = h("MemoryReservation", 0)
    if opts.memory != 0 and opts.memory < MIN_MEMORY:
        raise _bad("Minimum memory limit allowed is 6MB")
    if opts.memory > 0 and 0 < opts.memory_swap < opts.memory:
        raise _bad("Minimum memoryswap limit should be larger than memory limit, see usage")
    if opts.memory == 0 and opts.memory_swap > 0:
        raise _bad("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise _bad(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
        opts.memory_swappiness = swappiness
    if opts.memory_reservation > 0 and opts.memory_reservation < MIN_MEMORY:
        raise _bad("Minimum memory reservation allowed is 6MB")
    if opts.memory > 0 and opts.memory_reservation > 0 and opts.memory < opts.memory_reservation:
        raise _bad("Minimum memory limit can not be less than memory reservation limit, see usage")
    if h("KernelMemory", 0) or h("KernelMemoryTCP", 0):
        opts.warnings.append("Specifying a kernel memory limit is deprecated and will be removed in a future "
                             "release.")
    opts.oom_kill_disable = h("OomKillDisable", False)
    if opts.oom_kill_disable and opts.memory == 0:
        opts.warnings.append("OOM killer is disabled for the container, but no memory limit is set, this can "
                             "result in the system running out of resources.")
    pids = hc.get("PidsLimit")
    opts.pids_limit = pids if pids is not None and pids > 0 else None
    opts.nano_cpus = h("NanoCpus", 0)
    opts.cpu_period = h("CpuPeriod", 0)
    opts.cpu_quota = h("CpuQuota", 0)
    if opts.nano_cpus > 0 and opts.cpu_period > 0:
        raise _bad("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if opts.nano_cpus > 0 and opts.cpu_quota > 0:
        raise _bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if opts.nano_cpus < 0 or opts.nano_cpus > ncpu * 10**9:
        raise _bad(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if opts.cpu_period != 0 and not 1000 <= opts.cpu_period <= 1000000:
        raise _bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    if 0 < opts.cpu_quota < 1000:
        raise _bad("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    shares = h("CpuShares", 0)
    # dockerd's adaptContainerSettings clamps instead of refusing.
    opts.cpu_shares = MIN_CPU_SHARES if shares < 0 else min(shares, MAX_CPU_SHARES)
    opts.cpuset_cpus = h("CpusetCpus", "")
    opts.cpuset_mems = h("CpusetMems", "")
    for value, what, avail, label in ((opts.cpuset_cpus, "cpus", ncpu, "CPUs"),
                                      (opts.cpuset_mems, "mems", 1, "memory nodes")):
        try:
            wanted = parse_cpuset(value)
        except ValueError as e:
            raise _bad(f"Invalid value {value} for cpuset {what}: {e}") from None
        if any(i >= avail for i in wanted):
            raise _bad(f"Requested {label} are not available - requested {value}, available: {_cpu_list(avail)}")
    opts.blkio_weight = h("BlkioWeight", 0)
    if opts.blkio_weight and not 10 <= opts.blkio_weight <= 1000:
        raise _bad("Range of blkio weight is from 10 to 1000")
    if h("IOMaximumBandwidth", 0) or h("IOMaximumIOps", 0):
        raise _bad("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps")
    opts.shm_size = h("ShmSize", 0)
    if opts.shm_size < 0:
        raise _bad("SHM size can not be less than 0")
    opts.shm_size = opts.shm_size or DEFAULT_SHM_SIZE
    opts.oom_score_adj = h("OomScoreAdj", 0)
    if not -1000 <= opts.oom_score_adj <= 1000:
        raise _bad(f"Invalid value {opts.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    opts.tmpfs = dict(h("Tmpfs", {}))
    for dest, data in opts.tmpfs.items():
        if _clean(dest.replace("\\", "/")) == "/":
            raise _bad("invalid specification: destination can't be '/'")
        if not dest.startswith("/"):
            raise _bad(f"invalid mount path: '{dest}' mount path must be absolute")
        merge_tmpfs_options(data.split(",") if data else [])  # raises on a bad option
        if _clean(dest) in seen:
            raise _bad(f"Duplicate mount point: {_clean(dest)}")
    opts.cgroupns_mode = h("CgroupnsMode", "") or "private"
    if opts.cgroupns_mode not in ("private", "host"):
        raise _bad(f"invalid cgroup namespace mode: {opts.cgroupns_mode}")
    opts.ipc_mode = h("IpcMode", "") or "private"
    if opts.ipc_mode.startswith("container:") or opts.ipc_mode == "container":
        raise _bad(f"IPC mode {opts.ipc_mode!r} is not supported by this engine yet: use private, shareable, "
                   "none or host")
    if opts.ipc_mode not in ("private", "shareable", "none", "host"):
        raise _bad(f"invalid IPC mode: {opts.ipc_mode}")
    opts.pid_mode = h("PidMode", "")
    if opts.pid_mode not in ("", "private"):
        if opts.pid_mode == "host" or opts.pid_mode.startswith("container:"):
            raise _bad(f"PID mode {opts.pid_mode!r} is not supported by this engine yet: containers always get "
                       "their own PID namespace")
        raise _bad(f"invalid PID mode: {opts.pid_mode}")
    userns = h("UsernsMode", "")
    if userns not in ("", "host"):
        raise _bad(f"user namespace mode {userns!r} is not supported: this engine does not remap users")
    opts.cgroup_parent = h("CgroupParent", "")
    if ".." in opts.cgroup_parent.split("/"):
        raise _bad(f"invalid CgroupParent {opts.cgroup_parent!r}: it must not contain '..'")

    # ---- security
    opts.privileged = h("Privileged", False)
    if opts.privileged:
        raise _bad("privileged containers are not supported by this engine: use CapAdd for the capabilities "
                   "the container needs")
    opts.security_opt = list(h("SecurityOpt", []))
    opts.seccomp_profile, opts.no_new_privileges, warns = parse_security_opts(opts.security_opt)
    opts.warnings.extend(warns)
    opts.capabilities = tweak_capabilities(opts.cap_add, opts.cap_drop)
    opts.readonly_rootfs = h("ReadonlyRootfs", False)
    opts.masked_paths = hc.get("MaskedPaths")
    opts.readonly_paths = hc.get("ReadonlyPaths")
    opts.init = hc.get("Init")
    opts.group_add = list(h("GroupAdd", []))

    # ---- everything else
    opts.publish_all_ports = h("PublishAllPorts", False)
    size = h("ConsoleSize", [0, 0]) + [0, 0]
    opts.console_size = (size[0], size[1])
    opts.sysctls = dict(h("Sysctls", {}))
    for key in opts.sysctls:
        validate_sysctl(key, mode == "host", opts.ipc_mode == "host", opts.uts_mode == "host")
    for u in h("Ulimits", []):
        u = u or {}
        uname = u.get("Name") or ""
        if uname not in ULIMIT_NAMES:
            raise _bad(f"invalid ulimit type: {uname}")
        soft, hard = u.get("Soft") or 0, u.get("Hard") or 0
        if soft > hard:
            raise _bad(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        opts.ulimits.append(Ulimit(uname, soft, hard))
    opts.dns = list(h("Dns", []))
    for server in opts.dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise _bad(f'invalid IP address in Dns: "{server}"') from None
    opts.dns_search = list(h("DnsSearch", []))
    opts.dns_options = list(h("DnsOptions", []))
    opts.log_config = _validate_log_config(h("LogConfig", {}))
    opts.volumes_from = list(h("VolumesFrom", []))
    for vf in opts.volumes_from:
        ref, _, vmode = vf.partition(":")
        if not ref or (vmode and vmode not in ("ro", "rw")):
            raise _bad(f"invalid mode for volumes-from: {vf}")
    opts.device_cgroup_rules = [parse_device_cgroup_rule(r) for r in h("DeviceCgroupRules", [])]
    opts.runtime = h("Runtime", "") or "runc"
    if opts.runtime != "runc":
        raise _bad(f"unknown or invalid runtime name: {opts.runtime}")

    # ---- what this engine cannot honour yet: refuse rather than pretend
    unsupported = [("Links", "legacy container links (--link)"), ("Devices", "device mappings (--device)"),
                   ("DeviceRequests", "device requests (--gpus)"), ("StorageOpt", "storage options (--storage-opt)"),
                   ("BlkioWeightDevice", "per-device blkio weights (--blkio-weight-device)"),
                   ("BlkioDeviceReadBps", "blkio throttle limits (--device-read-bps)"),
                   ("BlkioDeviceWriteBps", "blkio throttle limits (--device-write-bps)"),
                   ("BlkioDeviceReadIOps", "blkio throttle limits (--device-read-iops)"),
                   ("BlkioDeviceWriteIOps", "blkio throttle limits (--device-write-iops)")]
    for key, what in unsupported:
        if hc.get(key):
            raise _bad(f"{what} are not supported by this engine yet (HostConfig.{key})")
    if h("Cgroup", ""):
        raise _bad("HostConfig.Cgroup (joining another container's cgroup) is not supported by this engine yet")
    return opts


def _validate_healthcheck(hcfg: dict) -> None:
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        v = hcfg.get(key) or 0
        if v != 0 and v < 1_000_000:
            raise _bad(f"{key} in Healthcheck cannot be less than 1ms")
    if (hcfg.get("Retries") or 0) < 0:
        raise _bad("Retries in Healthcheck cannot be negative")


_LOG_OPTS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"}


def _validate_log_config(lc: dict) -> dict:
    kind = lc.get("Type") or "json-file"
    conf = dict(lc.get("Config") or {})
    if kind not in ("json-file", "local", "none"):
        raise _bad(f'logging driver "{kind}" is not supported by this engine: use json-file, local or none')
    if kind == "none":
        if conf:
            raise _bad(f"unknown log opt '{next(iter(conf))}' for none log driver")
        return {"Type": kind, "Config": conf}
    for key, value in conf.items():
        if key not in _LOG_OPTS:
            raise _bad(f"unknown log opt '{key}' for {kind} log driver")
        if key == "max-size":
            try:
                parse_human_size(value)
            except ValueError:
                raise _bad(f"invalid size: '{value}'") from None
        if key == "max-file":
            try:
                n = int(value)
            except ValueError:
                raise _bad(f'strconv.Atoi: parsing "{value}": invalid syntax') from None
            if n < 1:
                raise _bad("max-file cannot be less than 1")
    return {"Type": kind, "Config": conf}


def parse_human_size(text: str) -> int:
    """Parse "10m", "1.5k", "2MB" with decimal units, as go-units FromHumanSize (used by json-file max-size)."""
    m = re.match(r"^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$", text.strip())
    if not m:
        raise ValueError(text)
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}[(m.group(2) or "").lower()]
    return int(float(m.group(1)) * mult)


# ------------------------------------------------------------------------------------------ image merge


@dataclass
class ProcessConfig:
    """The container's Config after Docker's merge with the image config (what inspect shows as Config)."""

    args: list[str]  # full argv: [Path, *Args]
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=list)  # merged Config.Env (before HOSTNAME/PATH/TERM are added)
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: dict[str, dict] = field(default_factory=dict)
    volumes: dict[str, dict] = field(default_factory=dict)
    healthcheck: dict | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.args[0]

    @property
    def arguments(self) -> list[str]:
        return self.args[1:]


def _env_key(e: str) -> str:
    return e.split("=", 1)[0]


def merge_env(defaults: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Replace or append overrides into defaults; a bare "KEY" unsets it (moby ReplaceOrAppendEnvValues)."""
    env: list[str | None] = list(defaults)
    index = {_env_key(e): i for i, e in enumerate(env) if e is not None}
    for value in overrides:
        if "=" not in value:
            if value in index:
                env[index[value]] = None  # unset
            continue
        key = _env_key(value)
        if key in index and env[index[key]] is not None:
            env[index[key]] = value
        else:
            env.append(value)
            index[key] = len(env) - 1
    return [e for e in env if e is not None]


def _image_inner_config(image_config: dict | None) -> dict:
    """Accept either the full image config JSON ({"config": {...}, "rootfs": ...}) or its "config" part."""
    if not image_config:
        return {}
    if isinstance(image_config.get("config"), dict) or "rootfs" in image_config or "architecture" in image_config:
        return image_config.get("config") or {}
    return image_config


def merge_image_config(opts: CreateOptions, image_config: dict) -> ProcessConfig:
    """Merge the create options with the image's config by Docker's rules (daemon merge + mergeAndVerifyConfig)."""
    img = _image_inner_config(image_config)
    user = opts.user or img.get("User") or ""

    # Env: the user's variables first, then each image variable whose key the user did not set.
    if not opts.env:
        env = list(img.get("Env") or [])
    else:
        env = list(opts.env)
        keys = {_env_key(e) for e in opts.env}
        env += [e for e in img.get("Env") or [] if _env_key(e) not in keys]

    labels = dict(img.get("Labels") or {})
    labels.update(opts.labels)  # container labels win over the image's
    exposed = dict(opts.exposed_ports)
    for port in img.get("ExposedPorts") or {}:
        exposed.setdefault(port, {})
    volumes = dict(opts.volumes)
    for v in img.get("Volumes") or {}:
        volumes[v] = {}

    # A user Entrypoint drops the image's Cmd; a user Cmd alone keeps the image's Entrypoint. An explicit
    # empty list ([]) counts as "no entrypoint" for the Cmd default but still replaces the image's Entrypoint.
    entrypoint, cmd = opts.entrypoint, opts.cmd
    if not entrypoint:
        if not cmd:
            cmd = img.get("Cmd")
        if entrypoint is None:
            entrypoint = img.get("Entrypoint")
    if entrypoint is not None and len(entrypoint) == 1 and entrypoint[0] == "":
        entrypoint = None  # [""] resets the entrypoint to none (docker run --entrypoint "")
    if not entrypoint and not cmd:
        raise InvalidParameter("No command specified")
    args = list(entrypoint or []) + list(cmd or [])

    healthcheck = opts.healthcheck
    img_hc = img.get("Healthcheck")
    if img_hc:
        if healthcheck is None:
            healthcheck = dict(img_hc)
        else:
            healthcheck = dict(healthcheck)
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
                if not healthcheck.get(key):
                    healthcheck[key] = img_hc.get(key)

    working_dir = opts.working_dir or img.get("WorkingDir") or ""
    stop_signal = opts.stop_signal or img.get("StopSignal") or ""
    return ProcessConfig(
        args=args, entrypoint=list(entrypoint) if entrypoint else None, cmd=list(cmd) if cmd else cmd,
        env=env, working_dir=working_dir, user=user, stop_signal=stop_signal, labels=labels,
        exposed_ports=exposed, volumes=volumes, healthcheck=healthcheck, warnings=list(opts.warnings))


# ------------------------------------------------------------------------------------------------ users

_MAX_ID = 2**31 - 1
Reader = Callable[[str], "bytes | str | None"]


def _as_reader(source: Path | str | Reader | None) -> Reader:
    if source is None:
        return lambda _path: None
    if callable(source):
        return source
    etc = Path(source)

    def read(path: str) -> bytes | None:
        try:
            return (etc / posixpath.basename(path)).read_bytes()
        except OSError:
            return None

    return read


def _read_lines(reader: Reader, path: str) -> list[list[str]] | None:
    data = reader(path)
    if data is None:
        return None
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    rows = []
    for line in data.splitlines():
        line = line.strip()
        if line:
            rows.append(line.split(":"))
    return rows


def _atoi(text: str) -> int | None:
    try:
        return int(text, 10)
    except ValueError:
        return None


def _field(row: list[str], i: int) -> str:
    return row[i] if i < len(row) else ""


def resolve_user(user: str, rootfs_etc: Path | str | Reader | None,
                 group_add: Sequence[str] = ()) -> tuple[int, int, list[int]]:
    """Resolve "uid", "uid:gid", "name", "name:group" to (uid, gid, additional gids) as runc + moby do.

    rootfs_etc is the container's /etc directory, or a function that reads an in-container path such as
    "/etc/passwd" (returning bytes, str or None when missing). The additional gids are moby's: the primary gid,
    then the user's supplementary groups from /etc/group, then GroupAdd. Failures raise ContainerStartError
    with runc's words, because Docker reports them when the container starts.
    """
    reader = _as_reader(rootfs_etc)
    user_arg, _, group_arg = (user or "").partition(":")
    uid_num, gid_num = _atoi(user_arg), _atoi(group_arg)
    uid, gid, home_gids = 0, 0, []  # defaults: root, as runc's GetExecUser with an empty spec

    passwd = _read_lines(reader, "/etc/passwd")
    matched_name = ""
    match = None
    for row in passwd or []:
        name, row_uid = row[0], _atoi(_field(row, 2)) or 0
        if (user_arg == "" and row_uid == 0) or (uid_num is not None and row_uid == uid_num) or \
                (uid_num is None and user_arg != "" and name == user_arg):
            match = row
            break
    if match is not None:
        matched_name = match[0]
        uid, gid = _atoi(_field(match, 2)) or 0, _atoi(_field(match, 3)) or 0
    elif user_arg:
        if uid_num is None:
            raise ContainerStartError(f"unable to find user {user_arg}: no matching entries in passwd file")
        if not 0 <= uid_num <= _MAX_ID:
            raise ContainerStartError("uids and gids must be in range 0-2147483647")
        uid = uid_num

    groups = _read_lines(reader, "/etc/group") if (group_arg or matched_name or group_add) else None
    if group_arg or matched_name:
        if group_arg:
            g = next((r for r in groups or []
                      if (gid_num is not None and (_atoi(_field(r, 2)) == gid_num)) or
                      (gid_num is None and r[0] == group_arg)), None)
            if g is not None:
                gid = _atoi(_field(g, 2)) or 0
            elif gid_num is None:
                raise ContainerStartError(f"unable to find group {group_arg}: no matching entries in group file")
            elif not 0 <= gid_num <= _MAX_ID:
                raise ContainerStartError("uids and gids must be in range 0-2147483647")
            else:
                gid = gid_num
        else:
            # Supplementary groups only in the implicit form: every group listing the matched user.
            home_gids = [_atoi(_field(r, 2)) or 0 for r in groups or []
                         if matched_name in _field(r, 3).split(",")]

    added: list[int] = []
    for ag in group_add:
        g = next((r for r in groups or [] if r[0] == ag or _field(r, 2) == ag), None)
        if g is not None:
            num = _atoi(_field(g, 2)) or 0
        else:
            num = _atoi(ag)
            if num is None:
                raise ContainerStartError(f"Unable to find group {ag}: no matching entries in group file")
            if not 0 <= num <= _MAX_ID:
                raise ContainerStartError("uids and gids must be in range 0-2147483647")
        if num not in added:
            added.append(num)
    return uid, gid, [gid] + home_gids + added


def _safe_read(root: str, path: str) -> bytes | None:
    """Read root/path without following symlinks anywhere: image content must not make us read host files."""
    rel = [p for p in path.split("/") if p and p != "."]
    if ".." in rel:
        return None
    current = root
    for part in rel[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current) or not os.path.isdir(current):
            return None
    try:
        fd = os.open(os.path.join(current, rel[-1]), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def rootfs_reader(rootfs: dict) -> Reader:
    """Return a reader of in-container paths from the rootfs: the overlay's layers (upper first) or root.path."""
    overlay = rootfs.get("overlay")
    if not overlay:
        root = rootfs["path"]
        return lambda path: _safe_read(root, path)
    opts = dict(part.split("=", 1) for part in overlay.split(",") if "=" in part)
    layers = ([opts["upperdir"]] if opts.get("upperdir") else []) + opts.get("lowerdir", "").split(":")

    def read(path: str) -> bytes | None:
        parent, name = posixpath.split(path.rstrip("/"))
        for layer in layers:
            data = _safe_read(layer, path)
            if data is not None:
                return data
            # A whiteout hides the file in the layers below; an opaque parent hides the whole directory.
            if os.path.lexists(os.path.join(layer, parent.lstrip("/"), ".wh." + name)):
                return None
            if os.path.lexists(os.path.join(layer, parent.lstrip("/"), ".wh..wh..opq")):
                return None
        return None

    return read


def caps_for_user(caps: dict, uid: int) -> dict:
    """Return OCI capabilities for a process running as uid: root gets the bounding set, others only bounding."""
    bounding = list(caps.get("bounding") or [])
    # moby SetCapabilities: a non-root user starts with empty effective/permitted sets, as execve would give it.
    granted = bounding if uid == 0 else []
    return {"bounding": bounding, "effective": list(granted), "permitted": list(granted),
            "inheritable": [], "ambient": []}


# ------------------------------------------------------------------------------------------------ mounts

# moby/sys/mount flags: option -> collision key. Options sharing a key override each other (last wins);
# every propagation option shares one key.
_PROPAGATION_KEY = "propagation"
_FLAG_KEYS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev", "nodev": "nodev",
    "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
    "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "bind", "rbind": "rbind",
    "relatime": "relatime", "norelatime": "relatime", "strictatime": "strictatime", "nostrictatime": "strictatime",
    **{p: _PROPAGATION_KEY for p in ("private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable",
                                     "runbindable")},
}  # fmt: skip
_TMPFS_DATA = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """De-duplicate tmpfs options keeping the last of each kind, in order (moby MergeTmpfsOptions)."""
    seen_flags: set[str] = set()
    seen_data: set[str] = set()
    out: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        if option in _FLAG_KEYS:
            key = _FLAG_KEYS[option]
            if key not in seen_flags:
                out.insert(0, option)
                seen_flags.add(key)
            continue
        name, sep, _ = option.partition("=")
        if not sep or name not in _TMPFS_DATA:
            quoted = " ".join(json.dumps(part) for part in option.split("=", 1))
            raise InvalidParameter(f"invalid tmpfs option [{quoted}]")  # Go's %q of the split option
        if name not in seen_data:
            out.insert(0, option)
            seen_data.add(name)
    return out


def resolve_mounts(opts: CreateOptions, proc: ProcessConfig | None = None,
                   volume_path: Callable[[MountRequest], str] | None = None) -> list[MountPoint]:
    """Turn the mount requests (and the image's anonymous volumes) into MountPoints.

    volume_path(request) returns the host directory of a named or anonymous volume (the volumes module creates
    it); without it, volume mounts raise SystemFailure and the image's VOLUME paths are left in the rootfs.
    """
    points = []
    for r in opts.mounts:
        if r.type == "bind":
            points.append(MountPoint(r.destination, r.source, "bind", r.read_only, r.propagation or "rprivate",
                                     r.non_recursive))
        elif r.type == "tmpfs":
            points.append(MountPoint(r.destination, "tmpfs", "tmpfs", data=r.tmpfs_data))
        else:
            if volume_path is None:
                raise SystemFailure(f"volume mount at {r.destination} needs the volumes module to resolve its "
                                    "source")
            source = volume_path(r)
            if r.subpath:
                source = posixpath.join(source, r.subpath)
            points.append(MountPoint(r.destination, source, "bind", r.read_only))
    if proc is not None and volume_path is not None:
        taken = {p.destination for p in points} | {_clean(d) for d in opts.tmpfs}
        for dest in proc.volumes:
            dest = _clean(dest)
            if dest not in taken:
                req = MountRequest(type="volume", destination=dest)
                points.append(MountPoint(dest, volume_path(req), "bind"))
                taken.add(dest)
    return points


def _depth(dest: str) -> int:
    return posixpath.normpath(dest).count("/")


def _default_mounts(shm_size: int) -> list[dict]:
    def m(dest: str, kind: str, source: str, options: list[str]) -> dict:
        return {"destination": dest, "type": kind, "source": source, "options": options}

    return [
        m("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
        m("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        m("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        m("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        m("/sys/fs/cgroup", "cgroup", "cgroup", ["ro", "nosuid", "noexec", "nodev"]),
        m("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        m("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]),
    ]


_WRITABLE_UNDER_RO_ROOT = ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev")


def _build_mounts(opts: CreateOptions, bundle: Path, points: list[MountPoint], init_mount: dict | None) -> list[dict]:
    """Order mounts as moby's WithMounts: defaults (minus overridden ones), the init, then user mounts by depth."""
    user: list[MountPoint] = list(points)
    for dest, data in opts.tmpfs.items():
        user.append(MountPoint(_clean(dest), "tmpfs", "tmpfs", data=data))
    taken = {p.destination for p in user}
    # The network files are mounts like the user's; Docker skips each one the user already mounts over.
    for name, dest in (("resolv.conf", "/etc/resolv.conf"), ("hostname", "/etc/hostname"), ("hosts", "/etc/hosts")):
        if dest not in taken:
            user.append(MountPoint(dest, str(bundle / name), "bind", opts.readonly_rootfs, "rprivate"))
    taken = {p.destination for p in user}
    user.sort(key=lambda p: _depth(p.destination))  # stable: same-depth mounts keep their order

    out = []
    for m in _default_mounts(opts.shm_size):
        if m["destination"] in taken:
            continue
        if "/dev" in taken and m["destination"].startswith("/dev/"):
            continue
        if m["destination"] == "/dev/shm" and opts.ipc_mode == "none":
            continue
        out.append(m)
    if init_mount:
        out.append(init_mount)
    for p in user:
        if p.type == "tmpfs":
            data = p.data.split(",") if p.data else []
            options = merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", *data])
            out.append({"destination": p.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            continue
        options = ["bind" if p.non_recursive else "rbind"]
        if p.read_only:
            options.append("ro")
        if p.propagation:
            options.append(p.propagation)
        out.append({"destination": p.destination, "type": "bind", "source": p.source, "options": options})
    if opts.readonly_rootfs:
        # A read-only rootfs makes every non-user mount read-only too, except the ones a process needs to write.
        for m in out:
            if m["destination"] in _WRITABLE_UNDER_RO_ROOT or m["destination"] in taken:
                continue
            if "ro" not in m["options"]:
                m["options"].append("ro")
    return out


# ------------------------------------------------------------------------------------------------- spec


def container_hostname(cid: str, opts: CreateOptions, host_hostname: str | None = None) -> str:
    """Return Config.Hostname: the user's, the host's with --network host, else the first 12 of the id."""
    if opts.hostname:
        return opts.hostname
    if opts.network_mode == "host":
        return host_hostname if host_hostname is not None else socket.gethostname()
    return cid[:12]


def _cgroups_path(cid: str, opts: CreateOptions, cgroup_parent: str) -> str:
    parent = (opts.cgroup_parent or cgroup_parent).strip("/")
    # Accept a caller that already appended the id ("dockweb/<id>") as well as the parent alone.
    if parent == cid or parent.endswith("/" + cid):
        return parent
    return f"{parent}/{cid}" if parent else cid


def build_spec(cid: str, opts: CreateOptions, proc: ProcessConfig, bundle: Path, rootfs: dict, cgroup_parent: str,
               ncpu: int, host_init: str | None, *, user: tuple[int, int, list[int]] | None = None,
               mounts: list[MountPoint] | None = None, hostname: str | None = None, netns_path: str | None = None,
               arch: str | None = None, kernel: str | None = None, masked_paths: list[str] | None = None,
               read_file: Reader | None = None) -> dict:
    """Build the OCI config.json Docker would give this container (moby createSpec, runc's implicit defaults).

    rootfs = {"path": str(bundle/"rootfs"), "overlay": "lowerdir=...,upperdir=...,workdir=..." | None}.
    cgroup_parent is the parent ("dockweb") or already "<parent>/<cid>"; HostConfig.CgroupParent wins over it.
    user: the resolved (uid, gid, additionalGids); by default looked up in the rootfs (ContainerStartError if
    the user does not exist). mounts: resolved binds and volumes (default: resolve_mounts(opts), binds and
    tmpfs only). hostname: default container_hostname(cid, opts). netns_path: join this network namespace
    (the bridge's) instead of creating one. masked_paths: default default_masked_paths().
    """
    bundle = Path(bundle)
    if hostname is None:
        hostname = container_hostname(cid, opts)
    if user is None:
        user = resolve_user(proc.user, read_file or rootfs_reader(rootfs), opts.group_add)
    uid, gid, gids = user
    if mounts is None:
        mounts = resolve_mounts(opts)

    env = ["PATH=" + DEFAULT_PATH_ENV, "HOSTNAME=" + hostname] + (["TERM=xterm"] if opts.tty else [])
    env = merge_env(env, proc.env)
    args = list(proc.args)
    annotations = dict(opts.annotations)
    init_mount = None
    if opts.init:
        if not host_init:
            raise SystemFailure("--init was requested but this engine has no init binary configured")
        args = [IN_CONTAINER_INIT, "--", *args]
        init_mount = {"destination": IN_CONTAINER_INIT, "type": "bind", "source": host_init,
                      "options": ["bind", "ro"]}
        annotations["dockweb.init"] = host_init
    if rootfs.get("overlay"):
        annotations["dockweb.rootfs.overlay"] = rootfs["overlay"]

    caps = caps_for_user({"bounding": opts.capabilities}, uid)
    process: dict = {
        "terminal": opts.tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": gids},
        "args": args,
        "env": env,
        "cwd": proc.working_dir or "/",
        "capabilities": caps,
        "rlimits": [{"type": "RLIMIT_" + u.name.upper(), "hard": u.hard, "soft": u.soft} for u in opts.ulimits],
        "noNewPrivileges": opts.no_new_privileges,
        "oomScoreAdj": opts.oom_score_adj,
    }
    if opts.tty and any(opts.console_size):
        process["consoleSize"] = {"height": opts.console_size[0], "width": opts.console_size[1]}

    # Namespaces in moby's order; host modes simply leave a namespace out (the process keeps the daemon's).
    namespaces: list[dict] = [{"type": "mount"}]
    if opts.network_mode != "host":
        namespaces.append({"type": "network", "path": netns_path} if netns_path else {"type": "network"})
    if opts.uts_mode != "host":
        namespaces.append({"type": "uts"})
    namespaces.append({"type": "pid"})
    if opts.ipc_mode != "host":
        namespaces.append({"type": "ipc"})
    if opts.cgroupns_mode == "private":
        namespaces.append({"type": "cgroup"})

    sysctl: dict[str, str] = {}
    if opts.network_mode != "host":
        # moby adds these to every container with its own network namespace: ping without CAP_NET_RAW,
        # and binding ports below 1024 without CAP_NET_BIND_SERVICE.
        sysctl["net.ipv4.ping_group_range"] = "0 2147483647"
        sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
    sysctl.update(opts.sysctls)

    rules = DOCKER_DEVICE_RULES + opts.device_cgroup_rules + RUNC_DEVICE_RULES
    resources: dict = {"devices": [dict(r) for r in rules]}  # copies: callers may edit the spec
    memory: dict = {}
    if opts.memory > 0:
        memory["limit"] = opts.memory
    if opts.memory_reservation > 0:
        memory["reservation"] = opts.memory_reservation
    swap = opts.memory_swap if opts.memory_swap else (opts.memory * 2 if opts.memory > 0 else 0)
    if swap > 0:
        memory["swap"] = swap
    if opts.memory_swappiness is not None:
        memory["swappiness"] = opts.memory_swappiness
    memory["disableOOMKiller"] = opts.oom_kill_disable
    resources["memory"] = memory
    cpu: dict = {}
    if opts.cpu_shares > 0:
        cpu["shares"] = opts.cpu_shares
    if opts.nano_cpus > 0:
        cpu["period"] = 100000
        cpu["quota"] = opts.nano_cpus * 100000 // 10**9
    if opts.cpu_period:
        cpu["period"] = opts.cpu_period
    if opts.cpu_quota:
        cpu["quota"] = opts.cpu_quota
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        cpu["mems"] = opts.cpuset_mems
    resources["cpu"] = cpu
    if opts.pids_limit:
        resources["pids"] = {"limit": opts.pids_limit}
    if opts.blkio_weight:
        resources["blockIO"] = {"weight": opts.blkio_weight}

    linux: dict = {
        "namespaces": namespaces,
        "cgroupsPath": _cgroups_path(cid, opts, cgroup_parent),
        "resources": resources,
        "devices": [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
                    for p, ma, mi in DEFAULT_DEVICES],
        "maskedPaths": list(opts.masked_paths) if opts.masked_paths is not None else
        list(masked_paths if masked_paths is not None else default_masked_paths()),
        "readonlyPaths": list(opts.readonly_paths if opts.readonly_paths is not None else READONLY_PATHS),
        "sysctl": sysctl,
    }
    if opts.seccomp_profile != "unconfined":
        bounding = caps["bounding"]
        if opts.seccomp_profile:
            linux["seccomp"] = seccomp_profile.resolve(json.loads(opts.seccomp_profile), bounding, arch, kernel)
        else:
            linux["seccomp"] = seccomp_profile.default_seccomp(bounding, arch, kernel)
        if linux["seccomp"] is None:
            del linux["seccomp"]

    spec: dict = {
        "ociVersion": "1.1.0",
        "process": process,
        "root": {"path": rootfs["path"], "readonly": opts.readonly_rootfs},
        "hostname": "" if opts.uts_mode == "host" else hostname,
    }
    if opts.domainname and opts.uts_mode != "host":
        spec["domainname"] = opts.domainname
    spec["mounts"] = _build_mounts(opts, bundle, mounts, init_mount)
    if annotations:
        spec["annotations"] = annotations
    spec["linux"] = linux
    return spec


def build_runtime_json(cid: str, opts: CreateOptions, log_path: str, log_max_size: int, log_max_files: int) -> dict:
    """Build runtime.json (supervisor options); a json-file max-size/max-file log option overrides the engine's."""
    conf = opts.log_config.get("Config") or {}
    size, files = log_max_size, log_max_files
    if conf.get("max-size"):
        size = parse_human_size(conf["max-size"])
    if conf.get("max-file"):
        files = int(conf["max-file"])
    out = {"log_path": log_path, "log_max_size": size, "log_max_files": files, "open_stdin": opts.open_stdin,
           "stdin_once": opts.stdin_once, "id": cid}
    if opts.log_config.get("Type") == "none":
        out["log_driver"] = "none"  # the container's output is discarded; `docker logs` has nothing to read
    return out


# ---------------------------------------------------------------------------------------------- inspect


def inspect_config(opts: CreateOptions, proc: ProcessConfig, hostname: str) -> dict:
    """Return the Config object docker inspect shows: the user's options merged with the image's."""
    cfg: dict = {
        "Hostname": hostname, "Domainname": opts.domainname, "User": proc.user,
        "AttachStdin": opts.attach_stdin, "AttachStdout": opts.attach_stdout, "AttachStderr": opts.attach_stderr,
    }
    if proc.exposed_ports:
        cfg["ExposedPorts"] = proc.exposed_ports
    cfg.update({"Tty": opts.tty, "OpenStdin": opts.open_stdin, "StdinOnce": opts.stdin_once, "Env": proc.env,
                "Cmd": proc.cmd})
    if proc.healthcheck:
        cfg["Healthcheck"] = proc.healthcheck
    cfg.update({"Image": opts.image, "Volumes": proc.volumes or None, "WorkingDir": proc.working_dir,
                "Entrypoint": proc.entrypoint, "OnBuild": opts.on_build or None, "Labels": proc.labels})
    if opts.network_disabled:
        cfg["NetworkDisabled"] = True
    if proc.stop_signal:
        cfg["StopSignal"] = proc.stop_signal
    if opts.stop_timeout is not None:
        cfg["StopTimeout"] = opts.stop_timeout
    if opts.shell:
        cfg["Shell"] = opts.shell
    return cfg


def inspect_host_config(opts: CreateOptions) -> dict:
    """Return the HostConfig docker inspect shows, with the defaults dockerd fills in at create."""
    raw = opts.raw.get("HostConfig") or {}
    swap = opts.memory_swap if opts.memory_swap else (opts.memory * 2 if opts.memory > 0 else 0)
    hc: dict = {
        "Binds": opts.binds or None, "ContainerIDFile": raw.get("ContainerIDFile") or "",
        "LogConfig": {"Type": opts.log_config["Type"], "Config": dict(opts.log_config.get("Config") or {})},
        "NetworkMode": opts.network_mode, "PortBindings": opts.port_bindings,
        "RestartPolicy": {"Name": opts.restart_policy.name,
                          "MaximumRetryCount": opts.restart_policy.maximum_retry_count},
        "AutoRemove": opts.auto_remove, "VolumeDriver": opts.volume_driver, "VolumesFrom": opts.volumes_from or None,
        "ConsoleSize": list(opts.console_size), "CapAdd": raw.get("CapAdd"), "CapDrop": raw.get("CapDrop"),
        "CgroupnsMode": opts.cgroupns_mode, "Dns": opts.dns, "DnsOptions": opts.dns_options,
        "DnsSearch": opts.dns_search, "ExtraHosts": opts.extra_hosts or None, "GroupAdd": opts.group_add or None,
        "IpcMode": opts.ipc_mode, "Cgroup": "", "Links": None, "OomScoreAdj": opts.oom_score_adj,
        "PidMode": opts.pid_mode, "Privileged": False, "PublishAllPorts": opts.publish_all_ports,
        "ReadonlyRootfs": opts.readonly_rootfs, "SecurityOpt": opts.security_opt or None, "UTSMode": opts.uts_mode,
        "UsernsMode": raw.get("UsernsMode") or "", "ShmSize": opts.shm_size, "Runtime": opts.runtime,
        "Isolation": "", "CpuShares": opts.cpu_shares, "Memory": opts.memory, "NanoCpus": opts.nano_cpus,
        "CgroupParent": opts.cgroup_parent, "BlkioWeight": opts.blkio_weight, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [],
        "CpuPeriod": opts.cpu_period, "CpuQuota": opts.cpu_quota, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
        "CpusetCpus": opts.cpuset_cpus, "CpusetMems": opts.cpuset_mems, "Devices": [],
        "DeviceCgroupRules": raw.get("DeviceCgroupRules") or None, "DeviceRequests": None,
        "MemoryReservation": opts.memory_reservation, "MemorySwap": swap,
        "MemorySwappiness": opts.memory_swappiness, "OomKillDisable": opts.oom_kill_disable,
        "PidsLimit": opts.pids_limit, "Ulimits": [{"Name": u.name, "Hard": u.hard, "Soft": u.soft}
                                                  for u in opts.ulimits],
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    }
    if raw.get("Mounts"):
        hc["Mounts"] = raw["Mounts"]
    if opts.init is not None:
        hc["Init"] = opts.init
    if opts.tmpfs:
        hc["Tmpfs"] = opts.tmpfs
    if opts.sysctls:
        hc["Sysctls"] = opts.sysctls
    if opts.annotations:
        hc["Annotations"] = opts.annotations
    hc["MaskedPaths"] = opts.masked_paths if opts.masked_paths is not None else default_masked_paths()
    hc["ReadonlyPaths"] = opts.readonly_paths if opts.readonly_paths is not None else list(READONLY_PATHS)
    return hc


# ------------------------------------------------------------------------------------------ /etc files


def hostname_file(hostname: str) -> str:
    """Return the content of the container's /etc/hostname."""
    return hostname + "\n"


_DEFAULT_HOSTS = [
    ("127.0.0.1", "localhost"), ("::1", "localhost ip6-localhost ip6-loopback"), ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"), ("ff02::1", "ip6-allnodes"), ("ff02::2", "ip6-allrouters"),
]


def hosts_file(hostname: str, extra_hosts: Sequence[str] = (), ip: str | None = None, domainname: str = "",
               host_gateway: str | None = None) -> str:
    """Return the container's /etc/hosts as libnetwork writes it: defaults, ExtraHosts, then its own address."""
    lines = [f"{addr}\t{names}" for addr, names in _DEFAULT_HOSTS]
    for entry in extra_hosts:
        name, addr = _split_extra_host(entry)
        if addr == "host-gateway":
            if not host_gateway:
                continue  # no gateway address known (e.g. --network none): leave the name unresolved
            addr = host_gateway
        lines.append(f"{addr}\t{name}")
    if ip:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        lines.append(f"{ip}\t{names}")
    return "\n".join(lines) + "\n"


_DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]


def _is_localhost(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(host_resolv: str, dns: Sequence[str] = (), dns_search: Sequence[str] = (),
                dns_options: Sequence[str] = (), host_network: bool = False) -> str:
    """Return the container's /etc/resolv.conf from the host's, with Docker's overrides and localhost filtering.

    A container with its own network namespace cannot reach the host's loopback resolver, so localhost
    nameservers are dropped (and 8.8.8.8/8.8.4.4 used when none remain), as Docker does for the default bridge.
    This only writes a file: nothing here contacts any server.
    """
    servers, search, options = [], [], []
    for line in host_resolv.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] == "search":
            search = words[1:]
        elif words[0] == "domain" and len(words) > 1 and not search:
            search = [words[1]]
        elif words[0] == "options":
            options.extend(words[1:])
    if dns:
        servers = list(dns)
    elif not host_network:
        servers = [s for s in servers if not _is_localhost(s)] or list(_DEFAULT_DNS)
    if dns_search:
        search = [] if list(dns_search) == ["."] else list(dns_search)
    if dns_options:
        options = list(dns_options)
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"
