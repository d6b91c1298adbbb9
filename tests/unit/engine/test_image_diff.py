"""engine.images.diff on hand-made upper and lower dirs: docker diff's list, layer tars, merged exports."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from engine.images import diff
from engine.images.diff import ADDED, DELETED, MODIFIED


def make(root: Path, files: dict[str, str | None]) -> Path:
    """Create files (content) and directories (None) under root."""
    for name, content in files.items():
        p = root / name
        if content is None:
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
    return root


def copy_dir_attrs(lower: Path, upper: Path, rel: str) -> None:
    """Make upper/rel look like a copied-up lower/rel (same mode, owner, mtime)."""
    src, dst = lower / rel, upper / rel
    st = os.stat(src)
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [m.name for m in tf.getmembers()]


def layer(upper: Path, **kwargs) -> bytes:
    buf = io.BytesIO()
    diff.write_layer(upper, buf, **kwargs)
    return buf.getvalue()


def test_added_file_in_new_directory_lists_the_directory_then_the_file(tmp_path):
    lower = make(tmp_path / "lower", {"etc/passwd": "root\n"})
    upper = make(tmp_path / "upper", {"app/run.sh": "echo\n"})
    assert diff.changes(upper, [lower]) == [(ADDED, "/app"), (ADDED, "/app/run.sh")]


def test_modified_file_is_c_and_its_copied_up_parent_is_not_listed(tmp_path):
    lower = make(tmp_path / "lower", {"etc/passwd": "root\n"})
    upper = make(tmp_path / "upper", {"etc/passwd": "root\nbob\n"})
    copy_dir_attrs(lower, upper, "etc")
    assert diff.changes(upper, [lower]) == [(MODIFIED, "/etc/passwd")]


def test_added_file_in_copied_up_directory_records_the_directory_as_modified(tmp_path):
    lower = make(tmp_path / "lower", {"etc/passwd": "root\n"})
    upper = make(tmp_path / "upper", {"etc/new": "x"})
    copy_dir_attrs(lower, upper, "etc")
    assert diff.changes(upper, [lower]) == [(MODIFIED, "/etc"), (ADDED, "/etc/new")]


def test_skip_rule_hides_runtime_mount_points_that_the_image_did_not_have(tmp_path):
    lower = make(tmp_path / "lower", {"etc/passwd": "root\n"})
    upper = make(tmp_path / "upper", {"etc/hosts": "", "etc/hostname": "", "proc": None, "etc/real": "x"})
    copy_dir_attrs(lower, upper, "etc")
    skip = diff.runtime_mount_skip(upper, ["/etc/hosts", "/etc/hostname", "/proc"], diff.LayerView([lower]))
    assert diff.changes(upper, [lower], skip) == [(MODIFIED, "/etc"), (ADDED, "/etc/real")]
    assert tar_names(layer(upper, lowers=[lower], skip=skip)) == ["etc", "etc/real"]


def test_a_non_empty_mount_point_file_is_kept(tmp_path):
    lower = make(tmp_path / "lower", {"etc/passwd": "root\n"})
    upper = make(tmp_path / "upper", {"etc/hosts": "127.0.0.1 written by the process\n"})
    skip = diff.runtime_mount_skip(upper, ["/etc/hosts"], diff.LayerView([lower]))
    assert (ADDED, "/etc/hosts") in diff.changes(upper, [lower], skip)


def test_layer_keeps_hard_links_modes_and_symlinks(tmp_path):
    upper = make(tmp_path / "upper", {"bin/tool": "#!/bin/sh\n"})
    os.chmod(upper / "bin/tool", 0o750)
    os.link(upper / "bin/tool", upper / "bin/tool2")
    os.symlink("tool", upper / "bin/alias")
    with tarfile.open(fileobj=io.BytesIO(layer(upper))) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert list(members) == ["bin", "bin/alias", "bin/tool", "bin/tool2"]
    assert members["bin"].isdir()
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"
    assert members["bin/tool"].isreg() and members["bin/tool"].mode == 0o750
    assert members["bin/tool2"].islnk() and members["bin/tool2"].linkname == "bin/tool"


def test_layer_tar_is_deterministic(tmp_path):
    upper = make(tmp_path / "upper", {"b/2": "2", "a/1": "1", "a/z/3": "3", "c": "c"})
    first, second = layer(upper), layer(upper)
    assert first == second
    assert tar_names(first) == ["a", "a/1", "a/z", "a/z/3", "b", "b/2", "c"]


def test_empty_upper_writes_no_entry(tmp_path):
    upper = make(tmp_path / "upper", {})
    assert diff.write_layer(upper, io.BytesIO()) == 0


def test_merged_view_takes_the_upper_file_over_the_lower_one(tmp_path):
    lower = make(tmp_path / "lower", {"etc/a": "old", "etc/b": "lower-only"})
    upper = make(tmp_path / "upper", {"etc/a": "new"})
    buf = io.BytesIO()
    diff.write_merged([upper, lower], buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        assert tf.getnames() == ["etc", "etc/a", "etc/b"]
        assert tf.extractfile("etc/a").read() == b"new"


# -- overlay metadata: whiteouts are 0/0 character devices and opaque dirs a trusted.* xattr, both need root ------

def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


@pytest.mark.root
def test_whiteout_is_a_deletion_and_a_wh_file_in_the_layer(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mknod of a whiteout needs root")
    lower = make(tmp_path / "lower", {"etc/group": "root\n", "etc/passwd": "root\n"})
    upper = make(tmp_path / "upper", {"etc": None})
    copy_dir_attrs(lower, upper, "etc")
    whiteout(upper / "etc/group")
    assert diff.changes(upper, [lower]) == [(MODIFIED, "/etc"), (DELETED, "/etc/group")]
    with tarfile.open(fileobj=io.BytesIO(layer(upper, lowers=[lower]))) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert list(members) == ["etc", "etc/.wh.group"]
    assert members["etc/.wh.group"].isreg() and members["etc/.wh.group"].size == 0


@pytest.mark.root
def test_opaque_directory_gets_an_opq_marker_and_no_overlay_xattr(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("trusted.* xattrs need root")
    lower = make(tmp_path / "lower", {"data/old": "1"})
    upper = make(tmp_path / "upper", {"data/new": "2"})
    os.setxattr(upper / "data", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "data/new", "user.kept", b"v")
    with tarfile.open(fileobj=io.BytesIO(layer(upper, lowers=[lower]))) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["data", "data/.wh..wh..opq", "data/new"]
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members for k in m.pax_headers)
    assert members[2].pax_headers.get("SCHILY.xattr.user.kept") == "v"
    # Under an opaque directory nothing of the lower shows: the new file is an addition.
    assert (ADDED, "/data/new") in diff.changes(upper, [lower])


@pytest.mark.root
def test_merged_view_hides_whiteouts_and_what_opaque_dirs_cover(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("whiteouts and trusted.* xattrs need root")
    lower = make(tmp_path / "lower", {"etc/group": "g", "etc/passwd": "p", "data/old": "1"})
    upper = make(tmp_path / "upper", {"etc": None, "data/new": "2"})
    whiteout(upper / "etc/group")
    os.setxattr(upper / "data", "trusted.overlay.opaque", b"y")
    buf = io.BytesIO()
    diff.write_merged([upper, lower], buf)
    assert tar_names(buf.getvalue()) == ["data", "data/new", "etc", "etc/passwd"]
    view = diff.LayerView([upper, lower])
    assert not view.has("/etc/group") and not view.has("/data/old") and view.has("/etc/passwd")
