"""runtime.json for the supervisor, and the Config/HostConfig docker inspect shows."""

from engine.containers.spec import (
    build_runtime_json, inspect_config, inspect_host_config, merge_image_config, parse_create_body,
)


def opts_for(host=None, **config):
    return parse_create_body({"Image": "busybox", "Cmd": ["sh"], **config, "HostConfig": host or {}}, None, ncpu=2)


def test_runtime_json_uses_the_engine_log_limits():
    o = opts_for(OpenStdin=True, StdinOnce=True)
    assert build_runtime_json("id1", o, "/b/container-json.log", 10_000_000, 3) == {
        "log_path": "/b/container-json.log", "log_max_size": 10_000_000, "log_max_files": 3, "open_stdin": True,
        "stdin_once": True, "id": "id1"}


def test_runtime_json_log_options_override_with_decimal_sizes():
    o = opts_for({"LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "5"}}})
    r = build_runtime_json("id1", o, "/l", 1, 1)
    assert (r["log_max_size"], r["log_max_files"]) == (10_000_000, 5)
    r = build_runtime_json("id1", opts_for({"LogConfig": {"Type": "none"}}), "/l", 1, 1)
    assert r["log_driver"] == "none"


def test_inspect_config_is_the_merged_config():
    o = opts_for(Env=["A=1"], Labels={"x": "y"}, ExposedPorts={"80/tcp": {}})
    p = merge_image_config(o, {"config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"img": "1"}}})
    c = inspect_config(o, p, "abc")
    assert c["Hostname"] == "abc" and c["Image"] == "busybox" and c["Cmd"] == ["sh"]
    assert c["Env"] == ["A=1", "PATH=/bin"] and c["Labels"] == {"img": "1", "x": "y"}
    assert c["ExposedPorts"] == {"80/tcp": {}} and c["Entrypoint"] is None
    assert "StopSignal" not in c and "StopTimeout" not in c


def test_inspect_host_config_shows_dockerd_defaults():
    hc = inspect_host_config(opts_for({"Memory": 64 << 20, "NetworkMode": "default",
                                       "RestartPolicy": {"Name": "always"}, "CapAdd": ["CAP_NET_ADMIN"]}))
    assert hc["NetworkMode"] == "bridge" and hc["MemorySwap"] == 128 << 20 and hc["ShmSize"] == 64 << 20
    assert hc["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert hc["IpcMode"] == "private" and hc["CgroupnsMode"] == "private" and hc["OomKillDisable"] is False
    assert hc["CapAdd"] == ["CAP_NET_ADMIN"] and hc["Privileged"] is False
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert "/proc/kcore" in hc["MaskedPaths"] and hc["ReadonlyPaths"][0] == "/proc/bus"
    assert hc["AutoRemove"] is False and hc["PidsLimit"] is None
