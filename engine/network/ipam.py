"""IP address management: pick subnets from the pools and addresses inside a subnet (pure, no I/O)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from engine.errors import Conflict, Forbidden, InvalidParameter

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address


@dataclass(frozen=True)
class Pool:
    subnet: str            # "172.18.0.0/16"
    gateway: str           # "172.18.0.1"
    ip_range: str = ""     # addresses for containers come from here when set ("172.18.5.0/24")
    aux: tuple[tuple[str, str], ...] = ()   # AuxiliaryAddresses: reserved (name, address)

    @property
    def network(self) -> IPv4Net:
        return IPv4Net(self.subnet)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def to_api(self) -> dict:
        doc = {"Subnet": self.subnet}
        if self.ip_range:
            doc["IPRange"] = self.ip_range
        doc["Gateway"] = self.gateway
        if self.aux:
            doc["AuxiliaryAddresses"] = dict(self.aux)
        return doc


def pick_subnet(pools: Iterable[tuple[str, int]], taken: Iterable[str]) -> str:
    """Return the first subnet cut from the pools that overlaps none of the taken networks."""
    used = [IPv4Net(t, strict=False) for t in taken]
    for base, size in pools:
        for candidate in IPv4Net(base).subnets(new_prefix=size):
            if not any(candidate.overlaps(u) for u in used):
                return str(candidate)
    raise Forbidden("could not find an available, non-overlapping IPv4 address pool among the defaults to "
                    "assign to the network")


def pool_from_request(cfg: dict, taken: Iterable[str]) -> Pool:
    """Validate one IPAM.Config entry ({Subnet, IPRange, Gateway, AuxiliaryAddresses}) into a Pool."""
    subnet = cfg.get("Subnet") or ""
    try:
        net = IPv4Net(subnet, strict=False)
    except ValueError:
        if ":" in subnet:
            raise InvalidParameter(f"IPv6 subnets are not supported by this engine: {subnet}") from None
        raise InvalidParameter(f"invalid subnet {subnet!r}: expected an IPv4 CIDR such as 172.28.0.0/16") from None
    if str(net) != subnet:
        raise InvalidParameter(f"invalid network config: invalid subnet {subnet}: it should be {net}")
    if net.prefixlen > 30:
        raise InvalidParameter(f"subnet {subnet} is too small: it needs room for a gateway and a container "
                               "(/30 at most)")
    for t in taken:
        if net.overlaps(IPv4Net(t, strict=False)):
            raise Forbidden("invalid pool request: Pool overlaps with other one on this address space")
    ip_range = cfg.get("IPRange") or ""
    if ip_range:
        try:
            rng = IPv4Net(ip_range, strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid ip-range {ip_range!r}") from None
        if not rng.subnet_of(net):
            raise InvalidParameter(f"ip-range {ip_range} is not inside subnet {subnet}")
        ip_range = str(rng)
    gateway = cfg.get("Gateway") or ""
    if gateway:
        try:
            gw = IPv4Addr(gateway)
        except ValueError:
            raise InvalidParameter(f"invalid gateway address {gateway!r}") from None
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidParameter(f"gateway {gateway} is not a host address of subnet {subnet}")
    else:
        gw = net.network_address + 1
    aux = []
    for name, addr in (cfg.get("AuxiliaryAddresses") or {}).items():
        try:
            a = IPv4Addr(addr)
        except ValueError:
            raise InvalidParameter(f"invalid auxiliary address {name}={addr!r}") from None
        if a not in net:
            raise InvalidParameter(f"auxiliary address {name}={addr} is not inside subnet {subnet}")
        aux.append((name, str(a)))
    return Pool(str(net), str(gw), ip_range, tuple(aux))


def default_pool(subnet: str, gateway: str = "") -> Pool:
    net = IPv4Net(subnet)
    return Pool(str(net), gateway or str(net.network_address + 1))


def reserved(pool: Pool) -> set[IPv4Addr]:
    """Addresses never handed to a container: network, broadcast, gateway and auxiliary addresses."""
    net = pool.network
    out = {net.network_address, net.broadcast_address, IPv4Addr(pool.gateway)}
    out.update(IPv4Addr(a) for _n, a in pool.aux)
    return out


def allocate(pool: Pool, in_use: set[str], wanted: str = "", network_name: str = "") -> str:
    """Return a free address: wanted if given (checked), else the lowest free one of the range or subnet."""
    net = pool.network
    used = {IPv4Addr(a) for a in in_use} | reserved(pool)
    if wanted:
        try:
            addr = IPv4Addr(wanted)
        except ValueError:
            raise InvalidParameter(f"invalid IPv4 address {wanted!r}") from None
        if addr not in net:
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {wanted}")
        if addr in used:
            raise Conflict(f"failed to set up container networking: Address already in use: {wanted} is "
                           f"taken on network {network_name}")
        return str(addr)
    space = IPv4Net(pool.ip_range) if pool.ip_range else net
    for addr in space.hosts() if space.prefixlen < 31 else space:
        if addr not in used:
            return str(addr)
    raise Conflict(f"no available IPv4 addresses on network {network_name} ({space})")


def mac_for(ip: str) -> str:
    """Return Docker's classic MAC for an address: 02:42 followed by the four bytes of the IPv4 address."""
    b = IPv4Addr(ip).packed
    return "02:42:" + ":".join(f"{x:02x}" for x in b)
