"""Run the containers' HEALTHCHECK probes and keep their State.Health, as dockerd's daemon/health.go does."""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from engine import state as st
from engine.events import EventLog
from engine.runtime import control

log = logging.getLogger(__name__)

# dockerd's defaults (daemon/health.go): probe every 30 s, 30 s each, 3 failures make unhealthy; while
# "starting" inside the start period the probes come every StartInterval (5 s) instead.
DEFAULT_INTERVAL_NS = 30_000_000_000
DEFAULT_TIMEOUT_NS = 30_000_000_000
DEFAULT_START_PERIOD_NS = 0
DEFAULT_START_INTERVAL_NS = 5_000_000_000
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
EXEC_START_TIMEOUT = 30.0   # a wedged exec request, not counted in the probe's timeout (dockerd: the same 30 s)

STARTING, HEALTHY, UNHEALTHY, NONE = "starting", "healthy", "unhealthy", "none"
VALID_STATUSES = (STARTING, HEALTHY, UNHEALTHY, NONE)
HEALTH_FILE = "health.json"   # <container dir>/health.json, written only by the daemon


@dataclass
class Health:
    """State.Health of one container: Status, FailingStreak and the last five probe results."""

    status: str = STARTING
    failing_streak: int = 0
    log: list[dict] = field(default_factory=list)   # {"start_ns", "end_ns", "exit_code", "output"}

    def to_api(self) -> dict:
        """Return the Engine API shape of State.Health."""
        return {"Status": self.status, "FailingStreak": self.failing_streak,
                "Log": [{"Start": st.rfc3339(e["start_ns"]), "End": st.rfc3339(e["end_ns"]),
                         "ExitCode": e["exit_code"], "Output": e["output"]} for e in self.log]}

    def text(self) -> str:
        """Return what `docker ps` puts in parentheses after "Up ..." (Docker's Health.String)."""
        return "health: starting" if self.status == STARTING else self.status


def read(container_dir: Path) -> Health | None:
    """Return the container's recorded health, or None when it never ran a healthcheck."""
    try:
        doc = st.read_json(Path(container_dir) / HEALTH_FILE)
    except (OSError, ValueError):
        return None
    if not doc:
        return None
    return Health(doc.get("status", STARTING), int(doc.get("failing_streak", 0)), list(doc.get("log") or []))


def write(container_dir: Path, health: Health) -> None:
    st.write_json(Path(container_dir) / HEALTH_FILE, asdict(health), fsync=False)


def status_of(container_dir: Path) -> str:
    """Return the health status the `health` filter of ps compares: starting|healthy|unhealthy|none."""
    h = read(container_dir)
    return h.status if h else NONE


def probe_argv(healthcheck: dict | None, shell: list[str] | None = None) -> list[str] | None:
    """Turn Config.Healthcheck.Test into the argv of one probe; None when there is nothing to run (NONE)."""
    test = (healthcheck or {}).get("Test") or []
    if not test:
        return None
    kind = test[0]
    if kind == "CMD" and len(test) > 1:
        return list(test[1:])
    if kind == "CMD-SHELL" and len(test) > 1:
        return [*(shell or ["/bin/sh", "-c"]), *test[1:]]
    return None     # "NONE", or a type dockerd also ignores (it logs a warning)


