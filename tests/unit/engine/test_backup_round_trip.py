"""A volume backed up and restored into a new volume is the same tree: content, modes, owners, links, mtimes, xattrs."""

from __future__ import annotations

import os
import shutil
import time
import subprocess

import pytest

from engine.volumes.backup import MANIFEST_NAME
from tests.unit.engine.backup_helpers import deep_snapshot, fill_tree, make_store


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_restore_into_a_new_volume_gives_an_identical_tree(tmp_path, compression):
    store, volumes = make_store(tmp_path)
    src = volumes.create("src", labels={"app": "db"})
    fill_tree(src.mountpoint)
    before = deep_snapshot(src.mountpoint)

    b = store.create("src", compression=compression, consistency="none")
    out = store.restore(b.id, "copy")

    copy = volumes.get("copy")
    assert out["Created"] is True and out["Volume"] == "copy"
    assert deep_snapshot(copy.mountpoint) == before
    assert deep_snapshot(src.mountpoint) == before
    assert copy.labels == {"app": "db"}
    # Holes stay holes: the 32 MiB sparse file uses a few blocks only.
    assert os.stat(copy.mountpoint / "sparse.img").st_blocks * 512 < (1 << 20)
    assert b.files == len(before) - 1 and b.verified["Ok"] is True


def test_restore_into_the_same_volume_replaces_its_content(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    fill_tree(v.mountpoint)
    before = deep_snapshot(v.mountpoint)
    b = store.create("vol", consistency="none")
    (v.mountpoint / "added later").write_bytes(b"x")
    (v.mountpoint / "docs" / "readme.txt").write_bytes(b"changed")

    store.restore(b.id)

    assert deep_snapshot(v.mountpoint) == before
    assert not any(n.startswith("._data.staging") for n in os.listdir(v.mountpoint.parent))
    # The replaced data is deleted in the background, off the restore's time, and does go.
    deadline = time.monotonic() + 10
    while any(n.startswith("._data.old") for n in os.listdir(v.mountpoint.parent)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(n.startswith("._data.old") for n in os.listdir(v.mountpoint.parent))


@pytest.mark.skipif(shutil.which("tar") is None or shutil.which("zstd") is None, reason="needs GNU tar and zstd")
def test_gnu_tar_reads_the_archive_with_its_manifest_last(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    fill_tree(v.mountpoint)
    b = store.create("vol", consistency="none")
    listing = subprocess.run(f"zstd -dc {store.archive_path(b)} | tar -tf -", shell=True, check=True,
                             capture_output=True, text=True).stdout.splitlines()
    assert listing[0] == "./"
    assert listing[-1] == MANIFEST_NAME
    assert "docs/readme.txt" in listing and "sparse.img" in listing
