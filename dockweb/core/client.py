"""engine_client(host): docker-py against a host's engine API. The control plane never imports `engine`."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import docker
from django.conf import settings

from dockweb.core.errors import ENGINE_EXCEPTIONS, from_docker

# One client per thread and engine URL: a requests session is not meant to be shared between threads, and
# building a client per call would reconnect each time.
_local = threading.local()


def new_client(engine_url: str, timeout: int | None) -> docker.DockerClient:
    """Return a fresh docker-py client for engine_url (timeout None: for long streams such as events)."""
    # A pinned API version spares a GET /version per client; any Docker-API host speaks it.
    return docker.DockerClient(base_url=engine_url, version=settings.ENGINE_API_VERSION, timeout=timeout)


def engine_client(host) -> docker.DockerClient:
    """Return this thread's docker-py client for host's engine."""
    clients = getattr(_local, "clients", None)
    if clients is None:
        clients = _local.clients = {}
    client = clients.get(host.engine_url)
    if client is None:
        client = clients[host.engine_url] = new_client(host.engine_url, settings.ENGINE_TIMEOUT)
    return client


def close_clients() -> None:
    """Close this thread's clients (at the end of a worker thread)."""
    for client in getattr(_local, "clients", {}).values():
        client.close()
    _local.clients = {}


@contextmanager
def calling(host, doing: str) -> Iterator[None]:
    """Turn docker-py and connection errors inside the block into EngineError with the engine's message."""
    try:
        yield
    except ENGINE_EXCEPTIONS as e:
        raise from_docker(e, host.name, doing) from e


def extension(host, method: str, path: str, *, params: dict | None = None, stream: bool = False, **kwargs):
    """Call one of dockweb's own engine endpoints (under /dockweb/, beside the Docker API) with docker-py's session.

    Returns the decoded JSON, or the open response when stream is true (the caller closes it). Errors raise
    docker.errors.APIError as the Docker endpoints do, so calling() turns them into EngineError.
    """
    api = engine_client(host).api
    url = api._url("/dockweb" + path)
    response = api._get(url, params=params, stream=stream, **kwargs) if method == "GET" else \
        getattr(api, "_" + method.lower())(url, params=params, stream=stream, **kwargs)
    api._raise_for_status(response)
    return response if stream else response.json()
