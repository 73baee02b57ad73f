"""What a download needs from wherever a blob originally comes from: its bytes, by range, into its buffers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

# Told how many bytes of the buffer being filled have arrived so far.
Progress = Callable[[int], None]


class RangeBody(Protocol):
    async def fill(self, view: memoryview, progress: Progress | None = None) -> int:
        """Fill `view` with the next bytes; fewer only where the range ends. Raises (as `open_range` does) if the
        body breaks off."""
        ...


class RangeSource(Protocol):
    def open_range(self, start: int, end: int) -> AbstractAsyncContextManager[RangeBody]:
        """Bytes start..end (inclusive); raise `UpstreamError`, `RawHttpError` or an httpx error if not possible."""
        ...


class ChunkedBody:
    """A `RangeBody` over a stream of chunks (httpx's, or a test's), copying them into the buffers."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._left = memoryview(b"")

    async def fill(self, view: memoryview, progress: Progress | None = None) -> int:
        filled = 0
        while filled < len(view):
            if not self._left:
                try:
                    self._left = memoryview(await anext(self._chunks))
                except StopAsyncIteration:
                    break
                continue
            take = min(len(view) - filled, len(self._left))
            view[filled : filled + take] = self._left[:take]
            self._left = self._left[take:]
            filled += take
            if progress is not None:
                progress(filled)
        return filled
