"""Network verbs: list, inspect, create (labelled with the team), remove, connect and disconnect containers,
prune; and syncing network rows from the engine."""

from __future__ import annotations

import ipaddress
import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from dockweb.accounts.models import TEAM_LABEL
from dockweb.accounts.permissions import get_for_user, team_for_user
from dockweb.containers.models import Container
from dockweb.core.sync import Drift, list_visible, reconcile_rows, upsert
from dockweb.core import client
from dockweb.core.audit import record
from dockweb.core.errors import EngineError, EngineNotFound
from dockweb.core.ownership import TeamCache, parse_engine_time
from dockweb.hosts.models import Host
from dockweb.networks.models import Network

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
DRIVERS = ("bridge",)


def list_networks(user, *, host: Host | None = None, search: str = "", team: str = "") -> QuerySet:
    return list_visible(Network, user, host=host, search=search, team=team)


def get_network(user, ref: str, action: str = "view", host: Host | None = None) -> Network:
    return get_for_user(Network, user, ref, action, host=host)


def inspect_network(user, ref: str, host: Host | None = None) -> dict:
    net = get_network(user, ref, "view", host)
    with client.calling(net.host, f"inspecting network {net.name}"):
        return client.engine_client(net.host).api.inspect_network(net.engine_id)


def _validate(name: str, driver: str, subnet: str, gateway: str, labels: dict) -> None:
    errors: dict[str, list[str]] = {}
    if not NAME_RE.match(name or ""):
        errors["name"] = ["a network name is letters, digits, _ . - and starts with a letter or digit"]
    if driver not in DRIVERS:
        errors["driver"] = [f"{driver!r}: this engine's network driver is bridge"]
    net = None
    if subnet:
        try:
            net = ipaddress.ip_network(subnet, strict=True)
        except ValueError as e:
            errors["subnet"] = [f"{subnet!r} is not a subnet in CIDR form ({e})"]
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
            if net is not None and gw not in net:
                errors["gateway"] = [f"{gateway} is not inside {subnet}"]
        except ValueError:
            errors["gateway"] = [f"{gateway!r} is not an IP address"]
        if not subnet:
            errors.setdefault("gateway", []).append("a gateway needs a subnet")
    if any(k.startswith("dockweb.") for k in labels):
        errors["labels"] = ["labels starting with dockweb. are set by dockweb itself"]
    if errors:
        raise ValidationError(errors)


def create_network(user, name: str, team_slug: str = "", host_name: str = "", *, driver: str = "bridge",
                   subnet: str = "", gateway: str = "", internal: bool = False,
                   labels: dict | None = None) -> Network:
    """Create a user-defined network for a team (its operators), labelled dockweb.team=<slug>."""
    labels = dict(labels or {})
    _validate(name, driver, subnet, gateway, labels)
    team = team_for_user(user, team_slug, "operate")
    host = get_for_user(Host, user, host_name, "view") if host_name else Host.default()
    if team:
        labels[TEAM_LABEL] = team.slug
    api = client.engine_client(host).api
    ipam = None
    if subnet:
        pool = {"Subnet": subnet, **({"Gateway": gateway} if gateway else {})}
        ipam = {"Driver": "default", "Config": [pool]}
    try:
        with client.calling(host, f"creating network {name}"):
            created = api.create_network(name, driver=driver, internal=internal, labels=labels, ipam=ipam,
                                         check_duplicate=True)
            doc = api.inspect_network(created["Id"])
    except EngineError as e:
        record("network.create", actor=user, object_type="network", object_name=name, host_name=host.name,
               team_slug=team.slug if team else "", result="failed", message=e.message)
        raise
    net = _upsert(host, doc, TeamCache())
    record("network.create", actor=user, obj=net)
    return net


def remove_network(user, ref: str, host: Host | None = None) -> None:
    net = get_for_user(Network, user, ref, "operate", host=host, audit="network.remove")
    if net.predefined:
        raise PermissionDenied(f"{net.name} is a predefined network and cannot be removed")
    try:
        with client.calling(net.host, f"removing network {net.name}"):
            client.engine_client(net.host).api.remove_network(net.engine_id)
    except EngineNotFound:
        pass
    except EngineError as e:
        record("network.remove", actor=user, obj=net, result="failed", message=e.message)
        raise
    record("network.remove", actor=user, obj=net)
    Network.objects.filter(pk=net.pk).delete()


