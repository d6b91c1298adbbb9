"""An archive made elsewhere (the seed's plain backup.tar, gzip, zstd) is uploaded, re-encoded, and restores."""

from __future__ import annotations

import gzip
import io

import pytest

from engine.tarsafe import UnsafeArchive
from tests.unit.engine.backup_helpers import make_store
from tests.unit.engine.tar_builders import member, snapshot, tar_bytes


def seed_backup_tar() -> bytes:
    """What `tar cvf /backup/backup.tar /dbdata` writes: members under a leading dbdata/ directory."""
    return tar_bytes(member("dbdata/", "dir", mode=0o755), member("dbdata/one.txt", data=b"first\n"),
                     member("dbdata/sub/", "dir", mode=0o750), member("dbdata/sub/two.txt", data=b"second\n"),
                     member("dbdata/link", "symlink", link="one.txt"),
                     member("dbdata/hard", "hardlink", link="dbdata/one.txt"))


@pytest.mark.parametrize("wrap", ["plain", "gzip", "zstd"])
def test_the_seed_backup_tar_restores_with_its_leading_directory_stripped(tmp_path, wrap):
    import zstandard

    raw = seed_backup_tar()
    body = {"plain": raw, "gzip": gzip.compress(raw), "zstd": zstandard.ZstdCompressor().compress(raw)}[wrap]
    store, volumes = make_store(tmp_path)
    volumes.create("dbstore2")
    b = store.upload("dbstore2", io.BytesIO(body), strip_components=1)
    assert b.origin == "upload" and b.verified["Ok"] is True
    assert store.verify(b.id).verified["Ok"] is True
    store.restore(b.id)
    data = volumes.get("dbstore2").mountpoint
    assert (data / "one.txt").read_bytes() == b"first\n"
    assert (data / "sub" / "two.txt").read_bytes() == b"second\n"
    assert (data / "link").readlink().as_posix() == "one.txt"
    assert (data / "hard").stat().st_ino == (data / "one.txt").stat().st_ino
    assert set(snapshot(data)) == {".", "one.txt", "sub", "sub/two.txt", "link", "hard"}


def test_an_upload_with_an_escaping_member_is_refused_and_stores_nothing(tmp_path):
    store, volumes = make_store(tmp_path)
    volumes.create("vol")
    body = tar_bytes(member("ok.txt", data=b"ok"), member("../../etc/cron.d/evil", data=b"* * * * * root sh"))
    with pytest.raises(UnsafeArchive) as exc:
        store.upload("vol", io.BytesIO(body))
    assert exc.value.message == 'refusing "../../etc/cron.d/evil": path escapes the target'
    assert store.list() == [] and list(store.dir.iterdir()) == []


def test_an_upload_that_is_not_a_tar_is_refused(tmp_path):
    store, volumes = make_store(tmp_path)
    volumes.create("vol")
    with pytest.raises(Exception) as exc:
        store.upload("vol", io.BytesIO(b"this is not a tar archive at all, " * 40))
    assert str(exc.value) == "invalid tar header at offset 0: not a tar archive, or a corrupt one"
    assert list(store.dir.iterdir()) == []
