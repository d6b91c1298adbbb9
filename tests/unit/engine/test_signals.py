"""Signal parsing as dockerd does it: names with or without SIG, any case, numbers, real-time signals."""

import pytest

from engine.containers.signals import ensure_supported, is_valid_signal, parse_signal, signal_name
from engine.errors import InvalidParameter


@pytest.mark.parametrize("raw,num", [
    ("TERM", 15), ("SIGTERM", 15), ("sigterm", 15), ("term", 15), ("15", 15), ("KILL", 9), ("HUP", 1),
    ("SIGUSR1", 10), ("CONT", 18), ("STOP", 19), ("WINCH", 28), ("SIGRTMIN", 34), ("SIGRTMIN+3", 37),
    ("RTMAX-1", 63), ("SIGRTMAX", 64), ("IOT", 6), ("CLD", 17), ("POLL", 29), (9, 9),
])
def test_parse_signal_accepts_names_and_numbers(raw, num):
    assert parse_signal(raw) == num


@pytest.mark.parametrize("raw", ["NOPE", "SIGFOO", "0", "", "RTMIN+16", "9x"])
def test_parse_signal_rejects_unknown_with_dockerd_words(raw):
    with pytest.raises(InvalidParameter) as e:
        parse_signal(raw)
    assert e.value.message == f"Invalid signal: {raw}"


def test_any_nonzero_number_parses_but_only_linux_signals_are_supported():
    assert parse_signal("99") == 99  # dockerd's ParseSignal accepts it ...
    assert not is_valid_signal(99)
    with pytest.raises(InvalidParameter) as e:  # ... and refuses it when it would send it
        ensure_supported(99)
    assert e.value.message == "The linux daemon does not support signal 99"
    assert ensure_supported(15) == 15


def test_signal_name_prefers_the_canonical_spelling():
    assert signal_name(15) == "SIGTERM"
    assert signal_name(6) == "SIGABRT"
    assert signal_name(17) == "SIGCHLD"
    assert signal_name(37) == "SIGRTMIN+3"
    assert signal_name(99) == "99"
