"""Run Debian's docker-registry (the CNCF distribution registry) inside an engine daemon's network namespace."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import EngineDaemon, call_in_netns

REGISTRY_BIN = "/usr/bin/docker-registry"


class RegistryServer:
    """One registry on 127.0.0.1:<port> in the daemon's netns, with its own config and storage directory."""

    def __init__(self, daemon: EngineDaemon, htpasswd: str = "") -> None:
        self.daemon = daemon
        self.dir = Path(tempfile.mkdtemp(prefix="dockweb-test-registry-"))
        self.storage = self.dir / "data"
        self.port = call_in_netns(daemon.netns_path, _free_port)
        self.proc: subprocess.Popen | None = None
        auth = ""
        if htpasswd:
            (self.dir / "htpasswd").write_text(htpasswd)
            auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {self.dir / 'htpasswd'}\n"
        (self.dir / "config.yml").write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
            + auth)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "RegistryServer":
        if not Path(REGISTRY_BIN).exists():
            pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
        log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen(self.daemon.in_netns([REGISTRY_BIN, "serve", str(self.dir / "config.yml")]),
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, _ = self.request("GET", "/v2/")
                if status in (200, 401):
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{(self.dir / 'registry.log').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the registry by its pid and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        """Send one HTTP request to the registry from inside the netns; return (status, body)."""
        def call() -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()
        return call_in_netns(self.daemon.netns_path, call)

    def put_blob(self, repo: str, data: bytes, digest: str) -> None:
        """Upload a blob monolithically (POST, then PUT ?digest=)."""
        def call() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("POST", f"/v2/{repo}/blobs/uploads/", body=b"")
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 202, resp.status
                location = resp.getheader("Location")
                sep = "&" if "?" in location else "?"
                conn.request("PUT", f"{location}{sep}digest={digest}", body=data,
                             headers={"Content-Type": "application/octet-stream"})
                resp = conn.getresponse()
                resp.read()
                assert resp.status == 201, (resp.status, resp.read())
            finally:
                conn.close()
        call_in_netns(self.daemon.netns_path, call)

    def put_manifest(self, repo: str, ref: str, body: bytes) -> None:
        media_type = json.loads(body)["mediaType"]
        status, data = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type})
        assert status == 201, data

    def blob_data_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def _free_port() -> int:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def htpasswd_line(user: str, password: str) -> str:
    """Return a bcrypt htpasswd line made with apache2-utils' htpasswd -Bbn."""
    if shutil.which("htpasswd") is None:
        pytest.skip("htpasswd is not installed (apt-get install apache2-utils)")
    out = subprocess.run(["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True)
    return out.stdout.strip() + "\n"
