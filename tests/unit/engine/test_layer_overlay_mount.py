"""Unpacked layers work as overlayfs lowers: whiteouts hide files and opaque dirs hide lower contents."""

import io
import shutil
import subprocess

import pytest

from engine.images.layers import chain_id
from tests.conftest import has_overlayfs, is_root
from tests.unit.engine.test_image_harness import build_tar, entry, make_store

pytestmark = [pytest.mark.root, pytest.mark.overlay,
              pytest.mark.skipif(not is_root() or not has_overlayfs() or not shutil.which("unshare"),
                                 reason="needs root, overlayfs and unshare")]


def test_whiteouts_and_opaque_dirs_take_effect_in_an_overlay_of_the_layer_dirs(tmp_path):
    store = make_store(tmp_path)
    base = build_tar(entry("etc/"), entry("etc/passwd", b"root"), entry("etc/group", b"g"),
                     entry("var/"), entry("var/a/"), entry("var/a/x", b"x"))
    top = build_tar(entry("etc/"), entry("etc/.wh.passwd", b""), entry("var/"), entry("var/a/"),
                    entry("var/a/.wh..wh..opq", b""), entry("var/a/y", b"y"))
    with store.hold() as held:
        lower = store.add_layer(io.BytesIO(base), "", held)
        upper = store.add_layer(io.BytesIO(top), lower.chain_id, held)
        assert upper.chain_id == chain_id(lower.chain_id, upper.diff_id)
        dirs = [store.root / "layers" / c.split(":")[1] / "diff" for c in (upper.chain_id, lower.chain_id)]
        merged = tmp_path / "merged"
        merged.mkdir()
        # A private mount namespace: the overlay vanishes with the process, whatever the test does.
        script = (f"mount -t overlay overlay -o lowerdir={dirs[0]}:{dirs[1]} {merged} && "
                  f"ls -A {merged}/etc && echo --- && ls -A {merged}/var/a")
        out = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    etc, var_a = out.stdout.split("---\n")
    assert etc.split() == ["group"]
    assert var_a.split() == ["y"]
