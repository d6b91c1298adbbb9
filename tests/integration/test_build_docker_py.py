"""docker-py's images.build against the engine: logs, the image, errors, and .dockerignore applied by the engine."""

import io
import tarfile

import docker
import pytest

from tests.integration.build_helpers import layer_files, write

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


def test_images_build_returns_the_image_and_its_logs(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nARG WHO\nRUN echo \"hello $WHO\"\nCMD [\"true\"]\n"})
    client = engine.client()
    image, logs = client.images.build(path=str(ctx), tag="pybuilt:1", buildargs={"WHO": "py"}, rm=True)
    text = "".join(m.get("stream", "") for m in logs)
    assert "hello py" in text
    assert "pybuilt:1" in image.tags
    assert image.attrs["Config"]["Cmd"] == ["true"]


def test_failing_build_raises_build_error_with_the_message(engine, tmp_path):
    ctx = write(tmp_path, {"Dockerfile": "FROM busybox\nRUN exit 5\n"})
    with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 5"):
        engine.client().images.build(path=str(ctx))


def test_dockerfile_only_fileobj_build(engine):
    f = io.BytesIO(b"FROM busybox\nLABEL from=fileobj\n")
    image, _ = engine.client().images.build(fileobj=f, tag="pyfileobj")
    assert image.labels == {"from": "fileobj"}


def test_dockerignore_in_a_raw_context_keeps_files_out_of_every_layer(engine):
    # A custom context bypasses docker-py's own .dockerignore handling: the engine must apply it.
    buf = io.BytesIO()
    files = {"Dockerfile": "FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx > /listing\n",
             ".dockerignore": "secret.txt\n*.log\n!keep.log\ncache/\n",
             "secret.txt": "password", "app.log": "log", "keep.log": "kept", "cache/blob": "b", "main.py": "m"}
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, content in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(content)
            tf.addfile(ti, io.BytesIO(content.encode()))
    buf.seek(0)
    client = engine.client()
    image, _ = client.images.build(fileobj=buf, custom_context=True, tag="ignored")
    listing = client.containers.run("ignored", ["cat", "/listing"], remove=True).decode().split()
    assert sorted(listing) == [".", "..", ".dockerignore", "Dockerfile", "keep.log", "main.py"]
    layers = layer_files(engine, "ignored")
    assert not any(f.endswith(("secret.txt", "app.log", "cache/blob")) for f in layers)
