"""Crashes leave nothing behind: a killed supervisor or daemon is cleaned up after."""

import json
import os
import signal
import time

import pytest

from tests.integration.polling import wait_for

pytestmark = [pytest.mark.root, pytest.mark.integration]


def supervisor_pid(engine, name):
    cid = engine.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    with open(os.path.join(engine.root, "containers", cid, "supervisor.json")) as f:
        return cid, json.load(f)["pid"]


def cgroup_dirs(engine, cid):
    return [d for d in ("memory", "pids", "freezer", "cpu")
            if os.path.isdir(f"/sys/fs/cgroup/{d}/{engine.cgroup_parent}/{cid}")]



def test_killed_supervisor_marks_the_container_exited_and_removes_its_cgroup(engine):
    d = engine.docker
    d("run", "-d", "--name", "orphan", "busybox", "sleep", "100")
    try:
        cid, pid = supervisor_pid(engine, "orphan")
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: json.loads(d("inspect", "orphan").stdout)[0]["State"]["Status"] == "exited")
        assert json.loads(d("inspect", "orphan").stdout)[0]["State"]["ExitCode"] == 137
        assert wait_for(lambda: cgroup_dirs(engine, cid) == [])
    finally:
        d("rm", "-f", "orphan")


@pytest.mark.slow
def test_daemon_start_cleans_what_died_while_it_was_down(engine_daemon):
    d = engine_daemon.docker
    d("run", "-d", "--name", "lost", "busybox", "sleep", "100")
    cid, pid = supervisor_pid(engine_daemon, "lost")
    engine_daemon.kill()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    engine_daemon.start()
    doc = json.loads(d("inspect", "lost").stdout)[0]
    assert doc["State"]["Status"] == "exited"
    assert wait_for(lambda: cgroup_dirs(engine_daemon, cid) == [])
    d("rm", "lost")
