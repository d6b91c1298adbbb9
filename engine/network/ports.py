"""Published ports: resolve -p/-P requests to host ports, hold them, and shape them as Docker shows them."""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from engine.errors import InvalidParameter, SystemFailure


@dataclass(frozen=True)
class Mapping:
    """One published port: host_ip:host_port -> container_port/proto ("0.0.0.0" = every address)."""
    proto: str
    container_port: int
    host_ip: str
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


class PortInUse(SystemFailure):
    pass


def split_key(key: str) -> tuple[int, str]:
    """Split "80/tcp" (or "80") into (80, "tcp")."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidParameter(f"invalid proto: {proto}")
    try:
        n = int(port)
    except ValueError:
        raise InvalidParameter(f'invalid port specification: "{port}"') from None
    if not 0 < n < 65536:
        raise InvalidParameter(f'invalid port specification: "{port}"')
    return n, proto


def requested(port_bindings: dict, exposed: dict, publish_all: bool) -> dict[str, list[dict]]:
    """Merge HostConfig.PortBindings with -P (every exposed port without a binding gets a random one)."""
    out: dict[str, list[dict]] = {}
    for key, lst in (port_bindings or {}).items():
        port, proto = split_key(key)
        out[f"{port}/{proto}"] = [{"HostIp": b.get("HostIp") or "", "HostPort": b.get("HostPort") or ""}
                                  for b in (lst or [])] or [{"HostIp": "", "HostPort": ""}]
    if publish_all:
        for key in exposed or {}:
            port, proto = split_key(key)
            out.setdefault(f"{port}/{proto}", [{"HostIp": "", "HostPort": ""}])
    return out


def host_port_range(spec: str) -> tuple[int, int]:
    """Parse a HostPort: "" (any: (0, 0)), "8080", or a range "8000-8010"."""
    if not spec:
        return 0, 0
    lo, _, hi = spec.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise InvalidParameter(f'invalid port specification: "{spec}"') from None
    if not (0 < a <= b < 65536):
        raise InvalidParameter(f'invalid port specification: "{spec}"')
    return a, b


def normalize_host_ip(ip: str) -> str:
    if not ip:
        return "0.0.0.0"
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        raise InvalidParameter(f"invalid host IP address {ip!r} in a port binding") from None
    return str(addr)


class PortReservations:
    """Sockets bound (never listening) on each published host port, so no other process or container takes it."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str, int], socket.socket] = {}

    def reserve(self, proto: str, host_ip: str, lo: int, hi: int, prefer: int = 0) -> int:
        """Bind a socket on host_ip in [lo, hi] (any port when lo == 0), return the port; PortInUse otherwise."""
        if lo == 0:
            candidates = [prefer] if prefer else []
            candidates.append(0)
        else:
            candidates = ([prefer] if prefer and lo <= prefer <= hi else []) + list(range(lo, hi + 1))
        last_err: OSError | None = None
        for port in candidates:
            try:
                return self._bind(proto, host_ip, port)
            except OSError as e:
                last_err = e
                if e.errno not in (errno.EADDRINUSE, errno.EACCES):
                    break
        shown = f"{lo}-{hi}" if hi != lo else str(lo)
        if last_err is not None and last_err.errno == errno.EADDRNOTAVAIL:
            raise PortInUse(f"Bind for {host_ip}:{shown} failed: the address is not available on this host")
        raise PortInUse(f"Bind for {host_ip}:{shown} failed: port is already allocated")

    def _bind(self, proto: str, host_ip: str, port: int) -> int:
        kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
        family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
        s = socket.socket(family, kind | socket.SOCK_CLOEXEC)
        try:
            s.bind((host_ip, port))
        except OSError:
            s.close()
            raise
        port = s.getsockname()[1]
        self._held[(proto, host_ip, port)] = s
        return port

    def release(self, proto: str, host_ip: str, port: int) -> None:
        s = self._held.pop((proto, host_ip, port), None)
        if s is not None:
            s.close()

    def held(self) -> set[tuple[str, str, int]]:
        return set(self._held)


def inspect_ports(exposed: dict, mappings: list[Mapping]) -> dict:
    """NetworkSettings.Ports: {"80/tcp": [{"HostIp","HostPort"}], "443/tcp": None for exposed, unpublished}."""
    out: dict = {}
    for key in exposed or {}:
        port, proto = split_key(key)
        out[f"{port}/{proto}"] = None
    for m in mappings:
        lst = out.get(m.key) or []
        lst.append({"HostIp": m.host_ip, "HostPort": str(m.host_port)})
        out[m.key] = lst
    return out


def list_ports(exposed: dict, mappings: list[Mapping]) -> list[dict]:
    """Ports of a GET /containers/json item: published ones with IP and PublicPort, the others bare."""
    out = []
    published = {m.key for m in mappings}
    for m in mappings:
        out.append({"IP": m.host_ip, "PrivatePort": m.container_port, "PublicPort": m.host_port, "Type": m.proto})
    for key in exposed or {}:
        port, proto = split_key(key)
        if f"{port}/{proto}" not in published:
            out.append({"PrivatePort": port, "Type": proto})
    return out
