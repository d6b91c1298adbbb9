"""Push and pull through the real docker CLI and docker-py against Debian's docker-registry (in the daemon's netns)."""

from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from tests.integration.registry_harness import RegistryServer
from tests.unit.engine.registry_fake import image_manifest

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture(scope="module")
def registry(engine):
    server = RegistryServer(engine)
    try:
        yield server.start()
    finally:
        server.stop()


def ok(out):
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def layer_dirs(engine) -> set[str]:
    return set(os.listdir(engine.root / "images" / "layers"))


def test_push_rmi_pull_and_run_through_the_cli(engine, registry):
    d = engine.docker
    name = f"{registry.host}/team/app:1"
    ok(d("tag", "busybox", name))
    out = ok(d("push", name))
    assert f"The push refers to repository [{registry.host}/team/app]" in out
    assert "Pushed" in out
    digest = re.search(r"1: digest: (sha256:[0-9a-f]{64}) size: \d+", out).group(1)
    ok(d("tag", "busybox", "keep-busybox:1"))   # the engine's bootstrap image stays for the other tests
    ok(d("rmi", name, "busybox"))
    ok(d("rmi", "keep-busybox:1"))
    assert name not in ok(d("images", "--format", "{{.Repository}}:{{.Tag}}"))
    out = ok(d("pull", name))
    assert "Pull complete" in out and f"Digest: {digest}" in out
    assert f"Status: Downloaded newer image for {name}" in out
    assert ok(d("run", "--rm", name, "echo", "pulled")) == "pulled\n"
    digests = ok(d("image", "inspect", "-f", "{{json .RepoDigests}}", name))
    assert json.loads(digests) == [f"{registry.host}/team/app@{digest}"]
    out = ok(d("pull", name))
    assert f"Status: Image is up to date for {name}" in out
    ok(d("tag", name, "busybox"))


def test_pull_by_digest(engine, registry):
    d = engine.docker
    name = f"{registry.host}/team/bydigest:1"
    ok(d("tag", "busybox", name))
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", ok(d("push", name))).group(1)
    ok(d("rmi", name))
    out = ok(d("pull", f"{registry.host}/team/bydigest@{digest}"))
    assert f"Status: Downloaded newer image for {registry.host}/team/bydigest@{digest}" in out \
        or f"Status: Image is up to date for {registry.host}/team/bydigest@{digest}" in out
    assert ok(d("run", "--rm", f"{registry.host}/team/bydigest@{digest}", "echo", "ok")) == "ok\n"


def test_a_second_repository_mounts_or_finds_the_layers(engine, registry):
    d = engine.docker
    ok(d("tag", "busybox", f"{registry.host}/team/first:1"))
    ok(d("push", f"{registry.host}/team/first:1"))
    ok(d("tag", "busybox", f"{registry.host}/team/second:1"))
    out = ok(d("push", f"{registry.host}/team/second:1"))
    assert "Mounted from team/" in out or "Layer already exists" in out
    assert "Pushed" not in out


def test_docker_py_push_and_pull(engine, registry):
    client = engine.client()
    image = client.images.get("busybox")
    image.tag(f"{registry.host}/team/py", "2")
    lines = list(client.images.push(f"{registry.host}/team/py", tag="2", stream=True, decode=True))
    assert not [m for m in lines if "error" in m], lines
    assert any("aux" in m and m["aux"]["Tag"] == "2" for m in lines)
    client.images.remove(f"{registry.host}/team/py:2")
    pulled = client.images.pull(f"{registry.host}/team/py", tag="2")
    assert pulled.id == image.id
    with pytest.raises(Exception) as e:
        client.images.pull(f"{registry.host}/team/py", tag="nosuch")
    assert "manifest unknown" in str(e.value)
    assert getattr(e.value, "status_code", None) == 404


def _busybox_layer(engine) -> bytes:
    inspect = json.loads(ok(engine.docker("image", "inspect", "busybox")))[0]
    [diff_id] = inspect["RootFS"]["Layers"]
    return (engine.root / "images" / "blobs" / "sha256" / diff_id.split(":")[1]).read_bytes()


def _push_raw(registry, repo, tag, layers, arch="amd64"):
    config, manifest, blobs = image_manifest(layers, arch=arch)
    for blob in (config, *blobs):
        registry.put_blob(repo, blob, "sha256:" + hashlib.sha256(blob).hexdigest())
    registry.put_manifest(repo, tag, manifest)
    return manifest


def test_a_zstd_layer_pushed_over_http_pulls_and_runs(engine, registry):
    from engine.images.store import host_architecture

    _push_raw(registry, "team/zstd", "1", [(_busybox_layer(engine), "zstd")], arch=host_architecture())
    name = f"{registry.host}/team/zstd:1"
    ok(engine.docker("pull", name))
    assert ok(engine.docker("run", "--rm", name, "echo", "zstd")) == "zstd\n"


def test_a_manifest_list_resolves_to_the_hosts_platform(engine, registry):
    from engine.images.store import host_architecture

    host = host_architecture()
    other = "arm64" if host == "amd64" else "amd64"
    entries = []
    for arch in (other, host):
        layer = (_busybox_layer(engine), "gzip") if arch == host else (b"\0" * 1024, "gzip")
        manifest = _push_raw(registry, "team/multi", f"only-{arch}", [layer], arch=arch)
        entries.append({"mediaType": json.loads(manifest)["mediaType"], "size": len(manifest),
                        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                        "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                        "manifests": entries}).encode()
    registry.put_manifest("team/multi", "latest", index)
    name = f"{registry.host}/team/multi"
    ok(engine.docker("pull", name))
    assert ok(engine.docker("image", "inspect", "-f", "{{.Architecture}}", name)).strip() == host
    assert ok(engine.docker("run", "--rm", name, "echo", "multi")) == "multi\n"
    # A list holding only the other platform: Docker's message, nothing stored.
    registry.put_manifest("team/multi", "other-only", json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
         "manifests": entries[:1]}).encode())
    out = engine.docker("pull", f"{name}:other-only")
    assert out.returncode != 0
    assert f"no matching manifest for linux/{host} in the manifest list entries" in out.stderr


def test_a_tampered_blob_is_refused_and_leaves_nothing_behind(engine, registry):
    d = engine.docker
    name = f"{registry.host}/team/tampered:1"
    ok(d("import", "-", name, input=os.urandom(0) + _tiny_rootfs(), text=False))
    manifest = ok(d("push", name))
    assert "Pushed" in manifest
    ok(d("rmi", name))
    status, body = registry.request("GET", "/v2/team/tampered/manifests/1",
                                    headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    layer_digest = json.loads(body)["layers"][0]["digest"]
    path = registry.blob_data_path(layer_digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before_layers, before_images = layer_dirs(engine), ok(d("images", "-q", "--no-trunc"))
    out = d("pull", name)
    assert out.returncode != 0
    assert f"filesystem layer verification failed for digest {layer_digest}" in out.stderr
    assert layer_dirs(engine) == before_layers
    assert ok(d("images", "-q", "--no-trunc")) == before_images
    assert os.listdir(engine.root / "images" / "tmp") == []


def _tiny_rootfs() -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = os.urandom(64 * 1024)
        info = tarfile.TarInfo("etc/random")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
