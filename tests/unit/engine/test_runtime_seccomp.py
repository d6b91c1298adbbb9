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


# --- the binary-tree layout decides exactly like libseccomp's linear one --------------------------------------

AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, X32_BIT = 0xC000003E, 0x40000003, 0x40000000


def run_bpf(prog: bytes, nr: int, arch: int, args: tuple[int, ...] = (0,) * 6) -> tuple[int, bool]:
    """Interpret a classic-BPF seccomp program on struct seccomp_data (nr, arch, ip, args[6]).

    Return its verdict and whether it looked at the arguments. Only what libseccomp emits: loads (absolute
    word, immediate, scratch memory), stores, AND, the conditional and unconditional jumps, and returns;
    anything else fails the test.
    """
    import struct

    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    a = x = pc = 0
    mem = [0] * 16
    read_args = False
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            a = struct.unpack_from("<I", data, k)[0]
            read_args = read_args or k >= 16
        elif code == 0x15:  # jeq #k
            pc += jt if a == k else jf
        elif code == 0x25:  # jgt #k
            pc += jt if a > k else jf
        elif code == 0x35:  # jge #k
            pc += jt if a >= k else jf
        elif code == 0x45:  # jset #k
            pc += jt if a & k else jf
        elif code == 0x05:  # ja
            pc += k
        elif code == 0x06:  # ret #k
            return k, read_args
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x00:  # ld #k
            a = k
        elif code == 0x60:  # ld M[k]
            a = mem[k]
        elif code == 0x02:  # st M[k]
            mem[k] = a
        elif code == 0x01:  # ldx #k
            x = k
        elif code == 0x61:  # ldx M[k]
            x = mem[k]
        elif code == 0x03:  # stx M[k]
            mem[k] = x
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x} at {pc - 1}")


def test_the_tree_layout_decides_like_the_linear_one_for_every_syscall():
    import pyseccomp

    from engine.containers.seccomp_profile import default_seccomp
    from engine.runtime.caps import DEFAULT_CAPS

    profile = default_seccomp(DEFAULT_CAPS, "amd64", "6.1.0")
    tree = seccomp._export(seccomp.build_filter(profile))
    flt = seccomp.build_filter(profile)
    flt.set_attr(pyseccomp.Attr.CTL_OPTIMIZE, 1)  # libseccomp's default: one comparison per rule
    linear = seccomp._export(flt)
    assert tree != linear
    # A syscall whose rules look at arguments is also tried with every value the profile compares with (and
    # neighbours), on every argument.
    values = {0, 2**64 - 1}
    for rule in profile["syscalls"]:
        for arg in rule.get("args") or ():
            for v in (arg.get("value", 0), arg.get("valueTwo", 0)):
                values |= {v, v + 1, v ^ 0xFFFFFFFF}
    arg_sets = [(v % 2**64,) * 6 for v in sorted(values)]
    verdicts, with_args = set(), 0
    for audit_arch, base in ((AUDIT_ARCH_X86_64, 0), (AUDIT_ARCH_X86_64, X32_BIT), (AUDIT_ARCH_I386, 0)):
        for nr in range(base, base + 460):
            verdict, tree_args = run_bpf(tree, nr, audit_arch)
            expected, linear_args = run_bpf(linear, nr, audit_arch)
            assert verdict == expected, (hex(audit_arch), nr)
            verdicts.add(verdict)
            if tree_args or linear_args:
                with_args += 1
                for args in arg_sets:
                    expected = run_bpf(linear, nr, audit_arch, args)[0]
                    assert run_bpf(tree, nr, audit_arch, args)[0] == expected, (hex(audit_arch), nr, args)
    assert run_bpf(tree, 0, 0xDEAD)[0] == run_bpf(linear, 0, 0xDEAD)[0]  # a foreign architecture
    # The comparison saw allowed and refused syscalls, and argument rules (clone, personality, socket).
    assert {pyseccomp.ALLOW, pyseccomp.ERRNO(errno.EPERM)} <= verdicts and with_args >= 3
