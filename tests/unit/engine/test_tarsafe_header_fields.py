"""Numeric and text header fields decode as GNU tar reads them; a bad number is a format error, not a crash."""

from __future__ import annotations

import io

import pytest

from engine.tarsafe import TarFormatError, TarReader, _number, _text


@pytest.mark.parametrize("raw, value", [
    (b"0000644\0", 0o644), (b" 644   ", 0o644), (b"0000644 ", 0o644), (b"       \0", 0), (b"\0" * 8, 0),
    (b"", 0), (b"\x80" + (5).to_bytes(7, "big"), 5), (b"\xff" * 8, -1),
])
def test_numbers(raw, value):
    assert _number(raw) == value


@pytest.mark.parametrize("raw", [b"12x\0    ", b"9\0", b"0x10\0"])
def test_a_bad_number_is_named(raw):
    with pytest.raises(TarFormatError, match="bad number"):
        _number(raw)


@pytest.mark.parametrize("raw, text", [(b"", ""), (b"\0abc", ""), (b"ab\0cd", "ab"), (b"abc", "abc"),
                                       (b"\xff\0", "\udcff")])
def test_texts(raw, text):
    assert _text(raw) == text


def test_an_empty_gnu_long_name_does_not_crash_the_reader():
    def header(name: bytes, typ: bytes, size: int) -> bytes:
        h = bytearray(name.ljust(100, b"\0") + b"0000644\0" + b"0000000\0" * 2 + b"%011o\0" % size
                      + b"00000000000\0" + b" " * 8 + typ + bytes(100) + b"ustar  \0" + bytes(247))
        h[148:156] = b"%06o\0 " % sum(h)
        return bytes(h)

    data = header(b"././@LongLink", b"L", 0) + header(b"short", b"0", 0) + bytes(1024)
    members = list(TarReader(io.BytesIO(data)))
    assert [m.name for m in members] == [""]     # the (empty) long name replaces the header's
