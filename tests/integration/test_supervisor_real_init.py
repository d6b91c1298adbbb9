"""The supervisor with the real init: an isolated busybox container, exec into it, cgroup cleanup."""

import json
import shutil
import socket

import pytest

from engine.errors import ContainerStartError
from engine.runtime import control
from engine.runtime.control import Attach
from engine.runtime.logfile import read_entries
from tests.integration.supervisor_harness import (demux, joined, read_until, read_until_eof, real_runs,  # noqa: F401
                                                  wait_exit)

pytestmark = pytest.mark.root

try:
    from tests.integration.runtime_harness import cgroup_parent, default_spec, make_rootfs  # noqa: F401
except ImportError:  # engine/runtime/init.py not there yet: real_runs skips
    pass


@pytest.fixture(scope="module")
def rootfs_template(tmp_path_factory):
    return make_rootfs(tmp_path_factory.mktemp("sup-rootfs") / "rootfs")


def real_bundle(runs, template, parent, args, *, terminal=False, open_stdin=False, stdin_once=False):
    cid = f"c{len(runs.started)}x{parent[-8:]}"
    bundle = runs.root / "containers" / cid
    bundle.mkdir(parents=True)
    shutil.copytree(template, bundle / "rootfs", symlinks=True)
    spec = default_spec(args, cgroups_path=f"{parent}/{cid}")
    spec["hostname"] = cid
    spec["process"]["terminal"] = terminal
    (bundle / "config.json").write_text(json.dumps(spec))
    (bundle / "runtime.json").write_text(json.dumps({
        "id": cid, "log_path": str(bundle / "container-json.log"), "log_max_size": 0, "log_max_files": 1,
        "open_stdin": open_stdin, "stdin_once": stdin_once}))
    return bundle, spec


def cgroup_dirs(spec):
    from engine.runtime.cgroups import Cgroup

    return Cgroup.open(spec["linux"]["cgroupsPath"]).dirs()


def test_isolated_container_output_log_exit_and_cgroup_removal(cgroup_parent, rootfs_template, real_runs):
    bundle, spec = real_bundle(real_runs, rootfs_template, cgroup_parent,
                               ["sh", "-c", "echo pid=$$ host=$(hostname); echo oops >&2; exit 3"])
    ours, theirs = socket.socketpair()
    real_runs.start(bundle, [Attach(theirs.fileno(), False, True, True, True)])
    theirs.close()
    frames = demux(read_until_eof(ours))
    assert joined(frames, 1) == f"pid=1 host={bundle.name}\n".encode()
    assert joined(frames, 2) == b"oops\n"
    record = wait_exit(bundle)
    assert record["exit_code"] == 3 and record["oom_killed"] is False
    assert sorted(d for _, d, _ in read_entries(bundle / "container-json.log")) == sorted(
        [f"pid=1 host={bundle.name}\n".encode(), b"oops\n"])
    assert not any(__import__("os").path.isdir(d) for d in cgroup_dirs(spec))
    assert (real_runs.root / "run" / "seccomp").is_dir()  # compiled once, cached for the next start


def test_start_error_from_the_real_init_reaches_the_caller(cgroup_parent, rootfs_template, real_runs):
    bundle, spec = real_bundle(real_runs, rootfs_template, cgroup_parent, ["nosuchcmd"])
    with pytest.raises(ContainerStartError, match='"nosuchcmd": executable file not found in \\$PATH'):
        real_runs.start(bundle)
    record = json.loads((bundle / "exit.json").read_text())
    assert record["exit_code"] == 127 and "nosuchcmd" in record["error"]
    assert not any(__import__("os").path.isdir(d) for d in cgroup_dirs(spec))


def test_exec_into_the_real_container_with_and_without_tty(cgroup_parent, rootfs_template, real_runs):
    bundle, spec = real_bundle(real_runs, rootfs_template, cgroup_parent, ["sleep", "60"])
    real_runs.start(bundle)
    process = {"args": ["sh", "-c", "echo $(hostname) $$; cat /proc/1/cmdline; exit 6"], "env": spec["process"]["env"],
               "cwd": "/", "terminal": False, "user": {"uid": 0, "gid": 0},
               "capabilities": spec["process"]["capabilities"]}
    ours, theirs = socket.socketpair()
    reply = control.request(bundle, {"op": "exec", "id": "x1", "process": process, "stdin": False, "stdout": True,
                                     "stderr": True, "framed": True, "detach": False}, [theirs.fileno()])
    theirs.close()
    assert reply["ok"]
    out = joined(demux(read_until_eof(ours)), 1)
    assert out.startswith(f"{bundle.name} ".encode()) and out.endswith(b"sleep\x0060\x00")
    assert json.loads((bundle / "execs" / "x1.json").read_text())["exit_code"] == 6

    tty = dict(process, args=["sh"], terminal=True, consoleSize={"height": 24, "width": 80})
    ours, theirs = socket.socketpair()
    assert control.request(bundle, {"op": "exec", "id": "x2", "process": tty, "stdin": True, "stdout": True,
                                    "stderr": True, "framed": False, "detach": False}, [theirs.fileno()])["ok"]
    theirs.close()
    ours.sendall(b"stty size\n")
    read_until(ours, b"24 80\r\n")
    assert control.request(bundle, {"op": "resize", "exec": "x2", "height": 40, "width": 120})["ok"]
    ours.sendall(b"stty size; [ -t 0 ] && echo is-a-tty; exit\n")
    out = read_until_eof(ours)
    assert b"40 120\r\n" in out and b"is-a-tty\r\n" in out

    ours, theirs = socket.socketpair()
    missing = dict(process, args=["nosuch"])
    assert control.request(bundle, {"op": "exec", "id": "x3", "process": missing, "stdin": False, "stdout": True,
                                    "stderr": True, "framed": True, "detach": False}, [theirs.fileno()])["ok"]
    theirs.close()
    frames = demux(read_until_eof(ours))
    assert frames[0][0] == 1 and frames[0][1].endswith(b"executable file not found in $PATH\r\n")
    assert json.loads((bundle / "execs" / "x3.json").read_text())["exit_code"] == 127

    assert control.request(bundle, {"op": "kill", "signal": 9, "all": True}) == {"ok": True}
    assert wait_exit(bundle)["exit_code"] == 137
    assert not any(__import__("os").path.isdir(d) for d in cgroup_dirs(spec))


def test_real_tty_container_echoes_and_exits(cgroup_parent, rootfs_template, real_runs):
    bundle, spec = real_bundle(real_runs, rootfs_template, cgroup_parent, ["sh"], terminal=True, open_stdin=True)
    ours, theirs = socket.socketpair()
    real_runs.start(bundle, [Attach(theirs.fileno(), True, True, True, False, pending=b"echo hi-$((1+1))\n")])
    theirs.close()
    read_until(ours, b"hi-2\r\n")
    ours.sendall(b"exit 2\n")
    out = read_until_eof(ours)
    assert wait_exit(bundle)["exit_code"] == 2
    assert b"exit 2" in out  # echoed by the pty
