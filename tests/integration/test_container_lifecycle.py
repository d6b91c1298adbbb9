"""A detached container through its whole life: logs, exec, top, stats, inspect, kill, rm."""

import json
import time

import pytest

from tests.integration.polling import wait_for

pytestmark = [pytest.mark.root, pytest.mark.integration]



def test_detached_container_lifecycle(engine):
    d = engine.docker
    cid = d("run", "-d", "--name", "life", "busybox", "sh", "-c",
            "echo started; while true; do sleep 0.2; done").stdout.strip()
    try:
        assert len(cid) == 64
        assert wait_for(lambda: "started" in d("logs", "life").stdout)
        out = d("exec", "life", "sh", "-c", "echo in-exec; exit 4")
        assert out.stdout == "in-exec\n"
        assert out.returncode == 4
        top = d("top", "life")
        assert top.returncode == 0 and "sleep" in top.stdout or "sh" in top.stdout
        stats = d("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "life")
        assert stats.returncode == 0, stats.stderr
        assert stats.stdout.split()[0] == "life"
        doc = json.loads(d("inspect", "life").stdout)[0]
        assert doc["State"]["Running"] is True
        assert doc["State"]["Pid"] > 0
        assert doc["Name"] == "/life"
        assert d("kill", "life").returncode == 0
        assert wait_for(lambda: json.loads(d("inspect", "life").stdout)[0]["State"]["Status"] == "exited")
        doc = json.loads(d("inspect", "life").stdout)[0]
        assert doc["State"]["ExitCode"] == 137
        ps = d("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}")
        assert "life" in ps.stdout.split()
    finally:
        d("rm", "-f", "life")
    assert d("inspect", "life").returncode == 1


def test_stop_sends_sigterm_then_reports_exit(engine):
    d = engine.docker
    d("run", "-d", "--name", "stoppable", "busybox", "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done")
    try:
        time.sleep(0.3)
        assert d("stop", "-t", "5", "stoppable").returncode == 0
        doc = json.loads(d("inspect", "stoppable").stdout)[0]
        assert doc["State"]["ExitCode"] == 7
        # stop on a stopped container is not an error for the CLI (304)
        assert d("stop", "stoppable").returncode == 0
    finally:
        d("rm", "-f", "stoppable")


def test_rm_of_running_container_is_refused_without_force(engine):
    d = engine.docker
    d("run", "-d", "--name", "busy", "busybox", "sleep", "100")
    try:
        out = d("rm", "busy")
        assert out.returncode != 0
        assert "container is running" in out.stderr
    finally:
        assert d("rm", "-f", "busy").returncode == 0


def test_wait_returns_the_exit_code(engine):
    d = engine.docker
    d("run", "-d", "--name", "waiter", "busybox", "sh", "-c", "sleep 0.5; exit 5")
    try:
        out = d("wait", "waiter")
        assert out.stdout.strip() == "5"
    finally:
        d("rm", "-f", "waiter")


def test_pause_and_unpause_freeze_the_container(engine):
    d = engine.docker
    d("run", "-d", "--name", "pz", "busybox", "sleep", "100")
    try:
        assert d("pause", "pz").returncode == 0
        assert json.loads(d("inspect", "pz").stdout)[0]["State"]["Status"] == "paused"
        assert "(Paused)" in d("ps", "--format", "{{.Status}}", "--filter", "name=pz").stdout
        assert d("unpause", "pz").returncode == 0
        assert json.loads(d("inspect", "pz").stdout)[0]["State"]["Status"] == "running"
    finally:
        d("rm", "-f", "pz")


def test_rename_then_refer_by_new_name(engine):
    d = engine.docker
    d("create", "--name", "old", "busybox", "true")
    try:
        assert d("rename", "old", "new").returncode == 0
        assert d("inspect", "-f", "{{.Name}}", "new").stdout.strip() == "/new"
    finally:
        d("rm", "-f", "new")
        d("rm", "-f", "old")


def test_exec_with_user_env_and_workdir(engine):
    d = engine.docker
    d("run", "-d", "--name", "ex", "busybox", "sleep", "100")
    try:
        out = d("exec", "-u", "1000", "-e", "K=V", "-w", "/tmp", "ex", "sh", "-c", 'echo $(id -u) $K $(pwd)')
        assert out.stdout.split() == ["1000", "V", "/tmp"]
        out = d("exec", "-i", "ex", "sh", input="echo from-stdin\n")
        assert out.stdout == "from-stdin\n"
    finally:
        d("rm", "-f", "ex")
