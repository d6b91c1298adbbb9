"""The runtime init gives a container Docker's 14 default capabilities, and none to a non-root user."""

import pytest

from tests.integration.runtime_harness import bundle, default_bpf, default_spec, rootfs_template, run  # noqa: F401

pytestmark = pytest.mark.root


def status(bundle, bpf, uid=0):
    res = run(bundle, default_spec(["grep", "^Cap\\|^NoNewPrivs", "/proc/self/status"], uid=uid, gid=uid), bpf)
    assert res.exit_code == 0, (res.error, res.text)
    return dict(line.split(":\t") for line in res.text.splitlines())


def test_root_has_dockers_default_capabilities(bundle, default_bpf):
    caps = status(bundle, default_bpf)
    assert caps["CapEff"] == "00000000a80425fb"
    assert caps["CapPrm"] == "00000000a80425fb"
    assert caps["CapBnd"] == "00000000a80425fb"
    assert caps["CapInh"] == "0000000000000000"
    assert caps["CapAmb"] == "0000000000000000"


def test_user_1000_has_no_capabilities_but_the_same_bounding_set(bundle, default_bpf):
    caps = status(bundle, default_bpf, uid=1000)
    assert caps["CapEff"] == "0000000000000000"
    assert caps["CapPrm"] == "0000000000000000"
    assert caps["CapBnd"] == "00000000a80425fb"


def test_ambient_capabilities_survive_exec_for_a_non_root_user(bundle, default_bpf):
    spec = default_spec(["grep", "^CapEff", "/proc/self/status"], uid=1000, gid=1000)
    net_bind = ["CAP_NET_BIND_SERVICE"]
    spec["process"]["capabilities"].update(inheritable=net_bind, ambient=net_bind)
    res = run(bundle, spec, default_bpf)
    assert res.text.split() == ["CapEff:", f"{1 << 10:016x}"]


def test_no_new_privileges_is_set_when_the_spec_asks(bundle, default_bpf):
    assert status(bundle, default_bpf)["NoNewPrivs"] == "0"
    spec = default_spec(["grep", "^NoNewPrivs\\|^Seccomp:", "/proc/self/status"])
    spec["process"]["noNewPrivileges"] = True
    res = run(bundle, spec, default_bpf)
    assert res.text.split() == ["NoNewPrivs:", "1", "Seccomp:", "2"]
