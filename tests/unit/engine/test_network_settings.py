"""The operator's network settings: pools, default bridge and NAT switches from config or DOCKWEB_NET_*."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import EngineConfig
from engine.network.settings import DEFAULT_POOLS, NetworkSettings, parse_pools


def test_defaults_are_dockers():
    s = NetworkSettings.from_config(EngineConfig(root=Path("/x")), environ={})
    assert s.pools == DEFAULT_POOLS and s.ip_masq and s.dns_forward and s.bridge_name == "dockweb0"


def test_environment_overrides_defaults_and_config_overrides_the_environment():
    env = {"DOCKWEB_NET_POOLS": "10.10.0.0/16:24", "DOCKWEB_NET_IP_MASQ": "0",
           "DOCKWEB_NET_BRIDGE_CIDR": "10.99.0.1/24"}
    s = NetworkSettings.from_config(EngineConfig(root=Path("/x")), environ=env)
    assert s.pools == (("10.10.0.0/16", 24),) and s.ip_masq is False and s.bridge_cidr == "10.99.0.1/24"
    cfg = EngineConfig(root=Path("/x"), extra={"network": {"ip_masq": True, "pools": [{"base": "10.1.0.0/16",
                                                                                        "size": 20}]}})
    s = NetworkSettings.from_config(cfg, environ=env)
    assert s.ip_masq is True and s.pools == (("10.1.0.0/16", 20),)


@pytest.mark.parametrize("value", ["10.10.0.1/16:24", "10.10.0.0/16:8", "10.10.0.0/16:31", ""])
def test_bad_pools_are_refused(value):
    with pytest.raises(ValueError):
        parse_pools(value)


def test_bad_booleans_and_bridge_names_are_refused():
    with pytest.raises(ValueError, match="is not a boolean"):
        NetworkSettings.from_config(EngineConfig(root=Path("/x")), environ={"DOCKWEB_NET_IP_MASQ": "maybe"})
    with pytest.raises(ValueError, match="1 to 15 characters"):
        NetworkSettings.from_config(EngineConfig(root=Path("/x")), environ={"DOCKWEB_NET_BRIDGE": "x" * 16})
