"""`docker run` end to end through the real docker CLI."""

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


def test_run_rm_echo_prints_and_removes_the_container(engine):
    out = engine.docker("run", "--rm", "busybox", "echo", "hi")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hi\n"
    ps = engine.docker("ps", "-aq", "--no-trunc")
    assert ps.stdout.strip() == "" or all(len(x) == 64 for x in ps.stdout.split())


def test_run_exit_code_is_the_containers(engine):
    out = engine.docker("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert out.returncode == 3


def test_run_keeps_stdout_and_stderr_apart(engine):
    out = engine.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert out.stdout == "out\n"
    assert out.stderr == "err\n"


def test_run_piped_stdin_reaches_the_container(engine):
    out = engine.docker("run", "-i", "--rm", "busybox", "sh", input="echo piped\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "piped\n"


def test_unknown_image_gives_dockers_404_text(engine):
    out = engine.docker("create", "nosuchimage:1")
    assert out.returncode != 0
    # create pulls a missing image: Docker Hub is unreachable from the test's network namespace, so the error
    # names it (with a registry it would be "pull access denied").
    assert "registry-1.docker.io" in out.stderr or "pull access denied" in out.stderr, out.stderr


def test_unknown_executable_fails_start_with_127(engine):
    out = engine.docker("run", "--rm", "busybox", "nosuch-cmd")
    assert out.returncode == 127
    assert 'executable file not found in $PATH' in out.stderr


def test_env_user_workdir_and_hostname_reach_the_process(engine):
    out = engine.docker("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1000", "-h", "box", "busybox",
                        "sh", "-c", 'echo $A $(pwd) $(id -u) $(hostname)')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "/tmp", "1000", "box"]


def test_entrypoint_and_cmd_merge_like_docker(engine):
    out = engine.docker("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert out.stdout == "a b\n"


def test_duplicate_name_is_a_conflict(engine):
    assert engine.docker("create", "--name", "dup", "busybox", "true").returncode == 0
    try:
        out = engine.docker("run", "-d", "--name", "dup", "busybox", "true")
        assert out.returncode == 125
        assert 'The container name "/dup" is already in use' in out.stderr
    finally:
        engine.docker("rm", "-f", "dup")
