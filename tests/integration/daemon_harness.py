"""Run a dockweb engine daemon on a temporary root and leave nothing behind: the tests' and the bench's harness."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MNT_DETACH = 2
CLONE_NEWNET = 0x40000000
# Every temporary engine directory starts with this, so the leftover check can find them.
TMP_PREFIX = "dwt-"


class EngineNotReady(RuntimeError):
    """The daemon exited or did not answer GET /_ping in time."""


def ping(sock_path: Path, timeout: float = 1.0) -> bool:
    """Return True when the engine on sock_path answers GET /_ping with 200."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return False
    finally:
        s.close()
    status = data.split(b"\r\n", 1)[0].split()
    return len(status) >= 2 and status[1] == b"200"


class EngineDaemon:
    """One `python -m engine serve` on <tmp>/root and <tmp>/engine.sock, with the docker CLI and docker-py aimed at it.

    With netns (the default of create()), the daemon runs in a network namespace made for it (named like its
    cgroup parent): its bridges, veths, iptables rules and published ports live there, so no packet of a test
    can reach the machine's real interfaces, and no NAT to the outside is set up.
    """

    def __init__(self, tmp: Path, cgroup_parent: str, python: str = sys.executable,
                 startup_timeout: float = 30.0, netns: str | None = None) -> None:
        self.tmp = Path(tmp)
        self.netns = netns              # name under /run/netns, created by start(), deleted by cleanup()
        self.root = self.tmp / "root"
        self.socket = self.tmp / "engine.sock"
        self.log_path = self.tmp / "engine.log"
        self.cgroup_parent = cgroup_parent
        self.python = python
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self._clients: list = []
        docker_config = self.tmp / "dockercfg"
        docker_config.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION")}
        # DOCKER_CONFIG: the CLI must not read or write the user's ~/.docker.
        env.update(DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(docker_config))
        self.env = env

    @classmethod
    def create(cls, cgroup_prefix: str = "dockweb-test", netns: bool = True, **kwargs) -> "EngineDaemon":
        """Make a fresh temporary directory and a unique cgroup parent for a new daemon (not started).

        netns=True (the default) runs it in its own network namespace, named like the cgroup parent.
        """
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir="/tmp"))
        parent = f"{cgroup_prefix}-{tmp.name[len(TMP_PREFIX):]}"
        return cls(tmp, parent, netns=parent if netns else None, **kwargs)

    @property
    def netns_path(self) -> str | None:
        return f"/run/netns/{self.netns}" if self.netns else None

    def in_netns(self, argv: list[str]) -> list[str]:
        """Prefix a command so it runs in the daemon's network namespace (unchanged without one)."""
        return ["nsenter", f"--net={self.netns_path}", *argv] if self.netns else list(argv)

    def in_netns_call(self, fn, *args):
        """Run fn(*args) in a thread that has entered the daemon's network namespace; return its result.

        Sockets made there stay in that namespace: this is how a test's HTTP client reaches published ports.
        """
        return call_in_netns(self.netns_path, fn, *args)

    def http_get(self, host: str, port: int, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
        """GET http://host:port/path from inside the daemon's network namespace; return (status, body)."""
        import http.client

        def get() -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()
        return self.in_netns_call(get)

    def wait_http(self, host: str, port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, bytes]:
        """Poll http_get until it answers (a server in a just-started container needs a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.http_get(host, port, path, timeout=2.0)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _ensure_netns(self) -> None:
        if not self.netns or Path(self.netns_path).exists():
            return
        subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True, capture_output=True)

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        return self.in_netns([self.python, "-m", "engine", "serve", "--root", str(self.root), "--socket",
                              str(self.socket), "--cgroup-parent", self.cgroup_parent])

    def start(self) -> None:
        """Start the daemon and wait until GET /_ping answers; raise EngineNotReady with its log otherwise."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if self.netns:
            self._ensure_netns()
            # Nothing may leave the test's namespace: no masquerading, no forwarding of unknown DNS names.
            env.update(DOCKWEB_NET_IP_MASQ="0", DOCKWEB_NET_DNS_FORWARD="0")
        with open(self.log_path, "ab") as log:
            # Own session: a Ctrl-C aimed at pytest must not kill the daemon before cleanup sees it.
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineNotReady(f"engine daemon exited with {self.proc.returncode} before answering "
                                     f"/_ping:\n{self.log_tail()}")
            if ping(self.socket):
                return
            time.sleep(0.05)
        raise EngineNotReady(f"engine daemon did not answer /_ping on {self.socket} within "
                             f"{self.startup_timeout}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the daemon (containers and their supervisors must survive this)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the daemon, then SIGKILL it if it has not exited after timeout seconds."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, down_for: float = 0.0) -> None:
        """Kill the daemon with SIGKILL, stay down for down_for seconds, and start a new one on the same root."""
        self.kill()
        if down_for:
            time.sleep(down_for)
        self.start()

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
               text: bool | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run the real docker CLI against this daemon; output is text unless input is bytes or text=False."""
        if shutil.which("docker") is None:
            if "pytest" in sys.modules:
                # Under pytest a missing capability is a skip, never a failure (./dockweb.sh test installs it).
                import pytest

                pytest.skip("the docker CLI is not on PATH")
            raise FileNotFoundError("the docker CLI is not on PATH")
        if text is None:
            text = not isinstance(input, bytes)
        return subprocess.run(["docker", *args], env={**self.env, **(env or {})}, input=input, capture_output=True,
                              timeout=timeout, text=text)

    def client(self, **kwargs):
        """Return a docker-py client for this daemon (closed at cleanup)."""
        import docker

        kwargs.setdefault("timeout", 60)
        c = docker.DockerClient(base_url=self.base_url, **kwargs)
        self._clients.append(c)
        return c

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def supervisor_pids(self) -> list[int]:
        """Return the pids recorded in <root>/containers/*/supervisor.json."""
        pids = []
        for f in sorted(self.root.glob("containers/*/supervisor.json")):
            try:
                pids.append(int(json.loads(f.read_text())["pid"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return pids

    def cleanup(self) -> list[str]:
        """Stop everything this daemon started and remove its traces; return what could not be removed."""
        problems: list[str] = []
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        self._clients.clear()
        self.stop()
        # Supervisors outlive the daemon by design. Check the cmdline before killing a recorded pid: the
        # supervisor may be long gone and the number reused by an unrelated process.
        for pid in self.supervisor_pids():
            if b"engine" in cmdline(pid):
                kill(pid, signal.SIGKILL)
        # The launcher and any supervisor not yet recorded are forks of the daemon: their cmdline names our root.
        marker = str(self.root).encode()
        for pid in all_pids():
            if pid != os.getpid() and marker in cmdline(pid):
                kill(pid, signal.SIGKILL)
        problems += remove_cgroups(self.cgroup_parent)
        problems += unmount_under(self.tmp)
        if self.netns and Path(self.netns_path).exists():
            # Its bridges, veths and rules go with it; the processes in it were killed above.
            r = subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"ip netns del {self.netns}: {r.stderr.strip()}")
        try:
            shutil.rmtree(self.tmp)
        except FileNotFoundError:
            pass
        except OSError as e:
            problems.append(f"removing {self.tmp}: {e}")
        return problems


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ")
    except OSError:
        return b""


def kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str]]:
    """Return (mount point, fs type) for every mount in this mount namespace, in mountinfo order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            out.append((_unescape(fields[4]), right.split()[0]))
    return out


def cgroup_mounts() -> list[Path]:
    """Return the mount point of every cgroup v1 hierarchy and of the cgroup2 hierarchy."""
    seen: list[Path] = []
    for point, fstype in mounts():
        if fstype in ("cgroup", "cgroup2") and Path(point) not in seen:
            seen.append(Path(point))
    return seen


def _thaw(d: Path) -> None:
    # A frozen process cannot die: thaw it (v1 freezer or v2 cgroup.freeze) before the SIGKILL.
    for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        try:
            (d / name).write_text(value)
        except OSError:
            pass


def _kill_members(d: Path) -> None:
    try:
        pids = (d / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        kill(int(pid), signal.SIGKILL)


def remove_cgroups(parent: str, timeout: float = 5.0) -> list[str]:
    """Kill the processes in, and rmdir, the cgroup `parent` and its children in every hierarchy, deepest first."""
    dirs: list[Path] = []
    for mount in cgroup_mounts():
        base = mount / parent
        if base.is_dir():
            dirs += [Path(d) for d, _subdirs, _files in os.walk(base, topdown=False)]
    # Thaw everywhere before killing anywhere: a process frozen in the freezer hierarchy also holds its
    # memory and pids cgroups busy.
    for d in dirs:
        _thaw(d)
    for d in dirs:
        _kill_members(d)
    problems = []
    deadline = time.monotonic() + timeout
    for d in dirs:
        while True:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                # EBUSY while the killed processes are still exiting.
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    problems.append(f"rmdir {d}: {e.strerror}")
                    break
                _thaw(d)
                _kill_members(d)
                time.sleep(0.05)
    return problems


_libc = ctypes.CDLL(None, use_errno=True)


def umount_detach(path: str) -> None:
    """umount2(path, MNT_DETACH); raise OSError on failure."""
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)


def unmount_under(top: Path) -> list[str]:
    """Lazily unmount every mount at or below top, deepest first (stacked mounts included)."""
    top_s = str(top)
    problems: list[str] = []
    for _round in range(10):
        points = [p for p, _fs in mounts() if p == top_s or p.startswith(top_s + "/")]
        if not points:
            return []
        points.sort(key=lambda p: p.count("/"), reverse=True)
        problems = []
        for p in points:
            try:
                umount_detach(p)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOENT):
                    problems.append(f"umount {p}: {e.strerror}")
    return problems or [f"mounts remain under {top_s} after 10 rounds"]


def leftovers(cgroup_prefix: str = "dockweb-test", since: float = 0.0) -> list[str]:
    """List what harness daemons left on the host: processes, mounts, cgroups, temp dirs, network namespaces."""
    found = []
    tmp_marker = f"/tmp/{TMP_PREFIX}".encode()
    for pid in all_pids():
        if pid != os.getpid() and tmp_marker in cmdline(pid):
            found.append(f"process {pid}: {cmdline(pid).decode(errors='replace')[:160]}")
    for point, fstype in mounts():
        if point.startswith(f"/tmp/{TMP_PREFIX}"):
            found.append(f"mount {point} ({fstype})")
    for mount in cgroup_mounts():
        try:
            names = os.listdir(mount)
        except OSError:
            continue
        found += [f"cgroup {mount / n}" for n in names if n.startswith(cgroup_prefix)]
    for d in Path("/tmp").glob(f"{TMP_PREFIX}*"):
        try:
            if d.stat().st_mtime >= since:
                found.append(f"directory {d}")
        except OSError:
            pass
    netns = Path("/run/netns")
    if netns.is_dir():
        found += [f"network namespace {n.name}" for n in netns.iterdir() if cgroup_prefix in n.name]
    return found


def call_in_netns(netns_path: str | None, fn, *args):
    """Run fn(*args) in a thread that has entered the network namespace at netns_path (None: this one)."""
    result: dict = {}

    def run() -> None:
        try:
            if netns_path:
                fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
                finally:
                    os.close(fd)
            result["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            result["error"] = e

    # The thread ends in the other namespace: it is never reused for anything else.
    t = threading.Thread(target=run, name="in-netns")
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
