"""Asking parents for their own view of a blob while the supernode is away.

Without the supernode no new piece digests arrive and parents' holdings go stale, so a child would stall and
fall back to the upstream, every child for every missing piece: the storm the swarm exists to prevent. Instead
each child asks its parents (`GET /pieces/<digest>` on their upload servers) which pieces they hold verified and
the digests of those. The feeder's own digests so travel down the tree, one level per round. A parent could lie
about digests as a feeder could; the blob's own digest catches that before the last piece is served, and the host
starts over (peer/download.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence

from core.pieces import PieceLayout
from supernode.api import TOKEN_HEADER, ParentInfo, mask_to_hex
from upstream.raw_http import RawHttpClient, RawHttpError

from .upload_api import PieceView, piece_view_path

log = logging.getLogger(__name__)

# A view is a few KiB (a digest per piece); a parent answering more is not answering a view.
MAX_VIEW_BYTES = 1 << 20
VIEW_TIMEOUT = 3.0


async def fetch_view(http: RawHttpClient, parent: ParentInfo, digest: str, join_token: str) -> PieceView | None:
    """The parent's view, or None if it has none or cannot give one in time."""
    headers = [(TOKEN_HEADER.encode(), join_token.encode())] if join_token else []
    url = f"{parent.url.rstrip('/')}{piece_view_path(digest)}"
    try:
        async with asyncio.timeout(VIEW_TIMEOUT):
            response = await http.get(url, headers, head_timeout=VIEW_TIMEOUT)
            try:
                length = response.content_length
                if response.status_code != 200 or length is None or not response.framed or length > MAX_VIEW_BYTES:
                    return None
                body = bytearray(length)
                if await response.fill(memoryview(body)) != length:
                    return None
            finally:
                await response.aclose()
        return PieceView.parse(json.loads(body))
    except (RawHttpError, OSError, TimeoutError, ValueError) as exc:
        log.debug("no piece view from %s for %s: %r", parent.peer_id, digest, exc)
        return None


async def refresh_parents(
    http: RawHttpClient, parents: Sequence[ParentInfo], digest: str, layout: PieceLayout, join_token: str
) -> tuple[list[ParentInfo], list[str]]:
    """The parents as they see themselves now (those that answered; the others as they were), and the piece
    digests they gave, by index ("" where none did). A view of another layout is ignored."""
    views = await asyncio.gather(*(fetch_view(http, parent, digest, join_token) for parent in parents))
    digests = [""] * layout.count
    refreshed: list[ParentInfo] = []
    complete = (1 << layout.count) - 1
    for parent, view in zip(parents, views, strict=True):
        if view is None or view.size != layout.blob_size or view.piece_size != layout.piece_size:
            refreshed.append(parent)
            continue
        held = int(view.pieces or "0", 16) & complete
        # Only pieces whose digests it gives count as held: a child cannot verify the others.
        known = sum(1 << index for index in view.digests if 0 <= index < layout.count)
        held &= known
        for index, sha256 in view.digests.items():
            if 0 <= index < layout.count and held >> index & 1 and not digests[index]:
                digests[index] = sha256
        refreshed.append(ParentInfo(parent.peer_id, parent.url, mask_to_hex(held), held == complete))
    return refreshed, digests
