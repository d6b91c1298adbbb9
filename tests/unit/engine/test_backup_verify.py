"""Verify re-reads an archive and catches any change: a flipped byte, a member that no longer matches its manifest."""

from __future__ import annotations

import json

import pytest
import xxhash

from engine.volumes.backup import verify_archive
from tests.unit.engine.backup_helpers import fill_tree, make_store


def flip_byte(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_verify_of_an_intact_archive_succeeds(tmp_path, compression):
    store, volumes = make_store(tmp_path)
    fill_tree(volumes.create("vol").mountpoint)
    b = store.create("vol", compression=compression, consistency="none")
    checked = store.verify(b.id)
    assert checked.verified["Ok"] is True and checked.verified["Level"] == "full"
    assert checked.verified["Message"] == f"verified {b.files} entries, {b.bytes} bytes"
    assert store.get(b.id).verified["Ok"] is True


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_verify_catches_a_flipped_byte(tmp_path, compression):
    store, volumes = make_store(tmp_path)
    fill_tree(volumes.create("vol").mountpoint)
    b = store.create("vol", compression=compression, consistency="none")
    path = store.archive_path(b)
    flip_byte(path, path.stat().st_size // 2)
    checked = store.verify(b.id)
    assert checked.verified["Ok"] is False
    assert store.get(b.id).verified["Ok"] is False      # the result is recorded


def test_the_manifest_names_the_member_whose_content_changed(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    (v.mountpoint / "a.txt").write_bytes(b"A" * 5000)
    (v.mountpoint / "b.txt").write_bytes(b"B" * 5000)
    b = store.create("vol", compression="none", consistency="none")
    path = store.archive_path(b)
    data = path.read_bytes()
    flip_byte(path, data.index(b"B" * 100) + 10)
    # Without the recorded archive checksum, the manifest alone still catches and names the member.
    result = verify_archive(path, "none")
    assert result.ok is False
    assert result.message == "entry 'b.txt' does not match the manifest"


def test_restore_refuses_an_archive_changed_since_the_backup(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    (v.mountpoint / "a.txt").write_bytes(b"A" * 5000)
    b = store.create("vol", compression="none", consistency="none")
    path = store.archive_path(b)
    flip_byte(path, path.read_bytes().index(b"A" * 100) + 10)
    (v.mountpoint / "a.txt").write_bytes(b"current")
    with pytest.raises(Exception) as exc:
        store.restore(b.id)
    assert "the archive checksum does not match the one recorded at backup" in str(exc.value)
    assert (v.mountpoint / "a.txt").read_bytes() == b"current"


def test_a_backup_records_its_archive_xxh3_which_restore_checks(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    (v.mountpoint / "a.txt").write_bytes(b"A" * 5000)
    b = store.create("vol", compression="zstd", consistency="none")
    assert b.xxh3 == xxhash.xxh3_64_hexdigest(store.archive_path(b).read_bytes())
    # An archive replaced by another valid one (its own frame checksums intact) is caught by the record's XXH3.
    (v.mountpoint / "a.txt").write_bytes(b"other")
    other = store.create("vol", compression="zstd", consistency="none")
    store.archive_path(b).write_bytes(store.archive_path(other).read_bytes())
    with pytest.raises(Exception) as exc:
        store.restore(b.id, "copy")
    assert "the archive checksum does not match the one recorded at backup" in str(exc.value)
    assert not volumes.exists("copy")


def test_a_record_from_before_xxh3_is_restored_against_its_sha256(tmp_path):
    store, volumes = make_store(tmp_path)
    v = volumes.create("vol")
    (v.mountpoint / "a.txt").write_bytes(b"A" * 5000)
    b = store.create("vol", compression="zstd", consistency="none")
    doc_path = store.dir / f"{b.id}.json"
    doc = json.loads(doc_path.read_text())
    del doc["xxh3"]                     # as written by a dockweb before this field
    doc_path.write_text(json.dumps(doc))
    assert store.get(b.id).xxh3 == ""
    assert store.restore(b.id, "copy")["Files"] == b.files
    doc["sha256"] = "0" * 64
    doc_path.write_text(json.dumps(doc))
    with pytest.raises(Exception) as exc:
        store.restore(b.id, "copy2")
    assert "the archive checksum does not match the one recorded at backup" in str(exc.value)
