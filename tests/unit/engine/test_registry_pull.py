"""Pulling from a (fake, in-process) v2 registry: tags, digests, manifest lists, compressions, verification."""

from __future__ import annotations

import json
import os

import pytest

from engine.errors import NotFound
from engine.images.store import host_architecture
from engine.registry import VerificationFailed
from tests.unit.engine.registry_fake import MT_OCI_INDEX, digest_of, image_manifest, layer_tar, publish
from tests.unit.engine.test_image_harness import leftovers


def pull(registry, ref, **kw):
    messages = []
    image = registry.pull(ref, progress=messages.append, **kw)
    return image, messages


def layer_dirs(store):
    return sorted(os.listdir(store.root / "layers"))


def test_pull_by_tag_stores_the_image_with_its_tag_and_repo_digest(fake, store, registry):
    digest, config = publish(fake, "team/app", "1", [(layer_tar(b"one"), "gzip"), (layer_tar(b"two"), "gzip")])
    image, messages = pull(registry, f"{fake.host}/team/app:1")
    assert image.id == digest_of(config)
    assert image.repo_tags == [f"{fake.host}/team/app:1"]
    assert image.repo_digests == [f"{fake.host}/team/app@{digest}"]
    assert messages[0] == {"status": "Pulling from team/app", "id": "1"}
    statuses = [m["status"] for m in messages]
    assert statuses.count("Pulling fs layer") == 2 and statuses.count("Pull complete") == 2
    assert "Verifying Checksum" in statuses and "Download complete" in statuses and "Extracting" in statuses
    downloading = [m for m in messages if m["status"] == "Downloading"]
    assert downloading and set(downloading[-1]["progressDetail"]) == {"current", "total"}
    assert messages[-2] == {"status": f"Digest: {digest}"}
    assert messages[-1] == {"status": f"Status: Downloaded newer image for {fake.host}/team/app:1"}
    assert leftovers(store) == []


def test_pulling_again_says_already_exists_and_up_to_date(fake, registry):
    publish(fake, "team/app", "1", [(layer_tar(b"one"), "gzip")])
    pull(registry, f"{fake.host}/team/app:1")
    _, messages = pull(registry, f"{fake.host}/team/app:1")
    assert [m["status"] for m in messages if m.get("id") not in (None, "1")] == ["Already exists"]
    assert messages[-1] == {"status": f"Status: Image is up to date for {fake.host}/team/app:1"}
    assert fake.count("GET", r"/blobs/sha256") == 2 + 1  # config twice, the layer once


def test_pull_by_digest_records_the_digest_reference_only(fake, registry):
    digest, config = publish(fake, "team/app", "1", [(layer_tar(b"one"), "gzip")])
    image, messages = pull(registry, f"{fake.host}/team/app@{digest}")
    assert image.repo_tags == [] and image.repo_digests == [f"{fake.host}/team/app@{digest}"]
    assert messages[0] == {"status": "Pulling from team/app", "id": digest}
    assert messages[-1]["status"] == f"Status: Downloaded newer image for {fake.host}/team/app@{digest}"


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_zstd_and_uncompressed_layers_are_pulled(fake, registry, store, compression):
    raw = layer_tar(b"packed")
    publish(fake, "team/app", "z", [(raw, compression)])
    image, _ = pull(registry, f"{fake.host}/team/app:z")
    assert image.diff_ids == [digest_of(raw)]
    [layer_dir] = store.layer_dirs(image)
    assert (layer_dir / "etc" / "marker").read_bytes() == b"packed"


