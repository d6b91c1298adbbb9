"""Pure parts of the init sequence: PATH lookup and its messages, env, rlimits, namespaces, step errors."""

import errno
import os
import resource
import socket

import pytest

from engine.runtime import init, namespaces
from engine.runtime import sys as linux
from tests.unit.engine.runtime_fakes import fake_sys  # noqa: F401


@pytest.fixture
def bindir(tmp_path):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "bin" / "data").write_text("")
    (tmp_path / "bin" / "dir").mkdir()
    return tmp_path / "bin"


def test_look_path_searches_path_in_order(bindir, tmp_path):
    assert init.look_path("tool", f"{tmp_path}/nowhere:{bindir}") == f"{bindir}/tool"


def test_look_path_not_found_message_and_code(bindir):
    with pytest.raises(init.InitError) as e:
        init.look_path("nosuch", str(bindir))
    assert (e.value.message, e.value.code) == ('exec: "nosuch": executable file not found in $PATH', 127)


def test_look_path_skips_non_executables_and_directories(bindir):
    for name in ("data", "dir"):
        with pytest.raises(init.InitError, match="not found in"):
            init.look_path(name, str(bindir))


def test_look_path_with_a_slash_is_checked_not_searched(bindir):
    assert init.look_path(f"{bindir}/tool", "") == f"{bindir}/tool"
    with pytest.raises(init.InitError) as e:
        init.look_path(f"{bindir}/data", "")
    assert (e.value.message, e.value.code) == (f'exec: "{bindir}/data": permission denied', 126)
    with pytest.raises(init.InitError) as e:
        init.look_path("/nosuch", "")
    assert e.value.message == 'exec: "/nosuch": stat /nosuch: no such file or directory'


def test_env_list_becomes_a_dict_last_wins():
    assert init.env_dict(["A=1", "B=x=y", "A=2", "C"]) == {"A": "2", "B": "x=y", "C": ""}


def test_step_names_the_failed_step_in_gos_wording():
    with pytest.raises(init.InitError) as e:
        with init.step("mounting proc on /proc"):
            raise OSError(errno.EPERM, "Operation not permitted")
    assert (e.value.message, e.value.code) == ("mounting proc on /proc: operation not permitted", 127)
    with pytest.raises(init.InitError) as e:
        with init.step("x"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert e.value.code == 126


def test_rlimits_are_clamped_to_the_current_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    pid = os.fork()
    if pid == 0:
        try:
            init.apply_rlimits([{"type": "RLIMIT_NOFILE", "hard": 2**63, "soft": 2**63}])
            ok = resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
            init.apply_rlimits([{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 100}])
            ok = ok and resource.getrlimit(resource.RLIMIT_NOFILE) == (64, 64)
            os._exit(0 if ok else 1)
        except BaseException:  # noqa: BLE001
            os._exit(2)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_unknown_rlimit_is_an_error():
    with pytest.raises(init.InitError, match="RLIMIT_NOPE"):
        init.apply_rlimits([{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}])


def test_namespace_plan_splits_new_and_joined_and_skips_pid():
    flags, joins = namespaces.plan([{"type": "pid"}, {"type": "network", "path": "/run/netns/x"},
                                    {"type": "mount"}, {"type": "uts"}])  # fmt: skip
    assert flags == linux.CLONE_NEWNS | linux.CLONE_NEWUTS
    assert joins == [("network", "/run/netns/x")]


def test_enter_joins_paths_before_unsharing(fake_sys, tmp_path):
    ns_file = tmp_path / "net"
    ns_file.write_text("")
    namespaces.enter([{"type": "network", "path": str(ns_file)}, {"type": "ipc"}, {"type": "pid"}])
    assert [c[0] for c in fake_sys.calls] == ["setns", "unshare"]
    assert fake_sys.calls[0][2] == linux.CLONE_NEWNET
    assert fake_sys.calls[1] == ("unshare", linux.CLONE_NEWIPC)


def test_container_main_reports_failures_on_error_fd_and_exits_127():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        # No mount namespace: refused before anything is changed on the host.
        init.container_main("/nonexistent", {"linux": {"namespaces": [{"type": "pid"}]}}, (0, 1, 2),
                            console_sock=None, seccomp_bpf=None, error_fd=w)  # fmt: skip
    os.close(w)
    message = os.read(r, 4096).decode()
    os.close(r)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 127
    assert message == 'a mount namespace is required (linux.namespaces has no "mount")'


def test_a_tty_init_that_fails_before_its_console_leaves_eof_on_the_socket_and_its_error_on_error_fd():
    ours, theirs = socket.socketpair()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        ours.close()
        spec = {"process": {"terminal": True}, "linux": {"namespaces": [{"type": "pid"}]}}
        init.container_main("/nonexistent", spec, (0, 1, 2), theirs.fileno(), None, w)
    os.close(w)
    theirs.close()
    ours.settimeout(10)
    msg, fds, _, _ = socket.recv_fds(ours, 1, 1)
    ours.close()
    message = os.read(r, 4096).decode()
    os.close(r)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 127
    assert (msg, fds) == (b"", [])
    assert message.startswith("a mount namespace is required")


def test_warm_up_caches_the_host_facts_forked_inits_inherit(monkeypatch):
    from engine.runtime import caps, cgroups

    monkeypatch.setattr(cgroups, "_host_layout", None)
    monkeypatch.setattr(caps, "_last_cap", None)
    init.warm_up()
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps._last_cap == int(f.read())
    assert cgroups._host_layout is not None and cgroups.host_layout() is cgroups._host_layout


def test_warm_up_never_fails_and_computes_what_it_can(monkeypatch):
    from engine.errors import SystemFailure
    from engine.runtime import caps

    def no_cgroups():
        raise SystemFailure("no cgroup filesystem is mounted")

    def no_socket():
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(init, "host_layout", no_cgroups)
    monkeypatch.setattr(namespaces, "loopback_is_up", no_socket)
    monkeypatch.setattr(caps, "_last_cap", None)
    init.warm_up()
    assert caps._last_cap is not None


def test_mark_fds_cloexec_marks_everything_above_stderr_and_nothing_below():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            a, b = os.pipe()
            os.set_inheritable(a, True)
            high = os.dup2(b, 200, inheritable=True)
            os.set_inheritable(1, True)
            init.mark_fds_cloexec()
            ok = not os.get_inheritable(a) and not os.get_inheritable(high) and os.get_inheritable(1)
            code = 0 if ok else 1
        finally:
            os._exit(code)
    os.close(r)
    os.close(w)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
