"""Run a private dockerd that touches nothing else (shared/reference/PEERS.md): for tests and benchmarks."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.integration.daemon_harness import ping, remove_cgroups, unmount_under


class DockerdUnavailable(RuntimeError):
    """dockerd is not installed or did not start on this machine (the message says which, with its log)."""


def dockerd_path() -> str | None:
    """Return the dockerd binary (Debian's docker.io puts it in /usr/sbin), or None."""
    for p in ("/usr/bin/dockerd", "/usr/sbin/dockerd"):
        if os.access(p, os.X_OK):
            return p
    return shutil.which("dockerd")


class PrivateDockerd:
    """A dockerd with its own data root, exec root, socket, pidfile, cgroup parent and containerd namespace.

    It has no bridge and no iptables rules (containers on it run with --network none); with netns_path it also
    runs inside that network namespace. stop() ends it by its PID, unmounts and removes its roots and cgroups.
    Paths stay short: containerd's socket lives under the exec root and a unix socket path holds 108 bytes.
    """

    def __init__(self, work: Path, prefix: str = "dockweb-test-dockerd", netns_path: str | None = None,
                 data_root: Path | None = None) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        tag = secrets.token_hex(3)
        self.name = f"{prefix}-{tag}"
        self.data_root = Path(data_root) if data_root else self.work / "dockerd-data"
        self.exec_root = Path(f"/run/{self.name}-exec")
        self.socket = self.work / "dockerd.sock"
        self.pidfile = self.work / "dockerd.pid"
        self.log_path = self.work / "dockerd.log"
        self.cgroup_parent = self.name
        self.netns_path = netns_path
        self.proc: subprocess.Popen | None = None
        config = self.work / "dockercfg-dockerd"
        config.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_API_VERSION")}
        env.update(DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(config))
        self.env = env

    def command(self, binary: str) -> list[str]:
        prefix = ["nsenter", f"--net={self.netns_path}"] if self.netns_path else []
        return [*prefix, binary, "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
                "--cgroup-parent", self.cgroup_parent, "--storage-driver", "overlay2",
                "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--host", f"unix://{self.socket}", "--pidfile", str(self.pidfile),
                # Its own containerd namespaces: a system containerd, if one runs, is shared without collisions.
                "--containerd-namespace", self.name, "--containerd-plugins-namespace", f"{self.name}-plugins"]

    def start(self, timeout: float = 60.0) -> None:
        """Start dockerd and wait for /_ping; DockerdUnavailable (with its log) when it cannot."""
        binary = dockerd_path()
        if binary is None:
            raise DockerdUnavailable("dockerd is not installed (apt-get install -y docker.io)")
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.command(binary), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not ping(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise DockerdUnavailable(f"dockerd did not start:\n{tail}")
            time.sleep(0.1)

    def docker(self, *args: str, input: bytes | str | None = None, timeout: float = 300, text: bool | None = None,
               env: dict | None = None) -> subprocess.CompletedProcess:
        """Run the docker CLI against this dockerd (output is text unless input is bytes or text=False)."""
        if text is None:
            text = not isinstance(input, bytes)
        return subprocess.run(["docker", *args], env={**self.env, **(env or {})}, input=input,
                              capture_output=True, timeout=timeout, text=text)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self, timeout: float = 30.0) -> list[str]:
        """SIGTERM dockerd by its PID (SIGKILL after timeout), then remove its roots and cgroups; return problems."""
        problems: list[str] = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Its containers' shims outlive it only if it was killed; they sit in its cgroup parent.
        problems += remove_cgroups(self.cgroup_parent)
        for d in (self.data_root, self.exec_root):
            problems += unmount_under(d)
            try:
                shutil.rmtree(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                problems.append(f"removing {d}: {e}")
        for f in (self.socket, self.pidfile):
            f.unlink(missing_ok=True)
        return problems
