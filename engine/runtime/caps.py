"""Linux capabilities: names to bits, and applying the OCI capability sets in runc's order."""

from __future__ import annotations

from typing import Iterable

from engine.runtime import sys as linux

# Index = bit number (linux/capability.h).
CAP_NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip
CAP_BITS = {name: bit for bit, name in enumerate(CAP_NAMES)}

# Docker's default set (moby oci/caps/defaults.go).
DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]  # fmt: skip


_last_cap: int | None = None


def last_cap() -> int:
    """Return the highest capability number the running kernel knows (read once per process tree: warm_up)."""
    global _last_cap
    if _last_cap is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap = int(f.read())
        except OSError:
            return len(CAP_NAMES) - 1  # not cached: a later call may be able to read it
    return _last_cap


def to_mask(names: Iterable[str] | None, last: int | None = None) -> int:
    """Turn capability names ("CAP_CHOWN" or "chown") into a bit mask; names the kernel lacks are skipped like runc."""
    top = last_cap() if last is None else last
    mask = 0
    for name in names or ():
        key = name.upper()
        if not key.startswith("CAP_"):
            key = "CAP_" + key
        bit = CAP_BITS.get(key)
        if bit is not None and bit <= top:
            mask |= 1 << bit
    return mask


def to_names(mask: int) -> list[str]:
    """Turn a bit mask into capability names, lowest bit first."""
    return [name for bit, name in enumerate(CAP_NAMES) if mask >> bit & 1]


def drop_bounding(keep: int, last: int | None = None) -> None:
    """Drop every capability not in keep from the bounding set (needs CAP_SETPCAP: do it before capset)."""
    top = last_cap() if last is None else last
    for bit in range(top + 1):
        if keep >> bit & 1:
            continue
        try:
            linux.prctl(linux.PR_CAPBSET_DROP, bit)
        except OSError as e:
            if e.errno != 22:  # EINVAL: the kernel does not know this cap
                raise


def set_keep_caps(on: bool) -> None:
    """Keep the permitted set across setuid away from root (PR_SET_KEEPCAPS)."""
    linux.prctl(linux.PR_SET_KEEPCAPS, 1 if on else 0)


def apply(caps: dict, last: int | None = None) -> None:
    """Set effective/permitted/inheritable, then ambient, exactly as the OCI capabilities object says.

    Capabilities this process does not hold itself (e.g. CAP_SYS_RESOURCE on a host that withheld it) are
    left out instead of failing: capset could never grant them.
    """
    top = last_cap() if last is None else last
    _, have, _ = linux.capget()
    permitted = to_mask(caps.get("permitted"), top) & have
    effective = to_mask(caps.get("effective"), top) & permitted
    inheritable = to_mask(caps.get("inheritable"), top) & have
    linux.capset(effective, permitted, inheritable)
    linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL)
    ambient = to_mask(caps.get("ambient"), top) & permitted & inheritable
    for bit in range(top + 1):
        if ambient >> bit & 1:
            linux.prctl(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, bit)


def status_masks(pid: int | str = "self") -> dict[str, int]:
    """Read CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process from /proc (for tests and inspection)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, value = line.split(":", 1)
                out[key] = int(value.strip(), 16)
    return out
