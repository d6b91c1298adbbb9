"""Images through the docker CLI: import with --change, save and load, tag, rmi conflicts."""

import io
import json
import os
import tarfile

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


def rootfs_tar() -> bytes:
    """A tiny rootfs: the host's static busybox and one file."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add("/bin/busybox", arcname="bin/busybox")
        for applet in ("sh", "cat", "echo"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
        data = b"imported\n"
        info = tarfile.TarInfo("etc/marker")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_import_with_changes_then_run(engine):
    d = engine.docker
    out = d("import", "--change", 'CMD ["cat", "/etc/marker"]', "--change", "ENV GREETING=hello",
            "-", "imported:v1", input=rootfs_tar())
    assert out.returncode == 0, out.stderr
    run = d("run", "--rm", "imported:v1", text=True)
    assert run.stdout == "imported\n"
    env = d("run", "--rm", "imported:v1", "sh", "-c", "echo $GREETING").stdout
    assert env == "hello\n"
    d("rmi", "imported:v1")


def test_save_and_load_round_trip_keeps_the_id(engine, tmp_path):
    d = engine.docker
    image_id = d("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
    archive = tmp_path / "busybox.tar"
    assert d("save", "-o", str(archive), "busybox").returncode == 0
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "manifest.json" in names and "index.json" in names
    d("tag", "busybox", "copy:1")
    out = d("rmi", "copy:1")
    assert "Untagged: copy:1" in out.stdout
    out = d("load", "-i", str(archive))
    assert out.returncode == 0, out.stderr
    assert "busybox:latest" in out.stdout
    assert d("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip() == image_id


def test_rmi_of_an_image_used_by_a_container_is_a_conflict(engine):
    d = engine.docker
    d("tag", "busybox", "inuse:1")
    d("create", "--name", "user-of-image", "inuse:1", "true")
    try:
        d("tag", "busybox", "inuse:2")
        # untagging one of several tags is fine
        assert d("rmi", "inuse:2").returncode == 0
        image_id = d("image", "inspect", "-f", "{{.Id}}", "busybox").stdout.strip()
        out = d("rmi", image_id)
        assert out.returncode != 0
        assert "conflict" in out.stderr
    finally:
        d("rm", "-f", "user-of-image")
        d("rmi", "inuse:1")


def test_images_lists_busybox_with_its_size(engine):
    out = engine.docker("images", "--format", "{{json .}}")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    busybox = [r for r in rows if r["Repository"] == "busybox"]
    assert busybox and busybox[0]["Tag"] == "latest"


def test_load_of_a_malformed_archive_is_refused_and_leaves_nothing(engine, tmp_path):
    d = engine.docker
    before = d("images", "-q", "--no-trunc").stdout
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive at all" * 100)
    out = d("load", "-i", str(bad))
    assert out.returncode != 0
    assert d("images", "-q", "--no-trunc").stdout == before
    leftovers = os.listdir(os.path.join(engine.root, "images", "tmp")) if os.path.isdir(
        os.path.join(engine.root, "images", "tmp")) else []
    assert leftovers == []
