"""The peer-to-peer piece protocol, shared by the upload server and the piece client.

    GET /pieces/<algorithm>:<hex>/<index>?wait=<seconds>
    X-Damselfly-Token: <join token>

200 with the piece's bytes, or 404 when this peer does not have the piece (and did not get it within `wait`
seconds: a parent holds the request while the piece is on its way, so children never poll).

    GET /pieces/<algorithm>:<hex>
    X-Damselfly-Token: <join token>

200 with this peer's own view of the blob (`PieceView`: which pieces it holds verified, and their digests), or
404 when it has none. Children ask it of their parents while the supernode is away (peer/parent_views.py): the
digests the supernode would have handed out travel down the tree from the feeder instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.digest import Digest

PIECES_PREFIX = "/pieces/"
MAX_WAIT = 30.0


@dataclass(frozen=True, slots=True)
class PieceLocation:
    path: Path
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class PieceView:
    """A peer's own view of one blob: its size and piece size, the pieces it holds verified (a hex bitmask, as the
    supernode's), and the digest of each."""

    size: int
    piece_size: int
    pieces: str
    digests: dict[int, str]

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size, "piece_size": self.piece_size, "pieces": self.pieces,
            "digests": {str(index): sha256 for index, sha256 in self.digests.items()},
        }

    @classmethod
    def parse(cls, body: object) -> PieceView:
        """Raises ValueError for anything not of the shape (a parent's answer is not trusted to be well-formed)."""
        if not isinstance(body, dict):
            raise ValueError("a piece view is an object")
        size, piece_size, pieces, digests = (body.get(k) for k in ("size", "piece_size", "pieces", "digests"))
        if not (isinstance(size, int) and isinstance(piece_size, int) and isinstance(pieces, str)):
            raise ValueError("size, piece_size and pieces are required")
        if not isinstance(digests, dict):
            raise ValueError("digests must be an object")
        if int(pieces or "0", 16) < 0:
            raise ValueError("pieces is a bitmask, not negative")
        parsed: dict[int, str] = {}
        for key, value in digests.items():
            if not (isinstance(value, str) and len(value) == 64 and str(key).isdigit()):
                raise ValueError("digests map piece indexes to 64 hex digits")
            int(value, 16)
            parsed[int(key)] = value
        return cls(size, piece_size, pieces, parsed)


class PieceProvider(Protocol):
    async def locate_piece(self, digest: Digest, index: int, wait: float) -> PieceLocation | None:
        """Where the verified piece is on disk, waiting up to `wait` seconds for it to arrive."""
        ...

    async def piece_view(self, digest: Digest, known: int, wait: float) -> PieceView | None:
        """This peer's own view of the blob: the pieces it holds verified and their digests; None without one.
        While the pieces held are those of the bitmask `known`, waits up to `wait` seconds for news."""
        ...


def piece_path(digest: str, index: int) -> str:
    return f"{PIECES_PREFIX}{digest}/{index}"


def piece_view_path(digest: str) -> str:
    return f"{PIECES_PREFIX}{digest}"
