"""A download's time in its swarm: join, fetch pieces from parents as the picker says, keep the view fresh.

The supernode answers a join with a view: this host's role, the parents and the piece digests published so far.
A host told it is the feeder fetches from the upstream for the swarm (its piece digests are what children verify
against). Any other host fetches verified pieces from its parents, several at once, while a long-poll keeps its
view current. The swarm is given up (the caller lets the upstream serve the rest) when the supernode stays
unreachable with nothing in flight, or when the picker says the swarm has stalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.digest import Digest
from supernode.api import ROLE_FEEDER, JoinRequest, ParentInfo, SwarmView, mask_to_hex
from supernode.client import SupernodeUnavailable
from supernode.shards import SupernodeShards
from upstream.raw_http import RawHttpClient, RawHttpError

from .config import PeerConfig
from .failures import SwarmReset, SwarmStalled
from .landing import PieceLanding
from .parent_views import ParentSight, watch_parent
from .partial import PartialBlob
from .piece_client import PieceCorrupt, PieceUnavailable, fetch_piece
from .piece_picker import Pick, PickerLimits, PiecePicker
from .ratelimit import TokenBucket
from .reporter import SwarmReporter
from .source import RangeSource
from .stats import PeerStats
from .upstream_fill import UpstreamFill

log = logging.getLogger(__name__)
VIEW_WAIT = 5.0
# Consecutive failed views, with no fetch in flight, after which the swarm is given up for the upstream.
VIEW_FAILURES_BEFORE_FALLBACK = 3
REJOIN_DELAY = 1.0
MAX_REJOIN_DELAY = 4.0


@dataclass(slots=True)
class SwarmLink:
    """What a download needs to take part in the swarm."""

    client: SupernodeShards
    peer_id: str


class SwarmFetch:
    def __init__(
        self,
        digest: Digest,
        partial: PartialBlob,
        landing: PieceLanding,
        fill: UpstreamFill,
        *,
        link: SwarmLink,
        config: PeerConfig,
        piece_http: RawHttpClient,
        rate: TokenBucket,
        piece_slots: asyncio.Semaphore,
        stats: PeerStats,
    ) -> None:
        self.digest = digest
        self.key = str(digest)
        self.partial = partial
        self.layout = partial.layout
        self.landing = landing
        self.fill = fill
        self.link = link
        self.config = config
        self.piece_http = piece_http
        self.rate = rate
        self.piece_slots = piece_slots
        self.stats = stats
        self.reporter: SwarmReporter | None = None
        limits = PickerLimits(config.max_inflight, config.max_inflight_per_parent, config.stall_timeout)
        self.picker = PiecePicker(self.layout.count, limits, time.monotonic(), have=partial.mask)
        landing.published = lambda index: self.picker.digests[index]
        self._unparseable: set[str] = set()
        # The swarm's epoch when joined: a view with another one means the swarm was reset (SwarmReset).
        self.epoch = 0
        # Whether we joined once: every later join says so, so that a supernode that learns the swarm from it (a
        # restarted one, or its new owner) rebuilds it rather than taking us for its first member.
        self._joined = False

    async def run(self, source: RangeSource) -> None:
        """Until the blob is complete; raises SupernodeUnavailable or SwarmStalled when the swarm is given up."""
        client = self.link.client
        view = await self._first_join()
        if view.piece_size != self.layout.piece_size or view.size != self.layout.blob_size:
            raise SupernodeUnavailable("the swarm's piece layout differs from ours")
        self.epoch = view.epoch
        self.reporter = SwarmReporter(client, self.key, self.link.peer_id)
        self.reporter.mask = self.partial.mask
        self.reporter.start()
        self.landing.reporter = self.reporter
        inflight: dict[asyncio.Task[memoryview], Pick] = {}
        viewing: asyncio.Task[SwarmView] | None = None
        # The supernode the view in flight comes from, and the one whose epoch we hold: a view from another (the
        # swarm's owner moved, supernode/shards.py) counts epochs of its own.
        viewing_url = epoch_url = self._owner_url()
        # Returns when the swarm's owner is another process: we join it at once with what we hold.
        moving: asyncio.Task[None] | None = None
        # Long-polls of parents' own views (peer/parent_views.py), by peer id: of every parent while the supernode is
        # away, else of those holding pieces we know no digest of. `stated`: each one's pieces as it last stated them.
        watching: dict[asyncio.Task[ParentSight], str] = {}
        stated: dict[str, int] = {}
        parents = view.parents
        # While the supernode is away (unreachable, restarting, or it forgot us), the parents we know go on
        # serving: their own views (peer/parent_views.py) stand in for the supernode's.
        away = 0
        try:
            while not self.partial.complete:
                if view.epoch != self.epoch:
                    raise SwarmReset(f"the swarm of {self.digest} was reset: its feeder's digests were wrong")
                self.picker.learn(view.digests_from, view.piece_digests)
                if view.role == ROLE_FEEDER:
                    self.landing.feeder = True
                    await self._feed(source, view)
                    return
                now = time.monotonic()
                for pick in self.picker.pick(self._dialable(parents), now):
                    inflight[asyncio.create_task(self._fetch(pick))] = pick
                if moving is None:
                    moving = asyncio.create_task(client.moved(self.key, self._owner_url()))
                if viewing is None:
                    viewing_url = self._owner_url()
                    viewing = asyncio.create_task(self._next_view(view, away))
                # Also with the supernode back: a restarted one publishes only the digests its members claimed when
                # they joined again, and a parent may hold pieces whose digests it learnt from its own parents since.
                self._watch(parents if away else self._lacking_digests(parents), watching, stated)
                if self.picker.stalled(now):
                    raise SwarmStalled(f"no piece for {self.config.stall_timeout:.0f}s")
                if away >= VIEW_FAILURES_BEFORE_FALLBACK and not inflight and not self._usable(parents, now):
                    raise SupernodeUnavailable(f"supernode unreachable and no parent to fetch from ({away} tries)")
                waiting: set[asyncio.Future[Any]] = {*inflight, viewing, moving, *watching}
                done, _ = await asyncio.wait(
                    waiting, timeout=self.picker.wait_limit(now), return_when=asyncio.FIRST_COMPLETED
                )
                if moving in done:
                    moving = None
                    if viewing not in done:
                        await _cancel_all([viewing])
                        log.info("the swarm of %s moved to %s: joining it there", self.digest, self._owner_url())
                        viewing_url = self._owner_url()
                        viewing = asyncio.create_task(self.link.client.join(self.key, self._join_request()))
                if viewing in done:
                    finished, viewing = viewing, None
                    try:
                        view = finished.result()
                    except SupernodeUnavailable as exc:
                        away += 1
                        log.info("supernode away for %s (%s); the parents we know go on serving", self.digest, exc)
                    else:
                        if away:
                            log.info("supernode back for %s after %d tries", self.digest, away)
                        if away or viewing_url != epoch_url:
                            # A restarted supernode, or the swarm's new owner, counts epochs afresh; what we hold is
                            # still checked whole.
                            self.epoch, epoch_url = view.epoch, viewing_url
                        away = 0
                        parents = view.parents
                for watched in [task for task in watching if task in done]:
                    del watching[watched]
                    sight = watched.result()
                    stated[sight.parent.peer_id] = sight.stated
                    parents = [sight.parent if p.peer_id == sight.parent.peer_id else p for p in parents]
                    self.picker.learn(0, sight.digests)
                for fetch in [task for task in inflight if task in done]:
                    await self._outcome(fetch, inflight.pop(fetch))
        finally:
            await _cancel_all([*inflight, *([viewing] if viewing else []), *([moving] if moving else []), *watching])

    def _owner_url(self) -> str:
        return self.link.client.owner(self.key).base_url

    async def _first_join(self) -> SwarmView:
        """The first join; one the owner did not answer is made again at once where the swarm moved to (the
        process that did not answer is left out of the owners, supernode/shards.py), not given up for the
        upstream."""
        for _ in range(3):
            url = self._owner_url()
            try:
                view = await self.link.client.join(self.key, self._join_request())
            except SupernodeUnavailable:
                if self._owner_url() == url:
                    raise
                continue
            self._joined = True
            return view
        raise SupernodeUnavailable(f"no supernode took the join of {self.digest}")

    async def _next_view(self, view: SwarmView, away: int) -> SwarmView:
        """The next view: a long-poll while the supernode answers; while it is away, a join again after a pause
        (growing to a few seconds): a restarted supernode learns the swarm back from its members' joins."""
        client = self.link.client
        if not away:
            return await client.view(self.key, self.link.peer_id, view.version, VIEW_WAIT, self.picker.digests_known())
        await asyncio.sleep(min(REJOIN_DELAY * away, MAX_REJOIN_DELAY))
        return await client.join(self.key, self._join_request())

    def _lacking_digests(self, parents: list[ParentInfo]) -> list[ParentInfo]:
        """The parents holding a piece we lack and know no digest of: only their own views can tell us it."""
        lacking = self.picker.undigested & ~self.partial.mask
        return [parent for parent in parents if lacking and int(parent.pieces or "0", 16) & lacking]

    def _watch(
        self, parents: list[ParentInfo], watching: dict[asyncio.Task[ParentSight], str], stated: dict[str, int]
    ) -> None:
        """A long-poll of the own view of each of `parents` we can dial, but those already watched."""
        watched = set(watching.values())
        for parent in self._dialable(parents):
            if parent.peer_id not in watched:
                known = stated.get(parent.peer_id, int(parent.pieces or "0", 16))
                task = asyncio.create_task(
                    watch_parent(self.piece_http, parent, known, self.key, self.layout, self.config.join_token)
                )
                watching[task] = parent.peer_id

    def _usable(self, parents: list[ParentInfo], now: float) -> bool:
        return any(self.picker.usable(parent.peer_id, now) for parent in self._dialable(parents))

    async def _feed(self, source: RangeSource, view: SwarmView) -> None:
        """Fetch from the upstream for the swarm, while keeping this host the swarm's feeder at the supernode: if it
        restarts or forgets us, we join again and say we were the feeder, with the digests published so far."""
        keeper = asyncio.create_task(self._keep_feeding(view))
        try:
            await self.fill.run(source)
            if self.reporter is not None:
                # Every piece reported before the long-poll goes: the supernode takes a feeder's view cut off
                # mid-blob for its death (supernode/scheduler.py, feeder_disconnected).
                await self.reporter.flush()
        finally:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper

    async def _keep_feeding(self, view: SwarmView) -> None:
        client = self.link.client
        version, away = view.version, 0
        while True:
            url = self._owner_url()
            try:
                if away:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(client.moved(self.key, url), min(REJOIN_DELAY * away, MAX_REJOIN_DELAY))
                    version = (await client.join(self.key, self._join_request())).version
                else:
                    version = await self._feeder_view(version, url)
                away = 0
            except SupernodeUnavailable as exc:
                away += 1
                log.debug("feeder of %s: supernode away (%s)", self.digest, exc)

    async def _feeder_view(self, version: int, url: str) -> int:
        """The feeder's held view at `url`; if the swarm moves meanwhile, the feeder joins the new owner at once (as
        the feeder, with every digest) and lets the old poll end by itself: cut off, the old owner would take it for
        the feeder's death and make another member the feeder, who would go to the upstream."""
        client = self.link.client
        polling = asyncio.create_task(client.view(self.key, self.link.peer_id, version, VIEW_WAIT, 0))
        moving = asyncio.create_task(client.moved(self.key, url))
        try:
            await asyncio.wait({polling, moving}, return_when=asyncio.FIRST_COMPLETED)
            if not moving.done():
                return polling.result().version
            log.info("feeder of %s: the swarm moved to %s, joining it there", self.digest, self._owner_url())
            joined = await client.join(self.key, self._join_request())
            with contextlib.suppress(SupernodeUnavailable):
                await polling
            return joined.version
        finally:
            await _cancel_all([polling, moving])

    def _join_request(self) -> JoinRequest:
        """What we hold, and when we hold something, its digests and whether we were the feeder: a restarted
        supernode rebuilds the swarm from these (supernode/scheduler.py). A first join holds nothing: it stays small."""
        digests = dict(self.partial.piece_digests) if self.partial.mask else {}
        return JoinRequest(
            self.link.peer_id, self.layout.blob_size, mask_to_hex(self.partial.mask), digests, self.landing.feeder,
            rejoining=self._joined,
        )

    def _dialable(self, parents: list[ParentInfo]) -> list[ParentInfo]:
        """The parents whose address parses; one that does not is skipped (and said once), never a failure."""
        usable = []
        for parent in parents:
            if parent.peer_id in self._unparseable:
                continue
            try:
                parsed = urlsplit(parent.url)
                valid = parsed.scheme == "http" and bool(parsed.hostname) and parsed.port is not None
            except ValueError:
                valid = False
            if not valid:
                self._unparseable.add(parent.peer_id)
                log.warning(
                    "skipping parent %s of %s: address %r does not parse", parent.peer_id, self.digest, parent.url[:100]
                )
                continue
            usable.append(parent)
        return usable

    async def _fetch(self, pick: Pick) -> memoryview:
        await self.rate.consume(self.layout.length(pick.index))
        return await fetch_piece(
            self.piece_http,
            pick.parent.url,
            self.key,
            pick.index,
            expected_length=self.layout.length(pick.index),
            expected_sha256=pick.sha256,
            wait=self.config.piece_wait,
            join_token=self.config.join_token,
            body_slots=self.piece_slots,
        )

    async def _outcome(self, task: asyncio.Task[memoryview], pick: Pick) -> None:
        """Tell the picker how a fetch ended; land the piece it brought."""
        parent_id = pick.parent.peer_id
        try:
            data = task.result()
        except PieceCorrupt as exc:
            log.warning("blocklisting %s for %s: %s", parent_id, self.digest, exc)
            self.stats.corrupt_pieces += 1
            self.picker.failed(pick.index, parent_id)
            if self.reporter is not None:
                self.reporter.corrupt_parent(parent_id)
            return
        except PieceUnavailable:
            if self.picker.missed(pick.index, parent_id, time.monotonic()):
                log.info("parent %s of %s keeps answering 'not here': not asked again", parent_id, self.digest)
            return
        except (RawHttpError, OSError) as exc:
            log.info("parent %s failed for piece %d: %r", parent_id, pick.index, exc)
            self.picker.failed(pick.index, parent_id)
            self._report_bad(parent_id)
            return
        await self.landing.accept(pick.index, data, pick.sha256)
        self.picker.landed(pick.index, parent_id, time.monotonic())

    def _report_bad(self, parent_id: str) -> None:
        if self.reporter is not None:
            self.reporter.bad_parent(parent_id)


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(BaseException):
            await task
