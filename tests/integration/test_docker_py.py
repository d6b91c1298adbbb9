"""docker-py drives the engine: run, logs, exec, wait, remove."""

import docker
import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


def test_docker_py_run_returns_output(engine):
    client = engine.client()
    assert client.containers.run("busybox", ["echo", "from-py"], remove=True) == b"from-py\n"


def test_docker_py_detached_exec_and_wait(engine):
    client = engine.client()
    c = client.containers.run("busybox", ["sleep", "100"], detach=True, name="pyc")
    try:
        c.reload()
        assert c.status == "running"
        code, out = c.exec_run(["sh", "-c", "echo hi; exit 2"])
        assert (code, out) == (2, b"hi\n")
        c.kill()
        assert c.wait()["StatusCode"] == 137
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pyc")


def test_docker_py_lists_and_filters(engine):
    client = engine.client()
    c = client.containers.create("busybox", "true", labels={"team": "a"}, name="labelled")
    try:
        assert [x.name for x in client.containers.list(all=True, filters={"label": "team=a"})] == ["labelled"]
        assert client.containers.list(all=True, filters={"label": "team=b"}) == []
    finally:
        c.remove()
