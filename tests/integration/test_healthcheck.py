"""HEALTHCHECK probes run by the engine: State.Health, ps Status and filter, events, through the docker CLI."""

import json
import time
from pathlib import Path

import pytest

from tests.integration.polling import wait_for

pytestmark = [pytest.mark.root, pytest.mark.integration]


def _health(engine, name):
    out = engine.docker("inspect", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]["State"].get("Health")


def _status(engine, name):
    h = _health(engine, name)
    return h and h["Status"]


def _run(engine, name, *args):
    out = engine.docker("run", "-d", "--name", name, *args)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_passing_probe_makes_the_container_healthy(engine):
    d = engine.docker
    _run(engine, "hc-ok", "--health-cmd", "echo fine", "--health-interval", "1s", "busybox", "sleep", "300")
    try:
        assert _status(engine, "hc-ok") == "starting"
        assert "(health: starting)" in d("ps", "--filter", "name=hc-ok", "--format", "{{.Status}}").stdout
        assert wait_for(lambda: _status(engine, "hc-ok") == "healthy", timeout=10)
        h = _health(engine, "hc-ok")
        assert h["FailingStreak"] == 0
        assert h["Log"][-1]["ExitCode"] == 0 and h["Log"][-1]["Output"] == "fine\n"
        assert h["Log"][-1]["Start"] <= h["Log"][-1]["End"]
        status = d("ps", "--filter", "name=hc-ok", "--format", "{{.Status}}").stdout.strip()
        assert status.startswith("Up ") and status.endswith("(healthy)"), status
    finally:
        d("rm", "-f", "hc-ok")


def test_failing_probe_makes_it_unhealthy_after_the_retries(engine):
    d = engine.docker
    _run(engine, "hc-bad", "--health-cmd", "echo broken >&2; exit 3", "--health-interval", "1s",
         "--health-retries", "2", "busybox", "sleep", "300")
    try:
        first = wait_for(lambda: (_health(engine, "hc-bad") or {}).get("Log"), timeout=10)
        assert first[0]["ExitCode"] == 3 and first[0]["Output"] == "broken\n"
        h = _health(engine, "hc-bad")
        if len(h["Log"]) == 1:     # one failure of two allowed: still starting
            assert h["Status"] == "starting" and h["FailingStreak"] == 1
        assert wait_for(lambda: _status(engine, "hc-bad") == "unhealthy", timeout=10)
        assert _health(engine, "hc-bad")["FailingStreak"] >= 2
        assert d("ps", "--filter", "name=hc-bad", "--format", "{{.Status}}").stdout.strip().endswith("(unhealthy)")
    finally:
        d("rm", "-f", "hc-bad")


def test_failures_inside_the_start_period_do_not_count(engine):
    d = engine.docker
    _run(engine, "hc-sp", "--health-cmd", "test -e /tmp/ready", "--health-interval", "1s",
         "--health-start-interval", "1s", "--health-start-period", "60s", "--health-retries", "1",
         "busybox", "sleep", "300")
    try:
        assert wait_for(lambda: len((_health(engine, "hc-sp") or {}).get("Log") or []) >= 2, timeout=15)
        h = _health(engine, "hc-sp")
        assert h["Status"] == "starting" and h["FailingStreak"] == 0
        assert all(e["ExitCode"] == 1 for e in h["Log"])
        assert d("exec", "hc-sp", "touch", "/tmp/ready").returncode == 0
        assert wait_for(lambda: _status(engine, "hc-sp") == "healthy", timeout=10)
    finally:
        d("rm", "-f", "hc-sp")


def test_probe_that_overruns_its_timeout_is_killed_and_fails(engine):
    d = engine.docker
    _run(engine, "hc-slow", "--health-cmd", "sleep 30", "--health-timeout", "1s", "--health-interval", "1s",
         "--health-retries", "1", "busybox", "sleep", "300")
    try:
        assert wait_for(lambda: _status(engine, "hc-slow") == "unhealthy", timeout=15)
        entry = _health(engine, "hc-slow")["Log"][0]
        assert entry["ExitCode"] == -1
        assert entry["Output"] == "Health check exceeded timeout (1s)"
        # Overrunning probes are killed: they do not pile up (at most the one in progress is there).
        assert wait_for(lambda: len(_health(engine, "hc-slow")["Log"]) >= 3, timeout=15)
        ps = d("exec", "hc-slow", "ps", "-o", "args").stdout.splitlines()
        assert ps.count("sleep 30") <= 1, ps
    finally:
        d("rm", "-f", "hc-slow")


def test_probe_output_is_capped_at_4_kib(engine):
    d = engine.docker
    _run(engine, "hc-big", "--health-cmd", "head -c 10000 /dev/zero | tr '\\0' a", "--health-interval", "1s",
         "busybox", "sleep", "300")
    try:
        assert wait_for(lambda: _status(engine, "hc-big") == "healthy", timeout=10)
        out = _health(engine, "hc-big")["Log"][0]["Output"]
        assert out == "a" * 4096 + "..."
    finally:
        d("rm", "-f", "hc-big")


