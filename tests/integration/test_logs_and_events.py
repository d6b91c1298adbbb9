"""docker logs (tail, timestamps, follow) and docker events for containers."""

import re
import subprocess
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


def test_logs_tail_and_timestamps(engine):
    d = engine.docker
    d("run", "--name", "lg", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2")
    try:
        out = d("logs", "--tail", "2", "lg")
        assert out.stdout == "line5\n"
        assert out.stderr == "oops\n"
        ts = d("logs", "-t", "lg").stdout.splitlines()
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z line1$", ts[0])
    finally:
        d("rm", "-f", "lg")


def test_logs_follow_streams_until_exit(engine):
    d = engine.docker
    d("run", "-d", "--name", "fl", "busybox", "sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.3; done")
    try:
        out = d("logs", "-f", "fl", timeout=20)
        assert out.stdout.split() == ["n1", "n2", "n3"]
    finally:
        d("rm", "-f", "fl")


def test_events_report_the_container_lifecycle(engine):
    d = engine.docker
    since = str(int(time.time()) - 1)
    d("run", "--rm", "--name", "evt", "busybox", "true")
    out = d("events", "--since", since, "--until", str(int(time.time()) + 1),
            "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    actions = [line.split()[0] for line in out.stdout.splitlines() if line.endswith(" evt")]
    for a in ("create", "start", "die", "destroy"):
        assert a in actions, out.stdout
