"""Volume endpoints of the Engine API: create, list, inspect, remove, prune; and dockweb's read-only file browser."""

from __future__ import annotations

from engine.api.server import StreamResponse, empty, json_response
from engine.errors import InvalidParameter
from engine.volumes import browse


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


def list_files(engine, req, name):
    v = engine.volumes.get(name)
    limit = req.int_arg("limit", browse.MAX_ENTRIES)
    if limit is None or limit < 1:
        raise InvalidParameter("limit must be a positive number")
    return json_response(browse.list_dir(engine.volumes.mount_source(v), req.arg("path", "/") or "/", limit))


def file_content(engine, req, name):
    v = engine.volumes.get(name)
    limit = req.int_arg("limit")
    if limit is not None and limit < 0:
        raise InvalidParameter("limit must not be negative")
    path = req.arg("path", "") or ""
    fd, size = browse.open_file(engine.volumes.mount_source(v), path)
    filename = path.rstrip("/").rsplit("/", 1)[-1].replace('"', "")
    headers = {"X-Dockweb-File-Size": str(size), "Content-Disposition": f'attachment; filename="{filename}"'}
    return StreamResponse(browse.read_chunks(fd, limit), content_type="application/octet-stream", headers=headers)


ROUTES = [
    ("GET", r"/dockweb/volumes/(?P<name>[^/]+)/files", list_files),
    ("GET", r"/dockweb/volumes/(?P<name>[^/]+)/files/content", file_content),
    ("POST", r"/volumes/create", create),
    ("POST", r"/volumes/prune", prune),
    ("GET", r"/volumes", list_volumes),
    ("GET", r"/volumes/(?P<name>[^/]+)", inspect_volume),
    ("DELETE", r"/volumes/(?P<name>[^/]+)", remove),
]
