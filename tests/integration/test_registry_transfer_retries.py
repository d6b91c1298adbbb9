"""Through the docker CLI, against a flaky registry (the fake, served in the daemon's netns): a blob cut
mid-download is resumed, a PATCH cut mid-upload is resumed, and the images run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from tests.integration.build_helpers import build, write
from tests.integration.daemon_harness import call_in_netns
from tests.unit.engine.registry_fake import FakeRegistry, image_manifest

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.fixture
def fake(engine):
    reg = FakeRegistry()
    call_in_netns(engine.netns_path, reg.serve)   # its listening socket lives in the daemon's netns
    try:
        yield reg
    finally:
        reg.close()


def ok(out):
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def data_layer(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(f"data/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_pull_resumes_a_blob_whose_connection_dropped(engine, fake):
    from engine.images.store import host_architecture

    inspect = json.loads(ok(engine.docker("image", "inspect", "busybox")))[0]
    [diff_id] = inspect["RootFS"]["Layers"]
    busybox = (engine.root / "images" / "blobs" / "sha256" / diff_id.split(":")[1]).read_bytes()
    payload = os.urandom(500_000)
    config, manifest, blobs = image_manifest([(busybox, "gzip"), (data_layer("a", payload), "gzip"),
                                              (data_layer("b", b"small\n"), "gzip")], arch=host_architecture())
    for blob in (config, *blobs):
        fake.add_blob("team/flaky", blob)
    fake.add_manifest("team/flaky", "1", manifest, json.loads(manifest)["mediaType"])
    cut = json.loads(manifest)["layers"][1]
    fake.cut_once.add(cut["digest"])

    name = f"{fake.host}/team/flaky:1"
    out = ok(engine.docker("pull", name))
    assert f"Status: Downloaded newer image for {name}" in out
    assert fake.count("GET", cut["digest"]) == 2
    assert fake.ranges == [(cut["digest"], cut["size"] // 2)]
    got = ok(engine.docker("run", "--rm", name, "md5sum", "/data/a")).split()[0]
    assert got == hashlib.md5(payload).hexdigest()


def test_push_of_three_layers_survives_a_failed_patch(engine, fake, tmp_path):
    d = engine.docker
    name = f"{fake.host}/team/pushed:1"
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN head -c 200000 /dev/urandom > /a\n"
                                                 "RUN head -c 200000 /dev/urandom > /b\n"})
    ok(build(engine, ctx, "-t", name))
    sums = ok(d("run", "--rm", name, "md5sum", "/a", "/b"))
    fake.fail_patch_once = 1
    out = ok(d("push", name))
    assert out.count("Pushed") == 3
    assert fake.fail_patch_once == 0 and fake.count("GET", "/blobs/uploads/") == 1
    ok(d("rmi", name))
    ok(d("pull", name))
    assert ok(d("run", "--rm", name, "md5sum", "/a", "/b")) == sums
