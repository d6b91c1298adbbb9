"""User lookup in the container's /etc/passwd and /etc/group, with runc's rules and messages."""

import pytest

from engine.containers.spec import resolve_user, rootfs_reader
from engine.errors import ContainerStartError

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www:x:33:33:www:/var/www:/bin/false
app:x:1000:1000::/home/app:/bin/sh
"""
GROUP = """root:x:0:root
daemon:x:1:
www:x:33:
wheel:x:10:root,app
audio:x:29:app
app:x:1000:
"""


def files(passwd=PASSWD, group=GROUP):
    content = {"/etc/passwd": passwd, "/etc/group": group}
    return lambda path: None if content.get(path) is None else content[path].encode()


@pytest.mark.parametrize("user,expected", [
    ("", (0, 0, [0, 0, 10])),
    ("root", (0, 0, [0, 0, 10])),
    ("0", (0, 0, [0, 0, 10])),
    ("www", (33, 33, [33])),
    ("app", (1000, 1000, [1000, 10, 29])),
    ("1000", (1000, 1000, [1000, 10, 29])),
    ("app:audio", (1000, 29, [29])),
    ("app:33", (1000, 33, [33])),
    ("4242", (4242, 0, [0])),
    ("4242:4343", (4242, 4343, [4343])),
    ("www:4343", (33, 4343, [4343])),
])
def test_user_specs_resolve_like_runc(user, expected):
    assert resolve_user(user, files()) == expected


def test_group_add_by_name_and_number():
    assert resolve_user("www", files(), ["audio", "4000", "audio"]) == (33, 33, [33, 29, 4000])


def test_unknown_user_name_fails_at_start_with_runc_text():
    with pytest.raises(ContainerStartError) as e:
        resolve_user("nosuch", files())
    assert e.value.message == "unable to find user nosuch: no matching entries in passwd file"


def test_unknown_group_name_and_group_add():
    with pytest.raises(ContainerStartError) as e:
        resolve_user("app:nogroup", files())
    assert e.value.message == "unable to find group nogroup: no matching entries in group file"
    with pytest.raises(ContainerStartError) as e:
        resolve_user("", files(), ["nogroup"])
    assert e.value.message == "Unable to find group nogroup: no matching entries in group file"


def test_out_of_range_ids():
    with pytest.raises(ContainerStartError, match="uids and gids must be in range 0-2147483647"):
        resolve_user("4294967296", files())


def test_missing_files_allow_numeric_users_only():
    none = files(None, None)
    assert resolve_user("", none) == (0, 0, [0])
    assert resolve_user("123:456", none) == (123, 456, [456])
    with pytest.raises(ContainerStartError):
        resolve_user("app", none)


def test_reader_from_an_etc_directory_and_str_content(tmp_path):
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    assert resolve_user("www", tmp_path) == (33, 33, [33])
    assert resolve_user("www", lambda p: {"/etc/passwd": PASSWD, "/etc/group": GROUP}.get(p)) == (33, 33, [33])


def test_rootfs_reader_reads_overlay_layers_upper_first_with_whiteouts(tmp_path):
    lower1, lower2, upper = tmp_path / "l1", tmp_path / "l2", tmp_path / "u"
    for d in (lower1, lower2, upper):
        (d / "etc").mkdir(parents=True)
    (lower1 / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (lower1 / "etc/group").write_text("root:x:0:\n")
    (lower2 / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\nweb:x:80:80::/:/bin/sh\n")
    overlay = f"lowerdir={lower2}:{lower1},upperdir={upper},workdir={tmp_path / 'w'}"
    read = rootfs_reader({"path": str(tmp_path / "rootfs"), "overlay": overlay})
    assert b"web:x:80" in read("/etc/passwd")  # the top lower layer wins over the bottom one
    assert read("/etc/group") == b"root:x:0:\n"
    (upper / "etc/.wh.group").write_text("")
    assert read("/etc/group") is None  # whited out in the upper layer
    assert read("/etc/shadow") is None
    assert resolve_user("web", read) == (80, 80, [80])


def test_rootfs_reader_does_not_follow_symlinks_out_of_the_image(tmp_path):
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    secret = tmp_path / "host-secret"
    secret.write_text("root:x:0:0::/:/bin/sh\nleak:x:7:7::/:/bin/sh\n")
    (root / "etc/passwd").symlink_to(secret)
    read = rootfs_reader({"path": str(root), "overlay": None})
    assert read("/etc/passwd") is None
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake/passwd").write_text("x")
    (root / "etc2").symlink_to(tmp_path / "fake")
    assert read("/etc2/passwd") is None
    assert read("/../host-secret") is None
