"""The image endpoints over a real API server, driven by http.client and docker-py."""

import io
import json

import docker
import pytest

from engine.api.handlers import images as image_handlers
from engine.api.routes import Router
from tests.unit.engine.test_api_harness import FakeEngine, request, running_server
from tests.unit.engine.test_image_harness import FakeContainers, build_tar, entry, make_store, simple_rootfs


@pytest.fixture
def served(tmp_path):
    engine = FakeEngine(tmp_path / "engine")
    engine.images = make_store(tmp_path)
    engine.containers = FakeContainers()
    with running_server(tmp_path, routes=Router(image_handlers.ROUTES), engine=engine) as server:
        yield engine, server


def call(server, method, path, body=None, headers=None):
    status, hdrs, data = request(server, method, path, body, headers)
    return status, hdrs, data


def lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_import_answers_a_json_stream_with_the_new_id(served):
    engine, server = served
    status, _, data = call(server, "POST", "/v1.50/images/create?fromSrc=-&repo=local/app&tag=v1"
                           "&changes=CMD%20%5B%22sh%22%5D", simple_rootfs())
    assert status == 200
    [msg] = lines(data)
    assert msg == {"status": engine.images.get("local/app:v1").id}
    assert engine.images.get("local/app:v1").config["config"]["Cmd"] == ["sh"]


def test_import_of_garbage_is_a_400_with_a_message(served):
    _, server = served
    status, _, data = call(server, "POST", "/images/create?fromSrc=-&repo=x", b"garbage" * 100)
    assert status == 400
    assert "invalid layer" in json.loads(data)["message"]


def test_pull_answers_dockers_not_found_text(served):
    _, server = served
    status, _, data = call(server, "POST", "/images/create?fromImage=docker.io/library/busybox&tag=latest")
    assert status == 404
    assert json.loads(data)["message"].startswith(
        "pull access denied for busybox, repository does not exist or may require 'docker login'")


def test_names_with_slashes_and_ports_route_to_inspect_tag_history_and_delete(served):
    engine, server = served
    engine.images.import_image(io.BytesIO(simple_rootfs()), repo="busybox")
    status, _, _ = call(server, "POST", "/images/busybox/tag?repo=localhost:5000/a/b&tag=v1")
    assert status == 201
    status, _, data = call(server, "GET", "/images/localhost:5000/a/b:v1/json")
    doc = json.loads(data)
    assert status == 200 and sorted(doc["RepoTags"]) == ["busybox:latest", "localhost:5000/a/b:v1"]
    assert doc["RootFS"]["Type"] == "layers" and doc["GraphDriver"]["Name"] == "overlay2"
    assert doc["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    status, _, data = call(server, "GET", "/images/localhost:5000/a/b:v1/history")
    assert status == 200 and json.loads(data)[0]["Tags"]
    status, _, data = call(server, "DELETE", "/images/localhost:5000/a/b:v1")
    assert status == 200 and json.loads(data) == [{"Untagged": "localhost:5000/a/b:v1"}]


def test_delete_conflict_is_a_409(served):
    engine, server = served
    image = engine.images.import_image(io.BytesIO(simple_rootfs()), repo="busybox")
    engine.containers.users[image.id] = [("a" * 64, True)]
    status, _, data = call(server, "DELETE", f"/images/{image.id[7:19]}?force=1")
    assert status == 409
    assert "(cannot be forced) - image is being used by running container aaaaaaaaaaaa" in json.loads(data)["message"]


def test_list_shows_summaries_and_empty_lists_for_dangling_images(served):
    engine, server = served
    image = engine.images.import_image(io.BytesIO(simple_rootfs()))
    status, _, data = call(server, "GET", "/v1.50/images/json")
    [summary] = json.loads(data)
    assert summary["Id"] == image.id and summary["RepoTags"] == [] and summary["SharedSize"] == -1
    status, _, data = call(server, "GET", "/v1.41/images/json")
    assert json.loads(data)[0]["RepoTags"] == ["<none>:<none>"]


def test_unknown_image_is_dockers_404(served):
    _, server = served
    status, _, data = call(server, "GET", "/images/nosuch/json")
    assert status == 404 and json.loads(data) == {"message": "No such image: nosuch:latest"}


def test_docker_py_saves_and_loads_through_the_api(served, tmp_path):
    engine, server = served
    image = engine.images.import_image(io.BytesIO(simple_rootfs()), repo="busybox")
    client = docker.APIClient(base_url=f"unix://{server.socket_path}", version="1.50")
    try:
        archive = b"".join(client.get_image("busybox"))
        client.remove_image("busybox")
        assert engine.images.is_empty()
        out = list(client.load_image(archive))
        assert out == [{"stream": "Loaded image: busybox:latest\n"}]
        assert client.inspect_image("busybox")["Id"] == image.id
        client.tag(image.id, "again", "v2")
        assert "again:v2" in client.inspect_image(image.id)["RepoTags"]
        pruned = client.prune_images(filters={"dangling": False})
        assert {"Deleted": image.id} in pruned["ImagesDeleted"]
    finally:
        client.close()


def test_a_bad_archive_load_is_a_400(served):
    engine, server = served
    status, _, data = call(server, "POST", "/images/load?quiet=1", build_tar(entry("junk", b"x")),
                           {"Content-Type": "application/x-tar"})
    assert status == 400 and "invalid archive" in json.loads(data)["message"]
    assert engine.images.is_empty()
