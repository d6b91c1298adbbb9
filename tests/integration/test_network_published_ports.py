"""Published ports: -p on 127.0.0.1 and on every address, -P, docker port and ps, restarts of both kinds."""

from __future__ import annotations

import json
import secrets
import socket

import pytest

pytestmark = pytest.mark.root

SERVE = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r.stdout.strip()


def free_port(engine) -> int:
    """A TCP port nobody uses in the daemon's namespace (asked of the kernel there)."""
    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    return engine.in_netns_call(pick)


def test_a_port_published_on_127_0_0_1_answers_an_http_client(engine):
    port = free_port(engine)
    c = name("web")
    cid = ok(engine.docker("run", "-d", "--name", c, "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c", SERVE))
    try:
        status, body = engine.wait_http("127.0.0.1", port)
        assert (status, body.decode().strip()) == (200, f"hello-from-{cid[:12]}")
        assert ok(engine.docker("port", c)) == f"80/tcp -> 127.0.0.1:{port}"
        ps = ok(engine.docker("ps", "--filter", f"name={c}", "--format", "{{.Ports}}"))
        assert ps == f"127.0.0.1:{port}->80/tcp"
        doc = json.loads(ok(engine.docker("inspect", c)))[0]
        assert doc["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        assert doc["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        # Not published on the other addresses of the host.
        gateway = doc["NetworkSettings"]["Gateway"]
        with pytest.raises(OSError):
            engine.http_get(gateway, port, timeout=2)
    finally:
        engine.docker("rm", "-f", c)


def test_a_port_published_on_every_address_answers_on_each_of_them(engine):
    port = free_port(engine)
    c = name("all")
    ok(engine.docker("run", "-d", "--name", c, "-p", f"{port}:80", "busybox", "sh", "-c", SERVE))
    try:
        gateway = ok(engine.docker("inspect", "-f", "{{.NetworkSettings.Gateway}}", c))
        for host in ("127.0.0.1", gateway):
            status, body = engine.wait_http(host, port)
            assert status == 200 and body.startswith(b"hello-from-")
        assert ok(engine.docker("port", c, "80")) == f"0.0.0.0:{port}"
        # Another container reaches it through the host's address too.
        out = ok(engine.docker("run", "--rm", "busybox", "sh", "-c",
                               f"timeout 5 wget -q -O - http://{gateway}:{port}/; exit $?"))
        assert out.startswith("hello-from-")
    finally:
        engine.docker("rm", "-f", c)


def test_publish_all_maps_every_exposed_port_to_a_random_host_port(engine):
    c = name("pall")
    ok(engine.docker("run", "-d", "--name", c, "-P", "--expose", "80", "--expose", "5353/udp", "busybox",
                     "sh", "-c", SERVE))
    try:
        ports = json.loads(ok(engine.docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", c)))
        assert set(ports) == {"80/tcp", "5353/udp"}
        tcp = ports["80/tcp"][0]
        assert tcp["HostIp"] == "0.0.0.0" and int(tcp["HostPort"]) > 1024
        status, _body = engine.wait_http("127.0.0.1", int(tcp["HostPort"]))
        assert status == 200
        listed = ok(engine.docker("port", c)).splitlines()
        assert f"80/tcp -> 0.0.0.0:{tcp['HostPort']}" in listed
        assert f"5353/udp -> 0.0.0.0:{ports['5353/udp'][0]['HostPort']}" in listed
    finally:
        engine.docker("rm", "-f", c)


def test_docker_py_publishes_ports_and_reads_them_back(engine):
    client = engine.client()
    port = free_port(engine)
    c = client.containers.run("busybox", ["sh", "-c", SERVE], detach=True, name=name("pyport"),
                              ports={"80/tcp": ("127.0.0.1", port)})
    try:
        c.reload()
        assert c.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        status, body = engine.wait_http("127.0.0.1", port)
        assert status == 200 and body.decode().strip() == f"hello-from-{c.id[:12]}"
        listed = [x for x in client.api.containers(filters={"id": c.id})][0]
        assert listed["Ports"] == [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}]
    finally:
        c.remove(force=True)


def test_a_host_port_in_use_fails_the_start_with_dockers_message(engine):
    port = free_port(engine)
    first, second = name("first"), name("second")
    ok(engine.docker("run", "-d", "--name", first, "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60"))
    try:
        r = engine.docker("run", "-d", "--name", second, "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60")
        assert r.returncode != 0
        assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in r.stderr
        assert ok(engine.docker("inspect", "-f", "{{.State.Status}}", second)) == "created"
        # Nothing of the failed start stays plugged: the first still answers, the second starts once freed.
        ok(engine.docker("rm", "-f", first))
        ok(engine.docker("start", second))
        assert ok(engine.docker("port", second)) == f"80/tcp -> 127.0.0.1:{port}"
    finally:
        engine.docker("rm", "-f", first, second)


def test_run_rm_with_a_port_conflict_exits_and_removes_the_container(engine):
    port = free_port(engine)
    first, second = name("holder"), name("rm")
    ok(engine.docker("run", "-d", "--name", first, "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "60"))
    try:
        r = engine.docker("run", "--rm", "--name", second, "-p", f"127.0.0.1:{port}:80", "busybox", "true",
                          timeout=30)
        assert r.returncode != 0 and "port is already allocated" in r.stderr
        assert engine.docker("inspect", second).returncode == 1
    finally:
        engine.docker("rm", "-f", first)


def test_ports_stay_mapped_after_docker_restart(engine):
    c = name("restart")
    ok(engine.docker("run", "-d", "--name", c, "-p", "127.0.0.1::80", "busybox", "sh", "-c", SERVE))
    try:
        port = int(ok(engine.docker("port", c, "80")).rsplit(":", 1)[1])
        assert engine.wait_http("127.0.0.1", port)[0] == 200
        ok(engine.docker("restart", "-t", "1", c))
        # The same random host port is kept across the restart.
        assert ok(engine.docker("port", c, "80")) == f"127.0.0.1:{port}"
        assert engine.wait_http("127.0.0.1", port)[0] == 200
        ok(engine.docker("stop", "-t", "1", c))
        assert ok(engine.docker("port", c)) == ""
        with pytest.raises(OSError):
            engine.http_get("127.0.0.1", port, timeout=2)
    finally:
        engine.docker("rm", "-f", c)


def test_ports_stay_mapped_while_the_daemon_is_down_and_after_it_restarts(engine_daemon):
    engine = engine_daemon
    port = free_port(engine)
    c = name("survivor")
    ok(engine.docker("network", "create", "keep"))
    cid = ok(engine.docker("run", "-d", "--name", c, "--network", "keep", "-p", f"127.0.0.1:{port}:80",
                           "busybox", "sh", "-c", SERVE))
    ok(engine.docker("run", "-d", "--name", "peer", "--network", "keep", "busybox", "sleep", "300"))
    assert engine.wait_http("127.0.0.1", port)[0] == 200
    engine.kill()
    # The kernel keeps forwarding while no daemon runs.
    assert engine.http_get("127.0.0.1", port)[0] == 200
    engine.start()
    assert ok(engine.docker("port", c)) == f"80/tcp -> 127.0.0.1:{port}"
    status, body = engine.wait_http("127.0.0.1", port)
    assert (status, body.decode().strip()) == (200, f"hello-from-{cid[:12]}")
    # The embedded DNS is back too, and the port is still held against a second container.
    out = ok(engine.docker("exec", "peer", "wget", "-q", "-O", "-", f"http://{c}/"))
    assert out == f"hello-from-{cid[:12]}"
    r = engine.docker("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
    assert r.returncode != 0 and "port is already allocated" in r.stderr
    # And a restart after the daemon restart keeps the mapping as well.
    ok(engine.docker("restart", "-t", "1", c))
    assert engine.wait_http("127.0.0.1", port)[0] == 200


def test_port_ranges_map_pairwise_or_take_a_free_port_of_the_host_range(engine):
    base = free_port(engine)
    c1, c2 = name("pair"), name("range")
    ok(engine.docker("run", "-d", "--name", c1, "-p", f"127.0.0.1:{base}-{base + 1}:80-81", "busybox", "sh", "-c",
                     "mkdir /a /b && echo a > /a/index.html && echo b > /b/index.html && "
                     "httpd -p 81 -h /b && exec httpd -f -p 80 -h /a"))
    try:
        assert ok(engine.docker("port", c1)).splitlines() == [f"80/tcp -> 127.0.0.1:{base}",
                                                               f"81/tcp -> 127.0.0.1:{base + 1}"]
        assert engine.wait_http("127.0.0.1", base)[1].strip() == b"a"
        assert engine.wait_http("127.0.0.1", base + 1)[1].strip() == b"b"
        # A host range for one container port: the first free port of the range (base and base+1 are taken).
        ok(engine.docker("run", "-d", "--name", c2, "-p", f"127.0.0.1:{base}-{base + 5}:80", "busybox",
                         "sleep", "60"))
        host_port = int(ok(engine.docker("port", c2, "80")).rsplit(":", 1)[1])
        assert base + 2 <= host_port <= base + 5
    finally:
        engine.docker("rm", "-f", c1, c2)
