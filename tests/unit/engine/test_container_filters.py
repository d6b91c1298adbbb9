"""`docker ps --filter` semantics over container records."""

import pytest

from engine.containers.inspect import matches_filters
from engine.containers.manager import _until_cutoff
from engine.containers.model import Container, ContainerState
from engine.errors import InvalidParameter


def make(name, status="running", labels=None, code=0, image="sha256:" + "b" * 64):
    return Container(name.ljust(64, "0")[:64], name, 0, "busybox", image, "sh", [], {"Labels": labels or {}}, {},
                     "/nonexistent", ContainerState(status=status, exit_code=code))


def match(c, **filters):
    return matches_filters(c, filters, lambda ref: "sha256:" + "b" * 64 if ref == "busybox" else None)


def test_status_filter_matches_the_state():
    assert match(make("a", "exited"), status=["exited"])
    assert not match(make("a", "running"), status=["exited"])


def test_unknown_status_value_is_invalid():
    with pytest.raises(InvalidParameter, match="status=sleepy"):
        match(make("a"), status=["sleepy"])


def test_unknown_filter_key_is_invalid():
    with pytest.raises(InvalidParameter, match="invalid filter 'colour'"):
        match(make("a"), colour=["red"])


def test_label_filter_with_and_without_value():
    c = make("a", labels={"team": "x", "tier": "web"})
    assert match(c, label=["team=x"])
    assert match(c, label=["tier"])
    assert not match(c, label=["team=y"])


def test_exited_filter_matches_the_exit_code():
    assert match(make("a", "exited", code=137), exited=["137"])
    assert not match(make("a", "exited", code=0), exited=["137"])


def test_name_filter_is_a_substring_match():
    assert match(make("webserver"), name=["web"])
    assert not match(make("db"), name=["web"])


def test_ancestor_matches_by_image():
    assert match(make("a"), ancestor=["busybox"])
    assert not match(make("a"), ancestor=["alpine"])


def test_until_accepts_go_durations_and_timestamps():
    import time
    assert abs(_until_cutoff("1h30m") - (time.time() - 5400)) < 5
    assert _until_cutoff("1700000000") == 1700000000
    with pytest.raises(InvalidParameter):
        _until_cutoff("yesterday")


def test_expose_filter_matches_ports_and_ranges():
    c = make("a")
    c.config["ExposedPorts"] = {"80/tcp": {}, "53/udp": {}}
    assert match(c, expose=["80"])
    assert match(c, expose=["50-60/udp"])
    assert not match(c, expose=["53/tcp"])


def test_network_filter_matches_the_network_mode():
    c = make("a")
    c.host_config["NetworkMode"] = "none"
    assert match(c, network=["none"])
    assert not match(c, network=["bridge"])


def test_volume_filter_matches_bind_sources_and_targets():
    c = make("a")
    c.host_config["Binds"] = ["data:/var/lib/data:ro"]
    assert match(c, volume=["data"])
    assert match(c, volume=["/var/lib/data"])
    assert not match(c, volume=["other"])
