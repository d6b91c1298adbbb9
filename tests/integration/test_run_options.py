"""Run options that become limits and process settings: --init, -m, --cpus, labels, old API clients."""

import json
import shutil

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.mark.skipif(not shutil.which("tini-static"), reason="tini-static (Debian's tini) is not installed")
def test_init_runs_docker_init_as_pid_one(engine):
    out = engine.docker("run", "--rm", "--init", "busybox", "ps", "-o", "pid,args")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1].split()[:2] == ["1", "/sbin/docker-init"]


def test_memory_and_cpu_limits_reach_the_cgroup(engine):
    out = engine.docker("run", "--rm", "-m", "64m", "--cpus", "0.5", "busybox", "sh", "-c",
                        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
                        "2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "67108864"
    assert out.stdout.split()[1] == "50000"


def test_labels_are_shown_by_inspect_and_filter(engine):
    d = engine.docker
    d("create", "--name", "lbl", "--label", "tier=web", "busybox", "true")
    try:
        doc = json.loads(d("inspect", "lbl").stdout)[0]
        assert doc["Config"]["Labels"]["tier"] == "web"
        assert d("ps", "-a", "--filter", "label=tier=web", "--format", "{{.Names}}").stdout.split() == ["lbl"]
    finally:
        d("rm", "lbl")


def test_prune_removes_only_stopped_containers(engine):
    d = engine.docker
    d("run", "--name", "done1", "busybox", "true")
    d("run", "-d", "--name", "alive", "busybox", "sleep", "100")
    try:
        out = d("container", "prune", "-f")
        assert out.returncode == 0, out.stderr
        names = d("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert "done1" not in names and "alive" in names
    finally:
        d("rm", "-f", "alive", "done1")


def test_debian_20_10_client_api_1_41_runs_containers(engine):
    out = engine.docker("run", "--rm", "busybox", "echo", "old-client", env={"DOCKER_API_VERSION": "1.41"})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "old-client\n"


def test_attach_to_a_running_container_streams_its_output(engine):
    import subprocess
    import time
    d = engine.docker
    d("run", "-d", "--name", "att", "busybox", "sh", "-c", "sleep 1; echo late-line; sleep 0.5")
    try:
        out = subprocess.run(["docker", "attach", "att"], env=engine.env, capture_output=True, text=True,
                             timeout=30)
        assert "late-line" in out.stdout
    finally:
        d("rm", "-f", "att")


def test_start_attach_shows_the_output_of_a_created_container(engine):
    d = engine.docker
    d("create", "--name", "sa", "busybox", "sh", "-c", "echo attached-start; exit 6")
    try:
        out = d("start", "-a", "sa")
        assert out.stdout == "attached-start\n"
        assert out.returncode == 6
    finally:
        d("rm", "-f", "sa")


def test_stats_stream_yields_one_sample_per_second(engine):
    client = engine.client()
    c = client.containers.run("busybox", ["sleep", "100"], detach=True, name="statsy")
    try:
        stream = c.stats(stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"]
        assert second["pids_stats"]["current"] == 1
        assert second["memory_stats"]["usage"] > 0
    finally:
        c.remove(force=True)
