"""kill -9 of the daemon leaves containers running; the restarted daemon adopts them."""

import json
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow]


def test_containers_survive_daemon_sigkill_and_are_adopted(engine_daemon):
    d = engine_daemon.docker
    d("run", "-d", "--name", "survivor", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    d("run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; exit 9")
    d("run", "-d", "--name", "bouncer", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 1")
    pid = json.loads(d("inspect", "survivor").stdout)[0]["State"]["Pid"]
    engine_daemon.restart(down_for=2.0)
    doc = json.loads(d("inspect", "survivor").stdout)[0]
    assert doc["State"]["Status"] == "running"
    assert doc["State"]["Pid"] == pid
    before = d("logs", "survivor").stdout.count("tick")
    time.sleep(0.6)
    assert d("logs", "survivor").stdout.count("tick") > before
    # exited while the daemon was down: reported now
    short = json.loads(d("inspect", "short").stdout)[0]
    assert short["State"]["Status"] == "exited"
    assert short["State"]["ExitCode"] == 9
    # the restart policy is applied for exits the daemon missed
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if json.loads(d("inspect", "bouncer").stdout)[0]["RestartCount"] >= 1:
            break
        time.sleep(0.2)
    assert json.loads(d("inspect", "bouncer").stdout)[0]["RestartCount"] >= 1
    # exec still works on an adopted container
    assert d("exec", "survivor", "echo", "adopted").stdout == "adopted\n"
    for name in ("survivor", "short", "bouncer"):
        d("rm", "-f", name)
