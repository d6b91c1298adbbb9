"""engine.build.context: the received context's index answers exactly as the extracted files would."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from engine.build import context
from engine.tarsafe import UnsafeArchive


def member(tf: tarfile.TarFile, name: str, kind: str = "file", data: bytes = b"", mode: int = 0o644,
           link: str = "", uid: int = 0, gid: int = 0, mtime: int = 1_600_000_000) -> None:
    ti = tarfile.TarInfo(name)
    ti.mode, ti.uid, ti.gid, ti.mtime = mode, uid, gid, mtime
    if kind == "dir":
        ti.type = tarfile.DIRTYPE
    elif kind == "sym":
        ti.type, ti.linkname = tarfile.SYMTYPE, link
    elif kind == "hard":
        ti.type, ti.linkname = tarfile.LNKTYPE, link
    else:
        ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data) if kind == "file" else None)


def build_tar(add) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        add(tf)
    return buf.getvalue()


def rich(tf: tarfile.TarFile) -> None:
    member(tf, "./", "dir", mode=0o750)
    member(tf, "Dockerfile", data=b"FROM scratch\n")
    member(tf, ".dockerignore", data=b"app/*.log\n!app/keep.log\nbuild/\nempty/\n")
    member(tf, "app/", "dir", mode=0o755, uid=1000, gid=1000)
    member(tf, "app/main.py", data=b"print(1)\n", mode=0o755, uid=1000)
    member(tf, "app/setid", data=b"x", mode=0o4755)
    member(tf, "app/lib/util.py", data=b"u = 2\n")        # its parent has no member of its own
    member(tf, "app/link", "sym", link="main.py")
    member(tf, "app/dirlink", "sym", link="lib")
    member(tf, "app/hard", "hard", link="app/main.py")
    member(tf, "app/debug.log", data=b"noise")
    member(tf, "app/keep.log", data=b"kept")
    member(tf, "build/out.bin", data=b"\0" * 100)
    member(tf, "empty/", "dir")
    member(tf, "replaced", data=b"first")
    member(tf, "replaced", data=b"second", mode=0o600)
    member(tf, "was_file", data=b"f")
    member(tf, "was_file/", "dir", mode=0o700)
    member(tf, "alias", "sym", link="app")


@pytest.fixture
def ctx(tmp_path):
    c = context.receive(io.BytesIO(build_tar(rich)), tmp_path)
    yield c
    c.close()


def fresh_disk_sources(ctx, patterns):
    """The same sources resolved on the extracted files (resolve_in + stat), to compare with the index."""
    out = []
    for p in patterns:
        path = context.resolve_in(ctx.root, context._clean(p, "COPY"), "COPY")
        out.append(context.Source(p, path, os.path.isdir(path)))
    return out


def test_receiving_extracts_nothing_until_asked(ctx):
    assert not ctx.extracted
    assert os.listdir(ctx.base / "context") == []
    assert ctx.dockerfile == b"FROM scratch\n"


@pytest.mark.parametrize("pattern", [".", "app", "app/main.py", "app/link", "alias", "alias/lib", "replaced",
                                     "was_file", "app/setid", "app/hard"])
def test_index_hash_equals_the_hash_of_the_extracted_files(ctx, pattern):
    from_index = ctx.sources_hash(ctx.sources([pattern], "COPY"))
    assert not ctx.extracted
    from_disk = context.sources_hash(fresh_disk_sources(ctx, [pattern]))
    assert from_index == from_disk


def test_index_applies_dockerignore_like_the_disk_pass(ctx):
    names = ctx.index.walk_names()
    assert "app/debug.log" not in names and "app/keep.log" in names
    assert "build" not in names and "empty" not in names
    ctx.materialize()
    on_disk = []
    for dirpath, dirnames, filenames in os.walk(ctx.root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, ctx.root)
        on_disk += [n if rel_dir == "." else f"{rel_dir}/{n}" for n in sorted(dirnames + filenames)]
    assert names == on_disk


def test_globs_and_symlinks_resolve_as_on_disk(ctx):
    assert [s.name for s in ctx.sources(["app/*.py"], "COPY")] == ["app/main.py"]
    (src,) = ctx.sources(["alias"], "COPY")
    assert src.is_dir and src.path == ctx.base / "context" / "app"
    with pytest.raises(context.ContextError, match="file not found in build context or excluded by "
                                                  ".dockerignore: stat app/debug.log"):
        ctx.sources(["app/debug.log"], "COPY")


def test_a_changed_file_changes_the_index_hash(tmp_path):
    def one(data: bytes, mode: int = 0o644):
        def add(tf):
            member(tf, "Dockerfile", data=b"FROM scratch\n")
            member(tf, "d/f", data=data, mode=mode)
        c = context.receive(io.BytesIO(build_tar(add)), tmp_path)
        try:
            return c.sources_hash(c.sources(["d"], "COPY"))
        finally:
            c.close()
    assert one(b"one") == one(b"one")
    assert one(b"two") != one(b"one")
    assert one(b"one", 0o600) != one(b"one")


@pytest.mark.parametrize("add, message", [
    (lambda tf: member(tf, "../evil", data=b"x"), "path escapes the target"),
    (lambda tf: (member(tf, "l", "sym", link="/etc"), member(tf, "l/x", data=b"x")),
     "l is a symlink: writing through it is not allowed"),
    (lambda tf: (member(tf, "d/", "dir"), member(tf, "d", data=b"x")), "it would replace a directory"),
    (lambda tf: member(tf, "h", "hard", link="missing"), "which is not in the archive"),
    (lambda tf: (member(tf, "s", "sym", link="x"), member(tf, "h", "hard", link="s")), "not a regular file"),
])
def test_hostile_members_are_refused_as_extraction_refuses_them(tmp_path, add, message):
    with pytest.raises(UnsafeArchive, match=message):
        context.receive(io.BytesIO(build_tar(lambda tf: (member(tf, "Dockerfile", data=b""), add(tf)))), tmp_path)
    assert os.listdir(tmp_path) == []


def test_is_archive_reads_the_spooled_bytes(tmp_path):
    inner = build_tar(lambda tf: member(tf, "x", data=b"x"))

    def add(tf):
        member(tf, "Dockerfile", data=b"")
        member(tf, "a.tar", data=inner)
        member(tf, "plain.txt", data=b"hello")
    c = context.receive(io.BytesIO(build_tar(add)), tmp_path)
    try:
        tar_src, txt_src = c.sources(["a.tar", "plain.txt"], "ADD")
        assert c.is_archive(tar_src) and not c.is_archive(txt_src)
        assert not c.extracted
    finally:
        c.close()
