"""Sends a swarm member's news to the supernode, coalescing bursts into few requests.

Piece digests (from the feeder) go out at once, because children wait for them; plain piece counts from
children are batched, because the supernode only uses them to rank parents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from supernode.api import ReportRequest, mask_to_hex
from supernode.client import SupernodeUnavailable
from supernode.shards import SupernodeShards

log = logging.getLogger(__name__)
BATCH_DELAY = 0.25
# Digests go out at once, but not more than this often: at loopback speed a feeder digests a piece every ~15 ms,
# and one request per piece was a fifth of its event loop; on a real link pieces come far slower than this.
URGENT_INTERVAL = 0.05
# While the supernode says nobody else in the swarm still needs pieces, nobody waits for the digests either: a
# feeder alone (the common single pull) reports this seldom. A child that joins meanwhile gets the digests known so
# far at once, and the rest within this interval, after which the next answer turns the urgent pace back on.
ALONE_INTERVAL = 1.0


class SwarmReporter:
    def __init__(self, client: SupernodeShards, digest: str, peer_id: str) -> None:
        self.client = client
        self.digest = digest
        self.peer_id = peer_id
        self.mask = 0
        self._digests: dict[int, str] = {}
        self._bad: list[str] = []
        self._corrupt: list[str] = []
        self._dirty = asyncio.Event()
        self._urgent = False
        # Whether other members still need pieces (the supernode says so in its answer to each report); until
        # told otherwise, assume they do.
        self._audience = True
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"report-{self.digest[:19]}")

    def piece(self, index: int, digest_hex: str | None) -> None:
        self.mask |= 1 << index
        if digest_hex is not None:
            self._digests[index] = digest_hex
            self._urgent = True
        self._dirty.set()

    def bad_parent(self, peer_id: str) -> None:
        self._bad.append(peer_id)
        self._urgent = True
        self._dirty.set()

    def corrupt_parent(self, peer_id: str) -> None:
        """A parent sent a piece that failed its digest: it is struck at the supernode, not only dropped."""
        self._corrupt.append(peer_id)
        self._urgent = True
        self._dirty.set()

    async def accuse_feeder(self) -> None:
        """The pieces, each verified against the swarm's digests, do not assemble into the blob: whoever
        published those digests lied (or its disk did). Said at once; the supernode resets the swarm."""
        with contextlib.suppress(SupernodeUnavailable):
            await self.client.report(
                self.digest, ReportRequest(peer_id=self.peer_id, pieces=mask_to_hex(self.mask), bad_feeder=True)
            )

    async def flush(self) -> None:
        """Send what is pending now (the feeder's last pieces, before its view long-poll goes)."""
        with contextlib.suppress(SupernodeUnavailable):
            await self._send(done=False, failed=False)

    async def finish(self, *, done: bool) -> None:
        """Stop batching and send the last word (done, or failed)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(SupernodeUnavailable):
            await self._send(done=done, failed=not done)

    async def _run(self) -> None:
        last_send = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            interval = URGENT_INTERVAL if self._audience else ALONE_INTERVAL
            if not self._urgent:
                await asyncio.sleep(BATCH_DELAY)
            elif (wait := last_send + interval - loop.time()) > 0:
                await asyncio.sleep(wait)
            last_send = loop.time()
            self._dirty.clear()
            self._urgent = False
            try:
                await self._send(done=False, failed=False)
            except SupernodeUnavailable as exc:
                log.debug("report for %s not delivered: %s", self.digest, exc)
                await asyncio.sleep(1.0)

    async def _send(self, *, done: bool, failed: bool) -> None:
        digests, self._digests = self._digests, {}
        bad, self._bad = self._bad, []
        corrupt, self._corrupt = self._corrupt, []
        request = ReportRequest(
            peer_id=self.peer_id,
            pieces=mask_to_hex(self.mask),
            piece_digests=digests,
            done=done,
            failed=failed,
            bad_parents=bad,
            corrupt_parents=corrupt,
        )
        try:
            waiting = await self.client.report(self.digest, request)
        except BaseException:
            # Keep what was not delivered for the next attempt; also when `finish` cancels a send in flight, or
            # the last piece digests would be lost and children would wait for them until they stall.
            self._digests.update(digests)
            self._bad.extend(bad)
            self._corrupt.extend(corrupt)
            raise
        self._audience = waiting is None or waiting > 0
