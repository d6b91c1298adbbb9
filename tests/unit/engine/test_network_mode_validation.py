"""NetworkMode at create: user networks and container:<name> are accepted; shared namespaces refuse conflicts."""

from __future__ import annotations

import pytest

from engine.containers.spec import parse_create_body
from engine.errors import InvalidParameter


def create(host: dict, **config):
    return parse_create_body({"Image": "busybox", **config, "HostConfig": host}, None, ncpu=1)


@pytest.mark.parametrize("mode, want", [("default", "bridge"), ("", "bridge"), ("mynet", "mynet"),
                                        ("container:web", "container:web"), ("none", "none")])
def test_modes_are_kept_for_the_network_manager(mode, want):
    assert create({"NetworkMode": mode}).network_mode == want


@pytest.mark.parametrize("host, config, message", [
    ({}, {"Hostname": "h"}, "conflicting options: hostname and the network mode"),
    ({"Dns": ["1.1.1.1"]}, {}, "conflicting options: dns and the network mode"),
    ({"ExtraHosts": ["a:1.2.3.4"]}, {}, "conflicting options: custom host-to-IP mapping and the network mode"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}, {},
     "conflicting options: port publishing and the container type network mode"),
    ({"PublishAllPorts": True}, {}, "conflicting options: port publishing and the container type network mode"),
    ({}, {"ExposedPorts": {"80/tcp": {}}}, "conflicting options: port exposing and the container type network mode"),
])
def test_a_shared_namespace_refuses_what_it_cannot_have(host, config, message):
    with pytest.raises(InvalidParameter) as e:
        create({"NetworkMode": "container:web", **host}, **config)
    assert e.value.message == message


def test_a_malformed_network_name_is_not_found():
    with pytest.raises(InvalidParameter, match="network my net not found"):
        create({"NetworkMode": "my net"})
