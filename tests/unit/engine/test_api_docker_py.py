"""docker-py 7.1.0 negotiates with the API server and reads system endpoints over its pooled keep-alive connections."""

from __future__ import annotations

import time

import pytest

from engine.api.routes import load_routes
from tests.unit.engine.test_api_harness import running_server

docker = pytest.importorskip("docker")


@pytest.fixture
def client(tmp_path):
    with running_server(tmp_path, load_routes(("system",))) as srv:
        c = docker.DockerClient(base_url=f"unix://{srv.socket_path}", version="auto", timeout=10)
        c.server = srv
        try:
            yield c
        finally:
            c.close()


def test_docker_py_adopts_the_server_api_version(client):
    assert client.api.api_version == "1.50"
    assert client.ping() is True


def test_docker_py_reads_version_and_info(client):
    assert client.version()["Platform"]["Name"] == "dockweb Engine"
    assert client.info()["Containers"] == 3


def test_docker_py_decodes_the_events_stream(client):
    client.server.engine.events.publish("volume", "create", "v1", {"driver": "local"})
    events = list(client.events(since=int(time.time()) - 5, until=int(time.time()) + 1, decode=True))
    assert [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in events] == [("volume", "create", "v1")]


def test_docker_py_sees_404_as_not_found(client):
    # (system.py no longer answers /networks: engine/api/handlers/networks.py does, tested in test_network_api.py)
    with pytest.raises(docker.errors.NotFound, match='plugin "nosuch" not found'):
        client.plugins.get("nosuch")
