"""The supervisor drops a finished exec from memory once its exit is on disk: many execs stay bounded."""

import json
import socket

import pytest

from engine.runtime import control
from tests.integration.supervisor_harness import (BUSYBOX, demux, fake_runs, joined, make_bundle,  # noqa: F401
                                                  read_until_eof, wait_exit, wait_for)

pytestmark = pytest.mark.root


def exec_msg(exec_id, args, detach=False, tty=False):
    process = {"args": args, "env": ["PATH=/bin:/usr/bin"], "cwd": "/", "terminal": tty,
               "user": {"uid": 0, "gid": 0}}
    return {"op": "exec", "id": exec_id, "process": process, "stdin": False, "stdout": True, "stderr": True,
            "framed": not tty, "detach": detach}


def held_execs(bundle):
    return control.request(bundle, {"op": "stats"})["execs"]


def record(bundle, exec_id):
    return json.loads((bundle / "execs" / f"{exec_id}.json").read_text())


@pytest.fixture
def container(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sleep", "60"])
    fake_runs.start(bundle)
    yield bundle
    control.request(bundle, {"op": "kill", "signal": 9, "all": False})
    wait_exit(bundle)


def test_many_attached_execs_leave_no_record_in_memory(container):
    for i in range(40):
        ours, theirs = socket.socketpair()
        reply = control.request(container, exec_msg(f"probe{i}", [BUSYBOX, "sh", "-c", f"echo {i}; exit {i % 3}"]),
                                [theirs.fileno()])
        theirs.close()
        assert reply["ok"]
        assert joined(demux(read_until_eof(ours)), 1) == f"{i}\n".encode()
        ours.close()
        # The exit is on disk, where the daemon (docker exec inspect, health probes) reads it.
        assert wait_for(lambda i=i: not record(container, f"probe{i}")["running"])
        assert record(container, f"probe{i}")["exit_code"] == i % 3
    assert wait_for(lambda: held_execs(container) == 0)


def test_detached_execs_are_forgotten_once_they_exit(container):
    for i in range(20):
        assert control.request(container, exec_msg(f"d{i}", [BUSYBOX, "true"], detach=True))["ok"]
    assert wait_for(lambda: all(not record(container, f"d{i}")["running"] for i in range(20)))
    assert wait_for(lambda: held_execs(container) == 0)


def test_a_running_exec_is_kept_until_it_ends(container):
    ours, theirs = socket.socketpair()
    assert control.request(container, exec_msg("slow", [BUSYBOX, "sh", "-c", "sleep 0.5; echo done"]),
                           [theirs.fileno()])["ok"]
    theirs.close()
    assert held_execs(container) == 1
    assert joined(demux(read_until_eof(ours)), 1) == b"done\n"
    assert wait_for(lambda: held_execs(container) == 0)
    assert record(container, "slow")["exit_code"] == 0


def test_a_forgotten_exec_id_cannot_run_again_and_a_late_resize_is_harmless(container):
    assert control.request(container, exec_msg("once", [BUSYBOX, "true"], detach=True))["ok"]
    assert wait_for(lambda: held_execs(container) == 0 and not record(container, "once")["running"])
    again = control.request(container, exec_msg("once", [BUSYBOX, "true"], detach=True))
    assert again["ok"] is False and "duplicate exec id" in again["error"]
    assert control.request(container, {"op": "resize", "exec": "once", "height": 10, "width": 20})["ok"]
    assert control.request(container, {"op": "stats"})["pending_resizes"] == 0


def test_execs_running_when_the_container_dies_are_all_recorded(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sleep", "60"])
    fake_runs.start(bundle)
    socks = []
    for i in range(5):
        ours, theirs = socket.socketpair()
        assert control.request(bundle, exec_msg(f"a{i}", [BUSYBOX, "sleep", "60"]), [theirs.fileno()])["ok"]
        theirs.close()
        socks.append(ours)
    for i in range(5):
        assert control.request(bundle, exec_msg(f"d{i}", [BUSYBOX, "sleep", "60"], detach=True))["ok"]
    assert held_execs(bundle) == 10
    control.request(bundle, {"op": "kill", "signal": 9, "all": False})
    assert wait_exit(bundle)["exit_code"] == 137
    for name in [f"a{i}" for i in range(5)] + [f"d{i}" for i in range(5)]:
        assert record(bundle, name)["running"] is False, name
    for s in socks:
        s.close()
