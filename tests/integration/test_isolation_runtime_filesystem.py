"""The container sees its own root, Docker's /dev, masked and read-only /proc and /sys paths."""

import os
import pytest

from tests.integration.runtime_harness import (  # noqa: F401
    bundle, cgroup_parent, default_bpf, default_spec, rootfs_template, run,
)

pytestmark = pytest.mark.root


def sh(bundle, bpf, script, **kw):
    res = run(bundle, default_spec(["sh", "-c", script], **kw), bpf)
    assert not res.error, res.error
    return res


def test_dev_holds_only_dockers_nodes(bundle, default_bpf):
    res = sh(bundle, default_bpf, "ls /dev")
    expected = {"fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty",
                "urandom", "zero"}  # fmt: skip
    if os.path.exists("/proc/kcore"):
        expected.add("core")
    assert set(res.text.split()) == expected


def test_dev_mounts_have_dockers_options(bundle, default_bpf):
    script = "grep -E ' /dev(/pts|/shm|/mqueue)? ' /proc/self/mounts; stat -c '%a %t,%T' /dev/null"
    res = sh(bundle, default_bpf, script)
    lines = res.text.splitlines()
    mounts = {line.split()[1]: line.split()[3].split(",") for line in lines[:-1]}
    assert {"nosuid", "mode=755"} <= set(mounts["/dev"])
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= set(mounts["/dev/pts"])
    assert {"nosuid", "nodev", "noexec", "size=65536k"} <= set(mounts["/dev/shm"])
    assert "/dev/mqueue" in mounts
    assert lines[-1] == "666 1,3"


def test_masked_paths_read_empty(bundle, default_bpf):
    res = sh(bundle, default_bpf, "cat /proc/keys /proc/timer_list | wc -c; ls /sys/firmware | wc -l; "
                                  "touch /sys/firmware/x 2>/dev/null; echo touch=$?")  # fmt: skip
    assert res.text.split() == ["0", "0", "touch=1"]


def test_kcore_is_masked_when_the_kernel_has_it(bundle, default_bpf):
    if not os.path.exists("/proc/kcore"):
        pytest.skip("this kernel has no /proc/kcore")
    assert sh(bundle, default_bpf, "wc -c < /proc/kcore").text.split() == ["0"]


def test_proc_sys_and_sys_are_read_only(bundle, default_bpf):
    res = sh(bundle, default_bpf, "echo x > /proc/sys/kernel/domainname; echo a=$?; touch /sys/x; echo b=$?; "
                                  "grep -E ' /(proc/sys|sys) ' /proc/self/mounts | cut -d' ' -f2,4")  # fmt: skip
    assert "a=1" in res.text and "b=1" in res.text
    assert "Read-only file system" in res.text
    for line in res.text.splitlines()[-2:]:
        assert line.split()[1].startswith("ro,"), line


def test_cgroup_filesystem_is_read_only_and_rooted_at_the_container(bundle, default_bpf, cgroup_parent):
    spec = default_spec(["sh", "-c", "cat /proc/self/cgroup | grep memory; mkdir /sys/fs/cgroup/memory/x; echo rc=$?"],
                        cgroups_path=f"{cgroup_parent}/c1")  # fmt: skip
    res = run(bundle, spec, default_bpf)
    assert "memory:/\n" in res.text  # the cgroup namespace hides the host path
    assert "rc=1" in res.text


def test_pid_one_and_hostname_and_loopback(bundle, default_bpf):
    res = sh(bundle, default_bpf, "echo $$; hostname; ip -o link | cut -d: -f2; ip -o addr show lo | grep -c 127.0.0.1")
    assert res.text.split() == ["1", "dockweb-test", "lo", "1"]
    res = sh(bundle, default_bpf, "ping -c1 -W1 127.0.0.1 >/dev/null && echo up")
    assert res.text.split() == ["up"]


def test_readonly_root_refuses_writes_but_not_to_tmpfs(bundle, default_bpf):
    spec = default_spec(["sh", "-c", "touch /x; echo a=$?; touch /dev/shm/x; echo b=$?"])
    spec["root"]["readonly"] = True
    res = run(bundle, spec, default_bpf)
    assert "a=1" in res.text and "b=0" in res.text


def test_overlay_root_is_only_mounted_inside_the_container(tmp_path, rootfs_template, default_bpf):
    upper, work, root = tmp_path / "upper", tmp_path / "work", tmp_path / "rootfs"
    for d in (upper, work, root):
        d.mkdir()
    spec = default_spec(["sh", "-c", "grep -c '^overlay / overlay' /proc/self/mounts; echo hi > /written; "
                                     "cat /host-mounts-probe 2>/dev/null; sleep 0.3"])  # fmt: skip
    spec["annotations"]["dockweb.rootfs.overlay"] = f"lowerdir={rootfs_template},upperdir={upper},workdir={work}"
    from tests.integration.runtime_harness import Container

    c = Container(tmp_path, spec, default_bpf)
    try:
        with open("/proc/self/mounts") as f:
            host_mounts = f.read()
        res = c.wait()
    finally:
        c.kill()
    assert str(root) not in host_mounts and str(upper) not in host_mounts
    assert res.text.split() == ["1"], res.text
    assert (upper / "written").read_text() == "hi\n"  # writes land in the upper dir
    assert not (rootfs_template / "written").exists()
    assert os.listdir(root) == []  # nothing left mounted on the bundle's rootfs dir
