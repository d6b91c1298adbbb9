"""Namespaces: unshare new ones or join existing ones (setns), and bring loopback up in a new netns."""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from engine.runtime import sys as linux

# OCI namespace type -> (clone flag, /proc/<pid>/ns file name).
NAMESPACES = {
    "pid": (linux.CLONE_NEWPID, "pid"),
    "network": (linux.CLONE_NEWNET, "net"),
    "ipc": (linux.CLONE_NEWIPC, "ipc"),
    "uts": (linux.CLONE_NEWUTS, "uts"),
    "mount": (linux.CLONE_NEWNS, "mnt"),
    "cgroup": (linux.CLONE_NEWCGROUP, "cgroup"),
    "user": (linux.CLONE_NEWUSER, "user"),
}

# The order an exec joins a running container's namespaces: mount last, because the other ns files are
# opened through the host's /proc before we switch to the container's filesystem view.
EXEC_JOIN_ORDER = ["ipc", "uts", "network", "cgroup", "mount"]

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def plan(namespaces: list[dict], skip: tuple[str, ...] = ("pid",)) -> tuple[int, list[tuple[str, str]]]:
    """Split OCI linux.namespaces into (unshare flags, [(type, path) to join]); skip the types given."""
    flags = 0
    joins: list[tuple[str, str]] = []
    for ns in namespaces or ():
        kind = ns.get("type", "")
        if kind in skip:
            continue
        if kind not in NAMESPACES:
            raise ValueError(f"unknown namespace type {kind!r}")
        if ns.get("path"):
            joins.append((kind, ns["path"]))
        else:
            flags |= NAMESPACES[kind][0]
    return flags, joins


def enter(namespaces: list[dict], skip: tuple[str, ...] = ("pid",)) -> int:
    """Join the namespaces that have a path, then unshare the rest (runc's nsexec order); return the unshare flags."""
    flags, joins = plan(namespaces, skip)
    join_paths(joins)
    if flags:
        linux.unshare(flags)
    return flags


def join_paths(joins: list[tuple[str, str]]) -> None:
    """setns into each (type, path); every file is opened before the first setns (a mount ns switch hides /proc)."""
    fds = []
    try:
        for kind, path in joins:
            fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        for kind, fd in fds:
            try:
                linux.setns(fd, NAMESPACES[kind][0])
            except OSError as e:
                raise OSError(e.errno, f"joining {kind} namespace: {os.strerror(e.errno or 0)}") from e
    finally:
        for _, fd in fds:
            os.close(fd)


def join_process(pid: int, kinds: list[str] = EXEC_JOIN_ORDER) -> None:
    """setns into the given namespaces of a running process (exec)."""
    joins = []
    for kind in kinds:
        path = f"/proc/{pid}/ns/{NAMESPACES[kind][1]}"
        # Joining a namespace we are already in is harmless, but skip it: it may be refused (e.g. mnt with chroot).
        try:
            same = os.stat(path).st_ino == os.stat(f"/proc/self/ns/{NAMESPACES[kind][1]}").st_ino
        except FileNotFoundError:
            same = False  # opening it below fails with the error to report
        if not same:
            joins.append((kind, path))
    join_paths(joins)


def loopback_up() -> None:
    """Set IFF_UP on lo in the current network namespace (a new netns starts with lo down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = _lo_flags(s)
        if not flags & IFF_UP:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def loopback_is_up() -> bool:
    """Tell whether lo is up in the current network namespace (read-only: warm_up runs it in the host's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return bool(_lo_flags(s) & IFF_UP)


def _lo_flags(s: socket.socket) -> int:
    return struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0)))[1]
