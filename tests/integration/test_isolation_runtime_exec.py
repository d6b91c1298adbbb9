"""exec_main joins a running container: its namespaces, cgroup, capabilities and seccomp filter."""

import pytest

from tests.integration.runtime_harness import (  # noqa: F401
    Container, bundle, cgroup_parent, default_bpf, default_spec, exec_in, rootfs_template,
)
from engine.runtime.caps import DEFAULT_CAPS

pytestmark = pytest.mark.root


def exec_process(args, uid=0):
    caps = list(DEFAULT_CAPS)
    return {"args": args, "env": ["PATH=/bin", "X=1"], "cwd": "/tmp", "user": {"uid": uid, "gid": uid},
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}}  # fmt: skip


@pytest.fixture
def running(bundle, default_bpf, cgroup_parent):
    spec = default_spec(["sh", "-c", "echo ready; touch /tmp/from-init; exec sleep 60"],
                        cgroups_path=f"{cgroup_parent}/ex")  # fmt: skip
    c = Container(bundle, spec, default_bpf)
    try:
        c.read_until(b"ready")
        yield c, spec
    finally:
        c.kill()
        c.wait()


def test_exec_sees_the_containers_world(running, default_bpf):
    c, spec = running
    script = ("pwd; hostname; ls /tmp; pidof sleep; grep memory /proc/self/cgroup; "
              "grep -E '^(CapEff|Seccomp):' /proc/self/status; echo X=$X")  # fmt: skip
    res = exec_in(c, spec, exec_process(["sh", "-c", script]), default_bpf)
    assert res.error == "" and res.exit_code == 0, res.text
    assert res.text.split() == ["/tmp", "dockweb-test", "from-init", "1", "4:memory:/", "CapEff:",
                                "00000000a80425fb", "Seccomp:", "2", "X=1"]  # fmt: skip


def test_exec_as_user_has_no_capabilities(running, default_bpf):
    c, spec = running
    res = exec_in(c, spec, exec_process(["sh", "-c", "id -u; grep ^CapEff /proc/self/status"], uid=1000), default_bpf)
    assert res.text.split() == ["1000", "CapEff:", "0000000000000000"]


def test_exec_of_a_missing_command_reports_runcs_message(running, default_bpf):
    c, spec = running
    res = exec_in(c, spec, exec_process(["nosuch"]), default_bpf)
    assert res.error == 'exec: "nosuch": executable file not found in $PATH'
    assert res.exit_code == 127


def test_exec_into_a_missing_cwd_fails_with_runcs_message(running, default_bpf):
    c, spec = running
    process = exec_process(["pwd"])
    process["cwd"] = "/nope"
    res = exec_in(c, spec, process, default_bpf)
    assert res.error == 'chdir to cwd ("/nope") set in config.json failed: no such file or directory'
    assert res.exit_code == 127
