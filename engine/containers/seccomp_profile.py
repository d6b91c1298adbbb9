"""Resolve a Docker seccomp profile (moby's format) into plain OCI seccomp for one capability set and arch."""

from __future__ import annotations

import copy
import json
import os
import platform
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

DEFAULT_PROFILE_PATH = Path(__file__).resolve().parent.parent / "runtime" / "profiles" / "seccomp-default.json"

# uname machine -> Go/libseccomp native name, the words profiles use in includes/excludes "arches".
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "x86", "i686": "x86", "x86": "x86",
    "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm", "arm": "arm",
    "ppc64le": "ppc64le", "ppc64": "ppc64", "ppc": "ppc", "s390x": "s390x", "s390": "s390",
    "riscv64": "riscv64", "loongarch64": "loong64", "loong64": "loong64",
    "mips64": "mips64", "mips64el": "mipsel64", "mipsel64": "mipsel64", "mips64n32": "mips64n32",
    "mipsel": "mipsle", "mipsle": "mipsle",
}  # fmt: skip

# Native name -> the SCMP_ARCH_* an archMap entry is keyed by (moby profiles/seccomp nativeToSeccomp).
_NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM", "arm64": "SCMP_ARCH_AARCH64",
    "mips64": "SCMP_ARCH_MIPS64", "mips64n32": "SCMP_ARCH_MIPS64N32", "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32", "mipsle": "SCMP_ARCH_MIPSEL", "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64", "ppc64le": "SCMP_ARCH_PPC64LE", "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64", "loong64": "SCMP_ARCH_LOONGARCH64",
}  # fmt: skip


class ProfileError(ValueError):
    """The profile cannot be resolved (bad kernel version, name and names both set, ...)."""


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def load_default_profile(path: Path = DEFAULT_PROFILE_PATH) -> dict:
    """Return Docker's default profile (parsed once per process; callers get their own copy)."""
    return copy.deepcopy(_load(str(path)))


def native_arch(machine: str | None = None) -> str:
    """Map a uname machine ("x86_64") or native name ("amd64") to the native name profiles use."""
    m = machine or platform.machine()
    return _MACHINE_TO_NATIVE.get(m, m)


def parse_kernel_version(release: str) -> tuple[int, int]:
    """Parse "6.1.0-18-amd64" or "4.8" into (kernel, major), like moby's "%d.%d" scan."""
    m = re.match(r"\s*(\d+)\.(\d+)", release)
    if not m:
        raise ProfileError(f"invalid kernel version: {release!r}")
    return int(m.group(1)), int(m.group(2))


def _kernel_at_least(minimum: str, running: tuple[int, int]) -> bool:
    return running >= parse_kernel_version(minimum)


def resolve(profile: dict, bounding_caps: Iterable[str], arch: str | None = None,
            kernel: str | None = None) -> dict | None:
    """Filter a moby-format profile for these bounding caps, this arch and kernel into OCI linux.seccomp.

    Mirrors moby profiles/seccomp setupSeccomp: a rule is skipped when any excludes.caps is in the bounding
    set, when the arch is excluded, or when the kernel is >= excludes.minKernel; it is kept only when every
    includes.caps is in the bounding set, the arch is included and the kernel is >= includes.minKernel.
    Returns None when the profile has neither a default action nor syscalls (seccomp disabled).
    """
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise ProfileError("'architectures' and 'archMap' were specified in the seccomp profile, "
                           "use either 'architectures' or 'archMap'")
    caps = set(bounding_caps)
    native = native_arch(arch)
    running = parse_kernel_version(kernel if kernel is not None else os.uname().release)

    out: dict = {"defaultAction": profile["defaultAction"]}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures = list(profile.get("architectures") or [])
    scmp_arch = _NATIVE_TO_SECCOMP.get(native)
    if scmp_arch:
        for entry in profile.get("archMap") or []:
            if entry.get("architecture") == scmp_arch:
                architectures.append(entry["architecture"])
                architectures.extend(entry.get("subArchitectures") or [])
                break
    out["architectures"] = architectures
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if profile.get(key):
            out[key] = profile[key]

    syscalls = []
    for rule in profile.get("syscalls") or []:
        excludes = rule.get("excludes") or {}
        includes = rule.get("includes") or {}
        if native in (excludes.get("arches") or []):
            continue
        if any(c in caps for c in excludes.get("caps") or []):
            continue
        if excludes.get("minKernel") and _kernel_at_least(excludes["minKernel"], running):
            continue
        if includes.get("arches") and native not in includes["arches"]:
            continue
        if not all(c in caps for c in includes.get("caps") or []):
            continue
        if includes.get("minKernel") and not _kernel_at_least(includes["minKernel"], running):
            continue
        syscalls.append(_oci_syscall(rule))
    out["syscalls"] = syscalls
    return out


def _oci_syscall(rule: dict) -> dict:
    if rule.get("name") and rule.get("names"):
        raise ProfileError("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'")
    names = list(rule.get("names") or []) or [rule["name"]]
    call: dict = {"names": names, "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        call["errnoRet"] = rule["errnoRet"]
    if rule.get("args"):
        call["args"] = [{"index": a["index"], "value": a.get("value", 0), "valueTwo": a.get("valueTwo", 0),
                         "op": a["op"]} for a in rule["args"]]
    return call


def default_seccomp(bounding_caps: Iterable[str], arch: str | None = None, kernel: str | None = None) -> dict:
    """Return Docker's default profile resolved for these bounding caps (OCI linux.seccomp)."""
    resolved = resolve(_load(str(DEFAULT_PROFILE_PATH)), bounding_caps, arch, kernel)
    assert resolved is not None  # the default profile always has a default action
    return resolved


def allowed_syscalls(seccomp: dict) -> set[str]:
    """Return the names an OCI seccomp allows unconditionally (no argument filter): a test and debug helper."""
    allowed: set[str] = set()
    for call in seccomp.get("syscalls", []):
        if call["action"] == "SCMP_ACT_ALLOW" and not call.get("args"):
            allowed.update(call["names"])
    return allowed
