"""Create options merged with the image config by Docker's rules."""

import pytest

from engine.containers.spec import merge_env, merge_image_config, parse_create_body
from engine.errors import InvalidParameter

BUSYBOX = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
           "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}}
WEB = {"config": {"Entrypoint": ["/entry.sh"], "Cmd": ["serve", "--port", "80"], "Env": ["A=image", "B=image"],
                  "WorkingDir": "/srv", "User": "www", "Labels": {"maintainer": "x", "tier": "image"},
                  "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "StopSignal": "SIGQUIT",
                  "Healthcheck": {"Test": ["CMD", "check"], "Interval": 30 * 10**9, "Retries": 3}}}


def merged(image=BUSYBOX, **config):
    opts = parse_create_body({"Image": "img", **config}, None, ncpu=2)
    return merge_image_config(opts, image)


def test_no_cmd_takes_the_image_cmd():
    p = merged()
    assert p.args == ["sh"] and p.cmd == ["sh"] and p.entrypoint is None
    assert p.path == "sh" and p.arguments == []


def test_user_cmd_keeps_the_image_entrypoint():
    p = merged(WEB, Cmd=["migrate"])
    assert p.args == ["/entry.sh", "migrate"]


def test_user_entrypoint_drops_the_image_cmd():
    p = merged(WEB, Entrypoint=["/bin/sh"])
    assert p.args == ["/bin/sh"] and p.cmd is None


def test_user_entrypoint_and_cmd():
    assert merged(WEB, Entrypoint=["/bin/sh"], Cmd=["-c", "id"]).args == ["/bin/sh", "-c", "id"]


def test_image_entrypoint_and_cmd_together():
    assert merged(WEB).args == ["/entry.sh", "serve", "--port", "80"]


def test_empty_string_entrypoint_resets_it():
    p = merged(WEB, Entrypoint=[""], Cmd=["ls"])
    assert p.args == ["ls"] and p.entrypoint is None


def test_empty_string_entrypoint_without_cmd_has_nothing_to_run():
    with pytest.raises(InvalidParameter) as e:
        merged(WEB, Entrypoint=[""])
    assert e.value.message == "No command specified"


def test_nothing_to_run_is_no_command_specified():
    with pytest.raises(InvalidParameter) as e:
        merged({"config": {"Env": ["A=1"]}})
    assert e.value.message == "No command specified"
    with pytest.raises(InvalidParameter):
        merged({"config": None, "rootfs": {}})


def test_inner_config_is_accepted_too():
    assert merged(WEB["config"]).args[0] == "/entry.sh"


def test_env_user_first_then_image_keys_the_user_did_not_set():
    p = merged(WEB, Env=["B=user", "C=user"])
    assert p.env == ["B=user", "C=user", "A=image"]
    assert merged(WEB).env == ["A=image", "B=image"]


def test_working_dir_user_stop_signal_from_image_unless_given():
    p = merged(WEB)
    assert (p.working_dir, p.user, p.stop_signal) == ("/srv", "www", "SIGQUIT")
    p = merged(WEB, WorkingDir="/tmp", User="0:0", StopSignal="SIGINT")
    assert (p.working_dir, p.user, p.stop_signal) == ("/tmp", "0:0", "SIGINT")


def test_labels_ports_volumes_merge():
    p = merged(WEB, Labels={"tier": "container"}, ExposedPorts={"443/tcp": {}}, Volumes={"/logs": {}})
    assert p.labels == {"maintainer": "x", "tier": "container"}
    assert p.exposed_ports == {"443/tcp": {}, "80/tcp": {}}
    assert p.volumes == {"/logs": {}, "/data": {}}


def test_healthcheck_fills_unset_fields_from_image():
    p = merged(WEB, Healthcheck={"Test": ["CMD", "mine"]})
    assert p.healthcheck["Test"] == ["CMD", "mine"] and p.healthcheck["Interval"] == 30 * 10**9
    assert merged(WEB).healthcheck["Test"] == ["CMD", "check"]


def test_warnings_travel_with_the_process():
    p = merged(HostConfig={"SecurityOpt": ["apparmor=x"]})
    assert len(p.warnings) == 1


def test_merge_env_replaces_appends_and_unsets():
    base = ["PATH=/bin", "HOSTNAME=abc", "TERM=xterm"]
    assert merge_env(base, ["PATH=/usr/bin", "NEW=1"]) == ["PATH=/usr/bin", "HOSTNAME=abc", "TERM=xterm", "NEW=1"]
    assert merge_env(base, ["TERM"]) == ["PATH=/bin", "HOSTNAME=abc"]
    assert merge_env(base, ["NEW=1", "NEW=2"]) == ["PATH=/bin", "HOSTNAME=abc", "TERM=xterm", "NEW=2"]
    assert merge_env(base, ["MISSING"]) == base
    assert base == ["PATH=/bin", "HOSTNAME=abc", "TERM=xterm"]  # not modified
