"""Network endpoints without root: the predefined networks through the API and the docker CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from engine.api.routes import load_routes
from engine.network.manager import NetworkManager
from engine.network.settings import NetworkSettings
from tests.unit.engine.test_api_harness import FakeEngine, get_json, running_server


@pytest.fixture
def engine(tmp_path):
    e = FakeEngine(tmp_path / "root")
    e.networks = NetworkManager(e.config, e.events, NetworkSettings())
    e.networks.load()
    return e


@pytest.fixture
def server(tmp_path, engine):
    with running_server(tmp_path, load_routes(("networks",)), engine) as srv:
        yield srv


def q(obj) -> str:
    return urllib.parse.quote(json.dumps(obj))


def test_networks_lists_the_predefined_three(server):
    status, nets = get_json(server, "/networks")
    assert status == 200
    assert [(n["Name"], n["Driver"]) for n in nets] == [("bridge", "bridge"), ("host", "host"), ("none", "null")]
    bridge = nets[0]
    assert bridge["IPAM"] == {"Driver": "default", "Options": None,
                              "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]}
    assert len(bridge["Id"]) == 64 and bridge["Scope"] == "local" and bridge["EnableIPv4"] is True
    assert bridge["Options"]["com.docker.network.bridge.default_bridge"] == "true"
    assert nets[1]["IPAM"]["Config"] == [] and nets[1]["EnableIPv4"] is False


def test_network_ids_are_stable_across_daemon_restarts(tmp_path, engine):
    again = NetworkManager(engine.config, engine.events, NetworkSettings())
    again.load()
    assert [n.id for n in again.all()] == [n.id for n in engine.networks.all()]
    assert again.get("bridge").pool == engine.networks.get("bridge").pool


def test_networks_filters(server):
    def names(flt):
        return [n["Name"] for n in get_json(server, "/networks?filters=" + q(flt))[1]]
    assert names({"driver": {"bridge": True}}) == ["bridge"]
    assert names({"name": ["o"]}) == ["host", "none"]
    assert names({"type": ["custom"]}) == []
    assert names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert names({"dangling": ["true"]}) == []
    assert get_json(server, "/networks?filters=" + q({"bogus": ["x"]})) == (400, {"message": "invalid filter 'bogus'"})


def test_network_inspect_by_name_id_and_prefix(server):
    nets = get_json(server, "/networks")[1]
    host_id = nets[1]["Id"]
    assert get_json(server, "/networks/host")[1]["Id"] == host_id
    assert get_json(server, f"/networks/{host_id}")[1]["Name"] == "host"
    assert get_json(server, f"/networks/{host_id[:12]}")[1]["Name"] == "host"
    assert get_json(server, "/networks/nosuch") == (404, {"message": "network nosuch not found"})


@pytest.mark.parametrize("body, status, message", [
    ({"Name": "bridge"}, 403, "bridge is a pre-defined network and cannot be created"),
    ({"Name": "n1", "Driver": "overlay"}, 404, 'plugin "overlay" not found'),
    ({"Name": "n1", "Driver": "host"}, 403, 'only one instance of "host" network is allowed'),
    ({"Name": "bad name"}, 400, 'invalid name "bad name": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'),
    ({"Name": ""}, 400, "network name is required: give the network a name"),
    ({"Name": "n1", "EnableIPv6": True}, 400, "IPv6 networks are not supported by this engine: create the "
                                              "network without --ipv6"),
])
def test_network_create_refusals(server, body, status, message):
    assert get_json(server, "/networks/create", "POST", json.dumps(body).encode()) == (status, {"message": message})


def test_predefined_networks_cannot_be_removed(server):
    status, doc = get_json(server, "/networks/bridge", "DELETE")
    assert (status, doc["message"]) == (403, "bridge is a pre-defined network and cannot be removed")
    assert get_json(server, "/networks/n1", "DELETE")[0] == 404


def test_network_prune_keeps_the_predefined_networks(server):
    assert get_json(server, "/networks/prune", "POST", b"") == (200, {"NetworksDeleted": None})
    assert len(get_json(server, "/networks")[1]) == 3


DOCKER = shutil.which("docker")


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_network_ls_shows_the_predefined_networks(tmp_path, server):
    (tmp_path / "docker-config").mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "DOCKER_HOST": f"unix://{server.socket_path}", "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    r = subprocess.run([DOCKER, "network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["bridge bridge local", "host host local", "none null local"]
    r = subprocess.run([DOCKER, "network", "rm", "none"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "none is a pre-defined network and cannot be removed" in r.stderr


def test_records_live_under_the_engine_root(engine):
    assert sorted(p.name for p in Path(engine.config.root, "networks").iterdir()) == \
        sorted(f"{n.id}.json" for n in engine.networks.all())
