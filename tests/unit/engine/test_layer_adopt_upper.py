"""ImageStore.adopt_layer: an upper dir moved into the store is exactly what unpacking its layer tar gives."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.events import EventLog
from engine.images import diff as diffmod
from engine.images.store import ImageStore
from tests.unit.engine.test_image_harness import needs_root

OPQ = "trusted.overlay.opaque"


def store_at(root: Path) -> ImageStore:
    return ImageStore(EngineConfig(root=root), EventLog())


def make_lower(lower: Path) -> None:
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (lower / "usr" / "share").mkdir(parents=True)
    (lower / "var").mkdir()
    (lower / "var" / "old").write_text("old")
    for d in ("etc", "usr", "usr/share", "var"):
        os.chmod(lower / d, 0o755)


def make_upper(upper: Path) -> None:
    """An upper dir as a RUN step leaves it: new files, copy-ups, whiteouts, opaque dirs, runtime leftovers."""
    upper.mkdir()
    os.chmod(upper, 0o755)
    (upper / "etc").mkdir(mode=0o755)
    (upper / "etc" / "hosts").write_bytes(b"")              # a runtime mount point: left out of the layer
    (upper / "etc" / "app.conf").write_text("x = 1\n")
    os.setxattr(upper / "etc", "trusted.overlay.impure", b"y")
    (upper / "usr").mkdir(mode=0o755)                        # copied up for nothing: same as below, empty
    (upper / "usr" / "share").mkdir(mode=0o755)
    (upper / "var").mkdir(mode=0o755)
    os.mknod(upper / "var" / "old", stat.S_IFCHR | 0o000, os.makedev(0, 0))   # whiteout of /var/old
    (upper / "opt").mkdir(mode=0o750)
    os.setxattr(upper / "opt", OPQ, b"y")
    os.chown(upper / "opt", 1000, 1000)
    (upper / "opt" / "bin").write_bytes(b"\x7fELF" + os.urandom(5000))
    os.chmod(upper / "opt" / "bin", 0o4755)
    os.link(upper / "opt" / "bin", upper / "opt" / "bin-hardlink")
    os.symlink("bin", upper / "opt" / "latest")
    os.setxattr(upper / "opt" / "bin", "user.note", b"kept")
    os.setxattr(upper / "opt" / "bin", "trusted.overlay.origin", b"\x00fake")
    os.mkfifo(upper / "opt" / "fifo", 0o640)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(upper / "opt" / "sock"))                     # sockets are never in a layer
    s.close()
    for p in [upper / "etc" / "app.conf", upper / "opt" / "bin"]:
        os.utime(p, ns=(1_600_000_123_456_789, 1_600_000_123_456_789))


def describe(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            full = os.path.join(dirpath, n)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                xattrs = {k: os.getxattr(full, k, follow_symlinks=False) for k in sorted(os.listxattr(
                    full, follow_symlinks=False))}
            content = None
            if stat.S_ISREG(st.st_mode):
                content = Path(full).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(full)
            whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_nlink, content, xattrs,
                        None if whiteout else st.st_mtime_ns)
    return out


@needs_root
def test_adopted_upper_equals_the_unpacked_tar(tmp_path):
    lower = tmp_path / "lower"
    make_lower(lower)
    upper = tmp_path / "upper"
    make_upper(upper)
    twin = tmp_path / "twin"
    subprocess.run(["cp", "-a", "--preserve=all", str(upper), str(twin)], check=True)
    skip = diffmod.runtime_mount_skip(upper, ["/etc/hosts"], diffmod.LayerView([lower]))
    skip_twin = diffmod.runtime_mount_skip(twin, ["/etc/hosts"], diffmod.LayerView([lower]))

    unpacked, adopted = store_at(tmp_path / "a"), store_at(tmp_path / "b")
    tar_a, tar_b = tmp_path / "a.tar", tmp_path / "b" / "images" / "tmp" / "b.tar"
    with open(tar_a, "wb") as out:
        diffmod.write_layer(upper, out, lowers=[lower], skip=skip)
    with open(tar_b, "wb") as out:
        diffmod.write_layer(twin, out, lowers=[lower], skip=skip_twin)
    assert tar_a.read_bytes() == tar_b.read_bytes()

    with unpacked.hold() as held_a, adopted.hold() as held_b:
        with open(tar_a, "rb") as f:
            la = unpacked.add_layer(f, "", held_a)
        lb = adopted.adopt_layer(twin, tar_b, "", held_b)
        assert (la.diff_id, la.size, la.tar_size) == (lb.diff_id, lb.size, lb.tar_size)
        da = tmp_path / "a" / "images" / "layers" / la.chain_id.split(":")[1] / "diff"
        db = tmp_path / "b" / "images" / "layers" / lb.chain_id.split(":")[1] / "diff"
        got, want = describe(db), describe(da)
        assert sorted(got) == sorted(want)
        for rel in want:
            assert got[rel] == want[rel], rel
        assert "etc/hosts" not in got and "usr" not in got and "opt/sock" not in got
        assert got["opt"][6] == {OPQ: b"y"}
        blob_b = tmp_path / "b" / "images" / "blobs" / "sha256" / lb.diff_id.split(":")[1]
        assert blob_b.read_bytes() == tar_a.read_bytes()
    assert not twin.exists() and not tar_b.exists()


@needs_root
def test_adopting_a_layer_the_store_has_keeps_the_existing_one(tmp_path):
    store = store_at(tmp_path / "s")
    ups = []
    for name in ("one", "two"):
        up = tmp_path / name
        up.mkdir()
        (up / "f").write_text("same")
        os.utime(up / "f", ns=(1_600_000_000_000_000_000,) * 2)
        tar = tmp_path / "s" / "images" / "tmp" / f"{name}.tar"
        with open(tar, "wb") as out:
            diffmod.write_layer(up, out)
        ups.append((up, tar))
    with store.hold() as held:
        first = store.adopt_layer(*ups[0], "", held)
        second = store.adopt_layer(*ups[1], "", held)
        assert first == second
        assert len(os.listdir(tmp_path / "s" / "images" / "layers")) == 1
    assert os.listdir(tmp_path / "s" / "images" / "tmp") == []
    shutil.rmtree(tmp_path / "s")


@needs_root
def test_the_same_layer_on_two_parents_shares_one_blob(tmp_path):
    store = store_at(tmp_path / "s")
    with store.hold() as held:
        chains = []
        for parent in ("", "sha256:" + "a" * 64):
            up = tmp_path / f"up{len(chains)}"
            up.mkdir()
            (up / "f").write_text("same")
            os.utime(up / "f", ns=(1_600_000_000_000_000_000,) * 2)
            tar = tmp_path / "s" / "images" / "tmp" / f"{len(chains)}.tar"
            with open(tar, "wb") as out:
                diffmod.write_layer(up, out)
            chains.append(store.adopt_layer(up, tar, parent, held))
        assert chains[0].diff_id == chains[1].diff_id and chains[0].chain_id != chains[1].chain_id
        for layer in chains:
            layer_dir = tmp_path / "s" / "images" / "layers" / layer.chain_id.split(":")[1]
            assert sorted(os.listdir(layer_dir)) == ["diff", "layer.json"]
        assert os.listdir(tmp_path / "s" / "images" / "blobs" / "sha256") == [chains[0].diff_id.split(":")[1]]
