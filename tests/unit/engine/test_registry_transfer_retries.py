"""Transfers survive a flaky registry: a blob cut mid-download resumes with Range, a failed PATCH resumes."""

from __future__ import annotations

import gzip
import io
import json
import os


from engine.config import EngineConfig
from engine.images.layers import chain_id
from engine.registry import Registry
from tests.unit.engine.registry_fake import digest_of, layer_tar, publish
from tests.unit.engine.test_image_harness import leftovers, make_store


def three_layer_image(store, name: str, tag: str) -> tuple[str, list[bytes]]:
    """Store an image of three layers (random content, so each compresses to a distinct blob); return id, tars."""
    tars = [layer_tar(os.urandom(40_000) + bytes([i])) for i in range(3)]
    parent = ""
    with store.hold() as held:
        for tar in tars:
            store.add_layer(io.BytesIO(tar), parent, held)
            parent = chain_id(parent, digest_of(tar))
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in tars]}}).encode()
        image_id = store.commit_image(config, held)
        store.tag(image_id, name, tag)
    return image_id, tars


def test_a_pull_resumes_a_blob_whose_connection_dropped_midway(fake, registry, store):
    tars = [layer_tar(os.urandom(200_000) + bytes([i])) for i in range(3)]
    publish(fake, "team/app", "1", [(t, "gzip") for t in tars])
    middle = json.loads(fake.manifests["team/app"]["1"][0])["layers"][1]
    fake.cut_once.add(middle["digest"])
    image = registry.pull(f"{fake.host}/team/app:1")
    assert image.diff_ids == [digest_of(t) for t in tars]
    assert fake.count("GET", middle["digest"]) == 2
    # The second request asked only for what was missing: the fake cut after half the blob.
    assert fake.ranges == [(middle["digest"], middle["size"] // 2)]
    assert leftovers(store) == []


def test_a_push_of_three_layers_survives_one_failed_patch(fake, registry, store):
    image_id, tars = three_layer_image(store, f"{fake.host}/team/app", "1")
    fake.fail_patch_once = 1
    messages = []
    digest = registry.push(f"{fake.host}/team/app:1", progress=messages.append)
    assert not [m for m in messages if "error" in m]
    manifest = json.loads(fake.manifests["team/app"]["1"][0])
    assert digest == digest_of(fake.manifests["team/app"]["1"][0])
    assert [gzip.decompress(fake.blobs[layer["digest"]]) for layer in manifest["layers"]] == tars
    assert manifest["config"]["digest"] == image_id
    # One failure: the client asked the session where it stood once, then sent the rest in one more PATCH.
    assert fake.count("GET", "/blobs/uploads/") == 1
    assert fake.count("PATCH", "/blobs/uploads/") == 3 + 1 + 1   # three layers, the config, the retry
    assert [m.get("status") for m in messages].count("Pushed") == 3

    other = make_store(store.root.parent, "other")
    pulled = Registry(EngineConfig(root=store.root.parent / "other"), other).pull(f"{fake.host}/team/app:1")
    assert pulled.id == image_id
