"""Docker's seccomp profile resolved like moby's setupSeccomp: caps, arches and kernel versions."""

import pytest

from engine.containers.seccomp_profile import (
    ProfileError, allowed_syscalls, default_seccomp, load_default_profile, native_arch, parse_kernel_version,
    resolve,
)
from engine.containers.spec import DEFAULT_CAPS


def rules_for(seccomp, name):
    return [c for c in seccomp["syscalls"] if name in c["names"]]


def test_default_caps_on_a_new_kernel_allow_ptrace_but_not_namespace_or_mount_calls():
    s = default_seccomp(DEFAULT_CAPS, "x86_64", "6.1.0-18-amd64")
    allowed = allowed_syscalls(s)
    assert {"ptrace", "process_vm_readv", "read", "write", "execve", "chroot", "arch_prctl"} <= allowed
    for name in ("mount", "umount2", "unshare", "setns", "keyctl", "add_key", "bpf", "pivot_root", "reboot",
                 "syslog", "open_by_handle_at", "init_module", "perf_event_open"):
        assert name not in allowed, name


def test_ptrace_needs_kernel_4_8_without_cap_sys_ptrace():
    old = allowed_syscalls(default_seccomp(DEFAULT_CAPS, "amd64", "4.4.0"))
    assert "ptrace" not in old
    assert "ptrace" in allowed_syscalls(default_seccomp(DEFAULT_CAPS, "amd64", "4.8"))
    assert "ptrace" in allowed_syscalls(default_seccomp(DEFAULT_CAPS + ["CAP_SYS_PTRACE"], "amd64", "4.4.0"))


def test_cap_sys_admin_adds_mount_unshare_setns_and_unfiltered_clone():
    plain = default_seccomp(DEFAULT_CAPS, "amd64", "6.1")
    admin = default_seccomp(DEFAULT_CAPS + ["CAP_SYS_ADMIN"], "amd64", "6.1")
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf"} <= allowed_syscalls(admin)
    # Without SYS_ADMIN, clone is allowed only with a mask on namespace flags, and clone3 returns ENOSYS.
    clone = rules_for(plain, "clone")
    assert len(clone) == 1 and clone[0]["args"] == [
        {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    clone3 = rules_for(plain, "clone3")
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    # With it, the excluded-by-cap rules disappear.
    assert all(not c.get("args") for c in rules_for(admin, "clone"))
    assert all(c["action"] == "SCMP_ACT_ALLOW" for c in rules_for(admin, "clone3"))


def test_includes_caps_require_every_listed_capability():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["both"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_A", "CAP_B"]}},
        {"names": ["either_excluded"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_A", "CAP_C"]}},
    ]}
    assert [c["names"] for c in resolve(profile, ["CAP_A"], "amd64", "6.1")["syscalls"]] == []
    assert [c["names"] for c in resolve(profile, ["CAP_A", "CAP_B"], "amd64", "6.1")["syscalls"]] == [["both"]]
    assert [c["names"] for c in resolve(profile, ["CAP_B"], "amd64", "6.1")["syscalls"]] == [["either_excluded"]]


def test_excludes_min_kernel_drops_a_rule_on_newer_kernels():
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["legacy"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5.10"}}]}
    assert resolve(profile, [], "amd64", "5.4.0")["syscalls"]
    assert resolve(profile, [], "amd64", "5.10.1")["syscalls"] == []
    assert resolve(profile, [], "amd64", "6.0")["syscalls"] == []


def test_architectures_come_from_the_arch_map_for_the_native_arch():
    p = load_default_profile()
    assert default_seccomp(DEFAULT_CAPS, "x86_64", "6.1")["architectures"] == [
        "SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    arm = default_seccomp(DEFAULT_CAPS, "aarch64", "6.1")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    # arch-specific rules follow the arch: arch_prctl is amd64/x32 only, arm_fadvise64_64 arm only.
    assert "arch_prctl" not in allowed_syscalls(arm)
    assert "arm_fadvise64_64" in allowed_syscalls(arm)
    assert "arm_fadvise64_64" not in allowed_syscalls(default_seccomp(DEFAULT_CAPS, "x86_64", "6.1"))
    assert p["archMap"]  # the shipped profile is in moby's archMap form


def test_s390_uses_its_own_clone_argument_order():
    s = default_seccomp(DEFAULT_CAPS, "s390x", "6.1")
    assert [c["args"][0]["index"] for c in rules_for(s, "clone")] == [1]


def test_resolved_profile_is_plain_oci():
    s = default_seccomp(DEFAULT_CAPS, "x86_64", "6.1")
    assert s["defaultAction"] == "SCMP_ACT_ERRNO" and s["defaultErrnoRet"] == 1
    assert set(s) == {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
    for call in s["syscalls"]:
        assert set(call) <= {"names", "action", "errnoRet", "args"}
        assert call["names"] and call["action"].startswith("SCMP_ACT_")
        for a in call.get("args", []):
            assert set(a) == {"index", "value", "valueTwo", "op"}


def test_resolving_does_not_modify_the_cached_profile():
    before = load_default_profile()
    default_seccomp(DEFAULT_CAPS + ["CAP_SYS_ADMIN"], "x86_64", "6.1")
    assert load_default_profile() == before


def test_profile_errors_are_reported():
    with pytest.raises(ProfileError, match="use either 'architectures' or 'archMap'"):
        resolve({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                 "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, [], "amd64", "6.1")
    with pytest.raises(ProfileError, match="use either 'name' or 'names'"):
        resolve({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"name": "a", "names": ["b"], "action": "SCMP_ACT_ERRNO"}]}, [], "amd64", "6.1")
    with pytest.raises(ProfileError, match="invalid kernel version"):
        parse_kernel_version("six")
    assert resolve({}, [], "amd64", "6.1") is None  # no default action, no syscalls: seccomp off


def test_single_name_rules_and_plain_architectures_pass_through():
    out = resolve({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}, [], "amd64", "6.1")
    assert out == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


def test_machine_names_map_to_native_arches():
    assert native_arch("x86_64") == "amd64"
    assert native_arch("aarch64") == "arm64"
    assert native_arch("amd64") == "amd64"
    assert parse_kernel_version("6.18.44-fc-v657") == (6, 18)
