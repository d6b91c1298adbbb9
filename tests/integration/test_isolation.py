"""Isolation as Docker's defaults, observed from inside containers run by the docker CLI."""

import pytest

pytestmark = [pytest.mark.root, pytest.mark.integration]


def run(engine, *args, **kw):
    return engine.docker("run", "--rm", *args, **kw)


def status_field(engine, field, *opts):
    out = run(engine, *opts, "busybox", "grep", f"^{field}:", "/proc/self/status")
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[1]


def test_root_has_dockers_default_capabilities(engine):
    assert status_field(engine, "CapEff") == "00000000a80425fb"
    assert status_field(engine, "CapBnd") == "00000000a80425fb"


def test_non_root_user_has_no_effective_capabilities(engine):
    assert status_field(engine, "CapEff", "--user", "1000") == "0000000000000000"


def test_cap_drop_and_add_change_the_set(engine):
    assert status_field(engine, "CapEff", "--cap-drop", "ALL") == "0000000000000000"
    eff = int(status_field(engine, "CapEff", "--cap-add", "NET_ADMIN"), 16)
    assert eff & (1 << 12)


def test_seccomp_filter_is_on(engine):
    assert status_field(engine, "Seccomp") == "2"


def test_no_new_privileges_option(engine):
    assert status_field(engine, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"
    assert status_field(engine, "NoNewPrivs") == "0"


def test_mount_and_unshare_are_refused(engine):
    out = run(engine, "busybox", "sh", "-c", "mount -t tmpfs t /mnt; echo rc=$?; unshare -m true; echo rc=$?")
    assert "rc=0" not in out.stdout


def test_masked_paths_are_empty(engine):
    out = run(engine, "busybox", "sh", "-c", "wc -c < /proc/keys; wc -c < /proc/timer_list; ls /sys/firmware | wc -l")
    assert out.stdout.split() == ["0", "0", "0"]


def test_proc_sys_and_sys_are_read_only(engine):
    out = run(engine, "busybox", "sh", "-c",
              "echo 1 > /proc/sys/kernel/domainname 2>/dev/null; echo a=$?; touch /sys/x 2>/dev/null; echo b=$?")
    assert "a=0" not in out.stdout and "b=0" not in out.stdout


def test_only_dockers_device_nodes(engine):
    out = run(engine, "busybox", "ls", "/dev")
    names = set(out.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue"} <= names
    assert not names & {"sda", "vda", "mem", "kmsg", "loop0"}


def test_pid_one_is_the_containers_process(engine):
    out = run(engine, "busybox", "sh", "-c", "echo $$; ps -o pid,comm | wc -l")
    lines = out.stdout.split()
    assert lines[0] == "1"


def test_read_only_rootfs(engine):
    out = run(engine, "--read-only", "busybox", "sh", "-c", "touch /x; echo rc=$?")
    assert "rc=1" in out.stdout


def test_shm_is_64m(engine):
    out = run(engine, "busybox", "df", "-k", "/dev/shm")
    assert "65536" in out.stdout


def test_memory_bomb_is_oom_killed_and_reported(engine):
    d = engine.docker
    d("run", "--name", "bomb", "-m", "32m", "--memory-swap", "32m", "busybox", "sh", "-c",
      "x=$(head -c 1000000 /dev/zero | tr '\\0' a); while true; do x=$x$x; done")
    try:
        import json
        doc = json.loads(d("inspect", "bomb").stdout)[0]
        assert doc["State"]["ExitCode"] == 137
        assert doc["State"]["OOMKilled"] is True
    finally:
        d("rm", "-f", "bomb")


def test_fork_bomb_is_contained_by_pids_limit(engine):
    d = engine.docker
    d("run", "-d", "--name", "forkbomb", "--pids-limit", "32", "busybox", "sh", "-c",
      # the inner shell dies when fork fails; the outer one then execs (no fork) to stay alive
      "sh -c 'while true; do sleep 30 & done' 2>/dev/null; exec sleep 100")
    try:
        from tests.integration.polling import wait_for

        def pids():
            return int(d("stats", "--no-stream", "--format", "{{.PIDs}}", "forkbomb").stdout.strip() or 0)

        # under load the bomb takes a while to hit the ceiling; it must never pass it
        assert wait_for(lambda: pids() >= 20, timeout=20)
        assert pids() <= 32
        # the host is untouched: the engine still answers and runs containers
        assert d("run", "--rm", "busybox", "true").returncode == 0
    finally:
        d("rm", "-f", "forkbomb")
