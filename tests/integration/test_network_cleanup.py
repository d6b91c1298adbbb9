"""Nothing a container or network plugged in stays behind: after rm -f, network prune, and a daemon crash."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.integration.daemon_harness import mounts

pytestmark = pytest.mark.root

SERVE = "mkdir -p /www && echo up > /www/index.html && exec httpd -f -p 80 -h /www"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r.stdout.strip()


def links(engine) -> dict[str, str]:
    """{interface name: kind} in the daemon's namespace."""
    out = subprocess.run(["ip", "-n", engine.netns, "-d", "-o", "link"], capture_output=True, text=True,
                         check=True).stdout
    found = {}
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        kind = "veth" if " veth " in line else "bridge" if " bridge " in line else ""
        found[name] = kind
    return found


def rules(engine) -> str:
    return subprocess.run(engine.in_netns(["iptables-save"]), capture_output=True, text=True, check=True).stdout


def sandboxes(engine) -> list[str]:
    d = engine.root / "run" / "netns"
    return sorted(os.listdir(d)) if d.is_dir() else []


def nsfs_mounts(engine) -> list[str]:
    return [p for p, fs in mounts() if fs == "nsfs" and p.startswith(str(engine.root))]


def can_bind(engine, port: int) -> bool:
    def bind() -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False
    return engine.in_netns_call(bind)


def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_rm_f_and_network_prune_leave_nothing_behind(engine_daemon):
    engine = engine_daemon
    ok(engine.docker("network", "create", "tidy"))
    bridge = "dw-" + json.loads(ok(engine.docker("network", "inspect", "tidy")))[0]["Id"][:12]
    cid = ok(engine.docker("run", "-d", "--network", "tidy", "-p", "127.0.0.1::80", "busybox", "sh", "-c", SERVE))
    port = int(ok(engine.docker("port", cid, "80")).rsplit(":", 1)[1])
    ip = json.loads(ok(engine.docker("inspect", cid)))[0]["NetworkSettings"]["Networks"]["tidy"]["IPAddress"]
    assert engine.wait_http("127.0.0.1", port)[0] == 200
    assert [k for k in links(engine).values() if k == "veth"] and sandboxes(engine) == [cid]
    assert f"--to-destination {ip}:80" in rules(engine) and not can_bind(engine, port)

    ok(engine.docker("rm", "-f", cid))
    assert wait_for(lambda: not [n for n, k in links(engine).items() if k == "veth"]), links(engine)
    assert sandboxes(engine) == [] and nsfs_mounts(engine) == []
    assert f"--to-destination {ip}:80" not in rules(engine)
    assert can_bind(engine, port)
    assert bridge in links(engine)

    assert "tidy" in ok(engine.docker("network", "prune", "-f"))
    assert bridge not in links(engine)
    assert f"-o {bridge}" not in rules(engine) and f"-i {bridge}" not in rules(engine)
    assert ok(engine.docker("network", "ls", "--format", "{{.Name}}")).split() == ["bridge", "host", "none"]
    assert sorted(p.name for p in (engine.root / "networks").iterdir()) == sorted(
        f"{n}.json" for n in ok(engine.docker("network", "ls", "-q", "--no-trunc")).split())


def test_network_prune_keeps_networks_in_use_and_reports_what_it_removed(engine):
    for n in ("p1", "p2"):
        ok(engine.docker("network", "create", "--label", "prune=me", n))
    cid = ok(engine.docker("run", "-d", "--network", "p2", "busybox", "sleep", "60"))
    try:
        out = ok(engine.docker("network", "prune", "-f", "--filter", "label=prune=me"))
        assert "p1" in out and "p2" not in out
        assert ok(engine.docker("network", "ls", "--filter", "label=prune=me", "--format", "{{.Name}}")) == "p2"
    finally:
        engine.docker("rm", "-f", cid)
        engine.docker("network", "rm", "p2")


def test_a_daemon_restart_removes_what_a_container_that_died_meanwhile_left(engine_daemon):
    engine = engine_daemon
    cid = ok(engine.docker("run", "-d", "-p", "127.0.0.1::80", "busybox", "sh", "-c", SERVE))
    port = int(ok(engine.docker("port", cid, "80")).rsplit(":", 1)[1])
    ip = ok(engine.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid))
    engine.kill()
    # The container dies while no daemon watches: its namespace file, veth and DNAT rule are left over.
    sup = json.loads((engine.root / "containers" / cid / "supervisor.json").read_text())
    os.kill(sup["pid"], signal.SIGKILL)
    os.kill(sup["init_pid"], signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists(f"/proc/{sup['init_pid']}"))
    assert sandboxes(engine) == [cid] and f"--to-destination {ip}:80" in rules(engine)
    engine.start()
    assert ok(engine.docker("inspect", "-f", "{{.State.Status}}", cid)) == "exited"
    assert sandboxes(engine) == [] and nsfs_mounts(engine) == []
    assert f"--to-destination {ip}:80" not in rules(engine)
    assert wait_for(lambda: not [n for n, k in links(engine).items() if k == "veth"]), links(engine)
    # It starts again on the same host port.
    ok(engine.docker("start", cid))
    assert ok(engine.docker("port", cid, "80")) == f"127.0.0.1:{port}"
    assert engine.wait_http("127.0.0.1", port)[0] == 200
    ok(engine.docker("rm", "-f", cid))


def test_a_stale_namespace_file_and_bridge_are_removed_at_daemon_start(engine_daemon):
    engine = engine_daemon
    ok(engine.docker("run", "--rm", "busybox", "true"))        # the default bridge now exists
    engine.kill()
    stale = engine.root / "run" / "netns" / ("f" * 64)
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.touch()
    subprocess.run(["ip", "-n", engine.netns, "link", "add", "dw-000000000000", "type", "bridge"], check=True)
    engine.start()
    assert sandboxes(engine) == []
    assert "dw-000000000000" not in links(engine) and "dockweb0" in links(engine)
