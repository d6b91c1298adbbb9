"""Stdin from attached clients reaches the container, pending bytes first; stdin_once closes it at EOF."""

import socket

import pytest

from engine.runtime import control
from engine.runtime.control import Attach
from tests.integration.supervisor_harness import BUSYBOX, demux, fake_runs, joined, make_bundle, read_until_eof, wait_exit  # noqa: F401

pytestmark = pytest.mark.root


def test_pending_and_later_stdin_reach_cat_and_eof_ends_it_with_stdin_once(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "cat"], open_stdin=True, stdin_once=True)
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), True, True, True, True, pending=b"early ")])
    theirs.close()
    ours.sendall(b"late\n")
    ours.shutdown(socket.SHUT_WR)  # half-close: output must keep coming
    frames = demux(read_until_eof(ours))
    assert joined(frames, 1) == b"early late\n"
    assert wait_exit(bundle)["exit_code"] == 0


def test_without_stdin_once_eof_from_one_client_leaves_stdin_open(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "cat"], open_stdin=True, stdin_once=False)
    first, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), True, True, True, True)])
    theirs.close()
    first.sendall(b"one\n")
    first.shutdown(socket.SHUT_WR)
    first.settimeout(5)
    assert demux(first.recv(100)) == [(1, b"one\n")]
    # cat is still running: a second client attaches through the control socket and is heard
    second, theirs = socket.socketpair()
    assert control.request(bundle, {"op": "attach", "stdin": True, "stdout": True, "stderr": True,
                                    "framed": False, "pending": ""}, [theirs.fileno()]) == {"ok": True}
    theirs.close()
    second.sendall(b"two\n")
    second.settimeout(5)
    assert second.recv(100) == b"two\n"  # raw: framed=False
    assert first.recv(100) == b"\x01\x00\x00\x00\x00\x00\x00\x04two\n"  # both clients see the output
    assert control.request(bundle, {"op": "kill", "signal": 9, "all": False}) == {"ok": True}
    assert wait_exit(bundle)["exit_code"] == 137
    assert read_until_eof(first) == b"" and read_until_eof(second) == b""


def test_stdin_of_a_container_without_open_stdin_is_dev_null(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "cat; echo eof"], open_stdin=False)
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), True, True, True, True, pending=b"ignored\n")])
    theirs.close()
    assert joined(demux(read_until_eof(ours)), 1) == b"eof\n"
