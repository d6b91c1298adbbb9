"""User-defined bridge networks through the docker CLI and docker-py: names, aliases, isolation, connect."""

from __future__ import annotations

import json
import secrets

import pytest

pytestmark = pytest.mark.root

SERVE = "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return r.stdout.strip()


# `sh -c "cmd"` execs cmd as the container's pid 1, which ignores the SIGTERM of busybox timeout: every
# command line here ends with another command so that the shell stays pid 1.


def fetch(engine, network: str, url: str, extra: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run a throwaway client container on network that fetches url with busybox wget (retrying briefly)."""
    script = f"for i in $(seq 50); do timeout 3 wget -q -O - {url} && exit 0; sleep 0.1; done; exit 1"
    r = engine.docker("run", "--rm", "--network", network, *extra, "busybox", "sh", "-c", script)
    return r.returncode, r.stdout.strip() + r.stderr.strip()


@pytest.fixture
def net(engine):
    n = name("net")
    ok(engine.docker("network", "create", n))
    yield n
    engine.docker("rm", "-f", *ok(engine.docker("ps", "-aq", "--filter", f"network={n}")).split())
    engine.docker("network", "rm", n)


def test_a_container_reaches_another_by_name_alias_and_short_id(engine, net):
    web = name("web")
    cid = ok(engine.docker("run", "-d", "--name", web, "--network", net, "--network-alias", "www",
                           "busybox", "sh", "-c", SERVE))
    try:
        for host in (web, "www", cid[:12], f"{web}.{net}"):
            code, out = fetch(engine, net, f"http://{host}/")
            assert code == 0, out
            assert out == f"hello-from-{cid[:12]}"
    finally:
        engine.docker("rm", "-f", web)


def test_docker_py_containers_resolve_each_other_on_a_user_network(engine):
    client = engine.client()
    network = client.networks.create(name("pynet"), driver="bridge")
    server = client.containers.run("busybox", ["sh", "-c", SERVE], name=name("pyweb"), detach=True,
                                   network=network.name)
    try:
        network.reload()
        assert server.id in network.attrs["Containers"]
        out = client.containers.run("busybox", ["sh", "-c", "for i in $(seq 50); do wget -q -O - http://"
                                                f"{server.name}/ && exit 0; sleep 0.1; done; exit 1"],
                                    network=network.name, remove=True)
        assert out.decode().strip() == f"hello-from-{server.id[:12]}"
        server.reload()
        settings = server.attrs["NetworkSettings"]["Networks"][network.name]
        assert settings["NetworkID"] == network.id and settings["IPAddress"].startswith(
            network.attrs["IPAM"]["Config"][0]["Subnet"].rsplit(".", 2)[0])
        assert settings["DNSNames"][:1] == [server.name] and server.id[:12] in settings["DNSNames"]
    finally:
        server.remove(force=True)
        network.remove()


def test_resolv_conf_points_at_the_embedded_dns_and_hosts_has_the_containers_address(engine, net):
    out = ok(engine.docker("run", "--rm", "--network", net, "--hostname", "box", "--domainname", "example.org",
                           "--dns-search", "corp.example", "busybox", "sh", "-c",
                           "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; hostname; "
                           "ip -4 -o addr show eth0"))
    resolv, hosts, rest = out.split("---")
    body = [line for line in resolv.splitlines() if line and not line.startswith("#")]
    assert body == ["nameserver 127.0.0.11", "search corp.example", "options ndots:0"]
    ip = rest.split()[4].split("/")[0]
    assert f"{ip}\tbox.example.org box" in hosts
    assert rest.split()[0] == "box"


def test_static_ip_and_subnet_options(engine):
    n = name("fixed")
    ok(engine.docker("network", "create", "--subnet", "10.77.0.0/24", "--gateway", "10.77.0.254",
                     "--ip-range", "10.77.0.128/25", "--label", "team=qa", n))
    try:
        doc = json.loads(ok(engine.docker("network", "inspect", n)))[0]
        assert doc["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "IPRange": "10.77.0.128/25",
                                          "Gateway": "10.77.0.254"}]
        assert doc["Labels"] == {"team": "qa"} and doc["Driver"] == "bridge" and doc["Internal"] is False
        out = ok(engine.docker("run", "--rm", "--network", n, "--ip", "10.77.0.9", "busybox",
                               "sh", "-c", "ip -4 -o addr show eth0; ip route"))
        assert "inet 10.77.0.9/24" in out and "default via 10.77.0.254" in out
        out = ok(engine.docker("run", "--rm", "--network", n, "busybox", "ip", "-4", "-o", "addr", "show", "eth0"))
        assert "inet 10.77.0.129/24" in out
        r = engine.docker("run", "--rm", "--network", "bridge", "--ip", "172.17.0.9", "busybox", "true")
        assert r.returncode != 0
        assert "user specified IP address is supported on user defined networks only" in r.stderr
        assert n in ok(engine.docker("network", "ls", "--filter", "label=team=qa", "--format", "{{.Name}}"))
    finally:
        engine.docker("network", "rm", n)


def test_two_user_networks_are_isolated_from_each_other(engine):
    a, b = name("isoa"), name("isob")
    ok(engine.docker("network", "create", a))
    ok(engine.docker("network", "create", b))
    server = name("srv")
    try:
        ok(engine.docker("run", "-d", "--name", server, "--network", a, "busybox", "sh", "-c", SERVE))
        ip = ok(engine.docker("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{a}\").IPAddress}}}}",
                              server))
        code, out = fetch(engine, a, f"http://{ip}/")
        assert code == 0, out
        # From the other network: neither the name nor the address reaches it.
        r = engine.docker("run", "--rm", "--network", b, "busybox", "sh", "-c",
                          f"timeout 3 wget -q -O - http://{server}/; exit $?")
        assert r.returncode != 0
        r = engine.docker("run", "--rm", "--network", b, "busybox", "sh", "-c",
                          f"timeout 3 wget -q -O - http://{ip}/; exit $?")
        assert r.returncode != 0 and "hello" not in r.stdout
    finally:
        engine.docker("rm", "-f", server)
        engine.docker("network", "rm", a, b)


def test_an_internal_network_reaches_its_members_but_nothing_else(engine):
    inner = name("internal")
    ok(engine.docker("network", "create", "--internal", inner))
    server = name("isrv")
    try:
        assert json.loads(ok(engine.docker("network", "inspect", inner)))[0]["Internal"] is True
        ok(engine.docker("run", "-d", "--name", server, "--network", inner, "busybox", "sh", "-c", SERVE))
        code, out = fetch(engine, inner, f"http://{server}/")
        assert code == 0, out
        out = ok(engine.docker("run", "--rm", "--network", inner, "busybox", "ip", "route"))
        assert "default" not in out
        # The host (the daemon's namespace) answers on the default bridge's gateway: not from here.
        gateway = json.loads(ok(engine.docker("network", "inspect", "bridge")))[0]["IPAM"]["Config"][0]["Gateway"]
        r = engine.docker("run", "--rm", "--network", inner, "busybox", "ping", "-c", "1", "-W", "1", gateway)
        assert r.returncode != 0
        r = engine.docker("run", "--rm", "busybox", "ping", "-c", "1", "-W", "1", gateway)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        engine.docker("rm", "-f", server)
        engine.docker("network", "rm", inner)


def test_removing_a_network_in_use_is_a_conflict_with_dockers_message(engine, net):
    c = name("busy")
    cid = ok(engine.docker("run", "-d", "--name", c, "--network", net, "busybox", "sleep", "60"))
    r = engine.docker("network", "rm", net)
    assert r.returncode == 1
    assert (f'Error response from daemon: error while removing network: network {net} has active endpoints '
            f'(name:"{c}" id:"{cid[:12]}")') in r.stderr
    client = engine.client()
    import docker.errors
    with pytest.raises(docker.errors.APIError) as e:
        client.networks.get(net).remove()
    assert e.value.status_code == 409
    engine.docker("rm", "-f", c)
    ok(engine.docker("network", "rm", net))


def test_connect_and_disconnect_a_running_container(engine, net):
    other = name("other")
    ok(engine.docker("network", "create", other))
    server, client_c = name("srv"), name("cli")
    try:
        ok(engine.docker("run", "-d", "--name", server, "--network", other, "busybox", "sh", "-c", SERVE))
        ok(engine.docker("run", "-d", "--name", client_c, "--network", net, "busybox", "sleep", "60"))
        fails = engine.docker("exec", client_c, "timeout", "3", "wget", "-q", "-O", "-", f"http://{server}/")
        assert fails.returncode != 0
        ok(engine.docker("network", "connect", "--alias", "helper", other, client_c))
        out = ok(engine.docker("exec", client_c, "timeout", "3", "wget", "-q", "-O", "-", f"http://{server}/"))
        assert out.startswith("hello-from-")
        # The new address is in the container's /etc/hosts, its alias resolves for the others.
        doc = json.loads(ok(engine.docker("inspect", client_c)))[0]["NetworkSettings"]["Networks"]
        assert set(doc) == {net, other} and doc[other]["Aliases"] == ["helper"]
        assert doc[other]["IPAddress"] in ok(engine.docker("exec", client_c, "cat", "/etc/hosts"))
        out = ok(engine.docker("exec", server, "nslookup", "helper"))
        assert doc[other]["IPAddress"] in out
        ok(engine.docker("network", "disconnect", other, client_c))
        fails = engine.docker("exec", client_c, "timeout", "3", "wget", "-q", "-O", "-", f"http://{server}/")
        assert fails.returncode != 0
        out = ok(engine.docker("exec", client_c, "ip", "-o", "link"))
        assert "eth1" not in out
        assert list(json.loads(ok(engine.docker("inspect", client_c)))[0]["NetworkSettings"]["Networks"]) == [net]
        r = engine.docker("network", "disconnect", other, client_c)
        assert r.returncode == 1 and "is not connected to network" in r.stderr
    finally:
        engine.docker("rm", "-f", server, client_c)
        engine.docker("network", "rm", other)


def test_connect_a_stopped_container_takes_effect_at_start(engine, net):
    c = name("later")
    ok(engine.docker("create", "--name", c, "busybox", "ip", "-4", "-o", "addr"))
    try:
        ok(engine.docker("network", "connect", net, c))
        out = ok(engine.docker("start", "-a", c))
        assert "eth0" in out and "eth1" in out
        docs = json.loads(ok(engine.docker("network", "inspect", net)))[0]
        assert docs["Containers"] == {}         # stopped again: no active endpoint
    finally:
        engine.docker("rm", "-f", c)


def test_a_container_on_several_networks_at_create(engine, net):
    other = name("second")
    ok(engine.docker("network", "create", other))
    c = name("multi")
    try:
        # docker-py's networking_config passes several networks at create (API >= 1.44)
        client = engine.client()
        api = client.api
        host_config = api.create_host_config(network_mode=net)
        networking = api.create_networking_config({net: api.create_endpoint_config(aliases=["a1"]),
                                                   other: api.create_endpoint_config(aliases=["a2"])})
        created = api.create_container("busybox", ["sh", "-c", "ip -4 -o addr; sleep 30"], name=c,
                                       host_config=host_config, networking_config=networking)
        api.start(created["Id"])
        doc = api.inspect_container(created["Id"])["NetworkSettings"]["Networks"]
        assert set(doc) == {net, other}
        assert doc[net]["Aliases"] == ["a1"] and doc[other]["Aliases"] == ["a2"]
        routes = ok(engine.docker("exec", c, "ip", "route"))
        assert routes.count("default") == 1
    finally:
        engine.docker("rm", "-f", c)
        engine.docker("network", "rm", other)
