"""Terminal sessions (exec and attach) that outlive a dropped websocket for a grace period, then resume.

A session owns the hijacked engine connection and one pump task. The pump reads the engine no faster than the
attached websocket takes the bytes (its sink waits while the browser's send buffer is full), keeps the last
64 KiB for a resuming socket, and writes the transcript when the site keeps them. A socket that drops detaches;
if no socket of the same user resumes within LIVE_EXEC_GRACE seconds, the engine connection is closed, which
hangs up the terminal of the process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from channels.db import database_sync_to_async
from django.conf import settings

from dockweb.core.errors import EngineError, EngineInvalid, EngineNotFound
from dockweb.live import engine

log = logging.getLogger("dockweb.live")

REPLAY = 64 * 1024
SHELLS = ("/bin/bash", "/bin/sh")


class Sink:
    """What a session needs from the socket attached to it."""

    send_output: Callable[[bytes], Awaitable[None]]
    send_json: Callable[[dict], Awaitable[None]]
    close_socket: Callable[[int], Awaitable[None]]


@dataclass
class Session:
    id: str
    kind: str                 # "exec" or "attach"
    user_id: int
    host_id: int
    engine_url: str
    container_id: str         # the container row's pk (audit)
    engine_id: str
    cmd: list[str]
    exec_id: str = ""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    ring: bytearray = field(default_factory=bytearray)
    sink: Sink | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    exit_code: int | None = None
    ended: bool = False
    pump: asyncio.Task | None = None
    watchdog: asyncio.Task | None = None
    grace: asyncio.TimerHandle | None = None
    transcript: object | None = None   # an open file, when transcripts are kept
    transcript_row: int | None = None

    # --- the socket side ----------------------------------------------------------------------------------

    async def attach(self, sink: Sink, replay: bool) -> None:
        """Make sink the socket of this session (closing a previous one), replaying the recent output first."""
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        async with self.lock:  # the pump holds it while delivering: the replay and live bytes never interleave
            old, self.sink = self.sink, sink
            if old is not None and old is not sink:
                await old.send_json({"type": "error", "message": "this session was resumed by another window"})
                await old.close_socket(4409)
            if replay and self.ring:
                await sink.send_output(bytes(self.ring))

    def detach(self, sink: Sink) -> None:
        """The socket went away: keep the process for the grace period."""
        if self.sink is not sink or self.ended:
            return
        self.sink = None
        self.grace = asyncio.get_running_loop().call_later(settings.LIVE_EXEC_GRACE, self._expire)

    def _expire(self) -> None:
        self.grace = None
        if self.sink is None and not self.ended:
            log.info("%s session %s: no socket came back within %ss, closing it", self.kind, self.id,
                     settings.LIVE_EXEC_GRACE)
            asyncio.get_running_loop().create_task(self.terminate("no socket came back"))

    async def write(self, data: bytes) -> None:
        """Send keystrokes to the process; waits while the engine does not take them (backpressure)."""
        if self.ended or self.writer is None:
            return
        self.last_activity = time.monotonic()
        self.writer.write(data)
        await self.writer.drain()

    async def resize(self, cols: int, rows: int) -> None:
        if self.ended or cols <= 0 or rows <= 0:
            return
        path = f"/exec/{self.exec_id}/resize" if self.kind == "exec" else f"/containers/{self.engine_id}/resize"
        try:
            await engine.call_json(self.engine_url, "POST", path, {"h": rows, "w": cols})
        except EngineError as e:
            log.debug("resize of %s session %s: %s", self.kind, self.id, e.message)

    # --- the engine side ----------------------------------------------------------------------------------

    async def _pump(self) -> None:
        try:
            while True:
                data = await self.reader.read(32 * 1024)
                if not data:
                    break
                self.last_activity = time.monotonic()
                async with self.lock:
                    self.ring += data
                    if len(self.ring) > REPLAY:
                        del self.ring[:len(self.ring) - REPLAY]
                    if self.transcript is not None:
                        self.transcript.write(data)
                    if self.sink is not None:
                        await self.sink.send_output(data)
        except (ConnectionError, OSError) as e:
            log.info("%s session %s: engine stream broke: %s", self.kind, self.id, e)
        except asyncio.CancelledError:
            return
        await self._finish()

    async def _finish(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.exit_code = await self._exit_code()
        if self.sink is not None:
            sink, self.sink = self.sink, None
            await sink.send_json({"type": "exit", "code": self.exit_code})
            await sink.close_socket(1000)
        await self._cleanup("exited")

    async def _exit_code(self) -> int | None:
        """Ask the engine for the exit code (it is recorded a moment after the stream ends)."""
        for _ in range(40):
            try:
                if self.kind == "exec":
                    info = await engine.call_json(self.engine_url, "GET", f"/exec/{self.exec_id}/json")
                    if not info.get("Running") and info.get("ExitCode") is not None:
                        return info["ExitCode"]
                else:
                    info = await engine.call_json(self.engine_url, "GET", f"/containers/{self.engine_id}/json")
                    state = info.get("State") or {}
                    if not state.get("Running"):
                        return state.get("ExitCode")
            except EngineError:
                return None
            await asyncio.sleep(0.05)
        return None

    async def _watch_idle(self) -> None:
        idle = settings.LIVE_EXEC_IDLE
        while not self.ended:
            await asyncio.sleep(max(min(idle / 4, 30.0), 0.05))
            if time.monotonic() - self.last_activity >= idle and not self.ended:
                sink, self.sink = self.sink, None
                if sink is not None:
                    await sink.send_json({"type": "error", "message": "idle timeout"})
                    await sink.close_socket(1000)
                await self.terminate("idle timeout")
                return

    async def terminate(self, why: str) -> None:
        """End the session now: close the engine connection (the terminal hangs up) and record it."""
        if self.ended:
            return
        self.ended = True
        if self.pump is not None:
            self.pump.cancel()
        if self.kind == "exec":
            await self._hang_up()
        await self._cleanup(why)

    async def _hang_up(self) -> None:
        """Send SIGHUP to the exec's processes (they carry DOCKWEB_SESSION=<id> in their environment).

        The Engine API has no call to end an exec, and closing its stream does not hang the terminal up (with
        Docker either): a small exec finds the session's processes by that variable and signals them.
        """
        # Plain sh and tr (busybox grep -l does not match in files with NUL bytes).
        script = ("for d in /proc/[0-9]*; do case \"$(tr '\\0' '\\n' < $d/environ 2>/dev/null)\" in "
                  f"*DOCKWEB_SESSION={self.id}*) kill -HUP ${{d#/proc/}};; esac; done")
        try:
            created = await engine.call_json(self.engine_url, "POST", f"/containers/{self.engine_id}/exec",
                                             body={"Cmd": ["sh", "-c", script], "AttachStdout": False,
                                                   "AttachStderr": False})
            await engine.call_json(self.engine_url, "POST", f"/exec/{created['Id']}/start", body={"Detach": True})
        except EngineError as e:
            log.info("exec session %s: could not hang up its processes: %s", self.id, e.message)

    async def _cleanup(self, why: str) -> None:
        SESSIONS.pop(self.id, None)
        if self.writer is not None:
            self.writer.close()
        if self.watchdog is not None and self.watchdog is not asyncio.current_task():
            self.watchdog.cancel()
        if self.grace is not None:
            self.grace.cancel()
        if self.transcript is not None:
            self.transcript.close()
        await database_sync_to_async(_audit_end)(self, why)


SESSIONS: dict[str, Session] = {}


def command_of(value) -> list[str] | None:
    """Parse the start message's cmd: a string (split like a shell), a list of strings, or null."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value) or None
        except ValueError as e:
            raise EngineInvalid(f"cannot parse the command {value!r}: {e}") from None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise EngineInvalid('cmd must be a string, a list of strings or null')