def _attach(user, verb: str, ref: str, container_ref: str, host: Host | None, **kwargs) -> Network:
    """Connect or disconnect a container: operate on the container, view on the network (shared ones included)."""
    from dockweb.containers import services as containers

    net = get_network(user, ref, "view", host)
    ctr = get_for_user(Container, user, container_ref, "operate", host=net.host, audit=f"network.{verb}")
    api = client.engine_client(net.host).api
    try:
        with client.calling(net.host, f"{verb}ing {ctr.name} {'to' if verb == 'connect' else 'from'} {net.name}"):
            if verb == "connect":
                api.connect_container_to_network(ctr.engine_id, net.engine_id, **kwargs)
            else:
                api.disconnect_container_from_network(ctr.engine_id, net.engine_id, **kwargs)
    except EngineError as e:
        record(f"network.{verb}", actor=user, obj=net, result="failed", message=f"{ctr.name}: {e.message}")
        raise
    record(f"network.{verb}", actor=user, obj=net, message=ctr.name)
    containers.sync_container(net.host, ctr.engine_id)
    return sync_network(net.host, net.engine_id) or net


def connect(user, ref: str, container_ref: str, aliases: list[str] | None = None,
            host: Host | None = None) -> Network:
    return _attach(user, "connect", ref, container_ref, host, aliases=aliases or None)


def disconnect(user, ref: str, container_ref: str, force: bool = False, host: Host | None = None) -> Network:
    return _attach(user, "disconnect", ref, container_ref, host, force=force)


def prune_networks(user, team_slug: str = "", host: Host | None = None) -> dict:
    """Remove unused user-defined networks: a team's (its admins, by label) or all (site admins, no team)."""
    team = team_for_user(user, team_slug, "admin")
    host = host or Host.default()
    filters = {"label": [f"{TEAM_LABEL}={team.slug}"]} if team else None
    try:
        with client.calling(host, "pruning networks"):
            result = client.engine_client(host).api.prune_networks(filters=filters)
    except EngineError as e:
        record("network.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
               result="failed", message=e.message)
        raise
    deleted = result.get("NetworksDeleted") or []
    Network.objects.filter(host=host, name__in=deleted).delete()
    record("network.prune", actor=user, team_slug=team.slug if team else "", host_name=host.name,
           message=f"{len(deleted)} removed")
    return result


def fields_from_engine(doc: dict) -> dict:
    pools = (doc.get("IPAM") or {}).get("Config") or [{}]
    endpoints = [{"id": cid, "name": (ep.get("Name") or "").lstrip("/"), "ipv4": ep.get("IPv4Address") or "",
                  "mac": ep.get("MacAddress") or ""}
                 for cid, ep in sorted((doc.get("Containers") or {}).items(), key=lambda kv: kv[1].get("Name", ""))]
    return {"name": doc.get("Name") or "", "driver": doc.get("Driver") or "", "subnet": pools[0].get("Subnet") or "",
            "gateway": pools[0].get("Gateway") or "", "internal": bool(doc.get("Internal")),
            "labels": doc.get("Labels") or {}, "endpoints": endpoints, "created": parse_engine_time(doc.get("Created"))}


def _upsert(host: Host, doc: dict, teams: TeamCache) -> Network:
    return upsert(Network, host, {"engine_id": doc["Id"]}, fields_from_engine(doc), teams)


def sync_network(host: Host, ident: str) -> Network | None:
    """Re-read one network into its row; delete the row when the engine no longer has it."""
    try:
        with client.calling(host, f"inspecting network {ident}"):
            doc = client.engine_client(host).api.inspect_network(ident)
    except EngineNotFound:
        Network.objects.filter(host=host, engine_id=ident).delete()
        return None
    return _upsert(host, doc, TeamCache())


def reconcile(host: Host) -> Drift | None:
    """Make the host's network rows match the engine's list; None when the engine serves no /networks."""
    started = timezone.now()
    api = client.engine_client(host).api
    try:
        with client.calling(host, "listing networks"):
            # The list leaves out the attached containers: inspect each (a host has few networks).
            docs = [api.inspect_network(n["Id"]) for n in api.networks()]
    except EngineNotFound:
        return None
    return reconcile_rows(Network, host, docs, "engine_id", "Id", fields_from_engine, started)
