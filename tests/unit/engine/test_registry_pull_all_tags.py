"""docker pull -a: every tag the registry lists (Link-paginated tags/list), one status line for the repository."""

from __future__ import annotations

import pytest

from engine.errors import InvalidParameter, NotFound
from engine.registry.client import RegistryClient
from engine.registry.config import RegistryHosts
from tests.unit.engine.registry_fake import digest_of, layer_tar, publish
from tests.unit.engine.test_image_harness import leftovers


def pull_all(registry, name):
    messages = []
    stream = registry.pull_stream(name, all_tags=True)
    while True:
        try:
            messages.append(next(stream))
        except StopIteration as stop:
            return stop.value, messages


def test_tags_list_follows_link_headers_page_by_page(fake):
    for tag in ("a", "b", "c", "d", "e"):
        publish(fake, "team/app", tag, [(layer_tar(tag.encode()), "gzip")])
    fake.tags_page = 2
    client = RegistryClient(RegistryHosts(), fake.host)
    assert client.list_tags("team/app") == ["a", "b", "c", "d", "e"]
    assert fake.count("GET", r"/tags/list") == 3
    assert client.list_tags("team/app", page_size=4) == ["a", "b", "c", "d", "e"]


def test_pull_all_tags_pulls_every_tag_and_says_so_once(fake, registry, store):
    shared = (layer_tar(b"shared base"), "gzip")
    digests = {}
    for tag in ("1", "2", "3"):
        digests[tag], config = publish(fake, "team/app", tag, [shared, (layer_tar(tag.encode()), "gzip")])
    fake.tags_page = 2
    images, messages = pull_all(registry, f"{fake.host}/team/app")
    assert [im.repo_tags for im in images] == [[f"{fake.host}/team/app:{t}"] for t in ("1", "2", "3")]
    pulling = [m for m in messages if m["status"].startswith("Pulling from")]
    assert pulling == [{"status": "Pulling from team/app", "id": t} for t in ("1", "2", "3")]
    assert [m["status"] for m in messages if m["status"].startswith("Digest:")] == \
        [f"Digest: {digests[t]}" for t in ("1", "2", "3")]
    # The shared bottom layer is fetched for the first tag only.
    assert [m["status"] for m in messages].count("Already exists") == 2
    statuses = [m for m in messages if m["status"].startswith("Status:")]
    assert statuses == [{"status": f"Status: Downloaded newer image for {fake.host}/team/app"}]
    assert messages[-1] == statuses[0]
    assert leftovers(store) == []

    _, again = pull_all(registry, f"{fake.host}/team/app")
    assert again[-1] == {"status": f"Status: Image is up to date for {fake.host}/team/app"}


def test_a_moved_tag_makes_the_repository_status_newer(fake, registry, store):
    publish(fake, "team/app", "1", [(layer_tar(b"one"), "gzip")])
    publish(fake, "team/app", "2", [(layer_tar(b"two"), "gzip")])
    pull_all(registry, f"{fake.host}/team/app")
    _, config = publish(fake, "team/app", "2", [(layer_tar(b"two, rebuilt"), "gzip")])
    _, messages = pull_all(registry, f"{fake.host}/team/app")
    assert messages[-1] == {"status": f"Status: Downloaded newer image for {fake.host}/team/app"}
    assert store.resolve(f"{fake.host}/team/app:2") == digest_of(config)


def test_pull_all_tags_of_an_unknown_repository_is_not_found_before_any_message(fake, registry):
    stream = registry.pull_stream(f"{fake.host}/team/nosuch", all_tags=True)
    with pytest.raises(NotFound, match=f"^repository {fake.host}/team/nosuch not found: name unknown"):
        next(stream)


def test_pull_all_tags_refuses_a_tagged_reference(fake, registry):
    with pytest.raises(InvalidParameter, match="without tag or digest"):
        next(registry.pull_stream(f"{fake.host}/team/app:1", all_tags=True))
