"""Bad input answers with Docker's statuses and texts and leaves nothing behind."""

import os

import docker
import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


def api(engine):
    return docker.APIClient(base_url=f"unix://{engine.socket}", version="1.50")


def container_dirs(engine):
    return sorted(os.listdir(os.path.join(engine.root, "containers")))


def test_unknown_container_is_404_with_dockers_text(engine):
    out = engine.docker("inspect", "--type", "container", "nosuch")
    assert out.returncode == 1
    assert "No such container: nosuch" in out.stderr
    with pytest.raises(docker.errors.NotFound, match="No such container: nosuch"):
        api(engine).kill("nosuch")


def test_unknown_image_is_404_for_docker_py(engine):
    with pytest.raises(docker.errors.ImageNotFound):
        api(engine).create_container("nosuchimage:9", "true")


def test_malformed_json_body_is_400(engine):
    before = container_dirs(engine)
    res = api(engine)._post(api(engine)._url("/containers/create"), data=b"{not json",
                            headers={"Content-Type": "application/json"})
    assert res.status_code == 400
    assert "message" in res.json()
    assert container_dirs(engine) == before


def test_wrong_field_type_names_the_field(engine):
    before = container_dirs(engine)
    res = api(engine)._post_json(api(engine)._url("/containers/create"),
                                 data={"Image": "busybox", "HostConfig": {"Memory": "lots"}})
    assert res.status_code == 400
    assert "Memory" in res.json()["message"]
    assert container_dirs(engine) == before


def test_bad_restart_policy_is_400(engine):
    out = engine.docker("create", "--restart", "sometimes", "busybox")
    assert out.returncode != 0
    res = api(engine)._post_json(api(engine)._url("/containers/create"),
                                 data={"Image": "busybox", "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}})
    assert res.status_code == 400
    assert "restart policy" in res.json()["message"]


def test_bad_signal_is_400(engine):
    engine.docker("run", "-d", "--name", "sig", "busybox", "sleep", "100")
    try:
        out = engine.docker("kill", "-s", "NOPE", "sig")
        assert out.returncode != 0
        assert "Invalid signal" in out.stderr or "invalid signal" in out.stderr
    finally:
        engine.docker("rm", "-f", "sig")


def test_kill_of_stopped_container_is_409(engine):
    engine.docker("create", "--name", "idle", "busybox", "true")
    try:
        with pytest.raises(docker.errors.APIError) as e:
            api(engine).kill("idle")
        assert e.value.status_code == 409
    finally:
        engine.docker("rm", "-f", "idle")


def test_exec_in_stopped_container_is_409(engine):
    engine.docker("create", "--name", "idle2", "busybox", "true")
    try:
        out = engine.docker("exec", "idle2", "true")
        assert out.returncode != 0
        assert "is not running" in out.stderr
    finally:
        engine.docker("rm", "-f", "idle2")


def test_api_version_too_new_is_400(engine):
    out = engine.docker("ps", env={"DOCKER_API_VERSION": "1.52"})
    assert out.returncode != 0
    assert "client version 1.52 is too new. Maximum supported API version is 1.50" in out.stderr
