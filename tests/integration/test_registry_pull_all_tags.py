"""docker pull -a and docker-py's all_tags against Debian's docker-registry; a multi-layer pull, in parallel."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from tests.integration.build_helpers import build, write
from tests.integration.registry_harness import RegistryServer

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture(scope="module")
def registry(engine):
    server = RegistryServer(engine)
    try:
        yield server.start()
    finally:
        server.stop()


def ok(out):
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def tiny_rootfs(marker: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/marker")
        info.size = len(marker)
        tar.addfile(info, io.BytesIO(marker))
    return buf.getvalue()


def tags(engine, repo):
    return sorted(ok(engine.docker("images", repo, "--format", "{{.Tag}}")).split())


def test_cli_pull_all_tags_pulls_every_tag_of_the_repository(engine, registry):
    d = engine.docker
    repo = f"{registry.host}/team/alltags"
    ok(d("tag", "busybox", f"{repo}:1"))
    ok(d("tag", "busybox", f"{repo}:2"))
    ok(d("import", "-", f"{repo}:3", input=tiny_rootfs(b"three\n"), text=False))
    ok(d("push", "-a", repo))
    ok(d("rmi", f"{repo}:1", f"{repo}:2", f"{repo}:3"))
    assert tags(engine, repo) == []

    out = ok(d("pull", "-a", repo))
    for tag in ("1", "2", "3"):
        assert f"{tag}: Pulling from team/alltags" in out
    assert out.count("Digest: sha256:") == 3
    assert f"Status: Downloaded newer image for {repo}" in out
    assert tags(engine, repo) == ["1", "2", "3"]
    assert ok(d("image", "inspect", "-f", "{{.Id}}", f"{repo}:1")) == \
        ok(d("image", "inspect", "-f", "{{.Id}}", "busybox"))

    out = ok(d("pull", "-a", repo))
    assert f"Status: Image is up to date for {repo}" in out


def test_docker_py_pull_all_tags_returns_every_image(engine, registry):
    client = engine.client()
    repo = f"{registry.host}/team/pyall"
    busybox = client.images.get("busybox")
    for tag in ("a", "b"):
        busybox.tag(repo, tag)
        client.images.push(repo, tag=tag)
        client.images.remove(f"{repo}:{tag}")
    images = client.images.pull(repo, all_tags=True)
    # One image (busybox's) carries both tags, among its others.
    assert [im.id for im in images] == [busybox.id]
    assert {f"{repo}:a", f"{repo}:b"} <= set(images[0].tags)


def test_a_four_layer_image_pulls_in_parallel_and_runs(engine, registry, tmp_path):
    d = engine.docker
    name = f"{registry.host}/team/layers:1"
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"
                                   + "".join(f"RUN head -c 300000 /dev/urandom > /blob{i}\n" for i in range(3))})
    ok(build(engine, ctx, "-t", name))
    sums = ok(d("run", "--rm", name, "sh", "-c", "md5sum /blob0 /blob1 /blob2"))
    ok(d("push", name))
    ok(d("rmi", name))
    out = ok(d("pull", name))
    # busybox's layer is here already; the three others come down together.
    assert out.count("Already exists") == 1 and out.count("Pull complete") == 3
    assert ok(d("run", "--rm", name, "sh", "-c", "md5sum /blob0 /blob1 /blob2")) == sums
    assert os.listdir(engine.root / "images" / "tmp") == []
