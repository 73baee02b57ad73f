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
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from core.digest import Digest
from supernode.client import SupernodeUnavailable
from upstream.raw_http import RawHttpClient

from .config import PeerConfig
from .failures import BlobMismatch, DownloadFailed, SwarmDigestsWrong, SwarmReset, SwarmStalled
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
# What a reader cut off at a fresh start is told: the bytes it was sent came from a feeder found lying.
VOID_BYTES = "the swarm's feeder sent bad pieces; the blob is being fetched again: retry the request"
# Fresh starts after the swarm's digests were found wrong: once more through the swarm, then the upstream alone.
START_OVERS = 2


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
        verify: bool = True,
        content: Digest | None = None,
        confirm: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.digest = digest
        self._store = store
        # Asked once every piece is here, before the blob lands: a file's origin still describes the version fetched
        # (upstream/origin.py); raising fails the download with nothing landed.
        self.confirm = confirm
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
        # Set when a piece lands, a start over voids them, or the download ends: not at each upstream chunk, which
        # `_changed` also marks, so a child's long-poll of this host's view (`wait_for_news`) wakes for news only.
        self._pieces_changed = asyncio.Event()
        # Moves at each fresh start (`_start_over`): a reader that was sent bytes of an earlier one is cut off.
        self._generation = 0
        self._live = LiveTail()
        self._landing = PieceLanding(
            digest, partial, store=store, stats=stats, live=self._live, notify=self._notify_pieces, verify=verify,
            content=content,
        )
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
    def landing(self) -> PieceLanding:
        """Where the pieces land: the progress of this download (bytes from peers and from the upstream) and, once
        landed, the content's digest."""
        return self._landing

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

    async def wait_for_news(self, known: int, timeout: float) -> None:
        """Until the verified pieces here differ from the bitmask `known` (the child's last sight of them: a piece
        landed, or a start over voided them), the download ended, or `timeout` passed: a child's long-poll of this
        host's view while the supernode is away."""
        deadline = time.monotonic() + timeout
        while not self.result.done() and self.partial.mask == known:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pieces_changed.wait(), left)

    async def read_range(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes start..end (inclusive) as their pieces are verified; the blob's end waits for the whole."""
        last_piece = self.layout.count - 1
        generation = self._generation
        fd = await self._open_for_reading()
        try:
            position = start
            while position <= end:
                if generation != self._generation:
                    if position > start:
                        raise DownloadFailed(VOID_BYTES)
                    generation = self._generation  # nothing was sent yet: the fresh start serves this reader
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
                    await self._wait_landed(generation, position > start)
                elif generation != self._generation:
                    continue  # the piece came in a fresh start: looked at again from the top
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

    async def _wait_landed(self, generation: int, sent: bool) -> None:
        """Until the blob has passed its digest and landed; a reader that was sent bytes of a start found wrong
        is cut off rather than given the right end to the wrong beginning."""
        while not self.result.done():
            if generation != self._generation and sent:
                raise DownloadFailed(VOID_BYTES)
            await self._changed.wait()
        self.result.result()

    async def verified(self) -> None:
        """Until the whole blob has passed its digest; raises DownloadFailed if it did not."""
        await asyncio.shield(self.result)

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
        # Opened once: the descriptor stays valid when the file is renamed into the store. The rename is atomic,
        # but the download's result is set only after it (and the directory's fsync, which a busy disk can hold
        # for long): between the two, the partial file is gone while `data_path` still names it. So a reader
        # looks where the blob goes next too; one of the two names exists at every moment.
        for path in (self.data_path, self._store.complete_path(self.digest)):
            try:
                return os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
        if self.result.done():
            self.result.result()
        raise DownloadFailed("blob vanished from the store while opening it")

    # --- the download ------------------------------------------------------------------------------

    async def run(self, source: RangeSource) -> None:
        """Fetch the blob, verify it and land it; the outcome goes to `result`. Never raises but on cancel."""
        try:
            self.result.set_result(await self._fetch_and_land(source))
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
            self._notify_pieces()

    async def _fetch_and_land(self, source: RangeSource) -> Path:
        """The swarm first (if any), the upstream for the rest, then the whole-blob check.

        When the swarm's digests turn out wrong (the blob fails its digest with pieces from peers in it, an
        upstream piece differs from its published digest, or the supernode reset the swarm because another member
        found that), every piece is void: this host accuses the feeder, starts over in the swarm's new epoch, and
        the second time from the upstream alone, checked against the blob's digest only.
        """
        use_swarm = self.swarm is not None
        for attempt in range(START_OVERS + 1):
            swarm: SwarmFetch | None = None
            landed = False
            try:
                if use_swarm and self.swarm is not None and not self.partial.complete:
                    swarm = self._swarm_fetch(self.swarm)
                    try:
                        await swarm.run(source)
                    except (SupernodeUnavailable, SwarmStalled) as exc:
                        log.warning("swarm for %s gave up (%s); the upstream serves the rest", self.digest, exc)
                        self.stats.fallbacks += 1
                if not self.partial.complete:
                    await self._fill.run(source)
                if self.confirm is not None:
                    await self.confirm()
                path = await self._landing.land()
                landed = True
                return path
            except SwarmReset as exc:
                log.warning("%s; this host starts over", exc)
            except BlobMismatch as exc:
                suspect = isinstance(exc, SwarmDigestsWrong) or self._landing.relied_on_swarm
                if not suspect or attempt == START_OVERS:
                    raise
                log.warning(
                    "%s with pieces checked against the swarm's digests: its feeder lied; this host starts over%s",
                    exc, " from the upstream alone" if attempt else "",
                )
                if swarm is not None and swarm.reporter is not None:
                    await swarm.reporter.accuse_feeder()
                # Once more through the swarm (reset now, with a new feeder); after that the upstream alone.
                use_swarm = use_swarm and attempt == 0
            finally:
                if swarm is not None and swarm.reporter is not None:
                    await swarm.reporter.finish(done=landed)
            await self._start_over()
        raise DownloadFailed(f"{self.digest}: no right copy after {START_OVERS} fresh starts")

    async def _start_over(self) -> None:
        """Every piece is void and the landing forgets them all. Readers that may have been sent bytes of a
        peer's piece are cut off; when every piece came from the upstream (it was the swarm's digests that were
        wrong, not the bytes), readers go on."""
        if self._landing.relied_on_swarm:
            self._generation += 1
        self.stats.swarm_restarts += 1
        await self._landing.reset()
        self._notify_pieces()

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

    def _notify_pieces(self) -> None:
        event, self._pieces_changed = self._pieces_changed, asyncio.Event()
        event.set()
        self._notify()
