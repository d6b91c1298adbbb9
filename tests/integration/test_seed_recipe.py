"""The seed's volume backup and restore recipe, run unchanged through the docker CLI, restores byte for byte."""

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


def test_seed_backup_and_restore_recipe_restores_the_volume_byte_for_byte(engine, tmp_path):
    d = engine.docker
    backup = tmp_path / "backup"
    backup.mkdir()
    try:
        out = d("run", "-v", "/dbdata", "--name", "dbstore", "busybox", "sh", "-c", "echo data > /dbdata/file")
        assert out.returncode == 0, out.stderr
        out = d("run", "--rm", "--volumes-from", "dbstore", "-v", f"{backup}:/backup", "busybox",
                "tar", "cvf", "/backup/backup.tar", "/dbdata")
        assert out.returncode == 0, out.stderr
        assert (backup / "backup.tar").stat().st_size > 0
        out = d("run", "-v", "/dbdata", "--name", "dbstore2", "busybox", "true")
        assert out.returncode == 0, out.stderr
        out = d("run", "--rm", "--volumes-from", "dbstore2", "-v", f"{backup}:/backup", "busybox", "sh", "-c",
                "cd /dbdata && tar xvf /backup/backup.tar --strip 1")
        assert out.returncode == 0, out.stderr

        def volume_file(name: str) -> bytes:
            src = d("inspect", "-f", '{{range .Mounts}}{{if eq .Destination "/dbdata"}}{{.Source}}{{end}}{{end}}',
                    name).stdout.strip()
            assert src, f"{name} has no /dbdata mount"
            with open(f"{src}/file", "rb") as f:
                return f.read()

        original, restored = volume_file("dbstore"), volume_file("dbstore2")
        assert original == b"data\n"
        assert restored == original
        # And the restored volume reads the same from inside a container.
        out = d("run", "--rm", "--volumes-from", "dbstore2", "busybox", "cat", "/dbdata/file")
        assert out.stdout == "data\n"
    finally:
        d("rm", "-f", "-v", "dbstore", "dbstore2")


def test_run_rm_with_volumes_from_keeps_the_data_containers_volume(engine, tmp_path):
    d = engine.docker
    try:
        assert d("run", "-v", "/keep", "--name", "keeper", "busybox", "sh", "-c", "echo x > /keep/f").returncode == 0
        vol = d("inspect", "-f", "{{(index .Mounts 0).Name}}", "keeper").stdout.strip()
        assert d("run", "--rm", "--volumes-from", "keeper", "busybox", "true").returncode == 0
        assert vol in d("volume", "ls", "-q").stdout.split()
    finally:
        d("rm", "-f", "-v", "keeper")
    assert vol not in d("volume", "ls", "-q").stdout.split()
