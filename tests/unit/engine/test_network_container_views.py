"""A container's NetworkSettings and ps fields as Docker shows them, from the record in its bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.network.model import ContainerNet, Endpoint, EndpointConfig
from engine.network.views import list_fields, network_refs, network_settings


@dataclass
class FakeContainer:
    dir: Path
    id: str = "c" * 64
    name: str = "web"
    is_running: bool = True
    config: dict = field(default_factory=lambda: {"Hostname": "c" * 12, "ExposedPorts": {"80/tcp": {}, "443/tcp": {}}})
    host_config: dict = field(default_factory=lambda: {"NetworkMode": "bridge"})


def bridge_record(tmp_path: Path, running: bool = True) -> FakeContainer:
    cnet = ContainerNet("bridge", configs={"n" * 64: EndpointConfig("n" * 64, "bridge")})
    if running:
        cnet.sandbox, cnet.sandbox_id = "/run/x/netns/c", "s" * 64
        cnet.endpoints = {"n" * 64: Endpoint("n" * 64, "e" * 64, "172.17.0.2", 16, "172.17.0.1",
                                             "02:42:ac:11:00:02", "veth1234567", "eth0")}
        cnet.published = [{"proto": "tcp", "container_port": 80, "host_ip": "127.0.0.1", "host_port": 8080,
                           "network_id": "n" * 64}]
    cnet.save(tmp_path)
    return FakeContainer(tmp_path, is_running=running)


def test_a_running_default_bridge_container_fills_the_legacy_fields(tmp_path):
    doc = network_settings(bridge_record(tmp_path))
    assert (doc["IPAddress"], doc["IPPrefixLen"], doc["Gateway"], doc["MacAddress"]) == \
        ("172.17.0.2", 16, "172.17.0.1", "02:42:ac:11:00:02")
    assert doc["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "443/tcp": None}
    assert doc["SandboxKey"] == "/run/x/netns/c" and doc["EndpointID"] == "e" * 64
    ep = doc["Networks"]["bridge"]
    assert ep["NetworkID"] == "n" * 64 and ep["DNSNames"] is None and ep["Aliases"] is None
    assert list(ep) == ["IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts", "GwPriority", "NetworkID",
                        "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address",
                        "GlobalIPv6PrefixLen", "DNSNames"]


def test_a_stopped_container_keeps_its_networks_but_no_addresses_or_ports(tmp_path):
    doc = network_settings(bridge_record(tmp_path, running=False))
    assert doc["Ports"] == {} and doc["IPAddress"] == "" and doc["SandboxKey"] == ""
    assert doc["Networks"]["bridge"]["NetworkID"] == "n" * 64 and doc["Networks"]["bridge"]["IPAddress"] == ""
    ports, settings = list_fields(bridge_record(tmp_path, running=False))
    assert ports == [] and "bridge" in settings["Networks"]


def test_ps_ports_list_published_then_exposed(tmp_path):
    ports, _ = list_fields(bridge_record(tmp_path))
    assert ports == [{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                     {"PrivatePort": 443, "Type": "tcp"}]


def test_user_networks_show_aliases_and_dns_names_but_no_legacy_fields(tmp_path):
    cnet = ContainerNet("app", configs={"a" * 64: EndpointConfig("a" * 64, "app", ["db"], "10.0.0.9")})
    cnet.save(tmp_path)
    c = FakeContainer(tmp_path, is_running=False, host_config={"NetworkMode": "app"})
    doc = network_settings(c)
    ep = doc["Networks"]["app"]
    assert ep["Aliases"] == ["db"] and ep["IPAMConfig"] == {"IPv4Address": "10.0.0.9"}
    assert ep["DNSNames"] == ["web", "db", "c" * 12]
    assert doc["IPAddress"] == "" and doc["Gateway"] == ""
    assert network_refs(c) >= {"app", "a" * 64}


def test_a_container_without_a_record_is_shown_by_its_mode(tmp_path):
    c = FakeContainer(tmp_path, host_config={"NetworkMode": "host"})
    assert network_settings(c)["Networks"] == {} and list_fields(c)[0] == []
