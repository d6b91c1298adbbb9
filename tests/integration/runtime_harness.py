"""Run a hand-made bundle through engine.runtime.init without the supervisor, for the isolation tests (root)."""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.runtime import init
from engine.runtime import sys as linux
from engine.runtime.caps import DEFAULT_CAPS
from engine.runtime.cgroups import Cgroup, list_children

BUSYBOX = "/bin/busybox"
PROFILE = Path(__file__).resolve().parents[2] / "engine" / "runtime" / "profiles" / "seccomp-default.json"
DEFAULT_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DOCKER_MOUNTS = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]},
]  # fmt: skip
DOCKER_DEVICES = [
    {"path": f"/dev/{name}", "type": "c", "major": major, "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}
    for name, major, minor in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                               ("urandom", 1, 9), ("tty", 5, 0)]
]  # fmt: skip
DOCKER_DEVICE_RULES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": t, "major": major, "minor": minor, "access": access}
    for t, major, minor, access in [("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"),
                                    ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"),
                                    ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm"),
                                    ("c", 10, 200, "rwm")]
]  # fmt: skip


def make_rootfs(root: Path) -> Path:
    """Make a busybox rootfs: every applet in /bin, /etc/passwd with root and user (1000)."""
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "mnt", "root", "home/user"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nuser:x:1000:\n")
    os.chown(root / "home" / "user", 1000, 1000)
    return root


def default_seccomp() -> dict:
    """Docker's default profile resolved simply: keep rules without caps includes or with default caps only."""
    profile = json.loads(PROFILE.read_text())
    rules = []
    for rule in profile["syscalls"]:
        needs = (rule.get("includes") or {}).get("caps") or []
        if needs and not set(needs) <= set(DEFAULT_CAPS):
            continue
        rules.append({k: v for k, v in rule.items() if k in ("names", "action", "errnoRet", "args")})
    return {
        "defaultAction": profile["defaultAction"],
        "defaultErrnoRet": profile.get("defaultErrnoRet"),
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules,
    }


def default_spec(args: list[str], uid: int = 0, gid: int = 0, cgroups_path: str | None = None,
                 resources: dict | None = None, cwd: str = "/") -> dict:  # fmt: skip
    """A spec shaped like the one Docker makes for `docker run busybox <args>`."""
    caps = list(DEFAULT_CAPS)
    spec = {
        "ociVersion": "1.1.0",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": list(DEFAULT_ENV),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}],
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "dockweb-test",
        "mounts": [dict(m) for m in DOCKER_MOUNTS],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "devices": [dict(d) for d in DOCKER_DEVICES],
            "resources": {"devices": [dict(r) for r in DOCKER_DEVICE_RULES], **(resources or {})},
            "seccomp": default_seccomp(),
        },
        "annotations": {},
    }
    if cgroups_path:
        spec["linux"]["cgroupsPath"] = cgroups_path
    return spec


@dataclass
class Result:
    status: int  # raw wait status of the container's init
    output: bytes  # stdout and stderr, interleaved
    error: str  # what the init wrote to error_fd ("" when execve succeeded)

    @property
    def exit_code(self) -> int:
        code = os.waitstatus_to_exitcode(self.status)
        return 128 - code if code < 0 else code

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")


