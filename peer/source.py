"""What a download needs from wherever a blob originally comes from: its bytes, by range, into its buffers.

The download defines it; the upstream's `upstream.blob.BlobSource` fits it without importing it (nothing in
`upstream` imports `peer`), and so does a test's source.
"""

from __future__ import annotations

from collections.abc import Callable
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
