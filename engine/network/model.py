"""Network and per-container network records, as stored on disk and shown by the Engine API."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine import state as st
from engine.network.ipam import Pool

PREDEFINED = ("bridge", "host", "none")
CONTAINER_FILE = "network.json"


@dataclass
class Network:
    id: str
    name: str
    driver: str                      # "bridge" | "host" | "null"
    created_ns: int
    bridge: str = ""                 # the Linux bridge ("" for host and none)
    pools: list[Pool] = field(default_factory=list)
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    ipam_driver: str = "default"
    ipam_options: dict | None = None
    options: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def user_defined(self) -> bool:
        """User-defined bridge networks have the embedded DNS, aliases and static addresses."""
        return not self.predefined

    @property
    def pool(self) -> Pool | None:
        return self.pools[0] if self.pools else None

    def to_api(self, containers: dict | None = None, created_default: str | None = None) -> dict:
        """Shape the network as GET /networks/{id} does (Containers: {id: {Name, EndpointID, ...}})."""
        return {
            "Name": self.name, "Id": self.id,
            "Created": created_default if created_default is not None else st.rfc3339(self.created_ns),
            "Scope": "local", "Driver": self.driver,
            "EnableIPv4": self.driver == "bridge", "EnableIPv6": self.enable_ipv6,
            "IPAM": {"Driver": self.ipam_driver, "Options": self.ipam_options,
                     "Config": [p.to_api() for p in self.pools]},
            "Internal": self.internal, "Attachable": self.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": containers if containers is not None else {},
            "Options": dict(self.options), "Labels": dict(self.labels),
        }

    def record(self) -> dict:
        doc = asdict(self)
        doc["pools"] = [asdict(p) for p in self.pools]
        return doc

    @classmethod
    def from_record(cls, doc: dict) -> "Network":
        doc = dict(doc)
        doc["pools"] = [Pool(p["subnet"], p["gateway"], p.get("ip_range", ""),
                             tuple(tuple(a) for a in p.get("aux", ()))) for p in doc.get("pools", [])]
        return cls(**doc)


def predefined_id(root: Path, name: str) -> str:
    # Stable for one engine root, distinct between engines, like dockerd's per-install random IDs.
    return hashlib.sha256(f"dockweb-network:{root}:{name}".encode()).hexdigest()


@dataclass
class EndpointConfig:
    """What the user asked for on one network (create's EndpointsConfig or connect's EndpointConfig)."""
    network_id: str
    network_name: str
    aliases: list[str] = field(default_factory=list)
    ipv4: str = ""                   # IPAMConfig.IPv4Address ("" = any)
    links: list[str] | None = None
    driver_opts: dict | None = None
    mac: str = ""
    gw_priority: int = 0

    def ipam_config(self) -> dict | None:
        return {"IPv4Address": self.ipv4} if self.ipv4 else None


@dataclass
class Endpoint:
    """One live attachment of a running container to a bridge network."""
    network_id: str
    endpoint_id: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    veth: str
    ifname: str


@dataclass
class ContainerNet:
    """A container's networking: its mode, desired attachments, port requests, and what is live while it runs."""
    mode: str                        # HostConfig.NetworkMode as shown: bridge, none, host, container:<id>, <name>
    join: str = ""                   # container:<id> mode: the id of the container whose namespace is joined
    configs: dict[str, EndpointConfig] = field(default_factory=dict)     # by network id, in attach order
    published: list[dict] = field(default_factory=list)   # last host ports ({proto, container_port, host_ip,
                                                           # host_port}); reused on restart
    sandbox: str = ""                # the namespace file while running
    sandbox_id: str = ""
    endpoints: dict[str, Endpoint] = field(default_factory=dict)         # by network id, while running
    dns: bool = False                # the embedded DNS serves this container

    @property
    def own_namespace(self) -> bool:
        """The engine makes (and plugs) this container's namespace: bridge networks, not none/host/container."""
        return self.mode not in ("none", "host") and not self.mode.startswith("container:")

    def save(self, bundle: Path) -> None:
        doc = {"mode": self.mode, "join": self.join, "configs": [asdict(c) for c in self.configs.values()],
               "published": self.published, "sandbox": self.sandbox, "sandbox_id": self.sandbox_id,
               "endpoints": [asdict(e) for e in self.endpoints.values()], "dns": self.dns}
        st.write_json(bundle / CONTAINER_FILE, doc, fsync=False)

    @classmethod
    def load(cls, bundle: Path) -> "ContainerNet | None":
        doc = st.read_json(bundle / CONTAINER_FILE)
        if not doc:
            return None
        configs = [EndpointConfig(**c) for c in doc.get("configs", [])]
        endpoints = [Endpoint(**e) for e in doc.get("endpoints", [])]
        return cls(mode=doc["mode"], join=doc.get("join", ""), configs={c.network_id: c for c in configs},
                   published=doc.get("published", []), sandbox=doc.get("sandbox", ""),
                   sandbox_id=doc.get("sandbox_id", ""), endpoints={e.network_id: e for e in endpoints},
                   dns=doc.get("dns", False))
