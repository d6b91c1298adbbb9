"""Work inside a container's filesystem from a short-lived forked child: its live mount namespace or a private one.

A running container is entered with setns(CLONE_NEWNS) on its init's namespace, so "/" is the container's root
and every path the child resolves (symlinks included) stays inside it. A stopped container's overlay and volume
mounts are set up in a fresh private mount namespace, then chrooted into: nothing is ever mounted on the host,
and everything vanishes when the child exits. The child reports JSON lines on a pipe; bulk data (a tar stream)
travels on a second pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine import errors
from engine.runtime import mounts as rtmounts
from engine.runtime import sys as linux

CLONE_NEWNS = linux.CLONE_NEWNS


@dataclass
class FsTarget:
    """Where a container's filesystem is: its live init, or its bundle for a private mount."""

    bundle: Path
    init_pid: int = 0                 # > 0: the container runs; enter its mount namespace
    overlay: str | None = None        # "lowerdir=..,upperdir=..,workdir=.." (stopped containers)
    root_path: str = ""               # root.path of config.json
    readonly: bool = False            # ReadonlyRootfs
    mounts: tuple = ()                # ContainerMount (stopped containers: the binds and volumes to set up)


class Worker:
    """The parent's side of a forked child: its JSON reports, its data pipe, its exit."""

    def __init__(self, pid: int, reports: int, data: int | None) -> None:
        self.pid = pid
        self._reports = os.fdopen(reports, "rb")
        self.data = data
        self._status: int | None = None

    def report(self) -> dict:
        """Read the child's next report; a child that died silently reads as an error report."""
        line = self._reports.readline()
        if not line:
            self.wait()
            return {"error": f"the helper process exited unexpectedly (status {self._status})", "kind": "SystemFailure"}
        return json.loads(line)

    def wait(self) -> int:
        if self._status is None:
            _, status = os.waitpid(self.pid, 0)
            self._status = os.waitstatus_to_exitcode(status)
            self._reports.close()
            if self.data is not None:
                try:
                    os.close(self.data)
                except OSError:
                    pass
                self.data = None
        return self._status

    def close_data(self) -> None:
        if self.data is not None:
            os.close(self.data)
            self.data = None

    def kill(self) -> None:
        if self._status is None:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self.wait()


def raise_report(doc: dict) -> None:
    """Raise the engine error a child reported (its category keeps the HTTP status)."""
    if "error" not in doc:
        return
    cls = getattr(errors, doc.get("kind") or "SystemFailure", errors.SystemFailure)
    if not (isinstance(cls, type) and issubclass(cls, errors.EngineError)) or cls in (
            errors.NoSuchContainer, errors.NoSuchImage, errors.NoSuchExec):
        cls = errors.SystemFailure
    raise cls(doc["error"])


def fork_worker(target: FsTarget | None, body: Callable[["Reporter", int | None], None],
                data: str | None = None) -> Worker:
    """Fork a child that enters target's filesystem and runs body(reporter, data_fd).

    data: None, "out" (the child writes bulk data the parent reads) or "in" (the parent writes, the child reads).
    target None: stay in the host's filesystem (body sets up what it needs).
    """
    rep_r, rep_w = os.pipe()
    data_r = data_w = -1
    if data:
        data_r, data_w = os.pipe()
    pid = os.fork()
    if pid == 0:   # child
        code = 1
        try:
            keep = {rep_w}
            child_data = None
            if data == "out":
                child_data = data_w
            elif data == "in":
                child_data = data_r
            if child_data is not None:
                keep.add(child_data)
            _close_fds_except(keep | {0, 1, 2})
            reporter = Reporter(rep_w)
            try:
                if target is not None:
                    enter(target)
                body(reporter, child_data)
                code = 0
            except errors.EngineError as e:
                reporter.send({"error": e.message, "kind": type(e).__name__})
            except OSError as e:
                reporter.send({"error": f"{e.strerror}: {e.filename}" if e.filename else str(e.strerror),
                               "kind": "SystemFailure"})
            except BaseException as e:   # report, never raise out of a forked child
                reporter.send({"error": f"internal error: {type(e).__name__}: {e}", "kind": "SystemFailure",
                               "trace": traceback.format_exc()})
        finally:
            os._exit(code)
    os.close(rep_w)
    parent_data = None
    if data == "out":
        os.close(data_w)
        parent_data = data_r
    elif data == "in":
        os.close(data_r)
        parent_data = data_w
    return Worker(pid, rep_r, parent_data)


