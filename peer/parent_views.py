"""Asking parents for their own view of a blob while the supernode is away.

Without the supernode no new piece digests arrive and parents' holdings go stale, so a child would stall and
fall back to the upstream, every child for every missing piece: the storm the swarm exists to prevent. Instead
each child asks its parents (`GET /pieces/<digest>?known=MASK&wait=S` on their upload servers, a long-poll that
answers as soon as the parent's pieces differ from MASK) which pieces they hold verified and the digests of
those. The feeder's own digests so travel down the tree, one level per round. A parent could lie
about digests as a feeder could; the blob's own digest catches that before the last piece is served, and the host
starts over (peer/download.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

from core.pieces import PieceLayout
from supernode.api import TOKEN_HEADER, ParentInfo, mask_to_hex
from upstream.raw_http import RawHttpClient, RawHttpError

from .upload_api import PieceView, piece_view_path

log = logging.getLogger(__name__)

# A view is a few KiB (a digest per piece); a parent answering more is not answering a view.
MAX_VIEW_BYTES = 1 << 20
VIEW_TIMEOUT = 3.0


# How long a parent holds a child's view request while it has no news (a long-poll, as the supernode's views).
VIEW_WAIT = 2.0
# Pause before asking again a parent that gave no view (gone, or holding none of the blob).
NO_VIEW_PAUSE = 1.0


async def fetch_view(
    http: RawHttpClient, parent: ParentInfo, digest: str, join_token: str, known: int = 0, wait: float = 0.0
) -> PieceView | None:
    """The parent's view, or None if it has none or cannot give one in time. While its verified pieces are those
    of the bitmask `known`, the parent holds the request up to `wait` seconds for news."""
    headers = [(TOKEN_HEADER.encode(), join_token.encode())] if join_token else []
    url = f"{parent.url.rstrip('/')}{piece_view_path(digest)}?known={known:x}&wait={wait:g}"
    timeout = VIEW_TIMEOUT + wait
    try:
        async with asyncio.timeout(timeout):
            response = await http.get(url, headers, head_timeout=timeout)
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


@dataclass(frozen=True, slots=True)
class ParentSight:
    """What a child last learnt from one parent's own view."""

    parent: ParentInfo  # its pieces: those it holds verified and gave the digests of
    digests: list[str]  # by index, "" where it gave none
    # The pieces as the parent stated them, the `known` of the next long-poll: were it the masked `parent.pieces`,
    # a parent holding a piece it gives no digest of would answer at once, every time.
    stated: int


async def watch_parent(
    http: RawHttpClient, parent: ParentInfo, stated: int, digest: str, layout: PieceLayout, join_token: str
) -> ParentSight:
    """The parent's view once its pieces differ from `stated` (or after VIEW_WAIT). A parent that gives no view,
    or one of another layout, is returned as it was, after a pause."""
    view = await fetch_view(http, parent, digest, join_token, stated, VIEW_WAIT)
    digests = [""] * layout.count
    if view is None or view.size != layout.blob_size or view.piece_size != layout.piece_size:
        await asyncio.sleep(NO_VIEW_PAUSE)
        return ParentSight(parent, digests, stated)
    complete = (1 << layout.count) - 1
    stated = int(view.pieces or "0", 16)
    # Only pieces whose digests it gives count as held: a child cannot verify the others.
    held = stated & complete & sum(1 << index for index in view.digests if 0 <= index < layout.count)
    for index, sha256 in view.digests.items():
        if 0 <= index < layout.count and held >> index & 1:
            digests[index] = sha256
    return ParentSight(ParentInfo(parent.peer_id, parent.url, mask_to_hex(held), held == complete), digests, stated)
