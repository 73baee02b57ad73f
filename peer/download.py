"""One blob being fetched on this host, shared by every local reader and every child peer.

How a blob arrives (docs/architecture.md, "How a blob travels", steps 4-10), each part in its own module:
- the swarm (peer/swarm_fetch.py): join the blob's swarm; a host told it is the feeder fetches from the upstream,
  any other fetches verified pieces from the parents the piece picker (peer/piece_picker.py) chooses;
- the upstream (peer/upstream_fill.py): with no supernode, or once the swarm is given up, what is missing;
- the landing (peer/landing.py): every piece digested, written and hashed in order; the blob moved into the
  store only once the whole-blob digest matches.
This module is the face the rest sees: it runs those parts in order and serves readers. Readers stream pieces in
order as they are verified; the last piece is held back until the whole blob is verified, so no client ever
receives a complete blob that is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from core.digest import Digest
from supernode.client import SupernodeUnavailable
from upstream.raw_http import RawHttpClient

from .config import PeerConfig
from .failures import DownloadFailed, SwarmStalled
from .landing import PieceLanding
from .live_tail import LiveTail
from .partial import PartialBlob
from .piece_buffers import PieceBuffers
from .ratelimit import RateLimits, TokenBucket
from .source import RangeSource
from .stats import PeerStats
from .store import BlobStore
from .swarm_fetch import SwarmFetch, SwarmLink
from .upstream_fill import UpstreamFill

__all__ = ["BlobDownload", "DownloadFailed", "SwarmLink"]

log = logging.getLogger(__name__)
READ_CHUNK = 1024 * 1024


class BlobDownload:
    def __init__(
        self,
        digest: Digest,
        partial: PartialBlob,
        *,
        store: BlobStore,
        config: PeerConfig,
        piece_http: RawHttpClient | None = None,
        swarm: SwarmLink | None,
        stats: PeerStats,
        limits: RateLimits | None = None,
        piece_slots: asyncio.Semaphore | None = None,
        buffers: PieceBuffers | None = None,
    ) -> None:
        self.digest = digest
        self.partial = partial
        self.layout = partial.layout
        self.config = config
        # Pieces come from parents' upload servers (plain HTTP) through the raw client: no copies, no hashing on
        # the event loop.
        self.piece_http = piece_http or RawHttpClient(
            ssl_context=None, connect_timeout=config.connect_timeout, read_timeout=config.read_timeout
        )
        self.swarm = swarm
        self.stats = stats
        unlimited = TokenBucket(0)
        self.limits = limits or RateLimits(unlimited, unlimited, unlimited)
        self.piece_slots = piece_slots or asyncio.Semaphore(config.max_inflight)
        self.buffers = buffers or PieceBuffers(keep=0)
        self.result: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        # Consumers may never look at the result; don't let an unobserved failure warn.
        self.result.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
        self._changed = asyncio.Event()
        self._live = LiveTail()
        self._landing = PieceLanding(digest, partial, store=store, stats=stats, live=self._live, notify=self._notify)
        self._fill = UpstreamFill(
            partial,
            self._landing,
            live=self._live,
            rate=self.limits.source,
            buffers=self.buffers,
            attempts=config.upstream_attempts,
            backoff=config.upstream_backoff,
            stats=stats,
            notify=self._notify,
        )

    # --- readers -----------------------------------------------------------------------------------

    @property
    def data_path(self) -> Path:
        """Where the blob's bytes are now: the partial file, or the store once it has landed."""
        if self.result.done() and not self.result.cancelled() and self.result.exception() is None:
            return self.result.result()
        return self.partial.data_path

    async def wait_piece(self, index: int, timeout: float | None = None) -> bool:
        """Wait until piece `index` is verified here; False on timeout; raises if the download failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.partial.has(index):
            if self.result.done():
                self.result.result()  # raises the failure
                return self.partial.has(index)
            event = self._changed
            if deadline is None:
                await event.wait()
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)
        return True

    async def read_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive) as their pieces are verified; the blob's end waits for the whole."""
        last_piece = self.layout.count - 1
        fd = await self._open_for_reading()
        try:
            position = start
            while position <= end:
                index = self.layout.index_of(position)
                if index != last_piece and not self.partial.has(index):
                    early = self._live.peek(position, end, READ_CHUNK)
                    if early:
                        position += len(early)
                        yield early
                        continue
                    await self._wait_change()
                    continue
                await self.wait_piece(index)
                if index == last_piece:
                    await asyncio.shield(self.result)
                piece_end = min(self.layout.offset(index) + self.layout.length(index) - 1, end)
                while position <= piece_end:
                    length = min(READ_CHUNK, piece_end - position + 1)
                    chunk = await asyncio.to_thread(os.pread, fd, length, position)
                    if len(chunk) != length:
                        raise DownloadFailed("short read from the piece store")
                    position += length
                    yield chunk
        finally:
            os.close(fd)

    async def wait_readable(self, position: int) -> None:
        """Until the byte at `position` can be read (stored, or arriving from the upstream); raises on failure."""
        index = self.layout.index_of(position)
        while not self.partial.has(index) and not (
            index != self.layout.count - 1 and self._live.peek(position, position, 1)
        ):
            await self._wait_change()

    async def _wait_change(self) -> None:
        """Until a piece lands or more upstream bytes arrive; raises if the download failed."""
        if self.result.done():
            self.result.result()
            return
        await self._changed.wait()

    async def _open_for_reading(self) -> int:
        for _ in range(3):
            path = self.data_path
            try:
                # Opened once: the descriptor stays valid when the file is renamed into the store.
                return os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                if self.result.done():
                    self.result.result()
                await asyncio.sleep(0.01)
        raise DownloadFailed("blob vanished from the store while opening it")

    # --- the download ------------------------------------------------------------------------------

    async def run(self, source: RangeSource) -> None:
        """Fetch the blob, verify it and land it; the outcome goes to `result`. Never raises but on cancel."""
        swarm: SwarmFetch | None = None
        try:
            if self.swarm is not None and not self.partial.complete:
                swarm = self._swarm_fetch(self.swarm)
                try:
                    await swarm.run(source)
                except (SupernodeUnavailable, SwarmStalled) as exc:
                    log.warning("swarm for %s gave up (%s); the upstream serves the rest", self.digest, exc)
                    self.stats.fallbacks += 1
            if not self.partial.complete:
                await self._fill.run(source)
            self.result.set_result(await self._landing.land())
        except asyncio.CancelledError:
            # The daemon is stopping: keep the verified pieces for the next run instead of throwing them away.
            with contextlib.suppress(OSError):
                await self.partial.save_state()
            self.partial.close()
            if not self.result.done():
                self.result.set_exception(DownloadFailed("the daemon is stopping"))
            raise
        except Exception as exc:
            log.warning("download of %s failed: %s", self.digest, exc)
            self._fail(exc if isinstance(exc, DownloadFailed) else DownloadFailed(str(exc)))
        finally:
            if swarm is not None and swarm.reporter is not None:
                ok = self.result.done() and not self.result.cancelled() and self.result.exception() is None
                await swarm.reporter.finish(done=ok)
            self._notify()

    def _swarm_fetch(self, link: SwarmLink) -> SwarmFetch:
        return SwarmFetch(
            self.digest,
            self.partial,
            self._landing,
            self._fill,
            link=link,
            config=self.config,
            piece_http=self.piece_http,
            rate=self.limits.download,
            piece_slots=self.piece_slots,
            stats=self.stats,
        )

    def _fail(self, exc: Exception) -> None:
        self.partial.discard()
        if not self.result.done():
            self.result.set_exception(exc)

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()
