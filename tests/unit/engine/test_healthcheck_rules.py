"""Pure parts of the health monitor: probe argv, Go durations, the output cap, status text."""

from engine.containers import health


def test_cmd_shell_runs_through_the_default_shell():
    assert health.probe_argv({"Test": ["CMD-SHELL", "curl -f x"]}) == ["/bin/sh", "-c", "curl -f x"]


def test_cmd_shell_uses_the_container_shell_when_set():
    assert health.probe_argv({"Test": ["CMD-SHELL", "x"]}, ["/bin/bash", "-c"]) == ["/bin/bash", "-c", "x"]


def test_cmd_runs_its_arguments_directly():
    assert health.probe_argv({"Test": ["CMD", "true", "a b"]}) == ["true", "a b"]


def test_none_and_empty_and_unknown_tests_run_nothing():
    for hc in ({"Test": ["NONE"]}, {"Test": []}, {}, None, {"Test": ["HTTP", "x"]}, {"Test": ["CMD"]}):
        assert health.probe_argv(hc) is None


def test_durations_read_like_go():
    assert health.go_duration(1_000_000_000) == "1s"
    assert health.go_duration(1_500_000_000) == "1.5s"
    assert health.go_duration(500_000_000) == "500ms"
    assert health.go_duration(90_000_000_000) == "1m30s"
    assert health.go_duration(3_600_000_000_000) == "1h0m0s"
    assert health.go_duration(30_000_000_000) == "30s"


def test_output_beyond_4_kib_is_cut_and_marked():
    out = health._Output()
    out.add(b"a" * 4000)
    out.add(b"b" * 200)
    assert out.text() == "a" * 4000 + "b" * 96 + "..."


def test_output_at_the_limit_is_not_marked():
    out = health._Output()
    out.add(b"x" * 4096)
    assert out.text() == "x" * 4096


def test_status_text_matches_docker_ps():
    assert health.Health(status="starting").text() == "health: starting"
    assert health.Health(status="healthy").text() == "healthy"
    assert health.Health(status="unhealthy").text() == "unhealthy"


def test_health_round_trips_through_its_file(tmp_path):
    h = health.Health("healthy", 0, [{"start_ns": 1, "end_ns": 2, "exit_code": 0, "output": "ok"}])
    health.write(tmp_path, h)
    assert health.read(tmp_path) == h
    assert health.status_of(tmp_path) == "healthy"
    assert health.read(tmp_path / "missing") is None
    api = h.to_api()
    assert api["Status"] == "healthy" and api["Log"][0]["ExitCode"] == 0 and api["Log"][0]["Output"] == "ok"
