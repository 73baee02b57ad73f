"""The hosts' traffic over time: bytes fetched from the upstream and from peers, served to peers and to clients.

Each host's heartbeat carries its cumulative counters since its daemon started (supernode/api.py HostFacts). Every
`traffic_every` seconds the recorder reads them from the live view (manager/host_source.py), takes the difference
since the counters it stored last, and adds it to the host's bucket of the current hour.

- A host the platform never sampled: all of its counters are still uncounted, so they are the difference.
- A counter lower than before: the daemon restarted and its counters began again at 0, so the difference is the
  counters as they are (what moved before the restart and after the last sample is lost: at most one interval's).
- The stored counters are replaced by compare-and-set (`UPDATE ... WHERE` the values read): when two managers share
  one database, only one of them adds a given difference; the other's update matches no row, and its transaction,
  bucket included, is rolled back.

Bytes a host moved between its last sample and its leaving are not counted (at most one interval's).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, fields
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from supernode.api import HostFacts

from .hosts import HostBook
from .models import TrafficCounters, TrafficHour
from .periodic import OwnedLoop

log = logging.getLogger(__name__)

HOUR, DAY = 3600, 86400
STEPS = {"hour": HOUR, "day": DAY}
# The shortest interval between samples: a mistyped `--traffic-every 0` must not spin.
MIN_EVERY = 0.1
# Host ids per query of a cluster's series, well under any database's limit of bound parameters.
_IDS_PER_QUERY = 500


@dataclass(frozen=True, slots=True)
class Counters:
    fetched_upstream: int = 0
    fetched_peers: int = 0
    served_peers: int = 0
    served_clients: int = 0

    @classmethod
    def of_facts(cls, facts: HostFacts) -> Counters:
        return cls(facts.fetched_upstream, facts.fetched_peers, facts.served_peers, facts.served_clients)

    @classmethod
    def of_row(cls, row: Any) -> Counters:
        return cls(*(int(getattr(row, name) or 0) for name in NAMES))

    def values(self) -> tuple[int, ...]:
        return astuple(self)

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(a + b for a, b in zip(self.values(), other.values(), strict=True)))

    @property
    def zero(self) -> bool:
        return not any(self.values())

    @property
    def saved_ratio(self) -> float | None:
        """The share of what was fetched that came from peers: the upstream egress saved. None: nothing fetched."""
        fetched = self.fetched_peers + self.fetched_upstream
        return round(self.fetched_peers / fetched, 6) if fetched else None

    def to_json(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in NAMES}, "saved_ratio": self.saved_ratio}


NAMES = tuple(f.name for f in fields(Counters))


def difference(last: Counters | None, now: Counters) -> Counters:
    """The bytes moved between two samples of one host's counters (see the module's docstring)."""
    if last is None or any(n < before for n, before in zip(now.values(), last.values(), strict=True)):
        return now
    return Counters(*(n - before for n, before in zip(now.values(), last.values(), strict=True)))


class Conflict(Exception):
    """Another manager sampled this host between our read of its counters and our write: it counted the bytes."""


async def stored_counters(session: AsyncSession) -> dict[str, Counters]:
    rows = (await session.execute(select(TrafficCounters))).scalars()
    return {row.host_id: Counters.of_row(row) for row in rows}


async def write_sample(
    session: AsyncSession, host_id: str, last: Counters | None, now: Counters, at: float
) -> Counters:
    """Store `now` as the host's counters if they still are `last`, and add the difference to the hour's bucket;
    Conflict (the caller rolls back) if another writer got there first. Returns the difference added."""
    added = difference(last, now)
    values = dict(zip(NAMES, now.values(), strict=True))
    try:
        if last is None:
            session.add(TrafficCounters(host_id=host_id, sampled_at=at, **values))
            await session.flush()
        else:
            unchanged = [getattr(TrafficCounters, n) == v for n, v in zip(NAMES, last.values(), strict=True)]
            done = await session.execute(
                update(TrafficCounters).where(TrafficCounters.host_id == host_id, *unchanged)
                .values(sampled_at=at, **values)
            )
            if _rowcount(done) != 1:
                raise Conflict(host_id)
        if not added.zero:
            await _add_to_hour(session, host_id, int(at // HOUR * HOUR), added)
    except IntegrityError:
        raise Conflict(host_id) from None
    return added


async def _add_to_hour(session: AsyncSession, host_id: str, hour: int, added: Counters) -> None:
    sums = {name: getattr(TrafficHour, name) + getattr(added, name) for name in NAMES}
    done = await session.execute(
        update(TrafficHour).where(TrafficHour.hour == hour, TrafficHour.host_id == host_id).values(**sums)
    )
    if _rowcount(done) == 0:
        # A new bucket; another manager inserting the same one at once makes this an IntegrityError: a Conflict.
        session.add(TrafficHour(hour=hour, host_id=host_id, **dict(zip(NAMES, added.values(), strict=True))))
        await session.flush()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class TrafficRecorder(OwnedLoop):
    """Samples the live hosts' counters every `every` seconds, in a task of its own (started by `start`, cancelled by
    `close`: manager/app.py owns it)."""

    loop_name = "traffic-recorder"

    def __init__(self, hosts: HostBook, sessions: async_sessionmaker[AsyncSession], every: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.hosts = hosts
        self.sessions = sessions
        self.every = max(every, MIN_EVERY)
        self.clock = clock

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except (SQLAlchemyError, OSError) as exc:
                # The database is away for a while: the next sample takes the bytes (the counters are cumulative).
                log.warning("the hosts' traffic could not be sampled: %s", type(exc).__name__)
            except Exception:
                # A bug must not end the sampling for the life of the process: said, and tried again.
                log.exception("the hosts' traffic could not be sampled")
            await asyncio.sleep(self.every)

    async def sample(self) -> int:
        """One pass over the live hosts; the number of hosts whose difference this manager added."""
        live = await self.hosts.snapshot()
        async with self.sessions() as session:
            stored = await stored_counters(session)
        at = self.clock()
        added = 0
        for host in live.hosts.values():
            if host.facts is None:
                continue
            now = Counters.of_facts(host.facts)
            last = stored.get(host.host_id)
            if last == now:
                continue
            try:
                async with self.sessions.begin() as session:
                    await write_sample(session, host.host_id, last, now, at)
                added += 1
            except Conflict:
                log.debug("host %s: sampled by another manager meanwhile", host.host_id[:64])
        return added


async def series(
    sessions: async_sessionmaker[AsyncSession], since: float, step: str, host_ids: Iterable[str] | None = None,
    now: float | None = None,
) -> list[tuple[int, Counters]]:
    """Every `step` (hour, day; UTC) from the one holding `since` to now: its first second and the bytes moved, of
    the hosts `host_ids` (None: all)."""
    size = STEPS[step]
    start = int(since // size * size)
    end = int((time.time() if now is None else now) // size * size)
    sums = [func.coalesce(func.sum(getattr(TrafficHour, name)), 0) for name in NAMES]
    query = select(TrafficHour.hour, *sums).where(TrafficHour.hour >= start).group_by(TrafficHour.hour)
    queries = [query]
    if host_ids is not None:
        ids = sorted(set(host_ids))
        chunks = [ids[i : i + _IDS_PER_QUERY] for i in range(0, len(ids), _IDS_PER_QUERY)]
        queries = [query.where(TrafficHour.host_id.in_(chunk)) for chunk in chunks]
    buckets: dict[int, Counters] = {at: Counters() for at in range(start, end + 1, size)}
    async with sessions() as session:
        for each in queries:
            for hour, *values in (await session.execute(each)).all():
                at = int(hour) // size * size
                buckets[at] = buckets.get(at, Counters()) + Counters(*(int(v) for v in values))
    return sorted(buckets.items())


async def totals_by_host(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Counters]:
    """Every host's bytes since the platform first sampled it: monotonic, as Prometheus counters must be."""
    sums = [func.coalesce(func.sum(getattr(TrafficHour, name)), 0) for name in NAMES]
    query = select(TrafficHour.host_id, *sums).group_by(TrafficHour.host_id).order_by(TrafficHour.host_id)
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    return {str(host_id): Counters(*(int(v) for v in values)) for host_id, *values in rows}
