"""Test-wide setup: marker skips for what the machine lacks, and a check for leftovers of engine daemons."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import leftovers

_SESSION_START = time.time()


def is_root() -> bool:
    return os.geteuid() == 0


def has_overlayfs() -> bool:
    """True when the kernel knows overlayfs (built in or its module loaded)."""
    try:
        return any(line.split()[-1] == "overlay" for line in Path("/proc/filesystems").read_text().splitlines())
    except OSError:
        return False


def is_pure_cgroup2() -> bool:
    """True when /sys/fs/cgroup itself is the unified (v2) hierarchy, with no v1 controllers beside it."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if left.split()[4] == "/sys/fs/cgroup":
                return right.split()[0] == "cgroup2"
    return False


def _missing(marker: str) -> str | None:
    """Return why tests with this marker cannot run here, or None when they can."""
    if marker == "root" and not is_root():
        return "needs root"
    if marker == "overlay" and not has_overlayfs():
        return "overlayfs is not available (not in /proc/filesystems)"
    if marker == "cgroup2" and not is_pure_cgroup2():
        return "needs a pure cgroup v2 host (/sys/fs/cgroup is not cgroup2)"
    if marker == "requires_docker_cli" and shutil.which("docker") is None:
        return "the docker CLI is not on PATH (./dockweb.sh test installs it)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration_dir = Path(__file__).parent / "integration"
    cache: dict[str, str | None] = {}
    for item in items:
        if integration_dir in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
        for marker in ("root", "overlay", "cgroup2", "requires_docker_cli"):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in cache:
                cache[marker] = _missing(marker)
            if cache[marker]:
                item.add_marker(pytest.mark.skip(reason=cache[marker]))
                break


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Report processes, mounts, cgroups and temp dirs that engine daemons of this session left behind."""
    found = leftovers(since=_SESSION_START)
    if found:
        terminalreporter.section("dockweb leftovers (a fixture failed to clean up, or another run is still going)",
                                 yellow=True)
        for line in found:
            terminalreporter.line(line)
