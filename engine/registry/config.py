"""Where a registry lives: its endpoint host for a reference domain and whether plain http is allowed there."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from engine.images.reference import DEFAULT_DOMAIN

# Docker Hub's API is not served at docker.io itself.
HUB_ENDPOINT = "registry-1.docker.io"
HUB_SERVER_ADDRESS = "https://index.docker.io/v1/"
# dockerd treats these as insecure even when nobody configured them.
_DEFAULT_INSECURE_NETS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class RegistryHosts:
    """Decide, per registry host, the endpoint to call and whether it may be insecure."""

    insecure: tuple[str, ...] = ()

    def endpoint(self, domain: str) -> str:
        """Return the host[:port] that serves the /v2/ API for a reference domain."""
        return HUB_ENDPOINT if domain in (DEFAULT_DOMAIN, "index.docker.io") else domain

    def is_insecure(self, domain: str) -> bool:
        """Tell whether plain http (and unverified https) is allowed for domain, as dockerd decides it."""
        host = split_host(domain)
        entries = [_strip_scheme(e.strip()) for e in self.insecure]
        if domain in entries or host in entries or host == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        nets = list(_DEFAULT_INSECURE_NETS)
        for entry in entries:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue  # a host[:port] entry, matched above
        return any(ip in net for net in nets)


def _strip_scheme(entry: str) -> str:
    for prefix in ("http://", "https://"):
        if entry.lower().startswith(prefix):
            return entry[len(prefix):]
    return entry


def registry_config(insecure: tuple[str, ...] | list[str]) -> dict:
    """Describe the registry settings as GET /info's RegistryConfig does (dockerd's loadInsecureRegistries).

    CIDR entries (normalized to their network, user entries first, then ::1/128 and 127.0.0.0/8, each once) go
    to InsecureRegistryCIDRs; host[:port] entries become IndexConfigs that are not Secure; docker.io is the
    one Official index.
    """
    cidrs: list[str] = []
    index_configs: dict[str, dict] = {}
    for entry in [*insecure, "::1/128", "127.0.0.0/8"]:
        entry = _strip_scheme(entry.strip())
        if not entry:
            continue
        net = None
        if "/" in entry:
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                net = None
        if net is not None:
            if str(net) not in cidrs:
                cidrs.append(str(net))
        else:
            index_configs[entry] = {"Name": entry, "Mirrors": [], "Secure": False, "Official": False}
    index_configs[DEFAULT_DOMAIN] = {"Name": DEFAULT_DOMAIN, "Mirrors": [], "Secure": True, "Official": True}
    return {"InsecureRegistryCIDRs": cidrs, "IndexConfigs": dict(sorted(index_configs.items())), "Mirrors": []}


def split_host(domain: str) -> str:
    """Return the host part of host[:port] ([v6] brackets removed)."""
    if domain.startswith("["):
        return domain[1:domain.index("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def normalize_server_address(server: str) -> str:
    """Turn a login serveraddress (https://host/v1/, host:port) into the reference domain it names."""
    s = (server or "").strip()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if s in ("", "index.docker.io", "registry-1.docker.io", "docker.io"):
        return DEFAULT_DOMAIN
    return s
