"""Mount option parsing, symlink-safe joins, and the mount calls made for spec entries (fake sys)."""

import errno
import os

import pytest

from engine.runtime import mounts
from engine.runtime import sys as linux
from tests.unit.engine.runtime_fakes import fake_sys  # noqa: F401


def test_dockers_dev_options_split_into_flags_and_data():
    opts = mounts.parse_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts.flags == linux.MS_NOSUID | linux.MS_STRICTATIME
    assert opts.data == "mode=755,size=65536k"
    assert opts.propagation == []


def test_clearing_options_undo_earlier_ones():
    assert mounts.parse_options(["ro", "rw", "noexec", "exec", "nodev"]).flags == linux.MS_NODEV


def test_rbind_and_propagation():
    opts = mounts.parse_options(["rbind", "ro", "rprivate"])
    assert opts.flags == linux.MS_BIND | linux.MS_REC | linux.MS_RDONLY
    assert opts.propagation == [linux.MS_PRIVATE | linux.MS_REC]


def test_runtime_extensions_are_not_passed_to_the_kernel():
    assert mounts.parse_options(["tmpcopyup", "z", "mode=1777"]).data == "mode=1777"


def test_secure_join_keeps_symlinks_inside_root(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("/etc", tmp_path / "abs")
    os.symlink("../../../../etc", tmp_path / "rel")
    assert mounts.secure_join(str(tmp_path), "/abs/passwd") == f"{tmp_path}/etc/passwd"
    assert mounts.secure_join(str(tmp_path), "/rel/passwd") == f"{tmp_path}/etc/passwd"
    assert mounts.secure_join(str(tmp_path), "/../../x") == f"{tmp_path}/x"


def test_secure_join_stops_symlink_loops(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError) as e:
        mounts.secure_join(str(tmp_path), "/a")
    assert e.value.errno == errno.ELOOP


def test_read_only_bind_is_bound_then_remounted(tmp_path, fake_sys):
    src = tmp_path / "host.conf"
    src.write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    mounts.mount_entry(str(root), {"destination": "/etc/x.conf", "type": "bind", "source": str(src),
                                   "options": ["rbind", "ro", "rprivate"]}, str(tmp_path))  # fmt: skip
    dest = f"{root}/etc/x.conf"
    assert os.path.isfile(dest)  # a file source gets a file mount point
    assert fake_sys.named("mount") == [
        (str(src), dest, None, linux.MS_BIND | linux.MS_REC, None),
        (str(src), dest, None, linux.MS_BIND | linux.MS_RDONLY | linux.MS_REMOUNT, None),
        (None, dest, None, linux.MS_PRIVATE | linux.MS_REC),
    ]


def test_missing_bind_source_is_an_error(tmp_path, fake_sys):
    with pytest.raises(OSError, match="bind source path does not exist"):
        mounts.mount_entry(str(tmp_path), {"destination": "/x", "type": "bind", "source": "/nonexistent-src"}, "")


def test_filesystem_mounts_pass_flags_and_data(tmp_path, fake_sys):
    mounts.mount_entry(str(tmp_path), {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                                       "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}, "")
    assert fake_sys.named("mount") == [("shm", f"{tmp_path}/dev/shm", "tmpfs",
                                        linux.MS_NOSUID | linux.MS_NOEXEC | linux.MS_NODEV,
                                        "mode=1777,size=67108864")]  # fmt: skip


def test_cgroup_v1_mount_is_a_tmpfs_of_each_hierarchy(tmp_path, fake_sys):
    flags = linux.MS_RDONLY | linux.MS_NOSUID
    mounts.mount_cgroup(str(tmp_path), flags, [("memory", "memory"), ("systemd", "name=systemd")])
    calls = fake_sys.named("mount")
    assert calls[0][2] == "tmpfs"
    assert calls[1] == ("cgroup", f"{tmp_path}/memory", "cgroup", flags, "memory")
    assert calls[2] == ("cgroup", f"{tmp_path}/systemd", "cgroup", flags, "name=systemd")
    assert calls[3][3] & linux.MS_REMOUNT and calls[3][3] & linux.MS_RDONLY


def test_cgroup_v2_mount_is_one_cgroup2(tmp_path, fake_sys):
    mounts.mount_cgroup(str(tmp_path), linux.MS_RDONLY, [("", "")])
    assert fake_sys.named("mount") == [("cgroup2", str(tmp_path), "cgroup2", linux.MS_RDONLY, None)]


def test_mask_path_binds_dev_null_over_a_file(tmp_path, fake_sys):
    (tmp_path / "kcore").write_text("")
    mounts.mask_path(str(tmp_path / "kcore"))
    assert fake_sys.named("mount") == [("/dev/null", str(tmp_path / "kcore"), None, linux.MS_BIND)]


def test_mask_path_puts_a_read_only_tmpfs_over_a_directory_in_one_mount(tmp_path, fake_sys):
    mounts.mask_path(str(tmp_path))
    assert fake_sys.named("mount") == [("tmpfs", str(tmp_path), "tmpfs", linux.MS_RDONLY)]


def test_mask_path_falls_back_to_a_read_only_tmpfs_when_the_bind_says_directory(tmp_path, fake_sys):
    (tmp_path / "firmware").write_text("")  # a file when stat looked, a directory when mounted
    fake_sys.errors[("mount", "/dev/null")] = OSError(errno.ENOTDIR, "Not a directory")
    mounts.mask_path(str(tmp_path / "firmware"))
    assert fake_sys.named("mount")[-1] == ("tmpfs", str(tmp_path / "firmware"), "tmpfs", linux.MS_RDONLY)


def test_mask_path_falls_back_to_dev_null_when_the_tmpfs_says_not_a_directory(tmp_path, fake_sys):
    fake_sys.errors[("mount", "tmpfs")] = OSError(errno.ENOTDIR, "Not a directory")
    mounts.mask_path(str(tmp_path))
    assert fake_sys.named("mount")[-1] == ("/dev/null", str(tmp_path), None, linux.MS_BIND)


def test_mask_path_skips_missing_paths(tmp_path, fake_sys):
    mounts.mask_path(str(tmp_path / "nope"))
    assert fake_sys.named("mount") == []


def test_mask_path_skips_a_path_gone_before_the_mount(tmp_path, fake_sys):
    (tmp_path / "keys").write_text("")
    fake_sys.errors[("mount", "/dev/null")] = OSError(errno.ENOENT, "No such file")
    mounts.mask_path(str(tmp_path / "keys"))
    assert len(fake_sys.named("mount")) == 1


def test_long_overlay_options_are_shortened_below_a_page(tmp_path, fake_sys):
    layers = [tmp_path / "layers" / f"{i:064x}" / "diff" for i in range(50)]
    for d in layers + [tmp_path / "layers" / "u", tmp_path / "layers" / "w"]:
        d.mkdir(parents=True)
    data = f"lowerdir={':'.join(map(str, layers))},upperdir={tmp_path}/layers/u,workdir={tmp_path}/layers/w"
    assert len(data) > 4096
    cwd = os.getcwd()
    mounts.mount_overlay("/target", data)
    (source, target, fstype, flags, short), = fake_sys.named("mount")
    assert len(short) < 4096 and short.startswith(f"lowerdir={0:064x}/diff:") and "upperdir=u," in short
    assert os.getcwd() == cwd


def test_devices_get_exact_modes_and_owners(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(os, "mknod", lambda path, mode, dev: made.append((path, mode, dev)) or open(path, "w").close())
    monkeypatch.setattr(os, "chown", lambda *a: None)
    mounts.create_devices(str(tmp_path), [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                                           "fileMode": 0o600}])  # fmt: skip
    by_name = {os.path.basename(p): (mode, dev) for p, mode, dev in made}
    assert set(by_name) == {"null", "zero", "full", "random", "urandom", "tty", "fuse"}
    assert by_name["fuse"] == (0o600 | 0o020000, os.makedev(10, 229))
    assert oct(os.stat(tmp_path / "dev" / "fuse").st_mode & 0o777) == oct(0o600)
