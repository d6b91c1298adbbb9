"""Network modes: the default bridge, none, host and container:<name>, and the /etc files each one gets."""

from __future__ import annotations

import json
import secrets

import pytest

pytestmark = pytest.mark.root


def name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r.stdout.strip()


def test_the_default_bridge_gives_an_address_a_route_and_dockers_inspect_fields(engine):
    c = name("dflt")
    ok(engine.docker("run", "-d", "--name", c, "busybox", "sleep", "60"))
    try:
        doc = json.loads(ok(engine.docker("inspect", c)))[0]
        ns = doc["NetworkSettings"]
        bridge = json.loads(ok(engine.docker("network", "inspect", "bridge")))[0]
        subnet = bridge["IPAM"]["Config"][0]["Subnet"]
        assert doc["HostConfig"]["NetworkMode"] == "bridge"
        assert ns["Gateway"] == bridge["IPAM"]["Config"][0]["Gateway"] and ns["IPPrefixLen"] == int(subnet[-2:])
        assert ns["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"] != ""
        assert ns["Networks"]["bridge"]["NetworkID"] == bridge["Id"]
        assert ns["MacAddress"] == "02:42:" + ":".join(f"{int(x):02x}" for x in ns["IPAddress"].split("."))
        assert ns["SandboxKey"] and len(ns["SandboxID"]) == 64
        assert doc["Id"] in bridge["Containers"]
        assert bridge["Containers"][doc["Id"]]["IPv4Address"] == f"{ns['IPAddress']}/{ns['IPPrefixLen']}"
        out = ok(engine.docker("exec", c, "sh", "-c", "ip -4 -o addr show eth0; ip route; cat /etc/hosts"))
        assert f"inet {ns['IPAddress']}/{ns['IPPrefixLen']}" in out
        assert f"default via {ns['Gateway']}" in out
        assert f"{ns['IPAddress']}\t{doc['Id'][:12]}" in out
        assert ok(engine.docker("exec", c, "ping", "-c", "1", "-W", "2", ns["Gateway"])).count("1 packets received")
        # ps shows the network too.
        item = engine.client().api.containers(filters={"id": doc["Id"]})[0]
        assert item["HostConfig"]["NetworkMode"] == "bridge"
        assert item["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]
        assert c in ok(engine.docker("ps", "--filter", "network=bridge", "--format", "{{.Names}}"))
    finally:
        engine.docker("rm", "-f", c)


def test_containers_on_the_default_bridge_reach_each_other_by_address_only(engine):
    a = name("a")
    ok(engine.docker("run", "-d", "--name", a, "busybox", "sh", "-c",
                     "mkdir /www && echo hi > /www/index.html && exec httpd -f -p 80 -h /www"))
    try:
        ip = ok(engine.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", a))
        out = ok(engine.docker("run", "--rm", "busybox", "sh", "-c",
                               f"for i in $(seq 50); do wget -q -O - http://{ip}/ && exit 0; sleep 0.1; done; "
                               "exit 1"))
        assert out == "hi"
        # Docker's default bridge has no embedded DNS: names do not resolve there.
        resolv = ok(engine.docker("run", "--rm", "busybox", "cat", "/etc/resolv.conf"))
        assert "127.0.0.11" not in resolv
    finally:
        engine.docker("rm", "-f", a)


def test_none_has_only_loopback(engine):
    out = ok(engine.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"))
    assert [line.split(":")[1].strip() for line in out.splitlines()] == ["lo"]
    c = name("none")
    ok(engine.docker("create", "--name", c, "--network", "none", "busybox", "true"))
    try:
        doc = json.loads(ok(engine.docker("inspect", c)))[0]["NetworkSettings"]
        assert list(doc["Networks"]) == ["none"] and doc["IPAddress"] == "" and doc["Ports"] == {}
    finally:
        engine.docker("rm", "-f", c)


def test_host_shares_the_daemons_network_namespace(engine):
    host_links = ok(engine.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"))
    # The daemon's namespace has the default bridge once a container used it.
    ok(engine.docker("run", "--rm", "busybox", "true"))
    host_links = ok(engine.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"))
    assert "dockweb0" in host_links


def test_container_mode_joins_the_other_containers_namespace(engine):
    srv, buddy = name("srv"), name("buddy")
    ok(engine.docker("run", "-d", "--name", srv, "busybox", "sh", "-c",
                     "mkdir /www && echo shared > /www/index.html && exec httpd -f -p 8080 -h /www"))
    try:
        out = ok(engine.docker("run", "--rm", "--name", buddy, "--network", f"container:{srv}", "busybox", "sh", "-c",
                               "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.1; "
                               "done; ip -4 -o addr show eth0; hostname"))
        lines = out.splitlines()
        ip = ok(engine.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", srv))
        assert lines[0] == "shared" and f"inet {ip}/" in lines[1]
        assert lines[2] == ok(engine.docker("inspect", "-f", "{{.Config.Hostname}}", srv))
        r = engine.docker("run", "--rm", "--network", f"container:{srv}", "-p", "8081:80", "busybox", "true")
        assert r.returncode != 0
        assert "conflicting options: port publishing and the container type network mode" in r.stderr
        r = engine.docker("run", "--rm", "--network", "container:nosuch", "busybox", "true")
        assert r.returncode != 0 and "No such container: nosuch" in r.stderr
        ok(engine.docker("stop", "-t", "1", srv))
        r = engine.docker("run", "--rm", "--network", f"container:{srv}", "busybox", "true")
        assert r.returncode != 0 and "cannot join network namespace of a non running container" in r.stderr
    finally:
        engine.docker("rm", "-f", srv, buddy)


def test_add_host_dns_and_hostname_options_on_the_default_bridge(engine):
    out = ok(engine.docker("run", "--rm", "--hostname", "box", "--add-host", "gw:host-gateway",
                           "--add-host", "db=10.1.2.3", "--dns", "10.9.9.9", "--dns-search", "corp.example",
                           "--dns-option", "ndots:3", "busybox", "sh", "-c",
                           "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname"))
    hosts, resolv, hostname = out.split("---")
    gateway = json.loads(ok(engine.docker("network", "inspect", "bridge")))[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"{gateway}\tgw" in hosts and "10.1.2.3\tdb" in hosts
    assert resolv.split() == ["nameserver", "10.9.9.9", "search", "corp.example", "options", "ndots:3"]
    assert hostname.strip() == "box"


def test_an_unknown_network_fails_the_start_with_a_404_as_dockerd_does(engine):
    r = engine.docker("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert r.returncode != 0 and "network nosuchnet not found" in r.stderr
    import docker.errors
    client = engine.client()
    c = client.containers.create("busybox", "true", network="nosuchnet", name=name("orphan"))
    try:
        with pytest.raises(docker.errors.NotFound, match="network nosuchnet not found"):
            c.start()
        c.reload()
        assert c.status == "created"
        # Once the network exists, the same container starts.
        net = client.networks.create("nosuchnet")
        try:
            c.start()
            assert c.wait()["StatusCode"] == 0
        finally:
            c.remove(force=True)
            net.remove()
    finally:
        engine.docker("rm", "-f", c.id)
