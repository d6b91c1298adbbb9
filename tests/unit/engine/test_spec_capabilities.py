"""Capability sets: Docker's 14 defaults, CapAdd/CapDrop, ALL, and non-root users."""

from pathlib import Path

import pytest

from engine.containers.seccomp_profile import allowed_syscalls
from engine.containers.spec import (
    CAPABILITIES, DEFAULT_CAPS, build_spec, caps_for_user, merge_image_config, parse_create_body, tweak_capabilities,
)
from engine.errors import InvalidParameter

# linux/capability.h numbers, written out here so the test does not trust the module's table.
CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
               "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12,
               "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21, "CAP_MKNOD": 27,
               "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31}


def mask(names) -> int:
    m = 0
    for n in names:
        m |= 1 << CAP_NUMBERS[n]
    return m


def spec_for(host=None, user="", ncpu=2):
    opts = parse_create_body({"Image": "img", "Cmd": ["true"], "User": user, "HostConfig": host or {}}, None,
                             ncpu=ncpu)
    proc = merge_image_config(opts, {})
    uid = int(user.split(":")[0]) if user else 0
    return build_spec("c" * 64, opts, proc, Path("/b"), {"path": "/b/rootfs"}, "dockweb", ncpu, None,
                      user=(uid, uid, [uid]), masked_paths=[], kernel="6.1", arch="x86_64")


def test_default_set_is_cap_eff_a80425fb():
    caps = spec_for()["process"]["capabilities"]
    assert len(DEFAULT_CAPS) == 14
    for key in ("bounding", "effective", "permitted"):
        assert f"{mask(caps[key]):08x}" == "a80425fb"
    assert caps["inheritable"] == [] and caps["ambient"] == []


def test_module_table_matches_the_kernel_numbers():
    for name, num in CAP_NUMBERS.items():
        assert CAPABILITIES[num] == name
    assert CAPABILITIES[40] == "CAP_CHECKPOINT_RESTORE"


def test_cap_add_and_drop_accept_any_case_and_no_prefix():
    caps = spec_for({"CapAdd": ["net_admin"], "CapDrop": ["Chown", "CAP_NET_RAW"]})["process"]["capabilities"]
    assert "CAP_NET_ADMIN" in caps["bounding"]
    assert "CAP_CHOWN" not in caps["bounding"] and "CAP_NET_RAW" not in caps["effective"]
    assert mask(caps["effective"]) == (0xA80425FB | 1 << 12) & ~(1 << 0) & ~(1 << 13)


def test_cap_drop_all_keeps_only_the_added_ones():
    caps = spec_for({"CapDrop": ["ALL"], "CapAdd": ["NET_BIND_SERVICE"]})["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == ["CAP_NET_BIND_SERVICE"]


def test_cap_add_all_minus_drops():
    caps = tweak_capabilities(["ALL"], ["CAP_SYS_ADMIN"])
    assert "CAP_SYS_ADMIN" not in caps and len(caps) == len(CAPABILITIES) - 1


def test_adding_a_default_cap_again_does_not_duplicate_it():
    assert tweak_capabilities(["CAP_CHOWN"], []) == DEFAULT_CAPS


def test_non_root_user_keeps_bounding_but_starts_with_no_effective_caps():
    caps = spec_for(user="1000")["process"]["capabilities"]
    assert f"{mask(caps['bounding']):08x}" == "a80425fb"
    assert caps["effective"] == [] and caps["permitted"] == [] and caps["inheritable"] == []


def test_caps_for_user_for_execs():
    base = {"bounding": list(DEFAULT_CAPS), "effective": [], "permitted": []}
    assert caps_for_user(base, 0)["effective"] == DEFAULT_CAPS
    assert caps_for_user(base, 33)["effective"] == []
    assert caps_for_user(base, 33)["bounding"] == DEFAULT_CAPS


def test_seccomp_follows_the_bounding_set():
    plain = allowed_syscalls(spec_for()["linux"]["seccomp"])
    admin = allowed_syscalls(spec_for({"CapAdd": ["SYS_ADMIN"]})["linux"]["seccomp"])
    assert "mount" not in plain and "mount" in admin
    nonroot = allowed_syscalls(spec_for({"CapAdd": ["SYS_ADMIN"]}, user="1000")["linux"]["seccomp"])
    assert "mount" in nonroot  # the filter follows bounding, as moby's does
    assert "chroot" not in allowed_syscalls(spec_for({"CapDrop": ["SYS_CHROOT"]})["linux"]["seccomp"])


def test_unknown_capability_is_refused():
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_WIZARD"'):
        spec_for({"CapAdd": ["wizard"]})
