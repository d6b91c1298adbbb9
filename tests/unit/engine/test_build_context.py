"""engine.build.context: receiving a build context safely, .dockerignore, the Dockerfile, COPY sources and hashes."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from engine.build import context
from engine.errors import InvalidParameter
from engine.tarsafe import UnsafeArchive


def tar_of(files: dict[str, str], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, content in files.items():
            data = content.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tf.addfile(ti, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tf.addfile(ti)
    return buf.getvalue()


@pytest.fixture
def receive(tmp_path):
    opened = []

    def do(data: bytes, dockerfile: str | None = None) -> context.BuildContext:
        ctx = context.receive(io.BytesIO(data), tmp_path, dockerfile)
        opened.append(ctx)
        return ctx

    yield do
    for ctx in opened:
        ctx.close()


def test_plain_tar_context_gives_the_dockerfile_and_the_files(receive):
    ctx = receive(tar_of({"Dockerfile": "FROM busybox\n", "app/a.txt": "a"}))
    assert ctx.dockerfile == b"FROM busybox\n"
    assert (ctx.root / "app/a.txt").read_text() == "a"


def test_gzip_context_and_a_generated_dockerfile_name(receive):
    ctx = receive(gzip.compress(tar_of({".dockerfile.4f2a": "FROM scratch\n"})), ".dockerfile.4f2a")
    assert ctx.dockerfile == b"FROM scratch\n"


def test_bare_dockerfile_body_is_the_dockerfile(receive):
    ctx = receive(b"FROM busybox\nRUN true\n")
    assert ctx.dockerfile == b"FROM busybox\nRUN true\n"


def test_missing_dockerfile_is_a_clear_error(receive):
    with pytest.raises(InvalidParameter, match="Cannot locate specified Dockerfile: Other"):
        receive(tar_of({"Dockerfile": "FROM busybox\n"}), "Other")


def test_dockerfile_outside_the_context_is_refused(receive):
    with pytest.raises(InvalidParameter, match="must be within the build context"):
        receive(tar_of({"Dockerfile": "FROM busybox\n"}), "../Dockerfile")


def test_hostile_context_member_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(UnsafeArchive):
        context.receive(io.BytesIO(tar_of({"../evil": "x"})), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_dockerignore_removes_excluded_files_but_keeps_exceptions(receive):
    ctx = receive(tar_of({"Dockerfile": "FROM busybox\n", ".dockerignore": "*.log\n!keep.log\nsecret/\n",
                          "a.log": "x", "keep.log": "k", "secret/key": "s", "src/main.c": "c"}))
    names = sorted(str(p.relative_to(ctx.root)) for p in ctx.root.rglob("*"))
    assert names == [".dockerignore", "Dockerfile", "keep.log", "src", "src/main.c"]


def test_dockerfile_is_read_even_when_dockerignore_excludes_it(receive):
    ctx = receive(tar_of({"Dockerfile": "FROM busybox\n", ".dockerignore": "Dockerfile\n.dockerignore\n"}))
    assert ctx.dockerfile == b"FROM busybox\n"
    assert not (ctx.root / "Dockerfile").exists()


def test_sources_expand_globs_per_path_component(receive):
    ctx = receive(tar_of({"Dockerfile": "", "a.txt": "a", "b.txt": "b", "sub/c.txt": "c"}))
    assert [s.name for s in ctx.sources(["*.txt"], "COPY")] == ["a.txt", "b.txt"]
    assert [s.name for s in ctx.sources(["*/*.txt"], "COPY")] == ["sub/c.txt"]


def test_missing_source_names_it(receive):
    ctx = receive(tar_of({"Dockerfile": ""}))
    with pytest.raises(context.ContextError, match="COPY failed: file not found in build context or excluded by "
                                                  ".dockerignore: stat nosuch.txt: file does not exist"):
        ctx.sources(["nosuch.txt"], "COPY")


def test_unmatched_glob_has_no_source_files(receive):
    ctx = receive(tar_of({"Dockerfile": ""}))
    with pytest.raises(context.ContextError, match="no source files were specified"):
        ctx.sources(["*.nothing"], "COPY")


def test_parent_path_escape_is_forbidden(receive):
    ctx = receive(tar_of({"Dockerfile": ""}))
    with pytest.raises(context.ContextError, match="forbidden path outside the build context: ../etc/passwd"):
        ctx.sources(["../etc/passwd"], "COPY")


@pytest.mark.parametrize("target", ["/etc/passwd", "../../etc/passwd", "sub/../../x"])
def test_symlink_leading_out_of_the_context_is_forbidden(receive, target):
    ctx = receive(tar_of({"Dockerfile": "", "sub/f": "f"}, {"link": target}))
    with pytest.raises(context.ContextError, match="forbidden path outside the build context: link"):
        ctx.sources(["link"], "COPY")


def test_symlink_inside_the_context_is_followed(receive):
    ctx = receive(tar_of({"Dockerfile": "", "real/f": "f"}, {"alias": "real"}))
    (src,) = ctx.sources(["alias"], "COPY")
    assert src.is_dir and src.path == ctx.root / "real"


def test_source_hash_follows_content_and_mode(receive):
    ctx = receive(tar_of({"Dockerfile": "", "d/f": "one"}))
    (src,) = ctx.sources(["d"], "COPY")
    first = context.source_hash(src)
    assert first.startswith("dir:") and context.source_hash(src) == first
    (ctx.root / "d/f").write_text("two")
    second = context.source_hash(src)
    assert second != first
    os.chmod(ctx.root / "d/f", 0o600)
    assert context.source_hash(src) != second


def test_add_url_to_loopback_is_refused_by_default(tmp_path):
    from engine.config import EngineConfig
    with pytest.raises(context.ContextError, match="loopback, link-local or private address"):
        context.download("http://127.0.0.1:9/x.txt", tmp_path, EngineConfig(root=tmp_path))
    with pytest.raises(context.ContextError, match="only http and https"):
        context.download("ftp://example.org/x", tmp_path, EngineConfig(root=tmp_path))


def test_context_without_end_of_archive_blocks_is_accepted(receive):
    # What the docker CLI sends for `docker build -f - ctx`: the last member's data, then nothing.
    data = tar_of({"Dockerfile": "FROM busybox\n", ".dockerignore": "*.tmp\n"})
    cut = data.index(b"*.tmp\n") + 6
    ctx = receive(data[:cut])
    assert (ctx.root / ".dockerignore").read_text() == "*.tmp\n"
