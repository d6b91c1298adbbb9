"""`./dockweb.sh up` brings up the whole stack (Redis, engine, web, worker, beat, events), prints the URL and a
one-time admin password that logs in, and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.integration.daemon_harness import call_in_netns, remove_cgroups, unmount_under
from tests.unit.dockweb.support import REPO, free_port

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow, pytest.mark.requires_docker_cli]


@pytest.fixture
def stack():
    tmp = Path(tempfile.mkdtemp(prefix="dwt-stack-"))
    cgroup = f"dockweb-test-stack-{tmp.name[-8:]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOCKWEB_", "DJANGO_")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DOCKWEB_STATE_DIR=str(tmp / "state"), DOCKWEB_ENGINE_ROOT=str(tmp / "engine"),
               DOCKWEB_ENGINE_SOCKET=str(tmp / "engine.sock"), DOCKWEB_PORT=str(port),
               DOCKWEB_REDIS_PORT=str(free_port()), DOCKWEB_CGROUP_PARENT=cgroup, DOCKWEB_RECONCILE_SECONDS="5")
    # The whole stack runs in a network namespace of its own: the engine's default bridge (dockweb0, NAT rules)
    # must never be created on this machine's real network.
    netns = f"dwt-stack-{tmp.name[-8:]}"
    subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True, capture_output=True)
    out = open(tmp / "up.out", "w+")
    # nsenter --net, not `ip netns exec`: the latter remounts /sys, hiding the cgroup hierarchies.
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "./dockweb.sh", "up"], cwd=REPO, env=env,
                            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc, tmp, port, f"/run/netns/{netns}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        out.close()
        for pid in _pids(tmp):  # supervisors outlive the engine by design: kill what this test started
            _kill_if(pid, str(tmp).encode())
        remove_cgroups(cgroup)
        unmount_under(tmp)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
        subprocess.run(["rm", "-rf", str(tmp)])


def _pids(tmp: Path) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if str(tmp).encode() in (p / "cmdline").read_bytes():
                    found.append(int(p.name))
            except OSError:
                continue
    return found


def _kill_if(pid: int, marker: bytes) -> None:
    try:
        if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _wait_for_output(tmp: Path, pattern: str, proc, timeout: float = 300) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (tmp / "up.out").read_text()
        m = re.search(pattern, text)
        if m:
            return m
        if proc.poll() is not None:
            pytest.fail(f"./dockweb.sh up exited with {proc.returncode}:\n{text}")
        time.sleep(0.2)
    pytest.fail(f"no {pattern!r} in the output of ./dockweb.sh up:\n{(tmp / 'up.out').read_text()}")


def test_up_runs_the_stack_and_ctrl_c_stops_every_process_it_started(stack):
    proc, tmp, port, netns_path = stack
    # The web listens inside the stack's namespace: talk to it from a thread that has entered it.
    call_in_netns(netns_path, _drive_the_stack, proc, tmp, port)


def _drive_the_stack(proc, tmp, port):
    url = _wait_for_output(tmp, r"dockweb is up: (http://\S+)", proc).group(1)
    password = _wait_for_output(tmp, r"one-time password: (\S+)", proc).group(1)
    assert url == f"http://127.0.0.1:{port}/"
    children = {m[0]: int(m[1]) for m in re.findall(r"started (\w+) \(pid (\d+)", (tmp / "up.out").read_text())}
    assert set(children) == {"redis", "engine", "web", "worker", "beat", "events"}

    s = requests.Session()
    s.get(url + "accounts/login/", timeout=10)
    r = s.post(url + "accounts/login/", data={"username": "admin", "password": password,
                                             "csrfmiddlewaretoken": s.cookies["csrftoken"]}, timeout=10)
    assert r.status_code == 200 and r.url == url, r.text[:500]
    headers = {"X-CSRFToken": s.cookies["csrftoken"]}

    # The web runs a container through the engine; the worker runs a job from Redis.
    r = s.post(url + "api/containers/", json={"image": "busybox", "name": "stacked", "command": ["sleep", "60"]},
               headers=headers, timeout=30)
    assert r.status_code == 201 and r.json()["state"] == "running", r.text
    r = s.post(url + "api/images/pull/", json={"image": "dockweb-test/absent:1"}, headers=headers, timeout=10)
    job_url = f"{url}api/jobs/{r.json()['id']}/"
    for _ in range(300):
        job = s.get(job_url, timeout=10).json()
        if job["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    # Docker Hub is unreachable from the stack's network namespace: the engine's own error reaches the job.
    assert job["state"] == "failed", job
    assert "pull access denied for dockweb-test/absent" in job["error"] or "registry-1.docker.io" in job["error"], job

    # The events listener brings in what the docker CLI does.
    env = {"PATH": os.environ["PATH"], "DOCKER_HOST": f"unix://{tmp}/engine.sock", "DOCKER_CONFIG": str(tmp / "d")}
    subprocess.run(["docker", "rm", "-f", "stacked"], env=env, check=True, capture_output=True, timeout=60)
    for _ in range(50):
        if s.get(url + "api/containers/", timeout=10).json()["count"] == 0:
            break
        time.sleep(0.1)
    assert s.get(url + "api/containers/", timeout=10).json()["count"] == 0

    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0
    time.sleep(0.5)
    alive = [name for name, pid in children.items() if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"]
    assert alive == [], f"still running after Ctrl-C: {alive}"
