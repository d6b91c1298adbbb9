"""The launcher: a small pre-imported process that double-forks one supervisor per container start."""

from __future__ import annotations

import base64
import itertools
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from engine.errors import ContainerStartError, SystemFailure
from engine.runtime import control
from engine.runtime.control import Attach, Started

__all__ = ["Attach", "Launcher", "Started", "main"]

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent  # the directory holding the engine package


class Launcher:
    """The daemon's handle on the launcher process; start() is safe to call from many threads."""

    def __init__(self, run_dir: Path, command: list[str] | None = None) -> None:
        # command replaces `python -m engine.runtime.launcher` (tests preload a fake init this way);
        # the socket's fd number is appended to it.
        self.run_dir = Path(run_dir)
        self.command = command or [sys.executable, "-m", "engine.runtime.launcher"]
        self.ids = itertools.count(1)
        self.send_lock = threading.Lock()
        self.cond = threading.Condition()
        self.results: dict[int, dict] = {}
        self.reading = False
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.reader: control.MessageReader | None = None
        self.generation = 0
        self.spawn()

    def spawn(self) -> None:
        """Start a fresh launcher process connected by a socketpair."""
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
        self.reader = control.MessageReader(ours)
        self.generation += 1

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def start(self, bundle: Path, attaches: list[Attach] | tuple[Attach, ...] = ()) -> Started:
        """Fork a supervisor for bundle; return once the container's process has exec'd.

        Raises ContainerStartError with the init's message when it could not start. The attach fds are
        duplicated into the supervisor: the caller closes its own copies afterwards.
        """
        bundle = Path(bundle).absolute()
        msg = {"op": "start", "bundle": str(bundle),
               "attaches": [{"stdin": a.stdin, "stdout": a.stdout, "stderr": a.stderr, "framed": a.framed,
                             "pending": base64.b64encode(a.pending).decode(),
                             "detach_keys": base64.b64encode(a.detach_keys).decode()} for a in attaches]}
        with self.send_lock:
            if self.proc is None or self.proc.poll() is not None:
                self.respawn()
            rid = msg["id"] = next(self.ids)
            generation = self.generation
            try:
                assert self.sock is not None
                control.send_msg(self.sock, msg, [a.fd for a in attaches])
            except OSError as e:
                raise SystemFailure(f"asking the launcher to start {bundle.name}: {e.strerror}") from e
        reply = self.wait_reply(rid, generation)
        if not reply.get("ok"):
            raise ContainerStartError(reply.get("error") or f"container {bundle.name} failed to start")
        return Started(int(reply["supervisor_pid"]), int(reply["init_pid"]))

    def respawn(self) -> None:
        """Replace a launcher that died (killed by hand): supervisors it forked are not affected."""
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None:
            self.proc.wait()
        self.spawn()

    def wait_reply(self, rid: int, generation: int) -> dict:
        # One thread at a time reads the socket and files every reply it sees under its id; the others wait.
        with self.cond:
            while rid not in self.results:
                if generation != self.generation:
                    raise SystemFailure("the launcher died while starting a container")
                if self.reading:
                    self.cond.wait()
                    continue
                self.reading = True
                reader = self.reader
                self.cond.release()
                try:
                    assert reader is not None
                    got = reader.recv()
                except OSError:
                    got = None
                finally:
                    self.cond.acquire()
                    self.reading = False
                if got is None:
                    self.cond.notify_all()
                    raise SystemFailure("the launcher exited while starting a container; see launcher.log")
                obj, fds = got
                control.close_fds(fds)
                self.results[int(obj.get("id", 0))] = obj
                self.cond.notify_all()
            return self.results.pop(rid)

    def close(self) -> None:
        """Stop the launcher (it exits when its socket closes); running supervisors stay."""
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


# ---- the launcher process ---------------------------------------------------------------------------------------

