"""What a supervisor needs from config.json travels as runtime options: the supervisor never parses the spec."""

import json

import pytest

from engine.runtime import control


def spec(namespaces, terminal=False, cgroups_path="parent/c1"):
    return {"process": {"terminal": terminal, "args": ["sh"]},
            "linux": {"namespaces": namespaces, "cgroupsPath": cgroups_path}}


def test_a_new_pid_namespace_a_joined_one_and_the_hosts_are_told_apart():
    assert control.start_options(spec([{"type": "pid"}, {"type": "mount"}]))["pid_namespace"] == ""
    assert control.start_options(spec([{"type": "pid", "path": "/proc/42/ns/pid"}]))["pid_namespace"] == \
        "/proc/42/ns/pid"
    assert control.start_options(spec([{"type": "mount"}]))["pid_namespace"] is None


def test_terminal_and_cgroups_path_come_from_the_spec():
    assert control.start_options(spec([], terminal=True)) == {"terminal": True, "pid_namespace": None,
                                                             "cgroups_path": "parent/c1"}
    assert control.start_options({}) == {"terminal": False, "pid_namespace": None, "cgroups_path": ""}


def test_read_options_adds_the_start_options_from_config_json(tmp_path):
    (tmp_path / "runtime.json").write_text(json.dumps({"id": "c1", "open_stdin": True}))
    (tmp_path / "config.json").write_text(json.dumps(spec([{"type": "pid"}], terminal=True)))
    assert control.read_options(tmp_path) == {"id": "c1", "open_stdin": True, "terminal": True,
                                              "pid_namespace": "", "cgroups_path": "parent/c1"}


def test_read_options_leaves_config_json_alone_when_runtime_json_has_them(tmp_path):
    runtime = {"id": "c1", "terminal": False, "pid_namespace": None, "cgroups_path": "p/c1"}
    (tmp_path / "runtime.json").write_text(json.dumps(runtime))
    (tmp_path / "config.json").write_text("not json: it must not be read")
    assert control.read_options(tmp_path) == runtime


def test_read_options_of_a_bundle_without_runtime_json_fails_with_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        control.read_options(tmp_path)
