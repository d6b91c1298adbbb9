"""Volume backups through the /dockweb API of a real engine daemon: consistency, restores, the seed's tar, errors."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import pytest

from tests.unit.engine.backup_helpers import deep_snapshot, fill_tree

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=120)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def call(engine, method: str, path: str, body: dict | None = None, raw: bytes | None = None) -> tuple[int, bytes]:
    conn = _Unix(engine.socket)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def last_message(out: bytes) -> dict:
    return json.loads(out.decode().strip().splitlines()[-1])


def backup(engine, volume: str, **body) -> dict:
    status, out = call(engine, "POST", f"/dockweb/volumes/{volume}/backups", body)
    assert status == 200, out
    msg = last_message(out)
    assert msg.get("status") == "Backup complete", msg
    return msg["Backup"]


def restore(engine, bid: str, **body) -> dict:
    status, out = call(engine, "POST", f"/dockweb/backups/{bid}/restore", body)
    assert status == 200, out
    msg = last_message(out)
    assert msg.get("status") == "Restore complete", msg
    return msg["Restore"]


def test_pause_backup_of_a_volume_written_continuously_is_consistent_and_the_container_keeps_running(engine):
    client = engine.client()
    # Each round appends the same number to a then to b: at any instant b has as many lines as a, or one less.
    script = "i=0; while true; do i=$((i+1)); echo $i >> /data/a; echo $i >> /data/b; done"
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True, name="bk-writer",
                              volumes={"bk-live": {"bind": "/data", "mode": "rw"}})
    try:
        time.sleep(1.0)
        since = int(time.time()) - 1
        b = backup(engine, "bk-live", Consistency="pause")
        assert b["Consistency"] == "pause" and b["SourceContainers"] == [c.id]
        c.reload()
        assert c.status == "running"
        events = client.api.events(since=since, until=int(time.time()) + 1, decode=True,
                                   filters={"type": "container", "container": c.id})
        actions = [e["Action"] for e in events]
        assert actions.index("pause") < actions.index("unpause")

        restore(engine, b["Id"], Volume="bk-live-copy")
        copy = Path(client.volumes.get("bk-live-copy").attrs["Mountpoint"])
        a_lines = (copy / "a").read_text().splitlines()
        b_lines = (copy / "b").read_text().splitlines()
        assert len(a_lines) > 10
        assert len(b_lines) in (len(a_lines), len(a_lines) - 1)
        assert a_lines[:len(b_lines)] == b_lines

        # Still writing after the backup.
        size = Path(client.volumes.get("bk-live").attrs["Mountpoint"], "a").stat().st_size
        time.sleep(0.3)
        assert Path(client.volumes.get("bk-live").attrs["Mountpoint"], "a").stat().st_size > size
    finally:
        c.remove(force=True)
        for name in ("bk-live", "bk-live-copy"):
            try:
                client.volumes.get(name).remove(force=True)
            except Exception:
                pass


def test_restore_into_a_new_volume_is_byte_identical(engine):
    client = engine.client()
    src = client.volumes.create("bk-src", labels={"team": "db"})
    try:
        data = Path(src.attrs["Mountpoint"])
        fill_tree(data)
        before = deep_snapshot(data)
        b = backup(engine, "bk-src", Compression="zstd", Consistency="none")
        status, out = call(engine, "POST", f"/dockweb/backups/{b['Id']}/verify")
        assert last_message(out)["status"] == "Verified"
        out = restore(engine, b["Id"], Volume="bk-dst")
        assert out["Created"] is True
        dst = client.volumes.get("bk-dst")
        assert dst.attrs["Labels"] == {"team": "db"}
        assert deep_snapshot(Path(dst.attrs["Mountpoint"])) == before
    finally:
        for name in ("bk-src", "bk-dst"):
            try:
                client.volumes.get(name).remove(force=True)
            except Exception:
                pass


def test_the_seed_backup_tar_uploads_and_restores(engine, tmp_path):
    client = engine.client()
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    dbstore = client.containers.create("busybox", ["sh", "-c", "true"], name="dbstore",
                                       volumes=["/dbdata"])
    try:
        client.containers.run("busybox", ["sh", "-c", "mkdir -p /dbdata/sub && echo rows > /dbdata/db.txt && "
                                          "echo more > /dbdata/sub/more.txt && ln -s db.txt /dbdata/link"],
                              remove=True, volumes_from=["dbstore"])
        client.containers.run("busybox", ["tar", "cvf", "/backup/backup.tar", "/dbdata"], remove=True,
                              volumes_from=["dbstore"], volumes={str(backup_dir): {"bind": "/backup", "mode": "rw"}})
        client.volumes.create("bk-dbstore2")
        status, out = call(engine, "POST", "/dockweb/volumes/bk-dbstore2/backups/upload?strip=1",
                           raw=(backup_dir / "backup.tar").read_bytes())
        assert status == 200, out
        uploaded = last_message(out)["Backup"]
        restore(engine, uploaded["Id"])
        source = Path(next(m["Source"] for m in client.api.inspect_container("dbstore")["Mounts"]))
        restored = Path(client.volumes.get("bk-dbstore2").attrs["Mountpoint"])
        assert (restored / "db.txt").read_bytes() == (source / "db.txt").read_bytes() == b"rows\n"
        assert (restored / "sub" / "more.txt").read_bytes() == b"more\n"
        assert (restored / "link").readlink() == Path("db.txt")
    finally:
        dbstore.remove(force=True, v=True)
        try:
            client.volumes.get("bk-dbstore2").remove(force=True)
        except Exception:
            pass


def test_errors_are_404_409_and_400(engine):
    client = engine.client()
    status, out = call(engine, "POST", "/dockweb/volumes/bk-nosuch/backups", {})
    assert status == 404 and json.loads(out) == {"message": "get bk-nosuch: no such volume"}
    status, out = call(engine, "GET", f"/dockweb/backups/{'0' * 64}")
    assert status == 404 and json.loads(out) == {"message": f"No such backup: {'0' * 64}"}
    client.volumes.create("bk-busy")
    c = client.containers.run("busybox", ["sleep", "600"], detach=True, volumes={"bk-busy": {"bind": "/d"}})
    try:
        status, out = call(engine, "POST", "/dockweb/volumes/bk-busy/backups", {"Compression": "brotli"})
        assert status == 400
        assert json.loads(out) == {"message": "invalid compression 'brotli': use one of zstd, gzip, none"}
        b = backup(engine, "bk-busy", Consistency="pause")
        status, out = call(engine, "POST", f"/dockweb/backups/{b['Id']}/restore", {})
        assert status == 409
        assert json.loads(out)["message"] == (f"volume bk-busy is in use by running containers {c.id[:12]}: "
                                              "stop them before restoring")
        c.reload()
        assert c.status == "running"
        status, _ = call(engine, "DELETE", f"/dockweb/backups/{b['Id']}")
        assert status == 204
        status, _ = call(engine, "DELETE", f"/dockweb/backups/{b['Id']}")
        assert status == 404
    finally:
        c.remove(force=True)
        client.volumes.get("bk-busy").remove(force=True)
