"""Health probes survive a daemon restart: the recorded health stays and probing resumes."""

import json

import pytest

from tests.integration.polling import wait_for

pytestmark = [pytest.mark.root, pytest.mark.integration]


def _health(engine, name):
    out = engine.docker("inspect", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]["State"].get("Health")


def test_probing_resumes_after_the_daemon_is_killed_and_restarted(engine_daemon):
    d = engine_daemon.docker
    out = d("run", "-d", "--name", "hc-rs", "--health-cmd", "cat /proc/uptime", "--health-interval", "1s",
            "busybox", "sleep", "300")
    assert out.returncode == 0, out.stderr
    assert wait_for(lambda: (_health(engine_daemon, "hc-rs") or {}).get("Status") == "healthy", timeout=10)
    engine_daemon.restart()
    h = _health(engine_daemon, "hc-rs")
    assert h["Status"] == "healthy", h
    last = h["Log"][-1]["End"]
    assert wait_for(lambda: _health(engine_daemon, "hc-rs")["Log"][-1]["End"] > last, timeout=10)
    status = d("ps", "--filter", "name=hc-rs", "--format", "{{.Status}}").stdout.strip()
    assert status.endswith("(healthy)"), status
    d("rm", "-f", "hc-rs")
