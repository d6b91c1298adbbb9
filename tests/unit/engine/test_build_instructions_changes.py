"""`--change` on commit/import goes through the Dockerfile parser: same syntax, same messages."""

import pytest

from engine.build.instructions import apply_changes
from engine.errors import InvalidParameter
from engine.images import store


def test_store_uses_the_build_implementation():
    assert store.apply_changes is apply_changes


def test_shell_form_uses_the_image_shell_when_set():
    cfg = apply_changes({"Shell": ["/bin/bash", "-c"]}, ["CMD echo hi"])
    assert cfg["Cmd"] == ["/bin/bash", "-c", "echo hi"]


def test_every_change_is_checked_before_any_is_applied():
    cfg = {"Env": ["A=0"]}
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        apply_changes(cfg, ["ENV A=1", "RUN true"])
    assert cfg == {"Env": ["A=0"]}


def test_label_quotes_onbuild_and_healthcheck_none():
    cfg = apply_changes({"Env": ["V=2"]}, ['LABEL "org.name"="My App" version=$V', "ONBUILD RUN make",
                                           "HEALTHCHECK NONE", "STOPSIGNAL SIGTERM", "USER 1000:1000"])
    assert cfg["Labels"] == {"org.name": "My App", "version": "2"}
    assert cfg["OnBuild"] == ["RUN make"]
    assert cfg["Healthcheck"] == {"Test": ["NONE"]}
    assert (cfg["StopSignal"], cfg["User"]) == ("SIGTERM", "1000:1000")


def test_a_change_may_span_lines_with_continuations():
    cfg = apply_changes({}, ["ENV A=1 \\\n    B=2"])
    assert cfg["Env"] == ["A=1", "B=2"]


def test_blank_changes_leave_the_config_alone():
    assert apply_changes({"Cmd": ["x"]}, ["", "  "]) == {"Cmd": ["x"]}


def test_parse_errors_use_dockers_messages():
    with pytest.raises(InvalidParameter, match="unknown flag: interval2"):
        apply_changes({}, ["HEALTHCHECK --interval2=1s CMD true"])
    with pytest.raises(InvalidParameter, match="SHELL|not a valid change command"):
        apply_changes({}, ['SHELL ["/bin/bash"]'])
    with pytest.raises(InvalidParameter, match="ENV names can not be blank"):
        apply_changes({}, ["ENV =1"])
