"""Helpers for the supervisor tests: bundles, a launcher (real or fake init), stdcopy parsing, cleanup."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import struct
import sys
import time
from pathlib import Path

import pytest

from engine.runtime.launcher import Launcher
from engine.runtime.control import start_options

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = "/bin/busybox"
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "HOME=/root"]


# ---- a trivial init: exec the command without isolation (tests the supervisor's event loop alone) -------------

def _exec(process: dict, stdio: tuple[int, int, int], console_sock: int | None, error_fd: int):
    args = process["args"]
    try:
        if console_sock is not None:
            # The real init's pty dance, on the host's /dev/ptmx: sends the master, makes the slave fds 0, 1, 2.
            from engine.runtime.init import setup_console

            setup_console(console_sock, process, mount_console=False)
            stdio = (0, 1, 2)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)  # dup2 clears close-on-exec on the target
        os.chdir(process.get("cwd") or "/")
        env = dict(e.split("=", 1) for e in process.get("env", []))
        os.execvpe(args[0], args, env)
    except OSError as e:
        os.write(error_fd, f'exec: "{args[0]}": {e.strerror}'.encode())
        os._exit(126 if e.errno == 13 else 127)


def fake_container_main(bundle, spec, stdio, console_sock, seccomp_bpf, error_fd):
    _exec(spec["process"], stdio, console_sock, error_fd)


def fake_exec_main(init_pid, spec, process, stdio, console_sock, seccomp_bpf, error_fd):
    _exec(process, stdio, console_sock, error_fd)


def run_fake_launcher() -> None:
    """Launcher process entry whose supervisors use the trivial init above."""
    import types

    import engine.runtime as runtime

    try:
        from engine.runtime import init
    except ImportError:
        init = types.ModuleType("engine.runtime.init")
        sys.modules["engine.runtime.init"] = init
        runtime.init = init
    init.container_main = fake_container_main
    init.exec_main = fake_exec_main
    from engine.runtime.launcher import main

    main()


FAKE_LAUNCHER = [sys.executable, "-c",
                 "from tests.integration.supervisor_harness import run_fake_launcher; run_fake_launcher()"]


# ---- bundles ---------------------------------------------------------------------------------------------------

def make_bundle(root: Path, args: list[str], *, terminal: bool = False, open_stdin: bool = False,
                stdin_once: bool = False, log_max_size: int = 0, log_max_files: int = 1,
                console: tuple[int, int] | None = None, spec_extra: dict | None = None,
                daemon_options: bool = True) -> Path:
    """Write a bundle with a spec that the trivial init understands (pid namespace only).

    daemon_options: put the supervisor's start options into runtime.json as the daemon does (False: leave them
    out, as an older daemon did, so the supervisor reads them from config.json).
    """
    cid = secrets.token_hex(6)
    bundle = root / "containers" / cid
    bundle.mkdir(parents=True)
    process = {"terminal": terminal, "args": args, "env": ENV, "cwd": "/",
               "user": {"uid": 0, "gid": 0}}
    if console:
        process["consoleSize"] = {"height": console[0], "width": console[1]}
    spec = {"ociVersion": "1.1.0", "process": process, "root": {"path": "/", "readonly": False},
            "hostname": cid, "mounts": [], "linux": {"namespaces": [{"type": "pid"}]}}
    for key, value in (spec_extra or {}).items():
        spec[key] = value
    (bundle / "config.json").write_text(json.dumps(spec))
    runtime = {"id": cid, "log_path": str(bundle / "container-json.log"), "log_max_size": log_max_size,
               "log_max_files": log_max_files, "open_stdin": open_stdin, "stdin_once": stdin_once}
    if daemon_options:
        runtime.update(start_options(spec))
    (bundle / "runtime.json").write_text(json.dumps(runtime))
    return bundle


# ---- waiting and reading ---------------------------------------------------------------------------------------

def is_alive(pid: int) -> bool:
    """True while pid runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_exit(bundle: Path, timeout: float = 10.0) -> dict:
    """Wait for the supervisor's exit.json and return it."""
    path = bundle / "exit.json"
    wait_for(path.exists, timeout, f"{path}")
    return json.loads(path.read_text())


def read_until_eof(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def read_until(sock: socket.socket, needle: bytes, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf:
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not seen; got {buf!r}")
        data = sock.recv(65536)
        if not data:
            raise AssertionError(f"EOF before {needle!r}; got {buf!r}")
        buf += data
    return buf


def demux(data: bytes) -> list[tuple[int, bytes]]:
    """Split a Docker stdcopy stream into (stream, payload) frames; fail on a malformed header."""
    frames = []
    while data:
        assert len(data) >= 8, f"truncated stdcopy header: {data!r}"
        stream, size = struct.unpack(">BxxxI", data[:8])
        assert stream in (1, 2) and data[1:4] == b"\0\0\0", f"bad stdcopy header {data[:8]!r}"
        assert len(data) >= 8 + size, "truncated stdcopy frame"
        frames.append((stream, data[8:8 + size]))
        data = data[8 + size:]
    return frames


def joined(frames: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(payload for s, payload in frames if s == stream)


# ---- fixtures --------------------------------------------------------------------------------------------------

class Runs:
    """Starts containers through a launcher and kills whatever is left at teardown."""

    def __init__(self, root: Path, command: list[str] | None) -> None:
        self.root = root
        self.launcher = Launcher(root / "run", command=command)
        self.started: list[tuple[Path, int, int]] = []  # (bundle, supervisor pid, init pid)
        self.launcher_pids = [self.launcher.pid]

    def start(self, bundle: Path, attaches=()):
        started = self.launcher.start(bundle, list(attaches))
        self.started.append((bundle, started.supervisor_pid, started.init_pid))
        if self.launcher.pid not in self.launcher_pids:
            self.launcher_pids.append(self.launcher.pid)
        return started

    def cleanup(self) -> None:
        for _bundle, _sup, init_pid in self.started:
            if is_alive(init_pid):
                try:
                    os.kill(init_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for bundle, sup, _init in self.started:
            try:
                wait_for(lambda: not is_alive(sup), 5, f"supervisor {sup}")
            except AssertionError:
                os.kill(sup, signal.SIGKILL)
        self.launcher.close()
        for pid in self.launcher_pids:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def runs_fixture(tmp_path: Path, command: list[str] | None):
    if os.geteuid() != 0:
        pytest.skip("supervisors unshare a pid namespace: needs root")
    runs = Runs(tmp_path / "engine", command)
    try:
        yield runs
    finally:
        runs.cleanup()


@pytest.fixture
def fake_runs(tmp_path):
    """A launcher whose supervisors run the command without isolation (the trivial init)."""
    yield from runs_fixture(tmp_path, FAKE_LAUNCHER)


@pytest.fixture
def real_runs(tmp_path):
    """A launcher with the real init (engine.runtime.init)."""
    if not (REPO / "engine" / "runtime" / "init.py").exists():
        pytest.skip("engine/runtime/init.py is not written yet")
    yield from runs_fixture(tmp_path, None)
