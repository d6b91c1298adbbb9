"""Volumes, mounts and archives through docker-py 7.1.0."""

import io
import tarfile

import docker
import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


def test_docker_py_volume_lifecycle(engine):
    client = engine.client()
    v = client.volumes.create("pyvol", labels={"via": "docker-py"})
    try:
        assert v.name == "pyvol"
        assert client.volumes.get("pyvol").attrs["Labels"] == {"via": "docker-py"}
        assert "pyvol" in [x.name for x in client.volumes.list(filters={"dangling": True})]
        assert [x.name for x in client.volumes.list(filters={"label": "via=docker-py"})] == ["pyvol"]
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("nosuch-pyvol")
    finally:
        v.remove()
    assert "pyvol" not in [x.name for x in client.volumes.list()]


def test_docker_py_run_with_volumes_dict_and_archive_round_trip(engine):
    client = engine.client()
    c = client.containers.run("busybox", "sleep 600", detach=True, name="pybox",
                              volumes={"pydata": {"bind": "/data", "mode": "rw"}})
    try:
        assert c.attrs["Mounts"][0]["Name"] == "pydata"
        payload = io.BytesIO()
        with tarfile.open(fileobj=payload, mode="w") as tar:
            ti = tarfile.TarInfo("note.txt")
            ti.size = 6
            tar.addfile(ti, io.BytesIO(b"py cp\n"))
        assert c.put_archive("/data", payload.getvalue()) is True
        assert c.exec_run("cat /data/note.txt").output == b"py cp\n"
        stream, stat = c.get_archive("/data/note.txt")
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            assert tar.getnames() == ["note.txt"]
            assert tar.extractfile("note.txt").read() == b"py cp\n"
        assert stat["name"] == "note.txt" and stat["size"] == 6
        with pytest.raises(docker.errors.NotFound):
            c.get_archive("/nope")
        with pytest.raises(docker.errors.APIError) as err:
            client.volumes.get("pydata").remove()
        assert err.value.status_code == 409
    finally:
        c.remove(force=True, v=True)
        client.volumes.get("pydata").remove()


def test_docker_py_volume_prune_reports_deleted_and_space(engine):
    client = engine.client()
    anon = client.volumes.create()
    client.volumes.create("py-prune-named")
    try:
        result = client.volumes.prune()
        assert anon.name in (result["VolumesDeleted"] or [])
        assert "py-prune-named" not in (result["VolumesDeleted"] or [])
        result = client.volumes.prune(filters={"all": True})
        assert "py-prune-named" in result["VolumesDeleted"]
    finally:
        for name in (anon.name, "py-prune-named"):
            try:
                client.volumes.get(name).remove()
            except docker.errors.NotFound:
                pass
