"""Build endpoints of the Engine API: POST /build (legacy builder stream), POST /build/prune, POST /commit."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Iterator

from engine.api.server import Request, Response, StreamResponse, json_response
from engine.api.streams import json_line
from engine.build.builder import BuildError, BuildOptions
from engine.errors import EngineError, InvalidParameter, SystemFailure
from engine.images import reference
from engine.images.layers import IterReader

# Query parameters that become the RUN containers' HostConfig, and how to read them.
_INT_LIMITS = {"memory": "Memory", "memswap": "MemorySwap", "cpushares": "CpuShares", "cpuperiod": "CpuPeriod",
               "cpuquota": "CpuQuota", "shmsize": "ShmSize"}


def _json_arg(req: Request, name: str, kind: type, default: Any) -> Any:
    raw = req.arg(name)
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name} JSON: {raw!r}") from None
    if value is None:
        return default
    if not isinstance(value, kind):
        raise InvalidParameter(f"invalid {name}: expected a JSON {kind.__name__}")
    return value


def _registry_config(req: Request) -> dict:
    raw = req.headers.get("x-registry-config") or ""
    if not raw:
        return {}
    padded = raw + "=" * (-len(raw) % 4)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            value = json.loads(decode(padded))
            return value if isinstance(value, dict) else {}
        except (binascii.Error, ValueError):
            continue
    return {}


def build_options(req: Request) -> BuildOptions:
    """Read POST /build's query parameters (CLI and docker-py spellings) into BuildOptions."""
    if req.arg("version") == "2":
        raise InvalidParameter("BuildKit (version=2) is not supported by this engine: build with "
                               "DOCKER_BUILDKIT=0 (the legacy builder)")
    if req.arg("remote"):
        raise InvalidParameter("building from a remote context (git or URL) is not supported: send the "
                               "context as the request body")
    tags = [t for t in req.args("t") if t]
    for t in tags:
        ref = reference.parse(t)      # InvalidParameter "invalid reference format" before anything runs
        if ref.digest:
            raise InvalidParameter(f"invalid reference format: {t} must not contain a digest")
    build_args = _json_arg(req, "buildargs", dict, {})
    for k, v in build_args.items():
        if v is not None and not isinstance(v, str):
            build_args[k] = str(v)
    labels = {str(k): str(v) for k, v in _json_arg(req, "labels", dict, {}).items()}
    host_config: dict = {}
    for param, key in _INT_LIMITS.items():
        value = req.int_arg(param)
        if value:
            host_config[key] = value
    if req.arg("cpusetcpus"):
        host_config["CpusetCpus"] = req.arg("cpusetcpus")
    if req.arg("cgroupparent"):
        host_config["CgroupParent"] = req.arg("cgroupparent")
    extra_hosts = [h for v in req.args("extrahosts") for h in v.split(",") if h]
    if extra_hosts:
        host_config["ExtraHosts"] = extra_hosts
    ulimits = _json_arg(req, "ulimits", list, [])
    if ulimits:
        host_config["Ulimits"] = ulimits
    force_rm = req.flag("forcerm")
    return BuildOptions(
        dockerfile=req.arg("dockerfile") or None, tags=tags, build_args=build_args,
        target=req.arg("target") or "", no_cache=req.flag("nocache"), pull=req.flag("pull"), labels=labels,
        rm=req.flag("rm", True) or force_rm, force_rm=force_rm, quiet=req.flag("q"),
        network_mode=req.arg("networkmode") or "", host_config=host_config, platform=req.arg("platform") or "",
        auth=_registry_config(req))


def _encode(messages: Iterator[dict | None]) -> Iterator[bytes]:
    """Encode build messages; None is a keep-alive tick; an error becomes the final errorDetail message."""
    try:
        for m in messages:
            yield b"" if m is None else json_line(m)
    except GeneratorExit:
        raise
    except Exception as e:
        message = e.message if isinstance(e, EngineError) else f"internal error: {e}"
        if not isinstance(e, EngineError) or isinstance(e, SystemFailure):
            import logging
            logging.getLogger("engine.api").error("build failed: %s", message, exc_info=e)
        detail: dict = {"message": message}
        if isinstance(e, BuildError) and e.code != 1:
            detail = {"code": e.code, "message": message}
        yield json_line({"errorDetail": detail, "error": message})
    finally:
        close = getattr(messages, "close", None)
        if close is not None:
            close()


def build(engine: Any, req: Request) -> StreamResponse:
    """POST /build: build from the context in the body; the output is Docker's legacy-builder JSON stream."""
    opts = build_options(req)
    messages = engine.builder.build(IterReader(req.body_stream()), opts)
    return StreamResponse(_encode(messages))


def prune_build_cache(engine: Any, req: Request) -> Response:
    """POST /build/prune: forget the build cache."""
    req.filters()
    return json_response(engine.builder.prune())


def commit(engine: Any, req: Request) -> Response:
    """POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=: body = config overrides -> 201."""
    container = req.arg("container") or ""
    if not container:
        raise InvalidParameter("a container to commit is required (container=)")
    body = req.json()
    if body is not None and not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the request body must be an object")
    iid = engine.builder.commit(container, repo=req.arg("repo") or "", tag=req.arg("tag") or "",
                                comment=req.arg("comment") or "", author=req.arg("author") or "",
                                pause=req.flag("pause", True), changes=req.args("changes"), config=body or None)
    return json_response({"Id": iid}, status=201)


ROUTES = [
    ("POST", r"/build", build),
    ("POST", r"/build/prune", prune_build_cache),
    ("POST", r"/commit", commit),
]