def _close_other_fds(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory's own fd, already closed


def fork_supervisor(bundle: str, attaches: list[Attach]) -> int:
    """Double-fork a supervisor (fork, setsid, fork) and return the read end of its reply pipe."""
    from engine.runtime import supervisor

    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()  # no terminal, no process group shared with the daemon: ^C and hangups miss it
            if os.fork() != 0:
                os._exit(0)  # the grandchild is reparented to init: neither daemon nor launcher is its parent
            _close_other_fds({0, 1, 2, reply_w} | {a.fd for a in attaches})
            supervisor.main(Path(bundle), attaches, reply_w)
        finally:
            os._exit(1)
    os.close(reply_w)
    os.waitpid(pid, 0)
    return reply_r


def serve(sock: socket.socket) -> None:
    """Serve start requests until the daemon closes its end; starts run concurrently."""
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    reader = control.MessageReader(sock)
    replies: dict[int, tuple[int, str, bytearray]] = {}  # reply pipe fd -> (request id, bundle, bytes so far)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                if not reader.feed():
                    return
                while (got := reader.pop()) is not None:
                    msg, fds = got
                    handle_request(msg, fds, sel, replies, sock)
                continue
            fd = key.fd
            rid, bundle, buf = replies[fd]
            data = os.read(fd, 4096)
            if data:
                buf += data
                continue
            sel.unregister(fd)
            os.close(fd)
            del replies[fd]
            line = bytes(buf).split(b"\n", 1)[0]
            try:
                result = json.loads(line) if line else None
            except ValueError:
                result = None
            if not isinstance(result, dict):
                result = {"ok": False, "error": f"the supervisor of {Path(bundle).name} died before starting "
                                                f"the container; see launcher.log"}
            result["id"] = rid
            control.send_msg(sock, result)


def handle_request(msg: dict, fds: list[int], sel, replies: dict, sock: socket.socket) -> None:
    rid = msg.get("id", 0)
    try:
        if msg.get("op") != "start":
            raise ValueError(f"unknown launcher operation {msg.get('op')!r}")
        specs = msg.get("attaches") or []
        if len(specs) != len(fds):
            raise ValueError(f"{len(specs)} attaches but {len(fds)} fds")
        attaches = [Attach(fd, bool(a.get("stdin")), bool(a.get("stdout")), bool(a.get("stderr")),
                           bool(a.get("framed")), base64.b64decode(a.get("pending") or ""),
                           base64.b64decode(a["detach_keys"]) if a.get("detach_keys") is not None
                           else control.DEFAULT_DETACH_KEYS)
                    for fd, a in zip(fds, specs)]
        reply_r = fork_supervisor(msg["bundle"], attaches)
    except Exception as e:  # noqa: BLE001 - report, keep serving
        control.send_msg(sock, {"id": rid, "ok": False, "error": f"launcher: {e}"})
        return
    finally:
        control.close_fds(fds)  # the supervisor has its copies
    os.set_blocking(reply_r, False)
    replies[reply_r] = (rid, msg["bundle"], bytearray())
    sel.register(reply_r, selectors.EVENT_READ, "reply")


def main(argv: list[str] | None = None) -> None:
    """Run the launcher on the socket fd given as the last argument."""
    argv = sys.argv if argv is None else argv
    fd = int(argv[-1])
    # The daemon decides when the launcher ends (by closing the socket), not a ^C meant for the daemon.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Import now what every supervisor needs, so each fork shares these pages instead of importing again.
    import json  # noqa: F401

    from engine.runtime import supervisor  # noqa: F401

    for name in ("init", "seccomp", "cgroups", "sys"):
        try:
            __import__(f"engine.runtime.{name}")
        except ImportError as e:
            print(f"launcher: engine.runtime.{name} not importable: {e}", file=sys.stderr, flush=True)
    import gc

    gc.collect()
    gc.freeze()  # keep the collector from writing into (and so copying) the pre-imported objects in each fork
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)
    serve(sock)


if __name__ == "__main__":
    main()
