"""One container's supervisor: forks its init and execs, relays stdio to the log and clients, records the exit."""

from __future__ import annotations

import _signal
import _socket
import base64
import ctypes
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import termios
import time
import traceback
from pathlib import Path
from typing import Callable, NoReturn

from engine.runtime import control, init, logfile, seccomp
from engine.runtime import sys as linux
from engine.runtime.cgroups import Cgroup
from engine.runtime.control import Attach

# Everything above is imported by the launcher before it forks: a supervisor imports nothing (an import would
# allocate and write all over pages it shares with the launcher and every other supervisor).

CLONE_NEWPID = 0x20000000
READ = select.EPOLLIN
WRITE = select.EPOLLOUT
READ_SIZE = 65536
CLIENT_BUFFER_LIMIT = 4 << 20  # a client this far behind is dropped: the container must never wait for it
STDIN_BUFFER_LIMIT = 1 << 20  # stop reading clients' stdin while the process does not consume it
DRAIN_SECONDS = 2.0  # after the init exits: time to read the pipes to EOF and flush clients
EXEC_DRAIN_SECONDS = 1.0  # after an exec exits: time for a background child still holding its pipes
CONSOLE_SECONDS = 10.0  # how long a TTY process's init may take to send its pty master (it is milliseconds)
STREAM_NAMES = {1: "stdout", 2: "stderr"}
# Python and the launcher ignore these; ignored dispositions survive execve, so children get the defaults back.
# Plain ints for _signal.signal: signal.signal converts to and from enums in Python on every call.
RESET_SIGNALS = tuple(int(s) for s in (signal.SIGPIPE, signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGQUIT,
                                       signal.SIGXFSZ, signal.SIGCHLD))
SIGCHLD = int(signal.SIGCHLD)
SECCOMP_BPF = control.SECCOMP_BPF

# Resolved here, in the launcher: ctypes builds a function object on first use, a hundred kB of pages written in
# every supervisor that did it itself. PyDLL: the call keeps the GIL, so fork() happens while holding it.
_libc = ctypes.PyDLL(None, use_errno=True)
_fork = _libc.fork
_fork.restype = ctypes.c_int
_fork.argtypes = []
_unshare = _libc.unshare
_unshare.restype = ctypes.c_int
_unshare.argtypes = [ctypes.c_int]


def fork() -> int:
    """fork(2) without CPython's at-fork machinery; for single-threaded processes forking from their main thread.

    os.fork() runs the interpreter's after-fork hooks in the child (threading's, random's reseeding, ...): that
    Python code writes to some 150 pages shared with the parent and costs ~1 ms before the child runs a line of
    ours. The launcher and the supervisor have one thread, which holds the GIL across this call, so the child
    starts with a consistent interpreter: the same thread (same ident) holding the GIL, no other thread state.
    """
    pid = _fork()
    if pid < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return pid


def read_file(path: str) -> bytes:
    """Read a whole (small) file with plain syscalls."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = b""
        while chunk := os.read(fd, 65536):
            data += chunk
        return data
    finally:
        os.close(fd)


def exit_code(status: int) -> int:
    """Turn a wait status into Docker's exit code (128+signal when killed)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def set_winsize(fd: int, height: int, width: int) -> None:
    """Set a pty's window size (the kernel sends SIGWINCH to the foreground process group)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(height), int(width), 0, 0))


def receive_console(sock: socket.socket, timeout: float = CONSOLE_SECONDS) -> int | None:
    """Receive the pty master a TTY process's init sends (runc's console socket); None if the init died first.

    Raises TimeoutError when nothing came in time. Closes sock either way.
    """
    try:
        sock.settimeout(timeout)
        _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    finally:
        sock.close()
    for fd in fds:
        # Later exec children must not inherit the master (Python 3.11's recv_fds drops MSG_CMSG_CLOEXEC; the
        # supervisor is single-threaded, so nothing forks in between).
        os.set_inheritable(fd, False)
    return fds[0] if fds else None


def write_seccomp_bpf(bundle: Path, spec: dict, cache_dir: Path | None = None) -> None:
    """Compile the spec's linux.seccomp into bundle/seccomp.bpf (the daemon, at create); no seccomp, no file."""
    profile = (spec.get("linux") or {}).get("seccomp")
    path = Path(bundle) / SECCOMP_BPF
    if not profile:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    tmp = path.with_name(f".{SECCOMP_BPF}.tmp")
    tmp.write_bytes(seccomp.compile_bpf(profile, cache_dir))
    os.replace(tmp, path)


def load_spec(bundle: str) -> tuple[dict, bytes | None]:
    """Read config.json and its seccomp program (in a forked child: the supervisor itself never holds them)."""
    spec = control.parse_json(read_file(f"{bundle}/config.json"))  # 0.2 ms less than json.loads, cold
    profile = (spec.get("linux") or {}).get("seccomp")
    if not profile:
        return spec, None
    try:
        bpf = read_file(f"{bundle}/{SECCOMP_BPF}")
        if bpf and len(bpf) % 8 == 0:
            return spec, bpf
    except FileNotFoundError:
        pass
    # A bundle the daemon did not compile for (made by an older daemon, or by hand): compile, or take the cache.
    cache_dir = Path(bundle).resolve().parent.parent / "run" / "seccomp"
    return spec, seccomp.compile_bpf(profile, cache_dir=cache_dir)


