"""Wrong JSON types in a create body fail like Go's decoder: first mismatch, field path, Go type."""

import pytest

from engine.containers.spec import check_create_body, parse_create_body
from engine.errors import InvalidParameter

PREFIX = "invalid JSON: json: cannot unmarshal "


def message(body) -> str:
    with pytest.raises(InvalidParameter) as e:
        parse_create_body(body, None, ncpu=2)
    return e.value.message


@pytest.mark.parametrize("body,tail", [
    ({"Image": "b", "HostConfig": {"Memory": "64m"}},
     "string into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"Image": "b", "HostConfig": {"Memory": 1.5}},
     "number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64"),
    ({"Image": "b", "HostConfig": {"Privileged": "yes"}},
     "string into Go struct field HostConfig.HostConfig.Privileged of type bool"),
    ({"Image": "b", "HostConfig": {"BlkioWeight": 70000}},
     "number 70000 into Go struct field HostConfig.HostConfig.BlkioWeight of type uint16"),
    ({"Image": "b", "HostConfig": {"ConsoleSize": [-1, 80]}},
     "number -1 into Go struct field HostConfig.HostConfig.ConsoleSize of type uint"),
    ({"Image": "b", "HostConfig": {"RestartPolicy": {"Name": 3}}},
     "number into Go struct field RestartPolicy.HostConfig.RestartPolicy.Name of type container.RestartPolicyMode"),
    ({"Image": "b", "HostConfig": {"RestartPolicy": "always"}},
     "string into Go struct field HostConfig.HostConfig.RestartPolicy of type container.RestartPolicy"),
    ({"Image": "b", "HostConfig": {"Binds": "/a:/b"}},
     "string into Go struct field HostConfig.HostConfig.Binds of type []string"),
    ({"Image": "b", "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}},
     "number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string"),
    ({"Image": "b", "HostConfig": {"NetworkMode": True}},
     "bool into Go struct field HostConfig.HostConfig.NetworkMode of type container.NetworkMode"),
    ({"Image": "b", "HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "1"}]}},
     "string into Go struct field Ulimit.HostConfig.Ulimits.Soft of type int64"),
    ({"Image": "b", "HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"Mode": "1777"}}]}},
     "string into Go struct field TmpfsOptions.HostConfig.Mounts.TmpfsOptions.Mode of type fs.FileMode"),
    ({"Image": "b", "HostConfig": "nope"},
     "string into Go struct field CreateRequest.HostConfig of type container.HostConfig"),
    ({"Image": "b", "Tty": "true"}, "string into Go struct field CreateRequest.Tty of type bool"),
    ({"Image": "b", "Env": "A=1"}, "string into Go struct field CreateRequest.Env of type []string"),
    ({"Image": "b", "Env": ["A=1", 2]}, "number into Go struct field CreateRequest.Env of type string"),
    ({"Image": "b", "Cmd": 5}, "number into Go struct field CreateRequest.Cmd of type string"),
    ({"Image": "b", "Cmd": ["a", 1]}, "array into Go struct field CreateRequest.Cmd of type string"),
    ({"Image": "b", "Labels": {"a": 1}}, "number into Go struct field CreateRequest.Labels of type string"),
    ({"Image": "b", "ExposedPorts": ["80/tcp"]},
     "array into Go struct field CreateRequest.ExposedPorts of type nat.PortSet"),
    ({"Image": "b", "StopTimeout": "10"}, "string into Go struct field CreateRequest.StopTimeout of type int"),
    ({"Image": 7}, "number into Go struct field CreateRequest.Image of type string"),
])
def test_type_mismatch_names_the_field_and_go_type(body, tail):
    assert message(body) == PREFIX + tail


def test_a_body_that_is_not_an_object():
    assert message([1]) == PREFIX + "array into Go value of type container.CreateRequest"


def test_keys_match_case_insensitively_like_go():
    o = parse_create_body({"image": "busybox", "cmd": ["true"], "tty": True,
                           "hostconfig": {"memory": 8 << 20, "restartpolicy": {"name": "always"}}}, None, ncpu=2)
    assert o.image == "busybox" and o.tty and o.memory == 8 << 20 and o.restart_policy.name == "always"


def test_null_leaves_the_zero_value():
    o = parse_create_body({"Image": "busybox", "Cmd": None, "Env": None, "Labels": None, "Tty": None,
                           "HostConfig": {"Memory": None, "Binds": None, "RestartPolicy": None,
                                          "LogConfig": None}}, None, ncpu=2)
    assert o.cmd is None and o.env == [] and o.labels == {} and not o.tty and o.memory == 0
    assert o.restart_policy.name == "no" and o.log_config["Type"] == "json-file"


def test_check_create_body_splits_config_and_host_config():
    out = check_create_body({"Image": "x", "HostConfig": {"Memory": 1}, "NetworkingConfig": {"a": 1}, "Zzz": 1})
    assert out == {"Config": {"Image": "x"}, "HostConfig": {"Memory": 1}}
