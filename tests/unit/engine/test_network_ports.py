"""Published ports: -p and -P requests, host port reservations, and the shapes inspect and ps show."""

from __future__ import annotations

import socket

import pytest

from engine.errors import InvalidParameter
from engine.network import ports
from engine.network.ports import Mapping, PortInUse, PortReservations


def test_publish_all_adds_every_exposed_port_without_a_binding():
    got = ports.requested({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                          {"80/tcp": {}, "53/udp": {}}, publish_all=True)
    assert got == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                   "53/udp": [{"HostIp": "", "HostPort": ""}]}


def test_a_port_without_protocol_is_tcp_and_an_empty_binding_list_means_a_random_port():
    assert ports.requested({"80": []}, {}, False) == {"80/tcp": [{"HostIp": "", "HostPort": ""}]}


@pytest.mark.parametrize("spec, want", [("", (0, 0)), ("8080", (8080, 8080)), ("8000-8010", (8000, 8010))])
def test_host_port_specs(spec, want):
    assert ports.host_port_range(spec) == want


@pytest.mark.parametrize("spec", ["0", "70000", "9-3", "x"])
def test_bad_host_ports_are_refused(spec):
    with pytest.raises(InvalidParameter, match="invalid port specification"):
        ports.host_port_range(spec)


def test_host_ip_defaults_to_every_address():
    assert ports.normalize_host_ip("") == "0.0.0.0"
    assert ports.normalize_host_ip("127.0.0.1") == "127.0.0.1"
    with pytest.raises(InvalidParameter):
        ports.normalize_host_ip("localhost")


def test_inspect_ports_list_bindings_and_null_for_exposed_unpublished():
    maps = [Mapping("tcp", 80, "127.0.0.1", 8080)]
    assert ports.inspect_ports({"80/tcp": {}, "443/tcp": {}}, maps) == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "443/tcp": None}


def test_list_ports_are_dockers_ps_items():
    maps = [Mapping("tcp", 80, "0.0.0.0", 32768)]
    assert ports.list_ports({"80/tcp": {}, "443/tcp": {}}, maps) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"}]


def test_a_reserved_port_is_refused_to_the_next_asker_until_released():
    held = PortReservations()
    port = held.reserve("tcp", "127.0.0.1", 0, 0)
    assert port > 0
    with pytest.raises(PortInUse, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
        held.reserve("tcp", "127.0.0.1", port, port)
    # Another process cannot bind it either: the reservation is a real socket.
    s = socket.socket()
    with pytest.raises(OSError):
        s.bind(("127.0.0.1", port))
    s.close()
    held.release("tcp", "127.0.0.1", port)
    assert held.reserve("tcp", "127.0.0.1", port, port) == port


def test_a_range_takes_the_next_free_port_and_prefers_the_previous_one():
    held = PortReservations()
    first = held.reserve("udp", "127.0.0.1", 0, 0)
    nxt = held.reserve("udp", "127.0.0.1", first, first + 5)
    assert first < nxt <= first + 5
    held.release("udp", "127.0.0.1", nxt)
    assert held.reserve("udp", "127.0.0.1", 0, 0, prefer=nxt) == nxt
