"""Start failures come back over error_fd worded as runc/Docker word them, with exit code 127 or 126."""

import os

import pytest

from tests.integration.runtime_harness import bundle, default_bpf, default_spec, rootfs_template, run  # noqa: F401

pytestmark = pytest.mark.root


def test_unknown_command_is_not_found_in_path(bundle, default_bpf):
    res = run(bundle, default_spec(["nosuch"]), default_bpf)
    assert res.error == 'exec: "nosuch": executable file not found in $PATH'
    assert res.exit_code == 127
    assert res.output == b""


def test_missing_absolute_path_names_the_stat_error(bundle, default_bpf):
    res = run(bundle, default_spec(["/nosuch"]), default_bpf)
    assert res.error == 'exec: "/nosuch": stat /nosuch: no such file or directory'
    assert res.exit_code == 127


def test_non_executable_file_is_permission_denied(bundle, default_bpf):
    res = run(bundle, default_spec(["/etc/passwd"]), default_bpf)
    assert res.error == 'exec: "/etc/passwd": permission denied'
    assert res.exit_code == 126


def test_missing_cwd_is_created(bundle, default_bpf):
    res = run(bundle, default_spec(["pwd"], cwd="/work/dir"), default_bpf)
    assert res.error == "" and res.text == "/work/dir\n"
    assert (bundle / "rootfs" / "work" / "dir").is_dir()


def test_cwd_only_root_can_enter_still_works_like_runc(bundle, default_bpf):
    os.chmod(bundle / "rootfs" / "root", 0o700)
    res = run(bundle, default_spec(["sh", "-c", "pwd; ls"], uid=1000, gid=1000, cwd="/root"), default_bpf)
    assert res.error == "" and res.exit_code == 1
    assert res.text == "/root\nls: .: Permission denied\n"  # cwd set as root; the user then cannot read it


def test_path_comes_from_the_process_env(bundle, default_bpf):
    spec = default_spec(["ls"])
    spec["process"]["env"] = ["PATH=/nowhere"]
    res = run(bundle, spec, default_bpf)
    assert res.error == 'exec: "ls": executable file not found in $PATH'


def test_stdin_reaches_the_process_and_env_is_exact(bundle, default_bpf):
    spec = default_spec(["sh", "-c", "cat; env | sort"])
    spec["process"]["env"].append("FOO=bar")
    res = run(bundle, spec, default_bpf, stdin=b"hello\n")
    lines = res.text.splitlines()
    assert lines[0] == "hello"
    assert "FOO=bar" in lines and "PWD=/" in lines
