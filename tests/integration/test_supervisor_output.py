"""Container output reaches the json log and attached clients, framed with stdout and stderr apart."""

import json
import os
import socket

import pytest

from engine.runtime.control import Attach
from engine.runtime.logfile import read_entries
from tests.integration.supervisor_harness import BUSYBOX, demux, fake_runs, joined, make_bundle, read_until_eof, wait_exit  # noqa: F401

pytestmark = pytest.mark.root


def test_output_goes_to_the_log_and_to_a_framed_client_with_streams_apart(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 3"])
    ours, theirs = socket.socketpair()
    started = fake_runs.start(bundle, [Attach(theirs.fileno(), False, True, True, True)])
    theirs.close()
    frames = demux(read_until_eof(ours))
    assert joined(frames, 1) == b"out1\nout2\n"
    assert joined(frames, 2) == b"err1\n"
    exit_record = wait_exit(bundle)
    assert exit_record["exit_code"] == 3 and exit_record["error"] == "" and exit_record["oom_killed"] is False
    entries = [(s, d) for s, d, _ in read_entries(bundle / "container-json.log")]
    assert sorted(entries) == sorted([("stdout", b"out1\n"), ("stderr", b"err1\n"), ("stdout", b"out2\n")])
    sup = json.loads((bundle / "supervisor.json").read_text())
    assert sup["pid"] == started.supervisor_pid and sup["init_pid"] == started.init_pid and sup["started_ns"] > 0
    assert not (bundle / "control.sock").exists()


def test_a_client_that_wants_only_stdout_gets_only_stdout(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "echo out; echo err >&2"])
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), False, True, False, True)])
    theirs.close()
    assert demux(read_until_eof(ours)) == [(1, b"out\n")]


def test_unterminated_last_line_is_logged_at_exit(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "printf 'a\\nno newline'"])
    fake_runs.start(bundle)
    assert wait_exit(bundle)["exit_code"] == 0
    assert [d for _, d, _ in read_entries(bundle / "container-json.log")] == [b"a\n", b"no newline"]


def test_the_container_runs_as_pid_1_of_its_own_pid_namespace(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "echo $$"])
    started = fake_runs.start(bundle)
    wait_exit(bundle)
    assert [d for _, d, _ in read_entries(bundle / "container-json.log")] == [b"1\n"]
    assert started.init_pid != 1


def test_a_client_that_stops_reading_is_dropped_and_the_container_finishes(fake_runs):
    # 20 MB of output to a client that never reads: the supervisor must not block on it.
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c",
                                          "yes 0123456789abcdefghi | head -n 1000000; echo done"])
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), False, True, True, True)])
    theirs.close()
    assert wait_exit(bundle, timeout=60)["exit_code"] == 0
    entries = list(read_entries(bundle / "container-json.log", tail=1))
    assert entries[0][1] == b"done\n"
    ours.close()


def test_a_client_that_disconnects_does_not_disturb_the_container(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "sleep 0.3; echo still here"])
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), False, True, True, True)])
    theirs.close()
    ours.close()
    assert wait_exit(bundle)["exit_code"] == 0
    assert [d for _, d, _ in read_entries(bundle / "container-json.log")] == [b"still here\n"]


def test_supervisor_leaks_no_client_fd_into_the_container(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "ls /proc/self/fd | wc -l"])
    ours, theirs = socket.socketpair()
    fake_runs.start(bundle, [Attach(theirs.fileno(), False, True, True, True)])
    theirs.close()
    frames = demux(read_until_eof(ours))
    # 0, 1, 2 and the fd ls itself opens for the directory
    assert joined(frames, 1).strip() == b"4"
    os.close(ours.detach())


def test_a_silent_container_has_its_log_file_from_the_start(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sleep", "60"])
    fake_runs.start(bundle)
    assert (bundle / "container-json.log").exists()
    assert list(read_entries(bundle / "container-json.log")) == []
