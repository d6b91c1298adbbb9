"""Compiling OCI seccomp to BPF (libseccomp), the on-disk cache, and loading a filter in a child."""

import errno
import json
import os
from pathlib import Path

import pytest

from engine.errors import InvalidParameter
from engine.runtime import seccomp
from engine.runtime import sys as linux

PROFILE = Path(__file__).resolve().parents[3] / "engine" / "runtime" / "profiles" / "seccomp-default.json"


def small_profile(**rule):
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 42, **rule}]}  # fmt: skip


def test_compiled_program_is_a_sock_filter_array():
    bpf = seccomp.compile_bpf(small_profile())
    assert len(bpf) > 8 and len(bpf) % 8 == 0


def test_program_is_cached_by_the_profiles_sha256(tmp_path):
    prof = small_profile()
    bpf = seccomp.compile_bpf(prof, tmp_path)
    cached = tmp_path / f"{seccomp.cache_key(prof)}.bpf"
    assert cached.read_bytes() == bpf
    cached.write_bytes(b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # a one-instruction "allow" program
    assert seccomp.compile_bpf(prof, tmp_path) == cached.read_bytes()  # served from the cache
    assert [p.name for p in tmp_path.iterdir()] == [cached.name]  # no temp file left behind


def test_key_ignores_json_key_order():
    a = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    assert seccomp.cache_key(a) == seccomp.cache_key({"syscalls": [], "defaultAction": "SCMP_ACT_ALLOW"})
    assert seccomp.cache_key(a) != seccomp.cache_key({**a, "defaultAction": "SCMP_ACT_LOG"})


def test_actions_map_to_libseccomp_values():
    import pyseccomp

    assert seccomp.action("SCMP_ACT_ERRNO", None) == pyseccomp.ERRNO(errno.EPERM)
    assert seccomp.action("SCMP_ACT_ERRNO", 38) == pyseccomp.ERRNO(38)
    assert seccomp.action("SCMP_ACT_KILL_PROCESS", None) == pyseccomp.KILL_PROCESS
    assert seccomp.action("SCMP_ACT_TRACE", None) == pyseccomp.TRACE(errno.EPERM)
    with pytest.raises(InvalidParameter, match="SCMP_ACT_NOPE"):
        seccomp.action("SCMP_ACT_NOPE", None)


def test_bad_operator_is_invalid():
    with pytest.raises(InvalidParameter, match="SCMP_CMP_WHAT"):
        seccomp.compile_bpf(small_profile(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_WHAT"}]))


def test_dockers_default_profile_compiles_with_arg_conditions():
    prof = json.loads(PROFILE.read_text())
    rules = [{k: v for k, v in r.items() if k in ("names", "action", "errnoRet", "args")} for r in prof["syscalls"]]
    bpf = seccomp.compile_bpf({"defaultAction": prof["defaultAction"], "defaultErrnoRet": 1,
                               "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                               "syscalls": rules})  # fmt: skip
    assert len(bpf) % 8 == 0 and len(bpf) > 1000


def run_in_child(fn) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:  # noqa: BLE001
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_loaded_filter_returns_the_rules_errno(tmp_path):
    bpf = seccomp.compile_bpf(small_profile())

    def child():
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)  # lets an unprivileged process install a filter
        seccomp.load_bpf(bpf)
        try:
            os.mkdir(tmp_path / "x")
        except OSError as e:
            return e.errno
        return 0

    assert run_in_child(child) == 42
    assert not (tmp_path / "x").exists()


def test_argument_conditions_filter_only_matching_calls():
    # personality(0xffffffff) queries; Docker allows only a few personas. Deny persona 8 only here.
    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "errnoRet": 7, "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}  # fmt: skip
    bpf = seccomp.compile_bpf(prof)

    def child():
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        seccomp.load_bpf(bpf)
        ok = libc.personality(0xFFFFFFFF) >= 0
        denied = libc.personality(8) == -1 and ctypes.get_errno() == 7
        return 0 if ok and denied else 1

    assert run_in_child(child) == 0


def test_garbage_is_refused_before_the_kernel_sees_it():
    with pytest.raises(OSError):
        seccomp.load_bpf(b"\x00" * 7)
