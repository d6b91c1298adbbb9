"""docker rmi: untag vs delete, dockerd's conflict rules, and layer cleanup."""

import io
import os

import pytest

from engine.errors import Conflict, NoSuchImage
from tests.unit.engine.test_image_harness import make_store, simple_rootfs


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path)


def imported(store, repo="img", message="m", marker=b"hello\n"):
    return store.import_image(io.BytesIO(simple_rootfs(marker)), repo=repo, message=message)


def test_removing_the_only_tag_deletes_the_image_and_its_layers(store):
    image = imported(store)
    records = store.remove("img")
    assert records[0] == {"Untagged": "img:latest"}
    assert records[1] == {"Deleted": image.id}
    assert {"Deleted": image.diff_ids[0]} in records  # a base layer's chain id is its diff id
    assert os.listdir(store.root / "layers") == []
    assert os.listdir(store.root / "blobs" / "sha256") == []
    with pytest.raises(NoSuchImage):
        store.get(image.id)


def test_removing_one_of_two_tags_only_untags(store):
    image = imported(store)
    store.tag("img", "other", "v2")
    assert store.remove("other:v2") == [{"Untagged": "other:v2"}]
    assert store.get("img").id == image.id


def test_removing_by_id_with_several_repositories_needs_force(store):
    image = imported(store)
    store.tag("img", "other")
    with pytest.raises(Conflict) as e:
        store.remove(image.id[7:19])
    assert e.value.message == (f"conflict: unable to delete {image.id[7:19]} (must be forced) - "
                               "image is referenced in multiple repositories")
    records = store.remove(image.id[7:19], force=True)
    assert {"Untagged": "img:latest"} in records and {"Untagged": "other:latest"} in records
    assert {"Deleted": image.id} in records


def test_an_image_used_by_a_stopped_container_must_be_forced(store):
    image = imported(store)
    users = lambda iid: [("c" * 64, False)] if iid == image.id else []
    with pytest.raises(Conflict) as e:
        store.remove(image.id, in_use=users)
    assert e.value.message == (f"conflict: unable to delete {image.id[7:19]} (must be forced) - "
                               f"image is being used by stopped container {'c' * 12}")
    assert {"Deleted": image.id} in store.remove(image.id, force=True, in_use=users)


def test_an_image_used_by_a_running_container_cannot_be_forced(store):
    image = imported(store)
    users = lambda iid: [("d" * 64, True)]
    with pytest.raises(Conflict) as e:
        store.remove(image.id, force=True, in_use=users)
    assert e.value.message == (f"conflict: unable to delete {image.id[7:19]} (cannot be forced) - "
                               f"image is being used by running container {'d' * 12}")


def test_removing_the_last_tag_of_an_image_in_use_is_refused_without_force(store):
    image = imported(store)
    users = lambda iid: [("e" * 64, False)]
    with pytest.raises(Conflict, match='unable to remove repository reference "img" \\(must force\\) - '
                                       f"container {'e' * 12} is using its referenced image {image.id[7:19]}"):
        store.remove("img", in_use=users)


def test_force_removing_the_tag_of_a_running_image_only_untags(store):
    image = imported(store)
    users = lambda iid: [("f" * 64, True)]
    assert store.remove("img", force=True, in_use=users) == [{"Untagged": "img:latest"}]
    assert store.get(image.id).repo_tags == []


def test_a_layer_shared_with_another_image_survives(store):
    a = imported(store, repo="a", message="one")
    b = imported(store, repo="b", message="two")
    records = store.remove("a")
    assert records == [{"Untagged": "a:latest"}, {"Deleted": a.id}]
    [layer_dir] = store.layer_dirs(b)
    assert (layer_dir / "etc" / "marker").exists()


def test_removing_an_unknown_image_is_not_found_with_dockers_text(store):
    with pytest.raises(NoSuchImage, match="No such image: nosuch:latest"):
        store.remove("nosuch")


def test_remove_publishes_untag_and_delete_events(store):
    image = imported(store)
    store.remove("img")
    actions = [(e.action, e.actor_id) for e in store.events._events if e.type == "image"]
    assert ("untag", image.id) in actions and ("delete", image.id) in actions