def _publish_list(fake, platforms):
    entries = []
    for arch in platforms:
        config, manifest, blobs = image_manifest([(layer_tar(arch.encode()), "gzip")], arch=arch, oci=True)
        for blob in (config, *blobs):
            fake.add_blob("team/multi", blob)
        d = fake.add_manifest("team/multi", digest_of(manifest), manifest, json.loads(manifest)["mediaType"])
        entries.append({"mediaType": json.loads(manifest)["mediaType"], "digest": d, "size": len(manifest),
                        "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries}).encode()
    return fake.add_manifest("team/multi", "latest", index, MT_OCI_INDEX)


def test_a_manifest_list_resolves_to_the_hosts_platform(fake, registry):
    index_digest = _publish_list(fake, ["arm64", "amd64"] if host_architecture() == "amd64" else ["amd64", "arm64"])
    image, messages = pull(registry, f"{fake.host}/team/multi")
    assert image.config["architecture"] == host_architecture()
    assert image.repo_digests == [f"{fake.host}/team/multi@{index_digest}"]
    assert {"status": f"Digest: {index_digest}"} in messages


def test_the_platform_parameter_picks_another_entry(fake, registry):
    _publish_list(fake, ["amd64", "arm64"])
    image, _ = pull(registry, f"{fake.host}/team/multi", platform="linux/arm64")
    assert image.config["architecture"] == "arm64"


def test_a_list_without_the_platform_is_dockers_no_matching_manifest(fake, registry, store):
    _publish_list(fake, ["s390x"])
    with pytest.raises(NotFound, match=r"^no matching manifest for linux/arm64 in the manifest list entries$"):
        pull(registry, f"{fake.host}/team/multi", platform="linux/arm64")
    assert store.list() == []


def test_unknown_tag_and_repository_are_dockers_not_found_texts(fake, registry):
    publish(fake, "team/app", "1", [(layer_tar(b"one"), "gzip")])
    with pytest.raises(NotFound) as e:
        pull(registry, f"{fake.host}/team/app:nosuch")
    assert e.value.message == f"manifest for {fake.host}/team/app:nosuch not found: manifest unknown: manifest unknown"
    with pytest.raises(NotFound) as e:
        pull(registry, f"{fake.host}/team/nosuch")
    assert e.value.message.startswith(f"repository {fake.host}/team/nosuch not found: name unknown")


def test_a_tampered_layer_is_refused_and_leaves_nothing(fake, registry, store):
    publish(fake, "team/app", "1", [(layer_tar(b"good"), "gzip"), (layer_tar(b"also good"), "gzip")])
    manifest = json.loads(fake.manifests["team/app"]["1"][0])
    bad = manifest["layers"][1]["digest"]
    fake.tampered[bad] = fake.blobs[bad][:-8] + b"\0" * 8
    with pytest.raises(VerificationFailed, match=f"filesystem layer verification failed for digest {bad}"):
        pull(registry, f"{fake.host}/team/app:1")
    assert store.list() == [] and layer_dirs(store) == [] and leftovers(store) == []
    assert os.listdir(store.root / "blobs" / "sha256") == []


def test_a_tampered_manifest_is_refused(fake, registry, store):
    digest, _ = publish(fake, "team/app", "1", [(layer_tar(b"good"), "gzip")])
    body = fake.manifests["team/app"]["1"][0]
    fake.tampered[digest] = body.replace(b'"schemaVersion": 2', b'"schemaVersion":  2')
    with pytest.raises(VerificationFailed, match=f"manifest verification failed for digest {digest}"):
        pull(registry, f"{fake.host}/team/app@{digest}")
    with pytest.raises(VerificationFailed):
        pull(registry, f"{fake.host}/team/app:1")
    assert store.list() == []


def test_an_interrupted_download_resumes_with_a_range_request(fake, registry, store):
    big = layer_tar(os.urandom(300_000))
    publish(fake, "team/app", "1", [(big, "gzip")])
    layer = json.loads(fake.manifests["team/app"]["1"][0])["layers"][0]["digest"]
    fake.cut_once.add(layer)
    image, _ = pull(registry, f"{fake.host}/team/app:1")
    assert image.diff_ids == [digest_of(big)]
    assert fake.count("GET", layer) == 2


def test_an_interrupted_download_starts_over_without_range_support(fake, registry):
    big = layer_tar(os.urandom(200_000))
    publish(fake, "team/app", "1", [(big, "gzip")])
    fake.no_range = True
    fake.cut_once.add(json.loads(fake.manifests["team/app"]["1"][0])["layers"][0]["digest"])
    image, _ = pull(registry, f"{fake.host}/team/app:1")
    assert image.diff_ids == [digest_of(big)]


def test_a_layer_whose_content_is_not_the_configs_diff_id_is_refused(fake, registry, store):
    config, manifest, blobs = image_manifest([(layer_tar(b"real"), "gzip")])
    doc = json.loads(config)
    doc["rootfs"]["diff_ids"] = [digest_of(b"something else")]
    config = json.dumps(doc).encode()
    m = json.loads(manifest)
    m["config"].update(digest=digest_of(config), size=len(config))
    manifest = json.dumps(m).encode()
    for blob in (config, *blobs):
        fake.add_blob("team/app", blob)
    fake.add_manifest("team/app", "1", manifest, m["mediaType"])
    with pytest.raises(Exception, match="invalid diffID"):
        pull(registry, f"{fake.host}/team/app:1")
    assert store.list() == [] and layer_dirs(store) == []


def test_an_unreachable_registry_names_the_cause(registry):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(Exception) as e:
        pull(registry, f"127.0.0.1:{port}/team/app:1")
    assert type(e.value).__name__ == "Unreachable"
    assert f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused' \
        == e.value.message
