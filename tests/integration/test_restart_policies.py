"""Restart policies: on-failure with a limit, always, and no restart after a manual stop."""

import json
import time

import pytest

from tests.integration.polling import wait_for

pytestmark = [pytest.mark.root, pytest.mark.integration]


def inspect(engine, name):
    return json.loads(engine.docker("inspect", name).stdout)[0]



def test_on_failure_restarts_up_to_the_limit(engine):
    d = engine.docker
    d("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1")
    try:
        assert wait_for(lambda: inspect(engine, "flaky")["RestartCount"] == 2
                        and inspect(engine, "flaky")["State"]["Status"] == "exited")
        time.sleep(1.0)
        assert inspect(engine, "flaky")["RestartCount"] == 2
    finally:
        d("rm", "-f", "flaky")


def test_on_failure_does_not_restart_a_clean_exit(engine):
    d = engine.docker
    d("run", "-d", "--name", "clean", "--restart", "on-failure", "busybox", "true")
    try:
        assert wait_for(lambda: inspect(engine, "clean")["State"]["Status"] == "exited")
        time.sleep(0.5)
        assert inspect(engine, "clean")["RestartCount"] == 0
    finally:
        d("rm", "-f", "clean")


def test_always_restarts_until_stopped(engine):
    d = engine.docker
    d("run", "-d", "--name", "phoenix", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2; exit 0")
    try:
        assert wait_for(lambda: inspect(engine, "phoenix")["RestartCount"] >= 2)
        assert d("stop", "phoenix").returncode == 0
        count = inspect(engine, "phoenix")["RestartCount"]
        time.sleep(1.0)
        doc = inspect(engine, "phoenix")
        assert doc["State"]["Status"] == "exited"
        assert doc["RestartCount"] == count
    finally:
        d("rm", "-f", "phoenix")


def test_auto_remove_with_restart_policy_is_refused(engine):
    out = engine.docker("run", "--rm", "--restart", "always", "busybox", "true")
    assert out.returncode != 0
