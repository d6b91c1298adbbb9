"""Builds that pull from Debian's docker-registry: FROM a missing image, --pull after the tag moved, COPY --from."""

from __future__ import annotations

import pytest

from tests.integration.build_helpers import build, inspect, write
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


def publish_base(engine, tmp_path, name: str, marker: str) -> str:
    """Build busybox plus /marker holding marker, push it as name, remove it locally; return its id."""
    ctx = write(tmp_path / f"base-{marker}", {"Dockerfile": f"FROM busybox\nRUN echo {marker} > /marker\n"})
    ok(build(engine, ctx, "-t", name))
    image_id = inspect(engine, name)["Id"]
    ok(engine.docker("push", name))
    ok(engine.docker("rmi", name))
    return image_id


def marker(engine, image: str) -> str:
    return ok(engine.docker("run", "--rm", image, "cat", "/marker")).strip()


def test_build_from_a_registry_image_pulls_it(engine, registry, tmp_path):
    base = f"{registry.host}/team/base:1"
    base_id = publish_base(engine, tmp_path, base, "v1")
    ctx = write(tmp_path / "app", {"Dockerfile": f"FROM {base}\nRUN cat /marker > /copied\n"})
    out = build(engine, ctx, "-t", "app-from-registry:1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Pulling from team/base" in out.stdout
    assert f"Status: Downloaded newer image for {base}" in out.stdout
    assert inspect(engine, base)["Id"] == base_id
    assert ok(engine.docker("run", "--rm", "app-from-registry:1", "cat", "/copied")) == "v1\n"


def test_build_pull_fetches_the_image_the_tag_now_names(engine, registry, tmp_path):
    base = f"{registry.host}/team/moving:1"
    old_id = publish_base(engine, tmp_path, base, "old")
    ctx = write(tmp_path / "app", {"Dockerfile": f"FROM {base}\nRUN cat /marker > /copied\n"})
    ok(build(engine, ctx, "-t", "app-moving:1"))
    assert ok(engine.docker("run", "--rm", "app-moving:1", "cat", "/copied")) == "old\n"

    # The tag moves to a new image in the registry; locally it still names the old one.
    new_id = publish_base(engine, tmp_path, base, "new")
    ok(engine.docker("tag", old_id, base))

    out = ok(build(engine, ctx, "-t", "app-moving:2"))
    assert "Pulling from" not in out   # without --pull the local image is used
    assert ok(engine.docker("run", "--rm", "app-moving:2", "cat", "/copied")) == "old\n"
    out = ok(build(engine, ctx, "--pull", "-t", "app-moving:3"))
    assert "Pulling from team/moving" in out
    assert f"Status: Downloaded newer image for {base}" in out
    assert inspect(engine, base)["Id"] == new_id
    assert ok(engine.docker("run", "--rm", "app-moving:3", "cat", "/copied")) == "new\n"


def test_copy_from_a_registry_image_pulls_it(engine, registry, tmp_path):
    source = f"{registry.host}/team/source:1"
    publish_base(engine, tmp_path, source, "from-source")
    ctx = write(tmp_path / "app", {"Dockerfile": f"FROM busybox\nCOPY --from={source} /marker /got\n"})
    out = build(engine, ctx, "-t", "app-copy-from:1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert marker(engine, source) == "from-source"
    assert ok(engine.docker("run", "--rm", "app-copy-from:1", "cat", "/got")) == "from-source\n"


# dockerd's legacy builder gets FROM and COPY --from images through one function (builder/dockerfile/imagecontext.go,
# newImageSources): both pull with the build's progress output, and both force the pull under --pull.

def test_copy_from_a_registry_image_shows_the_pull_in_the_build_output(engine, registry, tmp_path):
    source = f"{registry.host}/team/shown:1"
    publish_base(engine, tmp_path, source, "shown")
    ctx = write(tmp_path / "app", {"Dockerfile": f"FROM busybox\nCOPY --from={source} /marker /got\n"})
    out = ok(build(engine, ctx, "-t", "app-copy-shown:1"))
    assert "Pulling from team/shown" in out
    assert f"Status: Downloaded newer image for {source}" in out


def test_build_pull_also_refreshes_a_copy_from_image(engine, registry, tmp_path):
    source = f"{registry.host}/team/copymoving:1"
    old_id = publish_base(engine, tmp_path, source, "old")
    ok(engine.docker("pull", source))
    publish_base(engine, tmp_path, source, "new")
    ok(engine.docker("tag", old_id, source))   # locally the tag still names the old image
    base = f"{registry.host}/team/bb:1"         # --pull refreshes FROM too: busybox must come from the registry
    ok(engine.docker("tag", "busybox", base))
    ok(engine.docker("push", base))
    ctx = write(tmp_path / "app", {"Dockerfile": f"FROM {base}\nCOPY --from={source} /marker /got\n"})
    ok(build(engine, ctx, "--pull", "-t", "app-copy-moving:1"))
    assert ok(engine.docker("run", "--rm", "app-copy-moving:1", "cat", "/got")) == "new\n"
