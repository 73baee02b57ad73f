"""Piece-sized buffers that upstream bytes are received into, reused from one download to the next.

A new 4 MiB bytearray is zeroed and then page-faulted in as the socket fills it: per piece that cost about as much
as receiving the piece, and before the first byte of a cold blob it cost milliseconds of latency. So buffers are
anonymous memory maps (the kernel hands out zeroed pages only as they are first written, no zeroing pass), and
they are reused: a download takes two (one filling, one being stored) and gives them back when it is done with
them; only a few are kept, so memory stays bounded.
"""

from __future__ import annotations

import mmap

KEEP_FROM = 1 << 20


class PieceBuffers:
    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._free: list[mmap.mmap] = []

    def take(self, size: int) -> mmap.mmap:
        """A writable buffer of exactly `size` bytes (its contents are whatever was in it last)."""
        for position, buffer in enumerate(self._free):
            if len(buffer) == size:
                return self._free.pop(position)
        return mmap.mmap(-1, max(size, 1))

    def give(self, buffer: mmap.mmap) -> None:
        """Return a buffer nothing refers to any more (no reader, no worker thread still hashing it)."""
        # Small ones (a config blob's) cost nothing to make again and would crowd out the piece-sized ones.
        if len(buffer) >= KEEP_FROM and len(self._free) < self.keep:
            self._free.append(buffer)
