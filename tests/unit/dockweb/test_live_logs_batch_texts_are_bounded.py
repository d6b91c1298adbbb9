"""The batch texts a hub keeps for its viewers stay within a byte budget and an age; a gone one reads as None."""

from __future__ import annotations

from collections import OrderedDict

import pytest


@pytest.fixture(autouse=True)
def empty_store(monkeypatch):
    from dockweb.live import streams

    monkeypatch.setattr(streams, "_texts", OrderedDict())
    monkeypatch.setattr(streams, "_texts_bytes", 0)


def test_kept_texts_stay_within_the_byte_budget_and_the_oldest_go_first(monkeypatch):
    from dockweb.live import streams

    monkeypatch.setattr(streams, "TEXTS_MAX_BYTES", 10_000)
    refs = [streams.keep_text("x" * 1000 + str(i)) for i in range(50)]
    assert streams._texts_bytes <= 10_000
    assert streams.batch_text({"ref": refs[0]}) is None
    assert streams.batch_text({"ref": refs[-1]}).endswith("49")
    assert streams.batch_text({"text": "inline"}) == "inline"  # a notice that carries its text (other producers)


def test_old_texts_go_even_under_the_budget(monkeypatch):
    from dockweb.live import streams

    clock = [1000.0]
    monkeypatch.setattr(streams.time, "monotonic", lambda: clock[0])
    old = streams.keep_text("old")
    clock[0] += streams.TEXTS_MAX_AGE + 1
    new = streams.keep_text("new")
    assert streams.batch_text({"ref": old}) is None
    assert streams.batch_text({"ref": new}) == "new"
