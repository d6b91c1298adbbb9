"""Cgroups v1 (one hierarchy per controller) and v2 (unified) behind one interface: create, limit, freeze, kill."""

from __future__ import annotations

import errno
import os
import signal
import struct
import time
from dataclasses import dataclass, field

from engine.errors import SystemFailure
from engine.runtime import sys as linux

# Controllers dockweb manages on v1. Others mounted on the host are still joined (see Layout.v1_dirs).
V1_CONTROLLERS = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"]
KNOWN_V1_SUBSYSTEMS = set(V1_CONTROLLERS) | {"net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"}
UNLIMITED = 2**64 - 1  # what "max" reads as, like runc's GetCgroupParamUint


@dataclass
class MountInfo:
    mount_point: str
    root: str
    fstype: str
    source: str
    super_options: list[str]


@dataclass
class Layout:
    """Where the cgroup filesystems are: version 1 (controller -> mount point) or 2 (one unified mount)."""

    version: int
    v1: dict[str, str] = field(default_factory=dict)  # controller (or "name=systemd") -> mount point
    v1_options: dict[str, str] = field(default_factory=dict)  # mount point -> subsystem mount options
    v2: str = ""

    def hierarchies(self) -> list[tuple[str, str]]:
        """(directory name, subsystem options) of each hierarchy, for mounting them inside a container."""
        if self.version == 2:
            return [("", "")]
        return [(os.path.basename(mp), opts) for mp, opts in self.v1_options.items()]


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse /proc/<pid>/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        mounts.append(MountInfo(_unescape(lf[4]), _unescape(lf[3]), rf[0], rf[1], rf[2].split(",")))
    return mounts


def detect(mounts: list[MountInfo]) -> Layout:
    """Pick v1 when any v1 controller hierarchy is mounted (a hybrid host's unified mount is ignored), else v2."""
    layout = Layout(version=1)
    for m in mounts:
        if m.fstype != "cgroup":
            continue
        subsystems = [o for o in m.super_options if o in KNOWN_V1_SUBSYSTEMS or o.startswith("name=")]
        if not subsystems or m.mount_point in layout.v1_options:
            continue
        if any(s in layout.v1 for s in subsystems):
            continue  # a second view (bind) of a hierarchy we already have
        layout.v1_options[m.mount_point] = ",".join(subsystems)
        for s in subsystems:
            layout.v1[s] = m.mount_point
    if any(c in layout.v1 for c in KNOWN_V1_SUBSYSTEMS):
        return layout
    unified = [m.mount_point for m in mounts if m.fstype == "cgroup2"]
    if not unified:
        raise SystemFailure("no cgroup filesystem is mounted (looked for cgroup and cgroup2 in mountinfo)")
    root = "/sys/fs/cgroup" if "/sys/fs/cgroup" in unified else unified[0]
    return Layout(version=2, v2=root)


HOST_MOUNTINFO = "/proc/self/mountinfo"
_host_layout: Layout | None = None


def load_layout(mountinfo: str = HOST_MOUNTINFO) -> Layout:
    """Detect the cgroup layout from a mountinfo file (this host's is parsed once per process tree, see host_layout)."""
    if mountinfo == HOST_MOUNTINFO:
        return host_layout()
    with open(mountinfo) as f:
        return detect(parse_mountinfo(f.read()))


def host_layout() -> Layout:
    """This host's cgroup layout, parsed from /proc/self/mountinfo on first use and kept for the process's life.

    Where the cgroup filesystems are mounted is a host fact that does not change while dockweb runs; caching it
    in the launcher before it forks (warm_up) spares every container init and exec the parse.
    """
    global _host_layout
    if _host_layout is None:
        with open(HOST_MOUNTINFO) as f:
            _host_layout = detect(parse_mountinfo(f.read()))
    return _host_layout


def _read(path: str) -> str:
    # os-level like _write_file: the init reads cpuset files, and text I/O would be most of the cost.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode().strip()


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC  # what open(path, "w") does


