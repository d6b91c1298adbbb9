"""Volume endpoints of the Engine API: create, list, inspect, remove, prune."""

from __future__ import annotations

from engine.api.server import empty, json_response
from engine.errors import InvalidParameter


def _string_map(body: dict, key: str) -> dict | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter(f"invalid {key}: expected an object of strings")
    return value


def create(engine, req):
    body = req.json()
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the request body must be an object")
    name = body.get("Name") or ""
    driver = body.get("Driver") or "local"
    if not isinstance(name, str) or not isinstance(driver, str):
        raise InvalidParameter("invalid volume create request: Name and Driver must be strings")
    if body.get("ClusterVolumeSpec"):
        raise InvalidParameter("cluster volumes need a swarm manager: this engine runs no swarm")
    v = engine.volumes.create(name or None, driver, _string_map(body, "DriverOpts"), _string_map(body, "Labels"))
    return json_response(v.to_api(), status=201)


def list_volumes(engine, req):
    vols = engine.volumes.list(req.filters())
    return json_response({"Volumes": [v.to_api() for v in vols], "Warnings": None})


def inspect_volume(engine, req, name):
    return json_response(engine.volumes.get(name).to_api())


def remove(engine, req, name):
    engine.volumes.remove(name, force=req.flag("force"))
    return empty(204)


def prune(engine, req):
    return json_response(engine.volumes.prune(req.filters(), api_version=req.api_version))


ROUTES = [
    ("POST", r"/volumes/create", create),
    ("POST", r"/volumes/prune", prune),
    ("GET", r"/volumes", list_volumes),
    ("GET", r"/volumes/(?P<name>[^/]+)", inspect_volume),
    ("DELETE", r"/volumes/(?P<name>[^/]+)", remove),
]
