"""GET /info's RegistryConfig lists the insecure registries as dockerd does (CIDRs, then host entries)."""

from __future__ import annotations

from engine.api.routes import load_routes
from engine.config import EngineConfig
from engine.registry.config import RegistryHosts, registry_config
from tests.unit.engine.test_api_harness import FakeEngine, get_json, running_server

HUB = {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}


def test_without_configuration_only_loopback_is_insecure():
    assert registry_config(()) == {"InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
                                   "IndexConfigs": {"docker.io": HUB}, "Mirrors": []}


def test_cidrs_are_normalized_and_hosts_become_insecure_index_configs():
    doc = registry_config(("10.1.2.3/16", "registry.lan:5000", "http://other.lan", "127.0.0.1/8", "fd00::1/64",
                           "10.1.0.0/16"))
    assert doc["InsecureRegistryCIDRs"] == ["10.1.0.0/16", "127.0.0.0/8", "fd00::/64", "::1/128"]
    assert doc["IndexConfigs"] == {
        "docker.io": HUB,
        "other.lan": {"Name": "other.lan", "Mirrors": [], "Secure": False, "Official": False},
        "registry.lan:5000": {"Name": "registry.lan:5000", "Mirrors": [], "Secure": False, "Official": False},
    }


def test_entries_with_a_scheme_are_insecure_without_it():
    hosts = RegistryHosts(("http://registry.lan:5000", "https://10.9.0.0/16"))
    assert hosts.is_insecure("registry.lan:5000")
    assert hosts.is_insecure("10.9.8.7:443")
    assert not hosts.is_insecure("registry.lan:5001") and not hosts.is_insecure("example.com")


def test_info_shows_the_engines_insecure_registries(tmp_path):
    engine = FakeEngine(tmp_path / "root")
    engine.config = EngineConfig(root=tmp_path / "root", socket=tmp_path / "root" / "engine.sock",
                                 insecure_registries=("registry.lan:5000", "192.168.7.0/24"))
    with running_server(tmp_path, load_routes(("system",)), engine) as server:
        status, doc = get_json(server, "/info")
    assert status == 200
    config = doc["RegistryConfig"]
    assert config["InsecureRegistryCIDRs"] == ["192.168.7.0/24", "::1/128", "127.0.0.0/8"]
    assert config["IndexConfigs"]["registry.lan:5000"]["Secure"] is False
    assert config["IndexConfigs"]["docker.io"] == HUB
