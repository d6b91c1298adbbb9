"""Registry auth: X-Registry-Auth decoding, challenges, basic and bearer token flows, login."""

from __future__ import annotations

import base64
import io
import json

import pytest

from engine.config import EngineConfig
from engine.errors import InvalidParameter
from engine.registry import Registry, Unauthorized, auth_for, decode_auth_header, decode_config_header
from engine.registry.config import RegistryHosts, normalize_server_address
from tests.unit.engine.registry_fake import FakeRegistry, layer_tar, publish
from tests.unit.engine.test_image_harness import make_store, simple_rootfs


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path)


@pytest.fixture
def registry(tmp_path, store):
    return Registry(EngineConfig(root=tmp_path / "root"), store)


def served(auth):
    return FakeRegistry(auth=auth).serve()


def creds(fake, password="secret"):
    return {"username": "alice", "password": password, "serveraddress": fake.host}


def test_registry_auth_header_is_decoded_leniently():
    doc = {"username": "a", "password": "p?>", "serveraddress": "h:5000", "email": None}
    raw = json.dumps(doc).encode()
    assert decode_auth_header(base64.urlsafe_b64encode(raw).decode()) == doc
    assert decode_auth_header(base64.b64encode(raw).decode().rstrip("=")) == doc
    assert decode_auth_header("e30=") is None and decode_auth_header(None) is None
    with pytest.raises(InvalidParameter):
        decode_auth_header("!!!")


def test_registry_config_header_gives_the_auth_of_a_domain():
    configs = decode_config_header(base64.urlsafe_b64encode(json.dumps(
        {"https://index.docker.io/v1/": {"username": "hub"}, "127.0.0.1:5000": {"username": "local"}}).encode()).decode())
    assert auth_for(configs, "docker.io") == {"username": "hub"}
    assert auth_for(configs, "127.0.0.1:5000") == {"username": "local"}
    assert auth_for(configs, "elsewhere.io") is None
    assert normalize_server_address("https://index.docker.io/v1/") == "docker.io"


def test_loopback_and_configured_registries_are_insecure():
    hosts = RegistryHosts(("reg.lan:5000", "10.1.0.0/16"))
    assert hosts.is_insecure("127.0.0.1:5000") and hosts.is_insecure("localhost:5000")
    assert hosts.is_insecure("reg.lan:5000") and hosts.is_insecure("10.1.2.3:443")
    assert not hosts.is_insecure("reg.lan:6000") and not hosts.is_insecure("docker.io")
    assert hosts.endpoint("docker.io") == "registry-1.docker.io"


def test_insecure_registries_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOCKWEB_INSECURE_REGISTRIES", "reg.lan:5000, 10.0.0.0/8")
    assert EngineConfig.from_env().insecure_registries == ("reg.lan:5000", "10.0.0.0/8")


def test_basic_auth_pull_needs_the_right_credentials(registry):
    fake = served("basic")
    try:
        publish(fake, "team/app", "1", [(layer_tar(b"x"), "gzip")])
        with pytest.raises(Unauthorized, match=r'^Get "http://127\.0\.0\.1:\d+/v2/team/app/manifests/1": '
                                               r"no basic auth credentials$"):
            registry.pull(f"{fake.host}/team/app:1")
        with pytest.raises(Unauthorized, match="^unauthorized: authentication required$"):
            registry.pull(f"{fake.host}/team/app:1", auth=creds(fake, "wrong"))
        image = registry.pull(f"{fake.host}/team/app:1", auth=creds(fake))
        assert image.repo_tags == [f"{fake.host}/team/app:1"]
    finally:
        fake.close()


def test_bearer_token_auth_pulls_and_pushes_with_scoped_tokens(registry, store):
    fake = served("bearer")
    try:
        publish(fake, "team/app", "1", [(layer_tar(b"x"), "gzip")])
        registry.pull(f"{fake.host}/team/app:1", auth=creds(fake))
        assert fake.count("GET", r"^/token\?service=fake-registry&scope=repository%3Ateam%2Fapp%3Apull") >= 1
        store.import_image(io.BytesIO(simple_rootfs()), repo=f"{fake.host}/team/pushed", tag="1")
        registry.push(f"{fake.host}/team/pushed:1", auth=creds(fake))
        assert fake.count("GET", r"scope=repository%3Ateam%2Fpushed%3Apull%2Cpush") >= 1
        assert "1" in fake.manifests["team/pushed"]
        with pytest.raises(Unauthorized, match="incorrect username or password"):
            registry.pull(f"{fake.host}/team/app:1", auth=creds(fake, "wrong"))
    finally:
        fake.close()


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_login_checks_the_credentials_against_the_registry(registry, scheme):
    fake = served(scheme)
    try:
        assert registry.login(creds(fake)) == "Login Succeeded"
        with pytest.raises(Unauthorized) as e:
            registry.login(creds(fake, "wrong"))
        assert e.value.message.startswith(
            f"login attempt to http://{fake.host}/v2/ failed with status: 401 Unauthorized")
    finally:
        fake.close()


def test_login_to_an_open_registry_succeeds(registry):
    fake = served("")
    try:
        assert registry.login(creds(fake)) == "Login Succeeded"
    finally:
        fake.close()
