"""A download's swarm loop against parents that cannot help: each is skipped or given up on, never a failure and
never a hot loop, and the upstream serves the blob once the swarm has stalled."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import cast

from core.pieces import MiB, PieceLayout
from peer.config import PeerConfig
from peer.download import BlobDownload, SwarmLink
from peer.stats import PeerStats
from peer.store import BlobStore
from supernode.api import JoinRequest, ParentInfo, ReportRequest, SwarmView
from supernode.shards import SupernodeShards
from tests.peer.test_download import MemorySource, blob
from tests.support.http_server import BackgroundHTTPServer
from upstream.config import UpstreamConfig

STALL = 1.5


@dataclass
class StandInSupernode:
    """Answers a join and every view with the same parents and piece digests, as a supernode would."""

    parents: list[ParentInfo]
    piece_digests: list[str]
    size: int
    reports: list[ReportRequest] = field(default_factory=list)

    def _view(self, digest: str) -> SwarmView:
        return SwarmView(digest, "child", self.size, 4 * MiB, self.piece_digests, self.parents, 1, True)

    async def join(self, digest: str, request: JoinRequest) -> SwarmView:
        return self._view(digest)

    async def view(self, digest: str, peer_id: str, since: int, wait: float, digests_from: int = 0) -> SwarmView:
        return self._view(digest)

    async def report(self, digest: str, request: ReportRequest) -> int | None:
        self.reports.append(request)
        return 0

    base_url = "http://stand-in"

    def owner(self, key: str) -> StandInSupernode:
        return self  # one process: the swarm never moves

    async def moved(self, key: str, url: str) -> None:
        await asyncio.Event().wait()


class NotHere(BackgroundHTTPServer):
    """A parent that answers every piece request with 404 at once, counting them."""

    def __init__(self) -> None:
        self.requests = 0

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


async def download_with(tmp_path: Path, parents: list[ParentInfo]) -> tuple[BlobDownload, bytes, MemorySource]:
    data, digest = blob()
    layout = PieceLayout(len(data), 4 * MiB)
    digests = [
        hashlib.sha256(data[layout.offset(i) : layout.offset(i) + layout.length(i)]).hexdigest()
        for i in range(layout.count)
    ]
    supernode = StandInSupernode(parents, digests, len(data))
    store = BlobStore(tmp_path)
    partial = await store.open_partial(digest, layout)
    config = PeerConfig(data_dir=tmp_path, upstream=UpstreamConfig(backoff=0.01), stall_timeout=STALL)
    link = SwarmLink(cast(SupernodeShards, supernode), "me")
    download = BlobDownload(digest, partial, store=store, config=config, swarm=link, stats=PeerStats())
    source = MemorySource(data)
    await download.run(source)
    return download, data, source


async def test_a_parent_whose_address_does_not_parse_is_skipped(tmp_path: Path) -> None:
    broken = ParentInfo("rogue", "http://[::1:21215", "", True)
    download, data, source = await download_with(tmp_path, [broken])
    assert download.result.result().read_bytes() == data
    assert download.stats.fallbacks == 1 and source.ranges == [(0, len(data) - 1)]


async def test_a_parent_answering_not_here_at_once_is_not_asked_in_a_loop(tmp_path: Path) -> None:
    with NotHere() as parent:
        info = ParentInfo("empty", parent.base_url, "", True)
        download, data, _ = await download_with(tmp_path, [info])
        asked = parent.requests
    assert download.result.result().read_bytes() == data
    # Backed off and then dropped: a handful of requests in the stall time, where a loop made thousands.
    assert 3 <= asked <= 3 * 8, asked
