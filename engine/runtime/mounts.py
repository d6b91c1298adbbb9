"""The container's filesystem view: rootfs, spec mounts, /dev, pivot_root, masked and read-only paths."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from engine.runtime import sys as linux

# mount(8)-style option -> (clear?, flag), as runc's parseMountOptions.
FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0),
    "ro": (False, linux.MS_RDONLY),
    "rw": (True, linux.MS_RDONLY),
    "suid": (True, linux.MS_NOSUID),
    "nosuid": (False, linux.MS_NOSUID),
    "dev": (True, linux.MS_NODEV),
    "nodev": (False, linux.MS_NODEV),
    "exec": (True, linux.MS_NOEXEC),
    "noexec": (False, linux.MS_NOEXEC),
    "sync": (False, linux.MS_SYNCHRONOUS),
    "async": (True, linux.MS_SYNCHRONOUS),
    "dirsync": (False, linux.MS_DIRSYNC),
    "remount": (False, linux.MS_REMOUNT),
    "mand": (False, linux.MS_MANDLOCK),
    "nomand": (True, linux.MS_MANDLOCK),
    "atime": (True, linux.MS_NOATIME),
    "noatime": (False, linux.MS_NOATIME),
    "diratime": (True, linux.MS_NODIRATIME),
    "nodiratime": (False, linux.MS_NODIRATIME),
    "bind": (False, linux.MS_BIND),
    "rbind": (False, linux.MS_BIND | linux.MS_REC),
    "relatime": (False, linux.MS_RELATIME),
    "norelatime": (True, linux.MS_RELATIME),
    "strictatime": (False, linux.MS_STRICTATIME),
    "nostrictatime": (True, linux.MS_STRICTATIME),
    "nosymfollow": (False, linux.MS_NOSYMFOLLOW),
}
PROPAGATION_OPTIONS = {
    "private": linux.MS_PRIVATE,
    "rprivate": linux.MS_PRIVATE | linux.MS_REC,
    "shared": linux.MS_SHARED,
    "rshared": linux.MS_SHARED | linux.MS_REC,
    "slave": linux.MS_SLAVE,
    "rslave": linux.MS_SLAVE | linux.MS_REC,
    "unbindable": linux.MS_UNBINDABLE,
    "runbindable": linux.MS_UNBINDABLE | linux.MS_REC,
}
# Options that are instructions to a runtime, not to the kernel (Docker/podman extensions, SELinux relabel).
IGNORED_OPTIONS = {"tmpcopyup", "notmpcopyup", "z", "Z", "copy", "nocopy", "U", "idmap"}

# Devices runc creates in every container even when the spec does not list them (Docker's set).
DEFAULT_DEVICES = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666, "uid": 0, "gid": 0},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666, "uid": 0, "gid": 0},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8, "fileMode": 0o666, "uid": 0, "gid": 0},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9, "fileMode": 0o666, "uid": 0, "gid": 0},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 0o666, "uid": 0, "gid": 0},
]
DEVICE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


@dataclass
class MountOptions:
    flags: int = 0
    propagation: list[int] = field(default_factory=list)
    data: str = ""


def parse_options(options: list[str] | None) -> MountOptions:
    """Split OCI mount options into mount flags, propagation changes and the fs-specific data string."""
    out = MountOptions()
    data = []
    for opt in options or ():
        if opt in FLAG_OPTIONS:
            clear, flag = FLAG_OPTIONS[opt]
            out.flags = out.flags & ~flag if clear else out.flags | flag
        elif opt in PROPAGATION_OPTIONS:
            out.propagation.append(PROPAGATION_OPTIONS[opt])
        elif opt in IGNORED_OPTIONS:
            continue
        else:
            data.append(opt)
    out.data = ",".join(data)
    return out


def secure_join(root: str, path: str) -> str:
    """Join path under root resolving symlinks as if root were /, so a hostile image cannot escape root."""
    root = os.path.abspath(root)
    parts = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        full = os.path.join(root, *resolved, part)
        if os.path.islink(full):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, f"too many symlinks resolving {path} in {root}")
            target = os.readlink(full)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def make_private(path: str = "/") -> None:
    """Make every mount under path private so nothing we mount propagates back to the host."""
    linux.mount(None, path, None, linux.MS_REC | linux.MS_PRIVATE)


def mount_overlay(target: str, data: str) -> None:
    """Mount the overlay rootfs described by an annotation ("lowerdir=A:B,upperdir=U,workdir=W") at target."""
    # mount(2) data is limited to one page: with many layers, shorten the paths by working from their common
    # parent directory (what containerd does), then come back.
    if len(data) < 4000:
        linux.mount("overlay", target, "overlay", 0, data)
        return
    opts = dict(kv.split("=", 1) for kv in data.split(",") if "=" in kv)
    dirs = [d for key in ("lowerdir", "upperdir", "workdir") if key in opts for d in opts[key].split(":")]
    base = os.path.commonpath(dirs)
    rel = {k: ":".join(os.path.relpath(d, base) for d in v.split(":")) if k in ("lowerdir", "upperdir", "workdir")
           else v for k, v in opts.items()}  # fmt: skip
    short = ",".join(f"{k}={v}" for k, v in rel.items())
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(base)
        linux.mount("overlay", target, "overlay", 0, short)
    finally:
        os.fchdir(cwd)
        os.close(cwd)


def bind_root(rootfs: str) -> None:
    """Bind rootfs onto itself: pivot_root needs the new root to be a mount point."""
    linux.mount(rootfs, rootfs, None, linux.MS_BIND | linux.MS_REC)


def _make_mountpoint(dest: str, is_file: bool) -> None:
    if os.path.lexists(dest):
        return
    if is_file:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        os.makedirs(dest, mode=0o755, exist_ok=True)


def mount_entry(rootfs: str, m: dict, bundle: str, cgroup_hierarchies: list[tuple[str, str]] | None = None) -> None:
    """Mount one OCI mounts[] entry under rootfs (before pivot_root)."""
    opts = parse_options(m.get("options"))
    kind = m.get("type") or ""
    source = m.get("source") or ""
    dest = secure_join(rootfs, m["destination"])
    is_bind = bool(opts.flags & linux.MS_BIND) or kind == "bind"
    if is_bind:
        if source and not os.path.isabs(source):
            source = os.path.join(bundle, source)
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f'bind source path does not exist: {source}')
        _make_mountpoint(dest, not os.path.isdir(source))
        flags = opts.flags | linux.MS_BIND
        linux.mount(source, dest, None, flags & (linux.MS_BIND | linux.MS_REC), None)
        # A bind mount ignores every other flag: apply them with a remount, as runc does.
        if flags & ~(linux.MS_BIND | linux.MS_REC | linux.MS_REMOUNT):
            linux.mount(source, dest, None, (flags & ~linux.MS_REC) | linux.MS_REMOUNT, None)
    elif kind == "cgroup":
        _make_mountpoint(dest, False)
        mount_cgroup(dest, opts.flags, cgroup_hierarchies or [])
    else:
        _make_mountpoint(dest, False)
        linux.mount(source or kind, dest, kind, opts.flags & ~linux.MS_REMOUNT, opts.data or None)
    for prop in opts.propagation:
        linux.mount(None, dest, None, prop)


def mount_cgroup(dest: str, flags: int, hierarchies: list[tuple[str, str]]) -> None:
    """Mount the cgroup filesystem(s) at dest: cgroup2 when hierarchies is [("", "")], else a tmpfs of v1 mounts.

    hierarchies are (directory name, subsystem options) pairs of the host's v1 hierarchies; the process is in
    its own cgroup namespace by now, so each mount shows the container's cgroup as the root.
    """
    fs_flags = flags & (linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC | linux.MS_RELATIME)
    if hierarchies == [("", "")]:
        linux.mount("cgroup2", dest, "cgroup2", fs_flags, None)
        return
    tmpfs_flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("tmpfs", dest, "tmpfs", tmpfs_flags, "mode=755")
    for name, subsystems in hierarchies:
        sub = os.path.join(dest, name)
        try:
            os.mkdir(sub, 0o755)  # in the empty tmpfs just mounted: no parents to make
        except FileExistsError:
            pass
        linux.mount("cgroup", sub, "cgroup", fs_flags, subsystems)
    if flags & linux.MS_RDONLY:
        linux.mount("tmpfs", dest, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | tmpfs_flags, None)


def create_devices(rootfs: str, devices: list[dict]) -> None:
    """mknod runc's default devices plus the spec's linux.devices under rootfs/dev."""
    wanted = {d["path"]: d for d in DEFAULT_DEVICES}
    wanted.update({d["path"]: d for d in devices or ()})
    made_dirs: set[str] = set()
    old_umask = os.umask(0)  # fileMode is exact; do not let the umask trim it
    try:
        for dev in wanted.values():
            dest = secure_join(rootfs, dev["path"])
            parent = os.path.dirname(dest)
            if parent not in made_dirs:
                os.makedirs(parent, exist_ok=True)
                made_dirs.add(parent)
            mode = dev.get("fileMode")
            mode = 0o666 if mode is None else mode
            kind = DEVICE_TYPES.get(dev.get("type", "c"))
            if kind is None:
                raise OSError(errno.EINVAL, f"unknown device type {dev.get('type')!r} for {dev['path']}")
            number = os.makedev(dev.get("major", 0), dev.get("minor", 0))
            try:
                os.mknod(dest, (mode & 0o7777) | kind, number)
            except FileExistsError:
                # Whatever the image has there (a file, a symlink, a stale node) is replaced, not followed.
                os.unlink(dest)
                os.mknod(dest, (mode & 0o7777) | kind, number)
            os.chmod(dest, mode & 0o7777)
            os.chown(dest, dev.get("uid") or 0, dev.get("gid") or 0)
    finally:
        os.umask(old_umask)


def create_dev_symlinks(rootfs: str) -> None:
    """Create /dev/fd, stdin, stdout, stderr, ptmx and core like runc."""
    links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    dev = secure_join(rootfs, "/dev")
    for target, name in links:
        path = os.path.join(dev, name)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)


def bind_console(rootfs: str, pty_slave: str) -> None:
    """Bind the container's pty slave over /dev/console."""
    dest = secure_join(rootfs, "/dev/console")
    if not os.path.lexists(dest):
        os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
    linux.mount(pty_slave, dest, None, linux.MS_BIND)


