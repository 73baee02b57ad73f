"""Where a download's pieces land: digested, written, hashed in order into the whole-blob digest, and the blob
moved into the store only once that digest matches.

Every piece, from a parent or from the upstream, comes through `accept`; the swarm loop and the upstream fill
only decide where pieces come from. Readers and the swarm are told about each stored piece (`notify`, the
reporter); the set of verified pieces is written down at most once a second, so a crash loses a second's pieces.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from core.digest import Digest, Hasher

from .failures import BlobMismatch, SwarmDigestsWrong
from .live_tail import LiveTail
from .partial import PartialBlob
from .reporter import SwarmReporter
from .stats import PeerStats
from .store import BlobStore

log = logging.getLogger(__name__)
STATE_INTERVAL = 1.0


class PieceLanding:
    def __init__(
        self,
        digest: Digest,
        partial: PartialBlob,
        *,
        store: BlobStore,
        stats: PeerStats,
        live: LiveTail,
        notify: Callable[[], None],
        verify: bool = True,
        content: Digest | None = None,
    ) -> None:
        # `digest` is the key the blob is stored and swarmed under. With `verify`, the whole blob must match a
        # digest: `content` when given (a file asked for by its digest, swarmed under a key of its own:
        # core/file_key.py), else the key itself (a blob). Without, the key is a file key, and the content's sha256
        # is computed for the user.
        self.digest = digest
        self.expected: Digest | None = (content or digest) if verify else None
        self.partial = partial
        self.layout = partial.layout
        self.store = store
        self.stats = stats
        self.live = live
        self.notify = notify
        # Set by the swarm loop once the blob's swarm is joined; `feeder` once this host fetches from the upstream
        # for the swarm, when its piece digests are what children verify against.
        self.reporter: SwarmReporter | None = None
        self.feeder = False
        # The piece digests the swarm published, where known ("" otherwise): upstream bytes must match them too.
        self.published: Callable[[int], str] = lambda index: ""
        # Whether a piece from a peer (verified against the swarm's digests only) is in: then a blob that fails
        # its digest says the swarm's feeder lied, not the upstream.
        self.relied_on_swarm = False
        self._hasher: Hasher = self._new_hasher()
        # The content's sha256 once the blob has landed (for a file key: what the user is told it got).
        self.content_sha256 = ""
        # This download's own counts, for the progress of one file (the host's totals are in `stats`).
        self.bytes_from_upstream = 0
        self.bytes_from_peers = 0
        self._hashed = 0  # pieces fed into the whole-blob hash, from the start
        self._hash_lock = asyncio.Lock()
        self._state_saved = float("-inf")  # the first verified piece is recorded at once

    async def accept(self, index: int, data: bytes | memoryview, verified_sha256: str | None) -> None:
        """Store a piece and tell readers and the swarm.

        `verified_sha256` is the swarm digest a peer's piece was checked against; None marks upstream bytes,
        which are digested here (and must match the swarm's digest where one was already published). Digest,
        write and the in-order whole-blob hash happen in one trip to a worker thread.
        """
        if self.partial.has(index):
            self.live.stored(self.layout.offset(index))  # its buffer is about to be reused
            return
        async with self._hash_lock:
            in_order = index == self._hashed
            digested = await asyncio.to_thread(self._store, index, data, verified_sha256 is None, in_order)
            if in_order:
                self._hashed += 1
        piece_sha256 = verified_sha256 or digested
        published = self.published(index)
        if verified_sha256 is None and published and published != digested:
            raise SwarmDigestsWrong(f"the upstream's piece {index} differs from the digest the swarm published")
        if verified_sha256 is not None:
            self.relied_on_swarm = True
        self.partial.mark(index, piece_sha256)
        self.live.stored(self.layout.offset(index))
        if verified_sha256 is None:
            self.stats.bytes_from_upstream += len(data)
            self.bytes_from_upstream += len(data)
        else:
            self.stats.bytes_from_peers += len(data)
            self.bytes_from_peers += len(data)
        if self.reporter is not None:
            self.reporter.piece(index, piece_sha256 if self.feeder else None)
        self.notify()
        await self._advance_hash()
        await self._maybe_save_state()

    async def reset(self) -> None:
        """Forget every piece and start the whole-blob hash again: the swarm's digests were found wrong."""
        async with self._hash_lock:
            self.partial.reset()
            self.live.stop()
            self._hasher = self._new_hasher()
            self._hashed = 0
            self.relied_on_swarm = False
            self.feeder = False
            self.reporter = None
            self.published = lambda index: ""

    async def land(self) -> Path:
        """Check the whole blob against its digest and move it into the store; raises BlobMismatch."""
        await self._advance_hash()
        expected = self.expected
        if self._hashed != self.layout.count or (expected is not None and self._hasher.hexdigest() != expected.hex):
            self.stats.verify_failures += 1
            raise BlobMismatch(f"blob does not match its digest {expected or self.digest}")
        self.content_sha256 = self._hasher.hexdigest()
        return await self.store.commit(self.digest, self.partial)

    def _new_hasher(self) -> Hasher:
        return self.expected.hasher() if self.expected is not None else hashlib.sha256()

    def _store(self, index: int, data: bytes | memoryview, digest_it: bool, in_order: bool) -> str:
        """Worker-thread part of `accept`: digest, write, and feed the whole-blob hash when in order."""
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

    async def _maybe_save_state(self) -> None:
        now = time.monotonic()
        if now - self._state_saved < STATE_INTERVAL:
            return
        self._state_saved = now
        try:
            await self.partial.save_state()
        except OSError as exc:
            # The state file only speeds up a resume; a full disk must not fail a download that has its space.
            log.warning("could not record the pieces of %s: %s", self.digest, exc)
