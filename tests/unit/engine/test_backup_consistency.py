"""A backup pauses or stops the containers using the volume, as asked or as their label says, and always resumes them."""

from __future__ import annotations

import pytest

from engine.errors import InvalidParameter, SystemFailure
from tests.unit.engine.backup_helpers import FakeContainer, FakeContainers, make_store


def store_with(tmp_path, *containers):
    fake = FakeContainers({"vol": list(containers)})
    store, volumes = make_store(tmp_path, fake)
    (volumes.create("vol").mountpoint / "f").write_bytes(b"data")
    return store, fake


def test_pause_pauses_running_users_and_unpauses_them(tmp_path):
    store, fake = store_with(tmp_path, FakeContainer("a" * 64), FakeContainer("b" * 64, status="exited"))
    b = store.create("vol", consistency="pause")
    assert fake.calls == [("pause", "a" * 64), ("unpause", "a" * 64)]
    assert b.source_containers == ["a" * 64, "b" * 64]
    assert b.consistency == "pause"


def test_stop_stops_and_starts_running_users(tmp_path):
    store, fake = store_with(tmp_path, FakeContainer("a" * 64))
    store.create("vol", consistency="stop")
    assert fake.calls == [("stop", "a" * 64), ("start", "a" * 64)]


def test_none_touches_no_container(tmp_path):
    store, fake = store_with(tmp_path, FakeContainer("a" * 64))
    store.create("vol", consistency="none")
    assert fake.calls == []


def test_the_container_label_overrides_the_call(tmp_path):
    store, fake = store_with(tmp_path, FakeContainer("a" * 64, labels={"dockweb.backup.consistency": "stop"}),
                             FakeContainer("c" * 64, labels={"dockweb.backup.consistency": "none"}),
                             FakeContainer("d" * 64))
    store.create("vol", consistency="pause")
    assert fake.calls == [("stop", "a" * 64), ("pause", "d" * 64), ("unpause", "d" * 64), ("start", "a" * 64)]


def test_an_already_paused_container_stays_paused(tmp_path):
    store, fake = store_with(tmp_path, FakeContainer("a" * 64, status="paused"))
    store.create("vol", consistency="pause")
    assert fake.calls == []


def test_containers_are_resumed_when_the_backup_fails(tmp_path, monkeypatch):
    store, fake = store_with(tmp_path, FakeContainer("a" * 64), FakeContainer("b" * 64,
                             labels={"dockweb.backup.consistency": "stop"}))

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("engine.volumes.backup.write_archive", broken)
    with pytest.raises(SystemFailure) as exc:
        store.create("vol", consistency="pause")
    assert exc.value.message.endswith("No space left on device")
    assert fake.calls == [("pause", "a" * 64), ("stop", "b" * 64), ("unpause", "a" * 64), ("start", "b" * 64)]
    assert store.list() == []


def test_an_invalid_label_is_refused_and_nothing_stays_paused(tmp_path):
    store, fake = store_with(tmp_path, FakeContainer("a" * 64),
                             FakeContainer("b" * 64, labels={"dockweb.backup.consistency": "freeze"}))
    with pytest.raises(InvalidParameter) as exc:
        store.create("vol", consistency="pause")
    assert exc.value.message == (f"container {'b' * 12} has an invalid dockweb.backup.consistency label 'freeze': "
                                 "use pause, stop or none")
    assert fake.calls == [("pause", "a" * 64), ("unpause", "a" * 64)]


def test_an_unknown_consistency_is_refused(tmp_path):
    store, fake = store_with(tmp_path)
    with pytest.raises(InvalidParameter) as exc:
        store.create("vol", consistency="snapshot")
    assert exc.value.message == "invalid consistency 'snapshot': use one of pause, stop, none"
