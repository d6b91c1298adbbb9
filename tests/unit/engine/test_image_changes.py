"""`docker import --change`: Dockerfile-like instructions applied to the image config."""

import pytest

from engine.errors import InvalidParameter
from engine.images.store import apply_changes


def test_shell_form_cmd_runs_through_sh():
    assert apply_changes({}, ["CMD echo $HOME"])["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]


def test_entrypoint_resets_a_cmd_it_did_not_set_in_the_same_changes():
    assert "Cmd" not in apply_changes({"Cmd": ["old"]}, ['ENTRYPOINT ["/init"]'])
    cfg = apply_changes({}, ['CMD ["x"]', 'ENTRYPOINT ["/init"]'])
    assert cfg == {"Cmd": ["x"], "Entrypoint": ["/init"]}


def test_env_expands_earlier_variables_and_accepts_the_legacy_form():
    cfg = apply_changes({"Env": ["PATH=/bin"]}, ["ENV PATH=$PATH:/opt/bin", "ENV GREETING hello world"])
    assert cfg["Env"] == ["PATH=/bin:/opt/bin", "GREETING=hello world"]


def test_expose_ranges_and_relative_workdir():
    cfg = apply_changes({}, ["EXPOSE 8000-8002/tcp", "WORKDIR /a", "WORKDIR b"])
    assert sorted(cfg["ExposedPorts"]) == ["8000/tcp", "8001/tcp", "8002/tcp"]
    assert cfg["WorkingDir"] == "/a/b"


def test_volume_json_form_and_healthcheck():
    cfg = apply_changes({}, ['VOLUME ["/a", "/b"]', "HEALTHCHECK --interval=5s --retries=2 CMD true"])
    assert cfg["Volumes"] == {"/a": {}, "/b": {}}
    assert cfg["Healthcheck"] == {"Interval": 5_000_000_000, "Retries": 2, "Test": ["CMD-SHELL", "true"]}


def test_run_is_not_a_valid_change_command():
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        apply_changes({}, ["RUN rm -rf /"])


def test_label_needs_key_value_pairs_and_instructions_need_arguments():
    with pytest.raises(InvalidParameter):
        apply_changes({}, ["LABEL a=1 b"])
    with pytest.raises(InvalidParameter, match="requires at least one argument"):
        apply_changes({}, ["USER"])
