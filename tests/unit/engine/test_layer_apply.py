"""Applying layer tars: safe paths, metadata kept, compressed layers, and the diff id computed while streaming."""

import hashlib
import io
import os
import stat
import tarfile

import pytest

from engine.errors import InvalidParameter
from engine.images.layers import apply_tar, chain_id, chain_ids
from tests.unit.engine.test_image_harness import build_tar, entry, needs_root


def apply(tmp_path, data: bytes):
    target = tmp_path / "layer"
    target.mkdir(exist_ok=True)
    return target, apply_tar(io.BytesIO(data), target, xattr_prefix="user.overlay.")


def test_diff_id_is_the_sha256_of_the_uncompressed_stream(tmp_path):
    raw = build_tar(entry("a/"), entry("a/b", b"data"))
    _, applied = apply(tmp_path, raw)
    assert applied.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert applied.tar_size == len(raw)
    assert applied.size == 4


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_compressed_layers_are_detected_and_hashed_uncompressed(tmp_path, compress):
    raw = build_tar(entry("f", b"x" * 1000))
    target, applied = apply(tmp_path, build_tar(entry("f", b"x" * 1000), compress=compress))
    assert applied.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (target / "f").read_bytes() == b"x" * 1000


def test_file_mode_and_mtime_are_kept(tmp_path):
    target, _ = apply(tmp_path, build_tar(entry("d/", mode=0o750, mtime=1000),
                                          entry("d/run", b"#!", mode=0o4755, mtime=2000)))
    st = os.lstat(target / "d" / "run")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert st.st_mtime == 2000
    dst = os.lstat(target / "d")
    assert stat.S_IMODE(dst.st_mode) == 0o750
    assert dst.st_mtime == 1000  # set after its children were created


def test_absolute_names_land_inside_the_layer(tmp_path):
    target, _ = apply(tmp_path, build_tar(entry("/etc/passwd", b"root")))
    assert (target / "etc" / "passwd").read_bytes() == b"root"


def test_dotdot_escape_is_refused(tmp_path):
    with pytest.raises(InvalidParameter, match="outside of the layer root"):
        apply(tmp_path, build_tar(entry("../escape", b"x")))
    assert not (tmp_path / "escape").exists()


def test_writing_through_a_symlink_parent_stays_inside_the_layer(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target, _ = apply(tmp_path, build_tar(entry("evil", link=str(outside)), entry("evil/pwned", b"x"),
                                          entry("rel", link="../../outside"), entry("rel/pwned2", b"y")))
    assert list(outside.iterdir()) == []
    # Resolved as in a chroot: the absolute target is taken from the layer root.
    assert (target / str(outside).lstrip("/") / "pwned").read_bytes() == b"x"
    assert (target / "outside" / "pwned2").read_bytes() == b"y"
    assert os.readlink(target / "evil") == str(outside)


def test_a_later_entry_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"safe")
    target, _ = apply(tmp_path, build_tar(entry("f", link=str(victim)), entry("f", b"overwritten")))
    assert victim.read_bytes() == b"safe"
    assert not os.path.islink(target / "f")
    assert (target / "f").read_bytes() == b"overwritten"


def test_hardlink_escaping_the_layer_is_refused(tmp_path):
    (tmp_path / "secret").write_bytes(b"s")
    with pytest.raises(InvalidParameter):
        apply(tmp_path, build_tar(entry("h", kind=tarfile.LNKTYPE, link="../secret")))


def test_hardlink_through_a_symlink_parent_is_refused(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"s")
    with pytest.raises(InvalidParameter):
        apply(tmp_path, build_tar(entry("d", link=str(tmp_path / "outside")),
                                  entry("h", kind=tarfile.LNKTYPE, link="d/secret")))


def test_hardlink_inside_the_layer_shares_the_inode(tmp_path):
    target, applied = apply(tmp_path, build_tar(entry("a", b"12345"), entry("b", kind=tarfile.LNKTYPE, link="a")))
    assert os.stat(target / "a").st_ino == os.stat(target / "b").st_ino
    assert applied.size == 5


def test_a_truncated_tar_is_invalid(tmp_path):
    raw = build_tar(entry("f", b"x" * 5000))
    with pytest.raises(InvalidParameter):
        apply(tmp_path, raw[:1500])


def test_garbage_is_invalid(tmp_path):
    with pytest.raises(InvalidParameter):
        apply(tmp_path, b"this is not a tar file at all" * 40)


def test_user_xattrs_are_kept(tmp_path):
    try:
        os.setxattr(tmp_path, "user.probe", b"1")
    except OSError:
        pytest.skip("no user xattrs on this filesystem")
    target, _ = apply(tmp_path, build_tar(entry("f", b"x", pax={"SCHILY.xattr.user.color": "blue"})))
    assert os.getxattr(target / "f", "user.color") == b"blue"


@needs_root
def test_whiteouts_become_overlay_character_devices_and_opaque_dirs(tmp_path):
    target = tmp_path / "layer"
    target.mkdir()
    apply_tar(io.BytesIO(build_tar(entry("etc/"), entry("etc/.wh.passwd", b""), entry("var/"),
                                   entry("var/.wh..wh..opq", b""))), target)
    st = os.lstat(target / "etc" / "passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (target / "etc" / ".wh.passwd").exists()
    assert os.getxattr(target / "var", "trusted.overlay.opaque") == b"y"
    assert not (target / "var" / ".wh..wh..opq").exists()


@needs_root
def test_ownership_and_device_nodes_are_kept_as_root(tmp_path):
    target, _ = apply(tmp_path, build_tar(entry("f", b"x", uid=1234, gid=5678),
                                          entry("null", kind=tarfile.CHRTYPE, mode=0o666, major=1, minor=3),
                                          entry("l", link="f", uid=42, gid=43)))
    st = os.lstat(target / "f")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    dev = os.lstat(target / "null")
    assert stat.S_ISCHR(dev.st_mode) and os.major(dev.st_rdev) == 1 and os.minor(dev.st_rdev) == 3
    assert stat.S_IMODE(dev.st_mode) == 0o666
    assert (os.lstat(target / "l").st_uid, os.lstat(target / "l").st_gid) == (42, 43)


def test_chain_id_of_a_base_layer_is_its_diff_id_and_then_hashes_the_pair():
    a, b = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    assert chain_id(None, a) == a
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, expected]
