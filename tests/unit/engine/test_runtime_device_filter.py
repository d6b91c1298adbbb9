"""The cgroup v2 device filter: OCI device rules compiled to eBPF, checked with a tiny interpreter."""

import struct

from engine.runtime.cgroups import device_filter_program

DOCKER_RULES = [{"allow": False, "access": "rwm"}] + [
    {"allow": True, "type": t, "major": major, "minor": minor, "access": access}
    for t, major, minor, access in [("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"),
                                    ("c", 1, 9, "rwm"), ("c", 136, None, "rwm"), ("c", 5, 2, "rwm")]
]  # fmt: skip
CHAR, BLOCK = 2, 1
MKNOD, READ, WRITE = 1, 2, 4


def run(prog: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Interpret the instructions device_filter_program emits (ldx.w, and32, rsh32, mov, jne, jeq, exit)."""
    ctx = {0: dev_type | access << 16, 4: major, 8: minor}
    regs = [0] * 11
    pc = 0
    for _ in range(10_000):
        code, regbyte, off, imm = struct.unpack("<BBhi", prog[pc * 8 : pc * 8 + 8])
        dst, src = regbyte & 0xF, regbyte >> 4
        pc += 1
        if code == 0x61:
            regs[dst] = ctx[off]
        elif code == 0x54:
            regs[dst] &= imm & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x55:
            pc += off if regs[dst] != imm else 0
        elif code == 0x15:
            pc += off if regs[dst] == imm else 0
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("no exit")


def test_dockers_list_allows_its_devices_and_mknod_only_for_others():
    prog = device_filter_program(DOCKER_RULES)
    assert run(prog, CHAR, READ | WRITE, 1, 3) == 1  # /dev/null
    assert run(prog, CHAR, READ, 136, 7) == 1  # a pty
    assert run(prog, BLOCK, READ, 254, 0) == 0  # the host disk
    assert run(prog, CHAR, READ, 1, 11) == 0  # /dev/kmsg
    assert run(prog, BLOCK, MKNOD, 8, 0) == 1  # mknod is allowed, opening is not (Docker's behaviour)
    assert run(prog, BLOCK, READ | MKNOD, 8, 0) == 0


def test_the_last_matching_rule_wins():
    rules = [{"allow": True, "type": "c", "major": 1, "minor": None, "access": "rwm"},
             {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"}]  # fmt: skip
    prog = device_filter_program(rules)
    assert run(prog, CHAR, READ, 1, 5) == 1
    assert run(prog, CHAR, READ | WRITE, 1, 5) == 0
    assert run(prog, CHAR, WRITE, 1, 3) == 1


def test_without_a_deny_all_rule_unmatched_devices_are_allowed():
    prog = device_filter_program([{"allow": False, "type": "b", "major": 8, "minor": None, "access": "rwm"}])
    assert run(prog, BLOCK, READ, 8, 1) == 0
    assert run(prog, CHAR, READ, 4, 1) == 1


def test_an_unconditional_rule_ends_the_program():
    prog = device_filter_program([{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                                  {"allow": False, "access": "rwm"}])  # fmt: skip
    assert run(prog, CHAR, READ, 1, 3) == 0
    assert prog[-8:] == bytes([0x95, 0, 0, 0, 0, 0, 0, 0])  # no unreachable epilogue after it
    assert len(prog) == 8 * (6 + 2)
