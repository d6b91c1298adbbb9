"""The daemon harness's cleanup: supervisors killed (pid reuse guarded), cgroups and mounts removed, dir gone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import EngineDaemon, cgroup_mounts, mounts, remove_cgroups, unmount_under

pytestmark = pytest.mark.root


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(list(args), start_new_session=True)


def record_supervisor(daemon: EngineDaemon, cid: str, pid: int) -> None:
    d = daemon.root / "containers" / cid
    d.mkdir(parents=True)
    (d / "supervisor.json").write_text(json.dumps({"pid": pid, "init_pid": pid, "started_ns": 1}))


def hierarchy(controller: str) -> Path | None:
    for m in cgroup_mounts():
        if controller in m.name.split(","):
            return m
    return None


def wait_dead(proc: subprocess.Popen) -> int | None:
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        return None


def test_cleanup_kills_recorded_supervisors_but_not_a_reused_pid():
    daemon = EngineDaemon.create()
    supervisor = spawn(sys.executable, "-c", "import time; time.sleep(60)", "engine-supervisor-stand-in")
    bystander = spawn("sleep", "60")  # its pid is "recorded" too, but it is not ours: cmdline lacks "engine"
    try:
        record_supervisor(daemon, "c1", supervisor.pid)
        record_supervisor(daemon, "c2", bystander.pid)
        assert daemon.cleanup() == []
        assert wait_dead(supervisor) == -signal.SIGKILL
        assert bystander.poll() is None
        assert not daemon.tmp.exists()
    finally:
        for p in (supervisor, bystander):
            p.kill()
            p.wait()


def test_cleanup_kills_forks_of_the_daemon_that_name_its_root():
    daemon = EngineDaemon.create()
    launcher = spawn(sys.executable, "-c", "import time; time.sleep(60)", "--root", str(daemon.root))
    try:
        assert daemon.cleanup() == []
        assert wait_dead(launcher) == -signal.SIGKILL
    finally:
        launcher.kill()
        launcher.wait()


def test_cleanup_unmounts_nested_mounts_deepest_first():
    daemon = EngineDaemon.create()
    outer = daemon.root / "containers" / "c1" / "mnt"
    inner = outer / "deeper"
    outer.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "dwt-outer", str(outer)], check=True)
    inner.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "dwt-inner", str(inner)], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "dwt-stacked", str(inner)], check=True)
    try:
        assert daemon.cleanup() == []
        assert not [p for p, _ in mounts() if p.startswith(str(daemon.tmp))]
        assert not daemon.tmp.exists()
    finally:
        unmount_under(daemon.tmp)


def test_cleanup_removes_cgroups_in_every_hierarchy_even_with_frozen_processes():
    daemon = EngineDaemon.create()
    freezer, memory = hierarchy("freezer"), hierarchy("memory")
    if freezer is None or memory is None:
        pytest.skip("needs cgroup v1 freezer and memory hierarchies")
    sleeper = spawn("sleep", "60")
    try:
        for m in cgroup_mounts():
            (m / daemon.cgroup_parent / "c1").mkdir(parents=True)
        for m in (freezer, memory):
            (m / daemon.cgroup_parent / "c1" / "cgroup.procs").write_text(str(sleeper.pid))
        (freezer / daemon.cgroup_parent / "c1" / "freezer.state").write_text("FROZEN")
        time.sleep(0.1)
        assert daemon.cleanup() == []
        assert wait_dead(sleeper) == -signal.SIGKILL
        assert [m for m in cgroup_mounts() if (m / daemon.cgroup_parent).exists()] == []
    finally:
        if (freezer / daemon.cgroup_parent).exists():
            (freezer / daemon.cgroup_parent / "c1" / "freezer.state").write_text("THAWED")
        sleeper.kill()
        sleeper.wait()
        remove_cgroups(daemon.cgroup_parent)


def test_cleanup_of_a_never_started_daemon_is_quiet():
    daemon = EngineDaemon.create()
    assert daemon.cleanup() == []
    assert not daemon.tmp.exists()
