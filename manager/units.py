"""Rates and durations as people write them (`50MB/s`, `30m`), for the task API and the CLI alike. No SQLAlchemy
here: the CLI imports it."""

from __future__ import annotations

import re

_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*((?:[kmgt]i?)?)b?(?:/s|ps)?$", re.IGNORECASE)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
MAX_RATE = 10**13
MAX_TIMEOUT = 30 * 86400.0


class BadUnit(ValueError):
    """The message says what was expected."""


def parse_rate(text: str) -> int:
    """Bytes per second: `50MB/s` (decimal), `50MiB/s` (binary), `400k`, `1000` (bytes); `0`: no limit."""
    match = _RATE.match(text.strip())
    if not match:
        raise BadUnit(f"rate: expected bytes per second like 50MB/s, 20MiB/s or 1000, got {text[:40]!r}")
    unit = match.group(2).lower()
    factor = 1024 ** "_kmgt".index(unit[0]) if unit.endswith("i") else _DECIMAL[unit]
    rate = int(float(match.group(1)) * factor)
    if rate > MAX_RATE:
        raise BadUnit("rate: at most 10TB/s")
    return rate


def parse_seconds(text: str) -> float:
    """`30m`, `2h`, `90s`, `1d`, or a bare number of seconds; at most 30 days."""
    match = _DURATION.match(text.strip())
    if not match:
        raise BadUnit(f"timeout: expected a duration like 30m, 2h or 90s, got {text[:40]!r}")
    seconds = float(match.group(1)) * _SECONDS[match.group(2)]
    if seconds > MAX_TIMEOUT:
        raise BadUnit("timeout: at most 30 days")
    return seconds
