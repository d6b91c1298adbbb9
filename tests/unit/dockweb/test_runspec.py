"""parse_run_input: form text or JSON into a RunSpec, with a message per bad field."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from dockweb.containers.runspec import Mount, PortBinding, parse_run_input


def errors_of(data: dict) -> dict:
    with pytest.raises(ValidationError) as info:
        parse_run_input(data)
    return info.value.message_dict


def test_form_text_is_read_line_by_line():
    spec = parse_run_input({
        "image": "nginx:1.27", "name": "web", "command": "sh -c 'echo hi; sleep 1'",
        "env": "A=1\nB=two=2\n", "ports": "8080:80\n127.0.0.1:5353:53/udp\n9000", "volumes": "data:/srv\ncfg:/etc/x:ro",
        "restart_policy": "on-failure:3", "memory": "256m", "cpus": "0.5", "pids_limit": "100",
        "labels": "tier=web", "team": "red"})
    assert spec.command == ["sh", "-c", "echo hi; sleep 1"]
    assert spec.env == {"A": "1", "B": "two=2"}
    assert spec.ports == [PortBinding(80, "tcp", 8080, ""), PortBinding(53, "udp", 5353, "127.0.0.1"),
                          PortBinding(9000, "tcp", None, "")]
    assert spec.mounts == [Mount("data", "/srv", False), Mount("cfg", "/etc/x", True)]
    assert (spec.restart_policy, spec.memory, spec.cpus, spec.pids_limit) == ("on-failure:3", 256 * 2 ** 20, 0.5, 100)
    assert spec.labels == {"tier": "web"} and spec.team == "red"


def test_json_lists_and_objects_are_accepted():
    spec = parse_run_input({"image": "busybox", "command": ["echo", "a b"], "env": {"X": 1}, "ports": ["80"],
                            "memory": 10 * 2 ** 20})
    assert spec.command == ["echo", "a b"] and spec.env == {"X": "1"} and spec.memory == 10 * 2 ** 20


def test_every_bad_field_is_named_with_its_own_message():
    errors = errors_of({"image": "", "name": "-bad", "env": "NOEQUALS", "ports": "99999:80", "volumes": "data",
                        "restart_policy": "sometimes", "memory": "1m", "cpus": "0", "pids_limit": "0",
                        "labels": {"dockweb.team": "blue"}})
    assert set(errors) == {"image", "name", "env", "ports", "volumes", "restart_policy", "memory", "cpus",
                           "pids_limit", "labels"}
    assert "is not KEY=VALUE" in errors["env"][0]
    assert "ports are 1-65535" in errors["ports"][0]
    assert "VOLUME:/path" in errors["volumes"][0]
    assert "minimum memory limit is 6m" in errors["memory"][0]
    assert "set by dockweb itself" in errors["labels"][0]


def test_an_unbalanced_quote_in_the_command_is_a_field_error():
    assert "command" in errors_of({"image": "busybox", "command": "echo 'oops"})


def test_a_bad_size_says_how_to_write_one():
    assert "write 512m, 1g" in errors_of({"image": "busybox", "memory": "lots"})["memory"][0]