def go_duration(ns: int) -> str:
    """Format nanoseconds as Go's time.Duration.String() (1s, 500ms, 1m30s), as dockerd's messages show them."""
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{_trim(ns / 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{_trim(ns / 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = f"{_trim(rest / 1e9)}s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")


def _setting(hc: dict, key: str, default: int) -> int:
    value = hc.get(key) or 0
    return int(value) if value > 0 else default


class _Output:
    """Docker's limitedBuffer: keep the first MAX_OUTPUT bytes of stdout+stderr, mark the loss with "..."."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = MAX_OUTPUT - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > max(room, 0):
            self.truncated = True

    def text(self) -> str:
        return self.data.decode(errors="replace") + ("..." if self.truncated else "")


class _Monitor:
    """The probing thread of one running container."""

    def __init__(self, owner: "HealthMonitor", c) -> None:
        self.owner = owner
        self.c = c
        self.stop_event = threading.Event()
        self.lock = threading.Lock()       # orders a result's write against stop()'s
        self.thread = threading.Thread(target=self.run, name=f"health-{c.id[:12]}", daemon=True)

    def run(self) -> None:
        hc = self.c.config.get("Healthcheck") or {}
        interval = _setting(hc, "Interval", DEFAULT_INTERVAL_NS) / 1e9
        start_interval = _setting(hc, "StartInterval", DEFAULT_START_INTERVAL_NS) / 1e9
        start_period = _setting(hc, "StartPeriod", DEFAULT_START_PERIOD_NS)
        while True:
            wait = interval
            # dockerd >= 25: while starting inside the start period, probe every StartInterval.
            if time.time_ns() - self.c.state.started_ns < start_period:
                h = read(self.c.dir)
                if h is None or h.status == STARTING:
                    wait = start_interval
            if self.stop_event.wait(wait):
                return
            try:
                result = self.owner.probe(self.c, self.stop_event)
            except Exception as e:     # a probe that could not run is a failed probe, as in dockerd
                log.warning("health check of container %s: %s", self.c.id, e)
                now = time.time_ns()
                result = {"start_ns": now, "end_ns": now, "exit_code": -1, "output": str(e)}
            if result is None:         # stopped while probing: the result no longer counts
                return
            self.record(result, hc)

    def record(self, result: dict, hc: dict) -> None:
        """Apply one probe result: dockerd's handleProbeResult."""
        c = self.c
        with self.lock:
            if self.stop_event.is_set():
                return
            h = read(c.dir) or Health()
            old = h.status
            h.log = (h.log + [result])[-MAX_LOG_ENTRIES:]
            if result["exit_code"] == 0:
                h.failing_streak = 0
                h.status = HEALTHY
            else:
                start_period = _setting(hc, "StartPeriod", DEFAULT_START_PERIOD_NS)
                # A container that never passed a probe: failures inside the start period do not count.
                if not (h.status == STARTING and result["start_ns"] - c.state.started_ns < start_period):
                    h.failing_streak += 1
                    if h.failing_streak >= _setting(hc, "Retries", DEFAULT_RETRIES):
                        h.status = UNHEALTHY
            try:
                write(c.dir, h)
            except OSError as e:       # the container is being removed under us
                log.warning("recording the health of %s: %s", c.id, e)
                return
        if h.status != old:
            self.owner.events.publish("container", f"health_status: {h.status}", c.id, self.owner.attrs(c))


class HealthMonitor:
    """Start, resume and stop the probing of every running container that has a healthcheck."""

    def __init__(self, events: EventLog, attrs: Callable[[object], dict]) -> None:
        self.events = events
        self.attrs = attrs                  # the container's event attributes (image, name, labels)
        self._lock = threading.Lock()
        self._monitors: dict[str, _Monitor] = {}

    def start(self, c, resume: bool = False) -> None:
        """Begin probing a container that just started; resume=True keeps the recorded health (daemon restart)."""
        if probe_argv(c.config.get("Healthcheck"), c.config.get("Shell")) is None:
            return
        self.stop(c, mark=False)
        h = read(c.dir) if resume else None
        if h is None:
            # dockerd's initHealthMonitor: a (re)started container is "starting" again; the log stays.
            h = read(c.dir) or Health()
            h.status, h.failing_streak = STARTING, 0
            write(c.dir, h)
        m = _Monitor(self, c)
        with self._lock:
            self._monitors[c.id] = m
        m.thread.start()

    def stop(self, c, mark: bool = True) -> None:
        """Stop probing (the container stopped, paused or goes away); mark=True records "unhealthy" as dockerd."""
        with self._lock:
            m = self._monitors.pop(c.id, None)
        if m is None:
            return
        with m.lock:
            m.stop_event.set()
            if mark:
                # dockerd's CloseMonitorChannel: "unhealthy when the monitor has stopped for compatibility reasons".
                h = read(c.dir)
                if h is not None and h.status != UNHEALTHY:
                    h.status = UNHEALTHY
                    try:
                        write(c.dir, h)
                    except OSError:
                        pass

    def probing(self, cid: str) -> bool:
        with self._lock:
            return cid in self._monitors

    def probe(self, c, stop_event: threading.Event) -> dict | None:
        """Run one probe as an exec through the container's supervisor; return its result (None if stopped)."""
        hc = c.config.get("Healthcheck") or {}
        argv = probe_argv(hc, c.config.get("Shell"))
        timeout_ns = _setting(hc, "Timeout", DEFAULT_TIMEOUT_NS)
        start_ns = time.time_ns()
        eid = st.new_id()
        process = self._process(c, argv)
        cmd = " ".join(argv)
        self.events.publish("container", f"exec_create: {cmd}", c.id, {**self.attrs(c), "execID": eid})
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            msg = {"op": "exec", "id": eid, "process": process, "stdin": False, "stdout": True, "stderr": True,
                   "framed": True, "detach": False}
            try:
                reply = control.request(c.dir, msg, [theirs.fileno()], timeout=EXEC_START_TIMEOUT)
            finally:
                theirs.close()
            if not reply.get("ok"):
                raise RuntimeError(reply.get("error") or "the health check exec did not start")
            self.events.publish("container", f"exec_start: {cmd}", c.id, {**self.attrs(c), "execID": eid})
            output, finished = _read_frames(ours, time.monotonic() + timeout_ns / 1e9, stop_event)
        finally:
            ours.close()
        record_path = c.dir / "execs" / f"{eid}.json"
        if stop_event.is_set() or not finished:
            # Stopped, or the probe overran: kill it (dockerd cancels the exec); its record comes once it is reaped.
            _kill(reply.get("pid", 0), record_path)
            _exit_code(record_path)
            _unlink(record_path)
        if stop_event.is_set():
            return None
        if not finished:
            return {"start_ns": start_ns, "end_ns": time.time_ns(), "exit_code": -1,
                    "output": f"Health check exceeded timeout ({go_duration(timeout_ns)})"}
        exit_code = _exit_code(record_path)
        # The supervisor keeps an exec record per exec: a probe every few seconds must not pile them up.
        _unlink(record_path)
        if exit_code is None:
            raise RuntimeError(f"healthcheck for container {c.id} has no exit code")
        return {"start_ns": start_ns, "end_ns": time.time_ns(), "exit_code": exit_code, "output": output.text()}

    def _process(self, c, argv: list[str]) -> dict:
        """The probe's OCI process: the container's user, env, cwd, capabilities; no terminal (dockerd's)."""
        spec = st.read_json(c.dir / "config.json") or {}
        base = spec.get("process") or {}
        return {"terminal": False, "args": argv, "env": base.get("env", []), "cwd": base.get("cwd", "/"),
                "user": base.get("user", {"uid": 0, "gid": 0}), "capabilities": base.get("capabilities", {}),
                "noNewPrivileges": base.get("noNewPrivileges", False), "rlimits": base.get("rlimits", [])}


def _read_frames(sock: socket.socket, deadline: float, stop_event: threading.Event) -> tuple[_Output, bool]:
    """Read stdcopy frames until EOF (the exec finished); (output, False) when the deadline passed first."""
    out = _Output()
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or stop_event.is_set():
            return out, False
        sock.settimeout(min(left, 0.5))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            chunk = b""
        if not chunk:
            return out, True
        buf += chunk
        while len(buf) >= 8:
            size = struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            out.add(buf[8:8 + size])
            buf = buf[8 + size:]


def _exit_code(record_path: Path) -> int | None:
    # The supervisor writes the exit code before it closes the client, so it is there at EOF; allow a moment.
    deadline = time.monotonic() + 2.0
    while True:
        rec = st.read_json(record_path) or {}
        if rec.get("exit_code") is not None:
            return int(rec["exit_code"])
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _kill(pid: int, record_path: Path) -> None:
    """SIGKILL a probe that is still running (its record says so: guards against a reused pid)."""
    rec = st.read_json(record_path) or {}
    if pid and rec.get("running"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
