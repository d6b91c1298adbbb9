"""Cgroup limits hold inside a container: a memory bomb is OOM-killed, a fork bomb stops at pids.max."""

import signal
import time

import pytest

from engine.runtime.cgroups import Cgroup
from tests.integration.runtime_harness import (  # noqa: F401
    Container, bundle, cgroup_parent, default_bpf, default_spec, rootfs_template, run,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]
MiB = 1024 * 1024


def test_memory_bomb_is_oom_killed(bundle, default_bpf, cgroup_parent):
    path = f"{cgroup_parent}/mem"
    resources = {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}}
    spec = default_spec(["sh", "-c", "x=a; while true; do x=$x$x; done"], cgroups_path=path, resources=resources)
    res = run(bundle, spec, default_bpf, timeout=30)
    cg = Cgroup.open(path)
    assert res.exit_code == 128 + signal.SIGKILL, res.text
    assert cg.oom_killed()
    stats = cg.stats()
    assert stats["memory"]["limit"] == 32 * MiB
    assert stats["memory"]["max_usage"] >= 30 * MiB


def test_memory_under_the_limit_is_not_an_oom_kill(bundle, default_bpf, cgroup_parent):
    path = f"{cgroup_parent}/ok"
    spec = default_spec(["true"], cgroups_path=path, resources={"memory": {"limit": 32 * MiB}})
    assert run(bundle, spec, default_bpf).exit_code == 0
    assert not Cgroup.open(path).oom_killed()


def test_fork_bomb_is_contained_by_pids_limit(bundle, default_bpf, cgroup_parent):
    path = f"{cgroup_parent}/pids"
    # busybox sh exits when fork fails, so the bomb churns at the limit; pid 1 outlives it and spins.
    script = "sh -c 'bomb() { bomb & bomb; }; bomb' 2>/dev/null; echo survived; while :; do :; done"
    spec = default_spec(["sh", "-c", script], cgroups_path=path, resources={"pids": {"limit": 32}})
    c = Container(bundle, spec, default_bpf)
    try:
        c.read_until(b"survived")
        cg = Cgroup.open(path)
        seen = []
        for _ in range(20):
            seen.append(cg.stats()["pids"]["current"])
            time.sleep(0.02)
        assert max(seen) <= 32
        with open(f"/sys/fs/cgroup/pids/{path}/pids.events") as f:
            assert int(f.read().split()[1]) > 0  # forks past the limit were refused
        cg.kill(signal.SIGKILL)
        res = c.wait(timeout=10)
    finally:
        c.kill()
    assert res.exit_code == 128 + signal.SIGKILL
    assert cg.pids() == []


def test_cpu_and_pids_values_are_written(bundle, default_bpf, cgroup_parent):
    path = f"{cgroup_parent}/cpu"
    resources = {"cpu": {"shares": 512, "quota": 50000, "period": 100000}, "pids": {"limit": 100}}
    script = "cd /sys/fs/cgroup && cat cpu/cpu.shares cpu/cpu.cfs_quota_us pids/pids.max"
    spec = default_spec(["sh", "-c", script], cgroups_path=path, resources=resources)
    res = run(bundle, spec, default_bpf)
    assert res.text.split() == ["512", "50000", "100"]


def test_device_cgroup_refuses_nodes_outside_the_allow_list(bundle, default_bpf, cgroup_parent):
    script = "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda; echo rc=$?; head -c1 /dev/zero | wc -c"
    spec = default_spec(["sh", "-c", script], cgroups_path=f"{cgroup_parent}/dev")
    res = run(bundle, spec, default_bpf)
    assert "Operation not permitted" in res.text and "rc=1" in res.text
    assert res.text.split()[-1] == "1"


def test_freeze_and_thaw(bundle, default_bpf, cgroup_parent):
    path = f"{cgroup_parent}/fr"
    c = Container(bundle, default_spec(["sh", "-c", "while :; do echo tick; sleep 0.05; done"], cgroups_path=path),
                  default_bpf)  # fmt: skip
    try:
        c.read_until(b"tick")
        cg = Cgroup.open(path)
        cg.freeze()
        assert cg.is_frozen()
        cg.thaw()
        assert not cg.is_frozen()
        cg.freeze()
        cg.kill(signal.SIGKILL)  # SIGKILL reaches a frozen container
        res = c.wait(timeout=10)
    finally:
        c.kill()
    assert res.exit_code == 128 + signal.SIGKILL
    assert "tick" in res.text
