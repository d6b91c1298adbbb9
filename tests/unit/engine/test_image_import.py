"""docker import: a rootfs tar becomes a one-layer image; layers are shared; failures leave nothing behind."""

import io
import json
import os

import pytest

from engine.errors import InvalidParameter, NoSuchImage
from tests.unit.engine.test_image_harness import build_tar, entry, leftovers, make_store, simple_rootfs


def test_import_creates_a_tagged_one_layer_image(tmp_path):
    store = make_store(tmp_path)
    image = store.import_image(io.BytesIO(simple_rootfs()), repo="myimg", tag="v1", message="hello")
    assert image.id.startswith("sha256:") and len(image.id) == 71
    assert image.repo_tags == ["myimg:v1"]
    assert image.config["comment"] == "hello"
    assert image.config["history"][0]["comment"] == "hello"
    assert image.config["os"] == "linux"
    assert len(image.diff_ids) == 1
    assert store.get("myimg:v1").id == image.id
    [layer_dir] = store.layer_dirs(image)
    assert (layer_dir / "etc" / "marker").read_bytes() == b"hello\n"


def test_import_without_a_message_says_where_it_came_from(tmp_path):
    image = make_store(tmp_path).import_image(io.BytesIO(simple_rootfs()))
    assert image.config["comment"] == "Imported from -"
    assert image.repo_tags == []


def test_image_id_is_the_digest_of_the_stored_config_blob(tmp_path):
    import hashlib

    store = make_store(tmp_path)
    image = store.import_image(io.BytesIO(simple_rootfs()), repo="x")
    blob = store.config_blob(image.id).read_bytes()
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == image.id
    assert json.loads(blob) == image.config


def test_the_same_layer_is_unpacked_once_for_two_images(tmp_path):
    store = make_store(tmp_path)
    a = store.import_image(io.BytesIO(simple_rootfs()), repo="a", message="one")
    b = store.import_image(io.BytesIO(simple_rootfs()), repo="b", message="two")
    assert a.id != b.id
    assert store.layer_dirs(a) == store.layer_dirs(b)
    assert len(os.listdir(store.root / "layers")) == 1
    assert leftovers(store) == []


def test_a_compressed_import_stores_the_uncompressed_layer_blob(tmp_path):
    store = make_store(tmp_path)
    entries = [entry("etc/"), entry("etc/marker", b"hello\n")]
    image = store.import_image(io.BytesIO(build_tar(*entries, compress="gzip")), repo="gz")
    assert store.layer_blob(image.diff_ids[0]).read_bytes() == build_tar(*entries)


def test_a_broken_tar_fails_and_leaves_no_layer_blob_or_temp_dir(tmp_path):
    store = make_store(tmp_path)
    raw = build_tar(entry("f", b"x" * 20000))
    with pytest.raises(InvalidParameter):
        store.import_image(io.BytesIO(raw[:3000]), repo="broken")
    assert os.listdir(store.root / "layers") == []
    assert os.listdir(store.root / "blobs" / "sha256") == []
    assert leftovers(store) == []
    with pytest.raises(NoSuchImage):
        store.get("broken")


def test_an_invalid_repo_is_refused_before_reading_the_body(tmp_path):
    store = make_store(tmp_path)

    class Exploding(io.RawIOBase):
        def read(self, n=-1):
            raise AssertionError("body read")

    with pytest.raises(InvalidParameter, match="must be lowercase"):
        store.import_image(Exploding(), repo="Bad")


def test_changes_set_the_container_config(tmp_path):
    image = make_store(tmp_path).import_image(
        io.BytesIO(simple_rootfs()), repo="c",
        changes=['CMD ["sh", "-c", "echo hi"]', "ENV A=1 B=\"two words\"", "EXPOSE 80 53/udp",
                 "WORKDIR /srv", "USER nobody", "LABEL team=core", "VOLUME /data", "STOPSIGNAL SIGINT"])
    cfg = image.config["config"]
    assert cfg["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Env"] == ["A=1", "B=two words"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert cfg["WorkingDir"] == "/srv"
    assert cfg["User"] == "nobody"
    assert cfg["Labels"] == {"team": "core"}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["StopSignal"] == "SIGINT"


def test_import_reopens_with_the_same_images_and_tags(tmp_path):
    store = make_store(tmp_path)
    image = store.import_image(io.BytesIO(simple_rootfs()), repo="keep", tag="me")
    again = make_store(tmp_path)
    assert again.get("keep:me").id == image.id
    assert again.get("keep:me").repo_tags == ["keep:me"]
    assert again.layer_dirs(again.get(image.id)) == store.layer_dirs(image)


def test_reopening_drops_leftovers_of_a_crash(tmp_path):
    store = make_store(tmp_path)
    (store.root / "tmp" / "layer-half").mkdir()
    (store.root / "layers" / ("f" * 64)).mkdir()  # no layer.json: never committed
    again = make_store(tmp_path)
    assert leftovers(again) == []
    assert os.listdir(again.root / "layers") == []


def test_import_publishes_import_and_tag_events(tmp_path):
    store = make_store(tmp_path)
    image = store.import_image(io.BytesIO(simple_rootfs()), repo="ev")
    events = [(e.type, e.action, e.actor_id, e.attributes.get("name")) for e in store.events._events]
    assert ("image", "import", image.id, image.id) in events
    assert ("image", "tag", image.id, "ev:latest") in events
