"""The hostile-archive suite: each attack is refused with a message naming the member, and nothing changes."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from engine import tarsafe
from engine.tarsafe import ExtractLimits, UnsafeArchive, extract, extract_to_staging
from tests.unit.engine.tar_builders import member, snapshot, tar_bytes


@pytest.fixture
def world(tmp_path: Path) -> dict:
    """An outside directory with a victim file, and a volume whose data directory already has content."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"do not touch\n")
    vol = tmp_path / "vol"
    data = vol / "_data"
    data.mkdir(parents=True)
    (data / "existing").write_bytes(b"old content\n")
    return {"root": tmp_path, "outside": outside, "vol": vol, "data": data}


def refuse_staged(world: dict, archive: bytes, message: str, limits: ExtractLimits = ExtractLimits()) -> None:
    """Extract the way restore does (into a staging dir beside the data), expect the refusal, check nothing moved."""
    before = snapshot(world["root"])
    with pytest.raises(UnsafeArchive) as exc:
        extract_to_staging(io.BytesIO(archive), world["data"], limits)
    assert exc.value.message == message
    assert snapshot(world["root"]) == before           # outside, the data and the volume dir: all unchanged
    assert sorted(os.listdir(world["vol"])) == ["_data"]  # the staging directory is gone


def test_dotdot_member_is_refused(world):
    archive = tar_bytes(member("ok", data=b"fine"), member("../escape", data=b"x"))
    refuse_staged(world, archive, 'refusing "../escape": path escapes the target')


def test_dotdot_inside_a_path_is_refused(world):
    archive = tar_bytes(member("a/../../outside/victim", data=b"pwned"))
    refuse_staged(world, archive, 'refusing "a/../../outside/victim": path escapes the target')


def test_absolute_member_is_refused(world):
    victim = str(world["outside"] / "victim")
    archive = tar_bytes(member(victim, data=b"pwned"))
    refuse_staged(world, archive, f'refusing "{victim}": absolute path')


def test_write_through_a_symlink_from_the_archive_is_refused(world):
    archive = tar_bytes(member("link", "symlink", link=str(world["outside"])),
                        member("link/victim", data=b"pwned"))
    refuse_staged(world, archive, 'refusing "link/victim": link is a symlink: writing through it is not allowed')


def test_write_through_a_relative_symlink_chain_is_refused(world):
    archive = tar_bytes(member("d", "dir", mode=0o755), member("d/up", "symlink", link="../.."),
                        member("d/up/outside/victim", data=b"pwned"))
    refuse_staged(world, archive,
                  'refusing "d/up/outside/victim": d/up is a symlink: writing through it is not allowed')


def test_write_through_a_symlink_already_in_the_target_is_refused(world):
    # Extract straight into a directory that already holds a symlink to the outside.
    target = world["data"]
    os.symlink(world["outside"], target / "link")
    before = snapshot(world["root"])
    with pytest.raises(UnsafeArchive) as exc:
        extract(io.BytesIO(tar_bytes(member("link/victim", data=b"pwned"))), target)
    assert exc.value.message == 'refusing "link/victim": link is a symlink: writing through it is not allowed'
    assert snapshot(world["root"]) == before


def test_a_file_over_an_existing_symlink_replaces_the_link_not_its_target(world):
    target = world["data"]
    os.symlink(world["outside"] / "victim", target / "link")
    extract(io.BytesIO(tar_bytes(member("link", data=b"new file"))), target)
    assert (world["outside"] / "victim").read_bytes() == b"do not touch\n"
    assert not (target / "link").is_symlink()
    assert (target / "link").read_bytes() == b"new file"


def test_hard_link_to_outside_is_refused(world):
    archive = tar_bytes(member("h", "hardlink", link="../../outside/victim"))
    refuse_staged(world, archive, 'refusing "h": hard link to "../../outside/victim": path escapes the target')


def test_hard_link_to_an_absolute_path_is_refused(world):
    victim = str(world["outside"] / "victim")
    archive = tar_bytes(member("h", "hardlink", link=victim))
    refuse_staged(world, archive, f'refusing "h": hard link to "{victim}": absolute path')


def test_hard_link_to_a_symlink_is_refused(world):
    archive = tar_bytes(member("s", "symlink", link=str(world["outside"] / "victim")),
                        member("h", "hardlink", link="s"))
    refuse_staged(world, archive, 'refusing "h": hard link to "s", which is not a regular file')


def test_hard_link_to_a_member_not_in_the_archive_is_refused(world):
    archive = tar_bytes(member("h", "hardlink", link="existing"))
    refuse_staged(world, archive, 'refusing "h": hard link to "existing", which is not in the archive')


