"""Piece-sized buffers that upstream bytes are received into, reused from one download to the next.

A new 4 MiB bytearray is zeroed and then page-faulted in as the socket fills it: per piece that cost about as much
as receiving the piece. A download takes two (one filling, one being stored) and gives them back when it is done
with them; only whole-piece buffers are kept, and only a few, so memory stays bounded.
"""

from __future__ import annotations


class PieceBuffers:
    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._free: list[bytearray] = []

    def take(self, size: int) -> bytearray:
        """A buffer of exactly `size` bytes (its contents are whatever was in it last)."""
        for position, buffer in enumerate(self._free):
            if len(buffer) == size:
                return self._free.pop(position)
        return bytearray(size)

    def give(self, buffer: bytearray) -> None:
        """Return a buffer nothing refers to any more (no reader, no worker thread still hashing it)."""
        if len(self._free) < self.keep:
            self._free.append(buffer)