def pivot_root(rootfs: str) -> None:
    """Make rootfs the new / and detach the old root, runc's way (pivot_root(".", ".") needs no put_old dir)."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY)
    try:
        os.fchdir(new)
        linux.pivot_root(".", ".")
        # The old root is now stacked under "."; go to it and lazily unmount it. Make it a slave first so the
        # unmount does not propagate to the host (were anything still shared).
        os.fchdir(old)
        linux.mount(None, ".", None, linux.MS_SLAVE | linux.MS_REC)
        linux.umount2(".", linux.MNT_DETACH)
    finally:
        os.close(old)
        os.close(new)
    os.chdir("/")


def mask_path(path: str) -> None:
    """Hide path: /dev/null over a file, an empty read-only tmpfs over a directory; missing paths are skipped."""
    # A stat picks the right mount first (a directory would refuse the /dev/null bind with ENOTDIR); the mount
    # errors still decide, so a path that changes kind in between is masked all the same.
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    except OSError:
        is_dir = False  # let the mount say what is wrong
    if is_dir:
        try:
            linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)
            return
        except OSError as e:
            if e.errno == errno.ENOENT:
                return
            if e.errno != errno.ENOTDIR:
                raise
    try:
        linux.mount("/dev/null", path, None, linux.MS_BIND)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        if e.errno != errno.ENOTDIR:
            raise
        linux.mount("tmpfs", path, "tmpfs", linux.MS_RDONLY)


def readonly_path(path: str) -> None:
    """Make path read-only with a bind mount onto itself, keeping its nosuid/nodev/noexec; skip if missing."""
    try:
        linux.mount(path, path, None, linux.MS_BIND | linux.MS_REC)
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    keep = os.statvfs(path).f_flag & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    linux.mount(path, path, None, keep | linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def readonly_root() -> None:
    """Remount / read-only (root.readonly), keeping its other flags if the plain remount is refused."""
    flags = linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY
    try:
        linux.mount(None, "/", None, flags)
    except OSError:
        keep = os.statvfs("/").f_flag & (linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        linux.mount(None, "/", None, flags | keep)
