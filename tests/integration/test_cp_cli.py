"""docker cp both ways through the archive endpoints: files, directories, volumes, stopped and read-only containers."""

import base64
import json
import os
import subprocess

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


@pytest.fixture
def box(engine):
    out = engine.docker("run", "-d", "--name", "cpbox", "-v", "cpvol:/data", "busybox", "sleep", "600")
    assert out.returncode == 0, out.stderr
    yield "cpbox"
    engine.docker("rm", "-f", "cpbox")
    engine.docker("volume", "rm", "-f", "cpvol")


def test_cp_a_file_into_a_volume_directory_of_a_running_container(engine, box, tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    out = engine.docker("cp", str(tmp_path / "a.txt"), f"{box}:/data/")
    assert out.returncode == 0, out.stderr
    assert engine.docker("exec", box, "cat", "/data/a.txt").stdout == "hello\n"
    with open(engine.root / "volumes" / "cpvol" / "_data" / "a.txt") as f:
        assert f.read() == "hello\n"


def test_cp_a_directory_to_a_new_name(engine, box, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "sub" / "f").write_text("f\n")
    os.symlink("sub/f", ctx / "link")
    out = engine.docker("cp", str(ctx), f"{box}:/data/ctxcopy")
    assert out.returncode == 0, out.stderr
    out = engine.docker("exec", box, "sh", "-c", "cat /data/ctxcopy/sub/f; readlink /data/ctxcopy/link")
    assert out.stdout == "f\nsub/f\n"


def test_cp_from_a_container_file_and_directory(engine, box, tmp_path):
    engine.docker("exec", box, "sh", "-c", "mkdir -p /data/d/e && echo 1 > /data/d/e/one && chmod 600 /data/d/e/one")
    out = engine.docker("cp", f"{box}:/etc/hostname", str(tmp_path / "hn"))
    assert out.returncode == 0, out.stderr
    cid = engine.docker("inspect", "-f", "{{.Id}}", box).stdout.strip()
    assert (tmp_path / "hn").read_text() == cid[:12] + "\n"
    out = engine.docker("cp", f"{box}:/data/d", str(tmp_path / "dcopy"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "dcopy" / "e" / "one").read_text() == "1\n"
    assert (tmp_path / "dcopy" / "e" / "one").stat().st_mode & 0o777 == 0o600


def test_cp_to_stdout_is_a_tar_named_after_the_last_path_element(engine, box):
    out = engine.docker("cp", f"{box}:/etc/hostname", "-", text=False)
    assert out.returncode == 0
    listing = subprocess.run(["tar", "-tvf", "-"], input=out.stdout, capture_output=True).stdout.decode()
    assert listing.split()[-1] == "hostname"


def test_cp_of_a_missing_path_names_the_file_and_container(engine, box, tmp_path):
    out = engine.docker("cp", f"{box}:/nope", str(tmp_path / "x"))
    assert out.returncode != 0
    assert "Could not find the file /nope in container cpbox" in out.stderr


def test_cp_into_and_out_of_a_stopped_container_including_its_volume(engine, box, tmp_path):
    (tmp_path / "b.txt").write_text("while stopped\n")
    assert engine.docker("stop", "-t", "0", box).returncode == 0
    assert engine.docker("cp", str(tmp_path / "b.txt"), f"{box}:/data/").returncode == 0
    assert engine.docker("cp", str(tmp_path / "b.txt"), f"{box}:/root/").returncode == 0
    out = engine.docker("cp", f"{box}:/data/b.txt", str(tmp_path / "back.txt"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "back.txt").read_text() == "while stopped\n"
    # Nothing of the private mounts leaks onto the host.
    with open("/proc/self/mountinfo") as f:
        assert str(engine.root / "containers") not in f.read()
    assert engine.docker("start", box).returncode == 0
    assert engine.docker("exec", box, "cat", "/data/b.txt", "/root/b.txt").stdout == "while stopped\n" * 2


def test_cp_symlinks_resolve_inside_the_container_never_on_the_host(engine, box, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    # An absolute symlink in the container pointing at a host path must resolve in the container.
    engine.docker("exec", box, "sh", "-c", f"mkdir -p {tmp_path} && echo decoy > {secret} && "
                                           f"ln -s {tmp_path} /data/escape")
    out = engine.docker("cp", f"{box}:/data/escape/host-secret", str(tmp_path / "got"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "got").read_text() == "decoy\n"
    (tmp_path / "payload").write_text("payload\n")
    assert engine.docker("cp", str(tmp_path / "payload"), f"{box}:/data/escape/").returncode == 0
    assert (tmp_path / "host-secret").read_text() == "host only\n"
    assert engine.docker("exec", box, "cat", f"{tmp_path}/payload").stdout == "payload\n"


def test_cp_into_a_read_only_rootfs_or_volume_is_forbidden(engine, tmp_path):
    d = engine.docker
    (tmp_path / "a.txt").write_text("x")
    try:
        assert d("run", "-d", "--name", "cpro", "--read-only", "-v", "cproro:/v:ro", "-v", "cprorw:/w",
                 "busybox", "sleep", "600").returncode == 0
        out = d("cp", str(tmp_path / "a.txt"), "cpro:/tmp/")
        assert out.returncode != 0 and "container rootfs is marked read-only" in out.stderr
        out = d("cp", str(tmp_path / "a.txt"), "cpro:/v/")
        assert out.returncode != 0 and "mounted volume is marked read-only" in out.stderr
        assert d("cp", str(tmp_path / "a.txt"), "cpro:/w/").returncode == 0
        assert d("exec", "cpro", "cat", "/w/a.txt").stdout == "x"
    finally:
        d("rm", "-f", "cpro")
        d("volume", "rm", "-f", "cproro", "cprorw")


def test_cp_events_are_archive_path_and_extract_to_dir(engine, box, tmp_path):
    import time
    since = str(int(time.time()) - 1)
    (tmp_path / "e.txt").write_text("e")
    engine.docker("cp", str(tmp_path / "e.txt"), f"{box}:/data/")
    engine.docker("cp", f"{box}:/data/e.txt", str(tmp_path / "e2"))
    out = engine.docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                        "container=cpbox", "--format", "{{.Action}}")
    actions = out.stdout.split()
    assert "extract-to-dir" in actions and "archive-path" in actions


def test_head_archive_stat_header_has_go_file_mode(engine, box):
    import http.client
    import socket

    class Conn(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(engine.socket))

    conn = Conn("localhost")
    conn.request("HEAD", f"/v1.50/containers/{box}/archive?path=/data")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200
    doc = json.loads(base64.b64decode(resp.getheader("X-Docker-Container-Path-Stat")))
    assert doc["name"] == "data" and doc["mode"] == 2147484141 and doc["linkTarget"] == ""
    conn.request("HEAD", f"/v1.50/containers/{box}/archive?path=/nope")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 404
    conn.close()


def test_cp_archive_mode_gives_files_to_the_containers_user(engine, tmp_path):
    d = engine.docker
    (tmp_path / "owned.txt").write_text("o")
    try:
        assert d("run", "-d", "--name", "cpuser", "--user", "1000:1001", "busybox", "sleep", "600").returncode == 0
        assert d("cp", "-a", str(tmp_path / "owned.txt"), "cpuser:/tmp/").returncode == 0
        assert d("exec", "cpuser", "stat", "-c", "%u:%g", "/tmp/owned.txt").stdout.strip() == "1000:1001"
    finally:
        d("rm", "-f", "cpuser")
