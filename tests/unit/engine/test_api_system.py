"""System endpoints: ping, version, info, events, system df, auth and plugins (networks: test_network_api.py)."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from dataclasses import dataclass, field

import pytest

from engine.api.handlers import system
from engine.api.routes import load_routes
from tests.unit.engine.test_api_harness import (FakeEngine, connect, get_json, read_until, request,
                                                running_server)


@pytest.fixture
def engine(tmp_path):
    return FakeEngine(tmp_path / "root")


@pytest.fixture
def server(tmp_path, engine):
    with running_server(tmp_path, load_routes(("system",)), engine) as srv:
        yield srv


def q(obj) -> str:
    return urllib.parse.quote(json.dumps(obj))


# -- ping and version --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, body", [("GET", b"OK"), ("HEAD", b"")])
def test_ping_advertises_what_the_cli_negotiates_with(server, method, body):
    status, headers, data = request(server, method, "/_ping")
    assert (status, data) == (200, body)
    assert headers["api-version"] == "1.50"
    assert headers["builder-version"] == "1"
    assert headers["swarm"] == "inactive"
    assert headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert headers["pragma"] == "no-cache"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-length"] == str(len(body))


def test_version_names_the_engine_and_its_api_range(server):
    status, doc = get_json(server, "/version")
    assert status == 200
    assert doc["Platform"] == {"Name": "dockweb Engine"}
    assert (doc["ApiVersion"], doc["MinAPIVersion"], doc["Os"], doc["GoVersion"]) == ("1.50", "1.24", "linux", "n/a")
    assert doc["Arch"] in ("amd64", "arm64") or doc["Arch"] == os.uname().machine
    assert doc["KernelVersion"] == os.uname().release
    assert doc["Experimental"] is False
    engine = doc["Components"][0]
    assert engine["Name"] == "Engine" and engine["Version"] == doc["Version"]
    assert engine["Details"]["ApiVersion"] == "1.50"


# -- info --------------------------------------------------------------------------------------------------------

def test_info_counts_containers_and_images(server, engine):
    engine.containers.count_doc = {"total": 5, "running": 2, "paused": 1, "stopped": 2}
    engine.images.images = [object(), object()]
    _, doc = get_json(server, "/info")
    assert (doc["Containers"], doc["ContainersRunning"], doc["ContainersPaused"], doc["ContainersStopped"]) == \
        (5, 2, 1, 2)
    assert doc["Images"] == 2


def test_info_describes_the_host_and_the_engine(server, engine):
    _, doc = get_json(server, "/info")
    assert doc["DockerRootDir"] == str(engine.config.root)
    assert doc["NCPU"] == len(os.sched_getaffinity(0))
    assert doc["MemTotal"] > 0
    assert doc["Driver"] == "overlay2" and doc["CgroupDriver"] == "cgroupfs"
    assert doc["CgroupVersion"] in ("1", "2")
    assert doc["Swarm"]["LocalNodeState"] == "inactive"
    assert doc["Runtimes"] == {"dockweb": {"path": "dockweb"}} and doc["DefaultRuntime"] == "dockweb"
    assert doc["SecurityOptions"] == ["name=seccomp,profile=builtin"]
    assert doc["LoggingDriver"] == "json-file"
    assert doc["OSType"] == "linux" and doc["Architecture"] == os.uname().machine
    assert doc["ServerVersion"] == "0.1.0"


def test_cgroup_version_follows_what_is_mounted_at_sys_fs_cgroup(server):
    _, doc = get_json(server, "/info")
    mounted = dict(system._mounts()).get("/sys/fs/cgroup")
    assert doc["CgroupVersion"] == ("2" if mounted == "cgroup2" else "1")


def test_info_id_is_stable_and_kept_in_the_root(server, engine):
    first = get_json(server, "/info")[1]["ID"]
    assert get_json(server, "/info")[1]["ID"] == first
    assert (engine.config.root / "engine-id").read_text().strip() == first


# -- events ------------------------------------------------------------------------------------------------------

def publish_some(engine):
    engine.events.publish("container", "create", "c" * 64, {"name": "web", "image": "busybox:latest"})
    engine.events.publish("container", "start", "c" * 64, {"name": "web", "image": "busybox:latest", "a": "b"})
    engine.events.publish("image", "tag", "sha256:" + "1" * 64, {"name": "localhost:5000/busybox:v1"})
    engine.events.publish("container", "exec_create: sh -c true", "d" * 64, {"name": "db", "image": "alpine"})
    engine.events.publish("volume", "create", "vol1", {"driver": "local"})


def past_events(server, query: str = "") -> list[dict]:
    since = time.time() - 60
    until = time.time() + 0.001
    status, _, body = request(server, "GET", f"/events?since={since:.9f}&until={until:.9f}{query}")
    assert status == 200
    return [json.loads(line) for line in body.splitlines()]


def test_events_with_until_in_the_past_send_the_buffer_and_end(server, engine):
    publish_some(engine)
    events = past_events(server)
    assert [e["Action"] for e in events] == ["create", "start", "tag", "exec_create: sh -c true", "create"]
    start = events[1]
    assert start["Actor"] == {"ID": "c" * 64, "Attributes": {"name": "web", "image": "busybox:latest", "a": "b"}}
    assert (start["status"], start["id"], start["from"]) == ("start", "c" * 64, "busybox:latest")
    assert start["scope"] == "local" and start["time"] == start["timeNano"] // 10**9


@pytest.mark.parametrize("flt, actions", [
    ({"type": {"container": True}}, ["create", "start", "exec_create: sh -c true"]),
    ({"event": {"start": True}}, ["start"]),
    ({"event": ["exec_create"]}, ["exec_create: sh -c true"]),
    ({"container": {"web": True}}, ["create", "start"]),
    ({"container": {"ccc": True}}, ["create", "start"]),
    ({"image": {"busybox": True}}, ["create", "start"]),
    ({"image": {"localhost:5000/busybox": True}}, ["tag"]),
    ({"label": {"a=b": True}}, ["start"]),
    ({"label": {"a": True}}, ["start"]),
    ({"volume": {"vol1": True}}, ["create"]),
    ({"type": ["container"], "event": ["create", "start"], "container": ["db"]}, []),
])
def test_events_filters_match_like_dockerd(server, engine, flt, actions):
    publish_some(engine)
    assert [e["Action"] for e in past_events(server, "&filters=" + q(flt))] == actions


def test_events_until_before_since_is_a_400(server):
    status, doc = get_json(server, "/events?since=200&until=100")
    assert status == 400
    assert "cannot be after" in doc["message"]


def test_events_unknown_filter_is_a_400(server):
    status, doc = get_json(server, "/events?filters=" + q({"colour": ["red"]}))
    assert (status, doc["message"]) == (400, "invalid filter 'colour'")


def test_events_bad_time_is_a_400(server):
    status, doc = get_json(server, "/events?since=yesterday")
    assert status == 400 and "since" in doc["message"]


def test_events_accepts_rfc3339_and_durations(server, engine):
    engine.events.publish("container", "start", "c1", {})
    status, _, body = request(server, "GET", "/events?since=2m&until=" + urllib.parse.quote(
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))))
    assert status == 200
    assert [json.loads(line)["Action"] for line in body.splitlines()] == ["start"]


def test_live_events_flush_headers_at_once_and_stream_new_events(server, engine):
    before = system._listeners.count
    sock = connect(server)
    sock.sendall(b"GET /v1.50/events?filters=" + q({"type": ["container"]}).encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    head = read_until(sock, b"\r\n\r\n")       # before any event exists
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Transfer-Encoding: chunked" in head
    for _ in range(100):
        if system._listeners.count > before:
            break
        time.sleep(0.01)
    assert system._listeners.count == before + 1
    engine.events.publish("image", "pull", "busybox", {})
    engine.events.publish("container", "die", "c1", {"exitCode": "0"})
    data = read_until(sock, b"}\n\r\n", bytearray(head))
    line = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")[1]
    assert json.loads(line)["Action"] == "die"
    sock.close()
    # The follower notices the disconnect on its next idle tick (about a second) and unsubscribes.
    deadline = time.monotonic() + 5
    while system._listeners.count > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert system._listeners.count == before


def test_events_with_until_in_the_future_end_at_that_time(server, engine):
    started = time.monotonic()
    status, _, body = request(server, "GET", f"/events?until={time.time() + 0.5:.3f}")
    assert status == 200 and body == b""
    assert 0.3 < time.monotonic() - started < 3


# -- system df ---------------------------------------------------------------------------------------------------

@dataclass
class Img:
    id: str
    repo_tags: list
    size: int
    created: str = "2024-09-26T21:31:42Z"
    repo_digests: list = field(default_factory=list)
    config: dict = field(default_factory=lambda: {"config": {"Labels": {"l": "v"}}})


def test_system_df_summarises_images_when_the_store_has_no_df(server, engine):
    engine.images.images = [Img("sha256:" + "a" * 64, ["busybox:latest"], 4_000_000)]
    engine.containers.image_users = lambda image_id: [("c1", True)]
    _, doc = get_json(server, "/system/df")
    assert doc["LayersSize"] == 4_000_000
    assert doc["Images"] == [{"Id": "sha256:" + "a" * 64, "ParentId": "", "RepoTags": ["busybox:latest"],
                              "RepoDigests": [], "Created": 1727386302, "Size": 4_000_000, "SharedSize": -1,
                              "Labels": {"l": "v"}, "Containers": 1}]
    assert (doc["Containers"], doc["Volumes"], doc["BuildCache"]) == ([], [], [])


def test_system_df_uses_each_component_df(server, engine):
    engine.images.df = lambda: {"LayersSize": 7, "Images": [{"Id": "sha256:x"}]}
    engine.containers.df = lambda: [{"Id": "c1", "SizeRw": 1, "SizeRootFs": 2}]
    engine.volumes = type("V", (), {"df": staticmethod(lambda: [{"Name": "v", "UsageData": {"Size": 3,
                                                                                              "RefCount": 1}}])})()
    _, doc = get_json(server, "/system/df")
    assert doc == {"LayersSize": 7, "Images": [{"Id": "sha256:x"}],
                   "Containers": [{"Id": "c1", "SizeRw": 1, "SizeRootFs": 2}],
                   "Volumes": [{"Name": "v", "UsageData": {"Size": 3, "RefCount": 1}}], "BuildCache": []}


def test_system_df_type_selects_what_is_computed(server, engine):
    _, doc = get_json(server, "/system/df?type=volume")
    assert doc == {"LayersSize": 0, "Volumes": []}
    status, doc = get_json(server, "/system/df?type=disks")
    assert status == 400


# -- auth, plugins -----------------------------------------------------------------------------------------------

def test_auth_is_refused_honestly_with_a_401(server):
    body = json.dumps({"username": "alice", "password": "pw", "serveraddress": "localhost:5000"}).encode()
    status, doc = get_json(server, "/auth", "POST", body)
    assert status == 401
    assert doc["message"].startswith("login attempt to localhost:5000 failed")


def test_plugin_inspect_is_not_found(server):
    assert get_json(server, "/plugins/nosuch/json") == (404, {"message": 'plugin "nosuch" not found'})
    assert get_json(server, "/plugins") == (200, [])
