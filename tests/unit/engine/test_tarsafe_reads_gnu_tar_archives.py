"""Archives written by GNU tar (pax and gnu formats, every sparse version) extract to the same tree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.tarsafe import ExtractLimits, extract
from tests.unit.engine.tar_builders import snapshot

pytestmark = pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is not installed")


def make_tree(src: Path) -> None:
    (src / "d" / "e").mkdir(parents=True)
    (src / "empty").mkdir()
    (src / "a").write_bytes(b"hello\n")
    os.link(src / "a", src / "d" / "hard")
    os.symlink("../a", src / "d" / "rel")
    os.symlink("/nonexistent/target", src / "abs")
    deep = src / "/".join(["x" * 120] * 3)
    deep.mkdir(parents=True)
    (deep / ("f" * 150)).write_bytes(b"long name")
    with open(src / "sparse", "wb") as f:
        f.truncate(64 << 20)
        f.seek(10 << 20)
        f.write(b"data in the middle")
        f.seek((64 << 20) - 5)
        f.write(b"tail!")


@pytest.mark.parametrize("fmt", ["pax:0.0", "pax:0.1", "pax:1.0", "gnu:1.0"])
def test_gnu_tar_archive_extracts_identically(tmp_path, fmt):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    make_tree(src)
    form, version = fmt.split(":")
    archive = tmp_path / "a.tar"
    cmd = ["tar", f"--format={form}", "-S", "-cf", str(archive), "-C", str(src), "."]
    if form == "pax":
        cmd.insert(3, f"--sparse-version={version}")
    subprocess.run(cmd, check=True)
    with open(archive, "rb") as f:
        result = extract(f, out, ExtractLimits())
    assert snapshot(out) == snapshot(src)
    assert os.stat(out / "a").st_ino == os.stat(out / "d" / "hard").st_ino
    # Holes stay holes: far fewer blocks than the 64 MiB length.
    assert os.stat(out / "sparse").st_blocks * 512 < (1 << 20)
    assert result.bytes == (64 << 20) + 6 + 9