async def pick_shell(engine_url: str, engine_id: str) -> list[str]:
    """Return the first of /bin/bash, /bin/sh that exists in the container."""
    for shell in SHELLS:
        try:
            resp = await engine.request(engine_url, "HEAD", f"/containers/{engine_id}/archive", {"path": shell})
            resp.close()
            return [shell]
        except EngineNotFound:
            continue
    raise EngineInvalid("the container has neither /bin/bash nor /bin/sh: name the command to run")


async def open_exec(*, user, host, container, cmd: list[str] | None, as_user: str, cols: int,
                    rows: int) -> Session:
    """Create and start a TTY exec in the container; return its running session."""
    cmd = cmd or await pick_shell(host.engine_url, container.engine_id)
    session_id = secrets.token_urlsafe(18)
    size = [rows, cols] if rows > 0 and cols > 0 else None
    created = await engine.call_json(host.engine_url, "POST", f"/containers/{container.engine_id}/exec", body={
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True, "Cmd": cmd,
        "User": as_user or "", "Env": ["TERM=xterm-256color", f"DOCKWEB_SESSION={session_id}"],
        "ConsoleSize": size})
    exec_id = created["Id"]
    resp = await engine.request(host.engine_url, "POST", f"/exec/{exec_id}/start",
                                body={"Detach": False, "Tty": True, "ConsoleSize": size}, upgrade=True)
    session = _new_session("exec", user, host, container, cmd, resp, session_id)
    session.exec_id = exec_id
    await _begin(session, user, container)
    if size:
        await session.resize(cols, rows)
    return session


