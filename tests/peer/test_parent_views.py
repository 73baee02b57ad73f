"""A parent's own view of a blob, long-polled by its children while the supernode is away: it answers as soon as
its verified pieces differ from what the child last saw, and holds the request while they do not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.digest import Digest
from core.pieces import MiB, PieceLayout
from peer.download import BlobDownload
from peer.parent_views import VIEW_WAIT, watch_parent
from peer.upload_api import PieceLocation, PieceView
from peer.upload_server import UploadServer
from supernode.api import ParentInfo
from upstream.raw_http import RawHttpClient

from .test_download import MemorySource, blob, make_download


class DownloadViews:
    """A PieceProvider over one download: the views the peer's service gives (peer/service.py, piece_view)."""

    def __init__(self, download: BlobDownload) -> None:
        self.download = download
        self.asked: list[tuple[int, float]] = []

    async def locate_piece(self, digest: Digest, index: int, wait: float) -> PieceLocation | None:
        return None

    async def piece_view(self, digest: Digest, known: int, wait: float) -> PieceView | None:
        self.asked.append((known, wait))
        await self.download.wait_for_news(known, wait)
        partial, layout = self.download.partial, self.download.layout
        return PieceView(layout.blob_size, layout.piece_size, f"{partial.mask:x}", dict(partial.piece_digests))


async def started_download(tmp_path: Path) -> tuple[BlobDownload, MemorySource, asyncio.Task[None]]:
    """A download whose upstream stalls after its first piece (MemorySource's gate), with that piece landed."""
    data, digest = blob()
    download, _ = await make_download(tmp_path, data, digest)
    source = MemorySource(data)
    source.gate.clear()
    running = asyncio.create_task(download.run(source))
    await download.wait_piece(0, 5.0)
    return download, source, running


async def serving(provider: DownloadViews) -> AsyncIterator[str]:
    server = UploadServer(provider)
    port = await server.start("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()


async def test_the_view_is_held_until_a_piece_lands_then_answered_at_once(tmp_path: Path) -> None:
    download, source, running = await started_download(tmp_path)
    assert download.partial.mask == 0b1
    # Nothing new: held for the wait.
    started = time.monotonic()
    await download.wait_for_news(0b1, 0.3)
    assert time.monotonic() - started >= 0.29
    # A child that saw nothing yet is answered at once.
    started = time.monotonic()
    await download.wait_for_news(0, 5.0)
    assert time.monotonic() - started < 0.2
    # A piece landing ends the wait well before it runs out.
    waiting = asyncio.create_task(download.wait_for_news(0b1, 5.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    source.gate.set()
    await asyncio.wait_for(waiting, 2.0)
    assert download.partial.mask != 0b1
    await running


async def test_a_child_long_polls_the_view_over_http_and_gets_the_digests(tmp_path: Path) -> None:
    download, source, running = await started_download(tmp_path)
    provider = DownloadViews(download)
    layout = PieceLayout(download.layout.blob_size, 4 * MiB)
    http = RawHttpClient(ssl_context=None, connect_timeout=2.0, read_timeout=10.0)
    async for url in serving(provider):
        parent = ParentInfo("parent", url, "0", False)
        sight = await watch_parent(http, parent, 0, str(download.digest), layout, "")
        # Answered at once (it holds piece 0, the child knew of none), with piece 0's digest.
        assert provider.asked[-1] == (0, VIEW_WAIT)
        assert sight.parent.pieces == "1" and sight.stated == 1 and not sight.parent.done
        assert sight.digests[0] == download.partial.piece_digests[0] and sight.digests[1:] == ["", ""]
        # Asked again with what it saw: held until the upstream moves on, then the rest.
        polling = asyncio.create_task(watch_parent(http, sight.parent, sight.stated, str(download.digest), layout, ""))
        await asyncio.sleep(0.3)
        assert not polling.done()
        source.gate.set()
        await running
        later = await asyncio.wait_for(polling, 3.0)
        assert later.stated != 1 and all(later.digests[i] for i in range(layout.count) if later.stated >> i & 1)


@pytest.mark.parametrize("query", ["known=zz", "wait=31", "wait=-1", "wait=nan", "known=-1", "known=" + "f" * 9000])
async def test_a_malformed_long_poll_is_a_400_not_a_hang(tmp_path: Path, query: str) -> None:
    download, source, running = await started_download(tmp_path)
    provider = DownloadViews(download)
    async for url in serving(provider):
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{url}/pieces/{download.digest}?{query}")
        assert response.status_code == 400 and "invalid" in response.json()["error"]
        assert provider.asked == []
    source.gate.set()
    await running