def test_device_node_is_refused(world):
    archive = tar_bytes(member("dev/sda", "block", devmajor=8, devminor=0, mode=0o666))
    refuse_staged(world, archive, 'refusing "dev/sda": device nodes are not allowed in this archive')


def test_character_device_is_refused(world):
    archive = tar_bytes(member("mem", "char", devmajor=1, devminor=1, mode=0o666))
    refuse_staged(world, archive, 'refusing "mem": device nodes are not allowed in this archive')


def test_fifo_is_refused(world):
    archive = tar_bytes(member("pipe", "fifo"))
    refuse_staged(world, archive, 'refusing "pipe": FIFOs are not allowed in this archive')


def test_fifo_is_created_when_allowed(tmp_path):
    extract(io.BytesIO(tar_bytes(member("pipe", "fifo", mode=0o640))), tmp_path, ExtractLimits(allow_devices=True))
    st = os.lstat(tmp_path / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


def test_setuid_and_setgid_bits_are_dropped(tmp_path):
    archive = tar_bytes(member("suid", data=b"#!/bin/sh\n", mode=0o4755), member("sgid", "dir", mode=0o2775))
    extract(io.BytesIO(archive), tmp_path)
    assert stat.S_IMODE(os.lstat(tmp_path / "suid").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(tmp_path / "sgid").st_mode) == 0o775


def test_setuid_and_setgid_bits_are_kept_when_asked(tmp_path):
    archive = tar_bytes(member("suid", data=b"#!/bin/sh\n", mode=0o4755), member("sgid", "dir", mode=0o2775))
    extract(io.BytesIO(archive), tmp_path, ExtractLimits(keep_setid=True))
    assert stat.S_IMODE(os.lstat(tmp_path / "suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(tmp_path / "sgid").st_mode) == 0o2775


def test_bomb_by_size_is_refused(world):
    archive = tar_bytes(member("a", data=b"x" * 600), member("b", data=b"y" * 600))
    refuse_staged(world, archive, 'refusing "b": the archive expands to more than 1000 bytes',
                  ExtractLimits(max_bytes=1000))


def test_sparse_bomb_is_refused_by_its_expanded_size(world):
    # A GNU sparse member that stores 512 bytes but expands to 1 TiB: the limit counts the expanded size.
    import tarfile
    ti = tarfile.TarInfo("GNUSparseFile.0/bomb")
    mapping = b"1\n1099511627264\n512\n"
    mapping += bytes(-len(mapping) % 512)
    ti.size = len(mapping) + 512
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "bomb",
                      "GNU.sparse.realsize": str(1 << 40)}
    archive = tar_bytes((ti, mapping + b"z" * 512))
    refuse_staged(world, archive, f'refusing "bomb": the archive expands to more than {1 << 30} bytes',
                  ExtractLimits(max_bytes=1 << 30))


def test_bomb_by_member_count_is_refused(world):
    archive = tar_bytes(*(member(f"f{i}") for i in range(101)))
    refuse_staged(world, archive, 'refusing "f100": the archive has more than 100 members',
                  ExtractLimits(max_members=100))


def test_name_longer_than_path_max_is_refused(world):
    name = "/".join(["d" * 200] * 21)          # 4220 bytes
    archive = tar_bytes(member(name, data=b"x"))
    refuse_staged(world, archive, f'refusing "{name[:200]}...": name is longer than 4096 bytes')


def test_component_longer_than_name_max_is_refused(world):
    name = "a/" + "n" * 256
    archive = tar_bytes(member(name, data=b"x"))
    refuse_staged(world, archive, f'refusing "{name[:200]}...": a path component is longer than 255 bytes')


def test_huge_pax_header_is_refused_before_it_is_read(world):
    ti, data = member("big", data=b"x")
    ti.pax_headers = {"comment": "c" * (tarsafe.MAX_HEADER_DATA + 10)}
    archive = tar_bytes((ti, data))
    size = len("comment=") + tarsafe.MAX_HEADER_DATA + 10 + 1 + len("1048596 ")   # one pax record
    refuse_staged(world, archive, f'refusing "././@PaxHeader": pax header data of {size} bytes is '
                                  f'larger than {tarsafe.MAX_HEADER_DATA}')


def test_long_names_within_limits_are_extracted(tmp_path):
    name = "/".join(["l" * 200] * 5) + "/file"
    extract(io.BytesIO(tar_bytes(member(name, data=b"deep"))), tmp_path)
    assert (tmp_path / name).read_bytes() == b"deep"
