"""Signal names and numbers as dockerd parses them (moby/sys/signal, Linux table)."""

from __future__ import annotations

from engine.errors import InvalidParameter

_SIGRTMIN = 34  # glibc reserves 32 and 33; Go's moby/sys/signal uses 34 as RTMIN
_SIGRTMAX = 64

# moby/sys/signal SignalMap for Linux: names without the SIG prefix.
SIGNALS: dict[str, int] = {
    "ABRT": 6, "ALRM": 14, "BUS": 7, "CHLD": 17, "CLD": 17, "CONT": 18, "FPE": 8, "HUP": 1, "ILL": 4,
    "INT": 2, "IO": 29, "IOT": 6, "KILL": 9, "PIPE": 13, "POLL": 29, "PROF": 27, "PWR": 30, "QUIT": 3,
    "SEGV": 11, "STKFLT": 16, "STOP": 19, "SYS": 31, "TERM": 15, "TRAP": 5, "TSTP": 20, "TTIN": 21,
    "TTOU": 22, "URG": 23, "USR1": 10, "USR2": 12, "VTALRM": 26, "WINCH": 28, "XCPU": 24, "XFSZ": 25,
    "RTMIN": _SIGRTMIN, "RTMAX": _SIGRTMAX,
}  # fmt: skip
for _i in range(1, 16):
    SIGNALS[f"RTMIN+{_i}"] = _SIGRTMIN + _i
    SIGNALS[f"RTMAX-{_i}"] = _SIGRTMAX - _i
del _i

# Preferred name per number (the first spelling wins over aliases such as CLD, IOT, POLL).
_NAMES: dict[int, str] = {}
for _name, _num in SIGNALS.items():
    _NAMES.setdefault(_num, _name)
del _name, _num


def parse_signal(raw: str | int) -> int:
    """Parse "TERM", "SIGTERM", "sigterm", "15" or "SIGRTMIN+3" into a number, as dockerd's ParseSignal does."""
    text = str(raw).strip()
    try:
        num = int(text, 10)
    except ValueError:
        name = text.upper()
        if name.startswith("SIG"):
            name = name[3:]
        if name not in SIGNALS:
            raise InvalidParameter(f"Invalid signal: {raw}") from None
        return SIGNALS[name]
    # dockerd accepts any non-zero number here; whether the platform knows it is checked when it is sent.
    if num == 0:
        raise InvalidParameter(f"Invalid signal: {raw}")
    return num


def is_valid_signal(num: int) -> bool:
    """Tell whether Linux knows this signal number (dockerd's ValidSignalForPlatform)."""
    return num in _NAMES


def ensure_supported(num: int) -> int:
    """Return num, or raise dockerd's error for a number Linux has no signal for."""
    if not is_valid_signal(num):
        raise InvalidParameter(f"The linux daemon does not support signal {num}")
    return num


def signal_name(num: int) -> str:
    """Return "SIGTERM" for 15, "SIGRTMIN+3" for 37; the number as text when unknown."""
    name = _NAMES.get(num)
    return f"SIG{name}" if name else str(num)
