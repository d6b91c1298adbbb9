"""The /dockweb backup endpoints, served in-process: JSON progress streams, downloads, uploads and their errors."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.events import EventLog
from engine.volumes.backup import BackupStore, Cancelled
from engine.volumes.store import VolumeStore
from tests.unit.engine.backup_helpers import FakeContainer, FakeContainers
from tests.unit.engine.tar_builders import member, tar_bytes
from tests.unit.engine.test_api_harness import request, running_server


class Engine:
    def __init__(self, root: Path) -> None:
        self.config = EngineConfig(root=root, socket=root / "engine.sock")
        self.config.ensure_dirs()
        self.events = EventLog()
        self.containers = FakeContainers()
        self.volumes = VolumeStore(self.config, self.events)
        self.backups = BackupStore(self.config, self.events, self.volumes, self.containers)


@pytest.fixture
def api(tmp_path):
    engine = Engine(tmp_path / "root")
    v = engine.volumes.create("data")
    (v.mountpoint / "hello.txt").write_bytes(b"hello\n")
    (v.mountpoint / "sub").mkdir()
    (v.mountpoint / "sub" / "big.bin").write_bytes(bytes(range(256)) * 8192)
    with running_server(tmp_path, engine=engine) as server:
        yield server, engine


def call(server, method, path, body=None, raw: bytes | None = None, headers=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    status, hdrs, out = request(server, method, path, data, headers or ({"Content-Type": "application/json"}
                                                                         if data else {}))
    return status, hdrs, out


def stream_lines(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def make_backup(server, volume="data", **body) -> dict:
    status, hdrs, out = call(server, "POST", f"/dockweb/volumes/{volume}/backups", body or {})
    assert status == 200, out
    lines = stream_lines(out)
    assert lines[0] == {"status": f"Backing up volume {volume}"}
    assert lines[-1]["status"] == "Backup complete"
    return lines[-1]["Backup"]


def test_backup_streams_progress_and_is_listed_and_inspected(api):
    server, engine = api
    b = make_backup(server, Compression="gzip", Consistency="none")
    assert b["Volume"] == "data" and b["Compression"] == "gzip" and b["Files"] == 4
    assert b["Checksums"]["Archive"].startswith("sha256:") and b["Verified"]["Ok"] is True
    status, _, out = call(server, "GET", "/dockweb/volumes/data/backups")
    assert status == 200 and [x["Id"] for x in json.loads(out)] == [b["Id"]]
    status, _, out = call(server, "GET", f"/dockweb/backups/{b['Id'][:12]}")
    assert status == 200 and json.loads(out) == b
    status, _, out = call(server, "GET", "/v1.45/dockweb/backups")
    assert status == 200 and len(json.loads(out)) == 1


def test_progress_messages_carry_bytes_and_files(api, monkeypatch):
    monkeypatch.setattr("engine.volumes.backup.PROGRESS_INTERVAL", 0)
    server, _ = api
    status, _, out = call(server, "POST", "/dockweb/volumes/data/backups", {"Consistency": "none"})
    progress = [m for m in stream_lines(out) if "progressDetail" in m]
    assert progress, out
    last = progress[-1]
    assert last["progressDetail"] == {"current": 6 + 256 * 8192, "total": 6 + 256 * 8192}
    assert last["files"] == 4 and last["status"] == "Backing up volume data"


def test_verify_download_restore_and_delete(api):
    server, engine = api
    b = make_backup(server)
    status, _, out = call(server, "POST", f"/dockweb/backups/{b['Id']}/verify")
    assert status == 200 and stream_lines(out)[-1]["status"] == "Verified"

    status, hdrs, out = call(server, "GET", f"/dockweb/backups/{b['Id']}/archive")
    assert status == 200 and hdrs["content-type"] == "application/zstd"
    assert hdrs["x-dockweb-checksum"] == "sha256:" + hashlib.sha256(out).hexdigest() == b["Checksums"]["Archive"]

    status, _, out = call(server, "POST", f"/dockweb/backups/{b['Id']}/restore", {"Volume": "copy"})
    assert status == 200, out
    done = stream_lines(out)[-1]
    assert done["status"] == "Restore complete" and done["Restore"]["Volume"] == "copy"
    copy = engine.volumes.get("copy").mountpoint
    assert (copy / "hello.txt").read_bytes() == b"hello\n"
    assert (copy / "sub" / "big.bin").read_bytes() == bytes(range(256)) * 8192

    status, _, _ = call(server, "DELETE", f"/dockweb/backups/{b['Id']}")
    assert status == 204
    status, _, out = call(server, "GET", f"/dockweb/backups/{b['Id']}")
    assert status == 404 and json.loads(out) == {"message": f"No such backup: {b['Id']}"}


def test_upload_of_the_seed_backup_tar_then_restore(api):
    server, engine = api
    engine.volumes.create("dbstore2")
    body = tar_bytes(member("dbdata/", "dir", mode=0o755), member("dbdata/db.txt", data=b"rows\n"))
    status, _, out = call(server, "POST", "/dockweb/volumes/dbstore2/backups/upload?strip=1", raw=body,
                          headers={"Content-Type": "application/x-tar"})
    assert status == 200, out
    uploaded = stream_lines(out)[-1]["Backup"]
    assert uploaded["Origin"] == "upload" and uploaded["Volume"] == "dbstore2"
    status, _, out = call(server, "POST", f"/dockweb/backups/{uploaded['Id']}/restore", {})
    assert stream_lines(out)[-1]["status"] == "Restore complete", out
    assert (engine.volumes.get("dbstore2").mountpoint / "db.txt").read_bytes() == b"rows\n"


def test_unknown_volume_and_backup_are_404(api):
    server, _ = api
    status, _, out = call(server, "POST", "/dockweb/volumes/nosuch/backups", {})
    assert status == 404 and json.loads(out) == {"message": "get nosuch: no such volume"}
    status, _, out = call(server, "GET", "/dockweb/volumes/nosuch/backups")
    assert status == 404
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/verify"), ("POST", "/restore"),
                           ("GET", "/archive")):
        status, _, out = call(server, method, f"/dockweb/backups/{'f' * 64}{suffix}")
        assert status == 404 and json.loads(out) == {"message": f"No such backup: {'f' * 64}"}


def test_bad_parameters_are_400(api):
    server, _ = api
    status, _, out = call(server, "POST", "/dockweb/volumes/data/backups", {"Compression": "lz4"})
    assert status == 400 and json.loads(out) == {"message": "invalid compression 'lz4': use one of zstd, gzip, none"}
    status, _, out = call(server, "POST", "/dockweb/volumes/data/backups", {"Consistency": "freeze"})
    assert status == 400 and json.loads(out) == {"message": "invalid consistency 'freeze': use one of pause, stop, none"}
    status, _, out = call(server, "POST", "/dockweb/volumes/data/backups/upload?strip=-1", raw=b"x")
    assert status == 400 and json.loads(out) == {"message": "strip must be zero or more"}
    b = make_backup(server)
    status, _, out = call(server, "POST", f"/dockweb/backups/{b['Id']}/restore", {"KeepSetid": "yes"})
    assert status == 400 and json.loads(out) == {"message": "KeepSetid must be true or false"}


def test_restore_into_a_volume_used_by_a_running_container_is_409(api):
    server, engine = api
    b = make_backup(server, Consistency="none")
    engine.containers.users["data"] = [FakeContainer("a" * 64)]
    status, _, out = call(server, "POST", f"/dockweb/backups/{b['Id']}/restore", {})
    assert status == 409
    assert json.loads(out) == {"message": f"volume data is in use by running containers {'a' * 12}: "
                                          "stop them before restoring"}


def test_an_unsafe_upload_reports_the_refusal_in_the_stream(api):
    server, _ = api
    body = tar_bytes(member("/etc/passwd", data=b"root::0:0::/:/bin/sh\n"))
    status, _, out = call(server, "POST", "/dockweb/volumes/data/backups/upload", raw=body)
    assert status == 200
    last = stream_lines(out)[-1]
    assert last["error"] == 'refusing "/etc/passwd": absolute path'
    assert last["errorDetail"] == {"message": 'refusing "/etc/passwd": absolute path'}


def test_the_next_progress_call_after_the_client_left_cancels_the_operation(api, monkeypatch):
    """A write to the stream notices a closed client late (the server waits for the next message to send);
    the operation looks at the connection itself, so the report it makes just before committing sees it."""
    server, engine = api
    client_closed = threading.Event()
    seen = {}

    def create(name, compression="zstd", consistency="pause", progress=None, verify="checksum"):
        client_closed.wait(10)
        try:
            progress(1, 2, 1)
        except Cancelled:
            seen["cancelled"] = True
            raise
        seen["cancelled"] = False
        return engine.backups.get("none")

    monkeypatch.setattr(engine.backups, "create", create)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(server.socket_path))
    sock.sendall(b"POST /dockweb/volumes/data/backups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 2\r\n\r\n{}")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()
    client_closed.set()
    deadline = time.monotonic() + 10
    while "cancelled" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == {"cancelled": True}
