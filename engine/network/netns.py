"""Network namespaces kept alive by a bind mount of their nsfs file (like `ip netns add`), and entering them."""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engine.errors import SystemFailure
from engine.runtime import sys as linux

SELF_NET = "/proc/thread-self/ns/net"


def create(path: Path) -> None:
    """Unshare a new network namespace in the calling thread and bind its nsfs file at path.

    The calling thread is left INSIDE the new namespace: run this only in a thread that returns with
    `back_to(fd)` (see NetlinkWorker), never in a thread that serves anything else.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
        os.close(fd)
    except OSError as e:
        raise SystemFailure(f"creating the network namespace file {path}: {e.strerror}") from e
    try:
        linux.unshare(linux.CLONE_NEWNET)
    except OSError as e:
        raise SystemFailure(f"creating a network namespace: {e.strerror}") from e
    try:
        linux.mount(SELF_NET, str(path), None, linux.MS_BIND)
    except OSError as e:
        raise SystemFailure(f"binding the network namespace at {path}: {e.strerror}") from e


def remove(path: Path) -> None:
    """Unmount and delete a namespace file; the namespace dies when its last process and mount are gone."""
    try:
        linux.umount2(str(path), linux.MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise SystemFailure(f"unmounting the network namespace {path}: {e.strerror}") from e
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise SystemFailure(f"removing the network namespace file {path}: {e.strerror}") from e


def is_bound(path: Path) -> bool:
    """Tell whether path is a live nsfs bind mount (not just the empty file left by a crash)."""
    # A mount point has a different device than its directory; an unbound file shares it.
    try:
        return os.stat(path).st_dev != os.stat(path.parent).st_dev
    except OSError:
        return False


def open_ns(path: str | Path) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise SystemFailure(f"opening the network namespace {path}: {e.strerror}") from e


def enter(fd: int) -> None:
    """setns the calling thread into the namespace open at fd."""
    linux.setns(fd, linux.CLONE_NEWNET)


@contextmanager
def inside(path: str | Path, home_fd: int) -> Iterator[None]:
    """Run the block with the calling thread in the namespace at path, then return it to home_fd."""
    fd = open_ns(path)
    try:
        try:
            enter(fd)
        except OSError as e:
            raise SystemFailure(f"entering the network namespace {path}: {e.strerror}") from e
        try:
            yield
        finally:
            enter(home_fd)
    finally:
        os.close(fd)
