"""Network endpoints of the Engine API: list, inspect, create, remove, prune, connect and disconnect."""

from __future__ import annotations

import re

from engine.api.server import Response, empty, json_response
from engine.errors import InvalidParameter

_LIST_FILTERS = ("name", "id", "driver", "type", "scope", "label", "dangling")


def list_networks(engine, req) -> Response:
    """List networks, filtered by name, id, driver, type, scope, label or dangling."""
    flt = req.filters()
    for key in flt:
        if key not in _LIST_FILTERS:
            raise InvalidParameter(f"invalid filter '{key}'")
    for t in flt.get("type", ()):
        if t not in ("builtin", "custom"):
            raise InvalidParameter(f"invalid filter: 'type'='{t}'")
    dangling = None
    for v in flt.get("dangling", ()):
        if v.lower() in ("true", "1"):
            dangling = True
        elif v.lower() in ("false", "0"):
            dangling = False
        else:
            raise InvalidParameter(f"invalid filter 'dangling={v}'")
    out = []
    for net in engine.networks.all():
        if "name" in flt and not any(_name_matches(p, net.name) for p in flt["name"]):
            continue
        if "id" in flt and not any(net.id.startswith(p) for p in flt["id"]):
            continue
        if "driver" in flt and net.driver not in flt["driver"]:
            continue
        if "type" in flt and ("builtin" if net.predefined else "custom") not in flt["type"]:
            continue
        if "scope" in flt and "local" not in flt["scope"]:
            continue
        if not _labels_match(net.labels, flt.get("label", [])):
            continue
        if dangling is not None:
            # dockerd never reports the predefined networks as dangling.
            unused = not net.predefined and not engine.networks.endpoints_of(net)
            if unused != dangling:
                continue
        out.append(engine.networks.to_api(net, with_containers=False))
    return json_response(out)


def _name_matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return pattern in name


def _labels_match(labels: dict, wanted: list[str]) -> bool:
    for w in wanted:
        k, eq, v = w.partition("=")
        if k not in labels or (eq and labels[k] != v):
            return False
    return True


def inspect_network(engine, req, ref) -> Response:
    """Inspect a network by name, ID or unique ID prefix."""
    return json_response(engine.networks.to_api(engine.networks.get(ref)))


def create_network(engine, req) -> Response:
    nid, warning = engine.networks.create(req.json())
    return json_response({"Id": nid, "Warning": warning}, status=201)


def remove_network(engine, req, ref) -> Response:
    engine.networks.remove(ref)
    return empty(204)


def prune_networks(engine, req) -> Response:
    return json_response(engine.networks.prune(req.filters()))


def connect_network(engine, req, ref) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not body.get("Container"):
        raise InvalidParameter("connect needs a Container: name the container to connect")
    engine.networks.connect(ref, body["Container"], body.get("EndpointConfig"))
    return empty(200)


def disconnect_network(engine, req, ref) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not body.get("Container"):
        raise InvalidParameter("disconnect needs a Container: name the container to disconnect")
    engine.networks.disconnect(ref, body["Container"], bool(body.get("Force")))
    return empty(200)


ROUTES = [
    ("GET", r"/networks/?", list_networks),
    ("POST", r"/networks/create", create_network),
    ("POST", r"/networks/prune", prune_networks),
    ("GET", r"/networks/(?P<ref>[^/]+)", inspect_network),
    ("DELETE", r"/networks/(?P<ref>[^/]+)", remove_network),
    ("POST", r"/networks/(?P<ref>[^/]+)/connect", connect_network),
    ("POST", r"/networks/(?P<ref>[^/]+)/disconnect", disconnect_network),
]
