"""The supervisor's control socket: JSON-line framing with SCM_RIGHTS fds, and the client the daemon uses."""

from __future__ import annotations

import array
import base64
import json
import json.scanner
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ContainerNotRunning, SystemFailure

SOCKET_NAME = "control.sock"
MAX_FDS = 16
DEFAULT_DETACH_KEYS = b"\x10\x11"
MAX_LINE = 1 << 20  # a request (exec env included) is a few KB; refuse absurd ones instead of buffering them


@dataclass
class Attach:
    """A hijacked client connection handed to a supervisor (contract: runtime/launcher.py)."""

    fd: int
    stdin: bool
    stdout: bool
    stderr: bool
    framed: bool  # Docker stdcopy 8-byte headers (no TTY); False: raw bytes (TTY)
    pending: bytes = b""  # stdin bytes the daemon already read past the HTTP request
    # Docker's detach sequence (ctrl-p ctrl-q), honoured on raw (TTY) streams only; b"" turns it off.
    detach_keys: bytes = DEFAULT_DETACH_KEYS


@dataclass
class Started:
    supervisor_pid: int
    init_pid: int


_scan_json = json.scanner.c_make_scanner(json.JSONDecoder()) if json.scanner.c_make_scanner else None


def parse_json(data: bytes):
    """json.loads through its C scanner alone, falling back to json.loads (which then raises the right error).

    json.loads runs three Python functions and a regex match around that scanner. In the launcher and in a
    supervisor every Python object touched is a page written, and so copied, in memory they share: this parses
    a request without touching any.
    """
    text = data.decode()
    if _scan_json is not None:
        try:
            obj, end = _scan_json(text, 0)
            if end == len(text) or not text[end:].strip():
                return obj
        except (StopIteration, ValueError):
            pass
    return json.loads(text)


START_OPTIONS = ("terminal", "pid_namespace", "cgroups_path")  # see start_options()


SECCOMP_BPF = "seccomp.bpf"  # the compiled linux.seccomp of config.json, linked into the bundle by the daemon

def start_options(spec: dict) -> dict:
    """Return what a supervisor needs from config.json, as runtime.json keys (START_OPTIONS).

    A supervisor never parses config.json: its thousand objects would be allocated into (and so copy) pages the
    supervisor shares with the launcher, some 0.6 MB per container. Its init child parses it instead.
    pid_namespace: "" = a new one, a path = join it, None = the host's (no pid namespace in the spec).
    """
    linux_spec = spec.get("linux") or {}
    pid_namespace = None
    for ns in linux_spec.get("namespaces") or ():
        if ns.get("type") == "pid":
            pid_namespace = ns.get("path") or ""
            break
    return {"terminal": bool((spec.get("process") or {}).get("terminal")), "pid_namespace": pid_namespace,
            "cgroups_path": linux_spec.get("cgroupsPath") or ""}


def read_options(bundle: Path | str) -> dict:
    """Return runtime.json plus the START_OPTIONS, from config.json when runtime.json lacks them."""
    with open(os.path.join(bundle, "runtime.json"), "rb") as f:
        options = parse_json(f.read())
    if not all(key in options for key in START_OPTIONS):
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            options.update(start_options(parse_json(f.read())))
    return options


def decode_attach(fd: int, spec: dict) -> Attach:
    """Rebuild an Attach from its fd and the JSON form Launcher.start sends (pending and detach_keys base64)."""
    keys = spec.get("detach_keys")
    return Attach(fd, bool(spec.get("stdin")), bool(spec.get("stdout")), bool(spec.get("stderr")),
                  bool(spec.get("framed")), base64.b64decode(spec.get("pending") or ""),
                  DEFAULT_DETACH_KEYS if keys is None else base64.b64decode(keys))


def send_msg(sock: socket.socket, obj: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    """Send one JSON line; the fds travel with its first byte (SCM_RIGHTS)."""
    data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


class MessageReader:
    """Read JSON lines and the fds that came with them from a stream socket, buffering partial lines."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.fds: list[int] = []
        self.eof = False

    def feed(self) -> bool:
        """Do one recv into the buffer; return False at EOF. Received fds are close-on-exec."""
        # socket.recv_fds ignores its flags argument (CPython 3.11), so call recvmsg for MSG_CMSG_CLOEXEC:
        # an inheritable client fd would leak into the container's processes and keep the client open.
        data, ancdata, _flags, _addr = self.sock.recvmsg(65536, socket.CMSG_LEN(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
                self.fds.extend(fds)
        if not data:
            self.eof = True
            return False
        self.buf += data
        if len(self.buf) > MAX_LINE and b"\n" not in self.buf:
            raise ValueError(f"control message longer than {MAX_LINE} bytes")
        return True

    def pop(self) -> tuple[dict, list[int]] | None:
        """Return the next complete message and every fd received so far, or None if no full line yet."""
        line, sep, rest = self.buf.partition(b"\n")
        if not sep:
            return None
        self.buf = rest
        fds, self.fds = self.fds, []
        return parse_json(line), fds

    def recv(self) -> tuple[dict, list[int]] | None:
        """Block until a whole message arrives; None at EOF."""
        while True:
            msg = self.pop()
            if msg is not None:
                return msg
            if not self.feed():
                close_fds(self.fds)
                self.fds = []
                return None


def close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def socket_path(bundle: Path) -> Path:
    return Path(bundle) / SOCKET_NAME


def short_path(dir_fd: int, name: str) -> str:
    """Name a file through /proc/self/fd: sun_path holds 108 bytes and bundle paths can be longer."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def request(bundle: Path, msg: dict, fds: list[int] | tuple[int, ...] = (), timeout: float = 10) -> dict:
    """Send one request to the supervisor of the container in bundle and return its reply dict.

    Raises ContainerNotRunning when no supervisor listens, SystemFailure when it does not answer in time.
    The caller keeps ownership of fds (close your copies after the call).
    """
    bundle = Path(bundle)
    cid = bundle.name
    op = msg.get("op", "?")
    try:
        dir_fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError as e:
        raise ContainerNotRunning(cid) from e
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(short_path(dir_fd, SOCKET_NAME))
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise ContainerNotRunning(cid) from e
        send_msg(sock, msg, fds)
        reply = MessageReader(sock).recv()
    except socket.timeout as e:
        raise SystemFailure(f"supervisor of container {cid} did not answer {op!r} within {timeout}s") from e
    except (ConnectionResetError, BrokenPipeError) as e:
        raise ContainerNotRunning(cid) from e
    except OSError as e:
        raise SystemFailure(f"talking to the supervisor of container {cid} ({op}): {e.strerror}") from e
    finally:
        sock.close()
        os.close(dir_fd)
    if reply is None:
        # The supervisor closes the socket without a reply only when it is shutting down.
        raise ContainerNotRunning(cid)
    obj, extra = reply
    close_fds(extra)
    return obj
