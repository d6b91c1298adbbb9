"""The launcher: a small pre-imported process that forks one supervisor per container start."""

from __future__ import annotations

import base64
import gc
import json
import os
import signal
import socket
import sys
from pathlib import Path

from engine.errors import ContainerStartError, SystemFailure
from engine.runtime import control
from engine.runtime.control import Attach, Started

__all__ = ["Attach", "Launcher", "Started", "main"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the directory holding the engine package
LAUNCHER_DIED = "the launcher exited while starting a container; see launcher.log"
MAX_FD = 1 << 30  # above any fd limit: os.closerange(low, MAX_FD) is one close_range(2)


class Launcher:
    """The daemon's handle on the launcher process; start() is safe to call from many threads."""

    def __init__(self, run_dir: Path, command: list[str] | None = None) -> None:
        # command replaces `python -m engine.runtime.launcher` (tests preload a fake init this way);
        # the socket's fd number is appended to it.
        import threading  # the daemon's side only: the launcher process itself never needs threads

        self.run_dir = Path(run_dir)
        self.command = command or [sys.executable, "-m", "engine.runtime.launcher"]
        self.send_lock = threading.Lock()
        self.proc = None  # subprocess.Popen
        self.sock: socket.socket | None = None
        self.spawn()

    def spawn(self) -> None:
        """Start a fresh launcher process connected by a socketpair."""
        import subprocess

        self.run_dir.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        # Supervisors inherit this stderr: their tracebacks land in launcher.log.
        with open(self.run_dir / "launcher.log", "ab") as log:
            self.proc = subprocess.Popen(self.command + [str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd="/")
        theirs.close()
        self.sock = ours

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def start(self, bundle: Path, attaches: list[Attach] | tuple[Attach, ...] = ()) -> Started:
        """Fork a supervisor for bundle; return once the container's process has exec'd.

        Raises ContainerStartError with the init's message when it could not start. The attach fds are
        duplicated into the supervisor: the caller closes its own copies afterwards.
        """
        bundle = Path(bundle).absolute()
        try:
            # Read here, in the daemon: a supervisor that parsed config.json itself would keep ~0.6 MB of the
            # pages it shares with the launcher (every object allocated there is a page copied).
            options = control.read_options(bundle)
        except (OSError, ValueError) as e:
            raise ContainerStartError(f"reading the runtime options of container {bundle.name}: {e}") from e
        msg = {"op": "start", "bundle": str(bundle), "options": options,
               "attaches": [{"stdin": a.stdin, "stdout": a.stdout, "stderr": a.stderr, "framed": a.framed,
                             "pending": base64.b64encode(a.pending).decode(),
                             "detach_keys": base64.b64encode(a.detach_keys).decode()} for a in attaches]}
        # The supervisor answers on a pipe of this call's own (sent along as the first fd), straight to us: no
        # hop through the launcher, and no reader shared between the threads that start containers.
        reply_r, reply_w = os.pipe()
        try:
            with self.send_lock:
                if self.proc is None or self.proc.poll() is not None:
                    self.respawn()
                try:
                    assert self.sock is not None
                    control.send_msg(self.sock, msg, [reply_w] + [a.fd for a in attaches])
                except OSError as e:
                    raise SystemFailure(f"asking the launcher to start {bundle.name}: {e.strerror}") from e
            os.close(reply_w)
            reply_w = -1
            data = read_until_eof(reply_r)  # EOF once every copy of reply_w is closed: the answer is complete
        finally:
            os.close(reply_r)
            if reply_w >= 0:
                os.close(reply_w)
        line = data.split(b"\n", 1)[0]
        try:
            reply = json.loads(line) if line else None
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            if self.launcher_died():
                raise SystemFailure(LAUNCHER_DIED)
            raise ContainerStartError(f"the supervisor of {bundle.name} died before starting the container; "
                                      f"see launcher.log")
        if not reply.get("ok"):
            raise ContainerStartError(reply.get("error") or f"container {bundle.name} failed to start")
        return Started(int(reply["supervisor_pid"]), int(reply["init_pid"]))

    def launcher_died(self) -> bool:
        """Tell whether the launcher process is gone (it takes the request, and our reply pipe, with it)."""
        import subprocess

        if self.proc is None:
            return True
        try:
            # Its fds close a moment before it becomes a zombie: give the exit a moment to be visible.
            self.proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            return False
        return True

    def respawn(self) -> None:
        """Replace a launcher that died (killed by hand): supervisors it forked are not affected."""
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None:
            self.proc.wait()
        self.spawn()

    def close(self) -> None:
        """Stop the launcher (it exits when its socket closes); running supervisors stay."""
        import subprocess

        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def read_until_eof(fd: int) -> bytes:
    chunks = []
    while True:
        data = os.read(fd, 4096)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


# ---- the launcher process ---------------------------------------------------------------------------------------

def close_fds_except(keep: list[int]) -> None:
    """Close every fd but the sorted keep (close_range(2): one syscall per gap, whatever the fd limit)."""
    low = 0
    for fd in keep:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, MAX_FD)


def serve(sock: socket.socket, supervisor) -> None:
    """Serve start requests until the daemon closes its end, one at a time (each is a fork: microseconds)."""
    reader = control.MessageReader(sock)
    while True:
        got = reader.recv()
        if got is None:
            return
        msg, fds = got
        try:
            fork_supervisor(msg, fds, supervisor)
        finally:
            control.close_fds(fds)  # the supervisor has its copies


def fork_supervisor(msg: dict, fds: list[int], supervisor) -> None:
    """Fork a supervisor for msg's bundle in its own session; it answers on the first fd (the reply pipe).

    One fork, not two: the supervisor is our child, but nothing ties its life to ours. It has its own session
    (a signal to the daemon's process group or a hangup misses it), no parent-death signal, and it never opens a
    terminal, so being a session leader cannot give it a controlling one. If we die, the kernel reparents it to
    init like any orphan; while we live, SIGCHLD is ignored here, so the kernel reaps it when it exits. A double
    fork would only buy the same reparenting a few milliseconds earlier, at the price of a fork and an exit on
    every start.

    Every page this process writes between two forks stays, in its old version, with the supervisor forked
    before: so the work here per request is kept to a minimum (the supervisor decodes its own attaches).
    """
    if not fds:
        print(f"launcher: request without a reply pipe ignored: {msg.get('op')!r}", file=sys.stderr, flush=True)
        return
    reply_fd = fds[0]
    try:
        specs = msg.get("attaches") or []
        if msg.get("op") != "start":
            raise ValueError(f"unknown launcher operation {msg.get('op')!r}")
        if not isinstance(msg.get("bundle"), str) or not isinstance(msg.get("options"), dict):
            raise ValueError("a start request needs the bundle and its runtime options")
        if len(specs) != len(fds) - 1:
            raise ValueError(f"{len(specs)} attaches but {len(fds) - 1} fds")
        keep = [0, 1, 2] + sorted(fds)  # received fds are never 0..2: those are open here
        # Everything allocated so far joins the permanent generation, in the child too: its collections then
        # never walk (and write to, so copy) our objects. O(1): two lists are spliced.
        gc.freeze()
        # Empty the type attribute cache: each entry holds a reference to an attribute name, so the child's
        # first lookups would evict entries and write to (so copy) a page of strings somewhere for each.
        sys._clear_type_cache()
        pid = supervisor.fork()
    except Exception as e:  # noqa: BLE001 - report, keep serving
        try:
            os.write(reply_fd, json.dumps({"ok": False, "error": f"launcher: {e}"}).encode() + b"\n")
        except OSError:
            pass
        return
    if pid == 0:
        try:
            os.setsid()
            close_fds_except(keep)
            supervisor.main(msg["bundle"], msg["options"], specs, fds[1:], reply_fd)
        finally:
            os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """Run the launcher on the socket fd given as the last argument."""
    argv = sys.argv if argv is None else argv
    fd = int(argv[-1])
    # The daemon decides when the launcher ends (by closing the socket), not a ^C meant for the daemon.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Supervisors are our children: with SIGCHLD ignored the kernel reaps them, no zombie waits for us.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # Import now what every supervisor needs, so each fork shares these pages instead of importing again.
    from engine.runtime import init, supervisor  # supervisor imports init, cgroups, seccomp, logfile, control

    init.warm_up()  # host facts (cgroup layout, last cap, libc symbols) computed once, inherited by every fork
    gc.collect()
    gc.freeze()  # keep the collector from writing into (and so copying) the pre-imported objects in each fork
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    serve(sock, supervisor)


if __name__ == "__main__":
    main()
