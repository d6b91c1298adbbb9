"""docker save / docker load round trips between dockweb and a real (private) dockerd, both ways."""

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.integration.dockerd_harness import DockerdUnavailable, PrivateDockerd, dockerd_path

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.slow]

BUSYBOX = "rt-busybox:1"
LAYERED = "rt-layered:1"
DOCKERFILE = """FROM rt-busybox:1
RUN echo hello from dockerd > /hello && mkdir -p /data && echo one > /data/one
RUN rm /bin/vi /data/one && echo two > /data/two
ENV GREETING=hi
CMD ["cat", "/hello"]
"""


@pytest.fixture(scope="module")
def dockerd(engine, tmp_path_factory):
    """A private dockerd in the dockweb daemon's network namespace, with busybox imported into both."""
    if dockerd_path() is None:
        pytest.skip("dockerd is not installed (apt-get install -y docker.io): no peer to round-trip with")
    from engine.images.bootstrap import build_rootfs_tar

    peer = PrivateDockerd(tmp_path_factory.mktemp("dockerd"), netns_path=engine.netns_path)
    try:
        peer.start()
    except DockerdUnavailable as e:
        pytest.skip(str(e))
    try:
        tar = build_rootfs_tar(Path("/bin/busybox"))
        for d in (peer.docker, engine.docker):
            r = d("import", "--change", 'CMD ["sh"]', "-", BUSYBOX, input=tar)
            assert r.returncode == 0, r.stderr
        ctx = tmp_path_factory.mktemp("ctx")
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        r = peer.docker("build", "-q", "-t", LAYERED, str(ctx), env={"DOCKER_BUILDKIT": "0"})
        assert r.returncode == 0, r.stderr
        yield peer
    finally:
        problems = peer.stop()
        assert not problems, problems
        assert not peer.data_root.exists() and not peer.exec_root.exists()


def _id(docker, ref):
    r = docker("image", "inspect", "-f", "{{.Id}}", ref)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _load(docker, archive: bytes):
    """docker load from bytes; stdout and stderr decoded."""
    r = docker("load", input=archive)
    r.stdout, r.stderr = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    return r


def _save(docker, *refs) -> bytes:
    r = docker("save", *refs, text=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_image_saved_by_dockerd_loads_and_runs_in_dockweb(engine, dockerd):
    archive = _save(dockerd.docker, LAYERED)
    r = _load(engine.docker, archive)
    assert r.returncode == 0, r.stderr
    assert f"Loaded image: {LAYERED}" in r.stdout
    try:
        # Same config bytes, same image id: nothing was rewritten on the way.
        assert _id(engine.docker, LAYERED) == _id(dockerd.docker, LAYERED)
        run = engine.docker("run", "--rm", LAYERED)
        assert run.returncode == 0 and run.stdout == "hello from dockerd\n", run.stderr
        # The second RUN's whiteouts hold: /bin/vi and /data/one are gone, /data/two is there.
        check = engine.docker("run", "--rm", LAYERED, "sh", "-c",
                              "test ! -e /bin/vi && test ! -e /data/one && cat /data/two && echo $GREETING")
        assert check.returncode == 0 and check.stdout == "two\nhi\n", check.stdout + check.stderr
    finally:
        engine.docker("rmi", LAYERED)


def test_image_saved_by_dockweb_loads_and_runs_in_dockerd(engine, dockerd):
    # A multi-layer image made by dockerd goes dockerd -> dockweb -> (save) -> dockerd under a new name.
    assert _load(engine.docker, _save(dockerd.docker, LAYERED)).returncode == 0
    assert engine.docker("tag", LAYERED, "rt-from-dockweb:1").returncode == 0
    try:
        archive = _save(engine.docker, "rt-from-dockweb:1", BUSYBOX)
        r = _load(dockerd.docker, archive)
        assert r.returncode == 0, r.stderr
        assert "Loaded image: rt-from-dockweb:1" in r.stdout
        assert _id(dockerd.docker, "rt-from-dockweb:1") == _id(engine.docker, LAYERED)
        # dockweb's own busybox import, carried over byte for byte.
        assert _id(dockerd.docker, BUSYBOX) == _id(engine.docker, BUSYBOX)
        run = dockerd.docker("run", "--rm", "--network", "none", "rt-from-dockweb:1")
        assert run.returncode == 0 and run.stdout == "hello from dockerd\n", run.stderr
        sh = dockerd.docker("run", "--rm", "--network", "none", BUSYBOX, "sh", "-c", "echo ok; test ! -e /data")
        assert sh.returncode == 0 and sh.stdout == "ok\n", sh.stderr
    finally:
        dockerd.docker("rmi", "rt-from-dockweb:1")
        engine.docker("rmi", "rt-from-dockweb:1", LAYERED)


def _members(archive: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        for m in tf.getmembers():
            data = tf.extractfile(m).read() if m.isfile() else b""
            out[m.name] = (m, data)
    return out


def _pack(members: dict[str, tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, (info, data) in members.items():
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def test_oci_layout_alone_loads_into_dockweb(engine, dockerd):
    # dockerd 20.10 writes only the legacy manifest.json; dockweb's archive carries both forms. Keep the OCI
    # layout (oci-layout, index.json, blobs) alone and load that.
    assert _load(engine.docker, _save(dockerd.docker, LAYERED)).returncode == 0
    expected = _id(engine.docker, LAYERED)
    members = _members(_save(engine.docker, LAYERED))
    assert "oci-layout" in members and "index.json" in members
    oci = {n: m for n, m in members.items() if n not in ("manifest.json", "repositories")}
    assert engine.docker("rmi", LAYERED).returncode == 0
    try:
        r = _load(engine.docker, _pack(oci))
        assert r.returncode == 0, r.stderr
        assert _id(engine.docker, LAYERED) == expected
        run = engine.docker("run", "--rm", LAYERED)
        assert run.stdout == "hello from dockerd\n", run.stderr
    finally:
        engine.docker("rmi", LAYERED)


def _store_listing(engine) -> dict:
    """What the image store holds: images, blobs, unpacked layers, image records, and its tmp (must be empty)."""
    root = Path(engine.root) / "images"
    return {"images": sorted(engine.docker("images", "-a", "-q", "--no-trunc").stdout.split()),
            **{sub: sorted(os.listdir(root / sub)) for sub in ("blobs/sha256", "layers", "imagedb", "tmp")}}


def test_tampered_archive_is_refused_and_stores_nothing(engine, dockerd):
    members = _members(_save(dockerd.docker, LAYERED))
    manifest = json.loads(members["manifest.json"][1])[0]
    top = manifest["Layers"][-1]
    info, layer = members[top]
    # Change one byte of a file's content inside the top layer: the tar stays valid, its digest does not match.
    pos = layer.index(b"two\n")
    members[top] = (info, layer[:pos] + b"TWO\n" + layer[pos + 4:])
    before = _store_listing(engine)
    r = _load(engine.docker, _pack(members))
    assert r.returncode != 0
    assert "invalid diffID for layer: expected 'sha256:" in r.stderr, r.stderr
    assert _store_listing(engine) == before
    assert before["tmp"] == []
    assert engine.docker("image", "inspect", LAYERED).returncode != 0
