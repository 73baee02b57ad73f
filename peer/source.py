"""What a download needs from wherever a blob originally comes from: its bytes, by range."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class RangeSource(Protocol):
    def open_range(self, start: int, end: int) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Stream bytes start..end (inclusive); raise `UpstreamError` (or an httpx error) if not possible."""
        ...
