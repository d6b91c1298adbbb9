"""docker diff, docker commit (with -c changes) and docker export of a container, through the real CLI."""

import io
import json
import tarfile

import pytest

from tests.integration.build_helpers import history

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]

SCRIPT = "echo hi > /tmp/new && rm /etc/group && mkdir /d && echo more >> /etc/passwd"


@pytest.fixture
def changed(engine):
    name = "changed-ctr"
    out = engine.docker("run", "--name", name, "busybox", "sh", "-c", SCRIPT, text=True)
    assert out.returncode == 0, out.stderr
    yield name
    engine.docker("rm", "-f", name)


def test_diff_lists_added_changed_and_deleted_paths_without_runtime_files(engine, changed):
    out = engine.docker("diff", changed, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["A /d", "C /etc", "D /etc/group", "C /etc/passwd", "C /tmp", "A /tmp/new"]


def test_diff_of_an_unchanged_container_is_empty(engine):
    engine.docker("create", "--name", "unchanged-ctr", "busybox", "true")
    try:
        out = engine.docker("diff", "unchanged-ctr", text=True)
        assert out.returncode == 0 and out.stdout == ""
    finally:
        engine.docker("rm", "-f", "unchanged-ctr")


def test_commit_with_changes_makes_a_runnable_image(engine, changed):
    out = engine.docker("commit", "-c", 'CMD ["cat", "/tmp/new"]', "-c", "ENV COMMITTED=yes", "-m", "a message",
                        "-a", "tester", changed, "committed:1", text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("sha256:")
    assert engine.docker("run", "--rm", "committed:1", text=True).stdout == "hi\n"
    gone = engine.docker("run", "--rm", "committed:1", "ls", "/etc/group", text=True)
    assert gone.returncode != 0
    doc = json.loads(engine.docker("image", "inspect", "committed:1", text=True).stdout)[0]
    assert doc["Comment"] == "a message" and doc["Author"] == "tester"
    assert "COMMITTED=yes" in doc["Config"]["Env"]
    assert len(doc["RootFS"]["Layers"]) == 2
    assert history(engine, "committed:1")[-1] == "sh -c " + SCRIPT


def test_commit_through_docker_py(engine, changed):
    client = engine.client()
    image = client.containers.get(changed).commit(repository="pycommit", tag="v", changes=["LABEL via=py"])
    assert image.labels == {"via": "py"}
    assert client.containers.run("pycommit:v", ["cat", "/tmp/new"], remove=True) == b"hi\n"


def test_export_is_the_merged_filesystem(engine, changed):
    out = engine.docker("export", changed, text=False)
    assert out.returncode == 0, out.stderr
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tf:
        names = set(tf.getnames())
        assert tf.extractfile("tmp/new").read() == b"hi\n"
        assert tf.extractfile("etc/passwd").read().endswith(b"more\n")
    assert {"bin/busybox", "bin/sh", "d", "etc/passwd"} <= names
    assert "etc/group" not in names
    assert not any(".wh." in n for n in names)
