"""The default seccomp profile is loaded in the container and refuses unshare, mount and keyctl."""

import pytest

from tests.integration.runtime_harness import bundle, default_bpf, default_spec, rootfs_template, run  # noqa: F401

pytestmark = pytest.mark.root


def sh(bundle, bpf, script, **kw):
    return run(bundle, default_spec(["sh", "-c", script], **kw), bpf)


def test_seccomp_filter_is_active(bundle, default_bpf):
    res = sh(bundle, default_bpf, "grep ^Seccomp: /proc/self/status")
    assert res.text.split() == ["Seccomp:", "2"]


def test_unshare_and_mount_are_refused(bundle, default_bpf):
    res = sh(bundle, default_bpf, "unshare -m true; echo unshare=$?; mount -t tmpfs t /mnt; echo mount=$?")
    assert "unshare=1" in res.text and "mount=1" in res.text, res.text
    assert "unshare(0x20000): Operation not permitted" in res.text


def test_unshare_is_refused_by_seccomp_even_with_cap_sys_admin(bundle, default_bpf):
    spec = default_spec(["unshare", "-m", "true"])
    for key in ("bounding", "effective", "permitted"):
        spec["process"]["capabilities"][key].append("CAP_SYS_ADMIN")
    res = run(bundle, spec, default_bpf)
    assert res.exit_code != 0 and "Operation not permitted" in res.text
    res = run(bundle, spec, None)
    assert res.exit_code == 0, res.text  # the same container without the filter may unshare: seccomp refused it


def test_normal_programs_run_under_the_filter(bundle, default_bpf):
    res = sh(bundle, default_bpf, "ls / >/dev/null && sort </etc/passwd | head -1 && date +%Y >/dev/null && echo ok")
    assert res.exit_code == 0 and res.text.split()[-1] == "ok", res.text
