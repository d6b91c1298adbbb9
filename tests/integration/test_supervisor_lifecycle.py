"""Supervisor lifecycle: start errors, kill, surviving the launcher, reaping, ping, concurrent starts, log rotation."""

import json
import os
import signal
import threading

import pytest

from engine.errors import ContainerNotRunning, ContainerStartError
from engine.runtime import control
from engine.runtime.logfile import log_files, read_entries
from tests.integration.supervisor_harness import BUSYBOX, fake_runs, is_alive, make_bundle, wait_exit, wait_for  # noqa: F401

pytestmark = pytest.mark.root


def test_a_missing_executable_fails_start_with_the_init_message_and_exit_127(fake_runs):
    bundle = make_bundle(fake_runs.root, ["/nonexistent/cmd"])
    with pytest.raises(ContainerStartError, match='exec: "/nonexistent/cmd": No such file or directory'):
        fake_runs.start(bundle)
    record = json.loads((bundle / "exit.json").read_text())
    assert record["exit_code"] == 127 and "No such file" in record["error"]
    assert not (bundle / "control.sock").exists() and not (bundle / "supervisor.json").exists()


def test_kill_with_sigkill_exits_137_and_later_requests_find_no_container(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sleep", "60"])
    started = fake_runs.start(bundle)
    assert control.request(bundle, {"op": "ping"}) == {"ok": True, "init_pid": started.init_pid, "running": True}
    assert control.request(bundle, {"op": "kill", "signal": int(signal.SIGKILL), "all": False}) == {"ok": True}
    assert wait_exit(bundle)["exit_code"] == 137
    wait_for(lambda: not is_alive(started.supervisor_pid), what="the supervisor to exit")
    with pytest.raises(ContainerNotRunning):
        control.request(bundle, {"op": "ping"})


def test_a_signal_the_init_handles_gives_its_exit_code(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done"])
    fake_runs.start(bundle)

    def terminate():
        # pid 1 ignores SIGTERM until its trap is set: repeat until the container is gone
        try:
            control.request(bundle, {"op": "kill", "signal": 15, "all": False})
        except ContainerNotRunning:
            return True
        return (bundle / "exit.json").exists()

    wait_for(terminate, what="the trap to run")
    assert wait_exit(bundle)["exit_code"] == 42


def test_supervisor_survives_kill_9_of_the_launcher_and_still_records_the_exit(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "sleep 0.5; echo after; exit 9"])
    started = fake_runs.start(bundle)
    os.kill(fake_runs.launcher.pid, signal.SIGKILL)
    fake_runs.launcher.proc.wait()
    assert wait_exit(bundle)["exit_code"] == 9
    assert [d for _, d, _ in read_entries(bundle / "container-json.log")] == [b"after\n"]
    wait_for(lambda: not is_alive(started.supervisor_pid), what="the supervisor to exit")
    # the Launcher replaces its dead process on the next start
    again = make_bundle(fake_runs.root, [BUSYBOX, "true"])
    fake_runs.start(again)
    assert wait_exit(again)["exit_code"] == 0


def test_the_supervisor_has_its_own_session_and_is_not_the_daemons_child(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sleep", "60"])
    started = fake_runs.start(bundle)
    with open(f"/proc/{started.supervisor_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ppid, pgid, sid = int(fields[1]), int(fields[2]), int(fields[3])
    assert ppid != os.getpid()
    assert sid == pgid == started.supervisor_pid  # a signal to our process group or session never reaches it
    control.request(bundle, {"op": "kill", "signal": 9, "all": False})
    wait_exit(bundle)


def test_an_exited_supervisor_leaves_no_zombie_behind(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "true"])
    started = fake_runs.start(bundle)
    assert wait_exit(bundle)["exit_code"] == 0
    wait_for(lambda: not os.path.exists(f"/proc/{started.supervisor_pid}"), what="the supervisor to be reaped")


def test_starts_from_many_threads_at_once_all_succeed(fake_runs):
    bundles = [make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", f"echo {i}"]) for i in range(8)]
    results = {}

    def start(i):
        try:
            results[i] = fake_runs.start(bundles[i])
        except Exception as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(not isinstance(r, Exception) for r in results.values()), results
    assert len({r.init_pid for r in results.values()}) == 8
    for i, bundle in enumerate(bundles):
        assert wait_exit(bundle)["exit_code"] == 0
        assert [d for _, d, _ in read_entries(bundle / "container-json.log")] == [f"{i}\n".encode()]


def test_container_log_rotates_at_max_size(fake_runs):
    bundle = make_bundle(fake_runs.root, [BUSYBOX, "sh", "-c", "seq 1 5000"], log_max_size=8000, log_max_files=3)
    fake_runs.start(bundle)
    assert wait_exit(bundle)["exit_code"] == 0
    files = log_files(bundle / "container-json.log")
    assert [f.name for f in files] == ["container-json.log.2", "container-json.log.1", "container-json.log"]
    assert all(f.stat().st_size <= 8000 for f in files)
    numbers = [int(d) for _, d, _ in read_entries(bundle / "container-json.log")]
    assert numbers[-1] == 5000 and numbers == list(range(numbers[0], 5001))
