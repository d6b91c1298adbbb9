"""Image endpoints of the Engine API: import, load, save, tag, remove, list, inspect, history, prune."""

from __future__ import annotations

from typing import Any, Callable

from engine.api.server import Request, Response, StreamResponse, empty, json_response, version_tuple
from engine.api.streams import json_stream
from engine.errors import InvalidParameter, NotFound
from engine.images import archive, reference
from engine.images.layers import IterReader
from engine.images.store import Image, ZERO_TIME


def _in_use(engine: Any) -> Callable[[str], list[tuple[str, bool]]] | None:
    """Return the containers' image_users(image_id) -> [(container id, running)], when the manager has it."""
    return getattr(engine.containers, "image_users", None)


def _summary(engine: Any, image: Image, api_version: str) -> dict:
    doc = {
        "Containers": -1,
        "Created": image.created_unix,
        "Id": image.id,
        "Labels": image.labels,
        "ParentId": image.parent,
        "RepoDigests": list(image.repo_digests),
        "RepoTags": list(image.repo_tags),
        "SharedSize": -1,
        "Size": image.size,
    }
    version = version_tuple(api_version)
    if version < (1, 43) and not doc["RepoTags"] and not doc["RepoDigests"]:
        # Older clients expect placeholders for dangling images; 1.43 and later get empty lists.
        doc["RepoTags"], doc["RepoDigests"] = ["<none>:<none>"], ["<none>@<none>"]
    if version < (1, 44):
        doc["VirtualSize"] = image.size
    return doc


def list_images(engine: Any, req: Request) -> Response:
    """GET /images/json: images with dangling, label, reference, before and since filters."""
    images = engine.images.filter_images(req.filters(), show_all=req.flag("all"))
    return json_response([_summary(engine, im, req.api_version) for im in images])


def inspect_image(engine: Any, req: Request, name: str) -> Response:
    """GET /images/{name}/json."""
    image = engine.images.get(name)
    cfg = image.config
    dirs = [str(d) for d in engine.images.layer_dirs(image)]
    graph_data: dict = {}
    if dirs:
        graph_data["UpperDir"] = dirs[0]
        if len(dirs) > 1:
            graph_data["LowerDir"] = ":".join(dirs[1:])
    doc = {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": image.parent,
        "Comment": cfg.get("comment", ""),
        "Created": image.created or ZERO_TIME,
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config") or {},
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Size": image.size,
        "GraphDriver": {"Name": "overlay2", "Data": graph_data},
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"LastTagTime": image.last_tag_time or ZERO_TIME},
    }
    if cfg.get("variant"):
        doc["Variant"] = cfg["variant"]
    version = version_tuple(req.api_version)
    if version < (1, 45):
        doc["Container"] = cfg.get("container", "")
        doc["ContainerConfig"] = cfg.get("container_config") or {}
    if version < (1, 44):
        doc["VirtualSize"] = image.size
    return json_response(doc)


def image_history(engine: Any, req: Request, name: str) -> Response:
    """GET /images/{name}/history."""
    return json_response(engine.images.history(name))


def create_image(engine: Any, req: Request) -> StreamResponse:
    """POST /images/create: import a rootfs tar (fromSrc=-) or pull from a registry (fromImage)."""
    from_src = req.arg("fromSrc")
    from_image = req.arg("fromImage")
    if from_src is not None:
        if from_src != "-":
            raise InvalidParameter(f"importing from a URL ({from_src}) is not supported: "
                                   "send the tar as the request body with fromSrc=-")
        image = engine.images.import_image(
            IterReader(req.body_stream()), repo=req.arg("repo") or "", tag=req.arg("tag") or "",
            message=req.arg("message") or "", changes=req.args("changes"))
        return StreamResponse(json_stream([{"status": image.id}]))
    if from_image:
        return _pull(engine, req, from_image)
    raise InvalidParameter("either fromSrc or fromImage must be given")


# -- registry: pull and push (REGISTRY helper) ---------------------------------------------------------------------

