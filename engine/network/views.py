"""A container's networking as inspect and ps show it, read from the record in its bundle."""

from __future__ import annotations

from engine.network import ports as portsmod
from engine.network.model import ContainerNet


def container_net(c) -> ContainerNet:
    cnet = ContainerNet.load(c.dir)
    if cnet is None:
        cnet = ContainerNet(c.host_config.get("NetworkMode") or "bridge")
    return cnet


def dns_names(c, aliases: list[str]) -> list[str]:
    """moby's buildEndpointDNSNames: name, aliases, short id, hostname, without repeats."""
    names = [c.name, *aliases, c.id[:12]]
    if c.config.get("Hostname"):
        names.append(c.config["Hostname"])
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def endpoint_settings(c, cnet: ContainerNet, running: bool) -> dict:
    """NetworkSettings.Networks: one EndpointSettings per attached network."""
    out = {}
    for nid, cfg in cnet.configs.items():
        ep = cnet.endpoints.get(nid) if running else None
        user = cfg.network_name not in ("bridge", "host", "none")
        out[cfg.network_name] = {
            "IPAMConfig": cfg.ipam_config(), "Links": cfg.links, "Aliases": list(cfg.aliases) or None,
            "MacAddress": ep.mac if ep else cfg.mac, "DriverOpts": cfg.driver_opts, "GwPriority": cfg.gw_priority,
            "NetworkID": nid,
            "EndpointID": ep.endpoint_id if ep else (cnet.sandbox_id if running and not user else ""),
            "Gateway": ep.gateway if ep else "", "IPAddress": ep.ip if ep else "",
            "IPPrefixLen": ep.prefixlen if ep else 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": dns_names(c, cfg.aliases) if user else None,
        }
    return out


def mappings(cnet: ContainerNet, running: bool) -> list[portsmod.Mapping]:
    if not running:
        return []
    return [portsmod.Mapping(p["proto"], p["container_port"], p["host_ip"], p["host_port"])
            for p in cnet.published if p.get("network_id", "") in cnet.endpoints]


def network_settings(c) -> dict:
    """NetworkSettings of GET /containers/{id}/json (API 1.50 shape, legacy top-level fields included)."""
    cnet = container_net(c)
    running = c.is_running
    networks = endpoint_settings(c, cnet, running)
    legacy = networks.get("bridge") if cnet.mode in ("bridge", "default") else None
    exposed = c.config.get("ExposedPorts") or {}
    shows = running and cnet.mode != "host" and not cnet.mode.startswith("container:")
    ports = portsmod.inspect_ports(exposed, mappings(cnet, running)) if shows else {}
    return {
        "Bridge": "", "SandboxID": cnet.sandbox_id if running else "",
        "SandboxKey": cnet.sandbox if running else "", "Ports": ports,
        "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": legacy["EndpointID"] if legacy else "", "Gateway": legacy["Gateway"] if legacy else "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": legacy["IPAddress"] if legacy else "", "IPPrefixLen": legacy["IPPrefixLen"] if legacy else 0,
        "IPv6Gateway": "", "MacAddress": legacy["MacAddress"] if legacy else "",
        "Networks": networks,
    }


def list_fields(c) -> tuple[list[dict], dict]:
    """(Ports, NetworkSettings) of a GET /containers/json item."""
    cnet = container_net(c)
    running = c.is_running
    exposed = c.config.get("ExposedPorts") or {}
    shows = running and cnet.mode != "host" and not cnet.mode.startswith("container:")
    ports = portsmod.list_ports(exposed, mappings(cnet, running)) if shows else []
    return ports, {"Networks": endpoint_settings(c, cnet, running)}


def network_refs(c) -> set[str]:
    """Names and ids of the networks a container is attached to (ps --filter network=)."""
    cnet = container_net(c)
    refs = {cnet.mode}
    for nid, cfg in cnet.configs.items():
        refs.update((nid, cfg.network_name))
    return refs
