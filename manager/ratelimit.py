"""Failed logins, counted per username and per client address in a sliding window; over the limit, wait."""

from __future__ import annotations

import math
from collections import deque


class FailureWindow:
    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, key: str, now: float) -> int:
        """Seconds until `key` may try again; 0: now."""
        failures = self._recent(key, now)
        if len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[0] + self.window - now))

    def fail(self, key: str, now: float) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            # Bounded memory under a spray of names: forget the oldest key.
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(key, deque()).append(now)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginLimiter:
    def __init__(self, per_user: int, per_address: int, window: float) -> None:
        self.users = FailureWindow(per_user, window)
        self.addresses = FailureWindow(per_address, window)

    def retry_after(self, username: str, address: str, now: float) -> int:
        return max(self.users.retry_after(username.lower(), now), self.addresses.retry_after(address, now))

    def failed(self, username: str, address: str, now: float) -> None:
        self.users.fail(username.lower(), now)
        self.addresses.fail(address, now)

    def succeeded(self, username: str) -> None:
        self.users.clear(username.lower())
