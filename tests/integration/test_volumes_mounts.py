"""Mounts on containers with Docker's semantics: -v, --mount, --tmpfs, VOLUME, --volumes-from, copy-up, rm -v."""

import io
import json
import os
import tarfile

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


def _mounts(engine, name):
    out = engine.docker("inspect", "-f", "{{json .Mounts}}", name)
    assert out.returncode == 0, out.stderr
    return sorted(json.loads(out.stdout), key=lambda m: m["Destination"])


def _volume_path(engine, name):
    return str(engine.root / "volumes" / name / "_data")


def test_run_with_a_missing_named_volume_creates_it_and_inspect_shows_the_mount(engine):
    d = engine.docker
    try:
        out = d("run", "--name", "nv", "-v", "autovol:/data", "busybox", "sh", "-c", "echo hi > /data/f")
        assert out.returncode == 0, out.stderr
        assert "autovol" in d("volume", "ls", "-q").stdout.split()
        assert _mounts(engine, "nv") == [{
            "Type": "volume", "Name": "autovol", "Source": _volume_path(engine, "autovol"), "Destination": "/data",
            "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
        with open(os.path.join(_volume_path(engine, "autovol"), "f")) as f:
            assert f.read() == "hi\n"
    finally:
        d("rm", "-f", "nv")
        d("volume", "rm", "-f", "autovol")


def test_read_only_named_volume_and_bind_mount_refuse_writes(engine, tmp_path):
    d = engine.docker
    (tmp_path / "host.txt").write_text("from host\n")
    try:
        out = d("run", "--name", "rov", "-v", "rovol:/ro:ro", "-v", f"{tmp_path}:/host:ro,z", "busybox", "sh", "-c",
                "cat /host/host.txt; touch /ro/x 2>&1; touch /host/y 2>&1; true")
        assert out.returncode == 0, out.stderr
        assert "from host" in out.stdout
        assert out.stdout.count("Read-only file system") == 2
        assert _mounts(engine, "rov") == [
            {"Type": "bind", "Source": str(tmp_path), "Destination": "/host", "Mode": "ro,z", "RW": False,
             "Propagation": "rprivate"},
            {"Type": "volume", "Name": "rovol", "Source": _volume_path(engine, "rovol"), "Destination": "/ro",
             "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""},
        ]
    finally:
        d("rm", "-f", "rov")
        d("volume", "rm", "-f", "rovol")


def test_bind_mount_of_a_missing_host_directory_creates_it_with_dash_v_but_not_with_mount(engine, tmp_path):
    d = engine.docker
    missing = tmp_path / "made" / "here"
    out = d("run", "--rm", "-v", f"{missing}:/m", "busybox", "sh", "-c", "echo ok > /m/f")
    assert out.returncode == 0, out.stderr
    assert (missing / "f").read_text() == "ok\n"
    out = d("run", "--rm", "--mount", f"type=bind,src={tmp_path}/absent,dst=/m", "busybox", "true")
    assert out.returncode != 0
    assert f"bind source path does not exist: {tmp_path}/absent" in out.stderr


def test_mount_flag_options_readonly_nocopy_tmpfs_and_propagation(engine, tmp_path):
    d = engine.docker
    try:
        out = d("run", "--name", "mopts",
                "--mount", "type=volume,src=mvol,dst=/etc,volume-nocopy",
                "--mount", "type=volume,src=mro,dst=/mro,readonly",
                "--mount", "type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770",
                "--mount", f"type=bind,src={tmp_path},dst=/b,bind-propagation=rslave",
                "busybox", "sh", "-c",
                "ls -A /etc | wc -l; touch /mro/x 2>&1; stat -c %a /scratch; df -k /scratch | tail -1; "
                "grep ' /b ' /proc/self/mountinfo")
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].strip() == "3"       # nocopy: only the hostname/hosts/resolv.conf mount points
        assert "Read-only file system" in lines[1]
        assert lines[2] == "1770"
        assert lines[3].split()[1] == "1024"
        assert " /b " in lines[4]
        # rslave reaches the runtime (whether "master:" shows depends on the host's / being shared).
        cid = d("inspect", "-f", "{{.Id}}", "mopts").stdout.strip()
        spec = json.loads((engine.root / "containers" / cid / "config.json").read_text())
        (bind,) = [m for m in spec["mounts"] if m["destination"] == "/b"]
        assert bind["options"] == ["rbind", "rslave"]
        mounts = {m["Destination"]: m for m in _mounts(engine, "mopts")}
        assert mounts["/mro"]["RW"] is False and mounts["/mro"]["Mode"] == "z"
        assert mounts["/scratch"] == {"Type": "tmpfs", "Source": "", "Destination": "/scratch", "Mode": "",
                                      "RW": True, "Propagation": ""}
        assert mounts["/b"]["Propagation"] == "rslave"
    finally:
        d("rm", "-f", "mopts")
        d("volume", "rm", "-f", "mvol", "mro")


def test_tmpfs_flag_mounts_a_tmpfs_that_inspect_does_not_list(engine):
    out = engine.docker("run", "--name", "tf", "--tmpfs", "/run:size=2m,mode=700", "busybox", "sh", "-c",
                        "grep ' /run ' /proc/mounts; stat -c %a /run")
    try:
        assert out.returncode == 0, out.stderr
        line, mode = out.stdout.splitlines()
        assert line.split()[2] == "tmpfs" and "size=2048k" in line
        assert mode == "700"
        assert _mounts(engine, "tf") == []
    finally:
        engine.docker("rm", "-f", "tf")


def test_copy_up_fills_a_new_volume_with_the_image_directory_and_its_ownership(engine, tmp_path):
    d = engine.docker
    # An image whose /srv/app is owned by 1234:5678 with mode 0750 and holds a file.
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, kind, mode, data in (("srv", tarfile.DIRTYPE, 0o755, b""), ("srv/app", tarfile.DIRTYPE, 0o750, b""),
                                       ("srv/app/conf", tarfile.REGTYPE, 0o640, b"setting=1\n")):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid, ti.size = kind, mode, 1234, 5678, len(data)
            tar.addfile(ti, io.BytesIO(data) if data else None)
    (tmp_path / "layer.tar").write_bytes(layer.getvalue())
    out = d("import", "--change", "VOLUME /srv/app", str(tmp_path / "layer.tar"), "copyup:1")
    assert out.returncode == 0, out.stderr
    # The imported image has no shell: the test reads the volume's directory on the host.
    try:
        assert d("create", "--name", "cu", "-v", "cuvol:/srv/app", "copyup:1", "/none").returncode == 0
        data = _volume_path(engine, "cuvol")
        st = os.stat(data)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1234, 5678, 0o750)
        assert open(os.path.join(data, "conf")).read() == "setting=1\n"
        fst = os.stat(os.path.join(data, "conf"))
        assert (fst.st_uid, fst.st_gid, fst.st_mode & 0o7777) == (1234, 5678, 0o640)
        # Once the volume has content, a later container does not copy again over the user's changes.
        os.unlink(os.path.join(data, "conf"))
        with open(os.path.join(data, "mine"), "w") as f:
            f.write("mine")
        assert d("create", "--name", "cu2", "-v", "cuvol:/srv/app", "copyup:1", "/none").returncode == 0
        assert sorted(os.listdir(data)) == ["mine"]
        # nocopy leaves a new volume empty.
        assert d("create", "--name", "cu3", "-v", "cuempty:/srv/app:nocopy", "copyup:1", "/none").returncode == 0
        assert os.listdir(_volume_path(engine, "cuempty")) == []
    finally:
        d("rm", "-f", "cu", "cu2", "cu3")
        d("volume", "rm", "-f", "cuvol", "cuempty")
        d("rmi", "copyup:1")


def test_image_volume_creates_an_anonymous_volume_with_the_image_content(engine, tmp_path):
    d = engine.docker
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        ti = tarfile.TarInfo("data")
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(ti)
        ti = tarfile.TarInfo("data/seed.txt")
        ti.size = 5
        tar.addfile(ti, io.BytesIO(b"seed\n"))
    (tmp_path / "l.tar").write_bytes(layer.getvalue())
    assert d("import", "--change", "VOLUME /data", str(tmp_path / "l.tar"), "withvol:1").returncode == 0
    try:
        cid = d("create", "--name", "iv", "withvol:1", "/none").stdout.strip()
        assert cid
        (m,) = _mounts(engine, "iv")
        assert m["Type"] == "volume" and m["Destination"] == "/data" and m["Mode"] == "" and m["RW"] is True
        assert len(m["Name"]) == 64
        assert open(os.path.join(m["Source"], "seed.txt")).read() == "seed\n"
        assert json.loads(d("volume", "inspect", m["Name"]).stdout)[0]["Labels"] == {
            "com.docker.volume.anonymous": ""}
        # A bind or named volume at the same path replaces the image's anonymous volume.
        d("create", "--name", "iv2", "-v", "ivnamed:/data", "withvol:1", "/none")
        assert [x["Name"] for x in _mounts(engine, "iv2")] == ["ivnamed"]
        anon = m["Name"]
        assert d("rm", "-v", "iv").returncode == 0
        assert anon not in d("volume", "ls", "-q").stdout.split()
        assert d("rm", "-v", "iv2").returncode == 0
        assert "ivnamed" in d("volume", "ls", "-q").stdout.split()    # rm -v keeps named volumes
    finally:
        d("rm", "-f", "iv", "iv2")
        d("volume", "rm", "-f", "ivnamed")
        d("rmi", "withvol:1")


def test_volumes_from_read_only_shares_the_volume_read_only(engine):
    d = engine.docker
    try:
        assert d("run", "--name", "vf-src", "-v", "/shared", "busybox", "sh", "-c",
                 "echo v > /shared/f").returncode == 0
        out = d("run", "--name", "vf-ro", "--volumes-from", "vf-src:ro", "busybox", "sh", "-c",
                "cat /shared/f; touch /shared/g 2>&1; true")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("v\n") and "Read-only file system" in out.stdout
        src, ro = _mounts(engine, "vf-src")[0], _mounts(engine, "vf-ro")[0]
        assert ro["Name"] == src["Name"] and ro["Source"] == src["Source"]
        assert ro["RW"] is False and src["RW"] is True
        out = d("run", "--rm", "--volumes-from", "nosuchcontainer", "busybox", "true")
        assert out.returncode != 0 and "No such container: nosuchcontainer" in out.stderr
        # The anonymous volume is in use by both: rm -v of one keeps it for the other.
        vol = src["Name"]
        d("rm", "-v", "vf-ro")
        assert vol in d("volume", "ls", "-q").stdout.split()
    finally:
        d("rm", "-f", "-v", "vf-ro", "vf-src")


def test_tmpfs_driver_volume_is_mounted_on_use_shared_and_unmounted_at_rm(engine):
    d = engine.docker
    try:
        assert d("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=2m,uid=1000",
                 "tmpvol").returncode == 0
        path = _volume_path(engine, "tmpvol")
        assert not _is_mount(path)
        out = d("run", "--rm", "-v", "tmpvol:/t", "busybox", "sh", "-c",
                "df -k /t | tail -1; stat -c %u /t; echo kept > /t/f")
        assert out.returncode == 0, out.stderr
        df, owner = out.stdout.splitlines()
        assert df.split()[0] == "tmpfs" and df.split()[1] == "2048"
        assert owner == "1000"
        assert _is_mount(path)
        out = d("run", "--rm", "-v", "tmpvol:/t", "busybox", "cat", "/t/f")
        assert out.stdout == "kept\n"
        assert d("volume", "rm", "tmpvol").returncode == 0
        assert not _is_mount(path)
        assert not os.path.exists(path)
    finally:
        d("volume", "rm", "-f", "tmpvol")


def test_bind_driver_volume_binds_the_device_directory(engine, tmp_path):
    d = engine.docker
    (tmp_path / "existing").write_text("present\n")
    try:
        assert d("volume", "create", "--driver", "local", "-o", "type=none", "-o", f"device={tmp_path}",
                 "-o", "o=bind", "bindvol").returncode == 0
        out = d("run", "--rm", "-v", "bindvol:/b", "busybox", "sh", "-c", "cat /b/existing; echo new > /b/new")
        assert out.returncode == 0, out.stderr
        assert out.stdout == "present\n"
        assert (tmp_path / "new").read_text() == "new\n"
        assert d("volume", "rm", "bindvol").returncode == 0
        # Removing the volume unmounts it and never deletes the bound directory's files.
        assert (tmp_path / "existing").exists() and (tmp_path / "new").exists()
    finally:
        d("volume", "rm", "-f", "bindvol")


def test_stale_tmpfs_volume_mount_is_cleaned_at_daemon_start(engine_daemon):
    d = engine_daemon.docker
    assert d("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "stalevol").returncode == 0
    assert d("run", "--rm", "-v", "stalevol:/t", "busybox", "true").returncode == 0
    path = _volume_path(engine_daemon, "stalevol")
    assert _is_mount(path)
    engine_daemon.restart()
    assert not _is_mount(path)
    out = d("run", "--rm", "-v", "stalevol:/t", "busybox", "sh", "-c", "df /t | tail -1")
    assert out.returncode == 0 and out.stdout.startswith("tmpfs")


def _is_mount(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)
