"""Fixtures that run a real engine daemon on a temporary root: `engine` (per module), `engine_daemon` (per test)."""

from __future__ import annotations

import os
import warnings
from typing import Iterator

import pytest

from tests.integration.daemon_harness import EngineDaemon


def _run_daemon() -> Iterator[EngineDaemon]:
    if os.geteuid() != 0:
        pytest.skip("the engine daemon needs root")
    daemon = EngineDaemon.create(cgroup_prefix="dockweb-test")
    try:
        daemon.start()
        yield daemon
    finally:
        problems = daemon.cleanup()
        if problems:
            warnings.warn(f"engine daemon cleanup in {daemon.tmp} left: " + "; ".join(problems))


@pytest.fixture(scope="module")
def engine() -> Iterator[EngineDaemon]:
    """One engine daemon shared by the tests of a module (cheaper; tests must not depend on each other's state)."""
    yield from _run_daemon()


@pytest.fixture
def engine_daemon() -> Iterator[EngineDaemon]:
    """A fresh engine daemon for one test (use it when the test kills, restarts or breaks the daemon)."""
    yield from _run_daemon()
