"""A container with a terminal: raw output with the pty's echo, size from consoleSize, resize."""

import socket

import pytest

from engine.runtime import control
from engine.runtime.control import Attach
from tests.integration.supervisor_harness import BUSYBOX, fake_runs, make_bundle, read_until, read_until_eof, wait_exit  # noqa: F401
from engine.runtime.logfile import read_entries

pytestmark = pytest.mark.root


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
