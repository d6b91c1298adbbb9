"""Networks of one engine: create and remove bridge networks, plug containers in at start, unplug at stop."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path

from engine import state as st
from engine.config import EngineConfig
from engine.errors import Conflict, Forbidden, InvalidParameter, NotFound, SystemFailure
from engine.events import EventLog
from engine.network import files, ipam, netns
from engine.network.firewall import BridgeRules, DnatRule, Firewall
from engine.network.model import (PREDEFINED, ContainerNet, Endpoint, EndpointConfig, Network,
                                  predefined_id)
from engine.network.ports import Mapping, PortReservations, normalize_host_ip, host_port_range, requested
from engine.network.settings import NetworkSettings

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
USER_BRIDGE_PREFIX = "dw-"          # Docker's are br-<id>: ours never collide with a dockerd on the same host


class NetworkManager:
    """Own the networks of one engine root and every container's attachment to them."""

    def __init__(self, config: EngineConfig, events: EventLog, settings: NetworkSettings | None = None) -> None:
        self.config = config
        self.events = events
        self.settings = settings or NetworkSettings.from_config(config)
        self.dir = config.root / "networks"
        self.netns_dir = config.run_dir / "netns"
        self.containers = None          # the ContainerManager; set when it is built
        self._lock = threading.RLock()
        self._nets: dict[str, Network] = {}
        self._cnets: dict[str, ContainerNet] = {}
        self._worker = None
        self._firewall = Firewall()
        self._ports = PortReservations()
        self._dns = None
        self._ip_forward_set = False
        try:
            self._host_resolv = Path("/etc/resolv.conf").read_text()
        except OSError:
            self._host_resolv = ""

    # ------------------------------------------------------------------ startup

    def load(self) -> None:
        """Read the network records; create the predefined bridge, host and none networks on first use."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in sorted(self.dir.glob("*.json")):
            doc = st.read_json(f)
            if doc:
                net = Network.from_record(doc)
                self._nets[net.id] = net
        for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
            if self._by_name(name) is None:
                net = Network(predefined_id(self.config.root, name), name, driver, time.time_ns())
                if name == "bridge":
                    net.bridge = self.settings.bridge_name
                    net.pools = [self._default_bridge_pool()]
                    net.options = {"com.docker.network.bridge.default_bridge": "true",
                                   "com.docker.network.bridge.enable_icc": "true",
                                   "com.docker.network.bridge.enable_ip_masquerade":
                                       "true" if self.settings.ip_masq else "false",
                                   "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                                   "com.docker.network.bridge.name": self.settings.bridge_name,
                                   "com.docker.network.driver.mtu": str(self.settings.mtu)}
                self._save_network(net)
                self._nets[net.id] = net

    def _default_bridge_pool(self) -> ipam.Pool:
        if self.settings.bridge_cidr:
            iface = ipaddress.IPv4Interface(self.settings.bridge_cidr)
            return ipam.Pool(str(iface.network), str(iface.ip))
        taken = [p.subnet for n in self._nets.values() for p in n.pools]
        return ipam.default_pool(ipam.pick_subnet(self.settings.pools, taken))

    def adopt(self, c) -> None:
        """Take a container that kept running while the daemon was down: its ports and DNS come back."""
        cnet = ContainerNet.load(c.dir)
        if cnet is None:
            return
        with self._lock:
            self._cnets[c.id] = cnet
            if not cnet.sandbox:
                return
            if not netns.is_bound(Path(cnet.sandbox)):
                log.warning("container %s runs but its network namespace %s is gone", c.id, cnet.sandbox)
                return
            for m in self._mappings(cnet):
                try:
                    self._ports.reserve(m.proto, m.host_ip, m.host_port, m.host_port)
                except SystemFailure as e:
                    log.warning("container %s: re-reserving %s:%d: %s", c.id, m.host_ip, m.host_port, e.message)
            if cnet.dns:
                try:
                    self._dns_server().add(c.id, self._netlink().dns_socket(Path(cnet.sandbox)))
                except SystemFailure as e:
                    log.warning("container %s: embedded DNS not restored: %s", c.id, e.message)

    def reconcile(self) -> None:
        """After the containers are loaded: drop stale namespaces, bridges and rules a crash left behind."""
        with self._lock:
            live = {cn.sandbox for cn in self._cnets.values() if cn.sandbox}
            if self.netns_dir.is_dir():
                for f in self.netns_dir.iterdir():
                    if str(f) not in live:
                        try:
                            netns.remove(f)
                        except SystemFailure as e:
                            log.warning("removing stale network namespace: %s", e.message)
            names = {name for _i, name in socket.if_nameindex()}
            ours = {n.bridge for n in self._nets.values() if n.bridge}
            if names & ours or any(n.startswith(USER_BRIDGE_PREFIX) for n in names):
                self._remove_stale_links()
                self._sync_firewall()

    def _remove_stale_links(self) -> None:
        ours = {n.bridge for n in self._nets.values() if n.bridge}
        veths = {ep.veth for cn in self._cnets.values() for ep in cn.endpoints.values()}
        for name, kind, master in self._netlink().links():
            if kind == "bridge" and name.startswith(USER_BRIDGE_PREFIX) and name not in ours:
                log.info("removing stale bridge %s", name)
                self._netlink().delete_link(name)
            elif kind == "veth" and master in ours and name not in veths:
                log.info("removing stale veth %s", name)
                self._netlink().delete_link(name)

    def close(self) -> None:
        if self._dns is not None:
            self._dns.close()
        if self._worker is not None:
            self._worker.close()

    # ------------------------------------------------------------------ lazily started machinery

    def _netlink(self):
        if self._worker is None:
            from engine.network.links import NetlinkWorker
            self._worker = NetlinkWorker()
        return self._worker

    def _dns_server(self):
        if self._dns is None:
            from engine.network.dns import DnsServer
            self._dns = DnsServer(self._resolve, self._reverse, self._upstreams, self.settings.dns_forward)
        return self._dns

    # ------------------------------------------------------------------ lookup

    def get(self, ref: str) -> Network:
        """Resolve a network by full id, name, or unique id prefix; NotFound otherwise."""
        with self._lock:
            if ref in self._nets:
                return self._nets[ref]
            net = self._by_name(ref)
            if net is not None:
                return net
            found = [n for n in self._nets.values() if ref and n.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def _by_name(self, name: str) -> Network | None:
        for n in self._nets.values():
            if n.name == name:
                return n
        return None

    def all(self) -> list[Network]:
        with self._lock:
            order = {name: i for i, name in enumerate(PREDEFINED)}
            return sorted(self._nets.values(), key=lambda n: (order.get(n.name, 9), n.created_ns, n.name))

    def endpoints_of(self, net: Network) -> dict[str, Endpoint]:
        """The running containers on a network: {container id: endpoint}."""
        with self._lock:
            return {cid: cn.endpoints[net.id] for cid, cn in self._cnets.items() if net.id in cn.endpoints}

    def containers_doc(self, net: Network) -> dict:
        """Network inspect's Containers: {id: {Name, EndpointID, MacAddress, IPv4Address, IPv6Address}}."""
        out = {}
        for cid, ep in self.endpoints_of(net).items():
            name = self._container_name(cid)
            out[cid] = {"Name": name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac,
                        "IPv4Address": f"{ep.ip}/{ep.prefixlen}", "IPv6Address": ""}
        if net.name in ("host", "none"):
            for cid, cn in self._cnets.items():
                if cn.mode == net.name and cn.sandbox_id and self._is_running(cid):
                    out[cid] = {"Name": self._container_name(cid), "EndpointID": cn.sandbox_id, "MacAddress": "",
                                "IPv4Address": "", "IPv6Address": ""}
        return out

    def to_api(self, net: Network, with_containers: bool = True) -> dict:
        return net.to_api(self.containers_doc(net) if with_containers else {})

    # ------------------------------------------------------------------ networks: create, remove, prune

    def create(self, body: dict) -> tuple[str, str]:
        """POST /networks/create: validate, create the bridge, save; return (id, warning)."""
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: expected an object with the network's Name")
        name = body.get("Name") or ""
        if not name:
            raise InvalidParameter("network name is required: give the network a name")
        if not NAME_RE.match(name):
            raise InvalidParameter(f'invalid name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        if name in PREDEFINED:
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        if body.get("EnableIPv6"):
            raise InvalidParameter("IPv6 networks are not supported by this engine: create the network without "
                                   "--ipv6")
        if body.get("Scope") not in (None, "", "local"):
            raise InvalidParameter(f"network scope {body['Scope']!r} is not supported: only local networks exist "
                                   "on this engine")
        if body.get("ConfigOnly") or (body.get("ConfigFrom") or {}).get("Network"):
            raise InvalidParameter("config-only networks are not supported by this engine")
        ipam_doc = body.get("IPAM") or {}
        ipam_driver = ipam_doc.get("Driver") or "default"
        if ipam_driver != "default":
            raise NotFound(f'plugin "{ipam_driver}" not found')
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        mtu = self.settings.mtu
        if "com.docker.network.driver.mtu" in options:
            try:
                mtu = int(options["com.docker.network.driver.mtu"])
            except ValueError:
                raise InvalidParameter("invalid MTU in com.docker.network.driver.mtu") from None
        with self._lock:
            if self._by_name(name) is not None:
                raise Conflict(f"network with name {name} already exists")
            nid = st.new_id()
            bridge = options.get("com.docker.network.bridge.name") or USER_BRIDGE_PREFIX + nid[:12]
            if len(bridge) > 15:
                raise InvalidParameter(f"bridge name {bridge!r} is longer than the 15 characters Linux allows")
            if any(n.bridge == bridge for n in self._nets.values()):
                raise Conflict(f"bridge name {bridge} is already used by another network")
            taken = self._taken_subnets()
            configs = [c for c in ipam_doc.get("Config") or [] if ":" not in (c.get("Subnet") or "")]
            if any(":" in (c.get("Subnet") or "") for c in ipam_doc.get("Config") or []):
                raise InvalidParameter("IPv6 subnets are not supported by this engine")
            if configs:
                pools = []
                for cfg in configs:
                    pool = ipam.pool_from_request(cfg, taken)
                    pools.append(pool)
                    taken.append(pool.subnet)
            else:
                pools = [ipam.default_pool(ipam.pick_subnet(self.settings.pools, taken))]
            net = Network(nid, name, "bridge", time.time_ns(), bridge=bridge, pools=pools,
                          internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
                          ipam_driver=ipam_driver, ipam_options=ipam_doc.get("Options"), options=options,
                          labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()})
            self._bring_up(net, mtu)
            self._nets[nid] = net
            try:
                self._save_network(net)
                self._sync_firewall()
            except BaseException:
                self._nets.pop(nid, None)
                self._netlink().delete_link(bridge)
                _unlink(self.dir / f"{nid}.json")
                raise
        self.events.publish("network", "create", nid, {"name": name, "type": "bridge"})
        return nid, ""

    def _taken_subnets(self) -> list[str]:
        taken = [p.subnet for n in self._nets.values() for p in n.pools]
        ours = {p.subnet for n in self._nets.values() for p in n.pools}
        taken += [r for r in self._netlink().routes() if r not in ours]
        return taken

    def remove(self, ref: str) -> None:
        """DELETE /networks/{id}: refuse predefined and in-use networks."""
        with self._lock:
            net = self.get(ref)
            if net.predefined:
                raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
            self._remove_locked(net)

    def _remove_locked(self, net: Network) -> None:
        active = self.endpoints_of(net)
        if active:
            shown = ", ".join(f'name:"{self._container_name(cid)}" id:"{cid[:12]}"' for cid in list(active)[:3])
            more = f", and {len(active) - 3} more" if len(active) > 3 else ""
            raise Conflict(f"error while removing network: network {net.name} has active endpoints "
                           f"({shown}{more})")
        # The bridge first: a crash after it leaves a record whose bridge is simply re-created on use.
        if _link_exists(net.bridge):
            self._netlink().delete_link(net.bridge)
        _unlink(self.dir / f"{net.id}.json")
        self._nets.pop(net.id, None)
        self._sync_firewall()
        self.events.publish("network", "destroy", net.id, {"name": net.name, "type": net.driver})

    def prune(self, filters: dict[str, list[str]]) -> dict:
        """POST /networks/prune: remove the user-defined networks no running container uses."""
        from engine.containers.manager import _labels_match, _until_cutoff
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise InvalidParameter(f"invalid filter '{key}'")
        until = filters.get("until", [])
        cutoff = _until_cutoff(until[-1]) if until else None
        deleted = []
        with self._lock:
            for net in self.all():
                if net.predefined or self.endpoints_of(net):
                    continue
                if not _labels_match(net.labels, filters):
                    continue
                if cutoff is not None and net.created_ns / 1e9 >= cutoff:
                    continue
                self._remove_locked(net)
                deleted.append(net.name)
        self.events.publish("network", "prune", "", {})
        return {"NetworksDeleted": deleted or None}

    def _save_network(self, net: Network) -> None:
        st.write_json(self.dir / f"{net.id}.json", net.record(), fsync=False)

    def _bring_up(self, net: Network, mtu: int | None = None) -> None:
        """Make the network's bridge exist with its gateway address (and pick a free subnet for a fresh bridge)."""
        if _link_exists(net.bridge):
            return
        worker = self._netlink()
        if net.name == "bridge" and not self.settings.bridge_cidr and not self.endpoints_of(net):
            # The default subnet was chosen without looking at the routes: move it if something took it.
            ours = {p.subnet for n in self._nets.values() for p in n.pools if n.id != net.id}
            routes = worker.routes()
            subnet = ipaddress.IPv4Network(net.pool.subnet)
            if any(subnet.overlaps(ipaddress.IPv4Network(r)) for r in routes):
                net.pools = [ipam.default_pool(ipam.pick_subnet(self.settings.pools, [*ours, *routes]))]
                self._save_network(net)
        if self.settings.ip_forward and not self._ip_forward_set:
            worker.set_ip_forward()
            self._ip_forward_set = True
        pool = net.pool
        worker.ensure_bridge(net.bridge, pool.gateway, pool.prefixlen, mtu or self._mtu(net))

    def _mtu(self, net: Network) -> int:
        try:
            return int(net.options.get("com.docker.network.driver.mtu") or self.settings.mtu)
        except ValueError:
            return self.settings.mtu

    # ------------------------------------------------------------------ containers: create

    def sandbox_path(self, cid: str) -> Path:
        """The namespace file of a running container (exists only while it runs)."""
        return self.netns_dir / cid

    def plan(self, cid: str, mode: str, networking_config: dict | None, opts=None) -> ContainerNet:
        """Validate a create's NetworkMode and EndpointsConfig into the container's network record."""
        endpoints = (networking_config or {}).get("EndpointsConfig") or {}
        if not isinstance(endpoints, dict):
            raise InvalidParameter("NetworkingConfig.EndpointsConfig must be an object keyed by network name")
        if mode in ("host", "none"):
            net = self.get(mode)
            return ContainerNet(mode, configs={net.id: EndpointConfig(net.id, net.name)})
        if mode.startswith("container:"):
            # Like dockerd, the other container is looked up at start: it may not exist yet.
            return ContainerNet(mode, join=mode.split(":", 1)[1])
        try:
            net = self.get(mode)
        except NotFound:
            # dockerd creates the container anyway and fails its start ("network x not found").
            return ContainerNet(mode, configs={"": EndpointConfig("", mode)})
        if net.driver == "host" or net.driver == "null":
            return ContainerNet(net.name, configs={net.id: EndpointConfig(net.id, net.name)})
        configs: dict[str, EndpointConfig] = {}
        keys = [k for k in endpoints if k in (mode, net.name, net.id) or (net.name == "bridge" and k == "default")]
        first = endpoints[keys[0]] if keys else None
        configs[net.id] = self._endpoint_config(net, first)
        for key, doc in endpoints.items():
            if key in keys:
                continue
            try:
                other = self.get(key)
            except NotFound:
                configs.setdefault("", EndpointConfig("", key))
                continue
            if other.driver != "bridge":
                raise InvalidParameter(f"container cannot be connected to network {other.name} as well as to "
                                       f"{net.name}: {other.name} is a {other.driver} network")
            configs.setdefault(other.id, self._endpoint_config(other, doc))
        return ContainerNet(mode, configs=configs)

    def _endpoint_config(self, net: Network, doc: dict | None) -> EndpointConfig:
        doc = doc or {}
        aliases = [a for a in (doc.get("Aliases") or []) if a]
        ipv4 = ((doc.get("IPAMConfig") or {}).get("IPv4Address") or "")
        if aliases and not net.user_defined:
            raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
        if ipv4:
            if not net.user_defined:
                raise InvalidParameter("user specified IP address is supported on user defined networks only")
            try:
                addr = ipaddress.IPv4Address(ipv4)
            except ValueError:
                raise InvalidParameter(f"invalid IPv4 address: {ipv4}") from None
            if not any(addr in p.network for p in net.pools):
                raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {ipv4}")
        if (doc.get("IPAMConfig") or {}).get("IPv6Address"):
            raise InvalidParameter("IPv6 addresses are not supported by this engine")
        return EndpointConfig(net.id, net.name, aliases, ipv4, doc.get("Links") or None,
                              doc.get("DriverOpts") or None, doc.get("MacAddress") or "",
                              int(doc.get("GwPriority") or 0))

    def created(self, cid: str, bundle: Path, cnet: ContainerNet) -> None:
        """Record a created container's network plan in its bundle."""
        cnet.save(bundle)
        with self._lock:
            self._cnets[cid] = cnet

    def forget(self, c) -> None:
        """The container is being removed: unplug whatever is still plugged and drop what is kept for it."""
        with self._lock:
            cnet = self._cnets.get(c.id)
            if cnet is not None and (cnet.sandbox or cnet.endpoints):
                self._stop_locked(c, cnet)
            self._cnets.pop(c.id, None)

    # ------------------------------------------------------------------ containers: start, stop

    def _cnet(self, c) -> ContainerNet:
        with self._lock:
            cnet = self._cnets.get(c.id)
            if cnet is None:
                cnet = ContainerNet.load(c.dir)
                if cnet is None:
                    cnet = self._legacy(c)
                self._cnets[c.id] = cnet
            return cnet

    def _legacy(self, c) -> ContainerNet:
        """A container created before networks existed: plan it now and point its spec at the sandbox."""
        mode = c.host_config.get("NetworkMode") or "bridge"
        try:
            cnet = self.plan(c.id, mode, None)
        except NotFound:
            return ContainerNet(mode)
        if cnet.own_namespace:
            spec = st.read_json(c.dir / "config.json") or {}
            for ns in (spec.get("linux") or {}).get("namespaces") or []:
                if ns.get("type") == "network":
                    ns["path"] = str(self.sandbox_path(c.id))
            st.write_json(c.dir / "config.json", spec, fsync=False)
        cnet.save(c.dir)
        return cnet

    def start(self, c) -> None:
        """Before the container's process starts: make and plug its namespace, publish its ports, serve DNS."""
        cnet = self._cnet(c)
        if cnet.mode.startswith("container:"):
            self._join(c, cnet)
            return
        with self._lock:
            if cnet.sandbox:
                self._stop_locked(c, cnet)      # a crash between start and stop left it: start over
            if not cnet.own_namespace:
                self._start_plain(c, cnet)
                return
            try:
                self._start_locked(c, cnet)
            except BaseException:
                self._stop_locked(c, cnet, publish=False)
                raise
        for nid in cnet.endpoints:
            self.events.publish("network", "connect", nid,
                                {"container": c.id, "name": cnet.configs[nid].network_name, "type": "bridge"})

    def _start_plain(self, c, cnet: ContainerNet) -> None:
        # host and none: nothing to plug; the sandbox id only makes inspect look like Docker's.
        cnet.sandbox_id = st.new_id()
        cnet.save(c.dir)

    def _start_locked(self, c, cnet: ContainerNet) -> None:
        from engine.network.links import Link
        if not cnet.configs:
            raise NotFound(f"container {c.id} is not connected to any network")
        links: list[Link] = []
        self._resolve_configs(cnet)
        gateway_nid = next((cfg.network_id for cfg in sorted(cnet.configs.values(), key=lambda x: -x.gw_priority)
                            if not self._nets[cfg.network_id].internal), "")
        for cfg in cnet.configs.values():
            net = self._nets[cfg.network_id]
            self._bring_up(net)
            ep = self._allocate(cnet, net, cfg)
            links.append(Link(net.bridge, ep.ip, ep.prefixlen, ep.gateway, ep.mac, net.id == gateway_nid,
                              self._mtu(net)))
        cnet.dns = any(self._nets[nid].user_defined for nid in cnet.endpoints)
        mappings = self._publish(c, cnet, gateway_nid)
        path = self.sandbox_path(c.id)
        sock = self._netlink().create_sandbox(path, links, cnet.dns)
        cnet.sandbox = str(path)
        cnet.sandbox_id = st.new_id()
        for ep, link in zip(cnet.endpoints.values(), links):
            ep.veth, ep.ifname = link.veth, link.ifname
        if sock is not None:
            self._dns_server().add(c.id, sock)
        self._write_files(c, cnet)
        if mappings or cnet.endpoints:
            self._sync_firewall(required=bool(mappings))
        cnet.save(c.dir)

    def _resolve_configs(self, cnet: ContainerNet) -> None:
        """Point every attachment at an existing network (by id, else by name); NotFound names the missing one."""
        resolved = {}
        for cfg in cnet.configs.values():
            net = self._nets.get(cfg.network_id)
            if net is None:
                net = self._by_name(cfg.network_name)
            if net is None:
                raise NotFound(f"network {cfg.network_name} not found")
            cfg.network_id = net.id
            resolved[net.id] = cfg
        cnet.configs = resolved

    def _allocate(self, cnet: ContainerNet, net: Network, cfg: EndpointConfig) -> Endpoint:
        pool = net.pool
        ip = ipam.allocate(pool, self._in_use(net.id), cfg.ipv4, net.name)
        ep = Endpoint(net.id, st.new_id(), ip, pool.prefixlen, pool.gateway if not net.internal else "",
                      cfg.mac or ipam.mac_for(ip), "", "")
        cnet.endpoints[net.id] = ep
        return ep

    def _in_use(self, nid: str) -> set[str]:
        return {cn.endpoints[nid].ip for cn in self._cnets.values() if nid in cn.endpoints}

    def _publish(self, c, cnet: ContainerNet, gateway_nid: str) -> list[Mapping]:
        """Reserve the host ports of -p/-P (preferring the ones of the last run) and record them."""
        hc, cfg = c.host_config, c.config
        wanted = requested(hc.get("PortBindings") or {}, cfg.get("ExposedPorts") or {},
                           bool(hc.get("PublishAllPorts")))
        if not wanted or not gateway_nid:
            # Docker publishes nothing for containers only on internal networks (or on none).
            cnet.published = [] if not wanted else cnet.published
            return []
        prev_by_key: dict[tuple, list[int]] = {}
        for p in cnet.published:
            prev_by_key.setdefault((p["proto"], p["container_port"], p["host_ip"]), []).append(p["host_port"])
        out: list[Mapping] = []
        try:
            for key, bindings in wanted.items():
                port, proto = key.split("/")
                for b in bindings:
                    host_ip = normalize_host_ip(b["HostIp"])
                    if ":" in host_ip:
                        log.info("container %s: skipping IPv6 binding %s (IPv4 only)", c.id, host_ip)
                        continue
                    lo, hi = host_port_range(b["HostPort"])
                    olds = prev_by_key.get((proto, int(port), host_ip)) or []
                    prefer = olds.pop(0) if olds else 0
                    try:
                        hp = self._ports.reserve(proto, host_ip, lo, hi, prefer)
                    except SystemFailure as e:
                        raise SystemFailure(f"failed to set up container networking: driver failed programming "
                                            f"external connectivity on endpoint {c.name} "
                                            f"({cnet.endpoints[gateway_nid].endpoint_id}): {e.message}") from None
                    out.append(Mapping(proto, int(port), host_ip, hp))
        except BaseException:
            for m in out:
                self._ports.release(m.proto, m.host_ip, m.host_port)
            raise
        cnet.published = [{"proto": m.proto, "container_port": m.container_port, "host_ip": m.host_ip,
                           "host_port": m.host_port, "network_id": gateway_nid} for m in out]
        return out

    def _mappings(self, cnet: ContainerNet) -> list[Mapping]:
        return [Mapping(p["proto"], p["container_port"], p["host_ip"], p["host_port"]) for p in cnet.published]

    def _write_files(self, c, cnet: ContainerNet) -> None:
        bridge = self._by_name("bridge")
        host_gateway = bridge.pool.gateway if bridge and bridge.pool else None
        ips = [ep.ip for ep in cnet.endpoints.values()]
        files.write_in_place(c.dir / "hosts", files.hosts(
            c.config.get("Hostname") or c.id[:12], c.config.get("Domainname") or "",
            c.host_config.get("ExtraHosts") or [], ips, host_gateway))
        if cnet.dns:
            hc = c.host_config
            files.write_in_place(c.dir / "resolv.conf", files.embedded_resolv_conf(
                self._host_resolv, hc.get("Dns") or [], hc.get("DnsSearch") or [], hc.get("DnsOptions") or [],
                self._upstreams(c.id)))

    def _join(self, c, cnet: ContainerNet) -> None:
        """container:<id> mode: point config.json at the other container's namespace and /etc files."""
        target = self.containers.get(cnet.join)
        if target.id == c.id:
            raise InvalidParameter("cannot join own network namespace")
        if not target.is_running or not target.state.pid:
            raise Conflict(f"cannot join network namespace of a non running container: {target.id}")
        spec = st.read_json(c.dir / "config.json")
        for ns in spec["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = f"/proc/{target.state.pid}/ns/net"
        by_dest = {"/etc/hosts": "hosts", "/etc/resolv.conf": "resolv.conf", "/etc/hostname": "hostname"}
        for m in spec.get("mounts", []):
            if m.get("destination") in by_dest and m.get("source", "").startswith(str(c.dir)):
                m["source"] = str(target.dir / by_dest[m["destination"]])
        if target.config.get("Hostname"):
            spec["hostname"] = target.config["Hostname"]
        st.write_json(c.dir / "config.json", spec, fsync=False)

    def stop(self, c) -> None:
        """After the container's process is gone: unplug its namespace, free its address and ports."""
        cnet = self._cnet(c)
        with self._lock:
            self._stop_locked(c, cnet)

    def _stop_locked(self, c, cnet: ContainerNet, publish: bool = True) -> None:
        had = {nid: cnet.configs[nid].network_name if nid in cnet.configs else nid for nid in cnet.endpoints}
        if self._dns is not None:
            self._dns.remove(c.id)
        had_ports = bool(cnet.published)
        for m in self._mappings(cnet):
            self._ports.release(m.proto, m.host_ip, m.host_port)
        veths = [ep.veth for ep in cnet.endpoints.values() if ep.veth]
        cnet.endpoints = {}
        cnet.dns = False
        path = Path(cnet.sandbox) if cnet.sandbox else None
        cnet.sandbox = ""
        cnet.sandbox_id = ""
        if path is not None or veths:
            self._netlink().teardown(path or self.sandbox_path(c.id), veths)
        elif self.sandbox_path(c.id).exists():
            netns.remove(self.sandbox_path(c.id))
        if had_ports:
            self._sync_firewall()
        if c.dir.exists():
            cnet.save(c.dir)
        if publish:
            for nid, name in had.items():
                self.events.publish("network", "disconnect", nid, {"container": c.id, "name": name,
                                                                   "type": "bridge"})

    # ------------------------------------------------------------------ connect / disconnect

    def connect(self, ref: str, container_ref: str, endpoint: dict | None) -> None:
        """POST /networks/{id}/connect: attach now if the container runs, else at its next start."""
        net = self.get(ref)
        c = self.containers.get(container_ref)
        cnet = self._cnet(c)
        if net.driver != "bridge" or not cnet.own_namespace:
            if net.driver == "host" or cnet.mode == "host":
                raise Forbidden("container cannot be disconnected from host network or connected to host network")
            raise Forbidden(f"container sharing network namespace with another container or a network with "
                            f"'none' mode cannot be connected to network {net.name}")
        with self._lock:
            if net.id in cnet.configs:
                raise Forbidden(f"endpoint with name {c.name} already exists in network {net.name}")
            cfg = self._endpoint_config(net, endpoint)
            cnet.configs[net.id] = cfg
            if c.is_running and cnet.sandbox:
                try:
                    self._connect_running(c, cnet, net, cfg)
                except BaseException:
                    cnet.configs.pop(net.id, None)
                    cnet.endpoints.pop(net.id, None)
                    raise
            cnet.save(c.dir)
        self.events.publish("network", "connect", net.id, {"container": c.id, "name": net.name, "type": "bridge"})

    def _connect_running(self, c, cnet: ContainerNet, net: Network, cfg: EndpointConfig) -> None:
        from engine.network.links import Link
        self._bring_up(net)
        ep = self._allocate(cnet, net, cfg)
        # A container that had no default route (none yet, or internal only) gets it from this network.
        default_route = not net.internal and not any(
            not self._nets[n].internal for n in cnet.endpoints if n != net.id and n in self._nets)
        link = Link(net.bridge, ep.ip, ep.prefixlen, ep.gateway, ep.mac, default_route, self._mtu(net))
        want_dns = net.user_defined and not cnet.dns
        sock = self._netlink().add_endpoint(Path(cnet.sandbox), link, want_dns)
        ep.veth, ep.ifname = link.veth, link.ifname
        if sock is not None:
            self._dns_server().add(c.id, sock)
            cnet.dns = True
        self._write_files(c, cnet)
        self._sync_firewall()

    def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        """POST /networks/{id}/disconnect: detach now if running, and forget the attachment."""
        net = self.get(ref)
        c = self.containers.get(container_ref)
        cnet = self._cnet(c)
        if net.driver == "host" or cnet.mode == "host":
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        with self._lock:
            if net.id not in cnet.configs and net.id not in cnet.endpoints:
                raise Forbidden(f"container {c.id} is not connected to network {net.name}")
            cnet.configs.pop(net.id, None)
            ep = cnet.endpoints.pop(net.id, None)
            if ep is not None:
                if ep.veth:
                    self._netlink().remove_endpoint(ep.veth)
                if any(p.get("network_id") == net.id for p in cnet.published):
                    # The published ports pointed at this address: stop publishing them until the next start.
                    for m in self._mappings(cnet):
                        self._ports.release(m.proto, m.host_ip, m.host_port)
                    cnet.published = [p for p in cnet.published if p.get("network_id") != net.id]
                self._write_files(c, cnet)
                self._sync_firewall()
            cnet.save(c.dir)
        self.events.publish("network", "disconnect", net.id, {"container": c.id, "name": net.name,
                                                              "type": "bridge"})

    # ------------------------------------------------------------------ firewall

    def _sync_firewall(self, required: bool = False) -> None:
        bridges, dnats = [], []
        for net in self._nets.values():
            if net.driver == "bridge" and net.pool and _link_exists(net.bridge):
                masq = self.settings.ip_masq and net.options.get(
                    "com.docker.network.bridge.enable_ip_masquerade", "true") != "false"
                bridges.append(BridgeRules(net.bridge, net.pool.subnet, net.internal, masq))
        for cid, cn in sorted(self._cnets.items()):
            for p in cn.published:
                ep = cn.endpoints.get(p.get("network_id", ""))
                net = self._nets.get(p.get("network_id", ""))
                if ep is None or net is None:
                    continue
                dnats.append(DnatRule(net.bridge, p["proto"], p["host_ip"], p["host_port"], ep.ip,
                                      p["container_port"]))
        self._firewall.apply(bridges, dnats, required=required)

    # ------------------------------------------------------------------ embedded DNS

    def _names(self, cid: str, cfg: EndpointConfig | None) -> list[str]:
        c = self._container(cid)
        if c is None:
            return []
        names = [c.name.lower(), cid[:12]]
        if cfg is not None:
            names += [a.lower() for a in cfg.aliases]
        hostname = (c.config.get("Hostname") or "").lower()
        if hostname and hostname != cid[:12]:
            names.append(hostname)
        return names

    def _resolve(self, cid: str, qname: str) -> list[str] | None:
        """Addresses of qname as seen from container cid (same-network containers only); None if unknown."""
        with self._lock:
            me = self._cnets.get(cid)
            if me is None:
                return None
            for nid in me.endpoints:
                net = self._nets.get(nid)
                if net is None or not net.user_defined:
                    continue
                suffix = "." + net.name.lower()
                bare = qname[: -len(suffix)] if qname.endswith(suffix) else qname
                ips = []
                for other_id, cn in self._cnets.items():
                    ep = cn.endpoints.get(nid)
                    if ep is not None and bare in self._names(other_id, cn.configs.get(nid)):
                        ips.append(ep.ip)
                if ips:
                    return ips
            return None

    def _reverse(self, cid: str, ip: str) -> str | None:
        with self._lock:
            me = self._cnets.get(cid)
            if me is None:
                return None
            for nid in me.endpoints:
                net = self._nets.get(nid)
                if net is None or not net.user_defined:
                    continue
                for other_id, cn in self._cnets.items():
                    ep = cn.endpoints.get(nid)
                    if ep is not None and ep.ip == ip:
                        return f"{self._container_name(other_id)}.{net.name}"
            return None

    def _upstreams(self, cid: str) -> list[str]:
        c = self._container(cid)
        dns = (c.host_config.get("Dns") or []) if c is not None else []
        return list(dns) or files.nameservers(self._host_resolv)

    # ------------------------------------------------------------------ container views

    def _container(self, cid: str):
        if self.containers is None:
            return None
        try:
            return self.containers.get(cid)
        except NotFound:
            return None

    def _container_name(self, cid: str) -> str:
        c = self._container(cid)
        return c.name if c is not None else cid[:12]

    def _is_running(self, cid: str) -> bool:
        c = self._container(cid)
        return bool(c is not None and c.is_running)

    def network_names(self, c) -> list[str]:
        """The names of the networks a container is attached to (for `ps --filter network=`)."""
        cnet = self._cnet(c)
        return [cfg.network_name for cfg in cnet.configs.values()]


def _link_exists(name: str) -> bool:
    """Tell whether an interface exists in the daemon's namespace (an ioctl: no netlink needed)."""
    if not name:
        return False
    try:
        socket.if_nametoindex(name)
        return True
    except OSError:
        return False


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
