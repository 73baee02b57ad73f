"""The upstream bytes a feeder has received but not yet stored as pieces, for readers that are right behind.

Upstream bytes are never checked piece by piece (the feeder is who computes the piece digests); what protects
a client is the whole-blob digest, checked before the blob's last piece is served. So a reader of a feeder
download loses nothing by taking bytes from here before their piece is stored, and gains a piece of latency.
"""

from __future__ import annotations

import mmap


class LiveTail:
    def __init__(self) -> None:
        # Whole pieces received and being stored: offset -> bytes.
        self._cut: dict[int, bytes | memoryview] = {}
        # The piece being received: where it starts in the blob, its buffer, and how much of it has arrived.
        self._buffer_start = 0
        self._buffer: mmap.mmap | None = None
        self.filled = 0
        # How much of it had arrived when readers were last woken (the download wakes them in steps).
        self.announced = 0

    def follow(self, start: int, buffer: mmap.mmap) -> None:
        """From now on the piece at `start` is being received into `buffer` (from its first byte on)."""
        self._buffer_start, self._buffer = start, buffer
        self.filled = self.announced = 0

    def cut(self, offset: int, piece: bytes | memoryview) -> None:
        """The piece at `offset` has arrived whole; readers take it from here until it is stored."""
        self._cut[offset] = piece
        self._buffer = None

    def stored(self, offset: int) -> None:
        self._cut.pop(offset, None)

    def stop(self) -> None:
        self._cut.clear()
        self._buffer = None
        self.filled = self.announced = 0

    def peek(self, position: int, end: int, limit: int) -> bytes:
        """Up to `limit` bytes from `position` (never past `end`) if they are here; b"" if not."""
        for offset, piece in self._cut.items():
            if offset <= position < offset + len(piece):
                stop = min(offset + len(piece), end + 1, position + limit)
                with memoryview(piece) as view:
                    return bytes(view[position - offset : stop - offset])
        buffer = self._buffer
        if buffer is not None and self._buffer_start <= position < self._buffer_start + self.filled:
            stop = min(self._buffer_start + self.filled, end + 1, position + limit)
            with memoryview(buffer) as view:
                return bytes(view[position - self._buffer_start : stop - self._buffer_start])
        return b""