def enter_pid_namespace(pid_namespace: str | None) -> None:
    """Make the next forked child pid 1 of a new pid namespace ("") or of the one at a path (None: stay)."""
    if pid_namespace is None:
        return
    if pid_namespace:
        fd = os.open(pid_namespace, os.O_RDONLY | os.O_CLOEXEC)
        try:
            linux.setns(fd, CLONE_NEWPID)
        finally:
            os.close(fd)
    elif _unshare(CLONE_NEWPID) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWPID): {os.strerror(err)}")


def _child(target: Callable[..., NoReturn], args: tuple, error_fd: int) -> NoReturn:
    """Run init code in a forked child; any failure before execve goes to error_fd as one line."""
    try:
        for sig in RESET_SIGNALS:
            _signal.signal(sig, _signal.SIG_DFL)
        target(*args)
        os.write(error_fd, f"{target.__name__} returned instead of executing the process".encode())
    except BaseException as e:  # noqa: BLE001 - the child must never return into the supervisor's loop
        try:
            os.write(error_fd, (str(e) or e.__class__.__name__).encode()[:4096])
        except OSError:
            pass
    os._exit(127)


def _run_container_init(bundle: str, stdio: tuple[int, int, int], console_sock: int | None, error_fd: int) -> NoReturn:
    spec, bpf = load_spec(bundle)
    init.container_main(Path(bundle), spec, stdio, console_sock, bpf, error_fd)


def _run_exec_init(bundle: str, init_pid: int, process: dict, stdio: tuple[int, int, int], console_sock: int | None,
                   error_fd: int) -> NoReturn:  # fmt: skip
    spec, bpf = load_spec(bundle)
    init.exec_main(init_pid, spec, process, stdio, console_sock, bpf, error_fd)


def write_record(dir_fd: int, name: str, data: bytes, fsync: bool = False) -> None:
    """Write a small JSON record into the bundle atomically (temp file + rename; no reader sees half of it).

    The supervisor is the only writer of its records, so a fixed temp name is safe (no tempfile, whose random
    names would seed a Mersenne Twister in every supervisor).
    """
    head, sep, base = name.rpartition("/")
    tmp = f"{head}{sep}.{base}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def detach_keys(msg: dict) -> bytes:
    """The detach sequence of a request: "detach_keys" in base64, absent = Docker's ctrl-p ctrl-q."""
    if msg.get("detach_keys") is None:
        return control.DEFAULT_DETACH_KEYS
    return base64.b64decode(msg["detach_keys"])


class Stdio:
    """The supervisor's end of a process's stdio: output read from it, input written to it, or both (pty)."""

    __slots__ = ("proc", "fd", "stream", "reading", "writing", "inbuf", "close_when_drained", "handler")

    def __init__(self, proc: "Proc", fd: int, stream: int | None, writable: bool) -> None:
        os.set_blocking(fd, False)
        self.proc = proc
        self.fd = fd
        self.stream = stream  # 1 or 2 when output is read from this fd
        self.reading = stream is not None
        self.writing = writable
        self.inbuf = bytearray()
        self.close_when_drained = False
        self.handler: Callable[[int], None] | None = None  # one object, so the loop can spot fd reuse


class Client:
    """An attached connection: output goes to it (stdcopy-framed or raw), stdin comes from it."""

    __slots__ = ("proc", "fd", "stdin", "want", "framed", "reading", "out", "closing", "closed", "handler",
                 "detach_keys", "matched")

    def __init__(self, proc: "Proc", fd: int, stdin: bool, stdout: bool, stderr: bool, framed: bool,
                 detach_keys: bytes = b"") -> None:
        os.set_blocking(fd, False)
        self.proc = proc
        self.fd = fd
        self.stdin = stdin
        self.want = (False, stdout, stderr)  # indexed by stream number
        self.framed = framed
        self.reading = stdin
        self.out = bytearray()
        self.closing = False  # close once out is flushed
        self.closed = False
        self.handler: Callable[[int], None] | None = None
        self.detach_keys = b"" if framed else detach_keys  # like Docker: a TTY user's escape, not binary stdin
        self.matched = 0  # how much of detach_keys the stdin read so far ends with

    def scan_detach(self, data: bytes) -> tuple[bytes, bool]:
        """Strip the detach sequence from stdin; True once it is complete (bytes after it are dropped)."""
        keys = self.detach_keys
        if not keys or (not self.matched and keys[0] not in data):
            return data, False
        out = bytearray()
        for byte in data:
            if byte == keys[self.matched]:
                self.matched += 1
                if self.matched == len(keys):
                    self.matched = 0
                    return bytes(out), True
                continue
            out += keys[:self.matched]  # a partial match that did not complete goes through as typed
            self.matched = 1 if byte == keys[0] else 0
            if not self.matched:
                out.append(byte)
        return bytes(out), False


class Proc:
    """The container's init or one exec: pid, stdio ends, attached clients."""

    __slots__ = ("exec_id", "tty", "pid", "pidfd", "exit_code", "reaped_at", "master", "stdin", "outputs",
                 "clients", "error_fd", "error", "finished")

    def __init__(self, exec_id: str | None, tty: bool) -> None:
        self.exec_id = exec_id
        self.tty = tty
        self.pid = 0
        self.pidfd = -1  # readable once the process has exited
        self.exit_code: int | None = None
        self.reaped_at = 0.0
        self.master: Stdio | None = None  # pty master (tty)
        self.stdin: Stdio | None = None  # where client stdin goes (a pipe, or the pty master)
        self.outputs: list[Stdio] = []
        self.clients: list[Client] = []
        self.error_fd = -1
        self.error = b""
        self.finished = False


class ControlConn:
    __slots__ = ("sock", "reader")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.reader = control.MessageReader(sock)


