"""An archive is visible only once complete and verified; an interrupted restore leaves the volume as it was."""

from __future__ import annotations

import os

import pytest

from engine import tarsafe
from engine.volumes.backup import Cancelled
from tests.unit.engine.backup_helpers import deep_snapshot, fill_tree, make_store


@pytest.fixture(autouse=True)
def progress_every_entry(monkeypatch):
    monkeypatch.setattr("engine.volumes.backup.PROGRESS_INTERVAL", 0)


def test_an_archive_in_progress_is_not_visible(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    for i in range(300):
        (v.mountpoint / f"f{i}").write_bytes(os.urandom(20000))
    seen = []

    def progress(current, total, files):
        # Mid-write: nothing listed, no final file, only the hidden temp file.
        seen.append((store.list(), sorted(p.name for p in store.dir.iterdir() if not p.name.startswith("tmp"))))

    b = store.create("vol", consistency="none", progress=progress)
    assert len(seen) > 100
    for listed, names in seen[:-1]:
        assert listed == []
        assert all(n.startswith(".tmp-") for n in names)
    assert [x.id for x in store.list()] == [b.id]
    assert sorted(p.name for p in store.dir.iterdir()) == sorted([f"{b.id}.json", b.filename])


def test_a_failed_backup_leaves_nothing_behind(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    for i in range(50):
        (v.mountpoint / f"f{i}").write_bytes(b"x" * 1000)
    calls = []

    def progress(current, total, files):
        calls.append(files)
        if files >= 10:
            raise Cancelled("cancelled: the client went away")

    with pytest.raises(Cancelled):
        store.create("vol", consistency="none", progress=progress)
    assert store.list() == []
    assert list(store.dir.iterdir()) == []


def test_an_interrupted_restore_leaves_the_volume_as_it_was(tmp_path, monkeypatch):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    fill_tree(v.mountpoint)
    b = store.create("vol", consistency="none")
    # Change the volume after the backup: the restore must either fully apply or not at all.
    (v.mountpoint / "docs" / "readme.txt").write_bytes(b"newer content")
    (v.mountpoint / "new file").write_bytes(b"made after the backup")
    before = deep_snapshot(v.mountpoint)

    real_regular = tarsafe._Extractor.regular
    count = {"n": 0}

    def failing_regular(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == 4:
            raise OSError(5, "Input/output error (simulated mid-stream)")
        return real_regular(self, *args, **kwargs)

    monkeypatch.setattr(tarsafe._Extractor, "regular", failing_regular)
    with pytest.raises(Exception) as exc:
        store.restore(b.id)
    assert "Input/output error (simulated mid-stream)" in str(exc.value)
    assert deep_snapshot(v.mountpoint) == before
    assert sorted(os.listdir(v.mountpoint.parent)) == ["_data", "volume.json"]


def test_a_failed_restore_into_a_new_volume_removes_that_volume(tmp_path, monkeypatch):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    fill_tree(v.mountpoint)
    b = store.create("vol", consistency="none")

    def boom(self, *args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(tarsafe._Extractor, "regular", boom)
    with pytest.raises(Exception):
        store.restore(b.id, "fresh")
    assert not volumes.exists("fresh")


def counting_progress(fail_at: int = 0):
    """A progress callback that counts its calls and raises Cancelled (a client gone) at call fail_at."""
    calls = []

    def progress(current, total, files):
        calls.append((current, total, files))
        if len(calls) == fail_at:
            raise Cancelled("cancelled: the client went away")

    return progress, calls


def test_a_caller_gone_by_the_last_report_gets_no_backup_published(tmp_path):
    """The last progress report comes after the fsync and the read-back, just before the rename: a client that
    left meanwhile cancels the backup there instead of having it published on its behalf."""
    store, volumes = make_store(tmp_path)
    fill_tree(volumes.create("vol").mountpoint)
    temp_sizes = []
    progress, calls = counting_progress()

    def watching(current, total, files):
        temp_sizes.append(sum(p.stat().st_size for p in store.dir.glob(".tmp-*")))
        progress(current, total, files)

    done = store.create("vol", consistency="none", progress=watching)
    assert calls[-1] == (done.bytes, done.bytes, done.files)
    assert temp_sizes[-1] == done.size          # the last report sees the whole archive, not yet renamed
    store.remove(done.id)

    progress, _ = counting_progress(fail_at=len(calls))
    with pytest.raises(Cancelled):
        store.create("vol", consistency="none", progress=progress)
    assert store.list() == []
    assert list(store.dir.iterdir()) == []


def test_a_caller_gone_by_the_end_of_extraction_gets_no_restore_swapped_in(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    fill_tree(v.mountpoint)
    b = store.create("vol", consistency="none")
    progress, calls = counting_progress()
    store.restore(b.id, "copy", progress=progress)
    (v.mountpoint / "new file").write_bytes(b"made after the backup")
    before = deep_snapshot(v.mountpoint)

    progress, _ = counting_progress(fail_at=len(calls))      # the last report, once every member is on disk
    with pytest.raises(Cancelled):
        store.restore(b.id, progress=progress)
    assert deep_snapshot(v.mountpoint) == before
    assert not list(v.mountpoint.parent.glob("._data.staging-*"))
