"""With a pty slave, the container's process is a session leader with that terminal as stdio and /dev/console."""

import pytest

from tests.integration.runtime_harness import bundle, default_bpf, default_spec, rootfs_template, run  # noqa: F401

pytestmark = pytest.mark.root


def test_terminal_is_the_controlling_tty_and_console(bundle, default_bpf):
    spec = default_spec(["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo istty; stty size; ls /dev | grep -c console; "
                                     "ps -o pid,tty | grep '^ *1 '"])  # fmt: skip
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    res = run(bundle, spec, default_bpf, tty=True)
    assert res.error == "" and res.exit_code == 0, res.text
    lines = res.text.replace("\r", "").splitlines()
    assert lines[:3] == ["istty", "30 100", "1"]
    assert lines[3].split()[1] != "?"  # pid 1 has a controlling terminal


def test_without_terminal_there_is_no_console(bundle, default_bpf):
    res = run(bundle, default_spec(["sh", "-c", "[ -t 1 ] || echo notty; ls /dev/console"]), default_bpf)
    assert res.text.startswith("notty\n") and "No such file" in res.text
