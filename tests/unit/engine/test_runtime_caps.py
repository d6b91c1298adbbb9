"""Capability names to bits, and the order capabilities are applied in (fake sys)."""

from engine.runtime import caps
from engine.runtime import sys as linux
from tests.unit.engine.runtime_fakes import fake_sys  # noqa: F401


def test_dockers_default_set_is_a80425fb():
    assert caps.to_mask(caps.DEFAULT_CAPS, 40) == 0xA80425FB


def test_names_may_omit_the_prefix_and_be_lower_case():
    assert caps.to_mask(["chown", "CAP_KILL", "net_raw"], 40) == (1 << 0) | (1 << 5) | (1 << 13)


def test_unknown_names_and_caps_beyond_the_kernels_last_are_skipped():
    assert caps.to_mask(["CAP_NOPE", "CAP_CHECKPOINT_RESTORE", "CAP_CHOWN"], 39) == 1


def test_mask_round_trips_to_names():
    assert sorted(caps.to_names(0xA80425FB)) == sorted(caps.DEFAULT_CAPS)
    assert caps.CAP_BITS["CAP_SYS_ADMIN"] == 21 and caps.CAP_BITS["CAP_BPF"] == 39


def test_drop_bounding_drops_every_cap_not_kept(fake_sys):
    caps.drop_bounding(caps.to_mask(caps.DEFAULT_CAPS, 40), 40)
    dropped = {args[1] for args in fake_sys.named("prctl") if args[0] == linux.PR_CAPBSET_DROP}
    assert dropped == set(range(41)) - {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31}


def test_apply_sets_sets_then_clears_and_raises_ambient(fake_sys):
    c = {"effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN", "CAP_KILL"], "inheritable": ["CAP_KILL"],
         "ambient": ["CAP_KILL"]}  # fmt: skip
    caps.apply(c, 40)
    assert fake_sys.named("capset") == [(1, 1 | 1 << 5, 1 << 5)]
    prctls = fake_sys.named("prctl")
    assert prctls == [(linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_CLEAR_ALL),
                      (linux.PR_CAP_AMBIENT, linux.PR_CAP_AMBIENT_RAISE, 5)]  # fmt: skip


def test_apply_leaves_out_caps_this_process_does_not_hold(fake_sys):
    c = {"effective": ["CAP_SYS_RESOURCE", "CAP_CHOWN"], "permitted": ["CAP_SYS_RESOURCE", "CAP_CHOWN"]}
    caps.apply(c, 40)
    assert fake_sys.named("capset") == [(1, 1, 0)]


def test_effective_is_clipped_to_permitted(fake_sys):
    caps.apply({"effective": ["CAP_CHOWN", "CAP_KILL"], "permitted": ["CAP_CHOWN"]}, 40)
    assert fake_sys.named("capset") == [(1, 1, 0)]


def test_last_cap_is_read_once(monkeypatch):
    monkeypatch.setattr(caps, "_last_cap", None)
    first = caps.last_cap()
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read again")))
    assert caps.last_cap() == first
