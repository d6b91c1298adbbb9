"""A container with a terminal: raw output with the pty's echo, size from consoleSize, resize, the init's own pts."""

import json
import shutil
import socket

import pytest

from engine.runtime import control
from engine.runtime.control import Attach
from engine.runtime.logfile import read_entries
from tests.integration.runtime_harness import cgroup_parent, default_spec, make_rootfs  # noqa: F401
from tests.integration.supervisor_harness import (BUSYBOX, fake_runs, make_bundle, read_until,  # noqa: F401
                                                  read_until_eof, real_runs, wait_exit)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory):
    return make_rootfs(tmp_path_factory.mktemp("tty-rootfs") / "rootfs")


def real_tty_bundle(runs, template, parent, args):
    """A bundle for the real init: busybox rootfs, Docker's spec, a terminal of 30x100, stdin open."""
    cid = f"t{len(runs.started)}x{parent[-8:]}"
    bundle = runs.root / "containers" / cid
    bundle.mkdir(parents=True)
    shutil.copytree(template, bundle / "rootfs", symlinks=True)
    spec = default_spec(args, cgroups_path=f"{parent}/{cid}")
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    (bundle / "config.json").write_text(json.dumps(spec))
    (bundle / "runtime.json").write_text(json.dumps({
        "id": cid, "log_path": str(bundle / "container-json.log"), "log_max_size": 0, "log_max_files": 1,
        "open_stdin": True, "stdin_once": False}))
    return bundle, spec


def test_tty_output_is_raw_with_echo_and_logged_as_stdout(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh"], terminal=True, open_stdin=True, console=(30, 100))
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), True, True, True, False)])
    theirs.close()
    ours.sendall(b"stty size; echo $((6*7))\n")
    out = read_until(ours, b"42\r\n")
    assert b"stty size; echo $((6*7))\r\n" in out  # the line discipline's echo
    assert b"30 100\r\n" in out
    assert control.request(bundle, {"op": "resize", "exec": None, "height": 20, "width": 60}) == {"ok": True}
    ours.sendall(b"stty size; exit 5\n")
    out = read_until_eof(ours)
    assert b"20 60\r\n" in out
    assert wait_exit(bundle)["exit_code"] == 5
    entries = list(read_entries(bundle / "container-json.log"))
    assert {s for s, _, _ in entries} == {"stdout"}
    assert b"42\r\n" in b"".join(d for _, d, _ in entries)


def test_detach_keys_end_the_attach_and_leave_the_container_running(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh"], terminal=True, open_stdin=True, stdin_once=True)
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), True, True, True, False)])
    theirs.close()
    ours.sendall(b"echo one\n")
    read_until(ours, b"one\r\n")
    ours.sendall(b"\x10\x11")
    read_until_eof(ours)  # the supervisor closed this attach
    assert control.request(bundle, {"op": "ping"})["running"] is True
    again, theirs = socket.socketpair()
    assert control.request(bundle, {"op": "attach", "stdin": True, "stdout": True, "stderr": True, "framed": False,
                                    "pending": ""}, [theirs.fileno()])["ok"]
    theirs.close()
    again.sendall(b"echo two; exit 3\n")
    assert b"two\r\n" in read_until_eof(again)
    assert wait_exit(bundle)["exit_code"] == 3


def test_real_init_and_exec_get_their_own_pts_of_the_container(cgroup_parent, rootfs_template, real_runs):
    bundle, spec = real_tty_bundle(real_runs, rootfs_template, cgroup_parent, ["sh"])
    ours, theirs = socket.socketpair()
    real_runs.start(bundle, [Attach(theirs.fileno(), True, True, True, False, pending=b"tty; stty size\n")])
    theirs.close()
    out = read_until(ours, b"30 100\r\n")
    assert b"/dev/pts/0\r\n" in out

    # A resize that arrives before its exec (the CLI races them) still applies to the exec's terminal.
    assert control.request(bundle, {"op": "resize", "exec": "e1", "height": 11, "width": 22}) == {"ok": True}
    process = {"args": ["sh", "-c", "tty; stty size; [ -t 0 ] && echo istty"], "env": spec["process"]["env"],
               "cwd": "/", "terminal": True, "consoleSize": {"height": 24, "width": 80},
               "user": {"uid": 0, "gid": 0}, "capabilities": spec["process"]["capabilities"]}  # fmt: skip
    exec_sock, theirs = socket.socketpair()
    assert control.request(bundle, {"op": "exec", "id": "e1", "process": process, "stdin": True, "stdout": True,
                                    "stderr": True, "framed": False, "detach": False}, [theirs.fileno()])["ok"]
    theirs.close()
    lines = read_until_eof(exec_sock).replace(b"\r", b"").decode().splitlines()
    assert lines[0].startswith("/dev/pts/") and lines[0] != "/dev/pts/0"
    assert lines[1:] == ["11 22", "istty"]
    assert json.loads((bundle / "execs" / "e1.json").read_text())["exit_code"] == 0

    ours.sendall(b"exit 4\n")
    read_until_eof(ours)
    assert wait_exit(bundle)["exit_code"] == 4


def test_real_tty_exec_that_fails_reports_its_error_in_the_stream(cgroup_parent, rootfs_template, real_runs):
    bundle, spec = real_tty_bundle(real_runs, rootfs_template, cgroup_parent, ["sleep", "60"])
    real_runs.start(bundle)
    process = {"args": ["nosuch"], "env": spec["process"]["env"], "cwd": "/", "terminal": True,
               "user": {"uid": 0, "gid": 0}, "capabilities": spec["process"]["capabilities"]}  # fmt: skip
    exec_sock, theirs = socket.socketpair()
    assert control.request(bundle, {"op": "exec", "id": "e2", "process": process, "stdin": True, "stdout": True,
                                    "stderr": True, "framed": False, "detach": False}, [theirs.fileno()])["ok"]
    theirs.close()
    assert read_until_eof(exec_sock).endswith(b'exec: "nosuch": executable file not found in $PATH\r\n')
    assert json.loads((bundle / "execs" / "e2.json").read_text())["exit_code"] == 127
    assert control.request(bundle, {"op": "kill", "signal": 9, "all": True}) == {"ok": True}
    assert wait_exit(bundle)["exit_code"] == 137


def test_real_tty_container_start_error_reaches_the_caller(cgroup_parent, rootfs_template, real_runs):
    from engine.errors import ContainerStartError

    bundle, _ = real_tty_bundle(real_runs, rootfs_template, cgroup_parent, ["nosuchcmd"])
    with pytest.raises(ContainerStartError, match='"nosuchcmd": executable file not found'):
        real_runs.start(bundle)
    assert json.loads((bundle / "exit.json").read_text())["exit_code"] == 127
