"""docker volume create/ls/inspect/rm/prune and system df through the real docker CLI."""

import json
import os
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


def _inspect(engine, name):
    out = engine.docker("volume", "inspect", name)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]


def _names(engine, *args):
    return engine.docker("volume", "ls", "-q", *args).stdout.split()


def test_volume_create_with_labels_shows_in_inspect(engine):
    d = engine.docker
    try:
        assert d("volume", "create", "--label", "team=blue", "labelled").stdout.strip() == "labelled"
        doc = _inspect(engine, "labelled")
        assert doc["Name"] == "labelled"
        assert doc["Driver"] == "local"
        assert doc["Scope"] == "local"
        assert doc["Labels"] == {"team": "blue"}
        assert doc["Mountpoint"] == str(engine.root / "volumes" / "labelled" / "_data")
        assert os.path.isdir(doc["Mountpoint"])
        assert doc["CreatedAt"].endswith("Z")
        # Creating an existing name returns the existing volume.
        assert d("volume", "create", "labelled").returncode == 0
        assert _inspect(engine, "labelled")["Labels"] == {"team": "blue"}
    finally:
        d("volume", "rm", "labelled")


def test_volume_create_without_a_name_makes_an_anonymous_volume(engine):
    d = engine.docker
    name = d("volume", "create").stdout.strip()
    try:
        assert len(name) == 64 and all(c in "0123456789abcdef" for c in name)
        assert _inspect(engine, name)["Labels"] == {"com.docker.volume.anonymous": ""}
    finally:
        d("volume", "rm", name)


def test_volume_create_refuses_bad_names_and_options(engine):
    d = engine.docker
    out = d("volume", "create", "bad name")
    assert out.returncode != 0 and "includes invalid characters for a local volume name" in out.stderr
    out = d("volume", "create", "-o", "colour=red", "badopt")
    assert out.returncode != 0 and 'invalid option: "colour"' in out.stderr
    out = d("volume", "create", "-o", "type=tmpfs", "nodevice")
    assert out.returncode != 0 and 'missing required option: "device"' in out.stderr
    out = d("volume", "create", "-d", "nosuchdriver", "plug")
    assert out.returncode != 0 and 'plugin "nosuchdriver" not found' in out.stderr


def test_volume_inspect_unknown_is_not_found(engine):
    out = engine.docker("volume", "inspect", "nosuchvolume")
    assert out.returncode != 0
    assert "get nosuchvolume: no such volume" in out.stderr


def test_volume_ls_filters_by_dangling_name_label_and_driver(engine):
    d = engine.docker
    try:
        d("volume", "create", "--label", "env=prod", "flt-used")
        d("volume", "create", "--label", "env=dev", "flt-free")
        assert d("create", "--name", "flt-user", "-v", "flt-used:/data", "busybox", "true").returncode == 0
        dangling = _names(engine, "-f", "dangling=true")
        assert "flt-free" in dangling and "flt-used" not in dangling
        assert "flt-used" in _names(engine, "-f", "dangling=false")
        assert sorted(_names(engine, "-f", "name=flt-")) == ["flt-free", "flt-used"]
        assert _names(engine, "-f", "label=env=prod") == ["flt-used"]
        assert sorted(_names(engine, "-f", "label=env", "-f", "name=flt")) == ["flt-free", "flt-used"]
        assert "flt-free" in _names(engine, "-f", "driver=local")
        assert _names(engine, "-f", "driver=other") == []
        out = d("volume", "ls", "-f", "colour=red")
        assert out.returncode != 0 and "invalid filter 'colour'" in out.stderr
    finally:
        d("rm", "-f", "flt-user")
        d("volume", "rm", "flt-used", "flt-free")


