"""Per-host rate limits (upload to peers, download from peers, fetch from the upstream) as token buckets.

The bucket lets a consumer go into debt and makes it wait the debt off, so a 4 MiB piece is never refused for
being larger than the burst, and concurrent consumers queue in proportion to what they take.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|b|ib)?(?:/s)?\s*$", re.IGNORECASE)
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BINARY_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_rate(text: str) -> float:
    """Bytes per second from `100Mbit`, `12.5MB`, `1GiB`, `800k` (bytes); 0 or empty means unlimited."""
    if not text or text.strip() == "0":
        return 0.0
    match = _RATE.match(text)
    if match is None:
        raise ValueError(f"not a rate: {text!r} (examples: 100Mbit, 12.5MB, 1GiB)")
    number, prefix, unit = float(match.group(1)), match.group(2).lower(), (match.group(3) or "b").lower()
    if unit == "bit":
        return number * _SCALE[prefix] / 8
    if unit == "ib":
        return number * _BINARY_SCALE[prefix]
    return number * _SCALE[prefix]


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        # A tenth of a second of traffic by default: smooth, yet cheap in wake-ups.
        self.burst = burst if burst is not None else max(rate / 10, 64 * 1024)
        self.clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate <= 0

    def reserve(self, amount: int, now: float) -> float:
        """Take `amount` tokens at time `now`; returns how long the taker must wait first."""
        if self.unlimited:
            return 0.0
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def consume(self, amount: int) -> None:
        delay = self.reserve(amount, self.clock())
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The host's three buckets."""

    upload: TokenBucket
    download: TokenBucket
    source: TokenBucket  # fetching from the upstream (the `source_rate` setting)

    def within(self, rate: float) -> RateLimits:
        """These limits, with fetching (from peers and from the upstream) also held to `rate` for one download."""
        return RateLimits(self.upload, BothBuckets(self.download, rate), BothBuckets(self.source, rate))


class BothBuckets(TokenBucket):
    """A download's own bucket within the host's: a taker waits for both."""

    def __init__(self, host: TokenBucket, rate: float) -> None:
        super().__init__(rate)
        self.host = host

    async def consume(self, amount: int) -> None:
        await self.host.consume(amount)
        await super().consume(amount)
