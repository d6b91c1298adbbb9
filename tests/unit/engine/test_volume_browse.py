"""The volume file browser lists and reads files inside the volume and never follows a link out of it."""

from __future__ import annotations

import os

import pytest

from engine.errors import InvalidParameter, NotFound
from engine.volumes import browse


@pytest.fixture
def vol(tmp_path):
    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("hello\n")
    (root / "sub" / "b.bin").write_bytes(b"\0" * 3000)
    outside = tmp_path / "secret"
    outside.write_text("not yours")
    (root / "escape").symlink_to(outside)
    (root / "dirlink").symlink_to(tmp_path)
    return root


def test_listing_puts_directories_first_and_shows_link_targets(vol):
    doc = browse.list_dir(vol, "/")
    names = [(e["Name"], e["Type"]) for e in doc["Entries"]]
    assert names[0] == ("sub", "dir")
    assert ("a.txt", "file") in names and ("escape", "symlink") in names
    link = next(e for e in doc["Entries"] if e["Name"] == "escape")
    assert link["LinkTarget"].endswith("/secret")
    assert doc["Total"] == 4 and doc["Truncated"] is False


def test_listing_a_subdirectory_gives_sizes(vol):
    doc = browse.list_dir(vol, "sub")
    assert doc["Path"] == "/sub"
    assert doc["Entries"][0]["Size"] == 3000


def test_listing_is_capped(vol):
    doc = browse.list_dir(vol, "/", limit=2)
    assert len(doc["Entries"]) == 2 and doc["Truncated"] is True


def test_reading_a_file_streams_its_bytes(vol):
    fd, size = browse.open_file(vol, "/sub/b.bin")
    assert size == 3000
    assert b"".join(browse.read_chunks(fd)) == b"\0" * 3000


def test_reading_with_a_limit_stops_early(vol):
    fd, _ = browse.open_file(vol, "a.txt")
    assert b"".join(browse.read_chunks(fd, 3)) == b"hel"


def test_a_symlink_to_a_file_outside_is_not_followed(vol):
    with pytest.raises(InvalidParameter, match="symbolic link"):
        browse.open_file(vol, "escape")


def test_a_symlinked_directory_is_not_entered(vol):
    with pytest.raises(InvalidParameter, match="not a directory"):
        browse.list_dir(vol, "dirlink")
    with pytest.raises(InvalidParameter):
        browse.open_file(vol, "dirlink/secret")


def test_dot_dot_is_refused(vol):
    with pytest.raises(InvalidParameter, match=r"\.\."):
        browse.list_dir(vol, "sub/../..")


def test_missing_paths_are_not_found(vol):
    with pytest.raises(NotFound):
        browse.list_dir(vol, "nope")
    with pytest.raises(NotFound):
        browse.open_file(vol, "sub/nope")


def test_a_directory_is_not_a_file(vol):
    with pytest.raises(InvalidParameter, match="not a regular file"):
        browse.open_file(vol, "sub")


def test_a_fifo_is_not_opened_for_reading(vol):
    os.mkfifo(vol / "pipe")
    with pytest.raises(InvalidParameter, match="not a regular file"):
        browse.open_file(vol, "pipe")
