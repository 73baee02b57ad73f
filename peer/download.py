"""One blob being fetched on this host, shared by every local reader and every child peer.

How a blob arrives (docs/architecture.md, "How a blob travels", steps 4-10):
- join the blob's swarm at the supernode; if told to go to the source, fetch from the upstream, cut the stream
  into pieces, digest each and report the digests so children can verify;
- otherwise fetch pieces from the parents the supernode names, several at once, each verified against the
  source's digest before it is written; a parent that sends a bad piece is reported and never asked again;
- with no supernode, or no progress from the swarm for `stall_timeout`, the upstream serves what is missing;
- the whole blob is hashed in order as pieces arrive and verified before it lands in the store.
Readers stream pieces in order as they are verified; the last piece is held back until the whole blob is
verified, so no client ever receives a complete blob that is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from core.digest import Digest, Hasher
from supernode.api import ROLE_FEEDER, JoinRequest, ParentInfo, SwarmView, hex_to_mask, mask_to_hex
from supernode.client import SupernodeUnavailable, UnknownPeer
from supernode.shards import SupernodeShards
from upstream.client import UpstreamError
from upstream.raw_http import RawHttpClient, RawHttpError

from .config import PeerConfig
from .live_tail import LiveTail
from .partial import PartialBlob
from .piece_buffers import PieceBuffers
from .piece_client import PieceCorrupt, PieceUnavailable, fetch_piece
from .ratelimit import RateLimits, TokenBucket
from .reporter import SwarmReporter
from .source import RangeSource
from .stats import PeerStats
from .store import BlobStore

log = logging.getLogger(__name__)
READ_CHUNK = 1024 * 1024
VIEW_WAIT = 5.0
# How much more of a piece arriving from the upstream wakes readers of the live tail.
LIVE_STEP = 256 * 1024
STATE_INTERVAL = 1.0
# Consecutive failed syncs, with no fetch in flight, after which the swarm is given up for the upstream.
SYNC_FAILURES_BEFORE_FALLBACK = 3


class DownloadFailed(Exception):
    """The blob could not be had from the swarm nor from the upstream, or it did not match its digest."""


class SwarmStalled(Exception):
    """The swarm made no progress for too long; the upstream takes over."""


@dataclass(slots=True)
class SwarmLink:
    """What a download needs to take part in the swarm."""

    client: SupernodeShards
    peer_id: str


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
        self.store = store
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
        self._state_saved = float("-inf")  # the first verified piece is recorded at once
        self._live = LiveTail()
        self._hasher: Hasher = digest.hasher()
        self._hashed = 0
        self._hash_lock = asyncio.Lock()
        self._reporter: SwarmReporter | None = None
        self._source_role = False
        self._bad_parents: set[str] = set()
        # Piece digests the swarm's source reported ("" while unknown); a promoted source checks the
        # upstream against them too.
        self._digests: list[str] = [""] * self.layout.count

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
        """Fetch the blob, verify it and land it; the outcome goes to `result`. Never raises."""
        try:
            if self.swarm is not None and not self.partial.complete:
                try:
                    await self._from_swarm(source)
                except (SupernodeUnavailable, SwarmStalled) as exc:
                    log.warning("swarm for %s gave up (%s); the upstream serves the rest", self.digest, exc)
                    self.stats.fallbacks += 1
            if not self.partial.complete:
                await self._from_upstream(source)
            await self._verify_and_land()
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
            if self._reporter is not None:
                ok = self.result.done() and not self.result.cancelled() and self.result.exception() is None
                await self._reporter.finish(done=ok)
            self._notify()

    def _fail(self, exc: Exception) -> None:
        self.partial.discard()
        if not self.result.done():
            self.result.set_exception(exc)

    async def _verify_and_land(self) -> None:
        await self._advance_hash()
        if self._hashed != self.layout.count or self._hasher.hexdigest() != self.digest.hex:
            self.stats.verify_failures += 1
            raise DownloadFailed(f"blob does not match its digest {self.digest}")
        path = await self.store.commit(self.digest, self.partial)
        self.result.set_result(path)

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _accept(self, index: int, data: bytes | memoryview, verified_sha256: str | None) -> None:
        """Store a piece and tell readers and the swarm.

        `verified_sha256` is the swarm digest a peer's piece was checked against; None marks upstream bytes,
        which are digested here (and must match the swarm's digest where one was already published). Digest,
        write and the in-order whole-blob hash happen in one trip to a worker thread.
        """
        if self.partial.has(index):
            self._live.stored(self.layout.offset(index))  # its buffer is about to be reused
            return
        async with self._hash_lock:
            in_order = index == self._hashed
            digested = await asyncio.to_thread(self._store, index, data, verified_sha256 is None, in_order)
            if in_order:
                self._hashed += 1
        piece_sha256 = verified_sha256 or digested
        if verified_sha256 is None and self._digests[index] and self._digests[index] != digested:
            raise DownloadFailed(f"the upstream's piece {index} differs from what the swarm verified")
        self.partial.mark(index, piece_sha256)
        self._live.stored(self.layout.offset(index))
        if verified_sha256 is None:
            self.stats.bytes_from_upstream += len(data)
        else:
            self.stats.bytes_from_peers += len(data)
        if self._reporter is not None:
            self._reporter.piece(index, piece_sha256 if self._source_role else None)
        self._notify()
        await self._advance_hash()
        await self._maybe_save_state()

    async def _maybe_save_state(self) -> None:
        """Record the verified pieces at most once a second: what a crash can lose is a second's pieces."""
        now = time.monotonic()
        if now - self._state_saved < STATE_INTERVAL:
            return
        self._state_saved = now
        try:
            await self.partial.save_state()
        except OSError as exc:
            # The state file only speeds up a resume; a full disk must not fail a download that has its space.
            log.warning("could not record the pieces of %s: %s", self.digest, exc)

    def _store(self, index: int, data: bytes | memoryview, digest_it: bool, in_order: bool) -> str:
        """Worker-thread part of `_accept`: digest, write, and feed the whole-blob hash when in order."""
        digested = hashlib.sha256(data).hexdigest() if digest_it else ""
        self.partial.write_at(index, data)
        if in_order:
            self._hasher.update(data)
        return digested

    async def _advance_hash(self) -> None:
        """Feed the whole-blob hash with pieces that became contiguous from the start (read back from disk)."""
        async with self._hash_lock:
            while self._hashed < self.layout.count and self.partial.has(self._hashed):
                chunk = await self.partial.read_piece(self._hashed)
                await asyncio.to_thread(self._hasher.update, chunk)
                self._hashed += 1

    # --- from the upstream -------------------------------------------------------------------------

    async def _from_upstream(self, source: RangeSource) -> None:
        """Fetch every missing piece from the upstream, a contiguous run per request, resuming with Range."""
        failures = 0
        while (first := self._first_missing()) is not None:
            last = first
            while last + 1 < self.layout.count and not self.partial.has(last + 1):
                last += 1
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
                        await self.limits.source.consume(length)
                        # The piece is received straight into its buffer, which readers right behind may already
                        # read from (the live tail) and which is then digested and written as it is.
                        buffer = buffers[turn % 2]
                        piece = memoryview(buffer)[:length]
                        self._live.follow(offset, buffer)
                        if await body.fill(piece, self._live_progress) < length:
                            raise UpstreamError("the upstream ended the blob early")
                        self._live.cut(offset, piece)
                        if storing is not None:
                            # The other buffer is free again once its piece is stored.
                            await storing
                            progressed = True
                        storing = asyncio.create_task(self._accept(index, piece, None))
                        self._notify()
                    if storing is not None:
                        await storing
                        progressed, storing = True, None
                    reusable = True
            except (UpstreamError, RawHttpError, httpx.HTTPError) as exc:
                if not opened:
                    # The request itself failed after the client's own retries (an error status, or no
                    # connection): retrying here too would multiply the attempts. Only broken bodies resume.
                    raise DownloadFailed(f"upstream: {exc!r}") from exc
                if storing is not None:
                    # The piece cut just before the break is progress too: land it before counting this attempt
                    # as a failure, or an upstream that breaks after every piece fails a blob it is delivering.
                    with contextlib.suppress(Exception):
                        await storing
                        progressed = True
                    storing = None
                failures = 0 if progressed else failures + 1
                if failures >= self.config.upstream_attempts:
                    raise DownloadFailed(f"upstream: {exc!r}") from exc
                self.stats.upstream_retries += 1
                await asyncio.sleep(min(self.config.upstream_backoff * 2**failures, 8.0))
            finally:
                if storing is not None:
                    # A piece already cut from the stream is still good: let it land before retrying.
                    with contextlib.suppress(Exception):
                        await storing
                self._live.stop()
                if reusable:
                    # Only after a clean finish: a cancelled store may still have a worker thread reading a buffer.
                    for buffer in buffers:
                        self.buffers.give(buffer)

    def _live_progress(self, filled: int) -> None:
        """More of the piece being received has arrived: wake readers right behind at its first bytes and then
        every LIVE_STEP (a wake-up per socket read would cost more than the few bytes it hands out)."""
        live = self._live
        live.filled = filled
        if not live.announced or filled - live.announced >= LIVE_STEP:
            live.announced = filled
            self._notify()

    def _first_missing(self) -> int | None:
        for index in range(self.layout.count):
            if not self.partial.has(index):
                return index
        return None

    # --- from the swarm ----------------------------------------------------------------------------

    async def _from_swarm(self, source: RangeSource) -> None:
        assert self.swarm is not None
        client, peer_id = self.swarm.client, self.swarm.peer_id
        view = await client.join(str(self.digest), self._join_request())
        if view.piece_size != self.layout.piece_size or view.size != self.layout.blob_size:
            raise SupernodeUnavailable("the swarm's piece layout differs from ours")
        self._reporter = SwarmReporter(client, str(self.digest), peer_id)
        self._reporter.mask = self.partial.mask
        self._reporter.start()
        inflight: dict[asyncio.Task[memoryview], tuple[int, str]] = {}
        per_parent: dict[str, int] = {}
        sync: asyncio.Task[SwarmView] | None = None
        unreachable = 0
        last_progress = time.monotonic()
        try:
            while not self.partial.complete:
                self._merge_digests(view)
                if view.role == ROLE_FEEDER:
                    self._source_role = True
                    await self._from_upstream(source)
                    return
                self._schedule(view, inflight, per_parent)
                if sync is None:
                    sync = asyncio.create_task(
                        client.view(str(self.digest), peer_id, view.version, VIEW_WAIT, self._digests_known())
                    )
                left = self.config.stall_timeout - (time.monotonic() - last_progress)
                if left <= 0:
                    raise SwarmStalled(f"no piece for {self.config.stall_timeout:.0f}s")
                waiting: set[asyncio.Future[Any]] = {*inflight, sync}
                done, _ = await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if sync in done:
                    finished_sync, sync = sync, None
                    try:
                        view = finished_sync.result()
                        unreachable = 0
                    except SupernodeUnavailable as exc:
                        # Forgotten (the supernode restarted): join again with what we hold. Unreachable: without
                        # it no new piece digests come, so once nothing is in flight, the upstream takes over.
                        if not isinstance(exc, UnknownPeer):
                            unreachable += 1
                            if unreachable >= SYNC_FAILURES_BEFORE_FALLBACK and not inflight:
                                raise
                        log.info("sync for %s failed (%s); joining again", self.digest, exc)
                        await asyncio.sleep(1.0)
                        with contextlib.suppress(SupernodeUnavailable):
                            view = await client.join(str(self.digest), self._join_request())
                            unreachable = 0
                for fetch in [task for task in inflight if task in done]:
                    index, parent_id = inflight.pop(fetch)
                    per_parent[parent_id] -= 1
                    if await self._piece_outcome(fetch, index, parent_id):
                        last_progress = time.monotonic()
        finally:
            for task in [*inflight, *([sync] if sync else [])]:
                task.cancel()
            for task in [*inflight, *([sync] if sync else [])]:
                with contextlib.suppress(BaseException):
                    await task

    def _join_request(self) -> JoinRequest:
        assert self.swarm is not None
        return JoinRequest(self.swarm.peer_id, self.layout.blob_size, mask_to_hex(self.partial.mask))

    def _schedule(
        self, view: SwarmView, inflight: dict[asyncio.Task[memoryview], tuple[int, str]], per_parent: dict[str, int]
    ) -> None:
        """Start fetches for the lowest missing pieces whose digests are known, spread over the parents."""
        parents = [p for p in view.parents if p.peer_id not in self._bad_parents]
        if not parents:
            return
        busy = {index for index, _ in inflight.values()}
        for index, piece_digest in enumerate(self._digests):
            if len(inflight) >= self.config.max_inflight:
                return
            if not piece_digest or index in busy or self.partial.has(index):
                continue
            parent = self._pick_parent(parents, index, per_parent)
            if parent is None:
                return
            per_parent[parent.peer_id] = per_parent.get(parent.peer_id, 0) + 1
            task = asyncio.create_task(self._fetch_limited(parent, index, piece_digest))
            inflight[task] = (index, parent.peer_id)

    async def _fetch_limited(self, parent: ParentInfo, index: int, piece_digest: str) -> memoryview:
        await self.limits.download.consume(self.layout.length(index))
        return await fetch_piece(
            self.piece_http,
            parent.url,
            str(self.digest),
            index,
            expected_length=self.layout.length(index),
            expected_sha256=piece_digest,
            wait=self.config.piece_wait,
            join_token=self.config.join_token,
            body_slots=self.piece_slots,
        )

    def _pick_parent(self, parents: list[ParentInfo], index: int, per_parent: dict[str, int]) -> ParentInfo | None:
        best: tuple[int, int] | None = None
        chosen = None
        for order, parent in enumerate(parents):
            load = per_parent.get(parent.peer_id, 0)
            if load >= self.config.max_inflight_per_parent:
                continue
            has_it = parent.done or bool(hex_to_mask(parent.pieces) >> index & 1)
            # Parents known to hold the piece first, then the least busy; the supernode's order breaks ties.
            key = (0 if has_it else 1, load * 100 + order)
            if best is None or key < best:
                best, chosen = key, parent
        return chosen

    async def _piece_outcome(self, task: asyncio.Task[memoryview], index: int, parent_id: str) -> bool:
        """Handle one finished piece fetch; True if it brought a piece."""
        try:
            data = task.result()
        except PieceCorrupt as exc:
            log.warning("blocklisting %s for %s: %s", parent_id, self.digest, exc)
            self.stats.corrupt_pieces += 1
            self._drop_parent(parent_id)
            return False
        except PieceUnavailable:
            return False
        except (RawHttpError, OSError) as exc:
            log.info("parent %s failed for piece %d: %r", parent_id, index, exc)
            self._drop_parent(parent_id)
            return False
        await self._accept(index, data, self._digests[index])
        return True

    def _merge_digests(self, view: SwarmView) -> None:
        for offset, piece_digest in enumerate(view.piece_digests):
            index = view.digests_from + offset
            if piece_digest and 0 <= index < self.layout.count and not self._digests[index]:
                self._digests[index] = piece_digest

    def _digests_known(self) -> int:
        """How many digests from the start we have: the supernode need not send those again."""
        for index, piece_digest in enumerate(self._digests):
            if not piece_digest:
                return index
        return self.layout.count

    def _drop_parent(self, parent_id: str) -> None:
        self._bad_parents.add(parent_id)
        if self._reporter is not None:
            self._reporter.bad_parent(parent_id)

