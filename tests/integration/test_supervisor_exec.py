"""Exec through the control socket: pipes or a pty, exit codes, start errors, records, resize."""

import json
import socket
import time

import pytest

from engine.runtime import control
from tests.integration.supervisor_harness import (BUSYBOX, demux, fake_runs, joined, make_bundle, read_until,  # noqa: F401
                                                  read_until_eof, wait_exit, wait_for)

pytestmark = pytest.mark.root


def exec_msg(exec_id, args, tty=False, stdin=False, detach=False, size=None):
    process = {"args": args, "env": ["PATH=/bin:/usr/bin"], "cwd": "/", "terminal": tty,
               "user": {"uid": 0, "gid": 0}}
    if size:
        process["consoleSize"] = {"height": size[0], "width": size[1]}
    return {"op": "exec", "id": exec_id, "process": process, "stdin": stdin, "stdout": True, "stderr": True,
            "framed": not tty, "detach": detach}


def run_exec(bundle, msg):
    ours, theirs = socket.socketpair()
    reply = control.request(bundle, msg, [] if msg["detach"] else [theirs.fileno()])
    theirs.close()
    return reply, ours


def record(bundle, exec_id):
    return json.loads((bundle / "execs" / f"{exec_id}.json").read_text())


@pytest.fixture
def container(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sleep", "60"])
    fake_runs.start(bundle)
    yield bundle
    control.request(bundle, {"op": "kill", "signal": 9, "all": False})
    wait_exit(bundle)


def test_exec_without_tty_frames_streams_and_records_the_exit_code(container):
    reply, sock = run_exec(container, exec_msg("e1", [BUSYBOX, "sh", "-c", "echo o; echo e >&2; exit 7"]))
    assert reply["ok"] is True and reply["pid"] > 0
    frames = demux(read_until_eof(sock))
    assert joined(frames, 1) == b"o\n" and joined(frames, 2) == b"e\n"
    assert record(container, "e1") == {"pid": reply["pid"], "running": False, "exit_code": 7}


def test_exec_runs_in_the_container_pid_namespace(container):
    _, sock = run_exec(container, exec_msg("e2", [BUSYBOX, "sh", "-c", "echo $$; kill -0 1 && echo init-visible"]))
    out = joined(demux(read_until_eof(sock)), 1).split()
    assert int(out[0]) > 1 and out[1] == b"init-visible"


def test_exec_stdin_is_delivered_and_its_eof_ends_the_exec(container):
    reply, sock = run_exec(container, exec_msg("e3", [BUSYBOX, "cat"], stdin=True))
    sock.sendall(b"to cat\n")
    sock.shutdown(socket.SHUT_WR)
    assert joined(demux(read_until_eof(sock)), 1) == b"to cat\n"
    assert wait_for(lambda: not record(container, "e3")["running"]) and record(container, "e3")["exit_code"] == 0


def test_exec_with_tty_is_raw_and_resize_changes_stty_size(container):
    reply, sock = run_exec(container, exec_msg("e4", [BUSYBOX, "sh"], tty=True, stdin=True, size=(24, 80)))
    assert reply["ok"]
    sock.sendall(b"stty size\n")
    read_until(sock, b"24 80\r\n")
    assert control.request(container, {"op": "resize", "exec": "e4", "height": 33, "width": 111})["ok"]
    sock.sendall(b"stty size; exit 4\n")
    assert b"33 111\r\n" in read_until_eof(sock)
    assert record(container, "e4")["exit_code"] == 4


def test_resize_before_the_exec_starts_is_applied_at_start(container):
    assert control.request(container, {"op": "resize", "exec": "e5", "height": 12, "width": 34})["ok"]
    _, sock = run_exec(container, exec_msg("e5", [BUSYBOX, "stty", "size"], tty=True, size=(24, 80)))
    assert read_until_eof(sock) == b"12 34\r\n"


def test_exec_of_a_missing_command_writes_the_error_into_the_stream_with_127(container):
    reply, sock = run_exec(container, exec_msg("e6", ["nosuchcmd"]))
    assert reply["ok"] is True
    frames = demux(read_until_eof(sock))
    assert frames == [(1, b'exec: "nosuchcmd": No such file or directory\r\n')]
    assert record(container, "e6")["exit_code"] == 127


def test_detached_exec_runs_without_a_connection(container):
    reply, _ = run_exec(container, exec_msg("e7", [BUSYBOX, "sh", "-c", "echo discarded; exit 2"], detach=True))
    assert reply["ok"]
    wait_for(lambda: not record(container, "e7")["running"], what="detached exec to finish")
    assert record(container, "e7")["exit_code"] == 2


def test_exec_record_says_running_while_it_runs(container):
    reply, sock = run_exec(container, exec_msg("e8", [BUSYBOX, "sleep", "30"]))
    assert record(container, "e8") == {"pid": reply["pid"], "running": True, "exit_code": None}
    assert control.request(container, {"op": "exec", "id": "e8", "process": {"args": ["true"]}}) == {
        "ok": False, "error": "bad or duplicate exec id 'e8'"}
    sock.close()


def test_execs_die_with_the_container_and_are_recorded(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sleep", "60"])
    fake_runs.start(bundle)
    _, sock = run_exec(bundle, exec_msg("long", [BUSYBOX, "sleep", "60"]))
    assert control.request(bundle, {"op": "kill", "signal": 9, "all": False}) == {"ok": True}
    assert read_until_eof(sock) == b""
    assert wait_exit(bundle)["exit_code"] == 137
    assert record(bundle, "long")["running"] is False and record(bundle, "long")["exit_code"] == 137
