"""With a terminal, the init makes its pty in the container's devpts: /dev/pts/N, controlling tty, /dev/console."""

import pytest

from engine.runtime.caps import DEFAULT_CAPS
from tests.integration.runtime_harness import (  # noqa: F401
    Container, bundle, default_bpf, default_spec, exec_in, rootfs_template, run,
)

pytestmark = pytest.mark.root


def tty_spec(args, **kwargs):
    spec = default_spec(args, **kwargs)
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    return spec


def test_terminal_is_the_containers_pts_0_controlling_tty_and_console(bundle, default_bpf):
    spec = tty_spec(["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo istty; stty size; "
                                 "[ /dev/console -ef /dev/pts/0 ] && echo console-is-pts0; "
                                 "ps -o pid,tty | grep '^ *1 '"])  # fmt: skip
    res = run(bundle, spec, default_bpf, tty=True)
    assert res.error == "" and res.exit_code == 0, res.text
    lines = res.text.replace("\r", "").splitlines()
    assert lines[:4] == ["/dev/pts/0", "istty", "30 100", "console-is-pts0"]
    assert lines[4].split()[1] != "?"  # pid 1 has a controlling terminal


def test_terminal_belongs_to_the_process_user_and_group_tty(bundle, default_bpf):
    spec = tty_spec(["sh", "-c", "ls -ln /dev/pts/0; echo hi > /dev/pts/0"], uid=1000, gid=1000)
    res = run(bundle, spec, default_bpf, tty=True)
    assert res.error == "" and res.exit_code == 0, res.text
    lines = res.text.replace("\r", "").splitlines()
    assert lines[0].split()[:4] == ["crw--w----", "1", "1000", "5"]
    assert lines[1] == "hi"  # the user can reopen its own terminal


def test_terminal_group_is_the_images_tty_group(bundle, default_bpf):
    (bundle / "rootfs" / "etc" / "group").write_text("root:x:0:\ntty:x:7:\n")
    res = run(bundle, tty_spec(["sh", "-c", "ls -ln /dev/pts/0"]), default_bpf, tty=True)
    assert res.error == "" and res.exit_code == 0, res.text
    assert res.text.split()[2:4] == ["0", "7"]


def test_the_master_does_not_leak_into_the_container(bundle, default_bpf):
    # Only 0, 1, 2 (the slave) and the fd ls uses itself: the master went to the supervisor.
    res = run(bundle, tty_spec(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]), default_bpf, tty=True)
    assert res.error == "" and res.exit_code == 0, res.text
    assert res.text.split() == ["0", "1", "2", "3"]


def test_exec_with_a_terminal_gets_another_pts_of_the_container(bundle, default_bpf):
    spec = tty_spec(["sh", "-c", "echo ready; exec sleep 60"])
    c = Container(bundle, spec, default_bpf, tty=True)
    try:
        c.read_until(b"ready")
        caps = list(DEFAULT_CAPS)
        process = {"args": ["sh", "-c", "tty; stty size; [ -t 0 ] && echo istty; ps -o pid,tty | grep '^ *1 '"],
                   "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": True,
                   "consoleSize": {"height": 12, "width": 34},
                   "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}  # fmt: skip
        res = exec_in(c, spec, process, default_bpf, tty=True)
    finally:
        c.kill()
        c.wait()
    assert res.error == "" and res.exit_code == 0, res.text
    lines = res.text.replace("\r", "").splitlines()
    assert lines[:3] == ["/dev/pts/1", "12 34", "istty"]
    assert lines[3].split()[1] in ("pts/0", "136,0")  # the init keeps its own terminal (busybox prints maj,min)


def test_an_exec_that_fails_before_its_terminal_reports_the_error(bundle, default_bpf):
    c = Container(bundle, default_spec(["sh", "-c", "echo ready; exec sleep 60"]), default_bpf)
    try:
        c.read_until(b"ready")
        process = {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                   "terminal": True}  # fmt: skip
        spec = default_spec(["sh"])
        spec["linux"]["cgroupsPath"] = "dockweb-test-no-such-parent/none"  # joining it fails first
        res = exec_in(c, spec, process, default_bpf, tty=True)
    finally:
        c.kill()
        c.wait()
    assert res.exit_code == 127 and "cgroup" in res.error, res.error


def test_without_terminal_there_is_no_console(bundle, default_bpf):
    res = run(bundle, default_spec(["sh", "-c", "[ -t 1 ] || echo notty; ls /dev/console"]), default_bpf)
    assert res.text.startswith("notty\n") and "No such file" in res.text