async def open_attach(*, user, host, container, cols: int, rows: int) -> Session:
    """Attach to a TTY container's main process; return its running session."""
    info = await engine.call_json(host.engine_url, "GET", f"/containers/{container.engine_id}/json")
    if not (info.get("Config") or {}).get("Tty"):
        raise EngineInvalid(f"container {container.name} has no TTY: attach works only for containers run with -t")
    if not (info.get("State") or {}).get("Running"):
        raise EngineInvalid(f"container {container.name} is not running")
    resp = await engine.request(host.engine_url, "POST", f"/containers/{container.engine_id}/attach",
                                {"stream": 1, "stdin": 1, "stdout": 1, "stderr": 1}, upgrade=True)
    cmd = [info.get("Path") or "", *(info.get("Args") or [])]
    session = _new_session("attach", user, host, container, cmd, resp)
    await _begin(session, user, container)
    await session.resize(cols, rows)
    return session


def _new_session(kind, user, host, container, cmd, resp, session_id: str = "") -> Session:
    return Session(id=session_id or secrets.token_urlsafe(18), kind=kind, user_id=user.pk, host_id=host.pk,
                   engine_url=host.engine_url, container_id=str(container.pk), engine_id=container.engine_id,
                   cmd=cmd, reader=resp.reader, writer=resp.writer)


async def _begin(session: Session, user, container) -> None:
    await database_sync_to_async(_audit_start)(session, user, container)
    SESSIONS[session.id] = session
    loop = asyncio.get_running_loop()
    session.pump = loop.create_task(session._pump(), name=f"live-{session.kind}-{session.id[:8]}")
    session.watchdog = loop.create_task(session._watch_idle())


def find(session_id: str, *, user_id: int, engine_id: str, kind: str) -> Session | None:
    """Return the live session with that id if it belongs to this user, container and kind."""
    s = SESSIONS.get(session_id or "")
    if s is None or s.ended or s.user_id != user_id or s.engine_id != engine_id or s.kind != kind:
        return None
    return s


def _audit_start(session: Session, user, container) -> None:
    from dockweb.core.audit import record

    cmd = shlex.join(session.cmd)
    record(f"container.{session.kind}", actor=user, obj=container, message=f"session {session.id} started: {cmd}")
    if settings.LIVE_KEEP_TRANSCRIPTS:
        from dockweb.live.models import Transcript

        directory = Path(settings.LIVE_TRANSCRIPT_DIR)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"{session.id}.log"
        session.transcript = open(path, "ab", buffering=64 * 1024)
        session.transcript_row = Transcript.objects.create(
            session=session.id, kind=session.kind, user=user, container_name=container.name,
            container_id=container.engine_id, host_name=container.host.name, command=cmd, path=str(path)).pk


def _audit_end(session: Session, why: str) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from dockweb.containers.models import Container
    from dockweb.core.audit import record

    seconds = time.monotonic() - session.started
    code = "" if session.exit_code is None else f", exit code {session.exit_code}"
    message = f"session {session.id} ended ({why}) after {seconds:.0f}s{code}: {shlex.join(session.cmd)}"
    user = get_user_model().objects.filter(pk=session.user_id).first()
    container = Container.objects.select_related("host", "team").filter(pk=session.container_id).first()
    if container is not None:
        record(f"container.{session.kind}.end", actor=user, obj=container, message=message)
    else:
        record(f"container.{session.kind}.end", actor=user, object_type="container", object_id=session.engine_id,
               message=message)
    if session.transcript_row is not None:
        from dockweb.live.models import Transcript

        path = Path(Transcript.objects.get(pk=session.transcript_row).path)
        Transcript.objects.filter(pk=session.transcript_row).update(
            ended=timezone.now(), exit_code=session.exit_code, size=path.stat().st_size if path.exists() else 0)
