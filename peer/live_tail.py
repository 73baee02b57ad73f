"""The upstream bytes a source has received but not yet stored as pieces, for readers that are right behind.

Upstream bytes are never checked piece by piece (the source is who computes the piece digests); what protects
a client is the whole-blob digest, checked before the blob's last piece is served. So a reader of a source
download loses nothing by taking bytes from here before their piece is stored, and gains a piece of latency.
"""

from __future__ import annotations


class LiveTail:
    def __init__(self) -> None:
        # Whole pieces cut from the stream and being stored: offset -> bytes.
        self._cut: dict[int, bytes] = {}
        # The growing, not yet whole piece: where it starts in the blob, and its bytes so far.
        self._buffer_start = 0
        self._buffer: bytearray | None = None

    def follow(self, start: int, buffer: bytearray) -> None:
        """From now on `buffer` holds the blob's bytes from `start` on (it is the reader of the stream's)."""
        self._buffer_start, self._buffer = start, buffer

    def moved(self, start: int) -> None:
        """The front of the followed buffer was cut off: it now starts at `start`."""
        self._buffer_start = start

    def cut(self, offset: int, piece: bytes) -> None:
        self._cut[offset] = piece

    def stored(self, offset: int) -> None:
        self._cut.pop(offset, None)

    def stop(self) -> None:
        self._cut.clear()
        self._buffer = None

    def peek(self, position: int, end: int, limit: int) -> bytes:
        """Up to `limit` bytes from `position` (never past `end`) if they are here; b"" if not."""
        for offset, piece in self._cut.items():
            if offset <= position < offset + len(piece):
                stop = min(offset + len(piece), end + 1, position + limit)
                return piece[position - offset : stop - offset]
        buffer = self._buffer
        if buffer is not None and self._buffer_start <= position < self._buffer_start + len(buffer):
            stop = min(self._buffer_start + len(buffer), end + 1, position + limit)
            with memoryview(buffer) as view:
                return bytes(view[position - self._buffer_start : stop - self._buffer_start])
        return b""