class Reporter:
    """The child's side of the report pipe: one JSON object per line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, doc: dict) -> None:
        data = json.dumps(doc).encode() + b"\n"
        while data:
            n = os.write(self.fd, data)
            data = data[n:]


def _close_fds_except(keep: set[int]) -> None:
    # Another request's pipe ends inherited here would hold its EOF back until this child exits.
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def enter(target: FsTarget) -> None:
    """Make "/" the container's root in this (forked, single-threaded) process."""
    if target.init_pid > 0:
        fd = os.open(f"/proc/{target.init_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(fd, CLONE_NEWNS)
        finally:
            os.close(fd)
        os.chdir("/")
        return
    root = mount_private_rootfs(target)
    for m in target.mounts:
        if m.type == "tmpfs":
            continue   # a stopped container has no tmpfs: what lies under it is what a copy reaches
        entry = {"destination": m.destination, "type": "bind", "source": m.host_source(),
                 "options": ["bind" if m.non_recursive else "rbind"] + ([] if m.rw else ["ro"])}
        rtmounts.mount_entry(root, entry, str(target.bundle))
    if target.readonly:
        linux.mount(None, root, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
    os.chroot(root)
    os.chdir("/")


def mount_private_rootfs(target: FsTarget) -> str:
    """Unshare the mount namespace, make it private, and mount the container's rootfs at bundle/rootfs."""
    linux.unshare(CLONE_NEWNS)
    # Private first: nothing mounted below may propagate to the host's namespace.
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    root = str(target.bundle / "rootfs")
    if target.overlay:
        rtmounts.mount_overlay(root, target.overlay)
    else:
        root = target.root_path or root
        rtmounts.bind_root(root)
    return root


def copy_up(target: FsTarget, items: list[tuple[str, str]]) -> None:
    """Copy each image directory (in-container path) into its empty volume directory, with owners and modes.

    Runs in a forked child with the container's rootfs mounted privately; raises SystemFailure on failure.
    """
    def body(reporter: Reporter, _fd) -> None:
        root = mount_private_rootfs(target)
        for dest, volume_dir in items:
            # secure_join resolves symlinks as if root were "/": an image cannot point the copy elsewhere.
            src = rtmounts.secure_join(root, dest)
            if os.path.islink(src) or not os.path.isdir(src):
                continue
            if os.listdir(volume_dir):
                continue   # Docker copies only into an empty volume
            done = subprocess.run(["cp", "-a", "--", src + "/.", volume_dir], capture_output=True, text=True)
            if done.returncode != 0:
                raise errors.SystemFailure(f"copying {dest} of the image into its volume: "
                                           f"{done.stderr.strip()}")
        reporter.send({"ok": True})

    # No enter(): the copy needs both the rootfs and the host's volume directories, so no chroot.
    worker = fork_worker(None, body)
    try:
        raise_report(worker.report())
    finally:
        worker.wait()



def may_exist_in_layers(layers: list[Path], dest: str) -> bool:
    """Tell cheaply whether an image path could exist (so a copy-up is worth a mount): False only when sure."""
    parts = [p for p in dest.split("/") if p and p != "."]
    for layer in layers:
        cur = str(layer)
        for part in parts:
            cur = os.path.join(cur, part)
            if os.path.islink(cur):
                return True     # a symlink on the way: only the mounted rootfs can tell
            if not os.path.lexists(cur):
                break
        else:
            return True
    return False
