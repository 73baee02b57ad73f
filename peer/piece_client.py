"""Fetches one piece from a parent peer and verifies it before anyone sees it.

The body is received straight into a buffer of the piece's size (`raw_http`) and digested in a worker thread:
through httpx, receiving and hashing pieces on the event loop took half of a child's loop in the pull storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mmap

from supernode.api import TOKEN_HEADER
from upstream.raw_http import RawHttpClient

from .upload_api import piece_path


class PieceUnavailable(Exception):
    """The parent does not have the piece (yet); ask someone else."""


class PieceCorrupt(Exception):
    """The parent sent bytes that do not match the piece's digest: it must not be asked again."""


async def fetch_piece(
    http: RawHttpClient,
    parent_url: str,
    digest: str,
    index: int,
    *,
    expected_length: int,
    expected_sha256: str,
    wait: float,
    join_token: str,
    body_slots: asyncio.Semaphore | None = None,
) -> memoryview:
    """The verified piece. Raises PieceUnavailable, PieceCorrupt, or RawHttpError when the parent cannot be
    reached or breaks off. `body_slots` bounds how many piece bodies the host holds in memory at once; it is taken
    only once the parent answers, never while the parent holds the request waiting for the piece, so hosts waiting
    on each other's pieces in different swarms cannot starve each other of slots."""
    headers = [(TOKEN_HEADER.encode(), join_token.encode())] if join_token else []
    url = f"{parent_url.rstrip('/')}{piece_path(digest, index)}?wait={wait:.1f}"
    # The parent holds the request until it has the piece: the answer may take `wait` on top of the usual.
    response = await http.get(url, headers, head_timeout=wait + http.read_timeout)
    try:
        if response.status_code != 200:
            raise PieceUnavailable(f"{parent_url} answered {response.status_code} for piece {index}")
        if response.content_length != expected_length or not response.framed:
            raise PieceCorrupt(f"{parent_url} sent a piece of the wrong length")
        async with body_slots or contextlib.nullcontext():
            # An anonymous map, not a bytearray: no zeroing pass over 4 MiB before the bytes arrive.
            piece = memoryview(mmap.mmap(-1, max(expected_length, 1)))[:expected_length]
            if await response.fill(piece) != expected_length:
                raise PieceUnavailable(f"{parent_url} closed the piece early")
    finally:
        await response.aclose()
    if await asyncio.to_thread(_sha256_hex, piece) != expected_sha256:
        raise PieceCorrupt(f"piece {index} from {parent_url} does not match its digest")
    return piece


def _sha256_hex(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()

