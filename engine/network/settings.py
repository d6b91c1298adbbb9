"""The operator's network settings: address pools, default bridge, masquerading, DNS forwarding."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Mapping

from engine.config import EngineConfig

# Docker's default address pools: 172.17-31.0.0/16 one /16 each, then 192.168.0.0/16 cut into /20s.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (("172.17.0.0/16", 16), ("172.18.0.0/16", 16),
                                              ("172.19.0.0/16", 16), ("172.20.0.0/14", 16),
                                              ("172.24.0.0/14", 16), ("172.28.0.0/14", 16),
                                              ("192.168.0.0/16", 20))


@dataclass(frozen=True)
class NetworkSettings:
    pools: tuple[tuple[str, int], ...] = DEFAULT_POOLS   # (base CIDR, size of each subnet cut from it)
    bridge_name: str = "dockweb0"                        # the default "bridge" network's Linux bridge
    bridge_cidr: str = ""                                # e.g. "172.17.0.1/16"; "" = first free pool subnet
    ip_masq: bool = True                                 # masquerade containers' traffic leaving the host
    ip_forward: bool = True                              # set net.ipv4.ip_forward=1 when a bridge is created
    dns_forward: bool = True                             # forward names the embedded DNS does not know upstream
    mtu: int = 1500
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: EngineConfig, environ: Mapping[str, str] = os.environ) -> "NetworkSettings":
        """Read config.extra["network"] (a dict), then DOCKWEB_NET_* variables; ValueError on bad values."""
        given = dict((config.extra or {}).get("network") or {})
        env = {"pools": "DOCKWEB_NET_POOLS", "bridge_name": "DOCKWEB_NET_BRIDGE",
               "bridge_cidr": "DOCKWEB_NET_BRIDGE_CIDR", "ip_masq": "DOCKWEB_NET_IP_MASQ",
               "ip_forward": "DOCKWEB_NET_IP_FORWARD", "dns_forward": "DOCKWEB_NET_DNS_FORWARD",
               "mtu": "DOCKWEB_NET_MTU"}
        for key, var in env.items():
            if key not in given and environ.get(var, "") != "":
                given[key] = environ[var]
        kwargs: dict = {}
        if "pools" in given:
            kwargs["pools"] = parse_pools(given["pools"])
        for key in ("ip_masq", "ip_forward", "dns_forward"):
            if key in given:
                kwargs[key] = _bool(key, given[key])
        if "bridge_name" in given:
            name = str(given["bridge_name"])
            if not 0 < len(name) <= 15 or "/" in name or " " in name:
                raise ValueError(f"bridge name {name!r}: a Linux interface name has 1 to 15 characters, no / or space")
            kwargs["bridge_name"] = name
        if given.get("bridge_cidr"):
            iface = ipaddress.IPv4Interface(str(given["bridge_cidr"]))
            kwargs["bridge_cidr"] = str(iface)
        if "mtu" in given:
            kwargs["mtu"] = int(given["mtu"])
        return cls(**kwargs)


def parse_pools(value) -> tuple[tuple[str, int], ...]:
    """Parse "10.10.0.0/16:24,192.168.0.0/16:20" (base:size) or [{"base":..,"size":..}] into pool tuples."""
    items = []
    if isinstance(value, str):
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            base, _, size = part.partition(":")
            items.append((base, size))
    else:
        items = [(p["base"], p["size"]) for p in value]
    pools = []
    for base, size in items:
        net = ipaddress.IPv4Network(str(base).strip(), strict=True)
        n = int(size) if str(size).strip() else net.prefixlen
        if not net.prefixlen <= n <= 30:
            raise ValueError(f"address pool {base}: size /{n} must be between /{net.prefixlen} and /30")
        pools.append((str(net), n))
    if not pools:
        raise ValueError("no address pool given")
    return tuple(pools)


def _bool(key: str, v) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"network setting {key}: {v!r} is not a boolean")
