"""A fake engine.runtime.sys for unit tests: records every call instead of touching the kernel."""

from __future__ import annotations

import pytest

from engine.runtime import sys as linux


class FakeSys:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.errors: dict[tuple, OSError] = {}  # (name, first arg) -> error to raise once
        self.caps = (0x1FFFEFFFFFF, 0x1FFFEFFFFFF, 0)  # like this machine: everything but CAP_SYS_RESOURCE

    def _record(self, name: str, *args):
        self.calls.append((name, *args))
        err = self.errors.pop((name, args[0] if args else None), None)
        if err is not None:
            raise err

    def named(self, name: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == name]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeSys":
        for name in ("mount", "umount2", "unshare", "setns", "pivot_root", "sethostname", "setdomainname",
                     "seccomp_set_filter"):  # fmt: skip
            monkeypatch.setattr(linux, name, lambda *a, _n=name: self._record(_n, *a))
        monkeypatch.setattr(linux, "prctl", lambda *a: self._record("prctl", *a) or 0)
        monkeypatch.setattr(linux, "capget", lambda pid=0: self.caps)
        monkeypatch.setattr(linux, "capset", lambda *a: self._record("capset", *a))
        return self


@pytest.fixture
def fake_sys(monkeypatch: pytest.MonkeyPatch) -> FakeSys:
    return FakeSys().install(monkeypatch)
