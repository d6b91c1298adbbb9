"""Thin ctypes wrappers over the Linux syscalls Python lacks: the one seam unit tests fake."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import struct

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# Clone / namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# prctl(2) options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# Pseudo-terminal ioctls termios lacks (asm-generic/ioctls.h, same numbers on x86_64 and aarch64).
TIOCGPTN = 0x80045430  # the pty number of a /dev/ptmx master (ptsname)
TIOCSPTLCK = 0x40045431  # lock/unlock the slave (unlockpt)

SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Syscall numbers glibc has no wrapper for (or wraps badly), per architecture.
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "seccomp": 317, "bpf": 321, "close_range": 436},
    "aarch64": {"pivot_root": 41, "seccomp": 277, "bpf": 280, "close_range": 436},
}
CLOSE_RANGE_CLOEXEC = 4


def resolve() -> None:
    """Look up every libc function used here now, so a forked child does not do it (or copy the pages) again."""
    for name in ("mount", "umount2", "unshare", "setns", "syscall", "sethostname", "setdomainname", "capget", "capset"):
        getattr(_libc, name)


def _nr(name: str) -> int:
    try:
        return _SYSCALLS[platform.machine()][name]
    except KeyError:
        raise OSError(38, f"{name}: unsupported architecture {platform.machine()}") from None


def _check(res: int, path: str | None = None) -> int:
    if res < 0:
        err = ctypes.get_errno()
        # strerror stays the plain C message: callers add context (what was being mounted, and why).
        raise OSError(err, os.strerror(err), path)
    return res


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    """Call mount(2)."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)), target)


def umount2(target: str, flags: int = 0) -> None:
    """Call umount2(2)."""
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), target)


def unshare(flags: int) -> None:
    """Call unshare(2)."""
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd: int, nstype: int = 0) -> None:
    """Call setns(2) on an open namespace file."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def pivot_root(new_root: str, put_old: str) -> None:
    """Call pivot_root(2) (raw syscall: glibc has no wrapper)."""
    _check(_libc.syscall(ctypes.c_long(_nr("pivot_root")), _b(new_root), _b(put_old)), new_root)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Call close_range(2) (Linux 5.9+; CLOSE_RANGE_CLOEXEC 5.11+): close or mark close-on-exec fds first..last."""
    _check(_libc.syscall(ctypes.c_long(_nr("close_range")), ctypes.c_uint(first), ctypes.c_uint(last),
                         ctypes.c_uint(flags)))  # fmt: skip


def sethostname(name: str) -> None:
    """Call sethostname(2)."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))))


def setdomainname(name: str) -> None:
    """Call setdomainname(2)."""
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))))


# A typed prototype: ctypes converts the ints itself (unsigned long, as the kernel reads them) instead of each call
# building four c_ulong objects; the init calls prctl some 30 times (bounding set).
_prctl = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                          ctypes.c_ulong, use_errno=True)(("prctl", _libc))  # fmt: skip


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """Call prctl(2) with integer arguments."""
    return _check(_prctl(option, arg2, arg3, arg4, arg5))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """Return (effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data))
    join = lambda f: getattr(data[0], f) | (getattr(data[1], f) << 32)  # noqa: E731
    return join("effective"), join("permitted"), join("inheritable")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's effective, permitted and inheritable capability masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data))


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_set_filter(bpf: bytes, flags: int = 0) -> None:
    """Install a classic-BPF seccomp filter (struct sock_filter array) on this thread."""
    if len(bpf) % 8 or not bpf:
        raise OSError(22, f"seccomp: BPF program of {len(bpf)} bytes is not a sock_filter array")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    res = _libc.syscall(
        ctypes.c_long(_nr("seccomp")), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(flags), ctypes.byref(prog)
    )
    if res < 0 and ctypes.get_errno() == 38 and flags == 0:  # ENOSYS: kernels before 3.17
        zero = ctypes.c_ulong(0)
        res = _libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), zero, zero)
    _check(res)


BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6


def bpf_prog_load(prog_type: int, insns: bytes, license: str = "Apache") -> int:
    """Load an eBPF program (bpf(BPF_PROG_LOAD)); return its fd. The verifier log goes into the error."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(65536)
    # union bpf_attr, BPF_PROG_LOAD part: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf.
    attr = struct.pack("<IIQQIIQ", prog_type, len(insns) // 8, ctypes.addressof(code), ctypes.addressof(lic),
                       1, len(log), ctypes.addressof(log)).ljust(128, b"\0")  # fmt: skip
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = _libc.syscall(ctypes.c_long(_nr("bpf")), ctypes.c_int(BPF_PROG_LOAD), buf, ctypes.c_uint(len(attr)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{os.strerror(err)}: {log.value.decode(errors='replace').strip()}")
    return fd


def bpf_prog_attach(target_fd: int, prog_fd: int, attach_type: int, flags: int = 0) -> None:
    """Attach a loaded program to a cgroup (bpf(BPF_PROG_ATTACH)); flags 0 replaces a previous program."""
    attr = struct.pack("<IIII", target_fd, prog_fd, attach_type, flags).ljust(128, b"\0")
    buf = ctypes.create_string_buffer(attr, len(attr))
    _check(_libc.syscall(ctypes.c_long(_nr("bpf")), ctypes.c_int(BPF_PROG_ATTACH), buf, ctypes.c_uint(len(attr))))