def _write_file(path: str, value: str) -> None:
    # os-level, not open(): a cgroup write is one write(2); the text I/O stack costs more than the syscalls.
    fd = os.open(path, _WRITE_FLAGS, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read_int(path: str, default: int = 0) -> int:
    try:
        value = _read(path)
    except FileNotFoundError:
        return default
    return UNLIMITED if value == "max" else int(value)


def _read_kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = _read(path)
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def shares_to_weight(shares: int) -> int:
    """Convert v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), runc's formula."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


class Cgroup:
    """One container's cgroup (linux.cgroupsPath, relative to each hierarchy root)."""

    def __init__(self, path: str, layout: Layout) -> None:
        self.path = path.strip("/")
        self.layout = layout
        self.version = layout.version

    @classmethod
    def open(cls, path: str, mountinfo: str = HOST_MOUNTINFO) -> "Cgroup":
        """Open (not create) the cgroup at path in this host's layout."""
        return cls(path, load_layout(mountinfo))

    # --- paths ---------------------------------------------------------------------------------------------
    def dir(self, controller: str = "") -> str | None:
        """The cgroup's directory for a controller (v1) or the unified one (v2); None if not mounted."""
        if self.version == 2:
            return os.path.join(self.layout.v2, self.path)
        mp = self.layout.v1.get(controller)
        return os.path.join(mp, self.path) if mp else None

    def dirs(self) -> list[str]:
        """Every directory this cgroup has, one per hierarchy."""
        if self.version == 2:
            return [os.path.join(self.layout.v2, self.path)]
        return [os.path.join(mp, self.path) for mp in self.layout.v1_options]

    def _file(self, controller: str, name: str) -> str:
        d = self.dir(controller)
        if d is None:
            raise SystemFailure(f"cgroup controller {controller} is not mounted on this host")
        return os.path.join(d, name)

    def _write(self, controller: str, name: str, value: object) -> None:
        path = self._file(controller, name)
        try:
            _write_file(path, str(value))
        except OSError as e:
            raise SystemFailure(f"setting {name}={value} for cgroup {self.path}: {e.strerror}") from e

    def has(self, controller: str, name: str) -> bool:
        d = self.dir(controller)
        return d is not None and os.path.exists(os.path.join(d, name))

    # --- lifecycle -----------------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Tell whether the cgroup directory exists in any hierarchy."""
        return any(os.path.isdir(d) for d in self.dirs())

    def create(self, resources: dict | None = None) -> None:
        """Create the cgroup in every hierarchy and apply OCI linux.resources."""
        try:
            if self.version == 2:
                self._create_v2()
            else:
                self._create_v1()
        except OSError as e:
            raise SystemFailure(f"creating cgroup {self.path}: {e.strerror}") from e
        if resources:
            self.set(resources)

    def _create_v1(self) -> None:
        cpuset = self.layout.v1.get("cpuset")
        for mp in self.layout.v1_options:
            _mkdir_v1(mp, self.path, mp == cpuset)

    def _create_v2(self) -> None:
        current = self.layout.v2
        for part in self.path.split("/"):
            # Controllers must be enabled in the parent's subtree_control before the child can use them.
            available = _read(os.path.join(current, "cgroup.controllers")).split()
            enabled = set(_read(os.path.join(current, "cgroup.subtree_control")).split())
            for ctrl in available:
                if ctrl not in enabled:
                    try:
                        with open(os.path.join(current, "cgroup.subtree_control"), "w") as f:
                            f.write(f"+{ctrl}")
                    except OSError:
                        pass  # e.g. cpu refused while realtime tasks exist: run without it, like runc
            current = os.path.join(current, part)
            if not os.path.isdir(current):
                os.mkdir(current, 0o755)

    def set(self, resources: dict) -> None:
        """Apply OCI linux.resources (memory, cpu, pids, devices, blockIO) to an existing cgroup."""
        if self.version == 2:
            self._set_v2(resources)
        else:
            self._set_v1(resources)

    def _set_v1(self, r: dict) -> None:
        mem = r.get("memory") or {}
        if mem.get("limit") is not None:
            swap = mem.get("swap")
            has_memsw = self.has("memory", "memory.memsw.limit_in_bytes")
            try:
                self._write("memory", "memory.limit_in_bytes", mem["limit"])
            except SystemFailure:
                # memsw must stay >= limit: when raising both, memsw goes first.
                if swap is None or not has_memsw:
                    raise
                self._write("memory", "memory.memsw.limit_in_bytes", swap)
                self._write("memory", "memory.limit_in_bytes", mem["limit"])
            if swap is not None and swap != 0 and has_memsw:
                self._write("memory", "memory.memsw.limit_in_bytes", swap)
        if mem.get("reservation") is not None:
            self._write("memory", "memory.soft_limit_in_bytes", mem["reservation"])
        if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
            self._write("memory", "memory.swappiness", mem["swappiness"])
        if mem.get("disableOOMKiller"):
            self._write("memory", "memory.oom_control", 1)
        cpu = r.get("cpu") or {}
        if cpu.get("shares"):
            self._write("cpu", "cpu.shares", cpu["shares"])
        if cpu.get("period"):
            self._write("cpu", "cpu.cfs_period_us", cpu["period"])
        if cpu.get("quota"):
            self._write("cpu", "cpu.cfs_quota_us", cpu["quota"])
        if cpu.get("cpus"):
            self._write("cpuset", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._write("cpuset", "cpuset.mems", cpu["mems"])
        pids = r.get("pids") or {}
        if pids.get("limit") is not None:
            self._write("pids", "pids.max", "max" if pids["limit"] <= 0 else pids["limit"])
        if r.get("devices") and self.dir("devices"):
            self._write_device_rules(r["devices"])
        blkio = r.get("blockIO") or {}
        if blkio.get("weight"):
            name = "blkio.weight" if self.has("blkio", "blkio.weight") else "blkio.bfq.weight"
            self._write("blkio", name, blkio["weight"])
        for key, name in BLKIO_THROTTLE_V1.items():
            for dev in blkio.get(key) or ():
                self._write("blkio", name, f"{dev['major']}:{dev['minor']} {dev['rate']}")

    def _write_device_rules(self, rules: list[dict]) -> None:
        # One open fd per file and one write(2) per rule (the kernel parses one rule per write and strips the
        # newline), in the order v1_device_writes gives: the same resulting allow-list as the spec's rules.
        fds: dict[str, int] = {}
        try:
            for name, line in v1_device_writes(rules):
                try:
                    if name not in fds:
                        fds[name] = os.open(self._file("devices", name), _WRITE_FLAGS, 0o644)
                    os.write(fds[name], f"{line}\n".encode())
                except OSError as e:
                    raise SystemFailure(f"setting {name}={line} for cgroup {self.path}: {e.strerror}") from e
        finally:
            for fd in fds.values():
                os.close(fd)

    def _set_v2(self, r: dict) -> None:
        mem = r.get("memory") or {}
        limit = mem.get("limit")
        if limit is not None:
            self._write("", "memory.max", "max" if limit < 0 else limit)
            swap = mem.get("swap")
            if swap is not None and swap != 0 and self.has("", "memory.swap.max"):
                # OCI swap is memory+swap (v1 semantics); v2 limits swap alone.
                self._write("", "memory.swap.max", "max" if swap < 0 or limit < 0 else max(swap - limit, 0))
        if mem.get("reservation") is not None:
            self._write("", "memory.low", mem["reservation"])
        if mem.get("disableOOMKiller"):
            pass  # v2 has no switch to disable the OOM killer (runc ignores it too)
        cpu = r.get("cpu") or {}
        if cpu.get("shares"):
            self._write("", "cpu.weight", shares_to_weight(cpu["shares"]))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or 0
            self._write("", "cpu.max", f"{quota if quota > 0 else 'max'} {cpu.get('period') or 100000}")
        if cpu.get("cpus"):
            self._write("", "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            self._write("", "cpuset.mems", cpu["mems"])
        pids = r.get("pids") or {}
        if pids.get("limit") is not None:
            self._write("", "pids.max", "max" if pids["limit"] <= 0 else pids["limit"])
        blkio = r.get("blockIO") or {}
        if blkio.get("weight") and self.has("", "io.weight"):
            self._write("", "io.weight", f"default {blkio['weight']}")
        for key, name in BLKIO_THROTTLE_V2.items():
            for dev in blkio.get(key) or ():
                self._write("", "io.max", f"{dev['major']}:{dev['minor']} {name}={dev['rate']}")
        if r.get("devices"):
            self._attach_device_filter(r["devices"])

    def _attach_device_filter(self, rules: list[dict]) -> None:
        # v2 has no devices.allow: an eBPF program attached to the cgroup decides every open/mknod (runc's way).
        insns = device_filter_program(rules)
        d = self.dir("")
        cg_fd = prog_fd = -1
        try:
            cg_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            prog_fd = linux.bpf_prog_load(linux.BPF_PROG_TYPE_CGROUP_DEVICE, insns)
            linux.bpf_prog_attach(cg_fd, prog_fd, linux.BPF_CGROUP_DEVICE)
        except OSError as e:
            raise SystemFailure(f"attaching the device filter to cgroup {self.path}: {e.strerror}") from e
        finally:
            for fd in (cg_fd, prog_fd):
                if fd >= 0:
                    os.close(fd)  # the kernel keeps the attached program alive with the cgroup

    def add(self, pid: int) -> None:
        """Move a process (all its threads) into this cgroup in every hierarchy."""
        for d in self.dirs():
            try:
                _write_file(os.path.join(d, "cgroup.procs"), str(pid))
            except OSError as e:
                raise SystemFailure(f"adding process {pid} to cgroup {d}: {e.strerror}") from e

    def add_self(self) -> None:
        """Move the calling single-threaded process into this cgroup in every hierarchy.

        On cgroup v1, writing "0" to `tasks` moves only the current thread, which lets the kernel skip the
        global threadgroup rwsem (and its RCU grace period): about 0.1 ms per hierarchy instead of 1 ms.
        For a process that has just forked (one thread) that is the same as moving the whole process.
        """
        if self.version == 2:
            self.add(os.getpid())
            return
        for d in self.dirs():
            try:
                _write_file(os.path.join(d, "tasks"), "0")
            except OSError as e:
                raise SystemFailure(f"adding process {os.getpid()} to cgroup {d}: {e.strerror}") from e

    def pids(self) -> list[int]:
        """List the processes in the cgroup (host pids as the caller sees them)."""
        for controller in ("pids", "memory", "freezer", "cpu", "devices"):
            d = self.dir(controller)
            if d and os.path.isdir(d):
                break
        else:
            d = self.dirs()[0]
        try:
            return [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
        except FileNotFoundError:
            return []

    # --- freezer -------------------------------------------------------------------------------------------
    def can_freeze(self) -> bool:
        return self.has("", "cgroup.freeze") if self.version == 2 else self.dir("freezer") is not None

    def is_frozen(self) -> bool:
        """Tell whether the cgroup is frozen (paused)."""
        try:
            if self.version == 2:
                return _read_kv(self._file("", "cgroup.events")).get("frozen") == 1
            return _read(self._file("freezer", "freezer.state")) == "FROZEN"
        except (FileNotFoundError, SystemFailure):
            return False

    def freeze(self, timeout: float = 5.0) -> None:
        """Freeze every process and wait until the kernel reports FROZEN."""
        self._set_frozen(True, timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        """Thaw the cgroup."""
        self._set_frozen(False, timeout)

    def _set_frozen(self, frozen: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            # v1 may stay FREEZING while a task is in an uninterruptible sleep: rewriting the state retries.
            if self.version == 2:
                self._write("", "cgroup.freeze", 1 if frozen else 0)
                done = (_read_kv(self._file("", "cgroup.events")).get("frozen") == 1) == frozen
            else:
                want = "FROZEN" if frozen else "THAWED"
                self._write("freezer", "freezer.state", want)
                done = _read(self._file("freezer", "freezer.state")) == want
            if done:
                return
            if time.monotonic() > deadline:
                if frozen:
                    self._set_frozen(False, 1.0)
                raise SystemFailure(f"cgroup {self.path} did not {'freeze' if frozen else 'thaw'} in {timeout}s")
            time.sleep(0.005)

    # --- signals and state ---------------------------------------------------------------------------------
    def kill(self, sig: int) -> None:
        """Send sig to every process in the cgroup; SIGKILL freezes first so nothing forks away from it."""
        if sig == signal.SIGKILL and self.version == 2 and self.has("", "cgroup.kill"):
            self._write("", "cgroup.kill", 1)
            return
        frozen_here = False
        if sig == signal.SIGKILL and self.can_freeze():
            try:
                self.freeze(timeout=1.0)
                frozen_here = True
            except SystemFailure:
                pass
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            # Frozen tasks only act on SIGKILL once thawed (v1); thaw whether we froze or it was paused.
            if sig == signal.SIGKILL and (frozen_here or self.is_frozen()):
                self.thaw()

    def oom_killed(self) -> bool:
        """Tell whether the kernel's OOM killer killed a process in this cgroup."""
        if self.version == 2:
            return _read_kv(self._file("", "memory.events")).get("oom_kill", 0) > 0
        if self.dir("memory") is None:
            return False
        return _read_kv(self._file("memory", "memory.oom_control")).get("oom_kill", 0) > 0

    def stats(self) -> dict:
        """Read cpu, memory, pids and blkio statistics (raw kernel values; "max" reads as 2**64-1)."""
        return self._stats_v2() if self.version == 2 else self._stats_v1()

    def _stats_v1(self) -> dict:
        hz = os.sysconf("SC_CLK_TCK")
        cpu: dict = {"usage_ns": 0, "user_ns": 0, "system_ns": 0, "percpu": []}
        if self.dir("cpuacct"):
            cpu["usage_ns"] = _read_int(self._file("cpuacct", "cpuacct.usage"))
            ticks = _read_kv(self._file("cpuacct", "cpuacct.stat"))
            cpu["user_ns"] = ticks.get("user", 0) * 1_000_000_000 // hz
            cpu["system_ns"] = ticks.get("system", 0) * 1_000_000_000 // hz
            try:
                cpu["percpu"] = [int(x) for x in _read(self._file("cpuacct", "cpuacct.usage_percpu")).split()]
            except FileNotFoundError:
                pass
        if self.dir("cpu"):
            t = _read_kv(self._file("cpu", "cpu.stat"))
            cpu["throttling"] = {"periods": t.get("nr_periods", 0), "throttled_periods": t.get("nr_throttled", 0),
                                 "throttled_time": t.get("throttled_time", 0)}  # fmt: skip
        memory: dict = {"usage": 0, "limit": 0, "max_usage": 0, "failcnt": 0, "stats": {}}
        if self.dir("memory"):
            memory = {
                "usage": _read_int(self._file("memory", "memory.usage_in_bytes")),
                "limit": _read_int(self._file("memory", "memory.limit_in_bytes")),
                "max_usage": _read_int(self._file("memory", "memory.max_usage_in_bytes")),
                "failcnt": _read_int(self._file("memory", "memory.failcnt")),
                "stats": _read_kv(self._file("memory", "memory.stat")),
            }
        pids = {"current": 0, "limit": 0}
        if self.dir("pids"):
            pids = {"current": _read_int(self._file("pids", "pids.current")),
                    "limit": _read_int(self._file("pids", "pids.max"))}  # fmt: skip
        blkio = []
        if self.dir("blkio"):
            name = "blkio.throttle.io_service_bytes_recursive"
            if not self.has("blkio", name):
                name = "blkio.throttle.io_service_bytes"
            try:
                text = _read(self._file("blkio", name))
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and ":" in parts[0]:
                    major, minor = parts[0].split(":")
                    blkio.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
        return {"cpu": cpu, "memory": memory, "pids": pids, "blkio": blkio}

    def _stats_v2(self) -> dict:
        f = lambda name: self._file("", name)  # noqa: E731
        st = _read_kv(f("cpu.stat"))
        cpu = {
            "usage_ns": st.get("usage_usec", 0) * 1000,
            "user_ns": st.get("user_usec", 0) * 1000,
            "system_ns": st.get("system_usec", 0) * 1000,
            "percpu": [],
            "throttling": {"periods": st.get("nr_periods", 0), "throttled_periods": st.get("nr_throttled", 0),
                           "throttled_time": st.get("throttled_usec", 0) * 1000},
        }  # fmt: skip
        memory = {
            "usage": _read_int(f("memory.current")),
            "limit": _read_int(f("memory.max"), UNLIMITED),
            "max_usage": _read_int(f("memory.peak")),
            "failcnt": _read_kv(f("memory.events")).get("max", 0),
            "stats": _read_kv(f("memory.stat")),
        }
        pids = {"current": _read_int(f("pids.current")), "limit": _read_int(f("pids.max"), UNLIMITED)}
        blkio = []
        try:
            text = _read(f("io.stat"))
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            parts = line.split()
            if not parts or ":" not in parts[0]:
                continue
            major, minor = (int(x) for x in parts[0].split(":"))
            kv = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            for key, op in (("rbytes", "read"), ("wbytes", "write")):
                if key in kv:
                    blkio.append({"major": major, "minor": minor, "op": op, "value": int(kv[key])})
        return {"cpu": cpu, "memory": memory, "pids": pids, "blkio": blkio}

    def remove(self, timeout: float = 2.0) -> None:
        """rmdir the cgroup (and any sub-cgroups) in every hierarchy, retrying while the kernel says EBUSY."""
        for d in self.dirs():
            if not os.path.isdir(d):
                continue
            subdirs = [os.path.join(root, name) for root, names, _ in os.walk(d, topdown=False) for name in names]
            for path in subdirs + [d]:
                _rmdir_retry(path, timeout)


def _mkdir_v1(mount_point: str, path: str, cpuset: bool) -> None:
    """mkdir path (and its missing parents) in one v1 hierarchy; a new cpuset gets its parent's cpus and mems.

    The leaf is tried first: its parent (e.g. "dockweb") exists for every container but the first, so this is
    usually one mkdir(2) per hierarchy. An existing directory is left as it is.
    """
    full = os.path.join(mount_point, path)
    try:
        os.mkdir(full, 0o755)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not parent:
            raise  # the hierarchy's mount point itself is gone
        _mkdir_v1(mount_point, parent, cpuset)
        try:
            os.mkdir(full, 0o755)
        except FileExistsError:
            return
    if cpuset:
        _inherit_cpuset(mount_point, path)


def _inherit_cpuset(mount_point: str, path: str) -> None:
    # A new v1 cpuset starts with empty cpus/mems and refuses tasks until they are set. A parent another start
    # created a moment ago may still be empty: fill it first (same values, so racing writers agree).
    parent = os.path.dirname(path)
    for name in ("cpuset.cpus", "cpuset.mems"):
        value = _read(os.path.join(mount_point, parent, name))
        if not value and parent:
            _inherit_cpuset(mount_point, parent)
            value = _read(os.path.join(mount_point, parent, name))
        _write_file(os.path.join(mount_point, path, name), value)


def _rmdir_retry(path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            # Just-exited tasks leave the cgroup asynchronously: EBUSY for a moment.
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise SystemFailure(f"removing cgroup {path}: {e.strerror}") from e
            time.sleep(0.01)


BLKIO_THROTTLE_V1 = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}
BLKIO_THROTTLE_V2 = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def device_rule(rule: dict) -> str:
    """Format an OCI device cgroup rule as a v1 devices.allow/deny line ("c 1:3 rwm", "a")."""
    kind = rule.get("type") or "a"
    if kind == "a":
        return "a"
    num = lambda v: "*" if v is None or v < 0 else str(v)  # noqa: E731
    return f"{kind} {num(rule.get('major'))}:{num(rule.get('minor'))} {rule.get('access') or 'rwm'}"


def v1_device_writes(rules: list[dict]) -> list[tuple[str, str]]:
    """The (file, line) writes that give a v1 devices cgroup the allow-list of these OCI rules, duplicates removed.

    With a deny-all rule (Docker's list starts with one), the kernel keeps a default-deny behaviour plus a list of
    exceptions: an allow adds (or widens) the exception of exactly that type:major:minor, a deny takes access away
    from exactly that entry (not from wildcards). Replaying that gives the final exceptions, written after the
    deny-all. Docker's list followed by runc's implicit allows thus takes 13 writes instead of 19. Without a
    deny-all, when an allow-all comes last, or with a rule the kernel would refuse (its error must show), the rules
    are written as given (the kernel's allow-all copies the parent's exceptions, which this does not model).
    """
    last_all = max((i for i, r in enumerate(rules) if (r.get("type") or "a") == "a"), default=-1)
    if last_all < 0 or rules[last_all].get("allow") or not all(map(_plain_rule, rules[last_all + 1 :])):
        return [("devices.allow" if r.get("allow") else "devices.deny", device_rule(r)) for r in rules]
    exceptions: dict[str, set[str]] = {}  # "c 1:3" -> access, in first-allowed order
    for rule in rules[last_all + 1 :]:
        key, _, access = device_rule(rule).rpartition(" ")
        if rule.get("allow"):
            exceptions.setdefault(key, set()).update(access)
        elif key in exceptions:
            exceptions[key].difference_update(access)
            if not exceptions[key]:
                del exceptions[key]
    writes = [("devices.deny", "a")]
    for key, access in exceptions.items():
        writes.append(("devices.allow", f"{key} {''.join(c for c in 'rwm' if c in access)}"))
    return writes


def _plain_rule(rule: dict) -> bool:
    # A rule the kernel accepts as written: c or b, numeric or wildcard major:minor, access within "rwm".
    numbers = (rule.get("major"), rule.get("minor"))
    numbers_ok = all(v is None or (type(v) is int) for v in numbers)
    return rule.get("type") in ("c", "b") and numbers_ok and set(rule.get("access") or "rwm") <= set("rwm")


def list_children(parent: str, mountinfo: str = HOST_MOUNTINFO) -> list[str]:
    """List "<parent>/<name>" for every child cgroup of parent in any hierarchy (stale cleanup at daemon start)."""
    cg = Cgroup(parent, load_layout(mountinfo))
    names: set[str] = set()
    for d in cg.dirs():
        try:
            names.update(e.name for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
    return sorted(f"{cg.path}/{n}" for n in names)


# struct bpf_cgroup_dev_ctx { u32 access_type (type | access << 16); u32 major; u32 minor; }
_DEV_TYPES = {"c": 2, "b": 1}  # BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK
_DEV_ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, READ, WRITE


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def device_filter_program(rules: list[dict]) -> bytes:
    """Compile OCI device rules to a BPF_PROG_TYPE_CGROUP_DEVICE program: the last matching rule decides.

    Registers: r2 = device type, r3 = requested access, r4 = major, r5 = minor. Nothing matching is allowed,
    as a fresh v1 devices cgroup would (Docker's list starts with "deny all" anyway).
    """
    ldx_w, and32, rsh32, mov32_reg, mov64_imm = 0x61, 0x54, 0x74, 0xBC, 0xB7
    jne_imm, jeq_imm, exit_ = 0x55, 0x15, 0x95
    prog = [_insn(ldx_w, 2, 1, 0), _insn(and32, 2, imm=0xFFFF), _insn(ldx_w, 3, 1, 0), _insn(rsh32, 3, imm=16),
            _insn(ldx_w, 4, 1, 4), _insn(ldx_w, 5, 1, 8)]  # fmt: skip
    for rule in reversed(rules):
        kind = rule.get("type") or "a"
        access = sum(_DEV_ACCESS[c] for c in set(rule.get("access") or "rwm") if c in _DEV_ACCESS)
        allow = bool(rule.get("allow"))
        # Conditions as (opcode, dst, imm, extra instructions before the jump); each jumps past the block on a miss.
        checks: list[list[tuple]] = []
        if kind != "a":
            checks.append([(jne_imm, 2, _DEV_TYPES[kind])])
        if access != 7:
            # allow: the request must be within the rule's access; deny: it must touch a denied access.
            mask = (~access & 7) if allow else access
            checks.append([(mov32_reg, 1, 3), (and32, 1, mask), (jne_imm if allow else jeq_imm, 1, 0)])
        if kind != "a" and rule.get("major") is not None and rule["major"] >= 0:
            checks.append([(jne_imm, 4, rule["major"])])
        if kind != "a" and rule.get("minor") is not None and rule["minor"] >= 0:
            checks.append([(jne_imm, 5, rule["minor"])])
        flat = [ins for group in checks for ins in group]
        length = len(flat) + 2  # + mov r0 + exit
        block = []
        for i, (code, dst, arg) in enumerate(flat):
            if code == mov32_reg:
                block.append(_insn(code, dst, arg))
            elif code == and32:
                block.append(_insn(code, dst, imm=arg))
            else:
                block.append(_insn(code, dst, off=length - (i + 1), imm=arg))
        block += [_insn(mov64_imm, 0, imm=1 if allow else 0), _insn(exit_)]
        prog += block
        if not flat:
            # An unconditional rule decides everything; the verifier rejects code after it as unreachable.
            return b"".join(prog)
    prog += [_insn(mov64_imm, 0, imm=1), _insn(exit_)]
    return b"".join(prog)