class Supervisor:
    """Run one container from its bundle until its init exits, then record the exit and leave."""

    def __init__(self, bundle: str, attaches: list[Attach], reply_fd: int, options: dict) -> None:
        self.bundle = str(bundle)
        self.attaches = list(attaches)
        self.reply_fd = reply_fd
        self.options = options  # runtime.json with the start options (control.read_options)
        self.cid = options.get("id") or self.bundle.rpartition("/")[2]
        self.cgroups_path = options.get("cgroups_path") or ""
        self.epoll = select.epoll()
        self.masks: dict[int, int] = {}
        self.handlers: dict[int, Callable[[int], None]] = {}
        self.container = Proc(None, bool(options.get("terminal")))
        self.execs: dict[str, Proc] = {}
        self.exec_pids: dict[int, Proc] = {}
        self.pending_resize: dict[str, tuple[int, int]] = {}
        self.stdin_once_client: Client | None = None
        self.log_fd = -1  # the log file, open from the start; its writer is made at the first output
        self.splitter: logfile.LineSplitter | None = None
        self.writer: logfile.LogWriter | None = None
        self.listener: _socket.socket | None = None
        self.dir_fd = -1
        self.exiting = False
        self.deadline = 0.0
        self.container_io_done = False

    # ---- event bookkeeping ------------------------------------------------------------------------------------

    def watch(self, fd: int, mask: int, handler: Callable[[int], None]) -> None:
        """Register, modify or (mask 0) unregister fd for READ/WRITE events with its handler."""
        current = self.masks.get(fd, 0)
        if mask == current:
            return
        if not current:
            self.epoll.register(fd, mask)
        elif not mask:
            self.epoll.unregister(fd)
        else:
            self.epoll.modify(fd, mask)
        if mask:
            self.masks[fd] = mask
            self.handlers[fd] = handler
        else:
            self.masks.pop(fd, None)
            self.handlers.pop(fd, None)

    def close_fd(self, fd: int) -> None:
        # Unregister before closing: the number may be reused by the next accept or pipe.
        self.watch(fd, 0, None)  # type: ignore[arg-type]
        try:
            os.close(fd)
        except OSError:
            pass

    # ---- start ------------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Start the container, serve it until its init exits, record the exit; return the process exit status."""
        self.dir_fd = os.open(self.bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for stale in ("exit.json", "supervisor.json"):
            try:
                os.unlink(stale, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
        # Before the fork: the launcher ignores SIGCHLD (so that the kernel reaps its supervisors), and an init
        # that exited while this was still our disposition would vanish without an exit status. SIGHUP and SIGINT
        # stay ignored as the launcher set them: the supervisor outlives the daemon and its terminal.
        _signal.signal(SIGCHLD, _signal.SIG_DFL)
        try:
            console, child_stdio = self.setup_container_stdio()
            enter_pid_namespace(self.options.get("pid_namespace"))
        except Exception as e:  # noqa: BLE001 - any failure here is a start failure the user must see
            return self.start_failed(f"preparing container {self.cid}: {e}", 127, forked=False)
        err_r, err_w = os.pipe()  # O_CLOEXEC: EOF means the init reached execve
        try:
            pid = fork()
        except OSError as e:
            return self.start_failed(f"forking the init of container {self.cid}: {e.strerror}", 127, forked=False)
        if pid == 0:
            os.close(err_r)
            console_fd = console[1].fileno() if console else None
            _child(_run_container_init, (self.bundle, child_stdio, console_fd, err_w), err_w)
        self.container.pid = pid
        self.track(self.container)
        os.close(err_w)
        for fd in set(child_stdio):
            os.close(fd)
        if console is not None:
            console[1].close()  # only the init holds its end now: EOF if it dies before sending the master
        try:
            # While the init builds the container (milliseconds, on another CPU), make what only we need: the
            # log and the control socket, which must exist before we answer.
            self.prepare()
        except Exception as e:  # noqa: BLE001
            os.kill(pid, signal.SIGKILL)
            self.read_all(err_r)
            if console is not None:
                console[0].close()
            return self.start_failed(f"preparing container {self.cid}: {e}", None, forked=True)
        if console is not None:
            try:
                master = receive_console(console[0])
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self.read_all(err_r)
                return self.start_failed(f"container {self.cid}: the init did not send its terminal within "
                                         f"{CONSOLE_SECONDS:g}s", None, forked=True)
            if master is not None:
                self.use_console(self.container, master)
            # else: the init failed before sending it; its error is on err_r.
        for attach in self.attaches:
            # After the stdio exists (a pty master comes from the init) and before the process runs its command:
            # output waits in the pipe or pty until the loop reads it, so nothing is lost.
            self.add_client(self.container, attach)
        self.attaches = []
        error = self.read_all(err_r)
        if error:
            return self.start_failed(error.decode(errors="replace").strip(), None, forked=True)
        supervisor_pid = os.getpid()
        # Formatted by hand, like the answer: json.dumps runs three Python functions we would pay pages for.
        write_record(self.dir_fd, "supervisor.json",
                     b'{"pid":%d,"init_pid":%d,"started_ns":%d}' % (supervisor_pid, pid, time.time_ns()))
        self.answer(b'{"ok":true,"supervisor_pid":%d,"init_pid":%d}\n' % (supervisor_pid, pid))
        self.loop()
        return self.finish()

    def track(self, proc: Proc) -> None:
        """Watch a child's pidfd, readable once it exits: no SIGCHLD handler, no wakeup pipe."""
        proc.pidfd = os.pidfd_open(proc.pid)  # close-on-exec
        self.watch(proc.pidfd, READ, lambda mask: self.on_exit(proc))

    def on_exit(self, proc: Proc) -> None:
        self.close_fd(proc.pidfd)
        proc.pidfd = -1
        self.reap()

    def prepare(self) -> None:
        """Open the log and the control socket: everything that must exist before we answer the daemon."""
        if self.options.get("log_path"):
            self.log_fd = logfile.open_log(self.options["log_path"])
        sock_path = control.short_path(self.dir_fd, control.SOCKET_NAME)
        try:
            os.unlink(control.SOCKET_NAME, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        # The C socket type, not socket.socket: its Python __init__ would be one more page-writing first run.
        self.listener = _socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is born 0600: nobody but root may exec into the container
        try:
            self.listener.bind(sock_path)
        finally:
            os.umask(old)
        self.listener.listen(16)
        self.listener.setblocking(False)
        self.watch(self.listener.fileno(), READ, self.on_accept)

    def setup_container_stdio(self) -> tuple[tuple[socket.socket, socket.socket] | None, tuple[int, int, int]]:
        """Create the init's stdio: a console socket pair when process.terminal, else pipes (stdin with open_stdin).

        With a terminal the init makes the pty itself, inside the container (its /dev/pts/0), and sends us the
        master; until then its stdio is /dev/null.
        """
        proc = self.container
        if proc.tty:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM), (null, null, null)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if self.options.get("open_stdin"):
            in_r, in_w = os.pipe()
            proc.stdin = Stdio(proc, in_w, None, True)
        else:
            in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        proc.outputs = [Stdio(proc, out_r, 1, False), Stdio(proc, err_r, 2, False)]
        for io in proc.outputs + ([proc.stdin] if proc.stdin else []):
            self.watch_stdio(io)
        return None, (in_r, out_w, err_w)

    def use_console(self, proc: Proc, master: int) -> None:
        """Make a received pty master the process's output and stdin (the pty echoes and translates)."""
        proc.master = Stdio(proc, master, 1, True)
        proc.stdin = proc.master
        proc.outputs = [proc.master]
        self.watch_stdio(proc.master)

    @staticmethod
    def read_all(fd: int) -> bytes:
        chunks = []
        while True:
            data = os.read(fd, 4096)
            if not data:
                os.close(fd)
                return b"".join(chunks)
            chunks.append(data)

    def reply(self, obj: dict) -> None:
        self.answer(json.dumps(obj).encode() + b"\n")

    def answer(self, line: bytes) -> None:
        """Send the daemon our one answer (a JSON line) and close the pipe."""
        if self.reply_fd < 0:
            return
        try:
            os.write(self.reply_fd, line)
        except OSError:
            pass  # the daemon is gone; the records on disk tell it what happened
        os.close(self.reply_fd)
        self.reply_fd = -1

    def start_failed(self, error: str, code: int | None, forked: bool) -> int:
        """Record a container that never ran: exit.json with the init's error, then tell the daemon."""
        if forked:
            _, status = os.waitpid(self.container.pid, 0)
            code = exit_code(status) or 127
        for proc_client in list(self.container.clients):
            self.drop_client(proc_client)
        for attach in self.attaches:
            try:
                os.close(attach.fd)
            except OSError:
                pass
        self.attaches = []
        self.remove_cgroup()
        self.close_listener()
        write_record(self.dir_fd, "exit.json", json.dumps(
            {"exit_code": code, "oom_killed": False, "finished_ns": time.time_ns(), "error": error}).encode(),
                     fsync=True)
        self.reply({"ok": False, "error": error})
        return 0

    # ---- the loop ---------------------------------------------------------------------------------------------

    def loop(self) -> None:
        handlers = self.handlers
        while True:
            now = time.monotonic()
            if self.exiting and (self.is_drained() or now >= self.deadline):
                return
            if self.execs:
                self.expire_execs(now)
            timeout = self.next_timeout(now)
            try:
                events = self.epoll.poll(-1 if timeout is None else timeout)
            except InterruptedError:
                continue
            # Handlers looked up before any runs: one of them may close an fd whose number a later one reuses.
            batch = [(handlers.get(fd), fd, ev) for fd, ev in events]
            for handler, fd, ev in batch:
                if handler is None or handlers.get(fd) is not handler:
                    continue  # closed, or the number now belongs to something else
                # Like selectors: a hangup or error wakes both a reader and a writer.
                mask = 0
                if ev & ~READ:
                    mask |= WRITE
                if ev & ~WRITE:
                    mask |= READ
                mask &= self.masks.get(fd, 0)
                if mask:
                    handler(mask)

    def next_timeout(self, now: float) -> float | None:
        deadline = self.deadline if self.exiting else 0.0
        for p in self.execs.values():
            if p.reaped_at and not p.finished:
                end = p.reaped_at + EXEC_DRAIN_SECONDS
                deadline = end if not deadline else min(deadline, end)
        return max(0.0, deadline - now) if deadline else None

    def is_drained(self) -> bool:
        if not self.container_io_done:
            return False
        if any(not p.finished for p in self.execs.values()):
            return False
        return not any(c.out for c in self.all_clients())

    def all_clients(self) -> list[Client]:
        clients = list(self.container.clients)
        for proc in self.execs.values():
            clients.extend(proc.clients)
        return clients

    # ---- children ---------------------------------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = exit_code(status)
            if pid == self.container.pid:
                self.container_exited(code)
            elif pid in self.exec_pids:
                proc = self.exec_pids.pop(pid)
                proc.exit_code = code
                proc.reaped_at = time.monotonic()
                if proc.stdin is not None and proc.stdin is not proc.master:
                    self.close_input(proc.stdin)
                self.maybe_finish_exec(proc)

    def container_exited(self, code: int) -> None:
        # The kernel kills every other process of the pid namespace now; their pipes reach EOF shortly.
        self.container.exit_code = code
        self.container.reaped_at = time.monotonic()
        self.exiting = True
        self.deadline = time.monotonic() + DRAIN_SECONDS
        stdin = self.container.stdin
        if stdin is not None and stdin is not self.container.master:
            self.close_input(stdin)
        self.maybe_finish_container_io()

    def maybe_finish_container_io(self) -> None:
        proc = self.container
        if self.container_io_done or not self.exiting or any(io.reading for io in proc.outputs):
            return
        self.container_io_done = True
        if self.splitter is not None:
            self.splitter.flush(time.time_ns())
        for client in list(proc.clients):
            self.close_client_when_flushed(client)

    # ---- stdio ------------------------------------------------------------------------------------------------

    def watch_stdio(self, io: Stdio) -> None:
        if not io.reading and not io.writing:
            self.close_fd(io.fd)
            io.fd = -1
            return
        if io.handler is None:
            io.handler = lambda m: self.on_stdio(io, m)
        mask = (READ if io.reading else 0) | (WRITE if io.writing and io.inbuf else 0)
        self.watch(io.fd, mask, io.handler)

    def on_stdio(self, io: Stdio, mask: int) -> None:
        if mask & READ and io.reading:
            try:
                data = os.read(io.fd, READ_SIZE)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""  # EIO on a pty master: every slave fd is closed
            if data:
                self.on_output(io.proc, io.stream or 1, data)
            elif data == b"":
                self.output_eof(io)
        if mask & WRITE and io.writing:
            self.flush_input(io)
        if io.fd >= 0:
            self.watch_stdio(io)

    def output_eof(self, io: Stdio) -> None:
        io.reading = False
        if io is io.proc.master:
            io.writing = False  # nobody reads the slave any more
        self.watch_stdio(io)
        proc = io.proc
        if proc is self.container:
            self.maybe_finish_container_io()
        else:
            self.maybe_finish_exec(proc)

    def on_output(self, proc: Proc, stream: int, data: bytes) -> None:
        if proc is self.container and self.log_fd >= 0:
            (self.splitter or self.start_log()).feed(STREAM_NAMES[stream], data, time.time_ns())
        for client in list(proc.clients):
            self.send(client, stream, data)

    def start_log(self) -> logfile.LineSplitter:
        """Make the log's writer at the first output: a container that never prints never pays for it."""
        self.writer = logfile.LogWriter(self.options["log_path"], int(self.options.get("log_max_size") or 0),
                                        int(self.options.get("log_max_files") or 1), fd=self.log_fd)
        self.splitter = logfile.LineSplitter(self.writer)
        return self.splitter

    def push_input(self, io: Stdio | None, data: bytes) -> None:
        if io is None or not io.writing or io.close_when_drained or io.fd < 0:
            return  # nowhere to go (stdin not open): Docker drops it too
        io.inbuf += data
        self.flush_input(io)
        if io.fd >= 0:
            self.watch_stdio(io)

    def flush_input(self, io: Stdio) -> None:
        was_full = len(io.inbuf) >= STDIN_BUFFER_LIMIT
        while io.inbuf:
            try:
                n = os.write(io.fd, io.inbuf)
            except BlockingIOError:
                break
            except OSError:
                io.inbuf.clear()  # EPIPE: the process closed its stdin; drop what it will never read
                if io is not io.proc.master:
                    io.writing = False
                break
            del io.inbuf[:n]
        if not io.inbuf and io.close_when_drained:
            io.writing = False
            self.watch_stdio(io)
        if was_full and len(io.inbuf) < STDIN_BUFFER_LIMIT:
            for client in io.proc.clients:
                self.watch_client(client)

    def close_input(self, io: Stdio) -> None:
        """Close a process's stdin once what clients sent is written (a pty master stays: output uses it)."""
        if io is io.proc.master:
            return
        io.close_when_drained = True
        if not io.inbuf or io.proc.exit_code is not None:
            io.inbuf.clear()
            io.writing = False
        if io.fd >= 0:
            self.watch_stdio(io)

    # ---- clients ----------------------------------------------------------------------------------------------

    def add_client(self, proc: Proc, attach: Attach) -> Client:
        client = Client(proc, attach.fd, attach.stdin, attach.stdout, attach.stderr, attach.framed,
                        attach.detach_keys)
        proc.clients.append(client)
        if proc is self.container and attach.stdin and self.options.get("stdin_once") \
                and self.stdin_once_client is None:
            self.stdin_once_client = client
        if attach.stdin and attach.pending:
            pending, detached = client.scan_detach(attach.pending)
            self.push_input(proc.stdin, pending)
            if detached:
                self.detach_client(client)
                return client
        self.watch_client(client)
        return client

    def watch_client(self, client: Client) -> None:
        if client.closed:
            return
        stdin = client.proc.stdin
        backlog = stdin is not None and len(stdin.inbuf) >= STDIN_BUFFER_LIMIT
        if client.handler is None:
            client.handler = lambda m: self.on_client(client, m)
        mask = (READ if client.reading and not backlog else 0) | (WRITE if client.out else 0)
        self.watch(client.fd, mask, client.handler)

    def on_client(self, client: Client, mask: int) -> None:
        if mask & WRITE:
            self.flush_client(client)
        if client.closed:
            return
        if mask & READ and client.reading:
            try:
                data = os.read(client.fd, READ_SIZE)
            except BlockingIOError:
                data = None
            except OSError:
                self.drop_client(client)
                return
            if data:
                data, detached = client.scan_detach(data)
                self.push_input(client.proc.stdin, data)
                if detached:
                    self.detach_client(client)
                    return
            elif data == b"":
                # A half-close: the client sent all its stdin but still wants output.
                client.reading = False
                self.stdin_ended(client)
        self.watch_client(client)

    def stdin_ended(self, client: Client) -> None:
        proc = client.proc
        if proc.stdin is None:
            return
        if proc is self.container:
            if client is self.stdin_once_client:
                self.close_input(proc.stdin)
        elif client.stdin:
            self.close_input(proc.stdin)  # an exec's stdin closes with its client's, like docker exec -i

    def send(self, client: Client, stream: int, data: bytes) -> None:
        if client.closed or not client.want[stream]:
            return
        if client.framed:
            client.out += struct.pack(">BxxxI", stream, len(data))
        client.out += data
        self.flush_client(client)
        if not client.closed:
            if len(client.out) > CLIENT_BUFFER_LIMIT:
                self.drop_client(client)  # too slow: never let one reader stall the container
            else:
                self.watch_client(client)

    def flush_client(self, client: Client) -> None:
        while client.out:
            try:
                n = os.write(client.fd, client.out)
            except BlockingIOError:
                return
            except OSError:
                self.drop_client(client)  # EPIPE/ECONNRESET: the client went away, the container goes on
                return
            del client.out[:n]
        if client.closing:
            self.drop_client(client)

    def close_client_when_flushed(self, client: Client) -> None:
        client.closing = True
        client.reading = False
        if client.out:
            self.watch_client(client)
        else:
            self.drop_client(client)

    def detach_client(self, client: Client) -> None:
        """End a client's attach at its detach keys: the process keeps running and keeps its stdin."""
        client.reading = False
        if client is self.stdin_once_client:
            self.stdin_once_client = None
        self.close_client_when_flushed(client)

    def drop_client(self, client: Client) -> None:
        if client.closed:
            return
        client.closed = True
        client.out.clear()
        self.close_fd(client.fd)
        if client in client.proc.clients:
            client.proc.clients.remove(client)
            if client.proc is not self.container:
                self.forget_exec(client.proc)  # the last reader of a finished exec is gone
        if client.reading and client is self.stdin_once_client and client.proc.stdin is not None:
            self.close_input(client.proc.stdin)  # a vanished stdin_once client is as final as its EOF

    # ---- control socket ---------------------------------------------------------------------------------------

    def on_accept(self, mask: int) -> None:
        assert self.listener is not None
        try:
            fd, _ = self.listener._accept()  # close-on-exec (accept4 with SOCK_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        conn = ControlConn(socket.socket(fileno=fd))
        self.watch(fd, READ, lambda m, c=conn: self.on_control(c, m))

    def on_control(self, conn: ControlConn, mask: int) -> None:
        try:
            alive = conn.reader.feed()
            msg = conn.reader.pop()
        except BlockingIOError:
            return
        except (OSError, ValueError):
            alive, msg = False, None
        if msg is None:
            if not alive:
                control.close_fds(conn.reader.fds)
                self.watch(conn.sock.fileno(), 0, None)  # type: ignore[arg-type]
                conn.sock.close()
            return
        obj, fds = msg
        try:
            result = self.handle(obj, fds)
        except Exception as e:  # noqa: BLE001 - a bad request must never take the container down
            traceback.print_exc()
            result = {"ok": False, "error": f"{obj.get('op')}: {e}"}
        control.close_fds(fds)  # handlers dup what they keep
        self.watch(conn.sock.fileno(), 0, None)  # type: ignore[arg-type]
        try:
            conn.sock.settimeout(1.0)
            control.send_msg(conn.sock, result)
        except OSError:
            pass
        conn.sock.close()

    def handle(self, msg: dict, fds: list[int]) -> dict:
        op = msg.get("op")
        if op == "ping":
            return {"ok": True, "init_pid": self.container.pid, "running": not self.exiting}
        if op == "stats":
            # What the supervisor holds in memory: finished execs are dropped, so this stays bounded.
            return {"ok": True, "execs": len(self.execs), "pending_resizes": len(self.pending_resize)}
        if op == "resize":
            return self.op_resize(msg)
        if self.exiting:
            return {"ok": False, "error": f"container {self.cid} is not running"}
        if op == "attach":
            if not fds:
                return {"ok": False, "error": "attach needs the client connection's fd"}
            self.add_client(self.container, Attach(os.dup(fds[0]), bool(msg.get("stdin")), bool(msg.get("stdout")),
                                                   bool(msg.get("stderr")), bool(msg.get("framed")),
                                                   base64.b64decode(msg.get("pending") or ""), detach_keys(msg)))
            return {"ok": True}
        if op == "kill":
            return self.op_kill(msg)
        if op == "exec":
            return self.op_exec(msg, fds)
        return {"ok": False, "error": f"unknown control operation {op!r}"}

    def op_resize(self, msg: dict) -> dict:
        exec_id = msg.get("exec")
        height, width = int(msg.get("height") or 0), int(msg.get("width") or 0)
        if exec_id:
            proc = self.execs.get(exec_id)
            if proc is None:
                if self.exec_recorded(exec_id):
                    return {"ok": True}  # finished and forgotten: nothing to resize
                self.pending_resize[exec_id] = (height, width)  # the exec op may still be on its way
                return {"ok": True}
        else:
            proc = self.container
        if proc.master is not None and proc.master.fd >= 0 and height and width:
            set_winsize(proc.master.fd, height, width)
        return {"ok": True}

    def op_kill(self, msg: dict) -> dict:
        sig = int(msg["signal"]) if msg.get("signal") is not None else int(signal.SIGKILL)
        if msg.get("all") and self.cgroups_path:
            Cgroup.open(self.cgroups_path).kill(sig)
            return {"ok": True}
        try:
            os.kill(self.container.pid, sig)
        except ProcessLookupError:
            return {"ok": False, "error": f"container {self.cid} is not running"}
        return {"ok": True}

    # ---- exec -------------------------------------------------------------------------------------------------

    def op_exec(self, msg: dict, fds: list[int]) -> dict:
        exec_id = str(msg.get("id") or "")
        if not exec_id or exec_id in self.execs or "/" in exec_id or self.exec_recorded(exec_id):
            return {"ok": False, "error": f"bad or duplicate exec id {exec_id!r}"}
        process = msg.get("process") or {}
        detach = bool(msg.get("detach")) or not fds
        proc = Proc(exec_id, bool(process.get("terminal")))
        size = self.pending_resize.pop(exec_id, None)
        if proc.tty and size and size[0] and size[1]:
            # A resize that came before the exec: the init sizes the pty before the command can look at it.
            process = dict(process, consoleSize={"height": size[0], "width": size[1]})
        child_fds: list[int] = []
        console = None
        if proc.tty:
            # The exec's init makes the pty in the container's devpts and sends the master back (see init).
            console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            stdio = (null, null, null)
            child_fds = [null]
        elif detach:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            stdio = (null, null, null)
            child_fds = [null]
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if msg.get("stdin"):
                in_r, in_w = os.pipe()
                proc.stdin = Stdio(proc, in_w, None, True)
            else:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            proc.outputs = [Stdio(proc, out_r, 1, False), Stdio(proc, err_r, 2, False)]
            stdio = (in_r, out_w, err_w)
            child_fds = [in_r, out_w, err_w]
        err_r, err_w = os.pipe()
        try:
            pid = fork()
        except OSError as e:
            for fd in child_fds + [err_r, err_w] + [io.fd for io in proc.outputs]:
                os.close(fd)
            if proc.stdin is not None and proc.stdin is not proc.master:
                os.close(proc.stdin.fd)
            for sock in console or ():
                sock.close()
            return {"ok": False, "error": f"starting exec in container {self.cid}: {e.strerror}"}
        if pid == 0:
            os.close(err_r)
            console_fd = console[1].fileno() if console else None
            _child(_run_exec_init, (self.bundle, self.container.pid, process, stdio, console_fd, err_w), err_w)
        os.close(err_w)
        for fd in child_fds:
            os.close(fd)
        if console is not None:
            self.receive_exec_console(proc, pid, console)
        proc.pid = pid
        proc.error_fd = err_r
        os.set_blocking(err_r, False)
        self.execs[exec_id] = proc
        self.exec_pids[pid] = proc
        self.track(proc)
        self.watch(err_r, READ, lambda m, p=proc: self.on_exec_error(p, m))
        for io in proc.outputs + ([proc.stdin] if proc.stdin and proc.stdin is not proc.master else []):
            self.watch_stdio(io)
        if not detach:
            self.add_client(proc, Attach(os.dup(fds[0]), bool(msg.get("stdin")), bool(msg.get("stdout")),
                                         bool(msg.get("stderr")), bool(msg.get("framed")),
                                         detach_keys=detach_keys(msg)))
        self.write_exec_record(proc)
        return {"ok": True, "pid": pid}

    def receive_exec_console(self, proc: Proc, pid: int, console: tuple[socket.socket, socket.socket]) -> None:
        """Wait for the exec's pty master; without one its error (on error_fd) is what the client gets."""
        console[1].close()  # only the child holds its end now: EOF if it dies before sending the master
        try:
            master = receive_console(console[0])
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            proc.error = f"exec in container {self.cid}: no terminal within {CONSOLE_SECONDS:g}s".encode()
            return
        if master is None:
            return  # the child failed before it made the pty; its error arrives on error_fd
        self.use_console(proc, master)
        size = self.pending_resize.pop(proc.exec_id or "", None)  # a resize that came before the exec op
        if size and size[0] and size[1]:
            set_winsize(master, *size)

    def on_exec_error(self, proc: Proc, mask: int) -> None:
        try:
            data = os.read(proc.error_fd, 4096)
        except BlockingIOError:
            return
        if data:
            proc.error += data
            return
        self.close_fd(proc.error_fd)
        proc.error_fd = -1
        if proc.error:
            # Like dockerd: the start error goes into the exec's own stream, the CLI prints it.
            text = proc.error.decode(errors="replace").strip().encode() + b"\r\n"
            for client in list(proc.clients):
                self.send(client, 1, text)
        self.maybe_finish_exec(proc)

    def maybe_finish_exec(self, proc: Proc, force: bool = False) -> None:
        if proc.finished or proc.exit_code is None or proc.error_fd >= 0:
            return
        if any(io.reading for io in proc.outputs) and not force:
            return
        proc.finished = True
        for io in proc.outputs:
            if io.fd >= 0:
                io.reading = io.writing = False
                self.watch_stdio(io)
        if proc.stdin is not None and proc.stdin.fd >= 0:
            proc.stdin.writing = False
            self.watch_stdio(proc.stdin)
        self.write_exec_record(proc)
        for client in list(proc.clients):
            self.close_client_when_flushed(client)
        self.forget_exec(proc)

    def forget_exec(self, proc: Proc) -> None:
        """Drop a finished exec nobody is attached to any more: its exit is in execs/<id>.json for the daemon.

        Healthcheck probes run an exec every few seconds for the container's lifetime: keeping each one's
        record here would grow the supervisor without bound.
        """
        if proc is self.container or not proc.finished or proc.clients:
            return
        if proc.pidfd >= 0:
            # Reaped through another child's wakeup: its pidfd has nothing more to tell.
            self.close_fd(proc.pidfd)
            proc.pidfd = -1
        self.execs.pop(proc.exec_id or "", None)
        if self.exec_pids.get(proc.pid) is proc:  # never a later exec that got the same pid
            del self.exec_pids[proc.pid]

    def exec_recorded(self, exec_id: str) -> bool:
        """Tell whether an exec of this id ran here already (its record file exists)."""
        try:
            os.stat(f"execs/{exec_id}.json", dir_fd=self.dir_fd)
            return True
        except OSError:
            return False

    def expire_execs(self, now: float) -> None:
        """Finish execs whose process is gone but whose pipes a background child still holds."""
        for proc in list(self.execs.values()):  # a finished exec may be forgotten on the way
            if proc.reaped_at and not proc.finished and now >= proc.reaped_at + EXEC_DRAIN_SECONDS:
                if proc.error_fd >= 0:
                    self.close_fd(proc.error_fd)
                    proc.error_fd = -1
                self.maybe_finish_exec(proc, force=True)

    def write_exec_record(self, proc: Proc) -> None:
        try:
            os.mkdir("execs", 0o755, dir_fd=self.dir_fd)
        except FileExistsError:
            pass
        running = proc.exit_code is None
        write_record(self.dir_fd, f"execs/{proc.exec_id}.json", json.dumps(
            {"pid": proc.pid, "running": running, "exit_code": None if running else proc.exit_code}).encode())

    # ---- exit -------------------------------------------------------------------------------------------------

    def finish(self) -> int:
        """Record the exit once output is drained (or the drain bound passed); return 0."""
        now = time.monotonic()
        for proc in list(self.execs.values()):  # a finished exec may be forgotten on the way
            if not proc.finished:
                if proc.exit_code is None:
                    proc.exit_code = 137  # killed with the pid namespace, yet not reaped in time
                if proc.error_fd >= 0:
                    self.close_fd(proc.error_fd)
                    proc.error_fd = -1
                proc.reaped_at = proc.reaped_at or now
                self.maybe_finish_exec(proc, force=True)
        if not self.container_io_done:
            for io in self.container.outputs:
                io.reading = io.writing = False
                if io.fd >= 0:
                    self.watch_stdio(io)
            self.maybe_finish_container_io()
        for client in self.all_clients():
            self.drop_client(client)
        if self.writer is not None:
            self.writer.close()
        elif self.log_fd >= 0:
            os.close(self.log_fd)
        self.log_fd = -1
        oom_killed = self.remove_cgroup()
        self.close_listener()
        # exit.json last: once it exists the daemon may restart the container in this bundle.
        write_record(self.dir_fd, "exit.json", json.dumps(
            {"exit_code": self.container.exit_code, "oom_killed": oom_killed, "finished_ns": time.time_ns(),
             "error": ""}).encode(), fsync=True)
        return 0

    def remove_cgroup(self) -> bool:
        """Read the OOM flag, then remove the container's cgroup (retrying while the last tasks leave)."""
        if not self.cgroups_path:
            return False
        try:
            cgroup = Cgroup.open(self.cgroups_path)
            if not cgroup.exists():
                return False
            oom_killed = bool(cgroup.oom_killed())
        except Exception:  # noqa: BLE001 - the exit record matters more than the flag
            traceback.print_exc()
            return False
        try:
            cgroup.remove()  # retries on EBUSY while the killed tasks leave
        except Exception as e:  # noqa: BLE001 - still write the exit record
            print(f"supervisor {self.cid}: {e}", file=sys.stderr, flush=True)
        return oom_killed

    def close_listener(self) -> None:
        if self.listener is not None:
            self.watch(self.listener.fileno(), 0, None)  # type: ignore[arg-type]
            self.listener.close()
            self.listener = None
            try:
                os.unlink(control.SOCKET_NAME, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass


def main(bundle: str, options: dict, attach_specs: list[dict], attach_fds: list[int], reply_fd: int) -> NoReturn:
    """Entry point in the child the launcher forked (its own session, fds already sorted); never returns.

    options: runtime.json plus the start options, read by the daemon (control.read_options), so that we parse
    neither file. The attaches come as the launcher received them (control.decode_attach makes them Attach
    objects here, not in the launcher, whose every allocation between two forks costs the previous supervisor a
    page).
    """
    # The launcher froze its objects just before forking (gc.freeze): a collection here walks (and writes to)
    # only what the supervisor allocates. Collections stay on for our own short-lived cycles.
    code = 1
    sup = None
    try:
        attaches = [control.decode_attach(fd, spec) for fd, spec in zip(attach_fds, attach_specs)]
        sup = Supervisor(bundle, attaches, reply_fd, options)
        code = sup.run()
    except BaseException as e:  # noqa: BLE001
        traceback.print_exc()
        if sup is not None:
            sup.reply({"ok": False, "error": f"supervisor for {sup.cid} failed: {e}"})
        else:
            try:
                os.write(reply_fd, json.dumps({"ok": False, "error": f"supervisor failed: {e}"}).encode() + b"\n")
            except OSError:
                pass
    finally:
        try:
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)
