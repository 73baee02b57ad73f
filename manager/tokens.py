"""Session and API tokens: random, shown once, stored only as their sha256; and expiry durations (`30d`, `12h`)."""

from __future__ import annotations

import hashlib
import re
import secrets

# The prefixes say what a leaked token is (and let secret scanners find one); they are not secret.
SESSION_PREFIX = "dfs_"
API_PREFIX = "dft_"
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_EXPIRY = 366 * 86400


class BadDuration(ValueError):
    pass


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_duration(text: str, what: str = "expires") -> float:
    """`30d`, `12h`, `90m`, `2w` as seconds; at most a year. `what` names the field in the error."""
    match = _DURATION.match(text.strip())
    if not match:
        raise BadDuration(f"{what}: expected a duration like 30d, 12h or 90m, got {text[:40]!r}")
    seconds = int(match.group(1)) * _UNIT[match.group(2)]
    if not 0 < seconds <= MAX_EXPIRY:
        raise BadDuration(f"{what}: between 1 second and 366 days")
    return float(seconds)
