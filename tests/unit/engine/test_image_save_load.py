"""docker save / docker load: OCI layout plus manifest.json, legacy v1 archives, compressed layers, bad archives."""

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from engine.errors import InvalidParameter, NoSuchImage
from engine.images import archive
from tests.unit.engine.test_image_harness import build_tar, entry, leftovers, make_store, simple_rootfs


def saved(store, names) -> bytes:
    return b"".join(archive.save(store, names))


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf if m.isfile()}


def assert_empty(store):
    assert os.listdir(store.root / "layers") == []
    assert os.listdir(store.root / "blobs" / "sha256") == []
    assert leftovers(store) == []
    assert store.is_empty()


def test_save_then_load_into_another_store_gives_the_same_image_id(tmp_path):
    src = make_store(tmp_path, "a")
    image = src.import_image(io.BytesIO(simple_rootfs()), repo="busybox", changes=['CMD ["sh"]'])
    dst = make_store(tmp_path, "b")
    lines = archive.load(dst, io.BytesIO(saved(src, ["busybox"])))
    assert lines == ["Loaded image: busybox:latest"]
    loaded = dst.get("busybox")
    assert loaded.id == image.id
    assert loaded.config == image.config
    [layer_dir] = dst.layer_dirs(loaded)
    assert (layer_dir / "etc" / "marker").read_bytes() == b"hello\n"
    assert leftovers(dst) == []


def test_saved_archive_has_the_oci_layout_and_dockerds_manifest(tmp_path):
    store = make_store(tmp_path)
    image = store.import_image(io.BytesIO(simple_rootfs()), repo="busybox")
    files = members(saved(store, ["busybox"]))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    [manifest] = json.loads(files["manifest.json"])
    diff_hex = image.diff_ids[0].split(":")[1]
    assert manifest == {"Config": f"blobs/sha256/{image.id[7:]}", "RepoTags": ["busybox:latest"],
                        "Layers": [f"blobs/sha256/{diff_hex}"]}
    assert json.loads(files["repositories"]) == {"busybox": {"latest": diff_hex}}
    [desc] = json.loads(files["index.json"])["manifests"]
    assert desc["annotations"] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                   "org.opencontainers.image.ref.name": "latest"}
    oci_manifest = files[f"blobs/sha256/{desc['digest'][7:]}"]
    assert hashlib.sha256(oci_manifest).hexdigest() == desc["digest"][7:]
    assert json.loads(oci_manifest)["config"]["digest"] == image.id
    assert hashlib.sha256(files[f"blobs/sha256/{diff_hex}"]).hexdigest() == diff_hex


def test_save_is_deterministic(tmp_path):
    store = make_store(tmp_path)
    store.import_image(io.BytesIO(simple_rootfs()), repo="x")
    assert saved(store, ["x"]) == saved(store, ["x"])


def test_saving_a_repository_name_exports_all_its_tags(tmp_path):
    store = make_store(tmp_path)
    store.import_image(io.BytesIO(simple_rootfs()), repo="r", tag="1")
    store.tag("r:1", "r", "2")
    [manifest] = json.loads(members(saved(store, ["r"]))["manifest.json"])
    assert sorted(manifest["RepoTags"]) == ["r:1", "r:2"]


def test_saving_by_id_exports_no_tag_and_loads_as_an_id(tmp_path):
    src = make_store(tmp_path, "a")
    image = src.import_image(io.BytesIO(simple_rootfs()), repo="r")
    data = saved(src, [image.id[7:19]])
    assert json.loads(members(data)["manifest.json"])[0]["RepoTags"] is None
    assert archive.load(make_store(tmp_path, "b"), io.BytesIO(data)) == [f"Loaded image ID: {image.id}"]


def test_saving_an_unknown_image_fails_before_any_byte(tmp_path):
    with pytest.raises(NoSuchImage):
        archive.save(make_store(tmp_path), ["nosuch"])


def test_loading_a_gzipped_archive_works(tmp_path):
    src = make_store(tmp_path, "a")
    image = src.import_image(io.BytesIO(simple_rootfs()), repo="z")
    dst = make_store(tmp_path, "b")
    archive.load(dst, io.BytesIO(gzip.compress(saved(src, ["z"]))))
    assert dst.get("z").id == image.id


def test_loading_moves_a_tag_from_another_image(tmp_path):
    src = make_store(tmp_path, "a")
    new = src.import_image(io.BytesIO(simple_rootfs(b"new")), repo="t")
    dst = make_store(tmp_path, "b")
    old = dst.import_image(io.BytesIO(simple_rootfs(b"old")), repo="t")
    lines = archive.load(dst, io.BytesIO(saved(src, ["t"])))
    assert lines == [f"The image t:latest already exists, renaming the old one with ID {old.id} to empty string",
                     "Loaded image: t:latest"]
    assert dst.get("t").id == new.id
    assert dst.get(old.id).repo_tags == []


