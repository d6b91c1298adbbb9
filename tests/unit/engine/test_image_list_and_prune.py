"""Image lookup, list filters, history and prune."""

import io
import time

import pytest

from engine.errors import InvalidParameter, NoSuchImage
from tests.unit.engine.test_image_harness import make_store, simple_rootfs


def imported(store, repo="", message="m", changes=()):
    return store.import_image(io.BytesIO(simple_rootfs()), repo=repo, message=message, changes=list(changes))


def test_get_accepts_tags_full_ids_short_ids_and_sha256_prefixes(tmp_path):
    store = make_store(tmp_path)
    image = imported(store, repo="busybox")
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", image.id, image.id[7:],
                image.id[7:19], image.id[:10], image.id[7:8]):
        assert store.get(ref).id == image.id, ref
    with pytest.raises(NoSuchImage, match="No such image: busybox:nosuch"):
        store.get("busybox:nosuch")
    with pytest.raises(InvalidParameter):
        store.get("Busybox")


def test_dangling_filter_selects_untagged_images(tmp_path):
    store = make_store(tmp_path)
    tagged = imported(store, repo="t", message="a")
    dangling = imported(store, message="b")
    assert [i.id for i in store.filter_images({"dangling": ["true"]})] == [dangling.id]
    assert [i.id for i in store.filter_images({"dangling": ["false"]})] == [tagged.id]


def test_label_reference_before_and_since_filters(tmp_path):
    store = make_store(tmp_path)
    old = imported(store, repo="app/web", message="a", changes=["LABEL tier=web"])
    time.sleep(0.01)
    new = imported(store, repo="db", message="b", changes=["LABEL tier=db"])
    assert [i.id for i in store.filter_images({"label": ["tier=db"]})] == [new.id]
    assert [i.id for i in store.filter_images({"label": ["tier"]})] == [new.id, old.id]
    assert [i.id for i in store.filter_images({"reference": ["app/*"]})] == [old.id]
    assert [i.id for i in store.filter_images({"before": ["db"]})] == [old.id]
    assert [i.id for i in store.filter_images({"since": ["app/web"]})] == [new.id]
    with pytest.raises(InvalidParameter):
        store.filter_images({"nonsense": ["1"]})


def test_history_lists_the_layer_with_its_size_and_tags(tmp_path):
    store = make_store(tmp_path)
    image = imported(store, repo="h", message="note")
    [h] = store.history("h")
    assert h["Id"] == image.id and h["Tags"] == ["h:latest"] and h["Comment"] == "note"
    assert h["Size"] == image.size > 0


def test_prune_removes_dangling_images_only_by_default(tmp_path):
    store = make_store(tmp_path)
    keep = imported(store, repo="keep", message="a")
    drop = imported(store, message="b")
    report = store.prune({})
    assert {"Deleted": drop.id} in report["ImagesDeleted"]
    assert store.get("keep").id == keep.id


def test_prune_with_dangling_false_removes_every_unused_image(tmp_path):
    store = make_store(tmp_path)
    used = imported(store, repo="used", message="a")
    unused = imported(store, repo="unused", message="b")
    users = lambda iid: [("c" * 64, False)] if iid == used.id else []
    report = store.prune({"dangling": ["false"]}, in_use=users)
    assert {"Untagged": "unused:latest"} in report["ImagesDeleted"]
    assert {"Deleted": unused.id} in report["ImagesDeleted"]
    assert store.get("used").id == used.id
    # The layer is shared with "used": no space is freed.
    assert report["SpaceReclaimed"] == 0


def test_prune_with_nothing_to_do_reports_null(tmp_path):
    store = make_store(tmp_path)
    imported(store, repo="keep")
    assert store.prune({}) == {"ImagesDeleted": None, "SpaceReclaimed": 0}


def test_image_times_are_read_in_their_own_zone_whatever_the_local_one(monkeypatch):
    from engine.images.store import unix_time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert unix_time("1970-01-01T00:00:10.500000000Z") == 10.5
        assert unix_time("1970-01-01T01:00:10+01:00") == 10
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_until_filter_keeps_only_older_images(tmp_path):
    store = make_store(tmp_path)
    image = imported(store, repo="u")
    assert store.filter_images({"until": ["10m"]}) == []
    assert [i.id for i in store.filter_images({"until": ["4102444800"]})] == [image.id]   # 2100-01-01
