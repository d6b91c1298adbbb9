"""Backup and restore stream: Python's peak memory stays a few MiB whatever the volume holds."""

from __future__ import annotations

import os
import tracemalloc

from tests.unit.engine.backup_helpers import make_store


def test_backup_and_restore_of_a_large_file_and_many_small_ones_keep_memory_flat(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    block = os.urandom(1 << 20)
    with open(v.mountpoint / "large.bin", "wb") as f:
        for _ in range(64):
            f.write(block)
    for i in range(2000):
        (v.mountpoint / f"small{i}").write_bytes(block[i:i + 100])

    tracemalloc.start()
    try:
        b = store.create("vol", consistency="none")
        _, backup_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.restore(b.id, "copy")
        _, restore_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert b.bytes == (64 << 20) + 2000 * 100
    # A handful of 1 MiB buffers in flight, never the 64 MiB file or a list of every entry.
    assert backup_peak < 12 << 20, backup_peak
    assert restore_peak < 12 << 20, restore_peak


def test_stale_restore_staging_directories_are_removed_when_the_store_opens(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    stale = v.mountpoint.parent / "._data.staging-0123456789ab"
    (stale / "half").mkdir(parents=True)
    (store.dir / ".tmp-abc.tar.zst").write_bytes(b"partial")
    from engine.volumes.backup import BackupStore
    BackupStore(store.config, store.events, volumes)
    assert not stale.exists()
    assert not (store.dir / ".tmp-abc.tar.zst").exists()


def test_old_data_swapped_out_by_a_restore_is_removed_when_the_store_opens(tmp_path):
    """A daemon killed while it deleted the data a restore replaced leaves ._data.old-*: the next start removes it."""
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    old = v.mountpoint.parent / "._data.old-0123456789ab"
    (old / "deep").mkdir(parents=True)
    (old / "deep" / "f").write_text("old")
    from engine.volumes.backup import BackupStore
    BackupStore(store.config, store.events, volumes)
    assert not old.exists() and v.mountpoint.is_dir()
