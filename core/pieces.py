"""How a blob is cut into pieces: fixed-size pieces, the last one shorter."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
DEFAULT_PIECE_SIZE = 4 * MiB
# Keep the piece count of very large blobs bounded so per-swarm state stays small.
MAX_PIECES = 2048


def choose_piece_size(blob_size: int, base: int = DEFAULT_PIECE_SIZE) -> int:
    size = base
    while blob_size > size * MAX_PIECES:
        size *= 2
    return size


@dataclass(frozen=True, slots=True)
class PieceLayout:
    blob_size: int
    piece_size: int

    @property
    def count(self) -> int:
        if self.blob_size == 0:
            return 0
        return (self.blob_size + self.piece_size - 1) // self.piece_size

    def offset(self, index: int) -> int:
        return index * self.piece_size

    def length(self, index: int) -> int:
        return min(self.piece_size, self.blob_size - index * self.piece_size)

    def index_of(self, offset: int) -> int:
        return offset // self.piece_size
