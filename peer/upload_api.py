"""The peer-to-peer piece protocol, shared by the upload server and the piece client.

    GET /pieces/<algorithm>:<hex>/<index>?wait=<seconds>
    X-Damselfly-Token: <join token>

200 with the piece's bytes, or 404 when this peer does not have the piece (and did not get it within `wait`
seconds: a parent holds the request while the piece is on its way, so children never poll).
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


class PieceProvider(Protocol):
    async def locate_piece(self, digest: Digest, index: int, wait: float) -> PieceLocation | None:
        """Where the verified piece is on disk, waiting up to `wait` seconds for it to arrive."""
        ...


def piece_path(digest: str, index: int) -> str:
    return f"{PIECES_PREFIX}{digest}/{index}"
