"""docker login / pull / push against a docker-registry with htpasswd (bcrypt) basic auth, CLI and docker-py."""

from __future__ import annotations

import pytest

from tests.integration.registry_harness import RegistryServer, htpasswd_line

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture(scope="module")
def registry(engine):
    server = RegistryServer(engine, htpasswd=htpasswd_line("alice", "s3cret-pw"))
    try:
        yield server.start()
    finally:
        server.stop()


def login(engine, registry, password):
    return engine.docker("login", "-u", "alice", "--password-stdin", registry.host, input=password + "\n")


def test_cli_login_pull_and_push_need_the_right_credentials(engine, registry):
    d = engine.docker
    name = f"{registry.host}/team/private:1"
    d("tag", "busybox", name)
    out = d("push", name, input="")
    assert out.returncode != 0 and "no basic auth credentials" in out.stderr, out.stdout + out.stderr

    out = login(engine, registry, "wrong")
    assert out.returncode != 0
    assert f"login attempt to http://{registry.host}/v2/ failed with status: 401 Unauthorized" in out.stderr

    out = login(engine, registry, "s3cret-pw")
    assert out.returncode == 0, out.stderr
    assert "Login Succeeded" in out.stdout
    out = d("push", name)
    assert out.returncode == 0, out.stderr
    d("rmi", name)
    out = d("pull", name)
    assert out.returncode == 0, out.stderr

    assert d("logout", registry.host).returncode == 0
    d("rmi", name)
    # dockerd's answer, a 500 naming the cause: a 401 would make the CLI prompt for a login and hang.
    out = d("pull", name, input="")
    assert out.returncode != 0
    assert f'Head "http://{registry.host}/v2/team/private/manifests/1": no basic auth credentials' in out.stderr \
        or f'Get "http://{registry.host}/v2/team/private/manifests/1": no basic auth credentials' in out.stderr, \
        out.stderr
    assert name not in d("images", "--format", "{{.Repository}}:{{.Tag}}").stdout


def test_docker_py_login_and_pull_with_auth_config(engine, registry):
    import docker

    client = engine.client()
    with pytest.raises(docker.errors.APIError) as e:
        client.login("alice", "wrong", registry=registry.host, reauth=True)
    assert e.value.status_code == 401
    assert client.login("alice", "s3cret-pw", registry=registry.host, reauth=True)["Status"] == "Login Succeeded"

    name = f"{registry.host}/team/py-private"
    client.images.get("busybox").tag(name, "1")
    lines = list(client.images.push(name, tag="1", stream=True, decode=True,
                                    auth_config={"username": "alice", "password": "s3cret-pw"}))
    assert not [m for m in lines if "error" in m], lines
    client.images.remove(f"{name}:1")
    with pytest.raises(docker.errors.APIError) as e:
        client.api.pull(name, tag="1", auth_config={"username": "alice", "password": "nope"})
    assert e.value.status_code == 500 and "unauthorized: authentication required" in str(e.value)
    client.api.pull(name, tag="1", auth_config={"username": "alice", "password": "s3cret-pw"})
    assert client.images.get(f"{name}:1").id == client.images.get("busybox").id
