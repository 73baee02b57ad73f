"""Fetching a blob's missing pieces from the upstream: a contiguous run per request, resumed with Range.

The body is received straight into piece buffers that readers right behind may already read from (the live
tail), cut into pieces and handed to the landing, which digests, writes and hashes them. The registry client
has already retried a request that failed outright; here only a body that broke off is resumed, with the same
number of attempts (a failure counts only when the attempt brought no piece).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx

from upstream.client import UpstreamError
from upstream.raw_http import RawHttpError

from .failures import UpstreamFailed
from .landing import PieceLanding
from .live_tail import LiveTail
from .partial import PartialBlob
from .piece_buffers import PieceBuffers
from .ratelimit import TokenBucket
from .source import RangeSource
from .stats import PeerStats

# How much more of a piece arriving from the upstream wakes readers of the live tail.
LIVE_STEP = 256 * 1024
MAX_BACKOFF = 8.0


class UpstreamFill:
    def __init__(
        self,
        partial: PartialBlob,
        landing: PieceLanding,
        *,
        live: LiveTail,
        rate: TokenBucket,
        buffers: PieceBuffers,
        attempts: int,
        backoff: float,
        stats: PeerStats,
        notify: Callable[[], None],
    ) -> None:
        self.partial = partial
        self.layout = partial.layout
        self.landing = landing
        self.live = live
        self.rate = rate
        self.buffers = buffers
        self.attempts = attempts
        self.backoff = backoff
        self.stats = stats
        self.notify = notify

    async def run(self, source: RangeSource) -> None:
        """Until every piece is here; raises UpstreamFailed (or what the landing raises)."""
        failures = 0
        while (first := self._first_missing()) is not None:
            last = first
            while last + 1 < self.layout.count and not self.partial.has(last + 1):
                last += 1
            try:
                progressed = await self._fetch_run(source, first, last)
            except _BrokenBody as broken:
                failures = 0 if broken.progressed else failures + 1
                if failures >= self.attempts:
                    raise UpstreamFailed(f"upstream: {broken.cause!r}") from broken.cause
                self.stats.upstream_retries += 1
                await asyncio.sleep(min(self.backoff * 2**failures, MAX_BACKOFF))
            else:
                if progressed:
                    failures = 0

    async def _fetch_run(self, source: RangeSource, first: int, last: int) -> bool:
        """Pieces first..last in one request. Raises UpstreamFailed if the request fails, _BrokenBody if the body
        breaks off."""
        start = self.layout.offset(first)
        end = self.layout.offset(last) + self.layout.length(last) - 1
        progressed = opened = False
        # Storing piece i (digest, write, hash) overlaps with receiving piece i+1, so two buffers take turns:
        # a fresh 4 MiB bytearray per piece cost more (zeroing, page faults) than receiving into it.
        storing: asyncio.Task[None] | None = None
        buffer_size = min(self.layout.piece_size, self.layout.blob_size)
        buffers = [self.buffers.take(buffer_size) for _ in range(min(2, last - first + 1))]
        reusable = False
        try:
            async with source.open_range(start, end) as body:
                opened = True
                for turn, index in enumerate(range(first, last + 1)):
                    offset, length = self.layout.offset(index), self.layout.length(index)
                    await self.rate.consume(length)
                    # The piece is received straight into its buffer, which readers right behind may already read
                    # from (the live tail) and which is then digested and written as it is.
                    buffer = buffers[turn % 2]
                    piece = memoryview(buffer)[:length]
                    self.live.follow(offset, buffer)
                    if await body.fill(piece, self._live_progress) < length:
                        raise UpstreamError("the upstream ended the blob early")
                    self.live.cut(offset, piece)
                    if storing is not None:
                        # The other buffer is free again once its piece is stored.
                        await storing
                        progressed = True
                    storing = asyncio.create_task(self.landing.accept(index, piece, None))
                    self.notify()
                if storing is not None:
                    await storing
                    progressed, storing = True, None
                reusable = True
            return progressed
        except (UpstreamError, RawHttpError, httpx.HTTPError) as exc:
            if not opened:
                # The request itself failed after the client's own retries (an error status, or no connection):
                # retrying here too would multiply the attempts. Only broken bodies resume.
                raise UpstreamFailed(f"upstream: {exc!r}") from exc
            if storing is not None:
                # The piece cut just before the break is progress too: land it before counting this attempt as a
                # failure, or an upstream that breaks after every piece fails a blob it is delivering.
                with contextlib.suppress(Exception):
                    await storing
                    progressed = True
                storing = None
            raise _BrokenBody(exc, progressed) from exc
        finally:
            if storing is not None:
                # A piece already cut from the stream is still good: let it land before retrying.
                with contextlib.suppress(Exception):
                    await storing
            self.live.stop()
            if reusable:
                # Only after a clean finish: a cancelled store may still have a worker thread reading a buffer.
                for buffer in buffers:
                    self.buffers.give(buffer)

    def _live_progress(self, filled: int) -> None:
        """More of the piece being received has arrived: wake readers right behind at its first bytes and then
        every LIVE_STEP (a wake-up per socket read would cost more than the few bytes it hands out)."""
        live = self.live
        live.filled = filled
        if not live.announced or filled - live.announced >= LIVE_STEP:
            live.announced = filled
            self.notify()

    def _first_missing(self) -> int | None:
        for index in range(self.layout.count):
            if not self.partial.has(index):
                return index
        return None


class _BrokenBody(Exception):
    def __init__(self, cause: Exception, progressed: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.progressed = progressed