def _registry_stream(messages: Any) -> StreamResponse:
    """Stream a registry generator; an error before its first message is a plain HTTP error.

    Refused registry credentials stay a 500 here, as dockerd answers them: a 401 on pull or push makes the
    docker CLI start an interactive login, which waits forever for a username without a terminal.
    """
    return StreamResponse(json_stream(messages, prime=True))


def _pull(engine: Any, req: Request, from_image: str) -> StreamResponse:
    """The fromImage branch: tag may be a tag or a digest (the CLI sends name@digest as tag=sha256:...)."""
    from engine.registry import decode_auth_header

    ref = reference.parse(from_image)
    if getattr(engine, "registry", None) is None:
        # An engine built without a registry client (unit harnesses): dockerd's answer when no registry has it.
        raise NotFound(f"pull access denied for {ref.familiar_name}, repository does not exist or may require "
                       "'docker login'")
    tag = req.arg("tag") or ""
    if tag:
        if reference.digest_of(tag) and tag.startswith("sha256:"):
            ref = reference.Reference(ref.domain, ref.path, "", tag)
        else:
            ref = reference.repo_tag(ref.name, tag)
    auth = decode_auth_header(req.headers.get("x-registry-auth"))
    platform = req.arg("platform") or None
    # No tag anywhere is how `docker pull -a` and docker-py's all_tags=True ask for every tag (dockerd's rule too).
    return _registry_stream(engine.registry.pull_stream(ref.full(), auth, platform, all_tags=ref.is_name_only()))


def push_image(engine: Any, req: Request, name: str) -> StreamResponse:
    """POST /images/{name}/push?tag=: push one tag, or every tag of the repository without tag."""
    from engine.registry import decode_auth_header

    ref = reference.parse(name)
    tag = req.arg("tag") or ""
    if tag:
        ref = reference.repo_tag(ref.name, tag)
    auth = decode_auth_header(req.headers.get("x-registry-auth"))
    return _registry_stream(engine.registry.push_stream(ref.full(), auth))


def load_images(engine: Any, req: Request) -> StreamResponse:
    """POST /images/load: the whole archive is loaded before answering, so a bad one is a plain 400."""
    lines = archive.load(engine.images, req.body_stream())
    return StreamResponse(json_stream([{"stream": line + "\n"} for line in lines]))


def save_images(engine: Any, req: Request) -> StreamResponse:
    """GET /images/get?names=a&names=b."""
    return StreamResponse(archive.save(engine.images, req.args("names")), content_type="application/x-tar")


def save_image(engine: Any, req: Request, name: str) -> StreamResponse:
    """GET /images/{name}/get."""
    return StreamResponse(archive.save(engine.images, [name]), content_type="application/x-tar")


def tag_image(engine: Any, req: Request, name: str) -> Response:
    """POST /images/{name}/tag?repo=&tag= -> 201."""
    engine.images.tag(name, req.arg("repo") or "", req.arg("tag") or "")
    return empty(201)


def remove_image(engine: Any, req: Request, name: str) -> Response:
    """DELETE /images/{name}?force=&noprune= -> [{"Untagged"}, {"Deleted"}]."""
    records = engine.images.remove(name, force=req.flag("force"), prune=not req.flag("noprune"),
                                   in_use=_in_use(engine))
    return json_response(records)


def prune_images(engine: Any, req: Request) -> Response:
    """POST /images/prune: dangling images, or every unused one with dangling=false."""
    return json_response(engine.images.prune(req.filters(), in_use=_in_use(engine)))


# Image names contain '/' and ':' unescaped: {name} is greedy and the known suffixes are peeled off.
ROUTES = [
    ("GET", r"/images/json", list_images),
    ("POST", r"/images/create", create_image),
    ("POST", r"/images/load", load_images),
    ("GET", r"/images/get", save_images),
    ("POST", r"/images/prune", prune_images),
    ("GET", r"/images/(?P<name>.+)/json", inspect_image),
    ("GET", r"/images/(?P<name>.+)/history", image_history),
    ("GET", r"/images/(?P<name>.+)/get", save_image),
    ("POST", r"/images/(?P<name>.+)/tag", tag_image),
    ("POST", r"/images/(?P<name>.+)/push", push_image),
    ("DELETE", r"/images/(?P<name>.+)", remove_image),
]