def test_volume_rm_of_a_volume_in_use_is_a_conflict_naming_the_container(engine):
    d = engine.docker
    try:
        cid = d("create", "--name", "holder", "-v", "held:/data", "busybox", "true").stdout.strip()
        out = d("volume", "rm", "held")
        assert out.returncode != 0
        assert f"remove held: volume is in use - [{cid}]" in out.stderr
        out = d("volume", "rm", "-f", "held")       # force does not take a volume from a container
        assert out.returncode != 0 and "volume is in use" in out.stderr
        d("rm", "holder")
        assert d("volume", "rm", "held").returncode == 0
        assert "held" not in _names(engine)
    finally:
        d("rm", "-f", "holder")
        d("volume", "rm", "-f", "held")


def test_volume_rm_force_of_a_missing_volume_succeeds(engine):
    assert engine.docker("volume", "rm", "-f", "never-was").returncode == 0
    out = engine.docker("volume", "rm", "never-was")
    assert out.returncode != 0 and "get never-was: no such volume" in out.stderr


def test_volume_prune_removes_anonymous_unused_volumes_unless_all(engine):
    d = engine.docker
    try:
        anon = d("volume", "create").stdout.strip()
        d("volume", "create", "pr-named")
        d("volume", "create", "pr-kept")
        d("create", "--name", "pr-user", "-v", "pr-kept:/k", "busybox", "true")
        with open(os.path.join(_inspect(engine, anon)["Mountpoint"], "blob"), "wb") as f:
            f.write(b"x" * 1000)
        out = d("volume", "prune", "-f")
        assert out.returncode == 0, out.stderr
        assert anon in out.stdout and "pr-named" not in out.stdout
        assert "Total reclaimed space: 1kB" in out.stdout
        names = _names(engine)
        assert anon not in names and "pr-named" in names
        out = d("volume", "prune", "-a", "-f")
        assert out.returncode == 0, out.stderr
        names = _names(engine)
        assert "pr-named" not in names and "pr-kept" in names
    finally:
        d("rm", "-f", "pr-user")
        d("volume", "rm", "-f", "pr-named", "pr-kept")


def test_volume_prune_honours_label_filters(engine):
    d = engine.docker
    try:
        d("volume", "create", "--label", "keep=yes", "pl-keep")
        d("volume", "create", "pl-drop")
        out = d("volume", "prune", "-a", "-f", "--filter", "label!=keep")
        assert out.returncode == 0, out.stderr
        names = _names(engine)
        assert "pl-keep" in names and "pl-drop" not in names
    finally:
        d("volume", "rm", "-f", "pl-keep", "pl-drop")


def test_system_df_reports_volume_size_and_links(engine):
    d = engine.docker
    try:
        assert d("run", "--name", "df-user", "-v", "dfvol:/data", "busybox", "sh", "-c",
                 "head -c 5000 /dev/zero > /data/f").returncode == 0
        out = d("system", "df", "-v", "--format", "{{json .Volumes}}")
        assert out.returncode == 0, out.stderr
        vols = {v["Name"]: v for v in json.loads(out.stdout)}
        assert vols["dfvol"]["Links"] == "1"
        assert vols["dfvol"]["Size"] == "5kB"
    finally:
        d("rm", "-f", "df-user")
        d("volume", "rm", "-f", "dfvol")


def test_volume_events_for_create_mount_unmount_destroy_and_prune(engine):
    d = engine.docker
    since = str(int(time.time()) - 1)
    try:
        assert d("run", "--name", "ev-user", "-v", "evvol:/data", "busybox", "true").returncode == 0
        d("rm", "ev-user")
        d("volume", "rm", "evvol")
        d("volume", "prune", "-f")
    finally:
        d("rm", "-f", "ev-user")
        d("volume", "rm", "-f", "evvol")
    until = str(int(time.time()) + 1)
    out = d("events", "--since", since, "--until", until, "--filter", "type=volume",
            "--format", "{{.Action}} {{.Actor.ID}}")
    lines = out.stdout.splitlines()
    for expected in ("create evvol", "mount evvol", "unmount evvol", "destroy evvol"):
        assert expected in lines, (expected, lines)
    assert any(line.startswith("prune") for line in lines)
    assert lines.index("create evvol") < lines.index("mount evvol") < lines.index("unmount evvol") \
        < lines.index("destroy evvol")
