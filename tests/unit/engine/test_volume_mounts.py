"""Mount point resolution (volumes-from, binds, mounts, image VOLUMEs), inspect's Mounts shape, docker cp helpers."""

import pytest

from engine.config import EngineConfig
from engine.containers import spec as specmod
from engine.containers.inspect import mounts_doc
from engine.containers.model import Container
from engine.errors import InvalidParameter, NoSuchContainer
from engine.events import EventLog
from engine.volumes import cp
from engine.volumes.mounts import ContainerMount, find_mount, resolve
from engine.volumes.store import VolumeStore


@pytest.fixture
def store(tmp_path):
    cfg = EngineConfig(root=tmp_path / "root")
    cfg.ensure_dirs()
    return VolumeStore(cfg, EventLog())


def _opts(host_config: dict, volumes: dict | None = None):
    body = {"Image": "busybox", "HostConfig": host_config}
    if volumes:
        body["Volumes"] = volumes
    opts = specmod.parse_create_body(body, None)
    proc = specmod.merge_image_config(opts, {"config": {"Cmd": ["sh"], "Volumes": {"/img": {}}}})
    return opts, proc


def _no_container(ref):
    raise NoSuchContainer(ref)


def test_binds_named_volume_is_created_with_mode_z_and_image_volume_is_anonymous(store, tmp_path):
    opts, proc = _opts({"Binds": ["named:/data", f"{tmp_path}:/host:ro"]})
    res = resolve(opts, proc, store, _no_container)
    by_dest = {m.destination: m for m in res.mounts}
    assert by_dest["/data"].to_api() == {"Type": "volume", "Name": "named",
                                         "Source": str(store.dir / "named" / "_data"), "Destination": "/data",
                                         "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}
    assert by_dest["/host"].to_api() == {"Type": "bind", "Source": str(tmp_path), "Destination": "/host",
                                         "Mode": "ro", "RW": False, "Propagation": "rprivate"}
    img = by_dest["/img"]
    assert img.anonymous and img.copy_data and img.mode == "" and store.get(img.name).anonymous
    assert sorted(res.created) == sorted(["named", img.name])


def test_a_bind_over_an_image_volume_replaces_it(store, tmp_path):
    opts, proc = _opts({"Binds": [f"{tmp_path}:/img"]})
    res = resolve(opts, proc, store, _no_container)
    assert [(m.type, m.destination) for m in res.mounts] == [("bind", "/img")]
    assert store.all() == []


def test_tmpfs_destination_suppresses_the_image_volume(store):
    opts, proc = _opts({"Tmpfs": {"/img": ""}})
    assert resolve(opts, proc, store, _no_container).mounts == []


def test_volumes_from_copies_mounts_narrowing_to_read_only_and_never_copying(store):
    theirs = [ContainerMount("volume", "/dbdata", "/v/x/_data", "x", "local", "", True, copy_data=True,
                             anonymous=True)]
    opts, proc = _opts({"VolumesFrom": ["dbstore:ro"]})
    res = resolve(opts, proc, store, lambda ref: theirs if ref == "dbstore" else _no_container(ref))
    vf = [m for m in res.mounts if m.destination == "/dbdata"][0]
    assert (vf.name, vf.source, vf.rw, vf.copy_data, vf.mode) == ("x", "/v/x/_data", False, False, "")


def test_volumes_from_an_unknown_container_is_a_bad_parameter(store):
    opts, proc = _opts({"VolumesFrom": ["ghost"]})
    with pytest.raises(InvalidParameter, match="No such container: ghost"):
        resolve(opts, proc, store, _no_container)


def test_mount_bind_source_must_exist(store, tmp_path):
    opts, proc = _opts({"Mounts": [{"Type": "bind", "Source": str(tmp_path / "absent"), "Target": "/x"}]})
    with pytest.raises(InvalidParameter, match="bind source path does not exist"):
        resolve(opts, proc, store, _no_container)


def test_a_failed_resolution_removes_the_anonymous_volumes_it_made(store, tmp_path):
    opts, proc = _opts({"Mounts": [{"Type": "volume", "Target": "/anon"},
                                   {"Type": "bind", "Source": str(tmp_path / "absent"), "Target": "/x"}]})
    with pytest.raises(InvalidParameter):
        resolve(opts, proc, store, _no_container)
    assert store.all() == []


def test_mount_volume_options_reach_the_volume(store):
    opts, proc = _opts({"Mounts": [{"Type": "volume", "Source": "lv", "Target": "/l", "ReadOnly": True,
                                    "VolumeOptions": {"NoCopy": True, "Labels": {"k": "v"}}}]})
    (m,) = [m for m in resolve(opts, proc, store, _no_container).mounts if m.destination == "/l"]
    assert (m.rw, m.copy_data, m.mode) == (False, False, "z")
    assert store.get("lv").labels == {"k": "v"}
    point = m.to_point()
    assert (point.source, point.read_only, point.type) == (m.source, True, "bind")


def test_find_mount_picks_the_innermost_destination():
    outer = ContainerMount("volume", "/data", "/s1")
    inner = ContainerMount("bind", "/data/in", "/s2")
    assert find_mount([outer, inner], "/data/in/x") is inner
    assert find_mount([outer, inner], "/data/inx") is outer
    assert find_mount([outer, inner], "/etc") is None


def test_inspect_mounts_doc_shapes_records_with_omitempty_name_and_driver(tmp_path):
    c = Container("id", "n", 0, "busybox", "sha256:x", "sh", [], {}, {}, str(tmp_path),
                  mounts=[ContainerMount("bind", "/b", "/host", mode="", rw=True, propagation="rprivate").record(),
                          ContainerMount("volume", "/v", "/vs", "vol", "local", "z").record()])
    assert mounts_doc(c) == [
        {"Type": "bind", "Source": "/host", "Destination": "/b", "Mode": "", "RW": True, "Propagation": "rprivate"},
        {"Type": "volume", "Name": "vol", "Source": "/vs", "Destination": "/v", "Driver": "local", "Mode": "z",
         "RW": True, "Propagation": ""},
    ]


def test_go_file_mode_matches_dockers_stat_header_values():
    assert cp.go_file_mode(0o040755) == 2147484141
    assert cp.go_file_mode(0o100644) == 420
    assert cp.go_file_mode(0o120777) == (1 << 27) | 0o777
    assert cp.go_file_mode(0o104755) == (1 << 23) | 0o755


def test_container_path_is_absolute_and_keeps_a_trailing_separator_or_dot():
    assert cp.container_path("etc/hostname") == "/etc/hostname"
    assert cp.container_path("/data/") == "/data/"
    assert cp.container_path("/data/.") == "/data/."
    assert cp.container_path("/../../etc") == "/etc"
    with pytest.raises(InvalidParameter):
        cp.container_path("")


def test_go_time_is_rfc3339_nano_trimmed():
    assert cp.go_time(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert cp.go_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
