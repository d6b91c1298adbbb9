"""`docker run -it` and `docker exec -it` under a real pseudo-terminal (util-linux script)."""

import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script is not installed")
def test_run_it_gives_an_interactive_shell_on_a_pty(engine):
    cmd = "docker run -it --rm busybox sh -c 'tty; stty size; exit 0'"
    out = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=engine.env, capture_output=True, text=True,
                         timeout=60, input="")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "/dev/pts/0" in out.stdout or "/dev/console" in out.stdout


@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script is not installed")
def test_exec_it_runs_on_a_pty(engine):
    engine.docker("run", "-d", "--name", "ttyx", "busybox", "sleep", "100")
    try:
        out = subprocess.run(["script", "-qec", "docker exec -it ttyx sh -c 'tty; exit 0'", "/dev/null"],
                             env=engine.env, capture_output=True, text=True, timeout=60, input="")
        assert out.returncode == 0, out.stdout
        assert "/dev/pts/" in out.stdout
    finally:
        engine.docker("rm", "-f", "ttyx")
