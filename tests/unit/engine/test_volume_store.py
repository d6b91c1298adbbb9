"""The local volume store without root: records, names, options, filters, in-use conflicts, prune rules, df."""

import json

import pytest

from engine.config import EngineConfig
from engine.errors import Conflict, InvalidParameter, NotFound
from engine.events import EventLog
from engine.volumes.store import ANONYMOUS_LABEL, VolumeStore


@pytest.fixture
def store(tmp_path):
    cfg = EngineConfig(root=tmp_path / "root")
    cfg.ensure_dirs()
    return VolumeStore(cfg, EventLog())


def test_create_makes_the_data_directory_and_a_record_that_survives_a_reload(store, tmp_path):
    v = store.create("data", labels={"a": "b"})
    assert v.mountpoint == store.dir / "data" / "_data"
    assert v.mountpoint.is_dir()
    assert json.loads((store.dir / "data" / "volume.json").read_text())["labels"] == {"a": "b"}
    again = VolumeStore(store.config, EventLog())
    assert again.get("data").to_api() == v.to_api()


def test_create_of_an_existing_name_returns_the_existing_volume(store):
    first = store.create("same", labels={"x": "1"})
    assert store.create("same", labels={"y": "2"}) is first


def test_anonymous_volume_has_a_hex_name_and_docker_anonymous_label(store):
    v = store.create(None)
    assert len(v.name) == 64 and v.anonymous
    assert v.labels == {ANONYMOUS_LABEL: ""}


def test_names_and_driver_options_are_validated_as_the_local_driver_does(store):
    with pytest.raises(InvalidParameter, match="too short"):
        store.create("a")
    with pytest.raises(InvalidParameter, match="includes invalid characters"):
        store.create("../escape")
    with pytest.raises(InvalidParameter, match='invalid option: "bogus"'):
        store.create("opts", driver_opts={"bogus": "1"})
    with pytest.raises(InvalidParameter, match='missing required option: "device"'):
        store.create("opts", driver_opts={"type": "tmpfs"})
    with pytest.raises(NotFound, match='plugin "nfsplug" not found'):
        store.create("opts", driver="nfsplug")


def test_get_of_a_missing_volume_uses_dockers_message(store):
    with pytest.raises(NotFound, match="^get nope: no such volume$"):
        store.get("nope")


def test_remove_in_use_is_a_conflict_listing_the_containers(store):
    store.create("busy")
    with pytest.raises(Conflict, match=r"^remove busy: volume is in use - \[c1, c2\]$"):
        store.remove("busy", in_use=lambda n: ["c1", "c2"])
    store.remove("busy", in_use=lambda n: [])
    assert not (store.dir / "busy").exists()
    store.remove("busy", force=True)        # force: a missing volume is no error
    with pytest.raises(NotFound):
        store.remove("busy")


def test_list_filters(store):
    store.create("alpha", labels={"env": "prod"})
    store.create("beta", labels={"env": "dev"})
    used = {"alpha": ["c1"]}
    names = lambda f: [v.name for v in store.list(f, in_use=lambda n: used.get(n, []))]   # noqa: E731
    assert names({"dangling": ["true"]}) == ["beta"]
    assert names({"dangling": ["false"]}) == ["alpha"]
    assert names({"name": ["alp"]}) == ["alpha"]
    assert names({"label": ["env=dev"]}) == ["beta"]
    assert names({"label": ["env"]}) == ["alpha", "beta"]
    assert names({"label!": ["env=dev"]}) == ["alpha"]
    assert names({"driver": ["local"]}) == ["alpha", "beta"]
    with pytest.raises(InvalidParameter, match="invalid filter 'size'"):
        names({"size": ["1"]})
    with pytest.raises(InvalidParameter, match="invalid filter 'dangling=maybe'"):
        names({"dangling": ["maybe"]})


def test_prune_takes_only_unused_anonymous_volumes_from_api_1_42_unless_all(store):
    anon = store.create(None).name
    store.create("named")
    store.create("used")
    (store.get("named").mountpoint / "f").write_bytes(b"x" * 10)
    in_use = lambda n: ["c"] if n == "used" else []   # noqa: E731
    assert store.prune({}, in_use, "1.50") == {"VolumesDeleted": [anon], "SpaceReclaimed": 0}
    assert store.prune({"all": ["true"]}, in_use, "1.50") == {"VolumesDeleted": ["named"], "SpaceReclaimed": 10}
    assert [v.name for v in store.all()] == ["used"]


def test_prune_before_api_1_42_takes_named_volumes_too(store):
    store.create("old-named")
    assert store.prune({}, lambda n: [], "1.41")["VolumesDeleted"] == ["old-named"]


def test_df_reports_size_and_refcount(store):
    v = store.create("sized")
    (v.mountpoint / "f").write_bytes(b"y" * 123)
    store.users = lambda n: ["c1", "c2"]
    (doc,) = store.df()
    assert doc["UsageData"] == {"Size": 123, "RefCount": 2}
    assert doc["Name"] == "sized" and doc["Scope"] == "local"


def test_events_for_create_destroy_and_prune(store):
    store.create("ev")
    store.remove("ev")
    store.prune({}, lambda n: [], "1.50")
    actions = [(e.type, e.action, e.actor_id) for e in store.events._events]
    assert actions == [("volume", "create", "ev"), ("volume", "destroy", "ev"), ("volume", "prune", "")]