class Container:
    """A container started from a forked intermediate that unshared CLONE_NEWPID (the test process stays put)."""

    def __init__(self, bundle: Path, spec: dict, bpf: bytes | None, stdin: bytes = b"", tty: bool = False) -> None:
        # With tty, the init gets a console socket (as the supervisor passes), makes the pty inside the container
        # and sends back the master, off which the output is read.
        console = socket.socketpair() if tty else None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        st_r, st_w = os.pipe()
        in_r, in_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # intermediate
            try:
                for fd in (out_r, err_r, st_r, in_w):
                    os.close(fd)
                linux.unshare(linux.CLONE_NEWPID)
                child = os.fork()
                if child == 0:
                    os.close(st_w)
                    init.container_main(bundle, spec, (in_r, out_w, out_w), console[1].fileno() if console else None,
                                        bpf, err_w)  # fmt: skip
                for fd in (out_w, err_w, in_r):
                    os.close(fd)
                if console:
                    console[1].close()  # only the init may hold it: EOF when it dies before sending the master
                os.write(st_w, f"{child}\n".encode())
                _, status = os.waitpid(child, 0)
                os.write(st_w, f"{status}\n".encode())
            except BaseException as e:  # noqa: BLE001
                os.write(st_w, f"harness: {e!r}\n".encode())
            finally:
                os._exit(0)
        for fd in (out_w, err_w, st_w, in_r):
            os.close(fd)
        if console:
            master = receive_master(console)
            if master is not None:
                # Read the pty master instead of the (unused) pipe; EIO on the master: the slave side is gone.
                os.close(out_r)
                out_r = master
        if stdin:
            os.write(in_w, stdin)
        os.close(in_w)
        self.out_r, self.err_r = out_r, err_r
        self.status_file = os.fdopen(st_r)
        first = self.status_file.readline().strip()
        if not first.isdigit():
            raise RuntimeError(first)
        self.init_pid = int(first)  # the container's pid 1 as the host sees it
        self.output = b""

    def read_until(self, marker: bytes, timeout: float = 10) -> bytes:
        """Read output until marker shows up (the container is past its start), return what was read."""
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} in {timeout}s; output: {self.output!r}")
            ready, _, _ = select.select([self.out_r], [], [], left)
            if ready:
                chunk = os.read(self.out_r, 65536)
                if not chunk:
                    raise EOFError(f"container exited before printing {marker!r}; output: {self.output!r}")
                self.output += chunk
        return self.output

    def wait(self, timeout: float = 20) -> Result:
        """Collect output until the container exits; SIGKILL it after timeout."""
        deadline = time.monotonic() + timeout
        killed = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0 and not killed:
                os.kill(self.init_pid, signal.SIGKILL)
                killed = True
            ready, _, _ = select.select([self.out_r], [], [], max(left, 0.1) if not killed else 1)
            if not ready:
                continue
            try:
                chunk = os.read(self.out_r, 65536)
            except OSError:  # EIO from a pty master: every slave fd is closed
                chunk = b""
            if not chunk:
                break
            self.output += chunk
        error = b""
        while chunk := os.read(self.err_r, 65536):
            error += chunk
        status = self.status_file.readline().strip()
        os.waitpid(self.pid, 0)
        for fd in (self.out_r, self.err_r):
            os.close(fd)
        self.status_file.close()
        if killed:
            raise TimeoutError(f"container did not exit in {timeout}s; output so far: {self.output!r}")
        return Result(int(status), self.output, error.decode(errors="replace"))

    def kill(self) -> None:
        try:
            os.kill(self.init_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(bundle: Path, spec: dict, bpf: bytes | None = None, timeout: float = 20, stdin: bytes = b"",
        tty: bool = False) -> Result:  # fmt: skip
    """Start a container and wait for it."""
    c = Container(bundle, spec, bpf, stdin, tty)
    try:
        return c.wait(timeout)
    finally:
        c.kill()


def receive_master(console: tuple[socket.socket, socket.socket], timeout: float = 10) -> int | None:
    """Close our copy of the init's end, then receive the pty master it sends (None: it died before sending)."""
    ours, theirs = console
    theirs.close()
    ours.settimeout(timeout)
    try:
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    finally:
        ours.close()
    return fds[0] if fds else None


def _read_output(fd: int, deadline: float) -> bytes:
    output = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO from a pty master: every slave fd is closed
                chunk = b""
            if not chunk:
                break
            output += chunk
    return output


def exec_in(container: Container, spec: dict, process: dict, bpf: bytes | None = None, timeout: float = 10,
            tty: bool = False) -> Result:  # fmt: skip
    """Run exec_main in a child that entered the container's pid namespace first (as the supervisor's would be)."""
    console = socket.socketpair() if tty else None
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    st_r, st_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(out_r)
            os.close(err_r)
            os.close(st_r)
            fd = os.open(f"/proc/{container.init_pid}/ns/pid", os.O_RDONLY)
            linux.setns(fd, linux.CLONE_NEWPID)
            child = os.fork()
            if child == 0:
                null = os.open("/dev/null", os.O_RDONLY)
                init.exec_main(container.init_pid, spec, process, (null, out_w, out_w),
                               console[1].fileno() if console else None, bpf, err_w)  # fmt: skip
            os.close(out_w)
            os.close(err_w)
            if console:
                console[1].close()
            _, status = os.waitpid(child, 0)
            os.write(st_w, f"{status}\n".encode())
        except BaseException as e:  # noqa: BLE001
            os.write(st_w, f"harness: {e!r}\n".encode())
        finally:
            os._exit(0)
    for fd in (out_w, err_w, st_w):
        os.close(fd)
    deadline = time.monotonic() + timeout
    if console:
        master = receive_master(console, timeout)
        if master is not None:
            os.close(out_r)
            out_r = master
    output = _read_output(out_r, deadline)
    error = os.read(err_r, 65536)
    with os.fdopen(st_r) as f:
        status = f.readline().strip()
    os.waitpid(pid, 0)
    os.close(out_r)
    os.close(err_r)
    if not status.isdigit():
        raise RuntimeError(status)
    return Result(int(status), output, error.decode(errors="replace"))


def new_cgroup_parent() -> str:
    """A unique cgroup parent name the leftovers check recognises."""
    return f"dockweb-test-{secrets.token_hex(4)}"


def remove_cgroup_tree(parent: str) -> None:
    """Kill what is left in the parent's child cgroups and rmdir them all (test cleanup)."""
    for child in list_children(parent):
        Cgroup.open(child).kill(signal.SIGKILL)
    Cgroup.open(parent).remove()


def time_starts(runs: int = 50, exec_too: bool = True) -> dict[str, float]:
    """Median wall times (ms) of `runs` container starts of `true` and of `runs` execs of `true` (root; no daemon).

    Measures what the init and exec sequences cost: from before the fork to the container process exiting.
    Run it as `python -m tests.integration.runtime_harness [runs]` (pin it with `taskset -c 1` for steady numbers).
    """
    import statistics
    import tempfile

    from engine.runtime.seccomp import compile_bpf

    init.warm_up()  # as the launcher does before forking supervisors
    tmp = Path(tempfile.mkdtemp(prefix="dockweb-test-bench-"))
    parent = new_cgroup_parent()
    try:
        bundle = tmp / "bundle"
        make_rootfs(bundle / "rootfs")
        bpf = compile_bpf(default_seccomp(), tmp / "seccomp")
        starts = []
        for i in range(runs + 1):
            t0 = time.perf_counter()
            res = run(bundle, default_spec(["true"], cgroups_path=f"{parent}/c{i}"), bpf)
            if res.exit_code != 0:
                raise RuntimeError(f"container failed: {res.error or res.text}")
            starts.append(time.perf_counter() - t0)
        out = {"start_ms": statistics.median(starts[1:]) * 1000}
        if exec_too:
            spec = default_spec(["sleep", "600"], cgroups_path=f"{parent}/exec")
            c = Container(bundle, spec, bpf)
            try:
                process = dict(spec["process"], args=["true"])
                execs = []
                for _ in range(runs + 1):
                    t0 = time.perf_counter()
                    res = exec_in(c, spec, process, bpf)
                    if res.exit_code != 0:
                        raise RuntimeError(f"exec failed: {res.error or res.text}")
                    execs.append(time.perf_counter() - t0)
            finally:
                c.kill()
                c.wait()
            out["exec_ms"] = statistics.median(execs[1:]) * 1000
        return out
    finally:
        remove_cgroup_tree(parent)
        shutil.rmtree(tmp)


# --- fixtures (import them into a test module: `from tests.integration.runtime_harness import bundle, ...`) ----

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rootfs(tmp_path_factory.mktemp("rootfs-template") / "rootfs")


@pytest.fixture
def bundle(tmp_path: Path, rootfs_template: Path) -> Path:
    """A bundle directory with a fresh copy of the busybox rootfs (symlinks preserved)."""
    shutil.copytree(rootfs_template, tmp_path / "rootfs", symlinks=True)
    return tmp_path


@pytest.fixture(scope="module")
def default_bpf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from engine.runtime.seccomp import compile_bpf

    return compile_bpf(default_seccomp(), tmp_path_factory.mktemp("seccomp-cache"))


@pytest.fixture
def cgroup_parent() -> str:
    parent = new_cgroup_parent()
    try:
        yield parent
    finally:
        remove_cgroup_tree(parent)


if __name__ == "__main__":
    import sys

    print(time_starts(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
