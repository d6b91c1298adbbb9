"""The busybox bootstrap: a deterministic busybox:latest built from the host's static busybox."""

import os
import shutil
import stat
from pathlib import Path

import pytest

from engine.images.bootstrap import build_rootfs_tar, busybox_applets, ensure_busybox
from tests.unit.engine.test_image_harness import make_store

BUSYBOX = Path(shutil.which("busybox") or "/bin/busybox")
pytestmark = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox is not installed")


def test_bootstrap_imports_busybox_latest_with_sh_and_path(tmp_path):
    store = make_store(tmp_path)
    image = ensure_busybox(store, BUSYBOX)
    assert image.repo_tags == ["busybox:latest"]
    assert image.config["config"] == {
        "Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
    [rootfs] = store.layer_dirs(image)
    assert (rootfs / "bin" / "busybox").read_bytes() == BUSYBOX.read_bytes()
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert "root:x:0:0:root:/root:/bin/sh" in (rootfs / "etc" / "passwd").read_text()
    assert "nobody:x:65534:65534:" in (rootfs / "etc" / "passwd").read_text()
    assert stat.S_IMODE(os.stat(rootfs / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(rootfs / "root").st_mode) == 0o700
    for d in ("dev", "proc", "sys", "home", "var", "usr"):
        assert (rootfs / d).is_dir()


def test_every_applet_gets_a_link_in_bin(tmp_path):
    store = make_store(tmp_path)
    [rootfs] = store.layer_dirs(ensure_busybox(store, BUSYBOX))
    applets = busybox_applets(BUSYBOX)
    assert len(applets) > 100
    assert all(os.path.islink(rootfs / "bin" / a) for a in applets)


def test_bootstrap_is_deterministic_and_only_runs_on_an_empty_store(tmp_path):
    assert build_rootfs_tar(BUSYBOX) == build_rootfs_tar(BUSYBOX)
    first = ensure_busybox(make_store(tmp_path, "a"), BUSYBOX)
    second = ensure_busybox(make_store(tmp_path, "b"), BUSYBOX)
    assert first.id == second.id
    store = make_store(tmp_path, "a")
    assert ensure_busybox(store, BUSYBOX) is None
    assert len(store.list()) == 1