def test_log_keeps_the_last_five_probes(engine):
    d = engine.docker
    _run(engine, "hc-log", "--health-cmd", "cat /proc/uptime", "--health-interval", "1s", "busybox", "sleep", "300")
    try:
        assert wait_for(lambda: len(_health(engine, "hc-log")["Log"]) == 5, timeout=15)
        first = _health(engine, "hc-log")["Log"][0]["Output"]
        assert wait_for(lambda: _health(engine, "hc-log")["Log"][0]["Output"] != first, timeout=5)
        assert len(_health(engine, "hc-log")["Log"]) == 5
        # Each probe's exec record is removed once read: they do not pile up in the container directory.
        cid = d("inspect", "-f", "{{.Id}}", "hc-log").stdout.strip()
        assert len(list((Path(engine.root) / "containers" / cid / "execs").glob("*.json"))) <= 1
    finally:
        d("rm", "-f", "hc-log")


def test_image_healthcheck_runs_and_no_healthcheck_turns_it_off(engine):
    from engine.images.bootstrap import build_rootfs_tar

    d = engine.docker
    tar = build_rootfs_tar(Path("/bin/busybox"))
    out = d("import", "--change", "HEALTHCHECK --interval=1s --retries=1 CMD true", "-", "hc-image:1", input=tar)
    assert out.returncode == 0, out.stderr
    try:
        _run(engine, "hc-img", "hc-image:1", "sleep", "300")
        _run(engine, "hc-none", "--no-healthcheck", "hc-image:1", "sleep", "300")
        assert wait_for(lambda: _status(engine, "hc-img") == "healthy", timeout=10)
        time.sleep(1.5)
        assert _health(engine, "hc-none") is None
        cfg = json.loads(d("inspect", "hc-none").stdout)[0]["Config"]
        assert cfg["Healthcheck"]["Test"] == ["NONE"]
        status = d("ps", "--filter", "name=hc-none", "--format", "{{.Status}}").stdout.strip()
        assert status.startswith("Up ") and "(" not in status, status
    finally:
        d("rm", "-f", "hc-img", "hc-none")
        d("rmi", "hc-image:1")


def test_ps_filters_by_health(engine):
    d = engine.docker
    _run(engine, "hf-good", "--health-cmd", "true", "--health-interval", "1s", "busybox", "sleep", "300")
    _run(engine, "hf-bad", "--health-cmd", "false", "--health-interval", "1s", "--health-retries", "1",
         "busybox", "sleep", "300")
    _run(engine, "hf-plain", "busybox", "sleep", "300")
    try:
        assert wait_for(lambda: _status(engine, "hf-good") == "healthy" and _status(engine, "hf-bad") == "unhealthy",
                        timeout=10)

        def names(value):
            out = d("ps", "--filter", f"health={value}", "--format", "{{.Names}}")
            assert out.returncode == 0, out.stderr
            return set(out.stdout.split()) & {"hf-good", "hf-bad", "hf-plain"}

        assert names("healthy") == {"hf-good"}
        assert names("unhealthy") == {"hf-bad"}
        assert names("none") == {"hf-plain"}
        assert names("starting") == set()
        bad = d("ps", "--filter", "health=sickly")
        assert bad.returncode != 0 and "Unrecognised filter value for health: sickly" in bad.stderr
    finally:
        d("rm", "-f", "hf-good", "hf-bad", "hf-plain")


def test_status_changes_are_events(engine):
    d = engine.docker
    since = str(int(time.time()) - 1)
    _run(engine, "hc-ev", "--health-cmd", "true", "--health-interval", "1s", "busybox", "sleep", "300")
    try:
        assert wait_for(lambda: _status(engine, "hc-ev") == "healthy", timeout=10)
        out = d("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "container=hc-ev",
                "--filter", "event=health_status", "--format", "{{.Action}}")
        assert out.stdout.splitlines() == ["health_status: healthy"], out.stdout + out.stderr
        execs = d("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "container=hc-ev",
                  "--filter", "event=exec_start", "--format", "{{.Action}}").stdout.splitlines()
        assert execs and execs[0] == "exec_start: /bin/sh -c true"   # --health-cmd is CMD-SHELL
    finally:
        d("rm", "-f", "hc-ev")


def test_probes_stop_when_the_container_stops(engine):
    d = engine.docker
    _run(engine, "hc-stop", "--health-cmd", "true", "--health-interval", "1s", "busybox", "sleep", "300")
    try:
        assert wait_for(lambda: _status(engine, "hc-stop") == "healthy", timeout=10)
        assert d("stop", "-t", "1", "hc-stop").returncode == 0
        h = _health(engine, "hc-stop")
        assert h["Status"] == "unhealthy"     # dockerd marks a stopped monitor unhealthy
        count = len(h["Log"])
        ends = [e["End"] for e in h["Log"]]
        time.sleep(2.5)
        assert [e["End"] for e in _health(engine, "hc-stop")["Log"]] == ends and len(ends) == count
        assert d("start", "hc-stop").returncode == 0
        assert _status(engine, "hc-stop") in ("starting", "healthy")
        assert wait_for(lambda: _status(engine, "hc-stop") == "healthy", timeout=10)
    finally:
        d("rm", "-f", "hc-stop")