def _oci_archive(layer_blob: bytes, diff_id: str, name: str | None) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    cdg = hashlib.sha256(config).hexdigest()
    ldg = hashlib.sha256(layer_blob).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"digest": f"sha256:{cdg}", "size": len(config)},
                           "layers": [{"digest": f"sha256:{ldg}", "size": len(layer_blob),
                                       "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd"}]}).encode()
    mdg = hashlib.sha256(manifest).hexdigest()
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f"sha256:{mdg}",
            "size": len(manifest)}
    if name:
        desc["annotations"] = {"io.containerd.image.name": name}
    index = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
    return build_tar(entry("blobs/"), entry("blobs/sha256/"), entry(f"blobs/sha256/{cdg}", config),
                     entry(f"blobs/sha256/{ldg}", layer_blob), entry(f"blobs/sha256/{mdg}", manifest),
                     entry("index.json", index), entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))


def test_loading_an_oci_only_archive_with_zstd_layers(tmp_path):
    raw = simple_rootfs()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    layer = build_tar(entry("bin/"), entry("etc/"), entry("etc/marker", b"hello\n"),
                      entry("bin/sh", b"#!fake shell\n", mode=0o755), compress="zstd")
    store = make_store(tmp_path)
    lines = archive.load(store, io.BytesIO(_oci_archive(layer, diff_id, "docker.io/library/oci:1")))
    assert lines == ["Loaded image: oci:1"]
    image = store.get("oci:1")
    assert image.diff_ids == [diff_id]
    assert store.layer_blob(diff_id).read_bytes() == raw  # stored uncompressed: save reproduces the diff id


def test_loading_a_legacy_v1_archive(tmp_path):
    layer = simple_rootfs()
    v1 = {"id": "a" * 64, "created": "2024-01-01T00:00:00Z", "os": "linux", "architecture": "amd64",
          "config": {"Cmd": ["sh"]}, "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD file"]}}
    data = build_tar(entry(f"{'a' * 64}/"), entry(f"{'a' * 64}/json", json.dumps(v1).encode()),
                     entry(f"{'a' * 64}/layer.tar", layer), entry(f"{'a' * 64}/VERSION", b"1.0"),
                     entry("repositories", json.dumps({"old": {"v1": "a" * 64}}).encode()))
    store = make_store(tmp_path)
    assert archive.load(store, io.BytesIO(data)) == ["Loaded image: old:v1"]
    image = store.get("old:v1")
    assert image.config["config"] == {"Cmd": ["sh"]}
    assert image.diff_ids == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert image.config["history"][0]["created_by"] == "/bin/sh -c #(nop) ADD file"
    assert "id" not in image.config


def test_a_layer_that_does_not_match_its_diff_id_is_refused_and_nothing_is_kept(tmp_path):
    src = make_store(tmp_path, "a")
    src.import_image(io.BytesIO(simple_rootfs()), repo="x")
    files = members(saved(src, ["x"]))
    [manifest] = json.loads(files["manifest.json"])
    files[manifest["Layers"][0]] = simple_rootfs(b"tampered")
    data = build_tar(*[entry(name, content) for name, content in files.items()])
    dst = make_store(tmp_path, "b")
    with pytest.raises(InvalidParameter, match="invalid diffID"):
        archive.load(dst, io.BytesIO(data))
    assert_empty(dst)


def test_an_archive_without_a_manifest_is_a_clear_error(tmp_path):
    store = make_store(tmp_path)
    with pytest.raises(InvalidParameter, match="no manifest.json, index.json or repositories"):
        archive.load(store, io.BytesIO(build_tar(entry("hello.txt", b"hi"))))
    assert_empty(store)


def test_a_manifest_pointing_outside_the_archive_is_refused(tmp_path):
    store = make_store(tmp_path)
    manifest = json.dumps([{"Config": "../../../../etc/passwd", "RepoTags": ["x:1"], "Layers": []}]).encode()
    with pytest.raises(InvalidParameter, match="outside of the archive|missing"):
        archive.load(store, io.BytesIO(build_tar(entry("manifest.json", manifest))))
    assert_empty(store)


def test_a_truncated_archive_leaves_nothing_behind(tmp_path):
    src = make_store(tmp_path, "a")
    src.import_image(io.BytesIO(simple_rootfs(b"x" * 100_000)), repo="x")
    data = saved(src, ["x"])
    dst = make_store(tmp_path, "b")
    with pytest.raises(InvalidParameter):
        archive.load(dst, io.BytesIO(data[:len(data) // 2]))
    assert_empty(dst)


def test_layers_already_present_are_not_unpacked_again(tmp_path):
    src = make_store(tmp_path, "a")
    src.import_image(io.BytesIO(simple_rootfs()), repo="x")
    data = saved(src, ["x"])
    dst = make_store(tmp_path, "b")
    archive.load(dst, io.BytesIO(data))
    [layer_dir] = dst.layer_dirs(dst.get("x"))
    inode = os.stat(layer_dir).st_ino
    archive.load(dst, io.BytesIO(data))
    assert os.stat(layer_dir).st_ino == inode
