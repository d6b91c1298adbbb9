"""Pushing to a (fake, in-process) v2 registry: gzip layers, HEAD first, mounts, manifests, round trips."""

from __future__ import annotations

import gzip
import io
import json
import os

import pytest

from engine.config import EngineConfig
from engine.errors import NotFound
from engine.registry import Registry
from tests.unit.engine.registry_fake import MT_DOCKER_MANIFEST, digest_of
from tests.unit.engine.test_image_harness import leftovers, make_store, simple_rootfs


def push(registry, ref):
    messages = []
    digest = registry.push(ref, progress=messages.append)
    return digest, messages


def test_push_uploads_gzip_layers_config_and_a_schema2_manifest(fake, store, registry):
    image = store.import_image(io.BytesIO(simple_rootfs()), repo=f"{fake.host}/team/app", tag="1")
    digest, messages = push(registry, f"{fake.host}/team/app:1")
    assert messages[0] == {"status": f"The push refers to repository [{fake.host}/team/app]"}
    layer_id = image.diff_ids[0].split(":")[1][:12]
    assert [m["status"] for m in messages if m.get("id") == layer_id and m["status"] != "Pushing"] == \
        ["Preparing", "Pushed"]
    body, media_type = fake.manifests["team/app"]["1"]
    assert digest == digest_of(body) and media_type == MT_DOCKER_MANIFEST
    assert messages[-2] == {"status": f"1: digest: {digest} size: {len(body)}"}
    assert messages[-1]["aux"] == {"Tag": "1", "Digest": digest, "Size": len(body)}
    manifest = json.loads(body)
    assert manifest["config"]["digest"] == image.id
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert gzip.decompress(fake.blobs[layer["digest"]]) == simple_rootfs()
    assert store.get(image.id).repo_digests == [f"{fake.host}/team/app@{digest}"]
    # HEAD before every upload, and nothing left in the store's temporary directory.
    assert fake.count("HEAD", layer["digest"]) == 1 and fake.count("HEAD", image.id) == 1
    assert leftovers(store) == []


def test_a_second_push_says_layer_already_exists_without_uploading(fake, store, registry):
    store.import_image(io.BytesIO(simple_rootfs()), repo=f"{fake.host}/team/app", tag="1")
    push(registry, f"{fake.host}/team/app:1")
    posts = fake.count("POST", "/blobs/uploads/")
    _, messages = push(registry, f"{fake.host}/team/app:1")
    assert "Layer already exists" in [m.get("status") for m in messages]
    assert fake.count("POST", "/blobs/uploads/") == posts


def test_pushing_to_another_repository_mounts_the_layer(fake, store, registry):
    image = store.import_image(io.BytesIO(simple_rootfs()), repo=f"{fake.host}/team/app", tag="1")
    push(registry, f"{fake.host}/team/app:1")
    store.tag(image.id, f"{fake.host}/team/other", "2")
    _, messages = push(registry, f"{fake.host}/team/other:2")
    assert "Mounted from team/app" in [m.get("status") for m in messages]
    assert fake.count("POST", r"mount=sha256.*from=team%2Fapp") == 1
    assert fake.count("PATCH", "/team/other/") == 1   # the config only: the layer was mounted


def test_pushed_image_pulls_back_into_another_store_with_the_same_id(fake, tmp_path, store, registry):
    image = store.import_image(io.BytesIO(simple_rootfs(b"round trip\n")), repo=f"{fake.host}/team/app",
                               tag="1")
    push(registry, f"{fake.host}/team/app:1")
    other = make_store(tmp_path, "other")
    pulled = Registry(EngineConfig(root=tmp_path / "other"), other).pull(f"{fake.host}/team/app:1")
    assert pulled.id == image.id
    assert (other.layer_dirs(pulled)[0] / "etc" / "marker").read_bytes() == b"round trip\n"


def test_push_without_tag_pushes_every_tag_of_the_repository(fake, store, registry):
    image = store.import_image(io.BytesIO(simple_rootfs()), repo=f"{fake.host}/team/app", tag="a")
    store.tag(image.id, f"{fake.host}/team/app", "b")
    _, messages = push(registry, f"{fake.host}/team/app")
    assert {"a", "b"} <= set(fake.manifests["team/app"])
    assert [m["aux"]["Tag"] for m in messages if "aux" in m] == ["a", "b"]


def test_push_of_a_missing_image_is_dockers_404_before_any_message(fake, registry):
    with pytest.raises(NotFound, match=f"^An image does not exist locally with the tag: {fake.host}/team/nosuch$"):
        registry.push_stream(f"{fake.host}/team/nosuch:1")


def test_a_failed_chunk_is_resumed_from_the_sessions_offset(fake, store, registry, monkeypatch):
    import engine.registry.client as client_mod

    monkeypatch.setattr(client_mod, "UPLOAD_CHUNK", 1024)
    store.import_image(io.BytesIO(simple_rootfs(os.urandom(5000))), repo=f"{fake.host}/team/app", tag="1")
    real = client_mod.RegistryClient._raw
    failed = []

    def flaky(self, method, url, headers=None, body=None, redirects=5):
        if method == "PATCH" and "Content-Range" in (headers or {}) and \
                headers["Content-Range"].startswith("1024-") and not failed:
            failed.append(url)
            raise client_mod.Unreachable(f'Patch "{url}": connection reset by peer')
        return real(self, method, url, headers, body, redirects)

    monkeypatch.setattr(client_mod.RegistryClient, "_raw", flaky)
    digest, messages = push(registry, f"{fake.host}/team/app:1")
    assert failed and digest in fake.manifests["team/app"]
    assert fake.count("GET", "/blobs/uploads/") == 1   # asked the session where it stood
