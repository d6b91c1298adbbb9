"""Bad builds: a clear error for each, and nothing left behind (images, layer dirs, containers, mounts, scratch)."""

import pytest

from tests.integration.build_helpers import build, counts, write

pytestmark = [pytest.mark.root, pytest.mark.integration, pytest.mark.overlay]


def failing_build(engine, tmp_path, files: dict[str, str], *args: str, symlinks: dict[str, str] | None = None):
    ctx = write(tmp_path / "ctx", files)
    for name, target in (symlinks or {}).items():
        (ctx / name).symlink_to(target)
    before = counts(engine)
    out = build(engine, ctx, *args)
    assert out.returncode != 0, out.stdout
    assert counts(engine) == before
    return out


def test_malformed_dockerfile_names_the_line(engine, tmp_path):
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM busybox\nRUN true\nCOPY onlyone\n"})
    assert "line 3" in out.stderr and "COPY requires at least two arguments" in out.stderr


def test_unknown_instruction_is_reported(engine, tmp_path):
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM busybox\nFOO bar\n"})
    assert "dockerfile parse error on line 2: unknown instruction: FOO" in out.stderr


def test_missing_copy_source(engine, tmp_path):
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM busybox\nRUN echo before > /b\nCOPY nosuch.txt /\n"})
    assert ("COPY failed: file not found in build context or excluded by .dockerignore: "
            "stat nosuch.txt: file does not exist") in out.stderr


def test_copy_through_parent_path_is_forbidden(engine, tmp_path):
    (tmp_path / "secret").write_text("host secret\n")
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM busybox\nCOPY ../secret /\n"})
    assert "COPY failed: forbidden path outside the build context: ../secret" in out.stderr


def test_copy_through_escaping_symlink_is_forbidden(engine, tmp_path):
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM busybox\nCOPY link /\n"},
                        symlinks={"link": "/etc/hostname"})
    assert "COPY failed: forbidden path outside the build context: link (symlink to /etc/hostname)" in out.stderr


def test_failing_run_shows_the_exit_code_and_removes_its_container(engine, tmp_path):
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM busybox\nRUN echo partial > /p\nRUN exit 3\n"})
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in out.stderr
    assert out.returncode == 3


def test_missing_base_image(engine, tmp_path):
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM nosuch-local-image:1\nRUN true\n"})
    # Without network the registry client cannot pull it; either way the build stops with a message.
    assert "nosuch-local-image" in out.stderr or "registry-1.docker.io" in out.stderr


def test_failed_build_keeps_earlier_tags_untouched(engine, tmp_path):
    ok = write(tmp_path / "ok", {"Dockerfile": "FROM busybox\nRUN echo v1 > /v\n"})
    assert build(engine, ok, "-t", "keep:1").returncode == 0
    bad = write(tmp_path / "bad", {"Dockerfile": "FROM busybox\nRUN exit 1\n"})
    assert build(engine, bad, "-t", "keep:1").returncode != 0
    assert engine.docker("run", "--rm", "keep:1", "cat", "/v", text=True).stdout == "v1\n"


def test_exec_form_run_of_a_missing_binary(engine, tmp_path):
    out = failing_build(engine, tmp_path, {"Dockerfile": "FROM busybox\nRUN [\"/nosuch-binary\"]\n"})
    assert "/nosuch-binary" in out.stderr


def test_client_going_away_mid_run_leaves_nothing(engine, tmp_path):
    import subprocess
    import time

    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    before = counts(engine)
    proc = subprocess.Popen(["docker", "build", "--no-cache", str(ctx)], env={**engine.env, "DOCKER_BUILDKIT": "0"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if "started" in line:
                break
        proc.kill()
    finally:
        proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while counts(engine) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counts(engine) == before
